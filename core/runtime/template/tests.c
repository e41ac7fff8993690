/*
 * tests.c: Jinja2's builtin tests (`x is defined`, `x is string`, `n is divisibleby 3`, ...), with
 * the same answers as jinja2/tests.py gives for the values a template can hold. Note Jinja's
 * quirks: booleans are numbers but not integers; Undefined is iterable, a sequence and callable.
 * Tests that Jinja writes with Python operators (even, odd, divisibleby, the comparisons, in) go
 * through eval.c's operators, so `'' is even` raises what `'' % 2` raises.
 */
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/template/template_impl.h"

static int need_args(tctx *c, const char *name, size_t n, size_t want) {
  if (n == want) return 0;
  tctx_fail(c, MLXR_ERR_INVALID, "TypeError: test '%s' takes %zu argument(s), %zu given", name, want, n);
  return -1;
}

/* `value % d == want` with Python's operators: strings format (and so raise "not all arguments
 * converted"), Undefined raises, ints and floats take Python's modulo. */
static int mod_test(tctx *c, tv *in, tv *d, int64_t want) {
  tv *two = d ? NULL : tv_int(2);
  if (!d && !two) return tctx_fail(c, MLXR_ERR_NOMEM, "out of memory"), -1;
  tv *r = mlxr_tpl_binop(c, OP_MOD, in, d ? d : two);
  tv_unref(two);
  if (!r) return -1;
  tv *w = tv_int(want);
  int eq = w ? tv_eq(r, w) : -1;
  tv_unref(w);
  tv_unref(r);
  if (eq < 0) tctx_fail(c, MLXR_ERR_NOMEM, "out of memory");
  return eq;
}

/* Names of the tests below, for the `filter` and `test` tests (is 'x' a test?). */
static const char *const TEST_NAMES[] = {
    "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string",
    "mapping", "iterable", "sequence", "callable", "escaped", "lower", "upper", "even", "odd",
    "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt",
    "greaterthan", ">", "ge", ">=", "sameas", "in", "filter", "test", NULL};

bool mlxr_tpl_test_exists(const char *name) {
  for (const char *const *t = TEST_NAMES; *t; t++)
    if (!strcmp(*t, name)) return true;
  return false;
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
    return need_args(c, name, n, 0) ? -1 : (t == TV_UNDEF || t == TV_STR || t == TV_LIST || t == TV_DICT || t == TV_LOOP);
  if (!strcmp(name, "sequence"))
    return need_args(c, name, n, 0) ? -1 : (t == TV_UNDEF || t == TV_STR || t == TV_LIST || t == TV_DICT);
  /* Undefined and loop are callable objects in Jinja (calling them raises or recurses) */
  if (!strcmp(name, "callable"))
    return need_args(c, name, n, 0) ? -1 : (t == TV_MACRO || t == TV_FUNC || t == TV_UNDEF || t == TV_LOOP);
  if (!strcmp(name, "escaped")) return need_args(c, name, n, 0) ? -1 : 0;
  if (!strcmp(name, "lower") || !strcmp(name, "upper")) { /* str(value).islower() */
    if (need_args(c, name, n, 0)) return -1;
    tv *str = mlxr_tpl_to_str(c, in);
    if (!str) return -1;
    bool r = mlxr_tpl_str_iscase(str, name[0] == 'u');
    tv_unref(str);
    return r;
  }
  if (!strcmp(name, "even") || !strcmp(name, "odd")) return need_args(c, name, n, 0) ? -1 : mod_test(c, in, NULL, name[0] == 'o');
  if (!strcmp(name, "divisibleby")) return need_args(c, name, n, 1) ? -1 : mod_test(c, in, args[0], 0);
  static const struct {
    const char *name;
    int op;
  } cmps[] = {{"eq", CMP_EQ}, {"equalto", CMP_EQ}, {"==", CMP_EQ}, {"ne", CMP_NE}, {"!=", CMP_NE},
              {"lt", CMP_LT}, {"lessthan", CMP_LT}, {"<", CMP_LT}, {"le", CMP_LE}, {"<=", CMP_LE},
              {"gt", CMP_GT}, {"greaterthan", CMP_GT}, {">", CMP_GT}, {"ge", CMP_GE}, {">=", CMP_GE},
              {"in", CMP_IN}};
  for (size_t i = 0; i < sizeof(cmps) / sizeof(cmps[0]); i++)
    if (!strcmp(name, cmps[i].name))
      return need_args(c, name, n, 1) ? -1 : mlxr_tpl_compare(c, cmps[i].op, in, args[0]);
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
  if (!strcmp(name, "filter") || !strcmp(name, "test")) { /* value in env.filters / env.tests */
    if (need_args(c, name, n, 0) || !mlxr_tpl_check_hashable(c, in)) return -1;
    if (t != TV_STR) return 0;
    return name[0] == 'f' ? mlxr_tpl_filter_exists(in->u.str.s) : mlxr_tpl_test_exists(in->u.str.s);
  }
  tctx_fail(c, MLXR_ERR_INVALID, "TemplateAssertionError: No test named '%s'.", name);
  return -1;
}
