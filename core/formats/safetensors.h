/*
 * safetensors.h: safetensors reader by mmap, single file or sharded checkpoint.
 *
 * File layout: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [b, e)},
 * "__metadata__": {str: str}}, then the byte buffer. The reader checks N against the file and a cap
 * (100 MB, as the reference does), parses the JSON with cJSON, and checks for every tensor that
 * dtype is known, the shape product times the element size equals e - b without overflow, that
 * [b, e) lies inside the buffer and that no two tensors overlap.
 *
 * mlxr_safetensors_open() takes a file path, or a directory: then model.safetensors.index.json
 * (its weight_map names the shards) if present, else the single model.safetensors, else every
 * *.safetensors in the directory. Tensors of all shards appear as one list.
 * Pointers returned stay valid until mlxr_safetensors_close().
 */
#ifndef MLXR_FORMATS_SAFETENSORS_H
#define MLXR_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define MLXR_ST_MAX_DIMS 8

typedef enum mlxr_st_dtype {
  MLXR_ST_BOOL, MLXR_ST_U8, MLXR_ST_I8, MLXR_ST_U16, MLXR_ST_I16, MLXR_ST_F16, MLXR_ST_BF16,
  MLXR_ST_U32, MLXR_ST_I32, MLXR_ST_F32, MLXR_ST_F64, MLXR_ST_U64, MLXR_ST_I64,
  MLXR_ST_F8_E4M3, MLXR_ST_F8_E5M2,
  MLXR_ST_DTYPE_COUNT
} mlxr_st_dtype;

typedef struct mlxr_st_tensor {
  const char *name;               /* owned by the reader */
  mlxr_st_dtype dtype;
  int n_dims;                     /* 0..8 */
  int64_t shape[MLXR_ST_MAX_DIMS]; /* row-major, shape[0] slowest (PyTorch order) */
  size_t nbytes;
  const void *data;               /* into the read-only mapping */
} mlxr_st_tensor;

typedef struct mlxr_safetensors mlxr_safetensors;

int mlxr_safetensors_open(const char *path, mlxr_safetensors **out, char *err, size_t err_len);
/* One file's bytes held by the caller (tests, fuzzing); buffer must outlive the reader. */
int mlxr_safetensors_open_memory(const void *data, size_t size, mlxr_safetensors **out, char *err,
                                 size_t err_len);
void mlxr_safetensors_close(mlxr_safetensors *st);

int64_t mlxr_safetensors_n_tensors(const mlxr_safetensors *st);
const mlxr_st_tensor *mlxr_safetensors_tensor_at(const mlxr_safetensors *st, int64_t i);
const mlxr_st_tensor *mlxr_safetensors_find(const mlxr_safetensors *st, const char *name);
/* "__metadata__" value of the first file that has the key; NULL if absent. */
const char *mlxr_safetensors_metadata(const mlxr_safetensors *st, const char *key);

size_t mlxr_st_dtype_size(mlxr_st_dtype t);       /* bytes per element */
const char *mlxr_st_dtype_name(mlxr_st_dtype t);  /* "F32", ... */

#endif
