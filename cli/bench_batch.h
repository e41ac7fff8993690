/*
 * bench_batch.h: the `mlxr bench --concurrency` mode (bench_batch.c): aggregate decode throughput
 * of many sequences at once through the continuous-batching scheduler.
 */
#ifndef MLXR_CLI_BENCH_BATCH_H
#define MLXR_CLI_BENCH_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/runtime/engine.h"

/* Runs every level (sequences at once) with p-token prompts and n generated tokens each; prints a
 * table (or one JSON object). Returns the process exit status. */
int mlxr_bench_concurrency(const char *model_path, const char *model_name, const mlxr_engine_params *ep,
                           int spec_tokens, const int *levels, int n_levels, int32_t p, int32_t n, bool json);

#endif
