/*
 * pretokenize.c: the HF tokenizers pre-tokenizers, which cut a normalized section into words
 * that BPE then encodes one at a time.
 *
 * Parsed from tokenizer.json's "pre_tokenizer" into a list of steps (a Sequence is flattened);
 * each step maps the current list of pieces to a new list. Supported: Split (String or Regex
 * pattern, behaviours Removed / Isolated / MergedWithPrevious / MergedWithNext / Contiguous,
 * invert), ByteLevel (add_prefix_space, use_regex with GPT-2's regex; maps bytes to GPT-2's
 * printable code points), Digits (individual_digits), Metaspace (replacement, prepend_scheme,
 * split), Punctuation, Whitespace, WhitespaceSplit.
 *
 * Regexes are compiled by PCRE2 with UTF and UCP. Two rewrites make them behave like the
 * reference (transformers.js, which compiles them as JavaScript regexes with the u flag):
 * "(?i:'s|'t|...)" becomes explicit [sS]-style classes (PCRE2's caseless matching would also
 * fold U+017F and U+212A), and \s / \S use JavaScript's whitespace set (which has U+FEFF and
 * lacks U+0085). Empty matches are skipped, as both HF and the reference do.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/tokenizer/tokenizer_impl.h"

typedef enum split_behavior {
  SPLIT_REMOVED,
  SPLIT_ISOLATED,
  SPLIT_MERGED_PREV,
  SPLIT_MERGED_NEXT,
  SPLIT_CONTIGUOUS,
} split_behavior;

typedef enum pre_kind { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE, PRE_WS_SPLIT } pre_kind;

typedef struct pre_step {
  pre_kind kind;
  pcre2_code *re;  /* Split (and ByteLevel with use_regex) */
  split_behavior behavior;
  bool invert;
  bool add_prefix_space;  /* ByteLevel */
  char repl[8];           /* Metaspace replacement (UTF-8) */
  size_t repl_len;
  int prepend;            /* Metaspace: 0 never, 1 first, 2 always */
  bool split;             /* Metaspace */
} pre_step;

struct mlxr_tok_pre {
  pre_step *steps;
  size_t n, cap;
};

/* ---- GPT-2 byte map ---- */

static bool byte_printable(unsigned b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
}

uint32_t mlxr_tok_byte_to_cp(uint8_t b) {
  if (byte_printable(b)) return b;
  uint32_t n = 0;
  for (unsigned i = 0; i < b; i++)
    if (!byte_printable(i)) n++;
  return 256 + n;
}

int mlxr_tok_cp_to_byte(uint32_t cp) {
  if (cp < 256) return byte_printable(cp) ? (int)cp : -1;
  if (cp >= 256 + 68) return -1; /* 68 = number of non-printable bytes */
  uint32_t n = cp - 256;
  for (unsigned i = 0; i < 256; i++) {
    if (byte_printable(i)) continue;
    if (n == 0) return (int)i;
    n--;
  }
  return -1;
}

/* ---- regex compilation ---- */

#define JS_WS "\\t\\n\\x0B\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"

pcre2_code *mlxr_tok_regex_compile(const char *pattern, size_t len, char *err, size_t err_len) {
  static const char ci[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  static const char ci_js[] = "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))";
  mlxr_tok_buf b = {0};
  int rc = MLXR_OK;
  bool in_class = false;
  for (size_t i = 0; i < len && !rc;) {
    if (!in_class && len - i >= sizeof ci - 1 && memcmp(pattern + i, ci, sizeof ci - 1) == 0) {
      rc = mlxr_tok_buf_add(&b, ci_js, sizeof ci_js - 1);
      i += sizeof ci - 1;
      continue;
    }
    char c = pattern[i];
    if (c == '\\' && i + 1 < len) {
      char d = pattern[i + 1];
      if (d == 's') rc = mlxr_tok_buf_add(&b, in_class ? JS_WS : "[" JS_WS "]", in_class ? sizeof JS_WS - 1 : sizeof JS_WS + 1);
      else if (d == 'S' && !in_class)
        rc = mlxr_tok_buf_add(&b, "[^" JS_WS "]", sizeof JS_WS + 2);
      else
        rc = mlxr_tok_buf_add(&b, pattern + i, 2);
      i += 2;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      rc = mlxr_tok_buf_addc(&b, c);
      i++;
      /* A ']' right after '[' or '[^' is a literal. */
      if (i < len && pattern[i] == '^') {
        rc = rc ? rc : mlxr_tok_buf_addc(&b, '^');
        i++;
      }
      if (i < len && pattern[i] == ']') {
        rc = rc ? rc : mlxr_tok_buf_add(&b, "\\]", 2);
        i++;
      }
      continue;
    }
    if (in_class && c == ']') in_class = false;
    rc = mlxr_tok_buf_addc(&b, c);
    i++;
  }
  if (rc || !b.s) {
    free(b.s);
    mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory compiling regex");
    return NULL;
  }
  int ec;
  PCRE2_SIZE eo;
  /* the pattern comes from the model file: PCRE2 checks its UTF-8 (an invalid one is an error) */
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.s, b.n, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
  if (!re) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(ec, msg, sizeof msg);
    mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "regex /%s/ at %zu: %s", b.s, (size_t)eo, (char *)msg);
    free(b.s);
    return NULL;
  }
  free(b.s);
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* best effort: matching falls back if it fails */
  return re;
}

/* Escape a literal string for PCRE2. */
static pcre2_code *literal_compile(const char *s, char *err, size_t err_len) {
  mlxr_tok_buf b = {0};
  if (mlxr_tok_buf_add(&b, "\\Q", 2) || mlxr_tok_buf_add(&b, s, strlen(s)) || mlxr_tok_buf_add(&b, "\\E", 2)) {
    free(b.s);
    return NULL;
  }
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)b.s, b.n, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
  free(b.s);
  if (!re) mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "cannot compile literal pattern");
  return re;
}

/* ---- parse ---- */

void mlxr_tok_pre_free(mlxr_tok_pre *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n; i++)
    if (p->steps[i].re) pcre2_code_free(p->steps[i].re);
  free(p->steps);
  free(p);
}

static int add_step(mlxr_tok_pre *p, pre_step s) {
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 4;
    pre_step *v = realloc(p->steps, cap * sizeof *v);
    if (!v) {
      if (s.re) pcre2_code_free(s.re);
      return MLXR_ERR_NOMEM;
    }
    p->steps = v;
    p->cap = cap;
  }
  p->steps[p->n++] = s;
  return MLXR_OK;
}

static const char k_gpt2_re[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int parse_behavior(const cJSON *j, split_behavior def, split_behavior *out) {
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "behavior");
  *out = def;
  if (!cJSON_IsString(b)) return MLXR_OK;
  const char *s = b->valuestring;
  if (strcmp(s, "Removed") == 0) *out = SPLIT_REMOVED;
  else if (strcmp(s, "Isolated") == 0) *out = SPLIT_ISOLATED;
  else if (strcmp(s, "MergedWithPrevious") == 0) *out = SPLIT_MERGED_PREV;
  else if (strcmp(s, "MergedWithNext") == 0) *out = SPLIT_MERGED_NEXT;
  else if (strcmp(s, "Contiguous") == 0) *out = SPLIT_CONTIGUOUS;
  else return MLXR_ERR_FORMAT;
  return MLXR_OK;
}

static int parse_one(mlxr_tok_pre *p, const cJSON *j, char *err, size_t err_len) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
  if (!cJSON_IsString(type)) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "pre_tokenizer without type");
  const char *ty = type->valuestring;
  pre_step s = {0};
  if (strcmp(ty, "Sequence") == 0) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "pretokenizers")) {
      int rc = parse_one(p, e, err, err_len);
      if (rc) return rc;
    }
    return MLXR_OK;
  }
  if (strcmp(ty, "Split") == 0) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    s.kind = PRE_SPLIT;
    if (cJSON_IsString(pr)) s.re = mlxr_tok_regex_compile(pr->valuestring, strlen(pr->valuestring), err, err_len);
    else if (cJSON_IsString(ps))
      s.re = literal_compile(ps->valuestring, err, err_len);
    else
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "Split without pattern");
    if (!s.re) return MLXR_ERR_FORMAT;
    s.invert = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "invert"));
    if (parse_behavior(j, SPLIT_REMOVED, &s.behavior)) {
      pcre2_code_free(s.re);
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "Split: unknown behavior");
    }
  } else if (strcmp(ty, "ByteLevel") == 0) {
    s.kind = PRE_BYTELEVEL;
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
    s.add_prefix_space = cJSON_IsBool(ap) ? cJSON_IsTrue(ap) : true;
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(j, "use_regex");
    if (!cJSON_IsBool(ur) || cJSON_IsTrue(ur)) {
      s.re = mlxr_tok_regex_compile(k_gpt2_re, sizeof k_gpt2_re - 1, err, err_len);
      if (!s.re) return MLXR_ERR_FORMAT;
    }
  } else if (strcmp(ty, "Digits") == 0 || strcmp(ty, "Punctuation") == 0 ||
             strcmp(ty, "Whitespace") == 0) {
    const char *re;
    s.kind = PRE_SPLIT;
    if (ty[0] == 'D') {
      bool ind = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "individual_digits"));
      re = "\\p{N}";
      s.behavior = ind ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
    } else if (ty[0] == 'P') {
      re = "[\\p{P}!-/:-@\\[-`{-~]";
      if (parse_behavior(j, SPLIT_ISOLATED, &s.behavior))
        return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "Punctuation: unknown behavior");
    } else {
      re = "\\w+|[^\\w\\s]+";
      s.behavior = SPLIT_REMOVED;
      s.invert = true;
    }
    s.re = mlxr_tok_regex_compile(re, strlen(re), err, err_len);
    if (!s.re) return MLXR_ERR_FORMAT;
  } else if (strcmp(ty, "WhitespaceSplit") == 0) {
    s.kind = PRE_WS_SPLIT;
    s.re = mlxr_tok_regex_compile("\\s+", 3, err, err_len);
    s.kind = PRE_SPLIT;
    s.behavior = SPLIT_REMOVED;
    if (!s.re) return MLXR_ERR_FORMAT;
  } else if (strcmp(ty, "Metaspace") == 0) {
    s.kind = PRE_METASPACE;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "replacement");
    const char *rep = cJSON_IsString(r) ? r->valuestring : "\xE2\x96\x81";
    s.repl_len = strlen(rep);
    if (s.repl_len == 0 || s.repl_len >= sizeof s.repl)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "Metaspace: bad replacement");
    memcpy(s.repl, rep, s.repl_len);
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
    s.prepend = 2;
    if (cJSON_IsString(ps)) {
      if (strcmp(ps->valuestring, "never") == 0) s.prepend = 0;
      else if (strcmp(ps->valuestring, "first") == 0) s.prepend = 1;
    } else if (cJSON_IsBool(ap) && !cJSON_IsTrue(ap))
      s.prepend = 0;
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "split");
    s.split = cJSON_IsBool(sp) ? cJSON_IsTrue(sp) : true;
    if (s.split) {
      s.re = literal_compile(s.repl, err, err_len);
      if (!s.re) return MLXR_ERR_FORMAT;
    }
  } else {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "pre_tokenizer '%s' not supported", ty);
  }
  return add_step(p, s);
}

int mlxr_tok_pre_parse(const cJSON *j, mlxr_tok_pre **out, char *err, size_t err_len) {
  *out = NULL;
  if (!j || cJSON_IsNull(j)) return MLXR_OK;
  mlxr_tok_pre *p = calloc(1, sizeof *p);
  if (!p) return MLXR_ERR_NOMEM;
  int rc = parse_one(p, j, err, err_len);
  if (rc) {
    mlxr_tok_pre_free(p);
    return rc;
  }
  *out = p;
  return MLXR_OK;
}

/* ---- apply ---- */

/* One regex match starting at or after pos; falls back from JIT to the interpreter. */
static int match_at(const pcre2_code *re, const char *s, size_t len, size_t pos, pcre2_match_data *md) {
  int m = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
  if (m == PCRE2_ERROR_JIT_STACKLIMIT)
    m = pcre2_match(re, (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
  return m;
}

/* Split s by re with a HF behaviour, appending pieces to out. */
static int split_regex(const pcre2_code *re, split_behavior beh, bool invert, const char *s,
                       size_t len, mlxr_tok_pieces *out) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  if (!md) return MLXR_ERR_NOMEM;
  /* spans: alternating [start,end,is_match] */
  size_t nsp = 0, cap = 16;
  size_t *sp = malloc(cap * 3 * sizeof *sp);
  int rc = sp ? MLXR_OK : MLXR_ERR_NOMEM;
  size_t pos = 0, prev = 0;
  while (!rc && pos <= len) {
    int m = match_at(re, s, len, pos, md);
    if (m == PCRE2_ERROR_NOMATCH) break;
    if (m < 0) {
      rc = MLXR_ERR_INVALID;
      break;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t a = ov[0], b = ov[1];
    if (a == b) { /* empty match: skip one character */
      if (a >= len) break;
      uint32_t cp;
      pos = a + mlxr_tok_utf8_get(s + a, len - a, &cp);
      continue;
    }
    for (int k = 0; k < 2; k++) {
      size_t x = k == 0 ? prev : a, y = k == 0 ? a : b;
      if (x == y) continue;
      if (nsp + 1 > cap) {
        cap *= 2;
        size_t *v = realloc(sp, cap * 3 * sizeof *v);
        if (!v) {
          rc = MLXR_ERR_NOMEM;
          break;
        }
        sp = v;
      }
      sp[3 * nsp] = x;
      sp[3 * nsp + 1] = y;
      sp[3 * nsp + 2] = (size_t)(k == 1);
      nsp++;
    }
    prev = pos = b;
  }
  if (!rc && prev < len) {
    if (nsp + 1 > cap) {
      size_t *v = realloc(sp, (cap + 1) * 3 * sizeof *v);
      if (!v) rc = MLXR_ERR_NOMEM;
      else
        sp = v;
    }
    if (!rc) {
      sp[3 * nsp] = prev;
      sp[3 * nsp + 1] = len;
      sp[3 * nsp + 2] = 0;
      nsp++;
    }
  }
  pcre2_match_data_free(md);
  if (invert)
    for (size_t i = 0; i < nsp; i++) sp[3 * i + 2] = !sp[3 * i + 2];
  /* Apply the behaviour: build pieces as [start,end) ranges. */
  size_t cur_a = 0, cur_b = 0;
  bool have = false;
  bool cur_is_match = false;
  for (size_t i = 0; !rc && i < nsp; i++) {
    size_t a = sp[3 * i], b = sp[3 * i + 1];
    bool mt = sp[3 * i + 2] != 0;
    switch (beh) {
    case SPLIT_REMOVED:
      if (!mt) rc = mlxr_tok_pieces_push(out, s + a, b - a);
      break;
    case SPLIT_ISOLATED: rc = mlxr_tok_pieces_push(out, s + a, b - a); break;
    case SPLIT_MERGED_PREV:
      if (mt && have && !cur_is_match) cur_b = b;
      else {
        if (have) rc = mlxr_tok_pieces_push(out, s + cur_a, cur_b - cur_a);
        cur_a = a;
        cur_b = b;
        have = true;
      }
      cur_is_match = mt;
      break;
    case SPLIT_MERGED_NEXT:
      if (have && cur_is_match) cur_b = b; /* previous match glues onto this span */
      else {
        if (have) rc = mlxr_tok_pieces_push(out, s + cur_a, cur_b - cur_a);
        cur_a = a;
        cur_b = b;
        have = true;
      }
      cur_is_match = mt;
      break;
    case SPLIT_CONTIGUOUS:
      if (have && mt && cur_is_match) cur_b = b;
      else {
        if (have) rc = mlxr_tok_pieces_push(out, s + cur_a, cur_b - cur_a);
        cur_a = a;
        cur_b = b;
        have = true;
      }
      cur_is_match = mt;
      break;
    }
  }
  if (!rc && have) rc = mlxr_tok_pieces_push(out, s + cur_a, cur_b - cur_a);
  free(sp);
  return rc;
}

static int byte_map(const char *s, size_t n, mlxr_tok_pieces *out) {
  mlxr_tok_buf b = {0};
  int rc = mlxr_tok_buf_add(&b, "", 0);
  for (size_t i = 0; i < n && !rc; i++) {
    char enc[4];
    size_t k = mlxr_tok_utf8_put(mlxr_tok_byte_to_cp((uint8_t)s[i]), enc);
    rc = mlxr_tok_buf_add(&b, enc, k);
  }
  if (!rc) rc = mlxr_tok_pieces_push(out, b.s, b.n);
  free(b.s);
  return rc;
}

static int apply_step(const pre_step *st, const mlxr_tok_piece *in, bool first,
                      mlxr_tok_pieces *out) {
  int rc;
  switch (st->kind) {
  case PRE_SPLIT:
  case PRE_WS_SPLIT: return split_regex(st->re, st->behavior, st->invert, in->s, in->n, out);
  case PRE_BYTELEVEL: {
    mlxr_tok_buf t = {0};
    if (st->add_prefix_space && (in->n == 0 || in->s[0] != ' ')) rc = mlxr_tok_buf_add(&t, " ", 1);
    else
      rc = MLXR_OK;
    if (!rc) rc = mlxr_tok_buf_add(&t, in->s, in->n);
    if (rc) {
      free(t.s);
      return rc;
    }
    mlxr_tok_pieces words = {0};
    if (st->re) rc = split_regex(st->re, SPLIT_ISOLATED, false, t.s, t.n, &words);
    else
      rc = mlxr_tok_pieces_push(&words, t.s, t.n);
    for (size_t i = 0; !rc && i < words.n; i++) rc = byte_map(words.v[i].s, words.v[i].n, out);
    mlxr_tok_pieces_free(&words);
    free(t.s);
    return rc;
  }
  case PRE_METASPACE: {
    mlxr_tok_buf t = {0};
    rc = MLXR_OK;
    bool starts = in->n >= st->repl_len && memcmp(in->s, st->repl, st->repl_len) == 0;
    if (!starts && in->n && in->s[0] == ' ') starts = true; /* the space becomes the replacement */
    if ((st->prepend == 2 || (st->prepend == 1 && first)) && !starts)
      rc = mlxr_tok_buf_add(&t, st->repl, st->repl_len);
    for (size_t i = 0; !rc && i < in->n; i++)
      rc = in->s[i] == ' ' ? mlxr_tok_buf_add(&t, st->repl, st->repl_len) : mlxr_tok_buf_addc(&t, in->s[i]);
    if (!rc && !t.s) rc = mlxr_tok_buf_add(&t, "", 0);
    if (!rc) {
      if (st->split) rc = split_regex(st->re, SPLIT_MERGED_NEXT, false, t.s, t.n, out);
      else
        rc = mlxr_tok_pieces_push(out, t.s, t.n);
    }
    free(t.s);
    return rc;
  }
  }
  return MLXR_ERR_INVALID;
}

int mlxr_tok_pre_apply(const mlxr_tok_pre *p, const char *s, size_t len, bool first_section,
                       mlxr_tok_pieces *out) {
  if (!p || p->n == 0) return mlxr_tok_pieces_push(out, s, len);
  mlxr_tok_pieces cur = {0};
  int rc = mlxr_tok_pieces_push(&cur, s, len);
  for (size_t k = 0; k < p->n && !rc; k++) {
    mlxr_tok_pieces next = {0};
    for (size_t i = 0; i < cur.n && !rc; i++)
      rc = apply_step(&p->steps[k], &cur.v[i], first_section && i == 0, &next);
    mlxr_tok_pieces_free(&cur);
    cur = next;
  }
  for (size_t i = 0; i < cur.n && !rc; i++)
    if (cur.v[i].n) rc = mlxr_tok_pieces_push(out, cur.v[i].s, cur.v[i].n);
  mlxr_tok_pieces_free(&cur);
  return rc;
}
