/*
 * gemm_r16k_amx_avx512.c: prompt products of Q4_K and Q6_K weights in the R16 layout
 * (gemm_r16_avx512.c describes it) on Intel AMX-INT8 tiles, for groups of 16 activation rows
 * quantized to Q8_K. mlxr_quant_r16_gemm_amx hands the K-quants here after
 * mlxr_quant_cpu_amx_enable() returned true; the rows left over after the groups of 16 go to the
 * AVX-512 VNNI kernel. Compiled with the AVX-512 flags CMake gives *_avx512.c plus AMX through the
 * target pragma below.
 *
 * The difficulty with K-quants on tiles is the sub-block scale: it changes every 32 (Q4_K) or 16
 * (Q6_K) elements and differs per weight row (per tile column), so a tile product over a whole
 * 64-byte K step would mix sub-blocks. Folding the int32 tile after every sub-block costs more
 * vector work than the tile product saves. Instead, the scale goes into the weights, split into
 * digits small enough that digit x quant still fits a byte:
 *   Q4_K: sc (0..63) = lo + 16 hi, lo 0..15, hi 0..3: B_lo = q * lo, B_hi = q * hi (q 0..15, so
 *         at most 225, unsigned bytes; TDPBSUD: signed activations x unsigned weights).
 *         Block dot = C_lo + 16 C_hi, exactly sum_j sc_j * (q . y)_j. The mins term
 *         sum_j m_j * ysum_j is two pairs of vpdpwssd as in the VNNI kernel.
 *   Q6_K: sc (int8) = e0 + 8 e1 + 64 e2 with balanced digits e in [-3, 4]; B_e = (q - 32) * e
 *         lies in [-128, 124] (signed bytes; TDPBSSD). Block dot = C0 + 8 C1 + 64 C2, which
 *         already includes the -32 offset.
 * So each super-block of 256 elements is four K=64 steps per digit, accumulated in int32 tiles,
 * and one fold per super-block turns the 16x16 int32 block dots into float (times d * dy, minus
 * dmin * dy * mins for Q4_K) with exactly the arithmetic of the VNNI kernel, so the two kernels
 * agree to the last bit.
 *
 * Work order: the super-blocks are taken KQ_CHUNK at a time (the activations of all rows for that
 * stretch stay in L2 while the weight groups go by). For each weight group and super-block, the
 * digit tiles are prepared once into a 12 KiB stack scratch (16 rows x 64 bytes a tile, vpmullw
 * of the nibbles / 6-bit values by the lane's digit) that stays in L1 while every group of 16
 * activation rows runs over it. A tile product takes several times longer to finish than to
 * issue, so Q4_K takes two activation groups at once (four independent accumulator tiles).
 * Sums go to a contiguous per-call buffer (rows of `out` are often 4 KiB multiples apart and
 * would share a few L1 sets) and to `out` at the end of each stretch, continuing the same float
 * accumulation order across stretches.
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,amx-tile,amx-int8")
#include <immintrin.h>

#define KQ_CHUNK 8    /* super-blocks per stretch */
#define KQ_AGROUPS 32 /* groups of 16 activation rows per pass */
#define KQ_TILE 1024  /* bytes of one 16 x 64-byte tile */
#define KQ_Q8K 292    /* bytes of a Q8_K block */

typedef struct kq_side {
  float dx[16];      /* d of the 16 rows */
  float dmin[16];    /* Q4_K: dmin of the 16 rows */
  int32_t mp[4][16]; /* Q4_K: mins as int16 pairs (m0, m2), (m1, m3), (m4, m6), (m5, m7) */
} kq_side;

/* one super-block of one weight group: [digit][64-element step] tiles, and its scales */
typedef struct kq_scratch {
  uint8_t bt[3][4][KQ_TILE];
  kq_side side;
} kq_scratch;

typedef struct kq_tile_config {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} kq_tile_config;

/* all eight tiles 16 rows x 64 bytes */
static void kq_configure(void) {
  kq_tile_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int i = 0; i < 8; i++) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  _tile_loadconfig(&cfg);
}

/* a 32-bit lane value v (< 2^15) in both 16-bit halves, as vpmullw's multiplier */
static inline __m512i kq_words(__m512i v) {
  return _mm512_or_si512(_mm512_and_si512(v, _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(v, 16));
}

/* bytes of v (signed) times the lane's 16-bit word w, as bytes (each product fits a byte) */
static inline __m512i kq_mul_s8(__m512i v, __m512i w) {
  const __m512i even = _mm512_mullo_epi16(_mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8), w);
  const __m512i odd = _mm512_mullo_epi16(_mm512_srai_epi16(v, 8), w);
  return _mm512_mask_blend_epi8(0xAAAAAAAAAAAAAAAAull, even, _mm512_slli_epi16(odd, 8));
}

/* Q4_K super-block of a group (2304 bytes) -> digit tiles lo/hi and side data */
static void kq_prep_q4k(const uint8_t *blk, uint8_t (*bt)[4][KQ_TILE], kq_side *sd) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), m6 = _mm512_set1_epi8(0x3f), m30 = _mm512_set1_epi8(0x30);
  const __m512i m00ff = _mm512_set1_epi32(0x00ff00ff), mff = _mm512_set1_epi32(0xff);
  _mm512_storeu_ps(sd->dx, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk)));
  _mm512_storeu_ps(sd->dmin, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32))));
  const __m512i d0 = _mm512_loadu_si512((const void *)(blk + 64));
  const __m512i d1 = _mm512_loadu_si512((const void *)(blk + 128));
  const __m512i d2 = _mm512_loadu_si512((const void *)(blk + 192));
  const __m512i sc03 = _mm512_and_si512(d0, m6), m03 = _mm512_and_si512(d1, m6);
  const __m512i sc47 = _mm512_or_si512(_mm512_and_si512(d2, m4), _mm512_and_si512(_mm512_srli_epi32(d0, 2), m30));
  const __m512i m47 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(d2, 4), m4),
                                      _mm512_and_si512(_mm512_srli_epi32(d1, 2), m30));
  _mm512_storeu_si512((void *)sd->mp[0], _mm512_and_si512(m03, m00ff));
  _mm512_storeu_si512((void *)sd->mp[1], _mm512_and_si512(_mm512_srli_epi32(m03, 8), m00ff));
  _mm512_storeu_si512((void *)sd->mp[2], _mm512_and_si512(m47, m00ff));
  _mm512_storeu_si512((void *)sd->mp[3], _mm512_and_si512(_mm512_srli_epi32(m47, 8), m00ff));
  for (int c = 0; c < 4; c++) {
    const __m512i src = c < 2 ? sc03 : sc47;
    const __m512i sa = _mm512_and_si512(_mm512_srli_epi32(src, 16 * (c & 1)), mff);     /* sc[2c] */
    const __m512i sb = _mm512_and_si512(_mm512_srli_epi32(src, 16 * (c & 1) + 8), mff); /* sc[2c+1] */
    const __m512i lo_a = kq_words(_mm512_and_si512(sa, _mm512_set1_epi32(15)));
    const __m512i hi_a = kq_words(_mm512_srli_epi32(sa, 4));
    const __m512i lo_b = kq_words(_mm512_and_si512(sb, _mm512_set1_epi32(15)));
    const __m512i hi_b = kq_words(_mm512_srli_epi32(sb, 4));
    for (int k = 0; k < 8; k++) {
      const __m512i v = _mm512_loadu_si512((const void *)(blk + 256 + 64 * (8 * c + k)));
      const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
      /* products stay below 256, so a 16-bit multiply leaves each byte's own product in place */
      _mm512_store_si512((void *)(bt[0][c] + 64 * k), _mm512_mullo_epi16(lo, lo_a));
      _mm512_store_si512((void *)(bt[0][c] + 64 * (8 + k)), _mm512_mullo_epi16(hi, lo_b));
      _mm512_store_si512((void *)(bt[1][c] + 64 * k), _mm512_mullo_epi16(lo, hi_a));
      _mm512_store_si512((void *)(bt[1][c] + 64 * (8 + k)), _mm512_mullo_epi16(hi, hi_b));
    }
  }
}

/* Q6_K super-block of a group (3360 bytes) -> three digit tiles and d */
static void kq_prep_q6k(const uint8_t *blk, uint8_t (*bt)[4][KQ_TILE], kq_side *sd) {
  const __m512i m4 = _mm512_set1_epi8(0x0f), m3 = _mm512_set1_epi8(0x03);
  const __m512i mc = _mm512_set1_epi8(0x0c), m30 = _mm512_set1_epi8(0x30), b32 = _mm512_set1_epi8(32);
  const __m512i three = _mm512_set1_epi32(3), seven = _mm512_set1_epi32(7);
  _mm512_storeu_ps(sd->dx, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 3328))));
  __m512i dig[3][16]; /* [digit][sub-block] as 16-bit words per lane */
  for (int s = 0; s < 16; s++) {
    const __m512i dsc = _mm512_loadu_si512((const void *)(blk + 3072 + 64 * (s / 4)));
    const __m512i sc = _mm512_srai_epi32(_mm512_slli_epi32(dsc, 24 - 8 * (s % 4)), 24);
    const __m512i e0 = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(sc, three), seven), three);
    const __m512i r1 = _mm512_srai_epi32(_mm512_sub_epi32(sc, e0), 3);
    const __m512i e1 = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(r1, three), seven), three);
    const __m512i e2 = _mm512_srai_epi32(_mm512_sub_epi32(r1, e1), 3);
    dig[0][s] = kq_words(e0);
    dig[1][s] = kq_words(e1);
    dig[2][s] = kq_words(e2);
  }
  for (int c = 0; c < 4; c++) {
    const int h = c / 2;
    for (int jj = 0; jj < 2; jj++) {
      const int j = 2 * (c & 1) + jj; /* 32-element quarter of the half */
      for (int k = 0; k < 8; k++) {
        const __m512i src = _mm512_loadu_si512((const void *)(blk + 64 * (16 * h + 8 * jj + k)));
        const __m512i hb = _mm512_loadu_si512((const void *)(blk + 2048 + 64 * (8 * h + k)));
        const __m512i lo = j < 2 ? _mm512_and_si512(src, m4) : _mm512_and_si512(_mm512_srli_epi16(src, 4), m4);
        const __m512i hi = j == 0   ? _mm512_slli_epi16(_mm512_and_si512(hb, m3), 4)
                           : j == 1 ? _mm512_slli_epi16(_mm512_and_si512(hb, mc), 2)
                           : j == 2 ? _mm512_and_si512(hb, m30)
                                    : _mm512_and_si512(_mm512_srli_epi16(hb, 2), m30);
        const __m512i q = _mm512_sub_epi8(_mm512_or_si512(lo, hi), b32); /* -32..31 */
        const int s = 8 * h + 2 * j + (k >= 4);
        for (int e = 0; e < 3; e++) {
          _mm512_store_si512((void *)(bt[e][c] + 64 * (8 * jj + k)), kq_mul_s8(q, dig[e][s]));
        }
      }
    }
  }
}

/* the Q4_K fold of one 16 x 16 block: int32 lo/hi block dots in clo/chi (16 rows of 16) into
 * the float rows of out, with the VNNI kernel's arithmetic */
static inline void kq_fold_q4k(const kq_side *sd, int64_t b, const int32_t *clo, const int32_t *chi,
                               const float *yda, const int32_t *yca, int64_t ld_aux, float *out,
                               int64_t ldo, bool first) {
  const __m512 dx = _mm512_loadu_ps(sd->dx), dmin = _mm512_loadu_ps(sd->dmin);
  const __m512i mp0 = _mm512_loadu_si512((const void *)sd->mp[0]), mp1 = _mm512_loadu_si512((const void *)sd->mp[1]);
  const __m512i mp2 = _mm512_loadu_si512((const void *)sd->mp[2]), mp3 = _mm512_loadu_si512((const void *)sd->mp[3]);
  for (int i = 0; i < 16; i++) {
    const __m512i dot = _mm512_add_epi32(_mm512_load_si512((const void *)(clo + 16 * i)),
                                         _mm512_slli_epi32(_mm512_load_si512((const void *)(chi + 16 * i)), 4));
    const int32_t *yci = yca + (i * ld_aux + b) * 4;
    __m512i ms = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp0, _mm512_set1_epi32(yci[0]));
    ms = _mm512_dpwssd_epi32(ms, mp1, _mm512_set1_epi32(yci[1]));
    ms = _mm512_dpwssd_epi32(ms, mp2, _mm512_set1_epi32(yci[2]));
    ms = _mm512_dpwssd_epi32(ms, mp3, _mm512_set1_epi32(yci[3]));
    const __m512 dy = _mm512_set1_ps(yda[i * ld_aux + b]);
    __m512 acc = first ? _mm512_setzero_ps() : _mm512_loadu_ps(out + i * ldo);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dx, dy), acc);
    acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(ms), _mm512_mul_ps(dmin, dy), acc);
    _mm512_storeu_ps(out + i * ldo, acc);
  }
}

/* Super-block b of one Q4_K group (prepared in s) x two groups of 16 activation rows (ya and
 * ya + 16 rows): C tiles 0/1 (lo/hi, first group) and 2/3 (second), activations in 4/5, digit
 * tiles in 6/7. A tile product takes ~3 times longer to finish than to issue, so the four
 * independent accumulators keep the tile unit busy where one group's two could not. Adds the
 * products into out (or stores them when `first`). */
static void kq_block2_q4k(const kq_scratch *s, int64_t b, const uint8_t *ya, size_t by,
                          const float *yda, const int32_t *yca, int64_t ld_aux, float *out,
                          int64_t ldo, bool first) {
  int32_t c[4][256] __attribute__((aligned(64)));
  const uint8_t *yb = ya + (size_t)b * KQ_Q8K + 4;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int k = 0; k < 4; k++) {
    _tile_loadd(4, yb + 64 * k, (long)by);
    _tile_loadd(6, s->bt[0][k], 64);
    _tile_loadd(7, s->bt[1][k], 64);
    _tile_loadd(5, yb + 16 * by + 64 * k, (long)by);
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 4, 7);
    _tile_dpbsud(2, 5, 6);
    _tile_dpbsud(3, 5, 7);
  }
  _tile_stored(0, c[0], 64);
  _tile_stored(1, c[1], 64);
  _tile_stored(2, c[2], 64);
  _tile_stored(3, c[3], 64);
  kq_fold_q4k(&s->side, b, c[0], c[1], yda, yca, ld_aux, out, ldo, first);
  kq_fold_q4k(&s->side, b, c[2], c[3], yda + 16 * ld_aux, yca + 16 * ld_aux * 4, ld_aux,
              out + 16 * ldo, ldo, first);
}

/* the same for one group of 16 activation rows (an odd last one) */
static void kq_block_q4k(const kq_scratch *s, int64_t b, const uint8_t *ya, size_t by,
                         const float *yda, const int32_t *yca, int64_t ld_aux, float *out,
                         int64_t ldo, bool first) {
  int32_t c[2][256] __attribute__((aligned(64)));
  const uint8_t *yb = ya + (size_t)b * KQ_Q8K + 4;
  _tile_zero(0);
  _tile_zero(1);
  for (int k = 0; k < 4; k++) {
    _tile_loadd(4, yb + 64 * k, (long)by);
    _tile_loadd(6, s->bt[0][k], 64);
    _tile_loadd(7, s->bt[1][k], 64);
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 4, 7);
  }
  _tile_stored(0, c[0], 64);
  _tile_stored(1, c[1], 64);
  kq_fold_q4k(&s->side, b, c[0], c[1], yda, yca, ld_aux, out, ldo, first);
}

/* super-block b of one Q6_K group x 16 activation rows, as kq_block_q4k: C tiles 0-2 (digits),
 * activations alternating between tiles 3 and 7, digit tiles 4-6 */
#define KQ_Q6K_STEP(TA, c)                                                          \
  do {                                                                              \
    _tile_loadd(TA, yb + 64 * (c), (long)by);                                       \
    _tile_loadd(4, s->bt[0][c], 64);                                                \
    _tile_dpbssd(0, TA, 4);                                                         \
    _tile_loadd(5, s->bt[1][c], 64);                                                \
    _tile_dpbssd(1, TA, 5);                                                         \
    _tile_loadd(6, s->bt[2][c], 64);                                                \
    _tile_dpbssd(2, TA, 6);                                                         \
  } while (0)

static void kq_block_q6k(const kq_scratch *s, int64_t b, const uint8_t *ya, size_t by,
                         const float *yda, int64_t ld_aux, float *out, int64_t ldo, bool first) {
  int32_t c[3][256] __attribute__((aligned(64)));
  const uint8_t *yb = ya + (size_t)b * KQ_Q8K + 4;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  KQ_Q6K_STEP(3, 0);
  KQ_Q6K_STEP(7, 1);
  KQ_Q6K_STEP(3, 2);
  KQ_Q6K_STEP(7, 3);
  _tile_stored(0, c[0], 64);
  _tile_stored(1, c[1], 64);
  _tile_stored(2, c[2], 64);
  const __m512 dx = _mm512_loadu_ps(s->side.dx);
  for (int i = 0; i < 16; i++) {
    const __m512i t = _mm512_add_epi32(
        _mm512_load_si512((const void *)(c[0] + 16 * i)),
        _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512((const void *)(c[1] + 16 * i)), 3),
                         _mm512_slli_epi32(_mm512_load_si512((const void *)(c[2] + 16 * i)), 6)));
    const __m512 acc = first ? _mm512_setzero_ps() : _mm512_loadu_ps(out + i * ldo);
    _mm512_storeu_ps(out + i * ldo, _mm512_fmadd_ps(_mm512_cvtepi32_ps(t),
                                                    _mm512_mul_ps(dx, _mm512_set1_ps(yda[i * ld_aux + b])), acc));
  }
}

/* Not inlined: its ~50 KiB frame stays off every other path. */
static __attribute__((noinline)) void kq_gemm(bool q4k, int64_t nb, int64_t agroups, int64_t ngroups,
                                              const uint8_t *x, size_t row_bytes, const uint8_t *y,
                                              size_t by, const float *yd, const int32_t *ycorr,
                                              int64_t ld_aux, float *out, int64_t ldo) {
  kq_scratch s __attribute__((aligned(64)));
  /* the 16 columns of up to KQ_AGROUPS * 16 rows, contiguous: rows of `out` are ldo floats apart,
   * often a multiple of 4 KiB, and would all fall into the same few L1 sets */
  float acc[KQ_AGROUPS * 256] __attribute__((aligned(64)));
  const size_t bb_bytes = q4k ? 16 * sizeof(mlxr_block_q4_K) : 16 * sizeof(mlxr_block_q6_K);
  kq_configure();
  for (int64_t k0 = 0; k0 < nb; k0 += KQ_CHUNK) {
    const int64_t k1 = nb - k0 < KQ_CHUNK ? nb : k0 + KQ_CHUNK;
    for (int64_t g = 0; g < ngroups; g++) {
      const uint8_t *xg = x + (size_t)g * 16 * row_bytes;
      for (int64_t a0 = 0; a0 < agroups; a0 += KQ_AGROUPS) {
        const int64_t na = agroups - a0 < KQ_AGROUPS ? agroups - a0 : KQ_AGROUPS;
        float *o = out + a0 * 16 * ldo + g * 16;
        if (k0 > 0) { /* carry on the sums of the previous stretches in the same order */
          for (int64_t r = 0; r < na * 16; r++) _mm512_store_ps(acc + 16 * r, _mm512_loadu_ps(o + r * ldo));
        }
        for (int64_t b = k0; b < k1; b++) {
          if (q4k) kq_prep_q4k(xg + (size_t)b * bb_bytes, s.bt, &s.side);
          else kq_prep_q6k(xg + (size_t)b * bb_bytes, s.bt, &s.side);
          for (int64_t a = 0; a < na; a++) {
            const uint8_t *ya = y + (size_t)(a0 + a) * 16 * by;
            const float *yda = yd + (a0 + a) * 16 * ld_aux;
            const int32_t *yca = ycorr + (a0 + a) * 16 * ld_aux * 4;
            if (q4k && a + 1 < na) {
              kq_block2_q4k(&s, b, ya, by, yda, yca, ld_aux, acc + a * 256, 16, b == 0);
              a++;
            } else if (q4k) {
              kq_block_q4k(&s, b, ya, by, yda, yca, ld_aux, acc + a * 256, 16, b == 0);
            } else {
              kq_block_q6k(&s, b, ya, by, yda, ld_aux, acc + a * 256, 16, b == 0);
            }
          }
        }
        for (int64_t r = 0; r < na * 16; r++) _mm512_storeu_ps(o + r * ldo, _mm512_load_ps(acc + 16 * r));
      }
    }
  }
  _tile_release();
}

void mlxr_quant_r16k_gemm_amx(mlxr_dtype t, int64_t n, int64_t agroups, int64_t ngroups,
                              const void *x, size_t row_bytes, const void *y, size_t by,
                              const float *yd, const int32_t *ycorr, int64_t ld_aux, float *out,
                              int64_t ldo) {
  if (agroups <= 0 || ngroups <= 0) return;
  kq_gemm(t == MLXR_DTYPE_Q4_K, n / MLXR_QK_K, agroups, ngroups, x, row_bytes, y, by, yd, ycorr,
          ld_aux, out, ldo);
}

#pragma GCC pop_options

#endif
