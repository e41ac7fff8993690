/*
 * special.c: added/special token matching, and mlxr_tokenizer_encode, which drives the pipeline.
 *
 * Added tokens (tokenizer.json's added_tokens, or control/user-defined tokens of a llama.cpp
 * GGUF) are found in the raw text before normalization, leftmost-longest like HF tokenizers'
 * AddedVocabulary: a byte trie is walked from each position and the longest token that ends
 * there wins; single_word tokens only match between non-word characters; lstrip/rstrip tokens
 * swallow the whitespace on their left/right. With parse_special false only the non-special
 * (user-defined) tokens are matched, so "<|im_start|>" typed by a user stays plain text.
 *
 * Encode: invalid UTF-8 is first replaced by U+FFFD per maximal subpart (what a UTF-8 decoder
 * such as JavaScript's TextDecoder does); then the text is cut into sections at added tokens;
 * each text section is normalized, pre-tokenized and BPE-encoded; BOS/EOS are added when
 * add_special is set and the model asks for them.
 */
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/tokenizer/tokenizer_impl.h"

typedef struct trie_node {
  int32_t child;    /* first child, -1 if none */
  int32_t sibling;  /* next sibling, -1 if none */
  int32_t token;    /* index into the added array given at build, -1 if no token ends here */
  uint8_t byte;
} trie_node;

struct mlxr_tok_trie {
  trie_node *v;
  size_t n, cap;
  mlxr_tok_added *tok; /* copy of the entries (content pointers borrowed from the tokenizer) */
  size_t n_tok;
};

void mlxr_tok_trie_free(mlxr_tok_trie *t) {
  if (!t) return;
  free(t->v);
  free(t->tok);
  free(t);
}

static int32_t node_new(mlxr_tok_trie *t, uint8_t b) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 256;
    trie_node *v = realloc(t->v, cap * sizeof *v);
    if (!v) return -1;
    t->v = v;
    t->cap = cap;
  }
  t->v[t->n] = (trie_node){.child = -1, .sibling = -1, .token = -1, .byte = b};
  return (int32_t)t->n++;
}

static int32_t node_child(const mlxr_tok_trie *t, int32_t node, uint8_t b) {
  for (int32_t c = t->v[node].child; c >= 0; c = t->v[c].sibling)
    if (t->v[c].byte == b) return c;
  return -1;
}

int mlxr_tok_trie_build(const mlxr_tok_added *a, size_t n, mlxr_tok_trie **out) {
  *out = NULL;
  mlxr_tok_trie *t = calloc(1, sizeof *t);
  if (!t) return MLXR_ERR_NOMEM;
  t->tok = malloc((n ? n : 1) * sizeof *t->tok);
  if (!t->tok || node_new(t, 0) < 0) {
    mlxr_tok_trie_free(t);
    return MLXR_ERR_NOMEM;
  }
  if (n) memcpy(t->tok, a, n * sizeof *a);
  t->n_tok = n;
  for (size_t i = 0; i < n; i++) {
    int32_t node = 0;
    for (size_t k = 0; k < a[i].len; k++) {
      uint8_t b = (uint8_t)a[i].content[k];
      int32_t c = node_child(t, node, b);
      if (c < 0) {
        c = node_new(t, b);
        if (c < 0) {
          mlxr_tok_trie_free(t);
          return MLXR_ERR_NOMEM;
        }
        t->v[c].sibling = t->v[node].child;
        t->v[node].child = c;
      }
      node = c;
    }
    if (t->v[node].token < 0) t->v[node].token = (int32_t)i;
  }
  *out = t;
  return MLXR_OK;
}

/* Word character for single_word: letters, digits, marks, underscore (ASCII and beyond). */
static bool is_word_byte_at(const char *s, size_t len, size_t i) {
  unsigned char c = (unsigned char)s[i];
  (void)len;
  if (c >= 0x80) return true;
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool ws_at(const char *s, size_t len, size_t i, size_t *l) {
  uint32_t cp;
  *l = mlxr_tok_utf8_get(s + i, len - i, &cp);
  return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

static int push_section(mlxr_tok_section **v, size_t *n, size_t *cap, mlxr_tok_section s) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    mlxr_tok_section *p = realloc(*v, c * sizeof *p);
    if (!p) return MLXR_ERR_NOMEM;
    *v = p;
    *cap = c;
  }
  (*v)[(*n)++] = s;
  return MLXR_OK;
}

int mlxr_tok_split_added(const mlxr_tokenizer *t, const char *s, size_t len, bool parse_special,
                         mlxr_tok_section **out, size_t *n_out) {
  const mlxr_tok_trie *tr = parse_special ? t->trie : t->trie_user;
  mlxr_tok_section *v = NULL;
  size_t n = 0, cap = 0, text_start = 0;
  int rc = MLXR_OK;
  for (size_t i = 0; i < len && !rc;) {
    /* Longest acceptable match starting at i. */
    int32_t best = -1;
    size_t best_len = 0;
    int32_t node = 0;
    for (size_t k = i; tr && k < len; k++) {
      node = node_child(tr, node, (uint8_t)s[k]);
      if (node < 0) break;
      int32_t tk = tr->v[node].token;
      if (tk < 0) continue;
      const mlxr_tok_added *a = &tr->tok[tk];
      if (a->single_word) {
        if (i > 0 && is_word_byte_at(s, len, i - 1)) continue;
        if (k + 1 < len && is_word_byte_at(s, len, k + 1)) continue;
      }
      best = tk;
      best_len = k + 1 - i;
    }
    if (best < 0) {
      uint32_t cp;
      i += mlxr_tok_utf8_get(s + i, len - i, &cp);
      continue;
    }
    const mlxr_tok_added *a = &tr->tok[best];
    size_t tok_start = i, tok_end = i + best_len;
    if (a->lstrip) { /* swallow whitespace on the left, back to the previous section */
      size_t p = tok_start;
      while (p > text_start) {
        size_t q = p - 1, l;
        while (q > text_start && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
        if (!ws_at(s, len, q, &l)) break;
        p = q;
      }
      tok_start = p;
    }
    if (a->rstrip) {
      size_t l;
      while (tok_end < len && ws_at(s, len, tok_end, &l)) tok_end += l;
    }
    if (tok_start > text_start)
      rc = push_section(&v, &n, &cap, (mlxr_tok_section){-1, text_start, tok_start - text_start});
    if (!rc) rc = push_section(&v, &n, &cap, (mlxr_tok_section){a->id, tok_start, tok_end - tok_start});
    i = text_start = tok_end;
  }
  if (!rc && text_start < len)
    rc = push_section(&v, &n, &cap, (mlxr_tok_section){-1, text_start, len - text_start});
  if (rc) {
    free(v);
    return rc;
  }
  *out = v;
  *n_out = n;
  return MLXR_OK;
}

int mlxr_tokenizer_encode(const mlxr_tokenizer *t, const char *text, size_t len,
                          mlxr_tokenize_params params, int32_t **ids, size_t *n_ids) {
  *ids = NULL;
  *n_ids = 0;
  if (!t || (!text && len)) return MLXR_ERR_INVALID;
  mlxr_tok_buf clean = {0};
  int rc = mlxr_tok_utf8_lossy(&clean, text ? text : "", len);
  if (rc) return rc;
  mlxr_tok_section *sec = NULL;
  size_t nsec = 0;
  mlxr_tok_ids out = {0};
  mlxr_tok_buf norm = {0};
  rc = mlxr_tok_split_added(t, clean.s, clean.n, params.parse_special, &sec, &nsec);
  if (!rc && params.add_special && t->add_bos && t->bos >= 0) rc = mlxr_tok_ids_push(&out, t->bos);
  for (size_t i = 0; i < nsec && !rc; i++) {
    if (sec[i].id >= 0) {
      rc = mlxr_tok_ids_push(&out, sec[i].id);
      continue;
    }
    rc = mlxr_tok_norm_apply(t->norm, clean.s + sec[i].off, sec[i].len, &norm);
    if (rc || norm.n == 0) continue;
    mlxr_tok_pieces words = {0};
    rc = mlxr_tok_pre_apply(t->pre, norm.s, norm.n, sec[i].off == 0, &words);
    for (size_t w = 0; w < words.n && !rc; w++) rc = mlxr_tok_bpe_word(t, words.v[w].s, words.v[w].n, &out);
    mlxr_tok_pieces_free(&words);
  }
  if (!rc && params.add_special && t->add_eos && t->eos >= 0) rc = mlxr_tok_ids_push(&out, t->eos);
  free(sec);
  free(norm.s);
  free(clean.s);
  if (rc) {
    free(out.v);
    return rc;
  }
  if (!out.v) {
    out.v = malloc(sizeof *out.v);
    if (!out.v) return MLXR_ERR_NOMEM;
  }
  *ids = out.v;
  *n_ids = out.n;
  return MLXR_OK;
}
