/*
 * engine.c: open a GGUF into backend + model + tokenizer + KV cache, and run batches.
 *
 * Backend choice: the device named in the params (auto by default) gives a list of candidate
 * backends, best first (backend_registry.h). Each is tried in turn: open it, load the model onto
 * it (the model asks supports_op for everything it needs before uploading), make the KV pool. The
 * first that succeeds is kept; each failure before it is recorded in a note ("cuda:0: no CUDA
 * device ...; using the CPU") that callers print, so a missing GPU, driver or GPU memory is a
 * message and a CPU run, never a crash.
 *
 * KV sizing: kv_blocks if set (the scheduler preempts when they run out); else enough for max_seqs
 * full contexts, but at most the bytes the backend has free after loading the model times
 * kv_mem_fraction (0.9 on a GPU, 0.5 on the CPU), so a second model still finds room on the GPU. The KV type follows
 * the weights' precision unless set: F32 for an F32 model (so an F32 model computes in F32 end to
 * end), F16 otherwise (llama.cpp's default).
 * The batch arrays (tokens, positions, sequences, slots, flags) are allocated once for n_batch
 * rows; decode allocates nothing.
 */
#include "core/runtime/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common/status.h"

struct mlxr_engine {
  mlxr_engine_params p;
  mlxr_backend *be;
  mlxr_model *model;
  mlxr_tokenizer *tok;
  mlxr_kv_cache *kv;
  char device[160];   /* the device in use, as text */
  char note[512];     /* why earlier candidates were passed over */
  /* batch arrays, [n_batch] each */
  int32_t *b_tokens;
  int32_t *b_pos;
  int32_t *b_seqs;
  int64_t *b_slots;
  bool *b_want;
  bool *b_greedy;
  mlxr_engine_row *rows_tmp; /* for eval */
};

mlxr_engine_params mlxr_engine_default_params(void) {
  mlxr_engine_params p = {
      .device = NULL,
      .backend = mlxr_backend_default_options(),
      .n_ctx = 0,
      .n_batch = 512,
      .max_seqs = 1,
      .kv_block_size = 16,
      .kv_type = -1,
      .load_tokenizer = true,
  };
  return p;
}

/* Blocks for the KV pool on this backend (see the top of the file); 0 if not even one fits. */
static int32_t kv_blocks_for(const mlxr_engine *e, const mlxr_kv_params *kp) {
  if (e->p.kv_blocks > 0) return e->p.kv_blocks;
  const int64_t per_seq = ((int64_t)e->p.n_ctx + kp->block_size - 1) / kp->block_size;
  const int64_t want = per_seq * e->p.max_seqs;
  const size_t esz = kp->type == MLXR_DTYPE_F32 ? 4 : 2;
  const double block_bytes = (double)kp->n_layer * kp->block_size * kp->n_head_kv *
                             (double)(kp->head_dim_k + kp->head_dim_v) * (double)esz;
  size_t free_b = 0, total_b = 0;
  const bool host = e->be->iface->host_memory;
  const bool known = e->be->iface->memory_info(e->be, &free_b, &total_b) == MLXR_OK && free_b > 0;
  double frac = e->p.kv_mem_fraction > 0 ? e->p.kv_mem_fraction : host ? 0.5 : 0.9;
  if (frac > 1.0) frac = 1.0;
  if (!known) return (int32_t)(want < INT32_MAX ? want : INT32_MAX);
  const double fit_d = floor((double)free_b * frac / block_bytes);
  const int64_t fit = fit_d > (double)INT32_MAX ? INT32_MAX : (int64_t)fit_d;
  int64_t n;
  n = want < fit ? want : fit;
  if (host && n < per_seq) n = want < per_seq ? want : per_seq; /* one full context at least */
  return (int32_t)(n > INT32_MAX ? INT32_MAX : n);
}

/* Load model + KV onto backend e->be; on failure everything made here is freed again. */
static int engine_load_on(mlxr_engine *e, const char *gguf_path, char *err, size_t err_len) {
  mlxr_gguf *g = NULL;
  int rc = mlxr_gguf_open(gguf_path, &g, err, err_len);
  if (rc != MLXR_OK) return rc;
  if (e->p.load_tokenizer && !e->tok) {
    rc = mlxr_tokenizer_load_gguf(g, &e->tok, err, err_len);
    if (rc != MLXR_OK) {
      mlxr_gguf_close(g);
      return rc;
    }
  }
  mlxr_model_params mp = mlxr_model_default_params();
  mp.n_batch_max = e->p.n_batch;
  mp.n_logits_max = e->p.max_seqs + 8 < e->p.n_batch ? e->p.max_seqs + 8 : e->p.n_batch;
  if (mp.n_logits_max < 64 && e->p.n_batch >= 64) mp.n_logits_max = 64;
  rc = mlxr_model_load(g, e->be, mp, &e->model, err, err_len); /* takes g */
  if (rc != MLXR_OK) return rc;
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
  if (e->p.kv_type < 0) {
    kp.type = mlxr_model_weight_type(e->model) == MLXR_DTYPE_F32 ? MLXR_DTYPE_F32 : MLXR_DTYPE_F16;
  } else {
    kp.type = (mlxr_dtype)e->p.kv_type;
  }
  const mlxr_backend_iface *op = e->be->iface;
  if (!op->supports_op(e->be, MLXR_OP_ATTENTION, kp.type) || !op->supports_op(e->be, MLXR_OP_KV_STORE, kp.type)) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "backend %s has no attention over %s KV", op->name,
                   mlxr_dtype_name(kp.type));
  } else {
    kp.n_blocks = kv_blocks_for(e, &kp);
    rc = kp.n_blocks > 0 ? mlxr_kv_cache_new(e->be, &kp, &e->kv, err, err_len)
                         : mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "no %s memory left for a KV cache", op->name);
  }
  if (rc != MLXR_OK) {
    mlxr_model_free(e->model);
    e->model = NULL;
  }
  return rc;
}

static void describe_device(mlxr_engine *e, const mlxr_device_spec *spec) {
  char name[32];
  mlxr_device_format(spec, name, sizeof name);
  if (spec->kind == MLXR_DEVICE_CPU) {
    snprintf(e->device, sizeof e->device, "cpu (%d threads, %s kernels)", e->p.backend.cpu.n_threads,
             mlxr_cpu_backend_isa(e->be));
    return;
  }
  char what[120] = "";
#ifdef MLXR_HAVE_CUDA
  if (spec->kind == MLXR_DEVICE_CUDA) mlxr_cuda_device_describe(spec->index, what, sizeof what);
#endif
  if (what[0]) snprintf(e->device, sizeof e->device, "%s (%s)", name, what);
  else snprintf(e->device, sizeof e->device, "%s", name);
}

int mlxr_engine_open(const char *gguf_path, const mlxr_engine_params *params, mlxr_engine **out,
                     char *err, size_t err_len) {
  *out = NULL;
  mlxr_device_spec spec;
  int rc = mlxr_device_parse(params->device, &spec, err, err_len);
  if (rc != MLXR_OK) return rc;
  mlxr_engine *e = calloc(1, sizeof(*e));
  if (!e) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  e->p = *params;
  e->p.device = NULL; /* not kept: the caller's string */
  if (e->p.n_batch <= 0) e->p.n_batch = 512;
  if (e->p.max_seqs <= 0) e->p.max_seqs = 1;
  if (e->p.kv_block_size <= 0) e->p.kv_block_size = 16;
  if (e->p.backend.cpu.n_threads <= 0) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    e->p.backend.cpu.n_threads = online > 0 ? (int)online : 1;
  }

  mlxr_device_spec cands[4];
  const int n_cands = mlxr_backend_candidates(&spec, cands, 4);
  rc = MLXR_ERR_UNSUPPORTED;
  for (int i = 0; i < n_cands; i++) {
    char why[384] = "";
    rc = mlxr_backend_open(&cands[i], &e->p.backend, &e->be, why, sizeof why);
    if (rc == MLXR_OK) {
      rc = engine_load_on(e, gguf_path, why, sizeof why);
      if (rc == MLXR_OK) {
        describe_device(e, &cands[i]);
        break;
      }
      mlxr_backend_free(e->be);
      e->be = NULL;
    }
    const bool device_trouble = rc == MLXR_ERR_UNSUPPORTED || rc == MLXR_ERR_NOMEM;
    if (i + 1 == n_cands || !device_trouble) {
      mlxr_errf(err, err_len, rc, "%s", why);
      mlxr_engine_close(e);
      return rc;
    }
    char name[32];
    const size_t used = strlen(e->note);
    snprintf(e->note + used, sizeof e->note - used, "%s%s: %s", used ? "; " : "",
             mlxr_device_format(&cands[i], name, sizeof name), why);
  }
  if (e->note[0]) {
    const size_t used = strlen(e->note);
    snprintf(e->note + used, sizeof e->note - used, "; running on the CPU");
  }

  const size_t nb = (size_t)e->p.n_batch;
  e->b_tokens = malloc(nb * sizeof(int32_t));
  e->b_pos = malloc(nb * sizeof(int32_t));
  e->b_seqs = malloc(nb * sizeof(int32_t));
  e->b_slots = malloc(nb * sizeof(int64_t));
  e->b_want = malloc(nb * sizeof(bool));
  e->b_greedy = malloc(nb * sizeof(bool));
  e->rows_tmp = malloc(nb * sizeof(mlxr_engine_row));
  if (!e->b_tokens || !e->b_pos || !e->b_seqs || !e->b_slots || !e->b_want || !e->b_greedy || !e->rows_tmp) {
    mlxr_engine_close(e);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
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
  free(e->b_seqs);
  free(e->b_slots);
  free(e->b_want);
  free(e->b_greedy);
  free(e->rows_tmp);
  free(e);
}

mlxr_model *mlxr_engine_model(mlxr_engine *e) { return e->model; }
const mlxr_hparams *mlxr_engine_hparams(const mlxr_engine *e) { return mlxr_model_hparams(e->model); }
const mlxr_tokenizer *mlxr_engine_tokenizer(const mlxr_engine *e) { return e->tok; }
mlxr_kv_cache *mlxr_engine_kv(mlxr_engine *e) { return e->kv; }
int32_t mlxr_engine_n_ctx(const mlxr_engine *e) { return e->p.n_ctx; }
int32_t mlxr_engine_n_batch(const mlxr_engine *e) { return e->p.n_batch; }
mlxr_backend *mlxr_engine_backend(mlxr_engine *e) { return e->be; }
const char *mlxr_engine_device(const mlxr_engine *e) { return e->device; }
bool mlxr_engine_on_host(const mlxr_engine *e) { return e->be->iface->host_memory; }
const char *mlxr_engine_device_note(const mlxr_engine *e) { return e->note; }

static int engine_decode(mlxr_engine *e, const mlxr_engine_row *rows, int32_t n, float *out,
                         int32_t *ids, bool hidden, char *err, size_t err_len) {
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
  /* tables are stable now that all reservations are done: bring the backend's copy up to date */
  const int rc = mlxr_kv_cache_sync(e->kv);
  if (rc != MLXR_OK) return mlxr_errf(err, err_len, rc, "KV cache: updating block tables failed");
  for (int32_t i = 0; i < n; i++) {
    e->b_tokens[i] = rows[i].token;
    e->b_pos[i] = rows[i].pos;
    e->b_seqs[i] = rows[i].seq;
    e->b_slots[i] = mlxr_kv_seq_slot(e->kv, rows[i].seq, rows[i].pos);
    e->b_want[i] = rows[i].want_logits;
    e->b_greedy[i] = ids && rows[i].want_logits && rows[i].greedy; /* read only for decode_ids callers */
  }
  const mlxr_batch batch = {
      .n = n,
      .tokens = e->b_tokens,
      .pos = e->b_pos,
      .seqs = e->b_seqs,
      .slots = e->b_slots,
      .want_logits = e->b_want,
      .greedy = ids ? e->b_greedy : NULL,
      .argmax_out = ids,
      .output_hidden = hidden,
  };
  return mlxr_model_forward(e->model, mlxr_kv_cache_view(e->kv), &batch, out, err, err_len);
}

int mlxr_engine_decode(mlxr_engine *e, const mlxr_engine_row *rows, int32_t n, float *logits,
                       char *err, size_t err_len) {
  return engine_decode(e, rows, n, logits, NULL, false, err, err_len);
}

int mlxr_engine_decode_ids(mlxr_engine *e, const mlxr_engine_row *rows, int32_t n, float *logits,
                           int32_t *ids, char *err, size_t err_len) {
  return engine_decode(e, rows, n, logits, ids, false, err, err_len);
}

int mlxr_engine_embed(mlxr_engine *e, int seq, const int32_t *tokens, int32_t n, bool mean_pool,
                      bool normalize, float *out, char *err, size_t err_len) {
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
    rc = engine_decode(e, e->rows_tmp, m, hidden, NULL, true, err, err_len);
    if (rc != MLXR_OK) break;
    const int32_t rows_out = mean_pool ? m : (start + m == n ? 1 : 0);
    for (int32_t r = 0; r < rows_out; r++) {
      for (int32_t i = 0; i < E; i++) acc[i] += hidden[(size_t)r * E + i];
    }
  }
  if (rc == MLXR_OK) {
    double norm = 0.0;
    for (int32_t i = 0; i < E; i++) norm += acc[i] * acc[i];
    norm = !normalize ? (mean_pool ? 1.0 / n : 1.0) : norm > 0.0 ? 1.0 / sqrt(norm) : 0.0;
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
      e->rows_tmp[i] = (mlxr_engine_row){.seq = seq, .pos = n_past + start + i, .token = tokens[start + i],
                                         .want_logits = all_logits || start + i == n - 1};
    }
    float *out = all_logits ? logits + (size_t)start * (size_t)n_vocab : logits;
    int rc = mlxr_engine_decode(e, e->rows_tmp, m, out, err, err_len);
    if (rc != MLXR_OK) return rc;
  }
  return MLXR_OK;
}
