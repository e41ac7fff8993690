#!/usr/bin/env bash
# cpu_suite.sh: the CPU benchmark of record. MLXR against llama.cpp on the same GGUF files, on this
# machine, in one run:
#   1. makes the benchmark models if they are missing (random weights, std 0.02, real shapes):
#        llama1b  Llama-3.2-1B: n_embd 2048, 16 layers, 32 heads / 8 KV heads, n_ff 8192,
#                 vocab 128256, tied embeddings, llama3 rope scaling (theta 500000)
#        qwen3    Qwen3-0.6B: n_embd 1024, 28 layers, 16 heads / 8 KV heads, head_dim 128,
#                 n_ff 3072, vocab 151936, tied embeddings, q/k norm (theta 1000000)
#      as F16 (mlxr convert) and Q8_0, Q4_0, Q4_K_M (mlxr quantize, whose Q4_K_M is llama.cpp's
#      mix, byte-identical to its quantizer: tests/golden/test_llamacpp_compat.py);
#   2. per file, bench/compare_llamacpp.sh: measures the read bandwidth, then alternates
#      `mlxr bench` and llama.cpp (node-llama-cpp's pinned prebuilt libllama, driven from C) ROUNDS
#      times with the same thread count, pp and tg lengths;
#   3. prints one Markdown table: pp and tg tokens/s (medians), the ratio MLXR/llama.cpp (median of
#      the per-round ratios, with their min-max spread), and tg as a fraction of the bandwidth
#      roofline (bandwidth / weight bytes read per token), headed by machine, commit and date, ready
#      for bench/RESULTS.md.
#
#   bash bench/cpu_suite.sh [-t THREADS] [-r ROUNDS] [-p 512] [-n 128] [-m "llama1b qwen3"]
#                           [-q "f16 q8_0 q4_0 q4_K_M"] [-d MODEL_DIR]
#
# Defaults: 2 threads, 3 rounds, pp512, tg128, both shapes, all four types, models in
# build/bench/models (about 6.5 GB for everything). Needs build/bin/mlxr (scripts/setup.sh; MLXR_BIN
# as in compare_llamacpp.sh) and node-llama-cpp (scripts/fetch_test_deps.sh fetches it).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2; rounds=3; p=512; n=128; shapes="llama1b qwen3"; types="f16 q8_0 q4_0 q4_K_M"
dir=build/bench/models
while getopts "t:r:p:n:m:q:d:" o; do
  case $o in
    t) threads=$OPTARG ;; r) rounds=$OPTARG ;; p) p=$OPTARG ;; n) n=$OPTARG ;;
    m) shapes=$OPTARG ;; q) types=$OPTARG ;; d) dir=$OPTARG ;; *) exit 2 ;;
  esac
done
mlxr=${MLXR_BIN:-build/bin}
[ -d "$mlxr" ] && mlxr=$mlxr/mlxr
[ -x "$mlxr" ] || { echo "$mlxr missing: run scripts/setup.sh or set MLXR_BIN" >&2; exit 1; }
mkdir -p "$dir"

shape_args() {
  case $1 in
    llama1b) echo "--arch llama --hidden 2048 --intermediate 8192 --layers 16 --heads 32 --kv-heads 8
                   --vocab-size 128256 --tie --rope-theta 500000 --rope-scaling llama3 --max-pos 131072" ;;
    qwen3) echo "--arch qwen3 --hidden 1024 --intermediate 3072 --layers 28 --heads 16 --kv-heads 8
                 --head-dim 128 --vocab-size 151936 --tie --rope-theta 1000000 --max-pos 40960" ;;
    *) echo "unknown shape $1 (llama1b, qwen3)" >&2; return 1 ;;
  esac
}

make_model() { # shape type -> path of the GGUF, made if missing
  local shape=$1 type=$2 f16=$dir/$1-f16.gguf out=$dir/$1-$2.gguf
  if [ ! -s "$f16" ]; then
    local hf=$dir/$shape-hf args
    args=$(shape_args "$shape")
    # shellcheck disable=SC2086
    /usr/bin/python3 scripts/make_random_model.py --out "$hf" $args --dtype f16 --std 0.02 >&2
    "$mlxr" convert "$hf" -o "$f16" --type f16 --name "$shape" >&2
    rm -rf "$hf"
  fi
  if [ ! -s "$out" ]; then
    "$mlxr" quantize "$f16" "$out" "$type" >&2
  fi
  echo "$out"
}

summary=build/bench/suite.jsonl
mkdir -p build/bench
: >"$summary"
for shape in $shapes; do
  for type in $types; do
    model=$(make_model "$shape" "$type")
    echo "== $shape $type: $model" >&2
    bash bench/compare_llamacpp.sh "$model" -t "$threads" -p "$p" -n "$n" -r "$rounds" -j "$summary" >&2
  done
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit+dirty"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
/usr/bin/python3 - "$summary" "$commit" "$cpu" "$(nproc)" "$(date -u +%Y-%m-%d)" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
commit, cpu, ncpu, date = sys.argv[2:6]
r0 = rows[0]
print(f"Machine: {cpu}, {ncpu} CPUs; commit {commit}; {date}; {r0['threads']} threads, "
      f"{r0['rounds']} alternating rounds; llama.cpp: {r0['llamacpp']} ({r0['llamacpp_cpu_variant']} CPU variant)")
print()
print(f"| model | type | MiB | pp{r0['pp_n']} MLXR | pp llama.cpp | pp ratio (spread) | "
      f"tg{r0['tg_n']} MLXR | tg llama.cpp | tg ratio (spread) | roofline MLXR / llama.cpp (GB/s) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    name = r["model"].rsplit("/", 1)[-1].removesuffix(".gguf")
    pr, tr = r["pp_ratios"], r["tg_ratios"]
    print(f"| {name} | {r['weight_type']} | {r['weight_bytes'] / 2**20:.0f} | {r['mlxr_pp']:.1f} | "
          f"{r['llama_pp']:.1f} | {statistics.median(pr):.2f}x ({min(pr):.2f}-{max(pr):.2f}) | "
          f"{r['mlxr_tg']:.2f} | {r['llama_tg']:.2f} | {statistics.median(tr):.2f}x ({min(tr):.2f}-{max(tr):.2f}) | "
          f"{r['mlxr_roofline'] * 100:.0f}% / {r['llama_roofline'] * 100:.0f}% ({r['bandwidth_gb_s']:.1f}) |")
PY
