/*
 * gemm_amx.c: multi-row products (the `gemm` entry of core/kernels/types.h) on Intel AMX-INT8 tile
 * units, for Q4_0 and Q8_0 weights against Q8_0 activations. Everything here is compiled for
 * AVX-512 + AMX through the target pragma below and is handed out by type_traits.c only after
 * mlxr_quant_cpu_amx_enable() saw AMX-TILE, AMX-INT8 and AVX512-VNNI in CPUID and the kernel
 * granted this process the tile-data state (arch_prctl ARCH_REQ_XCOMP_PERM).
 *
 * One call covers a tile of 16 weight rows. The 16 rows are first packed per 32-element block
 * into AMX's B layout (8 rows of 64 bytes: dword n of row k4 holds elements 4*k4..4*k4+3 of
 * weight row n, as signed int8: Q8_0 as stored, Q4_0 as nibble - 8), with the 16 block scales as
 * floats. Then for each group of 16 activation rows and each block, one TDPBSSD multiplies the 16
 * activation rows (a tile loaded straight from the Q8_0 rows: 32 bytes at the block's quants,
 * row stride = the activation row size) into the packed block: a 16x16 int32 tile of exact block
 * dot products, which is stored and folded into 16 float accumulators with scale dx * dy, as the
 * SIMD kernels do. Calls with other than 16 columns, and the rows left over after the groups of
 * 16, go to the AVX-512 VNNI kernels; so do rows longer than MAX_BLOCKS blocks (stack scratch).
 */
#include "core/kernels/cpu/quants_impl.h"

#if MLXR_QUANTS_X86

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM_ 0x1023
#define XFEATURE_XTILEDATA_ 18
#define MAX_BLOCKS 256 /* rows up to 8192 elements */

bool mlxr_quant_cpu_amx_enable(void) {
  if (mlxr_cpu_isa_cap(NULL) < MLXR_ISA_ALL) return false; /* MLXR_CPU_ISA pins a lower level */
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx = (d >> 24) & 1u && (d >> 25) & 1u, vnni = (c >> 11) & 1u;
  if (!amx || !vnni) return false;
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) == 0;
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,amx-tile,amx-int8")
#include <immintrin.h>

typedef struct tile_config {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

/* tmm0: C 16x16 int32; tmm1: A 16 rows x 32 bytes; tmm2: B 8 rows x 64 bytes */
static void amx_configure(void) {
  tile_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  cfg.colsb[0] = 64;
  cfg.rows[0] = 16;
  cfg.colsb[1] = 32;
  cfg.rows[1] = 16;
  cfg.colsb[2] = 64;
  cfg.rows[2] = 8;
  _tile_loadconfig(&cfg);
}

/* 16 f16 values at base + i * stride (i < 16) -> floats */
static inline __m512 gather_f16(const uint8_t *base, size_t stride) {
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32((int)stride));
  const __m512i v = _mm512_i32gather_epi32(idx, base, 1);
  return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

/* dword k of rows base + i * stride, for i < 16 */
static inline __m512i gather_dwords(const uint8_t *base, size_t stride) {
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32((int)stride));
  return _mm512_i32gather_epi32(idx, base, 1);
}

static void pack_q8_0(int64_t nb, const uint8_t *x, size_t bx, int8_t *bp, float *dx) {
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *blk = x + (size_t)b * sizeof(mlxr_block_q8_0);
    _mm512_storeu_ps(dx + b * 16, gather_f16(blk, bx));
    for (int k4 = 0; k4 < 8; k4++) {
      _mm512_storeu_si512(bp + b * 512 + k4 * 64, gather_dwords(blk + 2 + 4 * k4, bx));
    }
  }
}

static void pack_q4_0(int64_t nb, const uint8_t *x, size_t bx, int8_t *bp, float *dx) {
  const __m512i mask = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t *blk = x + (size_t)b * sizeof(mlxr_block_q4_0);
    _mm512_storeu_ps(dx + b * 16, gather_f16(blk, bx));
    for (int k4 = 0; k4 < 4; k4++) {
      const __m512i v = gather_dwords(blk + 2 + 4 * k4, bx);
      const __m512i lo = _mm512_sub_epi8(_mm512_and_si512(v, mask), eight);
      const __m512i hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), mask), eight);
      _mm512_storeu_si512(bp + b * 512 + k4 * 64, lo);       /* elements 4k4..4k4+3 */
      _mm512_storeu_si512(bp + b * 512 + (k4 + 4) * 64, hi); /* elements 16+4k4.. */
    }
  }
}

/* groups of 16 activation rows x the 16 packed weight rows */
static void amx_rows(int64_t nb, int64_t groups, const int8_t *bp, const float *dx, const uint8_t *y,
                     size_t by, float *out, int64_t ldo) {
  int32_t c[16 * 16] __attribute__((aligned(64)));
  for (int64_t g = 0; g < groups; g++) {
    const uint8_t *yg = y + (size_t)g * 16 * by;
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
      const uint8_t *yb = yg + (size_t)b * sizeof(mlxr_block_q8_0);
      _tile_zero(0);
      _tile_loadd(1, yb + 2, (long)by);
      _tile_loadd(2, bp + b * 512, 64);
      _tile_dpbssd(0, 1, 2);
      _tile_stored(0, c, 64);
      const __m512 dxv = _mm512_loadu_ps(dx + b * 16);
      const __m512 dyv = gather_f16(yb, by);
      float dys[16];
      _mm512_storeu_ps(dys, dyv);
      for (int i = 0; i < 16; i++) {
        const __m512 p = _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * i));
        acc[i] = _mm512_fmadd_ps(p, _mm512_mul_ps(dxv, _mm512_set1_ps(dys[i])), acc[i]);
      }
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_ps(out + (g * 16 + i) * ldo, acc[i]);
  }
}

typedef void (*pack_fn)(int64_t nb, const uint8_t *x, size_t bx, int8_t *bp, float *dx);
typedef void (*gemm_fn)(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx, const void *y,
                        size_t by, float *out, int64_t ldo);

/* Separate and not inlined so that the single-row (decode) calls, which never get here, do not
 * pay for the 144 KiB stack frame (and its stack-clash probes) on every call. */
static __attribute__((noinline)) void amx_tiles(pack_fn pack, int64_t nb, int64_t groups,
                                                const void *x, size_t bx, const void *y, size_t by,
                                                float *out, int64_t ldo) {
  int8_t bp[MAX_BLOCKS * 512] __attribute__((aligned(64)));
  float dx[MAX_BLOCKS * 16] __attribute__((aligned(64)));
  pack(nb, x, bx, bp, dx);
  amx_configure();
  amx_rows(nb, groups, bp, dx, y, by, out, ldo);
  _tile_release();
}

static void amx_gemm(pack_fn pack, gemm_fn fallback, int64_t n, int64_t nr, int64_t nc,
                     const void *x, size_t bx, const void *y, size_t by, float *out, int64_t ldo) {
  const int64_t nb = n / MLXR_QK;
  const int64_t groups = nc == 16 && nb <= MAX_BLOCKS ? nr / 16 : 0;
  if (groups > 0) amx_tiles(pack, nb, groups, x, bx, y, by, out, ldo);
  const int64_t done = groups * 16;
  if (done < nr) fallback(n, nr - done, nc, x, bx, (const uint8_t *)y + (size_t)done * by, by, out + done * ldo, ldo);
}

void mlxr_quant_q4_0_gemm_amx(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo) {
  amx_gemm(pack_q4_0, mlxr_quant_q4_0_gemm_avx512vnni, n, nr, nc, x, bx, y, by, out, ldo);
}

void mlxr_quant_q8_0_gemm_amx(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo) {
  amx_gemm(pack_q8_0, mlxr_quant_q8_0_gemm_avx512vnni, n, nr, nc, x, bx, y, by, out, ldo);
}

#pragma GCC pop_options

#endif
