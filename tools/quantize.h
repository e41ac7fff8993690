/*
 * quantize.h: GGUF -> GGUF requantization (`mlxr quantize IN OUT TYPE`).
 *
 * Every tensor that llama.cpp would quantize (2-D or higher, name ending in "weight", not a norm)
 * is dequantized to f32 with the kernels' to_float and quantized again with their from_float
 * (ggml's reference quantizers, so the output is what llama.cpp's own code would produce for the
 * same f32 values). All metadata is copied; general.file_type is updated. Other tensors are copied
 * byte for byte.
 *
 * TYPE is either a plain type, applied to every quantizable tensor (f32, f16, bf16, q8_0, q4_0,
 * q4_1, q5_0, q5_1, q4_K, q5_K, q6_K), or one of llama.cpp's mixes, which choose
 * per tensor as llama-quantize does: q4_K_S, q4_K_M, q5_K_S, q5_K_M (output.weight, or
 * token_embd.weight when the embeddings are tied, as Q6_K; some attn_v / ffn_down layers one
 * step up). When a row length is not a multiple of the chosen type's block size, the type falls
 * back as llama.cpp's tensor_type_fallback does (q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0,
 * then f16 if still not divisible).
 *
 * Work is split over rows between n_threads threads (pthreads); the caller's thread takes part.
 * The output is written through the GGUF writer (OUT.tmp renamed on success).
 */
#ifndef MLXR_TOOLS_QUANTIZE_H
#define MLXR_TOOLS_QUANTIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common/dtype.h"
#include "tools/convert.h"

typedef enum mlxr_quant_mix {
  MLXR_QUANT_MIX_NONE = 0, /* plain type everywhere */
  MLXR_QUANT_MIX_Q4_K_S,
  MLXR_QUANT_MIX_Q4_K_M,
  MLXR_QUANT_MIX_Q5_K_S,
  MLXR_QUANT_MIX_Q5_K_M,
} mlxr_quant_mix;

typedef struct mlxr_quant_scheme {
  mlxr_dtype base;    /* default type of quantizable tensors */
  mlxr_quant_mix mix;
  uint32_t file_type; /* general.file_type to write (llama_ftype numbering) */
  const char *name;   /* canonical name */
} mlxr_quant_scheme;

/* Parse a TYPE name (case-insensitive). Returns false if unknown. */
bool mlxr_quantize_parse_type(const char *name, mlxr_quant_scheme *out);
/* Space-separated list of accepted TYPE names, for usage text. */
const char *mlxr_quantize_type_names(void);

typedef struct mlxr_quantize_params {
  const char *in_path;
  const char *out_path;
  mlxr_quant_scheme scheme;
  int n_threads; /* <= 0: one per online CPU */
  mlxr_tool_progress_fn progress; /* optional */
  void *progress_user;
} mlxr_quantize_params;

typedef struct mlxr_quantize_stats {
  int64_t n_tensors;     /* tensors written */
  int64_t n_requantized; /* tensors whose type changed */
  int64_t n_fallback;    /* tensors that fell back to another type because of their shape */
  uint64_t in_bytes;     /* tensor data bytes read */
  uint64_t out_bytes;    /* tensor data bytes written */
} mlxr_quantize_stats;

int mlxr_quantize_gguf(const mlxr_quantize_params *params, mlxr_quantize_stats *stats, char *err,
                       size_t err_len);

/* The type a tensor gets under a scheme, given the model's tensor list (exposed for tests). The
 * counters track llama.cpp's per-category indices; zero-initialize and call for tensors in file
 * order. */
typedef struct mlxr_quant_state {
  int n_attn_v, n_ffn_down; /* totals in the model */
  int i_attn_v, i_ffn_down; /* seen so far */
  bool tied;                /* no output.weight: token_embd doubles as output */
  int64_t n_fallback;
} mlxr_quant_state;

bool mlxr_quantize_tensor_allowed(const char *name, int n_dims);
mlxr_dtype mlxr_quantize_pick_type(const mlxr_quant_scheme *s, mlxr_quant_state *st,
                                   const char *name, int n_dims, int64_t ne0, mlxr_dtype current);

#endif
