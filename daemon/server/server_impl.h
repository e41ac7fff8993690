/*
 * server_impl.h: what the files of daemon/server share (not a public interface).
 *
 *   server.c        libmicrohttpd daemons (TCP + Unix socket), body accumulation, dispatch
 *   config.c        defaults, server.yaml (libyaml), environment, flags
 *   auth.c          API keys, CORS allow-list, Host header check
 *   http_util.c     responses, errors in each API's format, JSON field readers, generation sets
 *                   (n scheduler requests feeding one event queue), streamed responses
 *   models.c        the served models: id -> scheduler (loaded lazily, unloadable), chat template
 *   catalog_models.c  the registry's store and catalog opened at startup, catalog models served
 *   routes_registry.c Ollama's model management on the catalog: blobs, dispatch, and the catalog's
 *                   part of tags and show; registry_manage.c create, copy, delete;
 *                   registry_quantize.c create's quantize
 *   chat.c / chat.h messages -> prompt through the template; output parsing (tool calls, <think>)
 *                   and output blocks; tool-call and JSON grammars
 *   generate.c      what generation routes share: sampling fields, tool_choice, chat jobs
 *                   (prompt, submit, stream or drain), metrics of events
 *   resp_store.c    responses kept for previous_response_id (bounded, LRU)
 *   metrics.c       counters and histograms, Prometheus text
 *   routes_*.c      the handlers of each API (OpenAI chat/completions/embeddings, Responses,
 *                   Anthropic Messages, Ollama, llama.cpp extras)
 *
 * Threads: libmicrohttpd runs one thread per connection; a handler runs on its connection's thread
 * and may block (waiting for the scheduler). Shared state (models, metrics) has its own locks.
 */
#ifndef MLXR_DAEMON_SERVER_IMPL_H
#define MLXR_DAEMON_SERVER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "core/runtime/template/template.h"
#include "daemon/registry/catalog.h"
#include "daemon/registry/store.h"
#include "daemon/scheduler/scheduler.h"
#include "daemon/server/chat.h"
#include "daemon/server/server.h"

/* ---- growable byte buffer ---- */
typedef struct mlxr_buf {
  char *p;
  size_t len, cap;
  bool oom;
} mlxr_buf;
void mlxr_buf_add(mlxr_buf *b, const char *s, size_t n);
void mlxr_buf_adds(mlxr_buf *b, const char *s);
void mlxr_buf_free(mlxr_buf *b);

int64_t mlxr_now_ns(void);      /* monotonic */
int64_t mlxr_wall_ns(void);     /* realtime */
/* RFC 3339 UTC with nanoseconds ("2024-05-01T12:00:00.123456789Z") into out[40]. */
void mlxr_rfc3339(int64_t wall_ns, char *out, size_t cap);
/* n random alphanumerics + NUL into out (cap > n). */
void mlxr_random_id(char *out, size_t n);
bool mlxr_utf8_valid(const char *s, size_t n);
/* cJSON_PrintUnformatted, but every number written exactly (shortest spelling that reads back as
 * the same double; cJSON's own rounds past 15 digits). malloc'd; NULL when out of memory. */
char *mlxr_json_print(const cJSON *v);

/* ---- models ---- */
/* An entry's identity (id, path, from_catalog, canon, system, params_json, digest) is fixed from
 * the moment it is published (mlxr_models.n counts it) until mlxr_models_free, so any thread may
 * read it without a lock; a catalog model that is replaced or deleted is marked removed (a
 * tombstone: lookups skip it, acquire refuses it) and a replacement takes a new slot. */
typedef struct mlxr_model_entry {
  char *id;               /* file name without .gguf; a catalog model: its short name "model:tag" */
  char *path;             /* the GGUF file (a catalog model: its model blob in the store) */
  bool from_catalog;      /* served from the registry's catalog (else a --model / models_dir file) */
  char *canon;            /* catalog: the canonical "host/namespace/model:tag" (NULL for files) */
  char *system;           /* catalog: the default system prompt (NULL: none) */
  char *params_json;      /* catalog: default options, a JSON object (NULL: none) */
  char *messages_json;    /* catalog: messages put before a chat's own, a JSON array (NULL: none) */
  char digest[MLXR_DIGEST_HEX_LEN + 1]; /* catalog: the model's digest as /api/tags gives it ("" for files) */
  atomic_bool removed;    /* catalog: deleted or replaced; never served again */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  mlxr_sched *sched;      /* NULL while unloaded */
  int users;              /* requests holding sched */
  bool loading;
  bool unload_when_idle;
  int64_t keep_alive_ns;  /* stay loaded this long after the last request (< 0: forever); the
                             latest request's keep_alive sets it (Ollama's rule) */
  int64_t idle_since_ns;  /* monotonic time users dropped to 0 */
  int64_t load_ns;        /* how long the last load took */
  int64_t loaded_at_wall; /* when it was loaded (ns since epoch) */
  /* facts read at the first load; immutable afterwards */
  bool facts_ready;
  mlxr_template *tmpl;    /* NULL: no usable template (see tmpl_error) */
  char *tmpl_src;
  bool tmpl_is_fallback;  /* the model has none: a ChatML template is used */
  char *tmpl_error;       /* why tmpl is NULL */
  char *bos_text, *eos_text;
  int64_t file_size;
  int64_t mtime_wall;     /* ns since epoch */
  int64_t n_params;
  char family[32];
  char quant[16];
  int32_t n_ctx;
  int32_t n_ctx_train;
  int32_t n_embd;
} mlxr_model_entry;

#define MLXR_MODELS_CATALOG_SLOTS 4096 /* catalog entries created (or replaced) per run */
#define MLXR_DEFAULT_KEEP_ALIVE_NS (5 * 60 * INT64_C(1000000000)) /* Ollama's 5m */

typedef struct mlxr_models {
  mlxr_model_entry *e;      /* [cap]; never moves, so entry pointers stay valid until free */
  _Atomic int n;            /* published entries; grows only (under add_lock), read lock-free */
  int cap;
  pthread_mutex_t add_lock; /* serializes adding entries */
  mlxr_sched_params sp;
  /* the reaper: unloads models idle past their keep_alive */
  pthread_t reaper;
  bool reaper_started;
  bool reaper_stop;         /* under reaper_lock */
  pthread_mutex_t reaper_lock;
  pthread_cond_t reaper_cond;
} mlxr_models;

int mlxr_models_init(mlxr_models *ms, char *const *paths, int n_paths, const char *dir,
                     const mlxr_sched_params *sp, char *err, size_t err_len);
void mlxr_models_free(mlxr_models *ms);
/* By id, "id:latest", or NULL. Catalog models by any spelling of their name (case-insensitive,
 * "name" = "name:latest"). Removed entries are never found. */
mlxr_model_entry *mlxr_models_find(mlxr_models *ms, const char *name);
/* Publish a catalog model: short id, canonical name, its GGUF path, default system prompt, options
 * and messages (each may be NULL; copied). *out (may be NULL) gets the entry. MLXR_ERR_RANGE when every
 * slot is taken. Does not check names against other entries (the caller holds the registry lock
 * and has done that). */
int mlxr_models_add_catalog(mlxr_models *ms, const char *id, const char *canon, const char *path,
                            const char *system, const char *params_json, const char *messages_json, const char *digest_hex,
                            mlxr_model_entry **out, char *err, size_t err_len);
/* Tombstone an entry (removed = true) and unload it once its last request releases it. */
void mlxr_models_remove(mlxr_model_entry *m);
/* Undo mlxr_models_remove (the catalog change that was to follow failed). */
void mlxr_models_restore(mlxr_model_entry *m);
/* Not removed. */
bool mlxr_models_live(mlxr_model_entry *m);
/* Load if needed and hold the scheduler (release with mlxr_models_release). *load_ns gets the time
 * spent loading in this call (0 if it was loaded). */
int mlxr_models_acquire(mlxr_models *ms, mlxr_model_entry *m, mlxr_sched **out, int64_t *load_ns,
                        char *err, size_t err_len);
void mlxr_models_release(mlxr_model_entry *m);
/* Unload now if idle, else when the last user releases it. */
void mlxr_models_unload(mlxr_model_entry *m);
bool mlxr_models_loaded(mlxr_model_entry *m);
/* Set how long the model stays loaded after its last request (< 0: until unloaded or shutdown). */
void mlxr_models_set_keep_alive(mlxr_model_entry *m, int64_t ns);
/* When an idle model will be unloaded, as wall-clock ns since the epoch; INT64_MAX: never. */
int64_t mlxr_models_expires_wall(mlxr_model_entry *m);

/* ---- catalog_models.c: the registry ---- */
/* Layer media types (Ollama's). */
#define MLXR_MEDIA_MODEL "application/vnd.ollama.image.model"
#define MLXR_MEDIA_LICENSE "application/vnd.ollama.image.license"
#define MLXR_MEDIA_MESSAGES "application/vnd.ollama.image.messages"

typedef struct mlxr_registry {
  mlxr_store *store;   /* thread-safe */
  mlxr_catalog *cat;   /* under lock only */
  pthread_mutex_t lock; /* the catalog's one user at a time; orders name checks with entry changes */
  bool lock_ready;
} mlxr_registry;

/* Open the store and catalog at root (created if missing), sweep leftovers, publish the catalog's
 * models into ms. On failure err says which part and why (the caller closes g either way). */
int mlxr_registry_open(mlxr_registry *g, const char *root, mlxr_models *ms, char *err, size_t err_len);
void mlxr_registry_close(mlxr_registry *g);
/* Publish one catalog model as an entry (caller holds g->lock). */
int mlxr_registry_publish(mlxr_registry *g, mlxr_models *ms, const mlxr_model_info *info, mlxr_model_entry **out,
                          char *err, size_t err_len);
/* registry_quantize.c: requantize the GGUF blob digest to type (tools/quantize.h's names) into a
 * new blob, out_digest "sha256:<hex>"; MLXR_ERR_INVALID for an unknown type or a model the
 * quantizer refuses. */
int mlxr_registry_quantize(mlxr_registry *g, const char *digest, const char *type,
                           char out_digest[MLXR_DIGEST_STR_SIZE], char *err, size_t err_len);
/* Remove the temporary outputs of quantizations whose process is gone (at startup). */
void mlxr_registry_sweep_quantize(const char *root);
/* The bytes of a small blob (at most 1 MiB), NUL-terminated and malloc'ed; NULL when missing,
 * larger or unreadable. */
char *mlxr_registry_read_small_blob(mlxr_store *st, const mlxr_blob_ref *b);
/* The model layer of a catalog model, or NULL. */
const mlxr_blob_ref *mlxr_registry_model_blob(const mlxr_model_info *info);
/* The digest /api/tags and /api/ps give a catalog model (64 hex digits, no prefix): the SHA-256 of
 * its layers (media type, digest, size) and its template, system prompt and parameters, so a copy
 * has its source's and any change makes a new one. "" if hashing fails. */
void mlxr_registry_model_digest(const mlxr_model_info *m, char out[MLXR_DIGEST_HEX_LEN + 1]);
/* What the catalog records of a GGUF (read from its header and tensor table). */
typedef struct mlxr_registry_gguf_facts {
  char arch[65];   /* general.architecture, printable */
  char quant[32];  /* the type holding most bytes of the 2-D tensors, upper case ("F32", "Q4_K") */
  int64_t n_params;
  int64_t n_ctx;   /* <arch>.context_length; 0: unknown */
} mlxr_registry_gguf_facts;
int mlxr_registry_read_gguf_facts(const char *path, mlxr_registry_gguf_facts *f, char *err, size_t err_len);
/* A valid name in Ollama's short form ("tiny:latest"); MLXR_ERR_INVALID with err for a bad one. */
int mlxr_registry_short_name(const char *name, char *buf, size_t buf_len, char *err, size_t err_len);

/* ---- metrics ---- */
#define MLXR_HIST_BUCKETS 14
typedef struct mlxr_hist {
  uint64_t counts[MLXR_HIST_BUCKETS + 1]; /* last: +Inf */
  double sum;
  uint64_t n;
} mlxr_hist;

#define MLXR_METRIC_ROUTES 48
typedef struct mlxr_route_count {
  char route[40];
  char method[8];
  int status;
  uint64_t n;
} mlxr_route_count;

typedef struct mlxr_metrics {
  pthread_mutex_t lock;
  mlxr_route_count routes[MLXR_METRIC_ROUTES * 4];
  int n_routes;
  mlxr_hist ttft, itl, e2e, queue;
  uint64_t prompt_tokens, generated_tokens, cancelled;
  uint64_t rejected_busy;   /* 503: a scheduler queue was full */
  uint64_t rate_limited;    /* 429: a key's token bucket was empty */
  int64_t active_streams;
} mlxr_metrics;

/* ---- ratelimit.c: per-API-key token buckets ---- */
typedef struct mlxr_bucket_pair {
  double req, tok;          /* tokens left in each bucket */
  int64_t t_ns;             /* last refill (monotonic); 0: never used (full) */
} mlxr_bucket_pair;

typedef struct mlxr_ratelimit {
  pthread_mutex_t lock;
  int32_t rpm, tpm;         /* capacities (and per-minute refill); 0: that limit is off */
  mlxr_bucket_pair b[MLXR_SERVER_MAX_KEYS + 1]; /* one per configured key, last: keyless */
} mlxr_ratelimit;

void mlxr_ratelimit_init(mlxr_ratelimit *rl, int32_t rpm, int32_t tpm);
void mlxr_ratelimit_free(mlxr_ratelimit *rl);
/* Take one request and `tokens` tokens from bucket slot. On refusal returns false with *retry_s the
 * seconds until both buckets hold enough, *tokens_limited whether the token bucket is the one
 * short, and *never when the request costs more tokens than the bucket holds when full. */
bool mlxr_ratelimit_take(mlxr_ratelimit *rl, int slot, int64_t tokens, double *retry_s,
                         bool *tokens_limited, bool *never);
/* Give back what a take charged (the request was refused further on). */
void mlxr_ratelimit_refund(mlxr_ratelimit *rl, int slot, int64_t tokens);

void mlxr_metrics_init(mlxr_metrics *m);
void mlxr_metrics_free(mlxr_metrics *m);
void mlxr_metrics_request(mlxr_metrics *m, const char *method, const char *route, int status);
void mlxr_metrics_observe(mlxr_metrics *m, mlxr_hist *h, double seconds);
void mlxr_metrics_tokens(mlxr_metrics *m, int64_t prompt, int64_t generated, bool cancelled);

/* ---- the server ---- */
typedef struct mlxr_resp_store mlxr_resp_store;

typedef struct mlxr_server {
  mlxr_server_config *cfg;
  mlxr_resp_store *responses; /* stored /v1/responses (NULL: storing is off) */
  mlxr_models models;
  mlxr_registry reg;
  mlxr_metrics metrics;
  mlxr_ratelimit ratelimit;
  struct MHD_Daemon *tcp;
  struct MHD_Daemon *unix_d;
  int unix_fd;
  bool loopback_bind;
  char hostname[256];
  int64_t start_wall;
} mlxr_server;

typedef enum mlxr_api { MLXR_API_OPENAI, MLXR_API_OLLAMA, MLXR_API_PLAIN, MLXR_API_ANTHROPIC } mlxr_api;

/* One HTTP request, alive from the first callback to MHD's completion notice. */
typedef struct mlxr_req {
  mlxr_server *srv;
  struct MHD_Connection *conn;
  const char *method;
  const char *url;
  mlxr_buf body;
  bool body_too_big;      /* over max_body_bytes: read and dropped, answered 413 */
  uint64_t body_dropped;  /* bytes of such a body read and dropped (closed past server.c's drain_cap) */
  bool via_unix;
  bool is_head;
  const char *origin;     /* allowed Origin to echo in CORS headers, or NULL */
  const char *route;      /* for metrics (static string) */
  mlxr_api api;
  int status;             /* last status queued */
  bool streaming;         /* a streamed response will record its own metrics */
  int64_t t_start;        /* monotonic */
  cJSON *json;            /* parsed body (owned) */
  int key_slot;           /* rate-limit bucket: the matched API key's index, or the keyless one */
  int retry_after_s;      /* > 0: responses carry Retry-After */
  struct mlxr_blob_upload *blob; /* POST /api/blobs/:digest streaming into the store (owned), or NULL */
} mlxr_req;

/* ---- auth.c ---- */
/* 0 to go on; else the response was queued (401/403) and the handler returns its result. */
bool mlxr_auth_host_ok(const mlxr_server *s, const char *host);
bool mlxr_auth_origin_ok(const mlxr_server *s, const char *origin);
bool mlxr_auth_key_ok(const mlxr_server *s, struct MHD_Connection *c);
/* The rate-limit bucket of the request's API key: the index of the configured key it presents, or
 * MLXR_SERVER_MAX_KEYS when none matches (or none is configured). */
int mlxr_auth_key_slot(const mlxr_server *s, struct MHD_Connection *c);
bool mlxr_auth_is_loopback_host(const char *host);

/* ---- http_util.c: responses ---- */
enum MHD_Result mlxr_http_send(mlxr_req *r, int status, const char *ctype, const char *body,
                               size_t len);
/* Serializes and frees obj. */
enum MHD_Result mlxr_http_send_json(mlxr_req *r, int status, cJSON *obj);
/* Error in the API's format. type/code are used for OpenAI (NULL: derived from status); Anthropic's
 * {"type": "error", "error": {type, message}} takes its type from the status. */
enum MHD_Result mlxr_http_error(mlxr_req *r, int status, const char *type, const char *code,
                                const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
void mlxr_http_add_common_headers(mlxr_req *r, struct MHD_Response *resp);
/* Parse the body as a JSON object into r->json; on failure the 400 was sent and false returned
 * (*result holds the MHD result). */
bool mlxr_http_parse_body(mlxr_req *r, enum MHD_Result *result);
/* The same without a request: a body of len bytes (valid UTF-8, one JSON object, only whitespace
 * after it) parsed into a cJSON object the caller deletes; NULL with the 400's message in err. */
cJSON *mlxr_json_parse_body(const char *body, size_t len, char *err, size_t err_len);
/* Does the peer still have the connection open? (false after FIN or reset) */
bool mlxr_http_peer_alive(struct MHD_Connection *c);

/* ---- http_util.c: reading request fields. Each returns true when the field is absent or valid
 * (writing *out only when present), false with msg set when it is present and wrong. ---- */
typedef struct mlxr_field_err {
  char msg[256];
  char param[64];
} mlxr_field_err;
bool mlxr_get_num(const cJSON *o, const char *key, double lo, double hi, double *out,
                  mlxr_field_err *fe);
bool mlxr_get_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                  mlxr_field_err *fe);
bool mlxr_get_bool(const cJSON *o, const char *key, bool *out, mlxr_field_err *fe);
bool mlxr_get_str(const cJSON *o, const char *key, const char **out, mlxr_field_err *fe);
/* stop: a string or an array of up to max strings */
bool mlxr_get_stop(const cJSON *o, const char *key, int max, const char **out, int *n,
                   mlxr_field_err *fe);

/* ---- http_util.c: generation sets ---- */
typedef struct mlxr_ev {
  mlxr_gen_event_kind kind;
  int choice;
  char *text;
  size_t text_len;
  int32_t token;
  float logprob;
  mlxr_token_logprob top[MLXR_MAX_TOP_LOGPROBS];
  int32_t n_top;
  mlxr_finish_reason finish;
  int32_t prompt_tokens, cached_tokens, completion_tokens;
  int64_t queue_ns, prompt_ns, gen_ns;
  int64_t t_ns; /* when the event was queued (monotonic) */
  char *message;
  char *stop_string;  /* DONE: the stop string that ended it, or NULL */
  char *schema_error; /* DONE: why the output breaks the request's JSON schema, or NULL */
  struct mlxr_ev *next;
} mlxr_ev;
void mlxr_ev_free(mlxr_ev *e);

typedef struct mlxr_genset mlxr_genset;
typedef struct mlxr_genset_cb {
  mlxr_genset *gs;
  int choice;
} mlxr_genset_cb;

struct mlxr_genset {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  mlxr_ev *head, *tail;
  int n;                  /* choices submitted */
  int n_open;             /* choices without DONE/ERROR yet */
  mlxr_gen_handle **h;    /* [cap] */
  mlxr_genset_cb *cb;     /* [cap] */
  int cap;
};
int mlxr_genset_init(mlxr_genset *gs, int cap);
/* Submit one more choice; returns the scheduler's status on failure (err set). */
int mlxr_genset_add(mlxr_genset *gs, mlxr_sched *s, const int32_t *prompt, int32_t n_prompt,
                    const mlxr_gen_params *p, char *err, size_t err_len);
/* Next event (caller frees with mlxr_ev_free), waiting while choices are open; NULL when all are
 * done and the queue is empty, or when the peer went away (*gone set; everything is cancelled). */
mlxr_ev *mlxr_genset_next(mlxr_genset *gs, struct MHD_Connection *c, bool *gone);
void mlxr_genset_cancel(mlxr_genset *gs);
void mlxr_genset_free(mlxr_genset *gs);

/* Streamed responses: the formatter turns events into bytes (ev NULL: the stream's end, write the
 * tail). Owns ctx (freed by ctx_free) and the genset. */
typedef void (*mlxr_stream_format)(void *ctx, const mlxr_ev *ev, mlxr_buf *out);
enum MHD_Result mlxr_http_stream(mlxr_req *r, const char *ctype, mlxr_genset *gs,
                                 mlxr_stream_format fmt, void *ctx, void (*ctx_free)(void *),
                                 mlxr_sched *sched_for_release, mlxr_model_entry *m);
/* One server-sent event: "event: NAME\n" (name non-NULL) and "data: JSON\n\n" into out;
 * serializes and frees obj. */
void mlxr_sse_event(mlxr_buf *out, const char *name, cJSON *obj);

/* ---- shared request helpers (routes_openai.c) ---- */
/* Tokenize text; *ids malloc'd. */
int mlxr_tokenize(const mlxr_tokenizer *t, const char *text, bool add_special, int32_t **ids,
                  size_t *n);
/* UTF-8-safe text of one token (invalid bytes become U+FFFD) into out. */
void mlxr_token_piece(const mlxr_tokenizer *t, int32_t id, char *out, size_t cap, int *raw_len,
                      unsigned char *raw, size_t raw_cap);

/* ---- generate.c: shared by the generation routes ---- */
typedef struct mlxr_choice {
  mlxr_buf text;                 /* all generated text */
  mlxr_finish_reason finish;
  char *error;                   /* set if the generation failed */
  int32_t prompt_tokens, completion_tokens, cached_tokens;
  int64_t queue_ns, prompt_ns, gen_ns;
  int32_t *tokens;               /* generated ids */
  int32_t n_tokens, cap_tokens;
  cJSON *logprobs;               /* chat-shaped entries, if asked */
  char *schema_error;            /* the output breaks the JSON schema (see gen_params.json_schema) */
} mlxr_choice;

/* Metrics for one event (TTFT, inter-token latency, queue time, token counts). */
void mlxr_observe_event(mlxr_server *s, const mlxr_ev *e, int64_t t_start, int64_t *last_ns);
/* Run the set to its end into ch[gs->n]; false when the client went away (all cancelled). */
bool mlxr_collect(mlxr_req *r, mlxr_genset *gs, mlxr_choice *ch, const mlxr_tokenizer *tok,
                  bool want_logprobs);
void mlxr_choice_free(mlxr_choice *c);
/* {token, logprob, bytes, top_logprobs:[...]} for one event. */
cJSON *mlxr_logprob_entry(const mlxr_tokenizer *tok, int32_t token, float lp,
                          const mlxr_token_logprob *top, int n_top);
/* Render the chat prompt of messages for m; on failure sends the error and returns NULL. */
char *mlxr_chat_prompt(mlxr_req *r, mlxr_model_entry *m, const cJSON *messages,
                       const cJSON *tools, const cJSON *kwargs, bool ollama, bool add_gen,
                       enum MHD_Result *res);
/* Checks the prompt against the context and the caps (400 with the counts on failure). */
bool mlxr_check_prompt(mlxr_req *r, mlxr_model_entry *m, int32_t n_prompt, enum MHD_Result *res);
/* Clamp max_tokens by the server's cap. */
int32_t mlxr_cap_max_tokens(const mlxr_server *s, int32_t want);
/* Submit copies of a prompt into gs (seed + i for copy i); on failure sends 503/400, cancels
 * what was submitted, and returns false. */
bool mlxr_submit(mlxr_req *r, mlxr_sched *s, mlxr_genset *gs, const int32_t *prompt,
                 int32_t n_prompt, const mlxr_gen_params *gp, int copies, enum MHD_Result *res);
uint64_t mlxr_random_seed(void);
/* Sampling fields every generation API shares, with OpenAI's defaults (temperature 1, top_p 1,
 * no top_k/min_p/penalties, a random seed) into gp->sampling: temperature (0..temp_max), top_p,
 * top_k, min_p, presence/frequency/repeat penalties, repeat_last_n, seed. */
bool mlxr_get_sampling(const cJSON *j, double temp_max, mlxr_gen_params *gp, mlxr_field_err *fe);

/* Tools and tool_choice, the same for every API once its shapes are mapped: tools chat-shaped
 * ([{type: function, function: {name, description, parameters}}]); mode "none", "auto",
 * "required" or "named" (with name). */
typedef struct mlxr_tool_setup {
  const cJSON *tools;   /* what the template is given (the request's, or owned); NULL: none */
  cJSON *owned;         /* a named choice: just that tool */
  bool on;              /* tool calls are parsed out of the output */
  bool forced;          /* the output is constrained to tool calls: grammar is set */
  char *grammar;        /* GBNF of the forced calls */
} mlxr_tool_setup;
/* On failure the 400 was sent (param tool_choice, or tools when a schema cannot be enforced). */
bool mlxr_tool_setup_init(mlxr_req *r, mlxr_tool_setup *ts, const cJSON *tools, const char *mode,
                          const char *name, bool parallel, const char *template_src,
                          enum MHD_Result *res);
void mlxr_tool_setup_free(mlxr_tool_setup *ts);

/* One generation through the chat template (the Responses and Messages routes): load, render and
 * tokenize, submit, then stream or drain through a formatter. */
typedef struct mlxr_chat_job {
  mlxr_model_entry *m;
  mlxr_sched *sched;        /* held from load until free, or handed to the stream */
  const mlxr_tokenizer *tok;
  char *prompt;             /* the rendered prompt */
  int32_t *ids;             /* [n_ids] its tokens */
  int32_t n_ids;
  bool start_think;         /* the prompt opened a <think> block */
  mlxr_genset *gs;
} mlxr_chat_job;
bool mlxr_chat_job_load(mlxr_req *r, mlxr_chat_job *job, mlxr_model_entry *m, enum MHD_Result *res);
/* Render messages (chat-shaped) with tools and kwargs, tokenize and check the length. */
bool mlxr_chat_job_prompt(mlxr_req *r, mlxr_chat_job *job, const cJSON *messages,
                          const cJSON *tools, const cJSON *kwargs, enum MHD_Result *res);
bool mlxr_chat_job_submit(mlxr_req *r, mlxr_chat_job *job, const mlxr_gen_params *gp,
                          enum MHD_Result *res);
/* Streams the events through fmt; the job's genset and model hold pass to the stream. */
enum MHD_Result mlxr_chat_job_stream(mlxr_req *r, mlxr_chat_job *job, mlxr_stream_format fmt,
                                     void *ctx, void (*ctx_free)(void *));
/* Non-streamed: every event, then NULL, through fmt (into a scratch buffer, so one formatter
 * builds both forms); false when the client went away. */
bool mlxr_chat_job_drain(mlxr_req *r, mlxr_chat_job *job, mlxr_stream_format fmt, void *ctx);
void mlxr_chat_job_free(mlxr_chat_job *job);

/* A generation answered as output blocks (reasoning, text, tool calls: chat.h), the shape of the
 * Responses and Anthropic Messages APIs. A route embeds the run as the first member of its context
 * and says, in an api table, how blocks and the response's start and end look on its wire; the
 * shared formatter feeds the generation's text through the blocks, counts usage and knows how it
 * ended, both streamed (events written) and not (only the final object built). */
typedef struct mlxr_block_run mlxr_block_run;
typedef struct mlxr_block_api {
  mlxr_block_ops ops;                 /* each block's open, delta and close (user: the run) */
  void (*start)(mlxr_block_run *run); /* the opening events (streamed only) */
  void (*end)(mlxr_block_run *run);   /* set final (unless error) and write the closing events */
} mlxr_block_api;

struct mlxr_block_run {
  const mlxr_block_api *api;
  mlxr_server *srv;
  bool stream;                 /* events are written; else only final is built */
  mlxr_chat_blocks blocks;
  mlxr_buf *out;               /* the current formatter call's output */
  int64_t t_start, last_ns;    /* monotonic, for the latency metrics */
  bool started;
  bool done;                   /* the generation ended (set before the blocks' last close) */
  mlxr_finish_reason finish;
  char *stop_string;           /* the stop string that ended it, or NULL */
  char *schema_error;          /* the output breaks the request's JSON schema: where and why */
  char *error;                 /* the generation failed: why */
  int32_t n_prompt, cached_tokens, output_tokens, reasoning_tokens;
  cJSON *final;                /* the answer (set by api->end) */
};
void mlxr_block_run_init(mlxr_block_run *run, const mlxr_block_api *api, mlxr_req *r,
                         const mlxr_chat_job *job, const mlxr_tool_setup *ts, bool stream);
/* Frees what the run holds (not the run itself). */
void mlxr_block_run_free(mlxr_block_run *run);
/* Streams the run (ctx: the route's context, whose first member is run; freed by ctx_free), or
 * drains it and answers with final (a 500 when the generation failed). Takes ctx either way. */
enum MHD_Result mlxr_block_run_serve(mlxr_req *r, mlxr_chat_job *job, mlxr_block_run *run,
                                     void (*ctx_free)(void *));

/* The pooling a model's GGUF asks for ({arch}.pooling_type: 3 = last token), else mean. */
mlxr_pooling mlxr_model_pooling(mlxr_sched *sched);
const char *mlxr_finish_name(mlxr_finish_reason f);

/* ---- routes ---- */
enum MHD_Result mlxr_route_openai(mlxr_req *r, const char *path, bool *handled);
/* The request parsers of two APIs without a model or a scheduler (tests/fuzz drives them with
 * mlxr_json_parse_body, mlxr_chat_build_vars and the grammar builders):
 * the model-free fields of a /v1/chat/completions (chat) or /v1/completions body as the route
 * checks them (sampling, max_tokens, n, stream, stop, response_format and grammar, logprobs,
 * logit_bias against n_vocab); and Ollama's keep_alive and options as /api/generate and /api/chat
 * read them (into *gp, *keep_alive_ns, *unload). True when valid, else false with fe set. */
bool mlxr_openai_check_fields(const cJSON *j, bool chat, int32_t n_vocab, mlxr_field_err *fe);
bool mlxr_ollama_check_fields(const cJSON *j, mlxr_gen_params *gp, int64_t *keep_alive_ns, bool *unload,
                              mlxr_field_err *fe);
enum MHD_Result mlxr_route_ollama(mlxr_req *r, const char *path, bool *handled);
/* routes_registry.c: /api/create, /api/copy, /api/delete, HEAD|POST /api/blobs/:digest. */
enum MHD_Result mlxr_route_registry(mlxr_req *r, const char *path, bool *handled);
/* registry_manage.c: the handlers that change the catalog. */
enum MHD_Result mlxr_registry_create(mlxr_req *r);
enum MHD_Result mlxr_registry_copy(mlxr_req *r);
enum MHD_Result mlxr_registry_delete(mlxr_req *r);
/* POST /api/blobs/:digest on its headers: validate the digest and open a store writer into
 * r->blob (or queue the 4xx). The body's pieces go to mlxr_blob_upload_write; the route answers
 * once the body is in. mlxr_blob_upload_free (on completion) drops an unfinished upload. */
enum MHD_Result mlxr_blob_upload_begin(mlxr_req *r);
void mlxr_blob_upload_write(mlxr_req *r, const char *data, size_t n);
void mlxr_blob_upload_free(mlxr_req *r);
/* A catalog model's default options under a request's own (req's "options" replaced by the
 * merge; nothing when the model has none or req's options are malformed). */
void mlxr_registry_apply_options(const mlxr_model_entry *m, cJSON *req);
/* messages after a catalog model's own (create's messages), and its default system prompt first
 * when it has one and messages have none: a new array (the caller deletes it), else NULL (use
 * messages as they are). */
cJSON *mlxr_registry_chat_messages(const mlxr_model_entry *m, const cJSON *messages);
/* The catalog's models for /api/tags (appended to arr). */
void mlxr_registry_tags(mlxr_server *s, cJSON *arr);
/* /api/show of a catalog model: its catalog fields (template, system, parameters, license,
 * modelfile, details, modified_at) replace those o got from the GGUF. */
void mlxr_registry_show(mlxr_server *s, mlxr_model_entry *m, cJSON *o);
enum MHD_Result mlxr_route_extras(mlxr_req *r, const char *path, bool *handled);
enum MHD_Result mlxr_route_responses(mlxr_req *r, const char *path, bool *handled);
enum MHD_Result mlxr_route_anthropic(mlxr_req *r, const char *path, bool *handled);

/* ---- resp_store.c: stored responses, bounded by count and bytes, least recently used out ---- */
mlxr_resp_store *mlxr_resp_store_new(int max_count, size_t max_bytes);
void mlxr_resp_store_free(mlxr_resp_store *st);
/* Keep (copies of) a response object, the conversation it ends (chat-shaped messages, its output
 * included) and its input items, under response->id; replaces an entry of that id. False when it
 * cannot be kept (out of memory, or larger than the whole store). */
bool mlxr_resp_store_put(mlxr_resp_store *st, const cJSON *response, const cJSON *conversation,
                         const cJSON *input_items);
/* Copies of what put kept (any out pointer may be NULL); false when the id is unknown. */
bool mlxr_resp_store_get(mlxr_resp_store *st, const char *id, cJSON **response,
                         cJSON **conversation, cJSON **input_items);
bool mlxr_resp_store_delete(mlxr_resp_store *st, const char *id);
/* A copy of the stored input or output item with this id (item_reference), or NULL. */
cJSON *mlxr_resp_store_item(mlxr_resp_store *st, const char *item_id);
/* Prometheus text exposition of everything. */
void mlxr_metrics_render(mlxr_server *s, mlxr_buf *out);

/* The model a request names (404 sent when unknown, 400 when missing). */
mlxr_model_entry *mlxr_req_model(mlxr_req *r, const char *name, enum MHD_Result *res);
/* Parse the JSON body (into r->json) and find the model its "model" names; NULL when an error
 * was sent (400, 404). */
mlxr_model_entry *mlxr_req_body_model(mlxr_req *r, enum MHD_Result *res);

#endif
