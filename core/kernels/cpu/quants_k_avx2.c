/*
 * quants_k_avx2.c: AVX2 + FMA + F16C kernels for the K super-block types: vec_dot of Q4_K, Q5_K
 * and Q6_K against Q8_K activations, to_float of Q4_K and Q6_K, and the Q8_K activation quantizer
 * (it runs on every K-quant matmul, so it is vectorized too).
 *
 * vec_dot works one 256-element super-block at a time, entirely in integers until the end:
 *   Q4_K/Q5_K: the 6-bit scales and mins are unpacked with 32-bit masks (four at a time); each
 *     64-element chunk is two 32-byte code vectors (low/high nibbles, plus the 5th bit from qh for
 *     Q5_K) multiplied with the int8 activations by vpmaddubsw, then by their sub-block scale with
 *     vpmaddwd, summed in int32. The mins need no pass over the codes: sum_j m_j * (sum of y over
 *     sub-block j) comes from Q8_K's bsums. Result: dy * (d * sumi - dmin * summins).
 *   Q6_K: codes 0..63 are rebuilt from ql/qh with byte masks, multiplied unsigned by vpmaddubsw,
 *     scaled per 16 elements by vpmaddwd with the int8 scales (widened to int16), and the -32
 *     offset is removed at the end as 32 * sum_s scale_s * bsums_s.
 * Integer ranges: codes <= 63, |y| <= 127, so maddubs pairs stay under 2^15, and a super-block's
 * int32 sums stay under 2^26. to_float and from_float match the scalar versions bit for bit.
 * Pure functions; any thread may call them.
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <immintrin.h>

static inline float f16(mlxr_f16 h) { return _cvtsh_ss(h); }

static inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

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

/* sum_j m_j * (bsums[2j] + bsums[2j+1]) as 4 int32 lanes (to be summed). */
static inline __m128i k4_mins_dot(const uint8_t *m, const int16_t *bsums) {
  const __m128i b0 = _mm_loadu_si128((const __m128i *)bsums);
  const __m128i b1 = _mm_loadu_si128((const __m128i *)(bsums + 8));
  const __m128i sub = _mm_hadd_epi16(b0, b1); /* 8 sub-block sums of 32, |.| <= 4064 */
  uint64_t m8;
  memcpy(&m8, m, 8);
  const __m128i m16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8));
  return _mm_madd_epi16(sub, m16);
}

/* ---------------------------------------------------------------- Q4_K */

void mlxr_quant_q4_K_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_K *a = x;
  const mlxr_block_q8_K *b = y;
  const __m256i lo4 = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  __m128 accm = _mm_setzero_ps();
  uint8_t sc[8], m[8];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float dy = b[i].d;
    unpack_k4_scales(a[i].scales, sc, m);
    const __m128i mins = k4_mins_dot(m, b[i].bsums);
    accm = _mm_fmadd_ps(_mm_set1_ps(dy * f16(a[i].dmin)), _mm_cvtepi32_ps(mins), accm);

    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c));
      const __m256i qlo = _mm256_and_si256(q, lo4);
      const __m256i qhi = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
      const __m256i y0 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * c));
      const __m256i y1 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * c + 32));
      const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(qlo, y0), _mm256_set1_epi16(sc[2 * c]));
      const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(qhi, y1), _mm256_set1_epi16(sc[2 * c + 1]));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * f16(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  __m128 m4 = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
  m4 = _mm_add_ss(m4, _mm_movehdup_ps(m4));
  *out = hsum_ps(acc) - _mm_cvtss_f32(m4);
}

void mlxr_quant_q4_K_to_float_avx2(const void *src, float *dst, int64_t n) {
  const mlxr_block_q4_K *b = src;
  const __m256i lo4 = _mm256_set1_epi8(0x0f);
  uint8_t sc[8], m[8];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float d = f16(b[i].d), dmin = f16(b[i].dmin);
    unpack_k4_scales(b[i].scales, sc, m);
    for (int c = 0; c < 4; c++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * c));
      for (int half = 0; half < 2; half++) {
        const __m256i v = half == 0 ? _mm256_and_si256(q, lo4)
                                    : _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
        const __m256 ds = _mm256_set1_ps(d * (float)sc[2 * c + half]);
        const __m256 ms = _mm256_set1_ps(-(dmin * (float)m[2 * c + half]));
        const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int k = 0; k < 4; k++) {
          const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
          _mm256_storeu_ps(dst + 8 * k, _mm256_fmadd_ps(ds, f, ms));
        }
        dst += 32;
      }
    }
  }
}

/* ---------------------------------------------------------------- Q5_K */

void mlxr_quant_q5_K_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_K *a = x;
  const mlxr_block_q8_K *b = y;
  const __m256i lo4 = _mm256_set1_epi8(0x0f);
  const __m256i one = _mm256_set1_epi8(1);
  __m256 acc = _mm256_setzero_ps();
  __m128 accm = _mm_setzero_ps();
  uint8_t sc[8], m[8];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float dy = b[i].d;
    unpack_k4_scales(a[i].scales, sc, m);
    const __m128i mins = k4_mins_dot(m, b[i].bsums);
    accm = _mm_fmadd_ps(_mm_set1_ps(dy * f16(a[i].dmin)), _mm_cvtepi32_ps(mins), accm);

    const __m256i hbits = _mm256_loadu_si256((const __m256i *)a[i].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
      const __m256i q = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * c));
      /* bit 2c (2c+1) of each qh byte -> 0x10 in that byte */
      const __m256i h0 = _mm256_slli_epi16(
          _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c)), one), 4);
      const __m256i h1 = _mm256_slli_epi16(
          _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c + 1)), one), 4);
      const __m256i qlo = _mm256_or_si256(_mm256_and_si256(q, lo4), h0);
      const __m256i qhi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), lo4), h1);
      const __m256i y0 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * c));
      const __m256i y1 = _mm256_loadu_si256((const __m256i *)(b[i].qs + 64 * c + 32));
      const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(qlo, y0), _mm256_set1_epi16(sc[2 * c]));
      const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(qhi, y1), _mm256_set1_epi16(sc[2 * c + 1]));
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * f16(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  __m128 m4 = _mm_add_ps(accm, _mm_movehl_ps(accm, accm));
  m4 = _mm_add_ss(m4, _mm_movehdup_ps(m4));
  *out = hsum_ps(acc) - _mm_cvtss_f32(m4);
}

/* ---------------------------------------------------------------- Q6_K */

/* The 128 codes (0..63) of half h of a Q6_K block as four 32-byte vectors: elements
 * [0,32), [32,64), [64,96), [96,128) of the half. */
static inline void q6_codes(const mlxr_block_q6_K *b, int h, __m256i out[4]) {
  const __m256i lo4 = _mm256_set1_epi8(0x0f);
  const __m256i top2 = _mm256_set1_epi8(0x30);
  const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
  const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
  const __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
  out[0] = _mm256_or_si256(_mm256_and_si256(ql0, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2));
  out[1] = _mm256_or_si256(_mm256_and_si256(ql1, lo4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2));
  out[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), lo4), _mm256_and_si256(qh, top2));
  out[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), lo4),
                           _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2));
}

void mlxr_quant_q6_K_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q6_K *a = x;
  const mlxr_block_q8_K *b = y;
  /* for 32-element group g of a half, lanes 0-3 of the duplicated-scale vector pick sub-block 2g
   * and lanes 4-7 sub-block 2g+1 (see the unpack below) */
  const __m256i pick[4] = {
      _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
      _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7)};
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
    /* each int32 lane holds one scale twice (int16 pair); put sub-blocks 0..7 of half 0 and 8..15
     * of half 1 in lanes 0..7 of their own vector */
    const __m256i dup_lo = _mm256_unpacklo_epi16(sc16, sc16); /* lanes: s0..s3 | s8..s11 */
    const __m256i dup_hi = _mm256_unpackhi_epi16(sc16, sc16); /* lanes: s4..s7 | s12..s15 */
    const __m256i half_sc[2] = {_mm256_permute2x128_si256(dup_lo, dup_hi, 0x20),  /* s0..s7 */
                                _mm256_permute2x128_si256(dup_lo, dup_hi, 0x31)}; /* s8..s15 */
    const __m256i bs = _mm256_loadu_si256((const __m256i *)b[i].bsums);
    /* the -32 offset: 32 * sum_s scale_s * bsums_s */
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5));
    for (int h = 0; h < 2; h++) {
      __m256i q[4];
      q6_codes(&a[i], h, q);
      for (int g = 0; g < 4; g++) {
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(b[i].qs + 128 * h + 32 * g));
        const __m256i scv = _mm256_permutevar8x32_epi32(half_sc[h], pick[g]);
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[g], qy), scv));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(b[i].d * f16(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  *out = hsum_ps(acc);
}

void mlxr_quant_q6_K_to_float_avx2(const void *src, float *dst, int64_t n) {
  const mlxr_block_q6_K *b = src;
  const __m256i off = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float d = f16(b[i].d);
    for (int h = 0; h < 2; h++) {
      __m256i q[4];
      q6_codes(&b[i], h, q);
      for (int g = 0; g < 4; g++) {
        const __m256i v = _mm256_sub_epi8(q[g], off);
        const int s = 8 * h + 2 * g;
        const __m256 ds0 = _mm256_set1_ps(d * (float)b[i].scales[s]);
        const __m256 ds1 = _mm256_set1_ps(d * (float)b[i].scales[s + 1]);
        const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
        _mm256_storeu_ps(dst + 0, _mm256_mul_ps(ds0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
        _mm256_storeu_ps(dst + 8, _mm256_mul_ps(ds0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
        _mm256_storeu_ps(dst + 16, _mm256_mul_ps(ds1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
        _mm256_storeu_ps(dst + 24, _mm256_mul_ps(ds1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
        dst += 32;
      }
    }
  }
}

/* ---------------------------------------------------------------- Q8_K */

void mlxr_quant_q8_K_from_float_avx2(const float *src, void *dst, int64_t n) {
  mlxr_block_q8_K *b = dst;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < n / MLXR_QK_K; i++, src += MLXR_QK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < MLXR_QK_K; k += 8) m = _mm256_max_ps(m, _mm256_and_ps(_mm256_loadu_ps(src + k), abs_mask));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    if (amax == 0.0f) {
      memset(&b[i], 0, sizeof(b[i]));
      continue;
    }
    /* the first element whose magnitude is amax, with its sign (as the scalar version picks) */
    float max = amax;
    const __m256 vamax = _mm256_set1_ps(amax);
    for (int k = 0; k < MLXR_QK_K; k += 8) {
      const __m256 eq = _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(src + k), abs_mask), vamax, _CMP_EQ_OQ);
      const int mask = _mm256_movemask_ps(eq);
      if (mask) {
        max = src[k + __builtin_ctz((unsigned)mask)];
        break;
      }
    }
    const float inv = -127.0f / max;
    const __m256 vinv = _mm256_set1_ps(inv);
    const __m256i hi = _mm256_set1_epi32(127), lo = _mm256_set1_epi32(-127);
    for (int k = 0; k < MLXR_QK_K; k += 32) {
      __m256i v[4];
      for (int t = 0; t < 4; t++) {
        const __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + k + 8 * t), vinv));
        v[t] = _mm256_max_epi32(_mm256_min_epi32(r, hi), lo);
      }
      const __m256i p01 = _mm256_packs_epi32(v[0], v[1]);
      const __m256i p23 = _mm256_packs_epi32(v[2], v[3]);
      const __m256i p = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23),
                                                    _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256((__m256i *)(b[i].qs + k), p);
      /* bsums of the two 16-element groups in these 32 */
      const __m256i g0 = _mm256_add_epi32(v[0], v[1]), g1 = _mm256_add_epi32(v[2], v[3]);
      __m256i hsum = _mm256_hadd_epi32(g0, g1);
      hsum = _mm256_hadd_epi32(hsum, hsum);
      const __m128i r = _mm_add_epi32(_mm256_castsi256_si128(hsum), _mm256_extracti128_si256(hsum, 1));
      b[i].bsums[k / 16] = (int16_t)_mm_cvtsi128_si32(r);
      b[i].bsums[k / 16 + 1] = (int16_t)_mm_extract_epi32(r, 1);
    }
    b[i].d = 1.0f / inv;
  }
}

#endif /* MLXR_QUANTS_X86 */
