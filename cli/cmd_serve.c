/*
 * cmd_serve.c: `mlxr serve [OPTIONS] --model PATH ...`: runs the daemon in the foreground, with
 * exactly mlxrd's options (daemon/server/server.h). The serve command is the program's entry for
 * this mode, so it reads the MLXR_* environment here, like mlxrd's main().
 */
#include <stdlib.h>

#include "cli/commands.h"
#include "daemon/server/server.h"

int mlxr_cmd_serve(int argc, char **argv) {
  mlxr_server_env env = mlxr_server_env_read();
  return mlxr_server_main(argc, argv, &env);
}
