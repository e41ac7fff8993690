/*
 * cmd_tokenize.c: `mlxr tokenize [--no-bos] [--no-special] MODEL [TEXT]` prints the ids of TEXT (or
 * of stdin's exact bytes) space-separated on one line; `mlxr detokenize MODEL IDS...` prints the
 * decoded text. Only the model file's tokenizer metadata is read; no weights are touched, so a
 * --vocab-only GGUF works too.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/common/status.h"
#include "core/runtime/tokenizer/tokenizer.h"

static int open_tokenizer(const char *arg, mlxr_tokenizer **tok, const char *cmd) {
  char err[512] = "";
  mlxr_cli_model model;
  int rc = mlxr_cli_model_resolve(arg, &model, err, sizeof(err));
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr %s: %s\n", cmd, err);
    return rc;
  }
  mlxr_gguf *g = NULL;
  rc = mlxr_gguf_open(model.path, &g, err, sizeof(err));
  mlxr_cli_model_release(&model);
  if (rc == MLXR_OK) {
    rc = mlxr_tokenizer_load_gguf(g, tok, err, sizeof(err));
    mlxr_gguf_close(g);
  }
  if (rc != MLXR_OK) fprintf(stderr, "mlxr %s: %s\n", cmd, err);
  return rc;
}

int mlxr_cmd_tokenize(int argc, char **argv) {
  static const struct option opts[] = {{"no-bos", no_argument, NULL, 'b'},
                                       {"no-special", no_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  mlxr_tokenize_params tp = {.add_special = true, .parse_special = true};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': tp.add_special = false; break;
    case 's': tp.parse_special = false; break;
    case 'h': printf("usage: mlxr tokenize [--no-bos] [--no-special] MODEL [TEXT]\n"); return 0;
    default: fprintf(stderr, "usage: mlxr tokenize [--no-bos] [--no-special] MODEL [TEXT]\n"); return 2;
    }
  }
  if (optind != argc - 1 && optind != argc - 2) {
    fprintf(stderr, "usage: mlxr tokenize [--no-bos] [--no-special] MODEL [TEXT]\n");
    return 2;
  }
  mlxr_tokenizer *tok = NULL;
  if (open_tokenizer(argv[optind], &tok, "tokenize") != MLXR_OK) return 1;
  char *stdin_text = NULL;
  const char *text;
  size_t len;
  if (optind == argc - 2) {
    text = argv[optind + 1];
    len = strlen(text);
  } else {
    stdin_text = mlxr_cli_read_stdin(&len);
    if (!stdin_text) {
      fprintf(stderr, "mlxr tokenize: cannot read stdin\n");
      mlxr_tokenizer_free(tok);
      return 1;
    }
    text = stdin_text;
  }
  int32_t *ids = NULL;
  size_t n = 0;
  int rc = mlxr_tokenizer_encode(tok, text, len, tp, &ids, &n);
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr tokenize: %s\n", mlxr_status_str(rc));
  } else {
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    printf("\n");
  }
  free(ids);
  free(stdin_text);
  mlxr_tokenizer_free(tok);
  return rc == MLXR_OK ? 0 : 1;
}

int mlxr_cmd_detokenize(int argc, char **argv) {
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    printf("usage: mlxr detokenize MODEL IDS...\n");
    return 0;
  }
  if (argc < 2) {
    fprintf(stderr, "usage: mlxr detokenize MODEL IDS...\n");
    return 2;
  }
  /* ids may come as separate arguments or comma/space lists */
  size_t n = 0;
  int32_t *ids = malloc(sizeof(int32_t));
  for (int i = 2; i < argc && ids; i++) {
    int32_t *part = NULL;
    size_t np = 0;
    if (!mlxr_cli_parse_ids(argv[i], &part, &np)) {
      fprintf(stderr, "mlxr detokenize: bad id list '%s'\n", argv[i]);
      free(ids);
      return 2;
    }
    int32_t *grown = realloc(ids, (n + np + 1) * sizeof(int32_t));
    if (grown) {
      memcpy(grown + n, part, np * sizeof(int32_t));
      n += np;
    }
    free(part);
    ids = grown;
  }
  if (!ids) {
    fprintf(stderr, "mlxr detokenize: out of memory\n");
    return 1;
  }
  mlxr_tokenizer *tok = NULL;
  if (open_tokenizer(argv[1], &tok, "detokenize") != MLXR_OK) {
    free(ids);
    return 1;
  }
  char *text = NULL;
  size_t len = 0;
  int rc = mlxr_tokenizer_decode(tok, ids, n, true, &text, &len);
  if (rc != MLXR_OK) {
    fprintf(stderr, "mlxr detokenize: %s\n", mlxr_status_str(rc));
  } else {
    fwrite(text, 1, len, stdout);
  }
  free(text);
  free(ids);
  mlxr_tokenizer_free(tok);
  return rc == MLXR_OK ? 0 : 1;
}
