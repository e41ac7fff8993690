/* cli_util.c: see cli_util.h. */
#include "cli/cli_util.h"

#include "core/runtime/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/common/status.h"
#include "tools/convert.h"

bool mlxr_cli_parse_int(const char *s, long long min, long long max, long long *out) {
  if (!s || !*s) return false;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

bool mlxr_cli_parse_float(const char *s, double *out) {
  if (!s || !*s) return false;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end != '\0') return false;
  *out = v;
  return true;
}

bool mlxr_cli_parse_ids(const char *s, int32_t **ids, size_t *n) {
  size_t cap = 16, cnt = 0;
  int32_t *v = malloc(cap * sizeof(int32_t));
  if (!v) return false;
  const char *p = s;
  while (*p) {
    while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n') p++;
    if (!*p) break;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (end == p || errno || x < 0 || x > INT32_MAX) {
      free(v);
      return false;
    }
    if (cnt == cap) {
      cap *= 2;
      int32_t *nv = realloc(v, cap * sizeof(int32_t));
      if (!nv) {
        free(v);
        return false;
      }
      v = nv;
    }
    v[cnt++] = (int32_t)x;
    p = end;
    if (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != '\n') {
      free(v);
      return false;
    }
  }
  *ids = v;
  *n = cnt;
  return true;
}

int mlxr_cli_model_resolve(const char *arg, mlxr_cli_model *out, char *err, size_t err_len) {
  memset(out, 0, sizeof(*out));
  struct stat st;
  if (stat(arg, &st) != 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "model '%s': %s", arg, strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(out->path, sizeof(out->path), "%s", arg);
    return MLXR_OK;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(out->path, sizeof(out->path), "%s/mlxr-convert-%ld.gguf", tmp && *tmp ? tmp : "/tmp",
           (long)getpid());
  mlxr_convert_params cp = mlxr_convert_default_params();
  cp.hf_dir = arg;
  cp.out_path = out->path;
  cp.out_type = MLXR_DTYPE_F16;
  int rc = mlxr_convert_hf(&cp, NULL, err, err_len);
  if (rc != MLXR_OK) return rc;
  out->is_temp = true;
  return MLXR_OK;
}

void mlxr_cli_model_release(mlxr_cli_model *m) {
  if (m->is_temp) unlink(m->path);
  m->is_temp = false;
}

char *mlxr_cli_read_stdin(size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  for (;;) {
    if (n + 1 >= cap) {
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, stdin);
    n += got;
    if (got == 0) break;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

double mlxr_cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void mlxr_cli_device_note(const char *cmd, const mlxr_engine *e) {
  const char *note = mlxr_engine_device_note(e);
  if (note && note[0]) fprintf(stderr, "%s: %s\n", cmd, note);
}
