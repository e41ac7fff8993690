/*
 * step_plan.c: see step_plan.h. A single pass over the sequences in admission order with a
 * running count of free blocks; the newest sequences are taken from the end of the list as
 * preemptions are needed, exactly as the scheduler used to do while reserving blocks in place.
 */
#include "daemon/scheduler/step_plan.h"

static int32_t blocks_for(int32_t tokens, int32_t block_size) {
  return tokens <= 0 ? 0 : (tokens + block_size - 1) / block_size;
}

static int32_t prefill_cap(const mlxr_plan_input *in) {
  if (in->target_latency_ms <= 0 || in->ema_prefill_row_ns <= 0) return 0;
  bool decodes = false;
  for (int32_t i = 0; i < in->n_seqs && !decodes; i++) decodes = in->seqs[i].decoding;
  if (!decodes) return 0;
  const double room = (double)in->target_latency_ms * 1e6 - in->ema_decode_ns;
  double rows = room / in->ema_prefill_row_ns;
  if (!(rows >= in->block_size)) rows = in->block_size; /* also catches NaN */
  if (rows > in->max_batch_tokens) rows = in->max_batch_tokens;
  return (int32_t)rows;
}

void mlxr_step_plan_build(const mlxr_plan_input *in, mlxr_plan *out) {
  out->n_items = out->n_preempt = out->n_rows = out->n_decode = out->blocks_used = 0;
  out->fail = -1;
  out->prefill_cap = prefill_cap(in);
  const int32_t bs = in->block_size > 0 ? in->block_size : 1;
  int32_t budget = in->max_batch_tokens;
  int32_t prefill_budget = out->prefill_cap > 0 ? out->prefill_cap : in->max_batch_tokens;
  int32_t free_blocks = in->free_blocks;
  int32_t draft_rows = in->max_draft_rows;
  int32_t n = in->n_seqs; /* sequences still in this step: preemption takes from the end */
  for (int32_t i = 0; i < n && budget > 0; i++) {
    const mlxr_plan_seq *q = &in->seqs[i];
    int32_t take = q->prefill_target - q->n_prefilled;
    if (q->decoding) {
      int32_t drafts = q->n_draft < draft_rows ? q->n_draft : draft_rows;
      if (drafts > budget - 1) drafts = budget - 1;
      take = 1 + (drafts > 0 ? drafts : 0);
    }
    if (take > budget) take = budget;
    if (!q->decoding && take > prefill_budget) take = prefill_budget;
    if (take <= 0) continue; /* this step's prefill allowance is spent */
    const int32_t start = q->decoding ? q->decode_end - 1 : q->n_prefilled;
    const int32_t end = q->decoding ? q->decode_end + take - 1 : q->n_prefilled + take;
    int32_t need = blocks_for(end, bs) - blocks_for(q->kv_tokens, bs);
    if (need < 0) need = 0;
    while (need > free_blocks && n - 1 > i) { /* the newest sequence not yet placed */
      n--;
      out->preempt[out->n_preempt++] = n;
      free_blocks += in->seqs[n].exclusive_blocks;
    }
    if (need > free_blocks) {
      if (i == 0) out->fail = i; /* alone, and still does not fit: it never will */
      else out->preempt[out->n_preempt++] = i;
      break; /* nothing after it runs this step */
    }
    free_blocks -= need;
    out->blocks_used += need;
    out->items[out->n_items++] = (mlxr_plan_item){i, start, take, q->decoding};
    out->n_rows += take;
    if (q->decoding) {
      out->n_decode++;
      draft_rows -= take - 1;
    } else {
      prefill_budget -= take;
    }
    budget -= take;
  }
}
