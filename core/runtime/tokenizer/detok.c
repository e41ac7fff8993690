/*
 * detok.c: ids -> text. Three entry points:
 *   mlxr_tokenizer_token_bytes  the raw bytes one token stands for (GPT-2 byte map inverted,
 *                               U+2581 -> space, <0xXX> -> the byte; added tokens as written);
 *   mlxr_tokenizer_decode       a whole sequence through the model's HF decoder pipeline
 *                               (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace),
 *                               which is what HF decode(skip_special_tokens=!render_special)
 *                               gives, without clean_up_tokenization_spaces;
 *   mlxr_detok_*                streaming: bytes of each pushed token are held back until they
 *                               complete a UTF-8 sequence, so a multi-byte character split over
 *                               tokens is never emitted in halves; an invalid sequence becomes
 *                               U+FFFD; the space prefix SentencePiece adds is stripped once.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/tokenizer/tokenizer_impl.h"

typedef enum dec_kind { DEC_BYTELEVEL, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE } dec_kind;

typedef struct dec_step {
  dec_kind kind;
  char *a, *b; /* Replace: pattern -> content; Strip: content; Metaspace: replacement */
  size_t a_len, b_len;
  int start, stop; /* Strip */
  bool prepend;    /* Metaspace: strip the first space of the first token */
} dec_step;

struct mlxr_tok_dec {
  dec_step *steps;
  size_t n, cap;
  bool strips_space; /* the pipeline removes one leading space (SentencePiece prefix) */
};

void mlxr_tok_dec_free(mlxr_tok_dec *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n; i++) {
    free(d->steps[i].a);
    free(d->steps[i].b);
  }
  free(d->steps);
  free(d);
}

static char *dup_s(const char *s, size_t *len) {
  *len = strlen(s);
  char *c = malloc(*len + 1);
  if (c) memcpy(c, s, *len + 1);
  return c;
}

static int parse_one(mlxr_tok_dec *d, const cJSON *j, char *err, size_t err_len) {
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
  if (!cJSON_IsString(type)) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "decoder without type");
  const char *ty = type->valuestring;
  dec_step s = {0};
  if (strcmp(ty, "Sequence") == 0) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "decoders")) {
      int rc = parse_one(d, e, err, err_len);
      if (rc) return rc;
    }
    return MLXR_OK;
  }
  if (strcmp(ty, "ByteLevel") == 0) s.kind = DEC_BYTELEVEL;
  else if (strcmp(ty, "ByteFallback") == 0) s.kind = DEC_BYTEFALLBACK;
  else if (strcmp(ty, "Fuse") == 0) s.kind = DEC_FUSE;
  else if (strcmp(ty, "Replace") == 0) {
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "pattern"), "String");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
    if (!cJSON_IsString(ps) || !cJSON_IsString(c))
      return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "Replace decoder: only String patterns");
    s.kind = DEC_REPLACE;
    s.a = dup_s(ps->valuestring, &s.a_len);
    s.b = dup_s(c->valuestring, &s.b_len);
  } else if (strcmp(ty, "Strip") == 0) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "content");
    s.kind = DEC_STRIP;
    s.a = dup_s(cJSON_IsString(c) ? c->valuestring : " ", &s.a_len);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "start");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "stop");
    s.start = cJSON_IsNumber(st) ? st->valueint : 0;
    s.stop = cJSON_IsNumber(sp) ? sp->valueint : 0;
    if (s.start > 0 && strcmp(s.a ? s.a : "", " ") == 0) d->strips_space = true;
  } else if (strcmp(ty, "Metaspace") == 0) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "replacement");
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(j, "add_prefix_space");
    s.kind = DEC_METASPACE;
    s.a = dup_s(cJSON_IsString(r) ? r->valuestring : "\xE2\x96\x81", &s.a_len);
    s.prepend = true;
    if (cJSON_IsString(ps) && strcmp(ps->valuestring, "never") == 0) s.prepend = false;
    if (!cJSON_IsString(ps) && cJSON_IsBool(ap) && !cJSON_IsTrue(ap)) s.prepend = false;
    if (s.prepend) d->strips_space = true;
  } else
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "decoder '%s' not supported", ty);
  if ((s.kind == DEC_REPLACE && (!s.a || !s.b)) || ((s.kind == DEC_STRIP || s.kind == DEC_METASPACE) && !s.a)) {
    free(s.a);
    free(s.b);
    return MLXR_ERR_NOMEM;
  }
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 4;
    dec_step *v = realloc(d->steps, cap * sizeof *v);
    if (!v) {
      free(s.a);
      free(s.b);
      return MLXR_ERR_NOMEM;
    }
    d->steps = v;
    d->cap = cap;
  }
  d->steps[d->n++] = s;
  return MLXR_OK;
}

int mlxr_tok_dec_parse(const cJSON *j, mlxr_tok_dec **out, char *err, size_t err_len) {
  *out = NULL;
  if (!j || cJSON_IsNull(j)) return MLXR_OK;
  mlxr_tok_dec *d = calloc(1, sizeof *d);
  if (!d) return MLXR_ERR_NOMEM;
  int rc = parse_one(d, j, err, err_len);
  if (rc) {
    mlxr_tok_dec_free(d);
    return rc;
  }
  *out = d;
  return MLXR_OK;
}

/* ---- single token ---- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

static int byte_token(const char *s, size_t n) {
  if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
  int h = hexval(s[3]), l = hexval(s[4]);
  return h < 0 || l < 0 ? -1 : h * 16 + l;
}

/* Map a byte-level token text back to bytes; false if a char is outside the map. */
static bool unbyte(const char *s, size_t n, mlxr_tok_buf *out) {
  size_t start = out->n;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    i += mlxr_tok_utf8_get(s + i, n - i, &cp);
    int b = mlxr_tok_cp_to_byte(cp);
    if (b < 0 || mlxr_tok_buf_addc(out, (char)b)) {
      out->n = start;
      return false;
    }
  }
  return true;
}

static int token_raw(const mlxr_tokenizer *t, int32_t id, bool render_special, mlxr_tok_buf *out) {
  const char *s = t->text[id];
  size_t n = t->text_len[id];
  if (t->type[id] == MLXR_TOK_TYPE_CONTROL) return render_special ? mlxr_tok_buf_add(out, s, n) : MLXR_OK;
  if (t->kind == MLXR_TOK_KIND_GPT2) {
    /* Added tokens pass the ByteLevel decoder as written. */
    if (mlxr_tok_is_added(t, id)) return mlxr_tok_buf_add(out, s, n);
    if (unbyte(s, n, out)) return MLXR_OK;
    return mlxr_tok_buf_add(out, s, n);
  }
  /* "llama": added tokens go through the decoder's U+2581 -> space like any other. */
  int b = mlxr_tok_is_added(t, id) ? -1 : byte_token(s, n);
  if (b >= 0) return mlxr_tok_buf_addc(out, (char)b);
  for (size_t i = 0; i < n;) {
    int rc;
    if (n - i >= 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
      rc = mlxr_tok_buf_addc(out, ' ');
      i += 3;
    } else {
      rc = mlxr_tok_buf_addc(out, s[i]);
      i++;
    }
    if (rc) return rc;
  }
  return MLXR_OK;
}

int mlxr_tokenizer_token_bytes(const mlxr_tokenizer *t, int32_t id, bool render_special, char *buf,
                               size_t cap) {
  if (!t || id < 0 || id >= t->n_vocab) return MLXR_ERR_RANGE;
  mlxr_tok_buf b = {0};
  int rc = token_raw(t, id, render_special, &b);
  if (rc) {
    free(b.s);
    return rc;
  }
  if (buf && cap && b.n) memcpy(buf, b.s, b.n < cap ? b.n : cap);
  int n = (int)b.n;
  free(b.s);
  return n;
}

/* ---- sequence decode ---- */

static int dec_step_apply(const mlxr_tokenizer *t, const dec_step *st, mlxr_tok_pieces *in,
                          uint8_t *added, mlxr_tok_pieces *out, uint8_t **out_added) {
  int rc = MLXR_OK;
  uint8_t *oa = malloc(in->n + 1);
  if (!oa) return MLXR_ERR_NOMEM;
  size_t no = 0;
  (void)t;
  switch (st->kind) {
  case DEC_BYTELEVEL:
  case DEC_BYTEFALLBACK: {
    mlxr_tok_buf run = {0};
    bool in_run = false;
    for (size_t i = 0; i <= in->n && !rc; i++) {
      bool take = false;
      int b = -1;
      if (i < in->n && !added[i]) {
        if (st->kind == DEC_BYTELEVEL) take = true;
        else if ((b = byte_token(in->v[i].s, in->v[i].n)) >= 0)
          take = true;
      }
      if (take) {
        if (st->kind == DEC_BYTELEVEL) {
          if (!unbyte(in->v[i].s, in->v[i].n, &run)) rc = mlxr_tok_buf_add(&run, in->v[i].s, in->v[i].n);
        } else
          rc = mlxr_tok_buf_addc(&run, (char)b);
        in_run = true;
        continue;
      }
      if (in_run) {
        mlxr_tok_buf txt = {0};
        rc = mlxr_tok_utf8_lossy(&txt, run.s, run.n);
        if (!rc) rc = mlxr_tok_pieces_push(out, txt.s, txt.n);
        oa[no++] = 0;
        free(txt.s);
        run.n = 0;
        in_run = false;
      }
      if (i < in->n && !rc) {
        rc = mlxr_tok_pieces_push(out, in->v[i].s, in->v[i].n);
        oa[no++] = added[i];
      }
    }
    free(run.s);
    break;
  }
  case DEC_FUSE: {
    mlxr_tok_buf all = {0};
    rc = mlxr_tok_buf_add(&all, "", 0);
    for (size_t i = 0; i < in->n && !rc; i++) rc = mlxr_tok_buf_add(&all, in->v[i].s, in->v[i].n);
    if (!rc) rc = mlxr_tok_pieces_push(out, all.s, all.n);
    oa[no++] = 0;
    free(all.s);
    break;
  }
  case DEC_REPLACE:
  case DEC_METASPACE:
  case DEC_STRIP:
    for (size_t i = 0; i < in->n && !rc; i++) {
      const char *s = in->v[i].s;
      size_t n = in->v[i].n;
      mlxr_tok_buf r = {0};
      rc = mlxr_tok_buf_add(&r, "", 0);
      if (st->kind == DEC_STRIP) {
        size_t a = 0, e = n;
        for (int k = 0; k < st->start && e - a >= st->a_len && memcmp(s + a, st->a, st->a_len) == 0; k++) a += st->a_len;
        for (int k = 0; k < st->stop && e - a >= st->a_len && memcmp(s + e - st->a_len, st->a, st->a_len) == 0; k++)
          e -= st->a_len;
        if (!rc) rc = mlxr_tok_buf_add(&r, s + a, e - a);
      } else {
        const char *pat = st->a, *rep = st->kind == DEC_REPLACE ? st->b : " ";
        size_t pl = st->a_len, rl = st->kind == DEC_REPLACE ? st->b_len : 1;
        for (size_t k = 0; k < n && !rc;) {
          if (pl && n - k >= pl && memcmp(s + k, pat, pl) == 0) {
            rc = mlxr_tok_buf_add(&r, rep, rl);
            k += pl;
          } else
            rc = mlxr_tok_buf_addc(&r, s[k++]);
        }
        if (!rc && st->kind == DEC_METASPACE && st->prepend && i == 0 && r.n && r.s[0] == ' ') {
          memmove(r.s, r.s + 1, r.n);
          r.n--;
        }
      }
      if (!rc) rc = mlxr_tok_pieces_push(out, r.s, r.n);
      oa[no++] = added[i];
      free(r.s);
    }
    break;
  }
  *out_added = oa;
  return rc;
}

int mlxr_tokenizer_decode(const mlxr_tokenizer *t, const int32_t *ids, size_t n_ids,
                          bool render_special, char **text, size_t *len) {
  *text = NULL;
  if (len) *len = 0;
  if (!t || (!ids && n_ids)) return MLXR_ERR_INVALID;
  mlxr_tok_pieces cur = {0};
  uint8_t *added = malloc(n_ids + 1);
  if (!added) return MLXR_ERR_NOMEM;
  int rc = MLXR_OK;
  for (size_t i = 0; i < n_ids && !rc; i++) {
    int32_t id = ids[i];
    if (id < 0 || id >= t->n_vocab) {
      rc = MLXR_ERR_RANGE;
      break;
    }
    if (!render_special && t->type[id] == MLXR_TOK_TYPE_CONTROL) continue;
    added[cur.n] = mlxr_tok_is_added(t, id) || t->type[id] == MLXR_TOK_TYPE_CONTROL;
    rc = mlxr_tok_pieces_push(&cur, t->text[id], t->text_len[id]);
  }
  for (size_t k = 0; t->dec && k < t->dec->n && !rc; k++) {
    mlxr_tok_pieces next = {0};
    uint8_t *na = NULL;
    rc = dec_step_apply(t, &t->dec->steps[k], &cur, added, &next, &na);
    mlxr_tok_pieces_free(&cur);
    free(added);
    cur = next;
    added = na;
    if (!added) break;
  }
  mlxr_tok_buf all = {0}, clean = {0};
  if (!rc) rc = mlxr_tok_buf_add(&all, "", 0);
  for (size_t i = 0; i < cur.n && !rc; i++) {
    if (!t->dec && i > 0) rc = mlxr_tok_buf_addc(&all, ' ');
    if (!rc) rc = mlxr_tok_buf_add(&all, cur.v[i].s, cur.v[i].n);
  }
  if (!rc) rc = mlxr_tok_utf8_lossy(&clean, all.s, all.n);
  mlxr_tok_pieces_free(&cur);
  free(added);
  free(all.s);
  if (rc) {
    free(clean.s);
    return rc;
  }
  *text = clean.s;
  if (len) *len = clean.n;
  return MLXR_OK;
}

/* ---- streaming ---- */

void mlxr_detok_init(mlxr_detok *d, const mlxr_tokenizer *t, bool render_special) {
  memset(d, 0, sizeof *d);
  d->tok = t;
  d->render_special = render_special;
  d->at_start = true;
}

/* Turn pending + bytes into complete text; keep an unfinished tail pending unless flushing. */
static int emit(mlxr_detok *d, const char *bytes, size_t n, bool flush, char *out, size_t cap) {
  mlxr_tok_buf in = {0}, o = {0};
  int rc = mlxr_tok_buf_add(&in, d->pending, d->n_pending);
  if (!rc) rc = mlxr_tok_buf_add(&in, bytes, n);
  if (!rc) rc = mlxr_tok_buf_add(&o, "", 0);
  size_t keep = 0;
  const unsigned char *u = (const unsigned char *)in.s;
  for (size_t i = 0; i < in.n && !rc;) {
    size_t l = mlxr_tok_utf8_valid_len(u + i, in.n - i);
    if (l) {
      rc = mlxr_tok_buf_add(&o, in.s + i, l);
      i += l;
      continue;
    }
    bool trunc;
    size_t bl = mlxr_tok_utf8_bad_len(u + i, in.n - i, &trunc);
    if (trunc && !flush) {
      keep = in.n - i;
      break;
    }
    rc = mlxr_tok_buf_add(&o, "\xEF\xBF\xBD", 3);
    i += bl;
  }
  if (!rc && o.n > cap) rc = MLXR_ERR_NO_SPACE;
  if (!rc) {
    if (o.n) memcpy(out, o.s, o.n);
    if (keep) memmove(d->pending, in.s + in.n - keep, keep);
    d->n_pending = keep;
    rc = (int)o.n;
  }
  free(in.s);
  free(o.s);
  return rc;
}

int mlxr_detok_push(mlxr_detok *d, int32_t id, char *out, size_t cap) {
  const mlxr_tokenizer *t = d->tok;
  if (!t || id < 0 || id >= t->n_vocab) return MLXR_ERR_RANGE;
  mlxr_tok_buf b = {0};
  int rc = token_raw(t, id, d->render_special, &b);
  if (rc) {
    free(b.s);
    return rc;
  }
  const char *p = b.s ? b.s : "";
  size_t n = b.n;
  bool was_start = d->at_start;
  if (n && d->at_start) {
    /* SentencePiece: the first piece's prefix space is not part of the text, unless the first
     * thing rendered is an added/special token (HF strips only a leading space). */
    if (t->dec && t->dec->strips_space && p[0] == ' ') {
      p++;
      n--;
    }
    d->at_start = false;
  }
  rc = emit(d, p, n, false, out, cap);
  if (rc < 0) d->at_start = was_start;
  free(b.s);
  return rc;
}

int mlxr_detok_flush(mlxr_detok *d, char *out, size_t cap) { return emit(d, "", 0, true, out, cap); }
