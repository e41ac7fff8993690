/*
 * fuzz_tokenizer_json.c: libFuzzer harness for Hugging Face tokenizer files, from tokenizer.json
 * to encoded ids: the converter (tools/convert_tokenizer.c) turns tokenizer.json (and an optional
 * tokenizer_config.json) into GGUF tokenizer metadata, and the tokenizer (core/runtime/tokenizer/)
 * loads that metadata, compiling the normalizer, pre-tokenizer regexes, BPE merges, decoder and
 * added tokens of the pipeline.
 *
 * Input: tokenizer.json, optionally followed by a NUL byte and tokenizer_config.json. Both go to
 * files in a private temporary directory (on /dev/shm when it exists, removed at exit) because the
 * converter reads a Hugging Face directory; the GGUF it writes is opened again and the tokenizer
 * loaded from it. When everything loads, a few texts are encoded (ids must lie in the vocabulary),
 * decoded, and detokenized id by id as a stream. Properties: each step succeeds or fails with a
 * negative status and a message. Built and run by scripts/fuzz.sh (seeds:
 * tests/fuzz/corpus/fuzz_tokenizer_json/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/gguf.h"
#include "core/runtime/tokenizer/tokenizer.h"
#include "tools/convert_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The harness's directory (made on first use, removed at exit). Only this process uses it. */
static char g_dir[64];

static void remove_dir(void) {
  static const char *files[] = {"tokenizer.json", "tokenizer_config.json", "t.gguf", "t.gguf.tmp"};
  char path[128];
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", g_dir, files[i]);
    unlink(path);
  }
  rmdir(g_dir);
}

static const char *work_dir(void) {
  if (!g_dir[0]) {
    snprintf(g_dir, sizeof g_dir, "%s/mlxr-fuzz-tok-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(g_dir)) abort();
    atexit(remove_dir);
  }
  return g_dir;
}

static void write_file(const char *name, const uint8_t *p, size_t n) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", work_dir(), name);
  if (!p) {
    unlink(path);
    return;
  }
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) abort();
}

static void fail_unless_error(int rc, const char *err) {
  if (rc > 0 || (rc < 0 && err[0] == '\0')) abort();
}

static void exercise(const mlxr_tokenizer *t) {
  static const char *texts[] = {"Hello world! I'm here, aren't you?", "  lead\n\n\ttab 1234567 x",
                                "<s>[INST] hi [/INST]</s> <|im_start|>user\nhi<|im_end|>",
                                "\xe4\xbd\xa0\xe5\xa5\xbd \xc3\xa7\x61 va \xf0\x9f\x98\x80", "bad \xff\xc3 bytes", ""};
  const int32_t n_vocab = mlxr_tokenizer_n_vocab(t);
  if (n_vocab <= 0) abort();
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    int32_t *ids = NULL;
    size_t n = 0;
    mlxr_tokenize_params tp = {.add_special = i % 2 == 0, .parse_special = i % 3 != 2};
    if (mlxr_tokenizer_encode(t, texts[i], strlen(texts[i]), tp, &ids, &n) == 0) {
      for (size_t k = 0; k < n; k++)
        if (ids[k] < 0 || ids[k] >= n_vocab) abort();
      char *text = NULL;
      size_t len = 0;
      if (mlxr_tokenizer_decode(t, ids, n, i % 2 == 1, &text, &len) == 0 && text[len] != '\0') abort();
      free(text);
      mlxr_detok d;
      mlxr_detok_init(&d, t, i % 2 == 0);
      for (size_t k = 0; k < n; k++) {
        /* room for every byte turning into U+FFFD, plus the held-back bytes */
        int tl = mlxr_tokenizer_token_bytes(t, ids[k], true, NULL, 0);
        if (tl < 0) abort();
        size_t cap = 3 * ((size_t)tl + sizeof d.pending) + 256;
        char *out = malloc(cap);
        if (!out) break;
        if (mlxr_detok_push(&d, ids[k], out, cap) < 0) abort();
        free(out);
      }
      char tail[64];
      if (mlxr_detok_flush(&d, tail, sizeof tail) < 0) abort();
    }
    free(ids);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t tj_len = nul ? (size_t)(nul - data) : size;
  write_file("tokenizer.json", data, tj_len);
  write_file("tokenizer_config.json", nul ? nul + 1 : NULL, nul ? size - tj_len - 1 : 0);
  char err[512] = "";
  char path[128];
  snprintf(path, sizeof path, "%s/t.gguf", work_dir());
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  if (!w) return 0;
  int rc = mlxr_convert_tokenizer(work_dir(), w, err, sizeof err);
  fail_unless_error(rc, err);
  if (rc == 0) {
    if (mlxr_gguf_writer_begin(w, path, err, sizeof err) != 0 || mlxr_gguf_writer_finish(w, err, sizeof err) != 0)
      abort(); /* a tokenizer the converter accepted must be writable */
  }
  mlxr_gguf_writer_free(w);
  if (rc != 0) return 0;
  mlxr_gguf *g = NULL;
  if (mlxr_gguf_open(path, &g, err, sizeof err) != 0) abort(); /* what we wrote must read back */
  mlxr_tokenizer *t = NULL;
  err[0] = '\0';
  rc = mlxr_tokenizer_load_gguf(g, &t, err, sizeof err);
  fail_unless_error(rc, err);
  if (rc == 0) {
    exercise(t);
    mlxr_tokenizer_free(t);
  }
  mlxr_gguf_close(g);
  return 0;
}
