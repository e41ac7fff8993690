/*
 * fmt_util.h: private helpers shared by the file-format readers in core/formats/ (not a public
 * header; only gguf_*.c and safetensors.c include it).
 *
 * - A read-only, MAP_PRIVATE file mapping (mlxr_fmt_map_file / mlxr_fmt_unmap).
 * - A name -> index hash table (open addressing, linear probing, FNV-1a). Names are (pointer,
 *   length) pairs borrowed from the caller, who keeps them alive as long as the table; lengths
 *   make names with embedded NUL bytes distinct from their prefixes.
 *
 * Everything here is plain data owned by the caller; no globals, any thread.
 */
#ifndef MLXR_FORMATS_FMT_UTIL_H
#define MLXR_FORMATS_FMT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Map a whole regular file read-only. A zero-length file gives *base == NULL, *size == 0 and
 * succeeds (the caller's format check then rejects it). Returns 0 or a negative mlxr_status. */
int mlxr_fmt_map_file(const char *path, const uint8_t **base, size_t *size, char *err,
                      size_t err_len);
void mlxr_fmt_unmap(const uint8_t *base, size_t size);

typedef struct mlxr_fmt_slot {
  const char *name; /* borrowed; NULL marks an empty slot */
  size_t len;       /* bytes of name */
  int64_t value;    /* caller's index */
} mlxr_fmt_slot;

typedef struct mlxr_fmt_index {
  mlxr_fmt_slot *slots; /* [mask + 1] */
  size_t mask;          /* capacity - 1, capacity a power of two, at least 2x the entries */
} mlxr_fmt_index;

/* Size the table for up to n entries. Returns 0 or MLXR_ERR_NOMEM. */
int mlxr_fmt_index_init(mlxr_fmt_index *ix, size_t n);
void mlxr_fmt_index_free(mlxr_fmt_index *ix);
/* Insert; returns false (and inserts nothing) if the name is already present. The table must
 * have been sized for at least the number of inserts. */
bool mlxr_fmt_index_insert(mlxr_fmt_index *ix, const char *name, size_t len, int64_t value);
/* Value of name, or -1 if absent (also when the table is empty). */
int64_t mlxr_fmt_index_find(const mlxr_fmt_index *ix, const char *name, size_t len);

#endif
