#!/usr/bin/env bash
# gpu.sh: the GPU benchmark of record. MLXR on an NVIDIA GPU next to Hugging Face transformers on
# the same shapes, on this machine, in one run:
#   1. measures the GPU's device-to-device copy bandwidth (bench/hf_gpu_bench.py --membw: torch
#      copy_ of a 2 GiB buffer timed with CUDA events, bytes read + written / time, median of 20):
#      the roofline, since decoding reads every weight once per token;
#   2. per shape (-m; the table is SHAPES in bench/hf_gpu_bench.py):
#        llama1b  Llama-3.2-1B: hidden 2048, 16 layers, 32 heads / 8 KV heads, ffn 8192,
#                 vocab 128256, tied embeddings, rope theta 500000, llama3 rope scaling
#        llama8b  Llama-3.1-8B: hidden 4096, 32 layers, 32 heads / 8 KV heads, ffn 14336,
#                 vocab 128256, untied, rope theta 500000, llama3 rope scaling
#        tiny     hidden 256, 2 layers: a smoke test of this script on any machine
#      makes random-weight models (std 0.02): a Hugging Face checkpoint in f16
#      (scripts/make_random_model.py, drawn on the GPU with --generator torch when torch has CUDA),
#      BF16 from it (mlxr convert --type bf16; `mlxr quantize F16 BF16 bf16` where only the F16
#      GGUF of an earlier run is left), the F16 GGUF (mlxr convert), then Q8_0, Q4_0, Q4_K_M
#      (mlxr quantize from the F16). One file at a time: every file but the F16 GGUF is
#      deleted once benchmarked, so a shape never needs more than two model files on disk (the
#      checkpoint + BF16, then the checkpoint + F16, then F16 + one quantized file: 32 GB for
#      llama8b). The F16 GGUF stays as the source for later runs (--clean deletes it too);
#   3. per model: `mlxr bench MODEL -p 512 -n 128 -r 3 --json --device cuda` (pp and tg tok/s,
#      weight bytes) and `mlxr bench MODEL --concurrency 1,8,32,64,128 -p 128 -n 128 --json
#      --device cuda` (aggregate decode tok/s through the scheduler, all sequences at once);
#   4. per shape: bench/hf_gpu_bench.py --shape SHAPE: transformers bf16, the model made by
#      from_config on the GPU (no files), static KV cache, eager unless --hf-compile: pp512 (one
#      forward), tg128, and batched generate() at the same levels (prefill timed apart; an
#      out-of-memory batch size is reported and the run goes on);
#   5. prints one Markdown table per shape (bench/gpu_report.py), headed by GPU, driver, commit,
#      date and bandwidth, ready for bench/RESULTS.md: pp, tg, tg as a fraction of the roofline
#      (tg tok/s x weight bytes / copy bandwidth), decode tok/s at each level, and transformers'
#      row for the same shape.
#
#   bash bench/gpu.sh [-m "llama1b llama8b"] [-q "f16 bf16 q8_0 q4_0 q4_K_M"] [-r 3] [-p 512]
#                     [-n 128] [-c 1,8,32,64,128] [-d MODEL_DIR] [-b BUDGET_S] [--device cuda]
#                     [--no-hf] [--no-concurrency] [--hf-compile] [--bw GB_S] [--keep] [--clean]
#
#   -b BUDGET_S       start no new step (model, transformers run) once this many seconds have
#                     passed; what was skipped is listed at the end (0: no budget, the default)
#   --no-hf           no transformers runs;  --no-concurrency: no concurrency sweeps (either side)
#   --hf-compile      let transformers' generate() torch.compile its decode step (minutes per
#                     batch size; eager by default)
#   --bw GB_S         take this copy bandwidth instead of measuring it
#   --keep            keep every model file (disk permitting);  --clean: delete the F16 GGUFs too
#   --device D        passed to mlxr bench and the transformers run (cpu: smoke tests elsewhere)
#
# Environment: MLXR_BIN (the bin directory or the mlxr executable; default build/bin, built by the
# caller with -DMLXR_CUDA=ON); PYTHON (a python3 with numpy, torch and transformers; default
# python3); OUT (if set, results.json, tables.md and log.txt are copied there after every model,
# so a run stopped by a time limit still leaves them); MLXR_COMMIT (the commit to print where the
# tree has no .git). Raw outputs: build/bench/gpu-runs/DATE-TIME/ (bench/gpu_report.py lists them).
#
# Time on one H100, estimated before any GPU run (the log prints every step's seconds; quantizing
# runs on the 16 CPU cores): llama1b, every type plus transformers, 3-5 min; llama8b takes two
# calls under a 10-minute limit, e.g.
#   bash bench/gpu.sh -m llama1b -b 480                                    (~3-5 min)
#   bash bench/gpu.sh -m llama8b -q "f16 bf16" -b 420                      (~6-8 min)
#   bash bench/gpu.sh -m llama8b -q "q8_0 q4_0 q4_K_M" --no-hf -b 420      (~5-7 min; reuses the
#                                F16 GGUF if the machine stayed warm, else remakes it: +1-1.5 min)
# Per 8B step: checkpoint (torch on the GPU) 0.5-1 min, each convert 0.5 min, quantize 0.3-0.5 min
# (Q4_K_M 1.5-2 min), mlxr bench + concurrency 0.5-1.5 min, transformers (eager) 1-2 min.
# Smoke test anywhere (no GPU): PYTHON=/usr/bin/python3 bash bench/gpu.sh -m tiny --device cpu --no-hf --bw 20
set -euo pipefail
cd "$(dirname "$0")/.."

shapes="llama1b llama8b"; types="f16 bf16 q8_0 q4_0 q4_K_M"; reps=3; pp=512; tg=128
levels="1,8,32,64,128"; conc_p=128; conc_n=128; dir=build/bench/gpu-models; budget=0
device=cuda; hf=1; conc=1; hf_compile=0; bw=""; keep=0; clean=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    -m|-q|-r|-p|-n|-c|-d|-b|--device|--bw)
      [ $# -ge 2 ] || { echo "gpu.sh: $1 needs a value" >&2; exit 2; }
      case $1 in
        -m) shapes=$2 ;; -q) types=$2 ;; -r) reps=$2 ;; -p) pp=$2 ;; -n) tg=$2 ;; -c) levels=$2 ;;
        -d) dir=$2 ;; -b) budget=$2 ;; --device) device=$2 ;; --bw) bw=$2 ;;
      esac
      shift ;;
    --no-hf) hf=0 ;;
    --no-concurrency) conc=0 ;;
    --hf-compile) hf_compile=1 ;;
    --keep) keep=1 ;;
    --clean) clean=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu.sh: unknown option '$1' (bash bench/gpu.sh -h)" >&2; exit 2 ;;
  esac
  shift
done
for v in "$reps" "$pp" "$tg" "$budget"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "gpu.sh: '$v' is not a number" >&2; exit 2; }
done
[[ $levels =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "gpu.sh: -c wants a list like 1,8,32" >&2; exit 2; }
[[ -z $bw || $bw =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "gpu.sh: --bw wants GB/s" >&2; exit 2; }
for t in $types; do
  case $t in f16|bf16|q8_0|q4_0|q4_K_M) ;; *) echo "gpu.sh: unknown type $t (f16 bf16 q8_0 q4_0 q4_K_M)" >&2; exit 2 ;; esac
done
PY=${PYTHON:-python3}
for s in $shapes; do
  "$PY" bench/hf_gpu_bench.py --shape-args "$s" >/dev/null || { echo "gpu.sh: unknown shape $s" >&2; exit 2; }
done
mlxr=${MLXR_BIN:-build/bin}
[ -d "$mlxr" ] && mlxr=$mlxr/mlxr
[ -x "$mlxr" ] || { echo "gpu.sh: $mlxr missing: build MLXR (cmake -DMLXR_CUDA=ON) or set MLXR_BIN" >&2; exit 1; }
"$PY" -c 'import numpy' 2>/dev/null || { echo "gpu.sh: $PY has no numpy (set PYTHON)" >&2; exit 1; }

raw=build/bench/gpu-runs/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$raw" "$dir"
exec 2> >(tee -a "$raw/log.txt" >&2)  # everything said on stderr is also in the log
t_run=$SECONDS
last_s=0
skipped=()

# ---------------------------------------------------------------------------------------------
# Helpers

say() { printf '[gpu.sh %dm%02ds] %s\n' $(((SECONDS - t_run) / 60)) $(((SECONDS - t_run) % 60)) "$*" >&2; }
gib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 2^30 }'; }
want() { [[ " $types " == *" $1 "* ]]; }
ev() { # shape type key value: one line of events.tsv (what gpu_report.py reads)
  local v=${4//$'\t'/ }
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${v//$'\n'/ }" >>"$raw/events.tsv"
}
over_budget() { # what: true (and noted) when the budget is spent
  if [ "$budget" -gt 0 ] && [ $((SECONDS - t_run)) -ge "$budget" ]; then
    say "budget of ${budget} s spent: skipping $1"
    skipped+=("$1")
    return 0
  fi
  return 1
}
timed() { # label command...: runs it, says how long it took (also in $last_s); returns its status
  local label=$1 t0=$SECONDS rc=0
  shift
  say "$label ..."
  "$@" || rc=$?
  last_s=$((SECONDS - t0))
  if [ $rc = 0 ]; then say "$label: done in $((SECONDS - t0)) s"; else say "$label: FAILED (exit $rc) after $((SECONDS - t0)) s"; fi
  return $rc
}
run_to() { # OUT ERR command...: stdout to OUT; stderr to ERR and, indented, to the console
  local o=$1 e=$2 rc=0
  shift 2
  "$@" 2>&1 >"$o" | tee "$e" | sed -u 's/^/    /' >&2 || rc=${PIPESTATUS[0]}
  return "$rc"
}
need_space() { # bytes what: room for it plus 2 GiB on the model disk?
  local avail
  avail=$(df -PB1 "$dir" | awk 'NR == 2 { print $4 }')
  if [ "$avail" -lt $(($1 + (2 << 30))) ]; then
    say "not enough disk for $2: needs $(gib "$1") GiB + 2 GiB, $(gib "$avail") GiB free in $dir"
    return 1
  fi
}
est_bytes() { # type f16_bytes: a generous estimate of the file size
  case $1 in f16|bf16) echo "$2" ;; q8_0) echo $(($2 * 34 / 64)) ;; q4_0) echo $(($2 * 18 / 64)) ;; *) echo $(($2 * 24 / 64)) ;; esac
}
report() { # the tables from what is there so far, into $raw (and $OUT)
  "$PY" bench/gpu_report.py "$raw" >/dev/null || say "gpu_report.py failed (raw outputs are in $raw)"
  if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    cp -f "$raw/results.json" "$raw/tables.md" "$raw/log.txt" "$OUT/" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------------------------------------
# Models

hf_ready() { [ -f "$1/.complete" ]; }
make_hf() { # shape f16_bytes: the random HF checkpoint (f16) in $dir/SHAPE-hf, unless it is there
  local shape=$1 hfdir=$dir/$1-hf args
  hf_ready "$hfdir" && return 0
  rm -rf "$hfdir"
  need_space "$2" "the $shape checkpoint" || return 1
  args=$("$PY" bench/hf_gpu_bench.py --shape-args "$shape")
  # shellcheck disable=SC2086 # $args is a list of options
  if ! timed "make the $shape checkpoint (f16, std 0.02, --generator $generator)" \
      "$PY" scripts/make_random_model.py --out "$hfdir" $args --dtype f16 --std 0.02 --generator "$generator"; then
    rm -rf "$hfdir"
    return 1
  fi
  touch "$hfdir/.complete"
}

bench_model() { # shape type file: mlxr bench (pp/tg) and the concurrency sweep
  local shape=$1 type=$2 model=$3 base=$raw/mlxr-$1-$2 rc=0 dev
  ev "$shape" "$type" file_bytes "$(stat -c %s "$model")"
  timed "mlxr bench $shape $type (pp$pp, tg$tg, $reps reps)" run_to "$base.bench.json" "$base.bench.err" \
    "$mlxr" bench "$model" -p "$pp" -n "$tg" -r "$reps" --json --device "$device" || rc=$?
  ev "$shape" "$type" bench_rc "$rc"
  ev "$shape" "$type" bench_s "$last_s"
  [ $rc = 0 ] && say "  $(cat "$base.bench.json")"
  dev=$(sed -n 's/.*"device": "\([^"]*\)".*/\1/p' "$base.bench.json" | head -n 1) || dev=""
  if [[ $device == cuda* && -n $dev && $dev != cuda* ]]; then
    say "mlxr ran on '$dev', not on the GPU: build MLXR with CUDA (cmake -DMLXR_CUDA=ON) or point MLXR_BIN at that build. Stopping."
    report
    exit 3
  fi
  if [ $conc = 1 ]; then
    rc=0
    timed "mlxr bench --concurrency $levels $shape $type" run_to "$base.conc.json" "$base.conc.err" \
      "$mlxr" bench "$model" --concurrency "$levels" -p "$conc_p" -n "$conc_n" --json --device "$device" || rc=$?
    ev "$shape" "$type" conc_rc "$rc"
    ev "$shape" "$type" conc_s "$last_s"
    [ -s "$base.conc.json" ] && say "  $(cat "$base.conc.json")"
  fi
  report
}

run_shape() { # shape: every requested type of one shape, one file at a time, then transformers
  local shape=$1 f16=$dir/$1-f16.gguf hfdir=$dir/$1-hf f16_bytes t model
  f16_bytes=$("$PY" bench/hf_gpu_bench.py --shape-bytes "$shape")
  rm -f "$dir/$shape"-*.gguf.tmp  # left by a run that was killed while writing
  say "== $shape: $(gib "$f16_bytes") GiB of f16 weights; types: $types"

  if want bf16 && ! over_budget "$shape bf16"; then
    model=$dir/$shape-bf16.gguf
    if [ ! -s "$model" ]; then
      local made=0
      if [ -s "$f16" ] && ! hf_ready "$hfdir"; then  # no checkpoint left: the same numbers from the F16
        need_space "$f16_bytes" "$shape bf16" &&
          timed "quantize $shape bf16 (from the F16 GGUF)" "$mlxr" quantize "$f16" "$model" bf16 && made=1
      else
        make_hf "$shape" "$f16_bytes" && need_space "$f16_bytes" "$shape bf16" &&
          timed "convert $shape bf16" "$mlxr" convert "$hfdir" -o "$model" --type bf16 --name "$shape-bf16" && made=1
      fi
      [ $made = 1 ] || ev "$shape" bf16 make_error "could not make the file (see log.txt)"
    fi
    [ -s "$model" ] && bench_model "$shape" bf16 "$model"
    [ $keep = 1 ] || rm -f "$model"
  fi

  local rest=()
  for t in $types; do [ "$t" = bf16 ] || rest+=("$t"); done
  if [ ${#rest[@]} -gt 0 ] && [ ! -s "$f16" ] && ! over_budget "$shape ${rest[*]}"; then
    { make_hf "$shape" "$f16_bytes" && need_space "$f16_bytes" "$shape f16" &&
      timed "convert $shape f16" "$mlxr" convert "$hfdir" -o "$f16" --type f16 --name "$shape-f16"; } ||
      say "no F16 GGUF for $shape: skipping ${rest[*]}"
  fi
  [ $keep = 1 ] || rm -rf "$hfdir"

  for t in "${rest[@]}"; do
    [ -s "$f16" ] || { ev "$shape" "$t" make_error "no F16 GGUF to quantize from"; continue; }
    over_budget "$shape $t" && continue
    model=$f16
    if [ "$t" != f16 ]; then
      model=$dir/$shape-$t.gguf
      if [ ! -s "$model" ]; then
        { need_space "$(est_bytes "$t" "$f16_bytes")" "$shape $t" &&
          timed "quantize $shape $t" "$mlxr" quantize "$f16" "$model" "$t"; } ||
          { ev "$shape" "$t" make_error "quantize failed (see log.txt)"; rm -f "$model"; continue; }
      fi
    fi
    bench_model "$shape" "$t" "$model"
    [ "$t" = f16 ] || [ $keep = 1 ] || rm -f "$model"
  done
  [ $clean = 0 ] || rm -f "$f16"

  if [ $hf = 1 ] && ! over_budget "$shape transformers"; then
    local rc=0 args=(--shape "$shape" --pp "$pp" --tg "$tg" -r "$reps" --prompt "$conc_p" --gen "$conc_n"
                     --device "$device" --out "$raw/hf-$shape.json")
    if [ $conc = 1 ]; then args+=(--concurrency "$levels"); else args+=(--concurrency ""); fi
    [ $hf_compile = 0 ] || args+=(--compile)
    timed "transformers $shape (bf16, pp$pp, tg$tg$([ $conc = 1 ] && echo ", levels $levels"))" \
      run_to /dev/null "$raw/hf-$shape.err" "$PY" bench/hf_gpu_bench.py "${args[@]}" || rc=$?
    ev "$shape" hf rc "$rc"
    ev "$shape" hf seconds "$last_s"
    report
  fi
}

# ---------------------------------------------------------------------------------------------
# The run

gpu="(no nvidia-smi)"; driver="?"; gpu_mem="?"; cuda_driver="?"; cuda_nvcc="?"
if command -v nvidia-smi >/dev/null 2>&1; then
  IFS=, read -r gpu driver gpu_mem < <(nvidia-smi --query-gpu=name,driver_version,memory.total \
    --format=csv,noheader -i 0 2>/dev/null || echo "?,?,?") || true
  gpu=${gpu# }; driver=${driver# }; gpu_mem=${gpu_mem# }
  cuda_driver=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1) || true
fi
if command -v nvcc >/dev/null 2>&1; then
  cuda_nvcc=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -n 1) || true
fi
cuda="nvcc ${cuda_nvcc:-?}, driver's CUDA ${cuda_driver:-?}"
commit=${MLXR_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [ -z "${MLXR_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit+dirty"
fi
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  generator=torch; torch_cuda=1
else
  generator=numpy; torch_cuda=0
fi
{
  printf 'gpu\t%s\ndriver\t%s\ngpu_memory\t%s\ncuda\t%s\ncommit\t%s\ndate\t%s\nhost\t%s\n' \
    "$gpu" "$driver" "$gpu_mem" "$cuda" "$commit" "$(date -u +%Y-%m-%d)" "$(hostname)"
  printf 'cpu\t%s\nncpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" "$(nproc)"
  printf 'shapes\t%s\ntypes\t%s\nlevels\t%s\npp\t%s\ntg\t%s\nreps\t%s\ndevice\t%s\n' \
    "$shapes" "$types" "$([ $conc = 1 ] && echo "$levels")" "$pp" "$tg" "$reps" "$device"
  printf 'conc_prompt\t%s\nconc_gen\t%s\nhf_compile\t%s\nbw_override\t%s\nmlxr\t%s\ngenerator\t%s\n' \
    "$conc_p" "$conc_n" "$hf_compile" "$bw" "$mlxr" "$generator"
} >"$raw/machine.tsv"
say "GPU: $gpu ($gpu_mem), driver $driver, CUDA $cuda; commit $commit; mlxr: $mlxr; python: $PY (torch with CUDA: $torch_cuda)"
say "shapes: $shapes; types: $types; raw outputs: $raw; models: $dir ($(gib "$(df -PB1 "$dir" | awk 'NR == 2 { print $4 }')") GiB free)"

if [ -n "$bw" ]; then
  say "copy bandwidth: $bw GB/s (given)"
elif [ $torch_cuda = 1 ]; then
  timed "copy bandwidth" run_to /dev/null "$raw/membw.err" \
    "$PY" bench/hf_gpu_bench.py --membw --out "$raw/membw.json" || say "no bandwidth: the roofline column stays empty"
else
  say "torch has no CUDA device here: no bandwidth measured (give one with --bw); the roofline column stays empty"
fi
[ $torch_cuda = 1 ] || [ $hf = 0 ] || [[ $device != cuda* ]] ||
  say "torch has no CUDA device here: the transformers runs will fail (--no-hf skips them)"

for shape in $shapes; do
  over_budget "$shape (all of it)" && continue
  run_shape "$shape"
done

report
say "done in $((SECONDS - t_run)) s; raw outputs in $raw${OUT:+, copies in $OUT}"
[ ${#skipped[@]} = 0 ] || say "skipped for the budget: ${skipped[*]}"
cat "$raw/tables.md"
