/*
 * test_cpu_ops.c: every op of the CPU backend against a float64 reference computed here from
 * the op's definition (dense, unpaged, no SIMD), at every SIMD level up to the best the machine
 * has (on Arm: scalar and NEON), with 1 and 3 threads:
 *   matmul (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K weights; with and without bias; 1, 2, 5, 7 and
 *   13 rows, and 40 rows for the 16-row AMX groups, so that the multi-row gemm kernels run with
 *   full and partial tiles; 37 and 48 outputs: 48 are repacked into the R16 layout at AVX-512
 *   with VNNI (Q4_0, Q8_0, Q4_K, Q6_K), and get_rows must decode the repacked copy; the no_repack switch is honoured),
 *   get_rows, rms_norm, rope (NORM and NEOX, partial rotation), swiglu, add,
 *   kv_store + paged attention (GQA, scattered block tables, F32 and F16 KV, rows of two
 *   sequences in one batch, causal lengths).
 * This is the table a second backend (CUDA) will be compared against, op by op.
 * Errors are accumulated with check_worst (NaN is the worst error, never dropped); a level or
 * kernel this CPU cannot run is named as a skip (check.h: exit 77).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/fp16.h"
#include "core/common/status.h"
#include "core/kernels/cpu/cpu_backend.h"
#include "core/kernels/types.h"
#include "core/kernels/cpu/quants_impl.h" /* mlxr_quant_cpu_has_avx512_vnni: is repacking expected */
#include "tests/unit/check.h"

static uint64_t rs = 0x2545F4914F6CDD1Dull;
static double urand(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return (double)(rs >> 11) * 0x1.0p-53;
}
static float frand(void) { return (float)(2.0 * urand() - 1.0); }

/* Quantize a [n_out][n_in] float matrix to `type` with the scalar reference quantizer; also return
 * its dequantized values (what the reference multiplies by). */
static void *make_weight(mlxr_dtype type, int64_t n_in, int64_t n_out, mlxr_weight *w, double *deq) {
  const mlxr_type_traits *tt = mlxr_type_traits_get(type, MLXR_SIMD_SCALAR);
  size_t rb;
  mlxr_dtype_row_size(type, n_in, &rb);
  uint8_t *data = malloc(rb * (size_t)n_out);
  float *row = malloc(sizeof(float) * (size_t)n_in);
  for (int64_t o = 0; o < n_out; o++) {
    for (int64_t i = 0; i < n_in; i++) row[i] = frand();
    if (type == MLXR_DTYPE_F32) memcpy(data + o * rb, row, rb);
    else tt->from_float(row, data + o * rb, n_in);
    tt->to_float(data + o * rb, row, n_in);
    for (int64_t i = 0; i < n_in; i++) deq[o * n_in + i] = row[i];
  }
  free(row);
  *w = (mlxr_weight){.type = type, .n_in = n_in, .n_out = n_out, .row_bytes = rb, .data = data};
  return data;
}

/* n_out 37: the file layout; n_out 48 after weight_prepare: the R16 repacked copy where the CPU
 * has AVX512_VNNI (Q4_0/Q8_0/Q4_K/Q6_K), which get_rows must decode too; a second view of the same data
 * shares the copy; a backend made with no_repack keeps reading in place. */
static void test_matmul(mlxr_backend *be, const char *tag, bool expect_repack) {
  const mlxr_dtype types[] = {MLXR_DTYPE_F32, MLXR_DTYPE_F16, MLXR_DTYPE_BF16, MLXR_DTYPE_Q8_0,
                              MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q6_K};
  for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
   for (int64_t n_in = 512, n_out = 37; n_out <= 48; n_out += 11) {
    static const int row_counts[] = {1, 2, 5, 7, 13, 40};
    for (size_t rc = 0; rc < sizeof(row_counts) / sizeof(row_counts[0]); rc++) {
      const int rows = row_counts[rc];
      double *deq = malloc(sizeof(double) * n_in * n_out);
      mlxr_weight w;
      void *data = make_weight(types[ti], n_in, n_out, &w, deq);
      CHECK(be->iface->weight_prepare(be, &w) == MLXR_OK, "weight_prepare");
      const bool r16_type = types[ti] == MLXR_DTYPE_Q4_0 || types[ti] == MLXR_DTYPE_Q8_0 ||
                            types[ti] == MLXR_DTYPE_Q4_K || types[ti] == MLXR_DTYPE_Q6_K;
      CHECK((w.device != NULL) == (expect_repack && r16_type && n_out % 16 == 0),
            "%s %s n_out %lld: repacked %d", tag, mlxr_dtype_name(types[ti]), (long long)n_out,
            w.device != NULL);
      if (w.device) {
        mlxr_weight w2 = w;
        w2.device = NULL;
        CHECK(be->iface->weight_prepare(be, &w2) == MLXR_OK && w2.device == w.device,
              "%s second view of the same data shares the copy", tag);
        const int32_t ids[4] = {0, 17, (int32_t)n_out - 1, 5};
        float *rows_out = malloc(sizeof(float) * 4 * n_in);
        CHECK(be->iface->get_rows(be, &w, ids, 4, rows_out) == MLXR_OK, "get_rows");
        for (int k = 0; k < 4; k++) {
          for (int64_t i = 0; i < n_in; i++) {
            if (rows_out[k * n_in + i] != (float)deq[ids[k] * n_in + i]) {
              CHECK(false, "%s get_rows of repacked %s row %d elem %lld", tag,
                    mlxr_dtype_name(types[ti]), ids[k], (long long)i);
              break;
            }
          }
        }
        free(rows_out);
        /* the copy is what matmul reads: scribbling on the original must not change results */
        memset(data, 0, w.row_bytes * (size_t)n_out);
      }
      float *x = malloc(sizeof(float) * n_in * rows), *y = malloc(sizeof(float) * n_out * rows);
      float *bias = malloc(sizeof(float) * n_out);
      for (int64_t i = 0; i < n_in * rows; i++) x[i] = frand();
      for (int64_t i = 0; i < n_out; i++) bias[i] = frand();
      mlxr_weight bw = {.type = MLXR_DTYPE_F32, .n_in = n_out, .n_out = 1, .row_bytes = 4 * n_out, .data = bias};
      for (int use_bias = 0; use_bias < 2; use_bias++) {
        CHECK(be->iface->matmul(be, &w, use_bias ? &bw : NULL, x, rows, y) == MLXR_OK, "matmul");
        /* activations may be quantized to 8 bits: relative to sum |w||x| */
        const bool quant_act = mlxr_type_traits_get(types[ti], MLXR_SIMD_SCALAR)->vec_dot_type != MLXR_DTYPE_F32;
        double worst = 0;
        for (int r = 0; r < rows; r++) {
          for (int64_t o = 0; o < n_out; o++) {
            double ref = use_bias ? bias[o] : 0, mag = 0;
            for (int64_t i = 0; i < n_in; i++) {
              ref += deq[o * n_in + i] * x[r * n_in + i];
              mag += fabs(deq[o * n_in + i] * x[r * n_in + i]);
            }
            worst = check_worst(worst, fabs(y[r * n_out + o] - ref) / mag);
          }
        }
        CHECK(worst < (quant_act ? 1e-2 : 1e-6), "%s matmul %s rows %d bias %d: rel err %g", tag,
              mlxr_dtype_name(types[ti]), rows, use_bias, worst);
      }
      free(deq); free(data); free(x); free(y); free(bias);
    }
   }
  }
}

/* matmul_multi (q/k/v- and gate/up-like weights; mixed types, which cannot share converted
 * activations; biases; prompt-sized and decode-sized row counts) must equal one matmul per weight
 * bit for bit: it is the same arithmetic with the activation conversion shared. */
static void test_matmul_multi(mlxr_backend *be, const char *tag) {
  const mlxr_dtype sets[][3] = {{MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q4_0},
                                {MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q6_K},
                                {MLXR_DTYPE_F16, MLXR_DTYPE_F16, MLXR_DTYPE_F16},
                                {MLXR_DTYPE_Q8_0, MLXR_DTYPE_BF16, MLXR_DTYPE_Q8_0}};
  const int64_t n_in = 512, outs[3] = {64, 32, 48}, rows[] = {1, 5, 40};
  for (size_t si = 0; si < sizeof(sets) / sizeof(sets[0]); si++) {
    mlxr_weight w[3];
    void *data[3];
    double *deq = malloc(sizeof(double) * (size_t)(n_in * 64));
    for (int i = 0; i < 3; i++) {
      data[i] = make_weight(sets[si][i], n_in, outs[i], &w[i], deq);
      CHECK(be->iface->weight_prepare(be, &w[i]) == MLXR_OK, "weight_prepare");
    }
    float bias[48];
    for (int i = 0; i < 48; i++) bias[i] = frand();
    const mlxr_weight bw = {.type = MLXR_DTYPE_F32, .n_in = 48, .n_out = 1, .row_bytes = sizeof bias, .data = bias};
    for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++) {
      const int64_t n = rows[ri];
      float *x = malloc(sizeof(float) * (size_t)(n * n_in));
      for (int64_t i = 0; i < n * n_in; i++) x[i] = frand();
      float *ym[3], *ys[3];
      for (int i = 0; i < 3; i++) {
        ym[i] = malloc(sizeof(float) * (size_t)(n * outs[i]));
        ys[i] = malloc(sizeof(float) * (size_t)(n * outs[i]));
      }
      const mlxr_weight *ws[3] = {&w[0], &w[1], &w[2]}, *bs[3] = {NULL, NULL, &bw};
      CHECK(be->iface->matmul_multi(be, 3, ws, bs, x, n, ym) == MLXR_OK, "matmul_multi");
      for (int i = 0; i < 3; i++) {
        CHECK(be->iface->matmul(be, ws[i], bs[i], x, n, ys[i]) == MLXR_OK, "matmul");
        CHECK(memcmp(ym[i], ys[i], sizeof(float) * (size_t)(n * outs[i])) == 0,
              "%s matmul_multi set %zu weight %d rows %lld differs from matmul", tag, si, i, (long long)n);
        free(ym[i]);
        free(ys[i]);
      }
      free(x);
    }
    for (int i = 0; i < 3; i++) free(data[i]);
    free(deq);
  }
}

static void test_elementwise(mlxr_backend *be, const char *tag) {
  const int64_t rows = 3, dim = 40;
  float x[3 * 40], y[3 * 40], w[40];
  for (int i = 0; i < rows * dim; i++) x[i] = 3 * frand();
  for (int i = 0; i < dim; i++) w[i] = frand();
  const mlxr_weight wv = {.type = MLXR_DTYPE_F32, .n_in = dim, .n_out = 1, .row_bytes = sizeof w, .data = w};
  be->iface->rms_norm(be, x, &wv, rows, dim, 1e-5f, y);
  for (int r = 0; r < rows; r++) {
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
    double s = 1.0 / sqrt(ss / dim + 1e-5);
    for (int i = 0; i < dim; i++) {
      CHECK(fabs(y[r * dim + i] - x[r * dim + i] * s * w[i]) < 1e-5, "%s rms_norm", tag);
    }
  }
  /* rope: 2 rows x 3 heads x head_dim 8, rotating the first 6 dims */
  for (int mode = 0; mode < 2; mode++) {
    const int heads = 3, hd = 8, rot = 6, half = 3;
    float v[2 * 3 * 8], orig[2 * 3 * 8], ct[2 * 3], st[2 * 3];
    for (int i = 0; i < 48; i++) orig[i] = v[i] = frand();
    double ang[6];
    for (int i = 0; i < 6; i++) {
      ang[i] = 10 * urand();
      ct[i] = (float)cos(ang[i]);
      st[i] = (float)sin(ang[i]);
    }
    mlxr_rope_mode rm = mode ? MLXR_ROPE_NEOX : MLXR_ROPE_NORM;
    be->iface->rope(be, v, 2, heads, hd, rot, rm, ct, st);
    for (int r = 0; r < 2; r++) {
      for (int h = 0; h < heads; h++) {
        const float *o = orig + (r * heads + h) * hd;
        const float *got = v + (r * heads + h) * hd;
        for (int i = 0; i < half; i++) {
          int i0 = mode ? i : 2 * i, i1 = mode ? i + half : 2 * i + 1;
          double a = ang[r * half + i];
          double e0 = o[i0] * cos(a) - o[i1] * sin(a), e1 = o[i0] * sin(a) + o[i1] * cos(a);
          CHECK(fabs(got[i0] - e0) < 1e-5 && fabs(got[i1] - e1) < 1e-5, "%s rope mode %d", tag, mode);
        }
        for (int i = rot; i < hd; i++) CHECK(got[i] == o[i], "%s rope touched unrotated dims", tag);
      }
    }
  }
  float g[64], u[64], out[64];
  for (int i = 0; i < 64; i++) { g[i] = 6 * frand(); u[i] = frand(); }
  be->iface->swiglu(be, g, u, out, 64);
  for (int i = 0; i < 64; i++) CHECK(fabs(out[i] - g[i] / (1 + exp(-(double)g[i])) * u[i]) < 1e-5, "%s swiglu", tag);
  float a[5] = {1, 2, 3, 4, 5}, b[5] = {.5f, -1, 0, 2, 1};
  be->iface->add(be, a, b, 5);
  CHECK(a[0] == 1.5f && a[1] == 1 && a[4] == 6, "%s add", tag);
  /* get_rows on F16 */
  double deq[10 * 32];
  mlxr_weight t;
  void *data = make_weight(MLXR_DTYPE_F16, 32, 10, &t, deq);
  int32_t ids[3] = {7, 0, 7};
  float rowsout[3 * 32];
  CHECK(be->iface->get_rows(be, &t, ids, 3, rowsout) == MLXR_OK, "get_rows");
  for (int r = 0; r < 3; r++) {
    for (int i = 0; i < 32; i++) CHECK(rowsout[r * 32 + i] == (float)deq[ids[r] * 32 + i], "%s get_rows", tag);
  }
  int32_t bad = 10;
  CHECK(be->iface->get_rows(be, &t, &bad, 1, rowsout) == MLXR_ERR_RANGE, "get_rows range check");
  free(data);
}

static void test_attention(mlxr_backend *be, const char *tag) {
  const int n_head = 4, n_kv = 2, hd = 16, bs = 4, n_blocks = 12;
  const int kvd = n_kv * hd;
  for (int kvt = 0; kvt < 2; kvt++) {
    mlxr_dtype type = kvt ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32;
    size_t esz = kvt ? 2 : 4;
    void *kp = calloc((size_t)n_blocks * bs * kvd, esz), *vp = calloc((size_t)n_blocks * bs * kvd, esz);
    /* sequence A: 11 tokens in blocks {5, 2, 9}; sequence B: 6 tokens in blocks {0, 7} */
    int32_t ta[3] = {5, 2, 9}, tb[2] = {0, 7};
    const int la = 11, lb = 6;
    double *ka = malloc(sizeof(double) * la * kvd), *va = malloc(sizeof(double) * la * kvd);
    double *kb = malloc(sizeof(double) * lb * kvd), *vb = malloc(sizeof(double) * lb * kvd);
    float krow[32], vrow[32];
    for (int s = 0; s < 2; s++) {
      int len = s ? lb : la;
      int32_t *tab = s ? tb : ta;
      double *K = s ? kb : ka, *V = s ? vb : va;
      for (int t = 0; t < len; t++) {
        for (int i = 0; i < kvd; i++) {
          krow[i] = frand();
          vrow[i] = frand();
          /* the reference sees exactly what the cache stores */
          K[t * kvd + i] = kvt ? mlxr_f16_to_f32(mlxr_f32_to_f16(krow[i])) : krow[i];
          V[t * kvd + i] = kvt ? mlxr_f16_to_f32(mlxr_f32_to_f16(vrow[i])) : vrow[i];
        }
        int64_t slot = (int64_t)tab[t / bs] * bs + t % bs;
        be->iface->kv_store(be, krow, vrow, 1, kvd, kvd, &slot, kp, vp, type);
      }
    }
    /* batch: last 3 rows of A (positions 8, 9, 10) and the last row of B (position 5) */
    const int n_rows = 4;
    /* block tables as the KV cache keeps them: one row of `stride` ids per sequence */
    const int32_t stride = 3;
    const int32_t tables[2 * 3] = {ta[0], ta[1], ta[2], tb[0], tb[1], -1};
    const int32_t row_table[4] = {0, 0, 0, 1};
    int32_t n_ctx[4] = {9, 10, 11, 6};
    float q[4 * 4 * 16], out[4 * 4 * 16];
    for (int i = 0; i < n_rows * n_head * hd; i++) q[i] = 2 * frand();
    mlxr_attn_args args = {.n_rows = n_rows, .n_head = n_head, .n_head_kv = n_kv, .head_dim_k = hd,
                           .head_dim_v = hd, .q = q, .out = out, .k_pool = kp, .v_pool = vp,
                           .kv_type = type, .block_size = bs, .block_tables = tables,
                           .table_stride = stride, .row_table = row_table, .n_ctx = n_ctx, .max_ctx = 11,
                           .scale = 0.25f};
    CHECK(be->iface->attention(be, &args) == MLXR_OK, "attention");
    double worst = 0;
    for (int r = 0; r < n_rows; r++) {
      const double *K = r == 3 ? kb : ka, *V = r == 3 ? vb : va;
      for (int h = 0; h < n_head; h++) {
        int kh = h / (n_head / n_kv);
        double sc[16], mx = -1e300, z = 0;
        for (int t = 0; t < n_ctx[r]; t++) {
          double s = 0;
          for (int i = 0; i < hd; i++) s += q[(r * n_head + h) * hd + i] * K[t * kvd + kh * hd + i];
          sc[t] = s * 0.25;
          mx = fmax(mx, sc[t]);
        }
        for (int t = 0; t < n_ctx[r]; t++) z += (sc[t] = exp(sc[t] - mx));
        for (int i = 0; i < hd; i++) {
          double o = 0;
          for (int t = 0; t < n_ctx[r]; t++) o += sc[t] / z * V[t * kvd + kh * hd + i];
          worst = check_worst(worst, fabs(out[(r * n_head + h) * hd + i] - o));
        }
      }
    }
    CHECK(worst < 2e-6, "%s attention kv %s: max err %g", tag, mlxr_dtype_name(type), worst);
    free(kp); free(vp); free(ka); free(va); free(kb); free(vb);
  }
}

int main(void) {
  mlxr_simd_level best = mlxr_cpu_detect_simd();
#if defined(__x86_64__) || defined(__i386__)
  if (best == MLXR_SIMD_AVX512 && !check_cpu_has("avx512", true)) best = MLXR_SIMD_AVX2;
  if (best == MLXR_SIMD_AVX2 && !check_cpu_has("avx2", true)) best = MLXR_SIMD_SCALAR;
  if (best < MLXR_SIMD_AVX2) check_cpu_lacks("avx2", "the backend at the AVX2 level");
  if (best < MLXR_SIMD_AVX512) check_cpu_lacks("avx512", "the backend at the AVX-512 level");
#endif
#if MLXR_QUANTS_X86
  if (best == MLXR_SIMD_AVX512 && !mlxr_quant_cpu_has_avx512_vnni()) {
    check_cpu_lacks("avx512_vnni", "the backend's R16 repacked matmul");
  } else if (best == MLXR_SIMD_AVX512 && !mlxr_quant_cpu_amx_enable()) {
    check_cpu_lacks("amx_int8", "the backend's AMX R16 matmul (VNNI checked)");
  }
#endif
  printf("cpu simd level: %s\n", mlxr_simd_level_name(best));
  for (int level = 0; level <= (int)best; level++) {
    /* Arm (best = NEON): scalar and NEON; the x86 levels in between are not built there */
    if (best == MLXR_SIMD_NEON && level != (int)MLXR_SIMD_SCALAR && level != (int)MLXR_SIMD_NEON) continue;
    /* 1 and 3 threads; at AVX-512 also 3 threads with repacking switched off */
    for (int variant = 0; variant < 3; variant++) {
      if (variant == 2 && level != (int)MLXR_SIMD_AVX512) continue;
      const int threads = variant == 0 ? 1 : 3;
      mlxr_cpu_backend_params p = mlxr_cpu_backend_default_params();
      p.n_threads = threads;
      p.simd_level = level;
      p.no_repack = variant == 2;
      mlxr_backend *be = mlxr_cpu_backend_new(p);
      char tag[64];
      snprintf(tag, sizeof(tag), "[%s, %d threads%s]", mlxr_simd_level_name((mlxr_simd_level)level),
               threads, p.no_repack ? ", no repack" : "");
      bool expect_repack = level == (int)MLXR_SIMD_AVX512 && !p.no_repack;
#if MLXR_QUANTS_X86
      expect_repack = expect_repack && mlxr_quant_cpu_has_avx512_vnni();
#else
      expect_repack = false;
#endif
      test_matmul(be, tag, expect_repack);
      test_matmul_multi(be, tag);
      test_elementwise(be, tag);
      test_attention(be, tag);
      mlxr_backend_free(be);
      printf("ran %s\n", tag);
    }
  }
  return check_report("test_cpu_ops");
}
