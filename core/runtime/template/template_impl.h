/*
 * template_impl.h: internals of the chat-template interpreter shared by its files.
 *
 *   lexer.c   source -> tokens, with Jinja2's whitespace rules (trim_blocks, lstrip_blocks, -/+)
 *   parser.c  tokens -> AST (nodes live in the template's arena, freed all at once)
 *   value.c   runtime values (refcounted tv), Python str()/repr(), truthiness, ==, <, dict ops,
 *             UTF-8 helpers
 *   eval.c    statements and expressions, scopes, macros, limits; the public render entry points
 *   filters.c builtin filters, global functions and methods of str/dict/list
 *   tests.c   builtin tests (`x is defined`, ...)
 *   json.c    json.dumps (tojson) and a json.loads-exact parser for the variables
 *
 * Ownership: a function returning tv* returns a new reference (caller releases with tv_unref);
 * arguments are borrowed. NULL means an error, already recorded in the render context.
 */
#ifndef MLXR_RUNTIME_TEMPLATE_IMPL_H
#define MLXR_RUNTIME_TEMPLATE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/runtime/template/template.h"

/* ---- values ---- */

typedef enum tv_type {
  TV_UNDEF, /* Jinja's Undefined: prints "", iterates empty, fails on attribute access */
  TV_NONE,
  TV_BOOL,
  TV_INT,
  TV_FLOAT,
  TV_STR,
  TV_LIST, /* list or tuple (is_tuple); immutable in the sandbox */
  TV_DICT,
  TV_NS,    /* namespace(): a dict whose attributes can be set */
  TV_MACRO, /* a {% macro %} (or the caller of a {% call %} block) */
  TV_FUNC,  /* a builtin function or a method bound to self */
  TV_LOOP,  /* the `loop` variable of a for loop (fields computed on access) */
} tv_type;

struct tnode;
struct tscope;

typedef struct tv tv;
struct tv {
  tv_type type;
  int refs;      /* reference count; ignored when immortal */
  bool immortal; /* constants of a compiled template (shared by concurrent renders) */
  union {
    bool b;
    int64_t i;
    double f;
    struct {
      char *s;      /* UTF-8, NUL-terminated, len bytes */
      size_t len;
      bool unsafe;  /* TV_UNDEF made by the sandbox (list.append): any use is a SecurityError */
    } str;          /* also TV_UNDEF: s = hint for error messages ("'x' is undefined") */
    struct {
      tv **items;
      size_t n, cap;
      bool is_tuple;
      int depth; /* nesting depth, bounded so freeing and printing cannot overflow the stack */
    } list;
    struct {
      tv **keys, **vals;
      size_t n, cap;
      int depth;
    } dict; /* TV_DICT and TV_NS; insertion-ordered */
    struct {
      const struct tnode *def; /* N_MACRO or N_CALLBLOCK node */
      struct tscope *closure;  /* defining scope (cleared at the end of a render) */
      const char *name;
      tv *caller; /* for a call block's macro invocation: the caller macro */
    } macro;
    struct {
      tv *items; /* the (filtered) list being iterated */
      size_t i;  /* current index */
    } loop;
    struct {
      int id;   /* builtin id (methods.c) */
      tv *self; /* bound object for methods, else NULL */
      const char *name;
    } func;
  } u;
};

tv *tv_new(tv_type type);
tv *tv_undef(const char *hint_fmt, ...) __attribute__((format(printf, 1, 2)));
tv *tv_none(void);
tv *tv_bool(bool b);
tv *tv_int(int64_t i);
tv *tv_float(double f);
tv *tv_str(const char *s, size_t len); /* copies */
tv *tv_strz(const char *s);
tv *tv_str_take(char *s, size_t len); /* takes ownership of malloc'd s (NUL-terminated) */
tv *tv_list(size_t cap);
tv *tv_dict(void);
tv *tv_ref(tv *v);
void tv_unref(tv *v);

/* Append taking ownership of item (on failure item is released); false on OOM or depth. */
bool tv_list_push(tv *list, tv *item);
/* Set key (borrowed) to val (owned). */
bool tv_dict_set(tv *dict, tv *key, tv *val);
bool tv_dict_setz(tv *dict, const char *key, tv *val);
tv *tv_dict_get(const tv *dict, const tv *key);      /* borrowed or NULL */
tv *tv_dict_getz(const tv *dict, const char *key);   /* borrowed or NULL */

bool tv_truthy(const tv *v);
bool tv_eq(const tv *a, const tv *b);
/* Python ordering: -1/0/1 in *out; false if the types cannot be ordered. */
bool tv_cmp(const tv *a, const tv *b, int *out);
const char *tv_type_name(const tv *v); /* Python's type name: "str", "int", "dict", ... */
/* Jinja's object_type_repr, as undefined-value messages name objects: "None", "dict object", ... */
const char *tv_object_type_repr(const tv *v);
bool tv_is_number(const tv *v);        /* int, float or bool */
double tv_as_double(const tv *v);

/* Growable string buffer with a size cap (the render's output cap). */
typedef struct tbuf {
  char *s;
  size_t len, cap;
  size_t max;    /* refuse to grow beyond this many bytes */
  bool overflow; /* set when an append was refused (cap or OOM) */
} tbuf;
void tbuf_init(tbuf *b, size_t max);
bool tbuf_add(tbuf *b, const char *s, size_t len);
bool tbuf_addz(tbuf *b, const char *s);
bool tbuf_addc(tbuf *b, char c);
void tbuf_free(tbuf *b);
char *tbuf_take(tbuf *b, size_t *len); /* NUL-terminated; buffer emptied */

/* Python str(v) / repr(v) appended to b; false on overflow. */
bool tv_write_str(tbuf *b, const tv *v);
bool tv_write_repr(tbuf *b, const tv *v);
void tv_write_float(tbuf *b, double f); /* Python repr of a float: 1.0, 1e-05, inf, nan */

/* UTF-8 helpers: decode one code point at s[*i] (advancing *i; bad bytes decode as themselves),
 * count code points, byte offset of code point k, append a code point. */
uint32_t tv_utf8_next(const char *s, size_t len, size_t *i);
size_t tv_utf8_count(const char *s, size_t len);
size_t tv_utf8_offset(const char *s, size_t len, size_t k);
bool tv_utf8_put(tbuf *b, uint32_t cp);
bool tv_py_isspace(uint32_t cp);

/* ---- AST ---- */

typedef enum tnode_kind {
  /* statements */
  N_BODY,   /* list: statements */
  N_TEXT,   /* name: text, n: length */
  N_PRINT,  /* a: expr */
  N_IF,     /* a: cond, b: body, c: else (N_BODY or N_IF for elif) */
  N_FOR,    /* a: target, b: iter, c: body, d: else body, e: filter cond, flag: recursive */
  N_SET,    /* a: target, b: value */
  N_SETBLOCK, /* a: target, b: body, c: filter chain (N_FILTER with NULL input) or NULL */
  N_MACRO,  /* name, names/list2: params + defaults (NULL where none), b: body, flag: uses */
  N_CALLBLOCK, /* a: call expr, names/list2: caller params, b: body, flag: uses */
  N_FILTERBLOCK, /* a: filter chain, b: body */
  N_WITH,   /* list: targets, list2: values, b: body */
  N_BREAK,
  N_CONTINUE,
  /* expressions */
  N_CONST,   /* value */
  N_NAME,    /* name */
  N_LIST,    /* list */
  N_TUPLE,   /* list */
  N_DICT,    /* list: keys, list2: values */
  N_BINOP,   /* op, a, b */
  N_NEG,     /* a */
  N_POS,     /* a */
  N_NOT,     /* a */
  N_AND,     /* a, b */
  N_OR,      /* a, b */
  N_COMPARE, /* a: first, list: operands, ops: operators */
  N_CONCAT,  /* list */
  N_COND,    /* a: test, b: then, c: else (may be NULL) */
  N_GETATTR, /* a: obj, name */
  N_GETITEM, /* a: obj, b: index */
  N_SLICE,   /* a, b, c: start, stop, step (each may be NULL) */
  N_CALL,    /* a: callee, list: args, names/list2: kwargs, e: *args, d: **kwargs */
  N_FILTER,  /* a: input (NULL in filter blocks), name, list/names/list2 args */
  N_TEST,    /* a: input, name, args, flag: negated */
} tnode_kind;

enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW };
enum { CMP_EQ = 1, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };
enum { USES_VARARGS = 1, USES_KWARGS = 2, USES_CALLER = 4 };

typedef struct tnode tnode;
struct tnode {
  tnode_kind kind;
  int line;
  int op;
  int flag;
  const char *name;
  size_t len; /* N_TEXT length */
  tnode *a, *b, *c, *d, *e;
  tnode **list;
  size_t n;
  tnode **list2;
  const char **names;
  size_t n2;
  int *ops;
  tv *value;
};

/* Arena for the AST and its strings. */
typedef struct tarena_block tarena_block;
typedef struct tarena {
  tarena_block *head;
  tv **consts; /* immortal constants, freed with the arena */
  size_t n_consts, cap_consts;
} tarena;
void *tarena_alloc(tarena *a, size_t size); /* zeroed; NULL on OOM */
char *tarena_strdup(tarena *a, const char *s, size_t len);
void tarena_free(tarena *a);

/* ---- lexer ---- */

typedef enum ttok_type {
  T_EOF,
  T_DATA,        /* text between tags */
  T_VAR_BEGIN,   /* {{ */
  T_VAR_END,     /* }} */
  T_BLOCK_BEGIN, /* {% */
  T_BLOCK_END,   /* %} */
  T_RAW,         /* text of a {% raw %} block */
  T_NAME,
  T_STRING,      /* unescaped value */
  T_INT,
  T_FLOAT,
  T_OP,          /* text: the operator */
} ttok_type;

typedef struct ttok {
  ttok_type type;
  int line;
  char *text; /* arena string (for T_DATA/T_RAW/T_NAME/T_STRING/T_OP) */
  size_t len;
  int64_t i;
  double f;
} ttok;

/* Tokenize; *toks is malloc'd (caller frees), strings live in the arena. */
int mlxr_template_lex(const char *src, size_t len, tarena *arena, ttok **toks, size_t *n,
                      char *err, size_t err_len);

/* ---- parser ---- */

int mlxr_template_parse(const ttok *toks, size_t n, tarena *arena, tnode **root, char *err,
                        size_t err_len);

struct mlxr_template {
  tarena arena;
  tnode *root;
};

/* ---- evaluation context ---- */

typedef struct tscope tscope;
struct tscope {
  int refs;
  tscope *parent;
  tv *vars; /* TV_DICT */
};

typedef struct tctx {
  const mlxr_template_params *params;
  tbuf *out;         /* current output buffer */
  uint64_t steps;    /* loop iterations + calls so far */
  int depth;         /* current evaluation depth */
  int flow;          /* 0, FLOW_BREAK, FLOW_CONTINUE */
  bool failed;
  int status;
  char msg[512];
  tv *macros;        /* every macro made in this render (closures cleared at the end) */
  tv *namespaces;    /* every namespace made (cleared at the end, breaking cycles) */
  tscope *root;
} tctx;

enum { FLOW_BREAK = 1, FLOW_CONTINUE = 2 };

/* Record an error (the first one wins); returns NULL for `return tctx_fail(...)` in tv* code. */
void *tctx_fail(tctx *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool tctx_step(tctx *c); /* count a step; false (error recorded) past max_steps */

/* Call any callable value (macro, builtin). args/kwargs borrowed. */
tv *mlxr_tpl_call(tctx *c, tv *fn, tv **args, size_t n, const char **kwn, tv **kwv, size_t nkw,
                  int line);

/* filters.c */
/* Apply builtin filter `name`. Returns NULL with an error for unknown filters. */
tv *mlxr_tpl_filter(tctx *c, const char *name, tv *in, tv **args, size_t n, const char **kwn,
                    tv **kwv, size_t nkw);
/* obj.name for str/dict/list/namespace/loop objects: a bound method, an item or undefined. */
tv *mlxr_tpl_getattr(tctx *c, tv *obj, const char *name);
/* The attr filter: obj.name without the fallback to dict items (a method, or undefined). */
tv *mlxr_tpl_attr(tctx *c, tv *obj, const char *name);
tv *mlxr_tpl_getitem(tctx *c, tv *obj, tv *key);
/* Global function by name (range, dict, namespace, ...), NULL if none. */
tv *mlxr_tpl_global(const char *name);
tv *mlxr_tpl_call_builtin(tctx *c, tv *fn, tv **args, size_t n, const char **kwn, tv **kwv,
                          size_t nkw);
/* Python iteration: list items, dict keys, string characters. Returns a new list or NULL with an
 * error (non-iterable). Undefined iterates as empty. */
tv *mlxr_tpl_iterate(tctx *c, tv *v);
/* Values as Python's str() into a new TV_STR. */
tv *mlxr_tpl_to_str(tctx *c, const tv *v);

/* Bind positional and keyword arguments to the parameter names of a builtin: out[i] is a borrowed
 * value or NULL where not given. Errors on too many positional or unknown keyword arguments. */
bool mlxr_tpl_bind(tctx *c, const char *fname, const char *const *params, size_t np, tv **args, size_t n,
                   const char **kwn, tv **kwv, size_t nkw, tv **out);
/* Case mapping of a whole string (mode 'l' lower, 'u' upper), into a new TV_STR. */
tv *mlxr_tpl_case(tctx *c, const char *s, size_t len, char mode);
/* Python str.title() ('t'), str.capitalize() ('c'), or Jinja's title filter ('j'). */
tv *mlxr_tpl_titlecase(tctx *c, const char *s, size_t len, char mode);
/* Python's str.strip/lstrip/rstrip (which: 'b', 'l', 'r'), chars NULL for whitespace. */
tv *mlxr_tpl_strip(tctx *c, const tv *s, const tv *chars, char which);
/* str.replace(old, new, count) (count < 0: all). */
tv *mlxr_tpl_replace(tctx *c, const tv *s, const tv *old, const tv *new_, int64_t count);
/* Error for a value that cannot be used here (raises UndefinedError for undefined). */
void *mlxr_tpl_undefined_error(tctx *c, const tv *u);

/* Python's `fmt % args` (args a tuple or a single value), in eval.c. */
tv *mlxr_tpl_percent_format(tctx *c, const tv *fmt, const tv *args);
/* Python's binary operators (OP_*) and comparisons (CMP_*) with Jinja's Undefined, as templates
 * evaluate them; filters and tests that Jinja writes with Python operators (sum, round, batch,
 * divisibleby, eq, in, ...) use these so that their results and errors are the same. compare
 * returns 0/1, or -1 with an error. */
tv *mlxr_tpl_binop(tctx *c, int op, tv *a, tv *b);
int mlxr_tpl_compare(tctx *c, int op, tv *a, tv *b);
/* false with Python's "unhashable type" TypeError for lists, dicts and tuples holding them */
bool mlxr_tpl_check_hashable(tctx *c, const tv *v);

/* tests.c: `in is name(args)`; returns 0/1, or -1 with an error. */
int mlxr_tpl_test(tctx *c, const char *name, tv *in, tv **args, size_t n);
bool mlxr_tpl_test_exists(const char *name);
bool mlxr_tpl_filter_exists(const char *name); /* filters.c */
/* Python's str.isupper() (upper) or str.islower() of a TV_STR, in methods.c */
bool mlxr_tpl_str_iscase(const tv *s, bool upper);

/* json.c */
/* json.dumps(v, ensure_ascii=False, indent, separators, sort_keys); indent < 0 means None;
 * item_sep/key_sep NULL means the defaults for the indent. */
bool mlxr_tpl_json_dump(tctx *c, tbuf *b, const tv *v, int indent, const char *indent_str,
                        const char *item_sep, const char *key_sep, bool sort_keys, bool ensure_ascii);
/* json.loads of text into a value; NULL + message on a syntax error. */
tv *mlxr_tpl_json_parse(const char *s, size_t len, char *err, size_t err_len);
tv *mlxr_tpl_from_cjson(const cJSON *j, int depth);

#endif
