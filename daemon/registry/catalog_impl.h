/*
 * catalog_impl.h: what the catalog's files share (not for use outside daemon/registry).
 *
 * File map:
 *   catalog.c         open/close, add, get, list, copy, delete, touch
 *   catalog_schema.c  the schema's SQL, the migrations and their runner
 *   catalog_maint.c   blob removal after delete, gc, the integrity check, the KV-cache index
 *
 * The struct holds one SQLite connection and a borrowed store; one thread at a time (catalog.h).
 */
#ifndef MLXR_REGISTRY_CATALOG_IMPL_H
#define MLXR_REGISTRY_CATALOG_IMPL_H

#include <sqlite3.h>

#include "daemon/registry/catalog.h"

struct mlxr_catalog {
  sqlite3 *db;          /* owned connection */
  mlxr_store *store;    /* borrowed; outlives the catalog */
  mlxr_catalog_params p;
};

/* A list of digests (malloc'ed, owned by whoever filled it). */
typedef struct cat_digests {
  mlxr_digest *d; /* [n] */
  size_t n, cap;
} cat_digests;

void cat_digests_free(cat_digests *ds);
/* Appends the digest string (validated; MLXR_ERR_FORMAT for a bad one read from the database). */
int cat_digests_add(cat_digests *ds, const char *digest, char *err, size_t err_len);

/* An error from SQLite, mapped to a status (busy -> IO, constraint -> INVALID, corrupt -> FORMAT),
 * with "what: sqlite's message" in err. */
int cat_sql_err(mlxr_catalog *cat, int sqlite_rc, const char *what, char *err, size_t err_len);
/* Run SQL without results. */
int cat_exec(mlxr_catalog *cat, const char *sql, char *err, size_t err_len);
/* BEGIN IMMEDIATE (waits for the write lock up to the busy timeout) / COMMIT / ROLLBACK (never
 * fails; harmless when SQLite already rolled back). */
int cat_begin(mlxr_catalog *cat, char *err, size_t err_len);
int cat_commit(mlxr_catalog *cat, char *err, size_t err_len);
void cat_rollback(mlxr_catalog *cat);
int cat_prepare(mlxr_catalog *cat, const char *sql, sqlite3_stmt **st, char *err, size_t err_len);

void cat_hook(const mlxr_catalog *cat, const char *point);
int64_t cat_now_ms(void);
/* The canonical form of a user-given model name (MLXR_NAME_MAX + 1 bytes). */
int cat_canonical(const mlxr_catalog *cat, const char *name, char *buf, char *err, size_t err_len);
/* The id of the model named canonical (compared ignoring case) and, if found_name is not NULL, its
 * stored name (MLXR_NAME_MAX + 1 bytes). MLXR_ERR_NOT_FOUND when there is none. */
int cat_find_model(mlxr_catalog *cat, const char *canonical, int64_t *id, char *found_name, char *err,
                   size_t err_len);
/* Every digest a model's rows reference (blobs, adapters, cache entries), appended to ds. */
int cat_model_digests(mlxr_catalog *cat, int64_t model_id, cat_digests *ds, char *err, size_t err_len);

/* catalog_schema.c: bring the schema to the latest version (each migration its own transaction). */
int cat_migrate(mlxr_catalog *cat, char *err, size_t err_len);
int cat_latest_version(void);

/* catalog_maint.c: in one write transaction, remove from the store each digest of ds that no row
 * references any more; counts go to report (may be NULL). Called after a commit that dropped rows. */
int cat_remove_unreferenced(mlxr_catalog *cat, const cat_digests *ds, mlxr_gc_report *report, char *err,
                            size_t err_len);

#endif
