/*
 * test_registry_server.h: the pull tests' local registry (tests/golden/registry_server.py), driven
 * from C: start it (fork/exec of /usr/bin/python3, the port read from the file the server writes
 * after binding port 0, so no port is picked and released), fill its directory (blobs named by
 * what coreutils' sha256sum says about their bytes, manifests written by hand here, never by the
 * code under test), set its faults, read its request log, stop it.
 *
 * Every process has a time limit: the server exits by itself after its --lifetime, waiting for its
 * port or for log lines gives up after a few seconds, and the tests call alarm() for themselves.
 * Everything is static; state lives in the caller's srv; each test is its own process.
 */
#ifndef MLXR_TESTS_REGISTRY_SERVER_H
#define MLXR_TESTS_REGISTRY_SERVER_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/test_registry_util.h"

typedef struct srv {
  char root[1100];    /* the registry's directory */
  char base[64];      /* "http://127.0.0.1:<port>" */
  int port;
  pid_t pid;
} srv;

typedef struct srv_req {
  char method[8];
  char path[512];
  char range[64];     /* "" when the request had none */
  int status;
  long long sent;     /* body bytes the server wrote */
} srv_req;

static inline void srv_sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Starts the server on a fresh directory <tmp>/registry. false (with a message) on failure. */
static inline bool srv_start(srv *s, const char *tmp) {
  memset(s, 0, sizeof *s);
  snprintf(s->root, sizeof s->root, "%s/registry", tmp);
  char dir[1300], port_file[1300], script[4200];
  mkdir(s->root, 0755);
  snprintf(dir, sizeof dir, "%s/blobs", s->root);
  mkdir(dir, 0755);
  snprintf(dir, sizeof dir, "%s/manifests", s->root);
  mkdir(dir, 0755);
  snprintf(port_file, sizeof port_file, "%s/port", tmp);
  const char *src = getenv("MLXR_SRC");
  snprintf(script, sizeof script, "%s/tests/golden/registry_server.py", src && *src ? src : ".");
  if (access("/usr/bin/python3", X_OK) != 0 || access(script, R_OK) != 0) {
    fprintf(stderr, "cannot run /usr/bin/python3 %s\n", script);
    return false;
  }
  s->pid = fork();
  if (s->pid < 0) return false;
  if (s->pid == 0) {
    execl("/usr/bin/python3", "python3", script, "--root", s->root, "--port-file", port_file, "--lifetime", "120",
          (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 1000; i++) { /* 10 s */
    FILE *f = fopen(port_file, "r");
    if (f) {
      int port = 0;
      const bool ok = fscanf(f, "%d", &port) == 1 && port > 0 && port < 65536;
      fclose(f);
      if (ok) {
        s->port = port;
        snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", port);
        return true;
      }
    }
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      fprintf(stderr, "registry_server.py exited early (status %d)\n", st);
      s->pid = 0;
      return false;
    }
    srv_sleep_ms(10);
  }
  fprintf(stderr, "registry_server.py wrote no port within 10 s\n");
  return false;
}

static inline void srv_stop(srv *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGTERM);
  for (int i = 0; i < 300; i++) { /* 3 s, then SIGKILL */
    if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
      s->pid = 0;
      return;
    }
    srv_sleep_ms(10);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
}

/* Puts bytes in the registry as a blob; its digest's 64 hex digits (by sha256sum) into hex. */
static inline bool srv_put_blob(srv *s, const void *data, size_t n, char hex[65]) {
  char tmp[1300], path[1400];
  snprintf(tmp, sizeof tmp, "%s/incoming", s->root);
  if (!reg_write_file(tmp, data, n) || !reg_sha256sum(tmp, hex)) return false;
  snprintf(path, sizeof path, "%s/blobs/sha256-%s", s->root, hex);
  return rename(tmp, path) == 0;
}

static inline bool srv_put_manifest(srv *s, const char *ns, const char *model, const char *tag, const char *text) {
  char path[1600];
  snprintf(path, sizeof path, "%s/manifests/%s", s->root, ns);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/manifests/%s/%s", s->root, ns, model);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/manifests/%s/%s/%s", s->root, ns, model, tag);
  return reg_write_file(path, text, strlen(text));
}

/* Replaces faults.json (through a rename: the server re-reads it at every request). NULL: none. */
static inline void srv_faults(srv *s, const char *json) {
  char tmp[1300], path[1300];
  snprintf(tmp, sizeof tmp, "%s/faults.tmp", s->root);
  snprintf(path, sizeof path, "%s/faults.json", s->root);
  if (!json) {
    unlink(path);
    return;
  }
  reg_write_file(tmp, json, strlen(json));
  rename(tmp, path);
}

static inline void srv_log_clear(srv *s) {
  char path[1300];
  snprintf(path, sizeof path, "%s/log.jsonl", s->root);
  unlink(path);
}

/* Reads up to max log entries; returns how many there are. */
static inline int srv_log_read(srv *s, srv_req *out, int max) {
  char path[1300], line[4096];
  snprintf(path, sizeof path, "%s/log.jsonl", s->root);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    cJSON *j = cJSON_Parse(line);
    if (!j) continue;
    if (n < max) {
      srv_req *r = &out[n];
      memset(r, 0, sizeof *r);
      const cJSON *m = cJSON_GetObjectItem(j, "method"), *p = cJSON_GetObjectItem(j, "path");
      const cJSON *rg = cJSON_GetObjectItem(j, "range"), *st = cJSON_GetObjectItem(j, "status");
      const cJSON *se = cJSON_GetObjectItem(j, "sent");
      if (cJSON_IsString(m)) snprintf(r->method, sizeof r->method, "%s", m->valuestring);
      if (cJSON_IsString(p)) snprintf(r->path, sizeof r->path, "%s", p->valuestring);
      if (cJSON_IsString(rg)) snprintf(r->range, sizeof r->range, "%s", rg->valuestring);
      if (cJSON_IsNumber(st)) r->status = st->valueint;
      if (cJSON_IsNumber(se)) r->sent = (long long)se->valuedouble;
    }
    n++;
    cJSON_Delete(j);
  }
  fclose(f);
  return n;
}

/* The server logs a request after its response ends, which can be just after the client returned:
 * waits (at most 3 s) until at least n entries are there; returns how many are. */
static inline int srv_log_wait(srv *s, srv_req *out, int max, int n) {
  int got = 0;
  for (int i = 0; i < 300; i++) {
    if ((got = srv_log_read(s, out, max)) >= n) break;
    srv_sleep_ms(10);
  }
  srv_sleep_ms(50); /* and let stragglers land */
  return srv_log_read(s, out, max);
}

/* Sum of body bytes the server sent for requests whose path contains needle. */
static inline long long srv_sent_for(const srv_req *r, int n, const char *needle) {
  long long t = 0;
  for (int i = 0; i < n; i++) {
    if (strstr(r[i].path, needle)) t += r[i].sent;
  }
  return t;
}

/* Requests whose path contains needle. */
static inline int srv_count_for(const srv_req *r, int n, const char *needle) {
  int c = 0;
  for (int i = 0; i < n; i++) c += strstr(r[i].path, needle) != NULL;
  return c;
}

#endif
