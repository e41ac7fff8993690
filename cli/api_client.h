/*
 * api_client.h: one HTTP request to a running mlxrd for the model-management commands (`mlxr list`,
 * `ps`, `show`, `cp`, `rm`, `create`), over its Unix socket ($MLXR_SOCKET, else
 * $XDG_RUNTIME_DIR/mlxr.sock, else /tmp/mlxr-<uid>.sock, as `mlxr run` and mlxrd choose it) or, when
 * MLXR_HOST is set (http://host:port), over TCP, as Ollama's CLI uses OLLAMA_HOST. libcurl.
 */
#ifndef MLXR_CLI_API_CLIENT_H
#define MLXR_CLI_API_CLIENT_H

#include <stdio.h>

typedef struct mlxr_api {
  char socket_path[1024]; /* "" when base_url is used */
  char base_url[512];     /* "http://localhost" over the socket */
} mlxr_api;

/* Where mlxrd is, from the environment (read by the caller, passed in: any may be NULL). */
void mlxr_api_locate(mlxr_api *api, const char *env_socket, const char *env_xdg_runtime, const char *env_host);

/* method + path with an optional JSON body (or the file upload_fd's bytes, upload_size of them,
 * when upload is non-NULL). On a completed exchange returns 0 with *status and the response body
 * in *body (malloc'ed, NUL-terminated); on a connection failure returns 1 with err filled
 * ("cannot reach mlxrd at ...: is it running? (mlxr serve)"). */
int mlxr_api_call(const mlxr_api *api, const char *method, const char *path, const char *json, FILE *upload,
                  long long upload_size, long *status, char **body, char *err, size_t err_len);

/* The "error" string of an error response body (Ollama's {"error": "..."} or OpenAI's
 * {"error": {"message": "..."}}), or the body itself; into out. */
void mlxr_api_error_text(const char *body, char *out, size_t cap);

#endif
