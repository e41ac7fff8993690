/*
 * model.c: load a model from GGUF metadata and tensors, and dispatch the forward by architecture.
 *
 * Every tensor is looked up by its llama.cpp name, checked for the shape the hyperparameters
 * imply, and wrapped in an mlxr_weight that points into the GGUF mapping (no copy). Small 1-D
 * tensors (norms, biases) that a file stores in a type other than F32 are converted once into
 * owned F32 buffers. Before any weight is uploaded, the backend is asked whether it supports
 * every op and type the model needs (supports_op), so an unusable backend is refused at once;
 * then each matrix and vector goes through weight_prepare (a device backend uploads it). The
 * workspace for the largest batch is allocated here, once, in backend memory.
 */
#include "core/graph/model_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/kernels/types.h"

mlxr_model_params mlxr_model_default_params(void) {
  mlxr_model_params p = {.n_batch_max = 512, .n_logits_max = 0};
  return p;
}

static bool key_int(const mlxr_gguf *g, const char *arch, const char *suffix, int64_t *out) {
  char key[128];
  snprintf(key, sizeof(key), "%s.%s", arch, suffix);
  return mlxr_gguf_get_int(g, key, out);
}

static bool key_float(const mlxr_gguf *g, const char *arch, const char *suffix, double *out) {
  char key[128];
  snprintf(key, sizeof(key), "%s.%s", arch, suffix);
  return mlxr_gguf_get_float(g, key, out);
}

/* Find tensor `name`, check it is 1-D/2-D with ne = [n_in, n_out], wrap it. required=false lets it
 * be absent (w->data stays NULL). */
static int bind_weight(mlxr_model *m, const char *name, int64_t n_in, int64_t n_out, bool required,
                       mlxr_weight *w, char *err, size_t err_len) {
  memset(w, 0, sizeof(*w));
  const mlxr_gguf_tensor *t = mlxr_gguf_find_tensor(m->gguf, name);
  if (!t) {
    if (!required) return MLXR_OK;
    return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "model file lacks tensor %s", name);
  }
  const int64_t t_out = t->n_dims >= 2 ? t->ne[1] : 1;
  if (t->ne[0] != n_in || t_out != n_out || t->n_dims > 2) {
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", name,
                     (long long)t->ne[0], (long long)t_out, (long long)n_in, (long long)n_out);
  }
  w->type = t->type;
  w->n_in = n_in;
  w->n_out = n_out;
  if (!mlxr_dtype_row_size(t->type, n_in, &w->row_bytes)) {
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tensor %s: bad row size", name);
  }
  w->data = t->data;
  m->weight_bytes += t->nbytes;
  return MLXR_OK;
}

/* A 1-D vector that ops read as float32: convert in place if stored otherwise. */
static int bind_vector(mlxr_model *m, const char *name, int64_t n, bool required, mlxr_weight *w,
                       char *err, size_t err_len) {
  int rc = bind_weight(m, name, n, 1, required, w, err, err_len);
  if (rc != MLXR_OK || !w->data || w->type == MLXR_DTYPE_F32) return rc;
  const mlxr_type_traits *tt = mlxr_type_traits_get(w->type, MLXR_SIMD_SCALAR);
  if (!tt || !tt->to_float) {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "tensor %s: type %s not supported", name,
                     mlxr_dtype_name(w->type));
  }
  float *copy = malloc((size_t)n * sizeof(float));
  float **list = realloc(m->owned_f32, ((size_t)m->n_owned_f32 + 1) * sizeof(float *));
  if (!copy || !list) {
    free(copy);
    if (list) m->owned_f32 = list;
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory converting %s", name);
  }
  m->owned_f32 = list;
  m->owned_f32[m->n_owned_f32++] = copy;
  tt->to_float(w->data, copy, n);
  w->type = MLXR_DTYPE_F32;
  w->row_bytes = (size_t)n * sizeof(float);
  w->data = copy;
  return MLXR_OK;
}

static int load_hparams(mlxr_model *m, char *err, size_t err_len) {
  mlxr_hparams *hp = &m->hp;
  const mlxr_gguf *g = m->gguf;
  const char *arch = mlxr_gguf_get_str(g, "general.architecture", NULL);
  if (!arch) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "model file has no general.architecture");
  if (strcmp(arch, "llama") == 0 || strcmp(arch, "mistral") == 0) {
    hp->arch = MLXR_ARCH_LLAMA;
    hp->rope_mode = MLXR_ROPE_NORM;
  } else if (strcmp(arch, "qwen2") == 0) {
    hp->arch = MLXR_ARCH_QWEN2;
    hp->rope_mode = MLXR_ROPE_NEOX;
  } else if (strcmp(arch, "qwen3") == 0) {
    hp->arch = MLXR_ARCH_QWEN3;
    hp->rope_mode = MLXR_ROPE_NEOX;
  } else {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "architecture '%s' is not supported (supported: llama, mistral, qwen2, qwen3)", arch);
  }
  snprintf(hp->arch_name, sizeof(hp->arch_name), "%s", arch);

  int64_t v;
  struct { const char *suffix; int32_t *dst; int64_t max; } req[] = {
      {"embedding_length", &hp->n_embd, 1 << 20},
      {"block_count", &hp->n_layer, 4096},
      {"feed_forward_length", &hp->n_ff, 1 << 22},
      {"attention.head_count", &hp->n_head, 4096},
  };
  for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
    if (!key_int(g, arch, req[i].suffix, &v)) {
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "model file lacks %s.%s", arch, req[i].suffix);
    }
    if (v <= 0 || v > req[i].max) {
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s.%s = %lld is out of range", arch,
                       req[i].suffix, (long long)v);
    }
    *req[i].dst = (int32_t)v;
  }
  hp->n_head_kv = hp->n_head;
  if (key_int(g, arch, "attention.head_count_kv", &v)) {
    if (v <= 0 || v > hp->n_head || hp->n_head % v != 0) {
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "head_count_kv %lld does not divide head_count %d",
                       (long long)v, hp->n_head);
    }
    hp->n_head_kv = (int32_t)v;
  }
  hp->head_dim_k = hp->n_embd / hp->n_head;
  if (key_int(g, arch, "attention.key_length", &v)) hp->head_dim_k = (int32_t)v;
  hp->head_dim_v = hp->head_dim_k;
  if (key_int(g, arch, "attention.value_length", &v)) hp->head_dim_v = (int32_t)v;
  if (hp->head_dim_k <= 0 || hp->head_dim_k > 1024 || hp->head_dim_v <= 0 || hp->head_dim_v > 1024) {
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "head size out of range");
  }
  hp->n_ctx_train = 4096;
  if (key_int(g, arch, "context_length", &v) && v > 0 && v <= (1 << 24)) hp->n_ctx_train = (int32_t)v;
  double d;
  hp->rms_eps = 1e-5f;
  if (key_float(g, arch, "attention.layer_norm_rms_epsilon", &d)) hp->rms_eps = (float)d;
  hp->rope_base = 10000.0f;
  if (key_float(g, arch, "rope.freq_base", &d)) hp->rope_base = (float)d;
  hp->rope_dim = hp->head_dim_k;
  if (key_int(g, arch, "rope.dimension_count", &v)) hp->rope_dim = (int32_t)v;
  if (hp->rope_dim <= 0 || hp->rope_dim > hp->head_dim_k || hp->rope_dim % 2 != 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "rope dimension %d invalid", hp->rope_dim);
  }
  hp->rope_linear_scale = 1.0f;
  char key[128];
  snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
  const char *scaling = mlxr_gguf_get_str(g, key, NULL);
  if (scaling && strcmp(scaling, "linear") == 0 && key_float(g, arch, "rope.scaling.factor", &d) && d > 0) {
    hp->rope_linear_scale = (float)d;
  } else if (scaling && strcmp(scaling, "none") != 0 && strcmp(scaling, "linear") != 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "rope scaling '%s' is not supported", scaling);
  }
  return MLXR_OK;
}

static int alloc_workspace(mlxr_model *m, int32_t n_rows, int32_t n_logits, char *err, size_t err_len) {
  const mlxr_hparams *hp = &m->hp;
  mlxr_workspace *ws = &m->ws;
  mlxr_backend *be = m->be;
  const size_t n = (size_t)n_rows;
  ws->n_rows_max = n_rows;
  ws->n_logits_max = n_logits;
  ws->x = mlxr_backend_alloc(be, n * (size_t)hp->n_embd * sizeof(float));
  ws->xn = mlxr_backend_alloc(be, n * (size_t)hp->n_embd * sizeof(float));
  ws->q = mlxr_backend_alloc(be, n * (size_t)hp->n_head * (size_t)hp->head_dim_k * sizeof(float));
  ws->k = mlxr_backend_alloc(be, n * (size_t)hp->n_head_kv * (size_t)hp->head_dim_k * sizeof(float));
  ws->v = mlxr_backend_alloc(be, n * (size_t)hp->n_head_kv * (size_t)hp->head_dim_v * sizeof(float));
  ws->att = mlxr_backend_alloc(be, n * (size_t)hp->n_head * (size_t)hp->head_dim_v * sizeof(float));
  ws->ff_gate = mlxr_backend_alloc(be, n * (size_t)hp->n_ff * sizeof(float));
  ws->ff_up = mlxr_backend_alloc(be, n * (size_t)hp->n_ff * sizeof(float));
  ws->rope_cos = mlxr_backend_alloc(be, n * (size_t)(hp->rope_dim / 2) * sizeof(float));
  ws->rope_sin = mlxr_backend_alloc(be, n * (size_t)(hp->rope_dim / 2) * sizeof(float));
  ws->meta_bytes = mlxr_llama_meta_bytes(n_rows);
  ws->meta = mlxr_backend_alloc(be, ws->meta_bytes);
  ws->meta_host = calloc(1, ws->meta_bytes);
  ws->out_rows_host = malloc(n * sizeof(int32_t));
  bool ok = ws->x && ws->xn && ws->q && ws->k && ws->v && ws->att && ws->ff_gate && ws->ff_up &&
            ws->rope_cos && ws->rope_sin && ws->meta && ws->meta_host && ws->out_rows_host;
  if (ok && !be->iface->host_memory) {
    ws->logits = mlxr_backend_alloc(be, (size_t)n_logits * (size_t)hp->n_vocab * sizeof(float));
    ok = ws->logits != NULL;
    if (ok && be->iface->argmax_rows) {
      ws->argmax = mlxr_backend_alloc(be, (size_t)n_logits * sizeof(int32_t));
      ok = ws->argmax != NULL;
    }
  }
  if (!ok) {
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of %s memory for a %d-row workspace",
                     be->iface->name, n_rows);
  }
  return MLXR_OK;
}

static void free_workspace(mlxr_model *m) {
  mlxr_workspace *ws = &m->ws;
  mlxr_backend *be = m->be;
  float *bufs[] = {ws->x, ws->xn, ws->q, ws->k, ws->v, ws->att, ws->ff_gate, ws->ff_up,
                   ws->rope_cos, ws->rope_sin, ws->logits};
  for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) mlxr_backend_buf_free(be, bufs[i]);
  mlxr_backend_buf_free(be, ws->meta);
  mlxr_backend_buf_free(be, ws->argmax);
  free(ws->meta_host);
  free(ws->out_rows_host);
}

static int load_rope(mlxr_model *m, char *err, size_t err_len) {
  const mlxr_hparams *hp = &m->hp;
  const int half = hp->rope_dim / 2;
  m->rope_inv_freq = malloc((size_t)half * sizeof(double));
  if (!m->rope_inv_freq) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  mlxr_weight freqs;
  int rc = bind_vector(m, "rope_freqs.weight", half, false, &freqs, err, err_len);
  if (rc != MLXR_OK) return rc;
  for (int i = 0; i < half; i++) {
    double inv = pow((double)hp->rope_base, -2.0 * i / (double)hp->rope_dim);
    if (freqs.data) {
      const float f = ((const float *)freqs.data)[i];
      if (!(f > 0.0f)) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "rope_freqs has a non-positive factor");
      inv /= f;
    }
    m->rope_inv_freq[i] = inv;
  }
  m->rope_inv_freq_be = mlxr_backend_alloc(m->be, (size_t)half * sizeof(double));
  if (!m->rope_inv_freq_be) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of %s memory", m->be->iface->name);
  rc = mlxr_backend_upload(m->be, m->rope_inv_freq_be, m->rope_inv_freq, (size_t)half * sizeof(double));
  if (rc != MLXR_OK) return mlxr_errf(err, err_len, rc, "uploading rope frequencies failed");
  return MLXR_OK;
}

static int prepare_weights(mlxr_model *m, char *err, size_t err_len);

static int load_tensors(mlxr_model *m, char *err, size_t err_len) {
  mlxr_hparams *hp = &m->hp;
  const mlxr_gguf_tensor *emb = mlxr_gguf_find_tensor(m->gguf, "token_embd.weight");
  if (!emb || emb->n_dims != 2 || emb->ne[0] != hp->n_embd || emb->ne[1] <= 0 || emb->ne[1] > (1 << 24)) {
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "token_embd.weight missing or not [n_embd, n_vocab]");
  }
  hp->n_vocab = (int32_t)emb->ne[1];
  const int64_t E = hp->n_embd, V = hp->n_vocab;
  const int64_t dq = (int64_t)hp->n_head * hp->head_dim_k, dk = (int64_t)hp->n_head_kv * hp->head_dim_k;
  const int64_t dv = (int64_t)hp->n_head_kv * hp->head_dim_v, dov = (int64_t)hp->n_head * hp->head_dim_v;
  int rc;
  if ((rc = bind_weight(m, "token_embd.weight", E, V, true, &m->token_embd, err, err_len))) return rc;
  if ((rc = bind_vector(m, "output_norm.weight", E, true, &m->output_norm, err, err_len))) return rc;
  if ((rc = bind_weight(m, "output.weight", E, V, false, &m->output, err, err_len))) return rc;
  if (!m->output.data) {
    m->output = m->token_embd; /* tied embeddings: the table is also the output head */
  } else {
    m->weight_bytes -= emb->nbytes; /* untied: decoding reads one embedding row, not the table */
  }

  m->layers = calloc((size_t)hp->n_layer, sizeof(mlxr_layer));
  if (!m->layers) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  size_t counts[MLXR_DTYPE_COUNT] = {0};
  for (int32_t l = 0; l < hp->n_layer; l++) {
    mlxr_layer *L = &m->layers[l];
    char name[96];
#define LAYER_NAME(suffix) (snprintf(name, sizeof(name), "blk.%d.%s", (int)l, suffix), name)
    if ((rc = bind_vector(m, LAYER_NAME("attn_norm.weight"), E, true, &L->attn_norm, err, err_len))) return rc;
    if ((rc = bind_weight(m, LAYER_NAME("attn_q.weight"), E, dq, true, &L->wq, err, err_len))) return rc;
    if ((rc = bind_weight(m, LAYER_NAME("attn_k.weight"), E, dk, true, &L->wk, err, err_len))) return rc;
    if ((rc = bind_weight(m, LAYER_NAME("attn_v.weight"), E, dv, true, &L->wv, err, err_len))) return rc;
    if ((rc = bind_weight(m, LAYER_NAME("attn_output.weight"), dov, E, true, &L->wo, err, err_len))) return rc;
    const bool biased = hp->arch == MLXR_ARCH_QWEN2;
    if ((rc = bind_vector(m, LAYER_NAME("attn_q.bias"), dq, biased, &L->bq, err, err_len))) return rc;
    if ((rc = bind_vector(m, LAYER_NAME("attn_k.bias"), dk, biased, &L->bk, err, err_len))) return rc;
    if ((rc = bind_vector(m, LAYER_NAME("attn_v.bias"), dv, biased, &L->bv, err, err_len))) return rc;
    const bool qk_norm = hp->arch == MLXR_ARCH_QWEN3;
    if ((rc = bind_vector(m, LAYER_NAME("attn_q_norm.weight"), hp->head_dim_k, qk_norm, &L->q_norm, err, err_len))) return rc;
    if ((rc = bind_vector(m, LAYER_NAME("attn_k_norm.weight"), hp->head_dim_k, qk_norm, &L->k_norm, err, err_len))) return rc;
    if ((rc = bind_vector(m, LAYER_NAME("ffn_norm.weight"), E, true, &L->ffn_norm, err, err_len))) return rc;
    if ((rc = bind_weight(m, LAYER_NAME("ffn_gate.weight"), E, hp->n_ff, true, &L->w_gate, err, err_len))) return rc;
    if ((rc = bind_weight(m, LAYER_NAME("ffn_up.weight"), E, hp->n_ff, true, &L->w_up, err, err_len))) return rc;
    if ((rc = bind_weight(m, LAYER_NAME("ffn_down.weight"), hp->n_ff, E, true, &L->w_down, err, err_len))) return rc;
#undef LAYER_NAME
    mlxr_weight *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (size_t i = 0; i < sizeof(mats) / sizeof(mats[0]); i++) {
      counts[mats[i]->type] += (size_t)mats[i]->n_in * (size_t)mats[i]->n_out;
    }
  }
  size_t best = 0;
  for (int t = 0; t < MLXR_DTYPE_COUNT; t++) {
    if (counts[t] > best) {
      best = counts[t];
      m->weight_type = (mlxr_dtype)t;
    }
  }
  return prepare_weights(m, err, err_len);
}

/* Ask the backend about every op and type before uploading anything, then prepare each weight. */
static int prepare_weights(mlxr_model *m, char *err, size_t err_len) {
  mlxr_backend *be = m->be;
  const mlxr_backend_iface *op = be->iface;
  const mlxr_hparams *hp = &m->hp;
  const mlxr_op f32_ops[] = {MLXR_OP_RMS_NORM, MLXR_OP_ROPE, MLXR_OP_SWIGLU, MLXR_OP_ADD};
  for (size_t i = 0; i < sizeof(f32_ops) / sizeof(f32_ops[0]); i++) {
    if (!op->supports_op(be, f32_ops[i], MLXR_DTYPE_F32)) {
      return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "backend %s lacks an elementwise op", op->name);
    }
  }
  if (!op->supports_op(be, MLXR_OP_GET_ROWS, m->token_embd.type)) {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "backend %s cannot read %s embeddings", op->name,
                     mlxr_dtype_name(m->token_embd.type));
  }
  if (!op->supports_op(be, MLXR_OP_MATMUL, m->output.type)) {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "backend %s cannot use %s weights", op->name,
                     mlxr_dtype_name(m->output.type));
  }
  for (int32_t l = 0; l < hp->n_layer; l++) {
    mlxr_layer *L = &m->layers[l];
    const mlxr_weight *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    for (size_t i = 0; i < sizeof(mats) / sizeof(mats[0]); i++) {
      if (!op->supports_op(be, MLXR_OP_MATMUL, mats[i]->type)) {
        return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "backend %s cannot use %s weights (layer %d)",
                         op->name, mlxr_dtype_name(mats[i]->type), (int)l);
      }
    }
  }
  mlxr_weight *globals[] = {&m->token_embd, &m->output, &m->output_norm};
  for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++) {
    const int rc = op->weight_prepare(be, globals[i]);
    if (rc != MLXR_OK) {
      return mlxr_errf(err, err_len, rc, "backend %s could not take the %s %s tensor: %s", op->name,
                       mlxr_dtype_name(globals[i]->type), i == 2 ? "output norm" : "embedding",
                       mlxr_status_str(rc));
    }
  }
  for (int32_t l = 0; l < hp->n_layer; l++) {
    mlxr_layer *L = &m->layers[l];
    mlxr_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down, &L->attn_norm,
                         &L->ffn_norm, &L->bq, &L->bk, &L->bv, &L->q_norm, &L->k_norm};
    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
      const int rc = op->weight_prepare(be, ws[i]);
      if (rc != MLXR_OK) {
        return mlxr_errf(err, err_len, rc, "backend %s could not take a %s tensor of layer %d: %s", op->name,
                         mlxr_dtype_name(ws[i]->type), (int)l, mlxr_status_str(rc));
      }
    }
  }
  return MLXR_OK;
}

int mlxr_model_load(mlxr_gguf *g, mlxr_backend *be, mlxr_model_params params, mlxr_model **out,
                    char *err, size_t err_len) {
  *out = NULL;
  mlxr_model *m = calloc(1, sizeof(*m));
  if (!m) {
    mlxr_gguf_close(g);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  m->gguf = g;
  m->be = be;
  int rc = load_hparams(m, err, err_len);
  if (rc == MLXR_OK) rc = load_tensors(m, err, err_len);
  if (rc == MLXR_OK) rc = load_rope(m, err, err_len);
  if (rc == MLXR_OK) {
    const int32_t n = params.n_batch_max > 0 ? params.n_batch_max : 512;
    int32_t n_logits = params.n_logits_max > 0 ? params.n_logits_max : 64;
    if (n_logits > n) n_logits = n;
    rc = alloc_workspace(m, n, n_logits, err, err_len);
  }
  if (rc != MLXR_OK) {
    mlxr_model_free(m);
    return rc;
  }
  *out = m;
  return MLXR_OK;
}

void mlxr_model_free(mlxr_model *m) {
  if (!m) return;
  free_workspace(m);
  for (int32_t i = 0; i < m->n_owned_f32; i++) free(m->owned_f32[i]);
  free(m->owned_f32);
  free(m->layers);
  free(m->rope_inv_freq);
  mlxr_backend_buf_free(m->be, m->rope_inv_freq_be);
  mlxr_gguf_close(m->gguf);
  free(m);
}

const mlxr_hparams *mlxr_model_hparams(const mlxr_model *m) { return &m->hp; }
const mlxr_gguf *mlxr_model_gguf(const mlxr_model *m) { return m->gguf; }
size_t mlxr_model_weight_bytes(const mlxr_model *m) { return m->weight_bytes; }
mlxr_dtype mlxr_model_weight_type(const mlxr_model *m) { return m->weight_type; }

int mlxr_model_forward(mlxr_model *m, const mlxr_kv_view *kv, const mlxr_batch *batch, float *logits,
                       char *err, size_t err_len) {
  if (batch->n <= 0 || batch->n > m->ws.n_rows_max) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "batch of %d rows (max %d)", (int)batch->n,
                     (int)m->ws.n_rows_max);
  }
  for (int32_t r = 0; r < batch->n; r++) {
    if (batch->tokens[r] < 0 || batch->tokens[r] >= m->hp.n_vocab) {
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "token id %d out of range [0, %d)",
                       (int)batch->tokens[r], (int)m->hp.n_vocab);
    }
    if (batch->pos[r] < 0) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "negative position");
  }
  switch (m->hp.arch) {
  case MLXR_ARCH_LLAMA:
  case MLXR_ARCH_QWEN2:
  case MLXR_ARCH_QWEN3:
    return mlxr_llama_forward(m, kv, batch, logits, err, err_len);
  }
  return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "no forward for this architecture");
}
