/*
 * push.c: mlxr_push_model, a catalog model's blobs and manifest up to a registry (the protocol and
 * the manifest's reconstruction are in push.h).
 *
 * How it works: the row is read and turned into an mlxr_manifest (config, layers, adapters as
 * adapter layers); the base URL comes from the params or the name's host as for a pull; each
 * distinct blob is asked for with HEAD and, when the registry lacks it, sent with POST, PATCH
 * (the bytes streamed from the store's file) and PUT ?digest=; then the manifest's JSON
 * (manifest.c) is PUT under the tag. Every response's status is checked; an error names the step
 * and quotes the start of the registry's answer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common/status.h"
#include "daemon/registry/pull_impl.h"
#include "daemon/registry/push.h"

typedef struct push_job {
  pull_ctx pc;             /* parameters, progress and error buffer (stats unused) */
  mlxr_push_stats *stats;
  mlxr_store *st;
  mlxr_model_name name;
  char base[512];
  char repo_url[1024];     /* <base>/v2/<namespace>/<model> */
} push_job;

/* snprintf into a URL buffer; MLXR_ERR_RANGE (with a message) when it does not fit. */
static int url_fmt(push_job *j, char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int url_fmt(push_job *j, char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= len) return mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_RANGE, "URL too long");
  return MLXR_OK;
}

/* The catalog row as a manifest (layers malloc'ed into m). */
static int row_to_manifest(push_job *j, const mlxr_model_info *mi, mlxr_manifest *m) {
  memset(m, 0, sizeof *m);
  m->layers = calloc(mi->n_blobs + mi->n_adapters + 1, sizeof *m->layers);
  if (!m->layers) return mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_NOMEM, "out of memory");
  bool have_config = false;
  for (size_t i = 0; i < mi->n_blobs; i++) {
    mlxr_layer_kind k;
    const bool known = mlxr_layer_kind_parse(mi->blobs[i].media_type, &k) == MLXR_OK;
    mlxr_manifest_blob *b = known && k == MLXR_LAYER_CONFIG && !have_config ? &m->config : &m->layers[m->n_layers++];
    if (b == &m->config) have_config = true;
    b->kind = known ? k : MLXR_LAYER_MODEL;
    snprintf(b->media_type, sizeof b->media_type, "%s", mi->blobs[i].media_type);
    snprintf(b->digest, sizeof b->digest, "%s", mi->blobs[i].digest);
    b->size = mi->blobs[i].size;
  }
  for (size_t i = 0; i < mi->n_adapters; i++) {
    mlxr_manifest_blob *b = &m->layers[m->n_layers++];
    b->kind = MLXR_LAYER_ADAPTER;
    snprintf(b->media_type, sizeof b->media_type, "%s", mlxr_layer_media_type(MLXR_LAYER_ADAPTER));
    snprintf(b->digest, sizeof b->digest, "%s", mi->adapters[i].digest);
    b->size = mi->adapters[i].size;
  }
  if (!have_config) {
    return mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_UNSUPPORTED,
                     "model %s has no config blob (%s), so it cannot be pushed", mi->name, MLXR_MEDIA_CONFIG_DOCKER);
  }
  return MLXR_OK;
}

/* A request whose status must be one of want (0-terminated). The response is the caller's to clear. */
static int request(push_job *j, const char *what, const mlxr_transfer_request *req, const int *want,
                   mlxr_transfer_response *r) {
  int rc = mlxr_transfer_do(&j->pc.p.transfer, req, r, j->pc.err, j->pc.err_len);
  if (rc < 0) return rc;
  for (const int *w = want; *w; w++) {
    if (r->status == *w) return MLXR_OK;
  }
  char q[256];
  if (r->status == 401 || r->status == 403) {
    return mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_UNSUPPORTED,
                     "%s: the registry wants authentication (HTTP %d), which MLXR does not do yet", what, r->status);
  }
  return mlxr_errf(j->pc.err, j->pc.err_len, r->status == 404 ? MLXR_ERR_NOT_FOUND : MLXR_ERR_IO, "%s: HTTP %d: %s",
                   what, r->status, mlxr_registry_quote(r->body ? r->body : "", q, sizeof q));
}

/* POST, PATCH, PUT ?digest= for one blob the registry lacks. */
static int upload(push_job *j, const mlxr_manifest_blob *b) {
  static const int accepted[] = {202, 0}, created[] = {201, 204, 0};
  char url[1100];
  if (url_fmt(j, url, sizeof url, "%s/blobs/uploads/", j->repo_url) < 0) return MLXR_ERR_RANGE;
  mlxr_transfer_request req = {.method = "POST", .url = url, .body_fd = -1, .body_max = 4096};
  mlxr_transfer_response r;
  int rc = request(j, "start upload", &req, accepted, &r);
  char *loc = rc == MLXR_OK && r.location ? strdup(r.location) : NULL;
  if (rc == MLXR_OK && !loc) rc = mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_IO, "start upload: no Location");
  mlxr_transfer_response_clear(&r);
  if (rc < 0) return rc;

  int fd = -1;
  rc = mlxr_store_open_blob(j->st, b->digest, &fd, j->pc.err, j->pc.err_len);
  if (rc == MLXR_OK) {
    req = (mlxr_transfer_request){.method = "PATCH",
                                  .url = loc,
                                  .content_type = "application/octet-stream",
                                  .body_fd = fd,
                                  .body_len = b->size,
                                  .body_max = 4096};
    rc = request(j, "upload", &req, accepted, &r);
    close(fd);
    free(loc);
    loc = rc == MLXR_OK && r.location ? strdup(r.location) : NULL;
    if (rc == MLXR_OK && !loc) rc = mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_IO, "upload: no Location");
    mlxr_transfer_response_clear(&r);
  }
  if (rc == MLXR_OK) {
    char done[2048];
    if ((rc = url_fmt(j, done, sizeof done, "%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", b->digest)) == 0) {
      req = (mlxr_transfer_request){.method = "PUT", .url = done, .body_fd = -1, .body_max = 4096};
      rc = request(j, "finish upload", &req, created, &r);
      mlxr_transfer_response_clear(&r);
    }
  }
  free(loc);
  if (rc == MLXR_OK) {
    j->stats->bytes_uploaded += b->size;
    j->stats->n_uploaded++;
  }
  return rc;
}

static int push_blob(push_job *j, const mlxr_manifest_blob *b) {
  static const int found[] = {200, 404, 0};
  char url[1200], status[32];
  if (url_fmt(j, url, sizeof url, "%s/blobs/%s", j->repo_url, b->digest) < 0) return MLXR_ERR_RANGE;
  snprintf(status, sizeof status, "pushing %.12s", b->digest + 7);
  mlxr_registry_progress pr = {.status = status, .digest = b->digest, .total = b->size, .completed = 0};
  if (j->pc.p.progress && j->pc.p.progress(j->pc.p.progress_ctx, &pr) != 0) {
    return mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_IO, "push cancelled");
  }
  mlxr_transfer_request req = {.method = "HEAD", .url = url, .follow_redirects = true, .body_fd = -1};
  mlxr_transfer_response r;
  int rc = request(j, "blob check", &req, found, &r);
  const bool present = rc == MLXR_OK && r.status == 200;
  mlxr_transfer_response_clear(&r);
  if (rc == MLXR_OK && !present) rc = upload(j, b);
  if (rc < 0) return rc;
  pr.completed = b->size;
  if (j->pc.p.progress && j->pc.p.progress(j->pc.p.progress_ctx, &pr) != 0) {
    return mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_IO, "push cancelled");
  }
  return MLXR_OK;
}

static int push_manifest(push_job *j, const mlxr_manifest *m) {
  static const int created[] = {200, 201, 0};
  char *text = mlxr_manifest_format(m);
  if (!text) return mlxr_errf(j->pc.err, j->pc.err_len, MLXR_ERR_NOMEM, "out of memory");
  pull_sha256(text, strlen(text), j->stats->manifest_digest);
  char url[1200];
  if (url_fmt(j, url, sizeof url, "%s/manifests/%s", j->repo_url, j->name.tag) < 0) {
    free(text);
    return MLXR_ERR_RANGE;
  }
  const mlxr_transfer_request req = {.method = "PUT",
                                     .url = url,
                                     .content_type = MLXR_MEDIA_MANIFEST_DOCKER,
                                     .body = text,
                                     .body_fd = -1,
                                     .body_len = (int64_t)strlen(text),
                                     .body_max = 4096};
  mlxr_transfer_response r;
  int rc = request(j, "push manifest", &req, created, &r);
  mlxr_transfer_response_clear(&r);
  free(text);
  return rc;
}

int mlxr_push_model(mlxr_store *st, mlxr_catalog *cat, const char *name, const mlxr_pull_params *params,
                    mlxr_push_stats *stats, char *err, size_t err_len) {
  mlxr_push_stats local;
  mlxr_pull_stats unused;
  push_job j = {.st = st, .stats = stats ? stats : &local};
  j.pc = (pull_ctx){.p = params ? *params : mlxr_pull_default_params(), .stats = &unused, .err = err, .err_len = err_len};
  memset(j.stats, 0, sizeof *j.stats);
  int rc = mlxr_name_parse(name, &j.pc.p.name_defaults, &j.name, err, err_len);
  if (rc < 0) return rc;
  if ((rc = pull_base_url(&j.pc.p, &j.name, j.base, sizeof j.base, err, err_len)) < 0) return rc;
  if ((rc = url_fmt(&j, j.repo_url, sizeof j.repo_url, "%s/v2/%s/%s", j.base, j.name.ns, j.name.model)) < 0) return rc;
  if ((rc = pull_status(&j.pc, "retrieving manifest")) < 0) return rc;
  mlxr_model_info mi;
  if ((rc = mlxr_catalog_get(cat, name, &mi, err, err_len)) < 0) return rc;
  mlxr_manifest m;
  rc = row_to_manifest(&j, &mi, &m);
  mlxr_model_info_clear(&mi);
  for (int i = 0; rc == MLXR_OK && i <= m.n_layers; i++) {
    const mlxr_manifest_blob *b = i == m.n_layers ? &m.config : &m.layers[i];
    bool dup = false;
    for (int k = 0; k < i && !dup; k++) dup = strcmp(m.layers[k].digest, b->digest) == 0;
    if (dup) continue;
    j.stats->n_blobs++;
    rc = push_blob(&j, b);
  }
  if (rc == MLXR_OK) rc = pull_status(&j.pc, "pushing manifest");
  if (rc == MLXR_OK) rc = push_manifest(&j, &m);
  if (rc == MLXR_OK) (void)pull_status(&j.pc, "success");
  mlxr_manifest_free(&m);
  return rc;
}
