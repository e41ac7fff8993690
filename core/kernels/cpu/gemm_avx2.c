/*
 * gemm_avx2.c: register-blocked multi-row matrix products (the `gemm` entry of
 * core/kernels/types.h) for prompt processing, AVX2 + FMA + F16C. Compiled with -mavx2 -mfma
 * -mf16c like every *_avx2.c, and reached only through the runtime dispatch.
 *
 * A vec_dot per (activation row, weight row) decodes every weight block once per activation row.
 * These kernels instead walk a tile of RM activation rows x RN weight rows together: each weight
 * block is decoded once into a register and multiplied into RM rows, each activation block is
 * loaded once and multiplied into RN weight rows, and the RM*RN partial sums stay in registers
 * (8 float lanes each) until the end of the row, where they are reduced once (as llamafile's
 * tinyBLAS does). Edge tiles (fewer rows or columns) are separate instantiations of the same
 * always-inlined body with smaller constant sizes.
 *
 * Integer products per 32-element block are exact (as in quants_avx2.c): Q4_0 keeps its unsigned
 * nibbles q and uses maddubs(q, y) - maddubs(8, y) = sum (q - 8) y, both int16 pair sums
 * within +-3810; Q8_0 uses the sign trick |x| * (y * sign x), valid as activations are never -128.
 * The int32 block sum is converted to float and accumulated with the block's scale dx * dy, so
 * results equal vec_dot's up to float summation order. Pure functions.
 */
#include "core/kernels/cpu/quants_impl.h"
#include "core/kernels/cpu/gemm_drive.h"

#if MLXR_QUANTS_X86

#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* ---------------------------------------------------------------- Q4_0 x Q8_0 */

#define Q4_RM 4
#define Q4_RN 2

static ALWAYS_INLINE void q4_0_tile(const int rm, const int rn, int64_t nb, const uint8_t *x,
                                    size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  __m256 acc[Q4_RM][Q4_RN];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm256_setzero_ps();
  const __m256i lowmask = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; b++) {
    __m256i q[Q4_RN];
    __m256 dx[Q4_RN];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      const mlxr_block_q4_0 *xb = (const mlxr_block_q4_0 *)(x + (size_t)j * bx) + b;
      const __m128i t = _mm_loadu_si128((const __m128i *)xb->qs);
      q[j] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), lowmask);
      dx[j] = _mm256_set1_ps(_cvtsh_ss(xb->d));
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const mlxr_block_q8_0 *yb = (const mlxr_block_q8_0 *)(y + (size_t)i * by) + b;
      const __m256i yq = _mm256_loadu_si256((const __m256i *)yb->qs);
      const __m256 dy = _mm256_set1_ps(_cvtsh_ss(yb->d));
      const __m256i off = _mm256_maddubs_epi16(eight, yq);
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
        const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q[j], yq), off);
        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc[i][j] = _mm256_fmadd_ps(p, _mm256_mul_ps(dx[j], dy), acc[i][j]);
      }
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) out[i * ldo + j] = hsum8(acc[i][j]);
}

/* ---------------------------------------------------------------- Q8_0 x Q8_0 */

#define Q8_RM 4
#define Q8_RN 2

static ALWAYS_INLINE void q8_0_tile(const int rm, const int rn, int64_t nb, const uint8_t *x,
                                    size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  __m256 acc[Q8_RM][Q8_RN];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; b++) {
    __m256i w[Q8_RN], wabs[Q8_RN];
    __m256 dx[Q8_RN];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      const mlxr_block_q8_0 *xb = (const mlxr_block_q8_0 *)(x + (size_t)j * bx) + b;
      w[j] = _mm256_loadu_si256((const __m256i *)xb->qs);
      wabs[j] = _mm256_sign_epi8(w[j], w[j]);
      dx[j] = _mm256_set1_ps(_cvtsh_ss(xb->d));
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const mlxr_block_q8_0 *yb = (const mlxr_block_q8_0 *)(y + (size_t)i * by) + b;
      const __m256i yq = _mm256_loadu_si256((const __m256i *)yb->qs);
      const __m256 dy = _mm256_set1_ps(_cvtsh_ss(yb->d));
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
        const __m256i p16 = _mm256_maddubs_epi16(wabs[j], _mm256_sign_epi8(yq, w[j]));
        const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc[i][j] = _mm256_fmadd_ps(p, _mm256_mul_ps(dx[j], dy), acc[i][j]);
      }
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) out[i * ldo + j] = hsum8(acc[i][j]);
}

/* ---------------------------------------------------------------- F16 x F32 */

#define F16_RM 4
#define F16_RN 3

static ALWAYS_INLINE void f16_tile(const int rm, const int rn, int64_t n, const uint8_t *x,
                                   size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  __m256 acc[F16_RM][F16_RN];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 w[F16_RN];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      w[j] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const mlxr_f16 *)(x + (size_t)j * bx) + k)));
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const __m256 yv = _mm256_loadu_ps((const float *)(y + (size_t)i * by) + k);
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm256_fmadd_ps(w[j], yv, acc[i][j]);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
    const float *yr = (const float *)(y + (size_t)i * by);
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      const mlxr_f16 *xr = (const mlxr_f16 *)(x + (size_t)j * bx);
      float s = hsum8(acc[i][j]);
      for (int64_t t = k; t < n; t++) s += _cvtsh_ss(xr[t]) * yr[t];
      out[i * ldo + j] = s;
    }
  }
}

/* F32 x F32: as F16 without the conversion (used for F32 weights, and by the CPU backend for
 * prompt products of types without a gemm of their own, on tiles it dequantized to float). */
#define F32_RM F16_RM
#define F32_RN F16_RN
static ALWAYS_INLINE void f32_tile(const int rm, const int rn, int64_t n, const uint8_t *x,
                                   size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  __m256 acc[F32_RM][F32_RN];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 w[F32_RN];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      w[j] = _mm256_loadu_ps((const float *)(x + (size_t)j * bx) + k);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const __m256 yv = _mm256_loadu_ps((const float *)(y + (size_t)i * by) + k);
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = _mm256_fmadd_ps(w[j], yv, acc[i][j]);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
    const float *yr = (const float *)(y + (size_t)i * by);
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      const float *xr = (const float *)(x + (size_t)j * bx);
      float s = hsum8(acc[i][j]);
      for (int64_t t = k; t < n; t++) s += xr[t] * yr[t];
      out[i * ldo + j] = s;
    }
  }
}

/* ---------------------------------------------------------------- instantiation and drivers */


#define TILE_FN(KIND, RM, RN)                                                                   \
  static void KIND##_tile_##RM##x##RN(int64_t len, const uint8_t *x, size_t bx, const uint8_t *y, \
                                      size_t by, float *out, int64_t ldo) {                       \
    KIND##_tile(RM, RN, len, x, bx, y, by, out, ldo);                                           \
  }

TILE_FN(q4_0, 1, 1) TILE_FN(q4_0, 1, 2) TILE_FN(q4_0, 2, 1) TILE_FN(q4_0, 2, 2)
TILE_FN(q4_0, 3, 1) TILE_FN(q4_0, 3, 2) TILE_FN(q4_0, 4, 1) TILE_FN(q4_0, 4, 2)
TILE_FN(q8_0, 1, 1) TILE_FN(q8_0, 1, 2) TILE_FN(q8_0, 2, 1) TILE_FN(q8_0, 2, 2)
TILE_FN(q8_0, 3, 1) TILE_FN(q8_0, 3, 2) TILE_FN(q8_0, 4, 1) TILE_FN(q8_0, 4, 2)
TILE_FN(f16, 1, 1) TILE_FN(f16, 1, 2) TILE_FN(f16, 1, 3) TILE_FN(f16, 2, 1) TILE_FN(f16, 2, 2)
TILE_FN(f16, 2, 3) TILE_FN(f16, 3, 1) TILE_FN(f16, 3, 2) TILE_FN(f16, 3, 3) TILE_FN(f16, 4, 1)
TILE_FN(f16, 4, 2) TILE_FN(f16, 4, 3)
TILE_FN(f32, 1, 1) TILE_FN(f32, 1, 2) TILE_FN(f32, 1, 3) TILE_FN(f32, 2, 1) TILE_FN(f32, 2, 2)
TILE_FN(f32, 2, 3) TILE_FN(f32, 3, 1) TILE_FN(f32, 3, 2) TILE_FN(f32, 3, 3) TILE_FN(f32, 4, 1)
TILE_FN(f32, 4, 2) TILE_FN(f32, 4, 3)

static const mlxr_gemm_tile_fn q4_0_tiles[Q4_RM][Q4_RN] = {
    {q4_0_tile_1x1, q4_0_tile_1x2}, {q4_0_tile_2x1, q4_0_tile_2x2},
    {q4_0_tile_3x1, q4_0_tile_3x2}, {q4_0_tile_4x1, q4_0_tile_4x2}};
static const mlxr_gemm_tile_fn q8_0_tiles[Q8_RM][Q8_RN] = {
    {q8_0_tile_1x1, q8_0_tile_1x2}, {q8_0_tile_2x1, q8_0_tile_2x2},
    {q8_0_tile_3x1, q8_0_tile_3x2}, {q8_0_tile_4x1, q8_0_tile_4x2}};
static const mlxr_gemm_tile_fn f16_tiles[F16_RM][F16_RN] = {
    {f16_tile_1x1, f16_tile_1x2, f16_tile_1x3}, {f16_tile_2x1, f16_tile_2x2, f16_tile_2x3},
    {f16_tile_3x1, f16_tile_3x2, f16_tile_3x3}, {f16_tile_4x1, f16_tile_4x2, f16_tile_4x3}};
static const mlxr_gemm_tile_fn f32_tiles[F32_RM][F32_RN] = {
    {f32_tile_1x1, f32_tile_1x2, f32_tile_1x3}, {f32_tile_2x1, f32_tile_2x2, f32_tile_2x3},
    {f32_tile_3x1, f32_tile_3x2, f32_tile_3x3}, {f32_tile_4x1, f32_tile_4x2, f32_tile_4x3}};


void mlxr_quant_q4_0_gemm_avx2(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                               const void *y, size_t by, float *out, int64_t ldo) {
  mlxr_gemm_drive(&q4_0_tiles[0][0], Q4_RM, Q4_RN, n / MLXR_QK, nr, nc, x, bx, y, by, out, ldo);
}

void mlxr_quant_q8_0_gemm_avx2(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                               const void *y, size_t by, float *out, int64_t ldo) {
  mlxr_gemm_drive(&q8_0_tiles[0][0], Q8_RM, Q8_RN, n / MLXR_QK, nr, nc, x, bx, y, by, out, ldo);
}

void mlxr_quant_f16_gemm_avx2(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo) {
  mlxr_gemm_drive(&f16_tiles[0][0], F16_RM, F16_RN, n, nr, nc, x, bx, y, by, out, ldo);
}

void mlxr_quant_f32_gemm_avx2(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo) {
  mlxr_gemm_drive(&f32_tiles[0][0], F32_RM, F32_RN, n, nr, nc, x, bx, y, by, out, ldo);
}

#endif
