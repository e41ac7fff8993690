/*
 * fuzz_gbnf.c: libFuzzer harness for the GBNF grammar parser and matcher
 * (core/runtime/grammar/grammar_parse.c, grammar_match.c): a request's `grammar` field is parsed
 * and then drives constrained decoding.
 *
 * Input: GBNF text, optionally followed by a NUL byte and text to match. The grammar is parsed;
 * when it parses, a matcher is fed the text in chunks of 1..4 bytes (a chunk the grammar refuses
 * is skipped), then reset and fed the whole text at once. Properties: parsing succeeds or fails
 * with a negative status and a message; for every chunk try() answers what accept() then does;
 * first_bytes() agrees with try() on every single byte; no crash, leak or hang (the matcher's
 * stack limits bound the work). Built and run by scripts/fuzz.sh (seeds: tests/fuzz/corpus/fuzz_gbnf/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/runtime/grammar/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* first_bytes must list exactly the bytes that try() accepts alone. */
static void check_first_bytes(mlxr_grammar_matcher *m) {
  uint8_t mask[32];
  mlxr_grammar_matcher_first_bytes(m, mask);
  for (int b = 0; b < 256; b++) {
    const uint8_t byte = (uint8_t)b;
    const bool in_mask = (mask[b / 8] >> (b % 8)) & 1;
    if (in_mask != mlxr_grammar_matcher_try(m, &byte, 1)) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t g_len = nul ? (size_t)(nul - data) : size;
  mlxr_grammar *g = NULL;
  char err[512] = "";
  int rc = mlxr_grammar_parse((const char *)data, g_len, NULL, &g, err, sizeof err);
  if (rc != 0) {
    if (rc > 0 || err[0] == '\0' || g) abort();
    return 0;
  }
  if (mlxr_grammar_n_rules(g) <= 0) abort();
  mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
  if (!m) {
    mlxr_grammar_free(g);
    return 0;
  }
  const uint8_t *text = nul ? nul + 1 : NULL;
  size_t text_len = nul ? size - g_len - 1 : 0;
  check_first_bytes(m);
  for (size_t i = 0, step = 0; i < text_len; step++) {
    size_t n = 1 + step % 4;
    if (n > text_len - i) n = text_len - i;
    const bool would = mlxr_grammar_matcher_try(m, text + i, n);
    if (mlxr_grammar_matcher_accept(m, text + i, n) != would) abort();
    i += n;
    if (step % 8 == 0) check_first_bytes(m);
  }
  (void)mlxr_grammar_matcher_is_complete(m);
  (void)mlxr_grammar_matcher_can_continue(m);
  mlxr_grammar_matcher_reset(m);
  if (text_len) (void)mlxr_grammar_matcher_accept(m, text, text_len);
  mlxr_grammar_matcher_free(m);
  mlxr_grammar_free(g);
  return 0;
}
