/*
 * gemm_avx512.c: register-blocked multi-row products (the `gemm` entry of core/kernels/types.h)
 * with AVX-512 VNNI, for Q4_0 and Q8_0 weights against Q8_0 activations, and with plain AVX-512F
 * for F16 and F32 weights against float32 activations (16 lanes per FMA; no VNNI needed). Built with the AVX-512
 * flags CMake gives every *_avx512.c, plus VNNI through the target pragma below; type_traits.c
 * hands these out only when CPUID reports AVX512_VNNI (mlxr_quant_cpu_has_avx512_vnni), so an
 * AVX2-only or AVX-512-without-VNNI machine never executes them.
 *
 * Each 512-bit step covers two 32-element blocks. vpdpbusd multiplies unsigned weight bytes by
 * signed activation bytes and adds groups of four into int32 lanes, exactly. Weights are made
 * unsigned with an offset (Q4_0: its nibbles q = x + 8; Q8_0: x ^ 0x80 = x + 128) and the offset
 * times the activation sum, formed once per activation row and block pair by the same
 * instruction, is the lane's starting value (negated). Lanes then hold exact int32 partial dots,
 * are converted to float and accumulated with the per-lane scale dx * dy, as in gemm_avx2.c.
 *
 * Q4_0 lane order: the 16 bytes of nibbles of blocks b and b+1 give, unpacked,
 * [lo(b) | lo(b+1) | hi(b) | hi(b+1)] (16 bytes each); activations are loaded into the same order
 * (elements 0-15 of b, of b+1, 16-31 of b, of b+1), so each int32 lane belongs to one block. An odd
 * last block runs with a zero second half (zero activations and zero scale). Pure functions.
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <cpuid.h>
#include <immintrin.h>

bool mlxr_quant_cpu_has_avx512_vnni(void) {
  if (mlxr_cpu_isa_cap(NULL) < MLXR_ISA_AVX512_VNNI) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  return (c >> 11) & 1u;
}

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define RM_MAX 4
#define RN_MAX 4
/* ---------------------------------------------------------------- instantiation and drivers */

typedef void (*tile_fn)(int64_t nb, const uint8_t *x, size_t bx, const uint8_t *y, size_t by,
                        float *out, int64_t ldo);

#define TILE_FN(KIND, RM, RN)                                                                    \
  static void KIND##_tile_##RM##x##RN(int64_t nb, const uint8_t *x, size_t bx, const uint8_t *y, \
                                      size_t by, float *out, int64_t ldo) {                      \
    KIND##_tile(RM, RN, nb, x, bx, y, by, out, ldo);                                             \
  }
#define TILE_ROW(KIND, RM) \
  TILE_FN(KIND, RM, 1) TILE_FN(KIND, RM, 2) TILE_FN(KIND, RM, 3) TILE_FN(KIND, RM, 4)
#define TILE_ALL(KIND) TILE_ROW(KIND, 1) TILE_ROW(KIND, 2) TILE_ROW(KIND, 3) TILE_ROW(KIND, 4)
#define TABLE_ROW(KIND, RM) \
  {KIND##_tile_##RM##x1, KIND##_tile_##RM##x2, KIND##_tile_##RM##x3, KIND##_tile_##RM##x4}
#define TABLE(KIND) \
  {TABLE_ROW(KIND, 1), TABLE_ROW(KIND, 2), TABLE_ROW(KIND, 3), TABLE_ROW(KIND, 4)}

static void gemm_drive(const tile_fn (*tiles)[RN_MAX], int64_t nb, int64_t nr, int64_t nc,
                       const void *x, size_t bx, const void *y, size_t by, float *out, int64_t ldo) {
  const uint8_t *xb = x, *yb = y;
  for (int64_t r0 = 0; r0 < nr; r0 += RM_MAX) {
    const int rm = nr - r0 < RM_MAX ? (int)(nr - r0) : RM_MAX;
    for (int64_t c0 = 0; c0 < nc; c0 += RN_MAX) {
      const int rn = nc - c0 < RN_MAX ? (int)(nc - c0) : RN_MAX;
      tiles[rm - 1][rn - 1](nb, xb + (size_t)c0 * bx, bx, yb + (size_t)r0 * by, by,
                            out + r0 * ldo + c0, ldo);
    }
  }
}

/* ---------------------------------------------------------------- F16 x F32 (AVX-512F only) */

static ALWAYS_INLINE void f16_tile(const int rm, const int rn, int64_t n, const uint8_t *x,
                                   size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  __m512 acc[RM_MAX][RN_MAX];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m512 w[RN_MAX];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      w[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const mlxr_f16 *)(x + (size_t)j * bx) + k)));
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const __m512 yv = _mm512_loadu_ps((const float *)(y + (size_t)i * by) + k);
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm512_fmadd_ps(w[j], yv, acc[i][j]);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
    const float *yr = (const float *)(y + (size_t)i * by);
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      const mlxr_f16 *xr = (const mlxr_f16 *)(x + (size_t)j * bx);
      float s = _mm512_reduce_add_ps(acc[i][j]);
      for (int64_t t = k; t < n; t++) s += _cvtsh_ss(xr[t]) * yr[t];
      out[i * ldo + j] = s;
    }
  }
}

TILE_ALL(f16)
static const tile_fn f16_tiles[RM_MAX][RN_MAX] = TABLE(f16);

static ALWAYS_INLINE void f32_tile(const int rm, const int rn, int64_t n, const uint8_t *x,
                                   size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  __m512 acc[RM_MAX][RN_MAX];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m512 w[RN_MAX];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      w[j] = _mm512_loadu_ps((const float *)(x + (size_t)j * bx) + k);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const __m512 yv = _mm512_loadu_ps((const float *)(y + (size_t)i * by) + k);
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm512_fmadd_ps(w[j], yv, acc[i][j]);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
    const float *yr = (const float *)(y + (size_t)i * by);
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      const float *xr = (const float *)(x + (size_t)j * bx);
      float s = _mm512_reduce_add_ps(acc[i][j]);
      for (int64_t t = k; t < n; t++) s += xr[t] * yr[t];
      out[i * ldo + j] = s;
    }
  }
}

TILE_ALL(f32)
static const tile_fn f32_tiles[RM_MAX][RN_MAX] = TABLE(f32);

void mlxr_quant_f32_gemm_avx512(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                                const void *y, size_t by, float *out, int64_t ldo) {
  gemm_drive(f32_tiles, n, nr, nc, x, bx, y, by, out, ldo);
}

/* F16 needs only AVX-512F (+F16C): usable without VNNI. */
void mlxr_quant_f16_gemm_avx512(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                                const void *y, size_t by, float *out, int64_t ldo) {
  gemm_drive(f16_tiles, n, nr, nc, x, bx, y, by, out, ldo);
}

/* ---------------------------------------------------------------- VNNI from here on */

#pragma GCC push_options
#pragma GCC target("avx512vnni")

static ALWAYS_INLINE float hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }

/* Two f16 scales -> 16 lanes in the given pattern (index 0 = first block, 1 = second). */
static ALWAYS_INLINE __m512 scales2(mlxr_f16 d0, mlxr_f16 d1, __m512i pattern) {
  const __m128 s = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)d0 | (uint32_t)d1 << 16)));
  return _mm512_permutexvar_ps(pattern, _mm512_castps128_ps512(s));
}

/* ---------------------------------------------------------------- Q4_0 x Q8_0 */

static ALWAYS_INLINE void q4_0_tile(const int rm, const int rn, int64_t nb, const uint8_t *x,
                                    size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  __m512 acc[RM_MAX][RN_MAX];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm512_setzero_ps();
  const __m512i lowmask = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
  /* lanes 0-3 and 8-11 belong to block b, 4-7 and 12-15 to block b+1 */
  const __m512i pattern = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
  const __m512i ypick = _mm512_setr_epi64(0, 1, 4, 5, 2, 3, 6, 7);
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    __m512i q[RN_MAX];
    __m512 dx[RN_MAX];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      const mlxr_block_q4_0 *xb = (const mlxr_block_q4_0 *)(x + (size_t)j * bx) + b;
      const __m128i t0 = _mm_loadu_si128((const __m128i *)xb[0].qs);
      const __m128i t1 = two ? _mm_loadu_si128((const __m128i *)xb[1].qs) : _mm_setzero_si128();
      const __m256i t = _mm256_set_m128i(t1, t0);
      const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(t), _mm256_srli_epi16(t, 4), 1);
      q[j] = _mm512_and_si512(v, lowmask);
      dx[j] = scales2(xb[0].d, two ? xb[1].d : 0, pattern);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const mlxr_block_q8_0 *yb = (const mlxr_block_q8_0 *)(y + (size_t)i * by) + b;
      const __m256i y0 = _mm256_loadu_si256((const __m256i *)yb[0].qs);
      const __m256i y1 = two ? _mm256_loadu_si256((const __m256i *)yb[1].qs) : _mm256_setzero_si256();
      /* [y0 lo, y0 hi, y1 lo, y1 hi] -> [y0 lo, y1 lo, y0 hi, y1 hi] */
      const __m512i yq = _mm512_permutexvar_epi64(
          ypick, _mm512_inserti64x4(_mm512_castsi256_si512(y0), y1, 1));
      const __m512 dy = scales2(yb[0].d, two ? yb[1].d : 0, pattern);
      const __m512i neg = _mm512_sub_epi32(_mm512_setzero_si512(),
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, yq));
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
        const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(neg, q[j], yq));
        acc[i][j] = _mm512_fmadd_ps(p, _mm512_mul_ps(dx[j], dy), acc[i][j]);
      }
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) out[i * ldo + j] = hsum16(acc[i][j]);
}

/* ---------------------------------------------------------------- Q8_0 x Q8_0 */

static ALWAYS_INLINE void q8_0_tile(const int rm, const int rn, int64_t nb, const uint8_t *x,
                                    size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  __m512 acc[RM_MAX][RN_MAX];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm512_setzero_ps();
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  /* lanes 0-7 belong to block b, 8-15 to block b+1 */
  const __m512i pattern = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    __m512i w[RN_MAX];
    __m512 dx[RN_MAX];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      const mlxr_block_q8_0 *xb = (const mlxr_block_q8_0 *)(x + (size_t)j * bx) + b;
      const __m256i w0 = _mm256_loadu_si256((const __m256i *)xb[0].qs);
      const __m256i w1 = two ? _mm256_loadu_si256((const __m256i *)xb[1].qs) : _mm256_setzero_si256();
      w[j] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1), bias);
      dx[j] = scales2(xb[0].d, two ? xb[1].d : 0, pattern);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const mlxr_block_q8_0 *yb = (const mlxr_block_q8_0 *)(y + (size_t)i * by) + b;
      const __m256i y0 = _mm256_loadu_si256((const __m256i *)yb[0].qs);
      const __m256i y1 = two ? _mm256_loadu_si256((const __m256i *)yb[1].qs) : _mm256_setzero_si256();
      const __m512i yq = _mm512_inserti64x4(_mm512_castsi256_si512(y0), y1, 1);
      const __m512 dy = scales2(yb[0].d, two ? yb[1].d : 0, pattern);
      const __m512i neg = _mm512_sub_epi32(_mm512_setzero_si512(),
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, yq));
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
        const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(neg, w[j], yq));
        acc[i][j] = _mm512_fmadd_ps(p, _mm512_mul_ps(dx[j], dy), acc[i][j]);
      }
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) out[i * ldo + j] = hsum16(acc[i][j]);
}

TILE_ALL(q4_0)
TILE_ALL(q8_0)
static const tile_fn q4_0_tiles[RM_MAX][RN_MAX] = TABLE(q4_0);
static const tile_fn q8_0_tiles[RM_MAX][RN_MAX] = TABLE(q8_0);

void mlxr_quant_q4_0_gemm_avx512vnni(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                                     const void *y, size_t by, float *out, int64_t ldo) {
  gemm_drive(q4_0_tiles, n / MLXR_QK, nr, nc, x, bx, y, by, out, ldo);
}

void mlxr_quant_q8_0_gemm_avx512vnni(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                                     const void *y, size_t by, float *out, int64_t ldo) {
  gemm_drive(q8_0_tiles, n / MLXR_QK, nr, nc, x, bx, y, by, out, ldo);
}

#pragma GCC pop_options

#endif
