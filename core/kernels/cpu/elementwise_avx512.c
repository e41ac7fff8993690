/*
 * elementwise_avx512.c: the elementwise ops of the CPU backend (SwiGLU, RMSNorm, add) with
 * AVX-512F, for the backend to run on each thread's slice of a prompt's activations (decode rows
 * are small enough that the plain loops in cpu_backend.c do). Tails are handled with masked
 * loads and stores, so any length works.
 *
 * SwiGLU: out = g / (1 + exp(-g)) * u, exp by range reduction to [-ln2/2, ln2/2] and a degree-6
 * polynomial scaled by 2^n (vscalefps): relative error about 2e-7, against libm expf's 1 ulp,
 * with large |g| saturating the way the exact function does (silu -> 0 or -> g).
 * RMSNorm: the sum of squares is accumulated in double (as the scalar op does), the scale is
 * applied in float. Pure functions.
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <immintrin.h>

#include "core/kernels/cpu/exp_avx512.h"
#include <math.h>


static inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

void mlxr_swiglu_avx512(const float *gate, const float *up, float *out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i), u = _mm512_maskz_loadu_ps(m, up + i);
    const __m512 e = mlxr_exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
  }
}

void mlxr_rms_norm_avx512(const float *x, const float *w, int64_t n_rows, int64_t dim, float eps,
                          float *y) {
  for (int64_t r = 0; r < n_rows; r++) {
    const float *xr = x + r * dim;
    float *yr = y + r * dim;
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < dim; i += 16) {
      const __m512 v = _mm512_maskz_loadu_ps(tail_mask(dim - i), xr + i);
      const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
      const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
      s0 = _mm512_fmadd_pd(lo, lo, s0);
      s1 = _mm512_fmadd_pd(hi, hi, s1);
    }
    const double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    const __m512 scale = _mm512_set1_ps((float)(1.0 / sqrt(ss / (double)dim + (double)eps)));
    for (int64_t i = 0; i < dim; i += 16) {
      const __mmask16 m = tail_mask(dim - i);
      const __m512 v = _mm512_maskz_loadu_ps(m, xr + i);
      _mm512_mask_storeu_ps(yr + i, m, _mm512_mul_ps(_mm512_mul_ps(v, scale), _mm512_maskz_loadu_ps(m, w + i)));
    }
  }
}

void mlxr_add_avx512(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
  }
}

#endif /* MLXR_QUANTS_X86 */
