/*
 * catalog_schema.c: the catalog's schema as a list of migrations, and the runner that applies them.
 *
 * How it works: PRAGMA user_version holds the number of the last migration applied. At open, each
 * migration with a higher number runs in its own BEGIN IMMEDIATE transaction that re-reads
 * user_version first (another process may have migrated meanwhile), executes the migration's SQL,
 * records it in schema_migrations and sets user_version, so a crash mid-migration leaves the
 * previous version intact. A database whose user_version is above the latest migration known here
 * was written by a newer build and is refused rather than guessed at.
 *
 * Adding a migration: append {N + 1, "what it does", "SQL"} to the table below; never edit one
 * that has shipped. Digest columns carry a CHECK for the canonical "sha256:<64 lowercase hex>" form
 * as a second line of defence behind names.c.
 */
#include <stdio.h>

#include "core/common/status.h"
#include "daemon/registry/catalog_impl.h"

#define DIGEST_CHECK(col) \
  "CHECK (length(" col ") = 71 AND substr(" col ", 1, 7) = 'sha256:' AND NOT (substr(" col ", 8) GLOB '*[^0-9a-f]*'))"

static const char SCHEMA_V1[] =
    "CREATE TABLE schema_migrations ("
    "  version INTEGER PRIMARY KEY,"
    "  description TEXT NOT NULL,"
    "  applied_ms INTEGER NOT NULL);"
    "CREATE TABLE models ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE COLLATE NOCASE," /* canonical host/namespace/model:tag */
    "  format TEXT NOT NULL CHECK (format IN ('gguf', 'safetensors', 'mlx')),"
    "  architecture TEXT,"
    "  parameter_count INTEGER NOT NULL DEFAULT 0 CHECK (parameter_count >= 0),"
    "  quantization TEXT,"
    "  context_length INTEGER NOT NULL DEFAULT 0 CHECK (context_length >= 0),"
    "  chat_template TEXT,"
    "  parameters TEXT," /* JSON object of default options */
    "  system_prompt TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  last_used_ms INTEGER);"
    "CREATE TABLE model_blobs ("
    "  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  digest TEXT NOT NULL " DIGEST_CHECK("digest") ","
    "  media_type TEXT NOT NULL,"
    "  size INTEGER NOT NULL CHECK (size >= 0),"
    "  PRIMARY KEY (model_id, position)) WITHOUT ROWID;"
    "CREATE INDEX model_blobs_digest ON model_blobs(digest);"
    "CREATE TABLE adapters ("
    "  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  digest TEXT NOT NULL " DIGEST_CHECK("digest") ","
    "  scale REAL NOT NULL,"
    "  size INTEGER NOT NULL CHECK (size >= 0),"
    "  PRIMARY KEY (model_id, position)) WITHOUT ROWID;"
    "CREATE INDEX adapters_digest ON adapters(digest);"
    "CREATE TABLE cache_entries ("
    "  model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,"
    "  prefix_hash TEXT NOT NULL " DIGEST_CHECK("prefix_hash") ","
    "  digest TEXT NOT NULL " DIGEST_CHECK("digest") ","
    "  n_tokens INTEGER NOT NULL CHECK (n_tokens > 0),"
    "  size INTEGER NOT NULL CHECK (size >= 0),"
    "  created_ms INTEGER NOT NULL,"
    "  last_used_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (model_id, prefix_hash)) WITHOUT ROWID;"
    "CREATE INDEX cache_entries_digest ON cache_entries(digest);";

typedef struct migration {
  int version;             /* user_version after it ran */
  const char *description; /* recorded in schema_migrations */
  const char *sql;
} migration;

static const migration MIGRATIONS[] = {
    {1, "models, model_blobs, adapters, cache_entries", SCHEMA_V1},
};

#define N_MIGRATIONS ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

int cat_latest_version(void) { return MIGRATIONS[N_MIGRATIONS - 1].version; }

static int read_user_version(mlxr_catalog *cat, int *out, char *err, size_t err_len) {
  sqlite3_stmt *st;
  int rc = cat_prepare(cat, "PRAGMA user_version", &st, err, err_len);
  if (rc < 0) return rc;
  int s = sqlite3_step(st);
  if (s != SQLITE_ROW) {
    sqlite3_finalize(st);
    return cat_sql_err(cat, s, "read user_version", err, err_len);
  }
  *out = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return MLXR_OK;
}

int cat_migrate(mlxr_catalog *cat, char *err, size_t err_len) {
  int version;
  int rc = read_user_version(cat, &version, err, err_len);
  if (rc < 0) return rc;
  if (version > cat_latest_version() || version < 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "the catalog has schema version %d, this build knows up to %d (written by a newer mlxr?)",
                     version, cat_latest_version());
  }
  for (int i = 0; i < N_MIGRATIONS; i++) {
    const migration *m = &MIGRATIONS[i];
    if (m->version <= version) continue;
    if ((rc = cat_begin(cat, err, err_len)) < 0) return rc;
    if ((rc = read_user_version(cat, &version, err, err_len)) < 0) goto fail;
    if (m->version <= version) { /* another process got there first */
      if ((rc = cat_commit(cat, err, err_len)) < 0) return rc;
      continue;
    }
    if ((rc = cat_exec(cat, m->sql, err, err_len)) < 0) goto fail;
    sqlite3_stmt *st;
    if ((rc = cat_prepare(cat, "INSERT INTO schema_migrations(version, description, applied_ms) VALUES (?1, ?2, ?3)",
                          &st, err, err_len)) < 0) {
      goto fail;
    }
    sqlite3_bind_int(st, 1, m->version);
    sqlite3_bind_text(st, 2, m->description, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, cat_now_ms());
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) {
      rc = cat_sql_err(cat, s, "record migration", err, err_len);
      goto fail;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", m->version);
    if ((rc = cat_exec(cat, sql, err, err_len)) < 0) goto fail;
    if ((rc = cat_commit(cat, err, err_len)) < 0) goto fail;
    version = m->version;
  }
  return MLXR_OK;
fail:
  cat_rollback(cat);
  return rc;
}
