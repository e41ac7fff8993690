#!/usr/bin/env python3
"""`mlxr run` as a client of a running mlxrd: with a daemon serving the model on the socket that
MLXR_SOCKET names, `mlxr run` must use it (the daemon's /api/ps shows the model was asked for, and
its request counter moves) and print what the in-process engine prints (`mlxr run --local`) for
greedy decoding, both for a completion and for a chat turn; when the daemon does not serve the
model, or no daemon listens, `mlxr run` falls back to running in process.
Ends with "N passed, N failed".
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import mlxrd_proc  # tests/golden/mlxrd_proc.py: daemons under a time limit

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
MLXR, MLXRD = os.path.join(BIN, "mlxr"), os.path.join(BIN, "mlxrd")
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + what)
    passed, failed = passed + bool(ok), failed + (not ok)


def run(args, stdin=b"", env=None):
    r = subprocess.run([MLXR] + args, input=stdin, capture_output=True, timeout=300, env=env)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def metrics(sock_path):
    return mlxrd_proc.http_get_unix(sock_path, "/metrics")


def main():
    if not (os.path.exists(MLXR) and os.path.exists(MLXRD)):
        print("FAIL: mlxr/mlxrd not built in %s (build the tree first)\n0 passed, 1 failed" % BIN)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "qwen3.gguf")
        subprocess.run([MLXR, "convert", os.path.join(SRC, "tests/fixtures/hf/qwen3"), "-o", model,
                        "--type", "f32"], check=True, capture_output=True, timeout=300)
        sock = os.path.join(tmp, "d.sock")
        env = dict(os.environ, MLXR_SOCKET=sock)
        # no daemon yet: in process
        rc, local, _ = run(["run", "--local", model, "Hello there", "-n", "8", "--temp", "0"])
        rc2, fallback, _ = run(["run", model, "Hello there", "-n", "8", "--temp", "0"], env=env)
        check(rc == 0 and rc2 == 0 and fallback == local, "no daemon: runs in process")
        # the Unix socket only (--no-tcp), under timeout(1) like every daemon a test starts
        d = subprocess.Popen(["timeout", "-k", "10", str(mlxrd_proc.LIMIT_S), MLXRD, "--no-tcp", "--socket", sock,
                              "--model", model, "--models-store", os.path.join(tmp, "store")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            before = None
            for _ in range(600):  # up to a minute: a sanitizer build starts slowly
                try:
                    before = metrics(sock)
                    break
                except OSError:
                    time.sleep(0.1)
            check(before is not None and "200 OK" in before.split("\r\n", 1)[0], "the daemon answers on its socket")
            rc, via, err = run(["run", model, "Hello there", "-n", "8", "--temp", "0"], env=env)
            after = metrics(sock)
            check(rc == 0 and "(daemon)" in err, "completion went through the daemon (%s)" % err.strip()[:80])
            check(before != after, "the daemon's metrics moved")
            check(via == local, "completion through the daemon equals the in-process one (%r)" % via[:40])
            msgs = "Hello there\n/bye\n".encode()
            rc, chat_local, _ = run(["run", "--local", model, "--chat", "-n", "6", "--temp", "0"], stdin=msgs)
            rc2, chat_via, _ = run(["run", model, "--chat", "-n", "6", "--temp", "0"], stdin=msgs, env=env)
            # JSON strings cannot carry NUL: the daemon's stream drops it, the terminal one prints it
            check(rc == 0 and rc2 == 0 and chat_via == chat_local.replace(b"\0", b""),
                  "chat turn through the daemon equals the in-process one")
            # a model the daemon does not serve: in process
            other = os.path.join(tmp, "other.gguf")
            os.link(model, other)
            rc, o_out, o_err = run(["run", other, "Hello there", "-n", "8", "--temp", "0"], env=env)
            check(rc == 0 and o_out == local and "(daemon)" not in o_err, "unserved model runs in process")
        finally:
            mlxrd_proc.stop(d)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
