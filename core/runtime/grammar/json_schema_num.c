/*
 * json_schema_num.c: numeric keywords as grammar rules: minimum, maximum, exclusiveMinimum and
 * exclusiveMaximum (draft-4 booleans beside minimum/maximum, or numbers), multipleOf.
 *
 * Bounds of any magnitude are exact. A bound is read from the schema as a double (as every JSON
 * Schema validator does) and turned into the shortest decimal that reads back as that double;
 * from then on everything is decimal strings (a sign, integer digits without leading zeros,
 * fraction digits without trailing zeros), so 9007199254740991 or 1e300 need no big-number
 * library. Comparing decimal text is monotone with reading it as a double, so the grammar never
 * accepts a number that a double-based validator refuses.
 *
 * Integers: [lo, hi] splits into a negative part "-" [max(1, -hi), -lo] and a non-negative part
 * [max(0, lo), hi]; a range of non-negative integers is a union over digit counts; a range of
 * digit strings of one length a..b is the classic digit-range recursion:
 *     same first digit:   d (range of the rest)
 *     else:               a0 (rest of a .. 99..9) | [a0+1 - b0-1] [0-9]{n-1} | b0 (00..0 .. rest of b)
 * Numbers (decimals): per sign, the integer part is either the bound's own integer part, then
 * the fraction is compared digit by digit with the bound's fraction (frac_rule: a digit above
 * the lower bound's digit frees the rest, an equal one continues the comparison), or an integer
 * strictly between the two bounds' integer parts, then any fraction. Bounded numbers are written
 * without exponents (a narrowing: generation never needs 1e2 for 100).
 * multipleOf: an integer k on integers is a remainder automaton (one rule per remainder, digits
 * grouped by the remainder they lead to); with bounds, the multiples are enumerated when there
 * are few, or the digit count is narrowed to what the bounds contain; 10^-n on numbers limits the
 * fraction to n digits. Anything else (multipleOf 1.5, ...) is left to the validator (js_post).
 *
 * In generation mode (not spec_defaults) unbounded digit runs are capped at JS_GEN_DIGITS so a
 * model cannot write digits forever; the spec mode accepts any length.
 */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/json_schema_impl.h"

typedef struct js_dec {
  bool neg;
  char i[JS_MAX_DIGITS + 2]; /* integer digits, "0" for zero */
  char f[JS_MAX_DIGITS + 2]; /* fraction digits, no trailing zeros ("" for an integer) */
} js_dec;

/* The shortest decimal that reads back as v. */
static bool dec_from_double(double v, js_dec *d) {
  if (!isfinite(v)) return false;
  char buf[64];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
    if (strtod(buf, NULL) == v) break;
  }
  const char *p = buf;
  d->neg = false;
  if (*p == '-') {
    d->neg = true;
    p++;
  }
  char digs[40];
  int nd = 0;
  while (*p && *p != 'e' && nd < 38) {
    if (isdigit((unsigned char)*p)) digs[nd++] = *p;
    p++;
  }
  const long e = *p == 'e' ? strtol(p + 1, NULL, 10) : 0;
  size_t ni = 0, nf = 0;
  if (e >= 0) {
    for (long k = 0; k <= e; k++) d->i[ni++] = k < nd ? digs[k] : '0';
    for (long k = e + 1; k < nd; k++) d->f[nf++] = digs[k];
  } else {
    d->i[ni++] = '0';
    for (long k = 0; k < -e - 1; k++) d->f[nf++] = '0';
    for (int k = 0; k < nd; k++) d->f[nf++] = digs[k];
  }
  d->i[ni] = '\0';
  while (nf > 0 && d->f[nf - 1] == '0') nf--;
  d->f[nf] = '\0';
  size_t lead = 0;
  while (d->i[lead] == '0' && d->i[lead + 1]) lead++;
  memmove(d->i, d->i + lead, strlen(d->i + lead) + 1);
  if (strcmp(d->i, "0") == 0 && !d->f[0]) d->neg = false;
  return true;
}

static bool all_char(const char *s, char ch, size_t n) {
  for (size_t k = 0; k < n; k++) {
    if (s[k] != ch) return false;
  }
  return true;
}

/* Compare magnitudes (canonical digit strings). */
static int mag_cmp(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la != lb) return la < lb ? -1 : 1;
  int r = strcmp(a, b);
  return r < 0 ? -1 : r > 0;
}

static void mag_inc(char *m) {
  size_t n = strlen(m);
  for (size_t k = n; k-- > 0;) {
    if (m[k] != '9') {
      m[k]++;
      return;
    }
    m[k] = '0';
  }
  if (n + 1 > JS_MAX_DIGITS) return; /* cannot happen for a double's digits */
  memmove(m + 1, m, n + 1);
  m[0] = '1';
}

static void mag_dec(char *m) { /* m > 0 */
  size_t n = strlen(m);
  for (size_t k = n; k-- > 0;) {
    if (m[k] != '0') {
      m[k]--;
      break;
    }
    m[k] = '9';
  }
  if (m[0] == '0' && m[1]) memmove(m, m + 1, n);
}

typedef struct js_int {
  bool neg;
  char m[JS_MAX_DIGITS + 2];
} js_int;

static void int_add1(js_int *x) {
  if (!x->neg) mag_inc(x->m);
  else {
    mag_dec(x->m);
    if (strcmp(x->m, "0") == 0) x->neg = false;
  }
}

static void int_sub1(js_int *x) {
  if (x->neg) mag_inc(x->m);
  else if (strcmp(x->m, "0") == 0) {
    x->neg = true;
    strcpy(x->m, "1"); /* NOLINT: fits */
  } else mag_dec(x->m);
}

static int int_cmp(const js_int *a, const js_int *b) {
  if (a->neg != b->neg) return a->neg ? -1 : 1;
  int r = mag_cmp(a->m, b->m);
  return a->neg ? -r : r;
}

/* The smallest integer >= d (ceil) or > d (strict). */
static void int_lower(const js_dec *d, bool strict, js_int *out) {
  out->neg = d->neg;
  memcpy(out->m, d->i, strlen(d->i) + 1);
  if (d->f[0]) { /* not an integer: ceil */
    if (!d->neg) mag_inc(out->m);
    else if (strcmp(out->m, "0") == 0) out->neg = false;
  } else if (strict) int_add1(out);
}

/* The largest integer <= d (floor) or < d (strict). */
static void int_upper(const js_dec *d, bool strict, js_int *out) {
  out->neg = d->neg;
  memcpy(out->m, d->i, strlen(d->i) + 1);
  if (d->f[0]) {
    if (d->neg) mag_inc(out->m);
    else if (strcmp(out->m, "0") == 0) out->neg = false;
  } else if (strict) int_sub1(out);
}

/* ---- digit ranges ---- */

/* "any{k}": k free digits. */
static void any_run(js_sbuf *o, size_t k) {
  if (k == 1) js_sb_str(o, " [0-9]");
  else if (k > 1) js_sb_fmt(o, " [0-9]{%zu}", k);
}

/* A literal of digits s[0..k) ("" when k == 0). */
static void digits_lit(js_sbuf *o, const char *s, size_t k) {
  js_sb_str(o, "\"");
  js_sb_add(o, s, k);
  js_sb_str(o, "\"");
}

/* Digit strings of length n in [a, b] (a <= b, compared as strings); appends a flat GBNF
 * alternation (no nesting, so bounds of hundreds of digits stay within the parser's limits):
 * after the common prefix P and the first differing position p,
 *   x >= a:  a[0..i) [a_i+1 - 9] any{n-i-1}   for i > p, and a itself
 *   middle:  P [a_p+1 - b_p-1] any{n-p-1}
 *   x <= b:  b[0..i) [0 - b_i-1] any{n-i-1}   for i > p, and b itself */
static void same_len_range(js_conv *c, js_sbuf *o, const char *a, const char *b, size_t n) {
  (void)c;
  size_t p = 0;
  while (p < n && a[p] == b[p]) p++;
  if (p == n) {
    digits_lit(o, a, n);
    return;
  }
  js_sb_str(o, "( ");
  bool sep = false;
  /* a side: x_p == a_p */
  if (all_char(a + p + 1, '0', n - p - 1)) {
    /* every x with x_p == a_p is >= a: fold into the middle below */
  } else {
    for (size_t i = n; i-- > p + 1;) {
      if (a[i] == '9') continue;
      js_sb_str(o, sep ? " | " : "");
      digits_lit(o, a, i);
      js_sb_fmt(o, " [%c-9]", a[i] + 1);
      any_run(o, n - i - 1);
      sep = true;
    }
    js_sb_str(o, sep ? " | " : "");
    digits_lit(o, a, n);
    sep = true;
  }
  const char mlo = all_char(a + p + 1, '0', n - p - 1) ? a[p] : (char)(a[p] + 1);
  const char mhi = all_char(b + p + 1, '9', n - p - 1) ? b[p] : (char)(b[p] - 1);
  if (mlo <= mhi) {
    js_sb_str(o, sep ? " | " : "");
    digits_lit(o, a, p);
    js_sb_fmt(o, " [%c-%c]", mlo, mhi);
    any_run(o, n - p - 1);
    sep = true;
  }
  if (!all_char(b + p + 1, '9', n - p - 1)) {
    for (size_t i = n; i-- > p + 1;) {
      if (b[i] == '0') continue;
      js_sb_str(o, sep ? " | " : "");
      digits_lit(o, b, i);
      js_sb_fmt(o, " [0-%c]", b[i] - 1);
      any_run(o, n - i - 1);
      sep = true;
    }
    js_sb_str(o, sep ? " | " : "");
    digits_lit(o, b, n);
  }
  js_sb_str(o, " )");
}

/* Canonical non-negative integers in [a, b] (b NULL: unbounded); appends "( ... )". */
static void nonneg_range(js_conv *c, js_sbuf *o, const char *a, const char *b) {
  const size_t la = strlen(a), lb = b ? strlen(b) : la;
  char lo[JS_MAX_DIGITS + 2];
  js_sb_str(o, "( ");
  for (size_t L = la; L <= lb; L++) {
    if (L == la) memcpy(lo, a, la + 1);
    else {
      lo[0] = '1';
      memset(lo + 1, '0', L - 1);
      lo[L] = '\0';
    }
    const char *hi = (b && L == lb) ? b : c->nines;
    if (L > la) js_sb_str(o, " | ");
    same_len_range(c, o, lo, hi, L);
  }
  if (!b) {
    if (c->spec) js_sb_fmt(o, " | [1-9] [0-9]{%zu,}", la);
    else if (la + 1 <= JS_GEN_DIGITS) js_sb_fmt(o, " | [1-9] [0-9]{%zu,%d}", la, JS_GEN_DIGITS - 1);
  }
  js_sb_str(o, " )");
}

/* A rule for the integers in [lo, hi] (either may be NULL); JS_EMPTY if there are none. */
static int int_range_rule(js_conv *c, const js_int *lo, const js_int *hi) {
  if (lo && hi && int_cmp(lo, hi) > 0) return JS_EMPTY;
  const bool neg_part = !lo || lo->neg;
  const bool pos_part = !hi || !hi->neg;
  int r = js_begin_rule(c);
  if (neg_part) {
    js_sb_str(&c->out, "\"-\" ");
    nonneg_range(c, &c->out, hi && hi->neg ? hi->m : "1", lo ? lo->m : NULL);
  }
  if (pos_part) {
    if (neg_part) js_sb_str(&c->out, " | ");
    nonneg_range(c, &c->out, lo && !lo->neg ? lo->m : "0", hi ? hi->m : NULL);
  }
  js_sb_str(&c->out, "\n");
  return r;
}

/* ---- bounds from the schema ---- */

typedef struct bounds {
  bool has_lo, has_hi;
  js_dec lo, hi;
  bool lo_strict, hi_strict;
} bounds;

static bool read_bounds(js_conv *c, const cJSON *s, bounds *b) {
  memset(b, 0, sizeof(*b));
  const cJSON *mn = cJSON_GetObjectItemCaseSensitive(s, "minimum");
  const cJSON *mx = cJSON_GetObjectItemCaseSensitive(s, "maximum");
  const cJSON *emn = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMinimum");
  const cJSON *emx = cJSON_GetObjectItemCaseSensitive(s, "exclusiveMaximum");
  const cJSON *keys[4] = {mn, mx, emn, emx};
  const char *names[4] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
  for (int k = 0; k < 4; k++) {
    if (!keys[k]) continue;
    if (k >= 2 && cJSON_IsBool(keys[k])) continue;
    if (!cJSON_IsNumber(keys[k]) || !isfinite(keys[k]->valuedouble)) {
      js_fail(c, MLXR_ERR_INVALID, "JSON schema: '%s' must be a number", names[k]);
      return false;
    }
  }
  if (mn) {
    b->has_lo = dec_from_double(mn->valuedouble, &b->lo);
    b->lo_strict = cJSON_IsTrue(emn);
  }
  if (emn && cJSON_IsNumber(emn)) {
    js_dec d;
    dec_from_double(emn->valuedouble, &d);
    /* the tighter of minimum and exclusiveMinimum */
    if (!b->has_lo || emn->valuedouble >= mn->valuedouble) {
      b->lo = d;
      b->has_lo = true;
      b->lo_strict = true;
    }
  }
  if (mx) {
    b->has_hi = dec_from_double(mx->valuedouble, &b->hi);
    b->hi_strict = cJSON_IsTrue(emx);
  }
  if (emx && cJSON_IsNumber(emx)) {
    js_dec d;
    dec_from_double(emx->valuedouble, &d);
    if (!b->has_hi || emx->valuedouble <= mx->valuedouble) {
      b->hi = d;
      b->has_hi = true;
      b->hi_strict = true;
    }
  }
  return true;
}

bool js_has_numeric_keywords(const cJSON *s) {
  static const char *const kw[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"};
  for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++) {
    if (cJSON_GetObjectItemCaseSensitive(s, kw[k])) return true;
  }
  return false;
}

/* ---- multipleOf on integers ---- */

/* Largest k given a remainder automaton (k rules, up to 10 alternatives each); beyond it the
 * grammar would run to megabytes (fuzz_json_schema: multipleOf 700000 took minutes), and
 * multipleOf is left to the validator instead. */
#define JS_MOD_MAX 1000

/* The digits that lead from remainder r to each next remainder, ascending by that remainder:
 * to[i] gets the remainder, cls[i] the digit class ("037"); returns the number of groups (<= 10). */
static int mod_moves(long k, long r, long to[10], char cls[10][11]) {
  int n = 0;
  for (int d = 0; d <= 9; d++) {
    const long t = (10 * r + d) % k;
    int i = 0;
    while (i < n && to[i] != t) i++;
    if (i == n) {
      int j = n++;
      while (j > 0 && to[j - 1] > t) { /* keep ascending order */
        to[j] = to[j - 1];
        memcpy(cls[j], cls[j - 1], sizeof cls[j]);
        j--;
      }
      to[j] = t;
      cls[j][0] = '\0';
      i = j;
    }
    const size_t len = strlen(cls[i]);
    cls[i][len] = (char)('0' + d);
    cls[i][len + 1] = '\0';
  }
  return n;
}

/* Remainder automaton for multiples of k with at most max_digits digits (0: any). Writes the
 * rules and returns the rule of a canonical multiple (sign included unless nonneg). */
static int mod_rule(js_conv *c, long k, int max_digits, bool nonneg) {
  /* per remainder r: the rule after digits with remainder r, with `left` digits still allowed */
  const int layers = max_digits > 0 ? max_digits : 1;
  int *rule = malloc((size_t)k * (size_t)layers * sizeof(int));
  if (!rule) return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  /* unlimited: one rule per remainder, referenced before it is written */
  if (max_digits <= 0) {
    for (long r = 0; r < k; r++) rule[r] = js_new_rule(c);
    for (long r = 0; r < k; r++) {
      js_sb_fmt(&c->out, "r%d ::= ", rule[r]);
      bool sep = false;
      if (r == 0) {
        js_sb_str(&c->out, "\"\"");
        sep = true;
      }
      long to[10];
      char cls[10][11];
      const int n_moves = mod_moves(k, r, to, cls);
      for (int i = 0; i < n_moves; i++) {
        js_sb_fmt(&c->out, "%s[%s] r%d", sep ? " | " : "", cls[i], rule[to[i]]);
        sep = true;
      }
      js_sb_str(&c->out, "\n");
    }
  } else {
    /* layer l: rules after which l more digits may come (l = 0..max_digits-1) */
    for (int l = 0; l < layers; l++) {
      bool prev_any = false; /* does layer l - 1 have any rule? */
      for (long t = 0; l > 0 && t < k && !prev_any; t++) prev_any = rule[(size_t)(l - 1) * (size_t)k + (size_t)t] >= 0;
      for (long r = 0; r < k; r++) {
        const size_t idx = (size_t)l * (size_t)k + (size_t)r;
        rule[idx] = -1;
        long to[10];
        char cls[10][11];
        const int n_moves = l > 0 ? mod_moves(k, r, to, cls) : 0;
        if (r != 0 && !prev_any) continue; /* nothing after this layer: only the empty end */
        int id = js_begin_rule(c);
        bool sep = false;
        if (r == 0) {
          js_sb_str(&c->out, "\"\"");
          sep = true;
        }
        for (int i = 0; i < n_moves; i++) {
          const int next = rule[(size_t)(l - 1) * (size_t)k + (size_t)to[i]];
          if (next < 0) continue;
          js_sb_fmt(&c->out, "%s[%s] r%d", sep ? " | " : "", cls[i], next);
          sep = true;
        }
        if (!sep) js_sb_str(&c->out, "[^\\x00-\\U0010FFFF]"); /* cannot happen: r == 0 or a next */
        js_sb_str(&c->out, "\n");
        rule[idx] = id;
      }
    }
  }
  int top = js_begin_rule(c);
  js_sb_str(&c->out, nonneg ? "\"0\" | ( " : "\"0\" | \"-\"? ( ");
  bool sep = false;
  for (int d = 1; d <= 9; d++) {
    const long r = d % k;
    const int next = max_digits <= 0 ? rule[r] : rule[(size_t)(layers - 1) * (size_t)k + (size_t)r];
    if (next < 0) continue;
    js_sb_fmt(&c->out, "%s\"%d\" r%d", sep ? " | " : "", d, next);
    sep = true;
  }
  if (!sep) js_sb_str(&c->out, "\"0\"");
  js_sb_str(&c->out, " )\n");
  free(rule);
  return top;
}

static bool int_to_ll(const js_int *x, long long *out) {
  if (strlen(x->m) > 17) return false;
  long long v = strtoll(x->m, NULL, 10);
  *out = x->neg ? -v : v;
  return true;
}

int js_gen_integer(js_conv *c, const cJSON *s) {
  bounds b;
  if (!read_bounds(c, s, &b)) return -1;
  js_int lo, hi;
  if (b.has_lo) int_lower(&b.lo, b.lo_strict, &lo);
  if (b.has_hi) int_upper(&b.hi, b.hi_strict, &hi);
  const cJSON *mo = cJSON_GetObjectItemCaseSensitive(s, "multipleOf");
  if (mo && (!cJSON_IsNumber(mo) || !(mo->valuedouble > 0))) {
    return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'multipleOf' must be a number above 0");
  }
  long k = 0;
  if (mo) {
    const double v = mo->valuedouble;
    if (v == floor(v) && v <= 1e6) k = (long)v;
    else if (v < 1 && fabs(1.0 / v - floor(1.0 / v + 0.5)) < 1e-9) k = 1; /* 0.5, 0.01: every integer */
    else js_post(c, "multipleOf");
  }
  if (k > 1) {
    if (!b.has_lo && !b.has_hi && k > JS_MOD_MAX) {
      js_post(c, "multipleOf");
      return P_INTEGER;
    }
    if (!b.has_lo && !b.has_hi) {
      /* generation: at most 15 digits, so the value stays exact in a double (2^53) */
      int md = c->spec || (k * 15 > 4000) ? 0 : 15;
      return mod_rule(c, k, md, false);
    }
    long long l = 0, h = 0;
    const bool small = b.has_lo && b.has_hi && int_to_ll(&lo, &l) && int_to_ll(&hi, &h);
    if (small && (h < l || (h - l) / k <= 256)) { /* enumerate the multiples */
      long long first = l % k == 0 ? l : (l > 0 ? l + (k - l % k) : l - l % k);
      if (first > h || h < l) return JS_EMPTY;
      int r = js_begin_rule(c);
      for (long long v = first; v <= h; v += k) js_sb_fmt(&c->out, "%s\"%lld\"", v == first ? "" : " | ", v);
      js_sb_str(&c->out, "\n");
      return r;
    }
    /* narrowing: the multiples with at most m digits, where the bounds contain every such number */
    if (!c->spec && k <= 1000) {
      int m = 15;
      const bool lo_ok_neg = !b.has_lo || lo.neg;
      const bool lo_zero = b.has_lo && !lo.neg && strcmp(lo.m, "0") == 0;
      if (lo_ok_neg || lo_zero) {
        if (b.has_lo && lo.neg) m = (int)strlen(lo.m) - 1 < m ? (int)strlen(lo.m) - 1 : m;
        if (b.has_hi) m = (int)strlen(hi.m) - 1 < m ? (int)strlen(hi.m) - 1 : m;
        if (b.has_hi && hi.neg) m = 0;
        if (m >= 1 && k * m <= 4000) return mod_rule(c, k, m, lo_zero);
      }
    }
    js_post(c, "multipleOf");
  }
  if (!b.has_lo && !b.has_hi) return P_INTEGER;
  return int_range_rule(c, b.has_lo ? &lo : NULL, b.has_hi ? &hi : NULL);
}

/* ---- decimals ---- */

enum { LO_NONE, LO_GE, LO_GT };
enum { HI_NONE, HI_LE, HI_LT };

/* Any digits: at least `min` of them, at most cap (cap < 0: no limit); appends an expression. */
static void any_digits(js_conv *c, int min, int cap) {
  if (cap < 0) js_sb_str(&c->out, min ? "[0-9]+" : "[0-9]*");
  else if (cap == 0) js_sb_str(&c->out, "\"\"");
  else js_sb_fmt(&c->out, "[0-9]{%d,%d}", min, cap);
}

/* The digits f after the point (f may be empty unless nonempty), compared with fraction digit
 * strings A (lower bound, mode lo) and B (upper bound, mode hi) as 0.f against 0.A and 0.B; at
 * most cap digits (cap < 0: any number). Returns a rule or JS_EMPTY. */
static int frac_rule(js_conv *c, const char *A, int lo, const char *B, int hi, bool nonempty, int cap) {
  if (lo == LO_GE && !A[0]) lo = LO_NONE;
  if (hi != HI_NONE && !B[0]) { /* f <= 0 (all zeros) or f < 0 (nothing) */
    if (hi == HI_LT || lo != LO_NONE) return JS_EMPTY;
    if (nonempty && cap == 0) return JS_EMPTY;
    int r = js_begin_rule(c);
    if (cap < 0) js_sb_str(&c->out, nonempty ? "\"0\"+\n" : "\"0\"*\n");
    else js_sb_fmt(&c->out, "\"0\"{%d,%d}\n", nonempty ? 1 : 0, cap);
    return r;
  }
  if (lo == LO_GT && !A[0] && hi == HI_NONE) { /* f > 0: some digit is not 0 */
    if (cap == 0) return JS_EMPTY;
    int r = js_begin_rule(c);
    if (cap < 0) js_sb_str(&c->out, "\"0\"* [1-9] [0-9]*\n");
    else js_sb_fmt(&c->out, "\"0\"{0,%d} [1-9] [0-9]{0,%d}\n", cap - 1, cap - 1);
    return r;
  }
  if (lo == LO_NONE && hi == HI_NONE) {
    if (nonempty && cap == 0) return JS_EMPTY;
    int r = js_begin_rule(c);
    any_digits(c, nonempty ? 1 : 0, cap);
    js_sb_str(&c->out, "\n");
    return r;
  }
  const bool empty_ok = !nonempty && lo == LO_NONE; /* hi is LE, LT with B > 0, or none: 0 passes */
  if (cap == 0) {
    if (!empty_ok) return JS_EMPTY;
    int r = js_begin_rule(c);
    js_sb_str(&c->out, "\"\"\n");
    return r;
  }
  /* first digit: classify 0..9 */
  const int la = lo == LO_NONE ? -1 : (A[0] ? A[0] - '0' : 0);
  const int hb = hi == HI_NONE ? 10 : B[0] - '0';
  int sub[10];
  char free_cls[12];
  int n_free = 0;
  for (int d = 0; d <= 9; d++) {
    sub[d] = JS_EMPTY;
    const bool lo_dead = la >= 0 && d < la, hi_dead = d > hb;
    if (lo_dead || hi_dead) continue;
    const bool lo_cont = d == la, hi_cont = d == hb;
    if (!lo_cont && !hi_cont) {
      free_cls[n_free++] = (char)('0' + d);
      continue;
    }
    const char *A1 = lo_cont ? (A[0] ? A + 1 : A) : "";
    const char *B1 = hi_cont ? B + 1 : "";
    sub[d] = frac_rule(c, A1, lo_cont ? lo : LO_NONE, B1, hi_cont ? hi : HI_NONE, false, cap < 0 ? -1 : cap - 1);
    if (c->rc != MLXR_OK) return -1;
  }
  bool any = empty_ok || n_free > 0;
  for (int d = 0; d <= 9; d++) any = any || sub[d] != JS_EMPTY;
  if (!any) return JS_EMPTY;
  int r = js_begin_rule(c);
  bool sep = false;
  if (empty_ok) {
    js_sb_str(&c->out, "\"\"");
    sep = true;
  }
  if (n_free) {
    free_cls[n_free] = '\0';
    js_sb_fmt(&c->out, "%s[%s] ", sep ? " | " : "", free_cls);
    any_digits(c, 0, cap < 0 ? -1 : cap - 1);
    sep = true;
  }
  for (int d = 0; d <= 9; d++) {
    if (sub[d] == JS_EMPTY) continue;
    js_sb_fmt(&c->out, "%s\"%d\" r%d", sep ? " | " : "", d, sub[d]);
    sep = true;
  }
  js_sb_str(&c->out, "\n");
  return r;
}

/* "( "." digits )?" for a fraction compared as frac_rule says: a rule or JS_EMPTY. */
static int frac_part(js_conv *c, const char *A, int lo, const char *B, int hi, int cap) {
  if (lo == LO_GE && !A[0]) lo = LO_NONE;
  int ne = frac_rule(c, A, lo, B, hi, true, cap);
  if (ne == -1) return -1;
  const bool empty_ok = lo == LO_NONE && !(hi == HI_LT && !B[0]);
  if (ne == JS_EMPTY && !empty_ok) return JS_EMPTY;
  int r = js_begin_rule(c);
  if (ne == JS_EMPTY) js_sb_str(&c->out, "\"\"\n");
  else js_sb_fmt(&c->out, "%s\".\" r%d\n", empty_ok ? "\"\" | " : "", ne);
  return r;
}

/* Non-negative decimals x with lo <(=) x <(=) hi (hi NULL: none); appends alternatives; false if
 * there are none. lo's and hi's signs are ignored (magnitudes). */
static bool nonneg_dec(js_conv *c, js_sbuf *o, const js_dec *lo, bool lo_strict, const js_dec *hi, bool hi_strict,
                       int cap, bool *sep) {
  const int lom = lo_strict ? LO_GT : LO_GE, him = hi_strict ? HI_LT : HI_LE;
  bool any = false;
  int fr;
  if (hi && strcmp(lo->i, hi->i) == 0) {
    fr = frac_part(c, lo->f, lom, hi->f, him, cap);
    if (fr >= 0) {
      js_sb_fmt(o, "%s\"%s\" r%d", *sep ? " | " : "", lo->i, fr);
      *sep = any = true;
    }
    return any;
  }
  fr = frac_part(c, lo->f, lom, "", HI_NONE, cap);
  if (fr >= 0) {
    js_sb_fmt(o, "%s\"%s\" r%d", *sep ? " | " : "", lo->i, fr);
    *sep = any = true;
  }
  char a[JS_MAX_DIGITS + 2], b[JS_MAX_DIGITS + 2];
  memcpy(a, lo->i, strlen(lo->i) + 1);
  mag_inc(a);
  bool mid = true;
  if (hi) {
    memcpy(b, hi->i, strlen(hi->i) + 1);
    if (strcmp(b, "0") == 0) mid = false;
    else {
      mag_dec(b);
      mid = mag_cmp(a, b) <= 0;
    }
  }
  if (mid) {
    int anyf = frac_part(c, "", LO_NONE, "", HI_NONE, cap);
    js_sb_str(o, *sep ? " | " : "");
    nonneg_range(c, o, a, hi ? b : NULL);
    js_sb_fmt(o, " r%d", anyf);
    *sep = any = true;
  }
  if (hi) {
    fr = frac_part(c, "", LO_NONE, hi->f, him, cap);
    if (fr >= 0) {
      js_sb_fmt(o, "%s\"%s\" r%d", *sep ? " | " : "", hi->i, fr);
      *sep = any = true;
    }
  }
  return any;
}

int js_gen_number(js_conv *c, const cJSON *s) {
  const cJSON *mo = cJSON_GetObjectItemCaseSensitive(s, "multipleOf");
  if (mo && (!cJSON_IsNumber(mo) || !(mo->valuedouble > 0))) {
    return js_fail(c, MLXR_ERR_INVALID, "JSON schema: 'multipleOf' must be a number above 0");
  }
  int cap = c->spec ? -1 : JS_GEN_DIGITS;
  if (mo) {
    const double v = mo->valuedouble;
    if (v == floor(v)) return js_gen_integer(c, s); /* integral multiples are integers */
    js_dec d;
    dec_from_double(v, &d);
    const size_t nf = strlen(d.f);
    if (strcmp(d.i, "0") == 0 && nf >= 1 && nf <= 15 && d.f[nf - 1] == '1' && all_char(d.f, '0', nf - 1)) {
      cap = (int)nf; /* 10^-n: at most n fraction digits */
    } else {
      js_post(c, "multipleOf");
    }
  }
  bounds b;
  if (!read_bounds(c, s, &b)) return -1;
  if (!b.has_lo && !b.has_hi && cap == (c->spec ? -1 : JS_GEN_DIGITS)) return P_NUMBER;
  if (cap == JS_GEN_DIGITS) { /* generation: never fewer fraction digits than the bounds need */
    const size_t need = (b.has_lo ? strlen(b.lo.f) : 0) > (b.has_hi ? strlen(b.hi.f) : 0) ? strlen(b.lo.f) : (b.has_hi ? strlen(b.hi.f) : 0);
    if ((int)need + 1 > cap) cap = (int)need + 1;
  }
  js_dec zero = {.neg = false, .i = "0", .f = ""};
  js_sbuf body = {0};
  bool sep = false;
  /* negative part: x = -y with y in (0 or -hi, -lo] */
  if (!b.has_lo || b.lo.neg) {
    const js_dec *ylo = b.has_hi && b.hi.neg ? &b.hi : &zero;
    const bool ylo_strict = b.has_hi && b.hi.neg ? b.hi_strict : true;
    js_sbuf inner = {0};
    bool isep = false;
    if (nonneg_dec(c, &inner, ylo, ylo_strict, b.has_lo ? &b.lo : NULL, b.lo_strict, cap, &isep)) {
      js_sb_str(&body, "\"-\" ( ");
      js_sb_add(&body, inner.p, inner.n);
      js_sb_str(&body, " )");
      sep = true;
    }
    if (inner.oom) body.oom = true;
    free(inner.p);
  }
  if (!b.has_hi || !b.hi.neg) {
    const js_dec *xlo = b.has_lo && !b.lo.neg ? &b.lo : &zero;
    const bool xlo_strict = b.has_lo && !b.lo.neg ? b.lo_strict : false;
    nonneg_dec(c, &body, xlo, xlo_strict, b.has_hi ? &b.hi : NULL, b.hi_strict, cap, &sep);
  }
  if (body.oom) {
    free(body.p);
    return js_fail(c, MLXR_ERR_NOMEM, "out of memory");
  }
  if (!sep || c->rc != MLXR_OK) {
    free(body.p);
    return c->rc != MLXR_OK ? -1 : JS_EMPTY;
  }
  int r = js_begin_rule(c);
  js_sb_add(&c->out, body.p, body.n);
  js_sb_str(&c->out, "\n");
  free(body.p);
  return r;
}
