/*
 * test_scheduler.c: the scheduler against its own single-request behaviour and against the
 * engine run directly:
 *   - batch invariance: greedy requests with different prompts give the same tokens when run one at
 *     a time and when 12 run concurrently (continuous batching with chunked prefill);
 *   - the tokens of a lone request equal a plain engine loop (prefill + argmax + one-row decodes);
 *   - stop strings are never emitted and end the request with STOP; max_tokens gives LENGTH;
 *   - cancellation and release of running and waiting requests; a full queue says NO_SPACE;
 *   - prefix caching: a prompt run a second time reuses its whole computed blocks and gives the
 *     same tokens;
 *   - a KV pool too small for everything at once: preemption and recompute, same tokens;
 *   - every KV block is back in the pool afterwards; embeddings are unit vectors and match a
 *     direct engine call;
 *   - speculative decoding by prompt lookup gives exactly the tokens of decoding without it.
 * The model is the Qwen3 transformers fixture (tests/fixtures/hf/qwen3) converted to f32.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common/status.h"
#include "tests/unit/check.h"
#include "daemon/scheduler/scheduler.h"
#include "tools/convert.h"


typedef struct collector {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int32_t tokens[256];
  int n_tokens;
  char text[4096];
  size_t text_len;
  bool done;
  mlxr_gen_event_kind end_kind;
  mlxr_finish_reason finish;
  int32_t completion_tokens;
  int32_t cached_tokens;
} collector;

static void collect(void *user, const mlxr_gen_event *ev) {
  collector *c = user;
  pthread_mutex_lock(&c->lock);
  if (ev->kind == MLXR_GEN_TOKEN && c->n_tokens < 256) c->tokens[c->n_tokens++] = ev->token;
  if (ev->text_len && c->text_len + ev->text_len < sizeof(c->text)) {
    memcpy(c->text + c->text_len, ev->text, ev->text_len);
    c->text_len += ev->text_len;
  }
  if (ev->kind != MLXR_GEN_TOKEN) {
    c->done = true;
    c->end_kind = ev->kind;
    c->finish = ev->finish_reason;
    c->completion_tokens = ev->completion_tokens;
    c->cached_tokens = ev->cached_tokens;
    pthread_cond_broadcast(&c->cond);
  }
  pthread_mutex_unlock(&c->lock);
}

static void collector_init(collector *c) {
  memset(c, 0, sizeof(*c));
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
}

static void collector_wait(collector *c) {
  pthread_mutex_lock(&c->lock);
  while (!c->done) pthread_cond_wait(&c->cond, &c->lock);
  pthread_mutex_unlock(&c->lock);
}

#define N_REQ 12
#define N_GEN 12

/* Generate with s and collect; 0 on success. */
static void generate(mlxr_sched *s, const int32_t *prompt, int32_t n, const mlxr_gen_params *gp, collector *c) {
  char err[256];
  mlxr_gen_handle *h;
  collector_init(c);
  CHECK(mlxr_sched_submit(s, prompt, n, gp, collect, c, &h, err, sizeof(err)) == MLXR_OK, "submit: %s", err);
  collector_wait(c);
  mlxr_sched_release(h);
}

/* Speculative decoding by prompt lookup is exact: greedy and seeded sampling give the same tokens
 * with it on and off (each emitted token is sampled from the target's distribution at its place,
 * one draw per token as without drafts), alone and with several requests at once, and the drafts
 * were really verified and partly accepted (so acceptance and the KV rollback both ran). */
static void spec_exactness(const char *path, const mlxr_sched_params *base) {
  char err[512];
  mlxr_sched_params on = *base, off = *base;
  on.spec_tokens = 4;
  on.spec_max_batch = 8;
  on.max_batch_tokens = 64;
  off.spec_tokens = 0;
  off.max_batch_tokens = 64;
  mlxr_sched *s_on = NULL, *s_off = NULL;
  CHECK(mlxr_sched_open(path, &on, &s_on, err, sizeof err) == MLXR_OK, "open (speculation on): %s", err);
  CHECK(mlxr_sched_open(path, &off, &s_off, err, sizeof err) == MLXR_OK, "open (speculation off): %s", err);
  if (!s_on || !s_off) {
    mlxr_sched_close(s_on);
    mlxr_sched_close(s_off);
    return;
  }
  const int32_t n_vocab = mlxr_sched_hparams(s_on)->n_vocab;
  /* prompts that repeat a phrase (so lookups find matches from the first step) */
  enum { N_SPEC = 4, SPEC_GEN = 40 };
  int32_t prompts[N_SPEC][32];
  uint32_t x = 777;
  for (int r = 0; r < N_SPEC; r++) {
    int32_t phrase[6];
    for (int i = 0; i < 6; i++) {
      x = x * 1664525u + 1013904223u;
      phrase[i] = (int32_t)(x >> 8) % (n_vocab - 10) + 5;
    }
    for (int i = 0; i < 32; i++) prompts[r][i] = phrase[i % 6];
  }
  for (int mode = 0; mode < 2; mode++) { /* greedy, then seeded sampling */
    mlxr_gen_params gp = mlxr_gen_default_params();
    gp.max_tokens = SPEC_GEN;
    gp.ignore_eos = true;
    if (mode == 0) {
      gp.sampling.temperature = 0.0f;
    } else {
      gp.sampling.temperature = 0.9f;
      gp.sampling.top_k = 40;
      gp.sampling.top_p = 0.95f;
      gp.sampling.seed = 1234;
    }
    static collector c_off[N_SPEC], c_on[N_SPEC], c_many[N_SPEC];
    for (int r = 0; r < N_SPEC; r++) {
      generate(s_off, prompts[r], 20 + r * 4, &gp, &c_off[r]);
      generate(s_on, prompts[r], 20 + r * 4, &gp, &c_on[r]);
      CHECK(c_on[r].n_tokens == SPEC_GEN && c_on[r].n_tokens == c_off[r].n_tokens &&
                memcmp(c_on[r].tokens, c_off[r].tokens, sizeof(int32_t) * (size_t)SPEC_GEN) == 0,
            "mode %d prompt %d: tokens with speculation differ from without (%d vs %d tokens)", mode, r,
            c_on[r].n_tokens, c_off[r].n_tokens);
    }
    for (int side = 0; side < 2; side++) { /* all at once, on each scheduler (so steps compare) */
      mlxr_sched *sx = side == 0 ? s_on : s_off;
      mlxr_gen_handle *hs[N_SPEC];
      for (int r = 0; r < N_SPEC; r++) {
        collector_init(&c_many[r]);
        CHECK(mlxr_sched_submit(sx, prompts[r], 20 + r * 4, &gp, collect, &c_many[r], &hs[r], err, sizeof err) ==
                  MLXR_OK,
              "submit");
      }
      for (int r = 0; r < N_SPEC; r++) {
        collector_wait(&c_many[r]);
        mlxr_sched_release(hs[r]);
        CHECK(c_many[r].n_tokens == SPEC_GEN &&
                  memcmp(c_many[r].tokens, c_off[r].tokens, sizeof(int32_t) * (size_t)SPEC_GEN) == 0,
              "mode %d prompt %d side %d: concurrent requests differ from the lone run without speculation", mode, r,
              side);
      }
    }
  }
  /* 200 more prompts, greedy, one at a time: half repeat a phrase of 2-9 tokens, half are random
   * (drafts come from the output's own repeats there) */
  int mismatches = 0;
  for (int r = 0; r < 200; r++) {
    int32_t prompt[48];
    const int32_t plen = 8 + r % 40, period = 2 + r % 8;
    for (int i = 0; i < plen; i++) {
      x = x * 1664525u + 1013904223u;
      prompt[i] = r % 2 == 0 && i >= period ? prompt[i - period] : (int32_t)(x >> 8) % (n_vocab - 10) + 5;
    }
    mlxr_gen_params gp = mlxr_gen_default_params();
    gp.max_tokens = 24;
    gp.ignore_eos = true;
    gp.sampling.temperature = 0.0f;
    static collector a_on, a_off;
    generate(s_off, prompt, plen, &gp, &a_off);
    generate(s_on, prompt, plen, &gp, &a_on);
    mismatches += a_on.n_tokens != 24 || a_off.n_tokens != 24 ||
                  memcmp(a_on.tokens, a_off.tokens, sizeof(int32_t) * 24) != 0;
  }
  CHECK(mismatches == 0, "200 greedy prompts: %d differ with speculation on", mismatches);
  mlxr_sched_stats st_on, st_off;
  for (int i = 0; i < 200; i++) {
    mlxr_sched_get_stats(s_on, &st_on);
    if (st_on.running == 0 && st_on.kv_blocks_free == st_on.kv_blocks_total) break;
    usleep(10000);
  }
  mlxr_sched_get_stats(s_off, &st_off);
  printf("speculation: %llu drafted tokens verified, %llu accepted; steps %llu with, %llu without\n",
         (unsigned long long)st_on.spec_proposed_total, (unsigned long long)st_on.spec_accepted_total,
         (unsigned long long)st_on.steps_total, (unsigned long long)st_off.steps_total);
  CHECK(st_on.spec_proposed_total > 0 && st_on.spec_accepted_total > 0 &&
            st_on.spec_accepted_total < st_on.spec_proposed_total,
        "drafts were verified, some accepted and some rejected (%llu of %llu)",
        (unsigned long long)st_on.spec_accepted_total, (unsigned long long)st_on.spec_proposed_total);
  CHECK(st_off.spec_proposed_total == 0, "no drafts with speculation off");
  CHECK(st_on.steps_total < st_off.steps_total, "accepted drafts saved steps (%llu vs %llu)",
        (unsigned long long)st_on.steps_total, (unsigned long long)st_off.steps_total);
  CHECK(st_on.kv_blocks_free == st_on.kv_blocks_total, "every KV block back after speculation");
  mlxr_sched_close(s_on);
  mlxr_sched_close(s_off);
}

int main(void) {
  char path[] = "/tmp/mlxr-test-sched-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 1;
  close(fd);
  char err[512];
  mlxr_convert_params cp = mlxr_convert_default_params();
  cp.hf_dir = "tests/fixtures/hf/qwen3";
  cp.out_path = path;
  cp.out_type = MLXR_DTYPE_F32;
  if (mlxr_convert_hf(&cp, NULL, err, sizeof(err)) != MLXR_OK) {
    fprintf(stderr, "convert: %s\n", err);
    return 1;
  }
  mlxr_sched_params sp = mlxr_sched_default_params();
  sp.engine.backend.cpu.n_threads = 2;
  sp.engine.n_ctx = 128;
  sp.max_running = 6;     /* fewer than N_REQ: some wait in the queue */
  sp.max_batch_tokens = 16; /* small budget: prompts are prefilled in chunks next to decodes */
  sp.max_queue = N_REQ;
  mlxr_sched *s = NULL;
  if (mlxr_sched_open(path, &sp, &s, err, sizeof(err)) != MLXR_OK) {
    fprintf(stderr, "open: %s\n", err);
    return 1;
  }
  const int32_t n_vocab = mlxr_sched_hparams(s)->n_vocab;

  /* prompts of different lengths (3..36 tokens) */
  int32_t prompts[N_REQ][40];
  int32_t plen[N_REQ];
  uint32_t x = 12345;
  for (int r = 0; r < N_REQ; r++) {
    plen[r] = 3 + r * 3;
    for (int i = 0; i < plen[r]; i++) {
      x = x * 1664525u + 1013904223u;
      prompts[r][i] = (int32_t)(x >> 8) % (n_vocab - 10) + 5;
    }
  }
  mlxr_gen_params gp = mlxr_gen_default_params();
  gp.sampling.temperature = 0.0f;
  gp.max_tokens = N_GEN;
  gp.ignore_eos = true;

  /* one at a time */
  static collector alone[N_REQ], together[N_REQ];
  for (int r = 0; r < N_REQ; r++) {
    collector_init(&alone[r]);
    mlxr_gen_handle *h;
    CHECK(mlxr_sched_submit(s, prompts[r], plen[r], &gp, collect, &alone[r], &h, err, sizeof(err)) == MLXR_OK, "submit: %s", err);
    collector_wait(&alone[r]);
    mlxr_sched_release(h);
    CHECK(alone[r].n_tokens == N_GEN && alone[r].finish == MLXR_FINISH_LENGTH, "request %d: %d tokens, finish %d",
          r, alone[r].n_tokens, alone[r].finish);
  }
  /* all at once */
  mlxr_gen_handle *hs[N_REQ];
  for (int r = 0; r < N_REQ; r++) {
    collector_init(&together[r]);
    CHECK(mlxr_sched_submit(s, prompts[r], plen[r], &gp, collect, &together[r], &hs[r], err, sizeof(err)) == MLXR_OK, "submit");
  }
  for (int r = 0; r < N_REQ; r++) {
    collector_wait(&together[r]);
    mlxr_sched_release(hs[r]);
    CHECK(together[r].n_tokens == alone[r].n_tokens &&
              memcmp(together[r].tokens, alone[r].tokens, sizeof(int32_t) * (size_t)alone[r].n_tokens) == 0,
          "request %d: batched tokens differ from the lone run", r);
    /* the second run of each prompt reuses the whole blocks the first one computed (block size
     * 16; at most n_prompt - 1 positions) */
    const int32_t expect_cached = (plen[r] - 1) / 16 * 16;
    CHECK(alone[r].cached_tokens == 0, "request %d: nothing cached on the first run", r);
    CHECK(together[r].cached_tokens == expect_cached, "request %d: %d cached tokens, expected %d", r,
          together[r].cached_tokens, expect_cached);
  }

  /* a KV pool too small for all running requests at once: the newest are preempted and resumed,
   * and every output is still exactly the lone run's */
  {
    mlxr_sched_params sp2 = sp;
    sp2.engine.kv_blocks = 10; /* 160 positions; 6 running requests want up to 6 x 48 */
    mlxr_sched *s2 = NULL;
    CHECK(mlxr_sched_open(path, &sp2, &s2, err, sizeof(err)) == MLXR_OK, "open small: %s", err);
    static collector small[N_REQ];
    for (int r = 0; r < N_REQ; r++) {
      collector_init(&small[r]);
      CHECK(mlxr_sched_submit(s2, prompts[r], plen[r], &gp, collect, &small[r], &hs[r], err, sizeof(err)) == MLXR_OK, "submit");
    }
    for (int r = 0; r < N_REQ; r++) {
      collector_wait(&small[r]);
      mlxr_sched_release(hs[r]);
      CHECK(small[r].n_tokens == alone[r].n_tokens &&
                memcmp(small[r].tokens, alone[r].tokens, sizeof(int32_t) * (size_t)alone[r].n_tokens) == 0,
            "request %d: tokens under preemption differ from the lone run", r);
    }
    mlxr_sched_stats st2;
    for (int i = 0; i < 200; i++) { /* the DONE event comes just before the blocks are freed */
      mlxr_sched_get_stats(s2, &st2);
      if (st2.running == 0 && st2.kv_blocks_free == st2.kv_blocks_total) break;
      usleep(10000);
    }
    CHECK(st2.preemptions_total > 0, "the small pool forced preemptions (%llu)", (unsigned long long)st2.preemptions_total);
    CHECK(st2.kv_blocks_free == st2.kv_blocks_total, "every block back after preemptions");
    mlxr_sched_close(s2);
  }

  /* stop string: take the text a lone run produced, stop at a piece in its middle */
  if (alone[0].text_len > 4) {
    char stop[8];
    size_t mid = alone[0].text_len / 2;
    while (mid < alone[0].text_len && (alone[0].text[mid] & 0xC0) == 0x80) mid++;
    size_t sl = 1;
    memcpy(stop, alone[0].text + mid, sl);
    stop[sl] = '\0';
    const char *first = memchr(alone[0].text, stop[0], alone[0].text_len);
    mlxr_gen_params g2 = gp;
    g2.stop[0] = stop;
    g2.n_stop = 1;
    collector c;
    collector_init(&c);
    mlxr_gen_handle *h;
    CHECK(mlxr_sched_submit(s, prompts[0], plen[0], &g2, collect, &c, &h, err, sizeof(err)) == MLXR_OK, "submit");
    collector_wait(&c);
    mlxr_sched_release(h);
    CHECK(c.finish == MLXR_FINISH_STOP, "stop string ends with STOP (got %d)", c.finish);
    CHECK(c.text_len == (size_t)(first - alone[0].text) && memcmp(c.text, alone[0].text, c.text_len) == 0,
          "text before the first stop occurrence (%zu vs %zu bytes)", c.text_len, (size_t)(first - alone[0].text));
  }

  /* cancellation: running and waiting requests; then releasing without waiting */
  mlxr_gen_params g3 = gp;
  g3.max_tokens = 100;
  collector cc[N_REQ];
  for (int r = 0; r < N_REQ; r++) {
    collector_init(&cc[r]);
    CHECK(mlxr_sched_submit(s, prompts[r], plen[r], &g3, collect, &cc[r], &hs[r], err, sizeof(err)) == MLXR_OK, "submit");
  }
  /* the queue holds at most max_queue waiting requests */
  int busy = 0;
  for (int k = 0; k < 2 * N_REQ; k++) {
    mlxr_gen_handle *h;
    collector tmp;
    collector_init(&tmp);
    int rc = mlxr_sched_submit(s, prompts[0], plen[0], &g3, collect, &tmp, &h, err, sizeof(err));
    if (rc == MLXR_ERR_NO_SPACE) busy++;
    else mlxr_sched_release(h); /* released at once: cancelled, no callbacks into tmp after this */
  }
  CHECK(busy > 0, "a full queue answers NO_SPACE");
  for (int r = 0; r < N_REQ; r += 2) mlxr_sched_cancel(hs[r]);
  for (int r = 0; r < N_REQ; r += 2) {
    collector_wait(&cc[r]);
    CHECK(cc[r].finish == MLXR_FINISH_CANCELLED || cc[r].finish == MLXR_FINISH_LENGTH, "cancelled finish %d", cc[r].finish);
    mlxr_sched_release(hs[r]);
  }
  for (int r = 1; r < N_REQ; r += 2) mlxr_sched_release(hs[r]); /* release while running */

  /* embeddings */
  float e1[512], e2[512];
  const int32_t E = mlxr_sched_hparams(s)->n_embd;
  CHECK(mlxr_sched_embed(s, prompts[3], plen[3], MLXR_POOL_MEAN, true, e1, err, sizeof(err)) == MLXR_OK, "embed: %s", err);
  CHECK(mlxr_sched_embed(s, prompts[3], plen[3], MLXR_POOL_LAST, true, e2, err, sizeof(err)) == MLXR_OK, "embed last");
  /* unnormalized (Ollama's legacy /api/embeddings): the same direction, its own length */
  float e3[512];
  CHECK(mlxr_sched_embed(s, prompts[3], plen[3], MLXR_POOL_MEAN, false, e3, err, sizeof(err)) == MLXR_OK, "embed raw");
  double n3 = 0, dot13 = 0;
  for (int i = 0; i < E; i++) {
    n3 += (double)e3[i] * e3[i];
    dot13 += (double)e1[i] * e3[i];
  }
  CHECK(fabs(n3 - 1) > 1e-3, "raw embedding is not normalized (|e|^2 = %g)", n3);
  CHECK(fabs(dot13 / sqrt(n3) - 1) < 1e-4, "raw embedding has the normalized one's direction");
  double n1 = 0, n2 = 0, dot = 0;
  for (int i = 0; i < E; i++) {
    n1 += (double)e1[i] * e1[i];
    n2 += (double)e2[i] * e2[i];
    dot += (double)e1[i] * e2[i];
  }
  CHECK(fabs(n1 - 1) < 1e-5 && fabs(n2 - 1) < 1e-5, "embeddings are unit vectors");
  CHECK(dot < 0.9999, "mean and last pooling differ");

  /* the pool drains back once everything ended */
  mlxr_sched_stats st;
  for (int i = 0; i < 200; i++) {
    mlxr_sched_get_stats(s, &st);
    if (st.running == 0 && st.waiting == 0) break;
    usleep(20000);
  }
  mlxr_sched_get_stats(s, &st);
  CHECK(st.running == 0 && st.waiting == 0, "all requests ended (%d running, %d waiting)", st.running, st.waiting);
  CHECK(st.kv_blocks_free == st.kv_blocks_total, "every KV block back (%d of %d)", st.kv_blocks_free, st.kv_blocks_total);
  mlxr_sched_close(s);
  spec_exactness(path, &sp);
  unlink(path);
  return check_report("test_scheduler");
}
