/*
 * gguf_internal.h: what the GGUF reader and writer share (private to core/formats/).
 *
 * File layout (ggml docs/gguf.md; all little-endian; "str" is u64 length + bytes, no NUL):
 *
 *   offset 0   u32 magic "GGUF" (bytes 47 47 55 46)
 *          4   u32 version (2 or 3; 1 used u32 counts and is rejected)
 *          8   u64 tensor_count
 *         16   u64 metadata_kv_count
 *         24   kv[metadata_kv_count]:   str key, u32 value_type, value
 *                value: scalars packed (bool = 1 byte), string = str,
 *                array = u32 elem_type, u64 count, count packed elements (arrays may nest)
 *          .   tensor_info[tensor_count]: str name, u32 n_dims, u64 ne[n_dims], u32 ggml_type,
 *                                         u64 offset (relative to the data section)
 *          .   zero padding up to a multiple of general.alignment (u32 key, default 32)
 *          .   data section: each tensor at its offset, offsets multiples of the alignment
 */
#ifndef MLXR_FORMATS_GGUF_INTERNAL_H
#define MLXR_FORMATS_GGUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/formats/gguf.h"

#define MLXR_GGUF_MAGIC 0x46554747u  /* "GGUF" read as a little-endian u32 */
#define MLXR_GGUF_MAX_KEY_LEN 65535u /* the spec's limit on key length */
#define MLXR_GGUF_MAX_NAME_LEN 256u  /* llama.cpp says 64; we accept up to this */
#define MLXR_GGUF_MAX_ARRAY_DEPTH 8  /* nesting of arrays inside arrays */

/* Bytes of one packed element of a scalar value type; 0 for STRING, ARRAY and unknown types. */
size_t mlxr_gguf_vtype_size(mlxr_gguf_vtype t);

/* The encoded value bytes of key/value i (everything after its u32 value_type), as stored in the
 * reader's buffer. Returns false if i is out of range. The writer copies these verbatim. */
bool mlxr_gguf_kv_raw(const mlxr_gguf *g, int64_t i, const uint8_t **data, size_t *len);

#endif
