/*
 * config.c: the daemon's configuration, in layers: defaults, a server.yaml (libyaml's document
 * API: the file is loaded into a node tree and walked; unknown keys are errors, so a typo does not
 * silently fall back to a default), the MLXR_* environment (values handed in by main()), then
 * command-line flags (getopt_long). List settings (models, API keys, CORS origins) accumulate
 * across layers; scalar settings are replaced.
 *
 * server.yaml:
 *   host: 127.0.0.1            port: 11435 (0: any free port)   tcp: true (false: no TCP)
 *   socket: /path/or/empty-for-none
 *   device: auto|cpu|cuda|cuda:N
 *   models: [a.gguf, b.gguf]   models_dir: DIR       default_model: ID
 *   models_store: DIR          the registry's store and catalog (MLXR_MODELS; default under
 *                              $XDG_DATA_HOME/mlxr, server.c)
 *   api_keys: [KEY]            cors_origins: ["https://app.example"]
 *   limits: {max_body_bytes, max_prompt_tokens, max_tokens, max_queue, max_running, n_ctx,
 *            threads, max_connections, conn_timeout_s, gpu_memory_mib, stored_responses,
 *            stored_responses_mib}
 *   scheduler: {max_batch_tokens, kv_blocks, kv_cache_mib, target_latency_ms}
 *   rate_limits: {requests_per_minute, tokens_per_minute}
 *
 * Every numeric setting has one name, one section and one range (the table in set_limit), shared
 * by the YAML reader and the flags.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/common/status.h"
#include "core/kernels/backend_registry.h"
#include "daemon/server/server.h"

static int set_str(char **dst, const char *v) {
  char *c = strdup(v ? v : "");
  if (!c) return MLXR_ERR_NOMEM;
  free(*dst);
  *dst = c;
  return 0;
}

static int push_str(char **arr, int *n, int max, const char *v, const char *what, char *err,
                    size_t err_len) {
  if (*n >= max) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "too many %s (at most %d)", what, max);
  arr[*n] = strdup(v);
  if (!arr[*n]) return MLXR_ERR_NOMEM;
  (*n)++;
  return 0;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
  if (!s || !*s) return MLXR_ERR_INVALID;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return MLXR_ERR_RANGE;
  *out = v;
  return 0;
}

int mlxr_server_config_init(mlxr_server_config *cfg, const char *xdg_runtime_dir, unsigned uid) {
  memset(cfg, 0, sizeof(*cfg));
  char sock[1024];
  if (xdg_runtime_dir && xdg_runtime_dir[0])
    snprintf(sock, sizeof sock, "%s/mlxr.sock", xdg_runtime_dir);
  else
    snprintf(sock, sizeof sock, "/tmp/mlxr-%u.sock", uid);
  if (set_str(&cfg->host, "127.0.0.1") < 0 || set_str(&cfg->socket_path, sock) < 0 ||
      set_str(&cfg->device, "auto") < 0) {
    return MLXR_ERR_NOMEM;
  }
  cfg->tcp = true;
  cfg->port = MLXR_SERVER_DEFAULT_PORT;
  cfg->max_body_bytes = 16u << 20;
  cfg->max_prompt_tokens = 0;
  cfg->max_tokens = 0;
  cfg->max_queue = 64;
  cfg->max_running = 0; /* by device */
  cfg->n_ctx = 0;
  cfg->threads = 0;
  cfg->max_connections = 256;
  cfg->conn_timeout_s = 600;
  cfg->max_batch_tokens = 0; /* by device */
  cfg->kv_blocks = 0;
  cfg->kv_cache_mib = 0;
  cfg->target_latency_ms = 0;
  cfg->rate_rpm = 0;
  cfg->rate_tpm = 0;
  cfg->stored_responses = 256;
  cfg->stored_responses_mib = 64;
  return 0;
}

void mlxr_server_config_free(mlxr_server_config *cfg) {
  free(cfg->host);
  free(cfg->socket_path);
  free(cfg->models_dir);
  free(cfg->models_store);
  free(cfg->default_model);
  free(cfg->device);
  free(cfg->port_file);
  for (int i = 0; i < cfg->n_models; i++) free(cfg->models[i]);
  for (int i = 0; i < cfg->n_api_keys; i++) free(cfg->api_keys[i]);
  for (int i = 0; i < cfg->n_cors_origins; i++) free(cfg->cors_origins[i]);
  memset(cfg, 0, sizeof(*cfg));
}

/* One numeric setting by name (shared by YAML and flags); section is the YAML mapping it lives
 * in ("limits", "scheduler", "rate_limits"), NULL for a flag (any section). */
static int set_limit_in(mlxr_server_config *cfg, const char *section, const char *key, const char *val,
                        char *err, size_t err_len) {
  struct {
    const char *section, *name;
    int64_t lo, hi;
  } lim[] = {
      {"limits", "max_body_bytes", 1024, (int64_t)1 << 32}, {"limits", "max_prompt_tokens", 0, 1 << 24},
      {"limits", "max_tokens", 0, 1 << 24},                 {"limits", "max_queue", 1, 1 << 20},
      {"limits", "max_running", 0, 4096},                    {"limits", "n_ctx", 0, 1 << 24},
      {"limits", "threads", 0, 4096},                        {"limits", "max_connections", 1, 65536},
      {"limits", "conn_timeout_s", 1, 86400},
      {"scheduler", "max_batch_tokens", 0, 1 << 16},         {"scheduler", "kv_blocks", 0, 1 << 24},
      {"scheduler", "kv_cache_mib", 0, 1 << 24},             {"scheduler", "target_latency_ms", 0, 600000},
      {"rate_limits", "requests_per_minute", 0, 1 << 24},    {"rate_limits", "tokens_per_minute", 0, 1 << 30},
      {"limits", "gpu_memory_mib", 0, 1 << 24},
      {"limits", "stored_responses", 0, 1 << 20},           {"limits", "stored_responses_mib", 1, 1 << 20},
  };
  for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
    if (strcmp(key, lim[i].name) != 0 || (section && strcmp(section, lim[i].section) != 0)) continue;
    int64_t v;
    if (parse_i64(val, lim[i].lo, lim[i].hi, &v) < 0)
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "%s must be an integer in [%lld, %lld], got '%s'", key,
                       (long long)lim[i].lo, (long long)lim[i].hi, val ? val : "");
    switch (i) {
    case 0: cfg->max_body_bytes = (size_t)v; break;
    case 1: cfg->max_prompt_tokens = (int32_t)v; break;
    case 2: cfg->max_tokens = (int32_t)v; break;
    case 3: cfg->max_queue = (int32_t)v; break;
    case 4: cfg->max_running = (int32_t)v; break;
    case 5: cfg->n_ctx = (int32_t)v; break;
    case 6: cfg->threads = (int32_t)v; break;
    case 7: cfg->max_connections = (int32_t)v; break;
    case 8: cfg->conn_timeout_s = (int32_t)v; break;
    case 9: cfg->max_batch_tokens = (int32_t)v; break;
    case 10: cfg->kv_blocks = (int32_t)v; break;
    case 11: cfg->kv_cache_mib = (int32_t)v; break;
    case 12: cfg->target_latency_ms = (int32_t)v; break;
    case 13: cfg->rate_rpm = (int32_t)v; break;
    case 14: cfg->rate_tpm = (int32_t)v; break;
    case 15: cfg->gpu_memory_mib = (int32_t)v; break;
    case 16: cfg->stored_responses = (int32_t)v; break;
    default: cfg->stored_responses_mib = (int32_t)v; break;
    }
    return 0;
  }
  return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "unknown %s setting '%s'", section ? section : "limit", key);
}

static int set_limit(mlxr_server_config *cfg, const char *key, const char *val, char *err, size_t err_len) {
  return set_limit_in(cfg, NULL, key, val, err, err_len);
}

/* A device name, checked now so that a typo is an error at startup, not a CPU run. */
static int set_device(mlxr_server_config *cfg, const char *val, const char *where, char *err, size_t err_len) {
  mlxr_device_spec spec;
  char why[200];
  if (mlxr_device_parse(val, &spec, why, sizeof why) != MLXR_OK) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s: %s", where, why);
  }
  return set_str(&cfg->device, val);
}

/* ---------------- YAML ---------------- */

static const char *scalar(yaml_document_t *d, yaml_node_t *n) {
  (void)d;
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int yaml_list(yaml_document_t *d, yaml_node_t *n, char **arr, int *cnt, int max,
                     const char *key, char *err, size_t err_len) {
  if (n->type == YAML_SCALAR_NODE) return push_str(arr, cnt, max, scalar(d, n), key, err, err_len);
  if (n->type != YAML_SEQUENCE_NODE)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s must be a list of strings", key);
  for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
    const char *v = scalar(d, yaml_document_get_node(d, *it));
    if (!v) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s must be a list of strings", key);
    int rc = push_str(arr, cnt, max, v, key, err, err_len);
    if (rc < 0) return rc;
  }
  return 0;
}

static int yaml_apply(mlxr_server_config *cfg, yaml_document_t *d, char *err, size_t err_len) {
  yaml_node_t *root = yaml_document_get_root_node(d);
  if (!root) return 0; /* empty file */
  if (root->type != YAML_MAPPING_NODE)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "server.yaml: the top level must be a mapping");
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
    const char *key = scalar(d, yaml_document_get_node(d, p->key));
    yaml_node_t *vn = yaml_document_get_node(d, p->value);
    const char *val = scalar(d, vn);
    if (!key) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "server.yaml: keys must be strings");
    int rc = 0;
    if (strcmp(key, "host") == 0 && val) rc = set_str(&cfg->host, val);
    else if (strcmp(key, "socket") == 0 && val) rc = set_str(&cfg->socket_path, val);
    else if (strcmp(key, "models_dir") == 0 && val) rc = set_str(&cfg->models_dir, val);
    else if (strcmp(key, "models_store") == 0 && val) rc = set_str(&cfg->models_store, val);
    else if (strcmp(key, "default_model") == 0 && val) rc = set_str(&cfg->default_model, val);
    else if (strcmp(key, "device") == 0 && val) rc = set_device(cfg, val, "server.yaml: device", err, err_len);
    else if (strcmp(key, "port") == 0 && val) {
      int64_t v;
      if (parse_i64(val, 0, 65535, &v) < 0)
        return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "server.yaml: port must be 0..65535");
      cfg->port = (int)v;
    } else if (strcmp(key, "tcp") == 0 && val) {
      if (strcmp(val, "true") == 0) cfg->tcp = true;
      else if (strcmp(val, "false") == 0) cfg->tcp = false;
      else return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "server.yaml: tcp must be true or false");
    } else if (strcmp(key, "verbose") == 0 && val) {
      cfg->verbose = strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
    } else if (strcmp(key, "models") == 0) {
      rc = yaml_list(d, vn, cfg->models, &cfg->n_models, MLXR_SERVER_MAX_MODELS, key, err, err_len);
    } else if (strcmp(key, "api_keys") == 0) {
      rc = yaml_list(d, vn, cfg->api_keys, &cfg->n_api_keys, MLXR_SERVER_MAX_KEYS, key, err, err_len);
    } else if (strcmp(key, "cors_origins") == 0) {
      rc = yaml_list(d, vn, cfg->cors_origins, &cfg->n_cors_origins, MLXR_SERVER_MAX_ORIGINS, key, err, err_len);
    } else if ((strcmp(key, "limits") == 0 || strcmp(key, "scheduler") == 0 || strcmp(key, "rate_limits") == 0) &&
               vn->type == YAML_MAPPING_NODE) {
      for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top; q++) {
        const char *k2 = scalar(d, yaml_document_get_node(d, q->key));
        const char *v2 = scalar(d, yaml_document_get_node(d, q->value));
        if (!k2 || !v2) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "server.yaml: %s must map names to numbers", key);
        rc = set_limit_in(cfg, key, k2, v2, err, err_len);
        if (rc < 0) return rc;
      }
    } else {
      return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "server.yaml: unknown or malformed key '%s'", key);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

/* Load one document from an initialized parser (its input set) and apply it; name is for errors. */
static int load_yaml(mlxr_server_config *cfg, yaml_parser_t *parser, const char *name, char *err,
                     size_t err_len) {
  yaml_document_t doc;
  int rc;
  if (!yaml_parser_load(parser, &doc)) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "%s:%zu: %s", name, parser->problem_mark.line + 1,
                   parser->problem ? parser->problem : "YAML error");
  } else {
    rc = yaml_apply(cfg, &doc, err, err_len);
    yaml_document_delete(&doc);
  }
  return rc;
}

int mlxr_server_config_load_yaml(mlxr_server_config *cfg, const char *path, char *err,
                                 size_t err_len) {
  FILE *f = fopen(path, "rb");
  if (!f) return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot open config '%s'", path);
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    fclose(f);
    return MLXR_ERR_NOMEM;
  }
  yaml_parser_set_input_file(&parser, f);
  int rc = load_yaml(cfg, &parser, path, err, err_len);
  yaml_parser_delete(&parser);
  fclose(f);
  return rc;
}

int mlxr_server_config_load_yaml_text(mlxr_server_config *cfg, const char *text, size_t len,
                                      const char *name, char *err, size_t err_len) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return MLXR_ERR_NOMEM;
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int rc = load_yaml(cfg, &parser, name, err, err_len);
  yaml_parser_delete(&parser);
  return rc;
}

/* ---------------- environment ---------------- */

static int push_csv(char **arr, int *n, int max, const char *csv, const char *what, char *err,
                    size_t err_len) {
  char *copy = strdup(csv);
  if (!copy) return MLXR_ERR_NOMEM;
  int rc = 0;
  char *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ') t++;
    size_t l = strlen(t);
    while (l > 0 && t[l - 1] == ' ') t[--l] = '\0';
    if (*t) rc = push_str(arr, n, max, t, what, err, err_len);
  }
  free(copy);
  return rc;
}

int mlxr_server_config_apply_env(mlxr_server_config *cfg, const mlxr_server_env *env, char *err,
                                 size_t err_len) {
  int rc = 0;
  if (env->host && env->host[0]) {
    /* OLLAMA_HOST-style "host:port" is accepted too */
    const char *colon = strrchr(env->host, ':');
    if (colon && env->host[0] != '[' && !strchr(colon + 1, ']') && strchr(env->host, ':') == colon) {
      char h[256];
      snprintf(h, sizeof h, "%.*s", (int)(colon - env->host), env->host);
      int64_t v;
      if (parse_i64(colon + 1, 0, 65535, &v) < 0)
        return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "MLXR_HOST: bad port in '%s'", env->host);
      cfg->port = (int)v;
      rc = set_str(&cfg->host, h);
    } else {
      rc = set_str(&cfg->host, env->host);
    }
    if (rc < 0) return rc;
  }
  if (env->port && env->port[0]) {
    int64_t v;
    if (parse_i64(env->port, 0, 65535, &v) < 0)
      return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "MLXR_PORT must be 0..65535");
    cfg->port = (int)v;
  }
  if (env->socket && (rc = set_str(&cfg->socket_path, env->socket)) < 0) return rc;
  if (env->device && env->device[0] && (rc = set_device(cfg, env->device, "MLXR_DEVICE", err, err_len)) < 0) return rc;
  if (env->models && env->models[0] && (rc = set_str(&cfg->models_store, env->models)) < 0) return rc;
  if (env->api_key && env->api_key[0] &&
      (rc = push_csv(cfg->api_keys, &cfg->n_api_keys, MLXR_SERVER_MAX_KEYS, env->api_key, "API keys", err, err_len)) < 0)
    return rc;
  if (env->origins && env->origins[0] &&
      (rc = push_csv(cfg->cors_origins, &cfg->n_cors_origins, MLXR_SERVER_MAX_ORIGINS, env->origins, "origins", err, err_len)) < 0)
    return rc;
  return 0;
}

/* ---------------- flags ---------------- */

const char *mlxr_server_usage(void) {
  return "usage: mlxrd [--host H] [--port P | --no-tcp] [--socket PATH] [--config FILE] [--api-key KEY]\n"
         "             --model PATH [--model PATH ...]\n"
         "options:\n"
         "  --host H              listen address (default 127.0.0.1; others need an API key)\n"
         "  --port P              TCP port (default 11435; 0: any free port; the port bound is\n"
         "                        printed on stdout: \"mlxrd: listening on HOST:PORT\")\n"
         "  --port-file FILE      once listening, write the TCP port to FILE (atomically)\n"
         "  --no-tcp              no TCP listener (the Unix socket only)\n"
         "  --socket PATH         Unix socket, mode 0600 (default $XDG_RUNTIME_DIR/mlxr.sock or\n"
         "                        /tmp/mlxr-$UID.sock); --no-socket for none\n"
         "  --config FILE         server.yaml (default: none; MLXR_CONFIG)\n"
         "  --api-key KEY         require this key (repeatable; MLXR_API_KEY, comma-separated)\n"
         "  --model PATH          serve a GGUF file as its file name without .gguf (repeatable)\n"
         "  --models-dir DIR      serve every *.gguf in DIR\n"
         "  --models-store DIR    the model registry: blobs and catalog, served by name (MLXR_MODELS;\n"
         "                        default $XDG_DATA_HOME/mlxr or ~/.local/share/mlxr)\n"
         "  --default-model ID    model for routes that name none\n"
         "  --cors-origin PAT     allow a browser Origin ('*' wildcards; MLXR_ORIGINS)\n"
         "  --ctx N               context per sequence (default: the model's, at most 4096)\n"
         "  --device D            auto (default: a GPU if there is one, else the CPU), cpu, cuda,\n"
         "                        cuda:N (MLXR_DEVICE)\n"
         "  --gpu-memory-mib N    GPU memory one model may take (weights, KV cache, scratch; a\n"
         "                        model that does not fit runs on the CPU; default: all)\n"
         "  --threads N           CPU compute threads (default: all CPUs)\n"
         "  --max-running N       sequences decoding at once per model (default 64 on a GPU, 4 on\n"
         "                        the CPU)\n"
         "  --max-queue N         waiting requests per model before 503 (default 64)\n"
         "  --max-body BYTES      largest request body (default 16 MiB)\n"
         "  --max-tokens N        cap on generated tokens per request (default: the context)\n"
         "  --max-prompt-tokens N cap on prompt tokens (default: the context)\n"
         "  --max-batch-tokens N  token budget of one scheduler step (default 2048 on a GPU, 512 on\n"
         "                        the CPU)\n"
         "  --kv-blocks N         KV cache blocks of 16 tokens per model (default: max-running full\n"
         "                        contexts, at most 90% of a GPU's free memory once the model is\n"
         "                        loaded, half the available RAM on the CPU)\n"
         "  --kv-cache-mib N      KV cache size in MiB per model (used when --kv-blocks is 0)\n"
         "  --target-latency-ms N cap prompt chunks so a step with decoding streams stays under N ms\n"
         "                        (default 0: off)\n"
         "  --rate-limit-rpm N    generation requests per minute per API key (default 0: off)\n"
         "  --rate-limit-tpm N    tokens (prompt + max_tokens) per minute per API key (default 0: off)\n"
         "  --verbose             log each request to stderr\n";
}

int mlxr_server_config_apply_args(mlxr_server_config *cfg, int argc, char **argv, bool *help,
                                  char *err, size_t err_len) {
  enum { O_HOST = 1000, O_PORT, O_PORTFILE, O_NOTCP, O_SOCKET, O_NOSOCK, O_CONFIG, O_KEY, O_MODEL, O_DIR, O_STORE, O_DEFAULT,
         O_ORIGIN, O_CTX, O_THREADS, O_RUNNING, O_QUEUE, O_BODY, O_MAXTOK, O_MAXPROMPT, O_VERBOSE,
         O_HELP, O_BATCH, O_KVBLOCKS, O_KVMIB, O_LATENCY, O_RPM, O_TPM, O_DEVICE, O_GPUMIB };
  static const struct option opts[] = {
      {"host", required_argument, 0, O_HOST},        {"port", required_argument, 0, O_PORT},
      {"port-file", required_argument, 0, O_PORTFILE}, {"no-tcp", no_argument, 0, O_NOTCP},
      {"socket", required_argument, 0, O_SOCKET},    {"no-socket", no_argument, 0, O_NOSOCK},
      {"config", required_argument, 0, O_CONFIG},    {"api-key", required_argument, 0, O_KEY},
      {"model", required_argument, 0, O_MODEL},      {"models-dir", required_argument, 0, O_DIR},
      {"default-model", required_argument, 0, O_DEFAULT},
      {"models-store", required_argument, 0, O_STORE},
      {"cors-origin", required_argument, 0, O_ORIGIN}, {"ctx", required_argument, 0, O_CTX},
      {"threads", required_argument, 0, O_THREADS},  {"max-running", required_argument, 0, O_RUNNING},
      {"max-queue", required_argument, 0, O_QUEUE},  {"max-body", required_argument, 0, O_BODY},
      {"max-tokens", required_argument, 0, O_MAXTOK},
      {"max-prompt-tokens", required_argument, 0, O_MAXPROMPT},
      {"verbose", no_argument, 0, O_VERBOSE},        {"help", no_argument, 0, O_HELP},
      {"max-batch-tokens", required_argument, 0, O_BATCH}, {"kv-blocks", required_argument, 0, O_KVBLOCKS},
      {"kv-cache-mib", required_argument, 0, O_KVMIB}, {"target-latency-ms", required_argument, 0, O_LATENCY},
      {"rate-limit-rpm", required_argument, 0, O_RPM}, {"rate-limit-tpm", required_argument, 0, O_TPM},
      {"device", required_argument, 0, O_DEVICE},    {"gpu-memory-mib", required_argument, 0, O_GPUMIB},
      {0, 0, 0, 0},
  };
  *help = false;
  optind = 1;
  opterr = 0;
  int c, rc = 0;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case O_HOST: rc = set_str(&cfg->host, optarg); break;
    case O_PORT: {
      int64_t v;
      if (parse_i64(optarg, 0, 65535, &v) < 0)
        return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "--port must be 0..65535");
      cfg->port = (int)v;
      cfg->tcp = true;
      break;
    }
    case O_PORTFILE: rc = set_str(&cfg->port_file, optarg); break;
    case O_NOTCP: cfg->tcp = false; break;
    case O_SOCKET: rc = set_str(&cfg->socket_path, optarg); break;
    case O_NOSOCK: rc = set_str(&cfg->socket_path, ""); break;
    case O_CONFIG: break; /* read before the environment layer */
    case O_KEY: rc = push_str(cfg->api_keys, &cfg->n_api_keys, MLXR_SERVER_MAX_KEYS, optarg, "API keys", err, err_len); break;
    case O_MODEL: rc = push_str(cfg->models, &cfg->n_models, MLXR_SERVER_MAX_MODELS, optarg, "models", err, err_len); break;
    case O_DIR: rc = set_str(&cfg->models_dir, optarg); break;
    case O_STORE: rc = set_str(&cfg->models_store, optarg); break;
    case O_DEFAULT: rc = set_str(&cfg->default_model, optarg); break;
    case O_ORIGIN: rc = push_str(cfg->cors_origins, &cfg->n_cors_origins, MLXR_SERVER_MAX_ORIGINS, optarg, "origins", err, err_len); break;
    case O_CTX: rc = set_limit(cfg, "n_ctx", optarg, err, err_len); break;
    case O_THREADS: rc = set_limit(cfg, "threads", optarg, err, err_len); break;
    case O_RUNNING: rc = set_limit(cfg, "max_running", optarg, err, err_len); break;
    case O_QUEUE: rc = set_limit(cfg, "max_queue", optarg, err, err_len); break;
    case O_BODY: rc = set_limit(cfg, "max_body_bytes", optarg, err, err_len); break;
    case O_MAXTOK: rc = set_limit(cfg, "max_tokens", optarg, err, err_len); break;
    case O_MAXPROMPT: rc = set_limit(cfg, "max_prompt_tokens", optarg, err, err_len); break;
    case O_BATCH: rc = set_limit(cfg, "max_batch_tokens", optarg, err, err_len); break;
    case O_KVBLOCKS: rc = set_limit(cfg, "kv_blocks", optarg, err, err_len); break;
    case O_KVMIB: rc = set_limit(cfg, "kv_cache_mib", optarg, err, err_len); break;
    case O_LATENCY: rc = set_limit(cfg, "target_latency_ms", optarg, err, err_len); break;
    case O_RPM: rc = set_limit(cfg, "requests_per_minute", optarg, err, err_len); break;
    case O_TPM: rc = set_limit(cfg, "tokens_per_minute", optarg, err, err_len); break;
    case O_DEVICE: rc = set_device(cfg, optarg, "--device", err, err_len); break;
    case O_GPUMIB: rc = set_limit(cfg, "gpu_memory_mib", optarg, err, err_len); break;
    case O_VERBOSE: cfg->verbose = true; break;
    case O_HELP: case 'h': *help = true; return 0;
    default:
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "unknown or incomplete option '%s'",
                       argv[optind - 1 > 0 ? optind - 1 : 0]);
    }
    if (rc < 0) return rc;
  }
  if (optind < argc)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "unexpected argument '%s' (models go after --model)", argv[optind]);
  return 0;
}
