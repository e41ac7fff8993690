/*
 * store.h: the content-addressed blob store of the registry: every model file (weights, template,
 * parameters, adapter, persisted KV) lives once under the SHA-256 of its bytes.
 *
 * Layout under the caller's root directory (Ollama's):
 *
 *   <root>/blobs/sha256-<64 hex>              a complete blob; its bytes hash to its name
 *   <root>/blobs/sha256-<64 hex>-partial      a resumable write in progress (or interrupted)
 *   <root>/blobs/tmp-<16 hex>-partial         a one-shot write in progress (or interrupted)
 *
 * Writing (mlxr_store_writer_begin .. _commit): bytes go to a temporary file in blobs/ (created
 * O_EXCL under a random name, or the digest's "-partial" name for a resumable write), are hashed
 * as they are written, the file is fsync'ed, its digest checked against the one the caller
 * expected (if any), renamed to its final name, and blobs/ is fsync'ed. rename() is atomic, so a
 * crash at any moment leaves either no file under the final name or the complete one, never part
 * of one. A resumable write keeps its "-partial" file when abandoned; the next begin with the same
 * expected digest re-hashes the bytes already there and continues after them
 * (mlxr_blob_writer_offset says where: an HTTP Range start). Every temporary file is flock()ed
 * while its writer lives, so mlxr_store_sweep never removes one in use; after a crash the lock is
 * gone and the sweep removes (and reports) the leftovers.
 *
 * Safety: a digest is validated (names.h) before it is turned into a file name; every file access
 * is relative to the blobs/ directory descriptor held by the store (openat, renameat, unlinkat),
 * with O_NOFOLLOW, so no caller-given string is ever joined into a path. Sizes are checked before
 * and while writing against the expected size and the store's maximum.
 *
 * Test hook: params.hook, when set, is called with the name of each crash point as it passes it
 * ("store.chunk_written" after each write call, "store.temp_written" when commit starts,
 * "store.fsynced" after the fsync of the file, "store.renamed" after the rename, before the
 * directory's fsync), so a test can kill the process exactly there. NULL in production.
 *
 * Ownership and threads: the store owns its root path and directory descriptors; it holds no other
 * mutable state, so any number of threads may call it at once. A writer belongs to one thread and
 * ends with exactly one call of _commit or _abort (both free it).
 */
#ifndef MLXR_REGISTRY_STORE_H
#define MLXR_REGISTRY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/registry/names.h"

typedef struct mlxr_store mlxr_store;
typedef struct mlxr_blob_writer mlxr_blob_writer;

/* Called at named crash points (see above); ctx is the params' hook_ctx. */
typedef void (*mlxr_registry_hook)(void *ctx, const char *point);

typedef struct mlxr_store_params {
  int64_t max_blob_bytes;  /* the largest blob accepted, bytes (default 1 TiB) */
  mlxr_registry_hook hook; /* test hook, NULL in production */
  void *hook_ctx;
} mlxr_store_params;

mlxr_store_params mlxr_store_default_params(void);

/* The default root, from the values of the environment variables the caller's main() read (NULL
 * or empty when unset): MLXR_MODELS as given (as OLLAMA_MODELS), else $XDG_DATA_HOME/mlxr (only an
 * absolute XDG_DATA_HOME counts, as the XDG spec says), else $HOME/.local/share/mlxr.
 * MLXR_ERR_INVALID when none applies, MLXR_ERR_RANGE when buf is too small. */
int mlxr_store_default_root(const char *mlxr_models, const char *xdg_data_home, const char *home, char *buf,
                            size_t buf_len, char *err, size_t err_len);

/* Open (creating root and root/blobs with mode 0755 where missing) the store at root. */
int mlxr_store_open(const char *root, const mlxr_store_params *params, mlxr_store **out, char *err, size_t err_len);
void mlxr_store_close(mlxr_store *st);
/* The root directory given to open (owned by the store). */
const char *mlxr_store_root(const mlxr_store *st);

/* ---- writing ---- */

typedef struct mlxr_blob_write_params {
  const char *expected_digest; /* NULL: accept whatever the bytes hash to; else checked at commit */
  bool has_expected_size;      /* expected_size is meaningful */
  int64_t expected_size;       /* bytes; negative or over max_blob_bytes is refused at begin */
  bool resume;                 /* keep a "-partial" file across attempts; needs expected_digest */
} mlxr_blob_write_params;

/* Start a write. With resume, an existing partial file for the digest is re-hashed and continued
 * (one that is already longer than the expected size or the maximum is discarded); another live
 * writer of the same digest makes this fail with MLXR_ERR_IO. */
int mlxr_store_writer_begin(mlxr_store *st, const mlxr_blob_write_params *wp, mlxr_blob_writer **out, char *err,
                            size_t err_len);
/* Bytes already written (after a resume: where to continue). */
int64_t mlxr_blob_writer_offset(const mlxr_blob_writer *w);
/* Append n bytes. Going past the expected size or the maximum fails (MLXR_ERR_RANGE) and the
 * writer is spoiled: later writes fail and commit removes the temporary file. */
int mlxr_blob_writer_write(mlxr_blob_writer *w, const void *buf, size_t n, char *err, size_t err_len);
/* Finish: check size and digest, fsync, rename to the final name, fsync the directory. *out (may
 * be NULL) receives the digest. On a digest or size mismatch the temporary file is removed
 * (MLXR_ERR_FORMAT / MLXR_ERR_RANGE) and nothing appears under a final name. Frees w. */
int mlxr_blob_writer_commit(mlxr_blob_writer *w, mlxr_digest *out, char *err, size_t err_len);
/* Give up: a resumable writer's partial file stays for the next attempt (unless spoiled); a
 * one-shot writer's temporary file is removed. Frees w (NULL is fine). */
void mlxr_blob_writer_abort(mlxr_blob_writer *w);

/* One-shot writes. expected_digest may be NULL. */
int mlxr_store_put_buffer(mlxr_store *st, const void *data, size_t n, const char *expected_digest, mlxr_digest *out,
                          char *err, size_t err_len);
/* Reads fd from where it is to its end in 1 MiB chunks (EINTR-safe) and commits. wp may be NULL
 * (no expectations); wp->resume is refused here: a resumed write needs the writer API, since the
 * caller must learn the offset before it can ask for the remaining bytes. */
int mlxr_store_put_fd(mlxr_store *st, int fd, const mlxr_blob_write_params *wp, mlxr_digest *out, char *err,
                      size_t err_len);

/* ---- reading and removing (digest: either accepted form) ---- */

typedef struct mlxr_blob_stat {
  int64_t size;    /* bytes */
  int64_t mtime_s; /* last modification, seconds since the epoch */
} mlxr_blob_stat;

/* MLXR_OK and *out (may be NULL), MLXR_ERR_NOT_FOUND, or MLXR_ERR_INVALID for a bad digest. */
int mlxr_store_stat(mlxr_store *st, const char *digest, mlxr_blob_stat *out, char *err, size_t err_len);
/* A read-only descriptor of the blob (the caller closes it). */
int mlxr_store_open_blob(mlxr_store *st, const char *digest, int *fd_out, char *err, size_t err_len);
/* The blob's absolute path (for mmap by path), or MLXR_ERR_NOT_FOUND. */
int mlxr_store_blob_path(mlxr_store *st, const char *digest, char *buf, size_t buf_len, char *err, size_t err_len);
/* Re-hash the blob: MLXR_OK if its bytes hash to its name, MLXR_ERR_FORMAT if not. */
int mlxr_store_verify(mlxr_store *st, const char *digest, char *err, size_t err_len);
/* Unlink the blob and fsync blobs/: MLXR_OK or MLXR_ERR_NOT_FOUND. */
int mlxr_store_remove(mlxr_store *st, const char *digest, char *err, size_t err_len);

/* Every blob under a final name, in no particular order. *out is malloc'ed (the caller frees it;
 * NULL when *n is 0). Other files in blobs/ are not listed. */
int mlxr_store_list(mlxr_store *st, mlxr_digest **out, size_t *n, char *err, size_t err_len);

/* ---- cleaning up after crashes ---- */

typedef struct mlxr_store_sweep_report {
  int64_t n_removed;     /* temporary files removed */
  int64_t bytes_removed; /* their bytes */
  int64_t n_in_use;      /* temporary files skipped because a live writer holds them */
} mlxr_store_sweep_report;

/* Called once per removed temporary file with its name (inside blobs/) and size. */
typedef void (*mlxr_store_sweep_fn)(void *ctx, const char *name, int64_t size);

/* Remove the temporary files that no live writer holds: every one-shot "tmp-...-partial" (its
 * writer held it from creation to the end, so an unheld one is a crash's leftover) and every
 * resumable "sha256-...-partial" last modified at least min_age_s seconds ago (0: any age; a
 * younger one may still be resumed). on_removed may be NULL. */
int mlxr_store_sweep(mlxr_store *st, int64_t min_age_s, mlxr_store_sweep_fn on_removed, void *ctx,
                     mlxr_store_sweep_report *report, char *err, size_t err_len);

#endif
