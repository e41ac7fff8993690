/*
 * gemm_attn_avx2.c: the two inner products of the CPU attention (cpu_backend.c) with AVX2 + FMA +
 * F16C, reading the KV cache rows in place: the score q . k for an F16 or F32 key row, and
 * out += p * v for an F16 or F32 value row. Compiled with the AVX2 flags CMake gives every
 * *_avx2.c; the backend calls these only at SIMD level AVX2 or above. Pure functions.
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <immintrin.h>

static inline __m256 load8(const void *row, bool f16, int i) {
  return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const mlxr_f16 *)row + i)))
             : _mm256_loadu_ps((const float *)row + i);
}

static inline float load1(const void *row, bool f16, int i) {
  return f16 ? _cvtsh_ss(((const mlxr_f16 *)row)[i]) : ((const float *)row)[i];
}

float mlxr_attn_dot_avx2(const float *q, const void *k, bool k_f16, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8(k, k_f16, i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), load8(k, k_f16, i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8(k, k_f16, i), s0);
  const __m256 s = _mm256_add_ps(s0, s1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  float sum = _mm_cvtss_f32(h);
  for (; i < n; i++) sum += q[i] * load1(k, k_f16, i);
  return sum;
}

void mlxr_attn_axpy_avx2(float *out, float p, const void *v, bool v_f16, int n) {
  const __m256 pv = _mm256_set1_ps(p);
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, load8(v, v_f16, i), _mm256_loadu_ps(out + i)));
  }
  for (; i < n; i++) out[i] += p * load1(v, v_f16, i);
}

#endif
