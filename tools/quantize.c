/*
 * quantize.c: GGUF requantization (see quantize.h for the contract and the type rules).
 *
 * Flow: open IN (mmap), pick each tensor's output type (llama.cpp's rules: which tensors are
 * quantizable, the Q4_K/Q5_K mixes, the shape fallbacks), copy every metadata key into a writer,
 * set general.file_type, declare the tensors, then for each tensor either write its bytes
 * straight from the mapping (type unchanged) or convert it row by row: to_float into a per-thread
 * f32 row, from_float into the output buffer. Rows are split evenly among threads; each thread
 * only touches its own rows and scratch. One output buffer, the size of the largest tensor, is
 * reused.
 */
#include "tools/quantize.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/common/fp16.h"
#include "core/common/status.h"
#include "core/formats/gguf.h"
#include "core/kernels/types.h"

#define QUANT_MAX_THREADS 256

static const mlxr_quant_scheme k_schemes[] = {
    {MLXR_DTYPE_F32, MLXR_QUANT_MIX_NONE, 0, "f32"},
    {MLXR_DTYPE_F16, MLXR_QUANT_MIX_NONE, 1, "f16"},
    {MLXR_DTYPE_BF16, MLXR_QUANT_MIX_NONE, 32, "bf16"},
    {MLXR_DTYPE_Q8_0, MLXR_QUANT_MIX_NONE, 7, "q8_0"},
    {MLXR_DTYPE_Q4_0, MLXR_QUANT_MIX_NONE, 2, "q4_0"},
    {MLXR_DTYPE_Q4_1, MLXR_QUANT_MIX_NONE, 3, "q4_1"},
    {MLXR_DTYPE_Q5_0, MLXR_QUANT_MIX_NONE, 8, "q5_0"},
    {MLXR_DTYPE_Q5_1, MLXR_QUANT_MIX_NONE, 9, "q5_1"},
    {MLXR_DTYPE_Q4_K, MLXR_QUANT_MIX_NONE, 15, "q4_K"},
    {MLXR_DTYPE_Q5_K, MLXR_QUANT_MIX_NONE, 17, "q5_K"},
    {MLXR_DTYPE_Q6_K, MLXR_QUANT_MIX_NONE, 18, "q6_K"},
    {MLXR_DTYPE_Q4_K, MLXR_QUANT_MIX_Q4_K_S, 14, "q4_K_S"},
    {MLXR_DTYPE_Q4_K, MLXR_QUANT_MIX_Q4_K_M, 15, "q4_K_M"},
    {MLXR_DTYPE_Q5_K, MLXR_QUANT_MIX_Q5_K_S, 16, "q5_K_S"},
    {MLXR_DTYPE_Q5_K, MLXR_QUANT_MIX_Q5_K_M, 17, "q5_K_M"},
};

bool mlxr_quantize_parse_type(const char *name, mlxr_quant_scheme *out) {
  if (!name) return false;
  for (size_t i = 0; i < sizeof k_schemes / sizeof k_schemes[0]; i++) {
    if (strcasecmp(k_schemes[i].name, name) == 0) {
      *out = k_schemes[i];
      return true;
    }
  }
  return false;
}

const char *mlxr_quantize_type_names(void) {
  return "f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K q6_K q4_K_S q4_K_M q5_K_S q5_K_M";
}

/* ---- type selection (llama.cpp src/llama-quant.cpp) ---- */

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool mlxr_quantize_tensor_allowed(const char *name, int n_dims) {
  return n_dims >= 2 && ends_with(name, "weight") && strstr(name, "_norm.weight") == NULL &&
         strstr(name, "ffn_gate_inp.weight") == NULL;
}

static bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

/* tensor_type_fallback: a type whose block size does not divide the row length. */
static mlxr_dtype fallback_type(mlxr_dtype t, int64_t ne0, int64_t *n_fallback) {
  int64_t bs = mlxr_dtype_block_size(t);
  if (bs <= 1 || ne0 % bs == 0) return t;
  (*n_fallback)++;
  mlxr_dtype r;
  switch (t) {
  case MLXR_DTYPE_Q2_K:
  case MLXR_DTYPE_Q3_K: r = MLXR_DTYPE_Q4_0; break;
  case MLXR_DTYPE_Q4_K: r = MLXR_DTYPE_Q5_0; break;
  case MLXR_DTYPE_Q5_K: r = MLXR_DTYPE_Q5_1; break;
  case MLXR_DTYPE_Q6_K: r = MLXR_DTYPE_Q8_0; break;
  default: r = MLXR_DTYPE_F16; break;
  }
  if (ne0 % mlxr_dtype_block_size(r) != 0) r = MLXR_DTYPE_F16;
  return r;
}

mlxr_dtype mlxr_quantize_pick_type(const mlxr_quant_scheme *s, mlxr_quant_state *st,
                                   const char *name, int n_dims, int64_t ne0, mlxr_dtype current) {
  if (!mlxr_quantize_tensor_allowed(name, n_dims)) return current;
  mlxr_dtype t = s->base;
  if (!mlxr_dtype_is_quantized(t)) return t;
  if (s->mix != MLXR_QUANT_MIX_NONE) {
    const bool is_output = strcmp(name, "output.weight") == 0;
    const bool is_embd = strcmp(name, "token_embd.weight") == 0;
    if (is_output || (st->tied && is_embd)) {
      if (ne0 % mlxr_dtype_block_size(t) != 0)
        t = MLXR_DTYPE_Q8_0;
      else
        t = MLXR_DTYPE_Q6_K;
    } else if (is_embd) {
      /* the scheme's base type */
    } else if (strstr(name, "attn_v.weight")) {
      if ((s->mix == MLXR_QUANT_MIX_Q4_K_M || s->mix == MLXR_QUANT_MIX_Q5_K_M) &&
          use_more_bits(st->i_attn_v, st->n_attn_v))
        t = MLXR_DTYPE_Q6_K;
      else if (s->mix == MLXR_QUANT_MIX_Q4_K_S && st->i_attn_v < 4)
        t = MLXR_DTYPE_Q5_K;
      st->i_attn_v++;
    } else if (strstr(name, "ffn_down")) {
      const int i = st->i_ffn_down, n = st->n_ffn_down;
      if ((s->mix == MLXR_QUANT_MIX_Q4_K_M || s->mix == MLXR_QUANT_MIX_Q5_K_M) &&
          use_more_bits(i, n))
        t = MLXR_DTYPE_Q6_K;
      else if (s->mix == MLXR_QUANT_MIX_Q4_K_S && i < n / 8)
        t = MLXR_DTYPE_Q5_K;
      st->i_ffn_down++;
    }
  }
  return fallback_type(t, ne0, &st->n_fallback);
}

/* ---- row conversion, threaded ---- */

typedef struct quant_task {
  const void *src;
  void *dst;
  mlxr_dtype src_type, dst_type;
  const mlxr_type_traits *src_tr, *dst_tr;
  int64_t ne0;
  size_t src_row, dst_row;  /* bytes per row */
  int64_t row_begin, row_end;
  float *scratch;           /* ne0 floats, this task's own */
} quant_task;

static void to_f32(const quant_task *t, const void *src, float *dst) {
  if (t->src_type == MLXR_DTYPE_F32) {
    memcpy(dst, src, (size_t)t->ne0 * 4);
  } else if (t->src_tr && t->src_tr->to_float) {
    t->src_tr->to_float(src, dst, t->ne0);
  } else if (t->src_type == MLXR_DTYPE_F16) {
    for (int64_t i = 0; i < t->ne0; i++) {
      uint16_t h;
      memcpy(&h, (const uint8_t *)src + 2 * i, 2);
      dst[i] = mlxr_f16_to_f32(h);
    }
  } else { /* BF16; others are rejected before work starts */
    for (int64_t i = 0; i < t->ne0; i++) {
      uint16_t h;
      memcpy(&h, (const uint8_t *)src + 2 * i, 2);
      dst[i] = mlxr_bf16_to_f32(h);
    }
  }
}

static void from_f32(const quant_task *t, const float *src, void *dst) {
  if (t->dst_type == MLXR_DTYPE_F32) {
    memcpy(dst, src, (size_t)t->ne0 * 4);
  } else if (t->dst_tr && t->dst_tr->from_float) {
    t->dst_tr->from_float(src, dst, t->ne0);
  } else if (t->dst_type == MLXR_DTYPE_F16) {
    for (int64_t i = 0; i < t->ne0; i++) {
      uint16_t h = mlxr_f32_to_f16(src[i]);
      memcpy((uint8_t *)dst + 2 * i, &h, 2);
    }
  } else {
    for (int64_t i = 0; i < t->ne0; i++) {
      uint16_t h = mlxr_f32_to_bf16(src[i]);
      memcpy((uint8_t *)dst + 2 * i, &h, 2);
    }
  }
}

static void *quant_worker(void *arg) {
  const quant_task *t = arg;
  for (int64_t r = t->row_begin; r < t->row_end; r++) {
    to_f32(t, (const uint8_t *)t->src + (size_t)r * t->src_row, t->scratch);
    from_f32(t, t->scratch, (uint8_t *)t->dst + (size_t)r * t->dst_row);
  }
  return NULL;
}

static bool can_dequantize(mlxr_dtype t, const mlxr_type_traits *tr) {
  return t == MLXR_DTYPE_F32 || t == MLXR_DTYPE_F16 || t == MLXR_DTYPE_BF16 ||
         (tr && tr->to_float);
}

static bool can_quantize(mlxr_dtype t, const mlxr_type_traits *tr) {
  return t == MLXR_DTYPE_F32 || t == MLXR_DTYPE_F16 || t == MLXR_DTYPE_BF16 ||
         (tr && tr->from_float);
}

/* Convert all rows of one tensor with up to n_threads threads. scratch holds n_threads * ne0
 * floats. */
static int convert_rows(quant_task base, int64_t n_rows, int n_threads, float *scratch) {
  quant_task tasks[QUANT_MAX_THREADS];
  pthread_t tids[QUANT_MAX_THREADS];
  /* Small tensors are not worth a thread. */
  const int64_t min_rows_per_thread = 16;
  int nt = n_threads;
  if ((int64_t)nt > n_rows / min_rows_per_thread) nt = (int)(n_rows / min_rows_per_thread);
  if (nt < 1) nt = 1;
  int started = 0;
  for (int i = 0; i < nt; i++) {
    tasks[i] = base;
    tasks[i].row_begin = n_rows * i / nt;
    tasks[i].row_end = n_rows * (i + 1) / nt;
    tasks[i].scratch = scratch + (size_t)i * (size_t)base.ne0;
  }
  for (int i = 1; i < nt; i++) {
    if (pthread_create(&tids[i], NULL, quant_worker, &tasks[i]) != 0) break;
    started = i;
  }
  /* Rows of threads that could not start are done here, after this thread's own. */
  quant_worker(&tasks[0]);
  for (int i = started + 1; i < nt; i++) quant_worker(&tasks[i]);
  for (int i = 1; i <= started; i++) pthread_join(tids[i], NULL);
  return MLXR_OK;
}

/* ---- driver ---- */

int mlxr_quantize_gguf(const mlxr_quantize_params *prm, mlxr_quantize_stats *stats, char *err,
                       size_t err_len) {
  if (stats) memset(stats, 0, sizeof *stats);
  if (!prm || !prm->in_path || !prm->out_path)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "quantize: input and output are required");
  int n_threads = prm->n_threads;
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int)n : 1;
  }
  if (n_threads > QUANT_MAX_THREADS) n_threads = QUANT_MAX_THREADS;

  mlxr_gguf *in = NULL;
  mlxr_gguf_writer *w = NULL;
  mlxr_dtype *types = NULL;
  uint8_t *buf = NULL;
  float *scratch = NULL;
  int rc = mlxr_gguf_open(prm->in_path, &in, err, err_len);
  if (rc < 0) return rc;

  const int64_t n = mlxr_gguf_n_tensors(in);
  types = malloc((size_t)(n > 0 ? n : 1) * sizeof *types);
  if (!types) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    goto done;
  }
  mlxr_quant_state qs;
  memset(&qs, 0, sizeof qs);
  qs.tied = mlxr_gguf_find_tensor(in, "output.weight") == NULL;
  for (int64_t i = 0; i < n; i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(in, i);
    if (strstr(t->name, "attn_v.weight")) qs.n_attn_v++;
    if (strstr(t->name, "ffn_down")) qs.n_ffn_down++;
  }

  const mlxr_simd_level simd = mlxr_cpu_detect_simd();
  size_t max_out = 1;
  int64_t max_ne0 = 1;
  uint64_t total_out = 0;
  int64_t n_changed = 0;
  for (int64_t i = 0; i < n; i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(in, i);
    mlxr_dtype nt = mlxr_quantize_pick_type(&prm->scheme, &qs, t->name, t->n_dims, t->ne[0],
                                            t->type);
    types[i] = nt;
    size_t row_bytes = 0;
    int64_t n_rows = 1;
    for (int d = 1; d < t->n_dims; d++) n_rows *= t->ne[d];
    if (!mlxr_dtype_row_size(nt, t->ne[0], &row_bytes) || n_rows <= 0 ||
        row_bytes > SIZE_MAX / (size_t)n_rows) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_RANGE, "tensor %s: cannot size it as %s", t->name,
                     mlxr_dtype_name(nt));
      goto done;
    }
    const size_t out_bytes = row_bytes * (size_t)n_rows;
    total_out += out_bytes;
    if (nt == t->type) continue;
    n_changed++;
    const mlxr_type_traits *src_tr = mlxr_type_traits_get(t->type, simd);
    const mlxr_type_traits *dst_tr = mlxr_type_traits_get(nt, simd);
    if (!can_dequantize(t->type, src_tr)) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "tensor %s is stored as %s, which cannot be dequantized", t->name,
                     mlxr_dtype_name(t->type));
      goto done;
    }
    if (!can_quantize(nt, dst_tr)) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "no quantizer for type %s (tensor %s)",
                     mlxr_dtype_name(nt), t->name);
      goto done;
    }
    if (out_bytes > max_out) max_out = out_bytes;
    if (t->ne[0] > max_ne0) max_ne0 = t->ne[0];
  }

  w = mlxr_gguf_writer_new();
  if (!w) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    goto done;
  }
  rc = mlxr_gguf_writer_copy_kv(w, in);
  if (rc == 0) rc = mlxr_gguf_set_u32(w, "general.file_type", prm->scheme.file_type);
  if (rc == 0) rc = mlxr_gguf_set_u32(w, "general.quantization_version", 2);
  if (rc < 0) {
    mlxr_errf(err, err_len, rc, "cannot copy metadata: %s", mlxr_status_str(rc));
    goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(in, i);
    if ((rc = mlxr_gguf_add_tensor(w, t->name, types[i], t->n_dims, t->ne)) < 0) {
      mlxr_errf(err, err_len, rc, "cannot add tensor %s: %s", t->name, mlxr_status_str(rc));
      goto done;
    }
  }
  buf = n_changed ? malloc(max_out) : NULL;
  scratch = n_changed ? malloc((size_t)n_threads * (size_t)max_ne0 * sizeof(float)) : NULL;
  if (n_changed && (!buf || !scratch)) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory (%zu bytes for the largest tensor)",
                   max_out);
    goto done;
  }

  if ((rc = mlxr_gguf_writer_begin(w, prm->out_path, err, err_len)) < 0) goto done;
  uint64_t done_bytes = 0, in_bytes = 0;
  for (int64_t i = 0; i < n; i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(in, i);
    if (prm->progress) prm->progress(prm->progress_user, i, n, done_bytes, total_out, t->name);
    int64_t n_rows = 1;
    for (int d = 1; d < t->n_dims; d++) n_rows *= t->ne[d];
    size_t dst_row = 0, src_row = 0;
    mlxr_dtype_row_size(types[i], t->ne[0], &dst_row);
    mlxr_dtype_row_size(t->type, t->ne[0], &src_row);
    const size_t out_bytes = dst_row * (size_t)n_rows;
    const void *data = t->data;
    if (types[i] != t->type) {
      quant_task base = {
          .src = t->data, .dst = buf, .src_type = t->type, .dst_type = types[i],
          .src_tr = mlxr_type_traits_get(t->type, simd), .dst_tr = mlxr_type_traits_get(types[i], simd),
          .ne0 = t->ne[0], .src_row = src_row, .dst_row = dst_row,
      };
      convert_rows(base, n_rows, n_threads, scratch);
      data = buf;
    }
    if ((rc = mlxr_gguf_writer_write_tensor(w, data, out_bytes, err, err_len)) < 0) goto done;
    done_bytes += out_bytes;
    in_bytes += t->nbytes;
  }
  if ((rc = mlxr_gguf_writer_finish(w, err, err_len)) < 0) goto done;
  if (prm->progress) prm->progress(prm->progress_user, n, n, done_bytes, total_out, NULL);
  if (stats) {
    stats->n_tensors = n;
    stats->n_requantized = n_changed;
    stats->n_fallback = qs.n_fallback;
    stats->in_bytes = in_bytes;
    stats->out_bytes = done_bytes;
  }
  rc = MLXR_OK;

done:
  free(scratch);
  free(buf);
  free(types);
  if (w) mlxr_gguf_writer_free(w);
  mlxr_gguf_close(in);
  return rc;
}
