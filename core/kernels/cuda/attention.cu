/*
 * attention.cu: paged attention for the CUDA backend (backend.h's mlxr_attn_args; the CPU's
 * attn_worker in core/kernels/cpu/cpu_backend.c is the reference). Every row r attends, for each
 * query head h, to keys t < n_ctx[r] of its sequence: softmax over t of scale * q.K[t], weighting
 * V[t]. Key t of a row lives in pool slot block_tables[row_table[r]][t / block_size] * block_size
 * + t % block_size; K and V pools are [slot][n_head_kv * head_dim] of F32 or F16. The kernels:
 *
 * Decode (attn_decode_kernel + attn_combine_kernel): the only path in graph mode, and the path of
 * small batches. A work item is (row, kv head, head subgroup, split): it computes every query head
 * of the kv head's group (up to GB = 4 or 8 of them at once) so each K/V row is read once for the
 * group, over one split of the row's keys (flash-decoding). A CTA of 4 warps streams tiles of KT
 * keys through shared memory (cp.async, two stages, block-table lookups one tile ahead):
 *
 *   scores  a warp owns KPW keys of the tile, LPK lanes per key, each lane a slice of the key's
 *           16-byte units (F16 converted to fp32 in registers) against all GB query vectors
 *           (shared memory, broadcast), summed over the LPK lanes by shuffles;
 *   softmax online per warp: running max m, sum l, rescale factor exp(m_old - m_new);
 *   values  the warp's KPW value rows, 8 elements per lane (LPR lanes per row), weighted by the
 *           probabilities the warp just wrote to shared memory, accumulated per query head.
 *
 * At the end the 4 warps' (m, l, o) merge through shared memory; with one split the CTA writes
 * out = o / l, else the partial (m, l, o) of its split goes to scratch and the combine kernel
 * (a warp per (row, head)) merges the splits. With split_merge (off by default: not yet run on a
 * GPU, see mlxr_cuda_attention), in the decode path the last split of each (row, kv head,
 * subgroup) to finish merges them instead (a ticket counter per group in scratch, taken after a
 * __threadfence; the last one resets it to zero), so a decode step is one launch. A split takes at least two tiles of keys, so a
 * short row (a decode step early in a sequence) has one split with keys: that CTA writes out
 * itself and the combine kernel passes the row by. The grid is at most one wave of CTAs, which
 * loop over the work items (most items of a short row are empty splits, done at once). The split count depends only on the row count,
 * the shapes and n_sm in graph mode (plus max_ctx outside it); each row's keys are cut into
 * `splits` chunks of a multiple of KT read from n_ctx on the device, and splits past the end
 * exit at once (the combine kernel recomputes the same cut, so they need write nothing).
 *
 * Prompt (out of graph mode, >= PROMPT_MIN_ROWS rows): a plan kernel marks each row that belongs
 * to a run of >= RUN_MIN consecutive rows of one sequence with consecutive contexts (a prompt
 * chunk) and lists the others (decode rows of a mixed batch, short speculative runs). The rows
 * are cut into tiles of qt consecutive rows (qt * group <= 64 query vectors); a CTA per (tile, kv
 * head) finds the runs of marked rows inside its tile (a tile may straddle two sequences) and
 * computes each run flash-attention style: K/V tiles in shared memory shared by all rows of the
 * run and all heads of the group, online softmax per query vector, causal masking per row.
 *   attn_prompt_tc_kernel   F16 KV, head dims 16..128 (multiples of 16, dk == dv): mma.sync
 *                           m16n8k16 with fp32 accumulation, 4 warps x 16 query vectors; K/V
 *                           tiles of 64 keys (two cp.async stages, rows padded one 16-byte unit
 *                           so ldmatrix is conflict-free) taken in sub-tiles of 32 keys; scores
 *                           stay in registers and become the A fragments of P V. q (kept in
 *                           shared memory) and the probabilities are split into f16 hi + lo
 *                           parts, two mma each, so results carry fp32-like accuracy (~1e-7)
 *                           although the tensor cores take f16 (TC_SPLIT_P off: P in f16 only).
 *   attn_prompt_kernel      everything else: SIMT fp32, 16 x 16 threads, each 4 query vectors x
 *                           KB keys of the scores and 4 vectors x 4 * DC columns of the values.
 * The listed rows then go through the decode kernel (splits from max_ctx), which loops over the
 * device-side list, so no CTA count depends on the list's length.
 *
 * Shapes: head dims 1..256 (buckets 64, 128, 256; fast 16-byte paths when the dims are multiples
 * of 16 bytes and the pools 16-byte aligned, else element loads in the 256 bucket), any group
 * size (query heads per kv head), n_ctx clamped to what the block table can name; a row with no
 * keys gets zeros (as the CPU). Accuracy: fp32 products and sums everywhere (F16 K/V converted
 * exactly); expf, not __expf.
 *
 * Scratch (mlxr_cuda_attention_scratch_bytes): split partials, at most max(n_rows * n_head,
 * SPLIT_PARTIALS) (m, l, o[dv]) records, then the prompt plan (a byte and an int per row, a count).
 * Launchers never allocate or synchronize; cudaFuncSetAttribute (raising the dynamic shared
 * memory limit) is legal during stream capture.
 */
#include <cuda_fp16.h>
#include <math.h>
#include <string.h>

#include "core/kernels/cuda/cuda_kernels.h"

namespace {

constexpr unsigned FULL = 0xffffffffu;
constexpr float NEG_INF = -INFINITY;

constexpr int DEC_WARPS = 4;                     /* warps per decode CTA */
constexpr int DEC_THREADS = DEC_WARPS * 32;
constexpr int MAX_SPLITS = 64;                   /* splits of one row's keys */
constexpr int64_t SPLIT_PARTIALS = 65536;        /* partial records scratch always has room for */
constexpr int DEC_CTAS_PER_SM = 4;               /* decode: aim for this many CTAs per SM */
constexpr int LIST_SPLIT_KEYS = 2048;            /* listed rows of a prompt batch: keys per split */
constexpr int PROMPT_MIN_ROWS = 16;              /* from this many rows on (not graph): prompt path */
constexpr int RUN_MIN = 4;                       /* rows of a run that the prompt kernels take */
constexpr int QB = 64;                           /* query vectors per prompt CTA */
constexpr int SIMT_THREADS = 256;                /* attn_prompt_kernel: 16 x 16 threads */
constexpr int TC_THREADS = 128;                  /* attn_prompt_tc_kernel: 4 warps x 16 vectors */
constexpr bool TC_SPLIT_P = true;                /* probabilities as f16 hi + lo (else f16 only) */
constexpr int MAX_SMEM = 163 * 1024;             /* dynamic shared memory per CTA on sm_80 (sm_90: 227K) */

/* ---- arguments as the kernels see them ---- */

struct attn_params {
  const float *q;                 /* [n_rows][n_head][dk] */
  float *out;                     /* [n_rows][n_head][dv] */
  const void *k_pool, *v_pool;    /* [slot][n_head_kv][dk], [slot][n_head_kv][dv] */
  const int32_t *block_tables;    /* [n_tables][table_stride] */
  const int32_t *row_table;       /* [n_rows] */
  const int32_t *n_ctx;           /* [n_rows] */
  int64_t k_stride, v_stride;     /* elements per pool slot */
  int table_stride, block_size;
  int max_keys;                   /* table_stride * block_size (n_ctx is clamped to it) */
  int n_head, n_head_kv, group;   /* group = n_head / n_head_kv */
  int dk, dv;
  float scale;
};

/* The rows a decode launch computes and where its split partials go. */
struct dec_list {
  const int32_t *rows;  /* [n] rows to compute; NULL: rows 0..n_host-1 */
  const int32_t *n_dev; /* device-side count of rows; NULL: n_host */
  int64_t n_host;
  int n_sub;            /* head subgroups per kv head (group > GB) */
  int splits;           /* splits of each row's keys */
  float2 *part_ml;      /* [n][n_head][splits] (max, sum) of each split (splits > 1) */
  float *part_o;        /* [n][n_head][splits][dv] weighted V sums of each split, relative to max */
  int *tickets;         /* [n][n_head_kv][n_sub] splits done so far, zero between launches; NULL:
                           the combine kernel merges the splits, else the last split of each
                           (row, kv head, subgroup) does (merge_splits) */
};

/* The tiling of a prompt launch. */
struct prompt_plan {
  const uint8_t *run_row; /* [n_rows] 1: the row is in a run of >= RUN_MIN rows (prompt kernels) */
  int64_t n_rows;
  int64_t n_tiles;        /* ceil(n_rows / qt) */
  int qt;                 /* rows per tile */
  int gh;                 /* query heads per CTA (<= group) */
  int n_sub;              /* ceil(group / gh) */
};

/* ---- small device helpers ---- */

/* Keys visible to `row`: n_ctx clamped to what the row's block table can name (0 if none). */
__device__ __forceinline__ int row_keys(const attn_params &p, int64_t row) {
  const int n = p.n_ctx[row];
  if (p.row_table[row] < 0 || n <= 0) return 0;
  return min(n, p.max_keys);
}

__device__ __forceinline__ const int32_t *row_blocks(const attn_params &p, int64_t row) {
  return p.block_tables + (int64_t)p.row_table[row] * p.table_stride;
}

/* Pool slot of key t of a sequence whose block table is `blocks`. */
__device__ __forceinline__ int64_t key_slot(const int32_t *blocks, int block_size, int t) {
  return (int64_t)blocks[t / block_size] * block_size + t % block_size;
}

/* Keys per split when n keys are cut into `splits` chunks of a multiple of kt, at least two tiles
 * (a split's fixed costs are not worth less; short contexts then have one split, which writes
 * the output itself, see decode_item). */
__host__ __device__ __forceinline__ int split_chunk(int n, int splits, int kt) {
  const int per = (n + splits - 1) / splits;
  const int chunk = (per + kt - 1) / kt * kt;
  return chunk > 2 * kt ? chunk : 2 * kt;
}

__device__ __forceinline__ float warp_max(float v, int from) {
  for (int off = from; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, off));
  return v;
}

__device__ __forceinline__ float warp_sum(float v, int from) {
  for (int off = from; off > 0; off >>= 1) v += __shfl_xor_sync(FULL, v, off);
  return v;
}

/* Online-softmax rescale factor exp(m_old - m_new), 1 when nothing changed (also -inf to -inf). */
__device__ __forceinline__ float rescale(float m_old, float m_new) {
  return m_old == m_new ? 1.0f : expf(m_old - m_new);
}

/* exp(s - m), 0 for a masked score */
__device__ __forceinline__ float prob(float s, float m) { return s == NEG_INF ? 0.0f : expf(s - m); }

template <typename T>
__device__ __forceinline__ T zero_of();
template <>
__device__ __forceinline__ float zero_of<float>() { return 0.0f; }
template <>
__device__ __forceinline__ __half zero_of<__half>() { return __float2half(0.0f); }

/* A 16-byte unit of shared memory as floats: 4 floats, or 8 halves converted. */
__device__ __forceinline__ void load_unit(const float *src, float *f) {
  const float4 v = *reinterpret_cast<const float4 *>(src);
  f[0] = v.x;
  f[1] = v.y;
  f[2] = v.z;
  f[3] = v.w;
}
__device__ __forceinline__ void load_unit(const __half *src, float *f) {
  const uint4 v = *reinterpret_cast<const uint4 *>(src);
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; i++) {
    __half2 h;
    memcpy(&h, &w[i], 4);
    const float2 x = __half22float2(h);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

__device__ __forceinline__ float comp(const float4 &v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

/* ---- asynchronous copies, tensor-core fragments ---- */

/* 16 bytes global -> shared; valid false writes 16 zero bytes and reads nothing. */
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void *smem) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void *smem) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

/* c += a (16 x 16, row-major fragments) * b (16 x 8, column fragments), f16 in, f32 accumulate */
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t u32_of(__half2 h) {
  uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}

/* (x, y) as f16 pairs hi + lo with hi + lo == (x, y) to about 2^-22 relative */
__device__ __forceinline__ void split_f16x2(float x, float y, uint32_t &hi, uint32_t &lo) {
  const __half2 h = __floats2half2_rn(x, y);
  const float2 r = __half22float2(h);
  hi = u32_of(h);
  lo = u32_of(__floats2half2_rn(x - r.x, y - r.y));
}

/* ---- K/V tiles in shared memory ---- */

/* A tile of KT rows x DK elements of T kept as 16-byte units: unit u of row j sits at byte
 * (j * U + (u ^ ((j * SWZ) & 7))) * 16. The XOR swizzle spreads the rows that one read phase
 * touches over distinct banks (each kernel says which SWZ suits its read pattern); U >= 8. */
template <typename T, int DK, int SWZ>
struct tile_layout {
  static constexpr int CE = 16 / (int)sizeof(T); /* elements per unit */
  static constexpr int U = DK / CE;              /* units per row */
  static_assert(U >= 8 && U % 8 == 0, "swizzle needs whole groups of 8 units");
  __device__ __forceinline__ static int offset(int j, int u) { return (j * U + (u ^ ((j * SWZ) & 7))) * 16; }
};

/* The same tile with rows padded by one unit instead of swizzled: unit u of row j at byte
 * j * PITCH + u * 16. Eight rows read at one unit fall in distinct banks (U + 1 is odd), and every
 * address is a per-lane base plus a constant, which keeps the tensor-core kernel's addressing out
 * of registers. */
template <typename T, int DK>
struct pad_layout {
  static constexpr int CE = 16 / (int)sizeof(T);
  static constexpr int U = DK / CE;
  static constexpr int PITCH = (U + 1) * 16;
  __device__ __forceinline__ static int offset(int j, int u) { return j * PITCH + u * 16; }
};

/* Fill the KT x DK tile `dst` with the rows of slots[j] (-1: a missing key, zero-filled) of one kv
 * head (elements [col0, col0 + dim) of each slot); elements past dim are zero. VEC: 16-byte
 * cp.async (the caller commits and waits); else element loads, done on return. */
template <typename T, int DK, int KT, typename L, int NT, bool VEC>
__device__ __forceinline__ void load_rows(const T *pool, int64_t stride, int64_t col0, int dim,
                                          const int64_t *slots, unsigned char *dst) {
  if constexpr (VEC) {
    static_assert((KT * L::U) % NT == 0, "whole copies per thread");
#pragma unroll
    for (int i = 0; i < KT * L::U / NT; i++) {
      const int idx = (int)threadIdx.x + i * NT;
      const int j = idx / L::U, u = idx % L::U;
      const int64_t slot = slots[j];
      const bool ok = slot >= 0 && u * L::CE < dim;
      const T *src = ok ? pool + slot * stride + col0 + u * L::CE : pool;
      cp_async16(dst + L::offset(j, u), src, ok);
    }
  } else {
    for (int idx = (int)threadIdx.x; idx < KT * DK; idx += NT) {
      const int j = idx / DK, e = idx % DK;
      const int64_t slot = slots[j];
      T val = zero_of<T>();
      if (slot >= 0 && e < dim) val = pool[slot * stride + col0 + e];
      reinterpret_cast<T *>(dst + L::offset(j, e / L::CE))[e % L::CE] = val;
    }
  }
}

/* K and V of keys slots[0..KT) for kv head kvh into the tiles k_dst, v_dst (layout L). */
template <typename T, int DK, int KT, typename L, int NT, bool VEC>
__device__ __forceinline__ void load_kv(const attn_params &p, int kvh, const int64_t *slots,
                                        unsigned char *k_dst, unsigned char *v_dst) {
  load_rows<T, DK, KT, L, NT, VEC>(static_cast<const T *>(p.k_pool), p.k_stride, (int64_t)kvh * p.dk, p.dk,
                                   slots, k_dst);
  load_rows<T, DK, KT, L, NT, VEC>(static_cast<const T *>(p.v_pool), p.v_stride, (int64_t)kvh * p.dv, p.dv,
                                   slots, v_dst);
}

/* ================================ decode ================================ */

/* Shapes of the decode kernel for element type T and head-dim bucket DK. */
template <typename T, int DK>
struct dec_cfg {
  static constexpr int CE = 16 / (int)sizeof(T);   /* elements per 16-byte unit */
  static constexpr int U = DK / CE;                /* units per K/V row */
  static constexpr int KT = 16384 / (DK * (int)sizeof(T)) < 64 ? 16384 / (DK * (int)sizeof(T)) : 64;
  static constexpr int KPW = KT / DEC_WARPS;       /* keys per warp per tile */
  static constexpr int LPK = 32 / KPW;             /* lanes per key (scores) */
  static constexpr int LPR = DK / 8;               /* lanes per value row (8 elements each) */
  static constexpr int RPW = 32 / LPR;             /* value rows a warp reads at once */
  static constexpr int UPL = 8 / CE;               /* units per lane per value row */
  static constexpr int TILE = KT * DK * (int)sizeof(T); /* bytes of a K or a V tile */
  static_assert(LPK >= 1 && LPK <= 8 && KPW % RPW == 0 && (U / LPK) * LPK == U, "decode shape");
};

/* Shared memory of the decode kernel (byte offsets). The merge of the warps at the end reuses the
 * K/V stages: o [DEC_WARPS][GB][DK] floats, then (m, l) [DEC_WARPS][GB]. */
template <typename T, int DK, int GB>
struct dec_smem {
  using C = dec_cfg<T, DK>;
  static constexpr int Q = 0;                                /* [GB][DK] float queries */
  static constexpr int KV = Q + GB * DK * 4;                 /* [2 stages][K, V] tiles */
  static constexpr int P = KV + 4 * C::TILE;                 /* [DEC_WARPS][GB][KPW] probabilities */
  static constexpr int SLOT = P + DEC_WARPS * GB * C::KPW * 4; /* [2][KT] int64 slots */
  static constexpr int TOTAL = SLOT + 2 * C::KT * 8;
  static constexpr int MERGE_O = KV, MERGE_ML = KV + DEC_WARPS * GB * DK * 4;
  static_assert(MERGE_ML + DEC_WARPS * GB * 8 <= P, "merge area fits in the K/V stages");
  static_assert(SLOT % 8 == 0, "slot alignment");
  static_assert(TOTAL <= MAX_SMEM, "fits every target");
};

/* One tile of keys [t0, t0 + KT) (valid below t_end) from the K/V tiles at `tile`, folded into the
 * warp's running (m, l, o). o[h][i]: this lane's 8 value elements of query head h. */
template <typename T, int DK, int GB>
__device__ __forceinline__ void decode_tile(const attn_params &p, const unsigned char *tile, const float *q_s,
                                            float *p_s, int t0, int t_end, float (&m)[GB], float (&l)[GB],
                                            float (&o)[GB][8]) {
  using C = dec_cfg<T, DK>;
  using L = tile_layout<T, DK, C::LPK>;
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
  const unsigned char *k_t = tile, *v_t = tile + C::TILE;

  /* scores: key kk of the warp, this lane's units part, part + LPK, ... */
  const int kk = lane / C::LPK, part = lane % C::LPK;
  const int j = warp * C::KPW + kk; /* row of the tile */
  float s[GB];
#pragma unroll
  for (int h = 0; h < GB; h++) s[h] = 0.0f;
#pragma unroll 2
  for (int i = 0; i < C::U / C::LPK; i++) {
    const int u = part + C::LPK * i;
    float kf[C::CE];
    load_unit(reinterpret_cast<const T *>(k_t + L::offset(j, u)), kf);
#pragma unroll
    for (int h = 0; h < GB; h++) {
      const float *qh = q_s + h * DK + u * C::CE;
#pragma unroll
      for (int e = 0; e < C::CE; e += 4) {
        const float4 q4 = *reinterpret_cast<const float4 *>(qh + e);
        s[h] = fmaf(q4.x, kf[e], s[h]);
        s[h] = fmaf(q4.y, kf[e + 1], s[h]);
        s[h] = fmaf(q4.z, kf[e + 2], s[h]);
        s[h] = fmaf(q4.w, kf[e + 3], s[h]);
      }
    }
  }
  const bool valid = t0 + j < t_end;

  /* online softmax over the warp's KPW keys; lanes of one key hold equal values */
#pragma unroll
  for (int h = 0; h < GB; h++) {
    const float dot = warp_sum(s[h], C::LPK / 2); /* every lane shuffles, valid or not */
    const float sh = valid ? dot * p.scale : NEG_INF;
    float mx = sh;
    for (int off = 16; off >= C::LPK; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, off));
    const float mn = fmaxf(m[h], mx);
    const float c = rescale(m[h], mn);
    const float pr = prob(sh, mn);
    m[h] = mn;
    l[h] = l[h] * c + (part == 0 ? pr : 0.0f);
    if (part == 0) p_s[(warp * GB + h) * C::KPW + kk] = pr;
#pragma unroll
    for (int e = 0; e < 8; e++) o[h][e] *= c;
  }
  __syncwarp();

  /* values: row group rg of the warp takes keys rg, rg + RPW, ...; lane column cl its 8 elements
   * (units cl and, for F32, cl + LPR). Missing keys have p = 0 and zero-filled rows. */
  const int rg = lane / C::LPR, cl = lane % C::LPR;
#pragma unroll 2
  for (int i = 0; i < C::KPW / C::RPW; i++) {
    const int k = rg + C::RPW * i;
    const int jv = warp * C::KPW + k;
    float vf[8];
#pragma unroll
    for (int ui = 0; ui < C::UPL; ui++) {
      load_unit(reinterpret_cast<const T *>(v_t + L::offset(jv, cl + C::LPR * ui)), vf + ui * C::CE);
    }
#pragma unroll
    for (int h = 0; h < GB; h++) {
      const float pk = p_s[(warp * GB + h) * C::KPW + k];
#pragma unroll
      for (int e = 0; e < 8; e++) o[h][e] = fmaf(pk, vf[e], o[h][e]);
    }
  }
  __syncwarp();
}

/* The last split of a work group to finish merges the group's na split partials for its nh heads
 * (h0..) into out, as the combine kernel would: weights exp(m_s - max) per (head, split) in
 * shared memory `wgt` ([GB][MAX_SPLITS] floats, then [GB] sums), then a thread per output
 * element. The partials are read past L1 (__ldcg): other CTAs wrote them. */
template <int GB>
__device__ __forceinline__ void merge_splits(const attn_params &p, const dec_list &d, int64_t li, int64_t row, int h0,
                                             int nh, int na, float *wgt) {
  const int tid = (int)threadIdx.x, warp = tid / 32, lane = tid % 32;
  float *sums = wgt + GB * MAX_SPLITS;
  for (int h = warp; h < nh; h += DEC_WARPS) {
    const int64_t base = (li * p.n_head + h0 + h) * d.splits;
    float mx = NEG_INF;
    for (int sp = lane; sp < na; sp += 32) mx = fmaxf(mx, __ldcg(&d.part_ml[base + sp]).x);
    mx = warp_max(mx, 16);
    float sum = 0.0f;
    for (int sp = lane; sp < na; sp += 32) {
      const float2 ml = __ldcg(&d.part_ml[base + sp]);
      const float f = expf(ml.x - mx);
      wgt[h * MAX_SPLITS + sp] = f;
      sum += f * ml.y;
    }
    sum = warp_sum(sum, 16);
    if (lane == 0) sums[h] = sum;
  }
  __syncthreads();
  for (int idx = tid; idx < nh * p.dv; idx += DEC_THREADS) {
    const int h = idx / p.dv, e = idx % p.dv;
    const int64_t base = (li * p.n_head + h0 + h) * d.splits;
    float acc = 0.0f;
    for (int sp = 0; sp < na; sp++) acc = fmaf(wgt[h * MAX_SPLITS + sp], __ldcg(&d.part_o[(base + sp) * p.dv + e]), acc);
    p.out[(row * p.n_head + h0 + h) * (int64_t)p.dv + e] = acc / sums[h];
  }
}

/* Work item `item` of a decode launch: (list entry, kv head, head subgroup, split). */
template <typename T, int DK, int GB, bool VEC>
__device__ __forceinline__ void decode_item(const attn_params &p, const dec_list &d, int item,
                                            unsigned char *smem) {
  using C = dec_cfg<T, DK>;
  using S = dec_smem<T, DK, GB>;
  float *q_s = reinterpret_cast<float *>(smem + S::Q);
  unsigned char *kv_s = smem + S::KV;
  float *p_s = reinterpret_cast<float *>(smem + S::P);
  int64_t *slot_s = reinterpret_cast<int64_t *>(smem + S::SLOT);
  const int tid = (int)threadIdx.x, warp = tid / 32, lane = tid % 32;

  const int split = item % d.splits;
  int rest = item / d.splits;
  const int sub = rest % d.n_sub;
  rest /= d.n_sub;
  const int kvh = rest % p.n_head_kv;
  const int64_t li = rest / p.n_head_kv;
  const int64_t row = d.rows ? d.rows[li] : li;
  const int h0 = kvh * p.group + sub * GB;    /* first query head of the item */
  const int nh = min(GB, p.group - sub * GB); /* query heads of the item */
  const int n = row_keys(p, row);
  const int chunk = split_chunk(n, d.splits, C::KT);
  const int t_begin = split * chunk, t_end = min(n, t_begin + chunk);
  /* the row's only split with keys writes the output, not a partial (the combine kernel skips it) */
  const bool lone = d.splits == 1 || n <= chunk;
  if (t_begin >= t_end) {
    /* A row without keys gets zeros (as the CPU): written by its first split where no combine
     * kernel follows (one split, or the splits merge themselves), else by the combine kernel.
     * Other empty splits write nothing. */
    if (n == 0 && split == 0 && (d.splits == 1 || d.tickets)) {
      float *dst = p.out + (row * p.n_head + h0) * (int64_t)p.dv;
      for (int idx = tid; idx < nh * p.dv; idx += DEC_THREADS) dst[idx] = 0.0f;
    }
    return;
  }

  /* queries of the item's heads, zero past dk and past nh */
  const float *q_src = p.q + (row * p.n_head + h0) * (int64_t)p.dk;
  for (int idx = tid; idx < GB * DK; idx += DEC_THREADS) {
    const int h = idx / DK, e = idx % DK;
    q_s[idx] = (h < nh && e < p.dk) ? q_src[(int64_t)h * p.dk + e] : 0.0f;
  }

  /* pipeline: thread tid < KT looks up key tid of each tile one tile ahead */
  const int32_t *blocks = row_blocks(p, row);
  const int n_tiles = (t_end - t_begin + C::KT - 1) / C::KT;
  auto slot_at = [&](int it) -> int64_t {
    const int t = t_begin + it * C::KT + tid;
    return t < t_end ? key_slot(blocks, p.block_size, t) : -1;
  };
  int64_t next_slot = -1;
  if (tid < C::KT) {
    slot_s[tid] = slot_at(0);
    if (n_tiles > 1) next_slot = slot_at(1);
  }
  __syncthreads();
  load_kv<T, DK, C::KT, tile_layout<T, DK, C::LPK>, DEC_THREADS, VEC>(p, kvh, slot_s, kv_s, kv_s + C::TILE);
  cp_async_commit();

  float m[GB], l[GB], o[GB][8];
#pragma unroll
  for (int h = 0; h < GB; h++) {
    m[h] = NEG_INF;
    l[h] = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; e++) o[h][e] = 0.0f;
  }
  for (int it = 0; it < n_tiles; it++) {
    const int st = it & 1;
    if (it + 1 < n_tiles) { /* start tile it + 1 into the other stage */
      if (tid < C::KT) {
        slot_s[(st ^ 1) * C::KT + tid] = next_slot;
        if (it + 2 < n_tiles) next_slot = slot_at(it + 2);
      }
      __syncthreads();
      unsigned char *stage = kv_s + (st ^ 1) * 2 * C::TILE;
      load_kv<T, DK, C::KT, tile_layout<T, DK, C::LPK>, DEC_THREADS, VEC>(p, kvh, slot_s + (st ^ 1) * C::KT,
                                                                          stage, stage + C::TILE);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads(); /* tile it is in stage st for everyone */
    decode_tile<T, DK, GB>(p, kv_s + st * 2 * C::TILE, q_s, p_s, t_begin + it * C::KT, t_end, m, l, o);
    __syncthreads(); /* stage st is free for tile it + 2 */
  }

  /* merge the lanes of each warp (row groups), then the warps through shared memory */
  const int rg = lane / C::LPR, cl = lane % C::LPR;
#pragma unroll
  for (int h = 0; h < GB; h++) {
    l[h] = warp_sum(l[h], 16);
#pragma unroll
    for (int e = 0; e < 8; e++) {
      for (int off = C::LPR; off < 32; off <<= 1) o[h][e] += __shfl_xor_sync(FULL, o[h][e], off);
    }
  }
  float *mo = reinterpret_cast<float *>(smem + S::MERGE_O);
  float2 *mml = reinterpret_cast<float2 *>(smem + S::MERGE_ML);
#pragma unroll
  for (int h = 0; h < GB; h++) {
    if (lane == 0) mml[warp * GB + h] = make_float2(m[h], l[h]);
    if (rg == 0) {
#pragma unroll
      for (int ui = 0; ui < C::UPL; ui++) {
#pragma unroll
        for (int e = 0; e < C::CE; e++) {
          mo[(warp * GB + h) * DK + (cl + C::LPR * ui) * C::CE + e] = o[h][ui * C::CE + e];
        }
      }
    }
  }
  __syncthreads();
  for (int idx = tid; idx < nh * p.dv; idx += DEC_THREADS) {
    const int h = idx / p.dv, e = idx % p.dv;
    float mx = NEG_INF;
#pragma unroll
    for (int w = 0; w < DEC_WARPS; w++) mx = fmaxf(mx, mml[w * GB + h].x);
    float sum = 0.0f, acc = 0.0f;
#pragma unroll
    for (int w = 0; w < DEC_WARPS; w++) {
      const float2 ml = mml[w * GB + h];
      const float f = ml.x == NEG_INF ? 0.0f : expf(ml.x - mx);
      sum += f * ml.y;
      acc += f * mo[(w * GB + h) * DK + e];
    }
    if (lone) { /* the first key of the item is valid, so sum >= 1 */
      p.out[(row * p.n_head + h0 + h) * (int64_t)p.dv + e] = acc / sum;
    } else {
      const int64_t pi = (li * p.n_head + h0 + h) * d.splits + split;
      d.part_o[pi * p.dv + e] = acc;
      if (e == 0) d.part_ml[pi] = make_float2(mx, sum);
    }
  }
  if (lone || !d.tickets) return;
  /* the last of the group's na splits with keys to get here merges them (threadFenceReduction) */
  const int na = (n + chunk - 1) / chunk;
  int *ticket = d.tickets + item / d.splits;
  __shared__ int last;
  __threadfence(); /* this CTA's partials are visible before its ticket */
  __syncthreads(); /* every thread has written and fenced; the merge area is free */
  if (tid == 0) last = atomicAdd(ticket, 1) == na - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  merge_splits<GB>(p, d, li, row, h0, nh, na, reinterpret_cast<float *>(kv_s));
  if (tid == 0) *ticket = 0; /* zero again for the next launch */
}

template <typename T, int DK, int GB, bool VEC>
__global__ void __launch_bounds__(DEC_THREADS, GB <= 4 ? 3 : 2) attn_decode_kernel(attn_params p, dec_list d) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait(); /* q, the KV pools and the list come from the kernels before */
  extern __shared__ __align__(16) unsigned char smem[];
  const int n_list = d.n_dev ? *d.n_dev : (int)d.n_host;
  const int n_items = n_list * p.n_head_kv * d.n_sub * d.splits; /* < 2^31: checked at launch */
  for (int item = (int)blockIdx.x; item < n_items; item += (int)gridDim.x) {
    __syncthreads(); /* the previous item is done with shared memory */
    decode_item<T, DK, GB, VEC>(p, d, item, smem);
  }
}

/* Merge the splits of each (list entry, head): a warp per pair. kt: the decode kernel's KT. */
__global__ void __launch_bounds__(128) attn_combine_kernel(attn_params p, dec_list d, int kt) {
  mlxr_pdl_trigger();
  mlxr_pdl_wait(); /* the decode kernel's partials */
  __shared__ float w_s[4][MAX_SPLITS];
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32;
  const int n_list = d.n_dev ? *d.n_dev : (int)d.n_host;
  const int n_items = n_list * p.n_head; /* < 2^31: checked at launch */
  for (int item = (int)blockIdx.x * 4 + warp; item < n_items; item += (int)gridDim.x * 4) {
    const int li = item / p.n_head;
    const int h = item % p.n_head;
    const int64_t row = d.rows ? d.rows[li] : li;
    const int n = row_keys(p, row);
    const int chunk = split_chunk(n, d.splits, kt);
    const int na = n > 0 ? (n + chunk - 1) / chunk : 0; /* splits that had keys */
    if (na == 1) continue; /* the decode kernel wrote this one (lone split) */
    const int64_t base = (int64_t)item * d.splits;      /* (li * n_head + h) * splits */
    float mx = NEG_INF;
    for (int s = lane; s < na; s += 32) mx = fmaxf(mx, d.part_ml[base + s].x);
    mx = warp_max(mx, 16);
    float sum = 0.0f;
    for (int s = lane; s < na; s += 32) {
      const float2 ml = d.part_ml[base + s];
      const float f = expf(ml.x - mx);
      w_s[warp][s] = f;
      sum += f * ml.y;
    }
    sum = warp_sum(sum, 16);
    __syncwarp();
    float *dst = p.out + (row * p.n_head + h) * (int64_t)p.dv;
    for (int e = lane; e < p.dv; e += 32) {
      float acc = 0.0f;
      for (int s = 0; s < na; s++) acc = fmaf(w_s[warp][s], d.part_o[(base + s) * p.dv + e], acc);
      dst[e] = na > 0 ? acc / sum : 0.0f;
    }
    __syncwarp();
  }
}

/* ================================ prompt ================================ */

/* Row r continues the run of row r - 1: same sequence, next position. */
__device__ __forceinline__ bool rows_linked(int32_t tab0, int32_t ctx0, int32_t tab1, int32_t ctx1) {
  return tab1 == tab0 && (int64_t)ctx1 == (int64_t)ctx0 + 1;
}

/* run_row[r] = 1 for rows in runs of >= RUN_MIN rows; the other rows are appended to list (in no
 * particular order) and counted in *n_list (zeroed by the caller). */
__global__ void attn_plan_kernel(const int32_t *row_table, const int32_t *n_ctx, int64_t n_rows,
                                 uint8_t *run_row, int32_t *list, int32_t *n_list) {
  const int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= n_rows) return;
  int len = 1;
  for (int64_t k = r; k > 0 && len < RUN_MIN && rows_linked(row_table[k - 1], n_ctx[k - 1], row_table[k], n_ctx[k]);
       k--) {
    len++;
  }
  for (int64_t k = r + 1;
       k < n_rows && len < RUN_MIN && rows_linked(row_table[k - 1], n_ctx[k - 1], row_table[k], n_ctx[k]); k++) {
    len++;
  }
  const bool run = len >= RUN_MIN;
  run_row[r] = run ? 1 : 0;
  if (!run) list[atomicAdd(n_list, 1)] = (int32_t)r;
}

/* The rows of one prompt tile, in shared memory. */
struct tile_rows {
  int32_t tab[QB], ctx[QB];
  uint8_t run[QB];
  int n;       /* rows in the tile */
  int64_t r0;  /* first row */
};

/* Load the tile's rows (threads < qt), before a __syncthreads. */
__device__ __forceinline__ void load_tile_rows(const attn_params &p, const prompt_plan &pp, int64_t tile,
                                               tile_rows *tr) {
  const int64_t r0 = tile * pp.qt;
  const int n = (int)min((int64_t)pp.qt, pp.n_rows - r0);
  const int i = (int)threadIdx.x;
  if (i < n) {
    tr->tab[i] = p.row_table[r0 + i];
    tr->ctx[i] = p.n_ctx[r0 + i];
    tr->run[i] = pp.run_row[r0 + i];
  }
  if (i == 0) {
    tr->n = n;
    tr->r0 = r0;
  }
}

/* The next run of marked rows of the tile at or after `from`: [a, *end), a == tr.n if none. */
__device__ __forceinline__ int next_segment(const tile_rows &tr, int from, int *end) {
  int a = from;
  while (a < tr.n && !tr.run[a]) a++;
  int b = a < tr.n ? a + 1 : a;
  while (b < tr.n && tr.run[b] && rows_linked(tr.tab[b - 1], tr.ctx[b - 1], tr.tab[b], tr.ctx[b])) b++;
  *end = b;
  return a;
}

/* Query vector qi of a segment (rows r0 .. r0 + n_seg, heads h0 .. h0 + nh): vector i * gh + j is
 * head h0 + j of row r0 + i. */
struct qvec {
  int64_t row;
  int head;
  bool valid;
};
__device__ __forceinline__ qvec qvec_of(int qi, int64_t r0, int n_seg, int h0, int nh, int gh) {
  const int i = qi / gh, j = qi % gh;
  qvec v;
  v.valid = i < n_seg && j < nh;
  v.row = r0 + i;
  v.head = h0 + j;
  return v;
}

/* ---- SIMT prompt kernel ---- */

template <typename T, int DK>
struct simt_cfg {
  static constexpr int KT = DK == 64 ? 64 : DK == 128 ? 32 : 16; /* keys per tile */
  static constexpr int KB = KT / 16;                         /* keys per thread (scores) */
  static constexpr int QP = DK + 4;                          /* float pitch of Q, K, V rows */
  static constexpr int PP = KT + 4;                          /* float pitch of probability rows */
  static constexpr int DC = DK / 64;                         /* float4 columns per thread (values) */
  static constexpr int RAW = KT * DK * (int)sizeof(T);       /* bytes of a staged K or V tile */
  /* shared memory (bytes) */
  static constexpr int Q = 0;
  static constexpr int K = Q + QB * QP * 4;
  static constexpr int V = K + KT * QP * 4;
  static constexpr int P = V + KT * QP * 4;
  static constexpr int STAGE = P + QB * PP * 4; /* raw K tile, then raw V tile (plain layout) */
  static constexpr int SLOT = STAGE + 2 * RAW;
  static constexpr int ROWS = SLOT + KT * 8;
  static constexpr int TOTAL = ROWS + (int)sizeof(tile_rows);
  static_assert(SLOT % 8 == 0 && TOTAL <= MAX_SMEM, "alignment, fits every target");
};

/* One segment of rows [r0, r0 + n_seg) of one sequence with query heads h0 .. h0 + nh (of kv head
 * kvh): 64 query vectors, thread (tq, tk) owns vectors tq + 16a (a < 4), keys tk + 16b of each
 * tile (scores) and value columns (tk + 16c) * 4 .. + 3 (c < DC). */
template <typename T, int DK, bool VEC>
__device__ void simt_segment(const attn_params &p, int kvh, int64_t r0, int n_seg, int h0, int nh, int gh,
                             unsigned char *smem) {
  using C = simt_cfg<T, DK>;
  using RL = tile_layout<T, DK, 0>; /* raw staging layout (plain) */
  float *q_s = reinterpret_cast<float *>(smem + C::Q);
  float *k_s = reinterpret_cast<float *>(smem + C::K);
  float *v_s = reinterpret_cast<float *>(smem + C::V);
  float *p_s = reinterpret_cast<float *>(smem + C::P);
  unsigned char *raw_k = smem + C::STAGE, *raw_v = smem + C::STAGE + C::RAW;
  int64_t *slot_s = reinterpret_cast<int64_t *>(smem + C::SLOT);
  const int tid = (int)threadIdx.x, tq = tid / 16, tk = tid % 16;

  /* queries (zero past dk and for padding vectors) and the context of this thread's vectors */
  for (int idx = tid; idx < QB * DK; idx += SIMT_THREADS) {
    const int qi = idx / DK, e = idx % DK;
    const qvec v = qvec_of(qi, r0, n_seg, h0, nh, gh);
    q_s[qi * C::QP + e] = (v.valid && e < p.dk) ? p.q[(v.row * p.n_head + v.head) * (int64_t)p.dk + e] : 0.0f;
  }
  int cq[4];
#pragma unroll
  for (int a = 0; a < 4; a++) {
    const qvec v = qvec_of(tq + 16 * a, r0, n_seg, h0, nh, gh);
    cq[a] = v.valid ? row_keys(p, v.row) : 0;
  }
  const int kmax = row_keys(p, r0 + n_seg - 1); /* contexts grow along the run */
  const int32_t *blocks = row_blocks(p, r0);
  const int n_kt = (kmax + C::KT - 1) / C::KT;
  auto slot_at = [&](int t) -> int64_t { return t < kmax ? key_slot(blocks, p.block_size, t) : -1; };

  float m[4], l[4], o[4][C::DC][4];
#pragma unroll
  for (int a = 0; a < 4; a++) {
    m[a] = NEG_INF;
    l[a] = 0.0f;
#pragma unroll
    for (int c = 0; c < C::DC; c++) {
#pragma unroll
      for (int e = 0; e < 4; e++) o[a][c][e] = 0.0f;
    }
  }

  if constexpr (VEC) {
    if (tid < C::KT) slot_s[tid] = slot_at(tid);
    __syncthreads();
    if (n_kt > 0) { /* (no copy may be left in flight when the segment ends) */
      load_kv<T, DK, C::KT, RL, SIMT_THREADS, true>(p, kvh, slot_s, raw_k, raw_v);
      cp_async_commit();
    }
  }
  for (int it = 0; it < n_kt; it++) {
    const int t0 = it * C::KT;
    if constexpr (VEC) {
      cp_async_wait<0>();
      __syncthreads(); /* raw holds tile it; tile it - 1 is done with k_s, v_s, p_s */
      for (int idx = tid; idx < C::KT * RL::U; idx += SIMT_THREADS) {
        const int j = idx / RL::U, u = idx % RL::U;
        float f[RL::CE];
        load_unit(reinterpret_cast<const T *>(raw_k + RL::offset(j, u)), f);
#pragma unroll
        for (int e = 0; e < RL::CE; e++) k_s[j * C::QP + u * RL::CE + e] = f[e];
        load_unit(reinterpret_cast<const T *>(raw_v + RL::offset(j, u)), f);
#pragma unroll
        for (int e = 0; e < RL::CE; e++) v_s[j * C::QP + u * RL::CE + e] = f[e];
      }
      if (it + 1 < n_kt && tid < C::KT) slot_s[tid] = slot_at(t0 + C::KT + tid);
      __syncthreads(); /* k_s, v_s ready; raw and the next slots free */
      if (it + 1 < n_kt) {
        load_kv<T, DK, C::KT, RL, SIMT_THREADS, true>(p, kvh, slot_s, raw_k, raw_v);
        cp_async_commit();
      }
    } else {
      __syncthreads(); /* tile it - 1 is done */
      if (tid < C::KT) slot_s[tid] = slot_at(t0 + tid);
      __syncthreads();
      for (int idx = tid; idx < C::KT * DK; idx += SIMT_THREADS) {
        const int j = idx / DK, e = idx % DK;
        const int64_t slot = slot_s[j];
        const bool ok = slot >= 0;
        const T *kp = static_cast<const T *>(p.k_pool) + slot * p.k_stride + (int64_t)kvh * p.dk;
        const T *vp = static_cast<const T *>(p.v_pool) + slot * p.v_stride + (int64_t)kvh * p.dv;
        k_s[j * C::QP + e] = (ok && e < p.dk) ? (float)kp[e] : 0.0f;
        v_s[j * C::QP + e] = (ok && e < p.dv) ? (float)vp[e] : 0.0f;
      }
      __syncthreads();
    }

    /* scores of vectors tq + 16a and keys tk + 16b */
    float sc[4][C::KB];
#pragma unroll
    for (int a = 0; a < 4; a++) {
#pragma unroll
      for (int b = 0; b < C::KB; b++) sc[a][b] = 0.0f;
    }
#pragma unroll 4
    for (int e = 0; e < DK; e += 4) {
      float4 qa[4], kb[C::KB];
#pragma unroll
      for (int a = 0; a < 4; a++) qa[a] = *reinterpret_cast<const float4 *>(q_s + (tq + 16 * a) * C::QP + e);
#pragma unroll
      for (int b = 0; b < C::KB; b++) kb[b] = *reinterpret_cast<const float4 *>(k_s + (tk + 16 * b) * C::QP + e);
#pragma unroll
      for (int a = 0; a < 4; a++) {
#pragma unroll
        for (int b = 0; b < C::KB; b++) {
          sc[a][b] = fmaf(qa[a].x, kb[b].x, sc[a][b]);
          sc[a][b] = fmaf(qa[a].y, kb[b].y, sc[a][b]);
          sc[a][b] = fmaf(qa[a].z, kb[b].z, sc[a][b]);
          sc[a][b] = fmaf(qa[a].w, kb[b].w, sc[a][b]);
        }
      }
    }

    /* online softmax; a vector's 16 threads are one half-warp */
#pragma unroll
    for (int a = 0; a < 4; a++) {
      float mx = NEG_INF;
#pragma unroll
      for (int b = 0; b < C::KB; b++) {
        const int t = t0 + tk + 16 * b;
        sc[a][b] = t < cq[a] ? sc[a][b] * p.scale : NEG_INF;
        mx = fmaxf(mx, sc[a][b]);
      }
      mx = warp_max(mx, 8);
      const float mn = fmaxf(m[a], mx);
      const float c = rescale(m[a], mn);
      m[a] = mn;
      float rs = 0.0f;
#pragma unroll
      for (int b = 0; b < C::KB; b++) {
        const float pr = prob(sc[a][b], mn);
        p_s[(tq + 16 * a) * C::PP + tk + 16 * b] = pr;
        rs += pr;
      }
      l[a] = l[a] * c + rs;
#pragma unroll
      for (int cc = 0; cc < C::DC; cc++) {
#pragma unroll
        for (int e = 0; e < 4; e++) o[a][cc][e] *= c;
      }
    }
    __syncwarp(); /* p_s rows of this half-warp's vectors are complete */

    /* values */
#pragma unroll 2
    for (int j = 0; j < C::KT; j += 4) {
      float4 pa[4];
#pragma unroll
      for (int a = 0; a < 4; a++) pa[a] = *reinterpret_cast<const float4 *>(p_s + (tq + 16 * a) * C::PP + j);
#pragma unroll
      for (int jj = 0; jj < 4; jj++) {
#pragma unroll
        for (int cc = 0; cc < C::DC; cc++) {
          const float4 v = *reinterpret_cast<const float4 *>(v_s + (j + jj) * C::QP + (tk + 16 * cc) * 4);
#pragma unroll
          for (int a = 0; a < 4; a++) {
            const float pj = comp(pa[a], jj);
            o[a][cc][0] = fmaf(pj, v.x, o[a][cc][0]);
            o[a][cc][1] = fmaf(pj, v.y, o[a][cc][1]);
            o[a][cc][2] = fmaf(pj, v.z, o[a][cc][2]);
            o[a][cc][3] = fmaf(pj, v.w, o[a][cc][3]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int a = 0; a < 4; a++) l[a] = warp_sum(l[a], 8); /* all lanes, before any of them skips */
#pragma unroll
  for (int a = 0; a < 4; a++) {
    const float sum = l[a];
    const qvec v = qvec_of(tq + 16 * a, r0, n_seg, h0, nh, gh);
    if (!v.valid) continue;
    float *dst = p.out + (v.row * p.n_head + v.head) * (int64_t)p.dv;
#pragma unroll
    for (int cc = 0; cc < C::DC; cc++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int col = (tk + 16 * cc) * 4 + e;
        if (col < p.dv) dst[col] = sum > 0.0f ? o[a][cc][e] / sum : 0.0f;
      }
    }
  }
}

/* CTA -> (tile, kv head, head subgroup), the last tiles (longest contexts) first. */
struct prompt_work {
  int64_t tile;
  int kvh, h0, nh;
};
__device__ __forceinline__ prompt_work prompt_work_of(const attn_params &p, const prompt_plan &pp) {
  const int per_tile = p.n_head_kv * pp.n_sub;
  prompt_work w;
  w.tile = pp.n_tiles - 1 - (int64_t)blockIdx.x / per_tile;
  const int rem = (int)((int64_t)blockIdx.x % per_tile);
  w.kvh = rem / pp.n_sub;
  const int sub = rem % pp.n_sub;
  w.h0 = w.kvh * p.group + sub * pp.gh;
  w.nh = min(pp.gh, p.group - sub * pp.gh);
  return w;
}

template <typename T, int DK, bool VEC>
__global__ void __launch_bounds__(SIMT_THREADS, 1) attn_prompt_kernel(attn_params p, prompt_plan pp) {
  using C = simt_cfg<T, DK>;
  extern __shared__ __align__(16) unsigned char smem[];
  tile_rows *tr = reinterpret_cast<tile_rows *>(smem + C::ROWS);
  const prompt_work w = prompt_work_of(p, pp);
  load_tile_rows(p, pp, w.tile, tr);
  __syncthreads();
  int b = 0;
  for (int a = next_segment(*tr, 0, &b); a < tr->n; a = next_segment(*tr, b, &b)) {
    __syncthreads(); /* the previous segment is done with shared memory */
    simt_segment<T, DK, VEC>(p, w.kvh, tr->r0 + a, b - a, w.h0, w.nh, pp.gh, smem);
  }
}

/* ---- tensor-core prompt kernel (F16 KV) ---- */

template <int DK>
struct tc_cfg {
  static constexpr int KT = 64;             /* keys per tile */
  static constexpr int KC = DK / 16;        /* k16 chunks of the head dim (scores) */
  static constexpr int NB = DK / 8;         /* n8 blocks of the head dim (values) */
  using L = pad_layout<__half, DK>;         /* K, V and query tiles */
  static constexpr int TILE = KT * L::PITCH; /* bytes of a K or V tile */
  static constexpr int KV = 0;              /* [2 stages][K, V] */
  static constexpr int QHI = KV + 4 * TILE; /* [QB][DK] f16 high parts of the queries */
  static constexpr int QLO = QHI + QB * L::PITCH; /* [QB][DK] f16 low parts of the queries */
  static constexpr int SLOT = QLO + QB * L::PITCH; /* [2][KT] int64 */
  static constexpr int ROWS = SLOT + 2 * KT * 8;
  static constexpr int TOTAL = ROWS + (int)sizeof(tile_rows);
  static_assert(SLOT % 8 == 0 && TOTAL <= MAX_SMEM, "alignment, fits every target");
};

/* Keys per step of the tensor-core kernel: a K/V tile of 64 keys is consumed in two sub-tiles
 * of 32 (fewer score registers). */
constexpr int TC_SUB = 32;

/* Scores of this warp's 16 vectors against keys k0 .. k0 + 31 of the tile: s[nb][.] holds keys
 * k0 + 8nb + 2c, + 1 for vectors g (elements 0, 1) and g + 8 (2, 3), g = lane / 4, c = lane % 4. */
template <int DK>
__device__ __forceinline__ void tc_scores(const unsigned char *k_t, int k0, const unsigned char *qh_s,
                                          const unsigned char *ql_s, float (&s)[TC_SUB / 8][4]) {
  using L = pad_layout<__half, DK>;
  const int warp = (int)threadIdx.x / 32, lane = (int)threadIdx.x % 32, mi = lane >> 3, r = lane & 7;
#pragma unroll
  for (int nb = 0; nb < TC_SUB / 8; nb++) {
#pragma unroll
    for (int e = 0; e < 4; e++) s[nb][e] = 0.0f;
  }
#pragma unroll
  for (int kc = 0; kc < DK / 16; kc++) {
    /* A fragments of the warp's queries (high and low parts), dims 16kc ..: matrices
     * (vectors 0-7 | 8-15 by mi & 1) x (dims + 8 * (mi >> 1)) give a0..a3 */
    uint32_t qh[4], ql[4];
    ldmatrix_x4(qh, qh_s + L::offset(16 * warp + 8 * (mi & 1) + r, 2 * kc + (mi >> 1)));
    ldmatrix_x4(ql, ql_s + L::offset(16 * warp + 8 * (mi & 1) + r, 2 * kc + (mi >> 1)));
#pragma unroll
    for (int nb2 = 0; nb2 < TC_SUB / 16; nb2++) {
      /* keys of blocks 2nb2 (mi 0, 1) and 2nb2 + 1 (mi 2, 3), dims 16kc + 8 * (mi & 1) */
      uint32_t b[4];
      ldmatrix_x4(b, k_t + L::offset(k0 + 16 * nb2 + 8 * (mi >> 1) + r, 2 * kc + (mi & 1)));
      mma_16816(s[2 * nb2], qh, b[0], b[1]);
      mma_16816(s[2 * nb2], ql, b[0], b[1]);
      mma_16816(s[2 * nb2 + 1], qh, b[2], b[3]);
      mma_16816(s[2 * nb2 + 1], ql, b[2], b[3]);
    }
  }
}

/* o += P V over keys k0 .. k0 + 31 of the tile: P = the probabilities in s (scores' layout, which
 * is the A-fragment layout of two adjacent n8 blocks), V tile at v_t. */
template <int DK>
__device__ __forceinline__ void tc_values(const unsigned char *v_t, int k0, const float (&s)[TC_SUB / 8][4],
                                          float (&o)[DK / 8][4]) {
  using L = pad_layout<__half, DK>;
  const int lane = (int)threadIdx.x % 32, mi = lane >> 3, r = lane & 7;
#pragma unroll
  for (int kc = 0; kc < TC_SUB / 16; kc++) { /* keys k0 + 16kc .. + 15 = score blocks 2kc, 2kc + 1 */
    uint32_t ph[4], pl[4];
    split_f16x2(s[2 * kc][0], s[2 * kc][1], ph[0], pl[0]);         /* (g, 2c) */
    split_f16x2(s[2 * kc][2], s[2 * kc][3], ph[1], pl[1]);         /* (g + 8, 2c) */
    split_f16x2(s[2 * kc + 1][0], s[2 * kc + 1][1], ph[2], pl[2]); /* (g, 2c + 8) */
    split_f16x2(s[2 * kc + 1][2], s[2 * kc + 1][3], ph[3], pl[3]); /* (g + 8, 2c + 8) */
#pragma unroll
    for (int nb2 = 0; nb2 < DK / 16; nb2++) {
      /* matrices (transposed): keys k0 + 16kc + 8 * (mi & 1), dims of blocks 2nb2 (mi 0, 1) and
       * 2nb2 + 1 (mi 2, 3) */
      uint32_t b[4];
      ldmatrix_x4_trans(b, v_t + L::offset(k0 + 16 * kc + 8 * (mi & 1) + r, 2 * nb2 + (mi >> 1)));
      mma_16816(o[2 * nb2], ph, b[0], b[1]);
      mma_16816(o[2 * nb2 + 1], ph, b[2], b[3]);
      if (TC_SPLIT_P) {
        mma_16816(o[2 * nb2], pl, b[0], b[1]);
        mma_16816(o[2 * nb2 + 1], pl, b[2], b[3]);
      }
    }
  }
}

/* Keys t0 + k0 .. + 31 (tile at k_t, v_t) folded into the running (m, l, o) of the thread's two
 * vectors (contexts ctx[0], ctx[1]); a vector's 4 lanes (c = 0..3) share its m and l. */
template <int DK>
__device__ __forceinline__ void tc_subtile(const attn_params &p, const unsigned char *k_t, const unsigned char *v_t,
                                           int t0, int k0, const int (&ctx)[2], const unsigned char *qh_s,
                                           const unsigned char *ql_s, float (&m)[2], float (&l)[2],
                                           float (&o)[DK / 8][4]) {
  const int c = (int)threadIdx.x % 4;
  float s[TC_SUB / 8][4];
  tc_scores<DK>(k_t, k0, qh_s, ql_s, s);
  float mx[2] = {NEG_INF, NEG_INF};
#pragma unroll
  for (int nb = 0; nb < TC_SUB / 8; nb++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int rr = e >> 1, t = t0 + k0 + 8 * nb + 2 * c + (e & 1);
      s[nb][e] = t < ctx[rr] ? s[nb][e] * p.scale : NEG_INF;
      mx[rr] = fmaxf(mx[rr], s[nb][e]);
    }
  }
  float cr[2], rs[2] = {0.0f, 0.0f};
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    const float mn = fmaxf(m[rr], warp_max(mx[rr], 2));
    cr[rr] = rescale(m[rr], mn);
    m[rr] = mn;
  }
#pragma unroll
  for (int nb = 0; nb < TC_SUB / 8; nb++) {
#pragma unroll
    for (int e = 0; e < 4; e++) {
      s[nb][e] = prob(s[nb][e], m[e >> 1]);
      rs[e >> 1] += s[nb][e];
    }
  }
#pragma unroll
  for (int rr = 0; rr < 2; rr++) l[rr] = l[rr] * cr[rr] + rs[rr];
#pragma unroll
  for (int nb = 0; nb < DK / 8; nb++) {
    o[nb][0] *= cr[0];
    o[nb][1] *= cr[0];
    o[nb][2] *= cr[1];
    o[nb][3] *= cr[1];
  }
  tc_values<DK>(v_t, k0, s, o);
}

/* One segment (as simt_segment) on tensor cores: warp w owns vectors 16w .. 16w + 15. */
template <int DK>
__device__ void tc_segment(const attn_params &p, int kvh, int64_t r0, int n_seg, int h0, int nh, int gh,
                           unsigned char *smem) {
  using C = tc_cfg<DK>;
  using L = pad_layout<__half, DK>;
  unsigned char *kv_s = smem + C::KV;
  unsigned char *qh_s = smem + C::QHI, *ql_s = smem + C::QLO;
  int64_t *slot_s = reinterpret_cast<int64_t *>(smem + C::SLOT);
  const int tid = (int)threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, c = lane & 3;

  /* this thread's vectors g and g + 8 of the warp: pointers, contexts, query fragments */
  const float *qp[2];
  float *op[2];
  int ctx[2];
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    const qvec v = qvec_of(16 * warp + g + 8 * rr, r0, n_seg, h0, nh, gh);
    qp[rr] = v.valid ? p.q + (v.row * p.n_head + v.head) * (int64_t)p.dk : nullptr;
    op[rr] = v.valid ? p.out + (v.row * p.n_head + v.head) * (int64_t)p.dv : nullptr;
    ctx[rr] = v.valid ? row_keys(p, v.row) : 0;
  }
  /* queries as f16 high and low parts into shared memory (row 16 * warp + vector), at the places
   * of the A fragments a0..a3 this thread would hold */
#pragma unroll
  for (int kc = 0; kc < C::KC; kc++) {
#pragma unroll
    for (int i = 0; i < 4; i++) { /* a0: (g, 2c) a1: (g + 8, 2c) a2: (g, 2c + 8) a3: (g + 8, 2c + 8) */
      const int rr = i & 1, dim = 16 * kc + 8 * (i >> 1) + 2 * c;
      float2 x = make_float2(0.0f, 0.0f);
      if (qp[rr] && dim < p.dk) x = *reinterpret_cast<const float2 *>(qp[rr] + dim);
      uint32_t hi, lo;
      split_f16x2(x.x, x.y, hi, lo);
      const int at = L::offset(16 * warp + g + 8 * rr, 2 * kc + (i >> 1)) + 4 * c;
      *reinterpret_cast<uint32_t *>(qh_s + at) = hi;
      *reinterpret_cast<uint32_t *>(ql_s + at) = lo;
    }
  }

  const int kmax = row_keys(p, r0 + n_seg - 1);
  const int32_t *blocks = row_blocks(p, r0);
  const int n_kt = (kmax + C::KT - 1) / C::KT;
  auto slot_at = [&](int it) -> int64_t {
    const int t = it * C::KT + tid;
    return t < kmax ? key_slot(blocks, p.block_size, t) : -1;
  };
  int64_t next_slot = -1;
  if (tid < C::KT) {
    slot_s[tid] = slot_at(0);
    if (n_kt > 1) next_slot = slot_at(1);
  }
  __syncthreads();
  if (n_kt > 0) { /* (no copy may be left in flight when the segment ends) */
    load_kv<__half, DK, C::KT, L, TC_THREADS, true>(p, kvh, slot_s, kv_s, kv_s + C::TILE);
    cp_async_commit();
  }

  float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
  float o[C::NB][4];
#pragma unroll
  for (int nb = 0; nb < C::NB; nb++) {
#pragma unroll
    for (int e = 0; e < 4; e++) o[nb][e] = 0.0f;
  }
  for (int it = 0; it < n_kt; it++) {
    const int st = it & 1;
    if (it + 1 < n_kt) {
      if (tid < C::KT) {
        slot_s[(st ^ 1) * C::KT + tid] = next_slot;
        if (it + 2 < n_kt) next_slot = slot_at(it + 2);
      }
      __syncthreads();
      unsigned char *stage = kv_s + (st ^ 1) * 2 * C::TILE;
      load_kv<__half, DK, C::KT, L, TC_THREADS, true>(p, kvh, slot_s + (st ^ 1) * C::KT, stage, stage + C::TILE);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const unsigned char *k_t = kv_s + st * 2 * C::TILE, *v_t = k_t + C::TILE;

#pragma unroll 1
    for (int k0 = 0; k0 < C::KT; k0 += TC_SUB) {
      if (it * C::KT + k0 < kmax) tc_subtile<DK>(p, k_t, v_t, it * C::KT, k0, ctx, qh_s, ql_s, m, l, o);
    }
    __syncthreads(); /* stage st is free for tile it + 2 */
  }

#pragma unroll
  for (int rr = 0; rr < 2; rr++) l[rr] = warp_sum(l[rr], 2); /* all lanes, before any of them skips */
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    const float sum = l[rr];
    if (!op[rr]) continue;
#pragma unroll
    for (int nb = 0; nb < C::NB; nb++) {
      const int col = 8 * nb + 2 * c;
      if (col < p.dv) {
        const float2 v = sum > 0.0f ? make_float2(o[nb][2 * rr] / sum, o[nb][2 * rr + 1] / sum)
                                    : make_float2(0.0f, 0.0f);
        *reinterpret_cast<float2 *>(op[rr] + col) = v;
      }
    }
  }
}

template <int DK>
__global__ void __launch_bounds__(TC_THREADS, 2) attn_prompt_tc_kernel(attn_params p, prompt_plan pp) {
  using C = tc_cfg<DK>;
  extern __shared__ __align__(16) unsigned char smem[];
  tile_rows *tr = reinterpret_cast<tile_rows *>(smem + C::ROWS);
  const prompt_work w = prompt_work_of(p, pp);
  load_tile_rows(p, pp, w.tile, tr);
  __syncthreads();
  int b = 0;
  for (int a = next_segment(*tr, 0, &b); a < tr->n; a = next_segment(*tr, b, &b)) {
    __syncthreads();
    tc_segment<DK>(p, w.kvh, tr->r0 + a, b - a, w.h0, w.nh, pp.gh, smem);
  }
}

/* ================================ host side ================================ */

bool aligned(const void *ptr, size_t n) { return ((uintptr_t)ptr % n) == 0; }

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

int64_t partial_capacity(int64_t n_rows, int n_head) {
  const int64_t per_rows = n_rows * n_head;
  return per_rows > SPLIT_PARTIALS ? per_rows : SPLIT_PARTIALS;
}

/* Byte offsets of the scratch regions for a call with n_rows rows (each grows with n_rows). */
struct scratch_layout {
  size_t part_ml, part_o, run_row, list, n_list, tickets, total;
};
scratch_layout scratch_layout_of(int64_t n_rows, int n_head, int dv) {
  const size_t cap = (size_t)partial_capacity(n_rows, n_head);
  scratch_layout s;
  size_t off = 0;
  s.part_ml = off;
  off += round_up(cap * sizeof(float2), 256);
  s.part_o = off;
  off += round_up(cap * (size_t)dv * sizeof(float), 256);
  s.run_row = off;
  off += round_up((size_t)n_rows, 256);
  s.list = off;
  off += round_up((size_t)n_rows * sizeof(int32_t), 256);
  s.n_list = off;
  off += 256;
  s.tickets = off; /* one per (row, head) at most: (row, kv head, subgroup) */
  off += round_up((size_t)n_rows * (size_t)n_head * sizeof(int), 256);
  s.total = off;
  return s;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* A decode kernel instance and its launch needs. */
typedef void (*dec_fn)(attn_params, dec_list);
struct dec_kernel {
  dec_fn fn;
  int smem, kt, gb;
};
template <typename T, int DK, int GB, bool VEC>
dec_kernel dec_entry() {
  return {attn_decode_kernel<T, DK, GB, VEC>, dec_smem<T, DK, GB>::TOTAL, dec_cfg<T, DK>::KT, GB};
}
template <typename T>
dec_kernel pick_decode_t(int dkb, int group, bool vec) {
  if (!vec) return dec_entry<T, 256, 8, false>();
  const bool g4 = group <= 4;
  if (dkb == 64) return g4 ? dec_entry<T, 64, 4, true>() : dec_entry<T, 64, 8, true>();
  if (dkb == 128) return g4 ? dec_entry<T, 128, 4, true>() : dec_entry<T, 128, 8, true>();
  return g4 ? dec_entry<T, 256, 4, true>() : dec_entry<T, 256, 8, true>();
}

typedef void (*prompt_fn)(attn_params, prompt_plan);
struct prompt_kernel {
  prompt_fn fn;
  int smem, threads;
};
template <typename T>
prompt_kernel pick_prompt_simt(int dkb, bool vec) {
  if (!vec) return {attn_prompt_kernel<T, 256, false>, simt_cfg<T, 256>::TOTAL, SIMT_THREADS};
  if (dkb == 64) return {attn_prompt_kernel<T, 64, true>, simt_cfg<T, 64>::TOTAL, SIMT_THREADS};
  if (dkb == 128) return {attn_prompt_kernel<T, 128, true>, simt_cfg<T, 128>::TOTAL, SIMT_THREADS};
  return {attn_prompt_kernel<T, 256, true>, simt_cfg<T, 256>::TOTAL, SIMT_THREADS};
}

template <typename F>
cudaError_t allow_smem(F fn, int bytes) {
  return cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

/* The decode kernel on `grid` CTAs, then the combine kernel if there are splits (a warp per
 * (row, head), at most combine_max CTAs: they loop over the rest). */
cudaError_t launch_decode(const dec_kernel &k, const attn_params &p, const dec_list &d, int64_t grid,
                          int64_t combine_max, cudaStream_t stream, bool pdl) {
  if (grid > INT32_MAX) return cudaErrorInvalidValue;
  cudaError_t e = allow_smem(k.fn, k.smem);
  if (e != cudaSuccess) return e;
  e = mlxr_cuda_launch(k.fn, dim3((unsigned)grid), dim3(DEC_THREADS), (size_t)k.smem, stream, pdl, p, d);
  if (e != cudaSuccess || d.splits == 1 || d.tickets) return e;
  int64_t cgrid = ceil_div(d.n_host * p.n_head, 4);
  if (cgrid > combine_max) cgrid = combine_max;
  if (cgrid > INT32_MAX) return cudaErrorInvalidValue;
  return mlxr_cuda_launch(attn_combine_kernel, dim3((unsigned)cgrid), dim3(128), 0, stream, pdl, p, d, k.kt);
}

/* Splits for n_rows decode rows: enough CTAs to fill the GPU, within the scratch. The same in and
 * out of graph mode (a function of the shapes only): a decode step run op by op (the first of
 * each row count, before its graph is captured) then sums in the same order as the replays, so
 * a sequence's tokens do not depend on which of the two computed them. Short contexts are no
 * slower for it: their splits past the keys are empty items (split_chunk). */
int decode_splits(int64_t n_rows, int n_head, int64_t items, int n_sm) {
  int64_t s = ceil_div((int64_t)DEC_CTAS_PER_SM * n_sm, items);
  if (s > MAX_SPLITS) s = MAX_SPLITS;
  const int64_t room = partial_capacity(n_rows, n_head) / (n_rows * n_head);
  if (s > room) s = room;
  return s < 1 ? 1 : (int)s;
}

} /* namespace */

size_t mlxr_cuda_attention_scratch_bytes(int64_t n_rows, int n_head, int head_dim_v) {
  if (n_rows < 1) n_rows = 1;
  if (n_head < 1) n_head = 1;
  if (head_dim_v < 1) head_dim_v = 1;
  return scratch_layout_of(n_rows, n_head, head_dim_v).total;
}

cudaError_t mlxr_cuda_attention(const mlxr_attn_args *a, bool graph_mode, int n_sm, void *scratch,
                                cudaStream_t stream, bool pdl, bool split_merge) {
  if (!a || a->n_rows < 0 || n_sm <= 0) return cudaErrorInvalidValue;
  if (a->n_head <= 0 || a->n_head_kv <= 0 || a->n_head % a->n_head_kv != 0) return cudaErrorInvalidValue;
  if (a->head_dim_k <= 0 || a->head_dim_k > 256 || a->head_dim_v <= 0 || a->head_dim_v > 256) {
    return cudaErrorInvalidValue;
  }
  if (a->kv_type != MLXR_DTYPE_F32 && a->kv_type != MLXR_DTYPE_F16) return cudaErrorInvalidValue;
  if (a->block_size <= 0 || a->table_stride <= 0) return cudaErrorInvalidValue;
  if (a->n_rows == 0) return cudaSuccess;
  if (!a->q || !a->out || !a->k_pool || !a->v_pool || !a->block_tables || !a->row_table || !a->n_ctx) {
    return cudaErrorInvalidValue;
  }
  /* work-item counts (rows x heads x splits) stay below 2^31 */
  if ((int64_t)a->n_rows * a->n_head * MAX_SPLITS > INT32_MAX) return cudaErrorInvalidValue;

  const bool f16 = a->kv_type == MLXR_DTYPE_F16;
  const int group = a->n_head / a->n_head_kv;
  const int dmax = a->head_dim_k > a->head_dim_v ? a->head_dim_k : a->head_dim_v;
  const int dkb = dmax <= 64 ? 64 : dmax <= 128 ? 128 : 256;
  const int ce = f16 ? 8 : 4; /* elements per 16 bytes */
  const bool vec = aligned(a->k_pool, 16) && aligned(a->v_pool, 16) && a->head_dim_k % ce == 0 &&
                   a->head_dim_v % ce == 0;
  const int64_t max_keys = (int64_t)a->table_stride * a->block_size;

  attn_params p;
  p.q = a->q;
  p.out = a->out;
  p.k_pool = a->k_pool;
  p.v_pool = a->v_pool;
  p.block_tables = a->block_tables;
  p.row_table = a->row_table;
  p.n_ctx = a->n_ctx;
  p.k_stride = (int64_t)a->n_head_kv * a->head_dim_k;
  p.v_stride = (int64_t)a->n_head_kv * a->head_dim_v;
  p.table_stride = a->table_stride;
  p.block_size = a->block_size;
  p.max_keys = (int)(max_keys < (1 << 30) ? max_keys : (1 << 30));
  p.n_head = a->n_head;
  p.n_head_kv = a->n_head_kv;
  p.group = group;
  p.dk = a->head_dim_k;
  p.dv = a->head_dim_v;
  p.scale = a->scale;

  const dec_kernel dk = f16 ? pick_decode_t<__half>(dkb, group, vec) : pick_decode_t<float>(dkb, group, vec);
  const int n_sub = (group + dk.gb - 1) / dk.gb;
  const int64_t n_rows = a->n_rows;
  const scratch_layout sl = scratch_layout_of(n_rows, a->n_head, a->head_dim_v);
  unsigned char *sc = static_cast<unsigned char *>(scratch);
  if (sc && !aligned(sc, 16)) return cudaErrorInvalidValue;

  dec_list d;
  d.n_sub = n_sub;
  d.part_ml = sc ? reinterpret_cast<float2 *>(sc + sl.part_ml) : nullptr;
  d.part_o = sc ? reinterpret_cast<float *>(sc + sl.part_o) : nullptr;
  d.tickets = nullptr;
  d.n_host = n_rows;
  const int64_t room = partial_capacity(n_rows, a->n_head) / (n_rows * a->n_head);

  if (graph_mode || n_rows < PROMPT_MIN_ROWS) {
    /* decode: a CTA per (row, kv head, subgroup, split) */
    const int64_t items = n_rows * a->n_head_kv * n_sub;
    d.rows = nullptr;
    d.n_dev = nullptr;
    d.splits = decode_splits(n_rows, a->n_head, items, n_sm);
    if (d.splits > 1 && !sc) return cudaErrorInvalidValue;
    if (split_merge && sc) d.tickets = reinterpret_cast<int *>(sc + sl.tickets); /* no combine kernel */
    const int64_t wave = (int64_t)n_sm * (dk.gb <= 4 ? 3 : 2); /* the kernel's launch bounds */
    const int64_t grid = items * d.splits < wave ? items * d.splits : wave;
    return launch_decode(dk, p, d, grid, INT32_MAX, stream, pdl);
  }

  /* prompt: plan, tiles of runs, then the listed rows through the decode kernel */
  if (!sc) return cudaErrorInvalidValue;
  uint8_t *run_row = sc + sl.run_row;
  prompt_plan pp;
  pp.run_row = run_row;
  pp.n_rows = n_rows;
  if (group <= QB) {
    pp.gh = group;
    pp.n_sub = 1;
    pp.qt = QB / group;
  } else {
    pp.gh = QB;
    pp.n_sub = (group + QB - 1) / QB;
    pp.qt = 1;
  }
  pp.n_tiles = ceil_div(n_rows, pp.qt);
  int32_t *list = reinterpret_cast<int32_t *>(sc + sl.list);
  int32_t *n_list = reinterpret_cast<int32_t *>(sc + sl.n_list);

  cudaError_t e = cudaMemsetAsync(n_list, 0, sizeof(int32_t), stream);
  if (e != cudaSuccess) return e;
  attn_plan_kernel<<<(unsigned)ceil_div(n_rows, 256), 256, 0, stream>>>(a->row_table, a->n_ctx, n_rows,
                                                                         run_row, list, n_list);

  const bool tc = f16 && vec && a->head_dim_k == a->head_dim_v && a->head_dim_k % 16 == 0 &&
                  a->head_dim_k <= 128 && aligned(a->q, 8) && aligned(a->out, 8);
  prompt_kernel pk;
  if (tc) {
    pk = dkb == 64 ? prompt_kernel{attn_prompt_tc_kernel<64>, tc_cfg<64>::TOTAL, TC_THREADS}
                   : prompt_kernel{attn_prompt_tc_kernel<128>, tc_cfg<128>::TOTAL, TC_THREADS};
  } else {
    pk = f16 ? pick_prompt_simt<__half>(dkb, vec) : pick_prompt_simt<float>(dkb, vec);
  }
  const int64_t pgrid = pp.n_tiles * a->n_head_kv * pp.n_sub;
  if (pgrid > INT32_MAX) return cudaErrorInvalidValue;
  e = allow_smem(pk.fn, pk.smem);
  if (e != cudaSuccess) return e;
  pk.fn<<<(unsigned)pgrid, pk.threads, (size_t)pk.smem, stream>>>(p, pp);

  /* listed rows: the kernel loops over the device-side list, the grid is sized for the most */
  d.rows = list;
  d.n_dev = n_list;
  int64_t s = ceil_div(a->max_ctx > 0 ? a->max_ctx : 1, LIST_SPLIT_KEYS);
  if (s > MAX_SPLITS) s = MAX_SPLITS;
  if (s > room) s = room;
  d.splits = s < 1 ? 1 : (int)s;
  int64_t grid = n_rows * a->n_head_kv * n_sub * d.splits;
  const int64_t most = (int64_t)n_sm * DEC_CTAS_PER_SM;
  if (grid > most) grid = most;
  return launch_decode(dk, p, d, grid, (int64_t)n_sm * 8, stream, false);
}
