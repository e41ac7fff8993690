/*
 * weights.cu: the device layouts of weight matrices, and the kernels that read them row by row:
 * conversion from GGUF blocks at upload (mlxr_cuda_weight_convert), embedding lookup
 * (mlxr_cuda_get_rows, float32 out) and dequantization of row ranges to f16/bf16 for the cuBLAS
 * prompt path (mlxr_cuda_dequant_rows). matvec.cu reads the same layouts for decode; its per-type
 * traits must agree with the table below.
 *
 * Device layout. F32, F16 and BF16 matrices stay exactly as in the file, [n_out][n_in] row-major,
 * so cuBLAS can read them directly. A quantized matrix is split into planes: plane p holds, for
 * every row, that row's blocks' part p, [n_out][blocks per row][plane bytes per block]. Planes
 * lie back to back (plane p starts n_out * (row bytes of planes 0..p-1) from the base) and their
 * bytes per block add up to GGUF's block size, so the device copy has the file's size. Planes are
 * ordered by decreasing alignment, so with a 16-byte aligned base every row of plane 0 is 16-byte
 * aligned (16 or 32 bytes per block) and every field of the others is naturally aligned.
 *
 *   type  block  plane 0               plane 1                 plane 2              plane 3
 *   Q4_0   32    nibbles  16 B         f16 d                   -                    -
 *   Q4_1   32    nibbles  16 B         f16 d, f16 m            -                    -
 *   Q5_0   32    nibbles  16 B         high bits u32           f16 d                -
 *   Q5_1   32    nibbles  16 B         high bits u32           f16 d, f16 m         -
 *   Q8_0   32    i8 qs[32]  32 B       f16 d                   -                    -
 *   Q4_K  256    8 x nibbles  128 B    head 16 B               -                    -
 *   Q5_K  256    8 x nibbles  128 B    8 x high bits u32       head 16 B            -
 *   Q6_K  256    8 x nibbles  128 B    8 x high pairs 8 B      i8 scales[16]        f16 d
 *
 * A "unit" is 32 consecutive elements e = 0..31 of a row: a legacy block, or sub-block j = 0..7
 * (elements 32j..32j+31) of a K super-block. Per unit:
 *   nibbles (16 B): byte i holds the low 4 bits of the code of element i in its low nibble and of
 *     element 16 + i in its high nibble (Q4_0's own order). So 32-bit word k of the chunk holds,
 *     masked with 0x0F0F0F0F, the codes of elements 4k..4k+3 (one per byte) and, shifted right by
 *     4, those of elements 16+4k..16+4k+3: ready for int8 dot products against activations.
 *   high bits (Q5 types, u32): bit 8*(e%4) + e/4 is bit 4 of element e's code, so that
 *     (hb >> g) & 0x01010101 holds the fifth bits of elements 4g..4g+3 (g = 0..7), byte-aligned
 *     with the nibbles above.
 *   high pairs (Q6_K, two u32): word e/16, bits 8*(e%4) + 2*((e/4)%4) and the next one, are bits
 *     4-5 of element e's code.
 *   head (Q4_K, Q5_K): GGUF's first 16 bytes, verbatim: f16 d, f16 dmin, u8 scales[12] (the
 *     6-bit scales and mins of the eight sub-blocks packed as described in quants_impl.h).
 * Q6_K's scales and d are GGUF's, verbatim (sub-block s of 16 elements: scales[s]; unit j holds
 * sub-blocks 2j (its elements 0..15) and 2j+1 (16..31)).
 *
 * Codes and values are GGUF's (quants_impl.h): Q4_0 d*(q-8), Q4_1 d*q+m, Q5_0 d*(q-16),
 * Q5_1 d*q+m, Q8_0 d*q, Q4_K/Q5_K (d*sc)*q - dmin*m, Q6_K (d*scale)*(q-32). Decoding rounds
 * exactly as the scalar references do (quants_ref.c, quants_ref_k.c: one product, then one add,
 * each rounded, no fused multiply-add), so dequantized values are bit-identical to to_float.
 *
 * Kernels. Conversion: one thread per (row, unit) builds the unit's planes from the GGUF block in
 * the staging buffer (byte loads: upload time only). get_rows / dequant_rows: one thread per
 * (row, 8 elements) decodes them from the device layout and writes them with 16-byte stores;
 * grid x over a row's 8-element groups, grid y over rows. Everything is enqueued on the caller's
 * stream; nothing allocates or synchronizes.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "core/kernels/cuda/cuda_kernels.h"

namespace {

/* ---------------------------------------------------------------- layout */

constexpr int kMaxPlanes = 4;

struct TypeLayout {
  int block;                   /* elements per block (1: plain float types) */
  int type_size;               /* GGUF bytes per block */
  int n_planes;
  int plane_bytes[kMaxPlanes]; /* bytes per block in each plane (they add up to type_size) */
};

/* The table at the top of the file; false for a type without a device layout. */
bool type_layout(mlxr_dtype t, TypeLayout *l) {
  switch (t) {
    case MLXR_DTYPE_F32: *l = {1, 4, 1, {4, 0, 0, 0}}; return true;
    case MLXR_DTYPE_F16: *l = {1, 2, 1, {2, 0, 0, 0}}; return true;
    case MLXR_DTYPE_BF16: *l = {1, 2, 1, {2, 0, 0, 0}}; return true;
    case MLXR_DTYPE_Q4_0: *l = {32, 18, 2, {16, 2, 0, 0}}; return true;
    case MLXR_DTYPE_Q4_1: *l = {32, 20, 2, {16, 4, 0, 0}}; return true;
    case MLXR_DTYPE_Q5_0: *l = {32, 22, 3, {16, 4, 2, 0}}; return true;
    case MLXR_DTYPE_Q5_1: *l = {32, 24, 3, {16, 4, 4, 0}}; return true;
    case MLXR_DTYPE_Q8_0: *l = {32, 34, 2, {32, 2, 0, 0}}; return true;
    case MLXR_DTYPE_Q4_K: *l = {256, 144, 2, {128, 16, 0, 0}}; return true;
    case MLXR_DTYPE_Q5_K: *l = {256, 176, 3, {128, 32, 16, 0}}; return true;
    case MLXR_DTYPE_Q6_K: *l = {256, 210, 4, {128, 64, 16, 2}}; return true;
    default: return false;
  }
}

/* One matrix's planes as the kernels see them. */
struct Planes {
  uint8_t *base[kMaxPlanes];  /* row 0 of plane p */
  int64_t stride[kMaxPlanes]; /* bytes per row of plane p */
};

/* Planes of an [n_out][n_in] matrix at w (n_in a multiple of the block size). */
Planes planes_of(const TypeLayout &l, const void *w, int64_t n_in, int64_t n_out) {
  Planes p = {};
  const int64_t blocks = n_in / l.block;
  int64_t offset = 0;
  for (int i = 0; i < l.n_planes; i++) {
    p.base[i] = (uint8_t *)w + offset;
    p.stride[i] = blocks * l.plane_bytes[i];
    offset += n_out * p.stride[i];
  }
  return p;
}

/* Arguments every launcher checks: a known type, a positive row length that is a whole number
 * of blocks and small enough for 32-bit element indices within a row, a positive row count. */
bool shape_ok(mlxr_dtype t, int64_t n_in, int64_t n_out, TypeLayout *l) {
  if (!type_layout(t, l)) return false;
  if (n_in < 1 || n_out < 1 || n_in % l->block != 0) return false;
  if (n_in > ((int64_t)1 << 30) || n_out > ((int64_t)1 << 40)) return false;
  return true;
}

bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* ---------------------------------------------------------------- small device helpers */

__device__ __forceinline__ float f16_to_f32(uint32_t bits) {
  return __half2float(__ushort_as_half((unsigned short)(bits & 0xffffu)));
}

__device__ __forceinline__ float bf16_to_f32(uint32_t bits) { return __uint_as_float(bits << 16); }

__device__ __forceinline__ uint32_t load_u32le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

__device__ __forceinline__ uint32_t load_u16le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

__device__ __forceinline__ void copy_bytes(uint8_t *dst, const uint8_t *src, int n) {
  for (int i = 0; i < n; i++) dst[i] = src[i];
}

/* The 6-bit scale and min of sub-block j (0..7) from a K head's packed scales, held as the
 * little-endian words s0 = scales[0..3], s1 = scales[4..7], s2 = scales[8..11]
 * (mlxr_quant_scale_min_k4 on 32-bit words). */
__device__ __forceinline__ void k4_scale_min(uint32_t s0, uint32_t s1, uint32_t s2, int j, int *sc,
                                             int *m) {
  if (j < 4) {
    const int b = 8 * j;
    *sc = (int)((s0 >> b) & 63u);
    *m = (int)((s1 >> b) & 63u);
  } else {
    const int b = 8 * (j - 4);
    *sc = (int)(((s2 >> b) & 15u) | ((s0 >> (b + 6)) & 3u) << 4);
    *m = (int)(((s2 >> (b + 4)) & 15u) | ((s1 >> (b + 6)) & 3u) << 4);
  }
}

/* ---------------------------------------------------------------- conversion (GGUF -> device) */

/* The unsigned code of element e (0..31) of unit j of the GGUF block at blk (quants_impl.h). */
template <mlxr_dtype T>
__device__ int gguf_code(const uint8_t *blk, int j, int e) {
  if constexpr (T == MLXR_DTYPE_Q4_0 || T == MLXR_DTYPE_Q4_1) {
    const uint8_t *qs = blk + (T == MLXR_DTYPE_Q4_0 ? 2 : 4);
    return e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
  } else if constexpr (T == MLXR_DTYPE_Q5_0 || T == MLXR_DTYPE_Q5_1) {
    const int qh_off = T == MLXR_DTYPE_Q5_0 ? 2 : 4; /* after d (and m) */
    const uint32_t qh = load_u32le(blk + qh_off);
    const uint8_t *qs = blk + qh_off + 4;
    const int lo = e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
    return lo | (int)((qh >> e) & 1u) << 4;
  } else if constexpr (T == MLXR_DTYPE_Q4_K || T == MLXR_DTYPE_Q5_K) {
    /* element 32j + e sits in 64-chunk j/2, qs[32*(j/2) + e], low nibble for even j */
    const uint8_t *qs = blk + (T == MLXR_DTYPE_Q4_K ? 16 : 48);
    int code = (qs[32 * (j / 2) + e] >> (4 * (j & 1))) & 15;
    if constexpr (T == MLXR_DTYPE_Q5_K) code |= ((blk[16 + e] >> j) & 1) << 4; /* qh[e] bit j */
    return code;
  } else {
    static_assert(T == MLXR_DTYPE_Q6_K, "gguf_code: nibble types only");
    /* element 32j + e: half h = j/4, quarter q = j%4 of that half, position e in the quarter */
    const int h = j / 4, q = j % 4;
    const int lo = (blk[64 * h + 32 * (q & 1) + e] >> (4 * (q >> 1))) & 15; /* ql */
    const int hi = (blk[128 + 32 * h + e] >> (2 * q)) & 3;                   /* qh */
    return lo | hi << 4;
  }
}

/* Unit j of the GGUF block blk (block b of its row, unit u of the row) into the planes of row. */
template <mlxr_dtype T>
__device__ void convert_unit(const uint8_t *blk, int j, int64_t b, int64_t u, const Planes &p,
                             int64_t row) {
  uint8_t *pl[kMaxPlanes];
  for (int i = 0; i < kMaxPlanes; i++) pl[i] = p.base[i] + row * p.stride[i];

  if constexpr (T == MLXR_DTYPE_Q8_0) {
    copy_bytes(pl[0] + 32 * u, blk + 2, 32);
    copy_bytes(pl[1] + 2 * b, blk, 2);
    return;
  } else {
    /* plane 0: the nibbles */
    uint32_t w[4] = {0, 0, 0, 0};
    for (int i = 0; i < 16; i++) {
      const uint32_t byte =
          (uint32_t)(gguf_code<T>(blk, j, i) & 15) | (uint32_t)(gguf_code<T>(blk, j, 16 + i) & 15) << 4;
      w[i / 4] |= byte << (8 * (i % 4));
    }
    *(uint4 *)(pl[0] + 16 * u) = make_uint4(w[0], w[1], w[2], w[3]);

    /* plane 1 of the 5- and 6-bit types: the high bits */
    if constexpr (T == MLXR_DTYPE_Q5_0 || T == MLXR_DTYPE_Q5_1 || T == MLXR_DTYPE_Q5_K) {
      uint32_t hb = 0;
      for (int e = 0; e < 32; e++) {
        hb |= (uint32_t)((gguf_code<T>(blk, j, e) >> 4) & 1) << (8 * (e % 4) + e / 4);
      }
      *(uint32_t *)(pl[1] + 4 * u) = hb;
    } else if constexpr (T == MLXR_DTYPE_Q6_K) {
      uint32_t hp[2] = {0, 0};
      for (int e = 0; e < 32; e++) {
        hp[e / 16] |= (uint32_t)((gguf_code<T>(blk, j, e) >> 4) & 3) << (8 * (e % 4) + 2 * ((e / 4) % 4));
      }
      *(uint2 *)(pl[1] + 8 * u) = make_uint2(hp[0], hp[1]);
    }

    /* scales: once per block */
    if constexpr (T == MLXR_DTYPE_Q4_0) copy_bytes(pl[1] + 2 * b, blk, 2);
    if constexpr (T == MLXR_DTYPE_Q4_1) copy_bytes(pl[1] + 4 * b, blk, 4);
    if constexpr (T == MLXR_DTYPE_Q5_0) copy_bytes(pl[2] + 2 * b, blk, 2);
    if constexpr (T == MLXR_DTYPE_Q5_1) copy_bytes(pl[2] + 4 * b, blk, 4);
    if (j == 0) {
      if constexpr (T == MLXR_DTYPE_Q4_K) copy_bytes(pl[1] + 16 * b, blk, 16);
      if constexpr (T == MLXR_DTYPE_Q5_K) copy_bytes(pl[2] + 16 * b, blk, 16);
      if constexpr (T == MLXR_DTYPE_Q6_K) {
        copy_bytes(pl[2] + 16 * b, blk + 192, 16); /* scales */
        copy_bytes(pl[3] + 2 * b, blk + 208, 2);   /* d */
      }
    }
  }
}

/* Rows [row0, row0 + n) from GGUF rows at raw (row_bytes apart): x over the units of a row, y
 * over rows (grid-stride). */
template <mlxr_dtype T>
__global__ void convert_kernel(const uint8_t *raw, size_t row_bytes, int units_per_block,
                               int type_size, int64_t units_per_row, int64_t row0, int64_t n,
                               Planes p) {
  const int64_t u = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (u >= units_per_row) return;
  const int64_t b = u / units_per_block;
  const int j = (int)(u % units_per_block);
  for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
    const uint8_t *blk = raw + i * (int64_t)row_bytes + b * type_size;
    convert_unit<T>(blk, j, b, u, p, row0 + i);
  }
}

/* ---------------------------------------------------------------- decoding (device -> float) */

/* Elements e0..e0+7 of a row (e0 a multiple of 8, all inside the row) into v, bit-identical to
 * the CPU's to_float. Float types need the row 16-byte aligned (the caller's `vec` case). */
template <mlxr_dtype T>
__device__ void decode8(const Planes &p, int64_t row, int64_t e0, float v[8]) {
  const uint8_t *q = p.base[0] + row * p.stride[0];
  if constexpr (T == MLXR_DTYPE_F32) {
    const float4 a = __ldg((const float4 *)(q + 4 * e0)), b = __ldg((const float4 *)(q + 4 * e0 + 16));
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else if constexpr (T == MLXR_DTYPE_F16 || T == MLXR_DTYPE_BF16) {
    const uint4 a = __ldg((const uint4 *)(q + 2 * e0));
    const uint32_t w[4] = {a.x, a.y, a.z, a.w};
    for (int k = 0; k < 4; k++) {
      if constexpr (T == MLXR_DTYPE_F16) {
        v[2 * k] = f16_to_f32(w[k]);
        v[2 * k + 1] = f16_to_f32(w[k] >> 16);
      } else {
        v[2 * k] = bf16_to_f32(w[k] & 0xffffu);
        v[2 * k + 1] = bf16_to_f32(w[k] >> 16);
      }
    }
  } else if constexpr (T == MLXR_DTYPE_Q8_0) {
    const int64_t b = e0 / 32;
    const uint2 a = __ldg((const uint2 *)(q + e0)); /* plane 0 holds one byte per element */
    const float d = f16_to_f32(load_u16le(p.base[1] + row * p.stride[1] + 2 * b));
    for (int t = 0; t < 8; t++) {
      const int8_t c = (int8_t)(((t < 4 ? a.x : a.y) >> (8 * (t & 3))) & 0xffu);
      v[t] = __fmul_rn((float)c, d);
    }
  } else {
    /* nibble types: unit u, part = which 8 of its 32 elements */
    const int64_t u = e0 / 32;
    const int part = (int)((e0 / 8) % 4);
    /* elements 8*part + t sit in chunk bytes 8*(part&1) + t, nibble part>>1 */
    const uint2 nib = __ldg((const uint2 *)(q + 16 * u + 8 * (part & 1)));
    const int nshift = 4 * (part >> 1);
    int code[8];
    for (int t = 0; t < 8; t++) code[t] = (int)((((t < 4 ? nib.x : nib.y) >> (8 * (t & 3) + nshift))) & 15u);

    const uint8_t *p1 = p.base[1] + row * p.stride[1];
    if constexpr (T == MLXR_DTYPE_Q5_0 || T == MLXR_DTYPE_Q5_1 || T == MLXR_DTYPE_Q5_K) {
      /* element e = 8*part + t: e%4 = t&3, e/4 = 2*part + t/4 */
      const uint32_t hb = __ldg((const uint32_t *)(p1 + 4 * u));
      for (int t = 0; t < 8; t++) code[t] |= (int)((hb >> (8 * (t & 3) + 2 * part + (t >> 2))) & 1u) << 4;
    } else if constexpr (T == MLXR_DTYPE_Q6_K) {
      /* word e/16 = part>>1, bits 8*(e%4) + 2*((e/4)%4) */
      const uint2 hp = __ldg((const uint2 *)(p1 + 8 * u));
      const uint32_t word = (part >> 1) ? hp.y : hp.x;
      for (int t = 0; t < 8; t++) {
        code[t] |= (int)((word >> (8 * (t & 3) + 2 * ((2 * part + (t >> 2)) & 3))) & 3u) << 4;
      }
    }

    if constexpr (T == MLXR_DTYPE_Q4_0 || T == MLXR_DTYPE_Q5_0) {
      const uint8_t *pd = T == MLXR_DTYPE_Q4_0 ? p1 : p.base[2] + row * p.stride[2];
      const float d = f16_to_f32(load_u16le(pd + 2 * u));
      const int offset = T == MLXR_DTYPE_Q4_0 ? 8 : 16;
      for (int t = 0; t < 8; t++) v[t] = __fmul_rn((float)(code[t] - offset), d);
    } else if constexpr (T == MLXR_DTYPE_Q4_1 || T == MLXR_DTYPE_Q5_1) {
      const uint8_t *pd = T == MLXR_DTYPE_Q4_1 ? p1 : p.base[2] + row * p.stride[2];
      const uint32_t dm = __ldg((const uint32_t *)(pd + 4 * u));
      const float d = f16_to_f32(dm), m = f16_to_f32(dm >> 16);
      for (int t = 0; t < 8; t++) v[t] = __fadd_rn(__fmul_rn((float)code[t], d), m);
    } else if constexpr (T == MLXR_DTYPE_Q4_K || T == MLXR_DTYPE_Q5_K) {
      const uint8_t *ph = T == MLXR_DTYPE_Q4_K ? p1 : p.base[2] + row * p.stride[2];
      const uint4 h = __ldg((const uint4 *)(ph + 16 * (u / 8)));
      int sc, m;
      k4_scale_min(h.y, h.z, h.w, (int)(u % 8), &sc, &m);
      const float d1 = __fmul_rn(f16_to_f32(h.x), (float)sc);
      const float m1 = __fmul_rn(f16_to_f32(h.x >> 16), (float)m);
      for (int t = 0; t < 8; t++) v[t] = __fsub_rn(__fmul_rn(d1, (float)code[t]), m1);
    } else {
      static_assert(T == MLXR_DTYPE_Q6_K, "decode8: unhandled type");
      const int64_t b = u / 8;
      const int s = 2 * (int)(u % 8) + (part >> 1); /* 16-element sub-block within the block */
      const int8_t sc = (int8_t)p.base[2][row * p.stride[2] + 16 * b + s];
      const float d = f16_to_f32(load_u16le(p.base[3] + row * p.stride[3] + 2 * b));
      const float ds = __fmul_rn(d, (float)sc);
      for (int t = 0; t < 8; t++) v[t] = __fmul_rn(ds, (float)(code[t] - 32));
    }
  }
}

/* Element e of a row of a float type, any alignment (the slow path). */
template <mlxr_dtype T>
__device__ float decode1(const Planes &p, int64_t row, int64_t e) {
  const uint8_t *q = p.base[0] + row * p.stride[0];
  if constexpr (T == MLXR_DTYPE_F32) return ((const float *)q)[e];
  if constexpr (T == MLXR_DTYPE_F16) return f16_to_f32(((const uint16_t *)q)[e]);
  if constexpr (T == MLXR_DTYPE_BF16) return bf16_to_f32(((const uint16_t *)q)[e]);
  return 0.0f;
}

enum OutKind { kOutF32, kOutF16, kOutBF16 };

/* v[0..cnt) to dst elements i..i+cnt; vec: cnt == 8 and dst + i is 16-byte aligned. */
template <int OUT>
__device__ void store8(void *dst, int64_t i, const float v[8], int cnt, bool vec) {
  if constexpr (OUT == kOutF32) {
    float *o = (float *)dst + i;
    if (vec) {
      *(float4 *)o = make_float4(v[0], v[1], v[2], v[3]);
      *(float4 *)(o + 4) = make_float4(v[4], v[5], v[6], v[7]);
    } else {
#pragma unroll
      for (int t = 0; t < 8; t++) {
        if (t < cnt) o[t] = v[t];
      }
    }
  } else {
    uint16_t h[8];
    for (int t = 0; t < 8; t++) {
      h[t] = OUT == kOutF16 ? __half_as_ushort(__float2half_rn(v[t]))
                            : __bfloat16_as_ushort(__float2bfloat16_rn(v[t]));
    }
    uint16_t *o = (uint16_t *)dst + i;
    if (vec) {
      *(uint4 *)o = make_uint4(h[0] | (uint32_t)h[1] << 16, h[2] | (uint32_t)h[3] << 16,
                               h[4] | (uint32_t)h[5] << 16, h[6] | (uint32_t)h[7] << 16);
    } else {
#pragma unroll
      for (int t = 0; t < 8; t++) {
        if (t < cnt) o[t] = h[t];
      }
    }
  }
}

/* dst[r][:] = source row (ids ? ids[r] : row0 + r) decoded, r < n; x over a row's 8-element
 * groups, y over rows (grid-stride). Rows outside [0, n_out) come out as zeros. vec: n_in % 8 ==
 * 0 and weights and dst 16-byte aligned (always the case for quantized weights, but dst may not
 * be). */
template <mlxr_dtype T, int OUT>
__global__ void rows_kernel(Planes p, int64_t n_in, int64_t n_out, const int32_t *ids, int64_t row0,
                            int64_t n, void *dst, bool vec) {
  constexpr bool kFloat = T == MLXR_DTYPE_F32 || T == MLXR_DTYPE_F16 || T == MLXR_DTYPE_BF16;
  const int64_t e0 = 8 * ((int64_t)blockIdx.x * blockDim.x + threadIdx.x);
  if (e0 >= n_in) return;
  const int cnt = n_in - e0 < 8 ? (int)(n_in - e0) : 8;
  for (int64_t r = blockIdx.y; r < n; r += gridDim.y) {
    const int64_t src = ids ? (int64_t)ids[r] : row0 + r;
    float v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (src >= 0 && src < n_out) {
      if (!kFloat || vec) {
        decode8<T>(p, src, e0, v);
      } else {
#pragma unroll
        for (int t = 0; t < 8; t++) {
          if (t < cnt) v[t] = decode1<T>(p, src, e0 + t);
        }
      }
    }
    store8<OUT>(dst, r * n_in + e0, v, cnt, vec);
  }
}

/* ---------------------------------------------------------------- dispatch */

template <mlxr_dtype T>
struct TypeTag {
  static constexpr mlxr_dtype value = T;
};

/* f(TypeTag<t>{}) for a type with a device layout; cudaErrorInvalidValue otherwise. */
template <class F>
cudaError_t with_type(mlxr_dtype t, F &&f) {
  switch (t) {
    case MLXR_DTYPE_F32: return f(TypeTag<MLXR_DTYPE_F32>{});
    case MLXR_DTYPE_F16: return f(TypeTag<MLXR_DTYPE_F16>{});
    case MLXR_DTYPE_BF16: return f(TypeTag<MLXR_DTYPE_BF16>{});
    case MLXR_DTYPE_Q4_0: return f(TypeTag<MLXR_DTYPE_Q4_0>{});
    case MLXR_DTYPE_Q4_1: return f(TypeTag<MLXR_DTYPE_Q4_1>{});
    case MLXR_DTYPE_Q5_0: return f(TypeTag<MLXR_DTYPE_Q5_0>{});
    case MLXR_DTYPE_Q5_1: return f(TypeTag<MLXR_DTYPE_Q5_1>{});
    case MLXR_DTYPE_Q8_0: return f(TypeTag<MLXR_DTYPE_Q8_0>{});
    case MLXR_DTYPE_Q4_K: return f(TypeTag<MLXR_DTYPE_Q4_K>{});
    case MLXR_DTYPE_Q5_K: return f(TypeTag<MLXR_DTYPE_Q5_K>{});
    case MLXR_DTYPE_Q6_K: return f(TypeTag<MLXR_DTYPE_Q6_K>{});
    default: return cudaErrorInvalidValue;
  }
}

constexpr int kRowsThreads = 128; /* threads per CTA of the row kernels */
constexpr int64_t kMaxGridY = 65535;

/* The shared body of get_rows and dequant_rows. */
cudaError_t launch_rows(mlxr_dtype t, const void *w, int64_t n_in, int64_t n_out, const int32_t *ids,
                        int64_t row0, int64_t n, OutKind out, void *dst, cudaStream_t stream) {
  TypeLayout l;
  if (!shape_ok(t, n_in, n_out, &l) || !w || !dst || n < 0) return cudaErrorInvalidValue;
  const bool is_float = l.block == 1;
  if (!is_float && !aligned16(w)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  const Planes p = planes_of(l, w, n_in, n_out);
  const bool vec = n_in % 8 == 0 && aligned16(w) && aligned16(dst);
  const int64_t groups = (n_in + 7) / 8;
  const dim3 grid((unsigned)((groups + kRowsThreads - 1) / kRowsThreads),
                  (unsigned)(n < kMaxGridY ? n : kMaxGridY));
  return with_type(t, [&](auto tag) {
    constexpr mlxr_dtype T = decltype(tag)::value;
    auto kernel = out == kOutF32 ? rows_kernel<T, kOutF32>
                  : out == kOutF16 ? rows_kernel<T, kOutF16> : rows_kernel<T, kOutBF16>;
    kernel<<<grid, kRowsThreads, 0, stream>>>(p, n_in, n_out, ids, row0, n, dst, vec);
    return cudaGetLastError();
  });
}

} /* namespace */

/* ---------------------------------------------------------------- launchers */

bool mlxr_cuda_weight_type_supported(mlxr_dtype t) {
  TypeLayout l;
  return type_layout(t, &l);
}

size_t mlxr_cuda_weight_bytes(mlxr_dtype t, int64_t n_in, int64_t n_out) {
  TypeLayout l;
  if (!shape_ok(t, n_in, n_out, &l)) return 0;
  const int64_t row = n_in / l.block * l.type_size; /* < 2^33 */
  if (n_out > INT64_MAX / row) return 0;
  return (size_t)(row * n_out);
}

cudaError_t mlxr_cuda_weight_convert(mlxr_dtype t, const void *raw, size_t row_bytes, int64_t n_in,
                                     int64_t n_out, int64_t row0, int64_t n, void *dst,
                                     cudaStream_t stream) {
  TypeLayout l;
  if (!shape_ok(t, n_in, n_out, &l) || !raw || !dst) return cudaErrorInvalidValue;
  if (row0 < 0 || n < 0 || row0 > n_out - n) return cudaErrorInvalidValue;
  const int64_t gguf_row = n_in / l.block * l.type_size;
  if ((int64_t)row_bytes < gguf_row) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;

  if (l.block == 1) {
    /* float types: the device layout is the file's, rows back to back */
    uint8_t *d = (uint8_t *)dst + row0 * gguf_row;
    const cudaError_t e =
        (int64_t)row_bytes == gguf_row
            ? cudaMemcpyAsync(d, raw, (size_t)(n * gguf_row), cudaMemcpyDeviceToDevice, stream)
            : cudaMemcpy2DAsync(d, (size_t)gguf_row, raw, row_bytes, (size_t)gguf_row, (size_t)n,
                                cudaMemcpyDeviceToDevice, stream);
    return e != cudaSuccess ? e : cudaGetLastError();
  }

  if (!aligned16(dst)) return cudaErrorInvalidValue;
  const Planes p = planes_of(l, dst, n_in, n_out);
  const int units_per_block = l.block / 32;
  const int64_t units_per_row = n_in / 32;
  const dim3 grid((unsigned)((units_per_row + kRowsThreads - 1) / kRowsThreads),
                  (unsigned)(n < kMaxGridY ? n : kMaxGridY));
  return with_type(t, [&](auto tag) {
    constexpr mlxr_dtype T = decltype(tag)::value;
    if constexpr (T == MLXR_DTYPE_F32 || T == MLXR_DTYPE_F16 || T == MLXR_DTYPE_BF16) {
      return cudaErrorInvalidValue; /* handled above */
    } else {
      convert_kernel<T><<<grid, kRowsThreads, 0, stream>>>((const uint8_t *)raw, row_bytes,
                                                           units_per_block, l.type_size,
                                                           units_per_row, row0, n, p);
      return cudaGetLastError();
    }
  });
}

cudaError_t mlxr_cuda_get_rows(mlxr_dtype t, const void *w, int64_t n_in, int64_t n_out,
                               const int32_t *ids, int64_t n, float *out, cudaStream_t stream) {
  if (!ids) return cudaErrorInvalidValue;
  return launch_rows(t, w, n_in, n_out, ids, 0, n, kOutF32, out, stream);
}

cudaError_t mlxr_cuda_dequant_rows(mlxr_dtype t, const void *w, int64_t n_in, int64_t n_out,
                                   int64_t row0, int64_t n, mlxr_dtype out_type, void *dst,
                                   cudaStream_t stream) {
  if (row0 < 0 || n < 0 || row0 > n_out - n) return cudaErrorInvalidValue;
  if (out_type != MLXR_DTYPE_F16 && out_type != MLXR_DTYPE_BF16) return cudaErrorInvalidValue;
  return launch_rows(t, w, n_in, n_out, NULL, row0, n, out_type == MLXR_DTYPE_F16 ? kOutF16 : kOutBF16,
                     dst, stream);
}
