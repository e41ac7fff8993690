/*
 * gemm_neon.c: register-blocked multi-row matrix products (the `gemm` entry of
 * core/kernels/types.h) for prompt processing on Arm NEON (AArch64): F32 x F32, F16 x F32,
 * Q4_0 x Q8_0 and Q8_0 x Q8_0. The NEON counterpart of gemm_avx2.c; empty on x86.
 *
 * A vec_dot per (activation row, weight row) decodes every weight block once per activation row.
 * These kernels walk a tile of RM activation rows x RN weight rows together: each weight block is
 * decoded once into registers and multiplied into RM rows, each activation block is loaded once
 * and multiplied into RN weight rows, and the RM*RN partial sums stay in registers (4 float lanes
 * each; AArch64 has 32 vector registers, so 4x4 float tiles and 4x2 quant tiles fit) until the
 * end of the row, where each is reduced once. Edge tiles (fewer rows or columns) are separate
 * instantiations of the same always-inlined body with smaller constant sizes.
 *
 * Integer products per 32-element block are exact (mlxr_neon_dot of quants_impl.h: SDOT with
 * +dotprod, else SMULL + SADALP); Q4_0 codes are made signed (q - 8) once per weight block. The
 * int32 block sum is converted to float and accumulated with the block's scale dx * dy, so results
 * equal vec_dot's up to float summation order. Pure functions; any thread may call them.
 */
#include "core/kernels/cpu/quants_impl.h"
#include "core/kernels/cpu/gemm_drive.h"

#if defined(__aarch64__)

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---------------------------------------------------------------- Q4_0 / Q8_0 x Q8_0 */

#define Q_RM 4
#define Q_RN 2

/* One block of weight row j as 32 signed codes (two vectors) and its scale. */
static ALWAYS_INLINE void load_q4_0(const uint8_t *x, size_t bx, int j, int64_t b, int8x16_t *q0,
                                    int8x16_t *q1, float *d) {
  const mlxr_block_q4_0 *xb = (const mlxr_block_q4_0 *)(x + (size_t)j * bx) + b;
  int8x16_t lo, hi;
  mlxr_neon_nibbles(xb->qs, &lo, &hi);
  *q0 = vsubq_s8(lo, vdupq_n_s8(8));
  *q1 = vsubq_s8(hi, vdupq_n_s8(8));
  *d = mlxr_f16_to_f32(xb->d);
}

static ALWAYS_INLINE void load_q8_0(const uint8_t *x, size_t bx, int j, int64_t b, int8x16_t *q0,
                                    int8x16_t *q1, float *d) {
  const mlxr_block_q8_0 *xb = (const mlxr_block_q8_0 *)(x + (size_t)j * bx) + b;
  *q0 = vld1q_s8(xb->qs);
  *q1 = vld1q_s8(xb->qs + 16);
  *d = mlxr_f16_to_f32(xb->d);
}

static ALWAYS_INLINE void quant_tile(const bool q4, const int rm, const int rn, int64_t nb,
                                     const uint8_t *x, size_t bx, const uint8_t *y, size_t by,
                                     float *out, int64_t ldo) {
  float32x4_t acc[Q_RM][Q_RN];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < nb; b++) {
    int8x16_t w0[Q_RN], w1[Q_RN];
    float dx[Q_RN];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      if (q4) load_q4_0(x, bx, j, b, &w0[j], &w1[j], &dx[j]);
      else load_q8_0(x, bx, j, b, &w0[j], &w1[j], &dx[j]);
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const mlxr_block_q8_0 *yb = (const mlxr_block_q8_0 *)(y + (size_t)i * by) + b;
      const int8x16_t y0 = vld1q_s8(yb->qs), y1 = vld1q_s8(yb->qs + 16);
      const float dy = mlxr_f16_to_f32(yb->d);
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
        const int32x4_t p = mlxr_neon_dot(mlxr_neon_dot(vdupq_n_s32(0), w0[j], y0), w1[j], y1);
        acc[i][j] = vfmaq_n_f32(acc[i][j], vcvtq_f32_s32(p), dx[j] * dy);
      }
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) out[i * ldo + j] = vaddvq_f32(acc[i][j]);
}

static ALWAYS_INLINE void q4_0_tile(const int rm, const int rn, int64_t nb, const uint8_t *x,
                                    size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  quant_tile(true, rm, rn, nb, x, bx, y, by, out, ldo);
}

static ALWAYS_INLINE void q8_0_tile(const int rm, const int rn, int64_t nb, const uint8_t *x,
                                    size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  quant_tile(false, rm, rn, nb, x, bx, y, by, out, ldo);
}

/* ---------------------------------------------------------------- F16 / F32 x F32 */

#define F_RM 4
#define F_RN 4

static ALWAYS_INLINE float32x4_t load_w4(const bool f16, const uint8_t *row, int64_t k) {
  return f16 ? mlxr_neon_f16x4((const mlxr_f16 *)row + k) : vld1q_f32((const float *)row + k);
}

static ALWAYS_INLINE float load_w1(const bool f16, const uint8_t *row, int64_t k) {
  return f16 ? mlxr_f16_to_f32(((const mlxr_f16 *)row)[k]) : ((const float *)row)[k];
}

static ALWAYS_INLINE void float_tile(const bool f16, const int rm, const int rn, int64_t n,
                                     const uint8_t *x, size_t bx, const uint8_t *y, size_t by,
                                     float *out, int64_t ldo) {
  float32x4_t acc[F_RM][F_RN];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++)
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = vdupq_n_f32(0.0f);
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    float32x4_t w[F_RN];
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) w[j] = load_w4(f16, x + (size_t)j * bx, k);
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const float32x4_t yv = vld1q_f32((const float *)(y + (size_t)i * by) + k);
      _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) acc[i][j] = vfmaq_f32(acc[i][j], w[j], yv);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
    const float *yr = (const float *)(y + (size_t)i * by);
    _Pragma("GCC unroll 4") for (int j = 0; j < rn; j++) {
      float s = vaddvq_f32(acc[i][j]);
      for (int64_t t = k; t < n; t++) s += load_w1(f16, x + (size_t)j * bx, t) * yr[t];
      out[i * ldo + j] = s;
    }
  }
}

static ALWAYS_INLINE void f16_tile(const int rm, const int rn, int64_t n, const uint8_t *x,
                                   size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  float_tile(true, rm, rn, n, x, bx, y, by, out, ldo);
}

static ALWAYS_INLINE void f32_tile(const int rm, const int rn, int64_t n, const uint8_t *x,
                                   size_t bx, const uint8_t *y, size_t by, float *out, int64_t ldo) {
  float_tile(false, rm, rn, n, x, bx, y, by, out, ldo);
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
TILE_FN(f16, 1, 1) TILE_FN(f16, 1, 2) TILE_FN(f16, 1, 3) TILE_FN(f16, 1, 4)
TILE_FN(f16, 2, 1) TILE_FN(f16, 2, 2) TILE_FN(f16, 2, 3) TILE_FN(f16, 2, 4)
TILE_FN(f16, 3, 1) TILE_FN(f16, 3, 2) TILE_FN(f16, 3, 3) TILE_FN(f16, 3, 4)
TILE_FN(f16, 4, 1) TILE_FN(f16, 4, 2) TILE_FN(f16, 4, 3) TILE_FN(f16, 4, 4)
TILE_FN(f32, 1, 1) TILE_FN(f32, 1, 2) TILE_FN(f32, 1, 3) TILE_FN(f32, 1, 4)
TILE_FN(f32, 2, 1) TILE_FN(f32, 2, 2) TILE_FN(f32, 2, 3) TILE_FN(f32, 2, 4)
TILE_FN(f32, 3, 1) TILE_FN(f32, 3, 2) TILE_FN(f32, 3, 3) TILE_FN(f32, 3, 4)
TILE_FN(f32, 4, 1) TILE_FN(f32, 4, 2) TILE_FN(f32, 4, 3) TILE_FN(f32, 4, 4)

static const mlxr_gemm_tile_fn q4_0_tiles[Q_RM][Q_RN] = {
    {q4_0_tile_1x1, q4_0_tile_1x2}, {q4_0_tile_2x1, q4_0_tile_2x2},
    {q4_0_tile_3x1, q4_0_tile_3x2}, {q4_0_tile_4x1, q4_0_tile_4x2}};
static const mlxr_gemm_tile_fn q8_0_tiles[Q_RM][Q_RN] = {
    {q8_0_tile_1x1, q8_0_tile_1x2}, {q8_0_tile_2x1, q8_0_tile_2x2},
    {q8_0_tile_3x1, q8_0_tile_3x2}, {q8_0_tile_4x1, q8_0_tile_4x2}};
static const mlxr_gemm_tile_fn f16_tiles[F_RM][F_RN] = {
    {f16_tile_1x1, f16_tile_1x2, f16_tile_1x3, f16_tile_1x4},
    {f16_tile_2x1, f16_tile_2x2, f16_tile_2x3, f16_tile_2x4},
    {f16_tile_3x1, f16_tile_3x2, f16_tile_3x3, f16_tile_3x4},
    {f16_tile_4x1, f16_tile_4x2, f16_tile_4x3, f16_tile_4x4}};
static const mlxr_gemm_tile_fn f32_tiles[F_RM][F_RN] = {
    {f32_tile_1x1, f32_tile_1x2, f32_tile_1x3, f32_tile_1x4},
    {f32_tile_2x1, f32_tile_2x2, f32_tile_2x3, f32_tile_2x4},
    {f32_tile_3x1, f32_tile_3x2, f32_tile_3x3, f32_tile_3x4},
    {f32_tile_4x1, f32_tile_4x2, f32_tile_4x3, f32_tile_4x4}};


void mlxr_quant_q4_0_gemm_neon(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                               const void *y, size_t by, float *out, int64_t ldo) {
  mlxr_gemm_drive(&q4_0_tiles[0][0], Q_RM, Q_RN, n / MLXR_QK, nr, nc, x, bx, y, by, out, ldo);
}

void mlxr_quant_q8_0_gemm_neon(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                               const void *y, size_t by, float *out, int64_t ldo) {
  mlxr_gemm_drive(&q8_0_tiles[0][0], Q_RM, Q_RN, n / MLXR_QK, nr, nc, x, bx, y, by, out, ldo);
}

void mlxr_quant_f16_gemm_neon(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo) {
  mlxr_gemm_drive(&f16_tiles[0][0], F_RM, F_RN, n, nr, nc, x, bx, y, by, out, ldo);
}

void mlxr_quant_f32_gemm_neon(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo) {
  mlxr_gemm_drive(&f32_tiles[0][0], F_RM, F_RN, n, nr, nc, x, bx, y, by, out, ldo);
}

#endif /* __aarch64__ */
