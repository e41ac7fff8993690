/*
 * json.c: JSON in and out of template values.
 *
 *   mlxr_tpl_json_dump   Python's json.dumps(v, ensure_ascii=..., indent=..., separators=...,
 *                        sort_keys=...) byte for byte: floats as float.__repr__ (1.0, 1e-05),
 *                        NaN/Infinity, non-string keys converted as Python does (1 -> "1",
 *                        True -> "true", None -> "null"), "\uXXXX" only for control characters
 *                        (or all non-ASCII with ensure_ascii, using surrogate pairs).
 *   mlxr_tpl_json_parse  json.loads: ints stay ints (floats when beyond 64 bits), 1.0 stays a
 *                        float, object key order kept, a repeated key keeps its first position
 *                        and its last value, NaN/Infinity accepted; nesting is bounded.
 *   mlxr_tpl_from_cjson  the same from an already-parsed cJSON tree (integral numbers -> int).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/template/template_impl.h"

#define JSON_MAX_DEPTH 500

static void dump_str(tbuf *b, const char *s, size_t len, bool ascii) {
  tbuf_addc(b, '"');
  for (size_t i = 0; i < len;) {
    size_t st = i;
    uint32_t cp = tv_utf8_next(s, len, &i);
    char e[16];
    switch (cp) {
    case '"': tbuf_addz(b, "\\\""); break;
    case '\\': tbuf_addz(b, "\\\\"); break;
    case '\n': tbuf_addz(b, "\\n"); break;
    case '\r': tbuf_addz(b, "\\r"); break;
    case '\t': tbuf_addz(b, "\\t"); break;
    case '\b': tbuf_addz(b, "\\b"); break;
    case '\f': tbuf_addz(b, "\\f"); break;
    default:
      if (cp < 0x20 || (ascii && cp >= 0x7F)) {
        if (cp >= 0x10000) {
          uint32_t v = cp - 0x10000;
          snprintf(e, sizeof(e), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        } else {
          snprintf(e, sizeof(e), "\\u%04x", cp);
        }
        tbuf_addz(b, e);
      } else {
        tbuf_add(b, s + st, i - st);
      }
    }
  }
  tbuf_addc(b, '"');
}

static void dump_float(tbuf *b, double f) {
  if (isnan(f)) tbuf_addz(b, "NaN");
  else if (isinf(f)) tbuf_addz(b, f < 0 ? "-Infinity" : "Infinity");
  else tv_write_float(b, f);
}

typedef struct dump_opts {
  int indent; /* < 0: None */
  const char *indent_str;
  const char *item_sep, *key_sep;
  bool sort_keys;
  bool ascii;
} dump_opts;

static void newline(tbuf *b, const dump_opts *o, int level) {
  tbuf_addc(b, '\n');
  for (int i = 0; i < level; i++) tbuf_addz(b, o->indent_str);
}

/* Key as json.dumps writes it; false if the key type is not allowed. */
static bool dump_key(tbuf *b, const tv *k, bool ascii) {
  char num[32];
  switch (k->type) {
  case TV_STR: dump_str(b, k->u.str.s, k->u.str.len, ascii); return true;
  case TV_INT:
    snprintf(num, sizeof(num), "\"%lld\"", (long long)k->u.i);
    tbuf_addz(b, num);
    return true;
  case TV_FLOAT:
    tbuf_addc(b, '"');
    dump_float(b, k->u.f);
    tbuf_addc(b, '"');
    return true;
  case TV_BOOL: tbuf_addz(b, k->u.b ? "\"true\"" : "\"false\""); return true;
  case TV_NONE: tbuf_addz(b, "\"null\""); return true;
  default: return false;
  }
}

static bool dump(tctx *c, tbuf *b, const tv *v, const dump_opts *o, int level) {
  char num[32];
  if (level > JSON_MAX_DEPTH) {
    tctx_fail(c, MLXR_ERR_RANGE, "RecursionError: value nested too deeply for tojson");
    return false;
  }
  switch (v->type) {
  case TV_NONE: tbuf_addz(b, "null"); return true;
  case TV_BOOL: tbuf_addz(b, v->u.b ? "true" : "false"); return true;
  case TV_INT:
    snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
    tbuf_addz(b, num);
    return true;
  case TV_FLOAT: dump_float(b, v->u.f); return true;
  case TV_STR: dump_str(b, v->u.str.s, v->u.str.len, o->ascii); return true;
  case TV_LIST:
    if (v->u.list.n == 0) {
      tbuf_addz(b, "[]");
      return true;
    }
    tbuf_addc(b, '[');
    for (size_t i = 0; i < v->u.list.n; i++) {
      if (i) tbuf_addz(b, o->item_sep);
      if (o->indent >= 0) newline(b, o, level + 1);
      if (!dump(c, b, v->u.list.items[i], o, level + 1)) return false;
    }
    if (o->indent >= 0) newline(b, o, level);
    tbuf_addc(b, ']');
    return true;
  case TV_DICT: {
    if (v->u.dict.n == 0) {
      tbuf_addz(b, "{}");
      return true;
    }
    size_t n = v->u.dict.n;
    size_t *order = malloc(n * sizeof(size_t));
    if (!order) {
      tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
      return false;
    }
    for (size_t i = 0; i < n; i++) order[i] = i;
    if (o->sort_keys) { /* stable insertion sort; keys must be mutually orderable */
      for (size_t i = 1; i < n; i++) {
        size_t x = order[i], j = i;
        while (j > 0) {
          int r;
          if (!tv_cmp(v->u.dict.keys[order[j - 1]], v->u.dict.keys[x], &r)) {
            tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '<' not supported between instances of '%s' and '%s'",
                      tv_type_name(v->u.dict.keys[x]), tv_type_name(v->u.dict.keys[order[j - 1]]));
            free(order);
            return false;
          }
          if (r <= 0) break;
          order[j] = order[j - 1];
          j--;
        }
        order[j] = x;
      }
    }
    tbuf_addc(b, '{');
    for (size_t i = 0; i < n; i++) {
      const tv *k = v->u.dict.keys[order[i]];
      if (i) tbuf_addz(b, o->item_sep);
      if (o->indent >= 0) newline(b, o, level + 1);
      if (!dump_key(b, k, o->ascii)) {
        free(order);
        tctx_fail(c, MLXR_ERR_INVALID, "TypeError: keys must be str, int, float, bool or None, not %s", tv_type_name(k));
        return false;
      }
      tbuf_addz(b, o->key_sep);
      if (!dump(c, b, v->u.dict.vals[order[i]], o, level + 1)) {
        free(order);
        return false;
      }
    }
    free(order);
    if (o->indent >= 0) newline(b, o, level);
    tbuf_addc(b, '}');
    return true;
  }
  default:
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: Object of type %s is not JSON serializable", tv_type_name(v));
    return false;
  }
}

bool mlxr_tpl_json_dump(tctx *c, tbuf *b, const tv *v, int indent, const char *indent_str, const char *item_sep,
                        const char *key_sep, bool sort_keys, bool ensure_ascii) {
  char spaces[64];
  if (!indent_str) {
    int k = indent < 0 ? 0 : indent < 63 ? indent : 63;
    memset(spaces, ' ', (size_t)k);
    spaces[k] = 0;
    indent_str = spaces;
  }
  dump_opts o = {.indent = indent, .indent_str = indent_str, .sort_keys = sort_keys, .ascii = ensure_ascii};
  o.item_sep = item_sep ? item_sep : indent >= 0 ? "," : ", ";
  o.key_sep = key_sep ? key_sep : ": ";
  if (!dump(c, b, v, &o, 0)) return false;
  if (b->overflow) {
    tctx_fail(c, MLXR_ERR_RANGE, "tojson output exceeds the output limit");
    return false;
  }
  return true;
}

/* ---- parsing ---- */

typedef struct jparser {
  const char *s;
  size_t len, pos;
  int depth;
  char *err;
  size_t err_len;
} jparser;

static void jskip(jparser *p) {
  while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
    p->pos++;
}

static tv *jfail(jparser *p, const char *what) {
  mlxr_errf(p->err, p->err_len, MLXR_ERR_INVALID, "JSON: %s at offset %zu", what, p->pos);
  return NULL;
}

static int hexval(char h) {
  if (h >= '0' && h <= '9') return h - '0';
  if (h >= 'a' && h <= 'f') return h - 'a' + 10;
  if (h >= 'A' && h <= 'F') return h - 'A' + 10;
  return -1;
}

static bool read_u4(jparser *p, uint32_t *out) {
  if (p->pos + 4 > p->len) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p->s[p->pos + (size_t)i]);
    if (h < 0) return false;
    v = v * 16 + (uint32_t)h;
  }
  p->pos += 4;
  *out = v;
  return true;
}

static tv *jstring(jparser *p) {
  p->pos++; /* opening quote */
  tbuf b;
  tbuf_init(&b, (size_t)-1 / 2);
  while (p->pos < p->len && p->s[p->pos] != '"') {
    char ch = p->s[p->pos++];
    if ((unsigned char)ch < 0x20) {
      tbuf_free(&b);
      return jfail(p, "invalid control character in string");
    }
    if (ch != '\\') {
      tbuf_addc(&b, ch);
      continue;
    }
    if (p->pos >= p->len) break;
    char e = p->s[p->pos++];
    uint32_t cp;
    switch (e) {
    case '"': tbuf_addc(&b, '"'); break;
    case '\\': tbuf_addc(&b, '\\'); break;
    case '/': tbuf_addc(&b, '/'); break;
    case 'b': tbuf_addc(&b, '\b'); break;
    case 'f': tbuf_addc(&b, '\f'); break;
    case 'n': tbuf_addc(&b, '\n'); break;
    case 'r': tbuf_addc(&b, '\r'); break;
    case 't': tbuf_addc(&b, '\t'); break;
    case 'u':
      if (!read_u4(p, &cp)) {
        tbuf_free(&b);
        return jfail(p, "invalid \\u escape");
      }
      if (cp >= 0xD800 && cp < 0xDC00 && p->pos + 6 <= p->len && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
        size_t save = p->pos;
        uint32_t lo;
        p->pos += 2;
        if (read_u4(p, &lo) && lo >= 0xDC00 && lo < 0xE000)
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        else
          p->pos = save;
      }
      tv_utf8_put(&b, cp);
      break;
    default: tbuf_free(&b); return jfail(p, "invalid escape");
    }
  }
  if (p->pos >= p->len) {
    tbuf_free(&b);
    return jfail(p, "unterminated string");
  }
  p->pos++;
  size_t len;
  char *s = tbuf_take(&b, &len);
  return s ? tv_str_take(s, len) : NULL;
}

static tv *jvalue(jparser *p);

static tv *jnumber(jparser *p) {
  size_t st = p->pos;
  if (p->s[p->pos] == '-') p->pos++;
  if (p->pos + 8 <= p->len && !memcmp(p->s + p->pos, "Infinity", 8)) {
    p->pos += 8;
    return tv_float(p->s[st] == '-' ? -INFINITY : INFINITY);
  }
  size_t ds = p->pos;
  while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
  if (p->pos == ds) return jfail(p, "invalid number");
  bool is_float = false;
  if (p->pos < p->len && p->s[p->pos] == '.') {
    is_float = true;
    p->pos++;
    size_t fs = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    if (p->pos == fs) return jfail(p, "invalid number");
  }
  if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
    is_float = true;
    p->pos++;
    if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
    size_t es = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    if (p->pos == es) return jfail(p, "invalid number");
  }
  char buf[400];
  size_t n = p->pos - st;
  if (n >= sizeof(buf)) return jfail(p, "number too long");
  memcpy(buf, p->s + st, n);
  buf[n] = 0;
  if (!is_float) {
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno != ERANGE) return tv_int(v);
  }
  return tv_float(strtod(buf, NULL));
}

static tv *jvalue(jparser *p) {
  jskip(p);
  if (p->pos >= p->len) return jfail(p, "unexpected end of input");
  char ch = p->s[p->pos];
  if (ch == '{' || ch == '[') {
    if (++p->depth > JSON_MAX_DEPTH) return jfail(p, "nesting too deep");
    p->pos++;
    bool obj = ch == '{';
    tv *r = obj ? tv_dict() : tv_list(0);
    if (!r) return NULL;
    jskip(p);
    if (p->pos < p->len && p->s[p->pos] == (obj ? '}' : ']')) {
      p->pos++;
      p->depth--;
      return r;
    }
    for (;;) {
      tv *k = NULL;
      if (obj) {
        jskip(p);
        if (p->pos >= p->len || p->s[p->pos] != '"') {
          tv_unref(r);
          return jfail(p, "expected property name");
        }
        if (!(k = jstring(p))) {
          tv_unref(r);
          return NULL;
        }
        jskip(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') {
          tv_unref(k);
          tv_unref(r);
          return jfail(p, "expected ':'");
        }
        p->pos++;
      }
      tv *v = jvalue(p);
      bool ok = v && (obj ? tv_dict_set(r, k, v) : tv_list_push(r, v));
      tv_unref(k);
      if (!ok) {
        tv_unref(r);
        return NULL;
      }
      jskip(p);
      if (p->pos < p->len && p->s[p->pos] == ',') {
        p->pos++;
        continue;
      }
      if (p->pos < p->len && p->s[p->pos] == (obj ? '}' : ']')) {
        p->pos++;
        p->depth--;
        return r;
      }
      tv_unref(r);
      return jfail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  if (ch == '"') return jstring(p);
  if (ch == '-' || (ch >= '0' && ch <= '9')) return jnumber(p);
  static const struct {
    const char *word;
    int kind;
  } words[] = {{"true", 1}, {"false", 2}, {"null", 3}, {"NaN", 4}, {"Infinity", 5}};
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
    size_t wl = strlen(words[i].word);
    if (p->pos + wl <= p->len && !memcmp(p->s + p->pos, words[i].word, wl)) {
      p->pos += wl;
      switch (words[i].kind) {
      case 1: return tv_bool(true);
      case 2: return tv_bool(false);
      case 3: return tv_none();
      case 4: return tv_float(NAN);
      default: return tv_float(INFINITY);
      }
    }
  }
  return jfail(p, "unexpected character");
}

tv *mlxr_tpl_json_parse(const char *s, size_t len, char *err, size_t err_len) {
  jparser p = {.s = s, .len = len, .err = err, .err_len = err_len};
  tv *v = jvalue(&p);
  if (!v) {
    if (err && err_len && !err[0]) mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    return NULL;
  }
  jskip(&p);
  if (p.pos != p.len) {
    tv_unref(v);
    return jfail(&p, "extra data");
  }
  return v;
}

tv *mlxr_tpl_from_cjson(const cJSON *j, int depth) {
  if (depth > JSON_MAX_DEPTH) return NULL;
  if (cJSON_IsNull(j)) return tv_none();
  if (cJSON_IsBool(j)) return tv_bool(cJSON_IsTrue(j));
  if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) < 9007199254740992.0) return tv_int((int64_t)d);
    return tv_float(d);
  }
  if (cJSON_IsString(j)) return tv_strz(j->valuestring ? j->valuestring : "");
  if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
    bool obj = cJSON_IsObject(j);
    tv *r = obj ? tv_dict() : tv_list(0);
    if (!r) return NULL;
    for (const cJSON *it = j->child; it; it = it->next) {
      tv *v = mlxr_tpl_from_cjson(it, depth + 1);
      bool ok = v && (obj ? tv_dict_setz(r, it->string ? it->string : "", v) : tv_list_push(r, v));
      if (!ok) {
        tv_unref(r);
        return NULL;
      }
    }
    return r;
  }
  return tv_none();
}
