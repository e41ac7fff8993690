/*
 * convert_arch.c: the architecture table and tensor plan of the HF -> GGUF converter.
 *
 * Names and layouts follow llama.cpp (convert_hf_to_gguf.py's LlamaModel / Qwen2Model /
 * Qwen3Model and gguf-py's tensor_mapping.py):
 *   model.embed_tokens.weight                    -> token_embd.weight
 *   model.layers.N.input_layernorm.weight        -> blk.N.attn_norm.weight
 *   model.layers.N.self_attn.{q,k,v,o}_proj.*    -> blk.N.attn_{q,k,v,output}.*
 *   model.layers.N.self_attn.{q,k}_norm.weight   -> blk.N.attn_{q,k}_norm.weight
 *   model.layers.N.post_attention_layernorm.weight -> blk.N.ffn_norm.weight
 *   model.layers.N.mlp.{gate,up,down}_proj.weight  -> blk.N.ffn_{gate,up,down}.weight
 *   model.norm.weight -> output_norm.weight;  lm_head.weight -> output.weight
 * A PyTorch [out, in] weight is stored with ggml ne = [in, out]: the same bytes.
 *
 * Arch "llama" applies RoPE to interleaved pairs (x[2i], x[2i+1]) while HF Llama rotates halves
 * (x[i], x[i+d/2]); llama.cpp therefore permutes the rows of q_proj (with n_head) and k_proj
 * (with n_head_kv) so that row h*d + 2j + k of the GGUF tensor is row h*d + k*(d/2) + j of the
 * HF tensor. Qwen2/Qwen3 use NEOX-style rope in llama.cpp and are stored unpermuted.
 */
#include "tools/convert_arch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"

static const mlxr_convert_arch k_archs[] = {
    {"LlamaForCausalLM", "llama", true, 2, false},
    {"MistralForCausalLM", "llama", true, 2, false},
    {"Qwen2ForCausalLM", "qwen2", false, 1, false},
    {"Qwen3ForCausalLM", "qwen3", false, 0, true},
};

const mlxr_convert_arch *mlxr_convert_arch_find(const char *hf_arch) {
  if (!hf_arch) return NULL;
  for (size_t i = 0; i < sizeof k_archs / sizeof k_archs[0]; i++)
    if (strcmp(k_archs[i].hf_arch, hf_arch) == 0) return &k_archs[i];
  return NULL;
}

const char *mlxr_convert_arch_supported(void) {
  return "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM";
}

bool mlxr_convert_ignorable(const char *hf_name) {
  size_t n = strlen(hf_name);
  const char *suffix = "rotary_emb.inv_freq";
  size_t m = strlen(suffix);
  return n >= m && strcmp(hf_name + n - m, suffix) == 0;
}

typedef struct plan_builder {
  mlxr_conv_tensor *items;
  size_t n, cap;
  bool oom; /* an add failed; later adds do nothing and the plan is discarded */
} plan_builder;

static void plan_add(plan_builder *b, const char *name, const char *hf_name, mlxr_conv_source src,
                    int n_dims, int64_t ne0, int64_t ne1, int64_t permute_heads) {
  if (b->oom) return;
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    mlxr_conv_tensor *p = realloc(b->items, cap * sizeof *p);
    if (!p) {
      b->oom = true;
      return;
    }
    b->items = p;
    b->cap = cap;
  }
  mlxr_conv_tensor *t = &b->items[b->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  snprintf(t->hf_name, sizeof t->hf_name, "%s", hf_name ? hf_name : "");
  t->source = src;
  t->n_dims = n_dims;
  t->ne[0] = ne0;
  t->ne[1] = n_dims == 2 ? ne1 : 1;
  t->permute_heads = permute_heads;
}

int mlxr_convert_plan(const mlxr_convert_arch *arch, const mlxr_hf_config *cfg, bool want_output,
                      mlxr_conv_tensor **out, size_t *n_out, char *err, size_t err_len) {
  *out = NULL;
  *n_out = 0;
  const int64_t n_embd = cfg->hidden_size, n_ff = cfg->intermediate_size;
  const int64_t hd = cfg->head_dim, nh = cfg->n_head, nkv = cfg->n_head_kv;
  const int64_t q_dim = nh * hd, kv_dim = nkv * hd;
  const bool bias = arch->qkv_bias == 1 || (arch->qkv_bias == 2 && cfg->attention_bias);
  if (cfg->mlp_bias)
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "config.json: mlp_bias = true is not supported");

  plan_builder b = {0};
  char name[64], hf[96];

  plan_add(&b, "token_embd.weight", "model.embed_tokens.weight", MLXR_CONV_SRC_TENSOR, 2, n_embd,
      cfg->vocab_size, 0);
  if (cfg->rope_scaling == MLXR_ROPE_SCALING_LLAMA3)
    plan_add(&b, "rope_freqs.weight", NULL, MLXR_CONV_SRC_ROPE_FREQS, 1, hd / 2, 1, 0);

  for (int64_t l = 0; l < cfg->n_layer; l++) {
    const long long L = (long long)l;
    snprintf(name, sizeof name, "blk.%lld.attn_norm.weight", L);
    snprintf(hf, sizeof hf, "model.layers.%lld.input_layernorm.weight", L);
    plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 1, n_embd, 1, 0);

    static const char *const qkv[3] = {"q", "k", "v"};
    for (int j = 0; j < 3; j++) {
      const int64_t rows = j == 0 ? q_dim : kv_dim;
      const int64_t perm = !arch->permute_qk ? 0 : j == 0 ? nh : j == 1 ? nkv : 0;
      snprintf(name, sizeof name, "blk.%lld.attn_%s.weight", L, qkv[j]);
      snprintf(hf, sizeof hf, "model.layers.%lld.self_attn.%s_proj.weight", L, qkv[j]);
      plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 2, n_embd, rows, perm);
      if (bias) {
        snprintf(name, sizeof name, "blk.%lld.attn_%s.bias", L, qkv[j]);
        snprintf(hf, sizeof hf, "model.layers.%lld.self_attn.%s_proj.bias", L, qkv[j]);
        plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 1, rows, 1, perm);
      }
    }
    if (arch->qk_norm) {
      snprintf(name, sizeof name, "blk.%lld.attn_q_norm.weight", L);
      snprintf(hf, sizeof hf, "model.layers.%lld.self_attn.q_norm.weight", L);
      plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 1, hd, 1, 0);
      snprintf(name, sizeof name, "blk.%lld.attn_k_norm.weight", L);
      snprintf(hf, sizeof hf, "model.layers.%lld.self_attn.k_norm.weight", L);
      plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 1, hd, 1, 0);
    }
    snprintf(name, sizeof name, "blk.%lld.attn_output.weight", L);
    snprintf(hf, sizeof hf, "model.layers.%lld.self_attn.o_proj.weight", L);
    plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 2, q_dim, n_embd, 0);
    if (arch->qkv_bias == 2 && cfg->attention_bias) {
      snprintf(name, sizeof name, "blk.%lld.attn_output.bias", L);
      snprintf(hf, sizeof hf, "model.layers.%lld.self_attn.o_proj.bias", L);
      plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 1, n_embd, 1, 0);
    }

    snprintf(name, sizeof name, "blk.%lld.ffn_norm.weight", L);
    snprintf(hf, sizeof hf, "model.layers.%lld.post_attention_layernorm.weight", L);
    plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 1, n_embd, 1, 0);
    snprintf(name, sizeof name, "blk.%lld.ffn_gate.weight", L);
    snprintf(hf, sizeof hf, "model.layers.%lld.mlp.gate_proj.weight", L);
    plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 2, n_embd, n_ff, 0);
    snprintf(name, sizeof name, "blk.%lld.ffn_up.weight", L);
    snprintf(hf, sizeof hf, "model.layers.%lld.mlp.up_proj.weight", L);
    plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 2, n_embd, n_ff, 0);
    snprintf(name, sizeof name, "blk.%lld.ffn_down.weight", L);
    snprintf(hf, sizeof hf, "model.layers.%lld.mlp.down_proj.weight", L);
    plan_add(&b, name, hf, MLXR_CONV_SRC_TENSOR, 2, n_ff, n_embd, 0);
  }
  plan_add(&b, "output_norm.weight", "model.norm.weight", MLXR_CONV_SRC_TENSOR, 1, n_embd, 1, 0);
  if (want_output)
    plan_add(&b, "output.weight", "lm_head.weight", MLXR_CONV_SRC_TENSOR, 2, n_embd, cfg->vocab_size, 0);

  if (b.oom) {
    free(b.items);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory building the tensor plan");
  }
  *out = b.items;
  *n_out = b.n;
  return MLXR_OK;
}

void mlxr_convert_llama3_rope_factors(const mlxr_hf_config *cfg, float *out) {
  /* llama.cpp: freqs = 1 / base^(arange(0, dim, 2) / dim); wavelen = 2*pi / freq;
   * wavelen < orig/high -> 1; wavelen > orig/low -> factor;
   * else smooth = (orig/wavelen - low) / (high - low), 1 / ((1 - smooth)/factor + smooth). */
  const int64_t dim = cfg->head_dim;
  const double base = cfg->rope_theta;
  const double factor = cfg->rope_factor;
  const double low = cfg->low_freq_factor, high = cfg->high_freq_factor;
  const double orig = cfg->rope_orig_ctx > 0 ? (double)cfg->rope_orig_ctx : 8192.0;
  const double low_freq_wavelen = orig / low;
  const double high_freq_wavelen = orig / high;
  for (int64_t i = 0; i < dim / 2; i++) {
    const double freq = 1.0 / pow(base, (double)(2 * i) / (double)dim);
    const double wavelen = 2.0 * M_PI / freq;
    double f;
    if (wavelen < high_freq_wavelen) {
      f = 1.0;
    } else if (wavelen > low_freq_wavelen) {
      f = factor;
    } else {
      const double smooth = (orig / wavelen - low) / (high - low);
      f = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    out[i] = (float)f;
  }
}
