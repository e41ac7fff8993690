/*
 * json_schema_regex.c: `pattern` (an ECMA-262 regular expression) -> a GBNF rule over the JSON
 * text of a string.
 *
 * A recursive-descent parser over the pattern's code points writes the GBNF expression as it
 * goes (no syntax tree): alternation -> " | ", groups ( ), (?: ), (?<name> ) -> ( ), quantifiers
 * * + ? {n} {n,} {n,m} (lazy ones too: same language) -> the same GBNF operators on the atom in
 * parentheses, '{' that starts no quantifier is a literal (Annex B). Atoms are code-point sets
 * (a literal, '.', \d \w \s and their negations, [classes] with ranges, negation and escapes,
 * \t \n \r \f \v \0 \xHH \uHHHH \cX, escaped syntax characters), kept as sorted range lists and
 * written as the JSON spelling of their members: raw characters as a [class] (surrogates are
 * never raw in UTF-8; '"' and '\' never raw), '"' as \", '\' as \\, control characters as
 * JSON.stringify writes them (\b \t \n \f \r, else \u00xx, hex digits of either case).
 *
 * In generation mode an unbounded repetition (* + {n,}) allows at most 64 more repeats, so a model
 * cannot write digits or letters forever (a narrowing).
 *
 * JSON Schema patterns are not anchored: each top-level alternative gets "any characters" before
 * it unless it starts with ^ and after it unless it ends with $. What a grammar cannot do
 * (lookahead/lookbehind, backreferences, \b \B, ^ or $ inside, \p{..}, bounds above 2000) makes
 * js_gen_pattern report `unsupported` so the caller can leave the pattern to the validator.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/json_schema_impl.h"

#define MAX_RANGES 512
#define MAX_CP 0x10FFFFu

typedef struct cpset {
  uint32_t lo[MAX_RANGES], hi[MAX_RANGES];
  int n;
  bool overflow;
} cpset;

typedef struct rx {
  const uint32_t *cp; /* [n] the pattern's code points */
  size_t n, i;
  bool unsupported;   /* a construct we do not translate */
  bool bad;           /* a syntax error */
  int depth;
  int cap;            /* > 0 (generation mode): unbounded repetitions take at most cap more */
} rx;

static void set_add(cpset *s, uint32_t lo, uint32_t hi) {
  if (s->n == MAX_RANGES) {
    s->overflow = true;
    return;
  }
  s->lo[s->n] = lo;
  s->hi[s->n] = hi;
  s->n++;
}

static void set_normalize(cpset *s) {
  for (int a = 1; a < s->n; a++) { /* insertion sort: sets are small */
    uint32_t l = s->lo[a], h = s->hi[a];
    int b = a - 1;
    while (b >= 0 && s->lo[b] > l) {
      s->lo[b + 1] = s->lo[b];
      s->hi[b + 1] = s->hi[b];
      b--;
    }
    s->lo[b + 1] = l;
    s->hi[b + 1] = h;
  }
  int m = 0;
  for (int a = 0; a < s->n; a++) {
    if (m > 0 && s->lo[a] <= s->hi[m - 1] + 1) {
      if (s->hi[a] > s->hi[m - 1]) s->hi[m - 1] = s->hi[a];
    } else {
      s->lo[m] = s->lo[a];
      s->hi[m] = s->hi[a];
      m++;
    }
  }
  s->n = m;
}

static void set_complement(cpset *s) {
  set_normalize(s);
  cpset t = {.n = 0};
  uint32_t next = 0;
  for (int a = 0; a < s->n; a++) {
    if (s->lo[a] > next) set_add(&t, next, s->lo[a] - 1);
    next = s->hi[a] + 1;
  }
  if (next <= MAX_CP) set_add(&t, next, MAX_CP);
  *s = t;
}

static void set_union(cpset *s, const cpset *t) {
  for (int a = 0; a < t->n; a++) set_add(s, t->lo[a], t->hi[a]);
}

static bool set_has(const cpset *s, uint32_t cp) {
  for (int a = 0; a < s->n; a++) {
    if (cp >= s->lo[a] && cp <= s->hi[a]) return true;
  }
  return false;
}

static void class_digit(cpset *s) { set_add(s, '0', '9'); }
static void class_word(cpset *s) {
  set_add(s, '0', '9');
  set_add(s, 'A', 'Z');
  set_add(s, '_', '_');
  set_add(s, 'a', 'z');
}
static void class_space(cpset *s) {
  static const uint32_t sp[][2] = {{9, 13},         {32, 32},         {0xA0, 0xA0},     {0x1680, 0x1680},
                                   {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                                   {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
  for (size_t k = 0; k < sizeof sp / sizeof sp[0]; k++) set_add(s, sp[k][0], sp[k][1]);
}

/* The JSON spellings of the members of s (normalized) as a GBNF expression "( ... )". */
static void emit_set(js_sbuf *o, cpset *s) {
  set_normalize(s);
  js_sb_str(o, "( ");
  bool sep = false;
  /* raw: >= 0x20, not '"' or '\\', not surrogates */
  cpset raw = {.n = 0};
  for (int a = 0; a < s->n; a++) {
    uint32_t lo = s->lo[a] < 0x20 ? 0x20 : s->lo[a], hi = s->hi[a];
    if (lo > hi) continue;
    /* cut out '"', '\\' and D800-DFFF */
    const uint32_t cuts[][2] = {{'"', '"'}, {'\\', '\\'}, {0xD800, 0xDFFF}};
    uint32_t l = lo;
    for (size_t k = 0; k < 3 && l <= hi; k++) {
      if (cuts[k][1] < l || cuts[k][0] > hi) continue;
      if (cuts[k][0] > l) set_add(&raw, l, cuts[k][0] - 1);
      l = cuts[k][1] + 1;
    }
    if (l <= hi && l != 0) set_add(&raw, l, hi);
  }
  if (raw.n) {
    js_sb_str(o, "[");
    for (int a = 0; a < raw.n; a++) {
      js_sb_cp(o, raw.lo[a]);
      if (raw.hi[a] != raw.lo[a]) {
        js_sb_str(o, "-");
        js_sb_cp(o, raw.hi[a]);
      }
    }
    js_sb_str(o, "]");
    sep = true;
  }
  if (set_has(s, '"')) {
    js_sb_str(o, sep ? " | \"\\\\\\\"\"" : "\"\\\\\\\"\"");
    sep = true;
  }
  if (set_has(s, '\\')) {
    js_sb_str(o, sep ? " | \"\\\\\\\\\"" : "\"\\\\\\\\\"");
    sep = true;
  }
  for (uint32_t cp = 0; cp < 0x20; cp++) {
    if (!set_has(s, cp)) continue;
    if (sep) js_sb_str(o, " | ");
    js_sb_json_char(o, cp);
    sep = true;
  }
  if (!sep) js_sb_str(o, "[^\\x00-\\U0010FFFF]"); /* the empty set */
  js_sb_str(o, " )");
}

static bool at_end(const rx *r) { return r->i >= r->n; }
static uint32_t peek(const rx *r) { return r->i < r->n ? r->cp[r->i] : 0; }

static int hexv(uint32_t c) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
  return -1;
}

static bool read_hex(rx *r, int n, uint32_t *out) {
  uint32_t v = 0;
  for (int k = 0; k < n; k++) {
    int h = at_end(r) ? -1 : hexv(peek(r));
    if (h < 0) return false;
    v = v * 16 + (uint32_t)h;
    r->i++;
  }
  *out = v;
  return true;
}

/* An escape after '\\' into set s (a class escape or one character). in_class: inside [...]. */
static void parse_escape(rx *r, cpset *s, bool in_class) {
  if (at_end(r)) {
    r->bad = true;
    return;
  }
  const uint32_t c = r->cp[r->i++];
  cpset t = {.n = 0};
  switch (c) {
  case 'd': class_digit(s); return;
  case 'D': class_digit(&t); set_complement(&t); set_union(s, &t); return;
  case 'w': class_word(s); return;
  case 'W': class_word(&t); set_complement(&t); set_union(s, &t); return;
  case 's': class_space(s); return;
  case 'S': class_space(&t); set_complement(&t); set_union(s, &t); return;
  case 't': set_add(s, 9, 9); return;
  case 'n': set_add(s, 10, 10); return;
  case 'v': set_add(s, 11, 11); return;
  case 'f': set_add(s, 12, 12); return;
  case 'r': set_add(s, 13, 13); return;
  case '0':
    if (!at_end(r) && peek(r) >= '0' && peek(r) <= '9') r->unsupported = true; /* octal */
    set_add(s, 0, 0);
    return;
  case 'b':
    if (in_class) set_add(s, 8, 8);
    else r->unsupported = true; /* word boundary */
    return;
  case 'B': r->unsupported = true; return;
  case 'c':
    if (!at_end(r) && ((peek(r) | 0x20) >= 'a' && (peek(r) | 0x20) <= 'z')) {
      uint32_t v = r->cp[r->i++] % 32;
      set_add(s, v, v);
    } else {
      set_add(s, '\\', '\\');
      set_add(s, 'c', 'c');
      r->unsupported = true;
    }
    return;
  case 'x': {
    uint32_t v;
    if (read_hex(r, 2, &v)) set_add(s, v, v);
    else set_add(s, 'x', 'x');
    return;
  }
  case 'u': {
    uint32_t v;
    const size_t save = r->i;
    if (read_hex(r, 4, &v)) {
      if (v >= 0xD800 && v <= 0xDBFF && r->i + 6 <= r->n && r->cp[r->i] == '\\' && r->cp[r->i + 1] == 'u') {
        const size_t s2 = r->i;
        r->i += 2;
        uint32_t lo;
        if (read_hex(r, 4, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        else r->i = s2;
      }
      set_add(s, v, v);
    } else {
      r->i = save;
      set_add(s, 'u', 'u');
    }
    return;
  }
  case 'p': case 'P': case 'k': r->unsupported = true; return;
  default:
    if (c >= '1' && c <= '9') {
      r->unsupported = true; /* backreference */
      return;
    }
    set_add(s, c, c); /* identity escape */
  }
}

/* [ ... ] after the '['. */
static void parse_class(rx *r, cpset *s) {
  bool neg = false;
  if (!at_end(r) && peek(r) == '^') {
    neg = true;
    r->i++;
  }
  cpset t = {.n = 0};
  bool first = true;
  while (!at_end(r) && (peek(r) != ']')) {
    first = false;
    cpset a = {.n = 0};
    uint32_t c = r->cp[r->i++];
    bool single = true;
    uint32_t lo = c;
    if (c == '\\') {
      parse_escape(r, &a, true);
      single = a.n == 1 && a.lo[0] == a.hi[0];
      lo = single ? a.lo[0] : 0;
    }
    if (single && r->i + 1 < r->n && peek(r) == '-' && r->cp[r->i + 1] != ']') {
      r->i++;
      uint32_t c2 = r->cp[r->i++], hi = c2;
      if (c2 == '\\') {
        cpset b = {.n = 0};
        parse_escape(r, &b, true);
        if (!(b.n == 1 && b.lo[0] == b.hi[0])) {
          r->unsupported = true; /* [a-\d]: ECMA Annex B oddity */
          return;
        }
        hi = b.lo[0];
      }
      if (hi < lo) {
        r->bad = true;
        return;
      }
      set_add(&t, lo, hi);
    } else if (c == '\\') {
      set_union(&t, &a);
    } else {
      set_add(&t, c, c);
    }
  }
  (void)first;
  if (at_end(r)) {
    r->bad = true;
    return;
  }
  r->i++; /* ']' */
  if (neg) set_complement(&t);
  set_union(s, &t);
}

static void parse_alt(rx *r, js_sbuf *o);

/* A quantifier at r->i? Sets m, n (n < 0: unbounded) and consumes it. */
static bool parse_quant(rx *r, long *m, long *n) {
  if (at_end(r)) return false;
  const uint32_t c = peek(r);
  if (c == '*' || c == '+' || c == '?') {
    r->i++;
    *m = c == '+' ? 1 : 0;
    *n = c == '?' ? 1 : -1;
  } else if (c == '{') {
    size_t k = r->i + 1;
    long a = 0, b = -1;
    bool digits = false;
    while (k < r->n && r->cp[k] >= '0' && r->cp[k] <= '9') {
      a = a * 10 + (long)(r->cp[k] - '0');
      if (a > 1000000) a = 1000000;
      k++;
      digits = true;
    }
    if (!digits) return false;
    if (k < r->n && r->cp[k] == ',') {
      k++;
      if (k < r->n && r->cp[k] >= '0' && r->cp[k] <= '9') {
        b = 0;
        while (k < r->n && r->cp[k] >= '0' && r->cp[k] <= '9') {
          b = b * 10 + (long)(r->cp[k] - '0');
          if (b > 1000000) b = 1000000;
          k++;
        }
      }
    } else {
      b = a;
    }
    if (k >= r->n || r->cp[k] != '}') return false;
    r->i = k + 1;
    *m = a;
    *n = b;
    if (b >= 0 && b < a) r->bad = true;
    if (a > JS_MAX_REPEAT || b > JS_MAX_REPEAT) r->unsupported = true;
  } else {
    return false;
  }
  if (!at_end(r) && peek(r) == '?') r->i++; /* lazy */
  return true;
}

/* One term (atom and quantifier); false at the end of an alternative. */
static bool parse_term(rx *r, js_sbuf *o) {
  if (at_end(r) || r->bad || r->unsupported) return false;
  const uint32_t c = peek(r);
  if (c == '|' || c == ')') return false;
  js_sbuf atom = {0};
  if (c == '$' && r->depth == 0 && (r->i + 1 == r->n || r->cp[r->i + 1] == '|')) return false; /* the top level's */
  if (c == '^' || c == '$') {
    r->unsupported = true; /* anchors inside are handled at the top level only */
    return false;
  }
  if (c == '(') {
    r->i++;
    if (!at_end(r) && peek(r) == '?') {
      r->i++;
      const uint32_t k = at_end(r) ? 0 : r->cp[r->i++];
      if (k == ':') {
      } else if (k == '<' && !at_end(r) && peek(r) != '=' && peek(r) != '!') {
        while (!at_end(r) && peek(r) != '>') r->i++;
        if (at_end(r)) r->bad = true;
        else r->i++;
      } else {
        r->unsupported = true; /* lookaround, flags */
        return false;
      }
    }
    if (++r->depth > 64) {
      r->unsupported = true;
      return false;
    }
    js_sb_str(&atom, "( ");
    parse_alt(r, &atom);
    js_sb_str(&atom, " )");
    r->depth--;
    if (at_end(r) || peek(r) != ')') {
      r->bad = true;
      free(atom.p);
      return false;
    }
    r->i++;
  } else if (c == '*' || c == '+' || c == '?') {
    r->bad = true; /* nothing to repeat */
    return false;
  } else {
    cpset s = {.n = 0};
    r->i++;
    if (c == '.') {
      set_add(&s, 10, 10);
      set_add(&s, 13, 13);
      set_add(&s, 0x2028, 0x2029);
      set_complement(&s);
    } else if (c == '[') {
      parse_class(r, &s);
    } else if (c == '\\') {
      parse_escape(r, &s, false);
    } else if (c == '{') {
      long m, n;
      r->i--;
      if (parse_quant(r, &m, &n)) {
        r->bad = true; /* a quantifier with nothing before it */
        return false;
      }
      r->i++;
      set_add(&s, '{', '{');
    } else {
      set_add(&s, c, c);
    }
    if (s.overflow) r->unsupported = true;
    if (r->bad || r->unsupported) return false;
    emit_set(&atom, &s);
  }
  long m, n;
  if (parse_quant(r, &m, &n)) {
    if (r->bad || r->unsupported) {
      free(atom.p);
      return false;
    }
    js_sb_str(o, "( ");
    js_sb_add(o, atom.p ? atom.p : "", atom.n);
    if (n < 0 && r->cap > 0) n = m + r->cap; /* generation: a model must not repeat forever */
    if (m == 0 && n < 0) js_sb_str(o, " )* ");
    else if (m == 1 && n < 0) js_sb_str(o, " )+ ");
    else if (m == 0 && n == 1) js_sb_str(o, " )? ");
    else if (n < 0) js_sb_fmt(o, " ){%ld,} ", m);
    else if (n == 0) js_sb_str(o, " ){0,0} ");
    else js_sb_fmt(o, " ){%ld,%ld} ", m, n);
  } else {
    js_sb_add(o, atom.p ? atom.p : "", atom.n);
    js_sb_str(o, " ");
  }
  free(atom.p);
  return true;
}

static void parse_seq(rx *r, js_sbuf *o) {
  js_sb_str(o, "\"\" ");
  while (parse_term(r, o)) {
  }
}

static void parse_alt(rx *r, js_sbuf *o) {
  parse_seq(r, o);
  while (!at_end(r) && peek(r) == '|' && !r->bad && !r->unsupported) {
    r->i++;
    js_sb_str(o, "| ");
    parse_seq(r, o);
  }
}

/* UTF-8 -> code points; false on invalid UTF-8. */
static bool decode(const char *s, uint32_t *out, size_t *n) {
  size_t k = 0;
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    uint32_t c = *p;
    int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (extra < 0) return false;
    if (extra) c &= (0x3F >> extra);
    p++;
    for (int e = 0; e < extra; e++) {
      if ((*p & 0xC0) != 0x80) return false;
      c = (c << 6) | (*p & 0x3F);
      p++;
    }
    out[k++] = c;
  }
  *n = k;
  return true;
}

int js_gen_pattern(js_conv *c, const char *re, bool *unsupported) {
  *unsupported = false;
  const size_t len = strlen(re);
  uint32_t *cps = malloc((len + 1) * sizeof(uint32_t));
  if (!cps) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  size_t n = 0;
  if (!decode(re, cps, &n)) {
    free(cps);
    return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'pattern' is not valid UTF-8");
  }
  rx r = {.cp = cps, .n = n, .cap = c->spec ? 0 : 64};
  js_sbuf body = {0};
  /* top-level alternatives, each with its own anchors */
  bool first = true;
  while (!r.bad && !r.unsupported) {
    bool start = false, end = false;
    if (!at_end(&r) && peek(&r) == '^') {
      start = true;
      r.i++;
    }
    js_sbuf alt = {0};
    parse_seq(&r, &alt);
    if (!at_end(&r) && peek(&r) == '$') {
      r.i++;
      end = true;
    }
    if (!first) js_sb_str(&body, " | ");
    first = false;
    js_sb_str(&body, "( ");
    if (!start) js_sb_str(&body, "char* ");
    js_sb_add(&body, alt.p ? alt.p : "", alt.n);
    if (!end) js_sb_str(&body, "char* ");
    js_sb_str(&body, ")");
    free(alt.p);
    if (at_end(&r)) break;
    if (peek(&r) == '|') {
      r.i++;
      continue;
    }
    if (peek(&r) == ')') r.bad = true; /* unbalanced */
    else r.unsupported = true;         /* ^ or $ in the middle */
  }
  free(cps);
  if (r.bad) {
    free(body.p);
    return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'pattern' %.100s is not a valid regular expression", re);
  }
  if (r.unsupported) {
    free(body.p);
    *unsupported = true;
    return -1;
  }
  if (body.oom) {
    free(body.p);
    return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  int rule = js_begin_rule(c);
  js_sb_str(&c->out, "\"\\\"\" ( ");
  js_sb_add(&c->out, body.p, body.n);
  js_sb_str(&c->out, " ) \"\\\"\"\n");
  free(body.p);
  return rule;
}
