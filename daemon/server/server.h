/*
 * server.h: mlxrd, the HTTP daemon that serves loaded models through the OpenAI and Ollama APIs
 * (plus llama.cpp's extras and Prometheus /metrics), on loopback TCP and a Unix domain socket at
 * once.
 *
 * Configuration comes in layers, later ones winning: built-in defaults, configs/server.yaml (or
 * --config FILE, read with libyaml), MLXR_* environment variables (read by the program's main() and
 * handed in as mlxr_server_env), then command-line flags. mlxr_server_main() does all of it: both
 * `mlxrd` (daemon/mlxrd.c) and `mlxr serve` (cli/cmd_serve.c) are a call to it.
 *
 * Defaults: 127.0.0.1 port 11435 (Ollama has 11434, llama.cpp 8080), socket
 * $XDG_RUNTIME_DIR/mlxr.sock or /tmp/mlxr-$UID.sock with mode 0600, model registry (store and
 * catalog, daemon/registry) under $XDG_DATA_HOME/mlxr or ~/.local/share/mlxr (MLXR_MODELS, as
 * OLLAMA_MODELS; server.yaml models_store; --models-store).
 */
#ifndef MLXR_DAEMON_SERVER_H
#define MLXR_DAEMON_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define MLXR_SERVER_DEFAULT_PORT 11435
#define MLXR_SERVER_MAX_MODELS 64
#define MLXR_SERVER_MAX_KEYS 32
#define MLXR_SERVER_MAX_ORIGINS 64
#define MLXR_SERVER_VERSION "0.1.0"

typedef struct mlxr_server_config {
  char *host;                 /* listen address (IPv4 or IPv6 literal, or "localhost") */
  bool tcp;                   /* listen on TCP at all (false: --no-tcp, server.yaml tcp: false) */
  int port;                   /* TCP port; 0: any free port, chosen by the kernel at bind time */
  char *port_file;            /* after the TCP listener is up, its port is written here ("PORT\n",
                                 atomically: a temporary file renamed); NULL: none */
  char *socket_path;          /* "" : no Unix socket */
  char *models[MLXR_SERVER_MAX_MODELS]; /* GGUF paths; each served as its file name less .gguf */
  int n_models;
  char *models_dir;           /* every *.gguf in it is served too (NULL: none) */
  char *models_store;         /* the registry's root: blobs/ and catalog.db (NULL or "": the
                                 default, mlxr_store_default_root of the environment) */
  char *default_model;        /* id used when a request names none (extras routes) */
  char *api_keys[MLXR_SERVER_MAX_KEYS];
  int n_api_keys;
  char *cors_origins[MLXR_SERVER_MAX_ORIGINS]; /* added to Ollama's default allow-list; "*" = any */
  int n_cors_origins;
  /* limits */
  size_t max_body_bytes;      /* request bodies larger than this: 413 */
  int32_t max_prompt_tokens;  /* 0: the context length */
  int32_t max_tokens;         /* cap on generated tokens of one request (0: the context) */
  int32_t max_queue;          /* waiting requests per model before 503 */
  int32_t max_running;        /* sequences decoding at once per model (0: by device: 64 on a GPU,
                                 4 on the CPU) */
  int32_t n_ctx;              /* context per sequence (0: model's, capped at 4096) */
  int32_t threads;            /* compute threads (0: all CPUs) */
  int32_t max_connections;    /* concurrent HTTP connections per listener */
  int32_t conn_timeout_s;     /* idle connection timeout */
  /* scheduler (per model) */
  int32_t max_batch_tokens;   /* token budget of one scheduler step (0: 2048 on a GPU, 512 on the CPU) */
  int32_t kv_blocks;          /* KV pool blocks (0: from kv_cache_mib, else max_running contexts) */
  int32_t kv_cache_mib;       /* KV pool size in MiB (0: see kv_blocks) */
  int32_t target_latency_ms;  /* cap prefill per step while streams decode (0: off) */
  /* rate limits per API key (0: off); keyless requests share one bucket */
  int32_t rate_rpm;           /* generation requests per minute */
  int32_t rate_tpm;           /* tokens per minute (prompt + max_tokens, charged at admission) */
  char *device;               /* "auto", "cpu", "cuda", "cuda:N" (backend_registry.h) */
  int32_t gpu_memory_mib;     /* > 0: GPU memory one model may take (weights, KV, scratch) */
  int32_t stored_responses;   /* /v1/responses kept for previous_response_id (0: none stored) */
  int32_t stored_responses_mib; /* ... and the most memory they may take, in MiB */
  bool verbose;
} mlxr_server_config;

/* Environment variables as read by a main(): each may be NULL. */
typedef struct mlxr_server_env {
  const char *host, *port, *socket, *config, *api_key, *models, *origins, *device, *xdg_runtime_dir;
  const char *xdg_data_home, *home; /* for the registry's default root */
} mlxr_server_env;

/* The MLXR_* environment of this process, for a program's entry point only (mlxrd's main, `mlxr
 * serve`): library code takes the struct and never reads the environment itself. */
static inline mlxr_server_env mlxr_server_env_read(void) {
  mlxr_server_env env = {
      .host = getenv("MLXR_HOST"),
      .port = getenv("MLXR_PORT"),
      .socket = getenv("MLXR_SOCKET"),
      .config = getenv("MLXR_CONFIG"),
      .api_key = getenv("MLXR_API_KEY"),
      .models = getenv("MLXR_MODELS"),
      .device = getenv("MLXR_DEVICE"),
      .origins = getenv("MLXR_ORIGINS"),
      .xdg_runtime_dir = getenv("XDG_RUNTIME_DIR"),
      .xdg_data_home = getenv("XDG_DATA_HOME"),
      .home = getenv("HOME"),
  };
  return env;
}

/* Once TCP is listening mlxrd prints one line on stdout, "mlxrd: listening on HOST:PORT" (an IPv6
 * HOST in brackets), with the port actually bound, so a program that starts it with --port 0 learns
 * its port without racing for one; --port-file FILE says the same in a file. */

/* Defaults (allocations owned by cfg; mlxr_server_config_free releases them). uid picks the socket
 * path when xdg_runtime_dir is NULL. */
int mlxr_server_config_init(mlxr_server_config *cfg, const char *xdg_runtime_dir, unsigned uid);
void mlxr_server_config_free(mlxr_server_config *cfg);
/* Read a server.yaml into cfg (keys it sets replace the current values). */
int mlxr_server_config_load_yaml(mlxr_server_config *cfg, const char *path, char *err,
                                 size_t err_len);
/* The same from len bytes of YAML text in memory (name stands for the file in messages). */
int mlxr_server_config_load_yaml_text(mlxr_server_config *cfg, const char *text, size_t len,
                                      const char *name, char *err, size_t err_len);
/* Apply the environment layer. */
int mlxr_server_config_apply_env(mlxr_server_config *cfg, const mlxr_server_env *env, char *err,
                                 size_t err_len);
/* Apply command-line flags (argv[0] is the program name); *help is set for --help. */
int mlxr_server_config_apply_args(mlxr_server_config *cfg, int argc, char **argv, bool *help,
                                  char *err, size_t err_len);
/* The usage text of the flags. */
const char *mlxr_server_usage(void);

/* The whole program: layers the configuration, loads the models, serves until SIGINT/SIGTERM.
 * Returns the exit status (0 ok, 1 runtime error, 2 usage). */
int mlxr_server_main(int argc, char **argv, const mlxr_server_env *env);

#endif
