#!/usr/bin/env bash
# test_daemon_wire.sh: mlxrd's wire format and robustness with curl and raw sockets, against a live
# daemon with the tiny random-weight model, on the port the kernel gives it (--port 0; mlxrd reports
# it in --port-file and on stdout, checked below with --no-tcp and server.yaml's tcp: false):
#   SSE framing (data: lines, blank-line separated, [DONE] last, text/event-stream, chunked),
#   NDJSON framing, keep-alive reuse, HEAD, the Unix socket (mode 0600), CORS preflight and
#   disallowed origins, Host-header rejection (DNS rebinding), API keys (401 without, Bearer and
#   X-Api-Key accepted, /health open, non-loopback bind refused without a key), /metrics checked
#   by promtool (Debian's prometheus package; without it the exposition is checked structurally
#   and the test reports a skip: exit 77, a failure under MLXR_REQUIRE_ALL=1), and bad input:
#   malformed JSON, wrong types, huge numbers, negative counts, invalid UTF-8, oversized bodies
#   (declared and chunked, with and without Expect: 100-continue: the 413 every time, not a reset;
#   nothing read past twice the cap), slow and half-closed connections; after all of it the daemon
#   still answers. Every refusal is checked by its status and its body: the API's error shape
#   (OpenAI's error object, or Ollama's {"error": "..."}), its type, and a message naming what was
#   wrong (expect below).
set -uo pipefail
SRC=${MLXR_SRC:-$(pwd)}
BIN=${MLXR_BIN:-$SRC/build/bin}
# Every process started here has a time limit: daemons run under timeout(1) (DAEMON_LIMIT s: ctest's
# TIMEOUT), so none outlives the test; curl, python and the daemons expected to exit at once have
# their own (a hang is a failure, not a stuck test).
DAEMON_LIMIT=1200
PY="timeout 300 /usr/bin/python3"
curl() { command curl --max-time 120 "$@"; }
. "$SRC/tests/golden/suite.sh"
TMP=$(mktemp -d)
export MLXR_MODELS="$TMP/store" # every mlxrd here: a private model store, never the user's
PIDS=()
cleanup() { # PIDS are timeout(1)s: SIGTERM is passed on to mlxrd; SIGKILL goes to each one's process group
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -9 -- "-$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }
code() { curl -s -o "$TMP/body" -w '%{http_code}' "$@"; }
# body_is SHAPE WORD: $TMP/body is
#   oai:TYPE  OpenAI's error object {"error": {"message", "type": TYPE, "param", "code"}}, the
#             message naming WORD (case aside)
#   oll       Ollama's (and the other non-OpenAI routes') {"error": "..."} naming WORD
#   models    /v1/models: {"object": "list", "data": [{"id": WORD, "object": "model", ..}]}
#   tags      /api/tags: {"models": [{"name": WORD, "model": WORD, "size": >0, "details": {..}}]}
#   health    {"status": "ok"}
#   completion  a text_completion whose one choice has text (a string) and finish_reason WORD
body_is() {
  $PY - "$TMP/body" "$1" "$2" <<'EOF'
import json, sys
shape, word = sys.argv[2], sys.argv[3]
b = json.load(open(sys.argv[1]))
if shape.startswith("oai:"):
    e = b["error"]
    ok = (list(b) == ["error"] and {"message", "type", "param", "code"} <= set(e) and e["type"] == shape[4:]
          and isinstance(e["message"], str) and word.lower() in e["message"].lower())
elif shape == "oll":
    ok = list(b) == ["error"] and isinstance(b["error"], str) and word.lower() in b["error"].lower()
elif shape == "models":
    ok = b["object"] == "list" and [m["id"] for m in b["data"]] == [word] and b["data"][0]["object"] == "model"
elif shape == "tags":
    m = b["models"]
    ok = len(m) == 1 and m[0]["name"] == m[0]["model"] == word and m[0]["size"] > 0 and m[0]["details"]["format"] == "gguf"
elif shape == "health":
    ok = b == {"status": "ok"}
elif shape == "completion":
    c = b["choices"]
    ok = b["object"] == "text_completion" and len(c) == 1 and isinstance(c[0]["text"], str) and c[0]["finish_reason"] == word
else:
    ok = False
sys.exit(0 if ok else 1)
EOF
}
# expect NAME STATUS SHAPE WORD CURL_ARGS...: the status code, and a body of that shape (body_is)
expect() {
  local name=$1 want=$2 shape=$3 word=$4 got; shift 4
  got=$(code "$@")
  if [ "$got" = "$want" ] && body_is "$shape" "$word" 2>/dev/null; then ok; else
    bad "$name: status $got (want $want), body $(head -c 300 "$TMP/body") (want $shape naming '$word')"
  fi
}

$PY "$SRC/scripts/make_random_model.py" --out "$TMP/hf" --hidden 64 --intermediate 128 --layers 2 --heads 4 --kv-heads 2 >/dev/null
timeout 300 "$BIN/mlxr" convert "$TMP/hf" -o "$TMP/tiny.gguf" >/dev/null 2>&1 || { echo "convert failed"; echo "0 passed, 1 failed"; exit 1; }

# start NAME [args...] -> sets DPID (a timeout(1) around mlxrd) and DPORT, the port mlxrd bound
# (--port 0, read from its --port-file, which appears, whole, once it listens); log in $TMP/NAME.log
start() {
  local name=$1; shift
  timeout -k 10 "$DAEMON_LIMIT" "$BIN/mlxrd" --model "$TMP/tiny.gguf" --threads 2 --port 0 \
    --port-file "$TMP/$name.port" "$@" >"$TMP/$name.log" 2>&1 &
  DPID=$!
  PIDS+=("$DPID")
  for _ in $(seq 1200); do # 60 s: a sanitizer build starts slowly
    if [ -s "$TMP/$name.port" ]; then DPORT=$(cat "$TMP/$name.port"); return 0; fi
    kill -0 "$DPID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

SOCK=$TMP/mlxr.sock
start main --socket "$SOCK" --max-body 65536 --ctx 256 || { cat "$TMP"/*.log; echo "0 passed, 1 failed"; exit 1; }
PORT=$DPORT
MAIN=$DPID
B=http://127.0.0.1:$PORT
J='Content-Type: application/json'

# ---- SSE framing
curl -s -D "$TMP/h" -o "$TMP/sse" -N "$B/v1/chat/completions" -H "$J" \
  -d '{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0,"stream":true}'
check "sse content-type" grep -qi '^content-type: text/event-stream' "$TMP/h"
check "sse chunked" grep -qi '^transfer-encoding: chunked' "$TMP/h"
check "sse framing" $PY - "$TMP/sse" <<'EOF'
import json, sys
raw = open(sys.argv[1], "rb").read().decode()
assert raw.endswith("data: [DONE]\n\n"), repr(raw[-40:])
events = raw.split("\n\n")
assert events[-1] == ""
events = events[:-1]
assert all(e.startswith("data: ") and "\n" not in e for e in events), events
objs = [json.loads(e[6:]) for e in events[:-1]]
assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
assert objs[-1]["choices"][0]["finish_reason"] == "length"
assert sum(1 for o in objs for c in o["choices"] if c["finish_reason"]) == 1
assert not any(l.startswith("event:") for l in raw.splitlines())
EOF

# ---- NDJSON framing
curl -s -D "$TMP/h2" -o "$TMP/nd" "$B/api/generate" -H "$J" -d '{"model":"tiny","prompt":"hi","options":{"num_predict":4,"temperature":0}}'
check "ndjson content-type" grep -qi '^content-type: application/x-ndjson' "$TMP/h2"
check "ndjson framing" $PY - "$TMP/nd" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "ends with a newline"
objs = [json.loads(l) for l in lines[:-1]]
assert [o["done"] for o in objs] == [False] * (len(objs) - 1) + [True]
f = objs[-1]
assert f["done_reason"] == "length" and f["eval_count"] == 4
for k in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_duration"):
    assert isinstance(f[k], int), k
EOF
check "stream false is one object" $PY -c "import json,sys; o=json.loads(sys.stdin.read()); assert o['done']" \
  < <(curl -s "$B/api/chat" -H "$J" -d '{"model":"tiny","stream":false,"messages":[{"role":"user","content":"x"}],"options":{"num_predict":2}}')

# ---- keep-alive, HEAD
curl -sv "$B/api/version" "$B/api/tags" -o /dev/null -o /dev/null 2>"$TMP/kv"
check "keep-alive reuse" grep -qiE 're-?using existing connection' "$TMP/kv"
check "HEAD /" test "$(curl -s -I -o /dev/null -w '%{http_code}' "$B/")" = 200
check "HEAD no body" test "$(curl -s -I "$B/api/tags" | grep -ci 'content-type: application/json')" = 1
check "GET / text" test "$(curl -s "$B/")" = "Ollama is running"

# ---- Unix socket
check "socket mode 0600" test "$(stat -c %a "$SOCK")" = 600
check "unix socket serves" $PY -c "import json,sys; assert json.load(sys.stdin)['object']=='list'" \
  < <(curl -s --unix-socket "$SOCK" http://localhost/v1/models)
check "unix socket streams" grep -q 'data: \[DONE\]' <(curl -s --unix-socket "$SOCK" http://localhost/v1/completions -H "$J" \
  -d '{"model":"tiny","prompt":"a","max_tokens":2,"stream":true}')

# ---- CORS
curl -s -D "$TMP/pf" -o /dev/null -X OPTIONS "$B/v1/chat/completions" -H 'Origin: http://localhost:3000' \
  -H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type,authorization'
check "preflight 204" grep -q '^HTTP/1.1 204' "$TMP/pf"
check "preflight allow-origin" grep -qi '^access-control-allow-origin: http://localhost:3000' "$TMP/pf"
check "preflight allow-headers" grep -qi '^access-control-allow-headers: content-type,authorization' "$TMP/pf"
check "allowed origin echoed" grep -qi 'access-control-allow-origin: app://obsidian.md' <(curl -s -D - -o /dev/null "$B/api/tags" -H 'Origin: app://obsidian.md')
expect "disallowed origin 403" 403 oll "origin 'https://evil.example' is not allowed" "$B/api/tags" -H 'Origin: https://evil.example'

# ---- Host header (DNS rebinding)
expect "evil Host 403" 403 oll "host 'evil.example' is not allowed" "$B/api/tags" -H 'Host: evil.example'
expect "evil Host:port 403" 403 oai:permission_error "host 'attacker.com:$PORT' is not allowed" "$B/v1/models" -H "Host: attacker.com:$PORT"
expect "localhost Host ok" 200 tags tiny:latest "$B/api/tags" -H "Host: localhost:$PORT"
expect "[::1] Host ok" 200 tags tiny:latest "$B/api/tags" -H "Host: [::1]:$PORT"

# ---- bad input: each answered with the right status, in the route's error format
C=$B/v1/chat/completions
expect "malformed json 400" 400 oai:invalid_request_error "malformed JSON" "$C" -H "$J" -d '{"model":"tiny","messages":['
expect "trailing garbage 400" 400 oai:invalid_request_error "malformed JSON" "$C" -H "$J" -d '{"model":"tiny","messages":[]} x'
expect "non-object body 400" 400 oai:invalid_request_error "must be a JSON object" "$C" -H "$J" -d '[1,2]'
expect "empty body 400" 400 oai:invalid_request_error "body is empty" -X POST "$C"
expect "model wrong type 400" 400 oai:invalid_request_error "'model' must be a string" "$C" -H "$J" -d '{"model":5,"messages":[{"role":"user","content":"x"}]}'
expect "messages wrong type 400" 400 oai:invalid_request_error "'messages'" "$C" -H "$J" -d '{"model":"tiny","messages":"hi"}'
expect "content wrong type 400" 400 oai:invalid_request_error "content must be" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":5}]}'
expect "huge max_tokens 400" 400 oai:invalid_request_error "'max_tokens'" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":1e308}'
expect "inf temperature 400" 400 oai:invalid_request_error "'temperature'" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":1e999}'
expect "fractional n 400" 400 oai:invalid_request_error "'n' must be an integer" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"n":1.5}'
expect "negative n 400" 400 oai:invalid_request_error "'n' must be between" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"n":-3}'
expect "huge n 400" 400 oai:invalid_request_error "'n' must be between" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"n":100000000000}'
expect "negative top_logprobs 400" 400 oai:invalid_request_error "'top_logprobs'" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":-1}'
expect "bad logit_bias 400" 400 oai:invalid_request_error "'logit_bias'" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"logit_bias":{"abc":1}}'
expect "too many stops 400" 400 oai:invalid_request_error "'stop' may hold at most 4" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}'
printf '{"model":"tiny","messages":[{"role":"user","content":"\xff\xfe bad"}]}' >"$TMP/bad_utf8"
expect "invalid utf-8 400" 400 oai:invalid_request_error "not valid UTF-8" "$C" -H "$J" --data-binary @"$TMP/bad_utf8"
printf '{"model":"tiny","messages":[{"role":"user","content":"\xed\xa0\x80"}]}' >"$TMP/surrogate"
expect "utf-8 surrogate 400" 400 oai:invalid_request_error "not valid UTF-8" "$C" -H "$J" --data-binary @"$TMP/surrogate"
expect "lone surrogate escape 400" 400 oai:invalid_request_error "JSON" "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"\ud800 x"}],"max_tokens":1}'
head -c 100000 /dev/zero | tr '\0' 'a' | sed 's/^/{"model":"tiny","prompt":"/; s/$/"}/' >"$TMP/big"
expect "oversized body 413" 413 oai:invalid_request_error "larger than 65536 bytes" "$B/v1/completions" -H "$J" --data-binary @"$TMP/big"
expect "oversized chunked body 413" 413 oai:invalid_request_error "larger than 65536 bytes" "$B/v1/completions" -H "$J" -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big"
# A client that does not send Expect: 100-continue sends the body right behind the headers; the
# daemon reads it (up to twice --max-body) and drops it before the 413, so the client sees the 413,
# not EPIPE or a reset from a connection closed under its upload (the soak saw 18% of them). Sent
# 50 times at once and 50 times as headers, a pause and then the body (which lost the 413 nearly
# every time when the daemon answered on the headers); every one must get the 413 and its error
# object, and the connection, its body read to the end, must stay open and serve a GET /health.
check "oversized body without Expect: 413 every time" $PY - "$PORT" "$TMP/big" <<'EOF'
import http.client, json, sys, time
port, body = int(sys.argv[1]), open(sys.argv[2], "rb").read()
assert 65536 < len(body) <= 2 * 65536
seen = {}
for i in range(100):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        if i % 2 == 0:
            c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        else:
            c.putrequest("POST", "/v1/completions")
            c.putheader("Content-Type", "application/json")
            c.putheader("Content-Length", str(len(body)))
            c.endheaders()
            time.sleep(0.01)
            for j in range(0, len(body), 16384):
                c.send(body[j:j + 16384])
        r = c.getresponse()
        e = json.loads(r.read())["error"]
        if r.status != 413 or e["type"] != "invalid_request_error" or "larger than 65536 bytes" not in e["message"]:
            outcome = "wrong answer %d %r" % (r.status, e)
        elif r.will_close:
            outcome = "413, connection closed"
        else:
            c.auto_open = 0  # no quiet reconnect: /health must come on this connection
            c.request("GET", "/health")
            h = c.getresponse()
            ok = h.status == 200 and json.loads(h.read()) == {"status": "ok"}
            outcome = "413, then /health on the same connection" if ok else "413, then /health: %d" % h.status
    except Exception as ex:
        outcome = type(ex).__name__
    seen[outcome] = seen.get(outcome, 0) + 1
    c.close()
print("oversized body without Expect, 100 tries:", seen)
sys.exit(0 if list(seen) == ["413, then /health on the same connection"] else 1)
EOF
# curl sends Expect: 100-continue for bodies over 1 KiB (7.x; here it is asked for): it waits for
# the go-ahead, so the 413 comes on the headers, before any of the body is uploaded
expect "oversized body with Expect: 100-continue 413" 413 oai:invalid_request_error "larger than 65536 bytes" \
  "$B/v1/completions" -H "$J" -H 'Expect: 100-continue' --data-binary @"$TMP/big"
check "Expect: 100-continue: nothing uploaded" test "$(curl -s -o /dev/null -w '%{http_code} %{size_upload}' \
  "$B/v1/completions" -H "$J" -H 'Expect: 100-continue' --data-binary @"$TMP/big")" = "413 0"
# Past twice --max-body nothing more is read: a declared 64 MiB body gets its 413 on the headers
# (the client here sends none of it), and a chunked one is cut off (the connection closed before
# the client could send it all)
check "declared body past the drain cap: 413 on the headers" $PY - "$PORT" <<'EOF'
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.putrequest("POST", "/v1/completions")
c.putheader("Content-Type", "application/json")
c.putheader("Content-Length", str(64 << 20))
c.endheaders()
r = c.getresponse()
sys.exit(0 if r.status == 413 and "larger than 65536 bytes" in json.loads(r.read())["error"]["message"] else 1)
EOF
check "chunked body past the drain cap: cut off" $PY - "$PORT" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(30)
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n")
chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
try:
    for _ in range(1024):  # 64 MiB: far more than the socket buffers hold
        s.sendall(chunk)
except (BrokenPipeError, ConnectionResetError):
    sys.exit(0)
sys.exit(1)
EOF
expect "ollama malformed 400" 400 oll "malformed JSON" "$B/api/generate" -H "$J" -d '{"model":'
expect "ollama missing model 400" 400 oll "model is required" "$B/api/chat" -H "$J" -d '{"messages":[]}'
expect "ollama negative num_predict -5 400" 400 oll "'num_predict'" "$B/api/generate" -H "$J" -d '{"model":"tiny","prompt":"x","options":{"num_predict":-5}}'
expect "ollama bad keep_alive 400" 400 oll "'keep_alive'" "$B/api/generate" -H "$J" -d '{"model":"tiny","prompt":"","keep_alive":"soon"}'
expect "unknown route 404" 404 oll "no route for GET /v2/nothing" "$B/v2/nothing"
expect "wrong method 405" 405 oai:invalid_request_error "POST" "$B/v1/chat/completions"
expect "context overflow 400" 400 oai:invalid_request_error "exceeds the available context size" "$B/v1/completions" -H "$J" -d "{\"model\":\"tiny\",\"prompt\":\"$(printf 'word %.0s' $(seq 400))\"}"
check "overflow counts" $PY -c "import json; e=json.load(open('$TMP/body'))['error']; assert e['n_ctx']==256 and e['n_prompt_tokens']>256"
check "blobs digest 400" test "$(code -I --path-as-is "$B/api/blobs/sha256:../../etc/passwd")" = 400
expect "blobs body" 400 oll "invalid digest" --path-as-is -X POST --data-binary x "$B/api/blobs/sha256:../../etc/passwd"

# ---- slow, half-closed and abandoned connections
check "slow + half-closed + abandoned" $PY - "$PORT" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10); return s
# slowloris: headers never finished, kept open
slow = conn(); slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Le")
# half-closed after a partial body: the daemon must not hang on it or crash
h = conn(); h.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
h.shutdown(socket.SHUT_WR)
h.recv(4096)  # answer or close, either way no hang
# a full request whose client leaves at once (abandoned stream)
a = conn(); body = b'{"model":"tiny","prompt":"x","max_tokens":500,"stream":true}'
a.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
a.close()
# garbage request line
g = conn(); g.settimeout(2); g.sendall(b"\x00\x01\x02 nonsense\r\n\r\n")
try: g.recv(4096)  # an error status or silence are both fine; a hang of others is not
except socket.timeout: pass
g.close()
# meanwhile others are served
f = conn(); f.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
assert b"200" in f.recv(4096).split(b"\r\n")[0]
slow.close(); h.close()
EOF
CURLS=()
for i in 1 2 3; do curl -s -o /dev/null -m 5 "$B/v1/completions" -H "$J" -d '{"model":"tiny","prompt":"x","max_tokens":300,"stream":true}' & CURLS+=("$!"); done
sleep 0.3
kill "${CURLS[@]}" 2>/dev/null
wait "${CURLS[@]}" 2>/dev/null
expect "still serving after abuse" 200 completion length "$B/v1/completions" -H "$J" -d '{"model":"tiny","prompt":"x","max_tokens":2}'
check "daemon alive" kill -0 "$MAIN"

# ---- /metrics
curl -s "$B/metrics" >"$TMP/metrics"
check "metrics requests" grep -q '^mlxr_http_requests_total{route="/v1/chat/completions",method="POST",status="400"} [1-9]' "$TMP/metrics"
check "metrics ttft histogram" grep -q '^mlxr_time_to_first_token_seconds_bucket{le="+Inf"} [1-9]' "$TMP/metrics"
check "metrics kv" grep -q '^mlxr_kv_blocks{model="tiny"} [1-9]' "$TMP/metrics"
check "metrics tokens" grep -q '^mlxr_generated_tokens_total [1-9]' "$TMP/metrics"
if command -v promtool >/dev/null 2>&1; then
  check "promtool check metrics" timeout 60 promtool check metrics <"$TMP/metrics"
else
  suite_missing "promtool not installed (apt prometheus; scripts/setup.sh): /metrics checked structurally only"
  check "exposition structure" $PY - "$TMP/metrics" <<'EOF'
import re, sys
typed = set()
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "): typed.add(line.split()[2]); continue
    if line.startswith("#") or not line: continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$', line)
    assert m, line
    base = re.sub(r'_(bucket|sum|count)$', '', m.group(1))
    assert m.group(1) in typed or base in typed, line
EOF
fi

# ---- API keys
start keyed --socket "$TMP/k.sock" --api-key sekrit || bad "keyed daemon start"
P2=$DPORT
B2=http://127.0.0.1:$P2
expect "401 without key" 401 oai:authentication_error "valid API key is required" "$B2/v1/models"
expect "401 ollama route" 401 oll "valid API key is required" "$B2/api/tags"
expect "401 wrong key" 401 oai:authentication_error "valid API key is required" "$B2/v1/models" -H 'Authorization: Bearer nope'
expect "Bearer ok" 200 models tiny "$B2/v1/models" -H 'Authorization: Bearer sekrit'
expect "X-Api-Key ok" 200 tags tiny:latest "$B2/api/tags" -H 'X-Api-Key: sekrit'
expect "/health open" 200 health "" "$B2/health"
expect "/metrics needs key" 401 oll "valid API key is required" "$B2/metrics"
expect "unix socket needs key too" 401 oai:authentication_error "valid API key is required" --unix-socket "$TMP/k.sock" http://localhost/v1/models
timeout 60 "$BIN/mlxrd" --model "$TMP/tiny.gguf" --host 0.0.0.0 --port 0 --no-socket >"$TMP/open.log" 2>&1
check "non-loopback without key refused" test $? = 2
check "refusal explains" grep -q 'API key' "$TMP/open.log"
timeout 60 "$BIN/mlxrd" --model "$TMP/nope.gguf" --port 0 --no-socket >/dev/null 2>&1
rc=$?
check "missing model exits nonzero (not by the time limit)" test "$rc" -ne 0 -a "$rc" -ne 124

# ---- config file + env layers (server.yaml's port 1 loses to MLXR_PORT=0: the kernel's pick)
cat >"$TMP/server.yaml" <<EOF
host: 127.0.0.1
port: 1
socket: ""
api_keys: [fromyaml]
limits: {max_body_bytes: 4096}
EOF
MLXR_PORT=0 timeout -k 10 "$DAEMON_LIMIT" "$BIN/mlxrd" --config "$TMP/server.yaml" --model "$TMP/tiny.gguf" \
  --port-file "$TMP/cfg.port" >"$TMP/cfg.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1200); do [ -s "$TMP/cfg.port" ] && break; sleep 0.05; done
P3=$(cat "$TMP/cfg.port" 2>/dev/null)
check "env port 0 beats server.yaml's port 1 ($P3)" test -n "$P3" -a "$P3" != 1
expect "yaml key + env port" 200 models tiny "http://127.0.0.1:$P3/v1/models" -H 'X-Api-Key: fromyaml'
expect "yaml limit" 413 oai:invalid_request_error "larger than 4096 bytes" "http://127.0.0.1:$P3/v1/completions" -H 'X-Api-Key: fromyaml' -H "$J" --data-binary @"$TMP/big"
printf 'port: [oops\n' >"$TMP/broken.yaml"
timeout 60 "$BIN/mlxrd" --config "$TMP/broken.yaml" --model "$TMP/tiny.gguf" >/dev/null 2>&1
check "broken yaml exit 2" test $? = 2
printf 'prot: 1\n' >"$TMP/typo.yaml"
timeout 60 "$BIN/mlxrd" --config "$TMP/typo.yaml" --model "$TMP/tiny.gguf" >/dev/null 2>&1
check "unknown yaml key exit 2" test $? = 2

# ---- the port report, and no TCP at all (--no-tcp; server.yaml tcp: false)
check "stdout names the port bound" grep -qx "mlxrd: listening on 127.0.0.1:$PORT" "$TMP/main.log"
check "the port file holds it" test "$(cat "$TMP/main.port")" = "$PORT"
printf 'tcp: false\nsocket: %s\n' "$TMP/y.sock" >"$TMP/notcp.yaml"
timeout -k 10 "$DAEMON_LIMIT" "$BIN/mlxrd" --model "$TMP/tiny.gguf" --threads 2 --no-tcp --socket "$TMP/n.sock" \
  >"$TMP/notcp.log" 2>&1 &
PIDS+=("$!")
timeout -k 10 "$DAEMON_LIMIT" "$BIN/mlxrd" --model "$TMP/tiny.gguf" --threads 2 --config "$TMP/notcp.yaml" \
  >"$TMP/notcp-yaml.log" 2>&1 &
PIDS+=("$!")
for s in n y; do
  for _ in $(seq 1200); do curl -s -o /dev/null --unix-socket "$TMP/$s.sock" http://localhost/health && break; sleep 0.05; done
done
expect "--no-tcp: the socket answers" 200 health "" --unix-socket "$TMP/n.sock" http://localhost/health
expect "tcp: false: the socket answers" 200 health "" --unix-socket "$TMP/y.sock" http://localhost/health
for l in notcp notcp-yaml; do
  if grep -q '127\.0\.0\.1' "$TMP/$l.log" || ! grep -q "listening on unix:" "$TMP/$l.log"; then
    bad "$l: listens on the socket only: $(cat "$TMP/$l.log")"
  else ok; fi
done
timeout 60 "$BIN/mlxrd" --model "$TMP/tiny.gguf" --no-tcp --port-file "$TMP/x.port" --no-socket >"$TMP/pf.log" 2>&1
check "--port-file without TCP: exit 2" test $? = 2

# ---- clean shutdown removes the socket
kill -TERM "$MAIN"
for _ in $(seq 100); do kill -0 "$MAIN" 2>/dev/null || break; sleep 0.05; done
wait "$MAIN"
check "SIGTERM exit 0" test $? = 0
check "socket removed" test ! -e "$SOCK"

echo "$pass passed, $fail failed"
[ "$pass" -gt 0 ] || fail=1
suite_exit "$fail"
