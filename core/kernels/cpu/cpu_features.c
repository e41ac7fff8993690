/*
 * cpu_features.c: which SIMD level this CPU (and its OS) can run, for the kernel dispatch of
 * core/kernels/types.h.
 *
 * On x86 the answer needs two things: the CPU must report the instructions (CPUID leaf 1 for
 * FMA/F16C/AVX/OSXSAVE, leaf 7 for AVX2 and the AVX-512 subsets), and the OS must save the wider
 * registers on a context switch (XGETBV(0) = XCR0 must have the SSE and AVX state bits, plus the
 * opmask/ZMM bits for AVX-512). A CPU with AVX2 under an OS (or hypervisor) that does not enable
 * the YMM state would fault on the first AVX instruction, so both are checked.
 * On AArch64 the level is NEON, unless the NEON kernels were built with the dotprod extension and
 * the CPU lacks it (see below); on other Arm targets it is fixed by the compile target. Stateless;
 * any thread may call these.
 *
 * MLXR_CPU_ISA (types.h) caps the answer: detect_simd() here, and the AVX512-VNNI and AMX queries
 * (gemm_avx512.c, gemm_amx.c) ask mlxr_cpu_isa_cap() before CPUID, so a test run can pin the
 * kernels of a lower level on a CPU that has more.
 */
#include <stdlib.h>
#include <string.h>

#include "core/kernels/types.h"

mlxr_cpu_isa mlxr_cpu_isa_cap(const char **bad) {
  static const struct {
    const char *name;
    mlxr_cpu_isa isa;
  } names[] = {{"scalar", MLXR_ISA_SCALAR},           {"avx2", MLXR_ISA_AVX2}, {"avx512", MLXR_ISA_AVX512},
               {"avx512_vnni", MLXR_ISA_AVX512_VNNI}, {"amx", MLXR_ISA_ALL}};
  if (bad) *bad = NULL;
  const char *v = getenv("MLXR_CPU_ISA");
  if (!v || !*v) return MLXR_ISA_ALL;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strcmp(v, names[i].name) == 0) return names[i].isa;
  }
  if (bad) *bad = v;
  return MLXR_ISA_ALL;
}

/* The detected level within the cap. */
static mlxr_simd_level capped(mlxr_simd_level detected) {
  const mlxr_cpu_isa cap = mlxr_cpu_isa_cap(NULL);
  if (cap == MLXR_ISA_SCALAR) return MLXR_SIMD_SCALAR;
  if (cap == MLXR_ISA_AVX2 && detected == MLXR_SIMD_AVX512) return MLXR_SIMD_AVX2;
  return detected;
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t)hi << 32 | lo;
}

static mlxr_simd_level detect_uncapped(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return MLXR_SIMD_SCALAR;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28),
             f16c = c & (1u << 29);
  if (!(osxsave && avx && fma && f16c)) return MLXR_SIMD_SCALAR;
  const uint64_t xcr0 = read_xcr0();
  if ((xcr0 & 0x6) != 0x6) return MLXR_SIMD_SCALAR; /* XMM and YMM state */
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return MLXR_SIMD_SCALAR;
  if (!(b & (1u << 5))) return MLXR_SIMD_SCALAR; /* AVX2 */
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
  if (avx512 && (xcr0 & 0xe0) == 0xe0) return MLXR_SIMD_AVX512; /* opmask, ZMM0-15 hi, ZMM16-31 */
  return MLXR_SIMD_AVX2;
}

#elif defined(__aarch64__)
#include "core/kernels/cpu/quants_impl.h" /* mlxr_quant_neon_dotprod */
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif

/* NEON (Advanced SIMD) is part of every AArch64 CPU. The *_neon.c kernels may have been built
 * with the dotprod extension (SDOT, Armv8.2+ optional, Armv8.4+ mandatory); on Linux the kernel
 * reports it as HWCAP_ASIMDDP, and a CPU without it (Cortex-A53/A57/A72) gets the scalar kernels
 * instead of an illegal-instruction fault. Elsewhere (macOS: every Apple core has it) it is assumed. */
static mlxr_simd_level detect_uncapped(void) {
#if defined(__linux__)
  if (mlxr_quant_neon_dotprod() && !(getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) return MLXR_SIMD_SCALAR;
#endif
  return MLXR_SIMD_NEON;
}

#else

static mlxr_simd_level detect_uncapped(void) {
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
  return MLXR_SIMD_NEON;
#else
  return MLXR_SIMD_SCALAR;
#endif
}

#endif

mlxr_simd_level mlxr_cpu_detect_simd(void) { return capped(detect_uncapped()); }

const char *mlxr_simd_level_name(mlxr_simd_level level) {
  switch (level) {
    case MLXR_SIMD_SCALAR: return "scalar";
    case MLXR_SIMD_AVX2: return "avx2";
    case MLXR_SIMD_AVX512: return "avx512";
    case MLXR_SIMD_NEON: return "neon";
    default: return "?";
  }
}
