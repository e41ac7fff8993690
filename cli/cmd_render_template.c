/*
 * cmd_render_template.c: `mlxr render-template TEMPLATE_FILE CASE_JSON` renders a chat template
 * (core/runtime/template) with the variables in CASE_JSON and prints the result byte for byte,
 * with no trailing newline. CASE_JSON is inline JSON when it starts with '{', "-" for stdin, or
 * else the path of a JSON file; it is one object: messages, tools, add_generation_prompt,
 * bos_token, eos_token and any other keyword a template reads. JSON numbers keep Python's
 * int/float distinction.
 *
 * A template error (syntax, raise_exception, type error, undefined, limits) prints
 * "ERROR: <message>" on stdout and exits 3; unreadable files exit 1; usage errors exit 2.
 *
 * MLXR_FIXED_TIME=YYYY-MM-DDTHH:MM:SS (read here, passed down) fixes what strftime_now() sees.
 *
 * Hidden test options: --batch CASES.jsonl renders every line (one variables object per line)
 * with the one compiled template and prints one JSON line per case: {"ok":true,"out":"..."} or
 * {"ok":false,"error":"..."}. --snippets FILE.jsonl (no TEMPLATE_FILE) takes lines
 * {"template": SRC, "vars": {...}} instead, compiling each template and passing the variables as
 * a cJSON tree (the mlxr_template_render entry point).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli/commands.h"
#include "core/common/status.h"
#include "core/runtime/template/template.h"

static const char *const USAGE = "usage: mlxr render-template TEMPLATE_FILE CASE_JSON\n"
                                 "  CASE_JSON: inline JSON object (starts with '{'), '-' for stdin, or a file path\n";

static char *read_all(FILE *f, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  for (;;) {
    if (n + 1 >= cap) {
      char *p = realloc(buf, cap * 2);
      if (!p) {
        free(buf);
        return NULL;
      }
      buf = p;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n - 1, f);
    n += got;
    if (got == 0) break;
  }
  if (ferror(f)) {
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) return NULL;
  char *s = read_all(f, len);
  if (f != stdin) fclose(f);
  return s;
}

/* "2026-11-26T12:00:00" -> broken-down time with weekday/yearday filled in. */
static bool parse_fixed_time(const char *s, struct tm *out) {
  int y, mo, d, h = 0, mi = 0, se = 0;
  char extra;
  int n = sscanf(s, "%d-%d-%dT%d:%d:%d%c", &y, &mo, &d, &h, &mi, &se, &extra);
  if (n != 3 && n != 6) return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60)
    return false;
  struct tm tm = {0};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  time_t t = timegm(&tm);
  if (!gmtime_r(&t, out)) return false;
  return true;
}

static void json_str(FILE *f, const char *s, size_t len) {
  fputc('"', f);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"') fputs("\\\"", f);
    else if (c == '\\') fputs("\\\\", f);
    else if (c == '\n') fputs("\\n", f);
    else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void print_result(int rc, const char *out, size_t out_len, const char *err);

static int run_batch(const mlxr_template *t, const char *cases_path, const mlxr_template_params *params) {
  size_t len;
  char *all = read_file(cases_path, &len);
  if (!all) {
    fprintf(stderr, "mlxr render-template: cannot read %s\n", cases_path);
    return 1;
  }
  char *line = all, *end = all + len;
  while (line < end) {
    char *nl = memchr(line, '\n', (size_t)(end - line));
    size_t ll = nl ? (size_t)(nl - line) : (size_t)(end - line);
    if (ll > 0) {
      char *out = NULL;
      size_t out_len = 0;
      char err[1024] = "";
      int rc = mlxr_template_render_json(t, line, ll, params, &out, &out_len, err, sizeof(err));
      print_result(rc, out, out_len, err);
      free(out);
    }
    line += ll + 1;
  }
  free(all);
  return 0;
}

static void print_result(int rc, const char *out, size_t out_len, const char *err) {
  if (rc == MLXR_OK) {
    fputs("{\"ok\":true,\"out\":", stdout);
    json_str(stdout, out, out_len);
  } else {
    fputs("{\"ok\":false,\"error\":", stdout);
    json_str(stdout, err, strlen(err));
  }
  fputs("}\n", stdout);
}

static int run_snippets(const char *path, const mlxr_template_params *params) {
  size_t len;
  char *all = read_file(path, &len);
  if (!all) {
    fprintf(stderr, "mlxr render-template: cannot read %s\n", path);
    return 1;
  }
  char *line = all, *end = all + len;
  while (line < end) {
    char *nl = memchr(line, '\n', (size_t)(end - line));
    size_t ll = nl ? (size_t)(nl - line) : (size_t)(end - line);
    if (ll > 0) {
      cJSON *j = cJSON_ParseWithLength(line, ll);
      const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "template");
      const cJSON *vars = cJSON_GetObjectItemCaseSensitive(j, "vars");
      char err[1024] = "";
      char *out = NULL;
      size_t out_len = 0;
      int rc;
      if (!cJSON_IsString(src)) {
        rc = MLXR_ERR_INVALID;
        snprintf(err, sizeof(err), "snippet line without a template");
      } else {
        mlxr_template *t = NULL;
        rc = mlxr_template_new(src->valuestring, strlen(src->valuestring), &t, err, sizeof(err));
        if (rc == MLXR_OK) rc = mlxr_template_render(t, vars, params, &out, &out_len, err, sizeof(err));
        mlxr_template_free(t);
      }
      print_result(rc, out, out_len, err);
      free(out);
      cJSON_Delete(j);
    }
    line += ll + 1;
  }
  free(all);
  return 0;
}

int mlxr_cmd_render_template(int argc, char **argv) {
  static const struct option opts[] = {{"batch", required_argument, NULL, 'b'},
                                       {"snippets", required_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *batch = NULL, *snippets = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'b': batch = optarg; break;
    case 's': snippets = optarg; break;
    case 'h': fputs(USAGE, stdout); return 0;
    default: fputs(USAGE, stderr); return 2;
    }
  }
  if (argc - optind != (snippets ? 0 : batch ? 1 : 2)) {
    fputs(USAGE, stderr);
    return 2;
  }
  mlxr_template_params params;
  mlxr_template_default_params(&params);
  struct tm fixed;
  const char *ft = getenv("MLXR_FIXED_TIME");
  if (ft && *ft) {
    if (!parse_fixed_time(ft, &fixed)) {
      fprintf(stderr, "mlxr render-template: MLXR_FIXED_TIME must look like 2026-11-26T12:00:00\n");
      return 2;
    }
    params.fixed_time = &fixed;
  }
  if (snippets) return run_snippets(snippets, &params);
  size_t src_len;
  char *src = read_file(argv[optind], &src_len);
  if (!src) {
    fprintf(stderr, "mlxr render-template: cannot read %s\n", argv[optind]);
    return 1;
  }
  char err[1024] = "";
  mlxr_template *t = NULL;
  int rc = mlxr_template_new(src, src_len, &t, err, sizeof(err));
  free(src);
  if (rc != MLXR_OK) {
    printf("ERROR: %s", err);
    return 3;
  }
  if (batch) {
    rc = run_batch(t, batch, &params);
    mlxr_template_free(t);
    return rc;
  }
  const char *arg = argv[optind + 1];
  char *json;
  size_t json_len;
  if (arg[0] == '{') {
    json = strdup(arg);
    json_len = strlen(arg);
  } else {
    json = read_file(arg, &json_len);
  }
  if (!json) {
    fprintf(stderr, "mlxr render-template: cannot read %s\n", arg);
    mlxr_template_free(t);
    return 1;
  }
  char *out = NULL;
  size_t out_len = 0;
  rc = mlxr_template_render_json(t, json, json_len, &params, &out, &out_len, err, sizeof(err));
  free(json);
  mlxr_template_free(t);
  if (rc != MLXR_OK) {
    printf("ERROR: %s", err);
    return 3;
  }
  fwrite(out, 1, out_len, stdout);
  free(out);
  return 0;
}
