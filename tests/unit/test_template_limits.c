/*
 * test_template_limits.c: the chat-template interpreter under hostile input. Every template here
 * must fail cleanly (negative status, a message) and fast, never crash, hang or leak (run it under
 * ASan): runaway recursion, huge and nested loops, giant strings and lists, deeply nested syntax,
 * syntax errors, sandbox violations, reference cycles; plus a deterministic mutation fuzz over
 * the real chat templates in tests/golden/templates/shared (compile + render must not crash).
 *
 * Expected outcomes are properties (error vs. success, bounded time and output), not outputs of
 * our own code; exact rendering is checked against Jinja2 by tests/golden/test_chat_templates.py.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common/status.h"
#include "core/runtime/template/template.h"

static int failures = 0;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Compile + render src; returns the status (compile or render) and the output/error. */
static int render(const char *src, size_t len, const char *vars, const mlxr_template_params *p, char **out,
                  char *err, size_t err_len) {
  mlxr_template *t = NULL;
  *out = NULL;
  int rc = mlxr_template_new(src, len, &t, err, err_len);
  if (rc != MLXR_OK) return rc;
  rc = mlxr_template_render_json(t, vars, strlen(vars), p, out, NULL, err, err_len);
  mlxr_template_free(t);
  return rc;
}

static void expect_error(const char *what, const char *src, size_t len, const char *must_contain) {
  mlxr_template_params p;
  mlxr_template_default_params(&p);
  p.max_steps = 300000;
  p.max_output_bytes = 4 << 20;
  char err[512] = "", *out = NULL;
  double t0 = now_s();
  int rc = render(src, len, "{\"messages\": []}", &p, &out, err, sizeof(err));
  double dt = now_s() - t0;
  if (rc >= 0) {
    printf("FAIL %s: rendered (%zu bytes) instead of failing\n", what, out ? strlen(out) : 0);
    failures++;
  } else if (!err[0] || (must_contain && !strstr(err, must_contain))) {
    printf("FAIL %s: error message '%s' lacks '%s'\n", what, err, must_contain ? must_contain : "(any)");
    failures++;
  } else if (dt > 10.0) {
    printf("FAIL %s: took %.1f s to fail\n", what, dt);
    failures++;
  } else {
    printf("ok   %s: %s (%.3f s)\n", what, err, dt);
  }
  free(out);
}

static void expect_ok(const char *what, const char *src) {
  char err[512] = "", *out = NULL;
  int rc = render(src, strlen(src), "{}", NULL, &out, err, sizeof(err));
  if (rc < 0) {
    printf("FAIL %s: %s\n", what, err);
    failures++;
  } else {
    printf("ok   %s\n", what);
  }
  free(out);
}

static char *repeat(const char *a, int n, const char *mid, const char *b, int m) {
  size_t la = strlen(a), lm = strlen(mid), lb = strlen(b);
  char *s = malloc(la * (size_t)n + lm + lb * (size_t)m + 1);
  size_t k = 0;
  for (int i = 0; i < n; i++, k += la) memcpy(s + k, a, la);
  memcpy(s + k, mid, lm);
  k += lm;
  for (int i = 0; i < m; i++, k += lb) memcpy(s + k, b, lb);
  s[k] = 0;
  return s;
}

static void hostile(void) {
#define E(what, src, needle) expect_error(what, src, strlen(src), needle)
  E("macro recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "depth");
  E("mutual recursion", "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}", "depth");
  E("range(10**9)", "{% for i in range(10**9) %}x{% endfor %}", "Range too big");
  E("nested loops", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "steps");
  E("loop over loop list", "{% set l = range(100000)|list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}", "steps");
  E("string * 10**12", "{{ 'x' * 10**12 }}", "limit");
  E("list * 10**12", "{{ [1, 2] * 10**12 }}", "limit");
  E("output cap", "{% set s = 'y' * 1000000 %}{% for i in range(100) %}{{ s }}{% endfor %}", "limit");
  E("doubling string", "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "limit");
  E("deep list nesting", "{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}", NULL);
  E("int overflow", "{{ 2 ** 64 }}", "64 bits");
  E("division by zero", "{{ 1 // 0 }}", "ZeroDivisionError");
  E("undefined attribute", "{{ foo.bar.baz }}", "undefined");
  E("list.append", "{% set l = [] %}{{ l.append(1) }}", "unsafe");
  E("dict.update", "{% set d = {} %}{% set _ = d.update({'a': 1}) %}", "unsafe");
  E("raise_exception", "{{ raise_exception('boom: bad role') }}", "boom: bad role");
  E("unknown filter", "{{ 1 | frobnicate }}", "No filter named");
  E("unknown test", "{{ 1 is frobnicated }}", "No test named");
  E("type error", "{{ 'a' + 1 }}", "TypeError");
  E("compare error", "{{ [1] < 'a' }}", "TypeError");
  E("call non-callable", "{{ 3() }}", "not callable");
  E("unterminated var", "{{ 1 + ", NULL);
  E("unterminated block", "{% if true %}x", "endif");
  E("stray endfor", "{% endfor %}", NULL);
  E("unknown tag", "{% frobnicate %}", "unknown tag");
  E("unterminated string", "{{ 'abc }}", "unterminated string");
  E("unterminated comment", "{# abc", "comment");
  E("bad expression", "{{ 1 + * 2 }}", NULL);
  E("bad for", "{% for in x %}{% endfor %}", NULL);
  E("mismatched brackets", "{{ (1, 2] }}", NULL);
  E("include (no loader)", "{% include 'x.jinja' %}", "unknown tag");
  E("extra kwarg to macro", "{% macro m(a) %}{% endmacro %}{{ m(1, b=2) }}", "keyword argument");
  E("unpack mismatch", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", "unpack");
  E("NUL byte in tag", "{{ 1 \0 }}", NULL);
  {
    static const char src[] = "{{ 1 \0 2 }}";
    expect_error("NUL byte in tag (len)", src, sizeof(src) - 1, NULL);
  }
  char *s;
  s = repeat("{{ (", 1, "", "(", 100000);
  expect_error("100k nested parens", s, strlen(s), "nested");
  free(s);
  s = repeat("{{ [", 1, "", "[", 100000);
  expect_error("100k nested lists", s, strlen(s), NULL);
  free(s);
  s = repeat("{% if true %}", 20000, "x", "{% endif %}", 20000);
  expect_error("20k nested ifs", s, strlen(s), "nested");
  free(s);
  s = repeat("{{ 1", 1, "", " + 1", 200000);
  {
    size_t l = strlen(s);
    s = realloc(s, l + 4);
    memcpy(s + l, " }}", 4);
  }
  expect_error("200k-term sum", s, strlen(s), "depth");
  free(s);
  s = repeat("not ", 100000, "true", "", 0);
  {
    size_t l = strlen(s);
    char *w = malloc(l + 8);
    memcpy(w, "{{ ", 3);
    memcpy(w + 3, s, l);
    memcpy(w + 3 + l, " }}", 4);
    free(s);
    s = w;
  }
  expect_error("100k nots", s, strlen(s), "nested");
  free(s);
  s = repeat("-", 100000, "1", "", 0);
  {
    size_t l = strlen(s);
    char *w = malloc(l + 8);
    memcpy(w, "{{ ", 3);
    memcpy(w + 3, s, l);
    memcpy(w + 3 + l, " }}", 4);
    free(s);
    s = w;
  }
  expect_error("100k unary minus", s, strlen(s), "nested");
  free(s);
#undef E
  expect_ok("namespace self-cycle (no leak)", "{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns, ns] %}ok");
  expect_ok("macro stored in its own scope", "{% macro m() %}{{ m }}{% endmacro %}{% set x = m %}{% set y = [m, x] %}{{ m() | length > 0 }}");
  expect_ok("invalid UTF-8 in text", "\xff\xfe{{ '\xc3' | upper }}\xe2\x82");
  {
    char err[256], *out = NULL;
    int rc = render("{{ messages }}", 14, "{\"messages\": [1, 2", NULL, &out, err, sizeof(err));
    if (rc >= 0) {
      printf("FAIL bad vars JSON accepted\n");
      failures++;
    } else {
      printf("ok   bad vars JSON: %s\n", err);
    }
    free(out);
  }
}

/* xorshift64* */
static uint64_t rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

static void fuzz(void) {
  const char *dir = "tests/golden/templates/shared";
  DIR *d = opendir(dir);
  if (!d) { /* part of the repository, not a reference that may be missing */
    fprintf(stderr, "FAIL: %s not found (run from the repository root, as ctest does)\n", dir);
    failures++;
    return;
  }
  static const char *const vars =
      "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"hi\"},"
      "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\", \"id\": \"call1abcd\","
      "\"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1.5}}}]},"
      "{\"role\": \"tool\", \"content\": \"r\", \"tool_call_id\": \"call1abcd\"}],"
      "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}}],"
      "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";
  static const char *const snippets[] = {"{{", "}}", "{%", "%}", "{#", "#}", "-", "(", ")", "[", "]", "'", "\"",
                                         " for ", " if ", " endfor ", " endif ", "|", ".", ",", "~", "*", "**",
                                         " is ", " not ", " in ", "\\", "\n", "loop", "ns", "=", "{%- endmacro %}"};
  uint64_t seed = 0x9E3779B97F4A7C15ULL;
  mlxr_template_params p;
  mlxr_template_default_params(&p);
  p.max_steps = 200000;
  p.max_output_bytes = 1 << 20;
  int runs = 0, rendered = 0;
  double t0 = now_s();
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t nl = strlen(e->d_name);
    if (nl < 7 || strcmp(e->d_name + nl - 6, ".jinja") != 0) continue;
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    char *src = malloc(1 << 20);
    size_t len = fread(src, 1, (1 << 20) - 1, f);
    fclose(f);
    for (int it = 0; it < 60; it++) {
      char *m = malloc(len + 64);
      memcpy(m, src, len);
      size_t ml = len;
      int edits = 1 + (int)(rng_next(&seed) % 3);
      for (int k = 0; k < edits && ml > 0; k++) {
        size_t pos = rng_next(&seed) % ml;
        int kind = (int)(rng_next(&seed) % 3);
        if (kind == 0) { /* delete a span */
          size_t n = 1 + rng_next(&seed) % 8;
          if (pos + n > ml) n = ml - pos;
          memmove(m + pos, m + pos + n, ml - pos - n);
          ml -= n;
        } else if (kind == 1) { /* insert a snippet */
          const char *sn = snippets[rng_next(&seed) % (sizeof(snippets) / sizeof(snippets[0]))];
          size_t n = strlen(sn);
          if (ml + n < len + 64) {
            memmove(m + pos + n, m + pos, ml - pos);
            memcpy(m + pos, sn, n);
            ml += n;
          }
        } else { /* flip a byte */
          m[pos] = (char)(rng_next(&seed) & 0xFF);
        }
      }
      char err[512], *out = NULL;
      if (render(m, ml, vars, &p, &out, err, sizeof(err)) >= 0) rendered++;
      free(out);
      free(m);
      runs++;
    }
    free(src);
  }
  closedir(d);
  printf("ok   mutation fuzz: %d mutated templates (%d still rendered), no crash, %.1f s\n", runs, rendered, now_s() - t0);
}

int main(void) {
  hostile();
  fuzz();
  if (failures) {
    printf("%d FAILED\n", failures);
    return 1;
  }
  printf("all ok\n");
  return 0;
}
