/*
 * quants_avx2.c: AVX2 + FMA + F16C kernels for the plain float types (F32, F16, BF16) and the
 * 32-element legacy quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0). Compiled with -mavx2 -mfma -mf16c
 * (the build does that for every *_avx2.c); only ever called after mlxr_cpu_detect_simd() said
 * the CPU has them.
 *
 * The dot products never leave the integer domain inside a block: the weight codes are spread to
 * one byte each (nibbles unpacked, 5th bits expanded from a 32-bit mask), multiplied with the int8
 * activations by vpmaddubsw (unsigned x signed bytes -> int16 pair sums, exact for these ranges:
 * at most 31 * 127 * 2), widened by vpmaddwd against ones, converted to float and accumulated by
 * FMA with the block's combined scale dx * dy. Signed weights (Q4_0, Q5_0, Q8_0) go through the
 * usual sign trick: |x| (unsigned) times y * sign(x). That needs y != -128, which Q8_0 activations
 * from from_float satisfy (|q| <= 127).
 *
 * to_float and from_float produce bit-identical results to the scalar versions (each element is a
 * single rounding of the same exact value), which the tests check. Pure functions.
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <immintrin.h>

/* ---------------------------------------------------------------- helpers */

/* F16C scalar conversion: same value as mlxr_f16_to_f32 for every non-NaN input, no branches. */
static inline float f16(mlxr_f16 h) { return _cvtsh_ss(h); }

static inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* unsigned bytes x signed bytes, summed in groups of 4 -> 8 floats */
static inline __m256 dot_u8s8(__m256i ux, __m256i sy) {
  const __m256i pairs = _mm256_maddubs_epi16(ux, sy);
  return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

/* signed bytes x signed bytes (y != -128), summed in groups of 4 -> 8 floats */
static inline __m256 dot_s8s8(__m256i x, __m256i y) {
  return dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles (elems 0..15) then high (16..31). */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
  const __m128i t = _mm_loadu_si128((const __m128i *)qs);
  const __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}

/* 32 bits (LE bytes) -> 32 bytes, 0xff where the bit is set. */
static inline __m256i expand_bits(const uint8_t *qh) {
  uint32_t bits;
  memcpy(&bits, qh, 4);
  const __m256i v = _mm256_set1_epi32((int32_t)bits);
  const __m256i pick = _mm256_setr_epi64x(0x0000000000000000LL, 0x0101010101010101LL,
                                          0x0202020202020202LL, 0x0303030303030303LL);
  const __m256i bytes = _mm256_shuffle_epi8(v, pick);
  const __m256i mask = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
  return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask);
}

/* sum of 32 signed bytes, in groups of 4 -> 8 floats */
static inline __m256 sum_s8(__m256i y) { return dot_u8s8(_mm256_set1_epi8(1), y); }

/* 32 signed bytes -> 4 x 8 floats times scale. */
static inline void store_i8_scaled(__m256i q, __m256 scale, float *dst) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  _mm256_storeu_ps(dst + 0, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
  _mm256_storeu_ps(dst + 8, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
  _mm256_storeu_ps(dst + 16, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
  _mm256_storeu_ps(dst + 24, _mm256_mul_ps(scale, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

/* ---------------------------------------------------------------- F32 */

void mlxr_quant_f32_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const float *a = x, *b = y;
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) sum += a[i] * b[i];
  *out = sum;
}

/* ---------------------------------------------------------------- F16 */

void mlxr_quant_f16_to_float_avx2(const void *src, float *dst, int64_t n) {
  const mlxr_f16 *h = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
  }
  for (; i < n; i++) dst[i] = mlxr_f16_to_f32(h[i]);
}

void mlxr_quant_f16_from_float_avx2(const float *src, void *dst, int64_t n) {
  mlxr_f16 *h = dst;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i v = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128((__m128i *)(h + i), v);
  }
  for (; i < n; i++) h[i] = mlxr_f32_to_f16(src[i]);
}

void mlxr_quant_f16_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_f16 *a = x;
  const float *b = y;
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8))), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 16))), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 24))), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) {
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i))), _mm256_loadu_ps(b + i), s0);
  }
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) sum += f16(a[i]) * b[i];
  *out = sum;
}

/* ---------------------------------------------------------------- BF16 */

static inline __m256 bf16x8_to_ps(const mlxr_bf16 *p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* 8 floats -> 8 bf16 in the low 16 bits of each int32 lane (round to nearest even; NaN kept quiet) */
static inline __m256i ps_to_bf16x8(__m256 v) {
  const __m256i x = _mm256_castps_si256(v);
  const __m256i absx = _mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff));
  const __m256i is_nan = _mm256_cmpgt_epi32(absx, _mm256_set1_epi32(0x7f800000));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i nan = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, nan, is_nan);
}

void mlxr_quant_bf16_to_float_avx2(const void *src, float *dst, int64_t n) {
  const mlxr_bf16 *h = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, bf16x8_to_ps(h + i));
  for (; i < n; i++) dst[i] = mlxr_bf16_to_f32(h[i]);
}

void mlxr_quant_bf16_from_float_avx2(const float *src, void *dst, int64_t n) {
  mlxr_bf16 *h = dst;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i lo = ps_to_bf16x8(_mm256_loadu_ps(src + i));
    const __m256i hi = ps_to_bf16x8(_mm256_loadu_ps(src + i + 8));
    /* packus interleaves 128-bit lanes: (lo0-3, hi0-3 | lo4-7, hi4-7); put them back in order */
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8);
    _mm256_storeu_si256((__m256i *)(h + i), packed);
  }
  for (; i < n; i++) h[i] = mlxr_f32_to_bf16(src[i]);
}

void mlxr_quant_bf16_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_bf16 *a = x;
  const float *b = y;
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(bf16x8_to_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(bf16x8_to_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(bf16x8_to_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(bf16x8_to_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(bf16x8_to_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) sum += mlxr_bf16_to_f32(a[i]) * b[i];
  *out = sum;
}

/* ---------------------------------------------------------------- Q4_0 */

void mlxr_quant_q4_0_to_float_avx2(const void *src, float *dst, int64_t n) {
  const mlxr_block_q4_0 *b = src;
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const __m256i q = _mm256_sub_epi8(unpack_nibbles(b[i].qs), eight);
    store_i8_scaled(q, _mm256_set1_ps(f16(b[i].d)), dst);
  }
}

void mlxr_quant_q4_0_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  const int64_t nb = n / MLXR_QK;
  const __m256i eight = _mm256_set1_epi8(8);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m256i q0 = _mm256_sub_epi8(unpack_nibbles(a[i].qs), eight);
    const __m256i q1 = _mm256_sub_epi8(unpack_nibbles(a[i + 1].qs), eight);
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const __m256i y1 = _mm256_loadu_si256((const __m256i *)b[i + 1].qs);
    const __m256 d0 = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
    const __m256 d1 = _mm256_set1_ps(f16(a[i + 1].d) * f16(b[i + 1].d));
    acc0 = _mm256_fmadd_ps(d0, dot_s8s8(q0, y0), acc0);
    acc1 = _mm256_fmadd_ps(d1, dot_s8s8(q1, y1), acc1);
  }
  for (; i < nb; i++) {
    const __m256i q0 = _mm256_sub_epi8(unpack_nibbles(a[i].qs), eight);
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const __m256 d0 = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
    acc0 = _mm256_fmadd_ps(d0, dot_s8s8(q0, y0), acc0);
  }
  *out = hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---------------------------------------------------------------- Q4_1 */

void mlxr_quant_q4_1_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_1 *a = x;
  const mlxr_block_q8_0 *b = y;
  __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    const __m256i q = unpack_nibbles(a[i].qs);
    const __m256i qy = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const float dy = f16(b[i].d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(a[i].d) * dy), dot_u8s8(q, qy), acc);
    accm = _mm256_fmadd_ps(_mm256_set1_ps(f16(a[i].m) * dy), sum_s8(qy), accm);
  }
  *out = hsum_ps(_mm256_add_ps(acc, accm));
}

/* ---------------------------------------------------------------- Q5_0 / Q5_1 */

void mlxr_quant_q5_0_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    const __m256i hi = _mm256_and_si256(expand_bits(a[i].qh), bit4);
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles(a[i].qs), hi), bit4);
    const __m256i qy = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const __m256 d = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
    acc = _mm256_fmadd_ps(d, dot_s8s8(q, qy), acc);
  }
  *out = hsum_ps(acc);
}

void mlxr_quant_q5_1_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_1 *a = x;
  const mlxr_block_q8_0 *b = y;
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    const __m256i hi = _mm256_and_si256(expand_bits(a[i].qh), bit4);
    const __m256i q = _mm256_or_si256(unpack_nibbles(a[i].qs), hi);
    const __m256i qy = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const float dy = f16(b[i].d);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(a[i].d) * dy), dot_u8s8(q, qy), acc);
    accm = _mm256_fmadd_ps(_mm256_set1_ps(f16(a[i].m) * dy), sum_s8(qy), accm);
  }
  *out = hsum_ps(_mm256_add_ps(acc, accm));
}

/* ---------------------------------------------------------------- Q8_0 */

void mlxr_quant_q8_0_to_float_avx2(const void *src, float *dst, int64_t n) {
  const mlxr_block_q8_0 *b = src;
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const __m256i q = _mm256_loadu_si256((const __m256i *)b[i].qs);
    store_i8_scaled(q, _mm256_set1_ps(f16(b[i].d)), dst);
  }
}

/* roundf() on 8 lanes: round half away from zero, exactly. */
static inline __m256 round_half_away(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
  const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  const __m256 step = _mm256_and_ps(up, _mm256_or_ps(sign, _mm256_set1_ps(1.0f)));
  return _mm256_add_ps(t, step);
}

/* 4 x 8 int32 (in element order) -> 32 int8 in element order (values already in int8 range) */
static inline __m256i pack_i32x32_i8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
  const __m256i p01 = _mm256_packs_epi32(i0, i1);
  const __m256i p23 = _mm256_packs_epi32(i2, i3);
  const __m256i p = _mm256_packs_epi16(p01, p23);
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void mlxr_quant_q8_0_from_float_avx2(const float *src, void *dst, int64_t n) {
  mlxr_block_q8_0 *b = dst;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n / MLXR_QK; i++, src += MLXR_QK) {
    __m256 v0 = _mm256_loadu_ps(src), v1 = _mm256_loadu_ps(src + 8);
    __m256 v2 = _mm256_loadu_ps(src + 16), v3 = _mm256_loadu_ps(src + 24);
    __m256 m = _mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask));
    m = _mm256_max_ps(m, _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
    const float amax = hmax_ps(m);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = mlxr_f32_to_f16(d);
    const __m256 vid = _mm256_set1_ps(id);
    v0 = round_half_away(_mm256_mul_ps(v0, vid));
    v1 = round_half_away(_mm256_mul_ps(v1, vid));
    v2 = round_half_away(_mm256_mul_ps(v2, vid));
    v3 = round_half_away(_mm256_mul_ps(v3, vid));
    const __m256i q = pack_i32x32_i8(_mm256_cvttps_epi32(v0), _mm256_cvttps_epi32(v1),
                                     _mm256_cvttps_epi32(v2), _mm256_cvttps_epi32(v3));
    _mm256_storeu_si256((__m256i *)b[i].qs, q);
  }
}

void mlxr_quant_q8_0_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q8_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  const int64_t nb = n / MLXR_QK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m256i q0 = _mm256_loadu_si256((const __m256i *)a[i].qs);
    const __m256i q1 = _mm256_loadu_si256((const __m256i *)a[i + 1].qs);
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const __m256i y1 = _mm256_loadu_si256((const __m256i *)b[i + 1].qs);
    const __m256 d0 = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
    const __m256 d1 = _mm256_set1_ps(f16(a[i + 1].d) * f16(b[i + 1].d));
    acc0 = _mm256_fmadd_ps(d0, dot_s8s8(q0, y0), acc0);
    acc1 = _mm256_fmadd_ps(d1, dot_s8s8(q1, y1), acc1);
  }
  for (; i < nb; i++) {
    const __m256i q0 = _mm256_loadu_si256((const __m256i *)a[i].qs);
    const __m256i y0 = _mm256_loadu_si256((const __m256i *)b[i].qs);
    const __m256 d0 = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
    acc0 = _mm256_fmadd_ps(d0, dot_s8s8(q0, y0), acc0);
  }
  *out = hsum_ps(_mm256_add_ps(acc0, acc1));
}

#endif /* MLXR_QUANTS_X86 */
