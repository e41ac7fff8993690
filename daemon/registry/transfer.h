/*
 * transfer.h: one HTTP request of the registry client (pull, push), over libcurl, with the
 * registry's safety rules applied to every URL it touches, redirects included.
 *
 * URL policy (mlxr_transfer_check_url): only http:// and https://; plain http only to a loopback
 * host (localhost, 127.0.0.0/8, ::1) unless the caller passed insecure (Ollama's --insecure); no
 * user:password in the URL. Redirects (301, 302, 303, 307, 308) are followed by this code, not by
 * libcurl, at most max_redirects times, and each Location is checked against the same policy before
 * it is requested, so a registry on https cannot send us to plain http, nor to file:// or any
 * other scheme (libcurl is also limited to http and https). A 303 turns the method into GET; the
 * others keep it. No credentials are sent anywhere (anonymous pulls only, for now). No environment
 * variable is read here: libcurl's own use of http_proxy and friends is switched off, and a proxy
 * is used only when the caller passes one (main() reads HTTPS_PROXY / NO_PROXY, as Ollama honours).
 *
 * Timeouts: connect_timeout_ms bounds each connection; a transfer that moves no byte for
 * stall_timeout_s fails (libcurl's low-speed limit), so a hung server cannot hold a pull forever;
 * total_timeout_s (0: none) bounds a whole request, for small ones such as manifests.
 *
 * Bodies: a response body goes either to a sink callback (streamed: blobs) or into a buffer of at
 * most body_max bytes (manifests, small blobs, error messages); a longer body fails the request
 * with MLXR_ERR_RANGE. A request body comes from memory or from a file descriptor range
 * (pread, so the caller's file offset is untouched).
 *
 * Ownership and threads: nothing is shared between calls; each call makes and frees its own curl
 * handle, so any number of threads may make requests at once. libcurl's global initialisation is
 * done lazily by curl_easy_init (thread-safe in libcurl >= 7.84); a program may call
 * curl_global_init() in main() first. The response's strings are owned by the response and freed by
 * mlxr_transfer_response_clear.
 */
#ifndef MLXR_REGISTRY_TRANSFER_H
#define MLXR_REGISTRY_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mlxr_transfer_params {
  bool insecure;           /* allow plain http to non-loopback hosts */
  int connect_timeout_ms;  /* per connection (default 10000) */
  int stall_timeout_s;     /* no byte for this long fails the transfer (default 30) */
  int total_timeout_s;     /* whole request, redirects included; 0: none (default 0) */
  int max_redirects;       /* default 10 */
  const char *user_agent;  /* default "mlxr" */
  const char *proxy;       /* e.g. "http://proxy:3128"; NULL: none (libcurl's reading of http_proxy and
                              friends is switched off: main() reads HTTPS_PROXY and passes it here) */
  const char *no_proxy;    /* hosts that bypass the proxy, as NO_PROXY ("localhost,.internal"); NULL */
} mlxr_transfer_params;

mlxr_transfer_params mlxr_transfer_default_params(void);

/* Receives each piece of the final response's body (never of a redirect's) as it arrives.
 * status is the final HTTP status; a non-zero return stops the transfer (the request then fails
 * with the sink's code, which must be negative, and its message left in err by the sink). */
typedef int (*mlxr_transfer_sink)(void *ctx, int status, const void *data, size_t n);

typedef struct mlxr_transfer_request {
  const char *method;       /* "GET" (default when NULL), "HEAD", "POST", "PUT", "PATCH" */
  const char *url;
  const char *accept;       /* Accept header, or NULL */
  const char *content_type; /* Content-Type of the request body, or NULL */
  int64_t range_start;      /* > 0: "Range: bytes=<range_start>-"; else none */
  bool follow_redirects;    /* follow 3xx (checked by the URL policy) */
  /* request body: from memory, or from fd at [body_offset, body_offset + body_len) */
  const void *body;
  int body_fd;              /* -1 (or 0 with body_len 0): none */
  int64_t body_offset;
  int64_t body_len;         /* bytes of the body (memory or fd); 0: empty */
  /* response body: to sink (when set) or into the response's buffer (up to body_max bytes) */
  mlxr_transfer_sink sink;
  void *sink_ctx;
  size_t body_max;          /* for the buffer; 0: the body is dropped */
} mlxr_transfer_request;

typedef struct mlxr_transfer_response {
  int status;               /* the final HTTP status (after redirects) */
  char *location;           /* the final response's Location, absolute; NULL if none */
  char *final_url;          /* the URL that gave the final response (malloc'ed) */
  int64_t content_length;   /* -1 when unknown */
  int64_t range_start;      /* a 206's Content-Range start; -1 when none */
  int64_t range_total;      /* a 206's Content-Range total; -1 when "*" or none */
  char *body;               /* the buffered body, NUL-terminated (NULL with a sink or body_max 0) */
  size_t body_len;
  int64_t bytes_received;   /* body bytes of the final response (sink or buffer) */
  char *docker_content_digest; /* the Docker-Content-Digest header, or NULL */
} mlxr_transfer_response;

void mlxr_transfer_response_clear(mlxr_transfer_response *r);

/* Is url allowed by the policy above? MLXR_OK, or MLXR_ERR_INVALID / MLXR_ERR_UNSUPPORTED with a
 * message saying why. */
int mlxr_transfer_check_url(const char *url, bool insecure, char *err, size_t err_len);

/* Make the request. MLXR_OK whenever an HTTP response arrived, whatever its status (the caller
 * judges it); MLXR_ERR_IO for a failed connection, a dropped or stalled transfer (err says which;
 * bytes already handed to the sink stay delivered, resp->bytes_received counts them);
 * MLXR_ERR_RANGE for a buffered body over body_max; the sink's code when it stopped the transfer;
 * MLXR_ERR_INVALID for a URL the policy refuses (the original or a redirect's). *resp is always
 * filled as far as it got and must be cleared by the caller. */
int mlxr_transfer_do(const mlxr_transfer_params *params, const mlxr_transfer_request *req,
                     mlxr_transfer_response *resp, char *err, size_t err_len);

#endif
