#!/usr/bin/env bash
# setup.sh: install every system dependency (idempotent), build Release into build/, and create
# the small default model that `mlxr run` uses when no model is named (models/default.gguf).
# Usage: bash scripts/setup.sh            (set up, build, make the model)
#        MLXR_SETUP_NO_APT=1 bash ...     (skip apt-get: for machines already provisioned)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake pkg-config git libpcre2-dev libcjson-dev libutf8proc-dev libedit-dev libcurl4-openssl-dev python3 python3-numpy
  python3-jinja2 python3-sentencepiece ca-certificates
  valgrind prometheus  # the tests: valgrind round of test_concurrency.py; promtool (test_daemon_wire.sh)
  clang libfuzzer-14-dev  # scripts/fuzz.sh: libFuzzer harnesses (tests/fuzz)
  libmicrohttpd-dev libyaml-dev curl gcc-aarch64-linux-gnu qemu-user-static
  libsqlite3-dev libssl-dev  # daemon/registry: the SQLite catalog, SHA-256 of blobs (libcrypto)
  coreutils)  # sha256sum: the registry tests' independent digest reference

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs npm); fi
if [ "${#missing[@]}" -gt 0 ] && [ -z "${MLXR_SETUP_NO_APT:-}" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"

# A small random-weight model in a real architecture (Llama layout), so `mlxr run` has
# something to generate with on a fresh machine.
if [ ! -f models/default.gguf ]; then
  mkdir -p models
  /usr/bin/python3 scripts/make_random_model.py --out models/default-hf
  build/bin/mlxr convert models/default-hf -o models/default.gguf --type f16
fi
echo "setup: done. Try: build/bin/mlxr run models/default.gguf \"Once upon a time\" -n 32"
