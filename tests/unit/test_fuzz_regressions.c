/*
 * test_fuzz_regressions.c: the bugs the libFuzzer harnesses found (docs/FUZZING.md), each as the
 * smallest input that showed it and the behaviour it must have now. The crashing inputs themselves
 * stay in tests/fuzz/corpus/<harness>/ and are replayed by test_fuzz_replay_<harness>; these cases
 * say what was wrong in a form a reader can follow. Run under ASan (build-asan) they would report
 * the old overflows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"
#include "core/formats/gguf.h"
#include "core/runtime/grammar/grammar.h"
#include "core/runtime/template/template.h"
#include "core/runtime/tokenizer/tokenizer.h"
#include "core/runtime/tokenizer/tokenizer_impl.h"
#include "tests/unit/check.h"

/* fuzz_json_schema: a member name or string that is not UTF-8 went into a grammar literal, and the
 * grammar did not parse. The converter now refuses the schema. */
static void schema_not_utf8(void) {
  static const char *schemas[] = {"{\"type\": \"object\", \"properties\": {\"ag\xff\": {\"type\": \"integer\"}}}",
                                  "{\"enum\": [\"a\", \"\xc3\"]}", "{\"const\": {\"k\xe4\xbd\": 1}}"};
  for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++) {
    char *gbnf = NULL, err[256] = "";
    int rc = mlxr_json_schema_text_to_gbnf(schemas[i], strlen(schemas[i]), &gbnf, err, sizeof err);
    CHECK(rc == MLXR_ERR_INVALID && strstr(err, "UTF-8") && !gbnf, "schema %zu: %d %s", i, rc, err);
    free(gbnf);
  }
  /* valid UTF-8 still converts */
  const char *ok = "{\"type\": \"object\", \"properties\": {\"\xc3\xa9t\xc3\xa9\": {\"enum\": [\"\xe4\xbd\xa0\"]}}}";
  char *gbnf = NULL, err[256] = "";
  CHECK(mlxr_json_schema_text_to_gbnf(ok, strlen(ok), &gbnf, err, sizeof err) == MLXR_OK, "UTF-8 schema: %s", err);
  free(gbnf);
}

/* fuzz_json_schema (slow unit): a long property name next to additionalProperties makes a grammar
 * of many generated rules, and the grammar parser looked each symbol name up by a linear scan: an
 * 80-character name took 5 s to parse, 160 characters half a minute. Names are hashed now; this
 * checks that such grammars still parse (the time is for the campaign's -timeout to watch). */
static void long_property_names(void) {
  char name[241];
  memset(name, 'k', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  char schema[512];
  snprintf(schema, sizeof schema,
           "{\"type\": \"object\", \"properties\": {\"%s\": {\"type\": \"integer\"}}, \"additionalProperties\": {\"type\": \"integer\"}}",
           name);
  char *gbnf = NULL, err[256] = "";
  int rc = mlxr_json_schema_text_to_gbnf(schema, strlen(schema), &gbnf, err, sizeof err);
  CHECK(rc == MLXR_OK, "long name schema: %s", err);
  mlxr_grammar *g = NULL;
  if (rc == MLXR_OK) rc = mlxr_grammar_parse(gbnf, strlen(gbnf), NULL, &g, err, sizeof err);
  CHECK(rc == MLXR_OK && mlxr_grammar_n_rules(g) > 1000, "its grammar parses (%d rules): %s", g ? mlxr_grammar_n_rules(g) : 0,
        err);
  mlxr_grammar_free(g);
  free(gbnf);
}

/* fuzz_gguf: a control token whose text holds a NUL byte (GGUF strings carry their length) was
 * copied up to the NUL but indexed to its full length: the added-token trie read past the copy.
 * The whole text is kept now, and such a token still matches in text. */
static void token_with_nul(void) {
  char path[] = "/tmp/mlxr-fuzz-regress-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0, "mkstemp");
  if (fd < 0) return;
  close(fd);
  static const char *toks[] = {"<s>", "a", "b", "<c\0d>"};
  static const size_t lens[] = {3, 1, 1, 5};
  static const int32_t types[] = {3, 1, 1, 3};
  static const float scores[] = {0, -1, -2, 0};
  char err[256] = "";
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  int rc = w ? MLXR_OK : MLXR_ERR_NOMEM;
  if (!rc) rc = mlxr_gguf_set_str(w, "tokenizer.ggml.model", "llama");
  if (!rc) rc = mlxr_gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, lens, 4);
  if (!rc) rc = mlxr_gguf_set_arr(w, "tokenizer.ggml.token_type", MLXR_GGUF_I32, types, 4);
  if (!rc) rc = mlxr_gguf_set_arr(w, "tokenizer.ggml.scores", MLXR_GGUF_F32, scores, 4);
  if (!rc) rc = mlxr_gguf_writer_begin(w, path, err, sizeof err);
  if (!rc) rc = mlxr_gguf_writer_finish(w, err, sizeof err);
  mlxr_gguf_writer_free(w);
  CHECK(rc == MLXR_OK, "write %s: %s", path, err);
  mlxr_gguf *g = NULL;
  mlxr_tokenizer *t = NULL;
  if (!rc) rc = mlxr_gguf_open(path, &g, err, sizeof err);
  if (!rc) rc = mlxr_tokenizer_load_gguf(g, &t, err, sizeof err);
  CHECK(rc == MLXR_OK, "load: %s", err);
  if (t) {
    static const char text[] = "ab<c\0d>a";
    int32_t *ids = NULL;
    size_t n = 0;
    mlxr_tokenize_params tp = {.add_special = false, .parse_special = true};
    rc = mlxr_tokenizer_encode(t, text, sizeof text - 1, tp, &ids, &n);
    bool found = false;
    for (size_t i = 0; i < n; i++) found |= ids[i] == 3;
    CHECK(rc == MLXR_OK && found, "the token with a NUL byte is matched in text (rc %d, %zu ids)", rc, n);
    free(ids);
    mlxr_tokenizer_free(t);
  }
  mlxr_gguf_close(g);
  unlink(path);
}

/* fuzz_tokenizer_json: a pre-tokenizer regex that is not UTF-8 was compiled with
 * PCRE2_NO_UTF_CHECK, which is undefined behaviour (PCRE2 read out of bounds). It is an error
 * now. */
static void regex_not_utf8(void) {
  static const char re[] = "(?i:'s|'t|\xff'll)|\\p{L}+";
  char err[256] = "";
  pcre2_code *code = mlxr_tok_regex_compile(re, sizeof re - 1, err, sizeof err);
  CHECK(!code && err[0], "invalid UTF-8 regex refused: %s", err);
  pcre2_code_free(code);
}

/* fuzz_gbnf: a grammar that ends where a rule name is expected (here: a line that starts with a
 * quote) quoted up to 20 bytes of the text in its error message, and the text is not
 * NUL-terminated: a read past the end. The message now quotes what is there and no more. */
static void gbnf_error_at_end(void) {
  static const char text[] = "root ::= \"a\"\n\"x"; /* no NUL is passed: the length ends it */
  char *copy = malloc(sizeof text - 1);             /* exactly the text, so ASan sees any overread */
  CHECK(copy != NULL, "malloc");
  if (!copy) return;
  memcpy(copy, text, sizeof text - 1);
  mlxr_grammar *g = NULL;
  char err[256] = "";
  int rc = mlxr_grammar_parse(copy, sizeof text - 1, NULL, &g, err, sizeof err);
  CHECK(rc == MLXR_ERR_INVALID && !g && strcmp(err, "expected a rule name at '\"x'") == 0, "rc %d: %s", rc, err);
  mlxr_grammar_free(g);
  free(copy);
}

/* fuzz_ollama (through Ollama's format): a count such as "maxItems": 21e308 (infinity to cJSON)
 * was converted to long, undefined behaviour (UBSan: float-cast-overflow). Counts past LONG_MAX are
 * "too many to write out" now: the grammar leaves them to the validator. */
static void huge_counts(void) {
  static const char *schemas[] = {"{\"type\": \"array\", \"items\": {\"enum\": [\"a\"]}, \"maxItems\": 21e308}",
                                  "{\"type\": \"string\", \"maxLength\": 1e300}",
                                  "{\"type\": \"object\", \"maxProperties\": 1e19}"};
  for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++) {
    char *gbnf = NULL, err[256] = "";
    int rc = mlxr_json_schema_text_to_gbnf(schemas[i], strlen(schemas[i]), &gbnf, err, sizeof err);
    CHECK(rc == MLXR_OK && gbnf, "schema %zu: %d %s", i, rc, err);
    free(gbnf);
  }
  static const char *bad[] = {"{\"type\": \"array\", \"minItems\": -1e308}", "{\"type\": \"string\", \"maxLength\": 2.5}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *gbnf = NULL, err[256] = "";
    int rc = mlxr_json_schema_text_to_gbnf(bad[i], strlen(bad[i]), &gbnf, err, sizeof err);
    CHECK(rc == MLXR_ERR_INVALID && !gbnf && strstr(err, "non-negative integer"), "bad %zu: %d %s", i, rc, err);
    free(gbnf);
  }
}

/* fuzz_json_schema: {"$ref": "#"} (a schema that is only a reference to itself) became the
 * grammar "r0 ::= r0", which the grammar parser refuses as left-recursive: the converter said
 * yes to a schema no grammar can express. Such schemas are refused now; recursion through an
 * object or array still converts. */
static void left_recursive_ref(void) {
  static const char *loops[] = {"{\"$ref\": \"#\"}",
                                "{\"anyOf\": [{\"$ref\": \"#\"}, {\"type\": \"integer\"}]}",
                                "{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"$ref\": \"#/$defs/a\"}}, \"$ref\": \"#/$defs/a\"}"};
  for (size_t i = 0; i < sizeof loops / sizeof loops[0]; i++) {
    char *gbnf = NULL, err[256] = "";
    int rc = mlxr_json_schema_text_to_gbnf(loops[i], strlen(loops[i]), &gbnf, err, sizeof err);
    CHECK(rc == MLXR_ERR_UNSUPPORTED && !gbnf && strstr(err, "refers back to itself"), "loop %zu: %d %s", i, rc, err);
    free(gbnf);
  }
  const char *tree = "{\"type\": \"object\", \"properties\": {\"kids\": {\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}}}";
  char *gbnf = NULL, err[256] = "";
  int rc = mlxr_json_schema_text_to_gbnf(tree, strlen(tree), &gbnf, err, sizeof err);
  mlxr_grammar *g = NULL;
  if (rc == MLXR_OK) rc = mlxr_grammar_parse(gbnf, strlen(gbnf), NULL, &g, err, sizeof err);
  CHECK(rc == MLXR_OK, "recursion through an array converts and parses: %s", err);
  mlxr_grammar_free(g);
  free(gbnf);
}

/* fuzz_template: raise_exception() built its message in a 400-byte buffer, and a longer message
 * (one string appended whole, or not at all) came out as an empty error. The message is kept
 * now (cut to the error buffer), and an empty one is named. */
static void long_raise_message(void) {
  char src[700], want[64];
  memset(want, 'm', sizeof want - 1);
  want[sizeof want - 1] = '\0';
  int n = snprintf(src, sizeof src, "{{ raise_exception('");
  memset(src + n, 'm', 600);
  snprintf(src + n + 600, sizeof src - (size_t)n - 600, "') }}");
  static const char *const srcs[2] = {NULL, "{{ raise_exception('') }}"};
  for (int i = 0; i < 2; i++) {
    const char *s = i == 0 ? src : srcs[i];
    mlxr_template *t = NULL;
    char err[512] = "", *out = NULL;
    size_t out_len = 0;
    int rc = mlxr_template_new(s, strlen(s), &t, err, sizeof err);
    mlxr_template_params p;
    mlxr_template_default_params(&p);
    if (rc == MLXR_OK) rc = mlxr_template_render_json(t, "{}", 2, &p, &out, &out_len, err, sizeof err);
    CHECK(rc == MLXR_ERR_INVALID && (i == 0 ? strncmp(err, want, sizeof want - 1) == 0 : strstr(err, "empty message") != NULL),
          "raise_exception %d: rc %d, error '%.80s'", i, rc, err);
    free(out);
    mlxr_template_free(t);
  }
}

/* fuzz_json_schema (finding 9): a fault of the schema itself (an unresolvable $ref, a pattern
 * PCRE2 cannot compile, a subschema that is not an object) met inside anyOf/oneOf/not, where the
 * validator keeps quiet about the instance's failures, came back as an error status with no
 * message (or with an anyOf message that blamed the instance). */
static void schema_fault_in_probe(void) {
  static const struct {
    const char *schema, *instance, *needle;
    int want;
  } cases[] = {
      {"{\"oneOf\":[{},{\"$ref\":\"#/nowhere\"}]}", "0", "$ref #/nowhere cannot be resolved", MLXR_ERR_UNSUPPORTED},
      {"{\"anyOf\":[{\"$ref\":\"#/nowhere\"},{}]}", "0", "$ref #/nowhere cannot be resolved", MLXR_ERR_UNSUPPORTED},
      {"{\"not\":{\"pattern\":\"(\"}}", "\"a\"", "pattern ( cannot be checked", MLXR_ERR_UNSUPPORTED},
      {"{\"oneOf\":[{\"type\":\"string\"},7]}", "0", "the schema is not an object", MLXR_ERR_INVALID},
      {"{\"properties\":{\"a\":{\"$ref\":\"#/nowhere\"}}}", "{\"a\":1}", "/a: $ref #/nowhere", MLXR_ERR_UNSUPPORTED},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char why[256] = "";
    int rc = mlxr_json_schema_validate_text(cases[i].schema, strlen(cases[i].schema), cases[i].instance,
                                            strlen(cases[i].instance), why, sizeof why);
    CHECK(rc == cases[i].want && strstr(why, cases[i].needle), "schema %s on %s: got rc %d '%s', want %d '%s'",
          cases[i].schema, cases[i].instance, rc, why, cases[i].want, cases[i].needle);
  }
}

/* fuzz_json_schema (finding 12, a timeout in the campaign): an integer multipleOf k became a
 * remainder automaton of k rules, written in O(k^2) steps; multipleOf 700000 took minutes (a
 * request could stall a daemon thread). Transitions are found per digit now, and k above 1000 is
 * left to the validator: the grammar stays small and the conversion instant. */
static void huge_integer_multiple(void) {
  static const char *const schemas[] = {"{\"type\": \"integer\", \"multipleOf\": 700000}",
                                        "{\"type\": \"integer\", \"multipleOf\": 999999}"};
  for (size_t i = 0; i < sizeof schemas / sizeof schemas[0]; i++) {
    cJSON *s = cJSON_Parse(schemas[i]);
    mlxr_json_schema_params p = mlxr_json_schema_default_params();
    char *gbnf = NULL, post[256] = "", err[256] = "";
    int rc = s ? mlxr_json_schema_convert(s, &p, &gbnf, post, sizeof post, err, sizeof err) : MLXR_ERR_INVALID;
    CHECK(rc == MLXR_OK && gbnf && strlen(gbnf) < 20000 && strstr(post, "multipleOf"),
          "schema %zu: rc %d, grammar %zu bytes, post '%s': %s", i, rc, gbnf ? strlen(gbnf) : 0, post, err);
    free(gbnf);
    cJSON_Delete(s);
  }
  char why[256] = "";
  const char *sch = schemas[0];
  CHECK(mlxr_json_schema_validate_text(sch, strlen(sch), "1400000", 7, why, sizeof why) == MLXR_OK,
        "the validator accepts a multiple: %s", why);
  CHECK(mlxr_json_schema_validate_text(sch, strlen(sch), "1400001", 7, why, sizeof why) == MLXR_ERR_INVALID,
        "the validator refuses a non-multiple");
}

int main(void) {
  huge_integer_multiple();
  schema_fault_in_probe();
  schema_not_utf8();
  long_raise_message();
  huge_counts();
  left_recursive_ref();
  gbnf_error_at_end();
  long_property_names();
  token_with_nul();
  regex_not_utf8();
  return check_report("test_fuzz_regressions");
}
