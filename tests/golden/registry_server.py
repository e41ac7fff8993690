#!/usr/bin/env python3
"""registry_server.py: a small local registry speaking the part of Ollama's registry protocol (the
OCI distribution API) that MLXR's pull and push use, for tests (tests/unit/test_registry_pull.c).
It is a test reference written from the distribution spec, independent of the C client.

Usage: registry_server.py --root DIR --port-file FILE [--lifetime SECONDS]

It binds 127.0.0.1 on a port the kernel picks (port 0), then writes the port number to FILE
(through a temporary file and a rename, so a reader never sees half a number), serves until it
gets SIGTERM, and exits by itself after --lifetime seconds (default 120) so a crashed test never
leaves it behind.

Files under DIR, filled by the test:
  manifests/<namespace>/<model>/<tag>   a manifest, served byte for byte
  blobs/sha256-<64 hex>                 a blob
  faults.json                           misbehaviour, re-read at every request (absent: none)
  log.jsonl                             written here: one JSON line per request, after its response
                                        {"method", "path", "range", "status", "sent"} (sent: body
                                        bytes actually written to the socket)

Routes:
  GET  /v2/                                             200 {}
  GET  /v2/<ns>/<model>/manifests/<tag>                 the manifest, Docker-Content-Digest set
  HEAD/GET /v2/<ns>/<model>/blobs/sha256:<hex>          the blob; "Range: bytes=N-" gives a 206
  GET  /cdn/sha256:<hex>                                the same (the target of the redirect fault)
  POST /v2/<ns>/<model>/blobs/uploads/                  202, Location: .../blobs/uploads/<id>
  PATCH <upload location>                               body appended; 202, same Location
  PUT  <upload location>?digest=sha256:<hex>            body appended, digest checked; 201 (400 if
                                                        the bytes do not hash to the digest)
  PUT  /v2/<ns>/<model>/manifests/<tag>                 stored; 201

faults.json keys (a blob is named by its 64 hex digits; "manifest" names every manifest):
  "wrong_bytes": [hex]            serve the blob with its first byte changed (same length)
  "truncate": {hex: N}            send the full Content-Length but only N bytes, then close
  "drop_at": {hex: [N, times]}    like truncate at absolute byte N, for the first `times`
                                  requests of that blob only (later requests are served whole)
  "extra_bytes": {hex: N}         send N bytes more than the blob has (Content-Length matching)
  "slow": {hex: seconds}          sleep that long after the headers, before the body
  "not_found": [hex or "manifest"]  answer 404
  "status": {hex or "manifest": code}  answer with that status and a short JSON error
  "ignore_range": true            answer a Range request with 200 and the whole blob
  "redirect": true                blob GETs answer 307 to /cdn/sha256:<hex>
  "manifest_digest_header": "sha256:..."  send this Docker-Content-Digest instead of the real one
"""

import argparse
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HEX = re.compile(r"^[0-9a-f]{64}$")
PART = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
MANIFEST_RE = re.compile(rf"^/v2/({PART})/({PART})/manifests/({PART})$")
BLOB_RE = re.compile(rf"^/v2/({PART})/({PART})/blobs/sha256:([0-9a-f]{{64}})$")
CDN_RE = re.compile(r"^/cdn/sha256:([0-9a-f]{64})$")
UPLOADS_RE = re.compile(rf"^/v2/({PART})/({PART})/blobs/uploads/$")
UPLOAD_RE = re.compile(rf"^/v2/({PART})/({PART})/blobs/uploads/([0-9a-f]{{32}})$")


class Registry:
    """What the handlers share: the root directory, request counts per blob, a lock."""

    def __init__(self, root):
        self.root = root
        self.lock = threading.Lock()
        self.counts = {}

    def faults(self):
        try:
            with open(os.path.join(self.root, "faults.json"), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]

    def log(self, entry):
        with self.lock:
            with open(os.path.join(self.root, "log.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mlxr-test-registry"

    def log_message(self, fmt, *args):  # quiet; the JSON log is the record
        pass

    @property
    def reg(self):
        return self.server.registry

    # ---- helpers ----

    def finish_log(self, status, sent):
        self.reg.log({"method": self.command, "path": self.path, "range": self.headers.get("Range"),
                      "status": status, "sent": sent})

    def reply(self, status, body=b"", headers=None, content_type="application/json"):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        sent = 0
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            sent = len(body)
        self.finish_log(status, sent)

    def error(self, status, code, message):
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.reply(status, body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # ---- GET / HEAD ----

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urlsplit(self.path).path
        faults = self.reg.faults()
        if path == "/v2/":
            return self.reply(200, b"{}")
        m = MANIFEST_RE.match(path)
        if m:
            return self.get_manifest(m.groups(), faults)
        m = BLOB_RE.match(path)
        if m:
            if faults.get("redirect") and self.command == "GET":
                return self.reply(307, b"", {"Location": f"/cdn/sha256:{m.group(3)}"})
            return self.get_blob(m.group(3), faults)
        m = CDN_RE.match(path)
        if m:
            return self.get_blob(m.group(1), faults)
        self.error(404, "NAME_UNKNOWN", "no such route")

    def get_manifest(self, parts, faults):
        if "manifest" in faults.get("not_found", []):
            return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        if "manifest" in faults.get("status", {}):
            return self.error(int(faults["status"]["manifest"]), "UNKNOWN", "injected status")
        file = os.path.join(self.reg.root, "manifests", *parts)
        try:
            with open(file, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self.error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        digest = faults.get("manifest_digest_header") or "sha256:" + hashlib.sha256(data).hexdigest()
        self.reply(200, data, {"Docker-Content-Digest": digest},
                   content_type="application/vnd.docker.distribution.manifest.v2+json")

    def get_blob(self, hexd, faults):
        n_req = self.reg.count(hexd)
        if hexd in faults.get("not_found", []):
            return self.error(404, "BLOB_UNKNOWN", "blob unknown")
        if hexd in faults.get("status", {}):
            return self.error(int(faults["status"][hexd]), "UNKNOWN", "injected status")
        try:
            with open(os.path.join(self.reg.root, "blobs", "sha256-" + hexd), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self.error(404, "BLOB_UNKNOWN", "blob unknown")
        if hexd in faults.get("wrong_bytes", []) and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        if hexd in faults.get("extra_bytes", {}):
            data = data + b"\0" * int(faults["extra_bytes"][hexd])
        start = 0
        rng = self.headers.get("Range")
        status = 200
        if rng and not faults.get("ignore_range"):
            m = re.match(r"^bytes=(\d+)-$", rng)
            if not m:
                return self.error(416, "RANGE_INVALID", "only bytes=N- ranges")
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return self.finish_log(416, 0)
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.command == "HEAD":
            return self.finish_log(status, 0)
        if hexd in faults.get("slow", {}):
            time.sleep(float(faults["slow"][hexd]))
        cut = None  # absolute byte at which the connection is closed
        if hexd in faults.get("truncate", {}):
            cut = int(faults["truncate"][hexd])
        drop = faults.get("drop_at", {}).get(hexd)
        if drop and n_req <= int(drop[1]):
            cut = int(drop[0])
        if cut is not None and start + len(body) > cut:
            body = body[: max(0, cut - start)]
            self.close_connection = True
        sent = 0
        try:
            for i in range(0, len(body), 65536):  # in pieces, so a reader sees progress
                self.wfile.write(body[i:i + 65536])
                sent += len(body[i:i + 65536])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stall test)
            self.close_connection = True
        self.finish_log(status, sent)

    # ---- uploads (push) ----

    def upload_file(self, uid):
        return os.path.join(self.reg.root, "uploads", uid)

    def do_POST(self):
        path = urlsplit(self.path).path
        m = UPLOADS_RE.match(path)
        if not m:
            return self.error(404, "NAME_UNKNOWN", "no such route")
        self.read_body()
        uid = uuid.uuid4().hex
        os.makedirs(os.path.join(self.reg.root, "uploads"), exist_ok=True)
        open(self.upload_file(uid), "wb").close()
        loc = f"/v2/{m.group(1)}/{m.group(2)}/blobs/uploads/{uid}"
        self.reply(202, b"", {"Location": loc, "Docker-Upload-UUID": uid, "Range": "0-0"})

    def do_PATCH(self):
        path = urlsplit(self.path).path
        m = UPLOAD_RE.match(path)
        if not m or not os.path.exists(self.upload_file(m.group(3))):
            return self.error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        body = self.read_body()
        with open(self.upload_file(m.group(3)), "ab") as f:
            f.write(body)
        size = os.path.getsize(self.upload_file(m.group(3)))
        self.reply(202, b"", {"Location": path, "Range": f"0-{max(0, size - 1)}"})

    def do_PUT(self):
        u = urlsplit(self.path)
        m = MANIFEST_RE.match(u.path)
        if m:
            body = self.read_body()
            d = os.path.join(self.reg.root, "manifests", m.group(1), m.group(2))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, m.group(3)), "wb") as f:
                f.write(body)
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            return self.reply(201, b"", {"Docker-Content-Digest": digest, "Location": u.path})
        m = UPLOAD_RE.match(u.path)
        if not m or not os.path.exists(self.upload_file(m.group(3))):
            return self.error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown")
        body = self.read_body()
        digest = parse_qs(u.query).get("digest", [""])[0]
        if not digest.startswith("sha256:") or not HEX.match(digest[7:]):
            return self.error(400, "DIGEST_INVALID", "bad digest parameter")
        tmp = self.upload_file(m.group(3))
        with open(tmp, "ab") as f:
            f.write(body)
        with open(tmp, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != digest[7:]:
            os.remove(tmp)
            return self.error(400, "DIGEST_INVALID", f"content hashes to sha256:{got}")
        os.makedirs(os.path.join(self.reg.root, "blobs"), exist_ok=True)
        os.replace(tmp, os.path.join(self.reg.root, "blobs", "sha256-" + got))
        self.reply(201, b"", {"Location": f"/v2/{m.group(1)}/{m.group(2)}/blobs/{digest}",
                              "Docker-Content-Digest": digest})


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that hung up on purpose (a refused or stalled download)
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--lifetime", type=float, default=120.0)
    args = ap.parse_args()

    server = Server(("127.0.0.1", 0), Handler)
    server.registry = Registry(args.root)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)

    def stop(*_):
        os._exit(0)  # immediate: the test is done with us

    signal.signal(signal.SIGTERM, stop)
    timer = threading.Timer(args.lifetime, stop)
    timer.daemon = True
    timer.start()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
