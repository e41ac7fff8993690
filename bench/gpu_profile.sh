#!/usr/bin/env bash
# gpu_profile.sh: where a decode step's time goes on the GPU, kernel by kernel (Nsight Compute).
# Runs a few single-stream decode steps of MODEL op by op (--no-graphs, so each kernel is its own
# launch), profiles LAUNCHES kernels after skipping SKIP (past loading and warm-up), and prints one
# line per kernel: duration, DRAM throughput as a fraction of the peak, grid x block, name; then the
# total per kernel name. Clocks are left alone (--clock-control none, as the device tool asks).
#
#   bash bench/gpu_profile.sh MODEL.gguf [LAUNCHES (40)] [SKIP (300)]
#
# MLXR_BIN: the bin directory (default build/bin). Needs ncu on PATH (the lent GPU machines have it).
set -euo pipefail
model=${1:?usage: bash bench/gpu_profile.sh MODEL.gguf [LAUNCHES] [SKIP]}
launches=${2:-40}
skip=${3:-300}
bin=${MLXR_BIN:-build/bin}
command -v ncu >/dev/null || { echo "gpu_profile: ncu is not installed" >&2; exit 1; }
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
ncu --clock-control none --launch-skip "$skip" --launch-count "$launches" \
  --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
  "$bin/mlxr" bench "$model" -p 0 -n 3 -r 1 --no-graphs --device cuda >"$raw" 2>&1 || { tail -20 "$raw"; exit 1; }
python3 - "$raw" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rows, totals = [], {}
for block in re.split(r"\n  (?=\S)", text):
    head = re.match(r"(\S[^\n]*?)\s*\((\d+), (\d+), (\d+)\)x\((\d+), (\d+), (\d+)\)", block)
    t = re.search(r"gpu__time_duration.sum\s+(\S+)\s+([\d.,]+)", block)
    d = re.search(r"dram__throughput.avg.pct_of_peak_sustained_elapsed\s+\S+\s+([\d.,]+)", block)
    if not head or not t:
        continue
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3}.get(t.group(1), 1.0)
    us = float(t.group(2).replace(",", "")) * scale
    name = re.sub(r"\(.*", "", head.group(1)).replace("<unnamed>::", "")[:70]
    grid = "%sx%s" % (head.group(2), head.group(5))
    rows.append((us, d.group(1) if d else "?", grid, name))
    totals[name] = totals.get(name, 0.0) + us
for us, dram, grid, name in rows:
    print("%9.2f us  dram %6s%%  %-12s %s" % (us, dram, grid, name))
print("--- total per kernel (us):")
for name, us in sorted(totals.items(), key=lambda kv: -kv[1]):
    print("%9.2f  %s" % (us, name))
EOF
