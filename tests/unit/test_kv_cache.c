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
#include "tests/unit/check.h"
#include "core/kernels/cpu/cpu_backend.h"
#include "core/runtime/kv/kv_cache.h"


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
  for (int i = 0; i < 4; i++) mlxr_kv_seq_free(kv, ids[i]);

  /* prefix caching: a computed, committed prefix is found again by a new sequence */
  int32_t toks[12] = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  int s1 = mlxr_kv_seq_new(kv);
  CHECK(mlxr_kv_seq_reserve(kv, s1, 10) == MLXR_OK, "reserve");
  mlxr_kv_seq_commit(kv, s1, toks, 10); /* blocks 0 and 1 full */
  const int32_t b0 = mlxr_kv_seq_block_table(kv, s1)[0], b1 = mlxr_kv_seq_block_table(kv, s1)[1];
  int32_t cached = -1;
  int s2 = mlxr_kv_seq_new_prefixed(kv, toks, 12, 11, &cached);
  CHECK(s2 >= 0 && cached == 8, "reuses two full blocks (got %d positions)", cached);
  CHECK(mlxr_kv_seq_block_table(kv, s2)[0] == b0 && mlxr_kv_seq_block_table(kv, s2)[1] == b1, "same blocks");
  CHECK(mlxr_kv_seq_len(kv, s2) == 8, "length starts after the reused prefix");
  int s3 = mlxr_kv_seq_new_prefixed(kv, toks, 12, 7, &cached);
  CHECK(cached == 4, "max_reuse caps reuse at whole blocks below it (got %d)", cached);
  mlxr_kv_seq_free(kv, s3);
  int32_t other[12];
  memcpy(other, toks, sizeof(other));
  other[5] = 99; /* differs inside the second block */
  int s4 = mlxr_kv_seq_new_prefixed(kv, other, 12, 11, &cached);
  CHECK(cached == 4, "a difference in block 1 stops reuse after block 0 (got %d)", cached);
  mlxr_kv_seq_free(kv, s4);
  /* truncating s2 into a shared block copies it */
  CHECK(mlxr_kv_seq_truncate(kv, s2, 6) == MLXR_OK, "truncate");
  CHECK(mlxr_kv_seq_block_table(kv, s2)[1] != b1, "copy-on-write when truncating into a shared block");
  mlxr_kv_seq_free(kv, s2);
  mlxr_kv_seq_free(kv, s1);
  CHECK(mlxr_kv_cache_n_cached_blocks(kv) >= 2, "freed registered blocks stay cached");
  CHECK(mlxr_kv_cache_n_free_blocks(kv) == 10, "cached blocks count as available");
  int s5 = mlxr_kv_seq_new_prefixed(kv, toks, 12, 11, &cached);
  CHECK(cached == 8 && mlxr_kv_seq_block_table(kv, s5)[0] == b0, "found again after its sequences ended");
  mlxr_kv_seq_free(kv, s5);
  /* exhaust the pool: cached blocks are evicted, then nothing is found */
  int big = mlxr_kv_seq_new(kv), big2 = mlxr_kv_seq_new(kv);
  CHECK(mlxr_kv_seq_reserve(kv, big, 32) == MLXR_OK && mlxr_kv_seq_reserve(kv, big2, 8) == MLXR_OK,
        "the whole pool, evicting cached blocks");
  CHECK(mlxr_kv_cache_n_cached_blocks(kv) == 0, "all cached blocks evicted");
  CHECK(mlxr_kv_seq_reserve(kv, big2, 12) == MLXR_ERR_NO_SPACE, "then the pool is empty");
  mlxr_kv_seq_free(kv, big);
  mlxr_kv_seq_free(kv, big2);
  int s6 = mlxr_kv_seq_new_prefixed(kv, toks, 12, 11, &cached);
  CHECK(cached == 0, "evicted blocks are not found");
  mlxr_kv_seq_free(kv, s6);
  CHECK(mlxr_kv_cache_n_free_blocks(kv) == 10, "all blocks back at the end");

  mlxr_kv_cache_free(kv);
  mlxr_backend_free(be);
  return check_report("test_kv_cache");
}
