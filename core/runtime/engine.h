/*
 * engine.h: one loaded model ready to run: backend + model + tokenizer + paged KV cache.
 *
 * The engine executes what its driver (the CLI's generation loop now, the scheduler later) asks:
 * a batch of (sequence, position, token) rows in one forward, with KV blocks reserved for each
 * row's sequence on the way. It knows nothing of requests, HTTP or sampling policy.
 *
 * Ownership: the engine owns everything it opened; pointers from accessors live as long as the
 * engine. One thread drives an engine at a time.
 */
#ifndef MLXR_RUNTIME_ENGINE_H
#define MLXR_RUNTIME_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/graph/model.h"
#include "core/kernels/backend_registry.h"
#include "core/runtime/kv/kv_cache.h"
#include "core/runtime/tokenizer/tokenizer.h"

typedef struct mlxr_engine_params {
  const char *device;     /* where to run: NULL or "auto" (the best backend that can run the
                             model: a GPU if there is one, else the CPU), "cpu", "cuda", "cuda:N"
                             (a GPU that cannot run it falls back to the CPU, with a note) */
  mlxr_backend_options backend; /* per-backend settings (CPU threads, SIMD level, repacking; CUDA
                                   graphs): see backend_registry.h */
  int32_t n_ctx;          /* max positions per sequence; <= 0: min(model's training context, 4096) */
  int32_t n_batch;        /* max rows per forward (prefill chunk size) */
  int32_t max_seqs;       /* sequences at once */
  int32_t kv_block_size;  /* tokens per KV block */
  int32_t kv_blocks;      /* blocks in the KV pool; <= 0: sized from memory (kv_mem_fraction) */
  double kv_mem_fraction; /* kv_blocks <= 0: the pool holds max_seqs full contexts, but takes at
                             most this fraction of the memory the backend has free once the model
                             is loaded (<= 0: 0.9 on a GPU, 0.5 on the CPU) */
  int kv_type;            /* -1: F32 for F32 models, else F16; or MLXR_DTYPE_F32 / _F16 */
  bool load_tokenizer;    /* false: logits-only use (no tokenizer needed) */
} mlxr_engine_params;

mlxr_engine_params mlxr_engine_default_params(void);

typedef struct mlxr_engine mlxr_engine;

int mlxr_engine_open(const char *gguf_path, const mlxr_engine_params *params, mlxr_engine **out,
                     char *err, size_t err_len);
void mlxr_engine_close(mlxr_engine *e);

mlxr_model *mlxr_engine_model(mlxr_engine *e);
const mlxr_hparams *mlxr_engine_hparams(const mlxr_engine *e);
const mlxr_tokenizer *mlxr_engine_tokenizer(const mlxr_engine *e); /* NULL if not loaded */
mlxr_kv_cache *mlxr_engine_kv(mlxr_engine *e);
int32_t mlxr_engine_n_ctx(const mlxr_engine *e);
int32_t mlxr_engine_n_batch(const mlxr_engine *e);
/* The backend the engine runs on (its name is "cpu" or "cuda"), and the device as text: "cpu (2
 * threads)", "cuda:0 (NVIDIA H100 80GB HBM3, 79.1 GiB)". */
mlxr_backend *mlxr_engine_backend(mlxr_engine *e);
const char *mlxr_engine_device(const mlxr_engine *e);
/* True when the backend computes in host memory (the CPU backend). */
bool mlxr_engine_on_host(const mlxr_engine *e);
/* Why backends before the one chosen were passed over ("cuda:0: no CUDA device ..."), or "". */
const char *mlxr_engine_device_note(const mlxr_engine *e);

/* One row of a batch. */
typedef struct mlxr_engine_row {
  int seq;
  int32_t pos;
  int32_t token;
  bool want_logits;
  bool greedy;      /* with want_logits, for mlxr_engine_decode_ids: only the argmax is needed */
} mlxr_engine_row;

/* Run n rows (n <= n_batch) in one forward; reserves KV blocks up to each row's pos + 1 first.
 * logits gets [rows wanting logits][n_vocab] in row order. MLXR_ERR_NO_SPACE if the KV pool is
 * full (nothing was run). */
int mlxr_engine_decode(mlxr_engine *e, const mlxr_engine_row *rows, int32_t n, float *logits,
                       char *err, size_t err_len);

/* As mlxr_engine_decode, and for rows marked greedy the backend may find the argmax where the
 * logits are (a GPU: only the id is copied back): ids[i] (i-th row wanting logits) is that argmax
 * and logits row i is then left unwritten, or -1 when the row's logits were written instead. */
int mlxr_engine_decode_ids(mlxr_engine *e, const mlxr_engine_row *rows, int32_t n, float *logits,
                           int32_t *ids, char *err, size_t err_len);

/* Convenience for one sequence: evaluate tokens at positions n_past.. in chunks of n_batch. If
 * all_logits, logits gets [n][n_vocab]; else only the last row's [n_vocab]. */
int mlxr_engine_eval(mlxr_engine *e, int seq, const int32_t *tokens, int32_t n, int32_t n_past,
                     bool all_logits, float *logits, char *err, size_t err_len);

/* Final hidden states of a token sequence on sequence seq (positions from 0), pooled: mean over
 * all positions, or the last position; then L2-normalized if normalize (Ollama's legacy
 * /api/embeddings returns them unnormalized). out has n_embd floats. The sequence's KV is left
 * filled (the caller frees the sequence). */
int mlxr_engine_embed(mlxr_engine *e, int seq, const int32_t *tokens, int32_t n, bool mean_pool,
                      bool normalize, float *out, char *err, size_t err_len);

#endif
