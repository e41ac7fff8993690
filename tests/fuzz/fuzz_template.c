/*
 * fuzz_template.c: libFuzzer harness for the chat-template interpreter (core/runtime/template/):
 * a model file's chat template is untrusted input, compiled and rendered by the daemon.
 *
 * Input: template source, optionally followed by a NUL byte and a JSON object of variables. The
 * template is compiled; when it compiles it is rendered with bounded limits (1 MiB of output,
 * 200k steps, the default depth, a fixed clock for strftime_now) over the given variables, or
 * over a fixed conversation like the daemon's (system and user messages, an assistant tool call
 * and its result, tools, bos/eos, add_generation_prompt). Properties: compile and render either
 * succeed (the output is NUL-terminated at its length, within the limit) or fail with a negative
 * status and a message; no crash, leak, hang or unbounded memory. Built and run by scripts/fuzz.sh
 * (seeds: real chat templates in tests/fuzz/corpus/fuzz_template/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/runtime/template/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char k_vars[] =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are terse.\"},"
    "{\"role\": \"user\", \"content\": \"What is the weather in Paris?\"},"
    "{\"role\": \"assistant\", \"content\": \"\", \"reasoning_content\": \"Use the tool.\", \"tool_calls\": ["
    "{\"id\": \"call_1\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
    "\"arguments\": {\"city\": \"Paris\", \"days\": 2}}}]},"
    "{\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"name\": \"get_weather\", \"content\": \"{\\\"t\\\": 21.5}\"},"
    "{\"role\": \"assistant\", \"content\": \"21.5 C.\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Thanks!\"}]}],"
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\", "
    "\"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
    "\"days\": {\"type\": \"integer\", \"minimum\": 1}}, \"required\": [\"city\"]}}}],"
    "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_generation_prompt\": true, "
    "\"enable_thinking\": false, \"tools_in_user_message\": false, \"date_string\": \"26 Jul 2024\", "
    "\"x\": null, \"n\": 3, \"f\": 1.0}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t src_len = nul ? (size_t)(nul - data) : size;
  mlxr_template *t = NULL;
  char err[512] = "";
  int rc = mlxr_template_new((const char *)data, src_len, &t, err, sizeof err);
  if (rc != 0) {
    if (rc > 0 || err[0] == '\0' || t) abort();
    return 0;
  }
  static const struct tm fixed = {.tm_year = 124, .tm_mon = 6, .tm_mday = 26, .tm_hour = 12};
  mlxr_template_params p;
  mlxr_template_default_params(&p);
  p.max_output_bytes = 1u << 20;
  p.max_steps = 200000;
  p.fixed_time = &fixed;
  const char *vars = nul ? (const char *)nul + 1 : k_vars;
  size_t vars_len = nul ? size - src_len - 1 : sizeof k_vars - 1;
  char *out = NULL;
  size_t out_len = 0;
  err[0] = '\0';
  rc = mlxr_template_render_json(t, vars, vars_len, &p, &out, &out_len, err, sizeof err);
  if (rc == 0) {
    if (!out || out[out_len] != '\0' || out_len > p.max_output_bytes) abort();
  } else if (rc > 0 || err[0] == '\0') {
    abort();
  }
  free(out);
  mlxr_template_free(t);
  return 0;
}
