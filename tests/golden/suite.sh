# suite.sh: sourced by the shell golden tests: how a test says that a tool or reference it needs is
# missing (the suite's skip protocol, as tests/golden/suite.py, suite.mjs and tests/unit/check.h
# have it). suite_missing WHY prints "SKIP: WHY" (and, with MLXR_REQUIRE_ALL=1, "FAIL: ..."), and
# suite_exit FAILED ends the test: 1 if checks failed (or anything was missing under
# MLXR_REQUIRE_ALL=1), else 77, ctest's skip code (SKIP_RETURN_CODE in tests/CMakeLists.txt), if
# anything was missing, else 0.
SUITE_MISSING=0

suite_missing() {
  SUITE_MISSING=$((SUITE_MISSING + 1))
  echo "SKIP: $*"
  if [ "${MLXR_REQUIRE_ALL:-}" = 1 ]; then
    echo "FAIL: $* (MLXR_REQUIRE_ALL=1: every tool and reference must be present)"
  fi
}

suite_exit() { # suite_exit FAILED_COUNT
  if [ "$1" -gt 0 ] || { [ "$SUITE_MISSING" -gt 0 ] && [ "${MLXR_REQUIRE_ALL:-}" = 1 ]; }; then
    exit 1
  fi
  [ "$SUITE_MISSING" -gt 0 ] && exit 77
  exit 0
}
