/*
 * vocab.c: loading a tokenizer from GGUF metadata, the vocabulary index, and the small helpers
 * (buffers, piece lists, UTF-8) that the other tokenizer files share.
 *
 * Load reads tokenizer.ggml.{model,tokens,scores,token_type,merges,*_token_id,add_*_token} and
 * the pipeline under tokenizer.mlxr.* (JSON texts written by tools/convert_tokenizer.c). A GGUF
 * made by llama.cpp has no tokenizer.mlxr.* keys: then the "llama" kind gets SentencePiece's
 * pipeline (prefix space, spaces as U+2581, byte fallback) and the "gpt2" kind gets the pipeline
 * that pre_names.c lists for tokenizer.ggml.pre; added tokens are then the control (3) and
 * user-defined (4) entries of token_type. Every count and id read from the file is checked.
 * The result is immutable; mlxr_tokenizer_free releases everything.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/tokenizer/tokenizer_impl.h"

/* ---- buffers and piece lists ---- */

int mlxr_tok_buf_add(mlxr_tok_buf *b, const void *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) return MLXR_ERR_NOMEM;
    b->s = p;
    b->cap = cap;
  }
  if (n) memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
  return MLXR_OK;
}

int mlxr_tok_buf_addc(mlxr_tok_buf *b, char c) { return mlxr_tok_buf_add(b, &c, 1); }

int mlxr_tok_pieces_push(mlxr_tok_pieces *p, const char *s, size_t n) {
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 16;
    mlxr_tok_piece *v = realloc(p->v, cap * sizeof *v);
    if (!v) return MLXR_ERR_NOMEM;
    p->v = v;
    p->cap = cap;
  }
  char *c = malloc(n + 1);
  if (!c) return MLXR_ERR_NOMEM;
  if (n) memcpy(c, s, n);
  c[n] = 0;
  p->v[p->n].s = c;
  p->v[p->n].n = n;
  p->n++;
  return MLXR_OK;
}

void mlxr_tok_pieces_free(mlxr_tok_pieces *p) {
  for (size_t i = 0; i < p->n; i++) free(p->v[i].s);
  free(p->v);
  p->v = NULL;
  p->n = p->cap = 0;
}

int mlxr_tok_ids_push(mlxr_tok_ids *ids, int32_t id) {
  if (ids->n == ids->cap) {
    size_t cap = ids->cap ? ids->cap * 2 : 64;
    int32_t *v = realloc(ids->v, cap * sizeof *v);
    if (!v) return MLXR_ERR_NOMEM;
    ids->v = v;
    ids->cap = cap;
  }
  ids->v[ids->n++] = id;
  return MLXR_OK;
}

/* ---- UTF-8 ---- */

size_t mlxr_tok_utf8_valid_len(const unsigned char *s, size_t n) {
  if (n == 0) return 0;
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 0;
  if (n < need) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < need; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return need;
}

size_t mlxr_tok_utf8_bad_len(const unsigned char *s, size_t n, bool *truncated) {
  /* The maximal subpart: the longest prefix of a valid sequence, at least one byte. */
  *truncated = false;
  unsigned c = s[0];
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 1;
  size_t i = 1;
  for (; i < need && i < n; i++) {
    unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (s[i] < l || s[i] > h) return i;
  }
  if (i < need) *truncated = true;
  return i;
}

int mlxr_tok_utf8_lossy(mlxr_tok_buf *b, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    size_t run = i;
    while (run < n) { /* copy runs of valid text at once */
      size_t l = mlxr_tok_utf8_valid_len(u + run, n - run);
      if (!l) break;
      run += l;
    }
    if (run > i) {
      int rc = mlxr_tok_buf_add(b, s + i, run - i);
      if (rc) return rc;
      i = run;
      if (i >= n) break;
    }
    bool trunc;
    i += mlxr_tok_utf8_bad_len(u + i, n - i, &trunc);
    int rc = mlxr_tok_buf_add(b, "\xEF\xBF\xBD", 3);
    if (rc) return rc;
  }
  if (!b->s) return mlxr_tok_buf_add(b, "", 0);
  return MLXR_OK;
}

size_t mlxr_tok_utf8_put(uint32_t cp, char *out) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

size_t mlxr_tok_utf8_get(const char *s, size_t n, uint32_t *cp) {
  const unsigned char *u = (const unsigned char *)s;
  size_t l = mlxr_tok_utf8_valid_len(u, n);
  if (!l) {
    *cp = u[0];
    return 1;
  }
  if (l == 1) *cp = u[0];
  else if (l == 2) *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
  else if (l == 3)
    *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
  else
    *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
          ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
  return l;
}

/* ---- vocabulary index ---- */

static uint64_t tok_hash(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

int32_t mlxr_tokenizer_find(const mlxr_tokenizer *t, const char *text, size_t len) {
  if (!t || !t->hash_cap) return -1;
  size_t m = t->hash_cap - 1;
  for (size_t i = tok_hash(text, len) & m;; i = (i + 1) & m) {
    int32_t e = t->hash[i];
    if (!e) return -1;
    int32_t id = e - 1;
    if (t->text_len[id] == len && memcmp(t->text[id], text, len) == 0) return id;
  }
}

static int build_hash(mlxr_tokenizer *t) {
  size_t cap = 16;
  while (cap < (size_t)t->n_vocab * 2) cap *= 2;
  t->hash = calloc(cap, sizeof *t->hash);
  if (!t->hash) return MLXR_ERR_NOMEM;
  t->hash_cap = cap;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    /* The first id of a duplicated text wins, like a dict built in id order would not: HF
     * keeps the last; duplicates only occur in padded holes, which are never looked up. */
    size_t i = tok_hash(t->text[id], t->text_len[id]) & (cap - 1);
    bool dup = false;
    while (t->hash[i]) {
      int32_t o = t->hash[i] - 1;
      if (t->text_len[o] == t->text_len[id] && memcmp(t->text[o], t->text[id], t->text_len[id]) == 0) {
        dup = true;
        break;
      }
      i = (i + 1) & (cap - 1);
    }
    if (!dup) t->hash[i] = id + 1;
  }
  return MLXR_OK;
}

/* ---- accessors ---- */

int32_t mlxr_tokenizer_n_vocab(const mlxr_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t mlxr_tokenizer_bos(const mlxr_tokenizer *t) { return t ? t->bos : -1; }
int32_t mlxr_tokenizer_eos(const mlxr_tokenizer *t) { return t ? t->eos : -1; }

bool mlxr_tokenizer_is_eog(const mlxr_tokenizer *t, int32_t id) {
  return t && id >= 0 && id < t->n_vocab && t->eog[id];
}

bool mlxr_tokenizer_is_control(const mlxr_tokenizer *t, int32_t id) {
  return t && id >= 0 && id < t->n_vocab && t->type[id] == MLXR_TOK_TYPE_CONTROL;
}

const char *mlxr_tokenizer_token_text(const mlxr_tokenizer *t, int32_t id) {
  if (!t || id < 0 || id >= t->n_vocab) return NULL;
  return t->text[id];
}

bool mlxr_tok_is_added(const mlxr_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->n_vocab && t->added_index[id] >= 0;
}

void mlxr_tokenizer_free(mlxr_tokenizer *t) {
  if (!t) return;
  free(t->text);
  free(t->text_len);
  free(t->arena);
  free(t->score);
  free(t->type);
  free(t->eog);
  free(t->hash);
  free(t->merge_key);
  free(t->merge_rank);
  free(t->merge_res);
  free(t->cont_prefix);
  free(t->eow_suffix);
  mlxr_tok_norm_free(t->norm);
  mlxr_tok_pre_free(t->pre);
  mlxr_tok_dec_free(t->dec);
  for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
  free(t->added);
  mlxr_tok_trie_free(t->trie);
  mlxr_tok_trie_free(t->trie_user);
  free(t->added_index);
  free(t);
}

/* ---- load ---- */

static int32_t get_id(const mlxr_gguf *g, const char *key, int32_t n_vocab) {
  int64_t v;
  if (!mlxr_gguf_get_int(g, key, &v)) return -1;
  if (v < 0 || v >= n_vocab) return -1;
  return (int32_t)v;
}

static char *dup_str(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s);
  char *c = malloc(n + 1);
  if (c) memcpy(c, s, n + 1);
  return c;
}

/* Parse a JSON text from a GGUF string key; *out = NULL if the key is absent. */
static int parse_json_key(const mlxr_gguf *g, const char *key, cJSON **out, char *err,
                          size_t err_len) {
  *out = NULL;
  size_t len;
  const char *s = mlxr_gguf_get_str(g, key, &len);
  if (!s) return MLXR_OK;
  cJSON *j = cJSON_ParseWithLength(s, len);
  if (!j) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s: invalid JSON", key);
  *out = j;
  return MLXR_OK;
}

static bool json_bool(const cJSON *o, const char *k, bool def) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  return def;
}

static int load_added_json(mlxr_tokenizer *t, const cJSON *arr, char *err, size_t err_len) {
  int n = cJSON_GetArraySize(arr);
  t->added = calloc(n ? (size_t)n : 1, sizeof *t->added);
  if (!t->added) return MLXR_ERR_NOMEM;
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    if (!cJSON_IsString(c) || !cJSON_IsNumber(id) || id->valuedouble < 0 ||
        id->valuedouble >= t->n_vocab || c->valuestring[0] == 0)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.mlxr.added_tokens: bad entry");
    mlxr_tok_added *a = &t->added[t->n_added++];
    a->id = (int32_t)id->valuedouble;
    a->content = dup_str(c->valuestring);
    if (!a->content) return MLXR_ERR_NOMEM;
    a->len = strlen(a->content);
    a->special = json_bool(e, "special", false);
    a->lstrip = json_bool(e, "lstrip", false);
    a->rstrip = json_bool(e, "rstrip", false);
    a->single_word = json_bool(e, "single_word", false);
    a->normalized = json_bool(e, "normalized", !a->special);
  }
  return MLXR_OK;
}

static int load_added_types(mlxr_tokenizer *t) {
  size_t n = 0;
  for (int32_t i = 0; i < t->n_vocab; i++)
    if (t->type[i] == MLXR_TOK_TYPE_CONTROL || t->type[i] == MLXR_TOK_TYPE_USER) n++;
  t->added = calloc(n ? n : 1, sizeof *t->added);
  if (!t->added) return MLXR_ERR_NOMEM;
  for (int32_t i = 0; i < t->n_vocab; i++) {
    if (t->type[i] != MLXR_TOK_TYPE_CONTROL && t->type[i] != MLXR_TOK_TYPE_USER) continue;
    if (t->text_len[i] == 0) continue;
    mlxr_tok_added *a = &t->added[t->n_added++];
    a->id = i;
    a->len = t->text_len[i]; /* all of it: a GGUF string may hold a NUL byte */
    a->content = malloc(a->len + 1);
    if (!a->content) return MLXR_ERR_NOMEM;
    memcpy(a->content, t->text[i], a->len + 1);
    a->special = t->type[i] == MLXR_TOK_TYPE_CONTROL;
  }
  return MLXR_OK;
}

static const char *const k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<\xEF\xBD\x9C\x65nd\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", /* \x65: 'e' */
    "<|return|>", "<|call|>", "</s>",
};

static int load_pipeline(mlxr_tokenizer *t, const mlxr_gguf *g, char *err, size_t err_len) {
  int rc;
  cJSON *jn = NULL, *jp = NULL, *jd = NULL, *jo = NULL, *ja = NULL;
  bool have_mlxr = mlxr_gguf_find_key(g, "tokenizer.mlxr.pre_tokenizer") >= 0 ||
                   mlxr_gguf_find_key(g, "tokenizer.mlxr.model_options") >= 0;
  if (have_mlxr) {
    if ((rc = parse_json_key(g, "tokenizer.mlxr.normalizer", &jn, err, err_len)) ||
        (rc = parse_json_key(g, "tokenizer.mlxr.pre_tokenizer", &jp, err, err_len)) ||
        (rc = parse_json_key(g, "tokenizer.mlxr.decoder", &jd, err, err_len)) ||
        (rc = parse_json_key(g, "tokenizer.mlxr.model_options", &jo, err, err_len)) ||
        (rc = parse_json_key(g, "tokenizer.mlxr.added_tokens", &ja, err, err_len)))
      goto done;
  } else if (t->kind == MLXR_TOK_KIND_LLAMA) {
    bool prefix = true;
    mlxr_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &prefix);
    jn = cJSON_Parse(prefix ? "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\","
                              "\"prepend\":\"\xE2\x96\x81\"},{\"type\":\"Replace\",\"pattern\":"
                              "{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]}"
                            : "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":"
                              "\"\xE2\x96\x81\"}");
    jd = cJSON_Parse("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":"
                     "{\"String\":\"\xE2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},"
                     "{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,"
                     "\"stop\":0}]}");
    jo = cJSON_Parse("{\"byte_fallback\":true}");
    if (!jn || !jd || !jo) {
      rc = MLXR_ERR_NOMEM;
      goto done;
    }
  } else {
    const char *pre = mlxr_gguf_get_str(g, "tokenizer.ggml.pre", NULL);
    const mlxr_tok_pre_name *pn = mlxr_tok_pre_name_find(pre ? pre : "default");
    if (!pn) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "unknown tokenizer.ggml.pre '%s'", pre);
      goto done;
    }
    jp = mlxr_tok_pre_name_json(pn);
    jd = cJSON_Parse("{\"type\":\"ByteLevel\"}");
    jo = cJSON_CreateObject();
    if (!jp || !jd || !jo) {
      rc = MLXR_ERR_NOMEM;
      goto done;
    }
    cJSON_AddBoolToObject(jo, "ignore_merges", pn->ignore_merges);
  }
  if ((rc = mlxr_tok_norm_parse(jn, &t->norm, err, err_len)) ||
      (rc = mlxr_tok_pre_parse(jp, &t->pre, err, err_len)) ||
      (rc = mlxr_tok_dec_parse(jd, &t->dec, err, err_len)))
    goto done;
  if (jo) {
    t->byte_fallback = json_bool(jo, "byte_fallback", false);
    t->ignore_merges = json_bool(jo, "ignore_merges", false);
    t->fuse_unk = json_bool(jo, "fuse_unk", false);
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(jo, "continuing_subword_prefix");
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(jo, "end_of_word_suffix");
    if (cJSON_IsString(cp) && cp->valuestring[0] && !(t->cont_prefix = dup_str(cp->valuestring))) {
      rc = MLXR_ERR_NOMEM;
      goto done;
    }
    if (cJSON_IsString(es) && es->valuestring[0] && !(t->eow_suffix = dup_str(es->valuestring))) {
      rc = MLXR_ERR_NOMEM;
      goto done;
    }
  }
  if (ja && cJSON_IsArray(ja)) rc = load_added_json(t, ja, err, err_len);
  else
    rc = load_added_types(t);
done:
  cJSON_Delete(jn);
  cJSON_Delete(jp);
  cJSON_Delete(jd);
  cJSON_Delete(jo);
  cJSON_Delete(ja);
  return rc;
}

int mlxr_tokenizer_load_gguf(const mlxr_gguf *g, mlxr_tokenizer **out, char *err, size_t err_len) {
  *out = NULL;
  const char *model = mlxr_gguf_get_str(g, "tokenizer.ggml.model", NULL);
  if (!model) return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "no tokenizer.ggml.model");
  mlxr_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return MLXR_ERR_NOMEM;
  int rc = MLXR_OK;
  if (strcmp(model, "gpt2") == 0) t->kind = MLXR_TOK_KIND_GPT2;
  else if (strcmp(model, "llama") == 0)
    t->kind = MLXR_TOK_KIND_LLAMA;
  else {
    rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "tokenizer model '%s' not supported", model);
    goto fail;
  }
  mlxr_gguf_vtype et;
  uint64_t count;
  if (!mlxr_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, NULL) || et != MLXR_GGUF_STRING ||
      count == 0 || count > (1u << 24)) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.ggml.tokens missing or bad");
    goto fail;
  }
  t->n_vocab = (int32_t)count;
  size_t total = 0;
  for (uint64_t i = 0; i < count; i++) {
    size_t len;
    if (!mlxr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &len)) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.ggml.tokens[%llu] unreadable",
                     (unsigned long long)i);
      goto fail;
    }
    total += len + 1;
  }
  t->text = malloc(count * sizeof *t->text);
  t->text_len = malloc(count * sizeof *t->text_len);
  t->arena = malloc(total);
  t->type = malloc(count);
  t->eog = calloc(count, 1);
  t->added_index = malloc(count * sizeof *t->added_index);
  if (!t->text || !t->text_len || !t->arena || !t->type || !t->eog || !t->added_index) {
    rc = MLXR_ERR_NOMEM;
    goto fail;
  }
  size_t off = 0;
  for (uint64_t i = 0; i < count; i++) {
    size_t len;
    const char *s = mlxr_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &len);
    memcpy(t->arena + off, s, len);
    t->arena[off + len] = 0;
    t->text[i] = t->arena + off;
    t->text_len[i] = (uint32_t)len;
    if ((int32_t)len > t->max_token_len) t->max_token_len = (int32_t)len;
    off += len + 1;
    t->type[i] = MLXR_TOK_TYPE_NORMAL;
    t->added_index[i] = -1;
  }
  const void *data;
  if (mlxr_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &count, &data) && count == (uint64_t)t->n_vocab &&
      (et == MLXR_GGUF_I32 || et == MLXR_GGUF_U32)) {
    for (int32_t i = 0; i < t->n_vocab; i++) {
      int32_t v;
      memcpy(&v, (const char *)data + 4 * (size_t)i, 4);
      t->type[i] = (v >= 1 && v <= 6) ? (uint8_t)v : MLXR_TOK_TYPE_NORMAL;
    }
  }
  if (mlxr_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &count, &data) && count == (uint64_t)t->n_vocab &&
      et == MLXR_GGUF_F32) {
    t->score = malloc((size_t)t->n_vocab * sizeof *t->score);
    if (!t->score) {
      rc = MLXR_ERR_NOMEM;
      goto fail;
    }
    memcpy(t->score, data, (size_t)t->n_vocab * 4);
  }
  if ((rc = build_hash(t))) goto fail;
  t->bos = get_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab);
  t->eos = get_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab);
  t->unk = get_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab);
  t->pad = get_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab);
  t->add_bos = t->kind == MLXR_TOK_KIND_LLAMA;
  t->add_eos = false;
  mlxr_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
  mlxr_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
  if ((rc = mlxr_tok_bpe_build_merges(t, g, err, err_len))) goto fail;
  if ((rc = load_pipeline(t, g, err, err_len))) goto fail;
  for (size_t i = 0; i < t->n_added; i++) {
    mlxr_tok_added *a = &t->added[i];
    t->added_index[a->id] = (int32_t)i;
    /* An added token's text is its vocab entry; a special one is a control token. */
    if (a->special && t->type[a->id] == MLXR_TOK_TYPE_NORMAL) t->type[a->id] = MLXR_TOK_TYPE_CONTROL;
  }
  if ((rc = mlxr_tok_trie_build(t->added, t->n_added, &t->trie))) goto fail;
  {
    /* The user-defined subset, matched when special tokens are not parsed. */
    mlxr_tok_added *u = malloc((t->n_added ? t->n_added : 1) * sizeof *u);
    if (!u) {
      rc = MLXR_ERR_NOMEM;
      goto fail;
    }
    size_t nu = 0;
    for (size_t i = 0; i < t->n_added; i++)
      if (!t->added[i].special) u[nu++] = t->added[i];
    rc = mlxr_tok_trie_build(u, nu, &t->trie_user);
    free(u);
    if (rc) goto fail;
  }
  /* End of generation: eos, eot, eom, and the control tokens that chat formats end turns with. */
  if (t->eos >= 0) t->eog[t->eos] = 1;
  int32_t e = get_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab);
  if (e >= 0) t->eog[e] = 1;
  e = get_id(g, "tokenizer.ggml.eom_token_id", t->n_vocab);
  if (e >= 0) t->eog[e] = 1;
  for (size_t k = 0; k < sizeof k_eog_texts / sizeof k_eog_texts[0]; k++) {
    int32_t id = mlxr_tokenizer_find(t, k_eog_texts[k], strlen(k_eog_texts[k]));
    if (id >= 0 && t->type[id] == MLXR_TOK_TYPE_CONTROL) t->eog[id] = 1;
  }
  *out = t;
  return MLXR_OK;
fail:
  mlxr_tokenizer_free(t);
  return rc;
}
