/*
 * bpe.c: byte-pair encoding of one pre-tokenized word.
 *
 * The word starts as one symbol per code point (looked up in the vocabulary; a code point that
 * is not there becomes its <0xXX> byte tokens with byte_fallback, else the unknown token). Then
 * pairs of neighbouring symbols are merged, best first, until none applies:
 *   - with merges (gpt2 files, and llama files converted from tokenizer.json): the pair's merge
 *     rank, lowest first, ties to the leftmost pair (HF tokenizers' BPE);
 *   - without merges ("llama" from a SentencePiece GGUF): the score of the merged token, highest
 *     first, ties to the leftmost pair, merging only into tokens that exist (SentencePiece BPE).
 * Symbols live in an array used as a doubly linked list; candidate pairs in a binary heap; a
 * popped pair is checked against the current list (stale entries are skipped), so the loop is
 * O(n log n) in the word length. Merges are an open-addressing hash (left id, right id) ->
 * (rank, merged id), built at load from tokenizer.ggml.merges.
 */
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/tokenizer/tokenizer_impl.h"

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

static bool merge_find(const mlxr_tokenizer *t, int32_t l, int32_t r, int32_t *rank, int32_t *res) {
  if (!t->merge_cap) return false;
  uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
  size_t m = t->merge_cap - 1;
  for (size_t i = mix64(key) & m;; i = (i + 1) & m) {
    if (t->merge_key[i] == UINT64_MAX) return false;
    if (t->merge_key[i] == key) {
      *rank = t->merge_rank[i];
      *res = t->merge_res[i];
      return true;
    }
  }
}

int mlxr_tok_bpe_build_merges(mlxr_tokenizer *t, const mlxr_gguf *g, char *err, size_t err_len) {
  mlxr_gguf_vtype et;
  uint64_t count;
  if (!mlxr_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &count, NULL) || count == 0) {
    if (t->kind == MLXR_TOK_KIND_GPT2)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "gpt2 tokenizer without tokenizer.ggml.merges");
    return MLXR_OK;
  }
  if (et != MLXR_GGUF_STRING || count > (1u << 26))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.ggml.merges: bad array");
  size_t cap = 16;
  while (cap < count * 2) cap *= 2;
  t->merge_key = malloc(cap * sizeof *t->merge_key);
  t->merge_rank = malloc(cap * sizeof *t->merge_rank);
  t->merge_res = malloc(cap * sizeof *t->merge_res);
  if (!t->merge_key || !t->merge_rank || !t->merge_res) return MLXR_ERR_NOMEM;
  memset(t->merge_key, 0xFF, cap * sizeof *t->merge_key);
  t->merge_cap = cap;
  char *tmp = malloc((size_t)t->max_token_len * 2 + 8);
  if (!tmp) return MLXR_ERR_NOMEM;
  for (uint64_t k = 0; k < count; k++) {
    size_t len;
    const char *s = mlxr_gguf_get_arr_str(g, "tokenizer.ggml.merges", k, &len);
    if (!s) {
      free(tmp);
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "tokenizer.ggml.merges[%llu] unreadable",
                       (unsigned long long)k);
    }
    /* "left right": tokens may themselves contain spaces, so take the first split whose
     * halves and whose concatenation are all in the vocabulary. */
    int32_t l = -1, r = -1, res = -1;
    for (size_t p = 1; p + 1 < len; p++) {
      if (s[p] != ' ') continue;
      int32_t a = mlxr_tokenizer_find(t, s, p), b = mlxr_tokenizer_find(t, s + p + 1, len - p - 1);
      if (a < 0 || b < 0) continue;
      size_t cl = p + (len - p - 1);
      if (cl > (size_t)t->max_token_len) continue;
      memcpy(tmp, s, p);
      memcpy(tmp + p, s + p + 1, len - p - 1);
      int32_t c = mlxr_tokenizer_find(t, tmp, cl);
      if (c < 0) continue;
      l = a;
      r = b;
      res = c;
      break;
    }
    if (l < 0) continue; /* a merge that cannot apply: HF rejects such files; we skip it */
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t i = mix64(key) & (cap - 1);
    while (t->merge_key[i] != UINT64_MAX && t->merge_key[i] != key) i = (i + 1) & (cap - 1);
    if (t->merge_key[i] == key) continue; /* first (best) rank wins */
    t->merge_key[i] = key;
    t->merge_rank[i] = (int32_t)k;
    t->merge_res[i] = res;
    t->n_merges++;
  }
  free(tmp);
  return MLXR_OK;
}

/* ---- the merge loop ---- */

typedef struct sym {
  int32_t prev, next; /* indices, -1 at the ends */
  uint32_t start, len; /* bytes of the word; len 0 = merged away */
  int32_t id;          /* vocab id, or -1 (unknown char, score mode) */
  bool fixed;          /* byte-fallback / unk symbol: never merges */
} sym;

typedef struct cand {
  double key;    /* lower is better */
  int32_t left;  /* symbol index */
  int32_t right;
  uint32_t llen, rlen; /* lengths when pushed, to detect stale entries */
  int32_t res;   /* merged id */
} cand;

typedef struct heap {
  cand *v;
  size_t n, cap;
} heap;

static bool cand_less(const cand *a, const cand *b) {
  if (a->key != b->key) return a->key < b->key;
  return a->left < b->left; /* symbol indices increase left to right */
}

static int heap_push(heap *h, cand c) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    cand *v = realloc(h->v, cap * sizeof *v);
    if (!v) return MLXR_ERR_NOMEM;
    h->v = v;
    h->cap = cap;
  }
  size_t i = h->n++;
  h->v[i] = c;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!cand_less(&h->v[i], &h->v[p])) break;
    cand tmp = h->v[i];
    h->v[i] = h->v[p];
    h->v[p] = tmp;
    i = p;
  }
  return MLXR_OK;
}

static cand heap_pop(heap *h) {
  cand top = h->v[0];
  h->v[0] = h->v[--h->n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && cand_less(&h->v[l], &h->v[m])) m = l;
    if (r < h->n && cand_less(&h->v[r], &h->v[m])) m = r;
    if (m == i) break;
    cand tmp = h->v[i];
    h->v[i] = h->v[m];
    h->v[m] = tmp;
    i = m;
  }
  return top;
}

static int try_pair(const mlxr_tokenizer *t, const char *w, const sym *s, int32_t li, heap *h) {
  const sym *a = &s[li];
  if (a->next < 0) return MLXR_OK;
  const sym *b = &s[a->next];
  if (a->fixed || b->fixed) return MLXR_OK;
  cand c = {.left = li, .right = a->next, .llen = a->len, .rlen = b->len};
  if (t->merge_cap) {
    int32_t rank;
    if (a->id < 0 || b->id < 0 || !merge_find(t, a->id, b->id, &rank, &c.res)) return MLXR_OK;
    c.key = rank;
  } else {
    /* Score mode: the pair's text must be a token; adjacent symbols are contiguous in w. */
    int32_t id = mlxr_tokenizer_find(t, w + a->start, a->len + b->len);
    if (id < 0) return MLXR_OK;
    c.res = id;
    c.key = t->score ? -(double)t->score[id] : (double)id;
  }
  return heap_push(h, c);
}

static int push_bytes(const mlxr_tokenizer *t, const char *s, size_t n, mlxr_tok_ids *out) {
  for (size_t i = 0; i < n; i++) {
    char name[8];
    static const char hex[] = "0123456789ABCDEF";
    unsigned char c = (unsigned char)s[i];
    name[0] = '<', name[1] = '0', name[2] = 'x', name[3] = hex[c >> 4], name[4] = hex[c & 15], name[5] = '>';
    int32_t id = mlxr_tokenizer_find(t, name, 6);
    if (id < 0) id = t->unk;
    if (id < 0) continue;
    int rc = mlxr_tok_ids_push(out, id);
    if (rc) return rc;
  }
  return MLXR_OK;
}

/* Are all bytes of s present as <0xXX> tokens? (Else HF falls back to unk.) */
static bool bytes_known(const mlxr_tokenizer *t, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char name[6] = {'<', '0', 'x', hex[c >> 4], hex[c & 15], '>'};
    if (mlxr_tokenizer_find(t, name, 6) < 0) return false;
  }
  return true;
}

int mlxr_tok_bpe_word(const mlxr_tokenizer *t, const char *w, size_t n, mlxr_tok_ids *out) {
  if (n == 0) return MLXR_OK;
  if (t->ignore_merges) {
    int32_t id = mlxr_tokenizer_find(t, w, n);
    if (id >= 0) return mlxr_tok_ids_push(out, id);
  }
  size_t nsym = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    i += mlxr_tok_utf8_get(w + i, n - i, &cp);
    nsym++;
  }
  sym *s = malloc(nsym * sizeof *s);
  if (!s) return MLXR_ERR_NOMEM;
  heap h = {0};
  int rc = MLXR_OK;
  size_t k = 0;
  for (size_t i = 0; i < n; k++) {
    uint32_t cp;
    size_t l = mlxr_tok_utf8_get(w + i, n - i, &cp);
    s[k].prev = (int32_t)k - 1;
    s[k].next = k + 1 < nsym ? (int32_t)k + 1 : -1;
    s[k].start = (uint32_t)i;
    s[k].len = (uint32_t)l;
    s[k].fixed = false;
    if (t->cont_prefix && k > 0) {
      size_t pl = strlen(t->cont_prefix);
      char buf[64];
      s[k].id = -1;
      if (pl + l <= sizeof buf) {
        memcpy(buf, t->cont_prefix, pl);
        memcpy(buf + pl, w + i, l);
        s[k].id = mlxr_tokenizer_find(t, buf, pl + l);
      }
    } else
      s[k].id = mlxr_tokenizer_find(t, w + i, l);
    if (s[k].id < 0 && t->merge_cap) s[k].fixed = true; /* unknown char: bytes or unk */
    i += l;
  }
  for (size_t i = 0; i + 1 < nsym && !rc; i++) rc = try_pair(t, w, s, (int32_t)i, &h);
  while (!rc && h.n) {
    cand c = heap_pop(&h);
    sym *a = &s[c.left];
    if (a->len != c.llen || a->next != c.right) continue;
    sym *b = &s[c.right];
    if (b->len != c.rlen) continue;
    a->len += b->len;
    a->id = c.res;
    a->next = b->next;
    if (b->next >= 0) s[b->next].prev = c.left;
    b->len = 0;
    if (a->prev >= 0) rc = try_pair(t, w, s, a->prev, &h);
    if (!rc) rc = try_pair(t, w, s, c.left, &h);
  }
  free(h.v);
  bool last_unk = false;
  for (int32_t i = 0; !rc && i >= 0 && (size_t)i < nsym; i = s[i].next) {
    if (s[i].id >= 0) {
      rc = mlxr_tok_ids_push(out, s[i].id);
      last_unk = s[i].id == t->unk;
      continue;
    }
    const char *p = w + s[i].start;
    if (t->byte_fallback && bytes_known(t, p, s[i].len)) {
      rc = push_bytes(t, p, s[i].len, out);
      last_unk = false;
    } else if (t->unk >= 0) {
      if (!(t->fuse_unk && last_unk)) rc = mlxr_tok_ids_push(out, t->unk);
      last_unk = true;
    }
  }
  free(s);
  return rc;
}
