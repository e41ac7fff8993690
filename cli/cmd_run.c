/*
 * cmd_run.c: `mlxr run MODEL [PROMPT] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]
 * [--seed S] [-t THREADS] ...`: generate a completion of PROMPT and stream it to stdout as it is
 * produced (UTF-8-safe: the streaming detokenizer never splits a character); timings go to stderr.
 * With no PROMPT, the prompt is read from stdin. `--tokens 1,2,3` gives the prompt as ids and
 * `--ids` prints generated ids instead of text (used by the golden tests).
 *
 * The loop: tokenize, prefill the prompt in chunks of the batch size (logits for the last row only),
 * then sample one token at a time, feeding each back as a one-row batch, until N tokens, an
 * end-of-generation token, or the end of the context.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/chat_repl.h"
#include "cli/cli_util.h"
#include "cli/daemon_client.h"
#include "cli/commands.h"
#include "core/common/status.h"
#include "core/runtime/engine.h"
#include "core/runtime/sampler.h"

static void run_usage(FILE *f) {
  fprintf(f,
          "usage: mlxr run MODEL [PROMPT] [options]\n"
          "  With no PROMPT on a terminal (or with --chat): an interactive chat using the model's\n"
          "  chat template (/bye quits, /clear starts over, \"\"\" for multi-line messages).\n"
          "  With no PROMPT and stdin not a terminal: stdin is the prompt to complete.\n"
          "  -n, --n-predict N     tokens to generate (default 128)\n"
          "  --temp T              temperature, 0 = greedy (default 0.8)\n"
          "  --top-k K             (default 40; 0 = off)\n"
          "  --top-p P             (default 0.95; 1 = off)\n"
          "  --min-p P             (default 0.05; 0 = off)\n"
          "  --repeat-penalty R    (default 1.0 = off) over --repeat-last-n N (default 64)\n"
          "  --presence-penalty P, --frequency-penalty F\n"
          "  --seed S              RNG seed (default: random)\n"
          "  -t, --threads N       CPU threads (default: all)\n"
          "  --device D            auto (default: a GPU if there is one), cpu, cuda, cuda:N\n"
          "  --gpu-memory-mib N    take at most N MiB of GPU memory (a model that does not fit\n"
          "                        runs on the CPU)\n"
          "  -c, --ctx-size N      context length (default: min(model, 4096))\n"
          "  --kv-type f16|f32     KV cache type (default: f32 for f32 models, else f16)\n"
          "  --tokens 1,2,3        prompt as token ids instead of text\n"
          "  --ids                 print generated token ids instead of text\n"
          "  --no-bos              do not add BOS to a text prompt\n"
          "  --ignore-eos          keep generating past end-of-generation tokens\n"
          "  --chat                chat mode, reading messages line by line from stdin\n"
          "  --system TEXT         system message for chat mode\n"
          "  --local               run in this process even when mlxrd is running\n"
          "  A running mlxrd (its Unix socket: $MLXR_SOCKET, else $XDG_RUNTIME_DIR/mlxr.sock, else\n"
          "  /tmp/mlxr-$UID.sock) that serves the model is used instead of loading it here.\n");
}

typedef struct run_options {
  int32_t n_predict;
  mlxr_sampler_params sp;
  bool seed_set;
  bool print_ids;
  bool add_bos;
  bool ignore_eos;
  bool chat;            /* interactive chat (default with no prompt on a terminal) */
  bool n_set;
  const char *system;
  bool local;           /* never use a running daemon */
  const char *tokens_arg;
} run_options;

enum { OPT_TEMP = 256, OPT_TOPK, OPT_TOPP, OPT_MINP, OPT_SEED, OPT_REP, OPT_REPN, OPT_PRES,
       OPT_FREQ, OPT_TOKENS, OPT_IDS, OPT_KV, OPT_NOBOS, OPT_IGNORE_EOS, OPT_CHAT, OPT_SYSTEM, OPT_LOCAL,
       OPT_DEVICE, OPT_GPU_MIB };

static int parse_run_options(int argc, char **argv, run_options *o, mlxr_engine_params *ep) {
  static const struct option opts[] = {
      {"n-predict", required_argument, NULL, 'n'}, {"threads", required_argument, NULL, 't'},
      {"ctx-size", required_argument, NULL, 'c'}, {"temp", required_argument, NULL, OPT_TEMP},
      {"top-k", required_argument, NULL, OPT_TOPK}, {"top-p", required_argument, NULL, OPT_TOPP},
      {"min-p", required_argument, NULL, OPT_MINP}, {"seed", required_argument, NULL, OPT_SEED},
      {"repeat-penalty", required_argument, NULL, OPT_REP},
      {"repeat-last-n", required_argument, NULL, OPT_REPN},
      {"presence-penalty", required_argument, NULL, OPT_PRES},
      {"frequency-penalty", required_argument, NULL, OPT_FREQ},
      {"tokens", required_argument, NULL, OPT_TOKENS}, {"ids", no_argument, NULL, OPT_IDS},
      {"kv-type", required_argument, NULL, OPT_KV}, {"no-bos", no_argument, NULL, OPT_NOBOS},
      {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS}, {"chat", no_argument, NULL, OPT_CHAT},
      {"system", required_argument, NULL, OPT_SYSTEM}, {"local", no_argument, NULL, OPT_LOCAL},
      {"device", required_argument, NULL, OPT_DEVICE}, {"gpu-memory-mib", required_argument, NULL, OPT_GPU_MIB},
      {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  long long v;
  double d;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "n:t:c:h", opts, NULL)) != -1) {
    bool ok = true;
    switch (c) {
    case 'n': ok = mlxr_cli_parse_int(optarg, 0, 1 << 24, &v); o->n_predict = (int32_t)v; o->n_set = true; break;
    case 't': ok = mlxr_cli_parse_int(optarg, 1, 1024, &v); ep->backend.cpu.n_threads = (int)v; break;
    case 'c': ok = mlxr_cli_parse_int(optarg, 1, 1 << 24, &v); ep->n_ctx = (int32_t)v; break;
    case OPT_TEMP: ok = mlxr_cli_parse_float(optarg, &d); o->sp.temperature = (float)d; break;
    case OPT_TOPK: ok = mlxr_cli_parse_int(optarg, 0, 1 << 24, &v); o->sp.top_k = (int32_t)v; break;
    case OPT_TOPP: ok = mlxr_cli_parse_float(optarg, &d) && d >= 0 && d <= 1; o->sp.top_p = (float)d; break;
    case OPT_MINP: ok = mlxr_cli_parse_float(optarg, &d) && d >= 0 && d <= 1; o->sp.min_p = (float)d; break;
    case OPT_SEED: ok = mlxr_cli_parse_int(optarg, 0, INT64_MAX, &v); o->sp.seed = (uint64_t)v; o->seed_set = true; break;
    case OPT_REP: ok = mlxr_cli_parse_float(optarg, &d) && d > 0; o->sp.repeat_penalty = (float)d; break;
    case OPT_REPN: ok = mlxr_cli_parse_int(optarg, -1, 1 << 16, &v); o->sp.repeat_last_n = (int32_t)v; break;
    case OPT_PRES: ok = mlxr_cli_parse_float(optarg, &d); o->sp.presence_penalty = (float)d; break;
    case OPT_FREQ: ok = mlxr_cli_parse_float(optarg, &d); o->sp.frequency_penalty = (float)d; break;
    case OPT_TOKENS: o->tokens_arg = optarg; break;
    case OPT_IDS: o->print_ids = true; break;
    case OPT_NOBOS: o->add_bos = false; break;
    case OPT_IGNORE_EOS: o->ignore_eos = true; break;
    case OPT_CHAT: o->chat = true; break;
    case OPT_SYSTEM: o->system = optarg; break;
    case OPT_LOCAL: o->local = true; break;
    case OPT_GPU_MIB: ok = mlxr_cli_parse_int(optarg, 1, 1 << 24, &v); ep->backend.cuda.mem_limit = (size_t)v << 20; break;
    case OPT_DEVICE: {
      mlxr_device_spec spec;
      char why[160];
      ok = mlxr_device_parse(optarg, &spec, why, sizeof why) == MLXR_OK;
      ep->device = optarg;
      o->local = o->local || ok; /* a device choice is for this process's engine */
      break;
    }
    case OPT_KV:
      if (strcmp(optarg, "f32") == 0) ep->kv_type = MLXR_DTYPE_F32;
      else if (strcmp(optarg, "f16") == 0) ep->kv_type = MLXR_DTYPE_F16;
      else ok = false;
      break;
    case 'h': run_usage(stdout); return 1;
    default: run_usage(stderr); return 2;
    }
    if (!ok) {
      fprintf(stderr, "mlxr run: bad value '%s' for option %s\n", optarg, argv[optind - 1]);
      return 2;
    }
  }
  return 0;
}

/* Prompt ids from --tokens, the PROMPT argument, or stdin. */
static int prompt_ids(const run_options *o, const mlxr_tokenizer *tok, const char *prompt,
                      int32_t **ids, size_t *n) {
  if (o->tokens_arg) {
    if (!mlxr_cli_parse_ids(o->tokens_arg, ids, n) || *n == 0) {
      fprintf(stderr, "mlxr run: --tokens must be a non-empty list of ids\n");
      return MLXR_ERR_INVALID;
    }
    return MLXR_OK;
  }
  char *stdin_text = NULL;
  size_t len;
  if (!prompt) {
    if (isatty(STDIN_FILENO)) fprintf(stderr, "mlxr run: reading the prompt from stdin (end with Ctrl-D)\n");
    stdin_text = mlxr_cli_read_stdin(&len);
    if (!stdin_text) return MLXR_ERR_IO;
    prompt = stdin_text;
  } else {
    len = strlen(prompt);
  }
  mlxr_tokenize_params tp = {.add_special = o->add_bos, .parse_special = true};
  int rc = mlxr_tokenizer_encode(tok, prompt, len, tp, ids, n);
  free(stdin_text);
  if (rc == MLXR_OK && *n == 0) {
    fprintf(stderr, "mlxr run: the prompt is empty and the model adds no BOS token\n");
    free(*ids);
    return MLXR_ERR_INVALID;
  }
  return rc;
}

/* Through a running mlxrd if one answers and serves the model: returns the exit status, or 2 to
 * run in process instead. The socket comes from the environment like mlxrd's own default. */
static int run_via_daemon(const run_options *o, const char *model_arg, const char *prompt, bool chat) {
  mlxr_daemon_client c = {.sp = o->sp, .seed_set = o->seed_set, .n_predict = o->n_set ? o->n_predict : -1};
  const char *sock = getenv("MLXR_SOCKET"), *xdg = getenv("XDG_RUNTIME_DIR");
  if (sock && *sock) snprintf(c.socket_path, sizeof(c.socket_path), "%s", sock);
  else if (xdg && *xdg) snprintf(c.socket_path, sizeof(c.socket_path), "%s/mlxr.sock", xdg);
  else snprintf(c.socket_path, sizeof(c.socket_path), "/tmp/mlxr-%u.sock", (unsigned)getuid());
  if (!mlxr_daemon_reachable(c.socket_path)) return 2;
  mlxr_daemon_model_id(model_arg, c.model, sizeof(c.model));
  if (mlxr_daemon_has_model(&c) != 0) return 2;
  if (chat) {
    mlxr_chat_backend b = mlxr_daemon_chat_backend(&c);
    return mlxr_chat_loop(&b, o->system);
  }
  char *stdin_text = NULL;
  if (!prompt) {
    size_t len;
    stdin_text = mlxr_cli_read_stdin(&len);
    if (!stdin_text) return 1;
    prompt = stdin_text;
  }
  int rc = mlxr_daemon_generate(&c, prompt);
  free(stdin_text);
  return rc;
}

int mlxr_cmd_run(int argc, char **argv) {
  run_options o = {.n_predict = 128, .sp = mlxr_sampler_default_params(), .add_bos = true};
  mlxr_engine_params ep = mlxr_engine_default_params();
  int prc = parse_run_options(argc, argv, &o, &ep);
  if (prc) return prc == 1 ? 0 : prc;
  if (optind != argc - 1 && optind != argc - 2) {
    run_usage(stderr);
    return 2;
  }
  const char *prompt = optind == argc - 2 ? argv[optind + 1] : NULL;
  if (!o.seed_set) o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

  const bool chat = o.chat || (!prompt && !o.tokens_arg && isatty(STDIN_FILENO));
  if (!o.local && !o.tokens_arg && !o.print_ids) {
    int drc = run_via_daemon(&o, argv[optind], prompt, chat);
    if (drc != 2) return drc; /* 2: no daemon serving this model: run in process */
  }
  char err[512] = "";
  mlxr_cli_model model;
  int rc = mlxr_cli_model_resolve(argv[optind], &model, err, sizeof(err));
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr run: %s\n", err);
    return 1;
  }
  mlxr_engine *e = NULL;
  rc = mlxr_engine_open(model.path, &ep, &e, err, sizeof(err));
  mlxr_cli_model_release(&model);
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr run: %s\n", err);
    return 1;
  }
  mlxr_cli_device_note("mlxr run", e);
  if (chat) {
    int st = mlxr_chat_repl(e, &o.sp, o.n_set ? o.n_predict : mlxr_engine_n_ctx(e), o.system);
    mlxr_engine_close(e);
    return st;
  }
  const mlxr_tokenizer *tok = mlxr_engine_tokenizer(e);
  const int32_t n_vocab = mlxr_engine_hparams(e)->n_vocab;
  const int32_t n_ctx = mlxr_engine_n_ctx(e);
  int32_t *ids = NULL;
  size_t n_prompt = 0;
  float *logits = malloc((size_t)n_vocab * sizeof(float));
  mlxr_sampler *smp = mlxr_sampler_new(&o.sp, n_vocab);
  int status = 1;
  if (!logits || !smp) {
    fprintf(stderr, "mlxr run: out of memory\n");
    goto done;
  }
  if (prompt_ids(&o, tok, prompt, &ids, &n_prompt) != MLXR_OK) goto done;
  if ((int64_t)n_prompt >= n_ctx) {
    fprintf(stderr, "mlxr run: the prompt has %zu tokens; the context holds %d\n", n_prompt, (int)n_ctx);
    goto done;
  }
  for (size_t i = 0; i < n_prompt; i++) {
    if (ids[i] < 0 || ids[i] >= n_vocab) {
      fprintf(stderr, "mlxr run: token id %d is outside the vocabulary (%d)\n", (int)ids[i], (int)n_vocab);
      goto done;
    }
    mlxr_sampler_accept(smp, ids[i]);
  }

  int seq = mlxr_kv_seq_new(mlxr_engine_kv(e));
  const double t0 = mlxr_cli_now();
  if (mlxr_engine_eval(e, seq, ids, (int32_t)n_prompt, 0, false, logits, err, sizeof(err)) != MLXR_OK) {
    fprintf(stderr, "mlxr run: %s\n", err);
    goto done;
  }
  const double t1 = mlxr_cli_now();
  mlxr_detok detok;
  mlxr_detok_init(&detok, tok, false);
  char text[4096];
  int32_t n_gen = 0, pos = (int32_t)n_prompt;
  while (n_gen < o.n_predict && pos < n_ctx) {
    int32_t id = mlxr_sampler_sample(smp, logits);
    mlxr_sampler_accept(smp, id);
    n_gen++;
    if (!o.ignore_eos && tok && mlxr_tokenizer_is_eog(tok, id)) break;
    if (o.print_ids) {
      printf(n_gen > 1 ? " %d" : "%d", (int)id);
    } else {
      int w = mlxr_detok_push(&detok, id, text, sizeof(text));
      if (w > 0) fwrite(text, 1, (size_t)w, stdout);
    }
    fflush(stdout);
    if (n_gen == o.n_predict || pos + 1 >= n_ctx) break;
    if (mlxr_engine_eval(e, seq, &id, 1, pos, false, logits, err, sizeof(err)) != MLXR_OK) {
      fprintf(stderr, "\nmlxr run: %s\n", err);
      goto done;
    }
    pos++;
  }
  if (!o.print_ids) {
    int w = mlxr_detok_flush(&detok, text, sizeof(text));
    if (w > 0) fwrite(text, 1, (size_t)w, stdout);
  }
  printf("\n");
  const double t2 = mlxr_cli_now();
  fprintf(stderr, "mlxr: prompt %zu tokens in %.3f s (%.2f tok/s); generation %d tokens in %.3f s (%.2f tok/s)\n",
          n_prompt, t1 - t0, (double)n_prompt / (t1 - t0), (int)n_gen, t2 - t1,
          n_gen > 0 ? (double)n_gen / (t2 - t1) : 0.0);
  status = 0;
done:
  free(ids);
  free(logits);
  mlxr_sampler_free(smp);
  mlxr_engine_close(e);
  return status;
}
