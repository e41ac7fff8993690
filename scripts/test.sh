#!/usr/bin/env bash
# test.sh: the whole test suite. Fetches the reference packages the golden tests compare against
# (npm), builds the Release tree (build/) and a Debug + AddressSanitizer + UndefinedBehaviorSanitizer
# tree (build-asan/) and the libFuzzer harnesses (build-fuzz/, scripts/fuzz.sh), and runs every ctest
# test in both trees (build-asan/ also fuzzes every harness for a fixed number of executions:
# test_fuzz_smoke), then build/'s tests again on the kernels of lower x86 levels (run_cpu_variant
# below). Output ends with a summary: ctest's verdict per tree and variant, the skips, and the wall
# time of every phase (fetch, configure + build of each tree, each ctest run) and of the whole run.
#
# Skips: a test exits 77 (ctest's SKIP_RETURN_CODE) when a reference or tool it needs is missing or
# this CPU lacks a feature, and prints why ("SKIP: ..." or "SKIP (CPU lacks: amx_int8): ...";
# tests/unit/check.h, tests/golden/suite.{py,mjs,sh}). The summary lists the CPU features by name
# (SKIPPED (CPU lacks: ...)) and every other skip with its reason. With MLXR_REQUIRE_ALL=1 (.ci/run)
# every other skip is a failure: the tests fail themselves, and this script also fails the run for
# any test ctest reports skipped without a "CPU lacks" reason.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
require_all="${MLXR_REQUIRE_ALL:-}"
t_start=$(date +%s)
times=()

phase() { # phase NAME COMMAND...: runs COMMAND, prints and records its wall time, returns its status
  local name=$1 t0 dt rc=0
  shift
  t0=$(date +%s)
  "$@" || rc=$?
  dt=$(($(date +%s) - t0))
  times+=("$(printf '  %-34s %4d:%02d' "$name" $((dt / 60)) $((dt % 60)))")
  echo "== time: $name: ${dt} s"
  return "$rc"
}

build_tree() { # build_tree DIR CMAKE_ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

# Every line a test printed that starts with SKIP, as "TEST<TAB>LINE", from ctest's log of the
# last run in tree $1 (it holds every test's output, passed or skipped).
skip_lines() {
  awk '/^[0-9]+\/[0-9]+ Test: /{t=$3} /^SKIP/{print t "\t" $0}' "$1/Testing/Temporary/LastTest.log"
}

verdicts=()
skip_report=()
cpu_lacks=()
status=0
run_ctest() { # run_ctest TREE [LABEL [CTEST ARGS...]]: ctest in TREE, then what it skipped and why
  local tree=$1 label=${2:-$1} out rc=0 t line reason
  shift $(($# < 2 ? $# : 2))
  out="$tree/Testing/ctest-output.log"
  mkdir -p "$tree/Testing"
  ctest --test-dir "$tree" --output-on-failure -j"$jobs" "$@" 2>&1 | tee "$out" || rc=$?
  verdicts+=("  $label: $(grep -E '^[0-9]+% tests passed' "$out" || echo "ctest exited $rc")")
  while IFS=$'\t' read -r t line; do
    case $line in
      "SKIP (CPU lacks: "*)
        reason=${line#SKIP (CPU lacks: }
        cpu_lacks+=("${reason%%)*}")
        skip_report+=("  $label $t: $line") ;;
      *) skip_report+=("  $label $t: $line") ;;
    esac
  done < <(skip_lines "$tree")
  # ctest's own list of skipped tests: under MLXR_REQUIRE_ALL only a missing CPU feature may skip
  for t in $(sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (Skipped)$/\1/p' "$out"); do
    if ! skip_lines "$tree" | grep -q "^$t"$'\t'"SKIP (CPU lacks: "; then
      skip_report+=("  $label $t: skipped (exit 77), not for a missing CPU feature")
      if [ "$require_all" = 1 ]; then
        echo "test.sh: $t was skipped in $label, and MLXR_REQUIRE_ALL=1 allows only missing CPU features"
        rc=1
      fi
    fi
  done
  return "$rc"
}

# The CPU variants of other machines (issue 11): build/'s tests again with MLXR's kernels pinned to
# a lower x86 level (MLXR_CPU_ISA, core/kernels/types.h) and llama.cpp's golden runs pinned to the
# ggml CPU variant such a machine loads (MLXR_GGML_CPU_VARIANT, tests/golden/llamacpp/nlc.mjs):
# AVX2 only (a 2013-2016 Intel or a Zen 1-3: ggml's haswell), AVX-512 without VNNI (Skylake-X),
# AVX-512 with VNNI and no AMX (an AMD EPYC Zen 4: ggml's zen4; Ice Lake: icelake). The unpinned
# run above is this machine's own best (AMX here). A level this CPU does not have is listed as a
# missing CPU feature, not run (`mlxr devices` must report the pinned kernels). The arm64 qemu test
# does not depend on the x86 level and is left out.
cpu_variants=("avx2:haswell" "avx512:skylakex" "avx512_vnni:zen4,icelake,cascadelake")
run_cpu_variant() { # run_cpu_variant ISA:GGML[,GGML...]
  local isa=${1%%:*} candidates=${1#*:} got ggml="" v
  got=$(MLXR_CPU_ISA=$isa build/bin/mlxr devices --json | sed -nE 's/.*"device": "cpu"[^}]*"isa": "([a-z0-9_]+)".*/\1/p')
  if [ "$got" != "$isa" ]; then
    echo "test.sh: this CPU has no $isa kernels to pin (mlxr devices: ${got:-?})"
    cpu_lacks+=("$isa")
    skip_report+=("  build/ with MLXR_CPU_ISA=$isa: SKIP (CPU lacks: $isa)")
    return 0
  fi
  for v in ${candidates//,/ }; do
    if [ "$(MLXR_GGML_CPU_VARIANT=$v node tests/golden/llamacpp/cpu_variant.mjs)" = "$v" ]; then
      ggml=$v
      break
    fi
  done
  if [ -z "$ggml" ]; then
    echo "test.sh: no ggml CPU variant of $candidates loads on this CPU"
    cpu_lacks+=("ggml-$candidates")
    skip_report+=("  build/ with MLXR_CPU_ISA=$isa: SKIP (CPU lacks: what ggml's $candidates need)")
    return 0
  fi
  MLXR_CPU_ISA=$isa MLXR_GGML_CPU_VARIANT=$ggml \
    run_ctest build "build/ (MLXR_CPU_ISA=$isa, ggml $ggml)" -E '^test_arm64_qemu'
}

phase "fetch test dependencies" bash scripts/fetch_test_deps.sh
phase "configure + build build/" build_tree build -DCMAKE_BUILD_TYPE=Release
phase "configure + build build-asan/" build_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DMLXR_SANITIZE=ON
# the libFuzzer harnesses (clang; test_fuzz_smoke in build-asan/ fuzzes each for a fixed number of executions), built here so
# that their build time is a phase of its own; without clang/libFuzzer fuzz.sh exits 77 and the
# smoke test reports the skip
fuzz_rc=0
phase "configure + build build-fuzz/" bash scripts/fuzz.sh 0 || fuzz_rc=$?
[ "$fuzz_rc" = 0 ] || [ "$fuzz_rc" = 77 ] || exit "$fuzz_rc"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== sanitizer build (build-asan) =="
phase "ctest build-asan/" run_ctest build-asan || status=1
echo "== release build (build) =="
phase "ctest build/" run_ctest build || status=1
for variant in "${cpu_variants[@]}"; do
  echo "== release build, CPU variant ${variant%%:*} =="
  phase "ctest build/ ${variant%%:*}" run_cpu_variant "$variant" || status=1
done

total=$(($(date +%s) - t_start))
echo
echo "== summary${require_all:+ (MLXR_REQUIRE_ALL=1)} =="
printf '%s\n' "${verdicts[@]}"
if [ "${#skip_report[@]}" -eq 0 ]; then
  echo "  no skips"
else
  printf '%s\n' "${skip_report[@]}"
fi
if [ "${#cpu_lacks[@]}" -gt 0 ]; then
  echo "SKIPPED (CPU lacks: $(printf '%s\n' "${cpu_lacks[@]}" | sort -u | paste -sd, - | sed 's/,/, /g'))"
fi
echo "wall time (m:ss):"
printf '%s\n' "${times[@]}"
printf '  %-34s %4d:%02d\n' "total" $((total / 60)) $((total % 60))
if [ "$status" -eq 0 ]; then echo "== PASSED"; else echo "== FAILED"; fi
exit $status
