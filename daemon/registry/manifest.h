/*
 * manifest.h: the two JSON documents of Ollama's registry protocol, read (and, for push, written)
 * with every field checked before anything is downloaded: the image manifest and the config blob.
 *
 * The manifest (Docker's image manifest v2, schema 2, which is also the OCI image manifest's
 * shape), as GET /v2/<namespace>/<model>/manifests/<tag> returns it:
 *
 *   { "schemaVersion": 2,
 *     "mediaType": "application/vnd.docker.distribution.manifest.v2+json",        (optional)
 *     "config": { "mediaType": "application/vnd.docker.container.image.v1+json",
 *                 "digest": "sha256:<64 hex>", "size": 485 },
 *     "layers": [ { "mediaType": "application/vnd.ollama.image.model",
 *                   "digest": "sha256:<64 hex>", "size": 1321082688 }, ... ] }
 *
 * Ollama's layer media types (application/vnd.ollama.image.<kind>) and what they hold:
 *   model      the weights (GGUF); one or more (a split GGUF has several)    required
 *   projector  a vision projector (GGUF)                                     any number
 *   adapter    a LoRA adapter (GGUF)                                         any number
 *   template   the chat template (Go template text)                          at most one
 *   system     the system prompt (text)                                      at most one
 *   params     default options (a JSON object, e.g. {"stop": [...]})          at most one
 *   messages   example messages (a JSON array of {role, content})            at most one
 *   license    a license text                                                any number
 * Decided: any other layer media type (Ollama's retired .prompt and .embed, its safetensors
 * .tensor layers, anything new) makes the whole manifest refused with MLXR_ERR_UNSUPPORTED naming
 * the type, rather than downloaded and ignored: a model we store is one we can serve and push back
 * unchanged, and a clear refusal beats a model that silently lacks a part.
 *
 * Checks (each failure is MLXR_ERR_INVALID, or MLXR_ERR_RANGE for a size, with a message naming
 * the field and quoting the value): the text is at most limits.max_manifest_bytes, is JSON, and
 * is an object; schemaVersion is 2; a manifest mediaType, when present, is Docker's v2 or OCI's
 * image manifest; the config's mediaType is Docker's or OCI's image config; every digest is
 * exactly "sha256:" and 64 lowercase hex digits (so no separator, dot or other algorithm can reach
 * a path); every size is a JSON integer in 0..limits.max_blob_bytes; text-like blobs (config,
 * template, system, messages, license) are at most limits.max_text_bytes and params at most
 * limits.max_params_bytes, so nothing large is downloaded into memory; 1..limits.max_layers
 * layers; single-valued kinds not repeated; one digest never listed with two sizes; each key this
 * code reads appears once in its object (a duplicate could be read differently by another parser).
 * Keys this code does not read ("from", "annotations", ...) are ignored.
 *
 * The config blob ({"model_format": "gguf", "model_family": "llama", "model_type": "8.0B",
 * "file_type": "Q4_K_M", ...}) is read by mlxr_image_config_parse: every field optional, checked
 * when present (printable, short); model_type becomes a parameter count when it reads as a number
 * with a K/M/B/T suffix.
 *
 * Everything here is pure (no I/O, no global state), so any thread may call it; results are owned
 * by the caller.
 */
#ifndef MLXR_REGISTRY_MANIFEST_H
#define MLXR_REGISTRY_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/registry/names.h"

#define MLXR_MEDIA_MANIFEST_DOCKER "application/vnd.docker.distribution.manifest.v2+json"
#define MLXR_MEDIA_MANIFEST_OCI "application/vnd.oci.image.manifest.v1+json"
#define MLXR_MEDIA_CONFIG_DOCKER "application/vnd.docker.container.image.v1+json"
#define MLXR_MEDIA_CONFIG_OCI "application/vnd.oci.image.config.v1+json"
#define MLXR_MEDIA_OLLAMA_PREFIX "application/vnd.ollama.image."

typedef enum mlxr_layer_kind {
  MLXR_LAYER_CONFIG = 0, /* the config blob (only in mlxr_manifest.config) */
  MLXR_LAYER_MODEL,
  MLXR_LAYER_PROJECTOR,
  MLXR_LAYER_ADAPTER,
  MLXR_LAYER_TEMPLATE,
  MLXR_LAYER_SYSTEM,
  MLXR_LAYER_PARAMS,
  MLXR_LAYER_MESSAGES,
  MLXR_LAYER_LICENSE,
  MLXR_LAYER_KIND_COUNT
} mlxr_layer_kind;

/* The media type of a kind ("application/vnd.ollama.image.model", Docker's config type). */
const char *mlxr_layer_media_type(mlxr_layer_kind k);
/* The kind of a media type; MLXR_ERR_UNSUPPORTED for one this code does not know. */
int mlxr_layer_kind_parse(const char *media_type, mlxr_layer_kind *out);
/* Small blobs are read into memory (config, template, system, params, messages, license); the
 * others (model, projector, adapter) are streamed into the store. */
bool mlxr_layer_kind_is_text(mlxr_layer_kind k);

#define MLXR_MANIFEST_MEDIA_MAX 127

typedef struct mlxr_manifest_blob {
  mlxr_layer_kind kind;
  char media_type[MLXR_MANIFEST_MEDIA_MAX + 1]; /* as the manifest spelled it */
  char digest[MLXR_DIGEST_STR_SIZE];            /* "sha256:<64 hex>" */
  int64_t size;                                 /* bytes, 0..limits.max_blob_bytes */
} mlxr_manifest_blob;

typedef struct mlxr_manifest {
  mlxr_manifest_blob config;
  mlxr_manifest_blob *layers; /* [n_layers], in manifest order; malloc'ed */
  int n_layers;
} mlxr_manifest;

typedef struct mlxr_manifest_limits {
  int64_t max_manifest_bytes; /* the manifest's JSON text (default 1 MiB) */
  int max_layers;             /* layers (default 64) */
  int64_t max_blob_bytes;     /* one blob (default 1 TiB) */
  int64_t max_text_bytes;     /* config, template, system, messages, license (default 1 MiB) */
  int64_t max_params_bytes;   /* params (default 64 KiB, the catalog's limit) */
} mlxr_manifest_limits;

mlxr_manifest_limits mlxr_manifest_default_limits(void);

/* Parse and check json[0..len) (need not be NUL-terminated). On failure *out is zeroed. limits may
 * be NULL (the defaults). */
int mlxr_manifest_parse(const char *json, size_t len, const mlxr_manifest_limits *limits, mlxr_manifest *out,
                        char *err, size_t err_len);
void mlxr_manifest_free(mlxr_manifest *m);

/* The manifest as JSON text (Docker v2 media type, schemaVersion 2), for a push. malloc'ed; NULL
 * when out of memory. */
char *mlxr_manifest_format(const mlxr_manifest *m);

/* ---- the config blob ---- */

#define MLXR_IMAGE_CONFIG_FIELD_MAX 64

typedef struct mlxr_image_config {
  char model_format[MLXR_IMAGE_CONFIG_FIELD_MAX + 1]; /* "gguf", "safetensors"; "" when absent */
  char model_family[MLXR_IMAGE_CONFIG_FIELD_MAX + 1]; /* e.g. "llama"; "" when absent */
  char model_type[MLXR_IMAGE_CONFIG_FIELD_MAX + 1];   /* e.g. "8.0B"; "" when absent */
  char file_type[MLXR_IMAGE_CONFIG_FIELD_MAX + 1];    /* e.g. "Q4_K_M"; "" when absent */
  int64_t parameter_count;                            /* from model_type; 0 when unknown */
} mlxr_image_config;

/* Parse json[0..len): a JSON object whose four string fields above, when present, are printable
 * ASCII of at most 64 bytes. */
int mlxr_image_config_parse(const char *json, size_t len, mlxr_image_config *out, char *err, size_t err_len);
/* "8.0B" -> 8000000000, "137M" -> 137000000, "1.5k" -> 1500; -1 when s does not read so. */
int64_t mlxr_parameter_size_parse(const char *s);
/* The other way, as Ollama shows it: 8030261248 -> "8.0B", 137000000 -> "137M", 0 -> "". */
void mlxr_parameter_size_format(int64_t n, char *buf, size_t buf_len);

#endif
