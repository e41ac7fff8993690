/*
 * fuzz_request.h: what the request harnesses (fuzz_openai.c, fuzz_ollama.c) share: the chat
 * templates a request is rendered with, the render step as the daemon does it (chat.c), and the
 * chat output parser fed with a message's text. Header-only: each harness is one program.
 */
#ifndef MLXR_FUZZ_REQUEST_H
#define MLXR_FUZZ_REQUEST_H

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/runtime/template/template.h"
#include "daemon/server/chat.h"

/* A Hermes/Qwen-style template with tools, reasoning and tool results (written for the harness),
 * and the daemon's ChatML fallback for models without a template. */
static const char k_tool_template[] =
    "{%- if tools %}<|im_start|>system\n"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content }}\n{% endif %}"
    "<tools>{% for t in tools %}{{ t | tojson }}\n{% endfor %}</tools><|im_end|>\n{% endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant\n"
    "{%- for c in m.tool_calls %}<tool_call>{\"name\": {{ c.function.name | tojson }}, "
    "\"arguments\": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>{{ m.content }}</tool_response><|im_end|>\n"
    "{%- elif not (tools and loop.first and m.role == 'system') %}<|im_start|>{{ m.role }}\n"
    "{%- if m.reasoning_content %}<think>{{ m.reasoning_content | trim }}</think>{% endif %}"
    "{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n"
    "{%- if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n{% endif %}{% endif %}";

typedef struct fuzz_templates {
  mlxr_template *t[2];
  const char *src[2];
} fuzz_templates;

static const fuzz_templates *fuzz_templates_get(void) {
  static fuzz_templates ft;
  static int ready;
  if (!ready) {
    char err[256];
    ft.src[0] = k_tool_template;
    ft.src[1] = mlxr_chat_fallback_template;
    for (int i = 0; i < 2; i++)
      if (mlxr_template_new(ft.src[i], strlen(ft.src[i]), &ft.t[i], err, sizeof err) != 0) abort();
    ready = 1;
  }
  return &ft;
}

/* The daemon's render of vars with every template; the prompt must be a string, an error must
 * say why. */
static void fuzz_render_all(const cJSON *vars) {
  const fuzz_templates *ft = fuzz_templates_get();
  for (int i = 0; i < 2; i++) {
    char *prompt = NULL, err[512] = "";
    int rc = mlxr_chat_render(ft->t[i], vars, &prompt, err, sizeof err);
    if (rc == 0) (void)mlxr_chat_prompt_opens_think(prompt);
    else if (rc > 0 || err[0] == '\0') abort();
    free(prompt);
  }
}

/* A delta's bytes must be readable (ASan checks each) and a tool call must have a name and args. */
static void fuzz_emit_check(void *user, const mlxr_chat_delta *d) {
  unsigned *sum = user;
  if (d->part == MLXR_CHAT_TOOL_CALL) {
    if (!d->tool_name || !d->tool_args) abort();
    *sum += (unsigned)strlen(d->tool_name);
    return;
  }
  for (size_t i = 0; i < d->len; i++) *sum += (unsigned char)d->text[i];
}

/* Generated text goes through the output parser in the daemon; a message's text stands in for it,
 * fed in pieces of 1..7 bytes. */
static void fuzz_parse_output(const char *text, bool tools) {
  mlxr_chat_parser p;
  unsigned sum = 0;
  mlxr_chat_parser_init(&p, tools, text[0] == ' ');
  size_t n = strlen(text);
  for (size_t i = 0, k = 1; i < n; i += k, k = k % 7 + 1)
    mlxr_chat_parser_push(&p, text + i, k < n - i ? k : n - i, false, fuzz_emit_check, &sum);
  mlxr_chat_parser_push(&p, "", 0, true, fuzz_emit_check, &sum);
  mlxr_chat_parser_free(&p);
}

/* Every string "content" of the messages through the output parser. */
static void fuzz_parse_contents(const cJSON *messages, bool tools) {
  const cJSON *m;
  cJSON_ArrayForEach(m, messages) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (cJSON_IsString(c)) fuzz_parse_output(c->valuestring, tools);
  }
}

#endif
