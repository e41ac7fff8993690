/*
 * fuzz_gguf.c: libFuzzer entry for the GGUF reader (not built by CMake).
 *
 * Each input is copied into a malloc'd buffer of exactly its size and opened with
 * mlxr_gguf_open_memory; on success every tensor's data range must lie inside the buffer and
 * every key must be found again by name. Build and run from the repository root:
 *
 *   clang -std=c17 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -I. \
 *     tests/fuzz/fuzz_gguf.c core/formats/gguf_reader.c core/formats/fmt_util.c \
 *     core/common/status.c core/common/dtype.c -o /tmp/fuzz_gguf
 *   mkdir -p /tmp/gguf_corpus && /tmp/fuzz_gguf /tmp/gguf_corpus -max_len=65536
 *
 * (Seed the corpus with small .gguf files, e.g. ones written by tests/unit/test_gguf.c.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  mlxr_gguf *g = NULL;
  char err[256] = "";
  int rc = mlxr_gguf_open_memory(buf, size, &g, err, sizeof(err));
  if (rc == 0) {
    for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
      const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
      const uint8_t *p = t->data;
      if (p < buf || p > buf + size || t->nbytes > (size_t)(buf + size - p)) abort();
      if (mlxr_gguf_find_tensor(g, t->name) != t) abort();
    }
    for (int64_t i = 0; i < mlxr_gguf_n_kv(g); i++) {
      const char *k = mlxr_gguf_kv_key(g, i);
      size_t len;
      if (mlxr_gguf_find_key(g, k) != i) abort();
      const char *s = mlxr_gguf_get_str(g, k, &len);
      if (s && s[len] != '\0') abort();
      mlxr_gguf_vtype et;
      uint64_t cnt;
      if (mlxr_gguf_get_arr(g, k, &et, &cnt, NULL) && et == MLXR_GGUF_STRING && cnt)
        if (!mlxr_gguf_get_arr_str(g, k, cnt - 1, &len)) abort();
    }
    mlxr_gguf_close(g);
  } else if (rc > 0 || err[0] == '\0' || g != NULL) {
    abort();
  }
  free(buf);
  return 0;
}
