/*
 * test_registry_push.c: pushing models (daemon/registry/push.c) to the local registry
 * (tests/golden/registry_server.py), whose upload side checks every blob's digest itself
 * (hashlib), and pulling them back.
 *
 * Checked properties: a model pulled, copied to a new name and pushed to a registry that lacks its
 * blobs uploads each blob once (HEAD 404, POST, PATCH, PUT ?digest=, as the server's log shows) and
 * then the manifest; the registry's blobs then hash (sha256sum) to their names; the manifest it
 * received, read here with cJSON (not the code under test), lists the same config and layers
 * (digests, media types, sizes) as the original, its sha256sum is the digest push reports, and
 * progress comes as Ollama's ("retrieving manifest", "pushing <12 hex>" per blob ending complete,
 * "pushing manifest", "success"); pulling the pushed name into a fresh store gives a row with the
 * same blobs and fields; pushing again uploads nothing; a model without a config blob is refused;
 * a model pulled from a URL (its config blob written by MLXR) survives the same round trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/formats/gguf.h"
#include "daemon/registry/push.h"
#include "tests/unit/test_registry_pull_env.h"

#define CONFIG_TEXT "{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"model_type\":\"1.0B\",\"file_type\":\"Q8_0\"}"

/* Removes every blob of the registry (so a push must upload). */
static void clear_registry_blobs(penv *e) {
  char dir[1300];
  snprintf(dir, sizeof dir, "%s/blobs", e->s.root);
  reg_rmtree(dir);
  mkdir(dir, 0755);
}

/* Both rows list the same blobs and adapters (digest, media type, size) and fields. */
static void check_same_row(const mlxr_model_info *a, const mlxr_model_info *b, const char *what) {
  CHECK(a->n_blobs == b->n_blobs && a->n_adapters == b->n_adapters, "%s: %zu/%zu blobs, %zu/%zu adapters", what,
        a->n_blobs, b->n_blobs, a->n_adapters, b->n_adapters);
  for (size_t i = 0; i < a->n_blobs && i < b->n_blobs; i++) {
    CHECK(strcmp(a->blobs[i].digest, b->blobs[i].digest) == 0 &&
              strcmp(a->blobs[i].media_type, b->blobs[i].media_type) == 0 && a->blobs[i].size == b->blobs[i].size,
          "%s: blob %zu differs", what, i);
  }
  for (size_t i = 0; i < a->n_adapters && i < b->n_adapters; i++) {
    CHECK(strcmp(a->adapters[i].digest, b->adapters[i].digest) == 0, "%s: adapter %zu differs", what, i);
  }
  CHECK(a->format == b->format && a->parameter_count == b->parameter_count && a->context_length == b->context_length,
        "%s: fields differ", what);
  CHECK((a->architecture == NULL) == (b->architecture == NULL) &&
            (!a->architecture || strcmp(a->architecture, b->architecture) == 0),
        "%s: architecture differs", what);
  CHECK((a->chat_template == NULL) == (b->chat_template == NULL) &&
            (!a->chat_template || strcmp(a->chat_template, b->chat_template) == 0),
        "%s: template differs", what);
}

/* The registry's manifest for me/<model>/<tag>, read with cJSON, lists exactly the row's blobs. */
static void check_registry_manifest(penv *e, const char *model, const char *tag, const mlxr_model_info *row,
                                    const char *reported_digest) {
  char path[1600], hex[65] = "";
  snprintf(path, sizeof path, "%s/manifests/me/%s/%s", e->s.root, model, tag);
  CHECK(reg_sha256sum(path, hex) && strcmp(reported_digest + 7, hex) == 0, "manifest digest %s, sha256sum %s",
        reported_digest, hex);
  FILE *f = fopen(path, "rb");
  static char text[65536];
  const size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f) fclose(f);
  text[n] = '\0';
  cJSON *j = cJSON_Parse(text);
  const cJSON *cfg = cJSON_GetObjectItem(j, "config"), *layers = cJSON_GetObjectItem(j, "layers");
  CHECK(j && cJSON_GetObjectItem(j, "schemaVersion") && cJSON_GetObjectItem(j, "schemaVersion")->valueint == 2 &&
            cJSON_IsObject(cfg) && cJSON_IsArray(layers),
        "pushed manifest shape: %s", text);
  /* every row blob is the config or a layer, with its media type and size; adapters as adapter layers */
  size_t matched = 0;
  for (size_t i = 0; i < row->n_blobs + row->n_adapters && j; i++) {
    const bool is_adapter = i >= row->n_blobs;
    const char *digest = is_adapter ? row->adapters[i - row->n_blobs].digest : row->blobs[i].digest;
    const char *mt = is_adapter ? MT_ADAPTER : row->blobs[i].media_type;
    const long long size = is_adapter ? row->adapters[i - row->n_blobs].size : row->blobs[i].size;
    bool found = false;
    const cJSON *it = strcmp(mt, MT_CONFIG) == 0 ? cfg : NULL;
    if (it) {
      found = strcmp(cJSON_GetObjectItem(it, "digest")->valuestring, digest) == 0 &&
              (long long)cJSON_GetObjectItem(it, "size")->valuedouble == size;
    } else {
      cJSON_ArrayForEach(it, layers) {
        if (strcmp(cJSON_GetObjectItem(it, "digest")->valuestring, digest) == 0 &&
            strcmp(cJSON_GetObjectItem(it, "mediaType")->valuestring, mt) == 0 &&
            (long long)cJSON_GetObjectItem(it, "size")->valuedouble == size) {
          found = true;
        }
      }
    }
    CHECK(found, "pushed manifest lacks %s %s", mt, digest);
    matched += found;
  }
  CHECK(j && matched == (size_t)cJSON_GetArraySize(layers) + 1, "pushed manifest has %d layers, the row %zu blobs",
        j ? cJSON_GetArraySize(layers) : -1, matched);
  cJSON_Delete(j);
}

static void check_push_progress(const prog_log *pl, int n_blobs) {
  const int last = (pl->n < 4096 ? pl->n : 4096) - 1;
  CHECK(last > 2 && strcmp(pl->ev[0].status, "retrieving manifest") == 0 &&
            strcmp(pl->ev[last].status, "success") == 0 && strcmp(pl->ev[last - 1].status, "pushing manifest") == 0,
        "push progress order");
  int complete = 0;
  for (int i = 1; i < last - 1; i++) {
    char want[32];
    snprintf(want, sizeof want, "pushing %.12s", pl->ev[i].digest + 7);
    CHECK(strcmp(pl->ev[i].status, want) == 0, "push event \"%s\"", pl->ev[i].status);
    complete += pl->ev[i].completed == pl->ev[i].total;
  }
  CHECK(complete == n_blobs, "%d blobs reported complete, want %d", complete, n_blobs);
}

/* Push `src` (already in e's catalog) as 127.0.0.1/me/<model>:<tag>, then pull it into fresh. */
static void round_trip(penv *e, penv *fresh, const char *src, const char *model, const char *tag) {
  char dst[128], err[1024] = "";
  snprintf(dst, sizeof dst, "127.0.0.1/me/%s:%s", model, tag);
  CHECK(mlxr_catalog_copy(e->cat, src, dst, 0, err, sizeof err) == MLXR_OK, "copy: %s", err);
  clear_registry_blobs(e);
  srv_log_clear(&e->s);
  mlxr_pull_params p = penv_params(e);
  static prog_log pl;
  memset(&pl, 0, sizeof pl);
  p.progress = prog_record;
  p.progress_ctx = &pl;
  mlxr_push_stats ps;
  int rc = mlxr_push_model(e->st, e->cat, dst, &p, &ps, err, sizeof err);
  CHECK(rc == MLXR_OK, "push %s: %s", dst, err);
  mlxr_model_info row;
  CHECK(mlxr_catalog_get(e->cat, dst, &row, err, sizeof err) == MLXR_OK, "get %s: %s", dst, err);
  const int n_blobs = (int)(row.n_blobs + row.n_adapters);
  CHECK(ps.n_blobs == n_blobs && ps.n_uploaded == n_blobs && ps.bytes_uploaded == row.total_size,
        "push stats: %d blobs, %d uploaded, %lld bytes (row: %d blobs, %lld bytes)", ps.n_blobs, ps.n_uploaded,
        (long long)ps.bytes_uploaded, n_blobs, (long long)row.total_size);
  check_push_progress(&pl, n_blobs);
  srv_req log[128];
  const int n = srv_log_wait(&e->s, log, 128, 4 * n_blobs + 1);
  int heads = 0, posts = 0, patches = 0, puts = 0;
  for (int i = 0; i < n; i++) {
    heads += strcmp(log[i].method, "HEAD") == 0 && log[i].status == 404;
    posts += strcmp(log[i].method, "POST") == 0 && log[i].status == 202;
    patches += strcmp(log[i].method, "PATCH") == 0 && log[i].status == 202;
    puts += strcmp(log[i].method, "PUT") == 0 && log[i].status == 201;
  }
  CHECK(heads == n_blobs && posts == n_blobs && patches == n_blobs && puts == n_blobs + 1,
        "push requests: %d HEAD 404, %d POST, %d PATCH, %d PUT (want %d each, PUT +1)", heads, posts, patches, puts,
        n_blobs);
  char rblobs[1300];
  snprintf(rblobs, sizeof rblobs, "%s/blobs", e->s.root);
  int checked = 0;
  CHECK(reg_check_final_names(rblobs, &checked) == 0 && checked == n_blobs, "registry blobs: %d checked", checked);
  check_registry_manifest(e, model, tag, &row, ps.manifest_digest);

  /* back into a fresh store */
  rc = mlxr_pull_model(fresh->st, fresh->cat, dst, &p, NULL, err, sizeof err);
  CHECK(rc == MLXR_OK, "pull back %s: %s", dst, err);
  mlxr_model_info back;
  if (mlxr_catalog_get(fresh->cat, dst, &back, err, sizeof err) == MLXR_OK) {
    check_same_row(&row, &back, dst);
    mlxr_model_info_clear(&back);
  } else {
    CHECK(false, "pulled-back row: %s", err);
  }

  /* again: everything is there */
  srv_log_clear(&e->s);
  rc = mlxr_push_model(e->st, e->cat, dst, &p, &ps, err, sizeof err);
  CHECK(rc == MLXR_OK && ps.n_uploaded == 0 && ps.bytes_uploaded == 0, "second push: %s, %d uploaded", err,
        ps.n_uploaded);
  const int n2 = srv_log_wait(&e->s, log, 128, n_blobs + 1);
  CHECK(n2 == n_blobs + 1, "second push made %d requests, want %d", n2, n_blobs + 1);
  mlxr_model_info_clear(&row);
}

static bool write_gguf(const char *path) {
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  char err[512];
  int rc = w ? 0 : -1;
  const int64_t ne[1] = {8};
  float data[8] = {0};
  if (rc == 0) rc = mlxr_gguf_set_str(w, "general.architecture", "qwen2");
  if (rc == 0) rc = mlxr_gguf_add_tensor(w, "t", MLXR_DTYPE_F32, 1, ne);
  if (rc == 0) rc = mlxr_gguf_writer_begin(w, path, err, sizeof err);
  if (rc == 0) rc = mlxr_gguf_writer_write_tensor(w, data, sizeof data, err, sizeof err);
  if (rc == 0) rc = mlxr_gguf_writer_finish(w, err, sizeof err);
  mlxr_gguf_writer_free(w);
  return rc == 0;
}

int main(void) {
  alarm(120);
  penv e, fresh;
  memset(&e, 0, sizeof e);
  if (!reg_mkdtemp("push", e.tmp, sizeof e.tmp)) return 1;
  if (!srv_start(&e.s, e.tmp)) {
    CHECK(false, "the local registry did not start");
    srv_stop(&e.s);
    reg_rmtree(e.tmp);
    return check_report("test_registry_push");
  }
  fresh = e;
  if (penv_open(&e, "src") && penv_open(&fresh, "fresh")) {
    /* a model in the registry, pulled */
    layer cfg, layers[4];
    put_text_layer(&e, &cfg, MT_CONFIG, CONFIG_TEXT);
    put_random_layer(&e, &layers[0], MT_MODEL, 200000, 1);
    put_random_layer(&e, &layers[1], MT_ADAPTER, 3000, 2);
    put_text_layer(&e, &layers[2], MT_TEMPLATE, "{{ .Prompt }}");
    put_text_layer(&e, &layers[3], MT_PARAMS, "{\"temperature\":0.1}");
    put_manifest(&e, "src", "v1", &cfg, layers, 4);
    mlxr_pull_params p = penv_params(&e);
    char err[1024] = "";
    CHECK(mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/src:v1", &p, NULL, err, sizeof err) == MLXR_OK, "pull: %s", err);
    round_trip(&e, &fresh, "127.0.0.1/me/src:v1", "pushed", "v2");

    /* a model from a URL, whose config blob MLXR wrote */
    char path[1300];
    snprintf(path, sizeof path, "%s/t.gguf", e.tmp);
    CHECK(write_gguf(path), "write GGUF");
    static unsigned char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    const size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    char hex[65], url[256];
    CHECK(srv_put_blob(&e.s, buf, n, hex), "put GGUF");
    snprintf(url, sizeof url, "%s/cdn/sha256:%s", e.s.base, hex);
    CHECK(mlxr_pull_url(e.st, e.cat, url, "127.0.0.1/me/gg:v1", NULL, &p, NULL, err, sizeof err) == MLXR_OK,
          "URL pull: %s", err);
    round_trip(&e, &fresh, "127.0.0.1/me/gg:v1", "ggpushed", "latest");

    /* no config blob: refused */
    mlxr_blob_ref only = {0};
    snprintf(only.digest, sizeof only.digest, "sha256:%s", hex);
    snprintf(only.media_type, sizeof only.media_type, "%s", MT_MODEL);
    const mlxr_model_spec sp = {.name = "127.0.0.1/me/noconfig:v1", .format = MLXR_MODEL_FORMAT_GGUF, .blobs = &only, .n_blobs = 1};
    CHECK(mlxr_catalog_add(e.cat, &sp, err, sizeof err) == MLXR_OK, "add: %s", err);
    char *before = reg_snapshot(e.root, NULL);
    int rc = mlxr_push_model(e.st, e.cat, "127.0.0.1/me/noconfig:v1", &p, NULL, err, sizeof err);
    CHECK(rc == MLXR_ERR_UNSUPPORTED && strstr(err, "no config blob"), "push without config: %d %s", rc, err);
    char *after = reg_snapshot(e.root, NULL);
    CHECK(strcmp(before, after) == 0 && reg_count_entries(e.blobs, "-partial") == 0, "a push changed the store");
    free(before);
    free(after);
    rc = mlxr_push_model(e.st, e.cat, "127.0.0.1/me/absent:v1", &p, NULL, err, sizeof err);
    CHECK(rc == MLXR_ERR_NOT_FOUND, "push of an absent model: %d %s", rc, err);
  }
  penv_close(&e);
  penv_close(&fresh);
  srv_stop(&e.s);
  reg_rmtree(e.tmp);
  return check_report("test_registry_push");
}
