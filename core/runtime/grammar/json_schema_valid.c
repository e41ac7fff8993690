/*
 * json_schema_valid.c: a JSON Schema validator for finished output: what a grammar cannot
 * enforce (uniqueItems, contains, not, if/then/else, oneOf's exclusivity, min/maxProperties,
 * propertyNames, dependencies, a pattern with lookaround, multipleOf 1.5, ...) is checked here
 * after generation, and the daemon reports a failure instead of passing it off as valid.
 *
 * It checks every keyword the converter knows (so it can run on any output without knowing which
 * keywords the grammar left out), recursively over cJSON trees: type (integers are numbers with no
 * fraction), enum and const (cJSON_Compare: numbers by value, objects unordered), anyOf, oneOf,
 * allOf, not, if/then/else, $ref (JSON pointers in the same document; drafts 4-7 ignore siblings),
 * numbers (bounds in both exclusive forms, multipleOf with a relative tolerance for decimals),
 * strings (length in code points, pattern through PCRE2 in its ECMAScript-like mode, format with
 * the format grammars of json_schema_format.c), arrays (items in both forms, prefixItems,
 * additionalItems, min/maxItems, uniqueItems, contains with min/maxContains), objects
 * (properties, patternProperties, additionalProperties, required, min/maxProperties,
 * propertyNames, dependencies, dependentRequired, dependentSchemas).
 *
 * The first failure is described in `why` with its JSON pointer ("/items/2: 5 is not a multiple
 * of 2"). Stateless apart from the call's own context; any thread.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/json_schema_impl.h"



typedef struct vctx {
  const cJSON *root;
  int draft;
  char *why;
  size_t why_len;
  bool quiet;        /* inside anyOf/oneOf/not: failures are expected, no message */
  int rc;            /* an error that is not the instance's fault (bad schema) */
  char path[256];    /* JSON pointer of the current instance */
  int depth;
} vctx;

/* "<path>: <message>" into v->why. */
static void vwrite(vctx *v, const char *fmt, va_list ap) {
  char msg[384];
  vsnprintf(msg, sizeof msg, fmt, ap);
  snprintf(v->why, v->why_len, "%s: %s", v->path[0] ? v->path : "/", msg);
}

/* The instance fails here: the first failure outside a probe is the message. */
static bool vfail(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool vfail(vctx *v, const char *fmt, ...) {
  if (v->quiet || !v->why || !v->why_len || v->why[0]) return false;
  va_list ap;
  va_start(ap, fmt);
  vwrite(v, fmt, ap);
  va_end(ap);
  return false;
}

/* A fault of the schema, not of the instance: the first one sets v->rc and its message replaces
 * any earlier one, even inside a probe (anyOf/oneOf/not), so the caller always learns why. */
static bool verror(vctx *v, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool verror(vctx *v, int rc, const char *fmt, ...) {
  if (v->rc != MLXR_OK) return false;
  v->rc = rc;
  if (!v->why || !v->why_len) return false;
  va_list ap;
  va_start(ap, fmt);
  vwrite(v, fmt, ap);
  va_end(ap);
  return false;
}

static bool node(vctx *v, const cJSON *s, const cJSON *x);

/* Validate x against s without messages (a probe). */
static bool probe(vctx *v, const cJSON *s, const cJSON *x) {
  const bool q = v->quiet;
  v->quiet = true;
  bool ok = node(v, s, x);
  v->quiet = q;
  return ok;
}

static size_t push(vctx *v, const char *seg) {
  const size_t n = strlen(v->path);
  snprintf(v->path + n, sizeof v->path - n, "/%s", seg);
  return n;
}
static size_t push_i(vctx *v, int i) {
  char b[16];
  snprintf(b, sizeof b, "%d", i);
  return push(v, b);
}
static void pop(vctx *v, size_t n) { v->path[n] = '\0'; }

static bool is_integer(const cJSON *x) {
  return cJSON_IsNumber(x) && isfinite(x->valuedouble) && x->valuedouble == floor(x->valuedouble);
}

static bool type_is(const cJSON *x, const char *t) {
  if (strcmp(t, "string") == 0) return cJSON_IsString(x);
  if (strcmp(t, "number") == 0) return cJSON_IsNumber(x);
  if (strcmp(t, "integer") == 0) return is_integer(x);
  if (strcmp(t, "boolean") == 0) return cJSON_IsBool(x);
  if (strcmp(t, "null") == 0) return cJSON_IsNull(x);
  if (strcmp(t, "array") == 0) return cJSON_IsArray(x);
  if (strcmp(t, "object") == 0) return cJSON_IsObject(x);
  return false;
}

static size_t utf8_len(const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
  return n;
}

static bool regex_match(vctx *v, const char *re, const char *subject) {
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *code = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY,
                                   &ec, &eo, NULL);
  if (!code) {
    verror(v, MLXR_ERR_UNSUPPORTED, "pattern %.80s cannot be checked", re);
    return false;
  }
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
  int r = md ? pcre2_match(code, (PCRE2_SPTR)subject, strlen(subject), 0, 0, md, NULL) : -1;
  pcre2_match_data_free(md);
  pcre2_code_free(code);
  return r >= 0;
}

static bool format_ok(const char *format, const cJSON *x) {
  char *g = js_format_gbnf(format);
  if (!g) return true; /* unknown formats are annotations */
  mlxr_grammar *gr = NULL;
  bool ok = true;
  if (mlxr_grammar_parse(g, strlen(g), NULL, &gr, NULL, 0) == MLXR_OK) {
    mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(gr);
    char *txt = cJSON_PrintUnformatted(x);
    if (m && txt) {
      ok = mlxr_grammar_matcher_accept(m, (const uint8_t *)txt, strlen(txt)) && mlxr_grammar_matcher_is_complete(m);
    }
    free(txt);
    mlxr_grammar_matcher_free(m);
  }
  mlxr_grammar_free(gr);
  free(g);
  return ok;
}

static bool v_number(vctx *v, const cJSON *s, const cJSON *x) {
  const double d = x->valuedouble;
  const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minimum");
  const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maximum");
  const cJSON *emn = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum");
  const cJSON *emx = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
  if (cJSON_IsNumber(mn) && (cJSON_IsTrue(emn) ? !(d > mn->valuedouble) : !(d >= mn->valuedouble))) {
    return vfail(v, "%.17g is below the minimum %.17g", d, mn->valuedouble);
  }
  if (cJSON_IsNumber(mx) && (cJSON_IsTrue(emx) ? !(d < mx->valuedouble) : !(d <= mx->valuedouble))) {
    return vfail(v, "%.17g is above the maximum %.17g", d, mx->valuedouble);
  }
  if (cJSON_IsNumber(emn) && !(d > emn->valuedouble)) return vfail(v, "%.17g is not above %.17g", d, emn->valuedouble);
  if (cJSON_IsNumber(emx) && !(d < emx->valuedouble)) return vfail(v, "%.17g is not below %.17g", d, emx->valuedouble);
  const cJSON *mo = cJSON_GetObjectItemCaseSensitive(s, "multipleOf");
  if (cJSON_IsNumber(mo) && mo->valuedouble > 0) {
    const double m = mo->valuedouble, q = d / m;
    bool ok;
    if (m == floor(m) && d == floor(d) && fabs(d) < 9007199254740992.0) ok = fmod(d, m) == 0; /* exact */
    else ok = isfinite(q) && fabs(q - nearbyint(q)) <= 1e-9 * (fabs(q) > 1 ? fabs(q) : 1);
    if (!ok) return vfail(v, "%.17g is not a multiple of %.17g", d, mo->valuedouble);
  }
  return true;
}

static bool v_string(vctx *v, const cJSON *s, const cJSON *x) {
  const size_t n = utf8_len(x->valuestring);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "minLength");
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
  if (cJSON_IsNumber(a) && (double)n < a->valuedouble) return vfail(v, "shorter than %g characters", a->valuedouble);
  if (cJSON_IsNumber(b) && (double)n > b->valuedouble) return vfail(v, "longer than %g characters", b->valuedouble);
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "pattern");
  if (cJSON_IsString(p) && !regex_match(v, p->valuestring, x->valuestring)) {
    return vfail(v, "does not match the pattern %.100s", p->valuestring);
  }
  const cJSON *f = cJSON_GetObjectItemCaseSensitive(s, "format");
  if (cJSON_IsString(f) && !format_ok(f->valuestring, x)) return vfail(v, "is not a valid %.40s", f->valuestring);
  return true;
}

static bool v_array(vctx *v, const cJSON *s, const cJSON *x) {
  const int n = cJSON_GetArraySize(x);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "minItems");
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
  if (cJSON_IsNumber(a) && n < a->valuedouble) return vfail(v, "fewer than %g items", a->valuedouble);
  if (cJSON_IsNumber(b) && n > b->valuedouble) return vfail(v, "more than %g items", b->valuedouble);
  const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(s, "prefixItems");
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
  const cJSON *tuple = NULL, *rest = items;
  if (cJSON_IsArray(prefix)) tuple = prefix;
  else if (cJSON_IsArray(items)) {
    tuple = items;
    rest = cJSON_GetObjectItemCaseSensitive(s, "additionalItems");
  }
  const int k = tuple ? cJSON_GetArraySize(tuple) : 0;
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, x) {
    const cJSON *sub = i < k ? cJSON_GetArrayItem(tuple, i) : rest;
    if (sub) {
      size_t mark = push_i(v, i);
      bool ok = node(v, sub, it);
      pop(v, mark);
      if (!ok) return false;
    }
    i++;
  }
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(s, "uniqueItems");
  if (cJSON_IsTrue(u)) {
    int p = 0;
    for (const cJSON *e1 = x->child; e1; e1 = e1->next, p++) {
      int q = p + 1;
      for (const cJSON *e2 = e1->next; e2; e2 = e2->next, q++) {
        if (cJSON_Compare(e1, e2, true)) return vfail(v, "items %d and %d are equal (uniqueItems)", p, q);
      }
    }
  }
  const cJSON *con = cJSON_GetObjectItemCaseSensitive(s, "contains");
  if (con) {
    int hits = 0;
    cJSON_ArrayForEach(it, x) hits += probe(v, con, it);
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(s, "minContains");
    const cJSON *xc = cJSON_GetObjectItemCaseSensitive(s, "maxContains");
    const double lo = cJSON_IsNumber(mc) && v->draft >= 2019 ? mc->valuedouble : 1;
    if (hits < lo) return vfail(v, "%d items match 'contains', at least %g must", hits, lo);
    if (cJSON_IsNumber(xc) && v->draft >= 2019 && hits > xc->valuedouble) {
      return vfail(v, "%d items match 'contains', at most %g may", hits, xc->valuedouble);
    }
  }
  return true;
}

static bool v_object(vctx *v, const cJSON *s, const cJSON *x) {
  const int n = cJSON_GetArraySize(x);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(s, "minProperties");
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, "maxProperties");
  if (cJSON_IsNumber(a) && n < a->valuedouble) return vfail(v, "fewer than %g members", a->valuedouble);
  if (cJSON_IsNumber(b) && n > b->valuedouble) return vfail(v, "more than %g members", b->valuedouble);
  const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
  const cJSON *it;
  cJSON_ArrayForEach(it, req) {
    if (cJSON_IsString(it) && !cJSON_GetObjectItemCaseSensitive(x, it->valuestring)) {
      return vfail(v, "the required member '%.60s' is missing", it->valuestring);
    }
  }
  const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
  const cJSON *pprops = cJSON_GetObjectItemCaseSensitive(s, "patternProperties");
  const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
  const cJSON *pnames = cJSON_GetObjectItemCaseSensitive(s, "propertyNames");
  cJSON_ArrayForEach(it, x) {
    size_t mark = push(v, it->string);
    bool matched = false;
    const cJSON *ps = cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, it->string) : NULL;
    bool ok = true;
    if (ps) {
      matched = true;
      ok = node(v, ps, it);
    }
    const cJSON *pp;
    cJSON_ArrayForEach(pp, pprops) {
      if (!ok) break;
      if (regex_match(v, pp->string, it->string)) {
        matched = true;
        ok = node(v, pp, it);
      }
    }
    if (ok && !matched && addl) {
      if (cJSON_IsFalse(addl)) ok = vfail(v, "the member is not allowed (additionalProperties)");
      else if (cJSON_IsObject(addl)) ok = node(v, addl, it);
    }
    if (ok && pnames) {
      cJSON *name = cJSON_CreateString(it->string);
      ok = name && node(v, pnames, name);
      cJSON_Delete(name);
    }
    pop(v, mark);
    if (!ok) return false;
  }
  /* dependencies (draft 4-7), dependentRequired, dependentSchemas (2019-09 on) */
  const char *dk[] = {"dependencies", "dependentRequired", "dependentSchemas"};
  for (int d = 0; d < 3; d++) {
    const cJSON *deps = cJSON_GetObjectItemCaseSensitive(s, dk[d]);
    const cJSON *dep;
    cJSON_ArrayForEach(dep, deps) {
      if (!cJSON_GetObjectItemCaseSensitive(x, dep->string)) continue;
      if (cJSON_IsArray(dep)) {
        const cJSON *r;
        cJSON_ArrayForEach(r, dep) {
          if (cJSON_IsString(r) && !cJSON_GetObjectItemCaseSensitive(x, r->valuestring)) {
            return vfail(v, "'%.60s' requires the member '%.60s'", dep->string, r->valuestring);
          }
        }
      } else if (!node(v, dep, x)) {
        return vfail(v, "the schema that '%.60s' depends on does not hold", dep->string);
      }
    }
  }
  return true;
}

static bool node(vctx *v, const cJSON *s, const cJSON *x) {
  if (v->rc != MLXR_OK) return false;
  if (cJSON_IsTrue(s)) return true;
  if (cJSON_IsFalse(s)) return vfail(v, "no value is allowed here");
  if (!cJSON_IsObject(s)) {
    return verror(v, MLXR_ERR_INVALID, "the schema is not an object");
  }
  if (++v->depth > 256) {
    v->depth--;
    return verror(v, MLXR_ERR_RANGE, "the schema recurses too deeply");
  }
  bool ok = true;
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
  if (cJSON_IsString(ref)) {
    const cJSON *t = js_resolve_pointer(v->root, ref->valuestring);
    if (!t) {
      ok = verror(v, MLXR_ERR_UNSUPPORTED, "$ref %.80s cannot be resolved", ref->valuestring);
    } else {
      ok = node(v, t, x);
    }
    if (!ok || v->draft <= 7) {
      v->depth--;
      return ok;
    }
  }
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
  if (cJSON_IsString(type) && !type_is(x, type->valuestring)) ok = vfail(v, "not of type %.20s", type->valuestring);
  if (ok && cJSON_IsArray(type)) {
    bool any = false;
    const cJSON *t;
    cJSON_ArrayForEach(t, type) any = any || (cJSON_IsString(t) && type_is(x, t->valuestring));
    if (!any) ok = vfail(v, "not of any of the listed types");
  }
  const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
  if (ok && cJSON_IsArray(en)) {
    bool any = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, en) any = any || cJSON_Compare(e, x, true);
    if (!any) ok = vfail(v, "not one of the enum values");
  }
  const cJSON *cst = cJSON_GetObjectItemCaseSensitive(s, "const");
  if (ok && cst && !cJSON_Compare(cst, x, true)) ok = vfail(v, "not the const value");
  if (ok && cJSON_IsNumber(x)) ok = v_number(v, s, x);
  if (ok && cJSON_IsString(x)) ok = v_string(v, s, x);
  if (ok && cJSON_IsArray(x)) ok = v_array(v, s, x);
  if (ok && cJSON_IsObject(x)) ok = v_object(v, s, x);
  const cJSON *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
  const cJSON *sub;
  cJSON_ArrayForEach(sub, all) {
    if (!ok) break;
    ok = node(v, sub, x);
  }
  const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
  if (ok && cJSON_IsArray(any)) {
    bool hit = false;
    cJSON_ArrayForEach(sub, any) hit = hit || probe(v, sub, x);
    if (!hit) ok = vfail(v, "matches none of anyOf");
  }
  const cJSON *one = cJSON_GetObjectItemCaseSensitive(s, "oneOf");
  if (ok && cJSON_IsArray(one)) {
    int hits = 0;
    cJSON_ArrayForEach(sub, one) hits += probe(v, sub, x);
    if (hits != 1) ok = vfail(v, "matches %d schemas of oneOf (exactly one must)", hits);
  }
  const cJSON *no = cJSON_GetObjectItemCaseSensitive(s, "not");
  if (ok && no && probe(v, no, x)) ok = vfail(v, "matches the schema under 'not'");
  const cJSON *iff = cJSON_GetObjectItemCaseSensitive(s, "if");
  if (ok && iff && v->draft >= 7) {
    const cJSON *branch = probe(v, iff, x) ? cJSON_GetObjectItemCaseSensitive(s, "then")
                                           : cJSON_GetObjectItemCaseSensitive(s, "else");
    if (branch) ok = node(v, branch, x);
  }
  v->depth--;
  return ok;
}

int js_validate_node(const cJSON *root, const cJSON *schema, const cJSON *instance, int draft, char *why,
                     size_t why_len) {
  vctx v = {.root = root, .draft = draft, .why = why, .why_len = why_len, .rc = MLXR_OK};
  if (why && why_len) why[0] = '\0';
  bool ok = node(&v, schema, instance);
  if (v.rc != MLXR_OK) return v.rc;
  return ok ? MLXR_OK : MLXR_ERR_INVALID;
}

int mlxr_json_schema_validate(const void *schema_cjson, int draft, const void *instance_cjson, char *why,
                              size_t why_len) {
  const cJSON *s = schema_cjson;
  if (draft <= 0) draft = mlxr_json_schema_draft(s);
  return js_validate_node(s, s, instance_cjson, draft, why, why_len);
}

int mlxr_json_schema_validate_text(const char *schema, size_t schema_len, const char *text, size_t len, char *why,
                                   size_t why_len) {
  if (why && why_len) why[0] = '\0';
  cJSON *s = cJSON_ParseWithLength(schema, schema_len);
  if (!s) return mlxr_errf(why, why_len, MLXR_ERR_INVALID, "the JSON schema is not valid JSON");
  cJSON *x = cJSON_ParseWithLength(text, len);
  int rc;
  if (!x) rc = mlxr_errf(why, why_len, MLXR_ERR_INVALID, "the output is not valid JSON");
  else rc = mlxr_json_schema_validate(s, 0, x, why, why_len);
  cJSON_Delete(x);
  cJSON_Delete(s);
  return rc;
}
