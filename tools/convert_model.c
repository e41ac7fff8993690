/*
 * convert_model.c: `mlxr convert` driver: HF directory -> GGUF (see convert.h for the contract).
 *
 * Order of work, so that every input error is found before a byte is written:
 *   1. parse config.json and pick the architecture entry;
 *   2. open the safetensors checkpoint (single file or shards) by mmap;
 *   3. build the tensor plan and check it against the checkpoint: every planned tensor present
 *      with the planned shape and a float dtype (F32/F16/BF16), every checkpoint tensor used
 *      (or known to be ignorable), so a wrong config or a foreign checkpoint is an error;
 *   4. set the metadata keys and the tokenizer keys, declare the tensors, and stream each
 *      tensor's data through the GGUF writer (PATH.tmp, renamed on finish).
 * Tensor data: rows are read from the mapping (possibly unaligned: copied first), widened to
 * f32, reordered for the llama Q/K permutation, and narrowed to the output type with the
 * kernels' from_float (the reference quantizers, bit-compatible with ggml). A tensor whose
 * stored type already equals its output type and needs no permutation is written straight from
 * the mapping. One output buffer, the size of the largest tensor, is reused.
 *
 * Output types follow llama.cpp's converter: 1-D tensors (norms, biases) and rope_freqs stay F32;
 * 2-D tensors, token_embd included, take the requested type, except that a Q8_0 tensor whose row
 * length is not a multiple of 32 falls back to F16.
 */
#include "tools/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/fp16.h"
#include "core/common/status.h"
#include "core/formats/gguf.h"
#include "core/formats/safetensors.h"
#include "core/kernels/types.h"
#include "tools/convert_arch.h"
#include "tools/convert_tokenizer.h"
#include "tools/hf_config.h"

mlxr_convert_params mlxr_convert_default_params(void) {
  mlxr_convert_params p;
  memset(&p, 0, sizeof p);
  p.out_type = MLXR_DTYPE_F16;
  return p;
}

int mlxr_convert_file_type_of(mlxr_dtype t) {
  switch (t) {
  case MLXR_DTYPE_F32: return 0;
  case MLXR_DTYPE_F16: return 1;
  case MLXR_DTYPE_Q4_0: return 2;
  case MLXR_DTYPE_Q4_1: return 3;
  case MLXR_DTYPE_Q8_0: return 7;
  case MLXR_DTYPE_Q5_0: return 8;
  case MLXR_DTYPE_Q5_1: return 9;
  case MLXR_DTYPE_Q2_K: return 10;
  case MLXR_DTYPE_Q3_K: return 12; /* Q3_K_M, llama.cpp's alias for "Q3_K" */
  case MLXR_DTYPE_Q4_K: return 15; /* Q4_K_M, llama.cpp's alias for "Q4_K" */
  case MLXR_DTYPE_Q5_K: return 17; /* Q5_K_M, llama.cpp's alias for "Q5_K" */
  case MLXR_DTYPE_Q6_K: return 18;
  case MLXR_DTYPE_BF16: return 32;
  default: return -1;
  }
}

/* general.name default: the directory's last path component. */
static void dir_base_name(const char *dir, char *out, size_t cap) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--;
  size_t b = n;
  while (b > 0 && dir[b - 1] != '/') b--;
  size_t len = n - b;
  if (len == 0 || (len == 1 && dir[b] == '.')) {
    snprintf(out, cap, "model");
    return;
  }
  if (len >= cap) len = cap - 1;
  memcpy(out, dir + b, len);
  out[len] = '\0';
}

/* ---- keys ---- */

typedef struct key_writer {
  mlxr_gguf_writer *w;
  const char *arch;
  int rc; /* first failure, sticky */
} key_writer;

static void key_u32(key_writer *k, const char *suffix, int64_t v) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", k->arch, suffix);
  if (k->rc == 0) k->rc = mlxr_gguf_set_u32(k->w, key, (uint32_t)v);
}

static void key_f32(key_writer *k, const char *suffix, double v) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", k->arch, suffix);
  if (k->rc == 0) k->rc = mlxr_gguf_set_f32(k->w, key, (float)v);
}

static void key_str(key_writer *k, const char *suffix, const char *v) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", k->arch, suffix);
  if (k->rc == 0) k->rc = mlxr_gguf_set_str(k->w, key, v);
}

static int write_model_keys(mlxr_gguf_writer *w, const char *arch, const mlxr_hf_config *c,
                            char *err, size_t err_len) {
  key_writer k = {w, arch, 0};
  k.rc = mlxr_gguf_set_u32(w, "general.quantization_version", 2);
  key_u32(&k, "vocab_size", c->vocab_size);
  if (c->max_position_embeddings > 0) key_u32(&k, "context_length", c->max_position_embeddings);
  key_u32(&k, "embedding_length", c->hidden_size);
  key_u32(&k, "block_count", c->n_layer);
  key_u32(&k, "feed_forward_length", c->intermediate_size);
  key_u32(&k, "attention.head_count", c->n_head);
  key_u32(&k, "attention.head_count_kv", c->n_head_kv);
  key_f32(&k, "rope.freq_base", c->rope_theta);
  key_f32(&k, "attention.layer_norm_rms_epsilon", c->rms_norm_eps);
  if (c->head_dim_explicit) {
    key_u32(&k, "attention.key_length", c->head_dim);
    key_u32(&k, "attention.value_length", c->head_dim);
  }
  key_u32(&k, "rope.dimension_count", c->head_dim);
  if (c->rope_scaling == MLXR_ROPE_SCALING_LINEAR) {
    key_str(&k, "rope.scaling.type", "linear");
    key_f32(&k, "rope.scaling.factor", c->rope_factor);
  } else if (c->rope_scaling == MLXR_ROPE_SCALING_YARN) {
    key_str(&k, "rope.scaling.type", "yarn");
    key_f32(&k, "rope.scaling.factor", c->rope_factor);
    key_u32(&k, "rope.scaling.original_context_length", c->rope_orig_ctx);
    if (c->has_yarn_ext_factor) key_f32(&k, "rope.scaling.yarn_ext_factor", c->yarn_ext_factor);
    if (c->has_yarn_attn_factor) key_f32(&k, "rope.scaling.yarn_attn_factor", c->yarn_attn_factor);
    if (c->has_yarn_beta_fast) key_f32(&k, "rope.scaling.yarn_beta_fast", c->yarn_beta_fast);
    if (c->has_yarn_beta_slow) key_f32(&k, "rope.scaling.yarn_beta_slow", c->yarn_beta_slow);
  }
  if (k.rc < 0) return mlxr_errf(err, err_len, k.rc, "cannot set model metadata: %s",
                                 mlxr_status_str(k.rc));
  return MLXR_OK;
}

/* ---- tensor data ---- */

typedef struct conv_job {
  const mlxr_conv_tensor *plan;
  const mlxr_st_tensor *src; /* NULL for computed tensors */
  mlxr_dtype out_type;
  size_t out_bytes;
} conv_job;

/* Source row index for output row r under llama.cpp's permute(w, n_heads) of a [rows, ...]
 * tensor: reshape(n_heads, 2, rows/n_heads/2, ...).swapaxes(1, 2). */
static int64_t permuted_row(int64_t r, int64_t rows, int64_t n_heads) {
  const int64_t hd = rows / n_heads;
  const int64_t h = r / hd, w = r % hd;
  return h * hd + (w % 2) * (hd / 2) + w / 2;
}

static size_t st_elem_size(mlxr_st_dtype t) {
  return t == MLXR_ST_F32 ? 4 : 2;
}

/* Widen n elements at src (any alignment) of dtype t to f32. raw is scratch of n*4 bytes. */
static void row_to_f32(mlxr_st_dtype t, const void *src, int64_t n, void *raw, float *dst) {
  if (t == MLXR_ST_F32) {
    memcpy(dst, src, (size_t)n * 4);
    return;
  }
  memcpy(raw, src, (size_t)n * 2);
  const uint16_t *h = raw;
  if (t == MLXR_ST_F16)
    for (int64_t i = 0; i < n; i++) dst[i] = mlxr_f16_to_f32(h[i]);
  else
    for (int64_t i = 0; i < n; i++) dst[i] = mlxr_bf16_to_f32(h[i]);
}

/* Narrow n f32 values to type t at dst. */
static void row_from_f32(const mlxr_type_traits *tr, mlxr_dtype t, const float *src, void *dst,
                         int64_t n) {
  if (t == MLXR_DTYPE_F32) {
    memcpy(dst, src, (size_t)n * 4);
  } else if (tr && tr->from_float) {
    tr->from_float(src, dst, n);
  } else if (t == MLXR_DTYPE_F16) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = mlxr_f32_to_f16(src[i]);
  } else { /* BF16; other types are rejected before writing starts */
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = mlxr_f32_to_bf16(src[i]);
  }
}

static bool st_matches_out(mlxr_st_dtype s, mlxr_dtype o) {
  return (s == MLXR_ST_F32 && o == MLXR_DTYPE_F32) || (s == MLXR_ST_F16 && o == MLXR_DTYPE_F16) ||
         (s == MLXR_ST_BF16 && o == MLXR_DTYPE_BF16);
}

/* Produce the output bytes of one tensor. Returns a pointer to write (into buf or into the
 * mapping). */
static const void *produce_tensor(const conv_job *j, const mlxr_hf_config *cfg,
                                  mlxr_simd_level simd, uint8_t *buf, float *row_f32, void *raw) {
  const mlxr_conv_tensor *p = j->plan;
  if (p->source == MLXR_CONV_SRC_ROPE_FREQS) {
    mlxr_convert_llama3_rope_factors(cfg, (float *)(void *)buf);
    return buf;
  }
  const mlxr_st_tensor *s = j->src;
  /* View the tensor as rows x cols; a permuted 1-D bias is rows of one element. */
  const int64_t rows = p->n_dims == 2 ? p->ne[1] : (p->permute_heads ? p->ne[0] : 1);
  const int64_t cols = p->n_dims == 2 ? p->ne[0] : (p->permute_heads ? 1 : p->ne[0]);
  if (p->permute_heads == 0 && st_matches_out(s->dtype, j->out_type)) return s->data;

  const size_t in_row = (size_t)cols * st_elem_size(s->dtype);
  const size_t out_row = j->out_bytes / (size_t)rows;
  const mlxr_type_traits *tr =
      j->out_type == MLXR_DTYPE_F32 ? NULL : mlxr_type_traits_get(j->out_type, simd);
  const bool same = st_matches_out(s->dtype, j->out_type);
  for (int64_t r = 0; r < rows; r++) {
    const int64_t sr = p->permute_heads ? permuted_row(r, rows, p->permute_heads) : r;
    const uint8_t *src_row = (const uint8_t *)s->data + (size_t)sr * in_row;
    uint8_t *dst_row = buf + (size_t)r * out_row;
    if (same) {
      memcpy(dst_row, src_row, in_row);
    } else {
      row_to_f32(s->dtype, src_row, cols, raw, row_f32);
      row_from_f32(tr, j->out_type, row_f32, dst_row, cols);
    }
  }
  return buf;
}

/* ---- validation ---- */

static int check_source(const conv_job *j, char *err, size_t err_len) {
  const mlxr_conv_tensor *p = j->plan;
  const mlxr_st_tensor *s = j->src;
  if (s->dtype != MLXR_ST_F32 && s->dtype != MLXR_ST_F16 && s->dtype != MLXR_ST_BF16)
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "tensor %s has dtype %s; only F32, F16 and BF16 can be converted",
                     s->name, mlxr_st_dtype_name(s->dtype));
  bool ok;
  if (p->n_dims == 2)
    ok = s->n_dims == 2 && s->shape[0] == p->ne[1] && s->shape[1] == p->ne[0];
  else
    ok = s->n_dims == 1 && s->shape[0] == p->ne[0];
  if (!ok) {
    char got[128];
    size_t off = 0;
    got[0] = '\0';
    for (int d = 0; d < s->n_dims && off < sizeof got; d++)
      off += (size_t)snprintf(got + off, sizeof got - off, "%s%lld", d ? ", " : "",
                              (long long)s->shape[d]);
    if (p->n_dims == 2)
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                       "tensor %s has shape [%s], config.json implies [%lld, %lld]", s->name, got,
                       (long long)p->ne[1], (long long)p->ne[0]);
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "tensor %s has shape [%s], config.json implies [%lld]", s->name, got,
                     (long long)p->ne[0]);
  }
  const int64_t rows = p->n_dims == 2 ? p->ne[1] : p->ne[0];
  if (p->permute_heads && rows % (2 * p->permute_heads) != 0)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "tensor %s: %lld rows cannot be split into %lld heads of even size",
                     s->name, (long long)rows, (long long)p->permute_heads);
  return MLXR_OK;
}

static mlxr_dtype pick_out_type(const mlxr_conv_tensor *p, mlxr_dtype want, int64_t *n_fallback) {
  if (p->n_dims != 2) return MLXR_DTYPE_F32;
  int64_t bs = mlxr_dtype_block_size(want);
  if (bs > 1 && p->ne[0] % bs != 0) {
    (*n_fallback)++;
    return MLXR_DTYPE_F16;
  }
  return want;
}

/* ---- vocab only ---- */

static int convert_vocab_only(const mlxr_convert_params *prm, const char *name,
                              mlxr_convert_stats *stats, char *err, size_t err_len) {
  mlxr_hf_config cfg;
  const char *arch = "llama";
  char arch_buf[64];
  int rc = mlxr_hf_config_load(prm->hf_dir, false, &cfg, err, err_len);
  if (rc < 0 && rc != MLXR_ERR_NOT_FOUND) return rc;
  if (rc == MLXR_OK) {
    const mlxr_convert_arch *a = mlxr_convert_arch_find(cfg.hf_arch);
    if (a) {
      arch = a->gguf_arch;
    } else if (cfg.model_type[0]) {
      snprintf(arch_buf, sizeof arch_buf, "%s", cfg.model_type);
      arch = arch_buf;
    }
  }
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  if (!w) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  rc = mlxr_gguf_set_str(w, "general.architecture", arch);
  if (rc == 0) rc = mlxr_gguf_set_str(w, "general.name", name);
  if (rc < 0) {
    mlxr_errf(err, err_len, rc, "cannot set metadata: %s", mlxr_status_str(rc));
    goto done;
  }
  if ((rc = mlxr_convert_tokenizer(prm->hf_dir, w, err, err_len)) < 0) goto done;
  if ((rc = mlxr_gguf_writer_begin(w, prm->out_path, err, err_len)) < 0) goto done;
  if ((rc = mlxr_gguf_writer_finish(w, err, err_len)) < 0) goto done;
  if (stats) snprintf(stats->arch, sizeof stats->arch, "%s", arch);
  if (prm->progress) prm->progress(prm->progress_user, 0, 0, 0, 0, NULL);
done:
  mlxr_gguf_writer_free(w);
  return rc;
}

/* ---- full conversion ---- */

int mlxr_convert_hf(const mlxr_convert_params *prm, mlxr_convert_stats *stats, char *err,
                    size_t err_len) {
  if (stats) memset(stats, 0, sizeof *stats);
  if (!prm || !prm->hf_dir || !prm->out_path)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "convert: input directory and output path "
                                                     "are required");
  const mlxr_dtype want = prm->out_type;
  if (want != MLXR_DTYPE_F32 && want != MLXR_DTYPE_F16 && want != MLXR_DTYPE_BF16 &&
      want != MLXR_DTYPE_Q8_0)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "convert: output type %s is not one of f32, f16, bf16, q8_0 (use `mlxr "
                     "quantize` for others)",
                     mlxr_dtype_name(want));
  char name[256];
  if (prm->name)
    snprintf(name, sizeof name, "%s", prm->name);
  else
    dir_base_name(prm->hf_dir, name, sizeof name);
  if (prm->vocab_only) return convert_vocab_only(prm, name, stats, err, err_len);

  mlxr_hf_config cfg;
  int rc = mlxr_hf_config_load(prm->hf_dir, true, &cfg, err, err_len);
  if (rc < 0) return rc;
  if (cfg.hf_arch[0] == '\0')
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: no \"architectures\" entry");
  const mlxr_convert_arch *arch = mlxr_convert_arch_find(cfg.hf_arch);
  if (!arch)
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "architecture %s is not supported (supported: %s)", cfg.hf_arch,
                     mlxr_convert_arch_supported());

  mlxr_safetensors *st = NULL;
  mlxr_conv_tensor *plan = NULL;
  conv_job *jobs = NULL;
  mlxr_gguf_writer *w = NULL;
  uint8_t *buf = NULL;
  float *row_f32 = NULL;
  void *raw = NULL;
  size_t n_plan = 0;

  if ((rc = mlxr_safetensors_open(prm->hf_dir, &st, err, err_len)) < 0) goto done;

  /* Tied embeddings: config says so, or (key absent) the checkpoint has no lm_head. */
  const bool has_lm_head = mlxr_safetensors_find(st, "lm_head.weight") != NULL;
  const bool want_output = cfg.tie_explicit ? !cfg.tie_word_embeddings : has_lm_head;
  if ((rc = mlxr_convert_plan(arch, &cfg, want_output, &plan, &n_plan, err, err_len)) < 0)
    goto done;

  const int64_t n_st = mlxr_safetensors_n_tensors(st);
  jobs = calloc(n_plan ? n_plan : 1, sizeof *jobs);
  if (!jobs) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    goto done;
  }
  int64_t n_fallback = 0;
  size_t max_bytes = 0;
  int64_t max_cols = 1;
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < n_plan; i++) {
    conv_job *j = &jobs[i];
    j->plan = &plan[i];
    if (plan[i].source == MLXR_CONV_SRC_TENSOR) {
      j->src = mlxr_safetensors_find(st, plan[i].hf_name);
      if (!j->src) {
        rc = mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND,
                       "missing tensor %s (needed for %s of %s)", plan[i].hf_name, plan[i].name,
                       cfg.hf_arch);
        goto done;
      }
      if ((rc = check_source(j, err, err_len)) < 0) goto done;
    }
    j->out_type = pick_out_type(&plan[i], want, &n_fallback);
    if (!mlxr_dtype_row_size(j->out_type, plan[i].ne[0], &j->out_bytes) ||
        j->out_bytes > SIZE_MAX / (size_t)plan[i].ne[1]) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_RANGE, "tensor %s is too large", plan[i].name);
      goto done;
    }
    j->out_bytes *= (size_t)plan[i].ne[1];
    if (j->out_bytes > max_bytes) max_bytes = j->out_bytes;
    if (plan[i].ne[0] > max_cols) max_cols = plan[i].ne[0];
    total_bytes += j->out_bytes;
  }
  /* Every checkpoint tensor must be accounted for. */
  for (int64_t i = 0; i < n_st; i++) {
    const mlxr_st_tensor *t = mlxr_safetensors_tensor_at(st, i);
    bool found = mlxr_convert_ignorable(t->name) ||
                 (!want_output && strcmp(t->name, "lm_head.weight") == 0);
    for (size_t k = 0; k < n_plan && !found; k++) found = jobs[k].src == t;
    if (!found) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "tensor %s in the checkpoint has no place in a %s GGUF", t->name,
                     arch->gguf_arch);
      goto done;
    }
  }

  mlxr_simd_level simd = mlxr_cpu_detect_simd();
  if (want == MLXR_DTYPE_Q8_0) {
    const mlxr_type_traits *tr = mlxr_type_traits_get(MLXR_DTYPE_Q8_0, simd);
    if (!tr || !tr->from_float) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "no q8_0 quantizer available");
      goto done;
    }
  }

  /* Metadata, tokenizer, tensor infos. */
  w = mlxr_gguf_writer_new();
  if (!w) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    goto done;
  }
  const int file_type = mlxr_convert_file_type_of(want);
  rc = mlxr_gguf_set_str(w, "general.architecture", arch->gguf_arch);
  if (rc == 0) rc = mlxr_gguf_set_str(w, "general.name", name);
  if (rc == 0) rc = mlxr_gguf_set_u32(w, "general.file_type", (uint32_t)file_type);
  if (rc < 0) {
    mlxr_errf(err, err_len, rc, "cannot set metadata: %s", mlxr_status_str(rc));
    goto done;
  }
  if ((rc = write_model_keys(w, arch->gguf_arch, &cfg, err, err_len)) < 0) goto done;
  if ((rc = mlxr_convert_tokenizer(prm->hf_dir, w, err, err_len)) < 0) goto done;
  for (size_t i = 0; i < n_plan; i++) {
    if ((rc = mlxr_gguf_add_tensor(w, plan[i].name, jobs[i].out_type, plan[i].n_dims,
                                   plan[i].ne)) < 0) {
      mlxr_errf(err, err_len, rc, "cannot add tensor %s: %s", plan[i].name, mlxr_status_str(rc));
      goto done;
    }
  }

  buf = malloc(max_bytes ? max_bytes : 1);
  row_f32 = malloc((size_t)max_cols * sizeof(float));
  raw = malloc((size_t)max_cols * sizeof(float));
  if (!buf || !row_f32 || !raw) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory (%zu bytes for the largest tensor)",
                   max_bytes);
    goto done;
  }

  if ((rc = mlxr_gguf_writer_begin(w, prm->out_path, err, err_len)) < 0) goto done;
  uint64_t done_bytes = 0;
  for (size_t i = 0; i < n_plan; i++) {
    if (prm->progress)
      prm->progress(prm->progress_user, (int64_t)i, (int64_t)n_plan, done_bytes, total_bytes,
                    plan[i].name);
    const void *data = produce_tensor(&jobs[i], &cfg, simd, buf, row_f32, raw);
    if ((rc = mlxr_gguf_writer_write_tensor(w, data, jobs[i].out_bytes, err, err_len)) < 0)
      goto done;
    done_bytes += jobs[i].out_bytes;
  }
  if ((rc = mlxr_gguf_writer_finish(w, err, err_len)) < 0) goto done;
  if (prm->progress)
    prm->progress(prm->progress_user, (int64_t)n_plan, (int64_t)n_plan, done_bytes, total_bytes,
                  NULL);
  if (stats) {
    stats->n_tensors = (int64_t)n_plan;
    stats->data_bytes = done_bytes;
    stats->file_type = (uint32_t)file_type;
    stats->n_fallback = n_fallback;
    snprintf(stats->arch, sizeof stats->arch, "%s", arch->gguf_arch);
  }
  rc = MLXR_OK;

done:
  if (w) mlxr_gguf_writer_free(w);
  free(raw);
  free(row_f32);
  free(buf);
  free(jobs);
  free(plan);
  if (st) mlxr_safetensors_close(st);
  return rc;
}
