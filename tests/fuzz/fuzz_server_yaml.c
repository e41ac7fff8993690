/*
 * fuzz_server_yaml.c: libFuzzer harness for mlxrd's configuration file, server.yaml
 * (daemon/server/config.c: libyaml's document loader, then every key mapped onto the config).
 *
 * Input: YAML text, loaded with mlxr_server_config_load_yaml_text over the built-in defaults.
 * Properties: it loads, and then every setting is within its documented range and the lists
 * within their caps; or it fails with a negative status and a message. Built and run by
 * scripts/fuzz.sh (seeds: tests/fuzz/corpus/fuzz_server_yaml/).
 */
#include <stdint.h>
#include <stdlib.h>

#include "daemon/server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mlxr_server_config cfg;
  if (mlxr_server_config_init(&cfg, "/run/user/1000", 1000) != 0) return 0;
  char err[512] = "";
  int rc = mlxr_server_config_load_yaml_text(&cfg, (const char *)data, size, "server.yaml", err, sizeof err);
  if (rc == 0) {
    if (cfg.port < 0 || cfg.port > 65535 || !cfg.host || !cfg.socket_path || !cfg.device) abort();
    if (cfg.n_models < 0 || cfg.n_models > MLXR_SERVER_MAX_MODELS || cfg.n_api_keys < 0 ||
        cfg.n_api_keys > MLXR_SERVER_MAX_KEYS || cfg.n_cors_origins < 0 || cfg.n_cors_origins > MLXR_SERVER_MAX_ORIGINS)
      abort();
    if (cfg.max_body_bytes < 1024 || cfg.max_queue < 1 || cfg.max_connections < 1 || cfg.conn_timeout_s < 1 ||
        cfg.stored_responses_mib < 1)
      abort();
  } else if (rc > 0 || err[0] == '\0') {
    abort();
  }
  mlxr_server_config_free(&cfg);
  return 0;
}
