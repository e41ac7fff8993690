/*
 * test_registry_store.c: the content-addressed blob store (daemon/registry/store.c).
 *
 * Checked properties, each against a reference independent of the code under test (which hashes
 * with OpenSSL): digests equal the FIPS 180-2 vectors ("abc", the empty string, one million 'a',
 * the last written in uneven chunks) and, for random data of several sizes, what coreutils'
 * sha256sum says about the same bytes; a stored file's bytes hash (sha256sum) to its name; an
 * expected digest or size that does not match, a negative or over-limit size, an overrun while
 * writing, and hostile digests (dots, slashes, uppercase, short) are refused with the right status
 * and a message, and leave the directory tree byte-for-byte unchanged; stat/open/path/verify/remove
 * and list behave (list ignores foreign files, verify catches a corrupted blob); a resumable write
 * continues after an abort where it stopped, starts over when its partial file is too long, and
 * refuses a second concurrent writer; the sweep removes leftovers of dead writers, keeps files of
 * live ones and young resumable partials, and reports what it removed.
 * Crash safety: a child process writing blobs kills itself (SIGKILL, through the store's hook) at
 * each named point (mid-write, before fsync, after fsync, after rename) and, separately, is killed
 * after a range of delays; afterwards every file under a final name hashes to its name, the
 * interrupted write is either complete or absent, a resumable write finishes from where the child
 * stopped with the right digest, and the sweep clears the leftovers. Also: the default root's
 * precedence (MLXR_MODELS, an absolute XDG_DATA_HOME, HOME).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/common/status.h"
#include "daemon/registry/store.h"
#include "tests/unit/check.h"
#include "tests/unit/test_registry_util.h"

#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MILLION_A_SHA256 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

typedef struct env {
  char tmp[1024];   /* scratch directory of this test */
  char root[1100];  /* the store's root */
  char blobs[1200]; /* root/blobs */
} env;

static mlxr_store *open_store(env *e, const char *sub, const mlxr_store_params *p) {
  snprintf(e->root, sizeof e->root, "%s/%s/a/b", e->tmp, sub); /* parents created by open */
  snprintf(e->blobs, sizeof e->blobs, "%s/blobs", e->root);
  mlxr_store *st = NULL;
  char err[512] = "";
  int rc = mlxr_store_open(e->root, p, &st, err, sizeof err);
  CHECK(rc == MLXR_OK, "open store %s: %s", e->root, err);
  return st;
}

static bool blob_exists(env *e, const char *hex) {
  char path[4400];
  snprintf(path, sizeof path, "%s/sha256-%s", e->blobs, hex);
  return access(path, F_OK) == 0;
}

/* The blob's file hashes (sha256sum) to hex. */
static void check_file_hash(env *e, const char *hex) {
  char path[4400], got[65] = "";
  snprintf(path, sizeof path, "%s/sha256-%s", e->blobs, hex);
  CHECK(reg_sha256sum(path, got) && strcmp(got, hex) == 0, "sha256sum of %s is %s", path, got);
}

static void check_all_final_names(env *e, const char *when) {
  int n = 0;
  int bad = reg_check_final_names(e->blobs, &n);
  CHECK(bad == 0, "%s: %d file(s) under final names do not hash to their names (sha256sum)", when, bad);
}

/* ---- digests against FIPS 180-2 and sha256sum ---- */

static void test_vectors(env *e, mlxr_store *st) {
  mlxr_digest d;
  char err[512] = "";
  CHECK(mlxr_store_put_buffer(st, "abc", 3, NULL, &d, err, sizeof err) == MLXR_OK, "put abc: %s", err);
  CHECK(strcmp(d.hex, ABC_SHA256) == 0, "sha256(abc) = %s", d.hex);
  check_file_hash(e, ABC_SHA256);
  CHECK(mlxr_store_put_buffer(st, "", 0, NULL, &d, err, sizeof err) == MLXR_OK, "put empty: %s", err);
  CHECK(strcmp(d.hex, EMPTY_SHA256) == 0, "sha256('') = %s", d.hex);
  check_file_hash(e, EMPTY_SHA256);

  /* One million 'a' through the writer, in uneven chunks. */
  const size_t total = 1000000;
  unsigned char *a = malloc(total);
  memset(a, 'a', total);
  mlxr_blob_writer *w = NULL;
  mlxr_blob_write_params wp = {.expected_digest = "sha256:" MILLION_A_SHA256, .has_expected_size = true,
                               .expected_size = (int64_t)total};
  CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "begin: %s", err);
  static const size_t chunks[] = {1, 7, 4096, 65537, 333, 0, 100000};
  size_t off = 0;
  for (int i = 0; w && off < total; i++) {
    size_t n = chunks[i % 7];
    if (n > total - off) n = total - off;
    CHECK(mlxr_blob_writer_write(w, a + off, n, err, sizeof err) == MLXR_OK, "write: %s", err);
    off += n;
    CHECK(mlxr_blob_writer_offset(w) == (int64_t)off, "offset %lld != %zu", (long long)mlxr_blob_writer_offset(w), off);
  }
  if (w) CHECK(mlxr_blob_writer_commit(w, &d, err, sizeof err) == MLXR_OK, "commit: %s", err);
  CHECK(strcmp(d.hex, MILLION_A_SHA256) == 0, "sha256(1M a) = %s", d.hex);
  check_file_hash(e, MILLION_A_SHA256);
  free(a);
}

static void test_random_vs_sha256sum(env *e, mlxr_store *st) {
  static const size_t sizes[] = {1, 55, 56, 64, 1000, (1u << 20), (1u << 20) + 13, (3u << 20) + 5};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    const size_t n = sizes[i];
    unsigned char *buf = malloc(n);
    reg_fill(buf, n, 1000 + i);
    char in[4400], want[65] = "", err[512] = "";
    snprintf(in, sizeof in, "%s/input.bin", e->tmp);
    CHECK(reg_write_file(in, buf, n), "write %s", in);
    CHECK(reg_sha256sum(in, want), "sha256sum %s", in);
    int fd = open(in, O_RDONLY);
    mlxr_digest d = {{0}};
    CHECK(mlxr_store_put_fd(st, fd, NULL, &d, err, sizeof err) == MLXR_OK, "put_fd %zu: %s", n, err);
    close(fd);
    CHECK(strcmp(d.hex, want) == 0, "size %zu: store says %s, sha256sum %s", n, d.hex, want);
    mlxr_blob_stat bs;
    char ds[MLXR_DIGEST_STR_SIZE];
    mlxr_digest_str(&d, ds);
    CHECK(mlxr_store_stat(st, ds, &bs, err, sizeof err) == MLXR_OK && bs.size == (int64_t)n, "stat size %zu", n);
    /* put_buffer of the same bytes: same digest (and the blob stays one file) */
    mlxr_digest d2 = {{0}};
    CHECK(mlxr_store_put_buffer(st, buf, n, ds, &d2, err, sizeof err) == MLXR_OK && mlxr_digest_equal(&d, &d2),
          "put_buffer again: %s", err);
    unlink(in);
    free(buf);
  }
  check_all_final_names(e, "after random blobs");
  CHECK(reg_count_entries(e->blobs, "-partial") == 0, "no temporary file left after successful writes");
}

/* ---- refusals leave the tree unchanged ---- */

static void test_expectations(env *e, mlxr_store *st) {
  char *before = reg_snapshot(e->tmp, NULL);
  char err[512];
  mlxr_digest d;
  unsigned char data[3000];
  reg_fill(data, sizeof data, 7);

  /* wrong expected digest */
  err[0] = '\0';
  int rc = mlxr_store_put_buffer(st, data, sizeof data, "sha256:" ABC_SHA256, &d, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && strstr(err, "digest mismatch"), "mismatch: rc %d \"%s\"", rc, err);
  /* size: fewer bytes than announced */
  mlxr_blob_writer *w = NULL;
  mlxr_blob_write_params wp = {.has_expected_size = true, .expected_size = 4000};
  CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "begin: %s", err);
  if (w) {
    CHECK(mlxr_blob_writer_write(w, data, sizeof data, err, sizeof err) == MLXR_OK, "write: %s", err);
    rc = mlxr_blob_writer_commit(w, &d, err, sizeof err);
    CHECK(rc == MLXR_ERR_RANGE && strstr(err, "expected 4000"), "short: rc %d \"%s\"", rc, err);
  }
  /* size: more bytes than announced */
  wp.expected_size = 2000;
  CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "begin: %s", err);
  if (w) {
    rc = mlxr_blob_writer_write(w, data, sizeof data, err, sizeof err);
    CHECK(rc == MLXR_ERR_RANGE && strstr(err, "longer than its expected size"), "overrun: rc %d \"%s\"", rc, err);
    rc = mlxr_blob_writer_write(w, data, 10, err, sizeof err);
    CHECK(rc == MLXR_ERR_INVALID, "a spoiled writer refuses more writes (rc %d)", rc);
    rc = mlxr_blob_writer_commit(w, &d, err, sizeof err);
    CHECK(rc == MLXR_ERR_INVALID, "a spoiled writer cannot commit (rc %d)", rc);
  }
  /* negative and huge sizes */
  static const int64_t bad_sizes[] = {-1, -4096, INT64_MIN, ((int64_t)1 << 40) + 1, INT64_MAX};
  for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
    wp.expected_size = bad_sizes[i];
    w = NULL;
    err[0] = '\0';
    rc = mlxr_store_writer_begin(st, &wp, &w, err, sizeof err);
    CHECK(rc == MLXR_ERR_RANGE && w == NULL && err[0], "size %lld: rc %d \"%s\"", (long long)bad_sizes[i], rc, err);
    CHECK(bad_sizes[i] >= 0 || strstr(err, "negative"), "size %lld: message \"%s\"", (long long)bad_sizes[i], err);
  }
  /* resume without a digest */
  mlxr_blob_write_params rp = {.resume = true};
  rc = mlxr_store_writer_begin(st, &rp, &w, err, sizeof err);
  CHECK(rc == MLXR_ERR_INVALID, "resume without digest: rc %d", rc);
  /* put_fd refuses resume */
  rp.expected_digest = "sha256:" ABC_SHA256;
  rc = mlxr_store_put_fd(st, 0, &rp, &d, err, sizeof err);
  CHECK(rc == MLXR_ERR_INVALID, "put_fd with resume: rc %d", rc);

  char *after = reg_snapshot(e->tmp, NULL);
  CHECK(strcmp(before, after) == 0, "refused writes changed the tree:\n--- before\n%s--- after\n%s", before, after);
  free(before);
  free(after);

  /* A store with a small limit: a stream over it is cut off, nothing stored. */
  env e2 = *e;
  mlxr_store_params p = mlxr_store_default_params();
  p.max_blob_bytes = 1000;
  mlxr_store *small = open_store(&e2, "small", &p);
  if (small) {
    rc = mlxr_store_put_buffer(small, data, 1001, NULL, &d, err, sizeof err);
    CHECK(rc == MLXR_ERR_RANGE && strstr(err, "limit of 1000"), "over the limit: rc %d \"%s\"", rc, err);
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    CHECK(write(fds[1], data, 1500) == 1500, "fill pipe");
    close(fds[1]);
    rc = mlxr_store_put_fd(small, fds[0], NULL, &d, err, sizeof err);
    close(fds[0]);
    CHECK(rc == MLXR_ERR_RANGE, "a stream over the limit: rc %d \"%s\"", rc, err);
    CHECK(reg_count_entries(e2.blobs, NULL) == 0, "nothing left in the small store");
    CHECK(mlxr_store_put_buffer(small, data, 1000, NULL, &d, err, sizeof err) == MLXR_OK, "at the limit: %s", err);
    mlxr_store_close(small);
  }
  mlxr_store_params zero = mlxr_store_default_params();
  zero.max_blob_bytes = 0;
  mlxr_store *bad = NULL;
  CHECK(mlxr_store_open(e->root, &zero, &bad, err, sizeof err) == MLXR_ERR_INVALID && !bad, "max 0 refused");
}

static void test_hostile_digests(env *e, mlxr_store *st) {
  /* A file outside blobs/ that a traversal would hit. */
  char victim[4400];
  snprintf(victim, sizeof victim, "%s/victim", e->tmp);
  reg_write_file(victim, "keep", 4);
  char *before = reg_snapshot(e->tmp, NULL);
  static const char *const bad[] = {
      "sha256:../../../victim",
      "sha256-../../victim",
      "sha256:" ABC_SHA256 "/../../victim",
      "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
      "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
      "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0",
      "sha256:ba7816bf8f01cfea414140de5dae2223.0361a396177a9cb410ff61f20015ad",
      "sha256/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      "sha256:ba7816bf8f01cfea414140de5dae2223/0361a396177a9cb410ff61f20015ad",
      "md5:900150983cd24fb0d6963f7d28e17f72",
      "",
      "../victim",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char err[512] = "";
    mlxr_blob_stat bs;
    int fd = -1;
    char path[4400];
    mlxr_digest d;
    CHECK(mlxr_store_stat(st, bad[i], &bs, err, sizeof err) == MLXR_ERR_INVALID, "stat \"%s\"", bad[i]);
    CHECK(strstr(err, "invalid digest") != NULL, "stat \"%s\": message \"%s\"", bad[i], err);
    CHECK(mlxr_store_open_blob(st, bad[i], &fd, err, sizeof err) == MLXR_ERR_INVALID && fd == -1, "open \"%s\"", bad[i]);
    CHECK(mlxr_store_blob_path(st, bad[i], path, sizeof path, err, sizeof err) == MLXR_ERR_INVALID, "path \"%s\"", bad[i]);
    CHECK(mlxr_store_verify(st, bad[i], err, sizeof err) == MLXR_ERR_INVALID, "verify \"%s\"", bad[i]);
    CHECK(mlxr_store_remove(st, bad[i], err, sizeof err) == MLXR_ERR_INVALID, "remove \"%s\"", bad[i]);
    CHECK(mlxr_store_put_buffer(st, "keep", 4, bad[i], &d, err, sizeof err) == MLXR_ERR_INVALID, "put \"%s\"", bad[i]);
    mlxr_blob_writer *w = NULL;
    mlxr_blob_write_params wp = {.expected_digest = bad[i], .resume = true};
    CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_ERR_INVALID && !w, "resume \"%s\"", bad[i]);
  }
  char *after = reg_snapshot(e->tmp, NULL);
  CHECK(strcmp(before, after) == 0, "hostile digests changed the tree:\n--- before\n%s--- after\n%s", before, after);
  free(before);
  free(after);
  unlink(victim);
}

/* ---- reading, removing, listing ---- */

static void test_read_remove(env *e, mlxr_store *st) {
  char err[512] = "";
  mlxr_digest d;
  unsigned char data[5000];
  reg_fill(data, sizeof data, 99);
  CHECK(mlxr_store_put_buffer(st, data, sizeof data, NULL, &d, err, sizeof err) == MLXR_OK, "put: %s", err);
  char ds[MLXR_DIGEST_STR_SIZE], dash[MLXR_DIGEST_STR_SIZE];
  mlxr_digest_str(&d, ds);
  mlxr_digest_filename(&d, dash);

  int fd = -1;
  CHECK(mlxr_store_open_blob(st, dash, &fd, err, sizeof err) == MLXR_OK, "open by sha256-: %s", err);
  unsigned char back[6000];
  ssize_t got = fd >= 0 ? read(fd, back, sizeof back) : -1;
  CHECK(got == (ssize_t)sizeof data && memcmp(back, data, sizeof data) == 0, "read back %zd bytes", got);
  if (fd >= 0) close(fd);
  char path[4400], want_path[4400];
  CHECK(mlxr_store_blob_path(st, ds, path, sizeof path, err, sizeof err) == MLXR_OK, "path: %s", err);
  char real_root[4096];
  CHECK(realpath(e->root, real_root) != NULL, "realpath");
  snprintf(want_path, sizeof want_path, "%s/blobs/%s", real_root, dash);
  CHECK(strcmp(path, want_path) == 0, "path %s, want %s", path, want_path);
  CHECK(mlxr_store_blob_path(st, ds, path, 20, err, sizeof err) == MLXR_ERR_RANGE, "path into a small buffer");
  CHECK(mlxr_store_verify(st, ds, err, sizeof err) == MLXR_OK, "verify: %s", err);

  /* list: our blobs, not foreign files or temporaries */
  char junk[4400];
  snprintf(junk, sizeof junk, "%s/README", e->blobs);
  reg_write_file(junk, "x", 1);
  snprintf(junk, sizeof junk, "%s/sha256-XYZ", e->blobs);
  reg_write_file(junk, "x", 1);
  mlxr_digest *all = NULL;
  size_t n = 0;
  CHECK(mlxr_store_list(st, &all, &n, err, sizeof err) == MLXR_OK, "list: %s", err);
  bool found = false;
  for (size_t i = 0; i < n; i++) found |= mlxr_digest_equal(&all[i], &d);
  CHECK(found, "list has the blob");
  const int finals = reg_count_entries(e->blobs, NULL) - 2 - reg_count_entries(e->blobs, "-partial");
  CHECK((int)n == finals, "list has %zu, the directory %d final names", n, finals);
  free(all);

  /* verify catches corruption of the same size */
  CHECK(mlxr_store_blob_path(st, ds, path, sizeof path, err, sizeof err) == MLXR_OK, "path");
  FILE *f = fopen(path, "r+b");
  if (f) {
    fseek(f, 100, SEEK_SET);
    fputc(data[100] ^ 1, f);
    fclose(f);
  }
  int rc = mlxr_store_verify(st, ds, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && strstr(err, "corrupt"), "verify a corrupted blob: rc %d \"%s\"", rc, err);
  /* putting the right bytes again repairs it (rename over the bad file) */
  CHECK(mlxr_store_put_buffer(st, data, sizeof data, ds, NULL, err, sizeof err) == MLXR_OK, "re-put: %s", err);
  CHECK(mlxr_store_verify(st, ds, err, sizeof err) == MLXR_OK, "repaired: %s", err);

  CHECK(mlxr_store_remove(st, ds, err, sizeof err) == MLXR_OK, "remove: %s", err);
  CHECK(!blob_exists(e, d.hex), "removed from disk");
  CHECK(mlxr_store_remove(st, ds, err, sizeof err) == MLXR_ERR_NOT_FOUND, "remove twice");
  CHECK(mlxr_store_stat(st, ds, NULL, err, sizeof err) == MLXR_ERR_NOT_FOUND, "stat after remove");
  CHECK(mlxr_store_open_blob(st, ds, &fd, err, sizeof err) == MLXR_ERR_NOT_FOUND && fd == -1, "open after remove");
  CHECK(strstr(err, "not found") != NULL, "message: %s", err);
  snprintf(junk, sizeof junk, "%s/README", e->blobs);
  unlink(junk);
  snprintf(junk, sizeof junk, "%s/sha256-XYZ", e->blobs);
  unlink(junk);
}

/* ---- resume and sweep ---- */

static void test_resume(env *e, mlxr_store *st) {
  const size_t n = 300000;
  unsigned char *data = malloc(n);
  reg_fill(data, n, 4242);
  char in[4400], hex[65] = "", digest[80], err[512] = "";
  snprintf(in, sizeof in, "%s/resume.bin", e->tmp);
  reg_write_file(in, data, n);
  CHECK(reg_sha256sum(in, hex), "sha256sum");
  unlink(in);
  snprintf(digest, sizeof digest, "sha256-%s", hex);
  mlxr_blob_write_params wp = {.expected_digest = digest, .has_expected_size = true, .expected_size = (int64_t)n,
                               .resume = true};
  mlxr_blob_writer *w = NULL, *w2 = NULL;
  CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "begin: %s", err);
  if (!w) goto out;
  CHECK(mlxr_blob_writer_offset(w) == 0, "fresh resumable write starts at 0");
  CHECK(mlxr_blob_writer_write(w, data, 100000, err, sizeof err) == MLXR_OK, "write: %s", err);
  /* a second writer of the same digest is refused while the first lives */
  int rc = mlxr_store_writer_begin(st, &wp, &w2, err, sizeof err);
  CHECK(rc == MLXR_ERR_IO && !w2 && strstr(err, "already in progress"), "concurrent resume: rc %d \"%s\"", rc, err);
  mlxr_blob_writer_abort(w);
  char partial[4400];
  snprintf(partial, sizeof partial, "%s/sha256-%s-partial", e->blobs, hex);
  struct stat sb;
  CHECK(stat(partial, &sb) == 0 && sb.st_size == 100000, "partial file kept with 100000 bytes");
  CHECK(!blob_exists(e, hex), "no final file yet");

  /* resume: offset is where we stopped; write the rest */
  CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "resume: %s", err);
  if (!w) goto out;
  CHECK(mlxr_blob_writer_offset(w) == 100000, "resume offset %lld", (long long)mlxr_blob_writer_offset(w));
  CHECK(mlxr_blob_writer_write(w, data + 100000, n - 100000, err, sizeof err) == MLXR_OK, "write rest: %s", err);
  mlxr_digest d = {{0}};
  CHECK(mlxr_blob_writer_commit(w, &d, err, sizeof err) == MLXR_OK, "commit: %s", err);
  CHECK(strcmp(d.hex, hex) == 0, "resumed digest %s, sha256sum %s", d.hex, hex);
  check_file_hash(e, hex);
  CHECK(access(partial, F_OK) != 0, "partial gone after commit");
  CHECK(mlxr_store_remove(st, digest, err, sizeof err) == MLXR_OK, "remove: %s", err);

  /* a corrupted partial: the resumed write hashes the bad bytes and is refused at commit */
  CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "begin: %s", err);
  if (!w) goto out;
  data[5] ^= 0xff;
  CHECK(mlxr_blob_writer_write(w, data, 50000, err, sizeof err) == MLXR_OK, "write: %s", err);
  data[5] ^= 0xff;
  mlxr_blob_writer_abort(w);
  CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "resume: %s", err);
  if (!w) goto out;
  CHECK(mlxr_blob_writer_offset(w) == 50000, "offset 50000");
  CHECK(mlxr_blob_writer_write(w, data + 50000, n - 50000, err, sizeof err) == MLXR_OK, "write: %s", err);
  rc = mlxr_blob_writer_commit(w, &d, err, sizeof err);
  CHECK(rc == MLXR_ERR_FORMAT && strstr(err, "digest mismatch"), "corrupt partial: rc %d \"%s\"", rc, err);
  CHECK(access(partial, F_OK) != 0 && !blob_exists(e, hex), "a refused resume leaves nothing");

  /* a partial longer than the expected size is discarded: start over at 0 */
  unsigned char *longer = malloc(n + 10);
  memcpy(longer, data, n);
  reg_write_file(partial, longer, n + 10);
  free(longer);
  CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "begin over long partial: %s", err);
  if (!w) goto out;
  CHECK(mlxr_blob_writer_offset(w) == 0, "too-long partial: offset %lld", (long long)mlxr_blob_writer_offset(w));
  CHECK(mlxr_blob_writer_write(w, data, n, err, sizeof err) == MLXR_OK, "write: %s", err);
  CHECK(mlxr_blob_writer_commit(w, &d, err, sizeof err) == MLXR_OK && strcmp(d.hex, hex) == 0, "commit: %s", err);
  check_file_hash(e, hex);
out:
  free(data);
}

typedef struct sweep_seen {
  int n;
  char names[8][128];
} sweep_seen;

static void on_swept(void *ctx, const char *name, int64_t size) {
  sweep_seen *s = ctx;
  (void)size;
  if (s->n < 8) snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
  s->n++;
}

static void test_sweep(env *e, mlxr_store *st) {
  char err[512] = "";
  unsigned char data[1000];
  reg_fill(data, sizeof data, 5);
  /* a live one-shot writer: kept */
  mlxr_blob_writer *live = NULL;
  CHECK(mlxr_store_writer_begin(st, NULL, &live, err, sizeof err) == MLXR_OK, "begin: %s", err);
  if (live) mlxr_blob_writer_write(live, data, 10, err, sizeof err);
  /* a dead writer: a child that starts a write and exits without finishing */
  pid_t pid = fork();
  if (pid == 0) {
    mlxr_store *cs = NULL;
    char cerr[256];
    if (mlxr_store_open(e->root, NULL, &cs, cerr, sizeof cerr) != MLXR_OK) _exit(2);
    mlxr_blob_writer *w = NULL;
    if (mlxr_store_writer_begin(cs, NULL, &w, cerr, sizeof cerr) != MLXR_OK) _exit(3);
    mlxr_blob_writer_write(w, data, 777, cerr, sizeof cerr);
    _exit(0); /* no commit, no abort: as if it died */
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
  /* an abandoned resumable write */
  mlxr_blob_write_params wp = {.expected_digest = "sha256:" ABC_SHA256, .resume = true};
  mlxr_blob_writer *rw = NULL;
  CHECK(mlxr_store_writer_begin(st, &wp, &rw, err, sizeof err) == MLXR_OK, "begin resumable: %s", err);
  if (rw) {
    mlxr_blob_writer_write(rw, "ab", 2, err, sizeof err);
    mlxr_blob_writer_abort(rw);
  }
  CHECK(reg_count_entries(e->blobs, "-partial") == 3, "three temporary files before the sweep (%d)",
        reg_count_entries(e->blobs, "-partial"));

  sweep_seen seen = {0};
  mlxr_store_sweep_report rep;
  CHECK(mlxr_store_sweep(st, 3600, on_swept, &seen, &rep, err, sizeof err) == MLXR_OK, "sweep: %s", err);
  CHECK(rep.n_removed == 1 && rep.bytes_removed == 777 && rep.n_in_use == 1, "sweep(1h): removed %lld (%lld B), in use %lld",
        (long long)rep.n_removed, (long long)rep.bytes_removed, (long long)rep.n_in_use);
  CHECK(seen.n == 1 && strncmp(seen.names[0], "tmp-", 4) == 0, "reported the dead writer's file: %d %s", seen.n,
        seen.names[0]);
  CHECK(reg_count_entries(e->blobs, "-partial") == 2, "the live and the young resumable file stay");

  memset(&seen, 0, sizeof seen);
  CHECK(mlxr_store_sweep(st, 0, on_swept, &seen, &rep, err, sizeof err) == MLXR_OK, "sweep: %s", err);
  CHECK(rep.n_removed == 1 && rep.n_in_use == 1 && seen.n == 1 &&
            strcmp(seen.names[0], "sha256-" ABC_SHA256 "-partial") == 0,
        "sweep(0) removes the abandoned resumable file: %lld %s", (long long)rep.n_removed, seen.names[0]);
  /* the live writer still works after the sweeps */
  mlxr_digest d;
  if (live) {
    CHECK(mlxr_blob_writer_commit(live, &d, err, sizeof err) == MLXR_OK, "live writer commits: %s", err);
  }
  CHECK(reg_count_entries(e->blobs, "-partial") == 0, "no temporary file left");
  CHECK(mlxr_store_sweep(st, -1, NULL, NULL, &rep, err, sizeof err) == MLXR_ERR_RANGE, "negative age refused");
}

/* ---- crash safety ---- */

typedef struct kill_plan {
  const char *point; /* hook point to die at */
  int at;            /* on its at-th occurrence */
  int seen;
} kill_plan;

static void kill_hook(void *ctx, const char *point) {
  kill_plan *k = ctx;
  if (strcmp(point, k->point) == 0 && ++k->seen == k->at) raise(SIGKILL);
}

#define CRASH_CHUNK 65536
#define CRASH_D_SIZE (3 * CRASH_CHUNK + 100)
#define CRASH_E_SIZE 50000

/* The child: a resumable write of D in chunks, then a one-shot put of E. */
static void crash_child(env *e, kill_plan *k, const unsigned char *dd, const char *d_digest, const unsigned char *ed) {
  mlxr_store_params p = mlxr_store_default_params();
  p.hook = kill_hook;
  p.hook_ctx = k;
  mlxr_store *st = NULL;
  char err[256];
  if (mlxr_store_open(e->root, &p, &st, err, sizeof err) != MLXR_OK) _exit(2);
  mlxr_blob_write_params wp = {.expected_digest = d_digest, .has_expected_size = true,
                               .expected_size = CRASH_D_SIZE, .resume = true};
  mlxr_blob_writer *w = NULL;
  if (mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) != MLXR_OK) _exit(3);
  for (size_t off = 0; off < CRASH_D_SIZE; off += CRASH_CHUNK) {
    size_t n = CRASH_D_SIZE - off < CRASH_CHUNK ? CRASH_D_SIZE - off : CRASH_CHUNK;
    if (mlxr_blob_writer_write(w, dd + off, n, err, sizeof err) != MLXR_OK) _exit(4);
  }
  if (mlxr_blob_writer_commit(w, NULL, err, sizeof err) != MLXR_OK) _exit(5);
  if (mlxr_store_put_buffer(st, ed, CRASH_E_SIZE, NULL, NULL, err, sizeof err) != MLXR_OK) _exit(6);
  mlxr_store_close(st);
  _exit(0);
}

static void test_crash_points(env *base) {
  unsigned char *dd = malloc(CRASH_D_SIZE), *ed = malloc(CRASH_E_SIZE);
  reg_fill(dd, CRASH_D_SIZE, 31);
  reg_fill(ed, CRASH_E_SIZE, 32);
  char path[4400], d_hex[65] = "", e_hex[65] = "", d_digest[80];
  snprintf(path, sizeof path, "%s/d.bin", base->tmp);
  reg_write_file(path, dd, CRASH_D_SIZE);
  CHECK(reg_sha256sum(path, d_hex), "sha256sum d");
  snprintf(path, sizeof path, "%s/e.bin", base->tmp);
  reg_write_file(path, ed, CRASH_E_SIZE);
  CHECK(reg_sha256sum(path, e_hex), "sha256sum e");
  snprintf(d_digest, sizeof d_digest, "sha256:%s", d_hex);

  static const struct {
    const char *point;
    int at;
    int64_t d_partial; /* bytes of D's partial file left (-1: D complete) */
    bool e_final;      /* E complete */
    bool e_temp;       /* E's temporary file left */
  } cases[] = {
      {"store.chunk_written", 1, CRASH_CHUNK, false, false},
      {"store.chunk_written", 2, 2 * CRASH_CHUNK, false, false},
      {"store.temp_written", 1, CRASH_D_SIZE, false, false},
      {"store.fsynced", 1, CRASH_D_SIZE, false, false},
      {"store.renamed", 1, -1, false, false},
      {"store.chunk_written", 5, -1, false, true},
      {"store.temp_written", 2, -1, false, true},
      {"store.fsynced", 2, -1, false, true},
      {"store.renamed", 2, -1, true, false},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    env e = *base;
    char sub[64];
    snprintf(sub, sizeof sub, "crash%zu", c);
    mlxr_store *st = open_store(&e, sub, NULL);
    if (!st) continue;
    mlxr_store_close(st);
    kill_plan k = {cases[c].point, cases[c].at, 0};
    pid_t pid = fork();
    if (pid == 0) crash_child(&e, &k, dd, d_digest, ed);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s#%d: child was not killed there (status %d)",
          cases[c].point, cases[c].at, status);
    char when[96];
    snprintf(when, sizeof when, "after a kill at %s#%d", cases[c].point, cases[c].at);
    check_all_final_names(&e, when);

    /* D: complete, or its partial holds exactly the bytes written so far */
    char partial[4400];
    snprintf(partial, sizeof partial, "%s/sha256-%s-partial", e.blobs, d_hex);
    struct stat sb;
    if (cases[c].d_partial < 0) {
      CHECK(blob_exists(&e, d_hex) && access(partial, F_OK) != 0, "%s: D should be complete", when);
    } else {
      CHECK(!blob_exists(&e, d_hex), "%s: D must not be under its final name", when);
      CHECK(stat(partial, &sb) == 0 && sb.st_size == cases[c].d_partial, "%s: D's partial has %lld bytes, want %lld",
            when, (long long)sb.st_size, (long long)cases[c].d_partial);
    }
    CHECK(blob_exists(&e, e_hex) == cases[c].e_final, "%s: E complete=%d, want %d", when, blob_exists(&e, e_hex),
          cases[c].e_final);
    CHECK((reg_count_entries(e.blobs, "-partial") - (cases[c].d_partial >= 0)) == (int)cases[c].e_temp,
          "%s: temporary files %d", when, reg_count_entries(e.blobs, "-partial"));

    /* Reopen; the resumable write finishes from where the child stopped. */
    st = open_store(&e, sub, NULL);
    if (!st) continue;
    char err[512] = "";
    mlxr_store_sweep_report rep;
    CHECK(mlxr_store_sweep(st, 3600, NULL, NULL, &rep, err, sizeof err) == MLXR_OK, "sweep: %s", err);
    CHECK(rep.n_removed == (int64_t)cases[c].e_temp, "%s: sweep removed %lld", when, (long long)rep.n_removed);
    if (cases[c].d_partial >= 0) {
      mlxr_blob_write_params wp = {.expected_digest = d_digest, .has_expected_size = true,
                                   .expected_size = CRASH_D_SIZE, .resume = true};
      mlxr_blob_writer *w = NULL;
      CHECK(mlxr_store_writer_begin(st, &wp, &w, err, sizeof err) == MLXR_OK, "%s: resume: %s", when, err);
      if (w) {
        const int64_t off = mlxr_blob_writer_offset(w);
        CHECK(off == cases[c].d_partial, "%s: resume offset %lld", when, (long long)off);
        mlxr_blob_writer_write(w, dd + off, (size_t)(CRASH_D_SIZE - off), err, sizeof err);
        mlxr_digest d = {{0}};
        CHECK(mlxr_blob_writer_commit(w, &d, err, sizeof err) == MLXR_OK && strcmp(d.hex, d_hex) == 0,
              "%s: resumed commit: %s", when, err);
      }
      check_file_hash(&e, d_hex);
    }
    CHECK(reg_count_entries(e.blobs, "-partial") == 0, "%s: leftovers after sweep and resume", when);
    mlxr_store_close(st);
  }
  free(dd);
  free(ed);
}

/* The child of the delay test: stores blobs forever (one-shot and resumable in turn). */
static void delay_child(env *e) {
  mlxr_store *st = NULL;
  char err[256];
  if (mlxr_store_open(e->root, NULL, &st, err, sizeof err) != MLXR_OK) _exit(2);
  unsigned char *buf = malloc(200000);
  for (uint64_t i = 0;; i++) {
    const size_t n = 1000 + (size_t)(i * 7919 % 199000);
    reg_fill(buf, n, i);
    if (i % 2 == 0) {
      mlxr_store_put_buffer(st, buf, n, NULL, NULL, err, sizeof err);
    } else {
      mlxr_blob_writer *w = NULL;
      if (mlxr_store_writer_begin(st, NULL, &w, err, sizeof err) != MLXR_OK) continue;
      for (size_t off = 0; off < n; off += 4096) {
        mlxr_blob_writer_write(w, buf + off, n - off < 4096 ? n - off : 4096, err, sizeof err);
      }
      mlxr_blob_writer_commit(w, NULL, err, sizeof err);
    }
  }
}

static void test_crash_delays(env *base) {
  static const int delays_us[] = {500, 2000, 5000, 11000, 23000, 47000};
  env e = *base;
  mlxr_store *st = open_store(&e, "delays", NULL);
  if (!st) return;
  for (size_t i = 0; i < sizeof delays_us / sizeof delays_us[0]; i++) {
    pid_t pid = fork();
    if (pid == 0) delay_child(&e);
    usleep((useconds_t)delays_us[i]);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    char when[64];
    snprintf(when, sizeof when, "after a kill at %d us", delays_us[i]);
    check_all_final_names(&e, when);
    char err[512] = "";
    mlxr_store_sweep_report rep;
    CHECK(mlxr_store_sweep(st, 0, NULL, NULL, &rep, err, sizeof err) == MLXR_OK, "sweep: %s", err);
    CHECK(reg_count_entries(e.blobs, "-partial") == 0, "%s: the sweep left temporary files", when);
  }
  int n = 0;
  reg_check_final_names(e.blobs, &n);
  CHECK(n > 0, "the children stored something (%d blobs)", n);
  mlxr_store_close(st);
}

static void test_default_root(void) {
  char buf[256], err[256];
  CHECK(mlxr_store_default_root("/data/models", "/x", "/home/u", buf, sizeof buf, err, sizeof err) == MLXR_OK &&
            strcmp(buf, "/data/models") == 0,
        "MLXR_MODELS wins: %s", buf);
  CHECK(mlxr_store_default_root("", "/x/share", "/home/u", buf, sizeof buf, err, sizeof err) == MLXR_OK &&
            strcmp(buf, "/x/share/mlxr") == 0,
        "XDG_DATA_HOME: %s", buf);
  CHECK(mlxr_store_default_root(NULL, "relative", "/home/u", buf, sizeof buf, err, sizeof err) == MLXR_OK &&
            strcmp(buf, "/home/u/.local/share/mlxr") == 0,
        "a relative XDG_DATA_HOME is ignored: %s", buf);
  CHECK(mlxr_store_default_root(NULL, NULL, NULL, buf, sizeof buf, err, sizeof err) == MLXR_ERR_INVALID, "nothing set");
  CHECK(mlxr_store_default_root(NULL, NULL, "/home/u", buf, 8, err, sizeof err) == MLXR_ERR_RANGE, "small buffer");
}

int main(void) {
  test_default_root();
  env e;
  if (!reg_mkdtemp("store", e.tmp, sizeof e.tmp)) {
    fprintf(stderr, "mkdtemp failed\n");
    return 1;
  }
  int n = 0;
  CHECK(reg_check_final_names("/nonexistent-dir", &n) == -1, "helper sanity");
  mlxr_store *st = open_store(&e, "main", NULL);
  if (st) {
    CHECK(strncmp(mlxr_store_root(st), "/", 1) == 0, "root is absolute: %s", mlxr_store_root(st));
    test_vectors(&e, st);
    test_random_vs_sha256sum(&e, st);
    test_expectations(&e, st);
    test_hostile_digests(&e, st);
    test_read_remove(&e, st);
    test_resume(&e, st);
    test_sweep(&e, st);
    mlxr_store_close(st);
  }
  test_crash_points(&e);
  test_crash_delays(&e);
  reg_rmtree(e.tmp);
  return check_report("test_registry_store");
}
