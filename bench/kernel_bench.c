/*
 * kernel_bench.c: single-thread decode (one activation row) throughput of the CPU matmul kernels
 * on a weight matrix much larger than the caches, next to a plain streaming read of the same
 * bytes: how close each kernel gets to the bandwidth it could have. Not part of the build;
 * compile by hand (x86-64 with AVX512_VNNI) against a CMake build's core library:
 *   gcc -std=c17 -O2 -D_GNU_SOURCE -I. bench/kernel_bench.c BUILD/libmlxr_core.a -o /tmp/kbench -lm -lpthread
 *   /tmp/kbench [MiB] [reps]
 * The buffers are plain malloc memory (4 KiB pages unless THP is "always"), as a worst case.
 * Prints GB/s of weight bytes for: streaming read, the gemm entry of the type traits (file
 * layout), and the R16 kernel (repacked layout), for Q4_0 and Q8_0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kernels/cpu/quants_impl.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint32_t stream_sum(const uint32_t *p, size_t n) {
  uint32_t a[16] = {0};
  for (size_t i = 0; i + 16 <= n; i += 16) {
    for (int k = 0; k < 16; k++) a[k] += p[i + k];
  }
  uint32_t s = 0;
  for (int k = 0; k < 16; k++) s ^= a[k];
  return s;
}

int main(int argc, char **argv) {
  const int mib = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 256;
  const int reps = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
  const int64_t n_in = 2048;
  const mlxr_dtype types[2] = {MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q8_0};
  for (int ti = 0; ti < 2; ti++) {
    const mlxr_dtype t = types[ti];
    const mlxr_type_traits *tt = mlxr_type_traits_get(t, MLXR_SIMD_AVX512);
    const size_t rb = (size_t)(n_in / 32) * tt->type_size;
    const int64_t n_out = ((int64_t)mib << 20) / (int64_t)rb / 16 * 16;
    const size_t bytes = rb * (size_t)n_out;
    uint8_t *w = aligned_alloc(64, bytes), *p = aligned_alloc(64, bytes);
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)(i * 2654435761u >> 13);
    for (int64_t o = 0; o < n_out; o++) {
      for (int64_t b = 0; b < n_in / 32; b++) {
        mlxr_f16 d = mlxr_f32_to_f16(0.01f);
        memcpy(w + o * rb + b * tt->type_size, &d, 2);
      }
    }
    mlxr_quant_r16_repack(t, w, rb, n_in, n_out, p);
    float *act = malloc(n_in * sizeof(float)), *out = malloc((size_t)n_out * sizeof(float));
    for (int64_t i = 0; i < n_in; i++) act[i] = (float)((i * 37) % 17) - 8.0f;
    uint8_t yq[34 * 64];
    float yd[64];
    int32_t yc[64];
    mlxr_type_traits_get(MLXR_DTYPE_Q8_0, MLXR_SIMD_AVX512)->from_float(act, yq, n_in);
    mlxr_quant_r16_act_aux(t, yq, n_in, yd, yc);
    double best_s = 1e9, best_g = 1e9, best_r = 1e9;
    uint32_t sink = 0;
    for (int r = 0; r < reps; r++) {
      double t0 = now();
      sink += stream_sum((const uint32_t *)w, bytes / 4);
      double t1 = now();
      for (int64_t o = 0; o < n_out; o += 16) tt->gemm(n_in, 1, 16, w + o * rb, rb, yq, 0, out + o, 0);
      double t2 = now();
      mlxr_quant_r16_gemm_avx512vnni(t, n_in, 1, n_out / 16, p, rb, yq, 0, yd, yc, 0, out, 0);
      double t3 = now();
      if (t1 - t0 < best_s) best_s = t1 - t0;
      if (t2 - t1 < best_g) best_g = t2 - t1;
      if (t3 - t2 < best_r) best_r = t3 - t2;
    }
    /* prompt-sized product: 128 activation rows x the first 512 weight rows (stays in cache) */
    {
      enum { NR = 128, NO = 512 };
      uint8_t *yq2 = malloc(34 * 64 * NR);
      float *yd2 = malloc(sizeof(float) * 64 * NR), *out2 = malloc(sizeof(float) * NR * NO);
      int32_t *yc2 = malloc(sizeof(int32_t) * 64 * NR);
      for (int i = 0; i < NR; i++) {
        memcpy(yq2 + i * 34 * 64, yq, 34 * 64);
        mlxr_quant_r16_act_aux(t, yq, n_in, yd2 + i * 64, yc2 + i * 64);
      }
      double bg = 1e9, br = 1e9, bv = 1e9;
      for (int r = 0; r < reps * 3; r++) {
        double t0 = now();
        for (int64_t o = 0; o < NO; o += 16) tt->gemm(n_in, NR, 16, w + o * rb, rb, yq2, 34 * 64, out2 + o, NO);
        double t1 = now();
        if (mlxr_quant_cpu_amx_enable()) mlxr_quant_r16_gemm_amx(t, n_in, NR, NO / 16, p, rb, yq2, 34 * 64, yd2, yc2, 64, out2, NO);
        double t2 = now();
        mlxr_quant_r16_gemm_avx512vnni(t, n_in, NR, NO / 16, p, rb, yq2, 34 * 64, yd2, yc2, 64, out2, NO);
        double t3 = now();
        if (t1 - t0 < bg) bg = t1 - t0;
        if (t2 - t1 < br) br = t2 - t1;
        if (t3 - t2 < bv) bv = t3 - t2;
      }
      const double macs = (double)NR * NO * n_in;
      printf("%s %d rows x %d x %lld: gemm %.1f GMAC/s, r16 amx %.1f, r16 vnni %.1f\n", mlxr_dtype_name(t),
             NR, NO, (long long)n_in, macs / bg * 1e-9, macs / br * 1e-9, macs / bv * 1e-9);
      free(yq2); free(yd2); free(out2); free(yc2);
    }
    printf("%s %.0f MiB: stream %.2f GB/s, gemm %.2f GB/s, r16 %.2f GB/s (%u)\n", mlxr_dtype_name(t),
           bytes / 1048576.0, bytes / best_s * 1e-9, bytes / best_g * 1e-9, bytes / best_r * 1e-9,
           sink + (out[0] > 0));
    free(w);
    free(p);
    free(act);
    free(out);
  }
  return 0;
}
