#!/usr/bin/env bash
# test_device_fallback.sh: choosing a device, and what happens when the GPU asked for cannot run
# the model. On a machine without a usable GPU (CI: no GPU and no driver, whether or not the build
# has the CUDA backend):
#   - `mlxr run --device cuda` says why on stderr ("cuda:0: ...; running on the CPU": no driver,
#     no GPU, or no CUDA backend in this build) and generates exactly the ids `--device cpu` does;
#   - `mlxr bench --device cuda --json` reports the device it ran on: the CPU;
#   - `mlxr logits --device cuda` writes the same logits as `--device cpu`, bit for bit;
#   - mlxrd --device cuda logs the same note, runs on the CPU and answers a completion;
#   - MLXR_DEVICE=cuda in mlxrd's environment does the same; server.yaml `device: cuda` too;
#   - bad device names are refused with a message naming the accepted forms (exit 2 / startup error).
# On a machine where a GPU answers (tests/gpu/run.sh runs this there too) the runs must report the
# GPU instead, and the generated ids must still equal the CPU's for this f32 model.
set -uo pipefail
SRC=${MLXR_SRC:-$(pwd)}
BIN=${MLXR_BIN:-$SRC/build/bin}
PY=/usr/bin/python3 # Debian's, with numpy (scripts/setup.sh); else whichever python3 has numpy
"$PY" -c "import numpy" 2>/dev/null || PY=python3
TMP=$(mktemp -d)
export MLXR_MODELS="$TMP/store" # mlxrd's model store: private, never the user's
DPID=""
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
pass=0
fail=0
check() {
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "PASS $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}

"$PY" "$SRC/scripts/make_random_model.py" --out "$TMP/hf" --hidden 64 --intermediate 128 --layers 2 --heads 4 --kv-heads 2 >/dev/null
"$BIN/mlxr" convert "$TMP/hf" -o "$TMP/tiny.gguf" --type f32 >/dev/null 2>&1 || { echo "convert failed"; echo "0 passed, 1 failed"; exit 1; }

# Is there a GPU that the build can use? (then the CUDA runs must say so instead of falling back)
gpu=0
if "$BIN/mlxr" bench "$TMP/tiny.gguf" -p 8 -n 0 -r 1 --device cuda --json 2>/dev/null | grep -q '"device": "cuda'; then gpu=1; fi
echo "GPU in use for --device cuda: $gpu"

run_ids() { # device -> ids on stdout, stderr to $TMP/run-$1.err
  "$BIN/mlxr" run "$TMP/tiny.gguf" --device "$1" --tokens 1,5,9,13,2 -n 12 --temp 0 --ids --local -t 2 \
    2>"$TMP/run-$1.err"
}
cpu_ids=$(run_ids cpu)
cuda_ids=$(run_ids cuda)
check "cpu run produced ids" test -n "$cpu_ids"
check "--device cuda generates the CPU's ids" test "$cpu_ids" = "$cuda_ids"
if [ "$gpu" = 0 ]; then
  check "--device cuda says why it runs on the CPU" grep -Eq "cuda:0: .*(no usable NVIDIA GPU|no CUDA backend|cannot|could not).*; running on the CPU" "$TMP/run-cuda.err"
  check "--device cpu prints no device note" bash -c "! grep -q 'running on the CPU' '$TMP/run-cpu.err'"
else
  check "--device cuda runs without a fallback note" bash -c "! grep -q 'running on the CPU' '$TMP/run-cuda.err'"
fi

json=$("$BIN/mlxr" bench "$TMP/tiny.gguf" -p 16 -n 4 -r 1 --device cuda --json 2>"$TMP/bench.err")
if [ "$gpu" = 0 ]; then
  check "bench --device cuda reports the CPU" grep -q '"device": "cpu' <<<"$json"
  check "bench --device cuda explains the fallback" grep -q "running on the CPU" "$TMP/bench.err"
else
  check "bench --device cuda reports the GPU" grep -q '"device": "cuda:0' <<<"$json"
fi

"$BIN/mlxr" logits "$TMP/tiny.gguf" --tokens 3,4,5,6,7,8 --out "$TMP/l-cpu.f32" --device cpu 2>/dev/null
"$BIN/mlxr" logits "$TMP/tiny.gguf" --tokens 3,4,5,6,7,8 --out "$TMP/l-cuda.f32" --device cuda 2>"$TMP/logits.err"
if [ "$gpu" = 0 ]; then
  check "logits --device cuda (CPU fallback) equal the CPU's bit for bit" cmp -s "$TMP/l-cpu.f32" "$TMP/l-cuda.f32"
else
  check "logits --device cuda within 1e-4 of the CPU's" "$PY" - "$TMP/l-cpu.f32" "$TMP/l-cuda.f32" <<'EOF'
import array, math, sys
a = array.array("f", open(sys.argv[1], "rb").read()); b = array.array("f", open(sys.argv[2], "rb").read())
# every value finite (max() over a NaN depends on where it sits, so look first)
if not (a and len(a) == len(b) and all(map(math.isfinite, a)) and all(map(math.isfinite, b))): sys.exit(1)
m = max(abs(x) for x in a)
e = max(abs(x - y) for x, y in zip(a, b))
sys.exit(0 if e <= 1e-4 * m else 1)
EOF
fi

# bad names
"$BIN/mlxr" run "$TMP/tiny.gguf" --device tpu --tokens 1 -n 1 --ids >/dev/null 2>"$TMP/bad.err"
rc=$?
check "mlxr run --device tpu exits 2" test "$rc" = 2
"$BIN/mlxr" bench "$TMP/tiny.gguf" --device cuda:x -n 1 -p 0 >/dev/null 2>&1
check "mlxr bench --device cuda:x is refused" test "$?" = 2
timeout 60 "$BIN/mlxrd" --model "$TMP/tiny.gguf" --port 0 --no-socket --device gpu:one >/dev/null 2>"$TMP/badd.err"
check "mlxrd --device gpu:one is refused" grep -q "use auto, cpu, cuda or cuda:N" "$TMP/badd.err"
MLXR_DEVICE=abacus timeout 60 "$BIN/mlxrd" --model "$TMP/tiny.gguf" --port 0 --no-socket >/dev/null 2>"$TMP/bade.err"
check "MLXR_DEVICE=abacus is refused" grep -q "MLXR_DEVICE: unknown device 'abacus'" "$TMP/bade.err"

# daemon_round NAME ENV/ARGS...: starts mlxrd (under timeout(1), on the port the kernel gives it,
# read from --port-file), asks one completion, checks the log
daemon_round() {
  local name=$1; shift
  local port=""
  rm -f "$TMP/d.port"
  env "$@" --model "$TMP/tiny.gguf" --port 0 --port-file "$TMP/d.port" --no-socket --threads 2 >"$TMP/d.log" 2>&1 &
  DPID=$!
  for _ in $(seq 1200); do # 60 s: a sanitizer build starts slowly
    if [ -s "$TMP/d.port" ]; then port=$(cat "$TMP/d.port"); break; fi
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.05
  done
  check "$name: mlxrd came up" test -n "$port"
  local body
  body=$(curl -s --max-time 120 "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
    -d '{"model":"tiny","prompt":"hello","max_tokens":4,"temperature":0}')
  check "$name: completion answered" grep -q '"completion_tokens":4' <<<"$body"
  if [ "$gpu" = 0 ]; then
    check "$name: log explains the CPU fallback" grep -q "running on the CPU" "$TMP/d.log"
    check "$name: log names the CPU as the device" grep -q "loaded in .* on cpu" "$TMP/d.log"
  else
    check "$name: log names the GPU" grep -q "loaded in .* on cuda:0" "$TMP/d.log"
  fi
  kill "$DPID" 2>/dev/null
  wait "$DPID" 2>/dev/null
  DPID=""
}
daemon_round "mlxrd --device cuda" timeout 600 "$BIN/mlxrd" --device cuda
daemon_round "MLXR_DEVICE=cuda" MLXR_DEVICE=cuda timeout 600 "$BIN/mlxrd"
printf 'device: cuda\n' >"$TMP/server.yaml"
daemon_round "server.yaml device: cuda" timeout 600 "$BIN/mlxrd" --config "$TMP/server.yaml"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
