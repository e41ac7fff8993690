/*
 * routes_openai.c: the OpenAI API: POST /v1/chat/completions, POST /v1/completions,
 * POST /v1/embeddings, GET /v1/models, GET /v1/models/{id}.
 *
 * Each generation request is validated field by field (type and range; errors are OpenAI error
 * objects naming the param), turned into token prompts (chat: the model's template; completions:
 * string, strings, token ids or lists of token ids), submitted as prompts x n scheduler requests
 * and answered either as one JSON object or as SSE: "data: <chunk>\n\n" events ending with
 * "data: [DONE]\n\n". Chat output goes through the chat parser (chat.h), so reasoning comes out
 * as reasoning_content and tool calls as tool_calls (streamed: id, type and name first, then the
 * arguments). With stream_options.include_usage every chunk carries "usage": null and a last
 * chunk with no choices carries the usage. An error after the stream began is one
 * `data: {"error": ...}` event, then [DONE].
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar.h"
#include "daemon/server/chat.h"
#include "daemon/server/server_impl.h"

#define MAX_CHOICES 128

/* ---------------- request fields ---------------- */

typedef struct oai_params {
  mlxr_gen_params gp;
  int32_t *bias_ids;
  float *bias_vals;
  char *grammar;   /* GBNF from response_format or grammar (gp.grammar points here) */
  char *schema_text; /* response_format's JSON schema, checked on the finished output (gp.json_schema) */
  int n;
  bool stream, include_usage, logprobs, echo;
} oai_params;

static void oai_params_free(oai_params *p) {
  free(p->bias_ids);
  free(p->bias_vals);
  free(p->grammar);
  free(p->schema_text);
}

/* response_format {type: text | json_object | json_schema {json_schema: {schema}}} and llama.cpp's
 * raw `grammar` (GBNF) into p->grammar, which the scheduler enforces. */
static bool parse_response_format(const cJSON *j, oai_params *p, mlxr_field_err *fe) {
  const cJSON *rf = cJSON_GetObjectItemCaseSensitive(j, "response_format");
  const cJSON *gr = cJSON_GetObjectItemCaseSensitive(j, "grammar");
  char err[240] = "";
  if (rf && !cJSON_IsNull(rf)) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    snprintf(fe->param, sizeof fe->param, "response_format");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type)) {
      snprintf(fe->msg, sizeof fe->msg, "'response_format' must be an object with a 'type'");
      return false;
    }
    if (strcmp(type->valuestring, "json_object") == 0) {
      p->grammar = mlxr_json_grammar_gbnf(MLXR_JSON_GRAMMAR_OBJECT);
      if (!p->grammar) return snprintf(fe->msg, sizeof fe->msg, "out of memory"), false;
    } else if (strcmp(type->valuestring, "json_schema") == 0) {
      const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
      const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
      if (!cJSON_IsObject(js)) {
        snprintf(fe->msg, sizeof fe->msg, "'response_format.json_schema' must be an object");
        return false;
      }
      int rc = mlxr_chat_json_grammar(schema, &p->grammar, err, sizeof err);
      if (rc == MLXR_OK && schema && !(p->schema_text = mlxr_json_print(schema))) rc = MLXR_ERR_NOMEM;
      if (rc != MLXR_OK) {
        snprintf(fe->msg, sizeof fe->msg, "'response_format.json_schema.schema' cannot be used: %.190s",
                 err[0] ? err : "out of memory");
        return false;
      }
    } else if (strcmp(type->valuestring, "text") != 0) {
      snprintf(fe->msg, sizeof fe->msg, "'response_format.type' must be text, json_object or json_schema");
      return false;
    }
    fe->param[0] = '\0';
  }
  if (gr && !cJSON_IsNull(gr)) {
    snprintf(fe->param, sizeof fe->param, "grammar");
    if (!cJSON_IsString(gr) || p->grammar) {
      snprintf(fe->msg, sizeof fe->msg, "'grammar' must be a GBNF string, and not given with a JSON response_format");
      return false;
    }
    mlxr_grammar *g = NULL;
    if (mlxr_grammar_parse(gr->valuestring, strlen(gr->valuestring), NULL, &g, err, sizeof err) != MLXR_OK) {
      snprintf(fe->msg, sizeof fe->msg, "'grammar': %.230s", err);
      return false;
    }
    mlxr_grammar_free(g);
    p->grammar = strdup(gr->valuestring);
    if (!p->grammar) return snprintf(fe->msg, sizeof fe->msg, "out of memory"), false;
    fe->param[0] = '\0';
  }
  p->gp.grammar = p->grammar;
  p->gp.json_schema = p->schema_text;
  return true;
}

static bool parse_common(const cJSON *j, oai_params *p, bool chat, int32_t n_vocab,
                         int32_t default_max, mlxr_field_err *fe) {
  memset(p, 0, sizeof(*p));
  p->gp = mlxr_gen_default_params();
  p->gp.max_tokens = default_max;
  p->gp.top_logprobs = -1;
  p->n = 1;
  int64_t i64;
  bool b;
  if (!mlxr_get_sampling(j, 2, &p->gp, fe)) return false;
  i64 = -1;
  if (!mlxr_get_int(j, "max_tokens", 1, 1 << 24, &i64, fe)) return false;
  if (!mlxr_get_int(j, "max_completion_tokens", 1, 1 << 24, &i64, fe)) return false;
  if (i64 > 0) p->gp.max_tokens = (int32_t)i64;
  i64 = 1;
  if (!mlxr_get_int(j, "n", 1, MAX_CHOICES, &i64, fe)) return false;
  p->n = (int)i64;
  b = false;
  if (!mlxr_get_bool(j, "stream", &b, fe)) return false;
  p->stream = b;
  b = false;
  if (!mlxr_get_bool(j, "ignore_eos", &b, fe)) return false;
  p->gp.ignore_eos = b;
  const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
  if (so && !cJSON_IsNull(so)) {
    if (!cJSON_IsObject(so)) {
      snprintf(fe->msg, sizeof fe->msg, "'stream_options' must be an object");
      snprintf(fe->param, sizeof fe->param, "stream_options");
      return false;
    }
    b = false;
    if (!mlxr_get_bool(so, "include_usage", &b, fe)) return false;
    p->include_usage = b && p->stream;
  }
  if (!mlxr_get_stop(j, "stop", 4, p->gp.stop, &p->gp.n_stop, fe)) return false;
  if (!parse_response_format(j, p, fe)) return false;
  if (chat) {
    b = false;
    if (!mlxr_get_bool(j, "logprobs", &b, fe)) return false;
    i64 = 0;
    if (!mlxr_get_int(j, "top_logprobs", 0, MLXR_MAX_TOP_LOGPROBS, &i64, fe)) return false;
    if (cJSON_GetObjectItemCaseSensitive(j, "top_logprobs") && !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "top_logprobs")) && !b) {
      snprintf(fe->msg, sizeof fe->msg, "'top_logprobs' needs 'logprobs': true");
      snprintf(fe->param, sizeof fe->param, "top_logprobs");
      return false;
    }
    p->logprobs = b;
    if (b) p->gp.top_logprobs = (int32_t)i64;
  } else {
    i64 = -1;
    if (!mlxr_get_int(j, "logprobs", 0, MLXR_MAX_TOP_LOGPROBS, &i64, fe)) return false;
    if (i64 >= 0) p->logprobs = true, p->gp.top_logprobs = (int32_t)i64;
    b = false;
    if (!mlxr_get_bool(j, "echo", &b, fe)) return false;
    p->echo = b;
  }
  const cJSON *lb = cJSON_GetObjectItemCaseSensitive(j, "logit_bias");
  if (lb && !cJSON_IsNull(lb)) {
    if (!cJSON_IsObject(lb)) {
      snprintf(fe->msg, sizeof fe->msg, "'logit_bias' must be an object of token id -> bias");
      snprintf(fe->param, sizeof fe->param, "logit_bias");
      return false;
    }
    int n = cJSON_GetArraySize(lb);
    if (n > 0) {
      p->bias_ids = malloc((size_t)n * sizeof(int32_t));
      p->bias_vals = malloc((size_t)n * sizeof(float));
      if (!p->bias_ids || !p->bias_vals) return false;
      const cJSON *kv;
      int k = 0;
      cJSON_ArrayForEach(kv, lb) {
        char *end = NULL;
        long long id = strtoll(kv->string, &end, 10);
        if (!kv->string[0] || *end || id < 0 || id >= n_vocab || !cJSON_IsNumber(kv) ||
            !(kv->valuedouble >= -100 && kv->valuedouble <= 100)) {
          snprintf(fe->msg, sizeof fe->msg,
                   "'logit_bias' keys must be token ids in [0, %d) and values numbers in [-100, 100]", n_vocab);
          snprintf(fe->param, sizeof fe->param, "logit_bias");
          return false;
        }
        p->bias_ids[k] = (int32_t)id;
        p->bias_vals[k] = (float)kv->valuedouble;
        k++;
      }
      p->gp.bias_ids = p->bias_ids;
      p->gp.bias_values = p->bias_vals;
      p->gp.n_bias = k;
    }
  }
  return true;
}

bool mlxr_openai_check_fields(const cJSON *j, bool chat, int32_t n_vocab, mlxr_field_err *fe) {
  oai_params p;
  bool ok = parse_common(j, &p, chat, n_vocab, chat ? 0 : 16, fe);
  oai_params_free(&p);
  return ok;
}

/* ---------------- SSE formatting ---------------- */

typedef struct oai_stream {
  mlxr_server *srv;
  const mlxr_tokenizer *tok;
  bool chat, tools;
  char id[48];
  long long created;
  char *model;
  int n, n_per_prompt;
  bool include_usage, logprobs;
  mlxr_chat_parser *parsers; /* [n] (chat) */
  bool *started;             /* [n] */
  int64_t *last_ns;          /* [n] */
  int64_t t_start;
  int64_t prompt_tokens, completion_tokens, cached_tokens;
  char **echo;               /* [n] completions with echo: the prompt text */
  size_t *text_off;          /* [n] completions: text offset for logprobs */
  /* while formatting one event */
  mlxr_buf *out;
  int cur;
  cJSON *pending_lp;
  bool *start_in_think;
  const char *schema_error;  /* the finishing choice's JSON schema violation (reported with it) */
} oai_stream;

static void stream_free_ctx(void *p) {
  oai_stream *st = p;
  if (!st) return;
  for (int i = 0; i < st->n; i++) {
    if (st->parsers) mlxr_chat_parser_free(&st->parsers[i]);
    if (st->echo) free(st->echo[i]);
  }
  free(st->parsers);
  free(st->started);
  free(st->last_ns);
  free(st->echo);
  free(st->text_off);
  free(st->start_in_think);
  free(st->model);
  cJSON_Delete(st->pending_lp);
  free(st);
}

static cJSON *chunk_base(oai_stream *st) {
  cJSON *c = cJSON_CreateObject();
  cJSON_AddStringToObject(c, "id", st->id);
  cJSON_AddStringToObject(c, "object", st->chat ? "chat.completion.chunk" : "text_completion");
  cJSON_AddNumberToObject(c, "created", (double)st->created);
  cJSON_AddStringToObject(c, "model", st->model);
  cJSON_AddStringToObject(c, "system_fingerprint", "mlxr-" MLXR_SERVER_VERSION);
  return c;
}

static void sse_send(oai_stream *st, cJSON *obj) {
  if (st->include_usage && !cJSON_GetObjectItemCaseSensitive(obj, "usage")) cJSON_AddNullToObject(obj, "usage");
  mlxr_sse_event(st->out, NULL, obj);
}

/* One chunk for choice st->cur: delta (owned) for chat, text for completions. */
static void send_choice(oai_stream *st, cJSON *delta, const char *text, size_t text_len,
                        const char *finish) {
  cJSON *c = chunk_base(st);
  cJSON *arr = cJSON_AddArrayToObject(c, "choices");
  cJSON *ch = cJSON_CreateObject();
  cJSON_AddNumberToObject(ch, "index", st->cur);
  if (st->chat) {
    cJSON_AddItemToObject(ch, "delta", delta ? delta : cJSON_CreateObject());
  } else {
    char *t = strndup(text ? text : "", text_len);
    cJSON_AddStringToObject(ch, "text", t ? t : "");
    free(t);
  }
  if (st->pending_lp) {
    cJSON_AddItemToObject(ch, "logprobs", st->pending_lp);
    st->pending_lp = NULL;
  } else {
    cJSON_AddNullToObject(ch, "logprobs");
  }
  if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
  else cJSON_AddNullToObject(ch, "finish_reason");
  if (finish && st->schema_error) cJSON_AddStringToObject(ch, "schema_violation", st->schema_error);
  cJSON_AddItemToArray(arr, ch);
  sse_send(st, c);
}

static cJSON *oai_tool_call(const mlxr_chat_delta *d, bool streaming_head) {
  cJSON *tc = cJSON_CreateObject();
  char id[40] = "call_";
  mlxr_random_id(id + 5, 24);
  if (streaming_head) cJSON_AddNumberToObject(tc, "index", d->tool_index);
  cJSON_AddStringToObject(tc, "id", id);
  cJSON_AddStringToObject(tc, "type", "function");
  cJSON *fn = cJSON_AddObjectToObject(tc, "function");
  cJSON_AddStringToObject(fn, "name", d->tool_name);
  if (streaming_head) {
    cJSON_AddStringToObject(fn, "arguments", "");
  } else {
    char *args = cJSON_PrintUnformatted(d->tool_args);
    cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
    free(args);
  }
  return tc;
}

static void stream_emit(void *user, const mlxr_chat_delta *d) {
  oai_stream *st = user;
  cJSON *delta = cJSON_CreateObject();
  if (d->part == MLXR_CHAT_TOOL_CALL) {
    cJSON *arr = cJSON_AddArrayToObject(delta, "tool_calls");
    cJSON_AddItemToArray(arr, oai_tool_call(d, true));
    send_choice(st, delta, NULL, 0, NULL);
    /* then the arguments, as a fragment of their own */
    delta = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(delta, "tool_calls");
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddNumberToObject(tc, "index", d->tool_index);
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    char *args = cJSON_PrintUnformatted(d->tool_args);
    cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
    free(args);
    cJSON_AddItemToArray(arr, tc);
    send_choice(st, delta, NULL, 0, NULL);
    return;
  }
  char *t = strndup(d->text, d->len);
  cJSON_AddStringToObject(delta, d->part == MLXR_CHAT_REASONING ? "reasoning_content" : "content", t ? t : "");
  free(t);
  send_choice(st, delta, NULL, 0, NULL);
}

static cJSON *completion_logprobs(oai_stream *st, const mlxr_ev *e, int choice) {
  cJSON *lp = cJSON_CreateObject();
  char piece[1600];
  mlxr_token_piece(st->tok, e->token, piece, sizeof piece, NULL, NULL, 0);
  cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens");
  cJSON_AddItemToArray(tokens, cJSON_CreateString(piece));
  cJSON *tl = cJSON_AddArrayToObject(lp, "token_logprobs");
  cJSON_AddItemToArray(tl, cJSON_CreateNumber(e->logprob));
  cJSON *tops = cJSON_AddArrayToObject(lp, "top_logprobs");
  cJSON *m = cJSON_CreateObject();
  for (int i = 0; i < e->n_top; i++) {
    mlxr_token_piece(st->tok, e->top[i].token, piece, sizeof piece, NULL, NULL, 0);
    if (!cJSON_GetObjectItemCaseSensitive(m, piece)) cJSON_AddNumberToObject(m, piece, e->top[i].logprob);
  }
  cJSON_AddItemToArray(tops, m);
  cJSON *off = cJSON_AddArrayToObject(lp, "text_offset");
  cJSON_AddItemToArray(off, cJSON_CreateNumber((double)st->text_off[choice]));
  return lp;
}

static void oai_format(void *ctx, const mlxr_ev *e, mlxr_buf *out) {
  oai_stream *st = ctx;
  st->out = out;
  if (!e) {
    if (st->include_usage) {
      cJSON *c = chunk_base(st);
      cJSON_AddArrayToObject(c, "choices");
      cJSON *u = cJSON_AddObjectToObject(c, "usage");
      cJSON_AddNumberToObject(u, "prompt_tokens", (double)st->prompt_tokens);
      cJSON_AddNumberToObject(u, "completion_tokens", (double)st->completion_tokens);
      cJSON_AddNumberToObject(u, "total_tokens", (double)(st->prompt_tokens + st->completion_tokens));
      if (st->chat) {
        cJSON *pd = cJSON_AddObjectToObject(u, "prompt_tokens_details");
        cJSON_AddNumberToObject(pd, "cached_tokens", (double)st->cached_tokens);
      }
      sse_send(st, c);
    }
    mlxr_buf_adds(out, "data: [DONE]\n\n");
    return;
  }
  int c = e->choice;
  st->cur = c;
  mlxr_observe_event(st->srv, e, st->t_start, &st->last_ns[c]);
  if (e->kind == MLXR_GEN_ERROR) {
    cJSON *o = cJSON_CreateObject();
    cJSON *er = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(er, "message", e->message ? e->message : "generation failed");
    cJSON_AddStringToObject(er, "type", "server_error");
    cJSON_AddNullToObject(er, "param");
    cJSON_AddNullToObject(er, "code");
    bool iu = st->include_usage;
    st->include_usage = false;
    sse_send(st, o);
    st->include_usage = iu;
    return;
  }
  if (!st->started[c]) {
    st->started[c] = true;
    if (st->chat) {
      cJSON *d = cJSON_CreateObject();
      cJSON_AddStringToObject(d, "role", "assistant");
      cJSON_AddStringToObject(d, "content", "");
      send_choice(st, d, NULL, 0, NULL);
    } else if (st->echo && st->echo[c]) {
      send_choice(st, NULL, st->echo[c], strlen(st->echo[c]), NULL);
      st->text_off[c] += strlen(st->echo[c]);
    }
  }
  if (e->kind == MLXR_GEN_TOKEN) {
    if (st->logprobs) {
      if (st->chat) {
        st->pending_lp = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(st->pending_lp, "content");
        cJSON_AddItemToArray(arr, mlxr_logprob_entry(st->tok, e->token, e->logprob, e->top, e->n_top));
      } else {
        st->pending_lp = completion_logprobs(st, e, c);
      }
    }
    if (st->chat) {
      mlxr_chat_parser_push(&st->parsers[c], e->text, e->text_len, false, stream_emit, st);
      if (st->pending_lp) send_choice(st, NULL, NULL, 0, NULL);
    } else if (e->text_len || st->pending_lp) {
      send_choice(st, NULL, e->text, e->text_len, NULL);
      st->text_off[c] += e->text_len;
    }
    return;
  }
  /* DONE */
  const char *finish = mlxr_finish_name(e->finish);
  st->schema_error = e->schema_error; /* the output broke the JSON schema: said with the finish */
  if (st->chat) {
    st->parsers[c].cut = e->finish == MLXR_FINISH_LENGTH; /* a call cut off is dropped, not content */
    mlxr_chat_parser_push(&st->parsers[c], e->text, e->text_len, true, stream_emit, st);
    if (st->parsers[c].n_tool_calls > 0 && e->finish == MLXR_FINISH_STOP) finish = "tool_calls";
    send_choice(st, NULL, NULL, 0, finish);
  } else {
    send_choice(st, NULL, e->text, e->text_len, finish);
  }
  if (c % st->n_per_prompt == 0) st->prompt_tokens += e->prompt_tokens, st->cached_tokens += e->cached_tokens;
  st->completion_tokens += e->completion_tokens;
}

/* ---------------- non-streamed responses ---------------- */

typedef struct collect_ctx {
  mlxr_buf content, reasoning;
  cJSON *tool_calls;
} collect_ctx;

static void collect_emit(void *user, const mlxr_chat_delta *d) {
  collect_ctx *cc = user;
  if (d->part == MLXR_CHAT_TOOL_CALL) {
    if (!cc->tool_calls) cc->tool_calls = cJSON_CreateArray();
    cJSON_AddItemToArray(cc->tool_calls, oai_tool_call(d, false));
  } else {
    mlxr_buf_add(d->part == MLXR_CHAT_REASONING ? &cc->reasoning : &cc->content, d->text, d->len);
  }
}

static cJSON *usage_obj(mlxr_choice *ch, int n, int n_per_prompt, bool chat) {
  int64_t pt = 0, ct = 0, cached = 0;
  for (int i = 0; i < n; i++) {
    if (i % n_per_prompt == 0) pt += ch[i].prompt_tokens, cached += ch[i].cached_tokens;
    ct += ch[i].completion_tokens;
  }
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "prompt_tokens", (double)pt);
  cJSON_AddNumberToObject(u, "completion_tokens", (double)ct);
  cJSON_AddNumberToObject(u, "total_tokens", (double)(pt + ct));
  if (chat) {
    cJSON *pd = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(pd, "cached_tokens", (double)cached);
  }
  return u;
}

/* ---------------- handlers ---------------- */

static enum MHD_Result field_error(mlxr_req *r, const mlxr_field_err *fe) {
  return mlxr_http_error(r, 400, NULL, NULL, fe->param[0] ? fe->param : NULL, "%s", fe->msg[0] ? fe->msg : "invalid request");
}

/* Tokenized prompts of /v1/completions. */
typedef struct prompt_list {
  int32_t **ids;
  int32_t *n;
  char **text; /* for echo */
  int count;
} prompt_list;

static void prompt_list_free(prompt_list *pl) {
  for (int i = 0; i < pl->count; i++) {
    free(pl->ids[i]);
    free(pl->text[i]);
  }
  free(pl->ids);
  free(pl->n);
  free(pl->text);
}

static bool token_array(const cJSON *a, int32_t n_vocab, int32_t **ids, int32_t *n) {
  int k = cJSON_GetArraySize(a);
  *ids = malloc((size_t)(k > 0 ? k : 1) * sizeof(int32_t));
  if (!*ids) return false;
  int i = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, a) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < n_vocab) ||
        v->valuedouble != floor(v->valuedouble))
      return false;
    (*ids)[i++] = (int32_t)v->valuedouble;
  }
  *n = i;
  return true;
}

static bool parse_prompts(const cJSON *p, const mlxr_tokenizer *tok, prompt_list *pl, char *err,
                          size_t err_len) {
  memset(pl, 0, sizeof(*pl));
  int32_t n_vocab = mlxr_tokenizer_n_vocab(tok);
  int count = 1;
  bool list_of = false;
  if (cJSON_IsArray(p)) {
    const cJSON *first = p->child;
    if (!first) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "'prompt' must not be an empty array"), false;
    if (cJSON_IsString(first) || cJSON_IsArray(first)) list_of = true, count = cJSON_GetArraySize(p);
  } else if (!cJSON_IsString(p)) {
    mlxr_errf(err, err_len, MLXR_ERR_INVALID, "'prompt' must be a string, an array of strings, an array of token ids or an array of arrays of token ids");
    return false;
  }
  if (count > MAX_CHOICES) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "at most %d prompts", MAX_CHOICES), false;
  pl->ids = calloc((size_t)count, sizeof(*pl->ids));
  pl->n = calloc((size_t)count, sizeof(*pl->n));
  pl->text = calloc((size_t)count, sizeof(*pl->text));
  if (!pl->ids || !pl->n || !pl->text) return false;
  pl->count = count;
  for (int i = 0; i < count; i++) {
    const cJSON *item = list_of ? cJSON_GetArrayItem(p, i) : p;
    if (cJSON_IsString(item)) {
      size_t n = 0;
      if (mlxr_tokenize(tok, item->valuestring, true, &pl->ids[i], &n) < 0)
        return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "cannot tokenize prompt %d", i), false;
      pl->n[i] = (int32_t)n;
      pl->text[i] = strdup(item->valuestring);
    } else if (cJSON_IsArray(item) && (!list_of || item != p)) {
      if (!token_array(item, n_vocab, &pl->ids[i], &pl->n[i]))
        return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "token ids must be integers in [0, %d)", n_vocab), false;
      char *txt = NULL;
      size_t tl = 0;
      if (mlxr_tokenizer_decode(tok, pl->ids[i], (size_t)pl->n[i], false, &txt, &tl) == 0) pl->text[i] = txt;
    } else {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "prompt %d must be a string or an array of token ids", i), false;
    }
  }
  return true;
}

static enum MHD_Result handle_generate(mlxr_req *r, bool chat) {
  enum MHD_Result res = MHD_NO;
  mlxr_model_entry *m = mlxr_req_body_model(r, &res);
  if (!m) return res;
  const cJSON *j = r->json;
  mlxr_field_err fe = {{0}, {0}};
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(j, "messages");
  const cJSON *prompt_v = cJSON_GetObjectItemCaseSensitive(j, "prompt");
  if (chat && (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0))
    return mlxr_http_error(r, 400, NULL, NULL, "messages", "'messages' must be a non-empty array");
  if (!chat && !prompt_v)
    return mlxr_http_error(r, 400, NULL, NULL, "prompt", "'prompt' is required");
  if (!chat && cJSON_GetObjectItemCaseSensitive(j, "suffix") && !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "suffix")))
    return mlxr_http_error(r, 400, NULL, NULL, "suffix", "'suffix' (fill-in-the-middle) is not supported");

  mlxr_sched *sched = NULL;
  int64_t load_ns = 0;
  char err[1024] = "";
  const int acq_rc = mlxr_models_acquire(&r->srv->models, m, &sched, &load_ns, err, sizeof err);
  if (acq_rc < 0)
    return mlxr_http_error(r, acq_rc == MLXR_ERR_NOT_FOUND ? 404 : 500, NULL, NULL, NULL, "cannot load model '%s': %s", m->id, err);
  const mlxr_tokenizer *tok = mlxr_sched_tokenizer(sched);
  oai_params p;
  prompt_list pl = {0};
  mlxr_genset *gs = NULL;
  oai_stream *st = NULL;
  mlxr_choice *ch = NULL;
  char *prompt_text = NULL;
  mlxr_tool_setup ts = {0};
  bool tools_on = false, start_think = false;
  if (!parse_common(j, &p, chat, mlxr_tokenizer_n_vocab(tok), chat ? 0 : 16, &fe)) {
    res = field_error(r, &fe);
    goto done;
  }
  p.gp.max_tokens = mlxr_cap_max_tokens(r->srv, p.gp.max_tokens);
  if (chat) {
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(j, "tool_choice");
    const cJSON *fn_name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name");
    const char *mode = !choice || cJSON_IsNull(choice) ? "auto"
                       : cJSON_IsString(choice)       ? choice->valuestring
                       : cJSON_IsString(fn_name)      ? "named"
                                                      : "invalid";
    if (!mlxr_tool_setup_init(r, &ts, cJSON_GetObjectItemCaseSensitive(j, "tools"), mode,
                              cJSON_IsString(fn_name) ? fn_name->valuestring : NULL,
                              !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "parallel_tool_calls")), m->tmpl_src, &res))
      goto done;
    tools_on = ts.on;
    if (ts.forced) {
      if (p.grammar) {
        res = mlxr_http_error(r, 400, NULL, NULL, "tool_choice", "a forced tool_choice cannot be combined with a JSON response_format or a grammar");
        goto done;
      }
      p.gp.grammar = ts.grammar;
    }
    cJSON *kwargs = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(j, "chat_template_kwargs"), true);
    if (kwargs && !cJSON_IsObject(kwargs)) {
      cJSON_Delete(kwargs);
      res = mlxr_http_error(r, 400, NULL, NULL, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
      goto done;
    }
    const cJSON *effort = cJSON_GetObjectItemCaseSensitive(j, "reasoning_effort");
    if (cJSON_IsString(effort)) {
      if (!kwargs) kwargs = cJSON_CreateObject();
      if (!cJSON_GetObjectItemCaseSensitive(kwargs, "reasoning_effort"))
        cJSON_AddStringToObject(kwargs, "reasoning_effort", effort->valuestring);
    }
    prompt_text = mlxr_chat_prompt(r, m, messages, ts.tools, kwargs, false, true, &res);
    cJSON_Delete(kwargs);
    if (!prompt_text) goto done;
    start_think = mlxr_chat_prompt_opens_think(prompt_text);
    pl.count = 1;
    pl.ids = calloc(1, sizeof(*pl.ids));
    pl.n = calloc(1, sizeof(*pl.n));
    pl.text = calloc(1, sizeof(*pl.text));
    size_t n = 0;
    if (!pl.ids || !pl.n || !pl.text || mlxr_tokenize(tok, prompt_text, false, &pl.ids[0], &n) < 0) {
      res = mlxr_http_error(r, 500, NULL, NULL, NULL, "cannot tokenize the prompt");
      goto done;
    }
    pl.n[0] = (int32_t)n;
  } else if (!parse_prompts(prompt_v, tok, &pl, err, sizeof err)) {
    res = mlxr_http_error(r, 400, NULL, NULL, "prompt", "%s", err[0] ? err : "invalid prompt");
    goto done;
  }
  if (pl.count * p.n > MAX_CHOICES) {
    res = mlxr_http_error(r, 400, NULL, NULL, "n", "prompts x n must be at most %d", MAX_CHOICES);
    goto done;
  }
  for (int i = 0; i < pl.count; i++)
    if (!mlxr_check_prompt(r, m, pl.n[i], &res)) goto done;
  gs = calloc(1, sizeof(*gs));
  if (!gs || mlxr_genset_init(gs, pl.count * p.n) < 0) {
    free(gs);
    gs = NULL;
    res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    goto done;
  }
  for (int i = 0; i < pl.count; i++)
    if (!mlxr_submit(r, sched, gs, pl.ids[i], pl.n[i], &p.gp, p.n, &res)) goto done;

  char id[48];
  snprintf(id, sizeof id, "%s", chat ? "chatcmpl-" : "cmpl-");
  mlxr_random_id(id + strlen(id), 24);
  long long created = (long long)time(NULL);
  int total = gs->n;
  if (p.stream) {
    st = calloc(1, sizeof(*st));
    if (!st) goto oom;
    st->srv = r->srv;
    st->tok = tok;
    st->chat = chat;
    st->tools = tools_on;
    snprintf(st->id, sizeof st->id, "%s", id);
    st->created = created;
    st->model = strdup(m->id);
    st->n = total;
    st->n_per_prompt = p.n;
    st->include_usage = p.include_usage;
    st->logprobs = p.logprobs;
    st->t_start = r->t_start;
    st->started = calloc((size_t)total, sizeof(bool));
    st->last_ns = calloc((size_t)total, sizeof(int64_t));
    st->text_off = calloc((size_t)total, sizeof(size_t));
    if (!st->model || !st->started || !st->last_ns || !st->text_off) goto oom;
    if (chat) {
      st->parsers = calloc((size_t)total, sizeof(mlxr_chat_parser));
      if (!st->parsers) goto oom;
      for (int i = 0; i < total; i++) {
        mlxr_chat_parser_init(&st->parsers[i], tools_on, start_think);
        st->parsers[i].forced = ts.forced;
      }
    } else if (p.echo) {
      st->echo = calloc((size_t)total, sizeof(char *));
      if (!st->echo) goto oom;
      for (int i = 0; i < total; i++) st->echo[i] = pl.text[i / p.n] ? strdup(pl.text[i / p.n]) : NULL;
    }
    res = mlxr_http_stream(r, "text/event-stream", gs, oai_format, st, stream_free_ctx, sched, m);
    gs = NULL;
    st = NULL;
    sched = NULL; /* released by the stream */
    goto done;
  }
  ch = calloc((size_t)total, sizeof(*ch));
  if (!ch) goto oom;
  if (!mlxr_collect(r, gs, ch, tok, p.logprobs)) {
    res = MHD_NO; /* client gone */
    goto done;
  }
  for (int i = 0; i < total; i++) {
    if (ch[i].error) {
      res = mlxr_http_error(r, 500, "server_error", NULL, NULL, "%s", ch[i].error);
      goto done;
    }
  }
  {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", chat ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", m->id);
    cJSON_AddStringToObject(o, "system_fingerprint", "mlxr-" MLXR_SERVER_VERSION);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    for (int i = 0; i < total; i++) {
      cJSON *c = cJSON_CreateObject();
      cJSON_AddNumberToObject(c, "index", i);
      const char *finish = mlxr_finish_name(ch[i].finish);
      if (chat) {
        mlxr_chat_parser parser;
        collect_ctx cc = {{0}, {0}, NULL};
        mlxr_chat_parser_init(&parser, tools_on, start_think);
        parser.forced = ts.forced;
        parser.cut = ch[i].finish == MLXR_FINISH_LENGTH;
        mlxr_chat_parser_push(&parser, ch[i].text.p ? ch[i].text.p : "", ch[i].text.len, true, collect_emit, &cc);
        mlxr_chat_parser_free(&parser);
        cJSON *msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        if (cc.tool_calls && cc.content.len == 0) cJSON_AddNullToObject(msg, "content");
        else cJSON_AddStringToObject(msg, "content", cc.content.p ? cc.content.p : "");
        cJSON_AddNullToObject(msg, "refusal");
        if (cc.reasoning.len) cJSON_AddStringToObject(msg, "reasoning_content", cc.reasoning.p);
        if (cc.tool_calls) {
          cJSON_AddItemToObject(msg, "tool_calls", cc.tool_calls);
          if (ch[i].finish == MLXR_FINISH_STOP) finish = "tool_calls";
        }
        mlxr_buf_free(&cc.content);
        mlxr_buf_free(&cc.reasoning);
        if (ch[i].logprobs) {
          cJSON *lp = cJSON_AddObjectToObject(c, "logprobs");
          cJSON_AddItemToObject(lp, "content", ch[i].logprobs);
          ch[i].logprobs = NULL;
        } else {
          cJSON_AddNullToObject(c, "logprobs");
        }
      } else {
        const char *echo = p.echo ? pl.text[i / p.n] : NULL;
        mlxr_buf t = {0};
        if (echo) mlxr_buf_adds(&t, echo);
        mlxr_buf_add(&t, ch[i].text.p ? ch[i].text.p : "", ch[i].text.len);
        cJSON_AddStringToObject(c, "text", t.p ? t.p : "");
        mlxr_buf_free(&t);
        if (ch[i].logprobs) {
          cJSON *lp = cJSON_AddObjectToObject(c, "logprobs");
          cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens");
          cJSON *tl = cJSON_AddArrayToObject(lp, "token_logprobs");
          cJSON *tops = cJSON_AddArrayToObject(lp, "top_logprobs");
          cJSON *offs = cJSON_AddArrayToObject(lp, "text_offset");
          size_t off = echo ? strlen(echo) : 0;
          const cJSON *e;
          cJSON_ArrayForEach(e, ch[i].logprobs) {
            const char *tk = cJSON_GetObjectItemCaseSensitive(e, "token")->valuestring;
            cJSON_AddItemToArray(tokens, cJSON_CreateString(tk));
            cJSON_AddItemToArray(tl, cJSON_CreateNumber(cJSON_GetObjectItemCaseSensitive(e, "logprob")->valuedouble));
            cJSON *mp = cJSON_CreateObject();
            const cJSON *alt;
            cJSON_ArrayForEach(alt, cJSON_GetObjectItemCaseSensitive(e, "top_logprobs")) {
              const char *at = cJSON_GetObjectItemCaseSensitive(alt, "token")->valuestring;
              if (!cJSON_GetObjectItemCaseSensitive(mp, at))
                cJSON_AddNumberToObject(mp, at, cJSON_GetObjectItemCaseSensitive(alt, "logprob")->valuedouble);
            }
            cJSON_AddItemToArray(tops, mp);
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
            off += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e, "bytes"));
          }
        } else {
          cJSON_AddNullToObject(c, "logprobs");
        }
      }
      cJSON_AddStringToObject(c, "finish_reason", finish);
      if (ch[i].schema_error) cJSON_AddStringToObject(c, "schema_violation", ch[i].schema_error);
      cJSON_AddItemToArray(choices, c);
    }
    cJSON_AddItemToObject(o, "usage", usage_obj(ch, total, p.n, chat));
    res = mlxr_http_send_json(r, 200, o);
  }
  goto done;
oom:
  res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
done:
  if (ch) {
    for (int i = 0; gs && i < gs->n; i++) mlxr_choice_free(&ch[i]);
    free(ch);
  }
  stream_free_ctx(st);
  if (gs) {
    mlxr_genset_cancel(gs);
    mlxr_genset_free(gs);
    free(gs);
  }
  prompt_list_free(&pl);
  free(prompt_text);
  mlxr_tool_setup_free(&ts);
  oai_params_free(&p);
  if (sched) mlxr_models_release(m);
  return res;
}

/* ---------------- embeddings (shared with Ollama's routes) ---------------- */

static enum MHD_Result handle_embeddings(mlxr_req *r);

static cJSON *model_obj(mlxr_model_entry *m) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", m->id);
  cJSON_AddStringToObject(o, "object", "model");
  cJSON_AddNumberToObject(o, "created", (double)(m->mtime_wall / 1000000000));
  cJSON_AddStringToObject(o, "owned_by", "mlxr");
  return o;
}

enum MHD_Result mlxr_route_openai(mlxr_req *r, const char *path, bool *handled) {
  if (strncmp(path, "/v1/", 4) != 0) return MHD_NO;
  *handled = true;
  bool get = strcmp(r->method, "GET") == 0 || r->is_head;
  bool post = strcmp(r->method, "POST") == 0;
  if (strcmp(path, "/v1/models") == 0) {
    r->route = "/v1/models";
    if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    const int n = r->srv->models.n;
    for (int i = 0; i < n; i++)
      if (mlxr_models_live(&r->srv->models.e[i])) cJSON_AddItemToArray(data, model_obj(&r->srv->models.e[i]));
    return mlxr_http_send_json(r, 200, o);
  }
  if (strncmp(path, "/v1/models/", 11) == 0) {
    r->route = "/v1/models/{id}";
    if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET");
    enum MHD_Result res;
    mlxr_model_entry *m = mlxr_req_model(r, path + 11, &res);
    if (!m) return res;
    return mlxr_http_send_json(r, 200, model_obj(m));
  }
  if (strcmp(path, "/v1/chat/completions") == 0) {
    r->route = "/v1/chat/completions";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return handle_generate(r, true);
  }
  if (strcmp(path, "/v1/completions") == 0) {
    r->route = "/v1/completions";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return handle_generate(r, false);
  }
  if (strcmp(path, "/v1/embeddings") == 0) {
    r->route = "/v1/embeddings";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return handle_embeddings(r);
  }
  *handled = false;
  return MHD_NO;
}

/* ---------------- /v1/embeddings ---------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_floats(const float *v, int n) {
  size_t len = (size_t)n * 4;
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  if (!out) return NULL;
  unsigned char *bytes = malloc(len ? len : 1);
  if (!bytes) {
    free(out);
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    bytes[4 * i] = (unsigned char)u, bytes[4 * i + 1] = (unsigned char)(u >> 8);
    bytes[4 * i + 2] = (unsigned char)(u >> 16), bytes[4 * i + 3] = (unsigned char)(u >> 24);
  }
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t x = (uint32_t)bytes[i] << 16;
    if (i + 1 < len) x |= (uint32_t)bytes[i + 1] << 8;
    if (i + 2 < len) x |= bytes[i + 2];
    out[o++] = b64[(x >> 18) & 63];
    out[o++] = b64[(x >> 12) & 63];
    out[o++] = i + 1 < len ? b64[(x >> 6) & 63] : '=';
    out[o++] = i + 2 < len ? b64[x & 63] : '=';
  }
  out[o] = '\0';
  free(bytes);
  return out;
}

static enum MHD_Result handle_embeddings(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  const cJSON *j = r->json;
  mlxr_field_err fe = {{0}, {0}};
  const char *model_name = NULL, *fmt = "float", *pooling = NULL;
  int64_t dims = 0;
  if (!mlxr_get_str(j, "model", &model_name, &fe) || !mlxr_get_str(j, "encoding_format", &fmt, &fe) ||
      !mlxr_get_int(j, "dimensions", 1, 1 << 20, &dims, &fe) || !mlxr_get_str(j, "pooling", &pooling, &fe))
    return field_error(r, &fe);
  if (pooling && strcmp(pooling, "mean") != 0 && strcmp(pooling, "last") != 0)
    return mlxr_http_error(r, 400, NULL, NULL, "pooling", "'pooling' must be mean or last");
  if (strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0)
    return mlxr_http_error(r, 400, NULL, NULL, "encoding_format", "'encoding_format' must be float or base64");
  mlxr_model_entry *m = mlxr_req_model(r, model_name, &res);
  if (!m) return res;
  const cJSON *input = cJSON_GetObjectItemCaseSensitive(j, "input");
  if (!input) return mlxr_http_error(r, 400, NULL, NULL, "input", "'input' is required");
  mlxr_sched *sched = NULL;
  int64_t load_ns = 0;
  char err[1024] = "";
  const int acq_rc = mlxr_models_acquire(&r->srv->models, m, &sched, &load_ns, err, sizeof err);
  if (acq_rc < 0)
    return mlxr_http_error(r, acq_rc == MLXR_ERR_NOT_FOUND ? 404 : 500, NULL, NULL, NULL, "cannot load model '%s': %s", m->id, err);
  const mlxr_tokenizer *tok = mlxr_sched_tokenizer(sched);
  prompt_list pl;
  float *vec = NULL;
  if (!parse_prompts(input, tok, &pl, err, sizeof err)) {
    res = mlxr_http_error(r, 400, NULL, NULL, "input", "%s", err[0] ? err : "invalid input");
    goto done;
  }
  int32_t n_embd = m->n_embd;
  if (dims > n_embd) {
    res = mlxr_http_error(r, 400, NULL, NULL, "dimensions", "'dimensions' must be at most %d for this model", n_embd);
    goto done;
  }
  int out_dims = dims > 0 ? (int)dims : n_embd;
  vec = malloc((size_t)n_embd * sizeof(float));
  if (!vec) goto done;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "object", "list");
  cJSON *data = cJSON_AddArrayToObject(o, "data");
  int64_t total_tokens = 0;
  for (int i = 0; i < pl.count; i++) {
    if (!mlxr_check_prompt(r, m, pl.n[i], &res)) {
      cJSON_Delete(o);
      goto done;
    }
    const mlxr_pooling pool = pooling ? (pooling[0] == 'l' ? MLXR_POOL_LAST : MLXR_POOL_MEAN) : mlxr_model_pooling(sched);
    if (mlxr_sched_embed(sched, pl.ids[i], pl.n[i], pool, true, vec, err, sizeof err) < 0) {
      cJSON_Delete(o);
      res = mlxr_http_error(r, 500, NULL, NULL, NULL, "embedding failed: %s", err);
      goto done;
    }
    total_tokens += pl.n[i];
    double norm = 0;
    for (int k = 0; k < out_dims; k++) norm += (double)vec[k] * vec[k];
    norm = sqrt(norm);
    for (int k = 0; k < out_dims; k++) vec[k] = norm > 0 ? (float)(vec[k] / norm) : 0.0f;
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "object", "embedding");
    cJSON_AddNumberToObject(d, "index", i);
    if (strcmp(fmt, "base64") == 0) {
      char *s = base64_floats(vec, out_dims);
      cJSON_AddStringToObject(d, "embedding", s ? s : "");
      free(s);
    } else {
      cJSON *arr = cJSON_AddArrayToObject(d, "embedding");
      for (int k = 0; k < out_dims; k++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(vec[k]));
    }
    cJSON_AddItemToArray(data, d);
  }
  cJSON_AddStringToObject(o, "model", m->id);
  cJSON *u = cJSON_AddObjectToObject(o, "usage");
  cJSON_AddNumberToObject(u, "prompt_tokens", (double)total_tokens);
  cJSON_AddNumberToObject(u, "total_tokens", (double)total_tokens);
  mlxr_metrics_tokens(&r->srv->metrics, total_tokens, 0, false);
  res = mlxr_http_send_json(r, 200, o);
done:
  free(vec);
  prompt_list_free(&pl);
  mlxr_models_release(m);
  return res;
}
