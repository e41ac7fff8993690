/*
 * cmd_logits.c: `mlxr logits MODEL --tokens 1,2,3 --out FILE [-t THREADS] [--kv-type f32|f16]`.
 * Runs the token list as ONE batched forward on a fresh sequence and writes the logits of every
 * position as raw little-endian float32 [n_tokens][n_vocab]. Used by the golden tests against
 * transformers and llama.cpp. The device used goes to stderr ("mlxr logits: device cuda:0 (...)").
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/common/status.h"
#include "core/runtime/engine.h"

static void logits_usage(FILE *f) {
  fprintf(f, "usage: mlxr logits MODEL --tokens 1,2,3 --out FILE [-t THREADS] [--kv-type f32|f16]\n"
             "                   [--device auto|cpu|cuda[:N]]\n");
}

int mlxr_cmd_logits(int argc, char **argv) {
  static const struct option opts[] = {
      {"tokens", required_argument, NULL, 'k'}, {"out", required_argument, NULL, 'o'},
      {"threads", required_argument, NULL, 't'}, {"kv-type", required_argument, NULL, 'K'},
      {"device", required_argument, NULL, 'D'},
      {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  const char *tokens_arg = NULL, *out_path = NULL;
  mlxr_engine_params ep = mlxr_engine_default_params();
  ep.load_tokenizer = false;
  long long v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "t:o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'k': tokens_arg = optarg; break;
    case 'o': out_path = optarg; break;
    case 't':
      if (!mlxr_cli_parse_int(optarg, 1, 1024, &v)) {
        fprintf(stderr, "mlxr logits: bad thread count '%s'\n", optarg);
        return 2;
      }
      ep.backend.cpu.n_threads = (int)v;
      break;
    case 'K':
      if (strcmp(optarg, "f32") == 0) ep.kv_type = MLXR_DTYPE_F32;
      else if (strcmp(optarg, "f16") == 0) ep.kv_type = MLXR_DTYPE_F16;
      else {
        fprintf(stderr, "mlxr logits: --kv-type must be f32 or f16\n");
        return 2;
      }
      break;
    case 'D': ep.device = optarg; break;
    case 'h': logits_usage(stdout); return 0;
    default: logits_usage(stderr); return 2;
    }
  }
  if (optind != argc - 1 || !tokens_arg || !out_path) {
    logits_usage(stderr);
    return 2;
  }
  int32_t *ids = NULL;
  size_t n = 0;
  if (!mlxr_cli_parse_ids(tokens_arg, &ids, &n) || n == 0 || n > (1u << 20)) {
    fprintf(stderr, "mlxr logits: --tokens must be a non-empty comma-separated list of ids\n");
    free(ids);
    return 2;
  }
  char err[512] = "";
  mlxr_cli_model model;
  int rc = mlxr_cli_model_resolve(argv[optind], &model, err, sizeof(err));
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr logits: %s\n", err);
    free(ids);
    return 1;
  }
  ep.n_batch = (int32_t)n;
  ep.n_ctx = (int32_t)n;
  mlxr_engine *e = NULL;
  rc = mlxr_engine_open(model.path, &ep, &e, err, sizeof(err));
  mlxr_cli_model_release(&model);
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr logits: %s\n", err);
    free(ids);
    return 1;
  }
  mlxr_cli_device_note("mlxr logits", e);
  fprintf(stderr, "mlxr logits: device %s\n", mlxr_engine_device(e));
  const int32_t n_vocab = mlxr_engine_hparams(e)->n_vocab;
  float *logits = malloc(n * (size_t)n_vocab * sizeof(float));
  int seq = mlxr_kv_seq_new(mlxr_engine_kv(e));
  int status = 1;
  if (!logits) {
    fprintf(stderr, "mlxr logits: out of memory\n");
  } else if ((rc = mlxr_engine_eval(e, seq, ids, (int32_t)n, 0, true, logits, err, sizeof(err))) != MLXR_OK) {
    fprintf(stderr, "mlxr logits: %s\n", err);
  } else {
    FILE *f = fopen(out_path, "wb");
    if (!f || fwrite(logits, sizeof(float), n * (size_t)n_vocab, f) != n * (size_t)n_vocab ||
        fclose(f) != 0) {
      fprintf(stderr, "mlxr logits: cannot write %s\n", out_path);
    } else {
      status = 0;
    }
  }
  free(logits);
  free(ids);
  mlxr_engine_close(e);
  return status;
}
