/*
 * attn_tiled_avx512.c: paged attention for many query rows at once (prompt processing), tiled so
 * that each key and value row is read and converted once per tile of queries instead of once per
 * (row, head), and the products run as small register-blocked matrix products (AVX-512F).
 *
 * A unit of work is one KV head and a run of up to ATTN_RT rows of the same sequence (rows whose
 * block table pointer is the same; each keeps its own causal length n_ctx[r]). Its query vectors
 * are the rows' heads that share that KV head (GQA group G): NQ = rows x G vectors, at most
 * ATTN_NQ. The keys of the sequence are walked in chunks of 16 positions (any block size: each
 * position's slot comes from the block table), and for each chunk:
 *   1. the 16 key rows are converted to float32 and stored transposed, Kt[d][j] (zero past the
 *      end), and the 16 value rows as Vc[j][d];
 *   2. S = Q . Kt: per 8 query vectors, 8 accumulators of 16 keys, each step one load of Kt[d]
 *      and 8 broadcasts of q[i][d] (queries pre-multiplied by the scale). With few query vectors
 *      (decode: one row, G vectors) the transposition would cost more than it saves, so each
 *      key row is converted into registers and dotted with each query vector directly;
 *   3. online softmax per query vector (the flash-attention recurrence): keys at or past the
 *      row's n_ctx are masked out; m_new = max(m, max S), p = exp(S - m_new), l = l * a + sum p
 *      with a = exp(m - m_new), O = O * a + p . Vc. A chunk entirely past a row's n_ctx leaves
 *      that row untouched.
 * At the end each output is O / l. exp is a degree-6 polynomial after range reduction (relative
 * error about 2e-7, far below the f16 KV rounding). The caller (cpu_backend.c) hands each thread
 * its units and a scratch of mlxr_attn_tiled_scratch_floats() floats. Pure functions otherwise.
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <immintrin.h>

#include "core/kernels/cpu/exp_avx512.h"
#include <math.h>

#include "core/kernels/backend.h"

#define ATTN_NQ 64   /* query vectors per unit */
#define ATTN_KC 16   /* keys per chunk (one zmm of scores) */
#define ATTN_DMAX 256
#define ATTN_DOT_MAX 8 /* up to this many query vectors, scores are direct dot products */

size_t mlxr_attn_tiled_scratch_floats(int head_dim_k, int head_dim_v) {
  /* Qs [NQ][dk], Kt [dk][KC], Vc [KC][dv], S [NQ][KC], O [NQ][dv], m [NQ], l [NQ], plus alignment */
  return (size_t)ATTN_NQ * (size_t)head_dim_k + (size_t)head_dim_k * ATTN_KC +
         (size_t)ATTN_KC * (size_t)head_dim_v + (size_t)ATTN_NQ * ATTN_KC +
         (size_t)ATTN_NQ * (size_t)head_dim_v + 2 * ATTN_NQ + 16;
}

bool mlxr_attn_tiled_supported(const mlxr_attn_args *a) {
  return a->head_dim_k % 16 == 0 && a->head_dim_v % 16 == 0 && a->head_dim_k <= ATTN_DMAX &&
         a->head_dim_v <= ATTN_DMAX && a->n_head_kv > 0 && a->n_head % a->n_head_kv == 0 &&
         a->n_head / a->n_head_kv <= ATTN_NQ &&
         (a->kv_type == MLXR_DTYPE_F16 || a->kv_type == MLXR_DTYPE_F32);
}

int mlxr_attn_tiled_rows_per_unit(const mlxr_attn_args *a) {
  return ATTN_NQ / (a->n_head / a->n_head_kv);
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")


static inline const uint8_t *kv_row(const mlxr_attn_args *a, const void *pool, const int32_t *table,
                                    int32_t t, int64_t kv_dim, int64_t off, size_t esz) {
  const int64_t slot = (int64_t)table[t / a->block_size] * a->block_size + t % a->block_size;
  return (const uint8_t *)pool + ((size_t)slot * (size_t)kv_dim + (size_t)off) * esz;
}

static inline __m512 load16(const uint8_t *row, bool f16, int d) {
  return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + (size_t)d * 2)))
             : _mm512_loadu_ps((const float *)row + d);
}

/* S[i][0..15] = Qs[i] . Kt[.][0..15] for i < nq, 8 query vectors per pass */
static void scores_chunk(int nq, int dk, const float *qs, const float *kt, float *s) {
  int i = 0;
  for (; i + 8 <= nq; i += 8) {
    __m512 acc[8];
    for (int ii = 0; ii < 8; ii++) acc[ii] = _mm512_setzero_ps();
    const float *q = qs + (size_t)i * dk;
    for (int d = 0; d < dk; d++) {
      const __m512 k = _mm512_load_ps(kt + (size_t)d * ATTN_KC);
      _Pragma("GCC unroll 8") for (int ii = 0; ii < 8; ii++) {
        acc[ii] = _mm512_fmadd_ps(_mm512_set1_ps(q[(size_t)ii * dk + d]), k, acc[ii]);
      }
    }
    for (int ii = 0; ii < 8; ii++) _mm512_store_ps(s + (size_t)(i + ii) * ATTN_KC, acc[ii]);
  }
  for (; i < nq; i++) {
    __m512 acc = _mm512_setzero_ps();
    const float *q = qs + (size_t)i * dk;
    for (int d = 0; d < dk; d++) acc = _mm512_fmadd_ps(_mm512_set1_ps(q[d]), _mm512_load_ps(kt + (size_t)d * ATTN_KC), acc);
    _mm512_store_ps(s + (size_t)i * ATTN_KC, acc);
  }
}

/* O[i] = O[i] * alpha + sum_j p[j] * Vc[j] for one query vector (dv / 16 accumulators) */
static void pv_update(int dv, int nk, float alpha, const float *p, const float *vc, float *o) {
  __m512 acc[ATTN_DMAX / 16];
  const int nv = dv / 16;
  const __m512 al = _mm512_set1_ps(alpha);
  for (int v = 0; v < nv; v++) acc[v] = _mm512_mul_ps(_mm512_load_ps(o + 16 * v), al);
  for (int j = 0; j < nk; j++) {
    const __m512 pj = _mm512_set1_ps(p[j]);
    const float *vr = vc + (size_t)j * dv;
    for (int v = 0; v < nv; v++) acc[v] = _mm512_fmadd_ps(pj, _mm512_load_ps(vr + 16 * v), acc[v]);
  }
  for (int v = 0; v < nv; v++) _mm512_store_ps(o + 16 * v, acc[v]);
}

void mlxr_attn_tiled_avx512(const mlxr_attn_args *a, int64_t r0, int64_t r1, int kvh, float *scratch) {
  const int G = a->n_head / a->n_head_kv, dk = a->head_dim_k, dv = a->head_dim_v;
  const int nq = (int)(r1 - r0) * G;
  const bool f16 = a->kv_type == MLXR_DTYPE_F16;
  const size_t esz = f16 ? 2 : 4;
  const int64_t kv_dim_k = (int64_t)a->n_head_kv * dk, kv_dim_v = (int64_t)a->n_head_kv * dv;
  const int32_t *table = a->block_tables + (int64_t)a->row_table[r0] * a->table_stride;
  float *base = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  float *qs = base;                               /* [ATTN_NQ][dk] */
  float *kt = qs + (size_t)ATTN_NQ * dk;          /* [dk][KC] */
  float *vc = kt + (size_t)dk * ATTN_KC;          /* [KC][dv] */
  float *s = vc + (size_t)ATTN_KC * dv;           /* [ATTN_NQ][KC] */
  float *o = s + (size_t)ATTN_NQ * ATTN_KC;       /* [ATTN_NQ][dv] */
  float *m = o + (size_t)ATTN_NQ * dv, *l = m + ATTN_NQ;
  int32_t t_end = 0;
  int32_t ctx[ATTN_NQ];
  const __m512 scale = _mm512_set1_ps(a->scale);
  for (int i = 0; i < nq; i++) {
    const int64_t r = r0 + i / G;
    const int h = kvh * G + i % G;
    const float *q = a->q + (r * a->n_head + h) * dk;
    for (int d = 0; d < dk; d += 16) _mm512_store_ps(qs + (size_t)i * dk + d, _mm512_mul_ps(_mm512_loadu_ps(q + d), scale));
    for (int d = 0; d < dv; d += 16) _mm512_store_ps(o + (size_t)i * dv + d, _mm512_setzero_ps());
    m[i] = -INFINITY;
    l[i] = 0.0f;
    ctx[i] = a->n_ctx[r];
    if (ctx[i] > t_end) t_end = ctx[i];
  }
  const int64_t koff = (int64_t)kvh * dk, voff = (int64_t)kvh * dv;
  for (int32_t t0 = 0; t0 < t_end; t0 += ATTN_KC) {
    const int nk = t_end - t0 < ATTN_KC ? t_end - t0 : ATTN_KC;
    /* the next chunk's key and value rows: one head's slice of a cache row is a few lines at a
     * stride of the whole row, which the hardware prefetchers do not follow across pages */
    for (int j = 0; j < ATTN_KC && t0 + ATTN_KC + j < t_end; j++) {
      const char *kr = (const char *)kv_row(a, a->k_pool, table, t0 + ATTN_KC + j, kv_dim_k, koff, esz);
      const char *vr = (const char *)kv_row(a, a->v_pool, table, t0 + ATTN_KC + j, kv_dim_v, voff, esz);
      for (size_t o = 0; o < (size_t)dk * esz; o += 64) _mm_prefetch(kr + o, _MM_HINT_T0);
      for (size_t o = 0; o < (size_t)dv * esz; o += 64) _mm_prefetch(vr + o, _MM_HINT_T0);
    }
    /* 1. convert the chunk's keys (transposed) and values; few queries: scores right here */
    const bool direct = nq <= ATTN_DOT_MAX;
    for (int j = 0; j < ATTN_KC; j++) {
      if (direct) {
        if (j < nk) {
          const uint8_t *kr = kv_row(a, a->k_pool, table, t0 + j, kv_dim_k, koff, esz);
          __m512 kv[ATTN_DMAX / 16];
          for (int v = 0; v < dk / 16; v++) kv[v] = load16(kr, f16, 16 * v);
          for (int i = 0; i < nq; i++) {
            const float *q = qs + (size_t)i * dk;
            __m512 acc = _mm512_mul_ps(_mm512_load_ps(q), kv[0]);
            for (int v = 1; v < dk / 16; v++) acc = _mm512_fmadd_ps(_mm512_load_ps(q + 16 * v), kv[v], acc);
            s[(size_t)i * ATTN_KC + j] = _mm512_reduce_add_ps(acc);
          }
          const uint8_t *vr = kv_row(a, a->v_pool, table, t0 + j, kv_dim_v, voff, esz);
          for (int d = 0; d < dv; d += 16) _mm512_store_ps(vc + (size_t)j * dv + d, load16(vr, f16, d));
        } else {
          for (int i = 0; i < nq; i++) s[(size_t)i * ATTN_KC + j] = 0.0f;
        }
        continue;
      }
      if (j < nk) {
        const uint8_t *kr = kv_row(a, a->k_pool, table, t0 + j, kv_dim_k, koff, esz);
        for (int d = 0; d < dk; d += 16) {
          float tmp[16] __attribute__((aligned(64)));
          _mm512_store_ps(tmp, load16(kr, f16, d));
          for (int e = 0; e < 16; e++) kt[(size_t)(d + e) * ATTN_KC + j] = tmp[e];
        }
        const uint8_t *vr = kv_row(a, a->v_pool, table, t0 + j, kv_dim_v, voff, esz);
        for (int d = 0; d < dv; d += 16) _mm512_store_ps(vc + (size_t)j * dv + d, load16(vr, f16, d));
      } else {
        for (int d = 0; d < dk; d++) kt[(size_t)d * ATTN_KC + j] = 0.0f;
      }
    }
    /* 2. scores */
    if (!direct) scores_chunk(nq, dk, qs, kt, s);
    /* 3. online softmax and the value update, per query vector */
    for (int i = 0; i < nq; i++) {
      const int valid = ctx[i] - t0 < nk ? ctx[i] - t0 : nk;
      if (valid <= 0) continue;
      const __mmask16 live = (__mmask16)((1u << valid) - 1u);
      const __m512 sv = _mm512_load_ps(s + (size_t)i * ATTN_KC);
      const float cmax = _mm512_mask_reduce_max_ps(live, sv);
      const float mnew = cmax > m[i] ? cmax : m[i];
      const float alpha = m[i] == -INFINITY ? 0.0f : expf(m[i] - mnew);
      const __m512 p = _mm512_maskz_mov_ps(live, mlxr_exp_avx512(_mm512_sub_ps(sv, _mm512_set1_ps(mnew))));
      _mm512_store_ps(s + (size_t)i * ATTN_KC, p);
      l[i] = l[i] * alpha + _mm512_reduce_add_ps(p);
      m[i] = mnew;
      pv_update(dv, valid, alpha, s + (size_t)i * ATTN_KC, vc, o + (size_t)i * dv);
    }
  }
  for (int i = 0; i < nq; i++) {
    const int64_t r = r0 + i / G;
    const int h = kvh * G + i % G;
    float *out = a->out + (r * a->n_head + h) * dv;
    const __m512 inv = _mm512_set1_ps(l[i] > 0.0f ? 1.0f / l[i] : 0.0f);
    for (int d = 0; d < dv; d += 16) _mm512_storeu_ps(out + d, _mm512_mul_ps(_mm512_load_ps(o + (size_t)i * dv + d), inv));
  }
}

#pragma GCC pop_options

#endif /* MLXR_QUANTS_X86 */
