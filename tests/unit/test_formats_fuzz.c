/*
 * test_formats_fuzz.c: deterministic fuzzing of the GGUF and safetensors readers.
 *
 * Starting from valid files (a GGUF made by our writer, a GGUF assembled here byte by byte with
 * the position of every header field recorded, and a hand-built safetensors file), it opens many
 * thousands of variants through open_memory, each in a malloc'd buffer of exactly its size so
 * AddressSanitizer reports any read past the end:
 *   - every truncation length;
 *   - random single-bit flips and random overwrites of 1..8 bytes (seeded xorshift64, the state
 *     passed explicitly, no globals);
 *   - targeted hostile values in every recorded GGUF field (counts, string and array lengths,
 *     value types, n_dims 0/5, dims 0 / 2^62 / overflowing products, unknown tensor types,
 *     misaligned and out-of-range offsets, alignment 0 / 3 / huge), alone and in random pairs;
 *   - safetensors header lengths that are huge or past EOF, and a list of hostile JSON headers
 *     (reversed / out-of-range / overlapping offsets, shape overflow, bad JSON, deep nesting),
 *     plus random character substitutions inside the JSON.
 * The property checked: every variant either opens, and then every tensor's bytes lie inside
 * the buffer and every accessor works, or fails with a negative status and a non-empty message.
 * Runs in a few seconds under ASan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common/status.h"
#include "core/formats/gguf.h"
#include "core/formats/safetensors.h"

typedef struct fuzz_ctx {
  uint64_t rng;  /* xorshift64 state */
  long opened;   /* variants that opened */
  long rejected; /* variants rejected properly */
  int failures;  /* property violations */
} fuzz_ctx;

static uint64_t rnd(fuzz_ctx *c) {
  c->rng ^= c->rng << 13;
  c->rng ^= c->rng >> 7;
  c->rng ^= c->rng << 17;
  return c->rng;
}

static void fail(fuzz_ctx *c, const char *what, const char *variant) {
  if (c->failures < 20) fprintf(stderr, "FAIL (%s): %s\n", variant, what);
  c->failures++;
}

static bool inside(const uint8_t *buf, size_t n, const void *p, size_t len) {
  const uint8_t *q = p;
  if (len == 0) return q >= buf && q <= buf + n;
  return q >= buf && q < buf + n && len <= (size_t)(buf + n - q);
}

/* ---- GGUF ---- */

static void gguf_exercise(fuzz_ctx *c, const mlxr_gguf *g, const uint8_t *buf, size_t n,
                          const char *variant) {
  for (int64_t i = 0; i < mlxr_gguf_n_kv(g); i++) {
    const char *k = mlxr_gguf_kv_key(g, i);
    if (!k || mlxr_gguf_kv_type(g, i) >= MLXR_GGUF_VTYPE_COUNT) {
      fail(c, "bad key or key type", variant);
      continue;
    }
    int64_t iv;
    uint64_t uv;
    double dv;
    bool bv;
    size_t len = 0;
    (void)mlxr_gguf_get_int(g, k, &iv);
    (void)mlxr_gguf_get_uint(g, k, &uv);
    (void)mlxr_gguf_get_float(g, k, &dv);
    (void)mlxr_gguf_get_bool(g, k, &bv);
    const char *s = mlxr_gguf_get_str(g, k, &len);
    if (s && s[len] != '\0') fail(c, "string not NUL-terminated", variant);
    mlxr_gguf_vtype et;
    uint64_t cnt;
    const void *data;
    if (mlxr_gguf_get_arr(g, k, &et, &cnt, &data)) {
      if (et == MLXR_GGUF_STRING) {
        for (uint64_t j = 0; j < cnt && j < 4; j++) {
          s = mlxr_gguf_get_arr_str(g, k, j, &len);
          if (!s || s[len] != '\0') fail(c, "bad string array element", variant);
        }
        if (cnt && !mlxr_gguf_get_arr_str(g, k, cnt - 1, &len)) fail(c, "last element", variant);
      } else if (et != MLXR_GGUF_ARRAY) {
        size_t es = et == MLXR_GGUF_U8 || et == MLXR_GGUF_I8 || et == MLXR_GGUF_BOOL    ? 1
                    : et == MLXR_GGUF_U16 || et == MLXR_GGUF_I16                        ? 2
                    : et == MLXR_GGUF_U64 || et == MLXR_GGUF_I64 || et == MLXR_GGUF_F64 ? 8
                                                                                        : 4;
        if (cnt > n || !inside(buf, n, data, (size_t)cnt * es))
          fail(c, "array data outside the buffer", variant);
      }
    }
    if (mlxr_gguf_find_key(g, k) != i) fail(c, "key not found by name", variant);
  }
  for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
    if (!t || !t->name) {
      fail(c, "tensor_at", variant);
      continue;
    }
    if (!inside(buf, n, t->data, t->nbytes)) fail(c, "tensor data outside the buffer", variant);
    if (t->n_dims < 1 || t->n_dims > 4) fail(c, "n_dims", variant);
    if (t->offset % mlxr_gguf_alignment(g) != 0) fail(c, "misaligned tensor accepted", variant);
    size_t row;
    if (!mlxr_dtype_row_size(t->type, t->ne[0], &row)) fail(c, "bad row accepted", variant);
    if (mlxr_gguf_find_tensor(g, t->name) != t) fail(c, "tensor not found by name", variant);
  }
}

static void gguf_try(fuzz_ctx *c, const uint8_t *p, size_t n, const char *variant) {
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    fail(c, "malloc", variant);
    return;
  }
  if (n) memcpy(buf, p, n);
  mlxr_gguf *g = NULL;
  char err[256];
  err[0] = '\0';
  int rc = mlxr_gguf_open_memory(buf, n, &g, err, sizeof(err));
  if (rc == 0 && g) {
    c->opened++;
    gguf_exercise(c, g, buf, n, variant);
    mlxr_gguf_close(g);
  } else if (rc < 0 && !g && err[0]) {
    c->rejected++;
  } else {
    fail(c, "neither opened nor failed with a message", variant);
  }
  free(buf);
}

/* Byte builder that records field positions. */
typedef struct bb {
  uint8_t p[4096];
  size_t n;
} bb;

static size_t bb_le(bb *b, uint64_t v, int w) {
  size_t at = b->n;
  for (int i = 0; i < w; i++) b->p[b->n++] = (uint8_t)(v >> (8 * i));
  return at;
}

static size_t bb_str(bb *b, const char *s) {
  size_t at = bb_le(b, strlen(s), 8);
  memcpy(b->p + b->n, s, strlen(s));
  b->n += strlen(s);
  return at;
}

typedef struct field {
  size_t pos;
  int width; /* 4 or 8 */
} field;

/* A small valid v3 file; fields[] gets the position of every length/count/type/dim/offset. */
static size_t assemble_gguf(bb *b, field *f) {
  size_t nf = 0;
  b->n = 0;
  memcpy(b->p, "GGUF", 4);
  b->n = 4;
  f[nf++] = (field){bb_le(b, 3, 4), 4};
  f[nf++] = (field){bb_le(b, 3, 8), 8}; /* tensors */
  f[nf++] = (field){bb_le(b, 5, 8), 8}; /* kvs */
  f[nf++] = (field){bb_str(b, "general.architecture"), 8};
  f[nf++] = (field){bb_le(b, 8, 4), 4};
  f[nf++] = (field){bb_str(b, "llama"), 8};
  bb_str(b, "general.alignment");
  f[nf++] = (field){bb_le(b, 4, 4), 4};
  f[nf++] = (field){bb_le(b, 16, 4), 4};
  bb_str(b, "tok.list");
  f[nf++] = (field){bb_le(b, 9, 4), 4};
  f[nf++] = (field){bb_le(b, 8, 4), 4};
  f[nf++] = (field){bb_le(b, 3, 8), 8};
  f[nf++] = (field){bb_str(b, "ab"), 8};
  bb_str(b, "");
  bb_str(b, "xyz");
  bb_str(b, "nested");
  bb_le(b, 9, 4);
  f[nf++] = (field){bb_le(b, 9, 4), 4};
  f[nf++] = (field){bb_le(b, 2, 8), 8};
  f[nf++] = (field){bb_le(b, 6, 4), 4}; /* [f32 x2] */
  f[nf++] = (field){bb_le(b, 2, 8), 8};
  bb_le(b, 0x3f800000, 4);
  bb_le(b, 0x40000000, 4);
  bb_le(b, 8, 4); /* [str x1] */
  bb_le(b, 1, 8);
  bb_str(b, "q");
  bb_str(b, "scores");
  bb_le(b, 9, 4);
  f[nf++] = (field){bb_le(b, 6, 4), 4};
  f[nf++] = (field){bb_le(b, 3, 8), 8};
  bb_le(b, 0, 4);
  bb_le(b, 0, 4);
  bb_le(b, 0, 4);
  /* tensors: "a" f32 [4, 2] @0, "b" q8_0 [32] @32, "c" f16 [3, 1, 1, 2] @80 */
  f[nf++] = (field){bb_str(b, "a"), 8};
  f[nf++] = (field){bb_le(b, 2, 4), 4};
  f[nf++] = (field){bb_le(b, 4, 8), 8};
  f[nf++] = (field){bb_le(b, 2, 8), 8};
  f[nf++] = (field){bb_le(b, 0, 4), 4};
  f[nf++] = (field){bb_le(b, 0, 8), 8};
  bb_str(b, "b");
  f[nf++] = (field){bb_le(b, 1, 4), 4};
  f[nf++] = (field){bb_le(b, 32, 8), 8};
  f[nf++] = (field){bb_le(b, 8, 4), 4};
  f[nf++] = (field){bb_le(b, 32, 8), 8};
  bb_str(b, "c");
  f[nf++] = (field){bb_le(b, 4, 4), 4};
  f[nf++] = (field){bb_le(b, 3, 8), 8};
  bb_le(b, 1, 8);
  bb_le(b, 1, 8);
  f[nf++] = (field){bb_le(b, 2, 8), 8};
  f[nf++] = (field){bb_le(b, 1, 4), 4};
  f[nf++] = (field){bb_le(b, 80, 8), 8};
  while (b->n % 16) bb_le(b, 0, 1);
  for (int i = 0; i < 96; i++) bb_le(b, (uint64_t)(i * 7), 1);
  return nf;
}

static void fuzz_gguf_common(fuzz_ctx *c, const uint8_t *base, size_t n, const char *name) {
  char variant[96];
  uint8_t *v = malloc(n);
  snprintf(variant, sizeof(variant), "%s unmodified", name);
  gguf_try(c, base, n, variant);
  if (c->opened == 0) fail(c, "the unmodified file did not open", variant);
  for (size_t len = 0; len < n; len++) {
    snprintf(variant, sizeof(variant), "%s truncated to %zu", name, len);
    gguf_try(c, base, len, variant);
  }
  for (int i = 0; i < 10000; i++) {
    memcpy(v, base, n);
    size_t at = (size_t)(rnd(c) % n);
    v[at] ^= (uint8_t)(1u << (rnd(c) % 8));
    snprintf(variant, sizeof(variant), "%s bit flip at %zu", name, at);
    gguf_try(c, v, n, variant);
  }
  for (int i = 0; i < 10000; i++) {
    memcpy(v, base, n);
    size_t at = (size_t)(rnd(c) % n), len = 1 + (size_t)(rnd(c) % 8);
    for (size_t j = 0; j < len && at + j < n; j++) v[at + j] = (uint8_t)rnd(c);
    snprintf(variant, sizeof(variant), "%s overwrite at %zu", name, at);
    gguf_try(c, v, n, variant);
  }
  free(v);
}

static void put_field(uint8_t *p, field f, uint64_t v) {
  for (int i = 0; i < f.width; i++) p[f.pos + (size_t)i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_field(const uint8_t *p, field f) {
  uint64_t v = 0;
  for (int i = 0; i < f.width; i++) v |= (uint64_t)p[f.pos + (size_t)i] << (8 * i);
  return v;
}

static void fuzz_gguf_targeted(fuzz_ctx *c) {
  bb b;
  field f[64];
  size_t nf = assemble_gguf(&b, f);
  size_t n = b.n;
  char variant[128];
  fuzz_gguf_common(c, b.p, n, "assembled gguf");
  const uint64_t v64[] = {0,
                          1,
                          2,
                          3,
                          5,
                          7,
                          16,
                          31,
                          32,
                          33,
                          64,
                          255,
                          n - 1,
                          n,
                          n + 1,
                          1u << 31,
                          UINT64_C(1) << 32,
                          (UINT64_C(1) << 32) + 1,
                          UINT64_C(1) << 60,
                          UINT64_C(1) << 62,
                          (UINT64_C(1) << 63) - 1,
                          UINT64_C(1) << 63,
                          UINT64_MAX - 31,
                          UINT64_MAX};
  const uint64_t v32[] = {0,  1,  2,  3,  4,  5,  6,  8,  9,   10,       12,
                          13, 16, 20, 30, 31, 39, 40, 64, 255, 1u << 31, 0xffffffffu};
  uint8_t *v = malloc(n);
  for (size_t i = 0; i < nf; i++) {
    const uint64_t *vals = f[i].width == 8 ? v64 : v32;
    size_t nv = f[i].width == 8 ? sizeof(v64) / sizeof(v64[0]) : sizeof(v32) / sizeof(v32[0]);
    for (size_t k = 0; k < nv + 2; k++) {
      memcpy(v, b.p, n);
      uint64_t cur = get_field(b.p, f[i]);
      uint64_t val = k < nv ? vals[k] : (k == nv ? cur + 1 : cur - 1);
      put_field(v, f[i], val);
      snprintf(variant, sizeof(variant), "field %zu (offset %zu) = %llu", i, f[i].pos,
               (unsigned long long)val);
      gguf_try(c, v, n, variant);
    }
  }
  /* Random pairs and triples of hostile field values. */
  for (int it = 0; it < 20000; it++) {
    memcpy(v, b.p, n);
    int edits = 2 + (int)(rnd(c) % 2);
    for (int e = 0; e < edits; e++) {
      field fl = f[rnd(c) % nf];
      uint64_t val = fl.width == 8 ? v64[rnd(c) % (sizeof(v64) / sizeof(v64[0]))]
                                   : v32[rnd(c) % (sizeof(v32) / sizeof(v32[0]))];
      put_field(v, fl, val);
    }
    snprintf(variant, sizeof(variant), "random field edits #%d", it);
    gguf_try(c, v, n, variant);
  }
  /* Dims whose product overflows: tensor "c" is [3, 1, 1, 2] (fields 33..36 region). */
  for (size_t i = 0; i < nf; i++) {
    if (f[i].width != 8) continue;
    for (size_t j = i + 1; j < nf; j++) {
      if (f[j].width != 8 || f[j].pos - f[i].pos > 40) continue;
      const uint64_t big[][2] = {{UINT64_C(1) << 32, UINT64_C(1) << 32},
                                 {UINT64_C(1) << 62, 4},
                                 {UINT64_C(1) << 31, UINT64_C(1) << 33}};
      for (int k = 0; k < 3; k++) {
        memcpy(v, b.p, n);
        put_field(v, f[i], big[k][0]);
        put_field(v, f[j], big[k][1]);
        snprintf(variant, sizeof(variant), "fields %zu,%zu = big pair %d", i, j, k);
        gguf_try(c, v, n, variant);
      }
    }
  }
  free(v);
}

static void fuzz_gguf_written(fuzz_ctx *c) {
  char dir[] = "/tmp/mlxr_fuzz_XXXXXX";
  if (!mkdtemp(dir)) {
    fail(c, "mkdtemp", "writer");
    return;
  }
  char path[128], err[256];
  snprintf(path, sizeof(path), "%s/w.gguf", dir);
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  const char *toks[] = {"<s>", "</s>", "a", "b", ""};
  float scores[] = {0, -1, -2, -3, -4};
  int32_t types[] = {3, 3, 1, 1, 1};
  mlxr_gguf_set_str(w, "general.architecture", "qwen3");
  mlxr_gguf_set_u32(w, "qwen3.block_count", 2);
  mlxr_gguf_set_f32(w, "qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
  mlxr_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", false);
  mlxr_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 5);
  mlxr_gguf_set_arr(w, "tokenizer.ggml.scores", MLXR_GGUF_F32, scores, 5);
  mlxr_gguf_set_arr(w, "tokenizer.ggml.token_type", MLXR_GGUF_I32, types, 5);
  int64_t ne_a[] = {32, 2}, ne_b[] = {8}, ne_c[] = {2, 2, 2};
  mlxr_gguf_add_tensor(w, "blk.0.attn_q.weight", MLXR_DTYPE_Q4_0, 2, ne_a);
  mlxr_gguf_add_tensor(w, "output_norm.weight", MLXR_DTYPE_F32, 1, ne_b);
  mlxr_gguf_add_tensor(w, "token_embd.weight", MLXR_DTYPE_F16, 3, ne_c);
  uint8_t data[64];
  for (int i = 0; i < 64; i++) data[i] = (uint8_t)i;
  int rc = mlxr_gguf_writer_begin(w, path, err, sizeof(err));
  rc = rc ? rc : mlxr_gguf_writer_write_tensor(w, data, 36, err, sizeof(err));
  rc = rc ? rc : mlxr_gguf_writer_write_tensor(w, data, 32, err, sizeof(err));
  rc = rc ? rc : mlxr_gguf_writer_write_tensor(w, data, 16, err, sizeof(err));
  rc = rc ? rc : mlxr_gguf_writer_finish(w, err, sizeof(err));
  mlxr_gguf_writer_free(w);
  FILE *fp = rc ? NULL : fopen(path, "rb");
  if (!fp) {
    fail(c, "could not write the base GGUF", err);
  } else {
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    long before = c->opened;
    fuzz_gguf_common(c, buf, n, "written gguf");
    if (c->opened == before) fail(c, "written file never opened", "written gguf");
  }
  unlink(path);
  rmdir(dir);
}

/* ---- safetensors ---- */

static void st_try(fuzz_ctx *c, const uint8_t *p, size_t n, const char *variant) {
  uint8_t *buf = malloc(n ? n : 1);
  if (n) memcpy(buf, p, n);
  mlxr_safetensors *st = NULL;
  char err[256];
  err[0] = '\0';
  int rc = mlxr_safetensors_open_memory(buf, n, &st, err, sizeof(err));
  if (rc == 0 && st) {
    c->opened++;
    for (int64_t i = 0; i < mlxr_safetensors_n_tensors(st); i++) {
      const mlxr_st_tensor *t = mlxr_safetensors_tensor_at(st, i);
      if (!t || !inside(buf, n, t->data, t->nbytes)) fail(c, "tensor outside buffer", variant);
      if (t && (t->n_dims < 0 || t->n_dims > 8)) fail(c, "n_dims", variant);
      if (t && mlxr_safetensors_find(st, t->name) != t) fail(c, "find by name", variant);
      uint64_t nel = 1;
      for (int d = 0; t && d < t->n_dims; d++) nel *= (uint64_t)t->shape[d];
      if (t && nel * mlxr_st_dtype_size(t->dtype) != t->nbytes) fail(c, "size mismatch", variant);
    }
    (void)mlxr_safetensors_metadata(st, "format");
    mlxr_safetensors_close(st);
  } else if (rc < 0 && !st && err[0]) {
    c->rejected++;
  } else {
    fail(c, "neither opened nor failed with a message", variant);
  }
  free(buf);
}

static size_t st_make(uint8_t *out, size_t cap, const char *json, size_t data_len) {
  size_t hl = strlen(json);
  if (8 + hl + data_len > cap) return 0;
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(out + 8, json, hl);
  for (size_t i = 0; i < data_len; i++) out[8 + hl + i] = (uint8_t)(i * 3);
  return 8 + hl + data_len;
}

static void fuzz_safetensors(fuzz_ctx *c) {
  static const char base_json[] =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},"
      "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[30,38]},"
      "\"e\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[38,38]}}";
  uint8_t *file = malloc(1 << 16), *v = malloc(1 << 16);
  size_t n = st_make(file, 1 << 16, base_json, 38);
  char variant[128];
  long before = c->opened;
  st_try(c, file, n, "safetensors unmodified");
  if (c->opened == before) fail(c, "the unmodified safetensors did not open", "base");
  for (size_t len = 0; len < n; len++) {
    snprintf(variant, sizeof(variant), "safetensors truncated to %zu", len);
    st_try(c, file, len, variant);
  }
  for (int i = 0; i < 10000; i++) {
    memcpy(v, file, n);
    size_t at = (size_t)(rnd(c) % n);
    v[at] ^= (uint8_t)(1u << (rnd(c) % 8));
    snprintf(variant, sizeof(variant), "safetensors bit flip at %zu", at);
    st_try(c, v, n, variant);
  }
  static const char json_chars[] = "{}[]\",:0123456789-+eE. \\u\x00\xff";
  for (int i = 0; i < 10000; i++) {
    memcpy(v, file, n);
    int edits = 1 + (int)(rnd(c) % 3);
    for (int e = 0; e < edits; e++) {
      size_t at = 8 + (size_t)(rnd(c) % (sizeof(base_json) - 1));
      v[at] = (uint8_t)json_chars[rnd(c) % (sizeof(json_chars) - 1)];
    }
    snprintf(variant, sizeof(variant), "safetensors json edit #%d", i);
    st_try(c, v, n, variant);
  }
  const uint64_t lens[] = {
      0,         1,     2, 7,         8,         sizeof(base_json) - 2, sizeof(base_json),
      n - 8,     n - 7, n, 100000000, 100000001, UINT64_C(1) << 32,     UINT64_C(1) << 63,
      UINT64_MAX};
  for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
    memcpy(v, file, n);
    for (int i = 0; i < 8; i++) v[i] = (uint8_t)(lens[k] >> (8 * i));
    snprintf(variant, sizeof(variant), "safetensors header length %llu",
             (unsigned long long)lens[k]);
    st_try(c, v, n, variant);
  }
  /* Hostile headers over a 64-byte buffer. */
  static const char *hostile[] = {
      "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
      "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[60,68]}}",
      "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]}}",
      "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1e300,1e300]}}",
      "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-0,8]}}",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[9007199254740992,9007199254740992],"
      "\"data_offsets\":[0,0]}}",
      "{\"t\":{\"dtype\":\"I64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[0,18446744073709551616],\"data_offsets\":[0,0]}}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[-1,-1],\"data_offsets\":[0,1]}}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":{},\"data_offsets\":[0,1]}}",
      "{\"t\":{\"dtype\":null,\"shape\":[1],\"data_offsets\":[0,1]}}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"t\":{\"dtype\":\"U8\","
      "\"shape\":[1],\"data_offsets\":[1,2]}}",
      "{\"t\":[]}",
      "{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}",
      "{\"__metadata__\":null}",
      "{\"\\u0000\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}}",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}\x00",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}   \n",
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":[[[[1]]]]}}",
      "{",
      "{}",
      "",
      "nul",
      "{\"t\":\"\xff\xfe\"}",
  };
  for (size_t k = 0; k < sizeof(hostile) / sizeof(hostile[0]); k++) {
    size_t m = st_make(v, 1 << 16, hostile[k], 64);
    snprintf(variant, sizeof(variant), "hostile header %zu", k);
    st_try(c, v, m, variant);
  }
  /* Deep nesting: cJSON must refuse it without exhausting the stack. */
  {
    char *deep = malloc(20010);
    size_t j = 0;
    deep[j++] = '{';
    memcpy(deep + j, "\"t\":", 4);
    j += 4;
    for (int i = 0; i < 10000; i++) deep[j++] = '[';
    deep[j++] = '}';
    deep[j] = '\0';
    size_t m = st_make(v, 1 << 16, deep, 0);
    st_try(c, v, m, "deeply nested header");
    free(deep);
  }
  free(file);
  free(v);
}

int main(void) {
  fuzz_ctx c = {.rng = 0x2545f4914f6cdd1dull};
  fuzz_gguf_written(&c);
  fuzz_gguf_targeted(&c);
  fuzz_safetensors(&c);
  printf("test_formats_fuzz: %ld variants opened, %ld rejected, %d failures\n", c.opened,
         c.rejected, c.failures);
  if (c.failures) return 1;
  if (c.rejected < 1000 || c.opened < 100) {
    fprintf(stderr, "test_formats_fuzz: too few variants exercised\n");
    return 1;
  }
  return 0;
}
