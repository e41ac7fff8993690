/*
 * test_ngram_draft.c: prompt-lookup drafting (daemon/scheduler/ngram_draft.c) on hand-made token
 * sequences with hand-worked answers: the latest earlier match is used, longer suffixes win over
 * shorter ones, min_n is respected, proposals stop at k and at the end of the context.
 */
#include <string.h>

#include "daemon/scheduler/ngram_draft.h"
#include "tests/unit/check.h"

static void expect(const char *what, const int32_t *ctx, int32_t n, int32_t min_n, int32_t max_n, int32_t k,
                   const int32_t *want, int32_t n_want) {
  int32_t out[16];
  memset(out, 0xff, sizeof out);
  const int32_t got = mlxr_ngram_propose(ctx, n, min_n, max_n, k, out);
  CHECK(got == n_want && (n_want == 0 || memcmp(out, want, (size_t)n_want * sizeof *out) == 0), "%s: got %d tokens (%d %d %d ...)",
        what, got, out[0], out[1], out[2]);
  CHECK(got >= 16 || out[got] == -1, "%s: wrote past the proposal", what);
}

int main(void) {
  const int32_t a[] = {1, 2, 3, 4, 1, 2};
  expect("bigram found once", a, 6, 1, 3, 4, (const int32_t[]){3, 4, 1, 2}, 4);
  expect("cut at k", a, 6, 1, 3, 2, (const int32_t[]){3, 4}, 2);
  const int32_t b[] = {5, 6, 7, 5, 6, 8, 5, 6};
  expect("the latest earlier match", b, 8, 2, 2, 4, (const int32_t[]){8, 5, 6}, 3);
  const int32_t c[] = {1, 2, 3, 10, 2, 3, 11, 1, 2, 3};
  expect("a longer suffix wins over a later shorter one", c, 10, 2, 3, 1, (const int32_t[]){10}, 1);
  expect("max_n 2: the later bigram", c, 10, 2, 2, 1, (const int32_t[]){11}, 1);
  const int32_t d[] = {4, 1, 5, 1};
  expect("min_n 2: no bigram repeats", d, 4, 2, 3, 4, NULL, 0);
  expect("min_n 1: the unigram", d, 4, 1, 3, 4, (const int32_t[]){5, 1}, 2);
  const int32_t e[] = {1, 2, 3, 4};
  expect("nothing repeats", e, 4, 1, 3, 4, NULL, 0);
  expect("k 0", a, 6, 1, 3, 0, NULL, 0);
  expect("one token", a, 1, 1, 3, 4, NULL, 0);
  const int32_t f[] = {7, 7, 7, 7};
  expect("a run of one token", f, 4, 1, 3, 4, (const int32_t[]){7}, 1);
  return check_report("test_ngram_draft");
}
