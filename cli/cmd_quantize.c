/*
 * cmd_quantize.c: `mlxr quantize IN.gguf OUT.gguf TYPE [-t THREADS]`: requantize the weights of a
 * GGUF (tools/quantize.h). TYPE is a plain type (q8_0, q4_0, q4_K, ...) or a llama.cpp mix
 * (q4_K_M, ...). Progress on stderr when it is a terminal, then a one-line summary.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/common/status.h"
#include "tools/quantize.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: mlxr quantize IN.gguf OUT.gguf TYPE [-t THREADS]\n"
          "  TYPE: %s\n"
          "  -t, --threads N   worker threads (default: all CPUs)\n",
          mlxr_quantize_type_names());
}

int mlxr_cmd_quantize(int argc, char **argv) {
  static const struct option opts[] = {{"threads", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  mlxr_quantize_params p;
  memset(&p, 0, sizeof p);
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
    switch (c) {
    case 't': {
      char *end = NULL;
      long v = strtol(optarg, &end, 10);
      if (!end || *end != '\0' || v < 1 || v > 1024) {
        fprintf(stderr, "mlxr quantize: -t needs a thread count from 1 to 1024\n");
        return 2;
      }
      p.n_threads = (int)v;
      break;
    }
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind != argc - 3) {
    usage(stderr);
    return 2;
  }
  p.in_path = argv[optind];
  p.out_path = argv[optind + 1];
  if (!mlxr_quantize_parse_type(argv[optind + 2], &p.scheme)) {
    fprintf(stderr, "mlxr quantize: unknown type '%s'\n", argv[optind + 2]);
    usage(stderr);
    return 2;
  }
  if (strcmp(p.in_path, p.out_path) == 0) {
    fprintf(stderr, "mlxr quantize: output must differ from input\n");
    return 2;
  }
  if (isatty(STDERR_FILENO)) {
    p.progress = mlxr_tool_progress_stderr;
    p.progress_user = (void *)"quantize";
  }
  char err[1024] = "";
  mlxr_quantize_stats st;
  int rc = mlxr_quantize_gguf(&p, &st, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "mlxr quantize: %s\n", err[0] ? err : mlxr_status_str(rc));
    return 1;
  }
  fprintf(stderr,
          "mlxr quantize: wrote %s (%s, %lld tensors, %lld requantized, %lld by shape fallback, "
          "%.1f -> %.1f MiB)\n",
          p.out_path, p.scheme.name, (long long)st.n_tensors, (long long)st.n_requantized,
          (long long)st.n_fallback, (double)st.in_bytes / 1048576.0,
          (double)st.out_bytes / 1048576.0);
  return 0;
}
