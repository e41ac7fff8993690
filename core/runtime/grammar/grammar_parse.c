/*
 * grammar_parse.c: GBNF text -> compiled grammar (grammar_impl.h). A recursive-descent parser in
 * the shape of llama.cpp's: rules are collected per symbol id (names interned as they are first
 * seen, so rules may be referenced before they are defined); groups become generated rules;
 * repetitions are rewritten:
 *
 *   S*      -> R,  R ::= S R |            (right recursion keeps matcher stacks flat)
 *   S+      -> S R
 *   S?      -> R,  R ::= S |
 *   S{m,n}  -> S..S (m times) then n-m nested optionals  R1 ::= S R2 | ,  R2 ::= S R3 | , ...
 *   S{m,}   -> S..S (m times) R,  R ::= S R |
 *
 * After parsing: every referenced rule must be defined, the root must exist, and no rule may be
 * left-recursive (checked with nullability: A ::= B "x", B ::= | A would loop the matcher).
 * All allocations are freed on every error path. Single-threaded, no globals.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar_impl.h"

#define MAX_REPEAT 2000        /* largest m or n of {m,n} */
#define MAX_ELEMS (1u << 22)   /* elements of one compiled grammar */
#define MAX_NEST 256           /* parenthesis nesting */

typedef struct gvec {
  mlxr_gelem *e;
  uint32_t n, cap;
} gvec;

typedef struct parser {
  const char *end;
  char **names;   /* [n_syms] symbol names (malloc'd) */
  gvec *rules;    /* [n_syms] rule bodies; defined[i] says whether set */
  bool *defined;
  uint32_t n_syms, cap_syms;
  uint32_t *index;    /* [index_cap] symbol id + 1, 0 = empty: name -> id (open addressing) */
  uint32_t index_cap; /* a power of two, more than twice n_syms */
  uint32_t n_gen; /* generated rule counter */
  int depth;
  int rc;
  char *err;
  size_t err_len;
} parser;

static bool fail(parser *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(parser *p, int rc, const char *fmt, ...) {
  if (p->rc == MLXR_OK) {
    p->rc = rc;
    if (p->err && p->err_len) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(p->err, p->err_len, fmt, ap);
      va_end(ap);
    }
  }
  return false;
}

static bool vec_push(parser *p, gvec *v, uint32_t type, uint32_t value) {
  if (v->n == v->cap) {
    uint32_t cap = v->cap ? v->cap * 2 : 16;
    if (cap > MAX_ELEMS) return fail(p, MLXR_ERR_RANGE, "grammar too large");
    mlxr_gelem *e = realloc(v->e, cap * sizeof(*e));
    if (!e) return fail(p, MLXR_ERR_NOMEM, "out of memory");
    v->e = e;
    v->cap = cap;
  }
  v->e[v->n++] = (mlxr_gelem){type, value};
  return true;
}

static bool vec_append(parser *p, gvec *v, const mlxr_gelem *e, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    if (!vec_push(p, v, e[i].type, e[i].value)) return false;
  }
  return true;
}

/* Symbol id of name[0..len), interned; UINT32_MAX on failure. */
static size_t name_hash(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
  return (size_t)h;
}

static void index_put(uint32_t *index, uint32_t cap, const char *name, uint32_t id) {
  size_t k = name_hash(name, strlen(name)) & (cap - 1);
  while (index[k]) k = (k + 1) & (cap - 1);
  index[k] = id + 1;
}

/* The id of a symbol name, interned on first sight. Names are indexed by hash: repetitions
 * generate thousands of rules, and a scan per lookup made parsing quadratic. */
static uint32_t symbol_id(parser *p, const char *name, size_t len) {
  if (p->index_cap) {
    const uint32_t mask = p->index_cap - 1;
    for (size_t k = name_hash(name, len) & mask; p->index[k]; k = (k + 1) & mask) {
      const char *s = p->names[p->index[k] - 1];
      if (strlen(s) == len && memcmp(s, name, len) == 0) return p->index[k] - 1;
    }
  }
  if (2 * ((size_t)p->n_syms + 1) >= p->index_cap) {
    const uint32_t cap = p->index_cap ? p->index_cap * 2 : 64;
    uint32_t *index = cap > p->index_cap ? calloc(cap, sizeof(*index)) : NULL;
    if (!index) {
      fail(p, MLXR_ERR_NOMEM, "out of memory");
      return UINT32_MAX;
    }
    for (uint32_t i = 0; i < p->n_syms; i++) index_put(index, cap, p->names[i], i);
    free(p->index);
    p->index = index;
    p->index_cap = cap;
  }
  if (p->n_syms == p->cap_syms) {
    uint32_t cap = p->cap_syms ? p->cap_syms * 2 : 32;
    char **names = realloc(p->names, cap * sizeof(*names));
    if (names) p->names = names;
    gvec *rules = realloc(p->rules, cap * sizeof(*rules));
    if (rules) p->rules = rules;
    bool *defined = realloc(p->defined, cap * sizeof(*defined));
    if (defined) p->defined = defined;
    if (!names || !rules || !defined) {
      fail(p, MLXR_ERR_NOMEM, "out of memory");
      return UINT32_MAX;
    }
    p->cap_syms = cap;
  }
  char *s = malloc(len + 1);
  if (!s) {
    fail(p, MLXR_ERR_NOMEM, "out of memory");
    return UINT32_MAX;
  }
  memcpy(s, name, len);
  s[len] = '\0';
  p->names[p->n_syms] = s;
  p->rules[p->n_syms] = (gvec){0};
  p->defined[p->n_syms] = false;
  index_put(p->index, p->index_cap, s, p->n_syms);
  return p->n_syms++;
}

/* A fresh symbol for a generated rule, named base_N. */
static uint32_t generated_id(parser *p, uint32_t base) {
  char name[160];
  int w = snprintf(name, sizeof(name), "%.100s_%u", p->names[base], (unsigned)p->n_gen++);
  return symbol_id(p, name, (size_t)w);
}

static bool define_rule(parser *p, uint32_t id, gvec *body) {
  if (p->defined[id]) {
    free(body->e);
    *body = (gvec){0};
    return fail(p, MLXR_ERR_INVALID, "rule '%s' is defined twice", p->names[id]);
  }
  p->rules[id] = *body;
  p->defined[id] = true;
  *body = (gvec){0};
  return true;
}

static bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Skip spaces, tabs, comments and (if newline_ok) line breaks. */
static const char *skip_space(parser *p, const char *s, bool newline_ok) {
  while (s < p->end) {
    if (*s == ' ' || *s == '\t') {
      s++;
    } else if (*s == '#') {
      while (s < p->end && *s != '\n' && *s != '\r') s++;
    } else if (newline_ok && (*s == '\r' || *s == '\n')) {
      s++;
    } else {
      break;
    }
  }
  return s;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One UTF-8 code point from the grammar text (lenient: the grammar's own text). */
static const char *decode_char(parser *p, const char *s, uint32_t *cp) {
  const uint8_t b = (uint8_t)*s;
  int n = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
  if (n == 0 || s + n > p->end) {
    fail(p, MLXR_ERR_INVALID, "invalid UTF-8 in the grammar");
    return NULL;
  }
  uint32_t v = n == 1 ? b : n == 2 ? (b & 0x1Fu) : n == 3 ? (b & 0x0Fu) : (b & 0x07u);
  for (int i = 1; i < n; i++) {
    if (((uint8_t)s[i] & 0xC0) != 0x80) {
      fail(p, MLXR_ERR_INVALID, "invalid UTF-8 in the grammar");
      return NULL;
    }
    v = (v << 6) | ((uint8_t)s[i] & 0x3Fu);
  }
  *cp = v;
  return s + n;
}

/* A character of a literal or class: an escape or one UTF-8 code point. */
static const char *parse_char(parser *p, const char *s, uint32_t *cp) {
  if (s >= p->end) {
    fail(p, MLXR_ERR_INVALID, "unexpected end of the grammar");
    return NULL;
  }
  if (*s != '\\') return decode_char(p, s, cp);
  if (s + 1 >= p->end) {
    fail(p, MLXR_ERR_INVALID, "unexpected end of the grammar after '\\'");
    return NULL;
  }
  const char c = s[1];
  int nhex = c == 'x' ? 2 : c == 'u' ? 4 : c == 'U' ? 8 : 0;
  if (nhex) {
    uint32_t v = 0;
    for (int i = 0; i < nhex; i++) {
      int h = s + 2 + i < p->end ? hexval(s[2 + i]) : -1;
      if (h < 0) {
        fail(p, MLXR_ERR_INVALID, "bad \\%c escape in the grammar", c);
        return NULL;
      }
      v = (v << 4) | (uint32_t)h;
    }
    *cp = v;
    return s + 2 + nhex;
  }
  switch (c) {
    case 'n': *cp = '\n'; break;
    case 'r': *cp = '\r'; break;
    case 't': *cp = '\t'; break;
    case '\\': case '"': case '[': case ']': case '-': case '/': case '^': case '\'': *cp = (uint8_t)c; break;
    default:
      fail(p, MLXR_ERR_INVALID, "unknown escape '\\%c' in the grammar", c);
      return NULL;
  }
  return s + 2;
}

static const char *parse_alternatives(parser *p, const char *s, uint32_t rule_id, bool nested);

/* A non-negative integer (for {m,n}). */
static const char *parse_int(parser *p, const char *s, uint32_t *v) {
  const char *start = s;
  uint64_t x = 0;
  while (s < p->end && *s >= '0' && *s <= '9') {
    x = x * 10 + (uint64_t)(*s - '0');
    if (x > MAX_REPEAT) {
      fail(p, MLXR_ERR_RANGE, "repetition count above %d", MAX_REPEAT);
      return NULL;
    }
    s++;
  }
  if (s == start) {
    fail(p, MLXR_ERR_INVALID, "expected a number in {m,n}");
    return NULL;
  }
  *v = (uint32_t)x;
  return s;
}

/* Rewrite out[last..n) as repeated min..max times (max UINT32_MAX: unbounded). */
static bool repeat(parser *p, gvec *out, uint32_t last, uint32_t min, uint32_t max, uint32_t rule_id) {
  if (last == out->n) return fail(p, MLXR_ERR_INVALID, "a repetition operator has nothing before it");
  gvec prev = {0};
  if (!vec_append(p, &prev, out->e + last, out->n - last)) {
    free(prev.e);
    return false;
  }
  out->n = last;
  bool ok = true;
  for (uint32_t i = 0; ok && i < min; i++) ok = vec_append(p, out, prev.e, prev.n);
  if (ok && max == UINT32_MAX) {
    /* R ::= prev R | */
    uint32_t r = generated_id(p, rule_id);
    gvec body = {0};
    ok = r != UINT32_MAX && vec_append(p, &body, prev.e, prev.n) && vec_push(p, &body, MLXR_GT_RULE_REF, r) &&
         vec_push(p, &body, MLXR_GT_ALT, 0) && vec_push(p, &body, MLXR_GT_END, 0) && define_rule(p, r, &body) &&
         vec_push(p, out, MLXR_GT_RULE_REF, r);
    free(body.e);
  } else if (ok && max > min) {
    /* nested optionals, built from the innermost out: Rk ::= prev R(k+1) | */
    uint32_t inner = UINT32_MAX;
    for (uint32_t k = 0; ok && k < max - min; k++) {
      uint32_t r = generated_id(p, rule_id);
      gvec body = {0};
      ok = r != UINT32_MAX && vec_append(p, &body, prev.e, prev.n) &&
           (inner == UINT32_MAX || vec_push(p, &body, MLXR_GT_RULE_REF, inner)) &&
           vec_push(p, &body, MLXR_GT_ALT, 0) && vec_push(p, &body, MLXR_GT_END, 0) && define_rule(p, r, &body);
      free(body.e);
      inner = r;
    }
    if (ok) ok = vec_push(p, out, MLXR_GT_RULE_REF, inner);
  }
  free(prev.e);
  return ok;
}

/* A sequence of symbols into out; stops before '|', ')', a line break (outside parens) or the end. */
static const char *parse_sequence(parser *p, const char *s, uint32_t rule_id, gvec *out, bool nested) {
  uint32_t last = out->n;
  while (s < p->end) {
    const char c = *s;
    if (c == '"') {
      last = out->n;
      s++;
      while (s < p->end && *s != '"') {
        uint32_t cp;
        if (!(s = parse_char(p, s, &cp)) || !vec_push(p, out, MLXR_GT_CHAR, cp)) return NULL;
      }
      if (s >= p->end) {
        fail(p, MLXR_ERR_INVALID, "unterminated string literal in rule '%s'", p->names[rule_id]);
        return NULL;
      }
      s++;
    } else if (c == '[') {
      last = out->n;
      s++;
      uint32_t first_type = MLXR_GT_CHAR;
      if (s < p->end && *s == '^') {
        first_type = MLXR_GT_CHAR_NOT;
        s++;
      }
      bool first = true;
      while (s < p->end && *s != ']') {
        uint32_t cp;
        if (!(s = parse_char(p, s, &cp))) return NULL;
        if (!vec_push(p, out, first ? first_type : MLXR_GT_CHAR_ALT, cp)) return NULL;
        first = false;
        if (s + 1 < p->end && *s == '-' && s[1] != ']') {
          uint32_t hi;
          if (!(s = parse_char(p, s + 1, &hi))) return NULL;
          if (hi < cp) {
            fail(p, MLXR_ERR_INVALID, "empty character range in rule '%s'", p->names[rule_id]);
            return NULL;
          }
          if (!vec_push(p, out, MLXR_GT_RNG_UPPER, hi)) return NULL;
        }
      }
      if (s >= p->end) {
        fail(p, MLXR_ERR_INVALID, "unterminated character class in rule '%s'", p->names[rule_id]);
        return NULL;
      }
      if (first) { /* [] matches nothing, [^] anything */
        if (first_type == MLXR_GT_CHAR_NOT) {
          if (!vec_push(p, out, MLXR_GT_CHAR_ANY, 0)) return NULL;
        } else {
          fail(p, MLXR_ERR_INVALID, "empty character class in rule '%s'", p->names[rule_id]);
          return NULL;
        }
      }
      s++;
    } else if (is_word(c)) {
      const char *w = s;
      while (s < p->end && is_word(*s)) s++;
      last = out->n;
      uint32_t id = symbol_id(p, w, (size_t)(s - w));
      if (id == UINT32_MAX || !vec_push(p, out, MLXR_GT_RULE_REF, id)) return NULL;
    } else if (c == '(') {
      if (++p->depth > MAX_NEST) {
        fail(p, MLXR_ERR_RANGE, "parentheses nested deeper than %d", MAX_NEST);
        return NULL;
      }
      last = out->n;
      uint32_t sub = generated_id(p, rule_id);
      if (sub == UINT32_MAX) return NULL;
      s = parse_alternatives(p, skip_space(p, s + 1, true), sub, true);
      if (!s) return NULL;
      if (s >= p->end || *s != ')') {
        fail(p, MLXR_ERR_INVALID, "expected ')' in rule '%s'", p->names[rule_id]);
        return NULL;
      }
      s++;
      p->depth--;
      if (!vec_push(p, out, MLXR_GT_RULE_REF, sub)) return NULL;
    } else if (c == '.') {
      last = out->n;
      if (!vec_push(p, out, MLXR_GT_CHAR_ANY, 0)) return NULL;
      s++;
    } else if (c == '*' || c == '+' || c == '?') {
      const uint32_t min = c == '+' ? 1 : 0, max = c == '?' ? 1 : UINT32_MAX;
      if (!repeat(p, out, last, min, max, rule_id)) return NULL;
      s++;
    } else if (c == '{') {
      uint32_t min, max;
      s = skip_space(p, s + 1, false);
      if (!(s = parse_int(p, s, &min))) return NULL;
      s = skip_space(p, s, false);
      max = min;
      if (s < p->end && *s == ',') {
        s = skip_space(p, s + 1, false);
        max = UINT32_MAX;
        if (s < p->end && *s >= '0' && *s <= '9') {
          if (!(s = parse_int(p, s, &max))) return NULL;
          s = skip_space(p, s, false);
        }
      }
      if (s >= p->end || *s != '}' || max < min) {
        fail(p, MLXR_ERR_INVALID, "bad {m,n} repetition in rule '%s'", p->names[rule_id]);
        return NULL;
      }
      s++;
      if (!repeat(p, out, last, min, max, rule_id)) return NULL;
    } else {
      break;
    }
    s = skip_space(p, s, nested);
  }
  return s;
}

static const char *parse_alternatives(parser *p, const char *s, uint32_t rule_id, bool nested) {
  gvec body = {0};
  s = parse_sequence(p, s, rule_id, &body, nested);
  while (s && s < p->end && *s == '|') {
    if (!vec_push(p, &body, MLXR_GT_ALT, 0)) s = NULL;
    else s = parse_sequence(p, skip_space(p, s + 1, true), rule_id, &body, nested);
  }
  if (!s || !vec_push(p, &body, MLXR_GT_END, 0) || !define_rule(p, rule_id, &body)) {
    free(body.e);
    return NULL;
  }
  return s;
}

static const char *parse_rule(parser *p, const char *s) {
  const char *w = s;
  while (s < p->end && is_word(*s)) s++;
  if (s == w) {
    /* the text is not NUL-terminated: quote at most what is left of it (fuzz_gbnf found the
     * read past the end) */
    const int left = p->end - w < 20 ? (int)(p->end - w) : 20;
    fail(p, MLXR_ERR_INVALID, "expected a rule name at '%.*s'", left, w);
    return NULL;
  }
  uint32_t id = symbol_id(p, w, (size_t)(s - w));
  if (id == UINT32_MAX) return NULL;
  s = skip_space(p, s, false);
  if (p->end - s < 3 || memcmp(s, "::=", 3) != 0) {
    fail(p, MLXR_ERR_INVALID, "expected '::=' after rule name '%s'", p->names[id]);
    return NULL;
  }
  s = skip_space(p, s + 3, true);
  if (!(s = parse_alternatives(p, s, id, false))) return NULL;
  if (s < p->end && *s != '\r' && *s != '\n') {
    fail(p, MLXR_ERR_INVALID, "unexpected '%c' in rule '%s'", *s, p->names[id]);
    return NULL;
  }
  return skip_space(p, s, true);
}

/* ---- checks after parsing ---- */

/* Is the alternative starting at e[i] all nullable refs (so the rule can derive empty)? */
static bool compute_nullable(const parser *p, bool *nullable) {
  bool changed = true;
  while (changed) {
    changed = false;
    for (uint32_t r = 0; r < p->n_syms; r++) {
      if (nullable[r]) continue;
      const mlxr_gelem *e = p->rules[r].e;
      bool alt_ok = true;
      for (uint32_t i = 0;; i++) {
        if (e[i].type == MLXR_GT_END || e[i].type == MLXR_GT_ALT) {
          if (alt_ok) {
            nullable[r] = true;
            changed = true;
            break;
          }
          if (e[i].type == MLXR_GT_END) break;
          alt_ok = true;
        } else if (e[i].type != MLXR_GT_RULE_REF || !nullable[e[i].value]) {
          alt_ok = false;
        }
      }
    }
  }
  return true;
}

/* DFS over "rule r can start with rule q" edges; a back edge is left recursion. */
static bool left_recursive(const parser *p, uint32_t r, uint8_t *color, const bool *nullable) {
  color[r] = 1;
  const mlxr_gelem *e = p->rules[r].e;
  bool at_start = true;
  for (uint32_t i = 0;; i++) {
    if (e[i].type == MLXR_GT_END) break;
    if (e[i].type == MLXR_GT_ALT) {
      at_start = true;
      continue;
    }
    if (!at_start) continue;
    if (e[i].type == MLXR_GT_RULE_REF) {
      uint32_t q = e[i].value;
      if (color[q] == 1) return true;
      if (color[q] == 0 && left_recursive(p, q, color, nullable)) return true;
      at_start = nullable[q];
    } else {
      at_start = false;
    }
  }
  color[r] = 2;
  return false;
}

static void parser_free(parser *p) {
  for (uint32_t i = 0; i < p->n_syms; i++) {
    free(p->names[i]);
    free(p->rules[i].e);
  }
  free(p->names);
  free(p->rules);
  free(p->defined);
  free(p->index);
}

int mlxr_grammar_parse(const char *text, size_t len, const char *root, mlxr_grammar **out,
                       char *err, size_t err_len) {
  *out = NULL;
  if (!root) root = "root";
  parser p = {.end = text + len, .rc = MLXR_OK, .err = err, .err_len = err_len};
  const char *s = skip_space(&p, text, true);
  while (s && s < p.end) s = parse_rule(&p, s);
  if (p.rc == MLXR_OK) {
    for (uint32_t i = 0; i < p.n_syms; i++) {
      if (!p.defined[i]) {
        fail(&p, MLXR_ERR_INVALID, "rule '%s' is used but not defined", p.names[i]);
        break;
      }
    }
  }
  uint32_t root_id = UINT32_MAX;
  if (p.rc == MLXR_OK) {
    for (uint32_t i = 0; i < p.n_syms; i++) {
      if (strcmp(p.names[i], root) == 0) root_id = i;
    }
    if (root_id == UINT32_MAX) fail(&p, MLXR_ERR_INVALID, "the grammar has no rule '%s'", root);
  }
  if (p.rc == MLXR_OK) {
    bool *nullable = calloc(p.n_syms, sizeof(bool));
    uint8_t *color = calloc(p.n_syms, 1);
    if (!nullable || !color) {
      fail(&p, MLXR_ERR_NOMEM, "out of memory");
    } else {
      compute_nullable(&p, nullable);
      for (uint32_t r = 0; r < p.n_syms && p.rc == MLXR_OK; r++) {
        if (color[r] == 0 && left_recursive(&p, r, color, nullable)) {
          fail(&p, MLXR_ERR_INVALID, "the grammar is left-recursive (through rule '%s')", p.names[r]);
        }
      }
    }
    free(nullable);
    free(color);
  }
  mlxr_grammar *g = NULL;
  if (p.rc == MLXR_OK) {
    uint64_t total = 0;
    for (uint32_t i = 0; i < p.n_syms; i++) total += p.rules[i].n;
    g = calloc(1, sizeof(*g));
    if (g && total < MAX_ELEMS) {
      g->elems = malloc((size_t)total * sizeof(*g->elems));
      g->rule_start = malloc((size_t)p.n_syms * sizeof(*g->rule_start));
    }
    if (!g || !g->elems || !g->rule_start) {
      if (g) {
        free(g->elems);
        free(g->rule_start);
        free(g);
        g = NULL;
      }
      fail(&p, total >= MAX_ELEMS ? MLXR_ERR_RANGE : MLXR_ERR_NOMEM, "grammar too large or out of memory");
    } else {
      uint32_t at = 0;
      for (uint32_t i = 0; i < p.n_syms; i++) {
        g->rule_start[i] = at;
        memcpy(g->elems + at, p.rules[i].e, p.rules[i].n * sizeof(mlxr_gelem));
        at += p.rules[i].n;
      }
      g->n_elems = at;
      g->n_rules = p.n_syms;
      g->root = root_id;
    }
  }
  parser_free(&p);
  if (p.rc != MLXR_OK) return p.rc;
  *out = g;
  return MLXR_OK;
}

void mlxr_grammar_free(mlxr_grammar *g) {
  if (!g) return;
  free(g->elems);
  free(g->rule_start);
  free(g);
}

int32_t mlxr_grammar_n_rules(const mlxr_grammar *g) { return (int32_t)g->n_rules; }
