/*
 * engine.c: open a GGUF into backend + model + tokenizer + KV cache, and run batches.
 *
 * KV sizing: kv_blocks if set (the scheduler preempts when they run out), else enough blocks for
 * max_seqs sequences of n_ctx positions. The KV type follows the
 * weights' precision unless set: F32 for an F32 model (so an F32 model computes in F32 end to end),
 * F16 otherwise (llama.cpp's default).
 * The batch arrays (tokens, positions, block-table pointers, slots, flags) are allocated once for
 * n_batch rows; decode allocates nothing.
 */
#include "core/runtime/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/kernels/cpu/cpu_backend.h"

struct mlxr_engine {
  mlxr_engine_params p;
  mlxr_backend *be;
  mlxr_model *model;
  mlxr_tokenizer *tok;
  mlxr_kv_cache *kv;
  int n_threads;
  /* batch arrays, [n_batch] each */
  int32_t *b_tokens;
  int32_t *b_pos;
  const int32_t **b_tables;
  int64_t *b_slots;
  bool *b_want;
  mlxr_engine_row *rows_tmp; /* for eval */
};

mlxr_engine_params mlxr_engine_default_params(void) {
  mlxr_engine_params p = {
      .n_threads = 0,
      .n_ctx = 0,
      .n_batch = 512,
      .max_seqs = 1,
      .kv_block_size = 16,
      .kv_type = -1,
      .load_tokenizer = true,
      .simd_level = -1,
  };
  return p;
}

int mlxr_engine_open(const char *gguf_path, const mlxr_engine_params *params, mlxr_engine **out,
                     char *err, size_t err_len) {
  *out = NULL;
  mlxr_engine *e = calloc(1, sizeof(*e));
  if (!e) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  e->p = *params;
  if (e->p.n_batch <= 0) e->p.n_batch = 512;
  if (e->p.max_seqs <= 0) e->p.max_seqs = 1;
  if (e->p.kv_block_size <= 0) e->p.kv_block_size = 16;

  mlxr_cpu_backend_params bp = mlxr_cpu_backend_default_params();
  bp.n_threads = params->n_threads;
  bp.simd_level = params->simd_level;
  bp.no_repack = params->cpu_no_repack;
  e->be = mlxr_cpu_backend_new(bp);
  if (!e->be) {
    mlxr_engine_close(e);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "cannot start the CPU backend");
  }
  mlxr_gguf *g = NULL;
  int rc = mlxr_gguf_open(gguf_path, &g, err, err_len);
  if (rc != MLXR_OK) {
    mlxr_engine_close(e);
    return rc;
  }
  if (e->p.load_tokenizer) {
    rc = mlxr_tokenizer_load_gguf(g, &e->tok, err, err_len);
    if (rc != MLXR_OK) {
      mlxr_gguf_close(g);
      mlxr_engine_close(e);
      return rc;
    }
  }
  mlxr_model_params mp = mlxr_model_default_params();
  mp.n_batch_max = e->p.n_batch;
  rc = mlxr_model_load(g, e->be, mp, &e->model, err, err_len); /* takes g */
  if (rc != MLXR_OK) {
    mlxr_engine_close(e);
    return rc;
  }
  const mlxr_hparams *hp = mlxr_model_hparams(e->model);
  if (e->p.n_ctx <= 0) e->p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;

  mlxr_kv_params kp = {
      .n_layer = hp->n_layer,
      .n_head_kv = hp->n_head_kv,
      .head_dim_k = hp->head_dim_k,
      .head_dim_v = hp->head_dim_v,
      .block_size = e->p.kv_block_size,
      .max_seqs = e->p.max_seqs,
      .max_seq_len = e->p.n_ctx,
  };
  kp.n_blocks = (int32_t)(((int64_t)e->p.n_ctx + kp.block_size - 1) / kp.block_size * e->p.max_seqs);
  if (e->p.kv_blocks > 0) kp.n_blocks = e->p.kv_blocks;
  if (e->p.kv_type < 0) {
    kp.type = mlxr_model_weight_type(e->model) == MLXR_DTYPE_F32 ? MLXR_DTYPE_F32 : MLXR_DTYPE_F16;
  } else {
    kp.type = (mlxr_dtype)e->p.kv_type;
  }
  rc = mlxr_kv_cache_new(e->be, &kp, &e->kv, err, err_len);
  if (rc != MLXR_OK) {
    mlxr_engine_close(e);
    return rc;
  }
  const size_t nb = (size_t)e->p.n_batch;
  e->b_tokens = malloc(nb * sizeof(int32_t));
  e->b_pos = malloc(nb * sizeof(int32_t));
  e->b_tables = malloc(nb * sizeof(int32_t *));
  e->b_slots = malloc(nb * sizeof(int64_t));
  e->b_want = malloc(nb * sizeof(bool));
  e->rows_tmp = malloc(nb * sizeof(mlxr_engine_row));
  if (!e->b_tokens || !e->b_pos || !e->b_tables || !e->b_slots || !e->b_want || !e->rows_tmp) {
    mlxr_engine_close(e);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  e->n_threads = params->n_threads;
  *out = e;
  return MLXR_OK;
}

void mlxr_engine_close(mlxr_engine *e) {
  if (!e) return;
  mlxr_kv_cache_free(e->kv);
  mlxr_model_free(e->model);
  mlxr_tokenizer_free(e->tok);
  mlxr_backend_free(e->be);
  free(e->b_tokens);
  free(e->b_pos);
  free(e->b_tables);
  free(e->b_slots);
  free(e->b_want);
  free(e->rows_tmp);
  free(e);
}

mlxr_model *mlxr_engine_model(mlxr_engine *e) { return e->model; }
const mlxr_hparams *mlxr_engine_hparams(const mlxr_engine *e) { return mlxr_model_hparams(e->model); }
const mlxr_tokenizer *mlxr_engine_tokenizer(const mlxr_engine *e) { return e->tok; }
mlxr_kv_cache *mlxr_engine_kv(mlxr_engine *e) { return e->kv; }
int32_t mlxr_engine_n_ctx(const mlxr_engine *e) { return e->p.n_ctx; }
int32_t mlxr_engine_n_batch(const mlxr_engine *e) { return e->p.n_batch; }
int mlxr_engine_n_threads(const mlxr_engine *e) { return e->n_threads; }

static int engine_decode(mlxr_engine *e, const mlxr_engine_row *rows, int32_t n, float *out,
                         bool hidden, char *err, size_t err_len) {
  if (n <= 0 || n > e->p.n_batch) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "batch of %d rows (max %d)", (int)n, (int)e->p.n_batch);
  }
  for (int32_t i = 0; i < n; i++) {
    if (rows[i].pos < 0 || rows[i].pos >= e->p.n_ctx) {
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "position %d is outside the context of %d",
                       (int)rows[i].pos, (int)e->p.n_ctx);
    }
    const int32_t need = rows[i].pos + 1;
    if (need > mlxr_kv_seq_len(e->kv, rows[i].seq)) {
      int rc = mlxr_kv_seq_reserve(e->kv, rows[i].seq, need);
      if (rc != MLXR_OK) {
        return mlxr_errf(err, err_len, rc, "KV cache: cannot hold position %d of sequence %d (%s)",
                         (int)rows[i].pos, rows[i].seq, mlxr_status_str(rc));
      }
    }
  }
  /* tables are stable now that all reservations are done */
  for (int32_t i = 0; i < n; i++) {
    e->b_tokens[i] = rows[i].token;
    e->b_pos[i] = rows[i].pos;
    e->b_tables[i] = mlxr_kv_seq_block_table(e->kv, rows[i].seq);
    e->b_slots[i] = mlxr_kv_seq_slot(e->kv, rows[i].seq, rows[i].pos);
    e->b_want[i] = rows[i].want_logits;
  }
  const mlxr_batch batch = {
      .n = n,
      .tokens = e->b_tokens,
      .pos = e->b_pos,
      .block_tables = e->b_tables,
      .slots = e->b_slots,
      .want_logits = e->b_want,
      .output_hidden = hidden,
  };
  return mlxr_model_forward(e->model, mlxr_kv_cache_view(e->kv), &batch, out, err, err_len);
}

int mlxr_engine_decode(mlxr_engine *e, const mlxr_engine_row *rows, int32_t n, float *logits,
                       char *err, size_t err_len) {
  return engine_decode(e, rows, n, logits, false, err, err_len);
}

int mlxr_engine_embed(mlxr_engine *e, int seq, const int32_t *tokens, int32_t n, bool mean_pool,
                      float *out, char *err, size_t err_len) {
  const int32_t E = mlxr_model_hparams(e->model)->n_embd;
  if (n <= 0) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "nothing to embed");
  const size_t chunk_floats = (size_t)e->p.n_batch * (size_t)E;
  float *hidden = malloc(chunk_floats * sizeof(float));
  double *acc = calloc((size_t)E, sizeof(double));
  if (!hidden || !acc) {
    free(hidden);
    free(acc);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  int rc = MLXR_OK;
  for (int32_t start = 0; start < n && rc == MLXR_OK; start += e->p.n_batch) {
    const int32_t m = n - start < e->p.n_batch ? n - start : e->p.n_batch;
    for (int32_t i = 0; i < m; i++) {
      e->rows_tmp[i] = (mlxr_engine_row){.seq = seq, .pos = start + i, .token = tokens[start + i],
                                         .want_logits = mean_pool || start + i == n - 1};
    }
    rc = engine_decode(e, e->rows_tmp, m, hidden, true, err, err_len);
    if (rc != MLXR_OK) break;
    const int32_t rows_out = mean_pool ? m : (start + m == n ? 1 : 0);
    for (int32_t r = 0; r < rows_out; r++) {
      for (int32_t i = 0; i < E; i++) acc[i] += hidden[(size_t)r * E + i];
    }
  }
  if (rc == MLXR_OK) {
    double norm = 0.0;
    for (int32_t i = 0; i < E; i++) norm += acc[i] * acc[i];
    norm = norm > 0.0 ? 1.0 / sqrt(norm) : 0.0;
    for (int32_t i = 0; i < E; i++) out[i] = (float)(acc[i] * norm);
  }
  free(hidden);
  free(acc);
  return rc;
}

int mlxr_engine_eval(mlxr_engine *e, int seq, const int32_t *tokens, int32_t n, int32_t n_past,
                     bool all_logits, float *logits, char *err, size_t err_len) {
  const int32_t n_vocab = mlxr_model_hparams(e->model)->n_vocab;
  for (int32_t start = 0; start < n; start += e->p.n_batch) {
    const int32_t m = n - start < e->p.n_batch ? n - start : e->p.n_batch;
    for (int32_t i = 0; i < m; i++) {
      e->rows_tmp[i].seq = seq;
      e->rows_tmp[i].pos = n_past + start + i;
      e->rows_tmp[i].token = tokens[start + i];
      e->rows_tmp[i].want_logits = all_logits || start + i == n - 1;
    }
    float *out = all_logits ? logits + (size_t)start * (size_t)n_vocab : logits;
    int rc = mlxr_engine_decode(e, e->rows_tmp, m, out, err, err_len);
    if (rc != MLXR_OK) return rc;
  }
  return MLXR_OK;
}
