/*
 * test_safetensors.c: safetensors reader.
 *
 * Files are assembled here by hand from the format description (u64 LE header length, JSON
 * header padded with spaces, byte buffer), with the element sizes taken from the safetensors
 * spec's dtype list (not from the reader). Checks:
 * - one tensor of every dtype plus a scalar and an empty tensor: dtype, shape, nbytes, data
 *   pointer (= buffer start + begin) and bytes; __metadata__ lookup;
 * - the same file through a path, a directory holding model.safetensors, a sharded directory
 *   with model.safetensors.index.json, and a directory of *.safetensors without index (name
 *   order);
 * - index errors: a tensor missing from its shard, in the wrong shard, a shard path with '/',
 *   duplicates across files, an empty directory;
 * - header errors: length past EOF or over 100 MB, bad or trailing JSON, unknown dtype, reversed,
 *   out-of-range, overlapping or mis-sized offsets, negative / fractional dims, 9 dims, shape
 *   overflow, non-string metadata. Each must fail with a negative status and a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common/status.h"
#include "core/formats/safetensors.h"

static int g_failures; /* this test binary's failure count */

static void check_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  g_failures++;
}
#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if (!(c)) check_fail(__FILE__, __LINE__, #c);                                                  \
  } while (0)

/* From the safetensors README's dtype list. */
static const struct {
  const char *name;
  size_t size;
} k_dtypes[] = {{"BOOL", 1}, {"U8", 1},   {"I8", 1},  {"U16", 2},     {"I16", 2},
                {"F16", 2},  {"BF16", 2}, {"U32", 4}, {"I32", 4},     {"F32", 4},
                {"F64", 8},  {"U64", 8},  {"I64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
enum { N_DTYPES = sizeof(k_dtypes) / sizeof(k_dtypes[0]) };

/* header JSON + data -> file bytes (header padded with spaces to a multiple of 8). */
static uint8_t *make_file(const char *json, const uint8_t *data, size_t data_len, size_t *out_n) {
  size_t hl = strlen(json);
  size_t padded = (hl + 7) / 8 * 8;
  size_t n = 8 + padded + data_len;
  uint8_t *p = malloc(n ? n : 1);
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)((uint64_t)padded >> (8 * i));
  memcpy(p + 8, json, hl);
  memset(p + 8 + hl, ' ', padded - hl);
  if (data_len) memcpy(p + 8 + padded, data, data_len);
  *out_n = n;
  return p;
}

static void write_bytes(const char *path, const uint8_t *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
  fclose(f);
}

static void write_st(const char *dir, const char *name, const char *json, const uint8_t *data,
                     size_t dl) {
  char path[600];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  size_t n;
  uint8_t *p = make_file(json, data, dl, &n);
  write_bytes(path, p, n);
  free(p);
}

static void write_text(const char *dir, const char *name, const char *text) {
  char path[600];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  write_bytes(path, (const uint8_t *)text, strlen(text));
}

/* ---- the every-dtype file ---- */

typedef struct all_file {
  char json[4096];
  uint8_t data[1024];
  size_t data_len;
} all_file;

static void build_all(all_file *a) {
  size_t off = 0, j = 0;
  j += (size_t)snprintf(a->json + j, sizeof(a->json) - j,
                        "{\"__metadata__\":{\"format\":\"pt\",\"name\":\"tiny\"}");
  for (int i = 0; i < N_DTYPES; i++) {
    size_t n = 6 * k_dtypes[i].size;
    j += (size_t)snprintf(a->json + j, sizeof(a->json) - j,
                          ",\"t.%s\":{\"dtype\":\"%s\",\"shape\":[2,3],\"data_offsets\":[%zu,%zu]}",
                          k_dtypes[i].name, k_dtypes[i].name, off, off + n);
    off += n;
  }
  j += (size_t)snprintf(a->json + j, sizeof(a->json) - j,
                        ",\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[%zu,%zu]}",
                        off, off + 4);
  off += 4;
  j += (size_t)snprintf(
      a->json + j, sizeof(a->json) - j,
      ",\"empty\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[%zu,%zu]}}", off, off);
  a->data_len = off;
  for (size_t i = 0; i < off; i++) a->data[i] = (uint8_t)(i * 131 + 7);
}

static void check_all(const mlxr_safetensors *st, const all_file *a, const uint8_t *buf_start) {
  CHECK(mlxr_safetensors_n_tensors(st) == N_DTYPES + 2);
  size_t off = 0;
  for (int i = 0; i < N_DTYPES; i++) {
    char name[32];
    snprintf(name, sizeof(name), "t.%s", k_dtypes[i].name);
    const mlxr_st_tensor *t = mlxr_safetensors_find(st, name);
    CHECK(t != NULL);
    if (!t) continue;
    size_t n = 6 * k_dtypes[i].size;
    CHECK(strcmp(t->name, name) == 0 &&
          strcmp(mlxr_st_dtype_name(t->dtype), k_dtypes[i].name) == 0);
    CHECK(mlxr_st_dtype_size(t->dtype) == k_dtypes[i].size);
    CHECK(t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->nbytes == n);
    CHECK(memcmp(t->data, a->data + off, n) == 0);
    if (buf_start) CHECK((const uint8_t *)t->data == buf_start + off);
    off += n;
  }
  const mlxr_st_tensor *s = mlxr_safetensors_find(st, "scalar");
  CHECK(s && s->n_dims == 0 && s->nbytes == 4 && memcmp(s->data, a->data + off, 4) == 0);
  const mlxr_st_tensor *e = mlxr_safetensors_find(st, "empty");
  CHECK(e && e->n_dims == 2 && e->shape[0] == 0 && e->shape[1] == 4 && e->nbytes == 0);
  CHECK(mlxr_safetensors_find(st, "t.F3") == NULL);
  CHECK(mlxr_safetensors_tensor_at(st, 0) == mlxr_safetensors_find(st, "t.BOOL"));
  CHECK(mlxr_safetensors_tensor_at(st, N_DTYPES + 2) == NULL);
  const char *md = mlxr_safetensors_metadata(st, "name");
  CHECK(md && strcmp(md, "tiny") == 0);
  CHECK(mlxr_safetensors_metadata(st, "absent") == NULL);
}

static void test_memory_and_paths(const char *root) {
  all_file a;
  build_all(&a);
  size_t n;
  uint8_t *file = make_file(a.json, a.data, a.data_len, &n);
  mlxr_safetensors *st = NULL;
  char err[512] = "";
  int rc = mlxr_safetensors_open_memory(file, n, &st, err, sizeof(err));
  CHECK(rc == 0);
  if (rc) fprintf(stderr, "open_memory: %s\n", err);
  if (st) check_all(st, &a, file + n - a.data_len);
  mlxr_safetensors_close(st);
  CHECK(mlxr_st_dtype_size(MLXR_ST_DTYPE_COUNT) == 0);
  CHECK(strcmp(mlxr_st_dtype_name(MLXR_ST_DTYPE_COUNT), "?") == 0);

  char dir[600], path[700];
  snprintf(dir, sizeof(dir), "%s/single", root);
  mkdir(dir, 0755);
  snprintf(path, sizeof(path), "%s/model.safetensors", dir);
  write_bytes(path, file, n);
  write_text(dir, "other.safetensors", "garbage that must not be read");
  st = NULL;
  CHECK(mlxr_safetensors_open(path, &st, err, sizeof(err)) == 0);
  if (st) check_all(st, &a, NULL);
  mlxr_safetensors_close(st);
  st = NULL;
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) == 0);
  if (st) check_all(st, &a, NULL);
  mlxr_safetensors_close(st);
  free(file);
}

static void test_sharded(const char *root) {
  uint8_t d[64];
  for (int i = 0; i < 64; i++) d[i] = (uint8_t)(255 - i);
  char dir[600], err[512] = "";
  mlxr_safetensors *st = NULL;

  /* Index + two shards. */
  snprintf(dir, sizeof(dir), "%s/sharded", root);
  mkdir(dir, 0755);
  write_st(dir, "model-00001-of-00002.safetensors",
           "{\"__metadata__\":{\"format\":\"pt\"},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[8,11]}}",
           d, 11);
  write_st(dir, "model-00002-of-00002.safetensors",
           "{\"__metadata__\":{\"format\":\"mlx\",\"k\":\"v2\"},"
           "\"c\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}",
           d + 20, 8);
  write_text(dir, "model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":27},\"weight_map\":{"
             "\"a\":\"model-00001-of-00002.safetensors\","
             "\"c\":\"model-00002-of-00002.safetensors\","
             "\"b\":\"model-00001-of-00002.safetensors\"}}\n");
  int rc = mlxr_safetensors_open(dir, &st, err, sizeof(err));
  CHECK(rc == 0);
  if (rc) fprintf(stderr, "sharded: %s\n", err);
  if (st) {
    CHECK(mlxr_safetensors_n_tensors(st) == 3);
    const mlxr_st_tensor *a = mlxr_safetensors_find(st, "a");
    const mlxr_st_tensor *b = mlxr_safetensors_find(st, "b");
    const mlxr_st_tensor *c = mlxr_safetensors_find(st, "c");
    CHECK(a && a->dtype == MLXR_ST_F32 && a->nbytes == 8 && memcmp(a->data, d, 8) == 0);
    CHECK(b && b->dtype == MLXR_ST_I8 && b->nbytes == 3 && memcmp(b->data, d + 8, 3) == 0);
    CHECK(c && c->dtype == MLXR_ST_BF16 && c->n_dims == 2 && memcmp(c->data, d + 20, 8) == 0);
    CHECK(strcmp(mlxr_safetensors_metadata(st, "format"), "pt") == 0); /* first file wins */
    CHECK(strcmp(mlxr_safetensors_metadata(st, "k"), "v2") == 0);
    mlxr_safetensors_close(st);
    st = NULL;
  }

  /* A weight_map entry missing from its shard, or placed in the wrong shard. */
  write_text(dir, "model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
             "\"z\":\"model-00001-of-00002.safetensors\"}}");
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) < 0 && strstr(err, "'z'") && !st);
  write_text(dir, "model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\","
             "\"c\":\"model-00001-of-00002.safetensors\","
             "\"b\":\"model-00002-of-00002.safetensors\"}}");
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) < 0 && strstr(err, "not in its shard"));
  write_text(dir, "model.safetensors.index.json",
             "{\"weight_map\":{\"a\":\"../single/model.safetensors\"}}");
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) < 0 && strstr(err, "file name"));
  write_text(dir, "model.safetensors.index.json", "{\"weight_map\":[1]}");
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) < 0 && strstr(err, "weight_map"));
  write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"nope.safetensors\"}}");
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) < 0 && strstr(err, "nope"));
  write_text(dir, "model.safetensors.index.json", "{bad json");
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) < 0 && strstr(err, "JSON"));

  /* No index, no model.safetensors: every *.safetensors in name order. */
  snprintf(dir, sizeof(dir), "%s/plain", root);
  mkdir(dir, 0755);
  write_st(dir, "b.safetensors", "{\"y\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
           d + 1, 1);
  write_st(dir, "a.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
           d, 1);
  write_text(dir, "notes.txt", "not a model");
  rc = mlxr_safetensors_open(dir, &st, err, sizeof(err));
  CHECK(rc == 0);
  if (st) {
    CHECK(mlxr_safetensors_n_tensors(st) == 2);
    CHECK(strcmp(mlxr_safetensors_tensor_at(st, 0)->name, "x") == 0);
    CHECK(strcmp(mlxr_safetensors_tensor_at(st, 1)->name, "y") == 0);
    CHECK(*(const uint8_t *)mlxr_safetensors_find(st, "y")->data == d[1]);
    mlxr_safetensors_close(st);
    st = NULL;
  }
  /* The same name in two files. */
  write_st(dir, "c.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
           d, 1);
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) < 0 && strstr(err, "twice"));
  /* A broken file names itself. */
  write_text(dir, "c.safetensors", "short");
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) < 0 && strstr(err, "c.safetensors"));

  snprintf(dir, sizeof(dir), "%s/empty", root);
  mkdir(dir, 0755);
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) == MLXR_ERR_NOT_FOUND && err[0]);
  snprintf(dir, sizeof(dir), "%s/does-not-exist", root);
  CHECK(mlxr_safetensors_open(dir, &st, err, sizeof(err)) == MLXR_ERR_NOT_FOUND && err[0]);
}

/* ---- header errors ---- */

static void expect_fail_bytes(const uint8_t *p, size_t n, const char *want, int line) {
  uint8_t *buf = malloc(n ? n : 1);
  if (n) memcpy(buf, p, n);
  mlxr_safetensors *st = NULL;
  char err[512] = "";
  int rc = mlxr_safetensors_open_memory(buf, n, &st, err, sizeof(err));
  if (rc >= 0 || st || !err[0] || (want && !strstr(err, want))) {
    fprintf(stderr, "line %d: expected failure with '%s', got rc=%d err='%s'\n", line,
            want ? want : "", rc, err);
    g_failures++;
  }
  mlxr_safetensors_close(st);
  free(buf);
}

static void expect_fail_json(const char *json, size_t data_len, const char *want, int line) {
  uint8_t data[256] = {0};
  size_t n;
  uint8_t *p = make_file(json, data, data_len, &n);
  expect_fail_bytes(p, n, want, line);
  free(p);
}

#define T(s) "{\"t\":" s "}"

static void test_header_errors(void) {
  /* Sanity: the template used below opens when it is valid. */
  {
    size_t n;
    uint8_t data[16] = {0};
    uint8_t *p =
        make_file(T("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"), data, 16, &n);
    mlxr_safetensors *st = NULL;
    char err[256];
    CHECK(mlxr_safetensors_open_memory(p, n, &st, err, sizeof(err)) == 0 && st);
    mlxr_safetensors_close(st);
    /* Header length past the end of the file, and over the 100 MB cap. */
    p[0] = (uint8_t)(p[0] + 1);
    expect_fail_bytes(p, n, NULL, __LINE__);
    p[0] = 0xff, p[1] = 0xff, p[2] = 0xff, p[3] = 0xff;
    expect_fail_bytes(p, n, "limit", __LINE__);
    expect_fail_bytes(p, 7, "header length", __LINE__);
    free(p);
    uint8_t huge[16] = {0};
    huge[0] = 0xf0; /* 240 bytes claimed, 8 present */
    expect_fail_bytes(huge, 16, "past the end", __LINE__);
  }
  expect_fail_json("{\"t\":", 0, "JSON", __LINE__);
  expect_fail_json("[1,2]", 0, "object", __LINE__);
  expect_fail_json("{} x", 0, "trailing", __LINE__);
  expect_fail_json(T("{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}"), 8, "dtype",
                   __LINE__);
  expect_fail_json(T("{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}"), 8, "dtype", __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}"), 8, "inside",
                   __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,9]}"), 8, "inside",
                   __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}"), 8, "span",
                   __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}"), 8, "dimension",
                   __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}"), 8, "dimension",
                   __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}"), 8,
                   "dimension", __LINE__);
  expect_fail_json(T("{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}"), 8,
                   "dimensions", __LINE__);
  expect_fail_json(T("{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
                     "\"data_offsets\":[0,1]}"),
                   8, "overflow", __LINE__);
  expect_fail_json(T("{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}"),
                   8, NULL, __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}"), 8, "data_offsets",
                   __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}"), 8,
                   "data_offsets", __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}"), 8,
                   "data_offsets", __LINE__);
  expect_fail_json(T("{\"dtype\":\"F32\",\"shape\":[2]}"), 8, "data_offsets", __LINE__);
  expect_fail_json(T("3"), 8, "not an object", __LINE__);
  expect_fail_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   16, "overlap", __LINE__);
  expect_fail_json("{\"__metadata__\":{\"a\":1}}", 0, "metadata", __LINE__);
  expect_fail_json("{\"__metadata__\":[\"a\"]}", 0, "metadata", __LINE__);
}

static void rm_tree(const char *root) {
  char cmd[700];
  /* Test-only cleanup of the mkdtemp directory this test created. */
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", root);
}

int main(void) {
  char root[] = "/tmp/mlxr_test_st_XXXXXX";
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    return 2;
  }
  test_memory_and_paths(root);
  test_sharded(root);
  test_header_errors();
  rm_tree(root);
  if (g_failures) {
    fprintf(stderr, "test_safetensors: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("test_safetensors: ok\n");
  return 0;
}
