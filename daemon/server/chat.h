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
 * request gave tools. Whitespace-only content around tool calls is dropped. A call that is still
 * open when the output ends is given back as content, unless the generation was cut short (`cut`,
 * set before the final push) or the output was constrained to tool calls (`forced`, where any
 * text outside a complete call is a cut-off piece of call syntax and never content): then the
 * half-written call is dropped.
 *
 * Blocks: mlxr_chat_blocks turns the parser's deltas into the ordered output blocks that the
 * Responses and Anthropic Messages APIs are made of (reasoning, text, one per tool call), each
 * opened, fed and closed through a table of callbacks, so a route only says how a block looks on
 * its wire.
 *
 * Forced tool calls: mlxr_chat_tool_grammar() writes the GBNF that constrains an output to tool
 * calls in the model family's own form; mlxr_chat_json_grammar() the GBNF of a JSON output format.
 *
 * A parser (and a blocks tracker) belongs to one stream (one thread).
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
  bool forced;         /* the output was constrained to tool calls: nothing is content */
  bool cut;            /* set before the final push when the generation hit its token limit */
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

/* ---- helpers for mapping other APIs' messages onto chat messages ---- */
/* o[key] when it is a string, else NULL. */
const char *mlxr_chat_str(const cJSON *o, const char *key);
/* The function name of the tool call call_id among messages' tool_calls, or NULL. */
const char *mlxr_chat_call_name(const cJSON *messages, const char *call_id);
/* The text of a content value: a string, or parts that each carry a string "text" (text,
 * input_text, output_text, summary_text, reasoning_text ...) or "refusal", joined with newlines.
 * malloc'd; NULL with err set when a part has no text (an image, a file). */
char *mlxr_chat_parts_text(const cJSON *content, char *err, size_t err_len);

/* ---- output blocks ---- */
typedef enum mlxr_block_kind {
  MLXR_BLOCK_REASONING,
  MLXR_BLOCK_TEXT,
  MLXR_BLOCK_TOOL_CALL,
} mlxr_block_kind;

typedef struct mlxr_block {
  mlxr_block_kind kind;
  int index;          /* position in the output: 0, 1, ... */
  char id[48];        /* set by the open callback (each API has its own id forms) */
  char call_id[48];   /* TOOL_CALL: likewise */
  char *name;         /* TOOL_CALL: the function's name */
  char *text;         /* the text, the reasoning, or the call's arguments (compact JSON) so far */
  size_t len, cap;
  bool closed;
} mlxr_block;

typedef struct mlxr_block_ops {
  void (*open)(void *user, mlxr_block *b); /* may set b->id and b->call_id */
  void (*delta)(void *user, const mlxr_block *b, const char *text, size_t len);
  void (*close)(void *user, const mlxr_block *b);
} mlxr_block_ops;

typedef struct mlxr_chat_blocks {
  mlxr_chat_parser parser;
  mlxr_block *b;      /* [n] every block so far, in output order; b[n-1] may be open */
  int n, cap;
  const mlxr_block_ops *ops;
  void *user;
  bool reasoned;      /* the last push gave reasoning text */
  bool oom;
} mlxr_chat_blocks;

void mlxr_chat_blocks_init(mlxr_chat_blocks *bs, bool tools, bool start_in_think,
                           const mlxr_block_ops *ops, void *user);
/* Feed text (as mlxr_chat_parser_push); final closes the last block. Returns whether reasoning
 * text came out of this push (to count reasoning tokens). */
bool mlxr_chat_blocks_push(mlxr_chat_blocks *bs, const char *text, size_t len, bool final);
void mlxr_chat_blocks_free(mlxr_chat_blocks *bs);

/* ---- constrained outputs ---- */
/* tool_choice "required" or a named function: GBNF for one call (parallel false) or one or more,
 * each naming one of tools (chat-shaped: [{type: function, function: {name, parameters}}]) with
 * arguments that follow its parameter schema, in the form of the model's template. *out is
 * malloc'd. */
int mlxr_chat_tool_grammar(const cJSON *tools, const char *template_src, bool parallel, char **out,
                           char *err, size_t err_len);
/* GBNF of a JSON output: one that follows schema, or any JSON object when schema is NULL. */
int mlxr_chat_json_grammar(const cJSON *schema, char **out, char *err, size_t err_len);

#endif
