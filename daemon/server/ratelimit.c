/*
 * ratelimit.c: per-API-key rate limits as token buckets (configs/server.yaml rate_limits).
 *
 * Each configured API key has two buckets, plus one pair shared by requests that present no key
 * (when no keys are configured, every request is keyless). The request bucket holds up to
 * requests_per_minute and refills continuously at that rate per 60 s; the token bucket likewise
 * with tokens_per_minute. A generation request takes one request and its token cost: prompt tokens
 * plus the completion tokens it may produce (max_tokens, or the rest of the context when none is
 * given), times the number of choices. Like OpenAI's limiter, the cost is charged at admission
 * from the request's upper bound and not refunded when the completion comes out shorter; it is
 * refunded only when the request is refused further on (503). A request is refused (429) unless
 * both buckets hold enough; Retry-After is the time until they will. A request whose cost exceeds
 * the full token bucket can never pass: 429 with Retry-After 60 and a message saying so.
 */
#include <math.h>
#include <string.h>

#include "daemon/server/server_impl.h"

void mlxr_ratelimit_init(mlxr_ratelimit *rl, int32_t rpm, int32_t tpm) {
  memset(rl, 0, sizeof(*rl));
  pthread_mutex_init(&rl->lock, NULL);
  rl->rpm = rpm;
  rl->tpm = tpm;
}

void mlxr_ratelimit_free(mlxr_ratelimit *rl) { pthread_mutex_destroy(&rl->lock); }

static void refill(mlxr_ratelimit *rl, mlxr_bucket_pair *b, int64_t now) {
  if (b->t_ns == 0) {
    b->req = rl->rpm;
    b->tok = rl->tpm;
  } else {
    const double min = (double)(now - b->t_ns) / 60e9;
    b->req = fmin((double)rl->rpm, b->req + min * rl->rpm);
    b->tok = fmin((double)rl->tpm, b->tok + min * rl->tpm);
  }
  b->t_ns = now;
}

bool mlxr_ratelimit_take(mlxr_ratelimit *rl, int slot, int64_t tokens, double *retry_s,
                         bool *tokens_limited, bool *never) {
  *retry_s = 0;
  *tokens_limited = false;
  *never = false;
  if (rl->rpm <= 0 && rl->tpm <= 0) return true;
  if (slot < 0 || slot > MLXR_SERVER_MAX_KEYS) slot = MLXR_SERVER_MAX_KEYS;
  pthread_mutex_lock(&rl->lock);
  mlxr_bucket_pair *b = &rl->b[slot];
  refill(rl, b, mlxr_now_ns());
  const bool req_ok = rl->rpm <= 0 || b->req >= 1.0;
  const bool tok_ok = rl->tpm <= 0 || b->tok >= (double)tokens;
  if (req_ok && tok_ok) {
    if (rl->rpm > 0) b->req -= 1.0;
    if (rl->tpm > 0) b->tok -= (double)tokens;
    pthread_mutex_unlock(&rl->lock);
    return true;
  }
  double wait = 0;
  if (!req_ok) wait = (1.0 - b->req) * 60.0 / rl->rpm;
  if (!tok_ok) {
    *tokens_limited = true;
    if (tokens > rl->tpm) {
      *never = true;
      wait = 60;
    } else {
      wait = fmax(wait, ((double)tokens - b->tok) * 60.0 / rl->tpm);
    }
  }
  pthread_mutex_unlock(&rl->lock);
  *retry_s = wait;
  return false;
}

void mlxr_ratelimit_refund(mlxr_ratelimit *rl, int slot, int64_t tokens) {
  if (rl->rpm <= 0 && rl->tpm <= 0) return;
  if (slot < 0 || slot > MLXR_SERVER_MAX_KEYS) slot = MLXR_SERVER_MAX_KEYS;
  pthread_mutex_lock(&rl->lock);
  mlxr_bucket_pair *b = &rl->b[slot];
  if (rl->rpm > 0) b->req = fmin((double)rl->rpm, b->req + 1.0);
  if (rl->tpm > 0) b->tok = fmin((double)rl->tpm, b->tok + (double)tokens);
  pthread_mutex_unlock(&rl->lock);
}
