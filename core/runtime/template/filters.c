/*
 * filters.c: Jinja2's builtin filters (jinja2/filters.py) as Hugging Face chat templates see them,
 * plus HF's tojson (json.dumps with ensure_ascii=False and the indent/separators/sort_keys options).
 *
 * Each filter takes its input and arguments borrowed and returns a new value, or NULL with an error
 * in the context. Arguments are bound by name like the Python signatures (mlxr_tpl_bind), so
 * `map(attribute='name')` and `sort(reverse=true)` work. String filters apply Python's str() to
 * their input first (Undefined becomes ""), as Jinja's soft_str does.
 *
 * None and undefined follow jinja2/filters.py line by line, checked against Jinja2 over a matrix of
 * every filter x argument kinds x none/undefined/empty (tests/golden/test_template_semantics.py):
 * map, select, reject, selectattr and rejectattr give [] for any false input (none, undefined,
 * empty) before looking at their arguments; list, length, join, first, sort, ... of none are
 * Python's TypeErrors; an attribute of None means the item itself. Where Jinja calls a Python
 * builtin (sorted, sum, min/max, int(), float(), round(), str.center, `%`, `+`, `*`) the builtin's
 * rules and messages hold, in the same order: sorting makes CPython's comparisons in CPython's order
 * for lists under 64 items, so the same pair raises the same TypeError.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/common/status.h"
#include "core/runtime/template/template_impl.h"

static tv *nomem(tctx *c) { return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory"); }

static tv *finish(tctx *c, tbuf *b) {
  if (b->overflow) {
    tbuf_free(b);
    return tctx_fail(c, MLXR_ERR_RANGE, "string exceeds the output limit");
  }
  size_t len;
  char *s = tbuf_take(b, &len);
  return s ? tv_str_take(s, len) : nomem(c);
}

static bool get_bool(const tv *v, bool def) { return v ? tv_truthy(v) : def; }

/* Python's operator.index(): ints and bools; anything else (None, Undefined, floats, strings) is the
 * TypeError Python gives where an integer argument is required (str.center, str.replace count,
 * round's ndigits, sorted's reverse). */
static bool py_index(tctx *c, const tv *v, int64_t *out) {
  if (v->type == TV_INT || v->type == TV_BOOL) {
    *out = v->type == TV_BOOL ? v->u.b : v->u.i;
    return true;
  }
  tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' object cannot be interpreted as an integer", tv_type_name(v));
  return false;
}

/* Jinja's runtime lookup of a filter or test named by a value (map(name), select(name)): the name
 * must be hashable, and an unknown one is a TemplateRuntimeError that repr()s it. */
static bool check_callable_name(tctx *c, const char *kind, const tv *name) {
  if (!mlxr_tpl_check_hashable(c, name)) return false;
  if (name->type == TV_STR && (kind[0] == 'f' ? mlxr_tpl_filter_exists(name->u.str.s) : mlxr_tpl_test_exists(name->u.str.s)))
    return true;
  tbuf b;
  tbuf_init(&b, 300);
  tv_write_repr(&b, name);
  if (name->type == TV_UNDEF)
    tctx_fail(c, MLXR_ERR_INVALID, "TemplateRuntimeError: No %s named %s. (%s; did you forget to quote the callable name?)",
              kind, b.s ? b.s : "", name->u.str.s ? name->u.str.s : "value is undefined");
  else
    tctx_fail(c, MLXR_ERR_INVALID, "TemplateRuntimeError: No %s named %s.", kind, b.s ? b.s : "");
  tbuf_free(&b);
  return false;
}

/* Jinja's make_attrgetter: None means the item itself; a string is a dotted path, each part an
 * item/attribute lookup (digits as indexes); any other value is one key. Looking anything up in
 * an undefined value raises. */
static tv *attr_get(tctx *c, tv *item, const tv *attr) {
  if (!attr || attr->type == TV_NONE) return tv_ref(item);
  if (attr->type != TV_STR) {
    if (item->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, item);
    return mlxr_tpl_getitem(c, item, (tv *)attr);
  }
  tv *cur = tv_ref(item);
  const char *s = attr->u.str.s;
  size_t len = attr->u.str.len, st = 0;
  while (cur) {
    const char *dot = memchr(s + st, '.', len - st);
    size_t e = dot ? (size_t)(dot - s) : len;
    tv *key;
    bool digits = e > st;
    for (size_t i = st; i < e; i++)
      if (s[i] < '0' || s[i] > '9') digits = false;
    if (digits) key = tv_int(strtoll(s + st, NULL, 10));
    else key = tv_str(s + st, e - st);
    if (!key) {
      tv_unref(cur);
      return nomem(c);
    }
    tv *next = cur->type == TV_UNDEF ? mlxr_tpl_undefined_error(c, cur) : mlxr_tpl_getitem(c, cur, key);
    tv_unref(key);
    tv_unref(cur);
    cur = next;
    if (!dot) break;
    st = e + 1;
  }
  return cur;
}

/* Jinja's ignore_case: strings lowered, other values as they are. Takes k, returns the key. */
static tv *ignore_case(tctx *c, tv *k, bool case_sensitive) {
  if (!k || case_sensitive || k->type != TV_STR) return k;
  tv *l = mlxr_tpl_case(c, k->u.str.s, k->u.str.len, 'l');
  tv_unref(k);
  return l;
}

/* Key of unique/min/max: the attribute (if any), lowercased when a string and !case_sensitive. */
static tv *sort_key(tctx *c, tv *item, const tv *attr, bool case_sensitive) {
  return ignore_case(c, attr_get(c, item, attr), case_sensitive);
}

/* Key of the sort filter (make_multi_attrgetter): a list with one value per comma-separated
 * attribute, or [item] without one. Lists compare item by item, so equal keys are never ordered
 * with `<` (sorting undefined values is fine until two differ). */
static tv *multi_key(tctx *c, tv *item, const tv *attr, bool case_sensitive) {
  tv *k = tv_list(1);
  if (!k) return nomem(c);
  if (attr && attr->type == TV_STR) {
    const char *s = attr->u.str.s;
    size_t len = attr->u.str.len, st = 0;
    for (;;) {
      const char *comma = memchr(s + st, ',', len - st);
      size_t e = comma ? (size_t)(comma - s) : len;
      tv *part = tv_str(s + st, e - st);
      tv *v = part ? ignore_case(c, attr_get(c, item, part), case_sensitive) : nomem(c);
      tv_unref(part);
      if (!v || !tv_list_push(k, v)) {
        tv_unref(k);
        return c->failed ? NULL : nomem(c);
      }
      if (!comma) break;
      st = e + 1;
    }
    return k;
  }
  tv *v = ignore_case(c, attr_get(c, item, attr), case_sensitive);
  if (!v || !tv_list_push(k, v)) {
    tv_unref(k);
    return c->failed ? NULL : nomem(c);
  }
  return k;
}

/* a < b as Python evaluates it: 0/1, -1 with an error. */
static int py_lt(tctx *c, tv *a, tv *b) { return mlxr_tpl_compare(c, CMP_LT, a, b); }

/* Stable merge sort of idx[0..n) by keys[idx] (for lists of 64 items and more). */
static bool merge_sort(tctx *c, size_t *idx, size_t *tmp, size_t n, tv **keys) {
  if (n < 2) return true;
  size_t h = n / 2;
  if (!merge_sort(c, idx, tmp, h, keys) || !merge_sort(c, idx + h, tmp, n - h, keys)) return false;
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n) {
    int less = py_lt(c, keys[idx[j]], keys[idx[i]]); /* take from the right only if strictly before */
    if (less < 0) return false;
    tmp[k++] = less ? idx[j++] : idx[i++];
  }
  while (i < h) tmp[k++] = idx[i++];
  while (j < n) tmp[k++] = idx[j++];
  memcpy(idx, tmp, n * sizeof(size_t));
  return true;
}

static void reverse_idx(size_t *idx, size_t n) {
  for (size_t i = 0; i < n / 2; i++) {
    size_t t = idx[i];
    idx[i] = idx[n - 1 - i];
    idx[n - 1 - i] = t;
  }
}

/* Sorts idx[0..n) by keys[idx[i]] as CPython's list.sort does: below 64 items (every list a chat
 * template sorts) the same comparisons in the same order (a run count, then binary insertion), so
 * the same pair raises the same TypeError and inconsistent orders (NaN) come out the same; a
 * stable merge sort beyond. reverse sorts the reversed list and reverses the result, as CPython
 * does, which keeps equal items in their original order. */
static bool py_sort(tctx *c, size_t *idx, size_t *tmp, size_t n, tv **keys, bool reverse) {
  if (reverse) reverse_idx(idx, n);
  bool ok = true;
  if (n >= 64) {
    ok = merge_sort(c, idx, tmp, n, keys);
  } else if (n >= 2) {
    size_t run = 2;
    int lt = py_lt(c, keys[idx[1]], keys[idx[0]]);
    bool descending = lt == 1;
    ok = lt >= 0;
    while (ok && run < n) {
      lt = py_lt(c, keys[idx[run]], keys[idx[run - 1]]);
      if (lt < 0) ok = false;
      else if ((lt == 1) != descending) break;
      else run++;
    }
    if (ok && descending) reverse_idx(idx, run);
    for (size_t start = run; ok && start < n; start++) {
      size_t pivot = idx[start], l = 0, r = start;
      while (l < r) {
        size_t p = l + ((r - l) >> 1);
        lt = py_lt(c, keys[pivot], keys[idx[p]]);
        if (lt < 0) {
          ok = false;
          break;
        }
        if (lt) r = p;
        else l = p + 1;
      }
      if (!ok) break;
      memmove(idx + l + 1, idx + l, (start - l) * sizeof(size_t));
      idx[l] = pivot;
    }
  }
  if (ok && reverse) reverse_idx(idx, n);
  return ok;
}

/* sorted(items, key=keys, reverse=reverse): a new list; keys[i] is the key of items[i]. */
static tv *sorted(tctx *c, tv *items, tv **keys, bool reverse) {
  size_t n = items->u.list.n;
  size_t *idx = malloc((n + 1) * sizeof(size_t)), *tmp = malloc((n + 1) * sizeof(size_t));
  tv *r = NULL;
  if (idx && tmp) {
    for (size_t i = 0; i < n; i++) idx[i] = i;
    if (py_sort(c, idx, tmp, n, keys, reverse)) {
      r = tv_list(n);
      for (size_t i = 0; r && i < n; i++)
        if (!tv_list_push(r, tv_ref(items->u.list.items[idx[i]]))) {
          tv_unref(r);
          r = NULL;
        }
    }
  }
  free(idx);
  free(tmp);
  if (!r && !c->failed) nomem(c);
  return r;
}

/* sorted()'s reverse argument: absent is False; otherwise an integer (None is a TypeError). */
static bool sort_reverse(tctx *c, const tv *v, bool *out) {
  int64_t r = 0;
  if (v && !py_index(c, v, &r)) return false;
  *out = r != 0;
  return true;
}

static tv *html_escape(tctx *c, const tv *v) {
  tv *s = mlxr_tpl_to_str(c, v);
  if (!s) return NULL;
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  for (size_t i = 0; i < s->u.str.len; i++) {
    char ch = s->u.str.s[i];
    switch (ch) {
    case '&': tbuf_addz(&b, "&amp;"); break;
    case '<': tbuf_addz(&b, "&lt;"); break;
    case '>': tbuf_addz(&b, "&gt;"); break;
    case '"': tbuf_addz(&b, "&#34;"); break;
    case '\'': tbuf_addz(&b, "&#39;"); break;
    default: tbuf_addc(&b, ch);
    }
  }
  tv_unref(s);
  return finish(c, &b);
}

static tv *f_tojson(tctx *c, tv *in, tv **a) {
  /* a: ensure_ascii, indent, separators, sort_keys */
  int indent = -1;
  const char *indent_str = NULL;
  if (a[1] && a[1]->type != TV_NONE) {
    if (a[1]->type == TV_STR) {
      indent = 0;
      indent_str = a[1]->u.str.s;
    } else if (a[1]->type == TV_INT) {
      indent = a[1]->u.i < 0 ? 0 : a[1]->u.i > 60 ? 60 : (int)a[1]->u.i;
    } else {
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: tojson indent must be an int or a string");
    }
  }
  const char *isep = NULL, *ksep = NULL;
  if (a[2] && a[2]->type != TV_NONE) {
    if (a[2]->type != TV_LIST || a[2]->u.list.n != 2 || a[2]->u.list.items[0]->type != TV_STR ||
        a[2]->u.list.items[1]->type != TV_STR)
      return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: tojson separators must be a pair of strings");
    isep = a[2]->u.list.items[0]->u.str.s;
    ksep = a[2]->u.list.items[1]->u.str.s;
  }
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  if (!mlxr_tpl_json_dump(c, &b, in, indent, indent_str, isep, ksep, get_bool(a[3], false), get_bool(a[0], false))) {
    tbuf_free(&b);
    return NULL;
  }
  return finish(c, &b);
}

static tv *f_indent(tctx *c, tv *in, tv **a) {
  /* Jinja: indention = width if a str else " " * width; then s += "\n" (so s must be a str) */
  tv *ind;
  if (a[0] && a[0]->type == TV_STR) {
    ind = tv_ref(a[0]);
  } else {
    tv *sp = tv_strz(" "), *w = a[0] ? tv_ref(a[0]) : tv_int(4);
    ind = sp && w ? mlxr_tpl_binop(c, OP_MUL, sp, w) : NULL;
    tv_unref(sp);
    tv_unref(w);
    if (!ind) return c->failed ? NULL : nomem(c);
  }
  if (in->type != TV_STR) {
    tv_unref(ind);
    if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
    if (in->type == TV_LIST && !in->u.list.is_tuple)
      return tctx_fail(c, MLXR_ERR_INVALID, "AttributeError: 'list' object has no attribute 'splitlines'");
    if (in->type == TV_LIST)
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: can only concatenate tuple (not \"str\") to tuple");
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: unsupported operand type(s) for +=: '%s' and 'str'", tv_type_name(in));
  }
  const char *is = ind->u.str.s;
  size_t il = ind->u.str.len;
  bool first = get_bool(a[1], false), blank = get_bool(a[2], false);
  /* lines of s + "\n" per str.splitlines (on \n, \r\n, \r and the other Unicode breaks) */
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  if (first) tbuf_add(&b, is, il);
  const char *p = in->u.str.s;
  size_t n = in->u.str.len, st = 0, i = 0;
  bool first_line = true;
  while (i < n) {
    size_t e = i;
    uint32_t cp = tv_utf8_next(p, n, &i);
    if (!(cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d || cp == 0x1e ||
          cp == 0x85 || cp == 0x2028 || cp == 0x2029))
      continue;
    if (cp == '\r' && i < n && p[i] == '\n') i++;
    if (!first_line) {
      tbuf_addc(&b, '\n');
      if (blank || e > st) tbuf_add(&b, is, il);
    }
    tbuf_add(&b, p + st, e - st);
    first_line = false;
    st = i;
  }
  if (st < n) { /* last line without a break (the appended "\n" ends it) */
    if (!first_line) {
      tbuf_addc(&b, '\n');
      tbuf_add(&b, is, il);
    }
    tbuf_add(&b, p + st, n - st);
  }
  tv_unref(ind);
  return finish(c, &b);
}

/* float -> int as Python's int()/math.floor() do: NaN and infinities are errors. */
static tv *float_to_int(tctx *c, double f) {
  if (isnan(f)) return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: cannot convert float NaN to integer");
  if (isinf(f)) return tctx_fail(c, MLXR_ERR_INVALID, "OverflowError: cannot convert float infinity to integer");
  if (fabs(f) >= 9.2233720368547758e18) return tctx_fail(c, MLXR_ERR_UNSUPPORTED, "integer does not fit in 64 bits");
  return tv_int((int64_t)f);
}

/* Jinja's round: the method is checked first; "common" is Python's round(value, precision)
 * (precision None rounds a float to an int; ints stay ints), "ceil"/"floor" are
 * math.ceil/floor(value * 10**precision) / 10**precision with Python's operators. */
static tv *py_round(tctx *c, tv *in, tv **a) {
  const char *method = "common";
  if (a[1]) {
    if (a[1]->type != TV_STR || (strcmp(a[1]->u.str.s, "common") && strcmp(a[1]->u.str.s, "ceil") &&
                                 strcmp(a[1]->u.str.s, "floor")))
      return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: method must be common, ceil or floor");
    method = a[1]->u.str.s;
  }
  if (!strcmp(method, "common")) {
    if (!tv_is_number(in))
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: type %s doesn't define __round__ method", tv_type_name(in));
    bool to_int = a[0] && a[0]->type == TV_NONE;
    int64_t prec = 0;
    if (a[0] && !to_int && !py_index(c, a[0], &prec)) return NULL;
    if (in->type != TV_FLOAT) {
      int64_t x = in->type == TV_BOOL ? in->u.b : in->u.i;
      if (prec >= 0) return tv_int(x);
      if (prec < -18) return tv_int(0);
      int64_t m = 1;
      for (int64_t k = 0; k < -prec; k++) m *= 10;
      int64_t q = x / m, r = x % m, out;
      if (r < 0) {
        r += m;
        q -= 1;
      }
      if (2 * r > m || (2 * r == m && (q & 1))) q += 1; /* halves to even */
      if (__builtin_mul_overflow(q, m, &out)) return tctx_fail(c, MLXR_ERR_UNSUPPORTED, "integer does not fit in 64 bits");
      return tv_int(out);
    }
    double x = in->u.f;
    if (to_int) return float_to_int(c, nearbyint(x)); /* the default rounding mode: halves to even */
    /* Python's round(): correctly rounded, halves to even, via the shortest decimal repr */
    char buf[400];
    snprintf(buf, sizeof(buf), "%.*f", (int)(prec < 0 ? 0 : prec > 30 ? 30 : prec), x);
    double r = strtod(buf, NULL);
    if (prec < 0) r = nearbyint(x / pow(10.0, (double)-prec)) * pow(10.0, (double)-prec);
    return tv_float(r);
  }
  tv *ten = tv_int(10), *p = a[0] ? tv_ref(a[0]) : tv_int(0);
  tv *scale = ten && p ? mlxr_tpl_binop(c, OP_POW, ten, p) : NULL;
  tv *scaled = scale ? mlxr_tpl_binop(c, OP_MUL, in, scale) : NULL;
  tv *whole = NULL, *r = NULL;
  if (scaled && !tv_is_number(scaled)) {
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: must be real number, not %s", tv_type_name(scaled));
  } else if (scaled) {
    if (scaled->type != TV_FLOAT) whole = tv_int(scaled->type == TV_BOOL ? scaled->u.b : scaled->u.i);
    else whole = float_to_int(c, method[0] == 'c' ? ceil(scaled->u.f) : floor(scaled->u.f));
    if (whole) r = mlxr_tpl_binop(c, OP_DIV, whole, scale);
  }
  tv_unref(ten);
  tv_unref(p);
  tv_unref(scale);
  tv_unref(scaled);
  tv_unref(whole);
  return r ? r : c->failed ? NULL : nomem(c);
}

/* Python's int(s, base) of a stripped str: sign, a 0x/0o/0b prefix where the base allows it,
 * digits with single underscores between them; base 0 reads the prefix and refuses leading zeros.
 * false where Python raises ValueError; *big when the value needs more than 64 bits. */
static bool py_parse_int(const char *s, size_t len, int64_t base, int64_t *out, bool *big) {
  size_t i = 0;
  bool neg = false;
  *big = false;
  if (base != 0 && (base < 2 || base > 36)) return false;
  if (i < len && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  bool prefixed = false;
  if (i + 1 < len && s[i] == '0') {
    char p = (char)(s[i + 1] | 0x20);
    int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (pb && (base == 0 || base == pb)) {
      base = pb;
      i += 2;
      prefixed = true;
      if (i < len && s[i] == '_') i++;
    }
  }
  bool decimal0 = base == 0;
  if (base == 0) base = 10;
  uint64_t v = 0;
  size_t digits = 0;
  bool nonzero = false, leading_zero = false;
  for (; i < len; i++) {
    if (s[i] == '_') {
      if (digits == 0 || i + 1 >= len || s[i + 1] == '_') return false;
      continue;
    }
    char ch = s[i];
    int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'z' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'Z' ? ch - 'A' + 10 : 99;
    if (d >= base) return false;
    if (digits == 0 && d == 0) leading_zero = true;
    if (d) nonzero = true;
    if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) *big = true;
    else v = v * (uint64_t)base + (uint64_t)d;
    digits++;
  }
  if (digits == 0) return false;
  if (decimal0 && !prefixed && leading_zero && nonzero) return false;
  if (v > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) *big = true;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

/* Python's float(s) of a stripped str: decimal notation with single underscores between digits,
 * or inf/infinity/nan with a sign; false where Python raises ValueError. */
static bool py_parse_float(const char *s, size_t len, double *out) {
  char buf[128];
  size_t n = 0, i = 0;
  if (len == 0 || len >= sizeof(buf)) return false;
  if (s[i] == '+' || s[i] == '-') buf[n++] = s[i++];
  const char *rest = s + i;
  size_t rl = len - i;
  if ((rl == 3 && !strncasecmp(rest, "inf", 3)) || (rl == 8 && !strncasecmp(rest, "infinity", 8)) ||
      (rl == 3 && !strncasecmp(rest, "nan", 3))) {
    memcpy(buf + n, rest, rl);
    buf[n + rl] = 0;
    *out = strtod(buf, NULL);
    return true;
  }
  size_t mant = 0;
  bool dot = false, exp = false;
  for (; i < len; i++) {
    char ch = s[i];
    if (ch >= '0' && ch <= '9') {
      if (!exp) mant++;
      buf[n++] = ch;
    } else if (ch == '_') {
      if (i == 0 || i + 1 >= len || s[i - 1] < '0' || s[i - 1] > '9' || s[i + 1] < '0' || s[i + 1] > '9') return false;
    } else if (ch == '.' && !dot && !exp) {
      dot = true;
      buf[n++] = ch;
    } else if ((ch == 'e' || ch == 'E') && !exp && mant > 0) {
      exp = true;
      buf[n++] = ch;
      if (i + 1 < len && (s[i + 1] == '+' || s[i + 1] == '-')) buf[n++] = s[++i];
      if (i + 1 >= len || s[i + 1] < '0' || s[i + 1] > '9') return false;
    } else {
      return false;
    }
  }
  if (mant == 0) return false;
  buf[n] = 0;
  *out = strtod(buf, NULL);
  return true;
}

/* Jinja's int filter: int(value, base) for strings, int(value) otherwise; on TypeError or
 * ValueError int(float(value)); on another the default. Undefined raises (its __int__ does), as
 * does an infinite float. The base is only looked at for strings. */
static tv *f_int(tctx *c, tv *in, tv *def, tv *base_v) {
  if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
  if (in->type == TV_INT || in->type == TV_BOOL) return tv_int(in->type == TV_BOOL ? in->u.b : in->u.i);
  if (in->type == TV_FLOAT) {
    if (isnan(in->u.f)) return def ? tv_ref(def) : tv_int(0); /* ValueError, and again from float() */
    return float_to_int(c, trunc(in->u.f));
  }
  if (in->type == TV_STR) {
    tv *t = mlxr_tpl_strip(c, in, NULL, 'b');
    if (!t) return NULL;
    int64_t base = 10, v;
    bool big = false, ok = !base_v || base_v->type == TV_INT || base_v->type == TV_BOOL;
    if (base_v && ok) base = base_v->type == TV_BOOL ? base_v->u.b : base_v->u.i;
    ok = ok && py_parse_int(t->u.str.s, t->u.str.len, base, &v, &big);
    double d;
    bool fl = !ok && py_parse_float(t->u.str.s, t->u.str.len, &d);
    tv_unref(t);
    if (ok && big) return tctx_fail(c, MLXR_ERR_UNSUPPORTED, "integer does not fit in 64 bits");
    if (ok) return tv_int(v);
    if (fl && !isnan(d)) return float_to_int(c, trunc(d));
  }
  return def ? tv_ref(def) : tv_int(0);
}

/* Jinja's float filter: float(value), the default on TypeError or ValueError; Undefined raises. */
static tv *f_float(tctx *c, tv *in, tv *def) {
  if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
  if (tv_is_number(in)) return tv_float(tv_as_double(in));
  if (in->type == TV_STR) {
    tv *t = mlxr_tpl_strip(c, in, NULL, 'b');
    if (!t) return NULL;
    double d;
    bool ok = py_parse_float(t->u.str.s, t->u.str.len, &d);
    tv_unref(t);
    if (ok) return tv_float(d);
  }
  return def ? tv_ref(def) : tv_float(0.0);
}

/* select/reject/selectattr/rejectattr: keep items where test(item[.attr]) == want. As in Jinja, a
 * false input (none, undefined, empty) gives an empty result before anything else is looked at;
 * the test is looked up per item, so an unknown test name fails only on a non-empty input. */
static tv *select_items(tctx *c, tv *in, tv **args, size_t n, bool want, bool by_attr) {
  if (!tv_truthy(in)) {
    tv *empty = tv_list(0);
    return empty ? empty : nomem(c);
  }
  size_t ai = 0;
  const tv *attr = NULL;
  if (by_attr) {
    if (n < 1) return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: Missing parameter for attribute name");
    attr = args[ai++];
  }
  const tv *test = ai < n ? args[ai++] : NULL;
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  tv *out = tv_list(0);
  bool ok = out != NULL;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    tv *it = items->u.list.items[i];
    tv *v = attr_get(c, it, attr);
    if (!v || (test && !check_callable_name(c, "test", test))) {
      tv_unref(v);
      ok = false;
      break;
    }
    int r = test ? mlxr_tpl_test(c, test->u.str.s, v, args + ai, n - ai) : tv_truthy(v);
    tv_unref(v);
    if (r < 0) ok = false;
    else if ((r != 0) == want) ok = tv_list_push(out, tv_ref(it));
  }
  tv_unref(items);
  if (!ok) {
    tv_unref(out);
    if (!c->failed) nomem(c);
    return NULL;
  }
  return out;
}

/* map(filter, args...) or map(attribute=..., default=...); like select, a false input maps to an
 * empty list before the arguments are looked at, and the filter is looked up per item. */
static tv *f_map(tctx *c, tv *in, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  if (!tv_truthy(in)) {
    tv *empty = tv_list(0);
    return empty ? empty : nomem(c);
  }
  tv *attr = NULL, *def = NULL;
  bool by_attr = false;
  for (size_t k = 0; n == 0 && k < nkw; k++) {
    if (!strcmp(kwn[k], "attribute")) {
      attr = kwv[k];
      by_attr = true;
    }
  }
  if (by_attr) {
    for (size_t k = 0; k < nkw; k++) {
      if (!strcmp(kwn[k], "default")) def = kwv[k];
      else if (strcmp(kwn[k], "attribute") != 0)
        return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: Unexpected keyword argument '%s'", kwn[k]);
    }
    if (def && def->type == TV_NONE) def = NULL; /* Jinja: default=None means no default */
  } else if (n < 1) {
    return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: map requires a filter argument");
  }
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  tv *out = tv_list(items->u.list.n);
  bool ok = out != NULL;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    tv *v;
    if (by_attr) {
      v = attr_get(c, items->u.list.items[i], attr);
      if (v && v->type == TV_UNDEF && def) {
        tv_unref(v);
        v = tv_ref(def);
      }
    } else if (!check_callable_name(c, "filter", args[0])) {
      v = NULL;
    } else {
      v = mlxr_tpl_filter(c, args[0]->u.str.s, items->u.list.items[i], args + 1, n - 1, nkw ? kwn : NULL, kwv, nkw);
    }
    ok = v && tv_list_push(out, v);
  }
  tv_unref(items);
  if (!ok) {
    tv_unref(out);
    if (!c->failed) nomem(c);
    return NULL;
  }
  return out;
}

/* unique: the first item of each key, keys compared as a Python set does (so they must be
 * hashable, and 1, 1.0 and true are one key). */
static tv *f_unique(tctx *c, tv *in, tv **a) {
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  bool cs = get_bool(a[0], false);
  tv *out = tv_list(0), *seen = tv_list(0);
  bool ok = out && seen;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    tv *k = sort_key(c, items->u.list.items[i], a[1], cs);
    if (!k || !mlxr_tpl_check_hashable(c, k)) {
      tv_unref(k);
      ok = false;
      break;
    }
    bool dup = false;
    for (size_t j = 0; j < seen->u.list.n && !dup; j++) dup = tv_eq(seen->u.list.items[j], k);
    if (!dup) ok = tv_list_push(seen, k) && tv_list_push(out, tv_ref(items->u.list.items[i]));
    else tv_unref(k);
  }
  tv_unref(items);
  tv_unref(seen);
  if (!ok) {
    tv_unref(out);
    if (!c->failed) nomem(c);
    return NULL;
  }
  return out;
}

/* Python's min()/max() with a key: each new key is compared to the best so far with < (min) or
 * > (max); the first of equal items wins. */
static tv *f_minmax(tctx *c, tv *in, tv **a, bool want_max) {
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  bool cs = get_bool(a[0], false);
  tv *best = NULL, *bestk = NULL;
  bool ok = true;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    tv *k = sort_key(c, items->u.list.items[i], a[1], cs);
    if (!k) {
      ok = false;
      break;
    }
    int better = best ? mlxr_tpl_compare(c, want_max ? CMP_GT : CMP_LT, k, bestk) : 1;
    ok = better >= 0;
    if (better == 1) {
      tv_unref(bestk);
      bestk = k;
      best = items->u.list.items[i];
    } else {
      tv_unref(k);
    }
  }
  tv *r = ok ? (best ? tv_ref(best) : tv_undef("No aggregated item, sequence was empty.")) : NULL;
  tv_unref(bestk);
  tv_unref(items);
  return r;
}

/* Python's sum(iterable, start) with Python's +; a string start is refused. */
static tv *f_sum(tctx *c, tv *in, tv **a) {
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  if (a[1] && a[1]->type == TV_STR) {
    tv_unref(items);
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: sum() can't sum strings [use ''.join(seq) instead]");
  }
  tv *acc = a[1] ? tv_ref(a[1]) : tv_int(0);
  for (size_t i = 0; acc && i < items->u.list.n; i++) {
    tv *v = attr_get(c, items->u.list.items[i], a[0]);
    tv *r = v ? mlxr_tpl_binop(c, OP_ADD, acc, v) : NULL;
    tv_unref(v);
    tv_unref(acc);
    acc = r;
  }
  tv_unref(items);
  return acc ? acc : c->failed ? NULL : nomem(c);
}

/* dictsort: sorted(value.items(), key=item[0 or 1], reverse=reverse); `by` is checked first. */
static tv *f_dictsort(tctx *c, tv *in, tv **a) {
  bool cs = get_bool(a[0], false), rev;
  int pos = 0;
  if (a[1]) {
    if (a[1]->type == TV_STR && !strcmp(a[1]->u.str.s, "value")) pos = 1;
    else if (a[1]->type != TV_STR || strcmp(a[1]->u.str.s, "key") != 0)
      return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
  }
  if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
  if (in->type != TV_DICT)
    return tctx_fail(c, MLXR_ERR_INVALID, "AttributeError: '%s' object has no attribute 'items'", tv_type_name(in));
  if (!sort_reverse(c, a[2], &rev)) return NULL;
  size_t n = in->u.dict.n;
  tv *pairs = tv_list(n);
  tv **keys = calloc(n + 1, sizeof(tv *));
  bool ok = pairs && keys;
  for (size_t i = 0; ok && i < n; i++) {
    tv *p = tv_list(2);
    ok = p && tv_list_push(p, tv_ref(in->u.dict.keys[i])) && tv_list_push(p, tv_ref(in->u.dict.vals[i]));
    if (p) p->u.list.is_tuple = true;
    ok = ok && tv_list_push(pairs, p);
    if (ok) ok = (keys[i] = ignore_case(c, tv_ref(p->u.list.items[pos]), cs)) != NULL;
  }
  tv *r = ok ? sorted(c, pairs, keys, rev) : NULL;
  for (size_t i = 0; keys && i < n; i++) tv_unref(keys[i]);
  free(keys);
  tv_unref(pairs);
  if (!r && !c->failed) nomem(c);
  return r;
}

/* sort: sorted(value, key=[attributes], reverse=reverse): the list is made, then reverse is
 * checked, then every key computed, then compared. */
static tv *f_sort(tctx *c, tv *in, tv **a) {
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  bool rev, cs = get_bool(a[1], false);
  if (!sort_reverse(c, a[0], &rev)) {
    tv_unref(items);
    return NULL;
  }
  size_t n = items->u.list.n;
  tv **keys = calloc(n + 1, sizeof(tv *));
  bool ok = keys != NULL;
  for (size_t i = 0; ok && i < n; i++) ok = (keys[i] = multi_key(c, items->u.list.items[i], a[2], cs)) != NULL;
  tv *r = ok ? sorted(c, items, keys, rev) : NULL;
  for (size_t i = 0; keys && i < n; i++) tv_unref(keys[i]);
  free(keys);
  tv_unref(items);
  if (!r && !c->failed) nomem(c);
  return r;
}

/* batch: Jinja's generator, step by step: a new batch starts when the current one's length ==
 * linecount (Python ==, so none never matches and everything lands in one batch); the last one is
 * padded to linecount when fill_with is not none. */
static tv *f_batch(tctx *c, tv *in, tv **a) {
  if (!a[0]) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: do_batch() missing 1 required positional argument: 'linecount'");
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  tv *count = a[0];
  tv *out = tv_list(0), *cur = tv_list(0);
  bool ok = out && cur;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    tv *len = tv_int((int64_t)cur->u.list.n);
    ok = len != NULL;
    if (ok && tv_eq(len, count)) {
      ok = tv_list_push(out, cur);
      cur = ok ? tv_list(0) : NULL;
      ok = ok && cur;
    }
    tv_unref(len);
    if (ok) ok = tv_list_push(cur, tv_ref(items->u.list.items[i]));
  }
  if (ok && cur->u.list.n && a[1] && a[1]->type != TV_NONE) {
    tv *len = tv_int((int64_t)cur->u.list.n);
    int lt = len ? mlxr_tpl_compare(c, CMP_LT, len, count) : -1;
    tv_unref(len);
    ok = lt >= 0;
    if (lt == 1 && count->type != TV_INT && count->type != TV_BOOL) {
      tctx_fail(c, MLXR_ERR_INVALID, "TypeError: can't multiply sequence by non-int of type '%s'", tv_type_name(count));
      ok = false;
    }
    int64_t want = count->type == TV_BOOL ? count->u.b : count->type == TV_INT ? count->u.i : 0;
    if (lt == 1 && want - (int64_t)cur->u.list.n > (int64_t)(c->params->max_output_bytes / 8)) {
      tctx_fail(c, MLXR_ERR_RANGE, "batch padding exceeds the size limit");
      ok = false;
    }
    while (ok && lt == 1 && (int64_t)cur->u.list.n < want) ok = tv_list_push(cur, tv_ref(a[1]));
  }
  if (ok && cur->u.list.n) {
    ok = tv_list_push(out, cur);
    cur = NULL;
  }
  tv_unref(cur);
  tv_unref(items);
  if (!ok) {
    tv_unref(out);
    return c->failed ? NULL : nomem(c);
  }
  return out;
}

static tv *f_striptags(tctx *c, tv *in) {
  tv *s = mlxr_tpl_to_str(c, in);
  if (!s) return NULL;
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  bool in_tag = false, space = false, any = false;
  for (size_t i = 0; i < s->u.str.len;) {
    uint32_t cp = tv_utf8_next(s->u.str.s, s->u.str.len, &i);
    if (in_tag) {
      if (cp == '>') in_tag = false;
      continue;
    }
    if (cp == '<') {
      in_tag = true;
      continue;
    }
    if (tv_py_isspace(cp)) {
      space = any;
      continue;
    }
    if (space) tbuf_addc(&b, ' ');
    space = false;
    any = true;
    tv_utf8_put(&b, cp);
  }
  tv_unref(s);
  return finish(c, &b);
}

static tv *f_center(tctx *c, tv *in, tv **a) {
  int64_t w = 80;
  tv *s = mlxr_tpl_to_str(c, in);
  if (!s) return NULL;
  if (a[0] && !py_index(c, a[0], &w)) {
    tv_unref(s);
    return NULL;
  }
  int64_t n = (int64_t)tv_utf8_count(s->u.str.s, s->u.str.len);
  if (w <= n) return s;
  if ((uint64_t)w > c->params->max_output_bytes) {
    tv_unref(s);
    return tctx_fail(c, MLXR_ERR_RANGE, "string exceeds the output limit");
  }
  int64_t pad = w - n, left = pad / 2 + (pad & w & 1);
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  for (int64_t i = 0; i < left; i++) tbuf_addc(&b, ' ');
  tbuf_add(&b, s->u.str.s, s->u.str.len);
  for (int64_t i = 0; i < pad - left; i++) tbuf_addc(&b, ' ');
  tv_unref(s);
  return finish(c, &b);
}

static tv *f_wordcount(tctx *c, tv *in) {
  tv *s = mlxr_tpl_to_str(c, in);
  if (!s) return NULL;
  int64_t n = 0;
  bool inword = false;
  for (size_t i = 0; i < s->u.str.len;) {
    uint32_t cp = tv_utf8_next(s->u.str.s, s->u.str.len, &i);
    bool w = cp == '_' || (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
             (cp >= 0x80 && !tv_py_isspace(cp));
    if (w && !inword) n++;
    inword = w;
  }
  tv_unref(s);
  return tv_int(n);
}

static tv *f_reverse(tctx *c, tv *in) {
  if (in->type == TV_STR) {
    tv *chars = mlxr_tpl_iterate(c, in);
    if (!chars) return NULL;
    tbuf b;
    tbuf_init(&b, c->params->max_output_bytes);
    for (size_t i = chars->u.list.n; i-- > 0;) tbuf_add(&b, chars->u.list.items[i]->u.str.s, chars->u.list.items[i]->u.str.len);
    tv_unref(chars);
    return finish(c, &b);
  }
  /* reversed(value), else list(value) reversed, else Jinja's error */
  if (in->type != TV_LIST && in->type != TV_DICT && in->type != TV_UNDEF)
    return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: argument must be iterable");
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  tv *r = tv_list(items->u.list.n);
  for (size_t i = items->u.list.n; r && i-- > 0;)
    if (!tv_list_push(r, tv_ref(items->u.list.items[i]))) {
      tv_unref(r);
      r = NULL;
    }
  tv_unref(items);
  return r ? r : nomem(c);
}

static tv *f_join(tctx *c, tv *in, tv **a) {
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  tv *sep = a[0] ? mlxr_tpl_to_str(c, a[0]) : NULL;
  bool ok = !a[0] || sep;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    if (i && sep) tbuf_add(&b, sep->u.str.s, sep->u.str.len);
    tv *v = attr_get(c, items->u.list.items[i], a[1]);
    if (!v) ok = false;
    else tv_write_str(&b, v);
    tv_unref(v);
  }
  tv_unref(sep);
  tv_unref(items);
  if (!ok) {
    tbuf_free(&b);
    return NULL;
  }
  return finish(c, &b);
}

static tv *f_length(tctx *c, tv *in) {
  switch (in->type) {
  case TV_STR: return tv_int((int64_t)tv_utf8_count(in->u.str.s, in->u.str.len));
  case TV_LIST: return tv_int((int64_t)in->u.list.n);
  case TV_DICT: return tv_int((int64_t)in->u.dict.n);
  case TV_UNDEF: return tv_int(0);
  default: return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: object of type '%s' has no len()", tv_type_name(in));
  }
}

static tv *f_items(tctx *c, tv *in) {
  if (in->type == TV_UNDEF) return tv_list(0);
  if (in->type != TV_DICT) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: Can only get item pairs from a mapping.");
  tv *l = tv_list(in->u.dict.n);
  for (size_t i = 0; l && i < in->u.dict.n; i++) {
    tv *p = tv_list(2);
    bool ok = p && tv_list_push(p, tv_ref(in->u.dict.keys[i])) && tv_list_push(p, tv_ref(in->u.dict.vals[i]));
    if (p) p->u.list.is_tuple = true;
    if (!ok || !tv_list_push(l, p)) {
      if (!ok) tv_unref(p);
      tv_unref(l);
      l = NULL;
    }
  }
  return l ? l : nomem(c);
}

static tv *f_format(tctx *c, tv *in, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  if (n && nkw) return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: can't handle positional and keyword arguments at the same time");
  if (nkw) return tctx_fail(c, MLXR_ERR_UNSUPPORTED, "format filter with keyword arguments is not supported");
  (void)kwn;
  (void)kwv;
  tv *s = mlxr_tpl_to_str(c, in);
  if (!s) return NULL;
  tv *t = tv_list(n);
  if (t) t->u.list.is_tuple = true;
  for (size_t i = 0; t && i < n; i++) tv_list_push(t, tv_ref(args[i]));
  tv *r = NULL;
  if (t) {
    r = mlxr_tpl_percent_format(c, s, t);
  } else {
    nomem(c);
  }
  tv_unref(t);
  tv_unref(s);
  return r;
}

typedef enum {
  FL_ABS, FL_ATTR, FL_BATCH, FL_CAPITALIZE, FL_CENTER, FL_COUNT, FL_DEFAULT, FL_DICTSORT, FL_ESCAPE, FL_FIRST,
  FL_FLOAT, FL_FORMAT, FL_INDENT, FL_INT, FL_ITEMS, FL_JOIN, FL_LAST, FL_LENGTH, FL_LIST, FL_LOWER, FL_MAP, FL_MAX,
  FL_MIN, FL_REJECT, FL_REJECTATTR, FL_REPLACE, FL_REVERSE, FL_ROUND, FL_SAFE, FL_SELECT, FL_SELECTATTR, FL_SORT,
  FL_STRING, FL_STRIPTAGS, FL_SUM, FL_TITLE, FL_TOJSON, FL_TRIM, FL_UNIQUE, FL_UPPER, FL_WORDCOUNT,
} filter_id;

static const struct {
  const char *name;
  filter_id id;
  const char *params[5]; /* bound parameters (NULL-terminated); {"*"} for variadic */
} FILTERS[] = {
    {"abs", FL_ABS, {NULL}},
    {"attr", FL_ATTR, {"name", NULL}},
    {"batch", FL_BATCH, {"linecount", "fill_with", NULL}},
    {"capitalize", FL_CAPITALIZE, {NULL}},
    {"center", FL_CENTER, {"width", NULL}},
    {"count", FL_COUNT, {NULL}},
    {"d", FL_DEFAULT, {"default_value", "boolean", NULL}},
    {"default", FL_DEFAULT, {"default_value", "boolean", NULL}},
    {"dictsort", FL_DICTSORT, {"case_sensitive", "by", "reverse", NULL}},
    {"e", FL_ESCAPE, {NULL}},
    {"escape", FL_ESCAPE, {NULL}},
    {"first", FL_FIRST, {NULL}},
    {"float", FL_FLOAT, {"default", NULL}},
    {"format", FL_FORMAT, {"*", NULL}},
    {"indent", FL_INDENT, {"width", "first", "blank", NULL}},
    {"int", FL_INT, {"default", "base", NULL}},
    {"items", FL_ITEMS, {NULL}},
    {"join", FL_JOIN, {"d", "attribute", NULL}},
    {"last", FL_LAST, {NULL}},
    {"length", FL_LENGTH, {NULL}},
    {"list", FL_LIST, {NULL}},
    {"lower", FL_LOWER, {NULL}},
    {"map", FL_MAP, {"*", NULL}},
    {"max", FL_MAX, {"case_sensitive", "attribute", NULL}},
    {"min", FL_MIN, {"case_sensitive", "attribute", NULL}},
    {"reject", FL_REJECT, {"*", NULL}},
    {"rejectattr", FL_REJECTATTR, {"*", NULL}},
    {"replace", FL_REPLACE, {"old", "new", "count", NULL}},
    {"reverse", FL_REVERSE, {NULL}},
    {"round", FL_ROUND, {"precision", "method", NULL}},
    {"safe", FL_SAFE, {NULL}},
    {"select", FL_SELECT, {"*", NULL}},
    {"selectattr", FL_SELECTATTR, {"*", NULL}},
    {"sort", FL_SORT, {"reverse", "case_sensitive", "attribute", NULL}},
    {"string", FL_STRING, {NULL}},
    {"striptags", FL_STRIPTAGS, {NULL}},
    {"sum", FL_SUM, {"attribute", "start", NULL}},
    {"title", FL_TITLE, {NULL}},
    {"tojson", FL_TOJSON, {"ensure_ascii", "indent", "separators", "sort_keys", NULL}},
    {"trim", FL_TRIM, {"chars", NULL}},
    {"unique", FL_UNIQUE, {"case_sensitive", "attribute", NULL}},
    {"upper", FL_UPPER, {NULL}},
    {"wordcount", FL_WORDCOUNT, {NULL}},
};

bool mlxr_tpl_filter_exists(const char *name) {
  for (size_t i = 0; i < sizeof(FILTERS) / sizeof(FILTERS[0]); i++)
    if (!strcmp(FILTERS[i].name, name)) return true;
  return false;
}

tv *mlxr_tpl_filter(tctx *c, const char *name, tv *in, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  size_t fi = 0, nf = sizeof(FILTERS) / sizeof(FILTERS[0]);
  while (fi < nf && strcmp(FILTERS[fi].name, name) != 0) fi++;
  if (fi == nf) return tctx_fail(c, MLXR_ERR_INVALID, "TemplateAssertionError: No filter named '%s'.", name);
  if (!tctx_step(c)) return NULL;
  tv *a[5] = {NULL, NULL, NULL, NULL, NULL};
  size_t np = 0;
  bool variadic = FILTERS[fi].params[0] && !strcmp(FILTERS[fi].params[0], "*");
  if (!variadic) {
    while (FILTERS[fi].params[np]) np++;
    if (!mlxr_tpl_bind(c, name, FILTERS[fi].params, np, args, n, kwn, kwv, nkw, a)) return NULL;
  }
  filter_id id = FILTERS[fi].id;
  /* filters that see Undefined as such */
  switch (id) {
  case FL_DEFAULT:
    if (in->type == TV_UNDEF || (get_bool(a[1], false) && !tv_truthy(in))) return a[0] ? tv_ref(a[0]) : tv_strz("");
    return tv_ref(in);
  case FL_LENGTH:
  case FL_COUNT: return f_length(c, in);
  case FL_TOJSON: return f_tojson(c, in, a);
  case FL_ITEMS: return f_items(c, in);
  default: break;
  }
  if (in->type == TV_UNDEF && in->u.str.unsafe) return mlxr_tpl_undefined_error(c, in);
  switch (id) {
  case FL_ABS:
    if (in->type == TV_INT) return in->u.i == INT64_MIN ? tctx_fail(c, MLXR_ERR_UNSUPPORTED, "abs overflows") : tv_int(in->u.i < 0 ? -in->u.i : in->u.i);
    if (in->type == TV_BOOL) return tv_int(in->u.b);
    if (in->type == TV_FLOAT) return tv_float(fabs(in->u.f));
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: bad operand type for abs(): '%s'", tv_type_name(in));
  case FL_ATTR:
    if (!a[0]) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: do_attr() missing 1 required positional argument: 'name'");
    if (a[0]->type != TV_STR)
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: attribute name must be string, not '%s'", tv_type_name(a[0]));
    if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
    return mlxr_tpl_attr(c, in, a[0]->u.str.s);
  case FL_BATCH: return f_batch(c, in, a);
  case FL_CAPITALIZE:
  case FL_TITLE:
  case FL_LOWER:
  case FL_UPPER:
  case FL_TRIM:
  case FL_STRING:
  case FL_SAFE:
  case FL_REPLACE: {
    tv *s = mlxr_tpl_to_str(c, in);
    if (!s) return NULL;
    tv *r;
    if (id == FL_CAPITALIZE) r = mlxr_tpl_titlecase(c, s->u.str.s, s->u.str.len, 'c');
    else if (id == FL_TITLE) r = mlxr_tpl_titlecase(c, s->u.str.s, s->u.str.len, 'j');
    else if (id == FL_LOWER || id == FL_UPPER) r = mlxr_tpl_case(c, s->u.str.s, s->u.str.len, id == FL_LOWER ? 'l' : 'u');
    else if (id == FL_TRIM) r = mlxr_tpl_strip(c, s, a[0], 'b');
    else if (id == FL_REPLACE) {
      int64_t cnt = -1;
      tv *o = a[0] ? mlxr_tpl_to_str(c, a[0]) : NULL, *nw = a[1] ? mlxr_tpl_to_str(c, a[1]) : NULL;
      if (!a[0] && !a[1])
        r = tctx_fail(c, MLXR_ERR_INVALID, "TypeError: do_replace() missing 2 required positional arguments: 'old' and 'new'");
      else if (!a[1])
        r = tctx_fail(c, MLXR_ERR_INVALID, "TypeError: do_replace() missing 1 required positional argument: 'new'");
      else if (!o || !nw) r = NULL;
      else if (a[2] && a[2]->type != TV_NONE && !py_index(c, a[2], &cnt)) r = NULL;
      else r = mlxr_tpl_replace(c, s, o, nw, cnt);
      tv_unref(o);
      tv_unref(nw);
    } else r = tv_ref(s);
    tv_unref(s);
    return r;
  }
  case FL_CENTER: return f_center(c, in, a);
  case FL_DICTSORT: return f_dictsort(c, in, a);
  case FL_ESCAPE: return html_escape(c, in);
  case FL_FIRST:
  case FL_LAST: {
    if (id == FL_LAST && in->type != TV_LIST && in->type != TV_STR && in->type != TV_DICT && in->type != TV_UNDEF)
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' object is not reversible", tv_type_name(in));
    tv *items = mlxr_tpl_iterate(c, in);
    if (!items) return NULL;
    tv *r = items->u.list.n ? tv_ref(items->u.list.items[id == FL_FIRST ? 0 : items->u.list.n - 1])
                            : tv_undef("No %s item, sequence was empty.", id == FL_FIRST ? "first" : "last");
    tv_unref(items);
    return r;
  }
  case FL_FLOAT: return f_float(c, in, a[0]);
  case FL_INT: return f_int(c, in, a[0], a[1]);
  case FL_FORMAT: return f_format(c, in, args, n, kwn, kwv, nkw);
  case FL_INDENT: return f_indent(c, in, a);
  case FL_JOIN: return f_join(c, in, a);
  case FL_LIST: {
    tv *items = mlxr_tpl_iterate(c, in);
    if (!items) return NULL;
    tv *r = tv_list(items->u.list.n);
    for (size_t i = 0; r && i < items->u.list.n; i++) tv_list_push(r, tv_ref(items->u.list.items[i]));
    tv_unref(items);
    return r ? r : nomem(c);
  }
  case FL_MAP: return f_map(c, in, args, n, kwn, kwv, nkw);
  case FL_MAX:
  case FL_MIN: return f_minmax(c, in, a, id == FL_MAX);
  case FL_REJECT:
  case FL_SELECT:
  case FL_REJECTATTR:
  case FL_SELECTATTR:
    if (nkw) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: %s() got unexpected keyword arguments", name);
    return select_items(c, in, args, n, id == FL_SELECT || id == FL_SELECTATTR, id == FL_REJECTATTR || id == FL_SELECTATTR);
  case FL_REVERSE: return f_reverse(c, in);
  case FL_ROUND: return py_round(c, in, a);
  case FL_SORT: return f_sort(c, in, a);
  case FL_STRIPTAGS: return f_striptags(c, in);
  case FL_SUM: return f_sum(c, in, a);
  case FL_UNIQUE: return f_unique(c, in, a);
  case FL_WORDCOUNT: return f_wordcount(c, in);
  default: return tctx_fail(c, MLXR_ERR_INVALID, "internal error: filter '%s'", name);
  }
}
