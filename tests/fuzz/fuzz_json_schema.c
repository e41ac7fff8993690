/*
 * fuzz_json_schema.c: libFuzzer harness for JSON Schema -> GBNF conversion and the schema
 * validator (core/runtime/grammar/json_schema*.c): response_format, Ollama's format and tool
 * parameter schemas come from requests.
 *
 * Input: a JSON schema, optionally followed by a NUL byte and a JSON instance. The schema is
 * converted with the generation parameters and with JSON Schema's own defaults; each grammar
 * that comes out must parse as GBNF (the converter's output is fed to the grammar parser by the
 * daemon), and a matcher of the spec-default grammar is fed the instance text. The instance is
 * validated against the schema. Properties: every call succeeds or fails with a negative status
 * and a message; a converted grammar always parses. Built and run by scripts/fuzz.sh (seeds:
 * tests/fuzz/corpus/fuzz_json_schema/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/runtime/grammar/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail_unless_error(int rc, const char *err) {
  if (rc > 0 || (rc < 0 && err[0] == '\0')) abort();
}

/* Convert with params; the grammar must parse. The parsed grammar goes to *out (may be NULL). */
static void convert(const cJSON *schema, bool spec_defaults, mlxr_grammar **out) {
  mlxr_json_schema_params p = mlxr_json_schema_default_params();
  p.spec_defaults = spec_defaults;
  char *gbnf = NULL, post[256] = "", err[512] = "";
  int rc = mlxr_json_schema_convert(schema, &p, &gbnf, post, sizeof post, err, sizeof err);
  fail_unless_error(rc, err);
  if (rc == 0) {
    mlxr_grammar *g = NULL;
    char gerr[512] = "";
    if (mlxr_grammar_parse(gbnf, strlen(gbnf), NULL, &g, gerr, sizeof gerr) != 0) abort();
    if (out) *out = g;
    else mlxr_grammar_free(g);
  }
  free(gbnf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t s_len = nul ? (size_t)(nul - data) : size;
  cJSON *schema = cJSON_ParseWithLength((const char *)data, s_len);
  if (!schema) return 0;
  mlxr_grammar *g = NULL;
  convert(schema, false, NULL);
  convert(schema, true, &g);
  const char *text = nul ? (const char *)nul + 1 : NULL;
  size_t text_len = nul ? size - s_len - 1 : 0;
  if (g && text_len) {
    mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
    if (m) {
      (void)mlxr_grammar_matcher_accept(m, (const uint8_t *)text, text_len);
      (void)mlxr_grammar_matcher_is_complete(m);
      mlxr_grammar_matcher_free(m);
    }
  }
  mlxr_grammar_free(g);
  if (text) {
    cJSON *inst = cJSON_ParseWithLength(text, text_len);
    if (inst) {
      char why[512] = "";
      int rc = mlxr_json_schema_validate(schema, 0, inst, why, sizeof why);
      fail_unless_error(rc, why);
      cJSON_Delete(inst);
    }
  }
  cJSON_Delete(schema);
  return 0;
}
