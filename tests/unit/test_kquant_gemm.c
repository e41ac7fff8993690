/*
 * test_kquant_gemm.c: the R16 K-quant prompt kernels (Q4_K, Q6_K weights x Q8_K activations):
 * AMX-INT8 (gemm_r16k_amx_avx512.c, through mlxr_quant_r16_gemm_amx) and AVX-512 VNNI
 * (mlxr_quant_r16_gemm_avx512vnni), against a float64 reference written here from the GGUF block
 * layouts (the comment at the top of core/kernels/cpu/quants_impl.h): the weights are decoded by
 * this file's own decoders, the activations are the Q8_K blocks decoded here (d * q), and every
 * product is summed in double. Awkward sizes: 1, 3, 15, 16, 17, 33 and 512 activation rows (so
 * the AMX path gets 0, 1, 2 and 32 groups of 16 plus leftovers for VNNI), 1, 2 and 5 groups of 16
 * weight rows, 1, 3, 8 and 17 super-blocks per row (the AMX kernel works in stretches of 8).
 * Weights are random bytes with small random scales; Q6_K sub-block scales cover the whole int8
 * range (-128 and 127 included), Q4_K the whole 6-bit range. The AMX and VNNI kernels are also
 * compared with each other. Without AVX512_VNNI nothing can run; without AMX-INT8 only the VNNI
 * kernel is checked. Either way the test says which feature the CPU lacks and exits 77 (skipped,
 * check.h); on other architectures these kernels do not exist and the test is not built.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/fp16.h"
#include "core/kernels/cpu/quants_impl.h"
#include "tests/unit/check.h"

#if MLXR_QUANTS_X86

typedef struct rng {
  uint64_t s;
} rng;

static uint32_t rng_u32(rng *r) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return (uint32_t)(r->s >> 16);
}

static double rng_unit(rng *r) { return (double)rng_u32(r) / 4294967296.0; }

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static double half(const uint8_t *p) { return (double)mlxr_f16_to_f32(le16(p)); }

/* Q4_K block (144 bytes): f16 d, f16 dmin, scales[12], qs[128] */
static void ref_q4k(const uint8_t *b, double *x) {
  const double d = half(b), dmin = half(b + 2);
  const uint8_t *sc = b + 4, *qs = b + 16;
  for (int j = 0; j < 8; j++) {
    int s, m;
    if (j < 4) {
      s = sc[j] & 63;
      m = sc[j + 4] & 63;
    } else {
      s = (sc[j + 4] & 15) | ((sc[j - 4] >> 6) << 4);
      m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
    }
    const int c = j / 2;
    for (int l = 0; l < 32; l++) {
      const int q = j % 2 == 0 ? qs[32 * c + l] & 15 : qs[32 * c + l] >> 4;
      x[32 * j + l] = d * s * q - dmin * m;
    }
  }
}

/* Q6_K block (210 bytes): ql[128], qh[64], int8 scales[16], f16 d */
static void ref_q6k(const uint8_t *b, double *x) {
  const double d = half(b + 208);
  for (int h = 0; h < 2; h++) {
    const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
    for (int l = 0; l < 32; l++) {
      const int q[4] = {(ql[l] & 15) | ((qh[l] & 3) << 4), (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4),
                        (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4), (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)};
      for (int t = 0; t < 4; t++) {
        const int e = 128 * h + 32 * t + l;
        x[e] = d * (int8_t)b[192 + e / 16] * (q[t] - 32);
      }
    }
  }
}

/* Q8_K block (292 bytes): f32 d, int8 qs[256], int16 bsums[16] */
static void ref_q8k(const uint8_t *b, double *x) {
  float d;
  memcpy(&d, b, 4);
  for (int i = 0; i < 256; i++) x[i] = (double)d * (int8_t)b[4 + i];
}

static void random_weights(rng *r, mlxr_dtype t, uint8_t *w, int64_t n_blocks) {
  const size_t tsz = t == MLXR_DTYPE_Q4_K ? 144 : 210;
  for (int64_t b = 0; b < n_blocks; b++) {
    uint8_t *blk = w + (size_t)b * tsz;
    for (size_t i = 0; i < tsz; i++) blk[i] = (uint8_t)rng_u32(r);
    const mlxr_f16 d = mlxr_f32_to_f16((float)((rng_unit(r) - 0.2) * 0.02));
    if (t == MLXR_DTYPE_Q4_K) {
      const mlxr_f16 dmin = mlxr_f32_to_f16((float)(rng_unit(r) * 0.01));
      memcpy(blk, &d, 2);
      memcpy(blk + 2, &dmin, 2);
    } else {
      memcpy(blk + 208, &d, 2);
      if (b % 3 == 0) {
        blk[192 + b % 16] = 0x80; /* -128 */
        blk[192 + (b + 5) % 16] = 127;
      }
    }
  }
}

typedef struct kq_case {
  mlxr_dtype t;
  int64_t nr, ngroups, nsb;
} kq_case;

static void run_case(rng *r, const kq_case *kc, bool amx, double *worst_ref, double *worst_pair) {
  const mlxr_dtype t = kc->t;
  const int64_t n = kc->nsb * MLXR_QK_K, n_out = kc->ngroups * 16, nr = kc->nr, nb = kc->nsb;
  const size_t tsz = t == MLXR_DTYPE_Q4_K ? 144 : 210, row_bytes = (size_t)nb * tsz;
  const size_t by = (size_t)nb * sizeof(mlxr_block_q8_K);
  const int cs = mlxr_quant_r16_aux_ints(t);
  uint8_t *w = malloc(row_bytes * (size_t)n_out), *packed = malloc(row_bytes * (size_t)n_out);
  float *act = malloc(sizeof(float) * (size_t)(nr * n));
  uint8_t *yq = malloc(by * (size_t)nr);
  float *yd = malloc(sizeof(float) * (size_t)(nr * nb));
  int32_t *yc = malloc(sizeof(int32_t) * (size_t)(nr * nb * cs));
  float *out_amx = malloc(sizeof(float) * (size_t)(nr * n_out)), *out_vnni = malloc(sizeof(float) * (size_t)(nr * n_out));
  double *wd = malloc(sizeof(double) * (size_t)(n_out * n)), *ydd = malloc(sizeof(double) * (size_t)(nr * n));
  if (!w || !packed || !act || !yq || !yd || !yc || !out_amx || !out_vnni || !wd || !ydd) {
    CHECK(false, "out of memory");
    goto done;
  }
  random_weights(r, t, w, n_out * nb);
  for (int64_t i = 0; i < nr * n; i++) {
    double v = (rng_unit(r) - 0.5) * 4.0;
    if (rng_u32(r) % 97 == 0) v *= 20.0; /* outliers push other quants towards 0 */
    act[i] = (float)v;
  }
  for (int64_t i = 0; i < nr; i++) {
    mlxr_quant_q8_K_from_float(act + i * n, yq + (size_t)i * by, n);
    mlxr_quant_r16_act_aux(t, yq + (size_t)i * by, n, yd + i * nb, yc + i * nb * cs);
    for (int64_t b = 0; b < nb; b++) ref_q8k(yq + (size_t)i * by + (size_t)b * 292, ydd + i * n + b * 256);
  }
  for (int64_t o = 0; o < n_out; o++) {
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *blk = w + (size_t)o * row_bytes + (size_t)b * tsz;
      if (t == MLXR_DTYPE_Q4_K) ref_q4k(blk, wd + o * n + b * 256);
      else ref_q6k(blk, wd + o * n + b * 256);
    }
  }
  mlxr_quant_r16_repack(t, w, row_bytes, n, n_out, packed);
  for (int64_t i = 0; i < nr * n_out; i++) out_amx[i] = out_vnni[i] = NAN;
  mlxr_quant_r16_gemm_avx512vnni(t, n, nr, kc->ngroups, packed, row_bytes, yq, by, yd, yc, nb, out_vnni, n_out);
  if (amx) mlxr_quant_r16_gemm_amx(t, n, nr, kc->ngroups, packed, row_bytes, yq, by, yd, yc, nb, out_amx, n_out);
  int bad_ref = 0, bad_pair = 0;
  for (int64_t i = 0; i < nr; i++) {
    for (int64_t o = 0; o < n_out; o++) {
      double ref = 0, mag = 0;
      const double *wr = wd + o * n, *yr = ydd + i * n;
      for (int64_t k = 0; k < n; k++) {
        ref += wr[k] * yr[k];
        mag += fabs(wr[k] * yr[k]);
      }
      const double tol = 2e-6 * mag + 1e-9;
      const double ev = fabs(out_vnni[i * n_out + o] - ref) / (mag + 1e-30);
      if (ev > *worst_ref) *worst_ref = ev;
      if (!(fabs(out_vnni[i * n_out + o] - ref) <= tol) && bad_ref++ < 3) {
        CHECK(false, "%s rows %lld groups %lld sb %lld: vnni [%lld][%lld] = %.9g, float64 %.9g",
              mlxr_dtype_name(t), (long long)nr, (long long)kc->ngroups, (long long)nb, (long long)i,
              (long long)o, out_vnni[i * n_out + o], ref);
      }
      if (!amx) continue;
      const double ea = fabs(out_amx[i * n_out + o] - ref) / (mag + 1e-30);
      if (ea > *worst_ref) *worst_ref = ea;
      if (!(fabs(out_amx[i * n_out + o] - ref) <= tol) && bad_ref++ < 3) {
        CHECK(false, "%s rows %lld groups %lld sb %lld: amx [%lld][%lld] = %.9g, float64 %.9g",
              mlxr_dtype_name(t), (long long)nr, (long long)kc->ngroups, (long long)nb, (long long)i,
              (long long)o, out_amx[i * n_out + o], ref);
      }
      const double ep = fabs(out_amx[i * n_out + o] - out_vnni[i * n_out + o]) / (mag + 1e-30);
      if (ep > *worst_pair) *worst_pair = ep;
      if (!(ep <= 1e-6) && bad_pair++ < 3) {
        CHECK(false, "%s rows %lld groups %lld sb %lld: amx [%lld][%lld] = %.9g, vnni %.9g",
              mlxr_dtype_name(t), (long long)nr, (long long)kc->ngroups, (long long)nb, (long long)i,
              (long long)o, out_amx[i * n_out + o], out_vnni[i * n_out + o]);
      }
    }
  }
done:
  free(w);
  free(packed);
  free(act);
  free(yq);
  free(yd);
  free(yc);
  free(out_amx);
  free(out_vnni);
  free(wd);
  free(ydd);
}

int main(void) {
  if (!check_cpu_has("avx512_vnni", mlxr_quant_cpu_has_avx512_vnni())) {
    check_cpu_lacks("avx512_vnni", "the VNNI and AMX K-quant kernels");
    return check_report("test_kquant_gemm");
  }
  const bool amx = check_cpu_has("amx_int8", mlxr_quant_cpu_amx_enable());
  if (!amx) check_cpu_lacks("amx_int8", "the AMX-INT8 K-quant kernel (the VNNI one is checked)");
  const mlxr_dtype types[2] = {MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q6_K};
  const int64_t rows[] = {1, 3, 15, 16, 17, 33, 512};
  const int64_t groups[] = {1, 2, 5};
  const int64_t sbs[] = {1, 3, 8, 17};
  rng r = {0x9e3779b97f4a7c15ull};
  for (int ti = 0; ti < 2; ti++) {
    double worst_ref = 0, worst_pair = 0;
    int cases = 0;
    for (size_t a = 0; a < sizeof(rows) / sizeof(rows[0]); a++) {
      for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        for (size_t s = 0; s < sizeof(sbs) / sizeof(sbs[0]); s++) {
          const kq_case kc = {types[ti], rows[a], groups[g], sbs[s]};
          run_case(&r, &kc, amx, &worst_ref, &worst_pair);
          cases++;
        }
      }
    }
    printf("%s: %d shapes, worst |kernel - float64| / sum|w*y| = %.3g, worst |amx - vnni| / sum|w*y| = %.3g\n",
           mlxr_dtype_name(types[ti]), cases, worst_ref, worst_pair);
  }
  return check_report("test_kquant_gemm");
}

#else

int main(void) { /* not built there (tests/CMakeLists.txt): x86-64 kernels */
  printf("test_kquant_gemm: x86-64 kernels, nothing to test on this architecture\n");
  return 77;
}

#endif
