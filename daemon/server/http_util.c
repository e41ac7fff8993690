/*
 * http_util.c: what every route needs: byte buffers and clocks, responses with the common headers
 * (CORS), errors in each API's own format, strict readers for JSON request fields, generation sets
 * and streamed responses.
 *
 * Generation sets: a request with n choices submits n scheduler requests whose callbacks (on the
 * scheduler's worker thread) copy each event into one queue under a mutex and signal a condvar;
 * the connection's thread pops events, waiting in 100 ms slices so that it notices a client that
 * has gone (FIN or reset on the socket) and cancels the generation at once.
 *
 * Streamed responses: libmicrohttpd pulls bytes through a content-reader callback on the
 * connection's thread (thread-per-connection mode, so the callback may block); the reader pops
 * events, lets the route's formatter turn them into SSE or NDJSON bytes, and hands them out.
 * Without a Content-Length, HTTP/1.1 responses go out chunked. When MHD frees the response (end of
 * stream or a failed write), the generation set is cancelled and freed.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "core/common/status.h"
#include "daemon/server/server_impl.h"

/* ---------------- small things ---------------- */

void mlxr_buf_add(mlxr_buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 512;
    while (nc < b->len + n + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
  if (n) memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void mlxr_buf_adds(mlxr_buf *b, const char *s) { mlxr_buf_add(b, s, strlen(s)); }

void mlxr_buf_free(mlxr_buf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

int64_t mlxr_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mlxr_wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void mlxr_rfc3339(int64_t wall_ns, char *out, size_t cap) {
  time_t sec = (time_t)(wall_ns / 1000000000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, cap, "%s.%09ldZ", base, (long)(wall_ns % 1000000000));
}

void mlxr_random_id(char *out, size_t n) {
  static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char raw[64];
  if (n > sizeof raw) n = sizeof raw;
  if (getrandom(raw, n, 0) != (ssize_t)n) {
    uint64_t x = (uint64_t)mlxr_now_ns() ^ (uint64_t)(uintptr_t)out;
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      raw[i] = (unsigned char)x;
    }
  }
  for (size_t i = 0; i < n; i++) out[i] = alpha[raw[i] % (sizeof alpha - 1)];
  out[n] = '\0';
}

bool mlxr_utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t k;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) k = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) k = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) k = 3, cp = c & 0x07;
    else return false;
    if (i + k >= n) return false;
    for (size_t j = 1; j <= k; j++) {
      if (i + j >= n || (p[i + j] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + j] & 0x3F);
    }
    if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += k + 1;
  }
  return true;
}

/* ---------------- responses ---------------- */

void mlxr_http_add_common_headers(mlxr_req *r, struct MHD_Response *resp) {
  MHD_add_response_header(resp, "Server", "mlxrd/" MLXR_SERVER_VERSION);
  if (r->origin) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
    MHD_add_response_header(resp, "Vary", "Origin");
  }
}

enum MHD_Result mlxr_http_send(mlxr_req *r, int status, const char *ctype, const char *body,
                               size_t len) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
  mlxr_http_add_common_headers(r, resp);
  if (r->retry_after_s > 0) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", r->retry_after_s);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  r->status = status;
  enum MHD_Result res = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return res;
}

/* cJSON prints a number with 15 significant digits whenever that reads back within a relative
 * DBL_EPSILON, so 9007199254740991 (every Zod z.int() bound) goes out as 9.00719925474099e+15 =
 * ...990, and a schema printed for the grammar would lose its exact bound. Here every finite number
 * is written as the shortest of %.15g / %.16g / %.17g that reads back exactly (0.8 stays "0.8",
 * 2^53 - 1 comes out whole), as a raw node of a copy of the tree. */
static void exact_numbers(cJSON *v) {
  for (; v; v = v->next) {
    if (v->child) exact_numbers(v->child);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) continue;
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(buf, sizeof buf, "%.*g", prec, v->valuedouble);
      if (strtod(buf, NULL) == v->valuedouble) break;
    }
    char *text = strdup(buf);
    if (!text) continue; /* cJSON's own spelling, then */
    v->type = cJSON_Raw;
    v->valuestring = text;
  }
}

char *mlxr_json_print(const cJSON *v) {
  if (!v) return NULL;
  cJSON *copy = cJSON_Duplicate(v, true);
  if (!copy) return NULL;
  exact_numbers(copy);
  char *s = cJSON_PrintUnformatted(copy);
  cJSON_Delete(copy);
  return s;
}

enum MHD_Result mlxr_http_send_json(mlxr_req *r, int status, cJSON *obj) {
  char *s = obj ? mlxr_json_print(obj) : NULL;
  cJSON_Delete(obj);
  if (!s) {
    static const char oom[] = "{\"error\":\"out of memory\"}";
    return mlxr_http_send(r, 500, "application/json", oom, sizeof oom - 1);
  }
  enum MHD_Result res = mlxr_http_send(r, status, "application/json", s, strlen(s));
  free(s);
  return res;
}

static const char *openai_type(int status) {
  switch (status) {
  case 400: case 404: case 405: case 413: case 422: return "invalid_request_error";
  case 401: return "authentication_error";
  case 403: return "permission_error";
  case 429: return "rate_limit_error";
  case 501: return "not_implemented_error";
  case 503: return "unavailable_error";
  default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

static const char *anthropic_type(int status) {
  switch (status) {
  case 401: return "authentication_error";
  case 403: return "permission_error";
  case 404: return "not_found_error";
  case 413: return "request_too_large";
  case 429: return "rate_limit_error";
  case 503: case 529: return "overloaded_error";
  default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

enum MHD_Result mlxr_http_error(mlxr_req *r, int status, const char *type, const char *code,
                                const char *param, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cJSON *o = cJSON_CreateObject();
  if (r->api == MLXR_API_OPENAI) {
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type ? type : openai_type(status));
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
  } else if (r->api == MLXR_API_ANTHROPIC) {
    cJSON_AddStringToObject(o, "type", "error");
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "type", anthropic_type(status));
    cJSON_AddStringToObject(e, "message", msg);
  } else {
    cJSON_AddStringToObject(o, "error", msg);
  }
  return mlxr_http_send_json(r, status, o);
}

cJSON *mlxr_json_parse_body(const char *body, size_t len, char *err, size_t err_len) {
  if (len == 0) {
    snprintf(err, err_len, "the request body is empty (JSON expected)");
    return NULL;
  }
  if (!mlxr_utf8_valid(body, len)) {
    snprintf(err, err_len, "the request body is not valid UTF-8");
    return NULL;
  }
  const char *end = NULL;
  cJSON *json = cJSON_ParseWithLengthOpts(body, len, &end, false);
  if (json) {
    /* only whitespace may follow the value */
    const char *stop = body + len;
    for (const char *q = end; q && q < stop; q++) {
      if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t') {
        cJSON_Delete(json);
        json = NULL;
        break;
      }
    }
  }
  if (!json) {
    size_t off = end && end >= body ? (size_t)(end - body) : 0;
    snprintf(err, err_len, "malformed JSON in the request body (near byte %zu)", off);
    return NULL;
  }
  if (!cJSON_IsObject(json)) {
    cJSON_Delete(json);
    snprintf(err, err_len, "the request body must be a JSON object");
    return NULL;
  }
  return json;
}

bool mlxr_http_parse_body(mlxr_req *r, enum MHD_Result *result) {
  char err[128];
  r->json = mlxr_json_parse_body(r->body.p, r->body.len, err, sizeof err);
  if (!r->json) {
    *result = mlxr_http_error(r, 400, NULL, NULL, NULL, "%s", err);
    return false;
  }
  return true;
}

bool mlxr_http_peer_alive(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (!ci) return true;
  int fd = ci->connect_fd;
  struct pollfd pfd = {.fd = fd, .events = POLLIN | POLLRDHUP};
  if (poll(&pfd, 1, 0) <= 0) return true;
  if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
  if (pfd.revents & (POLLIN | POLLRDHUP)) {
    char ch;
    ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
  }
  return true;
}

/* ---------------- field readers ---------------- */

static bool fe_set(mlxr_field_err *fe, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fe_set(mlxr_field_err *fe, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(fe->msg, sizeof fe->msg, fmt, ap);
  va_end(ap);
  snprintf(fe->param, sizeof fe->param, "%s", key);
  return false;
}

bool mlxr_get_num(const cJSON *o, const char *key, double lo, double hi, double *out,
                  mlxr_field_err *fe) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return true;
  if (!cJSON_IsNumber(v)) return fe_set(fe, key, "'%s' must be a number", key);
  double d = v->valuedouble;
  if (!(d >= lo && d <= hi)) return fe_set(fe, key, "'%s' must be between %g and %g", key, lo, hi);
  *out = d;
  return true;
}

bool mlxr_get_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out,
                  mlxr_field_err *fe) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return true;
  if (!cJSON_IsNumber(v)) return fe_set(fe, key, "'%s' must be an integer", key);
  double d = v->valuedouble;
  if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d)
    return fe_set(fe, key, "'%s' must be an integer between %lld and %lld", key, (long long)lo, (long long)hi);
  int64_t i = (int64_t)d;
  if (i < lo || i > hi)
    return fe_set(fe, key, "'%s' must be between %lld and %lld", key, (long long)lo, (long long)hi);
  *out = i;
  return true;
}

bool mlxr_get_bool(const cJSON *o, const char *key, bool *out, mlxr_field_err *fe) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return true;
  if (!cJSON_IsBool(v)) return fe_set(fe, key, "'%s' must be a boolean", key);
  *out = cJSON_IsTrue(v);
  return true;
}

bool mlxr_get_str(const cJSON *o, const char *key, const char **out, mlxr_field_err *fe) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return true;
  if (!cJSON_IsString(v)) return fe_set(fe, key, "'%s' must be a string", key);
  *out = v->valuestring;
  return true;
}

bool mlxr_get_stop(const cJSON *o, const char *key, int max, const char **out, int *n,
                   mlxr_field_err *fe) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v)) return true;
  if (cJSON_IsString(v)) {
    if (v->valuestring[0]) out[(*n)++] = v->valuestring;
    return true;
  }
  if (!cJSON_IsArray(v)) return fe_set(fe, key, "'%s' must be a string or an array of strings", key);
  if (cJSON_GetArraySize(v) > max) return fe_set(fe, key, "'%s' may hold at most %d strings", key, max);
  const cJSON *s;
  cJSON_ArrayForEach(s, v) {
    if (!cJSON_IsString(s)) return fe_set(fe, key, "'%s' must be a string or an array of strings", key);
    if (s->valuestring[0]) out[(*n)++] = s->valuestring;
  }
  return true;
}

/* ---------------- generation sets ---------------- */

void mlxr_ev_free(mlxr_ev *e) {
  if (!e) return;
  free(e->text);
  free(e->message);
  free(e->stop_string);
  free(e->schema_error);
  free(e);
}

static void genset_callback(void *user, const mlxr_gen_event *ev) {
  mlxr_genset_cb *cb = user;
  mlxr_genset *gs = cb->gs;
  mlxr_ev *e = calloc(1, sizeof(*e));
  if (e) {
    e->kind = ev->kind;
    e->choice = cb->choice;
    e->t_ns = mlxr_now_ns();
    if (ev->text_len) {
      e->text = malloc(ev->text_len + 1);
      if (e->text) {
        memcpy(e->text, ev->text, ev->text_len);
        e->text[ev->text_len] = '\0';
        e->text_len = ev->text_len;
      }
    }
    e->token = ev->token;
    e->logprob = ev->logprob;
    e->n_top = ev->n_top > MLXR_MAX_TOP_LOGPROBS ? MLXR_MAX_TOP_LOGPROBS : (ev->n_top < 0 ? 0 : ev->n_top);
    if (e->n_top && ev->top) memcpy(e->top, ev->top, (size_t)e->n_top * sizeof(e->top[0]));
    e->finish = ev->finish_reason;
    e->prompt_tokens = ev->prompt_tokens;
    e->cached_tokens = ev->cached_tokens;
    e->completion_tokens = ev->completion_tokens;
    e->queue_ns = ev->queue_ns;
    e->prompt_ns = ev->prompt_ns;
    e->gen_ns = ev->gen_ns;
    if (ev->message) e->message = strdup(ev->message);
    if (ev->stop_string) e->stop_string = strdup(ev->stop_string);
    if (ev->schema_error) e->schema_error = strdup(ev->schema_error);
  }
  pthread_mutex_lock(&gs->lock);
  if (e) {
    if (gs->tail) gs->tail->next = e;
    else gs->head = e;
    gs->tail = e;
  }
  if (ev->kind != MLXR_GEN_TOKEN) gs->n_open--;
  pthread_cond_broadcast(&gs->cond);
  pthread_mutex_unlock(&gs->lock);
}

int mlxr_genset_init(mlxr_genset *gs, int cap) {
  memset(gs, 0, sizeof(*gs));
  gs->h = calloc((size_t)cap, sizeof(*gs->h));
  gs->cb = calloc((size_t)cap, sizeof(*gs->cb));
  if (!gs->h || !gs->cb) {
    free(gs->h);
    free(gs->cb);
    return MLXR_ERR_NOMEM;
  }
  gs->cap = cap;
  pthread_mutex_init(&gs->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&gs->cond, &ca);
  pthread_condattr_destroy(&ca);
  return 0;
}

int mlxr_genset_add(mlxr_genset *gs, mlxr_sched *s, const int32_t *prompt, int32_t n_prompt,
                    const mlxr_gen_params *p, char *err, size_t err_len) {
  if (gs->n >= gs->cap) return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "too many choices");
  int i = gs->n;
  gs->cb[i].gs = gs;
  gs->cb[i].choice = i;
  pthread_mutex_lock(&gs->lock);
  gs->n_open++;
  pthread_mutex_unlock(&gs->lock);
  int rc = mlxr_sched_submit(s, prompt, n_prompt, p, genset_callback, &gs->cb[i], &gs->h[i], err, err_len);
  if (rc < 0) {
    pthread_mutex_lock(&gs->lock);
    gs->n_open--;
    pthread_mutex_unlock(&gs->lock);
    gs->h[i] = NULL;
    return rc;
  }
  gs->n++;
  return 0;
}

void mlxr_genset_cancel(mlxr_genset *gs) {
  for (int i = 0; i < gs->n; i++)
    if (gs->h[i]) mlxr_sched_cancel(gs->h[i]);
}

mlxr_ev *mlxr_genset_next(mlxr_genset *gs, struct MHD_Connection *c, bool *gone) {
  *gone = false;
  pthread_mutex_lock(&gs->lock);
  for (;;) {
    if (gs->head) {
      mlxr_ev *e = gs->head;
      gs->head = e->next;
      if (!gs->head) gs->tail = NULL;
      e->next = NULL;
      pthread_mutex_unlock(&gs->lock);
      return e;
    }
    if (gs->n_open <= 0) break;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 100 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    int rc = pthread_cond_timedwait(&gs->cond, &gs->lock, &ts);
    if (rc == ETIMEDOUT && c && !gs->head) {
      pthread_mutex_unlock(&gs->lock);
      bool alive = mlxr_http_peer_alive(c);
      pthread_mutex_lock(&gs->lock);
      if (!alive) {
        pthread_mutex_unlock(&gs->lock);
        mlxr_genset_cancel(gs);
        *gone = true;
        return NULL;
      }
    }
  }
  pthread_mutex_unlock(&gs->lock);
  return NULL;
}

void mlxr_genset_free(mlxr_genset *gs) {
  if (!gs->h) return;
  for (int i = 0; i < gs->n; i++)
    if (gs->h[i]) mlxr_sched_release(gs->h[i]);
  mlxr_ev *e = gs->head;
  while (e) {
    mlxr_ev *n = e->next;
    mlxr_ev_free(e);
    e = n;
  }
  free(gs->h);
  free(gs->cb);
  pthread_mutex_destroy(&gs->lock);
  pthread_cond_destroy(&gs->cond);
  memset(gs, 0, sizeof(*gs));
}

/* ---------------- streamed responses ---------------- */

void mlxr_sse_event(mlxr_buf *out, const char *name, cJSON *obj) {
  char *s = obj ? mlxr_json_print(obj) : NULL;
  cJSON_Delete(obj);
  if (!s) {
    out->oom = true;
    return;
  }
  if (name) {
    mlxr_buf_adds(out, "event: ");
    mlxr_buf_adds(out, name);
    mlxr_buf_adds(out, "\n");
  }
  mlxr_buf_adds(out, "data: ");
  mlxr_buf_adds(out, s);
  mlxr_buf_adds(out, "\n\n");
  free(s);
}

typedef struct stream_state {
  mlxr_server *srv;
  struct MHD_Connection *conn;
  mlxr_genset *gs;
  mlxr_stream_format fmt;
  void *ctx;
  void (*ctx_free)(void *);
  mlxr_sched *sched;
  mlxr_model_entry *model;
  mlxr_buf out;
  size_t off;
  bool finished;
  bool gone;
  char route[40];
  char method[8];
  int64_t t_start;
} stream_state;

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  stream_state *st = cls;
  while (st->off >= st->out.len && !st->finished) {
    st->out.len = 0;
    st->off = 0;
    bool gone = false;
    mlxr_ev *e = mlxr_genset_next(st->gs, st->conn, &gone);
    if (gone) {
      st->gone = true;
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    st->fmt(st->ctx, e, &st->out);
    if (!e) st->finished = true;
    mlxr_ev_free(e);
    if (st->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  if (st->off < st->out.len) {
    size_t n = st->out.len - st->off;
    if (n > max) n = max;
    memcpy(buf, st->out.p + st->off, n);
    st->off += n;
    return (ssize_t)n;
  }
  return MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls) {
  stream_state *st = cls;
  if (!st->finished) {
    mlxr_genset_cancel(st->gs);
    mlxr_metrics_tokens(&st->srv->metrics, 0, 0, true);
  }
  mlxr_genset_free(st->gs);
  free(st->gs);
  if (st->ctx_free) st->ctx_free(st->ctx);
  if (st->sched) mlxr_models_release(st->model);
  double secs = (double)(mlxr_now_ns() - st->t_start) / 1e9;
  mlxr_metrics_observe(&st->srv->metrics, &st->srv->metrics.e2e, secs);
  mlxr_metrics_request(&st->srv->metrics, st->method, st->route, st->finished ? 200 : 499);
  pthread_mutex_lock(&st->srv->metrics.lock);
  st->srv->metrics.active_streams--;
  pthread_mutex_unlock(&st->srv->metrics.lock);
  mlxr_buf_free(&st->out);
  free(st);
}

enum MHD_Result mlxr_http_stream(mlxr_req *r, const char *ctype, mlxr_genset *gs,
                                 mlxr_stream_format fmt, void *ctx, void (*ctx_free)(void *),
                                 mlxr_sched *sched_for_release, mlxr_model_entry *m) {
  stream_state *st = calloc(1, sizeof(*st));
  if (!st) {
    mlxr_genset_cancel(gs);
    mlxr_genset_free(gs);
    free(gs);
    if (ctx_free) ctx_free(ctx);
    if (sched_for_release) mlxr_models_release(m);
    return mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
  }
  st->srv = r->srv;
  st->conn = r->conn;
  st->gs = gs;
  st->fmt = fmt;
  st->ctx = ctx;
  st->ctx_free = ctx_free;
  st->sched = sched_for_release;
  st->model = m;
  st->t_start = r->t_start;
  snprintf(st->route, sizeof st->route, "%s", r->route ? r->route : "other");
  snprintf(st->method, sizeof st->method, "%s", r->method);
  pthread_mutex_lock(&r->srv->metrics.lock);
  r->srv->metrics.active_streams++;
  pthread_mutex_unlock(&r->srv->metrics.lock);
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, st, stream_free);
  if (!resp) {
    stream_free(st);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", ctype);
  MHD_add_response_header(resp, "Cache-Control", "no-cache");
  mlxr_http_add_common_headers(r, resp);
  r->status = 200;
  r->streaming = true;
  enum MHD_Result res = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  return res;
}
