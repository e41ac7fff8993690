/*
 * pull_url.c: mlxr_pull_url, one GGUF file from a plain http(s) URL into the store and the catalog
 * (what it checks and what the row holds are in pull.h).
 *
 * How it works: the name, the URL (policy of transfer.h) and the optional expected digest are
 * checked first; the file is streamed into the store (pull_blob.c), refused at its first bytes if
 * they are not the GGUF magic, and verified against the expected digest when one was given; the
 * stored blob is then opened with the GGUF reader, which checks the whole header, and its metadata
 * gives the row's architecture, parameter count, quantization and context length. A config blob
 * like the one Ollama writes for a model it creates is stored next to it, so the model looks like
 * any pulled one (and can be pushed). If the file is not a GGUF the reader accepts, the blob is
 * removed again unless some catalog row references it (checked under the catalog's write lock).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"
#include "daemon/registry/catalog_impl.h"
#include "daemon/registry/pull_impl.h"

/* Ollama's config blob for a GGUF model, as JSON text (malloc'ed; NULL when out of memory). */
static char *config_json(const pull_gguf_meta *gm, const char *model_digest) {
  cJSON *root = cJSON_CreateObject();
  char psize[32];
  mlxr_parameter_size_format(gm->parameter_count, psize, sizeof psize);
  cJSON *fams = NULL, *rootfs = NULL, *ids = NULL;
  char *text = NULL;
  if (!root || !cJSON_AddStringToObject(root, "model_format", "gguf") ||
      !cJSON_AddStringToObject(root, "model_family", gm->architecture) ||
      !(fams = cJSON_AddArrayToObject(root, "model_families")) ||
      !cJSON_AddStringToObject(root, "model_type", psize) ||
      !cJSON_AddStringToObject(root, "file_type", gm->quantization) ||
      !(rootfs = cJSON_AddObjectToObject(root, "rootfs")) || !cJSON_AddStringToObject(rootfs, "type", "layers") ||
      !(ids = cJSON_AddArrayToObject(rootfs, "diff_ids"))) {
    goto out;
  }
  if (gm->architecture[0]) cJSON_AddItemToArray(fams, cJSON_CreateString(gm->architecture));
  cJSON_AddItemToArray(ids, cJSON_CreateString(model_digest));
  text = cJSON_PrintUnformatted(root);
out:
  cJSON_Delete(root);
  return text;
}

/* Removes the blob unless a catalog row references it (a failed URL pull's own download). */
static void drop_unreferenced(mlxr_catalog *cat, const char *digest) {
  cat_digests ds = {0};
  if (cat_digests_add(&ds, digest, NULL, 0) == MLXR_OK) cat_remove_unreferenced(cat, &ds, NULL, NULL, 0);
  cat_digests_free(&ds);
}

int mlxr_pull_url(mlxr_store *st, mlxr_catalog *cat, const char *url, const char *name, const char *expected_digest,
                  const mlxr_pull_params *params, mlxr_pull_stats *stats, char *err, size_t err_len) {
  mlxr_pull_stats local;
  pull_ctx pc = {.p = params ? *params : mlxr_pull_default_params(),
                 .stats = stats ? stats : &local,
                 .err = err,
                 .err_len = err_len};
  memset(pc.stats, 0, sizeof *pc.stats);
  int rc = mlxr_name_canonical(name, &pc.p.name_defaults, pc.stats->canonical_name, sizeof pc.stats->canonical_name,
                               err, err_len);
  if (rc < 0) return rc;
  if ((rc = mlxr_transfer_check_url(url, pc.p.transfer.insecure, err, err_len)) < 0) return rc;
  char want[MLXR_DIGEST_STR_SIZE] = "";
  if (expected_digest) {
    mlxr_digest d;
    if ((rc = mlxr_digest_parse(expected_digest, &d, err, err_len)) < 0) return rc;
    mlxr_digest_str(&d, want);
  }
  pc.stats->n_blobs = 2;

  /* the file */
  mlxr_digest got;
  mlxr_blob_stat bs;
  if (want[0] && mlxr_store_stat(st, want, &bs, NULL, 0) == MLXR_OK) {
    pc.stats->bytes_present += bs.size;
    mlxr_digest_parse(want, &got, NULL, 0);
    rc = pull_blob_progress(&pc, want, bs.size, bs.size, true);
  } else {
    rc = pull_blob_to_store(&pc, st, url, want[0] ? want : NULL, -1, "GGUF", &got);
  }
  if (rc < 0) return rc;
  char model_digest[MLXR_DIGEST_STR_SIZE];
  mlxr_digest_str(&got, model_digest);
  if ((rc = pull_status(&pc, "verifying sha256 digest")) < 0) return rc;
  pull_gguf_meta gm;
  char why[512];
  if ((rc = pull_gguf_read_meta(st, model_digest, &gm, why, sizeof why)) < 0) {
    drop_unreferenced(cat, model_digest);
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s is not a usable GGUF file: %s", url, why);
  }

  /* its config blob, and the row */
  char *cfg = config_json(&gm, model_digest);
  if (!cfg) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  mlxr_digest cfg_digest;
  rc = mlxr_store_put_buffer(st, cfg, strlen(cfg), NULL, &cfg_digest, err, err_len);
  free(cfg);
  if (rc < 0) return rc;
  if ((rc = pull_status(&pc, "writing manifest")) < 0) return rc;
  mlxr_blob_ref blobs[2] = {0};
  snprintf(blobs[0].digest, sizeof blobs[0].digest, "%s", model_digest);
  snprintf(blobs[0].media_type, sizeof blobs[0].media_type, "%s", mlxr_layer_media_type(MLXR_LAYER_MODEL));
  mlxr_digest_str(&cfg_digest, blobs[1].digest);
  snprintf(blobs[1].media_type, sizeof blobs[1].media_type, "%s", mlxr_layer_media_type(MLXR_LAYER_CONFIG));
  const mlxr_model_spec sp = {.name = pc.stats->canonical_name,
                              .format = MLXR_MODEL_FORMAT_GGUF,
                              .architecture = gm.architecture[0] ? gm.architecture : NULL,
                              .parameter_count = gm.parameter_count,
                              .quantization = gm.quantization[0] ? gm.quantization : NULL,
                              .context_length = gm.context_length,
                              .blobs = blobs,
                              .n_blobs = 2};
  if ((rc = mlxr_catalog_add(cat, &sp, why, sizeof why)) < 0) {
    return mlxr_errf(err, err_len, rc, "cannot add %s to the catalog: %s", sp.name, why);
  }
  (void)pull_status(&pc, "success");
  return MLXR_OK;
}
