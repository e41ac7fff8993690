/*
 * gemm_p32_avx512.c: F16 weight matrices repacked once at load time into "P32" panels, and the
 * AVX-512F products that read them, for decode (one activation row) and prompts (many).
 *
 * Why: in the file an F16 matrix is row-major, so a product reads each weight row as a vector
 * and must sum each output's 16 lanes at the end, and a multi-row product has to hold one
 * accumulator per (activation row, weight row) pair: a 4x4 register tile costs 8 loads per 16
 * FMAs, which makes prompts bound on L2 bandwidth, and decode reads 4-16 rows as separate
 * streams. In a panel the 32 weights that one activation element multiplies are contiguous, so
 * one cache line feeds 32 outputs: decode is one sequential stream per thread with no horizontal
 * sums, and a prompt tile of 12 activation rows x 32 outputs does 24 FMAs per line loaded and 12
 * scalar broadcasts (the BLIS "broadcast A, load B" micro-kernel).
 *
 * P32 layout. Rows are taken 32 at a time (the backend repacks only matrices with n_out % 32 ==
 * 0). Group g (rows 32g..32g+31) takes exactly the bytes the 32 rows took in the file
 * (32 * n_in * 2), as n_in lines of 64 bytes: line k holds w[32g + j][k] for j = 0..31, f16.
 *
 * Products: out[r * ldo + 32g + j] = sum_k w[32g + j][k] * y[r * ldy + k], summed in k order in
 * float32 (each f16 weight is converted exactly), for r < nr, g < ngroups. Activation rows are
 * float32 (F16's vec_dot_type). Pure functions; any thread may call them on disjoint outputs.
 * The repack, match and row decode are plain C code (no intrinsics), though compiled with this
 * file's AVX-512 flags like the rest: the backend calls any of it only at the AVX-512 level.
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define P32 32
#define P32_PF 2048  /* decode software prefetch distance, bytes */
#define P32_RM 12    /* activation rows per prompt tile (24 accumulators) */

/* ---------------------------------------------------------------- layout (plain C) */

void mlxr_quant_p32_repack_f16(const void *src, size_t row_bytes, int64_t n_in, int64_t n_rows,
                               void *dst) {
  const uint8_t *s = src;
  mlxr_f16 *d = dst;
  for (int64_t g = 0; g < n_rows / P32; g++) {
    mlxr_f16 *panel = d + (size_t)g * P32 * (size_t)n_in;
    /* 32 x 32 tiles: each source row segment is read once, each panel line written once */
    for (int64_t k0 = 0; k0 < n_in; k0 += P32) {
      const int64_t k1 = k0 + P32 < n_in ? k0 + P32 : n_in;
      for (int j = 0; j < P32; j++) {
        const mlxr_f16 *row = (const mlxr_f16 *)(s + (size_t)(g * P32 + j) * row_bytes);
        for (int64_t k = k0; k < k1; k++) panel[(size_t)k * P32 + (size_t)j] = row[k];
      }
    }
  }
}

bool mlxr_quant_p32_matches_f16(const void *src, size_t row_bytes, int64_t n_in, int64_t n_rows,
                                const void *packed) {
  const mlxr_f16 *p = packed;
  for (int64_t r = 0; r < n_rows; r++) {
    const mlxr_f16 *row = (const mlxr_f16 *)((const uint8_t *)src + (size_t)r * row_bytes);
    const mlxr_f16 *panel = p + (size_t)(r / P32) * P32 * (size_t)n_in + (size_t)(r % P32);
    for (int64_t k = 0; k < n_in; k++) {
      if (panel[(size_t)k * P32] != row[k]) return false;
    }
  }
  return true;
}

void mlxr_quant_p32_row_to_float(const void *packed, int64_t n_in, int64_t row, float *dst) {
  const mlxr_f16 *panel =
      (const mlxr_f16 *)packed + (size_t)(row / P32) * P32 * (size_t)n_in + (size_t)(row % P32);
  for (int64_t k = 0; k < n_in; k++) dst[k] = mlxr_f16_to_f32(panel[(size_t)k * P32]);
}

/* ---------------------------------------------------------------- kernels */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

/* One activation row x one group: four independent accumulator pairs over k so the FMA latency
 * never limits the stream; prefetch P32_PF ahead (the hardware prefetcher alone leaves the
 * stream short of bandwidth, as for the R16 kernels). */
static void p32_row1(int64_t n, const mlxr_f16 *panel, const float *y, float *out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), b0 = _mm512_setzero_ps(),
         b1 = _mm512_setzero_ps(), c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(),
         d0 = _mm512_setzero_ps(), d1 = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const mlxr_f16 *l = panel + (size_t)k * P32;
    _mm_prefetch((const char *)l + P32_PF, _MM_HINT_T0);
    _mm_prefetch((const char *)l + P32_PF + 64, _MM_HINT_T0);
    _mm_prefetch((const char *)l + P32_PF + 128, _MM_HINT_T0);
    _mm_prefetch((const char *)l + P32_PF + 192, _MM_HINT_T0);
    const __m512 y0 = _mm512_set1_ps(y[k]), y1 = _mm512_set1_ps(y[k + 1]),
                 y2 = _mm512_set1_ps(y[k + 2]), y3 = _mm512_set1_ps(y[k + 3]);
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 0))), y0, a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 16))), y0, a1);
    b0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 32))), y1, b0);
    b1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 48))), y1, b1);
    c0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 64))), y2, c0);
    c1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 80))), y2, c1);
    d0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 96))), y3, d0);
    d1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 112))), y3, d1);
  }
  for (; k < n; k++) {
    const mlxr_f16 *l = panel + (size_t)k * P32;
    const __m512 yk = _mm512_set1_ps(y[k]);
    a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 0))), yk, a0);
    a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 16))), yk, a1);
  }
  _mm512_storeu_ps(out, _mm512_add_ps(_mm512_add_ps(a0, b0), _mm512_add_ps(c0, d0)));
  _mm512_storeu_ps(out + 16, _mm512_add_ps(_mm512_add_ps(a1, b1), _mm512_add_ps(c1, d1)));
}

/* rm activation rows (rm <= P32_RM) x one group: per k one panel line (two conversions) and rm
 * broadcasts feed 2 * rm FMAs. */
static ALWAYS_INLINE void p32_rows(const int rm, int64_t n, const mlxr_f16 *panel, const float *y,
                                   size_t ldy, float *out, int64_t ldo) {
  __m512 acc[P32_RM][2];
  _Pragma("GCC unroll 12") for (int i = 0; i < rm; i++) {
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < n; k++) {
    const mlxr_f16 *l = panel + (size_t)k * P32;
    const __m512 w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)l));
    const __m512 w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(l + 16)));
    _Pragma("GCC unroll 12") for (int i = 0; i < rm; i++) {
      const __m512 b = _mm512_set1_ps(y[(size_t)i * ldy + (size_t)k]);
      acc[i][0] = _mm512_fmadd_ps(w0, b, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(w1, b, acc[i][1]);
    }
  }
  _Pragma("GCC unroll 12") for (int i = 0; i < rm; i++) {
    _mm512_storeu_ps(out + (int64_t)i * ldo, acc[i][0]);
    _mm512_storeu_ps(out + (int64_t)i * ldo + 16, acc[i][1]);
  }
}

typedef void (*p32_rows_fn)(int64_t n, const mlxr_f16 *panel, const float *y, size_t ldy, float *out,
                            int64_t ldo);
#define P32_ROWS_FN(RM)                                                                        \
  static void p32_rows_##RM(int64_t n, const mlxr_f16 *panel, const float *y, size_t ldy,      \
                            float *out, int64_t ldo) {                                         \
    p32_rows(RM, n, panel, y, ldy, out, ldo);                                                  \
  }
P32_ROWS_FN(2)
P32_ROWS_FN(3)
P32_ROWS_FN(4)
P32_ROWS_FN(5)
P32_ROWS_FN(6)
P32_ROWS_FN(7)
P32_ROWS_FN(8)
P32_ROWS_FN(9)
P32_ROWS_FN(10)
P32_ROWS_FN(11)
P32_ROWS_FN(12)
static const p32_rows_fn p32_rows_fns[P32_RM + 1] = {
    NULL,         NULL,         p32_rows_2,  p32_rows_3,  p32_rows_4,  p32_rows_5, p32_rows_6,
    p32_rows_7,   p32_rows_8,   p32_rows_9,  p32_rows_10, p32_rows_11, p32_rows_12};

void mlxr_quant_p32_gemm_f16_avx512(int64_t n, int64_t nr, int64_t ngroups, const void *packed,
                                    const float *y, size_t ldy, float *out, int64_t ldo) {
  const mlxr_f16 *p = packed;
  for (int64_t g = 0; g < ngroups; g++) {
    const mlxr_f16 *panel = p + (size_t)g * P32 * (size_t)n;
    float *og = out + g * P32;
    if (nr == 1) {
      p32_row1(n, panel, y, og);
      continue;
    }
    /* the group's panel (32 * n * 2 bytes) stays in L2 while the activation rows stream past */
    for (int64_t r0 = 0; r0 < nr; r0 += P32_RM) {
      const int rm = nr - r0 < P32_RM ? (int)(nr - r0) : P32_RM;
      if (rm == 1) p32_row1(n, panel, y + (size_t)r0 * ldy, og + r0 * ldo);
      else p32_rows_fns[rm](n, panel, y + (size_t)r0 * ldy, ldy, og + r0 * ldo, ldo);
    }
  }
}

#pragma GCC pop_options

#endif /* MLXR_QUANTS_X86 */
