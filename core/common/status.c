/* status.c: names of mlxr_status codes and the error-message helper. */
#include "core/common/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *mlxr_status_str(int status) {
  switch (status) {
  case MLXR_OK: return "ok";
  case MLXR_ERR_INVALID: return "invalid argument";
  case MLXR_ERR_NOMEM: return "out of memory";
  case MLXR_ERR_IO: return "I/O error";
  case MLXR_ERR_FORMAT: return "malformed file";
  case MLXR_ERR_UNSUPPORTED: return "unsupported";
  case MLXR_ERR_NOT_FOUND: return "not found";
  case MLXR_ERR_NO_SPACE: return "no space left";
  case MLXR_ERR_RANGE: return "out of range";
  case MLXR_ERR_DEVICE: return "device failure";
  default: return "unknown error";
  }
}

int mlxr_errf(char *err, size_t err_len, int status, const char *fmt, ...) {
  if (err && err_len > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
  }
  return status;
}
