/*
 * backend_registry.h: the backends this build has, chosen in one place. A device is named as users
 * write it (`--device auto|cpu|cuda|cuda:N`, server.yaml `device:`); mlxr_backend_candidates lists
 * what to try for it, best first (auto: every compiled GPU backend, then the CPU; cuda: that GPU,
 * then the CPU as the fallback), and mlxr_backend_open opens one. The engine walks the list and
 * keeps the first backend that opens and can run the model (supports_op, memory), reporting why
 * the others were passed over.
 *
 * Per-backend settings live here, in mlxr_backend_options, not in the engine's generic parameters.
 */
#ifndef MLXR_KERNELS_BACKEND_REGISTRY_H
#define MLXR_KERNELS_BACKEND_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/kernels/backend.h"
#include "core/kernels/cpu/cpu_backend.h"
#include "core/kernels/cuda/cuda_backend.h"

typedef enum mlxr_device_kind {
  MLXR_DEVICE_AUTO = 0, /* the best compiled backend that opens */
  MLXR_DEVICE_CPU,
  MLXR_DEVICE_CUDA,
} mlxr_device_kind;

typedef struct mlxr_device_spec {
  mlxr_device_kind kind;
  int index; /* GPU index (cuda:N) */
} mlxr_device_spec;

typedef struct mlxr_backend_options {
  mlxr_cpu_backend_params cpu;   /* threads, SIMD level, load-time repacking */
  mlxr_cuda_backend_params cuda; /* graphs; the device index comes from the spec */
} mlxr_backend_options;

mlxr_backend_options mlxr_backend_default_options(void);

/* Parse "auto", "cpu", "cuda", "cuda:N" (also "gpu" for cuda); MLXR_ERR_INVALID with a message
 * naming the accepted forms otherwise. NULL or "" is auto. */
int mlxr_device_parse(const char *text, mlxr_device_spec *out, char *err, size_t err_len);
/* "cpu", "cuda:0", "auto" into buf; returns buf. */
const char *mlxr_device_format(const mlxr_device_spec *spec, char *buf, size_t len);
/* true if this build has a backend for kind (AUTO and CPU always). */
bool mlxr_device_compiled(mlxr_device_kind kind);

/* true if spec (AUTO or CUDA) would run on a GPU that answers now (for choosing defaults such as
 * how many sequences a server runs at once; the engine still falls back if the model won't fit). */
bool mlxr_device_has_gpu(const mlxr_device_spec *spec);

/* The concrete backends to try for spec, best first (at most cap); returns how many. */
int mlxr_backend_candidates(const mlxr_device_spec *spec, mlxr_device_spec *out, int cap);
/* Open the backend of a concrete spec (not AUTO). On failure err says why, e.g. "this build has no
 * CUDA backend" or "no CUDA device: CUDA driver version is insufficient ...". */
int mlxr_backend_open(const mlxr_device_spec *spec, const mlxr_backend_options *opts,
                      mlxr_backend **out, char *err, size_t err_len);

#endif
