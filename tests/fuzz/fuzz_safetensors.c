/*
 * fuzz_safetensors.c: libFuzzer harness for the safetensors reader (Hugging Face and MLX
 * checkpoints are untrusted input).
 *
 * Each input is copied into a malloc'd buffer of exactly its size and opened with
 * mlxr_safetensors_open_memory. Properties: it opens, and then every tensor's bytes lie inside the
 * buffer and match its shape and dtype, and every tensor is found again by name; or it fails with
 * a negative status and a message. Built and run by scripts/fuzz.sh (seeds:
 * tests/fuzz/corpus/fuzz_safetensors/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  mlxr_safetensors *st = NULL;
  char err[256] = "";
  int rc = mlxr_safetensors_open_memory(buf, size, &st, err, sizeof(err));
  if (rc == 0) {
    for (int64_t i = 0; i < mlxr_safetensors_n_tensors(st); i++) {
      const mlxr_st_tensor *t = mlxr_safetensors_tensor_at(st, i);
      const uint8_t *p = t->data;
      if (p < buf || p > buf + size || t->nbytes > (size_t)(buf + size - p)) abort();
      uint64_t nel = 1;
      for (int d = 0; d < t->n_dims; d++) nel *= (uint64_t)t->shape[d];
      if (nel * mlxr_st_dtype_size(t->dtype) != t->nbytes) abort();
      if (mlxr_safetensors_find(st, t->name) != t) abort();
    }
    const char *fmt = mlxr_safetensors_metadata(st, "format");
    if (fmt && strlen(fmt) > size) abort();
    mlxr_safetensors_close(st);
  } else if (rc > 0 || err[0] == '\0' || st != NULL) {
    abort();
  }
  free(buf);
  return 0;
}
