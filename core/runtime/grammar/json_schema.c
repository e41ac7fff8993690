/*
 * json_schema.c: JSON grammars for constrained decoding: the generic JSON grammar (json_object
 * mode, and an exact RFC 8259 variant that tests compare with a real JSON parser) and JSON Schema
 * -> GBNF conversion in the manner of llama.cpp's json-schema-to-grammar.
 *
 * Every schema node becomes a rule rN; shared primitives (value, object, array, string, number,
 * integer, boolean, null, ws) are appended once at the end. Supported:
 *   type (a name or a list), enum, const (objects and arrays with any whitespace), anyOf / oneOf (oneOf's exclusivity is not enforced),
 *   allOf with a single member, $ref to "#", "#/$defs/NAME" or "#/definitions/NAME" (recursive
 *   references work: each target becomes one named rule), {} / true (any value);
 *   object: properties in their declared order (the output keeps that order; optional ones may be
 *     left out), required, additionalProperties (false by default when properties are given, as in
 *     llama.cpp; true or a schema allow extra members after the declared ones, whose keys are not
 *     checked against the declared names);
 *   array: items (one schema), minItems, maxItems (<= 2000);
 *   string: minLength, maxLength (<= 2000, counted in code points; such strings cannot use \\u
 *     escapes of surrogates, since a pair counts as one character); format is ignored (JSON Schema
 *     treats it as an annotation);
 *   number, integer (at most 16 digits, no fraction or exponent), boolean, null.
 * Keywords that constrain values in ways the grammar does not express (pattern, minimum, maximum,
 * multipleOf, uniqueItems, not, if/then/else, prefixItems, ...) are refused with
 * MLXR_ERR_UNSUPPORTED naming the keyword, so a request is never silently under-constrained.
 * Whitespace in generated output is limited (ws ::= [ \t\n]{0,32}) so a model cannot pad forever.
 */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar.h"

#define MAX_SCHEMA_DEPTH 64
#define MAX_REPEAT_BOUND 2000

/* The primitives; ws is appended separately (limited or exact). */
static const char JSON_CORE[] =
    "value ::= object | array | string | number | boolean | null\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string ::= \"\\\"\" char* \"\\\"\"\n"
    "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )\n"
    /* one code point for length counting: \\u escapes of surrogates (pairs count as one character,
     * lone ones as one each, which a grammar cannot tell apart) are left out */
    "char1 ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} ) )\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n"
    "integer ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n";
static const char WS_LIMITED[] = "ws ::= [ \\t\\n]{0,32}\n";
static const char WS_EXACT[] = "ws ::= [ \\t\\n\\r]*\n";

typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len) {
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

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (w > 0) sb_add(b, tmp, (size_t)w < sizeof(tmp) ? (size_t)w : sizeof(tmp) - 1);
}

/* A GBNF string literal matching exactly the bytes s[0..len). */
static void sb_literal(sbuf *b, const char *s, size_t len) {
  sb_str(b, "\"");
  for (size_t i = 0; i < len; i++) {
    const unsigned char c = (unsigned char)s[i];
    if (c == '"') sb_str(b, "\\\"");
    else if (c == '\\') sb_str(b, "\\\\");
    else if (c < 0x20 || c == 0x7F) sb_fmt(b, "\\x%02X", c);
    else sb_add(b, (const char *)&c, 1);
  }
  sb_str(b, "\"");
}

typedef struct ref_memo {
  char *ref;
  int rule;
} ref_memo;

typedef struct conv {
  sbuf out;
  const cJSON *root;
  int n_rules;
  ref_memo *memo;
  int n_memo, cap_memo;
  int rc;
  char *err;
  size_t err_len;
} conv;

static int cfail(conv *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(conv *c, int rc, const char *fmt, ...) {
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

/* A rule name: rN for generated rules, or a primitive's name (negative ids). */
enum { P_VALUE = -10, P_OBJECT, P_ARRAY, P_STRING, P_NUMBER, P_INTEGER, P_BOOLEAN, P_NULL };

static void sb_rule(sbuf *b, int r) {
  static const char *const prim[] = {"value", "object", "array", "string", "number", "integer", "boolean", "null"};
  if (r >= 0) sb_fmt(b, "r%d", r);
  else sb_str(b, prim[r - P_VALUE]);
}

static int new_rule(conv *c) { return c->n_rules++; }

/* Starts "rN ::= " for a fresh rule and returns N. */
static int begin_rule(conv *c) {
  int r = new_rule(c);
  sb_fmt(&c->out, "r%d ::= ", r);
  return r;
}

static int gen(conv *c, const cJSON *s, int depth);

/* The body of a rule matching the JSON value v: scalars as their compact text, objects and arrays
 * member by member with whitespace allowed between tokens (keys in v's order). */
static void literal_body(conv *c, const cJSON *v, int depth) {
  if (depth > MAX_SCHEMA_DEPTH) {
    cfail(c, MLXR_ERR_RANGE, "JSON schema: const/enum value nested too deeply");
    return;
  }
  if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
    const bool obj = cJSON_IsObject(v);
    sb_str(&c->out, obj ? "\"{\" ws " : "\"[\" ws ");
    const cJSON *it;
    bool first = true;
    cJSON_ArrayForEach(it, v) {
      if (!first) sb_str(&c->out, "\",\" ws ");
      first = false;
      if (obj) {
        cJSON *key = cJSON_CreateString(it->string);
        char *ktxt = key ? cJSON_PrintUnformatted(key) : NULL;
        cJSON_Delete(key);
        if (!ktxt) {
          cfail(c, MLXR_ERR_NOMEM, "out of memory");
          return;
        }
        sb_literal(&c->out, ktxt, strlen(ktxt));
        free(ktxt);
        sb_str(&c->out, " ws \":\" ws ");
      }
      literal_body(c, it, depth + 1);
      sb_str(&c->out, " ws ");
    }
    sb_str(&c->out, obj ? "\"}\"" : "\"]\"");
    return;
  }
  char *txt = cJSON_PrintUnformatted(v);
  if (!txt) {
    cfail(c, MLXR_ERR_NOMEM, "out of memory");
    return;
  }
  sb_literal(&c->out, txt, strlen(txt));
  free(txt);
}

/* A rule matching the JSON value v (const, or one enum member). */
static int gen_literal(conv *c, const cJSON *v) {
  int r = begin_rule(c);
  literal_body(c, v, 0);
  sb_str(&c->out, "\n");
  return c->rc == MLXR_OK ? r : -1;
}

static bool get_count(conv *c, const cJSON *s, const char *key, long *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
  if (!v) return true;
  if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != (double)(long)v->valuedouble) {
    cfail(c, MLXR_ERR_INVALID, "JSON schema: '%s' must be a non-negative integer", key);
    return false;
  }
  if (v->valuedouble > MAX_REPEAT_BOUND) {
    cfail(c, MLXR_ERR_UNSUPPORTED, "JSON schema: '%s' above %d is not supported", key, MAX_REPEAT_BOUND);
    return false;
  }
  *out = (long)v->valuedouble;
  return true;
}

static int gen_string(conv *c, const cJSON *s) {
  long min = 0, max = -1;
  if (!get_count(c, s, "minLength", &min) || !get_count(c, s, "maxLength", &max)) return -1;
  if (max >= 0 && max < min) return cfail(c, MLXR_ERR_INVALID, "JSON schema: maxLength < minLength");
  if (min == 0 && max < 0) return P_STRING;
  int r = begin_rule(c);
  if (max < 0) sb_fmt(&c->out, "\"\\\"\" char1{%ld,} \"\\\"\"\n", min);
  else sb_fmt(&c->out, "\"\\\"\" char1{%ld,%ld} \"\\\"\"\n", min, max);
  return r;
}

static int gen_array(conv *c, const cJSON *s, int depth) {
  long min = 0, max = -1;
  if (!get_count(c, s, "minItems", &min) || !get_count(c, s, "maxItems", &max)) return -1;
  if (max >= 0 && max < min) return cfail(c, MLXR_ERR_INVALID, "JSON schema: maxItems < minItems");
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
  if (items && cJSON_IsArray(items)) {
    return cfail(c, MLXR_ERR_UNSUPPORTED, "JSON schema: 'items' as a list (tuples) is not supported");
  }
  int item = P_VALUE;
  if (items) item = gen(c, items, depth + 1);
  if (item == -1) return -1;
  if (min == 0 && max < 0 && item == P_VALUE) return P_ARRAY;
  int r = begin_rule(c);
  if (max == 0) {
    sb_str(&c->out, "\"[\" ws \"]\"\n");
    return r;
  }
  sb_str(&c->out, "\"[\" ws ");
  if (min == 0) sb_str(&c->out, "( ");
  sb_rule(&c->out, item);
  sb_str(&c->out, " ws ( \",\" ws ");
  sb_rule(&c->out, item);
  const long lo = min > 0 ? min - 1 : 0;
  if (max < 0) sb_fmt(&c->out, " ws ){%ld,}", lo);
  else sb_fmt(&c->out, " ws ){%ld,%ld}", lo, max - 1);
  if (min == 0) sb_str(&c->out, " )?");
  sb_str(&c->out, " \"]\"\n");
  return r;
}

static int gen_object(conv *c, const cJSON *s, int depth) {
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
  const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
  if (props && !cJSON_IsObject(props)) return cfail(c, MLXR_ERR_INVALID, "JSON schema: 'properties' must be an object");
  if (req && !cJSON_IsArray(req)) return cfail(c, MLXR_ERR_INVALID, "JSON schema: 'required' must be a list");
  const int n = props ? cJSON_GetArraySize(props) : 0;
  /* extra members: a schema rule, P_VALUE, or none (-2) */
  int extra = -2;
  if (!addl) extra = props ? -2 : P_VALUE;
  else if (cJSON_IsBool(addl)) extra = cJSON_IsTrue(addl) ? P_VALUE : -2;
  else if (cJSON_IsObject(addl)) extra = gen(c, addl, depth + 1);
  else return cfail(c, MLXR_ERR_INVALID, "JSON schema: 'additionalProperties' must be a boolean or a schema");
  if (extra == -1) return -1;
  if (n == 0 && extra == P_VALUE && (!req || cJSON_GetArraySize(req) == 0)) return P_OBJECT;
  const cJSON *it;
  cJSON_ArrayForEach(it, req) {
    if (!cJSON_IsString(it)) return cfail(c, MLXR_ERR_INVALID, "JSON schema: 'required' must list strings");
    if (!cJSON_GetObjectItemCaseSensitive(props, it->valuestring)) {
      return cfail(c, MLXR_ERR_UNSUPPORTED, "JSON schema: required property '%s' is not in 'properties'",
                   it->valuestring);
    }
  }
  /* member value rules, then key-value rules kv_i ::= "\"key\"" ws ":" ws value_i */
  int *kv = malloc(((size_t)n + 1) * sizeof(int));
  bool *required = calloc((size_t)n + 1, sizeof(bool));
  if (!kv || !required) {
    free(kv);
    free(required);
    return cfail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  int i = 0;
  cJSON_ArrayForEach(it, props) {
    int v = gen(c, it, depth + 1);
    if (v == -1) break;
    cJSON *key = cJSON_CreateString(it->string);
    char *ktxt = key ? cJSON_PrintUnformatted(key) : NULL;
    cJSON_Delete(key);
    if (!ktxt) {
      cfail(c, MLXR_ERR_NOMEM, "out of memory");
      break;
    }
    kv[i] = begin_rule(c);
    sb_literal(&c->out, ktxt, strlen(ktxt));
    free(ktxt);
    sb_str(&c->out, " ws \":\" ws ");
    sb_rule(&c->out, v);
    sb_str(&c->out, "\n");
    const cJSON *r;
    cJSON_ArrayForEach(r, req) {
      if (strcmp(r->valuestring, it->string) == 0) required[i] = true;
    }
    i++;
  }
  if (c->rc != MLXR_OK) {
    free(kv);
    free(required);
    return -1;
  }
  /* F(i): members i.. with none written yet; R(i): members i.. after at least one */
  int nf, nr;
  if (extra == -2) {
    nf = begin_rule(c); /* empty rules: "" (a bare line break would continue the rule) */
    sb_str(&c->out, "\"\"\n");
    nr = begin_rule(c);
    sb_str(&c->out, "\"\"\n");
  } else {
    int xkv = begin_rule(c);
    sb_str(&c->out, "string ws \":\" ws ");
    sb_rule(&c->out, extra);
    sb_str(&c->out, "\n");
    nf = begin_rule(c);
    sb_fmt(&c->out, "( r%d ws ( \",\" ws r%d ws )* )?\n", xkv, xkv);
    nr = begin_rule(c);
    sb_fmt(&c->out, "( \",\" ws r%d ws )*\n", xkv);
  }
  for (int k = n - 1; k >= 0; k--) {
    int f = begin_rule(c);
    sb_fmt(&c->out, "r%d ws r%d", kv[k], nr);
    if (!required[k]) sb_fmt(&c->out, " | r%d", nf);
    sb_str(&c->out, "\n");
    int r = begin_rule(c);
    sb_fmt(&c->out, "\",\" ws r%d ws r%d", kv[k], nr);
    if (!required[k]) sb_fmt(&c->out, " | r%d", nr);
    sb_str(&c->out, "\n");
    nf = f;
    nr = r;
  }
  free(kv);
  free(required);
  int obj = begin_rule(c);
  sb_fmt(&c->out, "\"{\" ws r%d \"}\"\n", nf);
  return obj;
}

static int gen_typed(conv *c, const cJSON *s, const char *type, int depth) {
  if (strcmp(type, "string") == 0) return gen_string(c, s);
  if (strcmp(type, "number") == 0) return P_NUMBER;
  if (strcmp(type, "integer") == 0) return P_INTEGER;
  if (strcmp(type, "boolean") == 0) return P_BOOLEAN;
  if (strcmp(type, "null") == 0) return P_NULL;
  if (strcmp(type, "array") == 0) return gen_array(c, s, depth);
  if (strcmp(type, "object") == 0) return gen_object(c, s, depth);
  return cfail(c, MLXR_ERR_INVALID, "JSON schema: unknown type '%.40s'", type);
}

/* An alternation rule over the given rules. */
static int gen_alt(conv *c, const int *alts, int n) {
  int r = begin_rule(c);
  for (int i = 0; i < n; i++) {
    if (i) sb_str(&c->out, " | ");
    sb_rule(&c->out, alts[i]);
  }
  sb_str(&c->out, "\n");
  return r;
}

static int gen_ref(conv *c, const char *ref, int depth) {
  for (int i = 0; i < c->n_memo; i++) {
    if (strcmp(c->memo[i].ref, ref) == 0) return c->memo[i].rule;
  }
  const cJSON *target = NULL;
  if (strcmp(ref, "#") == 0) {
    target = c->root;
  } else if (strncmp(ref, "#/$defs/", 8) == 0) {
    target = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->root, "$defs"), ref + 8);
  } else if (strncmp(ref, "#/definitions/", 14) == 0) {
    target = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c->root, "definitions"), ref + 14);
  } else {
    return cfail(c, MLXR_ERR_UNSUPPORTED, "JSON schema: $ref '%.80s' is not supported (only #, #/$defs/.. and #/definitions/..)", ref);
  }
  if (!target) return cfail(c, MLXR_ERR_INVALID, "JSON schema: $ref '%.80s' names nothing", ref);
  if (c->n_memo == c->cap_memo) {
    int cap = c->cap_memo ? c->cap_memo * 2 : 8;
    ref_memo *m = realloc(c->memo, (size_t)cap * sizeof(*m));
    if (!m) return cfail(c, MLXR_ERR_NOMEM, "out of memory");
    c->memo = m;
    c->cap_memo = cap;
  }
  const int r = new_rule(c); /* named before the body so recursive references find it */
  c->memo[c->n_memo].ref = strdup(ref);
  if (!c->memo[c->n_memo].ref) return cfail(c, MLXR_ERR_NOMEM, "out of memory");
  c->memo[c->n_memo++].rule = r;
  int body = gen(c, target, depth + 1);
  if (body == -1) return -1;
  sb_fmt(&c->out, "r%d ::= ", r);
  sb_rule(&c->out, body);
  sb_str(&c->out, "\n");
  return r;
}

static const char *const UNSUPPORTED[] = {
    "pattern", "patternProperties", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "uniqueItems", "not", "if", "then", "else", "contains", "minContains", "maxContains",
    "dependentRequired", "dependentSchemas", "dependencies", "propertyNames", "minProperties",
    "maxProperties", "unevaluatedProperties", "unevaluatedItems", "prefixItems", "additionalItems",
    "$dynamicRef", "$recursiveRef", "contentEncoding", "contentMediaType"};

static int gen(conv *c, const cJSON *s, int depth) {
  if (c->rc != MLXR_OK) return -1;
  if (depth > MAX_SCHEMA_DEPTH) return cfail(c, MLXR_ERR_RANGE, "JSON schema nested deeper than %d", MAX_SCHEMA_DEPTH);
  if (cJSON_IsTrue(s)) return P_VALUE;
  if (cJSON_IsFalse(s)) return cfail(c, MLXR_ERR_UNSUPPORTED, "JSON schema 'false' matches nothing");
  if (!cJSON_IsObject(s)) return cfail(c, MLXR_ERR_INVALID, "a JSON schema must be an object or a boolean");
  for (size_t i = 0; i < sizeof(UNSUPPORTED) / sizeof(UNSUPPORTED[0]); i++) {
    if (cJSON_GetObjectItemCaseSensitive(s, UNSUPPORTED[i])) {
      return cfail(c, MLXR_ERR_UNSUPPORTED, "JSON schema keyword '%s' is not supported", UNSUPPORTED[i]);
    }
  }
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
  if (ref) {
    if (!cJSON_IsString(ref)) return cfail(c, MLXR_ERR_INVALID, "JSON schema: '$ref' must be a string");
    return gen_ref(c, ref->valuestring, depth);
  }
  const cJSON *cst = cJSON_GetObjectItemCaseSensitive(s, "const");
  if (cst) return gen_literal(c, cst);
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
  if (en) {
    if (!cJSON_IsArray(en) || cJSON_GetArraySize(en) == 0) {
      return cfail(c, MLXR_ERR_INVALID, "JSON schema: 'enum' must be a non-empty list");
    }
    const int n = cJSON_GetArraySize(en);
    int *alts = malloc((size_t)n * sizeof(int));
    if (!alts) return cfail(c, MLXR_ERR_NOMEM, "out of memory");
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, en) {
      if ((alts[k++] = gen_literal(c, v)) == -1) break;
    }
    int r = c->rc == MLXR_OK ? gen_alt(c, alts, n) : -1;
    free(alts);
    return r;
  }
  const char *combo = cJSON_GetObjectItemCaseSensitive(s, "anyOf") ? "anyOf"
                      : cJSON_GetObjectItemCaseSensitive(s, "oneOf") ? "oneOf"
                      : cJSON_GetObjectItemCaseSensitive(s, "allOf") ? "allOf" : NULL;
  if (combo) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(s, combo);
    const int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    if (n == 0) return cfail(c, MLXR_ERR_INVALID, "JSON schema: '%s' must be a non-empty list", combo);
    if (combo[1] == 'l') {
      if (n != 1) return cfail(c, MLXR_ERR_UNSUPPORTED, "JSON schema: 'allOf' with more than one schema is not supported");
      return gen(c, cJSON_GetArrayItem(list, 0), depth + 1);
    }
    int *alts = malloc((size_t)n * sizeof(int));
    if (!alts) return cfail(c, MLXR_ERR_NOMEM, "out of memory");
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, list) {
      if ((alts[k++] = gen(c, v, depth + 1)) == -1) break;
    }
    int r = c->rc == MLXR_OK ? gen_alt(c, alts, n) : -1;
    free(alts);
    return r;
  }
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
  if (cJSON_IsString(type)) return gen_typed(c, s, type->valuestring, depth);
  if (cJSON_IsArray(type)) {
    const int n = cJSON_GetArraySize(type);
    if (n == 0) return cfail(c, MLXR_ERR_INVALID, "JSON schema: 'type' is an empty list");
    int *alts = malloc((size_t)n * sizeof(int));
    if (!alts) return cfail(c, MLXR_ERR_NOMEM, "out of memory");
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, type) {
      if (!cJSON_IsString(v)) {
        alts[k++] = cfail(c, MLXR_ERR_INVALID, "JSON schema: 'type' must list type names");
        break;
      }
      if ((alts[k++] = gen_typed(c, s, v->valuestring, depth)) == -1) break;
    }
    int r = c->rc == MLXR_OK ? gen_alt(c, alts, n) : -1;
    free(alts);
    return r;
  }
  if (type) return cfail(c, MLXR_ERR_INVALID, "JSON schema: 'type' must be a name or a list of names");
  /* no type: infer from the keywords present */
  if (cJSON_GetObjectItemCaseSensitive(s, "properties") || cJSON_GetObjectItemCaseSensitive(s, "required") ||
      cJSON_GetObjectItemCaseSensitive(s, "additionalProperties")) {
    return gen_object(c, s, depth);
  }
  if (cJSON_GetObjectItemCaseSensitive(s, "items") || cJSON_GetObjectItemCaseSensitive(s, "minItems") ||
      cJSON_GetObjectItemCaseSensitive(s, "maxItems")) {
    return gen_array(c, s, depth);
  }
  if (cJSON_GetObjectItemCaseSensitive(s, "minLength") || cJSON_GetObjectItemCaseSensitive(s, "maxLength")) {
    return gen_string(c, s);
  }
  return P_VALUE;
}

/* ---- public ---- */

char *mlxr_json_grammar_gbnf(mlxr_json_grammar_kind kind) {
  sbuf b = {0};
  if (kind == MLXR_JSON_GRAMMAR_OBJECT) sb_str(&b, "root ::= object\n");
  else if (kind == MLXR_JSON_GRAMMAR_VALUE) sb_str(&b, "root ::= value\n");
  else sb_str(&b, "root ::= ws value ws\n");
  sb_str(&b, JSON_CORE);
  sb_str(&b, kind == MLXR_JSON_GRAMMAR_EXACT ? WS_EXACT : WS_LIMITED);
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

int mlxr_json_schema_to_gbnf(const void *schema_cjson, char **gbnf, char *err, size_t err_len) {
  *gbnf = NULL;
  const cJSON *schema = schema_cjson;
  conv c = {.root = schema, .rc = MLXR_OK, .err = err, .err_len = err_len};
  int top = gen(&c, schema, 0);
  if (top != -1 && c.rc == MLXR_OK) {
    sb_str(&c.out, "root ::= ");
    sb_rule(&c.out, top);
    sb_str(&c.out, "\n");
    sb_str(&c.out, JSON_CORE);
    sb_str(&c.out, WS_LIMITED);
    if (c.out.oom) cfail(&c, MLXR_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < c.n_memo; i++) free(c.memo[i].ref);
  free(c.memo);
  if (c.rc != MLXR_OK) {
    free(c.out.p);
    return c.rc;
  }
  *gbnf = c.out.p;
  return MLXR_OK;
}

int mlxr_json_schema_text_to_gbnf(const char *schema, size_t len, char **gbnf, char *err, size_t err_len) {
  *gbnf = NULL;
  cJSON *j = cJSON_ParseWithLength(schema, len);
  if (!j) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "the JSON schema is not valid JSON");
  int rc = mlxr_json_schema_to_gbnf(j, gbnf, err, err_len);
  cJSON_Delete(j);
  return rc;
}
