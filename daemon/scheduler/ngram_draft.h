/*
 * ngram_draft.h: prompt-lookup drafting for speculative decoding (no second model): the tokens
 * that followed the latest earlier occurrence of the sequence's last n tokens are proposed as its
 * next ones. It wins where the output copies its context: edits, summaries, code, RAG answers.
 */
#ifndef MLXR_SCHEDULER_NGRAM_DRAFT_H
#define MLXR_SCHEDULER_NGRAM_DRAFT_H

#include <stdint.h>

/* ctx[0..n): the sequence so far (prompt, then every generated token). For the suffix length
 * ng = max_n down to min_n (>= 1), find the latest i < n - ng with ctx[i..i+ng) equal to the
 * last ng tokens; the first such match proposes ctx[i+ng ..], at most k tokens and never past
 * n. Writes the proposal to out[0..returned) and returns its length (0: no match). Pure. */
int32_t mlxr_ngram_propose(const int32_t *ctx, int32_t n, int32_t min_n, int32_t max_n, int32_t k, int32_t *out);

#endif
