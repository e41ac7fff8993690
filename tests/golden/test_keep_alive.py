#!/usr/bin/env python3
"""Ollama keep_alive against a live mlxrd: a model used with keep_alive "1s" is listed by /api/ps
with an expires_at about a second ahead and is gone from /api/ps (unloaded) a little after it; one
used with keep_alive -1 stays loaded past that; keep_alive 0 unloads at once; a model unloaded by its
timer is loaded again by the next request, which answers as before; a malformed keep_alive is a 400.
mlxrd runs on the port the kernel gives it, under a time limit (tests/golden/mlxrd_proc.py).
Ends with "N passed, N failed".
"""
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import mlxrd_proc  # tests/golden/mlxrd_proc.py: mlxrd on a kernel-chosen port, under a time limit

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + what)
    passed, failed = passed + bool(ok), failed + (not ok)


def call(port, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def loaded(port):
    return [m["name"] for m in call(port, "/api/ps")[1]["models"]]


def main():
    mlxr, mlxrd = os.path.join(BIN, "mlxr"), os.path.join(BIN, "mlxrd")
    if not os.path.exists(mlxrd):
        print("FAIL: %s not built (build the tree first)\n0 passed, 1 failed" % mlxrd)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "ka.gguf")
        subprocess.run([mlxr, "convert", os.path.join(SRC, "tests/fixtures/hf/llama_untied"), "-o", model,
                        "--type", "f32"], check=True, capture_output=True, timeout=300)
        port_file = os.path.join(tmp, "port")
        d = subprocess.Popen(mlxrd_proc.command([mlxrd, "--no-socket", "--model", model], port_file),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = mlxrd_proc.wait_port(d, port_file, 60)
            if port is None:
                check(False, "mlxrd came up (exit status %s)" % d.poll())
                print("%d passed, %d failed" % (passed, failed))
                return 1
            gen = {"model": "ka", "prompt": "Hello", "stream": False, "options": {"temperature": 0, "num_predict": 4}}
            st, first = call(port, "/api/generate", dict(gen, keep_alive="1s"))
            check(st == 200 and first.get("done"), "generate with keep_alive 1s")
            ps = call(port, "/api/ps")[1]["models"]
            exp = datetime.datetime.fromisoformat(ps[0]["expires_at"].replace("Z", "+00:00")) if ps else None
            ahead = (exp - datetime.datetime.now(datetime.timezone.utc)).total_seconds() if exp else None
            check(ps and ps[0]["name"] == "ka:latest" and ahead is not None and -0.5 < ahead < 2.5,
                  "/api/ps lists it, expiring in about a second (%s s)" % ahead)
            deadline = time.time() + 10  # generous: a sanitizer build is slow
            while time.time() < deadline and loaded(port):
                time.sleep(0.2)
            check(loaded(port) == [], "unloaded once keep_alive ran out")
            st, again = call(port, "/api/generate", dict(gen, keep_alive=-1))
            check(st == 200 and again.get("response") == first.get("response"),
                  "the next request loads it again and answers the same")
            time.sleep(2.5)
            check(loaded(port) == ["ka:latest"], "keep_alive -1 keeps it loaded")
            ps = call(port, "/api/ps")[1]["models"]
            check(ps and ps[0]["expires_at"].startswith("2318"), "keep_alive -1: expires_at far away")
            st, body = call(port, "/api/generate", {"model": "ka", "keep_alive": 0})
            check(st == 200 and body.get("done_reason") == "unload" and loaded(port) == [], "keep_alive 0 unloads")
            st, body = call(port, "/api/generate", {"model": "ka", "keep_alive": "1h30m"})
            ps = call(port, "/api/ps")[1]["models"]
            exp = datetime.datetime.fromisoformat(ps[0]["expires_at"].replace("Z", "+00:00")) if ps else None
            ahead = (exp - datetime.datetime.now(datetime.timezone.utc)).total_seconds() if exp else 0
            check(st == 200 and body.get("done_reason") == "load" and 5390 < ahead < 5410,
                  "load with keep_alive \"1h30m\" expires in 90 minutes (%.0f s)" % ahead)
            for bad in ("soon", "5x", [1], "1m-"):
                st, body = call(port, "/api/generate", dict(gen, keep_alive=bad))
                check(st == 400 and "keep_alive" in json.dumps(body), "keep_alive %r is a 400" % (bad,))
        finally:
            mlxrd_proc.stop(d)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
