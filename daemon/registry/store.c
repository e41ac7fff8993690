/*
 * store.c: the content-addressed blob store (layout, crash-safety argument and thread rules in
 * store.h).
 *
 * How it works: open() keeps a descriptor of <root>/blobs, and every later file operation is
 * relative to it (openat/renameat/unlinkat with O_NOFOLLOW), on names built only from validated
 * digests or from our own random temporary names. A writer owns one temporary file, flock()ed for
 * its whole life, and an OpenSSL EVP SHA-256 context fed with exactly the bytes that reached the
 * file. After taking the lock a writer (and the sweep) checks that the name still refers to the
 * inode it locked, so a sweep that unlinked the file between open and lock is noticed and the open
 * retried. Commit is: size check, digest check, fsync(file), renameat(temp, final), fsync(blobs/).
 */
#include "daemon/registry/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/common/status.h"

#define STORE_CHUNK (1u << 20) /* bytes per read in put_fd, verify and resume */
#define TMP_NAME_SIZE 96

struct mlxr_store {
  char *root;         /* absolute path of the root (owned) */
  int blobs_fd;       /* descriptor of <root>/blobs, O_DIRECTORY */
  mlxr_store_params p;
};

struct mlxr_blob_writer {
  mlxr_store *st;                  /* borrowed; outlives the writer */
  int fd;                          /* the temporary file, flock()ed */
  char tmp_name[TMP_NAME_SIZE];    /* its name inside blobs/ */
  bool resumable;                  /* tmp_name is "sha256-<hex>-partial" */
  bool spoiled;                    /* a write failed or overran: commit refuses, abort removes */
  bool has_expected;               /* expected is meaningful */
  mlxr_digest expected;
  bool has_size;                   /* expected_size is meaningful */
  int64_t expected_size;           /* bytes */
  int64_t written;                 /* bytes in the file, all of them hashed */
  EVP_MD_CTX *md;                  /* SHA-256 of bytes [0, written) */
};

static void hook(const mlxr_store *st, const char *point) {
  if (st->p.hook) st->p.hook(st->p.hook_ctx, point);
}

mlxr_store_params mlxr_store_default_params(void) {
  return (mlxr_store_params){.max_blob_bytes = (int64_t)1 << 40, .hook = NULL, .hook_ctx = NULL};
}

/* mkdir -p for the root (the caller's own path, not untrusted input). */
static int mkdir_p(const char *path, char *err, size_t err_len) {
  char *tmp = strdup(path);
  if (!tmp) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  for (char *p = tmp + 1;; p++) {
    const bool end = *p == '\0';
    if (*p == '/' || end) {
      *p = '\0';
      if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        int rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
      }
      if (end) break;
      *p = '/';
    }
  }
  free(tmp);
  return MLXR_OK;
}

int mlxr_store_default_root(const char *mlxr_models, const char *xdg_data_home, const char *home, char *buf,
                            size_t buf_len, char *err, size_t err_len) {
  int n;
  if (mlxr_models && *mlxr_models) n = snprintf(buf, buf_len, "%s", mlxr_models);
  else if (xdg_data_home && xdg_data_home[0] == '/') n = snprintf(buf, buf_len, "%s/mlxr", xdg_data_home);
  else if (home && *home) n = snprintf(buf, buf_len, "%s/.local/share/mlxr", home);
  else return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "no model directory: set MLXR_MODELS or HOME");
  if (n < 0 || (size_t)n >= buf_len) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "model directory path too long");
  return MLXR_OK;
}

int mlxr_store_open(const char *root, const mlxr_store_params *params, mlxr_store **out, char *err,
                    size_t err_len) {
  *out = NULL;
  mlxr_store_params p = params ? *params : mlxr_store_default_params();
  if (!root || !*root) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "store root is empty");
  if (p.max_blob_bytes <= 0) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "max_blob_bytes must be positive");
  int rc = mkdir_p(root, err, err_len);
  if (rc < 0) return rc;
  mlxr_store *st = calloc(1, sizeof *st);
  if (!st) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  st->blobs_fd = -1;
  st->p = p;
  st->root = realpath(root, NULL);
  if (!st->root) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot resolve %s: %s", root, strerror(errno));
    goto fail;
  }
  int root_fd = open(st->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot open %s: %s", st->root, strerror(errno));
    goto fail;
  }
  if (mkdirat(root_fd, "blobs", 0755) == 0) {
    fsync(root_fd);
  } else if (errno != EEXIST) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot create %s/blobs: %s", st->root, strerror(errno));
    close(root_fd);
    goto fail;
  }
  st->blobs_fd = openat(root_fd, "blobs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  close(root_fd);
  if (st->blobs_fd < 0) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot open %s/blobs: %s", st->root, strerror(errno));
    goto fail;
  }
  *out = st;
  return MLXR_OK;
fail:
  mlxr_store_close(st);
  return rc;
}

void mlxr_store_close(mlxr_store *st) {
  if (!st) return;
  if (st->blobs_fd >= 0) close(st->blobs_fd);
  free(st->root);
  free(st);
}

const char *mlxr_store_root(const mlxr_store *st) { return st->root; }

/* ---- helpers ---- */

static int parse_digest(const char *digest, mlxr_digest *d, char fname[MLXR_DIGEST_STR_SIZE], char *err,
                        size_t err_len) {
  int rc = mlxr_digest_parse(digest, d, err, err_len);
  if (rc < 0) return rc;
  mlxr_digest_filename(d, fname);
  return MLXR_OK;
}

static int write_all(int fd, const unsigned char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static ssize_t read_some(int fd, void *buf, size_t n) {
  for (;;) {
    ssize_t r = read(fd, buf, n);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

/* Does `name` in blobs/ still refer to the inode open as fd? */
static bool same_file(int dir_fd, const char *name, int fd) {
  struct stat a, b;
  if (fstat(fd, &a) != 0 || fstatat(dir_fd, name, &b, AT_SYMLINK_NOFOLLOW) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Hash [0, size) of fd into md. */
static int hash_fd(int fd, EVP_MD_CTX *md, int64_t *size_out, char *err, size_t err_len) {
  unsigned char *buf = malloc(STORE_CHUNK);
  if (!buf) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  int64_t total = 0;
  int rc = MLXR_OK;
  for (;;) {
    ssize_t r = pread(fd, buf, STORE_CHUNK, (off_t)total);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "read failed: %s", strerror(errno));
      break;
    }
    if (r == 0) break;
    if (EVP_DigestUpdate(md, buf, (size_t)r) != 1) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "SHA-256 update failed");
      break;
    }
    total += r;
  }
  free(buf);
  if (size_out) *size_out = total;
  return rc;
}

/* ---- writing ---- */

static void writer_free(mlxr_blob_writer *w) {
  if (w->fd >= 0) close(w->fd);
  EVP_MD_CTX_free(w->md);
  free(w);
}

static void writer_remove_temp(mlxr_blob_writer *w) {
  if (w->fd >= 0 && same_file(w->st->blobs_fd, w->tmp_name, w->fd)) unlinkat(w->st->blobs_fd, w->tmp_name, 0);
}

/* Opens (creating) the writer's temporary file and locks it; retries when a sweep removed the
 * name between our open and our lock. */
static int open_temp(mlxr_blob_writer *w, char *err, size_t err_len) {
  mlxr_store *st = w->st;
  for (int attempt = 0; attempt < 16; attempt++) {
    int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
    if (!w->resumable) {
      uint64_t r;
      if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        return mlxr_errf(err, err_len, MLXR_ERR_IO, "getrandom failed: %s", strerror(errno));
      }
      snprintf(w->tmp_name, sizeof w->tmp_name, "tmp-%016llx-partial", (unsigned long long)r);
      flags |= O_EXCL;
    }
    int fd = openat(st->blobs_fd, w->tmp_name, flags, 0644);
    if (fd < 0) {
      if (errno == EEXIST && !w->resumable) continue;
      return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot create %s/blobs/%s: %s", st->root, w->tmp_name,
                       strerror(errno));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      close(fd);
      if (e == EWOULDBLOCK) {
        return mlxr_errf(err, err_len, MLXR_ERR_IO, "a write of %s is already in progress", w->tmp_name);
      }
      return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot lock %s: %s", w->tmp_name, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      close(fd);
      return mlxr_errf(err, err_len, MLXR_ERR_IO, "%s/blobs/%s is not a regular file", st->root, w->tmp_name);
    }
    if (!same_file(st->blobs_fd, w->tmp_name, fd)) { /* swept between open and lock */
      close(fd);
      continue;
    }
    w->fd = fd;
    return MLXR_OK;
  }
  return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot create a temporary file in %s/blobs", st->root);
}

int mlxr_store_writer_begin(mlxr_store *st, const mlxr_blob_write_params *wp, mlxr_blob_writer **out, char *err,
                            size_t err_len) {
  *out = NULL;
  mlxr_blob_write_params none = {0};
  if (!wp) wp = &none;
  if (wp->has_expected_size && wp->expected_size < 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "invalid blob size %lld: negative", (long long)wp->expected_size);
  }
  if (wp->has_expected_size && wp->expected_size > st->p.max_blob_bytes) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "blob size %lld is over the store's limit of %lld bytes",
                     (long long)wp->expected_size, (long long)st->p.max_blob_bytes);
  }
  if (wp->resume && !wp->expected_digest) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "a resumable write needs the expected digest");
  }
  mlxr_blob_writer *w = calloc(1, sizeof *w);
  if (!w) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  w->st = st;
  w->fd = -1;
  w->resumable = wp->resume;
  w->has_size = wp->has_expected_size;
  w->expected_size = wp->expected_size;
  int rc;
  if (wp->expected_digest) {
    if ((rc = mlxr_digest_parse(wp->expected_digest, &w->expected, err, err_len)) < 0) goto fail;
    w->has_expected = true;
  }
  w->md = EVP_MD_CTX_new();
  if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "cannot start SHA-256");
    goto fail;
  }
  if (w->resumable) {
    char fname[MLXR_DIGEST_STR_SIZE];
    mlxr_digest_filename(&w->expected, fname);
    snprintf(w->tmp_name, sizeof w->tmp_name, "%s-partial", fname);
  }
  if ((rc = open_temp(w, err, err_len)) < 0) goto fail;
  if (w->resumable) {
    struct stat sb;
    if (fstat(w->fd, &sb) != 0) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "stat %s: %s", w->tmp_name, strerror(errno));
      goto fail_file;
    }
    const int64_t limit = w->has_size ? w->expected_size : st->p.max_blob_bytes;
    if ((int64_t)sb.st_size > limit) { /* longer than it can be: start over */
      if (ftruncate(w->fd, 0) != 0) {
        rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "truncate %s: %s", w->tmp_name, strerror(errno));
        goto fail_file;
      }
    } else if (sb.st_size > 0) {
      if ((rc = hash_fd(w->fd, w->md, &w->written, err, err_len)) < 0) goto fail_file;
    }
    if (lseek(w->fd, (off_t)w->written, SEEK_SET) < 0) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "seek %s: %s", w->tmp_name, strerror(errno));
      goto fail_file;
    }
  }
  *out = w;
  return MLXR_OK;
fail_file:
  if (!w->resumable) writer_remove_temp(w);
fail:
  writer_free(w);
  return rc;
}

int64_t mlxr_blob_writer_offset(const mlxr_blob_writer *w) { return w->written; }

int mlxr_blob_writer_write(mlxr_blob_writer *w, const void *buf, size_t n, char *err, size_t err_len) {
  if (w->spoiled) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "this blob write already failed");
  const int64_t limit = w->has_size ? w->expected_size : w->st->p.max_blob_bytes;
  if (n > (uint64_t)(limit - w->written)) {
    w->spoiled = true;
    if (w->has_size) {
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "blob is longer than its expected size of %lld bytes",
                       (long long)w->expected_size);
    }
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "blob is over the store's limit of %lld bytes",
                     (long long)w->st->p.max_blob_bytes);
  }
  if (write_all(w->fd, buf, n) != 0) {
    w->spoiled = true;
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "write to %s/blobs/%s failed: %s", w->st->root, w->tmp_name,
                     strerror(errno));
  }
  if (n > 0 && EVP_DigestUpdate(w->md, buf, n) != 1) {
    w->spoiled = true;
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "SHA-256 update failed");
  }
  w->written += (int64_t)n;
  hook(w->st, "store.chunk_written");
  return MLXR_OK;
}

int mlxr_blob_writer_commit(mlxr_blob_writer *w, mlxr_digest *out, char *err, size_t err_len) {
  mlxr_store *st = w->st;
  int rc;
  char want[MLXR_DIGEST_STR_SIZE], got[MLXR_DIGEST_STR_SIZE], final_name[MLXR_DIGEST_STR_SIZE];
  if (w->spoiled) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID, "this blob write already failed; nothing was stored");
    goto remove;
  }
  hook(st, "store.temp_written");
  if (w->has_size && w->written != w->expected_size) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_RANGE, "blob has %lld bytes, expected %lld", (long long)w->written,
                   (long long)w->expected_size);
    goto remove;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_DigestFinal_ex(w->md, md, &md_len) != 1 || md_len != 32) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "SHA-256 failed");
    goto remove;
  }
  mlxr_digest d;
  mlxr_digest_from_bytes(md, &d);
  if (w->has_expected && !mlxr_digest_equal(&d, &w->expected)) {
    mlxr_digest_str(&w->expected, want);
    mlxr_digest_str(&d, got);
    rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "digest mismatch: expected %s, the bytes hash to %s", want, got);
    goto remove;
  }
  if (fsync(w->fd) != 0) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "fsync %s/blobs/%s: %s", st->root, w->tmp_name, strerror(errno));
    goto remove;
  }
  hook(st, "store.fsynced");
  mlxr_digest_filename(&d, final_name);
  if (renameat(st->blobs_fd, w->tmp_name, st->blobs_fd, final_name) != 0) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "rename to %s/blobs/%s: %s", st->root, final_name, strerror(errno));
    goto remove;
  }
  hook(st, "store.renamed");
  if (fsync(st->blobs_fd) != 0) {
    /* The blob is complete under its name; only its durability across a power cut is in doubt. */
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "fsync %s/blobs: %s", st->root, strerror(errno));
    writer_free(w);
    return rc;
  }
  if (out) *out = d;
  writer_free(w);
  return MLXR_OK;
remove:
  writer_remove_temp(w);
  writer_free(w);
  return rc;
}

void mlxr_blob_writer_abort(mlxr_blob_writer *w) {
  if (!w) return;
  if (!w->resumable || w->spoiled) writer_remove_temp(w);
  writer_free(w);
}

int mlxr_store_put_buffer(mlxr_store *st, const void *data, size_t n, const char *expected_digest, mlxr_digest *out,
                          char *err, size_t err_len) {
  if (n > (uint64_t)st->p.max_blob_bytes) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "blob size %zu is over the store's limit of %lld bytes", n,
                     (long long)st->p.max_blob_bytes);
  }
  mlxr_blob_write_params wp = {
      .expected_digest = expected_digest, .has_expected_size = true, .expected_size = (int64_t)n};
  mlxr_blob_writer *w;
  int rc = mlxr_store_writer_begin(st, &wp, &w, err, err_len);
  if (rc < 0) return rc;
  if ((rc = mlxr_blob_writer_write(w, data, n, err, err_len)) < 0) {
    mlxr_blob_writer_abort(w);
    return rc;
  }
  return mlxr_blob_writer_commit(w, out, err, err_len);
}

int mlxr_store_put_fd(mlxr_store *st, int fd, const mlxr_blob_write_params *wp, mlxr_digest *out, char *err,
                      size_t err_len) {
  if (wp && wp->resume) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "put_fd does not resume; use the writer API");
  }
  unsigned char *buf = malloc(STORE_CHUNK);
  if (!buf) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  mlxr_blob_writer *w;
  int rc = mlxr_store_writer_begin(st, wp, &w, err, err_len);
  if (rc < 0) {
    free(buf);
    return rc;
  }
  for (;;) {
    ssize_t r = read_some(fd, buf, STORE_CHUNK);
    if (r < 0) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "read failed: %s", strerror(errno));
      break;
    }
    if (r == 0) break;
    if ((rc = mlxr_blob_writer_write(w, buf, (size_t)r, err, err_len)) < 0) break;
  }
  free(buf);
  if (rc < 0) {
    mlxr_blob_writer_abort(w);
    return rc;
  }
  return mlxr_blob_writer_commit(w, out, err, err_len);
}

/* ---- reading and removing ---- */

int mlxr_store_stat(mlxr_store *st, const char *digest, mlxr_blob_stat *out, char *err, size_t err_len) {
  mlxr_digest d;
  char fname[MLXR_DIGEST_STR_SIZE];
  int rc = parse_digest(digest, &d, fname, err, err_len);
  if (rc < 0) return rc;
  struct stat sb;
  if (fstatat(st->blobs_fd, fname, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "blob sha256:%s not found", d.hex);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "stat blob sha256:%s: %s", d.hex, strerror(errno));
  }
  if (!S_ISREG(sb.st_mode)) {
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s/blobs/%s is not a regular file", st->root, fname);
  }
  if (out) {
    out->size = (int64_t)sb.st_size;
    out->mtime_s = (int64_t)sb.st_mtim.tv_sec;
  }
  return MLXR_OK;
}

int mlxr_store_open_blob(mlxr_store *st, const char *digest, int *fd_out, char *err, size_t err_len) {
  *fd_out = -1;
  mlxr_digest d;
  char fname[MLXR_DIGEST_STR_SIZE];
  int rc = parse_digest(digest, &d, fname, err, err_len);
  if (rc < 0) return rc;
  int fd = openat(st->blobs_fd, fname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "blob sha256:%s not found", d.hex);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "open blob sha256:%s: %s", d.hex, strerror(errno));
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s/blobs/%s is not a regular file", st->root, fname);
  }
  *fd_out = fd;
  return MLXR_OK;
}

int mlxr_store_blob_path(mlxr_store *st, const char *digest, char *buf, size_t buf_len, char *err, size_t err_len) {
  int rc = mlxr_store_stat(st, digest, NULL, err, err_len);
  if (rc < 0) return rc;
  mlxr_digest d;
  char fname[MLXR_DIGEST_STR_SIZE];
  parse_digest(digest, &d, fname, NULL, 0);
  int n = snprintf(buf, buf_len, "%s/blobs/%s", st->root, fname);
  if (n < 0 || (size_t)n >= buf_len) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "path buffer too small");
  return MLXR_OK;
}

int mlxr_store_verify(mlxr_store *st, const char *digest, char *err, size_t err_len) {
  int fd;
  int rc = mlxr_store_open_blob(st, digest, &fd, err, err_len);
  if (rc < 0) return rc;
  mlxr_digest want, got;
  mlxr_digest_parse(digest, &want, NULL, 0);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(md);
    close(fd);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "cannot start SHA-256");
  }
  rc = hash_fd(fd, md, NULL, err, err_len);
  close(fd);
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned int h_len = 0;
  if (rc == MLXR_OK && (EVP_DigestFinal_ex(md, h, &h_len) != 1 || h_len != 32)) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "SHA-256 failed");
  }
  EVP_MD_CTX_free(md);
  if (rc < 0) return rc;
  mlxr_digest_from_bytes(h, &got);
  if (!mlxr_digest_equal(&want, &got)) {
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "blob sha256:%s is corrupt: its bytes hash to sha256:%s",
                     want.hex, got.hex);
  }
  return MLXR_OK;
}

int mlxr_store_remove(mlxr_store *st, const char *digest, char *err, size_t err_len) {
  mlxr_digest d;
  char fname[MLXR_DIGEST_STR_SIZE];
  int rc = parse_digest(digest, &d, fname, err, err_len);
  if (rc < 0) return rc;
  if (unlinkat(st->blobs_fd, fname, 0) != 0) {
    if (errno == ENOENT) return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "blob sha256:%s not found", d.hex);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "remove blob sha256:%s: %s", d.hex, strerror(errno));
  }
  if (fsync(st->blobs_fd) != 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "fsync %s/blobs: %s", st->root, strerror(errno));
  }
  return MLXR_OK;
}

/* The names in blobs/ (malloc'ed array of malloc'ed strings), read before anything is removed. */
static int read_names(mlxr_store *st, char ***names_out, size_t *n_out, char *err, size_t err_len) {
  *names_out = NULL;
  *n_out = 0;
  int dfd = openat(st->blobs_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return mlxr_errf(err, err_len, MLXR_ERR_IO, "open %s/blobs: %s", st->root, strerror(errno));
  DIR *dir = fdopendir(dfd);
  if (!dir) {
    close(dfd);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "open %s/blobs: %s", st->root, strerror(errno));
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rc = MLXR_OK;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 32;
      char **nn = realloc(names, nc * sizeof *nn);
      if (!nn) {
        rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
        break;
      }
      names = nn;
      cap = nc;
    }
    if (!(names[n] = strdup(e->d_name))) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
      break;
    }
    n++;
  }
  closedir(dir);
  if (rc < 0) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
  }
  *names_out = names;
  *n_out = n;
  return MLXR_OK;
}

static void free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

int mlxr_store_list(mlxr_store *st, mlxr_digest **out, size_t *n_out, char *err, size_t err_len) {
  *out = NULL;
  *n_out = 0;
  char **names;
  size_t n;
  int rc = read_names(st, &names, &n, err, err_len);
  if (rc < 0) return rc;
  mlxr_digest *ds = n ? malloc(n * sizeof *ds) : NULL;
  if (n && !ds) {
    free_names(names, n);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (strlen(names[i]) != MLXR_DIGEST_STR_SIZE - 1 || strncmp(names[i], "sha256-", 7) != 0) continue;
    if (mlxr_digest_parse(names[i], &ds[k], NULL, 0) == MLXR_OK) k++;
  }
  free_names(names, n);
  if (k == 0) {
    free(ds);
    ds = NULL;
  }
  *out = ds;
  *n_out = k;
  return MLXR_OK;
}

/* Is name one of our temporary names: "sha256-<64 hex>-partial" or "tmp-<16 hex>-partial"? */
static bool is_temp_name(const char *name) {
  const size_t n = strlen(name);
  const size_t suffix = strlen("-partial");
  if (n <= suffix || strcmp(name + n - suffix, "-partial") != 0) return false;
  size_t hex_start, hex_len;
  if (strncmp(name, "sha256-", 7) == 0) hex_start = 7, hex_len = MLXR_DIGEST_HEX_LEN;
  else if (strncmp(name, "tmp-", 4) == 0) hex_start = 4, hex_len = 16;
  else return false;
  if (n != hex_start + hex_len + suffix) return false;
  for (size_t i = hex_start; i < hex_start + hex_len; i++) {
    const char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

int mlxr_store_sweep(mlxr_store *st, int64_t min_age_s, mlxr_store_sweep_fn on_removed, void *ctx,
                     mlxr_store_sweep_report *report, char *err, size_t err_len) {
  mlxr_store_sweep_report rep = {0};
  if (report) *report = rep;
  if (min_age_s < 0) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "min_age_s must not be negative");
  char **names;
  size_t n;
  int rc = read_names(st, &names, &n, err, err_len);
  if (rc < 0) return rc;
  const int64_t now = (int64_t)time(NULL);
  for (size_t i = 0; i < n; i++) {
    if (!is_temp_name(names[i])) continue;
    int fd = openat(st->blobs_fd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue; /* gone meanwhile, or not a file we may open */
    struct stat sb;
    const bool resumable = names[i][0] == 's'; /* "sha256-...-partial" */
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
        (resumable && now - (int64_t)sb.st_mtim.tv_sec < min_age_s)) {
      close(fd);
      continue;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      rep.n_in_use++;
      close(fd);
      continue;
    }
    if (same_file(st->blobs_fd, names[i], fd) && unlinkat(st->blobs_fd, names[i], 0) == 0) {
      rep.n_removed++;
      rep.bytes_removed += (int64_t)sb.st_size;
      if (on_removed) on_removed(ctx, names[i], (int64_t)sb.st_size);
    }
    close(fd);
  }
  free_names(names, n);
  if (rep.n_removed > 0 && fsync(st->blobs_fd) != 0) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "fsync %s/blobs: %s", st->root, strerror(errno));
  }
  if (report) *report = rep;
  return rc;
}
