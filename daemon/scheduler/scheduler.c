/*
 * scheduler.c: see scheduler.h. The worker thread's step loop:
 *
 *   1. under the lock: admit waiting requests into free running slots (a KV sequence each), take
 *      the pending embedding jobs, finish cancelled requests;
 *   2. embeddings: each job runs on a sequence of its own, then frees it;
 *   3. build one batch under max_batch_tokens: the step's plan (step_plan.h: one row per decoding
 *      sequence, prompt chunks of prefilling ones (chunked prefill), preemptions) is made from
 *      plain data and then carried out; logits only for rows that end a prompt or decode;
 *   4. one forward (mlxr_engine_decode), then for each row with logits: logprobs if asked, sample,
 *      detokenize, stop strings, limits; events to the request's callback.
 *
 * Latency target (target_latency_ms): a step that carries decode rows must not be stretched by a
 * long prompt chunk, or every running stream stutters. The worker keeps two moving averages (EMA,
 * weight 1/4 for the newest sample): D, the time of a step with decode rows only (at small batch
 * sizes a CPU decode step is dominated by streaming the weights once, so it hardly depends on the
 * number of rows), and P, the marginal time per prefill row, measured on steps with at least 16
 * prefill rows as (step time - D if it also decoded) / prefill rows. When a step will decode and P
 * is known, the planner (step_plan.c) caps its prefill rows at (target - D) / P, but never below
 * one KV block (16 rows), so waiting prompts still advance (no starvation) and chunks stay
 * block-aligned. A step with no decode rows prefills up to max_batch_tokens: nobody is waiting.
 *
 * KV pool size: engine.kv_blocks if set; else kv_bytes (from server.yaml's kv_cache_mib) divided by
 * the bytes of one block, computed from the model's metadata (layers, KV heads, head sizes, block
 * size, KV element type) and checked against the pool the engine actually made.
 *
 * Requests live in a fixed array of running slots plus a FIFO of waiting ones. A handle is shared
 * by the caller and the worker (refs); it is freed when both are done with it. Callbacks run on the
 * worker without the lock held; `in_callback` lets mlxr_sched_release wait for a running callback.
 */
#include "daemon/scheduler/scheduler.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar.h"
#include "core/formats/gguf.h"
#include "daemon/scheduler/ngram_draft.h"
#include "daemon/scheduler/step_plan.h"
#include "daemon/scheduler/stop_text.h"

typedef enum req_state { REQ_WAITING, REQ_RUNNING, REQ_DONE } req_state;

struct mlxr_gen_handle {
  mlxr_sched *s;
  /* immutable after submit (the prompt part) */
  int32_t *prompt;       /* [n_ctx]: the prompt, then each generated token as it is fed back */
  int32_t n_prompt;
  int32_t n_cached;      /* prompt positions served by the prefix cache */
  mlxr_gen_params params; /* stop / bias pointers cleared: copies live below */
  int32_t *bias_ids;
  float *bias_values;
  mlxr_gen_callback cb;
  void *user;
  /* shared, under s->lock */
  req_state state;
  int refs;              /* caller + worker */
  bool released;         /* caller gave the handle back: no more callbacks */
  bool in_callback;      /* worker is inside cb right now */
  atomic_bool cancelled;
  struct mlxr_gen_handle *next_waiting;
  /* worker-only */
  int seq;
  int32_t n_prefilled;   /* positions already in the KV */
  int32_t prefill_target;/* positions to compute before decoding: n_prompt, or after a preemption
                            everything known but the last sampled token */
  uint64_t admit_order;  /* when it (last) became running: preemption takes the newest */
  int32_t n_computed;    /* positions whose K/V the last forward left in the cache */
  int32_t n_generated;
  int32_t last_token;    /* sampled, not yet fed back */
  mlxr_sampler *sampler;
  /* speculation (worker-only): this step's drafts, and how they have fared */
  int32_t draft[MLXR_SPEC_MAX_TOKENS];
  int32_t n_draft;
  int32_t spec_proposed, spec_accepted; /* since the last pause */
  int32_t spec_resume_at;               /* no drafts before n_generated reaches this */
  mlxr_detok detok;
  mlxr_stop_text stop;
  int64_t t_submit, t_start, t_first;
  /* constrained decoding (params.grammar): parsed at submit, advanced by each sampled token */
  mlxr_grammar *grammar;
  mlxr_grammar_matcher *matcher;
  bool flush_on_stop;    /* a STOP that is not a stop string: held-back text is output */
  const char *stop_string; /* the stop string that ended it (in stop), NULL: none */
  /* post-validation (params.json_schema): the output is kept and checked when it finishes */
  char *json_schema;     /* the schema text (copied at submit), NULL: none */
  char *out_text;        /* [out_len] the output so far (only with json_schema) */
  size_t out_len, out_cap;
  char schema_error[320];/* why the finished output breaks the schema ("" if it does not) */
};

typedef struct embed_job {
  const int32_t *tokens;
  int32_t n;
  bool mean;
  bool normalize;
  float *out;
  int rc;
  char *err;
  size_t err_len;
  bool done;
  struct embed_job *next;
} embed_job;

struct mlxr_sched {
  mlxr_sched_params p;
  mlxr_engine *engine;
  int32_t n_vocab;
  pthread_t worker;
  pthread_mutex_t lock;
  pthread_cond_t wake;      /* worker waits for work */
  pthread_cond_t done_cond; /* callers wait for embed jobs / released callbacks */
  bool stopping;
  mlxr_gen_handle *wait_head, *wait_tail;
  int32_t n_waiting;
  mlxr_gen_handle **running; /* [max_running], NULL = free slot */
  int32_t n_running;
  embed_job *embed_head;
  uint64_t admit_counter;
  mlxr_sched_stats stats;
  /* worker-only buffers */
  mlxr_engine_row *rows;    /* [max_batch_tokens] */
  mlxr_gen_handle **row_req;/* [max_batch_tokens] request of each row that wants logits */
  mlxr_gen_handle **order;  /* [max_running] running requests by admission, this step */
  mlxr_plan_seq *plan_seqs; /* [max_running] the planner's view of order[] */
  int32_t *ctx;             /* [n_ctx] a sequence's tokens, for drafting */
  int32_t n_logit_rows;     /* rows of logits[] and ids[] */
  mlxr_plan_item *plan_items; /* [max_running] */
  int32_t *plan_preempt;    /* [max_running] */
  float *logits;            /* [n_logit_rows][n_vocab]: max_running + the speculation's draft rows */
  int32_t *ids;             /* [n_logit_rows] argmax of greedy rows found by the backend, or -1 */
  mlxr_grammar_vocab *gvocab; /* every token's bytes, built at the first constrained request */
  float *masked;            /* [n_vocab] a row's logits under its grammar's mask (logprobs), lazily */
  mlxr_token_logprob *top;  /* [MLXR_MAX_TOP_LOGPROBS] */
  char *text;               /* detok output scratch */
  size_t text_cap;
  double ema_decode_ns;     /* D: time of a decode-only step (0: not measured yet) */
  double ema_prefill_row_ns;/* P: marginal time per prefill row (0: not measured yet) */
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

mlxr_sched_params mlxr_sched_default_params(void) {
  mlxr_sched_params p = {
      .engine = mlxr_engine_default_params(),
      .max_running = 8,
      .max_queue = 64,
      .max_batch_tokens = 512,
      .spec_tokens = 4,
      .spec_ngram_min = 2,
      .spec_ngram_max = 4,
      .spec_max_batch = 4,
  };
  return p;
}

mlxr_gen_params mlxr_gen_default_params(void) {
  mlxr_gen_params p;
  memset(&p, 0, sizeof(p));
  p.sampling = mlxr_sampler_default_params();
  p.max_tokens = 128;
  p.top_logprobs = -1;
  return p;
}

/* ---- handle lifetime ---- */

static void handle_free(mlxr_gen_handle *h) {
  free(h->prompt);
  free(h->bias_ids);
  free(h->bias_values);
  mlxr_sampler_free(h->sampler);
  mlxr_stop_text_free(&h->stop);
  mlxr_grammar_matcher_free(h->matcher);
  mlxr_grammar_free(h->grammar);
  free(h->json_schema);
  free(h->out_text);
  free(h);
}

/* Drop one reference; caller holds s->lock. Returns true if freed. */
static bool handle_unref_locked(mlxr_gen_handle *h) {
  if (--h->refs == 0) {
    handle_free(h);
    return true;
  }
  return false;
}

/* Deliver an event unless the caller released the handle. Worker thread, lock not held. */
static void emit(mlxr_sched *s, mlxr_gen_handle *h, const mlxr_gen_event *ev) {
  pthread_mutex_lock(&s->lock);
  if (h->released) {
    pthread_mutex_unlock(&s->lock);
    return;
  }
  h->in_callback = true;
  pthread_mutex_unlock(&s->lock);
  h->cb(h->user, ev);
  pthread_mutex_lock(&s->lock);
  h->in_callback = false;
  pthread_cond_broadcast(&s->done_cond);
  pthread_mutex_unlock(&s->lock);
}

/* Keep output text for the post-validation (params.json_schema); worker thread. */
static void keep_text(mlxr_gen_handle *h, const char *text, size_t len) {
  if (!h->json_schema || len == 0) return;
  if (h->out_len + len + 1 > h->out_cap) {
    size_t cap = h->out_cap ? h->out_cap * 2 : 1024;
    while (cap < h->out_len + len + 1) cap *= 2;
    char *p = realloc(h->out_text, cap);
    if (!p) return; /* the check then sees a shorter text and reports it */
    h->out_text = p;
    h->out_cap = cap;
  }
  memcpy(h->out_text + h->out_len, text, len);
  h->out_len += len;
  h->out_text[h->out_len] = '\0';
}

/* End a running or waiting request: final event, KV freed, worker's reference dropped. */
static void finish(mlxr_sched *s, mlxr_gen_handle *h, mlxr_finish_reason reason, const char *error) {
  mlxr_gen_event ev = {.kind = error ? MLXR_GEN_ERROR : MLXR_GEN_DONE, .message = error};
  const char *tail = "";
  size_t tail_len = 0;
  if (!error && (reason != MLXR_FINISH_STOP || h->flush_on_stop) && h->sampler) {
    /* flush held-back bytes and text: nothing more can complete them */
    char buf[64];
    int w = mlxr_detok_flush(&h->detok, buf, sizeof(buf));
    if (w > 0) mlxr_stop_text_append(&h->stop, buf, (size_t)w);
    bool stopped;
    mlxr_stop_text_take(&h->stop, true, &tail, &tail_len, &stopped);
    if (stopped) h->stop_string = h->stop.stops[h->stop.hit];
  }
  keep_text(h, tail, tail_len);
  if (!error && reason == MLXR_FINISH_STOP && h->json_schema) {
    /* what the grammar could not enforce (json_schema.c's `post`) is checked on the whole text */
    char why[300];
    int vr = mlxr_json_schema_validate_text(h->json_schema, strlen(h->json_schema), h->out_text ? h->out_text : "",
                                            h->out_len, why, sizeof why);
    if (vr != MLXR_OK) {
      snprintf(h->schema_error, sizeof h->schema_error, "%s", why[0] ? why : "the output does not match the schema");
      ev.schema_error = h->schema_error;
    }
  }
  const int64_t t = now_ns();
  ev.text = tail;
  ev.text_len = tail_len;
  ev.finish_reason = reason;
  ev.stop_string = h->stop_string;
  ev.prompt_tokens = h->n_prompt;
  ev.cached_tokens = h->n_cached;
  ev.completion_tokens = h->n_generated;
  ev.queue_ns = h->t_start ? h->t_start - h->t_submit : t - h->t_submit;
  ev.prompt_ns = h->t_first ? h->t_first - h->t_start : (h->t_start ? t - h->t_start : 0);
  ev.gen_ns = h->t_first ? t - h->t_first : 0;
  emit(s, h, &ev);
  if (h->seq >= 0) {
    mlxr_kv_seq_free(mlxr_engine_kv(s->engine), h->seq);
    h->seq = -1;
  }
  pthread_mutex_lock(&s->lock);
  if (h->state == REQ_RUNNING) {
    for (int32_t i = 0; i < s->p.max_running; i++) {
      if (s->running[i] == h) s->running[i] = NULL;
    }
    s->n_running--;
  }
  h->state = REQ_DONE;
  s->stats.kv_blocks_free = mlxr_kv_cache_n_free_blocks(mlxr_engine_kv(s->engine));
  pthread_cond_broadcast(&s->done_cond);
  handle_unref_locked(h);
  pthread_mutex_unlock(&s->lock);
}

/* ---- per-token work ---- */

static void compute_logprobs(mlxr_sched *s, const float *logits, int32_t token, int32_t n_top,
                             float *lp_token, int32_t *n_top_out) {
  float mx = logits[0];
  for (int32_t i = 1; i < s->n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
  double z = 0.0;
  for (int32_t i = 0; i < s->n_vocab; i++) z += exp((double)logits[i] - mx);
  const double lz = log(z) + mx;
  *lp_token = (float)(logits[token] - lz);
  if (n_top > MLXR_MAX_TOP_LOGPROBS) n_top = MLXR_MAX_TOP_LOGPROBS;
  if (n_top > s->n_vocab) n_top = s->n_vocab;
  int32_t k = 0;
  for (int32_t i = 0; i < s->n_vocab; i++) { /* insertion into a small sorted list */
    const float v = logits[i];
    if (v == -INFINITY) continue; /* masked out by a grammar */
    if (k == n_top && (n_top == 0 || v <= s->top[k - 1].logprob)) continue;
    int32_t j = k < n_top ? k++ : k - 1;
    while (j > 0 && s->top[j - 1].logprob < v) {
      s->top[j] = s->top[j - 1];
      j--;
    }
    s->top[j] = (mlxr_token_logprob){i, v};
  }
  for (int32_t i = 0; i < k; i++) s->top[i].logprob = (float)(s->top[i].logprob - lz);
  *n_top_out = k;
}

/* Constrained decoding's token filter: an end-of-generation token only where the grammar is
 * complete, any other token only if the matcher takes its bytes. The first-byte mask (256 one-byte
 * tries) is computed only once a few candidates were tested, so a greedy pick that the grammar
 * allows costs one try. */
typedef struct grammar_filter {
  mlxr_sched *s;
  mlxr_gen_handle *h;
  const mlxr_tokenizer *tok;
  bool complete;
  int calls;
  bool have_mask;
  uint8_t mask[32];
} grammar_filter;

static bool grammar_allows(void *ctx, int32_t id) {
  grammar_filter *f = ctx;
  if (mlxr_tokenizer_is_eog(f->tok, id)) return f->complete && !f->h->params.ignore_eos;
  if (!f->have_mask && ++f->calls > 4) {
    mlxr_grammar_matcher_first_bytes(f->h->matcher, f->mask);
    f->have_mask = true;
  }
  return mlxr_grammar_matcher_allows_token(f->h->matcher, f->s->gvocab, id, f->have_mask ? f->mask : NULL);
}

/* The matcher has a complete sentence that nothing may extend: the output is done. */
static bool grammar_done(const mlxr_gen_handle *h) {
  return h->matcher && mlxr_grammar_matcher_is_complete(h->matcher) && !mlxr_grammar_matcher_can_continue(h->matcher);
}

/* The logits with every token the grammar does not allow now set to -inf: logprobs under a grammar
 * are those of the masked distribution the token was drawn from (renormalized over the allowed
 * tokens). Falls back to the plain logits if the scratch row cannot be had. */
static const float *masked_logits(mlxr_sched *s, grammar_filter *f, const float *logits) {
  if (!s->masked && !(s->masked = malloc((size_t)s->n_vocab * sizeof(float)))) return logits;
  for (int32_t i = 0; i < s->n_vocab; i++) s->masked[i] = grammar_allows(f, i) ? logits[i] : -INFINITY;
  return s->masked;
}

/* Greedy with nothing to adjust, no grammar and no logprobs: the argmax may come from the device. */
static bool wants_argmax_only(const mlxr_gen_handle *h) {
  return !h->matcher && h->params.top_logprobs < 0 && mlxr_sampler_is_greedy(h->sampler);
}

/* Sample the next token of h from its logits row (or take device_id, its argmax found by the
 * backend, when >= 0) and report it. Returns true if h finished. */
static bool on_logits(mlxr_sched *s, mlxr_gen_handle *h, const float *logits, int32_t device_id) {
  const mlxr_tokenizer *tok = mlxr_engine_tokenizer(s->engine);
  const float *lp_logits = logits; /* what logprobs are computed from */
  int32_t id;
  if (h->matcher) {
    h->flush_on_stop = true;
    grammar_filter f = {.s = s, .h = h, .tok = tok, .complete = mlxr_grammar_matcher_is_complete(h->matcher)};
    id = grammar_done(h) ? -1 : mlxr_sampler_sample_filtered(h->sampler, logits, grammar_allows, &f);
    if (id < 0) {
      if (f.complete) finish(s, h, MLXR_FINISH_STOP, NULL);
      else finish(s, h, MLXR_FINISH_NONE, "constrained decoding: no token of the vocabulary can continue the grammar");
      return true;
    }
    if (h->params.top_logprobs >= 0) lp_logits = masked_logits(s, &f, logits);
    if (!mlxr_tokenizer_is_eog(tok, id)) {
      size_t len;
      const uint8_t *b = mlxr_grammar_vocab_bytes(s->gvocab, id, &len);
      mlxr_grammar_matcher_accept(h->matcher, b, len);
    }
  } else if (device_id >= 0) {
    id = device_id;
  } else {
    id = mlxr_sampler_sample(h->sampler, logits);
  }
  mlxr_sampler_accept(h->sampler, id);
  if (!h->t_first) h->t_first = now_ns();
  h->n_generated++;
  h->last_token = id;
  if (!h->params.ignore_eos && mlxr_tokenizer_is_eog(tok, id)) {
    h->n_generated--; /* the end token is not part of the completion */
    h->flush_on_stop = true; /* text held back for a stop string that never came is output */
    finish(s, h, MLXR_FINISH_STOP, NULL);
    return true;
  }
  mlxr_gen_event ev = {.kind = MLXR_GEN_TOKEN, .token = id};
  if (h->params.top_logprobs >= 0) {
    compute_logprobs(s, lp_logits, id, h->params.top_logprobs, &ev.logprob, &ev.n_top);
    ev.top = s->top;
  }
  int w = mlxr_detok_push(&h->detok, id, s->text, s->text_cap);
  if (w > 0) mlxr_stop_text_append(&h->stop, s->text, (size_t)w);
  bool stopped;
  mlxr_stop_text_take(&h->stop, false, &ev.text, &ev.text_len, &stopped);
  keep_text(h, ev.text, ev.text_len);
  emit(s, h, &ev);
  if (stopped) {
    h->flush_on_stop = false; /* a stop string: what was held back is the stop string */
    h->stop_string = h->stop.stops[h->stop.hit];
    finish(s, h, MLXR_FINISH_STOP, NULL);
    return true;
  }
  if (grammar_done(h)) { /* the grammar's sentence is complete and cannot go on */
    finish(s, h, MLXR_FINISH_STOP, NULL);
    return true;
  }
  const int32_t pos_next = h->n_prompt + h->n_generated - 1; /* where last_token goes */
  if ((h->params.max_tokens > 0 && h->n_generated >= h->params.max_tokens) ||
      pos_next >= mlxr_engine_n_ctx(s->engine)) {
    finish(s, h, MLXR_FINISH_LENGTH, NULL);
    return true;
  }
  return false;
}

/* ---- the step loop ---- */

static int start_request(mlxr_sched *s, mlxr_gen_handle *h, char *err, size_t err_len) {
  const bool resumed = h->sampler != NULL;
  int32_t cached = 0;
  /* a fresh request must compute its last prompt token (its logits start the completion); a
   * resumed one already holds its next token, so every known position may come from the cache */
  const int32_t max_reuse = resumed ? h->prefill_target : h->n_prompt - 1;
  h->seq = mlxr_kv_seq_new_prefixed(mlxr_engine_kv(s->engine), h->prompt, h->prefill_target,
                                    max_reuse, &cached);
  if (h->seq < 0) return mlxr_errf(err, err_len, MLXR_ERR_NO_SPACE, "no free KV sequence");
  h->n_prefilled = cached;
  h->n_computed = cached;
  if (resumed) return MLXR_OK;
  h->n_cached = cached;
  h->sampler = mlxr_sampler_new(&h->params.sampling, s->n_vocab);
  if (!h->sampler) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  if (h->params.n_bias > 0 &&
      mlxr_sampler_set_logit_bias(h->sampler, h->bias_ids, h->bias_values, h->params.n_bias) != MLXR_OK) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "logit_bias names a token outside the vocabulary");
  }
  for (int32_t i = 0; i < h->n_prompt; i++) mlxr_sampler_accept(h->sampler, h->prompt[i]);
  if (h->matcher && !s->gvocab &&
      mlxr_grammar_vocab_new(mlxr_engine_tokenizer(s->engine), &s->gvocab, err, err_len) != MLXR_OK) {
    return MLXR_ERR_NOMEM;
  }
  mlxr_detok_init(&h->detok, mlxr_engine_tokenizer(s->engine), false);
  h->t_start = now_ns();
  return MLXR_OK;
}

static void run_embed_jobs(mlxr_sched *s, embed_job *jobs) {
  mlxr_kv_cache *kv = mlxr_engine_kv(s->engine);
  for (embed_job *j = jobs; j; j = j->next) {
    int seq = mlxr_kv_seq_new(kv);
    if (seq < 0) {
      j->rc = mlxr_errf(j->err, j->err_len, MLXR_ERR_NO_SPACE, "no free KV sequence for embedding");
    } else {
      j->rc = mlxr_engine_embed(s->engine, seq, j->tokens, j->n, j->mean, j->normalize, j->out, j->err, j->err_len);
      mlxr_kv_seq_free(kv, seq);
    }
  }
  pthread_mutex_lock(&s->lock);
  for (embed_job *j = jobs; j; j = j->next) j->done = true;
  pthread_cond_broadcast(&s->done_cond);
  pthread_mutex_unlock(&s->lock);
}

/* Give a running request's KV back and queue it first in line; it resumes later by recomputing
 * (mostly from the prefix cache, since its full blocks were committed). Worker thread. */
static void preempt(mlxr_sched *s, mlxr_gen_handle *h) {
  mlxr_kv_seq_free(mlxr_engine_kv(s->engine), h->seq);
  h->seq = -1;
  h->prefill_target = h->n_generated > 0 ? h->n_prompt + h->n_generated - 1 : h->n_prompt;
  h->n_prefilled = 0;
  h->n_computed = 0;
  pthread_mutex_lock(&s->lock);
  for (int32_t i = 0; i < s->p.max_running; i++) {
    if (s->running[i] == h) s->running[i] = NULL;
  }
  s->n_running--;
  h->state = REQ_WAITING;
  h->next_waiting = s->wait_head;
  s->wait_head = h;
  if (!s->wait_tail) s->wait_tail = h;
  s->n_waiting++;
  s->stats.preemptions_total++;
  pthread_mutex_unlock(&s->lock);
}

/* Draft h's next tokens by prompt lookup into h->draft (h->n_draft, 0: none this step). */
static void draft_tokens(mlxr_sched *s, mlxr_gen_handle *h, int32_t n_decoding) {
  h->n_draft = 0;
  const int32_t k = s->p.spec_tokens < MLXR_SPEC_MAX_TOKENS ? s->p.spec_tokens : MLXR_SPEC_MAX_TOKENS;
  if (k <= 0 || n_decoding > s->p.spec_max_batch || h->matcher || h->params.top_logprobs >= 0 ||
      h->n_generated < h->spec_resume_at || h->n_generated == 0)
    return;
  /* the context: every known position, then the sampled token not yet fed back */
  const int32_t n_known = h->n_prompt + h->n_generated - 1;
  int32_t room = mlxr_engine_n_ctx(s->engine) - (n_known + 1); /* positions left after the row */
  if (h->params.max_tokens > 0 && h->params.max_tokens - h->n_generated < room) room = h->params.max_tokens - h->n_generated;
  if (room <= 0) return;
  memcpy(s->ctx, h->prompt, (size_t)n_known * sizeof *s->ctx);
  s->ctx[n_known] = h->last_token;
  h->n_draft = mlxr_ngram_propose(s->ctx, n_known + 1, s->p.spec_ngram_min, s->p.spec_ngram_max,
                                  k < room ? k : room, h->draft);
}

/* After a verified step: h's drafts fared accepted of proposed; pause drafting in a sequence whose
 * drafts keep failing (under 1 in 4 accepted over 16 or more), for 32 tokens. h NULL: it ended in
 * this step (only the totals count). */
static void note_acceptance(mlxr_sched *s, mlxr_gen_handle *h, int32_t proposed, int32_t accepted) {
  if (h) { /* NULL: it finished in this step */
    h->spec_proposed += proposed;
    h->spec_accepted += accepted;
    if (h->spec_proposed >= 16 && 4 * h->spec_accepted < h->spec_proposed) {
      h->spec_resume_at = h->n_generated + 32;
      h->spec_proposed = h->spec_accepted = 0;
    }
  }
  pthread_mutex_lock(&s->lock);
  s->stats.spec_proposed_total += (uint64_t)proposed;
  s->stats.spec_accepted_total += (uint64_t)accepted;
  pthread_mutex_unlock(&s->lock);
}

/* Describe the running requests (s->order[0..n_order), oldest first) to the step planner and plan
 * this step into out (its arrays are the scheduler's plan buffers). */
static void plan_step(mlxr_sched *s, int32_t n_order, mlxr_plan *out) {
  const mlxr_kv_cache *kv = mlxr_engine_kv(s->engine);
  int32_t n_decoding = 0;
  for (int32_t i = 0; i < n_order; i++) n_decoding += s->order[i]->n_prefilled >= s->order[i]->prefill_target;
  for (int32_t i = 0; i < n_order; i++) {
    mlxr_gen_handle *h = s->order[i];
    const bool decoding = h->n_prefilled >= h->prefill_target;
    if (decoding) draft_tokens(s, h, n_decoding);
    else h->n_draft = 0;
    s->plan_seqs[i] = (mlxr_plan_seq){
        .decoding = h->n_prefilled >= h->prefill_target,
        .n_prefilled = h->n_prefilled,
        .prefill_target = h->prefill_target,
        .decode_end = h->n_prompt + h->n_generated,
        .kv_tokens = mlxr_kv_seq_len(kv, h->seq),
        .exclusive_blocks = mlxr_kv_seq_n_exclusive_blocks(kv, h->seq),
        .n_draft = h->n_draft,
    };
  }
  const mlxr_plan_input in = {
      .seqs = s->plan_seqs,
      .n_seqs = n_order,
      .max_batch_tokens = s->p.max_batch_tokens,
      .block_size = mlxr_kv_cache_params(kv)->block_size,
      .free_blocks = mlxr_kv_cache_n_free_blocks(kv),
      .target_latency_ms = s->p.target_latency_ms,
      .ema_decode_ns = s->ema_decode_ns,
      .ema_prefill_row_ns = s->ema_prefill_row_ns,
      .max_draft_rows = s->n_logit_rows - s->p.max_running,
  };
  out->items = s->plan_items;
  out->preempt = s->plan_preempt;
  mlxr_step_plan_build(&in, out);
}

/* Fold one forward's duration into the step-cost estimates. */
static void update_step_cost(mlxr_sched *s, int32_t n_decode, int32_t n_prefill, int64_t dt_ns) {
  const double a = 0.25;
  if (n_prefill == 0 && n_decode > 0) {
    s->ema_decode_ns = s->ema_decode_ns > 0 ? (1 - a) * s->ema_decode_ns + a * (double)dt_ns : (double)dt_ns;
  } else if (n_prefill >= 16) {
    double t = (double)dt_ns - (n_decode > 0 ? s->ema_decode_ns : 0);
    if (t < 0.1 * (double)dt_ns) t = 0.1 * (double)dt_ns;
    const double per_row = t / n_prefill;
    s->ema_prefill_row_ns = s->ema_prefill_row_ns > 0 ? (1 - a) * s->ema_prefill_row_ns + a * per_row : per_row;
  }
}

static void *worker_main(void *arg) {
  mlxr_sched *s = arg;
  char err[256];
  for (;;) {
    /* 1. admission, cancellations, embed jobs */
    pthread_mutex_lock(&s->lock);
    while (!s->stopping && s->n_running == 0 && s->n_waiting == 0 && !s->embed_head) {
      pthread_cond_wait(&s->wake, &s->lock);
    }
    if (s->stopping) {
      pthread_mutex_unlock(&s->lock);
      break;
    }
    embed_job *jobs = s->embed_head;
    s->embed_head = NULL;
    mlxr_gen_handle *admitted[64];
    int n_admitted = 0;
    while (s->wait_head && s->n_running < s->p.max_running && n_admitted < 64) {
      mlxr_gen_handle *h = s->wait_head;
      s->wait_head = h->next_waiting;
      if (!s->wait_head) s->wait_tail = NULL;
      s->n_waiting--;
      for (int32_t i = 0; i < s->p.max_running; i++) {
        if (!s->running[i]) {
          s->running[i] = h;
          break;
        }
      }
      s->n_running++;
      h->state = REQ_RUNNING;
      h->admit_order = ++s->admit_counter;
      admitted[n_admitted++] = h;
    }
    pthread_mutex_unlock(&s->lock);

    if (jobs) run_embed_jobs(s, jobs);
    uint64_t cached_now = 0, queries_now = 0, hits_now = 0;
    for (int i = 0; i < n_admitted; i++) {
      if (start_request(s, admitted[i], err, sizeof(err)) != MLXR_OK) {
        finish(s, admitted[i], MLXR_FINISH_NONE, err);
      } else if (admitted[i]->n_generated == 0) {
        cached_now += (uint64_t)admitted[i]->n_prefilled;
        queries_now++;
        hits_now += admitted[i]->n_prefilled > 0;
      }
    }
    /* cancellations (any thread may have set the flag) */
    for (int32_t i = 0; i < s->p.max_running; i++) {
      mlxr_gen_handle *h = s->running[i];
      if (h && atomic_load(&h->cancelled)) finish(s, h, MLXR_FINISH_CANCELLED, NULL);
    }

    /* 2. one batch, oldest request first (step_plan.h: decode rows, prompt chunks under the token
     * budget and the latency target, preemptions when KV blocks run out), then carried out */
    int32_t n_order = 0;
    for (int32_t i = 0; i < s->p.max_running; i++) {
      if (s->running[i]) s->order[n_order++] = s->running[i];
    }
    for (int32_t i = 1; i < n_order; i++) { /* insertion sort by admission */
      mlxr_gen_handle *h = s->order[i];
      int32_t j = i;
      for (; j > 0 && s->order[j - 1]->admit_order > h->admit_order; j--) s->order[j] = s->order[j - 1];
      s->order[j] = h;
    }
    mlxr_plan plan;
    plan_step(s, n_order, &plan);
    for (int32_t i = 0; i < plan.n_preempt; i++) preempt(s, s->order[plan.preempt[i]]);
    if (plan.fail >= 0) finish(s, s->order[plan.fail], MLXR_FINISH_NONE, "the KV cache is too small for this request");
    int32_t n_rows = 0, n_want = 0, n_decode = 0, n_prefill = 0;
    n_order = 0; /* from here: the requests in this step's batch */
    for (int32_t it = 0; it < plan.n_items; it++) {
      const mlxr_plan_item *pi = &plan.items[it];
      mlxr_gen_handle *h = s->order[pi->seq];
      if (mlxr_kv_seq_reserve(mlxr_engine_kv(s->engine), h->seq, pi->start + pi->n) != MLXR_OK) {
        preempt(s, h); /* the plan counts blocks conservatively; this is a safety net only */
        continue;
      }
      s->order[n_order++] = h;
      h->n_computed = pi->start + pi->n;
      if (pi->decode) {
        /* its row, then the drafts the plan kept: every row's logits are verified in order */
        h->n_draft = pi->n - 1;
        h->n_computed = pi->start + 1; /* drafts count once accepted (after sampling) */
        for (int32_t k = 0; k < pi->n; k++) {
          const int32_t tok = k == 0 ? h->last_token : h->draft[k - 1];
          h->prompt[pi->start + k] = tok;
          s->rows[n_rows++] = (mlxr_engine_row){h->seq, pi->start + k, tok, true, wants_argmax_only(h)};
          s->row_req[n_want++] = h;
        }
        n_decode++;
      } else {
        for (int32_t k = 0; k < pi->n; k++) {
          const int32_t pos = pi->start + k;
          /* the last prompt position of a fresh request gives the first token's logits */
          const bool last = h->n_generated == 0 && pos == h->n_prompt - 1;
          s->rows[n_rows++] = (mlxr_engine_row){h->seq, pos, h->prompt[pos], last, last && wants_argmax_only(h)};
          if (last) s->row_req[n_want++] = h;
        }
        h->n_prefilled += pi->n;
        n_prefill += pi->n;
      }
    }
    const int32_t prefill_cap = plan.prefill_cap;
    if (n_rows == 0) continue;

    /* 3. forward, then sample every sequence that got logits */
    const int64_t t_fwd = now_ns();
    int rc = mlxr_engine_decode_ids(s->engine, s->rows, n_rows, s->logits, s->ids, err, sizeof(err));
    if (rc == MLXR_OK) update_step_cost(s, n_decode, n_prefill, now_ns() - t_fwd);
    if (rc != MLXR_OK) {
      for (int32_t i = 0; i < n_order; i++) finish(s, s->order[i], MLXR_FINISH_NONE, err);
      continue;
    }
    /* register newly filled blocks in the prefix cache before sampling can end a request */
    for (int32_t i = 0; i < s->p.max_running; i++) {
      mlxr_gen_handle *h = s->running[i];
      if (!h || h->seq < 0) continue;
      mlxr_kv_seq_commit(mlxr_engine_kv(s->engine), h->seq, h->prompt, h->n_computed);
    }
    uint64_t emitted = 0;
    for (int32_t i = 0; i < n_want;) {
      mlxr_gen_handle *h = s->row_req[i];
      int32_t n_h = 1; /* h's logits rows: 1, or 1 + drafts for a speculating decode */
      while (i + n_h < n_want && s->row_req[i + n_h] == h) n_h++;
      /* sample row by row; row k's input was draft k - 1, valid only if the token sampled from
       * row k - 1 equals it. Stop at the first disagreement (that sampled token is the next one,
       * as without speculation) or when the request ends. */
      const int32_t start = h->n_prompt + h->n_generated - 1;
      int32_t m = 0;
      bool ended = false;
      while (m < n_h) {
        ended = on_logits(s, h, s->logits + (size_t)(i + m) * (size_t)s->n_vocab, s->ids[i + m]);
        m++;
        emitted++;
        if (ended) break; /* h may be gone: finish() dropped the worker's reference */
        if (m < n_h && h->last_token != h->draft[m - 1]) break;
      }
      if (n_h > 1) {
        note_acceptance(s, ended ? NULL : h, n_h - 1, m - 1);
        if (!ended && h->seq >= 0) { /* positions past the accepted ones go */
          h->n_computed = start + m;
          mlxr_kv_seq_truncate(mlxr_engine_kv(s->engine), h->seq, start + m);
        }
      }
      i += n_h;
    }
    pthread_mutex_lock(&s->lock);
    s->stats.steps_total++;
    s->stats.generated_tokens_total += emitted;
    s->stats.prompt_tokens_total += (uint64_t)n_prefill;
    s->stats.cached_tokens_total += cached_now;
    s->stats.prefix_queries_total += queries_now;
    s->stats.prefix_hits_total += hits_now;
    s->stats.prefill_cap = prefill_cap;
    s->stats.kv_blocks_free = mlxr_kv_cache_n_free_blocks(mlxr_engine_kv(s->engine));
    s->stats.kv_blocks_cached = mlxr_kv_cache_n_cached_blocks(mlxr_engine_kv(s->engine));
    pthread_mutex_unlock(&s->lock);
  }
  /* shutting down: end everything */
  for (int32_t i = 0; i < s->p.max_running; i++) {
    if (s->running[i]) finish(s, s->running[i], MLXR_FINISH_NONE, "the server is shutting down");
  }
  for (;;) {
    pthread_mutex_lock(&s->lock);
    mlxr_gen_handle *h = s->wait_head;
    if (h) {
      s->wait_head = h->next_waiting;
      s->n_waiting--;
    }
    embed_job *jobs = s->embed_head;
    s->embed_head = NULL;
    for (embed_job *j = jobs; j; j = j->next) {
      j->rc = mlxr_errf(j->err, j->err_len, MLXR_ERR_INVALID, "the server is shutting down");
      j->done = true;
    }
    pthread_cond_broadcast(&s->done_cond);
    pthread_mutex_unlock(&s->lock);
    if (!h) break;
    h->seq = -1;
    finish(s, h, MLXR_FINISH_NONE, "the server is shutting down");
  }
  return NULL;
}

/* ---- public API ---- */

/* The worker's buffers (mlxr_sched_open allocates them; any may be NULL). */
static void free_buffers(mlxr_sched *s) {
  free(s->running);
  free(s->rows);
  free(s->row_req);
  free(s->order);
  free(s->plan_seqs);
  free(s->plan_items);
  free(s->plan_preempt);
  free(s->ctx);
  free(s->logits);
  free(s->ids);
  free(s->top);
  free(s->text);
}

/* Bytes of one KV block of the model at path, from its metadata (0 if it cannot be told). The
 * engine's choice of KV type is mirrored: F32 for F32 weights, else F16, unless one is forced. */
static int64_t kv_block_bytes_from_gguf(const char *path, const mlxr_engine_params *ep) {
  mlxr_gguf *g = NULL;
  char err[256];
  if (mlxr_gguf_open(path, &g, err, sizeof err) != MLXR_OK) return 0;
  const char *arch = mlxr_gguf_get_str(g, "general.architecture", NULL);
  int64_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, dk = 0, dv = 0;
  char key[160];
#define KEY(suffix, dst) (snprintf(key, sizeof key, "%s." suffix, arch ? arch : ""), mlxr_gguf_get_int(g, key, dst))
  const bool ok = arch && KEY("block_count", &n_layer) && KEY("embedding_length", &n_embd) &&
                  KEY("attention.head_count", &n_head) && n_head > 0;
  if (ok) {
    if (!KEY("attention.head_count_kv", &n_head_kv)) n_head_kv = n_head;
    if (!KEY("attention.key_length", &dk)) dk = n_embd / n_head;
    if (!KEY("attention.value_length", &dv)) dv = dk;
  }
#undef KEY
  int64_t elem = 2;
  if (ep->kv_type == MLXR_DTYPE_F32) {
    elem = 4;
  } else if (ep->kv_type < 0) {
    const mlxr_gguf_tensor *t = mlxr_gguf_find_tensor(g, "blk.0.attn_q.weight");
    if (t && t->type == MLXR_DTYPE_F32) elem = 4;
  }
  mlxr_gguf_close(g);
  if (!ok) return 0;
  const int64_t bs = ep->kv_block_size > 0 ? ep->kv_block_size : 16;
  return n_layer * n_head_kv * (dk + dv) * bs * elem;
}

int mlxr_sched_open(const char *gguf_path, const mlxr_sched_params *params, mlxr_sched **out,
                    char *err, size_t err_len) {
  *out = NULL;
  mlxr_sched *s = calloc(1, sizeof(*s));
  if (!s) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  s->p = *params;
  if (s->p.max_running <= 0) s->p.max_running = 1;
  if (s->p.max_batch_tokens < s->p.max_running) s->p.max_batch_tokens = s->p.max_running;
  mlxr_engine_params ep = s->p.engine;
  ep.max_seqs = s->p.max_running + 1; /* + one for embedding jobs */
  ep.n_batch = s->p.max_batch_tokens;
  ep.load_tokenizer = true;
  int64_t guess_block_bytes = 0;
  if (ep.kv_blocks <= 0 && s->p.kv_bytes > 0) {
    guess_block_bytes = kv_block_bytes_from_gguf(gguf_path, &ep);
    if (guess_block_bytes > 0) {
      const int64_t nb = s->p.kv_bytes / guess_block_bytes;
      ep.kv_blocks = (int32_t)(nb < 1 ? 1 : nb > INT32_MAX ? INT32_MAX : nb);
    }
  }
  int rc = mlxr_engine_open(gguf_path, &ep, &s->engine, err, err_len);
  if (rc == MLXR_OK && guess_block_bytes > 0) {
    /* the metadata guess must match the pool the engine made; if not, size it again exactly */
    const mlxr_kv_cache *kv = mlxr_engine_kv(s->engine);
    const int64_t actual = (int64_t)mlxr_kv_cache_bytes(kv) / mlxr_kv_cache_params(kv)->n_blocks;
    if (actual > 0 && actual != guess_block_bytes) {
      mlxr_engine_close(s->engine);
      s->engine = NULL;
      const int64_t nb = s->p.kv_bytes / actual;
      ep.kv_blocks = (int32_t)(nb < 1 ? 1 : nb > INT32_MAX ? INT32_MAX : nb);
      rc = mlxr_engine_open(gguf_path, &ep, &s->engine, err, err_len);
    }
  }
  if (rc != MLXR_OK) {
    free(s);
    return rc;
  }
  s->n_vocab = mlxr_engine_hparams(s->engine)->n_vocab;
  s->stats.kv_blocks_total = mlxr_kv_cache_params(mlxr_engine_kv(s->engine))->n_blocks;
  s->stats.kv_blocks_free = mlxr_kv_cache_n_free_blocks(mlxr_engine_kv(s->engine));
  s->stats.kv_bytes = (int64_t)mlxr_kv_cache_bytes(mlxr_engine_kv(s->engine));
  s->running = calloc((size_t)s->p.max_running, sizeof(*s->running));
  s->rows = malloc((size_t)s->p.max_batch_tokens * sizeof(*s->rows));
  s->row_req = malloc((size_t)s->p.max_batch_tokens * sizeof(*s->row_req));
  s->order = malloc((size_t)s->p.max_running * sizeof(*s->order));
  s->plan_seqs = malloc((size_t)s->p.max_running * sizeof(*s->plan_seqs));
  s->plan_items = malloc((size_t)s->p.max_running * sizeof(*s->plan_items));
  s->plan_preempt = malloc((size_t)s->p.max_running * sizeof(*s->plan_preempt));
  /* speculation has been measured and checked on the CPU backend only: off on a GPU until the
   * CUDA backend's multi-row decode steps are (tests/gpu, bench/spec_bench.py) */
  if (s->p.spec_tokens < 0 || !mlxr_engine_on_host(s->engine)) s->p.spec_tokens = 0;
  if (s->p.spec_tokens > MLXR_SPEC_MAX_TOKENS) s->p.spec_tokens = MLXR_SPEC_MAX_TOKENS;
  if (s->p.spec_ngram_min < 1) s->p.spec_ngram_min = 1;
  if (s->p.spec_ngram_max < s->p.spec_ngram_min) s->p.spec_ngram_max = s->p.spec_ngram_min;
  if (s->p.spec_max_batch < 0) s->p.spec_max_batch = 0;
  const int32_t spec_seqs = s->p.spec_max_batch < s->p.max_running ? s->p.spec_max_batch : s->p.max_running;
  s->n_logit_rows = s->p.max_running + spec_seqs * s->p.spec_tokens;
  s->logits = malloc((size_t)s->n_logit_rows * (size_t)s->n_vocab * sizeof(float));
  s->ids = malloc((size_t)s->n_logit_rows * sizeof(int32_t));
  s->ctx = malloc((size_t)mlxr_engine_n_ctx(s->engine) * sizeof(int32_t));
  s->top = malloc(MLXR_MAX_TOP_LOGPROBS * sizeof(*s->top));
  s->text_cap = 4096;
  s->text = malloc(s->text_cap);
  if (!s->running || !s->rows || !s->row_req || !s->order || !s->plan_seqs || !s->plan_items || !s->plan_preempt || !s->ctx ||
      !s->logits || !s->ids || !s->top || !s->text) {
    mlxr_engine_close(s->engine);
    free_buffers(s);
    free(s);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->wake, NULL);
  pthread_cond_init(&s->done_cond, NULL);
  if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
    mlxr_engine_close(s->engine);
    free_buffers(s);
    free(s);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "cannot start the scheduler thread");
  }
  *out = s;
  return MLXR_OK;
}

void mlxr_sched_close(mlxr_sched *s) {
  if (!s) return;
  pthread_mutex_lock(&s->lock);
  s->stopping = true;
  pthread_cond_broadcast(&s->wake);
  pthread_mutex_unlock(&s->lock);
  pthread_join(s->worker, NULL);
  mlxr_grammar_vocab_free(s->gvocab);
  free(s->masked);
  mlxr_engine_close(s->engine);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->wake);
  pthread_cond_destroy(&s->done_cond);
  free_buffers(s);
  free(s);
}

const char *mlxr_sched_device(const mlxr_sched *s) { return mlxr_engine_device(s->engine); }
const char *mlxr_sched_device_note(const mlxr_sched *s) { return mlxr_engine_device_note(s->engine); }
const mlxr_tokenizer *mlxr_sched_tokenizer(const mlxr_sched *s) { return mlxr_engine_tokenizer(s->engine); }
const mlxr_hparams *mlxr_sched_hparams(const mlxr_sched *s) { return mlxr_engine_hparams(s->engine); }
const mlxr_gguf *mlxr_sched_gguf(const mlxr_sched *s) {
  return mlxr_model_gguf(mlxr_engine_model(s->engine));
}
int32_t mlxr_sched_n_ctx(const mlxr_sched *s) { return mlxr_engine_n_ctx(s->engine); }

int mlxr_sched_submit(mlxr_sched *s, const int32_t *prompt, int32_t n_prompt,
                      const mlxr_gen_params *params, mlxr_gen_callback cb, void *user,
                      mlxr_gen_handle **handle, char *err, size_t err_len) {
  *handle = NULL;
  if (n_prompt <= 0 || !cb) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "empty prompt");
  if (n_prompt >= mlxr_sched_n_ctx(s)) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE,
                     "the prompt has %d tokens; the context holds %d", (int)n_prompt, (int)mlxr_sched_n_ctx(s));
  }
  for (int32_t i = 0; i < n_prompt; i++) {
    if (prompt[i] < 0 || prompt[i] >= s->n_vocab) {
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "token id %d is outside the vocabulary (%d)",
                       (int)prompt[i], (int)s->n_vocab);
    }
  }
  if (params->n_stop < 0 || params->n_stop > MLXR_MAX_STOP || params->n_bias < 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "too many stop strings");
  }
  mlxr_gen_handle *h = calloc(1, sizeof(*h));
  if (!h) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  h->s = s;
  h->seq = -1;
  h->params = *params;
  h->prompt = malloc((size_t)mlxr_sched_n_ctx(s) * sizeof(int32_t)); /* prompt, then generated */
  int rc = mlxr_stop_text_init(&h->stop, params->stop, params->n_stop);
  if (params->n_bias > 0) {
    h->bias_ids = malloc((size_t)params->n_bias * sizeof(int32_t));
    h->bias_values = malloc((size_t)params->n_bias * sizeof(float));
    if (h->bias_ids && h->bias_values) {
      memcpy(h->bias_ids, params->bias_ids, (size_t)params->n_bias * sizeof(int32_t));
      memcpy(h->bias_values, params->bias_values, (size_t)params->n_bias * sizeof(float));
    }
  }
  if (!h->prompt || rc != MLXR_OK || (params->n_bias > 0 && (!h->bias_ids || !h->bias_values))) {
    handle_free(h);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  if (params->grammar) {
    char gerr[200];
    rc = mlxr_grammar_parse(params->grammar, strlen(params->grammar), NULL, &h->grammar, gerr, sizeof(gerr));
    if (rc == MLXR_OK && !(h->matcher = mlxr_grammar_matcher_new(h->grammar))) rc = MLXR_ERR_NOMEM;
    if (rc == MLXR_OK && !mlxr_grammar_matcher_can_continue(h->matcher) && !mlxr_grammar_matcher_is_complete(h->matcher)) {
      rc = mlxr_errf(gerr, sizeof(gerr), MLXR_ERR_INVALID, "the grammar matches nothing");
    }
    if (rc != MLXR_OK) {
      handle_free(h);
      return mlxr_errf(err, err_len, rc == MLXR_ERR_NOMEM ? rc : MLXR_ERR_INVALID, "grammar: %s",
                       rc == MLXR_ERR_NOMEM ? "out of memory" : gerr);
    }
  }
  h->params.grammar = NULL;
  if (params->json_schema && !(h->json_schema = strdup(params->json_schema))) {
    handle_free(h);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  h->params.json_schema = NULL;
  memset(h->params.stop, 0, sizeof(h->params.stop));
  h->params.bias_ids = NULL;
  h->params.bias_values = NULL;
  memcpy(h->prompt, prompt, (size_t)n_prompt * sizeof(int32_t));
  h->n_prompt = n_prompt;
  h->prefill_target = n_prompt;
  h->cb = cb;
  h->user = user;
  h->refs = 2;
  h->t_submit = now_ns();
  atomic_init(&h->cancelled, false);
  pthread_mutex_lock(&s->lock);
  if (s->stopping || s->n_waiting >= s->p.max_queue) {
    pthread_mutex_unlock(&s->lock);
    handle_free(h);
    return mlxr_errf(err, err_len, MLXR_ERR_NO_SPACE, "server busy: %d requests are waiting", (int)s->p.max_queue);
  }
  h->state = REQ_WAITING;
  if (s->wait_tail) s->wait_tail->next_waiting = h;
  else s->wait_head = h;
  s->wait_tail = h;
  s->n_waiting++;
  s->stats.requests_total++;
  pthread_cond_broadcast(&s->wake);
  pthread_mutex_unlock(&s->lock);
  *handle = h;
  return MLXR_OK;
}

void mlxr_sched_cancel(mlxr_gen_handle *h) {
  if (!h) return;
  atomic_store(&h->cancelled, true);
  mlxr_sched *s = h->s;
  pthread_mutex_lock(&s->lock);
  pthread_cond_broadcast(&s->wake); /* the worker finishes it at its next step */
  pthread_mutex_unlock(&s->lock);
}

void mlxr_sched_release(mlxr_gen_handle *h) {
  if (!h) return;
  mlxr_sched *s = h->s;
  pthread_mutex_lock(&s->lock);
  bool ended = h->state == REQ_DONE;
  pthread_mutex_unlock(&s->lock);
  if (!ended) mlxr_sched_cancel(h);
  pthread_mutex_lock(&s->lock);
  h->released = true;
  while (h->in_callback) pthread_cond_wait(&s->done_cond, &s->lock);
  handle_unref_locked(h);
  pthread_mutex_unlock(&s->lock);
}

int mlxr_sched_embed(mlxr_sched *s, const int32_t *tokens, int32_t n, mlxr_pooling pooling, bool normalize,
                     float *out, char *err, size_t err_len) {
  if (n <= 0) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "nothing to embed");
  if (n > mlxr_sched_n_ctx(s)) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "the input has %d tokens; the context holds %d",
                     (int)n, (int)mlxr_sched_n_ctx(s));
  }
  for (int32_t i = 0; i < n; i++) {
    if (tokens[i] < 0 || tokens[i] >= s->n_vocab) {
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "token id %d is outside the vocabulary", (int)tokens[i]);
    }
  }
  embed_job job = {.tokens = tokens, .n = n, .mean = pooling != MLXR_POOL_LAST, .normalize = normalize, .out = out,
                   .err = err, .err_len = err_len};
  pthread_mutex_lock(&s->lock);
  if (s->stopping) {
    pthread_mutex_unlock(&s->lock);
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "the server is shutting down");
  }
  job.next = s->embed_head;
  s->embed_head = &job;
  pthread_cond_broadcast(&s->wake);
  while (!job.done) pthread_cond_wait(&s->done_cond, &s->lock);
  pthread_mutex_unlock(&s->lock);
  return job.rc;
}

void mlxr_sched_get_stats(mlxr_sched *s, mlxr_sched_stats *out) {
  pthread_mutex_lock(&s->lock);
  *out = s->stats;
  out->running = s->n_running;
  out->waiting = s->n_waiting;
  pthread_mutex_unlock(&s->lock);
}
