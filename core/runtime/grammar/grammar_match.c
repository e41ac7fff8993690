/*
 * grammar_match.c: the incremental matcher and the token byte table (see grammar.h).
 *
 * A stack set is a flat uint32 buffer of stacks, each written as [n, pos_0 .. pos_{n-1}] with the
 * top (the next terminal to match) last. The matcher owns three sets: the committed state and two
 * scratch sets that a try alternates between, one code point at a time; accepting just makes the
 * final scratch set the committed one. Each set build deduplicates stacks through an open-
 * addressed hash table whose slots carry a build stamp, so it never needs clearing.
 *
 * expand() turns a stack into stacks that end at terminals: a RULE_REF on top is replaced, for
 * each alternative of the rule, by (the position after the reference, if any) + (the
 * alternative's first element, if any), recursively; new stacks are written into a scratch stack
 * buffer. Since the parser rejects left recursion the recursion is bounded by the grammar; the
 * MAX_* limits below bound it for any grammar anyway (exceeding them drops the stack).
 */
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar_impl.h"

#define MAX_STACK_LEN 2048     /* positions in one stack (nesting depth of the input) */
#define MAX_STACKS 4096        /* stacks in one set */
#define MAX_SET_WORDS (1u << 22)
#define MAX_EXPAND_DEPTH 512   /* nested rule expansions for one stack */
#define HASH_SLOTS 8192        /* > 2 * MAX_STACKS, power of two */

typedef struct stackset {
  uint32_t *w;     /* [cap] words: stacks as [n, positions...] */
  uint32_t len, cap;
  uint32_t n_stacks;
} stackset;

struct mlxr_grammar_matcher {
  const mlxr_grammar *g;
  stackset sets[3];
  int cur;                /* committed set */
  /* committed partial UTF-8 code point: value so far, bytes still needed, sequence length */
  uint32_t pv;
  int prem, plen;
  uint32_t *scratch;      /* [scratch_cap] stacks under construction in expand() */
  uint32_t scratch_cap;
  uint32_t *ht_off;       /* [HASH_SLOTS] set offset + 1 of a stack */
  uint32_t *ht_stamp;     /* [HASH_SLOTS] build that filled the slot */
  uint32_t stamp;
  bool overflow;          /* a limit dropped stacks in the last build */
};

struct mlxr_grammar_vocab {
  uint8_t *bytes;         /* all tokens' bytes, concatenated */
  uint64_t *off;          /* [n + 1] token i is bytes[off[i] .. off[i+1]) */
  int32_t n;
};

/* ---- stack sets ---- */

static bool set_reserve(stackset *s, uint32_t extra) {
  if (s->len + extra <= s->cap) return true;
  uint64_t cap = s->cap ? s->cap : 1024;
  while (cap < (uint64_t)s->len + extra) cap *= 2;
  if (cap > MAX_SET_WORDS) return false;
  uint32_t *w = realloc(s->w, (size_t)cap * sizeof(uint32_t));
  if (!w) return false;
  s->w = w;
  s->cap = (uint32_t)cap;
  return true;
}

static void set_begin(mlxr_grammar_matcher *m, stackset *s) {
  s->len = 0;
  s->n_stacks = 0;
  if (++m->stamp == 0) { /* wrapped: clear the table once */
    memset(m->ht_stamp, 0, HASH_SLOTS * sizeof(uint32_t));
    m->stamp = 1;
  }
}

static uint32_t hash_stack(const uint32_t *p, uint32_t n) {
  uint32_t h = 2166136261u ^ n;
  for (uint32_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 16777619u;
  }
  return h;
}

/* Add stack p[0..n) to s unless it is there already. */
static void set_add(mlxr_grammar_matcher *m, stackset *s, const uint32_t *p, uint32_t n) {
  uint32_t slot = hash_stack(p, n) & (HASH_SLOTS - 1);
  while (m->ht_stamp[slot] == m->stamp) {
    const uint32_t *q = s->w + m->ht_off[slot] - 1;
    if (q[0] == n && memcmp(q + 1, p, n * sizeof(uint32_t)) == 0) return;
    slot = (slot + 1) & (HASH_SLOTS - 1);
  }
  if (s->n_stacks >= MAX_STACKS || !set_reserve(s, n + 1)) {
    m->overflow = true;
    return;
  }
  m->ht_stamp[slot] = m->stamp;
  m->ht_off[slot] = s->len + 1;
  s->w[s->len] = n;
  memcpy(s->w + s->len + 1, p, n * sizeof(uint32_t));
  s->len += n + 1;
  s->n_stacks++;
}

static bool is_end(const mlxr_gelem *e) { return e->type == MLXR_GT_END || e->type == MLXR_GT_ALT; }

/* Expand stk[0..n) (stored in scratch at offset `at`, or anywhere) into s. */
static void expand(mlxr_grammar_matcher *m, stackset *s, const uint32_t *stk, uint32_t n, uint32_t at, int depth) {
  if (n == 0) {
    set_add(m, s, stk, 0);
    return;
  }
  const mlxr_gelem *el = m->g->elems;
  const uint32_t pos = stk[n - 1];
  if (el[pos].type != MLXR_GT_RULE_REF) {
    set_add(m, s, stk, n);
    return;
  }
  if (depth >= MAX_EXPAND_DEPTH || n + 1 > MAX_STACK_LEN || at + n + 1 > m->scratch_cap) {
    m->overflow = true;
    return;
  }
  uint32_t alt = m->g->rule_start[el[pos].value];
  for (;;) {
    uint32_t *buf = m->scratch + at;
    memcpy(buf, stk, (n - 1) * sizeof(uint32_t)); /* stk lies below `at` in scratch, or elsewhere */
    uint32_t k = n - 1;
    if (!is_end(&el[pos + 1])) buf[k++] = pos + 1;
    if (!is_end(&el[alt])) buf[k++] = alt;
    expand(m, s, buf, k, at + k, depth + 1);
    while (!is_end(&el[alt])) alt++;
    if (el[alt].type == MLXR_GT_END) break;
    alt++; /* past ALT */
  }
}

/* Does the class at pos match code point c? *next: the element after the class. */
static bool match_char(const mlxr_gelem *el, uint32_t pos, uint32_t c, uint32_t *next) {
  if (el[pos].type == MLXR_GT_CHAR_ANY) {
    *next = pos + 1;
    return true;
  }
  const bool positive = el[pos].type == MLXR_GT_CHAR;
  bool found = false;
  do {
    if (el[pos + 1].type == MLXR_GT_RNG_UPPER) {
      found = found || (el[pos].value <= c && c <= el[pos + 1].value);
      pos += 2;
    } else {
      found = found || el[pos].value == c;
      pos += 1;
    }
  } while (el[pos].type == MLXR_GT_CHAR_ALT);
  *next = pos;
  return found == positive;
}

/* Can the class at pos match some code point in [lo, hi]? (for a partial UTF-8 sequence) */
static bool match_range(const mlxr_gelem *el, uint32_t pos, uint32_t lo, uint32_t hi) {
  if (el[pos].type == MLXR_GT_CHAR_ANY) return true;
  const bool positive = el[pos].type == MLXR_GT_CHAR;
  do {
    uint32_t a = el[pos].value, b = a;
    if (el[pos + 1].type == MLXR_GT_RNG_UPPER) {
      b = el[pos + 1].value;
      pos += 2;
    } else {
      pos += 1;
    }
    if (positive && a <= hi && b >= lo) return true;
    if (!positive && a <= lo && b >= hi) return false; /* one excluded range covers it all */
  } while (el[pos].type == MLXR_GT_CHAR_ALT);
  return !positive;
}

/* Advance every stack of `from` over code point c into `to`. */
static void advance(mlxr_grammar_matcher *m, const stackset *from, stackset *to, uint32_t c) {
  set_begin(m, to);
  const mlxr_gelem *el = m->g->elems;
  for (uint32_t off = 0; off < from->len; off += from->w[off] + 1) {
    const uint32_t n = from->w[off];
    if (n == 0) continue;
    const uint32_t *stk = from->w + off + 1;
    uint32_t next;
    if (!match_char(el, stk[n - 1], c, &next)) continue;
    if (n + 1 > m->scratch_cap) continue;
    uint32_t *buf = m->scratch;
    memcpy(buf, stk, (n - 1) * sizeof(uint32_t));
    uint32_t k = n - 1;
    if (!is_end(&el[next])) buf[k++] = next;
    expand(m, to, buf, k, k, 0);
  }
}

static bool partial_ok(const mlxr_grammar_matcher *m, const stackset *s, uint32_t v, int rem, int len) {
  /* the code points that can still come out of this sequence (overlong forms excluded) */
  static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  uint32_t lo = v << (6 * rem), hi = lo | ((1u << (6 * rem)) - 1);
  if (lo < min_cp[len]) lo = min_cp[len];
  if (hi > 0x10FFFF) hi = 0x10FFFF;
  if (lo > hi || (lo >= 0xD800 && hi <= 0xDFFF)) return false; /* nothing valid, or only surrogates */
  for (uint32_t off = 0; off < s->len; off += s->w[off] + 1) {
    const uint32_t n = s->w[off];
    if (n > 0 && match_range(m->g->elems, s->w[off + n], lo, hi)) return true;
  }
  return false;
}

/* Run bytes from the committed state; on success *out_set is the resulting set (maybe cur) and
 * the partial code point state is returned through pv/prem/plen. */
static bool run_bytes(mlxr_grammar_matcher *m, const uint8_t *b, size_t n, int *out_set, uint32_t *pv,
                      int *prem, int *plen) {
  int cur = m->cur;
  const int sa = (m->cur + 1) % 3, sb = (m->cur + 2) % 3;
  uint32_t v = m->pv;
  int rem = m->prem, len = m->plen;
  for (size_t i = 0; i < n; i++) {
    const uint8_t c = b[i];
    if (rem == 0) {
      if (c < 0x80) {
        v = c;
        len = 1;
      } else if (c >= 0xC2 && c <= 0xDF) {
        v = c & 0x1Fu, rem = 1, len = 2;
      } else if ((c & 0xF0) == 0xE0) {
        v = c & 0x0Fu, rem = 2, len = 3;
      } else if (c >= 0xF0 && c <= 0xF4) {
        v = c & 0x07u, rem = 3, len = 4;
      } else {
        return false;
      }
    } else {
      if ((c & 0xC0) != 0x80) return false;
      v = (v << 6) | (c & 0x3Fu);
      rem--;
    }
    if (rem > 0) continue;
    if ((len == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) || (len == 4 && (v < 0x10000 || v > 0x10FFFF))) {
      return false;
    }
    /* committed -> sa, then sa -> sb -> sa ... (the two sets that are not committed) */
    const int to = cur == m->cur ? sa : (cur == sa ? sb : sa);
    advance(m, &m->sets[cur], &m->sets[to], v);
    if (m->sets[to].n_stacks == 0) return false;
    cur = to;
  }
  if (rem > 0 && !partial_ok(m, &m->sets[cur], v, rem, len)) return false;
  *out_set = cur;
  *pv = v;
  *prem = rem;
  *plen = len;
  return true;
}

/* ---- public ---- */

mlxr_grammar_matcher *mlxr_grammar_matcher_new(const mlxr_grammar *g) {
  mlxr_grammar_matcher *m = calloc(1, sizeof(*m));
  if (!m) return NULL;
  m->g = g;
  m->scratch_cap = MAX_STACK_LEN * 4;
  m->scratch = malloc(m->scratch_cap * sizeof(uint32_t));
  m->ht_off = malloc(HASH_SLOTS * sizeof(uint32_t));
  m->ht_stamp = calloc(HASH_SLOTS, sizeof(uint32_t));
  bool ok = m->scratch && m->ht_off && m->ht_stamp;
  for (int i = 0; i < 3 && ok; i++) ok = set_reserve(&m->sets[i], 4096);
  if (!ok) {
    mlxr_grammar_matcher_free(m);
    return NULL;
  }
  mlxr_grammar_matcher_reset(m);
  return m;
}

void mlxr_grammar_matcher_free(mlxr_grammar_matcher *m) {
  if (!m) return;
  for (int i = 0; i < 3; i++) free(m->sets[i].w);
  free(m->scratch);
  free(m->ht_off);
  free(m->ht_stamp);
  free(m);
}

void mlxr_grammar_matcher_reset(mlxr_grammar_matcher *m) {
  m->cur = 0;
  m->pv = 0;
  m->prem = 0;
  m->plen = 0;
  stackset *s = &m->sets[0];
  set_begin(m, s);
  const mlxr_gelem *el = m->g->elems;
  uint32_t alt = m->g->rule_start[m->g->root];
  for (;;) {
    uint32_t k = 0;
    if (!is_end(&el[alt])) m->scratch[k++] = alt;
    expand(m, s, m->scratch, k, k, 0);
    while (!is_end(&el[alt])) alt++;
    if (el[alt].type == MLXR_GT_END) break;
    alt++;
  }
}

bool mlxr_grammar_matcher_try(mlxr_grammar_matcher *m, const uint8_t *bytes, size_t n) {
  int set;
  uint32_t v;
  int rem, len;
  return run_bytes(m, bytes, n, &set, &v, &rem, &len);
}

bool mlxr_grammar_matcher_accept(mlxr_grammar_matcher *m, const uint8_t *bytes, size_t n) {
  int set;
  uint32_t v;
  int rem, len;
  if (!run_bytes(m, bytes, n, &set, &v, &rem, &len)) return false;
  m->cur = set;
  m->pv = v;
  m->prem = rem;
  m->plen = len;
  return true;
}

bool mlxr_grammar_matcher_is_complete(const mlxr_grammar_matcher *m) {
  if (m->prem > 0) return false;
  const stackset *s = &m->sets[m->cur];
  for (uint32_t off = 0; off < s->len; off += s->w[off] + 1) {
    if (s->w[off] == 0) return true;
  }
  return false;
}

bool mlxr_grammar_matcher_can_continue(const mlxr_grammar_matcher *m) {
  if (m->prem > 0) return true;
  const stackset *s = &m->sets[m->cur];
  for (uint32_t off = 0; off < s->len; off += s->w[off] + 1) {
    if (s->w[off] > 0) return true;
  }
  return false;
}

void mlxr_grammar_matcher_first_bytes(mlxr_grammar_matcher *m, uint8_t mask[32]) {
  memset(mask, 0, 32);
  for (int b = 0; b < 256; b++) {
    const uint8_t c = (uint8_t)b;
    if (mlxr_grammar_matcher_try(m, &c, 1)) mask[b >> 3] |= (uint8_t)(1u << (b & 7));
  }
}

bool mlxr_grammar_matcher_allows_token(mlxr_grammar_matcher *m, const mlxr_grammar_vocab *v,
                                       int32_t id, const uint8_t *first_mask) {
  if (id < 0 || id >= v->n) return false;
  size_t len;
  const uint8_t *b = mlxr_grammar_vocab_bytes(v, id, &len);
  if (len == 0) return false;
  if (first_mask && !(first_mask[b[0] >> 3] & (1u << (b[0] & 7)))) return false;
  return mlxr_grammar_matcher_try(m, b, len);
}

/* ---- token bytes ---- */

int mlxr_grammar_vocab_new(const mlxr_tokenizer *t, mlxr_grammar_vocab **out, char *err, size_t err_len) {
  *out = NULL;
  const int32_t n = mlxr_tokenizer_n_vocab(t);
  mlxr_grammar_vocab *v = calloc(1, sizeof(*v));
  if (!v) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  v->n = n;
  v->off = malloc(((size_t)n + 1) * sizeof(uint64_t));
  size_t cap = (size_t)n * 8 + 64, len = 0;
  v->bytes = malloc(cap);
  if (!v->off || !v->bytes) {
    mlxr_grammar_vocab_free(v);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  for (int32_t i = 0; i < n; i++) {
    v->off[i] = len;
    int w = mlxr_tokenizer_token_bytes(t, i, false, (char *)v->bytes + len, cap - len);
    if (w < 0) w = 0; /* an id without bytes: never allowed under a grammar */
    if ((size_t)w > cap - len) {
      size_t ncap = cap * 2 + (size_t)w;
      uint8_t *nb = realloc(v->bytes, ncap);
      if (!nb) {
        mlxr_grammar_vocab_free(v);
        return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
      }
      v->bytes = nb;
      cap = ncap;
      w = mlxr_tokenizer_token_bytes(t, i, false, (char *)v->bytes + len, cap - len);
      if (w < 0) w = 0;
    }
    len += (size_t)w;
  }
  v->off[n] = len;
  *out = v;
  return MLXR_OK;
}

void mlxr_grammar_vocab_free(mlxr_grammar_vocab *v) {
  if (!v) return;
  free(v->bytes);
  free(v->off);
  free(v);
}

int32_t mlxr_grammar_vocab_size(const mlxr_grammar_vocab *v) { return v->n; }

const uint8_t *mlxr_grammar_vocab_bytes(const mlxr_grammar_vocab *v, int32_t id, size_t *len) {
  if (id < 0 || id >= v->n) {
    *len = 0;
    return NULL;
  }
  *len = (size_t)(v->off[id + 1] - v->off[id]);
  return v->bytes + v->off[id];
}
