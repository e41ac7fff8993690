/*
 * push.h: pushing a catalog model to a registry that speaks Ollama's protocol (`mlxr push`,
 * /api/push): the model's blobs, then its manifest, under the model's own name (to push under
 * another name, copy the model first, as with Ollama).
 *
 * The protocol (the OCI distribution API's upload flow, anonymous):
 *   for each blob (the layers, then the config):
 *     HEAD <base>/v2/<namespace>/<model>/blobs/<digest>      200: already there, skip it
 *     POST <base>/v2/<namespace>/<model>/blobs/uploads/      202, Location: <upload URL>
 *     PATCH <upload URL>, the blob's bytes                   202, Location: <next upload URL>
 *     PUT <upload URL>?digest=<digest> (empty body)          201: the registry checked the digest
 *   PUT <base>/v2/<namespace>/<model>/manifests/<tag>, Content-Type: Docker's manifest v2 -> 201
 * Upload Locations may be relative or absolute; each is checked against the URL policy of
 * transfer.h before it is used. The manifest is rebuilt from the catalog row: its blob with the
 * config media type is the config, its other blobs are the layers in their order, its adapters are
 * adapter layers; a model without a config blob cannot be pushed (MLXR_ERR_UNSUPPORTED). Blobs go
 * up in one PATCH each, read from the store (not held in memory).
 *
 * Progress, as Ollama's /api/push: {"status": "retrieving manifest"}, then per blob
 * {"status": "pushing <12 hex>", "digest", "total", "completed"} (at the start and the end of each
 * blob's upload), {"status": "pushing manifest"}, {"status": "success"}. The callback returning
 * non-zero cancels (MLXR_ERR_IO, "cancelled").
 *
 * Ownership and threads: as pull.h (borrows store and catalog for the call, blocks the calling
 * thread, which must be the catalog's).
 */
#ifndef MLXR_REGISTRY_PUSH_H
#define MLXR_REGISTRY_PUSH_H

#include "daemon/registry/pull.h"

typedef struct mlxr_push_stats {
  int64_t bytes_uploaded; /* blob bytes sent */
  int n_blobs;            /* blobs of the model */
  int n_uploaded;         /* of them, uploaded (the others were already there) */
  char manifest_digest[MLXR_DIGEST_STR_SIZE]; /* SHA-256 of the manifest pushed */
} mlxr_push_stats;

/* Push the catalog model `name`. params as for a pull (base_url, transfer, progress; the manifest
 * limits do not apply); may be NULL. stats may be NULL. */
int mlxr_push_model(mlxr_store *st, mlxr_catalog *cat, const char *name, const mlxr_pull_params *params,
                    mlxr_push_stats *stats, char *err, size_t err_len);

#endif
