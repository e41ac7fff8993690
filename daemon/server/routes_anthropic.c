/*
 * routes_anthropic.c: the Anthropic Messages API: POST /v1/messages and
 * POST /v1/messages/count_tokens, for the official SDKs and the coding agents built on them.
 *
 * A request becomes a chat generation (generate.c's chat jobs): `system` (a string or text blocks)
 * turns into a system message; each message's blocks map onto chat messages: text into content,
 * thinking into reasoning_content, tool_use into tool_calls, and each tool_result into a tool
 * message (before the user's own text). `tools` ({name, description, input_schema}) and
 * `tool_choice` (auto, any, tool, none; disable_parallel_tool_use) go through the shared tool
 * rules, so `any` and `tool` are enforced by a grammar; `thinking` sets the template's
 * enable_thinking; `stop_sequences` are the scheduler's stop strings (the one that ended the
 * generation is reported as stop_sequence). `max_tokens` is required, as Anthropic requires it.
 *
 * The answer is a block run (generate.c: one formatter for both forms, this file saying how each
 * block, the start and the end look) over the chat output blocks (chat.h): thinking, text and
 * tool_use content blocks. Streamed, events go out as "event: NAME" + data, in Anthropic's order:
 *
 *   message_start, ping,
 *   per block: content_block_start, content_block_delta* (text_delta | thinking_delta |
 *              input_json_delta), content_block_stop
 *   message_delta (stop_reason, stop_sequence, usage), message_stop
 *
 * and a failure after the stream began is an `error` event. Errors are Anthropic's
 * {"type": "error", "error": {"type", "message"}} (http_util.c, by the request's API). Auth takes
 * x-api-key as well as a bearer token (auth.c); anthropic-version is accepted whatever it says.
 * Usage follows Anthropic: input_tokens are the prompt tokens not read from the prefix cache,
 * cache_read_input_tokens the ones that were (message_start, sent before the cache is known,
 * counts the whole prompt; message_delta carries the final numbers).
 *
 * Threads: a handler and its formatter run on the connection's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "daemon/server/chat.h"
#include "daemon/server/server_impl.h"

/* ---------------- messages -> chat messages ---------------- */

static cJSON *chat_msg(const char *role, const char *content) {
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", role);
  cJSON_AddStringToObject(m, "content", content);
  return m;
}

/* One user message: tool results become tool messages, the rest one user message after them. */
static bool add_user(cJSON *msgs, const cJSON *content, char *err, size_t err_len) {
  mlxr_buf text = {0};
  mlxr_buf_adds(&text, "");
  const cJSON *blk;
  bool ok = true;
  cJSON_ArrayForEach(blk, content) {
    const char *type = mlxr_chat_str(blk, "type");
    if (type && strcmp(type, "text") == 0 && mlxr_chat_str(blk, "text")) {
      if (text.len) mlxr_buf_adds(&text, "\n");
      mlxr_buf_adds(&text, mlxr_chat_str(blk, "text"));
    } else if (type && strcmp(type, "tool_result") == 0) {
      const char *id = mlxr_chat_str(blk, "tool_use_id");
      const cJSON *c = cJSON_GetObjectItemCaseSensitive(blk, "content");
      char *t = !c || cJSON_IsNull(c) ? strdup("") : mlxr_chat_parts_text(c, err, err_len);
      if (!id || !t) {
        if (!id) mlxr_errf(err, err_len, MLXR_ERR_INVALID, "a tool_result block needs tool_use_id");
        free(t);
        ok = false;
        break;
      }
      cJSON *m = chat_msg("tool", t);
      cJSON_AddStringToObject(m, "tool_call_id", id);
      const char *name = mlxr_chat_call_name(msgs, id);
      if (name) cJSON_AddStringToObject(m, "name", name);
      if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(blk, "is_error"))) cJSON_AddBoolToObject(m, "is_error", true);
      cJSON_AddItemToArray(msgs, m);
      free(t);
    } else {
      mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "content block type '%.40s' is not supported by this model", type ? type : "?");
      ok = false;
      break;
    }
  }
  if (ok && text.len) cJSON_AddItemToArray(msgs, chat_msg("user", text.p));
  mlxr_buf_free(&text);
  return ok;
}

/* One assistant message: text, thinking and tool_use blocks into one chat message. */
static bool add_assistant(cJSON *msgs, const cJSON *content, char *err, size_t err_len) {
  mlxr_buf text = {0}, thinking = {0};
  mlxr_buf_adds(&text, "");
  cJSON *calls = cJSON_CreateArray();
  const cJSON *blk;
  bool ok = true;
  cJSON_ArrayForEach(blk, content) {
    const char *type = mlxr_chat_str(blk, "type");
    if (type && strcmp(type, "text") == 0 && mlxr_chat_str(blk, "text")) {
      mlxr_buf_adds(&text, mlxr_chat_str(blk, "text"));
    } else if (type && strcmp(type, "thinking") == 0 && mlxr_chat_str(blk, "thinking")) {
      mlxr_buf_adds(&thinking, mlxr_chat_str(blk, "thinking"));
    } else if (type && strcmp(type, "redacted_thinking") == 0) {
      continue;
    } else if (type && strcmp(type, "tool_use") == 0 && mlxr_chat_str(blk, "id") && mlxr_chat_str(blk, "name")) {
      const cJSON *input = cJSON_GetObjectItemCaseSensitive(blk, "input");
      cJSON *tc = cJSON_CreateObject();
      cJSON_AddStringToObject(tc, "id", mlxr_chat_str(blk, "id"));
      cJSON_AddStringToObject(tc, "type", "function");
      cJSON *fn = cJSON_AddObjectToObject(tc, "function");
      cJSON_AddStringToObject(fn, "name", mlxr_chat_str(blk, "name"));
      cJSON_AddItemToObject(fn, "arguments", cJSON_IsObject(input) ? cJSON_Duplicate(input, true) : cJSON_CreateObject());
      cJSON_AddItemToArray(calls, tc);
    } else {
      mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "assistant content block type '%.40s' is not supported", type ? type : "?");
      ok = false;
      break;
    }
  }
  if (ok) {
    cJSON *m = chat_msg("assistant", text.p);
    if (thinking.len) cJSON_AddStringToObject(m, "reasoning_content", thinking.p);
    if (cJSON_GetArraySize(calls) > 0) cJSON_AddItemToObject(m, "tool_calls", calls), calls = NULL;
    cJSON_AddItemToArray(msgs, m);
  }
  cJSON_Delete(calls);
  mlxr_buf_free(&text);
  mlxr_buf_free(&thinking);
  return ok;
}

/* system + messages as chat messages; NULL with err set when something is malformed. */
static cJSON *to_chat(const cJSON *system, const cJSON *messages, char *err, size_t err_len) {
  if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
    mlxr_errf(err, err_len, MLXR_ERR_INVALID, "messages: must be a non-empty array");
    return NULL;
  }
  cJSON *msgs = cJSON_CreateArray();
  if (system && !cJSON_IsNull(system)) {
    char *s = mlxr_chat_parts_text(system, err, err_len);
    if (!s) goto fail;
    if (s[0]) cJSON_AddItemToArray(msgs, chat_msg("system", s));
    free(s);
  }
  const cJSON *m;
  int i = 0;
  cJSON_ArrayForEach(m, messages) {
    const char *role = mlxr_chat_str(m, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant")) || !(cJSON_IsString(content) || cJSON_IsArray(content))) {
      mlxr_errf(err, err_len, MLXR_ERR_INVALID, "messages.%d: needs role user or assistant and content (a string or blocks)", i);
      goto fail;
    }
    if (cJSON_IsString(content)) cJSON_AddItemToArray(msgs, chat_msg(role, content->valuestring));
    else if (!(strcmp(role, "user") == 0 ? add_user(msgs, content, err, err_len) : add_assistant(msgs, content, err, err_len)))
      goto fail;
    i++;
  }
  return msgs;
fail:
  cJSON_Delete(msgs);
  return NULL;
}

/* ---------------- the request ---------------- */

typedef struct msg_req {
  cJSON *msgs;          /* chat-shaped */
  cJSON *tools;         /* chat-shaped */
  const char *choice_mode, *choice_name;
  bool parallel, stream;
  cJSON *kwargs;        /* enable_thinking from `thinking` */
  mlxr_gen_params gp;
} msg_req;

static void msg_req_free(msg_req *q) {
  cJSON_Delete(q->msgs);
  cJSON_Delete(q->tools);
  cJSON_Delete(q->kwargs);
}

static bool fail(mlxr_field_err *fe, const char *param, const char *msg) {
  snprintf(fe->param, sizeof fe->param, "%s", param);
  snprintf(fe->msg, sizeof fe->msg, "%s: %s", param, msg);
  return false;
}

static bool map_tools(const cJSON *tools, cJSON **out, mlxr_field_err *fe) {
  *out = NULL;
  if (!tools || cJSON_IsNull(tools)) return true;
  if (!cJSON_IsArray(tools)) return fail(fe, "tools", "must be an array");
  *out = cJSON_CreateArray();
  const cJSON *t;
  cJSON_ArrayForEach(t, tools) {
    const char *type = mlxr_chat_str(t, "type"), *name = mlxr_chat_str(t, "name");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "input_schema");
    if ((type && strcmp(type, "custom") != 0) || !name || !cJSON_IsObject(schema))
      return fail(fe, "tools", "each tool needs a name and an input_schema (server tools are not supported)");
    cJSON *ct = cJSON_CreateObject();
    cJSON_AddStringToObject(ct, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(ct, "function");
    cJSON_AddStringToObject(fn, "name", name);
    if (mlxr_chat_str(t, "description")) cJSON_AddStringToObject(fn, "description", mlxr_chat_str(t, "description"));
    cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(schema, true));
    cJSON_AddItemToArray(*out, ct);
  }
  return true;
}

/* counting: count_tokens (max_tokens and the sampling fields do not apply). */
static bool parse_request(const cJSON *j, bool counting, msg_req *q, mlxr_field_err *fe) {
  memset(q, 0, sizeof(*q));
  q->gp = mlxr_gen_default_params();
  q->parallel = true;
  char err[256] = "";
  if (!(q->msgs = to_chat(cJSON_GetObjectItemCaseSensitive(j, "system"), cJSON_GetObjectItemCaseSensitive(j, "messages"), err, sizeof err)))
    return fail(fe, "messages", err);
  if (!map_tools(cJSON_GetObjectItemCaseSensitive(j, "tools"), &q->tools, fe)) return false;
  const cJSON *choice = cJSON_GetObjectItemCaseSensitive(j, "tool_choice");
  const char *ctype = mlxr_chat_str(choice, "type");
  q->choice_mode = "auto";
  if (choice && !cJSON_IsNull(choice)) {
    q->choice_name = mlxr_chat_str(choice, "name");
    q->choice_mode = !ctype                        ? "invalid"
                     : strcmp(ctype, "auto") == 0  ? "auto"
                     : strcmp(ctype, "any") == 0   ? "required"
                     : strcmp(ctype, "none") == 0  ? "none"
                     : strcmp(ctype, "tool") == 0  ? "named"
                                                   : "invalid";
    bool no_parallel = false;
    if (!mlxr_get_bool(choice, "disable_parallel_tool_use", &no_parallel, fe)) return false;
    q->parallel = !no_parallel;
  }
  const cJSON *thinking = cJSON_GetObjectItemCaseSensitive(j, "thinking");
  const char *ttype = mlxr_chat_str(thinking, "type");
  if (thinking && !cJSON_IsNull(thinking)) {
    if (!ttype) return fail(fe, "thinking", "must be {type: enabled | disabled}");
    q->kwargs = cJSON_CreateObject();
    cJSON_AddBoolToObject(q->kwargs, "enable_thinking", strcmp(ttype, "disabled") != 0);
  }
  if (counting) return true;
  int64_t max_tokens = 0;
  if (!cJSON_GetObjectItemCaseSensitive(j, "max_tokens")) return fail(fe, "max_tokens", "Field required");
  if (!mlxr_get_int(j, "max_tokens", 1, 1 << 24, &max_tokens, fe) || !mlxr_get_bool(j, "stream", &q->stream, fe) ||
      !mlxr_get_sampling(j, 1, &q->gp, fe))
    return false;
  q->gp.max_tokens = (int32_t)max_tokens;
  const cJSON *stops = cJSON_GetObjectItemCaseSensitive(j, "stop_sequences");
  if (stops && !cJSON_IsNull(stops) && !cJSON_IsArray(stops)) return fail(fe, "stop_sequences", "must be an array of strings");
  return mlxr_get_stop(j, "stop_sequences", MLXR_MAX_STOP, q->gp.stop, &q->gp.n_stop, fe);
}

/* ---------------- the message and its events ---------------- */

typedef struct msg_ctx {
  mlxr_block_run run;  /* first: the shared part (blocks, usage, how it ended, final) */
  char id[40];
  char *model;
} msg_ctx;

static void msg_ctx_free(void *p) {
  msg_ctx *c = p;
  if (!c) return;
  mlxr_block_run_free(&c->run);
  free(c->model);
  free(c);
}

/* An event object, its type first (as Anthropic writes them). */
static cJSON *event(const char *type) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", type);
  return o;
}

static void send_event(msg_ctx *c, cJSON *o) {
  const char *name = mlxr_chat_str(o, "type");
  char buf[40];
  snprintf(buf, sizeof buf, "%s", name ? name : "");
  mlxr_sse_event(c->run.out, buf, o);
}

/* A content block; open blocks are empty (their content comes as deltas). */
static cJSON *block_json(const mlxr_block *b, bool full) {
  cJSON *o = cJSON_CreateObject();
  const char *text = full && b->text ? b->text : "";
  if (b->kind == MLXR_BLOCK_TOOL_CALL) {
    cJSON_AddStringToObject(o, "type", "tool_use");
    cJSON_AddStringToObject(o, "id", b->id);
    cJSON_AddStringToObject(o, "name", b->name ? b->name : "");
    cJSON *input = full ? cJSON_Parse(text) : NULL;
    cJSON_AddItemToObject(o, "input", cJSON_IsObject(input) ? input : (cJSON_Delete(input), cJSON_CreateObject()));
  } else if (b->kind == MLXR_BLOCK_REASONING) {
    cJSON_AddStringToObject(o, "type", "thinking");
    cJSON_AddStringToObject(o, "thinking", text);
    cJSON_AddStringToObject(o, "signature", "");
  } else {
    cJSON_AddStringToObject(o, "type", "text");
    cJSON_AddStringToObject(o, "text", text);
  }
  return o;
}

static cJSON *index_event(const char *type, const mlxr_block *b) {
  cJSON *o = event(type);
  cJSON_AddNumberToObject(o, "index", b->index);
  return o;
}

static void on_open(void *user, mlxr_block *b) {
  msg_ctx *c = user;
  if (b->kind == MLXR_BLOCK_TOOL_CALL) {
    snprintf(b->id, sizeof b->id, "toolu_");
    mlxr_random_id(b->id + 6, 24);
  }
  if (!c->run.stream) return;
  cJSON *o = index_event("content_block_start", b);
  cJSON_AddItemToObject(o, "content_block", block_json(b, false));
  send_event(c, o);
}

static void on_delta(void *user, const mlxr_block *b, const char *text, size_t len) {
  msg_ctx *c = user;
  if (!c->run.stream) return;
  cJSON *o = index_event("content_block_delta", b);
  cJSON *d = cJSON_AddObjectToObject(o, "delta");
  const char *type = b->kind == MLXR_BLOCK_TOOL_CALL ? "input_json_delta" : b->kind == MLXR_BLOCK_REASONING ? "thinking_delta" : "text_delta";
  cJSON_AddStringToObject(d, "type", type);
  char *t = strndup(text, len);
  cJSON_AddStringToObject(d, b->kind == MLXR_BLOCK_TOOL_CALL ? "partial_json" : b->kind == MLXR_BLOCK_REASONING ? "thinking" : "text",
                          t ? t : "");
  free(t);
  send_event(c, o);
}

static void on_close(void *user, const mlxr_block *b) {
  msg_ctx *c = user;
  if (c->run.stream) send_event(c, index_event("content_block_stop", b));
}

static const char *stop_reason(const msg_ctx *c) {
  if (c->run.finish == MLXR_FINISH_LENGTH) return "max_tokens";
  if (c->run.stop_string) return "stop_sequence";
  for (int i = 0; i < c->run.blocks.n; i++)
    if (c->run.blocks.b[i].kind == MLXR_BLOCK_TOOL_CALL) return "tool_use";
  return "end_turn";
}

static cJSON *usage_json(int32_t input_tokens, int32_t cached, int32_t output_tokens) {
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "input_tokens", input_tokens - cached);
  cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0);
  cJSON_AddNumberToObject(u, "cache_read_input_tokens", cached);
  cJSON_AddNumberToObject(u, "output_tokens", output_tokens);
  return u;
}

static void add_stop(cJSON *o, const msg_ctx *c) {
  if (c->run.done) cJSON_AddStringToObject(o, "stop_reason", stop_reason(c));
  else cJSON_AddNullToObject(o, "stop_reason");
  if (c->run.stop_string) cJSON_AddStringToObject(o, "stop_sequence", c->run.stop_string);
  else cJSON_AddNullToObject(o, "stop_sequence");
}

/* The message: empty and without a stop reason at the start, whole at the end. */
static cJSON *message_json(const msg_ctx *c) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", c->id);
  cJSON_AddStringToObject(o, "type", "message");
  cJSON_AddStringToObject(o, "role", "assistant");
  cJSON_AddStringToObject(o, "model", c->model);
  cJSON *content = cJSON_AddArrayToObject(o, "content");
  for (int i = 0; i < c->run.blocks.n && c->run.done; i++) cJSON_AddItemToArray(content, block_json(&c->run.blocks.b[i], true));
  add_stop(o, c);
  cJSON_AddItemToObject(o, "usage", c->run.done ? usage_json(c->run.n_prompt, c->run.cached_tokens, c->run.output_tokens)
                                            : usage_json(c->run.n_prompt, 0, 0));
  return o;
}

static void msg_start(mlxr_block_run *run) {
  msg_ctx *c = (msg_ctx *)run;
  cJSON *o = event("message_start");
  cJSON_AddItemToObject(o, "message", message_json(c));
  send_event(c, o);
  send_event(c, event("ping"));
}

static void msg_end(mlxr_block_run *run) {
  msg_ctx *c = (msg_ctx *)run;
  if (c->run.error) {
    if (!c->run.stream) return;
    cJSON *o = event("error");
    cJSON *er = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(er, "type", "api_error");
    cJSON_AddStringToObject(er, "message", c->run.error);
    send_event(c, o);
    return;
  }
  c->run.final = message_json(c);
  if (!c->run.stream) return;
  cJSON *o = event("message_delta");
  add_stop(cJSON_AddObjectToObject(o, "delta"), c);
  cJSON_AddItemToObject(o, "usage", usage_json(c->run.n_prompt, c->run.cached_tokens, c->run.output_tokens));
  send_event(c, o);
  send_event(c, event("message_stop"));
}

static const mlxr_block_api msg_api = {{on_open, on_delta, on_close}, msg_start, msg_end};

/* ---------------- handlers ---------------- */

static enum MHD_Result field_error(mlxr_req *r, const mlxr_field_err *fe) {
  return mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", fe->msg[0] ? fe->msg : "invalid request");
}

/* POST /v1/messages (counting false) and POST /v1/messages/count_tokens. */
static enum MHD_Result handle_messages(mlxr_req *r, bool counting) {
  enum MHD_Result res = MHD_NO;
  mlxr_model_entry *m = mlxr_req_body_model(r, &res);
  if (!m) return res;
  const cJSON *j = r->json;
  mlxr_field_err fe = {{0}, {0}};
  msg_req q;
  if (!parse_request(j, counting, &q, &fe)) {
    msg_req_free(&q);
    return field_error(r, &fe);
  }
  q.gp.max_tokens = mlxr_cap_max_tokens(r->srv, q.gp.max_tokens);
  mlxr_chat_job job = {0};
  mlxr_tool_setup ts = {0};
  msg_ctx *c = NULL;
  if (!mlxr_tool_setup_init(r, &ts, q.tools, q.choice_mode, q.choice_name, q.parallel, m->tmpl_src, &res)) goto done;
  q.gp.grammar = ts.grammar;
  if (!mlxr_chat_job_load(r, &job, m, &res) || !mlxr_chat_job_prompt(r, &job, q.msgs, ts.tools, q.kwargs, &res)) goto done;
  if (counting) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "input_tokens", job.n_ids);
    res = mlxr_http_send_json(r, 200, o);
    goto done;
  }
  if (!mlxr_chat_job_submit(r, &job, &q.gp, &res)) goto done;
  c = calloc(1, sizeof(*c));
  if (!c || !(c->model = strdup(m->id))) {
    res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    goto done;
  }
  mlxr_block_run_init(&c->run, &msg_api, r, &job, &ts, q.stream);
  snprintf(c->id, sizeof c->id, "msg_");
  mlxr_random_id(c->id + 4, 24);
  res = mlxr_block_run_serve(r, &job, &c->run, msg_ctx_free);
  c = NULL;
done:
  msg_ctx_free(c);
  mlxr_chat_job_free(&job);
  mlxr_tool_setup_free(&ts);
  msg_req_free(&q);
  return res;
}

enum MHD_Result mlxr_route_anthropic(mlxr_req *r, const char *path, bool *handled) {
  const bool count = strcmp(path, "/v1/messages/count_tokens") == 0;
  if (!count && strcmp(path, "/v1/messages") != 0) return MHD_NO;
  *handled = true;
  r->route = count ? "/v1/messages/count_tokens" : "/v1/messages";
  if (strcmp(r->method, "POST") != 0) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
  return handle_messages(r, count);
}
