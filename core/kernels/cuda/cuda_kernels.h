/*
 * cuda_kernels.h: the kernels of the CUDA backend, as host-callable launchers. Internal to
 * core/kernels/cuda/ (included by .cu files only): cuda_backend.cu implements the op table of
 * core/kernels/backend.h on top of these; each family lives in its own file:
 *
 *   weights.cu      device weight layouts: conversion from GGUF blocks at upload, get_rows,
 *                   dequantization of row ranges to f16/bf16 (for cuBLAS prompt products)
 *   matvec.cu       weight x activation products for a few rows (decode): every stored type
 *   elementwise.cu  rms_norm, rope tables, rope, swiglu, add, kv_store, f32 -> f16/bf16
 *   attention.cu    paged attention: split-K decode kernel and tiled prompt kernel
 *   sample.cu       greedy sampling (argmax of logits rows) on the device
 *
 * Conventions: every launcher enqueues on `stream` and returns cudaGetLastError() of its launches
 * (no synchronization, no allocation: scratch comes from the caller), so it is safe inside CUDA
 * graph capture. Pointers are device memory. Activations are float32, row-major.
 */
#ifndef MLXR_KERNELS_CUDA_KERNELS_H
#define MLXR_KERNELS_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common/dtype.h"
#include "core/kernels/backend.h"

/* ---- weights.cu ---- */

/* Types whose matrices the CUDA backend multiplies (matvec + dequant) and reads rows of. */
bool mlxr_cuda_weight_type_supported(mlxr_dtype t);
/* Bytes of the device layout of an [n_out][n_in] matrix of type t (may differ from GGUF's: e.g.
 * quants and scales split for aligned 16-byte loads). */
size_t mlxr_cuda_weight_bytes(mlxr_dtype t, int64_t n_in, int64_t n_out);
/* Rows [row0, row0 + n) of the matrix, in GGUF's layout at `raw` (device memory, row_bytes apart),
 * written into the device layout at dst (the whole matrix's buffer of weight_bytes). Called for
 * consecutive chunks of rows while uploading. */
cudaError_t mlxr_cuda_weight_convert(mlxr_dtype t, const void *raw, size_t row_bytes, int64_t n_in,
                                     int64_t n_out, int64_t row0, int64_t n, void *dst,
                                     cudaStream_t stream);
/* out[r][:] = row ids[r] of the matrix as float32, r < n. */
cudaError_t mlxr_cuda_get_rows(mlxr_dtype t, const void *w, int64_t n_in, int64_t n_out,
                               const int32_t *ids, int64_t n, float *out, cudaStream_t stream);
/* Rows [row0, row0 + n) dequantized into dst [n][n_in] of out_type (F16, or BF16; F32 for F32
 * weights is not needed: cuBLAS reads them directly). */
cudaError_t mlxr_cuda_dequant_rows(mlxr_dtype t, const void *w, int64_t n_in, int64_t n_out,
                                   int64_t row0, int64_t n, mlxr_dtype out_type, void *dst,
                                   cudaStream_t stream);

/* ---- matvec.cu ---- */

/* Most activation rows one matvec call takes. */
#define MLXR_CUDA_MATVEC_MAX_ROWS 8
/* Scratch bytes matvec needs for n_rows activation rows of n_in (e.g. int8-quantized copies). */
size_t mlxr_cuda_matvec_scratch_bytes(mlxr_dtype t, int64_t n_in, int64_t n_rows);
/* y[r][o] = sum_k W[o][k] * x[r][k] (+ bias[o] if bias) for r < n_rows (1..MAX_ROWS), o < n_out.
 * w in the device layout; x [n_rows][n_in] f32; y [n_rows][n_out] f32; bias f32 [n_out] or NULL.
 * Precision: the same as the CPU backend's (activations rounded to Q8 for the quantized types
 * whose CPU dot uses Q8_0/Q8_K activations is fine; float accumulation). */
cudaError_t mlxr_cuda_matvec(mlxr_dtype t, const void *w, int64_t n_in, int64_t n_out,
                             const float *x, int64_t n_rows, const float *bias, float *y,
                             void *scratch, cudaStream_t stream);

/* Several matrices of one type and one n_in against the same activations, in ONE launch (q/k/v,
 * gate/up of a decode step): for m < n_mats (1..MLXR_CUDA_MATVEC_MAX_MATS), ys[m][r][o] =
 * sum_k ws[m][o][k] * x[r][k] (+ biases[m][o] if biases && biases[m]) for o < n_outs[m]; with
 * accumulate, ys[m][r][o] += that instead of =. Same rows and precision as mlxr_cuda_matvec; the
 * activations are read / quantized once for all matrices. scratch: matvec_scratch_bytes. */
#define MLXR_CUDA_MATVEC_MAX_MATS 3
cudaError_t mlxr_cuda_matvec_multi(mlxr_dtype t, int n_mats, const void *const *ws, int64_t n_in,
                                   const int64_t *n_outs, const float *x, int64_t n_rows,
                                   const float *const *biases, float *const *ys, bool accumulate,
                                   void *scratch, cudaStream_t stream);

/* ---- elementwise.cu ---- */

cudaError_t mlxr_cuda_rms_norm(const float *x, const float *w, int64_t n_rows, int64_t dim,
                               float eps, float *y, cudaStream_t stream);
cudaError_t mlxr_cuda_rope_cache(const int32_t *pos, int64_t n_rows, const double *inv_freq,
                                 int half, float linear_scale, float *cos_tab, float *sin_tab,
                                 cudaStream_t stream);
cudaError_t mlxr_cuda_rope(float *x, int64_t n_rows, int n_heads, int head_dim, int rot_dim,
                           mlxr_rope_mode mode, const float *cos_tab, const float *sin_tab,
                           cudaStream_t stream);
cudaError_t mlxr_cuda_swiglu(const float *gate, const float *up, float *out, int64_t n,
                             cudaStream_t stream);
cudaError_t mlxr_cuda_add(float *y, const float *x, int64_t n, cudaStream_t stream);
/* y[r][c] += bias[c] for r < n_rows, c < n_cols (the bias of a cuBLAS product) */
cudaError_t mlxr_cuda_add_bias(float *y, const float *bias, int64_t n_rows, int64_t n_cols,
                               cudaStream_t stream);
/* rope (as mlxr_cuda_rope) on q [n_rows][n_head][head_dim] in place and on k [n_rows][n_head_kv]
 * [head_dim] in place, then k (rotated) and v stored at slots as mlxr_cuda_kv_store does: the three
 * ops of a decode step in one launch. */
cudaError_t mlxr_cuda_rope_kv_store(float *q, float *k, const float *v, int64_t n_rows, int n_head,
                                    int n_head_kv, int head_dim, int head_dim_v, int rot_dim,
                                    mlxr_rope_mode mode, const float *cos_tab,
                                    const float *sin_tab, const int64_t *slots, void *k_pool,
                                    void *v_pool, mlxr_dtype kv_type, cudaStream_t stream);
cudaError_t mlxr_cuda_kv_store(const float *k, const float *v, int64_t n_rows, int64_t dim_k,
                               int64_t dim_v, const int64_t *slots, void *k_pool, void *v_pool,
                               mlxr_dtype kv_type, cudaStream_t stream);
/* dst[i] = (out_type) x[i], out_type F16 or BF16 (round to nearest even) */
cudaError_t mlxr_cuda_convert_f32(const float *x, int64_t n, mlxr_dtype out_type, void *dst,
                                  cudaStream_t stream);

/* ---- attention.cu ---- */

/* Scratch bytes attention needs for up to n_rows rows (split-K partial results). */
size_t mlxr_cuda_attention_scratch_bytes(int64_t n_rows, int n_head, int head_dim_v);
/* Paged attention as backend.h's mlxr_attn_args says. graph_mode: the launch configuration may
 * depend only on n_rows and the shapes (not on max_ctx or the host-side batch structure), because
 * the launch is captured once and replayed with other contexts. n_sm: multiprocessors. */
cudaError_t mlxr_cuda_attention(const mlxr_attn_args *a, bool graph_mode, int n_sm, void *scratch,
                                cudaStream_t stream);

/* ---- sample.cu ---- */

/* ids[r] = index of the first largest value of row r of x [n_rows][n_cols] (NaN never wins; 0 if
 * nothing beats -inf): greedy sampling on the device. */
cudaError_t mlxr_cuda_argmax_rows(const float *x, int64_t n_rows, int64_t n_cols, int32_t *ids,
                                  cudaStream_t stream);

#endif
