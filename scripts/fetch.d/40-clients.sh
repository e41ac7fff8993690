#!/usr/bin/env bash
# 40-clients.sh: install the official JavaScript clients (versions pinned in
# tests/golden/daemon/package.json: openai, ollama, @anthropic-ai/sdk, the Vercel AI SDK with
# @ai-sdk/openai, LangChain's @langchain/openai, LlamaIndex TS's @llamaindex/openai with its peer
# @llamaindex/core) into tests/.cache/daemon-clients;
# tests/golden/test_daemon_*.mjs drive a live mlxrd with them. Idempotent: skips when the stamp
# matches the package.json and every pinned package is there.
set -euo pipefail
cd "$(dirname "$0")/../.."

src=tests/golden/daemon
dest=tests/.cache/daemon-clients
stamp="$dest/.stamp"
want="clients $(sha256sum "$src/package.json" | cut -c1-16)"

pkgs=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["dependencies"]))' "$src/package.json")
all_there=1
for p in $pkgs; do [ -f "$dest/node_modules/$p/package.json" ] || all_there=0; done
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ "$all_there" = 1 ]; then
  echo "clients: $pkgs already installed in $dest"
  exit 0
fi
echo "clients: installing $pkgs into $dest"
rm -f "$stamp"
mkdir -p "$dest"
cp "$src/package.json" "$dest/"
(cd "$dest" && npm install --no-audit --no-fund --ignore-scripts --no-package-lock >/dev/null)
for p in $pkgs; do
  [ -f "$dest/node_modules/$p/package.json" ] || { echo "clients: $p missing after npm install" >&2; exit 1; }
done
echo "$want" > "$stamp"
echo "clients: done"
