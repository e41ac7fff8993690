/*
 * catalog_maint.c: keeping the catalog and the store in step: removing blobs no row references
 * (after a delete or replace, and as garbage collection), the integrity check, and the index of
 * persisted KV-cache entries.
 *
 * How it works: a blob is referenced when any model_blobs, adapters or cache_entries row names its
 * digest (each column is indexed). Removal always runs inside BEGIN IMMEDIATE: holding the write
 * lock, it re-checks that nothing references the digest and only then unlinks the file, so an add
 * in another process either committed before (and the blob stays) or runs after (and finds the
 * blob gone and refuses). The integrity check also holds the write lock, so what it compares is one
 * consistent state of rows and files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common/status.h"
#include "daemon/registry/catalog_impl.h"

/* 1 if some row references the digest ("sha256:<hex>"), 0 if none, negative on error. */
static int is_referenced(mlxr_catalog *cat, const char *digest, char *err, size_t err_len) {
  sqlite3_stmt *st;
  int rc = cat_prepare(cat,
                       "SELECT EXISTS (SELECT 1 FROM model_blobs WHERE digest = ?1) "
                       "OR EXISTS (SELECT 1 FROM adapters WHERE digest = ?1) "
                       "OR EXISTS (SELECT 1 FROM cache_entries WHERE digest = ?1)",
                       &st, err, err_len);
  if (rc < 0) return rc;
  sqlite3_bind_text(st, 1, digest, -1, SQLITE_STATIC);
  int s = sqlite3_step(st);
  rc = s == SQLITE_ROW ? sqlite3_column_int(st, 0) != 0 : cat_sql_err(cat, s, "reference check", err, err_len);
  sqlite3_finalize(st);
  return rc;
}

/* Under the write lock: removes d when unreferenced and (min_age_s > 0) old enough. */
static int remove_if_unreferenced(mlxr_catalog *cat, const mlxr_digest *d, int64_t min_age_s, int64_t now_s,
                                  mlxr_gc_report *rep, char *err, size_t err_len) {
  char ds[MLXR_DIGEST_STR_SIZE];
  mlxr_digest_str(d, ds);
  int rc = is_referenced(cat, ds, err, err_len);
  if (rc != 0) return rc < 0 ? rc : MLXR_OK;
  mlxr_blob_stat bs;
  rc = mlxr_store_stat(cat->store, ds, &bs, err, err_len);
  if (rc == MLXR_ERR_NOT_FOUND) return MLXR_OK; /* already gone */
  if (rc < 0) return rc;
  if (min_age_s > 0 && now_s - bs.mtime_s < min_age_s) {
    rep->n_kept_young++;
    return MLXR_OK;
  }
  rc = mlxr_store_remove(cat->store, ds, err, err_len);
  if (rc == MLXR_ERR_NOT_FOUND) return MLXR_OK;
  if (rc < 0) return rc;
  rep->n_removed++;
  rep->bytes_removed += bs.size;
  return MLXR_OK;
}

int cat_remove_unreferenced(mlxr_catalog *cat, const cat_digests *ds, mlxr_gc_report *report, char *err,
                            size_t err_len) {
  mlxr_gc_report rep = {0};
  int rc = cat_begin(cat, err, err_len);
  if (rc < 0) return rc;
  for (size_t i = 0; i < ds->n && rc == MLXR_OK; i++) {
    rc = remove_if_unreferenced(cat, &ds->d[i], 0, 0, &rep, err, err_len);
  }
  cat_rollback(cat); /* nothing was written; this only releases the lock */
  if (report) *report = rep;
  return rc;
}

int mlxr_catalog_gc(mlxr_catalog *cat, int64_t min_age_s, mlxr_gc_report *report, char *err, size_t err_len) {
  mlxr_gc_report rep = {0};
  if (report) *report = rep;
  if (min_age_s < 0) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "min_age_s must not be negative");
  int rc = cat_begin(cat, err, err_len);
  if (rc < 0) return rc;
  mlxr_digest *all = NULL;
  size_t n = 0;
  if ((rc = mlxr_store_list(cat->store, &all, &n, err, err_len)) == MLXR_OK) {
    const int64_t now_s = (int64_t)time(NULL);
    for (size_t i = 0; i < n && rc == MLXR_OK; i++) {
      rc = remove_if_unreferenced(cat, &all[i], min_age_s, now_s, &rep, err, err_len);
    }
  }
  free(all);
  cat_rollback(cat);
  if (report) *report = rep;
  return rc;
}

/* PRAGMA integrity_check answers "ok" alone; foreign_key_check answers nothing. */
static int sqlite_checks(mlxr_catalog *cat, bool *ok, char *problem, size_t problem_len, char *err, size_t err_len) {
  sqlite3_stmt *st;
  int rc = cat_prepare(cat, "PRAGMA integrity_check", &st, err, err_len);
  if (rc < 0) return rc;
  int s, rows = 0;
  *ok = true;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(st, 0);
    if (rows++ == 0 && t && strcmp(t, "ok") == 0) continue;
    if (*ok) snprintf(problem, problem_len, "integrity_check: %s", t ? t : "?");
    *ok = false;
  }
  sqlite3_finalize(st);
  if (s != SQLITE_DONE) return cat_sql_err(cat, s, "integrity_check", err, err_len);
  if ((rc = cat_prepare(cat, "PRAGMA foreign_key_check", &st, err, err_len)) < 0) return rc;
  if ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if (*ok) snprintf(problem, problem_len, "foreign_key_check: a row of %s has no parent", sqlite3_column_text(st, 0));
    *ok = false;
  } else if (s != SQLITE_DONE) {
    sqlite3_finalize(st);
    return cat_sql_err(cat, s, "foreign_key_check", err, err_len);
  }
  sqlite3_finalize(st);
  return MLXR_OK;
}

int mlxr_catalog_check(mlxr_catalog *cat, bool deep, mlxr_integrity_report *report, char *err, size_t err_len) {
  mlxr_integrity_report rep = {0};
  if (report) *report = rep;
  char problem[512] = "";
  int rc = cat_begin(cat, err, err_len);
  if (rc < 0) return rc;
  if ((rc = sqlite_checks(cat, &rep.sqlite_ok, problem, sizeof problem, err, err_len)) < 0) goto out;
  sqlite3_stmt *st;
  if ((rc = cat_prepare(cat, "SELECT count(*) FROM models", &st, err, err_len)) < 0) goto out;
  if (sqlite3_step(st) == SQLITE_ROW) rep.n_models = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  if ((rc = cat_prepare(cat,
                        "SELECT digest, size FROM model_blobs UNION SELECT digest, size FROM adapters "
                        "UNION SELECT digest, size FROM cache_entries",
                        &st, err, err_len)) < 0) {
    goto out;
  }
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    const char *digest = (const char *)sqlite3_column_text(st, 0);
    const int64_t size = sqlite3_column_int64(st, 1);
    rep.n_blobs++;
    mlxr_blob_stat bs;
    char e2[256];
    int r = mlxr_store_stat(cat->store, digest, &bs, e2, sizeof e2);
    if (r < 0) {
      rep.n_missing++;
      if (!problem[0]) snprintf(problem, sizeof problem, "referenced blob missing: %s", e2);
    } else if (bs.size != size) {
      rep.n_bad_size++;
      if (!problem[0]) {
        snprintf(problem, sizeof problem, "blob %s has %lld bytes, the catalog says %lld", digest, (long long)bs.size,
                 (long long)size);
      }
    } else if (deep && (r = mlxr_store_verify(cat->store, digest, e2, sizeof e2)) < 0) {
      rep.n_bad_hash++;
      if (!problem[0]) snprintf(problem, sizeof problem, "%s", e2);
    }
  }
  sqlite3_finalize(st);
  if (s != SQLITE_DONE) {
    rc = cat_sql_err(cat, s, "read references", err, err_len);
    goto out;
  }
  if (problem[0]) rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "catalog check failed: %s", problem);
out:
  cat_rollback(cat);
  if (report) *report = rep;
  return rc;
}

/* ---- persisted KV-cache index ---- */

int mlxr_catalog_cache_put(mlxr_catalog *cat, const char *model, const mlxr_cache_entry *e, char *err,
                           size_t err_len) {
  char canonical[MLXR_NAME_MAX + 1], prefix[MLXR_DIGEST_STR_SIZE], digest[MLXR_DIGEST_STR_SIZE];
  mlxr_digest pd, dd;
  int rc = cat_canonical(cat, model, canonical, err, err_len);
  if (rc < 0) return rc;
  if (strnlen(e->prefix_hash, sizeof e->prefix_hash) >= sizeof e->prefix_hash ||
      strnlen(e->digest, sizeof e->digest) >= sizeof e->digest) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "cache entry: digest not terminated");
  }
  if ((rc = mlxr_digest_parse(e->prefix_hash, &pd, err, err_len)) < 0) return rc;
  if ((rc = mlxr_digest_parse(e->digest, &dd, err, err_len)) < 0) return rc;
  if (e->n_tokens <= 0) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "cache entry: n_tokens must be positive");
  mlxr_digest_str(&pd, prefix);
  mlxr_digest_str(&dd, digest);
  cat_digests old = {0};
  if ((rc = cat_begin(cat, err, err_len)) < 0) return rc;
  int64_t id;
  if ((rc = cat_find_model(cat, canonical, &id, NULL, err, err_len)) < 0) goto fail;
  mlxr_blob_stat bs;
  if ((rc = mlxr_store_stat(cat->store, digest, &bs, err, err_len)) < 0) goto fail;
  sqlite3_stmt *st;
  if ((rc = cat_prepare(cat, "SELECT digest FROM cache_entries WHERE model_id = ?1 AND prefix_hash = ?2", &st, err,
                        err_len)) < 0) {
    goto fail;
  }
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) rc = cat_digests_add(&old, (const char *)sqlite3_column_text(st, 0), err, err_len);
  sqlite3_finalize(st);
  if (rc < 0) goto fail;
  if ((rc = cat_prepare(cat,
                        "INSERT OR REPLACE INTO cache_entries(model_id, prefix_hash, digest, n_tokens, size, "
                        "created_ms, last_used_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                        &st, err, err_len)) < 0) {
    goto fail;
  }
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, digest, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, e->n_tokens);
  sqlite3_bind_int64(st, 5, bs.size);
  sqlite3_bind_int64(st, 6, e->created_ms ? e->created_ms : cat_now_ms());
  int s = sqlite3_step(st);
  sqlite3_finalize(st);
  if (s != SQLITE_DONE) {
    rc = cat_sql_err(cat, s, "put cache entry", err, err_len);
    goto fail;
  }
  if ((rc = cat_commit(cat, err, err_len)) < 0) goto fail;
  if (old.n && !mlxr_digest_equal(&old.d[0], &dd)) cat_remove_unreferenced(cat, &old, NULL, NULL, 0);
  cat_digests_free(&old);
  return MLXR_OK;
fail:
  cat_rollback(cat);
  cat_digests_free(&old);
  return rc;
}

int mlxr_catalog_cache_get(mlxr_catalog *cat, const char *model, const char *prefix_hash, int64_t now_ms,
                           mlxr_cache_entry *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  char canonical[MLXR_NAME_MAX + 1], prefix[MLXR_DIGEST_STR_SIZE];
  mlxr_digest pd;
  int rc = cat_canonical(cat, model, canonical, err, err_len);
  if (rc < 0) return rc;
  if ((rc = mlxr_digest_parse(prefix_hash, &pd, err, err_len)) < 0) return rc;
  mlxr_digest_str(&pd, prefix);
  if ((rc = cat_begin(cat, err, err_len)) < 0) return rc;
  int64_t id;
  if ((rc = cat_find_model(cat, canonical, &id, NULL, err, err_len)) < 0) goto out;
  sqlite3_stmt *st;
  if ((rc = cat_prepare(cat,
                        "SELECT digest, n_tokens, created_ms FROM cache_entries WHERE model_id = ?1 AND prefix_hash = ?2",
                        &st, err, err_len)) < 0) {
    goto out;
  }
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) {
    snprintf(out->prefix_hash, sizeof out->prefix_hash, "%s", prefix);
    snprintf(out->digest, sizeof out->digest, "%s", (const char *)sqlite3_column_text(st, 0));
    out->n_tokens = sqlite3_column_int64(st, 1);
    out->created_ms = sqlite3_column_int64(st, 2);
    out->last_used_ms = now_ms ? now_ms : cat_now_ms();
  } else {
    rc = s == SQLITE_DONE ? mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "no cache entry for %s", prefix)
                          : cat_sql_err(cat, s, "get cache entry", err, err_len);
  }
  sqlite3_finalize(st);
  if (rc < 0) goto out;
  if ((rc = cat_prepare(cat, "UPDATE cache_entries SET last_used_ms = ?3 WHERE model_id = ?1 AND prefix_hash = ?2",
                        &st, err, err_len)) < 0) {
    goto out;
  }
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, out->last_used_ms);
  s = sqlite3_step(st);
  sqlite3_finalize(st);
  if (s != SQLITE_DONE) {
    rc = cat_sql_err(cat, s, "touch cache entry", err, err_len);
    goto out;
  }
  rc = cat_commit(cat, err, err_len);
out:
  cat_rollback(cat);
  if (rc < 0) memset(out, 0, sizeof *out);
  return rc;
}
