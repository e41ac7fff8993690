/*
 * cuda_backend.cu: the CUDA op table (core/kernels/backend.h) on one GPU. The kernels live in the
 * files cuda_kernels.h lists; this file owns the context and decides which kernel runs:
 *
 * Streams and errors. Everything is queued on one non-blocking stream per backend, so ops return
 * at once. A failed launch or CUDA call is recorded as the backend's sticky error (the first one
 * wins) and reported by the next download, synchronize or end_forward, with words from
 * error_message; ops that can tell their arguments are bad return a status directly.
 *
 * Transfers. Uploads go through a pinned staging ring (bump allocation; when it wraps, the stream
 * is synchronized first, so a region is never overwritten while a copy from it is pending), which
 * makes them asynchronous and lets the caller reuse its buffer at once. Downloads copy into the
 * caller's memory and wait.
 *
 * Weights. weight_prepare uploads a matrix's GGUF rows in chunks to a device staging buffer and
 * converts them into the kernels' layout (mlxr_cuda_weight_convert) in a buffer of its own (the
 * same file bytes prepared twice, as tied embeddings are, share one copy: same address, shape,
 * type and a hash of sampled bytes). 1-D F32 vectors (norm weights, biases) are copied as they
 * are. Every copy belongs to the backend and is freed with it.
 *
 * Products. x W^T for n rows: up to MLXR_CUDA_MATVEC_MAX_ROWS rows, the matvec kernels (decode:
 * they stream the weights once for all rows; q/k/v and gate/up in one launch, the residual add in
 * the output's epilogue). Float weights (F32, F16, BF16) with more rows go to
 * cuBLAS directly (activations converted to the weights' type; F32 stays F32, no TF32).
 * Quantized weights with up to CUDA_MATVEC_PASS_ROWS rows run the matvec kernels in passes of
 * MAX_ROWS (reading the weights once per pass is cheaper than dequantizing them); beyond that,
 * the weights are dequantized to F16 tile by tile into scratch and each tile goes to cuBLAS.
 *
 * Folded ops. norm_matmul_multi and swiglu_matmul_acc, for quantized weights on the matvec path:
 * the kernel that quantizes the activations applies the norm weight (and keeps each 32-block's
 * sum of squares, from which the product scales its sums by 1 / rms) or the SwiGLU, so the
 * rms_norm and swiglu kernels, and the stores and loads of their outputs, are gone from a decode
 * step. Float weights and prompt-sized batches answer MLXR_ERR_UNSUPPORTED (the model runs the
 * separate ops), as does params.no_fold.
 *
 * Programmatic dependent launch (cuda_kernels.h): on sm_90 and newer, unless params.no_pdl, the
 * kernels of a decode step are launched so that each may start during the tail of the one before
 * (the products load their first weights before waiting for their inputs).
 *
 * Graphs. A forward marked graph (decode-shaped, padded to graph_rows) runs op by op the first
 * time a row count is seen (that sizes every scratch buffer and warms cuBLAS), is captured into a
 * CUDA graph the second time, and is replayed from then on. Scratch buffers only grow and are
 * never freed while a graph may point at them (retired ones are kept until the backend goes), and
 * freeing any buffer drops every graph, since a captured launch may point into it.
 *
 * Memory: every device allocation goes through dev_malloc / dev_free, which count the bytes held
 * and refuse what would pass params.mem_limit (a cap the user sets to leave room for others), so
 * running out under the cap and running out of the card look the same: MLXR_ERR_NOMEM, and the
 * engine falls back to the CPU.
 *
 * Threads: one thread at a time uses a backend; every entry makes the backend's device current
 * on the calling thread (the daemon opens models on one thread and runs them on another).
 */
#include "core/kernels/cuda/cuda_backend.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/kernels/cuda/cuda_blas.h"
#include "core/kernels/cuda/cuda_kernels.h"

#define CUDA_STAGING_BYTES ((size_t)64 << 20)  /* pinned upload ring */
#define CUDA_RAW_CHUNK_BYTES ((size_t)64 << 20) /* device staging for raw weight rows */
#define CUDA_CUBLAS_WS_BYTES ((size_t)32 << 20)
#define CUDA_DEQ_TILE_BYTES ((size_t)64 << 20)  /* F16 tile of dequantized weights for cuBLAS */
#define CUDA_MATVEC_PASS_ROWS 64               /* quantized: matvec passes up to this many rows */
/* Both can be changed for tuning by the environment when a backend opens: MLXR_CUDA_PASS_ROWS
 * (8..4096) and MLXR_CUDA_TILE_MIB (1..1024); likewise MLXR_CUDA_SPLIT_MERGE=1 (cuda_kernels.h). */
#define CUDA_MAX_GRAPHS 32

typedef struct cuda_weight_copy {
  const void *src; /* w->data it was made from */
  uint64_t sample; /* hash of sampled source bytes: a freed and reused address is not a match */
  mlxr_dtype type;
  int64_t n_in, n_out;
  void *dev;
} cuda_weight_copy;

typedef struct cuda_scratch {
  void *ptr;
  size_t cap;
} cuda_scratch;

typedef struct cuda_graph {
  int32_t n_rows;
  int state;             /* 0 unseen, 1 ran once eagerly, 2 captured, -1 capture failed: never */
  cudaGraphExec_t exec;
} cuda_graph;

typedef struct cuda_alloc_rec {
  void *ptr;
  size_t bytes;
} cuda_alloc_rec;

typedef struct cuda_context {
  mlxr_cuda_backend_params p;
  size_t held;             /* device bytes allocated through dev_malloc */
  cuda_alloc_rec *allocs;  /* live allocations and their sizes */
  size_t n_allocs, allocs_cap;
  int device;
  int n_sm;
  bool pdl;                /* launch the decode kernels with PDL (sm_90+, not params.no_pdl) */
  int64_t pass_rows;       /* CUDA_MATVEC_PASS_ROWS or MLXR_CUDA_PASS_ROWS */
  size_t deq_tile_bytes;   /* CUDA_DEQ_TILE_BYTES or MLXR_CUDA_TILE_MIB */
  bool split_merge;        /* MLXR_CUDA_SPLIT_MERGE=1: see mlxr_cuda_attention */
  cudaStream_t stream;
  mlxr_cublas *blas;
  void *cublas_ws;
  /* sticky error */
  cudaError_t err;
  char err_text[256];
  /* pinned upload ring */
  unsigned char *staging;
  size_t staging_off;
  /* weights */
  cuda_weight_copy *weights;
  size_t n_weights, weights_cap;
  /* scratch (grow only) */
  cuda_scratch act;    /* activations converted for cuBLAS */
  cuda_scratch deq;    /* dequantized weight tile */
  cuda_scratch mv;     /* matvec scratch */
  cuda_scratch attn;   /* attention partials */
  void **retired;      /* outgrown scratch kept alive for graphs */
  size_t n_retired, retired_cap;
  /* graphs */
  cuda_graph graphs[CUDA_MAX_GRAPHS];
  int n_graphs;
  cuda_graph *capturing; /* the graph being captured, or NULL */
  bool any_graph;        /* some graph exists (scratch must not be freed) */
} cuda_context;

static cuda_context *ctx_of(mlxr_backend *be) { return (cuda_context *)be->context; }

static void use_device(cuda_context *c) { cudaSetDevice(c->device); }

/* Record the first failure; returns true if e is a failure. */
static bool fail(cuda_context *c, cudaError_t e, const char *what) {
  if (e == cudaSuccess) return false;
  if (c->err == cudaSuccess) {
    c->err = e;
    snprintf(c->err_text, sizeof c->err_text, "%s: %s", what, cudaGetErrorString(e));
  }
  return true;
}

/* cudaMalloc under the memory cap; the error is not sticky (callers report out of memory). */
static cudaError_t dev_malloc(cuda_context *c, void **p, size_t bytes) {
  *p = NULL;
  if (c->p.mem_limit > 0 && c->held + bytes > c->p.mem_limit) return cudaErrorMemoryAllocation;
  if (c->n_allocs == c->allocs_cap) {
    const size_t cap = c->allocs_cap ? 2 * c->allocs_cap : 256;
    cuda_alloc_rec *r = (cuda_alloc_rec *)realloc(c->allocs, cap * sizeof(*r));
    if (!r) return cudaErrorMemoryAllocation;
    c->allocs = r;
    c->allocs_cap = cap;
  }
  const cudaError_t e = cudaMalloc(p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *p = NULL;
    return e;
  }
  c->allocs[c->n_allocs++] = (cuda_alloc_rec){*p, bytes};
  c->held += bytes;
  return cudaSuccess;
}

static void dev_free(cuda_context *c, void *p) {
  if (!p) return;
  for (size_t i = 0; i < c->n_allocs; i++) {
    if (c->allocs[i].ptr == p) {
      c->held -= c->allocs[i].bytes;
      c->allocs[i] = c->allocs[--c->n_allocs];
      break;
    }
  }
  cudaFree(p);
}

static int status_of(cudaError_t e) {
  if (e == cudaSuccess) return MLXR_OK;
  if (e == cudaErrorMemoryAllocation) return MLXR_ERR_NOMEM;
  if (e == cudaErrorInvalidValue) return MLXR_ERR_INVALID;
  return MLXR_ERR_DEVICE;
}

/* The sticky error as a status (and, once reported, it stays: device faults are not recoverable). */
static int sticky(cuda_context *c) { return status_of(c->err); }

/* ---- memory ---- */

static void drop_graphs(cuda_context *c) {
  for (int i = 0; i < c->n_graphs; i++) {
    if (c->graphs[i].exec) cudaGraphExecDestroy(c->graphs[i].exec);
    c->graphs[i].exec = NULL;
    if (c->graphs[i].state == 2) c->graphs[i].state = 1;
  }
  c->any_graph = false;
}

static void *cuda_alloc(mlxr_backend *be, size_t nbytes) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  void *p = NULL;
  if (nbytes == 0) nbytes = 256;
  if (dev_malloc(c, &p, nbytes) != cudaSuccess) return NULL; /* not sticky: the caller gets NULL */
  if (fail(c, cudaMemsetAsync(p, 0, nbytes, c->stream), "clearing a buffer")) return p;
  return p;
}

static void cuda_buf_free(mlxr_backend *be, void *buf) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  drop_graphs(c); /* a captured launch may point into buf */
  cudaStreamSynchronize(c->stream);
  dev_free(c, buf);
}

static int cuda_upload(mlxr_backend *be, void *dst, const void *src, size_t nbytes) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  const unsigned char *s = (const unsigned char *)src;
  unsigned char *d = (unsigned char *)dst;
  while (nbytes > 0) {
    size_t n = nbytes < CUDA_STAGING_BYTES ? nbytes : CUDA_STAGING_BYTES;
    if (c->staging_off + n > CUDA_STAGING_BYTES) {
      /* wrap: every earlier copy out of the ring must be done before it is overwritten */
      if (fail(c, cudaStreamSynchronize(c->stream), "waiting for uploads")) return sticky(c);
      c->staging_off = 0;
    }
    memcpy(c->staging + c->staging_off, s, n);
    if (fail(c, cudaMemcpyAsync(d, c->staging + c->staging_off, n, cudaMemcpyHostToDevice, c->stream),
             "uploading")) {
      return sticky(c);
    }
    c->staging_off = (c->staging_off + n + 255) & ~(size_t)255;
    s += n;
    d += n;
    nbytes -= n;
  }
  return MLXR_OK;
}

static int cuda_download(mlxr_backend *be, void *dst, const void *src, size_t nbytes) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  if (c->err != cudaSuccess) return sticky(c);
  fail(c, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, c->stream), "downloading");
  fail(c, cudaStreamSynchronize(c->stream), "running queued work");
  c->staging_off = 0; /* the stream is idle: the whole ring is free */
  return sticky(c);
}

static int cuda_copy(mlxr_backend *be, void *dst, const void *src, size_t nbytes) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, c->stream), "copying");
  return sticky(c);
}

static int cuda_synchronize(mlxr_backend *be) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, cudaStreamSynchronize(c->stream), "running queued work");
  if (c->err == cudaSuccess) c->staging_off = 0;
  return sticky(c);
}

static int cuda_memory_info(mlxr_backend *be, size_t *free_bytes, size_t *total_bytes) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  size_t f = 0, t = 0;
  if (cudaMemGetInfo(&f, &t) != cudaSuccess) {
    cudaGetLastError();
    *free_bytes = *total_bytes = 0;
    return MLXR_ERR_DEVICE;
  }
  if (c->p.mem_limit > 0) { /* the cap, as far as the card has room */
    const size_t left = c->p.mem_limit > c->held ? c->p.mem_limit - c->held : 0;
    if (left < f) f = left;
    if (c->p.mem_limit < t) t = c->p.mem_limit;
  }
  *free_bytes = f;
  *total_bytes = t;
  return MLXR_OK;
}

static const char *cuda_error_message(mlxr_backend *be) {
  cuda_context *c = ctx_of(be);
  return c->err == cudaSuccess ? NULL : c->err_text;
}

/* Grow a scratch buffer to at least need bytes. The old buffer is freed only when no graph can
 * point at it; otherwise it is retired (kept until the backend is freed). */
static void *scratch(cuda_context *c, cuda_scratch *s, size_t need) {
  if (need <= s->cap) return s->ptr;
  const size_t cap = need + need / 4 + 4096;
  void *p = NULL;
  if (fail(c, dev_malloc(c, &p, cap), "allocating scratch")) return NULL;
  /* zero-filled (attention's ticket counters expect it) */
  if (fail(c, cudaMemsetAsync(p, 0, cap, c->stream), "clearing scratch")) {
    dev_free(c, p);
    return NULL;
  }
  if (s->ptr) {
    if (c->any_graph || c->capturing) {
      if (c->n_retired == c->retired_cap) {
        const size_t rc = c->retired_cap ? 2 * c->retired_cap : 8;
        void **r = (void **)realloc(c->retired, rc * sizeof(void *));
        if (!r) {
          dev_free(c, p);
          fail(c, cudaErrorMemoryAllocation, "retiring scratch");
          return NULL;
        }
        c->retired = r;
        c->retired_cap = rc;
      }
      c->retired[c->n_retired++] = s->ptr;
    } else {
      cudaStreamSynchronize(c->stream);
      dev_free(c, s->ptr);
    }
  }
  s->ptr = p;
  s->cap = cap;
  return p;
}

/* ---- capabilities and weights ---- */

static bool cuda_supports_op(mlxr_backend *be, mlxr_op op, mlxr_dtype type) {
  (void)be;
  switch (op) {
  case MLXR_OP_MATMUL:
  case MLXR_OP_GET_ROWS: return mlxr_cuda_weight_type_supported(type);
  case MLXR_OP_KV_STORE:
  case MLXR_OP_ATTENTION: return type == MLXR_DTYPE_F32 || type == MLXR_DTYPE_F16;
  case MLXR_OP_RMS_NORM:
  case MLXR_OP_ROPE:
  case MLXR_OP_SWIGLU:
  case MLXR_OP_ADD: return type == MLXR_DTYPE_F32;
  case MLXR_OP_COUNT: break;
  }
  return false;
}

/* FNV-1a over up to 3 x 4 KiB of the source (start, middle, end). */
static uint64_t sample_hash(const void *src, size_t bytes) {
  const unsigned char *b = (const unsigned char *)src;
  uint64_t h = 0xcbf29ce484222325ull ^ bytes;
  const size_t span = bytes < 4096 ? bytes : 4096;
  const size_t starts[3] = {0, bytes / 2 - (bytes / 2 < span / 2 ? bytes / 2 : span / 2), bytes - span};
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < span; i++) h = (h ^ b[starts[k] + i]) * 0x100000001b3ull;
  }
  return h;
}

/* Upload rows of GGUF blocks in chunks through a device staging buffer, converting each chunk into
 * the kernels' layout at dev. */
static int upload_matrix(mlxr_backend *be, cuda_context *c, const mlxr_weight *w, void *dev) {
  int64_t chunk = (int64_t)(CUDA_RAW_CHUNK_BYTES / w->row_bytes);
  if (chunk < 1) chunk = 1;
  if (chunk > w->n_out) chunk = w->n_out;
  void *raw = NULL;
  if (dev_malloc(c, &raw, (size_t)chunk * w->row_bytes) != cudaSuccess) return MLXR_ERR_NOMEM;
  int rc = MLXR_OK;
  for (int64_t r0 = 0; r0 < w->n_out && rc == MLXR_OK; r0 += chunk) {
    const int64_t n = w->n_out - r0 < chunk ? w->n_out - r0 : chunk;
    rc = cuda_upload(be, raw, (const unsigned char *)w->data + (size_t)r0 * w->row_bytes, (size_t)n * w->row_bytes);
    if (rc == MLXR_OK &&
        fail(c, mlxr_cuda_weight_convert(w->type, raw, w->row_bytes, w->n_in, w->n_out, r0, n, dev, c->stream),
             "converting weights")) {
      rc = sticky(c);
    }
  }
  /* the staging buffer goes away: wait for the copies out of it */
  if (fail(c, cudaStreamSynchronize(c->stream), "uploading weights") && rc == MLXR_OK) rc = sticky(c);
  c->staging_off = 0;
  dev_free(c, raw);
  return rc;
}

static int cuda_weight_prepare(mlxr_backend *be, mlxr_weight *w) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  if (!w->data || w->device) return MLXR_OK;
  const bool vector = w->n_out == 1 && w->type == MLXR_DTYPE_F32;
  if (!vector && !mlxr_cuda_weight_type_supported(w->type)) return MLXR_ERR_UNSUPPORTED;
  const size_t src_bytes = w->row_bytes * (size_t)w->n_out;
  const uint64_t sample = sample_hash(w->data, src_bytes);
  for (size_t i = 0; i < c->n_weights; i++) {
    const cuda_weight_copy *k = &c->weights[i];
    if (k->src == w->data && k->sample == sample && k->type == w->type && k->n_in == w->n_in && k->n_out == w->n_out) {
      w->device = k->dev;
      return MLXR_OK;
    }
  }
  if (c->n_weights == c->weights_cap) {
    const size_t cap = c->weights_cap ? 2 * c->weights_cap : 256;
    cuda_weight_copy *p = (cuda_weight_copy *)realloc(c->weights, cap * sizeof(*p));
    if (!p) return MLXR_ERR_NOMEM;
    c->weights = p;
    c->weights_cap = cap;
  }
  const size_t bytes = vector ? src_bytes : mlxr_cuda_weight_bytes(w->type, w->n_in, w->n_out);
  void *dev = NULL;
  if (bytes == 0 || dev_malloc(c, &dev, bytes) != cudaSuccess) return MLXR_ERR_NOMEM;
  const int rc = vector ? cuda_upload(be, dev, w->data, src_bytes) : upload_matrix(be, c, w, dev);
  if (rc != MLXR_OK) {
    cudaStreamSynchronize(c->stream);
    dev_free(c, dev);
    return rc;
  }
  c->weights[c->n_weights++] = (cuda_weight_copy){w->data, sample, w->type, w->n_in, w->n_out, dev};
  w->device = dev;
  return MLXR_OK;
}

/* ---- graphs ---- */

static const int32_t graph_buckets[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 80, 96, 128, 160, 192, 224, 256,
                                        320, 384, 448, 512};

static int32_t cuda_graph_rows(mlxr_backend *be, int32_t n_rows) {
  const cuda_context *c = ctx_of(be);
  if (c->p.no_graphs) return 0;
  const int32_t max = c->p.max_graph_rows > 0 ? c->p.max_graph_rows : 256;
  for (size_t i = 0; i < sizeof(graph_buckets) / sizeof(graph_buckets[0]); i++) {
    if (graph_buckets[i] >= n_rows) return graph_buckets[i] <= max ? graph_buckets[i] : 0;
  }
  return 0;
}

static cuda_graph *graph_slot(cuda_context *c, int32_t n_rows) {
  for (int i = 0; i < c->n_graphs; i++) {
    if (c->graphs[i].n_rows == n_rows) return &c->graphs[i];
  }
  if (c->n_graphs == CUDA_MAX_GRAPHS) return NULL;
  cuda_graph *g = &c->graphs[c->n_graphs++];
  *g = (cuda_graph){.n_rows = n_rows, .state = 0, .exec = NULL};
  return g;
}

static int cuda_begin_forward(mlxr_backend *be, const mlxr_forward_info *info) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  if (c->err != cudaSuccess) return sticky(c);
  if (!info->graph) return MLXR_OK;
  cuda_graph *g = graph_slot(c, info->n_rows);
  if (!g || g->state < 0) return MLXR_OK;
  if (g->state == 2 && g->exec) {
    if (fail(c, cudaGraphLaunch(g->exec, c->stream), "replaying a forward")) return sticky(c);
    return MLXR_FORWARD_REPLAYED;
  }
  if (g->state == 0) { /* first time: op by op, sizing scratch and warming cuBLAS */
    g->state = 1;
    return MLXR_OK;
  }
  if (cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
    cudaGetLastError();
    g->state = -1;
    return MLXR_OK;
  }
  c->capturing = g;
  return MLXR_OK;
}

static int cuda_end_forward(mlxr_backend *be, bool ok) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  cuda_graph *g = c->capturing;
  if (!g) return sticky(c);
  c->capturing = NULL;
  cudaGraph_t graph = NULL;
  const cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
  cudaGraphExec_t exec = NULL;
  const bool captured = e == cudaSuccess && graph && ok && c->err == cudaSuccess &&
                        cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
  if (graph) cudaGraphDestroy(graph);
  if (!captured) {
    /* nothing captured ran: forget the capture (errors raised while capturing included) and
     * have the model run this forward op by op; never capture this size again */
    cudaGetLastError();
    if (exec) cudaGraphExecDestroy(exec);
    g->state = -1;
    if (!ok) return MLXR_ERR_DEVICE;
    c->err = cudaSuccess;
    c->err_text[0] = '\0';
    return MLXR_FORWARD_RERUN;
  }
  g->exec = exec;
  g->state = 2;
  c->any_graph = true;
  if (fail(c, cudaGraphLaunch(exec, c->stream), "running a captured forward")) return sticky(c);
  return MLXR_OK;
}

/* ---- ops ---- */

static int cuda_get_rows(mlxr_backend *be, const mlxr_weight *table, const int32_t *ids, int64_t n,
                         float *out) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  if (!table->device) return MLXR_ERR_INVALID;
  fail(c, mlxr_cuda_get_rows(table->type, table->device, table->n_in, table->n_out, ids, n, out, c->stream),
       "get_rows");
  return MLXR_OK;
}

/* x W^T through cuBLAS for float weights: activations converted to the weights' type. */
static int matmul_blas_float(cuda_context *c, const mlxr_weight *w, const float *x, int64_t n_rows, float *y,
                             bool acc) {
  const void *xin = x;
  if (w->type != MLXR_DTYPE_F32) {
    void *a = scratch(c, &c->act, (size_t)n_rows * (size_t)w->n_in * 2);
    if (!a) return sticky(c);
    if (fail(c, mlxr_cuda_convert_f32(x, n_rows * w->n_in, w->type, a, c->stream), "converting activations")) {
      return MLXR_OK;
    }
    xin = a;
  }
  const char *what = NULL;
  fail(c, mlxr_cublas_gemm(c->blas, w->type, w->device, w->n_out, w->n_in, xin, n_rows, y, w->n_out, acc, &what),
       what ? what : "cuBLAS product");
  return MLXR_OK;
}

/* x W^T through cuBLAS for quantized weights: F16 tiles of rows of W, dequantized into scratch. */
static int matmul_blas_quant(cuda_context *c, const mlxr_weight *w, const float *x, int64_t n_rows, float *y,
                             bool acc) {
  void *a = scratch(c, &c->act, (size_t)n_rows * (size_t)w->n_in * 2);
  if (!a) return sticky(c);
  if (fail(c, mlxr_cuda_convert_f32(x, n_rows * w->n_in, MLXR_DTYPE_F16, a, c->stream), "converting activations")) {
    return MLXR_OK;
  }
  int64_t tile = (int64_t)(c->deq_tile_bytes / ((size_t)w->n_in * 2));
  tile = tile >= 128 ? tile / 128 * 128 : 128;
  if (tile > w->n_out) tile = w->n_out;
  void *deq = scratch(c, &c->deq, (size_t)tile * (size_t)w->n_in * 2);
  if (!deq) return sticky(c);
  for (int64_t o0 = 0; o0 < w->n_out; o0 += tile) {
    const int64_t nt = w->n_out - o0 < tile ? w->n_out - o0 : tile;
    if (fail(c, mlxr_cuda_dequant_rows(w->type, w->device, w->n_in, w->n_out, o0, nt, MLXR_DTYPE_F16, deq, c->stream),
             "dequantizing weights")) {
      return MLXR_OK;
    }
    const char *what = NULL;
    if (fail(c, mlxr_cublas_gemm(c->blas, MLXR_DTYPE_F16, deq, nt, w->n_in, a, n_rows, y + o0, w->n_out, acc, &what),
             what ? what : "cuBLAS product")) {
      return MLXR_OK;
    }
  }
  return MLXR_OK;
}

static bool is_float_type(mlxr_dtype t) {
  return t == MLXR_DTYPE_F32 || t == MLXR_DTYPE_F16 || t == MLXR_DTYPE_BF16;
}

/* The matvec kernels take this product (see the top of the file). */
static bool matvec_path(const cuda_context *c, mlxr_dtype t, int64_t n_rows) {
  return n_rows <= MLXR_CUDA_MATVEC_MAX_ROWS || (!is_float_type(t) && n_rows <= c->pass_rows);
}

/* The bias of a product as a device pointer: NULL for none; false if it does not fit w. */
static bool bias_of(const mlxr_weight *w, const mlxr_weight *bias, const float **out) {
  *out = NULL;
  if (!bias || !bias->data) return true;
  if (bias->type != MLXR_DTYPE_F32 || bias->n_in != w->n_out || !bias->device) return false;
  *out = (const float *)bias->device;
  return true;
}

/* n products of the same x by the matvec kernels, MAX_ROWS rows per launch (weights all of one type
 * and n_in; n <= MLXR_CUDA_MATVEC_MAX_MATS). */
static int matvec_passes(cuda_context *c, int n, const mlxr_weight *const *ws, const float *const *bs,
                         const mlxr_cuda_mv_in *in, int64_t n_rows, float *const *ys, bool acc) {
  const int64_t pass = MLXR_CUDA_MATVEC_MAX_ROWS, n_in = ws[0]->n_in;
  void *s = scratch(c, &c->mv, mlxr_cuda_matvec_scratch_bytes(ws[0]->type, n_in, pass));
  if (!s && c->err != cudaSuccess) return sticky(c);
  const void *dev[MLXR_CUDA_MATVEC_MAX_MATS];
  int64_t outs[MLXR_CUDA_MATVEC_MAX_MATS];
  float *yr[MLXR_CUDA_MATVEC_MAX_MATS];
  for (int i = 0; i < n; i++) dev[i] = ws[i]->device, outs[i] = ws[i]->n_out;
  for (int64_t r0 = 0; r0 < n_rows; r0 += pass) {
    const int64_t nr = n_rows - r0 < pass ? n_rows - r0 : pass;
    for (int i = 0; i < n; i++) yr[i] = ys[i] + r0 * ws[i]->n_out;
    mlxr_cuda_mv_in part = *in; /* rows r0.. of x (and up) */
    part.x += r0 * n_in;
    if (part.up) part.up += r0 * n_in;
    if (fail(c, mlxr_cuda_matvec_multi(ws[0]->type, n, dev, n_in, outs, &part, nr, bs, yr, acc, s, c->stream, c->pdl),
             "matvec")) {
      break;
    }
  }
  return MLXR_OK;
}

/* One product, y = x W^T (+ bias), or y += ... with acc. */
static int matmul_one(cuda_context *c, const mlxr_weight *w, const mlxr_weight *bias, const float *x,
                      int64_t n_rows, float *y, bool acc) {
  if (!w->device || n_rows <= 0) return MLXR_ERR_INVALID;
  const float *b = NULL;
  if (!bias_of(w, bias, &b)) return MLXR_ERR_INVALID;
  if (matvec_path(c, w->type, n_rows)) {
    const mlxr_cuda_mv_in in = {x, NULL, 0.0f, NULL};
    return matvec_passes(c, 1, &w, &b, &in, n_rows, &y, acc);
  }
  const int rc = is_float_type(w->type) ? matmul_blas_float(c, w, x, n_rows, y, acc)
                                        : matmul_blas_quant(c, w, x, n_rows, y, acc);
  if (rc == MLXR_OK && b) fail(c, mlxr_cuda_add_bias(y, b, n_rows, w->n_out, c->stream), "adding a bias");
  return rc;
}

static int cuda_matmul(mlxr_backend *be, const mlxr_weight *w, const mlxr_weight *bias, const float *x,
                       int64_t n_rows, float *y) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  return matmul_one(c, w, bias, x, n_rows, y, false);
}

static int cuda_matmul_acc(mlxr_backend *be, const mlxr_weight *w, const float *x, int64_t n_rows, float *y) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  return matmul_one(c, w, NULL, x, n_rows, y, true);
}

/* q/k/v, gate/up: one matvec launch for all where they share type and n_in, else one each. */
static int cuda_matmul_multi(mlxr_backend *be, int n, const mlxr_weight *const *ws,
                             const mlxr_weight *const *biases, const float *x, int64_t n_rows,
                             float *const *ys) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  bool fused = n >= 1 && n <= MLXR_CUDA_MATVEC_MAX_MATS && matvec_path(c, ws[0]->type, n_rows);
  const float *bs[MLXR_CUDA_MATVEC_MAX_MATS] = {NULL, NULL, NULL};
  for (int i = 0; fused && i < n; i++) {
    fused = ws[i]->device && ws[i]->type == ws[0]->type && ws[i]->n_in == ws[0]->n_in &&
            bias_of(ws[i], biases ? biases[i] : NULL, &bs[i]);
  }
  if (fused) {
    const mlxr_cuda_mv_in in = {x, NULL, 0.0f, NULL};
    return matvec_passes(c, n, ws, bs, &in, n_rows, ys, false);
  }
  for (int i = 0; i < n; i++) {
    const int rc = matmul_one(c, ws[i], biases ? biases[i] : NULL, x, n_rows, ys[i], false);
    if (rc != MLXR_OK) return rc;
  }
  return MLXR_OK;
}

/* Whether the matvec kernels fold a norm or SwiGLU into these products (see the top of the file). */
static bool folds(const cuda_context *c, int n, const mlxr_weight *const *ws, int64_t n_rows) {
  if (c->p.no_fold || n < 1 || n > MLXR_CUDA_MATVEC_MAX_MATS || n_rows < 1) return false;
  if (!mlxr_cuda_matvec_folds(ws[0]->type) || !matvec_path(c, ws[0]->type, n_rows)) return false;
  for (int i = 0; i < n; i++) {
    if (!ws[i]->device || ws[i]->type != ws[0]->type || ws[i]->n_in != ws[0]->n_in) return false;
  }
  return true;
}

static int cuda_norm_matmul_multi(mlxr_backend *be, const mlxr_weight *norm, float eps, int n,
                                  const mlxr_weight *const *ws, const mlxr_weight *const *biases, const float *x,
                                  int64_t n_rows, float *const *ys) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  if (!folds(c, n, ws, n_rows) || !norm || !norm->device || norm->type != MLXR_DTYPE_F32 ||
      norm->n_in != ws[0]->n_in) {
    return MLXR_ERR_UNSUPPORTED;
  }
  const float *bs[MLXR_CUDA_MATVEC_MAX_MATS] = {NULL, NULL, NULL};
  for (int i = 0; i < n; i++) {
    if (!bias_of(ws[i], biases ? biases[i] : NULL, &bs[i])) return MLXR_ERR_INVALID;
  }
  const mlxr_cuda_mv_in in = {x, (const float *)norm->device, eps, NULL};
  return matvec_passes(c, n, ws, bs, &in, n_rows, ys, false);
}

static int cuda_swiglu_matmul_acc(mlxr_backend *be, const mlxr_weight *w, const float *gate, const float *up,
                                  int64_t n_rows, float *y) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  if (!folds(c, 1, &w, n_rows)) return MLXR_ERR_UNSUPPORTED;
  const float *b = NULL;
  const mlxr_cuda_mv_in in = {gate, NULL, 0.0f, up};
  return matvec_passes(c, 1, &w, &b, &in, n_rows, &y, true);
}

static int cuda_argmax_rows(mlxr_backend *be, const float *x, int64_t n_rows, int64_t n_cols, int32_t *ids) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, mlxr_cuda_argmax_rows(x, n_rows, n_cols, ids, c->stream), "argmax");
  return MLXR_OK;
}

static void cuda_rope_kv_store(mlxr_backend *be, float *q, float *k, const float *v, int64_t n_rows, int n_head,
                               int n_head_kv, int head_dim, int head_dim_v, int rot_dim, mlxr_rope_mode mode,
                               const float *cos_tab, const float *sin_tab, const int64_t *slots, void *k_pool,
                               void *v_pool, mlxr_dtype kv_type) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, mlxr_cuda_rope_kv_store(q, k, v, n_rows, n_head, n_head_kv, head_dim, head_dim_v, rot_dim, mode, cos_tab,
                                  sin_tab, slots, k_pool, v_pool, kv_type, c->stream, c->pdl),
       "rope_kv_store");
}

static void cuda_rms_norm(mlxr_backend *be, const float *x, const mlxr_weight *w, int64_t n_rows, int64_t dim,
                          float eps, float *y) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, mlxr_cuda_rms_norm(x, (const float *)w->device, n_rows, dim, eps, y, c->stream, c->pdl), "rms_norm");
}

static void cuda_rope_cache(mlxr_backend *be, const int32_t *pos, int64_t n_rows, const double *inv_freq,
                            int half, float linear_scale, float *cos_tab, float *sin_tab) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, mlxr_cuda_rope_cache(pos, n_rows, inv_freq, half, linear_scale, cos_tab, sin_tab, c->stream, c->pdl),
       "rope tables");
}

static void cuda_rope(mlxr_backend *be, float *x, int64_t n_rows, int n_heads, int head_dim, int rot_dim,
                      mlxr_rope_mode mode, const float *cos_tab, const float *sin_tab) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, mlxr_cuda_rope(x, n_rows, n_heads, head_dim, rot_dim, mode, cos_tab, sin_tab, c->stream), "rope");
}

static void cuda_swiglu(mlxr_backend *be, const float *gate, const float *up, float *out, int64_t n) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, mlxr_cuda_swiglu(gate, up, out, n, c->stream, c->pdl), "swiglu");
}

static void cuda_add(mlxr_backend *be, float *y, const float *x, int64_t n) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, mlxr_cuda_add(y, x, n, c->stream, c->pdl), "add");
}

static void cuda_kv_store(mlxr_backend *be, const float *k, const float *v, int64_t n_rows, int64_t dim_k,
                          int64_t dim_v, const int64_t *slots, void *k_pool, void *v_pool, mlxr_dtype kv_type) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  fail(c, mlxr_cuda_kv_store(k, v, n_rows, dim_k, dim_v, slots, k_pool, v_pool, kv_type, c->stream), "kv_store");
}

static int cuda_attention(mlxr_backend *be, const mlxr_attn_args *a) {
  cuda_context *c = ctx_of(be);
  use_device(c);
  if (a->kv_type != MLXR_DTYPE_F32 && a->kv_type != MLXR_DTYPE_F16) return MLXR_ERR_UNSUPPORTED;
  if (a->n_head_kv <= 0 || a->n_head % a->n_head_kv != 0) return MLXR_ERR_INVALID;
  void *s = scratch(c, &c->attn, mlxr_cuda_attention_scratch_bytes(a->n_rows, a->n_head, a->head_dim_v));
  if (!s) return sticky(c);
  fail(c, mlxr_cuda_attention(a, c->capturing != NULL, c->n_sm, s, c->stream, c->pdl, c->split_merge), "attention");
  return MLXR_OK;
}

/* ---- lifecycle ---- */

static void cuda_free(mlxr_backend *be) {
  cuda_context *c = ctx_of(be);
  if (c) {
    use_device(c);
    if (c->stream) cudaStreamSynchronize(c->stream);
    drop_graphs(c);
    mlxr_cublas_close(c->blas);
    for (size_t i = 0; i < c->n_weights; i++) dev_free(c, c->weights[i].dev);
    free(c->weights);
    cuda_scratch *all[] = {&c->act, &c->deq, &c->mv, &c->attn};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) dev_free(c, all[i]->ptr);
    for (size_t i = 0; i < c->n_retired; i++) dev_free(c, c->retired[i]);
    free(c->retired);
    dev_free(c, c->cublas_ws);
    free(c->allocs);
    if (c->staging) cudaFreeHost(c->staging);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
  }
  free(be);
}

static const mlxr_backend_iface cuda_iface = {
    .name = "cuda",
    .host_memory = false,
    .free = cuda_free,
    .alloc = cuda_alloc,
    .buf_free = cuda_buf_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .synchronize = cuda_synchronize,
    .memory_info = cuda_memory_info,
    .error_message = cuda_error_message,
    .supports_op = cuda_supports_op,
    .weight_prepare = cuda_weight_prepare,
    .graph_rows = cuda_graph_rows,
    .begin_forward = cuda_begin_forward,
    .end_forward = cuda_end_forward,
    .get_rows = cuda_get_rows,
    .matmul = cuda_matmul,
    .rms_norm = cuda_rms_norm,
    .rope_cache = cuda_rope_cache,
    .rope = cuda_rope,
    .swiglu = cuda_swiglu,
    .add = cuda_add,
    .kv_store = cuda_kv_store,
    .attention = cuda_attention,
    .argmax_rows = cuda_argmax_rows,
    .matmul_multi = cuda_matmul_multi,
    .matmul_acc = cuda_matmul_acc,
    .rope_kv_store = cuda_rope_kv_store,
    .norm_matmul_multi = cuda_norm_matmul_multi,
    .swiglu_matmul_acc = cuda_swiglu_matmul_acc,
};

/* A tuning knob from the environment: its value when it is an integer in [lo, hi], else def. */
static int64_t env_int(const char *name, int64_t lo, int64_t hi, int64_t def) {
  const char *v = getenv(name);
  if (!v || !*v) return def;
  char *end = NULL;
  const long long x = strtoll(v, &end, 10);
  return *end == '\0' && x >= lo && x <= hi ? (int64_t)x : def;
}

bool mlxr_cuda_device_describe(int index, char *buf, size_t len) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  snprintf(buf, len, "%s, %.1f GiB", prop.name, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
  return true;
}

int mlxr_cuda_backend_new(const mlxr_cuda_backend_params *params, mlxr_backend **out, char *err,
                          size_t err_len) {
  *out = NULL;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "no usable NVIDIA GPU (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "the driver sees no device");
  }
  if (params->device < 0 || params->device >= count) {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "there is no CUDA device %d (%d present)",
                     params->device, count);
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, params->device) != cudaSuccess || prop.major < 8) {
    cudaGetLastError();
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "CUDA device %d (compute capability %d.%d) is older than sm_80, which MLXR needs",
                     params->device, prop.major, prop.minor);
  }
  mlxr_backend *be = (mlxr_backend *)calloc(1, sizeof(*be));
  cuda_context *c = (cuda_context *)calloc(1, sizeof(*c));
  if (!be || !c) {
    free(be);
    free(c);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  be->iface = &cuda_iface;
  be->context = c;
  c->p = *params;
  c->device = params->device;
  c->n_sm = prop.multiProcessorCount;
  c->pdl = prop.major >= 9 && !params->no_pdl;
  c->pass_rows = env_int("MLXR_CUDA_PASS_ROWS", MLXR_CUDA_MATVEC_MAX_ROWS, 4096, CUDA_MATVEC_PASS_ROWS);
  c->deq_tile_bytes = (size_t)env_int("MLXR_CUDA_TILE_MIB", 1, 1024, (int64_t)(CUDA_DEQ_TILE_BYTES >> 20)) << 20;
  c->split_merge = env_int("MLXR_CUDA_SPLIT_MERGE", 0, 1, 0) == 1;
  use_device(c);
  const char *step = NULL;
  if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) step = "creating a stream";
  else if ((e = cudaMallocHost((void **)&c->staging, CUDA_STAGING_BYTES)) != cudaSuccess) step = "allocating pinned memory";
  else if ((e = dev_malloc(c, &c->cublas_ws, CUDA_CUBLAS_WS_BYTES)) != cudaSuccess) step = "allocating device memory";
  if (step) {
    cudaGetLastError();
    cuda_free(be);
    return mlxr_errf(err, err_len, e == cudaErrorMemoryAllocation ? MLXR_ERR_NOMEM : MLXR_ERR_UNSUPPORTED,
                     "CUDA device %d: %s failed (%s)", params->device, step, cudaGetErrorString(e));
  }
  const int rc = mlxr_cublas_open(c->stream, c->cublas_ws, CUDA_CUBLAS_WS_BYTES, &c->blas, err, err_len);
  if (rc != MLXR_OK) {
    cuda_free(be);
    return rc;
  }
  *out = be;
  return MLXR_OK;
}
