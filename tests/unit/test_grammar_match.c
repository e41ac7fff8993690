/*
 * test_grammar_match.c: the GBNF parser and matcher (core/runtime/grammar).
 *
 * Without arguments: hand-written properties that can fail: literal/class/repetition semantics
 * (each case's expected answer follows from the grammar's definition, e.g. "a"{2,3} takes two or
 * three a's), parse errors (undefined rule, left recursion, bad syntax), strict UTF-8 and partial
 * code points across calls, try() leaving the state alone, byte-by-byte acceptance agreeing with
 * whole-string acceptance, and first_bytes() agreeing with try() on each byte.
 *
 * Driver modes used by tests/golden/test_constrained_json.py (which checks our answers against
 * Python's json module and an independent schema validator):
 *   test_grammar_match --cases (exact|object|value|schema:FILE|gbnf:FILE) CASES
 *       CASES has one hex-encoded byte string per line; prints per line A (a complete sentence),
 *       P (a proper prefix of one) or R (rejected somewhere).
 *   test_grammar_match --print-schema FILE     prints the GBNF of a schema (or the error, exit 2)
 *   test_grammar_match --suite FILE
 *       FILE is a JSON list of groups {"schema", "spec": bool, "draft": N, "tests": [JSON text, ...]};
 *       prints one line per group: "ok<TAB>POST<TAB>CODES" (POST: the keywords left to the
 *       validator, "-" if none; CODES: per test the grammar's A/P/R and the validator's V valid,
 *       I invalid, E error) or "err<TAB>STATUS<TAB>MESSAGE" when the schema is refused. Used by
 *       tests/golden/test_json_schema_suite.mjs (the official JSON Schema Test Suite) and
 *       test_json_schema_ajv.mjs.
 *
 * The numeric and regex parts of the schema converter are also checked here against arithmetic:
 * integer ranges (every integer around random bounds, including 2^53-1) and decimal bounds
 * (random decimals compared with strtod) must be accepted exactly when they lie within the bounds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar.h"
#include <cjson/cJSON.h>

static int failures = 0;

#define CHECK(cond, ...)                  \
  do {                                    \
    if (!(cond)) {                        \
      failures++;                         \
      printf("FAIL %s:%d: ", __FILE__, __LINE__); \
      printf(__VA_ARGS__);                \
      printf("\n");                       \
    }                                     \
  } while (0)

/* 'A' complete, 'P' prefix, 'R' rejected */
static char classify(mlxr_grammar_matcher *m, const uint8_t *s, size_t n) {
  mlxr_grammar_matcher_reset(m);
  if (!mlxr_grammar_matcher_accept(m, s, n)) return 'R';
  return mlxr_grammar_matcher_is_complete(m) ? 'A' : 'P';
}

static mlxr_grammar *parse(const char *text) {
  mlxr_grammar *g = NULL;
  char err[256];
  int rc = mlxr_grammar_parse(text, strlen(text), NULL, &g, err, sizeof(err));
  if (rc != MLXR_OK) {
    printf("FAIL parse error for grammar %s: %s\n", text, err);
    failures++;
  }
  return g;
}

typedef struct gcase {
  const char *input;
  char want;
} gcase;

static void check_grammar(const char *text, const gcase *cases, int n) {
  mlxr_grammar *g = parse(text);
  if (!g) return;
  mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
  for (int i = 0; i < n; i++) {
    const uint8_t *s = (const uint8_t *)cases[i].input;
    const size_t len = strlen(cases[i].input);
    char got = classify(m, s, len);
    CHECK(got == cases[i].want, "grammar %s input '%s': got %c want %c", text, cases[i].input, got, cases[i].want);
    /* byte by byte gives the same answer, and try never changes the state */
    mlxr_grammar_matcher_reset(m);
    char got2 = 'A';
    for (size_t k = 0; k < len; k++) {
      bool t = mlxr_grammar_matcher_try(m, s + k, 1);
      bool a = mlxr_grammar_matcher_accept(m, s + k, 1);
      if (t != a) CHECK(0, "try and accept disagree on '%s' at %zu", cases[i].input, k);
      if (!a) {
        got2 = 'R';
        break;
      }
    }
    if (got2 == 'A' && !mlxr_grammar_matcher_is_complete(m)) got2 = 'P';
    CHECK(got2 == got, "grammar %s input '%s': bytewise %c, whole %c", text, cases[i].input, got2, got);
  }
  mlxr_grammar_matcher_free(m);
  mlxr_grammar_free(g);
}

static void check_parse_error(const char *text, const char *needle) {
  mlxr_grammar *g = NULL;
  char err[256] = "";
  int rc = mlxr_grammar_parse(text, strlen(text), NULL, &g, err, sizeof(err));
  CHECK(rc != MLXR_OK && strstr(err, needle), "grammar %s: want an error containing '%s', got rc %d '%s'", text,
        needle, rc, err);
  mlxr_grammar_free(g);
}

static void unit_tests(void) {
  const gcase lit[] = {{"abc", 'A'}, {"ab", 'P'}, {"", 'P'}, {"abd", 'R'}, {"abcd", 'R'}};
  check_grammar("root ::= \"abc\"", lit, 5);
  const gcase alt[] = {{"cat", 'A'}, {"car", 'A'}, {"ca", 'P'}, {"dog", 'A'}, {"cow", 'R'}};
  check_grammar("root ::= \"cat\" | \"car\" | animal\nanimal ::= \"dog\"", alt, 5);
  const gcase rep[] = {{"a", 'P'}, {"aa", 'A'}, {"aaa", 'A'}, {"aaaa", 'R'}, {"b", 'R'}};
  check_grammar("root ::= \"a\"{2,3}", rep, 5);
  const gcase star[] = {{"", 'A'}, {"xyxyxy", 'A'}, {"xyx", 'P'}, {"yx", 'R'}};
  check_grammar("root ::= (\"x\" \"y\")*", star, 4);
  const gcase plus[] = {{"", 'P'}, {"7", 'A'}, {"0123456789", 'A'}, {"12a", 'R'}};
  check_grammar("root ::= [0-9]+  # digits\n", plus, 4);
  const gcase opt[] = {{"-5", 'A'}, {"5", 'A'}, {"-", 'P'}, {"--5", 'R'}};
  check_grammar("root ::= \"-\"? [0-9]", opt, 4);
  const gcase atleast[] = {{"zz", 'P'}, {"zzz", 'A'}, {"zzzzzzzz", 'A'}};
  check_grammar("root ::= \"z\"{3,}", atleast, 3);
  const gcase neg[] = {{"q", 'A'}, {"\"", 'R'}, {"\\", 'R'}, {"\n", 'R'}, {"\xc3\xa9", 'A'}, {"\xc3", 'P'}};
  check_grammar("root ::= [^\"\\\\\\x00-\\x1F]", neg, 6);
  const gcase uni[] = {{"\xe2\x82\xac", 'A'}, {"\xe2\x82", 'P'}, {"\xe2\x82\xad", 'R'}, {"e", 'R'}};
  check_grammar("root ::= \"\\u20AC\"", uni, 4);
  const gcase any[] = {{"\xf0\x9f\x98\x80!", 'A'}, {"a!", 'A'}, {"!", 'P'}, {"\xff!", 'R'}};
  check_grammar("root ::= . \"!\"", any, 4);
  /* strict UTF-8: overlong, surrogate and lone continuation bytes are rejected */
  const gcase utf[] = {{"\xc0\xaf", 'R'}, {"\xed\xa0\x80", 'R'}, {"\x80", 'R'}, {"\xf4\x90\x80\x80", 'R'}, {"\xe4\xb8\xad", 'A'}};
  check_grammar("root ::= [^a]", utf, 5);
  /* nested and nullable rules, right recursion, multi-line alternatives in parentheses */
  const gcase nest[] = {{"[]", 'A'}, {"[[[]]]", 'A'}, {"[[]", 'P'}, {"[]]", 'R'}, {"[ [ ] ]", 'A'}};
  check_grammar("root ::= list\nlist ::= \"[\" sp (list sp)? \"]\"\nsp ::= \" \"?", nest, 5);
  const gcase ml[] = {{"ab", 'A'}, {"cd", 'A'}};
  check_grammar("root ::= (\n  \"ab\" |\n  \"cd\"\n)", ml, 2);
  /* exactly {m} and a class with ranges and singles */
  const gcase hex[] = {{"0aF9", 'A'}, {"0aF", 'P'}, {"0aG9", 'R'}};
  check_grammar("root ::= [0-9a-fA-F]{4}", hex, 3);
  const gcase dot[] = {{"-", 'A'}, {"]", 'A'}, {"a", 'R'}};
  check_grammar("root ::= [\\-\\]]", dot, 3);

  check_parse_error("root ::= missing", "missing");
  check_parse_error("root ::= root \"x\" | \"y\"", "left-recursive");
  check_parse_error("root ::= a \"x\"\na ::= b\nb ::= \"\" | root", "left-recursive");
  check_parse_error("root ::= \"abc", "unterminated");
  check_parse_error("root ::= [abc", "unterminated");
  check_parse_error("root ::= (\"a\"", "')'");
  check_parse_error("root ::= \"a\"{3,2}", "repetition");
  check_parse_error("root ::= * \"a\"", "nothing before");
  check_parse_error("x ::= \"a\"", "no rule 'root'");
  check_parse_error("root ::= \"a\"\nroot ::= \"b\"", "twice");
  check_parse_error("root ::= \"\\q\"", "escape");

  /* first_bytes agrees with try for every byte, in a few states */
  mlxr_grammar *g = parse("root ::= \"{\" [a-c]* \"\\u00e9\"? \"}\"");
  if (g) {
    mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
    const char *prefixes[] = {"", "{", "{ab", "{a\xc3\xa9"};
    for (int p = 0; p < 4; p++) {
      mlxr_grammar_matcher_reset(m);
      CHECK(mlxr_grammar_matcher_accept(m, (const uint8_t *)prefixes[p], strlen(prefixes[p])), "prefix %d", p);
      uint8_t mask[32];
      mlxr_grammar_matcher_first_bytes(m, mask);
      int n_set = 0;
      for (int b = 0; b < 256; b++) {
        const uint8_t c = (uint8_t)b;
        bool in_mask = mask[b >> 3] & (1u << (b & 7));
        n_set += in_mask;
        CHECK(in_mask == mlxr_grammar_matcher_try(m, &c, 1), "first_bytes disagrees with try at byte %d", b);
      }
      CHECK(n_set > 0, "some byte continues prefix %d", p);
    }
    /* complete and cannot continue after the closing brace */
    mlxr_grammar_matcher_reset(m);
    CHECK(mlxr_grammar_matcher_accept(m, (const uint8_t *)"{ab}", 4), "accept {ab}");
    CHECK(mlxr_grammar_matcher_is_complete(m) && !mlxr_grammar_matcher_can_continue(m), "{ab} ends the grammar");
    mlxr_grammar_matcher_free(m);
    mlxr_grammar_free(g);
  }
}

/* ---- schema numerics against arithmetic ---- */

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static mlxr_grammar *schema_grammar(const char *schema, bool spec) {
  cJSON *j = cJSON_Parse(schema);
  mlxr_json_schema_params p = mlxr_json_schema_default_params();
  p.spec_defaults = spec;
  char *gbnf = NULL, err[256] = "";
  int rc = j ? mlxr_json_schema_convert(j, &p, &gbnf, NULL, 0, err, sizeof err) : MLXR_ERR_INVALID;
  cJSON_Delete(j);
  mlxr_grammar *g = NULL;
  if (rc == MLXR_OK) rc = mlxr_grammar_parse(gbnf, strlen(gbnf), NULL, &g, err, sizeof err);
  free(gbnf);
  CHECK(rc == MLXR_OK, "schema %s: %s", schema, err);
  return g;
}

static void numeric_tests(void) {
  /* integer ranges: every integer near the bounds */
  const long long bounds[][2] = {{-9007199254740991LL, 9007199254740991LL}, {0, 100}, {-5, 5}, {17, 4321},
                                 {-1000, -10}, {99, 101}, {-9, 1000000}, {123456789, 123456999}};
  for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
    for (int excl = 0; excl < 2; excl++) {
      char schema[256];
      if (excl) snprintf(schema, sizeof schema, "{\"type\":\"integer\",\"exclusiveMinimum\":%lld,\"exclusiveMaximum\":%lld}", bounds[b][0], bounds[b][1]);
      else snprintf(schema, sizeof schema, "{\"type\":\"integer\",\"minimum\":%lld,\"maximum\":%lld}", bounds[b][0], bounds[b][1]);
      mlxr_grammar *g = schema_grammar(schema, true);
      if (!g) continue;
      mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
      for (int side = 0; side < 2; side++) {
        for (long long d = -60; d <= 60; d++) {
          const long long v = bounds[b][side] + d;
          const bool want = excl ? (v > bounds[b][0] && v < bounds[b][1]) : (v >= bounds[b][0] && v <= bounds[b][1]);
          char txt[32];
          snprintf(txt, sizeof txt, "%lld", v);
          const char got = classify(m, (const uint8_t *)txt, strlen(txt));
          CHECK((got == 'A') == want, "%s: %s got %c", schema, txt, got);
        }
      }
      for (int k = 0; k < 300; k++) { /* random magnitudes */
        const long long v = (long long)(rnd() % 20000000000000000ull) - 10000000000000000LL;
        const bool want = excl ? (v > bounds[b][0] && v < bounds[b][1]) : (v >= bounds[b][0] && v <= bounds[b][1]);
        char txt[32];
        snprintf(txt, sizeof txt, "%lld", v);
        CHECK((classify(m, (const uint8_t *)txt, strlen(txt)) == 'A') == want, "%s: %s", schema, txt);
      }
      mlxr_grammar_matcher_free(m);
      mlxr_grammar_free(g);
    }
  }
  /* decimal bounds: random decimals, compared with strtod */
  const char *dbounds[][2] = {{"0.1", "0.9"}, {"-1.5", "2.25"}, {"0", "1"}, {"-0.001", "0"}, {"3.14159", "3.1416"},
                              {"-100", "-99.5"}, {"1e-3", "12.5"}, {"0", "1e6"}};
  for (size_t b = 0; b < sizeof dbounds / sizeof dbounds[0]; b++) {
    for (int mode = 0; mode < 4; mode++) { /* bit 0: exclusive lower, bit 1: exclusive upper */
      char schema[256];
      snprintf(schema, sizeof schema, "{\"type\":\"number\",\"%s\":%s,\"%s\":%s}", mode & 1 ? "exclusiveMinimum" : "minimum",
               dbounds[b][0], mode & 2 ? "exclusiveMaximum" : "maximum", dbounds[b][1]);
      mlxr_grammar *g = schema_grammar(schema, true);
      if (!g) continue;
      mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
      const double lo = strtod(dbounds[b][0], NULL), hi = strtod(dbounds[b][1], NULL);
      for (int k = 0; k < 600; k++) {
        char txt[64];
        const double span = (hi - lo) * 1.5 + 1;
        double v = lo - span / 6 + (double)(rnd() % 1000000) / 1000000.0 * span;
        const int prec = (int)(rnd() % 7);
        if (k < 40) v = k % 2 ? lo : hi; /* the bounds themselves, in several spellings */
        snprintf(txt, sizeof txt, "%.*f", prec, v);
        if (strcmp(txt, "-0") == 0 || strncmp(txt, "-0.", 3) == 0) {
          bool zero = true;
          for (const char *q = txt + 1; *q; q++) zero = zero && (*q == '0' || *q == '.');
          if (zero) continue; /* "-0": not a canonical spelling */
        }
        const double x = strtod(txt, NULL);
        const bool want = (mode & 1 ? x > lo : x >= lo) && (mode & 2 ? x < hi : x <= hi);
        const char got = classify(m, (const uint8_t *)txt, strlen(txt));
        CHECK((got == 'A') == want, "%s: %s got %c", schema, txt, got);
      }
      mlxr_grammar_matcher_free(m);
      mlxr_grammar_free(g);
    }
  }
  /* multipleOf on integers: a remainder automaton */
  mlxr_grammar *g = schema_grammar("{\"type\":\"integer\",\"multipleOf\":7}", true);
  if (g) {
    mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
    for (long long v = -300; v <= 300; v++) {
      char txt[32];
      snprintf(txt, sizeof txt, "%lld", v);
      CHECK((classify(m, (const uint8_t *)txt, strlen(txt)) == 'A') == (v % 7 == 0), "multipleOf 7: %s", txt);
    }
    mlxr_grammar_matcher_free(m);
    mlxr_grammar_free(g);
  }
}

/* ---- driver mode ---- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (buf) buf[n] = '\0';
  *len = n;
  return buf;
}

static int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int driver(const char *what, const char *cases_path) {
  char *gbnf = NULL;
  char err[512] = "";
  int rc = MLXR_OK;
  if (strcmp(what, "exact") == 0) gbnf = mlxr_json_grammar_gbnf(MLXR_JSON_GRAMMAR_EXACT);
  else if (strcmp(what, "object") == 0) gbnf = mlxr_json_grammar_gbnf(MLXR_JSON_GRAMMAR_OBJECT);
  else if (strcmp(what, "value") == 0) gbnf = mlxr_json_grammar_gbnf(MLXR_JSON_GRAMMAR_VALUE);
  else if (strncmp(what, "schema:", 7) == 0 || strncmp(what, "gbnf:", 5) == 0) {
    const bool schema = what[0] == 's';
    size_t len;
    char *text = read_file(what + (schema ? 7 : 5), &len);
    if (!text) {
      fprintf(stderr, "cannot read %s\n", what);
      return 2;
    }
    if (schema) rc = mlxr_json_schema_text_to_gbnf(text, len, &gbnf, err, sizeof(err));
    else gbnf = strdup(text);
    free(text);
  }
  if (rc != MLXR_OK || !gbnf) {
    fprintf(stderr, "error: %s\n", err);
    return 2;
  }
  mlxr_grammar *g = NULL;
  rc = mlxr_grammar_parse(gbnf, strlen(gbnf), NULL, &g, err, sizeof(err));
  free(gbnf);
  if (rc != MLXR_OK) {
    fprintf(stderr, "grammar error: %s\n", err);
    return 2;
  }
  mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
  size_t len;
  char *cases = read_file(cases_path, &len);
  if (!m || !cases) {
    fprintf(stderr, "cannot read %s\n", cases_path);
    return 2;
  }
  uint8_t *buf = malloc(len / 2 + 1);
  for (char *line = cases; line && *line;) {
    char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    size_t n = 0;
    for (size_t i = 0; i + 2 <= ll; i += 2) {
      int hi = hexv(line[i]), lo = hexv(line[i + 1]);
      if (hi < 0 || lo < 0) break;
      buf[n++] = (uint8_t)(hi * 16 + lo);
    }
    putchar(classify(m, buf, n));
    putchar('\n');
    line = nl ? nl + 1 : NULL;
  }
  free(buf);
  free(cases);
  mlxr_grammar_matcher_free(m);
  mlxr_grammar_free(g);
  return 0;
}

/* --suite: see the top of the file. */
static int suite(const char *path) {
  size_t len;
  char *text = read_file(path, &len);
  cJSON *groups = text ? cJSON_ParseWithLength(text, len) : NULL;
  free(text);
  if (!cJSON_IsArray(groups)) {
    fprintf(stderr, "cannot read %s\n", path);
    cJSON_Delete(groups);
    return 2;
  }
  const cJSON *grp;
  cJSON_ArrayForEach(grp, groups) {
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(grp, "schema");
    mlxr_json_schema_params p = mlxr_json_schema_default_params();
    p.spec_defaults = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(grp, "spec"));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(grp, "draft");
    p.draft = cJSON_IsNumber(d) ? d->valueint : 0;
    char *gbnf = NULL, post[512] = "", err[512] = "";
    int rc = mlxr_json_schema_convert(schema, &p, &gbnf, post, sizeof post, err, sizeof err);
    mlxr_grammar *g = NULL;
    if (rc == MLXR_OK) rc = mlxr_grammar_parse(gbnf, strlen(gbnf), NULL, &g, err, sizeof err);
    free(gbnf);
    if (rc != MLXR_OK) {
      for (char *q = err; *q; q++) *q = (*q == '\n' || *q == '\t') ? ' ' : *q;
      printf("err\t%s\t%s\n", mlxr_status_str(rc), err);
      continue;
    }
    mlxr_grammar_matcher *m = mlxr_grammar_matcher_new(g);
    printf("ok\t%s\t", post[0] ? post : "-");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(grp, "tests")) {
      const char *s = cJSON_IsString(t) ? t->valuestring : "";
      char gcode = classify(m, (const uint8_t *)s, strlen(s));
      cJSON *inst = cJSON_Parse(s);
      char why[256];
      int vr = inst ? mlxr_json_schema_validate(schema, p.draft, inst, why, sizeof why) : MLXR_ERR_INVALID;
      cJSON_Delete(inst);
      printf("%c%c ", gcode, vr == MLXR_OK ? 'V' : vr == MLXR_ERR_INVALID ? 'I' : 'E');
    }
    printf("\n");
    mlxr_grammar_matcher_free(m);
    mlxr_grammar_free(g);
  }
  cJSON_Delete(groups);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--cases") == 0) return driver(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "--suite") == 0) return suite(argv[2]);
  if (argc == 3 && strcmp(argv[1], "--print-schema") == 0) {
    size_t len;
    char *text = read_file(argv[2], &len);
    char *gbnf = NULL, err[512] = "";
    int rc = text ? mlxr_json_schema_text_to_gbnf(text, len, &gbnf, err, sizeof(err)) : MLXR_ERR_IO;
    free(text);
    if (rc != MLXR_OK) {
      printf("%s\n", err);
      return 2;
    }
    fputs(gbnf, stdout);
    free(gbnf);
    return 0;
  }
  unit_tests();
  numeric_tests();
  if (failures) {
    printf("%d failures\n", failures);
    return 1;
  }
  printf("test_grammar_match: all passed\n");
  return 0;
}
