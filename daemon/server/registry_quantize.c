/*
 * registry_quantize.c: /api/create's `quantize`: a catalog model's GGUF requantized into a new blob
 * with the existing quantizer (tools/quantize.h, `mlxr quantize`'s code).
 *
 * How: the quantizer writes "<store root>/quantize-<pid>-<random>.gguf" (through its own OUT.tmp
 * and rename), the result goes into the store as a one-shot write (hashed, fsync'ed, renamed) and
 * the temporary file is removed. A crash leaves that file behind: mlxr_registry_sweep_quantize
 * removes those of processes that are gone (the pid in the name), so a second mlxrd on the same
 * store never loses a file it is still writing.
 *
 * Threads: any connection thread; the store is thread-safe and nothing here touches the catalog.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common/status.h"
#include "daemon/server/server_impl.h"
#include "tools/quantize.h"

int mlxr_registry_quantize(mlxr_registry *g, const char *digest, const char *type,
                           char out_digest[MLXR_DIGEST_STR_SIZE], char *err, size_t err_len) {
  mlxr_quant_scheme scheme;
  if (!mlxr_quantize_parse_type(type, &scheme))
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "unknown quantization type '%.40s' (use one of: %s)", type,
                     mlxr_quantize_type_names());
  char in[4096], out[4400], rnd[17];
  int rc = mlxr_store_blob_path(g->store, digest, in, sizeof in, err, err_len);
  if (rc < 0) return rc;
  mlxr_random_id(rnd, 16);
  if ((size_t)snprintf(out, sizeof out, "%s/quantize-%ld-%s.gguf", mlxr_store_root(g->store), (long)getpid(), rnd) >=
      sizeof out)
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "store path too long");
  mlxr_quantize_params qp = {.in_path = in, .out_path = out, .scheme = scheme, .n_threads = 0};
  mlxr_quantize_stats stats;
  char e2[512] = "";
  if ((rc = mlxr_quantize_gguf(&qp, &stats, e2, sizeof e2)) < 0) {
    unlink(out);
    return mlxr_errf(err, err_len, rc == MLXR_ERR_NOMEM || rc == MLXR_ERR_IO || rc == MLXR_ERR_NO_SPACE ? rc : MLXR_ERR_INVALID,
                     "cannot quantize to %s: %s", scheme.name, e2);
  }
  int fd = open(out, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    unlink(out);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot read the quantized model: %s", strerror(errno));
  }
  mlxr_digest d;
  rc = mlxr_store_put_fd(g->store, fd, NULL, &d, err, err_len);
  close(fd);
  unlink(out);
  if (rc < 0) return rc;
  mlxr_digest_str(&d, out_digest);
  return 0;
}

void mlxr_registry_sweep_quantize(const char *root) {
  DIR *dir = opendir(root);
  if (!dir) return;
  struct dirent *de;
  while ((de = readdir(dir))) {
    long pid = 0;
    if (strncmp(de->d_name, "quantize-", 9) != 0 || !strstr(de->d_name, ".gguf")) continue;
    if (sscanf(de->d_name + 9, "%ld-", &pid) != 1 || pid <= 0) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its writer may still be at it */
    if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
      fprintf(stderr, "mlxrd: store: removed %s left by an interrupted quantization\n", de->d_name);
  }
  closedir(dir);
}
