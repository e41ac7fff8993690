/*
 * model_impl.h: the inside of mlxr_model, shared by model.c (loading) and the per-architecture
 * forward files. Not for use outside core/graph/.
 */
#ifndef MLXR_GRAPH_MODEL_IMPL_H
#define MLXR_GRAPH_MODEL_IMPL_H

#include "core/graph/model.h"

/* Activations and per-forward metadata, sized once for the largest batch. Every pointer but the
 * *_host ones is backend memory. */
typedef struct mlxr_workspace {
  int32_t n_rows_max;
  float *x;        /* [n_rows_max][n_embd] residual stream */
  float *xn;       /* [n_rows_max][n_embd] normed input / sublayer output */
  float *q;        /* [n_rows_max][n_head * head_dim_k] */
  float *k;        /* [n_rows_max][n_head_kv * head_dim_k] */
  float *v;        /* [n_rows_max][n_head_kv * head_dim_v] */
  float *att;      /* [n_rows_max][n_head * head_dim_v] */
  float *ff_gate;  /* [n_rows_max][n_ff] */
  float *ff_up;    /* [n_rows_max][n_ff] */
  float *rope_cos; /* [n_rows_max][rope_dim / 2] */
  float *rope_sin; /* [n_rows_max][rope_dim / 2] */
  float *logits;   /* [n_logits_max][n_vocab] output-head results before download; NULL on
                      host-memory backends (the head writes into the caller's buffer) */
  int32_t n_logits_max;
  int32_t *argmax;   /* [n_logits_max] device argmax of logits rows (NULL where the backend has no
                        argmax_rows) */
  /* Per-forward row metadata, one host block staged and uploaded whole (META_* offsets in
   * llama.c): slots int64 [n_rows_max], then int32 [n_rows_max] each of tokens, positions,
   * sequences (KV table index) and attention lengths (pos + 1). */
  void *meta_host;
  void *meta;
  size_t meta_bytes;
  int32_t *out_rows_host; /* [n_rows_max] rows that want logits */
} mlxr_workspace;

struct mlxr_model {
  mlxr_hparams hp;
  mlxr_gguf *gguf;          /* owned; weights point into its mapping */
  mlxr_backend *be;         /* borrowed */
  mlxr_weight token_embd;   /* [n_vocab][n_embd] */
  mlxr_weight output_norm;  /* f32 [n_embd] */
  mlxr_weight output;       /* [n_vocab][n_embd]; == token_embd when tied */
  mlxr_layer *layers;       /* [n_layer] */
  double *rope_inv_freq;    /* [rope_dim / 2] base^(-2i/rope_dim) / freq_factor[i] (host) */
  double *rope_inv_freq_be; /* the same in backend memory */
  float **owned_f32;        /* f32 copies of small tensors stored in other types */
  int32_t n_owned_f32;
  size_t weight_bytes;
  mlxr_dtype weight_type;
  mlxr_workspace ws;
};

/* llama.c; meta_bytes: size of the workspace's metadata block for n_rows_max rows */
size_t mlxr_llama_meta_bytes(int32_t n_rows_max);
int mlxr_llama_forward(mlxr_model *m, const mlxr_kv_view *kv, const mlxr_batch *batch,
                       float *logits, char *err, size_t err_len);

#endif
