/*
 * test_convert_model.c: the HF -> GGUF converter's C pieces, read back with MLXR's GGUF reader.
 *
 * 1. config.json parsing (tools/hf_config.c): the transformers v4 and v5 forms give the same
 *    values; defaults (num_key_value_heads, implicit head_dim); every malformed input (missing or
 *    mistyped key, fractional integer, heads that do not divide, unknown rope type, yarn without
 *    original_max_position_embeddings, bad JSON) is an error whose message names the key.
 * 2. The tensor plan (tools/convert_arch.c): names, shapes and permutation heads for llama,
 *    qwen2, qwen3; tied vs untied; rope_freqs only for llama3 scaling. Llama-3 rope factors obey
 *    the formula's properties (1 at high frequency, factor at low, monotone between).
 * 3. End to end: a tiny Llama checkpoint is written here by hand (safetensors bytes assembled per
 *    the format, f32 values that encode their own position), converted with mlxr_convert_hf and
 *    opened with mlxr_gguf_open: every tensor has the expected ne and type, every value sits where
 *    it should (Q/K rows in the order obtained by enumerating llama.cpp's reshape(n_head, 2,
 *    hd/2, in).swapaxes(1, 2) element by element), the keys carry config.json's values; a q8_0
 *    conversion has q8_0 2-D tensors; a shape mismatch fails and leaves no file.
 * 4. Quantize type rules (tools/quantize.c): which tensors are quantizable, shape fallbacks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common/status.h"
#include "core/formats/gguf.h"
#include "tools/convert.h"
#include "tools/convert_arch.h"
#include "tools/hf_config.h"
#include "tools/quantize.h"

static int g_failures;

static void check_fail(const char *file, int line, const char *what) {
  fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
  g_failures++;
}
#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if (!(c)) check_fail(__FILE__, __LINE__, #c);                                                  \
  } while (0)

static int parse(const char *json, mlxr_hf_config *c, char *err, size_t n) {
  return mlxr_hf_config_parse(json, strlen(json), true, c, err, n);
}

/* ---- 1. config ---- */

static void test_config(void) {
  char err[512];
  mlxr_hf_config a, b;
  const char *v4 =
      "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,"
      "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
      "\"vocab_size\":100,\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5,"
      "\"rope_theta\":500000.0,\"torch_dtype\":\"bfloat16\",\"head_dim\":null,"
      "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
      "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":64}}";
  const char *v5 =
      "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":128,"
      "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
      "\"vocab_size\":100,\"max_position_embeddings\":512,\"rms_norm_eps\":1e-5,"
      "\"dtype\":\"bfloat16\",\"rope_parameters\":{\"rope_theta\":500000.0,\"rope_type\":"
      "\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
      "\"original_max_position_embeddings\":64}}";
  CHECK(parse(v4, &a, err, sizeof err) == 0);
  CHECK(parse(v5, &b, err, sizeof err) == 0);
  CHECK(strcmp(a.hf_arch, "LlamaForCausalLM") == 0 && strcmp(a.dtype, "bfloat16") == 0);
  CHECK(strcmp(b.dtype, "bfloat16") == 0);
  CHECK(a.hidden_size == 64 && a.n_head == 4 && a.n_head_kv == 2 && a.head_dim == 16);
  CHECK(!a.head_dim_explicit && !b.head_dim_explicit);
  CHECK(a.rope_theta == 500000.0 && b.rope_theta == 500000.0);
  CHECK(a.rope_scaling == MLXR_ROPE_SCALING_LLAMA3 && b.rope_scaling == MLXR_ROPE_SCALING_LLAMA3);
  CHECK(a.rope_factor == 8.0 && b.rope_factor == 8.0 && a.rope_orig_ctx == 64 &&
        b.rope_orig_ctx == 64);
  CHECK(a.high_freq_factor == 4.0 && b.low_freq_factor == 1.0);
  CHECK(!a.tie_explicit && !a.tie_word_embeddings);

  /* Defaults and an explicit head_dim. */
  CHECK(parse("{\"hidden_size\":64,\"intermediate_size\":8,\"num_hidden_layers\":1,"
              "\"num_attention_heads\":4,\"vocab_size\":10,\"head_dim\":32,"
              "\"tie_word_embeddings\":true,\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}",
              &a, err, sizeof err) == 0);
  CHECK(a.n_head_kv == 4 && a.head_dim == 32 && a.head_dim_explicit);
  CHECK(a.tie_explicit && a.tie_word_embeddings && a.rope_theta == 10000.0);
  CHECK(a.rope_scaling == MLXR_ROPE_SCALING_LINEAR && a.rope_factor == 2.0);

  static const struct {
    const char *json, *needle;
  } bad[] = {
      {"{\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
       "\"vocab_size\":10}",
       "hidden_size"},
      {"{\"hidden_size\":\"64\",\"intermediate_size\":8,\"num_hidden_layers\":1,"
       "\"num_attention_heads\":4,\"vocab_size\":10}",
       "hidden_size"},
      {"{\"hidden_size\":64,\"intermediate_size\":8.5,\"num_hidden_layers\":1,"
       "\"num_attention_heads\":4,\"vocab_size\":10}",
       "intermediate_size"},
      {"{\"hidden_size\":64,\"intermediate_size\":8,\"num_hidden_layers\":1,"
       "\"num_attention_heads\":4,\"num_key_value_heads\":3,\"vocab_size\":10}",
       "num_key_value_heads"},
      {"{\"hidden_size\":64,\"intermediate_size\":8,\"num_hidden_layers\":1,"
       "\"num_attention_heads\":4,\"vocab_size\":10,\"rope_scaling\":{\"rope_type\":\"dynamic\","
       "\"factor\":2}}",
       "dynamic"},
      {"{\"hidden_size\":64,\"intermediate_size\":8,\"num_hidden_layers\":1,"
       "\"num_attention_heads\":4,\"vocab_size\":10,\"rope_parameters\":{\"rope_type\":\"yarn\","
       "\"factor\":2}}",
       "original_max_position_embeddings"},
      {"{\"hidden_size\":64,\"intermediate_size\":8,\"num_hidden_layers\":1,"
       "\"num_attention_heads\":4,\"vocab_size\":10,\"tie_word_embeddings\":1}",
       "tie_word_embeddings"},
      {"{\"hidden_size\":64,", "JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    int rc = parse(bad[i].json, &a, err, sizeof err);
    CHECK(rc < 0);
    if (!strstr(err, bad[i].needle)) {
      fprintf(stderr, "  bad config %zu: message \"%s\" lacks \"%s\"\n", i, err, bad[i].needle);
      g_failures++;
    }
  }
}

/* ---- 2. plan ---- */

static const mlxr_conv_tensor *find_plan(const mlxr_conv_tensor *p, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(p[i].name, name) == 0) return &p[i];
  return NULL;
}

static void test_plan(void) {
  char err[256];
  mlxr_hf_config c;
  CHECK(parse("{\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":2,"
              "\"num_attention_heads\":8,\"num_key_value_heads\":2,\"vocab_size\":50}",
              &c, err, sizeof err) == 0);
  mlxr_conv_tensor *p = NULL;
  size_t n = 0;
  const mlxr_convert_arch *llama = mlxr_convert_arch_find("LlamaForCausalLM");
  const mlxr_convert_arch *mistral = mlxr_convert_arch_find("MistralForCausalLM");
  const mlxr_convert_arch *qwen2 = mlxr_convert_arch_find("Qwen2ForCausalLM");
  const mlxr_convert_arch *qwen3 = mlxr_convert_arch_find("Qwen3ForCausalLM");
  CHECK(llama && mistral && qwen2 && qwen3 && !mlxr_convert_arch_find("GPT2LMHeadModel"));
  CHECK(strcmp(mistral->gguf_arch, "llama") == 0 && mistral->permute_qk);

  CHECK(mlxr_convert_plan(llama, &c, true, &p, &n, err, sizeof err) == 0);
  CHECK(n == 1 + 2 * 9 + 2);
  const mlxr_conv_tensor *t = find_plan(p, n, "blk.1.attn_q.weight");
  CHECK(t && strcmp(t->hf_name, "model.layers.1.self_attn.q_proj.weight") == 0 &&
        t->ne[0] == 64 && t->ne[1] == 64 && t->permute_heads == 8);
  t = find_plan(p, n, "blk.0.attn_k.weight");
  CHECK(t && t->ne[0] == 64 && t->ne[1] == 16 && t->permute_heads == 2);
  t = find_plan(p, n, "blk.0.attn_v.weight");
  CHECK(t && t->permute_heads == 0);
  t = find_plan(p, n, "blk.0.ffn_down.weight");
  CHECK(t && t->ne[0] == 96 && t->ne[1] == 64);
  t = find_plan(p, n, "output.weight");
  CHECK(t && strcmp(t->hf_name, "lm_head.weight") == 0 && t->ne[1] == 50);
  CHECK(find_plan(p, n, "rope_freqs.weight") == NULL);
  free(p);

  CHECK(mlxr_convert_plan(qwen2, &c, false, &p, &n, err, sizeof err) == 0);
  CHECK(find_plan(p, n, "output.weight") == NULL);
  t = find_plan(p, n, "blk.1.attn_k.bias");
  CHECK(t && t->n_dims == 1 && t->ne[0] == 16 && t->permute_heads == 0);
  t = find_plan(p, n, "blk.1.attn_q.weight");
  CHECK(t && t->permute_heads == 0);
  free(p);

  CHECK(mlxr_convert_plan(qwen3, &c, true, &p, &n, err, sizeof err) == 0);
  t = find_plan(p, n, "blk.0.attn_q_norm.weight");
  CHECK(t && t->ne[0] == 8 && find_plan(p, n, "blk.0.attn_q.bias") == NULL);
  free(p);

  CHECK(parse("{\"hidden_size\":64,\"intermediate_size\":96,\"num_hidden_layers\":1,"
              "\"num_attention_heads\":4,\"vocab_size\":50,\"rope_theta\":500000,"
              "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":1,"
              "\"high_freq_factor\":4,\"original_max_position_embeddings\":64}}",
              &c, err, sizeof err) == 0);
  CHECK(mlxr_convert_plan(llama, &c, true, &p, &n, err, sizeof err) == 0);
  t = find_plan(p, n, "rope_freqs.weight");
  CHECK(t && t->n_dims == 1 && t->ne[0] == 8 && t->source == MLXR_CONV_SRC_ROPE_FREQS);
  free(p);

  float f[8];
  mlxr_convert_llama3_rope_factors(&c, f);
  CHECK(f[0] == 1.0f && f[7] == 8.0f);
  bool mid = false;
  for (int i = 1; i < 8; i++) {
    CHECK(f[i] >= f[i - 1] && f[i] >= 1.0f && f[i] <= 8.0f);
    if (f[i] > 1.0f && f[i] < 8.0f) mid = true;
  }
  CHECK(mid);
}

/* ---- 3. end to end ---- */

enum { H = 32, NH = 4, NKV = 2, HD = 8, FF = 64 };

typedef struct st_entry {
  const char *name;
  int64_t rows, cols; /* cols == 0: 1-D of rows elements */
  float base;         /* values are base + flat index */
} st_entry;

static const st_entry k_tensors[] = {
    {"model.embed_tokens.weight", -1, H, 100000.0f},
    {"model.layers.0.input_layernorm.weight", H, 0, 1000.0f},
    {"model.layers.0.self_attn.q_proj.weight", NH * HD, H, 2000.0f},
    {"model.layers.0.self_attn.k_proj.weight", NKV * HD, H, 3000.0f},
    {"model.layers.0.self_attn.v_proj.weight", NKV * HD, H, 4000.0f},
    {"model.layers.0.self_attn.o_proj.weight", H, NH * HD, 5000.0f},
    {"model.layers.0.post_attention_layernorm.weight", H, 0, 6000.0f},
    {"model.layers.0.mlp.gate_proj.weight", FF, H, 7000.0f},
    {"model.layers.0.mlp.up_proj.weight", FF, H, 8000.0f},
    {"model.layers.0.mlp.down_proj.weight", H, FF, 9000.0f},
    {"model.norm.weight", H, 0, 10000.0f},
    {"lm_head.weight", -1, H, 200000.0f},
};

static int64_t entry_rows(const st_entry *e, int64_t vocab) { return e->rows < 0 ? vocab : e->rows; }

static bool write_file(const char *path, const void *d, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(d, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

static bool copy_file(const char *from, const char *to) {
  FILE *f = fopen(from, "rb");
  if (!f) return false;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n);
  bool ok = buf && fread(buf, 1, (size_t)n, f) == (size_t)n;
  fclose(f);
  ok = ok && write_file(to, buf, (size_t)n);
  free(buf);
  return ok;
}

/* Safetensors assembled from the format description: u64 LE header size, JSON, f32 data. A
 * shape override for one tensor makes a mismatching checkpoint. */
static bool write_checkpoint(const char *path, int64_t vocab, const char *bad_name) {
  size_t n_t = sizeof k_tensors / sizeof k_tensors[0];
  char *hdr = malloc(1 << 16);
  size_t hl = 0, data_bytes = 0;
  hl += (size_t)snprintf(hdr + hl, (1 << 16) - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = 0; i < n_t; i++) {
    const st_entry *e = &k_tensors[i];
    int64_t rows = entry_rows(e, vocab);
    if (bad_name && strcmp(bad_name, e->name) == 0) rows += 2;
    size_t nb = (size_t)(rows * (e->cols ? e->cols : 1)) * 4;
    if (e->cols)
      hl += (size_t)snprintf(hdr + hl, (1 << 16) - hl,
                             ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":"
                             "[%zu,%zu]}",
                             e->name, (long long)rows, (long long)e->cols, data_bytes,
                             data_bytes + nb);
    else
      hl += (size_t)snprintf(hdr + hl, (1 << 16) - hl,
                             ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld],\"data_offsets\":"
                             "[%zu,%zu]}",
                             e->name, (long long)rows, data_bytes, data_bytes + nb);
    data_bytes += nb;
  }
  hl += (size_t)snprintf(hdr + hl, (1 << 16) - hl, "}");
  while (hl % 8) hdr[hl++] = ' ';
  FILE *f = fopen(path, "wb");
  if (!f) {
    free(hdr);
    return false;
  }
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  bool ok = fwrite(len, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
  for (size_t i = 0; i < n_t && ok; i++) {
    const st_entry *e = &k_tensors[i];
    int64_t rows = entry_rows(e, vocab);
    if (bad_name && strcmp(bad_name, e->name) == 0) rows += 2;
    int64_t cnt = rows * (e->cols ? e->cols : 1);
    for (int64_t k = 0; k < cnt && ok; k++) {
      float v = e->base + (float)k;
      ok = fwrite(&v, 4, 1, f) == 1;
    }
  }
  ok = (fclose(f) == 0) && ok;
  free(hdr);
  return ok;
}

/* HF row of each GGUF row of a permuted [n_head*hd, ...] tensor, by enumerating the reshape
 * (n_head, 2, hd/2) -> swapaxes(1, 2) -> (n_head, hd/2, 2) element by element. */
static void permute_rows(int64_t n_head, int64_t hd, int64_t *out) {
  int64_t src[64][2][32];
  for (int64_t h = 0, r = 0; h < n_head; h++)
    for (int64_t k = 0; k < 2; k++)
      for (int64_t j = 0; j < hd / 2; j++) src[h][k][j] = r++;
  int64_t o = 0;
  for (int64_t h = 0; h < n_head; h++)
    for (int64_t j = 0; j < hd / 2; j++)
      for (int64_t k = 0; k < 2; k++) out[o++] = src[h][k][j];
}

static float tensor_f32(const mlxr_gguf_tensor *t, int64_t i) {
  float v;
  memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
  return v;
}

static void test_end_to_end(void) {
  const char *src_root = getenv("MLXR_SRC");
  char dir[256], path[512], out[512], fixture[512];
  snprintf(dir, sizeof dir, "/tmp/mlxr-test-convert-%ld", (long)getpid());
  mkdir(dir, 0700);
  snprintf(fixture, sizeof fixture, "%s/tests/fixtures/hf/llama_untied/tokenizer.json",
           src_root ? src_root : ".");
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  if (!copy_file(fixture, path)) {
    fprintf(stderr, "cannot copy %s\n", fixture);
    g_failures++;
    return;
  }
  snprintf(fixture, sizeof fixture, "%s/tests/fixtures/hf/llama_untied/tokenizer_config.json",
           src_root ? src_root : ".");
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  CHECK(copy_file(fixture, path));
  const int64_t vocab = 480; /* the fixture tokenizer's token count */
  char cfg[1024];
  int cl = snprintf(cfg, sizeof cfg,
                    "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":%d,"
                    "\"intermediate_size\":%d,\"num_hidden_layers\":1,\"num_attention_heads\":%d,"
                    "\"num_key_value_heads\":%d,\"vocab_size\":%lld,\"max_position_embeddings\":"
                    "777,\"rms_norm_eps\":1e-05,\"rope_theta\":12345.0,\"rope_scaling\":{\"type\":"
                    "\"linear\",\"factor\":4.0},\"tie_word_embeddings\":false}",
                    H, FF, NH, NKV, (long long)vocab);
  snprintf(path, sizeof path, "%s/config.json", dir);
  CHECK(write_file(path, cfg, (size_t)cl));
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  CHECK(write_checkpoint(path, vocab, NULL));

  snprintf(out, sizeof out, "%s/out.gguf", dir);
  mlxr_convert_params p = mlxr_convert_default_params();
  p.hf_dir = dir;
  p.out_path = out;
  p.out_type = MLXR_DTYPE_F32;
  char err[512] = "";
  mlxr_convert_stats st;
  int rc = mlxr_convert_hf(&p, &st, err, sizeof err);
  if (rc != 0) fprintf(stderr, "convert: %s\n", err);
  CHECK(rc == 0 && st.n_tensors == 12 && st.file_type == 0);

  mlxr_gguf *g = NULL;
  if (rc == 0 && mlxr_gguf_open(out, &g, err, sizeof err) == 0) {
    CHECK(mlxr_gguf_n_tensors(g) == 12);
    const char *arch = mlxr_gguf_get_str(g, "general.architecture", NULL);
    CHECK(arch && strcmp(arch, "llama") == 0);
    uint64_t u = 0;
    double d = 0;
    CHECK(mlxr_gguf_get_uint(g, "llama.context_length", &u) && u == 777);
    CHECK(mlxr_gguf_get_uint(g, "llama.embedding_length", &u) && u == H);
    CHECK(mlxr_gguf_get_uint(g, "llama.feed_forward_length", &u) && u == FF);
    CHECK(mlxr_gguf_get_uint(g, "llama.attention.head_count", &u) && u == NH);
    CHECK(mlxr_gguf_get_uint(g, "llama.attention.head_count_kv", &u) && u == NKV);
    CHECK(mlxr_gguf_get_uint(g, "llama.block_count", &u) && u == 1);
    CHECK(mlxr_gguf_get_uint(g, "llama.rope.dimension_count", &u) && u == HD);
    CHECK(mlxr_gguf_get_uint(g, "llama.vocab_size", &u) && u == (uint64_t)vocab);
    CHECK(mlxr_gguf_get_uint(g, "general.quantization_version", &u) && u == 2);
    CHECK(mlxr_gguf_get_float(g, "llama.rope.freq_base", &d) && d == 12345.0);
    CHECK(mlxr_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &d) &&
          fabs(d - 1e-5) < 1e-12);
    CHECK(mlxr_gguf_get_float(g, "llama.rope.scaling.factor", &d) && d == 4.0);
    const char *rs = mlxr_gguf_get_str(g, "llama.rope.scaling.type", NULL);
    CHECK(rs && strcmp(rs, "linear") == 0);
    CHECK(mlxr_gguf_find_key(g, "llama.attention.key_length") < 0);
    const char *nm = mlxr_gguf_get_str(g, "general.name", NULL);
    CHECK(nm && strncmp(nm, "mlxr-test-convert-", 18) == 0);
    CHECK(mlxr_gguf_find_key(g, "tokenizer.ggml.tokens") >= 0);

    static const struct {
      const char *gguf, *hf;
      int64_t perm_heads;
    } map[] = {
        {"token_embd.weight", "model.embed_tokens.weight", 0},
        {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", 0},
        {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", NH},
        {"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", NKV},
        {"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", 0},
        {"blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight", 0},
        {"blk.0.ffn_norm.weight", "model.layers.0.post_attention_layernorm.weight", 0},
        {"blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight", 0},
        {"blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight", 0},
        {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", 0},
        {"output_norm.weight", "model.norm.weight", 0},
        {"output.weight", "lm_head.weight", 0},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
      const mlxr_gguf_tensor *t = mlxr_gguf_find_tensor(g, map[i].gguf);
      const st_entry *e = NULL;
      for (size_t k = 0; k < sizeof k_tensors / sizeof k_tensors[0]; k++)
        if (strcmp(k_tensors[k].name, map[i].hf) == 0) e = &k_tensors[k];
      if (!t || !e) {
        fprintf(stderr, "  missing %s\n", map[i].gguf);
        g_failures++;
        continue;
      }
      CHECK(t->type == MLXR_DTYPE_F32);
      const int64_t rows = entry_rows(e, vocab), cols = e->cols ? e->cols : 1;
      if (e->cols) {
        CHECK(t->n_dims == 2 && t->ne[0] == e->cols && t->ne[1] == rows);
      } else {
        CHECK(t->n_dims == 1 && t->ne[0] == rows);
      }
      int64_t order[64];
      if (map[i].perm_heads) permute_rows(map[i].perm_heads, HD, order);
      int bad = 0;
      for (int64_t r = 0; r < rows; r++) {
        const int64_t sr = map[i].perm_heads ? order[r] : r;
        for (int64_t c = 0; c < cols; c++)
          if (tensor_f32(t, r * cols + c) != e->base + (float)(sr * cols + c)) bad++;
      }
      if (bad) {
        fprintf(stderr, "  %s: %d values out of place\n", map[i].gguf, bad);
        g_failures++;
      }
    }
    mlxr_gguf_close(g);
  } else {
    CHECK(!"converted file does not open");
  }

  /* q8_0: every 2-D tensor has rows of 32 or 64, so all become q8_0; 1-D stay f32. */
  p.out_type = MLXR_DTYPE_Q8_0;
  rc = mlxr_convert_hf(&p, &st, err, sizeof err);
  CHECK(rc == 0 && st.file_type == 7 && st.n_fallback == 0);
  if (rc == 0 && mlxr_gguf_open(out, &g, err, sizeof err) == 0) {
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
      const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
      CHECK(t->type == (t->n_dims == 2 ? MLXR_DTYPE_Q8_0 : MLXR_DTYPE_F32));
    }
    mlxr_gguf_close(g);
  }
  unlink(out);

  /* A shape mismatch is an error naming the tensor; nothing is written. */
  CHECK(write_checkpoint(path, vocab, "model.layers.0.mlp.up_proj.weight"));
  err[0] = '\0';
  rc = mlxr_convert_hf(&p, &st, err, sizeof err);
  CHECK(rc < 0 && strstr(err, "up_proj") != NULL);
  CHECK(access(out, F_OK) != 0);
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", out);
  CHECK(access(tmp, F_OK) != 0);

  static const char *files[] = {"config.json", "model.safetensors", "tokenizer.json",
                                "tokenizer_config.json"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

/* ---- 4. quantize type rules ---- */

static void test_quant_rules(void) {
  mlxr_quant_scheme s;
  CHECK(mlxr_quantize_parse_type("Q4_K_M", &s) && s.mix == MLXR_QUANT_MIX_Q4_K_M &&
        s.file_type == 15);
  CHECK(mlxr_quantize_parse_type("q8_0", &s) && s.base == MLXR_DTYPE_Q8_0 && s.file_type == 7);
  CHECK(!mlxr_quantize_parse_type("q9_0", &s));
  CHECK(mlxr_quantize_tensor_allowed("blk.0.attn_q.weight", 2));
  CHECK(!mlxr_quantize_tensor_allowed("blk.0.attn_norm.weight", 2));
  CHECK(!mlxr_quantize_tensor_allowed("blk.0.attn_q.bias", 2));
  CHECK(!mlxr_quantize_tensor_allowed("rope_freqs.weight", 1));

  mlxr_quant_state st;
  memset(&st, 0, sizeof st);
  mlxr_quantize_parse_type("q4_K", &s);
  CHECK(mlxr_quantize_pick_type(&s, &st, "blk.0.ffn_up.weight", 2, 512, MLXR_DTYPE_F16) ==
        MLXR_DTYPE_Q4_K);
  CHECK(mlxr_quantize_pick_type(&s, &st, "blk.0.ffn_up.weight", 2, 96, MLXR_DTYPE_F16) ==
        MLXR_DTYPE_Q5_0);
  CHECK(mlxr_quantize_pick_type(&s, &st, "blk.0.ffn_up.weight", 2, 80, MLXR_DTYPE_F16) ==
        MLXR_DTYPE_F16);
  CHECK(mlxr_quantize_pick_type(&s, &st, "blk.0.ffn_norm.weight", 1, 512, MLXR_DTYPE_F32) ==
        MLXR_DTYPE_F32);
  CHECK(st.n_fallback == 2);
  mlxr_quantize_parse_type("q6_K", &s);
  CHECK(mlxr_quantize_pick_type(&s, &st, "output.weight", 2, 96, MLXR_DTYPE_F16) ==
        MLXR_DTYPE_Q8_0);
  mlxr_quantize_parse_type("q4_K_M", &s);
  memset(&st, 0, sizeof st);
  CHECK(mlxr_quantize_pick_type(&s, &st, "output.weight", 2, 512, MLXR_DTYPE_F16) ==
        MLXR_DTYPE_Q6_K);
  CHECK(mlxr_quantize_pick_type(&s, &st, "token_embd.weight", 2, 512, MLXR_DTYPE_F16) ==
        MLXR_DTYPE_Q4_K);
  st.tied = true;
  CHECK(mlxr_quantize_pick_type(&s, &st, "token_embd.weight", 2, 512, MLXR_DTYPE_F16) ==
        MLXR_DTYPE_Q6_K);
}

int main(void) {
  test_config();
  test_plan();
  test_end_to_end();
  test_quant_rules();
  if (g_failures) {
    fprintf(stderr, "test_convert_model: %d failure(s)\n", g_failures);
    return 1;
  }
  printf("test_convert_model: ok\n");
  return 0;
}
