/*
 * cli_util.h: small helpers shared by the `mlxr` subcommands: parsing numbers and id lists from
 * arguments (strtol-based, with range checks), resolving a MODEL argument (a .gguf file, or a Hugging
 * Face directory converted on the fly into a temporary GGUF), and reading stdin whole.
 */
#ifndef MLXR_CLI_UTIL_H
#define MLXR_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool mlxr_cli_parse_int(const char *s, long long min, long long max, long long *out);
bool mlxr_cli_parse_float(const char *s, double *out);
/* "1,2,3" (also spaces) -> malloc'd array; false on a malformed list. */
bool mlxr_cli_parse_ids(const char *s, int32_t **ids, size_t *n);

/* A model argument resolved to a GGUF path. If arg is a directory, it is converted (f16) to a
 * temporary file that mlxr_cli_model_release deletes. */
typedef struct mlxr_cli_model {
  char path[4096];
  bool is_temp;
} mlxr_cli_model;

int mlxr_cli_model_resolve(const char *arg, mlxr_cli_model *out, char *err, size_t err_len);
void mlxr_cli_model_release(mlxr_cli_model *m);

/* Whole stdin (binary-exact); malloc'd, NUL-terminated; NULL on failure. */
char *mlxr_cli_read_stdin(size_t *len);

/* After mlxr_engine_open: if backends were passed over on the way to the one in use (no GPU, no
 * driver, too little GPU memory), say so on stderr as "CMD: cuda:0: ...; running on the CPU". */
struct mlxr_engine;
void mlxr_cli_device_note(const char *cmd, const struct mlxr_engine *e);

/* Monotonic clock in seconds. */
double mlxr_cli_now(void);

#endif
