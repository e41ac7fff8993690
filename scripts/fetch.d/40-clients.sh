#!/usr/bin/env bash
# 40-clients.sh: install the official OpenAI and Ollama JavaScript clients (versions pinned in
# tests/golden/daemon/package.json) into tests/.cache/daemon-clients; tests/golden/test_daemon_*.mjs
# drive a live mlxrd with them. Idempotent: skips when the stamp matches the package.json.
set -euo pipefail
cd "$(dirname "$0")/../.."

src=tests/golden/daemon
dest=tests/.cache/daemon-clients
stamp="$dest/.stamp"
want="clients $(sha256sum "$src/package.json" | cut -c1-16)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   [ -f "$dest/node_modules/openai/package.json" ] && [ -f "$dest/node_modules/ollama/package.json" ]; then
  echo "clients: openai and ollama already installed in $dest"
  exit 0
fi
echo "clients: installing openai and ollama npm packages into $dest"
rm -f "$stamp"
mkdir -p "$dest"
cp "$src/package.json" "$dest/"
(cd "$dest" && npm install --no-audit --no-fund --ignore-scripts --no-package-lock >/dev/null)
echo "$want" > "$stamp"
echo "clients: done"
