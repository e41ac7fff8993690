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
 *            does not parse is given back as content, tags included, so nothing is lost (but an
 *            unclosed call at the end of a cut or forced output is dropped).
 *   JSON     the whole reply is collected and, at the end, parsed as Llama 3.1 tool calls
 *            ({"name", "parameters"} objects separated by ';'), or given back as content (dropped
 *            when the output was forced to be tool calls: then it can only be a cut-off call).
 */
#include "daemon/server/chat.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar.h"

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
  char *joined = mlxr_chat_parts_text(content, err, err_len);
  if (!joined) return false;
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

const char *mlxr_chat_str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *mlxr_chat_call_name(const cJSON *messages, const char *call_id) {
  const cJSON *m, *tc;
  cJSON_ArrayForEach(m, messages) {
    cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
      const char *id = mlxr_chat_str(tc, "id");
      if (id && call_id && strcmp(id, call_id) == 0) return mlxr_chat_str(cJSON_GetObjectItemCaseSensitive(tc, "function"), "name");
    }
  }
  return NULL;
}

char *mlxr_chat_parts_text(const cJSON *content, char *err, size_t err_len) {
  if (cJSON_IsString(content)) return strdup(content->valuestring);
  if (!cJSON_IsArray(content)) {
    mlxr_errf(err, err_len, MLXR_ERR_INVALID, "content must be a string or an array of parts");
    return NULL;
  }
  size_t total = 1;
  const cJSON *part;
  cJSON_ArrayForEach(part, content) {
    const char *text = mlxr_chat_str(part, "text");
    if (!text) text = mlxr_chat_str(part, "refusal");
    if (!text) {
      const char *type = mlxr_chat_str(part, "type");
      mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "content part type '%.40s' is not supported by this model (text only)", type ? type : "?");
      return NULL;
    }
    total += strlen(text) + 1;
  }
  char *out = malloc(total);
  if (!out) return NULL;
  size_t off = 0;
  cJSON_ArrayForEach(part, content) {
    const char *text = mlxr_chat_str(part, "text");
    if (!text) text = mlxr_chat_str(part, "refusal");
    if (off) out[off++] = '\n';
    size_t n = strlen(text);
    memcpy(out + off, text, n);
    off += n;
  }
  out[off] = '\0';
  return out;
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
  if (part == MLXR_CHAT_CONTENT && p->forced) return; /* only call syntax can be here: a cut-off tag */
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

/* Llama 3.1: the whole reply is one or more JSON objects separated by ';'. With keep_prefix
 * (a forced output that was cut), the complete calls before a broken one still count. */
static bool try_llama_json(mlxr_chat_parser *p, const char *s, size_t n, bool keep_prefix,
                           mlxr_chat_emit emit, void *user) {
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
  if (!ok && keep_prefix && n_objs > 0) ok = true;
  if (ok)
    for (int i = 0; i < n_objs; i++) emit_tool_json(p, objs[i], emit, user);
  for (int i = 0; i < n_objs; i++) cJSON_Delete(objs[i]);
  free(copy);
  return ok;
}

/* A call's text: emitted as a call when it parses, else given back as content (tags included) or,
 * for an unclosed call of a cut or forced output, dropped. */
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
  if (!closed && (p->forced || p->cut)) return; /* a half-written call */
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
    if (!try_llama_json(p, p->buf, p->len, p->forced, emit, user) && !p->forced) {
      p->mode = MODE_CONTENT;
      p->any_content = true; /* not JSON tool calls: plain content from here on */
      emit_text(p, MLXR_CHAT_CONTENT, p->buf, p->len, emit, user);
    }
    p->len = 0;
    return;
  }
}

/* ---------------- output blocks ---------------- */

static void blocks_close(mlxr_chat_blocks *bs) {
  if (bs->n == 0 || bs->b[bs->n - 1].closed) return;
  mlxr_block *b = &bs->b[bs->n - 1];
  b->closed = true;
  bs->ops->close(bs->user, b);
}

/* The open block of this kind (a tool call always gets a new one), or NULL out of memory. */
static mlxr_block *blocks_open(mlxr_chat_blocks *bs, mlxr_block_kind kind, const char *name) {
  if (bs->n > 0 && !bs->b[bs->n - 1].closed) {
    if (bs->b[bs->n - 1].kind == kind && kind != MLXR_BLOCK_TOOL_CALL) return &bs->b[bs->n - 1];
    blocks_close(bs);
  }
  if (bs->n == bs->cap) {
    int nc = bs->cap ? bs->cap * 2 : 4;
    mlxr_block *nb = realloc(bs->b, (size_t)nc * sizeof(*nb));
    if (!nb) return NULL;
    bs->b = nb;
    bs->cap = nc;
  }
  mlxr_block *b = &bs->b[bs->n];
  memset(b, 0, sizeof(*b));
  b->kind = kind;
  b->index = bs->n;
  if (name && !(b->name = strdup(name))) return NULL;
  bs->n++;
  bs->ops->open(bs->user, b);
  return b;
}

static void blocks_add(mlxr_chat_blocks *bs, mlxr_block *b, const char *s, size_t n) {
  if (!b || !buf_reserve(&b->text, &b->cap, b->len + n + 1)) {
    bs->oom = true;
    return;
  }
  memcpy(b->text + b->len, s, n);
  b->len += n;
  b->text[b->len] = '\0';
  bs->ops->delta(bs->user, b, s, n);
}

static void blocks_emit(void *user, const mlxr_chat_delta *d) {
  mlxr_chat_blocks *bs = user;
  if (d->part == MLXR_CHAT_TOOL_CALL) {
    mlxr_block *b = blocks_open(bs, MLXR_BLOCK_TOOL_CALL, d->tool_name);
    char *args = cJSON_PrintUnformatted(d->tool_args);
    blocks_add(bs, b, args ? args : "{}", args ? strlen(args) : 2);
    free(args);
    blocks_close(bs);
    return;
  }
  if (d->part == MLXR_CHAT_REASONING) bs->reasoned = true;
  blocks_add(bs, blocks_open(bs, d->part == MLXR_CHAT_REASONING ? MLXR_BLOCK_REASONING : MLXR_BLOCK_TEXT, NULL), d->text, d->len);
}

void mlxr_chat_blocks_init(mlxr_chat_blocks *bs, bool tools, bool start_in_think,
                           const mlxr_block_ops *ops, void *user) {
  memset(bs, 0, sizeof(*bs));
  mlxr_chat_parser_init(&bs->parser, tools, start_in_think);
  bs->ops = ops;
  bs->user = user;
}

bool mlxr_chat_blocks_push(mlxr_chat_blocks *bs, const char *text, size_t len, bool final) {
  bs->reasoned = false;
  mlxr_chat_parser_push(&bs->parser, text, len, final, blocks_emit, bs);
  if (final) blocks_close(bs);
  return bs->reasoned;
}

void mlxr_chat_blocks_free(mlxr_chat_blocks *bs) {
  for (int i = 0; i < bs->n; i++) {
    free(bs->b[i].name);
    free(bs->b[i].text);
  }
  free(bs->b);
  mlxr_chat_parser_free(&bs->parser);
  memset(bs, 0, sizeof(*bs));
}

/* ---------------- constrained outputs ---------------- */

/* Rename the GBNF rule `root` to `to` wherever it is a whole identifier outside string literals
 * and character classes (the schema converter's grammar may refer to its own root). */
static char *rename_root_rule(const char *g, const char *to) {
  size_t n = strlen(g), cap = n * 2 + 64, o = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  for (size_t i = 0; i < n;) {
    if (g[i] == '"' || g[i] == '[') { /* copy a literal or class verbatim, escapes included */
      const char close = g[i] == '"' ? '"' : ']';
      out[o++] = g[i++];
      while (i < n && g[i] != close) {
        if (g[i] == '\\' && i + 1 < n) out[o++] = g[i++];
        out[o++] = g[i++];
      }
      if (i < n) out[o++] = g[i++];
      continue;
    }
    if (g[i] == '#') { /* comment to end of line */
      while (i < n && g[i] != '\n') out[o++] = g[i++];
      continue;
    }
    const bool word_start = i == 0 || !(isalnum((unsigned char)g[i - 1]) || g[i - 1] == '-' || g[i - 1] == '_');
    if (word_start && strncmp(g + i, "root", 4) == 0 &&
        !(isalnum((unsigned char)g[i + 4]) || g[i + 4] == '-' || g[i + 4] == '_')) {
      size_t l = strlen(to);
      if (o + l + 1 >= cap) break;
      memcpy(out + o, to, l);
      o += l;
      i += 4;
      continue;
    }
    out[o++] = g[i++];
  }
  out[o] = '\0';
  return out;
}

/* tool_choice "required" or a named function: the output must be tool calls. The grammar allows one
 * call (parallel_tool_calls false) or one or more, in the model family's own form: Hermes/Qwen `<tool_call>\n{"name": .., "arguments":
 * {..}}\n</tool_call>` (templates that mention <tool_call>), else the Llama 3.1 form
 * `{"name": .., "parameters": {..}}`; each call's arguments follow that tool's parameter schema. */
int mlxr_chat_tool_grammar(const cJSON *tools, const char *template_src, bool parallel, char **out,
                           char *err, size_t err_len) {
  *out = NULL;
  const bool hermes = !template_src || strstr(template_src, "<tool_call>") || !strstr(template_src, "parameters");
  cJSON *any = cJSON_CreateArray();
  const cJSON *t;
  cJSON_ArrayForEach(t, tools) {
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
    if (!cJSON_IsString(name)) continue;
    cJSON *call = cJSON_CreateObject();
    cJSON_AddStringToObject(call, "type", "object");
    cJSON *props = cJSON_AddObjectToObject(call, "properties");
    cJSON *nm = cJSON_AddObjectToObject(props, "name");
    cJSON_AddStringToObject(nm, "const", name->valuestring);
    cJSON_AddItemToObject(props, hermes ? "arguments" : "parameters",
                          cJSON_IsObject(params) ? cJSON_Duplicate(params, true) : cJSON_Parse("{\"type\":\"object\"}"));
    cJSON *req = cJSON_AddArrayToObject(call, "required");
    cJSON_AddItemToArray(req, cJSON_CreateString("name"));
    cJSON_AddItemToArray(req, cJSON_CreateString(hermes ? "arguments" : "parameters"));
    cJSON_AddItemToArray(any, call);
  }
  cJSON *schema = cJSON_CreateObject();
  cJSON_AddItemToObject(schema, "anyOf", any);
  char *call_gbnf = NULL;
  int rc = mlxr_json_schema_to_gbnf(schema, &call_gbnf, err, err_len);
  cJSON_Delete(schema);
  if (rc != MLXR_OK) return rc;
  char *renamed = rename_root_rule(call_gbnf, "tool-call-object");
  free(call_gbnf);
  if (!renamed) return MLXR_ERR_NOMEM;
  /* tool calls are written compactly (as models are trained to): at most one space per gap */
  char *ws = strstr(renamed, "ws ::= [ \\t\\n]{0,32}\n");
  if (ws) {
    const char compact[] = "ws ::= \" \"?";
    const size_t old_len = strlen("ws ::= [ \\t\\n]{0,32}");
    memcpy(ws, compact, sizeof(compact) - 1);
    memset(ws + sizeof(compact) - 1, ' ', old_len - (sizeof(compact) - 1));
  }
  const char *top = hermes ? (parallel ? "root ::= tool-call (\"\\n\" tool-call)*\n"
                                        "tool-call ::= \"<tool_call>\\n\" tool-call-object \"\\n</tool_call>\"\n"
                                      : "root ::= \"<tool_call>\\n\" tool-call-object \"\\n</tool_call>\"\n")
                           : (parallel ? "root ::= tool-call-object (\"; \" tool-call-object)*\n"
                                       : "root ::= tool-call-object\n");
  size_t l = strlen(top) + strlen(renamed) + 2;
  *out = malloc(l);
  if (!*out) {
    free(renamed);
    return MLXR_ERR_NOMEM;
  }
  snprintf(*out, l, "%s%s", top, renamed);
  free(renamed);
  mlxr_grammar *g = NULL; /* the combination must itself be a valid grammar */
  rc = mlxr_grammar_parse(*out, strlen(*out), NULL, &g, err, err_len);
  mlxr_grammar_free(g);
  if (rc != MLXR_OK) {
    free(*out);
    *out = NULL;
  }
  return rc;
}

int mlxr_chat_json_grammar(const cJSON *schema, char **out, char *err, size_t err_len) {
  if (schema) return mlxr_json_schema_to_gbnf(schema, out, err, err_len);
  *out = mlxr_json_grammar_gbnf(MLXR_JSON_GRAMMAR_OBJECT);
  return *out ? MLXR_OK : mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
}
