/*
 * cmd_bench.c: `mlxr bench MODEL [-p 512] [-n 128] [-d 0] [-t THREADS] [-r REPS] [--json]`, in the
 * manner of llama-bench: "pp" evaluates p prompt tokens as one batch on an empty sequence; "tg"
 * generates n tokens one at a time (each a one-row forward, as decoding does), after d tokens of
 * context evaluated untimed as one batch (llama-bench's -d: decode speed at depth, where attention
 * over the cache adds to the weight reads). Each is repeated r times on a
 * fresh sequence after one untimed warm-up; the median tokens/s and the standard deviation are
 * reported. Token ids are drawn from a fixed-seed generator so runs are comparable.
 * --json prints one object: {"model", "threads", "device", "pp": {"n", "tok_s", "stddev"}, "tg": {...}}
 * plus extra fields (weight bytes, type, kv type) that the bench/ scripts use for the roofline.
 * --concurrency runs bench_batch.c's mode instead (many sequences through the scheduler).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/bench_batch.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/common/status.h"
#include "core/runtime/engine.h"
#include "daemon/scheduler/scheduler.h"

static void bench_usage(FILE *f) {
  fprintf(f, "usage: mlxr bench MODEL [-p 512] [-n 128] [-d 0] [-t THREADS] [-r REPS] [--json] [--no-repack]\n"
             "                  [--device auto|cpu|cuda[:N]] [--no-graphs] [--no-pdl] [--no-fold]\n"
             "                  [--concurrency 1,8,32,64 [--spec N]]\n"
             "  -d DEPTH        tokens of context before the timed generation (default 0)\n"
             "  --no-repack     read weights in place from the file (no load-time repacking)\n"
             "  --device D      where to run (default auto: a GPU if there is one)\n"
             "  --no-graphs     CUDA: run every forward op by op (no CUDA graphs)\n"
             "  --no-pdl        CUDA: no programmatic dependent launch (each kernel waits for the end\n"
             "                  of the one before)\n"
             "  --no-fold       CUDA: norms and SwiGLU as kernels of their own, not folded into the\n"
             "                  quantized products\n"
             "  --gpu-memory-mib N  CUDA: take at most N MiB of GPU memory (beyond: the CPU)\n"
             "  --concurrency L aggregate decode of L sequences at once through the scheduler, for\n"
             "                  each L of the list (prompts of -p tokens, -n generated; defaults 128)\n"
             "  --spec N        with --concurrency: speculative decoding by prompt lookup with up to N\n"
             "                  drafts per step (0: off; default: the scheduler's, 4 on the CPU)\n");
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void summarize(double *v, int n, double *median, double *stddev) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  *median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  double mean = 0, var = 0;
  for (int i = 0; i < n; i++) mean += v[i];
  mean /= n;
  for (int i = 0; i < n; i++) var += (v[i] - mean) * (v[i] - mean);
  *stddev = n > 1 ? sqrt(var / (n - 1)) : 0.0;
}

/* One timed pp or tg run on a fresh sequence (tg after d untimed context tokens); returns
 * tokens/s or a negative value on error. */
static double bench_once(mlxr_engine *e, const int32_t *tokens, int32_t p, int32_t n, int32_t d,
                         bool tg, float *logits, char *err, size_t err_len) {
  mlxr_kv_cache *kv = mlxr_engine_kv(e);
  int seq = mlxr_kv_seq_new(kv);
  if (seq < 0) return -1;
  double rate = -1;
  if (tg && d > 0 && mlxr_engine_eval(e, seq, tokens, d, 0, false, logits, err, err_len) != MLXR_OK) {
    mlxr_kv_seq_free(kv, seq);
    return -1;
  }
  const double t0 = mlxr_cli_now();
  if (!tg) {
    if (mlxr_engine_eval(e, seq, tokens, p, 0, false, logits, err, err_len) == MLXR_OK) {
      rate = p / (mlxr_cli_now() - t0);
    }
  } else {
    int32_t i = 0;
    for (; i < n; i++) {
      if (mlxr_engine_eval(e, seq, &tokens[i], 1, d + i, false, logits, err, err_len) != MLXR_OK) break;
    }
    if (i == n) rate = n / (mlxr_cli_now() - t0);
  }
  mlxr_kv_seq_free(kv, seq);
  return rate;
}

int mlxr_cmd_bench(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"no-repack", no_argument, NULL, 'R'},
                                       {"threads", required_argument, NULL, 't'},
                                       {"device", required_argument, NULL, 'D'},
                                       {"no-graphs", no_argument, NULL, 'G'},
                                       {"no-pdl", no_argument, NULL, 'P'},
                                       {"no-fold", no_argument, NULL, 'F'},
                                       {"gpu-memory-mib", required_argument, NULL, 'M'},
                                       {"concurrency", required_argument, NULL, 'C'},
                                       {"spec", required_argument, NULL, 'S'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  long long p = 512, n = 128, d = 0, reps = 5, threads = 0, gpu_mib = 0, spec = -1, v;
  bool json = false, no_repack = false, no_graphs = false, no_pdl = false, no_fold = false, p_set = false,
       n_set = false;
  const char *device = NULL;
  int levels[32], n_levels = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "p:n:d:t:r:h", opts, NULL)) != -1) {
    bool ok = true;
    switch (c) {
    case 'p': ok = mlxr_cli_parse_int(optarg, 0, 1 << 16, &v); p = v; p_set = true; break;
    case 'n': ok = mlxr_cli_parse_int(optarg, 0, 1 << 16, &v); n = v; n_set = true; break;
    case 'd': ok = mlxr_cli_parse_int(optarg, 0, 1 << 16, &v); d = v; break;
    case 'r': ok = mlxr_cli_parse_int(optarg, 1, 1000, &v); reps = v; break;
    case 't': ok = mlxr_cli_parse_int(optarg, 1, 1024, &v); threads = v; break;
    case 'j': json = true; break;
    case 'R': no_repack = true; break;
    case 'G': no_graphs = true; break;
    case 'P': no_pdl = true; break;
    case 'F': no_fold = true; break;
    case 'M': ok = mlxr_cli_parse_int(optarg, 1, 1 << 24, &v); gpu_mib = v; break;
    case 'S': ok = mlxr_cli_parse_int(optarg, 0, MLXR_SPEC_MAX_TOKENS, &v); spec = v; break;
    case 'D': {
      mlxr_device_spec spec;
      char why[160];
      ok = mlxr_device_parse(optarg, &spec, why, sizeof why) == MLXR_OK;
      device = optarg;
      break;
    }
    case 'C': {
      int32_t *ids = NULL;
      size_t cnt = 0;
      ok = mlxr_cli_parse_ids(optarg, &ids, &cnt) && cnt > 0 && cnt <= 32;
      for (size_t i = 0; ok && i < cnt; i++) {
        ok = ids[i] >= 1 && ids[i] <= 4096;
        if (ok) levels[i] = ids[i];
      }
      n_levels = ok ? (int)cnt : 0;
      free(ids);
      break;
    }
    case 'h': bench_usage(stdout); return 0;
    default: bench_usage(stderr); return 2;
    }
    if (!ok) {
      fprintf(stderr, "mlxr bench: bad value '%s'\n", optarg);
      return 2;
    }
  }
  if (optind != argc - 1 || (p == 0 && n == 0)) {
    bench_usage(stderr);
    return 2;
  }
  if (threads == 0) threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
  char err[512] = "";
  mlxr_cli_model model;
  if (mlxr_cli_model_resolve(argv[optind], &model, err, sizeof(err)) != MLXR_OK) {
    fprintf(stderr, "mlxr bench: %s\n", err);
    return 1;
  }
  mlxr_engine_params ep = mlxr_engine_default_params();
  ep.backend.cpu.n_threads = (int)threads;
  ep.load_tokenizer = false;
  ep.backend.cpu.no_repack = no_repack;
  ep.backend.cuda.no_graphs = no_graphs;
  ep.backend.cuda.no_pdl = no_pdl;
  ep.backend.cuda.no_fold = no_fold;
  ep.backend.cuda.mem_limit = (size_t)gpu_mib << 20;
  ep.device = device;
  if (n_levels > 0) {
    const int st = mlxr_bench_concurrency(model.path, argv[optind], &ep, (int)spec, levels, n_levels,
                                          p_set ? (int32_t)p : 128, n_set ? (int32_t)n : 128, json);
    mlxr_cli_model_release(&model);
    return st;
  }
  ep.n_batch = (int32_t)(p > d ? p : d > 0 ? d : 1);
  ep.n_ctx = (int32_t)(p > n + d ? p : n + d) + 1;
  mlxr_engine *e = NULL;
  int rc = mlxr_engine_open(model.path, &ep, &e, err, sizeof(err));
  mlxr_cli_model_release(&model);
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr bench: %s\n", err);
    return 1;
  }
  mlxr_cli_device_note("mlxr bench", e);
  const mlxr_hparams *hp = mlxr_engine_hparams(e);
  const int32_t len = (int32_t)(p > n + d ? p : n + d);
  int32_t *tokens = malloc((size_t)len * sizeof(int32_t));
  float *logits = malloc((size_t)hp->n_vocab * sizeof(float));
  double *pp = calloc((size_t)reps, sizeof(double)), *tg = calloc((size_t)reps, sizeof(double));
  int status = 1;
  if (!tokens || !logits || !pp || !tg) {
    fprintf(stderr, "mlxr bench: out of memory\n");
    goto done;
  }
  uint64_t x = 0x853c49e6748fea9bull;
  for (int32_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    tokens[i] = (int32_t)(x % (uint64_t)hp->n_vocab);
  }
  double pp_med = 0, pp_sd = 0, tg_med = 0, tg_sd = 0;
  for (int kind = 0; kind < 2; kind++) {
    const bool is_tg = kind == 1;
    if ((is_tg ? n : p) == 0) continue;
    double *out = is_tg ? tg : pp;
    if (bench_once(e, tokens, (int32_t)p, (int32_t)n, (int32_t)d, is_tg, logits, err, sizeof(err)) < 0) { /* warm-up */
      fprintf(stderr, "mlxr bench: %s\n", err);
      goto done;
    }
    for (int r = 0; r < reps; r++) {
      out[r] = bench_once(e, tokens, (int32_t)p, (int32_t)n, (int32_t)d, is_tg, logits, err, sizeof(err));
      if (out[r] < 0) {
        fprintf(stderr, "mlxr bench: %s\n", err);
        goto done;
      }
    }
    summarize(out, (int)reps, is_tg ? &tg_med : &pp_med, is_tg ? &tg_sd : &pp_sd);
  }
  const size_t wbytes = mlxr_model_weight_bytes(mlxr_engine_model(e));
  if (json) {
    printf("{\"model\": \"%s\", \"device\": \"%s\", \"threads\": %lld, \"pp\": {\"n\": %lld, \"tok_s\": %.3f, \"stddev\": %.3f}, "
           "\"tg\": {\"n\": %lld, \"depth\": %lld, \"tok_s\": %.3f, \"stddev\": %.3f}, \"weight_bytes\": %zu, "
           "\"weight_type\": \"%s\", \"arch\": \"%s\", \"reps\": %lld}\n",
           argv[optind], mlxr_engine_device(e), threads, p, pp_med, pp_sd, n, d, tg_med, tg_sd, wbytes,
           mlxr_dtype_name(mlxr_model_weight_type(mlxr_engine_model(e))), hp->arch_name, reps);
  } else {
    printf("model: %s (%s, %s weights, %.1f MiB)\ndevice: %s\nthreads: %lld, reps: %lld\n", argv[optind],
           hp->arch_name, mlxr_dtype_name(mlxr_model_weight_type(mlxr_engine_model(e))), wbytes / 1048576.0,
           mlxr_engine_device(e), threads, reps);
    if (p) printf("pp%-6lld %10.2f tok/s  +- %.2f\n", p, pp_med, pp_sd);
    if (n && d) printf("tg%lld @ d%lld %7.2f tok/s  +- %.2f\n", n, d, tg_med, tg_sd);
    else if (n) printf("tg%-6lld %10.2f tok/s  +- %.2f  (%.2f GB/s of weights read)\n", n, tg_med, tg_sd,
                       tg_med * (double)wbytes / 1e9);
  }
  status = 0;
done:
  free(tokens);
  free(logits);
  free(pp);
  free(tg);
  mlxr_engine_close(e);
  return status;
}
