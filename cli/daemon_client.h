/*
 * daemon_client.h: `mlxr run` as a client of a running mlxrd, over its Unix socket, through the
 * Ollama routes (/api/generate for a completion, /api/chat for the interactive chat) with NDJSON
 * streaming, via libcurl. Used when a daemon answers on the socket and serves the model; otherwise
 * `mlxr run` runs the model in process.
 */
#ifndef MLXR_CLI_DAEMON_CLIENT_H
#define MLXR_CLI_DAEMON_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/chat_repl.h"
#include "core/runtime/sampler.h"

typedef struct mlxr_daemon_client {
  char socket_path[1024];
  char model[256];          /* the daemon's model id */
  mlxr_sampler_params sp;
  bool seed_set;
  int32_t n_predict;        /* < 0: the daemon's default */
} mlxr_daemon_client;

/* True if something accepts connections on the socket. */
bool mlxr_daemon_reachable(const char *socket_path);
/* The model id a daemon serves a model file under: its file name without .gguf. */
void mlxr_daemon_model_id(const char *model_arg, char *out, size_t cap);

/* Stream a raw completion of prompt to stdout, timings to stderr. Returns 0, 1 on an error the
 * daemon reported (printed), or 2 if the daemon does not serve the model (nothing printed: the
 * caller falls back to running in process). */
int mlxr_daemon_generate(const mlxr_daemon_client *c, const char *prompt);
/* A chat backend that sends each turn to /api/chat. */
mlxr_chat_backend mlxr_daemon_chat_backend(mlxr_daemon_client *c);
/* 0 if the daemon serves c->model (GET /api/tags), 2 if not, 1 on a connection error. */
int mlxr_daemon_has_model(const mlxr_daemon_client *c);

#endif
