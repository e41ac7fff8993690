/*
 * generate.c: the pieces every generation route shares: the chat prompt, prompt-length checks,
 * submitting n choices to the scheduler (per-key rate limit first; 429 or 503 with Retry-After
 * when refused), collecting a generation set into per-choice results for non-streamed responses,
 * logprob entries and the latency metrics taken from the events; the sampling fields and the
 * tools/tool_choice rules that the OpenAI, Responses and Anthropic routes all apply; and chat jobs:
 * one generation through the template, from model load to a streamed or drained formatter (a
 * route writes one formatter that both streams events and builds its non-streamed object); and
 * block runs, the formatter of the APIs whose answers are made of output blocks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/common/status.h"
#include "daemon/server/chat.h"
#include "daemon/server/server_impl.h"

uint64_t mlxr_random_seed(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = (uint64_t)mlxr_now_ns() * 0x9E3779B97F4A7C15ull;
  return s;
}

mlxr_pooling mlxr_model_pooling(mlxr_sched *sched) {
  const mlxr_gguf *g = mlxr_sched_gguf(sched);
  const char *arch = mlxr_gguf_get_str(g, "general.architecture", NULL);
  char key[96];
  int64_t v = 0;
  snprintf(key, sizeof key, "%s.pooling_type", arch ? arch : "");
  if (arch && mlxr_gguf_get_int(g, key, &v) && v == MLXR_POOL_LAST) return MLXR_POOL_LAST;
  return MLXR_POOL_MEAN;
}

const char *mlxr_finish_name(mlxr_finish_reason f) {
  switch (f) {
  case MLXR_FINISH_LENGTH: return "length";
  case MLXR_FINISH_CANCELLED: return "cancelled";
  default: return "stop";
  }
}

int mlxr_tokenize(const mlxr_tokenizer *t, const char *text, bool add_special, int32_t **ids,
                  size_t *n) {
  mlxr_tokenize_params tp = {.add_special = add_special, .parse_special = true};
  return mlxr_tokenizer_encode(t, text, strlen(text), tp, ids, n);
}

void mlxr_token_piece(const mlxr_tokenizer *t, int32_t id, char *out, size_t cap, int *raw_len,
                      unsigned char *raw, size_t raw_cap) {
  char tmp[512];
  int n = mlxr_tokenizer_token_bytes(t, id, true, tmp, sizeof tmp);
  if (n < 0) n = 0;
  if ((size_t)n > sizeof tmp) n = (int)sizeof tmp;
  if (raw) {
    size_t k = (size_t)n < raw_cap ? (size_t)n : raw_cap;
    memcpy(raw, tmp, k);
    if (raw_len) *raw_len = (int)k;
  }
  /* copy, replacing bytes that do not form valid UTF-8 with U+FFFD */
  size_t o = 0;
  int i = 0;
  while (i < n && o + 4 < cap) {
    unsigned c = (unsigned char)tmp[i];
    int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (k >= 0 && i + k < n && mlxr_utf8_valid(tmp + i, (size_t)k + 1)) {
      memcpy(out + o, tmp + i, (size_t)k + 1);
      o += (size_t)k + 1;
      i += k + 1;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  out[o] = '\0';
}

static cJSON *bytes_array(const unsigned char *raw, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(raw[i]));
  return a;
}

cJSON *mlxr_logprob_entry(const mlxr_tokenizer *tok, int32_t token, float lp,
                          const mlxr_token_logprob *top, int n_top) {
  char piece[1600];
  unsigned char raw[512];
  int raw_len = 0;
  cJSON *e = cJSON_CreateObject();
  mlxr_token_piece(tok, token, piece, sizeof piece, &raw_len, raw, sizeof raw);
  cJSON_AddStringToObject(e, "token", piece);
  cJSON_AddNumberToObject(e, "logprob", lp);
  cJSON_AddItemToObject(e, "bytes", bytes_array(raw, raw_len));
  cJSON *tops = cJSON_AddArrayToObject(e, "top_logprobs");
  for (int i = 0; i < n_top; i++) {
    cJSON *t = cJSON_CreateObject();
    mlxr_token_piece(tok, top[i].token, piece, sizeof piece, &raw_len, raw, sizeof raw);
    cJSON_AddStringToObject(t, "token", piece);
    cJSON_AddNumberToObject(t, "logprob", top[i].logprob);
    cJSON_AddItemToObject(t, "bytes", bytes_array(raw, raw_len));
    cJSON_AddItemToArray(tops, t);
  }
  return e;
}

void mlxr_observe_event(mlxr_server *s, const mlxr_ev *e, int64_t t_start, int64_t *last_ns) {
  if (e->kind == MLXR_GEN_TOKEN) {
    if (*last_ns == 0) mlxr_metrics_observe(&s->metrics, &s->metrics.ttft, (double)(e->t_ns - t_start) / 1e9);
    else mlxr_metrics_observe(&s->metrics, &s->metrics.itl, (double)(e->t_ns - *last_ns) / 1e9);
    *last_ns = e->t_ns;
  } else if (e->kind == MLXR_GEN_DONE) {
    mlxr_metrics_observe(&s->metrics, &s->metrics.queue, (double)e->queue_ns / 1e9);
    mlxr_metrics_tokens(&s->metrics, e->prompt_tokens, e->completion_tokens, e->finish == MLXR_FINISH_CANCELLED);
  }
}

void mlxr_choice_free(mlxr_choice *c) {
  mlxr_buf_free(&c->text);
  free(c->error);
  free(c->tokens);
  cJSON_Delete(c->logprobs);
  free(c->schema_error);
  memset(c, 0, sizeof(*c));
}

bool mlxr_collect(mlxr_req *r, mlxr_genset *gs, mlxr_choice *ch, const mlxr_tokenizer *tok,
                  bool want_logprobs) {
  int64_t *last = calloc((size_t)(gs->n > 0 ? gs->n : 1), sizeof(int64_t));
  bool gone = false;
  mlxr_ev *e;
  while ((e = mlxr_genset_next(gs, r->conn, &gone))) {
    mlxr_choice *c = &ch[e->choice];
    if (last) mlxr_observe_event(r->srv, e, r->t_start, &last[e->choice]);
    if (e->text_len) mlxr_buf_add(&c->text, e->text, e->text_len);
    if (e->kind == MLXR_GEN_TOKEN) {
      if (c->n_tokens == c->cap_tokens) {
        int32_t nc = c->cap_tokens ? c->cap_tokens * 2 : 64;
        int32_t *nt = realloc(c->tokens, (size_t)nc * sizeof(int32_t));
        if (nt) c->tokens = nt, c->cap_tokens = nc;
      }
      if (c->n_tokens < c->cap_tokens) c->tokens[c->n_tokens++] = e->token;
      if (want_logprobs) {
        if (!c->logprobs) c->logprobs = cJSON_CreateArray();
        cJSON_AddItemToArray(c->logprobs, mlxr_logprob_entry(tok, e->token, e->logprob, e->top, e->n_top));
      }
    } else if (e->kind == MLXR_GEN_DONE) {
      c->finish = e->finish;
      c->prompt_tokens = e->prompt_tokens;
      c->completion_tokens = e->completion_tokens;
      c->cached_tokens = e->cached_tokens;
      c->queue_ns = e->queue_ns;
      c->prompt_ns = e->prompt_ns;
      c->gen_ns = e->gen_ns;
      if (e->schema_error) {
        free(c->schema_error);
        c->schema_error = e->schema_error;
        e->schema_error = NULL;
      }
    } else {
      c->error = strdup(e->message ? e->message : "generation failed");
    }
    mlxr_ev_free(e);
  }
  free(last);
  if (gone) mlxr_metrics_tokens(&r->srv->metrics, 0, 0, true);
  if (!gone) {
    double secs = (double)(mlxr_now_ns() - r->t_start) / 1e9;
    mlxr_metrics_observe(&r->srv->metrics, &r->srv->metrics.e2e, secs);
  }
  return !gone;
}

char *mlxr_chat_prompt(mlxr_req *r, mlxr_model_entry *m, const cJSON *messages,
                       const cJSON *tools, const cJSON *kwargs, bool ollama, bool add_gen,
                       enum MHD_Result *res) {
  char err[1024] = "";
  if (!m->tmpl) {
    *res = mlxr_http_error(r, 500, NULL, NULL, NULL, "%s", m->tmpl_error ? m->tmpl_error : "the model has no chat template");
    return NULL;
  }
  cJSON *vars = mlxr_chat_build_vars(messages, tools, kwargs, ollama, add_gen, m->bos_text, m->eos_text, err, sizeof err);
  if (!vars) {
    *res = mlxr_http_error(r, 400, NULL, NULL, "messages", "%s", err);
    return NULL;
  }
  char *prompt = NULL;
  int rc = mlxr_chat_render(m->tmpl, vars, &prompt, err, sizeof err);
  cJSON_Delete(vars);
  if (rc < 0) {
    *res = mlxr_http_error(r, 400, NULL, NULL, "messages", "chat template error: %s", err);
    return NULL;
  }
  return prompt;
}

bool mlxr_check_prompt(mlxr_req *r, mlxr_model_entry *m, int32_t n_prompt, enum MHD_Result *res) {
  int32_t n_ctx = m->n_ctx;
  int32_t cap = r->srv->cfg->max_prompt_tokens;
  if (n_prompt <= 0) {
    *res = mlxr_http_error(r, 400, NULL, NULL, "prompt", "the prompt is empty");
    return false;
  }
  if (n_prompt < n_ctx && (cap <= 0 || n_prompt <= cap)) return true;
  int32_t limit = n_prompt >= n_ctx ? n_ctx : cap;
  char msg[512];
  snprintf(msg, sizeof msg,
           "the request exceeds the available context size: the prompt has %d tokens, the limit is %d "
           "(context %d tokens, and at least one token must be left to generate)",
           n_prompt, limit - (n_prompt >= n_ctx ? 1 : 0), n_ctx);
  if (r->api == MLXR_API_OLLAMA || r->api == MLXR_API_ANTHROPIC) { /* their own error shapes */
    *res = mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", msg);
    return false;
  }
  cJSON *o = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(o, "error");
  cJSON_AddStringToObject(e, "message", msg);
  cJSON_AddStringToObject(e, "type", "invalid_request_error");
  cJSON_AddStringToObject(e, "param", "messages");
  cJSON_AddStringToObject(e, "code", "context_length_exceeded");
  cJSON_AddNumberToObject(e, "n_prompt_tokens", n_prompt);
  cJSON_AddNumberToObject(e, "n_ctx", n_ctx);
  *res = mlxr_http_send_json(r, 400, o);
  return false;
}

int32_t mlxr_cap_max_tokens(const mlxr_server *s, int32_t want) {
  int32_t cap = s->cfg->max_tokens;
  if (cap > 0 && (want <= 0 || want > cap)) return cap;
  return want;
}

/* Retry-After for a 503: the mean time requests have been waiting in the queue, 1..60 s. */
static int busy_retry_after(mlxr_server *srv) {
  pthread_mutex_lock(&srv->metrics.lock);
  const double mean = srv->metrics.queue.n ? srv->metrics.queue.sum / (double)srv->metrics.queue.n : 1.0;
  srv->metrics.rejected_busy++;
  pthread_mutex_unlock(&srv->metrics.lock);
  const double s = ceil(mean);
  return s < 1 ? 1 : s > 60 ? 60 : (int)s;
}

bool mlxr_submit(mlxr_req *r, mlxr_sched *s, mlxr_genset *gs, const int32_t *prompt,
                 int32_t n_prompt, const mlxr_gen_params *gp, int copies, enum MHD_Result *res) {
  /* per-key rate limit: one request, and its token upper bound (see ratelimit.c) */
  const int32_t n_ctx = mlxr_sched_n_ctx(s);
  const int64_t completion = gp->max_tokens > 0 && gp->max_tokens < n_ctx - n_prompt ? gp->max_tokens : n_ctx - n_prompt;
  const int64_t cost = (int64_t)copies * ((int64_t)n_prompt + (completion > 0 ? completion : 0));
  double retry = 0;
  bool tokens_limited = false, never = false;
  if (!mlxr_ratelimit_take(&r->srv->ratelimit, r->key_slot, cost, &retry, &tokens_limited, &never)) {
    pthread_mutex_lock(&r->srv->metrics.lock);
    r->srv->metrics.rate_limited++;
    pthread_mutex_unlock(&r->srv->metrics.lock);
    r->retry_after_s = retry < 1 ? 1 : (int)ceil(retry);
    if (never)
      *res = mlxr_http_error(r, 429, "tokens", "rate_limit_exceeded", NULL,
                             "Request too large: it may use %lld tokens (prompt + max_tokens), more than the "
                             "limit of %d tokens per minute; lower max_tokens or the prompt",
                             (long long)cost, (int)r->srv->ratelimit.tpm);
    else if (tokens_limited)
      *res = mlxr_http_error(r, 429, "tokens", "rate_limit_exceeded", NULL,
                             "Rate limit reached: %d tokens per minute (this request may use %lld); "
                             "please try again in %.1fs", (int)r->srv->ratelimit.tpm, (long long)cost, retry);
    else
      *res = mlxr_http_error(r, 429, "requests", "rate_limit_exceeded", NULL,
                             "Rate limit reached: %d requests per minute; please try again in %.1fs",
                             (int)r->srv->ratelimit.rpm, retry);
    return false;
  }
  for (int i = 0; i < copies; i++) {
    mlxr_gen_params p = *gp;
    p.sampling.seed = gp->sampling.seed + (uint64_t)i;
    char err[512] = "";
    int rc = mlxr_genset_add(gs, s, prompt, n_prompt, &p, err, sizeof err);
    if (rc < 0) {
      mlxr_genset_cancel(gs);
      mlxr_ratelimit_refund(&r->srv->ratelimit, r->key_slot, cost);
      if (rc == MLXR_ERR_NO_SPACE) r->retry_after_s = busy_retry_after(r->srv);
      if (rc == MLXR_ERR_NO_SPACE)
        *res = mlxr_http_error(r, 503, "unavailable_error", "server_busy", NULL,
                               "server busy, please try again: maximum pending requests exceeded (%s)", err);
      else if (rc == MLXR_ERR_RANGE)
        *res = mlxr_http_error(r, 400, NULL, "context_length_exceeded", NULL, "%s", err);
      else
        *res = mlxr_http_error(r, rc == MLXR_ERR_INVALID ? 400 : 500, NULL, NULL, NULL, "%s", err[0] ? err : "submit failed");
      return false;
    }
  }
  return true;
}

mlxr_model_entry *mlxr_req_body_model(mlxr_req *r, enum MHD_Result *res) {
  if (!mlxr_http_parse_body(r, res)) return NULL;
  mlxr_field_err fe = {{0}, {0}};
  const char *name = NULL;
  if (!mlxr_get_str(r->json, "model", &name, &fe)) {
    *res = mlxr_http_error(r, 400, NULL, NULL, "model", "%s", fe.msg);
    return NULL;
  }
  return mlxr_req_model(r, name, res);
}

/* ---------------- sampling fields ---------------- */

bool mlxr_get_sampling(const cJSON *j, double temp_max, mlxr_gen_params *gp, mlxr_field_err *fe) {
  mlxr_sampler_params *sp = &gp->sampling;
  sp->temperature = 1.0f;
  sp->top_k = 0;
  sp->top_p = 1.0f;
  sp->min_p = 0.0f;
  sp->repeat_penalty = 1.0f;
  sp->repeat_last_n = 64;
  sp->presence_penalty = 0;
  sp->frequency_penalty = 0;
  sp->seed = mlxr_random_seed();
  double d = 1;
  if (!mlxr_get_num(j, "temperature", 0, temp_max, &d, fe)) return false;
  sp->temperature = (float)d;
  d = 1;
  if (!mlxr_get_num(j, "top_p", 0, 1, &d, fe)) return false;
  sp->top_p = (float)d;
  d = 0;
  if (!mlxr_get_num(j, "presence_penalty", -2, 2, &d, fe)) return false;
  sp->presence_penalty = (float)d;
  d = 0;
  if (!mlxr_get_num(j, "frequency_penalty", -2, 2, &d, fe)) return false;
  sp->frequency_penalty = (float)d;
  d = 1;
  if (!mlxr_get_num(j, "repeat_penalty", 0, 10, &d, fe)) return false;
  sp->repeat_penalty = (float)d;
  d = 0;
  if (!mlxr_get_num(j, "min_p", 0, 1, &d, fe)) return false;
  sp->min_p = (float)d;
  d = 1; /* llama.cpp's server field */
  if (!mlxr_get_num(j, "typical_p", 0, 1, &d, fe)) return false;
  sp->typical_p = (float)d;
  int64_t i64 = 0;
  if (!mlxr_get_int(j, "top_k", 0, 1 << 30, &i64, fe)) return false;
  sp->top_k = (int32_t)i64;
  i64 = sp->repeat_last_n;
  if (!mlxr_get_int(j, "repeat_last_n", -1, 1 << 24, &i64, fe)) return false;
  sp->repeat_last_n = (int32_t)i64;
  if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "seed"))) {
    i64 = 0;
    if (!mlxr_get_int(j, "seed", INT64_MIN + 1, INT64_MAX, &i64, fe)) return false;
    sp->seed = (uint64_t)i64;
  } else if (!mlxr_get_int(j, "seed", 0, 0, &i64, fe)) {
    return false;
  }
  return true;
}

/* ---------------- tools and tool_choice ---------------- */

bool mlxr_tool_setup_init(mlxr_req *r, mlxr_tool_setup *ts, const cJSON *tools, const char *mode,
                          const char *name, bool parallel, const char *template_src,
                          enum MHD_Result *res) {
  memset(ts, 0, sizeof(*ts));
  if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools)) {
    *res = mlxr_http_error(r, 400, NULL, NULL, "tools", "'tools' must be an array");
    return false;
  }
  if (!mode) mode = "auto";
  if (strcmp(mode, "none") == 0) return true; /* the model is not told about the tools */
  if (strcmp(mode, "named") == 0) {
    ts->owned = cJSON_CreateArray();
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
      const cJSON *tn = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
      if (ts->owned && name && cJSON_IsString(tn) && strcmp(tn->valuestring, name) == 0)
        cJSON_AddItemToArray(ts->owned, cJSON_Duplicate(t, true));
    }
    if (cJSON_GetArraySize(ts->owned) == 0) {
      mlxr_tool_setup_free(ts);
      *res = mlxr_http_error(r, 400, NULL, NULL, "tool_choice", "tool_choice names a function ('%.100s') that is not in 'tools'",
                             name ? name : "");
      return false;
    }
    tools = ts->owned;
  } else if (strcmp(mode, "auto") != 0 && strcmp(mode, "required") != 0) {
    *res = mlxr_http_error(r, 400, NULL, NULL, "tool_choice", "'tool_choice' must be none, auto, required or a named function");
    return false;
  }
  ts->on = cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0;
  ts->tools = ts->on ? tools : NULL;
  ts->forced = ts->on && strcmp(mode, "auto") != 0;
  if (ts->forced) { /* enforce it: the output is constrained to tool calls */
    char err[256] = "";
    if (mlxr_chat_tool_grammar(tools, template_src, parallel, &ts->grammar, err, sizeof err) != MLXR_OK) {
      mlxr_tool_setup_free(ts);
      *res = mlxr_http_error(r, 400, NULL, NULL, "tools", "the tools' parameter schemas cannot be enforced: %s", err);
      return false;
    }
  }
  return true;
}

void mlxr_tool_setup_free(mlxr_tool_setup *ts) {
  cJSON_Delete(ts->owned);
  free(ts->grammar);
  memset(ts, 0, sizeof(*ts));
}

/* ---------------- chat jobs ---------------- */

bool mlxr_chat_job_load(mlxr_req *r, mlxr_chat_job *job, mlxr_model_entry *m, enum MHD_Result *res) {
  memset(job, 0, sizeof(*job));
  char err[1024] = "";
  int64_t load_ns = 0;
  const int acq_rc = mlxr_models_acquire(&r->srv->models, m, &job->sched, &load_ns, err, sizeof err);
  if (acq_rc < 0) {
    *res = mlxr_http_error(r, acq_rc == MLXR_ERR_NOT_FOUND ? 404 : 500, NULL, NULL, NULL, "cannot load model '%s': %s", m->id, err);
    return false;
  }
  job->m = m;
  job->tok = mlxr_sched_tokenizer(job->sched);
  return true;
}

bool mlxr_chat_job_prompt(mlxr_req *r, mlxr_chat_job *job, const cJSON *messages,
                          const cJSON *tools, const cJSON *kwargs, enum MHD_Result *res) {
  job->prompt = mlxr_chat_prompt(r, job->m, messages, tools, kwargs, false, true, res);
  if (!job->prompt) return false;
  job->start_think = mlxr_chat_prompt_opens_think(job->prompt);
  size_t n = 0;
  if (mlxr_tokenize(job->tok, job->prompt, false, &job->ids, &n) < 0) {
    *res = mlxr_http_error(r, 500, NULL, NULL, NULL, "cannot tokenize the prompt");
    return false;
  }
  job->n_ids = (int32_t)n;
  return mlxr_check_prompt(r, job->m, job->n_ids, res);
}

bool mlxr_chat_job_submit(mlxr_req *r, mlxr_chat_job *job, const mlxr_gen_params *gp,
                          enum MHD_Result *res) {
  job->gs = calloc(1, sizeof(*job->gs));
  if (!job->gs || mlxr_genset_init(job->gs, 1) < 0) {
    free(job->gs);
    job->gs = NULL;
    *res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    return false;
  }
  return mlxr_submit(r, job->sched, job->gs, job->ids, job->n_ids, gp, 1, res);
}

enum MHD_Result mlxr_chat_job_stream(mlxr_req *r, mlxr_chat_job *job, mlxr_stream_format fmt,
                                     void *ctx, void (*ctx_free)(void *)) {
  enum MHD_Result res = mlxr_http_stream(r, "text/event-stream", job->gs, fmt, ctx, ctx_free, job->sched, job->m);
  job->gs = NULL;
  job->sched = NULL; /* released by the stream */
  return res;
}

bool mlxr_chat_job_drain(mlxr_req *r, mlxr_chat_job *job, mlxr_stream_format fmt, void *ctx) {
  mlxr_buf sink = {0};
  bool gone = false;
  mlxr_ev *e;
  while ((e = mlxr_genset_next(job->gs, r->conn, &gone))) {
    fmt(ctx, e, &sink);
    sink.len = 0;
    mlxr_ev_free(e);
  }
  if (gone) {
    mlxr_metrics_tokens(&r->srv->metrics, 0, 0, true);
  } else {
    fmt(ctx, NULL, &sink);
    mlxr_metrics_observe(&r->srv->metrics, &r->srv->metrics.e2e, (double)(mlxr_now_ns() - r->t_start) / 1e9);
  }
  mlxr_buf_free(&sink);
  return !gone;
}

void mlxr_chat_job_free(mlxr_chat_job *job) {
  if (job->gs) {
    mlxr_genset_cancel(job->gs);
    mlxr_genset_free(job->gs);
    free(job->gs);
  }
  free(job->prompt);
  free(job->ids);
  if (job->sched) mlxr_models_release(job->m);
  memset(job, 0, sizeof(*job));
}

/* ---------------- block runs ---------------- */

void mlxr_block_run_init(mlxr_block_run *run, const mlxr_block_api *api, mlxr_req *r,
                         const mlxr_chat_job *job, const mlxr_tool_setup *ts, bool stream) {
  memset(run, 0, sizeof(*run));
  run->api = api;
  run->srv = r->srv;
  run->stream = stream;
  run->t_start = r->t_start;
  run->n_prompt = job->n_ids;
  mlxr_chat_blocks_init(&run->blocks, ts->on, job->start_think, &api->ops, run);
  run->blocks.parser.forced = ts->forced;
}

void mlxr_block_run_free(mlxr_block_run *run) {
  mlxr_chat_blocks_free(&run->blocks);
  free(run->stop_string);
  free(run->schema_error);
  free(run->error);
  cJSON_Delete(run->final);
  run->stop_string = run->schema_error = run->error = NULL;
  run->final = NULL;
}

static void block_run_format(void *ctx, const mlxr_ev *e, mlxr_buf *out) {
  mlxr_block_run *run = ctx;
  run->out = out;
  if (!run->started) {
    run->started = true;
    if (run->stream) run->api->start(run);
  }
  if (!e) { /* the end (once) */
    run->done = true;
    run->api->end(run);
    return;
  }
  mlxr_observe_event(run->srv, e, run->t_start, &run->last_ns);
  if (e->kind == MLXR_GEN_ERROR) {
    free(run->error);
    run->error = strdup(e->message ? e->message : "generation failed");
    run->done = true;
    return;
  }
  if (e->kind == MLXR_GEN_TOKEN) {
    if (mlxr_chat_blocks_push(&run->blocks, e->text, e->text_len, false)) run->reasoning_tokens++;
    return;
  }
  run->done = true; /* the blocks closed by the final push know how it ended */
  run->finish = e->finish;
  run->n_prompt = e->prompt_tokens;
  run->cached_tokens = e->cached_tokens;
  run->output_tokens = e->completion_tokens;
  if (e->stop_string) run->stop_string = strdup(e->stop_string);
  if (e->schema_error) run->schema_error = strdup(e->schema_error);
  run->blocks.parser.cut = e->finish == MLXR_FINISH_LENGTH;
  mlxr_chat_blocks_push(&run->blocks, e->text, e->text_len, true);
}

enum MHD_Result mlxr_block_run_serve(mlxr_req *r, mlxr_chat_job *job, mlxr_block_run *run,
                                     void (*ctx_free)(void *)) {
  if (run->stream) return mlxr_chat_job_stream(r, job, block_run_format, run, ctx_free);
  enum MHD_Result res = MHD_NO; /* the client went away */
  if (mlxr_chat_job_drain(r, job, block_run_format, run)) {
    if (run->error || !run->final) res = mlxr_http_error(r, 500, NULL, NULL, NULL, "%s", run->error ? run->error : "generation failed");
    else res = mlxr_http_send_json(r, 200, cJSON_Duplicate(run->final, true));
  }
  ctx_free(run);
  return res;
}
