/*
 * chat.c: messages -> template variables -> prompt, and the streaming output parser that splits
 * generated text into content, reasoning and tool calls. See chat.h.
 *
 * The parser is a small state machine over an "undecided" buffer:
 *   CONTENT  text goes out as content, except a tail that could still become "<think>" or
 *            "<tool_call>" (and, with tools, trailing whitespace, which is dropped if a tool call
 *            follows); with tools, a reply that starts with '{' or <|python_tag|> switches to JSON.
 *   THINK    text goes out as reasoning until "</think>".
 *   TOOL     text is collected until "</tool_call>", then parsed as {"name", "arguments"}; what
 *            does not parse is given back as content, tags included, so nothing is lost.
 *   JSON     the whole reply is collected and, at the end, parsed as Llama 3.1 tool calls
 *            ({"name", "parameters"} objects separated by ';'), or given back as content.
 */
#include "daemon/server/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"

const char mlxr_chat_fallback_template[] =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "(message['content'] if message['content'] is string else '') + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

enum { MODE_CONTENT, MODE_THINK, MODE_TOOL, MODE_JSON };

static const char TAG_THINK[] = "<think>";
static const char TAG_THINK_END[] = "</think>";
static const char TAG_TOOL[] = "<tool_call>";
static const char TAG_TOOL_END[] = "</tool_call>";
static const char TAG_PYTHON[] = "<|python_tag|>";

/* ---------------- prompting ---------------- */

static bool join_parts(cJSON *msg, char *err, size_t err_len) {
  cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  if (!content || cJSON_IsString(content) || cJSON_IsNull(content)) return true;
  if (!cJSON_IsArray(content)) {
    mlxr_errf(err, err_len, MLXR_ERR_INVALID, "message content must be a string or an array of parts");
    return false;
  }
  size_t total = 0;
  const cJSON *part;
  cJSON_ArrayForEach(part, content) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
    if (!cJSON_IsObject(part) || !cJSON_IsString(type)) {
      mlxr_errf(err, err_len, MLXR_ERR_INVALID, "content parts must be objects with a type");
      return false;
    }
    if (strcmp(type->valuestring, "text") != 0) {
      mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "content part type '%.40s' is not supported by this model (text only)",
                type->valuestring);
      return false;
    }
    if (!cJSON_IsString(text)) {
      mlxr_errf(err, err_len, MLXR_ERR_INVALID, "a text part needs a string 'text'");
      return false;
    }
    total += strlen(text->valuestring) + 1;
  }
  char *joined = malloc(total + 1);
  if (!joined) return false;
  size_t off = 0;
  bool first = true;
  cJSON_ArrayForEach(part, content) {
    const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
    if (!first) joined[off++] = '\n';
    size_t n = strlen(t);
    memcpy(joined + off, t, n);
    off += n;
    first = false;
  }
  joined[off] = '\0';
  cJSON *s = cJSON_CreateString(joined);
  free(joined);
  if (!s) return false;
  cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", s);
  return true;
}

static bool fix_tool_calls(cJSON *msg, char *err, size_t err_len) {
  cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
  if (!calls || cJSON_IsNull(calls)) return true;
  if (!cJSON_IsArray(calls)) {
    mlxr_errf(err, err_len, MLXR_ERR_INVALID, "tool_calls must be an array");
    return false;
  }
  cJSON *call;
  cJSON_ArrayForEach(call, calls) {
    cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
    if (!cJSON_IsObject(call) || !cJSON_IsObject(fn) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fn, "name"))) {
      mlxr_errf(err, err_len, MLXR_ERR_INVALID, "each tool call needs function.name");
      return false;
    }
    if (!cJSON_GetObjectItemCaseSensitive(call, "type")) cJSON_AddStringToObject(call, "type", "function");
    cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
    if (cJSON_IsString(args)) {
      cJSON *parsed = cJSON_Parse(args->valuestring);
      if (parsed) cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", parsed);
    } else if (!args) {
      cJSON_AddItemToObject(fn, "arguments", cJSON_CreateObject());
    }
  }
  return true;
}

cJSON *mlxr_chat_build_vars(const cJSON *messages, const cJSON *tools, const cJSON *kwargs,
                            bool ollama, bool add_generation_prompt, const char *bos,
                            const char *eos, char *err, size_t err_len) {
  if (!cJSON_IsArray(messages)) {
    mlxr_errf(err, err_len, MLXR_ERR_INVALID, "messages must be an array");
    return NULL;
  }
  cJSON *vars = cJSON_CreateObject();
  if (!vars) return NULL;
  if (cJSON_IsObject(kwargs)) {
    const cJSON *kv;
    cJSON_ArrayForEach(kv, kwargs) {
      if (!kv->string || strcmp(kv->string, "messages") == 0) continue;
      cJSON_AddItemToObject(vars, kv->string, cJSON_Duplicate(kv, true));
    }
  }
  cJSON *msgs = cJSON_Duplicate(messages, true);
  if (!msgs) goto fail;
  cJSON_AddItemToObject(vars, "messages", msgs);
  int i = 0;
  cJSON *m;
  cJSON_ArrayForEach(m, msgs) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
      mlxr_errf(err, err_len, MLXR_ERR_INVALID, "messages[%d] needs a string 'role'", i);
      goto fail;
    }
    const char *r = role->valuestring;
    if (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "tool") &&
        strcmp(r, "developer") && strcmp(r, "function")) {
      mlxr_errf(err, err_len, MLXR_ERR_INVALID, "messages[%d].role '%.40s' is not one of system, developer, user, assistant, tool", i, r);
      goto fail;
    }
    if (strcmp(r, "developer") == 0) cJSON_ReplaceItemInObjectCaseSensitive(m, "role", cJSON_CreateString("system"));
    if (!join_parts(m, err, err_len)) goto fail;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (content && !cJSON_IsString(content) && !cJSON_IsNull(content)) goto fail;
    if (!fix_tool_calls(m, err, err_len)) goto fail;
    if (ollama) {
      const cJSON *images = cJSON_GetObjectItemCaseSensitive(m, "images");
      if (cJSON_IsArray(images) && cJSON_GetArraySize(images) > 0) {
        mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "this model does not support images");
        goto fail;
      }
      const cJSON *thinking = cJSON_GetObjectItemCaseSensitive(m, "thinking");
      if (cJSON_IsString(thinking) && !cJSON_GetObjectItemCaseSensitive(m, "reasoning_content"))
        cJSON_AddStringToObject(m, "reasoning_content", thinking->valuestring);
      const cJSON *tname = cJSON_GetObjectItemCaseSensitive(m, "tool_name");
      if (cJSON_IsString(tname) && !cJSON_GetObjectItemCaseSensitive(m, "name"))
        cJSON_AddStringToObject(m, "name", tname->valuestring);
    }
    if (!content) cJSON_AddStringToObject(m, "content", "");
    i++;
  }
  if (tools && !cJSON_IsNull(tools)) {
    if (!cJSON_IsArray(tools)) {
      mlxr_errf(err, err_len, MLXR_ERR_INVALID, "tools must be an array");
      goto fail;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
      const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
      if (!cJSON_IsObject(t) || !cJSON_IsObject(fn) ||
          !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fn, "name"))) {
        mlxr_errf(err, err_len, MLXR_ERR_INVALID, "each tool needs {type: function, function: {name, ...}}");
        goto fail;
      }
    }
    if (cJSON_GetArraySize(tools) > 0) cJSON_AddItemToObject(vars, "tools", cJSON_Duplicate(tools, true));
  }
  cJSON_DeleteItemFromObjectCaseSensitive(vars, "add_generation_prompt");
  cJSON_AddBoolToObject(vars, "add_generation_prompt", add_generation_prompt);
  if (!cJSON_GetObjectItemCaseSensitive(vars, "bos_token")) cJSON_AddStringToObject(vars, "bos_token", bos ? bos : "");
  if (!cJSON_GetObjectItemCaseSensitive(vars, "eos_token")) cJSON_AddStringToObject(vars, "eos_token", eos ? eos : "");
  return vars;
fail:
  if (err && err_len && !err[0]) mlxr_errf(err, err_len, MLXR_ERR_INVALID, "malformed messages");
  cJSON_Delete(vars);
  return NULL;
}

int mlxr_chat_render(const mlxr_template *t, const cJSON *vars, char **prompt, char *err,
                     size_t err_len) {
  if (!t) return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "the model has no usable chat template");
  mlxr_template_params tp;
  mlxr_template_default_params(&tp);
  tp.max_output_bytes = 16u << 20;
  return mlxr_template_render(t, vars, &tp, prompt, NULL, err, err_len);
}

bool mlxr_chat_prompt_opens_think(const char *prompt) {
  const char *open = NULL, *close = NULL, *p = prompt;
  while ((p = strstr(p, TAG_THINK))) open = p++;
  p = prompt;
  while ((p = strstr(p, TAG_THINK_END))) close = p++;
  if (!open) return false;
  if (close && close > open) return false;
  /* the open tag must be near the end (only whitespace after it) */
  for (const char *q = open + strlen(TAG_THINK); *q; q++)
    if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t') return false;
  return true;
}

/* ---------------- output parsing ---------------- */

void mlxr_chat_parser_init(mlxr_chat_parser *p, bool tools, bool start_in_think) {
  memset(p, 0, sizeof(*p));
  p->tools = tools;
  p->mode = start_in_think ? MODE_THINK : MODE_CONTENT;
}

void mlxr_chat_parser_free(mlxr_chat_parser *p) {
  free(p->buf);
  free(p->tool);
  memset(p, 0, sizeof(*p));
}

static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static bool all_ws(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!is_ws(s[i])) return false;
  return true;
}

static const char *find_n(const char *s, size_t n, const char *tag) {
  size_t tl = strlen(tag);
  if (n < tl) return NULL;
  for (size_t i = 0; i + tl <= n; i++)
    if (s[i] == tag[0] && memcmp(s + i, tag, tl) == 0) return s + i;
  return NULL;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of tag. */
static size_t partial_suffix(const char *s, size_t n, const char *tag) {
  size_t tl = strlen(tag);
  size_t best = 0;
  for (size_t k = 1; k < tl && k <= n; k++)
    if (memcmp(s + n - k, tag, k) == 0) best = k;
  return best;
}

static void consume(mlxr_chat_parser *p, size_t n) {
  if (n == 0) return; /* also covers a parser that never buffered (buf NULL) */
  memmove(p->buf, p->buf + n, p->len - n);
  p->len -= n;
}

static void emit_text(mlxr_chat_parser *p, mlxr_chat_part part, const char *s, size_t n,
                      mlxr_chat_emit emit, void *user) {
  if (part == MLXR_CHAT_CONTENT && p->after_think) {
    while (n > 0 && is_ws(*s)) s++, n--;
    if (n == 0) return;
    p->after_think = false;
  }
  if (n == 0) return;
  if (part == MLXR_CHAT_CONTENT) {
    if (!all_ws(s, n)) p->any_content = true;
  }
  mlxr_chat_delta d = {.part = part, .text = s, .len = n};
  emit(user, &d);
}

/* Parse {"name", "arguments"|"parameters"} into a tool call; emits and returns true on success. */
static bool emit_tool_json(mlxr_chat_parser *p, const cJSON *obj, mlxr_chat_emit emit, void *user) {
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "name");
  if (!cJSON_IsObject(obj) || !cJSON_IsString(name)) return false;
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(obj, "arguments");
  if (!args) args = cJSON_GetObjectItemCaseSensitive(obj, "parameters");
  cJSON *owned = NULL;
  if (cJSON_IsString(args)) {
    owned = cJSON_Parse(args->valuestring);
    if (owned) args = owned;
  }
  if (!args) args = owned = cJSON_CreateObject();
  mlxr_chat_delta d = {.part = MLXR_CHAT_TOOL_CALL, .tool_index = p->n_tool_calls,
                       .tool_name = name->valuestring, .tool_args = args};
  p->n_tool_calls++;
  emit(user, &d);
  cJSON_Delete(owned);
  return true;
}

static bool buf_reserve(char **b, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t nc = *cap ? *cap * 2 : 256;
  while (nc < need) nc *= 2;
  char *nb = realloc(*b, nc);
  if (!nb) return false;
  *b = nb;
  *cap = nc;
  return true;
}

/* Llama 3.1: the whole reply is one or more JSON objects separated by ';'. */
static bool try_llama_json(mlxr_chat_parser *p, const char *s, size_t n, mlxr_chat_emit emit,
                           void *user) {
  char *copy = malloc(n + 1);
  if (!copy) return false;
  memcpy(copy, s, n);
  copy[n] = '\0';
  const char *q = copy;
  if (strncmp(q, TAG_PYTHON, strlen(TAG_PYTHON)) == 0) q += strlen(TAG_PYTHON);
  cJSON *objs[16];
  int n_objs = 0;
  bool ok = true;
  while (*q) {
    while (is_ws(*q) || *q == ';') q++;
    if (!*q) break;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(q, &end, false);
    if (!o || n_objs == 16 || !cJSON_IsObject(o) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "name")) ||
        !(cJSON_GetObjectItemCaseSensitive(o, "parameters") ||
          cJSON_GetObjectItemCaseSensitive(o, "arguments"))) {
      cJSON_Delete(o);
      ok = false;
      break;
    }
    objs[n_objs++] = o;
    q = end;
  }
  if (n_objs == 0) ok = false;
  if (ok)
    for (int i = 0; i < n_objs; i++) emit_tool_json(p, objs[i], emit, user);
  for (int i = 0; i < n_objs; i++) cJSON_Delete(objs[i]);
  free(copy);
  return ok;
}

static void tool_done(mlxr_chat_parser *p, const char *s, size_t n, bool closed,
                      mlxr_chat_emit emit, void *user) {
  char *copy = malloc(n + 1);
  bool ok = false;
  if (copy) {
    memcpy(copy, s, n);
    copy[n] = '\0';
    cJSON *o = cJSON_Parse(copy);
    ok = o && emit_tool_json(p, o, emit, user);
    cJSON_Delete(o);
    free(copy);
  }
  if (ok) {
    p->after_think = true; /* drop the newline(s) between tool calls */
    return;
  }
  emit_text(p, MLXR_CHAT_CONTENT, TAG_TOOL, strlen(TAG_TOOL), emit, user);
  emit_text(p, MLXR_CHAT_CONTENT, s, n, emit, user);
  if (closed) emit_text(p, MLXR_CHAT_CONTENT, TAG_TOOL_END, strlen(TAG_TOOL_END), emit, user);
}

void mlxr_chat_parser_push(mlxr_chat_parser *p, const char *text, size_t len, bool final,
                           mlxr_chat_emit emit, void *user) {
  if (len) {
    if (!buf_reserve(&p->buf, &p->cap, p->len + len + 1)) {
      p->oom = true;
      return;
    }
    memcpy(p->buf + p->len, text, len);
    p->len += len;
  }
  for (;;) {
    if (p->mode == MODE_CONTENT) {
      if (p->tools && !p->any_content && p->n_tool_calls == 0) {
        size_t k = 0;
        while (k < p->len && is_ws(p->buf[k])) k++;
        size_t rest = p->len - k;
        size_t pl = strlen(TAG_PYTHON);
        if (rest > 0 && (p->buf[k] == '{' || (rest >= pl && memcmp(p->buf + k, TAG_PYTHON, pl) == 0))) {
          p->mode = MODE_JSON;
          continue;
        }
        if (!final && (rest == 0 || (rest < pl && memcmp(p->buf + k, TAG_PYTHON, rest) == 0))) return;
      }
      const char *t1 = find_n(p->buf, p->len, TAG_THINK);
      const char *t2 = p->tools ? find_n(p->buf, p->len, TAG_TOOL) : NULL;
      const char *t = t1;
      if (t2 && (!t || t2 < t)) t = t2;
      if (t) {
        size_t k = (size_t)(t - p->buf);
        bool is_tool = (t == t2);
        size_t keep = k;
        if (is_tool)
          while (keep > 0 && is_ws(p->buf[keep - 1])) keep--;
        emit_text(p, MLXR_CHAT_CONTENT, p->buf, keep, emit, user);
        consume(p, k + strlen(is_tool ? TAG_TOOL : TAG_THINK));
        p->mode = is_tool ? MODE_TOOL : MODE_THINK;
        continue;
      }
      size_t hold = 0;
      if (!final) {
        hold = partial_suffix(p->buf, p->len, TAG_THINK);
        if (p->tools) {
          size_t h2 = partial_suffix(p->buf, p->len, TAG_TOOL);
          if (h2 > hold) hold = h2;
          size_t w = 0;
          while (w < p->len - hold && is_ws(p->buf[p->len - hold - 1 - w])) w++;
          hold += w;
        }
      } else if (p->n_tool_calls > 0 && all_ws(p->buf, p->len)) {
        p->len = 0;
        return;
      }
      emit_text(p, MLXR_CHAT_CONTENT, p->buf, p->len - hold, emit, user);
      consume(p, p->len - hold);
      return;
    }
    if (p->mode == MODE_THINK) {
      const char *t = find_n(p->buf, p->len, TAG_THINK_END);
      if (t) {
        size_t k = (size_t)(t - p->buf);
        emit_text(p, MLXR_CHAT_REASONING, p->buf, k, emit, user);
        consume(p, k + strlen(TAG_THINK_END));
        p->mode = MODE_CONTENT;
        p->after_think = true;
        continue;
      }
      size_t hold = final ? 0 : partial_suffix(p->buf, p->len, TAG_THINK_END);
      emit_text(p, MLXR_CHAT_REASONING, p->buf, p->len - hold, emit, user);
      consume(p, p->len - hold);
      return;
    }
    if (p->mode == MODE_TOOL) {
      const char *t = find_n(p->buf, p->len, TAG_TOOL_END);
      if (t) {
        size_t k = (size_t)(t - p->buf);
        tool_done(p, p->buf, k, true, emit, user);
        consume(p, k + strlen(TAG_TOOL_END));
        p->mode = MODE_CONTENT;
        continue;
      }
      if (!final) return;
      tool_done(p, p->buf, p->len, false, emit, user);
      p->len = 0;
      p->mode = MODE_CONTENT;
      return;
    }
    /* MODE_JSON */
    if (!final) return;
    if (!try_llama_json(p, p->buf, p->len, emit, user)) {
      p->mode = MODE_CONTENT;
      p->any_content = true; /* not JSON tool calls: plain content from here on */
      emit_text(p, MLXR_CHAT_CONTENT, p->buf, p->len, emit, user);
    }
    p->len = 0;
    return;
  }
}
