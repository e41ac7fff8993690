/*
 * catalog.c: the catalog's connection setup and its model operations: add, get, list, copy,
 * delete, touch (the tables, the crash-safety ordering and the thread rules are in catalog.h).
 *
 * How it works: every input is validated before the database is touched (names to canonical form,
 * digests, media types, text sizes, the parameters JSON), so a refused call changes nothing. Each
 * change is one BEGIN IMMEDIATE transaction; inside it add and copy check that every blob they
 * will reference is in the store. Replacing or deleting a model collects the digests its rows
 * referenced before removing them, and after the commit hands them to cat_remove_unreferenced
 * (catalog_maint.c), which removes the ones nothing references any more.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"
#include "daemon/registry/catalog_impl.h"

/* ---- shared helpers (catalog_impl.h) ---- */

void cat_digests_free(cat_digests *ds) {
  free(ds->d);
  ds->d = NULL;
  ds->n = ds->cap = 0;
}

int cat_digests_add(cat_digests *ds, const char *digest, char *err, size_t err_len) {
  mlxr_digest d;
  if (mlxr_digest_parse(digest, &d, err, err_len) < 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "the catalog holds a malformed digest");
  }
  for (size_t i = 0; i < ds->n; i++) {
    if (mlxr_digest_equal(&ds->d[i], &d)) return MLXR_OK;
  }
  if (ds->n == ds->cap) {
    size_t nc = ds->cap ? ds->cap * 2 : 8;
    mlxr_digest *nd = realloc(ds->d, nc * sizeof *nd);
    if (!nd) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
    ds->d = nd;
    ds->cap = nc;
  }
  ds->d[ds->n++] = d;
  return MLXR_OK;
}

int cat_sql_err(mlxr_catalog *cat, int sqlite_rc, const char *what, char *err, size_t err_len) {
  int status;
  switch (sqlite_rc & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED: status = MLXR_ERR_IO; break;
  case SQLITE_CONSTRAINT: status = MLXR_ERR_INVALID; break;
  case SQLITE_NOMEM: status = MLXR_ERR_NOMEM; break;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: status = MLXR_ERR_FORMAT; break;
  case SQLITE_FULL: status = MLXR_ERR_NO_SPACE; break;
  default: status = MLXR_ERR_IO; break;
  }
  return mlxr_errf(err, err_len, status, "catalog: %s: %s", what,
                   cat && cat->db ? sqlite3_errmsg(cat->db) : sqlite3_errstr(sqlite_rc));
}

int cat_exec(mlxr_catalog *cat, const char *sql, char *err, size_t err_len) {
  char *msg = NULL;
  int s = sqlite3_exec(cat->db, sql, NULL, NULL, &msg);
  if (s != SQLITE_OK) {
    int rc = cat_sql_err(cat, s, "exec", err, err_len);
    sqlite3_free(msg);
    return rc;
  }
  return MLXR_OK;
}

int cat_begin(mlxr_catalog *cat, char *err, size_t err_len) { return cat_exec(cat, "BEGIN IMMEDIATE", err, err_len); }
int cat_commit(mlxr_catalog *cat, char *err, size_t err_len) { return cat_exec(cat, "COMMIT", err, err_len); }
void cat_rollback(mlxr_catalog *cat) {
  if (!sqlite3_get_autocommit(cat->db)) sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
}

int cat_prepare(mlxr_catalog *cat, const char *sql, sqlite3_stmt **st, char *err, size_t err_len) {
  int s = sqlite3_prepare_v2(cat->db, sql, -1, st, NULL);
  if (s != SQLITE_OK) {
    *st = NULL;
    return cat_sql_err(cat, s, "prepare", err, err_len);
  }
  return MLXR_OK;
}

void cat_hook(const mlxr_catalog *cat, const char *point) {
  if (cat->p.hook) cat->p.hook(cat->p.hook_ctx, point);
}

int64_t cat_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cat_canonical(const mlxr_catalog *cat, const char *name, char *buf, char *err, size_t err_len) {
  return mlxr_name_canonical(name, &cat->p.name_defaults, buf, MLXR_NAME_MAX + 1, err, err_len);
}

int cat_find_model(mlxr_catalog *cat, const char *canonical, int64_t *id, char *found_name, char *err,
                   size_t err_len) {
  sqlite3_stmt *st;
  int rc = cat_prepare(cat, "SELECT id, name FROM models WHERE name = ?1", &st, err, err_len);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, canonical, -1, SQLITE_STATIC);
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) {
    *id = sqlite3_column_int64(st, 0);
    if (found_name) snprintf(found_name, MLXR_NAME_MAX + 1, "%s", (const char *)sqlite3_column_text(st, 1));
    rc = MLXR_OK;
  } else if (s == SQLITE_DONE) {
    char q[256];
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "model \"%s\" not found",
                   mlxr_registry_quote(canonical, q, sizeof q));
  } else {
    rc = cat_sql_err(cat, s, "find model", err, err_len);
  }
  sqlite3_finalize(st);
  return rc;
}

int cat_model_digests(mlxr_catalog *cat, int64_t model_id, cat_digests *ds, char *err, size_t err_len) {
  sqlite3_stmt *st;
  int rc = cat_prepare(cat,
                       "SELECT digest FROM model_blobs WHERE model_id = ?1 UNION "
                       "SELECT digest FROM adapters WHERE model_id = ?1 UNION "
                       "SELECT digest FROM cache_entries WHERE model_id = ?1",
                       &st, err, err_len);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, model_id);
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if ((rc = cat_digests_add(ds, (const char *)sqlite3_column_text(st, 0), err, err_len)) < 0) break;
  }
  if (rc == MLXR_OK && s != SQLITE_DONE) rc = cat_sql_err(cat, s, "read a model's digests", err, err_len);
  sqlite3_finalize(st);
  return rc;
}

/* ---- open and close ---- */

mlxr_catalog_params mlxr_catalog_default_params(void) {
  return (mlxr_catalog_params){.busy_timeout_ms = 5000};
}

/* Runs a PRAGMA that returns one value and checks it (journal_mode answers with the mode set). */
static int pragma_expect(mlxr_catalog *cat, const char *sql, const char *want, char *err, size_t err_len) {
  sqlite3_stmt *st;
  int rc = cat_prepare(cat, sql, &st, err, err_len);
  if (rc < 0) return rc;
  int s = sqlite3_step(st);
  if (s != SQLITE_ROW) {
    rc = cat_sql_err(cat, s, sql, err, err_len);
  } else {
    const char *got = (const char *)sqlite3_column_text(st, 0);
    if (!got || strcasecmp(got, want) != 0) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "catalog: %s gave %s, wanted %s", sql, got ? got : "nothing",
                     want);
    }
  }
  sqlite3_finalize(st);
  return rc;
}

int mlxr_catalog_open(const char *db_path, mlxr_store *store, const mlxr_catalog_params *params,
                      mlxr_catalog **out, char *err, size_t err_len) {
  *out = NULL;
  if (!db_path || !store) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "catalog: no database path or store");
  mlxr_catalog *cat = calloc(1, sizeof *cat);
  if (!cat) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  cat->store = store;
  cat->p = params ? *params : mlxr_catalog_default_params();
  if (cat->p.busy_timeout_ms < 0) cat->p.busy_timeout_ms = 0;
  int rc;
  int s = sqlite3_open_v2(db_path, &cat->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                          NULL);
  if (s != SQLITE_OK) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "catalog: cannot open %s: %s", db_path,
                   cat->db ? sqlite3_errmsg(cat->db) : sqlite3_errstr(s));
    goto fail;
  }
  sqlite3_extended_result_codes(cat->db, 1);
  sqlite3_busy_timeout(cat->db, cat->p.busy_timeout_ms);
  if ((rc = pragma_expect(cat, "PRAGMA journal_mode = WAL", "wal", err, err_len)) < 0) goto fail;
  if ((rc = cat_exec(cat, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL", err, err_len)) < 0) goto fail;
  if ((rc = pragma_expect(cat, "PRAGMA foreign_keys", "1", err, err_len)) < 0) goto fail;
  if ((rc = cat_migrate(cat, err, err_len)) < 0) goto fail;
  *out = cat;
  return MLXR_OK;
fail:
  mlxr_catalog_close(cat);
  return rc;
}

void mlxr_catalog_close(mlxr_catalog *cat) {
  if (!cat) return;
  if (cat->db) sqlite3_close_v2(cat->db);
  free(cat);
}

int mlxr_catalog_latest_schema_version(void) { return cat_latest_version(); }

int mlxr_catalog_schema_version(mlxr_catalog *cat) {
  sqlite3_stmt *st;
  if (cat_prepare(cat, "PRAGMA user_version", &st, NULL, 0) < 0) return -1;
  int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

/* ---- formats ---- */

const char *mlxr_model_format_name(mlxr_model_format f) {
  switch (f) {
  case MLXR_MODEL_FORMAT_GGUF: return "gguf";
  case MLXR_MODEL_FORMAT_SAFETENSORS: return "safetensors";
  case MLXR_MODEL_FORMAT_MLX: return "mlx";
  default: return NULL;
  }
}

int mlxr_model_format_parse(const char *s, mlxr_model_format *out) {
  for (int f = MLXR_MODEL_FORMAT_GGUF; f <= MLXR_MODEL_FORMAT_MLX; f++) {
    if (s && strcasecmp(s, mlxr_model_format_name((mlxr_model_format)f)) == 0) {
      *out = (mlxr_model_format)f;
      return MLXR_OK;
    }
  }
  return MLXR_ERR_INVALID;
}

/* ---- validation (before any database access) ---- */

/* A short printable label: 1..max bytes of 0x20..0x7e (NULL allowed when optional). */
static int check_label(const char *what, const char *s, size_t max, bool optional, char *err, size_t err_len) {
  char q[256];
  if (!s) {
    if (optional) return MLXR_OK;
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s is missing", what);
  }
  size_t n = strnlen(s, max + 1);
  if (n == 0 || n > max) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s \"%s\" must have 1 to %zu bytes", what,
                     mlxr_registry_quote(s, q, sizeof q), max);
  }
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s \"%s\" has a byte outside printable ASCII", what,
                       mlxr_registry_quote(s, q, sizeof q));
    }
  }
  return MLXR_OK;
}

static int check_media_type(const char *mt, size_t cap, char *err, size_t err_len) {
  char q[256];
  size_t n = strnlen(mt, cap);
  if (n == 0 || n >= cap) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "a blob's media type is empty or too long");
  for (size_t i = 0; i < n; i++) {
    const char c = mt[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '+' ||
          c == '-' || c == '_' || c == '/')) {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "media type \"%s\" has a character outside [A-Za-z0-9.+_/-]",
                       mlxr_registry_quote(mt, q, sizeof q));
    }
  }
  return MLXR_OK;
}

/* A digest field of a fixed-size array: NUL-terminated inside it, then a valid digest. */
static int check_digest_field(const char *field, size_t cap, mlxr_digest *out, char *err, size_t err_len) {
  if (strnlen(field, cap) >= cap) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "invalid digest: not terminated");
  return mlxr_digest_parse(field, out, err, err_len);
}

static int check_text(const char *what, const char *s, size_t max, char *err, size_t err_len) {
  if (s && strnlen(s, max + 1) > max) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "%s is longer than %zu bytes", what, max);
  }
  return MLXR_OK;
}

static int validate_spec(const mlxr_catalog *cat, const mlxr_model_spec *sp, char *canonical, char *err,
                         size_t err_len) {
  int rc = cat_canonical(cat, sp->name, canonical, err, err_len);
  if (rc < 0) return rc;
  if (!mlxr_model_format_name(sp->format)) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "unknown model format");
  if ((rc = check_label("architecture", sp->architecture, 64, true, err, err_len)) < 0) return rc;
  if ((rc = check_label("quantization", sp->quantization, 64, true, err, err_len)) < 0) return rc;
  if (sp->parameter_count < 0 || sp->context_length < 0 || sp->context_length > ((int64_t)1 << 32)) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "parameter count and context length must be in range (got %lld, %lld)",
                     (long long)sp->parameter_count, (long long)sp->context_length);
  }
  if ((rc = check_text("chat template", sp->chat_template, MLXR_CATALOG_TEXT_MAX, err, err_len)) < 0) return rc;
  if ((rc = check_text("system prompt", sp->system_prompt, MLXR_CATALOG_TEXT_MAX, err, err_len)) < 0) return rc;
  if ((rc = check_text("parameters", sp->parameters_json, MLXR_CATALOG_PARAMS_MAX, err, err_len)) < 0) return rc;
  if (sp->parameters_json) {
    cJSON *j = cJSON_Parse(sp->parameters_json);
    const bool ok = j && cJSON_IsObject(j);
    cJSON_Delete(j);
    if (!ok) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "parameters must be a JSON object");
  }
  if (sp->n_blobs == 0 || !sp->blobs) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "a model needs at least one blob");
  if (sp->n_blobs > MLXR_CATALOG_MAX_REFS || sp->n_adapters > MLXR_CATALOG_MAX_REFS) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "too many blobs or adapters (at most %d each)",
                     MLXR_CATALOG_MAX_REFS);
  }
  if (sp->n_adapters && !sp->adapters) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "adapters missing");
  for (size_t i = 0; i < sp->n_blobs; i++) {
    mlxr_digest d;
    if ((rc = check_digest_field(sp->blobs[i].digest, sizeof sp->blobs[i].digest, &d, err, err_len)) < 0) return rc;
    if ((rc = check_media_type(sp->blobs[i].media_type, sizeof sp->blobs[i].media_type, err, err_len)) < 0) return rc;
  }
  for (size_t i = 0; i < sp->n_adapters; i++) {
    const mlxr_adapter_ref *a = &sp->adapters[i];
    mlxr_digest d;
    if ((rc = check_digest_field(a->digest, sizeof a->digest, &d, err, err_len)) < 0) return rc;
    if (strnlen(a->name, sizeof a->name) >= sizeof a->name) {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "adapter name not terminated");
    }
    if ((rc = check_label("adapter name", a->name, MLXR_ADAPTER_NAME_MAX, false, err, err_len)) < 0) return rc;
    if (!isfinite(a->scale) || fabs(a->scale) > 1e6) {
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "adapter scale must be finite and at most 1e6 in magnitude");
    }
  }
  return MLXR_OK;
}

/* The size of a blob in the store (inside a transaction): MLXR_ERR_NOT_FOUND names the blob. */
static int blob_size(mlxr_catalog *cat, const mlxr_digest *d, int64_t *size, char *err, size_t err_len) {
  char s[MLXR_DIGEST_STR_SIZE];
  mlxr_digest_str(d, s);
  mlxr_blob_stat bs;
  int rc = mlxr_store_stat(cat->store, s, &bs, err, err_len);
  if (rc == MLXR_ERR_NOT_FOUND) {
    return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "blob %s is not in the store (write it first)", s);
  }
  if (rc < 0) return rc;
  *size = bs.size;
  return MLXR_OK;
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *s) {
  if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
  else sqlite3_bind_null(st, i);
}

/* Runs a prepared insert to completion and finalizes it. */
static int step_done(mlxr_catalog *cat, sqlite3_stmt *st, const char *what, char *err, size_t err_len) {
  int s = sqlite3_step(st);
  int rc = s == SQLITE_DONE ? MLXR_OK : cat_sql_err(cat, s, what, err, err_len);
  sqlite3_finalize(st);
  return rc;
}

/* Inside a transaction: if a model is named `canonical` (ignoring case), refuse when its stored
 * name differs in case, else collect its digests into old and delete its rows. */
static int drop_same_name(mlxr_catalog *cat, const char *canonical, cat_digests *old, char *err, size_t err_len) {
  int64_t id;
  char found[MLXR_NAME_MAX + 1];
  int rc = cat_find_model(cat, canonical, &id, found, err, err_len);
  if (rc == MLXR_ERR_NOT_FOUND) return MLXR_OK;
  if (rc < 0) return rc;
  if (strcmp(found, canonical) != 0) {
    char q[256];
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "a model named \"%s\" already exists (names differing only in case are the same model)",
                     mlxr_registry_quote(found, q, sizeof q));
  }
  if ((rc = cat_model_digests(cat, id, old, err, err_len)) < 0) return rc;
  sqlite3_stmt *st;
  if ((rc = cat_prepare(cat, "DELETE FROM models WHERE id = ?1", &st, err, err_len)) < 0) return rc;
  sqlite3_bind_int64(st, 1, id);
  return step_done(cat, st, "replace model", err, err_len);
}

/* ---- add ---- */

static int insert_model(mlxr_catalog *cat, const mlxr_model_spec *sp, const char *canonical, int64_t *id, char *err,
                        size_t err_len) {
  sqlite3_stmt *st;
  int rc = cat_prepare(cat,
                       "INSERT INTO models(name, format, architecture, parameter_count, quantization, context_length, "
                       "chat_template, parameters, system_prompt, created_ms, last_used_ms) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL)",
                       &st, err, err_len);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, canonical, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, mlxr_model_format_name(sp->format), -1, SQLITE_STATIC);
  bind_opt_text(st, 3, sp->architecture);
  sqlite3_bind_int64(st, 4, sp->parameter_count);
  bind_opt_text(st, 5, sp->quantization);
  sqlite3_bind_int64(st, 6, sp->context_length);
  bind_opt_text(st, 7, sp->chat_template);
  bind_opt_text(st, 8, sp->parameters_json);
  bind_opt_text(st, 9, sp->system_prompt);
  sqlite3_bind_int64(st, 10, sp->now_ms ? sp->now_ms : cat_now_ms());
  if ((rc = step_done(cat, st, "insert model", err, err_len)) < 0) return rc;
  *id = sqlite3_last_insert_rowid(cat->db);
  return MLXR_OK;
}

/* A referenced blob's digest in the catalog's form ("sha256:<hex>", validated before) and its size
 * in the store. */
static int ref_digest_size(mlxr_catalog *cat, const char *digest, char ds[MLXR_DIGEST_STR_SIZE], int64_t *size,
                           char *err, size_t err_len) {
  mlxr_digest d;
  mlxr_digest_parse(digest, &d, NULL, 0);
  mlxr_digest_str(&d, ds);
  return blob_size(cat, &d, size, err, err_len);
}

static int insert_refs(mlxr_catalog *cat, const mlxr_model_spec *sp, int64_t id, char *err, size_t err_len) {
  int rc;
  for (size_t i = 0; i < sp->n_blobs; i++) {
    char ds[MLXR_DIGEST_STR_SIZE];
    int64_t size;
    if ((rc = ref_digest_size(cat, sp->blobs[i].digest, ds, &size, err, err_len)) < 0) return rc;
    sqlite3_stmt *st;
    if ((rc = cat_prepare(cat,
                          "INSERT INTO model_blobs(model_id, position, digest, media_type, size) "
                          "VALUES (?1, ?2, ?3, ?4, ?5)",
                          &st, err, err_len)) < 0) {
      return rc;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)i);
    sqlite3_bind_text(st, 3, ds, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, sp->blobs[i].media_type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, size);
    if ((rc = step_done(cat, st, "insert blob", err, err_len)) < 0) return rc;
  }
  for (size_t i = 0; i < sp->n_adapters; i++) {
    char ds[MLXR_DIGEST_STR_SIZE];
    int64_t size;
    if ((rc = ref_digest_size(cat, sp->adapters[i].digest, ds, &size, err, err_len)) < 0) return rc;
    sqlite3_stmt *st;
    if ((rc = cat_prepare(cat,
                          "INSERT INTO adapters(model_id, position, name, digest, scale, size) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                          &st, err, err_len)) < 0) {
      return rc;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, (int64_t)i);
    sqlite3_bind_text(st, 3, sp->adapters[i].name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, ds, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 5, sp->adapters[i].scale);
    sqlite3_bind_int64(st, 6, size);
    if ((rc = step_done(cat, st, "insert adapter", err, err_len)) < 0) return rc;
  }
  return MLXR_OK;
}

int mlxr_catalog_add(mlxr_catalog *cat, const mlxr_model_spec *spec, char *err, size_t err_len) {
  char canonical[MLXR_NAME_MAX + 1];
  int rc = validate_spec(cat, spec, canonical, err, err_len);
  if (rc < 0) return rc;
  cat_digests old = {0};
  if ((rc = cat_begin(cat, err, err_len)) < 0) return rc;
  int64_t id;
  if ((rc = drop_same_name(cat, canonical, &old, err, err_len)) < 0) goto fail;
  if ((rc = insert_model(cat, spec, canonical, &id, err, err_len)) < 0) goto fail;
  if ((rc = insert_refs(cat, spec, id, err, err_len)) < 0) goto fail;
  cat_hook(cat, "catalog.add.in_txn");
  if ((rc = cat_commit(cat, err, err_len)) < 0) goto fail;
  if (old.n) cat_remove_unreferenced(cat, &old, NULL, NULL, 0); /* leftovers are gc's */
  cat_digests_free(&old);
  return MLXR_OK;
fail:
  cat_rollback(cat);
  cat_digests_free(&old);
  return rc;
}

/* ---- get and list ---- */

void mlxr_model_info_clear(mlxr_model_info *m) {
  if (!m) return;
  free(m->name);
  free(m->architecture);
  free(m->quantization);
  free(m->chat_template);
  free(m->parameters_json);
  free(m->system_prompt);
  free(m->blobs);
  free(m->adapters);
  memset(m, 0, sizeof *m);
}

void mlxr_model_list_free(mlxr_model_info *items, size_t n) {
  for (size_t i = 0; i < n; i++) mlxr_model_info_clear(&items[i]);
  free(items);
}

#define MODEL_COLUMNS                                                                                       \
  "id, name, format, architecture, parameter_count, quantization, context_length, chat_template, parameters, " \
  "system_prompt, created_ms, last_used_ms"

/* A copy of a text column, NULL for NULL. *ok turns false when the copy fails. */
static char *col_text(sqlite3_stmt *st, int i, bool *ok) {
  const unsigned char *t = sqlite3_column_text(st, i);
  if (!t) return NULL;
  char *c = strdup((const char *)t);
  if (!c) *ok = false;
  return c;
}

static int read_refs(mlxr_catalog *cat, int64_t id, mlxr_model_info *m, char *err, size_t err_len) {
  sqlite3_stmt *st;
  int rc = cat_prepare(cat, "SELECT count(*) FROM model_blobs WHERE model_id = ?1", &st, err, err_len);
  if (rc < 0) return rc;
  sqlite3_bind_int64(st, 1, id);
  size_t nb = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  if ((rc = cat_prepare(cat, "SELECT count(*) FROM adapters WHERE model_id = ?1", &st, err, err_len)) < 0) return rc;
  sqlite3_bind_int64(st, 1, id);
  size_t na = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  m->blobs = nb ? calloc(nb, sizeof *m->blobs) : NULL;
  m->adapters = na ? calloc(na, sizeof *m->adapters) : NULL;
  if ((nb && !m->blobs) || (na && !m->adapters)) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");

  if ((rc = cat_prepare(cat, "SELECT digest, media_type, size FROM model_blobs WHERE model_id = ?1 ORDER BY position",
                        &st, err, err_len)) < 0) {
    return rc;
  }
  sqlite3_bind_int64(st, 1, id);
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW && m->n_blobs < nb) {
    mlxr_blob_ref *b = &m->blobs[m->n_blobs++];
    snprintf(b->digest, sizeof b->digest, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(b->media_type, sizeof b->media_type, "%s", (const char *)sqlite3_column_text(st, 1));
    b->size = sqlite3_column_int64(st, 2);
    m->total_size += b->size;
  }
  sqlite3_finalize(st);
  if (s != SQLITE_DONE && s != SQLITE_ROW) return cat_sql_err(cat, s, "read blobs", err, err_len);

  if ((rc = cat_prepare(cat, "SELECT name, digest, scale, size FROM adapters WHERE model_id = ?1 ORDER BY position",
                        &st, err, err_len)) < 0) {
    return rc;
  }
  sqlite3_bind_int64(st, 1, id);
  while ((s = sqlite3_step(st)) == SQLITE_ROW && m->n_adapters < na) {
    mlxr_adapter_ref *a = &m->adapters[m->n_adapters++];
    snprintf(a->name, sizeof a->name, "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(a->digest, sizeof a->digest, "%s", (const char *)sqlite3_column_text(st, 1));
    a->scale = sqlite3_column_double(st, 2);
    a->size = sqlite3_column_int64(st, 3);
    m->total_size += a->size;
  }
  sqlite3_finalize(st);
  if (s != SQLITE_DONE && s != SQLITE_ROW) return cat_sql_err(cat, s, "read adapters", err, err_len);
  return MLXR_OK;
}

/* Fills m from a row of MODEL_COLUMNS, then its blobs and adapters. */
static int read_model(mlxr_catalog *cat, sqlite3_stmt *st, mlxr_model_info *m, char *err, size_t err_len) {
  memset(m, 0, sizeof *m);
  bool ok = true;
  const int64_t id = sqlite3_column_int64(st, 0);
  m->name = col_text(st, 1, &ok);
  const char *fmt = (const char *)sqlite3_column_text(st, 2);
  if (mlxr_model_format_parse(fmt, &m->format) < 0) {
    mlxr_model_info_clear(m);
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "catalog: unknown format in a model row");
  }
  m->architecture = col_text(st, 3, &ok);
  m->parameter_count = sqlite3_column_int64(st, 4);
  m->quantization = col_text(st, 5, &ok);
  m->context_length = sqlite3_column_int64(st, 6);
  m->chat_template = col_text(st, 7, &ok);
  m->parameters_json = col_text(st, 8, &ok);
  m->system_prompt = col_text(st, 9, &ok);
  m->created_ms = sqlite3_column_int64(st, 10);
  m->last_used_ms = sqlite3_column_int64(st, 11);
  int rc = ok && m->name ? read_refs(cat, id, m, err, err_len) : mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  if (rc < 0) mlxr_model_info_clear(m);
  return rc;
}

int mlxr_catalog_get(mlxr_catalog *cat, const char *name, mlxr_model_info *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  char canonical[MLXR_NAME_MAX + 1];
  int rc = cat_canonical(cat, name, canonical, err, err_len);
  if (rc < 0) return rc;
  if ((rc = cat_exec(cat, "BEGIN", err, err_len)) < 0) return rc; /* one snapshot for the row and its refs */
  sqlite3_stmt *st;
  if ((rc = cat_prepare(cat, "SELECT " MODEL_COLUMNS " FROM models WHERE name = ?1", &st, err, err_len)) < 0) goto out;
  sqlite3_bind_text(st, 1, canonical, -1, SQLITE_STATIC);
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) {
    rc = read_model(cat, st, out, err, err_len);
  } else if (s == SQLITE_DONE) {
    char q[256];
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "model \"%s\" not found", mlxr_registry_quote(name, q, sizeof q));
  } else {
    rc = cat_sql_err(cat, s, "get model", err, err_len);
  }
  sqlite3_finalize(st);
out:
  cat_rollback(cat);
  return rc;
}

int mlxr_catalog_list(mlxr_catalog *cat, mlxr_model_info **items, size_t *n_out, char *err, size_t err_len) {
  *items = NULL;
  *n_out = 0;
  int rc = cat_exec(cat, "BEGIN", err, err_len);
  if (rc < 0) return rc;
  sqlite3_stmt *st;
  mlxr_model_info *list = NULL;
  size_t n = 0, cap = 0;
  if ((rc = cat_prepare(cat, "SELECT " MODEL_COLUMNS " FROM models ORDER BY name", &st, err, err_len)) < 0) goto out;
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      mlxr_model_info *nl = realloc(list, nc * sizeof *nl);
      if (!nl) {
        rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
        break;
      }
      list = nl;
      cap = nc;
    }
    if ((rc = read_model(cat, st, &list[n], err, err_len)) < 0) break;
    n++;
  }
  if (rc == MLXR_OK && s != SQLITE_DONE) rc = cat_sql_err(cat, s, "list models", err, err_len);
  sqlite3_finalize(st);
out:
  cat_rollback(cat);
  if (rc < 0) {
    mlxr_model_list_free(list, n);
    return rc;
  }
  *items = list;
  *n_out = n;
  return MLXR_OK;
}

/* ---- copy, delete, touch ---- */

/* Inside a transaction: every digest the model references is in the store. */
static int check_present(mlxr_catalog *cat, int64_t id, char *err, size_t err_len) {
  cat_digests ds = {0};
  int rc = cat_model_digests(cat, id, &ds, err, err_len);
  for (size_t i = 0; rc == MLXR_OK && i < ds.n; i++) {
    int64_t size;
    rc = blob_size(cat, &ds.d[i], &size, err, err_len);
  }
  cat_digests_free(&ds);
  return rc;
}

int mlxr_catalog_copy(mlxr_catalog *cat, const char *src, const char *dst, int64_t now_ms, char *err,
                      size_t err_len) {
  char src_c[MLXR_NAME_MAX + 1], dst_c[MLXR_NAME_MAX + 1], found[MLXR_NAME_MAX + 1];
  int rc;
  if ((rc = cat_canonical(cat, src, src_c, err, err_len)) < 0) return rc;
  if ((rc = cat_canonical(cat, dst, dst_c, err, err_len)) < 0) return rc;
  cat_digests old = {0};
  if ((rc = cat_begin(cat, err, err_len)) < 0) return rc;
  int64_t src_id, dst_id, new_id;
  if ((rc = cat_find_model(cat, src_c, &src_id, NULL, err, err_len)) < 0) goto fail;
  rc = cat_find_model(cat, dst_c, &dst_id, found, err, err_len);
  if (rc == MLXR_OK && dst_id == src_id && strcmp(found, dst_c) == 0) { /* onto itself: nothing to do */
    cat_rollback(cat);
    return MLXR_OK;
  }
  if (rc < 0 && rc != MLXR_ERR_NOT_FOUND) goto fail;
  if ((rc = drop_same_name(cat, dst_c, &old, err, err_len)) < 0) goto fail;
  if ((rc = check_present(cat, src_id, err, err_len)) < 0) goto fail;
  sqlite3_stmt *st;
  if ((rc = cat_prepare(cat,
                        "INSERT INTO models(name, format, architecture, parameter_count, quantization, context_length, "
                        "chat_template, parameters, system_prompt, created_ms, last_used_ms) "
                        "SELECT ?1, format, architecture, parameter_count, quantization, context_length, chat_template, "
                        "parameters, system_prompt, ?2, NULL FROM models WHERE id = ?3",
                        &st, err, err_len)) < 0) {
    goto fail;
  }
  sqlite3_bind_text(st, 1, dst_c, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, now_ms ? now_ms : cat_now_ms());
  sqlite3_bind_int64(st, 3, src_id);
  if ((rc = step_done(cat, st, "copy model", err, err_len)) < 0) goto fail;
  new_id = sqlite3_last_insert_rowid(cat->db);
  static const char *const copy_refs[] = {
      "INSERT INTO model_blobs(model_id, position, digest, media_type, size) "
      "SELECT ?1, position, digest, media_type, size FROM model_blobs WHERE model_id = ?2",
      "INSERT INTO adapters(model_id, position, name, digest, scale, size) "
      "SELECT ?1, position, name, digest, scale, size FROM adapters WHERE model_id = ?2",
  };
  for (size_t i = 0; i < sizeof copy_refs / sizeof copy_refs[0]; i++) {
    if ((rc = cat_prepare(cat, copy_refs[i], &st, err, err_len)) < 0) goto fail;
    sqlite3_bind_int64(st, 1, new_id);
    sqlite3_bind_int64(st, 2, src_id);
    if ((rc = step_done(cat, st, "copy refs", err, err_len)) < 0) goto fail;
  }
  cat_hook(cat, "catalog.copy.in_txn");
  if ((rc = cat_commit(cat, err, err_len)) < 0) goto fail;
  if (old.n) cat_remove_unreferenced(cat, &old, NULL, NULL, 0);
  cat_digests_free(&old);
  return MLXR_OK;
fail:
  cat_rollback(cat);
  cat_digests_free(&old);
  return rc;
}

int mlxr_catalog_delete(mlxr_catalog *cat, const char *name, mlxr_gc_report *freed, char *err, size_t err_len) {
  if (freed) memset(freed, 0, sizeof *freed);
  char canonical[MLXR_NAME_MAX + 1];
  int rc = cat_canonical(cat, name, canonical, err, err_len);
  if (rc < 0) return rc;
  cat_digests ds = {0};
  if ((rc = cat_begin(cat, err, err_len)) < 0) return rc;
  int64_t id;
  if ((rc = cat_find_model(cat, canonical, &id, NULL, err, err_len)) < 0) goto fail;
  if ((rc = cat_model_digests(cat, id, &ds, err, err_len)) < 0) goto fail;
  sqlite3_stmt *st;
  if ((rc = cat_prepare(cat, "DELETE FROM models WHERE id = ?1", &st, err, err_len)) < 0) goto fail;
  sqlite3_bind_int64(st, 1, id);
  if ((rc = step_done(cat, st, "delete model", err, err_len)) < 0) goto fail;
  cat_hook(cat, "catalog.delete.in_txn");
  if ((rc = cat_commit(cat, err, err_len)) < 0) goto fail;
  cat_hook(cat, "catalog.delete.rows_deleted");
  /* The model is gone; a failure to free its blobs now leaves them to gc, not an error. */
  cat_remove_unreferenced(cat, &ds, freed, NULL, 0);
  cat_digests_free(&ds);
  return MLXR_OK;
fail:
  cat_rollback(cat);
  cat_digests_free(&ds);
  return rc;
}

int mlxr_catalog_touch(mlxr_catalog *cat, const char *name, int64_t now_ms, char *err, size_t err_len) {
  char canonical[MLXR_NAME_MAX + 1];
  int rc = cat_canonical(cat, name, canonical, err, err_len);
  if (rc < 0) return rc;
  sqlite3_stmt *st;
  if ((rc = cat_prepare(cat, "UPDATE models SET last_used_ms = ?2 WHERE name = ?1", &st, err, err_len)) < 0) return rc;
  sqlite3_bind_text(st, 1, canonical, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, now_ms ? now_ms : cat_now_ms());
  if ((rc = step_done(cat, st, "touch model", err, err_len)) < 0) return rc;
  if (sqlite3_changes(cat->db) == 0) {
    char q[256];
    return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "model \"%s\" not found", mlxr_registry_quote(name, q, sizeof q));
  }
  return MLXR_OK;
}
