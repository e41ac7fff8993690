/*
 * catalog.h: the SQLite catalog of the registry: which models exist under which name, what they
 * are, and which blobs of the store (store.h) make them up; plus their LoRA adapters and the index
 * of persisted KV-cache entries.
 *
 * Tables (schema version 1; catalog_schema.c holds the SQL and the migrations):
 *   models         one row per name:tag (canonical "host/namespace/model:tag", unique ignoring
 *                  case): format (gguf, safetensors, mlx), architecture, parameter count,
 *                  quantization, context length, chat template, default parameters (a JSON
 *                  object), system prompt, created and last-used times (ms since the epoch)
 *   model_blobs    model -> (position, digest, media type, size); ON DELETE CASCADE
 *   adapters       model -> (position, name, digest, scale) LoRA adapters applied at load; CASCADE
 *   cache_entries  model -> (prefix hash, digest, n_tokens, created, last used); CASCADE
 *   schema_migrations  one row per applied migration; PRAGMA user_version = the latest applied
 * A name:tag is the key of its model row; copying a model makes a new row with the same blobs, as
 * Ollama's copy writes a second manifest, so no separate tags table is needed.
 *
 * The database runs in WAL mode with foreign_keys=ON, synchronous=FULL and a busy timeout, so
 * several processes (mlxrd, mlxr) may open it; every change is one BEGIN IMMEDIATE transaction.
 *
 * Crash safety, by ordering: blobs are committed to the store (fsync'ed, renamed) before a row
 * names them, and add checks inside its transaction that each one is present; delete commits the
 * row removal first and only then removes the blobs that no row references any more. A crash at
 * any point therefore leaves at most an unreferenced blob (mlxr_catalog_gc removes it), never a
 * row without its blobs. Blob removal (delete, gc) runs while holding the write lock and re-checks
 * references under it, so it cannot race an add in another process.
 *
 * Test hook: params.hook is called at "catalog.add.in_txn" (rows inserted, not committed),
 * "catalog.copy.in_txn", "catalog.delete.in_txn" (rows deleted, not committed) and
 * "catalog.delete.rows_deleted" (committed, blobs not yet removed). NULL in production.
 *
 * Ownership and threads: a catalog borrows its store (which must outlive it) and owns its SQLite
 * connection; one thread at a time may use a catalog (open one per thread, they share the file).
 * Results (mlxr_model_info, lists) are owned by the caller and freed with the matching _free/_clear.
 */
#ifndef MLXR_REGISTRY_CATALOG_H
#define MLXR_REGISTRY_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/registry/names.h"
#include "daemon/registry/store.h"

typedef struct mlxr_catalog mlxr_catalog;

typedef struct mlxr_catalog_params {
  int busy_timeout_ms;     /* how long to wait for another process's write lock (default 5000) */
  mlxr_name_defaults name_defaults; /* defaults for names without host/namespace/tag (NULLs: Ollama's) */
  mlxr_registry_hook hook; /* test hook, NULL in production */
  void *hook_ctx;
} mlxr_catalog_params;

mlxr_catalog_params mlxr_catalog_default_params(void);

/* Open (creating and migrating) the catalog at db_path. A database from a newer schema than this
 * build knows is refused (MLXR_ERR_UNSUPPORTED). */
int mlxr_catalog_open(const char *db_path, mlxr_store *store, const mlxr_catalog_params *params,
                      mlxr_catalog **out, char *err, size_t err_len);
void mlxr_catalog_close(mlxr_catalog *cat);
/* The schema version (PRAGMA user_version) of the open database. */
int mlxr_catalog_schema_version(mlxr_catalog *cat);
/* The latest schema version this build knows. */
int mlxr_catalog_latest_schema_version(void);

/* ---- records ---- */

typedef enum mlxr_model_format {
  MLXR_MODEL_FORMAT_GGUF = 0,
  MLXR_MODEL_FORMAT_SAFETENSORS = 1,
  MLXR_MODEL_FORMAT_MLX = 2,
} mlxr_model_format;

/* "gguf", "safetensors", "mlx"; NULL for an unknown value. */
const char *mlxr_model_format_name(mlxr_model_format f);
int mlxr_model_format_parse(const char *s, mlxr_model_format *out);

#define MLXR_MEDIA_TYPE_MAX 127   /* bytes of a media type, e.g. application/vnd.ollama.image.model */
#define MLXR_ADAPTER_NAME_MAX 127 /* bytes of an adapter's label */
#define MLXR_CATALOG_TEXT_MAX (1 << 20)  /* bytes of a chat template or system prompt */
#define MLXR_CATALOG_PARAMS_MAX (1 << 16) /* bytes of the default-parameters JSON */
#define MLXR_CATALOG_MAX_REFS 4096        /* blobs or adapters of one model */

typedef struct mlxr_blob_ref {
  char digest[MLXR_DIGEST_STR_SIZE];          /* in: "sha256:<hex>" or "sha256-<hex>"; out: "sha256:<hex>" */
  char media_type[MLXR_MEDIA_TYPE_MAX + 1];   /* [A-Za-z0-9.+_/-], 1..127 bytes */
  int64_t size;                               /* bytes; out only (add takes it from the store) */
} mlxr_blob_ref;

typedef struct mlxr_adapter_ref {
  char name[MLXR_ADAPTER_NAME_MAX + 1]; /* a printable label, e.g. the adapter file's name */
  char digest[MLXR_DIGEST_STR_SIZE];    /* as in mlxr_blob_ref */
  double scale;                         /* LoRA scale, finite */
  int64_t size;                         /* bytes; out only */
} mlxr_adapter_ref;

/* What add stores. Strings are borrowed for the call; NULL means unknown/none. */
typedef struct mlxr_model_spec {
  const char *name; /* any form mlxr_name_parse accepts */
  mlxr_model_format format;
  const char *architecture;    /* e.g. "llama"; printable, at most 64 bytes */
  int64_t parameter_count;     /* 0: unknown */
  const char *quantization;    /* e.g. "Q4_K_M"; printable, at most 64 bytes */
  int64_t context_length;      /* tokens; 0: unknown */
  const char *chat_template;   /* at most MLXR_CATALOG_TEXT_MAX bytes */
  const char *parameters_json; /* a JSON object, at most MLXR_CATALOG_PARAMS_MAX bytes */
  const char *system_prompt;   /* at most MLXR_CATALOG_TEXT_MAX bytes */
  const mlxr_blob_ref *blobs;  /* [n_blobs], at least one */
  size_t n_blobs;
  const mlxr_adapter_ref *adapters; /* [n_adapters] */
  size_t n_adapters;
  int64_t now_ms;              /* created time, ms since the epoch; 0: now */
} mlxr_model_spec;

/* What get and list return. Every pointer is owned by the record (NULL where unknown). */
typedef struct mlxr_model_info {
  char *name; /* canonical "host/namespace/model:tag" */
  mlxr_model_format format;
  char *architecture;
  int64_t parameter_count;
  char *quantization;
  int64_t context_length;
  char *chat_template;
  char *parameters_json;
  char *system_prompt;
  int64_t created_ms;   /* ms since the epoch */
  int64_t last_used_ms; /* 0: never used */
  int64_t total_size;   /* bytes of all blobs and adapters */
  mlxr_blob_ref *blobs; /* [n_blobs], in the order they were added */
  size_t n_blobs;
  mlxr_adapter_ref *adapters; /* [n_adapters] */
  size_t n_adapters;
} mlxr_model_info;

/* Frees what the record owns and zeroes it (the record itself is the caller's). */
void mlxr_model_info_clear(mlxr_model_info *m);
/* Frees a list from mlxr_catalog_list. */
void mlxr_model_list_free(mlxr_model_info *items, size_t n);

/* ---- operations (names: any form mlxr_name_parse accepts; case-insensitive) ---- */

/* Add a model with its blobs and adapters in one transaction. Every blob and adapter must already
 * be in the store (else MLXR_ERR_NOT_FOUND and nothing changes). An existing model of exactly the
 * same name is replaced (Ollama's create); one whose name differs only in case is refused
 * (MLXR_ERR_INVALID), as Ollama refuses it. Blobs only the replaced model used are removed. */
int mlxr_catalog_add(mlxr_catalog *cat, const mlxr_model_spec *spec, char *err, size_t err_len);
/* Look a model up: MLXR_OK and *out filled, or MLXR_ERR_NOT_FOUND. */
int mlxr_catalog_get(mlxr_catalog *cat, const char *name, mlxr_model_info *out, char *err, size_t err_len);
/* Every model, ordered by name. */
int mlxr_catalog_list(mlxr_catalog *cat, mlxr_model_info **items, size_t *n, char *err, size_t err_len);
/* A new name for the same blobs (a destination of exactly that name is replaced; one differing
 * only in case is refused). now_ms: its created time (0: now). */
int mlxr_catalog_copy(mlxr_catalog *cat, const char *src, const char *dst, int64_t now_ms, char *err,
                      size_t err_len);

/* What removing blobs did (delete, gc). */
typedef struct mlxr_gc_report {
  int64_t n_removed;     /* blobs removed from the store */
  int64_t bytes_removed; /* their bytes */
  int64_t n_kept_young;  /* unreferenced blobs kept because they are younger than min_age_s (gc) */
} mlxr_gc_report;

/* Delete a model (its rows in one transaction, then the blobs no other row references).
 * MLXR_ERR_NOT_FOUND if there is no such model. freed may be NULL. */
int mlxr_catalog_delete(mlxr_catalog *cat, const char *name, mlxr_gc_report *freed, char *err, size_t err_len);
/* Set a model's last-used time (ms since the epoch; 0: now). */
int mlxr_catalog_touch(mlxr_catalog *cat, const char *name, int64_t now_ms, char *err, size_t err_len);

/* Remove blobs of the store that no row references and that are at least min_age_s seconds old
 * (a concurrent create may have stored a blob it has not registered yet; 0: any age). */
int mlxr_catalog_gc(mlxr_catalog *cat, int64_t min_age_s, mlxr_gc_report *report, char *err, size_t err_len);

typedef struct mlxr_integrity_report {
  bool sqlite_ok;       /* PRAGMA integrity_check said "ok" and foreign_key_check found nothing */
  int64_t n_models;
  int64_t n_blobs;      /* distinct digests referenced */
  int64_t n_missing;    /* referenced but not in the store */
  int64_t n_bad_size;   /* in the store with another size than the catalog recorded */
  int64_t n_bad_hash;   /* (deep only) bytes that do not hash to the name */
} mlxr_integrity_report;

/* PRAGMA integrity_check and foreign_key_check, then every referenced blob present with its
 * recorded size; deep also re-hashes each one. MLXR_OK when all is well, else MLXR_ERR_FORMAT with
 * the first problem in err. report may be NULL. Holds the write lock while it runs (so rows and
 * files are compared in one state): a deep check of large models blocks other writers meanwhile. */
int mlxr_catalog_check(mlxr_catalog *cat, bool deep, mlxr_integrity_report *report, char *err, size_t err_len);

/* ---- persisted KV-cache index ---- */

typedef struct mlxr_cache_entry {
  char prefix_hash[MLXR_DIGEST_STR_SIZE]; /* the prefix's identity: a "sha256:<hex>" of its tokens */
  char digest[MLXR_DIGEST_STR_SIZE];      /* the blob holding the KV data */
  int64_t n_tokens;                       /* tokens the entry covers, > 0 */
  int64_t created_ms, last_used_ms;
} mlxr_cache_entry;

/* Record (or replace) the entry of model for prefix_hash; its blob must be in the store. */
int mlxr_catalog_cache_put(mlxr_catalog *cat, const char *model, const mlxr_cache_entry *e, char *err,
                           size_t err_len);
/* Look up (and mark used at now_ms; 0: now) the entry of model for prefix_hash. */
int mlxr_catalog_cache_get(mlxr_catalog *cat, const char *model, const char *prefix_hash, int64_t now_ms,
                           mlxr_cache_entry *out, char *err, size_t err_len);

#endif
