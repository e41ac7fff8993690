/*
 * kv_cache.c: see kv_cache.h. refcount[b] counts the sequences whose tables hold b. Unused blocks
 * are either plain free (a stack) or registered in the prefix cache (a doubly linked LRU list,
 * oldest first, evicted only when the stack is empty). A sequence's table is an int32 array of
 * ceil(max_seq_len / block_size) entries, of which n_blocks are in use.
 *
 * Prefix-cache identity: every registration gets a fresh serial number; a block's key is
 * (its parent's serial, its block_size token ids), hashed for an open-addressing table (linear
 * probing, backward-shift deletion). Lookups compare the key exactly, so two different prefixes
 * can never share KV even if their hashes collide, and a child registered under a parent that was
 * since evicted can never be reached through the parent's new content (new serial).
 */
#include "core/runtime/kv/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"

typedef struct kv_seq {
  int in_use;
  int32_t n_tokens; /* positions reserved */
  int32_t n_blocks; /* entries of table in use */
  int32_t *table;   /* [max_blocks_per_seq]: this sequence's row of tables_host */
  bool dirty;       /* table changed since the last sync to the backend's copy */
} kv_seq;

typedef struct kv_block_meta {
  uint64_t serial;        /* registration number; 0 = not registered */
  uint64_t parent_serial; /* serial of the previous block in the chain; 0 for the first */
  uint64_t hash;          /* hash(parent_serial, tokens) */
  int32_t lru_prev, lru_next; /* cached-free list links (-1 = none) */
  bool in_lru;
} kv_block_meta;

struct mlxr_kv_cache {
  mlxr_kv_params p;
  mlxr_backend *be;        /* borrowed */
  void **k_pools;          /* [n_layer], each [(n_blocks + 1) * block_size][row] (+1: the sink) */
  void **v_pools;          /* [n_layer] */
  int32_t *tables_host;    /* [max_seqs + 1][max_blocks_per_seq]; the last row is the sink's */
  int32_t *tables_dev;     /* backend copy of tables_host (== tables_host on host-memory backends) */
  bool any_dirty;
  size_t row_bytes_k;      /* bytes of one slot's K in one layer */
  size_t row_bytes_v;
  mlxr_kv_view view;
  int32_t *refcount;       /* [n_blocks] */
  int32_t *free_stack;     /* [n_blocks] */
  int32_t n_free;
  int32_t max_blocks_per_seq;
  kv_seq *seqs;            /* [max_seqs] */
  /* prefix cache */
  kv_block_meta *meta;     /* [n_blocks] */
  int32_t *block_tokens;   /* [n_blocks][block_size] token ids of registered blocks */
  int32_t *table;          /* [table_cap] block ids, -1 empty */
  uint32_t table_mask;     /* table_cap - 1 */
  int32_t lru_head, lru_tail; /* oldest, newest cached-free block */
  int32_t n_lru;
  uint64_t next_serial;
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
  const size_t table_ints = ((size_t)p->max_seqs + 1) * (size_t)kv->max_blocks_per_seq;
  kv->tables_host = calloc(table_ints, sizeof(int32_t));
  kv->refcount = calloc((size_t)p->n_blocks, sizeof(int32_t));
  kv->free_stack = malloc((size_t)p->n_blocks * sizeof(int32_t));
  kv->seqs = calloc((size_t)p->max_seqs, sizeof(kv_seq));
  uint32_t cap = 16;
  while (cap < 2u * (uint32_t)p->n_blocks) cap *= 2;
  kv->table_mask = cap - 1;
  kv->table = malloc((size_t)cap * sizeof(int32_t));
  kv->meta = calloc((size_t)p->n_blocks, sizeof(kv_block_meta));
  kv->block_tokens = malloc((size_t)p->n_blocks * (size_t)p->block_size * sizeof(int32_t));
  int ok = kv->k_pools && kv->v_pools && kv->refcount && kv->free_stack && kv->seqs && kv->table &&
           kv->meta && kv->block_tokens && kv->tables_host;
  const size_t slots_sink = slots + (size_t)p->block_size;
  for (int32_t l = 0; ok && l < p->n_layer; l++) {
    kv->k_pools[l] = mlxr_backend_alloc(be, slots_sink * kv->row_bytes_k);
    kv->v_pools[l] = mlxr_backend_alloc(be, slots_sink * kv->row_bytes_v);
    ok = kv->k_pools[l] && kv->v_pools[l];
  }
  if (ok) {
    /* the sink's table names the sink block everywhere */
    int32_t *sink = kv->tables_host + (size_t)p->max_seqs * (size_t)kv->max_blocks_per_seq;
    for (int32_t i = 0; i < kv->max_blocks_per_seq; i++) sink[i] = p->n_blocks;
    for (int32_t s = 0; s < p->max_seqs; s++) {
      kv->seqs[s].table = kv->tables_host + (size_t)s * (size_t)kv->max_blocks_per_seq;
    }
    if (be->iface->host_memory) {
      kv->tables_dev = kv->tables_host;
    } else {
      kv->tables_dev = mlxr_backend_alloc(be, table_ints * sizeof(int32_t));
      ok = kv->tables_dev &&
           mlxr_backend_upload(be, kv->tables_dev, kv->tables_host, table_ints * sizeof(int32_t)) == MLXR_OK;
    }
  }
  if (!ok) {
    mlxr_kv_cache_free(kv);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory for a KV cache of %d blocks",
                     (int)p->n_blocks);
  }
  /* lowest ids on top of the stack */
  for (int32_t i = 0; i < p->n_blocks; i++) kv->free_stack[i] = p->n_blocks - 1 - i;
  kv->n_free = p->n_blocks;
  for (uint32_t i = 0; i <= kv->table_mask; i++) kv->table[i] = -1;
  for (int32_t b = 0; b < p->n_blocks; b++) kv->meta[b].lru_prev = kv->meta[b].lru_next = -1;
  kv->lru_head = kv->lru_tail = -1;
  kv->next_serial = 1;
  kv->view.k_pools = kv->k_pools;
  kv->view.v_pools = kv->v_pools;
  kv->view.type = p->type;
  kv->view.block_size = p->block_size;
  kv->view.tables = kv->tables_dev;
  kv->view.table_stride = kv->max_blocks_per_seq;
  kv->view.sink_table = p->max_seqs;
  kv->view.sink_slot = (int64_t)p->n_blocks * p->block_size;
  *out = kv;
  return MLXR_OK;
}

void mlxr_kv_cache_free(mlxr_kv_cache *kv) {
  if (!kv) return;
  for (int32_t l = 0; l < kv->p.n_layer; l++) {
    if (kv->k_pools) mlxr_backend_buf_free(kv->be, kv->k_pools[l]);
    if (kv->v_pools) mlxr_backend_buf_free(kv->be, kv->v_pools[l]);
  }
  if (kv->tables_dev != kv->tables_host) mlxr_backend_buf_free(kv->be, kv->tables_dev);
  free(kv->tables_host);
  free(kv->k_pools);
  free(kv->v_pools);
  free(kv->refcount);
  free(kv->free_stack);
  free(kv->seqs);
  free(kv->table);
  free(kv->meta);
  free(kv->block_tokens);
  free(kv);
}

const mlxr_kv_view *mlxr_kv_cache_view(const mlxr_kv_cache *kv) { return &kv->view; }
const mlxr_kv_params *mlxr_kv_cache_params(const mlxr_kv_cache *kv) { return &kv->p; }
int32_t mlxr_kv_cache_n_free_blocks(const mlxr_kv_cache *kv) { return kv->n_free + kv->n_lru; }
int32_t mlxr_kv_cache_n_cached_blocks(const mlxr_kv_cache *kv) { return kv->n_lru; }

size_t mlxr_kv_cache_bytes(const mlxr_kv_cache *kv) {
  return (size_t)kv->p.n_layer * (size_t)kv->p.n_blocks * (size_t)kv->p.block_size *
         (kv->row_bytes_k + kv->row_bytes_v);
}

static kv_seq *seq_get(const mlxr_kv_cache *kv, int seq) {
  if (seq < 0 || seq >= kv->p.max_seqs || !kv->seqs[seq].in_use) return NULL;
  return &kv->seqs[seq];
}

/* The sequence's table changed: the backend's copy must be refreshed before the next forward. */
static void seq_touch(mlxr_kv_cache *kv, kv_seq *s) {
  s->dirty = true;
  kv->any_dirty = true;
}

int mlxr_kv_cache_sync(mlxr_kv_cache *kv) {
  if (!kv->any_dirty) return MLXR_OK;
  kv->any_dirty = false;
  const bool device = kv->tables_dev != kv->tables_host;
  for (int32_t i = 0; i < kv->p.max_seqs; i++) {
    kv_seq *s = &kv->seqs[i];
    if (!s->dirty) continue;
    s->dirty = false;
    if (!device || s->n_blocks == 0) continue;
    const size_t off = (size_t)(s->table - kv->tables_host);
    const int rc = mlxr_backend_upload(kv->be, kv->tables_dev + off, s->table,
                                       (size_t)s->n_blocks * sizeof(int32_t));
    if (rc != MLXR_OK) {
      s->dirty = kv->any_dirty = true;
      return rc;
    }
  }
  return MLXR_OK;
}

/* ---- prefix-cache table ---- */

static uint64_t key_hash(uint64_t parent_serial, const int32_t *tokens, int32_t n) {
  uint64_t h = 0xcbf29ce484222325ull ^ (parent_serial * 0x9e3779b97f4a7c15ull);
  for (int32_t i = 0; i < n; i++) {
    h ^= (uint32_t)tokens[i];
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  }
  return h;
}

/* Registered block with exactly this key, or -1. */
static int32_t table_find(const mlxr_kv_cache *kv, uint64_t hash, uint64_t parent_serial,
                          const int32_t *tokens) {
  const int32_t bs = kv->p.block_size;
  for (uint32_t i = (uint32_t)hash & kv->table_mask;; i = (i + 1) & kv->table_mask) {
    const int32_t b = kv->table[i];
    if (b < 0) return -1;
    const kv_block_meta *m = &kv->meta[b];
    if (m->hash == hash && m->parent_serial == parent_serial &&
        memcmp(kv->block_tokens + (size_t)b * bs, tokens, (size_t)bs * sizeof(int32_t)) == 0) {
      return b;
    }
  }
}

static void table_insert(mlxr_kv_cache *kv, int32_t b) {
  uint32_t i = (uint32_t)kv->meta[b].hash & kv->table_mask;
  while (kv->table[i] >= 0) i = (i + 1) & kv->table_mask;
  kv->table[i] = b;
}

static void table_remove(mlxr_kv_cache *kv, int32_t b) {
  uint32_t i = (uint32_t)kv->meta[b].hash & kv->table_mask;
  while (kv->table[i] != b) i = (i + 1) & kv->table_mask;
  /* backward-shift deletion keeps every probe chain unbroken */
  for (uint32_t j = (i + 1) & kv->table_mask; kv->table[j] >= 0; j = (j + 1) & kv->table_mask) {
    const uint32_t home = (uint32_t)kv->meta[kv->table[j]].hash & kv->table_mask;
    const bool movable = ((j - home) & kv->table_mask) >= ((j - i) & kv->table_mask);
    if (movable) {
      kv->table[i] = kv->table[j];
      i = j;
    }
  }
  kv->table[i] = -1;
}

static void lru_unlink(mlxr_kv_cache *kv, int32_t b) {
  kv_block_meta *m = &kv->meta[b];
  if (m->lru_prev >= 0) kv->meta[m->lru_prev].lru_next = m->lru_next;
  else kv->lru_head = m->lru_next;
  if (m->lru_next >= 0) kv->meta[m->lru_next].lru_prev = m->lru_prev;
  else kv->lru_tail = m->lru_prev;
  m->lru_prev = m->lru_next = -1;
  m->in_lru = false;
  kv->n_lru--;
}

static void lru_push_newest(mlxr_kv_cache *kv, int32_t b) {
  kv_block_meta *m = &kv->meta[b];
  m->lru_prev = kv->lru_tail;
  m->lru_next = -1;
  if (kv->lru_tail >= 0) kv->meta[kv->lru_tail].lru_next = b;
  else kv->lru_head = b;
  kv->lru_tail = b;
  m->in_lru = true;
  kv->n_lru++;
}

/* ---- block references ---- */

static void block_release(mlxr_kv_cache *kv, int32_t b) {
  if (--kv->refcount[b] > 0) return;
  if (kv->meta[b].serial) lru_push_newest(kv, b); /* stays cached until evicted */
  else kv->free_stack[kv->n_free++] = b;
}

static void block_acquire(mlxr_kv_cache *kv, int32_t b) {
  if (kv->refcount[b]++ == 0 && kv->meta[b].in_lru) lru_unlink(kv, b);
}

static int32_t block_take(mlxr_kv_cache *kv) {
  int32_t b;
  if (kv->n_free > 0) {
    b = kv->free_stack[--kv->n_free];
  } else if (kv->n_lru > 0) {
    b = kv->lru_head; /* evict the least recently used cached block */
    lru_unlink(kv, b);
    table_remove(kv, b);
    kv->meta[b].serial = 0;
  } else {
    return -1;
  }
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
  if (need - s->n_blocks > kv->n_free + kv->n_lru) return MLXR_ERR_NO_SPACE;
  if (s->n_blocks < need) seq_touch(kv, s);
  while (s->n_blocks < need) s->table[s->n_blocks++] = block_take(kv);
  if (n_tokens > s->n_tokens) s->n_tokens = n_tokens;
  return MLXR_OK;
}

static int copy_block(mlxr_kv_cache *kv, int32_t dst, int32_t src, int32_t n_slots);

int mlxr_kv_seq_truncate(mlxr_kv_cache *kv, int seq, int32_t n_tokens) {
  kv_seq *s = seq_get(kv, seq);
  if (!s || n_tokens < 0) return MLXR_ERR_INVALID;
  if (n_tokens >= s->n_tokens) return MLXR_OK;
  const int32_t keep = (n_tokens + kv->p.block_size - 1) / kv->p.block_size;
  const int32_t partial = n_tokens % kv->p.block_size;
  if (partial) {
    /* the kept part of the last block will be appended to: it must be ours alone */
    const int32_t last = s->table[keep - 1];
    if (kv->refcount[last] > 1 || kv->meta[last].serial) {
      int32_t fresh = block_take(kv);
      if (fresh < 0) return MLXR_ERR_NO_SPACE;
      const int rc = copy_block(kv, fresh, last, partial);
      if (rc != MLXR_OK) {
        block_release(kv, fresh);
        return rc;
      }
      s->table[keep - 1] = fresh;
      seq_touch(kv, s);
      block_release(kv, last);
    }
  }
  while (s->n_blocks > keep) block_release(kv, s->table[--s->n_blocks]);
  s->n_tokens = n_tokens;
  return MLXR_OK;
}

/* The first n_slots slots of block src into block dst, every layer (the backend's copy op: the
 * pools are device memory on a GPU backend). */
static int copy_block(mlxr_kv_cache *kv, int32_t dst, int32_t src, int32_t n_slots) {
  for (int32_t l = 0; l < kv->p.n_layer; l++) {
    uint8_t *kp = kv->k_pools[l], *vp = kv->v_pools[l];
    const size_t bk = (size_t)kv->p.block_size * kv->row_bytes_k;
    const size_t bv = (size_t)kv->p.block_size * kv->row_bytes_v;
    int rc = mlxr_backend_copy(kv->be, kp + (size_t)dst * bk, kp + (size_t)src * bk,
                               (size_t)n_slots * kv->row_bytes_k);
    if (rc == MLXR_OK) {
      rc = mlxr_backend_copy(kv->be, vp + (size_t)dst * bv, vp + (size_t)src * bv,
                             (size_t)n_slots * kv->row_bytes_v);
    }
    if (rc != MLXR_OK) return rc;
  }
  return MLXR_OK;
}

int mlxr_kv_seq_fork(mlxr_kv_cache *kv, int src, int32_t n_tokens) {
  kv_seq *s = seq_get(kv, src);
  if (!s || n_tokens < 0 || n_tokens > s->n_tokens) return MLXR_ERR_INVALID;
  const int32_t full = n_tokens / kv->p.block_size;
  const int32_t partial = n_tokens % kv->p.block_size;
  if (partial && kv->n_free + kv->n_lru == 0) return MLXR_ERR_NO_SPACE;
  int id = mlxr_kv_seq_new(kv);
  if (id < 0) return id;
  kv_seq *d = &kv->seqs[id];
  for (int32_t i = 0; i < full; i++) {
    d->table[i] = s->table[i];
    block_acquire(kv, s->table[i]);
  }
  d->n_blocks = full;
  seq_touch(kv, d);
  if (partial) {
    int32_t b = block_take(kv);
    d->table[d->n_blocks++] = b;
    const int rc = copy_block(kv, b, s->table[full], partial);
    if (rc != MLXR_OK) {
      mlxr_kv_seq_free(kv, id);
      return rc;
    }
  }
  d->n_tokens = n_tokens;
  return id;
}

int32_t mlxr_kv_seq_len(const mlxr_kv_cache *kv, int seq) {
  const kv_seq *s = seq_get(kv, seq);
  return s ? s->n_tokens : 0;
}

int32_t mlxr_kv_seq_n_exclusive_blocks(const mlxr_kv_cache *kv, int seq) {
  const kv_seq *s = seq_get(kv, seq);
  if (!s) return 0;
  int32_t n = 0;
  for (int32_t i = 0; i < s->n_blocks; i++) n += kv->refcount[s->table[i]] == 1;
  return n;
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

int mlxr_kv_seq_new_prefixed(mlxr_kv_cache *kv, const int32_t *tokens, int32_t n_tokens,
                             int32_t max_reuse, int32_t *n_cached) {
  *n_cached = 0;
  int id = mlxr_kv_seq_new(kv);
  if (id < 0) return id;
  kv_seq *s = &kv->seqs[id];
  const int32_t bs = kv->p.block_size;
  if (max_reuse > n_tokens) max_reuse = n_tokens;
  if (max_reuse > kv->p.max_seq_len) max_reuse = kv->p.max_seq_len;
  uint64_t parent = 0;
  for (int32_t i = 0; (i + 1) * bs <= max_reuse; i++) {
    const int32_t *blk = tokens + (size_t)i * bs;
    const int32_t b = table_find(kv, key_hash(parent, blk, bs), parent, blk);
    if (b < 0) break;
    block_acquire(kv, b);
    s->table[s->n_blocks++] = b;
    parent = kv->meta[b].serial;
  }
  s->n_tokens = s->n_blocks * bs;
  *n_cached = s->n_tokens;
  if (s->n_blocks) seq_touch(kv, s);
  return id;
}

void mlxr_kv_seq_commit(mlxr_kv_cache *kv, int seq, const int32_t *tokens, int32_t n_computed) {
  kv_seq *s = seq_get(kv, seq);
  if (!s) return;
  const int32_t bs = kv->p.block_size;
  int32_t full = n_computed / bs;
  if (full > s->n_blocks) full = s->n_blocks;
  uint64_t parent = 0;
  for (int32_t i = 0; i < full; i++) {
    const int32_t b = s->table[i];
    kv_block_meta *m = &kv->meta[b];
    if (m->serial) { /* already registered (computed here or reused from the cache) */
      parent = m->serial;
      continue;
    }
    const int32_t *blk = tokens + (size_t)i * bs;
    const uint64_t h = key_hash(parent, blk, bs);
    if (table_find(kv, h, parent, blk) >= 0) return; /* an identical block is cached already */
    m->serial = kv->next_serial++;
    m->parent_serial = parent;
    m->hash = h;
    memcpy(kv->block_tokens + (size_t)b * bs, blk, (size_t)bs * sizeof(int32_t));
    table_insert(kv, b);
    parent = m->serial;
  }
}
