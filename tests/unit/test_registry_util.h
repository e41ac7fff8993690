/*
 * test_registry_util.h: helpers shared by the registry's unit tests (test_registry_store.c,
 * test_registry_catalog.c): a scratch directory under $TMPDIR (or /tmp) removed at the end, a
 * deterministic byte generator, a snapshot of a directory tree (names, sizes and a hash of the
 * bytes, to prove that a refused call changed nothing), and the independent digest reference:
 * coreutils' sha256sum, run through popen, never OpenSSL (which the code under test uses).
 *
 * Everything is static and state lives in the caller's variables; each test is its own process.
 */
#ifndef MLXR_TESTS_REGISTRY_UTIL_H
#define MLXR_TESTS_REGISTRY_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh directory "<TMPDIR or /tmp>/mlxr-<tag>-XXXXXX" into buf (PATH_MAX bytes); false on failure. */
static bool reg_mkdtemp(const char *tag, char *buf, size_t len) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  snprintf(buf, len, "%s/mlxr-%s-XXXXXX", base, tag);
  return mkdtemp(buf) != NULL;
}

/* rm -rf path (no symlinks followed). */
static void reg_rmtree(const char *path) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return;
  if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(path);
    if (d) {
      struct dirent *e;
      while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        reg_rmtree(child);
      }
      closedir(d);
    }
    rmdir(path);
  } else {
    unlink(path);
  }
}

/* Deterministic bytes (xorshift64*), different for each seed. */
static void reg_fill(unsigned char *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p[i] = (unsigned char)((x * 0x2545F4914F6CDD1Dull) >> 56);
  }
}

static bool reg_write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(data, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

/* sha256sum of one file: its 64 hex digits into hex (65 bytes); false when sha256sum fails. */
static bool reg_sha256sum(const char *path, char hex[65]) {
  char cmd[8400];
  snprintf(cmd, sizeof cmd, "sha256sum -- '%s'", path);
  FILE *p = popen(cmd, "r");
  if (!p) return false;
  char line[4400];
  bool ok = fgets(line, sizeof line, p) != NULL && strlen(line) > 64 && line[64] == ' ';
  int st = pclose(p);
  if (!ok || st != 0) return false;
  memcpy(hex, line, 64);
  hex[64] = '\0';
  return true;
}

/* Every file under a final name in blobs_dir ("sha256-<64 hex>") checked with one sha256sum run:
 * returns the number whose bytes do not hash to their name (a file sha256sum could not read
 * counts as bad), and the number checked in *n_checked. -1 if sha256sum cannot run. */
static int reg_check_final_names(const char *blobs_dir, int *n_checked) {
  *n_checked = 0;
  DIR *d = opendir(blobs_dir);
  if (!d) return -1;
  size_t cap = 256, len = 0;
  char *cmd = malloc(cap);
  if (!cmd) {
    closedir(d);
    return -1;
  }
  len = (size_t)snprintf(cmd, cap, "cd '%s' && sha256sum --", blobs_dir);
  struct dirent *e;
  int expected = 0;
  while ((e = readdir(d)) != NULL) {
    if (strlen(e->d_name) != 71 || strncmp(e->d_name, "sha256-", 7) != 0) continue;
    if (len + 80 > cap) {
      cap *= 2;
      char *nc = realloc(cmd, cap);
      if (!nc) break;
      cmd = nc;
    }
    len += (size_t)snprintf(cmd + len, cap - len, " %s", e->d_name);
    expected++;
  }
  closedir(d);
  if (expected == 0) {
    free(cmd);
    return 0;
  }
  FILE *p = popen(cmd, "r");
  free(cmd);
  if (!p) return -1;
  char line[512];
  int bad = 0, seen = 0;
  while (fgets(line, sizeof line, p)) {
    /* "<hex>  sha256-<hex>\n" */
    if (strlen(line) < 64 + 2 + 71) {
      bad++;
      continue;
    }
    seen++;
    if (memcmp(line, line + 66 + 7, 64) != 0) bad++;
  }
  pclose(p);
  *n_checked = seen;
  return bad + (expected - seen);
}

/* Number of entries in dir whose name ends with suffix (NULL: all but . and ..). */
static int reg_count_entries(const char *dir, const char *suffix) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t l = strlen(e->d_name), s = suffix ? strlen(suffix) : 0;
    if (!suffix || (l >= s && strcmp(e->d_name + l - s, suffix) == 0)) n++;
  }
  closedir(d);
  return n;
}

/* FNV-1a of a file's bytes. */
static uint64_t reg_file_hash(const char *path) {
  uint64_t h = 1469598103934665603ull;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return 0;
  unsigned char buf[65536];
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < r; i++) h = (h ^ buf[i]) * 1099511628211ull;
  }
  close(fd);
  return h;
}

static int reg_cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Appends "relpath size hash\n" for every entry under dir, sorted, recursively, to *buf (malloc'ed,
 * grown as needed; the caller frees it). Files whose name matches skip_suffix are left out. */
static void reg_snapshot_rec(const char *root, const char *rel, const char *skip_suffix, char **buf, size_t *len,
                             size_t *cap) {
  char path[4096];
  snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
  DIR *d = opendir(path);
  if (!d) return;
  char *names[1024];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < 1024) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t l = strlen(e->d_name), s = skip_suffix ? strlen(skip_suffix) : 0;
    if (skip_suffix && l >= s && strcmp(e->d_name + l - s, skip_suffix) == 0) continue;
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], reg_cmp_str);
  for (int i = 0; i < n; i++) {
    char crel[4096], cpath[4200];
    snprintf(crel, sizeof crel, "%s%s%s", rel, *rel ? "/" : "", names[i]);
    snprintf(cpath, sizeof cpath, "%s/%s", root, crel);
    struct stat sb;
    if (lstat(cpath, &sb) == 0) {
      if (*len + 4400 > *cap) {
        *cap = (*cap + 4400) * 2;
        *buf = realloc(*buf, *cap);
      }
      const uint64_t h = S_ISREG(sb.st_mode) ? reg_file_hash(cpath) : 0;
      *len += (size_t)snprintf(*buf + *len, *cap - *len, "%s %lld %016llx%s\n", crel, (long long)sb.st_size,
                               (unsigned long long)h, S_ISDIR(sb.st_mode) ? "/" : "");
      if (S_ISDIR(sb.st_mode)) reg_snapshot_rec(root, crel, skip_suffix, buf, len, cap);
    }
    free(names[i]);
  }
}

/* A snapshot of the tree under dir (malloc'ed string; the caller frees it). */
static char *reg_snapshot(const char *dir, const char *skip_suffix) {
  size_t cap = 4400 * 4, len = 0;
  char *buf = malloc(cap);
  buf[0] = '\0';
  reg_snapshot_rec(dir, "", skip_suffix, &buf, &len, &cap);
  return buf;
}

#endif
