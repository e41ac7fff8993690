/*
 * eval.c: executes a compiled template (statements and expressions) and holds the public entry
 * points (mlxr_template_new/free/render).
 *
 * Scopes follow Jinja2: the variables of a render form the root scope; each for-loop iteration,
 * macro call and with-block gets a child scope (so `set` inside a loop does not leak out, which is
 * why templates use namespace()); if-blocks share their parent's scope. A render owns a tctx that
 * records the first error (later code only unwinds), counts steps (loop iterations and calls)
 * against max_steps, tracks evaluation depth against max_depth, and caps every string/list built
 * and the output at max_output_bytes.
 *
 * Cycles: a macro refers to its defining scope, which may hold the macro; namespaces may hold
 * themselves. The context keeps every macro and namespace made, and at the end of the render
 * drops the closures and clears the namespaces, so reference counting frees everything.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/template/template_impl.h"

/* ---- arena ---- */

struct tarena_block {
  tarena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

void *tarena_alloc(tarena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (!a->head || a->head->cap - a->head->used < size) {
    size_t cap = size > 65536 ? size : 65536;
    tarena_block *b = malloc(sizeof(tarena_block) + cap);
    if (!b) return NULL;
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = a->head->data + a->head->used;
  a->head->used += size;
  memset(p, 0, size);
  return p;
}

char *tarena_strdup(tarena *a, const char *s, size_t len) {
  char *p = tarena_alloc(a, len + 1);
  if (!p) return NULL;
  if (len) memcpy(p, s, len);
  p[len] = 0;
  return p;
}

void tarena_free(tarena *a) {
  while (a->head) {
    tarena_block *n = a->head->next;
    free(a->head);
    a->head = n;
  }
  for (size_t i = 0; i < a->n_consts; i++) {
    a->consts[i]->immortal = false;
    tv_unref(a->consts[i]);
  }
  free(a->consts);
  a->consts = NULL;
  a->n_consts = a->cap_consts = 0;
}

/* ---- context ---- */

void *tctx_fail(tctx *c, int status, const char *fmt, ...) {
  if (!c->failed) {
    c->failed = true;
    c->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
  }
  return NULL;
}

bool tctx_step(tctx *c) {
  if (c->failed) return false;
  if (++c->steps > c->params->max_steps) {
    tctx_fail(c, MLXR_ERR_RANGE, "template exceeded %llu steps (loop iterations and calls)",
              (unsigned long long)c->params->max_steps);
    return false;
  }
  return true;
}

static bool oom(tctx *c) {
  tctx_fail(c, MLXR_ERR_NOMEM, "out of memory, or a value larger than the limits");
  return false;
}

/* ---- scopes ---- */

static tscope *scope_new(tctx *c, tscope *parent) {
  tscope *s = calloc(1, sizeof(*s));
  if (s) s->vars = tv_dict();
  if (!s || !s->vars) {
    free(s);
    oom(c);
    return NULL;
  }
  s->refs = 1;
  s->parent = parent;
  if (parent) parent->refs++;
  return s;
}

static void scope_unref(tscope *s) {
  while (s && --s->refs == 0) {
    tscope *p = s->parent;
    tv_unref(s->vars);
    free(s);
    s = p;
  }
}

static tv *scope_lookup(tscope *s, const char *name) {
  for (; s; s = s->parent) {
    tv *v = tv_dict_getz(s->vars, name);
    if (v) return v;
  }
  return NULL;
}

static bool scope_set(tctx *c, tscope *s, const char *name, tv *val) {
  if (!val) return false;
  if (!tv_dict_setz(s->vars, name, val)) return oom(c);
  return true;
}

/* ---- expressions ---- */

static tv *eval(tctx *c, tscope *s, const tnode *n);
static bool exec(tctx *c, tscope *s, const tnode *n);

void *mlxr_tpl_undefined_error(tctx *c, const tv *u) {
  if (u->u.str.unsafe) return tctx_fail(c, MLXR_ERR_INVALID, "SecurityError: %s", u->u.str.s ? u->u.str.s : "unsafe access");
  return tctx_fail(c, MLXR_ERR_INVALID, "UndefinedError: %s", u->u.str.s ? u->u.str.s : "value is undefined");
}

static tv *type_error(tctx *c, const char *op, const tv *a, const tv *b) {
  if (a->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, a);
  if (b && b->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, b);
  if (b)
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op,
                     tv_type_name(a), tv_type_name(b));
  return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: bad operand type for unary %s: '%s'", op, tv_type_name(a));
}

static int64_t as_int(const tv *v) { return v->type == TV_BOOL ? v->u.b : v->u.i; }
static bool is_intlike(const tv *v) { return v->type == TV_INT || v->type == TV_BOOL; }

static tv *repeat(tctx *c, const tv *seq, int64_t times) {
  size_t max = c->params->max_output_bytes;
  if (times < 0) times = 0;
  if (seq->type == TV_STR) {
    if (seq->u.str.len && (uint64_t)times > max / seq->u.str.len)
      return tctx_fail(c, MLXR_ERR_RANGE, "string repetition exceeds the output limit (%zu bytes)", max);
    size_t total = seq->u.str.len * (size_t)times;
    char *p = malloc(total + 1);
    if (!p) return oom(c), NULL;
    for (int64_t i = 0; i < times; i++) memcpy(p + (size_t)i * seq->u.str.len, seq->u.str.s, seq->u.str.len);
    p[total] = 0;
    return tv_str_take(p, total);
  }
  size_t n = seq->u.list.n;
  if (n && (uint64_t)times > (max / 8) / n)
    return tctx_fail(c, MLXR_ERR_RANGE, "list repetition exceeds the size limit");
  tv *l = tv_list(n * (size_t)times);
  if (!l) return oom(c), NULL;
  l->u.list.is_tuple = seq->u.list.is_tuple;
  for (int64_t i = 0; i < times; i++)
    for (size_t k = 0; k < n; k++)
      if (!tv_list_push(l, tv_ref(seq->u.list.items[k]))) {
        tv_unref(l);
        return oom(c), NULL;
      }
  return l;
}



tv *mlxr_tpl_binop(tctx *c, int op, tv *a, tv *b) {
  static const char *const names[] = {"", "+", "-", "*", "/", "//", "%", "**"};
  if (a->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, a);
  /* str % x is printf formatting for any x (Undefined passes as a mapping with no keys used) */
  if (op == OP_MOD && a->type == TV_STR) return mlxr_tpl_percent_format(c, a, b);
  if (b->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, b);
  bool num = tv_is_number(a) && tv_is_number(b);
  bool ints = is_intlike(a) && is_intlike(b);
  switch (op) {
  case OP_ADD:
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(as_int(a), as_int(b), &r)) break;
      return tv_int(r);
    }
    if (num) return tv_float(tv_as_double(a) + tv_as_double(b));
    if (a->type == TV_STR && b->type == TV_STR) {
      if (a->u.str.len + b->u.str.len > c->params->max_output_bytes)
        return tctx_fail(c, MLXR_ERR_RANGE, "string exceeds the output limit");
      char *p = malloc(a->u.str.len + b->u.str.len + 1);
      if (!p) return oom(c), NULL;
      memcpy(p, a->u.str.s, a->u.str.len);
      memcpy(p + a->u.str.len, b->u.str.s, b->u.str.len + 1);
      return tv_str_take(p, a->u.str.len + b->u.str.len);
    }
    if (a->type == TV_LIST && b->type == TV_LIST && a->u.list.is_tuple == b->u.list.is_tuple) {
      tv *l = tv_list(a->u.list.n + b->u.list.n);
      if (!l) return oom(c), NULL;
      l->u.list.is_tuple = a->u.list.is_tuple;
      for (size_t i = 0; i < a->u.list.n; i++) tv_list_push(l, tv_ref(a->u.list.items[i]));
      for (size_t i = 0; i < b->u.list.n; i++) tv_list_push(l, tv_ref(b->u.list.items[i]));
      return l;
    }
    if (a->type == TV_LIST || a->type == TV_STR) /* sequences concatenate only their own type */
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: can only concatenate %s (not \"%s\") to %s",
                       tv_type_name(a), tv_type_name(b), tv_type_name(a));
    return type_error(c, "+", a, b);
  case OP_SUB:
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(as_int(a), as_int(b), &r)) break;
      return tv_int(r);
    }
    if (num) return tv_float(tv_as_double(a) - tv_as_double(b));
    return type_error(c, "-", a, b);
  case OP_MUL:
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(as_int(a), as_int(b), &r)) break;
      return tv_int(r);
    }
    if (num) return tv_float(tv_as_double(a) * tv_as_double(b));
    if ((a->type == TV_STR || a->type == TV_LIST) && is_intlike(b)) return repeat(c, a, as_int(b));
    if ((b->type == TV_STR || b->type == TV_LIST) && is_intlike(a)) return repeat(c, b, as_int(a));
    if (a->type == TV_STR || a->type == TV_LIST || b->type == TV_STR || b->type == TV_LIST)
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: can't multiply sequence by non-int of type '%s'",
                       tv_type_name(a->type == TV_STR || a->type == TV_LIST ? b : a));
    return type_error(c, "*", a, b);
  case OP_DIV:
    if (!num) return type_error(c, "/", a, b);
    if (tv_as_double(b) == 0)
      return tctx_fail(c, MLXR_ERR_INVALID, "ZeroDivisionError: %sdivision by zero", ints ? "" : "float ");
    return tv_float(tv_as_double(a) / tv_as_double(b));
  case OP_FLOORDIV:
  case OP_MOD:
    if (!num) return type_error(c, names[op], a, b);
    if (tv_as_double(b) == 0) /* Python's messages, which differ by operator and type */
      return tctx_fail(c, MLXR_ERR_INVALID, "ZeroDivisionError: %s",
                       ints ? (op == OP_MOD ? "integer modulo by zero" : "integer division or modulo by zero")
                            : (op == OP_MOD ? "float modulo" : "float floor division by zero"));
    if (ints) {
      int64_t x = as_int(a), y = as_int(b);
      if (x == INT64_MIN && y == -1) break;
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        q -= 1;
        r += y;
      }
      return tv_int(op == OP_FLOORDIV ? q : r);
    } else {
      double x = tv_as_double(a), y = tv_as_double(b);
      double r = fmod(x, y);
      if (r != 0 && ((r < 0) != (y < 0))) r += y;
      if (op == OP_MOD) return tv_float(r);
      return tv_float(floor(x / y));
    }
  case OP_POW:
    if (!num) return type_error(c, "** or pow()", a, b);
    if (ints && as_int(b) >= 0) {
      int64_t base = as_int(a), e = as_int(b), r = 1;
      bool of = false;
      while (e > 0 && !of) {
        if (e & 1) of |= __builtin_mul_overflow(r, base, &r);
        e >>= 1;
        if (e) of |= __builtin_mul_overflow(base, base, &base);
      }
      if (of) break;
      return tv_int(r);
    }
    if (tv_as_double(a) == 0 && tv_as_double(b) < 0)
      return tctx_fail(c, MLXR_ERR_INVALID, "ZeroDivisionError: 0.0 cannot be raised to a negative power");
    return tv_float(pow(tv_as_double(a), tv_as_double(b)));
  default: break;
  }
  return tctx_fail(c, MLXR_ERR_UNSUPPORTED, "integer result of '%s' does not fit in 64 bits", names[op]);
}

/* Python's printf-style `str % args` for the common conversions. */
tv *mlxr_tpl_percent_format(tctx *c, const tv *fmt, const tv *args) {
  tbuf b;
  tbuf_init(&b, c->params->max_output_bytes);
  size_t ai = 0;
  bool tuple = args->type == TV_LIST && args->u.list.is_tuple;
  const char *s = fmt->u.str.s;
  size_t n = fmt->u.str.len;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      tbuf_addc(&b, s[i]);
      continue;
    }
    if (++i >= n) {
      tbuf_free(&b);
      return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: incomplete format");
    }
    char spec[32] = "%";
    size_t k = 1;
    while (i < n && strchr("-+ #0123456789.", s[i]) && k < sizeof(spec) - 3) spec[k++] = s[i++];
    if (i >= n) {
      tbuf_free(&b);
      return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: incomplete format");
    }
    char conv = s[i];
    if (conv == '%') {
      tbuf_addc(&b, '%');
      continue;
    }
    const tv *arg;
    if (tuple) {
      if (ai >= args->u.list.n) {
        tbuf_free(&b);
        return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: not enough arguments for format string");
      }
      arg = args->u.list.items[ai++];
    } else {
      if (ai++ > 0) {
        tbuf_free(&b);
        return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: not enough arguments for format string");
      }
      arg = args;
    }
    char out[512];
    if (conv == 's' || conv == 'r') {
      tbuf t;
      tbuf_init(&t, c->params->max_output_bytes);
      if (conv == 's') tv_write_str(&t, arg); else tv_write_repr(&t, arg);
      if (k == 1) {
        tbuf_add(&b, t.s ? t.s : "", t.len);
      } else {
        spec[k++] = 's';
        spec[k] = 0;
        snprintf(out, sizeof(out), spec, t.s ? t.s : "");
        tbuf_addz(&b, out);
      }
      tbuf_free(&t);
    } else if (strchr("diouxXeEfFgG", conv) && tv_is_number(arg)) {
      if (strchr("diouxX", conv)) {
        memcpy(spec + k, "ll", 2);
        spec[k + 2] = conv == 'i' || conv == 'u' ? 'd' : conv;
        spec[k + 3] = 0;
        snprintf(out, sizeof(out), spec, (long long)(arg->type == TV_FLOAT ? (long long)arg->u.f : as_int(arg)));
      } else {
        spec[k] = conv;
        spec[k + 1] = 0;
        snprintf(out, sizeof(out), spec, tv_as_double(arg));
      }
      tbuf_addz(&b, out);
    } else {
      tbuf_free(&b);
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: unsupported format '%%%c' for %s", conv, tv_type_name(arg));
    }
  }
  /* Python: arguments left over are an error, unless the argument is a mapping (dict, list,
   * Undefined: anything with __getitem__ but a tuple or a string) */
  bool mapping = args->type == TV_DICT || args->type == TV_NS || args->type == TV_UNDEF ||
                 (args->type == TV_LIST && !tuple);
  if (tuple ? ai < args->u.list.n : ai == 0 && !mapping) {
    tbuf_free(&b);
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: not all arguments converted during string formatting");
  }
  if (b.overflow) {
    tbuf_free(&b);
    return tctx_fail(c, MLXR_ERR_RANGE, "string exceeds the output limit");
  }
  size_t len;
  char *p = tbuf_take(&b, &len);
  return p ? tv_str_take(p, len) : (oom(c), NULL);
}

bool mlxr_tpl_check_hashable(tctx *c, const tv *v) {
  if (v->type == TV_LIST && v->u.list.is_tuple) {
    for (size_t i = 0; i < v->u.list.n; i++)
      if (!mlxr_tpl_check_hashable(c, v->u.list.items[i])) return false;
    return true;
  }
  if (v->type != TV_LIST && v->type != TV_DICT && v->type != TV_NS) return true;
  tctx_fail(c, MLXR_ERR_INVALID, "TypeError: unhashable type: '%s'", tv_type_name(v));
  return false;
}

static int contains(tctx *c, tv *item, tv *container) {
  switch (container->type) {
  case TV_STR:
    if (item->type != TV_STR) { /* Undefined too: str.__contains__ refuses it before using it */
      tctx_fail(c, MLXR_ERR_INVALID, "TypeError: 'in <string>' requires string as left operand, not %s", tv_type_name(item));
      return -1;
    }
    return memmem(container->u.str.s, container->u.str.len, item->u.str.s, item->u.str.len) != NULL;
  case TV_LIST:
    for (size_t i = 0; i < container->u.list.n; i++)
      if (tv_eq(item, container->u.list.items[i])) return 1;
    return 0;
  case TV_DICT:
  case TV_NS:
    if (!mlxr_tpl_check_hashable(c, item)) return -1;
    return tv_dict_get(container, item) != NULL;
  case TV_UNDEF: return 0; /* iterates as empty */
  default:
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: argument of type '%s' is not iterable", tv_type_name(container));
    return -1;
  }
}

int mlxr_tpl_compare(tctx *c, int op, tv *a, tv *b) {
  int r;
  switch (op) {
  case CMP_EQ: return tv_eq(a, b);
  case CMP_NE: return !tv_eq(a, b);
  case CMP_IN: return contains(c, a, b);
  case CMP_NOTIN: {
    int x = contains(c, a, b);
    return x < 0 ? -1 : !x;
  }
  default: break;
  }
  if (a->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, a), -1;
  if (b->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, b), -1;
  if (a->type == TV_LIST && b->type == TV_LIST && a->u.list.is_tuple == b->u.list.is_tuple) {
    /* Python: the first items that differ (==) decide, compared with the same operator */
    size_t n = a->u.list.n < b->u.list.n ? a->u.list.n : b->u.list.n;
    for (size_t i = 0; i < n; i++)
      if (!tv_eq(a->u.list.items[i], b->u.list.items[i]))
        return mlxr_tpl_compare(c, op, a->u.list.items[i], b->u.list.items[i]);
  }
  static const char *const sym[] = {"", "==", "!=", "<", "<=", ">", ">="};
  if (!tv_cmp(a, b, &r)) {
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' not supported between instances of '%s' and '%s'", sym[op],
              tv_type_name(a), tv_type_name(b));
    return -1;
  }
  if (r == 2) return 0;
  switch (op) {
  case CMP_LT: return r < 0;
  case CMP_LE: return r <= 0;
  case CMP_GT: return r > 0;
  default: return r >= 0;
  }
}

/* Python slice of a string (by code points) or list. */
static tv *do_slice(tctx *c, tv *obj, tv *start, tv *stop, tv *step) {
  int64_t st = 1;
  tv *parts[3] = {start, stop, step};
  for (int i = 0; i < 3; i++)
    if (parts[i] && parts[i]->type != TV_NONE && !is_intlike(parts[i])) {
      if (parts[i]->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, parts[i]);
      return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: slice indices must be integers or None");
    }
  if (step && step->type != TV_NONE) st = as_int(step);
  if (st == 0) return tctx_fail(c, MLXR_ERR_INVALID, "ValueError: slice step cannot be zero");
  if (obj->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, obj);
  /* slices bypass Jinja's getitem (no undefined fallback): Python's own errors */
  if (obj->type == TV_DICT) return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: unhashable type: 'slice'");
  if (obj->type != TV_STR && obj->type != TV_LIST)
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' object is not subscriptable", tv_type_name(obj));
  size_t *offs = NULL;
  int64_t len;
  if (obj->type == TV_STR) {
    len = (int64_t)tv_utf8_count(obj->u.str.s, obj->u.str.len);
    offs = malloc(((size_t)len + 1) * sizeof(size_t));
    if (!offs) return oom(c), NULL;
    size_t i = 0, k = 0;
    while (i < obj->u.str.len) {
      offs[k++] = i;
      tv_utf8_next(obj->u.str.s, obj->u.str.len, &i);
    }
    offs[k] = obj->u.str.len;
  } else {
    len = (int64_t)obj->u.list.n;
  }
  int64_t lo, hi;
  if (st > 0) {
    lo = start && start->type != TV_NONE ? as_int(start) : 0;
    hi = stop && stop->type != TV_NONE ? as_int(stop) : len;
    if (lo < 0) lo = lo + len < 0 ? 0 : lo + len;
    if (hi < 0) hi = hi + len < 0 ? 0 : hi + len;
    if (lo > len) lo = len;
    if (hi > len) hi = len;
  } else {
    lo = start && start->type != TV_NONE ? as_int(start) : len - 1;
    hi = stop && stop->type != TV_NONE ? as_int(stop) : -1 - len; /* sentinel: before 0 */
    if (lo < 0) lo = lo + len < 0 ? -1 : lo + len;
    if (lo >= len) lo = len - 1;
    if (stop && stop->type != TV_NONE) {
      if (hi < 0) hi = hi + len < 0 ? -1 : hi + len;
      if (hi >= len) hi = len - 1;
    } else {
      hi = -1;
    }
  }
  tv *r;
  if (obj->type == TV_STR) {
    tbuf b;
    tbuf_init(&b, c->params->max_output_bytes);
    for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st)
      tbuf_add(&b, obj->u.str.s + offs[i], offs[i + 1] - offs[i]);
    free(offs);
    size_t bl;
    char *p = tbuf_take(&b, &bl);
    r = p ? tv_str_take(p, bl) : NULL;
  } else {
    r = tv_list(0);
    if (r) {
      r->u.list.is_tuple = obj->u.list.is_tuple;
      for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st)
        if (!tv_list_push(r, tv_ref(obj->u.list.items[i]))) {
          tv_unref(r);
          r = NULL;
          break;
        }
    }
  }
  return r ? r : (oom(c), NULL);
}

static void free_args(tv **args, size_t na, tv **kwv, size_t nk, size_t total) {
  if (args) {
    for (size_t i = 0; i < na; i++) tv_unref(args[i]);
    tv_unref(args[total]);
  }
  for (size_t i = 0; kwv && i < nk; i++) tv_unref(kwv[i]);
  free(args);
  free(kwv);
}

static bool eval_args(tctx *c, tscope *s, const tnode *n, tv ***args, size_t *na, tv ***kwv, const char ***kwn,
                      size_t *nk) {
  tv *star = NULL, *dstar = NULL;
  if (n->e && !(star = eval(c, s, n->e))) return false;
  if (n->d && !(dstar = eval(c, s, n->d))) {
    tv_unref(star);
    return false;
  }
  tv *starl = NULL;
  if (star) {
    starl = mlxr_tpl_iterate(c, star);
    tv_unref(star);
    if (!starl) {
      tv_unref(dstar);
      return false;
    }
  }
  if (dstar && dstar->type != TV_DICT) {
    tv_unref(starl);
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: argument after ** must be a mapping, not %s", tv_type_name(dstar));
    tv_unref(dstar);
    return false;
  }
  size_t total = n->n + (starl ? starl->u.list.n : 0);
  size_t totalk = n->n2 + (dstar ? dstar->u.dict.n : 0);
  *args = calloc(total + 1, sizeof(tv *));
  *kwv = calloc(totalk + 1, sizeof(tv *));
  *kwn = calloc(totalk + 1, sizeof(char *));
  *na = 0;
  *nk = 0;
  bool ok = *args && *kwv && *kwn;
  for (size_t i = 0; ok && i < n->n; i++) {
    tv *v = eval(c, s, n->list[i]);
    if (!v) ok = false; else (*args)[(*na)++] = v;
  }
  for (size_t i = 0; ok && starl && i < starl->u.list.n; i++) (*args)[(*na)++] = tv_ref(starl->u.list.items[i]);
  for (size_t i = 0; ok && i < n->n2; i++) {
    tv *v = eval(c, s, n->list2[i]);
    if (!v) {
      ok = false;
    } else {
      (*kwn)[*nk] = n->names[i];
      (*kwv)[(*nk)++] = v;
    }
  }
  for (size_t i = 0; ok && dstar && i < dstar->u.dict.n; i++) {
    tv *k = dstar->u.dict.keys[i];
    if (k->type != TV_STR) {
      tctx_fail(c, MLXR_ERR_INVALID, "TypeError: keywords must be strings");
      ok = false;
      break;
    }
    (*kwn)[*nk] = k->u.str.s; /* borrowed from dstar, kept alive by the value ref below */
    (*kwv)[(*nk)++] = tv_ref(dstar->u.dict.vals[i]);
  }
  tv_unref(starl);
  if (dstar) {
    /* keep the dict alive until the args are freed: park it as an extra positional slot */
    if (ok) (*args)[total] = dstar; else tv_unref(dstar);
  }
  if (!ok) {
    if (!c->failed) oom(c);
    free_args(*args, *na, *kwv, *nk, total);
    free(*kwn);
    *args = NULL;
    *kwv = NULL;
    *kwn = NULL;
  }
  return ok;
}

static tv *filter_node(tctx *c, tscope *s, const tnode *n, tv *input) {
  tv **args, **kwv;
  const char **kwn;
  size_t na, nk;
  if (!eval_args(c, s, n, &args, &na, &kwv, &kwn, &nk)) {
    return NULL;
  }
  size_t total = na;
  tv *r = mlxr_tpl_filter(c, n->name, input, args, na, kwn, kwv, nk);
  free_args(args, na, kwv, nk, total);
  free(kwn);
  return r;
}

static tv *eval_inner(tctx *c, tscope *s, const tnode *n) {
  switch (n->kind) {
  case N_CONST: return tv_ref(n->value);
  case N_NAME: {
    tv *v = scope_lookup(s, n->name);
    if (v) return tv_ref(v);
    v = mlxr_tpl_global(n->name);
    if (v) return v;
    return tv_undef("'%s' is undefined", n->name);
  }
  case N_LIST:
  case N_TUPLE: {
    tv *l = tv_list(n->n);
    if (!l) return oom(c), NULL;
    l->u.list.is_tuple = n->kind == N_TUPLE;
    for (size_t i = 0; i < n->n; i++) {
      tv *v = eval(c, s, n->list[i]);
      if (!v || !tv_list_push(l, v)) {
        tv_unref(l);
        if (!c->failed) oom(c);
        return NULL;
      }
    }
    return l;
  }
  case N_DICT: {
    tv *d = tv_dict();
    if (!d) return oom(c), NULL;
    for (size_t i = 0; i < n->n; i++) {
      tv *k = eval(c, s, n->list[i]);
      tv *v = k ? eval(c, s, n->list2[i]) : NULL;
      if (v && !mlxr_tpl_check_hashable(c, k)) {
        tv_unref(v);
        v = NULL;
      }
      bool ok = v && tv_dict_set(d, k, v);
      tv_unref(k);
      if (!ok) {
        tv_unref(d);
        if (!c->failed) oom(c);
        return NULL;
      }
    }
    return d;
  }
  case N_BINOP: {
    tv *a = eval(c, s, n->a);
    tv *b = a ? eval(c, s, n->b) : NULL;
    tv *r = b ? mlxr_tpl_binop(c, n->op, a, b) : NULL;
    if (!r && !c->failed) oom(c);
    tv_unref(a);
    tv_unref(b);
    return r;
  }
  case N_NEG:
  case N_POS: {
    tv *a = eval(c, s, n->a);
    if (!a) return NULL;
    tv *r = NULL;
    if (is_intlike(a)) {
      r = n->kind == N_POS ? tv_int(as_int(a)) : as_int(a) == INT64_MIN ? NULL : tv_int(-as_int(a));
    } else if (a->type == TV_FLOAT) {
      r = tv_float(n->kind == N_POS ? a->u.f : -a->u.f);
    } else {
      type_error(c, n->kind == N_POS ? "+" : "-", a, NULL);
    }
    tv_unref(a);
    if (!r && !c->failed) oom(c);
    return r;
  }
  case N_NOT: {
    tv *a = eval(c, s, n->a);
    if (!a) return NULL;
    bool t = tv_truthy(a);
    tv_unref(a);
    return tv_bool(!t);
  }
  case N_AND:
  case N_OR: {
    tv *a = eval(c, s, n->a);
    if (!a) return NULL;
    if (tv_truthy(a) == (n->kind == N_OR)) return a;
    tv_unref(a);
    return eval(c, s, n->b);
  }
  case N_COMPARE: {
    tv *left = eval(c, s, n->a);
    if (!left) return NULL;
    for (size_t i = 0; i < n->n; i++) {
      tv *right = eval(c, s, n->list[i]);
      if (!right) {
        tv_unref(left);
        return NULL;
      }
      int r = mlxr_tpl_compare(c, n->ops[i], left, right);
      tv_unref(left);
      left = right;
      if (r <= 0) {
        tv_unref(left);
        return r < 0 ? NULL : tv_bool(false);
      }
    }
    tv_unref(left);
    return tv_bool(true);
  }
  case N_CONCAT: {
    tbuf b;
    tbuf_init(&b, c->params->max_output_bytes);
    for (size_t i = 0; i < n->n; i++) {
      tv *v = eval(c, s, n->list[i]);
      if (!v) {
        tbuf_free(&b);
        return NULL;
      }
      tv_write_str(&b, v);
      tv_unref(v);
    }
    if (b.overflow) {
      tbuf_free(&b);
      return tctx_fail(c, MLXR_ERR_RANGE, "string exceeds the output limit");
    }
    size_t len;
    char *p = tbuf_take(&b, &len);
    return p ? tv_str_take(p, len) : (oom(c), NULL);
  }
  case N_COND: {
    tv *t = eval(c, s, n->a);
    if (!t) return NULL;
    bool yes = tv_truthy(t);
    tv_unref(t);
    if (yes) return eval(c, s, n->b);
    if (n->c) return eval(c, s, n->c);
    return tv_undef("the inline if-expression evaluated to false and no else section was defined");
  }
  case N_GETATTR: {
    tv *o = eval(c, s, n->a);
    if (!o) return NULL;
    tv *r = o->type == TV_UNDEF ? mlxr_tpl_undefined_error(c, o) : mlxr_tpl_getattr(c, o, n->name);
    tv_unref(o);
    return r;
  }
  case N_GETITEM: {
    tv *o = eval(c, s, n->a);
    if (!o) return NULL;
    tv *r = NULL;
    if (o->type == TV_UNDEF) {
      r = mlxr_tpl_undefined_error(c, o);
    } else if (n->b->kind == N_SLICE) {
      tv *parts[3] = {NULL, NULL, NULL};
      const tnode *sn[3] = {n->b->a, n->b->b, n->b->c};
      bool ok = true;
      for (int i = 0; i < 3 && ok; i++)
        if (sn[i] && !(parts[i] = eval(c, s, sn[i]))) ok = false;
      if (ok) r = do_slice(c, o, parts[0], parts[1], parts[2]);
      for (int i = 0; i < 3; i++) tv_unref(parts[i]);
    } else {
      tv *k = eval(c, s, n->b);
      if (k) r = mlxr_tpl_getitem(c, o, k);
      tv_unref(k);
    }
    tv_unref(o);
    return r;
  }
  case N_CALL: {
    tv *fn = eval(c, s, n->a);
    if (!fn) return NULL;
    tv **args, **kwv;
    const char **kwn;
    size_t na, nk;
    if (!eval_args(c, s, n, &args, &na, &kwv, &kwn, &nk)) {
      tv_unref(fn);
      return NULL;
    }
    tv *r = mlxr_tpl_call(c, fn, args, na, kwn, kwv, nk, n->line);
    free_args(args, na, kwv, nk, na);
    free(kwn);
    tv_unref(fn);
    return r;
  }
  case N_FILTER: {
    tv *in = eval(c, s, n->a);
    if (!in) return NULL;
    tv *r = filter_node(c, s, n, in);
    tv_unref(in);
    return r;
  }
  case N_TEST: {
    tv *in = eval(c, s, n->a);
    if (!in) return NULL;
    tv **args = calloc(n->n + 1, sizeof(tv *));
    size_t na = 0;
    bool ok = args != NULL;
    for (size_t i = 0; ok && i < n->n; i++) {
      tv *v = eval(c, s, n->list[i]);
      if (!v) ok = false; else args[na++] = v;
    }
    for (size_t i = 0; ok && i < n->n2; i++) {
      tv *v = eval(c, s, n->list2[i]);
      if (!v) ok = false; else args[na++] = v; /* keyword args of tests: positional here */
    }
    int r = ok ? mlxr_tpl_test(c, n->name, in, args, na) : -1;
    for (size_t i = 0; i < na; i++) tv_unref(args[i]);
    free(args);
    tv_unref(in);
    if (r < 0) {
      if (!c->failed) oom(c);
      return NULL;
    }
    return tv_bool(r);
  }
  default: return tctx_fail(c, MLXR_ERR_INVALID, "internal error: bad expression node %d", n->kind);
  }
}

static tv *eval(tctx *c, tscope *s, const tnode *n) {
  if (c->failed) return NULL;
  if (++c->depth > c->params->max_depth) {
    c->depth--;
    return tctx_fail(c, MLXR_ERR_RANGE, "template nesting exceeded depth %d (runaway recursion?)", c->params->max_depth);
  }
  tv *r = eval_inner(c, s, n);
  c->depth--;
  if (!r && !c->failed) oom(c);
  if (r && c->failed) {
    tv_unref(r);
    r = NULL;
  }
  return r;
}

/* ---- macros ---- */

static tv *make_macro(tctx *c, const tnode *def, tscope *closure, const char *name) {
  tv *m = tv_new(TV_MACRO);
  if (!m) return oom(c), NULL;
  m->u.macro.def = def;
  m->u.macro.closure = closure;
  m->u.macro.name = name;
  closure->refs++;
  if (!tv_list_push(c->macros, tv_ref(m))) {
    tv_unref(m);
    return oom(c), NULL;
  }
  return m;
}

static tv *call_macro(tctx *c, tv *m, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw) {
  const tnode *def = m->u.macro.def;
  const char *mname = m->u.macro.name ? m->u.macro.name : "caller";
  if (!m->u.macro.closure) return tctx_fail(c, MLXR_ERR_INVALID, "macro called after its render ended");
  if (n > def->n2 && !(def->flag & USES_VARARGS))
    return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: macro '%s' takes not more than %zu argument(s)", mname, def->n2);
  tscope *s = scope_new(c, m->u.macro.closure);
  if (!s) return NULL;
  bool ok = true;
  tv *extra_kw = tv_dict(), *varargs = tv_list(0), *caller = NULL;
  if (!extra_kw || !varargs) ok = oom(c);
  if (varargs) varargs->u.list.is_tuple = true;
  for (size_t k = 0; ok && k < nkw; k++) {
    bool found = false;
    for (size_t i = 0; i < def->n2; i++)
      if (!strcmp(def->names[i], kwn[k])) {
        found = true;
        if (i < n) {
          tctx_fail(c, MLXR_ERR_INVALID, "TypeError: macro '%s' got multiple values for argument '%s'", mname, kwn[k]);
          ok = false;
        }
      }
    if (!found && !strcmp(kwn[k], "caller") && (def->flag & USES_CALLER)) {
      caller = kwv[k];
    } else if (!found) {
      if (!(def->flag & USES_KWARGS)) {
        tctx_fail(c, MLXR_ERR_INVALID, "TypeError: macro '%s' takes no keyword argument '%s'", mname, kwn[k]);
        ok = false;
      } else if (!tv_dict_setz(extra_kw, kwn[k], tv_ref(kwv[k]))) {
        ok = oom(c);
      }
    }
  }
  for (size_t i = 0; ok && i < def->n2; i++) {
    tv *v = NULL;
    if (i < n) {
      v = tv_ref(args[i]);
    } else {
      for (size_t k = 0; k < nkw; k++)
        if (!strcmp(def->names[i], kwn[k])) v = tv_ref(kwv[k]);
      if (!v && def->list2[i]) v = eval(c, s, def->list2[i]);
      else if (!v) v = tv_undef("parameter '%s' was not provided", def->names[i]);
    }
    ok = scope_set(c, s, def->names[i], v);
  }
  for (size_t i = def->n2; ok && i < n; i++)
    if (!tv_list_push(varargs, tv_ref(args[i]))) ok = oom(c);
  if (ok && (def->flag & USES_VARARGS)) ok = scope_set(c, s, "varargs", tv_ref(varargs));
  if (ok && (def->flag & USES_KWARGS)) ok = scope_set(c, s, "kwargs", tv_ref(extra_kw));
  if (ok && (def->flag & USES_CALLER)) {
    tv *cv = caller ? tv_ref(caller) : m->u.macro.caller ? tv_ref(m->u.macro.caller) : tv_undef("No caller defined");
    ok = scope_set(c, s, "caller", cv);
  }
  tv_unref(extra_kw);
  tv_unref(varargs);
  tv *r = NULL;
  if (ok) {
    tbuf out, *saved = c->out;
    tbuf_init(&out, c->params->max_output_bytes);
    c->out = &out;
    int saved_flow = c->flow;
    ok = exec(c, s, def->b);
    c->flow = saved_flow;
    c->out = saved;
    if (ok) {
      size_t len;
      char *p = tbuf_take(&out, &len);
      r = p ? tv_str_take(p, len) : (oom(c), NULL);
    }
    tbuf_free(&out);
  }
  scope_unref(s);
  return r;
}

tv *mlxr_tpl_call(tctx *c, tv *fn, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw, int line) {
  (void)line;
  if (!tctx_step(c)) return NULL;
  switch (fn->type) {
  case TV_MACRO: {
    if (++c->depth > c->params->max_depth) {
      c->depth--;
      return tctx_fail(c, MLXR_ERR_RANGE, "template nesting exceeded depth %d (runaway recursion?)", c->params->max_depth);
    }
    c->depth += 4; /* a macro call costs several C frames */
    tv *r = call_macro(c, fn, args, n, kwn, kwv, nkw);
    c->depth -= 5;
    return r;
  }
  case TV_FUNC: return mlxr_tpl_call_builtin(c, fn, args, n, kwn, kwv, nkw);
  case TV_UNDEF: return mlxr_tpl_undefined_error(c, fn);
  default: return tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' object is not callable", tv_type_name(fn));
  }
}

/* ---- statements ---- */

static bool write_out(tctx *c, const char *s, size_t len) {
  if (tbuf_add(c->out, s, len)) return true;
  tctx_fail(c, MLXR_ERR_RANGE, "template output exceeds the limit of %zu bytes", c->params->max_output_bytes);
  return false;
}

static bool assign(tctx *c, tscope *s, const tnode *target, tv *val) {
  if (!val) return false;
  if (target->kind == N_NAME) return scope_set(c, s, target->name, val);
  if (target->kind == N_GETATTR) {
    tv *ns = scope_lookup(s, target->a->name);
    if (!ns || ns->type != TV_NS) {
      tv_unref(val);
      tctx_fail(c, MLXR_ERR_INVALID, "TemplateRuntimeError: cannot assign attribute on non-namespace object");
      return false;
    }
    if (!tv_dict_setz(ns, target->name, val)) return oom(c);
    return true;
  }
  /* tuple unpacking */
  tv *items = mlxr_tpl_iterate(c, val);
  tv_unref(val);
  if (!items) return false;
  bool ok = true;
  if (items->u.list.n != target->n) {
    tctx_fail(c, MLXR_ERR_INVALID, "ValueError: %s values to unpack (expected %zu, got %zu)",
              items->u.list.n < target->n ? "not enough" : "too many", target->n, items->u.list.n);
    ok = false;
  }
  for (size_t i = 0; ok && i < target->n; i++) ok = assign(c, s, target->list[i], tv_ref(items->u.list.items[i]));
  tv_unref(items);
  return ok;
}

static tv *capture(tctx *c, tscope *s, const tnode *body) {
  tbuf out, *saved = c->out;
  tbuf_init(&out, c->params->max_output_bytes);
  c->out = &out;
  bool ok = exec(c, s, body);
  c->out = saved;
  tv *r = NULL;
  if (ok) {
    size_t len;
    char *p = tbuf_take(&out, &len);
    r = p ? tv_str_take(p, len) : (oom(c), NULL);
  }
  tbuf_free(&out);
  return r;
}

/* Apply a chain of N_FILTER nodes whose innermost input is NULL to v (owned). */
static tv *apply_filter_chain(tctx *c, tscope *s, const tnode *f, tv *v) {
  if (!f) return v;
  v = apply_filter_chain(c, s, f->a, v);
  if (!v) return NULL;
  tv *r = filter_node(c, s, f, v);
  tv_unref(v);
  return r;
}

static tv *make_loop(tctx *c, tv *items, size_t i) {
  tv *l = tv_new(TV_LOOP);
  if (!l) return oom(c), NULL;
  l->u.loop.items = tv_ref(items);
  l->u.loop.i = i;
  return l;
}

static bool exec_for(tctx *c, tscope *s, const tnode *n) {
  tv *it = eval(c, s, n->b);
  if (!it) return false;
  tv *items = mlxr_tpl_iterate(c, it);
  tv_unref(it);
  if (!items) return false;
  if (n->flag) {
    tv_unref(items);
    tctx_fail(c, MLXR_ERR_UNSUPPORTED, "recursive for loops are not supported");
    return false;
  }
  if (n->e) { /* loop filter: applied first, so loop.length counts what passes */
    tv *kept = tv_list(items->u.list.n);
    bool ok = kept != NULL;
    for (size_t i = 0; ok && i < items->u.list.n; i++) {
      if (!tctx_step(c)) {
        ok = false;
        break;
      }
      tscope *fs = scope_new(c, s);
      ok = fs && assign(c, fs, n->a, tv_ref(items->u.list.items[i]));
      tv *t = ok ? eval(c, fs, n->e) : NULL;
      ok = t != NULL;
      if (ok && tv_truthy(t)) ok = tv_list_push(kept, tv_ref(items->u.list.items[i]));
      tv_unref(t);
      if (fs) scope_unref(fs);
    }
    tv_unref(items);
    if (!ok) {
      tv_unref(kept);
      if (!c->failed) oom(c);
      return false;
    }
    items = kept;
  }
  bool ok = true;
  for (size_t i = 0; ok && i < items->u.list.n; i++) {
    if (!tctx_step(c)) {
      ok = false;
      break;
    }
    tscope *ls = scope_new(c, s);
    if (!ls) {
      ok = false;
      break;
    }
    ok = assign(c, ls, n->a, tv_ref(items->u.list.items[i])) && scope_set(c, ls, "loop", make_loop(c, items, i)) &&
         exec(c, ls, n->c);
    scope_unref(ls);
    if (c->flow == FLOW_BREAK) {
      c->flow = 0;
      break;
    }
    c->flow = 0;
  }
  bool empty = items->u.list.n == 0;
  tv_unref(items);
  if (ok && empty && n->d) ok = exec(c, s, n->d);
  return ok && !c->failed;
}

static bool exec_stmt(tctx *c, tscope *s, const tnode *n) {
  switch (n->kind) {
  case N_BODY:
    for (size_t i = 0; i < n->n; i++) {
      if (!exec(c, s, n->list[i])) return false;
      if (c->flow) return true;
    }
    return true;
  case N_TEXT: return write_out(c, n->name, n->len);
  case N_PRINT: {
    tv *v = eval(c, s, n->a);
    if (!v) return false;
    bool ok;
    if (v->type == TV_STR) {
      ok = write_out(c, v->u.str.s, v->u.str.len);
    } else {
      tbuf b;
      tbuf_init(&b, c->params->max_output_bytes);
      tv_write_str(&b, v);
      ok = !b.overflow && write_out(c, b.s ? b.s : "", b.len);
      if (b.overflow) tctx_fail(c, MLXR_ERR_RANGE, "template output exceeds the limit");
      tbuf_free(&b);
    }
    tv_unref(v);
    return ok;
  }
  case N_IF: {
    tv *t = eval(c, s, n->a);
    if (!t) return false;
    bool yes = tv_truthy(t);
    tv_unref(t);
    if (yes) return exec(c, s, n->b);
    return n->c ? exec(c, s, n->c) : true;
  }
  case N_FOR: return exec_for(c, s, n);
  case N_SET: return assign(c, s, n->a, eval(c, s, n->b));
  case N_SETBLOCK: {
    tv *v = capture(c, s, n->b);
    if (v && n->c) v = apply_filter_chain(c, s, n->c, v);
    return assign(c, s, n->a, v);
  }
  case N_MACRO: return scope_set(c, s, n->name, make_macro(c, n, s, n->name));
  case N_CALLBLOCK: {
    const tnode *call = n->a;
    tv *caller = make_macro(c, n, s, NULL);
    if (!caller) return false;
    tv *fn = eval(c, s, call->a);
    tv **args = NULL, **kwv = NULL;
    const char **kwn = NULL;
    size_t na = 0, nk = 0;
    tv *r = NULL;
    if (fn && eval_args(c, s, call, &args, &na, &kwv, &kwn, &nk)) {
      if (fn->type == TV_MACRO) {
        tv *saved = fn->u.macro.caller;
        fn->u.macro.caller = caller;
        r = mlxr_tpl_call(c, fn, args, na, kwn, kwv, nk, n->line);
        fn->u.macro.caller = saved;
      } else {
        r = mlxr_tpl_call(c, fn, args, na, kwn, kwv, nk, n->line);
      }
      free_args(args, na, kwv, nk, na);
      free(kwn);
    }
    tv_unref(fn);
    tv_unref(caller);
    if (!r) return false;
    tbuf b;
    tbuf_init(&b, c->params->max_output_bytes);
    tv_write_str(&b, r);
    bool ok = write_out(c, b.s ? b.s : "", b.len);
    tbuf_free(&b);
    tv_unref(r);
    return ok;
  }
  case N_FILTERBLOCK: {
    tv *v = capture(c, s, n->b);
    if (v) v = apply_filter_chain(c, s, n->a, v);
    if (!v) return false;
    tbuf b;
    tbuf_init(&b, c->params->max_output_bytes);
    tv_write_str(&b, v);
    bool ok = write_out(c, b.s ? b.s : "", b.len);
    tbuf_free(&b);
    tv_unref(v);
    return ok;
  }
  case N_WITH: {
    tscope *ws = scope_new(c, s);
    if (!ws) return false;
    bool ok = true;
    for (size_t i = 0; ok && i < n->n; i++) ok = assign(c, ws, n->list[i], eval(c, s, n->list2[i]));
    ok = ok && exec(c, ws, n->b);
    scope_unref(ws);
    return ok;
  }
  case N_BREAK: c->flow = FLOW_BREAK; return true;
  case N_CONTINUE: c->flow = FLOW_CONTINUE; return true;
  default: tctx_fail(c, MLXR_ERR_INVALID, "internal error: bad statement node %d", n->kind); return false;
  }
}

static bool exec(tctx *c, tscope *s, const tnode *n) {
  if (c->failed) return false;
  if (++c->depth > c->params->max_depth) {
    c->depth--;
    tctx_fail(c, MLXR_ERR_RANGE, "template nesting exceeded depth %d (runaway recursion?)", c->params->max_depth);
    return false;
  }
  bool ok = exec_stmt(c, s, n);
  c->depth--;
  return ok && !c->failed;
}

/* ---- public API ---- */

void mlxr_template_default_params(mlxr_template_params *p) {
  memset(p, 0, sizeof(*p));
  p->max_output_bytes = (size_t)64 << 20;
  p->max_steps = 2000000;
  p->max_depth = 400;
  p->fixed_time = NULL;
}

int mlxr_template_new(const char *src, size_t len, mlxr_template **out, char *err, size_t err_len) {
  *out = NULL;
  mlxr_template *t = calloc(1, sizeof(*t));
  if (!t) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  ttok *toks = NULL;
  size_t n = 0;
  int rc = mlxr_template_lex(src, len, &t->arena, &toks, &n, err, err_len);
  if (rc == MLXR_OK) rc = mlxr_template_parse(toks, n, &t->arena, &t->root, err, err_len);
  free(toks);
  if (rc != MLXR_OK) {
    mlxr_template_free(t);
    return rc;
  }
  *out = t;
  return MLXR_OK;
}

void mlxr_template_free(mlxr_template *t) {
  if (!t) return;
  tarena_free(&t->arena);
  free(t);
}

static int render_vars(const mlxr_template *t, tv *vars, const mlxr_template_params *params, char **out,
                       size_t *out_len, char *err, size_t err_len) {
  mlxr_template_params defaults;
  if (!params) {
    mlxr_template_default_params(&defaults);
    params = &defaults;
  }
  tctx c = {.params = params};
  tbuf ob;
  tbuf_init(&ob, params->max_output_bytes);
  c.out = &ob;
  c.macros = tv_list(0);
  c.namespaces = tv_list(0);
  tscope *root = calloc(1, sizeof(*root));
  if (!c.macros || !c.namespaces || !root) {
    tv_unref(c.macros);
    tv_unref(c.namespaces);
    tv_unref(vars);
    free(root);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  root->refs = 1;
  root->vars = vars;
  c.root = root;
  bool ok = exec(&c, root, t->root);
  /* break cycles: macro closures and namespace contents */
  for (size_t i = 0; i < c.macros->u.list.n; i++) {
    tv *m = c.macros->u.list.items[i];
    tscope *cl = m->u.macro.closure;
    m->u.macro.closure = NULL;
    scope_unref(cl);
  }
  for (size_t i = 0; i < c.namespaces->u.list.n; i++) {
    tv *ns = c.namespaces->u.list.items[i];
    for (size_t k = 0; k < ns->u.dict.n; k++) {
      tv_unref(ns->u.dict.keys[k]);
      tv_unref(ns->u.dict.vals[k]);
    }
    ns->u.dict.n = 0;
  }
  scope_unref(root);
  tv_unref(c.macros);
  tv_unref(c.namespaces);
  if (!ok || c.failed) {
    tbuf_free(&ob);
    if (!c.failed) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    return mlxr_errf(err, err_len, c.status, "%s", c.msg);
  }
  char *s = tbuf_take(&ob, out_len);
  if (!s) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  *out = s;
  return MLXR_OK;
}

int mlxr_template_render(const mlxr_template *t, const cJSON *vars, const mlxr_template_params *params, char **out,
                         size_t *out_len, char *err, size_t err_len) {
  *out = NULL;
  tv *v = vars ? mlxr_tpl_from_cjson(vars, 0) : tv_dict();
  if (!v) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory converting the variables");
  if (v->type != TV_DICT) {
    tv_unref(v);
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "template variables must be a JSON object");
  }
  return render_vars(t, v, params, out, out_len, err, err_len);
}

int mlxr_template_render_json(const mlxr_template *t, const char *json, size_t json_len,
                              const mlxr_template_params *params, char **out, size_t *out_len, char *err,
                              size_t err_len) {
  *out = NULL;
  char perr[256] = "";
  tv *v = mlxr_tpl_json_parse(json, json_len, perr, sizeof(perr));
  if (!v) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "template variables: %s", perr);
  if (v->type != TV_DICT) {
    tv_unref(v);
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "template variables must be a JSON object");
  }
  return render_vars(t, v, params, out, out_len, err, err_len);
}
