/*
 * cpu_backend.h: the CPU implementation of the op table in core/kernels/backend.h: SIMD kernels
 * chosen by runtime CPU-feature dispatch (core/kernels/types.h) and a thread pool for the heavy ops.
 */
#ifndef MLXR_KERNELS_CPU_BACKEND_H
#define MLXR_KERNELS_CPU_BACKEND_H

#include "core/kernels/backend.h"
#include "core/kernels/types.h"

#include <stdbool.h>

typedef struct mlxr_cpu_backend_params {
  int n_threads;          /* <= 0: number of online CPUs */
  int simd_level;         /* -1: best the CPU has; else an mlxr_simd_level (tests pin scalar) */
  bool no_repack;         /* true: never repack weights at load time (see cpu_backend.c);
                           * `mlxr bench --no-repack` sets it */
} mlxr_cpu_backend_params;

mlxr_cpu_backend_params mlxr_cpu_backend_default_params(void);
/* NULL on failure (out of memory, thread creation). */
mlxr_backend *mlxr_cpu_backend_new(mlxr_cpu_backend_params params);
/* The instruction set its kernels use, in MLXR_CPU_ISA's names (types.h: "scalar", "avx2",
 * "avx512", "avx512_vnni", "amx"; "neon" on Arm): what the CPU has, within MLXR_CPU_ISA's cap. */
const char *mlxr_cpu_backend_isa(const mlxr_backend *be);
/* Threads its heavy ops run on. */
int mlxr_cpu_backend_threads(const mlxr_backend *be);

#endif
