/*
 * quants_k_neon.c: Arm NEON kernels (AArch64) for the K super-block types: vec_dot of Q4_K, Q5_K
 * and Q6_K against Q8_K activations, to_float of Q4_K and Q6_K, and the Q8_K activation
 * quantizer (it runs on every K-quant matmul). The NEON counterpart of quants_k_avx2.c; the
 * helpers (mlxr_neon_dot: SDOT with +dotprod, else SMULL + SADALP) are in quants_impl.h, and the
 * whole file is #if-guarded so it is empty on x86.
 *
 * vec_dot works one 256-element super-block at a time, in integers until the end:
 *   Q4_K/Q5_K: the 6-bit scales and mins are unpacked with 32-bit masks; each 32-element
 *     sub-block is two 16-byte code vectors (low or high nibbles of 32 qs bytes, plus the 5th bit
 *     from qh for Q5_K, picked by VTST), dotted with the int8 activations into one int32x4 and
 *     multiplied by the sub-block scale (MLA by scalar). The mins come from Q8_K's bsums:
 *     sum_j m_j * (bsums[2j] + bsums[2j+1]). Result: dy * (d * sumi - dmin * summins).
 *   Q6_K: codes are rebuilt from ql/qh, made signed (q - 32, in [-32, 31]) and dotted per
 *     16-element sub-block, then multiplied by that sub-block's int8 scale.
 * Integer ranges: |code| <= 63, |y| <= 127 (from_float never writes -128), |scale| <= 128, so a
 * super-block's int32 sums stay under 2^26. to_float and from_float match the scalar versions bit
 * for bit (one rounding of the same exact value per element; Q8_K rounds with FCVTNS, ties to even,
 * as mlxr_quant_nearest_int does). Pure functions; any thread may call them.
 */
#include "core/kernels/cpu/quants_impl.h"

#if defined(__aarch64__)

/* The eight 6-bit scales (sc[0..7]) and mins (m[0..7]) of a Q4_K/Q5_K block. */
static inline void unpack_k4_scales(const uint8_t *scales, uint8_t *sc, uint8_t *m) {
  uint32_t w0, w1, w2;
  memcpy(&w0, scales, 4);
  memcpy(&w1, scales + 4, 4);
  memcpy(&w2, scales + 8, 4);
  const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
  const uint32_t s0 = w0 & lo6, m0 = w1 & lo6;
  const uint32_t s1 = (w2 & lo4) | ((w0 >> 6) & lo2) << 4;
  const uint32_t m1 = ((w2 >> 4) & lo4) | ((w1 >> 6) & lo2) << 4;
  memcpy(sc, &s0, 4);
  memcpy(sc + 4, &s1, 4);
  memcpy(m, &m0, 4);
  memcpy(m + 4, &m1, 4);
}

/* sum_j m[j] * (bsums[2j] + bsums[2j+1]) */
static inline int32_t k4_mins_dot(const uint8_t *m, const int16_t *bsums) {
  const int16x8_t sub = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8)); /* |.| <= 4064 */
  const int16x8_t m16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
  const int32x4_t p = vmlal_high_s16(vmull_s16(vget_low_s16(sub), vget_low_s16(m16)), sub, m16);
  return vaddvq_s32(p);
}

/* ---------------------------------------------------------------- Q4_K */

void mlxr_quant_q4_K_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_K *a = x;
  const mlxr_block_q8_K *b = y;
  const uint8x16_t lo4 = vdupq_n_u8(0x0f);
  float sum = 0.0f;
  uint8_t sc[8], m[8];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float dy = b[i].d;
    unpack_k4_scales(a[i].scales, sc, m);
    const int32_t summins = k4_mins_dot(m, b[i].bsums);
    int32x4_t sumi = vdupq_n_s32(0);
    for (int c = 0; c < 4; c++) {
      const uint8x16_t q0 = vld1q_u8(a[i].qs + 32 * c), q1 = vld1q_u8(a[i].qs + 32 * c + 16);
      const int8_t *yq = b[i].qs + 64 * c;
      int32x4_t p0 = mlxr_neon_dot(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(q0, lo4)), vld1q_s8(yq));
      p0 = mlxr_neon_dot(p0, vreinterpretq_s8_u8(vandq_u8(q1, lo4)), vld1q_s8(yq + 16));
      int32x4_t p1 = mlxr_neon_dot(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vld1q_s8(yq + 32));
      p1 = mlxr_neon_dot(p1, vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), vld1q_s8(yq + 48));
      sumi = vmlaq_n_s32(sumi, p0, sc[2 * c]);
      sumi = vmlaq_n_s32(sumi, p1, sc[2 * c + 1]);
    }
    sum += dy * mlxr_f16_to_f32(a[i].d) * (float)vaddvq_s32(sumi) -
           dy * mlxr_f16_to_f32(a[i].dmin) * (float)summins;
  }
  *out = sum;
}

/* 16 unsigned bytes (codes) -> dst[0..15] = ds * q + ms, one rounding each (ds * q is exact). */
static inline void store_u8_affine(uint8x16_t q, float ds, float ms, float *dst) {
  const uint16x8_t lo = vmovl_u8(vget_low_u8(q)), hi = vmovl_high_u8(q);
  const float32x4_t vm = vdupq_n_f32(ms);
  vst1q_f32(dst + 0, vfmaq_n_f32(vm, vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))), ds));
  vst1q_f32(dst + 4, vfmaq_n_f32(vm, vcvtq_f32_u32(vmovl_high_u16(lo)), ds));
  vst1q_f32(dst + 8, vfmaq_n_f32(vm, vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))), ds));
  vst1q_f32(dst + 12, vfmaq_n_f32(vm, vcvtq_f32_u32(vmovl_high_u16(hi)), ds));
}

void mlxr_quant_q4_K_to_float_neon(const void *src, float *dst, int64_t n) {
  const mlxr_block_q4_K *b = src;
  const uint8x16_t lo4 = vdupq_n_u8(0x0f);
  uint8_t sc[8], m[8];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float d = mlxr_f16_to_f32(b[i].d), dmin = mlxr_f16_to_f32(b[i].dmin);
    unpack_k4_scales(b[i].scales, sc, m);
    for (int c = 0; c < 4; c++) {
      const uint8x16_t q0 = vld1q_u8(b[i].qs + 32 * c), q1 = vld1q_u8(b[i].qs + 32 * c + 16);
      /* d * sc and dmin * m are exact in float (11 x 6 bits), so d1 * q - m1 rounds once */
      const float d1 = d * (float)sc[2 * c], m1 = -(dmin * (float)m[2 * c]);
      const float d2 = d * (float)sc[2 * c + 1], m2 = -(dmin * (float)m[2 * c + 1]);
      store_u8_affine(vandq_u8(q0, lo4), d1, m1, dst);
      store_u8_affine(vandq_u8(q1, lo4), d1, m1, dst + 16);
      store_u8_affine(vshrq_n_u8(q0, 4), d2, m2, dst + 32);
      store_u8_affine(vshrq_n_u8(q1, 4), d2, m2, dst + 48);
      dst += 64;
    }
  }
}

/* ---------------------------------------------------------------- Q5_K */

void mlxr_quant_q5_K_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_K *a = x;
  const mlxr_block_q8_K *b = y;
  const uint8x16_t lo4 = vdupq_n_u8(0x0f), b4 = vdupq_n_u8(0x10);
  float sum = 0.0f;
  uint8_t sc[8], m[8];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float dy = b[i].d;
    unpack_k4_scales(a[i].scales, sc, m);
    const int32_t summins = k4_mins_dot(m, b[i].bsums);
    const uint8x16_t qh0 = vld1q_u8(a[i].qh), qh1 = vld1q_u8(a[i].qh + 16);
    int32x4_t sumi = vdupq_n_s32(0);
    for (int c = 0; c < 4; c++) {
      const uint8x16_t q0 = vld1q_u8(a[i].qs + 32 * c), q1 = vld1q_u8(a[i].qs + 32 * c + 16);
      const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * c))), bh = vdupq_n_u8((uint8_t)(2u << (2 * c)));
      /* bit 2c (2c+1) of qh[l] -> 0x10 added to elem l of the low (high) nibble sub-block */
      const uint8x16_t l0 = vorrq_u8(vandq_u8(q0, lo4), vandq_u8(vtstq_u8(qh0, bl), b4));
      const uint8x16_t l1 = vorrq_u8(vandq_u8(q1, lo4), vandq_u8(vtstq_u8(qh1, bl), b4));
      const uint8x16_t h0 = vorrq_u8(vshrq_n_u8(q0, 4), vandq_u8(vtstq_u8(qh0, bh), b4));
      const uint8x16_t h1 = vorrq_u8(vshrq_n_u8(q1, 4), vandq_u8(vtstq_u8(qh1, bh), b4));
      const int8_t *yq = b[i].qs + 64 * c;
      int32x4_t p0 = mlxr_neon_dot(vdupq_n_s32(0), vreinterpretq_s8_u8(l0), vld1q_s8(yq));
      p0 = mlxr_neon_dot(p0, vreinterpretq_s8_u8(l1), vld1q_s8(yq + 16));
      int32x4_t p1 = mlxr_neon_dot(vdupq_n_s32(0), vreinterpretq_s8_u8(h0), vld1q_s8(yq + 32));
      p1 = mlxr_neon_dot(p1, vreinterpretq_s8_u8(h1), vld1q_s8(yq + 48));
      sumi = vmlaq_n_s32(sumi, p0, sc[2 * c]);
      sumi = vmlaq_n_s32(sumi, p1, sc[2 * c + 1]);
    }
    sum += dy * mlxr_f16_to_f32(a[i].d) * (float)vaddvq_s32(sumi) -
           dy * mlxr_f16_to_f32(a[i].dmin) * (float)summins;
  }
  *out = sum;
}

/* ---------------------------------------------------------------- Q6_K */

/* The signed codes (q - 32) of half h of a Q6_K block, 16 elems per vector: out[2g + k] holds
 * elems 32g + 16k .. 32g + 16k + 15 of the half, i.e. sub-block 8h + 2g + k. */
static inline void q6_codes(const mlxr_block_q6_K *b, int h, int8x16_t out[8]) {
  const uint8x16_t lo4 = vdupq_n_u8(0x0f), three = vdupq_n_u8(3);
  const int8x16_t off = vdupq_n_s8(32);
  for (int k = 0; k < 2; k++) {
    const uint8x16_t qa = vld1q_u8(b->ql + 64 * h + 16 * k);      /* ql[l]      */
    const uint8x16_t qb = vld1q_u8(b->ql + 64 * h + 32 + 16 * k); /* ql[l + 32] */
    const uint8x16_t qh = vld1q_u8(b->qh + 32 * h + 16 * k);
    const uint8x16_t c0 = vorrq_u8(vandq_u8(qa, lo4), vshlq_n_u8(vandq_u8(qh, three), 4));
    const uint8x16_t c1 = vorrq_u8(vandq_u8(qb, lo4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 2), three), 4));
    const uint8x16_t c2 = vorrq_u8(vshrq_n_u8(qa, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(qh, 4), three), 4));
    const uint8x16_t c3 = vorrq_u8(vshrq_n_u8(qb, 4), vshlq_n_u8(vshrq_n_u8(qh, 6), 4));
    out[0 + k] = vsubq_s8(vreinterpretq_s8_u8(c0), off);
    out[2 + k] = vsubq_s8(vreinterpretq_s8_u8(c1), off);
    out[4 + k] = vsubq_s8(vreinterpretq_s8_u8(c2), off);
    out[6 + k] = vsubq_s8(vreinterpretq_s8_u8(c3), off);
  }
}

void mlxr_quant_q6_K_vec_dot_neon(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q6_K *a = x;
  const mlxr_block_q8_K *b = y;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    int32x4_t sumi = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) {
      int8x16_t q[8];
      q6_codes(&a[i], h, q);
      for (int s = 0; s < 8; s++) {
        const int32x4_t p = mlxr_neon_dot(vdupq_n_s32(0), q[s], vld1q_s8(b[i].qs + 128 * h + 16 * s));
        sumi = vmlaq_n_s32(sumi, p, a[i].scales[8 * h + s]);
      }
    }
    sum += b[i].d * mlxr_f16_to_f32(a[i].d) * (float)vaddvq_s32(sumi);
  }
  *out = sum;
}

void mlxr_quant_q6_K_to_float_neon(const void *src, float *dst, int64_t n) {
  const mlxr_block_q6_K *b = src;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float d = mlxr_f16_to_f32(b[i].d);
    for (int h = 0; h < 2; h++) {
      int8x16_t q[8];
      q6_codes(&b[i], h, q);
      for (int s = 0; s < 8; s++, dst += 16) {
        mlxr_neon_store_i8_scaled(q[s], d * (float)b[i].scales[8 * h + s], dst);
      }
    }
  }
}

/* ---------------------------------------------------------------- Q8_K */

void mlxr_quant_q8_K_from_float_neon(const float *src, void *dst, int64_t n) {
  mlxr_block_q8_K *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++, src += MLXR_QK_K) {
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int k = 0; k < MLXR_QK_K; k += 4) m = vmaxnmq_f32(m, vabsq_f32(vld1q_f32(src + k)));
    const float amax = vmaxnmvq_f32(m);
    if (amax == 0.0f) {
      memset(&b[i], 0, sizeof(b[i]));
      continue;
    }
    /* the first element whose magnitude is amax, with its sign (as the scalar version picks) */
    float max = amax;
    for (int k = 0; k < MLXR_QK_K; k++) {
      if (fabsf(src[k]) == amax) {
        max = src[k];
        break;
      }
    }
    const float inv = -127.0f / max;
    const int32x4_t hi = vdupq_n_s32(127), lo = vdupq_n_s32(-127);
    for (int g = 0; g < 16; g++) {
      int32x4_t v[4];
      for (int t = 0; t < 4; t++) {
        /* FCVTNS: round to nearest, ties to even (mlxr_quant_nearest_int) */
        const int32x4_t r = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(src + 16 * g + 4 * t), inv));
        v[t] = vmaxq_s32(vminq_s32(r, hi), lo);
      }
      const int16x8_t h0 = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
      const int16x8_t h1 = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
      vst1q_s8(b[i].qs + 16 * g, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
      b[i].bsums[g] = (int16_t)vaddvq_s32(vaddq_s32(vaddq_s32(v[0], v[1]), vaddq_s32(v[2], v[3])));
    }
    b[i].d = 1.0f / inv;
  }
}

#endif /* __aarch64__ */
