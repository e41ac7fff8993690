/*
 * gguf.h: GGUF v2/v3 reader (by mmap) and writer.
 *
 * Reader: mlxr_gguf_open() maps the file read-only, parses the header, every metadata key/value
 * and every tensor info, and checks each count, length, offset and dimension against the file
 * with overflow-safe arithmetic before use. A malformed or truncated file gives an error message,
 * never a crash. After a successful open, every pointer the accessors return points into the
 * mapping or into memory owned by the mlxr_gguf, valid until mlxr_gguf_close().
 * Tensor data is not copied: mlxr_gguf_tensor.data points into the mapping.
 *
 * Writer: collect metadata and tensor infos, then write. The writer streams tensor data one tensor
 * at a time (so converting a large model needs no second copy in memory) into PATH.tmp and renames
 * it to PATH when complete, so a crash never leaves a half-written file under the real name.
 *
 * Thread safety: a reader is immutable after open, any thread may read it. A writer belongs to one
 * thread.
 */
#ifndef MLXR_FORMATS_GGUF_H
#define MLXR_FORMATS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common/dtype.h"

#define MLXR_GGUF_MAX_DIMS 4
#define MLXR_GGUF_DEFAULT_ALIGNMENT 32

typedef enum mlxr_gguf_vtype {
  MLXR_GGUF_U8 = 0,
  MLXR_GGUF_I8 = 1,
  MLXR_GGUF_U16 = 2,
  MLXR_GGUF_I16 = 3,
  MLXR_GGUF_U32 = 4,
  MLXR_GGUF_I32 = 5,
  MLXR_GGUF_F32 = 6,
  MLXR_GGUF_BOOL = 7,
  MLXR_GGUF_STRING = 8,
  MLXR_GGUF_ARRAY = 9,
  MLXR_GGUF_U64 = 10,
  MLXR_GGUF_I64 = 11,
  MLXR_GGUF_F64 = 12,
  MLXR_GGUF_VTYPE_COUNT
} mlxr_gguf_vtype;

typedef struct mlxr_gguf mlxr_gguf;

typedef struct mlxr_gguf_tensor {
  const char *name;         /* NUL-terminated, owned by the reader */
  mlxr_dtype type;
  int n_dims;               /* 1..4 */
  int64_t ne[MLXR_GGUF_MAX_DIMS]; /* ggml order: ne[0] fastest; unused dims are 1 */
  uint64_t offset;          /* from the start of the data section */
  size_t nbytes;            /* checked to lie inside the file */
  const void *data;         /* into the read-only mapping */
} mlxr_gguf_tensor;

/* Open and validate. On failure returns a negative mlxr_status and writes a message to err. */
int mlxr_gguf_open(const char *path, mlxr_gguf **out, char *err, size_t err_len);
/* Same, over a caller-owned buffer (for tests and fuzzing); the buffer must outlive the reader. */
int mlxr_gguf_open_memory(const void *data, size_t size, mlxr_gguf **out, char *err, size_t err_len);
void mlxr_gguf_close(mlxr_gguf *g);

uint32_t mlxr_gguf_version(const mlxr_gguf *g);
size_t mlxr_gguf_alignment(const mlxr_gguf *g);

/* Metadata. Keys are looked up by exact name; index-based access lets tools list everything. */
int64_t mlxr_gguf_n_kv(const mlxr_gguf *g);
const char *mlxr_gguf_kv_key(const mlxr_gguf *g, int64_t i);
mlxr_gguf_vtype mlxr_gguf_kv_type(const mlxr_gguf *g, int64_t i);
int64_t mlxr_gguf_find_key(const mlxr_gguf *g, const char *key); /* -1 if absent */

/* Typed getters by key. They return false if the key is absent or has an incompatible type.
 * get_int accepts any integer type (and bool) that fits int64; get_uint any non-negative integer;
 * get_float accepts f32 and f64 (and integers). */
bool mlxr_gguf_get_int(const mlxr_gguf *g, const char *key, int64_t *out);
bool mlxr_gguf_get_uint(const mlxr_gguf *g, const char *key, uint64_t *out);
bool mlxr_gguf_get_float(const mlxr_gguf *g, const char *key, double *out);
bool mlxr_gguf_get_bool(const mlxr_gguf *g, const char *key, bool *out);
/* String value: NUL-terminated copy owned by the reader; *len (optional) is its byte length (the
 * string may contain NUL bytes). */
const char *mlxr_gguf_get_str(const mlxr_gguf *g, const char *key, size_t *len);

/* Arrays. Returns false if absent or not an array. *elem_type and *count describe it. For numeric
 * element types, *data (optional) points at the packed little-endian elements in the mapping
 * (possibly unaligned: read with memcpy). For string arrays use mlxr_gguf_get_arr_str. */
bool mlxr_gguf_get_arr(const mlxr_gguf *g, const char *key, mlxr_gguf_vtype *elem_type,
                       uint64_t *count, const void **data);
/* Element i of a string array: NUL-terminated, owned by the reader; NULL if out of range. */
const char *mlxr_gguf_get_arr_str(const mlxr_gguf *g, const char *key, uint64_t i, size_t *len);

/* Tensors. */
int64_t mlxr_gguf_n_tensors(const mlxr_gguf *g);
const mlxr_gguf_tensor *mlxr_gguf_tensor_at(const mlxr_gguf *g, int64_t i);
const mlxr_gguf_tensor *mlxr_gguf_find_tensor(const mlxr_gguf *g, const char *name);

/* ---- writer ---- */
typedef struct mlxr_gguf_writer mlxr_gguf_writer;

mlxr_gguf_writer *mlxr_gguf_writer_new(void); /* NULL on out of memory */
void mlxr_gguf_writer_free(mlxr_gguf_writer *w); /* also removes an unfinished PATH.tmp */

/* Setting a key that exists replaces its value. Strings are copied. */
int mlxr_gguf_set_str(mlxr_gguf_writer *w, const char *key, const char *value);
int mlxr_gguf_set_str_n(mlxr_gguf_writer *w, const char *key, const char *value, size_t len);
int mlxr_gguf_set_u32(mlxr_gguf_writer *w, const char *key, uint32_t value);
int mlxr_gguf_set_i32(mlxr_gguf_writer *w, const char *key, int32_t value);
int mlxr_gguf_set_u64(mlxr_gguf_writer *w, const char *key, uint64_t value);
int mlxr_gguf_set_f32(mlxr_gguf_writer *w, const char *key, float value);
int mlxr_gguf_set_bool(mlxr_gguf_writer *w, const char *key, bool value);
/* Any scalar type other than STRING/ARRAY (u8, i8, u16, i16, i64, f64 have no setter of their
 * own): value points at one element of the matching C type (uint8_t .. double, bool). */
int mlxr_gguf_set_scalar(mlxr_gguf_writer *w, const char *key, mlxr_gguf_vtype type,
                         const void *value);
/* Numeric array of count elements of elem_type (not STRING/ARRAY); data copied. */
int mlxr_gguf_set_arr(mlxr_gguf_writer *w, const char *key, mlxr_gguf_vtype elem_type,
                      const void *data, uint64_t count);
/* String array; lens may be NULL (then strings are NUL-terminated). Copied. */
int mlxr_gguf_set_arr_str(mlxr_gguf_writer *w, const char *key, const char *const *strs,
                          const size_t *lens, uint64_t count);

/* Declare a tensor (order of declaration = order in the file). ne in ggml order. */
int mlxr_gguf_add_tensor(mlxr_gguf_writer *w, const char *name, mlxr_dtype type, int n_dims,
                         const int64_t *ne);

/* Writing: begin writes the header (all metadata and tensor infos) to PATH.tmp; then write each
 * declared tensor's data in declaration order (nbytes must equal its size); finish pads, flushes,
 * fsyncs and renames PATH.tmp to PATH. */
int mlxr_gguf_writer_begin(mlxr_gguf_writer *w, const char *path, char *err, size_t err_len);
int mlxr_gguf_writer_write_tensor(mlxr_gguf_writer *w, const void *data, size_t nbytes,
                                  char *err, size_t err_len);
int mlxr_gguf_writer_finish(mlxr_gguf_writer *w, char *err, size_t err_len);

/* Copy every metadata key/value of a reader into a writer (used by quantize and re-writers). */
int mlxr_gguf_writer_copy_kv(mlxr_gguf_writer *w, const mlxr_gguf *src);

#endif
