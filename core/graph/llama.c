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
 * into inv_freq at load), then handed to the rope op as float cos/sin tables.
 */
#include <math.h>
#include <string.h>

#include "core/common/status.h"
#include "core/graph/model_impl.h"

static void fill_rope_tables(const mlxr_model *m, const mlxr_batch *b) {
  const int half = m->hp.rope_dim / 2;
  for (int32_t r = 0; r < b->n; r++) {
    const double p = (double)b->pos[r] / (double)m->hp.rope_linear_scale;
    for (int i = 0; i < half; i++) {
      const double angle = p * m->rope_inv_freq[i];
      m->ws.rope_cos[r * half + i] = (float)cos(angle);
      m->ws.rope_sin[r * half + i] = (float)sin(angle);
    }
  }
}

int mlxr_llama_forward(mlxr_model *m, const mlxr_kv_view *kv, const mlxr_batch *b, float *logits,
                       char *err, size_t err_len) {
  const mlxr_hparams *hp = &m->hp;
  mlxr_workspace *ws = &m->ws;
  mlxr_backend *be = m->be;
  const mlxr_backend_iface *op = be->iface;
  const int64_t n = b->n, E = hp->n_embd;
  const int64_t dk = (int64_t)hp->n_head_kv * hp->head_dim_k;
  const int64_t dv = (int64_t)hp->n_head_kv * hp->head_dim_v;
  int rc;

  if ((rc = op->get_rows(be, &m->token_embd, b->tokens, n, ws->x)) != MLXR_OK) {
    return mlxr_errf(err, err_len, rc, "embedding lookup failed");
  }
  fill_rope_tables(m, b);
  for (int64_t r = 0; r < n; r++) ws->ctx_len[r] = b->pos[r] + 1;

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
      .block_tables = b->block_tables,
      .n_ctx = ws->ctx_len,
      .scale = (float)(1.0 / sqrt((double)hp->head_dim_k)),
  };

  for (int32_t l = 0; l < hp->n_layer; l++) {
    const mlxr_layer *L = &m->layers[l];
    /* attention block */
    op->rms_norm(be, ws->x, L->attn_norm.data, n, E, hp->rms_eps, ws->xn);
    if ((rc = op->matmul(be, &L->wq, &L->bq, ws->xn, n, ws->q)) ||
        (rc = op->matmul(be, &L->wk, &L->bk, ws->xn, n, ws->k)) ||
        (rc = op->matmul(be, &L->wv, &L->bv, ws->xn, n, ws->v))) {
      return mlxr_errf(err, err_len, rc, "layer %d: q/k/v projection failed", (int)l);
    }
    if (L->q_norm.data) {
      op->rms_norm(be, ws->q, L->q_norm.data, n * hp->n_head, hp->head_dim_k, hp->rms_eps, ws->q);
      op->rms_norm(be, ws->k, L->k_norm.data, n * hp->n_head_kv, hp->head_dim_k, hp->rms_eps, ws->k);
    }
    op->rope(be, ws->q, n, hp->n_head, hp->head_dim_k, hp->rope_dim, hp->rope_mode, ws->rope_cos, ws->rope_sin);
    op->rope(be, ws->k, n, hp->n_head_kv, hp->head_dim_k, hp->rope_dim, hp->rope_mode, ws->rope_cos, ws->rope_sin);
    op->kv_store(be, ws->k, ws->v, n, dk, dv, b->slots, kv->k_pools[l], kv->v_pools[l], kv->type);

    mlxr_attn_args attn = attn_template;
    attn.k_pool = kv->k_pools[l];
    attn.v_pool = kv->v_pools[l];
    if ((rc = op->attention(be, &attn)) != MLXR_OK) {
      return mlxr_errf(err, err_len, rc, "layer %d: attention failed", (int)l);
    }
    if ((rc = op->matmul(be, &L->wo, NULL, ws->att, n, ws->xn))) {
      return mlxr_errf(err, err_len, rc, "layer %d: output projection failed", (int)l);
    }
    op->add(be, ws->x, ws->xn, n * E);

    /* feed-forward block */
    op->rms_norm(be, ws->x, L->ffn_norm.data, n, E, hp->rms_eps, ws->xn);
    if ((rc = op->matmul(be, &L->w_gate, NULL, ws->xn, n, ws->ff_gate)) ||
        (rc = op->matmul(be, &L->w_up, NULL, ws->xn, n, ws->ff_up))) {
      return mlxr_errf(err, err_len, rc, "layer %d: feed-forward failed", (int)l);
    }
    op->swiglu(be, ws->ff_gate, ws->ff_up, ws->ff_gate, n * hp->n_ff);
    if ((rc = op->matmul(be, &L->w_down, NULL, ws->ff_gate, n, ws->xn))) {
      return mlxr_errf(err, err_len, rc, "layer %d: feed-forward failed", (int)l);
    }
    op->add(be, ws->x, ws->xn, n * E);
  }

  /* gather the rows that want logits, then the final norm and the output head on those only */
  int32_t n_out = 0;
  for (int32_t r = 0; r < b->n; r++) {
    const bool want = b->want_logits ? b->want_logits[r] : (r == b->n - 1);
    if (want) ws->out_rows[n_out++] = r;
  }
  if (n_out == 0) return MLXR_OK;
  for (int32_t i = 0; i < n_out; i++) {
    if (ws->out_rows[i] != i) memcpy(ws->x + (int64_t)i * E, ws->x + (int64_t)ws->out_rows[i] * E, (size_t)E * sizeof(float));
  }
  if (b->output_hidden) {
    op->rms_norm(be, ws->x, m->output_norm.data, n_out, E, hp->rms_eps, logits);
    return MLXR_OK;
  }
  op->rms_norm(be, ws->x, m->output_norm.data, n_out, E, hp->rms_eps, ws->xn);
  if ((rc = op->matmul(be, &m->output, NULL, ws->xn, n_out, logits)) != MLXR_OK) {
    return mlxr_errf(err, err_len, rc, "output head failed");
  }
  return MLXR_OK;
}
