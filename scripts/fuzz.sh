#!/usr/bin/env bash
# fuzz.sh: build the libFuzzer harnesses (tests/fuzz/fuzz_*.c, one per parser) and run each for
# SECONDS. The build is its own tree, build-fuzz/ (clang, -DMLXR_FUZZ=ON: every object with
# -fsanitize=fuzzer-no-link,address,undefined), never the regular ones.
#
# Usage: bash scripts/fuzz.sh SECONDS [HARNESS...]      (default: every harness, one after another)
#        bash scripts/fuzz.sh 0                          (build the harnesses only; scripts/test.sh)
#   MLXR_FUZZ_JOBS=N    run N harnesses at once (default 1)
#   MLXR_FUZZ_SEED=N    libFuzzer's -seed (default: a random one per run)
#   MLXR_FUZZ_RUNS=N    stop each harness after a fixed number of executions (libFuzzer's -runs):
#                       N for the slow harnesses (grammar, schema, template, tokenizer), 10 N for
#                       the others; SECONDS stays the cap. With a fixed seed too, a run executes the
#                       same inputs whatever the machine's speed or load, so a pass stays a pass on
#                       the same code (the suite's test_fuzz_smoke; a time limit alone is not enough:
#                       a faster or idler machine goes further and can find what a slower one missed)
#   MLXR_FUZZ_WORK=DIR  keep each harness's grown corpus and log in DIR/<harness>/ (default: a
#                       temporary directory, removed at the end)
#   MLXR_FUZZ_KEEP_GOING=1  for long campaigns: libFuzzer's fork mode, which records a crash, leak,
#                       timeout or out-of-memory and goes on fuzzing (the run still fails at the end)
#
# Each harness starts from its seed corpus, tests/fuzz/corpus/<harness>/ (read-only here: every
# seed is replayed first, so a crash input kept there is a regression test), with the dictionary
# tests/fuzz/dict/<harness>.dict when there is one. New corpus entries go to the work directory,
# not the repository. A crash, leak, timeout or out-of-memory stops that harness and fails the
# run; the reproducer is written to build-fuzz/artifacts/ (replay: build-fuzz/bin/HARNESS FILE);
# once the bug is fixed, keep the reproducer in the harness's corpus directory.
# Prints one line per harness: executions, coverage (libFuzzer's cov/ft at the end), corpus size.
# Exit status: 0 when every harness ran clean, 1 otherwise, 77 when clang or libFuzzer is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then
  echo "usage: bash scripts/fuzz.sh SECONDS [HARNESS...]" >&2
  exit 2
fi
seconds="$1"
shift
jobs="${MLXR_FUZZ_JOBS:-1}"
if [ -n "${MLXR_FUZZ_RUNS:-}" ] && ! [[ "$MLXR_FUZZ_RUNS" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: MLXR_FUZZ_RUNS must be a positive number of executions" >&2
  exit 2
fi

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz.sh: SKIP: clang is not installed (scripts/setup.sh installs clang and libfuzzer-14-dev)" >&2
  exit 77
fi
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' |
    clang -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  echo "fuzz.sh: SKIP: clang cannot link libFuzzer (install libfuzzer-14-dev; scripts/setup.sh does)" >&2
  exit 77
fi

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DMLXR_FUZZ=ON -DMLXR_CUDA=OFF -DMLXR_WERROR=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
cmake --build build-fuzz -j"$(nproc)"
[ "$seconds" -gt 0 ] || exit 0 # libFuzzer's -max_total_time=0 would mean "forever"

if [ $# -gt 0 ]; then
  harnesses=("$@")
else
  harnesses=()
  for f in tests/fuzz/fuzz_*.c; do harnesses+=("$(basename "$f" .c)"); done
fi

if [ -n "${MLXR_FUZZ_WORK:-}" ]; then
  work="$MLXR_FUZZ_WORK"
  mkdir -p "$work"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/mlxr-fuzz.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p build-fuzz/artifacts

# Longest input per harness: the file formats and chat templates need room, requests less.
max_len() {
  case "$1" in
    fuzz_gguf | fuzz_safetensors | fuzz_tokenizer_json) echo 131072 ;;
    fuzz_template) echo 32768 ;;
    *) echo 16384 ;;
  esac
}

# Executions for MLXR_FUZZ_RUNS: the slow harnesses (about 1,000 executions a second on one core)
# get N, the fast ones (10,000 to 30,000 a second) ten times as many.
runs_for() {
  case "$1" in
    fuzz_gbnf | fuzz_json_schema | fuzz_template | fuzz_tokenizer_json) echo "$MLXR_FUZZ_RUNS" ;;
    *) echo $((MLXR_FUZZ_RUNS * 10)) ;;
  esac
}

run_one() {
  local h="$1" dir="$work/$1"
  mkdir -p "$dir/corpus"
  local args=(-max_total_time="$seconds" -max_len="$(max_len "$h")" -timeout=30 -rss_limit_mb=2048
              -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$h-")
  [ -f "tests/fuzz/dict/$h.dict" ] && args+=(-dict="tests/fuzz/dict/$h.dict")
  [ -n "${MLXR_FUZZ_KEEP_GOING:-}" ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  [ -n "${MLXR_FUZZ_SEED:-}" ] && args+=(-seed="$MLXR_FUZZ_SEED")
  [ -n "${MLXR_FUZZ_RUNS:-}" ] && args+=(-runs="$(runs_for "$h")")
  local seeds=()
  [ -d "tests/fuzz/corpus/$h" ] && seeds+=("tests/fuzz/corpus/$h")
  local rc=0
  ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    "build-fuzz/bin/$h" "${args[@]}" "$dir/corpus" "${seeds[@]}" >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

summary() {
  local h="$1" dir="$work/$1" rc
  rc="$(cat "$dir/rc")"
  local done_line execs
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$dir/log" | tail -1 || true)"
  execs="$(grep -E '^stat::number_of_executed_units:' "$dir/log" | awk '{print $2}' | tail -1 || true)"
  if [ -z "$done_line" ]; then # stopped by a finding, or fork mode: the last status line
    # ("#N\tNEW cov: .. ft: .. corp: ..", fork mode "#N: cov: ..")
    done_line="$(grep -E '^#[0-9]+:?[[:space:]].*cov: ' "$dir/log" | tail -1 || true)"
    [ -n "$execs" ] || execs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$done_line")"
  fi
  local cov ft corp found
  cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")"
  ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")"
  corp="$(sed -nE 's/.* corp: ([0-9]+(\/[0-9A-Za-z]+)?).*/\1/p' <<<"$done_line")"
  found="$(grep -cE 'Test unit written to|^CRASH: |written into .*(crash|leak|timeout|oom)' "$dir/log" || true)"
  # fork mode (MLXR_FUZZ_KEEP_GOING) counts what its jobs hit in its status lines: "oom/timeout/crash: 0/1/0"
  local forked
  forked="$(sed -nE 's/.* oom\/timeout\/crash: ([0-9]+)\/([0-9]+)\/([0-9]+).*/\1 \2 \3/p' <<<"$done_line")"
  if [ -n "$forked" ]; then
    local f_oom f_timeout f_crash
    read -r f_oom f_timeout f_crash <<<"$forked"
    found=$((found + f_oom + f_timeout + f_crash))
  fi
  if [ "$rc" = 0 ] && [ "$found" = 0 ]; then
    printf '%-22s ok    execs %-10s cov %-6s ft %-7s corpus %s\n' "$h" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
  else
    printf '%-22s FAIL  (exit %s, %s reproducers; execs %s cov %s ft %s corpus %s; log %s)\n' "$h" "$rc" "$found" \
      "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$dir/log"
    grep -E 'ERROR: |SUMMARY: |Test unit written to|^CRASH: |runtime error' "$dir/log" | head -12 | sed 's/^/    /'
    return 1
  fi
}

echo "fuzz.sh: ${#harnesses[@]} harnesses x ${seconds}s, $jobs at a time, work in $work"
running=0
for h in "${harnesses[@]}"; do
  if [ ! -x "build-fuzz/bin/$h" ]; then
    echo "fuzz.sh: no harness $h (tests/fuzz/$h.c)" >&2
    exit 2
  fi
  run_one "$h" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

status=0
for h in "${harnesses[@]}"; do summary "$h" || status=1; done
if [ "$status" -ne 0 ] && [ -z "${MLXR_FUZZ_WORK:-}" ]; then
  trap - EXIT # keep the logs of a failed run
  echo "fuzz.sh: logs kept in $work"
fi
exit "$status"
