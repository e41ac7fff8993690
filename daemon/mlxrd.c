/*
 * mlxrd.c: the daemon's main(). Reads the MLXR_* environment (main is the only place that does)
 * and hands everything to mlxr_server_main (daemon/server/server.h), which layers defaults,
 * configs, environment and flags, loads the models and serves until SIGINT/SIGTERM.
 */
#include <stdlib.h>

#include "daemon/server/server.h"

int main(int argc, char **argv) {
  mlxr_server_env env = {
      .host = getenv("MLXR_HOST"),
      .port = getenv("MLXR_PORT"),
      .socket = getenv("MLXR_SOCKET"),
      .config = getenv("MLXR_CONFIG"),
      .api_key = getenv("MLXR_API_KEY"),
      .models = getenv("MLXR_MODELS"),
      .origins = getenv("MLXR_ORIGINS"),
      .xdg_runtime_dir = getenv("XDG_RUNTIME_DIR"),
  };
  return mlxr_server_main(argc, argv, &env);
}
