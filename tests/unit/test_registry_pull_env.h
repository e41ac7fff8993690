/*
 * test_registry_pull_env.h: what the pull tests (test_registry_pull.c, test_registry_pull_hostile.c)
 * share besides the registry server: a store and catalog per scenario, a manifest written by hand
 * from layer descriptions, a progress recorder, and the "nothing changed" check (a snapshot of the
 * store's files, and the catalog's model count).
 *
 * Everything is static; each test is its own process.
 */
#ifndef MLXR_TESTS_REGISTRY_PULL_ENV_H
#define MLXR_TESTS_REGISTRY_PULL_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "daemon/registry/catalog.h"
#include "daemon/registry/pull.h"
#include "daemon/registry/store.h"
#include "tests/unit/check.h"
#include "tests/unit/test_registry_server.h"

#define MT_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_MODEL "application/vnd.ollama.image.model"
#define MT_TEMPLATE "application/vnd.ollama.image.template"
#define MT_SYSTEM "application/vnd.ollama.image.system"
#define MT_PARAMS "application/vnd.ollama.image.params"
#define MT_LICENSE "application/vnd.ollama.image.license"
#define MT_ADAPTER "application/vnd.ollama.image.adapter"
#define MT_MESSAGES "application/vnd.ollama.image.messages"

typedef struct penv {
  char tmp[1024];
  char root[1100];  /* the store's root */
  char blobs[1200]; /* root/blobs */
  char db[1200];    /* the catalog, outside the store so a snapshot of the store ignores it */
  mlxr_store *st;
  mlxr_catalog *cat;
  srv s;
} penv;

static inline bool penv_open(penv *e, const char *sub) {
  snprintf(e->root, sizeof e->root, "%s/%s", e->tmp, sub);
  snprintf(e->blobs, sizeof e->blobs, "%s/blobs", e->root);
  snprintf(e->db, sizeof e->db, "%s/%s.db", e->tmp, sub);
  char err[512] = "";
  e->st = NULL;
  e->cat = NULL;
  if (mlxr_store_open(e->root, NULL, &e->st, err, sizeof err) < 0 ||
      mlxr_catalog_open(e->db, e->st, NULL, &e->cat, err, sizeof err) < 0) {
    CHECK(false, "open store/catalog %s: %s", e->root, err);
    return false;
  }
  return true;
}

static inline void penv_close(penv *e) {
  mlxr_catalog_close(e->cat);
  mlxr_store_close(e->st);
  e->cat = NULL;
  e->st = NULL;
}

static inline int penv_n_models(penv *e) {
  mlxr_model_info *items = NULL;
  size_t n = 0;
  char err[512];
  if (mlxr_catalog_list(e->cat, &items, &n, err, sizeof err) < 0) return -1;
  mlxr_model_list_free(items, n);
  return (int)n;
}

/* Test parameters: the local registry, fast retries, short stalls, every progress report. */
static inline mlxr_pull_params penv_params(penv *e) {
  mlxr_pull_params p = mlxr_pull_default_params();
  p.base_url = e->s.base;
  p.retry_delay_ms = 10;
  p.max_retries = 0;
  p.progress_interval_ms = 0;
  p.transfer.connect_timeout_ms = 2000;
  p.transfer.stall_timeout_s = 5;
  p.transfer.total_timeout_s = 20;
  return p;
}

/* ---- manifests written by hand ---- */

typedef struct layer {
  const char *media_type;
  char hex[65];
  long long size;
} layer;

/* {"schemaVersion":2,...} for config + layers, into a malloc'ed string. */
static char *manifest_text(const layer *config, const layer *layers, int n) {
  size_t cap = 512 + (size_t)n * 256, len = 0;
  char *t = malloc(cap);
  len += (size_t)snprintf(t + len, cap - len,
                          "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
                          "\"config\":{\"mediaType\":\"%s\",\"digest\":\"sha256:%s\",\"size\":%lld},\"layers\":[",
                          config->media_type, config->hex, config->size);
  for (int i = 0; i < n; i++) {
    len += (size_t)snprintf(t + len, cap - len, "%s{\"mediaType\":\"%s\",\"digest\":\"sha256:%s\",\"size\":%lld}",
                            i ? "," : "", layers[i].media_type, layers[i].hex, layers[i].size);
  }
  snprintf(t + len, cap - len, "]}");
  return t;
}

/* A blob of the given bytes in the registry, described as a layer. */
static inline void put_layer(penv *e, layer *l, const char *media_type, const void *data, size_t n) {
  l->media_type = media_type;
  l->size = (long long)n;
  CHECK(srv_put_blob(&e->s, data, n, l->hex), "put blob in the registry");
}

static inline void put_text_layer(penv *e, layer *l, const char *media_type, const char *text) {
  put_layer(e, l, media_type, text, strlen(text));
}

static inline void put_random_layer(penv *e, layer *l, const char *media_type, size_t n, uint64_t seed) {
  unsigned char *b = malloc(n);
  reg_fill(b, n, seed);
  put_layer(e, l, media_type, b, n);
  free(b);
}

static inline void put_manifest(penv *e, const char *model, const char *tag, const layer *config, const layer *layers, int n) {
  char *t = manifest_text(config, layers, n);
  CHECK(srv_put_manifest(&e->s, "me", model, tag, t), "write manifest");
  free(t);
}

/* ---- progress ---- */

typedef struct prog_event {
  char status[64];
  char digest[80];
  long long total, completed;
} prog_event;

typedef struct prog_log {
  prog_event ev[4096];
  int n;           /* events recorded (at most 4096 kept) */
  int cancel_at;   /* > 0: ask to cancel at this event number (1-based) */
} prog_log;

static inline int prog_record(void *ctx, const mlxr_registry_progress *p) {
  prog_log *l = ctx;
  if (l->n < 4096) {
    prog_event *e = &l->ev[l->n];
    snprintf(e->status, sizeof e->status, "%s", p->status ? p->status : "(null)");
    snprintf(e->digest, sizeof e->digest, "%s", p->digest ? p->digest : "");
    e->total = p->total;
    e->completed = p->completed;
  }
  l->n++;
  return l->cancel_at > 0 && l->n >= l->cancel_at;
}

/* A file "sha256-<hex><suffix>" in the store's blobs/? */
static inline bool store_has(penv *e, const char *hex, const char *suffix) {
  char path[4400];
  snprintf(path, sizeof path, "%s/sha256-%s%s", e->blobs, hex, suffix);
  return access(path, F_OK) == 0;
}

static inline long long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

#endif
