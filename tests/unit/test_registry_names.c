/*
 * test_registry_names.c: model-name and digest validation (daemon/registry/names.c).
 *
 * Checked properties: names Ollama accepts parse to the expected canonical
 * host/namespace/model:tag (defaults registry.ollama.ai / library / latest, or the caller's),
 * keeping their case; each part's length limit is exact (80, or 350 for the host: the limit passes,
 * one more fails); names with path tricks ("..", a fourth '/', empty parts, '.' in a namespace,
 * leading '-' or '.', spaces, control bytes, non-ASCII, a scheme without a host, a megabyte of
 * input) are refused with MLXR_ERR_INVALID, a message naming the part, and a zeroed result;
 * comparison ignores ASCII case only; the short and manifest forms; digests: only
 * sha256[:-] + 64 lowercase hex is accepted, both separators give the same digest, and every
 * near miss (uppercase, 63/65 digits, dots, slashes, other algorithms, trailing bytes) is refused;
 * mlxr_registry_quote escapes what it shows and cuts long input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "daemon/registry/names.h"
#include "tests/unit/check.h"

static const char HEX64[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void expect_name(const char *in, const char *want) {
  char buf[MLXR_NAME_MAX + 1], err[512] = "";
  int rc = mlxr_name_canonical(in, NULL, buf, sizeof buf, err, sizeof err);
  CHECK(rc == MLXR_OK, "\"%s\" should be valid: %s", in, err);
  if (rc == MLXR_OK) CHECK(strcmp(buf, want) == 0, "\"%s\" -> \"%s\", want \"%s\"", in, buf, want);
}

/* Refused, with a message mentioning `mention` (NULL: any), and the result zeroed. */
static void expect_bad_name(const char *in, const char *mention) {
  mlxr_model_name n;
  memset(&n, 0x55, sizeof n);
  char err[512] = "";
  int rc = mlxr_name_parse(in, NULL, &n, err, sizeof err);
  CHECK(rc == MLXR_ERR_INVALID, "\"%.80s\" should be refused (rc %d)", in ? in : "(null)", rc);
  CHECK(err[0] != '\0', "\"%.80s\": no message", in ? in : "(null)");
  if (mention) CHECK(strstr(err, mention) != NULL, "\"%.80s\": message \"%s\" lacks \"%s\"", in, err, mention);
  CHECK(n.host[0] == 0 && n.ns[0] == 0 && n.model[0] == 0 && n.tag[0] == 0, "\"%.80s\": result not zeroed", in);
}

static void expect_digest(const char *in, bool ok) {
  mlxr_digest d;
  char err[512] = "";
  int rc = mlxr_digest_parse(in, &d, err, sizeof err);
  if (ok) {
    CHECK(rc == MLXR_OK, "digest \"%.90s\" should be valid: %s", in, err);
  } else {
    CHECK(rc == MLXR_ERR_INVALID, "digest \"%.90s\" should be refused (rc %d)", in ? in : "(null)", rc);
    CHECK(strstr(err, "invalid digest") != NULL, "digest \"%.90s\": unclear message \"%s\"", in ? in : "(null)", err);
    CHECK(d.hex[0] == '\0', "digest \"%.90s\": result not cleared", in ? in : "(null)");
  }
}

static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static void test_valid_names(void) {
  expect_name("llama3.2", "registry.ollama.ai/library/llama3.2:latest");
  expect_name("llama3.2:1b", "registry.ollama.ai/library/llama3.2:1b");
  expect_name("me/tiny", "registry.ollama.ai/me/tiny:latest");
  expect_name("me/tiny:v2", "registry.ollama.ai/me/tiny:v2");
  expect_name("localhost:5000/me/tiny", "localhost:5000/me/tiny:latest"); /* a port is not a tag */
  expect_name("localhost:5000/me/tiny:v2", "localhost:5000/me/tiny:v2");
  expect_name("https://example.com/ns/m:t", "example.com/ns/m:t");
  expect_name("http://example.com/ns/m", "example.com/ns/m:latest");
  expect_name("_x/_y:_z", "registry.ollama.ai/_x/_y:_z");
  expect_name("qwen2.5-coder:1.5b-instruct-q4_K_M", "registry.ollama.ai/library/qwen2.5-coder:1.5b-instruct-q4_K_M");
  expect_name("Mistral:Latest", "registry.ollama.ai/library/Mistral:Latest"); /* case kept */
  expect_name("hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M", "hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M");

  /* Caller's defaults (a configured registry host). */
  mlxr_name_defaults def = {.host = "localhost:11434", .ns = "mine", .tag = "v1"};
  char buf[MLXR_NAME_MAX + 1], err[256];
  CHECK(mlxr_name_canonical("m", &def, buf, sizeof buf, err, sizeof err) == MLXR_OK &&
            strcmp(buf, "localhost:11434/mine/m:v1") == 0,
        "defaults: %s", buf);
  mlxr_name_defaults bad_def = {.host = "../evil"};
  CHECK(mlxr_name_canonical("m", &bad_def, buf, sizeof buf, err, sizeof err) == MLXR_ERR_INVALID,
        "an invalid default host must be refused too");

  /* Length limits: exactly at the limit passes, one more fails. */
  char *p80 = repeat('a', 80), *p81 = repeat('a', 81), *h350 = repeat('h', 350), *h351 = repeat('h', 351);
  char in[1024], want[1024];
  snprintf(in, sizeof in, "%s", p80);
  snprintf(want, sizeof want, "registry.ollama.ai/library/%s:latest", p80);
  expect_name(in, want);
  snprintf(in, sizeof in, "m:%s", p80);
  snprintf(want, sizeof want, "registry.ollama.ai/library/m:%s", p80);
  expect_name(in, want);
  snprintf(in, sizeof in, "%s/m", p80);
  snprintf(want, sizeof want, "registry.ollama.ai/%s/m:latest", p80);
  expect_name(in, want);
  snprintf(in, sizeof in, "%s/%s/%s:%s", h350, p80, p80, p80);
  expect_name(in, in); /* the longest canonical name */
  CHECK(strlen(in) == MLXR_NAME_MAX, "MLXR_NAME_MAX is %d, longest name %zu", MLXR_NAME_MAX, strlen(in));
  snprintf(in, sizeof in, "%s", p81);
  expect_bad_name(in, "model part has 81 bytes");
  snprintf(in, sizeof in, "m:%s", p81);
  expect_bad_name(in, "tag part has 81 bytes");
  snprintf(in, sizeof in, "%s/m", p81);
  expect_bad_name(in, "namespace part has 81 bytes");
  snprintf(in, sizeof in, "%s/n/m", h351);
  expect_bad_name(in, "host part has 351 bytes");
  free(p80), free(p81), free(h350), free(h351);

  /* Every formatting function reports a too-small buffer instead of truncating silently. */
  mlxr_model_name n;
  CHECK(mlxr_name_parse("me/tiny:v2", NULL, &n, err, sizeof err) == MLXR_OK, "parse: %s", err);
  char small[8];
  CHECK(mlxr_name_format(&n, small, sizeof small) == MLXR_ERR_RANGE, "format into a small buffer");
  CHECK(mlxr_name_canonical("me/tiny:v2", NULL, small, sizeof small, err, sizeof err) == MLXR_ERR_RANGE,
        "canonical into a small buffer");
}

static void test_bad_names(void) {
  expect_bad_name(NULL, "empty");
  expect_bad_name("", "empty");
  expect_bad_name("..", "model part must start");
  expect_bad_name("../etc/passwd", "host part must start");
  expect_bad_name("a/../b", "namespace part must start");
  expect_bad_name("a..b", "\"..\"");            /* stricter than today's Ollama, as older Ollama */
  expect_bad_name("m:1..2", "tag part may not contain \"..\"");
  expect_bad_name("evil..host/ns/m", "host part may not contain \"..\"");
  expect_bad_name("a/b/c/d", "too many '/' parts");
  expect_bad_name("a/b/c/d/e:t", "too many '/' parts");
  expect_bad_name("/m", "namespace part is empty");
  expect_bad_name("m/", "model part is empty");
  expect_bad_name("a//b", "namespace part is empty");
  expect_bad_name("m:", "tag part is empty");
  expect_bad_name(":t", "model part is empty");
  expect_bad_name("ns.x/m", "namespace part may not contain '.'");
  expect_bad_name("m:t:x", "model part may not contain ':'");
  expect_bad_name("m:a/b", "namespace part may not contain ':'");
  expect_bad_name("-m", "must start with a letter");
  expect_bad_name(".m", "must start with a letter");
  expect_bad_name("m@sha256-abc", "may not contain '@'");
  expect_bad_name("m t", "may not contain ' '");
  expect_bad_name("m\n", "may not contain '\\x0a'");
  expect_bad_name("m\\x", "may not contain '\\\\'");
  expect_bad_name("mod\xc3\xa8l", "may not contain '\\xc3'");
  expect_bad_name("https://m", "URL scheme");
  expect_bad_name("https://ns/m", "URL scheme");
  expect_bad_name("ftp://host/ns/m", NULL);
  expect_bad_name("C:\\models\\x", NULL);
  expect_bad_name("/abs/path/model.gguf", NULL);
  char *huge = repeat('a', 1 << 20);
  expect_bad_name(huge, "longer than");
  free(huge);
}

static void test_compare_and_forms(void) {
  mlxr_model_name a, b, c;
  char err[256], buf[MLXR_NAME_MAX + 1];
  CHECK(mlxr_name_parse("Mistral:Latest", NULL, &a, err, sizeof err) == MLXR_OK, "%s", err);
  CHECK(mlxr_name_parse("REGISTRY.OLLAMA.AI/LIBRARY/mistral:latest", NULL, &b, err, sizeof err) == MLXR_OK, "%s", err);
  CHECK(mlxr_name_parse("mistral:7b", NULL, &c, err, sizeof err) == MLXR_OK, "%s", err);
  CHECK(mlxr_name_equal(&a, &b), "names differing in case are the same model");
  CHECK(!mlxr_name_equal(&a, &c), "different tags are different models");
  CHECK(mlxr_name_compare(&c, &a) < 0 && mlxr_name_compare(&a, &c) > 0, "ordering by tag (7b < latest)");

  CHECK(mlxr_name_format_short(&a, buf, sizeof buf) > 0 && strcmp(buf, "Mistral:Latest") == 0, "short: %s", buf);
  CHECK(mlxr_name_parse("me/tiny", NULL, &a, err, sizeof err) == MLXR_OK, "%s", err);
  CHECK(mlxr_name_format_short(&a, buf, sizeof buf) > 0 && strcmp(buf, "me/tiny:latest") == 0, "short: %s", buf);
  CHECK(mlxr_name_parse("localhost:5000/library/tiny", NULL, &a, err, sizeof err) == MLXR_OK, "%s", err);
  CHECK(mlxr_name_format_short(&a, buf, sizeof buf) > 0 && strcmp(buf, "localhost:5000/library/tiny:latest") == 0,
        "short keeps a non-default host: %s", buf);
  CHECK(mlxr_name_manifest_path(&a, buf, sizeof buf) > 0 && strcmp(buf, "manifests/localhost:5000/library/tiny/latest") == 0,
        "manifest path: %s", buf);
}

static void test_digests(void) {
  char in[256];
  mlxr_digest d1, d2;
  char err[512], s[MLXR_DIGEST_STR_SIZE];
  snprintf(in, sizeof in, "sha256:%s", HEX64);
  expect_digest(in, true);
  CHECK(mlxr_digest_parse(in, &d1, err, sizeof err) == MLXR_OK && strcmp(d1.hex, HEX64) == 0, "hex kept");
  snprintf(in, sizeof in, "sha256-%s", HEX64);
  expect_digest(in, true);
  CHECK(mlxr_digest_parse(in, &d2, err, sizeof err) == MLXR_OK && mlxr_digest_equal(&d1, &d2),
        "':' and '-' name the same digest");
  mlxr_digest_str(&d1, s);
  CHECK(strcmp(s, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") == 0, "str: %s", s);
  mlxr_digest_filename(&d1, s);
  CHECK(strcmp(s, "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") == 0, "filename: %s", s);

  /* Near misses, each refused. */
  expect_digest(NULL, false);
  expect_digest("", false);
  expect_digest("sha256", false);
  expect_digest("sha256:", false);
  snprintf(in, sizeof in, "sha256:%.63s", HEX64);
  expect_digest(in, false); /* 63 digits */
  snprintf(in, sizeof in, "sha256:%s0", HEX64);
  expect_digest(in, false); /* 65 digits */
  snprintf(in, sizeof in, "sha256:%s\n", HEX64);
  expect_digest(in, false); /* trailing newline */
  snprintf(in, sizeof in, "sha256:%.63sA", HEX64);
  expect_digest(in, false); /* uppercase */
  snprintf(in, sizeof in, "SHA256:%s", HEX64);
  expect_digest(in, false);
  snprintf(in, sizeof in, "sha256/%s", HEX64);
  expect_digest(in, false);
  snprintf(in, sizeof in, "sha256_%s", HEX64);
  expect_digest(in, false);
  snprintf(in, sizeof in, "sha512:%s", HEX64);
  expect_digest(in, false);
  snprintf(in, sizeof in, "sha256::%.63s", HEX64);
  expect_digest(in, false);
  snprintf(in, sizeof in, "sha256:../../../../etc/%.50s", HEX64);
  expect_digest(in, false);
  snprintf(in, sizeof in, "sha256:%.30s..%.32s", HEX64, HEX64);
  expect_digest(in, false); /* dots, right length */
  snprintf(in, sizeof in, "sha256:%.30s/x%.32s", HEX64, HEX64);
  expect_digest(in, false); /* a slash, right length */
  snprintf(in, sizeof in, "sha256:%.63sg", HEX64);
  expect_digest(in, false);
  snprintf(in, sizeof in, " sha256:%s", HEX64);
  expect_digest(in, false);
  snprintf(in, sizeof in, "sha256-%s/../../x", HEX64);
  expect_digest(in, false);

  /* Raw bytes to hex: 07 0f 17 .. ff (i * 8 + 7). */
  unsigned char bytes[32];
  for (int i = 0; i < 32; i++) bytes[i] = (unsigned char)(i * 8 + 7);
  mlxr_digest_from_bytes(bytes, &d1);
  CHECK(strcmp(d1.hex, "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff") == 0, "from_bytes: %s",
        d1.hex);
}

static void test_quote(void) {
  char q[64];
  mlxr_registry_quote("a\"b\\c\n\x01", q, sizeof q);
  CHECK(strcmp(q, "a\\\"b\\\\c\\x0a\\x01") == 0, "quote: %s", q);
  char *long_in = repeat('x', 500);
  char big[256];
  mlxr_registry_quote(long_in, big, sizeof big);
  CHECK(strlen(big) == 63 && strcmp(big + 60, "...") == 0, "quote cuts at 60 bytes: %zu", strlen(big));
  mlxr_registry_quote(long_in, q, 10);
  CHECK(strlen(q) < 10, "quote fits a tiny buffer");
  free(long_in);
  CHECK(strcmp(mlxr_registry_quote(NULL, q, sizeof q), "(null)") == 0, "quote NULL");
}

int main(void) {
  test_valid_names();
  test_bad_names();
  test_compare_and_forms();
  test_digests();
  test_quote();
  return check_report("test_registry_names");
}
