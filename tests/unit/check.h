/*
 * check.h: the unit tests' assertion: CHECK(cond, fmt, ...) records a failure with file, line and a
 * message and carries on, so one run reports every broken property; check_report(name) prints the
 * verdict and gives the exit status. Each test is its own process, so the counter is per test.
 */
#ifndef MLXR_TESTS_CHECK_H
#define MLXR_TESTS_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      check_failures++;                                    \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

static inline int check_report(const char *name) {
  printf("%s: %s\n", name, check_failures ? "FAILED" : "ok");
  return check_failures ? 1 : 0;
}

#endif
