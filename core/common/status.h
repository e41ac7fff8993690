/*
 * status.h: the one error type of MLXR.
 *
 * Every fallible function returns int: 0 (MLXR_OK) on success, a negative mlxr_status on failure.
 * Functions that can explain a failure in words also take (char *err, size_t err_len) and write a
 * NUL-terminated message there; mlxr_errf() is the helper for that. Library code never exits or
 * aborts on bad input.
 */
#ifndef MLXR_COMMON_STATUS_H
#define MLXR_COMMON_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>

typedef enum mlxr_status {
  MLXR_OK = 0,
  MLXR_ERR_INVALID = -1,     /* bad argument or malformed input */
  MLXR_ERR_NOMEM = -2,       /* allocation failed */
  MLXR_ERR_IO = -3,          /* open/read/write/mmap failed */
  MLXR_ERR_FORMAT = -4,      /* file is not the format it claims, or is corrupt */
  MLXR_ERR_UNSUPPORTED = -5, /* valid, but not something we implement */
  MLXR_ERR_NOT_FOUND = -6,   /* a key, tensor or token is missing */
  MLXR_ERR_NO_SPACE = -7,    /* a pool (KV blocks, buffer) is exhausted */
  MLXR_ERR_RANGE = -8,       /* value out of the allowed range */
  MLXR_ERR_DEVICE = -9,      /* a device (GPU) or its driver failed while running work */
} mlxr_status;

/* Short constant name of a status ("invalid argument", ...). Never NULL. */
const char *mlxr_status_str(int status);

/* Format a message into err (if err && err_len) and return status, so callers can write
 * `return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "bad magic in %s", path);`. */
int mlxr_errf(char *err, size_t err_len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif

#endif
