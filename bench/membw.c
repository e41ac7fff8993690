/*
 * membw.c: measures this machine's streaming read bandwidth (the decode roofline's denominator).
 * Each of T threads sums its slice of a buffer much larger than the caches, repeatedly; the best
 * of several passes is reported in GB/s (1e9 bytes). The loop prefetches 4 KiB ahead in software,
 * as MLXR's decode kernels do (the hardware prefetcher alone keeps fewer lines in flight here, and
 * a roofline measured without it reads low: kernels then show more than 100% of it). Built and run by bench/compare_llamacpp.sh.
 *   membw [THREADS] [MiB]
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slice {
  const float *p;
  size_t n;
  float sum;
} slice;

static void *reader(void *arg) {
  slice *s = arg;
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  for (size_t i = 0; i + 32 <= s->n; i += 32) {
    _mm_prefetch((const char *)(s->p + i) + 4096, _MM_HINT_T0);
    _mm_prefetch((const char *)(s->p + i) + 4096 + 64, _MM_HINT_T0);
    a0 = _mm256_add_ps(a0, _mm256_load_ps(s->p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(s->p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(s->p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(s->p + i + 24));
  }
  float t[8];
  _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  s->sum = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  size_t mib = argc > 2 ? (size_t)atoi(argv[2]) : 1024;
  if (threads < 1 || threads > 256 || mib < 64) return 2;
  size_t n = mib * 1024 * 1024 / sizeof(float);
  float *buf = aligned_alloc(64, n * sizeof(float));
  if (!buf) return 1;
  for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 1023);
  pthread_t th[256];
  slice sl[256];
  double best = 0;
  for (int pass = 0; pass < 12; pass++) {
    double t0 = now();
    for (int t = 0; t < threads; t++) {
      size_t b = n / threads * t, e = t == threads - 1 ? n : n / threads * (t + 1);
      b &= ~(size_t)31;
      sl[t] = (slice){buf + b, e - b, 0};
      pthread_create(&th[t], NULL, reader, &sl[t]);
    }
    float total = 0;
    for (int t = 0; t < threads; t++) {
      pthread_join(th[t], NULL);
      total += sl[t].sum;
    }
    double gbs = n * sizeof(float) / (now() - t0) / 1e9;
    if (gbs > best) best = gbs;
    if (total == -1.0f) printf("impossible\n");
  }
  printf("%.2f\n", best);
  free(buf);
  return 0;
}
