/*
 * normalize.c: the HF tokenizers normalizers, applied to one section of text before
 * pre-tokenization.
 *
 * Parsed from the tokenizer.json "normalizer" object (a Sequence is flattened into a list of
 * steps). Supported: NFC, NFD, NFKC, NFKD (through utf8proc, Debian's libutf8proc), Replace
 * (String or Regex pattern), Prepend, Strip (left/right, Unicode White_Space), Lowercase,
 * StripAccents (NFD, then drop combining marks). Each step maps a whole UTF-8 string to a new
 * one; no offsets are tracked because MLXR never reports offsets. Input is always valid UTF-8
 * (encode replaces invalid bytes first).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/common/status.h"
#include "core/runtime/tokenizer/tokenizer_impl.h"

typedef enum norm_kind {
  NORM_NFC,
  NORM_NFD,
  NORM_NFKC,
  NORM_NFKD,
  NORM_REPLACE_STR,
  NORM_REPLACE_RE,
  NORM_PREPEND,
  NORM_STRIP,
  NORM_LOWER,
  NORM_STRIP_ACCENTS,
} norm_kind;

typedef struct norm_step {
  norm_kind kind;
  char *a;         /* pattern string / prepend text */
  size_t a_len;
  char *b;         /* replacement content */
  size_t b_len;
  pcre2_code *re;  /* NORM_REPLACE_RE */
  bool left, right;
} norm_step;

struct mlxr_tok_norm {
  norm_step *steps;
  size_t n, cap;
};

void mlxr_tok_norm_free(mlxr_tok_norm *n) {
  if (!n) return;
  for (size_t i = 0; i < n->n; i++) {
    free(n->steps[i].a);
    free(n->steps[i].b);
    if (n->steps[i].re) pcre2_code_free(n->steps[i].re);
  }
  free(n->steps);
  free(n);
}

static char *dup_n(const char *s, size_t n) {
  char *c = malloc(n + 1);
  if (c) {
    memcpy(c, s, n);
    c[n] = 0;
  }
  return c;
}

static int add_step(mlxr_tok_norm *n, norm_step s) {
  if (n->n == n->cap) {
    size_t cap = n->cap ? n->cap * 2 : 4;
    norm_step *v = realloc(n->steps, cap * sizeof *v);
    if (!v) return MLXR_ERR_NOMEM;
    n->steps = v;
    n->cap = cap;
  }
  n->steps[n->n++] = s;
  return MLXR_OK;
}

static int parse_one(mlxr_tok_norm *n, const cJSON *j, char *err, size_t err_len) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
  if (!cJSON_IsString(type)) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "normalizer without type");
  const char *ty = type->valuestring;
  norm_step s = {0};
  if (strcmp(ty, "Sequence") == 0) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
      int rc = parse_one(n, e, err, err_len);
      if (rc) return rc;
    }
    return MLXR_OK;
  }
  if (strcmp(ty, "NFC") == 0) s.kind = NORM_NFC;
  else if (strcmp(ty, "NFD") == 0) s.kind = NORM_NFD;
  else if (strcmp(ty, "NFKC") == 0) s.kind = NORM_NFKC;
  else if (strcmp(ty, "NFKD") == 0) s.kind = NORM_NFKD;
  else if (strcmp(ty, "Lowercase") == 0) s.kind = NORM_LOWER;
  else if (strcmp(ty, "StripAccents") == 0) s.kind = NORM_STRIP_ACCENTS;
  else if (strcmp(ty, "Strip") == 0) {
    s.kind = NORM_STRIP;
    s.left = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "strip_left"));
    s.right = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "strip_right"));
  } else if (strcmp(ty, "Prepend") == 0) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prepend");
    if (!cJSON_IsString(p)) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "Prepend without text");
    s.kind = NORM_PREPEND;
    s.a_len = strlen(p->valuestring);
    if (!(s.a = dup_n(p->valuestring, s.a_len))) return MLXR_ERR_NOMEM;
  } else if (strcmp(ty, "Replace") == 0) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const cJSON *con = cJSON_GetObjectItemCaseSensitive(j, "content");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    if (!cJSON_IsString(con) || (!cJSON_IsString(ps) && !cJSON_IsString(pr)))
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "Replace normalizer: bad pattern/content");
    s.b_len = strlen(con->valuestring);
    if (!(s.b = dup_n(con->valuestring, s.b_len))) return MLXR_ERR_NOMEM;
    if (cJSON_IsString(ps)) {
      s.kind = NORM_REPLACE_STR;
      s.a_len = strlen(ps->valuestring);
      if (!(s.a = dup_n(ps->valuestring, s.a_len))) {
        free(s.b);
        return MLXR_ERR_NOMEM;
      }
    } else {
      s.kind = NORM_REPLACE_RE;
      s.re = mlxr_tok_regex_compile(pr->valuestring, strlen(pr->valuestring), err, err_len);
      if (!s.re) {
        free(s.b);
        return MLXR_ERR_FORMAT;
      }
    }
  } else {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "normalizer '%s' not supported", ty);
  }
  int rc = add_step(n, s);
  if (rc) {
    free(s.a);
    free(s.b);
    if (s.re) pcre2_code_free(s.re);
  }
  return rc;
}

int mlxr_tok_norm_parse(const cJSON *j, mlxr_tok_norm **out, char *err, size_t err_len) {
  *out = NULL;
  if (!j || cJSON_IsNull(j)) return MLXR_OK;
  mlxr_tok_norm *n = calloc(1, sizeof *n);
  if (!n) return MLXR_ERR_NOMEM;
  int rc = parse_one(n, j, err, err_len);
  if (rc) {
    mlxr_tok_norm_free(n);
    return rc;
  }
  *out = n;
  return MLXR_OK;
}

static bool is_white(uint32_t c) {
  return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

static int unicode_form(const char *s, size_t len, utf8proc_option_t opt, mlxr_tok_buf *out) {
  utf8proc_uint8_t *r = NULL;
  utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &r,
                                    (utf8proc_option_t)(opt | UTF8PROC_STABLE));
  if (n < 0) {
    /* Cannot happen on valid UTF-8 except for out of memory; copy as is. */
    return mlxr_tok_buf_add(out, s, len);
  }
  int rc = mlxr_tok_buf_add(out, r, (size_t)n);
  free(r);
  return rc;
}

static int apply_step(const norm_step *st, const char *s, size_t len, mlxr_tok_buf *out) {
  int rc = MLXR_OK;
  switch (st->kind) {
  case NORM_NFC: return unicode_form(s, len, UTF8PROC_COMPOSE, out);
  case NORM_NFD: return unicode_form(s, len, UTF8PROC_DECOMPOSE, out);
  case NORM_NFKC: return unicode_form(s, len, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out);
  case NORM_NFKD: return unicode_form(s, len, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out);
  case NORM_PREPEND:
    /* HF Prepend leaves an empty string empty. */
    if (len && (rc = mlxr_tok_buf_add(out, st->a, st->a_len))) return rc;
    return mlxr_tok_buf_add(out, s, len);
  case NORM_REPLACE_STR: {
    size_t i = 0;
    if (st->a_len == 0) return mlxr_tok_buf_add(out, s, len);
    while (i < len) {
      if (i + st->a_len <= len && memcmp(s + i, st->a, st->a_len) == 0) {
        if ((rc = mlxr_tok_buf_add(out, st->b, st->b_len))) return rc;
        i += st->a_len;
      } else {
        if ((rc = mlxr_tok_buf_addc(out, s[i]))) return rc;
        i++;
      }
    }
    return mlxr_tok_buf_add(out, "", 0);
  }
  case NORM_REPLACE_RE: {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(st->re, NULL);
    if (!md) return MLXR_ERR_NOMEM;
    size_t pos = 0, start = 0;
    while (pos <= len) {
      int m = pcre2_match(st->re, (PCRE2_SPTR)s, len, pos, 0, md, NULL);
      if (m < 0) break;
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
      if ((rc = mlxr_tok_buf_add(out, s + start, ov[0] - start)) ||
          (rc = mlxr_tok_buf_add(out, st->b, st->b_len)))
        break;
      start = ov[1];
      if (ov[1] == ov[0]) { /* empty match: step one character */
        if (ov[1] >= len) {
          pos = len + 1;
          break;
        }
        uint32_t cp;
        size_t l = mlxr_tok_utf8_get(s + ov[1], len - ov[1], &cp);
        if ((rc = mlxr_tok_buf_add(out, s + ov[1], l))) break;
        start = ov[1] + l;
        pos = start;
      } else
        pos = ov[1];
    }
    pcre2_match_data_free(md);
    if (rc) return rc;
    if (start < len) return mlxr_tok_buf_add(out, s + start, len - start);
    return mlxr_tok_buf_add(out, "", 0);
  }
  case NORM_STRIP: {
    size_t b = 0, e = len;
    while (st->left && b < e) {
      uint32_t cp;
      size_t l = mlxr_tok_utf8_get(s + b, e - b, &cp);
      if (!is_white(cp)) break;
      b += l;
    }
    while (st->right && e > b) {
      size_t k = e - 1;
      while (k > b && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
      uint32_t cp;
      mlxr_tok_utf8_get(s + k, e - k, &cp);
      if (!is_white(cp)) break;
      e = k;
    }
    return mlxr_tok_buf_add(out, s + b, e - b);
  }
  case NORM_LOWER:
  case NORM_STRIP_ACCENTS: {
    mlxr_tok_buf tmp = {0};
    const char *src = s;
    size_t n = len;
    if (st->kind == NORM_STRIP_ACCENTS) {
      if ((rc = unicode_form(s, len, UTF8PROC_DECOMPOSE, &tmp))) return rc;
      src = tmp.s;
      n = tmp.n;
    }
    for (size_t i = 0; i < n && !rc;) {
      uint32_t cp;
      size_t l = mlxr_tok_utf8_get(src + i, n - i, &cp);
      i += l;
      char enc[4];
      if (st->kind == NORM_LOWER) {
        size_t k = mlxr_tok_utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc);
        rc = mlxr_tok_buf_add(out, enc, k);
      } else if (utf8proc_category((utf8proc_int32_t)cp) != UTF8PROC_CATEGORY_MN) {
        size_t k = mlxr_tok_utf8_put(cp, enc);
        rc = mlxr_tok_buf_add(out, enc, k);
      }
    }
    free(tmp.s);
    if (!rc) rc = mlxr_tok_buf_add(out, "", 0);
    return rc;
  }
  }
  return MLXR_ERR_INVALID;
}

int mlxr_tok_norm_apply(const mlxr_tok_norm *n, const char *s, size_t len, mlxr_tok_buf *out) {
  out->n = 0;
  if (!n || n->n == 0) return mlxr_tok_buf_add(out, s, len);
  mlxr_tok_buf cur = {0};
  int rc = mlxr_tok_buf_add(&cur, s, len);
  for (size_t i = 0; i < n->n && !rc; i++) {
    mlxr_tok_buf next = {0};
    rc = apply_step(&n->steps[i], cur.s, cur.n, &next);
    free(cur.s);
    cur = next;
  }
  if (!rc) rc = mlxr_tok_buf_add(out, cur.s, cur.n);
  free(cur.s);
  return rc;
}
