/*
 * fuzz_gguf.c: libFuzzer harness for the GGUF reader and the tokenizer that loads from its
 * metadata (a model file is untrusted input).
 *
 * Each input is copied into a malloc'd buffer of exactly its size and opened with
 * mlxr_gguf_open_memory. Properties: it opens, and then every tensor's data range lies inside the
 * buffer, every key is found again by name, every string is NUL-terminated at its length; or it
 * fails with a negative status and a message. When it opens, the tokenizer is loaded from the
 * metadata (most inputs lack one and fail cleanly) and, if that works, a few texts are encoded and
 * decoded. Built and run by scripts/fuzz.sh (seeds: tests/fuzz/corpus/fuzz_gguf/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/gguf.h"
#include "core/runtime/tokenizer/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Encode and decode a few texts; the tokenizer must give ids inside its vocabulary. */
static void exercise_tokenizer(const mlxr_tokenizer *t) {
  static const char *texts[] = {"Hello world", " two  spaces\n\ttab 123 4567 don't",
                                "<s>[INST] hi [/INST]</s><|im_start|>", "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80",
                                "bad \xff\xc3 bytes"};
  const int32_t n_vocab = mlxr_tokenizer_n_vocab(t);
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    int32_t *ids = NULL;
    size_t n = 0;
    mlxr_tokenize_params tp = {.add_special = i % 2 == 0, .parse_special = true};
    if (mlxr_tokenizer_encode(t, texts[i], strlen(texts[i]), tp, &ids, &n) == 0) {
      for (size_t k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] >= n_vocab) abort();
      char *text = NULL;
      size_t len = 0;
      if (mlxr_tokenizer_decode(t, ids, n, i % 2 == 1, &text, &len) == 0 && text[len] != '\0') abort();
      free(text);
    }
    free(ids);
  }
}

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
    mlxr_tokenizer *tok = NULL;
    err[0] = '\0';
    rc = mlxr_tokenizer_load_gguf(g, &tok, err, sizeof err);
    if (rc == 0) {
      exercise_tokenizer(tok);
      mlxr_tokenizer_free(tok);
    } else if (rc > 0 || err[0] == '\0' || tok != NULL) {
      abort();
    }
    mlxr_gguf_close(g);
  } else if (rc > 0 || err[0] == '\0' || g != NULL) {
    abort();
  }
  free(buf);
  return 0;
}
