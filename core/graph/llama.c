/*
 * llama.c: the forward pass of the Llama family (Llama 2, Llama 3.x, Mistral, SmolLM2), with the
 * two variations that Qwen2 (q/k/v biases, NEOX rope) and Qwen3 (per-head RMSNorm on q and k,
 * explicit head_dim) bring. Reads top to bottom, one batch of rows at a time:
 *
 *   x = embed(tokens)                                        [n][E]
 *   for each layer:
 *     h = rmsnorm(x) * attn_norm
 *     q = h Wq^T (+bq)   k = h Wk^T (+bk)   v = h Wv^T (+bv)   [n][H*D], [n][Hkv*D], [n][Hkv*Dv]
 *     (qwen3) q, k = rmsnorm per head * q_norm / k_norm
 *     q, k = rope(q, k, pos)
 *     store k, v at each row's KV slot
 *     a = softmax(q K^T / sqrt(D)) V over the row's sequence, positions [0, pos]   (GQA: H/Hkv
 *         query heads share a kv head)
 *     x += a Wo^T
 *     h = rmsnorm(x) * ffn_norm
 *     x += (silu(h Wg^T) * (h Wu^T)) Wd^T
 *   logits = rmsnorm(x[rows that want logits]) * output_norm  W_out^T
 *
 * RoPE angles are computed per row in double precision (pos * inv_freq[i], llama3 factors folded
 * into inv_freq at load) by the backend's rope_cache op, then handed to the rope op as float
 * cos/sin tables.
 *
 * Data movement: the rows' metadata (token ids, positions, sequences, KV slots, attention
 * lengths) is staged in one host block and uploaded once; everything else stays in backend
 * memory until the logits (or hidden states) are downloaded at the end. A decode-shaped batch
 * (every row wants logits) is offered to the backend as a graph: padded to the backend's
 * graph_rows with rows that write only the KV cache's sink slot, so a device backend can replay
 * one captured forward per row count.
 */
#include <math.h>
#include <string.h>

#include "core/common/status.h"
#include "core/graph/model_impl.h"

/* Offsets of the metadata arrays in the workspace's meta block (N = n_rows_max). */
#define META_SLOTS(N) ((size_t)0)
#define META_TOKENS(N) ((size_t)(N) * 8)
#define META_POS(N) ((size_t)(N) * 12)
#define META_SEQS(N) ((size_t)(N) * 16)
#define META_CTX(N) ((size_t)(N) * 20)
#define META_BYTES(N) ((size_t)(N) * 24)

size_t mlxr_llama_meta_bytes(int32_t n_rows_max) { return META_BYTES(n_rows_max); }

static void *meta_at(void *base, size_t off) { return (uint8_t *)base + off; }

/* Fill the host metadata block for rows [0, n_run): the batch's n rows, then padding rows that
 * read and write only the sink. Returns the largest attention length. */
static int32_t stage_meta(mlxr_workspace *ws, const mlxr_kv_view *kv, const mlxr_batch *b,
                          int32_t n_run) {
  const int32_t N = ws->n_rows_max;
  int64_t *slots = meta_at(ws->meta_host, META_SLOTS(N));
  int32_t *tokens = meta_at(ws->meta_host, META_TOKENS(N)), *pos = meta_at(ws->meta_host, META_POS(N));
  int32_t *seqs = meta_at(ws->meta_host, META_SEQS(N)), *ctx = meta_at(ws->meta_host, META_CTX(N));
  int32_t max_ctx = 1;
  for (int32_t r = 0; r < b->n; r++) {
    slots[r] = b->slots[r];
    tokens[r] = b->tokens[r];
    pos[r] = b->pos[r];
    seqs[r] = b->seqs[r];
    ctx[r] = b->pos[r] + 1;
    if (ctx[r] > max_ctx) max_ctx = ctx[r];
  }
  for (int32_t r = b->n; r < n_run; r++) {
    slots[r] = kv->sink_slot;
    tokens[r] = 0;
    pos[r] = 0;
    seqs[r] = kv->sink_table;
    ctx[r] = 1;
  }
  return max_ctx;
}

/* Rows run: the batch, or the backend's graph size for a decode-shaped batch (0 = no graph). */
static int32_t graph_size(const mlxr_model *m, const mlxr_batch *b) {
  const mlxr_backend_iface *op = m->be->iface;
  if (!op->graph_rows || b->output_hidden) return 0;
  for (int32_t r = 0; r < b->n; r++) {
    const bool want = b->want_logits ? b->want_logits[r] : (r == b->n - 1);
    if (!want) return 0;
  }
  const int32_t g = op->graph_rows(m->be, b->n);
  return g >= b->n && g <= m->ws.n_rows_max && g <= m->ws.n_logits_max ? g : 0;
}

/* ys[i] = x W_i^T (+ b_i) for the weights of one input (q/k/v, gate/up): the backend's fused form
 * where it has one and the weights share n_in, else one product each. */
static int products(mlxr_backend *be, int n, const mlxr_weight *const *ws, const mlxr_weight *const *biases,
                    const float *x, int64_t n_rows, float *const *ys) {
  const mlxr_backend_iface *op = be->iface;
  bool fusable = op->matmul_multi != NULL;
  for (int i = 1; i < n; i++) fusable = fusable && ws[i]->n_in == ws[0]->n_in;
  if (fusable) return op->matmul_multi(be, n, ws, biases, x, n_rows, ys);
  for (int i = 0; i < n; i++) {
    const int rc = op->matmul(be, ws[i], biases ? biases[i] : NULL, x, n_rows, ys[i]);
    if (rc != MLXR_OK) return rc;
  }
  return MLXR_OK;
}

/* y += x W^T: fused where the backend can, else into tmp and added. */
static int product_add(mlxr_backend *be, const mlxr_weight *w, const float *x, int64_t n_rows, float *y, float *tmp) {
  const mlxr_backend_iface *op = be->iface;
  if (op->matmul_acc) return op->matmul_acc(be, w, x, n_rows, y);
  const int rc = op->matmul(be, w, NULL, x, n_rows, tmp);
  if (rc == MLXR_OK) op->add(be, y, tmp, n_rows * w->n_out);
  return rc;
}

/* ys[i] = rms_norm(x) W_i^T: the backend's folded form where it has one for these weights and
 * rows, else rms_norm into xn, then the products. */
static int normed_products(mlxr_backend *be, const mlxr_weight *norm, float eps, int n, const mlxr_weight *const *ws,
                           const mlxr_weight *const *biases, const float *x, int64_t n_rows, int64_t dim, float *xn,
                           float *const *ys) {
  const mlxr_backend_iface *op = be->iface;
  if (op->norm_matmul_multi) {
    const int rc = op->norm_matmul_multi(be, norm, eps, n, ws, biases, x, n_rows, ys);
    if (rc != MLXR_ERR_UNSUPPORTED) return rc;
  }
  op->rms_norm(be, x, norm, n_rows, dim, eps, xn);
  return products(be, n, ws, biases, xn, n_rows, ys);
}

/* y += (silu(gate) * up) W^T: folded where the backend can, else swiglu into gate (in place)
 * and product_add (tmp as there). */
static int swiglu_product_add(mlxr_backend *be, const mlxr_weight *w, float *gate, const float *up, int64_t n_rows,
                              int64_t n_ff, float *y, float *tmp) {
  const mlxr_backend_iface *op = be->iface;
  if (op->swiglu_matmul_acc) {
    const int rc = op->swiglu_matmul_acc(be, w, gate, up, n_rows, y);
    if (rc != MLXR_ERR_UNSUPPORTED) return rc;
  }
  op->swiglu(be, gate, up, gate, n_rows * n_ff);
  return product_add(be, w, gate, n_rows, y, tmp);
}

/* The layers: x = embed(tokens) through every block, for n rows whose metadata is uploaded. */
static int run_layers(mlxr_model *m, const mlxr_kv_view *kv, int32_t n, int32_t max_ctx, char *err,
                      size_t err_len) {
  const mlxr_hparams *hp = &m->hp;
  mlxr_workspace *ws = &m->ws;
  mlxr_backend *be = m->be;
  const mlxr_backend_iface *op = be->iface;
  const int32_t N = ws->n_rows_max;
  const int64_t E = hp->n_embd;
  const int64_t dk = (int64_t)hp->n_head_kv * hp->head_dim_k;
  const int64_t dv = (int64_t)hp->n_head_kv * hp->head_dim_v;
  const int64_t *slots = meta_at(ws->meta, META_SLOTS(N));
  const int32_t *tokens = meta_at(ws->meta, META_TOKENS(N)), *pos = meta_at(ws->meta, META_POS(N));
  const int32_t *seqs = meta_at(ws->meta, META_SEQS(N)), *ctx = meta_at(ws->meta, META_CTX(N));
  int rc;

  if ((rc = op->get_rows(be, &m->token_embd, tokens, n, ws->x)) != MLXR_OK) {
    return mlxr_errf(err, err_len, rc, "embedding lookup failed");
  }
  op->rope_cache(be, pos, n, m->rope_inv_freq_be, hp->rope_dim / 2, hp->rope_linear_scale,
                 ws->rope_cos, ws->rope_sin);

  const mlxr_attn_args attn_template = {
      .n_rows = n,
      .n_head = hp->n_head,
      .n_head_kv = hp->n_head_kv,
      .head_dim_k = hp->head_dim_k,
      .head_dim_v = hp->head_dim_v,
      .q = ws->q,
      .out = ws->att,
      .kv_type = kv->type,
      .block_size = kv->block_size,
      .block_tables = kv->tables,
      .table_stride = kv->table_stride,
      .row_table = seqs,
      .n_ctx = ctx,
      .max_ctx = max_ctx,
      .scale = (float)(1.0 / sqrt((double)hp->head_dim_k)),
  };

  for (int32_t l = 0; l < hp->n_layer; l++) {
    const mlxr_layer *L = &m->layers[l];
    /* attention block */
    const mlxr_weight *qkv[3] = {&L->wq, &L->wk, &L->wv}, *qkv_b[3] = {&L->bq, &L->bk, &L->bv};
    float *qkv_out[3] = {ws->q, ws->k, ws->v};
    if ((rc = normed_products(be, &L->attn_norm, hp->rms_eps, 3, qkv, qkv_b, ws->x, n, E, ws->xn, qkv_out)) !=
        MLXR_OK) {
      return mlxr_errf(err, err_len, rc, "layer %d: q/k/v projection failed", (int)l);
    }
    if (L->q_norm.data) {
      op->rms_norm(be, ws->q, &L->q_norm, n * hp->n_head, hp->head_dim_k, hp->rms_eps, ws->q);
      op->rms_norm(be, ws->k, &L->k_norm, n * hp->n_head_kv, hp->head_dim_k, hp->rms_eps, ws->k);
    }
    if (op->rope_kv_store) {
      op->rope_kv_store(be, ws->q, ws->k, ws->v, n, hp->n_head, hp->n_head_kv, hp->head_dim_k, hp->head_dim_v,
                        hp->rope_dim, hp->rope_mode, ws->rope_cos, ws->rope_sin, slots, kv->k_pools[l],
                        kv->v_pools[l], kv->type);
    } else {
      op->rope(be, ws->q, n, hp->n_head, hp->head_dim_k, hp->rope_dim, hp->rope_mode, ws->rope_cos, ws->rope_sin);
      op->rope(be, ws->k, n, hp->n_head_kv, hp->head_dim_k, hp->rope_dim, hp->rope_mode, ws->rope_cos, ws->rope_sin);
      op->kv_store(be, ws->k, ws->v, n, dk, dv, slots, kv->k_pools[l], kv->v_pools[l], kv->type);
    }

    mlxr_attn_args attn = attn_template;
    attn.k_pool = kv->k_pools[l];
    attn.v_pool = kv->v_pools[l];
    if ((rc = op->attention(be, &attn)) != MLXR_OK) {
      return mlxr_errf(err, err_len, rc, "layer %d: attention failed", (int)l);
    }
    if ((rc = product_add(be, &L->wo, ws->att, n, ws->x, ws->xn)) != MLXR_OK) {
      return mlxr_errf(err, err_len, rc, "layer %d: output projection failed", (int)l);
    }

    /* feed-forward block */
    const mlxr_weight *gu[2] = {&L->w_gate, &L->w_up};
    float *gu_out[2] = {ws->ff_gate, ws->ff_up};
    if ((rc = normed_products(be, &L->ffn_norm, hp->rms_eps, 2, gu, NULL, ws->x, n, E, ws->xn, gu_out)) != MLXR_OK) {
      return mlxr_errf(err, err_len, rc, "layer %d: feed-forward failed", (int)l);
    }
    if ((rc = swiglu_product_add(be, &L->w_down, ws->ff_gate, ws->ff_up, n, hp->n_ff, ws->x, ws->xn)) != MLXR_OK) {
      return mlxr_errf(err, err_len, rc, "layer %d: feed-forward failed", (int)l);
    }
  }
  return MLXR_OK;
}

/* Move the rows that want output to the front of x (rows out_rows[i] >= i, increasing: each copy
 * moves rows down over rows already consumed), one copy per run of consecutive rows that does not
 * overlap its destination. */
static int gather_rows(mlxr_model *m, int32_t n_out) {
  const int64_t E = m->hp.n_embd;
  const int32_t *rows = m->ws.out_rows_host;
  for (int32_t i = 0; i < n_out;) {
    int32_t j = i + 1;
    while (j < n_out && rows[j] == rows[i] + (j - i) && (rows[i] == i || j < rows[i])) j++;
    if (rows[i] != i) {
      const int rc = mlxr_backend_copy(m->be, m->ws.x + (int64_t)i * E, m->ws.x + (int64_t)rows[i] * E,
                                       (size_t)(j - i) * (size_t)E * sizeof(float));
      if (rc != MLXR_OK) return rc;
    }
    i = j;
  }
  return MLXR_OK;
}

/* An error of the backend's own (a device fault surfaces at the next transfer), in words. */
static int backend_failure(mlxr_backend *be, int rc, const char *doing, char *err, size_t err_len) {
  const char *why = be->iface->error_message ? be->iface->error_message(be) : NULL;
  if (rc >= 0) rc = MLXR_ERR_DEVICE;
  return mlxr_errf(err, err_len, rc, "%s backend: %s failed: %s", be->iface->name, doing,
                   why ? why : mlxr_status_str(rc));
}

/* Everything between begin_forward and end_forward: the layers, the output rows moved to the
 * front, the final norm and the first chunk of the output head. */
static int run_forward_ops(mlxr_model *m, const mlxr_kv_view *kv, const mlxr_batch *b, int32_t n_run,
                           bool graph, int32_t n_out, int32_t chunk, int32_t max_ctx, float *logits,
                           char *err, size_t err_len) {
  const mlxr_hparams *hp = &m->hp;
  mlxr_workspace *ws = &m->ws;
  mlxr_backend *be = m->be;
  const mlxr_backend_iface *op = be->iface;
  const bool host = op->host_memory;
  int rc = run_layers(m, kv, n_run, max_ctx, err, err_len);
  if (rc != MLXR_OK || n_out == 0) return rc;
  if ((rc = gather_rows(m, n_out)) != MLXR_OK) return mlxr_errf(err, err_len, rc, "gathering output rows failed");
  /* final norm for every output row (padding rows of a graph included: same shapes each time) */
  const int32_t n_norm = graph ? n_run : n_out;
  float *normed = b->output_hidden && host ? logits : ws->xn;
  op->rms_norm(be, ws->x, &m->output_norm, n_norm, hp->n_embd, hp->rms_eps, normed);
  if (b->output_hidden) return MLXR_OK;
  float *dst = host ? logits : ws->logits;
  if ((rc = op->matmul(be, &m->output, NULL, ws->xn, graph ? n_run : chunk, dst)) != MLXR_OK) {
    return mlxr_errf(err, err_len, rc, "output head failed");
  }
  return MLXR_OK;
}

int mlxr_llama_forward(mlxr_model *m, const mlxr_kv_view *kv, const mlxr_batch *b, float *logits,
                       char *err, size_t err_len) {
  const mlxr_hparams *hp = &m->hp;
  mlxr_workspace *ws = &m->ws;
  mlxr_backend *be = m->be;
  const mlxr_backend_iface *op = be->iface;
  const int64_t E = hp->n_embd, V = hp->n_vocab;
  const bool host = op->host_memory;
  int rc;

  const int32_t g = graph_size(m, b);
  const int32_t n_run = g > 0 ? g : b->n;
  const int32_t max_ctx = stage_meta(ws, kv, b, n_run);
  if ((rc = mlxr_backend_upload(be, ws->meta, ws->meta_host, ws->meta_bytes)) != MLXR_OK) {
    return backend_failure(be, rc, "uploading the batch", err, err_len);
  }
  int32_t n_out = 0;
  for (int32_t r = 0; r < b->n; r++) {
    const bool want = b->want_logits ? b->want_logits[r] : (r == b->n - 1);
    if (want) ws->out_rows_host[n_out++] = r;
  }
  /* the first chunk of output rows is computed inside the forward (a graph needs all of them) */
  const int32_t chunk = host ? n_out : (n_out < ws->n_logits_max ? n_out : ws->n_logits_max);

  mlxr_forward_info info = {.n_rows = n_run, .graph = g > 0};
  int rc_end = MLXR_FORWARD_RERUN;
  for (int attempt = 0; attempt < 2 && rc_end == MLXR_FORWARD_RERUN; attempt++) {
    rc = op->begin_forward ? op->begin_forward(be, &info) : MLXR_OK;
      if (rc < 0) return backend_failure(be, rc, "starting a forward", err, err_len);
    if (rc != MLXR_FORWARD_REPLAYED) rc = run_forward_ops(m, kv, b, n_run, g > 0, n_out, chunk, max_ctx, logits, err, err_len);
    rc_end = op->end_forward ? op->end_forward(be, rc >= 0) : MLXR_OK;
    if (rc < 0) return rc;
    info.graph = false; /* a rerun runs op by op */
  }
  if (rc_end != MLXR_OK) return backend_failure(be, rc_end, "running a forward", err, err_len);
  if (n_out == 0) return MLXR_OK;
  if (host) {
    for (int32_t i = 0; b->argmax_out && i < n_out; i++) b->argmax_out[i] = -1; /* the caller searches */
    return op->synchronize(be);
  }

  if (b->output_hidden) {
    rc = mlxr_backend_download(be, logits, ws->xn, (size_t)n_out * (size_t)E * sizeof(float));
    return rc == MLXR_OK ? MLXR_OK : backend_failure(be, rc, "reading hidden states back", err, err_len);
  }
  /* logits: the first chunk is ready; later chunks (more output rows than the device holds at
   * once: long prompts asking for every row) run the head again, chunk by chunk. Greedy rows get
   * their argmax found on the device and only the id comes back; the other rows' logits are
   * downloaded, one copy per run of consecutive rows. */
  const bool device_argmax = b->greedy && b->argmax_out && ws->argmax && op->argmax_rows;
  for (int32_t c0 = 0; c0 < n_out; c0 += chunk) {
    const int32_t nc = n_out - c0 < chunk ? n_out - c0 : chunk;
    if (c0 > 0 && (rc = op->matmul(be, &m->output, NULL, ws->xn + (int64_t)c0 * E, nc, ws->logits)) != MLXR_OK) {
      return mlxr_errf(err, err_len, rc, "output head failed");
    }
    bool any_greedy = false;
    for (int32_t i = 0; device_argmax && i < nc; i++) any_greedy = any_greedy || b->greedy[ws->out_rows_host[c0 + i]];
    if (any_greedy) {
      if ((rc = op->argmax_rows(be, ws->logits, nc, V, ws->argmax)) != MLXR_OK ||
          (rc = mlxr_backend_download(be, b->argmax_out + c0, ws->argmax, (size_t)nc * sizeof(int32_t))) != MLXR_OK) {
        return backend_failure(be, rc, "greedy sampling on the device", err, err_len);
      }
    }
    for (int32_t i = 0; i < nc;) {
      const bool g = any_greedy && b->greedy[ws->out_rows_host[c0 + i]];
      if (b->argmax_out && !g) b->argmax_out[c0 + i] = -1;
      int32_t j = i + 1;
      while (j < nc && (any_greedy && b->greedy[ws->out_rows_host[c0 + j]]) == g) {
        if (b->argmax_out && !g) b->argmax_out[c0 + j] = -1;
        j++;
      }
      if (!g) {
        rc = mlxr_backend_download(be, logits + (int64_t)(c0 + i) * V, ws->logits + (int64_t)i * V,
                                   (size_t)(j - i) * (size_t)V * sizeof(float));
        if (rc != MLXR_OK) return backend_failure(be, rc, "reading logits back", err, err_len);
      }
      i = j;
    }
  }
  return MLXR_OK;
}
