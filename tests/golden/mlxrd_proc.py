"""mlxrd_proc.py: how a Python golden test starts mlxrd (test_concurrency, test_keep_alive,
test_cli_daemon, test_constrained_json, test_tool_choice).

No port is picked in advance: mlxrd gets --port 0, the kernel chooses a free port when mlxrd binds
it, and mlxrd writes that port to --port-file (atomically, once it is listening), so no other
process can take the port between the test's choice and the daemon's bind.

Every daemon runs under coreutils timeout(1) with LIMIT_S, so one never outlives a test that ctest
killed; timeout passes SIGTERM on to mlxrd and exits with mlxrd's status, and leads its own process
group, which stop() kills as a whole when SIGTERM was not enough. daemon_pid() finds mlxrd itself
(the child of timeout) for /proc readings.
"""
import os
import signal
import socket
import subprocess
import time

LIMIT_S = 1200  # ctest's TIMEOUT for a script test (tests/CMakeLists.txt)


def command(argv, port_file, limit_s=LIMIT_S):
    """The argv that runs argv (mlxrd and its arguments, or a wrapper such as valgrind and then
    mlxrd) on a port the kernel picks, reported in port_file, under timeout(1), with a private model
    store beside port_file (PORT_FILE.store), never the user's."""
    return ["timeout", "-k", "10", str(limit_s)] + list(argv) + ["--port", "0", "--port-file", port_file,
                                                           "--models-store", port_file + ".store"]


def wait_port(proc, port_file, timeout_s):
    """The port mlxrd bound, read from port_file once it is there; None if the process exited first
    or timeout_s passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with open(port_file) as f:
                text = f.read()
            if text.endswith("\n"):
                return int(text)
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def daemon_pid(proc):
    """mlxrd's pid: the one child of the timeout(1) process proc (None once it is gone)."""
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            kids = f.read().split()
        return int(kids[0]) if kids else None
    except OSError:
        return None


def stop(proc, timeout_s=30, sig=signal.SIGTERM):
    """Sends sig (timeout passes it on to mlxrd), waits up to timeout_s for the exit status; past
    that kills the whole group and returns None."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill(proc)
        return None


def kill(proc):
    """SIGKILL to timeout(1) and mlxrd at once (their process group), then reaps."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def http_get_unix(sock_path, path, timeout_s=30):
    """GET path from a daemon's Unix socket (plain HTTP/1.1, no client library): the whole response
    as text, status line and headers included."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout_s)
    s.connect(sock_path)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode(errors="replace")
