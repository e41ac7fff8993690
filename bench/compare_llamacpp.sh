#!/usr/bin/env bash
# compare_llamacpp.sh: MLXR vs llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU binaries) on the same
# GGUF file, in one invocation, alternating the two engines ROUNDS times so that machine noise hits
# both alike. Prints each round's tok/s, the median ratio MLXR/llama.cpp for prompt processing (pp)
# and generation (tg), and the fraction of the memory-bandwidth roofline that tg reaches
# (tg tok/s * weight bytes / measured read bandwidth).
#
#   bash bench/compare_llamacpp.sh MODEL.gguf [-t THREADS] [-p 512] [-n 128] [-d 0] [-r ROUNDS] [-j OUT.jsonl]
#
# -d: tg after that many tokens of context (both engines, untimed prefill), as llama-bench's -d.
#
# -j appends one JSON line with the medians, the per-round ratios and the roofline figures (what
# bench/cpu_suite.sh tabulates).
# Needs build/bin/mlxr (scripts/setup.sh) and node-llama-cpp (scripts/fetch_test_deps.sh).
# MLXR_BIN overrides the mlxr binary: the bin directory (as the golden tests take it) or the
# executable itself.
# LLAMACPP_BENCH selects how llama.cpp is driven: "c" (default) runs bench/llamacpp_cbench.c, which
# calls the same prebuilt libllama/libggml that node-llama-cpp loads straight from C, like
# llama-bench (no JavaScript per token); "node" runs bench/llamacpp_bench.mjs through the Node
# addon (includes node-llama-cpp's per-token overhead, as a Node user would see it).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: compare_llamacpp.sh MODEL.gguf [-t T] [-p P] [-n N] [-r ROUNDS]}
shift
threads=$(nproc); p=512; n=128; d=0; rounds=3; summary=
while getopts "t:p:n:d:r:j:" o; do
  case $o in
    t) threads=$OPTARG ;; p) p=$OPTARG ;; n) n=$OPTARG ;; d) d=$OPTARG ;; r) rounds=$OPTARG ;;
    j) summary=$OPTARG ;; *) exit 2 ;;
  esac
done
mlxr=${MLXR_BIN:-build/bin}
[ -d "$mlxr" ] && mlxr=$mlxr/mlxr
[ -x "$mlxr" ] || { echo "$mlxr missing: run scripts/setup.sh or set MLXR_BIN" >&2; exit 1; }
bash scripts/fetch.d/20-llamacpp.sh >/dev/null
mkdir -p build/bench
gcc -O2 -mavx2 -pthread bench/membw.c -o build/bench/membw
engine=${LLAMACPP_BENCH:-c}
[ "$engine" = c ] || [ "$d" = 0 ] || { echo "-d needs LLAMACPP_BENCH=c" >&2; exit 2; }
lc=tests/.cache/llamacpp
bins=$lc/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
if [ "$engine" = c ]; then
  libllama=$(cd "$bins" && ls libllama.v*.so | head -n1)
  libggml=$(cd "$bins" && ls libggml.v*.so | head -n1)
  gcc -std=c17 -O2 -D_GNU_SOURCE -I"$lc/include" bench/llamacpp_cbench.c -L"$bins" -l:"$libllama" \
    -l:"$libggml" -l:libggml-base.so -Wl,-rpath,"$PWD/$bins" -o build/bench/llamacpp-cbench
fi
# The roofline's bandwidth is the best of one measurement per round (and one before): a reading
# taken while another tenant loads the machine under-states what the memory can deliver.
bw=$(build/bench/membw "$threads" 1024)
out=$(mktemp build/bench/rounds.XXXXXX.jsonl)  # per invocation: concurrent runs must not mix
trap 'rm -f "$out"' EXIT
: >"$out"
for r in $(seq 1 "$rounds"); do
  b=$(build/bench/membw "$threads" 1024)
  bw=$(/usr/bin/python3 -c "print(max($bw, $b))")
  m=$("$mlxr" bench "$model" -p "$p" -n "$n" -d "$d" -t "$threads" -r 1 --json)
  if [ "$engine" = c ]; then
    l=$(build/bench/llamacpp-cbench "$model" "$bins" -t "$threads" -p "$p" -n "$n" -d "$d" -r 1)
  else
    l=$(node bench/llamacpp_bench.mjs "$model" --threads "$threads" --p "$p" --n "$n" --reps 1)
  fi
  echo "{\"round\": $r, \"mlxr\": $m, \"llamacpp\": $l}" >>"$out"
done
/usr/bin/python3 - "$out" "$bw" "$model" "$threads" "$summary" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bw = float(sys.argv[2])
m0 = rows[0]["mlxr"]
print(f"model {sys.argv[3]}: {m0['arch']} {m0['weight_type']} weights, {m0['weight_bytes']/2**20:.1f} MiB; threads {sys.argv[4]}; read bandwidth {bw:.1f} GB/s")
print(f"llama.cpp: {rows[0]['llamacpp'].get('engine', '?')}, cpu variant {rows[0]['llamacpp'].get('cpu_variant', '?')}")
print(f"{'round':>5} {'mlxr pp':>10} {'llama pp':>10} {'mlxr tg':>9} {'llama tg':>9}")
rp, rt = [], []
for r in rows:
    a, b = r["mlxr"], r["llamacpp"]
    print(f"{r['round']:>5} {a['pp']['tok_s']:>10.2f} {b['pp']['tok_s']:>10.2f} {a['tg']['tok_s']:>9.2f} {b['tg']['tok_s']:>9.2f}")
    rp.append(a["pp"]["tok_s"] / b["pp"]["tok_s"]); rt.append(a["tg"]["tok_s"] / b["tg"]["tok_s"])
tg = statistics.median(r["mlxr"]["tg"]["tok_s"] for r in rows)
tgl = statistics.median(r["llamacpp"]["tg"]["tok_s"] for r in rows)
roof = bw * 1e9 / m0["weight_bytes"]
print(f"ratio mlxr/llama.cpp: pp {statistics.median(rp):.2f}x ({min(rp):.2f}-{max(rp):.2f}), "
      f"tg {statistics.median(rt):.2f}x ({min(rt):.2f}-{max(rt):.2f})")
print(f"tg roofline {roof:.1f} tok/s: mlxr {tg/roof*100:.0f}%, llama.cpp {tgl/roof*100:.0f}%")
if sys.argv[5]:
    med = lambda eng, k: statistics.median(r[eng][k]["tok_s"] for r in rows)
    with open(sys.argv[5], "a") as f:
        f.write(json.dumps({
            "model": sys.argv[3], "arch": m0["arch"], "weight_type": m0["weight_type"],
            "weight_bytes": m0["weight_bytes"], "threads": int(sys.argv[4]), "bandwidth_gb_s": bw,
            "rounds": len(rows), "pp_n": m0["pp"]["n"], "tg_n": m0["tg"]["n"],
            "tg_depth": m0["tg"].get("depth", 0),
            "mlxr_pp": med("mlxr", "pp"), "llama_pp": med("llamacpp", "pp"),
            "mlxr_tg": med("mlxr", "tg"), "llama_tg": med("llamacpp", "tg"),
            "pp_ratios": rp, "tg_ratios": rt,
            "mlxr_roofline": tg / roof, "llama_roofline": tgl / roof,
            "llamacpp": rows[0]["llamacpp"].get("engine", "?"),
            "llamacpp_cpu_variant": rows[0]["llamacpp"].get("cpu_variant", "?")}) + "\n")
PY
