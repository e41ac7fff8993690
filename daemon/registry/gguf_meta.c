/*
 * gguf_meta.c: what a stored GGUF blob says about its model, for the catalog row of a pull:
 * general.architecture, general.file_type (named as llama.cpp names its llama_ftype values),
 * <architecture>.context_length, and the parameter count (the elements of all tensors).
 *
 * How it works: the blob is opened by path with the GGUF reader (core/formats/gguf.h), which maps
 * it read-only and checks every count and offset; strings are copied only when printable and
 * short, so what reaches the catalog passes its checks. Nothing is kept after the call.
 */
#include <stdio.h>
#include <string.h>

#include "core/common/status.h"
#include "core/formats/gguf.h"
#include "daemon/registry/pull_impl.h"

/* llama.cpp's llama_ftype numbering (general.file_type); NULL where a number has no name. */
static const char *ftype_name(uint64_t t) {
  static const char *const names[] = {
      [0] = "F32",      [1] = "F16",      [2] = "Q4_0",     [3] = "Q4_1",    [7] = "Q8_0",    [8] = "Q5_0",
      [9] = "Q5_1",     [10] = "Q2_K",    [11] = "Q3_K_S",  [12] = "Q3_K_M",  [13] = "Q3_K_L", [14] = "Q4_K_S",
      [15] = "Q4_K_M",  [16] = "Q5_K_S",  [17] = "Q5_K_M",  [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS",
      [21] = "Q2_K_S",  [22] = "IQ3_XS",  [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL", [26] = "IQ3_S",
      [27] = "IQ3_M",   [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS",  [31] = "IQ1_M",  [32] = "BF16",
      [36] = "TQ1_0",   [37] = "TQ2_0",
  };
  return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

static void copy_label(char *dst, size_t cap, const char *s, size_t n) {
  dst[0] = '\0';
  if (!s || n == 0 || n >= cap) return;
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) return;
  }
  memcpy(dst, s, n);
  dst[n] = '\0';
}

int pull_gguf_read_meta(mlxr_store *st, const char *digest, pull_gguf_meta *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  char path[4096];
  int rc = mlxr_store_blob_path(st, digest, path, sizeof path, err, err_len);
  if (rc < 0) return rc;
  mlxr_gguf *g;
  if ((rc = mlxr_gguf_open(path, &g, err, err_len)) < 0) return rc;
  size_t n = 0;
  const char *arch = mlxr_gguf_get_str(g, "general.architecture", &n);
  copy_label(out->architecture, sizeof out->architecture, arch, n);
  uint64_t ft;
  if (mlxr_gguf_get_uint(g, "general.file_type", &ft) && ftype_name(ft)) {
    snprintf(out->quantization, sizeof out->quantization, "%s", ftype_name(ft));
  }
  if (out->architecture[0]) {
    char key[128];
    snprintf(key, sizeof key, "%s.context_length", out->architecture);
    uint64_t ctx;
    if (mlxr_gguf_get_uint(g, key, &ctx) && ctx <= ((uint64_t)1 << 32)) out->context_length = (int64_t)ctx;
  }
  int64_t total = 0;
  for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
    int64_t e = 1;
    for (int d = 0; d < t->n_dims; d++) {
      if (t->ne[d] <= 0 || e > INT64_MAX / t->ne[d]) {
        e = 0;
        break;
      }
      e *= t->ne[d];
    }
    if (e > INT64_MAX - total) break;
    total += e;
  }
  out->parameter_count = total;
  mlxr_gguf_close(g);
  return MLXR_OK;
}
