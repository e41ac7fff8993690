/*
 * daemon_client.c: see daemon_client.h. Each call is one libcurl request over the Unix socket;
 * the write callback splits the body into lines and handles each NDJSON object as it arrives, so
 * text reaches the terminal as the daemon streams it.
 */
#include "cli/daemon_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

bool mlxr_daemon_reachable(const char *socket_path) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (!socket_path || !*socket_path || strlen(socket_path) >= sizeof(addr.sun_path)) return false;
  memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return false;
  bool ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
  close(fd);
  return ok;
}

void mlxr_daemon_model_id(const char *model_arg, char *out, size_t cap) {
  const char *base = strrchr(model_arg, '/');
  base = base ? base + 1 : model_arg;
  size_t n = strlen(base);
  if (n > 5 && strcmp(base + n - 5, ".gguf") == 0) n -= 5;
  if (n >= cap) n = cap - 1;
  memcpy(out, base, n);
  out[n] = '\0';
}

/* ---- streaming NDJSON ---- */

typedef struct stream_ctx {
  char *line;          /* partial line */
  size_t len, cap;
  bool chat;           /* /api/chat (message.content) or /api/generate (response) */
  char *text;          /* everything printed */
  size_t text_len, text_cap;
  bool failed;
  bool done;
} stream_ctx;

static void append_text(stream_ctx *s, const char *t, size_t n) {
  fwrite(t, 1, n, stdout);
  fflush(stdout);
  if (s->text_len + n + 1 > s->text_cap) {
    size_t cap = (s->text_len + n + 1) * 2;
    char *nt = realloc(s->text, cap);
    if (!nt) return;
    s->text = nt;
    s->text_cap = cap;
  }
  memcpy(s->text + s->text_len, t, n);
  s->text_len += n;
  s->text[s->text_len] = '\0';
}

static void handle_line(stream_ctx *s, const char *line, size_t len) {
  cJSON *o = cJSON_ParseWithLength(line, len);
  if (!o) return;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
  if (cJSON_IsString(e)) {
    fprintf(stderr, "\nmlxr run: the daemon says: %s\n", e->valuestring);
    s->failed = true;
  }
  const cJSON *piece = s->chat ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "message"), "content")
                               : cJSON_GetObjectItemCaseSensitive(o, "response");
  if (cJSON_IsString(piece) && piece->valuestring[0]) append_text(s, piece->valuestring, strlen(piece->valuestring));
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "done"))) {
    s->done = true;
    const double pc = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "prompt_eval_count"));
    const double pd = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "prompt_eval_duration"));
    const double ec = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "eval_count"));
    const double ed = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "eval_duration"));
    if (!s->chat && ec == ec) {
      fprintf(stderr, "mlxr (daemon): prompt %.0f tokens (%.2f tok/s); generation %.0f tokens (%.2f tok/s)\n",
              pc == pc ? pc : 0, pd > 0 ? pc / (pd * 1e-9) : 0.0, ec, ed > 0 ? ec / (ed * 1e-9) : 0.0);
    }
  }
  cJSON_Delete(o);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
  stream_ctx *s = user;
  const size_t n = size * nmemb;
  for (size_t i = 0; i < n; i++) {
    if (data[i] == '\n') {
      if (s->len) handle_line(s, s->line, s->len);
      s->len = 0;
      continue;
    }
    if (s->len + 1 >= s->cap) {
      size_t cap = s->cap ? s->cap * 2 : 4096;
      char *nl = realloc(s->line, cap);
      if (!nl) return 0;
      s->line = nl;
      s->cap = cap;
    }
    s->line[s->len++] = data[i];
  }
  return n;
}

/* POST body to path; returns the HTTP status (0 on a connection error). */
static long post_stream(const mlxr_daemon_client *c, const char *path, const char *body, stream_ctx *s) {
  CURL *curl = curl_easy_init();
  if (!curl) return 0;
  char url[512];
  snprintf(url, sizeof(url), "http://localhost%s", path);
  struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, s);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (s->len) handle_line(s, s->line, s->len);
    s->len = 0;
  }
  curl_slist_free_all(hdr);
  curl_easy_cleanup(curl);
  return status;
}

static cJSON *options_json(const mlxr_daemon_client *c) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "temperature", c->sp.temperature);
  cJSON_AddNumberToObject(o, "top_k", c->sp.top_k);
  cJSON_AddNumberToObject(o, "top_p", c->sp.top_p);
  cJSON_AddNumberToObject(o, "min_p", c->sp.min_p);
  cJSON_AddNumberToObject(o, "repeat_penalty", c->sp.repeat_penalty);
  cJSON_AddNumberToObject(o, "repeat_last_n", c->sp.repeat_last_n);
  cJSON_AddNumberToObject(o, "presence_penalty", c->sp.presence_penalty);
  cJSON_AddNumberToObject(o, "frequency_penalty", c->sp.frequency_penalty);
  if (c->seed_set) cJSON_AddNumberToObject(o, "seed", (double)c->sp.seed);
  if (c->n_predict >= 0) cJSON_AddNumberToObject(o, "num_predict", c->n_predict);
  return o;
}

static size_t on_raw(char *data, size_t size, size_t nmemb, void *user) {
  stream_ctx *s = user;
  const size_t n = size * nmemb;
  if (s->len + n + 1 > s->cap) {
    size_t cap = (s->len + n + 1) * 2;
    char *nl = realloc(s->line, cap);
    if (!nl) return 0;
    s->line = nl;
    s->cap = cap;
  }
  memcpy(s->line + s->len, data, n);
  s->len += n;
  return n;
}

int mlxr_daemon_has_model(const mlxr_daemon_client *c) {
  CURL *curl = curl_easy_init();
  if (!curl) return 1;
  stream_ctx s = {0};
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
  curl_easy_setopt(curl, CURLOPT_URL, "http://localhost/api/tags");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_raw);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &s);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  int result = 1;
  if (rc == CURLE_OK) {
    cJSON *o = s.len ? cJSON_ParseWithLength(s.line, s.len) : NULL;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(o, "models"), *m;
    result = 2;
    cJSON_ArrayForEach(m, models) {
      const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
      const cJSON *model = cJSON_GetObjectItemCaseSensitive(m, "model");
      size_t n = strlen(c->model);
      for (int k = 0; k < 2; k++) {
        const cJSON *v = k ? model : name;
        if (cJSON_IsString(v) && strncmp(v->valuestring, c->model, n) == 0 &&
            (v->valuestring[n] == '\0' || v->valuestring[n] == ':')) {
          result = 0;
        }
      }
    }
    cJSON_Delete(o);
  }
  free(s.line);
  free(s.text);
  return result;
}

int mlxr_daemon_generate(const mlxr_daemon_client *c, const char *prompt) {
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "model", c->model);
  cJSON_AddStringToObject(req, "prompt", prompt);
  cJSON_AddBoolToObject(req, "raw", true);
  cJSON_AddBoolToObject(req, "stream", true);
  cJSON_AddItemToObject(req, "options", options_json(c));
  char *body = cJSON_PrintUnformatted(req);
  cJSON_Delete(req);
  if (!body) return 1;
  stream_ctx s = {.chat = false};
  long status = post_stream(c, "/api/generate", body, &s);
  free(body);
  free(s.line);
  free(s.text);
  if (status == 0) {
    fprintf(stderr, "mlxr run: lost the connection to the daemon at %s\n", c->socket_path);
    return 1;
  }
  printf("\n");
  return status == 200 && !s.failed ? 0 : 1;
}

static int daemon_turn(void *ctx, const cJSON *messages, char **reply, size_t *reply_len) {
  mlxr_daemon_client *c = ctx;
  cJSON *req = cJSON_CreateObject();
  cJSON_AddStringToObject(req, "model", c->model);
  cJSON_AddItemToObject(req, "messages", cJSON_Duplicate(messages, true));
  cJSON_AddBoolToObject(req, "stream", true);
  cJSON_AddItemToObject(req, "options", options_json(c));
  char *body = cJSON_PrintUnformatted(req);
  cJSON_Delete(req);
  if (!body) return -1;
  stream_ctx s = {.chat = true};
  long status = post_stream(c, "/api/chat", body, &s);
  free(body);
  free(s.line);
  printf("\n");
  if (status == 0) {
    fprintf(stderr, "mlxr run: lost the connection to the daemon at %s\n", c->socket_path);
    free(s.text);
    return -1;
  }
  if (status != 200 || s.failed) {
    free(s.text);
    return 1;
  }
  *reply = s.text ? s.text : calloc(1, 1);
  *reply_len = s.text_len;
  return *reply ? 0 : -1;
}

mlxr_chat_backend mlxr_daemon_chat_backend(mlxr_daemon_client *c) {
  mlxr_chat_backend b = {.ctx = c, .turn = daemon_turn};
  return b;
}
