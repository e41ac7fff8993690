/*
 * gguf_reader.c: GGUF v2/v3 reader (layout in gguf_internal.h).
 *
 * How it works: one pass over the buffer with a bounds-checked cursor. Every count read from the
 * file is compared with the bytes that remain BEFORE anything is allocated for it (a key/value
 * needs at least 13 bytes, a tensor info 32, a string 8, an array element its packed size), so a
 * hostile count fails at once instead of asking for terabytes. Strings are first recorded as
 * (pointer into the buffer, length); when the pass is done they are copied, NUL-terminated, into
 * one arena, and two hash tables (keys, tensor names) are built over the arena copies, which also
 * finds duplicates (keys and tensor names may not contain NUL bytes, so every one can be looked
 * up as a C string). Tensor dimensions, types, alignment and data ranges are checked with
 * overflow-safe arithmetic; tensor data is never copied.
 *
 * Ownership: the mlxr_gguf owns its arrays, the arena and (for mlxr_gguf_open) the mapping.
 * mlxr_gguf_open_memory borrows the caller's buffer. Immutable after open; any thread may read.
 */
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/formats/fmt_util.h"
#include "core/formats/gguf.h"
#include "core/formats/gguf_internal.h"

typedef struct gguf_str {
  const char *p; /* into the buffer while parsing, into the arena after */
  size_t len;    /* bytes, not counting the NUL the arena adds */
} gguf_str;

typedef struct gguf_kv {
  gguf_str key;
  mlxr_gguf_vtype type;
  union {
    uint64_t u; /* U8, U16, U32, U64, BOOL (0 or 1) */
    int64_t i;  /* I8, I16, I32, I64 (sign-extended) */
    double f;   /* F32, F64 */
  } num;
  gguf_str str;             /* STRING value */
  mlxr_gguf_vtype arr_type; /* ARRAY: element type */
  uint64_t arr_count;       /* ARRAY: number of elements */
  const uint8_t *arr_data;  /* ARRAY: first packed element, in the buffer */
  size_t arr_str_first;     /* ARRAY of STRING: index of element 0 in mlxr_gguf.astr */
  const uint8_t *raw;       /* the encoded value (after the u32 type), in the buffer */
  size_t raw_len;           /* its bytes */
} gguf_kv;

struct mlxr_gguf {
  const uint8_t *base; /* the file bytes [size] */
  size_t size;
  bool owns_map; /* base was mapped by mlxr_gguf_open */
  uint32_t version;
  size_t alignment;  /* general.alignment or 32 */
  size_t data_start; /* byte offset of the data section */
  int64_t n_kv;
  gguf_kv *kv; /* [n_kv] */
  int64_t n_tensors;
  mlxr_gguf_tensor *tensors; /* [n_tensors] */
  gguf_str *tname;           /* [n_tensors] tensor names with lengths */
  gguf_str *astr;            /* elements of all top-level string arrays [n_astr] */
  size_t n_astr, cap_astr;
  char *arena;              /* every string above, NUL-terminated */
  mlxr_fmt_index kv_ix;     /* key -> kv index */
  mlxr_fmt_index tensor_ix; /* name -> tensor index */
};

/* Bounds-checked reader over the buffer. */
typedef struct gguf_cur {
  const uint8_t *base;
  size_t size;
  size_t pos;
  char *err;
  size_t err_len;
} gguf_cur;

size_t mlxr_gguf_vtype_size(mlxr_gguf_vtype t) {
  switch (t) {
  case MLXR_GGUF_U8:
  case MLXR_GGUF_I8:
  case MLXR_GGUF_BOOL: return 1;
  case MLXR_GGUF_U16:
  case MLXR_GGUF_I16: return 2;
  case MLXR_GGUF_U32:
  case MLXR_GGUF_I32:
  case MLXR_GGUF_F32: return 4;
  case MLXR_GGUF_U64:
  case MLXR_GGUF_I64:
  case MLXR_GGUF_F64: return 8;
  default: return 0;
  }
}

static uint64_t le_load(const uint8_t *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static size_t cur_left(const gguf_cur *c) { return c->size - c->pos; }

static int cur_need(gguf_cur *c, uint64_t n, const char *what) {
  if (n > cur_left(c))
    return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                     "truncated GGUF: %s needs %llu bytes at offset %zu, only %zu left", what,
                     (unsigned long long)n, c->pos, cur_left(c));
  return MLXR_OK;
}

static int cur_u32(gguf_cur *c, const char *what, uint32_t *out) {
  int rc = cur_need(c, 4, what);
  if (rc) return rc;
  *out = (uint32_t)le_load(c->base + c->pos, 4);
  c->pos += 4;
  return MLXR_OK;
}

static int cur_u64(gguf_cur *c, const char *what, uint64_t *out) {
  int rc = cur_need(c, 8, what);
  if (rc) return rc;
  *out = le_load(c->base + c->pos, 8);
  c->pos += 8;
  return MLXR_OK;
}

static int cur_str(gguf_cur *c, const char *what, uint64_t max_len, gguf_str *out) {
  uint64_t len;
  int rc = cur_u64(c, what, &len);
  if (rc) return rc;
  if (len > max_len)
    return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                     "%s at offset %zu has length %llu, more than the limit %llu", what, c->pos - 8,
                     (unsigned long long)len, (unsigned long long)max_len);
  rc = cur_need(c, len, what);
  if (rc) return rc;
  out->p = (const char *)(c->base + c->pos);
  out->len = (size_t)len;
  c->pos += (size_t)len;
  return MLXR_OK;
}

static int astr_reserve(mlxr_gguf *g, uint64_t more, gguf_cur *c) {
  if (more <= g->cap_astr - g->n_astr) return MLXR_OK;
  /* more <= bytes left / 8 was checked by the caller, so this cannot overflow. */
  size_t want = g->n_astr + (size_t)more;
  size_t cap = g->cap_astr ? g->cap_astr * 2 : 64;
  if (cap < want) cap = want;
  gguf_str *p = realloc(g->astr, cap * sizeof(*p));
  if (!p)
    return mlxr_errf(c->err, c->err_len, MLXR_ERR_NOMEM, "out of memory for %zu strings", cap);
  g->astr = p;
  g->cap_astr = cap;
  return MLXR_OK;
}

/* Parse one value of type t at the cursor. kv is the key/value being filled at the top level,
 * NULL inside nested arrays (whose contents are validated and skipped, not indexed). */
static int parse_value(mlxr_gguf *g, gguf_cur *c, uint32_t t, int depth, gguf_kv *kv) {
  int rc;
  if (t >= MLXR_GGUF_VTYPE_COUNT)
    return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                     "unknown GGUF value type %u at offset %zu", t, c->pos);
  size_t es = mlxr_gguf_vtype_size((mlxr_gguf_vtype)t);
  if (es) {
    rc = cur_need(c, es, "scalar value");
    if (rc) return rc;
    if (kv) {
      uint64_t v = le_load(c->base + c->pos, es);
      switch ((mlxr_gguf_vtype)t) {
      case MLXR_GGUF_I8: kv->num.i = (int8_t)(uint8_t)v; break;
      case MLXR_GGUF_I16: kv->num.i = (int16_t)(uint16_t)v; break;
      case MLXR_GGUF_I32: kv->num.i = (int32_t)(uint32_t)v; break;
      case MLXR_GGUF_I64: kv->num.i = (int64_t)v; break;
      case MLXR_GGUF_F32: {
        uint32_t b = (uint32_t)v;
        float f;
        memcpy(&f, &b, 4);
        kv->num.f = f;
        break;
      }
      case MLXR_GGUF_F64: memcpy(&kv->num.f, &v, 8); break;
      case MLXR_GGUF_BOOL: kv->num.u = v != 0; break;
      default: kv->num.u = v; break;
      }
    }
    c->pos += es;
    return MLXR_OK;
  }
  if (t == MLXR_GGUF_STRING) {
    gguf_str s;
    rc = cur_str(c, "string value", UINT64_MAX, &s);
    if (rc) return rc;
    if (kv) kv->str = s;
    return MLXR_OK;
  }
  /* ARRAY */
  if (depth >= MLXR_GGUF_MAX_ARRAY_DEPTH)
    return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                     "arrays nested deeper than %d at offset %zu", MLXR_GGUF_MAX_ARRAY_DEPTH,
                     c->pos);
  uint32_t et;
  uint64_t count;
  if ((rc = cur_u32(c, "array element type", &et)) || (rc = cur_u64(c, "array length", &count)))
    return rc;
  if (et >= MLXR_GGUF_VTYPE_COUNT)
    return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                     "unknown GGUF array element type %u at offset %zu", et, c->pos - 12);
  size_t min_elem = mlxr_gguf_vtype_size((mlxr_gguf_vtype)et);
  if (et == MLXR_GGUF_STRING) min_elem = 8;
  if (et == MLXR_GGUF_ARRAY) min_elem = 12;
  if (count > cur_left(c) / min_elem)
    return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                     "array at offset %zu claims %llu elements, more than the %zu bytes left "
                     "can hold",
                     c->pos - 12, (unsigned long long)count, cur_left(c));
  if (kv) {
    kv->arr_type = (mlxr_gguf_vtype)et;
    kv->arr_count = count;
    kv->arr_data = c->base + c->pos;
  }
  if (et != MLXR_GGUF_STRING && et != MLXR_GGUF_ARRAY) {
    c->pos += (size_t)count * min_elem;
    return MLXR_OK;
  }
  if (et == MLXR_GGUF_STRING && kv) {
    if ((rc = astr_reserve(g, count, c))) return rc;
    kv->arr_str_first = g->n_astr;
  }
  for (uint64_t i = 0; i < count; i++) {
    if (et == MLXR_GGUF_STRING) {
      gguf_str s;
      if ((rc = cur_str(c, "string array element", UINT64_MAX, &s))) return rc;
      if (kv) g->astr[g->n_astr++] = s;
    } else {
      if ((rc = parse_value(g, c, MLXR_GGUF_ARRAY, depth + 1, NULL))) return rc;
    }
  }
  return MLXR_OK;
}

static int parse_kvs(mlxr_gguf *g, gguf_cur *c) {
  for (int64_t i = 0; i < g->n_kv; i++) {
    gguf_kv *kv = &g->kv[i];
    uint32_t t;
    int rc = cur_str(c, "key", MLXR_GGUF_MAX_KEY_LEN, &kv->key);
    if (rc) return rc;
    if (memchr(kv->key.p, 0, kv->key.len))
      return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT, "key at offset %zu contains a NUL byte",
                       c->pos - kv->key.len);
    if ((rc = cur_u32(c, "value type", &t))) return rc;
    if (t >= MLXR_GGUF_VTYPE_COUNT)
      return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT, "key '%.*s' has unknown value type %u",
                       (int)(kv->key.len > 80 ? 80 : kv->key.len), kv->key.p, t);
    kv->type = (mlxr_gguf_vtype)t;
    kv->raw = c->base + c->pos;
    if ((rc = parse_value(g, c, t, 0, kv))) return rc;
    kv->raw_len = (size_t)(c->base + c->pos - kv->raw);
  }
  return MLXR_OK;
}

/* general.alignment, found by a scan (the key index is built later). */
static int find_alignment(mlxr_gguf *g, char *err, size_t err_len) {
  static const char name[] = "general.alignment";
  g->alignment = MLXR_GGUF_DEFAULT_ALIGNMENT;
  for (int64_t i = 0; i < g->n_kv; i++) {
    const gguf_kv *kv = &g->kv[i];
    if (kv->key.len != sizeof(name) - 1 || memcmp(kv->key.p, name, sizeof(name) - 1) != 0) continue;
    if (kv->type != MLXR_GGUF_U32)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                       "general.alignment has value type %d, expected u32", (int)kv->type);
    uint64_t a = kv->num.u;
    if (a == 0 || (a & (a - 1)) != 0)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                       "general.alignment %llu is not a power of two", (unsigned long long)a);
    g->alignment = (size_t)a;
    return MLXR_OK;
  }
  return MLXR_OK;
}

static int parse_tensor_infos(mlxr_gguf *g, gguf_cur *c) {
  for (int64_t i = 0; i < g->n_tensors; i++) {
    mlxr_gguf_tensor *t = &g->tensors[i];
    gguf_str *name = &g->tname[i];
    uint32_t n_dims, type;
    uint64_t off;
    int rc = cur_str(c, "tensor name", MLXR_GGUF_MAX_NAME_LEN, name);
    if (rc) return rc;
    if (memchr(name->p, 0, name->len))
      return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                       "tensor name at offset %zu contains a NUL byte", c->pos - name->len);
    int nl = (int)name->len;
    if ((rc = cur_u32(c, "tensor n_dims", &n_dims))) return rc;
    if (n_dims < 1 || n_dims > MLXR_GGUF_MAX_DIMS)
      return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                       "tensor '%.*s' has %u dimensions (must be 1..%d)", nl, name->p, n_dims,
                       MLXR_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < MLXR_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
      uint64_t ne;
      if ((rc = cur_u64(c, "tensor dimension", &ne))) return rc;
      if (ne == 0 || ne > (uint64_t)INT64_MAX)
        return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                         "tensor '%.*s' dimension %u is %llu (must be 1..2^63-1)", nl, name->p, d,
                         (unsigned long long)ne);
      t->ne[d] = (int64_t)ne;
    }
    if ((rc = cur_u32(c, "tensor type", &type))) return rc;
    if ((rc = cur_u64(c, "tensor offset", &off))) return rc;
    if (!mlxr_dtype_is_known(type))
      return mlxr_errf(c->err, c->err_len, MLXR_ERR_UNSUPPORTED,
                       "tensor '%.*s' has unknown or unsupported type id %u", nl, name->p, type);
    t->type = (mlxr_dtype)type;
    t->offset = off;
    /* Elements must fit int64, the row must be whole blocks, the byte size must fit size_t. */
    uint64_t nel = 1;
    for (int d = 0; d < MLXR_GGUF_MAX_DIMS; d++) {
      if ((uint64_t)t->ne[d] > (uint64_t)INT64_MAX / nel)
        return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                         "tensor '%.*s' element count overflows", nl, name->p);
      nel *= (uint64_t)t->ne[d];
    }
    size_t row;
    if (t->ne[0] % mlxr_dtype_block_size(t->type) == 0 &&
        !mlxr_dtype_row_size(t->type, t->ne[0], &row))
      return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT, "tensor '%.*s' byte size overflows", nl,
                       name->p);
    if (!mlxr_dtype_row_size(t->type, t->ne[0], &row))
      return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT,
                       "tensor '%.*s': ne[0] = %lld is not a multiple of the %s block size %lld",
                       nl, name->p, (long long)t->ne[0], mlxr_dtype_name(t->type),
                       (long long)mlxr_dtype_block_size(t->type));
    uint64_t rows = nel / (uint64_t)t->ne[0];
    if (rows > SIZE_MAX / row)
      return mlxr_errf(c->err, c->err_len, MLXR_ERR_FORMAT, "tensor '%.*s' byte size overflows", nl,
                       name->p);
    t->nbytes = row * (size_t)rows;
  }
  return MLXR_OK;
}

/* Check every tensor's offset and range against the data section and set its data pointer. */
static int place_tensors(mlxr_gguf *g, size_t header_end, char *err, size_t err_len) {
  size_t a = g->alignment;
  if (header_end > SIZE_MAX - (a - 1))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "data section offset overflows");
  g->data_start = (header_end + a - 1) & ~(a - 1);
  if (g->data_start > g->size) {
    if (g->n_tensors > 0)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                       "data section would start at %zu, past the end of the file (%zu bytes)",
                       g->data_start, g->size);
    g->data_start = g->size;
  }
  size_t data_size = g->size - g->data_start;
  for (int64_t i = 0; i < g->n_tensors; i++) {
    mlxr_gguf_tensor *t = &g->tensors[i];
    int nl = (int)g->tname[i].len;
    if (t->offset % a != 0)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                       "tensor '%.*s' offset %llu is not a multiple of the alignment %zu", nl,
                       g->tname[i].p, (unsigned long long)t->offset, a);
    if (t->offset > data_size || t->nbytes > data_size - t->offset)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                       "tensor '%.*s' data [%llu, +%zu) lies outside the %zu-byte data section", nl,
                       g->tname[i].p, (unsigned long long)t->offset, t->nbytes, data_size);
    t->data = g->base + g->data_start + t->offset;
  }
  return MLXR_OK;
}

static bool add_len(size_t *total, size_t len) {
  if (len > SIZE_MAX - 1 - *total) return false;
  *total += len + 1;
  return true;
}

static void arena_put(char **at, gguf_str *s) {
  memcpy(*at, s->p, s->len);
  (*at)[s->len] = '\0';
  s->p = *at;
  *at += s->len + 1;
}

/* Copy every string into the arena and build the two name indexes (finding duplicates). */
static int build_arena_and_indexes(mlxr_gguf *g, char *err, size_t err_len) {
  size_t total = 0;
  bool ok = true;
  for (int64_t i = 0; i < g->n_kv; i++) {
    ok = ok && add_len(&total, g->kv[i].key.len);
    if (g->kv[i].type == MLXR_GGUF_STRING) ok = ok && add_len(&total, g->kv[i].str.len);
  }
  for (size_t i = 0; i < g->n_astr; i++) ok = ok && add_len(&total, g->astr[i].len);
  for (int64_t i = 0; i < g->n_tensors; i++) ok = ok && add_len(&total, g->tname[i].len);
  if (!ok) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "string sizes overflow");
  g->arena = malloc(total ? total : 1);
  if (!g->arena)
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory for %zu bytes of strings", total);
  char *at = g->arena;
  for (int64_t i = 0; i < g->n_kv; i++) {
    arena_put(&at, &g->kv[i].key);
    if (g->kv[i].type == MLXR_GGUF_STRING) arena_put(&at, &g->kv[i].str);
  }
  for (size_t i = 0; i < g->n_astr; i++) arena_put(&at, &g->astr[i]);
  for (int64_t i = 0; i < g->n_tensors; i++) {
    arena_put(&at, &g->tname[i]);
    g->tensors[i].name = g->tname[i].p;
  }
  if (mlxr_fmt_index_init(&g->kv_ix, (size_t)g->n_kv) ||
      mlxr_fmt_index_init(&g->tensor_ix, (size_t)g->n_tensors))
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory for the name index");
  for (int64_t i = 0; i < g->n_kv; i++) {
    const gguf_str *k = &g->kv[i].key;
    if (!mlxr_fmt_index_insert(&g->kv_ix, k->p, k->len, i))
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "duplicate key '%.*s'",
                       (int)(k->len > 80 ? 80 : k->len), k->p);
  }
  for (int64_t i = 0; i < g->n_tensors; i++) {
    const gguf_str *n = &g->tname[i];
    if (!mlxr_fmt_index_insert(&g->tensor_ix, n->p, n->len, i))
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "duplicate tensor name '%.*s'", (int)n->len,
                       n->p);
  }
  return MLXR_OK;
}

static int gguf_parse(mlxr_gguf *g, char *err, size_t err_len) {
  gguf_cur c = {g->base, g->size, 0, err, err_len};
  uint32_t version;
  uint64_t n_tensors, n_kv;
  int rc;
  if (g->size < 4)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "not a GGUF file (%zu bytes)", g->size);
  if ((uint32_t)le_load(g->base, 4) != MLXR_GGUF_MAGIC)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "not a GGUF file (bad magic)");
  c.pos = 4;
  if ((rc = cur_u32(&c, "version", &version))) return rc;
  if (version == 1)
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "unsupported GGUF version 1 (convert the file to v3)");
  if ((version & 0xffffu) == 0 && version != 0)
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
  if (version != 2 && version != 3)
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "unsupported GGUF version %u", version);
  g->version = version;
  if ((rc = cur_u64(&c, "tensor count", &n_tensors)) ||
      (rc = cur_u64(&c, "key/value count", &n_kv)))
    return rc;
  /* Cheapest encodings: a key/value is 8 (key length) + 4 (type) + 1 (u8 value) bytes; a tensor
   * info is 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes. */
  if (n_kv > cur_left(&c) / 13)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "GGUF claims %llu key/values but only %zu bytes follow the header",
                     (unsigned long long)n_kv, cur_left(&c));
  if (n_tensors > cur_left(&c) / 32)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "GGUF claims %llu tensors but only %zu bytes follow the header",
                     (unsigned long long)n_tensors, cur_left(&c));
  g->n_kv = (int64_t)n_kv;
  g->kv = calloc(n_kv ? n_kv : 1, sizeof(*g->kv));
  if (!g->kv) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  if ((rc = parse_kvs(g, &c))) return rc;
  if ((rc = find_alignment(g, err, err_len))) return rc;
  if (n_tensors > cur_left(&c) / 32)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "GGUF claims %llu tensors but only %zu bytes follow the metadata",
                     (unsigned long long)n_tensors, cur_left(&c));
  g->n_tensors = (int64_t)n_tensors;
  g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(*g->tensors));
  g->tname = calloc(n_tensors ? n_tensors : 1, sizeof(*g->tname));
  if (!g->tensors || !g->tname) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  if ((rc = parse_tensor_infos(g, &c))) return rc;
  if ((rc = place_tensors(g, c.pos, err, err_len))) return rc;
  return build_arena_and_indexes(g, err, err_len);
}

void mlxr_gguf_close(mlxr_gguf *g) {
  if (!g) return;
  if (g->owns_map) mlxr_fmt_unmap(g->base, g->size);
  mlxr_fmt_index_free(&g->kv_ix);
  mlxr_fmt_index_free(&g->tensor_ix);
  free(g->kv);
  free(g->tensors);
  free(g->tname);
  free(g->astr);
  free(g->arena);
  free(g);
}

static int gguf_open_impl(const uint8_t *base, size_t size, bool owns, mlxr_gguf **out, char *err,
                          size_t err_len) {
  mlxr_gguf *g = calloc(1, sizeof(*g));
  if (!g) {
    if (owns) mlxr_fmt_unmap(base, size);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  g->base = base;
  g->size = size;
  g->owns_map = owns;
  int rc = gguf_parse(g, err, err_len);
  if (rc) {
    mlxr_gguf_close(g);
    return rc;
  }
  *out = g;
  return MLXR_OK;
}

int mlxr_gguf_open_memory(const void *data, size_t size, mlxr_gguf **out, char *err,
                          size_t err_len) {
  if (!out) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "mlxr_gguf_open_memory: out is NULL");
  *out = NULL;
  if (!data && size)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "mlxr_gguf_open_memory: data is NULL");
  return gguf_open_impl(data, size, false, out, err, err_len);
}

int mlxr_gguf_open(const char *path, mlxr_gguf **out, char *err, size_t err_len) {
  if (!out || !path)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "mlxr_gguf_open: NULL argument");
  *out = NULL;
  const uint8_t *base;
  size_t size;
  int rc = mlxr_fmt_map_file(path, &base, &size, err, err_len);
  if (rc) return rc;
  rc = gguf_open_impl(base, size, true, out, err, err_len);
  if (rc && err && err_len) {
    /* Prefix the path so a message from a model directory says which file it was. */
    size_t n = strlen(err);
    size_t pl = strlen(path);
    if (pl + 2 + n + 1 <= err_len) {
      memmove(err + pl + 2, err, n + 1);
      memcpy(err, path, pl);
      err[pl] = ':';
      err[pl + 1] = ' ';
    }
  }
  return rc;
}

uint32_t mlxr_gguf_version(const mlxr_gguf *g) { return g->version; }
size_t mlxr_gguf_alignment(const mlxr_gguf *g) { return g->alignment; }
int64_t mlxr_gguf_n_kv(const mlxr_gguf *g) { return g->n_kv; }

const char *mlxr_gguf_kv_key(const mlxr_gguf *g, int64_t i) {
  return (i >= 0 && i < g->n_kv) ? g->kv[i].key.p : NULL;
}

mlxr_gguf_vtype mlxr_gguf_kv_type(const mlxr_gguf *g, int64_t i) {
  return (i >= 0 && i < g->n_kv) ? g->kv[i].type : MLXR_GGUF_VTYPE_COUNT;
}

int64_t mlxr_gguf_find_key(const mlxr_gguf *g, const char *key) {
  if (!key) return -1;
  return mlxr_fmt_index_find(&g->kv_ix, key, strlen(key));
}

bool mlxr_gguf_kv_raw(const mlxr_gguf *g, int64_t i, const uint8_t **data, size_t *len) {
  if (i < 0 || i >= g->n_kv) return false;
  *data = g->kv[i].raw;
  *len = g->kv[i].raw_len;
  return true;
}

static const gguf_kv *kv_get(const mlxr_gguf *g, const char *key) {
  int64_t i = mlxr_gguf_find_key(g, key);
  return i < 0 ? NULL : &g->kv[i];
}

static bool is_unsigned_int(mlxr_gguf_vtype t) {
  return t == MLXR_GGUF_U8 || t == MLXR_GGUF_U16 || t == MLXR_GGUF_U32 || t == MLXR_GGUF_U64;
}

static bool is_signed_int(mlxr_gguf_vtype t) {
  return t == MLXR_GGUF_I8 || t == MLXR_GGUF_I16 || t == MLXR_GGUF_I32 || t == MLXR_GGUF_I64;
}

bool mlxr_gguf_get_int(const mlxr_gguf *g, const char *key, int64_t *out) {
  const gguf_kv *kv = kv_get(g, key);
  if (!kv) return false;
  if (is_signed_int(kv->type)) {
    *out = kv->num.i;
    return true;
  }
  if (is_unsigned_int(kv->type) || kv->type == MLXR_GGUF_BOOL) {
    if (kv->num.u > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)kv->num.u;
    return true;
  }
  return false;
}

bool mlxr_gguf_get_uint(const mlxr_gguf *g, const char *key, uint64_t *out) {
  const gguf_kv *kv = kv_get(g, key);
  if (!kv) return false;
  if (is_unsigned_int(kv->type)) {
    *out = kv->num.u;
    return true;
  }
  if (is_signed_int(kv->type) && kv->num.i >= 0) {
    *out = (uint64_t)kv->num.i;
    return true;
  }
  return false;
}

bool mlxr_gguf_get_float(const mlxr_gguf *g, const char *key, double *out) {
  const gguf_kv *kv = kv_get(g, key);
  if (!kv) return false;
  if (kv->type == MLXR_GGUF_F32 || kv->type == MLXR_GGUF_F64)
    *out = kv->num.f;
  else if (is_signed_int(kv->type))
    *out = (double)kv->num.i;
  else if (is_unsigned_int(kv->type))
    *out = (double)kv->num.u;
  else
    return false;
  return true;
}

bool mlxr_gguf_get_bool(const mlxr_gguf *g, const char *key, bool *out) {
  const gguf_kv *kv = kv_get(g, key);
  if (!kv || kv->type != MLXR_GGUF_BOOL) return false;
  *out = kv->num.u != 0;
  return true;
}

const char *mlxr_gguf_get_str(const mlxr_gguf *g, const char *key, size_t *len) {
  const gguf_kv *kv = kv_get(g, key);
  if (!kv || kv->type != MLXR_GGUF_STRING) return NULL;
  if (len) *len = kv->str.len;
  return kv->str.p;
}

bool mlxr_gguf_get_arr(const mlxr_gguf *g, const char *key, mlxr_gguf_vtype *elem_type,
                       uint64_t *count, const void **data) {
  const gguf_kv *kv = kv_get(g, key);
  if (!kv || kv->type != MLXR_GGUF_ARRAY) return false;
  if (elem_type) *elem_type = kv->arr_type;
  if (count) *count = kv->arr_count;
  if (data) *data = kv->arr_data;
  return true;
}

const char *mlxr_gguf_get_arr_str(const mlxr_gguf *g, const char *key, uint64_t i, size_t *len) {
  const gguf_kv *kv = kv_get(g, key);
  if (!kv || kv->type != MLXR_GGUF_ARRAY || kv->arr_type != MLXR_GGUF_STRING || i >= kv->arr_count)
    return NULL;
  const gguf_str *s = &g->astr[kv->arr_str_first + (size_t)i];
  if (len) *len = s->len;
  return s->p;
}

int64_t mlxr_gguf_n_tensors(const mlxr_gguf *g) { return g->n_tensors; }

const mlxr_gguf_tensor *mlxr_gguf_tensor_at(const mlxr_gguf *g, int64_t i) {
  return (i >= 0 && i < g->n_tensors) ? &g->tensors[i] : NULL;
}

const mlxr_gguf_tensor *mlxr_gguf_find_tensor(const mlxr_gguf *g, const char *name) {
  if (!name) return NULL;
  int64_t i = mlxr_fmt_index_find(&g->tensor_ix, name, strlen(name));
  return i < 0 ? NULL : &g->tensors[i];
}
