/*
 * matvec.cu: weight x activation products for a few activation rows (decode): y[r][o] =
 * sum_k W[o][k] * x[r][k] (+ bias[o]) for n_rows = 1..MLXR_CUDA_MATVEC_MAX_ROWS, every stored
 * weight type, reading the device layouts of weights.cu (see the table at its top; the traits
 * below must agree with it). One launch multiplies up to MLXR_CUDA_MATVEC_MAX_MATS matrices of
 * one type and one n_in by the same activations (q/k/v, gate/up: mlxr_cuda_matvec_multi;
 * mlxr_cuda_matvec is its one-matrix case), and may add its result to y instead of storing it
 * (the residual add of the output and down projections).
 *
 * Decode is memory-bound: the kernel is built to stream W once per call at HBM speed, for all
 * activation rows at once.
 *
 * Quantized types. The activations are first rounded to int8 in blocks of 32 with a float scale
 * each (quantize_block32: d = amax / 127, q = round-to-nearest-even(x / d)):
 *     q   int8 [n_rows][n_in]                               x ~ d * q
 *     aux {f32 d, i16 s_lo | i16 s_hi << 16} [n_rows][n_in / 32]
 * where s_lo / s_hi are the sums of q over elements 0..15 / 16..31 of the block, once per launch
 * whatever the number of matrices: a small kernel (quantize_kernel) writes them into the caller's
 * scratch (aux at the next 256-byte boundary after q) and the product reads them through L1. (A
 * variant where every CTA quantizes x itself into shared memory, saving that launch, exists for
 * up to kMaxFusedRows rows; it is off: measured, the repeated quantization bounded the products.) The product then runs on integers: each 32-bit word of weight
 * codes (4 elements, one per byte, taken from the nibbles with one mask or shift, plus the high
 * bits for Q5 / Q6 types) meets the matching word of activation quants in one __dp4a; the codes'
 * offsets (Q4_0's -8, Q6_K's -32, ...) and the K-quants' mins are applied once per block through
 * s_lo / s_hi, and the scales once per block in float. This is the CPU's scheme (Q8_0
 * activations for the legacy types, Q8_K for the K-quants), with a float scale per 32 elements
 * instead of f16 per 32 or f32 per 256.
 *
 * Folded transforms (mlxr_cuda_mv_in, quantized types): the quantize kernel may quantize
 * silu(x) * up instead of x (the feed-forward's SwiGLU), or x * norm, the rms_norm of x without
 * its 1 / rms, writing each 32-block's sum of squares of x beside it; the product then scales each
 * sum by the row's 1 / rms (each warp adds the row's block sums itself in its epilogue, no CTA
 * barrier), before the bias. Quantization commutes with that positive scale up to rounding.
 *
 * Programmatic dependent launch (cuda_kernels.h): the main kernel issues its first batch of weight
 * loads, then triggers its successor and waits for its inputs; the quantize kernel triggers and
 * waits first.
 *
 * F32 / F16 / BF16: weights converted to float32 and multiplied by the float32 activations with
 * fp32 fused multiply-adds (no TF32, no half arithmetic). Rows whose length is not a whole
 * number of 16-byte vectors, or unaligned pointers, take a simple one-warp-per-row kernel.
 *
 * The main kernel (matvec_kernel<Traits, NR>). A "unit" is 16 bytes of plane 0 of one weight row
 * (4 f32, 8 f16/bf16, 16 Q8_0 quants, or the 32 elements of one Q4/Q5/Q6 block or sub-block)
 * with its scales from the other planes. A CTA of 128 threads is split into row groups of tk
 * threads (tk = 32, 64 or 128, chosen per call from the row length); each group computes R
 * consecutive output rows (R = 2 for n_rows <= 2, else 4) over the whole of k: thread kt of a
 * group takes units kt, kt + tk, kt + 2 tk, ... of each of its R rows, so a warp reads 512
 * contiguous bytes of a row per load instruction. Each loop iteration first issues U * R
 * independent 16-byte loads (U units per row: the trait's kLoads / 2 with R = 2, one with R = 4),
 * read-only and not allocated in L1 (weights are streamed once), then decodes each unit once and
 * applies it to all n_rows activation rows (from shared memory when fused, else through L1,
 * where they stay: they are small and reused by every row group), accumulating R * n_rows float
 * partial sums per thread. At the end a warp reduces
 * its R * n_rows sums with a butterfly that halves the set at each step (about one shuffle per
 * sum instead of five), warps of a group combine through shared memory, and one lane per output
 * adds the bias and stores, or adds the whole to y (accumulate: y + (sum + bias), the rounding of
 * a store followed by mlxr_cuda_add).
 *
 * Several matrices. The kernel argument (MvArgs, passed __grid_constant__) holds per matrix its
 * plane pointers, n_out, bias, y and cta0, the index of its first CTA: a prefix sum of the
 * matrices' CTA counts, so CTAs [cta0[m], cta0[m+1]) compute matrix m (unused entries have
 * cta0 = UINT32_MAX). A CTA finds m by comparing blockIdx.x with the cta0s. How it then reads
 * its matrix's fields was chosen by ptxas -v (register counts and spills of all 216 kernels
 * against the one-matrix code): the plane pointers, bias and y with the dynamic index m, straight
 * from the parameter space (an indexed constant load; __grid_constant__ guarantees no local copy
 * of the argument); n_out and cta0, from which the row numbers are computed, by a chain of
 * selects with constant indices, which keeps that arithmetic uniform across the CTA, as it was
 * with one matrix (the dynamic-index version cost up to 12 registers in the decode kernels;
 * selecting the pointers that way cost more). The number of matrices costs no template
 * instantiation; n_mats = 1 is the plain product.
 *
 * Launch configuration: CTAs of 128 threads; a CTA computes `passes` consecutive sets of
 * R * 128 / tk rows of one matrix one after the other. tk grows from 32 while a thread would get
 * more than 4 units per row, and while the grid (all matrices) would have fewer than kMinCtas
 * CTAs (small matrices: spread them over all SMs); passes (fused quantization only) doubles up
 * to 8 while a CTA covers fewer than 8 weight rows per activation row and the grid keeps
 * kMinCtas CTAs. tk and passes are the launch's, chosen from the whole grid: a small matrix
 * beside a big one keeps the big one's narrow row groups, so a matrix's result in a multi launch
 * may differ in the last bits (the order of its partial sums) from a launch of its own, within
 * the same precision. Dynamic shared memory:
 * the quantized activations when fused (n_rows * n_in * 1.25 bytes, at most kMaxFusedSmem), else
 * none. The main kernel is instantiated per (type, n_rows, fused): 11 x 8 + 8 x 2.
 *
 * The slow float kernel splits its CTAs over the matrices in the same way (kSlowWarps rows each).
 *
 * All launchers enqueue on the given stream, allocate nothing, do not synchronize and return
 * cudaGetLastError(), so they can be captured in CUDA graphs. x and the ys must not overlap, nor
 * the ys one another (with accumulate, each y element is read and written by one thread only).
 */
#include <cuda_fp16.h>

#include "core/kernels/cuda/cuda_kernels.h"

namespace {

constexpr int kThreads = 128;        /* threads per CTA of the main kernel */
constexpr int64_t kMinCtas = 264;    /* grids smaller than this get wider row groups (2 x 132 SMs) */
constexpr int kMaxPasses = 8;        /* row passes per CTA (fused quantization) */
constexpr int64_t kFusedRowsPerCta = 8; /* weight rows per CTA and activation row, when fused */
/* Activation rows quantized inside the product: none. Measured on an H100 (Nsight Compute, 8B-shape
 * Q4_0 decode, 2026-12-07): with every CTA quantizing the whole row itself, the products ran at
 * 0.3-1.5 TB/s (k/v 1024x4096 to gate/up 14336x4096) against 3.0 TB/s of copy bandwidth: the
 * repeated quantization, not the weights, bounded them. One small quantize kernel per launch (all
 * matrices of a matvec_multi share it) costs a launch and reads x once. The fused kernels stay
 * available (raise this to 1 or 2) for an A/B on other cards. */
constexpr int kMaxFusedRows = 0;
constexpr size_t kMaxFusedSmem = 46 * 1024; /* shared bytes for them (no opt-in needed) */
constexpr int kQuantThreads = 128;   /* threads (blocks of 32) per CTA of quantize_kernel */
constexpr int kSlowWarps = 4;        /* warps (rows) per CTA of the slow float kernel */
constexpr int kMinBlocksPerSm = 4;   /* main kernel: at most 128 registers per thread */
constexpr int kMaxMats = MLXR_CUDA_MATVEC_MAX_MATS;  /* matrices per launch */

/* One matrix of a launch. */
struct MvMat {
  const uint8_t *plane[4]; /* row 0 of each plane of W (weights.cu's layout) */
  int64_t n_out;           /* rows of W */
  const float *bias;       /* [n_out] or NULL */
  float *y;                /* [NR][n_out] */
  unsigned cta0;           /* its first CTA: the CTA counts of the matrices before it, summed;
                              UINT32_MAX for unused entries */
};

/* Arguments of the main kernel (and of the slow float kernel). CTAs [mat[m].cta0, mat[m+1].cta0)
 * compute matrix m; everything but mat[] is shared by the matrices. */
struct MvArgs {
  MvMat mat[kMaxMats];
  int64_t stride[4];       /* bytes per row of each plane (the same n_in for every matrix) */
  int n_units;             /* units (16 bytes of plane 0) per row */
  int tk;                  /* threads per row group: 32, 64 or 128 */
  int passes;              /* row passes per CTA */
  bool fused;              /* quantize x into shared memory (quantized types, NR <= 2) */
  bool x_vec;              /* x is 16-byte aligned */
  bool accumulate;         /* y += result instead of y = result */
  bool norm;               /* x is rms_norm'ed: results scaled by each row's 1 / rms (below) */
  float eps;               /* the norm's epsilon */
  int64_t n_in;
  const float *x;          /* [NR][n_in] float activations */
  const int8_t *xq;        /* [NR][n_in] quantized activations in scratch (not fused) */
  const uint2 *aux;        /* [NR][n_in / 32] their block data (not fused) */
  const float *ss;         /* [NR][n_in / 32] sums of squares of x's blocks (norm) */
};

/* The index of this CTA's matrix in a.mat: the last whose cta0 <= blockIdx.x (unused entries
 * have cta0 = UINT32_MAX). For the pointers, read as a.mat[m].field. */
__device__ __forceinline__ int cta_mat(const MvArgs &a) {
  int m = 0;
#pragma unroll
  for (int i = 1; i < kMaxMats; i++) {
    if (blockIdx.x >= a.mat[i].cta0) m = i;
  }
  return m;
}

/* n_out and cta0 of this CTA's matrix, selected with constant indices only (see the top comment:
 * these stay in the uniform datapath, where the row arithmetic built on them stays too). */
__device__ __forceinline__ void cta_rows(const MvArgs &a, int64_t *n_out, unsigned *cta0) {
  *n_out = a.mat[0].n_out;
  *cta0 = a.mat[0].cta0;
#pragma unroll
  for (int i = 1; i < kMaxMats; i++) {
    if (blockIdx.x >= a.mat[i].cta0) {
      *n_out = a.mat[i].n_out;
      *cta0 = a.mat[i].cta0;
    }
  }
}

/* y[i] = v, or y[i] += v when accumulating (the same rounding as a store then mlxr_cuda_add). */
__device__ __forceinline__ void store_out(const MvArgs &a, float *y, int64_t i, float v) {
  y[i] = a.accumulate ? y[i] + v : v;
}

/* Where the traits read activations: float x (global, read-only) or the quantized q / aux, in
 * global scratch (kShared = false: read-only loads through L1) or in shared memory. */
template <bool kShared>
struct Act {
  const float *x;
  const int8_t *q;
  const uint2 *aux;
  int64_t n_in;

  __device__ __forceinline__ int4 q16(int64_t i) const { /* q[i..i+15], i % 16 == 0 */
    if constexpr (kShared) return *(const int4 *)(q + i);
    return __ldg((const int4 *)(q + i));
  }
  __device__ __forceinline__ uint2 aux_at(int64_t i) const {
    if constexpr (kShared) return aux[i];
    return __ldg(aux + i);
  }
};

/* ---------------------------------------------------------------- loads */

/* Weight loads: read-only, streamed past L1 (each byte is read once per call). */
__device__ __forceinline__ uint4 ldw16(const uint8_t *p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ uint2 ldw8(const uint8_t *p) {
  uint2 v;
  asm("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(p));
  return v;
}

__device__ __forceinline__ uint32_t ldw4(const uint8_t *p) {
  uint32_t v;
  asm("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(v) : "l"(p));
  return v;
}

__device__ __forceinline__ uint32_t ldw2(const uint8_t *p) {
  unsigned short v;
  asm("ld.global.nc.L1::no_allocate.u16 %0, [%1];" : "=h"(v) : "l"(p));
  return v;
}

__device__ __forceinline__ float f16_to_f32(uint32_t bits) {
  return __half2float(__ushort_as_half((unsigned short)(bits & 0xffffu)));
}

/* The int8 activations and block data of 32-element block `blk` of activation row r. */
struct Act32 {
  int q[8];       /* elements 4k..4k+3 in word k */
  float d;        /* scale */
  int s_lo, s_hi; /* sums of q over elements 0..15 and 16..31 */
};

template <class A>
__device__ __forceinline__ Act32 load_act32(const A &act, int r, int blk) {
  const int64_t i = r * act.n_in + 32 * blk;
  const int4 lo = act.q16(i), hi = act.q16(i + 16);
  const uint2 ax = act.aux_at(r * (act.n_in / 32) + blk);
  Act32 v;
  v.q[0] = lo.x, v.q[1] = lo.y, v.q[2] = lo.z, v.q[3] = lo.w;
  v.q[4] = hi.x, v.q[5] = hi.y, v.q[6] = hi.z, v.q[7] = hi.w;
  v.d = __uint_as_float(ax.x);
  v.s_lo = (int)(ax.y << 16) >> 16;
  v.s_hi = (int)ax.y >> 16;
  return v;
}

/* sum over k in [K0, K1) of the byte-wise dot products of w[k] and x[k] */
template <int K0, int K1>
__device__ __forceinline__ int dot_words(const int (&w)[8], const int (&x)[8]) {
  int s = 0;
#pragma unroll
  for (int k = K0; k < K1; k++) s = __dp4a(w[k], x[k], s);
  return s;
}

/* The 8 words of 4-bit codes of a nibble chunk: word k = elements 4k..4k+3 (low nibbles of chunk
 * word k), word 4 + k = elements 16+4k.. (high nibbles). */
__device__ __forceinline__ void nibbles(uint4 c, int (&q)[8]) {
  const uint32_t w[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
  for (int k = 0; k < 4; k++) {
    q[k] = (int)(w[k] & 0x0f0f0f0fu);
    q[4 + k] = (int)((w[k] >> 4) & 0x0f0f0f0fu);
  }
}

/* Add the fifth bits of a Q5 unit (weights.cu: bit 8*(e%4) + e/4 of hb is that of element e):
 * group g = elements 4g..4g+3 takes (hb >> g) & 0x01010101, moved to bit 4 of each byte. */
__device__ __forceinline__ void add_fifth_bits(uint32_t hb, int (&q)[8]) {
#pragma unroll
  for (int g = 0; g < 8; g++) {
    const uint32_t bits = g <= 4 ? hb << (4 - g) : hb >> (g - 4);
    q[g] |= (int)(bits & 0x10101010u);
  }
}

/* Add the top two bits of a Q6_K unit (weights.cu: word e/16, bits 8*(e%4) + 2*((e/4)%4) of hp):
 * group g's pair sits at bits 2*(g%4) of each byte of word g/4, moved to bits 4-5. */
__device__ __forceinline__ void add_high_pairs(uint2 hp, int (&q)[8]) {
#pragma unroll
  for (int g = 0; g < 8; g++) {
    const uint32_t w = g < 4 ? hp.x : hp.y;
    const int s = 2 * (g % 4);
    const uint32_t bits = s <= 4 ? w << (4 - s) : w >> (s - 4);
    q[g] |= (int)(bits & 0x30303030u);
  }
}

/* The 6-bit scale and min of sub-block j of a K head {d, dmin, scales[12]} (words y, z, w hold
 * scales[0..3], [4..7], [8..11]); mlxr_quant_scale_min_k4 on 32-bit words. */
__device__ __forceinline__ void k4_scale_min(uint4 h, int j, int *sc, int *m) {
  if (j < 4) {
    const int b = 8 * j;
    *sc = (int)((h.y >> b) & 63u);
    *m = (int)((h.z >> b) & 63u);
  } else {
    const int b = 8 * (j - 4);
    *sc = (int)(((h.w >> b) & 15u) | ((h.y >> (b + 6)) & 3u) << 4);
    *m = (int)(((h.w >> (b + 4)) & 15u) | ((h.z >> (b + 6)) & 3u) << 4);
  }
}

/* ---------------------------------------------------------------- per-type traits
 *
 * Each trait has: kQuantized (activations as int8 blocks or float), kLoads (units in flight per
 * thread with 2 rows per group), Raw (one unit's loaded bytes), load(a, m, row, u) (unit u of
 * row `row` of matrix a.mat[m]), and
 * accumulate<NR, R>(act, u, w, acc): acc[i][r] += unit u of weight row i (loaded in w[i]) . the
 * same elements of activation row r.
 */

/* Pointer to byte `off` of row `row` of plane p of matrix a.mat[m]. */
__device__ __forceinline__ const uint8_t *at(const MvArgs &a, int m, int p, int64_t row,
                                             int64_t off) {
  return a.mat[m].plane[p] + row * a.stride[p] + off;
}

/* -------- float types: 16 bytes of weights against float32 activations */

template <mlxr_dtype T>
struct FloatTraits {
  static constexpr bool kQuantized = false;
  static constexpr int kElems = T == MLXR_DTYPE_F32 ? 4 : 8; /* elements per unit */
  static constexpr int kLoads = 8;
  typedef uint4 Raw;

  static __device__ __forceinline__ Raw load(const MvArgs &a, int m, int64_t row, int u) {
    return ldw16(at(a, m, 0, row, 16 * (int64_t)u));
  }

  static __device__ __forceinline__ void to_float(Raw w, float (&f)[kElems]) {
    if constexpr (T == MLXR_DTYPE_F32) {
      f[0] = __uint_as_float(w.x), f[1] = __uint_as_float(w.y);
      f[2] = __uint_as_float(w.z), f[3] = __uint_as_float(w.w);
    } else {
      const uint32_t v[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
      for (int k = 0; k < 4; k++) {
        if constexpr (T == MLXR_DTYPE_F16) {
          const float2 p = __half22float2(*(const __half2 *)&v[k]);
          f[2 * k] = p.x, f[2 * k + 1] = p.y;
        } else {
          f[2 * k] = __uint_as_float(v[k] << 16);
          f[2 * k + 1] = __uint_as_float(v[k] & 0xffff0000u);
        }
      }
    }
  }

  template <int NR, int R, class A>
  static __device__ __forceinline__ void accumulate(const A &act, int u, const Raw (&w)[R],
                                                    float (&acc)[R][NR]) {
    float f[R][kElems];
#pragma unroll
    for (int i = 0; i < R; i++) to_float(w[i], f[i]);
#pragma unroll
    for (int r = 0; r < NR; r++) {
      const float4 *xp = (const float4 *)(act.x + r * act.n_in + (int64_t)kElems * u);
      float x[kElems];
#pragma unroll
      for (int v = 0; v < kElems / 4; v++) {
        const float4 t = __ldg(xp + v);
        x[4 * v] = t.x, x[4 * v + 1] = t.y, x[4 * v + 2] = t.z, x[4 * v + 3] = t.w;
      }
#pragma unroll
      for (int i = 0; i < R; i++) {
#pragma unroll
        for (int k = 0; k < kElems; k++) acc[i][r] = fmaf(f[i][k], x[k], acc[i][r]);
      }
    }
  }
};

/* -------- Q8_0: a unit is half a block (16 quants) */

struct Q8_0Traits {
  static constexpr bool kQuantized = true;
  static constexpr int kLoads = 8;
  struct Raw {
    uint4 q;    /* 16 int8 quants */
    uint32_t d; /* f16 scale of the block */
  };

  static __device__ __forceinline__ Raw load(const MvArgs &a, int m, int64_t row, int u) {
    return {ldw16(at(a, m, 0, row, 16 * (int64_t)u)),
            ldw2(at(a, m, 1, row, 2 * (int64_t)(u >> 1)))};
  }

  template <int NR, int R, class A>
  static __device__ __forceinline__ void accumulate(const A &act, int u, const Raw (&w)[R],
                                                    float (&acc)[R][NR]) {
#pragma unroll
    for (int r = 0; r < NR; r++) {
      const int4 x = act.q16(r * act.n_in + 16 * (int64_t)u);
      const float dx = __uint_as_float(act.aux_at(r * (act.n_in / 32) + (u >> 1)).x);
#pragma unroll
      for (int i = 0; i < R; i++) {
        int s = __dp4a((int)w[i].q.x, x.x, 0);
        s = __dp4a((int)w[i].q.y, x.y, s);
        s = __dp4a((int)w[i].q.z, x.z, s);
        s = __dp4a((int)w[i].q.w, x.w, s);
        acc[i][r] = fmaf(f16_to_f32(w[i].d) * dx, (float)s, acc[i][r]);
      }
    }
  }
};

/* -------- legacy 4/5-bit types: a unit is one block of 32 */

template <mlxr_dtype T>
struct LegacyTraits {
  static constexpr bool kQuantized = true;
  static constexpr bool kFive = T == MLXR_DTYPE_Q5_0 || T == MLXR_DTYPE_Q5_1;
  static constexpr bool kMin = T == MLXR_DTYPE_Q4_1 || T == MLXR_DTYPE_Q5_1; /* d*q + m */
  static constexpr int kScalePlane = kFive ? 2 : 1;
  static constexpr int kLoads = kFive ? 4 : 8;
  struct Raw {
    uint4 q;     /* nibbles */
    uint32_t hb; /* fifth bits (Q5 types) */
    uint32_t dm; /* f16 d (and f16 m << 16) */
  };

  static __device__ __forceinline__ Raw load(const MvArgs &a, int m, int64_t row, int u) {
    Raw w;
    w.q = ldw16(at(a, m, 0, row, 16 * (int64_t)u));
    w.hb = kFive ? ldw4(at(a, m, 1, row, 4 * (int64_t)u)) : 0u;
    w.dm = kMin ? ldw4(at(a, m, kScalePlane, row, 4 * (int64_t)u))
                : ldw2(at(a, m, kScalePlane, row, 2 * (int64_t)u));
    return w;
  }

  template <int NR, int R, class A>
  static __device__ __forceinline__ void accumulate(const A &act, int u, const Raw (&w)[R],
                                                    float (&acc)[R][NR]) {
    int q[R][8];
    float d[R], m[R];
#pragma unroll
    for (int i = 0; i < R; i++) {
      nibbles(w[i].q, q[i]);
      if constexpr (kFive) add_fifth_bits(w[i].hb, q[i]);
      d[i] = f16_to_f32(w[i].dm);
      m[i] = kMin ? f16_to_f32(w[i].dm >> 16) : 0.0f;
    }
    constexpr int kOffset = T == MLXR_DTYPE_Q4_0 ? 8 : T == MLXR_DTYPE_Q5_0 ? 16 : 0;
#pragma unroll
    for (int r = 0; r < NR; r++) {
      const Act32 x = load_act32(act, r, u);
      const int sx = x.s_lo + x.s_hi;
#pragma unroll
      for (int i = 0; i < R; i++) {
        const int s = dot_words<0, 8>(q[i], x.q);
        if constexpr (kMin) {
          /* sum (d q + m) dx qx = dx (d s + m sx) */
          acc[i][r] = fmaf(x.d, fmaf(d[i], (float)s, m[i] * (float)sx), acc[i][r]);
        } else {
          /* sum d (q - off) dx qx = d dx (s - off sx) */
          acc[i][r] = fmaf(d[i] * x.d, (float)(s - kOffset * sx), acc[i][r]);
        }
      }
    }
  }
};

/* -------- Q4_K / Q5_K: a unit is one sub-block of 32 (scale sc, min m from the head) */

template <mlxr_dtype T>
struct K4Traits {
  static constexpr bool kQuantized = true;
  static constexpr bool kFive = T == MLXR_DTYPE_Q5_K;
  static constexpr int kHeadPlane = kFive ? 2 : 1;
  static constexpr int kLoads = 4;
  struct Raw {
    uint4 q;     /* nibbles */
    uint4 head;  /* f16 d, f16 dmin, scales[12] of the super-block */
    uint32_t hb; /* fifth bits (Q5_K) */
  };

  static __device__ __forceinline__ Raw load(const MvArgs &a, int m, int64_t row, int u) {
    Raw w;
    w.q = ldw16(at(a, m, 0, row, 16 * (int64_t)u));
    w.hb = kFive ? ldw4(at(a, m, 1, row, 4 * (int64_t)u)) : 0u;
    w.head = ldw16(at(a, m, kHeadPlane, row, 16 * (int64_t)(u >> 3)));
    return w;
  }

  template <int NR, int R, class A>
  static __device__ __forceinline__ void accumulate(const A &act, int u, const Raw (&w)[R],
                                                    float (&acc)[R][NR]) {
    int q[R][8];
    float dsc[R], dm[R];
#pragma unroll
    for (int i = 0; i < R; i++) {
      nibbles(w[i].q, q[i]);
      if constexpr (kFive) add_fifth_bits(w[i].hb, q[i]);
      int sc, m;
      k4_scale_min(w[i].head, u & 7, &sc, &m);
      dsc[i] = f16_to_f32(w[i].head.x) * (float)sc;
      dm[i] = f16_to_f32(w[i].head.x >> 16) * (float)m;
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
      const Act32 x = load_act32(act, r, u);
      const float sx = (float)(x.s_lo + x.s_hi);
#pragma unroll
      for (int i = 0; i < R; i++) {
        /* sum (dsc q - dm) dx qx = dx (dsc s - dm sx) */
        const int s = dot_words<0, 8>(q[i], x.q);
        acc[i][r] = fmaf(x.d, fmaf(dsc[i], (float)s, -dm[i] * sx), acc[i][r]);
      }
    }
  }
};

/* -------- Q6_K: a unit is 32 elements = two 16-element sub-blocks with int8 scales */

struct Q6KTraits {
  static constexpr bool kQuantized = true;
  static constexpr int kLoads = 4;
  struct Raw {
    uint4 q;     /* low nibbles */
    uint2 hp;    /* high pairs */
    uint32_t sc; /* int8 scales of sub-blocks 2j (low byte) and 2j+1 */
    uint32_t d;  /* f16 super-block scale */
  };

  static __device__ __forceinline__ Raw load(const MvArgs &a, int m, int64_t row, int u) {
    Raw w;
    w.q = ldw16(at(a, m, 0, row, 16 * (int64_t)u));
    w.hp = ldw8(at(a, m, 1, row, 8 * (int64_t)u));
    w.sc = ldw2(at(a, m, 2, row, 16 * (int64_t)(u >> 3) + 2 * (u & 7)));
    w.d = ldw2(at(a, m, 3, row, 2 * (int64_t)(u >> 3)));
    return w;
  }

  template <int NR, int R, class A>
  static __device__ __forceinline__ void accumulate(const A &act, int u, const Raw (&w)[R],
                                                    float (&acc)[R][NR]) {
    int q[R][8], sa[R], sb[R];
    float d[R];
#pragma unroll
    for (int i = 0; i < R; i++) {
      nibbles(w[i].q, q[i]);
      add_high_pairs(w[i].hp, q[i]);
      sa[i] = (int)(w[i].sc << 24) >> 24;
      sb[i] = (int)(w[i].sc << 16) >> 24;
      d[i] = f16_to_f32(w[i].d);
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
      const Act32 x = load_act32(act, r, u);
#pragma unroll
      for (int i = 0; i < R; i++) {
        /* sum d sc (q - 32) dx qx over each half = d dx (sa (s_lo - 32 sx_lo) + sb (...)) */
        const int lo = dot_words<0, 4>(q[i], x.q) - 32 * x.s_lo;
        const int hi = dot_words<4, 8>(q[i], x.q) - 32 * x.s_hi;
        acc[i][r] = fmaf(d[i] * x.d, (float)(sa[i] * lo + sb[i] * hi), acc[i][r]);
      }
    }
  }
};

/* ---------------------------------------------------------------- the main kernel */

__host__ __device__ constexpr int rows_per_group(int nr) { return nr <= 2 ? 2 : 4; }

/* Units per row loaded before use: the trait's budget split over 2 rows; with 4 rows (3+
 * activation rows: registers go to the sums) one each. */
__host__ __device__ constexpr int units_in_flight(int loads, int r) { return r == 2 ? loads / 2 : 1; }

/* log2 of the power of two >= v (v <= 32) */
__host__ __device__ constexpr int log2_ceil(int v) { return v <= 1 ? 0 : 1 + log2_ceil((v + 1) / 2); }

/* The scale of activation row r of a normed product, 1 / sqrt(mean(x^2) + eps), from the blocks'
 * sums of squares (summed in double, as rms_norm does), in every lane of the calling warp: each
 * warp reads the row's n_in / 32 sums itself (from L2: a few hundred bytes), so the CTA needs no
 * barrier for it. */
__device__ __forceinline__ float norm_scale(const MvArgs &a, int r) {
  const int nb = (int)(a.n_in / 32);
  double s = 0.0;
  for (int b = (int)(threadIdx.x & 31); b < nb; b += 32) s += (double)a.ss[(int64_t)r * nb + b];
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  return (float)(1.0 / sqrt(s / (double)a.n_in + (double)a.eps));
}

/* Sum acc over the k threads of the row group and store (or add to) y (+ bias) of the CTA's
 * matrix. Every thread of the CTA must call it (it may synchronize the CTA). */
template <int NR, int R>
__device__ __forceinline__ void reduce_store(const MvArgs &a, const float (&acc)[R][NR],
                                             int64_t row0) {
  constexpr int V = R * NR;          /* sums per thread */
  constexpr int S = log2_ceil(V);    /* halving steps */
  constexpr int VP = 1 << S;         /* V padded to a power of two (<= 32) */
  static_assert(VP <= 32, "one warp reduces at most 32 sums");
  const int lane = threadIdx.x & 31;
  float v[VP];
#pragma unroll
  for (int j = 0; j < VP; j++) v[j] = j < V ? acc[j / NR][j % NR] : 0.0f;

  /* Step s exchanges half of the remaining sums with lane ^ (16 >> s): the lane whose bit is set
   * keeps the upper half. After S steps, lane l holds (a partial of) sum number l >> (5 - S)... */
#pragma unroll
  for (int s = 0; s < S; s++) {
    const int half = VP >> (s + 1), off = 16 >> s;
    const bool upper = (lane & off) != 0;
#pragma unroll
    for (int i = 0; i < VP / 2; i++) { /* constant trip count: v stays in registers */
      if (i < half) {
        const float send = upper ? v[i] : v[i + half];
        const float keep = upper ? v[i + half] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, off);
      }
    }
  }
  /* ... summed over the lanes that differ in the low 5 - S bits by a plain butterfly. */
  float sum = v[0];
#pragma unroll
  for (int off = 16 >> S; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  const int j = lane >> (5 - S);
  const bool holder = (lane & ((32 >> S) - 1)) == 0; /* one lane per sum */
  if (a.norm) { /* uniform: every lane takes part in the warp's reductions */
    float scale = 1.0f;
#pragma unroll
    for (int r = 0; r < NR; r++) {
      const float sr = norm_scale(a, r);
      if (j % NR == r) scale = sr;
    }
    sum *= scale; /* a partial sum scales as well: the parts are added below */
  }

  if (a.tk > 32) { /* uniform over the CTA */
    __shared__ float part[kThreads / 32][32];
    const int warp = threadIdx.x >> 5, per_group = a.tk >> 5;
    if (holder) part[warp][j] = sum;
    __syncthreads();
    const bool leader = warp % per_group == 0 && holder;
    if (leader) {
      for (int k = 1; k < per_group; k++) sum += part[warp + k][j];
    }
    __syncthreads(); /* part is free again for the next pass */
    if (!leader) return;
  } else if (!holder) {
    return;
  }
  if (j < V) {
    const MvMat &w = a.mat[cta_mat(a)];
    const int64_t o = row0 + j / NR;
    const int r = j % NR;
    if (o < w.n_out) store_out(a, w.y, r * w.n_out + o, w.bias ? sum + w.bias[o] : sum);
  }
}

/* ---------------------------------------------------------------- activation quantization */

/* The 32 floats at x (16-byte aligned when vec) into v. kLdg: through the read-only path (only
 * for memory no kernel of the same launch writes). */
template <bool kLdg>
__device__ __forceinline__ void load32(const float *x, bool vec, float (&v)[32]) {
  if (vec) {
#pragma unroll
    for (int i = 0; i < 8; i++) {
      const float4 t = kLdg ? __ldg((const float4 *)x + i) : ((const float4 *)x)[i];
      v[4 * i] = t.x, v[4 * i + 1] = t.y, v[4 * i + 2] = t.z, v[4 * i + 3] = t.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 32; i++) v[i] = kLdg ? __ldg(x + i) : x[i];
  }
}

/* 32 activations v to int8 q[32] (16-byte aligned) and aux = {d, s_lo | s_hi << 16}: d = amax /
 * 127, q = round-to-nearest-even(v / d) (by adding 1.5 * 2^23 in a fused multiply-add: the low
 * byte of the sum's bits is q), |q| <= 127. q and aux may point to global or shared memory. */
__device__ __forceinline__ void quantize_values(const float (&v)[32], int8_t *q, uint2 *aux) {
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(v[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint32_t w[8];
#pragma unroll
  for (int k = 0; k < 8; k++) {
    uint32_t b[4];
#pragma unroll
    for (int e = 0; e < 4; e++) b[e] = __float_as_uint(fmaf(v[4 * k + e], id, 12582912.0f));
    w[k] = __byte_perm(__byte_perm(b[0], b[1], 0x0040), __byte_perm(b[2], b[3], 0x0040), 0x5410);
  }
  int s_lo = 0, s_hi = 0;
#pragma unroll
  for (int k = 0; k < 4; k++) {
    s_lo = __dp4a((int)w[k], 0x01010101, s_lo);
    s_hi = __dp4a((int)w[4 + k], 0x01010101, s_hi);
  }
  ((int4 *)q)[0] = make_int4((int)w[0], (int)w[1], (int)w[2], (int)w[3]);
  ((int4 *)q)[1] = make_int4((int)w[4], (int)w[5], (int)w[6], (int)w[7]);
  *aux = make_uint2(__float_as_uint(d), ((uint32_t)s_lo & 0xffffu) | (uint32_t)s_hi << 16);
}

/* One block of 32 activations x (any alignment unless vec): quantize_values of them. */
__device__ __forceinline__ void quantize_block32(const float *x, bool vec, int8_t *q, uint2 *aux) {
  float v[32];
  load32<true>(x, vec, v);
  quantize_values(v, q, aux);
}

/* What quantize_kernel quantizes (mlxr_cuda_mv_in): x; rms_norm(x) * norm without the 1 / rms,
 * which the product applies (x * norm, and each block's sum of squares of x into ss); or
 * silu(x) * up. */
enum QuantMode { kQuantPlain, kQuantNorm, kQuantSwiglu };

/* Blocks [0, n_blocks) of the activations (rows of n_in back to back, n_in % 32 == 0) into q /
 * aux (/ ss): one thread each. The activations were written by the kernel before: plain loads,
 * after the PDL wait. */
template <QuantMode kMode>
__global__ void quantize_kernel(const float *x, const float *aux_in, int64_t n_in, int64_t n_blocks,
                                bool vec, int8_t *q, uint2 *aux, float *ss) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= n_blocks) return;
  float v[32];
  load32<false>(x + 32 * b, vec, v);
  if constexpr (kMode == kQuantNorm) {
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 32; i++) s = fmaf(v[i], v[i], s);
    ss[b] = s;
    float g[32];
    load32<true>(aux_in + (32 * b) % n_in, vec, g); /* the norm weight: constant */
#pragma unroll
    for (int i = 0; i < 32; i++) v[i] *= g[i];
  } else if constexpr (kMode == kQuantSwiglu) {
    float u[32];
    load32<false>(aux_in + 32 * b, vec, u);
#pragma unroll
    for (int i = 0; i < 32; i++) v[i] = mlxr_silu_mul(v[i], u[i]);
  }
  quantize_values(v, q + 32 * b, aux + b);
}


/* ---------------------------------------------------------------- the main kernel */

/* Weight rows of the row group starting at row0 (rows past the end read the last row and store
 * nothing). */
template <int R>
__device__ __forceinline__ void group_rows(int64_t n_out, int64_t row0, int64_t (&rows)[R]) {
#pragma unroll
  for (int i = 0; i < R; i++) rows[i] = row0 + i < n_out ? row0 + i : n_out - 1;
}

/* Units u0, u0 + tk, ..., u0 + (U-1) tk of each row (those inside the row). */
template <class Tr, int U, int R>
__device__ __forceinline__ void load_batch(const MvArgs &a, int m, const int64_t (&rows)[R], int u0,
                                           typename Tr::Raw (&w)[U][R]) {
#pragma unroll
  for (int s = 0; s < U; s++) {
    const int u = u0 + s * a.tk;
    if (u < a.n_units) {
#pragma unroll
      for (int i = 0; i < R; i++) w[s][i] = Tr::load(a, m, rows[i], u);
    }
  }
}

template <class Tr, int NR, int U, int R, class A>
__device__ __forceinline__ void compute_batch(const MvArgs &a, const A &act, int u0,
                                              const typename Tr::Raw (&w)[U][R],
                                              float (&acc)[R][NR]) {
#pragma unroll
  for (int s = 0; s < U; s++) {
    const int u = u0 + s * a.tk;
    if (u < a.n_units) Tr::template accumulate<NR, R>(act, u, w[s], acc);
  }
}

/* kFused: quantize the activations into shared memory first (quantized types, NR <= 2). */
template <class Tr, int NR, bool kFused>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm)
    matvec_kernel(const __grid_constant__ MvArgs a) {
  constexpr int R = rows_per_group(NR);
  constexpr int U = units_in_flight(Tr::kLoads, R); /* units per row in flight */
  const int m = cta_mat(a);
  int64_t n_out;
  unsigned cta0;
  cta_rows(a, &n_out, &cta0);
  const int tk = a.tk;
  const int kt = threadIdx.x & (tk - 1);
  const int group = threadIdx.x / tk;
  const int64_t rows_per_pass = (int64_t)R * (kThreads / tk);
  /* the CTA's first row in its matrix */
  int64_t pass_row0 = (int64_t)(blockIdx.x - cta0) * a.passes * rows_per_pass;

  /* The first weight loads go out before anything else: before the wait for the previous kernel
   * (weights are constant; see the PDL notes in cuda_kernels.h) and, fused, before the
   * quantization, to overlap them. */
  typename Tr::Raw w[U][R];
  int64_t rows[R];
  group_rows(n_out, pass_row0 + group * R, rows);
  load_batch<Tr, U, R>(a, m, rows, kt, w);
  mlxr_pdl_trigger();
  mlxr_pdl_wait();

  Act<kFused> act = {a.x, a.xq, a.aux, a.n_in};
  if constexpr (kFused) {
    extern __shared__ int4 smem[]; /* q [NR][n_in], then aux [NR][n_in / 32] */
    int8_t *q = (int8_t *)smem;
    uint2 *aux = (uint2 *)(q + NR * a.n_in);
    const int n_blocks = (int)(NR * a.n_in / 32);
    for (int b = threadIdx.x; b < n_blocks; b += kThreads) {
      quantize_block32(a.x + 32 * (int64_t)b, a.x_vec, q + 32 * b, aux + b);
    }
    __syncthreads();
    act.q = q;
    act.aux = aux;
  }

  for (int pass = 0; pass < a.passes && pass_row0 < n_out; pass++, pass_row0 += rows_per_pass) {
    if (pass > 0) group_rows(n_out, pass_row0 + group * R, rows);
    float acc[R][NR];
#pragma unroll
    for (int i = 0; i < R; i++) {
#pragma unroll
      for (int r = 0; r < NR; r++) acc[i][r] = 0.0f;
    }
    for (int u0 = kt; u0 < a.n_units; u0 += U * tk) {
      /* all loads of a batch go out before its arithmetic */
      if (pass > 0 || u0 != kt) load_batch<Tr, U, R>(a, m, rows, u0, w);
      compute_batch<Tr, NR, U, R>(a, act, u0, w, acc);
    }
    reduce_store<NR, R>(a, acc, pass_row0 + group * R);
  }
}

/* ---------------------------------------------------------------- slow float path */

template <mlxr_dtype T>
__device__ __forceinline__ float load_elem(const void *w, int64_t i) {
  if constexpr (T == MLXR_DTYPE_F32) return __ldg((const float *)w + i);
  if constexpr (T == MLXR_DTYPE_F16) return __half2float(__ldg((const __half *)w + i));
  return __uint_as_float((uint32_t)__ldg((const unsigned short *)w + i) << 16); /* BF16 */
}

/* One warp per output row, element by element: any n_in, any alignment. kSlowWarps rows per CTA,
 * the CTAs split over the matrices as in the main kernel (plane[0] is the matrix). */
template <mlxr_dtype T>
__global__ void matvec_float_slow(const __grid_constant__ MvArgs a, int n_rows) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait();
  const MvMat &mat = a.mat[cta_mat(a)];
  const int64_t o = (int64_t)(blockIdx.x - mat.cta0) * kSlowWarps + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  const int64_t n_in = a.n_in, n_out = mat.n_out;
  const float *x = a.x;
  if (o >= n_out) return; /* the whole warp */
  float acc[MLXR_CUDA_MATVEC_MAX_ROWS] = {};
  for (int64_t k = lane; k < n_in; k += 32) {
    const float wv = load_elem<T>(mat.plane[0], o * n_in + k);
#pragma unroll
    for (int r = 0; r < MLXR_CUDA_MATVEC_MAX_ROWS; r++) {
      if (r < n_rows) acc[r] = fmaf(wv, __ldg(x + r * n_in + k), acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < MLXR_CUDA_MATVEC_MAX_ROWS; r++) {
    if (r >= n_rows) break;
    float s = acc[r];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) store_out(a, mat.y, r * n_out + o, mat.bias ? s + mat.bias[o] : s);
  }
}

/* ---------------------------------------------------------------- host side */

/* Block size, GGUF block bytes and device planes (bytes per block) of each type: weights.cu's
 * table, restated for the plane offsets. */
struct Layout {
  int block, n_planes;
  int plane_bytes[4];
};

bool layout_of(mlxr_dtype t, Layout *l) {
  switch (t) {
    case MLXR_DTYPE_F32: *l = {1, 1, {4, 0, 0, 0}}; return true;
    case MLXR_DTYPE_F16: *l = {1, 1, {2, 0, 0, 0}}; return true;
    case MLXR_DTYPE_BF16: *l = {1, 1, {2, 0, 0, 0}}; return true;
    case MLXR_DTYPE_Q4_0: *l = {32, 2, {16, 2, 0, 0}}; return true;
    case MLXR_DTYPE_Q4_1: *l = {32, 2, {16, 4, 0, 0}}; return true;
    case MLXR_DTYPE_Q5_0: *l = {32, 3, {16, 4, 2, 0}}; return true;
    case MLXR_DTYPE_Q5_1: *l = {32, 3, {16, 4, 4, 0}}; return true;
    case MLXR_DTYPE_Q8_0: *l = {32, 2, {32, 2, 0, 0}}; return true;
    case MLXR_DTYPE_Q4_K: *l = {256, 2, {128, 16, 0, 0}}; return true;
    case MLXR_DTYPE_Q5_K: *l = {256, 3, {128, 32, 16, 0}}; return true;
    case MLXR_DTYPE_Q6_K: *l = {256, 4, {128, 64, 16, 2}}; return true;
    default: return false;
  }
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* Shared bytes of n_rows quantized activation rows (q, then aux). */
size_t fused_smem_bytes(int64_t n_rows, int64_t n_in) {
  return (size_t)(n_rows * n_in) + (size_t)(n_rows * (n_in / 32)) * sizeof(uint2);
}

/* CTAs of a launch whose CTAs each cover rows_per_cta rows of one matrix. */
int64_t grid_ctas(const MvArgs &a, int n_mats, int64_t rows_per_cta) {
  int64_t n = 0;
  for (int m = 0; m < n_mats; m++) n += ceil_div(a.mat[m].n_out, rows_per_cta);
  return n;
}

/* Number the CTAs: matrix m gets ceil(n_out / rows_per_cta) CTAs from mat[m].cta0 on; unused
 * entries get UINT32_MAX so that cta_mat never picks them. Returns the grid size, or -1 if it is
 * too big. */
int64_t number_ctas(MvArgs *a, int n_mats, int64_t rows_per_cta) {
  int64_t n = 0;
  for (int m = 0; m < kMaxMats; m++) {
    if (m >= n_mats) {
      a->mat[m].cta0 = UINT32_MAX;
      continue;
    }
    a->mat[m].cta0 = (unsigned)n;
    n += ceil_div(a->mat[m].n_out, rows_per_cta);
    if (n > INT32_MAX) return -1;
  }
  return n;
}

/* tk and passes are chosen for the whole grid (all matrices together), so a small matrix next to
 * a big one keeps narrow row groups: what matters is that the launch fills the GPU. */
template <class Tr, int NR>
cudaError_t launch_main(MvArgs a, int n_mats, cudaStream_t stream, bool pdl) {
  constexpr int64_t R = rows_per_group(NR);
  int tk = 32;
  while (tk < kThreads && a.n_units > 4 * tk) tk *= 2;
  while (tk < kThreads && grid_ctas(a, n_mats, R * (kThreads / tk)) < kMinCtas) tk *= 2;
  const int64_t rows_per_pass = R * (kThreads / tk);
  /* fused: each CTA quantizes all of x (~4 instructions per element and row); a CTA should
   * cover 8 weight rows per activation row so that this stays under ~1 instruction per weight
   * byte, without making the grid so coarse that SMs get uneven shares. */
  int passes = 1;
  while (a.fused && passes < kMaxPasses && rows_per_pass * passes < kFusedRowsPerCta * NR &&
         grid_ctas(a, n_mats, rows_per_pass * passes * 2) >= kMinCtas) {
    passes *= 2;
  }
  a.tk = tk;
  a.passes = passes;
  const int64_t ctas = number_ctas(&a, n_mats, rows_per_pass * passes);
  if (ctas < 0) return cudaErrorInvalidValue;
  if constexpr (Tr::kQuantized && NR <= kMaxFusedRows) {
    if (a.fused) {
      return mlxr_cuda_launch(matvec_kernel<Tr, NR, true>, dim3((unsigned)ctas), dim3(kThreads),
                              fused_smem_bytes(NR, a.n_in), stream, pdl, a);
    }
  }
  return mlxr_cuda_launch(matvec_kernel<Tr, NR, false>, dim3((unsigned)ctas), dim3(kThreads), 0, stream, pdl, a);
}

template <class Tr>
cudaError_t launch_rows(const MvArgs &a, int n_mats, int n_rows, cudaStream_t stream, bool pdl) {
  switch (n_rows) {
    case 1: return launch_main<Tr, 1>(a, n_mats, stream, pdl);
    case 2: return launch_main<Tr, 2>(a, n_mats, stream, pdl);
    case 3: return launch_main<Tr, 3>(a, n_mats, stream, pdl);
    case 4: return launch_main<Tr, 4>(a, n_mats, stream, pdl);
    case 5: return launch_main<Tr, 5>(a, n_mats, stream, pdl);
    case 6: return launch_main<Tr, 6>(a, n_mats, stream, pdl);
    case 7: return launch_main<Tr, 7>(a, n_mats, stream, pdl);
    case 8: return launch_main<Tr, 8>(a, n_mats, stream, pdl);
    default: return cudaErrorInvalidValue;
  }
}

template <mlxr_dtype T>
cudaError_t launch_slow(MvArgs a, int n_mats, int n_rows, cudaStream_t stream, bool pdl) {
  const int64_t ctas = number_ctas(&a, n_mats, kSlowWarps);
  if (ctas < 0) return cudaErrorInvalidValue;
  return mlxr_cuda_launch(matvec_float_slow<T>, dim3((unsigned)ctas), dim3(32 * kSlowWarps), 0, stream, pdl, a,
                          n_rows);
}

/* Scratch of the quantized activations: q [n_rows][n_in], then aux [n_rows][n_in / 32] and ss
 * [n_rows][n_in / 32], each from a 256-byte boundary. */
size_t aux_offset(int64_t n_in, int64_t n_rows) { return align256((size_t)(n_rows * n_in)); }
size_t ss_offset(int64_t n_in, int64_t n_rows) {
  return aux_offset(n_in, n_rows) + align256((size_t)(n_rows * (n_in / 32)) * sizeof(uint2));
}

} /* namespace */

size_t mlxr_cuda_matvec_scratch_bytes(mlxr_dtype t, int64_t n_in, int64_t n_rows) {
  Layout l;
  if (!layout_of(t, &l) || l.block == 1 || n_in < 1 || n_rows < 1) return 0;
  return ss_offset(n_in, n_rows) + (size_t)(n_rows * (n_in / 32)) * sizeof(float);
}

bool mlxr_cuda_matvec_folds(mlxr_dtype t) {
  Layout l;
  return layout_of(t, &l) && l.block > 1;
}

cudaError_t mlxr_cuda_matvec(mlxr_dtype t, const void *w, int64_t n_in, int64_t n_out,
                             const float *x, int64_t n_rows, const float *bias, float *y,
                             void *scratch, cudaStream_t stream) {
  const mlxr_cuda_mv_in in = {x, nullptr, 0.0f, nullptr};
  return mlxr_cuda_matvec_multi(t, 1, &w, n_in, &n_out, &in, n_rows, &bias, &y, false, scratch,
                                stream);
}

cudaError_t mlxr_cuda_matvec_multi(mlxr_dtype t, int n_mats, const void *const *ws, int64_t n_in,
                                   const int64_t *n_outs, const mlxr_cuda_mv_in *in, int64_t n_rows,
                                   const float *const *biases, float *const *ys, bool accumulate,
                                   void *scratch, cudaStream_t stream, bool pdl) {
  Layout l;
  if (!layout_of(t, &l) || n_mats < 1 || n_mats > kMaxMats || !ws || !n_outs || !in || !in->x || !ys) {
    return cudaErrorInvalidValue;
  }
  const float *x = in->x;
  const bool fold = in->norm || in->up;
  if ((in->norm && in->up) || (fold && l.block == 1)) return cudaErrorInvalidValue;
  if (n_in < 1 || n_in % l.block != 0 || n_in > ((int64_t)1 << 30)) return cudaErrorInvalidValue;
  if (n_rows < 1 || n_rows > MLXR_CUDA_MATVEC_MAX_ROWS) return cudaErrorInvalidValue;
  const int nr = (int)n_rows;

  MvArgs a = {};
  bool w_aligned = true;
  for (int p = 0; p < l.n_planes; p++) a.stride[p] = n_in / l.block * l.plane_bytes[p];
  for (int m = 0; m < n_mats; m++) {
    const int64_t n_out = n_outs[m];
    if (!ws[m] || !ys[m] || n_out < 1 || n_out > ((int64_t)1 << 40)) return cudaErrorInvalidValue;
    int64_t offset = 0;
    for (int p = 0; p < l.n_planes; p++) {
      a.mat[m].plane[p] = (const uint8_t *)ws[m] + offset;
      offset += n_out * a.stride[p];
    }
    a.mat[m].n_out = n_out;
    a.mat[m].bias = biases ? biases[m] : nullptr;
    a.mat[m].y = ys[m];
    w_aligned = w_aligned && aligned16(ws[m]);
  }
  a.n_in = n_in;
  a.accumulate = accumulate;
  a.x = x;
  a.passes = 1;

  if (l.block == 1) {
    const int elems = t == MLXR_DTYPE_F32 ? 4 : 8; /* per 16-byte unit */
    const bool fast = n_in % elems == 0 && w_aligned && aligned16(x);
    a.n_units = (int)(n_in / elems);
    switch (t) {
      case MLXR_DTYPE_F32:
        return fast ? launch_rows<FloatTraits<MLXR_DTYPE_F32>>(a, n_mats, nr, stream, pdl)
                    : launch_slow<MLXR_DTYPE_F32>(a, n_mats, nr, stream, pdl);
      case MLXR_DTYPE_F16:
        return fast ? launch_rows<FloatTraits<MLXR_DTYPE_F16>>(a, n_mats, nr, stream, pdl)
                    : launch_slow<MLXR_DTYPE_F16>(a, n_mats, nr, stream, pdl);
      default:
        return fast ? launch_rows<FloatTraits<MLXR_DTYPE_BF16>>(a, n_mats, nr, stream, pdl)
                    : launch_slow<MLXR_DTYPE_BF16>(a, n_mats, nr, stream, pdl);
    }
  }

  /* quantized: activations to int8 first, once for all matrices: inside the product (few rows,
   * every CTA) or by its own kernel */
  if (!w_aligned) return cudaErrorInvalidValue;
  const float *aux_in = in->norm ? in->norm : in->up; /* the transform's second operand */
  a.x_vec = aligned16(x) && (!aux_in || aligned16(aux_in));
  a.fused = !fold && nr <= kMaxFusedRows && fused_smem_bytes(nr, n_in) <= kMaxFusedSmem;
  a.n_units = (int)(n_in / (t == MLXR_DTYPE_Q8_0 ? 16 : 32));
  a.norm = in->norm != nullptr;
  a.eps = in->eps;
  if (!a.fused) {
    if (!scratch || !aligned16(scratch)) return cudaErrorInvalidValue;
    int8_t *q = (int8_t *)scratch;
    uint2 *aux = (uint2 *)((uint8_t *)scratch + aux_offset(n_in, n_rows));
    float *ss = (float *)((uint8_t *)scratch + ss_offset(n_in, n_rows));
    const int64_t n_blocks = n_rows * n_in / 32;
    const dim3 grid((unsigned)ceil_div(n_blocks, kQuantThreads)), block(kQuantThreads);
    const cudaError_t e =
        in->norm ? mlxr_cuda_launch(quantize_kernel<kQuantNorm>, grid, block, 0, stream, pdl, x, aux_in, n_in,
                                    n_blocks, a.x_vec, q, aux, ss)
        : in->up ? mlxr_cuda_launch(quantize_kernel<kQuantSwiglu>, grid, block, 0, stream, pdl, x, aux_in, n_in,
                                    n_blocks, a.x_vec, q, aux, ss)
                 : mlxr_cuda_launch(quantize_kernel<kQuantPlain>, grid, block, 0, stream, pdl, x, aux_in, n_in,
                                    n_blocks, a.x_vec, q, aux, ss);
    if (e != cudaSuccess) return e;
    a.xq = q;
    a.aux = aux;
    a.ss = ss;
  }
  switch (t) {
    case MLXR_DTYPE_Q4_0: return launch_rows<LegacyTraits<MLXR_DTYPE_Q4_0>>(a, n_mats, nr, stream, pdl);
    case MLXR_DTYPE_Q4_1: return launch_rows<LegacyTraits<MLXR_DTYPE_Q4_1>>(a, n_mats, nr, stream, pdl);
    case MLXR_DTYPE_Q5_0: return launch_rows<LegacyTraits<MLXR_DTYPE_Q5_0>>(a, n_mats, nr, stream, pdl);
    case MLXR_DTYPE_Q5_1: return launch_rows<LegacyTraits<MLXR_DTYPE_Q5_1>>(a, n_mats, nr, stream, pdl);
    case MLXR_DTYPE_Q8_0: return launch_rows<Q8_0Traits>(a, n_mats, nr, stream, pdl);
    case MLXR_DTYPE_Q4_K: return launch_rows<K4Traits<MLXR_DTYPE_Q4_K>>(a, n_mats, nr, stream, pdl);
    case MLXR_DTYPE_Q5_K: return launch_rows<K4Traits<MLXR_DTYPE_Q5_K>>(a, n_mats, nr, stream, pdl);
    case MLXR_DTYPE_Q6_K: return launch_rows<Q6KTraits>(a, n_mats, nr, stream, pdl);
    default: return cudaErrorInvalidValue;
  }
}
