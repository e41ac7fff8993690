/*
 * hf_config.h: the parts of a Hugging Face config.json that the converter needs.
 *
 * Both forms that transformers writes are accepted: v4 (top-level rope_theta and a rope_scaling
 * object keyed by "rope_type" or the older "type") and v5 (a rope_parameters object that holds
 * rope_theta, rope_type and the scaling fields; when it is keyed per attention kind, the
 * "full_attention" entry is used, as llama.cpp does). Defaults follow transformers' config classes
 * for the supported architectures: num_key_value_heads = num_attention_heads, head_dim =
 * hidden_size / num_attention_heads, rope_theta 10000, rms_norm_eps 1e-6 (Llama's own default;
 * every real checkpoint states it).
 *
 * Values are checked: integers must be integral, positive and small enough that products of them
 * cannot overflow; heads must divide evenly. A missing required key or a bad value gives an error
 * naming the key.
 */
#ifndef MLXR_TOOLS_HF_CONFIG_H
#define MLXR_TOOLS_HF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mlxr_rope_scaling {
  MLXR_ROPE_SCALING_NONE = 0, /* absent or "default" */
  MLXR_ROPE_SCALING_LINEAR,   /* positions divided by factor */
  MLXR_ROPE_SCALING_YARN,
  MLXR_ROPE_SCALING_LLAMA3,   /* per-frequency factors -> rope_freqs tensor */
} mlxr_rope_scaling;

typedef struct mlxr_hf_config {
  char hf_arch[128];    /* architectures[0], e.g. "LlamaForCausalLM"; "" if absent */
  char model_type[64];  /* "llama", "qwen2", ...; "" if absent */
  char dtype[32];       /* torch_dtype (v4) or dtype (v5); "" if absent */

  int64_t hidden_size;             /* n_embd */
  int64_t intermediate_size;       /* n_ff */
  int64_t n_layer;                 /* num_hidden_layers */
  int64_t n_head;                  /* num_attention_heads */
  int64_t n_head_kv;               /* num_key_value_heads (default n_head) */
  int64_t head_dim;                /* explicit head_dim, else hidden_size / n_head */
  bool head_dim_explicit;          /* head_dim was present (non-null) in the file */
  int64_t max_position_embeddings; /* 0 if absent */
  int64_t vocab_size;              /* 0 if absent */
  double rms_norm_eps;
  double rope_theta;
  bool tie_word_embeddings;   /* value if tie_explicit, else false (the classes' default) */
  bool tie_explicit;          /* the key was present */
  bool attention_bias;        /* Llama's attention_bias (q/k/v/o biases) */
  bool mlp_bias;              /* Llama's mlp_bias */

  mlxr_rope_scaling rope_scaling;
  char rope_type[32];         /* as written ("" if none) */
  double rope_factor;         /* linear / yarn / llama3 factor (0 if absent) */
  double low_freq_factor;     /* llama3 (default 1) */
  double high_freq_factor;    /* llama3 (default 4) */
  int64_t rope_orig_ctx;      /* original_max_position_embeddings, 0 if absent */
  bool has_yarn_ext_factor, has_yarn_attn_factor, has_yarn_beta_fast, has_yarn_beta_slow;
  double yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
} mlxr_hf_config;

/* Parse len bytes of config.json text. need_model: require the model-shape keys (hidden_size,
 * intermediate_size, num_hidden_layers, num_attention_heads, vocab_size); false parses only what
 * is present (used by --vocab-only). */
int mlxr_hf_config_parse(const char *json, size_t len, bool need_model, mlxr_hf_config *cfg,
                         char *err, size_t err_len);

/* Read and parse dir/config.json. Returns MLXR_ERR_NOT_FOUND if the file does not exist. */
int mlxr_hf_config_load(const char *dir, bool need_model, mlxr_hf_config *cfg, char *err,
                        size_t err_len);

/* Read a whole small file (config/tokenizer JSON) into a malloc'd NUL-terminated buffer. Fails
 * above max_bytes. */
int mlxr_hf_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, char *err,
                      size_t err_len);

#endif
