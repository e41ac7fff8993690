/*
 * pull_impl.h: what the pull's files share (not for use outside daemon/registry).
 *
 * File map:
 *   pull.c       mlxr_pull_model: the registry protocol's steps, the manifest, the catalog row
 *   pull_url.c   mlxr_pull_url: one GGUF from a URL, with a config blob written for it
 *   push.c       mlxr_push_model (push.h): the same protocol's upload flow
 *   pull_blob.c  moving one blob: into the store (resumable, retried) or into memory; progress
 *   gguf_meta.c  what a GGUF blob says about its model (architecture, size, quantization, context)
 *
 * A pull_ctx lives on the stack of one mlxr_pull_* call and carries its parameters, its counters
 * and the time of the last progress report; nothing outlives the call.
 */
#ifndef MLXR_REGISTRY_PULL_IMPL_H
#define MLXR_REGISTRY_PULL_IMPL_H

#include "daemon/registry/pull.h"

typedef struct pull_ctx {
  mlxr_pull_params p;
  mlxr_pull_stats *stats;  /* never NULL inside (points at a local when the caller passed NULL) */
  int64_t last_report_ms;  /* monotonic time of the last blob report */
  char *err;
  size_t err_len;
} pull_ctx;

/* The registry's base URL "scheme://host[:port]" (no trailing '/'): p->base_url, else https (http
 * with insecure) and the name's host; checked against the URL policy (transfer.h). */
int pull_base_url(const mlxr_pull_params *p, const mlxr_model_name *name, char *buf, size_t len, char *err,
                  size_t err_len);

/* Monotonic milliseconds. */
int64_t pull_now_ms(void);

/* Report a plain status (no blob). MLXR_ERR_IO with "cancelled" when the callback asks to stop. */
int pull_status(pull_ctx *pc, const char *status);
/* Report a blob's progress; throttled to progress_interval_ms unless force. digest may be NULL
 * (status "pulling file"). */
int pull_blob_progress(pull_ctx *pc, const char *digest, int64_t total, int64_t completed, bool force);

/* Download url into the store. digest ("sha256:<hex>") may be NULL (no resume across calls, no
 * expected digest); size -1 when unknown; magic (NULL: none) the bytes the blob must start with. *out receives the stored blob's digest. On failure
 * nothing is under a final name; a resumable partial file stays unless its bytes were wrong. */
int pull_blob_to_store(pull_ctx *pc, mlxr_store *st, const char *url, const char *digest, int64_t size,
                       const char *magic, mlxr_digest *out);
/* Download url (size bytes, digest "sha256:<hex>") into memory: *buf (malloc'ed, NUL-terminated,
 * exactly size bytes before the NUL) once its length and SHA-256 match. */
int pull_blob_to_memory(pull_ctx *pc, const char *url, const char *digest, int64_t size, char **buf);
/* Read a stored blob of size bytes into memory (malloc'ed, NUL-terminated). */
int pull_read_stored(pull_ctx *pc, mlxr_store *st, const char *digest, int64_t size, char **buf);
/* "sha256:<hex>" of data[0..n) into out (MLXR_DIGEST_STR_SIZE bytes). */
int pull_sha256(const void *data, size_t n, char out[MLXR_DIGEST_STR_SIZE]);

/* What a GGUF says about its model; fields stay 0 / "" when the file does not say. */
typedef struct pull_gguf_meta {
  char architecture[65];   /* general.architecture */
  char quantization[65];   /* general.file_type as llama.cpp names it ("Q4_K_M") */
  int64_t parameter_count; /* elements of all tensors */
  int64_t context_length;  /* <architecture>.context_length */
} pull_gguf_meta;

/* Open the stored blob as GGUF and read its metadata: MLXR_OK, or the reader's error. */
int pull_gguf_read_meta(mlxr_store *st, const char *digest, pull_gguf_meta *out, char *err, size_t err_len);

#endif
