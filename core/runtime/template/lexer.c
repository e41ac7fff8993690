/*
 * lexer.c: template source -> tokens, following Jinja2 3.1's lexer (jinja2/lexer.py) with
 * trim_blocks=True and lstrip_blocks=True, byte for byte:
 *
 *   - newlines are normalized (\r\n, \r -> \n) and one trailing newline of the source is dropped
 *     (keep_trailing_newline=False);
 *   - text runs up to the first "{{", "{%" or "{#"; a "-" right after the opening delimiter strips
 *     all whitespace before it; otherwise, for "{%" and "{#" (not "{{") without "+", whitespace
 *     between the last line start and the tag is removed (lstrip_blocks) when the text since that
 *     line start is only whitespace and the line really starts there;
 *   - "%}" and "#}" eat one following newline (trim_blocks); "-%}", "-}}" and "-#}" eat all
 *     following whitespace;
 *   - {% raw %}...{% endraw %} content is text; comments produce nothing;
 *   - inside tags: whitespace, floats, integers, names, strings (Python escapes), operators; the
 *     closing delimiter is not recognized while a bracket is open.
 *
 * Tokens point into the template's arena; the token array itself is malloc'd.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/template/template_impl.h"

typedef struct lexer {
  const char *s; /* normalized source */
  size_t len;
  size_t pos;
  int line;
  bool line_starting; /* the previous match ended with a newline */
  tarena *arena;
  ttok *toks;
  size_t n, cap;
  char *err;
  size_t err_len;
} lexer;

static bool is_ws(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }

static int push(lexer *L, ttok_type type, const char *text, size_t len) {
  if (L->n == L->cap) {
    size_t nc = L->cap ? L->cap * 2 : 256;
    ttok *p = realloc(L->toks, nc * sizeof(ttok));
    if (!p) return mlxr_errf(L->err, L->err_len, MLXR_ERR_NOMEM, "out of memory");
    L->toks = p;
    L->cap = nc;
  }
  ttok *t = &L->toks[L->n++];
  memset(t, 0, sizeof(*t));
  t->type = type;
  t->line = L->line;
  if (text) {
    t->text = tarena_strdup(L->arena, text, len);
    if (!t->text) return mlxr_errf(L->err, L->err_len, MLXR_ERR_NOMEM, "out of memory");
    t->len = len;
  }
  return MLXR_OK;
}

static void count_lines(lexer *L, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\n') L->line++;
}

/* Emit text [a, b) with the strip rules for a following tag whose sign is `sign` ('-', '+' or 0). */
static int emit_text(lexer *L, size_t a, size_t b, char sign, bool lstrip_ok) {
  const char *t = L->s + a;
  size_t n = b - a;
  size_t full = n;
  if (sign == '-') {
    while (n > 0 && is_ws((unsigned char)t[n - 1])) n--;
  } else if (sign != '+' && lstrip_ok) {
    size_t lpos = 0;
    for (size_t i = n; i > 0; i--)
      if (t[i - 1] == '\n') {
        lpos = i;
        break;
      }
    if (lpos > 0 || L->line_starting) {
      bool all_ws = lpos < n;
      for (size_t i = lpos; i < n; i++)
        if (!is_ws((unsigned char)t[i])) all_ws = false;
      if (all_ws) n = lpos;
    }
  }
  int rc = MLXR_OK;
  if (n > 0) rc = push(L, T_DATA, t, n);
  count_lines(L, t, full);
  return rc;
}

/* After a closing delimiter at pos (already past it): apply '-' (all whitespace) or trim_blocks
 * (one newline). Updates line_starting. */
static void after_close(lexer *L, bool dash, bool trim) {
  size_t start = L->pos;
  if (dash) {
    while (L->pos < L->len && is_ws((unsigned char)L->s[L->pos])) L->pos++;
  } else if (trim && L->pos < L->len && L->s[L->pos] == '\n') {
    L->pos++;
  }
  count_lines(L, L->s + start, L->pos - start);
  L->line_starting = L->pos > start && L->s[L->pos - 1] == '\n';
}

static int unescape(lexer *L, const char *s, size_t n, char **out, size_t *out_len) {
  tbuf b;
  tbuf_init(&b, (size_t)-1 / 2);
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c != '\\' || i + 1 >= n) {
      tbuf_addc(&b, c);
      continue;
    }
    char e = s[++i];
    int hex = 0;
    switch (e) {
    case '\n': break;
    case '\\': tbuf_addc(&b, '\\'); break;
    case '\'': tbuf_addc(&b, '\''); break;
    case '"': tbuf_addc(&b, '"'); break;
    case 'a': tbuf_addc(&b, '\a'); break;
    case 'b': tbuf_addc(&b, '\b'); break;
    case 'f': tbuf_addc(&b, '\f'); break;
    case 'n': tbuf_addc(&b, '\n'); break;
    case 'r': tbuf_addc(&b, '\r'); break;
    case 't': tbuf_addc(&b, '\t'); break;
    case 'v': tbuf_addc(&b, '\v'); break;
    case 'x': hex = 2; break;
    case 'u': hex = 4; break;
    case 'U': hex = 8; break;
    default:
      if (e >= '0' && e <= '7') {
        uint32_t v = 0;
        int k = 0;
        while (k < 3 && i < n && s[i] >= '0' && s[i] <= '7') v = v * 8 + (uint32_t)(s[i++] - '0'), k++;
        i--;
        tv_utf8_put(&b, v);
      } else {
        tbuf_addc(&b, '\\');
        tbuf_addc(&b, e);
      }
    }
    if (hex) {
      uint32_t v = 0;
      for (int k = 0; k < hex; k++) {
        if (i + 1 >= n || !isxdigit((unsigned char)s[i + 1])) {
          tbuf_free(&b);
          return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT,
                           "template syntax error, line %d: truncated \\%c escape in string", L->line, e);
        }
        char h = s[++i];
        v = v * 16 + (uint32_t)(isdigit((unsigned char)h) ? h - '0' : (tolower((unsigned char)h) - 'a' + 10));
      }
      if (v > 0x10FFFF) {
        tbuf_free(&b);
        return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT, "template syntax error, line %d: illegal Unicode character",
                         L->line);
      }
      tv_utf8_put(&b, v);
    }
  }
  if (b.overflow) {
    tbuf_free(&b);
    return mlxr_errf(L->err, L->err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  *out = tbuf_take(&b, out_len);
  return *out ? MLXR_OK : mlxr_errf(L->err, L->err_len, MLXR_ERR_NOMEM, "out of memory");
}

static bool digits_us(const char *s, size_t len, size_t *p, int (*ok)(int)) {
  /* digit ('_'? digit)* ; at least one digit at *p */
  if (*p >= len || !ok((unsigned char)s[*p])) return false;
  (*p)++;
  for (;;) {
    if (*p < len && ok((unsigned char)s[*p])) {
      (*p)++;
    } else if (*p + 1 < len && s[*p] == '_' && ok((unsigned char)s[*p + 1])) {
      *p += 2;
    } else {
      return true;
    }
  }
}

static int isdig(int c) { return c >= '0' && c <= '9'; }

/* Number at L->pos: float per jinja's float_re, else integer_re. */
static int lex_number(lexer *L) {
  const char *s = L->s;
  size_t p = L->pos, len = L->len;
  size_t q = p;
  bool is_float = false;
  if (!(p > 0 && s[p - 1] == '.')) {
    digits_us(s, len, &q, isdig);
    size_t r = q;
    if (r + 1 < len && s[r] == '.' && isdig((unsigned char)s[r + 1])) {
      r++;
      digits_us(s, len, &r, isdig);
      is_float = true;
    }
    if (r < len && (s[r] == 'e' || s[r] == 'E')) {
      size_t t = r + 1;
      if (t < len && (s[t] == '+' || s[t] == '-')) t++;
      if (digits_us(s, len, &t, isdig)) {
        r = t;
        is_float = true;
      }
    }
    if (is_float) q = r;
  }
  char buf[128];
  size_t k = 0;
  if (is_float) {
    for (size_t i = p; i < q && k < sizeof(buf) - 1; i++)
      if (s[i] != '_') buf[k++] = s[i];
    buf[k] = 0;
    int rc = push(L, T_FLOAT, NULL, 0);
    if (rc) return rc;
    L->toks[L->n - 1].f = strtod(buf, NULL);
    L->pos = q;
    return MLXR_OK;
  }
  /* integer: 0b/0o/0x, [1-9](_?\d)*, 0(_?0)* */
  int base = 10;
  q = p;
  if (s[p] == '0' && p + 1 < len && strchr("bBoOxX", s[p + 1]) && s[p + 1]) {
    char c = (char)tolower((unsigned char)s[p + 1]);
    base = c == 'b' ? 2 : c == 'o' ? 8 : 16;
    q = p + 2;
    size_t st = q;
    while (q < len) {
      size_t t = q;
      if (s[t] == '_') t++;
      if (t >= len) break;
      int d = isdigit((unsigned char)s[t]) ? s[t] - '0'
              : isxdigit((unsigned char)s[t]) ? tolower((unsigned char)s[t]) - 'a' + 10 : 99;
      if (d >= base) break;
      q = t + 1;
    }
    if (q == st) { base = 10; q = p + 1; }
  } else if (s[p] == '0') {
    q = p + 1;
    while (q < len && (s[q] == '0' || (s[q] == '_' && q + 1 < len && s[q + 1] == '0')))
      q += s[q] == '_' ? 2 : 1;
  } else {
    digits_us(s, len, &q, isdig);
  }
  uint64_t v = 0;
  bool overflow = false;
  for (size_t i = (base == 10 ? p : p + 2); i < q; i++) {
    if (s[i] == '_') continue;
    int d = isdigit((unsigned char)s[i]) ? s[i] - '0' : tolower((unsigned char)s[i]) - 'a' + 10;
    if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) overflow = true;
    v = v * (uint64_t)base + (uint64_t)d;
  }
  if (overflow || v > INT64_MAX)
    return mlxr_errf(L->err, L->err_len, MLXR_ERR_UNSUPPORTED,
                     "template syntax error, line %d: integer literal too large", L->line);
  int rc = push(L, T_INT, NULL, 0);
  if (rc) return rc;
  L->toks[L->n - 1].i = (int64_t)v;
  L->pos = q;
  return MLXR_OK;
}

static const char *const OPS2[] = {"//", "**", "==", "!=", ">=", "<="};

/* Tokens inside {{ }} or {% %} up to the closing delimiter (close: '}' or '%'). */
static int lex_tag(lexer *L, char close) {
  char stack[256];
  int depth = 0;
  const char *s = L->s;
  for (;;) {
    if (L->pos >= L->len)
      return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT, "template syntax error, line %d: unexpected end of template, expected '%c}'",
                       L->line, close);
    char c = s[L->pos];
    if (depth == 0) {
      bool dash = c == '-' && L->pos + 2 < L->len + 0 && s[L->pos + 1] == close && s[L->pos + 2] == '}';
      bool plus = close == '%' && c == '+' && L->pos + 2 < L->len + 0 && s[L->pos + 1] == '%' && s[L->pos + 2] == '}';
      bool bare = c == close && L->pos + 1 < L->len && s[L->pos + 1] == '}';
      if (dash || plus || bare) {
        int rc = push(L, close == '%' ? T_BLOCK_END : T_VAR_END, NULL, 0);
        if (rc) return rc;
        L->pos += bare ? 2 : 3;
        after_close(L, dash, close == '%' && bare);
        return MLXR_OK;
      }
    }
    if (is_ws((unsigned char)c)) {
      if (c == '\n') L->line++;
      L->pos++;
      continue;
    }
    int rc;
    if (isdigit((unsigned char)c)) {
      rc = lex_number(L);
    } else if (isalpha((unsigned char)c) || c == '_') {
      size_t q = L->pos;
      while (q < L->len && (isalnum((unsigned char)s[q]) || s[q] == '_')) q++;
      rc = push(L, T_NAME, s + L->pos, q - L->pos);
      L->pos = q;
    } else if (c == '\'' || c == '"') {
      size_t q = L->pos + 1;
      while (q < L->len && s[q] != c) q += s[q] == '\\' ? 2 : 1;
      if (q >= L->len)
        return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT, "template syntax error, line %d: unterminated string", L->line);
      char *val;
      size_t vl;
      rc = unescape(L, s + L->pos + 1, q - L->pos - 1, &val, &vl);
      if (rc) return rc;
      rc = push(L, T_STRING, val, vl);
      free(val);
      count_lines(L, s + L->pos, q - L->pos);
      L->pos = q + 1;
    } else {
      size_t ol = 0;
      for (size_t i = 0; i < sizeof(OPS2) / sizeof(OPS2[0]); i++)
        if (L->pos + 1 < L->len && s[L->pos] == OPS2[i][0] && s[L->pos + 1] == OPS2[i][1]) ol = 2;
      if (!ol && strchr("+-/*%~[](){}><=.:|,;", c) && c) ol = 1;
      if (!ol)
        return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT, "template syntax error, line %d: unexpected char 0x%02x",
                         L->line, (unsigned char)c);
      if (ol == 1 && (c == '(' || c == '[' || c == '{')) {
        if (depth >= (int)sizeof(stack))
          return mlxr_errf(L->err, L->err_len, MLXR_ERR_RANGE, "template syntax error, line %d: brackets nested too deeply", L->line);
        stack[depth++] = c == '(' ? ')' : c == '[' ? ']' : '}';
      } else if (ol == 1 && (c == ')' || c == ']' || c == '}')) {
        if (depth == 0)
          return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT, "template syntax error, line %d: unexpected '%c'", L->line, c);
        if (stack[--depth] != c)
          return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT, "template syntax error, line %d: unexpected '%c', expected '%c'",
                           L->line, c, stack[depth]);
      }
      rc = push(L, T_OP, s + L->pos, ol);
      L->pos += ol;
    }
    if (rc) return rc;
    L->line_starting = false;
  }
}

/* Is there "{%[-+]? raw [-]?%}" at pos? Returns its end, the sign, and whether it ended with -%}. */
static bool match_kw_tag(const lexer *L, size_t pos, const char *kw, size_t *end, char *sign, bool *dash_end) {
  const char *s = L->s;
  size_t p = pos + 2;
  *sign = 0;
  if (p < L->len && (s[p] == '-' || s[p] == '+')) *sign = s[p++];
  while (p < L->len && is_ws((unsigned char)s[p])) p++;
  size_t kl = strlen(kw);
  if (p + kl > L->len || memcmp(s + p, kw, kl) != 0) return false;
  p += kl;
  while (p < L->len && is_ws((unsigned char)s[p])) p++;
  *dash_end = false;
  if (p + 2 < L->len + 0 && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') {
    *dash_end = true;
    *end = p + 3;
    return true;
  }
  if (p + 1 < L->len && s[p] == '%' && s[p + 1] == '}') {
    *end = p + 2;
    return true;
  }
  if (p + 2 < L->len && s[p] == '+' && s[p + 1] == '%' && s[p + 2] == '}') {
    *end = p + 3;
    return true;
  }
  return false;
}

static int lex_root(lexer *L) {
  const char *s = L->s;
  while (L->pos < L->len) {
    size_t t = L->pos;
    while (t + 1 < L->len && !(s[t] == '{' && (s[t + 1] == '{' || s[t + 1] == '%' || s[t + 1] == '#'))) t++;
    if (t + 1 >= L->len) {
      int rc = push(L, T_DATA, s + L->pos, L->len - L->pos);
      count_lines(L, s + L->pos, L->len - L->pos);
      L->pos = L->len;
      return rc;
    }
    char kind = s[t + 1];
    size_t end;
    char sign;
    bool dash_end;
    int rc;
    if (kind == '%' && match_kw_tag(L, t, "raw", &end, &sign, &dash_end)) {
      rc = emit_text(L, L->pos, t, sign, true);
      if (rc) return rc;
      L->pos = end;
      after_close(L, dash_end, false);
      /* find {%[-+]? endraw ... %} */
      size_t q = L->pos, e2 = 0;
      char sign2 = 0;
      bool dash2 = false;
      while (q + 1 < L->len) {
        if (s[q] == '{' && s[q + 1] == '%' && match_kw_tag(L, q, "endraw", &e2, &sign2, &dash2)) break;
        q++;
      }
      if (q + 1 >= L->len)
        return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT, "template syntax error, line %d: missing end of raw directive", L->line);
      rc = emit_text(L, L->pos, q, sign2, true);
      if (rc) return rc;
      bool plus_end = s[e2 - 3] == '+';
      L->pos = e2;
      after_close(L, dash2, !dash2 && !plus_end);
      continue;
    }
    sign = (t + 2 < L->len && (s[t + 2] == '-' || s[t + 2] == '+')) ? s[t + 2] : 0;
    rc = emit_text(L, L->pos, t, sign, kind != '{');
    if (rc) return rc;
    L->pos = t + 2 + (sign ? 1 : 0);
    L->line_starting = false;
    if (kind == '#') {
      size_t q = L->pos;
      for (; q + 1 < L->len; q++) {
        if ((s[q] == '-' || s[q] == '+') && q + 2 < L->len && s[q + 1] == '#' && s[q + 2] == '}') break;
        if (s[q] == '#' && s[q + 1] == '}') break;
      }
      if (q + 1 >= L->len)
        return mlxr_errf(L->err, L->err_len, MLXR_ERR_FORMAT, "template syntax error, line %d: missing end of comment tag", L->line);
      count_lines(L, s + L->pos, q - L->pos);
      bool dash = s[q] == '-', plus = s[q] == '+';
      L->pos = q + (dash || plus ? 3 : 2);
      after_close(L, dash, !dash && !plus);
      continue;
    }
    rc = push(L, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN, NULL, 0);
    if (rc) return rc;
    rc = lex_tag(L, kind == '{' ? '}' : '%');
    if (rc) return rc;
  }
  return MLXR_OK;
}

int mlxr_template_lex(const char *src, size_t len, tarena *arena, ttok **toks, size_t *n, char *err,
                      size_t err_len) {
  char *norm = malloc(len + 1);
  if (!norm) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    if (src[i] == '\r') {
      norm[k++] = '\n';
      if (i + 1 < len && src[i + 1] == '\n') i++;
    } else {
      norm[k++] = src[i];
    }
  }
  if (k > 0 && norm[k - 1] == '\n') k--;
  norm[k] = 0;
  lexer L = {.s = norm, .len = k, .line = 1, .line_starting = true, .arena = arena, .err = err, .err_len = err_len};
  int rc = lex_root(&L);
  if (rc == MLXR_OK) rc = push(&L, T_EOF, NULL, 0);
  free(norm);
  if (rc != MLXR_OK) {
    free(L.toks);
    return rc;
  }
  *toks = L.toks;
  *n = L.n;
  return MLXR_OK;
}
