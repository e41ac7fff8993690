#!/usr/bin/env bash
# test_arm64_qemu.sh: the NEON kernels are verified, not assumed. Cross-compiles core/common +
# core/kernels and the kernel unit tests (test_quants, test_cpu_ops, tests/unit/test_kernel*.c)
# for arm64 with Debian's gcc-aarch64-linux-gnu (CMake toolchain cmake/aarch64-linux-gnu.cmake,
# -DMLXR_KERNELS_ONLY=ON, Release) and runs every test binary under qemu-user:
#   1. built with +dotprod (the default: SDOT kernels), run on `-cpu max` (has dotprod);
#   2. built for plain Armv8.0 (-march=armv8-a, MLXR_NEON_DOTPROD=OFF: the SMULL/SADALP kernels),
#      run on `-cpu cortex-a57`, a core without dotprod, so no Armv8.2 instruction can hide there;
#   3. the +dotprod build's test_quants on `-cpu cortex-a57`: the runtime check (HWCAP_ASIMDDP)
#      must fall back to the scalar level instead of faulting (and say that the CPU lacks
#      asimddp: exit 77, tests/unit/check.h).
# Each run's output must also name the level it tested (scalar and neon, with the expected
# dot-product flavour), and the objects must contain SDOT in build 1 and none in build 2. The
# tests run are those ctest registers in each tree (the x86-only kernel tests are not built there).
# Build trees: "${MLXR_BUILD:-build}-arm64" and "...-arm64-v80" (never build/ itself).
# Without the cross compiler or qemu it is skipped (exit 77; a failure under MLXR_REQUIRE_ALL=1,
# tests/golden/suite.sh): scripts/setup.sh installs them (apt packages gcc-aarch64-linux-gnu and
# qemu-user-static).
set -uo pipefail
SRC=${MLXR_SRC:-$(pwd)}
BASE=${MLXR_BUILD:-$SRC/build}
SYSROOT=/usr/aarch64-linux-gnu
pass=0
fail=0
. "$SRC/tests/golden/suite.sh"
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
finish() { echo "$pass passed, $fail failed"; suite_exit "$fail"; }

need() { # need TOOL APT_PACKAGE
  if ! command -v "$1" >/dev/null 2>&1; then
    suite_missing "$1 not found: install the Debian package $2 (apt-get install -y $2; scripts/setup.sh does)"
  fi
}
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
need qemu-aarch64-static qemu-user-static
need cmake cmake
if [ ! -d "$SYSROOT/lib" ]; then
  suite_missing "$SYSROOT/lib missing: install gcc-aarch64-linux-gnu (it brings libc6-arm64-cross)"
fi
[ "$SUITE_MISSING" -eq 0 ] || finish

start=$(date +%s)
build() { # build DIR EXTRA_CMAKE_ARGS...
  local dir=$1; shift
  echo "== configure + build $dir ($*)"
  mkdir -p "$dir"
  if ! cmake -S "$SRC" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$SRC/cmake/aarch64-linux-gnu.cmake" \
      -DMLXR_KERNELS_ONLY=ON -DCMAKE_BUILD_TYPE=Release "$@" >"$dir/build.log" 2>&1 ||
     ! cmake --build "$dir" -j2 >>"$dir/build.log" 2>&1; then
    tail -30 "$dir/build.log"
    return 1
  fi
}

DP=$BASE-arm64
V80=$BASE-arm64-v80
build "$DP" -DMLXR_NEON_DOTPROD=ON -DCMAKE_C_FLAGS= && ok "build arm64 +dotprod ($DP)" || bad "build arm64 +dotprod"
build "$V80" -DMLXR_NEON_DOTPROD=OFF -DCMAKE_C_FLAGS=-march=armv8-a && ok "build arm64 armv8-a ($V80)" ||
  bad "build arm64 armv8-a"
[ "$fail" -eq 0 ] || finish

# The instructions themselves: SDOT in the +dotprod kernels, none anywhere in the Armv8.0 build.
objdump_bin=aarch64-linux-gnu-objdump
if command -v "$objdump_bin" >/dev/null 2>&1; then
  n_dp=$("$objdump_bin" -d "$DP"/CMakeFiles/mlxr_kernels.dir/core/kernels/cpu/*_neon.c.o | grep -cw sdot)
  n_v80=$("$objdump_bin" -d "$V80"/CMakeFiles/mlxr_kernels.dir/core/kernels/cpu/*.c.o | grep -cw sdot)
  n_sadalp=$("$objdump_bin" -d "$V80"/CMakeFiles/mlxr_kernels.dir/core/kernels/cpu/*_neon.c.o | grep -cw sadalp)
  [ "$n_dp" -gt 0 ] && ok "+dotprod kernels use SDOT ($n_dp)" || bad "+dotprod kernels have no SDOT"
  [ "$n_v80" -eq 0 ] && [ "$n_sadalp" -gt 0 ] && ok "armv8-a kernels: no SDOT, SADALP ($n_sadalp)" ||
    bad "armv8-a kernels: $n_v80 SDOT, $n_sadalp SADALP"
else
  bad "$objdump_bin not found (binutils-aarch64-linux-gnu, a dependency of gcc-aarch64-linux-gnu)"
fi

run() { # run CPU BIN [rc=N] EXPECT... : the test must exit N (0 unless given) and print every EXPECT
  local cpu=$1 bin=$2; shift 2
  local want_rc=0
  case "${1:-}" in rc=*) want_rc=${1#rc=}; shift ;; esac
  local name; name="$(basename "$(dirname "$(dirname "$bin")")")/$(basename "$bin") on -cpu $cpu"
  local out t0 rc
  t0=$(date +%s)
  out=$(cd "$SRC" && qemu-aarch64-static -L "$SYSROOT" -cpu "$cpu" "$bin" 2>&1)
  rc=$?
  local secs=$(($(date +%s) - t0))
  if [ $rc -ne "$want_rc" ]; then
    echo "$out" | grep -v '^  ' | tail -25
    bad "$name: exit $rc, want $want_rc (${secs}s)"
    return
  fi
  local e
  for e in "$@"; do
    # "=LINE" must be a whole line of the output; anything else a fragment of one
    if { [ "${e:0:1}" = "=" ] && ! grep -qxF -- "${e:1}" <<<"$out"; } ||
       { [ "${e:0:1}" != "=" ] && ! grep -qF -- "$e" <<<"$out"; }; then
      echo "$out" | head -20
      bad "$name: output lacks '$e'"
      return
    fi
  done
  echo "$out" | grep -E '^(cpu simd level|neon kernels|levels tested|gemm:|ran \[)' | sed 's/^/       /'
  ok "$name (${secs}s)"
}

registered() { ctest --test-dir "$1" -N | sed -n 's/^ *Test *#[0-9]*: *//p'; } # the tree's tests
for t in $(registered "$DP"); do
  bin=$DP/bin/$t
  case $t in
    test_quants) run max "$bin" "cpu simd level: neon" "dotprod (SDOT): yes" "=levels tested: scalar neon" ;;
    test_cpu_ops) run max "$bin" "ran [neon, 1 threads]" "ran [neon, 3 threads]" ;;
    *) run max "$bin" ;;
  esac
done
for t in $(registered "$V80"); do
  bin=$V80/bin/$t
  case $t in
    test_quants) run cortex-a57 "$bin" "cpu simd level: neon" "dotprod (SDOT): no" "=levels tested: scalar neon" ;;
    test_cpu_ops) run cortex-a57 "$bin" "ran [neon, 1 threads]" "ran [neon, 3 threads]" ;;
    *) run cortex-a57 "$bin" ;;
  esac
done
run cortex-a57 "$DP/bin/test_quants" rc=77 "=cpu simd level: scalar" "dotprod (SDOT): yes" "=levels tested: scalar" \
  "SKIP (CPU lacks: asimddp)"

echo "arm64 under qemu: $(($(date +%s) - start))s in all"
finish
