/*
 * test_tokenizer_corpus.c: tokenizer unit test, and the batch driver of the golden test.
 *
 * With no arguments (ctest): builds a small byte-level BPE tokenizer.json by hand in a temp dir,
 * converts it with mlxr_convert_tokenizer, writes and reloads the GGUF, and checks properties
 * that follow from the definition of BPE and UTF-8, not from our own earlier output: merges
 * apply in rank order ("hello" -> one token only through the merge chain), special tokens are
 * single ids only when parsed, decode(encode(x)) == x for valid UTF-8, invalid bytes become
 * U+FFFD, and the streaming detokenizer never emits half a character and adds up to decode.
 *
 * With arguments, `--batch GGUF INPUTS OUT`: INPUTS is a file of records (u32 little-endian
 * length + bytes); for each record OUT gets one line of JSON:
 *   {"ids":[[bos+special],[special],[bos, no special],[no bos, no special]],
 *    "dec":"<hex of decode(ids[1], render_special)>","stream":"<hex of streamed ids[1]>"}
 * tests/golden/test_tokenizers.mjs runs it over the corpus and compares with the HF reference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common/status.h"
#include "core/formats/gguf.h"
#include "core/runtime/tokenizer/tokenizer.h"
#include "tools/convert_tokenizer.h"

static int g_fail = 0;
#define CHECK(c)                                                  \
  do {                                                            \
    if (!(c)) {                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
      g_fail++;                                                   \
    }                                                             \
  } while (0)

static mlxr_tokenizer *load(const char *path) {
  char err[512];
  mlxr_gguf *g;
  if (mlxr_gguf_open(path, &g, err, sizeof err)) {
    fprintf(stderr, "open %s: %s\n", path, err);
    return NULL;
  }
  mlxr_tokenizer *t = NULL;
  if (mlxr_tokenizer_load_gguf(g, &t, err, sizeof err)) fprintf(stderr, "load: %s\n", err);
  mlxr_gguf_close(g);
  return t;
}

static void hex(FILE *f, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) fprintf(f, "%02x", (unsigned char)s[i]);
}

static int batch(const char *gguf, const char *in_path, const char *out_path) {
  mlxr_tokenizer *t = load(gguf);
  if (!t) return 1;
  FILE *in = fopen(in_path, "rb"), *out = fopen(out_path, "wb");
  if (!in || !out) {
    fprintf(stderr, "cannot open %s / %s\n", in_path, out_path);
    return 1;
  }
  unsigned char lb[4];
  char *buf = NULL;
  size_t cap = 0;
  int rc = 0;
  char *sb = malloc(1 << 16);
  while (!rc && fread(lb, 1, 4, in) == 4) {
    size_t n = (size_t)lb[0] | (size_t)lb[1] << 8 | (size_t)lb[2] << 16 | (size_t)lb[3] << 24;
    if (n + 1 > cap) {
      cap = n + 1;
      buf = realloc(buf, cap);
    }
    if (!buf || !sb || fread(buf, 1, n, in) != n) {
      rc = 1;
      break;
    }
    fprintf(out, "{\"ids\":[");
    int32_t *keep = NULL;
    size_t nkeep = 0;
    for (int m = 0; m < 4; m++) {
      mlxr_tokenize_params p = {.add_special = m == 0 || m == 2, .parse_special = m < 2};
      int32_t *ids;
      size_t k;
      if (mlxr_tokenizer_encode(t, buf, n, p, &ids, &k)) {
        rc = 1;
        break;
      }
      fprintf(out, "%s[", m ? "," : "");
      for (size_t i = 0; i < k; i++) fprintf(out, "%s%d", i ? "," : "", ids[i]);
      fprintf(out, "]");
      if (m == 1) {
        keep = ids;
        nkeep = k;
      } else
        free(ids);
    }
    char *txt = NULL;
    size_t tl = 0;
    if (!rc && mlxr_tokenizer_decode(t, keep, nkeep, true, &txt, &tl)) rc = 1;
    fprintf(out, "],\"dec\":\"");
    if (txt) hex(out, txt, tl);
    fprintf(out, "\",\"stream\":\"");
    mlxr_detok d;
    mlxr_detok_init(&d, t, true);
    for (size_t i = 0; !rc && i < nkeep; i++) {
      int w = mlxr_detok_push(&d, keep[i], sb, 1 << 16);
      if (w < 0) rc = 1;
      else
        hex(out, sb, (size_t)w);
    }
    int w = mlxr_detok_flush(&d, sb, 1 << 16);
    if (w > 0) hex(out, sb, (size_t)w);
    fprintf(out, "\"}\n");
    free(txt);
    free(keep);
  }
  free(sb);
  free(buf);
  fclose(in);
  if (fclose(out)) rc = 1;
  mlxr_tokenizer_free(t);
  return rc;
}

/* ---- self-contained unit test ---- */

static const char k_tok_json[] =
    "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{VOCAB},"
    "\"merges\":[[\"h\",\"e\"],[\"l\",\"l\"],[\"he\",\"ll\"],[\"hell\",\"o\"],[\"\xC4\xA0\",\"w\"],"
    "[\"l\",\"o\"]]},"
    "\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"post_processor\":null,"
    "\"added_tokens\":[{\"id\":ADD,\"content\":\"<|x|>\",\"special\":true,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":false,\"single_word\":false},"
    "{\"id\":ADD1,\"content\":\"<u>\",\"special\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":false,\"single_word\":false}]}";

/* GPT-2 byte -> code point, written out independently of the library's table. */
static unsigned byte_cp(unsigned b) {
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
  unsigned n = 0;
  for (unsigned i = 0; i < b; i++)
    if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174)) n++;
  return 256 + n;
}

static size_t put_json_cp(char *o, unsigned cp) {
  if (cp == '"' || cp == '\\') return (size_t)snprintf(o, 8, "\\%c", (char)cp);
  if (cp < 0x80) return (size_t)snprintf(o, 8, "%c", (char)cp);
  if (cp < 0x800) return (size_t)snprintf(o, 8, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 63)));
  return (size_t)snprintf(o, 8, "%c%c%c", (char)(0xE0 | (cp >> 12)), (char)(0x80 | ((cp >> 6) & 63)),
                          (char)(0x80 | (cp & 63)));
}

static int self_test(void) {
  char dir[] = "/tmp/mlxr_tok_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  /* vocab: the 256 byte symbols (ids 0..255), then merged tokens */
  static const char *merged[] = {"he", "ll", "hell", "hello", "\xC4\xA0w", "lo"};
  char vocab[16384];
  size_t o = 0;
  for (unsigned b = 0; b < 256; b++) {
    char c[8];
    size_t l = put_json_cp(c, byte_cp(b));
    o += (size_t)snprintf(vocab + o, sizeof vocab - o, "%s\"%.*s\":%u", b ? "," : "", (int)l, c, b);
  }
  for (int i = 0; i < 6; i++) o += (size_t)snprintf(vocab + o, sizeof vocab - o, ",\"%s\":%d", merged[i], 256 + i);
  char json[32768];
  const char *p = k_tok_json;
  size_t j = 0;
  while (*p) {
    if (strncmp(p, "VOCAB", 5) == 0) {
      j += (size_t)snprintf(json + j, sizeof json - j, "%s", vocab);
      p += 5;
    } else if (strncmp(p, "ADD1", 4) == 0) {
      j += (size_t)snprintf(json + j, sizeof json - j, "263");
      p += 4;
    } else if (strncmp(p, "ADD", 3) == 0) {
      j += (size_t)snprintf(json + j, sizeof json - j, "262");
      p += 3;
    } else
      json[j++] = *p++;
  }
  json[j] = 0;
  char path[256];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  fputs(json, f);
  fclose(f);
  char err[512];
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  char gpath[256];
  snprintf(gpath, sizeof gpath, "%s/t.gguf", dir);
  int rc = mlxr_gguf_set_str(w, "general.architecture", "llama");
  if (!rc) rc = mlxr_convert_tokenizer(dir, w, err, sizeof err);
  if (!rc) rc = mlxr_gguf_writer_begin(w, gpath, err, sizeof err);
  if (!rc) rc = mlxr_gguf_writer_finish(w, err, sizeof err);
  mlxr_gguf_writer_free(w);
  if (rc) {
    fprintf(stderr, "convert: %s\n", err);
    return 1;
  }
  mlxr_tokenizer *t = load(gpath);
  CHECK(t != NULL);
  if (!t) return 1;
  CHECK(mlxr_tokenizer_n_vocab(t) == 264);
  mlxr_tokenize_params ps = {true, true}, pn = {true, false};
  int32_t *ids;
  size_t n;
  /* "hello": h e l l o -> he l l o -> he ll o -> hell o -> hello */
  CHECK(mlxr_tokenizer_encode(t, "hello", 5, ps, &ids, &n) == 0 && n == 1 && ids[0] == 259);
  free(ids);
  /* " world": the space is byte-level U+0120, merged with w; "orld" stays bytes */
  CHECK(mlxr_tokenizer_encode(t, "hello world", 11, ps, &ids, &n) == 0 && n == 6 && ids[1] == 260 &&
        ids[2] == 'o' && ids[3] == 'r');
  free(ids);
  /* "lo" must not pre-empt the higher-ranked "hell"+"o" chain: h e l l o with "lo" at rank 5 */
  CHECK(mlxr_tokenizer_encode(t, "llo", 3, ps, &ids, &n) == 0 && n == 2 && ids[0] == 257 && ids[1] == 'o');
  free(ids);
  CHECK(mlxr_tokenizer_encode(t, "a<|x|>b", 7, ps, &ids, &n) == 0 && n == 3 && ids[1] == 262);
  free(ids);
  CHECK(mlxr_tokenizer_encode(t, "a<|x|>b", 7, pn, &ids, &n) == 0 && n == 7);
  free(ids);
  CHECK(mlxr_tokenizer_encode(t, "a<u>b", 5, pn, &ids, &n) == 0 && n == 3 && ids[1] == 263);
  free(ids);
  CHECK(mlxr_tokenizer_is_control(t, 262) && !mlxr_tokenizer_is_control(t, 263));
  /* round trips and invalid UTF-8 */
  const char *texts[] = {"hello world", "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80!", "tab\there\n", ""};
  for (size_t i = 0; i < 4; i++) {
    char *s;
    size_t l;
    CHECK(mlxr_tokenizer_encode(t, texts[i], strlen(texts[i]), ps, &ids, &n) == 0);
    CHECK(mlxr_tokenizer_decode(t, ids, n, true, &s, &l) == 0 && l == strlen(texts[i]) && memcmp(s, texts[i], l) == 0);
    /* streaming: every chunk is valid UTF-8 and the chunks add up to the text */
    mlxr_detok d;
    mlxr_detok_init(&d, t, true);
    char acc[256], chunk[512];
    size_t al = 0;
    for (size_t k = 0; k < n; k++) {
      int wlen = mlxr_detok_push(&d, ids[k], chunk, sizeof chunk);
      CHECK(wlen >= 0);
      for (int q = 0; q < wlen; q++) {
        unsigned char c = (unsigned char)chunk[q];
        if (q == wlen - 1 && c >= 0xC0) CHECK(!"chunk ends inside a character");
      }
      if (wlen > 0 && al + (size_t)wlen < sizeof acc) {
        memcpy(acc + al, chunk, (size_t)wlen);
        al += (size_t)wlen;
      }
    }
    CHECK(mlxr_detok_flush(&d, chunk, sizeof chunk) == 0);
    CHECK(al == l && memcmp(acc, s, l) == 0);
    free(s);
    free(ids);
  }
  {
    char *s;
    size_t l;
    CHECK(mlxr_tokenizer_encode(t, "a\xFF" "b\xE6\x97", 5, ps, &ids, &n) == 0);
    CHECK(mlxr_tokenizer_decode(t, ids, n, true, &s, &l) == 0 && l == 8 &&
          memcmp(s, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD", 8) == 0);
    free(s);
    free(ids);
    /* a character split over byte tokens is held back, then flushed as U+FFFD if cut */
    mlxr_detok d;
    mlxr_detok_init(&d, t, true);
    char c[64];
    CHECK(mlxr_detok_push(&d, 0xE6, c, sizeof c) == 0);
    CHECK(mlxr_detok_push(&d, 0x97, c, sizeof c) == 0);
    CHECK(mlxr_detok_flush(&d, c, sizeof c) == 3 && memcmp(c, "\xEF\xBF\xBD", 3) == 0);
  }
  char buf[16];
  CHECK(mlxr_tokenizer_token_bytes(t, 260, true, buf, sizeof buf) == 2 && memcmp(buf, " w", 2) == 0);
  CHECK(mlxr_tokenizer_token_bytes(t, 262, false, buf, sizeof buf) == 0);
  CHECK(mlxr_tokenizer_token_bytes(t, 9999, true, buf, sizeof buf) < 0);
  mlxr_tokenizer_free(t);
  unlink(gpath);
  unlink(path);
  rmdir(dir);
  return g_fail ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "--batch") == 0) return batch(argv[2], argv[3], argv[4]);
  int rc = self_test();
  printf("test_tokenizer_corpus: %s\n", rc ? "FAILED" : "ok");
  return rc;
}
