/*
 * backend_registry.c: see backend_registry.h. The table of compiled backends is the #ifdef'd list
 * in mlxr_backend_candidates; everything else is parsing and messages.
 */
#include "core/kernels/backend_registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"

mlxr_backend_options mlxr_backend_default_options(void) {
  mlxr_backend_options o = {.cpu = mlxr_cpu_backend_default_params(),
                            .cuda = mlxr_cuda_backend_default_params()};
  return o;
}

int mlxr_device_parse(const char *text, mlxr_device_spec *out, char *err, size_t err_len) {
  *out = (mlxr_device_spec){.kind = MLXR_DEVICE_AUTO, .index = 0};
  if (!text || !*text || strcmp(text, "auto") == 0) return MLXR_OK;
  if (strcmp(text, "cpu") == 0) {
    out->kind = MLXR_DEVICE_CPU;
    return MLXR_OK;
  }
  const char *rest = NULL;
  if (strncmp(text, "cuda", 4) == 0) rest = text + 4;
  else if (strncmp(text, "gpu", 3) == 0) rest = text + 3;
  if (rest && *rest == '\0') {
    out->kind = MLXR_DEVICE_CUDA;
    return MLXR_OK;
  }
  if (rest && rest[0] == ':' && rest[1] >= '0' && rest[1] <= '9') {
    char *end = NULL;
    const long idx = strtol(rest + 1, &end, 10);
    if (*end == '\0' && idx >= 0 && idx < 1024) {
      out->kind = MLXR_DEVICE_CUDA;
      out->index = (int)idx;
      return MLXR_OK;
    }
  }
  return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                   "unknown device '%s' (use auto, cpu, cuda or cuda:N)", text);
}

const char *mlxr_device_format(const mlxr_device_spec *spec, char *buf, size_t len) {
  switch (spec->kind) {
  case MLXR_DEVICE_CPU: snprintf(buf, len, "cpu"); break;
  case MLXR_DEVICE_CUDA: snprintf(buf, len, "cuda:%d", spec->index); break;
  default: snprintf(buf, len, "auto"); break;
  }
  return buf;
}

bool mlxr_device_compiled(mlxr_device_kind kind) {
#ifdef MLXR_HAVE_CUDA
  if (kind == MLXR_DEVICE_CUDA) return true;
#endif
  return kind == MLXR_DEVICE_AUTO || kind == MLXR_DEVICE_CPU;
}

bool mlxr_device_has_gpu(const mlxr_device_spec *spec) {
  if (spec->kind == MLXR_DEVICE_CPU) return false;
#ifdef MLXR_HAVE_CUDA
  char what[128];
  return mlxr_cuda_device_describe(spec->index, what, sizeof what);
#else
  return false;
#endif
}

int mlxr_backend_candidates(const mlxr_device_spec *spec, mlxr_device_spec *out, int cap) {
  int n = 0;
  if (cap <= 0) return 0;
  if (spec->kind == MLXR_DEVICE_CUDA) {
    out[n++] = *spec; /* even when not compiled in: opening it says so */
  } else if (spec->kind == MLXR_DEVICE_AUTO && mlxr_device_compiled(MLXR_DEVICE_CUDA)) {
    out[n++] = (mlxr_device_spec){.kind = MLXR_DEVICE_CUDA, .index = spec->index};
  }
  if (n < cap) out[n++] = (mlxr_device_spec){.kind = MLXR_DEVICE_CPU, .index = 0};
  return n;
}

int mlxr_backend_open(const mlxr_device_spec *spec, const mlxr_backend_options *opts,
                      mlxr_backend **out, char *err, size_t err_len) {
  *out = NULL;
  switch (spec->kind) {
  case MLXR_DEVICE_CPU: {
    const char *bad_isa = NULL;
    (void)mlxr_cpu_isa_cap(&bad_isa);
    if (bad_isa)
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                       "MLXR_CPU_ISA='%.40s' is not one of scalar, avx2, avx512, avx512_vnni, amx", bad_isa);
    *out = mlxr_cpu_backend_new(opts->cpu);
    if (!*out) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "cannot start the CPU backend");
    return MLXR_OK;
  }
  case MLXR_DEVICE_CUDA: {
#ifdef MLXR_HAVE_CUDA
    mlxr_cuda_backend_params p = opts->cuda;
    p.device = spec->index;
    return mlxr_cuda_backend_new(&p, out, err, err_len);
#else
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "this build of MLXR has no CUDA backend (rebuild with nvcc installed, MLXR_CUDA=ON)");
#endif
  }
  case MLXR_DEVICE_AUTO: break;
  }
  return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "no concrete device given");
}
