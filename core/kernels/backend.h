/*
 * backend.h: the op interface that model code calls. A backend (CPU, CUDA, a Metal one later) is a
 * table of ops plus memory management behind an opaque handle (ggml's iface + context idea). Model
 * code in core/graph/ is plain C that calls these ops in order; it never touches SIMD, threads or
 * device memory itself.
 *
 * Memory. Every tensor an op reads or writes (activations, KV pools, rope tables, per-forward
 * metadata such as token ids, positions, KV slots and block tables) lives in backend memory from
 * alloc: device memory on a GPU backend. Pointers into it may be offset on the host (byte
 * arithmetic), never dereferenced there unless the backend says host_memory. Data crosses only
 * through upload / download / copy. Weights are mlxr_weight views of the mmap'd file; the
 * backend makes them usable in weight_prepare (the CPU reads most in place, a device uploads).
 *
 * Ordering. Ops, upload and copy are queued in call order on one stream and may return before
 * the work is done (a device backend runs them asynchronously); download and synchronize wait.
 * Ops whose failure is in their arguments return a status at once; errors of queued work are
 * sticky and come back from the next download, synchronize or end_forward.
 *
 * Forwards. A model brackets each forward with begin_forward / end_forward. A forward marked
 * `graph` (decode-shaped: one row per sequence, every row wants logits, metadata in the same
 * buffers every time) may be captured by the backend on its first run for that row count and
 * replayed afterwards (CUDA graphs): then begin_forward answers MLXR_FORWARD_REPLAYED, the model
 * skips its ops and calls end_forward. graph_rows tells which row counts are captured (a model
 * pads its batch up to that count with rows that write only to the KV cache's sink slot).
 *
 * Ownership: the caller owns the backend; buffers from alloc are freed with buf_free; a backend is
 * used by one thread at a time (it may use its own worker threads inside an op).
 */
#ifndef MLXR_KERNELS_BACKEND_H
#define MLXR_KERNELS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A 2-D weight matrix W[n_out][n_in] stored row by row in `type` (GGUF ne = [n_in, n_out]);
 * a 1-D tensor (norm weights, biases) is n_out = 1. */
typedef struct mlxr_weight {
  mlxr_dtype type;
  int64_t n_in;      /* elements per row (ggml ne[0]) */
  int64_t n_out;     /* rows (ggml ne[1]) */
  size_t row_bytes;  /* bytes per row */
  const void *data;  /* host bytes (the file mapping); NULL means "absent" (optional tensors) */
  void *device;      /* the backend's own copy, if it made one in weight_prepare */
} mlxr_weight;

typedef enum mlxr_rope_mode {
  MLXR_ROPE_NORM = 0, /* rotate pairs (x[2i], x[2i+1]): llama in GGUF (Q/K permuted at convert) */
  MLXR_ROPE_NEOX = 2, /* rotate (x[i], x[i + rot/2]): Qwen, Gemma, Phi-3 */
} mlxr_rope_mode;

/* Arguments of paged attention: every row attends, head by head, to the keys/values of its own
 * sequence at positions [0, n_ctx[row]), which sit in KV blocks named by that sequence's block
 * table. K/V pools are [n_blocks * block_size][n_head_kv * head_dim] of kv_type. All pointers are
 * backend memory. Rows of one sequence share a table index; a run of consecutive rows with the
 * same table index and consecutive contexts is a prompt chunk (backends may tile it). */
typedef struct mlxr_attn_args {
  int64_t n_rows;
  int n_head, n_head_kv, head_dim_k, head_dim_v;
  const float *q;               /* [n_rows][n_head * head_dim_k] */
  float *out;                   /* [n_rows][n_head * head_dim_v] */
  const void *k_pool, *v_pool;  /* one layer's pools */
  mlxr_dtype kv_type;           /* F32 or F16 */
  int block_size;               /* tokens per KV block */
  const int32_t *block_tables;  /* [n_tables][table_stride] block ids */
  int32_t table_stride;
  const int32_t *row_table;     /* [n_rows] the table (sequence) of each row */
  const int32_t *n_ctx;         /* [n_rows] positions visible to the row (its pos + 1) */
  int32_t max_ctx;              /* an upper bound of n_ctx over the rows (work sizing) */
  float scale;                  /* usually 1/sqrt(head_dim_k) */
} mlxr_attn_args;

/* What supports_op is asked about; `type` is the weight type (MATMUL, GET_ROWS), the KV type
 * (KV_STORE, ATTENTION) or F32 (the elementwise ops). */
typedef enum mlxr_op {
  MLXR_OP_MATMUL = 0,
  MLXR_OP_GET_ROWS,
  MLXR_OP_RMS_NORM,
  MLXR_OP_ROPE,
  MLXR_OP_SWIGLU,
  MLXR_OP_ADD,
  MLXR_OP_KV_STORE,
  MLXR_OP_ATTENTION,
  MLXR_OP_COUNT
} mlxr_op;

/* begin_forward's answer when it replayed a captured forward (the ops are already queued). */
#define MLXR_FORWARD_REPLAYED 1
/* end_forward's answer when a capture failed and the captured work never ran: the model runs the
 * forward again (begin_forward will not try to capture that row count again). */
#define MLXR_FORWARD_RERUN 2

typedef struct mlxr_forward_info {
  int32_t n_rows; /* rows of this forward, padding included */
  bool graph;     /* decode-shaped and padded to graph_rows(n): may be captured / replayed */
} mlxr_forward_info;

typedef struct mlxr_backend mlxr_backend;

typedef struct mlxr_backend_iface {
  const char *name;
  /* true: backend memory is host memory that callers may read and write directly */
  bool host_memory;
  void (*free)(mlxr_backend *be);

  /* ---- memory ---- */
  void *(*alloc)(mlxr_backend *be, size_t nbytes); /* zeroed; NULL on failure */
  void (*buf_free)(mlxr_backend *be, void *buf);
  /* host -> backend; src may be reused when the call returns */
  int (*upload)(mlxr_backend *be, void *dst, const void *src, size_t nbytes);
  /* backend -> host, after all queued work; returns a sticky error of that work, if any */
  int (*download)(mlxr_backend *be, void *dst, const void *src, size_t nbytes);
  /* within backend memory (regions must not overlap) */
  int (*copy)(mlxr_backend *be, void *dst, const void *src, size_t nbytes);
  /* wait for all queued work; returns its sticky error, if any */
  int (*synchronize)(mlxr_backend *be);
  /* memory the backend could still allocate, and its total (device memory, or the host's) */
  int (*memory_info)(mlxr_backend *be, size_t *free_bytes, size_t *total_bytes);
  /* words for the sticky error of queued work ("an illegal memory access ..."), or NULL (optional) */
  const char *(*error_message)(mlxr_backend *be);

  /* ---- capabilities and weights ---- */
  bool (*supports_op)(mlxr_backend *be, mlxr_op op, mlxr_dtype type);
  /* Make a weight (matrix or 1-D vector) usable by the ops: check support, upload or repack into
   * w->device. MLXR_ERR_UNSUPPORTED for a type it cannot use, MLXR_ERR_NOMEM when out of memory. */
  int (*weight_prepare)(mlxr_backend *be, mlxr_weight *w);

  /* ---- forward bracketing (optional: NULL = plain op-by-op execution) ---- */
  /* For a decode-shaped forward of n_rows rows: the row count the backend would capture (>= n),
   * or 0 if it would not capture one of this size. */
  int32_t (*graph_rows)(mlxr_backend *be, int32_t n_rows);
  /* MLXR_OK: queue the ops now; MLXR_FORWARD_REPLAYED: already queued; else an error */
  int (*begin_forward)(mlxr_backend *be, const mlxr_forward_info *info);
  /* Close the forward (ok = false after a failed op: drop any capture). MLXR_OK, an error, or
   * MLXR_FORWARD_RERUN. */
  int (*end_forward)(mlxr_backend *be, bool ok);

  /* ---- ops (all tensors backend memory; float32 activations, row-major) ---- */
  /* out[r][:] = table row ids[r] as float32, r < n; ids must be in range (callers check) */
  int (*get_rows)(mlxr_backend *be, const mlxr_weight *table, const int32_t *ids, int64_t n,
                  float *out);
  /* y[r][o] = sum_k x[r][k] * W[o][k] (+ bias[o] if bias && bias->data), r < n_rows */
  int (*matmul)(mlxr_backend *be, const mlxr_weight *w, const mlxr_weight *bias, const float *x,
                int64_t n_rows, float *y);
  /* y = x / sqrt(mean(x^2) + eps) * w per row of dim elements (w: f32 [dim] weight); y may equal
   * x. Used per head too (n_rows = rows * heads, dim = head_dim). */
  void (*rms_norm)(mlxr_backend *be, const float *x, const mlxr_weight *w, int64_t n_rows,
                   int64_t dim, float eps, float *y);
  /* RoPE tables for n_rows positions: angle = (pos[r] / linear_scale) * inv_freq[i] in double
   * precision; cos_tab/sin_tab [n_rows][half] float. inv_freq: backend memory, [half] doubles. */
  void (*rope_cache)(mlxr_backend *be, const int32_t *pos, int64_t n_rows, const double *inv_freq,
                     int half, float linear_scale, float *cos_tab, float *sin_tab);
  /* Rotate the first rot_dim dims of each head of each row in place with the tables above. */
  void (*rope)(mlxr_backend *be, float *x, int64_t n_rows, int n_heads, int head_dim, int rot_dim,
               mlxr_rope_mode mode, const float *cos_tab, const float *sin_tab);
  /* out[i] = silu(gate[i]) * up[i] for i < n */
  void (*swiglu)(mlxr_backend *be, const float *gate, const float *up, float *out, int64_t n);
  /* y[i] += x[i] */
  void (*add)(mlxr_backend *be, float *y, const float *x, int64_t n);
  /* Store n_rows rows of K and V into the pools at slots[r] (block * block_size + offset). */
  void (*kv_store)(mlxr_backend *be, const float *k, const float *v, int64_t n_rows, int64_t dim_k,
                   int64_t dim_v, const int64_t *slots, void *k_pool, void *v_pool,
                   mlxr_dtype kv_type);
  int (*attention)(mlxr_backend *be, const mlxr_attn_args *args);
  /* ids[r] = index of the largest of the n_cols values of row r of x (the first on ties; NaN never
   * wins; 0 if no value beats -inf): greedy sampling where the logits are, so that only ids cross
   * back. ids: backend memory. Optional (NULL: callers download the logits and search them). */
  int (*argmax_rows)(mlxr_backend *be, const float *x, int64_t n_rows, int64_t n_cols, int32_t *ids);

  /* ---- fused forms (optional: NULL = the model composes them from the ops above; on a GPU each
   * saves kernel launches, which bound the decode speed of small models) ---- */
  /* ys[i] = x W_i^T (+ biases[i] when biases && biases[i] && biases[i]->data) for i < n
   * (<= MLXR_MATMUL_MULTI_MAX), every W_i with the same n_in, all against the same x: q/k/v and
   * gate/up read (and quantize) the activations once. */
  int (*matmul_multi)(mlxr_backend *be, int n, const mlxr_weight *const *ws,
                      const mlxr_weight *const *biases, const float *x, int64_t n_rows,
                      float *const *ys);
  /* y += x W^T: the residual add fused into the product. */
  int (*matmul_acc)(mlxr_backend *be, const mlxr_weight *w, const float *x, int64_t n_rows,
                    float *y);
  /* rope(q), rope(k), then kv_store(k, v): the same results as the three ops. q [n_rows][n_head]
   * [head_dim], k [n_rows][n_head_kv][head_dim], v [n_rows][n_head_kv][head_dim_v]. */
  void (*rope_kv_store)(mlxr_backend *be, float *q, float *k, const float *v, int64_t n_rows,
                        int n_head, int n_head_kv, int head_dim, int head_dim_v, int rot_dim,
                        mlxr_rope_mode mode, const float *cos_tab, const float *sin_tab,
                        const int64_t *slots, void *k_pool, void *v_pool, mlxr_dtype kv_type);
  /* ys[i] = rms_norm(x, norm, eps) W_i^T (+ biases[i]) for i < n, the results of rms_norm then
   * matmul_multi, without writing the normalized rows anywhere: a layer's input norm folded into
   * its products. MLXR_ERR_UNSUPPORTED (nothing done) where the backend does not fold for these
   * weights or this many rows; the caller then runs the two ops. */
  int (*norm_matmul_multi)(mlxr_backend *be, const mlxr_weight *norm, float eps, int n,
                           const mlxr_weight *const *ws, const mlxr_weight *const *biases,
                           const float *x, int64_t n_rows, float *const *ys);
  /* y += (silu(gate) * up) W^T, the result of swiglu then matmul_acc; gate and up are left as
   * they are. MLXR_ERR_UNSUPPORTED as above. */
  int (*swiglu_matmul_acc)(mlxr_backend *be, const mlxr_weight *w, const float *gate,
                           const float *up, int64_t n_rows, float *y);
} mlxr_backend_iface;

#define MLXR_MATMUL_MULTI_MAX 3

struct mlxr_backend {
  const mlxr_backend_iface *iface;
  void *context; /* the backend's own state */
};

/* Thin wrappers so call sites read as mlxr_backend_alloc(be, n). */
static inline void *mlxr_backend_alloc(mlxr_backend *be, size_t n) { return be->iface->alloc(be, n); }
static inline void mlxr_backend_buf_free(mlxr_backend *be, void *p) {
  if (p) be->iface->buf_free(be, p);
}
static inline void mlxr_backend_free(mlxr_backend *be) {
  if (be) be->iface->free(be);
}
static inline int mlxr_backend_upload(mlxr_backend *be, void *dst, const void *src, size_t n) {
  return n ? be->iface->upload(be, dst, src, n) : 0;
}
static inline int mlxr_backend_download(mlxr_backend *be, void *dst, const void *src, size_t n) {
  return n ? be->iface->download(be, dst, src, n) : be->iface->synchronize(be);
}
static inline int mlxr_backend_copy(mlxr_backend *be, void *dst, const void *src, size_t n) {
  return n ? be->iface->copy(be, dst, src, n) : 0;
}
/* The pointer ops read for a prepared weight: the backend's copy if it made one, else the file. */
static inline const void *mlxr_weight_ptr(const mlxr_weight *w) {
  return w->device ? w->device : w->data;
}

#ifdef __cplusplus
}
#endif

#endif
