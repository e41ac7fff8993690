/*
 * test_kernel_elementwise.c: the CPU backend's elementwise ops (rms_norm, swiglu, add) at every SIMD
 * level the machine has, with 1 and 3 threads, against float64 evaluations of their definitions,
 * on awkward sizes: lengths 1, 15, 17 and 100003 (masked tails; above the size from which the
 * AVX-512 path splits work across the pool), rms_norm rows of 1, 15, 17, 2048 and 4099 elements
 * in batches of 1, 3 and 700 rows, in place and not. SwiGLU inputs span [-100, 100] so both
 * saturated ends of silu and the exp range limits are crossed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kernels/cpu/cpu_backend.h"
#include "core/kernels/types.h"
#include "tests/unit/check.h"

static uint64_t rng = 0x13198A2E03707344ull;
static double urand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) * 0x1.0p-53;
}

static float *rand_vec(int64_t n, double lo, double hi) {
  float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  for (int64_t i = 0; i < n; i++) v[i] = (float)(lo + (hi - lo) * urand());
  return v;
}

static void test_swiglu_add(mlxr_backend *be, const char *tag) {
  const int64_t lens[] = {1, 15, 17, 100003};
  for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
    const int64_t n = lens[li];
    float *g = rand_vec(n, -100.0, 100.0), *u = rand_vec(n, -3.0, 3.0), *out = rand_vec(n, 0, 1);
    for (int64_t i = 0; i < n && i < 8; i++) g[i] = (float)((i - 4) * 0.25); /* near zero too */
    be->iface->swiglu(be, g, u, out, n);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
      const double ref = (double)g[i] / (1.0 + exp(-(double)g[i])) * (double)u[i];
      if (!(fabs(out[i] - ref) <= 1e-6 * fabs(ref) + 1e-30)) {
        if (bad++ < 3) CHECK(0, "%s swiglu n %lld [%lld]: g %g u %g -> %.9g, reference %.9g", tag, (long long)n,
                             (long long)i, g[i], u[i], out[i], ref);
      }
    }
    float *y = rand_vec(n, -1, 1), *y0 = malloc(sizeof(float) * (size_t)n);
    memcpy(y0, y, sizeof(float) * (size_t)n);
    be->iface->add(be, y, u, n);
    bad = 0;
    for (int64_t i = 0; i < n; i++) bad += y[i] != (float)((double)y0[i] + (double)u[i]);
    CHECK(bad == 0, "%s add n %lld: %d elements differ from the exact rounded sum", tag, (long long)n, bad);
    free(g);
    free(u);
    free(out);
    free(y);
    free(y0);
  }
}

static void test_rms_norm(mlxr_backend *be, const char *tag) {
  const int64_t dims[] = {1, 15, 17, 2048, 4099};
  const int64_t rows[] = {1, 3, 700};
  for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
    for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++) {
      const int64_t d = dims[di], nr = rows[ri];
      if (d * nr > 3000000) continue;
      float *x = rand_vec(d * nr, -4, 4), *w = rand_vec(d, -2, 2), *y = rand_vec(d * nr, 0, 1);
      float *x_copy = malloc(sizeof(float) * (size_t)(d * nr));
      memcpy(x_copy, x, sizeof(float) * (size_t)(d * nr));
      for (int in_place = 0; in_place < 2; in_place++) {
        float *dst = in_place ? x : y;
        const mlxr_weight wv = {.type = MLXR_DTYPE_F32, .n_in = d, .n_out = 1,
                                .row_bytes = sizeof(float) * (size_t)d, .data = w};
        be->iface->rms_norm(be, x, &wv, nr, d, 1e-5f, dst);
        int bad = 0;
        for (int64_t r = 0; r < nr; r++) {
          double ss = 0.0;
          for (int64_t i = 0; i < d; i++) ss += (double)x_copy[r * d + i] * x_copy[r * d + i];
          const double sc = 1.0 / sqrt(ss / (double)d + 1e-5);
          for (int64_t i = 0; i < d; i++) {
            const double ref = (double)x_copy[r * d + i] * sc * w[i];
            if (!(fabs(dst[r * d + i] - ref) <= 4e-7 * fabs(ref) + 1e-30) && bad++ < 3) {
              CHECK(0, "%s rms_norm dim %lld rows %lld%s [%lld][%lld]: %.9g, reference %.9g", tag,
                    (long long)d, (long long)nr, in_place ? " in place" : "", (long long)r, (long long)i,
                    dst[r * d + i], ref);
            }
          }
        }
      }
      free(x);
      free(x_copy);
      free(w);
      free(y);
    }
  }
}

int main(void) {
  const mlxr_simd_level best = mlxr_cpu_detect_simd();
  for (int level = 0; level <= (int)best; level++) {
    for (int threads = 1; threads <= 3; threads += 2) {
      mlxr_cpu_backend_params p = mlxr_cpu_backend_default_params();
      p.n_threads = threads;
      p.simd_level = level;
      mlxr_backend *be = mlxr_cpu_backend_new(p);
      CHECK(be != NULL, "backend");
      if (!be) continue;
      char tag[64];
      snprintf(tag, sizeof(tag), "[%s, %d threads]", mlxr_simd_level_name((mlxr_simd_level)level), threads);
      test_swiglu_add(be, tag);
      test_rms_norm(be, tag);
      mlxr_backend_free(be);
    }
  }
  return check_report("test_kernel_elementwise");
}
