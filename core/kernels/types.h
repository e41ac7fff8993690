/*
 * types.h: the math attached to each stored type (ggml's "type traits" idea).
 *
 * For every mlxr_dtype the CPU kernels provide:
 *   to_float    dequantize n elements (n a multiple of block_size) to float32;
 *   from_float  reference quantizer, float32 -> blocks, bit-compatible with GGUF's layouts
 *               (ggml's quantize_row_*_ref algorithms), so files we write load in llama.cpp;
 *   vec_dot     dot product of one row of this type with one row of vec_dot_type (the type that
 *               activations are quantized to before a matmul: Q8_0 for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0,
 *               Q8_K for the K-quants, F32 for F32/F16/BF16).
 * Each exists as a scalar reference and, where faster, a SIMD version. Which one runs is chosen at
 * run time: mlxr_cpu_detect_simd() reads the CPU's features once, and the caller (the CPU backend,
 * or a test comparing levels) passes the level to mlxr_type_traits_get(). Tables are const; there
 * is no global state.
 */
#ifndef MLXR_KERNELS_TYPES_H
#define MLXR_KERNELS_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common/dtype.h"

typedef enum mlxr_simd_level {
  MLXR_SIMD_SCALAR = 0,
  MLXR_SIMD_AVX2 = 1,   /* AVX2 + FMA + F16C */
  MLXR_SIMD_AVX512 = 2, /* AVX-512 F/BW/VL/DQ (slot; falls back to AVX2 where not written) */
  MLXR_SIMD_NEON = 3,   /* Arm NEON (slot; falls back to scalar where not written) */
  MLXR_SIMD_COUNT
} mlxr_simd_level;

/* n is the element count, always a multiple of the type's block size. */
typedef void (*mlxr_to_float_fn)(const void *src, float *dst, int64_t n);
typedef void (*mlxr_from_float_fn)(const float *src, void *dst, int64_t n);
/* *out = sum_i x[i] * y[i], x of the row's type, y of vec_dot_type. */
typedef void (*mlxr_vec_dot_fn)(int64_t n, float *out, const void *x, const void *y);
/* Multi-row product for prompt processing: out[r * ldo + c] = vec_dot(n, x row c, y row r) for
 * r < nr, c < nc; x rows (this type) are bx bytes apart, y rows (vec_dot_type) by bytes apart.
 * Equal to vec_dot up to float summation order, but decodes each weight block once per tile of
 * activation rows instead of once per row. */
typedef void (*mlxr_gemm_fn)(int64_t n, int64_t nr, int64_t nc, const void *x, size_t bx,
                             const void *y, size_t by, float *out, int64_t ldo);

typedef struct mlxr_type_traits {
  mlxr_dtype type;
  int64_t block_size;         /* elements per block */
  size_t type_size;           /* bytes per block */
  mlxr_to_float_fn to_float;  /* NULL if the type cannot be dequantized */
  mlxr_from_float_fn from_float;
  mlxr_dtype vec_dot_type;    /* activation type for vec_dot */
  mlxr_vec_dot_fn vec_dot;    /* NULL if the type is not a matmul weight type */
  mlxr_gemm_fn gemm;          /* NULL where not written: callers loop over vec_dot */
} mlxr_type_traits;

/* The most of the CPU's instruction sets the kernel dispatch may use, from the environment
 * variable MLXR_CPU_ISA, so that the kernels of a lower level (and the machines that only have it)
 * can be run and tested on a CPU that has more:
 *   scalar        no SIMD kernels
 *   avx2          AVX2 + FMA + F16C (an x86 CPU of 2013-2016, or AMD Zen 1-3)
 *   avx512        AVX-512 F/BW/VL/DQ without VNNI (Skylake-X)
 *   avx512_vnni   AVX-512 with VNNI, no AMX (Cascade Lake, Ice Lake, AMD Zen 4/5)
 *   amx           everything (AMX-INT8 included); the default, as is an unset or empty variable
 * A cap never adds what the CPU lacks. Unknown values count as the default and make
 * mlxr_cpu_isa_cap() report them through *bad (the CPU backend warns). */
typedef enum mlxr_cpu_isa {
  MLXR_ISA_SCALAR = 0,
  MLXR_ISA_AVX2,
  MLXR_ISA_AVX512,
  MLXR_ISA_AVX512_VNNI,
  MLXR_ISA_ALL,
} mlxr_cpu_isa;
mlxr_cpu_isa mlxr_cpu_isa_cap(const char **bad);

/* The CPU's best level, by cpuid (x86) or compile target (Arm), within MLXR_CPU_ISA's cap. */
mlxr_simd_level mlxr_cpu_detect_simd(void);
const char *mlxr_simd_level_name(mlxr_simd_level level);

/* Traits of type t for the given level: functions of that level where written, else of the best
 * lower level available. Returns NULL for types without kernels. The pointer is to a static const
 * table and stays valid forever. */
const mlxr_type_traits *mlxr_type_traits_get(mlxr_dtype t, mlxr_simd_level level);

#endif
