#!/usr/bin/env bash
# 50-json-schema.sh: install the JSON Schema references (versions pinned in
# tests/golden/json_schema/package.json) into tests/.cache/json-schema: ajv and ajv-formats (the
# validator the constrained outputs are checked with), zod (real z.toJSONSchema output, made at
# test time) and json-schema-test-suite (the official JSON Schema Test Suite, draft 4, as npm
# ships it). Used by tests/golden/test_json_schema_ajv.mjs and test_json_schema_suite.mjs.
# Idempotent: skips when the stamp matches the package.json.
set -euo pipefail
cd "$(dirname "$0")/../.."

src=tests/golden/json_schema
dest=tests/.cache/json-schema
stamp="$dest/.stamp"
want="json-schema $(sha256sum "$src/package.json" | cut -c1-16)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   [ -f "$dest/node_modules/ajv/package.json" ] && [ -f "$dest/node_modules/zod/package.json" ] &&
   [ -d "$dest/node_modules/json-schema-test-suite/tests/draft4" ]; then
  echo "json-schema: ajv, ajv-formats, zod and the test suite already installed in $dest"
  exit 0
fi
echo "json-schema: installing ajv, ajv-formats, zod and json-schema-test-suite into $dest"
rm -f "$stamp"
mkdir -p "$dest"
cp "$src/package.json" "$dest/"
(cd "$dest" && npm install --no-audit --no-fund --ignore-scripts --no-package-lock >/dev/null)
echo "$want" > "$stamp"
echo "json-schema: done"
