/*
 * quants_neon.c: Arm NEON kernels (AArch64) for the plain float types (F32, F16, BF16) and the
 * 32-element legacy quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), and mlxr_quant_neon_dotprod()
 * (which dot-product flavour was compiled). The K-quants are in quants_k_neon.c and the multi-row
 * products in gemm_neon.c. The build gives every *_neon.c -march=armv8.2-a+dotprod on aarch64
 * (unless MLXR_NEON_DOTPROD is OFF); the whole file is #if-guarded so it is empty on x86.
 *
 * The integer dot products stay in int32 inside a block, as in quants_avx2.c: weight codes are
 * spread to one signed byte each (nibbles unpacked with and/shift, Q5's 5th bits expanded from
 * the 32-bit mask by vtst against a bit pattern), and multiplied with the int8 activations by
 *   - SDOT (vdotq_s32, the dotprod extension: four byte products summed into each int32 lane)
 *     when the compile target has __ARM_FEATURE_DOTPROD, or else
 *   - SMULL/SMULL2 (int8 x int8 -> int16, exact: |x*y| <= 128*127) followed by SADALP (pairwise
 *     add-accumulate into int32).
 * The two give the same total per vector (lane groupings differ, so a vector is only ever scaled
 * as a whole). Block sums are converted to float and accumulated with the block's scale dx * dy.
 *
 * to_float / from_float are bit-identical to the scalar versions: dequantization is one rounding
 * of the same exact product; Q8_0's quantizer uses FCVTAS (round half away from zero, which is
 * roundf) and FMAXNM (NaN-ignoring, as fmaxf) on the same float values as quants_ref.c; F16
 * conversions are the hardware's IEEE ones (FPCR round-to-nearest-even, no flush-to-zero under
 * Linux), which agree with core/common/fp16.h on every non-NaN value. Pure functions.
 */
#include "core/kernels/cpu/quants_impl.h"

#if defined(__aarch64__)

bool mlxr_quant_neon_dotprod(void) {
#if defined(__ARM_FEATURE_DOTPROD)
  return true;
#else
  return false;
#endif
}

/* ---------------------------------------------------------------- F32 */

void mlxr_quant_f32_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const float *a = x, *b = y;
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
    s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; i++) sum += a[i] * b[i];
  *out = sum;
}

/* ---------------------------------------------------------------- F16 */

void mlxr_quant_f16_to_float_neon(const void *src, float *dst, int64_t n) {
  const mlxr_f16 *h = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    vst1q_f32(dst + i, mlxr_neon_f16x4(h + i));
    vst1q_f32(dst + i + 4, mlxr_neon_f16x4(h + i + 4));
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, mlxr_neon_f16x4(h + i));
  for (; i < n; i++) dst[i] = mlxr_f16_to_f32(h[i]);
}

void mlxr_quant_f16_from_float_neon(const float *src, void *dst, int64_t n) {
  mlxr_f16 *h = dst;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1_u16(h + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
  }
  for (; i < n; i++) h[i] = mlxr_f32_to_f16(src[i]);
}

void mlxr_quant_f16_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_f16 *a = x;
  const float *b = y;
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vfmaq_f32(s0, mlxr_neon_f16x4(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, mlxr_neon_f16x4(a + i + 4), vld1q_f32(b + i + 4));
    s2 = vfmaq_f32(s2, mlxr_neon_f16x4(a + i + 8), vld1q_f32(b + i + 8));
    s3 = vfmaq_f32(s3, mlxr_neon_f16x4(a + i + 12), vld1q_f32(b + i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, mlxr_neon_f16x4(a + i), vld1q_f32(b + i));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; i++) sum += mlxr_f16_to_f32(a[i]) * b[i];
  *out = sum;
}

/* ---------------------------------------------------------------- BF16 */

static inline float32x4_t bf16x4(const mlxr_bf16 *p) {
  return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}

/* 4 floats -> 4 bf16, rounding to nearest even; NaN keeps its top bits and is made quiet
 * (the same integer recipe as mlxr_f32_to_bf16). */
static inline uint16x4_t f32x4_to_bf16(float32x4_t v) {
  const uint32x4_t x = vreinterpretq_u32_f32(v);
  const uint32x4_t is_nan = vcgtq_u32(vandq_u32(x, vdupq_n_u32(0x7fffffffu)), vdupq_n_u32(0x7f800000u));
  const uint32x4_t lsb = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
  const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(vaddq_u32(x, vdupq_n_u32(0x7fffu)), lsb), 16);
  const uint32x4_t nan = vorrq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(0x40u));
  return vmovn_u32(vbslq_u32(is_nan, nan, rounded));
}

void mlxr_quant_bf16_to_float_neon(const void *src, float *dst, int64_t n) {
  const mlxr_bf16 *h = src;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, bf16x4(h + i));
  for (; i < n; i++) dst[i] = mlxr_bf16_to_f32(h[i]);
}

void mlxr_quant_bf16_from_float_neon(const float *src, void *dst, int64_t n) {
  mlxr_bf16 *h = dst;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(h + i, f32x4_to_bf16(vld1q_f32(src + i)));
  for (; i < n; i++) h[i] = mlxr_f32_to_bf16(src[i]);
}

void mlxr_quant_bf16_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_bf16 *a = x;
  const float *b = y;
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vfmaq_f32(s0, bf16x4(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, bf16x4(a + i + 4), vld1q_f32(b + i + 4));
    s2 = vfmaq_f32(s2, bf16x4(a + i + 8), vld1q_f32(b + i + 8));
    s3 = vfmaq_f32(s3, bf16x4(a + i + 12), vld1q_f32(b + i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, bf16x4(a + i), vld1q_f32(b + i));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; i++) sum += mlxr_bf16_to_f32(a[i]) * b[i];
  *out = sum;
}

/* ---------------------------------------------------------------- Q4_0 */

void mlxr_quant_q4_0_to_float_neon(const void *src, float *dst, int64_t n) {
  const mlxr_block_q4_0 *b = src;
  const int8x16_t eight = vdupq_n_s8(8);
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    int8x16_t lo, hi;
    mlxr_neon_nibbles(b[i].qs, &lo, &hi);
    const float d = mlxr_f16_to_f32(b[i].d);
    mlxr_neon_store_i8_scaled(vsubq_s8(lo, eight), d, dst);
    mlxr_neon_store_i8_scaled(vsubq_s8(hi, eight), d, dst + 16);
  }
}

void mlxr_quant_q4_0_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  const int64_t nb = n / MLXR_QK;
  const int8x16_t eight = vdupq_n_s8(8);
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    int8x16_t l0, h0, l1, h1;
    mlxr_neon_nibbles(a[i].qs, &l0, &h0);
    mlxr_neon_nibbles(a[i + 1].qs, &l1, &h1);
    int32x4_t p0 = mlxr_neon_dot(vdupq_n_s32(0), vsubq_s8(l0, eight), vld1q_s8(b[i].qs));
    p0 = mlxr_neon_dot(p0, vsubq_s8(h0, eight), vld1q_s8(b[i].qs + 16));
    int32x4_t p1 = mlxr_neon_dot(vdupq_n_s32(0), vsubq_s8(l1, eight), vld1q_s8(b[i + 1].qs));
    p1 = mlxr_neon_dot(p1, vsubq_s8(h1, eight), vld1q_s8(b[i + 1].qs + 16));
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), mlxr_f16_to_f32(a[i].d) * mlxr_f16_to_f32(b[i].d));
    acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(p1), mlxr_f16_to_f32(a[i + 1].d) * mlxr_f16_to_f32(b[i + 1].d));
  }
  for (; i < nb; i++) {
    int8x16_t l0, h0;
    mlxr_neon_nibbles(a[i].qs, &l0, &h0);
    int32x4_t p0 = mlxr_neon_dot(vdupq_n_s32(0), vsubq_s8(l0, eight), vld1q_s8(b[i].qs));
    p0 = mlxr_neon_dot(p0, vsubq_s8(h0, eight), vld1q_s8(b[i].qs + 16));
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), mlxr_f16_to_f32(a[i].d) * mlxr_f16_to_f32(b[i].d));
  }
  *out = vaddvq_f32(vaddq_f32(acc0, acc1));
}

/* ---------------------------------------------------------------- Q4_1 */

void mlxr_quant_q4_1_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_1 *a = x;
  const mlxr_block_q8_0 *b = y;
  float32x4_t acc = vdupq_n_f32(0.0f);
  float accm = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    int8x16_t lo, hi;
    mlxr_neon_nibbles(a[i].qs, &lo, &hi);
    const int8x16_t y0 = vld1q_s8(b[i].qs), y1 = vld1q_s8(b[i].qs + 16);
    int32x4_t p = mlxr_neon_dot(vdupq_n_s32(0), lo, y0);
    p = mlxr_neon_dot(p, hi, y1);
    const float dy = mlxr_f16_to_f32(b[i].d);
    const int ysum = vaddlvq_s8(y0) + vaddlvq_s8(y1);
    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(p), mlxr_f16_to_f32(a[i].d) * dy);
    accm += mlxr_f16_to_f32(a[i].m) * dy * (float)ysum;
  }
  *out = vaddvq_f32(acc) + accm;
}

/* ---------------------------------------------------------------- Q5_0 / Q5_1 */

/* The 5th bits of a Q5 block as 0x10 bytes: elems 0..15 in *lo, 16..31 in *hi. */
static inline void q5_high_bits(const uint8_t *qh, uint8x16_t *lo, uint8x16_t *hi) {
  static const uint8_t bit_of[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t pick = vld1q_u8(bit_of), b4 = vdupq_n_u8(0x10);
  const uint8x16_t v01 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
  const uint8x16_t v23 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
  *lo = vandq_u8(vtstq_u8(v01, pick), b4);
  *hi = vandq_u8(vtstq_u8(v23, pick), b4);
}

void mlxr_quant_q5_0_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  const int8x16_t sixteen = vdupq_n_s8(16);
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    int8x16_t lo, hi;
    uint8x16_t hlo, hhi;
    mlxr_neon_nibbles(a[i].qs, &lo, &hi);
    q5_high_bits(a[i].qh, &hlo, &hhi);
    const int8x16_t q0 = vsubq_s8(vorrq_s8(lo, vreinterpretq_s8_u8(hlo)), sixteen);
    const int8x16_t q1 = vsubq_s8(vorrq_s8(hi, vreinterpretq_s8_u8(hhi)), sixteen);
    int32x4_t p = mlxr_neon_dot(vdupq_n_s32(0), q0, vld1q_s8(b[i].qs));
    p = mlxr_neon_dot(p, q1, vld1q_s8(b[i].qs + 16));
    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(p), mlxr_f16_to_f32(a[i].d) * mlxr_f16_to_f32(b[i].d));
  }
  *out = vaddvq_f32(acc);
}

void mlxr_quant_q5_1_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_1 *a = x;
  const mlxr_block_q8_0 *b = y;
  float32x4_t acc = vdupq_n_f32(0.0f);
  float accm = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    int8x16_t lo, hi;
    uint8x16_t hlo, hhi;
    mlxr_neon_nibbles(a[i].qs, &lo, &hi);
    q5_high_bits(a[i].qh, &hlo, &hhi);
    const int8x16_t q0 = vorrq_s8(lo, vreinterpretq_s8_u8(hlo));
    const int8x16_t q1 = vorrq_s8(hi, vreinterpretq_s8_u8(hhi));
    const int8x16_t y0 = vld1q_s8(b[i].qs), y1 = vld1q_s8(b[i].qs + 16);
    int32x4_t p = mlxr_neon_dot(vdupq_n_s32(0), q0, y0);
    p = mlxr_neon_dot(p, q1, y1);
    const float dy = mlxr_f16_to_f32(b[i].d);
    const int ysum = vaddlvq_s8(y0) + vaddlvq_s8(y1);
    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(p), mlxr_f16_to_f32(a[i].d) * dy);
    accm += mlxr_f16_to_f32(a[i].m) * dy * (float)ysum;
  }
  *out = vaddvq_f32(acc) + accm;
}

/* ---------------------------------------------------------------- Q8_0 */

void mlxr_quant_q8_0_to_float_neon(const void *src, float *dst, int64_t n) {
  const mlxr_block_q8_0 *b = src;
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const float d = mlxr_f16_to_f32(b[i].d);
    mlxr_neon_store_i8_scaled(vld1q_s8(b[i].qs), d, dst);
    mlxr_neon_store_i8_scaled(vld1q_s8(b[i].qs + 16), d, dst + 16);
  }
}

void mlxr_quant_q8_0_from_float_neon(const float *src, void *dst, int64_t n) {
  mlxr_block_q8_0 *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK; i++, src += MLXR_QK) {
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int k = 0; k < 8; k++) {
      v[k] = vld1q_f32(src + 4 * k);
      m = vmaxnmq_f32(m, vabsq_f32(v[k]));
    }
    const float amax = vmaxnmvq_f32(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = mlxr_f32_to_f16(d);
    int16x8_t h[4];
    for (int k = 0; k < 4; k++) {
      /* FCVTAS: round to nearest, ties away from zero = roundf */
      const int32x4_t q0 = vcvtaq_s32_f32(vmulq_n_f32(v[2 * k], id));
      const int32x4_t q1 = vcvtaq_s32_f32(vmulq_n_f32(v[2 * k + 1], id));
      h[k] = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
    }
    vst1q_s8(b[i].qs, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
    vst1q_s8(b[i].qs + 16, vcombine_s8(vmovn_s16(h[2]), vmovn_s16(h[3])));
  }
}

void mlxr_quant_q8_0_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q8_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  const int64_t nb = n / MLXR_QK;
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    int32x4_t p0 = mlxr_neon_dot(vdupq_n_s32(0), vld1q_s8(a[i].qs), vld1q_s8(b[i].qs));
    p0 = mlxr_neon_dot(p0, vld1q_s8(a[i].qs + 16), vld1q_s8(b[i].qs + 16));
    int32x4_t p1 = mlxr_neon_dot(vdupq_n_s32(0), vld1q_s8(a[i + 1].qs), vld1q_s8(b[i + 1].qs));
    p1 = mlxr_neon_dot(p1, vld1q_s8(a[i + 1].qs + 16), vld1q_s8(b[i + 1].qs + 16));
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), mlxr_f16_to_f32(a[i].d) * mlxr_f16_to_f32(b[i].d));
    acc1 = vfmaq_n_f32(acc1, vcvtq_f32_s32(p1), mlxr_f16_to_f32(a[i + 1].d) * mlxr_f16_to_f32(b[i + 1].d));
  }
  for (; i < nb; i++) {
    int32x4_t p0 = mlxr_neon_dot(vdupq_n_s32(0), vld1q_s8(a[i].qs), vld1q_s8(b[i].qs));
    p0 = mlxr_neon_dot(p0, vld1q_s8(a[i].qs + 16), vld1q_s8(b[i].qs + 16));
    acc0 = vfmaq_n_f32(acc0, vcvtq_f32_s32(p0), mlxr_f16_to_f32(a[i].d) * mlxr_f16_to_f32(b[i].d));
  }
  *out = vaddvq_f32(vaddq_f32(acc0, acc1));
}

#endif /* __aarch64__ */
