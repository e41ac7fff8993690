#!/usr/bin/env bash
# 20-llamacpp.sh: install llama.cpp, through the npm package node-llama-cpp 3.21.1 and its prebuilt
# linux-x64 CPU binaries, into tests/.cache/llamacpp; the llama.cpp golden tests compare MLXR
# against it (tests/golden/test_llamacpp_*, tests/golden/llamacpp/*.mjs).
#
# Offline-safe by construction: `npm ci` from the committed lockfile (tests/golden/llamacpp/
# package-lock.json) with --ignore-scripts, so node-llama-cpp's postinstall (which may try to
# download llama.cpp from GitHub and build it with cmake when the prebuilt binaries do not load)
# never runs, and --omit=optional, so the CUDA/Vulkan/other-platform binary packages are skipped
# (the CPU package @node-llama-cpp/linux-x64 is a direct dependency in our package.json).
# The helpers call getLlama({gpu: false, build: "never"}), which only ever loads the prebuilt
# binaries. NODE_LLAMA_CPP_SKIP_DOWNLOAD is set as well, for any node-llama-cpp code path that
# consults it.
#
# It also builds tests/.cache/llamacpp/bin/llamacpp-tool (tests/golden/llamacpp/llamacpp_tool.c):
# llama.cpp's quantizer (llama_model_quantize) and ggml's dequantizers from the prebuilt libllama /
# libggml-base, compiled against the headers of the exact llama.cpp source that node-llama-cpp
# bundles (llama/gitRelease.bundle, a git bundle). Needs gcc and git.
#
# Idempotent: skips everything when the stamp file records the same package files and tool source.
set -euo pipefail
cd "$(dirname "$0")/../.."

src=tests/golden/llamacpp
dest=tests/.cache/llamacpp
version=3.21.1
stamp="$dest/.stamp"
want="node-llama-cpp $version $(cat "$src/package.json" "$src/package-lock.json" "$src/llamacpp_tool.c" | sha256sum | cut -c1-16)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   [ -x "$dest/bin/llamacpp-tool" ] &&
   grep -q "\"version\": \"$version\"" "$dest/node_modules/node-llama-cpp/package.json" 2>/dev/null; then
  echo "llamacpp: node-llama-cpp $version already installed in $dest"
  exit 0
fi

echo "llamacpp: installing node-llama-cpp $version (prebuilt CPU binaries) into $dest"
rm -f "$stamp"
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
(cd "$dest" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --ignore-scripts --omit=optional \
   --no-audit --no-fund --loglevel=error)

pkg="$dest/node_modules/node-llama-cpp"
bins="$dest/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
libllama="$(cd "$bins" && ls libllama.v*.so 2>/dev/null | head -n1)"
if [ -z "$libllama" ]; then
  echo "llamacpp: no libllama.v*.so in $bins" >&2
  exit 1
fi

# llama.h / ggml.h of the exact llama.cpp source node-llama-cpp was built from.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --no-checkout "$pkg/llama/gitRelease.bundle" "$tmp/llama.cpp"
rm -rf "$dest/include"
mkdir -p "$dest/include" "$dest/bin"
git -C "$tmp/llama.cpp" archive HEAD include/llama.h ggml/include | tar -x -C "$tmp"
cp "$tmp/include/llama.h" "$tmp"/ggml/include/*.h "$dest/include/"

abs_bins="$(cd "$bins" && pwd)"
rm -f "$dest/bin/llamacpp-quantize"
gcc -std=c17 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -I"$dest/include" "$src/llamacpp_tool.c" \
  -L"$abs_bins" -l:"$libllama" -l:libggml-base.so -Wl,-rpath,"$abs_bins" -o "$dest/bin/llamacpp-tool"

# Smoke test: the prebuilt CPU backend loads on this machine without building anything. (A file,
# not `node -e`: node-llama-cpp tests its binary in a child process that inherits execArgv.)
cat > "$dest/smoke.mjs" <<'JS'
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
console.log(`llamacpp: loaded ${llama.buildType} llama.cpp ${llama.llamaCppRelease.release}, gpu=${llama.gpu}`);
await llama.dispose();
JS
(cd "$dest" && node smoke.mjs)

echo "$want" > "$stamp"
