/*
 * auth.c: who may talk to the daemon.
 *
 *   API keys   when any is configured, every route but /health (and CORS preflights, which
 *              browsers send without credentials) needs "Authorization: Bearer KEY" or
 *              "X-Api-Key: KEY"; keys are compared in constant time.
 *   Host       on a loopback bind, the Host header must name the loopback (localhost, *.localhost,
 *              127.0.0.0/8, ::1) or this machine, so a web page on another name that resolves to
 *              127.0.0.1 (DNS rebinding) is refused with 403 (CVE-2024-28224's lesson).
 *   Origin     a browser Origin must match Ollama's default allow-list (http(s)://localhost,
 *              127.0.0.1, 0.0.0.0 on any port; app://, file://, tauri://, vscode-webview://) or a
 *              configured pattern ('*' matches any run of characters); otherwise 403.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "daemon/server/server_impl.h"

static const char *const default_origins[] = {
    "http://localhost",   "https://localhost",   "http://localhost:*",   "https://localhost:*",
    "http://127.0.0.1",   "https://127.0.0.1",   "http://127.0.0.1:*",   "https://127.0.0.1:*",
    "http://0.0.0.0",     "https://0.0.0.0",     "http://0.0.0.0:*",     "https://0.0.0.0:*",
    "http://[::1]",       "http://[::1]:*",      "app://*",              "file://*",
    "tauri://*",          "vscode-webview://*",
};

static bool glob_match(const char *pat, const char *s) {
  while (*pat) {
    if (*pat == '*') {
      pat++;
      if (!*pat) return true;
      for (; *s; s++)
        if (glob_match(pat, s)) return true;
      return glob_match(pat, s);
    }
    if (*pat != *s) return false;
    pat++, s++;
  }
  return *s == '\0';
}

bool mlxr_auth_is_loopback_host(const char *host) {
  if (!host) return false;
  if (strcasecmp(host, "localhost") == 0) return true;
  size_t n = strlen(host);
  if (n > 10 && strcasecmp(host + n - 10, ".localhost") == 0) return true;
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

bool mlxr_auth_host_ok(const mlxr_server *s, const char *host) {
  if (!s->loopback_bind) return true;
  if (!host || !host[0]) return true; /* HTTP/1.0 without Host */
  char name[256];
  size_t n = strlen(host);
  if (n >= sizeof name) return false;
  if (host[0] == '[') {
    const char *close = strchr(host, ']');
    if (!close) return false;
    size_t k = (size_t)(close - host - 1);
    memcpy(name, host + 1, k);
    name[k] = '\0';
    if (close[1] && close[1] != ':') return false;
  } else {
    const char *colon = strchr(host, ':');
    size_t k = colon ? (size_t)(colon - host) : n;
    if (colon && strchr(colon + 1, ':')) return false;
    memcpy(name, host, k);
    name[k] = '\0';
  }
  if (mlxr_auth_is_loopback_host(name)) return true;
  if (strcasecmp(name, "0.0.0.0") == 0) return true;
  if (s->hostname[0] && strcasecmp(name, s->hostname) == 0) return true;
  return false;
}

bool mlxr_auth_origin_ok(const mlxr_server *s, const char *origin) {
  if (!origin) return true;
  for (size_t i = 0; i < sizeof default_origins / sizeof default_origins[0]; i++)
    if (glob_match(default_origins[i], origin)) return true;
  for (int i = 0; i < s->cfg->n_cors_origins; i++)
    if (glob_match(s->cfg->cors_origins[i], origin)) return true;
  return false;
}

static bool key_eq(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = (unsigned char)(la != lb);
  for (size_t i = 0; i < lb; i++) diff |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
  return diff == 0 && la > 0;
}

static int key_match(const mlxr_server *s, struct MHD_Connection *c) {
  const char *given = NULL;
  const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
    given = auth + 7;
    while (*given == ' ') given++;
  }
  if (!given) given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
  if (!given) return -1;
  int match = -1;
  for (int i = 0; i < s->cfg->n_api_keys; i++) { /* every key is compared: constant time */
    if (key_eq(given, s->cfg->api_keys[i]) && match < 0) match = i;
  }
  return match;
}

bool mlxr_auth_key_ok(const mlxr_server *s, struct MHD_Connection *c) {
  if (s->cfg->n_api_keys == 0) return true;
  return key_match(s, c) >= 0;
}

int mlxr_auth_key_slot(const mlxr_server *s, struct MHD_Connection *c) {
  if (s->cfg->n_api_keys == 0) return MLXR_SERVER_MAX_KEYS;
  int i = key_match(s, c);
  return i >= 0 ? i : MLXR_SERVER_MAX_KEYS;
}
