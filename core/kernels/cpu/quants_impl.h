/*
 * quants_impl.h: internal to the CPU kernels. The byte layouts of the GGUF block types and the
 * prototypes of every to_float / from_float / vec_dot function, scalar (quants_ref*.c) and AVX2
 * (quants*_avx2.c). type_traits.c gathers them into the per-level tables of core/kernels/types.h.
 *
 * Layouts (all little-endian, f16 = IEEE binary16 bits, blocks packed back to back in a row):
 *
 *   Q4_0  32 elems, 18 B: f16 d | u8 qs[16]          x[j] = d*(lo(qs[j]) - 8), x[j+16] = d*(hi(qs[j]) - 8)
 *   Q4_1  32 elems, 20 B: f16 d | f16 m | u8 qs[16]  x = d*q + m, same nibble order as Q4_0
 *   Q5_0  32 elems, 22 B: f16 d | u32 qh | u8 qs[16] 5th bit of elem j is bit j of qh; x = d*(q - 16)
 *   Q5_1  32 elems, 24 B: f16 d | f16 m | u32 qh | u8 qs[16]; x = d*q + m
 *   Q8_0  32 elems, 34 B: f16 d | i8 qs[32]          x = d*q
 *   Q8_1  32 elems, 36 B: f16 d | f16 s | i8 qs[32]  x = d*q, s = d * sum(q) (activation helper)
 *   Q4_K 256 elems, 144 B: f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
 *        eight sub-blocks of 32 with 6-bit scale sc[j] and 6-bit min m[j]: for j < 4,
 *        sc = scales[j] & 63, m = scales[j+4] & 63; for j >= 4, sc = lo(scales[j+4]) | (scales[j-4]>>6)<<4,
 *        m = hi(scales[j+4]) | (scales[j]>>6)<<4. Each 64-elem chunk c uses qs[32c..32c+31]: the low
 *        nibbles are sub-block 2c, the high nibbles sub-block 2c+1. x = d*sc*q - dmin*m.
 *   Q5_K 256 elems, 176 B: f16 d | f16 dmin | scales[12] | u8 qh[32] | u8 qs[128]; as Q4_K, plus
 *        bit (2c) of qh[l] is the 5th bit of elem 64c+l and bit (2c+1) that of elem 64c+32+l.
 *   Q6_K 256 elems, 210 B: u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d. Per 128-elem half h
 *        (ql += 64h, qh += 32h), for l < 32: elems l, l+32, l+64, l+96 take the low nibble of ql[l],
 *        low of ql[l+32], high of ql[l], high of ql[l+32], and bits 0-1, 2-3, 4-5, 6-7 of qh[l] as
 *        their top two bits; x = d * scales[i/16] * (q - 32).
 *   Q8_K 256 elems, 292 B: f32 d | i8 qs[256] | i16 bsums[16] (sum of each 16 qs); activation only.
 *
 * vec_dot contract: y blocks are what this module's from_float wrote (int8 quants in [-127, 127],
 * bsums consistent); x may be any bit pattern with finite scales.
 */
#ifndef MLXR_KERNELS_CPU_QUANTS_IMPL_H
#define MLXR_KERNELS_CPU_QUANTS_IMPL_H

#include <assert.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/common/fp16.h"
#include "core/kernels/types.h"

#if defined(__x86_64__) || defined(__i386__)
#define MLXR_QUANTS_X86 1
#else
#define MLXR_QUANTS_X86 0
#endif

#define MLXR_QK 32   /* elements per legacy block */
#define MLXR_QK_K 256 /* elements per K-quant super-block */

typedef struct mlxr_block_q4_0 {
  mlxr_f16 d;      /* scale */
  uint8_t qs[16];  /* [16] nibbles: low = elem j, high = elem j+16 */
} mlxr_block_q4_0;

typedef struct mlxr_block_q4_1 {
  mlxr_f16 d;      /* scale */
  mlxr_f16 m;      /* offset (the block minimum) */
  uint8_t qs[16];  /* [16] nibbles as in Q4_0 */
} mlxr_block_q4_1;

typedef struct mlxr_block_q5_0 {
  mlxr_f16 d;      /* scale */
  uint8_t qh[4];   /* little-endian u32, bit j = 5th bit of elem j */
  uint8_t qs[16];  /* [16] low 4 bits, nibbles as in Q4_0 */
} mlxr_block_q5_0;

typedef struct mlxr_block_q5_1 {
  mlxr_f16 d;      /* scale */
  mlxr_f16 m;      /* offset */
  uint8_t qh[4];   /* as in Q5_0 */
  uint8_t qs[16];  /* as in Q5_0 */
} mlxr_block_q5_1;

typedef struct mlxr_block_q8_0 {
  mlxr_f16 d;      /* scale */
  int8_t qs[32];   /* [32] quants */
} mlxr_block_q8_0;

typedef struct mlxr_block_q8_1 {
  mlxr_f16 d;      /* scale */
  mlxr_f16 s;      /* d * sum(qs) */
  int8_t qs[32];   /* [32] quants */
} mlxr_block_q8_1;

typedef struct mlxr_block_q4_K {
  mlxr_f16 d;          /* super-scale of the 6-bit sub-block scales */
  mlxr_f16 dmin;       /* super-scale of the 6-bit sub-block mins */
  uint8_t scales[12];  /* 8 scales + 8 mins, 6 bits each, packed (see top of file) */
  uint8_t qs[128];     /* [4 chunks][32] nibbles */
} mlxr_block_q4_K;

typedef struct mlxr_block_q5_K {
  mlxr_f16 d;
  mlxr_f16 dmin;
  uint8_t scales[12];  /* as in Q4_K */
  uint8_t qh[32];      /* 5th bits: bit 2c / 2c+1 of qh[l] for chunk c */
  uint8_t qs[128];     /* low 4 bits, as in Q4_K */
} mlxr_block_q5_K;

typedef struct mlxr_block_q6_K {
  uint8_t ql[128];     /* [2 halves][64] low 4 bits */
  uint8_t qh[64];      /* [2 halves][32] high 2 bits, four elems per byte */
  int8_t scales[16];   /* per 16-elem sub-block */
  mlxr_f16 d;          /* super-scale */
} mlxr_block_q6_K;

typedef struct mlxr_block_q8_K {
  float d;             /* scale */
  int8_t qs[256];      /* quants */
  int16_t bsums[16];   /* sum of qs[16i .. 16i+15] */
} mlxr_block_q8_K;

_Static_assert(sizeof(mlxr_block_q4_0) == 18, "q4_0 block size");
_Static_assert(sizeof(mlxr_block_q4_1) == 20, "q4_1 block size");
_Static_assert(sizeof(mlxr_block_q5_0) == 22, "q5_0 block size");
_Static_assert(sizeof(mlxr_block_q5_1) == 24, "q5_1 block size");
_Static_assert(sizeof(mlxr_block_q8_0) == 34, "q8_0 block size");
_Static_assert(sizeof(mlxr_block_q8_1) == 36, "q8_1 block size");
_Static_assert(sizeof(mlxr_block_q4_K) == 144, "q4_K block size");
_Static_assert(sizeof(mlxr_block_q5_K) == 176, "q5_K block size");
_Static_assert(sizeof(mlxr_block_q6_K) == 210, "q6_K block size");
_Static_assert(sizeof(mlxr_block_q8_K) == 292, "q8_K block size");

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5*2^23 pushes the fraction out of the
 * mantissa, so the float adder does the rounding (the same rounding cvtps_epi32 uses). */
static inline int mlxr_quant_nearest_int(float v) {
  float t = v + 12582912.0f;
  int32_t bits;
  memcpy(&bits, &t, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block. */
static inline void mlxr_quant_scale_min_k4(int j, const uint8_t *scales, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (uint8_t)((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
    *m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

/* ---- scalar (quants_ref.c, quants_ref_k.c) ---- */
void mlxr_quant_f32_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_f32_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_f32_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_f16_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_f16_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_f16_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_bf16_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_bf16_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_bf16_vec_dot(int64_t n, float *out, const void *x, const void *y);

void mlxr_quant_q4_0_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q4_0_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_q4_0_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q4_1_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q4_1_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_q4_1_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_0_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q5_0_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_q5_0_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_1_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q5_1_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_q5_1_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q8_0_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q8_0_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_q8_0_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q8_1_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q8_1_from_float(const float *src, void *dst, int64_t n);

void mlxr_quant_q4_K_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q4_K_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_q4_K_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_K_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q5_K_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_q5_K_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q6_K_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q6_K_from_float(const float *src, void *dst, int64_t n);
void mlxr_quant_q6_K_vec_dot(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q8_K_to_float(const void *src, float *dst, int64_t n);
void mlxr_quant_q8_K_from_float(const float *src, void *dst, int64_t n);

/* Signature of the R16 kernels below (x86); declared everywhere so callers compile on Arm. */
typedef void (*mlxr_r16_gemm_fn)(mlxr_dtype t, int64_t n, int64_t nr, int64_t ngroups,
                                 const void *x, size_t row_bytes, const void *y, size_t by,
                                 const float *yd, const int32_t *ycorr, int64_t ld_aux, float *out,
                                 int64_t ldo);

/* ---- AVX2 + FMA + F16C (quants_avx2.c, quants_k_avx2.c; x86 only) ---- */
#if MLXR_QUANTS_X86
void mlxr_quant_f32_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_f16_to_float_avx2(const void *src, float *dst, int64_t n);
void mlxr_quant_f16_from_float_avx2(const float *src, void *dst, int64_t n);
void mlxr_quant_f16_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_bf16_to_float_avx2(const void *src, float *dst, int64_t n);
void mlxr_quant_bf16_from_float_avx2(const float *src, void *dst, int64_t n);
void mlxr_quant_bf16_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);

void mlxr_quant_q4_0_to_float_avx2(const void *src, float *dst, int64_t n);
void mlxr_quant_q4_0_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q4_1_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_0_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_1_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q8_0_to_float_avx2(const void *src, float *dst, int64_t n);
void mlxr_quant_q8_0_from_float_avx2(const float *src, void *dst, int64_t n);
void mlxr_quant_q8_0_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);

void mlxr_quant_q4_K_to_float_avx2(const void *src, float *dst, int64_t n);
void mlxr_quant_q4_K_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_K_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q6_K_to_float_avx2(const void *src, float *dst, int64_t n);
void mlxr_quant_q6_K_vec_dot_avx2(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q8_K_from_float_avx2(const float *src, void *dst, int64_t n);

/* gemm_avx2.c */
void mlxr_quant_q4_0_gemm_avx2(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                               const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_q8_0_gemm_avx2(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                               const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_f16_gemm_avx2(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_f32_gemm_avx2(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo);

/* ---- AVX-512 F/BW/VL/DQ + VNNI (gemm_avx512.c; x86 only, after the CPUID check) ---- */
bool mlxr_quant_cpu_has_avx512_vnni(void);
void mlxr_quant_f16_gemm_avx512(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                                const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_f32_gemm_avx512(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                                const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_q4_0_gemm_avx512vnni(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                                     const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_q8_0_gemm_avx512vnni(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                                     const void *y, size_t by, float *out, int64_t ldo);

/* ---- R16 repacked Q4_0/Q8_0/Q4_K/Q6_K weights (gemm_r16_avx512.c; x86 only; layout described there).
 * repack/row_to_float/act_aux are plain C; the gemm kernels need AVX512_VNNI (and AMX-INT8 after
 * mlxr_quant_cpu_amx_enable() for the _amx ones). n_rows % 16 == 0, n_in a
 * multiple of the block size; activations are the type's vec_dot_type (Q8_0, or Q8_K for the K-quants). The gemm
 * writes out[r * ldo + 16g + j] = row (16g + j) . activation row r for r < nr, g < ngroups;
 * yd: per activation row (ld_aux apart) and block; ycorr the same times mlxr_quant_r16_aux_ints;
 * both from mlxr_quant_r16_act_aux. ---- */
bool mlxr_quant_r16_supported(mlxr_dtype t);
void mlxr_quant_r16_repack(mlxr_dtype t, const void *src, size_t row_bytes, int64_t n_in,
                           int64_t n_rows, void *dst);
/* true if `packed` is the R16 form of src (a cached copy is still valid) */
bool mlxr_quant_r16_matches(mlxr_dtype t, const void *src, size_t row_bytes, int64_t n_in,
                            int64_t n_rows, const void *packed);
void mlxr_quant_r16_row_to_float(mlxr_dtype t, const void *packed, size_t row_bytes, int64_t n_in,
                                 int64_t row, float *dst);
/* int32 corrections per activation block: 1 (Q4_0, Q8_0), 4 (Q4_K), 8 (Q6_K); yd: one float per block */
int mlxr_quant_r16_aux_ints(mlxr_dtype t);
void mlxr_quant_r16_act_aux(mlxr_dtype t, const void *yrow, int64_t n_in, float *yd, int32_t *ycorr);
void mlxr_quant_r16_gemm_avx512vnni(mlxr_dtype t, int64_t n, int64_t nr, int64_t ngroups,
                                    const void *x, size_t row_bytes, const void *y, size_t by,
                                    const float *yd, const int32_t *ycorr, int64_t ld_aux,
                                    float *out, int64_t ldo);
void mlxr_quant_r16_gemm_amx(mlxr_dtype t, int64_t n, int64_t nr, int64_t ngroups, const void *x,
                             size_t row_bytes, const void *y, size_t by, const float *yd,
                             const int32_t *ycorr, int64_t ld_aux, float *out, int64_t ldo);
/* gemm_r16k_amx_avx512.c: Q4_K/Q6_K on AMX-INT8, the first agroups * 16 activation rows only
 * (mlxr_quant_r16_gemm_amx calls it and gives the rest to the VNNI kernel); arguments as above */
void mlxr_quant_r16k_gemm_amx(mlxr_dtype t, int64_t n, int64_t agroups, int64_t ngroups,
                              const void *x, size_t row_bytes, const void *y, size_t by,
                              const float *yd, const int32_t *ycorr, int64_t ld_aux, float *out,
                              int64_t ldo);

/* ---- P32 panels of F16 weights (gemm_p32_avx512.c; x86 only; layout described there). The
 * repack, match and row decode are plain C; the gemm needs AVX-512F. n_rows % 32 == 0, any n_in.
 * gemm: out[r * ldo + 32g + j] = row (32g + j) . y row r (float32, ldy floats apart). ---- */
void mlxr_quant_p32_repack_f16(const void *src, size_t row_bytes, int64_t n_in, int64_t n_rows,
                               void *dst);
bool mlxr_quant_p32_matches_f16(const void *src, size_t row_bytes, int64_t n_in, int64_t n_rows,
                                const void *packed);
void mlxr_quant_p32_row_to_float(const void *packed, int64_t n_in, int64_t row, float *dst);
void mlxr_quant_p32_gemm_f16_avx512(int64_t n, int64_t nr, int64_t ngroups, const void *packed,
                                    const float *y, size_t ldy, float *out, int64_t ldo);

/* ---- tiled prompt attention (attn_tiled_avx512.c; x86 only; AVX-512F). One call: KV head kvh
 * for rows [r0, r1) of one sequence (same block table), r1 - r0 <= mlxr_attn_tiled_rows_per_unit;
 * scratch of mlxr_attn_tiled_scratch_floats floats (any alignment). ---- */
struct mlxr_attn_args;
bool mlxr_attn_tiled_supported(const struct mlxr_attn_args *a);
int mlxr_attn_tiled_rows_per_unit(const struct mlxr_attn_args *a);
size_t mlxr_attn_tiled_scratch_floats(int head_dim_k, int head_dim_v);
void mlxr_attn_tiled_avx512(const struct mlxr_attn_args *a, int64_t r0, int64_t r1, int kvh, float *scratch);

/* ---- elementwise ops (elementwise_avx512.c; x86 only; AVX-512F; any n) ---- */
void mlxr_swiglu_avx512(const float *gate, const float *up, float *out, int64_t n);
void mlxr_rms_norm_avx512(const float *x, const float *w, int64_t n_rows, int64_t dim, float eps,
                          float *y);
void mlxr_add_avx512(float *y, const float *x, int64_t n);

/* ---- attention inner products (gemm_attn_avx2.c; x86, AVX2 level and above) ---- */
float mlxr_attn_dot_avx2(const float *q, const void *k, bool k_f16, int n);
void mlxr_attn_axpy_avx2(float *out, float p, const void *v, bool v_f16, int n);

/* ---- AMX-INT8 (gemm_amx.c; x86 only, after mlxr_quant_cpu_amx_enable() returned true) ---- */
bool mlxr_quant_cpu_amx_enable(void);
void mlxr_quant_q4_0_gemm_amx(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_q8_0_gemm_amx(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo);
#endif

/* ---- Arm NEON (quants_neon.c, quants_k_neon.c, gemm_neon.c; aarch64 only). The integer dot
 * products use SDOT where the *_neon.c files were compiled with the dotprod extension
 * (mlxr_quant_neon_dotprod() says which), else SMULL + SADALP. The inline helpers below are for
 * those files; in any other file they compile to the plain-NEON flavour and go unused. ---- */
#if defined(__aarch64__)
#include <arm_neon.h>

bool mlxr_quant_neon_dotprod(void); /* true if the kernels were built with +dotprod (SDOT) */

/* acc + the products a[k] * b[k] of 16 int8 pairs, summed into 4 int32 lanes. Only the total of
 * the lanes is defined the same way in both flavours (the grouping of products into lanes differs). */
static inline int32x4_t mlxr_neon_dot(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  return vpadalq_s16(vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b))), vmull_high_s8(a, b));
#endif
}

/* 16 bytes of packed nibbles: low nibbles (elems 0..15) to *lo, high (16..31) to *hi. */
static inline void mlxr_neon_nibbles(const uint8_t *qs, int8x16_t *lo, int8x16_t *hi) {
  const uint8x16_t v = vld1q_u8(qs);
  *lo = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0f)));
  *hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
}

/* 4 f16 (IEEE binary16 bits) -> 4 floats, exact. */
static inline float32x4_t mlxr_neon_f16x4(const mlxr_f16 *p) {
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

/* dst[0..15] = q[k] * d, one rounding each (as the scalar (float)q * d). */
static inline void mlxr_neon_store_i8_scaled(int8x16_t q, float d, float *dst) {
  const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
  vst1q_f32(dst + 0, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
  vst1q_f32(dst + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d));
  vst1q_f32(dst + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
  vst1q_f32(dst + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d));
}

/* quants_neon.c */
void mlxr_quant_f32_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_f16_to_float_neon(const void *src, float *dst, int64_t n);
void mlxr_quant_f16_from_float_neon(const float *src, void *dst, int64_t n);
void mlxr_quant_f16_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_bf16_to_float_neon(const void *src, float *dst, int64_t n);
void mlxr_quant_bf16_from_float_neon(const float *src, void *dst, int64_t n);
void mlxr_quant_bf16_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q4_0_to_float_neon(const void *src, float *dst, int64_t n);
void mlxr_quant_q4_0_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q4_1_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_0_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_1_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q8_0_to_float_neon(const void *src, float *dst, int64_t n);
void mlxr_quant_q8_0_from_float_neon(const float *src, void *dst, int64_t n);
void mlxr_quant_q8_0_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);

/* quants_k_neon.c */
void mlxr_quant_q4_K_to_float_neon(const void *src, float *dst, int64_t n);
void mlxr_quant_q4_K_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q5_K_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q6_K_to_float_neon(const void *src, float *dst, int64_t n);
void mlxr_quant_q6_K_vec_dot_neon(int64_t n, float *out, const void *x, const void *y);
void mlxr_quant_q8_K_from_float_neon(const float *src, void *dst, int64_t n);

/* gemm_neon.c (the mlxr_gemm_fn contract of core/kernels/types.h) */
void mlxr_quant_f32_gemm_neon(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_f16_gemm_neon(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                              const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_q4_0_gemm_neon(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                               const void *y, size_t by, float *out, int64_t ldo);
void mlxr_quant_q8_0_gemm_neon(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                               const void *y, size_t by, float *out, int64_t ldo);
#endif

#endif
