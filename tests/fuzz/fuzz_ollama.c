/*
 * fuzz_ollama.c: libFuzzer harness for Ollama request bodies (/api/chat and /api/generate),
 * through the daemon's own parsers without a model or a scheduler.
 *
 * Input: an HTTP request body. Steps, as routes_ollama.c takes them: the body as one JSON object
 * (mlxr_json_parse_body); the plain fields (model, prompt, system, stream, raw, logprobs ...);
 * keep_alive (numbers and Go durations) and options (mlxr_ollama_check_fields); format, "json" or
 * a JSON schema, into a grammar that must parse; think into template kwargs; then /api/chat's
 * messages and tools, or /api/generate's system + prompt, into template variables
 * (mlxr_chat_build_vars, Ollama's shapes) rendered with two chat templates; and each message's
 * text through the chat output parser. Properties: every step succeeds or fails with a message;
 * no crash, leak or hang. Built and run by scripts/fuzz.sh (seeds: tests/fuzz/corpus/fuzz_ollama/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "core/runtime/grammar/grammar.h"
#include "daemon/server/server_impl.h"
#include "tests/fuzz/fuzz_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* format: a schema (or "json") becomes a grammar the scheduler parses. */
static void format_grammar(const cJSON *format) {
  char *gbnf = NULL, err[256] = "";
  int rc;
  if (cJSON_IsObject(format)) rc = mlxr_json_schema_to_gbnf(format, &gbnf, err, sizeof err);
  else if (cJSON_IsString(format) && strcmp(format->valuestring, "json") == 0)
    rc = (gbnf = mlxr_json_grammar_gbnf(MLXR_JSON_GRAMMAR_OBJECT)) ? MLXR_OK : MLXR_ERR_NOMEM;
  else return;
  if (rc > 0 || (rc < 0 && !err[0] && rc != MLXR_ERR_NOMEM)) abort();
  if (rc == 0) {
    mlxr_grammar *g = NULL;
    if (mlxr_grammar_parse(gbnf, strlen(gbnf), NULL, &g, err, sizeof err) != 0) abort();
    mlxr_grammar_free(g);
  }
  free(gbnf);
}

static void render(const cJSON *messages, const cJSON *tools, const cJSON *kwargs) {
  char err[1024] = "";
  cJSON *vars = mlxr_chat_build_vars(messages, tools, kwargs, true, true, "<s>", "</s>", err, sizeof err);
  if (vars) fuzz_render_all(vars);
  else if (!err[0]) abort();
  cJSON_Delete(vars);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256] = "";
  cJSON *j = mlxr_json_parse_body((const char *)data, size, err, sizeof err);
  if (!j) {
    if (!err[0]) abort();
    return 0;
  }
  mlxr_field_err fe = {{0}, {0}};
  const char *model = NULL, *prompt = NULL, *system = NULL, *tmpl = NULL, *suffix = NULL;
  bool stream = true, raw = false, want_lp = false, unload = false;
  int64_t top_lp = 0, keep_alive = 0;
  mlxr_gen_params gp;
  if (!mlxr_get_str(j, "model", &model, &fe) || !mlxr_get_str(j, "prompt", &prompt, &fe) ||
      !mlxr_get_str(j, "system", &system, &fe) || !mlxr_get_str(j, "template", &tmpl, &fe) ||
      !mlxr_get_str(j, "suffix", &suffix, &fe) || !mlxr_get_bool(j, "stream", &stream, &fe) ||
      !mlxr_get_bool(j, "raw", &raw, &fe) || !mlxr_get_bool(j, "logprobs", &want_lp, &fe) ||
      !mlxr_get_int(j, "top_logprobs", 0, MLXR_MAX_TOP_LOGPROBS, &top_lp, &fe) ||
      !mlxr_ollama_check_fields(j, &gp, &keep_alive, &unload, &fe)) {
    if (!fe.msg[0]) abort();
    cJSON_Delete(j);
    return 0;
  }
  const cJSON *think = get(j, "think"), *messages = get(j, "messages");
  format_grammar(get(j, "format"));
  cJSON *kwargs = NULL;
  if (cJSON_IsBool(think) || cJSON_IsString(think)) {
    kwargs = cJSON_CreateObject();
    cJSON_AddBoolToObject(kwargs, "enable_thinking", !cJSON_IsFalse(think));
    if (cJSON_IsString(think)) cJSON_AddStringToObject(kwargs, "reasoning_effort", think->valuestring);
  }
  if (cJSON_IsArray(messages) && cJSON_GetArraySize(messages) > 0) { /* /api/chat */
    const cJSON *tools = get(j, "tools");
    render(messages, tools, kwargs);
    fuzz_parse_contents(messages, cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0);
  }
  if (prompt && prompt[0] && !raw) { /* /api/generate */
    cJSON *msgs = cJSON_CreateArray();
    if (system && system[0]) {
      cJSON *s = cJSON_CreateObject();
      cJSON_AddStringToObject(s, "role", "system");
      cJSON_AddStringToObject(s, "content", system);
      cJSON_AddItemToArray(msgs, s);
    }
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", prompt);
    cJSON_AddItemToArray(msgs, u);
    render(msgs, NULL, kwargs);
    cJSON_Delete(msgs);
    fuzz_parse_output(prompt, false);
  }
  cJSON_Delete(kwargs);
  cJSON_Delete(j);
  return 0;
}
