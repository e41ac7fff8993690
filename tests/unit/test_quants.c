/*
 * test_quants.c: the stored-type math of core/kernels/types.h, at every SIMD level this CPU runs.
 *
 * The reference here is independent of the kernels: a float64 dequantizer written per element
 * from the published GGUF block layouts (byte offsets and bit positions, nothing shared with
 * core/kernels/cpu), and an f16 decoder built on ldexp. Checks:
 *   0. each level's table is complete; on aarch64 the NEON level has its own vec_dot for every
 *      weight type, gemm for F32/F16/Q4_0/Q8_0 and its own to_float/from_float where written
 *      (so the comparisons below really exercise NEON code: see tests/golden/test_arm64_qemu.sh);
 *   1. to_float of blocks of random bytes (with random finite f16 scales; 1, 17 and 40 blocks,
 *      plain types 3, 37 and 4099 elements) equals the reference rounded to float, bit for bit
 *      (every product in these formats is exact in double, and the kernels round each element once);
 *   2. vec_dot of random weight blocks against activations quantized by from_float equals the
 *      float64 sum of dequant(x) * dequant(y) within a tolerance relative to sum |x||y| (legacy
 *      types 1, 2, 3, 128 and 129 blocks; K-quants 1, 2, 3, 16 and 17 super-blocks);
 *      the SIMD level agrees with the scalar level on identical inputs; every gemm (multi-row
 *      product) agrees with the same reference and with vec_dot, for 1..9 rows and columns and
 *      for 16-row groups x 16 columns; the R16 repacked Q4_0/Q8_0/Q4_K/Q6_K kernels (VNNI, and AMX
 *      where present) against the same reference for 1..9, 16, 17, 35 activation rows, 1-3
 *      groups of 16 weight rows, and rows one block long up to 257 blocks (past the AMX Q4_0
 *      scratch; K-quants: 1, 3 and 17 super-blocks);
 *      decoding one row of the repacked form equals to_float of the original row bit for bit;
 *   3. from_float of the activation types (Q8_0, Q8_K) and of F16/BF16 is byte-identical across
 *      levels (one block, 4096 + one block and 4096 elements); f16/bf16 conversions agree with
 *      core/common/fp16.h on all 65536 patterns and on random float32 bit patterns;
 *   4. quantize -> dequantize of Gaussian data stays under per-type RMS error bounds (measured
 *      values are printed), and zero rows or rows with one huge value give finite results.
 * Exits 0 when everything passes; prints each failure. A level or kernel this CPU cannot run is
 * named ("SKIP (CPU lacks: avx512_vnni): ...") and the exit status is then 77 (check.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/dtype.h"
#include "core/common/fp16.h"
#include "core/kernels/types.h"
#include "core/kernels/cpu/quants_impl.h" /* the R16 repacked-weight kernels (internal API) */

#include "tests/unit/check.h"

/* ---------------------------------------------------------------- RNG */

typedef struct rng {
  uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

static float rng_gauss(rng *r) {
  double u1 = rng_uniform(r), u2 = rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A finite, normal f16 with exponent in [2^-10, 2^5) and random sign and mantissa. */
static uint16_t rng_f16_scale(rng *r) {
  uint64_t v = rng_next(r);
  uint16_t exp = (uint16_t)(5 + v % 20);
  uint16_t mant = (uint16_t)((v >> 8) & 0x3ff);
  uint16_t sign = (uint16_t)((v >> 20) & 1) << 15;
  return (uint16_t)(sign | exp << 10 | mant);
}

/* ---------------------------------------------------------------- independent reference */

static double ref_f16(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 31, mant = h & 1023;
  double v;
  if (exp == 0) {
    v = ldexp((double)mant, -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = ldexp((double)(1024 + mant), exp - 25);
  }
  return sign ? -v : v;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static double ref_f32(const uint8_t *p) {
  uint32_t u = rd32(p);
  float f;
  memcpy(&f, &u, 4);
  return (double)f;
}

/* 6-bit scale / min of sub-block j of a Q4_K / Q5_K "scales[12]" field. */
static void ref_k4_scale(const uint8_t *s, int j, int *sc, int *mn) {
  if (j < 4) {
    *sc = s[j] & 0x3f;
    *mn = s[j + 4] & 0x3f;
  } else {
    *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
    *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

/* Element i of the block starting at blk (for plain types blk is the element itself, i = 0). */
static double ref_elem(mlxr_dtype t, const uint8_t *blk, int i) {
  switch (t) {
    case MLXR_DTYPE_F32: return ref_f32(blk);
    case MLXR_DTYPE_F16: return ref_f16(rd16(blk));
    case MLXR_DTYPE_BF16: {
      uint32_t u = (uint32_t)rd16(blk) << 16;
      float f;
      memcpy(&f, &u, 4);
      return (double)f;
    }
    case MLXR_DTYPE_Q4_0: {
      int byte = blk[2 + i % 16], q = i < 16 ? byte & 15 : byte >> 4;
      return ref_f16(rd16(blk)) * (q - 8);
    }
    case MLXR_DTYPE_Q4_1: {
      int byte = blk[4 + i % 16], q = i < 16 ? byte & 15 : byte >> 4;
      return ref_f16(rd16(blk)) * q + ref_f16(rd16(blk + 2));
    }
    case MLXR_DTYPE_Q5_0: {
      int byte = blk[6 + i % 16], q = i < 16 ? byte & 15 : byte >> 4;
      q |= (int)((rd32(blk + 2) >> i) & 1) << 4;
      return ref_f16(rd16(blk)) * (q - 16);
    }
    case MLXR_DTYPE_Q5_1: {
      int byte = blk[8 + i % 16], q = i < 16 ? byte & 15 : byte >> 4;
      q |= (int)((rd32(blk + 4) >> i) & 1) << 4;
      return ref_f16(rd16(blk)) * q + ref_f16(rd16(blk + 2));
    }
    case MLXR_DTYPE_Q8_0: return ref_f16(rd16(blk)) * (int8_t)blk[2 + i];
    case MLXR_DTYPE_Q8_1: return ref_f16(rd16(blk)) * (int8_t)blk[4 + i];
    case MLXR_DTYPE_Q4_K:
    case MLXR_DTYPE_Q5_K: {
      const bool five = t == MLXR_DTYPE_Q5_K;
      const uint8_t *qs = blk + (five ? 48 : 16);
      int chunk = i / 64, l = i % 32, upper = (i % 64) >= 32;
      int byte = qs[32 * chunk + l], q = upper ? byte >> 4 : byte & 15;
      if (five) q |= ((blk[16 + l] >> (2 * chunk + upper)) & 1) << 4;
      int sc, mn;
      ref_k4_scale(blk + 4, i / 32, &sc, &mn);
      return ref_f16(rd16(blk)) * sc * q - ref_f16(rd16(blk + 2)) * mn;
    }
    case MLXR_DTYPE_Q6_K: {
      int half = i / 128, r = i % 128, l = r % 32, g = r / 32;
      int lbyte = blk[64 * half + l + (g & 1) * 32];
      int lo = g < 2 ? lbyte & 15 : lbyte >> 4;
      int hi = (blk[128 + 32 * half + l] >> (2 * g)) & 3;
      int q = lo | hi << 4;
      int sc = (int8_t)blk[192 + i / 16];
      return ref_f16(rd16(blk + 208)) * sc * (q - 32);
    }
    case MLXR_DTYPE_Q8_K: return ref_f32(blk) * (int8_t)blk[4 + i];
    default: return NAN;
  }
}

/* Dequantize n elements of type t with the reference. */
static void ref_dequant(mlxr_dtype t, const void *src, double *dst, int64_t n) {
  const int64_t bs = mlxr_dtype_block_size(t);
  const size_t ts = mlxr_dtype_type_size(t);
  const uint8_t *p = src;
  for (int64_t b = 0; b < n / bs; b++) {
    for (int64_t i = 0; i < bs; i++) dst[b * bs + i] = ref_elem(t, p + (size_t)b * ts, (int)i);
  }
}

/* ---------------------------------------------------------------- block generation */

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

/* Random bytes with valid (finite, moderate) scale fields, n elements of type t. */
static void random_blocks(rng *r, mlxr_dtype t, void *dst, int64_t n) {
  const int64_t bs = mlxr_dtype_block_size(t);
  const size_t ts = mlxr_dtype_type_size(t);
  uint8_t *p = dst;
  for (size_t k = 0; k < (size_t)(n / bs) * ts; k++) p[k] = (uint8_t)rng_next(r);
  for (int64_t b = 0; b < n / bs; b++) {
    uint8_t *blk = p + (size_t)b * ts;
    switch (t) {
      case MLXR_DTYPE_F32: {
        float f = rng_gauss(r);
        memcpy(blk, &f, 4);
        break;
      }
      case MLXR_DTYPE_F16: put16(blk, mlxr_f32_to_f16(rng_gauss(r))); break;
      case MLXR_DTYPE_BF16: put16(blk, mlxr_f32_to_bf16(rng_gauss(r))); break;
      case MLXR_DTYPE_Q4_0:
      case MLXR_DTYPE_Q5_0:
      case MLXR_DTYPE_Q8_0: put16(blk, rng_f16_scale(r)); break;
      case MLXR_DTYPE_Q4_1:
      case MLXR_DTYPE_Q5_1:
      case MLXR_DTYPE_Q8_1:
      case MLXR_DTYPE_Q4_K:
      case MLXR_DTYPE_Q5_K:
        put16(blk, rng_f16_scale(r));
        put16(blk + 2, rng_f16_scale(r));
        break;
      case MLXR_DTYPE_Q6_K: put16(blk + 208, rng_f16_scale(r)); break;
      case MLXR_DTYPE_Q8_K: {
        float d = (float)ref_f16(rng_f16_scale(r));
        memcpy(blk, &d, 4);
        break;
      }
      default: break;
    }
  }
}

/* ---------------------------------------------------------------- levels */

static const mlxr_dtype k_all_types[] = {
    MLXR_DTYPE_F32,  MLXR_DTYPE_F16,  MLXR_DTYPE_BF16, MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q4_1,
    MLXR_DTYPE_Q5_0, MLXR_DTYPE_Q5_1, MLXR_DTYPE_Q8_0, MLXR_DTYPE_Q8_1, MLXR_DTYPE_Q4_K,
    MLXR_DTYPE_Q5_K, MLXR_DTYPE_Q6_K, MLXR_DTYPE_Q8_K};
#define N_TYPES ((int)(sizeof(k_all_types) / sizeof(k_all_types[0])))

static bool level_runs(mlxr_simd_level level, mlxr_simd_level best) {
  if (level == MLXR_SIMD_SCALAR) return true;
  if (best == MLXR_SIMD_NEON) return level == MLXR_SIMD_NEON;
  if (level == MLXR_SIMD_NEON) return false;
  return level <= best;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

static size_t row_bytes(mlxr_dtype t, int64_t n) {
  size_t b = 0;
  if (!mlxr_dtype_row_size(t, n, &b)) return 0;
  return b;
}

/* ---------------------------------------------------------------- 0. table sanity */

static void test_tables(mlxr_simd_level best) {
  for (int k = 0; k < N_TYPES; k++) {
    const mlxr_dtype t = k_all_types[k];
    for (int l = 0; l < MLXR_SIMD_COUNT; l++) {
      const mlxr_type_traits *tr = mlxr_type_traits_get(t, (mlxr_simd_level)l);
      CHECK(tr != NULL, "no traits for %s at %s", mlxr_dtype_name(t), mlxr_simd_level_name((mlxr_simd_level)l));
      if (!tr) continue;
      CHECK(tr->type == t, "traits type mismatch for %s", mlxr_dtype_name(t));
      CHECK(tr->block_size == mlxr_dtype_block_size(t) && tr->type_size == mlxr_dtype_type_size(t),
            "geometry of %s differs from dtype.c", mlxr_dtype_name(t));
      CHECK(tr->to_float && tr->from_float, "%s lacks to/from_float", mlxr_dtype_name(t));
      const bool activation_only = t == MLXR_DTYPE_Q8_1 || t == MLXR_DTYPE_Q8_K;
      CHECK(activation_only == (tr->vec_dot == NULL), "%s vec_dot presence", mlxr_dtype_name(t));
    }
  }
#if defined(__aarch64__)
  /* the NEON level really has its own kernels (not the scalar table) for the matmul path */
  for (int k = 0; k < N_TYPES; k++) {
    const mlxr_dtype t = k_all_types[k];
    const mlxr_type_traits *sc = mlxr_type_traits_get(t, MLXR_SIMD_SCALAR);
    const mlxr_type_traits *ne = mlxr_type_traits_get(t, MLXR_SIMD_NEON);
    if (!sc || !ne) continue;
    CHECK(sc->vec_dot == NULL || ne->vec_dot != sc->vec_dot, "%s: NEON vec_dot is the scalar one", mlxr_dtype_name(t));
    const bool has_gemm = t == MLXR_DTYPE_F32 || t == MLXR_DTYPE_F16 || t == MLXR_DTYPE_Q4_0 || t == MLXR_DTYPE_Q8_0;
    CHECK(has_gemm == (ne->gemm != NULL), "%s: NEON gemm presence", mlxr_dtype_name(t));
    const bool own_to_float = t == MLXR_DTYPE_F16 || t == MLXR_DTYPE_BF16 || t == MLXR_DTYPE_Q4_0 ||
                              t == MLXR_DTYPE_Q8_0 || t == MLXR_DTYPE_Q4_K || t == MLXR_DTYPE_Q6_K;
    CHECK(own_to_float == (ne->to_float != sc->to_float), "%s: NEON to_float selection", mlxr_dtype_name(t));
    const bool own_from_float = t == MLXR_DTYPE_F16 || t == MLXR_DTYPE_BF16 || t == MLXR_DTYPE_Q8_0 ||
                                t == MLXR_DTYPE_Q8_K;
    CHECK(own_from_float == (ne->from_float != sc->from_float), "%s: NEON from_float selection", mlxr_dtype_name(t));
  }
#endif
  CHECK(mlxr_type_traits_get(MLXR_DTYPE_Q2_K, MLXR_SIMD_SCALAR) == NULL, "q2_K has no kernels yet");
  CHECK(mlxr_type_traits_get(MLXR_DTYPE_I32, MLXR_SIMD_SCALAR) == NULL, "i32 has no kernels");
  CHECK(mlxr_type_traits_get((mlxr_dtype)1000, MLXR_SIMD_SCALAR) == NULL, "bad type id");
  CHECK(mlxr_type_traits_get(MLXR_DTYPE_F32, (mlxr_simd_level)99) == NULL, "bad level");
  CHECK(strcmp(mlxr_simd_level_name(best), "?") != 0, "level name");
}

/* ---------------------------------------------------------------- 1. dequantize vs reference */

static void test_dequant(rng *r, mlxr_simd_level best) {
  for (int k = 0; k < N_TYPES; k++) {
    const mlxr_dtype t = k_all_types[k];
    const int64_t bs = mlxr_dtype_block_size(t);
    for (int sz = 0; sz < 3; sz++) {
      /* one block (plain types: 3 elements, all tail), an odd count, and a long row */
      const int64_t n = bs == 1 ? (sz == 0 ? 3 : sz == 1 ? 37 : 4099) : bs * (sz == 0 ? 1 : sz == 1 ? 17 : 40);
      uint8_t *blocks = xmalloc(row_bytes(t, n));
      double *want = xmalloc((size_t)n * sizeof(double));
      float *got = xmalloc((size_t)n * sizeof(float));
      random_blocks(r, t, blocks, n);
      ref_dequant(t, blocks, want, n);
      for (int l = 0; l < MLXR_SIMD_COUNT; l++) {
        if (!level_runs((mlxr_simd_level)l, best)) continue;
        const mlxr_type_traits *tr = mlxr_type_traits_get(t, (mlxr_simd_level)l);
        if (!tr) continue;
        for (int64_t i = 0; i < n; i++) got[i] = -12345.0f;
        tr->to_float(blocks, got, n);
        int bad = 0;
        for (int64_t i = 0; i < n && bad < 3; i++) {
          const float w = (float)want[i];
          if (mlxr_f32_bits(w) != mlxr_f32_bits(got[i])) {
            bad++;
            CHECK(0, "to_float %s [%s] n=%lld elem %lld: got %.9g want %.9g", mlxr_dtype_name(t),
                  mlxr_simd_level_name((mlxr_simd_level)l), (long long)n, (long long)i, (double)got[i],
                  want[i]);
          }
        }
      }
      free(blocks);
      free(want);
      free(got);
    }
  }
}

/* ---------------------------------------------------------------- 2. vec_dot */

static void test_vec_dot(rng *r, mlxr_simd_level best) {
  static const int64_t sizes_legacy[] = {32, 64, 96, 4096, 4128};
  static const int64_t sizes_k[] = {256, 512, 768, 4096, 4352};
  static const int64_t sizes_plain[] = {1, 7, 32, 33, 100, 4096, 4101};
  for (int k = 0; k < N_TYPES; k++) {
    const mlxr_dtype t = k_all_types[k];
    const mlxr_type_traits *base = mlxr_type_traits_get(t, MLXR_SIMD_SCALAR);
    if (!base || !base->vec_dot) continue;
    const int64_t bs = base->block_size;
    const int64_t *sizes = bs == 1 ? sizes_plain : bs == 32 ? sizes_legacy : sizes_k;
    const int nsizes = bs == 1 ? 7 : 5;
    const mlxr_dtype yt = base->vec_dot_type;
    const mlxr_type_traits *ytr = mlxr_type_traits_get(yt, MLXR_SIMD_SCALAR);
    for (int s = 0; s < nsizes; s++) {
      const int64_t n = sizes[s];
      for (int rep = 0; rep < 3; rep++) {
        uint8_t *x = xmalloc(row_bytes(t, n));
        uint8_t *y = xmalloc(row_bytes(yt, n));
        float *act = xmalloc((size_t)n * sizeof(float));
        double *dx = xmalloc((size_t)n * sizeof(double));
        double *dy = xmalloc((size_t)n * sizeof(double));
        random_blocks(r, t, x, n);
        for (int64_t i = 0; i < n; i++) act[i] = rng_gauss(r) * (rep == 2 ? 1000.0f : 1.0f);
        ytr->from_float(act, y, n);
        ref_dequant(t, x, dx, n);
        ref_dequant(yt, y, dy, n);
        double want = 0.0, mag = 0.0;
        for (int64_t i = 0; i < n; i++) {
          want += dx[i] * dy[i];
          mag += fabs(dx[i] * dy[i]);
        }
        const double tol = (bs == 1 ? 2e-6 : 1e-5) * mag + 1e-30;
        float scalar_out = 0.0f;
        base->vec_dot(n, &scalar_out, x, y);
        for (int l = 0; l < MLXR_SIMD_COUNT; l++) {
          if (!level_runs((mlxr_simd_level)l, best)) continue;
          const mlxr_type_traits *tr = mlxr_type_traits_get(t, (mlxr_simd_level)l);
          CHECK(tr->vec_dot_type == yt, "vec_dot_type of %s differs across levels", mlxr_dtype_name(t));
          float got = NAN;
          tr->vec_dot(n, &got, x, y);
          CHECK(fabs((double)got - want) <= tol, "vec_dot %s [%s] n=%lld: got %.9g want %.9g (tol %.3g)",
                mlxr_dtype_name(t), mlxr_simd_level_name((mlxr_simd_level)l), (long long)n, (double)got, want, tol);
          CHECK(fabs((double)got - (double)scalar_out) <= 2e-6 * mag + 1e-30,
                "vec_dot %s [%s] n=%lld disagrees with scalar: %.9g vs %.9g", mlxr_dtype_name(t),
                mlxr_simd_level_name((mlxr_simd_level)l), (long long)n, (double)got, (double)scalar_out);
        }
        free(x);
        free(y);
        free(act);
        free(dx);
        free(dy);
      }
    }
  }
}

/* ---------------------------------------------------------------- 2b. gemm */

/* Every gemm (multi-row product) at every level this CPU runs, for row counts 1..9, column counts
 * 1..9 and awkward lengths (one block, an odd number of blocks, long rows; plain types with
 * lengths that are no multiple of 8), and 16/17/35 rows x 16 columns for the AMX tile kernels
 * (16-row groups plus leftovers): each output against the float64 sum of the dequantized
 * operands, and against the same level's vec_dot; the padding beyond nc in each output row must
 * stay untouched. */
static void test_gemm(rng *r, mlxr_simd_level best) {
  static const int64_t sizes_legacy[] = {32, 96, 160, 4128};
  static const int64_t sizes_k[] = {256, 768};
  static const int64_t sizes_plain[] = {1, 7, 33, 100, 1030};
  /* 1..9 rows and columns, plus 16-row groups with leftovers x 16 columns (the AMX tiles) */
  static const int row_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 35};
  static const int col_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16};
  enum { MAX_R = 35, MAX_C = 16, LDO = MAX_C + 3 };
  int n_checked = 0;
  for (int k = 0; k < N_TYPES; k++) {
    const mlxr_dtype t = k_all_types[k];
    const mlxr_type_traits *base = mlxr_type_traits_get(t, MLXR_SIMD_SCALAR);
    if (!base || !base->vec_dot) continue;
    const int64_t bs = base->block_size;
    const int64_t *sizes = bs == 1 ? sizes_plain : bs == 32 ? sizes_legacy : sizes_k;
    const int nsizes = bs == 1 ? 5 : bs == 32 ? 4 : 2;
    const mlxr_dtype yt = base->vec_dot_type;
    const mlxr_type_traits *ytr = mlxr_type_traits_get(yt, MLXR_SIMD_SCALAR);
    for (int s = 0; s < nsizes; s++) {
      const int64_t n = sizes[s];
      const size_t bx = row_bytes(t, n), by = row_bytes(yt, n);
      uint8_t *x = xmalloc(bx * MAX_C);
      uint8_t *y = xmalloc(by * MAX_R);
      float *act = xmalloc((size_t)n * sizeof(float));
      double *dx = xmalloc((size_t)n * MAX_C * sizeof(double));
      double *dy = xmalloc((size_t)n * MAX_R * sizeof(double));
      float *out = xmalloc(sizeof(float) * MAX_R * LDO);
      for (int c = 0; c < MAX_C; c++) {
        random_blocks(r, t, x + c * bx, n);
        ref_dequant(t, x + c * bx, dx + c * n, n);
      }
      for (int i = 0; i < MAX_R; i++) {
        for (int64_t e = 0; e < n; e++) act[e] = rng_gauss(r) * (i == 2 ? 1000.0f : 1.0f);
        ytr->from_float(act, y + i * by, n);
        ref_dequant(yt, y + i * by, dy + i * n, n);
      }
      for (int l = 0; l < MLXR_SIMD_COUNT; l++) {
        if (!level_runs((mlxr_simd_level)l, best)) continue;
        const mlxr_type_traits *tr = mlxr_type_traits_get(t, (mlxr_simd_level)l);
        if (!tr->gemm) continue;
        for (size_t ri = 0; ri < sizeof(row_counts) / sizeof(row_counts[0]); ri++) {
          for (size_t ci = 0; ci < sizeof(col_counts) / sizeof(col_counts[0]); ci++) {
            const int nr = row_counts[ri], nc = col_counts[ci];
            for (int e = 0; e < MAX_R * LDO; e++) out[e] = -777.0f;
            tr->gemm(n, nr, nc, x, bx, y, by, out, LDO);
            int bad = 0;
            for (int i = 0; i < nr && bad < 3; i++) {
              for (int c = 0; c < LDO && bad < 3; c++) {
                const float got = out[i * LDO + c];
                if (c >= nc) {
                  if (got != -777.0f) bad++;
                  CHECK(got == -777.0f, "gemm %s [%s] n=%lld nr=%d nc=%d wrote column %d of row %d",
                        mlxr_dtype_name(t), mlxr_simd_level_name((mlxr_simd_level)l), (long long)n,
                        nr, nc, c, i);
                  continue;
                }
                double want = 0.0, mag = 0.0;
                for (int64_t e = 0; e < n; e++) {
                  want += dx[c * n + e] * dy[i * n + e];
                  mag += fabs(dx[c * n + e] * dy[i * n + e]);
                }
                float vd = NAN;
                tr->vec_dot(n, &vd, x + c * bx, y + i * by);
                const double tol = (bs == 1 ? 2e-6 : 1e-5) * mag + 1e-30;
                const bool ok = fabs((double)got - want) <= tol &&
                                fabs((double)got - (double)vd) <= 2e-6 * mag + 1e-30;
                if (!ok) bad++;
                CHECK(ok, "gemm %s [%s] n=%lld nr=%d nc=%d out[%d][%d]: got %.9g want %.9g vec_dot %.9g",
                      mlxr_dtype_name(t), mlxr_simd_level_name((mlxr_simd_level)l), (long long)n, nr,
                      nc, i, c, (double)got, want, (double)vd);
                n_checked++;
              }
            }
            for (int i = nr; i < MAX_R; i++) {
              CHECK(out[i * LDO] == -777.0f, "gemm %s wrote row %d of %d", mlxr_dtype_name(t), i, nr);
            }
          }
        }
      }
      free(x);
      free(y);
      free(act);
      free(dx);
      free(dy);
      free(out);
    }
  }
  printf("gemm: %d outputs checked\n", n_checked);
}

/* ---------------------------------------------------------------- 2c. R16 repacked weights */

static void test_r16(rng *r) {
#if MLXR_QUANTS_X86
  const bool vnni = check_cpu_has("avx512_vnni", mlxr_quant_cpu_has_avx512_vnni());
  const bool amx = vnni && check_cpu_has("amx_int8", mlxr_quant_cpu_amx_enable());
  if (!vnni) check_cpu_lacks("avx512_vnni", "the R16 VNNI and AMX kernels (repack/decode still checked)");
  else if (!amx) check_cpu_lacks("amx_int8", "the R16 AMX kernels (VNNI checked)");
  static const int64_t sizes[] = {32, 96, 160, 4128, 8224};
  static const int64_t sizes_k[] = {256, 768, 4352};
  static const int row_counts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 35};
  const mlxr_dtype types[] = {MLXR_DTYPE_Q4_0, MLXR_DTYPE_Q8_0, MLXR_DTYPE_Q4_K, MLXR_DTYPE_Q6_K};
  enum { MAX_R = 35, N_OUT = 48, LDO = N_OUT + 5 };
  int n_checked = 0;
  for (int ti = 0; ti < 4; ti++) {
    const mlxr_dtype t = types[ti];
    const bool kq = t == MLXR_DTYPE_Q4_K || t == MLXR_DTYPE_Q6_K;
    const mlxr_type_traits *tt = mlxr_type_traits_get(t, MLXR_SIMD_SCALAR);
    const mlxr_dtype yt = tt->vec_dot_type;
    const mlxr_type_traits *ytr = mlxr_type_traits_get(yt, MLXR_SIMD_SCALAR);
    CHECK(mlxr_quant_r16_supported(t), "r16 supports %s", mlxr_dtype_name(t));
    for (size_t s = 0; s < (kq ? 3 : sizeof(sizes) / sizeof(sizes[0])); s++) {
      const int64_t n = kq ? sizes_k[s] : sizes[s], nb = n / tt->block_size;
      if (n > 4128 && !kq && !(t == MLXR_DTYPE_Q4_0 && amx)) continue; /* only the AMX fallback needs it */
      const int ci = mlxr_quant_r16_aux_ints(t);
      const size_t bx = row_bytes(t, n), by = row_bytes(yt, n);
      uint8_t *x = xmalloc(bx * N_OUT), *px = xmalloc(bx * N_OUT), *y = xmalloc(by * MAX_R);
      float *act = xmalloc((size_t)n * sizeof(float)), *f0 = xmalloc((size_t)n * sizeof(float));
      float *f1 = xmalloc((size_t)n * sizeof(float)), *yd = xmalloc(sizeof(float) * MAX_R * nb);
      int32_t *yc = xmalloc(sizeof(int32_t) * MAX_R * nb * ci);
      double *dx = xmalloc(sizeof(double) * (size_t)n * N_OUT), *dy = xmalloc(sizeof(double) * (size_t)n * MAX_R);
      float *out = xmalloc(sizeof(float) * MAX_R * LDO);
      for (int c = 0; c < N_OUT; c++) {
        random_blocks(r, t, x + c * bx, n);
        ref_dequant(t, x + c * bx, dx + c * n, n);
      }
      memset(px, 0xa5, bx * N_OUT);
      mlxr_quant_r16_repack(t, x, bx, n, N_OUT, px);
      for (int c = 0; c < N_OUT; c++) {
        tt->to_float(x + c * bx, f0, n);
        mlxr_quant_r16_row_to_float(t, px, bx, n, c, f1);
        CHECK(memcmp(f0, f1, (size_t)n * sizeof(float)) == 0, "r16 %s n=%lld row %d decodes differently",
              mlxr_dtype_name(t), (long long)n, c);
      }
      for (int i = 0; i < MAX_R; i++) {
        for (int64_t e = 0; e < n; e++) act[e] = rng_gauss(r) * (i == 2 ? 1000.0f : 1.0f);
        ytr->from_float(act, y + i * by, n);
        ref_dequant(yt, y + i * by, dy + i * n, n);
        mlxr_quant_r16_act_aux(t, y + i * by, n, yd + i * nb, yc + i * nb * ci);
      }
      for (int k = 0; k < 2 && vnni; k++) {
        if (k == 1 && !amx) continue;
        const mlxr_r16_gemm_fn fn = k ? mlxr_quant_r16_gemm_amx : mlxr_quant_r16_gemm_avx512vnni;
        const char *name = k ? "amx" : "vnni";
        for (size_t ri = 0; ri < sizeof(row_counts) / sizeof(row_counts[0]); ri++) {
          const int nr = row_counts[ri];
          for (int g0 = 0; g0 < 3; g0++) {
            for (int ng = 1; g0 + ng <= 3; ng++) {
              for (int e = 0; e < MAX_R * LDO; e++) out[e] = -777.0f;
              fn(t, n, nr, ng, px + (size_t)g0 * 16 * bx, bx, y, by, yd, yc, nb, out + g0 * 16, LDO);
              int bad = 0;
              for (int i = 0; i < MAX_R && bad < 3; i++) {
                for (int c = 0; c < LDO && bad < 3; c++) {
                  const float got = out[i * LDO + c];
                  if (i >= nr || c < g0 * 16 || c >= (g0 + ng) * 16) {
                    if (got != -777.0f) bad++;
                    CHECK(got == -777.0f, "r16 %s [%s] n=%lld nr=%d groups %d+%d wrote out[%d][%d]",
                          mlxr_dtype_name(t), name, (long long)n, nr, g0, ng, i, c);
                    continue;
                  }
                  double want = 0.0, mag = 0.0;
                  for (int64_t e = 0; e < n; e++) {
                    want += dx[c * n + e] * dy[i * n + e];
                    mag += fabs(dx[c * n + e] * dy[i * n + e]);
                  }
                  const bool ok = fabs((double)got - want) <= 1e-5 * mag + 1e-30;
                  if (!ok) bad++;
                  CHECK(ok, "r16 %s [%s] n=%lld nr=%d groups %d+%d out[%d][%d]: got %.9g want %.9g",
                        mlxr_dtype_name(t), name, (long long)n, nr, g0, ng, i, c, (double)got, want);
                  n_checked++;
                }
              }
            }
          }
        }
      }
      free(x); free(px); free(y); free(act); free(f0); free(f1); free(yd); free(yc); free(dx);
      free(dy); free(out);
    }
  }
  printf("r16: %d outputs checked (vnni %d, amx %d)\n", n_checked, vnni, amx);
#else
  (void)r;
  printf("r16: not x86, skipped\n");
#endif
}

/* ---------------------------------------------------------------- 3. conversions across levels */

static void test_from_float_levels(rng *r, mlxr_simd_level best) {
  static const mlxr_dtype act_types[] = {MLXR_DTYPE_Q8_0, MLXR_DTYPE_Q8_1, MLXR_DTYPE_Q8_K,
                                         MLXR_DTYPE_F16, MLXR_DTYPE_BF16};
  const int64_t n_max = 4096 + 256;
  float *src = xmalloc((size_t)n_max * sizeof(float));
  for (int a = 0; a < 5 * 3; a++) {
    const mlxr_dtype t = act_types[a % 5];
    /* one block, a long row plus one block (odd block count; plain types: a vector tail) */
    const int64_t bs = mlxr_dtype_block_size(t);
    const int64_t n = a < 5 ? bs : a < 10 ? 4096 + bs : 4096;
    const size_t nb = row_bytes(t, n);
    uint8_t *want = xmalloc(nb), *got = xmalloc(nb);
    for (int rep = 0; rep < 4; rep++) {
      for (int64_t i = 0; i < n; i++) {
        float v = rng_gauss(r);
        if (rep == 1) { /* amax 127 per block, so the scale is 1 and halves are exact rounding ties */
          v = (i % 32 == 0) ? 127.0f : (float)((int)(i % 253) - 126) * 0.5f;
        }
        if (rep == 2 && i % 97 == 0) v = 0.0f;
        if (rep == 3) v = (i % 256 == 7) ? -5.0f : ((i % 256 == 200) ? 5.0f : v * 0.01f);
        src[i] = v;
      }
      mlxr_type_traits_get(t, MLXR_SIMD_SCALAR)->from_float(src, want, n);
      for (int l = 1; l < MLXR_SIMD_COUNT; l++) {
        if (!level_runs((mlxr_simd_level)l, best)) continue;
        memset(got, 0xa5, nb);
        mlxr_type_traits_get(t, (mlxr_simd_level)l)->from_float(src, got, n);
        CHECK(memcmp(want, got, nb) == 0, "from_float %s [%s] n=%lld rep %d differs from scalar",
              mlxr_dtype_name(t), mlxr_simd_level_name((mlxr_simd_level)l), (long long)n, rep);
      }
    }
    free(want);
    free(got);
  }
  free(src);
}

static bool same_f32(float a, float b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) && signbit(a) == signbit(b);
  return mlxr_f32_bits(a) == mlxr_f32_bits(b);
}

static void test_half_conversions(rng *r, mlxr_simd_level best) {
  const int64_t n_all = 65536, n_rand = 1 << 20;
  uint16_t *h = xmalloc((size_t)n_all * 2);
  float *f = xmalloc((size_t)n_all * 4);
  float *fr = xmalloc((size_t)n_rand * 4);
  uint16_t *hr = xmalloc((size_t)n_rand * 2);
  for (int64_t i = 0; i < n_all; i++) h[i] = (uint16_t)i;
  for (int64_t i = 0; i < n_rand; i++) {
    /* random bit patterns, with extra weight near the f16 range, its halfway points and subnormals */
    uint32_t u = (uint32_t)rng_next(r);
    if (i % 3 == 1) u = (u & 0x80001fffu) | ((uint32_t)(100 + (u >> 13) % 50) << 23) | (i % 2 ? 0x1000u : 0);
    memcpy(&fr[i], &u, 4);
  }
  for (int l = 0; l < MLXR_SIMD_COUNT; l++) {
    if (!level_runs((mlxr_simd_level)l, best)) continue;
    const char *ln = mlxr_simd_level_name((mlxr_simd_level)l);
    /* f16 -> f32, all patterns; NaN payloads may be quieted by hardware, so NaN only needs NaN */
    const mlxr_type_traits *t16 = mlxr_type_traits_get(MLXR_DTYPE_F16, (mlxr_simd_level)l);
    t16->to_float(h, f, n_all);
    int bad = 0;
    for (int64_t i = 0; i < n_all; i++) {
      if (!same_f32(f[i], mlxr_f16_to_f32(h[i])) && bad++ < 3) {
        CHECK(0, "f16 to_float [%s] 0x%04x: %.9g vs %.9g", ln, (unsigned)i, (double)f[i], (double)mlxr_f16_to_f32(h[i]));
      }
    }
    /* f32 -> f16: every non-NaN f16 value must round-trip; random patterns must match fp16.h */
    t16->from_float(f, hr, n_all);
    bad = 0;
    for (int64_t i = 0; i < n_all; i++) {
      bool nan = ((i >> 10) & 31) == 31 && (i & 1023);
      bool ok = nan ? ((hr[i] & 0x7c00) == 0x7c00 && (hr[i] & 0x3ff)) : hr[i] == (uint16_t)i;
      if (!ok && bad++ < 3) CHECK(0, "f16 round trip [%s] 0x%04x -> 0x%04x", ln, (unsigned)i, hr[i]);
    }
    t16->from_float(fr, hr, n_rand);
    bad = 0;
    for (int64_t i = 0; i < n_rand; i++) {
      uint16_t want = mlxr_f32_to_f16(fr[i]);
      bool ok = isnan(fr[i]) ? ((hr[i] & 0x7c00) == 0x7c00 && (hr[i] & 0x3ff) && (hr[i] >> 15) == (want >> 15))
                             : hr[i] == want;
      if (!ok && bad++ < 3) {
        CHECK(0, "f16 from_float [%s] 0x%08x -> 0x%04x want 0x%04x", ln, mlxr_f32_bits(fr[i]), hr[i], want);
      }
    }
    /* bf16: exact in both directions, NaN included */
    const mlxr_type_traits *tb = mlxr_type_traits_get(MLXR_DTYPE_BF16, (mlxr_simd_level)l);
    tb->to_float(h, f, n_all);
    bad = 0;
    for (int64_t i = 0; i < n_all; i++) {
      if (mlxr_f32_bits(f[i]) != mlxr_f32_bits(mlxr_bf16_to_f32(h[i])) && bad++ < 3) {
        CHECK(0, "bf16 to_float [%s] 0x%04x", ln, (unsigned)i);
      }
    }
    tb->from_float(fr, hr, n_rand);
    bad = 0;
    for (int64_t i = 0; i < n_rand; i++) {
      if (hr[i] != mlxr_f32_to_bf16(fr[i]) && bad++ < 3) {
        CHECK(0, "bf16 from_float [%s] 0x%08x -> 0x%04x want 0x%04x", ln, mlxr_f32_bits(fr[i]), hr[i],
              mlxr_f32_to_bf16(fr[i]));
      }
    }
  }
  free(h);
  free(f);
  free(fr);
  free(hr);
}

/* ---------------------------------------------------------------- 4. quantization error */

typedef struct err_bound {
  mlxr_dtype type;
  double max_rel_rms; /* bound on RMS(error) / RMS(x) for N(0,1) data */
} err_bound;

static void test_quant_error(rng *r) {
  /* Measured (this seed; the code is deterministic): f16 2.1e-4, bf16 1.7e-3 (half an ulp of
   * 11 / 8 mantissa bits, uniform: 2^-11/sqrt(3), 2^-8/sqrt(3)); q8_0 5.3e-3, q8_K 6.9e-3 (step
   * amax/127 over 32 / 256 values, /sqrt(12)); q4_0 .085, q4_1 .078, q5_0 .042, q5_1 .037,
   * q4_K .0707, q5_K .0357, q6_K .0177. Bounds are ~15% above for the plain types, so a layout
   * bug (>= 30% error) fails. The K-quant bounds are 2-3% above, because what they guard is the
   * scale search: without it the same data gives q4_K .0776, q5_K .0376, q6_K .0183. */
  static const err_bound bounds[] = {
      {MLXR_DTYPE_F32, 0.0},     {MLXR_DTYPE_F16, 3e-4},   {MLXR_DTYPE_BF16, 2.2e-3},
      {MLXR_DTYPE_Q8_0, 6.3e-3}, {MLXR_DTYPE_Q8_1, 6.3e-3}, {MLXR_DTYPE_Q8_K, 8e-3},
      {MLXR_DTYPE_Q4_0, 0.098},  {MLXR_DTYPE_Q4_1, 0.090},  {MLXR_DTYPE_Q5_0, 0.049},
      {MLXR_DTYPE_Q5_1, 0.043},  {MLXR_DTYPE_Q4_K, 0.073},  {MLXR_DTYPE_Q5_K, 0.0368},
      {MLXR_DTYPE_Q6_K, 0.0181},
  };
  const int64_t n = 256 * 64;
  float *x = xmalloc((size_t)n * 4), *back = xmalloc((size_t)n * 4);
  uint8_t *q = xmalloc((size_t)n * 4);
  for (int64_t i = 0; i < n; i++) x[i] = rng_gauss(r);
  printf("quantize -> dequantize of N(0,1), %lld values: RMS error / RMS\n", (long long)n);
  for (size_t k = 0; k < sizeof(bounds) / sizeof(bounds[0]); k++) {
    const mlxr_dtype t = bounds[k].type;
    const mlxr_type_traits *tr = mlxr_type_traits_get(t, MLXR_SIMD_SCALAR);
    tr->from_float(x, q, n);
    tr->to_float(q, back, n);
    double se = 0.0, sx = 0.0;
    for (int64_t i = 0; i < n; i++) {
      se += ((double)back[i] - x[i]) * ((double)back[i] - x[i]);
      sx += (double)x[i] * x[i];
    }
    const double rel = sqrt(se / sx);
    printf("  %-5s %.5f (bound %.5f)\n", mlxr_dtype_name(t), rel, bounds[k].max_rel_rms);
    CHECK(rel <= bounds[k].max_rel_rms, "%s quantization error %.5f above %.5f", mlxr_dtype_name(t), rel,
          bounds[k].max_rel_rms);

    /* all-zero row: zeros back; one huge value among N(0,1): finite, and the huge one kept */
    const int64_t m = 512;
    float *row = xmalloc((size_t)m * 4), *out = xmalloc((size_t)m * 4);
    for (int c = 0; c < 2; c++) {
      const float huge = t == MLXR_DTYPE_Q8_K || t == MLXR_DTYPE_F32 ? 1e30f : t == MLXR_DTYPE_BF16 ? 1e30f : 3e4f;
      for (int64_t i = 0; i < m; i++) row[i] = c == 0 ? 0.0f : rng_gauss(r);
      if (c == 1) row[300] = -huge;
      tr->from_float(row, q, m);
      tr->to_float(q, out, m);
      bool finite = true;
      for (int64_t i = 0; i < m; i++) finite = finite && isfinite(out[i]);
      CHECK(finite, "%s: non-finite dequantized value (%s row)", mlxr_dtype_name(t), c ? "huge-value" : "zero");
      if (c == 0) {
        bool zero = true;
        for (int64_t i = 0; i < m; i++) zero = zero && out[i] == 0.0f;
        CHECK(zero, "%s: zero row does not come back as zeros", mlxr_dtype_name(t));
      } else {
        CHECK(fabs((double)out[300] + huge) <= 0.02 * huge, "%s: huge value %.6g came back as %.6g",
              mlxr_dtype_name(t), (double)-huge, (double)out[300]);
      }
    }
    free(row);
    free(out);
  }
  free(x);
  free(back);
  free(q);
}

/* The best level to test: what the CPU has, less what MLXR_TEST_HIDE_CPU hides (check.h); each
 * level it cannot run is reported as a skip. */
static mlxr_simd_level tested_best(void) {
  mlxr_simd_level best = mlxr_cpu_detect_simd();
#if defined(__x86_64__) || defined(__i386__)
  if (best == MLXR_SIMD_AVX512 && !check_cpu_has("avx512", true)) best = MLXR_SIMD_AVX2;
  if (best == MLXR_SIMD_AVX2 && !check_cpu_has("avx2", true)) best = MLXR_SIMD_SCALAR;
  if (best < MLXR_SIMD_AVX2) check_cpu_lacks("avx2", "the AVX2 kernels");
  if (best < MLXR_SIMD_AVX512) check_cpu_lacks("avx512", "the AVX-512 kernels");
#elif defined(__aarch64__)
  if (best == MLXR_SIMD_SCALAR && mlxr_quant_neon_dotprod()) {
    check_cpu_lacks("asimddp", "the NEON kernels (built with dotprod; the scalar fallback is checked)");
  }
#endif
  return best;
}

int main(void) {
  rng r = {0x5eed1234abcdULL};
  const mlxr_simd_level best = tested_best();
  printf("cpu simd level: %s\n", mlxr_simd_level_name(best));
#if defined(__aarch64__)
  printf("neon kernels built with dotprod (SDOT): %s\n", mlxr_quant_neon_dotprod() ? "yes" : "no");
#endif
  printf("levels tested:");
  for (int l = 0; l < MLXR_SIMD_COUNT; l++) {
    if (level_runs((mlxr_simd_level)l, best)) printf(" %s", mlxr_simd_level_name((mlxr_simd_level)l));
  }
  printf("\n");
  test_tables(best);
  test_dequant(&r, best);
  test_vec_dot(&r, best);
  test_gemm(&r, best);
  test_r16(&r);
  test_from_float_levels(&r, best);
  test_half_conversions(&r, best);
  test_quant_error(&r);
  if (check_failures) {
    fprintf(stderr, "%d failure(s)\n", check_failures);
    return 1;
  }
  printf("all quant tests passed\n");
  return check_report("test_quants");
}
