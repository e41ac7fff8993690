/*
 * quants_ref_k.c: scalar reference kernels for the 256-element "K" super-block types: Q4_K, Q5_K,
 * Q6_K (weights) and Q8_K (the activation type their vec_dot takes). Layouts: quants_impl.h.
 *
 * Quantizers follow ggml's reference algorithms (the ones llama-quantize uses without an
 * importance matrix), so their error levels match llama.cpp's:
 *   Q4_K / Q5_K: each 32-element sub-block gets an affine fit x ~ s*q - m found by trying a sweep
 *     of candidate scales and solving weighted least squares for (s, m) at each ("qkx2" search,
 *     weights |x| + rms(x)); the eight scales and eight mins are then quantized to 6 bits against
 *     the block's largest, and the elements are re-quantized with the rounded scales.
 *   Q6_K: each 16-element sub-block gets a symmetric scale from a sweep around -32/max weighted by
 *     x^2 ("qx" search); the sixteen scales become int8 against the largest, elements re-quantized.
 *   Q8_K: d = max/-127 with the signed element of largest magnitude, plus per-16 sums (bsums) so
 *     vec_dot can apply the Q4_K/Q5_K mins without touching the quants again.
 * Pure functions; any thread may call them.
 */
#include "core/kernels/cpu/quants_impl.h"

/* ---------------------------------------------------------------- search helpers */

/* Affine fit of n values onto codes 0..nmax: returns the scale s, writes the codes to L and the
 * (positive) offset to *neg_min so that x ~ s*L - *neg_min. Tries nstep+1 inverse scales
 * (nmax + rmin + rdelta*k) / (max - min), fits s and min by weighted least squares for each code
 * assignment, and keeps the one with the least weighted squared error. */
static float fit_affine(int n, int nmax, const float *x, const float *w, uint8_t *L, float *neg_min,
                        uint8_t *Ltmp, float rmin, float rdelta, int nstep) {
  float lo = x[0], hi = x[0];
  float sw = w[0], swx = w[0] * x[0];
  for (int i = 1; i < n; i++) {
    lo = fminf(lo, x[i]);
    hi = fmaxf(hi, x[i]);
    sw += w[i];
    swx += w[i] * x[i];
  }
  if (lo > 0.0f) lo = 0.0f; /* the offset only ever moves values down */
  if (hi == lo) {
    memset(L, 0, (size_t)n);
    *neg_min = -lo;
    return 0.0f;
  }
  float inv = (float)nmax / (hi - lo);
  float scale = 1.0f / inv;
  float best = 0.0f;
  for (int i = 0; i < n; i++) {
    int q = mlxr_quant_nearest_int(inv * (x[i] - lo));
    q = q < 0 ? 0 : q > nmax ? nmax : q;
    L[i] = (uint8_t)q;
    float e = scale * (float)q + lo - x[i];
    best += w[i] * e * e;
  }
  for (int step = 0; step <= nstep; step++) {
    inv = (rmin + rdelta * (float)step + (float)nmax) / (hi - lo);
    float swl = 0.0f, swl2 = 0.0f, swxl = 0.0f;
    for (int i = 0; i < n; i++) {
      int q = mlxr_quant_nearest_int(inv * (x[i] - lo));
      q = q < 0 ? 0 : q > nmax ? nmax : q;
      Ltmp[i] = (uint8_t)q;
      swl += w[i] * (float)q;
      swl2 += w[i] * (float)(q * q);
      swxl += w[i] * (float)q * x[i];
    }
    const float det = sw * swl2 - swl * swl;
    if (det <= 0.0f) continue;
    float s = (sw * swxl - swx * swl) / det;
    float m = (swl2 * swx - swl * swxl) / det;
    if (m > 0.0f) { /* keep the offset non-positive: refit the scale alone */
      m = 0.0f;
      s = swxl / swl2;
    }
    float err = 0.0f;
    for (int i = 0; i < n; i++) {
      float e = s * (float)Ltmp[i] + m - x[i];
      err += w[i] * e * e;
    }
    if (err < best) {
      memcpy(L, Ltmp, (size_t)n);
      best = err;
      scale = s;
      lo = m;
    }
  }
  *neg_min = -lo;
  return scale;
}

/* Symmetric fit of n values onto codes -nmax..nmax-1 (stored as code+nmax in L), weights x^2.
 * Starts from -nmax/max (max = the signed element of largest magnitude) and tries 18 nearby
 * inverse scales, keeping the least-squares optimum. Returns the scale (may be negative). */
static float fit_symmetric(int n, int nmax, const float *x, int8_t *L) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; i++) {
    float a = fabsf(x[i]);
    if (a > amax) {
      amax = a;
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    memset(L, 0, (size_t)n);
    return 0.0f;
  }
  float best_sxl = 0.0f, best_sl2 = 0.0f;
  float scale = 0.0f;
  for (int k = 0; k <= 18; k++) {
    /* k = 0 is the plain start point; k = 1..18 are offsets -0.9..+0.9 (skipping 0) */
    const int off = k == 0 ? 0 : (k <= 9 ? k - 10 : k - 9);
    const float inv = -((float)nmax + 0.1f * (float)off) / max;
    float sxl = 0.0f, sl2 = 0.0f;
    for (int i = 0; i < n; i++) {
      int q = mlxr_quant_nearest_int(inv * x[i]);
      q = q < -nmax ? -nmax : q > nmax - 1 ? nmax - 1 : q;
      const float w = x[i] * x[i];
      sxl += w * x[i] * (float)q;
      sl2 += w * (float)(q * q);
    }
    bool take;
    if (k == 0) {
      take = true;
    } else {
      /* compare sxl^2/sl2 (the error reduction) without dividing */
      take = sl2 > 0.0f && sxl * sxl * best_sl2 > best_sxl * best_sxl * sl2;
    }
    if (take) {
      for (int i = 0; i < n; i++) {
        int q = mlxr_quant_nearest_int(inv * x[i]);
        q = q < -nmax ? -nmax : q > nmax - 1 ? nmax - 1 : q;
        L[i] = (int8_t)(q + nmax);
      }
      scale = sl2 > 0.0f ? sxl / sl2 : 0.0f;
      best_sxl = sxl;
      best_sl2 = sl2;
    }
  }
  return scale;
}

/* Quantize the eight sub-block scales and mins of a Q4_K/Q5_K block to 6 bits and pack them;
 * writes d and dmin. */
static void pack_scales_k4(const float *scales, const float *mins, uint8_t *packed, mlxr_f16 *d,
                           mlxr_f16 *dmin) {
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; j++) {
    max_scale = fmaxf(max_scale, scales[j]);
    max_min = fmaxf(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  memset(packed, 0, 12);
  for (int j = 0; j < 8; j++) {
    int ls = mlxr_quant_nearest_int(inv_scale * scales[j]);
    int lm = mlxr_quant_nearest_int(inv_min * mins[j]);
    ls = ls < 0 ? 0 : ls > 63 ? 63 : ls;
    lm = lm < 0 ? 0 : lm > 63 ? 63 : lm;
    if (j < 4) {
      packed[j] |= (uint8_t)ls;
      packed[j + 4] |= (uint8_t)lm;
    } else {
      packed[j + 4] = (uint8_t)((ls & 0x0f) | (lm & 0x0f) << 4);
      packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
      packed[j] |= (uint8_t)((lm >> 4) << 6);
    }
  }
  *d = mlxr_f32_to_f16(max_scale / 63.0f);
  *dmin = mlxr_f32_to_f16(max_min / 63.0f);
}

/* Fit and re-quantize one 256-element block for Q4_K (nmax 15) or Q5_K (nmax 31); codes to L. */
static void quantize_k4_block(const float *x, int nmax, uint8_t *L, uint8_t *packed, mlxr_f16 *d,
                              mlxr_f16 *dmin) {
  float scales[8], mins[8], w[32];
  uint8_t tmp[32];
  for (int j = 0; j < 8; j++) {
    const float *xs = x + 32 * j;
    float ss = 0.0f;
    for (int l = 0; l < 32; l++) ss += xs[l] * xs[l];
    const float rms = sqrtf(ss / 32.0f);
    for (int l = 0; l < 32; l++) w[l] = rms + fabsf(xs[l]);
    if (nmax == 15) {
      scales[j] = fit_affine(32, 15, xs, w, L + 32 * j, &mins[j], tmp, -1.0f, 0.1f, 20);
    } else {
      scales[j] = fit_affine(32, 31, xs, w, L + 32 * j, &mins[j], tmp, -0.5f, 0.1f, 15);
    }
  }
  pack_scales_k4(scales, mins, packed, d, dmin);
  const float fd = mlxr_f16_to_f32(*d), fm = mlxr_f16_to_f32(*dmin);
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    mlxr_quant_scale_min_k4(j, packed, &sc, &m);
    const float ds = fd * (float)sc;
    if (ds == 0.0f) continue;
    const float dm = fm * (float)m;
    for (int l = 0; l < 32; l++) {
      int q = mlxr_quant_nearest_int((x[32 * j + l] + dm) / ds);
      L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > nmax ? nmax : q);
    }
  }
}

/* ---------------------------------------------------------------- Q4_K */

void mlxr_quant_q4_K_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q4_K *b = src;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float d = mlxr_f16_to_f32(b[i].d), dmin = mlxr_f16_to_f32(b[i].dmin);
    for (int c = 0; c < 4; c++) {
      const uint8_t *q = b[i].qs + 32 * c;
      uint8_t sc, m;
      mlxr_quant_scale_min_k4(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * (float)sc, m1 = dmin * (float)m;
      mlxr_quant_scale_min_k4(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * (float)sc, m2 = dmin * (float)m;
      for (int l = 0; l < 32; l++) dst[l] = d1 * (float)(q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; l++) dst[l + 32] = d2 * (float)(q[l] >> 4) - m2;
      dst += 64;
    }
  }
}

void mlxr_quant_q4_K_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q4_K *b = dst;
  uint8_t L[MLXR_QK_K];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++, src += MLXR_QK_K) {
    quantize_k4_block(src, 15, L, b[i].scales, &b[i].d, &b[i].dmin);
    for (int c = 0; c < 4; c++) {
      for (int l = 0; l < 32; l++) {
        b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
      }
    }
  }
}

/* The mins part of a K4 block's dot: sum_j m_j * (sum of the 32 y quants of sub-block j). */
static int k4_min_dot(const uint8_t *scales, const int16_t *bsums) {
  int s = 0;
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    mlxr_quant_scale_min_k4(j, scales, &sc, &m);
    s += (int)m * (bsums[2 * j] + bsums[2 * j + 1]);
  }
  return s;
}

void mlxr_quant_q4_K_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_K *a = x;
  const mlxr_block_q8_K *b = y;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    int sumi = 0;
    for (int c = 0; c < 4; c++) {
      const uint8_t *q = a[i].qs + 32 * c;
      const int8_t *qy = b[i].qs + 64 * c;
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; l++) {
        s1 += (q[l] & 0x0f) * qy[l];
        s2 += (q[l] >> 4) * qy[l + 32];
      }
      uint8_t sc1, sc2, m;
      mlxr_quant_scale_min_k4(2 * c, a[i].scales, &sc1, &m);
      mlxr_quant_scale_min_k4(2 * c + 1, a[i].scales, &sc2, &m);
      sumi += sc1 * s1 + sc2 * s2;
    }
    const int mins = k4_min_dot(a[i].scales, b[i].bsums);
    sum += b[i].d * (mlxr_f16_to_f32(a[i].d) * (float)sumi - mlxr_f16_to_f32(a[i].dmin) * (float)mins);
  }
  *out = sum;
}

/* ---------------------------------------------------------------- Q5_K */

void mlxr_quant_q5_K_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q5_K *b = src;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    const float d = mlxr_f16_to_f32(b[i].d), dmin = mlxr_f16_to_f32(b[i].dmin);
    for (int c = 0; c < 4; c++) {
      const uint8_t *q = b[i].qs + 32 * c;
      const uint8_t *qh = b[i].qh;
      uint8_t sc, m;
      mlxr_quant_scale_min_k4(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * (float)sc, m1 = dmin * (float)m;
      mlxr_quant_scale_min_k4(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * (float)sc, m2 = dmin * (float)m;
      for (int l = 0; l < 32; l++) {
        dst[l] = d1 * (float)((q[l] & 0x0f) | ((qh[l] >> (2 * c)) & 1) << 4) - m1;
      }
      for (int l = 0; l < 32; l++) {
        dst[l + 32] = d2 * (float)((q[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4) - m2;
      }
      dst += 64;
    }
  }
}

void mlxr_quant_q5_K_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q5_K *b = dst;
  uint8_t L[MLXR_QK_K];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++, src += MLXR_QK_K) {
    quantize_k4_block(src, 31, L, b[i].scales, &b[i].d, &b[i].dmin);
    memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int c = 0; c < 4; c++) {
      for (int l = 0; l < 32; l++) {
        const uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        b[i].qs[32 * c + l] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
        b[i].qh[l] |= (uint8_t)((lo >> 4) << (2 * c) | (hi >> 4) << (2 * c + 1));
      }
    }
  }
}

void mlxr_quant_q5_K_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_K *a = x;
  const mlxr_block_q8_K *b = y;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    int sumi = 0;
    for (int c = 0; c < 4; c++) {
      const uint8_t *q = a[i].qs + 32 * c;
      const uint8_t *qh = a[i].qh;
      const int8_t *qy = b[i].qs + 64 * c;
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; l++) {
        s1 += ((q[l] & 0x0f) | ((qh[l] >> (2 * c)) & 1) << 4) * qy[l];
        s2 += ((q[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4) * qy[l + 32];
      }
      uint8_t sc1, sc2, m;
      mlxr_quant_scale_min_k4(2 * c, a[i].scales, &sc1, &m);
      mlxr_quant_scale_min_k4(2 * c + 1, a[i].scales, &sc2, &m);
      sumi += sc1 * s1 + sc2 * s2;
    }
    const int mins = k4_min_dot(a[i].scales, b[i].bsums);
    sum += b[i].d * (mlxr_f16_to_f32(a[i].d) * (float)sumi - mlxr_f16_to_f32(a[i].dmin) * (float)mins);
  }
  *out = sum;
}

/* ---------------------------------------------------------------- Q6_K */

/* The 256 codes (0..63) of a Q6_K block in element order. */
static void q6_unpack(const mlxr_block_q6_K *b, int8_t *q) {
  for (int h = 0; h < 2; h++) {
    const uint8_t *ql = b->ql + 64 * h;
    const uint8_t *qh = b->qh + 32 * h;
    int8_t *o = q + 128 * h;
    for (int l = 0; l < 32; l++) {
      o[l] = (int8_t)((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4);
      o[l + 32] = (int8_t)((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4);
      o[l + 64] = (int8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
      o[l + 96] = (int8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
    }
  }
}

void mlxr_quant_q6_K_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q6_K *b = src;
  int8_t q[MLXR_QK_K];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++, dst += MLXR_QK_K) {
    const float d = mlxr_f16_to_f32(b[i].d);
    q6_unpack(&b[i], q);
    for (int s = 0; s < 16; s++) {
      const float ds = d * (float)b[i].scales[s];
      for (int l = 0; l < 16; l++) dst[16 * s + l] = ds * (float)(q[16 * s + l] - 32);
    }
  }
}

void mlxr_quant_q6_K_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q6_K *b = dst;
  int8_t L[MLXR_QK_K];
  float scales[16];
  for (int64_t i = 0; i < n / MLXR_QK_K; i++, src += MLXR_QK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int s = 0; s < 16; s++) {
      scales[s] = fit_symmetric(16, 32, src + 16 * s, L + 16 * s);
      if (fabsf(scales[s]) > amax) {
        amax = fabsf(scales[s]);
        max = scales[s];
      }
    }
    if (amax < 1e-15f) {
      memset(&b[i], 0, sizeof(b[i]));
      continue;
    }
    const float inv = -128.0f / max;
    b[i].d = mlxr_f32_to_f16(1.0f / inv);
    for (int s = 0; s < 16; s++) {
      int v = mlxr_quant_nearest_int(inv * scales[s]);
      b[i].scales[s] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v);
    }
    const float d = mlxr_f16_to_f32(b[i].d);
    for (int s = 0; s < 16; s++) {
      const float ds = d * (float)b[i].scales[s];
      if (ds == 0.0f) continue;
      for (int l = 0; l < 16; l++) {
        int q = mlxr_quant_nearest_int(src[16 * s + l] / ds);
        q = q < -32 ? -32 : q > 31 ? 31 : q;
        L[16 * s + l] = (int8_t)(q + 32);
      }
    }
    for (int h = 0; h < 2; h++) {
      const int8_t *c = L + 128 * h;
      uint8_t *ql = b[i].ql + 64 * h;
      uint8_t *qh = b[i].qh + 32 * h;
      for (int l = 0; l < 32; l++) {
        ql[l] = (uint8_t)((c[l] & 0x0f) | (c[l + 64] & 0x0f) << 4);
        ql[l + 32] = (uint8_t)((c[l + 32] & 0x0f) | (c[l + 96] & 0x0f) << 4);
        qh[l] = (uint8_t)((c[l] >> 4) | (c[l + 32] >> 4) << 2 | (c[l + 64] >> 4) << 4 |
                          (c[l + 96] >> 4) << 6);
      }
    }
  }
}

void mlxr_quant_q6_K_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q6_K *a = x;
  const mlxr_block_q8_K *b = y;
  int8_t q[MLXR_QK_K];
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++) {
    q6_unpack(&a[i], q);
    int sumi = 0;
    for (int s = 0; s < 16; s++) {
      int t = 0;
      for (int l = 0; l < 16; l++) t += (q[16 * s + l] - 32) * b[i].qs[16 * s + l];
      sumi += a[i].scales[s] * t;
    }
    sum += mlxr_f16_to_f32(a[i].d) * b[i].d * (float)sumi;
  }
  *out = sum;
}

/* ---------------------------------------------------------------- Q8_K */

void mlxr_quant_q8_K_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q8_K *b = src;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++, dst += MLXR_QK_K) {
    for (int j = 0; j < MLXR_QK_K; j++) dst[j] = b[i].d * (float)b[i].qs[j];
  }
}

void mlxr_quant_q8_K_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q8_K *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK_K; i++, src += MLXR_QK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < MLXR_QK_K; j++) {
      float a = fabsf(src[j]);
      if (a > amax) {
        amax = a;
        max = src[j];
      }
    }
    if (amax == 0.0f) {
      memset(&b[i], 0, sizeof(b[i]));
      continue;
    }
    const float inv = -127.0f / max;
    for (int j = 0; j < MLXR_QK_K; j++) {
      int v = mlxr_quant_nearest_int(inv * src[j]);
      b[i].qs[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    for (int g = 0; g < 16; g++) {
      int s = 0;
      for (int l = 0; l < 16; l++) s += b[i].qs[16 * g + l];
      b[i].bsums[g] = (int16_t)s;
    }
    b[i].d = 1.0f / inv;
  }
}
