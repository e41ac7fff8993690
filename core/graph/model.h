/*
 * model.h: a loaded model (hyperparameters + weight views into the GGUF mapping) and its forward
 * pass over a batch of (sequence, position, token) rows.
 *
 * The forward is batch-first: one call processes any mix of rows from any sequences (prefill chunks
 * and decode steps alike). Each row carries its sequence's KV block table and the KV slot where its
 * own key/value go; the caller (core/runtime: the KV manager) owns those. Logits are produced only
 * for rows that ask, in row order.
 *
 * Architectures live one family per file (llama.c: llama, mistral, qwen2, qwen3); model.c loads
 * hyperparameters and tensors from GGUF and dispatches. The model owns the mlxr_gguf it was loaded
 * from (weights point into its mapping) and a workspace in backend memory sized once for the
 * largest batch (mlxr_model_params.n_batch_max), so a forward allocates nothing. The model moves
 * data to and from the backend only through its upload/download/copy ops.
 */
#ifndef MLXR_GRAPH_MODEL_H
#define MLXR_GRAPH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/formats/gguf.h"
#include "core/kernels/backend.h"

typedef enum mlxr_arch {
  MLXR_ARCH_LLAMA = 0, /* Llama 2/3.x, Mistral, SmolLM2 */
  MLXR_ARCH_QWEN2,     /* Llama block + q/k/v bias, NEOX rope */
  MLXR_ARCH_QWEN3,     /* q_norm/k_norm per head, explicit head_dim, NEOX rope */
} mlxr_arch;

typedef struct mlxr_hparams {
  mlxr_arch arch;
  char arch_name[32];
  int32_t n_vocab;
  int32_t n_embd;      /* hidden size */
  int32_t n_layer;
  int32_t n_head;
  int32_t n_head_kv;
  int32_t head_dim_k;  /* key/query head size */
  int32_t head_dim_v;
  int32_t n_ff;        /* feed-forward hidden size */
  int32_t n_ctx_train;
  float rms_eps;
  float rope_base;
  int32_t rope_dim;    /* rotated dims per head */
  mlxr_rope_mode rope_mode;
  float rope_linear_scale; /* positions are divided by this (1 = none) */
} mlxr_hparams;

typedef struct mlxr_layer {
  mlxr_weight attn_norm;           /* f32 [n_embd] */
  mlxr_weight wq, wk, wv, wo;      /* [n_head*hd][n_embd], [n_kv*hd][n_embd] x2, [n_embd][n_head*hd_v] */
  mlxr_weight bq, bk, bv;          /* f32 biases (qwen2) or absent */
  mlxr_weight q_norm, k_norm;      /* f32 [head_dim] (qwen3) or absent */
  mlxr_weight ffn_norm;            /* f32 [n_embd] */
  mlxr_weight w_gate, w_up;        /* [n_ff][n_embd] */
  mlxr_weight w_down;              /* [n_embd][n_ff] */
} mlxr_layer;

typedef struct mlxr_model mlxr_model;

typedef struct mlxr_model_params {
  int32_t n_batch_max;  /* most rows one forward may carry (workspace size) */
  int32_t n_logits_max; /* rows of logits a device backend holds at once (the output head runs
                           in chunks of this many rows); <= 0: min(n_batch_max, 64) */
} mlxr_model_params;

mlxr_model_params mlxr_model_default_params(void);

/* Load from an open GGUF; the model takes ownership of g (closed by mlxr_model_free, also on
 * failure). The backend is borrowed and must outlive the model. */
int mlxr_model_load(mlxr_gguf *g, mlxr_backend *be, mlxr_model_params params, mlxr_model **out,
                    char *err, size_t err_len);
void mlxr_model_free(mlxr_model *m);

const mlxr_hparams *mlxr_model_hparams(const mlxr_model *m);
const mlxr_gguf *mlxr_model_gguf(const mlxr_model *m);
/* Weight bytes one decoded token reads: every tensor except an untied embedding table (of which a
 * token reads one row). The numerator of the bandwidth roofline. */
size_t mlxr_model_weight_bytes(const mlxr_model *m);
/* The dominant stored type of the 2-D weights. */
mlxr_dtype mlxr_model_weight_type(const mlxr_model *m);

/* Where the KV lives: per layer, pools of [n_slots][n_head_kv * head_dim] each (backend memory),
 * and the block tables of all sequences, [n_tables][table_stride] (backend memory). */
typedef struct mlxr_kv_view {
  void *const *k_pools;   /* [n_layer] */
  void *const *v_pools;   /* [n_layer] */
  mlxr_dtype type;        /* F32 or F16 */
  int32_t block_size;
  const int32_t *tables;  /* [n_tables][table_stride]: table s is sequence s's block ids */
  int32_t table_stride;
  int32_t sink_table;     /* a table whose blocks are all the sink block */
  int64_t sink_slot;      /* a slot padding rows may write (in the sink block) */
} mlxr_kv_view;

/* One forward's rows (host memory). All arrays have n entries. Rows of one sequence must appear in
 * increasing position order, and the sequence's block table (kv view, synced) must already cover
 * every row's position. */
typedef struct mlxr_batch {
  int32_t n;
  const int32_t *tokens;
  const int32_t *pos;                 /* position of the token in its sequence */
  const int32_t *seqs;                /* the row's sequence: its table in the kv view */
  const int64_t *slots;               /* KV slot of this row: block * block_size + pos % block_size */
  const bool *want_logits;            /* NULL: only the last row */
  const bool *greedy;                 /* NULL, or per row: of this row (wanting logits) only the
                                         argmax is needed (greedy sampling, nothing to adjust) */
  int32_t *argmax_out;                /* with greedy: [n_want] the argmax of each row wanting
                                         logits where the backend found it (that logits row is
                                         then left unwritten), else -1 */
  bool output_hidden;                 /* write final normed hidden states [n_want][n_embd]
                                         instead of logits (embeddings) */
} mlxr_batch;

/* Run the batch. logits receives [n_want][n_vocab] float32 for the rows that want logits, in row
 * order (or [n_want][n_embd] hidden states if batch->output_hidden), except greedy rows whose
 * argmax the backend computed (batch->argmax_out). */
int mlxr_model_forward(mlxr_model *m, const mlxr_kv_view *kv, const mlxr_batch *batch, float *logits,
                       char *err, size_t err_len);

#endif
