/*
 * bench_batch.c: `mlxr bench MODEL --concurrency 1,8,32,64 [-p 128] [-n 128]`: aggregate decode
 * throughput with many sequences at once, through the continuous-batching scheduler that mlxrd
 * uses (no HTTP), in the manner of llama.cpp's llama-batched-bench.
 *
 * For each level B: B requests with different random prompts of p tokens (no shared prefix, so
 * the prefix cache does not help) are submitted together, each generating exactly n tokens
 * (greedy, end-of-generation ignored). Every token's arrival time is recorded. Reported per level:
 *   - decode tok/s: the tokens that arrived after the last request got its first token, over the
 *     time from then to the last token (every sequence decoding together: llama-batched-bench's
 *     S_TG);
 *   - total tok/s: all generated tokens over the time from submission to the last token (prefill
 *     included).
 * One untimed round at the smallest level warms the device (CUDA graphs are captured on the
 * second forward of each batch size). Speculative decoding (the scheduler's prompt lookup) is as
 * mlxrd runs it unless --spec sets it; each level also reports drafts accepted/verified.
 */
#include "cli/bench_batch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "core/common/status.h"
#include "daemon/scheduler/scheduler.h"

typedef struct batch_req {
  pthread_mutex_t *mu;
  pthread_cond_t *cv;
  int *n_done;
  double *times;    /* [n_gen] arrival time of each token */
  int n_tokens;
  int cap;
  bool failed;
  char message[256];
} batch_req;

static void on_event(void *user, const mlxr_gen_event *ev) {
  batch_req *r = user;
  if (ev->kind == MLXR_GEN_TOKEN) {
    if (r->n_tokens < r->cap) r->times[r->n_tokens] = mlxr_cli_now();
    r->n_tokens++;
    return;
  }
  if (ev->kind == MLXR_GEN_ERROR) {
    r->failed = true;
    snprintf(r->message, sizeof r->message, "%s", ev->message ? ev->message : "error");
  }
  pthread_mutex_lock(r->mu);
  (*r->n_done)++;
  pthread_cond_signal(r->cv);
  pthread_mutex_unlock(r->mu);
}

typedef struct level_result {
  double decode_tps, total_tps, seconds;
  long long tokens;
} level_result;

/* One level: B requests at once; fills *out. */
static int run_level(mlxr_sched *s, int B, int32_t p, int32_t n, uint64_t *rng, level_result *out,
                     char *err, size_t err_len) {
  const int32_t n_vocab = mlxr_sched_hparams(s)->n_vocab;
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  int n_done = 0, rc = MLXR_OK;
  batch_req *reqs = calloc((size_t)B, sizeof(*reqs));
  mlxr_gen_handle **handles = calloc((size_t)B, sizeof(*handles));
  int32_t *prompt = malloc((size_t)p * sizeof(int32_t));
  double *times = malloc((size_t)B * (size_t)n * sizeof(double));
  if (!reqs || !handles || !prompt || !times) {
    free(reqs), free(handles), free(prompt), free(times);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  mlxr_gen_params gp = mlxr_gen_default_params();
  gp.sampling.temperature = 0.0f;
  gp.max_tokens = n;
  gp.ignore_eos = true;
  const double t0 = mlxr_cli_now();
  int submitted = 0;
  for (int i = 0; i < B; i++) {
    for (int32_t k = 0; k < p; k++) {
      *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
      prompt[k] = (int32_t)(*rng % (uint64_t)n_vocab);
    }
    reqs[i] = (batch_req){.mu = &mu, .cv = &cv, .n_done = &n_done, .times = times + (size_t)i * n, .cap = n};
    rc = mlxr_sched_submit(s, prompt, p, &gp, on_event, &reqs[i], &handles[i], err, err_len);
    if (rc != MLXR_OK) break;
    submitted++;
  }
  pthread_mutex_lock(&mu);
  while (n_done < submitted) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  for (int i = 0; i < submitted; i++) mlxr_sched_release(handles[i]);
  double last_first = t0, last = t0;
  long long total = 0;
  for (int i = 0; i < submitted && rc == MLXR_OK; i++) {
    if (reqs[i].failed || reqs[i].n_tokens != n) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID, "request %d: %s (%d of %d tokens)", i,
                     reqs[i].failed ? reqs[i].message : "stopped early", reqs[i].n_tokens, (int)n);
      break;
    }
    if (reqs[i].times[0] > last_first) last_first = reqs[i].times[0];
    if (reqs[i].times[n - 1] > last) last = reqs[i].times[n - 1];
    total += n;
  }
  if (rc == MLXR_OK) {
    long long after = 0;
    for (int i = 0; i < submitted; i++) {
      for (int32_t k = 0; k < n; k++) after += reqs[i].times[k] > last_first;
    }
    out->tokens = total;
    out->seconds = last - t0;
    out->total_tps = last > t0 ? (double)total / (last - t0) : 0.0;
    out->decode_tps = last > last_first ? (double)after / (last - last_first) : 0.0;
  }
  free(reqs), free(handles), free(prompt), free(times);
  return rc;
}

int mlxr_bench_concurrency(const char *model_path, const char *model_name, const mlxr_engine_params *ep,
                           int spec_tokens, const int *levels, int n_levels, int32_t p, int32_t n, bool json) {
  int max_level = 1;
  for (int i = 0; i < n_levels; i++) max_level = levels[i] > max_level ? levels[i] : max_level;
  if (n < 2) {
    fprintf(stderr, "mlxr bench: --concurrency needs -n of at least 2\n");
    return 2;
  }
  mlxr_sched_params sp = mlxr_sched_default_params();
  sp.engine = *ep;
  sp.engine.n_ctx = p + n + 1;
  sp.max_running = max_level;
  sp.max_queue = max_level;
  sp.max_batch_tokens = 2048;
  if (sp.max_batch_tokens < max_level) sp.max_batch_tokens = max_level;
  if (spec_tokens >= 0) sp.spec_tokens = spec_tokens;
  char err[512] = "";
  mlxr_sched *s = NULL;
  if (mlxr_sched_open(model_path, &sp, &s, err, sizeof err) != MLXR_OK) {
    fprintf(stderr, "mlxr bench: %s\n", err);
    return 1;
  }
  const char *note = mlxr_sched_device_note(s);
  if (note[0]) fprintf(stderr, "mlxr bench: %s\n", note);
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  level_result warm;
  int status = 0;
  if (run_level(s, levels[0], p, n, &rng, &warm, err, sizeof err) != MLXR_OK) {
    fprintf(stderr, "mlxr bench: %s\n", err);
    status = 1;
  }
  if (!json && status == 0) {
    printf("model: %s\ndevice: %s\nprompt %d tokens, %d generated per sequence\n", model_name,
           mlxr_sched_device(s), (int)p, (int)n);
    printf("%12s %14s %14s %10s %16s\n", "sequences", "decode tok/s", "total tok/s", "seconds", "drafts accepted");
  }
  if (json && status == 0) {
    printf("{\"model\": \"%s\", \"device\": \"%s\", \"prompt\": %d, \"gen\": %d, \"levels\": [", model_name,
           mlxr_sched_device(s), (int)p, (int)n);
  }
  for (int i = 0; i < n_levels && status == 0; i++) {
    level_result r;
    mlxr_sched_stats st0, st1;
    mlxr_sched_get_stats(s, &st0);
    if (run_level(s, levels[i], p, n, &rng, &r, err, sizeof err) != MLXR_OK) {
      fprintf(stderr, "mlxr bench: %d sequences: %s\n", levels[i], err);
      status = 1;
      break;
    }
    mlxr_sched_get_stats(s, &st1);
    const unsigned long long drafted = (unsigned long long)(st1.spec_proposed_total - st0.spec_proposed_total),
                             accepted = (unsigned long long)(st1.spec_accepted_total - st0.spec_accepted_total);
    if (json) {
      printf("%s{\"sequences\": %d, \"decode_tok_s\": %.2f, \"total_tok_s\": %.2f, \"seconds\": %.3f, "
             "\"spec_drafted\": %llu, \"spec_accepted\": %llu}",
             i ? ", " : "", levels[i], r.decode_tps, r.total_tps, r.seconds, drafted, accepted);
    } else {
      char acc[40];
      snprintf(acc, sizeof acc, "%llu/%llu", accepted, drafted);
      printf("%12d %14.2f %14.2f %10.3f %16s\n", levels[i], r.decode_tps, r.total_tps, r.seconds, acc);
    }
    fflush(stdout);
  }
  if (json && status == 0) printf("]}\n");
  mlxr_sched_close(s);
  return status;
}
