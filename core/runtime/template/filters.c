/*
 * filters.c: Jinja2's builtin filters (jinja2/filters.py) as Hugging Face chat templates see them,
 * plus HF's tojson (json.dumps with ensure_ascii=False and the indent/separators/sort_keys options).
 *
 * Each filter takes its input and arguments borrowed and returns a new value, or NULL with an error
 * in the context. Arguments are bound by name like the Python signatures (mlxr_tpl_bind), so
 * `map(attribute='name')` and `sort(reverse=true)` work. String filters apply Python's str() to
 * their input first (Undefined becomes ""), as Jinja's soft_str does. Sorting is a stable merge
 * sort that reports incomparable items as Python's TypeError.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static bool get_int(tctx *c, const tv *v, int64_t def, int64_t *out) {
  if (!v) {
    *out = def;
    return true;
  }
  if (v->type == TV_INT || v->type == TV_BOOL) {
    *out = v->type == TV_BOOL ? v->u.b : v->u.i;
    return true;
  }
  if (v->type == TV_UNDEF) mlxr_tpl_undefined_error(c, v);
  else tctx_fail(c, MLXR_ERR_INVALID, "TypeError: an integer is required, got %s", tv_type_name(v));
  return false;
}

/* Jinja's make_attrgetter: dotted path, each part an item/attribute lookup (integers as indexes). */
static tv *attr_get(tctx *c, tv *item, const tv *attr) {
  if (attr->type == TV_INT) return mlxr_tpl_getitem(c, item, (tv *)attr);
  if (attr->type != TV_STR) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: attribute must be a string");
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

/* Sort key: the attribute (if any), lowercased when it is a string and !case_sensitive. */
static tv *sort_key(tctx *c, tv *item, const tv *attr, bool case_sensitive) {
  tv *k = attr ? attr_get(c, item, attr) : tv_ref(item);
  if (!k) return NULL;
  if (!case_sensitive && k->type == TV_STR) {
    tv *l = mlxr_tpl_case(c, k->u.str.s, k->u.str.len, 'l');
    tv_unref(k);
    return l;
  }
  return k;
}

static bool key_less(tctx *c, const tv *a, const tv *b, bool *out) {
  int r;
  if (!tv_cmp(a, b, &r)) {
    if (a->type == TV_UNDEF) mlxr_tpl_undefined_error(c, a);
    else if (b->type == TV_UNDEF) mlxr_tpl_undefined_error(c, b);
    else tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '<' not supported between instances of '%s' and '%s'",
                   tv_type_name(a), tv_type_name(b));
    return false;
  }
  *out = r == -1;
  return true;
}

/* Stable merge sort of idx[0..n) by keys[idx]; reverse keeps Python's stability rule. */
static bool merge_sort(tctx *c, size_t *idx, size_t *tmp, size_t n, tv **keys, bool reverse) {
  if (n < 2) return true;
  size_t h = n / 2;
  if (!merge_sort(c, idx, tmp, h, keys, reverse) || !merge_sort(c, idx + h, tmp, n - h, keys, reverse)) return false;
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n) {
    bool less = false;
    /* take from the right only if strictly before the left */
    if (!key_less(c, reverse ? keys[idx[i]] : keys[idx[j]], reverse ? keys[idx[j]] : keys[idx[i]], &less)) return false;
    tmp[k++] = less ? idx[j++] : idx[i++];
  }
  while (i < h) tmp[k++] = idx[i++];
  while (j < n) tmp[k++] = idx[j++];
  memcpy(idx, tmp, n * sizeof(size_t));
  return true;
}

/* Sorted copy of list items (a list of values) by key. */
static tv *sorted(tctx *c, tv *items, const tv *attr, bool case_sensitive, bool reverse, tv **keys_in) {
  size_t n = items->u.list.n;
  tv **keys = keys_in ? keys_in : calloc(n + 1, sizeof(tv *));
  size_t *idx = malloc((n + 1) * sizeof(size_t)), *tmp = malloc((n + 1) * sizeof(size_t));
  tv *r = NULL;
  bool ok = keys && idx && tmp;
  for (size_t i = 0; ok && !keys_in && i < n; i++)
    ok = (keys[i] = sort_key(c, items->u.list.items[i], attr, case_sensitive)) != NULL;
  for (size_t i = 0; ok && i < n; i++) idx[i] = i;
  if (ok && merge_sort(c, idx, tmp, n, keys, reverse)) {
    r = tv_list(n);
    for (size_t i = 0; r && i < n; i++)
      if (!tv_list_push(r, tv_ref(items->u.list.items[idx[i]]))) {
        tv_unref(r);
        r = NULL;
      }
  }
  if (!keys_in && keys)
    for (size_t i = 0; i < n; i++) tv_unref(keys[i]);
  if (!keys_in) free(keys);
  free(idx);
  free(tmp);
  if (!r && !c->failed) nomem(c);
  return r;
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
  tv *s = mlxr_tpl_to_str(c, in);
  if (!s) return NULL;
  tbuf ind;
  tbuf_init(&ind, 4096);
  if (a[0] && a[0]->type == TV_STR) {
    tbuf_add(&ind, a[0]->u.str.s, a[0]->u.str.len);
  } else {
    int64_t w;
    if (!get_int(c, a[0], 4, &w)) {
      tv_unref(s);
      return NULL;
    }
    for (int64_t i = 0; i < w && i < 4096; i++) tbuf_addc(&ind, ' ');
  }
  bool first = get_bool(a[1], false), blank = get_bool(a[2], false);
  /* lines of s + "\n" per str.splitlines (on \n, \r\n, \r and the other Unicode breaks) */
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  if (first) tbuf_add(&b, ind.s ? ind.s : "", ind.len);
  const char *p = s->u.str.s;
  size_t n = s->u.str.len, st = 0, i = 0;
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
      if (blank || e > st) tbuf_add(&b, ind.s ? ind.s : "", ind.len);
    }
    tbuf_add(&b, p + st, e - st);
    first_line = false;
    st = i;
  }
  if (st < n) { /* last line without a break (the appended "\n" ends it) */
    if (!first_line) {
      tbuf_addc(&b, '\n');
      tbuf_add(&b, ind.s ? ind.s : "", ind.len);
    }
    tbuf_add(&b, p + st, n - st);
  }
  tbuf_free(&ind);
  tv_unref(s);
  return finish(c, &b);
}

static tv *py_round(tctx *c, tv *in, tv **a) {
  if (!tv_is_number(in)) {
    if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: type %s doesn't define __round__ method", tv_type_name(in));
  }
  int64_t prec;
  if (!get_int(c, a[0], 0, &prec)) return NULL;
  const char *method = a[1] && a[1]->type == TV_STR ? a[1]->u.str.s : "common";
  double x = tv_as_double(in), m = pow(10.0, (double)prec);
  if (!strcmp(method, "ceil")) return tv_float(ceil(x * m) / m);
  if (!strcmp(method, "floor")) return tv_float(floor(x * m) / m);
  if (strcmp(method, "common") != 0)
    return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: method must be common, ceil or floor");
  if (in->type != TV_FLOAT) {
    if (prec >= 0) return tv_int(in->type == TV_BOOL ? in->u.b : in->u.i);
  }
  /* Python's round(): correctly rounded, halves to even, via the shortest decimal repr */
  char buf[64];
  snprintf(buf, sizeof(buf), "%.*f", (int)(prec < 0 ? 0 : prec > 30 ? 30 : prec), x);
  double r = strtod(buf, NULL);
  if (prec < 0) r = nearbyint(x / pow(10.0, (double)-prec)) * pow(10.0, (double)-prec);
  return tv_float(r);
}

static tv *to_number(tctx *c, tv *in, tv *def, bool want_float, int64_t base) {
  if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
  if (in->type == TV_INT || in->type == TV_BOOL) {
    int64_t v = in->type == TV_BOOL ? in->u.b : in->u.i;
    return want_float ? tv_float((double)v) : tv_int(v);
  }
  if (in->type == TV_FLOAT) {
    if (want_float) return tv_float(in->u.f);
    if (isfinite(in->u.f) && fabs(in->u.f) < 9.2e18) return tv_int((int64_t)in->u.f);
  } else if (in->type == TV_STR) {
    tv *t = mlxr_tpl_strip(c, in, NULL, 'b');
    if (!t) return NULL;
    char *end;
    const char *s = t->u.str.s;
    bool ok = t->u.str.len > 0;
    tv *r = NULL;
    if (ok && !want_float) {
      long long v = strtoll(s, &end, (int)base);
      if (*end == 0) r = tv_int(v);
    }
    if (!r && ok) {
      double d = strtod(s, &end);
      if (*end == 0) r = want_float ? tv_float(d) : (isfinite(d) && fabs(d) < 9.2e18 ? tv_int((int64_t)d) : NULL);
    }
    tv_unref(t);
    if (r) return r;
  }
  if (def) return tv_ref(def);
  return want_float ? tv_float(0.0) : tv_int(0);
}

/* select/reject/selectattr/rejectattr: keep items where test(item[.attr]) == want. */
static tv *select_items(tctx *c, tv *in, tv **args, size_t n, bool want, bool by_attr) {
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  size_t ai = 0;
  const tv *attr = NULL;
  if (by_attr) {
    if (n < 1) {
      tv_unref(items);
      return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: Missing parameter for attribute name");
    }
    attr = args[ai++];
  }
  const char *test = NULL;
  if (ai < n) {
    if (args[ai]->type != TV_STR) {
      tv_unref(items);
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: test name must be a string");
    }
    test = args[ai++]->u.str.s;
  }
  tv *out = tv_list(0);
  bool ok = out != NULL;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    tv *it = items->u.list.items[i];
    tv *v = attr ? attr_get(c, it, attr) : tv_ref(it);
    if (!v) {
      ok = false;
      break;
    }
    int r = test ? mlxr_tpl_test(c, test, v, args + ai, n - ai) : tv_truthy(v);
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

static tv *f_map(tctx *c, tv *in, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  tv *attr = NULL, *def = NULL;
  for (size_t k = 0; k < nkw; k++) {
    if (!strcmp(kwn[k], "attribute")) attr = kwv[k];
    else if (!strcmp(kwn[k], "default")) def = kwv[k];
  }
  const char *fname = NULL;
  if (!attr) {
    if (n < 1 || args[0]->type != TV_STR) return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: map requires a filter argument");
    fname = args[0]->u.str.s;
  } else if (n > 0) {
    return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: Unexpected keyword argument");
  }
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  tv *out = tv_list(items->u.list.n);
  bool ok = out != NULL;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    tv *v;
    if (attr) {
      v = attr_get(c, items->u.list.items[i], attr);
      if (v && v->type == TV_UNDEF && def) {
        tv_unref(v);
        v = tv_ref(def);
      }
    } else {
      const char **fk = nkw ? kwn : NULL;
      v = mlxr_tpl_filter(c, fname, items->u.list.items[i], args + 1, n - 1, fk, kwv, nkw);
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

static tv *f_unique(tctx *c, tv *in, tv **a) {
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  bool cs = get_bool(a[0], false);
  tv *out = tv_list(0), *seen = tv_list(0);
  bool ok = out && seen;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    tv *k = sort_key(c, items->u.list.items[i], a[1], cs);
    if (!k) {
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
    bool take = !best;
    if (best) {
      bool less = false;
      ok = key_less(c, want_max ? bestk : k, want_max ? k : bestk, &less);
      take = ok && less;
    }
    if (take) {
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

static tv *f_sum(tctx *c, tv *in, tv **a) {
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  tv *acc = a[1] ? tv_ref(a[1]) : tv_int(0);
  for (size_t i = 0; acc && i < items->u.list.n; i++) {
    tv *v = a[0] ? attr_get(c, items->u.list.items[i], a[0]) : tv_ref(items->u.list.items[i]);
    if (!v) {
      tv_unref(acc);
      acc = NULL;
      break;
    }
    tv *r = NULL;
    if (tv_is_number(acc) && tv_is_number(v)) {
      if (acc->type != TV_FLOAT && v->type != TV_FLOAT) {
        int64_t x = acc->type == TV_BOOL ? acc->u.b : acc->u.i, y = v->type == TV_BOOL ? v->u.b : v->u.i, s;
        if (__builtin_add_overflow(x, y, &s)) tctx_fail(c, MLXR_ERR_UNSUPPORTED, "sum overflows 64 bits");
        else r = tv_int(s);
      } else {
        r = tv_float(tv_as_double(acc) + tv_as_double(v));
      }
    } else if (acc->type == TV_LIST && v->type == TV_LIST) {
      r = tv_list(0);
      for (size_t k = 0; r && k < acc->u.list.n; k++) tv_list_push(r, tv_ref(acc->u.list.items[k]));
      for (size_t k = 0; r && k < v->u.list.n; k++) tv_list_push(r, tv_ref(v->u.list.items[k]));
    } else if (v->type == TV_UNDEF) {
      mlxr_tpl_undefined_error(c, v);
    } else {
      tctx_fail(c, MLXR_ERR_INVALID, "TypeError: unsupported operand type(s) for +: '%s' and '%s'", tv_type_name(acc),
                tv_type_name(v));
    }
    tv_unref(v);
    tv_unref(acc);
    acc = r;
  }
  tv_unref(items);
  return acc;
}

static tv *f_dictsort(tctx *c, tv *in, tv **a) {
  if (in->type != TV_DICT) return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: dictsort needs a mapping");
  bool cs = get_bool(a[0], false), rev = get_bool(a[2], false);
  int pos = 0;
  if (a[1] && a[1]->type == TV_STR) {
    if (!strcmp(a[1]->u.str.s, "value")) pos = 1;
    else if (strcmp(a[1]->u.str.s, "key") != 0)
      return tctx_fail(c, MLXR_ERR_INVALID, "FilterArgumentError: You can only sort by either \"key\" or \"value\"");
  }
  size_t n = in->u.dict.n;
  tv *pairs = tv_list(n);
  tv **keys = calloc(n + 1, sizeof(tv *));
  bool ok = pairs && keys;
  for (size_t i = 0; ok && i < n; i++) {
    tv *p = tv_list(2);
    ok = p && tv_list_push(p, tv_ref(in->u.dict.keys[i])) && tv_list_push(p, tv_ref(in->u.dict.vals[i]));
    if (p) p->u.list.is_tuple = true;
    ok = ok && tv_list_push(pairs, p);
    if (ok) ok = (keys[i] = sort_key(c, p->u.list.items[pos], NULL, cs)) != NULL;
  }
  tv *r = ok ? sorted(c, pairs, NULL, cs, rev, keys) : NULL;
  for (size_t i = 0; keys && i < n; i++) tv_unref(keys[i]);
  free(keys);
  tv_unref(pairs);
  if (!r && !c->failed) nomem(c);
  return r;
}

static tv *f_batch(tctx *c, tv *in, tv **a) {
  int64_t cnt;
  if (!get_int(c, a[0], 1, &cnt)) return NULL;
  if (cnt <= 0) return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: batch size must be positive");
  tv *items = mlxr_tpl_iterate(c, in);
  if (!items) return NULL;
  tv *out = tv_list(0), *cur = NULL;
  bool ok = out != NULL;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    if (!cur && !(cur = tv_list(0))) ok = false;
    if (ok) ok = tv_list_push(cur, tv_ref(items->u.list.items[i]));
    if (ok && (int64_t)cur->u.list.n == cnt) {
      ok = tv_list_push(out, cur);
      cur = NULL;
    }
  }
  if (ok && cur) {
    while (a[1] && ok && (int64_t)cur->u.list.n < cnt) ok = tv_list_push(cur, tv_ref(a[1]));
    ok = ok && tv_list_push(out, cur);
    cur = NULL;
  }
  tv_unref(cur);
  tv_unref(items);
  if (!ok) {
    tv_unref(out);
    return nomem(c);
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
  int64_t w;
  if (!get_int(c, a[0], 80, &w)) return NULL;
  tv *s = mlxr_tpl_to_str(c, in);
  if (!s) return NULL;
  int64_t n = (int64_t)tv_utf8_count(s->u.str.s, s->u.str.len);
  if (w <= n || w > 1 << 20) return s;
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
    tv *v = a[1] ? attr_get(c, items->u.list.items[i], a[1]) : tv_ref(items->u.list.items[i]);
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
    if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: bad operand type for abs(): '%s'", tv_type_name(in));
  case FL_ATTR:
    if (!a[0] || a[0]->type != TV_STR) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: attr name must be a string");
    if (in->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, in);
    return mlxr_tpl_getattr(c, in, a[0]->u.str.s);
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
      int64_t cnt;
      tv *o = a[0] ? mlxr_tpl_to_str(c, a[0]) : NULL, *nw = a[1] ? mlxr_tpl_to_str(c, a[1]) : NULL;
      if (!o || !nw) r = c->failed ? NULL : tctx_fail(c, MLXR_ERR_INVALID, "TypeError: replace() needs old and new");
      else if (!get_int(c, a[2] && a[2]->type != TV_NONE ? a[2] : NULL, -1, &cnt)) r = NULL;
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
    tv *items = mlxr_tpl_iterate(c, in);
    if (!items) return NULL;
    tv *r = items->u.list.n ? tv_ref(items->u.list.items[id == FL_FIRST ? 0 : items->u.list.n - 1])
                            : tv_undef("No %s item, sequence was empty.", id == FL_FIRST ? "first" : "last");
    tv_unref(items);
    return r;
  }
  case FL_FLOAT: return to_number(c, in, a[0], true, 10);
  case FL_INT: {
    int64_t base;
    if (!get_int(c, a[1], 10, &base)) return NULL;
    return to_number(c, in, a[0], false, base);
  }
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
  case FL_SORT: {
    tv *items = mlxr_tpl_iterate(c, in);
    if (!items) return NULL;
    tv *r = sorted(c, items, a[2], get_bool(a[1], false), get_bool(a[0], false), NULL);
    tv_unref(items);
    return r;
  }
  case FL_STRIPTAGS: return f_striptags(c, in);
  case FL_SUM: return f_sum(c, in, a);
  case FL_UNIQUE: return f_unique(c, in, a);
  case FL_WORDCOUNT: return f_wordcount(c, in);
  default: return tctx_fail(c, MLXR_ERR_INVALID, "internal error: filter '%s'", name);
  }
}
