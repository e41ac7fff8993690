/*
 * model_impl.h: the inside of mlxr_model, shared by model.c (loading) and the per-architecture
 * forward files. Not for use outside core/graph/.
 */
#ifndef MLXR_GRAPH_MODEL_IMPL_H
#define MLXR_GRAPH_MODEL_IMPL_H

#include "core/graph/model.h"

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
  int32_t *ctx_len;  /* [n_rows_max] attention length per row */
  int32_t *out_rows; /* [n_rows_max] rows that want logits */
} mlxr_workspace;

struct mlxr_model {
  mlxr_hparams hp;
  mlxr_gguf *gguf;          /* owned; weights point into its mapping */
  mlxr_backend *be;         /* borrowed */
  mlxr_weight token_embd;   /* [n_vocab][n_embd] */
  mlxr_weight output_norm;  /* f32 [n_embd] */
  mlxr_weight output;       /* [n_vocab][n_embd]; == token_embd when tied */
  mlxr_layer *layers;       /* [n_layer] */
  double *rope_inv_freq;    /* [rope_dim / 2] base^(-2i/rope_dim) / freq_factor[i] */
  float **owned_f32;        /* f32 copies of small tensors stored in other types */
  int32_t n_owned_f32;
  size_t weight_bytes;
  mlxr_dtype weight_type;
  mlxr_workspace ws;
};

/* llama.c */
int mlxr_llama_forward(mlxr_model *m, const mlxr_kv_view *kv, const mlxr_batch *batch,
                       float *logits, char *err, size_t err_len);

#endif
