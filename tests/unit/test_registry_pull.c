/*
 * test_registry_pull.c: pulling models (daemon/registry/pull*.c, transfer.c) from a local registry
 * (tests/golden/registry_server.py, started here), checked against references independent of the
 * code under test: coreutils' sha256sum for every digest, the server's own request log for what
 * went over the wire, manifests written by hand.
 *
 * Checked properties:
 *   - a pull stores every blob under its name (sha256sum agrees), leaves no partial file, and adds
 *     one catalog row with every blob's media type and size, the config's family, parameter count
 *     and quantization, the template, system prompt and params, adapters as adapters; progress
 *     comes in Ollama's order ("pulling manifest", "pulling <12 hex>" per blob ending at
 *     completed == total, "verifying sha256 digest", "writing manifest", "success"); the manifest
 *     digest is sha256sum's of the manifest file; pulling again downloads no blob;
 *   - a connection dropped at byte N leaves a partial file of N bytes, no final name and no row;
 *     the next pull asks for "bytes=N-", the server sends exactly size - N bytes, and the blob is
 *     right; with retries, one call survives two drops and the server sends each byte once; a
 *     server that ignores the Range (200) still gives the right blob;
 *   - redirects (307 to another path) are followed;
 *   - wrong bytes for a digest (of the model, streamed to the store, and of the config, fetched
 *     into memory), a response that is too long, a truncated response (after the retries), a 404
 *     and a 500 blob are each refused with a clear message, with nothing under a final name (a
 *     snapshot of the store's files, resumable partials aside, is unchanged; wrong bytes leave no
 *     partial either, and any partial left holds only the blob's true first bytes) and no row;
 *   - a stalled server is given up on after the stall timeout, well before it would answer;
 *   - the progress callback can cancel; plain http to a non-loopback host (including 128.0.0.1
 *     and a name that starts like 127.0.0.1), other schemes and credentials in URLs are refused
 *     before any request; a name's own host is used with insecure when no base URL is given;
 *   - a URL pull of a GGUF (written with the GGUF writer) stores it and a config blob and reads
 *     architecture, context length, quantization and parameter count from it; a URL to a file
 *     that is not a GGUF is refused with the store unchanged.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/formats/gguf.h"
#include "tests/unit/test_registry_pull_env.h"

#define TEMPLATE_TEXT "{{ .System }}\n{{ .Prompt }}"
#define SYSTEM_TEXT "You are a test."
#define PARAMS_TEXT "{\"stop\":[\"<|end|>\"],\"temperature\":0.5}"
#define LICENSE_TEXT "Test license, free to use."
#define MESSAGES_TEXT "[{\"role\":\"user\",\"content\":\"hi\"}]"
#define CONFIG_TEXT                                                                                              \
  "{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"model_families\":[\"llama\"],\"model_type\":\"8.0B\"," \
  "\"file_type\":\"Q4_K_M\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"

enum { MODEL_SIZE = 300000, ADAPTER_SIZE = 20000 };

typedef struct fixture {
  layer config;
  layer layers[8];
  int n;
} fixture;

/* The full model "me/<model>:v1": model, adapter, template, system, params, license, messages. */
static void make_full(penv *e, fixture *f, const char *model, uint64_t seed) {
  memset(f, 0, sizeof *f);
  put_text_layer(e, &f->config, MT_CONFIG, CONFIG_TEXT);
  put_random_layer(e, &f->layers[f->n++], MT_MODEL, MODEL_SIZE, seed);
  put_random_layer(e, &f->layers[f->n++], MT_ADAPTER, ADAPTER_SIZE, seed + 1);
  put_text_layer(e, &f->layers[f->n++], MT_TEMPLATE, TEMPLATE_TEXT);
  put_text_layer(e, &f->layers[f->n++], MT_SYSTEM, SYSTEM_TEXT);
  put_text_layer(e, &f->layers[f->n++], MT_PARAMS, PARAMS_TEXT);
  put_text_layer(e, &f->layers[f->n++], MT_LICENSE, LICENSE_TEXT);
  put_text_layer(e, &f->layers[f->n++], MT_MESSAGES, MESSAGES_TEXT);
  put_manifest(e, model, "v1", &f->config, f->layers, f->n);
}

/* A model "me/<model>:v1" of a config and one random model layer of size bytes. */
static void make_small(penv *e, fixture *f, const char *model, size_t size, uint64_t seed) {
  memset(f, 0, sizeof *f);
  put_text_layer(e, &f->config, MT_CONFIG, CONFIG_TEXT);
  put_random_layer(e, &f->layers[f->n++], MT_MODEL, size, seed);
  put_manifest(e, model, "v1", &f->config, f->layers, f->n);
}

static void check_blobs_hash(penv *e, const char *when) {
  int n = 0;
  const int bad = reg_check_final_names(e->blobs, &n);
  CHECK(bad == 0, "%s: %d stored blob(s) do not hash to their names (sha256sum)", when, bad);
}

/* The catalog has no row for me/<model>:v1. */
static void check_no_row(penv *e, const char *model, const char *when) {
  char name[128];
  snprintf(name, sizeof name, "127.0.0.1/me/%s:v1", model);
  mlxr_model_info mi;
  char err[512];
  CHECK(mlxr_catalog_get(e->cat, name, &mi, err, sizeof err) == MLXR_ERR_NOT_FOUND, "%s: a catalog row exists", when);
  mlxr_model_info_clear(&mi);
}

/* ---- a complete pull ---- */

static void check_progress(const prog_log *pl, const fixture *f) {
  CHECK(pl->n > 0 && pl->n <= 4096, "progress events: %d", pl->n);
  CHECK(strcmp(pl->ev[0].status, "pulling manifest") == 0, "first status \"%s\"", pl->ev[0].status);
  const int last = (pl->n < 4096 ? pl->n : 4096) - 1;
  CHECK(strcmp(pl->ev[last].status, "success") == 0, "last status \"%s\"", pl->ev[last].status);
  CHECK(last >= 2 && strcmp(pl->ev[last - 1].status, "writing manifest") == 0, "before success: \"%s\"",
        pl->ev[last - 1].status);
  CHECK(last >= 2 && strcmp(pl->ev[last - 2].status, "verifying sha256 digest") == 0, "before writing: \"%s\"",
        pl->ev[last - 2].status);
  for (int i = -1; i < f->n; i++) {
    const layer *l = i < 0 ? &f->config : &f->layers[i];
    char status[64], digest[80];
    snprintf(status, sizeof status, "pulling %.12s", l->hex);
    snprintf(digest, sizeof digest, "sha256:%s", l->hex);
    long long done = -1;
    for (int k = 0; k <= last; k++) {
      const prog_event *ev = &pl->ev[k];
      if (strcmp(ev->digest, digest) != 0) continue;
      CHECK(strcmp(ev->status, status) == 0 && ev->total == l->size && ev->completed <= ev->total,
            "blob event \"%s\" %lld/%lld for %s", ev->status, ev->completed, ev->total, digest);
      CHECK(ev->completed >= done, "progress of %s went backwards", digest);
      done = ev->completed;
    }
    CHECK(done == l->size, "last progress of %s: %lld of %lld", digest, done, l->size);
  }
}

static void test_pull_full(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "full")) return;
  fixture f;
  make_full(&e, &f, "full", 11);
  srv_log_clear(&e.s);
  mlxr_pull_params p = penv_params(&e);
  static prog_log pl;
  memset(&pl, 0, sizeof pl);
  p.progress = prog_record;
  p.progress_ctx = &pl;
  mlxr_pull_stats stats;
  char err[1024] = "";
  int rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/full:v1", &p, &stats, err, sizeof err);
  CHECK(rc == MLXR_OK, "pull: %s", err);
  check_blobs_hash(&e, "full pull");
  for (int i = -1; i < f.n; i++) {
    const layer *l = i < 0 ? &f.config : &f.layers[i];
    CHECK(store_has(&e, l->hex, ""), "blob %s not stored", l->hex);
  }
  CHECK(reg_count_entries(e.blobs, "-partial") == 0, "partial files left");
  CHECK(stats.n_blobs == f.n + 1, "n_blobs %d", stats.n_blobs);
  long long all = f.config.size;
  for (int i = 0; i < f.n; i++) all += f.layers[i].size;
  CHECK(stats.bytes_downloaded == all, "downloaded %lld of %lld", (long long)stats.bytes_downloaded, all);
  CHECK(strcmp(stats.canonical_name, "127.0.0.1/me/full:v1") == 0, "name %s", stats.canonical_name);
  char mpath[1600], mhex[65] = "";
  snprintf(mpath, sizeof mpath, "%s/manifests/me/full/v1", e.s.root);
  CHECK(reg_sha256sum(mpath, mhex) && strncmp(stats.manifest_digest, "sha256:", 7) == 0 &&
            strcmp(stats.manifest_digest + 7, mhex) == 0,
        "manifest digest %s, sha256sum %s", stats.manifest_digest, mhex);
  check_progress(&pl, &f);

  /* the row */
  mlxr_model_info mi;
  rc = mlxr_catalog_get(e.cat, "127.0.0.1/me/full:v1", &mi, err, sizeof err);
  CHECK(rc == MLXR_OK, "get: %s", err);
  if (rc == MLXR_OK) {
    CHECK(mi.format == MLXR_MODEL_FORMAT_GGUF, "format");
    CHECK(mi.architecture && strcmp(mi.architecture, "llama") == 0, "architecture %s", mi.architecture);
    CHECK(mi.parameter_count == 8000000000LL, "parameter count %lld", (long long)mi.parameter_count);
    CHECK(mi.quantization && strcmp(mi.quantization, "Q4_K_M") == 0, "quantization %s", mi.quantization);
    CHECK(mi.chat_template && strcmp(mi.chat_template, TEMPLATE_TEXT) == 0, "template %s", mi.chat_template);
    CHECK(mi.system_prompt && strcmp(mi.system_prompt, SYSTEM_TEXT) == 0, "system %s", mi.system_prompt);
    CHECK(mi.parameters_json && strstr(mi.parameters_json, "<|end|>") && strstr(mi.parameters_json, "temperature"),
          "parameters %s", mi.parameters_json);
    /* blobs: the layers but the adapter, in order, then the config */
    CHECK(mi.n_blobs == (size_t)f.n, "n_blobs %zu", mi.n_blobs);
    size_t k = 0;
    for (int i = 0; i <= f.n && k < mi.n_blobs; i++) {
      const layer *l = i == f.n ? &f.config : &f.layers[i];
      if (strcmp(l->media_type, MT_ADAPTER) == 0) continue;
      CHECK(strcmp(mi.blobs[k].digest + 7, l->hex) == 0 && strcmp(mi.blobs[k].media_type, l->media_type) == 0 &&
                mi.blobs[k].size == l->size,
            "blob %zu: %s %s %lld, want %s %s %lld", k, mi.blobs[k].digest, mi.blobs[k].media_type,
            (long long)mi.blobs[k].size, l->hex, l->media_type, l->size);
      k++;
    }
    CHECK(mi.n_adapters == 1 && strcmp(mi.adapters[0].digest + 7, f.layers[1].hex) == 0 &&
              mi.adapters[0].size == ADAPTER_SIZE && mi.adapters[0].scale == 1.0,
          "adapters: %zu", mi.n_adapters);
    CHECK(mi.total_size == all, "total size %lld, want %lld", (long long)mi.total_size, all);
  }
  mlxr_model_info_clear(&mi);
  mlxr_integrity_report ir;
  CHECK(mlxr_catalog_check(e.cat, true, &ir, err, sizeof err) == MLXR_OK, "catalog check: %s", err);

  /* again: nothing to download */
  srv_log_clear(&e.s);
  rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/full:v1", &p, &stats, err, sizeof err);
  CHECK(rc == MLXR_OK, "second pull: %s", err);
  srv_req log[64];
  const int n = srv_log_wait(&e.s, log, 64, 1);
  CHECK(n == 1 && strstr(log[0].path, "/manifests/"), "second pull made %d requests (want the manifest only)", n);
  CHECK(stats.bytes_downloaded == 0 && stats.bytes_present == all, "second pull downloaded %lld",
        (long long)stats.bytes_downloaded);
  penv_close(&e);
}

/* ---- resume ---- */

static void test_resume_across_calls(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "resume")) return;
  enum { SIZE = 1000000, CUT = 400000 };
  fixture f;
  make_small(&e, &f, "resume", SIZE, 21);
  char faults[256];
  snprintf(faults, sizeof faults, "{\"drop_at\":{\"%s\":[%d,1]}}", f.layers[0].hex, CUT);
  srv_faults(&e.s, faults);
  srv_log_clear(&e.s);
  mlxr_pull_params p = penv_params(&e);
  char err[1024] = "";
  int rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/resume:v1", &p, NULL, err, sizeof err);
  CHECK(rc == MLXR_ERR_IO, "a dropped pull without retries fails: %d %s", rc, err);
  char partial[4400];
  snprintf(partial, sizeof partial, "%s/sha256-%s-partial", e.blobs, f.layers[0].hex);
  CHECK(file_size(partial) == CUT, "partial file has %lld bytes, want %d", file_size(partial), CUT);
  CHECK(!store_has(&e, f.layers[0].hex, ""), "a final name after a dropped pull");
  check_no_row(&e, "resume", "after a dropped pull");

  srv_log_clear(&e.s);
  mlxr_pull_stats stats;
  rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/resume:v1", &p, &stats, err, sizeof err);
  CHECK(rc == MLXR_OK, "resumed pull: %s", err);
  srv_req log[64];
  const int n = srv_log_wait(&e.s, log, 64, 3);
  char blob_path[128];
  snprintf(blob_path, sizeof blob_path, "/blobs/sha256:%s", f.layers[0].hex);
  CHECK(srv_count_for(log, n, blob_path) == 1, "resumed pull asked %d times for the blob", srv_count_for(log, n, blob_path));
  for (int i = 0; i < n; i++) {
    if (!strstr(log[i].path, blob_path)) continue;
    CHECK(strcmp(log[i].range, "bytes=400000-") == 0 && log[i].status == 206, "resume request: range \"%s\" status %d",
          log[i].range, log[i].status);
    CHECK(log[i].sent == SIZE - CUT, "server sent %lld bytes on resume, want %d", log[i].sent, SIZE - CUT);
  }
  CHECK(stats.bytes_resumed == CUT && stats.bytes_downloaded == SIZE - CUT + f.config.size,
        "stats: resumed %lld downloaded %lld", (long long)stats.bytes_resumed, (long long)stats.bytes_downloaded);
  CHECK(store_has(&e, f.layers[0].hex, "") && !store_has(&e, f.layers[0].hex, "-partial"), "blob after resume");
  check_blobs_hash(&e, "after resume");
  srv_faults(&e.s, NULL);
  penv_close(&e);
}

static void test_resume_within_call(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "retry")) return;
  enum { SIZE = 700000 };
  fixture f;
  make_small(&e, &f, "retry", SIZE, 31);
  char faults[256];
  snprintf(faults, sizeof faults, "{\"drop_at\":{\"%s\":[250000,2]}}", f.layers[0].hex); /* first 2 requests */
  srv_faults(&e.s, faults);
  srv_log_clear(&e.s);
  mlxr_pull_params p = penv_params(&e);
  p.max_retries = 3;
  mlxr_pull_stats stats;
  char err[1024] = "";
  int rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/retry:v1", &p, &stats, err, sizeof err);
  CHECK(rc == MLXR_OK, "pull with retries: %s", err);
  CHECK(stats.n_retries == 2, "retries %d, want 2", stats.n_retries);
  srv_req log[64];
  const int n = srv_log_wait(&e.s, log, 64, 5);
  char blob_path[128];
  snprintf(blob_path, sizeof blob_path, "/blobs/sha256:%s", f.layers[0].hex);
  /* first request drops at 250000; the second asks from there and drops at once (absolute 250000);
   * the third asks from 250000 and gets the rest: every byte sent once */
  CHECK(srv_count_for(log, n, blob_path) == 3, "%d blob requests, want 3", srv_count_for(log, n, blob_path));
  CHECK(srv_sent_for(log, n, blob_path) == SIZE, "server sent %lld blob bytes in all, want %d",
        srv_sent_for(log, n, blob_path), SIZE);
  check_blobs_hash(&e, "after retries");
  CHECK(store_has(&e, f.layers[0].hex, ""), "blob stored after retries");

  /* a server that ignores Range: the partial's bytes are skipped from its 200 */
  fixture g;
  make_small(&e, &g, "norange", SIZE, 32);
  snprintf(faults, sizeof faults, "{\"drop_at\":{\"%s\":[300000,1]},\"ignore_range\":true}", g.layers[0].hex);
  srv_faults(&e.s, faults);
  srv_log_clear(&e.s);
  rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/norange:v1", &p, &stats, err, sizeof err);
  CHECK(rc == MLXR_OK, "pull from a server that ignores Range: %s", err);
  CHECK(stats.n_retries == 1 && stats.bytes_downloaded == SIZE, /* the config is there from the pull above */
        "ignore_range: retries %d, downloaded %lld", stats.n_retries, (long long)stats.bytes_downloaded);
  check_blobs_hash(&e, "after a 200 to a Range request");
  CHECK(store_has(&e, g.layers[0].hex, ""), "blob stored after ignore_range");
  srv_faults(&e.s, NULL);
  penv_close(&e);
}

static void test_redirect(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "redirect")) return;
  fixture f;
  make_small(&e, &f, "redirect", 100000, 41);
  srv_faults(&e.s, "{\"redirect\":true}");
  srv_log_clear(&e.s);
  mlxr_pull_params p = penv_params(&e);
  char err[1024] = "";
  int rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/redirect:v1", &p, NULL, err, sizeof err);
  CHECK(rc == MLXR_OK, "pull through redirects: %s", err);
  srv_req log[64];
  const int n = srv_log_wait(&e.s, log, 64, 5);
  int n307 = 0;
  for (int i = 0; i < n; i++) n307 += log[i].status == 307;
  CHECK(n307 == 2 && srv_count_for(log, n, "/cdn/sha256:") == 2, "redirects: %d 307s, %d CDN requests", n307,
        srv_count_for(log, n, "/cdn/sha256:"));
  check_blobs_hash(&e, "after redirects");
  CHECK(store_has(&e, f.layers[0].hex, ""), "blob stored through a redirect");

  /* too many redirects: a loop (max_redirects 0 refuses the first) */
  fixture g;
  make_small(&e, &g, "redirect2", 1000, 42);
  p.transfer.max_redirects = 0;
  rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/redirect2:v1", &p, NULL, err, sizeof err);
  CHECK(rc < 0 && strstr(err, "redirect"), "over max_redirects: %d %s", rc, err);
  srv_faults(&e.s, NULL);
  penv_close(&e);
}

/* ---- bad blobs ---- */

/* A partial file of the blob, if any, holds the first bytes of the registry's blob. */
static bool partial_is_prefix(penv *e, const char *hex) {
  char ppath[4400], rpath[4400];
  snprintf(ppath, sizeof ppath, "%s/sha256-%s-partial", e->blobs, hex);
  snprintf(rpath, sizeof rpath, "%s/blobs/sha256-%s", e->s.root, hex);
  FILE *p = fopen(ppath, "rb");
  if (!p) return true;
  FILE *r = fopen(rpath, "rb");
  bool same = r != NULL;
  int a, b;
  while (same && (a = fgetc(p)) != EOF) {
    b = fgetc(r);
    same = a == b;
  }
  fclose(p);
  if (r) fclose(r);
  return same;
}

typedef struct bad_blob {
  const char *what;
  const char *faults_fmt; /* %s: the blob's hex */
  int want_rc;
  const char *want_msg;
  bool partial_may_stay; /* a resumable partial (of the blob's true first bytes) may be left */
  bool config;           /* the fault hits the config blob (fetched into memory) instead of the model */
} bad_blob;

static void test_bad_blobs(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "bad")) return;
  static const bad_blob cases[] = {
      {"wrong bytes", "{\"wrong_bytes\":[\"%s\"]}", MLXR_ERR_FORMAT, "digest mismatch", false, false},
      {"too long", "{\"extra_bytes\":{\"%s\":10}}", MLXR_ERR_RANGE, "longer", true, false},
      {"truncated", "{\"truncate\":{\"%s\":5000}}", MLXR_ERR_IO, "giving up", true, false},
      {"404", "{\"not_found\":[\"%s\"]}", MLXR_ERR_NOT_FOUND, "404", true, false},
      {"500", "{\"status\":{\"%s\":500}}", MLXR_ERR_IO, "HTTP 500", true, false},
      {"wrong bytes of the config", "{\"wrong_bytes\":[\"%s\"]}", MLXR_ERR_FORMAT, "digest mismatch", false, true},
      {"truncated config", "{\"truncate\":{\"%s\":10}}", MLXR_ERR_IO, "giving up", false, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_blob *c = &cases[i];
    char model[32];
    snprintf(model, sizeof model, "bad%zu", i);
    fixture f;
    make_small(&e, &f, model, 50000, 50 + i);
    char faults[512];
    snprintf(faults, sizeof faults, c->faults_fmt, c->config ? f.config.hex : f.layers[0].hex);
    srv_faults(&e.s, faults);
    char *before = reg_snapshot(e.root, "-partial");
    const int models_before = penv_n_models(&e);
    mlxr_pull_params p = penv_params(&e);
    p.max_retries = 1;
    char name[64], err[1024] = "";
    snprintf(name, sizeof name, "127.0.0.1/me/%s:v1", model);
    int rc = mlxr_pull_model(e.st, e.cat, name, &p, NULL, err, sizeof err);
    CHECK(rc == c->want_rc && strstr(err, c->want_msg), "%s: rc %d (want %d), message \"%s\" (want \"%s\")", c->what,
          rc, c->want_rc, err, c->want_msg);
    char *after = reg_snapshot(e.root, "-partial");
    CHECK(strcmp(before, after) == 0, "%s: the store changed:\nbefore:\n%s\nafter:\n%s", c->what, before, after);
    CHECK(!store_has(&e, f.layers[0].hex, "") && !store_has(&e, f.config.hex, ""), "%s: blob under its final name",
          c->what);
    CHECK(c->partial_may_stay || !store_has(&e, f.layers[0].hex, "-partial"), "%s: partial file left", c->what);
    CHECK(partial_is_prefix(&e, f.layers[0].hex), "%s: the partial file holds bytes the blob does not", c->what);
    CHECK(penv_n_models(&e) == models_before, "%s: catalog rows changed", c->what);
    check_no_row(&e, model, c->what);
    free(before);
    free(after);
  }
  srv_faults(&e.s, NULL);
  penv_close(&e);
}

static void test_stall_and_cancel(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "stall")) return;
  fixture f;
  make_small(&e, &f, "stall", 50000, 61);
  char faults[256];
  snprintf(faults, sizeof faults, "{\"slow\":{\"%s\":4}}", f.layers[0].hex);
  srv_faults(&e.s, faults);
  mlxr_pull_params p = penv_params(&e);
  p.transfer.stall_timeout_s = 1;
  char err[1024] = "";
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/stall:v1", &p, NULL, err, sizeof err);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  CHECK(rc == MLXR_ERR_IO && strstr(err, "stalled"), "stalled server: %d %s", rc, err);
  CHECK(secs >= 0.9 && secs < 3.5, "gave up after %.2f s (stall timeout 1 s, server silent 4 s)", secs);
  check_no_row(&e, "stall", "stall");
  srv_faults(&e.s, NULL);

  /* cancel from the progress callback at the first blob report */
  static prog_log pl;
  memset(&pl, 0, sizeof pl);
  pl.cancel_at = 2;
  p = penv_params(&e);
  p.progress = prog_record;
  p.progress_ctx = &pl;
  rc = mlxr_pull_model(e.st, e.cat, "127.0.0.1/me/stall:v1", &p, NULL, err, sizeof err);
  CHECK(rc == MLXR_ERR_IO && strstr(err, "cancelled") && pl.n == 2, "cancel: %d %s after %d events", rc, err, pl.n);
  check_no_row(&e, "stall", "cancel");
  penv_close(&e);
}

/* ---- URLs ---- */

static void test_url_policy(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "policy")) return;
  static const struct {
    const char *base_url;
    bool insecure;
    const char *want;
  } cases[] = {
      {"http://example.invalid:1", false, "plain http"},
      {"http://128.0.0.1:1", false, "plain http"},
      {"http://127.0.0.1.example.invalid:1", false, "plain http"},
      {"ftp://127.0.0.1:1", false, "only http and https"},
      {"file:///etc", false, "only http and https"},
      {"http://user:pw@127.0.0.1:1", false, "credentials"},
      {"not a url", false, "invalid URL"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mlxr_pull_params p = penv_params(&e);
    p.base_url = cases[i].base_url;
    p.transfer.insecure = cases[i].insecure;
    char err[1024] = "";
    int rc = mlxr_pull_model(e.st, e.cat, "me/x:v1", &p, NULL, err, sizeof err);
    CHECK(rc < 0 && strstr(err, cases[i].want), "base %s: %d \"%s\" (want \"%s\")", cases[i].base_url, rc, err,
          cases[i].want);
  }
  /* no base URL: the name's host, over http because of insecure */
  fixture f;
  make_small(&e, &f, "byhost", 10000, 71);
  mlxr_pull_params p = penv_params(&e);
  p.base_url = NULL;
  p.transfer.insecure = true;
  char name[128], err[1024] = "";
  snprintf(name, sizeof name, "127.0.0.1:%d/me/byhost:v1", e.s.port);
  int rc = mlxr_pull_model(e.st, e.cat, name, &p, NULL, err, sizeof err);
  CHECK(rc == MLXR_OK, "pull by the name's host: %s", err);
  mlxr_model_info mi;
  CHECK(mlxr_catalog_get(e.cat, name, &mi, err, sizeof err) == MLXR_OK, "row by the name's host: %s", err);
  mlxr_model_info_clear(&mi);
  /* and without insecure the same name means https, which this server does not speak */
  p.transfer.insecure = false;
  p.transfer.connect_timeout_ms = 2000;
  rc = mlxr_pull_model(e.st, e.cat, name, &p, NULL, err, sizeof err);
  CHECK(rc < 0, "https to a plain http server succeeded");
  penv_close(&e);
}

/* A small GGUF: architecture llama, context 2048, file type 15 (Q4_K_M), two tensors (3x4, 5). */
static bool write_gguf(const char *path) {
  mlxr_gguf_writer *w = mlxr_gguf_writer_new();
  char err[512];
  int rc = w ? 0 : -1;
  const int64_t ne_a[2] = {3, 4}, ne_b[1] = {5};
  float data[12] = {0};
  if (rc == 0) rc = mlxr_gguf_set_str(w, "general.architecture", "llama");
  if (rc == 0) rc = mlxr_gguf_set_u32(w, "llama.context_length", 2048);
  if (rc == 0) rc = mlxr_gguf_set_u32(w, "general.file_type", 15);
  if (rc == 0) rc = mlxr_gguf_add_tensor(w, "a", MLXR_DTYPE_F32, 2, ne_a);
  if (rc == 0) rc = mlxr_gguf_add_tensor(w, "b", MLXR_DTYPE_F32, 1, ne_b);
  if (rc == 0) rc = mlxr_gguf_writer_begin(w, path, err, sizeof err);
  if (rc == 0) rc = mlxr_gguf_writer_write_tensor(w, data, 12 * sizeof(float), err, sizeof err);
  if (rc == 0) rc = mlxr_gguf_writer_write_tensor(w, data, 5 * sizeof(float), err, sizeof err);
  if (rc == 0) rc = mlxr_gguf_writer_finish(w, err, sizeof err);
  mlxr_gguf_writer_free(w);
  return rc == 0;
}

static void test_pull_url(penv *base) {
  penv e = *base;
  if (!penv_open(&e, "url")) return;
  char path[1300];
  snprintf(path, sizeof path, "%s/tiny.gguf", e.tmp);
  CHECK(write_gguf(path), "write the GGUF");
  FILE *fp = fopen(path, "rb");
  static unsigned char buf[1 << 16];
  const size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
  if (fp) fclose(fp);
  char hex[65] = "";
  CHECK(n > 0 && srv_put_blob(&e.s, buf, n, hex), "put the GGUF");
  char url[256], want[80], err[1024] = "";
  snprintf(url, sizeof url, "%s/cdn/sha256:%s", e.s.base, hex);
  snprintf(want, sizeof want, "sha256:%s", hex);
  mlxr_pull_params p = penv_params(&e);
  mlxr_pull_stats stats;
  int rc = mlxr_pull_url(e.st, e.cat, url, "me/fromurl:v1", NULL, &p, &stats, err, sizeof err);
  CHECK(rc == MLXR_OK, "URL pull: %s", err);
  CHECK(store_has(&e, hex, ""), "the GGUF is stored under sha256sum's digest");
  check_blobs_hash(&e, "URL pull");
  mlxr_model_info mi;
  rc = mlxr_catalog_get(e.cat, "me/fromurl:v1", &mi, err, sizeof err);
  CHECK(rc == MLXR_OK, "URL pull row: %s", err);
  if (rc == MLXR_OK) {
    CHECK(mi.architecture && strcmp(mi.architecture, "llama") == 0, "architecture %s", mi.architecture);
    CHECK(mi.context_length == 2048, "context %lld", (long long)mi.context_length);
    CHECK(mi.quantization && strcmp(mi.quantization, "Q4_K_M") == 0, "quantization %s", mi.quantization);
    CHECK(mi.parameter_count == 17, "parameters %lld", (long long)mi.parameter_count);
    CHECK(mi.n_blobs == 2 && strcmp(mi.blobs[0].digest, want) == 0 && strcmp(mi.blobs[0].media_type, MT_MODEL) == 0 &&
              mi.blobs[0].size == (int64_t)n && strcmp(mi.blobs[1].media_type, MT_CONFIG) == 0,
          "URL pull blobs");
    /* the config blob reads back as Ollama's */
    if (mi.n_blobs == 2) {
      char cpath[4400], cfg[1024] = "";
      snprintf(cpath, sizeof cpath, "%s/sha256-%s", e.blobs, mi.blobs[1].digest + 7);
      FILE *cf = fopen(cpath, "rb");
      const size_t cn = cf ? fread(cfg, 1, sizeof cfg - 1, cf) : 0;
      if (cf) fclose(cf);
      cfg[cn] = '\0';
      CHECK(strstr(cfg, "\"model_format\":\"gguf\"") && strstr(cfg, "\"model_family\":\"llama\"") &&
                strstr(cfg, "\"file_type\":\"Q4_K_M\""),
            "config blob %s", cfg);
    }
  }
  mlxr_model_info_clear(&mi);

  /* a URL to something that is not a GGUF: refused, store unchanged */
  char thex[65];
  CHECK(srv_put_blob(&e.s, TEMPLATE_TEXT, strlen(TEMPLATE_TEXT), thex), "put text");
  snprintf(url, sizeof url, "%s/cdn/sha256:%s", e.s.base, thex);
  char *before = reg_snapshot(e.root, NULL);
  rc = mlxr_pull_url(e.st, e.cat, url, "me/notgguf:v1", NULL, &p, NULL, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && strstr(err, "GGUF"), "non-GGUF URL: %d %s", rc, err);
  char *after = reg_snapshot(e.root, NULL);
  CHECK(strcmp(before, after) == 0, "non-GGUF URL changed the store:\n%s\n%s", before, after);
  free(before);
  free(after);
  /* a GGUF magic followed by garbage: refused by the reader, the new blob removed again */
  static const char fake[] = "GGUF\x03\0\0\0garbage that is no header";
  char fhex[65];
  CHECK(srv_put_blob(&e.s, fake, sizeof fake - 1, fhex), "put fake");
  snprintf(url, sizeof url, "%s/cdn/sha256:%s", e.s.base, fhex);
  before = reg_snapshot(e.root, NULL);
  rc = mlxr_pull_url(e.st, e.cat, url, "me/fake:v1", NULL, &p, NULL, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && strstr(err, "not a usable GGUF"), "fake GGUF: %d %s", rc, err);
  after = reg_snapshot(e.root, NULL);
  CHECK(strcmp(before, after) == 0, "fake GGUF changed the store:\n%s\n%s", before, after);
  free(before);
  free(after);
  /* an expected digest that the bytes do not have */
  snprintf(url, sizeof url, "%s/cdn/sha256:%s", e.s.base, hex);
  char wrong[80];
  snprintf(wrong, sizeof wrong, "sha256:%s", thex);
  rc = mlxr_pull_url(e.st, e.cat, url, "me/wrong:v1", wrong, &p, NULL, err, sizeof err);
  CHECK(rc < 0, "URL pull with a wrong expected digest succeeded");
  penv_close(&e);
}

int main(void) {
  alarm(120); /* the whole test, whatever hangs */
  penv e;
  memset(&e, 0, sizeof e);
  if (!reg_mkdtemp("pull", e.tmp, sizeof e.tmp)) {
    fprintf(stderr, "mkdtemp failed\n");
    return 1;
  }
  if (!srv_start(&e.s, e.tmp)) {
    CHECK(false, "the local registry did not start");
    srv_stop(&e.s);
    reg_rmtree(e.tmp);
    return check_report("test_registry_pull");
  }
  test_pull_full(&e);
  test_resume_across_calls(&e);
  test_resume_within_call(&e);
  test_redirect(&e);
  test_bad_blobs(&e);
  test_stall_and_cancel(&e);
  test_url_policy(&e);
  test_pull_url(&e);
  srv_stop(&e.s);
  reg_rmtree(e.tmp);
  return check_report("test_registry_pull");
}
