/*
 * value.c: runtime values of the template interpreter (see template_impl.h), their Python
 * semantics (str(), repr(), truthiness, ==, ordering) and small UTF-8 helpers.
 *
 * Values are refcounted and never shared between renders, except the immortal constants of a
 * compiled template, whose counts are never touched. Containers record their nesting depth and
 * refuse to nest deeper than TV_MAX_NEST, so freeing and printing (both recursive) stay bounded.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/runtime/template/template_impl.h"

#define TV_MAX_NEST 512

tv *tv_new(tv_type type) {
  tv *v = calloc(1, sizeof(*v));
  if (!v) return NULL;
  v->type = type;
  v->refs = 1;
  return v;
}

tv *tv_undef(const char *hint_fmt, ...) {
  tv *v = tv_new(TV_UNDEF);
  if (!v) return NULL;
  if (hint_fmt) {
    char buf[256];
    va_list ap;
    va_start(ap, hint_fmt);
    vsnprintf(buf, sizeof(buf), hint_fmt, ap);
    va_end(ap);
    v->u.str.s = strdup(buf);
    v->u.str.len = v->u.str.s ? strlen(v->u.str.s) : 0;
  }
  return v;
}

tv *tv_none(void) { return tv_new(TV_NONE); }

tv *tv_bool(bool b) {
  tv *v = tv_new(TV_BOOL);
  if (v) v->u.b = b;
  return v;
}

tv *tv_int(int64_t i) {
  tv *v = tv_new(TV_INT);
  if (v) v->u.i = i;
  return v;
}

tv *tv_float(double f) {
  tv *v = tv_new(TV_FLOAT);
  if (v) v->u.f = f;
  return v;
}

tv *tv_str_take(char *s, size_t len) {
  if (!s) return NULL;
  tv *v = tv_new(TV_STR);
  if (!v) {
    free(s);
    return NULL;
  }
  v->u.str.s = s;
  v->u.str.len = len;
  return v;
}

tv *tv_str(const char *s, size_t len) {
  char *p = malloc(len + 1);
  if (!p) return NULL;
  if (len) memcpy(p, s, len);
  p[len] = 0;
  return tv_str_take(p, len);
}

tv *tv_strz(const char *s) { return tv_str(s, strlen(s)); }

tv *tv_list(size_t cap) {
  tv *v = tv_new(TV_LIST);
  if (!v) return NULL;
  if (cap) {
    v->u.list.items = malloc(cap * sizeof(tv *));
    if (!v->u.list.items) {
      free(v);
      return NULL;
    }
    v->u.list.cap = cap;
  }
  return v;
}

tv *tv_dict(void) { return tv_new(TV_DICT); }

tv *tv_ref(tv *v) {
  if (v && !v->immortal) v->refs++;
  return v;
}

void tv_unref(tv *v) {
  if (!v || v->immortal || --v->refs > 0) return;
  switch (v->type) {
  case TV_STR:
  case TV_UNDEF: free(v->u.str.s); break;
  case TV_LIST:
    for (size_t i = 0; i < v->u.list.n; i++) tv_unref(v->u.list.items[i]);
    free(v->u.list.items);
    break;
  case TV_DICT:
  case TV_NS:
    for (size_t i = 0; i < v->u.dict.n; i++) {
      tv_unref(v->u.dict.keys[i]);
      tv_unref(v->u.dict.vals[i]);
    }
    free(v->u.dict.keys);
    free(v->u.dict.vals);
    break;
  case TV_MACRO: tv_unref(v->u.macro.caller); break; /* closure is released by the render */
  case TV_FUNC: tv_unref(v->u.func.self); break;
  case TV_LOOP: tv_unref(v->u.loop.items); break;
  default: break;
  }
  free(v);
}

static int nest_depth(const tv *v) {
  if (v->type == TV_LIST) return v->u.list.depth;
  if (v->type == TV_DICT || v->type == TV_NS) return v->u.dict.depth;
  return 0;
}

bool tv_list_push(tv *list, tv *item) {
  if (!item) return false;
  int d = nest_depth(item) + 1;
  if (d > TV_MAX_NEST) {
    tv_unref(item);
    return false;
  }
  if (list->u.list.n == list->u.list.cap) {
    size_t nc = list->u.list.cap ? list->u.list.cap * 2 : 4;
    tv **p = realloc(list->u.list.items, nc * sizeof(tv *));
    if (!p) {
      tv_unref(item);
      return false;
    }
    list->u.list.items = p;
    list->u.list.cap = nc;
  }
  list->u.list.items[list->u.list.n++] = item;
  if (d > list->u.list.depth) list->u.list.depth = d;
  return true;
}

static bool key_eq(const tv *a, const tv *b) {
  if (a->type == TV_STR && b->type == TV_STR)
    return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
  return tv_eq(a, b);
}

tv *tv_dict_get(const tv *dict, const tv *key) {
  for (size_t i = 0; i < dict->u.dict.n; i++)
    if (key_eq(dict->u.dict.keys[i], key)) return dict->u.dict.vals[i];
  return NULL;
}

tv *tv_dict_getz(const tv *dict, const char *key) {
  size_t kl = strlen(key);
  for (size_t i = 0; i < dict->u.dict.n; i++) {
    const tv *k = dict->u.dict.keys[i];
    if (k->type == TV_STR && k->u.str.len == kl && memcmp(k->u.str.s, key, kl) == 0)
      return dict->u.dict.vals[i];
  }
  return NULL;
}

bool tv_dict_set(tv *dict, tv *key, tv *val) {
  if (!val) return false;
  int d = nest_depth(val) + 1;
  if (d > TV_MAX_NEST) {
    tv_unref(val);
    return false;
  }
  for (size_t i = 0; i < dict->u.dict.n; i++) {
    if (key_eq(dict->u.dict.keys[i], key)) {
      tv_unref(dict->u.dict.vals[i]);
      dict->u.dict.vals[i] = val;
      if (d > dict->u.dict.depth) dict->u.dict.depth = d;
      return true;
    }
  }
  if (dict->u.dict.n == dict->u.dict.cap) {
    size_t nc = dict->u.dict.cap ? dict->u.dict.cap * 2 : 8;
    tv **k = realloc(dict->u.dict.keys, nc * sizeof(tv *));
    if (!k) {
      tv_unref(val);
      return false;
    }
    dict->u.dict.keys = k;
    tv **vv = realloc(dict->u.dict.vals, nc * sizeof(tv *));
    if (!vv) {
      tv_unref(val);
      return false;
    }
    dict->u.dict.vals = vv;
    dict->u.dict.cap = nc;
  }
  dict->u.dict.keys[dict->u.dict.n] = tv_ref(key);
  dict->u.dict.vals[dict->u.dict.n++] = val;
  if (d > dict->u.dict.depth) dict->u.dict.depth = d;
  return true;
}

bool tv_dict_setz(tv *dict, const char *key, tv *val) {
  tv *k = tv_strz(key);
  if (!k) {
    tv_unref(val);
    return false;
  }
  bool ok = tv_dict_set(dict, k, val);
  tv_unref(k);
  return ok;
}

bool tv_truthy(const tv *v) {
  switch (v->type) {
  case TV_UNDEF:
  case TV_NONE: return false;
  case TV_BOOL: return v->u.b;
  case TV_INT: return v->u.i != 0;
  case TV_FLOAT: return v->u.f != 0.0;
  case TV_STR: return v->u.str.len != 0;
  case TV_LIST: return v->u.list.n != 0;
  case TV_DICT: return v->u.dict.n != 0;
  default: return true;
  }
}

bool tv_is_number(const tv *v) {
  return v->type == TV_INT || v->type == TV_FLOAT || v->type == TV_BOOL;
}

double tv_as_double(const tv *v) {
  if (v->type == TV_INT) return (double)v->u.i;
  if (v->type == TV_FLOAT) return v->u.f;
  if (v->type == TV_BOOL) return v->u.b ? 1.0 : 0.0;
  return 0.0;
}

static int num_cmp(const tv *a, const tv *b) {
  if (a->type != TV_FLOAT && b->type != TV_FLOAT) {
    int64_t x = a->type == TV_BOOL ? a->u.b : a->u.i, y = b->type == TV_BOOL ? b->u.b : b->u.i;
    return x < y ? -1 : x > y;
  }
  double x = tv_as_double(a), y = tv_as_double(b);
  if (x < y) return -1;
  if (x > y) return 1;
  if (x == y) return 0;
  return 2; /* NaN: unordered */
}

bool tv_eq(const tv *a, const tv *b) {
  if (a == b) return a->type != TV_FLOAT || a->u.f == a->u.f;
  if (tv_is_number(a) && tv_is_number(b)) return num_cmp(a, b) == 0;
  if (a->type != b->type) return false;
  switch (a->type) {
  case TV_UNDEF:
  case TV_NONE: return true;
  case TV_STR:
    return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
  case TV_LIST:
    if (a->u.list.is_tuple != b->u.list.is_tuple || a->u.list.n != b->u.list.n) return false;
    for (size_t i = 0; i < a->u.list.n; i++)
      if (!tv_eq(a->u.list.items[i], b->u.list.items[i])) return false;
    return true;
  case TV_DICT:
    if (a->u.dict.n != b->u.dict.n) return false;
    for (size_t i = 0; i < a->u.dict.n; i++) {
      const tv *o = tv_dict_get(b, a->u.dict.keys[i]);
      if (!o || !tv_eq(a->u.dict.vals[i], o)) return false;
    }
    return true;
  default: return false; /* identity only */
  }
}

bool tv_cmp(const tv *a, const tv *b, int *out) {
  if (tv_is_number(a) && tv_is_number(b)) {
    int r = num_cmp(a, b);
    *out = r == 2 ? 2 : r; /* 2: NaN, all of < <= > >= are false */
    return true;
  }
  if (a->type == TV_STR && b->type == TV_STR) {
    size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
    int r = memcmp(a->u.str.s, b->u.str.s, n);
    *out = r < 0 ? -1 : r > 0 ? 1 : a->u.str.len < b->u.str.len ? -1 : a->u.str.len > b->u.str.len;
    return true;
  }
  if (a->type == TV_LIST && b->type == TV_LIST && a->u.list.is_tuple == b->u.list.is_tuple) {
    size_t n = a->u.list.n < b->u.list.n ? a->u.list.n : b->u.list.n;
    for (size_t i = 0; i < n; i++) {
      if (tv_eq(a->u.list.items[i], b->u.list.items[i])) continue;
      return tv_cmp(a->u.list.items[i], b->u.list.items[i], out);
    }
    *out = a->u.list.n < b->u.list.n ? -1 : a->u.list.n > b->u.list.n;
    return true;
  }
  return false;
}

const char *tv_object_type_repr(const tv *v) {
  switch (v->type) {
  case TV_UNDEF: return "jinja2.runtime.Undefined object";
  case TV_NONE: return "None";
  case TV_BOOL: return "bool object";
  case TV_INT: return "int object";
  case TV_FLOAT: return "float object";
  case TV_STR: return "str object";
  case TV_LIST: return v->u.list.is_tuple ? "tuple object" : "list object";
  case TV_DICT: return "dict object";
  case TV_NS: return "jinja2.utils.Namespace object";
  case TV_MACRO: return "jinja2.runtime.Macro object";
  case TV_LOOP: return "jinja2.runtime.LoopContext object";
  default: return "builtin_function_or_method object";
  }
}

const char *tv_type_name(const tv *v) {
  switch (v->type) {
  case TV_UNDEF: return "Undefined";
  case TV_NONE: return "NoneType";
  case TV_BOOL: return "bool";
  case TV_INT: return "int";
  case TV_FLOAT: return "float";
  case TV_STR: return "str";
  case TV_LIST: return v->u.list.is_tuple ? "tuple" : "list";
  case TV_DICT: return "dict";
  case TV_NS: return "Namespace";
  case TV_MACRO: return "Macro";
  case TV_LOOP: return "LoopContext";
  default: return "builtin_function_or_method";
  }
}

/* ---- buffers ---- */

void tbuf_init(tbuf *b, size_t max) {
  memset(b, 0, sizeof(*b));
  b->max = max;
}

bool tbuf_add(tbuf *b, const char *s, size_t len) {
  if (b->overflow) return false;
  if (len > b->max || b->len > b->max - len) {
    b->overflow = true;
    return false;
  }
  if (b->len + len + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 64;
    while (nc < b->len + len + 1) nc *= 2;
    char *p = realloc(b->s, nc);
    if (!p) {
      b->overflow = true;
      return false;
    }
    b->s = p;
    b->cap = nc;
  }
  if (len) memcpy(b->s + b->len, s, len);
  b->len += len;
  b->s[b->len] = 0;
  return true;
}

bool tbuf_addz(tbuf *b, const char *s) { return tbuf_add(b, s, strlen(s)); }
bool tbuf_addc(tbuf *b, char c) { return tbuf_add(b, &c, 1); }

void tbuf_free(tbuf *b) {
  free(b->s);
  b->s = NULL;
  b->len = b->cap = 0;
}

char *tbuf_take(tbuf *b, size_t *len) {
  if (!b->s && !tbuf_add(b, "", 0)) return NULL;
  char *s = b->s;
  if (len) *len = b->len;
  b->s = NULL;
  b->len = b->cap = 0;
  return s;
}

/* ---- UTF-8 ---- */

uint32_t tv_utf8_next(const char *s, size_t len, size_t *i) {
  const unsigned char *u = (const unsigned char *)s;
  size_t p = *i;
  uint32_t c = u[p];
  int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
  if (n <= 0 || p + (size_t)n >= len) {
    *i = p + 1;
    return c;
  }
  uint32_t cp = c & (0x3F >> n);
  for (int k = 1; k <= n; k++) {
    if ((u[p + k] & 0xC0) != 0x80) {
      *i = p + 1;
      return c;
    }
    cp = (cp << 6) | (u[p + k] & 0x3F);
  }
  *i = p + n + 1;
  return cp;
}

size_t tv_utf8_count(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; n++) tv_utf8_next(s, len, &i);
  return n;
}

size_t tv_utf8_offset(const char *s, size_t len, size_t k) {
  size_t i = 0;
  while (k > 0 && i < len) {
    tv_utf8_next(s, len, &i);
    k--;
  }
  return i;
}

bool tv_utf8_put(tbuf *b, uint32_t cp) {
  char t[4];
  if (cp < 0x80) return tbuf_addc(b, (char)cp);
  if (cp < 0x800) {
    t[0] = (char)(0xC0 | (cp >> 6));
    t[1] = (char)(0x80 | (cp & 0x3F));
    return tbuf_add(b, t, 2);
  }
  if (cp < 0x10000) {
    t[0] = (char)(0xE0 | (cp >> 12));
    t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    t[2] = (char)(0x80 | (cp & 0x3F));
    return tbuf_add(b, t, 3);
  }
  t[0] = (char)(0xF0 | (cp >> 18));
  t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  t[3] = (char)(0x80 | (cp & 0x3F));
  return tbuf_add(b, t, 4);
}

bool tv_py_isspace(uint32_t cp) {
  return (cp >= 9 && cp <= 13) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ---- str() and repr() ---- */

void tv_write_float(tbuf *b, double f) {
  if (isnan(f)) {
    tbuf_addz(b, "nan");
    return;
  }
  if (isinf(f)) {
    tbuf_addz(b, f < 0 ? "-inf" : "inf");
    return;
  }
  if (f == 0) {
    tbuf_addz(b, signbit(f) ? "-0.0" : "0.0");
    return;
  }
  char buf[64];
  int prec = 1;
  for (; prec <= 17; prec++) {
    snprintf(buf, sizeof(buf), "%.*e", prec - 1, f);
    if (strtod(buf, NULL) == f) break;
  }
  /* buf: [-]d[.ddd]e[+-]XX -> digits and decimal exponent */
  char digits[32];
  size_t nd = 0;
  const char *p = buf;
  bool neg = *p == '-';
  if (neg) p++;
  for (; *p && *p != 'e'; p++)
    if (*p >= '0' && *p <= '9' && nd < sizeof(digits) - 1) digits[nd++] = *p;
  int exp = (int)strtol(p + 1, NULL, 10);
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  digits[nd] = 0;
  if (neg) tbuf_addc(b, '-');
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      tbuf_addz(b, "0.");
      for (int i = 0; i < -exp - 1; i++) tbuf_addc(b, '0');
      tbuf_add(b, digits, nd);
    } else {
      for (int i = 0; i <= exp; i++) tbuf_addc(b, (size_t)i < nd ? digits[i] : '0');
      tbuf_addc(b, '.');
      if ((size_t)exp + 1 < nd)
        tbuf_add(b, digits + exp + 1, nd - (size_t)exp - 1);
      else
        tbuf_addc(b, '0');
    }
  } else {
    tbuf_addc(b, digits[0]);
    if (nd > 1) {
      tbuf_addc(b, '.');
      tbuf_add(b, digits + 1, nd - 1);
    }
    char e[16];
    snprintf(e, sizeof(e), "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    tbuf_addz(b, e);
  }
}

static bool py_printable(uint32_t cp) {
  if (cp == ' ') return true;
  if (cp < 0x20 || cp == 0x7F) return false;
  if (cp < 0x7F) return true;
  if (cp > 0x10FFFF) return false;
  utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
  switch (cat) {
  case UTF8PROC_CATEGORY_CC:
  case UTF8PROC_CATEGORY_CF:
  case UTF8PROC_CATEGORY_CS:
  case UTF8PROC_CATEGORY_CO:
  case UTF8PROC_CATEGORY_CN:
  case UTF8PROC_CATEGORY_ZL:
  case UTF8PROC_CATEGORY_ZP:
  case UTF8PROC_CATEGORY_ZS: return false;
  default: return true;
  }
}

static bool write_str_repr(tbuf *b, const char *s, size_t len) {
  bool has_sq = memchr(s, '\'', len) != NULL, has_dq = memchr(s, '"', len) != NULL;
  char q = has_sq && !has_dq ? '"' : '\'';
  tbuf_addc(b, q);
  for (size_t i = 0; i < len;) {
    uint32_t cp = tv_utf8_next(s, len, &i);
    char e[16];
    if (cp == (uint32_t)q || cp == '\\') {
      tbuf_addc(b, '\\');
      tbuf_addc(b, (char)cp);
    } else if (cp == '\n') {
      tbuf_addz(b, "\\n");
    } else if (cp == '\r') {
      tbuf_addz(b, "\\r");
    } else if (cp == '\t') {
      tbuf_addz(b, "\\t");
    } else if (!py_printable(cp)) {
      if (cp < 0x100)
        snprintf(e, sizeof(e), "\\x%02x", cp);
      else if (cp < 0x10000)
        snprintf(e, sizeof(e), "\\u%04x", cp);
      else
        snprintf(e, sizeof(e), "\\U%08x", cp);
      tbuf_addz(b, e);
    } else {
      tv_utf8_put(b, cp);
    }
  }
  return tbuf_addc(b, q);
}

bool tv_write_repr(tbuf *b, const tv *v) {
  char num[32];
  switch (v->type) {
  case TV_UNDEF: return tbuf_addz(b, "Undefined"); /* repr(Undefined); str() of it is "" */
  case TV_NONE: return tbuf_addz(b, "None");
  case TV_BOOL: return tbuf_addz(b, v->u.b ? "True" : "False");
  case TV_INT:
    snprintf(num, sizeof(num), "%lld", (long long)v->u.i);
    return tbuf_addz(b, num);
  case TV_FLOAT: tv_write_float(b, v->u.f); return !b->overflow;
  case TV_STR: return write_str_repr(b, v->u.str.s, v->u.str.len);
  case TV_LIST:
    tbuf_addc(b, v->u.list.is_tuple ? '(' : '[');
    for (size_t i = 0; i < v->u.list.n; i++) {
      if (i) tbuf_addz(b, ", ");
      tv_write_repr(b, v->u.list.items[i]);
    }
    if (v->u.list.is_tuple && v->u.list.n == 1) tbuf_addc(b, ',');
    return tbuf_addc(b, v->u.list.is_tuple ? ')' : ']');
  case TV_DICT:
  case TV_NS:
    tbuf_addz(b, v->type == TV_NS ? "<Namespace {" : "{");
    for (size_t i = 0; i < v->u.dict.n; i++) {
      if (i) tbuf_addz(b, ", ");
      tv_write_repr(b, v->u.dict.keys[i]);
      tbuf_addz(b, ": ");
      tv_write_repr(b, v->u.dict.vals[i]);
    }
    return tbuf_addz(b, v->type == TV_NS ? "}>" : "}");
  case TV_MACRO: return tbuf_addz(b, "<Macro>");
  case TV_LOOP: {
    char t[64];
    snprintf(t, sizeof(t), "<LoopContext %zu/%zu>", v->u.loop.i + 1, v->u.loop.items->u.list.n);
    return tbuf_addz(b, t);
  }
  default: return tbuf_addz(b, "<built-in function>");
  }
}

bool tv_write_str(tbuf *b, const tv *v) {
  if (v->type == TV_STR) return tbuf_add(b, v->u.str.s, v->u.str.len);
  if (v->type == TV_UNDEF) return !b->overflow;
  return tv_write_repr(b, v);
}
