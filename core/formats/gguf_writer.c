/*
 * gguf_writer.c: GGUF v3 writer (layout in gguf_internal.h).
 *
 * How it works: setters store each key/value already encoded (the bytes that follow its u32 type
 * in the file), so writing the header is a straight copy and mlxr_gguf_writer_copy_kv can take a
 * reader's encoded bytes verbatim (nested arrays included). add_tensor computes each tensor's
 * byte size from its type and shape; begin() lays tensors out in declaration order at offsets
 * rounded up to general.alignment, writes the header and the padding after it to PATH.tmp;
 * write_tensor() streams one tensor's bytes and its padding; finish() checks every tensor was
 * written, flushes, fsyncs, renames PATH.tmp to PATH and fsyncs the directory. Any I/O failure
 * closes and removes PATH.tmp and returns the writer to its idle state.
 *
 * Ownership: the writer owns copies of every key, value and tensor name. One thread per writer.
 * Tensor data and numeric arrays are written in host byte order, which must be little-endian.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common/status.h"
#include "core/formats/fmt_util.h"
#include "core/formats/gguf.h"
#include "core/formats/gguf_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF writer assumes a little-endian host"
#endif

typedef struct wkv {
  char *key; /* NUL-terminated copy */
  size_t key_len;
  uint32_t type; /* mlxr_gguf_vtype */
  uint8_t *val;  /* encoded value [val_len] */
  size_t val_len;
} wkv;

typedef struct wtensor {
  char *name; /* NUL-terminated copy */
  size_t name_len;
  mlxr_dtype type;
  int n_dims;
  int64_t ne[MLXR_GGUF_MAX_DIMS]; /* unused dims are 1 */
  uint64_t nbytes;
  uint64_t offset; /* set by begin() */
} wtensor;

enum { WSTATE_IDLE, WSTATE_WRITING, WSTATE_DONE };

struct mlxr_gguf_writer {
  wkv *kv; /* [n_kv] in insertion order */
  size_t n_kv, cap_kv;
  wtensor *t; /* [n_t] in declaration order */
  size_t n_t, cap_t;
  mlxr_fmt_index t_ix; /* tensor name -> index, for duplicate checks */
  int state;           /* WSTATE_* */
  FILE *f;             /* PATH.tmp while writing */
  char *path, *tmp_path;
  size_t next;  /* next tensor to write */
  uint64_t pos; /* bytes written to f */
  size_t alignment;
};

mlxr_gguf_writer *mlxr_gguf_writer_new(void) {
  mlxr_gguf_writer *w = calloc(1, sizeof(*w));
  if (!w) return NULL;
  w->alignment = MLXR_GGUF_DEFAULT_ALIGNMENT;
  return w;
}

static void writer_abort_file(mlxr_gguf_writer *w) {
  if (w->f) {
    fclose(w->f);
    w->f = NULL;
  }
  if (w->tmp_path) unlink(w->tmp_path);
  free(w->path);
  free(w->tmp_path);
  w->path = w->tmp_path = NULL;
  w->state = WSTATE_IDLE;
}

void mlxr_gguf_writer_free(mlxr_gguf_writer *w) {
  if (!w) return;
  if (w->state == WSTATE_WRITING) writer_abort_file(w);
  for (size_t i = 0; i < w->n_kv; i++) {
    free(w->kv[i].key);
    free(w->kv[i].val);
  }
  for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
  free(w->kv);
  free(w->t);
  mlxr_fmt_index_free(&w->t_ix);
  free(w->path);
  free(w->tmp_path);
  free(w);
}

/* Store key = (type, encoded value); takes ownership of val (freed on failure too). */
static int kv_put(mlxr_gguf_writer *w, const char *key, uint32_t type, uint8_t *val,
                  size_t val_len) {
  if (!w || !key || w->state == WSTATE_WRITING) {
    free(val);
    return MLXR_ERR_INVALID;
  }
  size_t kl = strlen(key);
  if (kl > MLXR_GGUF_MAX_KEY_LEN) {
    free(val);
    return MLXR_ERR_INVALID;
  }
  for (size_t i = 0; i < w->n_kv; i++) {
    if (w->kv[i].key_len == kl && memcmp(w->kv[i].key, key, kl) == 0) {
      free(w->kv[i].val);
      w->kv[i].type = type;
      w->kv[i].val = val;
      w->kv[i].val_len = val_len;
      return MLXR_OK;
    }
  }
  if (w->n_kv == w->cap_kv) {
    size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
    wkv *p = realloc(w->kv, cap * sizeof(*p));
    if (!p) {
      free(val);
      return MLXR_ERR_NOMEM;
    }
    w->kv = p;
    w->cap_kv = cap;
  }
  char *k = malloc(kl + 1);
  if (!k) {
    free(val);
    return MLXR_ERR_NOMEM;
  }
  memcpy(k, key, kl + 1);
  w->kv[w->n_kv++] = (wkv){k, kl, type, val, val_len};
  return MLXR_OK;
}

static void put_le(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int mlxr_gguf_set_scalar(mlxr_gguf_writer *w, const char *key, mlxr_gguf_vtype type,
                         const void *value) {
  size_t es = mlxr_gguf_vtype_size(type);
  if (!es || !value) return MLXR_ERR_INVALID;
  uint8_t *v = malloc(es);
  if (!v) return MLXR_ERR_NOMEM;
  if (type == MLXR_GGUF_BOOL)
    v[0] = *(const bool *)value ? 1 : 0;
  else
    memcpy(v, value, es);
  return kv_put(w, key, (uint32_t)type, v, es);
}

int mlxr_gguf_set_u32(mlxr_gguf_writer *w, const char *key, uint32_t value) {
  return mlxr_gguf_set_scalar(w, key, MLXR_GGUF_U32, &value);
}
int mlxr_gguf_set_i32(mlxr_gguf_writer *w, const char *key, int32_t value) {
  return mlxr_gguf_set_scalar(w, key, MLXR_GGUF_I32, &value);
}
int mlxr_gguf_set_u64(mlxr_gguf_writer *w, const char *key, uint64_t value) {
  return mlxr_gguf_set_scalar(w, key, MLXR_GGUF_U64, &value);
}
int mlxr_gguf_set_f32(mlxr_gguf_writer *w, const char *key, float value) {
  return mlxr_gguf_set_scalar(w, key, MLXR_GGUF_F32, &value);
}
int mlxr_gguf_set_bool(mlxr_gguf_writer *w, const char *key, bool value) {
  return mlxr_gguf_set_scalar(w, key, MLXR_GGUF_BOOL, &value);
}

int mlxr_gguf_set_str_n(mlxr_gguf_writer *w, const char *key, const char *value, size_t len) {
  if (!value && len) return MLXR_ERR_INVALID;
  if (len > SIZE_MAX - 8) return MLXR_ERR_RANGE;
  uint8_t *v = malloc(8 + len);
  if (!v) return MLXR_ERR_NOMEM;
  put_le(v, len, 8);
  if (len) memcpy(v + 8, value, len);
  return kv_put(w, key, MLXR_GGUF_STRING, v, 8 + len);
}

int mlxr_gguf_set_str(mlxr_gguf_writer *w, const char *key, const char *value) {
  if (!value) return MLXR_ERR_INVALID;
  return mlxr_gguf_set_str_n(w, key, value, strlen(value));
}

int mlxr_gguf_set_arr(mlxr_gguf_writer *w, const char *key, mlxr_gguf_vtype elem_type,
                      const void *data, uint64_t count) {
  size_t es = mlxr_gguf_vtype_size(elem_type);
  if (!es || (!data && count)) return MLXR_ERR_INVALID;
  if (count > (SIZE_MAX - 12) / es) return MLXR_ERR_RANGE;
  size_t n = 12 + (size_t)count * es;
  uint8_t *v = malloc(n);
  if (!v) return MLXR_ERR_NOMEM;
  put_le(v, (uint32_t)elem_type, 4);
  put_le(v + 4, count, 8);
  if (count) memcpy(v + 12, data, (size_t)count * es);
  if (elem_type == MLXR_GGUF_BOOL)
    for (size_t i = 0; i < (size_t)count; i++) v[12 + i] = v[12 + i] ? 1 : 0;
  return kv_put(w, key, MLXR_GGUF_ARRAY, v, n);
}

int mlxr_gguf_set_arr_str(mlxr_gguf_writer *w, const char *key, const char *const *strs,
                          const size_t *lens, uint64_t count) {
  if (!strs && count) return MLXR_ERR_INVALID;
  if (count > SIZE_MAX / 8) return MLXR_ERR_RANGE;
  size_t n = 12;
  for (uint64_t i = 0; i < count; i++) {
    if (!strs[i] && (!lens || lens[i])) return MLXR_ERR_INVALID;
    size_t l = lens ? lens[i] : strlen(strs[i]);
    if (l > SIZE_MAX - 8 - n) return MLXR_ERR_RANGE;
    n += 8 + l;
  }
  uint8_t *v = malloc(n);
  if (!v) return MLXR_ERR_NOMEM;
  put_le(v, MLXR_GGUF_STRING, 4);
  put_le(v + 4, count, 8);
  size_t at = 12;
  for (uint64_t i = 0; i < count; i++) {
    size_t l = lens ? lens[i] : strlen(strs[i]);
    put_le(v + at, l, 8);
    if (l) memcpy(v + at + 8, strs[i], l);
    at += 8 + l;
  }
  return kv_put(w, key, MLXR_GGUF_ARRAY, v, n);
}

int mlxr_gguf_writer_copy_kv(mlxr_gguf_writer *w, const mlxr_gguf *src) {
  if (!w || !src) return MLXR_ERR_INVALID;
  for (int64_t i = 0; i < mlxr_gguf_n_kv(src); i++) {
    const uint8_t *raw;
    size_t len;
    if (!mlxr_gguf_kv_raw(src, i, &raw, &len)) return MLXR_ERR_INVALID;
    uint8_t *v = malloc(len ? len : 1);
    if (!v) return MLXR_ERR_NOMEM;
    memcpy(v, raw, len);
    int rc = kv_put(w, mlxr_gguf_kv_key(src, i), (uint32_t)mlxr_gguf_kv_type(src, i), v, len);
    if (rc) return rc;
  }
  return MLXR_OK;
}

int mlxr_gguf_add_tensor(mlxr_gguf_writer *w, const char *name, mlxr_dtype type, int n_dims,
                         const int64_t *ne) {
  if (!w || !name || !ne || w->state == WSTATE_WRITING) return MLXR_ERR_INVALID;
  size_t nl = strlen(name);
  if (nl > MLXR_GGUF_MAX_NAME_LEN || n_dims < 1 || n_dims > MLXR_GGUF_MAX_DIMS ||
      !mlxr_dtype_is_known((uint32_t)type))
    return MLXR_ERR_INVALID;
  wtensor t = {.type = type, .n_dims = n_dims, .name_len = nl};
  uint64_t rows = 1;
  for (int d = 0; d < MLXR_GGUF_MAX_DIMS; d++) {
    t.ne[d] = d < n_dims ? ne[d] : 1;
    if (t.ne[d] <= 0) return MLXR_ERR_INVALID;
    if (d > 0) {
      if ((uint64_t)t.ne[d] > (uint64_t)INT64_MAX / rows) return MLXR_ERR_RANGE;
      rows *= (uint64_t)t.ne[d];
    }
  }
  size_t row;
  if (!mlxr_dtype_row_size(type, t.ne[0], &row)) return MLXR_ERR_INVALID;
  if ((uint64_t)t.ne[0] > (uint64_t)INT64_MAX / rows) return MLXR_ERR_RANGE;
  if (rows > SIZE_MAX / row) return MLXR_ERR_RANGE;
  t.nbytes = (uint64_t)row * rows;
  /* Grow the name index (rebuilding it) when it would pass half full. */
  if ((w->n_t + 1) * 2 + 1 > w->t_ix.mask + 1 || !w->t_ix.slots) {
    mlxr_fmt_index ix;
    if (mlxr_fmt_index_init(&ix, (w->n_t + 1) * 2)) return MLXR_ERR_NOMEM;
    for (size_t i = 0; i < w->n_t; i++)
      mlxr_fmt_index_insert(&ix, w->t[i].name, w->t[i].name_len, (int64_t)i);
    mlxr_fmt_index_free(&w->t_ix);
    w->t_ix = ix;
  }
  if (mlxr_fmt_index_find(&w->t_ix, name, nl) >= 0) return MLXR_ERR_INVALID;
  if (w->n_t == w->cap_t) {
    size_t cap = w->cap_t ? w->cap_t * 2 : 64;
    wtensor *p = realloc(w->t, cap * sizeof(*p));
    if (!p) return MLXR_ERR_NOMEM;
    w->t = p;
    w->cap_t = cap;
  }
  t.name = malloc(nl + 1);
  if (!t.name) return MLXR_ERR_NOMEM;
  memcpy(t.name, name, nl + 1);
  w->t[w->n_t] = t;
  mlxr_fmt_index_insert(&w->t_ix, t.name, nl, (int64_t)w->n_t);
  w->n_t++;
  return MLXR_OK;
}

/* ---- file output ---- */

static int wr(mlxr_gguf_writer *w, const void *p, size_t n, char *err, size_t err_len) {
  if (n && fwrite(p, 1, n, w->f) != n) {
    int e = errno;
    mlxr_errf(err, err_len, MLXR_ERR_IO, "write to %s failed: %s", w->tmp_path, strerror(e));
    writer_abort_file(w);
    return MLXR_ERR_IO;
  }
  w->pos += n;
  return MLXR_OK;
}

static int wr_le(mlxr_gguf_writer *w, uint64_t v, size_t n, char *err, size_t err_len) {
  uint8_t b[8];
  put_le(b, v, n);
  return wr(w, b, n, err, err_len);
}

static int wr_pad(mlxr_gguf_writer *w, char *err, size_t err_len) {
  static const uint8_t zeros[4096];
  size_t pad = (size_t)((w->alignment - w->pos % w->alignment) % w->alignment);
  while (pad) {
    size_t n = pad < sizeof(zeros) ? pad : sizeof(zeros);
    int rc = wr(w, zeros, n, err, err_len);
    if (rc) return rc;
    pad -= n;
  }
  return MLXR_OK;
}

static int resolve_alignment(mlxr_gguf_writer *w, char *err, size_t err_len) {
  w->alignment = MLXR_GGUF_DEFAULT_ALIGNMENT;
  for (size_t i = 0; i < w->n_kv; i++) {
    if (strcmp(w->kv[i].key, "general.alignment") != 0) continue;
    if (w->kv[i].type != MLXR_GGUF_U32)
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "general.alignment must be a u32");
    uint32_t a = (uint32_t)w->kv[i].val[0] | (uint32_t)w->kv[i].val[1] << 8 |
                 (uint32_t)w->kv[i].val[2] << 16 | (uint32_t)w->kv[i].val[3] << 24;
    if (a == 0 || (a & (a - 1)) != 0)
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "general.alignment %u is not a power of two",
                       a);
    w->alignment = a;
  }
  return MLXR_OK;
}

int mlxr_gguf_writer_begin(mlxr_gguf_writer *w, const char *path, char *err, size_t err_len) {
  if (!w || !path) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "writer_begin: NULL argument");
  if (w->state == WSTATE_WRITING)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "writer_begin: a file is already open");
  int rc = resolve_alignment(w, err, err_len);
  if (rc) return rc;
  uint64_t off = 0;
  for (size_t i = 0; i < w->n_t; i++) {
    uint64_t a = w->alignment;
    w->t[i].offset = off;
    if (off > UINT64_MAX - a || w->t[i].nbytes > UINT64_MAX - a - off)
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "total tensor size overflows");
    off = (off + w->t[i].nbytes + a - 1) / a * a;
  }
  size_t pl = strlen(path);
  w->path = malloc(pl + 1);
  w->tmp_path = malloc(pl + 5);
  if (!w->path || !w->tmp_path) {
    writer_abort_file(w);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  memcpy(w->path, path, pl + 1);
  memcpy(w->tmp_path, path, pl);
  memcpy(w->tmp_path + pl, ".tmp", 5);
  w->f = fopen(w->tmp_path, "wbe");
  if (!w->f) {
    int e = errno;
    mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot create %s: %s", w->tmp_path, strerror(e));
    free(w->path);
    free(w->tmp_path);
    w->path = w->tmp_path = NULL;
    return MLXR_ERR_IO;
  }
  w->state = WSTATE_WRITING;
  w->pos = 0;
  w->next = 0;
  if ((rc = wr_le(w, MLXR_GGUF_MAGIC, 4, err, err_len)) || (rc = wr_le(w, 3, 4, err, err_len)) ||
      (rc = wr_le(w, w->n_t, 8, err, err_len)) || (rc = wr_le(w, w->n_kv, 8, err, err_len)))
    return rc;
  for (size_t i = 0; i < w->n_kv; i++) {
    const wkv *kv = &w->kv[i];
    if ((rc = wr_le(w, kv->key_len, 8, err, err_len)) ||
        (rc = wr(w, kv->key, kv->key_len, err, err_len)) ||
        (rc = wr_le(w, kv->type, 4, err, err_len)) ||
        (rc = wr(w, kv->val, kv->val_len, err, err_len)))
      return rc;
  }
  for (size_t i = 0; i < w->n_t; i++) {
    const wtensor *t = &w->t[i];
    if ((rc = wr_le(w, t->name_len, 8, err, err_len)) ||
        (rc = wr(w, t->name, t->name_len, err, err_len)) ||
        (rc = wr_le(w, (uint64_t)t->n_dims, 4, err, err_len)))
      return rc;
    for (int d = 0; d < t->n_dims; d++)
      if ((rc = wr_le(w, (uint64_t)t->ne[d], 8, err, err_len))) return rc;
    if ((rc = wr_le(w, (uint64_t)t->type, 4, err, err_len)) ||
        (rc = wr_le(w, t->offset, 8, err, err_len)))
      return rc;
  }
  return wr_pad(w, err, err_len);
}

int mlxr_gguf_writer_write_tensor(mlxr_gguf_writer *w, const void *data, size_t nbytes, char *err,
                                  size_t err_len) {
  if (!w || w->state != WSTATE_WRITING)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "write_tensor: writer_begin was not called");
  if (w->next >= w->n_t)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "write_tensor: all %zu declared tensors were already written", w->n_t);
  const wtensor *t = &w->t[w->next];
  if (nbytes != t->nbytes || (!data && nbytes))
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "write_tensor: tensor '%s' is %llu bytes, got %zu", t->name,
                     (unsigned long long)t->nbytes, nbytes);
  int rc = wr(w, data, nbytes, err, err_len);
  if (rc) return rc;
  if ((rc = wr_pad(w, err, err_len))) return rc;
  w->next++;
  return MLXR_OK;
}

int mlxr_gguf_writer_finish(mlxr_gguf_writer *w, char *err, size_t err_len) {
  if (!w || w->state != WSTATE_WRITING)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "writer_finish: writer_begin was not called");
  if (w->next != w->n_t)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "writer_finish: only %zu of %zu tensors were written (next: '%s')", w->next,
                     w->n_t, w->t[w->next].name);
  if (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0) {
    int e = errno;
    mlxr_errf(err, err_len, MLXR_ERR_IO, "flushing %s failed: %s", w->tmp_path, strerror(e));
    writer_abort_file(w);
    return MLXR_ERR_IO;
  }
  int cr = fclose(w->f);
  w->f = NULL;
  if (cr != 0 || rename(w->tmp_path, w->path) != 0) {
    int e = errno;
    mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot finish %s: %s", w->path, strerror(e));
    writer_abort_file(w);
    return MLXR_ERR_IO;
  }
  /* Make the rename durable: fsync the directory that holds PATH (best effort). */
  char *dir = strdup(w->path);
  if (dir) {
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
      (void)fsync(fd);
      close(fd);
    }
    free(dir);
  }
  free(w->path);
  free(w->tmp_path);
  w->path = w->tmp_path = NULL;
  w->state = WSTATE_DONE;
  return MLXR_OK;
}
