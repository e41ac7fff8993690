/*
 * chat_repl.h: the interactive chat of `mlxr run MODEL` (no prompt, on a terminal or with lines on
 * stdin), using the model's own chat template. See chat_repl.c.
 */
#ifndef MLXR_CLI_CHAT_REPL_H
#define MLXR_CLI_CHAT_REPL_H

#include <stdint.h>

#include "core/runtime/engine.h"
#include "core/runtime/sampler.h"

/* Runs until /bye or end of input; returns the process exit status. */
int mlxr_chat_repl(mlxr_engine *e, const mlxr_sampler_params *sp, int32_t n_predict,
                   const char *system_prompt);

#endif
