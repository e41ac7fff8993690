/*
 * test_sampler.c: the sampler's final distribution against a float64 reference written here
 * from the definitions (llama.cpp's chain order: penalties, top_k, typical_p, top_p, min_p,
 * temperature; typical_p as Meister et al. define it: order by |-log p - H|, keep the smallest
 * prefix whose mass reaches typical_p),
 * and the draws against that distribution (chi-square), for many random logit vectors and
 * parameter sets; greedy is argmax; same seed gives the same draws.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/runtime/sampler.h"
#include "tests/unit/check.h"


static uint64_t rng_state = 88172645463325252ull;
static double urand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) * 0x1.0p-53;
}
static double nrand(void) {
  double u = urand() + 1e-12, v = urand();
  return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

typedef struct ref_c { int id; double l; } ref_c;
static int ref_cmp(const void *a, const void *b) {
  const ref_c *x = a, *y = b;
  if (x->l > y->l) return -1;
  if (x->l < y->l) return 1;
  return x->id - y->id;
}

/* Reference: probabilities after the chain, float64. hist: accepted tokens (window = all). */
static void reference_probs(const float *logits, int n, const mlxr_sampler_params *p, const int *hist,
                            int n_hist, double *out) {
  double *l = malloc(sizeof(double) * n);
  for (int i = 0; i < n; i++) l[i] = logits[i];
  int *cnt = calloc(n, sizeof(int));
  for (int i = 0; i < n_hist; i++) cnt[hist[i]]++;
  for (int i = 0; i < n; i++) {
    if (!cnt[i]) continue;
    if (p->repeat_penalty != 1.0f) l[i] = l[i] > 0 ? l[i] / p->repeat_penalty : l[i] * p->repeat_penalty;
    l[i] -= cnt[i] * (double)p->frequency_penalty + p->presence_penalty;
  }
  for (int i = 0; i < n; i++) out[i] = 0;
  if (p->temperature <= 0) {
    int best = 0;
    for (int i = 1; i < n; i++) if (l[i] > l[best]) best = i;
    out[best] = 1;
    free(l); free(cnt);
    return;
  }
  ref_c *c = malloc(sizeof(ref_c) * n);
  for (int i = 0; i < n; i++) c[i] = (ref_c){i, l[i]};
  qsort(c, n, sizeof(ref_c), ref_cmp);
  int k = n;
  if (p->top_k > 0 && p->top_k < k) k = p->top_k;
  if (p->typical_p > 0 && p->typical_p < 1 && k > 1) {
    double z = 0, h = 0;
    for (int i = 0; i < k; i++) z += exp(c[i].l - c[0].l);
    double *pr = malloc(sizeof(double) * k), *dist = malloc(sizeof(double) * k);
    int *ord = malloc(sizeof(int) * k);
    for (int i = 0; i < k; i++) {
      pr[i] = exp(c[i].l - c[0].l) / z;
      if (pr[i] > 0) h -= pr[i] * log(pr[i]);
    }
    for (int i = 0; i < k; i++) {
      dist[i] = fabs(-log(pr[i]) - h);
      ord[i] = i;
    }
    for (int i = 1; i < k; i++) { /* insertion sort by distance, then id */
      int t = ord[i], j = i - 1;
      while (j >= 0 && (dist[ord[j]] > dist[t] || (dist[ord[j]] == dist[t] && c[ord[j]].id > c[t].id))) {
        ord[j + 1] = ord[j];
        j--;
      }
      ord[j + 1] = t;
    }
    double cum = 0;
    int keep = k;
    for (int i = 0; i < k; i++) {
      cum += pr[ord[i]];
      if (cum >= p->typical_p) { keep = i + 1; break; }
    }
    ref_c *kept = malloc(sizeof(ref_c) * keep);
    for (int i = 0; i < keep; i++) kept[i] = c[ord[i]];
    qsort(kept, keep, sizeof(ref_c), ref_cmp);
    for (int i = 0; i < keep; i++) c[i] = kept[i];
    k = keep;
    free(kept); free(pr); free(dist); free(ord);
  }
  if (p->top_p < 1) {
    double z = 0, cum = 0;
    for (int i = 0; i < k; i++) z += exp(c[i].l - c[0].l);
    for (int i = 0; i < k; i++) {
      cum += exp(c[i].l - c[0].l) / z;
      if (cum >= p->top_p) { k = i + 1; break; }
    }
  }
  if (p->min_p > 0) {
    /* p_i / p_max = exp(l_i - l_max) */
    int keep = 1;
    while (keep < k && exp(c[keep].l - c[0].l) >= p->min_p) keep++;
    k = keep;
  }
  double z = 0;
  for (int i = 0; i < k; i++) z += exp((c[i].l - c[0].l) / p->temperature);
  for (int i = 0; i < k; i++) out[c[i].id] = exp((c[i].l - c[0].l) / p->temperature) / z;
  free(c); free(l); free(cnt);
}

int main(void) {
  const int n = 257;
  float *logits = malloc(sizeof(float) * n);
  float *probs = malloc(sizeof(float) * n);
  double *ref = malloc(sizeof(double) * n);
  int hist[40];
  for (int trial = 0; trial < 300; trial++) {
    mlxr_sampler_params p = mlxr_sampler_default_params();
    p.temperature = (trial % 7 == 0) ? 0.0f : (float)(0.3 + 1.5 * urand());
    p.top_k = trial % 3 == 0 ? 0 : 1 + (int)(urand() * 60);
    p.top_p = trial % 4 == 0 ? 1.0f : (float)(0.5 + 0.5 * urand());
    p.min_p = trial % 5 == 0 ? 0.0f : (float)(0.2 * urand());
    p.typical_p = trial % 3 == 1 ? (float)(0.2 + 0.75 * urand()) : 1.0f;
    p.repeat_penalty = trial % 2 ? 1.0f : (float)(1.0 + urand());
    p.presence_penalty = trial % 6 == 1 ? (float)urand() : 0.0f;
    p.frequency_penalty = trial % 6 == 2 ? (float)urand() : 0.0f;
    p.repeat_last_n = 64;
    p.seed = 0x5eedull + (uint64_t)trial * 7919u;
    double scale = 0.5 + 4 * urand();
    for (int i = 0; i < n; i++) logits[i] = (float)(scale * nrand());
    mlxr_sampler *s = mlxr_sampler_new(&p, n);
    CHECK(s != NULL, "sampler_new");
    int n_hist = trial % 3 == 0 ? 0 : 1 + (int)(urand() * 39);
    for (int i = 0; i < n_hist; i++) {
      hist[i] = (int)(urand() * 20); /* repeats likely */
      mlxr_sampler_accept(s, hist[i]);
    }
    mlxr_sampler_probs(s, logits, probs);
    reference_probs(logits, n, &p, hist, n_hist, ref);
    double maxd = 0;
    for (int i = 0; i < n; i++) maxd = check_worst(maxd, fabs(probs[i] - ref[i])); /* NaN stays */
    CHECK(maxd < 2e-5, "trial %d: distribution differs from reference by %g", trial, maxd);
    /* draws: chi-square over categories with expected count >= 5 */
    if (trial % 10 == 1) {
      const int draws = 20000;
      int *cnt = calloc(n, sizeof(int));
      for (int d = 0; d < draws; d++) {
        int id = mlxr_sampler_sample(s, logits);
        CHECK(id >= 0 && id < n, "id out of range");
        CHECK(ref[id] > 0, "trial %d: drew filtered token %d", trial, id);
        cnt[id]++;
      }
      double chi = 0;
      int dof = -1;
      for (int i = 0; i < n; i++) {
        double e = ref[i] * draws;
        if (e >= 5) { chi += (cnt[i] - e) * (cnt[i] - e) / e; dof++; }
      }
      /* generous bound: mean dof, sd sqrt(2 dof); 6 sd */
      if (dof > 0) CHECK(chi < dof + 6 * sqrt(2.0 * dof) + 10, "trial %d: chi2 %.1f dof %d", trial, chi, dof);
      free(cnt);
    }
    if (p.temperature <= 0) {
      int id = mlxr_sampler_sample(s, logits);
      CHECK(ref[id] == 1.0, "greedy picked %d", id);
    }
    mlxr_sampler_free(s);
  }
  /* same seed, same draws */
  mlxr_sampler_params p = mlxr_sampler_default_params();
  p.temperature = 1.0f; p.top_k = 0; p.top_p = 1.0f; p.min_p = 0.0f; p.seed = 42;
  for (int i = 0; i < n; i++) logits[i] = (float)nrand();
  mlxr_sampler *a = mlxr_sampler_new(&p, n), *b = mlxr_sampler_new(&p, n);
  int same = 1;
  for (int i = 0; i < 100; i++) same &= mlxr_sampler_sample(a, logits) == mlxr_sampler_sample(b, logits);
  CHECK(same, "same seed gave different draws");
  mlxr_sampler_free(a);
  mlxr_sampler_free(b);
  free(logits); free(probs); free(ref);
  return check_report("test_sampler");
}
