/*
 * parser.c: tokens -> AST, a recursive-descent transcription of Jinja2 3.1's parser
 * (jinja2/parser.py), with the same precedence and quirks:
 *
 *   condexpr  or ('if' or ('else' condexpr)?)*
 *   or/and/not, compare (== != < <= > >= in, not in; chained), + -, ~ (concat), * / // %,
 *   ** (left-associative, as in Jinja), unary - +, primary + postfix (.name, [subscript/slice],
 *   (call)), then filters (| name(args)) and tests (is [not] name arg) applied to the unary.
 *
 * Statements: for (targets, `if` filter, recursive, else), if/elif/else, set (expression,
 * namespace attribute, block form with filters), macro, call (with caller parameters), filter,
 * with, block (rendered in place), break/continue, generation (HF's extension: plain content).
 * Nesting is bounded (MAX_NEST) so a hostile template cannot overflow the parser's stack.
 * All nodes live in the template's arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/template/template_impl.h"

#define MAX_NEST 200

typedef struct parser {
  const ttok *t;
  size_t n, pos;
  tarena *arena;
  int depth;
  int uses; /* USES_* seen in the current macro body */
  int status;
  char *err;
  size_t err_len;
} parser;

typedef struct nodevec {
  tnode **v;
  size_t n, cap;
  const char **names;
} nodevec;

static const ttok *cur(parser *p) { return &p->t[p->pos]; }
static const ttok *peek(parser *p, size_t k) {
  return &p->t[p->pos + k < p->n ? p->pos + k : p->n - 1];
}
static void adv(parser *p) {
  if (p->pos + 1 < p->n) p->pos++;
}

static void *fail(parser *p, int status, const char *fmt, const char *a) {
  if (p->status == MLXR_OK) {
    char m[300];
    snprintf(m, sizeof(m), fmt, a ? a : "");
    p->status = mlxr_errf(p->err, p->err_len, status, "template syntax error, line %d: %s", cur(p)->line, m);
  }
  return NULL;
}

static bool is_op(parser *p, const char *op) {
  return cur(p)->type == T_OP && strcmp(cur(p)->text, op) == 0;
}
static bool is_name(parser *p, const char *name) {
  return cur(p)->type == T_NAME && strcmp(cur(p)->text, name) == 0;
}
static bool skip_op(parser *p, const char *op) {
  if (!is_op(p, op)) return false;
  adv(p);
  return true;
}
static bool skip_name(parser *p, const char *name) {
  if (!is_name(p, name)) return false;
  adv(p);
  return true;
}

static const char *tok_desc(const ttok *t) {
  switch (t->type) {
  case T_EOF: return "end of template";
  case T_BLOCK_END: return "end of statement block";
  case T_VAR_END: return "end of print statement";
  case T_BLOCK_BEGIN: return "begin of statement block";
  case T_VAR_BEGIN: return "begin of print statement";
  case T_STRING: return "string";
  case T_INT: return "integer";
  case T_FLOAT: return "float";
  default: return t->text ? t->text : "token";
  }
}

static bool expect_op(parser *p, const char *op) {
  if (skip_op(p, op)) return true;
  char m[128];
  snprintf(m, sizeof(m), "expected '%s', got '%%s'", op);
  fail(p, MLXR_ERR_FORMAT, m, tok_desc(cur(p)));
  return false;
}

static bool expect_type(parser *p, ttok_type type, const char *what) {
  if (cur(p)->type == type) {
    adv(p);
    return true;
  }
  char m[128];
  snprintf(m, sizeof(m), "expected %s, got '%%s'", what);
  fail(p, MLXR_ERR_FORMAT, m, tok_desc(cur(p)));
  return false;
}

static tnode *mk(parser *p, tnode_kind kind) {
  tnode *n = tarena_alloc(p->arena, sizeof(tnode));
  if (!n) return fail(p, MLXR_ERR_NOMEM, "out of memory%s", NULL);
  n->kind = kind;
  n->line = cur(p)->line;
  return n;
}

static bool vec_push(parser *p, nodevec *v, tnode *n, const char *name) {
  if (v->n == v->cap) {
    size_t nc = v->cap ? v->cap * 2 : 4;
    tnode **a = tarena_alloc(p->arena, nc * sizeof(tnode *));
    const char **b = tarena_alloc(p->arena, nc * sizeof(char *));
    if (!a || !b) {
      fail(p, MLXR_ERR_NOMEM, "out of memory%s", NULL);
      return false;
    }
    if (v->n) {
      memcpy(a, v->v, v->n * sizeof(tnode *));
      memcpy(b, v->names, v->n * sizeof(char *));
    }
    v->v = a;
    v->names = b;
    v->cap = nc;
  }
  v->v[v->n] = n;
  v->names[v->n++] = name;
  return true;
}

static tv *mkconst(parser *p, tv *v) {
  if (!v) return fail(p, MLXR_ERR_NOMEM, "out of memory%s", NULL);
  tarena *a = p->arena;
  if (a->n_consts == a->cap_consts) {
    size_t nc = a->cap_consts ? a->cap_consts * 2 : 32;
    tv **c = realloc(a->consts, nc * sizeof(tv *));
    if (!c) {
      tv_unref(v);
      return fail(p, MLXR_ERR_NOMEM, "out of memory%s", NULL);
    }
    a->consts = c;
    a->cap_consts = nc;
  }
  a->consts[a->n_consts++] = v;
  v->immortal = true;
  return v;
}

static tnode *const_node(parser *p, tv *v) {
  tnode *n = mk(p, N_CONST);
  if (!n) {
    tv_unref(v);
    return NULL;
  }
  n->value = mkconst(p, v);
  return n->value ? n : NULL;
}

static tnode *parse_expression(parser *p, bool with_condexpr);
static tnode *parse_unary(parser *p, bool with_filter);
static tnode *parse_primary(parser *p);
static tnode *parse_postfix(parser *p, tnode *node);
static tnode *parse_filter(parser *p, tnode *node, bool start_inline);
static tnode *subparse(parser *p, const char *const *end);

static bool tuple_end(parser *p, const char *const *extra) {
  const ttok *t = cur(p);
  if (t->type == T_VAR_END || t->type == T_BLOCK_END || (t->type == T_OP && strcmp(t->text, ")") == 0))
    return true;
  for (; extra && *extra; extra++)
    if (is_name(p, *extra)) return true;
  return false;
}

/* mode: 0 full expression, 1 no condexpr, 2 simplified (primary) */
static tnode *parse_tuple(parser *p, int mode, const char *const *extra, bool explicit_parens) {
  nodevec v = {0};
  bool is_tuple = false;
  for (;;) {
    if (v.n && !expect_op(p, ",")) return NULL;
    if (tuple_end(p, extra)) break;
    tnode *e = mode == 2 ? parse_primary(p) : parse_expression(p, mode == 0);
    if (!e || !vec_push(p, &v, e, NULL)) return NULL;
    if (is_op(p, ","))
      is_tuple = true;
    else
      break;
  }
  if (!is_tuple) {
    if (v.n) return v.v[0];
    if (!explicit_parens) return fail(p, MLXR_ERR_FORMAT, "expected an expression, got '%s'", tok_desc(cur(p)));
  }
  tnode *n = mk(p, N_TUPLE);
  if (!n) return NULL;
  n->list = v.v;
  n->n = v.n;
  return n;
}

static bool parse_call_args(parser *p, tnode *call) {
  nodevec args = {0}, kw = {0};
  if (!expect_op(p, "(")) return false;
  bool require_comma = false;
  while (!is_op(p, ")")) {
    if (p->status) return false;
    if (require_comma) {
      if (!expect_op(p, ",")) return false;
      if (is_op(p, ")")) break;
    }
    if (is_op(p, "*") || is_op(p, "**")) {
      bool star2 = is_op(p, "**");
      if (call->d || (!star2 && call->e)) return fail(p, MLXR_ERR_FORMAT, "invalid syntax for function call expression%s", NULL), false;
      adv(p);
      tnode *e = parse_expression(p, true);
      if (!e) return false;
      if (star2) call->d = e; else call->e = e;
    } else if (cur(p)->type == T_NAME && peek(p, 1)->type == T_OP && strcmp(peek(p, 1)->text, "=") == 0) {
      if (call->d) return fail(p, MLXR_ERR_FORMAT, "invalid syntax for function call expression%s", NULL), false;
      const char *key = cur(p)->text;
      adv(p);
      adv(p);
      tnode *e = parse_expression(p, true);
      if (!e || !vec_push(p, &kw, e, key)) return false;
    } else {
      if (call->e || call->d || kw.n) return fail(p, MLXR_ERR_FORMAT, "invalid syntax for function call expression%s", NULL), false;
      tnode *e = parse_expression(p, true);
      if (!e || !vec_push(p, &args, e, NULL)) return false;
    }
    require_comma = true;
  }
  if (!expect_op(p, ")")) return false;
  call->list = args.v;
  call->n = args.n;
  call->list2 = kw.v;
  call->names = kw.names;
  call->n2 = kw.n;
  return true;
}

static tnode *parse_primary(parser *p) {
  const ttok *t = cur(p);
  if (++p->depth > MAX_NEST) return fail(p, MLXR_ERR_RANGE, "expression nested too deeply%s", NULL);
  tnode *n = NULL;
  if (t->type == T_NAME) {
    const char *s = t->text;
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "false") || !strcmp(s, "False")) {
      n = const_node(p, tv_bool(s[0] == 't' || s[0] == 'T'));
    } else if (!strcmp(s, "none") || !strcmp(s, "None")) {
      n = const_node(p, tv_none());
    } else {
      n = mk(p, N_NAME);
      if (n) n->name = s;
      if (!strcmp(s, "varargs")) p->uses |= USES_VARARGS;
      if (!strcmp(s, "kwargs")) p->uses |= USES_KWARGS;
      if (!strcmp(s, "caller")) p->uses |= USES_CALLER;
    }
    adv(p);
  } else if (t->type == T_STRING) {
    tbuf b;
    tbuf_init(&b, (size_t)-1 / 2);
    while (cur(p)->type == T_STRING) {
      tbuf_add(&b, cur(p)->text, cur(p)->len);
      adv(p);
    }
    size_t len;
    char *s = tbuf_take(&b, &len);
    n = const_node(p, tv_str_take(s, len));
  } else if (t->type == T_INT) {
    n = const_node(p, tv_int(t->i));
    adv(p);
  } else if (t->type == T_FLOAT) {
    n = const_node(p, tv_float(t->f));
    adv(p);
  } else if (is_op(p, "(")) {
    adv(p);
    n = parse_tuple(p, 0, NULL, true);
    if (n && !expect_op(p, ")")) n = NULL;
  } else if (is_op(p, "[")) {
    adv(p);
    nodevec v = {0};
    while (!is_op(p, "]")) {
      if (v.n && !expect_op(p, ",")) return NULL;
      if (is_op(p, "]")) break;
      tnode *e = parse_expression(p, true);
      if (!e || !vec_push(p, &v, e, NULL)) return NULL;
    }
    if (!expect_op(p, "]")) return NULL;
    n = mk(p, N_LIST);
    if (n) {
      n->list = v.v;
      n->n = v.n;
    }
  } else if (is_op(p, "{")) {
    adv(p);
    nodevec k = {0}, v = {0};
    while (!is_op(p, "}")) {
      if (k.n && !expect_op(p, ",")) return NULL;
      if (is_op(p, "}")) break;
      tnode *key = parse_expression(p, true);
      if (!key || !expect_op(p, ":")) return NULL;
      tnode *val = parse_expression(p, true);
      if (!val || !vec_push(p, &k, key, NULL) || !vec_push(p, &v, val, NULL)) return NULL;
    }
    if (!expect_op(p, "}")) return NULL;
    n = mk(p, N_DICT);
    if (n) {
      n->list = k.v;
      n->list2 = v.v;
      n->n = k.n;
    }
  } else {
    n = fail(p, MLXR_ERR_FORMAT, "unexpected '%s'", tok_desc(t));
  }
  p->depth--;
  return n;
}

static tnode *parse_subscribed(parser *p) {
  tnode *args[3] = {NULL, NULL, NULL};
  if (is_op(p, ":")) {
    adv(p);
  } else {
    tnode *e = parse_expression(p, true);
    if (!e || !is_op(p, ":")) return e;
    adv(p);
    args[0] = e;
  }
  if (is_op(p, ":")) {
  } else if (!is_op(p, "]") && !is_op(p, ",")) {
    if (!(args[1] = parse_expression(p, true))) return NULL;
  }
  if (is_op(p, ":")) {
    adv(p);
    if (!is_op(p, "]") && !is_op(p, ",") && !(args[2] = parse_expression(p, true))) return NULL;
  }
  tnode *n = mk(p, N_SLICE);
  if (n) {
    n->a = args[0];
    n->b = args[1];
    n->c = args[2];
  }
  return n;
}

static tnode *parse_postfix(parser *p, tnode *node) {
  while (node && !p->status) {
    if (is_op(p, ".")) {
      adv(p);
      tnode *n;
      if (cur(p)->type == T_NAME) {
        n = mk(p, N_GETATTR);
        if (!n) return NULL;
        n->name = cur(p)->text;
      } else if (cur(p)->type == T_INT) {
        n = mk(p, N_GETITEM);
        if (!n) return NULL;
        n->b = const_node(p, tv_int(cur(p)->i));
        if (!n->b) return NULL;
      } else {
        return fail(p, MLXR_ERR_FORMAT, "expected name or number after '.', got '%s'", tok_desc(cur(p)));
      }
      adv(p);
      n->a = node;
      node = n;
    } else if (is_op(p, "[")) {
      adv(p);
      nodevec v = {0};
      while (!is_op(p, "]")) {
        if (v.n && !expect_op(p, ",")) return NULL;
        tnode *e = parse_subscribed(p);
        if (!e || !vec_push(p, &v, e, NULL)) return NULL;
      }
      if (!expect_op(p, "]")) return NULL;
      if (v.n == 0) return fail(p, MLXR_ERR_FORMAT, "expected subscript expression%s", NULL);
      tnode *n = mk(p, N_GETITEM);
      if (!n) return NULL;
      n->a = node;
      if (v.n == 1) {
        n->b = v.v[0];
      } else {
        n->b = mk(p, N_TUPLE);
        if (!n->b) return NULL;
        n->b->list = v.v;
        n->b->n = v.n;
      }
      node = n;
    } else if (is_op(p, "(")) {
      tnode *n = mk(p, N_CALL);
      if (!n) return NULL;
      n->a = node;
      if (!parse_call_args(p, n)) return NULL;
      node = n;
    } else {
      break;
    }
  }
  return p->status ? NULL : node;
}

static const char *dotted_name(parser *p) {
  if (cur(p)->type != T_NAME) return fail(p, MLXR_ERR_FORMAT, "expected name, got '%s'", tok_desc(cur(p)));
  const char *name = cur(p)->text;
  adv(p);
  while (is_op(p, ".")) {
    adv(p);
    if (cur(p)->type != T_NAME) return fail(p, MLXR_ERR_FORMAT, "expected name, got '%s'", tok_desc(cur(p)));
    size_t a = strlen(name), b = strlen(cur(p)->text);
    char *s = tarena_alloc(p->arena, a + b + 2);
    if (!s) return fail(p, MLXR_ERR_NOMEM, "out of memory%s", NULL);
    memcpy(s, name, a);
    s[a] = '.';
    memcpy(s + a + 1, cur(p)->text, b + 1);
    name = s;
    adv(p);
  }
  return name;
}

static tnode *parse_filter(parser *p, tnode *node, bool start_inline) {
  while (is_op(p, "|") || start_inline) {
    if (!start_inline) adv(p);
    start_inline = false;
    tnode *f = mk(p, N_FILTER);
    if (!f) return NULL;
    f->a = node;
    if (!(f->name = dotted_name(p))) return NULL;
    if (is_op(p, "(") && !parse_call_args(p, f)) return NULL;
    node = f;
  }
  return node;
}

static tnode *parse_test(parser *p, tnode *node) {
  adv(p); /* 'is' */
  bool negated = skip_name(p, "not");
  tnode *t = mk(p, N_TEST);
  if (!t) return NULL;
  t->a = node;
  if (!(t->name = dotted_name(p))) return NULL;
  const ttok *c = cur(p);
  if (is_op(p, "(")) {
    if (!parse_call_args(p, t)) return NULL;
  } else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT || c->type == T_FLOAT ||
              is_op(p, "[") || is_op(p, "{")) &&
             !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
    if (is_name(p, "is")) return fail(p, MLXR_ERR_FORMAT, "you cannot chain multiple tests with is%s", NULL);
    tnode *arg = parse_postfix(p, parse_primary(p));
    if (!arg) return NULL;
    t->list = tarena_alloc(p->arena, sizeof(tnode *));
    if (!t->list) return fail(p, MLXR_ERR_NOMEM, "out of memory%s", NULL);
    t->list[0] = arg;
    t->n = 1;
  }
  if (!negated) return t;
  tnode *n = mk(p, N_NOT);
  if (n) n->a = t;
  return n;
}

static tnode *parse_unary(parser *p, bool with_filter) {
  if (++p->depth > MAX_NEST) return fail(p, MLXR_ERR_RANGE, "expression nested too deeply%s", NULL);
  tnode *node;
  if (is_op(p, "-") || is_op(p, "+")) {
    node = mk(p, is_op(p, "-") ? N_NEG : N_POS);
    adv(p);
    if (node && !(node->a = parse_unary(p, false))) node = NULL;
  } else {
    node = parse_primary(p);
  }
  node = parse_postfix(p, node);
  while (with_filter && node) {
    if (is_op(p, "|"))
      node = parse_filter(p, node, false);
    else if (is_name(p, "is"))
      node = parse_test(p, node);
    else if (is_op(p, "(")) {
      tnode *n = mk(p, N_CALL);
      if (!n) return NULL;
      n->a = node;
      node = parse_call_args(p, n) ? n : NULL;
    } else
      break;
  }
  p->depth--;
  return node;
}

static tnode *binop(parser *p, tnode_kind kind, int op, tnode *l, tnode *r) {
  if (!l || !r) return NULL;
  tnode *n = mk(p, kind);
  if (!n) return NULL;
  n->op = op;
  n->a = l;
  n->b = r;
  return n;
}

static tnode *parse_pow(parser *p) {
  tnode *l = parse_unary(p, true);
  while (l && is_op(p, "**")) {
    adv(p);
    l = binop(p, N_BINOP, OP_POW, l, parse_unary(p, true));
  }
  return l;
}

static tnode *parse_math2(parser *p) {
  tnode *l = parse_pow(p);
  for (;;) {
    int op = is_op(p, "*") ? OP_MUL : is_op(p, "/") ? OP_DIV : is_op(p, "//") ? OP_FLOORDIV : is_op(p, "%") ? OP_MOD : 0;
    if (!op || !l) return l;
    adv(p);
    l = binop(p, N_BINOP, op, l, parse_pow(p));
  }
}

static tnode *parse_concat(parser *p) {
  tnode *first = parse_math2(p);
  if (!first || !is_op(p, "~")) return first;
  nodevec v = {0};
  if (!vec_push(p, &v, first, NULL)) return NULL;
  while (skip_op(p, "~")) {
    tnode *e = parse_math2(p);
    if (!e || !vec_push(p, &v, e, NULL)) return NULL;
  }
  tnode *n = mk(p, N_CONCAT);
  if (n) {
    n->list = v.v;
    n->n = v.n;
  }
  return n;
}

static tnode *parse_math1(parser *p) {
  tnode *l = parse_concat(p);
  for (;;) {
    int op = is_op(p, "+") ? OP_ADD : is_op(p, "-") ? OP_SUB : 0;
    if (!op || !l) return l;
    adv(p);
    l = binop(p, N_BINOP, op, l, parse_concat(p));
  }
}

static tnode *parse_compare(parser *p) {
  tnode *first = parse_math1(p);
  if (!first) return NULL;
  nodevec v = {0};
  int ops[64];
  for (;;) {
    int op = 0;
    const char *o = cur(p)->type == T_OP ? cur(p)->text : "";
    if (!strcmp(o, "==")) op = CMP_EQ;
    else if (!strcmp(o, "!=")) op = CMP_NE;
    else if (!strcmp(o, "<")) op = CMP_LT;
    else if (!strcmp(o, "<=")) op = CMP_LE;
    else if (!strcmp(o, ">")) op = CMP_GT;
    else if (!strcmp(o, ">=")) op = CMP_GE;
    else if (is_name(p, "in")) op = CMP_IN;
    else if (is_name(p, "not") && peek(p, 1)->type == T_NAME && !strcmp(peek(p, 1)->text, "in")) {
      op = CMP_NOTIN;
      adv(p);
    }
    if (!op) break;
    adv(p);
    if (v.n >= 64) return fail(p, MLXR_ERR_RANGE, "comparison chain too long%s", NULL);
    ops[v.n] = op;
    tnode *e = parse_math1(p);
    if (!e || !vec_push(p, &v, e, NULL)) return NULL;
  }
  if (!v.n) return first;
  tnode *n = mk(p, N_COMPARE);
  if (!n) return NULL;
  n->a = first;
  n->list = v.v;
  n->n = v.n;
  n->ops = tarena_alloc(p->arena, v.n * sizeof(int));
  if (!n->ops) return fail(p, MLXR_ERR_NOMEM, "out of memory%s", NULL);
  memcpy(n->ops, ops, v.n * sizeof(int));
  return n;
}

static tnode *parse_not(parser *p) {
  if (is_name(p, "not")) {
    if (++p->depth > MAX_NEST) return fail(p, MLXR_ERR_RANGE, "expression nested too deeply%s", NULL);
    adv(p);
    tnode *n = mk(p, N_NOT);
    if (n && !(n->a = parse_not(p))) n = NULL;
    p->depth--;
    return n;
  }
  return parse_compare(p);
}

static tnode *parse_and(parser *p) {
  tnode *l = parse_not(p);
  while (l && skip_name(p, "and")) l = binop(p, N_AND, 0, l, parse_not(p));
  return l;
}

static tnode *parse_or(parser *p) {
  tnode *l = parse_and(p);
  while (l && skip_name(p, "or")) l = binop(p, N_OR, 0, l, parse_and(p));
  return l;
}

static tnode *parse_condexpr(parser *p) {
  tnode *e1 = parse_or(p);
  while (e1 && skip_name(p, "if")) {
    tnode *n = mk(p, N_COND);
    if (!n) return NULL;
    n->b = e1;
    if (!(n->a = parse_or(p))) return NULL;
    if (skip_name(p, "else") && !(n->c = parse_condexpr(p))) return NULL;
    e1 = n;
  }
  return e1;
}

static tnode *parse_expression(parser *p, bool with_condexpr) {
  if (++p->depth > MAX_NEST) return fail(p, MLXR_ERR_RANGE, "expression nested too deeply%s", NULL);
  tnode *n = with_condexpr ? parse_condexpr(p) : parse_or(p);
  p->depth--;
  return n;
}

/* ---- statements ---- */

static bool check_target(parser *p, tnode *t) {
  if (t->kind == N_NAME) return true;
  if (t->kind == N_TUPLE) {
    for (size_t i = 0; i < t->n; i++)
      if (!check_target(p, t->list[i])) return false;
    return true;
  }
  fail(p, MLXR_ERR_FORMAT, "can't assign to this expression%s", NULL);
  return false;
}

static tnode *parse_statements(parser *p, const char *const *end, bool drop_needle) {
  skip_op(p, ":");
  if (!expect_type(p, T_BLOCK_END, "end of statement block")) return NULL;
  tnode *body = subparse(p, end);
  if (!body) return NULL;
  if (cur(p)->type == T_EOF) return fail(p, MLXR_ERR_FORMAT, "unexpected end of template, expected '%s'", end[0]);
  if (drop_needle) adv(p);
  return body;
}

static bool parse_signature(parser *p, tnode *n) {
  nodevec names = {0};
  bool have_default = false;
  if (!expect_op(p, "(")) return false;
  while (!is_op(p, ")")) {
    if (names.n && !expect_op(p, ",")) return false;
    if (cur(p)->type != T_NAME) return fail(p, MLXR_ERR_FORMAT, "expected parameter name, got '%s'", tok_desc(cur(p))), false;
    const char *name = cur(p)->text;
    adv(p);
    tnode *def = NULL;
    if (skip_op(p, "=")) {
      if (!(def = parse_expression(p, true))) return false;
      have_default = true;
    } else if (have_default) {
      return fail(p, MLXR_ERR_FORMAT, "non-default argument follows default argument%s", NULL), false;
    }
    if (!vec_push(p, &names, def, name)) return false;
  }
  adv(p);
  n->names = names.names;
  n->list2 = names.v;
  n->n2 = names.n;
  return true;
}

static tnode *parse_for(parser *p) {
  static const char *const in_end[] = {"in", NULL};
  static const char *const rec_end[] = {"recursive", NULL};
  static const char *const body_end[] = {"endfor", "else", NULL};
  static const char *const else_end[] = {"endfor", NULL};
  tnode *n = mk(p, N_FOR);
  if (!n) return NULL;
  if (!(n->a = parse_tuple(p, 2, in_end, false)) || !check_target(p, n->a)) return NULL;
  if (!skip_name(p, "in")) return fail(p, MLXR_ERR_FORMAT, "expected 'in', got '%s'", tok_desc(cur(p)));
  if (!(n->b = parse_tuple(p, 1, rec_end, false))) return NULL;
  if (skip_name(p, "if") && !(n->e = parse_expression(p, true))) return NULL;
  n->flag = skip_name(p, "recursive");
  if (!(n->c = parse_statements(p, body_end, false))) return NULL;
  bool is_else = is_name(p, "else");
  adv(p);
  if (is_else && !(n->d = parse_statements(p, else_end, true))) return NULL;
  return n;
}

static tnode *parse_if(parser *p) {
  static const char *const end[] = {"elif", "else", "endif", NULL};
  static const char *const else_end[] = {"endif", NULL};
  tnode *n = mk(p, N_IF), *top = n;
  if (!n) return NULL;
  for (;;) {
    if (!(n->a = parse_tuple(p, 1, NULL, false))) return NULL;
    if (!(n->b = parse_statements(p, end, false))) return NULL;
    if (is_name(p, "elif")) {
      adv(p);
      tnode *e = mk(p, N_IF);
      if (!e) return NULL;
      n->c = e;
      n = e;
      continue;
    }
    if (is_name(p, "else")) {
      adv(p);
      if (!(n->c = parse_statements(p, else_end, true))) return NULL;
    } else {
      adv(p);
    }
    return top;
  }
}

static tnode *parse_set(parser *p) {
  static const char *const end[] = {"endset", NULL};
  tnode *target;
  if (cur(p)->type == T_NAME && peek(p, 1)->type == T_OP && !strcmp(peek(p, 1)->text, ".")) {
    target = mk(p, N_GETATTR);
    if (!target) return NULL;
    target->a = mk(p, N_NAME);
    if (!target->a) return NULL;
    target->a->name = cur(p)->text;
    adv(p);
    adv(p);
    if (cur(p)->type != T_NAME) return fail(p, MLXR_ERR_FORMAT, "expected name, got '%s'", tok_desc(cur(p)));
    target->name = cur(p)->text;
    adv(p);
  } else {
    if (!(target = parse_tuple(p, 2, NULL, false)) || !check_target(p, target)) return NULL;
  }
  if (skip_op(p, "=")) {
    tnode *n = mk(p, N_SET);
    if (!n) return NULL;
    n->a = target;
    n->b = parse_tuple(p, 0, NULL, false);
    return n->b ? n : NULL;
  }
  tnode *n = mk(p, N_SETBLOCK);
  if (!n) return NULL;
  n->a = target;
  if (is_op(p, "|") && !(n->c = parse_filter(p, NULL, false))) return NULL;
  n->b = parse_statements(p, end, true);
  return n->b ? n : NULL;
}

static tnode *parse_macro_like(parser *p, bool is_call) {
  static const char *const mend[] = {"endmacro", NULL};
  static const char *const cend[] = {"endcall", NULL};
  tnode *n = mk(p, is_call ? N_CALLBLOCK : N_MACRO);
  if (!n) return NULL;
  if (is_call) {
    if (is_op(p, "(") && !parse_signature(p, n)) return NULL;
    if (!(n->a = parse_expression(p, true))) return NULL;
    if (n->a->kind != N_CALL) return fail(p, MLXR_ERR_FORMAT, "expected call%s", NULL);
  } else {
    if (cur(p)->type != T_NAME) return fail(p, MLXR_ERR_FORMAT, "expected macro name, got '%s'", tok_desc(cur(p)));
    n->name = cur(p)->text;
    adv(p);
    if (!parse_signature(p, n)) return NULL;
  }
  int saved = p->uses;
  p->uses = 0;
  n->b = parse_statements(p, is_call ? cend : mend, true);
  n->flag = p->uses;
  p->uses = saved | (is_call ? 0 : (p->uses & 0)); /* a nested macro's uses are its own */
  return n->b ? n : NULL;
}

static tnode *parse_statement(parser *p) {
  const ttok *t = cur(p);
  if (t->type != T_NAME) return fail(p, MLXR_ERR_FORMAT, "tag name expected, got '%s'", tok_desc(t));
  const char *k = t->text;
  adv(p);
  if (!strcmp(k, "for")) return parse_for(p);
  if (!strcmp(k, "if")) return parse_if(p);
  if (!strcmp(k, "set")) return parse_set(p);
  if (!strcmp(k, "macro")) return parse_macro_like(p, false);
  if (!strcmp(k, "call")) return parse_macro_like(p, true);
  if (!strcmp(k, "break") || !strcmp(k, "continue")) return mk(p, k[0] == 'b' ? N_BREAK : N_CONTINUE);
  if (!strcmp(k, "filter")) {
    static const char *const end[] = {"endfilter", NULL};
    tnode *n = mk(p, N_FILTERBLOCK);
    if (!n || !(n->a = parse_filter(p, NULL, true))) return NULL;
    n->b = parse_statements(p, end, true);
    return n->b ? n : NULL;
  }
  if (!strcmp(k, "with")) {
    static const char *const end[] = {"endwith", NULL};
    tnode *n = mk(p, N_WITH);
    nodevec tg = {0}, vals = {0};
    if (!n) return NULL;
    while (cur(p)->type != T_BLOCK_END) {
      if (tg.n && !expect_op(p, ",")) return NULL;
      tnode *target = parse_tuple(p, 2, NULL, false);
      if (!target || !check_target(p, target) || !expect_op(p, "=")) return NULL;
      tnode *v = parse_expression(p, true);
      if (!v || !vec_push(p, &tg, target, NULL) || !vec_push(p, &vals, v, NULL)) return NULL;
    }
    n->list = tg.v;
    n->list2 = vals.v;
    n->n = tg.n;
    n->b = parse_statements(p, end, true);
    return n->b ? n : NULL;
  }
  if (!strcmp(k, "block")) {
    static const char *const end[] = {"endblock", NULL};
    if (cur(p)->type != T_NAME) return fail(p, MLXR_ERR_FORMAT, "expected block name, got '%s'", tok_desc(cur(p)));
    adv(p);
    while (skip_name(p, "scoped") || skip_name(p, "required")) {
    }
    tnode *body = parse_statements(p, end, true);
    if (body && cur(p)->type == T_NAME) adv(p);
    return body;
  }
  if (!strcmp(k, "generation")) {
    static const char *const end[] = {"endgeneration", NULL};
    return parse_statements(p, end, true);
  }
  p->pos--;
  return fail(p, MLXR_ERR_FORMAT, "encountered unknown tag '%s'", k);
}

static tnode *subparse(parser *p, const char *const *end) {
  if (++p->depth > MAX_NEST) return fail(p, MLXR_ERR_RANGE, "blocks nested too deeply%s", NULL);
  nodevec body = {0};
  for (;;) {
    const ttok *t = cur(p);
    if (t->type == T_EOF) break;
    tnode *n = NULL;
    if (t->type == T_DATA) {
      n = mk(p, N_TEXT);
      if (!n) return NULL;
      n->name = t->text;
      n->len = t->len;
      adv(p);
    } else if (t->type == T_VAR_BEGIN) {
      adv(p);
      n = mk(p, N_PRINT);
      if (!n || !(n->a = parse_tuple(p, 0, NULL, false))) return NULL;
      if (!expect_type(p, T_VAR_END, "end of print statement")) return NULL;
    } else if (t->type == T_BLOCK_BEGIN) {
      adv(p);
      if (end && cur(p)->type == T_NAME) {
        for (const char *const *e = end; *e; e++)
          if (is_name(p, *e)) goto done;
      }
      if (!(n = parse_statement(p))) return NULL;
      if (!expect_type(p, T_BLOCK_END, "end of statement block")) return NULL;
    } else {
      return fail(p, MLXR_ERR_FORMAT, "unexpected '%s'", tok_desc(t));
    }
    if (!vec_push(p, &body, n, NULL)) return NULL;
  }
  if (end) {
    char want[200] = "";
    for (const char *const *e = end; *e; e++) {
      size_t l = strlen(want);
      snprintf(want + l, sizeof(want) - l, "%s'%s'", e == end ? "" : " or ", *e);
    }
    return fail(p, MLXR_ERR_FORMAT, "unexpected end of template, expected %s", want);
  }
done:
  p->depth--;
  tnode *n = mk(p, N_BODY);
  if (!n) return NULL;
  n->list = body.v;
  n->n = body.n;
  return n;
}

int mlxr_template_parse(const ttok *toks, size_t n, tarena *arena, tnode **root, char *err, size_t err_len) {
  parser p = {.t = toks, .n = n, .arena = arena, .err = err, .err_len = err_len};
  tnode *r = subparse(&p, NULL);
  if (!r) return p.status ? p.status : mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "template syntax error");
  if (cur(&p)->type != T_EOF) {
    fail(&p, MLXR_ERR_FORMAT, "unexpected '%s'", tok_desc(cur(&p)));
    return p.status;
  }
  *root = r;
  return MLXR_OK;
}
