/*
 * check.h: the unit tests' assertion: CHECK(cond, fmt, ...) records a failure with file, line and a
 * message and carries on, so one run reports every broken property; check_report(name) prints the
 * verdict and gives the exit status. Each test is its own process, so the counter is per test.
 *
 * Skips (the suite's protocol, shared with tests/golden/suite.py, suite.mjs and suite.sh): a check
 * that cannot run because this CPU lacks an instruction set calls check_cpu_lacks("amx_int8",
 * "what did not run"), which prints "SKIP (CPU lacks: amx_int8): what did not run". check_report
 * then exits 77, ctest's skip code (SKIP_RETURN_CODE in tests/CMakeLists.txt), unless a check
 * failed (1). scripts/test.sh lists the features by name in its summary; with MLXR_REQUIRE_ALL=1
 * (.ci/run) a skip is a failure except a missing CPU feature. check_cpu_has(feature, detected) is
 * how a test asks: MLXR_TEST_HIDE_CPU="amx_int8,avx512_vnni" makes it answer no, so the skip path
 * can be exercised on a machine that has them (it hides them from the test's choice only).
 *
 * NaN: a non-finite result must fail unless the reference is the same. fmax() and comparisons of
 * the form `if (err > tol) fail` let NaN through; check_worst() keeps NaN (it is the worst) and
 * check_close() accepts a non-finite value only where the reference has the same one.
 */
#ifndef MLXR_TESTS_CHECK_H
#define MLXR_TESTS_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_skips;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      check_failures++;                                    \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

/* The larger error, NaN counting as the largest (fmax would drop it). */
static inline double check_worst(double worst, double err) {
  if (isnan(worst)) return worst;
  return (isnan(err) || err > worst) ? err : worst;
}

/* got within tol of want; non-finite only where want is the same non-finite value. */
static inline bool check_close(double got, double want, double tol) {
  if (!isfinite(got) || !isfinite(want)) {
    return (isnan(got) && isnan(want)) || (isinf(got) && isinf(want) && signbit(got) == signbit(want));
  }
  return fabs(got - want) <= tol;
}

/* Does the CPU have feature (as detected), unless MLXR_TEST_HIDE_CPU names it? */
static inline bool check_cpu_has(const char *feature, bool detected) {
  const char *hide = getenv("MLXR_TEST_HIDE_CPU");
  const size_t n = strlen(feature);
  for (const char *p = hide; p && *p;) {
    const char *end = strchr(p, ',');
    const size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, feature, n) == 0) return false;
    p = end ? end + 1 : p + len;
  }
  return detected;
}

/* Records that `what` did not run because this CPU lacks `feature` (an x86 /proc/cpuinfo flag
 * name, or an Arm HWCAP name). */
static inline void check_cpu_lacks(const char *feature, const char *what) {
  check_skips++;
  printf("SKIP (CPU lacks: %s): %s\n", feature, what);
  fflush(stdout);
}

static inline int check_report(const char *name) {
  if (check_failures) {
    printf("%s: FAILED\n", name);
    return 1;
  }
  printf("%s: %s\n", name, check_skips ? "ok, with skips (exit 77)" : "ok");
  return check_skips ? 77 : 0;
}

#endif
