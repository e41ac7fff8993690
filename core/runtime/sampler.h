/*
 * sampler.h: choose the next token from logits.
 *
 * The chain follows llama.cpp's order: logit_bias; penalties (repeat over the last repeat_last_n
 * accepted tokens: positive logits divided by repeat_penalty, negative multiplied; presence and
 * frequency subtracted OpenAI-style); then, if temperature <= 0, greedy argmax; else top_k, typical_p,
 * top_p, min_p (each over the softmax of the surviving candidates), temperature, softmax, and a draw from
 * the sampler's own RNG (xoshiro256**, seeded per sampler: no global state).
 *
 * A sampler owns a candidate buffer sized for the vocabulary at creation and a ring of recent tokens,
 * so sampling allocates nothing. One sampler per sequence; one thread at a time.
 */
#ifndef MLXR_RUNTIME_SAMPLER_H
#define MLXR_RUNTIME_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct mlxr_sampler_params {
  float temperature;       /* <= 0: greedy */
  int32_t top_k;           /* <= 0: off */
  float typical_p;         /* locally typical sampling (Meister et al.): keep the tokens whose
                              surprisal is closest to the distribution's entropy until their mass
                              reaches typical_p; <= 0 or >= 1: off */
  float top_p;             /* >= 1: off */
  float min_p;             /* <= 0: off */
  float repeat_penalty;    /* 1: off */
  int32_t repeat_last_n;   /* window for all penalties; 0 = off, -1 = whole history kept */
  float presence_penalty;  /* 0: off */
  float frequency_penalty; /* 0: off */
  uint64_t seed;
} mlxr_sampler_params;

/* llama.cpp's defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat 1.0 over 64. */
mlxr_sampler_params mlxr_sampler_default_params(void);

typedef struct mlxr_sampler mlxr_sampler;

mlxr_sampler *mlxr_sampler_new(const mlxr_sampler_params *params, int32_t n_vocab);
void mlxr_sampler_free(mlxr_sampler *s);
/* Forget accepted tokens and reseed. */
void mlxr_sampler_reset(mlxr_sampler *s, uint64_t seed);

/* Per-token additive bias (OpenAI logit_bias); bias NULL clears. Copied. */
int mlxr_sampler_set_logit_bias(mlxr_sampler *s, const int32_t *ids, const float *bias, int32_t n);

/* Record a token as part of the sequence (prompt tokens too, for penalties). */
void mlxr_sampler_accept(mlxr_sampler *s, int32_t id);

/* true if the next sample is the plain argmax of the logits: temperature <= 0 and no logit bias or
 * penalty that would change them (a caller may then take the argmax from wherever it is cheaper,
 * e.g. the GPU that holds the logits, and only call mlxr_sampler_accept). */
bool mlxr_sampler_is_greedy(const mlxr_sampler *s);

/* Pick a token from logits[n_vocab] (logits are not modified). */
int32_t mlxr_sampler_sample(mlxr_sampler *s, const float *logits);

/* Constrained decoding: a filter saying whether token id may be chosen now. */
typedef bool (*mlxr_sampler_filter)(void *ctx, int32_t id);

/* Like mlxr_sampler_sample, but only a token the filter allows is chosen; -1 if it allows none.
 * The filter is consulted lazily: greedy tests tokens in descending logit order (argmax first, then
 * a heap over the vocabulary) and stops at the first allowed one; sampling draws from the usual
 * chain (top_k/top_p/min_p/temperature) and keeps the draw if allowed, else restricts the chain's
 * survivors to allowed tokens and draws again (renormalized), and only if none of them is allowed
 * masks the whole vocabulary and reruns the chain over the allowed tokens. */
int32_t mlxr_sampler_sample_filtered(mlxr_sampler *s, const float *logits, mlxr_sampler_filter ok, void *ctx);

/* The final distribution the chain would draw from: probs[n_vocab] (zeros for filtered tokens).
 * For greedy, a one-hot. Used by logprobs and by tests. */
void mlxr_sampler_probs(mlxr_sampler *s, const float *logits, float *probs);

/* The RNG, exposed for tests and for speculative decoding's acceptance draws: uniform in [0, 1). */
double mlxr_sampler_uniform(mlxr_sampler *s);

#endif
