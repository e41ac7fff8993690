/*
 * type_traits.c: the per-level tables behind mlxr_type_traits_get() (core/kernels/types.h).
 *
 * One const table per implemented level, indexed by mlxr_dtype. A level's table names its own
 * function where one is written and the best lower level's otherwise, so every entry is complete
 * and callers never check for holes: the AVX2 table uses scalar quantizers for the weight types
 * (they run once, at conversion time) but AVX2 for everything on the matmul path. Levels without
 * kernels of their own share a lower table: AVX-512 uses AVX2's; NEON has its own table on
 * aarch64 and uses the scalar one elsewhere.
 *
 * vec_dot_type choices: F32 activations for F32/F16/BF16 weights; Q8_0 for all 32-element legacy
 * types (Q4_1/Q5_1 add mx * dy * sum(qy) themselves, so one activation format serves them all);
 * Q8_K for the K-quants. Activation-only types (Q8_1, Q8_K) have no vec_dot.
 * gemm (multi-row products) exists for F32, F16, Q4_0 and Q8_0 at AVX2 (gemm_avx2.c); at AVX512,
 * F32 and F16 use gemm_avx512.c, and when CPUID also reports AVX512_VNNI (checked on each call: callers on
 * hot paths keep the pointer) so do Q4_0 and Q8_0; where the CPU also has AMX-INT8 and the kernel
 * grants the tile state (mlxr_quant_cpu_amx_enable, an arch_prctl: the one side effect here),
 * Q4_0 and Q8_0 use the AMX kernels of gemm_amx.c. Elsewhere gemm is NULL and callers loop over
 * vec_dot.
 */
#include "core/kernels/cpu/quants_impl.h"

#define TRAITS_SIZE MLXR_DTYPE_COUNT

static const mlxr_type_traits scalar_traits[TRAITS_SIZE] = {
    [MLXR_DTYPE_F32] = {MLXR_DTYPE_F32, 1, 4, mlxr_quant_f32_to_float, mlxr_quant_f32_from_float,
                        MLXR_DTYPE_F32, mlxr_quant_f32_vec_dot, NULL},
    [MLXR_DTYPE_F16] = {MLXR_DTYPE_F16, 1, 2, mlxr_quant_f16_to_float, mlxr_quant_f16_from_float,
                        MLXR_DTYPE_F32, mlxr_quant_f16_vec_dot, NULL},
    [MLXR_DTYPE_BF16] = {MLXR_DTYPE_BF16, 1, 2, mlxr_quant_bf16_to_float, mlxr_quant_bf16_from_float,
                         MLXR_DTYPE_F32, mlxr_quant_bf16_vec_dot, NULL},
    [MLXR_DTYPE_Q4_0] = {MLXR_DTYPE_Q4_0, 32, 18, mlxr_quant_q4_0_to_float, mlxr_quant_q4_0_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q4_0_vec_dot, NULL},
    [MLXR_DTYPE_Q4_1] = {MLXR_DTYPE_Q4_1, 32, 20, mlxr_quant_q4_1_to_float, mlxr_quant_q4_1_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q4_1_vec_dot, NULL},
    [MLXR_DTYPE_Q5_0] = {MLXR_DTYPE_Q5_0, 32, 22, mlxr_quant_q5_0_to_float, mlxr_quant_q5_0_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q5_0_vec_dot, NULL},
    [MLXR_DTYPE_Q5_1] = {MLXR_DTYPE_Q5_1, 32, 24, mlxr_quant_q5_1_to_float, mlxr_quant_q5_1_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q5_1_vec_dot, NULL},
    [MLXR_DTYPE_Q8_0] = {MLXR_DTYPE_Q8_0, 32, 34, mlxr_quant_q8_0_to_float, mlxr_quant_q8_0_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q8_0_vec_dot, NULL},
    [MLXR_DTYPE_Q8_1] = {MLXR_DTYPE_Q8_1, 32, 36, mlxr_quant_q8_1_to_float, mlxr_quant_q8_1_from_float,
                         MLXR_DTYPE_Q8_1, NULL, NULL},
    [MLXR_DTYPE_Q4_K] = {MLXR_DTYPE_Q4_K, 256, 144, mlxr_quant_q4_K_to_float, mlxr_quant_q4_K_from_float,
                         MLXR_DTYPE_Q8_K, mlxr_quant_q4_K_vec_dot, NULL},
    [MLXR_DTYPE_Q5_K] = {MLXR_DTYPE_Q5_K, 256, 176, mlxr_quant_q5_K_to_float, mlxr_quant_q5_K_from_float,
                         MLXR_DTYPE_Q8_K, mlxr_quant_q5_K_vec_dot, NULL},
    [MLXR_DTYPE_Q6_K] = {MLXR_DTYPE_Q6_K, 256, 210, mlxr_quant_q6_K_to_float, mlxr_quant_q6_K_from_float,
                         MLXR_DTYPE_Q8_K, mlxr_quant_q6_K_vec_dot, NULL},
    [MLXR_DTYPE_Q8_K] = {MLXR_DTYPE_Q8_K, 256, 292, mlxr_quant_q8_K_to_float, mlxr_quant_q8_K_from_float,
                         MLXR_DTYPE_Q8_K, NULL, NULL},
};

#if MLXR_QUANTS_X86
/* The x86 tables differ only in their gemm kernels. */
#define X86_TRAITS(F32_GEMM, F16_GEMM, Q4_0_GEMM, Q8_0_GEMM) \
  { \
    [MLXR_DTYPE_F32] = {MLXR_DTYPE_F32, 1, 4, mlxr_quant_f32_to_float, mlxr_quant_f32_from_float,              \
                        MLXR_DTYPE_F32, mlxr_quant_f32_vec_dot_avx2, F32_GEMM},                                \
    [MLXR_DTYPE_F16] = {MLXR_DTYPE_F16, 1, 2, mlxr_quant_f16_to_float_avx2,                                    \
                        mlxr_quant_f16_from_float_avx2, MLXR_DTYPE_F32, mlxr_quant_f16_vec_dot_avx2,           \
                        F16_GEMM},                                                                     \
    [MLXR_DTYPE_BF16] = {MLXR_DTYPE_BF16, 1, 2, mlxr_quant_bf16_to_float_avx2,                                 \
                         mlxr_quant_bf16_from_float_avx2, MLXR_DTYPE_F32, mlxr_quant_bf16_vec_dot_avx2, NULL}, \
    [MLXR_DTYPE_Q4_0] = {MLXR_DTYPE_Q4_0, 32, 18, mlxr_quant_q4_0_to_float_avx2, mlxr_quant_q4_0_from_float,   \
                         MLXR_DTYPE_Q8_0, mlxr_quant_q4_0_vec_dot_avx2, Q4_0_GEMM},                            \
    [MLXR_DTYPE_Q4_1] = {MLXR_DTYPE_Q4_1, 32, 20, mlxr_quant_q4_1_to_float, mlxr_quant_q4_1_from_float,        \
                         MLXR_DTYPE_Q8_0, mlxr_quant_q4_1_vec_dot_avx2, NULL},                                 \
    [MLXR_DTYPE_Q5_0] = {MLXR_DTYPE_Q5_0, 32, 22, mlxr_quant_q5_0_to_float, mlxr_quant_q5_0_from_float,        \
                         MLXR_DTYPE_Q8_0, mlxr_quant_q5_0_vec_dot_avx2, NULL},                                 \
    [MLXR_DTYPE_Q5_1] = {MLXR_DTYPE_Q5_1, 32, 24, mlxr_quant_q5_1_to_float, mlxr_quant_q5_1_from_float,        \
                         MLXR_DTYPE_Q8_0, mlxr_quant_q5_1_vec_dot_avx2, NULL},                                 \
    [MLXR_DTYPE_Q8_0] = {MLXR_DTYPE_Q8_0, 32, 34, mlxr_quant_q8_0_to_float_avx2,                               \
                         mlxr_quant_q8_0_from_float_avx2, MLXR_DTYPE_Q8_0, mlxr_quant_q8_0_vec_dot_avx2,       \
                         Q8_0_GEMM},                                                                           \
    [MLXR_DTYPE_Q8_1] = {MLXR_DTYPE_Q8_1, 32, 36, mlxr_quant_q8_1_to_float, mlxr_quant_q8_1_from_float,        \
                         MLXR_DTYPE_Q8_1, NULL, NULL},                                                         \
    [MLXR_DTYPE_Q4_K] = {MLXR_DTYPE_Q4_K, 256, 144, mlxr_quant_q4_K_to_float_avx2, mlxr_quant_q4_K_from_float, \
                         MLXR_DTYPE_Q8_K, mlxr_quant_q4_K_vec_dot_avx2, NULL},                                 \
    [MLXR_DTYPE_Q5_K] = {MLXR_DTYPE_Q5_K, 256, 176, mlxr_quant_q5_K_to_float, mlxr_quant_q5_K_from_float,      \
                         MLXR_DTYPE_Q8_K, mlxr_quant_q5_K_vec_dot_avx2, NULL},                                 \
    [MLXR_DTYPE_Q6_K] = {MLXR_DTYPE_Q6_K, 256, 210, mlxr_quant_q6_K_to_float_avx2, mlxr_quant_q6_K_from_float, \
                         MLXR_DTYPE_Q8_K, mlxr_quant_q6_K_vec_dot_avx2, NULL},                                 \
    [MLXR_DTYPE_Q8_K] = {MLXR_DTYPE_Q8_K, 256, 292, mlxr_quant_q8_K_to_float, mlxr_quant_q8_K_from_float_avx2, \
                         MLXR_DTYPE_Q8_K, NULL, NULL},                                                         \
  }

static const mlxr_type_traits avx2_traits[TRAITS_SIZE] =
    X86_TRAITS(mlxr_quant_f32_gemm_avx2, mlxr_quant_f16_gemm_avx2, mlxr_quant_q4_0_gemm_avx2, mlxr_quant_q8_0_gemm_avx2);
static const mlxr_type_traits avx512_traits[TRAITS_SIZE] =
    X86_TRAITS(mlxr_quant_f32_gemm_avx512, mlxr_quant_f16_gemm_avx512, mlxr_quant_q4_0_gemm_avx2, mlxr_quant_q8_0_gemm_avx2);
static const mlxr_type_traits avx512vnni_traits[TRAITS_SIZE] =
    X86_TRAITS(mlxr_quant_f32_gemm_avx512, mlxr_quant_f16_gemm_avx512, mlxr_quant_q4_0_gemm_avx512vnni,
               mlxr_quant_q8_0_gemm_avx512vnni);
static const mlxr_type_traits amx_traits[TRAITS_SIZE] =
    X86_TRAITS(mlxr_quant_f32_gemm_avx512, mlxr_quant_f16_gemm_avx512, mlxr_quant_q4_0_gemm_amx, mlxr_quant_q8_0_gemm_amx);
#endif

#if defined(__aarch64__)
/* NEON (quants_neon.c, quants_k_neon.c, gemm_neon.c): vec_dot of every weight type, the
 * activation quantizers (Q8_0, Q8_K) and F16/BF16 conversions, to_float of F16/BF16/Q4_0/Q8_0/
 * Q4_K/Q6_K, gemm for F32/F16/Q4_0/Q8_0; the weight quantizers stay scalar (conversion time). */
static const mlxr_type_traits neon_traits[TRAITS_SIZE] = {
    [MLXR_DTYPE_F32] = {MLXR_DTYPE_F32, 1, 4, mlxr_quant_f32_to_float, mlxr_quant_f32_from_float,
                        MLXR_DTYPE_F32, mlxr_quant_f32_vec_dot_neon, mlxr_quant_f32_gemm_neon},
    [MLXR_DTYPE_F16] = {MLXR_DTYPE_F16, 1, 2, mlxr_quant_f16_to_float_neon, mlxr_quant_f16_from_float_neon,
                        MLXR_DTYPE_F32, mlxr_quant_f16_vec_dot_neon, mlxr_quant_f16_gemm_neon},
    [MLXR_DTYPE_BF16] = {MLXR_DTYPE_BF16, 1, 2, mlxr_quant_bf16_to_float_neon, mlxr_quant_bf16_from_float_neon,
                         MLXR_DTYPE_F32, mlxr_quant_bf16_vec_dot_neon, NULL},
    [MLXR_DTYPE_Q4_0] = {MLXR_DTYPE_Q4_0, 32, 18, mlxr_quant_q4_0_to_float_neon, mlxr_quant_q4_0_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q4_0_vec_dot_neon, mlxr_quant_q4_0_gemm_neon},
    [MLXR_DTYPE_Q4_1] = {MLXR_DTYPE_Q4_1, 32, 20, mlxr_quant_q4_1_to_float, mlxr_quant_q4_1_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q4_1_vec_dot_neon, NULL},
    [MLXR_DTYPE_Q5_0] = {MLXR_DTYPE_Q5_0, 32, 22, mlxr_quant_q5_0_to_float, mlxr_quant_q5_0_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q5_0_vec_dot_neon, NULL},
    [MLXR_DTYPE_Q5_1] = {MLXR_DTYPE_Q5_1, 32, 24, mlxr_quant_q5_1_to_float, mlxr_quant_q5_1_from_float,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q5_1_vec_dot_neon, NULL},
    [MLXR_DTYPE_Q8_0] = {MLXR_DTYPE_Q8_0, 32, 34, mlxr_quant_q8_0_to_float_neon, mlxr_quant_q8_0_from_float_neon,
                         MLXR_DTYPE_Q8_0, mlxr_quant_q8_0_vec_dot_neon, mlxr_quant_q8_0_gemm_neon},
    [MLXR_DTYPE_Q8_1] = {MLXR_DTYPE_Q8_1, 32, 36, mlxr_quant_q8_1_to_float, mlxr_quant_q8_1_from_float,
                         MLXR_DTYPE_Q8_1, NULL, NULL},
    [MLXR_DTYPE_Q4_K] = {MLXR_DTYPE_Q4_K, 256, 144, mlxr_quant_q4_K_to_float_neon, mlxr_quant_q4_K_from_float,
                         MLXR_DTYPE_Q8_K, mlxr_quant_q4_K_vec_dot_neon, NULL},
    [MLXR_DTYPE_Q5_K] = {MLXR_DTYPE_Q5_K, 256, 176, mlxr_quant_q5_K_to_float, mlxr_quant_q5_K_from_float,
                         MLXR_DTYPE_Q8_K, mlxr_quant_q5_K_vec_dot_neon, NULL},
    [MLXR_DTYPE_Q6_K] = {MLXR_DTYPE_Q6_K, 256, 210, mlxr_quant_q6_K_to_float_neon, mlxr_quant_q6_K_from_float,
                         MLXR_DTYPE_Q8_K, mlxr_quant_q6_K_vec_dot_neon, NULL},
    [MLXR_DTYPE_Q8_K] = {MLXR_DTYPE_Q8_K, 256, 292, mlxr_quant_q8_K_to_float, mlxr_quant_q8_K_from_float_neon,
                         MLXR_DTYPE_Q8_K, NULL, NULL},
};
#endif

const mlxr_type_traits *mlxr_type_traits_get(mlxr_dtype t, mlxr_simd_level level) {
  if ((unsigned)t >= TRAITS_SIZE) return NULL;
  const mlxr_type_traits *table;
  switch (level) {
    case MLXR_SIMD_SCALAR:
      table = scalar_traits;
      break;
    case MLXR_SIMD_NEON: /* NEON's kernels on aarch64; elsewhere (no NEON code built) the scalar ones */
#if defined(__aarch64__)
      table = neon_traits;
#else
      table = scalar_traits;
#endif
      break;
    case MLXR_SIMD_AVX2:
    case MLXR_SIMD_AVX512: /* AVX2's kernels, plus the VNNI gemm where the CPU has VNNI */
#if MLXR_QUANTS_X86
      table = level != MLXR_SIMD_AVX512         ? avx2_traits
              : mlxr_quant_cpu_amx_enable()      ? amx_traits
              : mlxr_quant_cpu_has_avx512_vnni() ? avx512vnni_traits
                                                 : avx512_traits;
#else
      table = scalar_traits;
#endif
      break;
    default:
      return NULL;
  }
  return table[t].block_size > 0 ? &table[t] : NULL;
}
