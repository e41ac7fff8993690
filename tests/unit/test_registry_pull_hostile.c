/*
 * test_registry_pull_hostile.c: hostile manifests and hostile small blobs, served by the local
 * registry (tests/golden/registry_server.py), must each be refused by mlxr_pull_model with a clear
 * message (a substring this test names) and change nothing: the store's files are byte for byte
 * the same (a snapshot before and after), the catalog has no new row, and for a refused manifest
 * no blob was even requested (the server's log).
 *
 * Manifests: not JSON, not an object, wrong schemaVersion, a foreign manifest media type, a
 * missing or malformed config, digests with dots, slashes, uppercase, a '-' separator, another
 * algorithm or the wrong length, sizes negative, fractional, as a string, over the blob limit or
 * over the text limit, an unknown layer media type, no model layer, a repeated template, one digest
 * with two sizes, a duplicated key, too many layers, a manifest over the size cap, a
 * Docker-Content-Digest header that does not match the bytes, a 404 and a 401. Small blobs (bytes
 * matching their digests): params that are not a JSON object, a config that is not JSON, a
 * template with a NUL byte, messages that are not an array.
 * Also the parser alone (mlxr_manifest_parse) on the same texts, so the messages are checked
 * without the network, and on a valid manifest, whose fields it must return.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/registry/manifest.h"
#include "tests/unit/test_registry_pull_env.h"

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define H64T "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define H64C "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define CFG "{\"mediaType\":\"" MT_CONFIG "\",\"digest\":\"sha256:" H64C "\",\"size\":10}"
#define LAYER(mt, digest, size) "{\"mediaType\":\"" mt "\",\"digest\":\"" digest "\",\"size\":" size "}"
#define MODEL_LAYER LAYER(MT_MODEL, "sha256:" H64, "100")
#define MANIFEST(cfg, layers) "{\"schemaVersion\":2,\"config\":" cfg ",\"layers\":[" layers "]}"

typedef struct hostile {
  const char *what;
  const char *text;
  int want_rc;
  const char *want_msg;
} hostile;

static const hostile manifests[] = {
    {"not JSON", "{\"schemaVersion\":2,", MLXR_ERR_INVALID, "not valid JSON"},
    {"not an object", "[1,2]", MLXR_ERR_INVALID, "not a JSON object"},
    {"schemaVersion 1", "{\"schemaVersion\":1,\"config\":" CFG ",\"layers\":[" MODEL_LAYER "]}", MLXR_ERR_INVALID,
     "schemaVersion"},
    {"manifest list", "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"config\":" CFG
                      ",\"layers\":[" MODEL_LAYER "]}",
     MLXR_ERR_UNSUPPORTED, "not an image manifest"},
    {"no config", "{\"schemaVersion\":2,\"layers\":[" MODEL_LAYER "]}", MLXR_ERR_INVALID, "\"config\" is missing"},
    {"config of a layer type", MANIFEST(LAYER(MT_MODEL, "sha256:" H64, "10"), MODEL_LAYER), MLXR_ERR_INVALID,
     "not an image config"},
    {"digest with dots", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:../../../../etc/passwd", "100")), MLXR_ERR_INVALID,
     "invalid digest"},
    {"digest with a slash", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:0123/56789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "100")),
     MLXR_ERR_INVALID, "invalid digest"},
    {"digest uppercase", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "100")),
     MLXR_ERR_INVALID, "invalid digest"},
    {"digest with '-'", MANIFEST(CFG, LAYER(MT_MODEL, "sha256-" H64, "100")), MLXR_ERR_INVALID, "invalid digest"},
    {"digest sha512", MANIFEST(CFG, LAYER(MT_MODEL, "sha512:" H64 H64, "100")), MLXR_ERR_INVALID, "invalid digest"},
    {"digest short", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:0123", "100")), MLXR_ERR_INVALID, "invalid digest"},
    {"digest trailing", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:" H64 ".", "100")), MLXR_ERR_INVALID, "invalid digest"},
    {"size negative", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:" H64, "-1")), MLXR_ERR_RANGE, "negative"},
    {"size fractional", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:" H64, "1.5")), MLXR_ERR_INVALID, "whole number"},
    {"size a string", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:" H64, "\"100\"")), MLXR_ERR_INVALID, "must be a number"},
    {"size huge", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:" H64, "1e300")), MLXR_ERR_RANGE, "over the limit"},
    {"size over the blob limit", MANIFEST(CFG, LAYER(MT_MODEL, "sha256:" H64, "2000000000000")), MLXR_ERR_RANGE,
     "over the limit"},
    {"template over the text limit", MANIFEST(CFG, MODEL_LAYER "," LAYER(MT_TEMPLATE, "sha256:" H64T, "2000000")),
     MLXR_ERR_RANGE, "over the limit"},
    {"unknown media type", MANIFEST(CFG, MODEL_LAYER "," LAYER("application/vnd.ollama.image.prompt", "sha256:" H64T, "5")),
     MLXR_ERR_UNSUPPORTED, "does not support"},
    {"no model layer", MANIFEST(CFG, LAYER(MT_TEMPLATE, "sha256:" H64T, "5")), MLXR_ERR_INVALID, "no layer of type"},
    {"two templates", MANIFEST(CFG, MODEL_LAYER "," LAYER(MT_TEMPLATE, "sha256:" H64T, "5") "," LAYER(MT_TEMPLATE, "sha256:" H64T, "5")),
     MLXR_ERR_INVALID, "second"},
    {"one digest two sizes", MANIFEST(CFG, MODEL_LAYER "," LAYER(MT_MODEL, "sha256:" H64, "101")), MLXR_ERR_INVALID,
     "two sizes"},
    {"duplicate key", "{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[" MODEL_LAYER "],\"layers\":[]}",
     MLXR_ERR_INVALID, "more than once"},
    {"duplicate digest key", MANIFEST(CFG, "{\"mediaType\":\"" MT_MODEL "\",\"digest\":\"sha256:" H64
                                           "\",\"digest\":\"sha256:../x\",\"size\":1}"),
     MLXR_ERR_INVALID, "more than once"},
    {"layers not an array", "{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":{}}", MLXR_ERR_INVALID, "array"},
    {"no layers", MANIFEST(CFG, ""), MLXR_ERR_RANGE, "0 layers"},
    {"layer not an object", MANIFEST(CFG, "7"), MLXR_ERR_INVALID, "must be an object"},
};

/* A manifest of 65 model layers (the default limit is 64) and one padded past the size cap. */
static char *too_many_layers(void) {
  size_t cap = 65 * 200 + 512, len = 0;
  char *t = malloc(cap);
  len += (size_t)snprintf(t, cap, "{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[");
  for (int i = 0; i < 65; i++) len += (size_t)snprintf(t + len, cap - len, "%s" MODEL_LAYER, i ? "," : "");
  snprintf(t + len, cap - len, "]}");
  return t;
}

static char *too_big(size_t n) {
  static const char head[] = "{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[" MODEL_LAYER "],\"pad\":\"";
  const size_t len = strlen(head);
  char *t = malloc(len + n + 3);
  memcpy(t, head, len);
  memset(t + len, 'x', n);
  memcpy(t + len + n, "\"}", 3);
  return t;
}

/* The parser alone: every hostile text refused with its message; a valid one read field by field. */
static void test_parser(void) {
  char err[1024];
  for (size_t i = 0; i < sizeof manifests / sizeof manifests[0]; i++) {
    const hostile *h = &manifests[i];
    mlxr_manifest m;
    int rc = mlxr_manifest_parse(h->text, strlen(h->text), NULL, &m, err, sizeof err);
    CHECK(rc == h->want_rc && strstr(err, h->want_msg), "parse %s: rc %d (want %d) \"%s\" (want \"%s\")", h->what, rc,
          h->want_rc, err, h->want_msg);
    CHECK(m.layers == NULL && m.n_layers == 0, "parse %s: result not cleared", h->what);
  }
  char *t = too_many_layers();
  mlxr_manifest m;
  CHECK(mlxr_manifest_parse(t, strlen(t), NULL, &m, err, sizeof err) == MLXR_ERR_RANGE && strstr(err, "65 layers"),
        "65 layers: %s", err);
  free(t);
  t = too_big(2 << 20);
  CHECK(mlxr_manifest_parse(t, strlen(t), NULL, &m, err, sizeof err) == MLXR_ERR_RANGE && strstr(err, "over the limit"),
        "2 MiB manifest: %s", err);
  free(t);
  /* not NUL-terminated: the length bounds the parse */
  const char *ok = MANIFEST(CFG, MODEL_LAYER "," LAYER(MT_TEMPLATE, "sha256:" H64T, "5")) "garbage";
  const size_t ok_len = strlen(ok) - strlen("garbage");
  int rc = mlxr_manifest_parse(ok, ok_len, NULL, &m, err, sizeof err);
  CHECK(rc == MLXR_OK, "valid manifest: %s", err);
  if (rc == MLXR_OK) {
    CHECK(m.n_layers == 2 && m.layers[0].kind == MLXR_LAYER_MODEL && m.layers[0].size == 100 &&
              strcmp(m.layers[0].digest, "sha256:" H64) == 0 && m.layers[1].kind == MLXR_LAYER_TEMPLATE &&
              m.config.kind == MLXR_LAYER_CONFIG && m.config.size == 10,
          "valid manifest fields");
    /* and what format writes parses back to the same */
    char *again = mlxr_manifest_format(&m);
    mlxr_manifest m2;
    CHECK(again && mlxr_manifest_parse(again, strlen(again), NULL, &m2, err, sizeof err) == MLXR_OK &&
              m2.n_layers == 2 && strcmp(m2.layers[1].digest, m.layers[1].digest) == 0 && m2.layers[1].size == 5,
          "format round trip: %s", again ? again : "(null)");
    free(again);
    mlxr_manifest_free(&m2);
  }
  mlxr_manifest_free(&m);
  /* config blobs and parameter sizes */
  mlxr_image_config c;
  const char *c1 = "{\"model_type\":\"1.5B\",\"file_type\":\"Q8_0\"}", *c2 = "{\"model_family\":\"ll\\u0001ama\"}";
  CHECK(mlxr_image_config_parse(c1, strlen(c1), &c, err, sizeof err) == MLXR_OK &&
            c.parameter_count == 1500000000LL && strcmp(c.file_type, "Q8_0") == 0,
        "config: %s %lld", err, (long long)c.parameter_count);
  CHECK(mlxr_image_config_parse(c2, strlen(c2), &c, err, sizeof err) == MLXR_ERR_INVALID &&
            strstr(err, "printable"),
        "config control byte: %s", err);
  CHECK(mlxr_parameter_size_parse("137M") == 137000000 && mlxr_parameter_size_parse("8B") == 8000000000LL &&
            mlxr_parameter_size_parse("0.5K") == 500 && mlxr_parameter_size_parse("8") == -1 &&
            mlxr_parameter_size_parse("B") == -1 && mlxr_parameter_size_parse("1.B") == -1 &&
            mlxr_parameter_size_parse("99999999999B") == -1,
        "parameter sizes");
}

/* Pull `model` and expect a refusal that changed nothing; blob_requests_allowed: small blobs may
 * have been fetched (a hostile blob), else no blob request at all. */
static void expect_refused(penv *e, const char *what, const char *model, const mlxr_pull_params *p, int want_rc,
                           const char *want_msg, bool blob_requests_allowed) {
  char *before = reg_snapshot(e->root, NULL);
  const int models_before = penv_n_models(e);
  srv_log_clear(&e->s);
  char name[128], err[1024] = "";
  snprintf(name, sizeof name, "127.0.0.1/me/%s:v1", model);
  int rc = mlxr_pull_model(e->st, e->cat, name, p, NULL, err, sizeof err);
  CHECK(rc == want_rc && strstr(err, want_msg), "%s: rc %d (want %d) \"%s\" (want \"%s\")", what, rc, want_rc, err,
        want_msg);
  char *after = reg_snapshot(e->root, NULL);
  CHECK(strcmp(before, after) == 0, "%s: the store changed:\nbefore:\n%s\nafter:\n%s", what, before, after);
  CHECK(penv_n_models(e) == models_before, "%s: the catalog changed", what);
  int n_checked = 0;
  CHECK(reg_check_final_names(e->blobs, &n_checked) == 0 && reg_count_entries(e->blobs, "-partial") == 0,
        "%s: a stored blob does not hash to its name, or a partial file is left", what);
  srv_req log[64];
  const int n = srv_log_wait(&e->s, log, 64, 1);
  CHECK(blob_requests_allowed || srv_count_for(log, n, "/blobs/") == 0, "%s: %d blob requests after a refused manifest",
        what, srv_count_for(log, n, "/blobs/"));
  free(before);
  free(after);
}

static void test_hostile_manifests(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "hostile")) return;
  /* a model already in the catalog, so "nothing changed" covers existing rows and blobs too */
  layer cfg, model;
  put_text_layer(&e, &cfg, MT_CONFIG, "{\"model_family\":\"llama\"}");
  put_random_layer(&e, &model, MT_MODEL, 5000, 7);
  put_manifest(&e, "good", "v1", &cfg, &model, 1);
  mlxr_pull_params p = penv_params(&e);
  char err[1024] = "";
  CHECK(mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/good:v1", &p, NULL, err, sizeof err) == MLXR_OK, "good pull: %s",
        err);

  for (size_t i = 0; i < sizeof manifests / sizeof manifests[0]; i++) {
    char model_name[32];
    snprintf(model_name, sizeof model_name, "h%zu", i);
    CHECK(srv_put_manifest(&e.s, "me", model_name, "v1", manifests[i].text), "write manifest");
    expect_refused(&e, manifests[i].what, model_name, &p, manifests[i].want_rc, manifests[i].want_msg, false);
  }
  char *t = too_many_layers();
  srv_put_manifest(&e.s, "me", "many", "v1", t);
  free(t);
  expect_refused(&e, "65 layers", "many", &p, MLXR_ERR_RANGE, "65 layers", false);
  t = too_big(100000);
  srv_put_manifest(&e.s, "me", "big", "v1", t);
  free(t);
  mlxr_pull_params small = p;
  small.limits.max_manifest_bytes = 50000;
  expect_refused(&e, "manifest over the cap", "big", &small, MLXR_ERR_RANGE, "over the limit", false);
  /* the registry's digest header disagrees with the bytes */
  srv_faults(&e.s, "{\"manifest_digest_header\":\"sha256:" H64 "\"}");
  expect_refused(&e, "Docker-Content-Digest mismatch", "good", &p, MLXR_ERR_FORMAT, "hash to", false);
  srv_faults(&e.s, "{\"status\":{\"manifest\":401}}");
  expect_refused(&e, "401", "good", &p, MLXR_ERR_UNSUPPORTED, "authentication", false);
  srv_faults(&e.s, NULL);
  expect_refused(&e, "404", "nosuchmodel", &p, MLXR_ERR_NOT_FOUND, "not found", false);
  penv_close(&e);
}

static void test_hostile_blobs(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "hostile_blobs")) return;
  static const struct {
    const char *what, *media_type, *content;
    size_t len;
    int want_rc;
    const char *want_msg;
  } cases[] = {
      {"params not an object", MT_PARAMS, "[\"stop\"]", 8, MLXR_ERR_INVALID, "not a JSON object"},
      {"params not JSON", MT_PARAMS, "{stop", 5, MLXR_ERR_INVALID, "not a JSON object"},
      {"messages not an array", MT_MESSAGES, "{}", 2, MLXR_ERR_INVALID, "not a JSON array"},
      {"template with NUL", MT_TEMPLATE, "{{ .Prompt }}\0evil", 18, MLXR_ERR_INVALID, "NUL"},
      {"config not JSON", MT_CONFIG, "model_format=gguf", 17, MLXR_ERR_INVALID, "config blob"},
      {"config with a bad field", MT_CONFIG, "{\"model_family\":7}", 18, MLXR_ERR_INVALID, "must be a string"},
      {"config of another format", MT_CONFIG, "{\"model_format\":\"onnx\"}", 23, MLXR_ERR_UNSUPPORTED, "onnx"},
  };
  mlxr_pull_params p = penv_params(&e);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    layer cfg, layers[2];
    int n = 0;
    if (strcmp(cases[i].media_type, MT_CONFIG) == 0) {
      put_layer(&e, &cfg, MT_CONFIG, cases[i].content, cases[i].len);
    } else {
      put_text_layer(&e, &cfg, MT_CONFIG, "{}");
    }
    put_random_layer(&e, &layers[n++], MT_MODEL, 3000, 100 + i);
    if (strcmp(cases[i].media_type, MT_CONFIG) != 0) put_layer(&e, &layers[n++], cases[i].media_type, cases[i].content, cases[i].len);
    char model[32];
    snprintf(model, sizeof model, "b%zu", i);
    put_manifest(&e, model, "v1", &cfg, layers, n);
    expect_refused(&e, cases[i].what, model, &p, cases[i].want_rc, cases[i].want_msg, true);
  }
  penv_close(&e);
}

int main(void) {
  alarm(120);
  test_parser();
  penv e;
  memset(&e, 0, sizeof e);
  if (!reg_mkdtemp("pullh", e.tmp, sizeof e.tmp)) {
    fprintf(stderr, "mkdtemp failed\n");
    return 1;
  }
  if (!srv_start(&e.s, e.tmp)) {
    CHECK(false, "the local registry did not start");
  } else {
    test_hostile_manifests(&e);
    test_hostile_blobs(&e);
  }
  srv_stop(&e.s);
  reg_rmtree(e.tmp);
  return check_report("test_registry_pull_hostile");
}
