/*
 * chat_repl.h: the interactive chat of `mlxr run MODEL` (no prompt, on a terminal or with lines on
 * stdin), using the model's own chat template. See chat_repl.c.
 */
#ifndef MLXR_CLI_CHAT_REPL_H
#define MLXR_CLI_CHAT_REPL_H

#include <stdint.h>

#include "core/runtime/engine.h"
#include "core/runtime/sampler.h"

#include <stddef.h>

#include <cjson/cJSON.h>

/* Where a turn's reply comes from: the engine in this process, or a running mlxrd. turn() streams
 * the reply to stdout and returns it in *reply (malloc'd, *reply_len bytes); it returns 0, a
 * positive value to drop this turn and go on, or a negative value to end the chat. */
typedef struct mlxr_chat_backend {
  void *ctx;
  int (*turn)(void *ctx, const cJSON *messages, char **reply, size_t *reply_len);
} mlxr_chat_backend;

/* The conversation loop (input, commands, history) over any backend. */
int mlxr_chat_loop(const mlxr_chat_backend *b, const char *system_prompt);

/* In process: runs until /bye or end of input; returns the process exit status. */
int mlxr_chat_repl(mlxr_engine *e, const mlxr_sampler_params *sp, int32_t n_predict,
                   const char *system_prompt);

#endif
