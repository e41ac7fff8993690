/*
 * test_kernel_attn.c: the CPU backend's paged attention on prompt-shaped batches, at every SIMD
 * level the machine has (the tiled AVX-512 kernel of attn_tiled_avx512.c and the per-row path
 * below it), against a float64 softmax(q.K^T * scale) . V computed here from the definition.
 *
 * Shapes chosen to hit the tiled kernel's edges: head dims 16, 64 and 128 (and 24, which the
 * tiled kernel does not take: per-row path at every level); GQA groups 1, 4, 8 and 16 (runs of
 * 64, 16, 8 and 4 rows per unit); block sizes 16, 7 and 32 (chunks of 16 keys that straddle
 * blocks); contexts from 1 to 300 with scattered block tables; batches that mix a prompt of one
 * sequence (consecutive positions: causal lengths growing row by row, so rows early in a run see
 * chunks entirely masked) with single rows of two other sequences, interleaved; F32 and F16 KV.
 * The reference reads the cache values back exactly as stored (f16 rounding included). The long
 * prompt runs at the best level with 3 threads only (its float64 reference dominates the time).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/fp16.h"
#include "core/common/status.h"
#include "core/kernels/cpu/cpu_backend.h"
#include "core/kernels/types.h"
#include "tests/unit/check.h"

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((double)(rng >> 11) * 0x1.0p-52 - 1.0);
}

typedef struct seq {
  int len;        /* tokens stored */
  int32_t *table; /* block ids */
  double *k, *v;  /* [len][kvd] as stored */
} seq;

typedef struct shape {
  int n_head, n_kv, hd, bs;
} shape;

static void run_case(mlxr_backend *be, const char *tag, shape sh, mlxr_dtype kv_type, int prompt_len,
                     int prompt_start) {
  const int kvd = sh.n_kv * sh.hd, G = sh.n_head / sh.n_kv;
  const size_t esz = kv_type == MLXR_DTYPE_F16 ? 2 : 4;
  const int lens[3] = {prompt_start + prompt_len, 37, 1};
  int n_blocks_total = 0;
  for (int s = 0; s < 3; s++) n_blocks_total += (lens[s] + sh.bs - 1) / sh.bs;
  n_blocks_total += 5; /* unused blocks in between */
  void *kp = calloc((size_t)n_blocks_total * (size_t)sh.bs * (size_t)kvd, esz);
  void *vp = calloc((size_t)n_blocks_total * (size_t)sh.bs * (size_t)kvd, esz);
  /* scatter: block ids handed out in a shuffled order */
  int32_t *order = malloc(sizeof(int32_t) * (size_t)n_blocks_total);
  for (int i = 0; i < n_blocks_total; i++) order[i] = i;
  for (int i = n_blocks_total - 1; i > 0; i--) {
    const int j = (int)((frand() + 1.0f) * 0.5f * (float)i);
    const int32_t t = order[i];
    order[i] = order[j < i ? j : i];
    order[j < i ? j : i] = t;
  }
  seq sq[3];
  int next = 0;
  float *krow = malloc(sizeof(float) * (size_t)kvd), *vrow = malloc(sizeof(float) * (size_t)kvd);
  for (int s = 0; s < 3; s++) {
    const int nb = (lens[s] + sh.bs - 1) / sh.bs;
    sq[s].len = lens[s];
    sq[s].table = malloc(sizeof(int32_t) * (size_t)nb);
    for (int b = 0; b < nb; b++) sq[s].table[b] = order[next++];
    sq[s].k = malloc(sizeof(double) * (size_t)lens[s] * (size_t)kvd);
    sq[s].v = malloc(sizeof(double) * (size_t)lens[s] * (size_t)kvd);
    for (int t = 0; t < lens[s]; t++) {
      for (int i = 0; i < kvd; i++) {
        krow[i] = 2.0f * frand();
        vrow[i] = frand();
        sq[s].k[(size_t)t * kvd + i] = kv_type == MLXR_DTYPE_F16 ? mlxr_f16_to_f32(mlxr_f32_to_f16(krow[i])) : krow[i];
        sq[s].v[(size_t)t * kvd + i] = kv_type == MLXR_DTYPE_F16 ? mlxr_f16_to_f32(mlxr_f32_to_f16(vrow[i])) : vrow[i];
      }
      const int64_t slot = (int64_t)sq[s].table[t / sh.bs] * sh.bs + t % sh.bs;
      be->iface->kv_store(be, krow, vrow, 1, kvd, kvd, &slot, kp, vp, kv_type);
    }
  }
  /* batch: the prompt rows of sequence 0 at positions prompt_start.., with the last rows of
   * sequences 1 and 2 placed after the first prompt row and in the middle */
  const int n_rows = prompt_len + 2;
  /* the three sequences' block tables as rows of one [3][stride] array, as the KV cache keeps them */
  int stride = 1;
  for (int s = 0; s < 3; s++) {
    const int nb = (lens[s] + sh.bs - 1) / sh.bs;
    if (nb > stride) stride = nb;
  }
  int32_t *tables = malloc(sizeof(int32_t) * 3 * (size_t)stride);
  for (int s = 0; s < 3; s++) {
    for (int b = 0; b < stride; b++) tables[s * stride + b] = b < (lens[s] + sh.bs - 1) / sh.bs ? sq[s].table[b] : -1;
  }
  int32_t *row_table = malloc(sizeof(int32_t) * (size_t)n_rows);
  int32_t max_ctx = 1;
  int32_t *n_ctx = malloc(sizeof(int32_t) * (size_t)n_rows);
  int *which = malloc(sizeof(int) * (size_t)n_rows);
  const int pos1 = 1, pos2 = 1 + (prompt_len + 1) / 2;
  for (int r = 0, p = 0; r < n_rows; r++) {
    if (r == pos1 || r == pos2) {
      which[r] = r == pos1 ? 1 : 2;
      n_ctx[r] = lens[which[r]];
    } else {
      which[r] = 0;
      n_ctx[r] = prompt_start + (p++) + 1;
    }
    row_table[r] = which[r];
    if (n_ctx[r] > max_ctx) max_ctx = n_ctx[r];
  }
  float *q = malloc(sizeof(float) * (size_t)n_rows * (size_t)sh.n_head * (size_t)sh.hd);
  float *out = malloc(sizeof(float) * (size_t)n_rows * (size_t)sh.n_head * (size_t)sh.hd);
  for (int i = 0; i < n_rows * sh.n_head * sh.hd; i++) q[i] = 2.0f * frand();
  const float scale = 1.0f / sqrtf((float)sh.hd);
  mlxr_attn_args args = {.n_rows = n_rows, .n_head = sh.n_head, .n_head_kv = sh.n_kv, .head_dim_k = sh.hd,
                         .head_dim_v = sh.hd, .q = q, .out = out, .k_pool = kp, .v_pool = vp,
                         .kv_type = kv_type, .block_size = sh.bs, .block_tables = tables,
                         .table_stride = stride, .row_table = row_table, .n_ctx = n_ctx, .max_ctx = max_ctx,
                         .scale = scale};
  CHECK(be->iface->attention(be, &args) == MLXR_OK, "attention call");
  double worst = 0.0;
  double *sc = malloc(sizeof(double) * (size_t)lens[0] + sizeof(double) * 64);
  for (int r = 0; r < n_rows; r++) {
    const seq *S = &sq[which[r]];
    for (int h = 0; h < sh.n_head; h++) {
      const int kh = h / G;
      const float *qr = q + ((size_t)r * sh.n_head + h) * sh.hd;
      double mx = -INFINITY, z = 0.0;
      for (int t = 0; t < n_ctx[r]; t++) {
        double s = 0.0;
        for (int i = 0; i < sh.hd; i++) s += (double)qr[i] * S->k[(size_t)t * kvd + kh * sh.hd + i];
        sc[t] = s * scale;
        if (sc[t] > mx) mx = sc[t];
      }
      for (int t = 0; t < n_ctx[r]; t++) z += (sc[t] = exp(sc[t] - mx));
      for (int i = 0; i < sh.hd; i++) {
        double o = 0.0;
        for (int t = 0; t < n_ctx[r]; t++) o += sc[t] / z * S->v[(size_t)t * kvd + kh * sh.hd + i];
        const double e = fabs(out[((size_t)r * sh.n_head + h) * sh.hd + i] - o);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
      }
    }
  }
  CHECK(worst < 3e-6, "%s heads %d/%d hd %d bs %d kv %s prompt %d from %d: max err %g", tag, sh.n_head,
        sh.n_kv, sh.hd, sh.bs, mlxr_dtype_name(kv_type), prompt_len, prompt_start, worst);
  free(sc);
  free(q);
  free(out);
  free(tables);
  free(row_table);
  free(n_ctx);
  free(which);
  for (int s = 0; s < 3; s++) {
    free(sq[s].table);
    free(sq[s].k);
    free(sq[s].v);
  }
  free(krow);
  free(vrow);
  free(order);
  free(kp);
  free(vp);
}

int main(void) {
  const shape shapes[] = {{4, 4, 16, 16}, {8, 2, 64, 7}, {32, 8, 64, 16}, {16, 8, 128, 32},
                          {16, 2, 64, 16}, {16, 1, 16, 5}, {6, 3, 24, 16}};
  const int prompts[][2] = {{1, 0}, {5, 3}, {17, 0}, {40, 60}, {130, 170}};
  const mlxr_simd_level best = mlxr_cpu_detect_simd();
  int cases = 0;
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
      for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (size_t pi = 0; pi < sizeof(prompts) / sizeof(prompts[0]); pi++) {
          /* the long prompt (a few hundred positions, most chunks) once, at the best level */
          if (pi == sizeof(prompts) / sizeof(prompts[0]) - 1 && (level != (int)best || threads != 3)) continue;
          for (int kvt = 0; kvt < 2; kvt++) {
            run_case(be, tag, shapes[s], kvt ? MLXR_DTYPE_F16 : MLXR_DTYPE_F32, prompts[pi][0], prompts[pi][1]);
            cases++;
          }
        }
      }
      mlxr_backend_free(be);
    }
  }
  printf("test_kernel_attn: %d cases over %d SIMD levels\n", cases, (int)best + 1);
  return check_report("test_kernel_attn");
}
