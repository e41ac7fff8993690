/*
 * cmd_devices.c: `mlxr devices`: the devices this build can run models on, one line each, as
 * llama.cpp's --list-devices does: the CPU with its thread count and the instruction set its kernels
 * use (MLXR_CPU_ISA caps it, core/kernels/types.h), then every CUDA device the driver reports when
 * the build has the CUDA backend. `--json` prints one JSON array instead. Opens the CPU backend
 * to learn what it dispatches to (and to refuse a bad MLXR_CPU_ISA), then frees it.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/common/status.h"
#include "core/kernels/backend_registry.h"

#define MAX_CUDA_DEVICES 64

static void usage(FILE *f) {
  fprintf(f, "usage: mlxr devices [--json]\n"
             "  Lists the devices models can run on: the CPU (threads, SIMD kernels) and CUDA GPUs.\n"
             "  MLXR_CPU_ISA=scalar|avx2|avx512|avx512_vnni|amx caps the CPU kernels (for testing).\n");
}

int mlxr_cmd_devices(int argc, char **argv) {
  static const struct option longopts[] = {{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
  bool json = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    if (c == 'j') json = true;
    else if (c == 'h') {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (optind != argc) {
    usage(stderr);
    return 2;
  }
  const mlxr_backend_options opts = mlxr_backend_default_options();
  const mlxr_device_spec cpu = {.kind = MLXR_DEVICE_CPU};
  mlxr_backend *be = NULL;
  char err[256] = "";
  if (mlxr_backend_open(&cpu, &opts, &be, err, sizeof err) != MLXR_OK) {
    fprintf(stderr, "mlxr devices: %s\n", err);
    return 1;
  }
  const int threads = mlxr_cpu_backend_threads(be);
  char isa[32];
  snprintf(isa, sizeof isa, "%s", mlxr_cpu_backend_isa(be));
  mlxr_backend_free(be);
  if (json) printf("[{\"device\": \"cpu\", \"threads\": %d, \"isa\": \"%s\"}", threads, isa);
  else printf("cpu      %d threads, %s kernels\n", threads, isa);
  for (int i = 0; i < MAX_CUDA_DEVICES; i++) {
    const mlxr_device_spec gpu = {.kind = MLXR_DEVICE_CUDA, .index = i};
    if (!mlxr_device_has_gpu(&gpu)) break;
    char what[160] = "";
#ifdef MLXR_HAVE_CUDA
    mlxr_cuda_device_describe(i, what, sizeof what);
#endif
    if (json) {
      printf(", {\"device\": \"cuda:%d\", \"description\": \"", i);
      for (const char *p = what; *p; p++) {
        if (*p == '"' || *p == '\\') putchar('\\');
        if ((unsigned char)*p >= 0x20) putchar(*p);
      }
      printf("\"}");
    } else {
      printf("cuda:%-3d %s\n", i, what);
    }
  }
  if (json) printf("]\n");
  return 0;
}
