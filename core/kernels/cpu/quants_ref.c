/*
 * quants_ref.c: scalar reference kernels for the plain float types (F32, F16, BF16) and the
 * 32-element "legacy" quant blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
 *
 * These are the definition of correct behaviour: the SIMD versions in quants_avx2.c are tested
 * against them, and they run on CPUs without AVX2. Layouts are described in quants_impl.h.
 *
 * Quantizers follow ggml's reference ("_ref") algorithms so files we write load unchanged in
 * llama.cpp and error levels match: Q4_0/Q5_0 scale by the signed element of largest magnitude
 * (d = max / -8 or -16, so that element lands exactly on the code 0); Q4_1/Q5_1 map [min, max] onto
 * [0, 15] or [0, 31]; Q8_0/Q8_1 use d = amax / 127 with round-half-away-from-zero.
 *
 * vec_dot of every legacy type takes Q8_0 activations: the integer products of one block are
 * summed exactly, then scaled once by dx * dy (plus mx * dy * sum(qy) for the types with an
 * offset). Pure functions of their arguments; any thread may call them.
 */
#include <float.h>

#include "core/kernels/cpu/quants_impl.h"

/* ---------------------------------------------------------------- F32 / F16 / BF16 */

void mlxr_quant_f32_to_float(const void *src, float *dst, int64_t n) {
  memcpy(dst, src, (size_t)n * sizeof(float));
}

void mlxr_quant_f32_from_float(const float *src, void *dst, int64_t n) {
  memcpy(dst, src, (size_t)n * sizeof(float));
}

void mlxr_quant_f32_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const float *a = x, *b = y;
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) sum += (double)a[i] * (double)b[i];
  *out = (float)sum;
}

void mlxr_quant_f16_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_f16 *h = src;
  for (int64_t i = 0; i < n; i++) dst[i] = mlxr_f16_to_f32(h[i]);
}

void mlxr_quant_f16_from_float(const float *src, void *dst, int64_t n) {
  mlxr_f16 *h = dst;
  for (int64_t i = 0; i < n; i++) h[i] = mlxr_f32_to_f16(src[i]);
}

void mlxr_quant_f16_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_f16 *a = x;
  const float *b = y;
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) sum += (double)mlxr_f16_to_f32(a[i]) * (double)b[i];
  *out = (float)sum;
}

void mlxr_quant_bf16_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_bf16 *h = src;
  for (int64_t i = 0; i < n; i++) dst[i] = mlxr_bf16_to_f32(h[i]);
}

void mlxr_quant_bf16_from_float(const float *src, void *dst, int64_t n) {
  mlxr_bf16 *h = dst;
  for (int64_t i = 0; i < n; i++) h[i] = mlxr_f32_to_bf16(src[i]);
}

void mlxr_quant_bf16_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_bf16 *a = x;
  const float *b = y;
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) sum += (double)mlxr_bf16_to_f32(a[i]) * (double)b[i];
  *out = (float)sum;
}

/* ---------------------------------------------------------------- helpers */

/* The element of largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; j++) {
    float a = fabsf(x[j]);
    if (a > amax) {
      amax = a;
      max = x[j];
    }
  }
  return max;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int j = 0; j < n; j++) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  *mn = lo;
  *mx = hi;
}

/* floor(v) clamped to [0, hi]; v is a scaled, offset value (NaN counts as 0). */
static uint8_t clamp_code(float v, int hi) {
  if (!(v > 0.0f)) return 0;
  if (v >= (float)hi) return (uint8_t)hi;
  return (uint8_t)(int)v;
}

static uint32_t load_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_u32le(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Sum of the 32 int8 quants of an activation block. */
static int sum_q8(const int8_t *q) {
  int s = 0;
  for (int j = 0; j < MLXR_QK; j++) s += q[j];
  return s;
}

/* ---------------------------------------------------------------- Q4_0 */

void mlxr_quant_q4_0_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q4_0 *b = src;
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const float d = mlxr_f16_to_f32(b[i].d);
    for (int j = 0; j < 16; j++) {
      dst[j] = (float)((b[i].qs[j] & 0x0f) - 8) * d;
      dst[j + 16] = (float)((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void mlxr_quant_q4_0_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q4_0 *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK; i++, src += MLXR_QK) {
    const float d = signed_absmax(src, MLXR_QK) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = mlxr_f32_to_f16(d);
    for (int j = 0; j < 16; j++) {
      uint8_t lo = clamp_code(src[j] * id + 8.5f, 15);
      uint8_t hi = clamp_code(src[j + 16] * id + 8.5f, 15);
      b[i].qs[j] = (uint8_t)(lo | hi << 4);
    }
  }
}

void mlxr_quant_q4_0_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    int s = 0;
    for (int j = 0; j < 16; j++) {
      s += ((a[i].qs[j] & 0x0f) - 8) * b[i].qs[j];
      s += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
    }
    sum += (float)s * (mlxr_f16_to_f32(a[i].d) * mlxr_f16_to_f32(b[i].d));
  }
  *out = sum;
}

/* ---------------------------------------------------------------- Q4_1 */

void mlxr_quant_q4_1_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q4_1 *b = src;
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const float d = mlxr_f16_to_f32(b[i].d), m = mlxr_f16_to_f32(b[i].m);
    for (int j = 0; j < 16; j++) {
      dst[j] = (float)(b[i].qs[j] & 0x0f) * d + m;
      dst[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void mlxr_quant_q4_1_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q4_1 *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK; i++, src += MLXR_QK) {
    float mn, mx;
    min_max(src, MLXR_QK, &mn, &mx);
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = mlxr_f32_to_f16(d);
    b[i].m = mlxr_f32_to_f16(mn);
    for (int j = 0; j < 16; j++) {
      uint8_t lo = clamp_code((src[j] - mn) * id + 0.5f, 15);
      uint8_t hi = clamp_code((src[j + 16] - mn) * id + 0.5f, 15);
      b[i].qs[j] = (uint8_t)(lo | hi << 4);
    }
  }
}

void mlxr_quant_q4_1_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q4_1 *a = x;
  const mlxr_block_q8_0 *b = y;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    int s = 0;
    for (int j = 0; j < 16; j++) {
      s += (a[i].qs[j] & 0x0f) * b[i].qs[j];
      s += (a[i].qs[j] >> 4) * b[i].qs[j + 16];
    }
    const float dy = mlxr_f16_to_f32(b[i].d);
    sum += (float)s * (mlxr_f16_to_f32(a[i].d) * dy) +
           (float)sum_q8(b[i].qs) * (mlxr_f16_to_f32(a[i].m) * dy);
  }
  *out = sum;
}

/* ---------------------------------------------------------------- Q5_0 */

void mlxr_quant_q5_0_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q5_0 *b = src;
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const float d = mlxr_f16_to_f32(b[i].d);
    const uint32_t qh = load_u32le(b[i].qh);
    for (int j = 0; j < 16; j++) {
      int lo = (b[i].qs[j] & 0x0f) | (int)((qh >> j) & 1u) << 4;
      int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
      dst[j] = (float)(lo - 16) * d;
      dst[j + 16] = (float)(hi - 16) * d;
    }
  }
}

void mlxr_quant_q5_0_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q5_0 *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK; i++, src += MLXR_QK) {
    const float d = signed_absmax(src, MLXR_QK) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = mlxr_f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
      uint8_t lo = clamp_code(src[j] * id + 16.5f, 31);
      uint8_t hi = clamp_code(src[j + 16] * id + 16.5f, 31);
      b[i].qs[j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
      qh |= (uint32_t)(lo >> 4) << j;
      qh |= (uint32_t)(hi >> 4) << (j + 16);
    }
    store_u32le(b[i].qh, qh);
  }
}

void mlxr_quant_q5_0_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    const uint32_t qh = load_u32le(a[i].qh);
    int s = 0;
    for (int j = 0; j < 16; j++) {
      int lo = ((a[i].qs[j] & 0x0f) | (int)((qh >> j) & 1u) << 4) - 16;
      int hi = ((a[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4) - 16;
      s += lo * b[i].qs[j] + hi * b[i].qs[j + 16];
    }
    sum += (float)s * (mlxr_f16_to_f32(a[i].d) * mlxr_f16_to_f32(b[i].d));
  }
  *out = sum;
}

/* ---------------------------------------------------------------- Q5_1 */

void mlxr_quant_q5_1_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q5_1 *b = src;
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const float d = mlxr_f16_to_f32(b[i].d), m = mlxr_f16_to_f32(b[i].m);
    const uint32_t qh = load_u32le(b[i].qh);
    for (int j = 0; j < 16; j++) {
      int lo = (b[i].qs[j] & 0x0f) | (int)((qh >> j) & 1u) << 4;
      int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
      dst[j] = (float)lo * d + m;
      dst[j + 16] = (float)hi * d + m;
    }
  }
}

void mlxr_quant_q5_1_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q5_1 *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK; i++, src += MLXR_QK) {
    float mn, mx;
    min_max(src, MLXR_QK, &mn, &mx);
    const float d = (mx - mn) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = mlxr_f32_to_f16(d);
    b[i].m = mlxr_f32_to_f16(mn);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
      uint8_t lo = clamp_code((src[j] - mn) * id + 0.5f, 31);
      uint8_t hi = clamp_code((src[j + 16] - mn) * id + 0.5f, 31);
      b[i].qs[j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
      qh |= (uint32_t)(lo >> 4) << j;
      qh |= (uint32_t)(hi >> 4) << (j + 16);
    }
    store_u32le(b[i].qh, qh);
  }
}

void mlxr_quant_q5_1_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q5_1 *a = x;
  const mlxr_block_q8_0 *b = y;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    const uint32_t qh = load_u32le(a[i].qh);
    int s = 0;
    for (int j = 0; j < 16; j++) {
      int lo = (a[i].qs[j] & 0x0f) | (int)((qh >> j) & 1u) << 4;
      int hi = (a[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
      s += lo * b[i].qs[j] + hi * b[i].qs[j + 16];
    }
    const float dy = mlxr_f16_to_f32(b[i].d);
    sum += (float)s * (mlxr_f16_to_f32(a[i].d) * dy) +
           (float)sum_q8(b[i].qs) * (mlxr_f16_to_f32(a[i].m) * dy);
  }
  *out = sum;
}

/* ---------------------------------------------------------------- Q8_0 / Q8_1 */

/* amax / 127 and its reciprocal (0 for an all-zero block). */
static float q8_scale(const float *x, float *id) {
  float amax = 0.0f;
  for (int j = 0; j < MLXR_QK; j++) amax = fmaxf(amax, fabsf(x[j]));
  const float d = amax / 127.0f;
  *id = d != 0.0f ? 1.0f / d : 0.0f;
  return d;
}

void mlxr_quant_q8_0_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q8_0 *b = src;
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const float d = mlxr_f16_to_f32(b[i].d);
    for (int j = 0; j < MLXR_QK; j++) dst[j] = (float)b[i].qs[j] * d;
  }
}

void mlxr_quant_q8_0_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q8_0 *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK; i++, src += MLXR_QK) {
    float id;
    const float d = q8_scale(src, &id);
    b[i].d = mlxr_f32_to_f16(d);
    for (int j = 0; j < MLXR_QK; j++) b[i].qs[j] = (int8_t)roundf(src[j] * id);
  }
}

void mlxr_quant_q8_0_vec_dot(int64_t n, float *out, const void *x, const void *y) {
  const mlxr_block_q8_0 *a = x;
  const mlxr_block_q8_0 *b = y;
  float sum = 0.0f;
  for (int64_t i = 0; i < n / MLXR_QK; i++) {
    int s = 0;
    for (int j = 0; j < MLXR_QK; j++) s += a[i].qs[j] * b[i].qs[j];
    sum += (float)s * (mlxr_f16_to_f32(a[i].d) * mlxr_f16_to_f32(b[i].d));
  }
  *out = sum;
}

void mlxr_quant_q8_1_to_float(const void *src, float *dst, int64_t n) {
  const mlxr_block_q8_1 *b = src;
  for (int64_t i = 0; i < n / MLXR_QK; i++, dst += MLXR_QK) {
    const float d = mlxr_f16_to_f32(b[i].d);
    for (int j = 0; j < MLXR_QK; j++) dst[j] = (float)b[i].qs[j] * d;
  }
}

void mlxr_quant_q8_1_from_float(const float *src, void *dst, int64_t n) {
  mlxr_block_q8_1 *b = dst;
  for (int64_t i = 0; i < n / MLXR_QK; i++, src += MLXR_QK) {
    float id;
    const float d = q8_scale(src, &id);
    b[i].d = mlxr_f32_to_f16(d);
    for (int j = 0; j < MLXR_QK; j++) b[i].qs[j] = (int8_t)roundf(src[j] * id);
    b[i].s = mlxr_f32_to_f16((float)sum_q8(b[i].qs) * d);
  }
}
