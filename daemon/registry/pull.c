/*
 * pull.c: mlxr_pull_model, a model from a registry that speaks Ollama's protocol into the store
 * and the catalog (the protocol, the order of the steps and what a failure leaves behind are in
 * pull.h).
 *
 * How it works, step by step (each a function below):
 *   resolve_target  the name parsed, the base URL chosen and checked against the URL policy
 *   fetch_manifest  GET .../manifests/<tag>, bounded, its digest computed (and checked against
 *                   Docker-Content-Digest when sent), then parsed and checked (manifest.c)
 *   fetch_texts     the config and text layers into memory (from the store when already there),
 *                   then their contents checked
 *   fetch_large     the model, projector and adapter layers streamed into the store
 *   store_texts     the small blobs written to the store
 *   add_to_catalog  one catalog transaction with the row and its blob references
 * A pull_job holds what the steps share; it lives on the stack of one call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"
#include "daemon/registry/pull_impl.h"

mlxr_pull_params mlxr_pull_default_params(void) {
  return (mlxr_pull_params){.base_url = NULL,
                            .name_defaults = {0},
                            .limits = mlxr_manifest_default_limits(),
                            .transfer = mlxr_transfer_default_params(),
                            .max_retries = 6,
                            .retry_delay_ms = 500,
                            .progress_interval_ms = 100,
                            .progress = NULL,
                            .progress_ctx = NULL};
}

typedef struct pull_job {
  pull_ctx pc;
  mlxr_store *st;
  mlxr_catalog *cat;
  mlxr_model_name name;
  char base[512];        /* "scheme://host[:port]" without a trailing '/' */
  mlxr_manifest m;
  char **texts;          /* [n_layers + 1]: contents of text layers (index n_layers: the config) */
  mlxr_image_config cfg;
} pull_job;

static void job_free(pull_job *j) {
  if (j->texts) {
    for (int i = 0; i <= j->m.n_layers; i++) free(j->texts[i]);
    free(j->texts);
  }
  mlxr_manifest_free(&j->m);
}

static const mlxr_manifest_blob *job_blob(const pull_job *j, int i) {
  return i == j->m.n_layers ? &j->m.config : &j->m.layers[i];
}

static int blob_url(const pull_job *j, const char *digest, char *buf, size_t len) {
  int n = snprintf(buf, len, "%s/v2/%s/%s/blobs/%s", j->base, j->name.ns, j->name.model, digest);
  return n > 0 && (size_t)n < len ? MLXR_OK : MLXR_ERR_RANGE;
}

int pull_base_url(const mlxr_pull_params *p, const mlxr_model_name *name, char *buf, size_t len, char *err,
                  size_t err_len) {
  int n;
  if (p->base_url) {
    size_t k = strlen(p->base_url);
    while (k > 0 && p->base_url[k - 1] == '/') k--;
    n = snprintf(buf, len, "%.*s", (int)k, p->base_url);
  } else {
    n = snprintf(buf, len, "%s://%s", p->transfer.insecure ? "http" : "https", name->host);
  }
  if (n < 0 || (size_t)n >= len) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "base URL too long");
  return mlxr_transfer_check_url(buf, p->transfer.insecure, err, err_len);
}

/* ---- steps ---- */

static int resolve_target(pull_job *j, const char *name) {
  pull_ctx *pc = &j->pc;
  int rc = mlxr_name_parse(name, &pc->p.name_defaults, &j->name, pc->err, pc->err_len);
  if (rc < 0) return rc;
  if (mlxr_name_format(&j->name, pc->stats->canonical_name, sizeof pc->stats->canonical_name) < 0) {
    return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_RANGE, "model name too long");
  }
  return pull_base_url(&pc->p, &j->name, j->base, sizeof j->base, pc->err, pc->err_len);
}

static int fetch_manifest(pull_job *j) {
  pull_ctx *pc = &j->pc;
  char url[1024], q[256];
  int n = snprintf(url, sizeof url, "%s/v2/%s/%s/manifests/%s", j->base, j->name.ns, j->name.model, j->name.tag);
  if (n < 0 || (size_t)n >= sizeof url) return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_RANGE, "URL too long");
  const mlxr_transfer_request req = {.method = "GET",
                                     .url = url,
                                     .accept = MLXR_MEDIA_MANIFEST_DOCKER,
                                     .follow_redirects = true,
                                     .body_fd = -1,
                                     .body_max = (size_t)pc->p.limits.max_manifest_bytes};
  mlxr_transfer_response r;
  int rc = MLXR_ERR_IO;
  for (int attempt = 0; attempt <= pc->p.max_retries && rc == MLXR_ERR_IO; attempt++) {
    if (attempt > 0) pc->stats->n_retries++;
    rc = mlxr_transfer_do(&pc->p.transfer, &req, &r, pc->err, pc->err_len);
    if (rc == MLXR_ERR_IO && attempt < pc->p.max_retries) mlxr_transfer_response_clear(&r);
  }
  if (rc == MLXR_ERR_RANGE) {
    rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_RANGE, "manifest of %s is over the limit of %lld bytes",
                   pc->stats->canonical_name, (long long)pc->p.limits.max_manifest_bytes);
  } else if (rc == MLXR_OK && r.status == 404) {
    rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_NOT_FOUND, "model \"%s\" not found in the registry at %s",
                   pc->stats->canonical_name, j->base);
  } else if (rc == MLXR_OK && (r.status == 401 || r.status == 403)) {
    rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_UNSUPPORTED,
                   "the registry at %s wants authentication (HTTP %d), which MLXR does not do yet", j->base, r.status);
  } else if (rc == MLXR_OK && r.status != 200) {
    rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_IO, "manifest request to %s: HTTP %d: %s", url, r.status,
                   mlxr_registry_quote(r.body ? r.body : "", q, sizeof q));
  }
  if (rc == MLXR_OK && pull_sha256(r.body ? r.body : "", r.body_len, pc->stats->manifest_digest) < 0) {
    rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_IO, "SHA-256 failed");
  }
  if (rc == MLXR_OK && r.docker_content_digest && strcmp(r.docker_content_digest, pc->stats->manifest_digest) != 0) {
    rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_FORMAT,
                   "manifest refused: the registry says its digest is \"%s\", its bytes hash to %s",
                   mlxr_registry_quote(r.docker_content_digest, q, sizeof q), pc->stats->manifest_digest);
  }
  if (rc == MLXR_OK) rc = mlxr_manifest_parse(r.body ? r.body : "", r.body_len, &pc->p.limits, &j->m, pc->err, pc->err_len);
  mlxr_transfer_response_clear(&r);
  return rc;
}

static int model_format(const pull_job *j, mlxr_model_format *out) {
  const char *f = j->cfg.model_format;
  if (!*f) {
    *out = MLXR_MODEL_FORMAT_GGUF; /* Ollama's configs before model_format existed were GGUF */
    return MLXR_OK;
  }
  if (mlxr_model_format_parse(f, out) == MLXR_OK) return MLXR_OK;
  char q[128];
  return mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_UNSUPPORTED, "config: model_format \"%s\" is not supported",
                   mlxr_registry_quote(f, q, sizeof q));
}

/* Checks the contents of text blob i (config, params, template, system, messages). */
static int check_text(pull_job *j, int i) {
  pull_ctx *pc = &j->pc;
  const mlxr_manifest_blob *b = job_blob(j, i);
  const char *t = j->texts[i];
  const size_t len = (size_t)b->size;
  char why[512];
  switch (b->kind) {
  case MLXR_LAYER_CONFIG:
    if (mlxr_image_config_parse(t, len, &j->cfg, why, sizeof why) < 0) {
      return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_INVALID, "config blob %s refused: %s", b->digest, why);
    }
    mlxr_model_format f;
    return model_format(j, &f);
  case MLXR_LAYER_PARAMS:
  case MLXR_LAYER_MESSAGES: {
    cJSON *v = cJSON_ParseWithLength(t, len);
    const bool ok = v && (b->kind == MLXR_LAYER_PARAMS ? cJSON_IsObject(v) : cJSON_IsArray(v));
    cJSON_Delete(v);
    if (!ok || strlen(t) != len) {
      return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_INVALID, "%s layer %s refused: not a JSON %s", b->media_type,
                       b->digest, b->kind == MLXR_LAYER_PARAMS ? "object" : "array");
    }
    return MLXR_OK;
  }
  case MLXR_LAYER_TEMPLATE:
  case MLXR_LAYER_SYSTEM:
    if (strlen(t) != len) {
      return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_INVALID, "%s layer %s refused: it holds a NUL byte",
                       b->media_type, b->digest);
    }
    return MLXR_OK;
  default: return MLXR_OK;
  }
}

static int fetch_texts(pull_job *j) {
  pull_ctx *pc = &j->pc;
  j->texts = calloc((size_t)j->m.n_layers + 1, sizeof *j->texts);
  if (!j->texts) return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_NOMEM, "out of memory");
  for (int i = j->m.n_layers; i >= 0; i--) { /* the config first */
    const mlxr_manifest_blob *b = job_blob(j, i);
    if (!mlxr_layer_kind_is_text(b->kind)) continue;
    int rc;
    mlxr_blob_stat bs;
    if (mlxr_store_stat(j->st, b->digest, &bs, NULL, 0) == MLXR_OK) {
      rc = pull_read_stored(pc, j->st, b->digest, b->size, &j->texts[i]);
      if (rc == MLXR_OK) pc->stats->bytes_present += b->size;
      if (rc == MLXR_OK) rc = pull_blob_progress(pc, b->digest, b->size, b->size, true);
    } else {
      char url[1024];
      if (blob_url(j, b->digest, url, sizeof url) < 0) return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_RANGE, "URL too long");
      rc = pull_blob_to_memory(pc, url, b->digest, b->size, &j->texts[i]);
    }
    if (rc < 0) return rc;
    if ((rc = check_text(j, i)) < 0) return rc;
  }
  return MLXR_OK;
}

/* Was digest already handled at an earlier index (the same blob listed twice)? */
static bool seen_before(const pull_job *j, int i) {
  for (int k = 0; k < i; k++) {
    if (strcmp(j->m.layers[k].digest, j->m.layers[i].digest) == 0) return true;
  }
  return strcmp(j->m.config.digest, j->m.layers[i].digest) == 0;
}

static int fetch_large(pull_job *j) {
  pull_ctx *pc = &j->pc;
  for (int i = 0; i < j->m.n_layers; i++) {
    const mlxr_manifest_blob *b = &j->m.layers[i];
    if (mlxr_layer_kind_is_text(b->kind) || seen_before(j, i)) continue;
    mlxr_blob_stat bs;
    int rc;
    if (mlxr_store_stat(j->st, b->digest, &bs, NULL, 0) == MLXR_OK) {
      if (bs.size != b->size) {
        return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_FORMAT,
                         "manifest says blob %s has %lld bytes, the stored blob of that digest has %lld", b->digest,
                         (long long)b->size, (long long)bs.size);
      }
      pc->stats->bytes_present += b->size;
      rc = pull_blob_progress(pc, b->digest, b->size, b->size, true);
    } else {
      char url[1024];
      if (blob_url(j, b->digest, url, sizeof url) < 0) return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_RANGE, "URL too long");
      mlxr_digest d;
      rc = pull_blob_to_store(pc, j->st, url, b->digest, b->size, NULL, &d);
    }
    if (rc < 0) return rc;
  }
  return MLXR_OK;
}

static int store_texts(pull_job *j) {
  pull_ctx *pc = &j->pc;
  for (int i = 0; i <= j->m.n_layers; i++) {
    const mlxr_manifest_blob *b = job_blob(j, i);
    if (!j->texts[i] || mlxr_store_stat(j->st, b->digest, NULL, NULL, 0) == MLXR_OK) continue;
    mlxr_digest d;
    int rc = mlxr_store_put_buffer(j->st, j->texts[i], (size_t)b->size, b->digest, &d, pc->err, pc->err_len);
    if (rc < 0) return rc;
  }
  return MLXR_OK;
}

static int add_to_catalog(pull_job *j) {
  pull_ctx *pc = &j->pc;
  mlxr_model_spec sp = {.name = pc->stats->canonical_name};
  int rc = model_format(j, &sp.format);
  if (rc < 0) return rc;
  /* the first model layer's GGUF metadata fills what the config does not say */
  pull_gguf_meta gm = {0};
  for (int i = 0; i < j->m.n_layers; i++) {
    if (j->m.layers[i].kind != MLXR_LAYER_MODEL) continue;
    if (sp.format == MLXR_MODEL_FORMAT_GGUF) pull_gguf_read_meta(j->st, j->m.layers[i].digest, &gm, NULL, 0);
    break;
  }
  sp.architecture = j->cfg.model_family[0] ? j->cfg.model_family : gm.architecture[0] ? gm.architecture : NULL;
  sp.quantization = j->cfg.file_type[0] ? j->cfg.file_type : gm.quantization[0] ? gm.quantization : NULL;
  sp.parameter_count = j->cfg.parameter_count ? j->cfg.parameter_count : gm.parameter_count;
  sp.context_length = gm.context_length;
  mlxr_blob_ref *blobs = calloc((size_t)j->m.n_layers + 1, sizeof *blobs);
  mlxr_adapter_ref *adapters = calloc((size_t)j->m.n_layers, sizeof *adapters);
  if (!blobs || !adapters) {
    free(blobs);
    free(adapters);
    return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i <= j->m.n_layers; i++) {
    const mlxr_manifest_blob *b = job_blob(j, i);
    if (b->kind == MLXR_LAYER_ADAPTER) {
      mlxr_adapter_ref *a = &adapters[sp.n_adapters++];
      snprintf(a->name, sizeof a->name, "%s", b->digest);
      snprintf(a->digest, sizeof a->digest, "%s", b->digest);
      a->scale = 1.0;
      continue;
    }
    mlxr_blob_ref *r = &blobs[sp.n_blobs++];
    snprintf(r->digest, sizeof r->digest, "%s", b->digest);
    snprintf(r->media_type, sizeof r->media_type, "%s", b->media_type);
    if (b->kind == MLXR_LAYER_TEMPLATE) sp.chat_template = j->texts[i];
    else if (b->kind == MLXR_LAYER_SYSTEM) sp.system_prompt = j->texts[i];
    else if (b->kind == MLXR_LAYER_PARAMS) sp.parameters_json = j->texts[i];
  }
  sp.blobs = blobs;
  sp.adapters = adapters;
  char why[1024];
  rc = mlxr_catalog_add(j->cat, &sp, why, sizeof why);
  if (rc < 0) rc = mlxr_errf(pc->err, pc->err_len, rc, "cannot add %s to the catalog: %s", sp.name, why);
  free(blobs);
  free(adapters);
  return rc;
}

int mlxr_pull_model(mlxr_store *st, mlxr_catalog *cat, const char *name, const mlxr_pull_params *params,
                    mlxr_pull_stats *stats, char *err, size_t err_len) {
  mlxr_pull_stats local;
  pull_job j = {.st = st, .cat = cat};
  j.pc = (pull_ctx){.p = params ? *params : mlxr_pull_default_params(),
                    .stats = stats ? stats : &local,
                    .err = err,
                    .err_len = err_len};
  memset(j.pc.stats, 0, sizeof *j.pc.stats);
  int rc = resolve_target(&j, name);
  if (rc == MLXR_OK) rc = pull_status(&j.pc, "pulling manifest");
  if (rc == MLXR_OK) rc = fetch_manifest(&j);
  if (rc == MLXR_OK) {
    j.pc.stats->n_blobs = 1;
    for (int i = 0; i < j.m.n_layers; i++) j.pc.stats->n_blobs += !seen_before(&j, i);
  }
  if (rc == MLXR_OK) rc = fetch_texts(&j);
  if (rc == MLXR_OK) rc = fetch_large(&j);
  if (rc == MLXR_OK) rc = pull_status(&j.pc, "verifying sha256 digest"); /* done while writing (store.h) */
  if (rc == MLXR_OK) rc = store_texts(&j);
  if (rc == MLXR_OK) rc = pull_status(&j.pc, "writing manifest");
  if (rc == MLXR_OK) rc = add_to_catalog(&j);
  if (rc == MLXR_OK) (void)pull_status(&j.pc, "success"); /* the model is in: too late to cancel */
  job_free(&j);
  return rc;
}
