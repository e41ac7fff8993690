/*
 * test_registry_catalog.c: the SQLite catalog (daemon/registry/catalog*.c) over a real store.
 *
 * Checked properties: the schema is created at the latest version with its migration recorded,
 * WAL mode persisted, and a database from a newer schema (or not a database) is refused; add
 * stores every field and takes blob sizes from the store, get finds a model by any spelling of its
 * name (short, full, other case), list is ordered; add refuses a blob that is not in the store and
 * every hostile or malformed input (names with '..' or '/', bad digests, media types, parameters
 * that are not a JSON object, negative counts, oversized text, NaN or infinite adapter scales,
 * names differing only in case) with a clear message, leaving the database rows and the store's
 * files unchanged; replacing a model frees the blobs only it used; copy shares blobs, replaces an
 * existing destination and refuses unknown sources; delete frees exactly the blobs no other row
 * references (and reports them); touch sets last-used; the integrity check finds a missing blob,
 * a wrong size, and (deep) wrong bytes; gc keeps referenced and young blobs and removes the rest;
 * the KV-cache index stores, finds and replaces entries and frees their blobs.
 * Crash safety: a child that adds and deletes models in a loop is SIGKILLed through the hooks at
 * named points (inside the store's write, inside the add transaction, inside the delete
 * transaction, between the row delete and the blob removal, inside a copy) and after a range of
 * delays; afterwards, through a separate SQLite connection and sha256sum (not the catalog's own
 * code): integrity_check is ok, every row's blobs exist with their recorded sizes, every model has
 * all its blobs or is absent, the models present are exactly those the kill point implies, every
 * file under a final name hashes to its name; then gc removes exactly the blobs the interrupted
 * operation left unreferenced, and the store holds exactly the referenced blobs.
 */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/common/status.h"
#include "daemon/registry/catalog.h"
#include "daemon/registry/store.h"
#include "tests/unit/check.h"
#include "tests/unit/test_registry_util.h"

#define MT_MODEL "application/vnd.ollama.image.model"
#define MT_TEMPLATE "application/vnd.ollama.image.template"
#define MT_PARAMS "application/vnd.ollama.image.params"

typedef struct env {
  char tmp[1024];
  char root[1100];
  char blobs[1200];
  char db[1200];
  mlxr_store *st;
  mlxr_catalog *cat;
} env;

static bool env_open(env *e, const char *sub, const mlxr_store_params *sp, const mlxr_catalog_params *cp) {
  snprintf(e->root, sizeof e->root, "%s/%s", e->tmp, sub);
  snprintf(e->blobs, sizeof e->blobs, "%s/blobs", e->root);
  snprintf(e->db, sizeof e->db, "%s/registry.db", e->root);
  char err[512] = "";
  e->st = NULL;
  e->cat = NULL;
  int rc = mlxr_store_open(e->root, sp, &e->st, err, sizeof err);
  CHECK(rc == MLXR_OK, "store open: %s", err);
  if (rc < 0) return false;
  rc = mlxr_catalog_open(e->db, e->st, cp, &e->cat, err, sizeof err);
  CHECK(rc == MLXR_OK, "catalog open: %s", err);
  return rc == MLXR_OK;
}

static void env_close(env *e) {
  mlxr_catalog_close(e->cat);
  mlxr_store_close(e->st);
  e->cat = NULL;
  e->st = NULL;
}

/* Stores `size` random bytes (seed) and writes "sha256:<hex>" into ref->digest. */
static void put_blob(env *e, uint64_t seed, size_t size, const char *media_type, mlxr_blob_ref *ref) {
  unsigned char *buf = malloc(size ? size : 1);
  reg_fill(buf, size, seed);
  mlxr_digest d = {{0}};
  char err[512] = "";
  CHECK(mlxr_store_put_buffer(e->st, buf, size, NULL, &d, err, sizeof err) == MLXR_OK, "put: %s", err);
  free(buf);
  memset(ref, 0, sizeof *ref);
  mlxr_digest_str(&d, ref->digest);
  snprintf(ref->media_type, sizeof ref->media_type, "%s", media_type);
}

static bool file_of(env *e, const char *digest) {
  char path[4400];
  snprintf(path, sizeof path, "%s/sha256-%s", e->blobs, digest + 7);
  return access(path, F_OK) == 0;
}

/* Every row of every table, through a separate connection: what "nothing changed" compares. */
static char *dump_db(const char *path) {
  sqlite3 *db = NULL;
  size_t cap = 1 << 16, len = 0;
  char *out = calloc(1, cap);
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    sqlite3_close(db);
    return out;
  }
  static const char *const q[] = {
      ("SELECT 'M', id, name, format, architecture, parameter_count, quantization, context_length, "
       "length(chat_template), parameters, system_prompt, created_ms, last_used_ms FROM models ORDER BY id"),
      "SELECT 'B', * FROM model_blobs ORDER BY model_id, position",
      "SELECT 'A', * FROM adapters ORDER BY model_id, position",
      "SELECT 'C', * FROM cache_entries ORDER BY model_id, prefix_hash",
  };
  for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) != SQLITE_OK) continue;
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(st); c++) {
        const char *t = (const char *)sqlite3_column_text(st, c);
        size_t need = (t ? strlen(t) : 4) + 2;
        if (len + need + 1 > cap) {
          cap = (cap + need) * 2;
          out = realloc(out, cap);
        }
        len += (size_t)snprintf(out + len, cap - len, "%s|", t ? t : "NULL");
      }
      out[len++] = '\n';
      out[len] = '\0';
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

/* ---- schema ---- */

static void test_schema(env *base) {
  env e = *base;
  if (!env_open(&e, "schema", NULL, NULL)) return;
  CHECK(mlxr_catalog_schema_version(e.cat) == mlxr_catalog_latest_schema_version() &&
            mlxr_catalog_latest_schema_version() >= 1,
        "schema version %d, latest %d", mlxr_catalog_schema_version(e.cat), mlxr_catalog_latest_schema_version());
  /* a second catalog on the same file at once (another process would do the same) */
  mlxr_catalog *c2 = NULL;
  char err[512] = "";
  CHECK(mlxr_catalog_open(e.db, e.st, NULL, &c2, err, sizeof err) == MLXR_OK, "second open: %s", err);
  mlxr_catalog_close(c2);
  env_close(&e);

  sqlite3 *db = NULL;
  CHECK(sqlite3_open(e.db, &db) == SQLITE_OK, "raw open");
  sqlite3_stmt *st;
  int n = 0, version = 0;
  if (sqlite3_prepare_v2(db, "SELECT version FROM schema_migrations", -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) n++, version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  CHECK(n == mlxr_catalog_latest_schema_version() && version == mlxr_catalog_latest_schema_version(),
        "schema_migrations: %d rows, last %d", n, version);
  const char *mode = "";
  if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) mode = strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0 ? "wal" : "?";
    sqlite3_finalize(st);
  }
  CHECK(strcmp(mode, "wal") == 0, "journal mode is WAL");
  sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
  sqlite3_close(db);

  /* newer schema: refused */
  mlxr_store *store = NULL;
  mlxr_catalog *cat = NULL;
  mlxr_store_open(e.root, NULL, &store, err, sizeof err);
  int rc = mlxr_catalog_open(e.db, store, NULL, &cat, err, sizeof err);
  CHECK(rc == MLXR_ERR_UNSUPPORTED && !cat && strstr(err, "version 99"), "newer schema: rc %d \"%s\"", rc, err);
  /* not a database */
  char junk[4400];
  snprintf(junk, sizeof junk, "%s/junk.db", e.root);
  char garbage[4096];
  reg_fill((unsigned char *)garbage, sizeof garbage, 3);
  reg_write_file(junk, garbage, sizeof garbage);
  rc = mlxr_catalog_open(junk, store, NULL, &cat, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && !cat, "not a database: rc %d \"%s\"", rc, err);
  CHECK(mlxr_catalog_open(e.db, NULL, NULL, &cat, err, sizeof err) == MLXR_ERR_INVALID, "no store");
  mlxr_store_close(store);
}

/* ---- add, get, list ---- */

typedef struct model_fixture {
  mlxr_blob_ref blobs[3];
  mlxr_adapter_ref adapter;
  mlxr_model_spec spec;
} model_fixture;

static void make_tiny(env *e, model_fixture *f, uint64_t seed) {
  memset(f, 0, sizeof *f);
  put_blob(e, seed, 100000, MT_MODEL, &f->blobs[0]);
  put_blob(e, seed + 1, 300, MT_TEMPLATE, &f->blobs[1]);
  put_blob(e, 777, 64, MT_PARAMS, &f->blobs[2]); /* the same for every fixture: shared */
  mlxr_blob_ref a;
  put_blob(e, seed + 2, 5000, "application/vnd.ollama.image.adapter", &a);
  snprintf(f->adapter.name, sizeof f->adapter.name, "lora-%llu.gguf", (unsigned long long)seed);
  memcpy(f->adapter.digest, a.digest, sizeof a.digest);
  f->adapter.scale = 0.5;
  f->spec = (mlxr_model_spec){.name = "tiny",
                              .format = MLXR_MODEL_FORMAT_GGUF,
                              .architecture = "llama",
                              .parameter_count = 1234567,
                              .quantization = "Q8_0",
                              .context_length = 4096,
                              .chat_template = "{{ .Prompt }}",
                              .parameters_json = "{\"temperature\":0.7,\"stop\":[\"<|end|>\"]}",
                              .system_prompt = "You are tiny.",
                              .blobs = f->blobs,
                              .n_blobs = 3,
                              .adapters = &f->adapter,
                              .n_adapters = 1,
                              .now_ms = 1700000000123};
}

static void test_add_get(env *base) {
  env e = *base;
  if (!env_open(&e, "addget", NULL, NULL)) return;
  model_fixture f;
  make_tiny(&e, &f, 10);
  char err[512] = "";
  CHECK(mlxr_catalog_add(e.cat, &f.spec, err, sizeof err) == MLXR_OK, "add: %s", err);
  static const char *const spellings[] = {"tiny", "tiny:latest", "TINY:LATEST", "library/tiny",
                                          "registry.ollama.ai/library/tiny:latest", "Registry.Ollama.AI/Library/Tiny"};
  for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
    mlxr_model_info m;
    int rc = mlxr_catalog_get(e.cat, spellings[i], &m, err, sizeof err);
    CHECK(rc == MLXR_OK, "get \"%s\": %s", spellings[i], err);
    if (rc < 0) continue;
    CHECK(strcmp(m.name, "registry.ollama.ai/library/tiny:latest") == 0, "name %s", m.name);
    CHECK(m.format == MLXR_MODEL_FORMAT_GGUF && strcmp(m.architecture, "llama") == 0 &&
              m.parameter_count == 1234567 && strcmp(m.quantization, "Q8_0") == 0 && m.context_length == 4096,
          "details");
    CHECK(strcmp(m.chat_template, "{{ .Prompt }}") == 0 && strcmp(m.system_prompt, "You are tiny.") == 0 &&
              strcmp(m.parameters_json, f.spec.parameters_json) == 0,
          "texts");
    CHECK(m.created_ms == 1700000000123 && m.last_used_ms == 0, "times %lld %lld", (long long)m.created_ms,
          (long long)m.last_used_ms);
    CHECK(m.n_blobs == 3 && m.n_adapters == 1, "refs %zu %zu", m.n_blobs, m.n_adapters);
    if (m.n_blobs == 3) {
      CHECK(strcmp(m.blobs[0].digest, f.blobs[0].digest) == 0 && strcmp(m.blobs[1].digest, f.blobs[1].digest) == 0 &&
                strcmp(m.blobs[2].digest, f.blobs[2].digest) == 0,
            "blob order");
      CHECK(m.blobs[0].size == 100000 && m.blobs[1].size == 300 && m.blobs[2].size == 64, "sizes from the store");
      CHECK(strcmp(m.blobs[1].media_type, MT_TEMPLATE) == 0, "media type");
    }
    if (m.n_adapters == 1) {
      CHECK(strcmp(m.adapters[0].name, "lora-10.gguf") == 0 && strcmp(m.adapters[0].digest, f.adapter.digest) == 0 &&
                m.adapters[0].scale == 0.5 && m.adapters[0].size == 5000,
            "adapter");
    }
    CHECK(m.total_size == 100000 + 300 + 64 + 5000, "total size %lld", (long long)m.total_size);
    mlxr_model_info_clear(&m);
    CHECK(m.name == NULL && m.blobs == NULL, "clear zeroes");
  }
  /* digests given with '-' are stored with ':' */
  model_fixture g;
  make_tiny(&e, &g, 20);
  g.spec.name = "me/other:v1";
  g.spec.format = MLXR_MODEL_FORMAT_SAFETENSORS;
  g.spec.architecture = NULL;
  g.spec.chat_template = NULL;
  g.spec.parameters_json = NULL;
  g.blobs[0].digest[6] = '-';
  CHECK(mlxr_catalog_add(e.cat, &g.spec, err, sizeof err) == MLXR_OK, "add other: %s", err);
  mlxr_model_info *list = NULL;
  size_t n = 0;
  CHECK(mlxr_catalog_list(e.cat, &list, &n, err, sizeof err) == MLXR_OK && n == 2, "list: %zu %s", n, err);
  if (n == 2) {
    CHECK(strcmp(list[0].name, "registry.ollama.ai/library/tiny:latest") == 0 &&
              strcmp(list[1].name, "registry.ollama.ai/me/other:v1") == 0,
          "list order: %s, %s", list[0].name, list[1].name);
    CHECK(list[1].format == MLXR_MODEL_FORMAT_SAFETENSORS && list[1].architecture == NULL &&
              list[1].chat_template == NULL && list[1].parameters_json == NULL,
          "NULLs stay NULL");
    CHECK(list[1].blobs[0].digest[6] == ':', "digest normalized to sha256: (%s)", list[1].blobs[0].digest);
  }
  mlxr_model_list_free(list, n);
  mlxr_model_info m;
  CHECK(mlxr_catalog_get(e.cat, "nothere", &m, err, sizeof err) == MLXR_ERR_NOT_FOUND && strstr(err, "not found"),
        "get unknown: %s", err);
  CHECK(mlxr_model_format_name((mlxr_model_format)9) == NULL, "unknown format name");
  mlxr_model_format fmt;
  CHECK(mlxr_model_format_parse("MLX", &fmt) == MLXR_OK && fmt == MLXR_MODEL_FORMAT_MLX, "parse MLX");
  CHECK(mlxr_model_format_parse("onnx", &fmt) == MLXR_ERR_INVALID, "parse onnx");
  CHECK(mlxr_catalog_check(e.cat, true, NULL, err, sizeof err) == MLXR_OK, "check: %s", err);
  env_close(&e);
}

/* ---- refusals change nothing ---- */

typedef struct refusal {
  const char *what;
  int want;            /* status */
  const char *mention; /* in the message */
} refusal;

static void expect_refused(env *e, const refusal *r, int rc, const char *err, const char *before_db,
                           const char *before_files) {
  CHECK(rc == r->want, "%s: rc %d, want %d (%s)", r->what, rc, r->want, err);
  CHECK(!r->mention || strstr(err, r->mention), "%s: message \"%s\" lacks \"%s\"", r->what, err, r->mention);
  /* registry.db* files change on reads (WAL): the rows are compared instead, and the store's files */
  char *db = dump_db(e->db), *fb = reg_snapshot(e->blobs, NULL);
  CHECK(strcmp(db, before_db) == 0, "%s: the catalog's rows changed", r->what);
  CHECK(strcmp(fb, before_files) == 0, "%s: the store's files changed", r->what);
  free(db);
  free(fb);
}

static void test_refusals(env *base) {
  env e = *base;
  if (!env_open(&e, "refuse", NULL, NULL)) return;
  model_fixture f;
  make_tiny(&e, &f, 30);
  char err[512] = "";
  CHECK(mlxr_catalog_add(e.cat, &f.spec, err, sizeof err) == MLXR_OK, "add: %s", err);
  mlxr_cache_entry ce = {.n_tokens = 16};
  snprintf(ce.prefix_hash, sizeof ce.prefix_hash, "%s", f.blobs[1].digest);
  snprintf(ce.digest, sizeof ce.digest, "%s", f.blobs[1].digest);
  CHECK(mlxr_catalog_cache_put(e.cat, "tiny", &ce, err, sizeof err) == MLXR_OK, "cache put: %s", err);
  char *before_db = dump_db(e.db), *before_files = reg_snapshot(e.blobs, NULL);
  CHECK(strstr(before_db, "tiny") != NULL, "dump sees the model");

  model_fixture g;
  memcpy(&g, &f, sizeof g);
  g.spec.blobs = g.blobs;
  g.spec.adapters = &g.adapter;
  g.spec.name = "fresh";
  int rc;
  /* a blob not in the store */
  static const refusal missing = {"missing blob", MLXR_ERR_NOT_FOUND, "is not in the store"};
  snprintf(g.blobs[1].digest, sizeof g.blobs[1].digest, "sha256:%064d", 0);
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &missing, rc, err, before_db, before_files);
  memcpy(g.blobs, f.blobs, sizeof g.blobs);
  snprintf(g.adapter.digest, sizeof g.adapter.digest, "sha256:%064d", 1);
  static const refusal missing_adapter = {"missing adapter blob", MLXR_ERR_NOT_FOUND, "is not in the store"};
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &missing_adapter, rc, err, before_db, before_files);
  g.adapter = f.adapter;

  /* hostile names */
  static const char *const bad_names[] = {"../x", "a/b/c/d", "", "a/../../b", "/etc/passwd", "m:..", "ns.x/m"};
  for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
    refusal r = {bad_names[i], MLXR_ERR_INVALID, "invalid model name"};
    g.spec.name = bad_names[i];
    rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
    expect_refused(&e, &r, rc, err, before_db, before_files);
    mlxr_model_info m;
    rc = mlxr_catalog_get(e.cat, bad_names[i], &m, err, sizeof err);
    expect_refused(&e, &r, rc, err, before_db, before_files);
    rc = mlxr_catalog_copy(e.cat, "tiny", bad_names[i], 0, err, sizeof err);
    expect_refused(&e, &r, rc, err, before_db, before_files);
    rc = mlxr_catalog_delete(e.cat, bad_names[i], NULL, err, sizeof err);
    expect_refused(&e, &r, rc, err, before_db, before_files);
  }
  g.spec.name = "fresh";
  /* hostile digests */
  static const char *const bad_digests[] = {
      "sha256:../../../../etc/passwd",
      "sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
      "sha256:abc",
      "sha256:0123456789abcdef0123456789abcdef.123456789abcdef0123456789abcdef",
      "sha256-0123456789abcdef0123456789abcdef/123456789abcdef0123456789abcdef",
  };
  for (size_t i = 0; i < sizeof bad_digests / sizeof bad_digests[0]; i++) {
    refusal r = {bad_digests[i], MLXR_ERR_INVALID, "invalid digest"};
    snprintf(g.blobs[0].digest, sizeof g.blobs[0].digest, "%s", bad_digests[i]);
    rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
    expect_refused(&e, &r, rc, err, before_db, before_files);
    mlxr_cache_entry bad = ce;
    snprintf(bad.digest, sizeof bad.digest, "%s", bad_digests[i]);
    rc = mlxr_catalog_cache_put(e.cat, "tiny", &bad, err, sizeof err);
    expect_refused(&e, &r, rc, err, before_db, before_files);
  }
  memcpy(g.blobs, f.blobs, sizeof g.blobs);
  /* an unterminated digest field */
  memset(g.blobs[0].digest, 'a', sizeof g.blobs[0].digest);
  static const refusal unterminated = {"unterminated digest", MLXR_ERR_INVALID, "not terminated"};
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &unterminated, rc, err, before_db, before_files);
  memcpy(g.blobs, f.blobs, sizeof g.blobs);

  static const refusal media = {"media type", MLXR_ERR_INVALID, "media type"};
  snprintf(g.blobs[0].media_type, sizeof g.blobs[0].media_type, "a b");
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &media, rc, err, before_db, before_files);
  g.blobs[0].media_type[0] = '\0';
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &media, rc, err, before_db, before_files);
  memcpy(g.blobs, f.blobs, sizeof g.blobs);

  static const refusal params = {"parameters", MLXR_ERR_INVALID, "JSON object"};
  g.spec.parameters_json = "[1, 2]";
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &params, rc, err, before_db, before_files);
  g.spec.parameters_json = "{\"unterminated\": ";
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &params, rc, err, before_db, before_files);
  g.spec.parameters_json = NULL;

  static const refusal range = {"negative count", MLXR_ERR_RANGE, "in range"};
  g.spec.parameter_count = -1;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &range, rc, err, before_db, before_files);
  g.spec.parameter_count = 0;
  g.spec.context_length = -4096;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &range, rc, err, before_db, before_files);
  g.spec.context_length = INT64_MAX;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &range, rc, err, before_db, before_files);
  g.spec.context_length = 0;

  static const refusal big = {"oversized template", MLXR_ERR_RANGE, "longer than"};
  char *huge = malloc(MLXR_CATALOG_TEXT_MAX + 2);
  memset(huge, 'x', MLXR_CATALOG_TEXT_MAX + 1);
  huge[MLXR_CATALOG_TEXT_MAX + 1] = '\0';
  g.spec.chat_template = huge;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &big, rc, err, before_db, before_files);
  g.spec.chat_template = NULL;
  g.spec.system_prompt = huge;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &big, rc, err, before_db, before_files);
  g.spec.system_prompt = NULL;
  free(huge);

  static const refusal label = {"architecture with a newline", MLXR_ERR_INVALID, "printable"};
  g.spec.architecture = "llama\n";
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &label, rc, err, before_db, before_files);
  g.spec.architecture = NULL;

  static const refusal scale = {"adapter scale", MLXR_ERR_RANGE, "finite"};
  g.adapter.scale = NAN;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &scale, rc, err, before_db, before_files);
  g.adapter.scale = -INFINITY;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &scale, rc, err, before_db, before_files);
  g.adapter.scale = 1.0;
  static const refusal aname = {"empty adapter name", MLXR_ERR_INVALID, "adapter name"};
  g.adapter.name[0] = '\0';
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &aname, rc, err, before_db, before_files);
  g.adapter = f.adapter;

  static const refusal noblobs = {"no blobs", MLXR_ERR_INVALID, "at least one blob"};
  g.spec.n_blobs = 0;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &noblobs, rc, err, before_db, before_files);
  g.spec.n_blobs = 3;
  static const refusal toomany = {"too many blobs", MLXR_ERR_RANGE, "too many"};
  g.spec.n_blobs = MLXR_CATALOG_MAX_REFS + 1;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &toomany, rc, err, before_db, before_files);
  g.spec.n_blobs = 3;
  static const refusal format = {"unknown format", MLXR_ERR_INVALID, "format"};
  g.spec.format = (mlxr_model_format)7;
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &format, rc, err, before_db, before_files);
  g.spec.format = MLXR_MODEL_FORMAT_GGUF;

  /* names that differ only in case are the same model */
  static const refusal casing = {"case collision", MLXR_ERR_INVALID, "already exists"};
  g.spec.name = "TINY";
  rc = mlxr_catalog_add(e.cat, &g.spec, err, sizeof err);
  expect_refused(&e, &casing, rc, err, before_db, before_files);
  rc = mlxr_catalog_copy(e.cat, "tiny", "Tiny:latest", 0, err, sizeof err);
  expect_refused(&e, &casing, rc, err, before_db, before_files);

  /* unknown models */
  static const refusal unknown = {"unknown model", MLXR_ERR_NOT_FOUND, "not found"};
  rc = mlxr_catalog_delete(e.cat, "ghost", NULL, err, sizeof err);
  expect_refused(&e, &unknown, rc, err, before_db, before_files);
  rc = mlxr_catalog_touch(e.cat, "ghost", 5, err, sizeof err);
  expect_refused(&e, &unknown, rc, err, before_db, before_files);
  rc = mlxr_catalog_copy(e.cat, "ghost", "ghost2", 0, err, sizeof err);
  expect_refused(&e, &unknown, rc, err, before_db, before_files);
  rc = mlxr_catalog_cache_put(e.cat, "ghost", &ce, err, sizeof err);
  expect_refused(&e, &unknown, rc, err, before_db, before_files);

  /* cache entries */
  static const refusal tokens = {"n_tokens 0", MLXR_ERR_RANGE, "n_tokens"};
  mlxr_cache_entry bad = ce;
  bad.n_tokens = 0;
  rc = mlxr_catalog_cache_put(e.cat, "tiny", &bad, err, sizeof err);
  expect_refused(&e, &tokens, rc, err, before_db, before_files);
  bad.n_tokens = -5;
  rc = mlxr_catalog_cache_put(e.cat, "tiny", &bad, err, sizeof err);
  expect_refused(&e, &tokens, rc, err, before_db, before_files);
  static const refusal nocache = {"cache blob missing", MLXR_ERR_NOT_FOUND, "not found"};
  bad = ce;
  snprintf(bad.digest, sizeof bad.digest, "sha256:%064d", 2);
  rc = mlxr_catalog_cache_put(e.cat, "tiny", &bad, err, sizeof err);
  expect_refused(&e, &nocache, rc, err, before_db, before_files);

  CHECK(mlxr_catalog_gc(e.cat, -1, NULL, err, sizeof err) == MLXR_ERR_RANGE, "gc with a negative age");
  free(before_db);
  free(before_files);
  env_close(&e);
}

/* ---- replace, copy, delete, touch ---- */

static void add_simple(env *e, const char *name, const mlxr_blob_ref *blobs, size_t n) {
  mlxr_model_spec sp = {.name = name, .format = MLXR_MODEL_FORMAT_GGUF, .blobs = blobs, .n_blobs = n};
  char err[512] = "";
  CHECK(mlxr_catalog_add(e->cat, &sp, err, sizeof err) == MLXR_OK, "add %s: %s", name, err);
}

static void test_copy_delete(env *base) {
  env e = *base;
  if (!env_open(&e, "copydel", NULL, NULL)) return;
  char err[512] = "";
  model_fixture f;
  make_tiny(&e, &f, 40);
  CHECK(mlxr_catalog_add(e.cat, &f.spec, err, sizeof err) == MLXR_OK, "add: %s", err);
  CHECK(mlxr_catalog_copy(e.cat, "tiny", "me/tiny2:v1", 1800000000000, err, sizeof err) == MLXR_OK, "copy: %s", err);
  CHECK(mlxr_catalog_copy(e.cat, "tiny", "tiny", 0, err, sizeof err) == MLXR_OK, "copy onto itself: %s", err);
  mlxr_model_info m;
  CHECK(mlxr_catalog_get(e.cat, "me/tiny2:v1", &m, err, sizeof err) == MLXR_OK, "get copy: %s", err);
  if (m.name) {
    CHECK(m.n_blobs == 3 && strcmp(m.blobs[0].digest, f.blobs[0].digest) == 0 && m.n_adapters == 1 &&
              strcmp(m.system_prompt, "You are tiny.") == 0 && m.created_ms == 1800000000000,
          "the copy has the same blobs, adapter and fields");
  }
  mlxr_model_info_clear(&m);

  mlxr_gc_report rep;
  CHECK(mlxr_catalog_delete(e.cat, "tiny", &rep, err, sizeof err) == MLXR_OK, "delete: %s", err);
  CHECK(rep.n_removed == 0, "the copy still references every blob (removed %lld)", (long long)rep.n_removed);
  CHECK(file_of(&e, f.blobs[0].digest) && file_of(&e, f.adapter.digest), "blobs kept for the copy");
  CHECK(mlxr_catalog_get(e.cat, "tiny", &m, err, sizeof err) == MLXR_ERR_NOT_FOUND, "deleted");
  CHECK(mlxr_catalog_check(e.cat, true, NULL, err, sizeof err) == MLXR_OK, "check: %s", err);
  CHECK(mlxr_catalog_delete(e.cat, "ME/TINY2:V1", &rep, err, sizeof err) == MLXR_OK, "delete copy: %s", err);
  CHECK(rep.n_removed == 4 && rep.bytes_removed == 100000 + 300 + 64 + 5000, "freed %lld blobs, %lld bytes",
        (long long)rep.n_removed, (long long)rep.bytes_removed);
  CHECK(!file_of(&e, f.blobs[0].digest) && !file_of(&e, f.blobs[1].digest) && !file_of(&e, f.blobs[2].digest) &&
            !file_of(&e, f.adapter.digest),
        "every blob removed");
  CHECK(reg_count_entries(e.blobs, NULL) == 0, "store empty");

  /* replace: the blob only the old version used goes, the shared one stays */
  mlxr_blob_ref x, y, s, other[2];
  put_blob(&e, 50, 1000, MT_MODEL, &x);
  put_blob(&e, 51, 1000, MT_MODEL, &y);
  put_blob(&e, 52, 100, MT_PARAMS, &s);
  other[0] = x;
  other[1] = s;
  add_simple(&e, "r", other, 2);
  add_simple(&e, "keep", &s, 1);
  other[0] = y;
  add_simple(&e, "r", other, 2);
  CHECK(!file_of(&e, x.digest) && file_of(&e, y.digest) && file_of(&e, s.digest), "replace frees only X");
  CHECK(mlxr_catalog_get(e.cat, "r", &m, err, sizeof err) == MLXR_OK && m.n_blobs == 2 &&
            strcmp(m.blobs[0].digest, y.digest) == 0,
        "replaced");
  mlxr_model_info_clear(&m);

  /* copy onto an existing destination replaces it and frees its own blobs */
  mlxr_blob_ref a1, b1;
  put_blob(&e, 60, 2000, MT_MODEL, &a1);
  put_blob(&e, 61, 2000, MT_MODEL, &b1);
  add_simple(&e, "a", &a1, 1);
  add_simple(&e, "b", &b1, 1);
  CHECK(mlxr_catalog_copy(e.cat, "a", "b", 0, err, sizeof err) == MLXR_OK, "copy a->b: %s", err);
  CHECK(!file_of(&e, b1.digest) && file_of(&e, a1.digest), "b's old blob freed");
  CHECK(mlxr_catalog_get(e.cat, "b", &m, err, sizeof err) == MLXR_OK && strcmp(m.blobs[0].digest, a1.digest) == 0,
        "b now has a's blob");
  mlxr_model_info_clear(&m);
  /* copy refuses a source whose blob vanished from the store */
  char path[4400];
  snprintf(path, sizeof path, "%s/sha256-%s", e.blobs, a1.digest + 7);
  unlink(path);
  int rc = mlxr_catalog_copy(e.cat, "a", "c", 0, err, sizeof err);
  CHECK(rc == MLXR_ERR_NOT_FOUND && strstr(err, "not in the store"), "copy of a broken model: rc %d \"%s\"", rc, err);
  CHECK(mlxr_catalog_get(e.cat, "c", &m, err, sizeof err) == MLXR_ERR_NOT_FOUND, "no row for the refused copy");

  /* touch */
  CHECK(mlxr_catalog_touch(e.cat, "R:latest", 1234567, err, sizeof err) == MLXR_OK, "touch: %s", err);
  CHECK(mlxr_catalog_get(e.cat, "r", &m, err, sizeof err) == MLXR_OK && m.last_used_ms == 1234567, "last used %lld",
        (long long)m.last_used_ms);
  mlxr_model_info_clear(&m);
  CHECK(mlxr_catalog_touch(e.cat, "r", 0, err, sizeof err) == MLXR_OK, "touch now");
  CHECK(mlxr_catalog_get(e.cat, "r", &m, err, sizeof err) == MLXR_OK && m.last_used_ms > 1600000000000,
        "touch(0) uses the clock: %lld", (long long)m.last_used_ms);
  mlxr_model_info_clear(&m);
  env_close(&e);
}

/* ---- integrity check and gc ---- */

static void test_check_gc(env *base) {
  env e = *base;
  if (!env_open(&e, "check", NULL, NULL)) return;
  char err[512] = "";
  model_fixture f;
  make_tiny(&e, &f, 70);
  CHECK(mlxr_catalog_add(e.cat, &f.spec, err, sizeof err) == MLXR_OK, "add: %s", err);
  mlxr_integrity_report rep;
  CHECK(mlxr_catalog_check(e.cat, true, &rep, err, sizeof err) == MLXR_OK, "check: %s", err);
  CHECK(rep.sqlite_ok && rep.n_models == 1 && rep.n_blobs == 4 && rep.n_missing == 0, "report %lld %lld",
        (long long)rep.n_models, (long long)rep.n_blobs);

  char path[4400];
  snprintf(path, sizeof path, "%s/sha256-%s", e.blobs, f.blobs[1].digest + 7);
  unsigned char tbuf[300];
  reg_fill(tbuf, sizeof tbuf, 71); /* the template blob's bytes (make_tiny: seed + 1) */
  /* missing */
  unlink(path);
  int rc = mlxr_catalog_check(e.cat, false, &rep, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && rep.n_missing == 1 && strstr(err, "missing"), "missing: rc %d \"%s\"", rc, err);
  /* wrong size */
  reg_write_file(path, tbuf, 299);
  rc = mlxr_catalog_check(e.cat, false, &rep, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && rep.n_bad_size == 1 && rep.n_missing == 0, "size: rc %d \"%s\"", rc, err);
  /* right size, wrong bytes: only the deep check sees it */
  tbuf[7] ^= 1;
  reg_write_file(path, tbuf, 300);
  rc = mlxr_catalog_check(e.cat, false, &rep, err, sizeof err);
  CHECK(rc == MLXR_OK, "shallow check does not read bytes: rc %d", rc);
  rc = mlxr_catalog_check(e.cat, true, &rep, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && rep.n_bad_hash == 1 && strstr(err, "corrupt"), "deep: rc %d \"%s\"", rc, err);
  tbuf[7] ^= 1;
  reg_write_file(path, tbuf, 300);
  CHECK(mlxr_catalog_check(e.cat, true, &rep, err, sizeof err) == MLXR_OK, "restored: %s", err);

  /* gc: unreferenced blobs go (young ones only with min_age 0), referenced stay */
  mlxr_blob_ref u;
  put_blob(&e, 80, 4321, MT_MODEL, &u);
  mlxr_gc_report g;
  CHECK(mlxr_catalog_gc(e.cat, 3600, &g, err, sizeof err) == MLXR_OK, "gc: %s", err);
  CHECK(g.n_removed == 0 && g.n_kept_young == 1 && file_of(&e, u.digest), "gc(1h) keeps a young blob");
  CHECK(mlxr_catalog_gc(e.cat, 0, &g, err, sizeof err) == MLXR_OK, "gc: %s", err);
  CHECK(g.n_removed == 1 && g.bytes_removed == 4321 && !file_of(&e, u.digest), "gc(0) removes it: %lld",
        (long long)g.n_removed);
  CHECK(file_of(&e, f.blobs[0].digest) && file_of(&e, f.blobs[1].digest) && file_of(&e, f.blobs[2].digest) &&
            file_of(&e, f.adapter.digest),
        "gc keeps referenced blobs (the adapter too)");
  CHECK(mlxr_catalog_check(e.cat, true, NULL, err, sizeof err) == MLXR_OK, "check after gc: %s", err);
  env_close(&e);
}

/* ---- KV-cache index ---- */

static void test_cache_entries(env *base) {
  env e = *base;
  if (!env_open(&e, "cache", NULL, NULL)) return;
  char err[512] = "";
  mlxr_blob_ref w, k1, k2, prefix;
  put_blob(&e, 90, 1000, MT_MODEL, &w);
  put_blob(&e, 91, 2048, "application/x-mlxr-kv", &k1);
  put_blob(&e, 92, 4096, "application/x-mlxr-kv", &k2);
  memset(&prefix, 0, sizeof prefix);
  snprintf(prefix.digest, sizeof prefix.digest, "sha256-%064x", 0xabc); /* a prefix hash, not a blob */
  add_simple(&e, "kvm", &w, 1);
  mlxr_cache_entry ce = {.n_tokens = 32, .created_ms = 1000};
  snprintf(ce.prefix_hash, sizeof ce.prefix_hash, "%s", prefix.digest);
  snprintf(ce.digest, sizeof ce.digest, "%s", k1.digest);
  CHECK(mlxr_catalog_cache_put(e.cat, "kvm", &ce, err, sizeof err) == MLXR_OK, "put: %s", err);
  mlxr_cache_entry got;
  CHECK(mlxr_catalog_cache_get(e.cat, "kvm", prefix.digest, 5000, &got, err, sizeof err) == MLXR_OK, "get: %s", err);
  CHECK(strcmp(got.digest, k1.digest) == 0 && got.n_tokens == 32 && got.created_ms == 1000 &&
            got.last_used_ms == 5000 && got.prefix_hash[6] == ':',
        "entry fields");
  mlxr_gc_report g;
  CHECK(mlxr_catalog_gc(e.cat, 0, &g, err, sizeof err) == MLXR_OK && g.n_removed == 1 && !file_of(&e, k2.digest),
        "gc keeps the cache entry's blob, removes the unused one");
  put_blob(&e, 92, 4096, "application/x-mlxr-kv", &k2);
  snprintf(ce.digest, sizeof ce.digest, "%s", k2.digest);
  CHECK(mlxr_catalog_cache_put(e.cat, "kvm", &ce, err, sizeof err) == MLXR_OK, "replace: %s", err);
  CHECK(!file_of(&e, k1.digest) && file_of(&e, k2.digest), "replacing an entry frees its old blob");
  char other[80];
  snprintf(other, sizeof other, "sha256:%064x", 0xdef);
  CHECK(mlxr_catalog_cache_get(e.cat, "kvm", other, 0, &got, err, sizeof err) == MLXR_ERR_NOT_FOUND, "unknown prefix");
  mlxr_integrity_report rep;
  CHECK(mlxr_catalog_check(e.cat, true, &rep, err, sizeof err) == MLXR_OK && rep.n_blobs == 2, "check: %s", err);
  mlxr_gc_report freed;
  CHECK(mlxr_catalog_delete(e.cat, "kvm", &freed, err, sizeof err) == MLXR_OK && freed.n_removed == 2,
        "delete frees weights and KV blob: %lld", (long long)freed.n_removed);
  CHECK(reg_count_entries(e.blobs, NULL) == 0, "store empty");
  char *dump = dump_db(e.db);
  CHECK(strstr(dump, "C|") == NULL, "cache entries cascaded: %s", dump);
  free(dump);
  env_close(&e);
}

/* ---- crash safety ---- */

typedef struct kill_plan {
  const char *point;
  int at;
  int seen;
} kill_plan;

static void kill_hook(void *ctx, const char *point) {
  kill_plan *k = ctx;
  if (k->point && strcmp(point, k->point) == 0 && ++k->seen == k->at) raise(SIGKILL);
}

#define CRASH_BLOB 65536

/* The child: iteration i stores A_i and the shared S, adds m<i> = [A_i, S], deletes m<i-1>
 * (copy_mode: adds m0, then copies it to c0). Forever, or until killed. */
static void crash_child(env *e, kill_plan *k, bool copy_mode) {
  mlxr_store_params sp = mlxr_store_default_params();
  sp.hook = kill_hook;
  sp.hook_ctx = k;
  mlxr_catalog_params cp = mlxr_catalog_default_params();
  cp.hook = kill_hook;
  cp.hook_ctx = k;
  mlxr_store *st = NULL;
  mlxr_catalog *cat = NULL;
  char err[512];
  if (mlxr_store_open(e->root, &sp, &st, err, sizeof err) != MLXR_OK) _exit(2);
  if (mlxr_catalog_open(e->db, st, &cp, &cat, err, sizeof err) != MLXR_OK) _exit(3);
  unsigned char *buf = malloc(CRASH_BLOB);
  for (int i = 0;; i++) {
    mlxr_blob_ref refs[2];
    memset(refs, 0, sizeof refs);
    mlxr_digest d;
    reg_fill(buf, CRASH_BLOB, 1000 + (uint64_t)i);
    if (mlxr_store_put_buffer(st, buf, CRASH_BLOB, NULL, &d, err, sizeof err) != MLXR_OK) _exit(4);
    mlxr_digest_str(&d, refs[0].digest);
    snprintf(refs[0].media_type, sizeof refs[0].media_type, MT_MODEL);
    if (mlxr_store_put_buffer(st, "shared parameters", 17, NULL, &d, err, sizeof err) != MLXR_OK) _exit(5);
    mlxr_digest_str(&d, refs[1].digest);
    snprintf(refs[1].media_type, sizeof refs[1].media_type, MT_PARAMS);
    char name[32], prev[32];
    snprintf(name, sizeof name, "m%d", i);
    mlxr_model_spec spec = {.name = name, .format = MLXR_MODEL_FORMAT_GGUF, .blobs = refs, .n_blobs = 2};
    if (mlxr_catalog_add(cat, &spec, err, sizeof err) != MLXR_OK) _exit(6);
    if (copy_mode) {
      if (mlxr_catalog_copy(cat, "m0", "c0", 0, err, sizeof err) != MLXR_OK) _exit(7);
      _exit(0);
    }
    if (i > 0) {
      snprintf(prev, sizeof prev, "m%d", i - 1);
      if (mlxr_catalog_delete(cat, prev, NULL, err, sizeof err) != MLXR_OK) _exit(8);
    }
  }
}

/* The models present after a kill: j for each m<j>, C0 for c0. */
#define C0 (-2)
typedef struct presence {
  int idx[8];
  int n;
} presence;

static bool has_model(const presence *p, int j) {
  for (int i = 0; i < p->n; i++) {
    if (p->idx[i] == j) return true;
  }
  return false;
}

/* Bit j for each m<j> present (j < 30), bit 30 for c0. */
static unsigned presence_mask(const presence *p) {
  unsigned m = 0;
  for (int i = 0; i < p->n; i++) m |= p->idx[i] == C0 ? 1u << 30 : p->idx[i] < 30 ? 1u << p->idx[i] : 1u << 31;
  return m;
}

/* The invariants after any kill, checked through a separate connection, stat and sha256sum; the
 * models found go to *pr. Returns the number of rows read. */
static int check_after_kill(env *e, const char *when, const char a_hex[][65], int n_a, presence *pr) {
  memset(pr, 0, sizeof *pr);
  int n_checked = 0;
  CHECK(reg_check_final_names(e->blobs, &n_checked) == 0, "%s: a file under a final name does not hash to it", when);
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(e->db, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) { /* RW: may replay the WAL */
    CHECK(false, "%s: cannot open the database", when);
    sqlite3_close(db);
    return 0;
  }
  sqlite3_stmt *st;
  const char *ic = "";
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) ic = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0 ? "ok" : "bad";
    sqlite3_finalize(st);
  }
  CHECK(strcmp(ic, "ok") == 0, "%s: integrity_check not ok", when);
  int rows = 0;
  if (sqlite3_prepare_v2(db,
                         "SELECT m.name, b.position, b.digest, b.size, "
                         "(SELECT count(*) FROM model_blobs WHERE model_id = m.id) "
                         "FROM models m LEFT JOIN model_blobs b ON b.model_id = m.id ORDER BY m.id, b.position",
                         -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      rows++;
      const char *name = (const char *)sqlite3_column_text(st, 0);
      const char *digest = (const char *)sqlite3_column_text(st, 2);
      const int pos = sqlite3_column_int(st, 1);
      const int64_t size = sqlite3_column_int64(st, 3);
      CHECK(sqlite3_column_int(st, 4) == 2, "%s: %s has %d blob rows, want 2 (a half-added model)", when, name,
            sqlite3_column_int(st, 4));
      int j = -1;
      if (strncmp(name, "registry.ollama.ai/library/m", 28) == 0) j = (int)strtol(name + 28, NULL, 10);
      if (strncmp(name, "registry.ollama.ai/library/c0:", 30) == 0) j = C0;
      CHECK(j >= 0 || j == C0, "%s: unexpected model %s", when, name);
      if (pos == 0 && pr->n < 8) pr->idx[pr->n++] = j;
      if (!digest) continue;
      char path[4400];
      snprintf(path, sizeof path, "%s/sha256-%s", e->blobs, digest + 7);
      struct stat sb;
      CHECK(stat(path, &sb) == 0 && sb.st_size == size, "%s: %s's blob %s missing or of the wrong size", when, name,
            digest);
      const int ai = j == C0 ? 0 : j;
      if (pos == 0 && ai >= 0 && ai < n_a) {
        CHECK(strcmp(digest + 7, a_hex[ai]) == 0, "%s: %s names the wrong weights", when, name);
      }
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return rows;
}

static void test_crash_points(env *base, const char a_hex[][65], int n_a) {
  static const struct {
    const char *point;
    int at;
    bool copy_mode;
    unsigned present; /* bit j: m<j> present after the kill (bit 30: c0) */
    int gc_removed;   /* blobs the interrupted operation left unreferenced */
  } cases[] = {
      {"store.temp_written", 3, false, 1u << 0, 0},            /* writing A_1 */
      {"store.fsynced", 3, false, 1u << 0, 0},                 /* A_1 fsync'ed, not renamed */
      {"store.renamed", 3, false, 1u << 0, 1},                 /* A_1 stored, not registered */
      {"store.renamed", 4, false, 1u << 0, 1},                 /* S stored again in iteration 1 */
      {"catalog.add.in_txn", 1, false, 0, 2},                  /* m0's rows not committed */
      {"catalog.add.in_txn", 2, false, 1u << 0, 1},            /* m1's rows not committed */
      {"catalog.delete.in_txn", 1, false, 3u, 0},              /* m0's delete not committed */
      {"catalog.delete.rows_deleted", 1, false, 1u << 1, 1},   /* m0 gone, A_0 not removed yet */
      {"catalog.delete.rows_deleted", 2, false, 1u << 2, 1},   /* m1 gone, A_1 not removed yet */
      {"catalog.copy.in_txn", 1, true, 1u << 0, 0},            /* c0 not committed */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    env e = *base;
    char sub[64];
    snprintf(sub, sizeof sub, "crash%zu", c);
    if (!env_open(&e, sub, NULL, NULL)) continue;
    env_close(&e);
    kill_plan k = {cases[c].point, cases[c].at, 0};
    pid_t pid = fork();
    if (pid == 0) crash_child(&e, &k, cases[c].copy_mode);
    int status = 0;
    waitpid(pid, &status, 0);
    char when[96];
    snprintf(when, sizeof when, "kill at %s#%d", cases[c].point, cases[c].at);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s: the child was not killed there (status %d)", when,
          status);
    presence pr;
    check_after_kill(&e, when, a_hex, n_a, &pr);
    const unsigned present = presence_mask(&pr);
    CHECK(present == cases[c].present, "%s: models present 0x%x, want 0x%x", when, present, cases[c].present);

    /* reopen: the catalog's own check agrees, gc removes exactly the orphans, sweep the temps */
    if (!env_open(&e, sub, NULL, NULL)) continue;
    char err[512] = "";
    CHECK(mlxr_catalog_check(e.cat, true, NULL, err, sizeof err) == MLXR_OK, "%s: check: %s", when, err);
    mlxr_gc_report g;
    CHECK(mlxr_catalog_gc(e.cat, 0, &g, err, sizeof err) == MLXR_OK, "%s: gc: %s", when, err);
    CHECK(g.n_removed == cases[c].gc_removed, "%s: gc removed %lld, want %d", when, (long long)g.n_removed,
          cases[c].gc_removed);
    CHECK(mlxr_store_sweep(e.st, 0, NULL, NULL, NULL, err, sizeof err) == MLXR_OK, "%s: sweep: %s", when, err);
    mlxr_integrity_report rep;
    CHECK(mlxr_catalog_check(e.cat, true, &rep, err, sizeof err) == MLXR_OK, "%s: check after gc: %s", when, err);
    CHECK(reg_count_entries(e.blobs, NULL) == (int)rep.n_blobs, "%s: the store holds %d files, %lld referenced", when,
          reg_count_entries(e.blobs, NULL), (long long)rep.n_blobs);
    env_close(&e);
  }
}

static void test_crash_delays(env *base, const char a_hex[][65], int n_a) {
  static const int delays_us[] = {3000, 9000, 20000, 45000, 90000, 150000};
  for (size_t c = 0; c < sizeof delays_us / sizeof delays_us[0]; c++) {
    env e = *base;
    char sub[64];
    snprintf(sub, sizeof sub, "delay%zu", c);
    if (!env_open(&e, sub, NULL, NULL)) continue;
    env_close(&e);
    kill_plan k = {NULL, 0, 0};
    pid_t pid = fork();
    if (pid == 0) crash_child(&e, &k, false);
    usleep((useconds_t)delays_us[c]);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    char when[64];
    snprintf(when, sizeof when, "kill after %d us", delays_us[c]);
    presence pr;
    check_after_kill(&e, when, a_hex, n_a, &pr);
    /* at most two consecutive models: m<k-1> (its delete pending) and m<k> */
    int hi = -1;
    for (int i = 0; i < pr.n; i++) hi = pr.idx[i] > hi ? pr.idx[i] : hi;
    CHECK(pr.n <= 2 && (pr.n < 2 || has_model(&pr, hi - 1)), "%s: %d models present, the newest m%d", when, pr.n, hi);
    if (!env_open(&e, sub, NULL, NULL)) continue;
    char err[512] = "";
    CHECK(mlxr_catalog_check(e.cat, true, NULL, err, sizeof err) == MLXR_OK, "%s: check: %s", when, err);
    mlxr_gc_report g;
    CHECK(mlxr_catalog_gc(e.cat, 0, &g, err, sizeof err) == MLXR_OK && g.n_removed <= 2, "%s: gc removed %lld", when,
          (long long)g.n_removed);
    CHECK(mlxr_store_sweep(e.st, 0, NULL, NULL, NULL, err, sizeof err) == MLXR_OK, "%s: sweep: %s", when, err);
    mlxr_integrity_report rep;
    CHECK(mlxr_catalog_check(e.cat, true, &rep, err, sizeof err) == MLXR_OK &&
              reg_count_entries(e.blobs, NULL) == (int)rep.n_blobs,
          "%s: store and catalog agree after gc", when);
    env_close(&e);
  }
}

int main(void) {
  env e;
  memset(&e, 0, sizeof e);
  if (!reg_mkdtemp("catalog", e.tmp, sizeof e.tmp)) {
    fprintf(stderr, "mkdtemp failed\n");
    return 1;
  }
  test_schema(&e);
  test_add_get(&e);
  test_refusals(&e);
  test_copy_delete(&e);
  test_check_gc(&e);
  test_cache_entries(&e);

  /* The crash children's weights A_i, hashed by sha256sum for the checks. */
  enum { N_A = 40 };
  char a_hex[N_A][65];
  unsigned char *buf = malloc(CRASH_BLOB);
  char path[4400];
  snprintf(path, sizeof path, "%s/a.bin", e.tmp);
  for (int i = 0; i < N_A; i++) {
    reg_fill(buf, CRASH_BLOB, 1000 + (uint64_t)i);
    reg_write_file(path, buf, CRASH_BLOB);
    a_hex[i][0] = '\0';
    CHECK(reg_sha256sum(path, a_hex[i]), "sha256sum");
  }
  free(buf);
  test_crash_points(&e, (const char(*)[65])a_hex, N_A);
  test_crash_delays(&e, (const char(*)[65])a_hex, N_A);
  reg_rmtree(e.tmp);
  return check_report("test_registry_catalog");
}
