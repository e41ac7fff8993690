/*
 * kv_cache.h: the paged KV cache of one loaded model: a pool of fixed-size blocks (block_size
 * token slots each, every layer's K and V) and, per sequence, a block table mapping its positions to
 * blocks (vLLM's PagedAttention layout; used even for a single sequence).
 *
 * Blocks are reference-counted so that sequences can share a prefix (mlxr_kv_seq_fork); a block is
 * back on the free list when its count drops to zero. The manager says "no room"
 * (MLXR_ERR_NO_SPACE) instead of failing hard, so a scheduler can wait or preempt.
 *
 * Automatic prefix caching (vLLM's design): once a block is full and computed, the caller commits
 * it (mlxr_kv_seq_commit) and it is registered under hash(parent block's hash, its token ids). A new
 * sequence started with mlxr_kv_seq_new_prefixed() takes the longest chain of registered blocks
 * matching its tokens by reference, so those positions need no prefill. Registered blocks whose
 * count drops to zero stay cached and are evicted least-recently-used first, only when no plain
 * free block is left. The token ids of every registered block are kept and compared on lookup, so
 * a hash collision can never hand out the wrong KV. Shared blocks are never written: appends go to
 * fresh blocks, and truncating into a shared block copies it first.
 *
 * Memory: the pools come from the backend (device memory on a GPU backend). Block tables are kept
 * in host memory, one row of ceil(max_seq_len / block_size) entries per sequence, and mirrored in
 * backend memory for attention: mlxr_kv_cache_sync uploads the rows that changed, and must run
 * before each forward (mlxr_engine_decode does). The pools hold one block more than n_blocks: the
 * sink, never handed out, where padding rows of a batch write their K/V (a last table row, the
 * sink's, names it everywhere). Everything is sized at creation; reserving positions allocates
 * nothing but blocks from the pool.
 * One thread at a time (the scheduler's) uses a cache.
 */
#ifndef MLXR_RUNTIME_KV_CACHE_H
#define MLXR_RUNTIME_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/graph/model.h"
#include "core/kernels/backend.h"

typedef struct mlxr_kv_cache mlxr_kv_cache;

typedef struct mlxr_kv_params {
  int32_t n_layer;
  int32_t n_head_kv;
  int32_t head_dim_k, head_dim_v;
  int32_t block_size;   /* tokens per block (16 by default) */
  int32_t n_blocks;     /* blocks in the pool */
  int32_t max_seqs;     /* sequences that can exist at once */
  int32_t max_seq_len;  /* positions one sequence may hold */
  mlxr_dtype type;      /* F32 or F16 */
} mlxr_kv_params;

int mlxr_kv_cache_new(mlxr_backend *be, const mlxr_kv_params *params, mlxr_kv_cache **out,
                      char *err, size_t err_len);
void mlxr_kv_cache_free(mlxr_kv_cache *kv);

/* The view the model's forward reads (pool pointers per layer, type, block size). */
const mlxr_kv_view *mlxr_kv_cache_view(const mlxr_kv_cache *kv);
const mlxr_kv_params *mlxr_kv_cache_params(const mlxr_kv_cache *kv);
/* Blocks that can be handed out now: plain free blocks plus evictable cached ones. */
int32_t mlxr_kv_cache_n_free_blocks(const mlxr_kv_cache *kv);
/* Bytes of the K and V pools together (n_blocks blocks; the sink block is not counted). */
size_t mlxr_kv_cache_bytes(const mlxr_kv_cache *kv);

/* Upload the block-table rows that changed since the last sync to the backend's copy (nothing
 * to do on host-memory backends). */
int mlxr_kv_cache_sync(mlxr_kv_cache *kv);

/* A new, empty sequence; returns its id (>= 0) or MLXR_ERR_NO_SPACE. */
int mlxr_kv_seq_new(mlxr_kv_cache *kv);
/* Release a sequence and drop its block references. */
void mlxr_kv_seq_free(mlxr_kv_cache *kv, int seq);
/* A new sequence sharing the first n_tokens positions of src (whole blocks shared by reference;
 * a partly filled last block is copied). Returns the new id or a negative status. */
int mlxr_kv_seq_fork(mlxr_kv_cache *kv, int src, int32_t n_tokens);
/* Make positions [0, n_tokens) of seq backed by blocks (allocating as needed). */
int mlxr_kv_seq_reserve(mlxr_kv_cache *kv, int seq, int32_t n_tokens);
/* Keep positions [0, n_tokens); release blocks past them (speculative-decoding rollback). */
int mlxr_kv_seq_truncate(mlxr_kv_cache *kv, int seq, int32_t n_tokens);
/* A new sequence whose first positions reuse cached blocks matching tokens[0..n_tokens) (only
 * whole blocks, and at most max_reuse positions: callers pass n_prompt - 1 so the last prompt
 * token is always computed). *n_cached receives the positions reused. Returns the id or a
 * negative status. */
int mlxr_kv_seq_new_prefixed(mlxr_kv_cache *kv, const int32_t *tokens, int32_t n_tokens,
                             int32_t max_reuse, int32_t *n_cached);
/* Register the blocks of seq that are full within positions [0, n_computed) (their K/V written by
 * a completed forward); tokens are the sequence's ids from position 0. Idempotent. */
void mlxr_kv_seq_commit(mlxr_kv_cache *kv, int seq, const int32_t *tokens, int32_t n_computed);
/* Blocks registered in the prefix cache and not used by any sequence (evictable). */
int32_t mlxr_kv_cache_n_cached_blocks(const mlxr_kv_cache *kv);

/* Positions reserved for seq (its length as far as the cache is concerned). */
int32_t mlxr_kv_seq_len(const mlxr_kv_cache *kv, int seq);
/* Blocks of seq no other sequence holds: what freeing seq gives back to the pool (as plain free
 * or evictable cached blocks). */
int32_t mlxr_kv_seq_n_exclusive_blocks(const mlxr_kv_cache *kv, int seq);
/* The block table of seq (valid until the next reserve/truncate/free of that seq). */
const int32_t *mlxr_kv_seq_block_table(const mlxr_kv_cache *kv, int seq);
/* The slot of position pos of seq (pos < reserved length), for mlxr_batch.slots. */
int64_t mlxr_kv_seq_slot(const mlxr_kv_cache *kv, int seq, int32_t pos);

#endif
