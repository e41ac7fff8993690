/*
 * cuda_backend.h: the CUDA implementation of the op table in core/kernels/backend.h (NVIDIA GPUs,
 * sm_80 and newer). Built when CMake finds nvcc (MLXR_CUDA=AUTO|ON); MLXR_HAVE_CUDA is then
 * defined for every C file. Opening fails softly, with a message saying why, when there is no
 * driver, no device or not enough device memory: the engine then falls back to the CPU.
 *
 * What it does, in short (cuda_backend.cu has the details): one stream per backend; weights
 * uploaded once at load into the kernels' device layouts; decode products by the matvec kernels,
 * prompt products by cuBLAS (loaded with dlopen, so a machine without it still runs on the CPU)
 * on weights dequantized tile by tile; decode steps captured as CUDA graphs per row count.
 */
#ifndef MLXR_KERNELS_CUDA_BACKEND_H
#define MLXR_KERNELS_CUDA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kernels/backend.h"

typedef struct mlxr_cuda_backend_params {
  int device;             /* CUDA device index */
  bool no_graphs;         /* never capture forwards as CUDA graphs (A/B timing, debugging) */
  bool no_pdl;            /* no programmatic dependent launch (A/B timing, debugging) */
  bool no_fold;           /* no norm / SwiGLU folded into products (A/B timing, debugging) */
  int32_t max_graph_rows; /* largest decode batch captured as a graph; <= 0: 256 */
  size_t mem_limit;       /* > 0: device memory this backend may take in all (weights, KV,
                             scratch); beyond it allocations fail as out of memory (leave room for
                             other programs; --gpu-memory-mib) */
} mlxr_cuda_backend_params;

static inline mlxr_cuda_backend_params mlxr_cuda_backend_default_params(void) {
  mlxr_cuda_backend_params p = {.device = 0, .no_graphs = false, .no_pdl = false, .no_fold = false,
                                .max_graph_rows = 0, .mem_limit = 0};
  return p;
}

#ifdef MLXR_HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif
/* Open device params->device. On failure *out is NULL and err says why (no driver, no such
 * device, cuBLAS not found, ...); the status is MLXR_ERR_UNSUPPORTED for "no usable GPU". */
int mlxr_cuda_backend_new(const mlxr_cuda_backend_params *params, mlxr_backend **out, char *err,
                          size_t err_len);
/* Name and memory of device `index` for messages ("NVIDIA H100 80GB HBM3, 79.1 GiB"); false if
 * there is no such device. */
bool mlxr_cuda_device_describe(int index, char *buf, size_t len);
#ifdef __cplusplus
}
#endif
#endif

#endif
