/*
 * routes_registry.c: Ollama's model-management routes on the registry's catalog (catalog_models.c):
 *
 *   HEAD /api/blobs/:digest   200 when the store holds the blob, 404 when not
 *   POST /api/blobs/:digest   the body streamed into a store writer (hashed while written, checked
 *                             against the digest, renamed into place): 201; 200 when it was there
 *                             already; 400 on a digest mismatch, with nothing kept
 *   POST /api/create          {model, from | files {"x.gguf": digest}, template, system, parameters,
 *                             messages, license, quantize, stream} or the older {model, modelfile}: a catalog
 *                             model; status lines ({"status": "success"} last), NDJSON unless
 *                             stream is false
 *   POST /api/copy            {source, destination}: 200, 404 when the source does not exist
 *   DELETE /api/delete        {model} (or {name}): 200, 404 when missing; a loaded model is
 *                             unloaded (once its requests finish) before its rows and blobs go
 *   and the catalog's part of /api/tags and /api/show.
 *
 * Every digest is validated (names.h) before it reaches the store, every name before it reaches the
 * catalog, and a refused request changes nothing. Files given with --model are served but are not
 * catalog models: they cannot be deleted, and no catalog model may take a name one of them has;
 * `from` or a copy's `source` may name one, which imports its bytes into the store.
 *
 * What create keeps: template, system prompt and parameters in the catalog's columns; license and
 * messages as blobs of Ollama's media types. At generation (Ollama's /api/generate and /api/chat)
 * the system prompt and parameters are defaults a request's own system and options override; a
 * template is stored and shown but not applied (it is a Go template; the GGUF's own Jinja template
 * is used). Stored messages go before a chat's own (and before /api/generate's prompt). None of it
 * applies on the OpenAI routes.
 *
 * Threads: any connection thread; catalog work under srv->reg.lock (catalog_models.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#include "core/common/status.h"
#include "daemon/registry/modelfile.h"
#include "daemon/server/server_impl.h"


/* ---------------- blobs ---------------- */

struct mlxr_blob_upload {
  mlxr_blob_writer *w; /* NULL once failed (or when the blob existed) */
  bool exists;         /* already in the store: the body is drained, the answer is 200 */
  int status;          /* a failure while writing: its HTTP status; 0: none */
  char err[512];
};

enum MHD_Result mlxr_blob_upload_begin(mlxr_req *r) {
  r->route = "/api/blobs";
  const char *digest = r->url + strlen("/api/blobs/");
  char err[512] = "";
  mlxr_digest d;
  if (mlxr_digest_parse(digest, &d, err, sizeof err) < 0)
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "invalid digest: %s", err);
  struct mlxr_blob_upload *u = calloc(1, sizeof *u);
  if (!u) return MHD_NO;
  r->blob = u;
  mlxr_store *st = r->srv->reg.store;
  int rc = mlxr_store_stat(st, digest, NULL, err, sizeof err);
  if (rc == 0) {
    u->exists = true;
    return MHD_YES;
  }
  mlxr_blob_write_params wp = {.expected_digest = digest};
  if ((rc = mlxr_store_writer_begin(st, &wp, &u->w, err, sizeof err)) < 0)
    return mlxr_http_error(r, 500, NULL, NULL, NULL, "cannot store the blob: %s", err);
  return MHD_YES;
}

void mlxr_blob_upload_write(mlxr_req *r, const char *data, size_t n) {
  struct mlxr_blob_upload *u = r->blob;
  if (!u || !u->w || n == 0) return;
  int rc = mlxr_blob_writer_write(u->w, data, n, u->err, sizeof u->err);
  if (rc < 0) {
    u->status = rc == MLXR_ERR_RANGE ? 413 : 500;
    mlxr_blob_writer_abort(u->w);
    u->w = NULL;
  }
}

void mlxr_blob_upload_free(mlxr_req *r) {
  if (!r->blob) return;
  mlxr_blob_writer_abort(r->blob->w);
  free(r->blob);
  r->blob = NULL;
}

static enum MHD_Result blob_finish(mlxr_req *r) {
  struct mlxr_blob_upload *u = r->blob;
  if (!u) return mlxr_http_error(r, 400, NULL, NULL, NULL, "invalid blob upload");
  if (u->exists) return mlxr_http_send(r, 200, NULL, "", 0);
  if (u->status) return mlxr_http_error(r, u->status, NULL, NULL, NULL, "cannot store the blob: %s", u->err);
  char err[512] = "";
  mlxr_digest got;
  mlxr_blob_writer *w = u->w;
  u->w = NULL;
  int rc = mlxr_blob_writer_commit(w, &got, err, sizeof err);
  if (rc == MLXR_ERR_FORMAT || rc == MLXR_ERR_RANGE)
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "digest mismatch: %s", err);
  if (rc < 0) return mlxr_http_error(r, 500, NULL, NULL, NULL, "cannot store the blob: %s", err);
  return mlxr_http_send(r, 201, NULL, "", 0);
}

/* HEAD (any method but POST: the digest is checked first, then the method). */
static enum MHD_Result blob_head(mlxr_req *r, const char *digest) {
  char err[512] = "";
  mlxr_digest d;
  if (mlxr_digest_parse(digest, &d, err, sizeof err) < 0)
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "invalid digest: %s", err);
  if (!r->is_head) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use HEAD or POST");
  int rc = mlxr_store_stat(r->srv->reg.store, digest, NULL, err, sizeof err);
  if (rc == MLXR_ERR_NOT_FOUND) return mlxr_http_error(r, 404, NULL, NULL, NULL, "blob not found");
  if (rc < 0) return mlxr_http_error(r, 500, NULL, NULL, NULL, "%s", err);
  return mlxr_http_send(r, 200, NULL, "", 0);
}

/* ---------------- helpers ---------------- */

/* Ollama's manifest-style digest of a model (64 hex, no prefix): SHA-256 over its layers, so two
 * names of the same layers (a copy) have the same digest. */

static void param_size(int64_t n, char *out, size_t cap) {
  if (n >= 1000000000) snprintf(out, cap, "%.1fB", (double)n / 1e9);
  else if (n >= 1000000) snprintf(out, cap, "%.2fM", (double)n / 1e6);
  else if (n >= 1000) snprintf(out, cap, "%.2fK", (double)n / 1e3);
  else snprintf(out, cap, "%lld", (long long)n);
}

static cJSON *catalog_details(const mlxr_model_info *m) {
  cJSON *d = cJSON_CreateObject();
  const char *fam = m->architecture ? m->architecture : "";
  cJSON_AddStringToObject(d, "parent_model", "");
  cJSON_AddStringToObject(d, "format", mlxr_model_format_name(m->format) ? mlxr_model_format_name(m->format) : "");
  cJSON_AddStringToObject(d, "family", fam);
  cJSON *fams = cJSON_AddArrayToObject(d, "families");
  cJSON_AddItemToArray(fams, cJSON_CreateString(fam));
  char ps[32];
  param_size(m->parameter_count, ps, sizeof ps);
  cJSON_AddStringToObject(d, "parameter_size", ps);
  cJSON_AddStringToObject(d, "quantization_level", m->quantization ? m->quantization : "");
  return d;
}

/* ---------------- tags and show ---------------- */

void mlxr_registry_tags(mlxr_server *s, cJSON *arr) {
  mlxr_registry *g = &s->reg;
  if (!g->cat) return;
  mlxr_model_info *items = NULL;
  size_t n = 0;
  char err[512];
  pthread_mutex_lock(&g->lock);
  int rc = mlxr_catalog_list(g->cat, &items, &n, err, sizeof err);
  pthread_mutex_unlock(&g->lock);
  if (rc < 0) {
    fprintf(stderr, "mlxrd: /api/tags: %s\n", err);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const mlxr_model_info *m = &items[i];
    char id[MLXR_NAME_MAX + 1];
    if (mlxr_registry_short_name(m->name, id, sizeof id, err, sizeof err) < 0) continue;
    mlxr_model_entry *e = mlxr_models_find(&s->models, id);
    if (!e || !e->from_catalog) continue; /* shadowed by a --model file (startup said so) */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", id);
    cJSON_AddStringToObject(o, "model", id);
    char ts[48], dg[MLXR_DIGEST_HEX_LEN + 1];
    mlxr_rfc3339(m->created_ms * 1000000, ts, sizeof ts);
    cJSON_AddStringToObject(o, "modified_at", ts);
    cJSON_AddNumberToObject(o, "size", (double)m->total_size);
    mlxr_registry_model_digest(m, dg);
    cJSON_AddStringToObject(o, "digest", dg);
    cJSON_AddItemToObject(o, "details", catalog_details(m));
    cJSON_AddItemToArray(arr, o);
  }
  mlxr_model_list_free(items, n);
}

/* Ollama's text form of parameters: one "name value" line per value (strings quoted). */
static char *parameters_text(const cJSON *params) {
  mlxr_buf b = {0};
  char line[1200];
  for (const cJSON *p = params ? params->child : NULL; p; p = p->next) {
    const cJSON *v = cJSON_IsArray(p) ? p->child : p;
    for (; v; v = cJSON_IsArray(p) ? v->next : NULL) {
      if (cJSON_IsString(v)) {
        cJSON *q = cJSON_CreateString(v->valuestring);
        char *qs = q ? cJSON_PrintUnformatted(q) : NULL;
        snprintf(line, sizeof line, "%-30s %s\n", p->string, qs ? qs : "\"\"");
        free(qs);
        cJSON_Delete(q);
      } else {
        char *vs = mlxr_json_print(v);
        snprintf(line, sizeof line, "%-30s %s\n", p->string, vs ? vs : "");
        free(vs);
      }
      mlxr_buf_adds(&b, line);
      if (!cJSON_IsArray(p)) break;
    }
  }
  if (b.oom || !b.p) {
    mlxr_buf_free(&b);
    return strdup("");
  }
  return b.p;
}

static void replace_str(cJSON *o, const char *key, const char *v) {
  cJSON_DeleteItemFromObjectCaseSensitive(o, key);
  cJSON_AddStringToObject(o, key, v ? v : "");
}

void mlxr_registry_show(mlxr_server *s, mlxr_model_entry *m, cJSON *o) {
  mlxr_registry *g = &s->reg;
  if (!m->from_catalog || !g->cat) return;
  mlxr_model_info info = {0};
  char err[512];
  pthread_mutex_lock(&g->lock);
  int rc = mlxr_catalog_get(g->cat, m->canon, &info, err, sizeof err);
  pthread_mutex_unlock(&g->lock);
  if (rc < 0) return;
  mlxr_modelfile mf = {0};
  mf.from = m->path;
  if (info.chat_template) replace_str(o, "template", info.chat_template);
  mf.template_text = info.chat_template;
  replace_str(o, "system", info.system_prompt);
  mf.system = info.system_prompt;
  cJSON *params = info.parameters_json ? cJSON_Parse(info.parameters_json) : NULL;
  char *ptext = parameters_text(params);
  replace_str(o, "parameters", ptext);
  free(ptext);
  mf.parameters = params;
  /* license and messages blobs */
  mlxr_buf lic = {0};
  char *lics[64];
  int n_lic = 0;
  cJSON *msgs = NULL;
  for (size_t i = 0; i < info.n_blobs; i++) {
    const mlxr_blob_ref *b = &info.blobs[i];
    if (strcmp(b->media_type, MLXR_MEDIA_LICENSE) == 0 && n_lic < 64) {
      char *t = mlxr_registry_read_small_blob(g->store, b);
      if (!t) continue;
      if (lic.len) mlxr_buf_adds(&lic, "\n");
      mlxr_buf_adds(&lic, t);
      lics[n_lic++] = t;
    } else if (strcmp(b->media_type, MLXR_MEDIA_MESSAGES) == 0 && !msgs) {
      char *t = mlxr_registry_read_small_blob(g->store, b);
      msgs = t ? cJSON_Parse(t) : NULL;
      free(t);
    }
  }
  mlxr_buf_add(&lic, "", 0);
  replace_str(o, "license", lic.p ? lic.p : "");
  mlxr_buf_free(&lic);
  mf.licenses = lics;
  mf.n_licenses = n_lic;
  mlxr_modelfile_message mm[256];
  if (cJSON_IsArray(msgs)) {
    for (const cJSON *x = msgs->child; x && mf.n_messages < 256; x = x->next) {
      const cJSON *role = cJSON_GetObjectItemCaseSensitive(x, "role");
      const cJSON *content = cJSON_GetObjectItemCaseSensitive(x, "content");
      if (!cJSON_IsString(role) || !cJSON_IsString(content)) continue;
      mm[mf.n_messages].role = role->valuestring;
      mm[mf.n_messages].content = content->valuestring;
      mf.n_messages++;
    }
    mf.messages = mm;
    cJSON_DeleteItemFromObjectCaseSensitive(o, "messages");
    cJSON_AddItemToObject(o, "messages", cJSON_Duplicate(msgs, true));
  }
  char *text = mlxr_modelfile_format(&mf, NULL);
  mlxr_buf mft = {0};
  mlxr_buf_adds(&mft, "# Modelfile generated by mlxrd\n");
  if (text) mlxr_buf_adds(&mft, text);
  mlxr_buf_add(&mft, "", 0);
  replace_str(o, "modelfile", mft.p);
  mlxr_buf_free(&mft);
  free(text);
  for (int i = 0; i < n_lic; i++) free(lics[i]);
  cJSON_Delete(msgs);
  cJSON_Delete(params);
  cJSON_DeleteItemFromObjectCaseSensitive(o, "details");
  cJSON_AddItemToObject(o, "details", catalog_details(&info));
  char ts[48];
  mlxr_rfc3339(info.created_ms * 1000000, ts, sizeof ts);
  replace_str(o, "modified_at", ts);
  mlxr_model_info_clear(&info);
}

/* ---------------- defaults at generation ---------------- */

void mlxr_registry_apply_options(const mlxr_model_entry *m, cJSON *req) {
  if (!m->params_json || !cJSON_IsObject(req)) return;
  cJSON *opts = cJSON_Parse(m->params_json);
  if (!cJSON_IsObject(opts)) {
    cJSON_Delete(opts);
    return;
  }
  const cJSON *given = cJSON_GetObjectItemCaseSensitive(req, "options");
  if (cJSON_IsObject(given)) { /* the request's own options win */
    for (const cJSON *o = given->child; o; o = o->next) {
      cJSON_DeleteItemFromObjectCaseSensitive(opts, o->string);
      cJSON_AddItemToObject(opts, o->string, cJSON_Duplicate(o, true));
    }
  } else if (given && !cJSON_IsNull(given)) {
    cJSON_Delete(opts); /* malformed: left for parse_options to refuse */
    return;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(req, "options");
  cJSON_AddItemToObject(req, "options", opts);
}

cJSON *mlxr_registry_chat_messages(const mlxr_model_entry *m, const cJSON *messages) {
  if (!cJSON_IsArray(messages)) return NULL;
  bool has_system = false;
  for (const cJSON *x = messages->child; x; x = x->next) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(x, "role");
    if (cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0) has_system = true;
  }
  const bool add_system = m->system && m->system[0] && !has_system;
  cJSON *own = m->messages_json ? cJSON_Parse(m->messages_json) : NULL;
  if (!add_system && !cJSON_IsArray(own)) {
    cJSON_Delete(own);
    return NULL;
  }
  cJSON *out = cJSON_CreateArray();
  if (add_system) {
    cJSON *sys = cJSON_CreateObject();
    cJSON_AddStringToObject(sys, "role", "system");
    cJSON_AddStringToObject(sys, "content", m->system);
    cJSON_AddItemToArray(out, sys);
  }
  for (const cJSON *x = cJSON_IsArray(own) ? own->child : NULL; x; x = x->next)
    cJSON_AddItemToArray(out, cJSON_Duplicate(x, true));
  for (const cJSON *x = messages->child; x; x = x->next) cJSON_AddItemToArray(out, cJSON_Duplicate(x, true));
  cJSON_Delete(own);
  return out;
}

/* ---------------- dispatch ---------------- */

enum MHD_Result mlxr_route_registry(mlxr_req *r, const char *path, bool *handled) {
  *handled = true;
  const bool post = strcmp(r->method, "POST") == 0;
  if (strcmp(path, "/api/create") == 0 || strcmp(path, "/api/copy") == 0) {
    const bool create = path[5] == 'c' && path[6] == 'r';
    r->route = create ? "/api/create" : "/api/copy";
    if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
    return create ? mlxr_registry_create(r) : mlxr_registry_copy(r);
  }
  if (strcmp(path, "/api/delete") == 0) {
    r->route = "/api/delete";
    if (strcmp(r->method, "DELETE") != 0) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use DELETE");
    return mlxr_registry_delete(r);
  }
  if (strncmp(path, "/api/blobs/", 11) == 0) {
    r->route = "/api/blobs";
    if (post) return blob_finish(r); /* its digest was checked on the headers */
    return blob_head(r, path + 11);
  }
  *handled = false;
  return MHD_NO;
}
