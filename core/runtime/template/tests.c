/*
 * tests.c: Jinja2's builtin tests (`x is defined`, `x is string`, `n is divisibleby 3`, ...), with
 * the same answers as jinja2/tests.py gives for the values a template can hold. Note Jinja's
 * quirks: booleans are numbers but not integers; Undefined is iterable and a sequence.
 */
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/template/template_impl.h"

static int need_args(tctx *c, const char *name, size_t n, size_t want) {
  if (n == want) return 0;
  tctx_fail(c, MLXR_ERR_INVALID, "TypeError: test '%s' takes %zu argument(s), %zu given", name, want, n);
  return -1;
}

static int cmp_test(tctx *c, const char *name, tv *a, tv *b, int op) {
  if (op == 0) return tv_eq(a, b);
  if (op == 1) return !tv_eq(a, b);
  if (a->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, a), -1;
  if (b->type == TV_UNDEF) return mlxr_tpl_undefined_error(c, b), -1;
  int r;
  if (!tv_cmp(a, b, &r)) {
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: '%s' not supported between instances of '%s' and '%s'", name,
              tv_type_name(a), tv_type_name(b));
    return -1;
  }
  if (r == 2) return 0;
  switch (op) {
  case 2: return r < 0;
  case 3: return r <= 0;
  case 4: return r > 0;
  default: return r >= 0;
  }
}

static bool is_lower_or_upper(const tv *v, bool upper, tctx *c) {
  tv *s = mlxr_tpl_to_str(c, v);
  if (!s) return false;
  tv *m = mlxr_tpl_case(c, s->u.str.s, s->u.str.len, upper ? 'u' : 'l');
  bool r = m && tv_eq(m, s);
  tv_unref(m);
  tv_unref(s);
  return r;
}

int mlxr_tpl_test(tctx *c, const char *name, tv *in, tv **args, size_t n) {
  tv_type t = in->type;
  if (!strcmp(name, "defined")) return need_args(c, name, n, 0) ? -1 : t != TV_UNDEF;
  if (!strcmp(name, "undefined")) return need_args(c, name, n, 0) ? -1 : t == TV_UNDEF;
  if (!strcmp(name, "none")) return need_args(c, name, n, 0) ? -1 : t == TV_NONE;
  if (!strcmp(name, "boolean")) return need_args(c, name, n, 0) ? -1 : t == TV_BOOL;
  if (!strcmp(name, "true")) return need_args(c, name, n, 0) ? -1 : t == TV_BOOL && in->u.b;
  if (!strcmp(name, "false")) return need_args(c, name, n, 0) ? -1 : t == TV_BOOL && !in->u.b;
  if (!strcmp(name, "integer")) return need_args(c, name, n, 0) ? -1 : t == TV_INT;
  if (!strcmp(name, "float")) return need_args(c, name, n, 0) ? -1 : t == TV_FLOAT;
  if (!strcmp(name, "number")) return need_args(c, name, n, 0) ? -1 : tv_is_number(in);
  if (!strcmp(name, "string")) return need_args(c, name, n, 0) ? -1 : t == TV_STR;
  if (!strcmp(name, "mapping")) return need_args(c, name, n, 0) ? -1 : t == TV_DICT;
  if (!strcmp(name, "iterable"))
    return need_args(c, name, n, 0) ? -1 : (t == TV_UNDEF || t == TV_STR || t == TV_LIST || t == TV_DICT);
  if (!strcmp(name, "sequence"))
    return need_args(c, name, n, 0) ? -1 : (t == TV_UNDEF || t == TV_STR || t == TV_LIST || t == TV_DICT);
  if (!strcmp(name, "callable")) return need_args(c, name, n, 0) ? -1 : (t == TV_MACRO || t == TV_FUNC);
  if (!strcmp(name, "escaped")) return need_args(c, name, n, 0) ? -1 : 0;
  if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
    if (need_args(c, name, n, 0)) return -1;
    bool r = is_lower_or_upper(in, name[0] == 'u', c);
    return c->failed ? -1 : r;
  }
  if (!strcmp(name, "even") || !strcmp(name, "odd") || !strcmp(name, "divisibleby")) {
    if (need_args(c, name, n, name[0] == 'd' ? 1 : 0)) return -1;
    if (t == TV_UNDEF) return mlxr_tpl_undefined_error(c, in), -1;
    tv *d = name[0] == 'd' ? args[0] : NULL;
    if (!tv_is_number(in) || (d && !tv_is_number(d))) {
      tctx_fail(c, MLXR_ERR_INVALID, "TypeError: unsupported operand type(s) for %%: '%s' and 'int'", tv_type_name(in));
      return -1;
    }
    if (in->type == TV_FLOAT || (d && d->type == TV_FLOAT)) {
      double x = tv_as_double(in), y = d ? tv_as_double(d) : 2.0;
      if (y == 0) return tctx_fail(c, MLXR_ERR_INVALID, "ZeroDivisionError: float modulo"), -1;
      double r = x - y * __builtin_floor(x / y);
      return name[0] == 'o' ? r == 1.0 : r == 0.0;
    }
    int64_t x = in->type == TV_BOOL ? in->u.b : in->u.i;
    int64_t y = d ? (d->type == TV_BOOL ? d->u.b : d->u.i) : 2;
    if (y == 0) return tctx_fail(c, MLXR_ERR_INVALID, "ZeroDivisionError: integer division or modulo by zero"), -1;
    int64_t r = y == -1 ? 0 : x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return name[0] == 'o' ? r == 1 : r == 0;
  }
  static const struct {
    const char *name;
    int op;
  } cmps[] = {{"eq", 0}, {"equalto", 0}, {"==", 0}, {"ne", 1}, {"!=", 1}, {"lt", 2}, {"lessthan", 2}, {"<", 2},
              {"le", 3}, {"<=", 3}, {"gt", 4}, {"greaterthan", 4}, {">", 4}, {"ge", 5}, {">=", 5}};
  for (size_t i = 0; i < sizeof(cmps) / sizeof(cmps[0]); i++)
    if (!strcmp(name, cmps[i].name)) return need_args(c, name, n, 1) ? -1 : cmp_test(c, name, in, args[0], cmps[i].op);
  if (!strcmp(name, "sameas")) {
    if (need_args(c, name, n, 1)) return -1;
    tv *o = args[0];
    if (in == o) return 1;
    if (in->type != o->type) return 0;
    /* identity of singletons and small values, as CPython would see them */
    if (t == TV_NONE || t == TV_UNDEF) return t == TV_NONE;
    if (t == TV_BOOL) return in->u.b == o->u.b;
    return 0;
  }
  if (!strcmp(name, "in")) {
    if (need_args(c, name, n, 1)) return -1;
    tv *seq = args[0];
    if (seq->type == TV_STR) {
      if (in->type != TV_STR) {
        tctx_fail(c, MLXR_ERR_INVALID, "TypeError: 'in <string>' requires string as left operand, not %s", tv_type_name(in));
        return -1;
      }
      return memmem(seq->u.str.s, seq->u.str.len, in->u.str.s, in->u.str.len) != NULL;
    }
    if (seq->type == TV_LIST) {
      for (size_t i = 0; i < seq->u.list.n; i++)
        if (tv_eq(in, seq->u.list.items[i])) return 1;
      return 0;
    }
    if (seq->type == TV_DICT || seq->type == TV_NS) return tv_dict_get(seq, in) != NULL;
    if (seq->type == TV_UNDEF) return 0;
    tctx_fail(c, MLXR_ERR_INVALID, "TypeError: argument of type '%s' is not iterable", tv_type_name(seq));
    return -1;
  }
  if (!strcmp(name, "filter") || !strcmp(name, "test")) {
    if (need_args(c, name, n, 0)) return -1;
    tctx_fail(c, MLXR_ERR_UNSUPPORTED, "test '%s' is not supported", name);
    return -1;
  }
  tctx_fail(c, MLXR_ERR_INVALID, "TemplateAssertionError: No test named '%s'.", name);
  return -1;
}
