/*
 * gemm_r16_avx512.c: Q4_0 and Q8_0 weights repacked once at load time into "R16" groups of 16
 * rows, and the products that read them: AVX-512 VNNI for any number of activation rows (decode
 * is one row), AMX-INT8 for groups of 16 activation rows (prompt processing). The CPU backend
 * (cpu_backend.c) repacks in weight_prepare and uses these kernels only after CPUID reported
 * AVX512_VNNI (and, for the AMX ones, mlxr_quant_cpu_amx_enable() returned true).
 *
 * R16 layout. Rows are taken 16 at a time (the backend repacks only matrices with n_out % 16 == 0).
 * A group of 16 rows with nb blocks of 32 elements takes exactly the bytes the 16 rows took in the
 * file (16 * nb * type_size), block after block; block b of the group is
 *   16 f16 scales (row 0..15)                                               32 bytes, then
 *   Q4_0: 4 chunks of 64 bytes; chunk m, dword r = bytes qs[4m..4m+3] of row r's block b
 *         (low nibbles: elements 4m..4m+3, high nibbles: elements 16+4m..16+4m+3);
 *   Q8_0: 8 chunks of 64 bytes; chunk k, dword r = elements 4k..4k+3 of row r, each stored as
 *         (uint8)(q ^ 0x80) = q + 128.
 * So one 64-byte chunk holds, in its 16 int32 lanes, four consecutive elements of each of the 16
 * rows: a vpdpbusd with the four matching activation bytes broadcast to every lane adds those four
 * products to each row's own lane. A block is eight such steps and leaves the 16 rows' exact block
 * dot products in one register; no horizontal sums, and one pass over the activation row feeds
 * 16 outputs. The weights are unsigned (Q4_0 nibble q = x + 8, Q8_0 q + 128), so each block's
 * chain starts at ycorr = -offset * (sum of the activation block's quants), which the caller
 * computes once per activation row (mlxr_quant_r16_act_aux). The 16 lanes are then converted to
 * float and accumulated with dx (the 16 scales, one vcvtph2ps) times the activation block's scale.
 * A chunk is also exactly AMX's B-tile row layout (dword n of row k4 = elements 4k4..4k4+3 of
 * column n), so the AMX kernel loads Q8_0 blocks straight from the repacked weights (TDPBSUD:
 * signed activations x unsigned weights, corrected by the same ycorr) and Q4_0 blocks after
 * splitting the nibbles into a scratch copy per group.
 *
 * The repack and row-decode functions are plain C (any machine runs them; the tests use them as is).
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define R16 16
#define R16_PF 4096 /* prefetch distance, bytes */

static size_t r16_block_bytes(mlxr_dtype t) { return t == MLXR_DTYPE_Q4_0 ? 16 * 18 : 16 * 34; }

bool mlxr_quant_r16_supported(mlxr_dtype t) { return t == MLXR_DTYPE_Q4_0 || t == MLXR_DTYPE_Q8_0; }

void mlxr_quant_r16_repack(mlxr_dtype t, const void *src, size_t row_bytes, int64_t n_in,
                           int64_t n_rows, void *dst) {
  const int64_t nb = n_in / MLXR_QK;
  const size_t tsz = t == MLXR_DTYPE_Q4_0 ? 18 : 34, bb = r16_block_bytes(t);
  for (int64_t g = 0; g < n_rows / R16; g++) {
    uint8_t *out = (uint8_t *)dst + (size_t)g * R16 * row_bytes;
    for (int64_t b = 0; b < nb; b++) {
      uint8_t *ob = out + (size_t)b * bb;
      for (int r = 0; r < R16; r++) {
        const uint8_t *blk = (const uint8_t *)src + (size_t)(g * R16 + r) * row_bytes + (size_t)b * tsz;
        memcpy(ob + 2 * r, blk, 2);
        if (t == MLXR_DTYPE_Q4_0) {
          for (int m = 0; m < 4; m++) memcpy(ob + 32 + 64 * m + 4 * r, blk + 2 + 4 * m, 4);
        } else {
          for (int k = 0; k < 8; k++) {
            for (int e = 0; e < 4; e++) ob[32 + 64 * k + 4 * r + e] = blk[2 + 4 * k + e] ^ 0x80;
          }
        }
      }
    }
  }
}

bool mlxr_quant_r16_matches(mlxr_dtype t, const void *src, size_t row_bytes, int64_t n_in,
                            int64_t n_rows, const void *packed) {
  const int64_t nb = n_in / MLXR_QK;
  const size_t tsz = t == MLXR_DTYPE_Q4_0 ? 18 : 34, bb = r16_block_bytes(t);
  const uint8_t flip = t == MLXR_DTYPE_Q4_0 ? 0 : 0x80;
  for (int64_t row = 0; row < n_rows; row++) {
    const int r = (int)(row % R16);
    const uint8_t *g = (const uint8_t *)packed + (size_t)(row / R16) * R16 * row_bytes;
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *blk = (const uint8_t *)src + (size_t)row * row_bytes + (size_t)b * tsz;
      const uint8_t *ob = g + (size_t)b * bb;
      if (memcmp(ob + 2 * r, blk, 2) != 0) return false;
      for (size_t k = 0; k < (tsz - 2) / 4; k++) {
        for (int e = 0; e < 4; e++) {
          if ((uint8_t)(ob[32 + 64 * k + 4 * r + e] ^ flip) != blk[2 + 4 * k + e]) return false;
        }
      }
    }
  }
  return true;
}

void mlxr_quant_r16_row_to_float(mlxr_dtype t, const void *packed, size_t row_bytes, int64_t n_in,
                                 int64_t row, float *dst) {
  const int64_t nb = n_in / MLXR_QK;
  const size_t bb = r16_block_bytes(t);
  const int r = (int)(row % R16);
  const uint8_t *g = (const uint8_t *)packed + (size_t)(row / R16) * R16 * row_bytes;
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *ob = g + (size_t)b * bb;
    mlxr_f16 h;
    memcpy(&h, ob + 2 * r, 2);
    const float d = mlxr_f16_to_f32(h);
    float *o = dst + b * MLXR_QK;
    if (t == MLXR_DTYPE_Q4_0) {
      for (int m = 0; m < 4; m++) {
        for (int e = 0; e < 4; e++) {
          const uint8_t q = ob[32 + 64 * m + 4 * r + e];
          o[4 * m + e] = d * (float)((q & 0x0f) - 8);
          o[16 + 4 * m + e] = d * (float)((q >> 4) - 8);
        }
      }
    } else {
      for (int k = 0; k < 8; k++) {
        for (int e = 0; e < 4; e++) o[4 * k + e] = d * (float)((int)ob[32 + 64 * k + 4 * r + e] - 128);
      }
    }
  }
}

void mlxr_quant_r16_act_aux(mlxr_dtype t, const void *yrow, int64_t n_in, float *yd, int32_t *ycorr) {
  const int32_t off = t == MLXR_DTYPE_Q4_0 ? 8 : 128;
  const mlxr_block_q8_0 *yb = yrow;
  for (int64_t b = 0; b < n_in / MLXR_QK; b++) {
    int32_t s = 0;
    for (int i = 0; i < MLXR_QK; i++) s += yb[b].qs[i];
    yd[b] = mlxr_f16_to_f32(yb[b].d);
    ycorr[b] = -off * s;
  }
}

/* ---------------------------------------------------------------- VNNI */

#pragma GCC push_options
#pragma GCC target("avx512vnni")

static ALWAYS_INLINE __m512i bcast32(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/* rm activation rows x the 16 rows of one group. */
static ALWAYS_INLINE void r16_rows(const bool q4, const int rm, int64_t nb, const uint8_t *xg,
                                   const uint8_t *y, size_t by, const float *yd,
                                   const int32_t *yc, int64_t ld_aux, float *out, int64_t ldo) {
  const size_t bb = q4 ? 16 * 18 : 16 * 34;
  const __m512i lowmask = _mm512_set1_epi8(0x0f);
  __m512 acc[4];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *blk = xg + (size_t)b * bb;
    /* software prefetch 4 KiB ahead: one thread's decode goes from ~7 to ~11.5 GB/s here
     * (bench/kernel_bench.c), the hardware prefetcher alone does not keep enough lines in flight */
    for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)blk + R16_PF + o, _MM_HINT_T0);
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
    __m512i w[8];
    if (q4) {
      _Pragma("GCC unroll 4") for (int m = 0; m < 4; m++) {
        const __m512i v = _mm512_loadu_si512((const void *)(blk + 32 + 64 * m));
        w[m] = _mm512_and_si512(v, lowmask);
        w[m + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), lowmask);
      }
    } else {
      _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
        w[k] = _mm512_loadu_si512((const void *)(blk + 32 + 64 * k));
      }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const uint8_t *yq = y + (size_t)i * by + (size_t)b * sizeof(mlxr_block_q8_0) + 2;
      __m512i s0 = _mm512_set1_epi32(yc[i * ld_aux + b]), s1 = _mm512_setzero_si512();
      _Pragma("GCC unroll 4") for (int k = 0; k < 8; k += 2) {
        s0 = _mm512_dpbusd_epi32(s0, w[k], bcast32(yq + 4 * k));
        s1 = _mm512_dpbusd_epi32(s1, w[k + 1], bcast32(yq + 4 * k + 4));
      }
      const __m512 p = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      acc[i] = _mm512_fmadd_ps(p, _mm512_mul_ps(dx, _mm512_set1_ps(yd[i * ld_aux + b])), acc[i]);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) _mm512_storeu_ps(out + i * ldo, acc[i]);
}

#define R16_ROWS_FN(NAME, Q4, RM)                                                                  \
  static void NAME##_##RM(int64_t nb, const uint8_t *xg, const uint8_t *y, size_t by,              \
                          const float *yd, const int32_t *yc, int64_t ld_aux, float *out,          \
                          int64_t ldo) {                                                           \
    r16_rows(Q4, RM, nb, xg, y, by, yd, yc, ld_aux, out, ldo);                                     \
  }
R16_ROWS_FN(q4r, true, 1)
R16_ROWS_FN(q4r, true, 2)
R16_ROWS_FN(q4r, true, 3)
R16_ROWS_FN(q4r, true, 4)
R16_ROWS_FN(q8r, false, 1)
R16_ROWS_FN(q8r, false, 2)
R16_ROWS_FN(q8r, false, 3)
R16_ROWS_FN(q8r, false, 4)

typedef void (*rows_fn)(int64_t nb, const uint8_t *xg, const uint8_t *y, size_t by, const float *yd,
                        const int32_t *yc, int64_t ld_aux, float *out, int64_t ldo);
static const rows_fn q4r_fns[4] = {q4r_1, q4r_2, q4r_3, q4r_4};
static const rows_fn q8r_fns[4] = {q8r_1, q8r_2, q8r_3, q8r_4};

void mlxr_quant_r16_gemm_avx512vnni(mlxr_dtype t, int64_t n, int64_t nr, int64_t ngroups,
                                    const void *x, size_t row_bytes, const void *y, size_t by,
                                    const float *yd, const int32_t *ycorr, int64_t ld_aux,
                                    float *out, int64_t ldo) {
  const rows_fn *fns = t == MLXR_DTYPE_Q4_0 ? q4r_fns : q8r_fns;
  const int64_t nb = n / MLXR_QK;
  for (int64_t g = 0; g < ngroups; g++) {
    const uint8_t *xg = (const uint8_t *)x + (size_t)g * R16 * row_bytes;
    for (int64_t r0 = 0; r0 < nr; r0 += 4) {
      const int rm = nr - r0 < 4 ? (int)(nr - r0) : 4;
      fns[rm - 1](nb, xg, (const uint8_t *)y + (size_t)r0 * by, by, yd + r0 * ld_aux,
                  ycorr + r0 * ld_aux, ld_aux, out + r0 * ldo + g * R16, ldo);
    }
  }
}

#pragma GCC pop_options

/* ---------------------------------------------------------------- AMX */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,amx-tile,amx-int8")

#define AMX_MAX_BLOCKS 256 /* Q4_0 scratch: rows up to 8192 elements */

typedef struct r16_tile_config {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} r16_tile_config;

/* Two sets of tiles, used by alternate blocks: C 16x16 int32 in tmm0/tmm3, A (16 activation rows
 * x 32 bytes) in tmm1/tmm4, B (8 rows x 64 bytes) in tmm2/tmm5. */
static void r16_amx_configure(void) {
  r16_tile_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int s = 0; s < 2; s++) {
    cfg.colsb[3 * s] = 64;
    cfg.rows[3 * s] = 16;
    cfg.colsb[3 * s + 1] = 32;
    cfg.rows[3 * s + 1] = 16;
    cfg.colsb[3 * s + 2] = 64;
    cfg.rows[3 * s + 2] = 8;
  }
  _tile_loadconfig(&cfg);
}

/* block b's tile product into tile set 0 (tmm0-2) or 1 (tmm3-5); tile numbers must be literals */
#define R16_AMX_DP(C, A, B, b)                                                     \
  do {                                                                             \
    _tile_zero(C);                                                                 \
    _tile_loadd(A, ya + (size_t)(b) * sizeof(mlxr_block_q8_0) + 2, (long)by);      \
    _tile_loadd(B, bsrc + (size_t)(b) * bstride, 64);                              \
    _tile_dpbsud(C, A, B);                                                         \
  } while (0)

/* groups of 16 activation rows x one weight group; B tiles of block b at bsrc + b * bstride.
 * Software-pipelined: block b+1's tile product is issued before block b's int32 results are
 * stored and folded into the float accumulators, so the tile unit and the vector units overlap. */
static void r16_amx_rows(int64_t nb, int64_t agroups, const uint8_t *xg, size_t bb,
                         const uint8_t *bsrc, size_t bstride, const uint8_t *y, size_t by,
                         const float *yd, const int32_t *yc, int64_t ld_aux, float *out, int64_t ldo) {
  int32_t c[16 * 16] __attribute__((aligned(64)));
  for (int64_t a = 0; a < agroups; a++) {
    const uint8_t *ya = y + (size_t)a * 16 * by;
    const float *yda = yd + a * 16 * ld_aux;
    const int32_t *yca = yc + a * 16 * ld_aux;
    __m512 acc[16];
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    R16_AMX_DP(0, 1, 2, 0);
    for (int64_t b = 0; b < nb; b++) {
      if (b & 1) {
        if (b + 1 < nb) R16_AMX_DP(0, 1, 2, b + 1);
        _tile_stored(3, c, 64);
      } else {
        if (b + 1 < nb) R16_AMX_DP(3, 4, 5, b + 1);
        _tile_stored(0, c, 64);
      }
      const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(xg + (size_t)b * bb)));
      _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) {
        const __m512i ci = _mm512_add_epi32(_mm512_load_si512(c + 16 * i), _mm512_set1_epi32(yca[i * ld_aux + b]));
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ci), _mm512_mul_ps(dx, _mm512_set1_ps(yda[i * ld_aux + b])), acc[i]);
      }
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) _mm512_storeu_ps(out + (a * 16 + i) * ldo, acc[i]);
  }
}

/* Q4_0: the group's nibbles split into unsigned bytes (0..15), 512 bytes a block. Not inlined, so
 * that its 128 KiB frame stays off the other paths. */
static __attribute__((noinline)) void r16_amx_q4(int64_t nb, int64_t agroups, const uint8_t *xg,
                                                 const uint8_t *y, size_t by, const float *yd,
                                                 const int32_t *yc, int64_t ld_aux, float *out,
                                                 int64_t ldo) {
  uint8_t bp[AMX_MAX_BLOCKS * 512] __attribute__((aligned(64)));
  const __m512i mask = _mm512_set1_epi8(0x0f);
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *blk = xg + (size_t)b * 16 * 18 + 32;
    for (int m = 0; m < 4; m++) {
      const __m512i v = _mm512_loadu_si512((const void *)(blk + 64 * m));
      _mm512_store_si512((void *)(bp + b * 512 + 64 * m), _mm512_and_si512(v, mask));
      _mm512_store_si512((void *)(bp + b * 512 + 64 * (m + 4)), _mm512_and_si512(_mm512_srli_epi16(v, 4), mask));
    }
  }
  r16_amx_rows(nb, agroups, xg, 16 * 18, bp, 512, y, by, yd, yc, ld_aux, out, ldo);
}

void mlxr_quant_r16_gemm_amx(mlxr_dtype t, int64_t n, int64_t nr, int64_t ngroups, const void *x,
                             size_t row_bytes, const void *y, size_t by, const float *yd,
                             const int32_t *ycorr, int64_t ld_aux, float *out, int64_t ldo) {
  const int64_t nb = n / MLXR_QK;
  const int64_t agroups = t == MLXR_DTYPE_Q8_0 || nb <= AMX_MAX_BLOCKS ? nr / 16 : 0;
  if (agroups > 0) {
    r16_amx_configure();
    for (int64_t g = 0; g < ngroups; g++) {
      const uint8_t *xg = (const uint8_t *)x + (size_t)g * R16 * row_bytes;
      if (t == MLXR_DTYPE_Q4_0) {
        r16_amx_q4(nb, agroups, xg, y, by, yd, ycorr, ld_aux, out + g * R16, ldo);
      } else {
        r16_amx_rows(nb, agroups, xg, 16 * 34, xg + 32, 16 * 34, y, by, yd, ycorr, ld_aux,
                     out + g * R16, ldo);
      }
    }
    _tile_release();
  }
  const int64_t done = agroups * 16;
  if (done < nr) {
    mlxr_quant_r16_gemm_avx512vnni(t, n, nr - done, ngroups, x, row_bytes,
                                   (const uint8_t *)y + (size_t)done * by, by, yd + done * ld_aux,
                                   ycorr + done * ld_aux, ld_aux, out + done * ldo, ldo);
  }
}

#pragma GCC pop_options

#endif
