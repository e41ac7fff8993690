/*
 * kv_cache.c: see kv_cache.h. The free list is a stack of block ids; refcount[b] counts the
 * sequences whose tables hold b. A sequence's table is an int32 array of ceil(max_seq_len /
 * block_size) entries, of which n_blocks are in use.
 */
#include "core/runtime/kv/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"

typedef struct kv_seq {
  int in_use;
  int32_t n_tokens; /* positions reserved */
  int32_t n_blocks; /* entries of table in use */
  int32_t *table;   /* [max_blocks_per_seq] */
} kv_seq;

struct mlxr_kv_cache {
  mlxr_kv_params p;
  mlxr_backend *be;        /* borrowed */
  void **k_pools;          /* [n_layer] */
  void **v_pools;          /* [n_layer] */
  size_t row_bytes_k;      /* bytes of one slot's K in one layer */
  size_t row_bytes_v;
  mlxr_kv_view view;
  int32_t *refcount;       /* [n_blocks] */
  int32_t *free_stack;     /* [n_blocks] */
  int32_t n_free;
  int32_t max_blocks_per_seq;
  kv_seq *seqs;            /* [max_seqs] */
};

int mlxr_kv_cache_new(mlxr_backend *be, const mlxr_kv_params *params, mlxr_kv_cache **out,
                      char *err, size_t err_len) {
  *out = NULL;
  const mlxr_kv_params *p = params;
  if (p->n_layer <= 0 || p->n_head_kv <= 0 || p->head_dim_k <= 0 || p->head_dim_v <= 0 ||
      p->block_size <= 0 || p->n_blocks <= 0 || p->max_seqs <= 0 || p->max_seq_len <= 0 ||
      (p->type != MLXR_DTYPE_F32 && p->type != MLXR_DTYPE_F16)) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "invalid KV cache parameters");
  }
  mlxr_kv_cache *kv = calloc(1, sizeof(*kv));
  if (!kv) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  kv->p = *p;
  kv->be = be;
  const size_t esz = p->type == MLXR_DTYPE_F32 ? 4 : 2;
  kv->row_bytes_k = (size_t)p->n_head_kv * (size_t)p->head_dim_k * esz;
  kv->row_bytes_v = (size_t)p->n_head_kv * (size_t)p->head_dim_v * esz;
  const size_t slots = (size_t)p->n_blocks * (size_t)p->block_size;
  kv->max_blocks_per_seq = (p->max_seq_len + p->block_size - 1) / p->block_size;
  kv->k_pools = calloc((size_t)p->n_layer, sizeof(void *));
  kv->v_pools = calloc((size_t)p->n_layer, sizeof(void *));
  kv->refcount = calloc((size_t)p->n_blocks, sizeof(int32_t));
  kv->free_stack = malloc((size_t)p->n_blocks * sizeof(int32_t));
  kv->seqs = calloc((size_t)p->max_seqs, sizeof(kv_seq));
  int ok = kv->k_pools && kv->v_pools && kv->refcount && kv->free_stack && kv->seqs;
  for (int32_t l = 0; ok && l < p->n_layer; l++) {
    kv->k_pools[l] = mlxr_backend_alloc(be, slots * kv->row_bytes_k);
    kv->v_pools[l] = mlxr_backend_alloc(be, slots * kv->row_bytes_v);
    ok = kv->k_pools[l] && kv->v_pools[l];
  }
  for (int32_t s = 0; ok && s < p->max_seqs; s++) {
    kv->seqs[s].table = malloc((size_t)kv->max_blocks_per_seq * sizeof(int32_t));
    ok = kv->seqs[s].table != NULL;
  }
  if (!ok) {
    mlxr_kv_cache_free(kv);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory for a KV cache of %d blocks",
                     (int)p->n_blocks);
  }
  /* lowest ids on top of the stack */
  for (int32_t i = 0; i < p->n_blocks; i++) kv->free_stack[i] = p->n_blocks - 1 - i;
  kv->n_free = p->n_blocks;
  kv->view.k_pools = kv->k_pools;
  kv->view.v_pools = kv->v_pools;
  kv->view.type = p->type;
  kv->view.block_size = p->block_size;
  *out = kv;
  return MLXR_OK;
}

void mlxr_kv_cache_free(mlxr_kv_cache *kv) {
  if (!kv) return;
  for (int32_t l = 0; l < kv->p.n_layer; l++) {
    if (kv->k_pools) mlxr_backend_buf_free(kv->be, kv->k_pools[l]);
    if (kv->v_pools) mlxr_backend_buf_free(kv->be, kv->v_pools[l]);
  }
  if (kv->seqs) {
    for (int32_t s = 0; s < kv->p.max_seqs; s++) free(kv->seqs[s].table);
  }
  free(kv->k_pools);
  free(kv->v_pools);
  free(kv->refcount);
  free(kv->free_stack);
  free(kv->seqs);
  free(kv);
}

const mlxr_kv_view *mlxr_kv_cache_view(const mlxr_kv_cache *kv) { return &kv->view; }
const mlxr_kv_params *mlxr_kv_cache_params(const mlxr_kv_cache *kv) { return &kv->p; }
int32_t mlxr_kv_cache_n_free_blocks(const mlxr_kv_cache *kv) { return kv->n_free; }

size_t mlxr_kv_cache_bytes(const mlxr_kv_cache *kv) {
  return (size_t)kv->p.n_layer * (size_t)kv->p.n_blocks * (size_t)kv->p.block_size *
         (kv->row_bytes_k + kv->row_bytes_v);
}

static kv_seq *seq_get(const mlxr_kv_cache *kv, int seq) {
  if (seq < 0 || seq >= kv->p.max_seqs || !kv->seqs[seq].in_use) return NULL;
  return &kv->seqs[seq];
}

static void block_release(mlxr_kv_cache *kv, int32_t b) {
  if (--kv->refcount[b] == 0) kv->free_stack[kv->n_free++] = b;
}

static int32_t block_take(mlxr_kv_cache *kv) {
  if (kv->n_free == 0) return -1;
  int32_t b = kv->free_stack[--kv->n_free];
  kv->refcount[b] = 1;
  return b;
}

int mlxr_kv_seq_new(mlxr_kv_cache *kv) {
  for (int s = 0; s < kv->p.max_seqs; s++) {
    if (!kv->seqs[s].in_use) {
      kv->seqs[s].in_use = 1;
      kv->seqs[s].n_tokens = 0;
      kv->seqs[s].n_blocks = 0;
      return s;
    }
  }
  return MLXR_ERR_NO_SPACE;
}

void mlxr_kv_seq_free(mlxr_kv_cache *kv, int seq) {
  kv_seq *s = seq_get(kv, seq);
  if (!s) return;
  /* deepest blocks first, so shared prefixes stay on top of the free list longest */
  for (int32_t i = s->n_blocks - 1; i >= 0; i--) block_release(kv, s->table[i]);
  s->in_use = 0;
  s->n_blocks = 0;
  s->n_tokens = 0;
}

int mlxr_kv_seq_reserve(mlxr_kv_cache *kv, int seq, int32_t n_tokens) {
  kv_seq *s = seq_get(kv, seq);
  if (!s || n_tokens < 0) return MLXR_ERR_INVALID;
  if (n_tokens > kv->p.max_seq_len) return MLXR_ERR_RANGE;
  const int32_t need = (n_tokens + kv->p.block_size - 1) / kv->p.block_size;
  if (need - s->n_blocks > kv->n_free) return MLXR_ERR_NO_SPACE;
  while (s->n_blocks < need) s->table[s->n_blocks++] = block_take(kv);
  if (n_tokens > s->n_tokens) s->n_tokens = n_tokens;
  return MLXR_OK;
}

int mlxr_kv_seq_truncate(mlxr_kv_cache *kv, int seq, int32_t n_tokens) {
  kv_seq *s = seq_get(kv, seq);
  if (!s || n_tokens < 0) return MLXR_ERR_INVALID;
  if (n_tokens >= s->n_tokens) return MLXR_OK;
  const int32_t keep = (n_tokens + kv->p.block_size - 1) / kv->p.block_size;
  while (s->n_blocks > keep) block_release(kv, s->table[--s->n_blocks]);
  s->n_tokens = n_tokens;
  return MLXR_OK;
}

static void copy_block(mlxr_kv_cache *kv, int32_t dst, int32_t src, int32_t n_slots) {
  /* Host memory only (CPU backend); a device backend would add a copy op to its table. */
  for (int32_t l = 0; l < kv->p.n_layer; l++) {
    uint8_t *kp = kv->k_pools[l], *vp = kv->v_pools[l];
    const size_t bk = (size_t)kv->p.block_size * kv->row_bytes_k;
    const size_t bv = (size_t)kv->p.block_size * kv->row_bytes_v;
    memcpy(kp + (size_t)dst * bk, kp + (size_t)src * bk, (size_t)n_slots * kv->row_bytes_k);
    memcpy(vp + (size_t)dst * bv, vp + (size_t)src * bv, (size_t)n_slots * kv->row_bytes_v);
  }
}

int mlxr_kv_seq_fork(mlxr_kv_cache *kv, int src, int32_t n_tokens) {
  kv_seq *s = seq_get(kv, src);
  if (!s || n_tokens < 0 || n_tokens > s->n_tokens) return MLXR_ERR_INVALID;
  const int32_t full = n_tokens / kv->p.block_size;
  const int32_t partial = n_tokens % kv->p.block_size;
  if (partial && kv->n_free == 0) return MLXR_ERR_NO_SPACE;
  int id = mlxr_kv_seq_new(kv);
  if (id < 0) return id;
  kv_seq *d = &kv->seqs[id];
  for (int32_t i = 0; i < full; i++) {
    d->table[i] = s->table[i];
    kv->refcount[s->table[i]]++;
  }
  d->n_blocks = full;
  if (partial) {
    int32_t b = block_take(kv);
    copy_block(kv, b, s->table[full], partial);
    d->table[d->n_blocks++] = b;
  }
  d->n_tokens = n_tokens;
  return id;
}

int32_t mlxr_kv_seq_len(const mlxr_kv_cache *kv, int seq) {
  const kv_seq *s = seq_get(kv, seq);
  return s ? s->n_tokens : 0;
}

const int32_t *mlxr_kv_seq_block_table(const mlxr_kv_cache *kv, int seq) {
  const kv_seq *s = seq_get(kv, seq);
  return s ? s->table : NULL;
}

int64_t mlxr_kv_seq_slot(const mlxr_kv_cache *kv, int seq, int32_t pos) {
  const kv_seq *s = seq_get(kv, seq);
  if (!s || pos < 0 || pos >= s->n_blocks * kv->p.block_size) return -1;
  return (int64_t)s->table[pos / kv->p.block_size] * kv->p.block_size + pos % kv->p.block_size;
}
