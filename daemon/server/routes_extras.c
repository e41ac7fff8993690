/*
 * routes_extras.c: the llama.cpp-server routes that scripts rely on, and /metrics.
 *
 *   GET  /health          {"status":"ok"} (no API key needed; models load before we listen)
 *   POST /tokenize        {content, add_special=false, parse_special=true, with_pieces=false,
 *                          model?} -> {tokens: [id...]} or [{id, piece}]
 *   POST /detokenize      {tokens, model?} -> {content}
 *   POST /apply-template  {messages, tools?, chat_template_kwargs?, model?} -> {prompt}
 *   GET  /props           context size, chat template, BOS/EOS, slots, build
 *   GET  /metrics         Prometheus text (metrics.c)
 * These answer errors in the OpenAI shape, as llama.cpp does. A request naming no model uses the
 * default model (--default-model, else the first one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "daemon/server/chat.h"
#include "daemon/server/server_impl.h"

static enum MHD_Result with_model(mlxr_req *r, mlxr_model_entry **m, mlxr_sched **s,
                                  bool *ok) {
  enum MHD_Result res = MHD_NO;
  *ok = false;
  mlxr_field_err fe = {{0}, {0}};
  const char *name = NULL;
  if (r->json && !mlxr_get_str(r->json, "model", &name, &fe))
    return mlxr_http_error(r, 400, NULL, NULL, fe.param, "%s", fe.msg);
  *m = mlxr_req_model(r, name, &res);
  if (!*m) return res;
  int64_t load_ns;
  char err[1024];
  const int acq_rc = mlxr_models_acquire(&r->srv->models, *m, s, &load_ns, err, sizeof err);
  if (acq_rc < 0)
    return mlxr_http_error(r, acq_rc == MLXR_ERR_NOT_FOUND ? 404 : 500, NULL, NULL, NULL, "cannot load model '%s': %s", (*m)->id, err);
  *ok = true;
  return MHD_YES;
}

static enum MHD_Result handle_tokenize(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  mlxr_field_err fe = {{0}, {0}};
  const char *content = NULL;
  bool add_special = false, parse_special = true, pieces = false;
  if (!mlxr_get_str(r->json, "content", &content, &fe) || !mlxr_get_bool(r->json, "add_special", &add_special, &fe) ||
      !mlxr_get_bool(r->json, "parse_special", &parse_special, &fe) ||
      !mlxr_get_bool(r->json, "with_pieces", &pieces, &fe))
    return mlxr_http_error(r, 400, NULL, NULL, fe.param, "%s", fe.msg);
  if (!content) return mlxr_http_error(r, 400, NULL, NULL, "content", "'content' (a string) is required");
  mlxr_model_entry *m;
  mlxr_sched *s;
  bool ok;
  res = with_model(r, &m, &s, &ok);
  if (!ok) return res;
  const mlxr_tokenizer *tok = mlxr_sched_tokenizer(s);
  mlxr_tokenize_params tp = {.add_special = add_special, .parse_special = parse_special};
  int32_t *ids = NULL;
  size_t n = 0;
  if (mlxr_tokenizer_encode(tok, content, strlen(content), tp, &ids, &n) < 0) {
    mlxr_models_release(m);
    return mlxr_http_error(r, 500, NULL, NULL, NULL, "tokenization failed");
  }
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(o, "tokens");
  for (size_t i = 0; i < n; i++) {
    if (pieces) {
      char piece[1600];
      mlxr_token_piece(tok, ids[i], piece, sizeof piece, NULL, NULL, 0);
      cJSON *t = cJSON_CreateObject();
      cJSON_AddNumberToObject(t, "id", ids[i]);
      cJSON_AddStringToObject(t, "piece", piece);
      cJSON_AddItemToArray(arr, t);
    } else {
      cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    }
  }
  free(ids);
  mlxr_models_release(m);
  return mlxr_http_send_json(r, 200, o);
}

static enum MHD_Result handle_detokenize(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(r->json, "tokens");
  if (!cJSON_IsArray(tokens)) return mlxr_http_error(r, 400, NULL, NULL, "tokens", "'tokens' must be an array of token ids");
  mlxr_model_entry *m;
  mlxr_sched *s;
  bool ok;
  res = with_model(r, &m, &s, &ok);
  if (!ok) return res;
  const mlxr_tokenizer *tok = mlxr_sched_tokenizer(s);
  int32_t n_vocab = mlxr_tokenizer_n_vocab(tok);
  int n = cJSON_GetArraySize(tokens);
  int32_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
  int k = 0;
  const cJSON *v;
  cJSON_ArrayForEach(v, tokens) {
    if (!ids || !cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < n_vocab) ||
        v->valuedouble != (double)(int32_t)v->valuedouble) {
      free(ids);
      mlxr_models_release(m);
      return mlxr_http_error(r, 400, NULL, NULL, "tokens", "token ids must be integers in [0, %d)", n_vocab);
    }
    ids[k++] = (int32_t)v->valuedouble;
  }
  char *text = NULL;
  size_t len = 0;
  int rc = mlxr_tokenizer_decode(tok, ids, (size_t)k, true, &text, &len);
  free(ids);
  mlxr_models_release(m);
  if (rc < 0) return mlxr_http_error(r, 500, NULL, NULL, NULL, "detokenization failed");
  /* the text may end inside a UTF-8 sequence: JSON needs valid UTF-8 */
  char *clean = malloc(len * 3 + 1);
  size_t o = 0;
  for (size_t i = 0; clean && i < len;) {
    size_t step = 1;
    unsigned c = (unsigned char)text[i];
    size_t want = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (want && i + want <= len && mlxr_utf8_valid(text + i, want)) {
      memcpy(clean + o, text + i, want);
      o += want;
      step = want;
    } else {
      memcpy(clean + o, "\xEF\xBF\xBD", 3);
      o += 3;
    }
    i += step;
  }
  cJSON *out = cJSON_CreateObject();
  if (clean) {
    clean[o] = '\0';
    cJSON_AddStringToObject(out, "content", clean);
  }
  free(clean);
  free(text);
  return mlxr_http_send_json(r, 200, out);
}

static enum MHD_Result handle_apply_template(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  if (!mlxr_http_parse_body(r, &res)) return res;
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(r->json, "messages");
  if (!cJSON_IsArray(messages)) return mlxr_http_error(r, 400, NULL, NULL, "messages", "'messages' must be an array");
  const cJSON *kwargs = cJSON_GetObjectItemCaseSensitive(r->json, "chat_template_kwargs");
  if (kwargs && !cJSON_IsNull(kwargs) && !cJSON_IsObject(kwargs))
    return mlxr_http_error(r, 400, NULL, NULL, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
  bool add_gen = true;
  mlxr_field_err fe = {{0}, {0}};
  if (!mlxr_get_bool(r->json, "add_generation_prompt", &add_gen, &fe))
    return mlxr_http_error(r, 400, NULL, NULL, fe.param, "%s", fe.msg);
  mlxr_model_entry *m;
  mlxr_sched *s;
  bool ok;
  res = with_model(r, &m, &s, &ok);
  if (!ok) return res;
  char *prompt = mlxr_chat_prompt(r, m, messages, cJSON_GetObjectItemCaseSensitive(r->json, "tools"), kwargs,
                                  false, add_gen, &res);
  mlxr_models_release(m);
  if (!prompt) return res;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "prompt", prompt);
  free(prompt);
  return mlxr_http_send_json(r, 200, o);
}

static enum MHD_Result handle_props(mlxr_req *r) {
  enum MHD_Result res = MHD_NO;
  mlxr_model_entry *m;
  mlxr_sched *s;
  bool ok;
  res = with_model(r, &m, &s, &ok);
  if (!ok) return res;
  cJSON *o = cJSON_CreateObject();
  cJSON *d = cJSON_AddObjectToObject(o, "default_generation_settings");
  cJSON_AddNumberToObject(d, "n_ctx", m->n_ctx);
  cJSON *p = cJSON_AddObjectToObject(d, "params");
  mlxr_sampler_params sp = mlxr_sampler_default_params();
  cJSON_AddNumberToObject(p, "temperature", sp.temperature);
  cJSON_AddNumberToObject(p, "top_k", sp.top_k);
  cJSON_AddNumberToObject(p, "top_p", sp.top_p);
  cJSON_AddNumberToObject(p, "min_p", sp.min_p);
  cJSON_AddNumberToObject(p, "repeat_penalty", sp.repeat_penalty);
  cJSON_AddNumberToObject(p, "repeat_last_n", sp.repeat_last_n);
  cJSON_AddNumberToObject(o, "total_slots", r->srv->cfg->max_running);
  cJSON_AddStringToObject(o, "model_path", m->path);
  cJSON_AddStringToObject(o, "model_alias", m->id);
  cJSON_AddNumberToObject(o, "n_ctx", m->n_ctx);
  cJSON_AddNumberToObject(o, "n_ctx_train", m->n_ctx_train);
  cJSON_AddStringToObject(o, "chat_template", m->tmpl_src ? m->tmpl_src : "");
  cJSON_AddBoolToObject(o, "chat_template_is_fallback", m->tmpl_is_fallback);
  cJSON_AddStringToObject(o, "bos_token", m->bos_text ? m->bos_text : "");
  cJSON_AddStringToObject(o, "eos_token", m->eos_text ? m->eos_text : "");
  cJSON_AddStringToObject(o, "build_info", "mlxr " MLXR_SERVER_VERSION);
  cJSON *mod = cJSON_AddObjectToObject(o, "modalities");
  cJSON_AddBoolToObject(mod, "vision", false);
  cJSON_AddBoolToObject(mod, "audio", false);
  mlxr_models_release(m);
  return mlxr_http_send_json(r, 200, o);
}

enum MHD_Result mlxr_route_extras(mlxr_req *r, const char *path, bool *handled) {
  bool get = strcmp(r->method, "GET") == 0 || r->is_head;
  bool post = strcmp(r->method, "POST") == 0;
  *handled = true;
  if (strcmp(path, "/health") == 0) {
    r->route = "/health";
    if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET");
    static const char ok[] = "{\"status\":\"ok\"}";
    return mlxr_http_send(r, 200, "application/json", ok, sizeof ok - 1);
  }
  if (strcmp(path, "/metrics") == 0) {
    r->route = "/metrics";
    if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET");
    mlxr_buf b = {0};
    mlxr_metrics_render(r->srv, &b);
    if (b.oom) {
      mlxr_buf_free(&b);
      return mlxr_http_error(r, 500, NULL, NULL, NULL, "out of memory");
    }
    enum MHD_Result res = mlxr_http_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "", b.len);
    mlxr_buf_free(&b);
    return res;
  }
  if (strcmp(path, "/props") == 0) {
    r->route = "/props";
    if (!get) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use GET");
    return handle_props(r);
  }
  struct {
    const char *path;
    enum MHD_Result (*fn)(mlxr_req *);
  } posts[] = {{"/tokenize", handle_tokenize}, {"/detokenize", handle_detokenize}, {"/apply-template", handle_apply_template}};
  for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) {
    if (strcmp(path, posts[i].path) == 0) {
      r->route = posts[i].path;
      if (!post) return mlxr_http_error(r, 405, NULL, NULL, NULL, "use POST");
      return posts[i].fn(r);
    }
  }
  *handled = false;
  return MHD_NO;
}
