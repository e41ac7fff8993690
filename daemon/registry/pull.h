/*
 * pull.h: pulling models into the store (store.h) and the catalog (catalog.h): from a registry
 * that speaks Ollama's protocol (`mlxr pull llama3.2:1b`, /api/pull), or from a plain http(s) URL
 * of a single GGUF file.
 *
 * The registry protocol (the OCI distribution API as Ollama uses it, anonymous):
 *   1. GET <base>/v2/<namespace>/<model>/manifests/<tag>
 *        Accept: application/vnd.docker.distribution.manifest.v2+json
 *      -> the manifest (manifest.h says what is checked); a Docker-Content-Digest header, when
 *      sent, must match the SHA-256 of the bytes received.
 *   2. GET <base>/v2/<namespace>/<model>/blobs/<digest> for every blob not already in the store,
 *      redirects followed (a registry may send blobs from a CDN); a "-partial" file left by an
 *      earlier attempt is continued with "Range: bytes=<offset>-" (a 206 must start at that offset;
 *      a 200 that ignores the Range has its first <offset> bytes skipped). A dropped or stalled
 *      connection is retried from where it stopped, up to max_retries times with a doubling delay.
 *      Every blob is hashed while written and checked against its digest and size before it gets
 *      its final name (store.h), so a blob whose bytes do not match is never stored.
 *   <base> is params.base_url when given (e.g. "http://127.0.0.1:5000" for a local registry), else
 *   "https://<host of the name>" ("http://" with transfer.insecure).
 *
 * Order, and what a failure leaves behind: the small blobs (config, template, system, params,
 * messages, license; each at most limits.max_text_bytes) are fetched into memory first and checked
 * (the config must parse, params must be a JSON object, template and system must hold no NUL
 * byte, messages must be a JSON array); then the large ones (model, projector, adapter) are
 * streamed into the store; then the small ones are written to the store; then one catalog
 * transaction adds the model (replacing one of the same name). So:
 *   - a refused manifest, or refused small blob, changes nothing at all;
 *   - a large blob whose bytes are wrong is removed (never under its final name) and the pull
 *     fails with no catalog row;
 *   - a failed transfer (dropped, stalled, cut short, or an error status such as 404) keeps its
 *     "-partial" file, holding the blob's first bytes or none, so the next pull of the same blob
 *     continues it (mlxr_store_sweep removes stale ones);
 *   - large blobs that were complete and verified when a later step failed stay in the store
 *     without a row, as Ollama keeps them, so a retry does not download them again;
 *     mlxr_catalog_gc (with an age) removes them if no retry comes.
 *
 * What the catalog row holds: the layers in manifest order except adapters, then the config blob,
 * each with its media type and size; adapter layers as adapters (scale 1.0, named by digest);
 * format, family (architecture), parameter count (from model_type) and quantization (file_type)
 * from the config; the context length (and anything the config lacks) from the first model
 * layer's GGUF metadata when it reads as GGUF; the template layer as the chat template (Ollama's Go
 * template syntax, as the registry gives it), the system layer as the system prompt, the params
 * layer as the default parameters. License and messages stay blobs (the catalog has no field).
 *
 * A URL pull (mlxr_pull_url) downloads one file (resumable across calls only when the caller
 * gives its expected digest, since the partial file is named by it; within a call a dropped
 * connection is always continued), checks that it is a GGUF the reader accepts (else the new blob
 * is removed), reads architecture, parameter count, quantization and context length from its
 * metadata, writes a config blob like Ollama's for it (so the model can be pushed), and adds the
 * model under the caller's name with blobs [model, config].
 *
 * Progress, with Ollama's /api/pull semantics (so the daemon can stream each as an NDJSON line):
 *   {"status": "pulling manifest"}
 *   {"status": "pulling <first 12 hex of the digest>", "digest": "sha256:...", "total": T,
 *    "completed": C}            per blob, repeatedly (at most every progress_interval_ms, plus
 *                               the first and the last), completed = T for a blob already stored
 *   {"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}
 * A URL pull reports "pulling <12 hex>" when the digest is known, else "pulling file" (total 0
 * while the length is unknown). The callback returning non-zero cancels the pull
 * (MLXR_ERR_IO, "cancelled"); partial files stay for a resume.
 *
 * Ownership and threads: a pull borrows the store and catalog for the call and holds nothing
 * after it; it blocks the calling thread, which must be the catalog's (catalog.h); the callback is
 * called on that thread. Two pulls of the same blob at once (two processes, two threads with their
 * own catalogs) do not corrupt it: the second finds the partial file locked and fails (MLXR_ERR_IO).
 */
#ifndef MLXR_REGISTRY_PULL_H
#define MLXR_REGISTRY_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/registry/catalog.h"
#include "daemon/registry/manifest.h"
#include "daemon/registry/names.h"
#include "daemon/registry/store.h"
#include "daemon/registry/transfer.h"

/* One progress report; strings are valid only during the callback. */
typedef struct mlxr_registry_progress {
  const char *status; /* see above */
  const char *digest; /* "sha256:<hex>" while a blob moves, else NULL */
  int64_t total;      /* bytes of that blob (0 when unknown or not a blob report) */
  int64_t completed;  /* bytes of it stored so far */
} mlxr_registry_progress;

/* Non-zero cancels. */
typedef int (*mlxr_registry_progress_fn)(void *ctx, const mlxr_registry_progress *p);

typedef struct mlxr_pull_params {
  const char *base_url;             /* "scheme://host[:port]"; NULL: from the name's host */
  mlxr_name_defaults name_defaults; /* for names without host/namespace/tag (NULLs: Ollama's) */
  mlxr_manifest_limits limits;      /* manifest and blob caps (mlxr_manifest_default_limits) */
  mlxr_transfer_params transfer;    /* timeouts, redirects, insecure (Ollama's --insecure) */
  int max_retries;                  /* per blob, after a dropped, stalled or short transfer (6) */
  int retry_delay_ms;               /* before the first retry; doubles, capped at 30 s (500) */
  int progress_interval_ms;         /* least time between two reports of one blob (100) */
  mlxr_registry_progress_fn progress; /* may be NULL */
  void *progress_ctx;
} mlxr_pull_params;

mlxr_pull_params mlxr_pull_default_params(void);

/* What a pull did (for logs and tests). */
typedef struct mlxr_pull_stats {
  int64_t bytes_downloaded; /* body bytes received into blobs (skipped bytes of a 200 not counted) */
  int64_t bytes_present;    /* bytes of blobs already complete in the store */
  int64_t bytes_resumed;    /* bytes of partial files continued */
  int n_blobs;              /* distinct blobs of the model */
  int n_retries;            /* transfer attempts after the first, all blobs */
  char manifest_digest[MLXR_DIGEST_STR_SIZE]; /* SHA-256 of the manifest's bytes ("" for a URL pull) */
  char canonical_name[MLXR_NAME_MAX + 1];     /* the catalog name */
} mlxr_pull_stats;

/* Pull `name` (any form mlxr_name_parse accepts) from its registry. params and stats may be NULL. */
int mlxr_pull_model(mlxr_store *st, mlxr_catalog *cat, const char *name, const mlxr_pull_params *params,
                    mlxr_pull_stats *stats, char *err, size_t err_len);

/* Pull the GGUF at url as model `name`; expected_digest ("sha256:<hex>", either form) may be NULL.
 * The URL policy (transfer.h) applies, base_url and limits.max_manifest_bytes do not; the file may
 * be at most limits.max_blob_bytes. */
int mlxr_pull_url(mlxr_store *st, mlxr_catalog *cat, const char *url, const char *name, const char *expected_digest,
                  const mlxr_pull_params *params, mlxr_pull_stats *stats, char *err, size_t err_len);

#endif
