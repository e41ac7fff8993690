/*
 * catalog_models.c: the daemon's side of the registry: opens the content-addressed store and its
 * SQLite catalog at startup (daemon/registry/store.h, catalog.h), sweeps the temporary files a
 * crash left behind and the blobs no model has referenced for a day, and publishes every catalog model as a served entry (models.c) beside the
 * --model files; routes_registry.c calls back in here when a model is created, copied or deleted.
 *
 * How a catalog model is served: its GGUF is the blob of its model layer (media type
 * MLXR_MEDIA_MODEL), opened by path from the store like any --model file; the entry's id is the
 * name in Ollama's short form ("tiny:latest"), its canonical name is the key lookups compare. A
 * model whose name a --model file already serves is skipped with a warning (the file wins), as is
 * one whose model blob is missing (mlxr_catalog_check tells more). The entry also keeps the
 * model's digest (mlxr_registry_model_digest), which /api/tags and /api/ps give.
 *
 * Ownership and threads: mlxr_registry owns the store and the catalog. The catalog takes one
 * thread at a time, so every use of it goes under reg->lock; the same lock orders the name checks
 * against entries with their publication and removal, so two creates of one name cannot both
 * publish. The store itself is thread-safe (blob uploads use it without the lock).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common/dtype.h"
#include "core/common/status.h"
#include "core/formats/gguf.h"
#include "daemon/server/server_impl.h"

const mlxr_blob_ref *mlxr_registry_model_blob(const mlxr_model_info *info) {
  for (size_t i = 0; i < info->n_blobs; i++)
    if (strcmp(info->blobs[i].media_type, MLXR_MEDIA_MODEL) == 0) return &info->blobs[i];
  return NULL;
}

int mlxr_registry_short_name(const char *name, char *buf, size_t buf_len, char *err, size_t err_len) {
  mlxr_model_name n;
  int rc = mlxr_name_parse(name, NULL, &n, err, err_len);
  if (rc < 0) return rc;
  rc = mlxr_name_format_short(&n, buf, buf_len);
  return rc < 0 ? mlxr_errf(err, err_len, rc, "model name too long") : 0;
}

void mlxr_registry_model_digest(const mlxr_model_info *m, char out[MLXR_DIGEST_HEX_LEN + 1]) {
  mlxr_buf b = {0};
  char line[300];
  for (size_t i = 0; i < m->n_blobs; i++) {
    snprintf(line, sizeof line, "%s %s %lld\n", m->blobs[i].media_type, m->blobs[i].digest,
             (long long)m->blobs[i].size);
    mlxr_buf_adds(&b, line);
  }
  const char *p[] = {m->chat_template, m->system_prompt, m->parameters_json};
  for (int i = 0; i < 3; i++) {
    mlxr_buf_adds(&b, "|");
    if (p[i]) mlxr_buf_adds(&b, p[i]);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  out[0] = '\0';
  if (!b.oom && EVP_Digest(b.p ? b.p : "", b.len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32) {
    mlxr_digest d;
    mlxr_digest_from_bytes(md, &d);
    memcpy(out, d.hex, MLXR_DIGEST_HEX_LEN + 1);
  }
  mlxr_buf_free(&b);
}

int mlxr_registry_publish(mlxr_registry *g, mlxr_models *ms, const mlxr_model_info *info, mlxr_model_entry **out,
                          char *err, size_t err_len) {
  const mlxr_blob_ref *b = mlxr_registry_model_blob(info);
  if (!b) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "model '%s' has no model layer", info->name);
  char path[4096], id[MLXR_NAME_MAX + 1];
  int rc = mlxr_store_blob_path(g->store, b->digest, path, sizeof path, err, err_len);
  if (rc < 0) return rc;
  if ((rc = mlxr_registry_short_name(info->name, id, sizeof id, err, err_len)) < 0) return rc;
  char *messages = NULL;
  for (size_t i = 0; i < info->n_blobs && !messages; i++)
    if (strcmp(info->blobs[i].media_type, MLXR_MEDIA_MESSAGES) == 0)
      messages = mlxr_registry_read_small_blob(g->store, &info->blobs[i]);
  char digest[MLXR_DIGEST_HEX_LEN + 1];
  mlxr_registry_model_digest(info, digest);
  rc = mlxr_models_add_catalog(ms, id, info->name, path, info->system_prompt, info->parameters_json, messages, digest,
                               out, err, err_len);
  free(messages);
  return rc;
}

char *mlxr_registry_read_small_blob(mlxr_store *st, const mlxr_blob_ref *b) {
  if (b->size < 0 || b->size > (1 << 20)) return NULL;
  int fd = -1;
  char err[256];
  if (mlxr_store_open_blob(st, b->digest, &fd, err, sizeof err) < 0) return NULL;
  char *p = malloc((size_t)b->size + 1);
  size_t got = 0;
  while (p && got < (size_t)b->size) {
    ssize_t k = read(fd, p + got, (size_t)b->size - got);
    if (k <= 0) break;
    got += (size_t)k;
  }
  close(fd);
  if (p && got != (size_t)b->size) {
    free(p);
    return NULL;
  }
  if (p) p[got] = '\0';
  return p;
}


static void on_swept(void *ctx, const char *name, int64_t size) {
  (void)ctx;
  fprintf(stderr, "mlxrd: store: removed %s (%lld bytes) left by an interrupted write\n", name, (long long)size);
}

int mlxr_registry_open(mlxr_registry *g, const char *root, mlxr_models *ms, char *err, size_t err_len) {
  memset(g, 0, sizeof(*g));
  pthread_mutex_init(&g->lock, NULL);
  g->lock_ready = true;
  mlxr_store_params sp = mlxr_store_default_params();
  char e2[512] = "";
  int rc = mlxr_store_open(root, &sp, &g->store, e2, sizeof e2);
  if (rc < 0) return mlxr_errf(err, err_len, rc, "model store '%s': %s", root, e2);
  /* a resumable download younger than a day may still be resumed; anything else is a leftover */
  mlxr_store_sweep_report rep;
  if (mlxr_store_sweep(g->store, 86400, on_swept, NULL, &rep, e2, sizeof e2) < 0)
    fprintf(stderr, "mlxrd: store: sweep failed: %s\n", e2);
  mlxr_registry_sweep_quantize(root);
  char db[4200];
  if ((size_t)snprintf(db, sizeof db, "%s/catalog.db", root) >= sizeof db)
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "model store path too long: %s", root);
  mlxr_catalog_params cp = mlxr_catalog_default_params();
  if ((rc = mlxr_catalog_open(db, g->store, &cp, &g->cat, e2, sizeof e2)) < 0)
    return mlxr_errf(err, err_len, rc, "model catalog '%s': %s", db, e2);
  /* blobs no model references (a create that never came, a replaced model's after a crash), once
   * a day old: a younger one may be waiting for its /api/create */
  mlxr_gc_report gc;
  if (mlxr_catalog_gc(g->cat, 86400, &gc, e2, sizeof e2) < 0)
    fprintf(stderr, "mlxrd: store: removing unused blobs failed: %s\n", e2);
  else if (gc.n_removed > 0)
    fprintf(stderr, "mlxrd: store: removed %lld unused blob(s), %lld bytes\n", (long long)gc.n_removed,
            (long long)gc.bytes_removed);
  mlxr_model_info *items = NULL;
  size_t n = 0;
  if ((rc = mlxr_catalog_list(g->cat, &items, &n, e2, sizeof e2)) < 0)
    return mlxr_errf(err, err_len, rc, "model catalog '%s': %s", db, e2);
  for (size_t i = 0; i < n; i++) {
    char id[MLXR_NAME_MAX + 1];
    mlxr_model_entry *other = NULL;
    if (mlxr_registry_short_name(items[i].name, id, sizeof id, e2, sizeof e2) == 0)
      other = mlxr_models_find(ms, id);
    if (other) {
      fprintf(stderr, "mlxrd: catalog model '%s' not served: the file %s has that name\n", id, other->path);
      continue;
    }
    if (mlxr_registry_publish(g, ms, &items[i], NULL, e2, sizeof e2) < 0)
      fprintf(stderr, "mlxrd: catalog model '%s' not served: %s\n", items[i].name, e2);
  }
  mlxr_model_list_free(items, n);
  return 0;
}

void mlxr_registry_close(mlxr_registry *g) {
  if (g->cat) mlxr_catalog_close(g->cat);
  if (g->store) mlxr_store_close(g->store);
  if (g->lock_ready) pthread_mutex_destroy(&g->lock);
  memset(g, 0, sizeof(*g));
}

/* ---------------- facts of a GGUF ---------------- */

int mlxr_registry_read_gguf_facts(const char *path, mlxr_registry_gguf_facts *f, char *err, size_t err_len) {
  memset(f, 0, sizeof *f);
  mlxr_gguf *g = NULL;
  int rc = mlxr_gguf_open(path, &g, err, err_len);
  if (rc < 0) return rc;
  const char *arch = mlxr_gguf_get_str(g, "general.architecture", NULL);
  snprintf(f->arch, sizeof f->arch, "%s", arch ? arch : "");
  for (char *p = f->arch; *p; p++)
    if (*p < 0x20 || *p > 0x7e) *p = '_';
  size_t bytes_by_type[64] = {0};
  for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
    f->n_params += n;
    if (t->n_dims >= 2 && (unsigned)t->type < 64) bytes_by_type[t->type] += t->nbytes;
  }
  int best = 0;
  for (int i = 1; i < 64; i++)
    if (bytes_by_type[i] > bytes_by_type[best]) best = i;
  const char *qn = mlxr_dtype_name((mlxr_dtype)best);
  snprintf(f->quant, sizeof f->quant, "%s", qn ? qn : "unknown");
  for (char *q = f->quant; *q; q++)
    if (*q >= 'a' && *q <= 'z') *q = (char)(*q - 'a' + 'A');
  char key[128];
  snprintf(key, sizeof key, "%s.context_length", f->arch);
  int64_t v;
  if (arch && mlxr_gguf_get_int(g, key, &v) && v > 0) f->n_ctx = v;
  mlxr_gguf_close(g);
  if (!f->arch[0]) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "the GGUF names no general.architecture");
  return 0;
}
