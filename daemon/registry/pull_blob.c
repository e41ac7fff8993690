/*
 * pull_blob.c: moving one blob of a pull, into the store or into memory, with progress reports
 * (the protocol and what a failure leaves behind are in pull.h).
 *
 * How it works: pull_blob_to_store opens one store writer (resumable when the digest is known, so
 * an earlier attempt's "-partial" bytes are re-hashed and kept) and keeps it for every attempt of
 * this call: each attempt asks for the bytes from the writer's offset on (Range), and the sink
 * appends what arrives, so a dropped connection costs only a new request. The sink checks the
 * status before the first byte (200 or 206; any other status's body is kept, 256 bytes at most,
 * for the error message, never written to the blob), that a 206 starts at the offset asked for,
 * and skips the leading bytes of a 200 that ignored the Range. Commit checks size and digest
 * (store.h). Small blobs go to memory with the same attempts, then their length and SHA-256 are
 * checked here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/common/status.h"
#include "daemon/registry/pull_impl.h"

int64_t pull_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int report(pull_ctx *pc, const mlxr_registry_progress *pr) {
  if (pc->p.progress && pc->p.progress(pc->p.progress_ctx, pr) != 0) {
    return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_IO, "pull cancelled");
  }
  return MLXR_OK;
}

int pull_status(pull_ctx *pc, const char *status) {
  const mlxr_registry_progress pr = {.status = status};
  return report(pc, &pr);
}

int pull_blob_progress(pull_ctx *pc, const char *digest, int64_t total, int64_t completed, bool force) {
  const int64_t now = pull_now_ms();
  if (!force && now - pc->last_report_ms < pc->p.progress_interval_ms) return MLXR_OK;
  pc->last_report_ms = now;
  char status[32];
  if (digest && strlen(digest) >= 7 + 12) snprintf(status, sizeof status, "pulling %.12s", digest + 7);
  else snprintf(status, sizeof status, "pulling file");
  const mlxr_registry_progress pr = {.status = status, .digest = digest, .total = total, .completed = completed};
  return report(pc, &pr);
}

int pull_sha256(const void *data, size_t n, char out[MLXR_DIGEST_STR_SIZE]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32) return MLXR_ERR_IO;
  mlxr_digest d;
  mlxr_digest_from_bytes(md, &d);
  mlxr_digest_str(&d, out);
  return MLXR_OK;
}

/* ---- one attempt's sink ---- */

typedef struct blob_sink {
  pull_ctx *pc;
  const char *digest;        /* for progress; may be NULL */
  int64_t total;             /* -1 when unknown */
  int64_t cap;               /* most bytes accepted */
  const char *magic;         /* the blob must start with these bytes; NULL: anything */
  int64_t asked_from;        /* the Range start of this attempt (0: none) */
  int64_t to_skip;           /* bytes of a 200 still to drop (it ignored our Range) */
  bool started;              /* the first body byte of the final response was seen */
  bool ok_status;            /* 200 or 206 */
  char errbody[257];         /* the start of an error response's body */
  size_t errbody_len;
  /* where bytes go: a store writer, or a memory buffer */
  mlxr_blob_writer *w;
  char *mem;
  int64_t mem_len, mem_cap;
} blob_sink;

static int64_t sink_done(const blob_sink *s) { return s->w ? mlxr_blob_writer_offset(s->w) : s->mem_len; }

/* Called at the first body byte of the final response of an attempt. */
static void sink_start(blob_sink *s, int status) {
  s->started = true;
  s->ok_status = status == 200 || status == 206;
  if (status == 200 && s->asked_from > 0) s->to_skip = s->asked_from;
}

static int on_bytes(void *ctx, int status, const void *data, size_t n) {
  blob_sink *s = ctx;
  pull_ctx *pc = s->pc;
  if (!s->started) sink_start(s, status);
  if (!s->ok_status) {
    const size_t room = sizeof s->errbody - 1 - s->errbody_len;
    const size_t k = n < room ? n : room;
    memcpy(s->errbody + s->errbody_len, data, k);
    s->errbody_len += k;
    s->errbody[s->errbody_len] = '\0';
    return 0;
  }
  const char *p = data;
  if (s->to_skip > 0) {
    const size_t k = (int64_t)n < s->to_skip ? n : (size_t)s->to_skip;
    s->to_skip -= (int64_t)k;
    p += k;
    n -= k;
    if (n == 0) return 0;
  }
  int rc;
  const size_t magic_len = s->magic ? strlen(s->magic) : 0;
  for (int64_t at = sink_done(s); at < (int64_t)magic_len && at - sink_done(s) < (int64_t)n; at++) {
    if (p[at - sink_done(s)] != s->magic[at]) {
      return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_FORMAT, "the download does not start with \"%s\"", s->magic);
    }
  }
  if ((int64_t)n > s->cap - sink_done(s)) {
    return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_RANGE, "download is longer than the limit of %lld bytes",
                     (long long)s->cap);
  }
  if (s->w) {
    if ((rc = mlxr_blob_writer_write(s->w, p, n, pc->err, pc->err_len)) < 0) return rc;
  } else {
    if ((int64_t)n > s->mem_cap - s->mem_len) {
      return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_RANGE, "blob %s is longer than its %lld bytes",
                       s->digest ? s->digest : "", (long long)s->mem_cap);
    }
    memcpy(s->mem + s->mem_len, p, n);
    s->mem_len += (int64_t)n;
  }
  pc->stats->bytes_downloaded += (int64_t)n;
  return pull_blob_progress(pc, s->digest, s->total > 0 ? s->total : 0, sink_done(s), false);
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* The message for a final response that is not 200/206. */
static int bad_status(pull_ctx *pc, const char *url, const mlxr_transfer_response *r, const blob_sink *s) {
  char q[256], qb[300];
  mlxr_registry_quote(url, q, sizeof q);
  mlxr_registry_quote(s->errbody, qb, sizeof qb);
  if (r->status == 404) return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_NOT_FOUND, "%s: not found (404)", q);
  if (r->status == 401 || r->status == 403) {
    return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_UNSUPPORTED,
                     "%s: the registry wants authentication (HTTP %d), which MLXR does not do yet", q, r->status);
  }
  return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_IO, "%s: HTTP %d%s%s", q, r->status, qb[0] ? ": " : "", qb);
}

/* Runs attempts until the sink holds `size` bytes (or, with size -1, a response ended cleanly).
 * Shared by both destinations. */
static int run_attempts(pull_ctx *pc, const char *url, blob_sink *s, int64_t size) {
  int delay = pc->p.retry_delay_ms > 0 ? pc->p.retry_delay_ms : 0;
  char last[512] = "";
  for (int attempt = 0;; attempt++) {
    if (size >= 0 && sink_done(s) == size) return MLXR_OK;
    if (attempt > 0) {
      if (attempt > pc->p.max_retries) {
        return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_IO, "giving up after %d attempts: %s", attempt, last);
      }
      pc->stats->n_retries++;
      if (delay > 0) sleep_ms(delay);
      delay = delay * 2 > 30000 ? 30000 : delay * 2;
    }
    const int64_t from = sink_done(s);
    s->asked_from = from;
    s->to_skip = 0;
    s->started = false;
    s->errbody_len = 0;
    s->errbody[0] = '\0';
    const mlxr_transfer_request req = {.method = "GET",
                                       .url = url,
                                       .range_start = from,
                                       .follow_redirects = true,
                                       .body_fd = -1,
                                       .sink = on_bytes,
                                       .sink_ctx = s};
    mlxr_transfer_response r;
    int rc = mlxr_transfer_do(&pc->p.transfer, &req, &r, pc->err, pc->err_len);
    if (rc == MLXR_OK || rc == MLXR_ERR_IO) {
      if (r.status != 0 && r.status != 200 && r.status != 206) {
        rc = bad_status(pc, url, &r, s);
        mlxr_transfer_response_clear(&r);
        return rc;
      }
      if (r.status == 206 && r.range_start != from) {
        rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_IO, "asked for bytes from %lld, the server sent them from %lld",
                       (long long)from, (long long)r.range_start);
        mlxr_transfer_response_clear(&r);
        return rc;
      }
    }
    mlxr_transfer_response_clear(&r);
    if (rc == MLXR_ERR_IO) { /* dropped, stalled, refused: try again from where we are */
      snprintf(last, sizeof last, "%s", pc->err);
      continue;
    }
    if (rc < 0) return rc;
    if (size < 0) return MLXR_OK; /* unknown length: a clean end is the end */
    if (sink_done(s) < size) {
      snprintf(last, sizeof last, "the response ended after %lld of %lld bytes", (long long)sink_done(s),
               (long long)size);
    }
  }
}

int pull_blob_to_store(pull_ctx *pc, mlxr_store *st, const char *url, const char *digest, int64_t size,
                       const char *magic, mlxr_digest *out) {
  const mlxr_blob_write_params wp = {.expected_digest = digest,
                                     .has_expected_size = size >= 0,
                                     .expected_size = size,
                                     .resume = digest != NULL};
  if (size > pc->p.limits.max_blob_bytes) {
    return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_RANGE, "blob of %lld bytes is over the limit of %lld",
                     (long long)size, (long long)pc->p.limits.max_blob_bytes);
  }
  blob_sink s = {.pc = pc, .digest = digest, .total = size, .cap = size >= 0 ? size : pc->p.limits.max_blob_bytes,
                 .magic = magic};
  int rc = mlxr_store_writer_begin(st, &wp, &s.w, pc->err, pc->err_len);
  if (rc < 0) return rc;
  const int64_t resumed = mlxr_blob_writer_offset(s.w);
  pc->stats->bytes_resumed += resumed;
  if ((rc = pull_blob_progress(pc, digest, size > 0 ? size : 0, resumed, true)) < 0) goto fail;
  if ((rc = run_attempts(pc, url, &s, size)) < 0) goto fail;
  if ((rc = pull_blob_progress(pc, digest, size > 0 ? size : sink_done(&s), sink_done(&s), true)) < 0) goto fail;
  char why[512];
  if ((rc = mlxr_blob_writer_commit(s.w, out, why, sizeof why)) < 0) {
    return mlxr_errf(pc->err, pc->err_len, rc, "blob from %s refused: %s", url, why);
  }
  return MLXR_OK;
fail:
  mlxr_blob_writer_abort(s.w);
  return rc;
}

int pull_blob_to_memory(pull_ctx *pc, const char *url, const char *digest, int64_t size, char **buf) {
  *buf = NULL;
  blob_sink s = {.pc = pc, .digest = digest, .total = size, .cap = size, .mem_cap = size};
  s.mem = malloc((size_t)size + 1);
  if (!s.mem) return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_NOMEM, "out of memory");
  int rc = pull_blob_progress(pc, digest, size, 0, true);
  if (rc == MLXR_OK) rc = run_attempts(pc, url, &s, size);
  if (rc == MLXR_OK) rc = pull_blob_progress(pc, digest, size, s.mem_len, true);
  if (rc == MLXR_OK) {
    char got[MLXR_DIGEST_STR_SIZE];
    if (pull_sha256(s.mem, (size_t)s.mem_len, got) < 0) {
      rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_IO, "SHA-256 failed");
    } else if (strcmp(got, digest) != 0) {
      rc = mlxr_errf(pc->err, pc->err_len, MLXR_ERR_FORMAT, "blob from %s refused: digest mismatch: expected %s, the bytes hash to %s",
                     url, digest, got);
    }
  }
  if (rc < 0) {
    free(s.mem);
    return rc;
  }
  s.mem[s.mem_len] = '\0';
  *buf = s.mem;
  return MLXR_OK;
}

int pull_read_stored(pull_ctx *pc, mlxr_store *st, const char *digest, int64_t size, char **buf) {
  *buf = NULL;
  int fd;
  int rc = mlxr_store_open_blob(st, digest, &fd, pc->err, pc->err_len);
  if (rc < 0) return rc;
  char *m = malloc((size_t)size + 1);
  if (!m) {
    close(fd);
    return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  int64_t got = 0;
  while (got < size) {
    ssize_t r = read(fd, m + got, (size_t)(size - got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += r;
  }
  close(fd);
  if (got != size) {
    free(m);
    return mlxr_errf(pc->err, pc->err_len, MLXR_ERR_FORMAT, "stored blob %s has %lld bytes, the manifest says %lld",
                     digest, (long long)got, (long long)size);
  }
  m[size] = '\0';
  *buf = m;
  return MLXR_OK;
}
