#!/usr/bin/env bash
# pack_node.sh: node and the official openai / ollama npm clients, packed for a GPU machine whose
# image has no node (the lent device machines), so tests/gpu/run.sh can run the client tests of the
# CPU suite (tests/golden/test_daemon_openai.mjs, test_daemon_ollama.mjs) against mlxrd on the GPU.
# Run here after scripts/fetch_test_deps.sh; writes DIR (default .devcarry):
#   node.xz            this machine's node binary (it links only the C/C++ runtime), xz-compressed
#   clients.tar.xz     tests/.cache/daemon-clients with just openai, ollama and their dependencies
# About 27 MB. run.sh unpacks them (with python3's lzma, so xz need not be installed there).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.devcarry}
mkdir -p "$out"
node_bin=$(readlink -f "$(command -v node)")
ldd "$node_bin" | grep -qE "libnode|libuv|libssl" && { echo "pack_node: $node_bin links shared node libraries; need a self-contained node" >&2; exit 1; }
xz -T2 -6 -c "$node_bin" >"$out/node.xz"
src=tests/.cache/daemon-clients
[ -d "$src/node_modules/openai" ] && [ -d "$src/node_modules/ollama" ] || { echo "pack_node: run scripts/fetch_test_deps.sh first" >&2; exit 1; }
tar -C "$src" -cJf "$out/clients.tar.xz" package.json node_modules/openai node_modules/ollama node_modules/whatwg-fetch
du -sh "$out/node.xz" "$out/clients.tar.xz"
