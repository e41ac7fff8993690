/*
 * safetensors.c: safetensors reader (layout and rules in safetensors.h).
 *
 * How it works: each file is mapped read-only; its header length N is checked against the 100 MB
 * cap and the file size, the N header bytes are copied into a NUL-terminated buffer (so cJSON can
 * never read past them) and parsed. Every tensor entry is validated (dtype known, at most 8
 * non-negative integer dims, shape product * element size == end - begin without overflow,
 * begin <= end <= buffer size) and then the non-empty ranges of the file are sorted and checked
 * for overlap. Names and metadata strings are copied into a chunked string pool, so the cJSON
 * tree is freed right after each file. A directory is opened through its
 * model.safetensors.index.json (every weight_map entry must be found in the shard it names),
 * else model.safetensors, else every *.safetensors in name order. One hash table over all names
 * answers mlxr_safetensors_find and rejects a name that appears twice.
 *
 * Ownership: the reader owns the mappings it made (not a buffer given to open_memory), the
 * tensor list, the pool and the index; everything returned is valid until close. Immutable after
 * open; any thread may read it.
 */
#include "core/formats/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common/status.h"
#include "core/formats/fmt_util.h"

#define ST_MAX_HEADER 100000000ull         /* the reference implementation's cap, in bytes */
#define ST_MAX_INDEX 100000000ull          /* cap on model.safetensors.index.json */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact doubles */

typedef struct st_file {
  const uint8_t *base; /* whole file [size] */
  size_t size;
  bool owns;        /* mapped by us */
  const char *name; /* path for messages (pool) */
} st_file;

typedef struct st_meta {
  const char *key; /* pool */
  const char *val; /* pool */
} st_meta;

typedef struct st_block {
  struct st_block *next;
  size_t used, cap;
  char data[];
} st_block;

struct mlxr_safetensors {
  st_file *files; /* [n_files] */
  size_t n_files, cap_files;
  mlxr_st_tensor *t; /* [n_t], files in order, each file's tensors in header order */
  int *t_file;       /* [n_t] index of the file holding tensor i */
  size_t n_t, cap_t;
  st_meta *meta; /* [n_meta], files in order */
  size_t n_meta, cap_meta;
  st_block *pool;    /* string pool blocks, newest first */
  mlxr_fmt_index ix; /* tensor name -> index */
};

typedef struct st_dtype_info {
  const char *name;
  size_t size;
} st_dtype_info;

static const st_dtype_info *st_dtype_info_of(mlxr_st_dtype t) {
  static const st_dtype_info table[MLXR_ST_DTYPE_COUNT] = {
      [MLXR_ST_BOOL] = {"BOOL", 1},       [MLXR_ST_U8] = {"U8", 1},
      [MLXR_ST_I8] = {"I8", 1},           [MLXR_ST_U16] = {"U16", 2},
      [MLXR_ST_I16] = {"I16", 2},         [MLXR_ST_F16] = {"F16", 2},
      [MLXR_ST_BF16] = {"BF16", 2},       [MLXR_ST_U32] = {"U32", 4},
      [MLXR_ST_I32] = {"I32", 4},         [MLXR_ST_F32] = {"F32", 4},
      [MLXR_ST_F64] = {"F64", 8},         [MLXR_ST_U64] = {"U64", 8},
      [MLXR_ST_I64] = {"I64", 8},         [MLXR_ST_F8_E4M3] = {"F8_E4M3", 1},
      [MLXR_ST_F8_E5M2] = {"F8_E5M2", 1},
  };
  if ((unsigned)t >= MLXR_ST_DTYPE_COUNT) return NULL;
  return &table[t];
}

size_t mlxr_st_dtype_size(mlxr_st_dtype t) {
  const st_dtype_info *d = st_dtype_info_of(t);
  return d ? d->size : 0;
}

const char *mlxr_st_dtype_name(mlxr_st_dtype t) {
  const st_dtype_info *d = st_dtype_info_of(t);
  return d ? d->name : "?";
}

static int st_dtype_parse(const char *s) {
  for (int t = 0; t < MLXR_ST_DTYPE_COUNT; t++)
    if (strcmp(s, st_dtype_info_of((mlxr_st_dtype)t)->name) == 0) return t;
  return -1;
}

/* ---- small owned containers ---- */

static const char *pool_strdup(mlxr_safetensors *st, const char *s) {
  size_t n = strlen(s) + 1;
  if (!st->pool || st->pool->cap - st->pool->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    st_block *b = malloc(sizeof(st_block) + cap);
    if (!b) return NULL;
    b->next = st->pool;
    b->used = 0;
    b->cap = cap;
    st->pool = b;
  }
  char *p = st->pool->data + st->pool->used;
  memcpy(p, s, n);
  st->pool->used += n;
  return p;
}

/* Make room for one more element in a (ptr, n, cap) vector of elem-byte elements. */
static bool grow(void **ptr, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) return true;
  size_t nc = *cap ? *cap * 2 : 16;
  if (nc > SIZE_MAX / elem) return false;
  void *p = realloc(*ptr, nc * elem);
  if (!p) return false;
  *ptr = p;
  *cap = nc;
  return true;
}

static int add_tensor_slot(mlxr_safetensors *st) {
  if (st->n_t == st->cap_t) {
    size_t cap = st->cap_t;
    if (!grow((void **)&st->t, &cap, st->n_t, sizeof(*st->t))) return MLXR_ERR_NOMEM;
    int *tf = realloc(st->t_file, cap * sizeof(*tf));
    if (!tf) return MLXR_ERR_NOMEM;
    st->t_file = tf;
    st->cap_t = cap;
  }
  return MLXR_OK;
}

/* ---- one file ---- */

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* A JSON number that is an exact non-negative integer <= 2^53. */
static bool json_uint(const cJSON *it, uint64_t *out) {
  if (!cJSON_IsNumber(it)) return false;
  double d = it->valuedouble;
  if (!(d >= 0.0 && d <= ST_MAX_JSON_INT)) return false;
  uint64_t u = (uint64_t)d;
  if ((double)u != d) return false;
  *out = u;
  return true;
}

typedef struct st_range {
  uint64_t b, e;
  size_t t; /* tensor index */
} st_range;

static int range_cmp(const void *a, const void *b) {
  const st_range *x = a, *y = b;
  if (x->b != y->b) return x->b < y->b ? -1 : 1;
  return x->e < y->e ? -1 : x->e > y->e;
}

static int parse_tensor_entry(mlxr_safetensors *st, const cJSON *it, const uint8_t *buf,
                              uint64_t buf_size, char *err, size_t err_len) {
  const char *name = it->string;
  if (!cJSON_IsObject(it))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "entry '%s' is not an object", name);
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(it, "shape");
  const cJSON *offs = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
  if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "tensor '%s' needs string dtype, array shape and array data_offsets", name);
  int t = st_dtype_parse(dt->valuestring);
  if (t < 0)
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "tensor '%s' has unknown dtype '%.32s'",
                     name, dt->valuestring);
  int nd = cJSON_GetArraySize(shape);
  if (nd > MLXR_ST_MAX_DIMS)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tensor '%s' has %d dimensions (max %d)", name,
                     nd, MLXR_ST_MAX_DIMS);
  mlxr_st_tensor tt = {.dtype = (mlxr_st_dtype)t, .n_dims = nd};
  uint64_t nel = 1;
  int d = 0;
  for (const cJSON *x = shape->child; x; x = x->next, d++) {
    uint64_t v;
    if (!json_uint(x, &v))
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                       "tensor '%s' dimension %d is not a non-negative integer", name, d);
    tt.shape[d] = (int64_t)v;
    if (v != 0 && nel > UINT64_MAX / v)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tensor '%s' element count overflows", name);
    nel *= v;
  }
  size_t es = mlxr_st_dtype_size(tt.dtype);
  if (nel > SIZE_MAX / es)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tensor '%s' byte size overflows", name);
  uint64_t b, e;
  if (cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &b) ||
      !json_uint(offs->child->next, &e))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "tensor '%s' data_offsets must be two non-negative integers", name);
  if (b > e || e > buf_size)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "tensor '%s' data_offsets [%llu, %llu) are not inside the %llu-byte buffer",
                     name, (unsigned long long)b, (unsigned long long)e,
                     (unsigned long long)buf_size);
  if (e - b != nel * es)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "tensor '%s' is %llu bytes by its shape and dtype but data_offsets span %llu",
                     name, (unsigned long long)(nel * es), (unsigned long long)(e - b));
  tt.nbytes = (size_t)(e - b);
  tt.data = buf + b;
  if (!(tt.name = pool_strdup(st, name)) || add_tensor_slot(st))
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  st->t[st->n_t] = tt;
  st->t_file[st->n_t] = (int)st->n_files;
  st->n_t++;
  return MLXR_OK;
}

static int parse_metadata(mlxr_safetensors *st, const cJSON *md, char *err, size_t err_len) {
  if (cJSON_IsNull(md)) return MLXR_OK;
  if (!cJSON_IsObject(md))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "__metadata__ is not an object");
  for (const cJSON *x = md->child; x; x = x->next) {
    if (!cJSON_IsString(x))
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "__metadata__ value '%s' is not a string",
                       x->string);
    if (!grow((void **)&st->meta, &st->cap_meta, st->n_meta, sizeof(*st->meta)))
      return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    st_meta m = {pool_strdup(st, x->string), pool_strdup(st, x->valuestring)};
    if (!m.key || !m.val) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    st->meta[st->n_meta++] = m;
  }
  return MLXR_OK;
}

static bool json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Parse JSON text of exactly len bytes (copied so cJSON sees a NUL-terminated string). Only
 * whitespace may follow the value. */
static cJSON *parse_json_exact(const uint8_t *text, size_t len, char *err, size_t err_len,
                               const char *what) {
  char *buf = malloc(len + 1);
  if (!buf) {
    mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory for a %zu-byte %s", len, what);
    return NULL;
  }
  memcpy(buf, text, len);
  buf[len] = '\0';
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(buf, &end, 0);
  if (!root) {
    size_t at = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
    mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s is not valid JSON (error near byte %zu)", what,
              at);
    free(buf);
    return NULL;
  }
  for (const char *p = end; p < buf + len; p++) {
    if (!json_ws(*p)) {
      mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s has trailing bytes after the JSON value", what);
      cJSON_Delete(root);
      free(buf);
      return NULL;
    }
  }
  free(buf);
  return root;
}

/* Parse the file st->files[st->n_files] (already filled in) and append its tensors; on success
 * the file is counted in n_files. */
static int parse_file(mlxr_safetensors *st, char *err, size_t err_len) {
  const st_file *f = &st->files[st->n_files];
  if (f->size < 8)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "not a safetensors file (%zu bytes, no header length)", f->size);
  uint64_t n = le64(f->base);
  if (n > ST_MAX_HEADER)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "safetensors header length %llu exceeds the %llu-byte limit",
                     (unsigned long long)n, ST_MAX_HEADER);
  if (n > f->size - 8)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "safetensors header length %llu runs past the end of the %zu-byte file",
                     (unsigned long long)n, f->size);
  if (n < 2 || f->base[8] != '{')
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "safetensors header is not a JSON object");
  cJSON *root = parse_json_exact(f->base + 8, (size_t)n, err, err_len, "safetensors header");
  if (!root) return MLXR_ERR_FORMAT;
  const uint8_t *buf = f->base + 8 + n;
  uint64_t buf_size = f->size - 8 - n;
  size_t first = st->n_t;
  int rc = MLXR_OK;
  if (!cJSON_IsObject(root))
    rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "safetensors header is not a JSON object");
  for (const cJSON *it = rc ? NULL : root->child; it && rc == MLXR_OK; it = it->next) {
    if (strcmp(it->string, "__metadata__") == 0)
      rc = parse_metadata(st, it, err, err_len);
    else
      rc = parse_tensor_entry(st, it, buf, buf_size, err, err_len);
  }
  cJSON_Delete(root);
  if (rc) return rc;
  /* No two non-empty tensors may share bytes. */
  size_t cnt = st->n_t - first, nr = 0;
  st_range *r = malloc((cnt ? cnt : 1) * sizeof(*r));
  if (!r) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  for (size_t i = first; i < st->n_t; i++) {
    if (st->t[i].nbytes == 0) continue;
    uint64_t b = (uint64_t)((const uint8_t *)st->t[i].data - buf);
    r[nr++] = (st_range){b, b + st->t[i].nbytes, i};
  }
  qsort(r, nr, sizeof(*r), range_cmp);
  for (size_t i = 1; i < nr; i++) {
    if (r[i].b < r[i - 1].e) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tensors '%s' and '%s' overlap",
                     st->t[r[i - 1].t].name, st->t[r[i].t].name);
      break;
    }
  }
  free(r);
  if (rc) return rc;
  st->n_files++;
  return MLXR_OK;
}

/* Map path and parse it as one more file. Error messages are prefixed with the path. */
static int add_file_path(mlxr_safetensors *st, const char *path, char *err, size_t err_len) {
  if (!grow((void **)&st->files, &st->cap_files, st->n_files, sizeof(*st->files)))
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  st_file *f = &st->files[st->n_files];
  memset(f, 0, sizeof(*f));
  f->name = pool_strdup(st, path);
  if (!f->name) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  int rc = mlxr_fmt_map_file(path, &f->base, &f->size, err, err_len);
  if (rc) return rc;
  f->owns = true;
  char msg[512];
  rc = parse_file(st, msg, sizeof(msg));
  if (rc) {
    mlxr_fmt_unmap(f->base, f->size);
    f->base = NULL;
    f->size = 0;
    return mlxr_errf(err, err_len, rc, "%s: %s", path, msg);
  }
  return MLXR_OK;
}

static int build_index(mlxr_safetensors *st, char *err, size_t err_len) {
  if (mlxr_fmt_index_init(&st->ix, st->n_t))
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < st->n_t; i++) {
    const char *nm = st->t[i].name;
    if (!mlxr_fmt_index_insert(&st->ix, nm, strlen(nm), (int64_t)i)) {
      int64_t j = mlxr_fmt_index_find(&st->ix, nm, strlen(nm));
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tensor '%s' appears twice (%s and %s)", nm,
                       st->files[st->t_file[j]].name, st->files[st->t_file[i]].name);
    }
  }
  return MLXR_OK;
}

/* ---- directories ---- */

static char *path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

static bool file_exists(const char *p) {
  struct stat s;
  return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static bool shard_name_ok(const char *s) {
  return s[0] && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int open_index(mlxr_safetensors *st, const char *dir, const char *index_path, char *err,
                      size_t err_len) {
  const uint8_t *base;
  size_t size;
  int rc = mlxr_fmt_map_file(index_path, &base, &size, err, err_len);
  if (rc) return rc;
  if (size > ST_MAX_INDEX) {
    mlxr_fmt_unmap(base, size);
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s is larger than %llu bytes", index_path,
                     ST_MAX_INDEX);
  }
  char msg[256];
  cJSON *root = parse_json_exact(base, size, msg, sizeof(msg), "index");
  mlxr_fmt_unmap(base, size);
  if (!root) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s: %s", index_path, msg);
  const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
  if (!cJSON_IsObject(wm)) {
    cJSON_Delete(root);
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s has no weight_map object", index_path);
  }
  /* Shards in order of first mention (file i = shards[i]); shard_of[k] = file index of
   * weight_map entry k. Models have few shards, so a linear search over them is cheap. */
  int n_wm = cJSON_GetArraySize(wm);
  int *shard_of = malloc((size_t)(n_wm > 0 ? n_wm : 1) * sizeof(int));
  const char **shards = malloc((size_t)(n_wm > 0 ? n_wm : 1) * sizeof(char *));
  if (!shard_of || !shards) {
    free(shard_of);
    free(shards);
    cJSON_Delete(root);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  int n_shards = 0;
  rc = MLXR_OK;
  int k = 0;
  for (const cJSON *x = wm->child; x && rc == MLXR_OK; x = x->next, k++) {
    if (!cJSON_IsString(x) || !shard_name_ok(x->valuestring)) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s: weight_map['%s'] is not a file name",
                     index_path, x->string);
      break;
    }
    int found = -1;
    for (int j = 0; j < n_shards && found < 0; j++)
      if (strcmp(shards[j], x->valuestring) == 0) found = j;
    if (found < 0) {
      char *p = path_join(dir, x->valuestring);
      if (!p) {
        rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
        break;
      }
      found = n_shards;
      shards[n_shards++] = x->valuestring;
      rc = add_file_path(st, p, err, err_len);
      free(p);
    }
    shard_of[k] = found;
  }
  free(shards);
  if (rc == MLXR_OK) rc = build_index(st, err, err_len);
  k = 0;
  for (const cJSON *x = wm->child; x && rc == MLXR_OK; x = x->next, k++) {
    int64_t i = mlxr_fmt_index_find(&st->ix, x->string, strlen(x->string));
    if (i < 0 || st->t_file[i] != shard_of[k])
      rc = mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "%s: tensor '%s' is not in its shard %s",
                     index_path, x->string, x->valuestring);
  }
  free(shard_of);
  cJSON_Delete(root);
  return rc;
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int open_all_in_dir(mlxr_safetensors *st, const char *dir, char *err, size_t err_len) {
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot list %s: %s", dir, strerror(e));
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = MLXR_OK;
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    size_t l = strlen(de->d_name);
    static const char ext[] = ".safetensors";
    if (l <= sizeof(ext) - 1 || strcmp(de->d_name + l - (sizeof(ext) - 1), ext) != 0) continue;
    if (!grow((void **)&names, &cap, n, sizeof(*names)) || !(names[n] = strdup(de->d_name))) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
      break;
    }
    n++;
  }
  closedir(d);
  if (rc == MLXR_OK && n == 0)
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "no .safetensors files in %s", dir);
  if (rc == MLXR_OK) qsort(names, n, sizeof(*names), name_cmp);
  for (size_t i = 0; i < n && rc == MLXR_OK; i++) {
    char *p = path_join(dir, names[i]);
    if (!p)
      rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    else
      rc = add_file_path(st, p, err, err_len);
    free(p);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  if (rc == MLXR_OK) rc = build_index(st, err, err_len);
  return rc;
}

/* ---- public API ---- */

void mlxr_safetensors_close(mlxr_safetensors *st) {
  if (!st) return;
  for (size_t i = 0; i < st->n_files; i++)
    if (st->files[i].owns) mlxr_fmt_unmap(st->files[i].base, st->files[i].size);
  for (st_block *b = st->pool, *nx; b; b = nx) {
    nx = b->next;
    free(b);
  }
  mlxr_fmt_index_free(&st->ix);
  free(st->files);
  free(st->t);
  free(st->t_file);
  free(st->meta);
  free(st);
}

int mlxr_safetensors_open_memory(const void *data, size_t size, mlxr_safetensors **out, char *err,
                                 size_t err_len) {
  if (!out)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "safetensors_open_memory: out is NULL");
  *out = NULL;
  if (!data && size)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "safetensors_open_memory: data is NULL");
  mlxr_safetensors *st = calloc(1, sizeof(*st));
  if (!st) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  int rc = MLXR_OK;
  if (!grow((void **)&st->files, &st->cap_files, 0, sizeof(*st->files)))
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  if (rc == MLXR_OK) {
    st->files[0] = (st_file){data, size, false, "<memory>"};
    rc = parse_file(st, err, err_len);
  }
  if (rc == MLXR_OK) rc = build_index(st, err, err_len);
  if (rc) {
    mlxr_safetensors_close(st);
    return rc;
  }
  *out = st;
  return MLXR_OK;
}

int mlxr_safetensors_open(const char *path, mlxr_safetensors **out, char *err, size_t err_len) {
  if (!out || !path)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "safetensors_open: NULL argument");
  *out = NULL;
  struct stat s;
  if (stat(path, &s) != 0) {
    int e = errno;
    return mlxr_errf(err, err_len, e == ENOENT ? MLXR_ERR_NOT_FOUND : MLXR_ERR_IO,
                     "cannot open %s: %s", path, strerror(e));
  }
  mlxr_safetensors *st = calloc(1, sizeof(*st));
  if (!st) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  int rc;
  if (!S_ISDIR(s.st_mode)) {
    rc = add_file_path(st, path, err, err_len);
    if (rc == MLXR_OK) rc = build_index(st, err, err_len);
  } else {
    char *index = path_join(path, "model.safetensors.index.json");
    char *single = path_join(path, "model.safetensors");
    if (!index || !single)
      rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    else if (file_exists(index))
      rc = open_index(st, path, index, err, err_len);
    else if (file_exists(single)) {
      rc = add_file_path(st, single, err, err_len);
      if (rc == MLXR_OK) rc = build_index(st, err, err_len);
    } else
      rc = open_all_in_dir(st, path, err, err_len);
    free(index);
    free(single);
  }
  if (rc) {
    mlxr_safetensors_close(st);
    return rc;
  }
  *out = st;
  return MLXR_OK;
}

int64_t mlxr_safetensors_n_tensors(const mlxr_safetensors *st) { return (int64_t)st->n_t; }

const mlxr_st_tensor *mlxr_safetensors_tensor_at(const mlxr_safetensors *st, int64_t i) {
  return (i >= 0 && (uint64_t)i < st->n_t) ? &st->t[i] : NULL;
}

const mlxr_st_tensor *mlxr_safetensors_find(const mlxr_safetensors *st, const char *name) {
  if (!name) return NULL;
  int64_t i = mlxr_fmt_index_find(&st->ix, name, strlen(name));
  return i < 0 ? NULL : &st->t[i];
}

const char *mlxr_safetensors_metadata(const mlxr_safetensors *st, const char *key) {
  if (!key) return NULL;
  for (size_t i = 0; i < st->n_meta; i++)
    if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].val;
  return NULL;
}
