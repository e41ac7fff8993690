#!/usr/bin/env bash
# test.sh: the whole test suite. Fetches the reference packages the golden tests compare against
# (npm), builds the Release tree (build/) and a Debug + AddressSanitizer + UndefinedBehaviorSanitizer
# tree (build-asan/), and runs every ctest test in both. Output ends with ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"

bash scripts/fetch_test_deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMLXR_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
echo "== sanitizer build (build-asan) =="
ctest --test-dir build-asan --output-on-failure -j"$jobs" || status=1
echo "== release build (build) =="
ctest --test-dir build --output-on-failure -j"$jobs" || status=1
exit $status
