/*
 * names.c: parsing and validation of model names and digests (the rules are in names.h).
 *
 * How it works: the input's length is bounded first (strnlen, so a hostile megabyte string costs
 * nothing), then the tag is cut at the last ':' if it comes after the last '/', the rest is split
 * at '/' into one to three parts, and each part is checked against its kind's first-character,
 * character-set and length rules before it is copied into the fixed-size fields of
 * mlxr_model_name. No allocation; every error names the part and quotes the input.
 */
#include "daemon/registry/names.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/common/status.h"

typedef enum part_kind { PART_HOST, PART_NAMESPACE, PART_MODEL, PART_TAG } part_kind;

static const char *part_kind_name(part_kind k) {
  switch (k) {
  case PART_HOST: return "host";
  case PART_NAMESPACE: return "namespace";
  case PART_MODEL: return "model";
  default: return "tag";
  }
}

static size_t part_max(part_kind k) { return k == PART_HOST ? MLXR_NAME_HOST_MAX : MLXR_NAME_PART_MAX; }

static bool is_alnum_us(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

const char *mlxr_registry_quote(const char *s, char *buf, size_t buf_len) {
  if (!buf || buf_len == 0) return "";
  if (!s) {
    snprintf(buf, buf_len, "(null)");
    return buf;
  }
  size_t o = 0;
  const size_t shown = 60;
  size_t i = 0;
  for (; s[i] && i < shown; i++) {
    const unsigned char c = (unsigned char)s[i];
    char tmp[5];
    if (c == '"' || c == '\\') snprintf(tmp, sizeof tmp, "\\%c", c);
    else if (c < 0x20 || c > 0x7e) snprintf(tmp, sizeof tmp, "\\x%02x", c);
    else snprintf(tmp, sizeof tmp, "%c", c);
    const size_t n = strlen(tmp);
    if (o + n + 4 >= buf_len) break; /* keep room for "..." and the NUL */
    memcpy(buf + o, tmp, n);
    o += n;
  }
  if (s[i] && o + 3 < buf_len) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
  return buf;
}

/* Checks one part [p, p + n) of kind k of the whole name `whole`; copies it into dst. */
static int check_part(part_kind k, const char *p, size_t n, const char *whole, char *dst, char *err,
                      size_t err_len) {
  char q[256];
  if (n == 0) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "invalid model name \"%s\": the %s part is empty",
                     mlxr_registry_quote(whole, q, sizeof q), part_kind_name(k));
  }
  if (n > part_max(k)) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "invalid model name \"%s\": the %s part has %zu bytes, at most %zu are allowed",
                     mlxr_registry_quote(whole, q, sizeof q), part_kind_name(k), n, part_max(k));
  }
  if (!is_alnum_us(p[0])) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "invalid model name \"%s\": the %s part must start with a letter, a digit or '_'",
                     mlxr_registry_quote(whole, q, sizeof q), part_kind_name(k));
  }
  for (size_t i = 1; i < n; i++) {
    const char c = p[i];
    bool ok = is_alnum_us(c) || c == '-' || (c == '.' && k != PART_NAMESPACE) || (c == ':' && k == PART_HOST);
    if (!ok) {
      char cq[16];
      char one[2] = {c, '\0'};
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                       "invalid model name \"%s\": the %s part may not contain '%s' (allowed: letters, digits, "
                       "'_', '-'%s%s)",
                       mlxr_registry_quote(whole, q, sizeof q), part_kind_name(k),
                       mlxr_registry_quote(one, cq, sizeof cq), k != PART_NAMESPACE ? ", '.'" : "",
                       k == PART_HOST ? ", ':'" : "");
    }
    if (c == '.' && p[i - 1] == '.') {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "invalid model name \"%s\": the %s part may not contain \"..\"",
                       mlxr_registry_quote(whole, q, sizeof q), part_kind_name(k));
    }
  }
  memcpy(dst, p, n);
  dst[n] = '\0';
  return MLXR_OK;
}

/* Copies a default part after checking it as the user's own would be. */
static int default_part(part_kind k, const char *given, const char *fallback, char *dst, char *err, size_t err_len) {
  const char *v = given ? given : fallback;
  const size_t n = strnlen(v, part_max(k) + 1);
  return check_part(k, v, n, v, dst, err, err_len);
}

int mlxr_name_parse(const char *s, const mlxr_name_defaults *defaults, mlxr_model_name *out, char *err,
                    size_t err_len) {
  memset(out, 0, sizeof *out);
  char q[256];
  if (!s || !*s) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "invalid model name: empty");
  const size_t limit = 8 + MLXR_NAME_MAX; /* "https://" + the longest canonical name */
  size_t len = strnlen(s, limit + 1);
  if (len > limit) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "invalid model name \"%s\": longer than %zu bytes",
                     mlxr_registry_quote(s, q, sizeof q), (size_t)MLXR_NAME_MAX);
  }
  const char *p = s;
  bool had_scheme = false;
  if (strncmp(p, "http://", 7) == 0) p += 7, had_scheme = true;
  else if (strncmp(p, "https://", 8) == 0) p += 8, had_scheme = true;
  size_t n = strlen(p);

  /* The tag: after the last ':' when it follows the last '/'. */
  const char *last_colon = memrchr(p, ':', n);
  const char *last_slash = memrchr(p, '/', n);
  const char *tag = NULL;
  size_t tag_len = 0;
  if (last_colon && (!last_slash || last_colon > last_slash)) {
    tag = last_colon + 1;
    tag_len = (size_t)(p + n - tag);
    n = (size_t)(last_colon - p);
  }

  /* Up to three '/'-separated parts: [host/][namespace/]model. */
  const char *starts[4];
  size_t lens[4];
  int n_parts = 0;
  const char *cur = p;
  for (;;) {
    const char *slash = memchr(cur, '/', (size_t)(p + n - cur));
    if (n_parts == 3) {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                       "invalid model name \"%s\": too many '/' parts (the form is [host/][namespace/]model[:tag])",
                       mlxr_registry_quote(s, q, sizeof q));
    }
    starts[n_parts] = cur;
    lens[n_parts] = slash ? (size_t)(slash - cur) : (size_t)(p + n - cur);
    n_parts++;
    if (!slash) break;
    cur = slash + 1;
  }
  if (had_scheme && n_parts != 3) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "invalid model name \"%s\": a URL scheme needs the host/namespace/model form",
                     mlxr_registry_quote(s, q, sizeof q));
  }
  int rc;
  const int m = n_parts - 1; /* index of the model part */
  if ((rc = check_part(PART_MODEL, starts[m], lens[m], s, out->model, err, err_len)) < 0) goto fail;
  if (n_parts >= 2) {
    if ((rc = check_part(PART_NAMESPACE, starts[m - 1], lens[m - 1], s, out->ns, err, err_len)) < 0) goto fail;
  } else if ((rc = default_part(PART_NAMESPACE, defaults ? defaults->ns : NULL, MLXR_NAME_DEFAULT_NAMESPACE,
                                out->ns, err, err_len)) < 0) {
    goto fail;
  }
  if (n_parts == 3) {
    if ((rc = check_part(PART_HOST, starts[0], lens[0], s, out->host, err, err_len)) < 0) goto fail;
  } else if ((rc = default_part(PART_HOST, defaults ? defaults->host : NULL, MLXR_NAME_DEFAULT_HOST, out->host,
                                err, err_len)) < 0) {
    goto fail;
  }
  if (tag) {
    if ((rc = check_part(PART_TAG, tag, tag_len, s, out->tag, err, err_len)) < 0) goto fail;
  } else if ((rc = default_part(PART_TAG, defaults ? defaults->tag : NULL, MLXR_NAME_DEFAULT_TAG, out->tag, err,
                                err_len)) < 0) {
    goto fail;
  }
  return MLXR_OK;
fail:
  memset(out, 0, sizeof *out);
  return rc;
}

static int emit(char *buf, size_t buf_len, int n) {
  if (n < 0 || (size_t)n >= buf_len) {
    if (buf_len) buf[0] = '\0';
    return MLXR_ERR_RANGE;
  }
  return n;
}

int mlxr_name_format(const mlxr_model_name *n, char *buf, size_t buf_len) {
  return emit(buf, buf_len, snprintf(buf, buf_len, "%s/%s/%s:%s", n->host, n->ns, n->model, n->tag));
}

static bool eq_fold(const char *a, const char *b) { return strcasecmp(a, b) == 0; }

int mlxr_name_format_short(const mlxr_model_name *n, char *buf, size_t buf_len) {
  if (!eq_fold(n->host, MLXR_NAME_DEFAULT_HOST)) return mlxr_name_format(n, buf, buf_len);
  if (!eq_fold(n->ns, MLXR_NAME_DEFAULT_NAMESPACE)) {
    return emit(buf, buf_len, snprintf(buf, buf_len, "%s/%s:%s", n->ns, n->model, n->tag));
  }
  return emit(buf, buf_len, snprintf(buf, buf_len, "%s:%s", n->model, n->tag));
}

int mlxr_name_manifest_path(const mlxr_model_name *n, char *buf, size_t buf_len) {
  return emit(buf, buf_len, snprintf(buf, buf_len, "manifests/%s/%s/%s/%s", n->host, n->ns, n->model, n->tag));
}

int mlxr_name_canonical(const char *s, const mlxr_name_defaults *defaults, char *buf, size_t buf_len, char *err,
                        size_t err_len) {
  mlxr_model_name n;
  int rc = mlxr_name_parse(s, defaults, &n, err, err_len);
  if (rc < 0) return rc;
  rc = mlxr_name_format(&n, buf, buf_len);
  if (rc < 0) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "name buffer too small");
  return MLXR_OK;
}

int mlxr_name_compare(const mlxr_model_name *a, const mlxr_model_name *b) {
  int c;
  if ((c = strcasecmp(a->host, b->host)) != 0) return c;
  if ((c = strcasecmp(a->ns, b->ns)) != 0) return c;
  if ((c = strcasecmp(a->model, b->model)) != 0) return c;
  return strcasecmp(a->tag, b->tag);
}

bool mlxr_name_equal(const mlxr_model_name *a, const mlxr_model_name *b) { return mlxr_name_compare(a, b) == 0; }

/* ---- digests ---- */

int mlxr_digest_parse(const char *s, mlxr_digest *out, char *err, size_t err_len) {
  memset(out, 0, sizeof *out);
  char q[256];
  if (!s) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "invalid digest: missing");
  const size_t want = 7 + MLXR_DIGEST_HEX_LEN;
  const size_t len = strnlen(s, want + 1);
  if (strncmp(s, "sha256", 6) != 0 || (len > 6 && s[6] != ':' && s[6] != '-')) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "invalid digest \"%s\": must be sha256:<64 lowercase hex digits> (or sha256-<hex>)",
                     mlxr_registry_quote(s, q, sizeof q));
  }
  if (len != want) {
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                     "invalid digest \"%s\": must have exactly %d hex digits after \"sha256:\"",
                     mlxr_registry_quote(s, q, sizeof q), MLXR_DIGEST_HEX_LEN);
  }
  for (size_t i = 7; i < want; i++) {
    const char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                       "invalid digest \"%s\": byte %zu is not a lowercase hex digit (0-9, a-f)",
                       mlxr_registry_quote(s, q, sizeof q), i);
    }
  }
  memcpy(out->hex, s + 7, MLXR_DIGEST_HEX_LEN);
  out->hex[MLXR_DIGEST_HEX_LEN] = '\0';
  return MLXR_OK;
}

void mlxr_digest_from_bytes(const unsigned char bytes[32], mlxr_digest *out) {
  static const char hexd[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out->hex[2 * i] = hexd[bytes[i] >> 4];
    out->hex[2 * i + 1] = hexd[bytes[i] & 15];
  }
  out->hex[MLXR_DIGEST_HEX_LEN] = '\0';
}

void mlxr_digest_str(const mlxr_digest *d, char out[MLXR_DIGEST_STR_SIZE]) {
  memcpy(out, "sha256:", 7);
  memcpy(out + 7, d->hex, MLXR_DIGEST_HEX_LEN + 1);
}

void mlxr_digest_filename(const mlxr_digest *d, char out[MLXR_DIGEST_STR_SIZE]) {
  memcpy(out, "sha256-", 7);
  memcpy(out + 7, d->hex, MLXR_DIGEST_HEX_LEN + 1);
}

bool mlxr_digest_equal(const mlxr_digest *a, const mlxr_digest *b) {
  return memcmp(a->hex, b->hex, MLXR_DIGEST_HEX_LEN) == 0;
}
