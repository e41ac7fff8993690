#!/usr/bin/env bash
# soak.sh: mlxrd under a long mixed client load (issue 11), watching for leaks and unintended 5xx.
#
#   bash bench/soak.sh [--minutes 20] [--clients 8] [--out DIR] [--model GGUF]
#   bash bench/soak.sh --minutes 1        # a smoke test of the whole pipeline
#
# What it does:
#   1. makes the project's default model (scripts/make_random_model.py with its default shape, then
#      `mlxr convert --type f16`, as scripts/setup.sh makes models/default.gguf) unless --model is
#      given, and a copy of it served as a second model, "burst";
#   2. starts build/bin/mlxrd (MLXR_BIN) serving both, on a port the kernel picks (--port 0, read
#      back from --port-file), with --max-queue 16 and --max-body 1 MiB (so the bad requests can
#      reach those limits cheaply);
#   3. warms it up with 20 s of the same load, lets it settle, and takes the idle snapshot;
#   4. runs bench/soak_load.mjs for --minutes with --clients workers: OpenAI and Ollama clients
#      (the official npm packages), streaming and not, cancellations, tool calls, embeddings, the
#      Responses and Anthropic routes, bad requests, and every 60 s a burst that overfills the
#      burst model's queue (see the top of soak_load.mjs for the mix and what counts as intended);
#      meanwhile bench/soak_stats.py samples mlxrd's RSS, open fds and threads (/proc/PID) and its
#      KV blocks in use (/metrics) every 10 s;
#   5. waits for the load to drain, takes the idle snapshot again, stops mlxrd with SIGTERM (it must
#      exit 0), and judges the run (bench/soak_stats.py report).
#
# Pass or fail (the full rules and their reasons are at the top of bench/soak_stats.py):
#   - RSS, fds, threads and KV blocks in use must not grow: the median of the load's last third may
#     exceed the middle third's by a tolerance at most (RSS max(8 MiB, 5%), fds and threads
#     max(4, 10%), KV max(8 blocks, 5% of the pool)); the first third is warm-up. Hard ceilings
#     on every sample (RSS 1 GiB, 1000 fds, 500 threads) catch what jumps instead of creeping;
#   - back to idle: after the load no KV block in use, nothing running, waiting or streaming, and
#     fds and threads within 2 of their idle level before the load;
#   - no unintended 5xx and no other unexpected outcome, as seen by the clients and as counted by
#     mlxrd's own /metrics. Intended: 503 server_busy (with Retry-After) for the bursts that
#     overfill the burst model's queue, 501 for Ollama's model-management routes (documented as not
#     implemented). Deliberately bad requests must get their documented 4xx.
#
# Output in --out (default /tmp/mlxr-soak-DATE): samples.csv (every 10 s), report.md (the curves as
# sparklines and a per-minute table, the outcome table and the verdict, ready for
# bench/RESULTS.md), load.json, metrics-before.txt / metrics-after.txt, mlxrd.log. Exit status 0
# when the soak passes, 1 when it fails, 2 on usage or setup errors.
#
# Every process started here has a time limit (timeout(1)) and is stopped on exit (trap). Needs
# node and the clients of scripts/fetch_test_deps.sh, Debian's python3 with numpy (model making).
# Not part of ctest: 20 minutes is beyond the CI budget.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MLXR_BIN:-$SRC/build/bin}
MINUTES=20
CLIENTS=8
OUT=""
MODEL=""
while [ $# -gt 0 ]; do
  case $1 in
  --minutes) MINUTES=$2; shift 2 ;;
  --clients) CLIENTS=$2; shift 2 ;;
  --out) OUT=$2; shift 2 ;;
  --model) MODEL=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
  *) echo "soak.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $MINUTES =~ ^[0-9]+$ && $MINUTES -ge 1 ]] || { echo "soak.sh: --minutes must be a whole number >= 1" >&2; exit 2; }
[[ $CLIENTS =~ ^[0-9]+$ && $CLIENTS -ge 1 && $CLIENTS -le 12 ]] || {
  echo "soak.sh: --clients must be 1..12 (the main model's queue of 16 plus 4 running must never fill)" >&2; exit 2; }
for f in "$BIN/mlxrd" "$BIN/mlxr"; do [ -x "$f" ] || { echo "soak.sh: $f not built (MLXR_BIN)" >&2; exit 2; }; done
command -v node >/dev/null || { echo "soak.sh: node not found" >&2; exit 2; }
[ -f "$SRC/tests/.cache/daemon-clients/node_modules/openai/package.json" ] ||
  { echo "soak.sh: the npm clients are missing: run scripts/fetch_test_deps.sh" >&2; exit 2; }

SECONDS_LOAD=$((MINUTES * 60))
WARMUP_S=20
MAX_QUEUE=16
MAX_RUNNING=4   # mlxrd's default on the CPU; the burst overfills running + queue by 8
MAX_BODY=1048576
DAEMON_LIMIT=$((SECONDS_LOAD + 900))  # mlxrd's own time limit, whatever happens here
HELPER_LIMIT=300                      # model making, snapshots, the report
PY="timeout $HELPER_LIMIT /usr/bin/python3"
OUT=${OUT:-/tmp/mlxr-soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
TMP=$(mktemp -d)
export MLXR_MODELS="$TMP/store" # mlxrd's model store: private, never the user's
DAEMON_TPID=""   # the timeout(1) running mlxrd (leads its own process group)
BG_PIDS=()       # sampler and load generator, each under timeout(1)

# shellcheck disable=SC2317 # (cleanup runs from the trap)
cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$DAEMON_TPID" ] && kill -0 "$DAEMON_TPID" 2>/dev/null; then
    kill "$DAEMON_TPID" 2>/dev/null || true
    sleep 1
    kill -9 -- "-$DAEMON_TPID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "soak.sh: $*" >&2; }

# ---- the models
if [ -z "$MODEL" ]; then
  log "making the default model (random weights, hidden 256, 4 layers, f16)"
  $PY "$SRC/scripts/make_random_model.py" --out "$TMP/default-hf" >/dev/null
  timeout "$HELPER_LIMIT" "$BIN/mlxr" convert "$TMP/default-hf" -o "$TMP/default.gguf" --type f16 >/dev/null
  MODEL=$TMP/default.gguf
fi
[ -f "$MODEL" ] || { echo "soak.sh: model $MODEL not found" >&2; exit 2; }
MAIN_ID=$(basename "$MODEL" .gguf)
[ "$MAIN_ID" != burst ] || { echo "soak.sh: the model may not be named burst.gguf" >&2; exit 2; }
cp "$MODEL" "$TMP/burst.gguf"

# ---- the daemon
timeout -k 10 "$DAEMON_LIMIT" "$BIN/mlxrd" --model "$MODEL" --model "$TMP/burst.gguf" --port 0 --port-file "$TMP/port" \
  --socket "$TMP/mlxr.sock" --max-queue "$MAX_QUEUE" --max-running "$MAX_RUNNING" --max-body "$MAX_BODY" \
  >"$OUT/mlxrd.out" 2>"$OUT/mlxrd.log" &
DAEMON_TPID=$!
for _ in $(seq 1 1200); do
  [ -s "$TMP/port" ] && break
  kill -0 "$DAEMON_TPID" 2>/dev/null || { cat "$OUT/mlxrd.log" >&2; echo "soak.sh: mlxrd exited early" >&2; exit 2; }
  sleep 0.1
done
[ -s "$TMP/port" ] || { echo "soak.sh: mlxrd wrote no port file in 120 s" >&2; exit 2; }
BASE="http://127.0.0.1:$(cat "$TMP/port")"
DPID=$(pgrep -P "$DAEMON_TPID" mlxrd | head -n1 || true)
[ -n "$DPID" ] || { echo "soak.sh: cannot find mlxrd's pid under timeout $DAEMON_TPID" >&2; exit 2; }
log "mlxrd $DPID on $BASE; output in $OUT"
metrics() { curl -sf --max-time 10 "$BASE/metrics"; }
gauge() { metrics | awk -v n="$1" '$1 ~ "^"n"([{]|$)" { s += $2 } END { print s + 0 }'; }
# Waits (at most 60 s) until nothing runs, waits or streams, then 3 s more for connection threads to end.
settle() {
  for _ in $(seq 1 120); do
    [ "$(gauge mlxr_requests_running)" = 0 ] && [ "$(gauge mlxr_requests_waiting)" = 0 ] &&
      [ "$(gauge mlxr_active_streams)" = 0 ] && break
    sleep 0.5
  done
  sleep 3
}
load() { # SECONDS OUTFILE; run it with & (exec: $! is then timeout's own pid, which cleanup can stop)
  exec timeout -k 10 $(($1 + 300)) node "$SRC/bench/soak_load.mjs" --base "$BASE" --model "$MAIN_ID" --burst-model burst \
    --seconds "$1" --clients "$CLIENTS" --burst $((MAX_RUNNING + MAX_QUEUE + 8)) --max-body "$MAX_BODY" --out "$2"
}

# ---- warm-up, then the idle level
log "warm-up: ${WARMUP_S} s of the same load"
load "$WARMUP_S" "$TMP/warmup.json" 2>/dev/null &
BG_PIDS+=($!)
wait $!
settle
T0=$(date +%s.%N)
$PY "$SRC/bench/soak_stats.py" snapshot --pid "$DPID" --base "$BASE" --csv "$OUT/samples.csv" --t0 "$T0" --phase idle-before
metrics >"$OUT/metrics-before.txt"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the soak
log "soak: $MINUTES min, $CLIENTS clients"
T0=$(date +%s.%N)
UNTIL=$(awk -v t="$T0" -v s="$SECONDS_LOAD" 'BEGIN { printf "%.3f", t + s }')
timeout -k 10 $((SECONDS_LOAD + 120)) /usr/bin/python3 "$SRC/bench/soak_stats.py" sample --pid "$DPID" --base "$BASE" \
  --csv "$OUT/samples.csv" --t0 "$T0" --until "$UNTIL" --interval 10 &
BG_PIDS+=($!)
SAMPLER=$!
load "$SECONDS_LOAD" "$OUT/load.json" &
BG_PIDS+=($!)
load_rc=0
wait $! || load_rc=$?
sampler_rc=0
wait "$SAMPLER" || sampler_rc=$?
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- back to idle, stop, judge
settle
$PY "$SRC/bench/soak_stats.py" snapshot --pid "$DPID" --base "$BASE" --csv "$OUT/samples.csv" --t0 "$T0" --phase idle-after
metrics >"$OUT/metrics-after.txt"
kill "$DAEMON_TPID"
daemon_rc=0
wait "$DAEMON_TPID" || daemon_rc=$?
DAEMON_TPID=""

{
  echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo);" \
    "load average $LOADAVG_START at the start, $LOADAVG_END at the end."
  echo "Commit: $(git -C "$SRC" rev-parse --short HEAD)$(git -C "$SRC" diff --quiet HEAD -- core daemon cli 2>/dev/null || echo ' (with uncommitted changes in core/daemon/cli)');" \
    "date: $(date -u +%Y-%m-%dT%H:%MZ); $MINUTES min, $CLIENTS clients, model $(basename "$MODEL") ($(du -h "$MODEL" | cut -f1))" \
    "and its copy 'burst'; mlxrd --max-queue $MAX_QUEUE --max-running $MAX_RUNNING --max-body $MAX_BODY."
  echo
} >"$OUT/header.md"
report_rc=0
$PY "$SRC/bench/soak_stats.py" report --csv "$OUT/samples.csv" --load "$OUT/load.json" \
  --metrics-before "$OUT/metrics-before.txt" --metrics-after "$OUT/metrics-after.txt" --out "$OUT/body.md" >/dev/null || report_rc=$?
{
  cat "$OUT/header.md" "$OUT/body.md"
  [ "$load_rc" = 0 ] || echo "- FAIL: the load generator exited $load_rc"
  [ "$sampler_rc" = 0 ] || echo "- FAIL: the sampler exited $sampler_rc (the daemon gone?)"
  [ "$daemon_rc" = 0 ] || echo "- FAIL: mlxrd exited $daemon_rc on SIGTERM (0 expected)"
} >"$OUT/report.md"
rm -f "$OUT/header.md" "$OUT/body.md"
cat "$OUT/report.md"
if [ "$report_rc" = 0 ] && [ "$load_rc" = 0 ] && [ "$sampler_rc" = 0 ] && [ "$daemon_rc" = 0 ]; then
  log "PASS ($OUT)"
  exit 0
fi
log "FAIL ($OUT)"
exit 1
