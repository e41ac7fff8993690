/*
 * mlxrd.c: the daemon's main(). Reads the MLXR_* environment (main is the only place that does)
 * and hands everything to mlxr_server_main (daemon/server/server.h), which layers defaults,
 * configs, environment and flags, loads the models and serves until SIGINT/SIGTERM.
 */
#include <stdlib.h>

#include "daemon/server/server.h"

int main(int argc, char **argv) {
  mlxr_server_env env = mlxr_server_env_read();
  return mlxr_server_main(argc, argv, &env);
}
