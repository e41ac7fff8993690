/*
 * cuda_blas.h: the matrix products the CUDA backend leaves to cuBLAS (prompts and large batches:
 * y = x W^T with many rows), through a cuBLAS loaded at run time with dlopen. Loading at run time
 * keeps cuBLAS out of the binary's link: a machine without it (or without a GPU) still starts MLXR
 * and runs on the CPU, with a message saying cuBLAS was not found. Internal to
 * core/kernels/cuda/. One mlxr_cublas per backend (its stream and workspace); one thread at a time.
 */
#ifndef MLXR_KERNELS_CUDA_BLAS_H
#define MLXR_KERNELS_CUDA_BLAS_H

#include <cuda_runtime.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common/dtype.h"

typedef struct mlxr_cublas mlxr_cublas;

/* Load cuBLAS and make a handle on stream with a fixed workspace (so products can be captured in
 * CUDA graphs). MLXR_ERR_UNSUPPORTED with a message when the library cannot be loaded. */
int mlxr_cublas_open(cudaStream_t stream, void *workspace, size_t workspace_bytes, mlxr_cublas **out,
                     char *err, size_t err_len);
void mlxr_cublas_close(mlxr_cublas *b);

/* y[r][o] (row stride ldy) = (y[r][o] if accumulate, else 0) + sum_k w[o][k] * x[r][k] for r < n_rows, o < n_out: w and x row-major
 * with rows of n_in elements of `type` (F16, BF16 or F32; both the same), y float32, fp32
 * accumulation (F32 inputs: true fp32, no TF32). Enqueued on the handle's stream. Returns
 * cudaSuccess or an error (cuBLAS failures map to cudaErrorUnknown; *what says which). */
cudaError_t mlxr_cublas_gemm(mlxr_cublas *b, mlxr_dtype type, const void *w, int64_t n_out,
                             int64_t n_in, const void *x, int64_t n_rows, float *y, int64_t ldy,
                             bool accumulate, const char **what);

#endif
