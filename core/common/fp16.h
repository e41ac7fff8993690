/*
 * fp16.h: scalar IEEE half and bfloat16 <-> float conversions (bit-exact, round-to-nearest-even,
 * NaN preserved). SIMD kernels use F16C instead; these are the reference and the fallback.
 */
#ifndef MLXR_COMMON_FP16_H
#define MLXR_COMMON_FP16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t mlxr_f16;  /* IEEE 754 binary16 bits */
typedef uint16_t mlxr_bf16; /* bfloat16 bits (upper half of a float32) */

static inline uint32_t mlxr_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float mlxr_f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline float mlxr_f16_to_f32(mlxr_f16 h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return mlxr_f32_from_bits(sign);
    /* subnormal: value = mant * 2^-24 */
    float v = (float)mant * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (exp == 31) return mlxr_f32_from_bits(sign | 0x7f800000u | (mant << 13));
  return mlxr_f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

static inline mlxr_f16 mlxr_f32_to_f16(float f) {
  uint32_t x = mlxr_f32_bits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) { /* inf or nan */
    return (mlxr_f16)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u | ((absx >> 13) & 0x3ffu) : 0));
  }
  if (absx >= 0x477ff000u) return (mlxr_f16)(sign | 0x7c00u); /* rounds to >= 65520: inf */
  if (absx < 0x38800000u) {                                   /* below 2^-14: subnormal or zero */
    if (absx < 0x33000000u) return (mlxr_f16)sign;            /* < 2^-25: rounds to zero */
    uint32_t e = absx >> 23;
    uint32_t m = (absx & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (mlxr_f16)(sign | q);
  }
  uint32_t r = absx + 0xfffu + ((absx >> 13) & 1u); /* round to nearest even at bit 13 */
  return (mlxr_f16)(sign | ((r - 0x38000000u) >> 13));
}

static inline float mlxr_bf16_to_f32(mlxr_bf16 b) { return mlxr_f32_from_bits((uint32_t)b << 16); }

static inline mlxr_bf16 mlxr_f32_to_bf16(float f) {
  uint32_t x = mlxr_f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (mlxr_bf16)((x >> 16) | 0x40u); /* quiet nan */
  return (mlxr_bf16)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

#endif
