/*
 * convert_tokenizer.c: Hugging Face tokenizer files -> GGUF tokenizer metadata.
 *
 * Reads tokenizer.json (model must be BPE) and tokenizer_config.json, and sets:
 *   tokenizer.ggml.model       "llama" for SentencePiece-style BPE (byte_fallback, U+2581 spaces),
 *                              "gpt2" for byte-level BPE;
 *   tokenizer.ggml.tokens      every id 0..n-1 (vocab and added tokens; holes as [PADn]);
 *   tokenizer.ggml.token_type  1 normal, 3 control (special added), 4 user-defined (other added),
 *                              6 byte (<0xXX> of a "llama" vocab);
 *   tokenizer.ggml.scores      "llama" only: minus the rank of the merge that makes the token
 *                              (0 for unmerged ones), so score-ordered merging follows merges;
 *   tokenizer.ggml.merges      "left right" strings in rank order;
 *   *_token_id, add_bos_token / add_eos_token (the post_processor's template when there is one,
 *   else tokenizer_config.json), tokenizer.ggml.pre (the llama.cpp name with the same split
 *   regexes, "default" otherwise), tokenizer.chat_template (and .NAME for the list form);
 *   tokenizer.mlxr.{normalizer,pre_tokenizer,decoder,model_options,added_tokens} as JSON texts.
 * Nothing here is kept after the call; the writer copies what it is given.
 */
#include "tools/convert_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/tokenizer/tokenizer_impl.h"

static int read_file(const char *path, char **out, size_t *len, char *err, size_t err_len) {
  FILE *f = fopen(path, "rb");
  if (!f) return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot open %s", path);
  char *buf = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 65536 + 1 > cap) {
      cap = cap ? cap * 2 : 1 << 20;
      char *p = realloc(buf, cap);
      if (!p) {
        free(buf);
        fclose(f);
        return MLXR_ERR_NOMEM;
      }
      buf = p;
    }
    size_t r = fread(buf + n, 1, 65536, f);
    n += r;
    if (r < 65536) break;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "read error on %s", path);
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  return MLXR_OK;
}

static int load_json(const char *dir, const char *name, bool required, cJSON **out, char *err, size_t err_len) {
  char path[4096];
  *out = NULL;
  if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "path too long");
  char *buf = NULL;
  size_t len = 0;
  int rc = read_file(path, &buf, &len, err, err_len);
  if (rc) return required ? rc : MLXR_OK;
  *out = cJSON_ParseWithLength(buf, len);
  free(buf);
  if (!*out) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s: invalid JSON", path);
  return MLXR_OK;
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static const char *type_of(const cJSON *o) {
  const cJSON *t = get(o, "type");
  return cJSON_IsString(t) ? t->valuestring : "";
}

/* Does the component (or a Sequence inside it) have a step of this type? */
static const cJSON *find_type(const cJSON *o, const char *type, const char *seq_key) {
  if (!o || cJSON_IsNull(o)) return NULL;
  if (strcmp(type_of(o), type) == 0) return o;
  if (strcmp(type_of(o), "Sequence") == 0) {
    const cJSON *e;
    cJSON_ArrayForEach(e, get(o, seq_key)) {
      const cJSON *r = find_type(e, type, seq_key);
      if (r) return r;
    }
  }
  return NULL;
}

/* A token named in tokenizer_config.json: a string or {"content": ...}. */
static const char *config_token(const cJSON *cfg, const char *key) {
  const cJSON *v = get(cfg, key);
  if (cJSON_IsString(v)) return v->valuestring;
  if (cJSON_IsObject(v) && cJSON_IsString(get(v, "content"))) return get(v, "content")->valuestring;
  return NULL;
}

/* Sorted (text, id) pairs of model.vocab: cJSON object lookup is a linear scan. */
typedef struct vent {
  const char *s;
  int32_t id;
} vent;

static int vent_cmp(const void *a, const void *b) { return strcmp(((const vent *)a)->s, ((const vent *)b)->s); }

static int32_t vent_find(const vent *v, size_t n, const char *s) {
  vent key = {s, 0};
  const vent *r = bsearch(&key, v, n, sizeof *v, vent_cmp);
  return r ? r->id : -1;
}

static int32_t vocab_id(const cJSON *model_vocab, const cJSON *added, const char *s) {
  if (!s) return -1;
  const cJSON *e;
  cJSON_ArrayForEach(e, added) {
    const cJSON *c = get(e, "content"), *id = get(e, "id");
    if (cJSON_IsString(c) && cJSON_IsNumber(id) && strcmp(c->valuestring, s) == 0) return (int32_t)id->valuedouble;
  }
  const cJSON *v = get(model_vocab, s);
  return cJSON_IsNumber(v) ? (int32_t)v->valuedouble : -1;
}

static int set_json(mlxr_gguf_writer *w, const char *key, const cJSON *j) {
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  int rc = mlxr_gguf_set_str(w, key, s ? s : "null");
  free(s);
  return rc;
}

/* Collect the Split regexes of a pre_tokenizer made of Splits and a ByteLevel; returns the
 * llama.cpp name for them, or NULL. */
static const char *pre_name_for(const cJSON *pre) {
  const char *regs[16];
  char *owned[16];
  size_t n = 0;
  const cJSON *steps[17];
  size_t ns = 0;
  if (!pre || cJSON_IsNull(pre)) return NULL;
  if (strcmp(type_of(pre), "Sequence") == 0) {
    const cJSON *e;
    cJSON_ArrayForEach(e, get(pre, "pretokenizers")) {
      if (ns == 16) return NULL;
      steps[ns++] = e;
    }
  } else
    steps[ns++] = pre;
  const char *result = NULL;
  bool ok = true;
  for (size_t i = 0; i < ns && ok; i++) {
    const char *ty = type_of(steps[i]);
    if (strcmp(ty, "Split") == 0) {
      const cJSON *r = get(get(steps[i], "pattern"), "Regex");
      const cJSON *b = get(steps[i], "behavior");
      if (!cJSON_IsString(r) || !cJSON_IsString(b) || strcmp(b->valuestring, "Isolated") != 0 ||
          cJSON_IsTrue(get(steps[i], "invert")) || n == 16) {
        ok = false;
        break;
      }
      /* llama.cpp writes the case-insensitive contraction group as explicit classes. */
      static const char ci[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
      static const char cs[] = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
      const char *src = r->valuestring;
      const char *hit = strstr(src, ci);
      if (hit) {
        size_t len = strlen(src) + sizeof cs;
        char *c = malloc(len);
        if (!c) {
          ok = false;
          break;
        }
        snprintf(c, len, "%.*s%s%s", (int)(hit - src), src, cs, hit + sizeof ci - 1);
        owned[n] = c;
        regs[n++] = c;
      } else {
        owned[n] = NULL;
        regs[n++] = src;
      }
    } else if (strcmp(ty, "ByteLevel") == 0) {
      if (!cJSON_IsFalse(get(steps[i], "use_regex")) && n == 0 && i + 1 == ns) {
        result = "gpt-2";
      }
    } else
      ok = false;
  }
  if (ok && n > 0) result = mlxr_tok_pre_name_match(regs, n);
  for (size_t i = 0; i < n; i++) free(owned[i]);
  return ok ? result : NULL;
}

/* The post_processor's single-sequence template: leading / trailing special tokens. */
static void template_specials(const cJSON *pp, const cJSON *mv, const cJSON *added, int32_t *bos, int32_t *eos,
                              bool *found) {
  const cJSON *tp = find_type(pp, "TemplateProcessing", "processors");
  *found = tp != NULL;
  *bos = *eos = -1;
  if (!tp) return;
  const cJSON *single = get(tp, "single");
  int n = cJSON_GetArraySize(single);
  const cJSON *first = cJSON_GetArrayItem(single, 0), *last = cJSON_GetArrayItem(single, n - 1);
  const cJSON *fs = get(first, "SpecialToken"), *ls = get(last, "SpecialToken");
  if (fs && cJSON_IsString(get(fs, "id"))) *bos = vocab_id(mv, added, get(fs, "id")->valuestring);
  if (n > 1 && ls && cJSON_IsString(get(ls, "id"))) *eos = vocab_id(mv, added, get(ls, "id")->valuestring);
}

int mlxr_convert_tokenizer(const char *hf_dir, mlxr_gguf_writer *w, char *err, size_t err_len) {
  cJSON *tj = NULL, *cfg = NULL;
  char **toks = NULL;
  int32_t *types = NULL;
  float *scores = NULL;
  char **merges = NULL;
  int n_merges = 0;
  int32_t n = 0;
  int rc = load_json(hf_dir, "tokenizer.json", true, &tj, err, err_len);
  if (rc) return rc;
  if ((rc = load_json(hf_dir, "tokenizer_config.json", false, &cfg, err, err_len))) goto done;
  const cJSON *model = get(tj, "model");
  if (strcmp(type_of(model), "BPE") != 0) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "tokenizer model '%s' not supported (BPE only)",
                   type_of(model));
    goto done;
  }
  const cJSON *mv = get(model, "vocab"), *added = get(tj, "added_tokens");
  const cJSON *norm = get(tj, "normalizer"), *pre = get(tj, "pre_tokenizer"), *dec = get(tj, "decoder");
  const cJSON *pp = get(tj, "post_processor");
  if (!cJSON_IsObject(mv)) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.json: model.vocab missing");
    goto done;
  }
  bool byte_level = find_type(pre, "ByteLevel", "pretokenizers") || find_type(dec, "ByteLevel", "decoders");
  bool llama = !byte_level && (cJSON_IsTrue(get(model, "byte_fallback")) || find_type(pre, "Metaspace", "pretokenizers") ||
                               find_type(norm, "Replace", "normalizers") || find_type(dec, "ByteFallback", "decoders"));
  /* ids */
  const cJSON *e;
  cJSON_ArrayForEach(e, mv) {
    if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (1 << 24)) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.json: bad vocab id");
      goto done;
    }
    if ((int32_t)e->valuedouble + 1 > n) n = (int32_t)e->valuedouble + 1;
  }
  cJSON_ArrayForEach(e, added) {
    const cJSON *id = get(e, "id");
    if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= (1 << 24) || !cJSON_IsString(get(e, "content"))) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.json: bad added token");
      goto done;
    }
    if ((int32_t)id->valuedouble + 1 > n) n = (int32_t)id->valuedouble + 1;
  }
  if (n == 0) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.json: empty vocabulary");
    goto done;
  }
  {
    /* Models often have more embedding rows than tokens (config.json vocab_size): the token list
     * is padded to match, as llama.cpp's converter does, so the GGUF's token count equals the
     * embedding rows and llama.cpp accepts the file. */
    cJSON *model_cfg = NULL;
    if ((rc = load_json(hf_dir, "config.json", false, &model_cfg, err, err_len))) goto done;
    const cJSON *vs = model_cfg ? get(model_cfg, "vocab_size") : NULL;
    if (!vs && model_cfg) vs = get(get(model_cfg, "text_config"), "vocab_size");
    if (cJSON_IsNumber(vs) && vs->valuedouble > n && vs->valuedouble < (1 << 24)) n = (int32_t)vs->valuedouble;
    cJSON_Delete(model_cfg);
  }
  toks = calloc((size_t)n, sizeof *toks);
  types = malloc((size_t)n * sizeof *types);
  scores = calloc((size_t)n, sizeof *scores);
  if (!toks || !types || !scores) {
    rc = MLXR_ERR_NOMEM;
    goto done;
  }
  for (int32_t i = 0; i < n; i++) types[i] = MLXR_TOK_TYPE_NORMAL;
  cJSON_ArrayForEach(e, mv) { toks[(int32_t)e->valuedouble] = e->string; }
  cJSON_ArrayForEach(e, added) {
    int32_t id = (int32_t)get(e, "id")->valuedouble;
    toks[id] = get(e, "content")->valuestring;
    types[id] = cJSON_IsTrue(get(e, "special")) ? MLXR_TOK_TYPE_CONTROL : MLXR_TOK_TYPE_USER;
  }
  char **pads = calloc((size_t)n, sizeof *pads);
  if (!pads) {
    rc = MLXR_ERR_NOMEM;
    goto done;
  }
  for (int32_t i = 0; i < n && !rc; i++) {
    if (toks[i]) {
      if (llama && types[i] == MLXR_TOK_TYPE_NORMAL && strlen(toks[i]) == 6 && strncmp(toks[i], "<0x", 3) == 0 &&
          toks[i][5] == '>')
        types[i] = MLXR_TOK_TYPE_BYTE;
      continue;
    }
    pads[i] = malloc(32);
    if (!pads[i]) rc = MLXR_ERR_NOMEM;
    else {
      snprintf(pads[i], 32, "[PAD%d]", (int)i);
      toks[i] = pads[i];
      types[i] = MLXR_TOK_TYPE_UNUSED;
    }
  }
  /* merges */
  const cJSON *jm = get(model, "merges");
  n_merges = cJSON_GetArraySize(jm);
  if (!rc && n_merges > 0) {
    merges = calloc((size_t)n_merges, sizeof *merges);
    if (!merges) rc = MLXR_ERR_NOMEM;
    int k = 0;
    cJSON_ArrayForEach(e, jm) {
      if (rc) break;
      if (cJSON_IsString(e)) {
        merges[k] = strdup(e->valuestring);
      } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                 cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
        const char *a = cJSON_GetArrayItem(e, 0)->valuestring, *b = cJSON_GetArrayItem(e, 1)->valuestring;
        size_t l = strlen(a) + strlen(b) + 2;
        merges[k] = malloc(l);
        if (merges[k]) snprintf(merges[k], l, "%s %s", a, b);
      } else {
        rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.json: bad merge #%d", k);
        break;
      }
      if (!merges[k]) rc = MLXR_ERR_NOMEM;
      k++;
    }
    /* Scores for "llama": -rank of the merge producing each token. */
    if (!rc && llama) {
      char *tmp = NULL;
      size_t tcap = 0;
      size_t nv = (size_t)cJSON_GetArraySize(mv);
      vent *vs = malloc((nv ? nv : 1) * sizeof *vs);
      if (!vs) rc = MLXR_ERR_NOMEM;
      size_t kv = 0;
      cJSON_ArrayForEach(e, mv) {
        if (vs && kv < nv) vs[kv++] = (vent){e->string, (int32_t)e->valuedouble};
      }
      if (vs) qsort(vs, kv, sizeof *vs, vent_cmp);
      for (int k2 = 0; k2 < n_merges && !rc; k2++) {
        size_t l = strlen(merges[k2]);
        if (l + 1 > tcap) {
          tcap = l + 64;
          char *p = realloc(tmp, tcap);
          if (!p) {
            rc = MLXR_ERR_NOMEM;
            break;
          }
          tmp = p;
        }
        /* join at the first space whose halves are tokens (tokens may contain spaces) */
        for (size_t p = 1; p + 1 < l; p++) {
          if (merges[k2][p] != ' ') continue;
          memcpy(tmp, merges[k2], p);
          memcpy(tmp + p, merges[k2] + p + 1, l - p - 1);
          tmp[l - 1] = 0;
          int32_t t = vent_find(vs, kv, tmp);
          if (t >= 0) {
            if (scores[t] == 0) scores[t] = -(float)(k2 + 1);
            break;
          }
        }
      }
      free(tmp);
      free(vs);
    }
  }
  if (rc) goto done_pads;
  if ((rc = mlxr_gguf_set_str(w, "tokenizer.ggml.model", llama ? "llama" : "gpt2")) ||
      (rc = mlxr_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (uint64_t)n)) ||
      (rc = mlxr_gguf_set_arr(w, "tokenizer.ggml.token_type", MLXR_GGUF_I32, types, (uint64_t)n)))
    goto done_pads;
  if (llama && (rc = mlxr_gguf_set_arr(w, "tokenizer.ggml.scores", MLXR_GGUF_F32, scores, (uint64_t)n))) goto done_pads;
  if (n_merges > 0 &&
      (rc = mlxr_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL, (uint64_t)n_merges)))
    goto done_pads;
  {
    int32_t bos = vocab_id(mv, added, config_token(cfg, "bos_token"));
    int32_t eos = vocab_id(mv, added, config_token(cfg, "eos_token"));
    int32_t unk = vocab_id(mv, added, config_token(cfg, "unk_token"));
    int32_t pad = vocab_id(mv, added, config_token(cfg, "pad_token"));
    if (unk < 0 && cJSON_IsString(get(model, "unk_token"))) unk = vocab_id(mv, added, get(model, "unk_token")->valuestring);
    int32_t tb, te;
    bool has_tpl;
    template_specials(pp, mv, added, &tb, &te, &has_tpl);
    bool add_bos, add_eos;
    if (has_tpl) {
      add_bos = tb >= 0;
      add_eos = te >= 0;
      if (tb >= 0 && bos < 0) bos = tb;
      if (te >= 0 && eos < 0) eos = te;
    } else {
      add_bos = cJSON_IsTrue(get(cfg, "add_bos_token"));
      add_eos = cJSON_IsTrue(get(cfg, "add_eos_token"));
    }
    if (bos >= 0) rc = mlxr_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    if (!rc && eos >= 0) rc = mlxr_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    if (!rc && unk >= 0) rc = mlxr_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
    if (!rc && pad >= 0) rc = mlxr_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad);
    if (!rc) rc = mlxr_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    if (!rc) rc = mlxr_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos);
    if (rc) goto done_pads;
  }
  {
    const char *pname = llama ? "default" : pre_name_for(pre);
    if ((rc = mlxr_gguf_set_str(w, "tokenizer.ggml.pre", pname ? pname : "default"))) goto done_pads;
    if (llama) {
      const cJSON *pp2 = find_type(norm, "Prepend", "normalizers");
      const cJSON *ms = find_type(pre, "Metaspace", "pretokenizers");
      bool prefix = pp2 != NULL || (ms && !(cJSON_IsString(get(ms, "prepend_scheme")) &&
                                           strcmp(get(ms, "prepend_scheme")->valuestring, "never") == 0));
      if ((rc = mlxr_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", prefix))) goto done_pads;
    }
  }
  /* chat template: a string, or a list of {name, template} */
  {
    const cJSON *ct = get(cfg, "chat_template");
    if (cJSON_IsString(ct)) rc = mlxr_gguf_set_str(w, "tokenizer.chat_template", ct->valuestring);
    else if (cJSON_IsArray(ct)) {
      cJSON_ArrayForEach(e, ct) {
        const cJSON *nm = get(e, "name"), *tp = get(e, "template");
        if (!cJSON_IsString(nm) || !cJSON_IsString(tp)) continue;
        char key[256];
        if (strcmp(nm->valuestring, "default") == 0) snprintf(key, sizeof key, "tokenizer.chat_template");
        else if ((size_t)snprintf(key, sizeof key, "tokenizer.chat_template.%s", nm->valuestring) >= sizeof key)
          continue;
        if ((rc = mlxr_gguf_set_str(w, key, tp->valuestring))) break;
      }
    }
    if (rc) goto done_pads;
  }
  /* the HF pipeline */
  {
    cJSON *opts = cJSON_CreateObject();
    cJSON *adl = cJSON_CreateArray();
    if (!opts || !adl) {
      cJSON_Delete(opts);
      cJSON_Delete(adl);
      rc = MLXR_ERR_NOMEM;
      goto done_pads;
    }
    cJSON_AddBoolToObject(opts, "byte_fallback", cJSON_IsTrue(get(model, "byte_fallback")));
    cJSON_AddBoolToObject(opts, "ignore_merges", cJSON_IsTrue(get(model, "ignore_merges")));
    cJSON_AddBoolToObject(opts, "fuse_unk", cJSON_IsTrue(get(model, "fuse_unk")));
    const char *ks[] = {"continuing_subword_prefix", "end_of_word_suffix", "unk_token"};
    for (size_t k = 0; k < 3; k++)
      if (cJSON_IsString(get(model, ks[k]))) cJSON_AddStringToObject(opts, ks[k], get(model, ks[k])->valuestring);
    cJSON_ArrayForEach(e, added) {
      cJSON *o = cJSON_CreateObject();
      if (!o) continue;
      cJSON_AddStringToObject(o, "content", get(e, "content")->valuestring);
      cJSON_AddNumberToObject(o, "id", get(e, "id")->valuedouble);
      const char *bk[] = {"special", "lstrip", "rstrip", "normalized", "single_word"};
      for (size_t k = 0; k < 5; k++) cJSON_AddBoolToObject(o, bk[k], cJSON_IsTrue(get(e, bk[k])));
      cJSON_AddItemToArray(adl, o);
    }
    if (!(rc = set_json(w, "tokenizer.mlxr.normalizer", norm)) && !(rc = set_json(w, "tokenizer.mlxr.pre_tokenizer", pre)) &&
        !(rc = set_json(w, "tokenizer.mlxr.decoder", dec)) && !(rc = set_json(w, "tokenizer.mlxr.model_options", opts)))
      rc = set_json(w, "tokenizer.mlxr.added_tokens", adl);
    cJSON_Delete(opts);
    cJSON_Delete(adl);
  }
done_pads:
  for (int32_t i = 0; i < n; i++) free(pads[i]);
  free(pads);
done:
  if (merges)
    for (int k = 0; k < n_merges; k++) free(merges[k]);
  free(merges);
  free(toks);
  free(types);
  free(scores);
  cJSON_Delete(tj);
  cJSON_Delete(cfg);
  return rc;
}
