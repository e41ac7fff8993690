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
 *
 * Programmatic dependent launch (PDL, sm_90 and newer). The launchers of the decode step's kernels
 * take `pdl`: true launches their kernels with cudaLaunchAttributeProgrammaticStreamSerialization,
 * so a kernel may start while the previous kernel on the stream is still finishing (its last
 * wave), instead of after its end and memory flush. Every such kernel calls mlxr_pdl_trigger()
 * first (its own successor may then be scheduled as soon as all of its CTAs run) and
 * mlxr_pdl_wait() before it reads or writes anything another kernel writes or reads: the wait
 * returns once the previous grid has completed with its memory visible. What a kernel may do
 * before the wait is read memory no kernel writes: the matvec kernels load their first weights
 * there, which hides the launch and ramp-up of each product behind the tail of the one before.
 * Launched without the attribute (pdl false, or a device older than sm_90, where both calls
 * compile to nothing) the kernels behave as ordinary stream-ordered launches. Captured in a
 * graph, the attribute becomes a programmatic edge between the two kernel nodes.
 */
#ifndef MLXR_KERNELS_CUDA_KERNELS_H
#define MLXR_KERNELS_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "core/common/dtype.h"
#include "core/kernels/backend.h"

/* ---- programmatic dependent launch (see the top of the file) ---- */

#ifdef __CUDACC__
/* Wait until the previous kernel on the stream has completed and its writes are visible (a no-op
 * when this kernel was launched without PDL, and before sm_90). */
__device__ __forceinline__ void mlxr_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* Let the next kernel on the stream be scheduled once every CTA of this one has called this (or
 * exited). It changes no ordering of memory: the next kernel still waits for this one's end in its
 * mlxr_pdl_wait(). */
__device__ __forceinline__ void mlxr_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

/* silu(g) * u, the one expression swiglu and the products that fold it in share (bit-identical
 * results either way). */
__device__ __forceinline__ float mlxr_silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when pdl; returns the
 * launch's error (and clears it from cudaGetLastError, as the <<<>>> launchers do). */
template <typename... Params, typename... Args>
static inline cudaError_t mlxr_cuda_launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                                           cudaStream_t stream, bool pdl, Args... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, args...);
  const cudaError_t last = cudaGetLastError();
  return e != cudaSuccess ? e : last;
}
#endif

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

/* The activations of a product: x itself, or, for the quantized weight types (the transform is
 * applied while quantizing), a function of it that the model would otherwise compute in a kernel
 * of its own and store:
 *   norm != NULL   rms_norm(x) * norm, eps as the rms_norm op (the layer's input norm)
 *   up != NULL     silu(x) * up (the feed-forward's SwiGLU, x being the gate)
 * (not both). */
typedef struct mlxr_cuda_mv_in {
  const float *x;    /* [n_rows][n_in] */
  const float *norm; /* [n_in] rms_norm weight, or NULL */
  float eps;
  const float *up;   /* [n_rows][n_in], or NULL */
} mlxr_cuda_mv_in;

/* Whether the matvec kernels can fold a transform (norm or up) into products of type t. */
bool mlxr_cuda_matvec_folds(mlxr_dtype t);

/* Several matrices of one type and one n_in against the same activations, in ONE launch (q/k/v,
 * gate/up of a decode step): for m < n_mats (1..MLXR_CUDA_MATVEC_MAX_MATS), ys[m][r][o] =
 * sum_k ws[m][o][k] * x[r][k] (+ biases[m][o] if biases && biases[m]) for o < n_outs[m], x being
 * the activations `in` describes; with accumulate, ys[m][r][o] += that instead of =. Same rows and
 * precision as mlxr_cuda_matvec; the activations are read / quantized once for all matrices.
 * scratch: matvec_scratch_bytes. pdl: see the top of the file. */
#define MLXR_CUDA_MATVEC_MAX_MATS 3
cudaError_t mlxr_cuda_matvec_multi(mlxr_dtype t, int n_mats, const void *const *ws, int64_t n_in,
                                   const int64_t *n_outs, const mlxr_cuda_mv_in *in, int64_t n_rows,
                                   const float *const *biases, float *const *ys, bool accumulate,
                                   void *scratch, cudaStream_t stream, bool pdl = false);

/* ---- elementwise.cu ---- */

cudaError_t mlxr_cuda_rms_norm(const float *x, const float *w, int64_t n_rows, int64_t dim,
                               float eps, float *y, cudaStream_t stream, bool pdl = false);
cudaError_t mlxr_cuda_rope_cache(const int32_t *pos, int64_t n_rows, const double *inv_freq,
                                 int half, float linear_scale, float *cos_tab, float *sin_tab,
                                 cudaStream_t stream, bool pdl = false);
cudaError_t mlxr_cuda_rope(float *x, int64_t n_rows, int n_heads, int head_dim, int rot_dim,
                           mlxr_rope_mode mode, const float *cos_tab, const float *sin_tab,
                           cudaStream_t stream);
cudaError_t mlxr_cuda_swiglu(const float *gate, const float *up, float *out, int64_t n,
                             cudaStream_t stream, bool pdl = false);
cudaError_t mlxr_cuda_add(float *y, const float *x, int64_t n, cudaStream_t stream, bool pdl = false);
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
                                    void *v_pool, mlxr_dtype kv_type, cudaStream_t stream,
                                    bool pdl = false);
cudaError_t mlxr_cuda_kv_store(const float *k, const float *v, int64_t n_rows, int64_t dim_k,
                               int64_t dim_v, const int64_t *slots, void *k_pool, void *v_pool,
                               mlxr_dtype kv_type, cudaStream_t stream);
/* dst[i] = (out_type) x[i], out_type F16 or BF16 (round to nearest even) */
cudaError_t mlxr_cuda_convert_f32(const float *x, int64_t n, mlxr_dtype out_type, void *dst,
                                  cudaStream_t stream);

/* ---- attention.cu ---- */

/* Scratch bytes attention needs for up to n_rows rows (split-K partial results, ticket counters).
 * The scratch must be zero-filled when first handed to mlxr_cuda_attention (the counters; every
 * launch leaves them zero again). */
size_t mlxr_cuda_attention_scratch_bytes(int64_t n_rows, int n_head, int head_dim_v);
/* Paged attention as backend.h's mlxr_attn_args says. graph_mode: the launch configuration may
 * depend only on n_rows and the shapes (not on max_ctx or the host-side batch structure), because
 * the launch is captured once and replayed with other contexts. n_sm: multiprocessors. */
cudaError_t mlxr_cuda_attention(const mlxr_attn_args *a, bool graph_mode, int n_sm, void *scratch,
                                cudaStream_t stream, bool pdl = false, bool split_merge = false);
/* split_merge: decode splits merged by their last CTA instead of a combine kernel (one launch
 * fewer per layer). Written 2026-12-07 but not yet run on a GPU: off unless MLXR_CUDA_SPLIT_MERGE=1
 * (tests/gpu/run.sh runs the op parity both ways); make it the default once that passes. */

/* ---- sample.cu ---- */

/* ids[r] = index of the first largest value of row r of x [n_rows][n_cols] (NaN never wins; 0 if
 * nothing beats -inf): greedy sampling on the device. */
cudaError_t mlxr_cuda_argmax_rows(const float *x, int64_t n_rows, int64_t n_cols, int32_t *ids,
                                  cudaStream_t stream);

#endif
