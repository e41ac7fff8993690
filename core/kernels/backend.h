/*
 * backend.h: the op interface that model code calls. A backend (CPU now, CUDA next, a Metal one
 * later) is a table of ops plus buffer management behind an opaque handle (ggml's iface + context
 * idea). Model code in core/graph/ is plain C that calls these ops in order; it never touches SIMD,
 * threads or device memory itself.
 *
 * Tensors passed to ops are plain pointers to memory the backend allocated (mlxr_backend_alloc),
 * row-major, float32 activations unless stated. Weights are mlxr_weight views: for the CPU backend
 * they point straight into the mmap'd model file (read in place, never copied); a device backend
 * uploads them once in weight_prepare.
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

/* A 2-D weight matrix W[n_out][n_in] stored row by row in `type` (GGUF ne = [n_in, n_out]);
 * a 1-D tensor is n_out = 1. */
typedef struct mlxr_weight {
  mlxr_dtype type;
  int64_t n_in;      /* elements per row (ggml ne[0]) */
  int64_t n_out;     /* rows (ggml ne[1]) */
  size_t row_bytes;  /* bytes per row */
  const void *data;  /* NULL means "absent" (optional tensors such as biases) */
  void *device;      /* backend's own copy, if it made one in weight_prepare */
} mlxr_weight;

typedef enum mlxr_rope_mode {
  MLXR_ROPE_NORM = 0, /* rotate pairs (x[2i], x[2i+1]): llama in GGUF (Q/K permuted at convert) */
  MLXR_ROPE_NEOX = 2, /* rotate (x[i], x[i + rot/2]): Qwen, Gemma, Phi-3 */
} mlxr_rope_mode;

/* Arguments of paged attention: every row attends, head by head, to the keys/values of its own
 * sequence at positions [0, n_ctx[row]), which sit in KV blocks named by that sequence's block
 * table. K/V pools are [n_blocks * block_size][n_head_kv * head_dim] of kv_type. */
typedef struct mlxr_attn_args {
  int64_t n_rows;
  int n_head, n_head_kv, head_dim_k, head_dim_v;
  const float *q;                     /* [n_rows][n_head * head_dim_k] */
  float *out;                         /* [n_rows][n_head * head_dim_v] */
  const void *k_pool, *v_pool;        /* one layer's pools */
  mlxr_dtype kv_type;                 /* F32 or F16 */
  int block_size;                     /* tokens per KV block */
  const int32_t *const *block_tables; /* [n_rows] -> that row's sequence block table */
  const int32_t *n_ctx;               /* [n_rows] positions visible to the row (its pos + 1) */
  float scale;                        /* usually 1/sqrt(head_dim_k) */
} mlxr_attn_args;

typedef struct mlxr_backend mlxr_backend;

typedef struct mlxr_backend_iface {
  const char *name;
  void (*free)(mlxr_backend *be);
  void *(*alloc)(mlxr_backend *be, size_t nbytes); /* zeroed; NULL on failure */
  void (*buf_free)(mlxr_backend *be, void *buf);
  /* true if the backend can multiply by weights of this type */
  bool (*supports_weight)(mlxr_backend *be, mlxr_dtype type);
  /* Make a weight usable (device upload); CPU: checks support, nothing to copy. */
  int (*weight_prepare)(mlxr_backend *be, mlxr_weight *w);

  /* out[r][:] = table row ids[r] as float32, r < n */
  int (*get_rows)(mlxr_backend *be, const mlxr_weight *table, const int32_t *ids, int64_t n,
                  float *out);
  /* y[r][o] = sum_k x[r][k] * W[o][k] (+ bias[o] if bias && bias->data), r < n_rows */
  int (*matmul)(mlxr_backend *be, const mlxr_weight *w, const mlxr_weight *bias, const float *x,
                int64_t n_rows, float *y);
  /* y = x / sqrt(mean(x^2) + eps) * w per row of dim elements (w f32 [dim]); y may equal x.
   * Rows are n_rows * (row_stride/dim) groups: used per head with dim = head_dim. */
  void (*rms_norm)(mlxr_backend *be, const float *x, const float *w, int64_t n_rows, int64_t dim,
                   float eps, float *y);
  /* Rotate the first rot_dim dims of each head of each row in place; cos/sin are precomputed
   * [n_rows][rot_dim/2] (position and frequency scaling folded in by the caller). */
  void (*rope)(mlxr_backend *be, float *x, int64_t n_rows, int n_heads, int head_dim, int rot_dim,
               mlxr_rope_mode mode, const float *cos_tab, const float *sin_tab);
  /* out[i] = silu(gate[i]) * up[i] for i < n */
  void (*swiglu)(mlxr_backend *be, const float *gate, const float *up, float *out, int64_t n);
  /* y[i] += x[i] */
  void (*add)(mlxr_backend *be, float *y, const float *x, int64_t n);
  /* Store n_rows rows of K and V into the pools at the given slots (block * block_size + offset). */
  void (*kv_store)(mlxr_backend *be, const float *k, const float *v, int64_t n_rows, int64_t dim_k,
                   int64_t dim_v, const int64_t *slots, void *k_pool, void *v_pool,
                   mlxr_dtype kv_type);
  int (*attention)(mlxr_backend *be, const mlxr_attn_args *args);
} mlxr_backend_iface;

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

#endif
