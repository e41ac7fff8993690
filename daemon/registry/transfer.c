/*
 * transfer.c: one HTTP request over libcurl, with the URL policy and redirect rules of transfer.h.
 *
 * How it works: mlxr_transfer_do loops over hops. Each hop checks its URL against the policy,
 * makes a fresh curl handle (protocols limited to http and https, no automatic redirects, timeouts
 * set), performs the request and looks at the status: a 3xx with a Location, when the caller asked
 * for redirects, starts the next hop at the resolved Location (its body discarded); anything else
 * is the final response. Response headers are parsed by a header callback that starts over at each
 * status line (a 100 Continue comes before the real one); body bytes go to the caller's sink or into
 * a bounded buffer. Relative Locations are resolved against the hop's URL with libcurl's URL API.
 */
#include "daemon/registry/transfer.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/common/status.h"
#include "daemon/registry/names.h"

mlxr_transfer_params mlxr_transfer_default_params(void) {
  return (mlxr_transfer_params){.insecure = false,
                                .connect_timeout_ms = 10000,
                                .stall_timeout_s = 30,
                                .total_timeout_s = 0,
                                .max_redirects = 10,
                                .user_agent = "mlxr",
                                .proxy = NULL,
                                .no_proxy = NULL};
}

void mlxr_transfer_response_clear(mlxr_transfer_response *r) {
  if (!r) return;
  free(r->location);
  free(r->final_url);
  free(r->body);
  free(r->docker_content_digest);
  memset(r, 0, sizeof *r);
}

/* ---- URL policy ---- */

static bool is_loopback_host(const char *host) {
  if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0) return true;
  /* dotted-quad IPv4 with 127 as its first number */
  unsigned a, b, c, d;
  char tail;
  if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4) return false;
  return a == 127 && b < 256 && c < 256 && d < 256;
}

int mlxr_transfer_check_url(const char *url, bool insecure, char *err, size_t err_len) {
  char q[256];
  if (!url || !*url) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "empty URL");
  CURLU *u = curl_url();
  if (!u) return mlxr_errf(err, err_len, MLXR_ERR_NOMEM, "out of memory");
  char *scheme = NULL, *host = NULL, *user = NULL;
  int rc = MLXR_OK;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID, "invalid URL \"%s\"", mlxr_registry_quote(url, q, sizeof q));
    goto out;
  }
  if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_UNSUPPORTED, "URL \"%s\": only http and https are allowed",
                   mlxr_registry_quote(url, q, sizeof q));
    goto out;
  }
  if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID, "URL \"%s\" has no host", mlxr_registry_quote(url, q, sizeof q));
    goto out;
  }
  if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID, "URL \"%s\": credentials in a URL are not allowed",
                   mlxr_registry_quote(url, q, sizeof q));
    goto out;
  }
  if (strcasecmp(scheme, "http") == 0 && !insecure && !is_loopback_host(host)) {
    rc = mlxr_errf(err, err_len, MLXR_ERR_INVALID,
                   "URL \"%s\": plain http is only allowed to a loopback host unless insecure is set",
                   mlxr_registry_quote(url, q, sizeof q));
  }
out:
  curl_free(scheme);
  curl_free(host);
  curl_free(user);
  curl_url_cleanup(u);
  return rc;
}

/* base + possibly relative ref -> absolute URL (malloc'ed), NULL on failure. */
static char *resolve_url(const char *base, const char *ref) {
  CURLU *u = curl_url();
  if (!u) return NULL;
  char *abs = NULL, *out = NULL;
  if (curl_url_set(u, CURLUPART_URL, base, 0) == CURLUE_OK && curl_url_set(u, CURLUPART_URL, ref, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_URL, &abs, 0) == CURLUE_OK) {
    out = strdup(abs);
  }
  curl_free(abs);
  curl_url_cleanup(u);
  return out;
}

/* ---- one hop ---- */

typedef struct hop {
  const mlxr_transfer_request *req;
  mlxr_transfer_response *resp;
  bool discard;          /* a redirect we will follow: drop its body */
  int status;            /* of the current header block */
  char *location;        /* raw Location header of the current block */
  int64_t body_read;     /* request-body bytes handed to libcurl */
  int sink_rc;           /* the sink's code when it stopped us */
  bool overflow;         /* the buffered body went over body_max */
  char *err;
  size_t err_len;
} hop;

static void set_str(char **dst, const char *s, size_t n) {
  free(*dst);
  *dst = malloc(n + 1);
  if (*dst) {
    memcpy(*dst, s, n);
    (*dst)[n] = '\0';
  }
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  hop *hp = ud;
  const size_t n = size * nmemb;
  if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a new header block */
    free(hp->location);
    hp->location = NULL;
    hp->resp->range_start = hp->resp->range_total = -1;
    free(hp->resp->docker_content_digest);
    hp->resp->docker_content_digest = NULL;
    long code = 0;
    const char *sp = memchr(data, ' ', n);
    if (sp) code = strtol(sp + 1, NULL, 10);
    hp->status = (int)code;
    return n;
  }
  const char *colon = memchr(data, ':', n);
  if (!colon) return n;
  const size_t klen = (size_t)(colon - data);
  const char *v = colon + 1, *end = data + n;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
  const size_t vlen = (size_t)(end - v);
  if (klen == 8 && strncasecmp(data, "Location", 8) == 0) {
    set_str(&hp->location, v, vlen);
  } else if (klen == 21 && strncasecmp(data, "Docker-Content-Digest", 21) == 0) {
    set_str(&hp->resp->docker_content_digest, v, vlen);
  } else if (klen == 13 && strncasecmp(data, "Content-Range", 13) == 0) {
    char buf[128];
    if (vlen < sizeof buf) {
      memcpy(buf, v, vlen);
      buf[vlen] = '\0';
      long long a, b, total;
      if (sscanf(buf, "bytes %lld-%lld/%lld", &a, &b, &total) == 3) {
        hp->resp->range_start = a;
        hp->resp->range_total = total;
      } else if (sscanf(buf, "bytes %lld-%lld/*", &a, &b) == 2) {
        hp->resp->range_start = a;
      }
    }
  }
  return n;
}

static bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  hop *hp = ud;
  const size_t n = size * nmemb;
  if (hp->discard || n == 0) return n;
  mlxr_transfer_response *r = hp->resp;
  const mlxr_transfer_request *req = hp->req;
  if (req->sink) {
    int rc = req->sink(req->sink_ctx, hp->status, data, n);
    if (rc != 0) {
      hp->sink_rc = rc < 0 ? rc : MLXR_ERR_IO;
      return 0; /* CURLE_WRITE_ERROR */
    }
  } else if (req->body_max > 0) {
    if (n > req->body_max - r->body_len) {
      hp->overflow = true;
      return 0;
    }
    char *nb = realloc(r->body, r->body_len + n + 1);
    if (!nb) {
      hp->sink_rc = MLXR_ERR_NOMEM;
      return 0;
    }
    r->body = nb;
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
  }
  r->bytes_received += (int64_t)n;
  return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud) {
  hop *hp = ud;
  const mlxr_transfer_request *req = hp->req;
  size_t want = size * nitems;
  const int64_t left = req->body_len - hp->body_read;
  if (left <= 0) return 0;
  if ((int64_t)want > left) want = (size_t)left;
  if (req->body) {
    memcpy(buf, (const char *)req->body + hp->body_read, want);
  } else {
    ssize_t r;
    do {
      r = pread(req->body_fd, buf, want, (off_t)(req->body_offset + hp->body_read));
    } while (r < 0 && errno == EINTR);
    if (r <= 0) return CURL_READFUNC_ABORT;
    want = (size_t)r;
  }
  hp->body_read += (int64_t)want;
  return want;
}

static int curl_fail(hop *hp, CURLcode c, const char *url, const char *errbuf) {
  char q[256];
  if (hp->sink_rc) return hp->sink_rc; /* the sink wrote its own message */
  if (hp->overflow) {
    return mlxr_errf(hp->err, hp->err_len, MLXR_ERR_RANGE, "response from %s is longer than %zu bytes",
                     mlxr_registry_quote(url, q, sizeof q), hp->req->body_max);
  }
  const char *what = c == CURLE_OPERATION_TIMEDOUT ? "timed out or stalled" : "failed";
  return mlxr_errf(hp->err, hp->err_len, MLXR_ERR_IO, "request to %s %s: %s", mlxr_registry_quote(url, q, sizeof q),
                   what, errbuf[0] ? errbuf : curl_easy_strerror(c));
}

/* Set by the body callback's first call: is this a redirect we will follow? Checked there because
 * the status is only known once headers arrived. */
static size_t on_body_hop(char *data, size_t size, size_t nmemb, void *ud) {
  hop *hp = ud;
  hp->discard = hp->req->follow_redirects && is_redirect(hp->status) && hp->location != NULL;
  return on_body(data, size, nmemb, ud);
}

static bool add_header(struct curl_slist **list, const char *line) {
  struct curl_slist *n = curl_slist_append(*list, line);
  if (n) *list = n;
  return n != NULL;
}

/* Performs one hop at url with method. On a followable redirect sets *next (malloc'ed). */
static int do_hop(const mlxr_transfer_params *p, hop *hp, const char *url, const char *method, int total_left_s,
                  char **next) {
  const mlxr_transfer_request *req = hp->req;
  mlxr_transfer_response *resp = hp->resp;
  *next = NULL;
  CURL *h = curl_easy_init();
  if (!h) return mlxr_errf(hp->err, hp->err_len, MLXR_ERR_NOMEM, "cannot start a curl handle");
  hp->status = 0;
  free(hp->location); /* a hop that gets no header must not inherit the last hop's Location */
  hp->location = NULL;
  hp->body_read = 0;
  hp->discard = false;
  char errbuf[CURL_ERROR_SIZE] = "";
  struct curl_slist *headers = NULL;
  char line[256];
  bool ok = true;
  if (req->accept) {
    snprintf(line, sizeof line, "Accept: %s", req->accept);
    ok = add_header(&headers, line);
  }
  if (ok && req->content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", req->content_type);
    ok = add_header(&headers, line);
  }
  if (ok) ok = add_header(&headers, "Expect:"); /* no 100-continue round trip */
  if (!ok) {
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return mlxr_errf(hp->err, hp->err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_timeout_ms);
  if (p->stall_timeout_s > 0) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)p->stall_timeout_s);
  }
  if (total_left_s > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)total_left_s);
  curl_easy_setopt(h, CURLOPT_USERAGENT, p->user_agent ? p->user_agent : "mlxr");
  curl_easy_setopt(h, CURLOPT_PROXY, p->proxy ? p->proxy : ""); /* "": no proxy, whatever the environment says */
  if (p->no_proxy) curl_easy_setopt(h, CURLOPT_NOPROXY, p->no_proxy);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, hp);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body_hop);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, hp);
  if (req->range_start > 0) {
    char range[32];
    snprintf(range, sizeof range, "%lld-", (long long)req->range_start);
    curl_easy_setopt(h, CURLOPT_RANGE, range);
  }
  const bool has_body = req->body_len > 0 && (req->body || req->body_fd >= 0);
  const int64_t body_len = has_body ? req->body_len : 0;
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, hp);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
  } else if (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, hp);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
    if (strcmp(method, "PATCH") == 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PATCH");
  } else if (strcmp(method, "GET") != 0) {
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return mlxr_errf(hp->err, hp->err_len, MLXR_ERR_INVALID, "unsupported HTTP method %s", method);
  }
  CURLcode c = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  resp->status = (int)code;
  curl_off_t cl = -1;
  if (curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) != CURLE_OK) cl = -1;
  resp->content_length = cl;
  int rc = MLXR_OK;
  if (c != CURLE_OK) rc = curl_fail(hp, c, url, errbuf);
  free(resp->final_url);
  resp->final_url = strdup(url);
  free(resp->location);
  resp->location = hp->location ? resolve_url(url, hp->location) : NULL;
  if (rc == MLXR_OK && req->follow_redirects && is_redirect(resp->status) && resp->location) {
    *next = strdup(resp->location);
    if (!*next) rc = mlxr_errf(hp->err, hp->err_len, MLXR_ERR_NOMEM, "out of memory");
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  return rc;
}

int mlxr_transfer_do(const mlxr_transfer_params *params, const mlxr_transfer_request *req,
                     mlxr_transfer_response *resp, char *err, size_t err_len) {
  memset(resp, 0, sizeof *resp);
  resp->content_length = resp->range_start = resp->range_total = -1;
  const mlxr_transfer_params p = params ? *params : mlxr_transfer_default_params();
  const char *method = req->method ? req->method : "GET";
  char *url = req->url ? strdup(req->url) : NULL;
  if (!url) return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "no URL");
  hop hp = {.req = req, .resp = resp, .err = err, .err_len = err_len};
  const time_t start = time(NULL);
  int rc = MLXR_OK;
  for (int n = 0;; n++) {
    if ((rc = mlxr_transfer_check_url(url, p.insecure, err, err_len)) < 0) break;
    int left = 0;
    if (p.total_timeout_s > 0) {
      left = p.total_timeout_s - (int)(time(NULL) - start);
      if (left <= 0) {
        rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "request timed out after %d s", p.total_timeout_s);
        break;
      }
    }
    /* bodies of followed redirects are dropped, and the counters restart for each hop */
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->bytes_received = 0;
    char *next = NULL;
    rc = do_hop(&p, &hp, url, method, left, &next);
    if (rc < 0 || !next) break;
    if (n + 1 > p.max_redirects) {
      free(next);
      rc = mlxr_errf(err, err_len, MLXR_ERR_IO, "more than %d redirects", p.max_redirects);
      break;
    }
    free(url);
    url = next;
    if (resp->status == 303) method = "GET";
  }
  free(hp.location);
  free(url);
  return rc;
}
