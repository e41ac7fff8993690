#!/usr/bin/env bash
# tests/gpu/run.sh: the GPU test suite, one command on a machine with an NVIDIA GPU (CI has none; it
# runs the CPU suite and the no-GPU fallback test only). From the repository root:
#
#   bash tests/gpu/run.sh [--no-build] [--quick] [--prebuilt DIR]
#
# --prebuilt DIR: if the build fails (no pkg-config, an old CMake...), use the mlxr, mlxrd and
# test_cuda_ops built elsewhere (with the same libraries: pack_deps.sh) from DIR instead.
#
# 1. builds a Release tree with the CUDA backend into build-gpu/ (MLXR_CUDA=ON, sm_90 and sm_80;
#    MLXR_CUDA_ARCHS overrides). Where pkg-config lacks the libraries (the lent GPU machines have
#    none of Debian's -dev packages and no network), it uses .devcarry/deps made on a Debian machine
#    by tests/gpu/pack_deps.sh: MLXR's binaries then run with that lib/ on LD_LIBRARY_PATH (through
#    wrapper scripts in build-gpu/bin; the machine's own tools, curl among them, keep its libraries);
# 2. test_cuda_ops: every CUDA op against the CPU backend and float64, every weight type, awkward
#    sizes, CUDA graph capture and replay (tests/gpu/test_cuda_ops.c); again with
#    MLXR_CUDA_SPLIT_MERGE=1 (the in-kernel merge of decode attention splits, off by default);
# 3. test_hf_logits.py on the GPU (MLXR_TEST_DEVICE=cuda): the Hugging Face transformers fixtures of
#    tests/fixtures/hf, f32/f16/bf16/q8_0 within the CPU's bounds, f32 greedy = transformers;
# 4. compare_devices.py: whole models of every weight type, CUDA against CPU logits (200- and
#    5-token prompts), f32 greedy generations identical to the CPU's;
# 5. test_device_fallback.sh with a GPU present: --device cuda really runs there;
# 6. test_concurrency.py against mlxrd on the GPU (MLXR_DEVICE=cuda): batch invariance at 1/8/32
#    concurrent streaming clients, prefix caching, load rounds with disconnects;
# 7. the official openai / ollama npm clients against mlxrd on the GPU, where node and the fetched
#    clients (tests/.cache) are present.
# Every step prints PASS or FAIL (a step that cannot run is a FAIL with its reason); the last line is
# `N passed, N failed`. --quick runs steps 1-3 only.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=1
quick=0
prebuilt=""
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --quick) quick=1 ;;
    --prebuilt) prebuilt=$2; shift ;;
    *) echo "usage: bash tests/gpu/run.sh [--no-build] [--quick] [--prebuilt DIR]" >&2; exit 2 ;;
  esac
  shift
done
pass=0
fail=0
step() { # name, command...
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name"
  if "$@"; then
    pass=$((pass + 1)); echo "PASS $name ($((SECONDS - t0)) s)"
  else
    fail=$((fail + 1)); echo "FAIL $name ($((SECONDS - t0)) s)"
  fi
}
skip_fail() { echo "$2"; return 1; } # a step that cannot run is not a pass

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export MLXR_BIN=$PWD/build-gpu/bin MLXR_SRC=$PWD
# The libraries, where the machine lacks them (see pack_deps.sh).
deps=$PWD/.devcarry/deps
if ! pkg-config --exists libmicrohttpd libcjson libpcre2-8 yaml-0.1 libedit libcurl 2>/dev/null && [ -d "$deps" ]; then
  echo "using the packed libraries in $deps"
  export PKG_CONFIG_PATH=$deps/lib/pkgconfig CPATH=$deps/include${CPATH:+:$CPATH}
  export LIBRARY_PATH=$deps/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
  linkflags="-Wl,-rpath-link,$deps/lib"
  libdir=$deps/lib
fi
# MLXR's binaries with the packed libraries (libdir), the rest of the machine without them: each
# binary moves to build-gpu/bin/real/ and a script that sets LD_LIBRARY_PATH and execs it (same
# pid) takes its place.
wrap_bins() {
  [ -n "${libdir:-}" ] || return 0
  mkdir -p build-gpu/bin/real
  local b
  for b in mlxr mlxrd test_cuda_ops; do
    [ -f "build-gpu/bin/$b" ] || continue
    if [ "$(head -c 2 "build-gpu/bin/$b")" != "#!" ]; then mv -f "build-gpu/bin/$b" "build-gpu/bin/real/$b"; fi
    printf '#!/bin/sh\nLD_LIBRARY_PATH=%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} exec %s "$@"\n' \
      "$libdir" "$PWD/build-gpu/bin/real/$b" >"build-gpu/bin/$b"
    chmod +x "build-gpu/bin/$b"
  done
}
PY=python3
$PY -c "import numpy" 2>/dev/null || PY=/usr/bin/python3
# node and the npm clients, where the machine lacks them (see pack_node.sh)
if ! command -v node >/dev/null && [ -f .devcarry/node.xz ]; then
  mkdir -p /tmp/mlxr-node
  $PY -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
    .devcarry/node.xz /tmp/mlxr-node/node && chmod +x /tmp/mlxr-node/node && export PATH=/tmp/mlxr-node:$PATH
fi
if [ ! -d tests/.cache/daemon-clients/node_modules/openai ] && [ -f .devcarry/clients.tar.xz ]; then
  mkdir -p tests/.cache/daemon-clients && tar -C tests/.cache/daemon-clients -xJf .devcarry/clients.tar.xz 2>/dev/null ||
    $PY -c "import tarfile, sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .devcarry/clients.tar.xz tests/.cache/daemon-clients
fi

do_build() {
  local nvcc
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  # -Werror off: the machine's compiler may be newer than the CI's gcc 12, whose warnings we keep at zero
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DMLXR_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DMLXR_CUDA_ARCHS="${MLXR_CUDA_ARCHS:-90;80-real}" -DMLXR_WERROR=OFF \
    ${linkflags:+-DCMAKE_EXE_LINKER_FLAGS="$linkflags"} >build-gpu.log 2>&1 &&
    cmake --build build-gpu -j"$(nproc)" --target mlxr mlxrd test_cuda_ops >>build-gpu.log 2>&1 ||
    { tail -40 build-gpu.log; return 1; }
}
use_prebuilt() {
  mkdir -p build-gpu/bin && cp "$prebuilt"/mlxr "$prebuilt"/mlxrd "$prebuilt"/test_cuda_ops build-gpu/bin/ &&
    echo "using the binaries prebuilt in $prebuilt"
}
if [ "$build" = 1 ]; then
  if ! step "build (CUDA)" do_build; then
    [ -n "$prebuilt" ] && use_prebuilt || { echo "$pass passed, $fail failed"; exit 1; }
  fi
elif [ -n "$prebuilt" ]; then
  use_prebuilt || exit 1
fi
wrap_bins

step "op parity (test_cuda_ops)" "$MLXR_BIN/test_cuda_ops"
step "op parity, decode splits merged in-kernel (MLXR_CUDA_SPLIT_MERGE=1)" env MLXR_CUDA_SPLIT_MERGE=1 "$MLXR_BIN/test_cuda_ops"
step "transformers fixtures on the GPU (test_hf_logits.py)" env MLXR_TEST_DEVICE=cuda $PY tests/golden/test_hf_logits.py
if [ "$quick" = 0 ]; then
  step "whole models, CUDA vs CPU (compare_devices.py)" $PY tests/gpu/compare_devices.py
  if command -v curl >/dev/null; then
    step "device choice with a GPU (test_device_fallback.sh)" bash tests/golden/test_device_fallback.sh
  else
    step "device choice with a GPU (test_device_fallback.sh)" skip_fail x "curl is not installed here"
  fi
  step "mlxrd on the GPU under concurrent clients (test_concurrency.py)" \
    env MLXR_DEVICE=cuda MLXR_VALGRIND=0 $PY tests/golden/test_concurrency.py
  if command -v node >/dev/null && [ -d tests/.cache/daemon-clients ]; then
    step "openai npm client against mlxrd on the GPU" env MLXR_DEVICE=cuda node tests/golden/test_daemon_openai.mjs
    step "ollama npm client against mlxrd on the GPU" env MLXR_DEVICE=cuda node tests/golden/test_daemon_ollama.mjs
  else
    step "openai / ollama npm clients against mlxrd on the GPU" skip_fail x \
      "node or the fetched clients (tests/.cache/daemon-clients) are missing on this machine"
  fi
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
