/*
 * json_schema.c: JSON grammars for constrained decoding: the generic JSON grammar (json_object
 * mode, and an exact RFC 8259 variant that tests compare with a real JSON parser) and JSON Schema
 * -> GBNF conversion (in the manner of llama.cpp's json-schema-to-grammar, written anew). The
 * parts and their conventions are described in json_schema_impl.h.
 *
 * Every schema node becomes a rule; shared primitives are appended once at the end. Keywords:
 *   type (a name or a list: nullable types), const, enum (members that break sibling keywords
 *     are dropped, checked with the validator), anyOf, oneOf (exclusivity left to the validator),
 *     allOf (members merged into one schema: properties per key, required united, bounds
 *     tightened; what cannot be merged is left to the validator), $ref to any JSON pointer in the
 *     document ("#", "#/$defs/X", "#/definitions/X", "#/properties/a/items/0", ~0 ~1 %xx
 *     escapes), recursion included (each target is one named rule); drafts 4-7 ignore $ref's
 *     siblings, 2019-09 and later apply them too;
 *   objects: properties in declared order (output keeps that order; optional ones may be left
 *     out), required (names without a property schema get additionalProperties' schema),
 *     additionalProperties true / false / a schema (extra member names are checked not to be a
 *     declared name), patternProperties (names from the pattern's grammar; a name matching two
 *     patterns, or a pattern-matching name taken as an extra member, is left to the validator);
 *   arrays: items, prefixItems, draft-4..2019 array-form items with additionalItems, minItems,
 *     maxItems;
 *   strings: minLength, maxLength (code points), pattern (json_schema_regex.c), format
 *     (json_schema_format.c; unknown formats are annotations); with both pattern and format the
 *     pattern's grammar is used (the format checked after), except for email;
 *   numbers: json_schema_num.c (bounds of any magnitude, exclusive forms, multipleOf).
 * Left to the validator (json_schema_valid.c), reported through `post`: uniqueItems, contains,
 * minContains, maxContains, not, if/then/else, oneOf's exclusivity, minProperties,
 * maxProperties, propertyNames, dependencies, dependentRequired, dependentSchemas, a pattern or
 * multipleOf that has no grammar, a pattern or format together with length bounds.
 * Refused (MLXR_ERR_UNSUPPORTED): $ref to another document or to an $id/$anchor,
 * $dynamicRef/$recursiveRef, unevaluatedProperties/Items. Malformed schemas: MLXR_ERR_INVALID.
 *
 * Two modes (mlxr_json_schema_params.spec_defaults). Generation (the default) narrows where a
 * model should not wander: when properties are declared and additionalProperties is absent no
 * other members are written (llama.cpp's choice; OpenAI's strict mode asks for the same); a
 * schema without type takes the type its keywords imply; digit runs, whitespace and unbounded
 * format parts are capped. Spec mode follows JSON Schema's defaults so that every valid instance
 * is accepted (tests run the official test suite against it). In both modes keys come in
 * declared order, strings under pattern/format/enum use the canonical JSON spelling (no needless
 * escapes), numbers under bounds carry no exponent: narrowings, never widenings.
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/json_schema_impl.h"

/* ---- text helpers ---- */

void js_sb_add(js_sbuf *b, const char *s, size_t len) {
  if (b->oom) return;
  if (b->n + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + len + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
  b->p[b->n] = '\0';
}

void js_sb_str(js_sbuf *b, const char *s) { js_sb_add(b, s, strlen(s)); }

void js_sb_fmt(js_sbuf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (w > 0) js_sb_add(b, tmp, (size_t)w < sizeof(tmp) ? (size_t)w : sizeof(tmp) - 1);
}

void js_sb_literal(js_sbuf *b, const char *s, size_t len) {
  js_sb_str(b, "\"");
  for (size_t i = 0; i < len; i++) {
    const unsigned char c = (unsigned char)s[i];
    if (c == '"') js_sb_str(b, "\\\"");
    else if (c == '\\') js_sb_str(b, "\\\\");
    else if (c < 0x20 || c == 0x7F) js_sb_fmt(b, "\\x%02X", c);
    else js_sb_add(b, (const char *)&c, 1);
  }
  js_sb_str(b, "\"");
}

void js_sb_cp(js_sbuf *b, unsigned cp) {
  if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
    char ch = (char)cp;
    js_sb_add(b, &ch, 1);
  } else if (cp < 0x80) {
    js_sb_fmt(b, "\\x%02X", cp);
  } else if (cp <= 0xFFFF) {
    js_sb_fmt(b, "\\u%04X", cp);
  } else {
    js_sb_fmt(b, "\\U%08X", cp);
  }
}

/* The canonical JSON spelling of cp inside a string (as JSON.stringify writes it; \u00xx takes
 * hex digits of either case), as a GBNF expression. */
void js_sb_json_char(js_sbuf *b, unsigned cp) {
  static const char short_esc[] = {'b', 't', 'n', 0, 'f', 'r'}; /* 8..13 */
  if (cp == '"') js_sb_str(b, "\"\\\\\\\"\"");
  else if (cp == '\\') js_sb_str(b, "\"\\\\\\\\\"");
  else if (cp >= 8 && cp <= 13 && short_esc[cp - 8]) js_sb_fmt(b, "\"\\\\%c\"", short_esc[cp - 8]);
  else if (cp < 0x20) {
    const char hex[] = "0123456789abcdef";
    const char lo = hex[cp & 15];
    if (lo >= 'a') js_sb_fmt(b, "\"\\\\u00%c\" [%c%c]", (cp >> 4) ? '1' : '0', lo, lo - 32);
    else js_sb_fmt(b, "\"\\\\u00%c%c\"", (cp >> 4) ? '1' : '0', lo);
  } else {
    js_sb_str(b, "[");
    js_sb_cp(b, cp);
    js_sb_str(b, "]");
  }
}

int js_fail(js_conv *c, int rc, const char *fmt, ...) {
  if (c->rc == MLXR_OK) {
    c->rc = rc;
    if (c->err && c->err_len) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(c->err, c->err_len, fmt, ap);
      va_end(ap);
    }
  }
  return -1;
}

void js_post(js_conv *c, const char *kw) {
  if (!c->post || c->post_len == 0) return;
  const size_t n = strlen(c->post), k = strlen(kw);
  for (const char *p = c->post; (p = strstr(p, kw)) != NULL; p += k) {
    if ((p == c->post || p[-1] == ',') && (p[k] == ',' || p[k] == '\0')) return;
  }
  if (n + k + 2 > c->post_len) return;
  if (n) c->post[n] = ',';
  memcpy(c->post + n + (n ? 1 : 0), kw, k + 1);
}

void js_sb_rule(js_sbuf *b, int r) {
  static const char *const prim[] = {"value", "object", "array", "string", "number", "integer", "boolean", "null",
                                     "char", "char1"};
  if (r >= 0) js_sb_fmt(b, "r%d", r);
  else js_sb_str(b, prim[r - P_VALUE]);
}

int js_new_rule(js_conv *c) { return c->n_rules++; }

int js_begin_rule(js_conv *c) {
  int r = js_new_rule(c);
  js_sb_fmt(&c->out, "r%d ::= ", r);
  return r;
}

/* The shared rules. The exact kind is RFC 8259; spec mode is the same without \r in ws (any JSON
 * whitespace is fine, but JSON.stringify writes none); generation caps digits and whitespace. */
static void core_rules(js_sbuf *b, bool capped, bool exact_ws) {
  js_sb_str(b,
            "value ::= object | array | string | number | boolean | null\n"
            "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
            "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
            "string ::= \"\\\"\" char* \"\\\"\"\n"
            "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n"
            /* one code point for length counting: \u escapes of surrogates (pairs count as one
             * character, lone ones as one each, which a grammar cannot tell apart) are left out */
            "char1 ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ) )\n"
            "boolean ::= \"true\" | \"false\"\n"
            "null ::= \"null\"\n");
  if (capped) {
    js_sb_str(b, "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
                 "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
                 "ws ::= [ \\t\\n]{0,32}\n");
  } else {
    js_sb_str(b, "number ::= \"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n"
                 "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]* )\n");
    js_sb_str(b, exact_ws ? "ws ::= [ \\t\\n\\r]*\n" : "ws ::= [ \\t\\n\\r]*\n");
  }
}

static int gen(js_conv *c, const cJSON *s, int depth);

static bool is_annotation(const char *k) {
  static const char *const ann[] = {"title", "description", "default", "examples", "$comment", "deprecated",
                                    "readOnly", "writeOnly", "$schema", "$id", "id", "$defs", "definitions",
                                    "discriminator", "xml", "externalDocs", "example", "nullable", "$anchor",
                                    "contentEncoding", "contentMediaType", "contentSchema", "$vocabulary", "strict"};
  for (size_t i = 0; i < sizeof ann / sizeof ann[0]; i++) {
    if (strcmp(k, ann[i]) == 0) return true;
  }
  return false;
}

static cJSON *own(js_conv *c, cJSON *j) {
  if (!j) {
    js_fail(c, MLXR_ERR_NOMEM, "out of memory");
    return NULL;
  }
  cJSON_AddItemToArray(c->owned, j);
  return j;
}

/* ---- literals (const, enum) ---- */

static void literal_body(js_conv *c, js_sbuf *o, const cJSON *v, int depth) {
  if (depth > JS_MAX_DEPTH) {
    js_fail(c, MLXR_ERR_RANGE, "JSON schema: const/enum value nested too deeply");
    return;
  }
  if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
    const bool obj = cJSON_IsObject(v);
    js_sb_str(o, obj ? "\"{\" ws " : "\"[\" ws ");
    const cJSON *it;
    bool first = true;
    cJSON_ArrayForEach(it, v) {
      if (!first) js_sb_str(o, "\",\" ws ");
      first = false;
      if (obj) {
        cJSON *key = cJSON_CreateString(it->string);
        char *ktxt = key ? cJSON_PrintUnformatted(key) : NULL;
        cJSON_Delete(key);
        if (!ktxt) {
          js_fail(c, MLXR_ERR_NOMEM, "out of memory");
          return;
        }
        js_sb_literal(o, ktxt, strlen(ktxt));
        free(ktxt);
        js_sb_str(o, " ws \":\" ws ");
      }
      literal_body(c, o, it, depth + 1);
      js_sb_str(o, " ws ");
    }
    js_sb_str(o, obj ? "\"}\"" : "\"]\"");
    return;
  }
  char *txt = cJSON_PrintUnformatted(v);
  if (!txt) {
    js_fail(c, MLXR_ERR_NOMEM, "out of memory");
    return;
  }
  js_sb_literal(o, txt, strlen(txt));
  free(txt);
}

/* const / enum, members filtered by the other keywords of s. */
static int gen_enum(js_conv *c, const cJSON *s, const cJSON *list, bool is_const) {
  cJSON *rest = cJSON_Duplicate(s, 1);
  if (!rest) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  cJSON_DeleteItemFromObjectCaseSensitive(rest, "const");
  cJSON_DeleteItemFromObjectCaseSensitive(rest, "enum");
  js_sbuf body = {0};
  int n = 0;
  const cJSON *v;
  for (v = is_const ? list : list->child; v; v = is_const ? NULL : v->next) {
    char why[16];
    if (js_validate_node(c->root, rest, v, c->draft, why, sizeof why) != MLXR_OK) continue;
    if (n++) js_sb_str(&body, " | ");
    literal_body(c, &body, v, 0);
  }
  cJSON_Delete(rest);
  if (c->rc != MLXR_OK || n == 0) {
    free(body.p);
    return c->rc != MLXR_OK ? -1 : JS_EMPTY;
  }
  int r = js_begin_rule(c);
  js_sb_add(&c->out, body.p, body.n);
  js_sb_str(&c->out, "\n");
  free(body.p);
  return r;
}

/* ---- strings ---- */

static bool get_count(js_conv *c, const cJSON *s, const char *key, long *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
  if (!v) return true;
  const double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
  if (!(d >= 0) || d != floor(d)) {
    js_fail(c, MLXR_ERR_INVALID, "JSON schema: '%s' must be a non-negative integer", key);
    return false;
  }
  /* a count past LONG_MAX (1e308, or 1e999 read as infinity) is only ever "too many to write
   * out": the callers hand such bounds to the validator. Converting it to long would be undefined
   * behaviour (fuzz_ollama found it). */
  *out = d >= 9223372036854775807.0 ? LONG_MAX : (long)d;
  return true;
}

static int gen_string(js_conv *c, const cJSON *s) {
  long min = 0, max = -1;
  if (!get_count(c, s, "minLength", &min) || !get_count(c, s, "maxLength", &max)) return -1;
  if (max >= 0 && max < min) return JS_EMPTY;
  const bool lengths = min > 0 || max >= 0;
  const cJSON *pat = cJSON_GetObjectItemCaseSensitive(s, "pattern");
  const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(s, "format");
  if (pat && !cJSON_IsString(pat)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'pattern' must be a string");
  if (fmt && !cJSON_IsString(fmt)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'format' must be a string");
  /* both: the pattern's grammar, the format left to the validator; except email, whose format
   * grammar is a conservative subset of what email patterns (Zod's, ...) accept */
  const bool email = fmt && strcmp(fmt->valuestring, "email") == 0;
  if (pat && email) js_post(c, "pattern");
  if (pat && !email) {
    bool unsupported = false;
    int r = js_gen_pattern(c, pat->valuestring, &unsupported);
    if (c->rc != MLXR_OK) return -1;
    if (!unsupported) {
      if (lengths) {
        js_post(c, min > 0 ? "minLength" : "maxLength");
        if (min > 0 && max >= 0) js_post(c, "maxLength");
      }
      if (fmt) js_post(c, "format");
      return r;
    }
    js_post(c, "pattern");
  }
  if (fmt) {
    int r = js_gen_format(c, fmt->valuestring);
    if (r != -2) {
      if (lengths) {
        js_post(c, min > 0 ? "minLength" : "maxLength");
        if (min > 0 && max >= 0) js_post(c, "maxLength");
      }
      return r;
    }
  }
  if (!lengths) return P_STRING;
  if (min > JS_MAX_REPEAT) {
    js_post(c, "minLength");
    min = 0;
  }
  if (max > JS_MAX_REPEAT) {
    js_post(c, "maxLength");
    max = -1;
  }
  if (min == 0 && max < 0) return P_STRING;
  int r = js_begin_rule(c);
  if (max < 0) js_sb_fmt(&c->out, "\"\\\"\" char1{%ld,} \"\\\"\"\n", min);
  else js_sb_fmt(&c->out, "\"\\\"\" char1{%ld,%ld} \"\\\"\"\n", min, max);
  return r;
}

/* ---- arrays ---- */

static int gen_array(js_conv *c, const cJSON *s, int depth) {
  long min = 0, max = -1;
  if (!get_count(c, s, "minItems", &min) || !get_count(c, s, "maxItems", &max)) return -1;
  if (max >= 0 && max < min) return JS_EMPTY;
  if (min > JS_MAX_REPEAT) {
    js_post(c, "minItems");
    min = 0;
  }
  if (max > JS_MAX_REPEAT) {
    js_post(c, "maxItems");
    max = -1;
  }
  if (cJSON_GetObjectItemCaseSensitive(s, "uniqueItems") && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "uniqueItems"))) js_post(c, "uniqueItems");
  if (cJSON_GetObjectItemCaseSensitive(s, "contains")) js_post(c, "contains");
  const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
  const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalItems");
  const cJSON *tuple = NULL, *rest = NULL;
  if (prefix) {
    if (!cJSON_IsArray(prefix)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'prefixItems' must be a list");
    tuple = prefix;
    rest = items;
  } else if (cJSON_IsArray(items)) {
    tuple = items;
    rest = addl;
  } else {
    rest = items;
  }
  if (rest && !cJSON_IsObject(rest) && !cJSON_IsBool(rest)) {
    return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'items' must be a schema or a list of schemas");
  }
  const int k = tuple ? cJSON_GetArraySize(tuple) : 0;
  int *pos = malloc(((size_t)k + 1) * sizeof(int));
  if (!pos) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  int n_pos = 0; /* positions that can hold an item */
  const cJSON *it;
  cJSON_ArrayForEach(it, tuple) {
    int r = gen(c, it, depth + 1);
    if (r == -1) {
      free(pos);
      return -1;
    }
    if (r == JS_EMPTY) break; /* no item can be here, so none after */
    pos[n_pos++] = r;
  }
  int item = rest ? gen(c, rest, depth + 1) : P_VALUE;
  if (item == -1) {
    free(pos);
    return -1;
  }
  long hi = max;
  if (n_pos < k || item == JS_EMPTY) hi = (hi < 0 || hi > n_pos) ? n_pos : hi; /* no more than the positions */
  if (min > hi && hi >= 0) {
    free(pos);
    return JS_EMPTY;
  }
  if (k == 0 && min == 0 && hi < 0 && item == P_VALUE) {
    free(pos);
    return P_ARRAY;
  }
  int r = js_begin_rule(c);
  js_sbuf *o = &c->out;
  js_sb_str(o, "\"[\" ws ");
  /* positions 0 .. n_pos-1, each optional once min is reached, stopping at hi */
  int open = 0;
  long i = 0;
  for (; i < n_pos && (hi < 0 || i < hi); i++) {
    if (i >= min) {
      js_sb_str(o, "( ");
      open++;
    }
    if (i > 0) js_sb_str(o, "\",\" ws ");
    js_sb_rule(o, pos[i]);
    js_sb_str(o, " ws ");
  }
  /* the rest: items after position i */
  if (item != JS_EMPTY && (hi < 0 || i < hi)) {
    long lo_r = min > i ? min - i : 0;
    long hi_r = hi < 0 ? -1 : hi - i;
    if (i == 0) { /* first item has no comma */
      if (lo_r == 0) js_sb_str(o, "( ");
      js_sb_rule(o, item);
      js_sb_str(o, " ws ( \",\" ws ");
      js_sb_rule(o, item);
      const long l1 = lo_r > 0 ? lo_r - 1 : 0;
      if (hi_r < 0) js_sb_fmt(o, " ws ){%ld,}", l1);
      else js_sb_fmt(o, " ws ){%ld,%ld}", l1, hi_r - 1);
      if (lo_r == 0) js_sb_str(o, " )?");
    } else {
      js_sb_str(o, "( \",\" ws ");
      js_sb_rule(o, item);
      if (hi_r < 0) js_sb_fmt(o, " ws ){%ld,}", lo_r);
      else js_sb_fmt(o, " ws ){%ld,%ld}", lo_r, hi_r);
    }
  }
  for (int q = 0; q < open; q++) js_sb_str(o, " )?");
  js_sb_str(o, " \"]\"\n");
  free(pos);
  return r;
}

/* ---- objects ---- */

typedef struct cps {
  unsigned *cp;
  size_t n;
} cps;

static cps decode_key(const char *s) {
  cps k = {malloc((strlen(s) + 1) * sizeof(unsigned)), 0};
  if (!k.cp) return k;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    unsigned c = *p++;
    int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : 3;
    if (extra) c &= 0x3Fu >> extra;
    for (int e = 0; e < extra && (*p & 0xC0) == 0x80; e++) c = (c << 6) | (*p++ & 0x3F);
    k.cp[k.n++] = c;
  }
  return k;
}

/* Names (with the closing quote) that are none of keys[0..n), all sharing their first `at` code
 * points (already written). Escapes are not taken while a declared name could still follow
 * (a narrowing), except the short ones that cannot spell the next character. */
static int other_key(js_conv *c, cps *keys, int n, size_t at, int depth) {
  if (depth > 256) return js_fail(c, MLXR_ERR_RANGE, "JSON schema: property name too long");
  bool end_ok = true;
  unsigned next[256];
  int sub[256];
  int n_next = 0;
  for (int i = 0; i < n; i++) {
    if (keys[i].n == at) {
      end_ok = false;
      continue;
    }
    const unsigned ch = keys[i].cp[at];
    bool seen = false;
    for (int j = 0; j < n_next; j++) seen = seen || next[j] == ch;
    if (!seen && n_next < 256) next[n_next++] = ch;
  }
  for (int j = 0; j < n_next; j++) {
    /* the keys continuing with next[j], moved to the front */
    int m = 0;
    for (int i = 0; i < n; i++) {
      if (keys[i].n > at && keys[i].cp[at] == next[j]) {
        cps t = keys[m];
        keys[m] = keys[i];
        keys[i] = t;
        m++;
      }
    }
    sub[j] = other_key(c, keys, m, at + 1, depth + 1);
    if (sub[j] == -1) return -1;
  }
  int r = js_begin_rule(c);
  js_sbuf *o = &c->out;
  bool sep = false;
  if (end_ok) {
    js_sb_str(o, "\"\\\"\"");
    sep = true;
  }
  for (int j = 0; j < n_next; j++) {
    if (sep) js_sb_str(o, " | ");
    js_sb_json_char(o, next[j]);
    js_sb_fmt(o, " r%d", sub[j]);
    sep = true;
  }
  /* any other raw character, then anything */
  js_sb_str(o, sep ? " | [^\"\\\\\\x00-\\x1F" : "[^\"\\\\\\x00-\\x1F");
  for (int j = 0; j < n_next; j++) {
    if (next[j] >= 0x20 && next[j] != '"' && next[j] != '\\') js_sb_cp(o, next[j]);
  }
  const char *tail = c->spec ? "char*" : "char{0,63}"; /* generation: names are short */
  js_sb_fmt(o, "] %s \"\\\"\"", tail);
  static const struct {
    char e;
    unsigned cp;
  } esc[] = {{'"', '"'}, {'\\', '\\'}, {'/', '/'}, {'b', 8}, {'f', 12}, {'n', 10}, {'r', 13}, {'t', 9}};
  for (size_t e = 0; e < sizeof esc / sizeof esc[0]; e++) {
    bool spells = false;
    for (int j = 0; j < n_next; j++) spells = spells || next[j] == esc[e].cp;
    if (spells) continue;
    if (esc[e].e == '"' || esc[e].e == '\\') js_sb_fmt(o, " | \"\\\\\\%c\" %s \"\\\"\"", esc[e].e, tail);
    else js_sb_fmt(o, " | \"\\\\%c\" %s \"\\\"\"", esc[e].e, tail);
  }
  js_sb_str(o, "\n");
  return r;
}

/* A key rule: a JSON string that is none of the names of props (an object) nor of extra names. */
static int gen_other_key(js_conv *c, const cJSON *props, const cJSON *req) {
  int n = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, props) n++;
  cJSON_ArrayForEach(it, req) n++;
  if (n == 0 && c->spec) return P_STRING;
  cps *keys = calloc((size_t)n + 1, sizeof(cps));
  if (!keys) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  int k = 0;
  bool oom = false;
  cJSON_ArrayForEach(it, props) {
    keys[k] = decode_key(it->string);
    oom = oom || !keys[k++].cp;
  }
  cJSON_ArrayForEach(it, req) {
    if (!cJSON_IsString(it)) continue;
    keys[k] = decode_key(it->valuestring);
    oom = oom || !keys[k++].cp;
  }
  int r = oom ? js_fail(c, MLXR_ERR_NOMEM, "out of memory") : other_key(c, keys, k, 0, 0);
  for (int i = 0; i < k; i++) free(keys[i].cp);
  free(keys);
  if (r < 0) return r;
  int top = js_begin_rule(c);
  js_sb_fmt(&c->out, "\"\\\"\" r%d\n", r);
  return top;
}

static int gen_object(js_conv *c, const cJSON *s, int depth) {
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
  const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
  const cJSON *pprops = cJSON_GetObjectItemCaseSensitive(s, "patternProperties");
  if (props && !cJSON_IsObject(props)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'properties' must be an object");
  if (req && !cJSON_IsArray(req)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'required' must be a list");
  if (pprops && !cJSON_IsObject(pprops)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'patternProperties' must be an object");
  static const char *const leftovers[] = {"dependencies", "dependentRequired", "dependentSchemas"};
  for (size_t i = 0; i < sizeof leftovers / sizeof leftovers[0]; i++) {
    if (cJSON_GetObjectItemCaseSensitive(s, leftovers[i])) js_post(c, leftovers[i]);
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, req) {
    if (!cJSON_IsString(it)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'required' must list strings");
  }
  /* extra members: a value rule, P_VALUE, or -2 (none) */
  int extra = -2;
  if (!addl) extra = (c->spec || (!props && !req && !pprops)) ? P_VALUE : -2;
  else if (cJSON_IsBool(addl)) extra = cJSON_IsTrue(addl) ? P_VALUE : -2;
  else if (cJSON_IsObject(addl)) extra = gen(c, addl, depth + 1);
  else return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'additionalProperties' must be a boolean or a schema");
  if (extra == -1) return -1;
  if (extra == JS_EMPTY) extra = -2;
  const int n_props = props ? cJSON_GetArraySize(props) : 0;
  const int n_req = req ? cJSON_GetArraySize(req) : 0;
  if (n_props == 0 && n_req == 0 && extra == P_VALUE && !pprops) return P_OBJECT;
  /* declared members: properties, then required names that have no property schema */
  const int n_max = n_props + n_req;
  int *kv = malloc(((size_t)n_max + 1) * sizeof(int));
  bool *required = calloc((size_t)n_max + 1, sizeof(bool));
  if (!kv || !required) {
    free(kv);
    free(required);
    return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  int n = 0;
  bool empty = false;
  for (int pass = 0; pass < 2 && c->rc == MLXR_OK && !empty; pass++) {
    const cJSON *list = pass == 0 ? props : req;
    cJSON_ArrayForEach(it, list) {
      const char *name = pass == 0 ? it->string : it->valuestring;
      if (pass == 1 && cJSON_GetObjectItemCaseSensitive(props, name)) continue;
      bool is_req = false;
      const cJSON *q;
      cJSON_ArrayForEach(q, req) is_req = is_req || strcmp(q->valuestring, name) == 0;
      if (pprops && cJSON_GetArraySize(pprops) > 0) js_post(c, "patternProperties");
      int v;
      if (pass == 0) v = gen(c, it, depth + 1);
      else v = cJSON_IsFalse(addl) ? (pprops ? P_VALUE : JS_EMPTY) : extra == -2 ? P_VALUE : extra;
      if (v == -1) break;
      if (v == JS_EMPTY) {
        if (is_req) empty = true;
        continue; /* the member must be absent */
      }
      cJSON *key = cJSON_CreateString(name);
      char *ktxt = key ? cJSON_PrintUnformatted(key) : NULL;
      cJSON_Delete(key);
      if (!ktxt) {
        js_fail(c, MLXR_ERR_NOMEM, "out of memory");
        break;
      }
      kv[n] = js_begin_rule(c);
      js_sb_literal(&c->out, ktxt, strlen(ktxt));
      free(ktxt);
      js_sb_str(&c->out, " ws \":\" ws ");
      js_sb_rule(&c->out, v);
      js_sb_str(&c->out, "\n");
      required[n] = is_req;
      n++;
    }
  }
  /* extra members: not a declared name (+ additionalProperties), or a patternProperties name */
  int xkv[65];
  int n_x = 0;
  if (c->rc == MLXR_OK && !empty && extra != -2) {
    const cJSON *pnames = cJSON_GetObjectItemCaseSensitive(s, "propertyNames");
    int key;
    if (cJSON_IsObject(pnames) && n_props == 0 && n_req == 0) {
      /* no declared names: the extra names are exactly propertyNames' strings */
      cJSON *ks = own(c, cJSON_Duplicate(pnames, 1));
      if (ks && !cJSON_GetObjectItemCaseSensitive(ks, "type")) cJSON_AddStringToObject(ks, "type", "string");
      key = ks ? gen(c, ks, depth + 1) : -1;
      if (key == JS_EMPTY) key = -1, extra = -2;
    } else {
      if (pnames && !cJSON_IsTrue(pnames)) js_post(c, "propertyNames");
      key = gen_other_key(c, props, req);
    }
    if (key != -1 && extra != -2) {
      xkv[n_x] = js_begin_rule(c);
      js_sb_rule(&c->out, key);
      js_sb_str(&c->out, " ws \":\" ws ");
      js_sb_rule(&c->out, extra);
      js_sb_str(&c->out, "\n");
      n_x++;
    }
  }
  cJSON_ArrayForEach(it, pprops) {
    if (c->rc != MLXR_OK || empty) break;
    if (n_x == 64) {
      js_post(c, "patternProperties");
      break;
    }
    int v = gen(c, it, depth + 1);
    if (v == -1) break;
    if (v == JS_EMPTY) continue;
    bool unsupported = false;
    int key = js_gen_pattern(c, it->string, &unsupported);
    if (c->rc != MLXR_OK) break;
    if (unsupported) {
      key = P_STRING;
      js_post(c, "patternProperties");
    }
    if (extra == -2 || cJSON_GetArraySize(pprops) > 1) js_post(c, "patternProperties");
    xkv[n_x] = js_begin_rule(c);
    js_sb_rule(&c->out, key);
    js_sb_str(&c->out, " ws \":\" ws ");
    js_sb_rule(&c->out, v);
    js_sb_str(&c->out, "\n");
    n_x++;
  }
  if (c->rc != MLXR_OK || empty) {
    free(kv);
    free(required);
    return c->rc != MLXR_OK ? -1 : JS_EMPTY;
  }
  /* minProperties / maxProperties: a count of extra members when every declared one is required */
  long min_p = 0, max_p = -1;
  if (!get_count(c, s, "minProperties", &min_p) || !get_count(c, s, "maxProperties", &max_p)) {
    free(kv);
    free(required);
    return -1;
  }
  int n_required = 0;
  for (int k = 0; k < n; k++) n_required += required[k];
  long xlo = 0, xhi = -1; /* extra members allowed */
  if (min_p > 0 || max_p >= 0) {
    if (n_required == n && min_p <= JS_MAX_REPEAT && max_p <= JS_MAX_REPEAT) {
      xlo = min_p > n ? min_p - n : 0;
      xhi = max_p < 0 ? -1 : max_p - n;
      if ((max_p >= 0 && max_p < n) || (xhi >= 0 && xhi < xlo) || (n_x == 0 && xlo > 0)) {
        free(kv);
        free(required);
        return JS_EMPTY;
      }
    } else {
      if (min_p > 0) js_post(c, "minProperties");
      if (max_p >= 0) js_post(c, "maxProperties");
    }
  }
  /* F(i): members i.. with none written yet; R(i): members i.. after at least one */
  int nf, nr;
  if (n_x > 0 && (xlo > 0 || xhi >= 0)) { /* counted extra members */
    int x = js_begin_rule(c);
    for (int i = 0; i < n_x; i++) js_sb_fmt(&c->out, "%sr%d", i ? " | " : "", xkv[i]);
    js_sb_str(&c->out, "\n");
    char rep[64];
    nf = js_begin_rule(c);
    if (xhi == 0) js_sb_str(&c->out, "\"\"\n");
    else {
      if (xhi < 0) snprintf(rep, sizeof rep, "{%ld,}", xlo > 0 ? xlo - 1 : 0);
      else snprintf(rep, sizeof rep, "{%ld,%ld}", xlo > 0 ? xlo - 1 : 0, xhi - 1);
      js_sb_fmt(&c->out, "%sr%d ws ( \",\" ws r%d ws )%s%s\n", xlo > 0 ? "" : "( ", x, x, rep, xlo > 0 ? "" : " )?");
    }
    nr = js_begin_rule(c);
    if (xhi < 0) snprintf(rep, sizeof rep, "{%ld,}", xlo);
    else snprintf(rep, sizeof rep, "{%ld,%ld}", xlo, xhi);
    js_sb_fmt(&c->out, "( \",\" ws r%d ws )%s\n", x, rep);
  } else if (n_x == 0) {
    nf = js_begin_rule(c); /* empty rules: "" (a bare line break would continue the rule) */
    js_sb_str(&c->out, "\"\"\n");
    nr = js_begin_rule(c);
    js_sb_str(&c->out, "\"\"\n");
  } else {
    int x = js_begin_rule(c);
    for (int i = 0; i < n_x; i++) js_sb_fmt(&c->out, "%sr%d", i ? " | " : "", xkv[i]);
    js_sb_str(&c->out, "\n");
    nf = js_begin_rule(c);
    js_sb_fmt(&c->out, "( r%d ws ( \",\" ws r%d ws )* )?\n", x, x);
    nr = js_begin_rule(c);
    js_sb_fmt(&c->out, "( \",\" ws r%d ws )*\n", x);
  }
  for (int k = n - 1; k >= 0; k--) {
    int f = js_begin_rule(c);
    js_sb_fmt(&c->out, "r%d ws r%d", kv[k], nr);
    if (!required[k]) js_sb_fmt(&c->out, " | r%d", nf);
    js_sb_str(&c->out, "\n");
    int r = js_begin_rule(c);
    js_sb_fmt(&c->out, "\",\" ws r%d ws r%d", kv[k], nr);
    if (!required[k]) js_sb_fmt(&c->out, " | r%d", nr);
    js_sb_str(&c->out, "\n");
    nf = f;
    nr = r;
  }
  free(kv);
  free(required);
  int obj = js_begin_rule(c);
  js_sb_fmt(&c->out, "\"{\" ws r%d \"}\"\n", nf);
  return obj;
}

/* ---- types ---- */

static int gen_typed(js_conv *c, const cJSON *s, const char *type, int depth) {
  if (strcmp(type, "string") == 0) return gen_string(c, s);
  if (strcmp(type, "number") == 0) return js_gen_number(c, s);
  if (strcmp(type, "integer") == 0) return js_gen_integer(c, s);
  if (strcmp(type, "boolean") == 0) return P_BOOLEAN;
  if (strcmp(type, "null") == 0) return P_NULL;
  if (strcmp(type, "array") == 0) return gen_array(c, s, depth);
  if (strcmp(type, "object") == 0) return gen_object(c, s, depth);
  return js_fail(c, MLXR_ERR_INVALID, "JSON schema: unknown type '%.40s'", type);
}

/* An alternation rule over the rules that match something; JS_EMPTY if none does. */
static int gen_alt(js_conv *c, const int *alts, int n) {
  int m = 0, only = JS_EMPTY;
  for (int i = 0; i < n; i++) {
    if (alts[i] != JS_EMPTY) {
      m++;
      only = alts[i];
    }
  }
  if (m <= 1) return only;
  int r = js_begin_rule(c);
  bool sep = false;
  for (int i = 0; i < n; i++) {
    if (alts[i] == JS_EMPTY) continue;
    if (sep) js_sb_str(&c->out, " | ");
    js_sb_rule(&c->out, alts[i]);
    sep = true;
  }
  js_sb_str(&c->out, "\n");
  return r;
}

static bool has_any(const cJSON *s, const char *const *keys, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (cJSON_GetObjectItemCaseSensitive(s, keys[i])) return true;
  }
  return false;
}

static const char *const OBJECT_KW[] = {"properties", "required", "additionalProperties", "patternProperties",
                                        "minProperties", "maxProperties", "propertyNames", "dependencies",
                                        "dependentRequired", "dependentSchemas"};
static const char *const ARRAY_KW[] = {"items", "prefixItems", "additionalItems", "minItems", "maxItems",
                                       "uniqueItems", "contains"};
static const char *const STRING_KW[] = {"minLength", "maxLength", "pattern", "format"};

/* No `type`: spec mode takes every type (each with its keywords); generation mode the type the
 * keywords imply, or any value. */
static int gen_untyped(js_conv *c, const cJSON *s, int depth) {
  const bool o = has_any(s, OBJECT_KW, sizeof OBJECT_KW / sizeof OBJECT_KW[0]);
  const bool a = has_any(s, ARRAY_KW, sizeof ARRAY_KW / sizeof ARRAY_KW[0]);
  const bool st = has_any(s, STRING_KW, sizeof STRING_KW / sizeof STRING_KW[0]);
  const bool nu = js_has_numeric_keywords(s);
  if (!c->spec) {
    if (o + a + st + nu == 1) {
      if (o) return gen_object(c, s, depth);
      if (a) return gen_array(c, s, depth);
      if (st) return gen_string(c, s);
      return js_gen_number(c, s);
    }
    if (o + a + st + nu == 0) return P_VALUE;
  }
  if (!o && !a && !st && !nu) return P_VALUE;
  int alts[6];
  alts[0] = o ? gen_object(c, s, depth) : P_OBJECT;
  alts[1] = a ? gen_array(c, s, depth) : P_ARRAY;
  alts[2] = st ? gen_string(c, s) : P_STRING;
  alts[3] = nu ? js_gen_number(c, s) : P_NUMBER;
  alts[4] = P_BOOLEAN;
  alts[5] = P_NULL;
  for (int i = 0; i < 4; i++) {
    if (alts[i] == -1) return -1;
  }
  return gen_alt(c, alts, 6);
}

/* ---- $ref ---- */

/* The target of a JSON pointer reference within the document; NULL if it names nothing. */
const cJSON *js_resolve_pointer(const cJSON *root, const char *ref) {
  if (ref[0] != '#') return NULL;
  const cJSON *cur = root;
  const char *p = ref + 1;
  while (*p) {
    if (*p != '/') return NULL;
    p++;
    char tok[512];
    size_t n = 0;
    while (*p && *p != '/' && n + 1 < sizeof tok) {
      char ch = *p++;
      if (ch == '~' && (*p == '0' || *p == '1')) ch = *p++ == '0' ? '~' : '/';
      else if (ch == '%' && p[0] && p[1]) {
        char hx[3] = {p[0], p[1], 0};
        char *end;
        long v = strtol(hx, &end, 16);
        if (*end == '\0') {
          ch = (char)v;
          p += 2;
        }
      }
      tok[n++] = ch;
    }
    tok[n] = '\0';
    if (cJSON_IsArray(cur)) {
      char *end;
      long idx = strtol(tok, &end, 10);
      if (*end || idx < 0) return NULL;
      cur = cJSON_GetArrayItem(cur, (int)idx);
    } else if (cJSON_IsObject(cur)) {
      cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    } else {
      return NULL;
    }
    if (!cur) return NULL;
  }
  return cur;
}

static int gen_ref(js_conv *c, const char *ref, int depth) {
  for (int i = 0; i < c->n_memo; i++) {
    if (strcmp(c->memo[i].ref, ref) == 0) return c->memo[i].rule;
  }
  if (ref[0] != '#' || (ref[1] && ref[1] != '/')) {
    return js_fail(c, MLXR_ERR_UNSUPPORTED, "JSON schema: $ref '%.80s' is not supported (only JSON pointers into the same document, such as #/$defs/NAME)", ref);
  }
  const cJSON *target = js_resolve_pointer(c->root, ref);
  if (!target) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: $ref '%.80s' names nothing", ref);
  if (c->n_memo == c->cap_memo) {
    int cap = c->cap_memo ? c->cap_memo * 2 : 8;
    js_ref_memo *m = realloc(c->memo, (size_t)cap * sizeof(*m));
    if (!m) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
    c->memo = m;
    c->cap_memo = cap;
  }
  const int r = js_new_rule(c); /* named before the body so recursive references find it */
  c->memo[c->n_memo].ref = strdup(ref);
  if (!c->memo[c->n_memo].ref) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  c->memo[c->n_memo++].rule = r;
  int body = gen(c, target, depth + 1);
  if (body == -1) return -1;
  js_sb_fmt(&c->out, "r%d ::= ", r);
  if (body == JS_EMPTY) js_sb_str(&c->out, "[^\\x00-\\U0010FFFF]"); /* matches nothing */
  else js_sb_rule(&c->out, body);
  js_sb_str(&c->out, "\n");
  return r;
}

/* ---- allOf: merging ---- */

static bool json_equal(const cJSON *a, const cJSON *b) { return cJSON_Compare(a, b, true); }

/* Merge schema b into the object m (a copy being built). Keeps m valid for the grammar; what it
 * cannot intersect stays with the validator. */
static void merge_into(js_conv *c, cJSON *m, const cJSON *b, int depth) {
  if (depth > 8) {
    js_post(c, "allOf");
    return;
  }
  if (cJSON_IsTrue(b)) return;
  if (cJSON_IsFalse(b)) {
    cJSON_DeleteItemFromObjectCaseSensitive(m, "enum");
    cJSON_AddItemToObject(m, "enum", cJSON_CreateArray()); /* matches nothing */
    return;
  }
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(b, "$ref");
  if (cJSON_IsString(ref)) {
    const cJSON *t = js_resolve_pointer(c->root, ref->valuestring);
    if (!t) {
      js_fail(c, MLXR_ERR_UNSUPPORTED, "JSON schema: $ref '%.80s' cannot be resolved", ref->valuestring);
      return;
    }
    merge_into(c, m, t, depth + 1);
    if (c->draft <= 7) return;
  }
  const cJSON *kv;
  cJSON_ArrayForEach(kv, b) {
    const char *k = kv->string;
    if (is_annotation(k) || strcmp(k, "$ref") == 0) continue;
    if (strcmp(k, "allOf") == 0 && cJSON_IsArray(kv)) {
      const cJSON *x;
      cJSON_ArrayForEach(x, kv) merge_into(c, m, x, depth + 1);
      continue;
    }
    cJSON *have = cJSON_GetObjectItemCaseSensitive(m, k);
    if (!have) {
      cJSON_AddItemToObject(m, k, cJSON_Duplicate(kv, 1));
      continue;
    }
    if (json_equal(have, kv)) continue;
    if (strcmp(k, "properties") == 0 && cJSON_IsObject(kv)) {
      const cJSON *p;
      cJSON_ArrayForEach(p, kv) {
        cJSON *hp = cJSON_GetObjectItemCaseSensitive(have, p->string);
        if (!hp) {
          cJSON_AddItemToObject(have, p->string, cJSON_Duplicate(p, 1));
        } else if (!json_equal(hp, p)) {
          cJSON *both = cJSON_CreateObject();
          cJSON *all = cJSON_AddArrayToObject(both, "allOf");
          cJSON_AddItemToArray(all, cJSON_Duplicate(hp, 1));
          cJSON_AddItemToArray(all, cJSON_Duplicate(p, 1));
          cJSON_ReplaceItemInObjectCaseSensitive(have, p->string, both);
        }
      }
    } else if (strcmp(k, "required") == 0 && cJSON_IsArray(kv)) {
      const cJSON *x;
      cJSON_ArrayForEach(x, kv) {
        bool found = false;
        const cJSON *y;
        cJSON_ArrayForEach(y, have) found = found || json_equal(x, y);
        if (!found) cJSON_AddItemToArray(have, cJSON_Duplicate(x, 1));
      }
    } else if (strcmp(k, "type") == 0) {
      /* intersection of type sets ("integer" is within "number") */
      static const char *const types[] = {"string", "number", "integer", "boolean", "null", "array", "object"};
      cJSON *out = cJSON_CreateArray();
      for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        bool in_a = false, in_b = false;
        const cJSON *lists[2] = {have, kv};
        bool *in[2] = {&in_a, &in_b};
        for (int l = 0; l < 2; l++) {
          if (cJSON_IsString(lists[l])) {
            *in[l] = strcmp(lists[l]->valuestring, types[t]) == 0 ||
                     (t == 2 && strcmp(lists[l]->valuestring, "number") == 0);
          } else {
            const cJSON *y;
            cJSON_ArrayForEach(y, lists[l]) {
              if (cJSON_IsString(y)) {
                *in[l] = *in[l] || strcmp(y->valuestring, types[t]) == 0 ||
                         (t == 2 && strcmp(y->valuestring, "number") == 0);
              }
            }
          }
        }
        if (in_a && in_b) cJSON_AddItemToArray(out, cJSON_CreateString(types[t]));
      }
      if (cJSON_GetArraySize(out) == 0) {
        cJSON_AddItemToObject(m, "enum", cJSON_CreateArray());
      }
      cJSON_ReplaceItemInObjectCaseSensitive(m, "type", out);
    } else if (cJSON_IsNumber(kv) && cJSON_IsNumber(have) &&
               (strncmp(k, "min", 3) == 0 || strncmp(k, "max", 3) == 0 || strncmp(k, "exclusive", 9) == 0)) {
      const bool lower = strncmp(k, "min", 3) == 0 || strcmp(k, "exclusiveMinimum") == 0;
      const double a = have->valuedouble, v = kv->valuedouble;
      if (lower ? v > a : v < a) cJSON_SetNumberValue(have, v);
    } else if ((strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0) && cJSON_IsArray(kv) && cJSON_IsArray(have)) {
      /* (A1 | A2) and (B1 | B2): the pairs, if there are few */
      const int na = cJSON_GetArraySize(have), nb = cJSON_GetArraySize(kv);
      js_post(c, k);
      if (na * nb > 64) continue;
      cJSON *pairs = cJSON_CreateArray();
      const cJSON *x, *y;
      cJSON_ArrayForEach(x, have) {
        cJSON_ArrayForEach(y, kv) {
          cJSON *both = cJSON_CreateObject();
          cJSON *all = cJSON_AddArrayToObject(both, "allOf");
          cJSON_AddItemToArray(all, cJSON_Duplicate(x, 1));
          cJSON_AddItemToArray(all, cJSON_Duplicate(y, 1));
          cJSON_AddItemToArray(pairs, both);
        }
      }
      cJSON_ReplaceItemInObjectCaseSensitive(m, k, pairs);
    } else if (strcmp(k, "enum") == 0 && cJSON_IsArray(kv) && cJSON_IsArray(have)) {
      cJSON *out = cJSON_CreateArray();
      const cJSON *x, *y;
      cJSON_ArrayForEach(x, have) {
        bool found = false;
        cJSON_ArrayForEach(y, kv) found = found || json_equal(x, y);
        if (found) cJSON_AddItemToArray(out, cJSON_Duplicate(x, 1));
      }
      cJSON_ReplaceItemInObjectCaseSensitive(m, "enum", out);
    } else if ((strcmp(k, "items") == 0 || strcmp(k, "additionalProperties") == 0) && cJSON_IsObject(kv) &&
               cJSON_IsObject(have)) {
      cJSON *both = cJSON_CreateObject();
      cJSON *all = cJSON_AddArrayToObject(both, "allOf");
      cJSON_AddItemToArray(all, cJSON_Duplicate(have, 1));
      cJSON_AddItemToArray(all, cJSON_Duplicate(kv, 1));
      cJSON_ReplaceItemInObjectCaseSensitive(m, k, both);
    } else if (strcmp(k, "additionalProperties") == 0 && (cJSON_IsFalse(kv) || cJSON_IsFalse(have))) {
      cJSON_ReplaceItemInObjectCaseSensitive(m, k, cJSON_CreateFalse());
    } else {
      js_post(c, k); /* kept from the first schema; the validator checks the second */
    }
  }
}

/* additionalProperties of one member sees only that member's own properties: names the merge
 * declared elsewhere are dropped (false) or must also match its schema. */
static void restrict_names(js_conv *c, cJSON *m, const cJSON *mem, int depth) {
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(mem, "$ref");
  if (cJSON_IsString(ref)) {
    const cJSON *t = js_resolve_pointer(c->root, ref->valuestring);
    if (depth > 8) js_post(c, "additionalProperties");
    else if (t && t != mem) restrict_names(c, m, t, depth + 1);
  }
  const cJSON *ap = cJSON_GetObjectItemCaseSensitive(mem, "additionalProperties");
  if (!ap || cJSON_IsTrue(ap)) return;
  if (cJSON_GetObjectItemCaseSensitive(mem, "patternProperties")) {
    js_post(c, "additionalProperties");
    return;
  }
  const cJSON *own_props = cJSON_GetObjectItemCaseSensitive(mem, "properties");
  cJSON *mp = cJSON_GetObjectItemCaseSensitive(m, "properties");
  for (cJSON *p = mp ? mp->child : NULL, *next; p; p = next) {
    next = p->next;
    if (cJSON_GetObjectItemCaseSensitive(own_props, p->string)) continue;
    if (cJSON_IsFalse(ap)) {
      cJSON_Delete(cJSON_DetachItemViaPointer(mp, p));
    } else {
      cJSON *both = cJSON_CreateObject();
      cJSON *all = cJSON_AddArrayToObject(both, "allOf");
      cJSON_AddItemToArray(all, cJSON_Duplicate(p, 1));
      cJSON_AddItemToArray(all, cJSON_Duplicate(ap, 1));
      cJSON_ReplaceItemViaPointer(mp, p, both);
    }
  }
}

/* allOf members (and, from 2019-09 on, $ref's siblings) merged into one schema owned by c. */
static const cJSON *merged(js_conv *c, const cJSON *s) {
  cJSON *m = own(c, cJSON_CreateObject());
  if (!m) return NULL;
  cJSON *copy = cJSON_Duplicate(s, 1);
  if (!copy) {
    js_fail(c, MLXR_ERR_NOMEM, "out of memory");
    return NULL;
  }
  cJSON *all = cJSON_DetachItemFromObjectCaseSensitive(copy, "allOf");
  merge_into(c, m, copy, 0);
  const cJSON *x;
  cJSON_ArrayForEach(x, all) merge_into(c, m, x, 1);
  restrict_names(c, m, copy, 0);
  cJSON_ArrayForEach(x, all) restrict_names(c, m, x, 0);
  cJSON_Delete(all);
  cJSON_Delete(copy);
  return m;
}

/* ---- the walk ---- */

static bool has_constraints(const cJSON *s, const char *except1, const char *except2) {
  const cJSON *kv;
  cJSON_ArrayForEach(kv, s) {
    if (is_annotation(kv->string) || strcmp(kv->string, except1) == 0 || strcmp(kv->string, except2) == 0) continue;
    return true;
  }
  return false;
}

static int gen(js_conv *c, const cJSON *s, int depth) {
  if (c->rc != MLXR_OK) return -1;
  if (depth > JS_MAX_DEPTH) return js_fail(c, MLXR_ERR_RANGE, "JSON schema nested deeper than %d", JS_MAX_DEPTH);
  if (cJSON_IsTrue(s)) return P_VALUE;
  if (cJSON_IsFalse(s)) return JS_EMPTY;
  if (!cJSON_IsObject(s)) return js_fail(c, MLXR_ERR_INVALID, "a JSON schema must be an object or a boolean");
  static const char *const refused[] = {"$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems"};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    if (cJSON_GetObjectItemCaseSensitive(s, refused[i])) {
      return js_fail(c, MLXR_ERR_UNSUPPORTED, "JSON schema keyword '%s' is not supported", refused[i]);
    }
  }
  static const char *const left[] = {"not", "if", "then", "else"};
  for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) {
    if (cJSON_GetObjectItemCaseSensitive(s, left[i])) js_post(c, left[i]);
  }
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
  if (ref) {
    if (!cJSON_IsString(ref)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: '$ref' must be a string");
    if (c->draft <= 7 || !has_constraints(s, "$ref", "")) return gen_ref(c, ref->valuestring, depth);
    if (ref->valuestring[0] != '#') return gen_ref(c, ref->valuestring, depth); /* the error */
    const cJSON *m = merged(c, s);
    return m ? gen(c, m, depth + 1) : -1;
  }
  const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
  if (all) {
    if (!cJSON_IsArray(all) || cJSON_GetArraySize(all) == 0) {
      return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'allOf' must be a non-empty list");
    }
    if (cJSON_GetArraySize(all) == 1 && !has_constraints(s, "allOf", "")) return gen(c, all->child, depth + 1);
    const cJSON *m = merged(c, s);
    return m ? gen(c, m, depth + 1) : -1;
  }
  const cJSON *cst = cJSON_GetObjectItemCaseSensitive(s, "const");
  if (cst) return gen_enum(c, s, cst, true);
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
  if (en) {
    if (!cJSON_IsArray(en)) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'enum' must be a list");
    return gen_enum(c, s, en, false);
  }
  const char *combo = cJSON_GetObjectItemCaseSensitive(s, "anyOf") ? "anyOf"
                      : cJSON_GetObjectItemCaseSensitive(s, "oneOf") ? "oneOf" : NULL;
  if (combo) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(s, combo);
    const int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    if (n == 0) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: '%s' must be a non-empty list", combo);
    const char *other = combo[0] == 'a' ? "oneOf" : "anyOf";
    if (cJSON_GetObjectItemCaseSensitive(s, other)) js_post(c, other);
    if (combo[0] == 'o' && n > 1) js_post(c, "oneOf");
    /* siblings constrain every branch: branch_i becomes allOf [siblings, branch_i] */
    cJSON *sib = NULL;
    if (has_constraints(s, combo, other)) {
      sib = own(c, cJSON_Duplicate(s, 1));
      if (!sib) return -1;
      cJSON_DeleteItemFromObjectCaseSensitive(sib, combo);
      cJSON_DeleteItemFromObjectCaseSensitive(sib, other);
      cJSON_DeleteItemFromObjectCaseSensitive(sib, "$defs");
      cJSON_DeleteItemFromObjectCaseSensitive(sib, "definitions");
    }
    int *alts = malloc((size_t)n * sizeof(int));
    if (!alts) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, list) {
      const cJSON *branch = v;
      if (sib) {
        cJSON *both = own(c, cJSON_CreateObject());
        cJSON *arr = both ? cJSON_AddArrayToObject(both, "allOf") : NULL;
        if (!arr) {
          alts[k++] = -1;
          break;
        }
        cJSON_AddItemToArray(arr, cJSON_Duplicate(sib, 1));
        cJSON_AddItemToArray(arr, cJSON_Duplicate(v, 1));
        branch = both;
      }
      if ((alts[k++] = gen(c, branch, depth + 1)) == -1) break;
    }
    int r = c->rc == MLXR_OK ? gen_alt(c, alts, n) : -1;
    free(alts);
    return r;
  }
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
  if (cJSON_IsString(type)) return gen_typed(c, s, type->valuestring, depth);
  if (cJSON_IsArray(type)) {
    const int n = cJSON_GetArraySize(type);
    if (n == 0) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'type' is an empty list");
    int *alts = malloc((size_t)n * sizeof(int));
    if (!alts) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
    bool has_number = false;
    const cJSON *v;
    cJSON_ArrayForEach(v, type) has_number = has_number || (cJSON_IsString(v) && strcmp(v->valuestring, "number") == 0);
    int k = 0;
    cJSON_ArrayForEach(v, type) {
      if (!cJSON_IsString(v)) {
        alts[k++] = js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'type' must list type names");
        break;
      }
      if (has_number && strcmp(v->valuestring, "integer") == 0) { /* within number */
        alts[k++] = JS_EMPTY;
        continue;
      }
      if ((alts[k++] = gen_typed(c, s, v->valuestring, depth)) == -1) break;
    }
    int r = c->rc == MLXR_OK ? gen_alt(c, alts, k) : -1;
    free(alts);
    return r;
  }
  if (type) return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'type' must be a name or a list of names");
  return gen_untyped(c, s, depth);
}

/* ---- public ---- */

char *mlxr_json_grammar_gbnf(mlxr_json_grammar_kind kind) {
  js_sbuf b = {0};
  if (kind == MLXR_JSON_GRAMMAR_OBJECT) js_sb_str(&b, "root ::= object\n");
  else if (kind == MLXR_JSON_GRAMMAR_VALUE) js_sb_str(&b, "root ::= value\n");
  else js_sb_str(&b, "root ::= ws value ws\n");
  core_rules(&b, false, kind == MLXR_JSON_GRAMMAR_EXACT);
  if (kind != MLXR_JSON_GRAMMAR_EXACT) { /* generation: whitespace limited (digits as before) */
    char *ws = strstr(b.p ? b.p : "", "ws ::= ");
    if (ws) {
      b.n = (size_t)(ws - b.p);
      b.p[b.n] = '\0';
      js_sb_str(&b, "ws ::= [ \\t\\n]{0,32}\n");
    }
  }
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

mlxr_json_schema_params mlxr_json_schema_default_params(void) {
  mlxr_json_schema_params p = {.spec_defaults = false, .draft = 0};
  return p;
}

int mlxr_json_schema_draft(const void *schema_cjson) {
  const cJSON *sv = cJSON_GetObjectItemCaseSensitive((const cJSON *)schema_cjson, "$schema");
  if (!cJSON_IsString(sv)) return 2020;
  const char *u = sv->valuestring;
  if (strstr(u, "draft-03") || strstr(u, "draft-04")) return 4;
  if (strstr(u, "draft-06")) return 6;
  if (strstr(u, "draft-07")) return 7;
  if (strstr(u, "2019-09")) return 2019;
  return 2020;
}

/* Well-formed UTF-8 (lead byte, then its continuation bytes), as the grammar parser reads it. */
static bool utf8_ok(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    const int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0) return false;
    for (int i = 1; i < n; i++)
      if ((p[i] & 0xC0) != 0x80) return false;
    p += n;
  }
  return true;
}

/* Strings and member names end up in grammar literals, which must be UTF-8: a request body was
 * checked before it was parsed, but a schema handed to this API directly may hold any bytes. */
static bool all_utf8(const cJSON *v) {
  if (v->string && !utf8_ok(v->string)) return false;
  if (cJSON_IsString(v) && v->valuestring && !utf8_ok(v->valuestring)) return false;
  for (const cJSON *it = v->child; it; it = it->next)
    if (!all_utf8(it)) return false;
  return true;
}

int mlxr_json_schema_convert(const void *schema_cjson, const mlxr_json_schema_params *params, char **gbnf,
                             char *post, size_t post_len, char *err, size_t err_len) {
  *gbnf = NULL;
  if (post && post_len) post[0] = '\0';
  if (!all_utf8(schema_cjson))
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "JSON schema: a string or member name is not valid UTF-8");
  mlxr_json_schema_params p = params ? *params : mlxr_json_schema_default_params();
  const cJSON *schema = schema_cjson;
  js_conv *c = calloc(1, sizeof(*c));
  if (!c) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  c->root = schema;
  c->spec = p.spec_defaults;
  c->draft = p.draft ? p.draft : mlxr_json_schema_draft(schema);
  c->post = post;
  c->post_len = post_len;
  c->rc = MLXR_OK;
  c->err = err;
  c->err_len = err_len;
  c->owned = cJSON_CreateArray();
  memset(c->zeros, '0', JS_MAX_DIGITS);
  memset(c->nines, '9', JS_MAX_DIGITS);
  if (!c->owned) js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  int top = gen(c, schema, 0);
  if (top == JS_EMPTY && c->rc == MLXR_OK) {
    js_fail(c, MLXR_ERR_INVALID, "JSON schema: no value satisfies the schema");
  }
  if (top != -1 && c->rc == MLXR_OK) {
    js_sb_str(&c->out, "root ::= ");
    js_sb_rule(&c->out, top);
    js_sb_str(&c->out, "\n");
    core_rules(&c->out, !c->spec, false);
    if (c->out.oom) js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  if (c->rc == MLXR_OK && c->n_memo > 0) {
    /* A $ref that comes back to itself before anything is written ({"$ref": "#"}, or A -> B -> A
     * through anyOf) makes a left-recursive grammar, which no matcher can run and the grammar
     * parser refuses (fuzz_json_schema found one). Such a schema is refused here, with the
     * parser's reason; other recursion (through objects and arrays) parses. */
    mlxr_grammar *g = NULL;
    char gerr[256] = "";
    int prc = mlxr_grammar_parse(c->out.p, c->out.n, NULL, &g, gerr, sizeof gerr);
    mlxr_grammar_free(g);
    if (prc == MLXR_ERR_NOMEM) js_fail(c, MLXR_ERR_NOMEM, "out of memory");
    else if (prc != MLXR_OK)
      js_fail(c, MLXR_ERR_UNSUPPORTED, "JSON schema: a $ref refers back to itself before any value is written: %s", gerr);
  }
  for (int i = 0; i < c->n_memo; i++) free(c->memo[i].ref);
  free(c->memo);
  cJSON_Delete(c->owned);
  int rc = c->rc;
  if (rc != MLXR_OK) free(c->out.p);
  else *gbnf = c->out.p;
  free(c);
  return rc;
}

int mlxr_json_schema_to_gbnf(const void *schema_cjson, char **gbnf, char *err, size_t err_len) {
  return mlxr_json_schema_convert(schema_cjson, NULL, gbnf, NULL, 0, err, err_len);
}

int mlxr_json_schema_text_to_gbnf(const char *schema, size_t len, char **gbnf, char *err, size_t err_len) {
  *gbnf = NULL;
  cJSON *j = cJSON_ParseWithLength(schema, len);
  if (!j) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "the JSON schema is not valid JSON");
  int rc = mlxr_json_schema_to_gbnf(j, gbnf, err, err_len);
  cJSON_Delete(j);
  return rc;
}
