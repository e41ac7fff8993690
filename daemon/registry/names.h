/*
 * names.h: model names and blob digests of the registry, validated before either can reach a path
 * or a SQL row.
 *
 * Model names follow Ollama's rules (types/model/name.go in ollama/ollama):
 *
 *   [host/][namespace/]model[:tag]      e.g. "llama3.2:1b", "me/tiny", "localhost:5000/me/tiny:v2"
 *
 *   part       first character        then                      length
 *   host       A-Z a-z 0-9 _          A-Z a-z 0-9 _ - . :       1..350   (':' for a port)
 *   namespace  A-Z a-z 0-9 _          A-Z a-z 0-9 _ -           1..80    (no '.')
 *   model      A-Z a-z 0-9 _          A-Z a-z 0-9 _ - .         1..80
 *   tag        A-Z a-z 0-9 _          A-Z a-z 0-9 _ - .         1..80
 *
 * The tag is what follows the last ':' when that ':' comes after the last '/' (so a host's port is
 * never read as a tag). Missing parts take the defaults registry.ollama.ai / library / latest (the
 * caller may pass other defaults, e.g. a configured registry host). A part promised by a separator
 * but empty ("a/:b", "m:") is an error, as is a fourth '/' part. An "http://" or "https://" prefix
 * is dropped when the name also has a host, as Ollama does. Stricter than current Ollama: ".."
 * anywhere is refused (older Ollama refused it too), so no part can ever spell a parent directory.
 * Since every part starts with a letter, digit or '_', no part can be "." or ".." or contain '/'.
 *
 * Case: names keep the case they were given, but two names are the same model when their parts
 * are equal ignoring ASCII case (Ollama's EqualFold); the catalog stores them with COLLATE NOCASE.
 *
 * Digests: only "sha256:" or "sha256-" followed by exactly 64 lowercase hex digits
 * (^sha256[:-][0-9a-f]{64}$) is accepted; anything else (uppercase, other lengths, dots, slashes,
 * other algorithms, trailing bytes) is refused before it is used. A valid digest is held as its 64
 * hex digits and written "sha256:<hex>" in the catalog and the API, "sha256-<hex>" as a file name.
 *
 * Everything here is pure: no allocation, no state, any thread.
 */
#ifndef MLXR_REGISTRY_NAMES_H
#define MLXR_REGISTRY_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MLXR_NAME_HOST_MAX 350 /* bytes of a host part */
#define MLXR_NAME_PART_MAX 80  /* bytes of a namespace, model or tag part */
/* Bytes of the longest canonical name "host/namespace/model:tag", without the NUL. */
#define MLXR_NAME_MAX (MLXR_NAME_HOST_MAX + 1 + MLXR_NAME_PART_MAX + 1 + MLXR_NAME_PART_MAX + 1 + MLXR_NAME_PART_MAX)

#define MLXR_NAME_DEFAULT_HOST "registry.ollama.ai"
#define MLXR_NAME_DEFAULT_NAMESPACE "library"
#define MLXR_NAME_DEFAULT_TAG "latest"

/* A parsed, valid model name; every part NUL-terminated and non-empty after parsing. */
typedef struct mlxr_model_name {
  char host[MLXR_NAME_HOST_MAX + 1];
  char ns[MLXR_NAME_PART_MAX + 1];
  char model[MLXR_NAME_PART_MAX + 1];
  char tag[MLXR_NAME_PART_MAX + 1];
} mlxr_model_name;

/* Defaults for the parts a name leaves out. NULL fields mean Ollama's defaults. */
typedef struct mlxr_name_defaults {
  const char *host;
  const char *ns;
  const char *tag;
} mlxr_name_defaults;

/* Parse and validate s. defaults may be NULL (Ollama's). On failure *out is zeroed and err says
 * which part is wrong and why (MLXR_ERR_INVALID). */
int mlxr_name_parse(const char *s, const mlxr_name_defaults *defaults, mlxr_model_name *out, char *err,
                    size_t err_len);

/* "host/namespace/model:tag" into buf (MLXR_NAME_MAX + 1 bytes always suffice). Returns the length
 * or MLXR_ERR_RANGE when buf is too small. */
int mlxr_name_format(const mlxr_model_name *n, char *buf, size_t buf_len);
/* The shortest form Ollama displays: "model:tag" under the default host and namespace,
 * "namespace/model:tag" under the default host, else the full form. */
int mlxr_name_format_short(const mlxr_model_name *n, char *buf, size_t buf_len);
/* The manifest path relative to a store root, "manifests/host/namespace/model/tag" (Ollama's
 * layout). Safe to join: no part is empty, ".", ".." or contains '/'. */
int mlxr_name_manifest_path(const mlxr_model_name *n, char *buf, size_t buf_len);
/* Parse s with defaults and write the canonical full form (convenience for lookups). */
int mlxr_name_canonical(const char *s, const mlxr_name_defaults *defaults, char *buf, size_t buf_len, char *err,
                        size_t err_len);

/* Part-by-part comparison ignoring ASCII case: <0, 0, >0 (host, then namespace, model, tag). */
int mlxr_name_compare(const mlxr_model_name *a, const mlxr_model_name *b);
bool mlxr_name_equal(const mlxr_model_name *a, const mlxr_model_name *b);

/* ---- digests ---- */

#define MLXR_DIGEST_HEX_LEN 64
#define MLXR_DIGEST_STR_SIZE (7 + MLXR_DIGEST_HEX_LEN + 1) /* "sha256:" + hex + NUL */

typedef struct mlxr_digest {
  char hex[MLXR_DIGEST_HEX_LEN + 1]; /* 64 lowercase hex digits + NUL */
} mlxr_digest;

/* Accept exactly ^sha256[:-][0-9a-f]{64}$; anything else is MLXR_ERR_INVALID with a message that
 * quotes (a printable, shortened copy of) the input. */
int mlxr_digest_parse(const char *s, mlxr_digest *out, char *err, size_t err_len);
/* From the 32 raw bytes of a SHA-256. */
void mlxr_digest_from_bytes(const unsigned char bytes[32], mlxr_digest *out);
/* "sha256:<hex>" (catalog, API). out has MLXR_DIGEST_STR_SIZE bytes. */
void mlxr_digest_str(const mlxr_digest *d, char out[MLXR_DIGEST_STR_SIZE]);
/* "sha256-<hex>" (file name under blobs/). out has MLXR_DIGEST_STR_SIZE bytes. */
void mlxr_digest_filename(const mlxr_digest *d, char out[MLXR_DIGEST_STR_SIZE]);
bool mlxr_digest_equal(const mlxr_digest *a, const mlxr_digest *b);

/* A printable, shortened copy of untrusted input for error messages: bytes outside 0x20..0x7e
 * become \xNN, quotes and backslashes are escaped, and at most ~60 input bytes are shown ("..."
 * marks a cut). Always NUL-terminates buf (buf_len >= 1). Returns buf. */
const char *mlxr_registry_quote(const char *s, char *buf, size_t buf_len);

#endif
