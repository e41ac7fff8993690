/*
 * cmd_models.c: the model-management commands, in Ollama's CLI habits, as clients of a running
 * mlxrd (cli/api_client.h):
 *   mlxr list | ls                 NAME, ID (12 digits of the digest), SIZE, MODIFIED   (GET /api/tags)
 *   mlxr ps                        loaded models: NAME, ID, SIZE, PROCESSOR, CONTEXT, UNTIL (/api/ps)
 *   mlxr show NAME [--modelfile|--template|--system|--parameters|--license]              (/api/show)
 *   mlxr cp SOURCE DESTINATION                                                          (/api/copy)
 *   mlxr rm NAME...                                                                    (/api/delete)
 *   mlxr create NAME [-f Modelfile]   FROM a local GGUF: hashed, uploaded if the daemon lacks it
 *                                  (HEAD/POST /api/blobs/sha256:...), then /api/create with the
 *                                  Modelfile's settings; FROM a model name: created from that model.
 * Sizes in decimal units as Ollama prints them (1 GB = 10^9 bytes); times relative to now.
 */
#include <getopt.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "daemon/registry/modelfile.h"

static void locate(mlxr_api *api) {
  mlxr_api_locate(api, getenv("MLXR_SOCKET"), getenv("XDG_RUNTIME_DIR"), getenv("MLXR_HOST"));
}

/* Sends the request; on success (2xx) *out gets the parsed body (NULL for an empty one) and 0 is
 * returned; otherwise the daemon's error or the connection failure is printed as "mlxr CMD: ..."
 * and 1 returned. */
static int call(const char *cmd, const char *method, const char *path, cJSON *req, cJSON **out) {
  mlxr_api api;
  locate(&api);
  char *json = req ? cJSON_PrintUnformatted(req) : NULL;
  long status = 0;
  char *body = NULL, err[1200];
  if (out) *out = NULL;
  const int rc = mlxr_api_call(&api, method, path, json, NULL, 0, &status, &body, err, sizeof err);
  free(json);
  if (rc != 0) {
    fprintf(stderr, "mlxr %s: %s\n", cmd, err);
    return 1;
  }
  if (status < 200 || status >= 300) {
    char msg[1024];
    mlxr_api_error_text(body, msg, sizeof msg);
    fprintf(stderr, "mlxr %s: %s\n", cmd, msg);
    free(body);
    return 1;
  }
  if (out && body && *body) *out = cJSON_Parse(body);
  free(body);
  return 0;
}

static void human_bytes(double b, char *out, size_t cap) {
  if (b >= 1e9) snprintf(out, cap, "%.1f GB", b / 1e9);
  else if (b >= 1e6) snprintf(out, cap, "%.0f MB", b / 1e6);
  else if (b >= 1e3) snprintf(out, cap, "%.0f KB", b / 1e3);
  else snprintf(out, cap, "%.0f B", b);
}

/* RFC 3339 ("2026-12-07T21:00:00.5+01:00" or "...Z") to seconds since the epoch; -1 if unreadable. */
static long long parse_time(const char *s) {
  struct tm tm = {0};
  int consumed = 0;
  if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                   &tm.tm_sec, &consumed) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  long long t = (long long)timegm(&tm);
  const char *z = s + consumed;
  if (*z == '.')
    for (z++; *z >= '0' && *z <= '9'; z++) {
    }
  int oh = 0, om = 0;
  if ((*z == '+' || *z == '-') && sscanf(z + 1, "%d:%d", &oh, &om) == 2) t -= (*z == '+' ? 1 : -1) * (oh * 3600LL + om * 60LL);
  return t;
}

/* "3 minutes ago" / "4 minutes from now", as Ollama's CLI words it. */
static void relative_time(long long t, char *out, size_t cap) {
  if (t < 0) {
    snprintf(out, cap, "?");
    return;
  }
  long long d = t - (long long)time(NULL);
  const bool future = d > 0;
  if (d < 0) d = -d;
  static const struct {
    long long secs;
    const char *unit;
  } units[] = {{365LL * 86400, "year"}, {30LL * 86400, "month"}, {7LL * 86400, "week"}, {86400, "day"},
               {3600, "hour"},          {60, "minute"},           {1, "second"}};
  if (d < 1) {
    snprintf(out, cap, "%s", future ? "Now" : "Less than a second ago");
    return;
  }
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (d >= units[i].secs) {
      const long long n = d / units[i].secs;
      snprintf(out, cap, "%lld %s%s %s", n, units[i].unit, n == 1 ? "" : "s", future ? "from now" : "ago");
      return;
    }
  }
}

static const char *str_of(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_of(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void short_id(const char *digest, char *out) {
  const char *hex = strncmp(digest, "sha256:", 7) == 0 ? digest + 7 : digest;
  snprintf(out, 13, "%s", hex);
}

static int no_args(const char *cmd, int argc, char **argv, int want_min, int want_max, const char *usage) {
  if (argc - 1 < want_min || argc - 1 > want_max || (argc > 1 && strcmp(argv[1], "--help") == 0)) {
    fprintf(argc > 1 && strcmp(argv[1], "--help") == 0 ? stdout : stderr, "usage: mlxr %s %s\n", cmd, usage);
    return argc > 1 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  return -1;
}

int mlxr_cmd_list(int argc, char **argv) {
  int u = no_args("list", argc, argv, 0, 0, "");
  if (u >= 0) return u;
  cJSON *r = NULL;
  if (call("list", "GET", "/api/tags", NULL, &r)) return 1;
  printf("%-40s %-14s %-10s %s\n", "NAME", "ID", "SIZE", "MODIFIED");
  const cJSON *m;
  cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(r, "models")) {
    char id[13], size[32], when[48];
    short_id(str_of(m, "digest"), id);
    human_bytes(num_of(m, "size"), size, sizeof size);
    relative_time(parse_time(str_of(m, "modified_at")), when, sizeof when);
    printf("%-40s %-14s %-10s %s\n", str_of(m, "name"), id, size, when);
  }
  cJSON_Delete(r);
  return 0;
}

int mlxr_cmd_ps(int argc, char **argv) {
  int u = no_args("ps", argc, argv, 0, 0, "");
  if (u >= 0) return u;
  cJSON *r = NULL;
  if (call("ps", "GET", "/api/ps", NULL, &r)) return 1;
  printf("%-40s %-14s %-10s %-16s %-9s %s\n", "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL");
  const cJSON *m;
  cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(r, "models")) {
    char id[13], size[32], proc[32], until[48];
    short_id(str_of(m, "digest"), id);
    const double sz = num_of(m, "size"), vram = num_of(m, "size_vram");
    human_bytes(sz, size, sizeof size);
    if (vram <= 0) snprintf(proc, sizeof proc, "100%% CPU");
    else if (vram >= sz) snprintf(proc, sizeof proc, "100%% GPU");
    else snprintf(proc, sizeof proc, "%.0f%%/%.0f%% CPU/GPU", 100 * (sz - vram) / sz, 100 * vram / sz);
    const long long t = parse_time(str_of(m, "expires_at"));
    if (t > (long long)time(NULL) + 100LL * 365 * 86400) snprintf(until, sizeof until, "Forever");
    else relative_time(t, until, sizeof until);
    printf("%-40s %-14s %-10s %-16s %-9.0f %s\n", str_of(m, "name"), id, size, proc, num_of(m, "context_length"), until);
  }
  cJSON_Delete(r);
  return 0;
}

int mlxr_cmd_show(int argc, char **argv) {
  static const struct option opts[] = {{"modelfile", no_argument, NULL, 'm'}, {"template", no_argument, NULL, 't'},
                                       {"system", no_argument, NULL, 's'},    {"parameters", no_argument, NULL, 'p'},
                                       {"license", no_argument, NULL, 'l'},   {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *field = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': field = "modelfile"; break;
    case 't': field = "template"; break;
    case 's': field = "system"; break;
    case 'p': field = "parameters"; break;
    case 'l': field = "license"; break;
    case 'h': printf("usage: mlxr show NAME [--modelfile|--template|--system|--parameters|--license]\n"); return 0;
    default: return 2;
    }
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "usage: mlxr show NAME [--modelfile|--template|--system|--parameters|--license]\n");
    return 2;
  }
  cJSON *req = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(req, "model", argv[optind]);
  const int rc = call("show", "POST", "/api/show", req, &r);
  cJSON_Delete(req);
  if (rc) return 1;
  if (field) {
    fputs(str_of(r, field), stdout);
    if (*str_of(r, field)) fputc('\n', stdout);
  } else {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "details");
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(r, "model_info");
    const char *arch = str_of(info, "general.architecture");
    char key[96];
    printf("  Model\n    %-20s %s\n    %-20s %s\n", "architecture", *arch ? arch : str_of(d, "family"), "parameters",
           str_of(d, "parameter_size"));
    snprintf(key, sizeof key, "%s.context_length", arch);
    if (num_of(info, key) > 0) printf("    %-20s %.0f\n", "context length", num_of(info, key));
    snprintf(key, sizeof key, "%s.embedding_length", arch);
    if (num_of(info, key) > 0) printf("    %-20s %.0f\n", "embedding length", num_of(info, key));
    printf("    %-20s %s\n", "quantization", str_of(d, "quantization_level"));
    const cJSON *caps = cJSON_GetObjectItemCaseSensitive(r, "capabilities");
    if (cJSON_GetArraySize(caps) > 0) {
      printf("\n  Capabilities\n");
      const cJSON *cap;
      cJSON_ArrayForEach(cap, caps) if (cJSON_IsString(cap)) printf("    %s\n", cap->valuestring);
    }
    static const char *const sections[][2] = {{"parameters", "Parameters"}, {"system", "System"}, {"license", "License"}};
    for (size_t i = 0; i < 3; i++) {
      const char *v = str_of(r, sections[i][0]);
      if (!*v) continue;
      printf("\n  %s\n    ", sections[i][1]);
      size_t n = strlen(v);
      while (n > 0 && v[n - 1] == '\n') n--; /* one line ending of our own */
      for (size_t k = 0; k < n; k++) {
        putchar(v[k]);
        if (v[k] == '\n') fputs("    ", stdout);
      }
      putchar('\n');
    }
  }
  cJSON_Delete(r);
  return 0;
}

int mlxr_cmd_cp(int argc, char **argv) {
  int u = no_args("cp", argc, argv, 2, 2, "SOURCE DESTINATION");
  if (u >= 0) return u;
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "source", argv[1]);
  cJSON_AddStringToObject(req, "destination", argv[2]);
  const int rc = call("cp", "POST", "/api/copy", req, NULL);
  cJSON_Delete(req);
  if (!rc) printf("copied '%s' to '%s'\n", argv[1], argv[2]);
  return rc;
}

int mlxr_cmd_rm(int argc, char **argv) {
  int u = no_args("rm", argc, argv, 1, 1 << 20, "NAME...");
  if (u >= 0) return u;
  int status = 0;
  for (int i = 1; i < argc; i++) {
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", argv[i]);
    const int rc = call("rm", "DELETE", "/api/delete", req, NULL);
    cJSON_Delete(req);
    if (rc) status = 1;
    else printf("deleted '%s'\n", argv[i]);
  }
  return status;
}

/* "sha256:<hex>" of the file at path into out; 0 on success. */
static int file_digest(const char *path, char out[72], long long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned char buf[1 << 16], md[32];
  unsigned int md_len = 0;
  size_t n;
  long long total = 0;
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
  while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0) {
    ok = EVP_DigestUpdate(ctx, buf, n) == 1;
    total += (long long)n;
  }
  ok = ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 32;
  EVP_MD_CTX_free(ctx);
  fclose(f);
  if (!ok) return -1;
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < 32; i++) snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
  *size = total;
  return 0;
}

/* Make sure the daemon has the file's bytes as a blob; its digest into digest. */
static int upload_blob(const char *path, char digest[72]) {
  long long size = 0;
  if (file_digest(path, digest, &size) != 0) {
    fprintf(stderr, "mlxr create: cannot read '%s'\n", path);
    return 1;
  }
  mlxr_api api;
  locate(&api);
  char route[128], err[1200], msg[1024];
  snprintf(route, sizeof route, "/api/blobs/%s", digest);
  long status = 0;
  char *body = NULL;
  if (mlxr_api_call(&api, "HEAD", route, NULL, NULL, 0, &status, &body, err, sizeof err) != 0) {
    fprintf(stderr, "mlxr create: %s\n", err);
    return 1;
  }
  free(body);
  if (status == 200) return 0; /* already there */
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "mlxr create: cannot read '%s'\n", path);
    return 1;
  }
  fprintf(stderr, "copying file %s (%lld bytes)\n", digest, size);
  const int rc = mlxr_api_call(&api, "POST", route, NULL, f, size, &status, &body, err, sizeof err);
  fclose(f);
  if (rc != 0) {
    fprintf(stderr, "mlxr create: %s\n", err);
    return 1;
  }
  if (status < 200 || status >= 300) {
    mlxr_api_error_text(body, msg, sizeof msg);
    fprintf(stderr, "mlxr create: uploading '%s': %s\n", path, msg);
    free(body);
    return 1;
  }
  free(body);
  return 0;
}

int mlxr_cmd_create(int argc, char **argv) {
  static const struct option opts[] = {{"file", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *file = "Modelfile";
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
    if (c == 'f') file = optarg;
    else if (c == 'h') {
      printf("usage: mlxr create NAME [-f Modelfile]\n");
      return 0;
    } else {
      return 2;
    }
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "usage: mlxr create NAME [-f Modelfile]\n");
    return 2;
  }
  FILE *f = fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "mlxr create: cannot open the Modelfile '%s'\n", file);
    return 1;
  }
  char *text = NULL;
  size_t len = 0, cap = 0, n;
  char chunk[8192];
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (len + n > cap) {
      cap = (len + n) * 2;
      char *p = realloc(text, cap);
      if (!p) break;
      text = p;
    }
    memcpy(text + len, chunk, n);
    len += n;
  }
  fclose(f);
  mlxr_modelfile mf;
  char err[512];
  if (mlxr_modelfile_parse(text ? text : "", len, &mf, err, sizeof err) != 0) {
    fprintf(stderr, "mlxr create: %s: %s\n", file, err);
    free(text);
    return 1;
  }
  free(text);
  /* FROM: a local file (relative to the Modelfile's directory) or a model the daemon has */
  char dir_buf[4096], from_path[8192];
  snprintf(dir_buf, sizeof dir_buf, "%s", file);
  const char *dir = dirname(dir_buf);
  if (mf.from[0] == '/') snprintf(from_path, sizeof from_path, "%s", mf.from);
  else if (strncmp(mf.from, "~/", 2) == 0 && getenv("HOME")) snprintf(from_path, sizeof from_path, "%s%s", getenv("HOME"), mf.from + 1);
  else snprintf(from_path, sizeof from_path, "%s/%s", dir, mf.from);
  struct stat st;
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "model", argv[optind]);
  cJSON_AddBoolToObject(req, "stream", 0);
  int status = 0;
  if (stat(from_path, &st) == 0 && S_ISREG(st.st_mode)) {
    char digest[72];
    status = upload_blob(from_path, digest);
    if (!status) {
      char base_buf[8192];
      snprintf(base_buf, sizeof base_buf, "%s", from_path);
      cJSON *files = cJSON_AddObjectToObject(req, "files");
      cJSON_AddStringToObject(files, basename(base_buf), digest);
    }
  } else if (strchr(mf.from, '/') && (mf.from[0] == '.' || mf.from[0] == '/' || mf.from[0] == '~')) {
    fprintf(stderr, "mlxr create: FROM '%s': no such file\n", mf.from);
    status = 1;
  } else {
    cJSON_AddStringToObject(req, "from", mf.from);
  }
  if (mf.adapter || mf.draft) {
    fprintf(stderr, "mlxr create: ADAPTER and DRAFT are not supported yet\n");
    status = 1;
  }
  if (!status) {
    if (mf.template_text) cJSON_AddStringToObject(req, "template", mf.template_text);
    if (mf.system) cJSON_AddStringToObject(req, "system", mf.system);
    if (cJSON_GetArraySize(mf.parameters) > 0) cJSON_AddItemToObject(req, "parameters", cJSON_Duplicate(mf.parameters, 1));
    if (mf.n_licenses) {
      cJSON *a = cJSON_AddArrayToObject(req, "license");
      for (int i = 0; i < mf.n_licenses; i++) cJSON_AddItemToArray(a, cJSON_CreateString(mf.licenses[i]));
    }
    if (mf.n_messages) {
      cJSON *a = cJSON_AddArrayToObject(req, "messages");
      for (int i = 0; i < mf.n_messages; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", mf.messages[i].role);
        cJSON_AddStringToObject(m, "content", mf.messages[i].content);
        cJSON_AddItemToArray(a, m);
      }
    }
    status = call("create", "POST", "/api/create", req, NULL);
    if (!status) printf("success\n");
  }
  cJSON_Delete(req);
  mlxr_modelfile_free(&mf);
  return status;
}
