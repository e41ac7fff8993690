/*
 * test_kernel_f16_panels.c: the P32 panels of F16 weights (core/kernels/cpu/gemm_p32_avx512.c) and the
 * CPU backend paths that use them, against a float64 reference computed here.
 *
 * The reference decodes each f16 bit pattern on its own (sign, exponent, mantissa through ldexp;
 * nothing shared with core/common/fp16.h) and sums products in double. Checks:
 *   1. repack then row decode gives back every weight bit for bit; the match check accepts the
 *      copy and rejects it after one element changes;
 *   2. the gemm equals the reference within a float32 summation bound, for awkward shapes: rows
 *      of 1, 7, 16, 33, 2053 and 4099 elements; 1, 2 and 5 groups of 32 weight rows; 1, 2, 3,
 *      11, 12, 13, 25 and 40 activation rows (the 12-row tiles, their remainders and decode);
 *   3. through the backend (AVX-512 level, repacking on): matmul with and without bias and
 *      get_rows of a 64 x 2053 F16 matrix agree with the reference, and with a backend that
 *      reads in place (no_repack), and a second view of the same bytes shares the copy.
 * On a CPU without AVX-512 the layout checks run and the kernel checks cannot: the test says which
 * feature the CPU lacks and exits 77 (skipped, check.h). On other architectures the panels do not
 * exist and the test is not built (tests/CMakeLists.txt).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/fp16.h"
#include "core/common/status.h"
#include "core/kernels/cpu/cpu_backend.h"
#include "core/kernels/cpu/quants_impl.h"
#include "core/kernels/types.h"
#include "tests/unit/check.h"

#if MLXR_QUANTS_X86
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) * 0x1.0p-53;
}

/* IEEE binary16 by definition: independent of core/common/fp16.h */
static double f16_decode(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  double v;
  if (exp == 0) v = ldexp((double)man, -24);
  else if (exp == 31) v = man ? NAN : INFINITY;
  else v = ldexp(1024.0 + man, exp - 25);
  return sign ? -v : v;
}

/* a random finite f16 in about [-2, 2] (normal and some subnormal magnitudes) */
static uint16_t f16_random(void) {
  const uint16_t sign = urand() < 0.5 ? 0x8000 : 0;
  const uint16_t exp = (uint16_t)(urand() < 0.05 ? 0 : 1 + (int)(urand() * 15));
  const uint16_t man = (uint16_t)(urand() * 1024);
  return (uint16_t)(sign | exp << 10 | man);
}

typedef struct matrix {
  int64_t n_in, n_out;
  uint16_t *w;  /* [n_out][n_in] f16 bits, the file layout */
  double *ref;  /* [n_out][n_in] decoded */
} matrix;

static matrix make_matrix(int64_t n_in, int64_t n_out) {
  matrix m = {n_in, n_out, malloc(sizeof(uint16_t) * (size_t)(n_in * n_out)),
              malloc(sizeof(double) * (size_t)(n_in * n_out))};
  for (int64_t i = 0; i < n_in * n_out; i++) {
    m.w[i] = f16_random();
    m.ref[i] = f16_decode(m.w[i]);
  }
  return m;
}

static void free_matrix(matrix *m) {
  free(m->w);
  free(m->ref);
}

/* y[r][o] within (n + 2) * 2^-24 * sum |w||y| of the float64 sum, plus bias */
static int compare(const matrix *m, const float *x, int64_t nr, const float *y, int64_t ldy,
                   const float *bias, const char *tag) {
  int bad = 0;
  for (int64_t r = 0; r < nr; r++) {
    for (int64_t o = 0; o < m->n_out; o++) {
      double s = 0.0, mag = 0.0;
      for (int64_t k = 0; k < m->n_in; k++) {
        const double p = m->ref[o * m->n_in + k] * (double)x[r * m->n_in + k];
        s += p;
        mag += fabs(p);
      }
      if (bias) {
        s += bias[o];
        mag += fabs(bias[o]);
      }
      const double tol = (double)(m->n_in + 2) * 0x1.0p-24 * mag + 1e-30;
      const double got = y[r * ldy + o];
      if (!(fabs(got - s) <= tol)) {
        if (bad++ < 3) {
          CHECK(0, "%s: n_in %lld n_out %lld nr %lld: out[%lld][%lld] = %.9g, reference %.9g (tol %.3g)",
                tag, (long long)m->n_in, (long long)m->n_out, (long long)nr, (long long)r,
                (long long)o, got, s, tol);
        }
      }
    }
  }
  return bad;
}

static float *random_rows(int64_t n) {
  float *x = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = (float)(2.0 * urand() - 1.0);
  return x;
}

static void test_layout(void) {
  const int64_t shapes[][2] = {{1, 32}, {7, 64}, {33, 32}, {2053, 96}};
  for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
    matrix m = make_matrix(shapes[s][0], shapes[s][1]);
    uint16_t *packed = malloc(sizeof(uint16_t) * (size_t)(m.n_in * m.n_out));
    mlxr_quant_p32_repack_f16(m.w, (size_t)m.n_in * 2, m.n_in, m.n_out, packed);
    CHECK(mlxr_quant_p32_matches_f16(m.w, (size_t)m.n_in * 2, m.n_in, m.n_out, packed),
          "matches after repack (%lld x %lld)", (long long)m.n_out, (long long)m.n_in);
    float *row = malloc(sizeof(float) * (size_t)m.n_in);
    int bad = 0;
    for (int64_t r = 0; r < m.n_out; r++) {
      mlxr_quant_p32_row_to_float(packed, m.n_in, r, row);
      for (int64_t k = 0; k < m.n_in; k++) {
        if ((double)row[k] != m.ref[r * m.n_in + k]) bad++;
      }
    }
    CHECK(bad == 0, "row decode of the panels differs from the weights in %d places", bad);
    const int64_t flip = (m.n_out / 2) * m.n_in + m.n_in - 1;
    m.w[flip] ^= 1;
    CHECK(!mlxr_quant_p32_matches_f16(m.w, (size_t)m.n_in * 2, m.n_in, m.n_out, packed),
          "matches must fail after a weight changed");
    free(row);
    free(packed);
    free_matrix(&m);
  }
}

static void test_gemm(void) {
  const int64_t n_ins[] = {1, 7, 16, 33, 2053, 4099};
  const int64_t n_outs[] = {32, 64, 160};
  const int64_t nrs[] = {1, 2, 3, 11, 12, 13, 25, 40};
  int cases = 0;
  for (size_t a = 0; a < sizeof(n_ins) / sizeof(n_ins[0]); a++) {
    for (size_t b = 0; b < sizeof(n_outs) / sizeof(n_outs[0]); b++) {
      matrix m = make_matrix(n_ins[a], n_outs[b]);
      uint16_t *packed = malloc(sizeof(uint16_t) * (size_t)(m.n_in * m.n_out));
      mlxr_quant_p32_repack_f16(m.w, (size_t)m.n_in * 2, m.n_in, m.n_out, packed);
      for (size_t c = 0; c < sizeof(nrs) / sizeof(nrs[0]); c++) {
        if (m.n_in > 2100 && nrs[c] > 13) continue; /* keep the float64 reference quick */
        float *x = random_rows(nrs[c] * m.n_in);
        const int64_t ldo = m.n_out + 3; /* outputs not packed back to back */
        float *y = malloc(sizeof(float) * (size_t)(nrs[c] * ldo));
        mlxr_quant_p32_gemm_f16_avx512(m.n_in, nrs[c], m.n_out / 32, packed, x, (size_t)m.n_in, y, ldo);
        compare(&m, x, nrs[c], y, ldo, NULL, "p32 gemm");
        cases++;
        free(x);
        free(y);
      }
      free(packed);
      free_matrix(&m);
    }
  }
  printf("p32 gemm: %d shapes checked\n", cases);
}

static mlxr_backend *backend(bool no_repack) {
  mlxr_cpu_backend_params p = mlxr_cpu_backend_default_params();
  p.n_threads = 3;
  p.no_repack = no_repack;
  return mlxr_cpu_backend_new(p);
}

static void test_backend(void) {
  mlxr_backend *be = backend(false), *plain = backend(true);
  CHECK(be && plain, "backends");
  if (!be || !plain) return;
  matrix m = make_matrix(2053, 64);
  mlxr_weight w = {.type = MLXR_DTYPE_F16, .n_in = m.n_in, .n_out = m.n_out,
                   .row_bytes = (size_t)m.n_in * 2, .data = m.w};
  mlxr_weight w2 = w, wp = w;
  CHECK(be->iface->weight_prepare(be, &w) == MLXR_OK, "weight_prepare");
  CHECK(w.device != NULL, "a 64-row F16 matrix is repacked at AVX-512");
  CHECK(be->iface->weight_prepare(be, &w2) == MLXR_OK && w2.device == w.device,
        "a second view of the same bytes shares the copy");
  CHECK(plain->iface->weight_prepare(plain, &wp) == MLXR_OK && wp.device == NULL,
        "no_repack reads in place");
  float bias_v[64];
  for (int i = 0; i < 64; i++) bias_v[i] = (float)(urand() - 0.5);
  const mlxr_weight bias = {.type = MLXR_DTYPE_F32, .n_in = 64, .n_out = 1, .row_bytes = 256, .data = bias_v};
  const int64_t nrs[] = {1, 5, 13};
  for (size_t c = 0; c < sizeof(nrs) / sizeof(nrs[0]); c++) {
    float *x = random_rows(nrs[c] * m.n_in);
    float *y = malloc(sizeof(float) * (size_t)(nrs[c] * 64));
    CHECK(be->iface->matmul(be, &w, NULL, x, nrs[c], y) == MLXR_OK, "matmul");
    compare(&m, x, nrs[c], y, 64, NULL, "backend matmul");
    CHECK(be->iface->matmul(be, &w, &bias, x, nrs[c], y) == MLXR_OK, "matmul + bias");
    compare(&m, x, nrs[c], y, 64, bias_v, "backend matmul + bias");
    CHECK(plain->iface->matmul(plain, &wp, &bias, x, nrs[c], y) == MLXR_OK, "in-place matmul");
    compare(&m, x, nrs[c], y, 64, bias_v, "in-place matmul + bias");
    free(x);
    free(y);
  }
  const int32_t ids[] = {0, 31, 32, 63, 17};
  float *rows = malloc(sizeof(float) * 5 * (size_t)m.n_in);
  CHECK(be->iface->get_rows(be, &w, ids, 5, rows) == MLXR_OK, "get_rows");
  int bad = 0;
  for (int r = 0; r < 5; r++) {
    for (int64_t k = 0; k < m.n_in; k++) {
      if ((double)rows[r * m.n_in + k] != m.ref[ids[r] * m.n_in + k]) bad++;
    }
  }
  CHECK(bad == 0, "get_rows of the repacked matrix differs in %d places", bad);
  free(rows);
  mlxr_backend_free(be);
  mlxr_backend_free(plain);
  free_matrix(&m);
}

#endif /* MLXR_QUANTS_X86 */

int main(void) {
#if !MLXR_QUANTS_X86
  printf("test_kernel_f16_panels: P32 panels are x86 (AVX-512) only: nothing to test here\n");
  return 77;
#else
  test_layout();
  if (!check_cpu_has("avx512", mlxr_cpu_detect_simd() == MLXR_SIMD_AVX512)) {
    check_cpu_lacks("avx512", "the P32 F16 gemm and the backend paths that use it (layout checked)");
  } else {
    test_gemm();
    test_backend();
  }
#endif
  return check_report("test_kernel_f16_panels");
}
