/*
 * scheduler.h: runs generation requests against one loaded model.
 *
 * One scheduler per loaded model owns the engine (model + tokenizer + KV cache) and one worker
 * thread running a step loop: each step builds one batch from all running sequences' next tokens
 * plus chunks of waiting prompts (under a token budget), runs one forward, samples each sequence
 * with its own sampler, turns tokens into UTF-8-safe text deltas, applies stop strings and limits,
 * and reports events to each request's callback. Requests are queued FIFO (bounded: submit answers
 * MLXR_ERR_NO_SPACE when the queue is full) and can be cancelled from any thread; a cancelled or
 * finished request's KV blocks are freed in the next step.
 *
 * Threads: submit/cancel/release and the read-only accessors may be called from any thread. Event
 * callbacks run on the scheduler's worker thread and must be quick (copy the text, signal, return).
 * After an event of kind DONE or ERROR no further events come for that request.
 */
#ifndef MLXR_DAEMON_SCHEDULER_H
#define MLXR_DAEMON_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/runtime/engine.h"
#include "core/runtime/sampler.h"

typedef struct mlxr_sched_params {
  mlxr_engine_params engine;  /* threads, context per sequence, batch rows, kv type ... */
  int32_t max_running;        /* sequences decoding at once (KV sized for this many) */
  int32_t max_queue;          /* waiting requests before submit says NO_SPACE */
  int32_t max_batch_tokens;   /* token budget of one step */
  int32_t target_latency_ms;  /* > 0: cap the prefill rows of a step that also decodes so the step's
                                 estimated time stays under this (see scheduler.c) */
  int64_t kv_bytes;           /* > 0 and engine.kv_blocks <= 0: size the KV pool to this many bytes */
  /* Speculative decoding by prompt lookup (ngram_draft.h): a decoding sequence whose last
   * spec_ngram_min..spec_ngram_max tokens occurred before in its context has up to spec_tokens of
   * what followed verified in the same step (0: off). Exact: every emitted token is sampled from
   * the target's own distribution at its position, so outputs equal non-speculative decoding.
   * Only while at most spec_max_batch sequences decode at once (beyond, verifying costs more than
   * it saves), not for constrained or logprobs requests, and paused for a while in a sequence
   * whose drafts keep being rejected. On the CPU backend only for now (off on a GPU). */
  int32_t spec_tokens;
  int32_t spec_ngram_min, spec_ngram_max;
  int32_t spec_max_batch;
} mlxr_sched_params;

#define MLXR_SPEC_MAX_TOKENS 16

mlxr_sched_params mlxr_sched_default_params(void);

typedef struct mlxr_sched mlxr_sched;

/* Load the model at gguf_path and start the worker thread. */
int mlxr_sched_open(const char *gguf_path, const mlxr_sched_params *params, mlxr_sched **out,
                    char *err, size_t err_len);
/* Cancels everything queued or running (their callbacks get ERROR "shutting down"), joins the
 * worker, frees the engine. */
void mlxr_sched_close(mlxr_sched *s);

/* Read-only facts (immutable after open; any thread). */
const mlxr_tokenizer *mlxr_sched_tokenizer(const mlxr_sched *s);
const mlxr_hparams *mlxr_sched_hparams(const mlxr_sched *s);
const mlxr_gguf *mlxr_sched_gguf(const mlxr_sched *s);
int32_t mlxr_sched_n_ctx(const mlxr_sched *s);
/* The device the model runs on ("cuda:0 (...)", "cpu (2 threads)") and why backends before it
 * were passed over ("" if none): see mlxr_engine_device / mlxr_engine_device_note. */
const char *mlxr_sched_device(const mlxr_sched *s);
const char *mlxr_sched_device_note(const mlxr_sched *s);

typedef enum mlxr_finish_reason {
  MLXR_FINISH_NONE = 0,
  MLXR_FINISH_STOP,      /* end-of-generation token or a stop string */
  MLXR_FINISH_LENGTH,    /* max_tokens or the context is full */
  MLXR_FINISH_CANCELLED, /* cancelled by the client */
} mlxr_finish_reason;

#define MLXR_MAX_STOP 8
#define MLXR_MAX_TOP_LOGPROBS 20

typedef struct mlxr_gen_params {
  mlxr_sampler_params sampling;
  int32_t max_tokens;             /* <= 0: until the context is full */
  const char *stop[MLXR_MAX_STOP];/* stop strings (copied at submit); never emitted */
  int n_stop;
  bool ignore_eos;
  int32_t top_logprobs;           /* < 0: no logprobs; 0..20: logprob of the chosen token + top n */
  const int32_t *bias_ids;        /* logit_bias, copied at submit */
  const float *bias_values;
  int32_t n_bias;
  const char *grammar;            /* GBNF text (root rule "root") the output must match, parsed at
                                     submit (a bad grammar fails the submit); NULL: unconstrained */
  const char *json_schema;        /* JSON schema text (copied at submit): an output that finishes
                                     (STOP) is validated against it, for what the grammar could not
                                     enforce; a violation is reported in DONE's schema_error */
} mlxr_gen_params;

mlxr_gen_params mlxr_gen_default_params(void);

typedef enum mlxr_gen_event_kind {
  MLXR_GEN_TOKEN,  /* a sampled token and the text it completed (may be empty: held back) */
  MLXR_GEN_DONE,   /* finished; finish_reason and usage set; text = any last flushed text */
  MLXR_GEN_ERROR,  /* failed; message set */
} mlxr_gen_event_kind;

typedef struct mlxr_token_logprob {
  int32_t token;
  float logprob;
} mlxr_token_logprob;

typedef struct mlxr_gen_event {
  mlxr_gen_event_kind kind;
  const char *text;       /* text delta (valid UTF-8), valid during the callback only */
  size_t text_len;
  int32_t token;          /* TOKEN: the sampled id */
  float logprob;          /* TOKEN: log p(token) under the model (if logprobs were asked); under a
                             grammar, of the masked distribution (allowed tokens renormalized) */
  const mlxr_token_logprob *top; /* TOKEN: n_top alternatives, best first */
  int32_t n_top;
  mlxr_finish_reason finish_reason; /* DONE */
  int32_t prompt_tokens;      /* DONE: usage */
  int32_t cached_tokens;      /* DONE: prompt tokens served from the prefix cache */
  int32_t completion_tokens;
  int64_t queue_ns, prompt_ns, gen_ns; /* DONE: time waiting, prefilling, generating */
  const char *message;        /* ERROR */
  const char *stop_string;    /* DONE: the stop string that ended the generation (a copy of one of
                                 params.stop, valid during the callback), NULL otherwise */
  const char *schema_error;   /* DONE: why the output breaks params.json_schema (JSON pointer, then
                                 what), valid during the callback; NULL: it conforms or no check */
} mlxr_gen_event;

typedef void (*mlxr_gen_callback)(void *user, const mlxr_gen_event *ev);

typedef struct mlxr_gen_handle mlxr_gen_handle;

/* Queue a generation of the prompt tokens (copied). On success *handle is the caller's until
 * mlxr_sched_release; the callback gets TOKEN events then exactly one DONE or ERROR. Errors:
 * MLXR_ERR_NO_SPACE (queue full), MLXR_ERR_RANGE (prompt longer than the context), INVALID. */
int mlxr_sched_submit(mlxr_sched *s, const int32_t *prompt, int32_t n_prompt,
                      const mlxr_gen_params *params, mlxr_gen_callback cb, void *user,
                      mlxr_gen_handle **handle, char *err, size_t err_len);
/* Ask the request to stop; its DONE (finish CANCELLED) follows from the worker. Any thread. */
void mlxr_sched_cancel(mlxr_gen_handle *h);
/* Give the handle back. If the request has not ended it is cancelled first, and no further
 * callbacks happen after release returns. */
void mlxr_sched_release(mlxr_gen_handle *h);

typedef enum mlxr_pooling { MLXR_POOL_MEAN = 1, MLXR_POOL_LAST = 3 } mlxr_pooling;

/* Embedding of a token sequence: final hidden states pooled (and L2-normalized if normalize) into
 * out[n_embd]. Runs through the worker's queue; blocks the caller until done. */
int mlxr_sched_embed(mlxr_sched *s, const int32_t *tokens, int32_t n, mlxr_pooling pooling, bool normalize,
                     float *out, char *err, size_t err_len);

/* Counters for /metrics and /api/ps (a consistent snapshot). */
typedef struct mlxr_sched_stats {
  int32_t running, waiting;
  int32_t kv_blocks_total, kv_blocks_free;
  uint64_t prompt_tokens_total;    /* prompt tokens prefilled (cache hits excluded) */
  uint64_t cached_tokens_total;    /* prompt tokens served by the prefix cache */
  uint64_t generated_tokens_total, requests_total, steps_total;
  uint64_t preemptions_total;      /* running requests sent back to wait for KV room */
  uint64_t prefix_queries_total;   /* fresh requests that looked up the prefix cache */
  uint64_t prefix_hits_total;      /* ... and reused at least one cached block */
  int32_t kv_blocks_cached;        /* free blocks still holding a cached prefix (evictable) */
  int32_t prefill_cap;             /* prefill rows the latency target allowed in the last mixed
                                      step (0: no cap applied) */
  int64_t kv_bytes;                /* bytes of the KV pool */
  uint64_t spec_proposed_total;    /* drafted tokens verified (speculative decoding) */
  uint64_t spec_accepted_total;    /* ... of which the target agreed with */
} mlxr_sched_stats;
void mlxr_sched_get_stats(mlxr_sched *s, mlxr_sched_stats *out);

#endif
