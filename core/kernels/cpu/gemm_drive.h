/*
 * gemm_drive.h: the loop shared by the register-tiled gemm kernels of gemm_avx2.c and gemm_neon.c.
 * A kernel file instantiates tile functions for every (activation rows, weight rows) size up to
 * its (rm_max, rn_max) and lays them out row-major in one table; gemm_drive walks the product in
 * tiles, activation rows outer (rm_max of them stay in L1) and weight rows inner (the caller's
 * tile of weight rows stays in L1/L2 while the activation groups stream past), picking the
 * smaller tiles at the edges. Plain C; `len` is whatever unit the tile functions take (elements
 * or blocks).
 */
#ifndef MLXR_KERNELS_CPU_GEMM_DRIVE_H
#define MLXR_KERNELS_CPU_GEMM_DRIVE_H

#include <stddef.h>
#include <stdint.h>

typedef void (*mlxr_gemm_tile_fn)(int64_t len, const uint8_t *x, size_t bx, const uint8_t *y, size_t by,
                                  float *out, int64_t ldo);

static inline void mlxr_gemm_drive(const mlxr_gemm_tile_fn *tiles, int rm_max, int rn_max, int64_t len,
                                   int64_t nr, int64_t nc, const void *x, size_t bx, const void *y,
                                   size_t by, float *out, int64_t ldo) {
  const uint8_t *xb = x, *yb = y;
  for (int64_t r0 = 0; r0 < nr; r0 += rm_max) {
    const int rm = nr - r0 < rm_max ? (int)(nr - r0) : rm_max;
    for (int64_t c0 = 0; c0 < nc; c0 += rn_max) {
      const int rn = nc - c0 < rn_max ? (int)(nc - c0) : rn_max;
      tiles[(rm - 1) * rn_max + (rn - 1)](len, xb + (size_t)c0 * bx, bx, yb + (size_t)r0 * by, by,
                                          out + r0 * ldo + c0, ldo);
    }
  }
}

#endif
