/*
 * models.c: the models this daemon serves. Each is a GGUF file named on the command line (or found
 * in models_dir) and served under its file name less ".gguf". A model has one scheduler while
 * loaded; requests hold it between mlxr_models_acquire and mlxr_models_release, so an unload
 * (Ollama's keep_alive 0) waits for the last of them. A model that was unloaded is loaded again by
 * the next request that needs it. An idle model is unloaded once its keep_alive (default 5 minutes,
 * set by each request as Ollama does; negative: never) has passed, by a reaper thread that looks
 * twice a second. Facts that the listing routes show (size, parameters, chat
 * template) are read once at the first load and never change afterwards.
 *
 * Catalog models (the registry, catalog_models.c) are entries too, added and removed while the
 * daemon runs: the array has a fixed capacity and never moves, an entry is filled in before the
 * count that publishes it is raised (an atomic store), and a deleted or replaced catalog model
 * stays as a tombstone (removed) that lookups skip and acquire refuses, so a pointer a request
 * holds is valid until shutdown.
 *
 * Threads: every entry has its own mutex; loading happens outside it (other requesters wait on
 * the entry's condvar), so one slow load never blocks other models.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "core/common/status.h"
#include "daemon/registry/names.h"
#include "daemon/server/chat.h"
#include "daemon/server/server_impl.h"

static char *id_from_path(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base);
  if (n > 5 && strcmp(base + n - 5, ".gguf") == 0) n -= 5;
  return strndup(base, n);
}

static int add_model(mlxr_models *ms, const char *path, char *err, size_t err_len) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "model file '%s' not found", path);
  char *id = id_from_path(path);
  if (!id || !id[0]) {
    free(id);
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "cannot name a model after '%s'", path);
  }
  for (int i = 0; i < ms->n; i++) {
    if (strcmp(ms->e[i].id, id) == 0) {
      int rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID, "two models would be named '%s'", id);
      free(id);
      return rc;
    }
  }
  if (ms->n >= ms->cap) {
    free(id);
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "too many models (at most %d)", ms->cap);
  }
  mlxr_model_entry *e = &ms->e[ms->n];
  memset(e, 0, sizeof(*e));
  e->id = id;
  e->path = strdup(path);
  e->file_size = (int64_t)st.st_size;
  e->mtime_wall = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  pthread_mutex_init(&e->lock, NULL);
  pthread_cond_init(&e->cond, NULL);
  e->keep_alive_ns = MLXR_DEFAULT_KEEP_ALIVE_NS;
  atomic_init(&e->removed, false);
  ms->n = ms->n + 1; /* publishes the entry (seq_cst store) */
  return e->path ? 0 : MLXR_ERR_NOMEM;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int mlxr_models_add_catalog(mlxr_models *ms, const char *id, const char *canon, const char *path,
                            const char *system, const char *params_json, const char *messages_json,
                            const char *digest_hex, mlxr_model_entry **out, char *err, size_t err_len) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "model blob '%s' not found", path);
  pthread_mutex_lock(&ms->add_lock);
  const int n = ms->n;
  if (n >= ms->cap) {
    pthread_mutex_unlock(&ms->add_lock);
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE,
                     "no room for another model entry (%d created or replaced since start): restart mlxrd", ms->cap);
  }
  mlxr_model_entry *e = &ms->e[n];
  memset(e, 0, sizeof(*e));
  e->id = strdup(id);
  e->path = strdup(path);
  e->canon = strdup(canon);
  e->system = dup_or_null(system);
  e->params_json = dup_or_null(params_json);
  e->messages_json = dup_or_null(messages_json);
  e->from_catalog = true;
  snprintf(e->digest, sizeof e->digest, "%s", digest_hex ? digest_hex : "");
  e->file_size = (int64_t)st.st_size;
  e->mtime_wall = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  e->keep_alive_ns = MLXR_DEFAULT_KEEP_ALIVE_NS;
  atomic_init(&e->removed, false);
  if (!e->id || !e->path || !e->canon || (system && !e->system) || (params_json && !e->params_json) ||
      (messages_json && !e->messages_json)) {
    free(e->id), free(e->path), free(e->canon), free(e->system), free(e->params_json), free(e->messages_json);
    memset(e, 0, sizeof(*e));
    pthread_mutex_unlock(&ms->add_lock);
    return MLXR_ERR_NOMEM;
  }
  pthread_mutex_init(&e->lock, NULL);
  pthread_cond_init(&e->cond, NULL);
  ms->n = n + 1; /* publishes the entry: every field above is written before this store */
  pthread_mutex_unlock(&ms->add_lock);
  if (out) *out = e;
  return 0;
}

void mlxr_models_remove(mlxr_model_entry *m) {
  pthread_mutex_lock(&m->lock);
  atomic_store(&m->removed, true);
  pthread_mutex_unlock(&m->lock);
  mlxr_models_unload(m);
}

void mlxr_models_restore(mlxr_model_entry *m) {
  pthread_mutex_lock(&m->lock);
  atomic_store(&m->removed, false);
  pthread_mutex_unlock(&m->lock);
}

bool mlxr_models_live(mlxr_model_entry *m) { return !atomic_load(&m->removed); }

/* The reaper thread: twice a second, unload every loaded, idle model whose keep_alive ran out. */
static void *reaper_main(void *arg) {
  mlxr_models *ms = arg;
  pthread_mutex_lock(&ms->reaper_lock);
  while (!ms->reaper_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 500 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&ms->reaper_cond, &ms->reaper_lock, &ts);
    if (ms->reaper_stop) break;
    pthread_mutex_unlock(&ms->reaper_lock);
    const int64_t now = mlxr_now_ns();
    for (int i = 0; i < ms->n; i++) {
      mlxr_model_entry *m = &ms->e[i];
      mlxr_sched *to_close = NULL;
      pthread_mutex_lock(&m->lock);
      if (m->sched && !m->loading && m->users == 0 && m->keep_alive_ns >= 0 &&
          now - m->idle_since_ns >= m->keep_alive_ns) {
        to_close = m->sched; /* decided and taken under the lock: no request can slip in between */
        m->sched = NULL;
        m->loading = true;   /* an acquire waits until the close is done, then loads again */
      }
      pthread_mutex_unlock(&m->lock);
      if (to_close) {
        mlxr_sched_close(to_close);
        pthread_mutex_lock(&m->lock);
        m->loading = false;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
      }
    }
    pthread_mutex_lock(&ms->reaper_lock);
  }
  pthread_mutex_unlock(&ms->reaper_lock);
  return NULL;
}

void mlxr_models_set_keep_alive(mlxr_model_entry *m, int64_t ns) {
  pthread_mutex_lock(&m->lock);
  m->keep_alive_ns = ns;
  pthread_mutex_unlock(&m->lock);
}

int64_t mlxr_models_expires_wall(mlxr_model_entry *m) {
  pthread_mutex_lock(&m->lock);
  int64_t ka = m->keep_alive_ns, idle = m->idle_since_ns;
  const bool busy = m->users > 0;
  pthread_mutex_unlock(&m->lock);
  if (ka < 0) return INT64_MAX;
  const int64_t left = busy ? ka : idle + ka - mlxr_now_ns();
  return mlxr_wall_ns() + (left > 0 ? left : 0);
}

int mlxr_models_init(mlxr_models *ms, char *const *paths, int n_paths, const char *dir,
                     const mlxr_sched_params *sp, char *err, size_t err_len) {
  memset(ms, 0, sizeof(*ms));
  ms->sp = *sp;
  pthread_mutex_init(&ms->reaper_lock, NULL);
  pthread_cond_init(&ms->reaper_cond, NULL);
  pthread_mutex_init(&ms->add_lock, NULL);
  const int cap = n_paths + 256 + MLXR_MODELS_CATALOG_SLOTS;
  ms->cap = cap;
  ms->e = calloc((size_t)cap, sizeof(*ms->e));
  if (!ms->e) return MLXR_ERR_NOMEM;
  for (int i = 0; i < n_paths; i++) {
    int rc = add_model(ms, paths[i], err, err_len);
    if (rc < 0) return rc;
  }
  if (dir && dir[0]) {
    DIR *d = opendir(dir);
    if (!d) return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot open models directory '%s'", dir);
    struct dirent *de;
    while ((de = readdir(d)) && ms->n < n_paths + 256) {
      size_t n = strlen(de->d_name);
      if (n <= 5 || strcmp(de->d_name + n - 5, ".gguf") != 0 || de->d_name[0] == '.') continue;
      char path[4096];
      if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path) continue;
      int rc = add_model(ms, path, err, err_len);
      if (rc < 0) {
        closedir(d);
        return rc;
      }
    }
    closedir(d);
  }
  if (pthread_create(&ms->reaper, NULL, reaper_main, ms) != 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "cannot start the keep_alive thread");
  }
  ms->reaper_started = true;
  return 0;
}

void mlxr_models_free(mlxr_models *ms) {
  if (ms->reaper_started) {
    pthread_mutex_lock(&ms->reaper_lock);
    ms->reaper_stop = true;
    pthread_cond_broadcast(&ms->reaper_cond);
    pthread_mutex_unlock(&ms->reaper_lock);
    pthread_join(ms->reaper, NULL);
  }
  pthread_mutex_destroy(&ms->reaper_lock);
  pthread_cond_destroy(&ms->reaper_cond);
  pthread_mutex_destroy(&ms->add_lock);
  for (int i = 0; i < ms->n; i++) {
    mlxr_model_entry *e = &ms->e[i];
    if (e->sched) mlxr_sched_close(e->sched);
    mlxr_template_free(e->tmpl);
    free(e->tmpl_src);
    free(e->tmpl_error);
    free(e->bos_text);
    free(e->eos_text);
    free(e->id);
    free(e->path);
    free(e->canon);
    free(e->system);
    free(e->params_json);
    free(e->messages_json);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->cond);
  }
  free(ms->e);
  memset(ms, 0, sizeof(*ms));
}

mlxr_model_entry *mlxr_models_find(mlxr_models *ms, const char *name) {
  if (!name) return NULL;
  size_t n = strlen(name);
  const int count = ms->n;
  for (int i = 0; i < count; i++) { /* files first: their ids are not registry names */
    if (ms->e[i].from_catalog) continue;
    const char *id = ms->e[i].id;
    size_t il = strlen(id);
    if (strcmp(id, name) == 0) return &ms->e[i];
    if (n == il + 7 && strncmp(name, id, il) == 0 && strcmp(name + il, ":latest") == 0) return &ms->e[i];
  }
  char canon[MLXR_NAME_MAX + 1], nerr[16];
  if (mlxr_name_canonical(name, NULL, canon, sizeof canon, nerr, sizeof nerr) < 0) return NULL;
  for (int i = 0; i < count; i++) {
    mlxr_model_entry *e = &ms->e[i];
    if (e->from_catalog && !atomic_load(&e->removed) && strcasecmp(e->canon, canon) == 0) return e;
  }
  return NULL;
}

static char *token_str(const mlxr_tokenizer *t, int32_t id) {
  if (id < 0) return strdup("");
  const char *s = mlxr_tokenizer_token_text(t, id);
  return strdup(s ? s : "");
}

/* Read the facts of a freshly loaded model (first load only). */
static void read_facts(mlxr_model_entry *e, mlxr_sched *s) {
  const mlxr_gguf *g = mlxr_sched_gguf(s);
  const mlxr_hparams *hp = mlxr_sched_hparams(s);
  const mlxr_tokenizer *tok = mlxr_sched_tokenizer(s);
  e->n_ctx = mlxr_sched_n_ctx(s);
  e->n_ctx_train = hp->n_ctx_train;
  e->n_embd = hp->n_embd;
  snprintf(e->family, sizeof e->family, "%s", hp->arch_name);
  int64_t n_params = 0;
  size_t bytes_by_type[64] = {0};
  for (int64_t i = 0; i < mlxr_gguf_n_tensors(g); i++) {
    const mlxr_gguf_tensor *t = mlxr_gguf_tensor_at(g, i);
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
    n_params += n;
    if (t->n_dims >= 2 && (unsigned)t->type < 64) bytes_by_type[t->type] += t->nbytes;
  }
  e->n_params = n_params;
  int best = 0;
  for (int i = 1; i < 64; i++)
    if (bytes_by_type[i] > bytes_by_type[best]) best = i;
  const char *qn = mlxr_dtype_name((mlxr_dtype)best);
  snprintf(e->quant, sizeof e->quant, "%s", qn ? qn : "unknown");
  for (char *q = e->quant; *q; q++)
    if (*q >= 'a' && *q <= 'z') *q = (char)(*q - 'a' + 'A');
  if (tok) {
    e->bos_text = token_str(tok, mlxr_tokenizer_bos(tok));
    e->eos_text = token_str(tok, mlxr_tokenizer_eos(tok));
  }
  size_t len = 0;
  const char *src = mlxr_gguf_get_str(g, "tokenizer.chat_template", &len);
  if (!src) {
    src = mlxr_chat_fallback_template;
    len = strlen(src);
    e->tmpl_is_fallback = true;
  }
  e->tmpl_src = strndup(src, len);
  char err[512] = "";
  if (mlxr_template_new(src, len, &e->tmpl, err, sizeof err) < 0) {
    e->tmpl = NULL;
    char msg[600];
    snprintf(msg, sizeof msg, "the model's chat template does not compile: %s", err);
    e->tmpl_error = strdup(msg);
  }
  e->facts_ready = true;
}

int mlxr_models_acquire(mlxr_models *ms, mlxr_model_entry *m, mlxr_sched **out, int64_t *load_ns,
                        char *err, size_t err_len) {
  *load_ns = 0;
  pthread_mutex_lock(&m->lock);
  while (m->loading) pthread_cond_wait(&m->cond, &m->lock);
  if (atomic_load(&m->removed)) {
    pthread_mutex_unlock(&m->lock);
    return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "model '%s' was deleted", m->id);
  }
  if (!m->sched) {
    m->loading = true;
    pthread_mutex_unlock(&m->lock);
    int64_t t0 = mlxr_now_ns();
    mlxr_sched *s = NULL;
    int rc = mlxr_sched_open(m->path, &ms->sp, &s, err, err_len);
    int64_t dt = mlxr_now_ns() - t0;
    pthread_mutex_lock(&m->lock);
    m->loading = false;
    if (rc < 0) {
      pthread_cond_broadcast(&m->cond);
      pthread_mutex_unlock(&m->lock);
      return rc;
    }
    if (atomic_load(&m->removed)) { /* deleted while it loaded: nobody would unload it */
      pthread_cond_broadcast(&m->cond);
      pthread_mutex_unlock(&m->lock);
      mlxr_sched_close(s);
      return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "model '%s' was deleted", m->id);
    }
    if (!m->facts_ready) read_facts(m, s);
    m->sched = s;
    m->load_ns = dt;
    m->loaded_at_wall = mlxr_wall_ns();
    m->unload_when_idle = false;
    *load_ns = dt;
    pthread_cond_broadcast(&m->cond);
  }
  m->users++;
  *out = m->sched;
  pthread_mutex_unlock(&m->lock);
  return 0;
}

void mlxr_models_release(mlxr_model_entry *m) {
  mlxr_sched *to_close = NULL;
  pthread_mutex_lock(&m->lock);
  m->users--;
  if (m->users == 0) m->idle_since_ns = mlxr_now_ns();
  if (m->users == 0 && m->unload_when_idle) {
    to_close = m->sched;
    m->sched = NULL;
    m->unload_when_idle = false;
    m->loading = true; /* a concurrent acquire waits until the close is done */
  }
  pthread_mutex_unlock(&m->lock);
  if (to_close) {
    mlxr_sched_close(to_close);
    pthread_mutex_lock(&m->lock);
    m->loading = false;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
  }
}

void mlxr_models_unload(mlxr_model_entry *m) {
  pthread_mutex_lock(&m->lock);
  if (!m->sched) {
    pthread_mutex_unlock(&m->lock);
    return;
  }
  m->unload_when_idle = true;
  m->users++; /* released below: closes now if nobody else holds it */
  pthread_mutex_unlock(&m->lock);
  mlxr_models_release(m);
}

bool mlxr_models_loaded(mlxr_model_entry *m) {
  pthread_mutex_lock(&m->lock);
  bool l = m->sched != NULL;
  pthread_mutex_unlock(&m->lock);
  return l;
}
