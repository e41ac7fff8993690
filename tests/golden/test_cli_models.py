#!/usr/bin/env python3
"""`mlxr create / list / show / cp / rm / ps` against a running mlxrd with a private model store.

The references are independent of the CLI: the blob uploaded must be named by the file's SHA-256 as
Python's hashlib computes it, the model ID the list prints the first 12 hex digits of the digest
the daemon's /api/tags gives (read here over the socket without mlxr), the SIZE the file's size in
Ollama's decimal units, the SYSTEM / PARAMETER / LICENSE values what the Modelfile written here says, and the
lists after cp and rm exactly the names that should exist. Errors (a missing Modelfile, a FROM
file that does not exist, rm of an unknown name, no daemon) must exit non-zero with a message and
change nothing. Ends with "N passed, N failed".
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import mlxrd_proc  # tests/golden/mlxrd_proc.py: daemons under a time limit

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.path.abspath(os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin")))
MLXR, MLXRD = os.path.join(BIN, "mlxr"), os.path.join(BIN, "mlxrd")
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    passed, failed = passed + bool(ok), failed + (not ok)


def run(args, env, cwd=None):
    r = subprocess.run([MLXR] + args, capture_output=True, timeout=300, env=env, cwd=cwd)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def human(n):
    """Ollama's decimal units, as the CLI prints SIZE."""
    if n >= 1e9:
        return "%.1f GB" % (n / 1e9)
    if n >= 1e6:
        return "%.0f MB" % (n / 1e6)
    if n >= 1e3:
        return "%.0f KB" % (n / 1e3)
    return "%d B" % n


def api_tags(sock_path):
    """GET /api/tags straight from the daemon's socket (not through mlxr): name -> digest."""
    body = mlxrd_proc.http_get_unix(sock_path, "/api/tags").split("\r\n\r\n", 1)[1]
    return {m["name"]: m["digest"] for m in json.loads(body)["models"]}


def rows(listing):
    """NAME -> (ID, SIZE) from `mlxr list` (columns split on runs of 2+ spaces)."""
    out = {}
    lines = listing.strip().splitlines()
    for line in lines[1:]:
        parts = [p for p in line.split("  ") if p.strip()]
        if len(parts) >= 3:
            out[parts[0].strip()] = (parts[1].strip(), parts[2].strip())
    return out, (lines[0].split() if lines else [])


def main():
    if not (os.path.exists(MLXR) and os.path.exists(MLXRD)):
        print("FAIL: mlxr/mlxrd not built in %s (build the tree first)\n0 passed, 1 failed" % BIN)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "weights.gguf")
        subprocess.run([MLXR, "convert", os.path.join(SRC, "tests/fixtures/hf/qwen3"), "-o", model,
                        "--type", "f32"], check=True, capture_output=True, timeout=300)
        with open(model, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        size = os.path.getsize(model)
        sock = os.path.join(tmp, "d.sock")
        env = dict(os.environ, MLXR_SOCKET=sock)
        env.pop("MLXR_HOST", None)

        rc, out, err = run(["list"], env)
        check(rc == 1 and "cannot reach mlxrd" in err, "list with no daemon fails clearly: %r" % err.strip())

        port_file = os.path.join(tmp, "port")
        proc = subprocess.Popen(mlxrd_proc.command([MLXRD, "--socket", sock], port_file),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            if mlxrd_proc.wait_port(proc, port_file, 60) is None:
                check(False, "mlxrd started")
                return 1
            mf_dir = os.path.join(tmp, "mf")
            os.mkdir(mf_dir)
            with open(os.path.join(mf_dir, "Modelfile"), "w") as f:
                f.write("# a test model\nFROM ../weights.gguf\nPARAMETER temperature 0.25\n"
                        "PARAMETER stop \"<end>\"\nSYSTEM \"\"\"Be brief.\nAlways.\"\"\"\nLICENSE MIT\n")
            rc, out, err = run(["create", "tiny"], env, cwd=mf_dir)
            check(rc == 0 and out.strip().endswith("success"), "create from ./Modelfile (FROM relative to it): %r %r"
                  % (out.strip(), err.strip()[-200:]))
            check(("sha256:" + digest) in err, "create uploaded the blob under the file's sha256")
            rc, out, err = run(["list"], env)
            table, header = rows(out)
            check(rc == 0 and header == ["NAME", "ID", "SIZE", "MODIFIED"], "list header %r" % header)
            tags = api_tags(sock)
            want_id = tags.get("tiny:latest", "")[:12]
            check(len(want_id) == 12 and table.get("tiny:latest") == (want_id, human(size)),
                  "list: tiny:latest has the ID of /api/tags' digest (%s) and SIZE %s (got %r)"
                  % (want_id, human(size), table.get("tiny:latest")))

            rc, out, err = run(["show", "tiny", "--system"], env)
            check(rc == 0 and out == "Be brief.\nAlways.\n", "show --system is the Modelfile's SYSTEM: %r" % out)
            rc, out, err = run(["show", "tiny", "--parameters"], env)
            params = dict((l.split(None, 1) + [""])[:2] for l in out.strip().splitlines())
            check(rc == 0 and params.get("temperature", "").strip() == "0.25" and
                  params.get("stop", "").strip() == '"<end>"', "show --parameters: %r" % out)
            rc, out, err = run(["show", "tiny", "--license"], env)
            check(rc == 0 and out.strip() == "MIT", "show --license: %r" % out)
            rc, out, err = run(["show", "tiny"], env)
            check(rc == 0 and "architecture" in out and "qwen3" in out and "Be brief." in out,
                  "show prints the model's architecture and system prompt")
            rc, out, err = run(["show", "absent"], env)
            check(rc == 1 and "absent" in err, "show of an unknown model fails: %r" % err.strip())

            rc, out, err = run(["cp", "tiny", "tiny:v2"], env)
            check(rc == 0 and out.strip() == "copied 'tiny' to 'tiny:v2'", "cp: %r" % out.strip())
            table, _ = rows(run(["ls"], env)[1])
            check(sorted(table) == ["tiny:latest", "tiny:v2"] and table["tiny:v2"][0] == want_id,
                  "after cp both names, same ID: %r" % table)
            rc, out, err = run(["show", "tiny:v2", "--system"], env)
            check(rc == 0 and out == "Be brief.\nAlways.\n", "the copy keeps the system prompt")

            rc, out, err = run(["run", "tiny:v2", "Hello", "-n", "3"], env)
            check(rc == 0, "run through the daemon on the copy: %r" % err.strip()[-200:])
            rc, out, err = run(["ps"], env)
            check(rc == 0 and out.splitlines()[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
                  and any(l.startswith("tiny:v2") and "100% CPU" in l for l in out.splitlines()),
                  "ps lists the loaded copy on the CPU: %r" % out)
            check(any(l.split()[:2] == ["tiny:v2", want_id] for l in out.splitlines()),
                  "ps gives the copy the ID of /api/tags' digest (%s)" % want_id)

            rc, out, err = run(["rm", "tiny:v2", "nothere"], env)
            check(rc == 1 and "deleted 'tiny:v2'" in out and "nothere" in err, "rm: one deleted, one unknown")
            table, _ = rows(run(["list"], env)[1])
            check(sorted(table) == ["tiny:latest"], "after rm only tiny:latest: %r" % sorted(table))

            rc, out, err = run(["create", "x", "-f", os.path.join(tmp, "no-such-Modelfile")], env)
            check(rc == 1 and "cannot open the Modelfile" in err, "create without a Modelfile: %r" % err.strip())
            with open(os.path.join(tmp, "M2"), "w") as f:
                f.write("FROM ./missing.gguf\n")
            rc, out, err = run(["create", "x", "-f", os.path.join(tmp, "M2")], env)
            check(rc == 1 and "no such file" in err, "create FROM a missing file: %r" % err.strip())
            with open(os.path.join(tmp, "M3"), "w") as f:
                f.write("FROM tiny\nSYSTEM \"x\nBOGUS line\n")
            rc, out, err = run(["create", "x", "-f", os.path.join(tmp, "M3")], env)
            check(rc == 1 and "line 2" in err and "never closed" in err, "create with a bad Modelfile: %r" % err.strip())
            with open(os.path.join(tmp, "M4"), "w") as f:
                f.write("FROM tiny\nSYSTEM Other.\n")
            rc, out, err = run(["create", "tiny-other", "-f", os.path.join(tmp, "M4")], env)
            check(rc == 0, "create FROM an existing model: %r" % err.strip()[-200:])
            rc, out, err = run(["show", "tiny-other", "--system"], env)
            check(out == "Other.\n", "its SYSTEM replaces the base's: %r" % out)
            table, _ = rows(run(["list"], env)[1])
            check(sorted(table) == ["tiny-other:latest", "tiny:latest"],
                  "the failed creates left nothing: %r" % sorted(table))
        finally:
            mlxrd_proc.stop(proc)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
