/*
 * routes_responses.c: the OpenAI Responses API: POST /v1/responses, GET and DELETE
 * /v1/responses/{id}, GET /v1/responses/{id}/input_items, POST /v1/responses/input_tokens.
 *
 * A create request becomes a chat generation (generate.c's chat jobs): `instructions` turns into a
 * system message, the conversation of `previous_response_id` (from resp_store.c) comes next, then
 * `input` (a string, or items: messages, function_call, function_call_output, reasoning,
 * item_reference) mapped onto chat messages; `tools` (type function) and `tool_choice` go through
 * the shared tool rules, `text.format` (json_schema, json_object) through the shared JSON grammar.
 *
 * The output is a block run (generate.c: one formatter for both forms; this file says how each
 * block, the start and the end look). Generated text goes through the chat output blocks
 * (chat.h): reasoning (<think>) becomes a reasoning item (its text as a summary_text
 * part, which the OpenAI, AI SDK and LangChain clients read, and as a reasoning_text content part),
 * text a message item with one output_text part, and each tool call a function_call item. Streamed,
 * each SSE event is "event: TYPE" plus its JSON with a sequence_number, in the documented order:
 *
 *   response.created, response.in_progress
 *   per item: response.output_item.added
 *     message:   response.content_part.added, response.output_text.delta*, response.output_text.done,
 *                response.content_part.done
 *     reasoning: response.reasoning_summary_part.added, response.reasoning_summary_text.delta*,
 *                response.reasoning_summary_text.done, response.reasoning_summary_part.done
 *     call:      response.function_call_arguments.delta, response.function_call_arguments.done
 *   response.output_item.done
 *   response.completed (or response.incomplete when max_output_tokens cut it, response.failed)
 *
 * Non-streamed, the same formatter runs with its events discarded and the final response object
 * is the answer. With store (the default) the response, its conversation and input items are kept
 * (resp_store.c). A json_schema output is also validated once finished, for what a grammar cannot
 * enforce; a violation is reported as the response's schema_violation.
 *
 * Threads: a handler runs on its connection's thread, the formatter on the same thread (libmicrohttpd
 * pulls the stream there); the store has its own lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common/status.h"
#include "daemon/server/chat.h"
#include "daemon/server/server_impl.h"

/* ---------------- input items -> chat messages ---------------- */

static cJSON *last_msg(cJSON *msgs, const char *role) {
  cJSON *m = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
  return cJSON_IsString(r) && strcmp(r->valuestring, role) == 0 ? m : NULL;
}

/* Append one input item to msgs (chat-shaped). An assistant turn is one message: reasoning, text
 * and calls of the same turn merge into it. */
static bool add_item(cJSON *msgs, const cJSON *item, mlxr_resp_store *st, int depth, char *err,
                     size_t err_len) {
  const char *type = mlxr_chat_str(item, "type");
  const char *role = mlxr_chat_str(item, "role");
  if (!cJSON_IsObject(item)) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "input items must be objects"), false;
  if (!type && role) type = "message";
  if (!type) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "an input item needs a 'type' (or a 'role')"), false;
  if (strcmp(type, "item_reference") == 0) {
    cJSON *ref = depth == 0 ? mlxr_resp_store_item(st, mlxr_chat_str(item, "id")) : NULL;
    if (!ref) return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "item '%.80s' not found", mlxr_chat_str(item, "id") ? mlxr_chat_str(item, "id") : ""), false;
    bool ok = add_item(msgs, ref, st, depth + 1, err, err_len);
    cJSON_Delete(ref);
    return ok;
  }
  if (strcmp(type, "message") == 0) {
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system") && strcmp(role, "developer")))
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "a message's role must be user, assistant, system or developer"), false;
    char *text = mlxr_chat_parts_text(cJSON_GetObjectItemCaseSensitive(item, "content"), err, err_len);
    if (!text) return false;
    cJSON *prev = strcmp(role, "assistant") == 0 ? last_msg(msgs, "assistant") : NULL;
    const char *pc = mlxr_chat_str(prev, "content");
    if (prev && pc && !pc[0] && !cJSON_GetObjectItemCaseSensitive(prev, "tool_calls")) { /* after its reasoning */
      cJSON_ReplaceItemInObjectCaseSensitive(prev, "content", cJSON_CreateString(text));
    } else {
      cJSON *m = cJSON_CreateObject();
      cJSON_AddStringToObject(m, "role", strcmp(role, "developer") == 0 ? "system" : role);
      cJSON_AddStringToObject(m, "content", text);
      cJSON_AddItemToArray(msgs, m);
    }
    free(text);
    return true;
  }
  if (strcmp(type, "function_call") == 0) {
    const char *name = mlxr_chat_str(item, "name"), *args = mlxr_chat_str(item, "arguments");
    const char *call_id = mlxr_chat_str(item, "call_id");
    if (!name || !call_id) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "a function_call item needs call_id and name"), false;
    cJSON *m = last_msg(msgs, "assistant");
    if (!m) {
      m = cJSON_CreateObject();
      cJSON_AddStringToObject(m, "role", "assistant");
      cJSON_AddStringToObject(m, "content", "");
      cJSON_AddItemToArray(msgs, m);
    }
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    if (!calls) calls = cJSON_AddArrayToObject(m, "tool_calls");
    cJSON *tc = cJSON_CreateObject();
    cJSON_AddStringToObject(tc, "id", call_id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(tc, "function");
    cJSON_AddStringToObject(fn, "name", name);
    cJSON_AddStringToObject(fn, "arguments", args ? args : "{}");
    cJSON_AddItemToArray(calls, tc);
    return true;
  }
  if (strcmp(type, "function_call_output") == 0) {
    const char *call_id = mlxr_chat_str(item, "call_id");
    const cJSON *output = cJSON_GetObjectItemCaseSensitive(item, "output");
    if (!call_id || !output) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "a function_call_output item needs call_id and output"), false;
    char *text = mlxr_chat_parts_text(output, err, err_len);
    if (!text) return false;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "tool");
    cJSON_AddStringToObject(m, "tool_call_id", call_id);
    const char *name = mlxr_chat_call_name(msgs, call_id);
    if (name) cJSON_AddStringToObject(m, "name", name);
    cJSON_AddStringToObject(m, "content", text);
    cJSON_AddItemToArray(msgs, m);
    free(text);
    return true;
  }
  if (strcmp(type, "reasoning") == 0) { /* opens the assistant turn it belongs to */
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(item, "content");
    if (cJSON_GetArraySize(content) == 0) content = cJSON_GetObjectItemCaseSensitive(item, "summary");
    char *text = mlxr_chat_parts_text(content, err, err_len);
    if (!text) return false;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", "");
    cJSON_AddStringToObject(m, "reasoning_content", text);
    cJSON_AddItemToArray(msgs, m);
    free(text);
    return true;
  }
  return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "input item type '%.60s' is not supported", type), false;
}

/* The input as items with ids (what GET .../input_items lists and item_reference can name). */
static cJSON *input_items(const cJSON *input) {
  cJSON *items = cJSON_CreateArray();
  if (cJSON_IsString(input)) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "role", "user");
    cJSON *parts = cJSON_AddArrayToObject(m, "content");
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "input_text");
    cJSON_AddStringToObject(p, "text", input->valuestring);
    cJSON_AddItemToArray(parts, p);
    cJSON_AddItemToArray(items, m);
  } else {
    const cJSON *it;
    cJSON_ArrayForEach(it, input) cJSON_AddItemToArray(items, cJSON_Duplicate(it, true));
  }
  cJSON *it;
  cJSON_ArrayForEach(it, items) {
    if (!cJSON_IsObject(it) || cJSON_GetObjectItemCaseSensitive(it, "id")) continue;
    char id[40] = "msg_";
    mlxr_random_id(id + 4, 24);
    cJSON_AddStringToObject(it, "id", id);
  }
  return items;
}

/* ---------------- the request ---------------- */

typedef struct resp_req {
  const cJSON *input;
  const char *instructions, *previous_id, *effort;
  cJSON *tools;           /* chat-shaped */
  const char *choice_mode, *choice_name;
  bool parallel, store, stream;
  const cJSON *format;    /* text.format */
  char *format_grammar;
  char *schema_text;      /* its JSON schema, checked on the finished output (gp.json_schema) */
  mlxr_gen_params gp;
} resp_req;

static void resp_req_free(resp_req *q) {
  cJSON_Delete(q->tools);
  free(q->format_grammar);
  free(q->schema_text);
}

/* Responses tools ({type: function, name, description, parameters}) as chat tools. */
static bool map_tools(const cJSON *tools, cJSON **out, mlxr_field_err *fe) {
  *out = NULL;
  if (!tools || cJSON_IsNull(tools)) return true;
  snprintf(fe->param, sizeof fe->param, "tools");
  if (!cJSON_IsArray(tools)) return snprintf(fe->msg, sizeof fe->msg, "'tools' must be an array"), false;
  *out = cJSON_CreateArray();
  const cJSON *t;
  cJSON_ArrayForEach(t, tools) {
    const char *type = mlxr_chat_str(t, "type"), *name = mlxr_chat_str(t, "name");
    if (!type || strcmp(type, "function") != 0 || !name) {
      snprintf(fe->msg, sizeof fe->msg, "tool type '%.40s' is not supported (function tools with a name only)", type ? type : "?");
      return false;
    }
    cJSON *ct = cJSON_CreateObject();
    cJSON_AddStringToObject(ct, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(ct, "function");
    cJSON_AddStringToObject(fn, "name", name);
    const char *desc = mlxr_chat_str(t, "description");
    if (desc) cJSON_AddStringToObject(fn, "description", desc);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(t, "parameters");
    if (cJSON_IsObject(params)) cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(params, true));
    cJSON_AddItemToArray(*out, ct);
  }
  fe->param[0] = '\0';
  return true;
}

static bool parse_request(const cJSON *j, resp_req *q, mlxr_field_err *fe) {
  memset(q, 0, sizeof(*q));
  q->gp = mlxr_gen_default_params();
  q->parallel = q->store = true;
  q->input = cJSON_GetObjectItemCaseSensitive(j, "input");
  if (!cJSON_IsString(q->input) && !cJSON_IsArray(q->input)) {
    snprintf(fe->param, sizeof fe->param, "input");
    snprintf(fe->msg, sizeof fe->msg, "'input' must be a string or an array of input items");
    return false;
  }
  int64_t max_out = 0;
  if (!mlxr_get_str(j, "instructions", &q->instructions, fe) ||
      !mlxr_get_str(j, "previous_response_id", &q->previous_id, fe) ||
      !mlxr_get_bool(j, "parallel_tool_calls", &q->parallel, fe) || !mlxr_get_bool(j, "store", &q->store, fe) ||
      !mlxr_get_bool(j, "stream", &q->stream, fe) ||
      !mlxr_get_int(j, "max_output_tokens", 1, 1 << 24, &max_out, fe) || !mlxr_get_sampling(j, 2, &q->gp, fe))
    return false;
  q->gp.max_tokens = (int32_t)max_out;
  bool background = false;
  if (!mlxr_get_bool(j, "background", &background, fe)) return false;
  if (background) {
    snprintf(fe->param, sizeof fe->param, "background");
    snprintf(fe->msg, sizeof fe->msg, "background responses are not supported");
    return false;
  }
  const cJSON *conv = cJSON_GetObjectItemCaseSensitive(j, "conversation");
  if (conv && !cJSON_IsNull(conv)) {
    snprintf(fe->param, sizeof fe->param, "conversation");
    snprintf(fe->msg, sizeof fe->msg, "conversations are not supported: use previous_response_id");
    return false;
  }
  const cJSON *reasoning = cJSON_GetObjectItemCaseSensitive(j, "reasoning");
  if (reasoning && !cJSON_IsNull(reasoning) && !mlxr_get_str(reasoning, "effort", &q->effort, fe)) return false;
  if (!map_tools(cJSON_GetObjectItemCaseSensitive(j, "tools"), &q->tools, fe)) return false;
  const cJSON *choice = cJSON_GetObjectItemCaseSensitive(j, "tool_choice");
  q->choice_mode = "auto";
  if (cJSON_IsString(choice)) {
    q->choice_mode = choice->valuestring;
  } else if (cJSON_IsObject(choice)) {
    const char *type = mlxr_chat_str(choice, "type");
    q->choice_name = mlxr_chat_str(choice, "name");
    q->choice_mode = type && strcmp(type, "function") == 0 && q->choice_name ? "named" : "invalid";
  } else if (choice && !cJSON_IsNull(choice)) {
    q->choice_mode = "invalid";
  }
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
  const cJSON *format = cJSON_GetObjectItemCaseSensitive(text, "format");
  if (format && !cJSON_IsNull(format)) {
    const char *type = mlxr_chat_str(format, "type");
    snprintf(fe->param, sizeof fe->param, "text.format");
    char err[200] = "";
    if (!type || (strcmp(type, "text") && strcmp(type, "json_object") && strcmp(type, "json_schema"))) {
      snprintf(fe->msg, sizeof fe->msg, "'text.format.type' must be text, json_object or json_schema");
      return false;
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(format, "schema");
    if (strcmp(type, "json_schema") == 0 && !cJSON_IsObject(schema)) {
      snprintf(fe->msg, sizeof fe->msg, "'text.format.schema' must be a JSON schema object");
      return false;
    }
    if (strcmp(type, "text") != 0 &&
        mlxr_chat_json_grammar(strcmp(type, "json_schema") == 0 ? schema : NULL, &q->format_grammar, err, sizeof err) != MLXR_OK) {
      snprintf(fe->msg, sizeof fe->msg, "'text.format.schema' cannot be used: %.190s", err);
      return false;
    }
    if (strcmp(type, "json_schema") == 0 && !(q->schema_text = mlxr_json_print(schema))) {
      snprintf(fe->msg, sizeof fe->msg, "out of memory");
      return false;
    }
    q->format = format;
    q->gp.grammar = q->format_grammar;
    q->gp.json_schema = q->schema_text;
    fe->param[0] = '\0';
  }
  return true;
}

/* ---------------- the response object and its events ---------------- */

typedef struct resp_ctx {
  mlxr_block_run run;     /* first: the shared part (blocks, usage, how it ended, final) */
  bool store;
  cJSON *base;            /* the response object without status, output and usage */
  cJSON *conversation;    /* the chat messages before the output (instructions excluded) */
  cJSON *inputs;          /* input items with ids */
  int seq;                /* next sequence_number */
} resp_ctx;

static void resp_ctx_free(void *p) {
  resp_ctx *c = p;
  if (!c) return;
  mlxr_block_run_free(&c->run);
  cJSON_Delete(c->base);
  cJSON_Delete(c->conversation);
  cJSON_Delete(c->inputs);
  free(c);
}

static const char *item_status(const resp_ctx *c, const mlxr_block *b) {
  if (!b->closed) return "in_progress";
  const bool cut = c->run.done && c->run.finish == MLXR_FINISH_LENGTH && b->index == c->run.blocks.n - 1;
  return cut && b->kind != MLXR_BLOCK_TOOL_CALL ? "incomplete" : "completed"; /* calls are whole */
}

static cJSON *text_part(const char *type, const char *text) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "type", type);
  cJSON_AddStringToObject(p, "text", text);
  if (strcmp(type, "output_text") == 0) {
    cJSON_AddArrayToObject(p, "annotations");
    cJSON_AddArrayToObject(p, "logprobs");
  }
  return p;
}

/* The output item of a block; an open block is shown as just added (no text yet). */
static cJSON *item_json(const resp_ctx *c, const mlxr_block *b) {
  cJSON *it = cJSON_CreateObject();
  const char *text = b->closed && b->text ? b->text : "";
  cJSON_AddStringToObject(it, "id", b->id);
  if (b->kind == MLXR_BLOCK_TOOL_CALL) {
    cJSON_AddStringToObject(it, "type", "function_call");
    cJSON_AddStringToObject(it, "status", item_status(c, b));
    cJSON_AddStringToObject(it, "call_id", b->call_id);
    cJSON_AddStringToObject(it, "name", b->name ? b->name : "");
    cJSON_AddStringToObject(it, "arguments", text);
  } else if (b->kind == MLXR_BLOCK_REASONING) {
    cJSON_AddStringToObject(it, "type", "reasoning");
    cJSON_AddStringToObject(it, "status", item_status(c, b));
    cJSON *summary = cJSON_AddArrayToObject(it, "summary");
    if (b->closed) {
      cJSON_AddItemToArray(summary, text_part("summary_text", text));
      cJSON_AddItemToArray(cJSON_AddArrayToObject(it, "content"), text_part("reasoning_text", text));
    }
  } else {
    cJSON_AddStringToObject(it, "type", "message");
    cJSON_AddStringToObject(it, "status", item_status(c, b));
    cJSON_AddStringToObject(it, "role", "assistant");
    cJSON *content = cJSON_AddArrayToObject(it, "content");
    if (b->closed) cJSON_AddItemToArray(content, text_part("output_text", text));
  }
  return it;
}

static cJSON *usage_json(const resp_ctx *c) {
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "input_tokens", c->run.n_prompt);
  cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "input_tokens_details"), "cached_tokens", c->run.cached_tokens);
  cJSON_AddNumberToObject(u, "output_tokens", c->run.output_tokens);
  cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "output_tokens_details"), "reasoning_tokens", c->run.reasoning_tokens);
  cJSON_AddNumberToObject(u, "total_tokens", c->run.n_prompt + c->run.output_tokens);
  return u;
}

static void set_field(cJSON *o, const char *k, cJSON *v) {
  if (cJSON_GetObjectItemCaseSensitive(o, k)) cJSON_ReplaceItemInObjectCaseSensitive(o, k, v);
  else cJSON_AddItemToObject(o, k, v);
}

/* The response as it stands: status, the items so far, and usage once finished. */
static cJSON *snapshot(const resp_ctx *c, const char *status) {
  cJSON *o = cJSON_Duplicate(c->base, true);
  set_field(o, "status", cJSON_CreateString(status));
  cJSON *out = cJSON_CreateArray();
  for (int i = 0; i < c->run.blocks.n && c->run.done; i++) cJSON_AddItemToArray(out, item_json(c, &c->run.blocks.b[i]));
  set_field(o, "output", out);
  if (c->run.done || c->run.error) {
    set_field(o, "usage", usage_json(c));
    if (strcmp(status, "incomplete") == 0) {
      cJSON *d = cJSON_CreateObject();
      cJSON_AddStringToObject(d, "reason", "max_output_tokens");
      set_field(o, "incomplete_details", d);
    }
    if (c->run.schema_error) /* what the grammar could not enforce (uniqueItems ...), said, not hidden */
      set_field(o, "schema_violation", cJSON_CreateString(c->run.schema_error));
    if (c->run.error) {
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "code", "server_error");
      cJSON_AddStringToObject(e, "message", c->run.error);
      set_field(o, "error", e);
    } else {
      set_field(o, "completed_at", cJSON_CreateNumber((double)time(NULL)));
    }
  }
  return o;
}

static cJSON *event(resp_ctx *c, const char *type) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "type", type);
  cJSON_AddNumberToObject(o, "sequence_number", c->seq++);
  return o;
}

static void send_event(resp_ctx *c, cJSON *o) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
  char name[64];
  snprintf(name, sizeof name, "%s", type->valuestring);
  mlxr_sse_event(c->run.out, name, o);
}

/* An event about block b: {type, sequence_number, item_id?, output_index, [content_index|summary_index]}. */
static cJSON *block_event(resp_ctx *c, const char *type, const mlxr_block *b, const char *index_key) {
  cJSON *o = event(c, type);
  if (index_key || b->kind == MLXR_BLOCK_TOOL_CALL) cJSON_AddStringToObject(o, "item_id", b->id);
  cJSON_AddNumberToObject(o, "output_index", b->index);
  if (index_key) cJSON_AddNumberToObject(o, index_key, 0);
  return o;
}

static void item_event(resp_ctx *c, const char *type, const mlxr_block *b) {
  cJSON *o = block_event(c, type, b, NULL);
  cJSON_DeleteItemFromObjectCaseSensitive(o, "item_id");
  cJSON_AddItemToObject(o, "item", item_json(c, b));
  send_event(c, o);
}

static void on_open(void *user, mlxr_block *b) {
  resp_ctx *c = user;
  const char *prefix = b->kind == MLXR_BLOCK_TOOL_CALL ? "fc_" : b->kind == MLXR_BLOCK_REASONING ? "rs_" : "msg_";
  snprintf(b->id, sizeof b->id, "%s", prefix);
  mlxr_random_id(b->id + strlen(prefix), 24);
  if (b->kind == MLXR_BLOCK_TOOL_CALL) {
    snprintf(b->call_id, sizeof b->call_id, "call_");
    mlxr_random_id(b->call_id + 5, 24);
  }
  if (!c->run.stream) return;
  item_event(c, "response.output_item.added", b);
  if (b->kind == MLXR_BLOCK_TOOL_CALL) return;
  const bool reasoning = b->kind == MLXR_BLOCK_REASONING;
  cJSON *o = block_event(c, reasoning ? "response.reasoning_summary_part.added" : "response.content_part.added", b,
                         reasoning ? "summary_index" : "content_index");
  cJSON_AddItemToObject(o, "part", text_part(reasoning ? "summary_text" : "output_text", ""));
  send_event(c, o);
}

static void on_delta(void *user, const mlxr_block *b, const char *text, size_t len) {
  resp_ctx *c = user;
  if (!c->run.stream) return;
  const char *type = b->kind == MLXR_BLOCK_TOOL_CALL ? "response.function_call_arguments.delta"
                     : b->kind == MLXR_BLOCK_REASONING ? "response.reasoning_summary_text.delta"
                                                       : "response.output_text.delta";
  cJSON *o = block_event(c, type, b, b->kind == MLXR_BLOCK_TOOL_CALL ? NULL
                                     : b->kind == MLXR_BLOCK_REASONING ? "summary_index" : "content_index");
  char *t = strndup(text, len);
  cJSON_AddStringToObject(o, "delta", t ? t : "");
  free(t);
  if (b->kind == MLXR_BLOCK_TEXT) cJSON_AddArrayToObject(o, "logprobs");
  send_event(c, o);
}

static void on_close(void *user, const mlxr_block *b) {
  resp_ctx *c = user;
  if (!c->run.stream) return;
  const char *text = b->text ? b->text : "";
  cJSON *o;
  if (b->kind == MLXR_BLOCK_TOOL_CALL) {
    o = block_event(c, "response.function_call_arguments.done", b, NULL);
    cJSON_AddStringToObject(o, "name", b->name ? b->name : "");
    cJSON_AddStringToObject(o, "arguments", text);
    send_event(c, o);
  } else {
    const bool reasoning = b->kind == MLXR_BLOCK_REASONING;
    const char *key = reasoning ? "summary_index" : "content_index";
    o = block_event(c, reasoning ? "response.reasoning_summary_text.done" : "response.output_text.done", b, key);
    cJSON_AddStringToObject(o, "text", text);
    if (!reasoning) cJSON_AddArrayToObject(o, "logprobs");
    send_event(c, o);
    o = block_event(c, reasoning ? "response.reasoning_summary_part.done" : "response.content_part.done", b, key);
    cJSON_AddItemToObject(o, "part", text_part(reasoning ? "summary_text" : "output_text", text));
    send_event(c, o);
  }
  item_event(c, "response.output_item.done", b);
}

/* The start: response.created and response.in_progress. */
static void resp_start(mlxr_block_run *run) {
  resp_ctx *c = (resp_ctx *)run;
  const char *kinds[] = {"response.created", "response.in_progress"};
  for (int i = 0; i < 2; i++) {
    cJSON *o = event(c, kinds[i]);
    cJSON_AddItemToObject(o, "response", snapshot(c, "in_progress"));
    send_event(c, o);
  }
}

/* The end: the final object, its event, and the store. */
static void resp_end(mlxr_block_run *run) {
  resp_ctx *c = (resp_ctx *)run;
  const char *status = c->run.error ? "failed" : c->run.finish == MLXR_FINISH_LENGTH ? "incomplete" : "completed";
  c->run.final = snapshot(c, status);
  if (c->run.stream) {
    cJSON *o = event(c, c->run.error ? "response.failed" : c->run.finish == MLXR_FINISH_LENGTH ? "response.incomplete" : "response.completed");
    cJSON_AddItemToObject(o, "response", cJSON_Duplicate(c->run.final, true));
    send_event(c, o);
  }
  if (!c->store || c->run.error) return;
  /* the conversation a continuation starts from: what came before, the input, and this output */
  char err[256] = "";
  cJSON *out = cJSON_GetObjectItemCaseSensitive(c->run.final, "output");
  const cJSON *it;
  cJSON_ArrayForEach(it, out) add_item(c->conversation, it, NULL, 1, err, sizeof err);
  if (!mlxr_resp_store_put(c->run.srv->responses, c->run.final, c->conversation, c->inputs) && c->run.srv->responses)
    fprintf(stderr, "mlxrd: response %s is too large to store\n", mlxr_chat_str(c->run.final, "id"));
}

static const mlxr_block_api resp_api = {{on_open, on_delta, on_close}, resp_start, resp_end};

/* The response object fields that echo the request. */
static cJSON *response_base(const cJSON *j, const resp_req *q, const char *model, const char *id) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", id);
  cJSON_AddStringToObject(o, "object", "response");
  cJSON_AddNumberToObject(o, "created_at", (double)time(NULL));
  cJSON_AddStringToObject(o, "status", "in_progress");
  cJSON_AddBoolToObject(o, "background", false);
  cJSON_AddNullToObject(o, "error");
  cJSON_AddNullToObject(o, "incomplete_details");
  if (q->instructions) cJSON_AddStringToObject(o, "instructions", q->instructions);
  else cJSON_AddNullToObject(o, "instructions");
  if (q->gp.max_tokens > 0) cJSON_AddNumberToObject(o, "max_output_tokens", q->gp.max_tokens);
  else cJSON_AddNullToObject(o, "max_output_tokens");
  cJSON_AddStringToObject(o, "model", model);
  cJSON_AddArrayToObject(o, "output");
  cJSON_AddBoolToObject(o, "parallel_tool_calls", q->parallel);
  if (q->previous_id) cJSON_AddStringToObject(o, "previous_response_id", q->previous_id);
  else cJSON_AddNullToObject(o, "previous_response_id");
  cJSON *reasoning = cJSON_AddObjectToObject(o, "reasoning");
  if (q->effort) cJSON_AddStringToObject(reasoning, "effort", q->effort);
  else cJSON_AddNullToObject(reasoning, "effort");
  cJSON_AddNullToObject(reasoning, "summary");
  cJSON_AddStringToObject(o, "service_tier", "default");
  cJSON_AddBoolToObject(o, "store", q->store);
  cJSON_AddNumberToObject(o, "temperature", q->gp.sampling.temperature);
  cJSON *text = cJSON_AddObjectToObject(o, "text");
  if (q->format) cJSON_AddItemToObject(text, "format", cJSON_Duplicate(q->format, true));
  else cJSON_AddStringToObject(cJSON_AddObjectToObject(text, "format"), "type", "text");
  const cJSON *choice = cJSON_GetObjectItemCaseSensitive(j, "tool_choice");
  if (choice && !cJSON_IsNull(choice)) cJSON_AddItemToObject(o, "tool_choice", cJSON_Duplicate(choice, true));
  else cJSON_AddStringToObject(o, "tool_choice", "auto");
  const cJSON *tools = cJSON_GetObjectItemCaseSensitive(j, "tools");
  cJSON_AddItemToObject(o, "tools", cJSON_IsArray(tools) ? cJSON_Duplicate(tools, true) : cJSON_CreateArray());
  cJSON_AddNumberToObject(o, "top_p", q->gp.sampling.top_p);
  cJSON_AddStringToObject(o, "truncation", "disabled");
  cJSON_AddNullToObject(o, "usage");
  const char *user = mlxr_chat_str(j, "user");
  if (user) cJSON_AddStringToObject(o, "user", user);
  else cJSON_AddNullToObject(o, "user");
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(j, "metadata");
  cJSON_AddItemToObject(o, "metadata", cJSON_IsObject(meta) ? cJSON_Duplicate(meta, true) : cJSON_CreateObject());
  return o;
}

/* ---------------- handlers ---------------- */

static enum MHD_Result field_error(mlxr_req *r, const mlxr_field_err *fe) {
  return mlxr_http_error(r, 400, NULL, NULL, fe->param[0] ? fe->param : NULL, "%s", fe->msg[0] ? fe->msg : "invalid request");
}

static enum MHD_Result not_found(mlxr_req *r, const char *id) {
  return mlxr_http_error(r, 404, "invalid_request_error", NULL, NULL, "Response with id '%.100s' not found.", id);
}

/* The chat messages of a request: instructions, the stored conversation, the input. *conv gets
 * the conversation without the instructions (what is stored). On failure the error was sent. */
static cJSON *build_messages(mlxr_req *r, const resp_req *q, cJSON **conv, enum MHD_Result *res) {
  char err[256] = "";
  *conv = NULL;
  if (q->previous_id) {
    if (!mlxr_resp_store_get(r->srv->responses, q->previous_id, NULL, conv, NULL) || !*conv) {
      *res = mlxr_http_error(r, 404, "invalid_request_error", NULL, "previous_response_id",
                             "Previous response with id '%.100s' not found.", q->previous_id);
      return NULL;
    }
  } else {
    *conv = cJSON_CreateArray();
  }
  cJSON *items = input_items(q->input);
  const cJSON *it;
  bool ok = true;
  cJSON_ArrayForEach(it, items) {
    if (!(ok = add_item(*conv, it, r->srv->responses, 0, err, sizeof err))) break;
  }
  cJSON_Delete(items);
  if (!ok) {
    cJSON_Delete(*conv);
    *conv = NULL;
    *res = mlxr_http_error(r, 400, NULL, NULL, "input", "%s", err);
    return NULL;
  }
  cJSON *msgs = cJSON_CreateArray();
  if (q->instructions) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "role", "system");
    cJSON_AddStringToObject(s, "content", q->instructions);
    cJSON_AddItemToArray(msgs, s);
  }
  cJSON_ArrayForEach(it, *conv) cJSON_AddItemToArray(msgs, cJSON_Duplicate(it, true));
  return msgs;
}

/* Template variables from reasoning.effort ("none" turns thinking off). */
static cJSON *effort_kwargs(const char *effort) {
  if (!effort) return NULL;
  cJSON *k = cJSON_CreateObject();
  cJSON_AddStringToObject(k, "reasoning_effort", effort);
  if (strcmp(effort, "none") == 0) cJSON_AddBoolToObject(k, "enable_thinking", false);
  return k;
}

/* POST /v1/responses (count false) and POST /v1/responses/input_tokens (count true). */
static enum MHD_Result handle_create(mlxr_req *r, bool count) {
  enum MHD_Result res = MHD_NO;
  mlxr_model_entry *m = mlxr_req_body_model(r, &res);
  if (!m) return res;
  const cJSON *j = r->json;
  mlxr_field_err fe = {{0}, {0}};
  resp_req q;
  if (!parse_request(j, &q, &fe)) {
    resp_req_free(&q);
    return field_error(r, &fe);
  }
  q.gp.max_tokens = mlxr_cap_max_tokens(r->srv, q.gp.max_tokens);
  mlxr_chat_job job = {0};
  mlxr_tool_setup ts = {0};
  resp_ctx *c = NULL;
  cJSON *conv = NULL, *msgs = NULL, *kwargs = effort_kwargs(q.effort);
  if (!(msgs = build_messages(r, &q, &conv, &res))) goto done;
  if (!mlxr_tool_setup_init(r, &ts, q.tools, q.choice_mode, q.choice_name, q.parallel, m->tmpl_src, &res)) goto done;
  if (ts.forced) {
    if (q.gp.grammar) {
      res = mlxr_http_error(r, 400, NULL, NULL, "tool_choice", "a forced tool_choice cannot be combined with a JSON text.format");
      goto done;
    }
    q.gp.grammar = ts.grammar;
  }
  if (!mlxr_chat_job_load(r, &job, m, &res) || !mlxr_chat_job_prompt(r, &job, msgs, ts.tools, kwargs, &res)) goto done;
  if (count) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "response.input_tokens");
    cJSON_AddNumberToObject(o, "input_tokens", job.n_ids);
    res = mlxr_http_send_json(r, 200, o);
    goto done;
  }
  if (!mlxr_chat_job_submit(r, &job, &q.gp, &res)) goto done;
  char id[40] = "resp_";
  mlxr_random_id(id + 5, 32);
  c = calloc(1, sizeof(*c));
  if (!c) {
    res = mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    goto done;
  }
  mlxr_block_run_init(&c->run, &resp_api, r, &job, &ts, q.stream);
  c->store = q.store && r->srv->responses;
  c->base = response_base(j, &q, m->id, id);
  c->conversation = conv;
  conv = NULL;
  c->inputs = input_items(q.input);
  res = mlxr_block_run_serve(r, &job, &c->run, resp_ctx_free);
  c = NULL;
done:
  resp_ctx_free(c);
  mlxr_chat_job_free(&job);
  mlxr_tool_setup_free(&ts);
  cJSON_Delete(kwargs);
  cJSON_Delete(msgs);
  cJSON_Delete(conv);
  resp_req_free(&q);
  return res;
}

/* GET|DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items, POST .../cancel. */
static enum MHD_Result handle_stored(mlxr_req *r, const char *rest) {
  char id[128];
  const char *slash = strchr(rest, '/');
  size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
  if (n == 0 || n >= sizeof id) return not_found(r, rest);
  memcpy(id, rest, n);
  id[n] = '\0';
  const char *sub = slash ? slash + 1 : "";
  const bool get = strcmp(r->method, "GET") == 0 || r->is_head;
  if (strcmp(sub, "cancel") == 0) {
    r->route = "/v1/responses/{id}/cancel";
    if (!mlxr_resp_store_get(r->srv->responses, id, NULL, NULL, NULL)) return not_found(r, id);
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "only background responses can be cancelled");
  }
  if (strcmp(sub, "input_items") == 0) {
    r->route = "/v1/responses/{id}/input_items";
    if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET");
    cJSON *items = NULL;
    if (!mlxr_resp_store_get(r->srv->responses, id, NULL, NULL, &items) || !items) {
      cJSON_Delete(items);
      return not_found(r, id);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    const cJSON *first = cJSON_GetArrayItem(items, 0), *last = cJSON_GetArrayItem(items, cJSON_GetArraySize(items) - 1);
    if (first) cJSON_AddStringToObject(o, "first_id", mlxr_chat_str(first, "id") ? mlxr_chat_str(first, "id") : "");
    else cJSON_AddNullToObject(o, "first_id");
    if (last) cJSON_AddStringToObject(o, "last_id", mlxr_chat_str(last, "id") ? mlxr_chat_str(last, "id") : "");
    else cJSON_AddNullToObject(o, "last_id");
    cJSON_AddBoolToObject(o, "has_more", false);
    cJSON_AddItemToObject(o, "data", items);
    return mlxr_http_send_json(r, 200, o);
  }
  if (sub[0]) return not_found(r, rest);
  r->route = "/v1/responses/{id}";
  if (strcmp(r->method, "DELETE") == 0) {
    if (!mlxr_resp_store_delete(r->srv->responses, id)) return not_found(r, id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddBoolToObject(o, "deleted", true);
    return mlxr_http_send_json(r, 200, o);
  }
  if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET or DELETE");
  cJSON *resp = NULL;
  if (!mlxr_resp_store_get(r->srv->responses, id, &resp, NULL, NULL) || !resp) {
    cJSON_Delete(resp);
    return not_found(r, id);
  }
  return mlxr_http_send_json(r, 200, resp);
}

enum MHD_Result mlxr_route_responses(mlxr_req *r, const char *path, bool *handled) {
  if (strncmp(path, "/v1/responses", 13) != 0 || (path[13] && path[13] != '/')) return MHD_NO;
  *handled = true;
  const bool post = strcmp(r->method, "POST") == 0;
  if (path[13] == '\0') {
    r->route = "/v1/responses";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return handle_create(r, false);
  }
  if (strcmp(path + 14, "input_tokens") == 0) {
    r->route = "/v1/responses/input_tokens";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return handle_create(r, true);
  }
  return handle_stored(r, path + 14);
}
