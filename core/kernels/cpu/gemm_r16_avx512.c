/*
 * gemm_r16_avx512.c: Q4_0, Q8_0, Q4_K and Q6_K weights repacked once at load time into "R16"
 * groups of 16 rows, and the products that read them: AVX-512 VNNI for any number of activation
 * rows (decode is one row), AMX-INT8 for groups of 16 activation rows (prompt processing; Q4_0
 * and Q8_0 here, Q4_K and Q6_K in gemm_r16k_amx_avx512.c). The K-quant VNNI kernels are described
 * above r16_q4k_rows / r16_q6k_rows. The CPU backend (cpu_backend.c) repacks in weight_prepare and uses these kernels only after CPUID reported
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
 * The K-quants follow the same rule field by field (f16 fields: 16 x 2 bytes; every other field
 * cut into dwords, dword k of row r at field + 64k + 4r; see r16_map_init):
 *   Q4_K (2304 bytes a group block): d [0,32), dmin [32,64), scales [64,256), qs [256,2304);
 *   Q6_K (3360 bytes): ql [0,2048), qh [2048,3072), scales [3072,3328), d [3328,3360).
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
#include <stdlib.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define R16 16
#define R16_PF 4096 /* prefetch distance, bytes */

/* Where each byte of a row's block goes in the group's block: fields of 2 bytes per row (f16
 * scales) at base + 2r, and fields cut into dwords, dword k of row r at base + 64k + 4r. */
typedef struct r16_map {
  size_t tsz;          /* bytes per block of one row */
  uint16_t off[210];   /* packed offset of byte o for row 0 */
  uint8_t step[210];   /* added per row: 2 or 4 */
  uint8_t flip[210];   /* xor applied (Q8_0 quants: 0x80) */
} r16_map;

static void r16_field(r16_map *m, size_t so, size_t len, size_t base, bool dwords, uint8_t flip) {
  for (size_t o = 0; o < len; o++) {
    m->off[so + o] = (uint16_t)(dwords ? base + 64 * (o / 4) + o % 4 : base + o);
    m->step[so + o] = dwords ? 4 : 2;
    m->flip[so + o] = flip;
  }
}

static void r16_map_init(mlxr_dtype t, r16_map *m) {
  memset(m, 0, sizeof(*m));
  if (t == MLXR_DTYPE_Q4_0) {
    m->tsz = 18;
    r16_field(m, 0, 2, 0, false, 0);
    r16_field(m, 2, 16, 32, true, 0);
  } else if (t == MLXR_DTYPE_Q8_0) {
    m->tsz = 34;
    r16_field(m, 0, 2, 0, false, 0);
    r16_field(m, 2, 32, 32, true, 0x80);
  } else if (t == MLXR_DTYPE_Q6_K) { /* ql[128], qh[64], scales[16], d */
    m->tsz = 210;
    r16_field(m, 0, 128, 0, true, 0);
    r16_field(m, 128, 64, 2048, true, 0);
    r16_field(m, 192, 16, 3072, true, 0);
    r16_field(m, 208, 2, 3328, false, 0);
  } else { /* Q4_K: d, dmin, scales[12], qs[128] */
    m->tsz = 144;
    r16_field(m, 0, 2, 0, false, 0);
    r16_field(m, 2, 2, 32, false, 0);
    r16_field(m, 4, 12, 64, true, 0);
    r16_field(m, 16, 128, 256, true, 0);
  }
}

bool mlxr_quant_r16_supported(mlxr_dtype t) {
  return t == MLXR_DTYPE_Q4_0 || t == MLXR_DTYPE_Q8_0 || t == MLXR_DTYPE_Q4_K || t == MLXR_DTYPE_Q6_K;
}

void mlxr_quant_r16_repack(mlxr_dtype t, const void *src, size_t row_bytes, int64_t n_in,
                           int64_t n_rows, void *dst) {
  r16_map m;
  r16_map_init(t, &m);
  /* the map as units of 4 bytes (dword fields) and 2 bytes (f16 fields): one move per unit */
  uint16_t u4s[64], u4d[64], u2s[8], u2d[8];
  int n4 = 0, n2 = 0;
  for (size_t o = 0; o < m.tsz;) {
    if (m.step[o] == 4) {
      u4s[n4] = (uint16_t)o;
      u4d[n4++] = m.off[o];
      o += 4;
    } else {
      u2s[n2] = (uint16_t)o;
      u2d[n2++] = m.off[o];
      o += 2;
    }
  }
  const uint32_t flip4 = t == MLXR_DTYPE_Q8_0 ? 0x80808080u : 0; /* the only flipped field */
  const int64_t nb = n_in / mlxr_dtype_block_size(t);
  const size_t bb = R16 * m.tsz;
  for (int64_t g = 0; g < n_rows / R16; g++) {
    uint8_t *out = (uint8_t *)dst + (size_t)g * R16 * row_bytes;
    for (int r = 0; r < R16; r++) {
      const uint8_t *row = (const uint8_t *)src + (size_t)(g * R16 + r) * row_bytes;
      for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * m.tsz;
        uint8_t *ob = out + (size_t)b * bb;
        for (int u = 0; u < n2; u++) memcpy(ob + u2d[u] + 2 * r, blk + u2s[u], 2);
        for (int u = 0; u < n4; u++) {
          uint32_t v;
          memcpy(&v, blk + u4s[u], 4);
          v ^= flip4;
          memcpy(ob + u4d[u] + 4 * r, &v, 4);
        }
      }
    }
  }
}

/* row `row` of the packed matrix back in the file's layout */
static void r16_unpack_row(const r16_map *m, const void *packed, size_t row_bytes, int64_t nb,
                           int64_t row, uint8_t *dst) {
  const int r = (int)(row % R16);
  const uint8_t *g = (const uint8_t *)packed + (size_t)(row / R16) * R16 * row_bytes;
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *ob = g + (size_t)b * R16 * m->tsz;
    for (size_t o = 0; o < m->tsz; o++) dst[(size_t)b * m->tsz + o] = ob[m->off[o] + m->step[o] * r] ^ m->flip[o];
  }
}

bool mlxr_quant_r16_matches(mlxr_dtype t, const void *src, size_t row_bytes, int64_t n_in,
                            int64_t n_rows, const void *packed) {
  r16_map m;
  r16_map_init(t, &m);
  uint8_t *tmp = malloc(row_bytes);
  if (!tmp) return false;
  bool same = true;
  for (int64_t row = 0; row < n_rows && same; row++) {
    r16_unpack_row(&m, packed, row_bytes, n_in / mlxr_dtype_block_size(t), row, tmp);
    same = memcmp(tmp, (const uint8_t *)src + (size_t)row * row_bytes, row_bytes) == 0;
  }
  free(tmp);
  return same;
}

int mlxr_quant_r16_aux_ints(mlxr_dtype t) {
  return t == MLXR_DTYPE_Q4_K ? 4 : t == MLXR_DTYPE_Q6_K ? 8 : 1;
}

void mlxr_quant_r16_row_to_float(mlxr_dtype t, const void *packed, size_t row_bytes, int64_t n_in,
                                 int64_t row, float *dst) {
  r16_map m;
  r16_map_init(t, &m);
  const int64_t bs = mlxr_dtype_block_size(t), nb = n_in / bs;
  const mlxr_to_float_fn to_float = mlxr_type_traits_get(t, MLXR_SIMD_SCALAR)->to_float;
  const int r = (int)(row % R16);
  const uint8_t *g = (const uint8_t *)packed + (size_t)(row / R16) * R16 * row_bytes;
  uint8_t blk[210];
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *ob = g + (size_t)b * R16 * m.tsz;
    for (size_t o = 0; o < m.tsz; o++) blk[o] = ob[m.off[o] + m.step[o] * r] ^ m.flip[o];
    to_float(blk, dst + b * bs, bs);
  }
}

void mlxr_quant_r16_act_aux(mlxr_dtype t, const void *yrow, int64_t n_in, float *yd, int32_t *ycorr) {
  if (t == MLXR_DTYPE_Q4_K) {
    /* Q8_K activations: the block scale, and the 8 sub-block sums of 32 packed as int16 pairs
     * (s0, s2), (s1, s3), (s4, s6), (s5, s7) for the vpdpwssd with the packed mins */
    const mlxr_block_q8_K *yb = yrow;
    for (int64_t b = 0; b < n_in / MLXR_QK_K; b++) {
      int32_t sj[8];
      for (int j = 0; j < 8; j++) sj[j] = yb[b].bsums[2 * j] + yb[b].bsums[2 * j + 1];
      yd[b] = yb[b].d;
      for (int k = 0; k < 4; k++) {
        const int lo = (k & 1) + 4 * (k >> 1), hi = lo + 2;
        ycorr[4 * b + k] = (int32_t)(((uint32_t)(uint16_t)sj[lo]) | ((uint32_t)(uint16_t)sj[hi] << 16));
      }
    }
    return;
  }
  if (t == MLXR_DTYPE_Q6_K) {
    /* Q8_K activations: the block scale, and the 16 sums of 16 packed as int16 pairs
     * (s[4t], s[4t+2]), (s[4t+1], s[4t+3]) for t < 4, matching the kernel's scale words */
    const mlxr_block_q8_K *yb = yrow;
    for (int64_t b = 0; b < n_in / MLXR_QK_K; b++) {
      const int16_t *bs = yb[b].bsums;
      yd[b] = yb[b].d;
      for (int t4 = 0; t4 < 4; t4++) {
        for (int o = 0; o < 2; o++) {
          ycorr[8 * b + 2 * t4 + o] = (int32_t)((uint32_t)(uint16_t)bs[4 * t4 + o] |
                                                ((uint32_t)(uint16_t)bs[4 * t4 + o + 2] << 16));
        }
      }
    }
    return;
  }
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

/* Q4_K: rm activation rows (Q8_K) x the 16 rows of one group. Per super-block: the 6-bit scales
 * and mins of the 16 rows are unpacked lane-wise from the three scale dwords; each 64-element
 * chunk's nibbles are split once and fed to every activation row (two dpbusd chains, sub-blocks
 * 2c and 2c+1), the chains are scaled by the sub-block scales (vpmulld, exact in int32) and
 * summed; the min term sum_j m_j * ysum_j is two pairs of vpdpwssd on int16 mins x the
 * activation's packed sub-block sums (mlxr_quant_r16_act_aux). */
static ALWAYS_INLINE void r16_q4k_rows(const int rm, int64_t nb, const uint8_t *xg, const uint8_t *y,
                                       size_t by, const float *yd, const int32_t *yc,
                                       int64_t ld_aux, float *out, int64_t ldo) {
  const size_t bb = 16 * 144;
  const __m512i m4 = _mm512_set1_epi8(0x0f), m6 = _mm512_set1_epi8(0x3f), m30 = _mm512_set1_epi8(0x30);
  const __m512i m00ff = _mm512_set1_epi32(0x00ff00ff), mff = _mm512_set1_epi32(0xff);
  __m512 acc[4];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *blk = xg + (size_t)b * bb;
    for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)blk + R16_PF + o, _MM_HINT_T0);
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
    const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
    const __m512i d0 = _mm512_loadu_si512((const void *)(blk + 64));
    const __m512i d1 = _mm512_loadu_si512((const void *)(blk + 128));
    const __m512i d2 = _mm512_loadu_si512((const void *)(blk + 192));
    const __m512i sc03 = _mm512_and_si512(d0, m6), m03 = _mm512_and_si512(d1, m6);
    const __m512i sc47 = _mm512_or_si512(_mm512_and_si512(d2, m4),
                                         _mm512_and_si512(_mm512_srli_epi32(d0, 2), m30));
    const __m512i m47 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(d2, 4), m4),
                                        _mm512_and_si512(_mm512_srli_epi32(d1, 2), m30));
    __m512i sc[8];
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
      sc[j] = _mm512_and_si512(_mm512_srli_epi32(sc03, 8 * j), mff);
      sc[j + 4] = _mm512_and_si512(_mm512_srli_epi32(sc47, 8 * j), mff);
    }
    const __m512i mp[4] = {_mm512_and_si512(m03, m00ff), _mm512_and_si512(_mm512_srli_epi32(m03, 8), m00ff),
                           _mm512_and_si512(m47, m00ff), _mm512_and_si512(_mm512_srli_epi32(m47, 8), m00ff)};
    __m512i isum[4];
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) isum[i] = _mm512_setzero_si512();
    for (int c = 0; c < 4; c++) {
      __m512i lo[8], hi[8];
      _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
        const __m512i v = _mm512_loadu_si512((const void *)(blk + 256 + 64 * (8 * c + k)));
        lo[k] = _mm512_and_si512(v, m4);
        hi[k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      }
      _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
        const uint8_t *yq = y + (size_t)i * by + (size_t)b * sizeof(mlxr_block_q8_K) + 4 + 64 * c;
        __m512i dl = _mm512_setzero_si512(), dh = _mm512_setzero_si512();
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
          dl = _mm512_dpbusd_epi32(dl, lo[k], bcast32(yq + 4 * k));
          dh = _mm512_dpbusd_epi32(dh, hi[k], bcast32(yq + 32 + 4 * k));
        }
        isum[i] = _mm512_add_epi32(isum[i], _mm512_add_epi32(_mm512_mullo_epi32(dl, sc[2 * c]),
                                                             _mm512_mullo_epi32(dh, sc[2 * c + 1])));
      }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const int32_t *yci = yc + (i * ld_aux + b) * 4;
      __m512i ms = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp[0], _mm512_set1_epi32(yci[0]));
      ms = _mm512_dpwssd_epi32(ms, mp[1], _mm512_set1_epi32(yci[1]));
      ms = _mm512_dpwssd_epi32(ms, mp[2], _mm512_set1_epi32(yci[2]));
      ms = _mm512_dpwssd_epi32(ms, mp[3], _mm512_set1_epi32(yci[3]));
      const __m512 dy = _mm512_set1_ps(yd[i * ld_aux + b]);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_mul_ps(dx, dy), acc[i]);
      acc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(dmin, dy), acc[i]);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) _mm512_storeu_ps(out + i * ldo, acc[i]);
}

/* Q6_K: rm activation rows (Q8_K) x the 16 rows of one group. For each half and each of the four
 * 32-element quarters, the 6-bit quants of the 16 rows are assembled lane-wise from the ql and qh
 * dwords (unsigned 0..63), fed to every activation row in two dpbusd chains (the quarter's two
 * 16-element sub-blocks), and scaled by the sign-extended int8 sub-block scales (vpmulld). The
 * -32 offset is sum_s sc_s * bsum_s, four pairs of vpdpwssd against the activation's packed
 * 16-element sums; everything stays exact in int32 until the final scale d * dy. */
static ALWAYS_INLINE void r16_q6k_rows(const int rm, int64_t nb, const uint8_t *xg, const uint8_t *y,
                                       size_t by, const float *yd, const int32_t *yc,
                                       int64_t ld_aux, float *out, int64_t ldo) {
  const size_t bb = 16 * 210;
  const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(0x03);
  const __m512i mc = _mm512_set1_epi8(0x0c), m30 = _mm512_set1_epi8(0x30);
  __m512 acc[4];
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *blk = xg + (size_t)b * bb;
    for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)blk + R16_PF + o, _MM_HINT_T0);
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 3328)));
    __m512i dsc[4];
    _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) dsc[t] = _mm512_loadu_si512((const void *)(blk + 3072 + 64 * t));
    __m512i isum[4];
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) isum[i] = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
      _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        __m512i q[8];
        _Pragma("GCC unroll 8") for (int k = 0; k < 8; k++) {
          const __m512i src = _mm512_loadu_si512((const void *)(blk + 64 * (16 * h + 8 * (j & 1) + k)));
          const __m512i hb = _mm512_loadu_si512((const void *)(blk + 2048 + 64 * (8 * h + k)));
          const __m512i lo = j < 2 ? _mm512_and_si512(src, m4) : _mm512_and_si512(_mm512_srli_epi16(src, 4), m4);
          const __m512i hi = j == 0   ? _mm512_slli_epi16(_mm512_and_si512(hb, m3), 4)
                             : j == 1 ? _mm512_slli_epi16(_mm512_and_si512(hb, mc), 2)
                             : j == 2 ? _mm512_and_si512(hb, m30)
                                      : _mm512_and_si512(_mm512_srli_epi16(hb, 2), m30);
          q[k] = _mm512_or_si512(lo, hi);
        }
        const int s0 = 8 * h + 2 * j, s1 = s0 + 1;
        const __m512i sc0 = _mm512_srai_epi32(_mm512_slli_epi32(dsc[s0 / 4], 24 - 8 * (s0 % 4)), 24);
        const __m512i sc1 = _mm512_srai_epi32(_mm512_slli_epi32(dsc[s1 / 4], 24 - 8 * (s1 % 4)), 24);
        _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
          const uint8_t *yq = y + (size_t)i * by + (size_t)b * sizeof(mlxr_block_q8_K) + 4 + 128 * h + 32 * j;
          __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
          _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
            d0 = _mm512_dpbusd_epi32(d0, q[k], bcast32(yq + 4 * k));
            d1 = _mm512_dpbusd_epi32(d1, q[k + 4], bcast32(yq + 16 + 4 * k));
          }
          isum[i] = _mm512_add_epi32(isum[i], _mm512_add_epi32(_mm512_mullo_epi32(d0, sc0),
                                                               _mm512_mullo_epi32(d1, sc1)));
        }
      }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) {
      const int32_t *yci = yc + (i * ld_aux + b) * 8;
      __m512i ms = _mm512_setzero_si512();
      _Pragma("GCC unroll 4") for (int t = 0; t < 4; t++) {
        const __m512i even = _mm512_srai_epi16(_mm512_slli_epi16(dsc[t], 8), 8);
        const __m512i odd = _mm512_srai_epi16(dsc[t], 8);
        ms = _mm512_dpwssd_epi32(ms, even, _mm512_set1_epi32(yci[2 * t]));
        ms = _mm512_dpwssd_epi32(ms, odd, _mm512_set1_epi32(yci[2 * t + 1]));
      }
      const __m512i tot = _mm512_sub_epi32(isum[i], _mm512_slli_epi32(ms, 5));
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_mul_ps(dx, _mm512_set1_ps(yd[i * ld_aux + b])), acc[i]);
    }
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < rm; i++) _mm512_storeu_ps(out + i * ldo, acc[i]);
}

#define R16_Q6_FN(RM)                                                                              \
  static void q6kr_##RM(int64_t nb, const uint8_t *xg, const uint8_t *y, size_t by,                \
                        const float *yd, const int32_t *yc, int64_t ld_aux, float *out,            \
                        int64_t ldo) {                                                             \
    r16_q6k_rows(RM, nb, xg, y, by, yd, yc, ld_aux, out, ldo);                                     \
  }
R16_Q6_FN(1)
R16_Q6_FN(2)
R16_Q6_FN(3)
R16_Q6_FN(4)

#define R16_K_FN(RM)                                                                               \
  static void q4kr_##RM(int64_t nb, const uint8_t *xg, const uint8_t *y, size_t by,                \
                        const float *yd, const int32_t *yc, int64_t ld_aux, float *out,            \
                        int64_t ldo) {                                                             \
    r16_q4k_rows(RM, nb, xg, y, by, yd, yc, ld_aux, out, ldo);                                     \
  }
R16_K_FN(1)
R16_K_FN(2)
R16_K_FN(3)
R16_K_FN(4)

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
static const rows_fn q4kr_fns[4] = {q4kr_1, q4kr_2, q4kr_3, q4kr_4};
static const rows_fn q6kr_fns[4] = {q6kr_1, q6kr_2, q6kr_3, q6kr_4};

void mlxr_quant_r16_gemm_avx512vnni(mlxr_dtype t, int64_t n, int64_t nr, int64_t ngroups,
                                    const void *x, size_t row_bytes, const void *y, size_t by,
                                    const float *yd, const int32_t *ycorr, int64_t ld_aux,
                                    float *out, int64_t ldo) {
  const rows_fn *fns = t == MLXR_DTYPE_Q4_0   ? q4r_fns
                       : t == MLXR_DTYPE_Q8_0 ? q8r_fns
                       : t == MLXR_DTYPE_Q4_K ? q4kr_fns
                                              : q6kr_fns;
  const int64_t nb = n / mlxr_dtype_block_size(t), cs = mlxr_quant_r16_aux_ints(t);
  for (int64_t g = 0; g < ngroups; g++) {
    const uint8_t *xg = (const uint8_t *)x + (size_t)g * R16 * row_bytes;
    for (int64_t r0 = 0; r0 < nr; r0 += 4) {
      const int rm = nr - r0 < 4 ? (int)(nr - r0) : 4;
      fns[rm - 1](nb, xg, (const uint8_t *)y + (size_t)r0 * by, by, yd + r0 * ld_aux,
                  ycorr + r0 * ld_aux * cs, ld_aux, out + r0 * ldo + g * R16, ldo);
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
  const bool kq = t == MLXR_DTYPE_Q4_K || t == MLXR_DTYPE_Q6_K;
  const int64_t agroups = kq || t == MLXR_DTYPE_Q8_0 || nb <= AMX_MAX_BLOCKS ? nr / 16 : 0;
  if (kq) {
    mlxr_quant_r16k_gemm_amx(t, n, agroups, ngroups, x, row_bytes, y, by, yd, ycorr, ld_aux, out, ldo);
  } else if (agroups > 0) {
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
                                   ycorr + done * ld_aux * mlxr_quant_r16_aux_ints(t), ld_aux,
                                   out + done * ldo, ldo);
  }
}

#pragma GCC pop_options

#endif
