/*
 * hf_config.c: parse config.json (transformers v4 and v5 forms) into mlxr_hf_config.
 *
 * The JSON is parsed with cJSON; each field is read by a small typed getter that distinguishes
 * "absent" (or JSON null, which transformers writes for unset optional fields such as head_dim)
 * from "present but wrong" (a string where a number belongs, a fraction where an integer belongs),
 * so every error names the offending key. See hf_config.h for the defaults.
 */
#include "tools/hf_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/common/status.h"

/* Largest accepted model dimension: keeps every product of two dimensions far below 2^63. */
#define HF_MAX_DIM ((int64_t)1 << 26)

int mlxr_hf_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len, char *err,
                      size_t err_len) {
  *out = NULL;
  if (out_len) *out_len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT) return mlxr_errf(err, err_len, MLXR_ERR_NOT_FOUND, "%s: not found", path);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > max_bytes) {
    fclose(f);
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "%s: too large (%lld bytes, limit %zu)", path,
                     (long long)st.st_size, max_bytes);
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  if (!buf) {
    fclose(f);
    return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory reading %s", path);
  }
  size_t got = n ? fread(buf, 1, n, f) : 0;
  fclose(f);
  if (got != n) {
    free(buf);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "%s: short read", path);
  }
  buf[n] = '\0';
  *out = buf;
  if (out_len) *out_len = n;
  return MLXR_OK;
}

/* ---- typed getters: 0 absent/null, 1 present and valid, negative status on a bad value ---- */

static int get_num(const cJSON *obj, const char *key, double *out, char *err, size_t err_len) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: \"%s\" must be a number", key);
  *out = v->valuedouble;
  return 1;
}

static int get_int(const cJSON *obj, const char *key, int64_t *out, char *err, size_t err_len) {
  double d = 0;
  int rc = get_num(obj, key, &d, err, err_len);
  if (rc <= 0) return rc;
  if (d != floor(d) || d < 0 || d > (double)HF_MAX_DIM * 64)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: \"%s\" must be a non-negative integer (got %g)", key, d);
  *out = (int64_t)d;
  return 1;
}

static int get_bool(const cJSON *obj, const char *key, bool *out, char *err, size_t err_len) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsBool(v))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: \"%s\" must be true or false",
                     key);
  *out = cJSON_IsTrue(v);
  return 1;
}

static int get_str(const cJSON *obj, const char *key, char *out, size_t cap, char *err,
                   size_t err_len) {
  const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsString(v))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: \"%s\" must be a string", key);
  if (strlen(v->valuestring) >= cap)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: \"%s\" is too long", key);
  snprintf(out, cap, "%s", v->valuestring);
  return 1;
}

/* A required positive dimension. */
static int need_dim(const cJSON *root, const char *key, int64_t *out, char *err, size_t err_len) {
  int rc = get_int(root, key, out, err, err_len);
  if (rc < 0) return rc;
  if (rc == 0)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: missing required key \"%s\"",
                     key);
  if (*out <= 0 || *out > HF_MAX_DIM)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: \"%s\" = %lld is out of range",
                     key, (long long)*out);
  return MLXR_OK;
}

/* Rope scaling / parameters object: v4 rope_scaling or v5 rope_parameters. */
static int parse_rope(const cJSON *rp, mlxr_hf_config *cfg, char *err, size_t err_len) {
  int rc;
  if (!rp || cJSON_IsNull(rp)) return MLXR_OK;
  if (!cJSON_IsObject(rp))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: rope_scaling/rope_parameters must be an object");
  const cJSON *full = cJSON_GetObjectItemCaseSensitive(rp, "full_attention");
  if (full && cJSON_IsObject(full)) rp = full;

  double theta = 0;
  if ((rc = get_num(rp, "rope_theta", &theta, err, err_len)) < 0) return rc;
  if (rc == 1) cfg->rope_theta = theta;

  if ((rc = get_str(rp, "rope_type", cfg->rope_type, sizeof cfg->rope_type, err, err_len)) < 0)
    return rc;
  if (rc == 0 && (rc = get_str(rp, "type", cfg->rope_type, sizeof cfg->rope_type, err, err_len)) < 0)
    return rc;

  if ((rc = get_num(rp, "factor", &cfg->rope_factor, err, err_len)) < 0) return rc;
  if ((rc = get_num(rp, "low_freq_factor", &cfg->low_freq_factor, err, err_len)) < 0) return rc;
  if ((rc = get_num(rp, "high_freq_factor", &cfg->high_freq_factor, err, err_len)) < 0) return rc;
  int64_t orig = 0;
  if ((rc = get_int(rp, "original_max_position_embeddings", &orig, err, err_len)) < 0) return rc;
  if (rc == 1) cfg->rope_orig_ctx = orig;
  if ((rc = get_num(rp, "extrapolation_factor", &cfg->yarn_ext_factor, err, err_len)) < 0) return rc;
  cfg->has_yarn_ext_factor = rc == 1;
  if ((rc = get_num(rp, "attention_factor", &cfg->yarn_attn_factor, err, err_len)) < 0) return rc;
  if (rc == 0 && (rc = get_num(rp, "attn_factor", &cfg->yarn_attn_factor, err, err_len)) < 0)
    return rc;
  cfg->has_yarn_attn_factor = rc == 1;
  if ((rc = get_num(rp, "beta_fast", &cfg->yarn_beta_fast, err, err_len)) < 0) return rc;
  cfg->has_yarn_beta_fast = rc == 1;
  if ((rc = get_num(rp, "beta_slow", &cfg->yarn_beta_slow, err, err_len)) < 0) return rc;
  cfg->has_yarn_beta_slow = rc == 1;
  return MLXR_OK;
}

static int classify_rope(mlxr_hf_config *cfg, char *err, size_t err_len) {
  const char *t = cfg->rope_type;
  if (t[0] == '\0' || strcmp(t, "default") == 0) {
    cfg->rope_scaling = MLXR_ROPE_SCALING_NONE;
    return MLXR_OK;
  }
  if (strcmp(t, "linear") == 0) {
    cfg->rope_scaling = MLXR_ROPE_SCALING_LINEAR;
  } else if (strcmp(t, "yarn") == 0) {
    cfg->rope_scaling = MLXR_ROPE_SCALING_YARN;
  } else if (strcasecmp(t, "llama3") == 0) {
    cfg->rope_scaling = MLXR_ROPE_SCALING_LLAMA3;
  } else {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED,
                     "config.json: rope scaling type \"%s\" is not supported (supported: default, "
                     "linear, yarn, llama3)",
                     t);
  }
  if (!(cfg->rope_factor > 0))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: rope scaling \"%s\" needs a positive \"factor\"", t);
  if (cfg->rope_scaling == MLXR_ROPE_SCALING_YARN && cfg->rope_orig_ctx <= 0)
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: yarn rope scaling needs \"original_max_position_embeddings\"");
  if (cfg->rope_scaling == MLXR_ROPE_SCALING_LLAMA3 &&
      !(cfg->high_freq_factor > cfg->low_freq_factor && cfg->low_freq_factor > 0))
    return mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: llama3 rope scaling needs 0 < low_freq_factor < "
                     "high_freq_factor (got %g, %g)",
                     cfg->low_freq_factor, cfg->high_freq_factor);
  return MLXR_OK;
}

int mlxr_hf_config_parse(const char *json, size_t len, bool need_model, mlxr_hf_config *cfg,
                         char *err, size_t err_len) {
  memset(cfg, 0, sizeof *cfg);
  cfg->rms_norm_eps = 1e-6;
  cfg->rope_theta = 10000.0;
  cfg->low_freq_factor = 1.0;
  cfg->high_freq_factor = 4.0;

  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) return mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: not valid JSON");
  int rc = MLXR_OK;
  if (!cJSON_IsObject(root)) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: top level is not an object");
    goto done;
  }

  const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
  if (archs && !cJSON_IsNull(archs)) {
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!a0 || !cJSON_IsString(a0) || strlen(a0->valuestring) >= sizeof cfg->hf_arch) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: \"architectures\" must be a non-empty list of names");
      goto done;
    }
    snprintf(cfg->hf_arch, sizeof cfg->hf_arch, "%s", a0->valuestring);
  }
  if ((rc = get_str(root, "model_type", cfg->model_type, sizeof cfg->model_type, err, err_len)) < 0)
    goto done;
  if ((rc = get_str(root, "torch_dtype", cfg->dtype, sizeof cfg->dtype, err, err_len)) < 0) goto done;
  if (rc == 0 && (rc = get_str(root, "dtype", cfg->dtype, sizeof cfg->dtype, err, err_len)) < 0)
    goto done;
  rc = MLXR_OK;

  if (need_model) {
    if ((rc = need_dim(root, "hidden_size", &cfg->hidden_size, err, err_len)) < 0) goto done;
    if ((rc = need_dim(root, "intermediate_size", &cfg->intermediate_size, err, err_len)) < 0)
      goto done;
    if ((rc = need_dim(root, "num_hidden_layers", &cfg->n_layer, err, err_len)) < 0) goto done;
    if ((rc = need_dim(root, "num_attention_heads", &cfg->n_head, err, err_len)) < 0) goto done;
    if ((rc = need_dim(root, "vocab_size", &cfg->vocab_size, err, err_len)) < 0) goto done;
    if (cfg->n_layer > 100000) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT, "config.json: num_hidden_layers too large");
      goto done;
    }
  } else {
    if ((rc = get_int(root, "vocab_size", &cfg->vocab_size, err, err_len)) < 0) goto done;
  }

  if ((rc = get_int(root, "num_key_value_heads", &cfg->n_head_kv, err, err_len)) < 0) goto done;
  if (rc == 0) cfg->n_head_kv = cfg->n_head;
  if ((rc = get_int(root, "head_dim", &cfg->head_dim, err, err_len)) < 0) goto done;
  cfg->head_dim_explicit = rc == 1;
  if ((rc = get_int(root, "max_position_embeddings", &cfg->max_position_embeddings, err,
                    err_len)) < 0)
    goto done;
  if ((rc = get_num(root, "rms_norm_eps", &cfg->rms_norm_eps, err, err_len)) < 0) goto done;
  if ((rc = get_num(root, "rope_theta", &cfg->rope_theta, err, err_len)) < 0) goto done;
  if ((rc = get_bool(root, "tie_word_embeddings", &cfg->tie_word_embeddings, err, err_len)) < 0)
    goto done;
  cfg->tie_explicit = rc == 1;
  if ((rc = get_bool(root, "attention_bias", &cfg->attention_bias, err, err_len)) < 0) goto done;
  if ((rc = get_bool(root, "mlp_bias", &cfg->mlp_bias, err, err_len)) < 0) goto done;
  /* A top-level original_max_position_embeddings (some configs) is the fallback for llama3. */
  if ((rc = get_int(root, "original_max_position_embeddings", &cfg->rope_orig_ctx, err,
                    err_len)) < 0)
    goto done;

  /* v5 rope_parameters wins over v4 rope_scaling when both exist (v5 writes only the former). */
  const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
  if (!rp || cJSON_IsNull(rp)) rp = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
  if ((rc = parse_rope(rp, cfg, err, err_len)) < 0) goto done;
  if ((rc = classify_rope(cfg, err, err_len)) < 0) goto done;
  rc = MLXR_OK;

  if (need_model) {
    if (cfg->n_head_kv <= 0 || cfg->n_head_kv > cfg->n_head || cfg->n_head % cfg->n_head_kv != 0) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: num_key_value_heads = %lld must divide num_attention_heads = "
                     "%lld",
                     (long long)cfg->n_head_kv, (long long)cfg->n_head);
      goto done;
    }
    if (!cfg->head_dim_explicit) {
      if (cfg->hidden_size % cfg->n_head != 0) {
        rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                       "config.json: hidden_size %lld is not a multiple of num_attention_heads "
                       "%lld and head_dim is not given",
                       (long long)cfg->hidden_size, (long long)cfg->n_head);
        goto done;
      }
      cfg->head_dim = cfg->hidden_size / cfg->n_head;
    }
    if (cfg->head_dim <= 0 || cfg->head_dim % 2 != 0 || cfg->head_dim > 65536 ||
        cfg->head_dim * cfg->n_head > HF_MAX_DIM) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: head_dim = %lld must be a positive even number",
                     (long long)cfg->head_dim);
      goto done;
    }
    if (!(cfg->rms_norm_eps > 0) || !(cfg->rope_theta > 0)) {
      rc = mlxr_errf(err, err_len, MLXR_ERR_FORMAT,
                     "config.json: rms_norm_eps and rope_theta must be positive");
      goto done;
    }
  }

done:
  cJSON_Delete(root);
  return rc;
}

int mlxr_hf_config_load(const char *dir, bool need_model, mlxr_hf_config *cfg, char *err,
                        size_t err_len) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "path too long: %s", dir);
  char *buf = NULL;
  size_t len = 0;
  int rc = mlxr_hf_read_file(path, (size_t)16 << 20, &buf, &len, err, err_len);
  if (rc < 0) return rc;
  rc = mlxr_hf_config_parse(buf, len, need_model, cfg, err, err_len);
  free(buf);
  return rc;
}
