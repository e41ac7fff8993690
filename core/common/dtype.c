/* dtype.c: block geometry of the GGUF tensor types (values from ggml-common.h's block structs). */
#include "core/common/dtype.h"

#include <strings.h>

typedef struct dtype_info {
  const char *name;
  int64_t block_size; /* elements per block */
  size_t type_size;   /* bytes per block */
} dtype_info;

static const dtype_info *dtype_lookup(uint32_t t) {
  static const dtype_info table[MLXR_DTYPE_COUNT] = {
      [MLXR_DTYPE_F32] = {"f32", 1, 4},
      [MLXR_DTYPE_F16] = {"f16", 1, 2},
      [MLXR_DTYPE_Q4_0] = {"q4_0", 32, 18},
      [MLXR_DTYPE_Q4_1] = {"q4_1", 32, 20},
      [MLXR_DTYPE_Q5_0] = {"q5_0", 32, 22},
      [MLXR_DTYPE_Q5_1] = {"q5_1", 32, 24},
      [MLXR_DTYPE_Q8_0] = {"q8_0", 32, 34},
      [MLXR_DTYPE_Q8_1] = {"q8_1", 32, 36},
      [MLXR_DTYPE_Q2_K] = {"q2_K", 256, 84},
      [MLXR_DTYPE_Q3_K] = {"q3_K", 256, 110},
      [MLXR_DTYPE_Q4_K] = {"q4_K", 256, 144},
      [MLXR_DTYPE_Q5_K] = {"q5_K", 256, 176},
      [MLXR_DTYPE_Q6_K] = {"q6_K", 256, 210},
      [MLXR_DTYPE_Q8_K] = {"q8_K", 256, 292},
      [MLXR_DTYPE_I8] = {"i8", 1, 1},
      [MLXR_DTYPE_I16] = {"i16", 1, 2},
      [MLXR_DTYPE_I32] = {"i32", 1, 4},
      [MLXR_DTYPE_I64] = {"i64", 1, 8},
      [MLXR_DTYPE_F64] = {"f64", 1, 8},
      [MLXR_DTYPE_BF16] = {"bf16", 1, 2},
  };
  if (t >= MLXR_DTYPE_COUNT || table[t].name == NULL) return NULL;
  return &table[t];
}

bool mlxr_dtype_is_known(uint32_t t) { return dtype_lookup(t) != NULL; }

int64_t mlxr_dtype_block_size(mlxr_dtype t) {
  const dtype_info *d = dtype_lookup((uint32_t)t);
  return d ? d->block_size : 0;
}

size_t mlxr_dtype_type_size(mlxr_dtype t) {
  const dtype_info *d = dtype_lookup((uint32_t)t);
  return d ? d->type_size : 0;
}

const char *mlxr_dtype_name(mlxr_dtype t) {
  const dtype_info *d = dtype_lookup((uint32_t)t);
  return d ? d->name : "?";
}

int mlxr_dtype_from_name(const char *name) {
  for (uint32_t t = 0; t < MLXR_DTYPE_COUNT; t++) {
    const dtype_info *d = dtype_lookup(t);
    if (d && strcasecmp(d->name, name) == 0) return (int)t;
  }
  return -1;
}

bool mlxr_dtype_is_quantized(mlxr_dtype t) { return mlxr_dtype_block_size(t) > 1; }

bool mlxr_dtype_row_size(mlxr_dtype t, int64_t n, size_t *out_bytes) {
  const dtype_info *d = dtype_lookup((uint32_t)t);
  if (!d || n < 0 || n % d->block_size != 0) return false;
  uint64_t blocks = (uint64_t)(n / d->block_size);
  if (blocks > SIZE_MAX / d->type_size) return false;
  *out_bytes = (size_t)blocks * d->type_size;
  return true;
}
