/*
 * sample.cu: sampling where the logits are. argmax_rows finds the greedy token of each logits row
 * on the GPU, so that a decode step of many greedy sequences copies back a few ids instead of
 * n_rows x n_vocab floats (33 MB per step for 64 sequences of a 128k vocabulary).
 *
 * One 1024-thread block per row: each thread walks its strided share of the row with 4-wide loads
 * where the row is 16-byte aligned, keeping the first largest value it saw (strict >, so NaN never
 * wins); a warp-shuffle then shared-memory tree keeps the larger value, and on equal values the
 * lower index, which is the row's first largest value. A row of nothing above -inf gives 0.
 */
#include <cuda_runtime.h>
#include <math.h>

#include "core/kernels/cuda/cuda_kernels.h"

namespace {

constexpr int kThreads = 1024;

struct best_t {
  float v;
  int64_t i; /* -1: nothing seen */
};

__device__ __forceinline__ best_t better(best_t a, best_t b) {
  if (b.i < 0) return a;
  if (a.i < 0) return b;
  if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
  return a;
}

__device__ __forceinline__ void consider(best_t *b, float v, int64_t i) {
  if (v > b->v || (b->i < 0 && v > -INFINITY)) {
    b->v = v;
    b->i = i;
  }
}

__global__ void __launch_bounds__(kThreads) argmax_rows_kernel(const float *x, int64_t n_cols, int32_t *ids) {
  const int64_t row = blockIdx.x;
  const float *xr = x + row * n_cols;
  best_t b = {-INFINITY, -1};
  const bool vec = ((uintptr_t)xr & 15) == 0;
  const int64_t n4 = vec ? n_cols / 4 : 0;
  const float4 *x4 = reinterpret_cast<const float4 *>(xr);
  for (int64_t k = threadIdx.x; k < n4; k += kThreads) {
    const float4 v = x4[k];
    consider(&b, v.x, 4 * k);
    consider(&b, v.y, 4 * k + 1);
    consider(&b, v.z, 4 * k + 2);
    consider(&b, v.w, 4 * k + 3);
  }
  for (int64_t k = 4 * n4 + threadIdx.x; k < n_cols; k += kThreads) consider(&b, xr[k], k);
  for (int off = 16; off > 0; off >>= 1) {
    best_t o;
    o.v = __shfl_xor_sync(0xffffffffu, b.v, off);
    o.i = __shfl_xor_sync(0xffffffffu, b.i, off);
    b = better(b, o);
  }
  __shared__ float sv[kThreads / 32];
  __shared__ int64_t si[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sv[warp] = b.v, si[warp] = b.i;
  __syncthreads();
  if (warp == 0) {
    b = lane < kThreads / 32 ? best_t{sv[lane], si[lane]} : best_t{-INFINITY, -1};
    for (int off = 16; off > 0; off >>= 1) {
      best_t o;
      o.v = __shfl_xor_sync(0xffffffffu, b.v, off);
      o.i = __shfl_xor_sync(0xffffffffu, b.i, off);
      b = better(b, o);
    }
    if (lane == 0) ids[row] = b.i >= 0 ? (int32_t)b.i : 0;
  }
}

} // namespace

cudaError_t mlxr_cuda_argmax_rows(const float *x, int64_t n_rows, int64_t n_cols, int32_t *ids,
                                  cudaStream_t stream) {
  if (n_rows <= 0 || n_cols <= 0 || n_cols > INT32_MAX || n_rows > INT32_MAX) return cudaErrorInvalidValue;
  argmax_rows_kernel<<<(unsigned)n_rows, kThreads, 0, stream>>>(x, n_cols, ids);
  return cudaGetLastError();
}
