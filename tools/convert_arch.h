/*
 * convert_arch.h: per-architecture knowledge of the HF -> GGUF converter.
 *
 * An architecture entry says which GGUF architecture name an HF class becomes and what its
 * attention block carries (Q/K permutation for NORM-style rope, q/k/v biases, q/k norms).
 * mlxr_convert_plan() turns an entry plus a parsed config.json into the list of output tensors,
 * each with the HF tensor it comes from, the shape it must have and how its rows are reordered.
 * Tensor names follow llama.cpp's gguf-py tensor_mapping.py.
 */
#ifndef MLXR_TOOLS_CONVERT_ARCH_H
#define MLXR_TOOLS_CONVERT_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/hf_config.h"

typedef struct mlxr_convert_arch {
  const char *hf_arch;   /* config.json architectures[0] */
  const char *gguf_arch; /* general.architecture */
  bool permute_qk;       /* llama: Q/K rows from HF half-split rope order to interleaved pairs */
  int qkv_bias;          /* 0 never, 1 always (qwen2), 2 when config.attention_bias (llama) */
  bool qk_norm;          /* qwen3: per-head RMSNorm weights on q and k */
} mlxr_convert_arch;

/* Entry for an HF architecture name, NULL if unsupported. */
const mlxr_convert_arch *mlxr_convert_arch_find(const char *hf_arch);
/* Comma-separated list of supported HF architecture names (for error messages). */
const char *mlxr_convert_arch_supported(void);

typedef enum mlxr_conv_source {
  MLXR_CONV_SRC_TENSOR = 0, /* rows of an HF tensor */
  MLXR_CONV_SRC_ROPE_FREQS, /* computed from config (llama3 rope scaling) */
} mlxr_conv_source;

typedef struct mlxr_conv_tensor {
  char name[64];      /* GGUF name */
  char hf_name[96];   /* HF tensor name (for MLXR_CONV_SRC_TENSOR) */
  mlxr_conv_source source;
  int n_dims;         /* 1 or 2 */
  int64_t ne[2];      /* GGUF order: ne[0] = HF shape[last] (row length), ne[1] = HF rows */
  int64_t permute_heads; /* > 0: rows are permuted as llama.cpp's LlamaModel.permute(w, n) */
} mlxr_conv_tensor;

/* Build the output plan. has_lm_head says whether the checkpoint holds lm_head.weight; the
 * output tensor is planned when the embeddings are not tied (see convert_model.c for the rule).
 * On success *out is a malloc'd array of *n entries. */
int mlxr_convert_plan(const mlxr_convert_arch *arch, const mlxr_hf_config *cfg, bool want_output,
                      mlxr_conv_tensor **out, size_t *n, char *err, size_t err_len);

/* True for HF tensors that carry nothing the GGUF needs (rotary_emb.inv_freq buffers). */
bool mlxr_convert_ignorable(const char *hf_name);

/* Llama-3 rope frequency factors, as llama.cpp's LlamaModel.generate_extra_tensors computes them:
 * out[i] for i < head_dim/2 is the divisor applied to frequency theta^(-2i/head_dim). */
void mlxr_convert_llama3_rope_factors(const mlxr_hf_config *cfg, float *out);

#endif
