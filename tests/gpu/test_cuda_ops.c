/*
 * test_cuda_ops.c: op parity of the CUDA backend, run on a GPU machine by tests/gpu/run.sh (CI has
 * no GPU: there it is only compiled). Every op runs on random inputs on the CUDA backend and on the
 * CPU backend (the reference backend), and where it is cheap also against a float64 reference
 * computed here from the op's definition; tolerances are per weight type and per path:
 *
 *   matmul     every weight type the CPU has (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
 *              Q5_K, Q6_K), awkward shapes, 1..8 rows (matvec kernels), 9..64 rows (matvec passes
 *              for quantized types, cuBLAS for float types), more (cuBLAS on dequantized tiles),
 *              with and without bias; norm-wise error ||y - ref|| / ||ref||; outputs are poisoned
 *              with NaN first, so an unwritten element fails
 *   get_rows   every type, element-wise against the CPU's dequantization
 *   rms_norm, rope_cache, rope (NORM / NEOX, partial rotation), swiglu, add
 *   kv_store + attention: GQA groups 1..16, head dims 16..128, block sizes 16 and 5, F32 and F16 KV,
 *              batches mixing a prompt chunk with decode rows of other sequences, contexts to 1200
 *   graphs     a small forward under begin_forward(graph): run, captured, replayed twice with new
 *              inputs uploaded between replays, each result against the CPU
 *   argmax     argmax_rows over logits-like rows (128256 and odd lengths, planted ties and NaN)
 *              against the first largest value found on the host
 *   fused      matmul_multi (q/k/v-like and gate/up-like weights, with biases) against one matmul
 *              per weight on the GPU; matmul_acc (y += x W^T) against the CPU's y + x W^T;
 *              norm_matmul_multi against the CPU's rms_norm + matmul and the GPU's two ops;
 *              swiglu_matmul_acc against the CPU's swiglu + y + matmul;
 *              rope_kv_store against rope, rope, kv_store on the GPU, bit for bit
 *
 * Exit status: 0 all passed, 1 a check failed, 77 no usable GPU (reported as such by run.sh).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/fp16.h"
#include "core/common/status.h"
#include "core/kernels/backend_registry.h"
#include "core/kernels/types.h"
#include "tests/unit/check.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) * 0x1.0p-53;
}
static float frand(void) { return (float)(2.0 * urand() - 1.0); }

/* ---- device helpers ---- */

static void *dput(mlxr_backend *g, const void *host, size_t bytes) {
  void *d = mlxr_backend_alloc(g, bytes);
  if (d && mlxr_backend_upload(g, d, host, bytes) != MLXR_OK) {
    mlxr_backend_buf_free(g, d);
    return NULL;
  }
  return d;
}

static int dget(mlxr_backend *g, void *host, const void *dev, size_t bytes) {
  return mlxr_backend_download(g, host, dev, bytes);
}

/* A device buffer of n floats filled with NaN (unwritten outputs then fail every comparison). */
static float *dpoison(mlxr_backend *g, size_t n) {
  float *h = malloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) h[i] = NAN;
  float *d = dput(g, h, n * sizeof(float));
  free(h);
  return d;
}

/* ||a - ref|| / sqrt(||ref||^2 + floor); NaN anywhere gives +inf. floor keeps a product with few
 * outputs from being judged by a denominator that is near zero by chance (one dot product of
 * random vectors can cancel): pass the squared magnitude such results typically have. */
static double rel_err_floor(const float *a, const double *ref, size_t n, double floor) {
  double num = 0, den = floor;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) || isinf(a[i])) return INFINITY;
    num += (a[i] - ref[i]) * (a[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double rel_err(const float *a, const double *ref, size_t n) { return rel_err_floor(a, ref, n, 0.0); }

static double max_abs_err(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    const double e = fabs((double)a[i] - (double)b[i]);
    if (!(e <= m)) m = isnan(e) ? INFINITY : e;
  }
  return m;
}

static void to_double(const float *a, double *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = a[i];
}

/* ---- weights ---- */

typedef struct test_weight {
  mlxr_weight cpu, gpu; /* two views of the same host bytes, prepared on each backend */
  uint8_t *data;
  float *deq;           /* [n_out][n_in] the CPU's dequantization */
} test_weight;

static bool make_weight(mlxr_backend *cpu, mlxr_backend *gpu, mlxr_dtype type, int64_t n_in, int64_t n_out,
                        test_weight *w) {
  const mlxr_type_traits *tt = mlxr_type_traits_get(type, MLXR_SIMD_SCALAR);
  size_t rb;
  if (!tt || !mlxr_dtype_row_size(type, n_in, &rb)) return false;
  w->data = malloc(rb * (size_t)n_out);
  w->deq = malloc(sizeof(float) * (size_t)n_in * (size_t)n_out);
  float *row = malloc(sizeof(float) * (size_t)n_in);
  for (int64_t o = 0; o < n_out; o++) {
    const float scale = 0.5f + (float)urand(); /* rows of different magnitude */
    for (int64_t i = 0; i < n_in; i++) row[i] = frand() * scale;
    tt->from_float(row, w->data + (size_t)o * rb, n_in);
    tt->to_float(w->data + (size_t)o * rb, w->deq + (size_t)o * n_in, n_in);
  }
  free(row);
  w->cpu = (mlxr_weight){.type = type, .n_in = n_in, .n_out = n_out, .row_bytes = rb, .data = w->data};
  w->gpu = w->cpu;
  return cpu->iface->weight_prepare(cpu, &w->cpu) == MLXR_OK && gpu->iface->weight_prepare(gpu, &w->gpu) == MLXR_OK;
}

static void free_weight(test_weight *w) {
  free(w->data);
  free(w->deq);
}

/* Tolerance of the GPU product against float64 for a type and row count (norm-wise). */
static double matmul_tol(mlxr_dtype t, int64_t rows) {
  const bool blas = rows > 8;
  switch (t) {
  case MLXR_DTYPE_F32: return 2e-6;
  case MLXR_DTYPE_F16: return blas ? 1.5e-3 : 2e-6;
  case MLXR_DTYPE_BF16: return blas ? 8e-3 : 2e-6;
  default: return 2.5e-2; /* int8 activations (matvec) or f16 activations (cuBLAS) */
  }
}

static void test_matmul_case(mlxr_backend *cpu, mlxr_backend *gpu, mlxr_dtype t, int64_t n_in, int64_t n_out,
                             int64_t rows, bool with_bias, bool f64_ref, double *worst) {
  test_weight w;
  if (!make_weight(cpu, gpu, t, n_in, n_out, &w)) {
    CHECK(false, "matmul %s: cannot prepare a [%lld x %lld] weight", mlxr_dtype_name(t), (long long)n_out,
          (long long)n_in);
    free_weight(&w);
    return;
  }
  float *x = malloc(sizeof(float) * (size_t)(rows * n_in));
  float *bias = malloc(sizeof(float) * (size_t)n_out);
  for (int64_t i = 0; i < rows * n_in; i++) x[i] = frand();
  for (int64_t i = 0; i < n_out; i++) bias[i] = frand();
  mlxr_weight bw_cpu = {.type = MLXR_DTYPE_F32, .n_in = n_out, .n_out = 1, .row_bytes = sizeof(float) * (size_t)n_out,
                        .data = bias};
  mlxr_weight bw_gpu = bw_cpu;
  CHECK(gpu->iface->weight_prepare(gpu, &bw_gpu) == MLXR_OK, "bias upload");
  const size_t ny = (size_t)(rows * n_out);
  float *y_cpu = malloc(sizeof(float) * ny), *y_gpu = malloc(sizeof(float) * ny);
  double *ref = calloc(ny, sizeof(double));
  CHECK(cpu->iface->matmul(cpu, &w.cpu, with_bias ? &bw_cpu : NULL, x, rows, y_cpu) == MLXR_OK, "cpu matmul");
  float *dx = dput(gpu, x, sizeof(float) * (size_t)(rows * n_in));
  float *dy = dpoison(gpu, ny);
  CHECK(gpu->iface->matmul(gpu, &w.gpu, with_bias ? &bw_gpu : NULL, dx, rows, dy) == MLXR_OK, "gpu matmul call");
  const int rc = dget(gpu, y_gpu, dy, sizeof(float) * ny);
  CHECK(rc == MLXR_OK, "gpu matmul %s [%lld x %lld] rows %lld: %s", mlxr_dtype_name(t), (long long)n_out,
        (long long)n_in, (long long)rows, gpu->iface->error_message(gpu) ? gpu->iface->error_message(gpu) : "?");
  if (f64_ref) {
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t o = 0; o < n_out; o++) {
        double s = with_bias ? bias[o] : 0.0;
        const float *wr = w.deq + o * n_in, *xr = x + r * n_in;
        for (int64_t i = 0; i < n_in; i++) s += (double)wr[i] * (double)xr[i];
        ref[r * n_out + o] = s;
      }
    }
  } else {
    to_double(y_cpu, ref, ny);
  }
  /* the typical squared size of the results: sum over rows and outputs of |w_o|^2 |x_r|^2 / n_in */
  double wsq = 0, xsq = 0;
  for (int64_t i = 0; i < n_out * n_in; i++) wsq += (double)w.deq[i] * w.deq[i];
  for (int64_t i = 0; i < rows * n_in; i++) xsq += (double)x[i] * x[i];
  const double floor = wsq * xsq / (double)n_in;
  const double e = rel_err_floor(y_gpu, ref, ny, floor), tol = matmul_tol(t, rows) * (f64_ref ? 1.0 : 2.0);
  if (!(e <= *worst)) *worst = e;
  CHECK(e <= tol, "matmul %s [%lld x %lld] rows %lld%s: error %.3g > %.3g (vs %s)", mlxr_dtype_name(t),
        (long long)n_out, (long long)n_in, (long long)rows, with_bias ? " +bias" : "", e, tol,
        f64_ref ? "float64" : "cpu");
  if (f64_ref) {
    const double ec = rel_err_floor(y_cpu, ref, ny, floor);
    CHECK(ec <= 2.5e-2, "cpu matmul %s [%lld x %lld] rows %lld vs float64: %.3g (the reference backend itself is off)",
          mlxr_dtype_name(t), (long long)n_out, (long long)n_in, (long long)rows, ec);
  }
  mlxr_backend_buf_free(gpu, dx);
  mlxr_backend_buf_free(gpu, dy);
  free(x), free(bias), free(y_cpu), free(y_gpu), free(ref);
  free_weight(&w);
}

static void test_matmul(mlxr_backend *cpu, mlxr_backend *gpu) {
  const mlxr_dtype types[] = {MLXR_DTYPE_F32,  MLXR_DTYPE_F16,  MLXR_DTYPE_BF16, MLXR_DTYPE_Q8_0,
                              MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q4_1, MLXR_DTYPE_Q5_0, MLXR_DTYPE_Q5_1,
                              MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q5_K, MLXR_DTYPE_Q6_K};
  const int64_t rows[] = {1, 2, 3, 5, 8, 9, 16, 33, 64, 65, 130};
  printf("matmul (worst norm-wise error against float64 / the CPU backend):\n");
  for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
    const mlxr_dtype t = types[ti];
    const int64_t bs = mlxr_dtype_block_size(t);
    /* awkward shapes: few outputs, odd counts, one block, many blocks */
    const int64_t shapes[][2] = {{bs == 1 ? 13 : bs, 1}, {bs == 1 ? 100 : 2 * bs, 7},
                                 {bs == 1 ? 264 : 3 * bs, 33},  {bs == 1 ? 1000 : bs * (bs == 256 ? 5 : 31), 130},
                                 {2048, 515}};
    double worst = 0;
    for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
      for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++) {
        const bool big = shapes[si][0] * shapes[si][1] * rows[ri] > 20000000;
        test_matmul_case(cpu, gpu, t, shapes[si][0], shapes[si][1], rows[ri], (ri + si) % 3 == 0, !big, &worst);
      }
    }
    /* model-sized: the CPU backend is the reference (float64 would take minutes) */
    const int64_t big_rows[] = {1, 4, 8, 32, 512};
    for (size_t ri = 0; ri < sizeof(big_rows) / sizeof(big_rows[0]); ri++) {
      test_matmul_case(cpu, gpu, t, 4096, 1024 + 8, big_rows[ri], false, false, &worst);
    }
    printf("  %-5s %.3g\n", mlxr_dtype_name(t), worst);
  }
}

static void test_get_rows(mlxr_backend *cpu, mlxr_backend *gpu) {
  const mlxr_dtype types[] = {MLXR_DTYPE_F32,  MLXR_DTYPE_F16,  MLXR_DTYPE_BF16, MLXR_DTYPE_Q8_0,
                              MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q4_1, MLXR_DTYPE_Q5_0, MLXR_DTYPE_Q5_1,
                              MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q5_K, MLXR_DTYPE_Q6_K};
  for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
    const mlxr_dtype t = types[ti];
    const int64_t n_in = mlxr_dtype_block_size(t) == 256 ? 768 : 160, n_out = 301;
    test_weight w;
    CHECK(make_weight(cpu, gpu, t, n_in, n_out, &w), "get_rows %s: prepare", mlxr_dtype_name(t));
    int32_t ids[9] = {0, 300, 5, 5, 150, 299, 1, 77, 0};
    int32_t *dids = dput(gpu, ids, sizeof ids);
    float *dout = dpoison(gpu, 9 * (size_t)n_in);
    float *got = malloc(sizeof(float) * 9 * (size_t)n_in), *want = malloc(sizeof(float) * 9 * (size_t)n_in);
    CHECK(gpu->iface->get_rows(gpu, &w.gpu, dids, 9, dout) == MLXR_OK, "get_rows call");
    CHECK(dget(gpu, got, dout, sizeof(float) * 9 * (size_t)n_in) == MLXR_OK, "get_rows %s run", mlxr_dtype_name(t));
    float mx = 0;
    for (int r = 0; r < 9; r++) {
      memcpy(want + (size_t)r * n_in, w.deq + (size_t)ids[r] * n_in, sizeof(float) * (size_t)n_in);
    }
    for (int64_t i = 0; i < 9 * n_in; i++) mx = fabsf(want[i]) > mx ? fabsf(want[i]) : mx;
    const double e = max_abs_err(got, want, 9 * (size_t)n_in);
    CHECK(e <= 1e-6 * mx, "get_rows %s: max error %.3g (values to %.3g)", mlxr_dtype_name(t), e, mx);
    mlxr_backend_buf_free(gpu, dids);
    mlxr_backend_buf_free(gpu, dout);
    free(got), free(want);
    free_weight(&w);
  }
  printf("get_rows: every type checked\n");
}

/* ---- elementwise ---- */

static void test_elementwise(mlxr_backend *cpu, mlxr_backend *gpu) {
  /* rms_norm, out of place and in place */
  const int64_t dims[] = {1, 17, 64, 128, 2048, 4096, 5000}, nrows[] = {1, 3, 300};
  for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
    for (size_t ri = 0; ri < sizeof nrows / sizeof nrows[0]; ri++) {
      const int64_t d = dims[di], n = nrows[ri], N = d * n;
      float *x = malloc(sizeof(float) * (size_t)N), *wv = malloc(sizeof(float) * (size_t)d);
      float *yc = malloc(sizeof(float) * (size_t)N), *yg = malloc(sizeof(float) * (size_t)N);
      for (int64_t i = 0; i < N; i++) x[i] = 4 * frand();
      for (int64_t i = 0; i < d; i++) wv[i] = 2 * frand();
      mlxr_weight wc = {.type = MLXR_DTYPE_F32, .n_in = d, .n_out = 1, .row_bytes = sizeof(float) * (size_t)d, .data = wv};
      mlxr_weight wg = wc;
      CHECK(gpu->iface->weight_prepare(gpu, &wg) == MLXR_OK, "norm weight upload");
      cpu->iface->rms_norm(cpu, x, &wc, n, d, 1e-5f, yc);
      for (int in_place = 0; in_place < 2; in_place++) {
        float *dx = dput(gpu, x, sizeof(float) * (size_t)N);
        float *dy = in_place ? dx : dpoison(gpu, (size_t)N);
        gpu->iface->rms_norm(gpu, dx, &wg, n, d, 1e-5f, dy);
        CHECK(dget(gpu, yg, dy, sizeof(float) * (size_t)N) == MLXR_OK, "rms_norm run");
        double mx = 0;
        for (int64_t i = 0; i < N; i++) mx = fabs(yc[i]) > mx ? fabs(yc[i]) : mx;
        const double e = max_abs_err(yg, yc, (size_t)N);
        CHECK(e <= 2e-6 * (mx > 1 ? mx : 1), "rms_norm dim %lld rows %lld%s: max error %.3g", (long long)d,
              (long long)n, in_place ? " in place" : "", e);
        if (!in_place) mlxr_backend_buf_free(gpu, dy);
        mlxr_backend_buf_free(gpu, dx);
      }
      free(x), free(wv), free(yc), free(yg);
    }
  }
  /* rope tables and rope */
  for (int mode = 0; mode < 2; mode++) {
    const int heads = 6, hd = 128;
    const int rots[] = {128, 64, 96};
    for (int ri = 0; ri < 3; ri++) {
      const int rot = rots[ri], half = rot / 2;
      const int64_t n = 37;
      int32_t pos[37];
      for (int i = 0; i < n; i++) pos[i] = i == 0 ? 0 : i == 1 ? 131071 : (int32_t)(urand() * 40000);
      double *inv = malloc(sizeof(double) * (size_t)half);
      for (int i = 0; i < half; i++) inv[i] = pow(500000.0, -2.0 * i / rot) / (i % 5 == 0 ? 8.0 : 1.0);
      const float scale = ri == 2 ? 4.0f : 1.0f;
      float *cc = malloc(sizeof(float) * n * half), *sc = malloc(sizeof(float) * n * half);
      float *cg = malloc(sizeof(float) * n * half), *sg = malloc(sizeof(float) * n * half);
      cpu->iface->rope_cache(cpu, pos, n, inv, half, scale, cc, sc);
      int32_t *dpos = dput(gpu, pos, sizeof pos);
      double *dinv = dput(gpu, inv, sizeof(double) * (size_t)half);
      float *dc = dpoison(gpu, (size_t)(n * half)), *ds = dpoison(gpu, (size_t)(n * half));
      gpu->iface->rope_cache(gpu, dpos, n, dinv, half, scale, dc, ds);
      CHECK(dget(gpu, cg, dc, sizeof(float) * n * half) == MLXR_OK && dget(gpu, sg, ds, sizeof(float) * n * half) == MLXR_OK,
            "rope_cache run");
      CHECK(max_abs_err(cg, cc, (size_t)(n * half)) <= 1.2e-7 && max_abs_err(sg, sc, (size_t)(n * half)) <= 1.2e-7,
            "rope_cache half %d: cos %.3g sin %.3g", half, max_abs_err(cg, cc, (size_t)(n * half)),
            max_abs_err(sg, sc, (size_t)(n * half)));
      const int64_t N = n * heads * hd;
      float *x = malloc(sizeof(float) * (size_t)N), *xc = malloc(sizeof(float) * (size_t)N), *xg = malloc(sizeof(float) * (size_t)N);
      for (int64_t i = 0; i < N; i++) xc[i] = x[i] = frand();
      const mlxr_rope_mode rm = mode ? MLXR_ROPE_NEOX : MLXR_ROPE_NORM;
      cpu->iface->rope(cpu, xc, n, heads, hd, rot, rm, cc, sc);
      float *dx = dput(gpu, x, sizeof(float) * (size_t)N);
      gpu->iface->rope(gpu, dx, n, heads, hd, rot, rm, dc, ds);
      CHECK(dget(gpu, xg, dx, sizeof(float) * (size_t)N) == MLXR_OK, "rope run");
      CHECK(max_abs_err(xg, xc, (size_t)N) <= 1e-6, "rope mode %d rot %d: %.3g", mode, rot, max_abs_err(xg, xc, (size_t)N));
      mlxr_backend_buf_free(gpu, dpos), mlxr_backend_buf_free(gpu, dinv), mlxr_backend_buf_free(gpu, dc);
      mlxr_backend_buf_free(gpu, ds), mlxr_backend_buf_free(gpu, dx);
      free(inv), free(cc), free(sc), free(cg), free(sg), free(x), free(xc), free(xg);
    }
  }
  /* swiglu and add, lengths that are not multiples of 4 */
  const int64_t lens[] = {1, 3, 1000, 14336 * 3 + 1};
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    const int64_t n = lens[li];
    float *g = malloc(sizeof(float) * (size_t)n), *u = malloc(sizeof(float) * (size_t)n);
    float *oc = malloc(sizeof(float) * (size_t)n), *og = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) g[i] = 8 * frand(), u[i] = 3 * frand();
    cpu->iface->swiglu(cpu, g, u, oc, n);
    float *dg = dput(gpu, g, sizeof(float) * (size_t)n), *du = dput(gpu, u, sizeof(float) * (size_t)n);
    float *dout = dpoison(gpu, (size_t)n);
    gpu->iface->swiglu(gpu, dg, du, dout, n);
    CHECK(dget(gpu, og, dout, sizeof(float) * (size_t)n) == MLXR_OK, "swiglu run");
    CHECK(max_abs_err(og, oc, (size_t)n) <= 5e-6, "swiglu n %lld: %.3g", (long long)n, max_abs_err(og, oc, (size_t)n));
    memcpy(oc, g, sizeof(float) * (size_t)n);
    cpu->iface->add(cpu, oc, u, n);
    gpu->iface->add(gpu, dg, du, n);
    CHECK(dget(gpu, og, dg, sizeof(float) * (size_t)n) == MLXR_OK, "add run");
    CHECK(max_abs_err(og, oc, (size_t)n) == 0, "add n %lld: %.3g", (long long)n, max_abs_err(og, oc, (size_t)n));
    mlxr_backend_buf_free(gpu, dg), mlxr_backend_buf_free(gpu, du), mlxr_backend_buf_free(gpu, dout);
    free(g), free(u), free(oc), free(og);
  }
  printf("elementwise: rms_norm, rope_cache, rope, swiglu, add checked\n");
}

/* ---- attention ---- */

typedef struct attn_shape {
  int n_head, n_kv, hd, bs;
} attn_shape;

static void test_attention_case(mlxr_backend *cpu, mlxr_backend *gpu, attn_shape sh, mlxr_dtype kvt, int prompt_len,
                                int prompt_start, double *worst) {
  const int kvd = sh.n_kv * sh.hd;
  const size_t esz = kvt == MLXR_DTYPE_F16 ? 2 : 4;
  const int lens[3] = {prompt_start + prompt_len, 37 + prompt_start / 2, 1};
  int stride = 1, total_blocks = 7;
  for (int s = 0; s < 3; s++) {
    const int nb = (lens[s] + sh.bs - 1) / sh.bs;
    stride = nb > stride ? nb : stride;
    total_blocks += nb;
  }
  /* blocks handed out in a shuffled order */
  int32_t *order = malloc(sizeof(int32_t) * (size_t)total_blocks);
  for (int i = 0; i < total_blocks; i++) order[i] = i;
  for (int i = total_blocks - 1; i > 0; i--) {
    const int j = (int)(urand() * (i + 1));
    const int32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  int32_t *tables = malloc(sizeof(int32_t) * 3 * (size_t)stride);
  int next = 0;
  for (int s = 0; s < 3; s++) {
    const int nb = (lens[s] + sh.bs - 1) / sh.bs;
    for (int b = 0; b < stride; b++) tables[s * stride + b] = b < nb ? order[next++] : -1;
  }
  const size_t slots = (size_t)total_blocks * (size_t)sh.bs;
  void *kc = calloc(slots * kvd, esz), *vc = calloc(slots * kvd, esz);
  void *kg = mlxr_backend_alloc(gpu, slots * kvd * esz), *vg = mlxr_backend_alloc(gpu, slots * kvd * esz);
  /* store every sequence's K/V through kv_store on both backends, many rows per call */
  for (int s = 0; s < 3; s++) {
    const int len = lens[s];
    float *k = malloc(sizeof(float) * (size_t)len * kvd), *v = malloc(sizeof(float) * (size_t)len * kvd);
    int64_t *sl = malloc(sizeof(int64_t) * (size_t)len);
    for (int64_t i = 0; i < (int64_t)len * kvd; i++) k[i] = 2 * frand(), v[i] = frand();
    for (int t = 0; t < len; t++) sl[t] = (int64_t)tables[s * stride + t / sh.bs] * sh.bs + t % sh.bs;
    cpu->iface->kv_store(cpu, k, v, len, kvd, kvd, sl, kc, vc, kvt);
    float *dk = dput(gpu, k, sizeof(float) * (size_t)len * kvd), *dv = dput(gpu, v, sizeof(float) * (size_t)len * kvd);
    int64_t *dsl = dput(gpu, sl, sizeof(int64_t) * (size_t)len);
    gpu->iface->kv_store(gpu, dk, dv, len, kvd, kvd, dsl, kg, vg, kvt);
    CHECK(gpu->iface->synchronize(gpu) == MLXR_OK, "kv_store run");
    mlxr_backend_buf_free(gpu, dk), mlxr_backend_buf_free(gpu, dv), mlxr_backend_buf_free(gpu, dsl);
    free(k), free(v), free(sl);
  }
  /* the pools must hold the same bytes */
  void *kback = malloc(slots * kvd * esz);
  CHECK(dget(gpu, kback, kg, slots * kvd * esz) == MLXR_OK && memcmp(kback, kc, slots * kvd * esz) == 0,
        "kv_store %s: the GPU pool differs from the CPU's", mlxr_dtype_name(kvt));
  free(kback);
  /* batch: prompt rows of sequence 0 with the last rows of sequences 1 and 2 placed among them */
  const int n_rows = prompt_len + 2, p1 = 1, p2 = 1 + (prompt_len + 1) / 2;
  int32_t *row_table = malloc(sizeof(int32_t) * (size_t)n_rows), *n_ctx = malloc(sizeof(int32_t) * (size_t)n_rows);
  int32_t max_ctx = 1;
  for (int r = 0, p = 0; r < n_rows; r++) {
    row_table[r] = r == p1 ? 1 : r == p2 ? 2 : 0;
    n_ctx[r] = row_table[r] ? lens[row_table[r]] : prompt_start + (p++) + 1;
    max_ctx = n_ctx[r] > max_ctx ? n_ctx[r] : max_ctx;
  }
  const size_t nq = (size_t)n_rows * sh.n_head * sh.hd;
  float *q = malloc(sizeof(float) * nq), *oc = malloc(sizeof(float) * nq), *og = malloc(sizeof(float) * nq);
  for (size_t i = 0; i < nq; i++) q[i] = 2 * frand();
  mlxr_attn_args a = {.n_rows = n_rows, .n_head = sh.n_head, .n_head_kv = sh.n_kv, .head_dim_k = sh.hd,
                      .head_dim_v = sh.hd, .q = q, .out = oc, .k_pool = kc, .v_pool = vc, .kv_type = kvt,
                      .block_size = sh.bs, .block_tables = tables, .table_stride = stride, .row_table = row_table,
                      .n_ctx = n_ctx, .max_ctx = max_ctx, .scale = 1.0f / sqrtf((float)sh.hd)};
  CHECK(cpu->iface->attention(cpu, &a) == MLXR_OK, "cpu attention");
  mlxr_attn_args ag = a;
  ag.q = dput(gpu, q, sizeof(float) * nq);
  ag.out = dpoison(gpu, nq);
  ag.k_pool = kg;
  ag.v_pool = vg;
  ag.block_tables = dput(gpu, tables, sizeof(int32_t) * 3 * (size_t)stride);
  ag.row_table = dput(gpu, row_table, sizeof(int32_t) * (size_t)n_rows);
  ag.n_ctx = dput(gpu, n_ctx, sizeof(int32_t) * (size_t)n_rows);
  CHECK(gpu->iface->attention(gpu, &ag) == MLXR_OK, "gpu attention call");
  CHECK(dget(gpu, og, ag.out, sizeof(float) * nq) == MLXR_OK, "gpu attention run: %s",
        gpu->iface->error_message(gpu) ? gpu->iface->error_message(gpu) : "?");
  const double e = max_abs_err(og, oc, nq), tol = kvt == MLXR_DTYPE_F32 ? 2e-5 : 4e-3;
  if (!(e <= *worst)) *worst = e;
  CHECK(e <= tol, "attention heads %d/%d hd %d bs %d kv %s prompt %d from %d: max error %.3g > %.3g", sh.n_head,
        sh.n_kv, sh.hd, sh.bs, mlxr_dtype_name(kvt), prompt_len, prompt_start, e, tol);
  /* the same batch with no keys for row p1: zeros there (as the CPU), whoever writes them */
  int32_t *n_ctx0 = malloc(sizeof(int32_t) * (size_t)n_rows);
  memcpy(n_ctx0, n_ctx, sizeof(int32_t) * (size_t)n_rows);
  n_ctx0[p1] = 0;
  a.n_ctx = n_ctx0;
  CHECK(cpu->iface->attention(cpu, &a) == MLXR_OK, "cpu attention");
  mlxr_backend_buf_free(gpu, (void *)ag.n_ctx), mlxr_backend_buf_free(gpu, ag.out);
  ag.n_ctx = dput(gpu, n_ctx0, sizeof(int32_t) * (size_t)n_rows);
  ag.out = dpoison(gpu, nq);
  CHECK(gpu->iface->attention(gpu, &ag) == MLXR_OK, "gpu attention call");
  CHECK(dget(gpu, og, ag.out, sizeof(float) * nq) == MLXR_OK, "gpu attention run");
  const double e0 = max_abs_err(og, oc, nq);
  CHECK(e0 <= tol, "attention heads %d/%d hd %d kv %s prompt %d from %d, a row without keys: max error %.3g > %.3g",
        sh.n_head, sh.n_kv, sh.hd, mlxr_dtype_name(kvt), prompt_len, prompt_start, e0, tol);
  free(n_ctx0);
  mlxr_backend_buf_free(gpu, (void *)ag.q), mlxr_backend_buf_free(gpu, ag.out);
  mlxr_backend_buf_free(gpu, (void *)ag.block_tables), mlxr_backend_buf_free(gpu, (void *)ag.row_table);
  mlxr_backend_buf_free(gpu, (void *)ag.n_ctx), mlxr_backend_buf_free(gpu, kg), mlxr_backend_buf_free(gpu, vg);
  free(order), free(tables), free(kc), free(vc), free(row_table), free(n_ctx), free(q), free(oc), free(og);
}

static void test_attention(mlxr_backend *cpu, mlxr_backend *gpu) {
  const attn_shape shapes[] = {{32, 8, 64, 16}, {32, 8, 128, 16}, {8, 8, 128, 16}, {16, 1, 64, 16},
                               {12, 4, 80, 5},  {4, 2, 16, 5},    {16, 8, 128, 16}};
  const int prompts[][2] = {{1, 0}, {1, 700}, {7, 3}, {40, 0}, {64, 17}, {300, 900}};
  for (int kv = 0; kv < 2; kv++) {
    const mlxr_dtype kvt = kv ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32;
    double worst = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      for (size_t p = 0; p < sizeof prompts / sizeof prompts[0]; p++) {
        test_attention_case(cpu, gpu, shapes[s], kvt, prompts[p][0], prompts[p][1], &worst);
      }
    }
    printf("attention kv %s: worst max error %.3g\n", mlxr_dtype_name(kvt), worst);
  }
}

/* ---- graphs: a small forward run, captured and replayed with new inputs ---- */

static void test_graphs(mlxr_backend *cpu, mlxr_backend *gpu) {
  if (!gpu->iface->graph_rows) {
    CHECK(false, "the CUDA backend offers no graphs");
    return;
  }
  const int32_t n = gpu->iface->graph_rows(gpu, 5);
  CHECK(n >= 5, "graph_rows(5) = %d", n);
  if (n < 5) return;
  const int64_t n_in = 512, n_out = 384;
  test_weight w;
  CHECK(make_weight(cpu, gpu, MLXR_DTYPE_Q4_K, n_in, n_out, &w), "graph weight");
  float *dx = mlxr_backend_alloc(gpu, sizeof(float) * (size_t)(n * n_in));
  float *dy = mlxr_backend_alloc(gpu, sizeof(float) * (size_t)(n * n_out));
  float *dz = mlxr_backend_alloc(gpu, sizeof(float) * (size_t)(n * n_out));
  float *x = malloc(sizeof(float) * (size_t)(n * n_in)), *z = malloc(sizeof(float) * (size_t)(n * n_out));
  float *yc = malloc(sizeof(float) * (size_t)(n * n_out)), *zc = malloc(sizeof(float) * (size_t)(n * n_out));
  int replays = 0;
  for (int round = 0; round < 5; round++) {
    for (int64_t i = 0; i < n * n_in; i++) x[i] = frand();
    for (int64_t i = 0; i < n * n_out; i++) zc[i] = frand();
    CHECK(mlxr_backend_upload(gpu, dx, x, sizeof(float) * (size_t)(n * n_in)) == MLXR_OK, "upload x");
    CHECK(mlxr_backend_upload(gpu, dz, zc, sizeof(float) * (size_t)(n * n_out)) == MLXR_OK, "upload z");
    const mlxr_forward_info info = {.n_rows = n, .graph = true};
    const int rc = gpu->iface->begin_forward(gpu, &info);
    CHECK(rc >= 0, "begin_forward round %d: %d", round, rc);
    if (rc == MLXR_FORWARD_REPLAYED) {
      replays++;
    } else {
      gpu->iface->matmul(gpu, &w.gpu, NULL, dx, n, dy);
      gpu->iface->swiglu(gpu, dy, dz, dz, n * n_out);
    }
    CHECK(gpu->iface->end_forward(gpu, true) == MLXR_OK, "end_forward round %d", round);
    CHECK(dget(gpu, z, dz, sizeof(float) * (size_t)(n * n_out)) == MLXR_OK, "graph round %d run", round);
    cpu->iface->matmul(cpu, &w.cpu, NULL, x, n, yc);
    cpu->iface->swiglu(cpu, yc, zc, zc, n * n_out);
    double *ref = malloc(sizeof(double) * (size_t)(n * n_out));
    to_double(zc, ref, (size_t)(n * n_out));
    const double e = rel_err(z, ref, (size_t)(n * n_out));
    CHECK(e <= 5e-2, "graph round %d (%s): error %.3g", round, rc == MLXR_FORWARD_REPLAYED ? "replayed" : "ran", e);
    free(ref);
  }
  CHECK(replays >= 2, "only %d of 5 rounds were replayed from a graph", replays);
  printf("graphs: %d of 5 rounds replayed, all matching the CPU\n", replays);
  mlxr_backend_buf_free(gpu, dx), mlxr_backend_buf_free(gpu, dy), mlxr_backend_buf_free(gpu, dz);
  free(x), free(z), free(yc), free(zc);
  free_weight(&w);
}

/* ---- greedy sampling ---- */

static void test_argmax(mlxr_backend *gpu) {
  if (!gpu->iface->argmax_rows) {
    CHECK(false, "the CUDA backend has no argmax_rows");
    return;
  }
  const int64_t cols[] = {1, 7, 1001, 128256, 151937};
  for (size_t ci = 0; ci < sizeof cols / sizeof cols[0]; ci++) {
    const int64_t n = 9, m = cols[ci];
    float *x = malloc(sizeof(float) * (size_t)(n * m));
    int32_t want[9], got[9];
    for (int64_t r = 0; r < n; r++) {
      float *row = x + r * m;
      for (int64_t i = 0; i < m; i++) row[i] = 10 * frand();
      if (r == 1 && m > 5) row[m - 1] = row[3] = 50.0f;       /* a tie: the first wins */
      if (r == 2 && m > 2) row[0] = NAN, row[m / 2] = 60.0f;  /* NaN never wins */
      if (r == 3) for (int64_t i = 0; i < m; i++) row[i] = -INFINITY; /* nothing: 0 */
      if (r == 4 && m > 3) row[m - 1] = 70.0f;                /* the last element */
      int32_t best = 0;
      float bv = -INFINITY;
      for (int64_t i = 0; i < m; i++) {
        if (row[i] > bv) bv = row[i], best = (int32_t)i;
      }
      want[r] = best;
    }
    float *dx = dput(gpu, x, sizeof(float) * (size_t)(n * m));
    int32_t *dids = mlxr_backend_alloc(gpu, sizeof got);
    CHECK(gpu->iface->argmax_rows(gpu, dx, n, m, dids) == MLXR_OK, "argmax_rows call");
    CHECK(dget(gpu, got, dids, sizeof got) == MLXR_OK, "argmax_rows run");
    for (int r = 0; r < n; r++) CHECK(got[r] == want[r], "argmax cols %lld row %d: %d, want %d", (long long)m, r, got[r], want[r]);
    mlxr_backend_buf_free(gpu, dx), mlxr_backend_buf_free(gpu, dids);
    free(x);
  }
  printf("argmax_rows: checked\n");
}

/* ---- fused ops ---- */

/* GPU result a [n] against the reference ref [n] (float), norm-wise. */
static double rel_err_f(const float *a, const float *ref, size_t n) {
  double *r = malloc(sizeof(double) * n);
  to_double(ref, r, n);
  const double e = rel_err(a, r, n);
  free(r);
  return e;
}

/* The folded ops for weights w (n_in = w[0].n_in; outs[i] rows each; a bias bg on the third) and
 * n activation rows: norm_matmul_multi against the CPU's rms_norm then matmul (and against the
 * GPU's own two ops), swiglu_matmul_acc against the CPU's swiglu then y + matmul. Quantized
 * weights on the decode path (n <= 8 rows) must fold; elsewhere MLXR_ERR_UNSUPPORTED is allowed
 * (the model then runs the separate ops), any other answer is checked the same way. */
static void test_folds(mlxr_backend *cpu, mlxr_backend *gpu, mlxr_dtype t, const test_weight *w, const int64_t *outs,
                       const mlxr_weight *bg, int64_t n) {
  if (!gpu->iface->norm_matmul_multi || !gpu->iface->swiglu_matmul_acc) {
    CHECK(false, "the CUDA backend lacks norm_matmul_multi or swiglu_matmul_acc");
    return;
  }
  const int64_t n_in = w[0].cpu.n_in;
  const bool must = mlxr_dtype_block_size(t) > 1 && n <= 8;
  const float eps = 1e-5f;
  float *x = malloc(sizeof(float) * (size_t)(n * n_in)), *up = malloc(sizeof(float) * (size_t)(n * n_in));
  float *g = malloc(sizeof(float) * (size_t)n_in), *xn = malloc(sizeof(float) * (size_t)(n * n_in));
  for (int64_t i = 0; i < n * n_in; i++) x[i] = 4 * frand(), up[i] = frand();
  for (int64_t i = 0; i < n_in; i++) g[i] = 0.25f + (float)urand();
  mlxr_weight gn = {.type = MLXR_DTYPE_F32, .n_in = n_in, .n_out = 1, .row_bytes = sizeof(float) * (size_t)n_in, .data = g};
  CHECK(gpu->iface->weight_prepare(gpu, &gn) == MLXR_OK, "norm weight upload");
  float *dx = dput(gpu, x, sizeof(float) * (size_t)(n * n_in)), *dup = dput(gpu, up, sizeof(float) * (size_t)(n * n_in));
  float *dxn = dpoison(gpu, (size_t)(n * n_in));

  /* rms_norm, then the products (with the third's bias) */
  cpu->iface->rms_norm(cpu, x, &gn, n, n_in, eps, xn);
  const mlxr_weight *ws[3] = {&w[0].gpu, &w[1].gpu, &w[2].gpu}, *bs[3] = {NULL, NULL, bg};
  float *df[3], *du[3];
  for (int i = 0; i < 3; i++) df[i] = dpoison(gpu, (size_t)(n * outs[i])), du[i] = dpoison(gpu, (size_t)(n * outs[i]));
  const int rc = gpu->iface->norm_matmul_multi(gpu, &gn, eps, 3, ws, bs, dx, n, df);
  CHECK(rc == MLXR_OK || (!must && rc == MLXR_ERR_UNSUPPORTED), "norm_matmul_multi %s rows %lld: status %d",
        mlxr_dtype_name(t), (long long)n, rc);
  gpu->iface->rms_norm(gpu, dx, &gn, n, n_in, eps, dxn);
  CHECK(gpu->iface->matmul_multi(gpu, 3, ws, bs, dxn, n, du) == MLXR_OK, "matmul_multi after rms_norm");
  for (int i = 0; rc == MLXR_OK && i < 3; i++) {
    const size_t ny = (size_t)(n * outs[i]);
    float *a = malloc(sizeof(float) * ny), *b = malloc(sizeof(float) * ny), *yc = malloc(sizeof(float) * ny);
    CHECK(cpu->iface->matmul(cpu, &w[i].cpu, NULL, xn, n, yc) == MLXR_OK, "cpu matmul");
    if (i == 2) {
      for (size_t k = 0; k < ny; k++) yc[k] += ((const float *)bg->data)[k % (size_t)outs[i]];
    }
    CHECK(dget(gpu, a, df[i], sizeof(float) * ny) == MLXR_OK && dget(gpu, b, du[i], sizeof(float) * ny) == MLXR_OK,
          "norm_matmul_multi %s run", mlxr_dtype_name(t));
    const double e_cpu = rel_err_f(a, yc, ny), e_gpu = rel_err_f(a, b, ny);
    CHECK(e_cpu <= 2 * matmul_tol(t, n), "norm_matmul_multi %s rows %lld weight %d: %.3g from the CPU's rms_norm + matmul",
          mlxr_dtype_name(t), (long long)n, i, e_cpu);
    CHECK(e_gpu <= 2e-3, "norm_matmul_multi %s rows %lld weight %d: %.3g from the GPU's rms_norm + matmul_multi",
          mlxr_dtype_name(t), (long long)n, i, e_gpu);
    free(a), free(b), free(yc);
  }

  /* y += (silu(gate) * up) W0^T, gate = x */
  const size_t ny = (size_t)(n * outs[0]);
  float *y0 = malloc(sizeof(float) * ny), *yc = malloc(sizeof(float) * ny), *yg = malloc(sizeof(float) * ny);
  for (size_t i = 0; i < ny; i++) y0[i] = 3 * frand();
  float *dy = dput(gpu, y0, sizeof(float) * ny);
  const int rs = gpu->iface->swiglu_matmul_acc(gpu, &w[0].gpu, dx, dup, n, dy);
  CHECK(rs == MLXR_OK || (!must && rs == MLXR_ERR_UNSUPPORTED), "swiglu_matmul_acc %s rows %lld: status %d",
        mlxr_dtype_name(t), (long long)n, rs);
  if (rs == MLXR_OK) {
    cpu->iface->swiglu(cpu, x, up, xn, n * n_in);
    CHECK(cpu->iface->matmul(cpu, &w[0].cpu, NULL, xn, n, yc) == MLXR_OK, "cpu matmul");
    for (size_t i = 0; i < ny; i++) yc[i] += y0[i];
    CHECK(dget(gpu, yg, dy, sizeof(float) * ny) == MLXR_OK, "swiglu_matmul_acc run");
    const double e = rel_err_f(yg, yc, ny);
    CHECK(e <= 2 * matmul_tol(t, n), "swiglu_matmul_acc %s rows %lld: %.3g from the CPU's swiglu + y + matmul",
          mlxr_dtype_name(t), (long long)n, e);
    float *ga = malloc(sizeof(float) * (size_t)(n * n_in));
    CHECK(dget(gpu, ga, dx, sizeof(float) * (size_t)(n * n_in)) == MLXR_OK &&
              memcmp(ga, x, sizeof(float) * (size_t)(n * n_in)) == 0,
          "swiglu_matmul_acc %s changed the gate", mlxr_dtype_name(t));
    free(ga);
  }
  for (int i = 0; i < 3; i++) mlxr_backend_buf_free(gpu, df[i]), mlxr_backend_buf_free(gpu, du[i]);
  void *bufs[] = {dx, dup, dxn, dy};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mlxr_backend_buf_free(gpu, bufs[i]);
  free(x), free(up), free(g), free(xn), free(y0), free(yc), free(yg);
}

static void test_fused(mlxr_backend *cpu, mlxr_backend *gpu) {
  if (!gpu->iface->matmul_multi || !gpu->iface->matmul_acc || !gpu->iface->rope_kv_store) {
    CHECK(false, "the CUDA backend lacks a fused op (matmul_multi %d, matmul_acc %d, rope_kv_store %d)",
          gpu->iface->matmul_multi != NULL, gpu->iface->matmul_acc != NULL, gpu->iface->rope_kv_store != NULL);
    return;
  }
  const mlxr_dtype types[] = {MLXR_DTYPE_F32, MLXR_DTYPE_F16, MLXR_DTYPE_BF16, MLXR_DTYPE_Q8_0,
                              MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q6_K, MLXR_DTYPE_Q5_K};
  const int64_t rows[] = {1, 3, 8, 20, 70};
  for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    const mlxr_dtype t = types[ti];
    const int64_t n_in = mlxr_dtype_block_size(t) == 256 ? 768 : 320;
    const int64_t outs[3] = {384, 96, 96};
    test_weight w[3];
    bool ok = true;
    for (int i = 0; i < 3; i++) ok = make_weight(cpu, gpu, t, n_in, outs[i], &w[i]) && ok;
    CHECK(ok, "fused %s: prepare", mlxr_dtype_name(t));
    float *bias = malloc(sizeof(float) * 96);
    for (int i = 0; i < 96; i++) bias[i] = frand();
    mlxr_weight bg = {.type = MLXR_DTYPE_F32, .n_in = 96, .n_out = 1, .row_bytes = sizeof(float) * 96, .data = bias};
    CHECK(gpu->iface->weight_prepare(gpu, &bg) == MLXR_OK, "bias upload");
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++) {
      const int64_t n = rows[ri];
      float *x = malloc(sizeof(float) * (size_t)(n * n_in));
      for (int64_t i = 0; i < n * n_in; i++) x[i] = frand();
      float *dx = dput(gpu, x, sizeof(float) * (size_t)(n * n_in));
      /* multi (with a bias on the third) against single products */
      float *dm[3], *ds[3];
      const mlxr_weight *ws[3] = {&w[0].gpu, &w[1].gpu, &w[2].gpu};
      const mlxr_weight *bs[3] = {NULL, NULL, &bg};
      for (int i = 0; i < 3; i++) dm[i] = dpoison(gpu, (size_t)(n * outs[i])), ds[i] = dpoison(gpu, (size_t)(n * outs[i]));
      CHECK(gpu->iface->matmul_multi(gpu, 3, ws, bs, dx, n, dm) == MLXR_OK, "matmul_multi call");
      for (int i = 0; i < 3; i++) CHECK(gpu->iface->matmul(gpu, ws[i], bs[i], dx, n, ds[i]) == MLXR_OK, "matmul call");
      for (int i = 0; i < 3; i++) {
        const size_t ny = (size_t)(n * outs[i]);
        float *a = malloc(sizeof(float) * ny), *b = malloc(sizeof(float) * ny);
        double *ref = malloc(sizeof(double) * ny);
        CHECK(dget(gpu, a, dm[i], sizeof(float) * ny) == MLXR_OK && dget(gpu, b, ds[i], sizeof(float) * ny) == MLXR_OK,
              "matmul_multi %s run", mlxr_dtype_name(t));
        to_double(b, ref, ny);
        const double e = rel_err(a, ref, ny);
        CHECK(e <= 1e-6, "matmul_multi %s rows %lld weight %d: %.3g from single products", mlxr_dtype_name(t),
              (long long)n, i, e);
        free(a), free(b), free(ref);
        mlxr_backend_buf_free(gpu, dm[i]), mlxr_backend_buf_free(gpu, ds[i]);
      }
      /* acc: y0 + x W^T against the CPU */
      const size_t ny = (size_t)(n * outs[0]);
      float *y0 = malloc(sizeof(float) * ny), *yc = malloc(sizeof(float) * ny), *yg = malloc(sizeof(float) * ny);
      double *ref = malloc(sizeof(double) * ny);
      for (size_t i = 0; i < ny; i++) y0[i] = 3 * frand();
      CHECK(cpu->iface->matmul(cpu, &w[0].cpu, NULL, x, n, yc) == MLXR_OK, "cpu matmul");
      for (size_t i = 0; i < ny; i++) ref[i] = (double)yc[i] + y0[i];
      float *dy = dput(gpu, y0, sizeof(float) * ny);
      CHECK(gpu->iface->matmul_acc(gpu, &w[0].gpu, dx, n, dy) == MLXR_OK, "matmul_acc call");
      CHECK(dget(gpu, yg, dy, sizeof(float) * ny) == MLXR_OK, "matmul_acc run");
      const double e = rel_err(yg, ref, ny);
      CHECK(e <= 2 * matmul_tol(t, n), "matmul_acc %s rows %lld: %.3g", mlxr_dtype_name(t), (long long)n, e);
      mlxr_backend_buf_free(gpu, dy), mlxr_backend_buf_free(gpu, dx);
      free(y0), free(yc), free(yg), free(ref), free(x);
      test_folds(cpu, gpu, t, w, outs, &bg, n);
    }
    for (int i = 0; i < 3; i++) free_weight(&w[i]);
    free(bias);
  }
  /* rope_kv_store against the three ops */
  for (int kvt = 0; kvt < 2; kvt++) {
    const mlxr_dtype kt = kvt ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32;
    const size_t esz = kvt ? 2 : 4;
    const int nh = 8, nkv = 2, hd = 64, rot = 64, half = 32;
    const int64_t n = 11, slots_n = 64;
    const size_t nq = (size_t)n * nh * hd, nk = (size_t)n * nkv * hd;
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk), *v = malloc(sizeof(float) * nk);
    float *ct = malloc(sizeof(float) * n * half), *st = malloc(sizeof(float) * n * half);
    int64_t sl[11];
    for (size_t i = 0; i < nq; i++) q[i] = frand();
    for (size_t i = 0; i < nk; i++) k[i] = frand(), v[i] = frand();
    for (int64_t i = 0; i < n * half; i++) ct[i] = cosf((float)i * 0.37f), st[i] = sinf((float)i * 0.37f);
    for (int i = 0; i < n; i++) sl[i] = (i * 7) % slots_n;
    for (int mode = 0; mode < 2; mode++) {
      const mlxr_rope_mode rm = mode ? MLXR_ROPE_NEOX : MLXR_ROPE_NORM;
      float *dq1 = dput(gpu, q, sizeof(float) * nq), *dk1 = dput(gpu, k, sizeof(float) * nk);
      float *dq2 = dput(gpu, q, sizeof(float) * nq), *dk2 = dput(gpu, k, sizeof(float) * nk);
      float *dv = dput(gpu, v, sizeof(float) * nk), *dct = dput(gpu, ct, sizeof(float) * n * half);
      float *dst = dput(gpu, st, sizeof(float) * n * half);
      int64_t *dsl = dput(gpu, sl, sizeof sl);
      void *kp1 = mlxr_backend_alloc(gpu, slots_n * nkv * hd * esz), *vp1 = mlxr_backend_alloc(gpu, slots_n * nkv * hd * esz);
      void *kp2 = mlxr_backend_alloc(gpu, slots_n * nkv * hd * esz), *vp2 = mlxr_backend_alloc(gpu, slots_n * nkv * hd * esz);
      gpu->iface->rope(gpu, dq1, n, nh, hd, rot, rm, dct, dst);
      gpu->iface->rope(gpu, dk1, n, nkv, hd, rot, rm, dct, dst);
      gpu->iface->kv_store(gpu, dk1, dv, n, nkv * hd, nkv * hd, dsl, kp1, vp1, kt);
      gpu->iface->rope_kv_store(gpu, dq2, dk2, dv, n, nh, nkv, hd, hd, rot, rm, dct, dst, dsl, kp2, vp2, kt);
      const size_t pool = (size_t)slots_n * nkv * hd * esz;
      uint8_t *a = malloc(pool), *b = malloc(pool);
      float *qa = malloc(sizeof(float) * nq), *qb = malloc(sizeof(float) * nq);
      bool same = dget(gpu, qa, dq1, sizeof(float) * nq) == MLXR_OK && dget(gpu, qb, dq2, sizeof(float) * nq) == MLXR_OK &&
                  memcmp(qa, qb, sizeof(float) * nq) == 0;
      same = same && dget(gpu, a, kp1, pool) == MLXR_OK && dget(gpu, b, kp2, pool) == MLXR_OK && memcmp(a, b, pool) == 0;
      same = same && dget(gpu, a, vp1, pool) == MLXR_OK && dget(gpu, b, vp2, pool) == MLXR_OK && memcmp(a, b, pool) == 0;
      CHECK(same, "rope_kv_store %s mode %d differs from rope + rope + kv_store", mlxr_dtype_name(kt), mode);
      free(a), free(b), free(qa), free(qb);
      void *bufs[] = {dq1, dk1, dq2, dk2, dv, dct, dst, dsl, kp1, vp1, kp2, vp2};
      for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mlxr_backend_buf_free(gpu, bufs[i]);
    }
    free(q), free(k), free(v), free(ct), free(st);
  }
  printf("fused: matmul_multi, matmul_acc, norm_matmul_multi, swiglu_matmul_acc, rope_kv_store checked\n");
}

int main(void) {
  mlxr_backend_options o = mlxr_backend_default_options();
  mlxr_backend *cpu = NULL, *gpu = NULL;
  char err[512];
  const mlxr_device_spec cs = {.kind = MLXR_DEVICE_CPU}, gs = {.kind = MLXR_DEVICE_CUDA, .index = 0};
  if (mlxr_backend_open(&gs, &o, &gpu, err, sizeof err) != MLXR_OK) {
    printf("test_cuda_ops: no usable GPU: %s\n", err);
    return 77;
  }
  if (mlxr_backend_open(&cs, &o, &cpu, err, sizeof err) != MLXR_OK) {
    fprintf(stderr, "cpu backend: %s\n", err);
    return 1;
  }
  size_t fr = 0, tot = 0;
  CHECK(gpu->iface->memory_info(gpu, &fr, &tot) == MLXR_OK && fr > 0 && fr <= tot, "memory_info");
  printf("GPU memory: %.1f GiB free of %.1f\n", (double)fr / (1 << 30), (double)tot / (1 << 30));
  CHECK(!gpu->iface->supports_op(gpu, MLXR_OP_MATMUL, MLXR_DTYPE_I32), "supports_op says yes to I32 weights");
  CHECK(!gpu->iface->supports_op(gpu, MLXR_OP_ATTENTION, MLXR_DTYPE_Q8_0), "supports_op says yes to Q8_0 KV");
  test_elementwise(cpu, gpu);
  test_get_rows(cpu, gpu);
  test_attention(cpu, gpu);
  test_graphs(cpu, gpu);
  test_argmax(gpu);
  test_fused(cpu, gpu);
  test_matmul(cpu, gpu);
  mlxr_backend_free(gpu);
  mlxr_backend_free(cpu);
  return check_report("test_cuda_ops");
}
