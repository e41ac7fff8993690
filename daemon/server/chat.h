/*
 * chat.h: the chat side of the daemon, independent of HTTP.
 *
 * Prompting: mlxr_chat_build_vars() turns OpenAI- or Ollama-shaped messages and tools into the
 * variables a Hugging Face chat template expects (content parts joined into text, tool-call
 * arguments given as objects, Ollama's thinking as reasoning_content, tool_name as name), and
 * mlxr_chat_render() renders them with the model's compiled template.
 *
 * Output parsing: mlxr_chat_parser splits generated text, as it streams in, into content,
 * reasoning (<think>...</think>) and tool calls: the Hermes/Qwen form
 * <tool_call>{"name": .., "arguments": {..}}</tool_call> (any number), and the Llama 3.1 form
 * {"name": .., "parameters": {..}} as the whole reply (optionally after <|python_tag|>; several
 * separated by ';'). Text that may be the start of a tag is held back until it is decided, so a
 * tag split across tokens never leaks into content. Tool calls are only recognized when the
 * request gave tools. Whitespace-only content around tool calls is dropped.
 *
 * A parser belongs to one stream (one thread).
 */
#ifndef MLXR_DAEMON_CHAT_H
#define MLXR_DAEMON_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/runtime/template/template.h"

/* The ChatML template used for models without one. */
extern const char mlxr_chat_fallback_template[];

/* Variables for the template. messages/tools are borrowed (deep-copied into the result); kwargs
 * (chat_template_kwargs) entries are copied as top-level variables. ollama: messages are Ollama's
 * shape. Returns NULL with err set on a malformed message. */
cJSON *mlxr_chat_build_vars(const cJSON *messages, const cJSON *tools, const cJSON *kwargs,
                            bool ollama, bool add_generation_prompt, const char *bos,
                            const char *eos, char *err, size_t err_len);
int mlxr_chat_render(const mlxr_template *t, const cJSON *vars, char **prompt, char *err,
                     size_t err_len);

typedef enum mlxr_chat_part {
  MLXR_CHAT_CONTENT,
  MLXR_CHAT_REASONING,
  MLXR_CHAT_TOOL_CALL,
} mlxr_chat_part;

typedef struct mlxr_chat_delta {
  mlxr_chat_part part;
  const char *text; /* CONTENT / REASONING */
  size_t len;
  int tool_index;          /* TOOL_CALL: 0, 1, ... */
  const char *tool_name;
  const cJSON *tool_args;  /* an object (or the raw value the model gave) */
} mlxr_chat_delta;

typedef void (*mlxr_chat_emit)(void *user, const mlxr_chat_delta *d);

typedef struct mlxr_chat_parser {
  bool tools;          /* recognize tool calls */
  int mode;            /* internal */
  char *buf;           /* undecided text */
  size_t len, cap;
  char *tool;          /* text of the tool call being read */
  size_t tool_len, tool_cap;
  bool any_output;     /* something other than whitespace was emitted or seen */
  bool any_content;
  int n_tool_calls;
  bool after_think;    /* drop whitespace right after </think> */
  bool oom;
} mlxr_chat_parser;

/* start_in_think: the prompt ended inside an open <think> (the template opened it). */
void mlxr_chat_parser_init(mlxr_chat_parser *p, bool tools, bool start_in_think);
/* Feed text; deltas are reported through emit. final: no more text follows (flush everything). */
void mlxr_chat_parser_push(mlxr_chat_parser *p, const char *text, size_t len, bool final,
                           mlxr_chat_emit emit, void *user);
void mlxr_chat_parser_free(mlxr_chat_parser *p);

/* Does the prompt end inside an unclosed <think>? */
bool mlxr_chat_prompt_opens_think(const char *prompt);

#endif
