/*
 * fuzz_manifest.c: libFuzzer harness for the registry's manifest and config readers
 * (daemon/registry/manifest.c): `mlxr pull` and /api/pull read manifests and config blobs from
 * whatever registry a name points at, so every byte of them is untrusted.
 *
 * Input: JSON text, read both as a manifest and as a config blob. Properties: parsing succeeds or
 * fails with a negative status and a message; a parsed manifest has 1..64 layers, each with a
 * "sha256:" digest of 64 lowercase hex digits and a size in range, and written back out
 * (mlxr_manifest_format) it reads back to the same config and layers; a parsed config has a
 * non-negative parameter count; no crash, leak or hang. Built and run by scripts/fuzz.sh (seeds:
 * tests/fuzz/corpus/fuzz_manifest/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "daemon/registry/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_blob(const mlxr_manifest_blob *b, const mlxr_manifest_limits *lim) {
  if (strncmp(b->digest, "sha256:", 7) != 0 || strlen(b->digest) != 71) abort();
  for (int i = 7; i < 71; i++) {
    const char c = b->digest[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) abort();
  }
  if (b->size < 0 || b->size > lim->max_blob_bytes) abort();
}

static int same_blob(const mlxr_manifest_blob *a, const mlxr_manifest_blob *b) {
  return a->kind == b->kind && a->size == b->size && strcmp(a->digest, b->digest) == 0 &&
         strcmp(a->media_type, b->media_type) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const mlxr_manifest_limits lim = mlxr_manifest_default_limits();
  mlxr_manifest m;
  char err[512] = "";
  int rc = mlxr_manifest_parse((const char *)data, size, &lim, &m, err, sizeof err);
  if (rc != MLXR_OK) {
    if (rc > 0 || err[0] == '\0' || m.layers || m.n_layers) abort();
  } else {
    if (m.n_layers < 1 || m.n_layers > lim.max_layers || m.config.kind != MLXR_LAYER_CONFIG) abort();
    check_blob(&m.config, &lim);
    for (int i = 0; i < m.n_layers; i++) check_blob(&m.layers[i], &lim);
    char *text = mlxr_manifest_format(&m);
    if (text) {
      mlxr_manifest back;
      if (mlxr_manifest_parse(text, strlen(text), &lim, &back, err, sizeof err) != MLXR_OK) abort();
      if (back.n_layers != m.n_layers || !same_blob(&back.config, &m.config)) abort();
      for (int i = 0; i < m.n_layers; i++)
        if (!same_blob(&back.layers[i], &m.layers[i])) abort();
      mlxr_manifest_free(&back);
      free(text);
    }
    mlxr_manifest_free(&m);
  }
  mlxr_image_config c;
  rc = mlxr_image_config_parse((const char *)data, size, &c, err, sizeof err);
  if (rc != MLXR_OK && (rc > 0 || err[0] == '\0')) abort();
  if (rc == MLXR_OK && c.parameter_count < 0) abort();
  return 0;
}
