/*
 * ngram_draft.c: see ngram_draft.h. A backwards scan per suffix length: O(n * max_n) compares per
 * call, a few microseconds for contexts of a few thousand tokens, done once per decode step.
 */
#include "daemon/scheduler/ngram_draft.h"

#include <string.h>

int32_t mlxr_ngram_propose(const int32_t *ctx, int32_t n, int32_t min_n, int32_t max_n, int32_t k, int32_t *out) {
  if (min_n < 1) min_n = 1;
  if (k <= 0 || n < 2) return 0;
  for (int32_t ng = max_n < n - 1 ? max_n : n - 1; ng >= min_n; ng--) {
    const int32_t *suffix = ctx + n - ng;
    for (int32_t i = n - ng - 1; i >= 0; i--) {
      if (ctx[i] != suffix[0] || memcmp(ctx + i, suffix, (size_t)ng * sizeof *ctx) != 0) continue;
      int32_t m = n - (i + ng); /* tokens after the match, >= 1 since i < n - ng */
      if (m > k) m = k;
      memcpy(out, ctx + i + ng, (size_t)m * sizeof *ctx);
      return m;
    }
  }
  return 0;
}
