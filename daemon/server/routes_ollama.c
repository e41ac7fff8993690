/*
 * routes_ollama.c: Ollama's native API: POST /api/generate, POST /api/chat, POST /api/embed,
 * POST /api/embeddings, GET|HEAD /api/tags, POST /api/show, GET /api/ps, GET|HEAD /api/version;
 * tags and show cover the registry's catalog models too (routes_registry.c, which also serves
 * create, copy, delete and blobs); pull and push answer 501 for now.
 *
 * Streaming is NDJSON (one JSON object per line) and on by default; "stream": false gives one
 * object. The last object has done:true, done_reason and the counts and durations in nanoseconds
 * (total, load, prompt eval, eval); /api/generate's also has context (prompt + generated ids).
 * options map onto the sampler with Ollama's defaults (temperature 0.8, top_k 40, top_p 0.9,
 * repeat_last_n 64, seed -1 = random); load-time options (num_ctx, num_gpu, ...) and unknown keys
 * are ignored, as Ollama warns and goes on. An empty prompt (or no messages) only loads the model;
 * with keep_alive 0 it unloads it. keep_alive 0 with a prompt unloads after the request. Other
 * keep_alive values set how long the model stays loaded after its last request (default 5m;
 * negative: until unloaded or shutdown); models.c's reaper unloads it then. format ("json"
 * or a schema) is accepted but NOT enforced: there is no constrained decoding yet.
 * Errors are {"error": "..."}; an error mid-stream is one {"error": ...} line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar.h"
#include "daemon/server/chat.h"
#include "daemon/server/server_impl.h"

/* ---------------- options ---------------- */

static bool parse_options(const cJSON *j, mlxr_gen_params *gp, mlxr_field_err *fe) {
  *gp = mlxr_gen_default_params();
  mlxr_sampler_params *sp = &gp->sampling;
  sp->temperature = 0.8f;
  sp->top_k = 40;
  sp->top_p = 0.9f;
  sp->min_p = 0.0f;
  sp->repeat_penalty = 1.0f;
  sp->repeat_last_n = 64;
  sp->presence_penalty = 0;
  sp->frequency_penalty = 0;
  sp->seed = mlxr_random_seed();
  gp->max_tokens = 0;
  gp->top_logprobs = -1;
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "options");
  if (!o || cJSON_IsNull(o)) return true;
  if (!cJSON_IsObject(o)) {
    snprintf(fe->msg, sizeof fe->msg, "'options' must be an object");
    snprintf(fe->param, sizeof fe->param, "options");
    return false;
  }
  double d;
  int64_t i;
  d = sp->temperature;
  if (!mlxr_get_num(o, "temperature", 0, 100, &d, fe)) return false;
  sp->temperature = (float)d;
  d = sp->top_p;
  if (!mlxr_get_num(o, "top_p", 0, 1, &d, fe)) return false;
  sp->top_p = (float)d;
  d = sp->min_p;
  if (!mlxr_get_num(o, "min_p", 0, 1, &d, fe)) return false;
  sp->min_p = (float)d;
  d = sp->repeat_penalty;
  if (!mlxr_get_num(o, "repeat_penalty", 0, 100, &d, fe)) return false;
  sp->repeat_penalty = (float)d;
  d = 0;
  if (!mlxr_get_num(o, "presence_penalty", -100, 100, &d, fe)) return false;
  sp->presence_penalty = (float)d;
  d = 0;
  if (!mlxr_get_num(o, "frequency_penalty", -100, 100, &d, fe)) return false;
  sp->frequency_penalty = (float)d;
  i = sp->top_k;
  if (!mlxr_get_int(o, "top_k", 0, 1 << 30, &i, fe)) return false;
  sp->top_k = (int32_t)i;
  i = sp->repeat_last_n;
  if (!mlxr_get_int(o, "repeat_last_n", -1, 1 << 24, &i, fe)) return false;
  sp->repeat_last_n = (int32_t)i;
  i = -1;
  if (!mlxr_get_int(o, "seed", INT64_MIN + 1, INT64_MAX, &i, fe)) return false;
  if (i >= 0) sp->seed = (uint64_t)i;
  i = -1;
  if (!mlxr_get_int(o, "num_predict", -2, 1 << 24, &i, fe)) return false;
  gp->max_tokens = i > 0 ? (int32_t)i : 0;
  d = 1;
  if (!mlxr_get_num(o, "typical_p", 0, 1, &d, fe)) return false;
  sp->typical_p = (float)d;
  if (!mlxr_get_stop(o, "stop", MLXR_MAX_STOP, gp->stop, &gp->n_stop, fe)) return false;
  return true;
}

/* keep_alive: a number of seconds or a Go duration string ("5m", "1h30m", "300ms", "-1"). *ns gets
 * the duration (negative: stay loaded), or INT64_MIN when the request has none; *zero is set when
 * it asks for an unload (0). */
static bool keep_alive_arg(const cJSON *j, int64_t *ns, bool *zero, mlxr_field_err *fe) {
  *zero = false;
  *ns = INT64_MIN;
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "keep_alive");
  if (!k || cJSON_IsNull(k)) return true;
  double total = 0;
  if (cJSON_IsNumber(k)) {
    total = k->valuedouble * 1e9;
  } else if (cJSON_IsString(k) && k->valuestring[0]) {
    const char *q = k->valuestring;
    const bool neg = *q == '-';
    if (*q == '-' || *q == '+') q++;
    char *end = NULL;
    double v = strtod(q, &end);
    if (end == q || v != v) goto bad;
    if (*end == '\0') { /* a bare number: seconds */
      total = v * 1e9;
    } else {
      for (;;) { /* Go's time.ParseDuration: number+unit pairs */
        static const struct { const char *u; double ns; } units[] = {
            {"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
        size_t best = 0;
        double mult = 0;
        for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
          size_t l = strlen(units[u].u);
          if (strncmp(end, units[u].u, l) == 0 && l > best) best = l, mult = units[u].ns;
        }
        if (!best) goto bad;
        total += v * mult;
        q = end + best;
        if (!*q) break;
        v = strtod(q, &end);
        if (end == q || v != v) goto bad;
      }
    }
    if (neg) total = -total;
  } else {
    goto bad;
  }
  if (total > 9e18) total = 9e18;
  if (total < -9e18) total = -9e18;
  *ns = (int64_t)total;
  *zero = *ns == 0;
  return true;
bad:
  snprintf(fe->msg, sizeof fe->msg, "'keep_alive' must be a number of seconds or a duration like \"5m\"");
  snprintf(fe->param, sizeof fe->param, "keep_alive");
  return false;
}

bool mlxr_ollama_check_fields(const cJSON *j, mlxr_gen_params *gp, int64_t *keep_alive_ns, bool *unload,
                              mlxr_field_err *fe) {
  return keep_alive_arg(j, keep_alive_ns, unload, fe) && parse_options(j, gp, fe);
}

static void add_created(cJSON *o) {
  char ts[48];
  mlxr_rfc3339(mlxr_wall_ns(), ts, sizeof ts);
  cJSON_AddStringToObject(o, "created_at", ts);
}

static void add_final(cJSON *o, const char *reason, int64_t total_ns, int64_t load_ns,
                      int32_t n_prompt, int64_t prompt_ns, int32_t n_eval, int64_t eval_ns) {
  cJSON_AddStringToObject(o, "done_reason", reason);
  cJSON_AddNumberToObject(o, "total_duration", (double)total_ns);
  cJSON_AddNumberToObject(o, "load_duration", (double)load_ns);
  cJSON_AddNumberToObject(o, "prompt_eval_count", n_prompt);
  cJSON_AddNumberToObject(o, "prompt_eval_duration", (double)prompt_ns);
  cJSON_AddNumberToObject(o, "eval_count", n_eval);
  cJSON_AddNumberToObject(o, "eval_duration", (double)eval_ns);
}

/* ---------------- generation output ---------------- */

typedef struct oll_stream {
  mlxr_server *srv;
  const mlxr_tokenizer *tok;
  bool chat, logprobs;
  char *model;
  mlxr_chat_parser parser;
  int64_t t_start, load_ns, last_ns;
  int32_t *context; /* prompt ids, then generated ids (generate only) */
  int32_t n_context, cap_context;
  mlxr_buf *out;
  cJSON *pending_lp;
  bool failed;
  /* non-streamed: accumulated message */
  bool collect;
  mlxr_buf content, thinking;
  cJSON *tool_calls;
} oll_stream;

static void oll_free(void *p) {
  oll_stream *st = p;
  if (!st) return;
  mlxr_chat_parser_free(&st->parser);
  free(st->model);
  free(st->context);
  cJSON_Delete(st->pending_lp);
  mlxr_buf_free(&st->content);
  mlxr_buf_free(&st->thinking);
  cJSON_Delete(st->tool_calls);
  free(st);
}

static void line_send(oll_stream *st, cJSON *o) {
  char *s = mlxr_json_print(o);
  cJSON_Delete(o);
  if (!s) {
    st->out->oom = true;
    return;
  }
  mlxr_buf_adds(st->out, s);
  mlxr_buf_adds(st->out, "\n");
  free(s);
}

static cJSON *oll_tool_call(const mlxr_chat_delta *d) {
  cJSON *tc = cJSON_CreateObject();
  cJSON *fn = cJSON_AddObjectToObject(tc, "function");
  cJSON_AddNumberToObject(fn, "index", d->tool_index);
  cJSON_AddStringToObject(fn, "name", d->tool_name);
  cJSON_AddItemToObject(fn, "arguments", cJSON_Duplicate(d->tool_args, true));
  return tc;
}

static cJSON *chunk(oll_stream *st) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model", st->model);
  add_created(o);
  return o;
}

static void oll_emit(void *user, const mlxr_chat_delta *d) {
  oll_stream *st = user;
  if (st->collect) {
    if (d->part == MLXR_CHAT_TOOL_CALL) {
      if (!st->tool_calls) st->tool_calls = cJSON_CreateArray();
      cJSON_AddItemToArray(st->tool_calls, oll_tool_call(d));
    } else {
      mlxr_buf_add(d->part == MLXR_CHAT_REASONING ? &st->thinking : &st->content, d->text, d->len);
    }
    return;
  }
  cJSON *o = chunk(st);
  char *t = d->part == MLXR_CHAT_TOOL_CALL ? NULL : strndup(d->text, d->len);
  if (st->chat) {
    cJSON *msg = cJSON_AddObjectToObject(o, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", d->part == MLXR_CHAT_CONTENT && t ? t : "");
    if (d->part == MLXR_CHAT_REASONING) cJSON_AddStringToObject(msg, "thinking", t ? t : "");
    if (d->part == MLXR_CHAT_TOOL_CALL) {
      cJSON *arr = cJSON_AddArrayToObject(msg, "tool_calls");
      cJSON_AddItemToArray(arr, oll_tool_call(d));
    }
  } else {
    cJSON_AddStringToObject(o, "response", d->part == MLXR_CHAT_CONTENT && t ? t : "");
    if (d->part == MLXR_CHAT_REASONING) cJSON_AddStringToObject(o, "thinking", t ? t : "");
  }
  free(t);
  cJSON_AddBoolToObject(o, "done", false);
  if (st->pending_lp) {
    cJSON_AddItemToObject(o, "logprobs", st->pending_lp);
    st->pending_lp = NULL;
  }
  line_send(st, o);
}

static void context_add(oll_stream *st, int32_t id) {
  if (st->n_context == st->cap_context) {
    int32_t nc = st->cap_context ? st->cap_context * 2 : 256;
    int32_t *n = realloc(st->context, (size_t)nc * sizeof(int32_t));
    if (!n) return;
    st->context = n;
    st->cap_context = nc;
  }
  st->context[st->n_context++] = id;
}

static cJSON *final_obj(oll_stream *st, const mlxr_ev *e) {
  cJSON *o = chunk(st);
  if (st->chat) {
    cJSON *msg = cJSON_AddObjectToObject(o, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", st->collect && st->content.p ? st->content.p : "");
    if (st->collect && st->thinking.len) cJSON_AddStringToObject(msg, "thinking", st->thinking.p);
    if (st->collect && st->tool_calls) {
      cJSON_AddItemToObject(msg, "tool_calls", st->tool_calls);
      st->tool_calls = NULL;
    }
  } else {
    cJSON_AddStringToObject(o, "response", st->collect && st->content.p ? st->content.p : "");
    if (st->collect && st->thinking.len) cJSON_AddStringToObject(o, "thinking", st->thinking.p);
  }
  cJSON_AddBoolToObject(o, "done", true);
  /* prompt_eval_count: the prompt tokens actually evaluated; a prefix served from the KV cache is
   * not counted (Ollama's own behaviour when it reuses a cached prompt) */
  add_final(o, mlxr_finish_name(e->finish), mlxr_now_ns() - st->t_start, st->load_ns,
            e->prompt_tokens - e->cached_tokens, e->prompt_ns, e->completion_tokens, e->gen_ns);
  /* the output breaks the JSON schema in a way the grammar could not prevent (uniqueItems, ...) */
  if (e->schema_error) cJSON_AddStringToObject(o, "schema_violation", e->schema_error);
  if (!st->chat) {
    cJSON *ctx = cJSON_AddArrayToObject(o, "context");
    for (int32_t i = 0; i < st->n_context; i++) cJSON_AddItemToArray(ctx, cJSON_CreateNumber(st->context[i]));
  }
  return o;
}

static void oll_format(void *ctx, const mlxr_ev *e, mlxr_buf *out) {
  oll_stream *st = ctx;
  st->out = out;
  if (!e) return;
  mlxr_observe_event(st->srv, e, st->t_start, &st->last_ns);
  if (e->kind == MLXR_GEN_ERROR) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", e->message ? e->message : "generation failed");
    line_send(st, o);
    return;
  }
  if (e->kind == MLXR_GEN_TOKEN) {
    context_add(st, e->token);
    if (st->logprobs) {
      st->pending_lp = cJSON_CreateArray();
      cJSON_AddItemToArray(st->pending_lp, mlxr_logprob_entry(st->tok, e->token, e->logprob, e->top, e->n_top));
    }
    mlxr_chat_parser_push(&st->parser, e->text, e->text_len, false, oll_emit, st);
    if (st->pending_lp) {
      mlxr_chat_delta d = {.part = MLXR_CHAT_CONTENT, .text = "", .len = 0};
      oll_emit(st, &d);
    }
    return;
  }
  mlxr_chat_parser_push(&st->parser, e->text, e->text_len, true, oll_emit, st);
  line_send(st, final_obj(st, e));
}

/* ---------------- handlers ---------------- */

static enum MHD_Result field_error(mlxr_req *r, const mlxr_field_err *fe) {
  return mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", fe->msg[0] ? fe->msg : "invalid request");
}

static enum MHD_Result load_only(mlxr_req *r, mlxr_model_entry *m, bool unload, int64_t keep_alive,
                                 bool chat) {
  mlxr_sched *s;
  int64_t load_ns = 0;
  char err[1024] = "";
  if (!unload) {
    const int acq_rc = mlxr_models_acquire(&r->srv->models, m, &s, &load_ns, err, sizeof err);
    if (acq_rc < 0)
      return mlxr_http_error(r, acq_rc == MLXR_ERR_NOT_FOUND ? 404 : 500, NULL, NULL, NULL, "cannot load model '%s': %s", m->id, err);
    if (keep_alive != INT64_MIN) mlxr_models_set_keep_alive(m, keep_alive);
    mlxr_models_release(m);
  } else {
    mlxr_models_unload(m);
  }
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model", m->id);
  add_created(o);
  if (chat) {
    cJSON *msg = cJSON_AddObjectToObject(o, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", "");
  } else {
    cJSON_AddStringToObject(o, "response", "");
  }
  cJSON_AddBoolToObject(o, "done", true);
  cJSON_AddStringToObject(o, "done_reason", unload ? "unload" : "load");
  return mlxr_http_send_json(r, 200, o);
}

static enum MHD_Result handle_gen(mlxr_req *r, bool chat) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  const cJSON *j = r->json;
  mlxr_field_err fe = {{0}, {0}};
  const char *model_name = NULL, *prompt = NULL, *system = NULL, *tmpl = NULL, *suffix = NULL;
  bool stream = true, raw = false, unload = false, want_lp = false;
  int64_t top_lp = 0, keep_alive = INT64_MIN;
  if (!mlxr_get_str(j, "model", &model_name, &fe) || !mlxr_get_str(j, "prompt", &prompt, &fe) ||
      !mlxr_get_str(j, "system", &system, &fe) || !mlxr_get_str(j, "template", &tmpl, &fe) ||
      !mlxr_get_str(j, "suffix", &suffix, &fe) || !mlxr_get_bool(j, "stream", &stream, &fe) ||
      !mlxr_get_bool(j, "raw", &raw, &fe) || !keep_alive_arg(j, &keep_alive, &unload, &fe) ||
      !mlxr_get_bool(j, "logprobs", &want_lp, &fe) ||
      !mlxr_get_int(j, "top_logprobs", 0, MLXR_MAX_TOP_LOGPROBS, &top_lp, &fe))
    return field_error(r, &fe);
  mlxr_model_entry *m = mlxr_req_model(r, model_name, &res);
  if (!m) return res;
  mlxr_registry_apply_options(m, r->json); /* a catalog model's parameters, under the request's */
  if (!system && m->system) system = m->system;
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(j, "messages");
  const cJSON *images = cJSON_GetObjectItemCaseSensitive(j, "images");
  const cJSON *context = cJSON_GetObjectItemCaseSensitive(j, "context");
  const cJSON *think = cJSON_GetObjectItemCaseSensitive(j, "think");
  const cJSON *format = cJSON_GetObjectItemCaseSensitive(j, "format");
  if (messages && !cJSON_IsNull(messages) && !cJSON_IsArray(messages))
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "'messages' must be an array");
  if (cJSON_IsArray(images) && cJSON_GetArraySize(images) > 0)
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "model '%s' does not support images", m->id);
  if (tmpl && tmpl[0])
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "'template' overrides (Go templates) are not supported; use raw with a preformatted prompt");
  if (suffix && suffix[0])
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "'suffix' (fill-in-the-middle) is not supported by this model");
  if (format && !cJSON_IsNull(format) && !cJSON_IsObject(format) &&
      !(cJSON_IsString(format) && (strcmp(format->valuestring, "json") == 0 || format->valuestring[0] == '\0')))
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "'format' must be \"json\" or a JSON schema object");
  if (think && !cJSON_IsNull(think) && !cJSON_IsBool(think) && !cJSON_IsString(think))
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "'think' must be a boolean or low|medium|high");
  if (context && !cJSON_IsNull(context) && !cJSON_IsArray(context))
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "'context' must be an array of token ids");
  mlxr_gen_params gp;
  if (!parse_options(j, &gp, &fe)) return field_error(r, &fe);
  if (want_lp) gp.top_logprobs = (int32_t)top_lp;
  gp.max_tokens = mlxr_cap_max_tokens(r->srv, gp.max_tokens);
  bool empty = chat ? (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
                    : (!prompt || !prompt[0]);
  if (empty) return load_only(r, m, unload, keep_alive, chat);

  mlxr_sched *sched = NULL;
  int64_t load_ns = 0;
  char err[1024] = "";
  const int acq_rc = mlxr_models_acquire(&r->srv->models, m, &sched, &load_ns, err, sizeof err);
  if (acq_rc < 0)
    return mlxr_http_error(r, acq_rc == MLXR_ERR_NOT_FOUND ? 404 : 500, NULL, NULL, NULL, "cannot load model '%s': %s", m->id, err);
  if (unload) mlxr_models_unload(m); /* closes when we release it */
  else if (keep_alive != INT64_MIN) mlxr_models_set_keep_alive(m, keep_alive);
  const mlxr_tokenizer *tok = mlxr_sched_tokenizer(sched);
  int32_t n_vocab = mlxr_tokenizer_n_vocab(tok);
  char *text = NULL;
  int32_t *ids = NULL;
  size_t n_ids = 0;
  char *grammar = NULL; /* GBNF for format: "json" or a JSON schema */
  char *schema_text = NULL; /* format's JSON schema, checked on the finished output */
  mlxr_genset *gs = NULL;
  oll_stream *st = NULL;
  bool tools_on = false;
  cJSON *kwargs = NULL;
  if (cJSON_IsBool(think) || cJSON_IsString(think)) {
    kwargs = cJSON_CreateObject();
    cJSON_AddBoolToObject(kwargs, "enable_thinking", !cJSON_IsFalse(think));
    if (cJSON_IsString(think)) cJSON_AddStringToObject(kwargs, "reasoning_effort", think->valuestring);
  }
  if (chat) {
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
    tools_on = cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0;
    cJSON *with_sys = mlxr_registry_chat_messages(m, messages); /* a catalog model's system prompt */
    text = mlxr_chat_prompt(r, m, with_sys ? with_sys : messages, tools, kwargs, true, true, &res);
    cJSON_Delete(with_sys);
    if (!text) goto done;
  } else if (raw) {
    text = strdup(prompt);
  } else {
    cJSON *msgs = cJSON_CreateArray();
    if (system && system[0]) {
      cJSON *s = cJSON_CreateObject();
      cJSON_AddStringToObject(s, "role", "system");
      cJSON_AddStringToObject(s, "content", system);
      cJSON_AddItemToArray(msgs, s);
    }
    cJSON *own = m->messages_json && !cJSON_IsArray(context) ? cJSON_Parse(m->messages_json) : NULL;
    for (const cJSON *x = cJSON_IsArray(own) ? own->child : NULL; x; x = x->next) /* a catalog model's */
      cJSON_AddItemToArray(msgs, cJSON_Duplicate(x, true));
    cJSON_Delete(own);
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", prompt);
    cJSON_AddItemToArray(msgs, u);
    text = mlxr_chat_prompt(r, m, msgs, NULL, kwargs, true, true, &res);
    cJSON_Delete(msgs);
    if (!text) goto done;
  }
  if (!text) {
    res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    goto done;
  }
  {
    int32_t n_ctx_in = cJSON_IsArray(context) ? cJSON_GetArraySize(context) : 0;
    int32_t *body = NULL;
    size_t n_body = 0;
    if (mlxr_tokenize(tok, text, raw && n_ctx_in == 0, &body, &n_body) < 0) {
      res = mlxr_http_error(r, 500, NULL, NULL, NULL, "cannot tokenize the prompt");
      goto done;
    }
    ids = malloc(((size_t)n_ctx_in + n_body + 1) * sizeof(int32_t));
    if (!ids) {
      free(body);
      res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
      goto done;
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, context) {
      if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < n_vocab) || v->valuedouble != floor(v->valuedouble)) {
        free(body);
        res = mlxr_http_error(r, 400, NULL, NULL, NULL, "'context' must hold token ids in [0, %d)", n_vocab);
        goto done;
      }
      ids[n_ids++] = (int32_t)v->valuedouble;
    }
    if (n_body) memcpy(ids + n_ids, body, n_body * sizeof(int32_t));
    n_ids += n_body;
    free(body);
  }
  if (!mlxr_check_prompt(r, m, (int32_t)n_ids, &res)) goto done;
  if (cJSON_IsObject(format) || (cJSON_IsString(format) && strcmp(format->valuestring, "json") == 0)) {
    char gerr[240] = "";
    int grc = cJSON_IsObject(format) ? mlxr_json_schema_to_gbnf(format, &grammar, gerr, sizeof gerr)
                                     : ((grammar = mlxr_json_grammar_gbnf(MLXR_JSON_GRAMMAR_OBJECT)) ? MLXR_OK : MLXR_ERR_NOMEM);
    if (grc != MLXR_OK) {
      res = mlxr_http_error(r, grc == MLXR_ERR_NOMEM ? 500 : 400, NULL, NULL, NULL,
                            "'format' cannot be used as a JSON schema: %s", gerr[0] ? gerr : "out of memory");
      goto done;
    }
    gp.grammar = grammar;
    if (cJSON_IsObject(format)) {
      if (!(schema_text = mlxr_json_print(format))) {
        res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
        goto done;
      }
      gp.json_schema = schema_text;
    }
  }
  gs = calloc(1, sizeof(*gs));
  st = calloc(1, sizeof(*st));
  if (!gs || !st || mlxr_genset_init(gs, 1) < 0) {
    free(gs);
    gs = NULL;
    res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    goto done;
  }
  st->srv = r->srv;
  st->tok = tok;
  st->chat = chat;
  st->logprobs = want_lp;
  st->model = strdup(m->id);
  st->t_start = r->t_start;
  st->load_ns = load_ns;
  mlxr_chat_parser_init(&st->parser, tools_on, mlxr_chat_prompt_opens_think(text));
  if (!chat)
    for (size_t i = 0; i < n_ids; i++) context_add(st, ids[i]);
  if (!mlxr_submit(r, sched, gs, ids, (int32_t)n_ids, &gp, 1, &res)) goto done;
  if (stream) {
    res = mlxr_http_stream(r, "application/x-ndjson", gs, oll_format, st, oll_free, sched, m);
    gs = NULL;
    st = NULL;
    sched = NULL;
    goto done;
  }
  {
    st->collect = true;
    mlxr_buf sink = {0};
    st->out = &sink;
    bool gone = false;
    mlxr_ev *e;
    cJSON *final = NULL;
    char *error = NULL;
    while ((e = mlxr_genset_next(gs, r->conn, &gone))) {
      mlxr_observe_event(r->srv, e, r->t_start, &st->last_ns);
      if (e->kind == MLXR_GEN_TOKEN) {
        context_add(st, e->token);
        mlxr_chat_parser_push(&st->parser, e->text, e->text_len, false, oll_emit, st);
      } else if (e->kind == MLXR_GEN_DONE) {
        mlxr_chat_parser_push(&st->parser, e->text, e->text_len, true, oll_emit, st);
        final = final_obj(st, e);
      } else {
        error = strdup(e->message ? e->message : "generation failed");
      }
      mlxr_ev_free(e);
    }
    mlxr_buf_free(&sink);
    if (gone) {
      mlxr_metrics_tokens(&r->srv->metrics, 0, 0, true);
      cJSON_Delete(final);
      free(error);
      res = MHD_NO;
      goto done;
    }
    mlxr_metrics_observe(&r->srv->metrics, &r->srv->metrics.e2e, (double)(mlxr_now_ns() - r->t_start) / 1e9);
    if (error || !final) {
      cJSON_Delete(final);
      res = mlxr_http_error(r, 500, NULL, NULL, NULL, "%s", error ? error : "generation failed");
      free(error);
      goto done;
    }
    res = mlxr_http_send_json(r, 200, final);
  }
done:
  cJSON_Delete(kwargs);
  if (gs) {
    mlxr_genset_cancel(gs);
    mlxr_genset_free(gs);
    free(gs);
  }
  oll_free(st);
  free(ids);
  free(text);
  free(grammar);
  free(schema_text);
  if (sched) mlxr_models_release(m);
  return res;
}

/* ---------------- embeddings ---------------- */

static enum MHD_Result handle_embed(mlxr_req *r, bool legacy) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  const cJSON *j = r->json;
  mlxr_field_err fe = {{0}, {0}};
  const char *model_name = NULL;
  bool truncate = true, unload = false;
  int64_t dims = 0, keep_alive = INT64_MIN;
  if (!mlxr_get_str(j, "model", &model_name, &fe) || !mlxr_get_bool(j, "truncate", &truncate, &fe) ||
      !mlxr_get_int(j, "dimensions", 1, 1 << 20, &dims, &fe) || !keep_alive_arg(j, &keep_alive, &unload, &fe))
    return field_error(r, &fe);
  mlxr_model_entry *m = mlxr_req_model(r, model_name, &res);
  if (!m) return res;
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(j, legacy ? "prompt" : "input");
  int count = 0;
  if (cJSON_IsString(input)) count = 1;
  else if (cJSON_IsArray(input)) {
    const cJSON *v;
    cJSON_ArrayForEach(v, input) {
      if (!cJSON_IsString(v)) return mlxr_http_error(r, 400, NULL, NULL, NULL, "'input' must be a string or an array of strings");
      count++;
    }
    if (legacy) return mlxr_http_error(r, 400, NULL, NULL, NULL, "'prompt' must be a string");
  } else if (input && !cJSON_IsNull(input)) {
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "'%s' must be a string%s", legacy ? "prompt" : "input",
                           legacy ? "" : " or an array of strings");
  }
  mlxr_sched *sched = NULL;
  int64_t load_ns = 0;
  char err[1024] = "";
  const int acq_rc = mlxr_models_acquire(&r->srv->models, m, &sched, &load_ns, err, sizeof err);
  if (acq_rc < 0)
    return mlxr_http_error(r, acq_rc == MLXR_ERR_NOT_FOUND ? 404 : 500, NULL, NULL, NULL, "cannot load model '%s': %s", m->id, err);
  if (unload) mlxr_models_unload(m);
  else if (keep_alive != INT64_MIN) mlxr_models_set_keep_alive(m, keep_alive);
  const mlxr_tokenizer *tok = mlxr_sched_tokenizer(sched);
  int32_t n_embd = m->n_embd;
  if (dims > n_embd) {
    mlxr_models_release(m);
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "'dimensions' must be at most %d for this model", n_embd);
  }
  int out_dims = dims > 0 ? (int)dims : n_embd;
  float *vec = malloc((size_t)n_embd * sizeof(float));
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "model", m->id);
  cJSON *embs = legacy ? NULL : cJSON_AddArrayToObject(o, "embeddings");
  int64_t total_tokens = 0;
  for (int i = 0; i < count && vec; i++) {
    const cJSON *item = cJSON_IsString(input) ? input : cJSON_GetArrayItem(input, i);
    int32_t *ids = NULL;
    size_t n = 0;
    if (mlxr_tokenize(tok, item->valuestring, true, &ids, &n) < 0) {
      res = mlxr_http_error(r, 500, NULL, NULL, NULL, "cannot tokenize input %d", i);
      goto fail;
    }
    if ((int32_t)n >= m->n_ctx) {
      if (!truncate) {
        free(ids);
        res = mlxr_http_error(r, 400, NULL, NULL, NULL, "input %d has %zu tokens, more than the context length %d", i, n, m->n_ctx);
        goto fail;
      }
      n = (size_t)m->n_ctx - 1;
    }
    if (n == 0) {
      free(ids);
      res = mlxr_http_error(r, 400, NULL, NULL, NULL, "input %d is empty", i);
      goto fail;
    }
    /* /api/embed is normalized; the legacy /api/embeddings returns raw pooled states, as Ollama does */
    int rc = mlxr_sched_embed(sched, ids, (int32_t)n, mlxr_model_pooling(sched), !legacy, vec, err, sizeof err);
    free(ids);
    if (rc < 0) {
      res = mlxr_http_error(r, 500, NULL, NULL, NULL, "embedding failed: %s", err);
      goto fail;
    }
    total_tokens += (int64_t)n;
    double norm = 0; /* renormalized after truncation to `dimensions` (not for the raw legacy vector) */
    for (int k = 0; k < out_dims; k++) norm += (double)vec[k] * vec[k];
    norm = legacy ? 1.0 : sqrt(norm);
    cJSON *arr = cJSON_CreateArray();
    for (int k = 0; k < out_dims; k++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(norm > 0 ? vec[k] / norm : 0.0));
    if (legacy) cJSON_AddItemToObject(o, "embedding", arr);
    else cJSON_AddItemToArray(embs, arr);
  }
  if (!vec) {
    res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    goto fail;
  }
  if (legacy) {
    if (count == 0) cJSON_AddArrayToObject(o, "embedding");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "model");
  } else {
    cJSON_AddNumberToObject(o, "total_duration", (double)(mlxr_now_ns() - r->t_start));
    cJSON_AddNumberToObject(o, "load_duration", (double)load_ns);
    cJSON_AddNumberToObject(o, "prompt_eval_count", (double)total_tokens);
  }
  mlxr_metrics_tokens(&r->srv->metrics, total_tokens, 0, false);
  free(vec);
  mlxr_models_release(m);
  return mlxr_http_send_json(r, 200, o);
fail:
  free(vec);
  cJSON_Delete(o);
  mlxr_models_release(m);
  return res;
}

/* ---------------- listing ---------------- */

static void param_size(int64_t n, char *out, size_t cap) {
  if (n >= 1000000000) snprintf(out, cap, "%.1fB", (double)n / 1e9);
  else if (n >= 1000000) snprintf(out, cap, "%.2fM", (double)n / 1e6);
  else if (n >= 1000) snprintf(out, cap, "%.2fK", (double)n / 1e3);
  else snprintf(out, cap, "%lld", (long long)n);
}

static cJSON *details(mlxr_model_entry *m) {
  cJSON *d = cJSON_CreateObject();
  cJSON_AddStringToObject(d, "parent_model", "");
  cJSON_AddStringToObject(d, "format", "gguf");
  cJSON_AddStringToObject(d, "family", m->family);
  cJSON *fams = cJSON_AddArrayToObject(d, "families");
  cJSON_AddItemToArray(fams, cJSON_CreateString(m->family));
  char ps[32];
  param_size(m->n_params, ps, sizeof ps);
  cJSON_AddStringToObject(d, "parameter_size", ps);
  cJSON_AddStringToObject(d, "quantization_level", m->quant);
  return d;
}

static cJSON *tag_obj(mlxr_model_entry *m, bool ps) {
  cJSON *o = cJSON_CreateObject();
  char name[300];
  snprintf(name, sizeof name, m->from_catalog ? "%s" : "%s:latest", m->id);
  cJSON_AddStringToObject(o, "name", name);
  cJSON_AddStringToObject(o, "model", name);
  char ts[48];
  if (!ps) {
    mlxr_rfc3339(m->mtime_wall, ts, sizeof ts);
    cJSON_AddStringToObject(o, "modified_at", ts);
  }
  cJSON_AddNumberToObject(o, "size", (double)m->file_size);
  cJSON_AddStringToObject(o, "digest", m->from_catalog ? m->digest : "");
  cJSON_AddItemToObject(o, "details", details(m));
  if (ps) {
    const int64_t exp = mlxr_models_expires_wall(m);
    if (exp == INT64_MAX) {
      cJSON_AddStringToObject(o, "expires_at", "2318-01-01T00:00:00Z"); /* until unloaded */
    } else {
      mlxr_rfc3339(exp, ts, sizeof ts);
      cJSON_AddStringToObject(o, "expires_at", ts);
    }
    cJSON_AddNumberToObject(o, "size_vram", 0);
    cJSON_AddNumberToObject(o, "context_length", m->n_ctx);
  }
  return o;
}

static cJSON *gguf_value(const mlxr_gguf *g, int64_t i, bool verbose) {
  const char *key = mlxr_gguf_kv_key(g, i);
  mlxr_gguf_vtype t = mlxr_gguf_kv_type(g, i);
  int64_t iv;
  double dv;
  bool bv;
  switch (t) {
  case MLXR_GGUF_STRING: {
    const char *s = mlxr_gguf_get_str(g, key, NULL);
    if (!s || !mlxr_utf8_valid(s, strlen(s))) return cJSON_CreateNull();
    return cJSON_CreateString(s);
  }
  case MLXR_GGUF_BOOL:
    return mlxr_gguf_get_bool(g, key, &bv) ? cJSON_CreateBool(bv) : cJSON_CreateNull();
  case MLXR_GGUF_F32: case MLXR_GGUF_F64:
    return mlxr_gguf_get_float(g, key, &dv) ? cJSON_CreateNumber(dv) : cJSON_CreateNull();
  case MLXR_GGUF_ARRAY: {
    mlxr_gguf_vtype et;
    uint64_t count;
    if (!mlxr_gguf_get_arr(g, key, &et, &count, NULL)) return cJSON_CreateNull();
    if (!verbose || count > 100000) return cJSON_CreateNull();
    cJSON *a = cJSON_CreateArray();
    if (et == MLXR_GGUF_STRING) {
      for (uint64_t k = 0; k < count; k++) {
        const char *s = mlxr_gguf_get_arr_str(g, key, k, NULL);
        cJSON_AddItemToArray(a, s && mlxr_utf8_valid(s, strlen(s)) ? cJSON_CreateString(s) : cJSON_CreateNull());
      }
    } else {
      cJSON_AddItemToArray(a, cJSON_CreateNumber((double)count));
    }
    return a;
  }
  default:
    return mlxr_gguf_get_int(g, key, &iv) ? cJSON_CreateNumber((double)iv) : cJSON_CreateNull();
  }
}

static enum MHD_Result handle_show(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  mlxr_field_err fe = {{0}, {0}};
  const char *name = NULL;
  bool verbose = false;
  if (!mlxr_get_str(r->json, "model", &name, &fe) || !mlxr_get_bool(r->json, "verbose", &verbose, &fe))
    return field_error(r, &fe);
  if (!name) mlxr_get_str(r->json, "name", &name, &fe); /* older clients */
  mlxr_model_entry *m = mlxr_req_model(r, name, &res);
  if (!m) return res;
  mlxr_sched *s;
  int64_t load_ns;
  char err[1024];
  const int acq_rc = mlxr_models_acquire(&r->srv->models, m, &s, &load_ns, err, sizeof err);
  if (acq_rc < 0)
    return mlxr_http_error(r, acq_rc == MLXR_ERR_NOT_FOUND ? 404 : 500, NULL, NULL, NULL, "cannot load model '%s': %s", m->id, err);
  cJSON *o = cJSON_CreateObject();
  char mf[4400];
  snprintf(mf, sizeof mf, "# Modelfile generated by mlxrd\nFROM %s\n", m->path);
  cJSON_AddStringToObject(o, "modelfile", mf);
  cJSON_AddStringToObject(o, "parameters", "");
  cJSON_AddStringToObject(o, "template", m->tmpl_src ? m->tmpl_src : "");
  cJSON_AddStringToObject(o, "system", "");
  cJSON_AddStringToObject(o, "license", "");
  cJSON_AddItemToObject(o, "details", details(m));
  cJSON *info = cJSON_AddObjectToObject(o, "model_info");
  const mlxr_gguf *g = mlxr_sched_gguf(s);
  for (int64_t i = 0; i < mlxr_gguf_n_kv(g); i++) {
    const char *key = mlxr_gguf_kv_key(g, i);
    if (!key || !mlxr_utf8_valid(key, strlen(key))) continue;
    if (strcmp(key, "tokenizer.chat_template") == 0) continue;
    cJSON_AddItemToObject(info, key, gguf_value(g, i, verbose));
  }
  cJSON_AddNumberToObject(info, "general.parameter_count", (double)m->n_params);
  cJSON *caps = cJSON_AddArrayToObject(o, "capabilities");
  cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
  if (m->tmpl_src && strstr(m->tmpl_src, "tools")) cJSON_AddItemToArray(caps, cJSON_CreateString("tools"));
  if (m->tmpl_src && (strstr(m->tmpl_src, "<think>") || strstr(m->tmpl_src, "enable_thinking")))
    cJSON_AddItemToArray(caps, cJSON_CreateString("thinking"));
  char ts[48];
  mlxr_rfc3339(m->mtime_wall, ts, sizeof ts);
  cJSON_AddStringToObject(o, "modified_at", ts);
  mlxr_models_release(m);
  mlxr_registry_show(r->srv, m, o);
  return mlxr_http_send_json(r, 200, o);
}

enum MHD_Result mlxr_route_ollama(mlxr_req *r, const char *path, bool *handled) {
  if (strncmp(path, "/api/", 5) != 0) return MHD_NO;
  *handled = true;
  enum MHD_Result res_reg;
  bool get = strcmp(r->method, "GET") == 0 || r->is_head;
  bool post = strcmp(r->method, "POST") == 0;
  if (strcmp(path, "/api/generate") == 0 || strcmp(path, "/api/chat") == 0) {
    bool chat = path[5] == 'c';
    r->route = chat ? "/api/chat" : "/api/generate";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return handle_gen(r, chat);
  }
  if (strcmp(path, "/api/embed") == 0 || strcmp(path, "/api/embeddings") == 0) {
    bool legacy = strcmp(path, "/api/embeddings") == 0;
    r->route = legacy ? "/api/embeddings" : "/api/embed";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return handle_embed(r, legacy);
  }
  if (strcmp(path, "/api/tags") == 0 || strcmp(path, "/api/ps") == 0) {
    bool ps = strcmp(path, "/api/ps") == 0;
    r->route = ps ? "/api/ps" : "/api/tags";
    if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET");
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    const int n = r->srv->models.n;
    for (int i = 0; i < n; i++) {
      mlxr_model_entry *m = &r->srv->models.e[i];
      if (!mlxr_models_live(m) || (!ps && m->from_catalog)) continue; /* tags: the catalog's below */
      if (!m->facts_ready || (ps && !mlxr_models_loaded(m))) continue;
      cJSON_AddItemToArray(arr, tag_obj(m, ps));
    }
    if (!ps) mlxr_registry_tags(r->srv, arr);
    return mlxr_http_send_json(r, 200, o);
  }
  if (strcmp(path, "/api/show") == 0) {
    r->route = "/api/show";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return handle_show(r);
  }
  if (strcmp(path, "/api/version") == 0) {
    r->route = "/api/version";
    if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", MLXR_SERVER_VERSION);
    return mlxr_http_send_json(r, 200, o);
  }
  res_reg = mlxr_route_registry(r, path, handled);
  if (*handled) return res_reg;
  *handled = true;
  static const char *const manage[] = {"/api/pull", "/api/push"};
  for (size_t i = 0; i < sizeof manage / sizeof manage[0]; i++) {
    if (strcmp(path, manage[i]) == 0) {
      r->route = manage[i];
      return mlxr_http_error(r, 501, NULL, NULL, NULL,
                             "%s is not implemented yet: upload a GGUF with /api/blobs and /api/create, or serve it with --model PATH",
                             manage[i]);
    }
  }
  *handled = false;
  return MHD_NO;
}
