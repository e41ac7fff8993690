/*
 * registry_manage.c: the handlers that change the catalog: POST /api/create, POST /api/copy,
 * DELETE /api/delete (routes_registry.c dispatches to them and says what each answers).
 *
 * How create works, as steps: read the request (the new API's fields, or the older `modelfile`
 * parsed with daemon/registry/modelfile.h, whose values the explicit fields override) into a
 * plan; resolve the plan's base (a `files` GGUF blob already uploaded, or the model `from` names:
 * a catalog model's layers and settings, or a --model file imported into the store); requantize
 * it when `quantize` asks (registry_quantize.c); store license and messages as blobs; then, under
 * the registry lock, add the catalog row (replacing a model of the same name, as Ollama does) and publish its entry before tombstoning the entry it
 * replaced. Everything that can be refused is refused before the catalog changes.
 *
 * Copy and delete follow the same order: name checks, the catalog change under the lock, then the
 * entries. Delete tombstones the entry first (a loaded model unloads when its last request ends)
 * and restores it if the catalog refuses.
 *
 * Threads: any connection thread; catalog and entry changes under srv->reg.lock.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/common/status.h"
#include "daemon/registry/modelfile.h"
#include "daemon/server/server_impl.h"

#define MAX_EXTRA 64 /* license and messages blobs of one model */

/* What a created model will be. Strings are owned by the plan. */
typedef struct create_plan {
  char digest[MLXR_DIGEST_STR_SIZE]; /* the model layer */
  mlxr_model_format format;
  char *arch, *quant;
  int64_t n_params, n_ctx;
  char *tmpl, *system, *params_json;
  mlxr_blob_ref extra[MAX_EXTRA]; /* license, messages */
  size_t n_extra;
  char quant_note[160]; /* "quantizing F32 model to Q8_0" when create quantized it, else "" */
} create_plan;

static void plan_free(create_plan *p) {
  free(p->arch), free(p->quant), free(p->tmpl), free(p->system), free(p->params_json);
  memset(p, 0, sizeof *p);
}

static void set_owned(char **dst, const char *v) {
  free(*dst);
  *dst = v ? strdup(v) : NULL;
}

static int plan_from_gguf(create_plan *p, mlxr_store *st, const char *digest, char *err, size_t err_len) {
  char path[4096];
  int rc = mlxr_store_blob_path(st, digest, path, sizeof path, err, err_len);
  if (rc < 0) return rc;
  mlxr_registry_gguf_facts f;
  char e2[400];
  if ((rc = mlxr_registry_read_gguf_facts(path, &f, e2, sizeof e2)) < 0)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "the model file is not a usable GGUF: %s", e2);
  snprintf(p->digest, sizeof p->digest, "%s", digest);
  p->format = MLXR_MODEL_FORMAT_GGUF;
  set_owned(&p->arch, f.arch);
  set_owned(&p->quant, f.quant);
  p->n_params = f.n_params;
  p->n_ctx = f.n_ctx;
  return 0;
}

/* Import a --model file into the store (its bytes, hashed as they are copied). */
static int import_file(mlxr_store *st, const char *path, char digest[MLXR_DIGEST_STR_SIZE], char *err,
                       size_t err_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot open %s", path);
  mlxr_digest d;
  int rc = mlxr_store_put_fd(st, fd, NULL, &d, err, err_len);
  close(fd);
  if (rc < 0) return rc;
  mlxr_digest_str(&d, digest);
  return 0;
}

/* The base of a plan from an existing model m (catalog: its row; file: imported). HTTP status on
 * failure (message in err). */
static int plan_from_model(mlxr_server *s, mlxr_model_entry *m, create_plan *p, char *err, size_t err_len) {
  mlxr_registry *g = &s->reg;
  if (!m->from_catalog) {
    char digest[MLXR_DIGEST_STR_SIZE];
    if (import_file(g->store, m->path, digest, err, err_len) < 0) return 500;
    return plan_from_gguf(p, g->store, digest, err, err_len) < 0 ? 500 : 0;
  }
  mlxr_model_info info = {0};
  pthread_mutex_lock(&g->lock);
  int rc = mlxr_catalog_get(g->cat, m->canon, &info, err, err_len);
  pthread_mutex_unlock(&g->lock);
  if (rc == MLXR_ERR_NOT_FOUND) return 404;
  if (rc < 0) return 500;
  const mlxr_blob_ref *mb = mlxr_registry_model_blob(&info);
  if (!mb) {
    mlxr_model_info_clear(&info);
    return mlxr_errf(err, err_len, 500, "model '%s' has no model layer", m->id);
  }
  snprintf(p->digest, sizeof p->digest, "%s", mb->digest);
  p->format = info.format;
  set_owned(&p->arch, info.architecture);
  set_owned(&p->quant, info.quantization);
  p->n_params = info.parameter_count;
  p->n_ctx = info.context_length;
  set_owned(&p->tmpl, info.chat_template);
  set_owned(&p->system, info.system_prompt);
  set_owned(&p->params_json, info.parameters_json);
  for (size_t i = 0; i < info.n_blobs && p->n_extra < MAX_EXTRA; i++)
    if (&info.blobs[i] != mb) p->extra[p->n_extra++] = info.blobs[i];
  mlxr_model_info_clear(&info);
  return 0;
}

static void drop_extra(create_plan *p, const char *media_type) {
  size_t k = 0;
  for (size_t i = 0; i < p->n_extra; i++)
    if (strcmp(p->extra[i].media_type, media_type) != 0) p->extra[k++] = p->extra[i];
  p->n_extra = k;
}

static int add_extra(create_plan *p, mlxr_store *st, const char *media_type, const char *text, char *err,
                     size_t err_len) {
  if (p->n_extra >= MAX_EXTRA) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "too many license or message layers");
  mlxr_digest d;
  int rc = mlxr_store_put_buffer(st, text, strlen(text), NULL, &d, err, err_len);
  if (rc < 0) return rc;
  mlxr_blob_ref *b = &p->extra[p->n_extra++];
  memset(b, 0, sizeof *b);
  mlxr_digest_str(&d, b->digest);
  snprintf(b->media_type, sizeof b->media_type, "%s", media_type);
  return 0;
}

/* A name a catalog model may take: valid, and not one a --model file is served under. 0 or 400
 * with the message in err. canon gets the canonical form. */
static int check_new_name(mlxr_server *s, const char *name, char canon[MLXR_NAME_MAX + 1], char *err,
                          size_t err_len) {
  char e2[300];
  if (!name || !name[0]) return mlxr_errf(err, err_len, 400, "a model name is required");
  if (mlxr_name_canonical(name, NULL, canon, MLXR_NAME_MAX + 1, e2, sizeof e2) < 0)
    return mlxr_errf(err, err_len, 400, "invalid model name: %s", e2);
  char short_name[MLXR_NAME_MAX + 1];
  mlxr_model_entry *m = mlxr_models_find(&s->models, name);
  if (!m && mlxr_registry_short_name(name, short_name, sizeof short_name, e2, sizeof e2) == 0)
    m = mlxr_models_find(&s->models, short_name);
  if (m && !m->from_catalog)
    return mlxr_errf(err, err_len, 400, "the name '%s' is taken by the file %s given with --model", m->id, m->path);
  return 0;
}

/* Under the lock: add the row, publish the new entry, tombstone the one it replaces. */
static int commit_plan(mlxr_server *s, const char *name, const char *canon, const create_plan *p, char *err,
                       size_t err_len) {
  mlxr_registry *g = &s->reg;
  mlxr_blob_ref blobs[MAX_EXTRA + 1];
  memset(&blobs[0], 0, sizeof blobs[0]);
  snprintf(blobs[0].digest, sizeof blobs[0].digest, "%s", p->digest);
  snprintf(blobs[0].media_type, sizeof blobs[0].media_type, "%s", MLXR_MEDIA_MODEL);
  for (size_t i = 0; i < p->n_extra; i++) blobs[i + 1] = p->extra[i];
  mlxr_model_spec spec = {
      .name = name, .format = p->format, .architecture = p->arch, .parameter_count = p->n_params,
      .quantization = p->quant, .context_length = p->n_ctx, .chat_template = p->tmpl,
      .parameters_json = p->params_json, .system_prompt = p->system, .blobs = blobs, .n_blobs = p->n_extra + 1,
  };
  pthread_mutex_lock(&g->lock);
  mlxr_model_entry *old = mlxr_models_find(&s->models, canon);
  if (old && !old->from_catalog) {
    pthread_mutex_unlock(&g->lock);
    return mlxr_errf(err, err_len, 400, "the name '%s' is taken by the file %s given with --model", old->id, old->path);
  }
  int rc = mlxr_catalog_add(g->cat, &spec, err, err_len);
  mlxr_model_info info = {0};
  if (rc == 0) rc = mlxr_catalog_get(g->cat, name, &info, err, err_len);
  if (rc == 0) rc = mlxr_registry_publish(g, &s->models, &info, NULL, err, err_len);
  if (rc == 0 && old) mlxr_models_remove(old);
  pthread_mutex_unlock(&g->lock);
  mlxr_model_info_clear(&info);
  if (rc == MLXR_ERR_INVALID || rc == MLXR_ERR_NOT_FOUND) return 400;
  return rc < 0 ? 500 : 0;
}

/* ---------------- /api/create ---------------- */

/* files {"name.gguf": "sha256:..."}: the one GGUF's digest into p. HTTP status on failure. */
static int read_files(mlxr_server *s, const cJSON *files, create_plan *p, char *err, size_t err_len) {
  if (!cJSON_IsObject(files)) return mlxr_errf(err, err_len, 400, "'files' must map file names to digests");
  const char *gguf = NULL;
  for (const cJSON *f = files->child; f; f = f->next) {
    const char *fn = f->string;
    char q[100];
    mlxr_registry_quote(fn, q, sizeof q);
    size_t n = strlen(fn);
    if (n == 0 || n > 255 || strchr(fn, '/') || strchr(fn, '\\') || strstr(fn, "..") || fn[0] == '.')
      return mlxr_errf(err, err_len, 400, "invalid file name \"%s\": a plain name without '/', '\\\\' or '..'", q);
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)fn[i] < 0x20) return mlxr_errf(err, err_len, 400, "invalid file name \"%s\"", q);
    if (!cJSON_IsString(f)) return mlxr_errf(err, err_len, 400, "files: \"%s\" must map to a digest string", q);
    mlxr_digest d;
    char e2[300];
    if (mlxr_digest_parse(f->valuestring, &d, e2, sizeof e2) < 0)
      return mlxr_errf(err, err_len, 400, "files: \"%s\": %s", q, e2);
    if (n < 5 || strcmp(fn + n - 5, ".gguf") != 0)
      return mlxr_errf(err, err_len, 400, "files: \"%s\": only GGUF model files (*.gguf) are supported", q);
    if (gguf) return mlxr_errf(err, err_len, 400, "files: more than one GGUF file (adapters are not supported yet)");
    gguf = f->valuestring;
    if (mlxr_store_stat(s->reg.store, gguf, NULL, e2, sizeof e2) < 0)
      return mlxr_errf(err, err_len, 400, "files: \"%s\": blob %s not found: upload it first with POST /api/blobs/%s",
                       q, f->valuestring, f->valuestring);
  }
  if (!gguf) return mlxr_errf(err, err_len, 400, "'files' names no GGUF file");
  char e2[400];
  if (plan_from_gguf(p, s->reg.store, gguf, e2, sizeof e2) < 0) return mlxr_errf(err, err_len, 400, "%s", e2);
  return 0;
}

/* from: an existing model's name (not a path). */
static int read_from(mlxr_server *s, const char *from, create_plan *p, char *err, size_t err_len) {
  char q[100], canon[MLXR_NAME_MAX + 1], e2[300];
  mlxr_registry_quote(from, q, sizeof q);
  if (from[0] == '/' || from[0] == '.' || from[0] == '~' || strchr(from, '\\'))
    return mlxr_errf(err, err_len, 400,
                     "from \"%s\": local paths are not supported; upload the file with POST /api/blobs and name it in 'files'", q);
  if (mlxr_name_canonical(from, NULL, canon, sizeof canon, e2, sizeof e2) < 0 && !mlxr_models_find(&s->models, from))
    return mlxr_errf(err, err_len, 400, "from \"%s\": invalid model name: %s", q, e2);
  mlxr_model_entry *m = mlxr_models_find(&s->models, from);
  if (!m) return mlxr_errf(err, err_len, 404, "model '%s' not found", q);
  int st = plan_from_model(s, m, p, e2, sizeof e2);
  if (st) return mlxr_errf(err, err_len, st == 404 ? 404 : st, "from \"%s\": %s", q, st == 404 ? "not found" : e2);
  return 0;
}

static int check_messages(const cJSON *msgs, char *err, size_t err_len) {
  if (!cJSON_IsArray(msgs)) return mlxr_errf(err, err_len, 400, "'messages' must be an array");
  for (const cJSON *x = msgs->child; x; x = x->next) {
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(x, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(x, "content");
    if (!cJSON_IsString(role) || !cJSON_IsString(content))
      return mlxr_errf(err, err_len, 400, "each message needs a string role and content");
    if (strcmp(role->valuestring, "system") && strcmp(role->valuestring, "user") && strcmp(role->valuestring, "assistant"))
      return mlxr_errf(err, err_len, 400, "message role must be system, user or assistant");
  }
  return 0;
}

/* The modelfile's settings (those the request does not give itself) into j, its FROM into *from. */
static int merge_modelfile(cJSON *j, const mlxr_modelfile *mf, char *err, size_t err_len) {
  if (mf->adapter || mf->draft) return mlxr_errf(err, err_len, 400, "modelfile: ADAPTER and DRAFT are not supported yet");
  if (!cJSON_HasObjectItem(j, "from") && !cJSON_HasObjectItem(j, "files"))
    cJSON_AddStringToObject(j, "from", mf->from);
  if (mf->template_text && !cJSON_HasObjectItem(j, "template")) cJSON_AddStringToObject(j, "template", mf->template_text);
  if (mf->system && !cJSON_HasObjectItem(j, "system")) cJSON_AddStringToObject(j, "system", mf->system);
  if (mf->parameters && cJSON_GetArraySize(mf->parameters) > 0 && !cJSON_HasObjectItem(j, "parameters"))
    cJSON_AddItemToObject(j, "parameters", cJSON_Duplicate(mf->parameters, true));
  if (mf->n_licenses && !cJSON_HasObjectItem(j, "license")) {
    cJSON *a = cJSON_AddArrayToObject(j, "license");
    for (int i = 0; i < mf->n_licenses; i++) cJSON_AddItemToArray(a, cJSON_CreateString(mf->licenses[i]));
  }
  if (mf->n_messages && !cJSON_HasObjectItem(j, "messages")) {
    cJSON *a = cJSON_AddArrayToObject(j, "messages");
    for (int i = 0; i < mf->n_messages; i++) {
      cJSON *m = cJSON_CreateObject();
      cJSON_AddStringToObject(m, "role", mf->messages[i].role);
      cJSON_AddStringToObject(m, "content", mf->messages[i].content);
      cJSON_AddItemToArray(a, m);
    }
  }
  return 0;
}

/* Fill the plan from the request. HTTP status on failure. */
static int build_plan(mlxr_server *s, cJSON *j, create_plan *p, char *err, size_t err_len) {
  mlxr_field_err fe = {{0}, {0}};
  const char *modelfile = NULL, *from = NULL, *tmpl = NULL, *system = NULL, *quantize = NULL;
  if (!mlxr_get_str(j, "modelfile", &modelfile, &fe)) return mlxr_errf(err, err_len, 400, "%s", fe.msg);
  if (modelfile && modelfile[0]) {
    mlxr_modelfile mf;
    char e2[400];
    if (mlxr_modelfile_parse(modelfile, strlen(modelfile), &mf, e2, sizeof e2) < 0)
      return mlxr_errf(err, err_len, 400, "modelfile: %s", e2);
    int rc = merge_modelfile(j, &mf, err, err_len);
    mlxr_modelfile_free(&mf);
    if (rc) return rc;
  }
  if (!mlxr_get_str(j, "from", &from, &fe) || !mlxr_get_str(j, "template", &tmpl, &fe) ||
      !mlxr_get_str(j, "system", &system, &fe) || !mlxr_get_str(j, "quantize", &quantize, &fe))
    return mlxr_errf(err, err_len, 400, "%s", fe.msg);
  const cJSON *adapters = cJSON_GetObjectItemCaseSensitive(j, "adapters");
  if (adapters && !cJSON_IsNull(adapters) && cJSON_GetArraySize(adapters) > 0)
    return mlxr_errf(err, err_len, 400, "'adapters' (LoRA) are not supported yet");
  const cJSON *files = cJSON_GetObjectItemCaseSensitive(j, "files");
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(j, "parameters");
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
  const cJSON *license = cJSON_GetObjectItemCaseSensitive(j, "license");
  if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
    return mlxr_errf(err, err_len, 400, "'parameters' must be an object");
  if (msgs && !cJSON_IsNull(msgs) && check_messages(msgs, err, err_len)) return 400;
  if (license && !cJSON_IsNull(license) && !cJSON_IsString(license) && !cJSON_IsArray(license))
    return mlxr_errf(err, err_len, 400, "'license' must be a string or an array of strings");
  int st;
  if (files && !cJSON_IsNull(files) && cJSON_GetArraySize(files) > 0) {
    if ((st = read_files(s, files, p, err, err_len))) return st;
  } else if (from && from[0]) {
    if ((st = read_from(s, from, p, err, err_len))) return st;
  } else {
    return mlxr_errf(err, err_len, 400, "neither 'from' nor 'files' was specified");
  }
  if (quantize && quantize[0]) {
    char qd[MLXR_DIGEST_STR_SIZE], e2[600], was[32];
    snprintf(was, sizeof was, "%s", p->quant ? p->quant : "?");
    int rc = mlxr_registry_quantize(&s->reg, p->digest, quantize, qd, e2, sizeof e2);
    if (rc < 0) return mlxr_errf(err, err_len, rc == MLXR_ERR_INVALID ? 400 : 500, "quantize: %s", e2);
    if (plan_from_gguf(p, s->reg.store, qd, e2, sizeof e2) < 0) return mlxr_errf(err, err_len, 500, "quantize: %s", e2);
    snprintf(p->quant_note, sizeof p->quant_note, "quantizing %s model to %s", was, p->quant ? p->quant : quantize);
  }
  if (tmpl) set_owned(&p->tmpl, tmpl[0] ? tmpl : NULL);
  if (system) set_owned(&p->system, system[0] ? system : NULL);
  if (cJSON_IsObject(params)) {
    char *pj = mlxr_json_print(params);
    if (!pj) return mlxr_errf(err, err_len, 500, "out of memory");
    free(p->params_json);
    p->params_json = pj;
  }
  char e2[400];
  if (license && !cJSON_IsNull(license)) {
    drop_extra(p, MLXR_MEDIA_LICENSE);
    const cJSON *one = cJSON_IsString(license) ? license : license->child;
    for (; one; one = cJSON_IsString(license) ? NULL : one->next) {
      if (!cJSON_IsString(one)) return mlxr_errf(err, err_len, 400, "'license' must hold strings");
      if (add_extra(p, s->reg.store, MLXR_MEDIA_LICENSE, one->valuestring, e2, sizeof e2) < 0)
        return mlxr_errf(err, err_len, 500, "%s", e2);
    }
  }
  if (cJSON_IsArray(msgs)) {
    drop_extra(p, MLXR_MEDIA_MESSAGES);
    char *mj = mlxr_json_print(msgs);
    int rc = mj ? add_extra(p, s->reg.store, MLXR_MEDIA_MESSAGES, mj, e2, sizeof e2) : MLXR_ERR_NOMEM;
    free(mj);
    if (rc < 0) return mlxr_errf(err, err_len, 500, "%s", e2);
  }
  return 0;
}

enum MHD_Result mlxr_registry_create(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  cJSON *j = r->json;
  mlxr_field_err fe = {{0}, {0}};
  const char *name = NULL;
  bool stream = true;
  if (!mlxr_get_str(j, "model", &name, &fe) || !mlxr_get_bool(j, "stream", &stream, &fe))
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", fe.msg);
  if (!name && !mlxr_get_str(j, "name", &name, &fe)) return mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", fe.msg);
  char err[1024] = "", canon[MLXR_NAME_MAX + 1];
  int st = check_new_name(r->srv, name, canon, err, sizeof err);
  if (st) return mlxr_http_error(r, st, NULL, NULL, NULL, "%s", err);
  create_plan p = {0}; /* build_plan may add items to j (a modelfile's), never the "model" one name is */
  st = build_plan(r->srv, j, &p, err, sizeof err);
  if (!st) st = commit_plan(r->srv, name, canon, &p, err, sizeof err);
  if (st) {
    plan_free(&p);
    return mlxr_http_error(r, st, NULL, NULL, NULL, "%s", err);
  }
  mlxr_buf out = {0};
  char line[300];
  if (stream) {
    if (p.quant_note[0]) {
      snprintf(line, sizeof line, "{\"status\":\"%s\"}\n", p.quant_note); /* printable: dtype names */
      mlxr_buf_adds(&out, line);
    }
    snprintf(line, sizeof line, "{\"status\":\"using existing layer %s\"}\n", p.digest);
    mlxr_buf_adds(&out, line);
    for (size_t i = 0; i < p.n_extra; i++) {
      snprintf(line, sizeof line, "{\"status\":\"using existing layer %s\"}\n", p.extra[i].digest);
      mlxr_buf_adds(&out, line);
    }
    mlxr_buf_adds(&out, "{\"status\":\"writing manifest\"}\n");
  }
  mlxr_buf_adds(&out, stream ? "{\"status\":\"success\"}\n" : "{\"status\":\"success\"}");
  plan_free(&p);
  if (out.oom) {
    mlxr_buf_free(&out);
    return MHD_NO;
  }
  res = mlxr_http_send(r, 200, stream ? "application/x-ndjson" : "application/json; charset=utf-8", out.p, out.len);
  mlxr_buf_free(&out);
  return res;
}

/* ---------------- /api/copy ---------------- */

enum MHD_Result mlxr_registry_copy(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  mlxr_field_err fe = {{0}, {0}};
  const char *src = NULL, *dst = NULL;
  if (!mlxr_get_str(r->json, "source", &src, &fe) || !mlxr_get_str(r->json, "destination", &dst, &fe))
    return mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", fe.msg);
  if (!src || !src[0]) return mlxr_http_error(r, 400, NULL, NULL, NULL, "source is required");
  if (!dst || !dst[0]) return mlxr_http_error(r, 400, NULL, NULL, NULL, "destination is required");
  char err[1024] = "", canon[MLXR_NAME_MAX + 1], q[100];
  int st = check_new_name(r->srv, dst, canon, err, sizeof err);
  if (st) return mlxr_http_error(r, st, NULL, NULL, NULL, "destination: %s", err);
  mlxr_server *s = r->srv;
  mlxr_model_entry *m = mlxr_models_find(&s->models, src);
  if (!m) return mlxr_http_error(r, 404, NULL, NULL, NULL, "model '%s' not found", mlxr_registry_quote(src, q, sizeof q));
  if (m->from_catalog && strcmp(m->canon, canon) == 0)
    return mlxr_http_send(r, 200, NULL, "", 0); /* onto itself */
  create_plan p = {0};
  if (!m->from_catalog) { /* a --model file: imported under the new name */
    st = plan_from_model(s, m, &p, err, sizeof err);
    if (!st) st = commit_plan(s, dst, canon, &p, err, sizeof err);
    plan_free(&p);
    if (st) return mlxr_http_error(r, st == 404 ? 404 : st, NULL, NULL, NULL, "%s", err);
    return mlxr_http_send(r, 200, NULL, "", 0);
  }
  mlxr_registry *g = &s->reg;
  pthread_mutex_lock(&g->lock);
  mlxr_model_entry *old = mlxr_models_find(&s->models, canon);
  int rc = MLXR_OK;
  if (old && !old->from_catalog) {
    rc = mlxr_errf(err, sizeof err, MLXR_ERR_INVALID, "the name is taken by the file %s given with --model", old->path);
  } else if (!mlxr_models_live(m)) {
    rc = mlxr_errf(err, sizeof err, MLXR_ERR_NOT_FOUND, "model '%s' not found", m->id);
  } else {
    rc = mlxr_catalog_copy(g->cat, m->canon, dst, 0, err, sizeof err);
  }
  mlxr_model_info info = {0};
  if (rc == 0) rc = mlxr_catalog_get(g->cat, dst, &info, err, sizeof err);
  if (rc == 0) rc = mlxr_registry_publish(g, &s->models, &info, NULL, err, sizeof err);
  if (rc == 0 && old && old != m) mlxr_models_remove(old);
  pthread_mutex_unlock(&g->lock);
  mlxr_model_info_clear(&info);
  if (rc == MLXR_ERR_NOT_FOUND) return mlxr_http_error(r, 404, NULL, NULL, NULL, "%s", err);
  if (rc == MLXR_ERR_INVALID) return mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", err);
  if (rc < 0) return mlxr_http_error(r, 500, NULL, NULL, NULL, "%s", err);
  return mlxr_http_send(r, 200, NULL, "", 0);
}

/* ---------------- /api/delete ---------------- */

enum MHD_Result mlxr_registry_delete(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  mlxr_field_err fe = {{0}, {0}};
  const char *name = NULL;
  if (!mlxr_get_str(r->json, "model", &name, &fe)) return mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", fe.msg);
  if (!name && !mlxr_get_str(r->json, "name", &name, &fe)) return mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", fe.msg);
  if (!name || !name[0]) return mlxr_http_error(r, 400, NULL, NULL, NULL, "model is required");
  char q[100], err[1024] = "";
  mlxr_registry_quote(name, q, sizeof q);
  mlxr_server *s = r->srv;
  mlxr_registry *g = &s->reg;
  pthread_mutex_lock(&g->lock);
  mlxr_model_entry *m = mlxr_models_find(&s->models, name);
  if (!m) {
    pthread_mutex_unlock(&g->lock);
    return mlxr_http_error(r, 404, NULL, NULL, NULL, "model '%s' not found", q);
  }
  if (!m->from_catalog) {
    pthread_mutex_unlock(&g->lock);
    return mlxr_http_error(r, 400, NULL, NULL, NULL,
                           "model '%s' is the file %s given with --model: it is not in the catalog and cannot be deleted",
                           m->id, m->path);
  }
  mlxr_models_remove(m); /* unloads once its last request is done */
  mlxr_gc_report freed;
  int rc = mlxr_catalog_delete(g->cat, m->canon, &freed, err, sizeof err);
  if (rc < 0 && rc != MLXR_ERR_NOT_FOUND) mlxr_models_restore(m);
  pthread_mutex_unlock(&g->lock);
  if (rc == MLXR_ERR_NOT_FOUND) return mlxr_http_error(r, 404, NULL, NULL, NULL, "model '%s' not found", q);
  if (rc < 0) return mlxr_http_error(r, 500, NULL, NULL, NULL, "cannot delete '%s': %s", q, err);
  return mlxr_http_send(r, 200, NULL, "", 0);
}
