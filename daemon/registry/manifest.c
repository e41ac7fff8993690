/*
 * manifest.c: reading and writing the registry's manifest and config JSON (the rules, the media
 * types and the decision on unknown ones are in manifest.h).
 *
 * How it works: the length is checked before cJSON sees the text; cJSON parses it (nesting is
 * bounded by cJSON's own limit); then each field this code uses is fetched with get_unique(),
 * which refuses a key that appears twice, and checked by type and range before it is copied into
 * the fixed-size fields of the result. Sizes arrive as JSON numbers (doubles): they must be finite,
 * integral and inside the limit, which is far below 2^53, so the conversion to int64_t is exact.
 */
#include "daemon/registry/manifest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/common/status.h"

static const char *const kind_media[MLXR_LAYER_KIND_COUNT] = {
    [MLXR_LAYER_CONFIG] = MLXR_MEDIA_CONFIG_DOCKER,
    [MLXR_LAYER_MODEL] = MLXR_MEDIA_OLLAMA_PREFIX "model",
    [MLXR_LAYER_PROJECTOR] = MLXR_MEDIA_OLLAMA_PREFIX "projector",
    [MLXR_LAYER_ADAPTER] = MLXR_MEDIA_OLLAMA_PREFIX "adapter",
    [MLXR_LAYER_TEMPLATE] = MLXR_MEDIA_OLLAMA_PREFIX "template",
    [MLXR_LAYER_SYSTEM] = MLXR_MEDIA_OLLAMA_PREFIX "system",
    [MLXR_LAYER_PARAMS] = MLXR_MEDIA_OLLAMA_PREFIX "params",
    [MLXR_LAYER_MESSAGES] = MLXR_MEDIA_OLLAMA_PREFIX "messages",
    [MLXR_LAYER_LICENSE] = MLXR_MEDIA_OLLAMA_PREFIX "license",
};

const char *mlxr_layer_media_type(mlxr_layer_kind k) {
  return (unsigned)k < MLXR_LAYER_KIND_COUNT ? kind_media[k] : NULL;
}

int mlxr_layer_kind_parse(const char *media_type, mlxr_layer_kind *out) {
  if (media_type && strcmp(media_type, MLXR_MEDIA_CONFIG_OCI) == 0) {
    *out = MLXR_LAYER_CONFIG;
    return MLXR_OK;
  }
  for (int k = 0; k < MLXR_LAYER_KIND_COUNT; k++) {
    if (media_type && strcmp(media_type, kind_media[k]) == 0) {
      *out = (mlxr_layer_kind)k;
      return MLXR_OK;
    }
  }
  return MLXR_ERR_UNSUPPORTED;
}

bool mlxr_layer_kind_is_text(mlxr_layer_kind k) {
  return k == MLXR_LAYER_CONFIG || k == MLXR_LAYER_TEMPLATE || k == MLXR_LAYER_SYSTEM || k == MLXR_LAYER_PARAMS ||
         k == MLXR_LAYER_MESSAGES || k == MLXR_LAYER_LICENSE;
}

mlxr_manifest_limits mlxr_manifest_default_limits(void) {
  return (mlxr_manifest_limits){.max_manifest_bytes = 1 << 20,
                                .max_layers = 64,
                                .max_blob_bytes = (int64_t)1 << 40,
                                .max_text_bytes = 1 << 20,
                                .max_params_bytes = 1 << 16};
}

void mlxr_manifest_free(mlxr_manifest *m) {
  if (!m) return;
  free(m->layers);
  memset(m, 0, sizeof *m);
}

/* ---- field access ---- */

/* The member `key` of obj, or NULL when absent; MLXR_ERR_INVALID when it appears more than once. */
static int get_unique(const cJSON *obj, const char *key, const char *where, cJSON **out, char *err, size_t err_len) {
  *out = NULL;
  for (cJSON *c = obj->child; c; c = c->next) {
    if (!c->string || strcmp(c->string, key) != 0) continue;
    if (*out) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s: key \"%s\" appears more than once", where, key);
    *out = c;
  }
  return MLXR_OK;
}

/* A required string member, copied into buf (cap bytes with the NUL). */
static int get_string(const cJSON *obj, const char *key, const char *where, char *buf, size_t cap, char *err,
                      size_t err_len) {
  cJSON *it;
  int rc = get_unique(obj, key, where, &it, err, err_len);
  if (rc < 0) return rc;
  if (!it) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s: \"%s\" is missing", where, key);
  if (!cJSON_IsString(it) || !it->valuestring) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s: \"%s\" must be a string", where, key);
  }
  const size_t n = strlen(it->valuestring);
  if (n == 0 || n >= cap) {
    char q[256];
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s: \"%s\" \"%s\" must have 1 to %zu bytes", where, key,
                     mlxr_registry_quote(it->valuestring, q, sizeof q), cap - 1);
  }
  memcpy(buf, it->valuestring, n + 1);
  return MLXR_OK;
}

/* A required integer member in [0, max]. */
static int get_size(const cJSON *obj, const char *key, const char *where, int64_t max, int64_t *out, char *err,
                    size_t err_len) {
  cJSON *it;
  int rc = get_unique(obj, key, where, &it, err, err_len);
  if (rc < 0) return rc;
  if (!it) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s: \"%s\" is missing", where, key);
  if (!cJSON_IsNumber(it)) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s: \"%s\" must be a number", where, key);
  const double v = it->valuedouble;
  if (!isfinite(v) || v != floor(v)) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "%s: \"%s\" must be a whole number of bytes", where, key);
  }
  if (v < 0) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "%s: %s %.0f is negative", where, key, v);
  if (v > (double)max) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "%s: %s %.0f is over the limit of %lld bytes", where, key, v,
                     (long long)max);
  }
  *out = (int64_t)v;
  return MLXR_OK;
}

/* One descriptor {mediaType, digest, size}. where names it in messages ("config", "layer 2"). */
static int read_blob(const cJSON *it, const char *where, bool is_config, const mlxr_manifest_limits *lim,
                     mlxr_manifest_blob *b, char *err, size_t err_len) {
  char q[256];
  if (!cJSON_IsObject(it)) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: %s must be an object", where);
  int rc = get_string(it, "mediaType", where, b->media_type, sizeof b->media_type, err, err_len);
  if (rc < 0) return rc;
  if (mlxr_layer_kind_parse(b->media_type, &b->kind) < 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "manifest: %s has media type \"%s\", which MLXR does not support",
                     where, mlxr_registry_quote(b->media_type, q, sizeof q));
  }
  if (is_config != (b->kind == MLXR_LAYER_CONFIG)) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: %s has media type \"%s\", %s", where,
                     mlxr_registry_quote(b->media_type, q, sizeof q),
                     is_config ? "not an image config's" : "which only the config may have");
  }
  char digest[160];
  if ((rc = get_string(it, "digest", where, digest, sizeof digest, err, err_len)) < 0) return rc;
  mlxr_digest d;
  char derr[256];
  if (strncmp(digest, "sha256:", 7) != 0 || mlxr_digest_parse(digest, &d, derr, sizeof derr) < 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: %s has an invalid digest \"%s\" (want sha256:<64 hex>)",
                     where, mlxr_registry_quote(digest, q, sizeof q));
  }
  mlxr_digest_str(&d, b->digest);
  int64_t max = lim->max_blob_bytes;
  if (b->kind == MLXR_LAYER_PARAMS) max = lim->max_params_bytes;
  else if (mlxr_layer_kind_is_text(b->kind)) max = lim->max_text_bytes;
  return get_size(it, "size", where, max, &b->size, err, err_len);
}

/* Cross-layer rules: single-valued kinds once, a model layer present, one size per digest. */
static int check_layers(const mlxr_manifest *m, char *err, size_t err_len) {
  int count[MLXR_LAYER_KIND_COUNT] = {0};
  for (int i = 0; i < m->n_layers; i++) {
    const mlxr_layer_kind k = m->layers[i].kind;
    count[k]++;
    if (count[k] > 1 && (k == MLXR_LAYER_TEMPLATE || k == MLXR_LAYER_SYSTEM || k == MLXR_LAYER_PARAMS ||
                         k == MLXR_LAYER_MESSAGES)) {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: layer %d is a second %s layer (at most one allowed)",
                       i, mlxr_layer_media_type(k));
    }
    for (int j = -1; j < i; j++) {
      const mlxr_manifest_blob *o = j < 0 ? &m->config : &m->layers[j];
      if (strcmp(o->digest, m->layers[i].digest) == 0 && o->size != m->layers[i].size) {
        return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: digest %s is listed with two sizes, %lld and %lld",
                         o->digest, (long long)o->size, (long long)m->layers[i].size);
      }
    }
  }
  if (count[MLXR_LAYER_MODEL] == 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: no layer of type %s (the weights)",
                     mlxr_layer_media_type(MLXR_LAYER_MODEL));
  }
  return MLXR_OK;
}

static int parse_root(const cJSON *root, const mlxr_manifest_limits *lim, mlxr_manifest *out, char *err,
                      size_t err_len) {
  char q[256];
  if (!cJSON_IsObject(root)) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: not a JSON object");
  cJSON *it;
  int rc = get_unique(root, "schemaVersion", "manifest", &it, err, err_len);
  if (rc < 0) return rc;
  if (!it || !cJSON_IsNumber(it) || it->valuedouble != 2) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: schemaVersion must be 2");
  }
  if ((rc = get_unique(root, "mediaType", "manifest", &it, err, err_len)) < 0) return rc;
  if (it && (!cJSON_IsString(it) || (strcmp(it->valuestring, MLXR_MEDIA_MANIFEST_DOCKER) != 0 &&
                                     strcmp(it->valuestring, MLXR_MEDIA_MANIFEST_OCI) != 0))) {
    return mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "manifest: media type \"%s\" is not an image manifest",
                     cJSON_IsString(it) ? mlxr_registry_quote(it->valuestring, q, sizeof q) : "(not a string)");
  }
  if ((rc = get_unique(root, "config", "manifest", &it, err, err_len)) < 0) return rc;
  if (!it) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: \"config\" is missing");
  if ((rc = read_blob(it, "config", true, lim, &out->config, err, err_len)) < 0) return rc;
  if ((rc = get_unique(root, "layers", "manifest", &it, err, err_len)) < 0) return rc;
  if (!it || !cJSON_IsArray(it)) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: \"layers\" must be an array");
  const int n = cJSON_GetArraySize(it);
  if (n < 1 || n > lim->max_layers) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "manifest: %d layers (1 to %d allowed)", n, lim->max_layers);
  }
  out->layers = calloc((size_t)n, sizeof *out->layers);
  if (!out->layers) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  int i = 0;
  for (const cJSON *l = it->child; l; l = l->next, i++) {
    char where[32];
    snprintf(where, sizeof where, "layer %d", i);
    if ((rc = read_blob(l, where, false, lim, &out->layers[i], err, err_len)) < 0) return rc;
    out->n_layers = i + 1;
  }
  return check_layers(out, err, err_len);
}

int mlxr_manifest_parse(const char *json, size_t len, const mlxr_manifest_limits *limits, mlxr_manifest *out,
                        char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  const mlxr_manifest_limits lim = limits ? *limits : mlxr_manifest_default_limits();
  if ((int64_t)len > lim.max_manifest_bytes) {
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "manifest: %zu bytes, over the limit of %lld", len,
                     (long long)lim.max_manifest_bytes);
  }
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "manifest: not valid JSON");
  int rc = parse_root(root, &lim, out, err, err_len);
  cJSON_Delete(root);
  if (rc < 0) mlxr_manifest_free(out);
  return rc;
}

/* ---- writing ---- */

static cJSON *blob_json(const mlxr_manifest_blob *b) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  if (!cJSON_AddStringToObject(o, "mediaType", b->media_type) || !cJSON_AddStringToObject(o, "digest", b->digest) ||
      !cJSON_AddNumberToObject(o, "size", (double)b->size)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

char *mlxr_manifest_format(const mlxr_manifest *m) {
  cJSON *root = cJSON_CreateObject();
  cJSON *layers = NULL, *cfg = NULL;
  char *text = NULL;
  if (!root || !cJSON_AddNumberToObject(root, "schemaVersion", 2) ||
      !cJSON_AddStringToObject(root, "mediaType", MLXR_MEDIA_MANIFEST_DOCKER)) {
    goto out;
  }
  if (!(cfg = blob_json(&m->config))) goto out;
  cJSON_AddItemToObject(root, "config", cfg);
  if (!(layers = cJSON_AddArrayToObject(root, "layers"))) goto out;
  for (int i = 0; i < m->n_layers; i++) {
    cJSON *l = blob_json(&m->layers[i]);
    if (!l) goto out;
    cJSON_AddItemToArray(layers, l);
  }
  text = cJSON_PrintUnformatted(root);
out:
  cJSON_Delete(root);
  return text;
}

/* ---- the config blob ---- */

/* An optional printable string member copied into buf (MLXR_IMAGE_CONFIG_FIELD_MAX + 1 bytes). */
static int config_field(const cJSON *root, const char *key, char *buf, char *err, size_t err_len) {
  cJSON *it;
  int rc = get_unique(root, key, "config", &it, err, err_len);
  if (rc < 0 || !it) return rc;
  if (!cJSON_IsString(it)) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "config: \"%s\" must be a string", key);
  char q[256];
  const char *s = it->valuestring;
  const size_t n = strlen(s);
  if (n > MLXR_IMAGE_CONFIG_FIELD_MAX) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "config: \"%s\" \"%s\" is longer than %d bytes", key,
                     mlxr_registry_quote(s, q, sizeof q), MLXR_IMAGE_CONFIG_FIELD_MAX);
  }
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "config: \"%s\" \"%s\" has a byte outside printable ASCII",
                       key, mlxr_registry_quote(s, q, sizeof q));
    }
  }
  memcpy(buf, s, n + 1);
  return MLXR_OK;
}

int mlxr_image_config_parse(const char *json, size_t len, mlxr_image_config *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "config: not valid JSON");
  int rc = MLXR_OK;
  if (!cJSON_IsObject(root)) rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID, "config: not a JSON object");
  if (rc == MLXR_OK) rc = config_field(root, "model_format", out->model_format, err, err_len);
  if (rc == MLXR_OK) rc = config_field(root, "model_family", out->model_family, err, err_len);
  if (rc == MLXR_OK) rc = config_field(root, "model_type", out->model_type, err, err_len);
  if (rc == MLXR_OK) rc = config_field(root, "file_type", out->file_type, err, err_len);
  cJSON_Delete(root);
  if (rc < 0) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  const int64_t p = mlxr_parameter_size_parse(out->model_type);
  out->parameter_count = p > 0 ? p : 0;
  return MLXR_OK;
}

int64_t mlxr_parameter_size_parse(const char *s) {
  if (!s || !*s) return -1;
  /* digits [. digits] suffix, parsed by hand (no locale, no strtod surprises like "inf") */
  int64_t whole = 0, frac = 0, frac_div = 1;
  const char *p = s;
  if (*p < '0' || *p > '9') return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (whole > 1000000) return -1;
    whole = whole * 10 + (*p - '0');
  }
  if (*p == '.') {
    p++;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
      if (frac_div >= 1000000) continue; /* further digits are below any unit we scale by */
      frac = frac * 10 + (*p - '0');
      frac_div *= 10;
    }
  }
  int64_t unit;
  switch (*p) {
  case 'K': case 'k': unit = 1000; break;
  case 'M': case 'm': unit = 1000000; break;
  case 'B': case 'b': case 'G': case 'g': unit = 1000000000; break;
  case 'T': case 't': unit = 1000000000000; break;
  default: return -1;
  }
  if (p[1] != '\0') return -1;
  return whole * unit + frac * unit / frac_div;
}

void mlxr_parameter_size_format(int64_t n, char *buf, size_t buf_len) {
  if (buf_len == 0) return;
  if (n <= 0) buf[0] = '\0';
  else if (n >= 1000000000) snprintf(buf, buf_len, "%.1fB", (double)n / 1e9);
  else if (n >= 1000000) snprintf(buf, buf_len, "%.0fM", (double)n / 1e6);
  else if (n >= 1000) snprintf(buf, buf_len, "%.0fK", (double)n / 1e3);
  else snprintf(buf, buf_len, "%lld", (long long)n);
}
