/*
 * exp_avx512.h: e^x on 16 floats with AVX-512F, for the softmax of attn_tiled_avx512.c and the
 * SwiGLU of elementwise_avx512.c. Range reduction x = n ln2 + r (ln2 split in two for accuracy),
 * a degree-6 Taylor polynomial on |r| <= ln2/2, scaled by 2^n with vscalefps: relative error about
 * 2e-7. Inputs are clamped to [-87, 88], so very negative x gives ~1e-38 rather than 0 (callers
 * that need exact zeros mask them). Include only from code compiled for AVX-512F.
 */
#ifndef MLXR_KERNELS_CPU_EXP_AVX512_H
#define MLXR_KERNELS_CPU_EXP_AVX512_H

#include <immintrin.h>

static inline __m512 mlxr_exp_avx512(__m512 x) {
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
  r = _mm512_fnmadd_ps(n, ln2_lo, r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

#endif
