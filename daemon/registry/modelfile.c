/*
 * modelfile.c: see modelfile.h. A line scanner: each instruction is read as name, (parameter name
 * or message role), argument; read_argument() is the one place that knows the quoting, and the
 * writer proves each value it writes by reading it back with it.
 */
#include "daemon/registry/modelfile.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"

typedef enum param_type { P_INT, P_FLOAT, P_BOOL, P_STRINGS, P_DEPRECATED } param_type;

/* Ollama's options (api.Options and api.Runner) and their JSON types. */
static const struct {
  const char *name;
  param_type type;
} k_params[] = {
    {"num_keep", P_INT},          {"seed", P_INT},
    {"num_predict", P_INT},       {"top_k", P_INT},
    {"top_p", P_FLOAT},           {"min_p", P_FLOAT},
    {"typical_p", P_FLOAT},       {"repeat_last_n", P_INT},
    {"temperature", P_FLOAT},     {"repeat_penalty", P_FLOAT},
    {"presence_penalty", P_FLOAT}, {"frequency_penalty", P_FLOAT},
    {"stop", P_STRINGS},          {"num_ctx", P_INT},
    {"num_batch", P_INT},         {"num_gpu", P_INT},
    {"main_gpu", P_INT},          {"use_mmap", P_BOOL},
    {"num_thread", P_INT},        {"penalize_newline", P_DEPRECATED},
    {"low_vram", P_DEPRECATED},   {"f16_kv", P_DEPRECATED},
    {"logits_all", P_DEPRECATED}, {"vocab_only", P_DEPRECATED},
    {"use_mlock", P_DEPRECATED},  {"mirostat", P_DEPRECATED},
    {"mirostat_tau", P_DEPRECATED}, {"mirostat_eta", P_DEPRECATED},
};

/* Single-valued text instructions, in the order the writer puts them. */
enum { T_TEMPLATE, T_SYSTEM, T_ADAPTER, T_DRAFT, T_REQUIRES, T_RENDERER, T_PARSER, T_COUNT };
static const char *const k_text_names[T_COUNT] = {"TEMPLATE", "SYSTEM",   "ADAPTER", "DRAFT",
                                                  "REQUIRES", "RENDERER", "PARSER"};

static char **text_slot(mlxr_modelfile *mf, int t) {
  switch (t) {
  case T_TEMPLATE: return &mf->template_text;
  case T_SYSTEM: return &mf->system;
  case T_ADAPTER: return &mf->adapter;
  case T_DRAFT: return &mf->draft;
  case T_REQUIRES: return &mf->requires;
  case T_RENDERER: return &mf->renderer;
  default: return &mf->parser;
  }
}

typedef struct scanner {
  const char *s;
  size_t len, pos;
  int line; /* 1-based line of pos */
} scanner;

static bool is_blank(char c) { return c == ' ' || c == '\t'; }
static bool is_eol(char c) { return c == '\n' || c == '\r'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Past the line ending at pos (\n, \r\n or \r), counting the line. */
static void skip_eol(scanner *sc) {
  if (sc->pos < sc->len && sc->s[sc->pos] == '\r') {
    sc->pos++;
    if (sc->pos < sc->len && sc->s[sc->pos] == '\n') sc->pos++;
  } else if (sc->pos < sc->len && sc->s[sc->pos] == '\n') {
    sc->pos++;
  }
  sc->line++;
}

static void skip_blanks(scanner *sc) {
  while (sc->pos < sc->len && is_blank(sc->s[sc->pos])) sc->pos++;
}

/* Appends s[a..b) to a growing buffer, line endings as \n. */
typedef struct buf {
  char *p;
  size_t n, cap;
} buf;

static bool buf_put(buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
  return true;
}

/* The argument at sc->pos (blanks before it already skipped), into *out (malloc'ed). Unquoted: the
 * rest of the line, trimmed. `"` or `"""`: up to the end of the first line (trailing blanks
 * trimmed) that closes the quote, lines joined with \n; the quotes removed. Leaves sc at the end
 * of the argument's last line (before its line ending). */
static int read_argument(scanner *sc, char **out, char *err, size_t err_len) {
  *out = NULL;
  const int first_line = sc->line;
  const char *s = sc->s;
  const size_t start = sc->pos;
  const bool triple = sc->len - start >= 3 && memcmp(s + start, "\"\"\"", 3) == 0;
  const bool quoted = triple || (start < sc->len && s[start] == '"');
  const size_t q = triple ? 3 : 1;
  buf b = {0};
  for (bool first = true;; first = false) {
    size_t a = sc->pos, e = a;
    while (e < sc->len && !is_eol(s[e])) e++;
    size_t t = e;
    while (t > a && is_blank(s[t - 1])) t--;
    sc->pos = e;
    if (!quoted) {
      char *v = strndup(s + a, t - a);
      if (!v) return MLXR_ERR_NOMEM;
      *out = v;
      return MLXR_OK;
    }
    /* does this line close the quote? the whole argument so far must be at least two quotes long */
    const size_t so_far = t - start; /* meaningful on the first line only */
    const bool closes = t - a >= q && memcmp(s + t - q, triple ? "\"\"\"" : "\"", q) == 0 &&
                        (!first || so_far >= 2 * q);
    const size_t from = first ? start + q : a;
    const size_t to = closes ? t - q : e; /* an inner line keeps its trailing blanks */
    if (!first && !buf_put(&b, "\n", 1)) goto nomem;
    if (to > from && !buf_put(&b, s + from, to - from)) goto nomem;
    if (closes) {
      if (!b.p && !(b.p = strdup(""))) goto nomem;
      *out = b.p;
      return MLXR_OK;
    }
    if (e >= sc->len) {
      free(b.p);
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: the %s opened here is never closed", first_line,
                       triple ? "\"\"\"" : "\"");
    }
    skip_eol(sc);
  }
nomem:
  free(b.p);
  return MLXR_ERR_NOMEM;
}

static int find_param(const char *name) {
  for (size_t i = 0; i < sizeof k_params / sizeof k_params[0]; i++) {
    if (strcmp(k_params[i].name, name) == 0) return (int)i;
  }
  return -1;
}

/* PARAMETER name value -> mf->parameters. seen[]: line of each parameter's first occurrence. */
static int add_parameter(mlxr_modelfile *mf, const char *name, const char *value, int line, int *seen, char *err,
                         size_t err_len) {
  const int pi = find_param(name);
  if (pi < 0) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: unknown parameter '%.64s'", line, name);
  const param_type type = k_params[pi].type;
  if (type == P_DEPRECATED) {
    mf->n_deprecated++;
    return MLXR_OK;
  }
  if (type != P_STRINGS && seen[pi])
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: PARAMETER %s is given twice (first on line %d)", line,
                     name, seen[pi]);
  if (!seen[pi]) seen[pi] = line;
  cJSON *params = mf->parameters, *item = NULL;
  char *end = NULL;
  errno = 0;
  switch (type) {
  case P_INT: {
    const long long v = strtoll(value, &end, 10);
    if (!*value || *end || errno == ERANGE)
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: PARAMETER %s wants an integer, not '%.64s'", line,
                       name, value);
    if (v > (1LL << 53) || v < -(1LL << 53)) /* JSON numbers (doubles) hold integers exactly up to 2^53 */
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "line %d: PARAMETER %s: %.64s is out of range (at most 2^53)",
                       line, name, value);
    item = cJSON_CreateNumber((double)v);
    break;
  }
  case P_FLOAT: {
    const double v = strtod(value, &end);
    if (!*value || *end || !isfinite(v) || errno == ERANGE)
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: PARAMETER %s wants a number, not '%.64s'", line,
                       name, value);
    item = cJSON_CreateNumber(v);
    break;
  }
  case P_BOOL: {
    const bool t = !strcasecmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "t");
    const bool f = !strcasecmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "f");
    if (!t && !f)
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: PARAMETER %s wants true or false, not '%.64s'",
                       line, name, value);
    item = cJSON_CreateBool(t);
    break;
  }
  case P_STRINGS: {
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(params, name);
    if (!arr && !(arr = cJSON_AddArrayToObject(params, name))) return MLXR_ERR_NOMEM;
    cJSON *sv = cJSON_CreateString(value);
    if (!sv) return MLXR_ERR_NOMEM;
    cJSON_AddItemToArray(arr, sv);
    return MLXR_OK;
  }
  default: break;
  }
  if (!item) return MLXR_ERR_NOMEM;
  cJSON_AddItemToObject(params, name, item);
  return MLXR_OK;
}

/* Valid UTF-8 without NUL bytes (a Modelfile is text; a template with broken bytes would fail later
 * and far from here). Returns the 1-based line of the first offence, or 0. */
static int bad_text_line(const char *s, size_t n) {
  int line = 1;
  for (size_t i = 0; i < n;) {
    const unsigned char c = (unsigned char)s[i];
    if (c == '\n') line++;
    if (c == 0) return line;
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (k == 0 || i + k > n) return line;
    uint32_t cp = k == 1 ? c : k == 2 ? (c & 0x1Fu) : k == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (size_t j = 1; j < k; j++) {
      const unsigned char d = (unsigned char)s[i + j];
      if ((d & 0xC0) != 0x80) return line;
      cp = cp << 6 | (d & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return line;
    i += k;
  }
  return 0;
}

void mlxr_modelfile_free(mlxr_modelfile *mf) {
  if (!mf) return;
  free(mf->from);
  for (int t = 0; t < T_COUNT; t++) free(*text_slot(mf, t));
  for (int i = 0; i < mf->n_licenses; i++) free(mf->licenses[i]);
  free(mf->licenses);
  for (int i = 0; i < mf->n_messages; i++) {
    free(mf->messages[i].role);
    free(mf->messages[i].content);
  }
  free(mf->messages);
  cJSON_Delete(mf->parameters);
  memset(mf, 0, sizeof *mf);
}

/* One instruction whose name starts at sc->pos. */
static int parse_instruction(scanner *sc, mlxr_modelfile *mf, int *seen_text, int *seen_from, int *seen_param,
                             char *err, size_t err_len) {
  const int line = sc->line;
  const size_t n0 = sc->pos;
  while (sc->pos < sc->len && is_alpha(sc->s[sc->pos])) sc->pos++;
  char name[16];
  const size_t nl = sc->pos - n0;
  snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name ? nl : sizeof name - 1), sc->s + n0);
  for (char *p = name; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
  const bool at_blank = sc->pos < sc->len && is_blank(sc->s[sc->pos]);
  enum { K_FROM, K_PARAMETER, K_MESSAGE, K_LICENSE, K_TEXT, K_UNKNOWN } kind = K_UNKNOWN;
  int text = -1;
  if (nl < sizeof name) {
    if (!strcmp(name, "FROM")) kind = K_FROM;
    else if (!strcmp(name, "PARAMETER")) kind = K_PARAMETER;
    else if (!strcmp(name, "MESSAGE")) kind = K_MESSAGE;
    else if (!strcmp(name, "LICENSE")) kind = K_LICENSE;
    for (int t = 0; t < T_COUNT && kind == K_UNKNOWN; t++) {
      if (!strcmp(name, k_text_names[t])) kind = K_TEXT, text = t;
    }
  }
  if (kind == K_UNKNOWN || (!at_blank && sc->pos < sc->len && !is_eol(sc->s[sc->pos]))) {
    size_t e = n0;
    while (e < sc->len && !is_eol(sc->s[e]) && !is_blank(sc->s[e])) e++;
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "line %d: unknown instruction '%.*s' (expected FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, "
                     "LICENSE, MESSAGE, DRAFT, REQUIRES, RENDERER or PARSER)",
                     line, (int)(e - n0 > 40 ? 40 : e - n0), sc->s + n0);
  }
  skip_blanks(sc);
  /* the word after PARAMETER or MESSAGE */
  char word[64] = "";
  if (kind == K_PARAMETER || kind == K_MESSAGE) {
    const size_t w0 = sc->pos;
    while (sc->pos < sc->len && (is_alpha(sc->s[sc->pos]) || sc->s[sc->pos] == '_' ||
                                 (kind == K_PARAMETER && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9')))
      sc->pos++;
    const size_t wl = sc->pos - w0;
    if (wl == 0 || wl >= sizeof word || !(sc->pos < sc->len && is_blank(sc->s[sc->pos])))
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: %s wants %s and then a value", line, name,
                       kind == K_PARAMETER ? "a parameter name" : "a role (system, user or assistant)");
    memcpy(word, sc->s + w0, wl);
    if (kind == K_MESSAGE && strcmp(word, "system") && strcmp(word, "user") && strcmp(word, "assistant"))
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                       "line %d: MESSAGE role '%s' is not one of system, user or assistant", line, word);
    skip_blanks(sc);
  }
  if (sc->pos >= sc->len || is_eol(sc->s[sc->pos]))
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: %s has no value", line, name);
  char *value = NULL;
  int rc = read_argument(sc, &value, err, err_len);
  if (rc != MLXR_OK) return rc;
  switch (kind) {
  case K_FROM:
    if (*seen_from) {
      free(value);
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: FROM is given twice (first on line %d)", line,
                       *seen_from);
    }
    *seen_from = line;
    mf->from = value;
    return MLXR_OK;
  case K_TEXT:
    if (seen_text[text]) {
      free(value);
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: %s is given twice (first on line %d)", line, name,
                       seen_text[text]);
    }
    seen_text[text] = line;
    *text_slot(mf, text) = value;
    return MLXR_OK;
  case K_LICENSE: {
    char **l = realloc(mf->licenses, (size_t)(mf->n_licenses + 1) * sizeof *l);
    if (!l) break;
    mf->licenses = l;
    l[mf->n_licenses++] = value;
    return MLXR_OK;
  }
  case K_MESSAGE: {
    mlxr_modelfile_message *m = realloc(mf->messages, (size_t)(mf->n_messages + 1) * sizeof *m);
    if (!m) break;
    mf->messages = m;
    char *role = strdup(word);
    if (!role) break;
    m[mf->n_messages++] = (mlxr_modelfile_message){role, value};
    return MLXR_OK;
  }
  case K_PARAMETER:
    rc = add_parameter(mf, word, value, line, seen_param, err, err_len);
    free(value);
    return rc;
  default: break;
  }
  free(value);
  return MLXR_ERR_NOMEM;
}

int mlxr_modelfile_parse(const char *text, size_t len, mlxr_modelfile *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) text += 3, len -= 3;
  const int bad = bad_text_line(text, len);
  if (bad) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "line %d: not UTF-8 text (or a NUL byte)", bad);
  mlxr_modelfile mf = {0};
  if (!(mf.parameters = cJSON_CreateObject())) return MLXR_ERR_NOMEM;
  int seen_text[T_COUNT] = {0}, seen_from = 0;
  int seen_param[sizeof k_params / sizeof k_params[0]] = {0};
  scanner sc = {text, len, 0, 1};
  int rc = MLXR_OK;
  while (rc == MLXR_OK && sc.pos < sc.len) {
    skip_blanks(&sc);
    if (sc.pos >= sc.len) break;
    const char c = sc.s[sc.pos];
    if (c == '#') {
      while (sc.pos < sc.len && !is_eol(sc.s[sc.pos])) sc.pos++;
    } else if (!is_eol(c)) {
      rc = parse_instruction(&sc, &mf, seen_text, &seen_from, seen_param, err, err_len);
    }
    if (rc == MLXR_OK && sc.pos < sc.len) skip_eol(&sc);
  }
  if (rc == MLXR_OK && !mf.from) rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID, "the Modelfile has no FROM line");
  if (rc != MLXR_OK) {
    if (rc == MLXR_ERR_NOMEM) mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    mlxr_modelfile_free(&mf);
    return rc;
  }
  *out = mf;
  return MLXR_OK;
}

/* ---- writing ---- */

/* Does `quoted` (one argument as the writer would put it) read back as exactly v? */
static bool reads_back(const char *quoted, const char *v) {
  scanner sc = {quoted, strlen(quoted), 0, 1};
  skip_blanks(&sc); /* as the reader does after the instruction */
  char *got = NULL, err[8];
  if (read_argument(&sc, &got, err, sizeof err) != MLXR_OK) return false;
  const bool same = sc.pos == sc.len && strcmp(got, v) == 0;
  free(got);
  return same;
}

/* v as an argument: bare, "v" or """v""", the first that reads back. */
static bool put_value(buf *b, const char *v) {
  static const char *const quotes[3] = {"", "\"", "\"\"\""};
  for (int i = 0; i < 3; i++) {
    const size_t q = strlen(quotes[i]), n = strlen(v);
    char *cand = malloc(n + 2 * q + 1);
    if (!cand) return false;
    memcpy(cand, quotes[i], q);
    memcpy(cand + q, v, n);
    memcpy(cand + q + n, quotes[i], q + 1);
    const bool ok = (i > 0 || (n > 0 && !strchr(v, '\n'))) && reads_back(cand, v);
    const bool put = ok && buf_put(b, cand, strlen(cand));
    free(cand);
    if (ok) return put;
  }
  return false;
}

static bool put_line(buf *b, const char *head, const char *value) {
  return buf_put(b, head, strlen(head)) && buf_put(b, " ", 1) && put_value(b, value) && buf_put(b, "\n", 1);
}

char *mlxr_modelfile_format(const mlxr_modelfile *mf, int *err_out) {
  if (err_out) *err_out = MLXR_OK;
  buf b = {0};
  bool ok = mf->from && put_line(&b, "FROM", mf->from);
  for (int t = 0; ok && t < T_COUNT; t++) {
    const char *v = *text_slot((mlxr_modelfile *)mf, t);
    if (v) ok = put_line(&b, k_text_names[t], v);
  }
  const cJSON *p;
  cJSON_ArrayForEach(p, (const cJSON *)mf->parameters) {
    if (!ok) break;
    char head[96];
    snprintf(head, sizeof head, "PARAMETER %s", p->string);
    if (cJSON_IsArray(p)) {
      const cJSON *s;
      cJSON_ArrayForEach(s, p) ok = ok && cJSON_IsString(s) && put_line(&b, head, s->valuestring);
    } else if (cJSON_IsBool(p)) {
      ok = put_line(&b, head, cJSON_IsTrue(p) ? "true" : "false");
    } else if (cJSON_IsNumber(p)) {
      char num[40];
      const double d = p->valuedouble;
      if (fabs(d) <= 9007199254740992.0 && d == (double)(long long)d) snprintf(num, sizeof num, "%lld", (long long)d);
      else snprintf(num, sizeof num, "%.17g", d);
      ok = put_line(&b, head, num);
    } else {
      ok = false;
    }
  }
  for (int i = 0; ok && i < mf->n_licenses; i++) ok = put_line(&b, "LICENSE", mf->licenses[i]);
  for (int i = 0; ok && i < mf->n_messages; i++) {
    char head[32];
    snprintf(head, sizeof head, "MESSAGE %s", mf->messages[i].role);
    ok = put_line(&b, head, mf->messages[i].content);
  }
  if (!ok) {
    if (err_out) *err_out = MLXR_ERR_UNSUPPORTED;
    free(b.p);
    return NULL;
  }
  return b.p;
}
