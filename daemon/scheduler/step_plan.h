/*
 * step_plan.h: one scheduler step's plan as plain data, built by a pure function from plain data,
 * so that the batching policy can be tested without a model, an engine or threads (vLLM's split of
 * schedule() from the code that runs the batch). The scheduler (scheduler.c) describes its running
 * sequences, oldest admission first, calls mlxr_step_plan_build, then carries the plan out: the
 * preemptions, the too-big request, then one batch row per planned position.
 *
 * The policy:
 *  - Every decoding sequence gets one row (its last sampled token), followed by its drafted tokens
 *    when it speculates (while max_draft_rows and the row budget last; the drafts are cut, never
 *    the row); a prefilling one gets a chunk of its remaining prompt. Oldest first, under
 *    max_batch_tokens rows.
 *  - Latency target: when the step decodes and the marginal cost of a prefill row is known, the
 *    prefill rows of the step are capped at (target - decode step time) / cost per row, but never
 *    below one KV block (waiting prompts still advance; chunks stay block-aligned) nor above
 *    max_batch_tokens. A step without decode rows prefills up to max_batch_tokens.
 *  - KV blocks: a sequence's rows need the blocks that take it from the positions it holds to the
 *    end of its rows. When the free blocks do not cover that, the newest sequence not yet placed
 *    in this step is preempted (its exclusively held blocks return), repeatedly. If the sequence
 *    still does not fit: the oldest one (nothing left to take from) can never fit and is failed;
 *    any other is preempted itself; either way nothing after it runs this step.
 * Blocks a preempted sequence shares with another are not counted as returned, so the plan never
 * promises more blocks than the cache will have.
 */
#ifndef MLXR_SCHEDULER_STEP_PLAN_H
#define MLXR_SCHEDULER_STEP_PLAN_H

#include <stdbool.h>
#include <stdint.h>

/* One running sequence, as the scheduler sees it at the start of the step. */
typedef struct mlxr_plan_seq {
  bool decoding;             /* its prompt is in the KV: it decodes one token */
  int32_t n_prefilled;       /* positions already in the KV (or planned in an earlier step) */
  int32_t prefill_target;    /* positions to compute before decoding */
  int32_t decode_end;        /* decoding: positions after this step's row (prompt + generated) */
  int32_t kv_tokens;         /* positions its KV blocks cover now */
  int32_t exclusive_blocks;  /* blocks that become free if it is preempted */
  int32_t n_draft;           /* decoding: drafted tokens to verify after its row (speculation) */
} mlxr_plan_seq;

typedef struct mlxr_plan_input {
  const mlxr_plan_seq *seqs; /* [n_seqs], oldest admission first */
  int32_t n_seqs;
  int32_t max_batch_tokens;
  int32_t block_size;        /* KV block size in positions */
  int32_t free_blocks;       /* blocks the KV cache can hand out now */
  int32_t target_latency_ms; /* <= 0: no latency target */
  double ema_decode_ns;      /* time of a decode-only step, 0: not measured */
  double ema_prefill_row_ns; /* marginal time of one prefill row, 0: not measured */
  int32_t max_draft_rows;    /* rows of drafts the step may verify in all (their logits rows) */
} mlxr_plan_input;

/* Rows for one sequence: positions [start, start + n) of seqs[seq]; a decode item's rows after the
 * first carry its first n - 1 drafts. */
typedef struct mlxr_plan_item {
  int32_t seq;
  int32_t start;
  int32_t n;
  bool decode;
} mlxr_plan_item;

typedef struct mlxr_plan {
  mlxr_plan_item *items;  /* [capacity n_seqs], in order */
  int32_t n_items;
  int32_t *preempt;       /* [capacity n_seqs], in the order they happen */
  int32_t n_preempt;
  int32_t fail;           /* a sequence that can never fit (fail it), or -1 */
  int32_t n_rows, n_decode;
  int32_t prefill_cap;    /* the step's prefill-row cap from the latency target, 0: none */
  int32_t blocks_used;    /* blocks the items reserve */
} mlxr_plan;

/* Plan one step into out, whose items and preempt arrays the caller provides with room for
 * in->n_seqs entries each. Pure: reads only its arguments. */
void mlxr_step_plan_build(const mlxr_plan_input *in, mlxr_plan *out);

#endif
