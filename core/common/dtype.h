/*
 * dtype.h: the stored element types of MLXR tensors, numbered as GGUF numbers them (ggml_type),
 * with block sizes and bytes per block. This is the layer below both file formats and kernels:
 * formats use it to validate tensor sizes, kernels (core/kernels/types.h) attach the math.
 *
 * A row of n elements of type t occupies (n / block_size) * type_size bytes; n must be a multiple
 * of block_size. Quantized blocks run along ne[0] (the fastest dimension).
 */
#ifndef MLXR_COMMON_DTYPE_H
#define MLXR_COMMON_DTYPE_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mlxr_dtype {
  MLXR_DTYPE_F32 = 0,
  MLXR_DTYPE_F16 = 1,
  MLXR_DTYPE_Q4_0 = 2,
  MLXR_DTYPE_Q4_1 = 3,
  MLXR_DTYPE_Q5_0 = 6,
  MLXR_DTYPE_Q5_1 = 7,
  MLXR_DTYPE_Q8_0 = 8,
  MLXR_DTYPE_Q8_1 = 9,
  MLXR_DTYPE_Q2_K = 10,
  MLXR_DTYPE_Q3_K = 11,
  MLXR_DTYPE_Q4_K = 12,
  MLXR_DTYPE_Q5_K = 13,
  MLXR_DTYPE_Q6_K = 14,
  MLXR_DTYPE_Q8_K = 15,
  MLXR_DTYPE_I8 = 24,
  MLXR_DTYPE_I16 = 25,
  MLXR_DTYPE_I32 = 26,
  MLXR_DTYPE_I64 = 27,
  MLXR_DTYPE_F64 = 28,
  MLXR_DTYPE_BF16 = 30,
  MLXR_DTYPE_COUNT = 40, /* one past the largest id we know of */
} mlxr_dtype;

/* Elements per block (1 for plain types), 0 if t is unknown. */
int64_t mlxr_dtype_block_size(mlxr_dtype t);
/* Bytes per block, 0 if t is unknown. */
size_t mlxr_dtype_type_size(mlxr_dtype t);
/* "f32", "q4_K", ...; "?" if unknown. */
const char *mlxr_dtype_name(mlxr_dtype t);
/* Parse a name as printed by mlxr_dtype_name (case-insensitive); -1 if unknown. */
int mlxr_dtype_from_name(const char *name);
bool mlxr_dtype_is_known(uint32_t t);
bool mlxr_dtype_is_quantized(mlxr_dtype t);
/* Bytes of a row of n elements; returns false if n is not a multiple of the block size, t is
 * unknown, or the size overflows. */
bool mlxr_dtype_row_size(mlxr_dtype t, int64_t n, size_t *out_bytes);

#ifdef __cplusplus
}
#endif

#endif
