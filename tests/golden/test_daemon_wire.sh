#!/usr/bin/env bash
# test_daemon_wire.sh: mlxrd's wire format and robustness with curl and raw sockets, against a live
# daemon on a free port with the tiny random-weight model:
#   SSE framing (data: lines, blank-line separated, [DONE] last, text/event-stream, chunked),
#   NDJSON framing, keep-alive reuse, HEAD, the Unix socket (mode 0600), CORS preflight and
#   disallowed origins, Host-header rejection (DNS rebinding), API keys (401 without, Bearer and
#   X-Api-Key accepted, /health open, non-loopback bind refused without a key), /metrics checked
#   by promtool when it is installed, and bad input: malformed JSON, wrong types, huge numbers,
#   negative counts, invalid UTF-8, oversized bodies, slow and half-closed connections; after all
#   of it the daemon still answers.
set -uo pipefail
SRC=${MLXR_SRC:-$(pwd)}
BIN=${MLXR_BIN:-$SRC/build/bin}
PY=/usr/bin/python3
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.2
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

$PY "$SRC/scripts/make_random_model.py" --out "$TMP/hf" --hidden 64 --intermediate 128 --layers 2 --heads 4 --kv-heads 2 >/dev/null
"$BIN/mlxr" convert "$TMP/hf" -o "$TMP/tiny.gguf" >/dev/null 2>&1 || { echo "convert failed"; echo "0 passed, 1 failed"; exit 1; }

start() { # start PORT SOCK [args...] -> sets DPID
  local port=$1 sock=$2; shift 2
  "$BIN/mlxrd" --model "$TMP/tiny.gguf" --port "$port" --socket "$sock" --threads 2 "$@" >"$TMP/d$port.log" 2>&1 &
  DPID=$!
  PIDS+=("$DPID")
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/health" && return 0
    kill -0 "$DPID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

PORT=$(free_port)
SOCK=$TMP/mlxr.sock
start "$PORT" "$SOCK" --max-body 65536 --ctx 256 || { cat "$TMP"/d*.log; echo "0 passed, 1 failed"; exit 1; }
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
check "disallowed origin 403" test "$(curl -s -o /dev/null -w '%{http_code}' "$B/api/tags" -H 'Origin: https://evil.example')" = 403

# ---- Host header (DNS rebinding)
check "evil Host 403" test "$(curl -s -o /dev/null -w '%{http_code}' "$B/api/tags" -H 'Host: evil.example')" = 403
check "evil Host:port 403" test "$(curl -s -o /dev/null -w '%{http_code}' "$B/v1/models" -H "Host: attacker.com:$PORT")" = 403
check "localhost Host ok" test "$(curl -s -o /dev/null -w '%{http_code}' "$B/api/tags" -H "Host: localhost:$PORT")" = 200
check "[::1] Host ok" test "$(curl -s -o /dev/null -w '%{http_code}' "$B/api/tags" -H "Host: [::1]:$PORT")" = 200

# ---- bad input: each answered with the right status, in the route's error format
code() { curl -s -o "$TMP/body" -w '%{http_code}' "$@"; }
oai_err() { $PY -c "import json; e=json.load(open('$TMP/body'))['error']; assert isinstance(e['message'], str) and e['type']" 2>/dev/null; }
oll_err() { $PY -c "import json; e=json.load(open('$TMP/body')); assert isinstance(e['error'], str)" 2>/dev/null; }
C=$B/v1/chat/completions
check "malformed json 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[')" = 400
check "malformed json openai shape" oai_err
check "trailing garbage 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[]} x')" = 400
check "non-object body 400" test "$(code "$C" -H "$J" -d '[1,2]')" = 400
check "empty body 400" test "$(code -X POST "$C")" = 400
check "model wrong type 400" test "$(code "$C" -H "$J" -d '{"model":5,"messages":[{"role":"user","content":"x"}]}')" = 400
check "messages wrong type 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":"hi"}')" = 400
check "content wrong type 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":5}]}')" = 400
check "huge max_tokens 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":1e308}')" = 400
check "inf temperature 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":1e999}')" = 400
check "fractional n 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"n":1.5}')" = 400
check "negative n 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"n":-3}')" = 400
check "huge n 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"n":100000000000}')" = 400
check "negative top_logprobs 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":-1}')" = 400
check "bad logit_bias 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"logit_bias":{"abc":1}}')" = 400
check "too many stops 400" test "$(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}')" = 400
printf '{"model":"tiny","messages":[{"role":"user","content":"\xff\xfe bad"}]}' >"$TMP/bad_utf8"
check "invalid utf-8 400" test "$(code "$C" -H "$J" --data-binary @"$TMP/bad_utf8")" = 400
printf '{"model":"tiny","messages":[{"role":"user","content":"\xed\xa0\x80"}]}' >"$TMP/surrogate"
check "utf-8 surrogate 400" test "$(code "$C" -H "$J" --data-binary @"$TMP/surrogate")" = 400
check "lone surrogate escape answered" grep -qE '^(200|400)$' <(code "$C" -H "$J" -d '{"model":"tiny","messages":[{"role":"user","content":"\ud800 x"}],"max_tokens":1}')
head -c 100000 /dev/zero | tr '\0' 'a' | sed 's/^/{"model":"tiny","prompt":"/; s/$/"}/' >"$TMP/big"
check "oversized body 413" test "$(code "$B/v1/completions" -H "$J" --data-binary @"$TMP/big")" = 413
check "oversized chunked body 413" test "$(code "$B/v1/completions" -H "$J" -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big")" = 413
check "ollama malformed 400" test "$(code "$B/api/generate" -H "$J" -d '{"model":')" = 400
check "ollama error shape" oll_err
check "ollama missing model 400" test "$(code "$B/api/chat" -H "$J" -d '{"messages":[]}')" = 400
check "ollama negative num_predict -5 400" test "$(code "$B/api/generate" -H "$J" -d '{"model":"tiny","prompt":"x","options":{"num_predict":-5}}')" = 400
check "ollama bad keep_alive 400" test "$(code "$B/api/generate" -H "$J" -d '{"model":"tiny","prompt":"","keep_alive":"soon"}')" = 400
check "unknown route 404" test "$(code "$B/v2/nothing")" = 404
check "wrong method 405" test "$(code "$B/v1/chat/completions")" = 405
check "context overflow 400" test "$(code "$B/v1/completions" -H "$J" -d "{\"model\":\"tiny\",\"prompt\":\"$(printf 'word %.0s' $(seq 400))\"}")" = 400
check "overflow counts" $PY -c "import json; e=json.load(open('$TMP/body'))['error']; assert e['n_ctx']==256 and e['n_prompt_tokens']>256"
check "blobs digest 501" test "$(code -I --path-as-is "$B/api/blobs/sha256:../../etc/passwd")" = 501

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
check "still serving after abuse" test "$(code "$B/v1/completions" -H "$J" -d '{"model":"tiny","prompt":"x","max_tokens":2}')" = 200
check "daemon alive" kill -0 "$MAIN"

# ---- /metrics
curl -s "$B/metrics" >"$TMP/metrics"
check "metrics requests" grep -q '^mlxr_http_requests_total{route="/v1/chat/completions",method="POST",status="400"} [1-9]' "$TMP/metrics"
check "metrics ttft histogram" grep -q '^mlxr_time_to_first_token_seconds_bucket{le="+Inf"} [1-9]' "$TMP/metrics"
check "metrics kv" grep -q '^mlxr_kv_blocks{model="tiny"} [1-9]' "$TMP/metrics"
check "metrics tokens" grep -q '^mlxr_generated_tokens_total [1-9]' "$TMP/metrics"
if command -v promtool >/dev/null 2>&1; then
  check "promtool check metrics" promtool check metrics <"$TMP/metrics"
else
  echo "note: promtool not installed (apt prometheus); exposition checked structurally only"
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
P2=$(free_port)
start "$P2" "$TMP/k.sock" --api-key sekrit || bad "keyed daemon start"
B2=http://127.0.0.1:$P2
check "401 without key" test "$(code "$B2/v1/models")" = 401
check "401 openai shape" oai_err
check "401 ollama route" test "$(code "$B2/api/tags")" = 401
check "401 wrong key" test "$(code "$B2/v1/models" -H 'Authorization: Bearer nope')" = 401
check "Bearer ok" test "$(code "$B2/v1/models" -H 'Authorization: Bearer sekrit')" = 200
check "X-Api-Key ok" test "$(code "$B2/api/tags" -H 'X-Api-Key: sekrit')" = 200
check "/health open" test "$(code "$B2/health")" = 200
check "/metrics needs key" test "$(code "$B2/metrics")" = 401
check "unix socket needs key too" test "$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$TMP/k.sock" http://localhost/v1/models)" = 401
"$BIN/mlxrd" --model "$TMP/tiny.gguf" --host 0.0.0.0 --port "$(free_port)" --no-socket >"$TMP/open.log" 2>&1
check "non-loopback without key refused" test $? = 2
check "refusal explains" grep -q 'API key' "$TMP/open.log"
"$BIN/mlxrd" --model "$TMP/nope.gguf" --port "$(free_port)" --no-socket >/dev/null 2>&1
check "missing model exits nonzero" test $? -ne 0

# ---- config file + env layers
P3=$(free_port)
cat >"$TMP/server.yaml" <<EOF
host: 127.0.0.1
port: 1
socket: ""
api_keys: [fromyaml]
limits: {max_body_bytes: 4096}
EOF
MLXR_PORT=$P3 "$BIN/mlxrd" --config "$TMP/server.yaml" --model "$TMP/tiny.gguf" >"$TMP/cfg.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$P3/health" && break; sleep 0.05; done
check "yaml key + env port" test "$(code "http://127.0.0.1:$P3/v1/models" -H 'X-Api-Key: fromyaml')" = 200
check "yaml limit" test "$(code "http://127.0.0.1:$P3/v1/completions" -H 'X-Api-Key: fromyaml' -H "$J" --data-binary @"$TMP/big")" = 413
printf 'port: [oops\n' >"$TMP/broken.yaml"
"$BIN/mlxrd" --config "$TMP/broken.yaml" --model "$TMP/tiny.gguf" >/dev/null 2>&1
check "broken yaml exit 2" test $? = 2
printf 'prot: 1\n' >"$TMP/typo.yaml"
"$BIN/mlxrd" --config "$TMP/typo.yaml" --model "$TMP/tiny.gguf" >/dev/null 2>&1
check "unknown yaml key exit 2" test $? = 2

# ---- clean shutdown removes the socket
kill -TERM "$MAIN"
for _ in $(seq 100); do kill -0 "$MAIN" 2>/dev/null || break; sleep 0.05; done
wait "$MAIN"
check "SIGTERM exit 0" test $? = 0
check "socket removed" test ! -e "$SOCK"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
