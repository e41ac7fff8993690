// suite.mjs: how a golden test says that a reference it needs is missing (the suite's skip
// protocol, as tests/golden/suite.py, suite.sh and tests/unit/check.h have it): "SKIP: why" and
// exit status 77, ctest's skip code (SKIP_RETURN_CODE in tests/CMakeLists.txt); with
// MLXR_REQUIRE_ALL=1 (.ci/run, scripts/test.sh) nothing may be missing, and the exit status is 1.
export const SKIP = 77;

export function skip(why) {
  console.log(`SKIP: ${why}`);
  if (process.env.MLXR_REQUIRE_ALL === "1") {
    console.log(`FAIL: ${why} (MLXR_REQUIRE_ALL=1: every reference must be present)`);
    console.log("0 passed, 1 failed");
    process.exit(1);
  }
  console.log("0 passed, 0 failed");
  process.exit(SKIP);
}
