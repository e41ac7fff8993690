/*
 * llamacpp_cbench.c: llama.cpp's CPU speed on a GGUF without Node in the loop: the same prebuilt
 * libraries node-llama-cpp 3.21.1 loads (libllama, libggml and the per-CPU libggml-cpu-*.so
 * variants, picked by ggml's own scoring), called from C the way llama-bench does it. Nothing
 * here is MLXR code. bench/compare_llamacpp.sh builds it against tests/.cache/llamacpp.
 *
 *   llamacpp-cbench MODEL.gguf BINS_DIR [-t THREADS] [-p 512] [-n 128] [-d 0] [-r REPS]
 *
 * pp: the sequence's memory is cleared and P pseudo-random token ids are decoded as one batch.
 * tg: memory cleared, D context tokens decoded as one batch (untimed: llama-bench's -d), then N
 * single-token decodes, each feeding a fixed token id (as llama-bench does: no sampling, so no
 * per-token work beyond llama_decode itself). One warm-up of each first.
 * Prints one JSON object like bench/llamacpp_bench.mjs:
 *   {"pp": {"n": P, "tok_s": X}, "tg": {"n": N, "tok_s": Y}, "threads": T, "reps": R,
 *    "engine": "...", "cpu_variant": "sapphirerapids" (the libggml-cpu-*.so that got loaded)}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
  (void)level;
  (void)text;
  (void)user;
}

static int parse_int(const char *s, int *out) {
  char *end = NULL;
  long v = strtol(s, &end, 10);
  if (!end || *end || v < 0 || v > 1 << 20) return 0;
  *out = (int)v;
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: llamacpp-cbench MODEL.gguf BINS_DIR [-t T] [-p P] [-n N] [-d D] [-r R]\n");
    return 2;
  }
  int threads = 2, P = 512, N = 128, D = 0, reps = 1;
  for (int i = 3; i + 1 < argc; i += 2) {
    int *dst = !strcmp(argv[i], "-t") ? &threads : !strcmp(argv[i], "-p") ? &P
             : !strcmp(argv[i], "-n") ? &N : !strcmp(argv[i], "-d") ? &D : !strcmp(argv[i], "-r") ? &reps : NULL;
    if (!dst || !parse_int(argv[i + 1], dst)) {
      fprintf(stderr, "llamacpp-cbench: bad option %s %s\n", argv[i], argv[i + 1]);
      return 2;
    }
  }
  if (threads < 1 || P < 1 || N < 1 || reps < 1) {
    fprintf(stderr, "llamacpp-cbench: -t, -p, -n and -r must be at least 1\n");
    return 2;
  }
  llama_log_set(quiet_log, NULL);
  ggml_backend_load_all_from_path(argv[2]);
  llama_backend_init();
  /* which libggml-cpu-<variant>.so ggml picked for this CPU */
  char variant[64] = "?";
  FILE *maps = fopen("/proc/self/maps", "r");
  char line[1024];
  while (maps && fgets(line, sizeof(line), maps)) {
    const char *p = strstr(line, "libggml-cpu-");
    if (!p) continue;
    p += strlen("libggml-cpu-");
    size_t len = strcspn(p, ".\n");
    if (len >= sizeof(variant)) len = sizeof(variant) - 1;
    memcpy(variant, p, len);
    variant[len] = 0;
    break;
  }
  if (maps) fclose(maps);
  struct llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  struct llama_model *model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    fprintf(stderr, "llamacpp-cbench: cannot load %s\n", argv[1]);
    return 1;
  }
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)(P > N + D ? P : N + D) + 16;
  cp.n_batch = (uint32_t)(P > D ? P : D);
  cp.n_ubatch = cp.n_batch;
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  cp.no_perf = true;
  struct llama_context *ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    fprintf(stderr, "llamacpp-cbench: cannot create a context\n");
    return 1;
  }
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  const int n_prompt = P > D ? P : D;
  llama_token *prompt = malloc(sizeof(llama_token) * (size_t)n_prompt);
  if (!prompt) return 1;
  unsigned state = 12345;
  for (int i = 0; i < n_prompt; i++) {
    state = state * 1103515245u + 12345u;
    prompt[i] = (llama_token)(state % (unsigned)n_vocab);
  }
  double pp_sum = 0, tg_sum = 0;
  for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
    llama_memory_clear(llama_get_memory(ctx), true);
    double t0 = now_s();
    if (llama_decode(ctx, llama_batch_get_one(prompt, P)) != 0) return 1;
    llama_synchronize(ctx);
    double t1 = now_s();
    llama_memory_clear(llama_get_memory(ctx), true);
    if (D > 0) {
      if (llama_decode(ctx, llama_batch_get_one(prompt, D)) != 0) return 1;
      llama_synchronize(ctx);
    }
    llama_token tok = prompt[0];
    double t2 = now_s();
    for (int i = 0; i < N; i++) {
      if (llama_decode(ctx, llama_batch_get_one(&tok, 1)) != 0) return 1;
      llama_synchronize(ctx);
    }
    double t3 = now_s();
    if (r >= 0) {
      pp_sum += P / (t1 - t0);
      tg_sum += N / (t3 - t2);
    }
  }
  printf("{\"pp\": {\"n\": %d, \"tok_s\": %.2f}, \"tg\": {\"n\": %d, \"depth\": %d, \"tok_s\": %.2f}, \"threads\": %d, "
         "\"reps\": %d, \"engine\": \"llama.cpp (node-llama-cpp 3.21.1 prebuilt libraries, from C)\", "
         "\"cpu_variant\": \"%s\"}\n",
         P, pp_sum / reps, N, D, tg_sum / reps, threads, reps, variant);
  free(prompt);
  llama_free(ctx);
  llama_model_free(model);
  llama_backend_free();
  return 0;
}
