/*
 * cpu_backend.c: the CPU op table. Heavy ops (matmul, attention, get_rows) are split across the
 * thread pool; light elementwise ops run on the caller. Type-specific math comes from the type
 * traits of the selected SIMD level (core/kernels/types.h).
 *
 * Matmul: activations are first converted to the weight type's vec_dot_type (e.g. Q8_0 for Q4_0
 * weights; nothing for F32/F16/BF16 weights, whose dots take float32 activations), then each thread
 * computes a contiguous range of output features for every row, in tiles of output rows so that
 * the weight tile stays in cache while the activation rows stream past. Where the type has a gemm
 * kernel (core/kernels/types.h), a tile is one register-blocked gemm call, for any row count (with
 * one row it still reads several weight rows per pass, and the VNNI kernels beat vec_dot there);
 * otherwise one vec_dot per (row, output).
 *
 * Repacking (weight_prepare): where the CPU has AVX512_VNNI, Q4_0, Q8_0, Q4_K and Q6_K matrices with a
 * multiple of 16 rows are copied once into the R16 layout of gemm_r16_avx512.c (16 rows
 * interleaved per block, same size as the file's bytes), and matmul then runs the R16 kernels:
 * one pass over the activation feeds 16 outputs per vpdpbusd, which is what brings single-row
 * decode to the memory bandwidth; AMX-INT8 takes groups of 16 activation rows when present. The
 * copy lives in w->device (owned by this backend and freed with it, so the backend should not
 * outlive a model by long: the engine pairs them; a matrix prepared twice, as tied embeddings are,
 * shares one copy) and replaces the file's pages: w->data is not read again, so
 * the mmap'd pages of these matrices go cold (MADV_COLD once copied: advice, contents stay valid)
 * and the kernel can drop them, but until then the process maps both. The copy is made by the
 * thread pool, 16-row groups split across threads (load time: ~0.4 s more for a 370 MiB Q8_0
 * file here). For a model that barely fits in memory, the engine's cpu_no_repack (mlxr bench --no-repack) (or params.no_repack)
 * keeps the read-in-place path. get_rows decodes repacked rows directly.
 *
 * F16 matrices with a multiple of 32 rows go, at the AVX-512 level, into the P32 panels of
 * gemm_p32_avx512.c (32 rows' weights for one input element on one cache line), by the same
 * weight_prepare mechanism (copy in w->device, shared by tied views, no_repack keeps them in
 * place): decode becomes one sequential stream per thread and prompts a 12-row x 32-output
 * broadcast micro-kernel; get_rows decodes panel rows.
 *
 * Types without a gemm kernel (K-quants, Q4_1, Q5_x, BF16) multiply prompts (4+ rows) by
 * dequantizing each 16-row weight tile to float32 once and running the F32 gemm on it, against
 * activations rounded to the vec_dot_type like everywhere else (same numbers as decode).
 *
 * Attention reads K and V rows in place from the paged pools. At AVX-512 (head dims multiples of
 * 16) it runs attn_tiled_avx512.c: units of (run of rows of one sequence, KV head), each key and
 * value row converted once per unit, scores and value sums as register-blocked products with an
 * online softmax. Otherwise, at AVX2 and above, per (row, head) with the score dot products and the
 * weighted V sums of gemm_attn_avx2.c (F16 rows converted by F16C on the fly).
 *
 * Scratch (quantized activations, attention scores) belongs to the backend context and only grows;
 * after the first forward of the largest batch, ops allocate nothing.
 */
#include "core/kernels/cpu/cpu_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/common/fp16.h"
#include "core/common/status.h"
#include "core/kernels/cpu/quants_impl.h"
#include "core/kernels/cpu/threadpool.h"

#define CPU_MATMUL_TILE 16 /* output rows per tile */
#define CPU_DEQ_MIN_ROWS 4 /* types without a gemm: from this many rows on, dequantize tiles */

typedef struct cpu_pack {
  const void *src; /* w->data the copy was made from */
  mlxr_dtype type;
  int64_t n_in, n_out;
  void *copy;      /* R16 layout */
} cpu_pack;

typedef struct cpu_context {
  mlxr_simd_level level;
  const char *isa;           /* mlxr_cpu_backend_isa */
  mlxr_r16_gemm_fn r16_gemm; /* NULL: no repacking (no VNNI, or disabled) */
  bool p32;                  /* F16 matrices are repacked into P32 panels (AVX-512F) */
  cpu_pack *packs;
  size_t n_packs, packs_cap;
  float *deq;           /* [n_threads][CPU_MATMUL_TILE * n_in] dequantized weight tiles */
  size_t deq_cap;       /* bytes */
  float *xf;            /* activations rounded to the vec_dot_type, as float32 */
  size_t xf_cap;
  void *aux;            /* R16 activation helpers: float yd[rows][nb] then int32 ycorr[rows][nb] */
  size_t aux_cap;
  const mlxr_type_traits *traits[MLXR_DTYPE_COUNT]; /* of `level`, looked up once (CPUID inside) */
  mlxr_threadpool *pool;
  void *xq;             /* activations converted to a vec_dot_type */
  size_t xq_cap;
  float *scores;        /* [n_threads][scores_cap] attention scratch */
  size_t scores_cap;    /* floats per thread */
  int64_t *attn_runs;   /* tiled attention: [n][2] row ranges of one sequence */
  size_t attn_runs_cap; /* bytes */
} cpu_context;

static cpu_context *cpu_ctx(mlxr_backend *be) { return be->context; }

static const mlxr_type_traits *cpu_traits(const cpu_context *c, mlxr_dtype t) {
  return (unsigned)t < MLXR_DTYPE_COUNT ? c->traits[t] : NULL;
}

static bool grow_buffer(void **buf, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t n = need + need / 4;
  void *p = realloc(*buf, n);
  if (!p) return false;
  *buf = p;
  *cap = n;
  return true;
}

/* ---- buffers ---- */

static void *cpu_alloc(mlxr_backend *be, size_t nbytes) {
  (void)be;
  void *p = NULL;
  size_t n = (nbytes + 63) & ~(size_t)63;
  if (n == 0) n = 64;
  if (posix_memalign(&p, 64, n) != 0) return NULL;
  memset(p, 0, n);
  return p;
}

static void cpu_buf_free(mlxr_backend *be, void *buf) {
  (void)be;
  free(buf);
}

/* Backend memory is host memory: the transfer ops are plain copies, and nothing is queued. */
static int cpu_transfer(mlxr_backend *be, void *dst, const void *src, size_t nbytes) {
  (void)be;
  memcpy(dst, src, nbytes);
  return MLXR_OK;
}

static int cpu_synchronize(mlxr_backend *be) {
  (void)be;
  return MLXR_OK;
}

/* The host's available memory (MemAvailable) and total, from sysconf when /proc is unreadable. */
static int cpu_memory_info(mlxr_backend *be, size_t *free_bytes, size_t *total_bytes) {
  (void)be;
  const long page = sysconf(_SC_PAGESIZE), pages = sysconf(_SC_PHYS_PAGES);
  const long avail = sysconf(_SC_AVPHYS_PAGES);
  *total_bytes = page > 0 && pages > 0 ? (size_t)page * (size_t)pages : 0;
  *free_bytes = page > 0 && avail > 0 ? (size_t)page * (size_t)avail : 0;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[256];
    unsigned long long kb;
    while (fgets(line, sizeof line, f)) {
      if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        *free_bytes = (size_t)kb * 1024;
        break;
      }
    }
    fclose(f);
  }
  return MLXR_OK;
}

static bool cpu_supports_weight(mlxr_backend *be, mlxr_dtype type) {
  const mlxr_type_traits *tt = cpu_traits(cpu_ctx(be), type);
  return tt && tt->vec_dot && tt->to_float;
}

static bool cpu_supports_op(mlxr_backend *be, mlxr_op op, mlxr_dtype type) {
  switch (op) {
  case MLXR_OP_MATMUL: return cpu_supports_weight(be, type);
  case MLXR_OP_GET_ROWS: {
    const mlxr_type_traits *tt = cpu_traits(cpu_ctx(be), type);
    return tt && tt->to_float;
  }
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

#if MLXR_QUANTS_X86
/* true for F16 matrices that go into P32 panels (gemm_p32_avx512.c) */
static bool cpu_is_p32(const cpu_context *c, const mlxr_weight *w) {
  return c->p32 && w->type == MLXR_DTYPE_F16 && w->n_out % 32 == 0 && w->n_in > 0;
}
#endif

static bool cpu_can_repack(const cpu_context *c, const mlxr_weight *w) {
#if MLXR_QUANTS_X86
  if (cpu_is_p32(c, w)) return true;
  return c->r16_gemm && mlxr_quant_r16_supported(w->type) && w->n_out % 16 == 0 &&
         w->n_in % mlxr_dtype_block_size(w->type) == 0 && w->n_in > 0;
#else
  (void)c;
  (void)w;
  return false;
#endif
}

#if MLXR_QUANTS_X86
typedef struct repack_job {
  const mlxr_weight *w;
  void *copy;
  bool p32; /* P32 panels of 32 rows, else R16 groups of 16 */
} repack_job;

static void repack_worker(void *arg, int ith, int nth) {
  const repack_job *j = arg;
  const int64_t gr = j->p32 ? 32 : 16;
  const int64_t ng = j->w->n_out / gr, g0 = ng * ith / nth, g1 = ng * (ith + 1) / nth;
  const size_t off = (size_t)(g0 * gr) * j->w->row_bytes;
  if (g1 <= g0) return;
  const uint8_t *src = (const uint8_t *)j->w->data + off;
  if (j->p32) {
    mlxr_quant_p32_repack_f16(src, j->w->row_bytes, j->w->n_in, (g1 - g0) * gr, (uint8_t *)j->copy + off);
  } else {
    mlxr_quant_r16_repack(j->w->type, src, j->w->row_bytes, j->w->n_in, (g1 - g0) * gr,
                          (uint8_t *)j->copy + off);
  }
}
#endif

static int cpu_weight_prepare(mlxr_backend *be, mlxr_weight *w) {
  if (!w->data) return MLXR_OK;
  if (w->n_out == 1 && w->type == MLXR_DTYPE_F32) return MLXR_OK; /* a vector, read in place */
  if (!cpu_supports_weight(be, w->type)) return MLXR_ERR_UNSUPPORTED;
  cpu_context *c = cpu_ctx(be);
  if (w->device || !cpu_can_repack(c, w)) return MLXR_OK;
#if MLXR_QUANTS_X86
  /* the same matrix prepared again (tied embeddings: token_embd and output share the data)
   * shares the copy; the bytes are compared, so a freed and reused address cannot alias */
  for (size_t i = 0; i < c->n_packs; i++) {
    const cpu_pack *pk = &c->packs[i];
    if (pk->src == w->data && pk->type == w->type && pk->n_in == w->n_in && pk->n_out == w->n_out &&
        (w->type == MLXR_DTYPE_F16
             ? mlxr_quant_p32_matches_f16(w->data, w->row_bytes, w->n_in, w->n_out, pk->copy)
             : mlxr_quant_r16_matches(w->type, w->data, w->row_bytes, w->n_in, w->n_out, pk->copy))) {
      w->device = pk->copy;
      return MLXR_OK;
    }
  }
  if (c->n_packs == c->packs_cap) {
    size_t cap = c->packs_cap ? 2 * c->packs_cap : 64;
    cpu_pack *p = realloc(c->packs, cap * sizeof(*p));
    if (!p) return MLXR_ERR_NOMEM;
    c->packs = p;
    c->packs_cap = cap;
  }
  void *copy = NULL;
  const size_t bytes = w->row_bytes * (size_t)w->n_out;
  /* 2 MiB aligned and marked for transparent huge pages: decode streams through every weight
   * once per token, and with 4 KiB pages the TLB misses stall the kernel's prefetches */
  const size_t huge = (size_t)2 << 20, alloc = (bytes + huge - 1) & ~(huge - 1);
  if (posix_memalign(&copy, huge, alloc) != 0) return MLXR_ERR_NOMEM;
#ifdef MADV_HUGEPAGE
  (void)madvise(copy, alloc, MADV_HUGEPAGE); /* advice only: without THP this is a no-op */
#endif
  repack_job rj = {w, copy, w->type == MLXR_DTYPE_F16};
  mlxr_threadpool_run(c->pool, repack_worker, &rj);
#ifdef MADV_COLD
  /* the file's bytes of this matrix are not read again: let the kernel reclaim them first
   * (advice only, the contents stay valid; page-aligned interior of the range) */
  const uintptr_t lo = ((uintptr_t)w->data + 4095) & ~(uintptr_t)4095;
  const uintptr_t hi = ((uintptr_t)w->data + bytes) & ~(uintptr_t)4095;
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_COLD);
#endif
  c->packs[c->n_packs++] = (cpu_pack){w->data, w->type, w->n_in, w->n_out, copy};
  w->device = copy;
#endif
  return MLXR_OK;
}

/* ---- get_rows ---- */

typedef struct get_rows_job {
  const mlxr_type_traits *tt;
  const mlxr_weight *table;
  const int32_t *ids;
  int64_t n;
  float *out;
} get_rows_job;

static void get_rows_worker(void *arg, int ith, int nth) {
  get_rows_job *j = arg;
#if MLXR_QUANTS_X86
  if (j->table->device && j->table->type == MLXR_DTYPE_F16) {
    for (int64_t r = ith; r < j->n; r += nth) {
      mlxr_quant_p32_row_to_float(j->table->device, j->table->n_in, j->ids[r], j->out + r * j->table->n_in);
    }
    return;
  }
  if (j->table->device) {
    for (int64_t r = ith; r < j->n; r += nth) {
      mlxr_quant_r16_row_to_float(j->table->type, j->table->device, j->table->row_bytes,
                                  j->table->n_in, j->ids[r], j->out + r * j->table->n_in);
    }
    return;
  }
#endif
  for (int64_t r = ith; r < j->n; r += nth) {
    const uint8_t *row = (const uint8_t *)j->table->data + (size_t)j->ids[r] * j->table->row_bytes;
    j->tt->to_float(row, j->out + r * j->table->n_in, j->table->n_in);
  }
}

static int cpu_get_rows(mlxr_backend *be, const mlxr_weight *table, const int32_t *ids, int64_t n,
                        float *out) {
  const mlxr_type_traits *tt = cpu_traits(cpu_ctx(be), table->type);
  if (!tt || !tt->to_float) return MLXR_ERR_UNSUPPORTED;
  for (int64_t r = 0; r < n; r++) {
    if (ids[r] < 0 || ids[r] >= table->n_out) return MLXR_ERR_RANGE;
  }
  get_rows_job job = {tt, table, ids, n, out};
  if (n == 1) get_rows_worker(&job, 0, 1);
  else mlxr_threadpool_run(cpu_ctx(be)->pool, get_rows_worker, &job);
  return MLXR_OK;
}

/* ---- matmul ---- */

typedef struct matmul_job {
  const mlxr_type_traits *tt;     /* weight type */
  const mlxr_type_traits *act_tt; /* vec_dot_type */
  const mlxr_weight *w;
  const float *bias;              /* [n_out] or NULL */
  const float *x;                 /* [n_rows][n_in] */
  void *xq;                       /* converted activations, or NULL when act is F32 */
  size_t xq_row_bytes;
  int64_t n_rows;
  float *y;                       /* [n_rows][n_out] */
  mlxr_r16_gemm_fn r16;           /* set when w->device holds the R16 copy */
  mlxr_gemm_fn f32_gemm;          /* set: dequantize tiles to float and use this */
  float *deq;                     /* per-thread tile scratch for f32_gemm */
  float *xf;                      /* f32_gemm: the quantized activations as float, or NULL */
  float *yd;                      /* R16: [n_rows][nb] activation block scales */
  int32_t *ycorr;                 /* R16: [n_rows][nb] offset corrections */
} matmul_job;

static void matmul_quantize_worker(void *arg, int ith, int nth) {
  matmul_job *j = arg;
  for (int64_t r = ith; r < j->n_rows; r += nth) {
    j->act_tt->from_float(j->x + r * j->w->n_in, (uint8_t *)j->xq + r * j->xq_row_bytes, j->w->n_in);
    if (j->xf) j->act_tt->to_float((uint8_t *)j->xq + r * j->xq_row_bytes, j->xf + r * j->w->n_in, j->w->n_in);
#if MLXR_QUANTS_X86
    if (j->r16) {
      const int64_t nb = j->w->n_in / j->tt->block_size;
      mlxr_quant_r16_act_aux(j->w->type, (uint8_t *)j->xq + r * j->xq_row_bytes, j->w->n_in,
                             j->yd + r * nb, j->ycorr + r * nb * mlxr_quant_r16_aux_ints(j->w->type));
    }
#endif
  }
}

static void matmul_r16_worker(void *arg, int ith, int nth) {
  matmul_job *j = arg;
  const int64_t n_out = j->w->n_out, ng = n_out / 16;
  const int64_t g0 = ng * ith / nth, g1 = ng * (ith + 1) / nth;
  if (g1 <= g0) return;
  j->r16(j->w->type, j->w->n_in, j->n_rows, g1 - g0,
         (const uint8_t *)j->w->device + (size_t)g0 * 16 * j->w->row_bytes, j->w->row_bytes, j->xq,
         j->xq_row_bytes, j->yd, j->ycorr, j->w->n_in / j->tt->block_size, j->y + g0 * 16, n_out);
  if (j->bias) {
    for (int64_t r = 0; r < j->n_rows; r++) {
      for (int64_t o = g0 * 16; o < g1 * 16; o++) j->y[r * n_out + o] += j->bias[o];
    }
  }
}

#if MLXR_QUANTS_X86
/* F16 weights in P32 panels: each thread takes a contiguous range of 32-row groups. */
static void matmul_p32_worker(void *arg, int ith, int nth) {
  matmul_job *j = arg;
  const int64_t n_out = j->w->n_out, ng = n_out / 32;
  const int64_t g0 = ng * ith / nth, g1 = ng * (ith + 1) / nth;
  if (g1 <= g0) return;
  mlxr_quant_p32_gemm_f16_avx512(j->w->n_in, j->n_rows, g1 - g0,
                                 (const uint8_t *)j->w->device + (size_t)(g0 * 32) * j->w->row_bytes,
                                 j->x, (size_t)j->w->n_in, j->y + g0 * 32, n_out);
  if (j->bias) {
    for (int64_t r = 0; r < j->n_rows; r++) {
      for (int64_t o = g0 * 32; o < g1 * 32; o++) j->y[r * n_out + o] += j->bias[o];
    }
  }
}
#endif

static void matmul_dot_worker(void *arg, int ith, int nth) {
  matmul_job *j = arg;
  const int64_t n_out = j->w->n_out;
  const int64_t n_tiles = (n_out + CPU_MATMUL_TILE - 1) / CPU_MATMUL_TILE;
  const int64_t t0 = n_tiles * ith / nth, t1 = n_tiles * (ith + 1) / nth;
  const uint8_t *act = j->xq ? j->xq : (const void *)j->x;
  const size_t act_row = j->xq ? j->xq_row_bytes : (size_t)j->w->n_in * sizeof(float);
  const uint8_t *wdata = j->w->data;
  for (int64_t t = t0; t < t1; t++) {
    const int64_t o0 = t * CPU_MATMUL_TILE;
    const int64_t o1 = o0 + CPU_MATMUL_TILE < n_out ? o0 + CPU_MATMUL_TILE : n_out;
    if (j->tt->gemm) {
      j->tt->gemm(j->w->n_in, j->n_rows, o1 - o0, wdata + (size_t)o0 * j->w->row_bytes,
                  j->w->row_bytes, act, act_row, j->y + o0, n_out);
      if (j->bias) {
        for (int64_t r = 0; r < j->n_rows; r++) {
          for (int64_t o = o0; o < o1; o++) j->y[r * n_out + o] += j->bias[o];
        }
      }
      continue;
    }
    for (int64_t r = 0; r < j->n_rows; r++) {
      const void *xr = act + r * act_row;
      float *yr = j->y + r * n_out;
      for (int64_t o = o0; o < o1; o++) {
        float s;
        j->tt->vec_dot(j->w->n_in, &s, wdata + (size_t)o * j->w->row_bytes, xr);
        yr[o] = j->bias ? s + j->bias[o] : s;
      }
    }
  }
}

/* Prompt products for types without a gemm kernel (the K-quants, Q4_1, Q5_x, BF16): each tile
 * of 16 weight rows is dequantized once to float32 (exact) into this thread's scratch and
 * multiplied with the F32 gemm by the activations rounded to the type's vec_dot_type (as
 * vec_dot sees them) and converted back to float: one decode per weight block per call instead
 * of one per activation row. */
static void matmul_deq_worker(void *arg, int ith, int nth) {
  matmul_job *j = arg;
  const int64_t n_out = j->w->n_out, n_in = j->w->n_in;
  const int64_t n_tiles = (n_out + CPU_MATMUL_TILE - 1) / CPU_MATMUL_TILE;
  const int64_t t0 = n_tiles * ith / nth, t1 = n_tiles * (ith + 1) / nth;
  float *tile = j->deq + (size_t)ith * CPU_MATMUL_TILE * (size_t)n_in;
  const uint8_t *wdata = j->w->data;
  for (int64_t t = t0; t < t1; t++) {
    const int64_t o0 = t * CPU_MATMUL_TILE;
    const int64_t o1 = o0 + CPU_MATMUL_TILE < n_out ? o0 + CPU_MATMUL_TILE : n_out;
    for (int64_t o = o0; o < o1; o++) {
      j->tt->to_float(wdata + (size_t)o * j->w->row_bytes, tile + (o - o0) * n_in, n_in);
    }
    j->f32_gemm(n_in, j->n_rows, o1 - o0, tile, (size_t)n_in * sizeof(float), j->xf ? j->xf : j->x,
                (size_t)n_in * sizeof(float), j->y + o0, n_out);
    if (j->bias) {
      for (int64_t r = 0; r < j->n_rows; r++) {
        for (int64_t o = o0; o < o1; o++) j->y[r * n_out + o] += j->bias[o];
      }
    }
  }
}

/* What the activations of a product are converted into before it runs: products of the same x
 * with equal signatures can share one conversion (matmul_multi). */
typedef struct act_signature {
  mlxr_dtype type;
  int64_t n_in;
  bool r16, f32_gemm;
} act_signature;

static act_signature matmul_signature(const cpu_context *c, const mlxr_weight *w, int64_t n_rows) {
  const mlxr_type_traits *tt = cpu_traits(c, w->type), *f32 = cpu_traits(c, MLXR_DTYPE_F32);
  act_signature s = {.type = w->type, .n_in = w->n_in};
  if (!tt) return s;
  s.f32_gemm = !tt->gemm && !w->device && n_rows >= CPU_DEQ_MIN_ROWS && f32 && f32->gemm && tt->to_float &&
               w->type != MLXR_DTYPE_F32;
  s.r16 = w->device && c->r16_gemm && tt->vec_dot_type != MLXR_DTYPE_F32;
  return s;
}

/* One product; with reuse_act the activations converted by the previous product (same x, equal
 * signature) are used as they are. */
static int cpu_matmul_impl(cpu_context *c, const mlxr_weight *w, const mlxr_weight *bias, const float *x,
                           int64_t n_rows, float *y, bool reuse_act) {
  const mlxr_type_traits *tt = cpu_traits(c, w->type);
  if (!tt || !tt->vec_dot) return MLXR_ERR_UNSUPPORTED;
  matmul_job job = {.tt = tt, .w = w, .x = x, .n_rows = n_rows, .y = y};
  if (bias && bias->data) {
    if (bias->type != MLXR_DTYPE_F32 || bias->n_in != w->n_out) return MLXR_ERR_INVALID;
    job.bias = bias->data;
  }
#if MLXR_QUANTS_X86
  if (w->device && w->type == MLXR_DTYPE_F16) {
    mlxr_threadpool_run(c->pool, matmul_p32_worker, &job);
    return MLXR_OK;
  }
#endif
  const mlxr_type_traits *f32 = cpu_traits(c, MLXR_DTYPE_F32);
  if (!tt->gemm && !w->device && n_rows >= CPU_DEQ_MIN_ROWS && f32 && f32->gemm && tt->to_float &&
      w->type != MLXR_DTYPE_F32) {
    const size_t per = (size_t)CPU_MATMUL_TILE * (size_t)w->n_in * sizeof(float);
    const int nth = mlxr_threadpool_n_threads(c->pool);
    if (!grow_buffer((void **)&c->deq, &c->deq_cap, per * (size_t)nth)) return MLXR_ERR_NOMEM;
    job.f32_gemm = f32->gemm;
    job.deq = c->deq;
  }
  if (tt->vec_dot_type != MLXR_DTYPE_F32) {
    job.act_tt = cpu_traits(c, tt->vec_dot_type);
    if (!job.act_tt || !job.act_tt->from_float) return MLXR_ERR_UNSUPPORTED;
    if (!mlxr_dtype_row_size(tt->vec_dot_type, w->n_in, &job.xq_row_bytes)) return MLXR_ERR_INVALID;
    if (!grow_buffer(&c->xq, &c->xq_cap, job.xq_row_bytes * (size_t)n_rows)) return MLXR_ERR_NOMEM;
    job.xq = c->xq;
#if MLXR_QUANTS_X86
    if (w->device && c->r16_gemm) {
      const size_t nb = (size_t)(w->n_in / tt->block_size), half = nb * (size_t)n_rows * 4;
      if (!grow_buffer(&c->aux, &c->aux_cap, half * (1 + (size_t)mlxr_quant_r16_aux_ints(w->type)))) {
        return MLXR_ERR_NOMEM;
      }
      job.r16 = c->r16_gemm;
      job.yd = c->aux;
      job.ycorr = (int32_t *)((uint8_t *)c->aux + half);
    }
#endif
    if (job.f32_gemm) {
      /* the F32 gemm multiplies the activations as quantized and dequantized again, so a row
       * gets the same products (up to float summation order) in a prompt as in decode, and as
       * llama.cpp, which also rounds activations to the vec_dot_type */
      const size_t xf_bytes = (size_t)w->n_in * (size_t)n_rows * sizeof(float);
      if (!job.act_tt->to_float || !grow_buffer((void **)&c->xf, &c->xf_cap, xf_bytes)) {
        return MLXR_ERR_NOMEM;
      }
      job.xf = c->xf;
    }
    if (reuse_act) {
      /* converted by the previous product of the same x */
    } else if (n_rows == 1) {
      matmul_quantize_worker(&job, 0, 1);
    } else {
      mlxr_threadpool_run(c->pool, matmul_quantize_worker, &job);
    }
  }
  mlxr_threadpool_run(c->pool, job.f32_gemm ? matmul_deq_worker : job.r16 ? matmul_r16_worker : matmul_dot_worker, &job);
  return MLXR_OK;
}

static int cpu_matmul(mlxr_backend *be, const mlxr_weight *w, const mlxr_weight *bias,
                      const float *x, int64_t n_rows, float *y) {
  return cpu_matmul_impl(cpu_ctx(be), w, bias, x, n_rows, y, false);
}

/* q/k/v and gate/up: the activations are converted once when the weights share a signature. */
static int cpu_matmul_multi(mlxr_backend *be, int n, const mlxr_weight *const *ws,
                            const mlxr_weight *const *biases, const float *x, int64_t n_rows,
                            float *const *ys) {
  cpu_context *c = cpu_ctx(be);
  act_signature prev = {0};
  for (int i = 0; i < n; i++) {
    const act_signature sig = matmul_signature(c, ws[i], n_rows);
    const bool reuse = i > 0 && sig.type == prev.type && sig.n_in == prev.n_in && sig.r16 == prev.r16 &&
                       sig.f32_gemm == prev.f32_gemm;
    const int rc = cpu_matmul_impl(c, ws[i], biases ? biases[i] : NULL, x, n_rows, ys[i], reuse);
    if (rc != MLXR_OK) return rc;
    prev = sig;
  }
  return MLXR_OK;
}

/* ---- elementwise ---- */

#if MLXR_QUANTS_X86
/* At AVX-512 the elementwise ops run elementwise_avx512.c's kernels, on the pool's threads from
 * CPU_EW_POOL elements on (a prompt's activations), on the caller below that (decode). */
#define CPU_EW_POOL 32768

typedef enum ew_op { EW_RMS_NORM, EW_SWIGLU, EW_ADD } ew_op;

typedef struct ew_job {
  ew_op op;
  const float *a, *b; /* rms_norm: x, w; swiglu: gate, up; add: x */
  float *out;         /* rms_norm: y; swiglu: out; add: y (accumulated into) */
  int64_t n;          /* elements (rms_norm: rows) */
  int64_t dim;        /* rms_norm only */
  float eps;
} ew_job;

static void ew_worker(void *arg, int ith, int nth) {
  const ew_job *j = arg;
  if (j->op == EW_RMS_NORM) {
    const int64_t r0 = j->n * ith / nth, r1 = j->n * (ith + 1) / nth;
    if (r1 > r0) mlxr_rms_norm_avx512(j->a + r0 * j->dim, j->b, r1 - r0, j->dim, j->eps, j->out + r0 * j->dim);
    return;
  }
  const int64_t chunks = (j->n + 15) / 16;
  const int64_t i0 = chunks * ith / nth * 16, e1 = chunks * (ith + 1) / nth * 16;
  const int64_t i1 = e1 < j->n ? e1 : j->n;
  if (i1 <= i0) return;
  if (j->op == EW_SWIGLU) mlxr_swiglu_avx512(j->a + i0, j->b + i0, j->out + i0, i1 - i0);
  else mlxr_add_avx512(j->out + i0, j->a + i0, i1 - i0);
}

/* true if it ran the op (AVX-512 level) */
static bool ew_run(cpu_context *c, const ew_job *job, int64_t elements) {
  if (c->level != MLXR_SIMD_AVX512) return false;
  if (elements >= CPU_EW_POOL) mlxr_threadpool_run(c->pool, ew_worker, (void *)job);
  else ew_worker((void *)job, 0, 1);
  return true;
}
#endif

static void cpu_rms_norm(mlxr_backend *be, const float *x, const mlxr_weight *weight, int64_t n_rows,
                         int64_t dim, float eps, float *y) {
  const float *w = weight->data;
#if MLXR_QUANTS_X86
  const ew_job job = {EW_RMS_NORM, x, w, y, n_rows, dim, eps};
  if (ew_run(cpu_ctx(be), &job, n_rows * dim)) return;
#else
  (void)be;
#endif
  for (int64_t r = 0; r < n_rows; r++) {
    const float *xr = x + r * dim;
    float *yr = y + r * dim;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
    const float scale = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
    for (int64_t i = 0; i < dim; i++) yr[i] = xr[i] * scale * w[i];
  }
}

static void cpu_rope_cache(mlxr_backend *be, const int32_t *pos, int64_t n_rows, const double *inv_freq,
                           int half, float linear_scale, float *cos_tab, float *sin_tab) {
  (void)be;
  for (int64_t r = 0; r < n_rows; r++) {
    const double p = (double)pos[r] / (double)linear_scale;
    for (int i = 0; i < half; i++) {
      const double angle = p * inv_freq[i];
      cos_tab[r * half + i] = (float)cos(angle);
      sin_tab[r * half + i] = (float)sin(angle);
    }
  }
}

static void cpu_rope(mlxr_backend *be, float *x, int64_t n_rows, int n_heads, int head_dim,
                     int rot_dim, mlxr_rope_mode mode, const float *cos_tab, const float *sin_tab) {
  (void)be;
  const int half = rot_dim / 2;
  for (int64_t r = 0; r < n_rows; r++) {
    const float *cr = cos_tab + r * half, *sr = sin_tab + r * half;
    for (int h = 0; h < n_heads; h++) {
      float *v = x + (r * n_heads + h) * head_dim;
      for (int i = 0; i < half; i++) {
        const int i0 = mode == MLXR_ROPE_NEOX ? i : 2 * i;
        const int i1 = mode == MLXR_ROPE_NEOX ? i + half : 2 * i + 1;
        const float a = v[i0], b = v[i1];
        v[i0] = a * cr[i] - b * sr[i];
        v[i1] = a * sr[i] + b * cr[i];
      }
    }
  }
}

static void cpu_swiglu(mlxr_backend *be, const float *gate, const float *up, float *out, int64_t n) {
#if MLXR_QUANTS_X86
  const ew_job job = {EW_SWIGLU, gate, up, out, n, 0, 0.0f};
  if (ew_run(cpu_ctx(be), &job, n)) return;
#else
  (void)be;
#endif
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

static void cpu_add(mlxr_backend *be, float *y, const float *x, int64_t n) {
#if MLXR_QUANTS_X86
  const ew_job job = {EW_ADD, x, NULL, y, n, 0, 0.0f};
  if (ew_run(cpu_ctx(be), &job, n)) return;
#else
  (void)be;
#endif
  for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* ---- KV cache and attention ---- */

static void store_row(const float *src, int64_t n, void *pool, int64_t slot, mlxr_dtype type) {
  if (type == MLXR_DTYPE_F32) {
    memcpy((float *)pool + slot * n, src, (size_t)n * sizeof(float));
  } else {
    mlxr_f16 *dst = (mlxr_f16 *)pool + slot * n;
    for (int64_t i = 0; i < n; i++) dst[i] = mlxr_f32_to_f16(src[i]);
  }
}

static void cpu_kv_store(mlxr_backend *be, const float *k, const float *v, int64_t n_rows,
                         int64_t dim_k, int64_t dim_v, const int64_t *slots, void *k_pool,
                         void *v_pool, mlxr_dtype kv_type) {
  (void)be;
  for (int64_t r = 0; r < n_rows; r++) {
    store_row(k + r * dim_k, dim_k, k_pool, slots[r], kv_type);
    store_row(v + r * dim_v, dim_v, v_pool, slots[r], kv_type);
  }
}

typedef struct attn_job {
  const mlxr_attn_args *a;
  const mlxr_type_traits *kv_tt; /* to_float of the KV type */
  float *scores;                 /* [nth][scores_cap] */
  size_t scores_cap;
  bool simd;                     /* AVX2 inner products (gemm_attn_avx2.c) */
} attn_job;

static void attn_worker(void *arg, int ith, int nth) {
  const attn_job *j = arg;
  const mlxr_attn_args *a = j->a;
  const int group = a->n_head / a->n_head_kv;
  const int64_t kv_dim_k = (int64_t)a->n_head_kv * a->head_dim_k;
  const int64_t kv_dim_v = (int64_t)a->n_head_kv * a->head_dim_v;
  const size_t esz = a->kv_type == MLXR_DTYPE_F32 ? 4 : 2;
  float *scores = j->scores + (size_t)ith * j->scores_cap;
  float *kbuf = scores + (j->scores_cap - (size_t)a->head_dim_k - (size_t)a->head_dim_v);
  float *vbuf = kbuf + a->head_dim_k;
  const int64_t n_items = a->n_rows * a->n_head;
  for (int64_t item = ith; item < n_items; item += nth) {
    const int64_t r = item / a->n_head;
    const int h = (int)(item % a->n_head), kvh = h / group;
    const float *q = a->q + (r * a->n_head + h) * a->head_dim_k;
    float *out = a->out + (r * a->n_head + h) * a->head_dim_v;
    const int32_t *table = a->block_tables + (int64_t)a->row_table[r] * a->table_stride;
    const int32_t n_ctx = a->n_ctx[r];
    float maxs = -INFINITY;
    for (int32_t t = 0; t < n_ctx; t++) {
      const int64_t slot = (int64_t)table[t / a->block_size] * a->block_size + t % a->block_size;
      const uint8_t *krow = (const uint8_t *)a->k_pool + ((size_t)slot * kv_dim_k + (size_t)kvh * a->head_dim_k) * esz;
      float s;
#if MLXR_QUANTS_X86
      if (j->simd) {
        s = mlxr_attn_dot_avx2(q, krow, a->kv_type != MLXR_DTYPE_F32, a->head_dim_k);
      } else
#endif
      {
        const float *kf = (const float *)krow;
        if (a->kv_type != MLXR_DTYPE_F32) {
          j->kv_tt->to_float(krow, kbuf, a->head_dim_k);
          kf = kbuf;
        }
        s = 0.0f;
        for (int i = 0; i < a->head_dim_k; i++) s += q[i] * kf[i];
      }
      s *= a->scale;
      scores[t] = s;
      if (s > maxs) maxs = s;
    }
    double sum = 0.0;
    for (int32_t t = 0; t < n_ctx; t++) {
      scores[t] = expf(scores[t] - maxs);
      sum += scores[t];
    }
    const float inv = (float)(1.0 / sum);
    memset(out, 0, (size_t)a->head_dim_v * sizeof(float));
    for (int32_t t = 0; t < n_ctx; t++) {
      const int64_t slot = (int64_t)table[t / a->block_size] * a->block_size + t % a->block_size;
      const uint8_t *vrow = (const uint8_t *)a->v_pool + ((size_t)slot * kv_dim_v + (size_t)kvh * a->head_dim_v) * esz;
      const float p = scores[t] * inv;
#if MLXR_QUANTS_X86
      if (j->simd) {
        mlxr_attn_axpy_avx2(out, p, vrow, a->kv_type != MLXR_DTYPE_F32, a->head_dim_v);
        continue;
      }
#endif
      const float *vf = (const float *)vrow;
      if (a->kv_type != MLXR_DTYPE_F32) {
        j->kv_tt->to_float(vrow, vbuf, a->head_dim_v);
        vf = vbuf;
      }
      for (int i = 0; i < a->head_dim_v; i++) out[i] += p * vf[i];
    }
  }
}

#if MLXR_QUANTS_X86
/* Prompts at AVX-512: units of (run of rows of one sequence, KV head) in attn_tiled_avx512.c,
 * dealt round-robin so the later (longer-context) runs are shared between threads. */
typedef struct attn_tiled_job {
  const mlxr_attn_args *a;
  const int64_t *runs; /* [n_runs][2] */
  int64_t n_runs;
  float *scratch;      /* [nth][per] */
  size_t per;
} attn_tiled_job;

static void attn_tiled_worker(void *arg, int ith, int nth) {
  const attn_tiled_job *j = arg;
  const int64_t n_units = j->n_runs * j->a->n_head_kv;
  for (int64_t u = ith; u < n_units; u += nth) {
    const int64_t run = u / j->a->n_head_kv;
    mlxr_attn_tiled_avx512(j->a, j->runs[2 * run], j->runs[2 * run + 1], (int)(u % j->a->n_head_kv),
                           j->scratch + (size_t)ith * j->per);
  }
}

static int cpu_attention_tiled(cpu_context *c, const mlxr_attn_args *a) {
  const int64_t rt = mlxr_attn_tiled_rows_per_unit(a);
  int64_t n_runs = 0;
  for (int64_t r = 0; r < a->n_rows;) {
    int64_t e = r + 1;
    while (e < a->n_rows && e - r < rt && a->row_table[e] == a->row_table[r]) e++;
    n_runs++;
    r = e;
  }
  if (!grow_buffer((void **)&c->attn_runs, &c->attn_runs_cap, (size_t)n_runs * 2 * sizeof(int64_t))) {
    return MLXR_ERR_NOMEM;
  }
  n_runs = 0;
  for (int64_t r = 0; r < a->n_rows;) {
    int64_t e = r + 1;
    while (e < a->n_rows && e - r < rt && a->row_table[e] == a->row_table[r]) e++;
    c->attn_runs[2 * n_runs] = r;
    c->attn_runs[2 * n_runs + 1] = e;
    n_runs++;
    r = e;
  }
  const int nth = mlxr_threadpool_n_threads(c->pool);
  const size_t per = mlxr_attn_tiled_scratch_floats(a->head_dim_k, a->head_dim_v);
  if (per > c->scores_cap) {
    float *p = realloc(c->scores, per * (size_t)nth * sizeof(float));
    if (!p) return MLXR_ERR_NOMEM;
    c->scores = p;
    c->scores_cap = per;
  }
  attn_tiled_job job = {a, c->attn_runs, n_runs, c->scores, c->scores_cap};
  mlxr_threadpool_run(c->pool, attn_tiled_worker, &job);
  return MLXR_OK;
}
#endif

static int cpu_attention(mlxr_backend *be, const mlxr_attn_args *a) {
  cpu_context *c = cpu_ctx(be);
  if (a->kv_type != MLXR_DTYPE_F32 && a->kv_type != MLXR_DTYPE_F16) return MLXR_ERR_UNSUPPORTED;
  if (a->n_head_kv <= 0 || a->n_head % a->n_head_kv != 0) return MLXR_ERR_INVALID;
#if MLXR_QUANTS_X86
  if (c->level == MLXR_SIMD_AVX512 && mlxr_attn_tiled_supported(a)) return cpu_attention_tiled(c, a);
#endif
  int32_t max_ctx = 0;
  for (int64_t r = 0; r < a->n_rows; r++) {
    if (a->n_ctx[r] > max_ctx) max_ctx = a->n_ctx[r];
  }
  const size_t need = (size_t)max_ctx + (size_t)a->head_dim_k + (size_t)a->head_dim_v;
  const int nth = mlxr_threadpool_n_threads(c->pool);
  if (need > c->scores_cap) {
    size_t cap = need + need / 4 + 64;
    float *p = realloc(c->scores, cap * (size_t)nth * sizeof(float));
    if (!p) return MLXR_ERR_NOMEM;
    c->scores = p;
    c->scores_cap = cap;
  }
  attn_job job = {a, cpu_traits(c, a->kv_type), c->scores, c->scores_cap,
                  MLXR_QUANTS_X86 && (c->level == MLXR_SIMD_AVX2 || c->level == MLXR_SIMD_AVX512)};
  if (!job.kv_tt) return MLXR_ERR_UNSUPPORTED;
  mlxr_threadpool_run(c->pool, attn_worker, &job);
  return MLXR_OK;
}

/* ---- lifecycle ---- */

static void cpu_free(mlxr_backend *be) {
  cpu_context *c = cpu_ctx(be);
  if (c) {
    mlxr_threadpool_free(c->pool);
    free(c->xq);
    free(c->scores);
    free(c->attn_runs);
    free(c->aux);
    free(c->deq);
    free(c->xf);
    for (size_t i = 0; i < c->n_packs; i++) free(c->packs[i].copy);
    free(c->packs);
    free(c);
  }
  free(be);
}

static const mlxr_backend_iface cpu_iface = {
    .name = "cpu",
    .host_memory = true,
    .free = cpu_free,
    .alloc = cpu_alloc,
    .buf_free = cpu_buf_free,
    .upload = cpu_transfer,
    .download = cpu_transfer,
    .copy = cpu_transfer,
    .synchronize = cpu_synchronize,
    .memory_info = cpu_memory_info,
    .supports_op = cpu_supports_op,
    .weight_prepare = cpu_weight_prepare,
    .get_rows = cpu_get_rows,
    .matmul = cpu_matmul,
    .rms_norm = cpu_rms_norm,
    .rope_cache = cpu_rope_cache,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .matmul_multi = cpu_matmul_multi,
};

mlxr_cpu_backend_params mlxr_cpu_backend_default_params(void) {
  mlxr_cpu_backend_params p = {.n_threads = 0, .simd_level = -1};
  return p;
}

const char *mlxr_cpu_backend_isa(const mlxr_backend *be) {
  const cpu_context *c = be->context;
  return c->isa;
}

int mlxr_cpu_backend_threads(const mlxr_backend *be) {
  const cpu_context *c = be->context;
  return mlxr_threadpool_n_threads(c->pool);
}

mlxr_backend *mlxr_cpu_backend_new(mlxr_cpu_backend_params params) {
  int n = params.n_threads;
  if (n <= 0) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    n = online > 0 ? (int)online : 1;
  }
  mlxr_backend *be = calloc(1, sizeof(*be));
  cpu_context *c = calloc(1, sizeof(*c));
  if (!be || !c) {
    free(be);
    free(c);
    return NULL;
  }
  be->iface = &cpu_iface;
  be->context = c;
  mlxr_simd_level best = mlxr_cpu_detect_simd();
  c->level = (params.simd_level < 0 || params.simd_level > (int)best) ? best
                                                                       : (mlxr_simd_level)params.simd_level;
  for (int t = 0; t < MLXR_DTYPE_COUNT; t++) c->traits[t] = mlxr_type_traits_get((mlxr_dtype)t, c->level);
  const bool repack = !params.no_repack;
  c->isa = mlxr_simd_level_name(c->level);
#if MLXR_QUANTS_X86
  if (c->level == MLXR_SIMD_AVX512) /* as mlxr_type_traits_get chooses */
    c->isa = mlxr_quant_cpu_amx_enable() ? "amx" : mlxr_quant_cpu_has_avx512_vnni() ? "avx512_vnni" : "avx512";
  if (repack && c->level == MLXR_SIMD_AVX512 && mlxr_quant_cpu_has_avx512_vnni()) {
    c->r16_gemm = mlxr_quant_cpu_amx_enable() ? mlxr_quant_r16_gemm_amx : mlxr_quant_r16_gemm_avx512vnni;
  }
  c->p32 = repack && c->level == MLXR_SIMD_AVX512;
#else
  (void)repack;
#endif
  c->pool = mlxr_threadpool_new(n);
  if (!c->pool) {
    cpu_free(be);
    return NULL;
  }
  return be;
}
