"""suite.py: how a golden test says that something it needs is missing (the suite's skip protocol,
shared with tests/unit/check.h, tests/golden/suite.mjs and tests/golden/suite.sh).

A reference or tool that is genuinely unavailable (an npm package not fetched, llama.cpp's helper
not built, valgrind or promtool not installed) is not a pass: the test calls missing(why), which
prints "SKIP: why", and ends with exit_status(failed): 1 if a check failed, else 77 (ctest's skip
code, SKIP_RETURN_CODE in tests/CMakeLists.txt) if anything was missing, else 0. skip(why) does
both at once for a test that can check nothing without it. With MLXR_REQUIRE_ALL=1 (.ci/run,
scripts/test.sh) nothing may be missing: missing() also prints "FAIL: ..." and the exit status is 1.
Our own binaries are not references: a test whose mlxr or mlxrd is not built fails.
"""
import os
import sys

SKIP = 77
_missing = []


def require_all():
    return os.environ.get("MLXR_REQUIRE_ALL") == "1"


def missing(why):
    """Records (and prints) that a part of the test cannot run because `why`."""
    _missing.append(why)
    print("SKIP: " + why, flush=True)
    if require_all():
        print("FAIL: %s (MLXR_REQUIRE_ALL=1: every reference must be present)" % why, flush=True)


def exit_status(failed):
    if failed or (_missing and require_all()):
        return 1
    return SKIP if _missing else 0


def skip(why):
    """The whole test needs `why`: print the summary line and exit 77 (1 under MLXR_REQUIRE_ALL)."""
    missing(why)
    print("0 passed, 0 failed", flush=True)
    sys.exit(exit_status(0))
