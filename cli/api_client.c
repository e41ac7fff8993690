/*
 * api_client.c: see api_client.h. One curl easy handle per call; the body is collected in memory
 * (the management routes answer small JSON documents).
 */
#include "cli/api_client.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

void mlxr_api_locate(mlxr_api *api, const char *env_socket, const char *env_xdg_runtime, const char *env_host) {
  memset(api, 0, sizeof *api);
  if (env_host && *env_host) {
    const bool has_scheme = strstr(env_host, "://") != NULL;
    snprintf(api->base_url, sizeof api->base_url, "%s%s", has_scheme ? "" : "http://", env_host);
    const size_t n = strlen(api->base_url);
    if (n > 0 && api->base_url[n - 1] == '/') api->base_url[n - 1] = '\0';
    return;
  }
  if (env_socket && *env_socket) snprintf(api->socket_path, sizeof api->socket_path, "%s", env_socket);
  else if (env_xdg_runtime && *env_xdg_runtime)
    snprintf(api->socket_path, sizeof api->socket_path, "%s/mlxr.sock", env_xdg_runtime);
  else snprintf(api->socket_path, sizeof api->socket_path, "/tmp/mlxr-%u.sock", (unsigned)getuid());
  snprintf(api->base_url, sizeof api->base_url, "http://localhost");
}

typedef struct membuf {
  char *p;
  size_t n, cap;
  bool oom;
} membuf;

static size_t on_data(char *data, size_t size, size_t nmemb, void *user) {
  membuf *b = user;
  const size_t n = size * nmemb;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return 0;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, data, n);
  b->n += n;
  b->p[b->n] = '\0';
  return n;
}

int mlxr_api_call(const mlxr_api *api, const char *method, const char *path, const char *json, FILE *upload,
                  long long upload_size, long *status, char **body, char *err, size_t err_len) {
  *status = 0;
  *body = NULL;
  CURL *curl = curl_easy_init();
  if (!curl) {
    snprintf(err, err_len, "cannot start libcurl");
    return 1;
  }
  char url[1024];
  snprintf(url, sizeof url, "%s%s", api->base_url, path);
  struct curl_slist *hdr = NULL;
  membuf b = {0};
  if (api->socket_path[0]) curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, api->socket_path);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (upload) {
    hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_READDATA, upload);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)upload_size);
  } else if (json) {
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
  }
  if (hdr) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
  curl_slist_free_all(hdr);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK || b.oom) {
    if (api->socket_path[0])
      snprintf(err, err_len, "cannot reach mlxrd at %s (%s): is it running? (mlxr serve)", api->socket_path,
               b.oom ? "out of memory" : curl_easy_strerror(rc));
    else
      snprintf(err, err_len, "cannot reach mlxrd at %s (%s): is it running? (mlxr serve)", api->base_url,
               b.oom ? "out of memory" : curl_easy_strerror(rc));
    free(b.p);
    return 1;
  }
  *body = b.p ? b.p : strdup("");
  return 0;
}

void mlxr_api_error_text(const char *body, char *out, size_t cap) {
  cJSON *j = body ? cJSON_Parse(body) : NULL;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
  if (cJSON_IsObject(e)) e = cJSON_GetObjectItemCaseSensitive(e, "message");
  if (cJSON_IsString(e)) snprintf(out, cap, "%s", e->valuestring);
  else snprintf(out, cap, "%s", body && *body ? body : "(no message)");
  cJSON_Delete(j);
}
