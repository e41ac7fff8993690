/*
 * methods.c: what templates can reach besides filters and tests: attribute and item access
 * (Jinja's sandboxed getattr/getitem rules), the methods of str, dict and list, the global
 * functions (range, dict, namespace, raise_exception, strftime_now) and iteration.
 *
 * Access rules, as in jinja2.sandbox.ImmutableSandboxedEnvironment:
 *   obj.name    -> a method of obj's type if it has one, else obj[name], else undefined;
 *   obj[key]    -> the item, else (for a string key) the attribute, else undefined;
 *   methods that would mutate a list or dict (append, pop, update, ...) resolve to an "unsafe"
 *   undefined whose use is a SecurityError.
 * Methods are TV_FUNC values bound to their object (func.self); calling them dispatches here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "core/common/status.h"
#include "core/runtime/template/template_impl.h"

enum {
  F_LOOP_CYCLE = -1,
  /* globals */
  F_RANGE = 1, F_DICT, F_NAMESPACE, F_RAISE, F_STRFTIME,
  /* str */
  S_STRIP, S_LSTRIP, S_RSTRIP, S_SPLIT, S_RSPLIT, S_SPLITLINES, S_STARTSWITH, S_ENDSWITH, S_REPLACE,
  S_UPPER, S_LOWER, S_TITLE, S_CAPITALIZE, S_FIND, S_RFIND, S_COUNT, S_FORMAT, S_JOIN, S_ISDIGIT,
  S_ISALPHA, S_ISALNUM, S_ISSPACE, S_ISLOWER, S_ISUPPER, S_REMOVEPREFIX, S_REMOVESUFFIX, S_INDEX,
  /* dict */
  D_GET, D_ITEMS, D_KEYS, D_VALUES, D_COPY,
  /* list */
  L_INDEX, L_COUNT,
};

typedef struct named_id {
  const char *name;
  int id;
} named_id;

static const named_id GLOBALS[] = {{"range", F_RANGE}, {"dict", F_DICT}, {"namespace", F_NAMESPACE},
                                   {"raise_exception", F_RAISE}, {"strftime_now", F_STRFTIME}};
static const named_id STR_METHODS[] = {
    {"strip", S_STRIP}, {"lstrip", S_LSTRIP}, {"rstrip", S_RSTRIP}, {"split", S_SPLIT}, {"rsplit", S_RSPLIT},
    {"splitlines", S_SPLITLINES}, {"startswith", S_STARTSWITH}, {"endswith", S_ENDSWITH}, {"replace", S_REPLACE},
    {"upper", S_UPPER}, {"lower", S_LOWER}, {"title", S_TITLE}, {"capitalize", S_CAPITALIZE}, {"find", S_FIND},
    {"rfind", S_RFIND}, {"count", S_COUNT}, {"format", S_FORMAT}, {"join", S_JOIN}, {"isdigit", S_ISDIGIT},
    {"isalpha", S_ISALPHA}, {"isalnum", S_ISALNUM}, {"isspace", S_ISSPACE}, {"islower", S_ISLOWER},
    {"isupper", S_ISUPPER}, {"removeprefix", S_REMOVEPREFIX}, {"removesuffix", S_REMOVESUFFIX},
    {"index", S_INDEX}};
static const named_id DICT_METHODS[] = {{"get", D_GET}, {"items", D_ITEMS}, {"keys", D_KEYS},
                                        {"values", D_VALUES}, {"copy", D_COPY}};
static const named_id LIST_METHODS[] = {{"index", L_INDEX}, {"count", L_COUNT}};
static const char *const DICT_UNSAFE[] = {"clear", "pop", "popitem", "setdefault", "update", "fromkeys", NULL};
static const char *const LIST_UNSAFE[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse",
                                          "sort", "copy", NULL};

static int find_id(const named_id *t, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(t[i].name, name)) return t[i].id;
  return 0;
}

static bool in_list(const char *const *l, const char *name) {
  for (; *l; l++)
    if (!strcmp(*l, name)) return true;
  return false;
}

static tv *make_func(int id, tv *self, const char *name) {
  tv *f = tv_new(TV_FUNC);
  if (!f) return NULL;
  f->u.func.id = id;
  f->u.func.self = tv_ref(self);
  f->u.func.name = name;
  return f;
}

tv *mlxr_tpl_global(const char *name) {
  int id = find_id(GLOBALS, sizeof(GLOBALS) / sizeof(GLOBALS[0]), name);
  return id ? make_func(id, NULL, GLOBALS[id - 1].name) : NULL;
}

bool mlxr_tpl_bind(tctx *c, const char *fname, const char *const *params, size_t np, tv **args, size_t n,
                   const char **kwn, tv **kwv, size_t nkw, tv **out) {
  for (size_t i = 0; i < np; i++) out[i] = i < n ? args[i] : NULL;
  if (n > np) {
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: %s() takes at most %zu arguments (%zu given)", fname, np, n);
    return false;
  }
  for (size_t k = 0; k < nkw; k++) {
    size_t i = 0;
    while (i < np && strcmp(params[i], kwn[k]) != 0) i++;
    if (i == np) {
      tctx_fail(c, MLXR_ERR_INVALID, "TypeError: %s() got an unexpected keyword argument '%s'", fname, kwn[k]);
      return false;
    }
    if (out[i]) {
      tctx_fail(c, MLXR_ERR_INVALID, "TypeError: %s() got multiple values for argument '%s'", fname, kwn[k]);
      return false;
    }
    out[i] = kwv[k];
  }
  return true;
}

/* ---- access ---- */

/* obj.name; items: fall back to obj[name] for dicts (Jinja's getattr does, its attr filter does not) */
static tv *getattr_impl(tctx *c, tv *obj, const char *name, bool items) {
  int id = 0;
  switch (obj->type) {
  case TV_STR: id = find_id(STR_METHODS, sizeof(STR_METHODS) / sizeof(STR_METHODS[0]), name); break;
  case TV_DICT:
    id = find_id(DICT_METHODS, sizeof(DICT_METHODS) / sizeof(DICT_METHODS[0]), name);
    if (!id && in_list(DICT_UNSAFE, name)) {
      tv *u = tv_undef("access to attribute '%s' of 'dict' object is unsafe.", name);
      if (u) u->u.str.unsafe = true;
      return u ? u : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
    }
    if (!id && items) {
      tv *v = tv_dict_getz(obj, name);
      if (v) return tv_ref(v);
    }
    break;
  case TV_LIST:
    id = find_id(LIST_METHODS, sizeof(LIST_METHODS) / sizeof(LIST_METHODS[0]), name);
    if (!id && in_list(LIST_UNSAFE, name)) {
      tv *u = tv_undef("access to attribute '%s' of '%s' object is unsafe.", name, tv_type_name(obj));
      if (u) u->u.str.unsafe = true;
      return u ? u : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
    }
    break;
  case TV_NS: {
    tv *v = tv_dict_getz(obj, name);
    if (v) return tv_ref(v);
    break;
  }
  case TV_LOOP: {
    size_t i = obj->u.loop.i, n = obj->u.loop.items->u.list.n;
    tv *const *items = obj->u.loop.items->u.list.items;
    tv *r = NULL;
    if (!strcmp(name, "index")) r = tv_int((int64_t)i + 1);
    else if (!strcmp(name, "index0")) r = tv_int((int64_t)i);
    else if (!strcmp(name, "revindex")) r = tv_int((int64_t)(n - i));
    else if (!strcmp(name, "revindex0")) r = tv_int((int64_t)(n - i - 1));
    else if (!strcmp(name, "first")) r = tv_bool(i == 0);
    else if (!strcmp(name, "last")) r = tv_bool(i + 1 == n);
    else if (!strcmp(name, "length")) r = tv_int((int64_t)n);
    else if (!strcmp(name, "depth")) r = tv_int(1);
    else if (!strcmp(name, "depth0")) r = tv_int(0);
    else if (!strcmp(name, "previtem")) r = i > 0 ? tv_ref(items[i - 1]) : tv_undef("there is no previous item");
    else if (!strcmp(name, "nextitem")) r = i + 1 < n ? tv_ref(items[i + 1]) : tv_undef("there is no next item");
    else if (!strcmp(name, "cycle")) r = make_func(F_LOOP_CYCLE, obj, "loop.cycle");
    else break;
    return r ? r : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  default: break;
  }
  if (id) {
    tv *f = make_func(id, obj, name);
    return f ? f : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  tv *u = tv_undef("'%s' has no attribute '%s'", tv_object_type_repr(obj), name);
  return u ? u : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
}

tv *mlxr_tpl_getattr(tctx *c, tv *obj, const char *name) { return getattr_impl(c, obj, name, true); }

tv *mlxr_tpl_attr(tctx *c, tv *obj, const char *name) { return getattr_impl(c, obj, name, false); }

tv *mlxr_tpl_getitem(tctx *c, tv *obj, tv *key) {
  bool intkey = key->type == TV_INT || key->type == TV_BOOL;
  int64_t k = key->type == TV_BOOL ? key->u.b : key->type == TV_INT ? key->u.i : 0;
  switch (obj->type) {
  case TV_LIST:
    if (intkey) {
      int64_t n = (int64_t)obj->u.list.n;
      if (k < 0) k += n;
      if (k >= 0 && k < n) return tv_ref(obj->u.list.items[k]);
    }
    break;
  case TV_STR:
    if (intkey) {
      int64_t n = (int64_t)tv_utf8_count(obj->u.str.s, obj->u.str.len);
      if (k < 0) k += n;
      if (k >= 0 && k < n) {
        size_t a = tv_utf8_offset(obj->u.str.s, obj->u.str.len, (size_t)k), b = a;
        tv_utf8_next(obj->u.str.s, obj->u.str.len, &b);
        return tv_str(obj->u.str.s + a, b - a);
      }
    }
    break;
  case TV_DICT:
  case TV_NS: {
    tv *v = tv_dict_get(obj, key);
    if (v) return tv_ref(v);
    break;
  }
  default: break;
  }
  if (key->type == TV_STR && obj->type != TV_NS) return mlxr_tpl_getattr(c, obj, key->u.str.s);
  tbuf b;
  tbuf_init(&b, 200);
  tv_write_repr(&b, key);
  tv *u = tv_undef("%s has no element %s", tv_object_type_repr(obj), b.s ? b.s : "");
  tbuf_free(&b);
  return u;
}

tv *mlxr_tpl_iterate(tctx *c, tv *v) {
  switch (v->type) {
  case TV_LIST: return tv_ref(v);
  case TV_UNDEF: {
    if (v->u.str.unsafe) return mlxr_tpl_undefined_error(c, v);
    tv *l = tv_list(0);
    return l ? l : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  case TV_DICT: {
    tv *l = tv_list(v->u.dict.n);
    if (!l) return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < v->u.dict.n; i++) tv_list_push(l, tv_ref(v->u.dict.keys[i]));
    return l;
  }
  case TV_STR: {
    tv *l = tv_list(0);
    if (!l) return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < v->u.str.len;) {
      size_t a = i;
      tv_utf8_next(v->u.str.s, v->u.str.len, &i);
      if (!tv_list_push(l, tv_str(v->u.str.s + a, i - a))) {
        tv_unref(l);
        return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
      }
    }
    return l;
  }
  default: return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' object is not iterable", tv_type_name(v));
  }
}

tv *mlxr_tpl_to_str(tctx *c, const tv *v) {
  if (v->type == TV_STR) return tv_ref((tv *)v);
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  tv_write_str(&b, v);
  if (b.overflow) {
    tbuf_free(&b);
    return tctx_fail(c, MLXR_ERR_RANGE, "string exceeds the output limit");
  }
  size_t len;
  char *s = tbuf_take(&b, &len);
  return s ? tv_str_take(s, len) : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
}

/* ---- string helpers ---- */

static tv *finish(tctx *c, tbuf *b) {
  if (b->overflow) {
    tbuf_free(b);
    return tctx_fail(c, MLXR_ERR_RANGE, "string exceeds the output limit");
  }
  size_t len;
  char *s = tbuf_take(b, &len);
  return s ? tv_str_take(s, len) : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
}

tv *mlxr_tpl_case(tctx *c, const char *s, size_t len, char mode) {
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  for (size_t i = 0; i < len;) {
    uint32_t cp = tv_utf8_next(s, len, &i);
    if (cp <= 0x10FFFF)
      cp = (uint32_t)(mode == 'l' ? utf8proc_tolower((utf8proc_int32_t)cp) : utf8proc_toupper((utf8proc_int32_t)cp));
    tv_utf8_put(&b, cp);
  }
  return finish(c, &b);
}

static bool is_cased_letter(uint32_t cp) {
  if (cp > 0x10FFFF) return false;
  utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

tv *mlxr_tpl_titlecase(tctx *c, const char *s, size_t len, char mode) {
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  bool prev_cased = false, first = true;
  for (size_t i = 0; i < len;) {
    uint32_t cp = tv_utf8_next(s, len, &i);
    bool up;
    if (mode == 'c') {
      up = first;
    } else if (mode == 't') {
      up = !prev_cased;
      prev_cased = is_cased_letter(cp);
    } else { /* jinja title: words start after [-\s({\[<]+ */
      up = first || prev_cased;
      prev_cased = tv_py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
    }
    first = false;
    if (cp <= 0x10FFFF)
      cp = (uint32_t)(up ? utf8proc_totitle((utf8proc_int32_t)cp) : utf8proc_tolower((utf8proc_int32_t)cp));
    tv_utf8_put(&b, cp);
  }
  return finish(c, &b);
}

static bool cp_in(uint32_t cp, const tv *chars) {
  for (size_t i = 0; i < chars->u.str.len;)
    if (tv_utf8_next(chars->u.str.s, chars->u.str.len, &i) == cp) return true;
  return false;
}

tv *mlxr_tpl_strip(tctx *c, const tv *s, const tv *chars, char which) {
  if (chars && chars->type == TV_NONE) chars = NULL;
  if (chars && chars->type != TV_STR)
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: strip arg must be None or str");
  const char *p = s->u.str.s;
  size_t a = 0, b = s->u.str.len;
  if (which != 'r') {
    while (a < b) {
      size_t i = a;
      uint32_t cp = tv_utf8_next(p, b, &i);
      if (chars ? !cp_in(cp, chars) : !tv_py_isspace(cp)) break;
      a = i;
    }
  }
  if (which != 'l') {
    while (b > a) {
      size_t st = b - 1;
      while (st > a && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
      size_t i = st;
      uint32_t cp = tv_utf8_next(p, b, &i);
      if (i != b) st = b - 1, cp = (unsigned char)p[b - 1]; /* malformed tail: one byte */
      if (chars ? !cp_in(cp, chars) : !tv_py_isspace(cp)) break;
      b = st;
    }
  }
  tv *r = tv_str(p + a, b - a);
  return r ? r : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
}

tv *mlxr_tpl_replace(tctx *c, const tv *s, const tv *old, const tv *new_, int64_t count) {
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  const char *p = s->u.str.s;
  size_t n = s->u.str.len, ol = old->u.str.len;
  if (ol == 0) {
    size_t i = 0;
    int64_t done = 0;
    while (true) {
      if (count < 0 || done < count) {
        tbuf_add(&b, new_->u.str.s, new_->u.str.len);
        done++;
      }
      if (i >= n) break;
      size_t a = i;
      tv_utf8_next(p, n, &i);
      tbuf_add(&b, p + a, i - a);
      if (b.overflow) break;
    }
    return finish(c, &b);
  }
  size_t i = 0;
  int64_t done = 0;
  while (i < n) {
    const char *hit = (count < 0 || done < count) ? memmem(p + i, n - i, old->u.str.s, ol) : NULL;
    if (!hit) {
      tbuf_add(&b, p + i, n - i);
      break;
    }
    tbuf_add(&b, p + i, (size_t)(hit - (p + i)));
    tbuf_add(&b, new_->u.str.s, new_->u.str.len);
    i = (size_t)(hit - p) + ol;
    done++;
    if (b.overflow) break;
  }
  return finish(c, &b);
}

static tv *split(tctx *c, const tv *s, const tv *sep, int64_t maxsplit, bool from_right) {
  tv *l = tv_list(0);
  if (!l) return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  const char *p = s->u.str.s;
  size_t n = s->u.str.len;
  bool ok = true;
  if (!sep || sep->type == TV_NONE) {
    /* runs of whitespace; from_right only matters with maxsplit */
    size_t i = 0;
    int64_t done = 0;
    if (from_right && maxsplit >= 0) {
      /* collect all words, then merge the leading ones */
      tv *all = split(c, s, NULL, -1, false);
      if (!all) {
        tv_unref(l);
        return NULL;
      }
      size_t w = all->u.list.n;
      if ((int64_t)w <= maxsplit + 1) {
        tv_unref(l);
        return all;
      }
      /* the head keeps its original spacing: find the start of word w-maxsplit */
      size_t keep = w - (size_t)maxsplit;
      size_t pos = 0, words = 0, head_end = 0;
      /* simple approach: head = text up to the end of word keep-1 (trimmed left) */
      pos = 0;
      words = 0;
      size_t head_start = n;
      while (pos < n) {
        size_t st = pos;
        uint32_t cp = tv_utf8_next(p, n, &pos);
        if (tv_py_isspace(cp)) continue;
        if (head_start == n) head_start = st;
        while (pos < n) {
          size_t q = pos;
          uint32_t cp2 = tv_utf8_next(p, n, &q);
          if (tv_py_isspace(cp2)) break;
          pos = q;
        }
        if (++words == keep) {
          head_end = pos;
          break;
        }
      }
      ok = tv_list_push(l, tv_str(p + head_start, head_end - head_start));
      for (size_t k = keep; ok && k < w; k++) ok = tv_list_push(l, tv_ref(all->u.list.items[k]));
      tv_unref(all);
      if (!ok) {
        tv_unref(l);
        return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
      }
      return l;
    }
    while (ok && i < n) {
      size_t st = i;
      uint32_t cp = tv_utf8_next(p, n, &i);
      if (tv_py_isspace(cp)) continue;
      if (maxsplit >= 0 && done >= maxsplit) {
        /* rest, right-stripped */
        size_t e = n;
        while (e > st) {
          size_t b = e - 1;
          while (b > st && ((unsigned char)p[b] & 0xC0) == 0x80) b--;
          size_t q = b;
          if (!tv_py_isspace(tv_utf8_next(p, n, &q))) break;
          e = b;
        }
        ok = tv_list_push(l, tv_str(p + st, e - st));
        break;
      }
      size_t e = i;
      while (e < n) {
        size_t q = e;
        if (tv_py_isspace(tv_utf8_next(p, n, &q))) break;
        e = q;
      }
      ok = tv_list_push(l, tv_str(p + st, e - st));
      done++;
      i = e;
    }
  } else {
    if (sep->type != TV_STR) {
      tv_unref(l);
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: must be str or None, not %s", tv_type_name(sep));
    }
    size_t sl = sep->u.str.len;
    if (sl == 0) {
      tv_unref(l);
      return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: empty separator");
    }
    if (!from_right || maxsplit < 0) {
      size_t i = 0;
      int64_t done = 0;
      for (;;) {
        const char *hit = (maxsplit < 0 || done < maxsplit) ? memmem(p + i, n - i, sep->u.str.s, sl) : NULL;
        if (!hit) {
          ok = tv_list_push(l, tv_str(p + i, n - i));
          break;
        }
        ok = tv_list_push(l, tv_str(p + i, (size_t)(hit - (p + i))));
        if (!ok) break;
        i = (size_t)(hit - p) + sl;
        done++;
      }
    } else {
      /* from the right: find split points backwards */
      size_t end = n;
      int64_t done = 0;
      tv *rev = tv_list(0);
      ok = rev != NULL;
      while (ok && done < maxsplit) {
        const char *hit = NULL;
        for (size_t k = end >= sl ? end - sl + 1 : 0; k-- > 0;)
          if (memcmp(p + k, sep->u.str.s, sl) == 0) {
            hit = p + k;
            break;
          }
        if (!hit) break;
        ok = tv_list_push(rev, tv_str(hit + sl, (size_t)(p + end - hit - (ptrdiff_t)sl)));
        end = (size_t)(hit - p);
        done++;
      }
      if (ok) ok = tv_list_push(l, tv_str(p, end));
      for (size_t k = rev ? rev->u.list.n : 0; ok && k-- > 0;) ok = tv_list_push(l, tv_ref(rev->u.list.items[k]));
      tv_unref(rev);
    }
  }
  if (!ok) {
    tv_unref(l);
    return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  return l;
}

static int64_t cp_index(const tv *s, const char *hit) {
  return hit ? (int64_t)tv_utf8_count(s->u.str.s, (size_t)(hit - s->u.str.s)) : -1;
}

static bool affix(tctx *c, const tv *s, const tv *arg, bool end, int *out) {
  if (arg->type == TV_LIST && arg->u.list.is_tuple) {
    *out = 0;
    for (size_t i = 0; i < arg->u.list.n; i++) {
      int r;
      if (!affix(c, s, arg->u.list.items[i], end, &r)) return false;
      if (r) *out = 1;
    }
    return true;
  }
  if (arg->type != TV_STR) {
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: %swith first arg must be str or a tuple of str, not %s",
              end ? "ends" : "starts", tv_type_name(arg));
    return false;
  }
  size_t n = s->u.str.len, k = arg->u.str.len;
  *out = k <= n && memcmp(s->u.str.s + (end ? n - k : 0), arg->u.str.s, k) == 0;
  return true;
}

/* str.format: {} {0} {name} {name[key]} {name.attr}, {{ and }}; format specs unsupported. */
static tv *str_format(tctx *c, const tv *s, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  const char *p = s->u.str.s;
  size_t len = s->u.str.len, auto_i = 0;
  for (size_t i = 0; i < len; i++) {
    if (p[i] == '}' && i + 1 < len && p[i + 1] == '}') {
      tbuf_addc(&b, '}');
      i++;
      continue;
    }
    if (p[i] != '{') {
      tbuf_addc(&b, p[i]);
      continue;
    }
    if (i + 1 < len && p[i + 1] == '{') {
      tbuf_addc(&b, '{');
      i++;
      continue;
    }
    const char *close = memchr(p + i, '}', len - i);
    if (!close) {
      tbuf_free(&b);
      return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: Single '{' encountered in format string");
    }
    size_t fl = (size_t)(close - (p + i + 1));
    char field[128];
    if (fl >= sizeof(field) || memchr(p + i + 1, ':', fl) || memchr(p + i + 1, '!', fl) ||
        memchr(p + i + 1, '.', fl) || memchr(p + i + 1, '[', fl)) {
      tbuf_free(&b);
      return tctx_fail(c, MLXR_ERR_UNSUPPORTED, "str.format: only plain {} / {N} / {name} fields are supported");
    }
    memcpy(field, p + i + 1, fl);
    field[fl] = 0;
    const tv *v = NULL;
    if (fl == 0) {
      v = auto_i < n ? args[auto_i++] : NULL;
    } else if (field[0] >= '0' && field[0] <= '9') {
      size_t k = (size_t)strtoul(field, NULL, 10);
      v = k < n ? args[k] : NULL;
    } else {
      for (size_t k = 0; k < nkw; k++)
        if (!strcmp(kwn[k], field)) v = kwv[k];
    }
    if (!v) {
      tbuf_free(&b);
      return tctx_fail(c, MLXR_ERR_INVALID, "IndexError/KeyError: format field '{%s}' has no value", field);
    }
    tv_write_str(&b, v);
    i += fl + 1;
  }
  return finish(c, &b);
}

static int str_pred(const tv *s, int id) {
  if (s->u.str.len == 0) return 0;
  bool any_cased = false;
  for (size_t i = 0; i < s->u.str.len;) {
    uint32_t cp = tv_utf8_next(s->u.str.s, s->u.str.len, &i);
    utf8proc_category_t cat = cp <= 0x10FFFF ? utf8proc_category((utf8proc_int32_t)cp) : UTF8PROC_CATEGORY_CN;
    bool letter = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
    bool digit = cat == UTF8PROC_CATEGORY_ND;
    switch (id) {
    case S_ISDIGIT: if (!digit) return 0; break;
    case S_ISALPHA: if (!letter) return 0; break;
    case S_ISALNUM: if (!letter && !digit && cat != UTF8PROC_CATEGORY_NL && cat != UTF8PROC_CATEGORY_NO) return 0; break;
    case S_ISSPACE: if (!tv_py_isspace(cp)) return 0; break;
    case S_ISLOWER:
      if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT) return 0;
      if (cat == UTF8PROC_CATEGORY_LL) any_cased = true;
      break;
    case S_ISUPPER:
      if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return 0;
      if (cat == UTF8PROC_CATEGORY_LU) any_cased = true;
      break;
    default: break;
    }
  }
  return (id == S_ISLOWER || id == S_ISUPPER) ? any_cased : 1;
}

bool mlxr_tpl_str_iscase(const tv *s, bool upper) { return str_pred(s, upper ? S_ISUPPER : S_ISLOWER) != 0; }

static tv *need_str(tctx *c, const char *fn, tv *v) {
  if (v && v->type == TV_STR) return v;
  if (v && v->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, v);
  return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: %s() argument must be str, not %s", fn, v ? tv_type_name(v) : "nothing");
}

static bool opt_int(tctx *c, tv *v, int64_t def, int64_t *out) {
  if (!v || v->type == TV_NONE) {
    *out = def;
    return true;
  }
  if (v->type == TV_INT || v->type == TV_BOOL) {
    *out = v->type == TV_BOOL ? v->u.b : v->u.i;
    return true;
  }
  tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' object cannot be interpreted as an integer", tv_type_name(v));
  return false;
}

static tv *call_str_method(tctx *c, int id, tv *self, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  tv *a[3] = {NULL, NULL, NULL};
  static const char *const p_chars[] = {"chars"};
  static const char *const p_split[] = {"sep", "maxsplit"};
  static const char *const p_repl[] = {"old", "new", "count"};
  static const char *const p_one[] = {"x", "start", "end"};
  static const char *const p_none[] = {NULL};
  switch (id) {
  case S_STRIP:
  case S_LSTRIP:
  case S_RSTRIP:
    if (!mlxr_tpl_bind(c, "strip", p_chars, 1, args, n, kwn, kwv, nkw, a)) return NULL;
    return mlxr_tpl_strip(c, self, a[0], id == S_STRIP ? 'b' : id == S_LSTRIP ? 'l' : 'r');
  case S_SPLIT:
  case S_RSPLIT: {
    if (!mlxr_tpl_bind(c, "split", p_split, 2, args, n, kwn, kwv, nkw, a)) return NULL;
    int64_t ms;
    if (!opt_int(c, a[1], -1, &ms)) return NULL;
    return split(c, self, a[0], ms, id == S_RSPLIT);
  }
  case S_SPLITLINES: {
    if (!mlxr_tpl_bind(c, "splitlines", p_none, 0, args, n, kwn, kwv, nkw, a)) return NULL;
    tv *l = tv_list(0);
    if (!l) return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
    const char *p = self->u.str.s;
    size_t len = self->u.str.len, st = 0, i = 0;
    bool ok = true;
    while (ok && i < len) {
      size_t b = i;
      uint32_t cp = tv_utf8_next(p, len, &i);
      if (cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c || cp == 0x1d || cp == 0x1e ||
          cp == 0x85 || cp == 0x2028 || cp == 0x2029) {
        ok = tv_list_push(l, tv_str(p + st, b - st));
        if (cp == '\r' && i < len && p[i] == '\n') i++;
        st = i;
      }
    }
    if (ok && st < len) ok = tv_list_push(l, tv_str(p + st, len - st));
    if (!ok) {
      tv_unref(l);
      return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
    }
    return l;
  }
  case S_STARTSWITH:
  case S_ENDSWITH: {
    if (!mlxr_tpl_bind(c, "startswith", p_one, 1, args, n, kwn, kwv, nkw, a)) return NULL;
    if (!a[0]) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: startswith() takes at least 1 argument (0 given)");
    int r;
    if (!affix(c, self, a[0], id == S_ENDSWITH, &r)) return NULL;
    return tv_bool(r);
  }
  case S_REMOVEPREFIX:
  case S_REMOVESUFFIX: {
    if (!mlxr_tpl_bind(c, "removeprefix", p_one, 1, args, n, kwn, kwv, nkw, a)) return NULL;
    if (!need_str(c, "removeprefix", a[0])) return NULL;
    int r;
    if (!affix(c, self, a[0], id == S_REMOVESUFFIX, &r)) return NULL;
    if (!r) return tv_ref(self);
    size_t k = a[0]->u.str.len;
    return tv_str(self->u.str.s + (id == S_REMOVEPREFIX ? k : 0), self->u.str.len - k);
  }
  case S_REPLACE: {
    if (!mlxr_tpl_bind(c, "replace", p_repl, 3, args, n, kwn, kwv, nkw, a)) return NULL;
    if (!need_str(c, "replace", a[0]) || !need_str(c, "replace", a[1])) return NULL;
    int64_t cnt;
    if (!opt_int(c, a[2], -1, &cnt)) return NULL;
    return mlxr_tpl_replace(c, self, a[0], a[1], cnt);
  }
  case S_UPPER:
  case S_LOWER:
    if (!mlxr_tpl_bind(c, "lower", p_none, 0, args, n, kwn, kwv, nkw, a)) return NULL;
    return mlxr_tpl_case(c, self->u.str.s, self->u.str.len, id == S_UPPER ? 'u' : 'l');
  case S_TITLE:
  case S_CAPITALIZE:
    if (!mlxr_tpl_bind(c, "title", p_none, 0, args, n, kwn, kwv, nkw, a)) return NULL;
    return mlxr_tpl_titlecase(c, self->u.str.s, self->u.str.len, id == S_TITLE ? 't' : 'c');
  case S_FIND:
  case S_RFIND:
  case S_INDEX:
  case S_COUNT: {
    if (!mlxr_tpl_bind(c, "find", p_one, 3, args, n, kwn, kwv, nkw, a)) return NULL;
    if (!need_str(c, "find", a[0])) return NULL;
    if (a[1] || a[2]) return tctx_fail(c, MLXR_ERR_UNSUPPORTED, "find/count with start/end is not supported");
    const tv *sub = a[0];
    const char *p = self->u.str.s;
    size_t len = self->u.str.len, sl = sub->u.str.len;
    if (id == S_COUNT) {
      if (sl == 0) return tv_int((int64_t)tv_utf8_count(p, len) + 1);
      int64_t cnt = 0;
      for (const char *h = p; (h = memmem(h, len - (size_t)(h - p), sub->u.str.s, sl)); h += sl) cnt++;
      return tv_int(cnt);
    }
    const char *hit = NULL;
    if (id == S_RFIND) {
      for (size_t k = len >= sl ? len - sl + 1 : 0; k-- > 0;)
        if (memcmp(p + k, sub->u.str.s, sl) == 0) {
          hit = p + k;
          break;
        }
    } else {
      hit = sl == 0 ? p : memmem(p, len, sub->u.str.s, sl);
    }
    if (!hit && id == S_INDEX) return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: substring not found");
    return tv_int(cp_index(self, hit));
  }
  case S_FORMAT: return str_format(c, self, args, n, kwn, kwv, nkw);
  case S_JOIN: {
    if (n != 1 || nkw) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: join() takes exactly one argument");
    tv *items = mlxr_tpl_iterate(c, args[0]);
    if (!items) return NULL;
    tbuf b;
    tbuf_init(&b, c->params->max_output_bytes);
    for (size_t i = 0; i < items->u.list.n; i++) {
      tv *it = items->u.list.items[i];
      if (it->type != TV_STR) {
        tbuf_free(&b);
        tv_unref(items);
        return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: sequence item %zu: expected str instance, %s found", i,
                         tv_type_name(it));
      }
      if (i) tbuf_add(&b, self->u.str.s, self->u.str.len);
      tbuf_add(&b, it->u.str.s, it->u.str.len);
    }
    tv_unref(items);
    return finish(c, &b);
  }
  default:
    if (!mlxr_tpl_bind(c, "isdigit", p_none, 0, args, n, kwn, kwv, nkw, a)) return NULL;
    return tv_bool(str_pred(self, id));
  }
}

static tv *pair(tv *k, tv *v) {
  tv *t = tv_list(2);
  if (!t) return NULL;
  t->u.list.is_tuple = true;
  if (!tv_list_push(t, tv_ref(k)) || !tv_list_push(t, tv_ref(v))) {
    tv_unref(t);
    return NULL;
  }
  return t;
}

static tv *call_dict_method(tctx *c, int id, tv *self, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  static const char *const p_get[] = {"key", "default"};
  tv *a[2] = {NULL, NULL};
  if (id == D_GET) {
    if (nkw) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: get() takes no keyword arguments");
    if (!mlxr_tpl_bind(c, "get", p_get, 2, args, n, kwn, kwv, nkw, a)) return NULL;
    if (!a[0]) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: get expected at least 1 argument, got 0");
    tv *v = tv_dict_get(self, a[0]);
    return v ? tv_ref(v) : a[1] ? tv_ref(a[1]) : tv_none();
  }
  if (n || nkw) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: method takes no arguments");
  if (id == D_COPY) {
    tv *d = tv_dict();
    for (size_t i = 0; d && i < self->u.dict.n; i++)
      if (!tv_dict_set(d, self->u.dict.keys[i], tv_ref(self->u.dict.vals[i]))) {
        tv_unref(d);
        d = NULL;
      }
    return d ? d : tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  tv *l = tv_list(self->u.dict.n);
  if (!l) return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < self->u.dict.n; i++) {
    tv *k = self->u.dict.keys[i], *v = self->u.dict.vals[i];
    tv *item = id == D_ITEMS ? pair(k, v) : tv_ref(id == D_KEYS ? k : v);
    if (!tv_list_push(l, item)) {
      tv_unref(l);
      return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
    }
  }
  return l;
}

/* ---- globals ---- */

static tv *g_range(tctx *c, tv **args, size_t n, size_t nkw) {
  if (nkw || n < 1 || n > 3) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: range expected 1 to 3 integer arguments");
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < n; i++) {
    if (args[i]->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, args[i]);
    if (!opt_int(c, args[i], 0, &v[n == 1 ? 1 : i])) return NULL;
  }
  if (n == 1) v[0] = 0;
  if (v[2] == 0) return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: range() arg 3 must not be zero");
  long double cnt = v[2] > 0 ? ((long double)v[1] - v[0] + v[2] - 1) / v[2] : ((long double)v[0] - v[1] - v[2] - 1) / -v[2];
  if (cnt < 0) cnt = 0;
  if (cnt > 100000)
    return tctx_fail(c, MLXR_ERR_RANGE, "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  tv *l = tv_list((size_t)cnt);
  if (!l) return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2])
    if (!tv_list_push(l, tv_int(i))) {
      tv_unref(l);
      return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
    }
  return l;
}

static tv *g_dict(tctx *c, bool ns, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  if (n > 1) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: %s expected at most 1 argument", ns ? "namespace" : "dict");
  tv *d = tv_dict();
  if (!d) return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  if (ns) d->type = TV_NS;
  bool ok = true;
  if (n == 1) {
    tv *src = args[0];
    if (src->type == TV_DICT || src->type == TV_NS) {
      for (size_t i = 0; ok && i < src->u.dict.n; i++) ok = tv_dict_set(d, src->u.dict.keys[i], tv_ref(src->u.dict.vals[i]));
    } else if (src->type == TV_LIST) {
      for (size_t i = 0; ok && i < src->u.list.n; i++) {
        tv *it = src->u.list.items[i];
        if (it->type != TV_LIST || it->u.list.n != 2) {
          tv_unref(d);
          return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: dictionary update sequence element #%zu has wrong length", i);
        }
        ok = tv_dict_set(d, it->u.list.items[0], tv_ref(it->u.list.items[1]));
      }
    } else {
      tv_unref(d);
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' object is not iterable", tv_type_name(src));
    }
  }
  for (size_t k = 0; ok && k < nkw; k++) ok = tv_dict_setz(d, kwn[k], tv_ref(kwv[k]));
  if (ok && ns) ok = tv_list_push(c->namespaces, tv_ref(d));
  if (!ok) {
    tv_unref(d);
    return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  return d;
}

static tv *g_strftime(tctx *c, tv **args, size_t n, size_t nkw) {
  if (n != 1 || nkw || args[0]->type != TV_STR)
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: strftime_now() takes one string argument");
  struct tm tm;
  if (c->params->fixed_time) {
    tm = *c->params->fixed_time;
  } else {
    time_t now = time(NULL);
    localtime_r(&now, &tm);
  }
  if (args[0]->u.str.len == 0) return tv_strz("");
  char buf[1024];
  size_t len = strftime(buf, sizeof(buf), args[0]->u.str.s, &tm);
  if (len == 0) return tctx_fail(c, MLXR_ERR_INVALID, "strftime_now(): format too long or empty result");
  return tv_str(buf, len);
}

tv *mlxr_tpl_call_builtin(tctx *c, tv *fn, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  int id = fn->u.func.id;
  tv *self = fn->u.func.self;
  tv *r;
  switch (id) {
  case F_LOOP_CYCLE:
    if (n == 0) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: no items for cycling given");
    return tv_ref(args[self->u.loop.i % n]);
  case F_RANGE: return g_range(c, args, n, nkw);
  case F_DICT: return g_dict(c, false, args, n, kwn, kwv, nkw);
  case F_NAMESPACE: return g_dict(c, true, args, n, kwn, kwv, nkw);
  case F_RAISE: { /* the message as given (cut to the error buffer's size), never an empty error */
    tbuf b;
    tbuf_init(&b, sizeof(c->msg) * 8); /* a longer message used to come out empty (fuzz_template) */
    for (size_t i = 0; i < n; i++) tv_write_str(&b, args[i]);
    if (b.len > 0) tctx_fail(c, MLXR_ERR_INVALID, "%.*s", (int)b.len, b.s);
    else if (b.overflow) tctx_fail(c, MLXR_ERR_INVALID, "raise_exception() with a message over %zu bytes", b.max);
    else tctx_fail(c, MLXR_ERR_INVALID, "raise_exception() with an empty message");
    tbuf_free(&b);
    return NULL;
  }
  case F_STRFTIME: return g_strftime(c, args, n, nkw);
  default: break;
  }
  if (!self) return tctx_fail(c, MLXR_ERR_INVALID, "internal error: unbound builtin %d", id);
  if (self->type == TV_STR) r = call_str_method(c, id, self, args, n, kwn, kwv, nkw);
  else if (self->type == TV_DICT) r = call_dict_method(c, id, self, args, n, kwn, kwv, nkw);
  else if (self->type == TV_LIST) {
    if (n != 1 || nkw) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: %s() takes exactly one argument", fn->u.func.name);
    int64_t cnt = 0, idx = -1;
    for (size_t i = 0; i < self->u.list.n; i++)
      if (tv_eq(self->u.list.items[i], args[0])) {
        cnt++;
        if (idx < 0) idx = (int64_t)i;
      }
    if (id == L_INDEX && idx < 0) return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: value is not in list");
    r = tv_int(id == L_INDEX ? idx : cnt);
  } else {
    return tctx_fail(c, MLXR_ERR_INVALID, "internal error: bad method receiver");
  }
  if (!r && !c->failed) tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  return r;
}
