/*
 * server.c: mlxrd's HTTP front: two libmicrohttpd daemons (loopback TCP and a Unix domain socket
 * of mode 0600) in thread-per-connection mode, sharing one request handler.
 *
 * A request's life: MHD calls on_request first with only the headers (we allocate the mlxr_req,
 * check Host, Origin, the API key and the declared body size: refuse_body_on_headers), then with
 * pieces of the body (accumulated up to the cap; past it the rest is read and dropped), then once
 * more with no data: dispatch to the routes (a body over the cap gets its 413 there). MHD's
 * completion notice records the request in the metrics (streamed responses record their own at
 * the stream's end) and frees it.
 *
 * Why a body over the cap is read before the 413: answering on the headers makes MHD close the
 * connection with the body still arriving, and closing a socket with unread data makes the kernel
 * send a reset, so a client still sending gets EPIPE or ECONNRESET instead of the 413 (nothing
 * like lingering close is available). So the body is read and thrown away, up to twice the cap
 * (drain_cap), and the 413 goes out with the connection intact. A declared body past that, or one
 * from a client that sent Expect: 100-continue (it waits for the go-ahead, so it sends nothing
 * before the 413 and the 413 spares it the upload), is refused on the headers; a chunked body
 * past the drain cap is cut off (connection closed).
 *
 * Readiness: once every listener is up (models are loaded before), the TCP port actually bound
 * (the kernel's choice under --port 0) is printed on stdout as "mlxrd: listening on HOST:PORT" and
 * written to --port-file, so whoever started the daemon can connect without guessing a port.
 *
 * mlxr_server_main() is the program: configuration layers, models, listeners, then it waits for
 * SIGINT/SIGTERM with sigwait (the signals are blocked in every thread, so no handler and no
 * global flag are needed), and shuts everything down in order.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/common/status.h"
#include "daemon/server/server_impl.h"

typedef struct listener {
  mlxr_server *srv;
  bool via_unix;
} listener;

static enum MHD_Result preflight(mlxr_req *r) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  mlxr_http_add_common_headers(r, resp);
  MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS");
  const char *req_h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Access-Control-Request-Headers");
  MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                          req_h && strlen(req_h) < 2048 ? req_h
                                                        : "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, X-Api-Key, "
                                                          "Anthropic-Version, Anthropic-Beta");
  MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
  r->status = 204;
  enum MHD_Result res = MHD_queue_response(r->conn, 204, resp);
  MHD_destroy_response(resp);
  return res;
}

mlxr_model_entry *mlxr_req_model(mlxr_req *r, const char *name, enum MHD_Result *res) {
  mlxr_server *s = r->srv;
  if (!name || !name[0]) {
    if (r->api == MLXR_API_PLAIN) {
      const char *def = s->cfg->default_model;
      if (def && def[0]) name = def;
      else if (s->models.n > 0 && mlxr_models_live(&s->models.e[0])) return &s->models.e[0];
    }
    if (!name || !name[0]) {
      *res = mlxr_http_error(r, 400, NULL, NULL, "model", r->api == MLXR_API_OLLAMA ? "model is required" : "you must provide a model parameter");
      return NULL;
    }
  }
  mlxr_model_entry *m = mlxr_models_find(&s->models, name);
  if (!m) {
    if (r->api == MLXR_API_OLLAMA)
      *res = mlxr_http_error(r, 404, NULL, NULL, NULL, "model '%.200s' not found", name);
    else
      *res = mlxr_http_error(r, 404, "invalid_request_error", "model_not_found", "model",
                             "The model '%.200s' does not exist", name);
  }
  return m;
}

static enum MHD_Result dispatch(mlxr_req *r) {
  const char *path = r->url;
  if (strcmp(r->method, "OPTIONS") == 0) {
    r->route = "preflight";
    return preflight(r);
  }
  if (r->body_too_big)
    return mlxr_http_error(r, 413, NULL, NULL, NULL, "request body larger than %zu bytes", r->srv->cfg->max_body_bytes);
  if (strcmp(path, "/") == 0) {
    r->route = "/";
    if (strcmp(r->method, "GET") != 0 && !r->is_head)
      return mlxr_http_error(r, 405, NULL, NULL, NULL, "method %s not allowed on /", r->method);
    static const char msg[] = "Ollama is running";
    return mlxr_http_send(r, 200, "text/plain; charset=utf-8", msg, sizeof msg - 1);
  }
  bool handled = false;
  enum MHD_Result res = mlxr_route_extras(r, path, &handled);
  if (handled) return res;
  res = mlxr_route_ollama(r, path, &handled);
  if (handled) return res;
  res = mlxr_route_responses(r, path, &handled);
  if (handled) return res;
  res = mlxr_route_anthropic(r, path, &handled);
  if (handled) return res;
  res = mlxr_route_openai(r, path, &handled);
  if (handled) return res;
  r->route = "other";
  return mlxr_http_error(r, 404, NULL, NULL, NULL, "no route for %s %.200s", r->method, path);
}

/* How much of a body over the cap is read and thrown away so that its 413 reaches the client
 * (the top of this file says why): twice the cap. */
static uint64_t drain_cap(const mlxr_server *s) { return 2 * (uint64_t)s->cfg->max_body_bytes; }

/* On the headers: true to refuse the body with 413 now, before reading any of it: a Content-Length
 * that does not parse, or one over the cap from a client waiting for 100 Continue, or one past the
 * drain cap. A declared body over the cap otherwise is marked body_too_big: read, dropped, and
 * answered 413 by dispatch, as a chunked body over the cap is. */
static bool refuse_body_on_headers(mlxr_req *r, const char *version) {
  const mlxr_server *s = r->srv;
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
  if (!cl) return false;
  char *end = NULL;
  errno = 0;
  unsigned long long n = strtoull(cl, &end, 10);
  if (errno || end == cl) return true;
  if (n <= s->cfg->max_body_bytes) return false;
  /* MHD sends 100 Continue only to HTTP/1.1 clients that ask for it (MHD's need_100_continue) */
  const char *expect = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Expect");
  bool waits = expect && strcasecmp(expect, "100-continue") == 0 && version &&
               strcasecmp(version, MHD_HTTP_VERSION_1_1) == 0;
  if (waits || n > drain_cap(s)) return true;
  r->body_too_big = true;
  return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
  listener *L = cls;
  mlxr_server *s = L->srv;
  mlxr_req *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof(*r));
    if (!r) return MHD_NO;
    *con_cls = r;
    r->srv = s;
    r->conn = c;
    r->method = method;
    r->url = url;
    r->via_unix = L->via_unix;
    r->is_head = strcmp(method, "HEAD") == 0;
    r->t_start = mlxr_now_ns();
    r->api = strncmp(url, "/v1/messages", 12) == 0 ? MLXR_API_ANTHROPIC
             : strncmp(url, "/v1/", 4) == 0 ? MLXR_API_OPENAI
             : strncmp(url, "/api/", 5) == 0 || strcmp(url, "/") == 0 ? MLXR_API_OLLAMA
                                                                     : MLXR_API_PLAIN;
    r->route = "early";
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (!r->via_unix && !mlxr_auth_host_ok(s, host))
      return mlxr_http_error(r, 403, NULL, NULL, NULL, "host '%.100s' is not allowed (DNS rebinding protection)",
                             host ? host : "");
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin) {
      if (!mlxr_auth_origin_ok(s, origin))
        return mlxr_http_error(r, 403, NULL, NULL, NULL, "origin '%.100s' is not allowed", origin);
      r->origin = origin;
    }
    if (strcmp(method, "OPTIONS") != 0 && strcmp(url, "/health") != 0 && !mlxr_auth_key_ok(s, c))
      return mlxr_http_error(r, 401, "authentication_error", "invalid_api_key", NULL,
                             "a valid API key is required (Authorization: Bearer KEY or X-Api-Key)");
    r->key_slot = mlxr_auth_key_slot(s, c);
    /* a blob upload streams into the store: no body cap but the store's (routes_registry.c) */
    if (strcmp(method, "POST") == 0 && strncmp(url, "/api/blobs/", 11) == 0) return mlxr_blob_upload_begin(r);
    if (refuse_body_on_headers(r, version))
      return mlxr_http_error(r, 413, NULL, NULL, NULL, "request body larger than %zu bytes", s->cfg->max_body_bytes);
    return MHD_YES;
  }
  if (r->status) { /* answered early: drop whatever body arrives */
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size && r->blob) {
    mlxr_blob_upload_write(r, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  if (*upload_size) {
    if (!r->body_too_big && r->body.len + *upload_size > s->cfg->max_body_bytes) {
      r->body_too_big = true;
      r->body_dropped = r->body.len;
      mlxr_buf_free(&r->body);
    }
    if (r->body_too_big) {
      r->body_dropped += *upload_size;
      *upload_size = 0;
      /* only a chunked body gets past the drain cap (a declared one was refused on its headers);
       * MHD takes no response while the body arrives, so all that is left is to close */
      return r->body_dropped > drain_cap(s) ? MHD_NO : MHD_YES;
    }
    mlxr_buf_add(&r->body, upload, *upload_size);
    if (r->body.oom) return MHD_NO;
    *upload_size = 0;
    return MHD_YES;
  }
  enum MHD_Result res = dispatch(r);
  if (s->cfg->verbose)
    fprintf(stderr, "mlxrd: %s %s -> %d%s\n", r->method, r->url, r->status, r->streaming ? " (stream)" : "");
  return res;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)c;
  (void)toe;
  mlxr_server *s = cls;
  mlxr_req *r = *con_cls;
  if (!r) return;
  if (!r->streaming) mlxr_metrics_request(&s->metrics, r->method, r->route, r->status ? r->status : 499);
  mlxr_blob_upload_free(r);
  cJSON_Delete(r->json);
  mlxr_buf_free(&r->body);
  free(r);
  *con_cls = NULL;
}

/* ---------------- listeners ---------------- */

static unsigned mhd_flags(const mlxr_server *s) {
  unsigned f = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
  if (s->cfg->verbose) f |= MHD_USE_ERROR_LOG;
  return f;
}

static int start_tcp(mlxr_server *s, listener *L, char *err, size_t err_len) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  char port[16];
  snprintf(port, sizeof port, "%d", s->cfg->port);
  int gai = getaddrinfo(s->cfg->host, port, &hints, &ai);
  if (gai != 0 || !ai)
    return mlxr_errf(err, err_len, MLXR_ERR_INVALID, "cannot resolve host '%s': %s", s->cfg->host, gai_strerror(gai));
  struct sockaddr_storage addr;
  memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  bool v6 = ai->ai_family == AF_INET6;
  freeaddrinfo(ai);
  if (v6) s->loopback_bind = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&addr)->sin6_addr);
  else s->loopback_bind = (ntohl(((struct sockaddr_in *)&addr)->sin_addr.s_addr) >> 24) == 127;
  s->tcp = MHD_start_daemon(mhd_flags(s) | (v6 ? MHD_USE_IPv6 : 0), (uint16_t)s->cfg->port, NULL, NULL,
                            on_request, L, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg->conn_timeout_s,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
  if (!s->tcp)
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot listen on %s:%d (address in use?)", s->cfg->host, s->cfg->port);
  /* the port bound: the one asked for, or the kernel's pick for port 0 */
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->tcp, MHD_DAEMON_INFO_BIND_PORT);
  if (!di || di->port == 0) return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot read the TCP port bound");
  s->cfg->port = di->port;
  return 0;
}

/* "PORT\n" into path, atomically: a temporary file beside it, then rename(2), so a reader that
 * sees the file sees all of it. */
static int write_port_file(const char *path, int port, char *err, size_t err_len) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "port file path too long: %s", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
  bool ok = fprintf(f, "%d\n", port) > 0;
  ok = fflush(f) == 0 && ok;
  ok = fsync(fileno(f)) == 0 && ok;
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot write the port file %s: %s", path, strerror(e));
  }
  return 0;
}

static int start_unix(mlxr_server *s, listener *L, char *err, size_t err_len) {
  const char *path = s->cfg->socket_path;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return mlxr_errf(err, err_len, MLXR_ERR_RANGE, "socket path too long: %s", path);
  memcpy(sa.sun_path, path, strlen(path) + 1);
  struct stat st;
  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return mlxr_errf(err, err_len, MLXR_ERR_IO, "%s exists and is not a socket", path);
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
      close(probe);
      return mlxr_errf(err, err_len, MLXR_ERR_IO, "another daemon is listening on %s", path);
    }
    if (probe >= 0) close(probe);
    unlink(path); /* stale */
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return mlxr_errf(err, err_len, MLXR_ERR_IO, "socket: %s", strerror(errno));
  mode_t old = umask(0177);
  int brc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (brc != 0 || chmod(path, 0600) != 0 || listen(fd, 128) != 0) {
    int e = errno;
    close(fd);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot listen on %s: %s", path, strerror(e));
  }
  s->unix_fd = fd;
  s->unix_d = MHD_start_daemon(mhd_flags(s), 0, NULL, NULL, on_request, L, MHD_OPTION_LISTEN_SOCKET, fd,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg->max_connections,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg->conn_timeout_s, MHD_OPTION_END);
  if (!s->unix_d) {
    close(fd);
    s->unix_fd = -1;
    unlink(path);
    return mlxr_errf(err, err_len, MLXR_ERR_IO, "cannot serve on %s", path);
  }
  return 0;
}

/* ---------------- the program ---------------- */

static const char *find_config_arg(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) return argv[i + 1];
    if (strncmp(argv[i], "--config=", 9) == 0) return argv[i] + 9;
  }
  return NULL;
}

int mlxr_server_main(int argc, char **argv, const mlxr_server_env *env) {
  mlxr_server_env noenv = {0};
  if (!env) env = &noenv;
  mlxr_server_config cfg;
  char err[1024] = "";
  int status = 1;
  bool wrote_port_file = false;
  if (mlxr_server_config_init(&cfg, env->xdg_runtime_dir, (unsigned)getuid()) < 0) {
    fprintf(stderr, "mlxrd: out of memory\n");
    return 1;
  }
  const char *cfg_path = find_config_arg(argc, argv);
  if (!cfg_path) cfg_path = env->config;
  bool help = false;
  if ((cfg_path && cfg_path[0] && mlxr_server_config_load_yaml(&cfg, cfg_path, err, sizeof err) < 0) ||
      mlxr_server_config_apply_env(&cfg, env, err, sizeof err) < 0 ||
      mlxr_server_config_apply_args(&cfg, argc, argv, &help, err, sizeof err) < 0) {
    fprintf(stderr, "mlxrd: %s\n\n%s", err, mlxr_server_usage());
    mlxr_server_config_free(&cfg);
    return 2;
  }
  if (help) {
    fputs(mlxr_server_usage(), stdout);
    mlxr_server_config_free(&cfg);
    return 0;
  }
  char store_root[4096];
  if (cfg.models_store && cfg.models_store[0]) {
    snprintf(store_root, sizeof store_root, "%s", cfg.models_store);
  } else if (mlxr_store_default_root(NULL, env->xdg_data_home, env->home, store_root, sizeof store_root, err,
                                     sizeof err) < 0) {
    fprintf(stderr, "mlxrd: model store: %s (give --models-store DIR or set MLXR_MODELS)\n", err);
    mlxr_server_config_free(&cfg);
    return 2;
  }
  if (cfg.port_file && cfg.port_file[0] && !cfg.tcp) {
    fprintf(stderr, "mlxrd: --port-file needs a TCP listener (it was turned off)\n\n%s", mlxr_server_usage());
    mlxr_server_config_free(&cfg);
    return 2;
  }
  if (cfg.tcp && !mlxr_auth_is_loopback_host(cfg.host) && cfg.n_api_keys == 0) {
    fprintf(stderr, "mlxrd: refusing to listen on non-loopback address '%s' without an API key "
                    "(--api-key KEY or MLXR_API_KEY)\n", cfg.host);
    mlxr_server_config_free(&cfg);
    return 2;
  }

  /* Block the shutdown signals in every thread created from here on; main waits for them. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  mlxr_server *s = calloc(1, sizeof(*s));
  if (!s) {
    mlxr_server_config_free(&cfg);
    return 1;
  }
  s->cfg = &cfg;
  s->unix_fd = -1;
  s->start_wall = mlxr_wall_ns();
  gethostname(s->hostname, sizeof s->hostname - 1);
  mlxr_metrics_init(&s->metrics);
  mlxr_ratelimit_init(&s->ratelimit, cfg.rate_rpm, cfg.rate_tpm);
  s->responses = mlxr_resp_store_new(cfg.stored_responses, (size_t)cfg.stored_responses_mib << 20);
  /* limits by device: a GPU runs many sequences at once, the CPU a few */
  mlxr_device_spec dev;
  if (mlxr_device_parse(cfg.device, &dev, err, sizeof err) != MLXR_OK) dev.kind = MLXR_DEVICE_AUTO;
  const bool gpu = mlxr_device_has_gpu(&dev);
  if (cfg.max_running == 0) cfg.max_running = gpu ? 64 : 4;
  if (cfg.max_batch_tokens == 0) cfg.max_batch_tokens = gpu ? 2048 : 512;
  if (cfg.max_batch_tokens < cfg.max_running) cfg.max_batch_tokens = cfg.max_running;
  mlxr_sched_params sp = mlxr_sched_default_params();
  sp.engine.device = cfg.device;
  sp.engine.backend.cuda.mem_limit = (size_t)cfg.gpu_memory_mib << 20;
  sp.max_running = cfg.max_running;
  sp.max_queue = cfg.max_queue;
  sp.engine.n_ctx = cfg.n_ctx;
  sp.engine.backend.cpu.n_threads = cfg.threads;
  sp.max_batch_tokens = cfg.max_batch_tokens;
  sp.target_latency_ms = cfg.target_latency_ms;
  sp.engine.kv_blocks = cfg.kv_blocks;
  sp.kv_bytes = (int64_t)cfg.kv_cache_mib << 20;
  listener tcp_l = {s, false}, unix_l = {s, true};

  if (mlxr_models_init(&s->models, cfg.models, cfg.n_models, cfg.models_dir, &sp, err, sizeof err) < 0) {
    fprintf(stderr, "mlxrd: %s\n", err);
    goto out;
  }
  const int n_files = s->models.n; /* loaded now; catalog models load on first use */
  if (mlxr_registry_open(&s->reg, store_root, &s->models, err, sizeof err) < 0) {
    fprintf(stderr, "mlxrd: %s\n", err);
    goto out;
  }
  fprintf(stderr, "mlxrd: model store %s: %d catalog model(s)\n", store_root, s->models.n - n_files);
  for (int i = 0; i < n_files; i++) {
    mlxr_sched *sch;
    int64_t load_ns;
    if (mlxr_models_acquire(&s->models, &s->models.e[i], &sch, &load_ns, err, sizeof err) < 0) {
      fprintf(stderr, "mlxrd: cannot load %s: %s\n", s->models.e[i].path, err);
      goto out;
    }
    const char *note = mlxr_sched_device_note(sch);
    if (note[0]) fprintf(stderr, "mlxrd: %s: %s\n", s->models.e[i].id, note);
    fprintf(stderr, "mlxrd: model '%s' (%s) loaded in %.2f s on %s, context %d, %d sequences at once%s\n",
            s->models.e[i].id, s->models.e[i].path, (double)load_ns / 1e9, mlxr_sched_device(sch),
            s->models.e[i].n_ctx, (int)cfg.max_running, s->models.e[i].tmpl ? "" : "; chat template unusable");
    mlxr_models_release(&s->models.e[i]);
  }
  if (cfg.tcp && start_tcp(s, &tcp_l, err, sizeof err) < 0) {
    fprintf(stderr, "mlxrd: %s\n", err);
    goto out;
  }
  if (!cfg.tcp) s->loopback_bind = true;
  if (cfg.socket_path && cfg.socket_path[0] && start_unix(s, &unix_l, err, sizeof err) < 0) {
    fprintf(stderr, "mlxrd: %s\n", err);
    goto out;
  }
  if (!s->tcp && !s->unix_d) {
    fprintf(stderr, "mlxrd: nothing to listen on (--no-tcp and no socket)\n");
    goto out;
  }
  if (cfg.port_file && cfg.port_file[0]) {
    if (write_port_file(cfg.port_file, cfg.port, err, sizeof err) < 0) {
      fprintf(stderr, "mlxrd: %s\n", err);
      goto out;
    }
    wrote_port_file = true;
  }
  if (s->tcp) { /* the readiness line (server.h) */
    bool v6 = strchr(cfg.host, ':') != NULL;
    printf("mlxrd: listening on %s%s%s:%d\n", v6 ? "[" : "", cfg.host, v6 ? "]" : "", cfg.port);
    fflush(stdout);
  }
  fprintf(stderr, "mlxrd: listening on");
  if (s->tcp) fprintf(stderr, " http://%s:%d", cfg.host, cfg.port);
  if (s->unix_d) fprintf(stderr, " unix:%s", cfg.socket_path);
  fprintf(stderr, "%s\n", cfg.n_api_keys ? " (API key required)" : "");
  fflush(stderr);

  int sig = 0;
  sigwait(&sigs, &sig);
  fprintf(stderr, "mlxrd: signal %d, shutting down\n", sig);
  status = 0;
out:
  if (s->tcp) MHD_stop_daemon(s->tcp);
  if (s->unix_d) {
    MHD_stop_daemon(s->unix_d);
    unlink(cfg.socket_path);
  }
  if (s->unix_fd >= 0) close(s->unix_fd);
  if (wrote_port_file) unlink(cfg.port_file);
  mlxr_models_free(&s->models);
  mlxr_registry_close(&s->reg);
  mlxr_metrics_free(&s->metrics);
  mlxr_ratelimit_free(&s->ratelimit);
  mlxr_resp_store_free(s->responses);
  free(s);
  mlxr_server_config_free(&cfg);
  return status;
}
