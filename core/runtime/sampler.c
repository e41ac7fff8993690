/*
 * sampler.c: see sampler.h. Candidates are (id, logit) pairs; filters shrink the candidate count
 * after partially sorting by logit. top_k uses a partial selection; top_p and min_p need the
 * candidates in descending order, so the chain sorts the survivors of top_k once (qsort on at most
 * n_vocab entries; with top_k set that is at most k). typical_p (llama.cpp's place: after top_k)
 * orders the candidates by |surprisal - entropy|, keeps the smallest prefix whose mass reaches
 * typical_p, and sorts the survivors by logit again for the filters after it.
 */
#include "core/runtime/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"

typedef struct candidate {
  int32_t id;
  float logit;
  float p;
  float q; /* scratch: typical_p's distance from the entropy */
} candidate;

struct mlxr_sampler {
  mlxr_sampler_params p;
  int32_t n_vocab;
  candidate *cand;      /* [n_vocab] */
  float *work;          /* [n_vocab] logits after bias and penalties */
  int32_t *counts;      /* [n_vocab] occurrences in the penalty window */
  int32_t *ring;        /* [ring_cap] recent accepted tokens */
  int32_t ring_cap, ring_len, ring_head;
  float *bias;          /* [n_vocab] or NULL */
  uint64_t rng[4];      /* xoshiro256** state */
};

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

static void rng_seed(uint64_t s[4], uint64_t seed) {
  /* splitmix64 to fill the state */
  for (int i = 0; i < 4; i++) {
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    s[i] = z ^ (z >> 31);
  }
}

mlxr_sampler_params mlxr_sampler_default_params(void) {
  mlxr_sampler_params p = {
      .temperature = 0.8f,
      .top_k = 40,
      .typical_p = 1.0f,
      .top_p = 0.95f,
      .min_p = 0.05f,
      .repeat_penalty = 1.0f,
      .repeat_last_n = 64,
      .presence_penalty = 0.0f,
      .frequency_penalty = 0.0f,
      .seed = 0,
  };
  return p;
}

mlxr_sampler *mlxr_sampler_new(const mlxr_sampler_params *params, int32_t n_vocab) {
  if (n_vocab <= 0) return NULL;
  mlxr_sampler *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  s->p = *params;
  s->n_vocab = n_vocab;
  s->ring_cap = params->repeat_last_n > 0 ? params->repeat_last_n : (params->repeat_last_n < 0 ? 1 << 16 : 1);
  s->cand = malloc((size_t)n_vocab * sizeof(candidate));
  s->work = malloc((size_t)n_vocab * sizeof(float));
  s->counts = calloc((size_t)n_vocab, sizeof(int32_t));
  s->ring = malloc((size_t)s->ring_cap * sizeof(int32_t));
  if (!s->cand || !s->work || !s->counts || !s->ring) {
    mlxr_sampler_free(s);
    return NULL;
  }
  rng_seed(s->rng, params->seed);
  return s;
}

void mlxr_sampler_free(mlxr_sampler *s) {
  if (!s) return;
  free(s->cand);
  free(s->work);
  free(s->counts);
  free(s->ring);
  free(s->bias);
  free(s);
}

void mlxr_sampler_reset(mlxr_sampler *s, uint64_t seed) {
  memset(s->counts, 0, (size_t)s->n_vocab * sizeof(int32_t));
  s->ring_len = 0;
  s->ring_head = 0;
  rng_seed(s->rng, seed);
}

int mlxr_sampler_set_logit_bias(mlxr_sampler *s, const int32_t *ids, const float *bias, int32_t n) {
  if (!bias || n == 0) {
    free(s->bias);
    s->bias = NULL;
    return MLXR_OK;
  }
  for (int32_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= s->n_vocab) return MLXR_ERR_RANGE;
  }
  if (!s->bias) {
    s->bias = calloc((size_t)s->n_vocab, sizeof(float));
    if (!s->bias) return MLXR_ERR_NOMEM;
  } else {
    memset(s->bias, 0, (size_t)s->n_vocab * sizeof(float));
  }
  for (int32_t i = 0; i < n; i++) s->bias[ids[i]] += bias[i];
  return MLXR_OK;
}

void mlxr_sampler_accept(mlxr_sampler *s, int32_t id) {
  if (id < 0 || id >= s->n_vocab || s->p.repeat_last_n == 0) return;
  if (s->ring_len == s->ring_cap) {
    int32_t old = s->ring[s->ring_head];
    s->counts[old]--;
    s->ring[s->ring_head] = id;
    s->ring_head = (s->ring_head + 1) % s->ring_cap;
  } else {
    s->ring[(s->ring_head + s->ring_len) % s->ring_cap] = id;
    s->ring_len++;
  }
  s->counts[id]++;
}

double mlxr_sampler_uniform(mlxr_sampler *s) { return (double)(rng_next(s->rng) >> 11) * 0x1.0p-53; }

/* Bias and penalties into s->work. */
/* true if apply_penalties changes anything (a bias or an active penalty). */
static bool sampler_adjusts_logits(const mlxr_sampler *s) {
  const bool rep = s->p.repeat_penalty != 1.0f && s->p.repeat_penalty > 0.0f;
  const bool pf = s->p.presence_penalty != 0.0f || s->p.frequency_penalty != 0.0f;
  return s->bias != NULL || ((rep || pf) && s->ring_len > 0);
}

static void apply_penalties(mlxr_sampler *s, const float *logits) {
  memcpy(s->work, logits, (size_t)s->n_vocab * sizeof(float));
  if (s->bias) {
    for (int32_t i = 0; i < s->n_vocab; i++) s->work[i] += s->bias[i];
  }
  const bool rep = s->p.repeat_penalty != 1.0f && s->p.repeat_penalty > 0.0f;
  const bool pf = s->p.presence_penalty != 0.0f || s->p.frequency_penalty != 0.0f;
  if (!rep && !pf) return;
  /* visit each distinct token in the window once */
  for (int32_t k = 0; k < s->ring_len; k++) {
    const int32_t id = s->ring[(s->ring_head + k) % s->ring_cap];
    const int32_t c = s->counts[id];
    if (c <= 0) continue;
    bool first = true;
    for (int32_t j = 0; j < k; j++) {
      if (s->ring[(s->ring_head + j) % s->ring_cap] == id) {
        first = false;
        break;
      }
    }
    if (!first) continue;
    float *l = &s->work[id];
    if (rep) *l = *l > 0.0f ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
    *l -= (float)c * s->p.frequency_penalty + s->p.presence_penalty;
  }
}

static int cmp_typical(const void *a, const void *b) {
  const candidate *x = a, *y = b;
  if (x->q < y->q) return -1;
  if (x->q > y->q) return 1;
  return x->id < y->id ? -1 : (x->id > y->id);
}

static int cmp_desc(const void *a, const void *b) {
  const candidate *x = a, *y = b;
  if (x->logit > y->logit) return -1;
  if (x->logit < y->logit) return 1;
  return x->id < y->id ? -1 : (x->id > y->id);
}

/* Index of the first largest value (NaN never wins; 0 when nothing beats -inf). Eight lanes keep
 * independent running maxima, so the loop is not one long compare-and-select dependency chain
 * (greedy decoding scans the whole vocabulary of every sequence on every step); the lanes are
 * merged by value, then by lowest index, which is the first occurrence overall. */
static int32_t argmax(const float *v, int32_t n) {
  enum { LANES = 8 };
  float bv[LANES];
  int32_t bi[LANES];
  for (int j = 0; j < LANES; j++) bv[j] = -INFINITY, bi[j] = -1;
  int32_t i = 0;
  for (; i + LANES <= n; i += LANES) {
    for (int j = 0; j < LANES; j++) {
      if (v[i + j] > bv[j]) bv[j] = v[i + j], bi[j] = i + j;
    }
  }
  for (; i < n; i++) {
    if (v[i] > bv[0]) bv[0] = v[i], bi[0] = i;
  }
  int32_t best = -1;
  float bestv = -INFINITY;
  for (int j = 0; j < LANES; j++) {
    if (bi[j] >= 0 && (bv[j] > bestv || (bv[j] == bestv && bi[j] < best))) bestv = bv[j], best = bi[j];
  }
  return best >= 0 ? best : 0;
}

/* Min-heap helpers over cand[0..k) ordered by cmp_desc (the root is the worst kept candidate). */
static void heap_sift_down(candidate *h, int32_t k, int32_t i) {
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, w = i;
    if (l < k && cmp_desc(&h[l], &h[w]) > 0) w = l;
    if (r < k && cmp_desc(&h[r], &h[w]) > 0) w = r;
    if (w == i) return;
    candidate t = h[i];
    h[i] = h[w];
    h[w] = t;
    i = w;
  }
}

/* The k best of s->work into cand[0..k) (unordered), in O(n log k). */
static int32_t select_top_k(mlxr_sampler *s, int32_t k) {
  for (int32_t i = 0; i < k; i++) s->cand[i] = (candidate){i, s->work[i], 0.0f, 0.0f};
  for (int32_t i = k / 2 - 1; i >= 0; i--) heap_sift_down(s->cand, k, i);
  for (int32_t i = k; i < s->n_vocab; i++) {
    candidate c = {i, s->work[i], 0.0f, 0.0f};
    if (cmp_desc(&c, &s->cand[0]) < 0) { /* better than the worst kept */
      s->cand[0] = c;
      heap_sift_down(s->cand, k, 0);
    }
  }
  return k;
}

/* Softmax over cand[0..n) at temperature t, into .p; returns n. */
static void softmax_candidates(candidate *c, int32_t n, float t) {
  float maxl = c[0].logit;
  for (int32_t i = 1; i < n; i++) maxl = c[i].logit > maxl ? c[i].logit : maxl;
  double sum = 0.0;
  for (int32_t i = 0; i < n; i++) {
    c[i].p = expf((c[i].logit - maxl) / t);
    sum += c[i].p;
  }
  for (int32_t i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
}

/* Runs the filters; returns the surviving count, candidates sorted descending with .p set at the
 * sampling temperature. */
static int32_t filter_chain(mlxr_sampler *s) {
  int32_t n = s->n_vocab;
  if (s->p.top_k > 0 && s->p.top_k < n) {
    n = select_top_k(s, s->p.top_k);
  } else {
    for (int32_t i = 0; i < n; i++) {
      s->cand[i].id = i;
      s->cand[i].logit = s->work[i];
    }
  }
  qsort(s->cand, (size_t)n, sizeof(candidate), cmp_desc);
  if (s->p.typical_p > 0.0f && s->p.typical_p < 1.0f && n > 1) {
    softmax_candidates(s->cand, n, 1.0f);
    double ent = 0.0;
    for (int32_t i = 0; i < n; i++) {
      if (s->cand[i].p > 0.0f) ent -= (double)s->cand[i].p * log((double)s->cand[i].p);
    }
    for (int32_t i = 0; i < n; i++) {
      const double surprisal = s->cand[i].p > 0.0f ? -log((double)s->cand[i].p) : INFINITY;
      s->cand[i].q = (float)fabs(surprisal - ent);
    }
    qsort(s->cand, (size_t)n, sizeof(candidate), cmp_typical);
    double cum = 0.0;
    int32_t keep = n;
    for (int32_t i = 0; i < n; i++) {
      cum += s->cand[i].p;
      if (cum >= s->p.typical_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    qsort(s->cand, (size_t)n, sizeof(candidate), cmp_desc);
  }
  if (s->p.top_p < 1.0f) {
    softmax_candidates(s->cand, n, 1.0f);
    double cum = 0.0;
    int32_t keep = n;
    for (int32_t i = 0; i < n; i++) {
      cum += s->cand[i].p;
      if (cum >= s->p.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (s->p.min_p > 0.0f) {
    softmax_candidates(s->cand, n, 1.0f);
    const float thresh = s->cand[0].p * s->p.min_p;
    int32_t keep = 1;
    while (keep < n && s->cand[keep].p >= thresh) keep++;
    n = keep;
  }
  softmax_candidates(s->cand, n, s->p.temperature);
  return n;
}

bool mlxr_sampler_is_greedy(const mlxr_sampler *s) {
  return s->p.temperature <= 0.0f && !sampler_adjusts_logits(s);
}

int32_t mlxr_sampler_sample(mlxr_sampler *s, const float *logits) {
  if (s->p.temperature <= 0.0f && !sampler_adjusts_logits(s)) return argmax(logits, s->n_vocab);
  apply_penalties(s, logits);
  if (s->p.temperature <= 0.0f) return argmax(s->work, s->n_vocab);
  const int32_t n = filter_chain(s);
  const double u = mlxr_sampler_uniform(s);
  double cum = 0.0;
  for (int32_t i = 0; i < n; i++) {
    cum += s->cand[i].p;
    if (u < cum) return s->cand[i].id;
  }
  return s->cand[n - 1].id;
}

/* Draw from cand[0..n) with probabilities .p summing to `total`; never returns a p == 0 entry
 * when a positive one exists (rounding at the tail). */
static int32_t draw(mlxr_sampler *s, int32_t n, double total) {
  const double u = mlxr_sampler_uniform(s) * total;
  double cum = 0.0;
  int32_t last = -1;
  for (int32_t i = 0; i < n; i++) {
    if (s->cand[i].p <= 0.0f) continue;
    cum += s->cand[i].p;
    last = i;
    if (u < cum) return s->cand[i].id;
  }
  return last >= 0 ? s->cand[last].id : -1;
}

/* Max-heap over cand[0..k) by cmp_desc (the root is the best candidate). */
static void maxheap_sift_down(candidate *h, int32_t k, int32_t i) {
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, w = i;
    if (l < k && cmp_desc(&h[l], &h[w]) < 0) w = l;
    if (r < k && cmp_desc(&h[r], &h[w]) < 0) w = r;
    if (w == i) return;
    candidate t = h[i];
    h[i] = h[w];
    h[w] = t;
    i = w;
  }
}

int32_t mlxr_sampler_sample_filtered(mlxr_sampler *s, const float *logits, mlxr_sampler_filter ok, void *ctx) {
  apply_penalties(s, logits);
  if (s->p.temperature <= 0.0f) {
    const int32_t best = argmax(s->work, s->n_vocab);
    if (ok(ctx, best)) return best;
    /* descending order lazily: heapify once (O(n)), pop O(log n) per rejected token */
    int32_t k = s->n_vocab;
    for (int32_t i = 0; i < k; i++) s->cand[i] = (candidate){i, s->work[i], 0.0f, 0.0f};
    for (int32_t i = k / 2 - 1; i >= 0; i--) maxheap_sift_down(s->cand, k, i);
    while (k > 0) {
      const candidate c = s->cand[0];
      s->cand[0] = s->cand[--k];
      maxheap_sift_down(s->cand, k, 0);
      if (c.id != best && c.logit > -INFINITY && ok(ctx, c.id)) return c.id;
    }
    return -1;
  }
  int32_t n = filter_chain(s);
  const int32_t first = draw(s, n, 1.0);
  if (first >= 0 && ok(ctx, first)) return first;
  int32_t m = 0;
  double total = 0.0;
  for (int32_t i = 0; i < n; i++) {
    if (s->cand[i].p > 0.0f && s->cand[i].id != first && ok(ctx, s->cand[i].id)) {
      total += s->cand[i].p;
      s->cand[m++] = s->cand[i];
    }
  }
  if (m > 0) return draw(s, m, total);
  /* none of the chain's survivors is allowed: mask the vocabulary and rerun the chain */
  bool any = false;
  for (int32_t i = 0; i < s->n_vocab; i++) {
    if (s->work[i] > -INFINITY && ok(ctx, i)) any = true;
    else s->work[i] = -INFINITY;
  }
  if (!any) return -1;
  n = filter_chain(s);
  return draw(s, n, 1.0);
}

void mlxr_sampler_probs(mlxr_sampler *s, const float *logits, float *probs) {
  apply_penalties(s, logits);
  memset(probs, 0, (size_t)s->n_vocab * sizeof(float));
  if (s->p.temperature <= 0.0f) {
    probs[argmax(s->work, s->n_vocab)] = 1.0f;
    return;
  }
  const int32_t n = filter_chain(s);
  for (int32_t i = 0; i < n; i++) probs[s->cand[i].id] = s->cand[i].p;
}
