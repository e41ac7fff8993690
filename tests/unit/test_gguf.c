/*
 * test_gguf.c: GGUF reader and writer.
 *
 * 1. Spec layout: a GGUF v3 (and v2) file is assembled byte by byte here from the layout in
 *    ggml docs/gguf.md (magic, version, counts, string/array/nested-array/u32 key/values, tensor
 *    infos, alignment padding, data) and opened with mlxr_gguf_open_memory; every field must read
 *    back as assembled. The writer is then given the same content and its file must equal the
 *    assembled bytes exactly, so the writer is checked against the spec, not against the reader.
 * 2. Round trip: every one of the 13 value types (scalars and arrays of each numeric type, string
 *    arrays with empty strings and embedded NULs) and tensors of several dtypes and ranks are
 *    written to a file and read back with mlxr_gguf_open; values, shapes, byte sizes (computed
 *    here from the block table in the spec), offsets and tensor bytes are compared.
 * 3. Errors: hostile headers give a negative status and a message; the writer rejects wrong
 *    tensor sizes, early finish, duplicates, and leaves no file behind when abandoned.
 * With arguments it serves tests/golden/test_formats_python.py: "--dump FILE" prints what the
 * reader sees as JSON, "--write-sample FILE" writes a fixed sample with the writer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common/status.h"
#include "core/formats/gguf.h"

static int g_failures; /* test-local failure count (the test binary's own state) */

static void check_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  g_failures++;
}
#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if (!(c)) check_fail(__FILE__, __LINE__, #c);                                                  \
  } while (0)

/* ---- a byte builder for hand-assembled files ---- */
typedef struct bb {
  uint8_t *p;
  size_t n, cap;
} bb;

static void bb_bytes(bb *b, const void *d, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->n + n) cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) {
      fprintf(stderr, "out of memory\n");
      exit(2);
    }
    b->cap = cap;
  }
  if (n) memcpy(b->p + b->n, d, n);
  b->n += n;
}
static void bb_le(bb *b, uint64_t v, int n) {
  uint8_t t[8];
  for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
  bb_bytes(b, t, (size_t)n);
}
static void bb_str(bb *b, const char *s) {
  bb_le(b, strlen(s), 8);
  bb_bytes(b, s, strlen(s));
}
static void bb_pad(bb *b, size_t a) {
  while (b->n % a) bb_le(b, 0, 1);
}

/* Bytes per block / elements per block, from the GGUF spec's type table (not from dtype.c). */
static size_t spec_nbytes(mlxr_dtype t, const int64_t *ne, int nd) {
  size_t bs = 1, ts = 0;
  switch (t) {
  case MLXR_DTYPE_F32: ts = 4; break;
  case MLXR_DTYPE_F16: ts = 2; break;
  case MLXR_DTYPE_BF16: ts = 2; break;
  case MLXR_DTYPE_I8: ts = 1; break;
  case MLXR_DTYPE_I32: ts = 4; break;
  case MLXR_DTYPE_F64: ts = 8; break;
  case MLXR_DTYPE_Q4_0: bs = 32, ts = 18; break;
  case MLXR_DTYPE_Q8_0: bs = 32, ts = 34; break;
  case MLXR_DTYPE_Q4_K: bs = 256, ts = 144; break;
  case MLXR_DTYPE_Q6_K: bs = 256, ts = 210; break;
  default: return 0;
  }
  size_t n = (size_t)ne[0] / bs * ts;
  for (int d = 1; d < nd; d++) n *= (size_t)ne[d];
  return n;
}

static uint8_t *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc((size_t)sz + 1);
  if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
    free(p);
    p = NULL;
  }
  fclose(f);
  *n = (size_t)sz;
  return p;
}

static uint32_t rng_next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return (uint32_t)(*s >> 11);
}

/* ---- 1. spec layout ---- */

/* Assemble: 4 KVs (string, string array, nested i32 arrays, general.alignment = 16), two tensors
 * "tok_embd" f32 [4, 2] and "out.weight" f16 [5], each followed by zero padding to 16. */
static void assemble(bb *b, uint32_t version, const float *t0, const uint16_t *t1) {
  bb_bytes(b, "GGUF", 4);
  bb_le(b, version, 4);
  bb_le(b, 2, 8); /* tensors */
  bb_le(b, 4, 8); /* kvs */
  bb_str(b, "general.architecture");
  bb_le(b, 8, 4);
  bb_str(b, "llama");
  bb_str(b, "tokenizer.ggml.tokens");
  bb_le(b, 9, 4);
  bb_le(b, 8, 4);
  bb_le(b, 3, 8);
  bb_str(b, "a");
  bb_str(b, "bc");
  bb_str(b, "");
  bb_str(b, "test.nested");
  bb_le(b, 9, 4);
  bb_le(b, 9, 4); /* array of arrays */
  bb_le(b, 2, 8);
  bb_le(b, 5, 4); /* [1, 2] as i32 */
  bb_le(b, 2, 8);
  bb_le(b, 1, 4);
  bb_le(b, 2, 4);
  bb_le(b, 5, 4); /* [-3] */
  bb_le(b, 1, 8);
  bb_le(b, (uint32_t)-3, 4);
  bb_str(b, "general.alignment");
  bb_le(b, 4, 4);
  bb_le(b, 16, 4);
  bb_str(b, "tok_embd");
  bb_le(b, 2, 4);
  bb_le(b, 4, 8);
  bb_le(b, 2, 8);
  bb_le(b, 0, 4); /* F32 */
  bb_le(b, 0, 8);
  bb_str(b, "out.weight");
  bb_le(b, 1, 4);
  bb_le(b, 5, 8);
  bb_le(b, 1, 4);  /* F16 */
  bb_le(b, 32, 8); /* 32 bytes of tok_embd, already a multiple of 16 */
  bb_pad(b, 16);
  bb_bytes(b, t0, 32);
  bb_pad(b, 16);
  bb_bytes(b, t1, 10);
  bb_pad(b, 16);
}

static void test_spec_layout(const char *dir) {
  float t0[8];
  uint16_t t1[5];
  for (int i = 0; i < 8; i++) t0[i] = (float)i * 0.25f - 1.0f;
  for (int i = 0; i < 5; i++) t1[i] = (uint16_t)(0x3c00 + i);
  for (uint32_t version = 2; version <= 3; version++) {
    bb b = {0};
    assemble(&b, version, t0, t1);
    /* Copy to an exactly-sized buffer so ASan sees any over-read. */
    uint8_t *buf = malloc(b.n);
    memcpy(buf, b.p, b.n);
    mlxr_gguf *g = NULL;
    char err[256] = "";
    int rc = mlxr_gguf_open_memory(buf, b.n, &g, err, sizeof(err));
    CHECK(rc == 0);
    if (rc) {
      fprintf(stderr, "open_memory: %s\n", err);
      free(buf);
      free(b.p);
      continue;
    }
    CHECK(mlxr_gguf_version(g) == version);
    CHECK(mlxr_gguf_alignment(g) == 16);
    CHECK(mlxr_gguf_n_kv(g) == 4);
    CHECK(strcmp(mlxr_gguf_kv_key(g, 0), "general.architecture") == 0);
    CHECK(mlxr_gguf_kv_type(g, 1) == MLXR_GGUF_ARRAY);
    CHECK(mlxr_gguf_kv_key(g, 4) == NULL);
    CHECK(mlxr_gguf_find_key(g, "general.alignment") == 3);
    CHECK(mlxr_gguf_find_key(g, "general.alignmen") == -1);
    size_t len = 0;
    const char *arch = mlxr_gguf_get_str(g, "general.architecture", &len);
    CHECK(arch && len == 5 && strcmp(arch, "llama") == 0);
    mlxr_gguf_vtype et;
    uint64_t cnt;
    const void *data;
    CHECK(mlxr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &cnt, &data));
    CHECK(et == MLXR_GGUF_STRING && cnt == 3);
    const char *s = mlxr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 1, &len);
    CHECK(s && len == 2 && strcmp(s, "bc") == 0);
    s = mlxr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 2, &len);
    CHECK(s && len == 0 && s[0] == '\0');
    CHECK(mlxr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 3, &len) == NULL);
    CHECK(mlxr_gguf_get_arr(g, "test.nested", &et, &cnt, &data));
    CHECK(et == MLXR_GGUF_ARRAY && cnt == 2);
    uint64_t al = 0;
    CHECK(mlxr_gguf_get_uint(g, "general.alignment", &al) && al == 16);
    CHECK(mlxr_gguf_n_tensors(g) == 2);
    const mlxr_gguf_tensor *a = mlxr_gguf_find_tensor(g, "tok_embd");
    const mlxr_gguf_tensor *o = mlxr_gguf_find_tensor(g, "out.weight");
    CHECK(a && o && mlxr_gguf_tensor_at(g, 0) == a && mlxr_gguf_tensor_at(g, 1) == o);
    CHECK(mlxr_gguf_find_tensor(g, "tok_emb") == NULL);
    if (a && o) {
      CHECK(a->type == MLXR_DTYPE_F32 && a->n_dims == 2 && a->ne[0] == 4 && a->ne[1] == 2 &&
            a->ne[2] == 1 && a->ne[3] == 1 && a->nbytes == 32 && a->offset == 0);
      CHECK(o->type == MLXR_DTYPE_F16 && o->n_dims == 1 && o->ne[0] == 5 && o->nbytes == 10 &&
            o->offset == 32);
      CHECK(memcmp(a->data, t0, 32) == 0 && memcmp(o->data, t1, 10) == 0);
      CHECK((const uint8_t *)o->data + 10 + 6 == buf + b.n);
    }
    /* The writer, given the same content, must produce exactly these bytes (it writes v3). */
    if (version == 3) {
      char path[512];
      snprintf(path, sizeof(path), "%s/spec.gguf", dir);
      mlxr_gguf_writer *w = mlxr_gguf_writer_new();
      CHECK(w && mlxr_gguf_writer_copy_kv(w, g) == 0);
      int64_t ne0[] = {4, 2}, ne1[] = {5};
      CHECK(mlxr_gguf_add_tensor(w, "tok_embd", MLXR_DTYPE_F32, 2, ne0) == 0);
      CHECK(mlxr_gguf_add_tensor(w, "out.weight", MLXR_DTYPE_F16, 1, ne1) == 0);
      CHECK(mlxr_gguf_writer_begin(w, path, err, sizeof(err)) == 0);
      CHECK(mlxr_gguf_writer_write_tensor(w, t0, 32, err, sizeof(err)) == 0);
      CHECK(mlxr_gguf_writer_write_tensor(w, t1, 10, err, sizeof(err)) == 0);
      CHECK(mlxr_gguf_writer_finish(w, err, sizeof(err)) == 0);
      mlxr_gguf_writer_free(w);
      size_t n = 0;
      uint8_t *fb = read_file(path, &n);
      CHECK(fb && n == b.n && memcmp(fb, b.p, n) == 0);
      free(fb);
    }
    mlxr_gguf_close(g);
    free(buf);
    free(b.p);
  }
}

/* ---- 2. round trip with every value type ---- */

typedef struct rt_tensor {
  const char *name;
  mlxr_dtype type;
  int nd;
  int64_t ne[4];
} rt_tensor;

static void test_round_trip(const char *dir, uint32_t alignment) {
  char path[512], err[256] = "";
  snprintf(path, sizeof(path), "%s/rt_%u.gguf", dir, alignment);
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  CHECK(w != NULL);
  if (!w) return;
  uint8_t u8 = 200;
  int8_t i8 = -100;
  uint16_t u16 = 60000;
  int16_t i16 = -30000;
  int64_t i64 = -(INT64_C(1) << 62) - 3;
  double f64 = -0.1;
  CHECK(mlxr_gguf_set_scalar(w, "t.u8", MLXR_GGUF_U8, &u8) == 0);
  CHECK(mlxr_gguf_set_scalar(w, "t.i8", MLXR_GGUF_I8, &i8) == 0);
  CHECK(mlxr_gguf_set_scalar(w, "t.u16", MLXR_GGUF_U16, &u16) == 0);
  CHECK(mlxr_gguf_set_scalar(w, "t.i16", MLXR_GGUF_I16, &i16) == 0);
  CHECK(mlxr_gguf_set_u32(w, "t.u32", 4000000000u) == 0);
  CHECK(mlxr_gguf_set_i32(w, "t.i32", -2000000000) == 0);
  CHECK(mlxr_gguf_set_f32(w, "t.f32", 1.5f) == 0);
  CHECK(mlxr_gguf_set_bool(w, "t.bool", true) == 0);
  CHECK(mlxr_gguf_set_str(w, "t.str", "first value") == 0);
  CHECK(mlxr_gguf_set_str(w, "t.str", "héllo") == 0); /* replaces */
  CHECK(mlxr_gguf_set_str_n(w, "t.strn", "a\0b", 3) == 0);
  CHECK(mlxr_gguf_set_u64(w, "t.u64", (UINT64_C(1) << 63) + 5) == 0);
  CHECK(mlxr_gguf_set_scalar(w, "t.i64", MLXR_GGUF_I64, &i64) == 0);
  CHECK(mlxr_gguf_set_scalar(w, "t.f64", MLXR_GGUF_F64, &f64) == 0);
  CHECK(mlxr_gguf_set_scalar(w, "t.bad", MLXR_GGUF_STRING, "x") < 0);
  if (alignment != 32) CHECK(mlxr_gguf_set_u32(w, "general.alignment", alignment) == 0);
  /* Arrays of each numeric type: element i = (i * 37 + type) bytes pattern. */
  uint8_t arrsrc[MLXR_GGUF_VTYPE_COUNT][5 * 8];
  static const mlxr_gguf_vtype numeric[] = {
      MLXR_GGUF_U8,  MLXR_GGUF_I8,  MLXR_GGUF_U16, MLXR_GGUF_I16, MLXR_GGUF_U32, MLXR_GGUF_I32,
      MLXR_GGUF_F32, MLXR_GGUF_U64, MLXR_GGUF_I64, MLXR_GGUF_F64, MLXR_GGUF_BOOL};
  static const size_t esize[MLXR_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  for (size_t k = 0; k < sizeof(numeric) / sizeof(numeric[0]); k++) {
    mlxr_gguf_vtype t = numeric[k];
    for (size_t j = 0; j < sizeof(arrsrc[t]); j++) arrsrc[t][j] = (uint8_t)(j * 37 + t);
    if (t == MLXR_GGUF_BOOL)
      for (size_t j = 0; j < 5; j++) arrsrc[t][j] = (uint8_t)(j % 2);
    char key[32];
    snprintf(key, sizeof(key), "arr.%d", (int)t);
    CHECK(mlxr_gguf_set_arr(w, key, t, arrsrc[t], 5) == 0);
  }
  CHECK(mlxr_gguf_set_arr(w, "arr.empty", MLXR_GGUF_F32, NULL, 0) == 0);
  CHECK(mlxr_gguf_set_arr(w, "arr.bad", MLXR_GGUF_STRING, arrsrc[0], 1) < 0);
  const char *strs[] = {"<s>", "", "x\0y", "\xe2\x96\x81the"};
  size_t lens[] = {3, 0, 3, 6};
  CHECK(mlxr_gguf_set_arr_str(w, "arr.str", strs, lens, 4) == 0);
  const char *strs2[] = {"one", "two"};
  CHECK(mlxr_gguf_set_arr_str(w, "arr.str2", strs2, NULL, 2) == 0);

  rt_tensor ts[] = {
      {"f32.a", MLXR_DTYPE_F32, 2, {5, 3, 1, 1}},
      {"f16.b", MLXR_DTYPE_F16, 1, {7, 1, 1, 1}},
      {"q4_0.c", MLXR_DTYPE_Q4_0, 2, {64, 2, 1, 1}},
      {"q8_0.d", MLXR_DTYPE_Q8_0, 1, {32, 1, 1, 1}},
      {"i32.e", MLXR_DTYPE_I32, 4, {3, 2, 2, 2}},
      {"bf16.f", MLXR_DTYPE_BF16, 3, {1, 1, 3, 1}},
      {"q4_K.g", MLXR_DTYPE_Q4_K, 2, {256, 3, 1, 1}},
      {"q6_K.h", MLXR_DTYPE_Q6_K, 1, {512, 1, 1, 1}},
      {"i8.i", MLXR_DTYPE_I8, 1, {1, 1, 1, 1}},
      {"f64.j", MLXR_DTYPE_F64, 2, {3, 3, 1, 1}},
  };
  enum { NT = sizeof(ts) / sizeof(ts[0]) };
  uint8_t *tdata[NT];
  uint64_t seed = 0x9e3779b97f4a7c15ull ^ alignment;
  for (int i = 0; i < NT; i++) {
    CHECK(mlxr_gguf_add_tensor(w, ts[i].name, ts[i].type, ts[i].nd, ts[i].ne) == 0);
    size_t n = spec_nbytes(ts[i].type, ts[i].ne, ts[i].nd);
    tdata[i] = malloc(n);
    for (size_t j = 0; j < n; j++) tdata[i][j] = (uint8_t)rng_next(&seed);
  }
  /* Writer-side rejections. */
  int64_t bad_q4[] = {16, 2};
  int64_t zero[] = {0};
  CHECK(mlxr_gguf_add_tensor(w, "f32.a", MLXR_DTYPE_F32, 1, zero + 0) < 0); /* duplicate */
  CHECK(mlxr_gguf_add_tensor(w, "bad.q4", MLXR_DTYPE_Q4_0, 2, bad_q4) < 0);
  CHECK(mlxr_gguf_add_tensor(w, "bad.zero", MLXR_DTYPE_F32, 1, zero) < 0);
  CHECK(mlxr_gguf_add_tensor(w, "bad.nd", MLXR_DTYPE_F32, 5, ts[4].ne) < 0);
  CHECK(mlxr_gguf_add_tensor(w, "bad.type", (mlxr_dtype)4, 1, ts[1].ne) < 0);

  CHECK(mlxr_gguf_writer_begin(w, path, err, sizeof(err)) == 0);
  CHECK(mlxr_gguf_set_u32(w, "late", 1) < 0); /* no changes while writing */
  size_t n0 = spec_nbytes(ts[0].type, ts[0].ne, ts[0].nd);
  CHECK(mlxr_gguf_writer_write_tensor(w, tdata[0], n0 + 1, err, sizeof(err)) < 0 && err[0]);
  for (int i = 0; i < NT; i++) {
    if (i == NT - 1) CHECK(mlxr_gguf_writer_finish(w, err, sizeof(err)) < 0 && err[0]);
    CHECK(mlxr_gguf_writer_write_tensor(w, tdata[i], spec_nbytes(ts[i].type, ts[i].ne, ts[i].nd),
                                        err, sizeof(err)) == 0);
  }
  CHECK(mlxr_gguf_writer_write_tensor(w, tdata[0], n0, err, sizeof(err)) < 0);
  CHECK(mlxr_gguf_writer_finish(w, err, sizeof(err)) == 0);
  mlxr_gguf_writer_free(w);
  char tmp[600];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  CHECK(access(tmp, F_OK) != 0);

  mlxr_gguf *g = NULL;
  int rc = mlxr_gguf_open(path, &g, err, sizeof(err));
  CHECK(rc == 0);
  if (rc) {
    fprintf(stderr, "open: %s\n", err);
  } else {
    CHECK(mlxr_gguf_version(g) == 3);
    CHECK(mlxr_gguf_alignment(g) == alignment);
    int64_t iv;
    uint64_t uv;
    double dv;
    bool bv;
    size_t len;
    CHECK(mlxr_gguf_get_int(g, "t.u8", &iv) && iv == 200);
    CHECK(mlxr_gguf_get_int(g, "t.i8", &iv) && iv == -100);
    CHECK(mlxr_gguf_get_int(g, "t.u16", &iv) && iv == 60000);
    CHECK(mlxr_gguf_get_int(g, "t.i16", &iv) && iv == -30000);
    CHECK(mlxr_gguf_get_int(g, "t.u32", &iv) && iv == 4000000000);
    CHECK(mlxr_gguf_get_int(g, "t.i32", &iv) && iv == -2000000000);
    CHECK(mlxr_gguf_get_int(g, "t.i64", &iv) && iv == i64);
    CHECK(!mlxr_gguf_get_int(g, "t.u64", &iv)); /* does not fit int64 */
    CHECK(mlxr_gguf_get_uint(g, "t.u64", &uv) && uv == (UINT64_C(1) << 63) + 5);
    CHECK(!mlxr_gguf_get_uint(g, "t.i8", &uv));
    CHECK(mlxr_gguf_get_uint(g, "t.u16", &uv) && uv == 60000);
    CHECK(mlxr_gguf_get_float(g, "t.f32", &dv) && dv == 1.5);
    CHECK(mlxr_gguf_get_float(g, "t.f64", &dv) && dv == -0.1);
    CHECK(mlxr_gguf_get_float(g, "t.i16", &dv) && dv == -30000.0);
    CHECK(!mlxr_gguf_get_float(g, "t.str", &dv));
    CHECK(mlxr_gguf_get_bool(g, "t.bool", &bv) && bv);
    CHECK(mlxr_gguf_get_int(g, "t.bool", &iv) && iv == 1);
    CHECK(!mlxr_gguf_get_bool(g, "t.u8", &bv));
    CHECK(!mlxr_gguf_get_int(g, "t.f32", &iv));
    CHECK(!mlxr_gguf_get_int(g, "absent", &iv));
    const char *s = mlxr_gguf_get_str(g, "t.str", &len);
    CHECK(s && len == 6 && strcmp(s, "héllo") == 0);
    s = mlxr_gguf_get_str(g, "t.strn", &len);
    CHECK(s && len == 3 && memcmp(s, "a\0b", 4) == 0);
    CHECK(mlxr_gguf_get_str(g, "t.u8", &len) == NULL);
    /* Key types as written. */
    static const struct {
      const char *k;
      mlxr_gguf_vtype t;
    } kt[] = {{"t.u8", MLXR_GGUF_U8},       {"t.i8", MLXR_GGUF_I8},     {"t.u16", MLXR_GGUF_U16},
              {"t.i16", MLXR_GGUF_I16},     {"t.u32", MLXR_GGUF_U32},   {"t.i32", MLXR_GGUF_I32},
              {"t.f32", MLXR_GGUF_F32},     {"t.bool", MLXR_GGUF_BOOL}, {"t.str", MLXR_GGUF_STRING},
              {"arr.str", MLXR_GGUF_ARRAY}, {"t.u64", MLXR_GGUF_U64},   {"t.i64", MLXR_GGUF_I64},
              {"t.f64", MLXR_GGUF_F64}};
    for (size_t k = 0; k < sizeof(kt) / sizeof(kt[0]); k++) {
      int64_t i = mlxr_gguf_find_key(g, kt[k].k);
      CHECK(i >= 0 && mlxr_gguf_kv_type(g, i) == kt[k].t &&
            strcmp(mlxr_gguf_kv_key(g, i), kt[k].k) == 0);
    }
    for (size_t k = 0; k < sizeof(numeric) / sizeof(numeric[0]); k++) {
      mlxr_gguf_vtype t = numeric[k], et;
      char key[32];
      snprintf(key, sizeof(key), "arr.%d", (int)t);
      uint64_t cnt;
      const void *data;
      CHECK(mlxr_gguf_get_arr(g, key, &et, &cnt, &data));
      CHECK(et == t && cnt == 5 && memcmp(data, arrsrc[t], 5 * esize[t]) == 0);
    }
    mlxr_gguf_vtype et;
    uint64_t cnt;
    CHECK(mlxr_gguf_get_arr(g, "arr.empty", &et, &cnt, NULL) && et == MLXR_GGUF_F32 && cnt == 0);
    CHECK(mlxr_gguf_get_arr(g, "arr.str", &et, &cnt, NULL) && et == MLXR_GGUF_STRING && cnt == 4);
    for (uint64_t i = 0; i < 4; i++) {
      s = mlxr_gguf_get_arr_str(g, "arr.str", i, &len);
      CHECK(s && len == lens[i] && memcmp(s, strs[i], len) == 0 && s[len] == '\0');
    }
    CHECK(strcmp(mlxr_gguf_get_arr_str(g, "arr.str2", 1, NULL), "two") == 0);
    CHECK(mlxr_gguf_get_arr_str(g, "arr.1", 0, NULL) == NULL);
    CHECK(!mlxr_gguf_get_arr(g, "t.u8", &et, &cnt, NULL));

    CHECK(mlxr_gguf_n_tensors(g) == NT);
    const uint8_t *first = NULL;
    for (int i = 0; i < NT; i++) {
      const mlxr_gguf_tensor *t = mlxr_gguf_find_tensor(g, ts[i].name);
      CHECK(t && t == mlxr_gguf_tensor_at(g, i));
      if (!t) continue;
      if (i == 0) first = t->data;
      size_t n = spec_nbytes(ts[i].type, ts[i].ne, ts[i].nd);
      CHECK(strcmp(t->name, ts[i].name) == 0 && t->type == ts[i].type && t->n_dims == ts[i].nd);
      for (int d = 0; d < 4; d++) CHECK(t->ne[d] == ts[i].ne[d]);
      CHECK(t->nbytes == n && t->offset % alignment == 0);
      CHECK((const uint8_t *)t->data - first == (ptrdiff_t)t->offset);
      CHECK(memcmp(t->data, tdata[i], n) == 0);
    }
    CHECK(mlxr_gguf_tensor_at(g, NT) == NULL && mlxr_gguf_tensor_at(g, -1) == NULL);
    /* copy_kv + rewrite with no tensors: every key survives with its value. */
    char path2[600];
    snprintf(path2, sizeof(path2), "%s.copy", path);
    mlxr_gguf_writer *w2 = mlxr_gguf_writer_new();
    CHECK(mlxr_gguf_writer_copy_kv(w2, g) == 0);
    CHECK(mlxr_gguf_writer_begin(w2, path2, err, sizeof(err)) == 0);
    CHECK(mlxr_gguf_writer_finish(w2, err, sizeof(err)) == 0);
    mlxr_gguf_writer_free(w2);
    mlxr_gguf *g2 = NULL;
    CHECK(mlxr_gguf_open(path2, &g2, err, sizeof(err)) == 0);
    if (g2) {
      CHECK(mlxr_gguf_n_kv(g2) == mlxr_gguf_n_kv(g) && mlxr_gguf_n_tensors(g2) == 0);
      CHECK(mlxr_gguf_get_int(g2, "t.i64", &iv) && iv == i64);
      CHECK(strcmp(mlxr_gguf_get_arr_str(g2, "arr.str", 3, NULL), "\xe2\x96\x81the") == 0);
      mlxr_gguf_close(g2);
    }
    unlink(path2);
    mlxr_gguf_close(g);
  }
  for (int i = 0; i < NT; i++) free(tdata[i]);
  unlink(path);
}

/* ---- 3. errors ---- */

static void expect_fail(const uint8_t *p, size_t n, const char *want, int line) {
  uint8_t *buf = malloc(n ? n : 1);
  if (n) memcpy(buf, p, n);
  mlxr_gguf *g = NULL;
  char err[256] = "";
  int rc = mlxr_gguf_open_memory(buf, n, &g, err, sizeof(err));
  if (rc >= 0 || g != NULL || err[0] == '\0' || (want && strstr(err, want) == NULL)) {
    fprintf(stderr, "line %d: expected failure with '%s', got rc=%d err='%s'\n", line,
            want ? want : "", rc, err);
    g_failures++;
  }
  mlxr_gguf_close(g);
  free(buf);
}

/* A minimal file: one u32 key and one f32 [8] tensor, with knobs for hostile values. */
typedef struct mini {
  uint32_t version;
  uint64_t n_tensors, n_kv;
  const char *key2; /* second key's name (for duplicates) or NULL */
  bool has_align;   /* write general.alignment */
  uint32_t align;   /* its value */
  uint32_t n_dims;
  uint64_t ne0;
  uint32_t type;
  uint64_t offset;
  const char *name2; /* a second tensor name, or NULL */
} mini;

static void build_mini(bb *b, const mini *m) {
  bb_bytes(b, "GGUF", 4);
  bb_le(b, m->version, 4);
  bb_le(b, m->n_tensors, 8);
  bb_le(b, m->n_kv, 8);
  bb_str(b, "a.key");
  bb_le(b, 4, 4);
  bb_le(b, 7, 4);
  if (m->key2) {
    bb_str(b, m->key2);
    bb_le(b, 4, 4);
    bb_le(b, 8, 4);
  }
  if (m->has_align) {
    bb_str(b, "general.alignment");
    bb_le(b, 4, 4);
    bb_le(b, m->align, 4);
  }
  bb_str(b, "w");
  bb_le(b, m->n_dims, 4);
  for (uint32_t d = 0; d < m->n_dims && d < 8; d++) bb_le(b, d == 0 ? m->ne0 : 1, 8);
  bb_le(b, m->type, 4);
  bb_le(b, m->offset, 8);
  if (m->name2) {
    bb_str(b, m->name2);
    bb_le(b, 1, 4);
    bb_le(b, 8, 8);
    bb_le(b, 0, 4);
    bb_le(b, 32, 8);
  }
  bb_pad(b, 32);
  for (int i = 0; i < 64; i++) bb_le(b, (uint64_t)i, 1);
}

static mini mini_default(void) {
  return (mini){.version = 3, .n_tensors = 1, .n_kv = 1, .n_dims = 1, .ne0 = 8, .type = 0};
}

static void try_mini(const mini *m, const char *want, int line) {
  bb b = {0};
  build_mini(&b, m);
  expect_fail(b.p, b.n, want, line);
  free(b.p);
}

static void test_errors(const char *dir) {
  /* The default mini file must open (so each failure below is due to its one edit). */
  {
    mini m = mini_default();
    bb b = {0};
    build_mini(&b, &m);
    mlxr_gguf *g = NULL;
    char err[256];
    CHECK(mlxr_gguf_open_memory(b.p, b.n, &g, err, sizeof(err)) == 0);
    CHECK(g && mlxr_gguf_n_tensors(g) == 1 && mlxr_gguf_tensor_at(g, 0)->nbytes == 32);
    mlxr_gguf_close(g);
    /* Header is 111 bytes, padded to 128 here; with alignment 256 the data section would start
     * at 256, past the 192-byte file. */
    m.n_kv = 2, m.has_align = true, m.align = 256;
    bb b2 = {0};
    build_mini(&b2, &m);
    expect_fail(b2.p, b2.n, "past the end", __LINE__);
    free(b.p);
    free(b2.p);
  }
  mini m;
  m = mini_default(), m.version = 1, try_mini(&m, "unsupported GGUF version 1", __LINE__);
  m = mini_default(), m.version = 4, try_mini(&m, "version 4", __LINE__);
  m = mini_default(), m.version = 0x03000000, try_mini(&m, "big-endian", __LINE__);
  m = mini_default(), m.n_tensors = UINT64_C(1) << 60, try_mini(&m, "tensors", __LINE__);
  m = mini_default(), m.n_kv = UINT64_MAX, try_mini(&m, "key/values", __LINE__);
  m = mini_default(), m.n_kv = 2, m.key2 = "a.key", try_mini(&m, "duplicate key", __LINE__);
  m = mini_default(), m.n_tensors = 2, m.name2 = "w", try_mini(&m, "duplicate tensor", __LINE__);
  m = mini_default(), m.n_kv = 2, m.has_align = true, m.align = 3;
  try_mini(&m, "power of two", __LINE__);
  m = mini_default(), m.n_kv = 2, m.has_align = true, m.align = 0;
  try_mini(&m, "power of two", __LINE__);
  m = mini_default(), m.n_kv = 3, m.has_align = true, m.align = 32, m.key2 = "general.alignment";
  try_mini(&m, "duplicate key", __LINE__);
  m = mini_default(), m.n_dims = 0, try_mini(&m, "dimensions", __LINE__);
  m = mini_default(), m.n_dims = 5, try_mini(&m, "dimensions", __LINE__);
  m = mini_default(), m.ne0 = 0, try_mini(&m, "dimension 0", __LINE__);
  m = mini_default(), m.ne0 = UINT64_C(1) << 63, try_mini(&m, "dimension 0", __LINE__);
  m = mini_default(), m.ne0 = UINT64_C(1) << 62, try_mini(&m, "overflows", __LINE__);
  m = mini_default(), m.ne0 = UINT64_C(1) << 40, try_mini(&m, "outside", __LINE__);
  m = mini_default(), m.type = 4, try_mini(&m, "type id 4", __LINE__);
  m = mini_default(), m.type = 2, try_mini(&m, "block size", __LINE__); /* q4_0 with 8 elems */
  m = mini_default(), m.offset = 16, try_mini(&m, "alignment", __LINE__);
  m = mini_default(), m.offset = 64, try_mini(&m, "outside", __LINE__);
  m = mini_default(), m.offset = UINT64_MAX - 31, try_mini(&m, "outside", __LINE__);
  expect_fail((const uint8_t *)"GGUF", 4, "truncated", __LINE__);
  expect_fail((const uint8_t *)"GGML\3\0\0\0", 8, "magic", __LINE__);
  expect_fail(NULL, 0, "GGUF", __LINE__);
  {
    /* Element-count overflow: [2^32, 2^32] f32. */
    bb b = {0};
    bb_bytes(&b, "GGUF", 4);
    bb_le(&b, 3, 4);
    bb_le(&b, 1, 8);
    bb_le(&b, 0, 8);
    bb_str(&b, "big");
    bb_le(&b, 2, 4);
    bb_le(&b, UINT64_C(1) << 32, 8);
    bb_le(&b, UINT64_C(1) << 32, 8);
    bb_le(&b, 0, 4);
    bb_le(&b, 0, 8);
    bb_pad(&b, 32);
    expect_fail(b.p, b.n, "overflows", __LINE__);
    free(b.p);
  }
  {
    /* Arrays nested too deep, and a string claiming 2^62 bytes. */
    bb b = {0};
    bb_bytes(&b, "GGUF", 4);
    bb_le(&b, 3, 4);
    bb_le(&b, 0, 8);
    bb_le(&b, 1, 8);
    bb_str(&b, "deep");
    bb_le(&b, 9, 4);
    for (int i = 0; i < 20; i++) {
      bb_le(&b, 9, 4);
      bb_le(&b, 1, 8);
    }
    for (int i = 0; i < 8; i++) bb_le(&b, 0, 8);
    expect_fail(b.p, b.n, "nested", __LINE__);
    free(b.p);
    b = (bb){0};
    bb_bytes(&b, "GGUF", 4);
    bb_le(&b, 3, 4);
    bb_le(&b, 0, 8);
    bb_le(&b, 1, 8);
    bb_str(&b, "s");
    bb_le(&b, 8, 4);
    bb_le(&b, UINT64_C(1) << 62, 8);
    bb_le(&b, 0, 8);
    expect_fail(b.p, b.n, "truncated", __LINE__);
    free(b.p);
  }
  /* Files on disk: missing file; abandoned writer leaves nothing behind. */
  char path[512], err[256] = "";
  mlxr_gguf *g = NULL;
  snprintf(path, sizeof(path), "%s/missing.gguf", dir);
  CHECK(mlxr_gguf_open(path, &g, err, sizeof(err)) == MLXR_ERR_NOT_FOUND && err[0] && !g);
  snprintf(path, sizeof(path), "%s/abandoned.gguf", dir);
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  int64_t ne[] = {4};
  CHECK(mlxr_gguf_add_tensor(w, "x", MLXR_DTYPE_F32, 1, ne) == 0);
  CHECK(mlxr_gguf_writer_begin(w, path, err, sizeof(err)) == 0);
  char tmp[600];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  CHECK(access(tmp, F_OK) == 0);
  mlxr_gguf_writer_free(w);
  CHECK(access(tmp, F_OK) != 0 && access(path, F_OK) != 0);
  /* Alignment key of the wrong type is refused by the writer. */
  w = mlxr_gguf_writer_new();
  CHECK(mlxr_gguf_set_u64(w, "general.alignment", 64) == 0);
  CHECK(mlxr_gguf_writer_begin(w, path, err, sizeof(err)) < 0 && err[0]);
  CHECK(mlxr_gguf_set_u32(w, "general.alignment", 48) == 0);
  CHECK(mlxr_gguf_writer_begin(w, path, err, sizeof(err)) < 0 && err[0]);
  mlxr_gguf_writer_free(w);
  CHECK(access(path, F_OK) != 0);
}

/* ---- tools for tests/golden/test_formats_python.py ---- */

static void json_str(const char *s, size_t len) {
  putchar('"');
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

static void json_scalar(mlxr_gguf_vtype t, const uint8_t *p) {
  uint64_t u = 0;
  size_t n = t == MLXR_GGUF_U8 || t == MLXR_GGUF_I8 || t == MLXR_GGUF_BOOL    ? 1
             : t == MLXR_GGUF_U16 || t == MLXR_GGUF_I16                       ? 2
             : t == MLXR_GGUF_U64 || t == MLXR_GGUF_I64 || t == MLXR_GGUF_F64 ? 8
                                                                              : 4;
  for (size_t i = 0; i < n; i++) u |= (uint64_t)p[i] << (8 * i);
  switch (t) {
  case MLXR_GGUF_I8: printf("%d", (int8_t)u); break;
  case MLXR_GGUF_I16: printf("%d", (int16_t)u); break;
  case MLXR_GGUF_I32: printf("%d", (int32_t)u); break;
  case MLXR_GGUF_I64: printf("%lld", (long long)(int64_t)u); break;
  case MLXR_GGUF_F32: {
    float f;
    uint32_t b = (uint32_t)u;
    memcpy(&f, &b, 4);
    printf("%.17g", (double)f);
    break;
  }
  case MLXR_GGUF_F64: {
    double d;
    memcpy(&d, &u, 8);
    printf("%.17g", d);
    break;
  }
  case MLXR_GGUF_BOOL: printf("%s", u ? "true" : "false"); break;
  default: printf("%llu", (unsigned long long)u); break;
  }
}

/* --dump FILE: everything our reader sees, as JSON on stdout (values through the typed getters
 * for scalars and strings, arrays element by element, tensor bytes as hex). */
static int dump_file(const char *path) {
  mlxr_gguf *g = NULL;
  char err[512];
  if (mlxr_gguf_open(path, &g, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  printf("{\"version\": %u, \"alignment\": %zu, \"kv\": {", mlxr_gguf_version(g),
         mlxr_gguf_alignment(g));
  for (int64_t i = 0; i < mlxr_gguf_n_kv(g); i++) {
    const char *k = mlxr_gguf_kv_key(g, i);
    mlxr_gguf_vtype t = mlxr_gguf_kv_type(g, i);
    printf("%s\n ", i ? "," : "");
    json_str(k, strlen(k));
    printf(": [%d, ", (int)t);
    int64_t iv;
    uint64_t uv;
    double dv;
    bool bv;
    size_t len;
    if (t == MLXR_GGUF_STRING) {
      const char *s = mlxr_gguf_get_str(g, k, &len);
      json_str(s, len);
    } else if (t == MLXR_GGUF_BOOL && mlxr_gguf_get_bool(g, k, &bv)) {
      printf("%s", bv ? "true" : "false");
    } else if ((t == MLXR_GGUF_F32 || t == MLXR_GGUF_F64) && mlxr_gguf_get_float(g, k, &dv)) {
      printf("%.17g", dv);
    } else if (t == MLXR_GGUF_U64 && mlxr_gguf_get_uint(g, k, &uv)) {
      printf("%llu", (unsigned long long)uv);
    } else if (t != MLXR_GGUF_ARRAY && mlxr_gguf_get_int(g, k, &iv)) {
      printf("%lld", (long long)iv);
    } else if (t == MLXR_GGUF_ARRAY) {
      mlxr_gguf_vtype et;
      uint64_t cnt;
      const void *data;
      mlxr_gguf_get_arr(g, k, &et, &cnt, &data);
      printf("[%d, [", (int)et);
      for (uint64_t j = 0; j < cnt && et != MLXR_GGUF_ARRAY; j++) {
        if (j) printf(", ");
        if (et == MLXR_GGUF_STRING) {
          const char *s = mlxr_gguf_get_arr_str(g, k, j, &len);
          json_str(s, len);
        } else {
          static const size_t es[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
          json_scalar(et, (const uint8_t *)data + j * es[et]);
        }
      }
      printf("], %llu]", (unsigned long long)cnt);
    } else {
      printf("null");
    }
    printf("]");
  }
  printf("},\n\"tensors\": [");
  for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
    printf("%s\n [", i ? "," : "");
    json_str(t->name, strlen(t->name));
    printf(", %d, [", (int)t->type);
    for (int d = 0; d < t->n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t->ne[d]);
    printf("], %llu, %zu, \"", (unsigned long long)t->offset, t->nbytes);
    for (size_t j = 0; j < t->nbytes; j++) printf("%02x", ((const uint8_t *)t->data)[j]);
    printf("\"]");
  }
  printf("]}\n");
  mlxr_gguf_close(g);
  return 0;
}

/* --write-sample FILE: the file test_formats_python.py checks with its own parser and with
 * llama.cpp. Its content is restated there independently. */
static int write_sample(const char *path) {
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  uint8_t u8 = 200;
  int8_t i8 = -100;
  uint16_t u16 = 60000;
  int16_t i16 = -30000;
  int64_t i64 = -(INT64_C(1) << 62) - 3;
  double f64 = -0.1;
  int32_t ia[] = {-1, 0, 7};
  const char *sa[] = {"<s>", "", "\xe2\x96\x81the"};
  mlxr_gguf_set_str(w, "general.architecture", "llama");
  mlxr_gguf_set_scalar(w, "s.u8", MLXR_GGUF_U8, &u8);
  mlxr_gguf_set_scalar(w, "s.i8", MLXR_GGUF_I8, &i8);
  mlxr_gguf_set_scalar(w, "s.u16", MLXR_GGUF_U16, &u16);
  mlxr_gguf_set_scalar(w, "s.i16", MLXR_GGUF_I16, &i16);
  mlxr_gguf_set_u32(w, "s.u32", 4000000000u);
  mlxr_gguf_set_i32(w, "s.i32", -2000000000);
  mlxr_gguf_set_f32(w, "s.f32", 1.5f);
  mlxr_gguf_set_bool(w, "s.bool", true);
  mlxr_gguf_set_str(w, "s.str", "h\xc3\xa9llo");
  mlxr_gguf_set_u64(w, "s.u64", (UINT64_C(1) << 63) + 5);
  mlxr_gguf_set_scalar(w, "s.i64", MLXR_GGUF_I64, &i64);
  mlxr_gguf_set_scalar(w, "s.f64", MLXR_GGUF_F64, &f64);
  mlxr_gguf_set_arr(w, "a.i32", MLXR_GGUF_I32, ia, 3);
  mlxr_gguf_set_arr_str(w, "a.str", sa, NULL, 3);
  mlxr_gguf_set_u32(w, "general.alignment", 64);
  float f32[12];
  uint16_t f16[16];
  uint8_t q8[2 * 34];
  for (int i = 0; i < 12; i++) f32[i] = (float)i * 0.5f - 3.0f;
  for (int i = 0; i < 16; i++) f16[i] = (uint16_t)(0x3c00 + i);
  for (int b = 0; b < 2; b++) {
    q8[b * 34] = 0x00;
    q8[b * 34 + 1] = b == 0 ? 0x38 : 0x40; /* f16 0.5, 2.0 */
    for (int j = 0; j < 32; j++) q8[b * 34 + 2 + j] = (uint8_t)(int8_t)(j - 16);
  }
  int64_t ne_f32[] = {4, 3}, ne_f16[] = {8, 2}, ne_q8[] = {64};
  mlxr_gguf_add_tensor(w, "t.f32", MLXR_DTYPE_F32, 2, ne_f32);
  mlxr_gguf_add_tensor(w, "t.f16", MLXR_DTYPE_F16, 2, ne_f16);
  mlxr_gguf_add_tensor(w, "t.q8_0", MLXR_DTYPE_Q8_0, 1, ne_q8);
  char err[512] = "";
  int rc = mlxr_gguf_writer_begin(w, path, err, sizeof(err));
  if (!rc) rc = mlxr_gguf_writer_write_tensor(w, f32, sizeof(f32), err, sizeof(err));
  if (!rc) rc = mlxr_gguf_writer_write_tensor(w, f16, sizeof(f16), err, sizeof(err));
  if (!rc) rc = mlxr_gguf_writer_write_tensor(w, q8, sizeof(q8), err, sizeof(err));
  if (!rc) rc = mlxr_gguf_writer_finish(w, err, sizeof(err));
  mlxr_gguf_writer_free(w);
  if (rc) fprintf(stderr, "write-sample: %s\n", err);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--dump") == 0) return dump_file(argv[2]);
  if (argc == 3 && strcmp(argv[1], "--write-sample") == 0) return write_sample(argv[2]);
  char dir[] = "/tmp/mlxr_test_gguf_XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  test_spec_layout(dir);
  test_round_trip(dir, 32);
  test_round_trip(dir, 64);
  test_round_trip(dir, 1);
  test_errors(dir);
  char p[600];
  snprintf(p, sizeof(p), "%s/spec.gguf", dir);
  unlink(p);
  rmdir(dir);
  if (g_failures) {
    fprintf(stderr, "test_gguf: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("test_gguf: ok\n");
  return 0;
}
