/*
 * test_kv_cache.c: the paged KV cache's block accounting. Checked properties: reserve allocates
 * exactly ceil(n / block_size) blocks; slots map positions into the sequence's own blocks; fork
 * shares whole blocks (refcounts) and copies a partial last block's contents; freeing returns every
 * block once the last reference goes; truncate releases blocks past the new end; an exhausted pool
 * says NO_SPACE and leaves state unchanged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/kernels/cpu/cpu_backend.h"
#include "core/runtime/kv/kv_cache.h"

static int failures = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

int main(void) {
  mlxr_cpu_backend_params bp = mlxr_cpu_backend_default_params();
  bp.n_threads = 1;
  mlxr_backend *be = mlxr_cpu_backend_new(bp);
  mlxr_kv_params p = {.n_layer = 2, .n_head_kv = 2, .head_dim_k = 4, .head_dim_v = 4, .block_size = 4,
                      .n_blocks = 10, .max_seqs = 4, .max_seq_len = 32, .type = MLXR_DTYPE_F32};
  mlxr_kv_cache *kv = NULL;
  char err[256];
  CHECK(mlxr_kv_cache_new(be, &p, &kv, err, sizeof(err)) == MLXR_OK, "new: %s", err);

  int a = mlxr_kv_seq_new(kv);
  CHECK(a >= 0, "seq_new");
  CHECK(mlxr_kv_seq_reserve(kv, a, 9) == MLXR_OK, "reserve 9");
  CHECK(mlxr_kv_cache_n_free_blocks(kv) == 7, "9 tokens of block 4 take 3 blocks, free %d",
        mlxr_kv_cache_n_free_blocks(kv));
  /* slots are distinct and inside the pool */
  int64_t seen[40] = {0};
  for (int32_t pos = 0; pos < 9; pos++) {
    int64_t s = mlxr_kv_seq_slot(kv, a, pos);
    CHECK(s >= 0 && s < 40, "slot %lld", (long long)s);
    if (s >= 0 && s < 40) {
      CHECK(!seen[s], "slot reused");
      seen[s] = 1;
    }
    CHECK(s % 4 == pos % 4, "offset in block");
  }
  CHECK(mlxr_kv_seq_slot(kv, a, 12) == -1, "position past the reserved blocks has no slot");

  /* write a marker into position 8's K row (layer 0) and fork at 9: partial block copied */
  float *k0 = mlxr_kv_cache_view(kv)->k_pools[0];
  int64_t s8 = mlxr_kv_seq_slot(kv, a, 8);
  for (int i = 0; i < 8; i++) k0[s8 * 8 + i] = 100.0f + i;
  int b = mlxr_kv_seq_fork(kv, a, 9);
  CHECK(b >= 0, "fork");
  CHECK(mlxr_kv_cache_n_free_blocks(kv) == 6, "fork shares 2 full blocks, copies 1: free %d",
        mlxr_kv_cache_n_free_blocks(kv));
  const int32_t *ta = mlxr_kv_seq_block_table(kv, a), *tb = mlxr_kv_seq_block_table(kv, b);
  CHECK(ta[0] == tb[0] && ta[1] == tb[1] && ta[2] != tb[2], "shared prefix blocks, own last block");
  int64_t b8 = mlxr_kv_seq_slot(kv, b, 8);
  CHECK(b8 != s8 && k0[b8 * 8 + 3] == 103.0f, "partial block content copied");

  /* freeing a keeps the shared blocks alive for b */
  mlxr_kv_seq_free(kv, a);
  CHECK(mlxr_kv_cache_n_free_blocks(kv) == 7, "only a's own block returns: free %d",
        mlxr_kv_cache_n_free_blocks(kv));
  /* truncate b to 4 tokens: keeps 1 block */
  CHECK(mlxr_kv_seq_truncate(kv, b, 4) == MLXR_OK, "truncate");
  CHECK(mlxr_kv_seq_len(kv, b) == 4, "len after truncate");
  CHECK(mlxr_kv_cache_n_free_blocks(kv) == 9, "truncate frees 2 blocks: free %d",
        mlxr_kv_cache_n_free_blocks(kv));
  /* exhaustion */
  int c = mlxr_kv_seq_new(kv);
  CHECK(mlxr_kv_seq_reserve(kv, c, 32) == MLXR_OK, "8 blocks fit");
  CHECK(mlxr_kv_seq_reserve(kv, b, 12) == MLXR_ERR_NO_SPACE, "pool exhausted");
  CHECK(mlxr_kv_seq_len(kv, b) == 4 && mlxr_kv_cache_n_free_blocks(kv) == 1, "failed reserve changes nothing");
  CHECK(mlxr_kv_seq_reserve(kv, c, 33) == MLXR_ERR_RANGE, "past max_seq_len");
  mlxr_kv_seq_free(kv, b);
  mlxr_kv_seq_free(kv, c);
  CHECK(mlxr_kv_cache_n_free_blocks(kv) == 10, "all blocks back");
  /* sequence slots are bounded */
  int ids[5];
  for (int i = 0; i < 4; i++) ids[i] = mlxr_kv_seq_new(kv);
  ids[4] = mlxr_kv_seq_new(kv);
  CHECK(ids[3] >= 0 && ids[4] == MLXR_ERR_NO_SPACE, "max_seqs enforced");
  mlxr_kv_cache_free(kv);
  mlxr_backend_free(be);
  printf("%s\n", failures ? "test_kv_cache: FAILED" : "test_kv_cache: ok");
  return failures ? 1 : 0;
}
