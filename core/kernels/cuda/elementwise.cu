/*
 * elementwise.cu: the light ops of the CUDA backend (rms_norm, rope tables, rope, swiglu, add,
 * add_bias, kv_store, rope_kv_store, f32 -> f16/bf16). Each matches its CPU counterpart in
 * core/kernels/cpu/cpu_backend.c to float rounding; backend.h states the semantics.
 *
 * How they work. All are memory-bound, so each is one pass over its data with coalesced accesses:
 *
 *   rms_norm     rows of 1024..8192 aligned floats: a 512-thread block per row, the row held in
 *                registers (rms_norm_wide_kernel); else a warp per row for dim < 1024 (per-head
 *                norms: many short rows), a 256-thread
 *                block per row otherwise (model-width rows: few of them in decode). The sum of
 *                squares is accumulated in double like the CPU's, then y = (x * scale) * w in the
 *                CPU's order. Each thread writes only the elements it read, so y may alias x.
 *   rope_cache   a thread per (row, i): angle and cos/sin in double, rounded to float once.
 *   rope         a thread per rotated pair; products rounded separately (__fmul_rn) so the
 *                compiler does not contract a*c - b*s into an fma that the CPU does not do.
 *   swiglu, add, add_bias, convert_f32
 *                grid-stride loops, float4 accesses when every pointer is 16-byte aligned (the
 *                scalar tail and unaligned cases take the same loop one element at a time).
 *   kv_store     a thread per stored element; rows with a negative slot are skipped.
 *   rope_kv_store
 *                rope on q and k, then kv_store, in one launch (a decode step's three ops): grid
 *                y over rows, x over a row's items (q pairs, k pairs and unrotated k elements, v
 *                elements). The thread that rotates a k pair also stores it, so nothing orders
 *                threads; rope_pair and store_kv are the very code of rope and kv_store, so the
 *                results are bit-identical to rope(q), rope(k), kv_store(k, v). q, k and v must
 *                not overlap.
 *
 * F16 conversions use the hardware round-to-nearest-even (__float2half_rn, overflow to inf like
 * mlxr_f32_to_f16); BF16 rounds with the same integer trick as mlxr_f32_to_bf16 (NaN kept quiet).
 *
 * Launchers validate their arguments (cudaErrorInvalidValue), enqueue on `stream` and return
 * cudaGetLastError(); they never allocate or synchronize, so they may be captured in a graph.
 */
#include <cuda_fp16.h>

#include "core/kernels/cuda/cuda_kernels.h"

namespace {

constexpr int EW_THREADS = 256;               /* threads per block of the 1-D kernels */
constexpr int64_t EW_MAX_BLOCKS = 1 << 20;    /* grid-stride loops cover the rest */
constexpr int64_t RMS_BLOCK_ROW_DIM = 1024;   /* from this dim on, a block per row */
constexpr int64_t ROPE_KV_MAX_GRID_Y = 65535; /* rope_kv_store: grid rows (rows beyond loop) */

/* Blocks for `work` items at `per_block` items per block, at least 1, capped. */
unsigned blocks_for(int64_t work, int64_t per_block) {
  int64_t b = (work + per_block - 1) / per_block;
  if (b < 1) b = 1;
  if (b > EW_MAX_BLOCKS) b = EW_MAX_BLOCKS;
  return (unsigned)b;
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* ---- rms_norm ---- */

/* Rows of `dim` elements, TPR threads per row (32: a warp; 256: the whole block). */
template <int TPR>
__global__ void __launch_bounds__(EW_THREADS) rms_norm_kernel(const float *x, const float *w,
                                                               int64_t n_rows, int64_t dim, float eps,
                                                               float *y) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  constexpr int RPB = EW_THREADS / TPR; /* rows per block */
  __shared__ double part[EW_THREADS / 32];
  const int lane = threadIdx.x % TPR;
  const int64_t row = (int64_t)blockIdx.x * RPB + threadIdx.x / TPR;
  const bool active = row < n_rows; /* no early return: the block may synchronize below */
  const float *xr = x + (active ? row : 0) * dim;

  double ss = 0.0;
  if (active) {
    for (int64_t i = lane; i < dim; i += TPR) ss += (double)xr[i] * (double)xr[i];
  }
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  if (TPR > 32) { /* the warps of the row (the whole block) add their sums */
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
    __syncthreads();
    ss = 0.0;
    for (int i = 0; i < TPR / 32; i++) ss += part[i];
  }
  if (!active) return;
  const float scale = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
  float *yr = y + row * dim;
  for (int64_t i = lane; i < dim; i += TPR) yr[i] = xr[i] * scale * w[i];
}

/* Rows of 1024..8192 floats (the hidden state: decode has one row per sequence): a 512-thread
 * block per row that loads its whole row and the weights with 16-byte loads into registers first
 * (NV float4 per thread, all in flight at once), reduces the squares, and writes y from the
 * registers. The row-per-256-threads kernel above walks the row with one dependent load after
 * another, and y needs a second pass over x: measured on an H100, 10 us for one 4096-float row,
 * where this needs about one memory latency. Same arithmetic as above: the sum of squares in
 * double, y = (x * scale) * w with scale rounded to float, so y may alias x. */
constexpr int RMS_WIDE_THREADS = 512;

template <int NV>
__global__ void __launch_bounds__(RMS_WIDE_THREADS) rms_norm_wide_kernel(const float *x, const float *w,
                                                                         int64_t dim, float eps, float *y) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int64_t row = blockIdx.x;
  const int64_t n4 = dim / 4;
  const float4 *xr = reinterpret_cast<const float4 *>(x + row * dim);
  const float4 *wr = reinterpret_cast<const float4 *>(w);
  float4 xv[NV], wv[NV];
#pragma unroll
  for (int k = 0; k < NV; k++) {
    const int64_t i = threadIdx.x + (int64_t)k * RMS_WIDE_THREADS;
    xv[k] = i < n4 ? xr[i] : make_float4(0.f, 0.f, 0.f, 0.f);
    wv[k] = i < n4 ? __ldg(wr + i) : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < NV; k++) {
    ss += (double)xv[k].x * (double)xv[k].x + (double)xv[k].y * (double)xv[k].y +
          (double)xv[k].z * (double)xv[k].z + (double)xv[k].w * (double)xv[k].w;
  }
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  __shared__ double part[RMS_WIDE_THREADS / 32];
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
  __syncthreads();
  ss = 0.0;
#pragma unroll
  for (int i = 0; i < RMS_WIDE_THREADS / 32; i++) ss += part[i];
  const float scale = (float)(1.0 / sqrt(ss / (double)dim + (double)eps));
  float4 *yr = reinterpret_cast<float4 *>(y + row * dim);
#pragma unroll
  for (int k = 0; k < NV; k++) {
    const int64_t i = threadIdx.x + (int64_t)k * RMS_WIDE_THREADS;
    if (i < n4) {
      yr[i] = make_float4(xv[k].x * scale * wv[k].x, xv[k].y * scale * wv[k].y, xv[k].z * scale * wv[k].z,
                          xv[k].w * scale * wv[k].w);
    }
  }
}

/* ---- rope ---- */

__global__ void rope_cache_kernel(const int32_t *pos, int64_t n_rows, const double *inv_freq, int half,
                                  float linear_scale, float *cos_tab, float *sin_tab) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int64_t n = n_rows * half;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = idx / half;
    const int i = (int)(idx % half);
    const double angle = ((double)pos[r] / (double)linear_scale) * inv_freq[i];
    double s, c;
    sincos(angle, &s, &c);
    cos_tab[idx] = (float)c;
    sin_tab[idx] = (float)s;
  }
}

/* Rotates pair i of one head v in place with the table entries c, s of its row (NORM: elements
 * 2i, 2i+1; NEOX: i, i + half), returning the pair's element indices and new values. The rounding
 * of every rope in this file. */
__device__ __forceinline__ void rope_pair(float *v, int i, int half, bool neox, float c, float s,
                                          int *i0, int *i1, float *r0, float *r1) {
  *i0 = neox ? i : 2 * i;
  *i1 = neox ? i + half : 2 * i + 1;
  const float a = v[*i0], b = v[*i1];
  *r0 = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
  *r1 = __fadd_rn(__fmul_rn(a, s), __fmul_rn(b, c));
  v[*i0] = *r0;
  v[*i1] = *r1;
}

/* One thread per rotated pair (row r, head h, i < half); table entry r * half + i. */
__global__ void rope_kernel(float *x, int64_t n_rows, int n_heads, int head_dim, int half, bool neox,
                            const float *cos_tab, const float *sin_tab) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int64_t n = n_rows * n_heads * half;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int i = (int)(idx % half);
    const int64_t rh = idx / half; /* r * n_heads + h */
    const int64_t r = rh / n_heads;
    int i0, i1;
    float r0, r1;
    rope_pair(x + rh * head_dim, i, half, neox, cos_tab[r * half + i], sin_tab[r * half + i], &i0,
              &i1, &r0, &r1);
  }
}

/* ---- swiglu, add, add_bias ---- */

/* out[i] = silu(gate[i]) * up[i]; VEC: float4 over the first n / 4 * 4 elements. out may alias
 * gate or up (each element is read before it is written by the same thread). */
template <bool VEC>
__global__ void swiglu_kernel(const float *gate, const float *up, float *out, int64_t n) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if (VEC) {
    const int64_t n4 = n / 4;
    for (int64_t i = first; i < n4; i += stride) {
      const float4 g = reinterpret_cast<const float4 *>(gate)[i];
      const float4 u = reinterpret_cast<const float4 *>(up)[i];
      const float4 o = make_float4(mlxr_silu_mul(g.x, u.x), mlxr_silu_mul(g.y, u.y), mlxr_silu_mul(g.z, u.z),
                                   mlxr_silu_mul(g.w, u.w));
      reinterpret_cast<float4 *>(out)[i] = o;
    }
    done = n4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) out[i] = mlxr_silu_mul(gate[i], up[i]);
}

/* y[i] += x[i] */
template <bool VEC>
__global__ void add_kernel(float *y, const float *x, int64_t n) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if (VEC) {
    const int64_t n4 = n / 4;
    for (int64_t i = first; i < n4; i += stride) {
      float4 a = reinterpret_cast<float4 *>(y)[i];
      const float4 b = reinterpret_cast<const float4 *>(x)[i];
      a.x += b.x;
      a.y += b.y;
      a.z += b.z;
      a.w += b.w;
      reinterpret_cast<float4 *>(y)[i] = a;
    }
    done = n4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) y[i] += x[i];
}

/* y[r][c] += bias[c] over n_rows x n_cols */
__global__ void add_bias_kernel(float *y, const float *bias, int64_t n_rows, int64_t n_cols) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int64_t n = n_rows * n_cols;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    y[i] += bias[i % n_cols];
  }
}

/* ---- kv_store and conversions ---- */

/* float -> bfloat16 bits, round to nearest even, NaN kept quiet (as mlxr_f32_to_bf16) */
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {
  const uint32_t x = __float_as_uint(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
  return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* pool[i] = val as F16 (round to nearest even) or F32: the KV store of every kernel here. */
__device__ __forceinline__ void store_kv(void *pool, bool f16, int64_t i, float val) {
  if (f16) static_cast<__half *>(pool)[i] = __float2half_rn(val);
  else static_cast<float *>(pool)[i] = val;
}

/* Row r of k (dim_k) and of v (dim_v) into slot slots[r] of the pools ([slot][dim] of F32 or F16).
 * One thread per element of the concatenated row k | v. */
__global__ void kv_store_kernel(const float *k, const float *v, int64_t n_rows, int64_t dim_k,
                                int64_t dim_v, const int64_t *slots, void *k_pool, void *v_pool,
                                bool f16) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int64_t width = dim_k + dim_v;
  const int64_t n = n_rows * width;
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = idx / width, e = idx % width;
    const int64_t slot = slots[r];
    if (slot < 0) continue;
    const bool is_k = e < dim_k;
    const int64_t dim = is_k ? dim_k : dim_v;
    const int64_t col = is_k ? e : e - dim_k;
    const float val = is_k ? k[r * dim_k + col] : v[r * dim_v + col];
    store_kv(is_k ? k_pool : v_pool, f16, slot * dim + col, val);
  }
}

/* rope on q and k, then k and v into the pools, for one decode step (or prompt chunk). Row r is
 * handled by the threads of grid row blockIdx.y (rows r, r + gridDim.y, ...), which split its
 * work items along x. A row's items, in this order:
 *   q   n_head * half        pair i of q head h: rotated in place
 *   k   n_head_kv * kw       item j < half of k head h: pair j, rotated in place and both elements
 *                            stored; item j >= half: element half + j (past rot_dim), stored as is
 *                            (kw = head_dim - half items per head)
 *   v   n_head_kv * hd_v     element e of the row, stored
 * Every element of k is written to the pool by the thread that rotated it (or by no one else), so
 * no ordering between threads is needed; rows with a negative slot are rotated but not stored. */
__global__ void rope_kv_store_kernel(float *q, float *k, const float *v, int64_t n_rows, int n_head,
                                     int n_head_kv, int head_dim, int head_dim_v, int half,
                                     bool neox, const float *cos_tab, const float *sin_tab,
                                     const int64_t *slots, void *k_pool, void *v_pool, bool f16) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int kw = head_dim - half;
  const int n_q = n_head * half, n_k = n_head_kv * kw, n_v = n_head_kv * head_dim_v;
  const int width = n_q + n_k + n_v;
  const int64_t dim_k = (int64_t)n_head_kv * head_dim, dim_v = n_v;
  for (int64_t r = blockIdx.y; r < n_rows; r += gridDim.y) {
    const int64_t slot = slots[r];
    const float *cr = cos_tab + r * half, *sr = sin_tab + r * half; /* unread when half == 0 */
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < width; e += gridDim.x * blockDim.x) {
      int i0, i1;
      float r0, r1;
      if (e < n_q) {
        const int h = e / half, i = e - h * half;
        rope_pair(q + (r * n_head + h) * head_dim, i, half, neox, cr[i], sr[i], &i0, &i1, &r0, &r1);
      } else if (e < n_q + n_k) {
        const int j = e - n_q, h = j / kw, i = j - h * kw;
        float *kh = k + (r * n_head_kv + h) * head_dim;
        const int64_t dst = slot * dim_k + (int64_t)h * head_dim; /* head h in the slot */
        if (i < half) {
          rope_pair(kh, i, half, neox, cr[i], sr[i], &i0, &i1, &r0, &r1);
          if (slot >= 0) {
            store_kv(k_pool, f16, dst + i0, r0);
            store_kv(k_pool, f16, dst + i1, r1);
          }
        } else if (slot >= 0) {
          store_kv(k_pool, f16, dst + half + i, kh[half + i]);
        }
      } else if (slot >= 0) {
        const int c = e - n_q - n_k;
        store_kv(v_pool, f16, slot * dim_v + c, v[r * dim_v + c]);
      }
    }
  }
}

/* dst[i] = x[i] as f16 (to_bf16 false) or bf16 bits */
__global__ void convert_f32_kernel(const float *x, int64_t n, bool to_bf16, uint16_t *dst) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    dst[i] = to_bf16 ? f32_to_bf16_bits(x[i]) : __half_as_ushort(__float2half_rn(x[i]));
  }
}

} /* namespace */

/* ---- launchers ---- */

cudaError_t mlxr_cuda_rms_norm(const float *x, const float *w, int64_t n_rows, int64_t dim, float eps,
                               float *y, cudaStream_t stream, bool pdl) {
  if (n_rows < 0 || dim <= 0) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  if (!x || !w || !y) return cudaErrorInvalidValue;
  const bool wide = dim >= 1024 && dim <= 4 * 4 * RMS_WIDE_THREADS && dim % 4 == 0 && n_rows <= INT32_MAX &&
                    ((uintptr_t)x % 16) == 0 && ((uintptr_t)w % 16) == 0 && ((uintptr_t)y % 16) == 0;
  if (wide) {
    const unsigned rows = (unsigned)n_rows;
    const auto kernel = dim <= 4 * RMS_WIDE_THREADS   ? rms_norm_wide_kernel<1>
                        : dim <= 8 * RMS_WIDE_THREADS ? rms_norm_wide_kernel<2>
                                                      : rms_norm_wide_kernel<4>;
    return mlxr_cuda_launch(kernel, dim3(rows), dim3(RMS_WIDE_THREADS), 0, stream, pdl, x, w, dim, eps, y);
  }
  if (dim >= RMS_BLOCK_ROW_DIM) {
    return mlxr_cuda_launch(rms_norm_kernel<EW_THREADS>, dim3(blocks_for(n_rows, 1)), dim3(EW_THREADS), 0, stream,
                            pdl, x, w, n_rows, dim, eps, y);
  }
  return mlxr_cuda_launch(rms_norm_kernel<32>, dim3(blocks_for(n_rows, EW_THREADS / 32)), dim3(EW_THREADS), 0,
                          stream, pdl, x, w, n_rows, dim, eps, y);
}

cudaError_t mlxr_cuda_rope_cache(const int32_t *pos, int64_t n_rows, const double *inv_freq, int half,
                                 float linear_scale, float *cos_tab, float *sin_tab, cudaStream_t stream,
                                 bool pdl) {
  if (n_rows < 0 || half <= 0 || !(linear_scale != 0.0f)) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  if (!pos || !inv_freq || !cos_tab || !sin_tab) return cudaErrorInvalidValue;
  return mlxr_cuda_launch(rope_cache_kernel, dim3(blocks_for(n_rows * half, EW_THREADS)), dim3(EW_THREADS), 0,
                          stream, pdl, pos, n_rows, inv_freq, half, linear_scale, cos_tab, sin_tab);
}

cudaError_t mlxr_cuda_rope(float *x, int64_t n_rows, int n_heads, int head_dim, int rot_dim,
                           mlxr_rope_mode mode, const float *cos_tab, const float *sin_tab,
                           cudaStream_t stream) {
  if (n_rows < 0 || n_heads <= 0 || head_dim <= 0 || rot_dim < 0 || rot_dim > head_dim || rot_dim % 2 != 0) {
    return cudaErrorInvalidValue;
  }
  if (mode != MLXR_ROPE_NORM && mode != MLXR_ROPE_NEOX) return cudaErrorInvalidValue;
  if (n_rows == 0 || rot_dim == 0) return cudaSuccess;
  if (!x || !cos_tab || !sin_tab) return cudaErrorInvalidValue;
  const int half = rot_dim / 2;
  rope_kernel<<<blocks_for(n_rows * n_heads * half, EW_THREADS), EW_THREADS, 0, stream>>>(
      x, n_rows, n_heads, head_dim, half, mode == MLXR_ROPE_NEOX, cos_tab, sin_tab);
  return cudaGetLastError();
}

cudaError_t mlxr_cuda_swiglu(const float *gate, const float *up, float *out, int64_t n, cudaStream_t stream,
                             bool pdl) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!gate || !up || !out) return cudaErrorInvalidValue;
  if (aligned16(gate) && aligned16(up) && aligned16(out)) {
    return mlxr_cuda_launch(swiglu_kernel<true>, dim3(blocks_for(n / 4 + 1, EW_THREADS)), dim3(EW_THREADS), 0,
                            stream, pdl, gate, up, out, n);
  }
  return mlxr_cuda_launch(swiglu_kernel<false>, dim3(blocks_for(n, EW_THREADS)), dim3(EW_THREADS), 0, stream, pdl,
                          gate, up, out, n);
}

cudaError_t mlxr_cuda_add(float *y, const float *x, int64_t n, cudaStream_t stream, bool pdl) {
  if (n < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!y || !x) return cudaErrorInvalidValue;
  if (aligned16(y) && aligned16(x)) {
    return mlxr_cuda_launch(add_kernel<true>, dim3(blocks_for(n / 4 + 1, EW_THREADS)), dim3(EW_THREADS), 0, stream,
                            pdl, y, x, n);
  }
  return mlxr_cuda_launch(add_kernel<false>, dim3(blocks_for(n, EW_THREADS)), dim3(EW_THREADS), 0, stream, pdl, y,
                          x, n);
}

cudaError_t mlxr_cuda_add_bias(float *y, const float *bias, int64_t n_rows, int64_t n_cols,
                               cudaStream_t stream) {
  if (n_rows < 0 || n_cols <= 0) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  if (!y || !bias) return cudaErrorInvalidValue;
  add_bias_kernel<<<blocks_for(n_rows * n_cols, EW_THREADS), EW_THREADS, 0, stream>>>(y, bias, n_rows, n_cols);
  return cudaGetLastError();
}

cudaError_t mlxr_cuda_kv_store(const float *k, const float *v, int64_t n_rows, int64_t dim_k, int64_t dim_v,
                               const int64_t *slots, void *k_pool, void *v_pool, mlxr_dtype kv_type,
                               cudaStream_t stream) {
  if (n_rows < 0 || dim_k <= 0 || dim_v <= 0) return cudaErrorInvalidValue;
  if (kv_type != MLXR_DTYPE_F32 && kv_type != MLXR_DTYPE_F16) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  if (!k || !v || !slots || !k_pool || !v_pool) return cudaErrorInvalidValue;
  kv_store_kernel<<<blocks_for(n_rows * (dim_k + dim_v), EW_THREADS), EW_THREADS, 0, stream>>>(
      k, v, n_rows, dim_k, dim_v, slots, k_pool, v_pool, kv_type == MLXR_DTYPE_F16);
  return cudaGetLastError();
}

cudaError_t mlxr_cuda_rope_kv_store(float *q, float *k, const float *v, int64_t n_rows, int n_head,
                                    int n_head_kv, int head_dim, int head_dim_v, int rot_dim,
                                    mlxr_rope_mode mode, const float *cos_tab,
                                    const float *sin_tab, const int64_t *slots, void *k_pool,
                                    void *v_pool, mlxr_dtype kv_type, cudaStream_t stream, bool pdl) {
  if (n_rows < 0 || n_head <= 0 || n_head_kv <= 0 || head_dim <= 0 || head_dim_v <= 0 ||
      rot_dim < 0 || rot_dim > head_dim || rot_dim % 2 != 0) {
    return cudaErrorInvalidValue;
  }
  if (mode != MLXR_ROPE_NORM && mode != MLXR_ROPE_NEOX) return cudaErrorInvalidValue;
  if (kv_type != MLXR_DTYPE_F32 && kv_type != MLXR_DTYPE_F16) return cudaErrorInvalidValue;
  const int half = rot_dim / 2;
  /* a row's work items (see the kernel), in int with room for the grid stride */
  const int64_t width = (int64_t)n_head * half + (int64_t)n_head_kv * (head_dim - half) +
                        (int64_t)n_head_kv * head_dim_v;
  if (width > ((int64_t)1 << 30)) return cudaErrorInvalidValue;
  if (n_rows == 0) return cudaSuccess;
  if (!q || !k || !v || !slots || !k_pool || !v_pool) return cudaErrorInvalidValue;
  if (half > 0 && (!cos_tab || !sin_tab)) return cudaErrorInvalidValue;
  const dim3 grid(blocks_for(width, EW_THREADS),
                  (unsigned)(n_rows < ROPE_KV_MAX_GRID_Y ? n_rows : ROPE_KV_MAX_GRID_Y));
  return mlxr_cuda_launch(rope_kv_store_kernel, grid, dim3(EW_THREADS), 0, stream, pdl, q, k, v, n_rows, n_head,
                          n_head_kv, head_dim, head_dim_v, half, mode == MLXR_ROPE_NEOX, cos_tab, sin_tab, slots,
                          k_pool, v_pool, kv_type == MLXR_DTYPE_F16);
}

cudaError_t mlxr_cuda_convert_f32(const float *x, int64_t n, mlxr_dtype out_type, void *dst,
                                  cudaStream_t stream) {
  if (n < 0) return cudaErrorInvalidValue;
  if (out_type != MLXR_DTYPE_F16 && out_type != MLXR_DTYPE_BF16) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (!x || !dst) return cudaErrorInvalidValue;
  convert_f32_kernel<<<blocks_for(n, EW_THREADS), EW_THREADS, 0, stream>>>(
      x, n, out_type == MLXR_DTYPE_BF16, static_cast<uint16_t *>(dst));
  return cudaGetLastError();
}
