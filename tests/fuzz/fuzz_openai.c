/*
 * fuzz_openai.c: libFuzzer harness for OpenAI request bodies (/v1/chat/completions and
 * /v1/completions), through the daemon's own parsers without a model or a scheduler.
 *
 * Input: an HTTP request body. Steps, as routes_openai.c takes them: the body as one JSON object
 * (mlxr_json_parse_body: UTF-8, trailing bytes); the model-free fields of both routes
 * (mlxr_openai_check_fields: sampling, limits, stop, response_format -> JSON-schema grammar,
 * grammar, logprobs, logit_bias); tool_choice and, when it forces calls, the tool-call grammar
 * (mlxr_chat_tool_grammar, which must parse); messages, tools and chat_template_kwargs into
 * template variables (mlxr_chat_build_vars) rendered with two chat templates (mlxr_chat_render);
 * and each message's text through the chat output parser. Properties: every step succeeds or fails
 * with a message; no crash, leak or hang. Built and run by scripts/fuzz.sh (seeds:
 * tests/fuzz/corpus/fuzz_openai/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/common/status.h"
#include "daemon/server/server_impl.h"
#include "tests/fuzz/fuzz_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* tool_choice as handle_generate reads it: the forced grammar, and the tools the template sees
 * (NULL: none; *owned holds a named choice's copy). False when the request would be refused. */
static bool tool_setup(const cJSON *j, const char *tmpl_src, const cJSON **tools_out, cJSON **owned) {
  const cJSON *choice = get(j, "tool_choice"), *tools = get(j, "tools");
  const cJSON *fn_name = get(get(choice, "function"), "name");
  const char *mode = !choice || cJSON_IsNull(choice) ? "auto"
                     : cJSON_IsString(choice)       ? choice->valuestring
                     : cJSON_IsString(fn_name)      ? "named"
                                                    : "invalid";
  *tools_out = NULL;
  *owned = NULL;
  if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools)) return false;
  if (strcmp(mode, "none") == 0) return true;
  if (strcmp(mode, "named") == 0) {
    *owned = cJSON_CreateArray();
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
      const cJSON *tn = get(get(t, "function"), "name");
      if (*owned && cJSON_IsString(tn) && strcmp(tn->valuestring, fn_name->valuestring) == 0)
        cJSON_AddItemToArray(*owned, cJSON_Duplicate(t, true));
    }
    if (cJSON_GetArraySize(*owned) == 0) return false;
    tools = *owned;
  } else if (strcmp(mode, "auto") != 0 && strcmp(mode, "required") != 0) {
    return false;
  }
  bool on = cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0;
  if (on && strcmp(mode, "auto") != 0) {
    char *gbnf = NULL, err[256] = "";
    int rc = mlxr_chat_tool_grammar(tools, tmpl_src, !cJSON_IsFalse(get(j, "parallel_tool_calls")), &gbnf, err,
                                    sizeof err);
    if (rc > 0 || (rc < 0 && !err[0]) || (rc == 0 && !gbnf)) abort();
    free(gbnf);
    if (rc != 0) return false;
  }
  *tools_out = on ? tools : NULL;
  return true;
}

static void chat(const cJSON *j) {
  const cJSON *messages = get(j, "messages");
  if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) return;
  const fuzz_templates *ft = fuzz_templates_get();
  const cJSON *tools = NULL;
  cJSON *owned = NULL;
  if (!tool_setup(j, ft->src[0], &tools, &owned)) {
    cJSON_Delete(owned);
    return;
  }
  cJSON *kwargs = cJSON_Duplicate(get(j, "chat_template_kwargs"), true);
  if (!kwargs || cJSON_IsObject(kwargs)) {
    const cJSON *effort = get(j, "reasoning_effort");
    if (cJSON_IsString(effort)) {
      if (!kwargs) kwargs = cJSON_CreateObject();
      if (!get(kwargs, "reasoning_effort")) cJSON_AddStringToObject(kwargs, "reasoning_effort", effort->valuestring);
    }
    char err[1024] = "";
    cJSON *vars = mlxr_chat_build_vars(messages, tools, kwargs, false, true, "<s>", "</s>", err, sizeof err);
    if (vars) fuzz_render_all(vars);
    else if (!err[0]) abort();
    cJSON_Delete(vars);
  }
  cJSON_Delete(kwargs);
  fuzz_parse_contents(messages, tools != NULL);
  cJSON_Delete(owned);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256] = "";
  cJSON *j = mlxr_json_parse_body((const char *)data, size, err, sizeof err);
  if (!j) {
    if (!err[0]) abort();
    return 0;
  }
  for (int c = 0; c < 2; c++) {
    mlxr_field_err fe = {{0}, {0}};
    if (!mlxr_openai_check_fields(j, c == 0, 32000, &fe) && !fe.msg[0]) abort();
  }
  chat(j);
  cJSON_Delete(j);
  return 0;
}
