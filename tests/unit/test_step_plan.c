/*
 * test_step_plan.c: the scheduler's step planner (daemon/scheduler/step_plan.c) without a model:
 * each case is a set of running sequences with hand-worked expectations from the policy stated in
 * step_plan.h (row budget, oldest first, the latency cap and its bounds, KV blocks, preemption of
 * the newest, the request that can never fit, blocks shared with others not counted).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "daemon/scheduler/step_plan.h"
#include "tests/unit/check.h"

#define MAXS 8

typedef struct planned {
  mlxr_plan plan;
  mlxr_plan_item items[MAXS];
  int32_t preempt[MAXS];
} planned;

static void run(const mlxr_plan_input *in, planned *p) {
  memset(p, 0, sizeof *p);
  p->plan.items = p->items;
  p->plan.preempt = p->preempt;
  mlxr_step_plan_build(in, &p->plan);
}

static mlxr_plan_seq decoding(int32_t decode_end, int32_t exclusive) {
  return (mlxr_plan_seq){.decoding = true, .n_prefilled = decode_end - 1, .prefill_target = decode_end - 1,
                         .decode_end = decode_end, .kv_tokens = decode_end - 1, .exclusive_blocks = exclusive};
}

static mlxr_plan_seq prefilling(int32_t done, int32_t target, int32_t exclusive) {
  return (mlxr_plan_seq){.decoding = false, .n_prefilled = done, .prefill_target = target, .decode_end = 0,
                         .kv_tokens = done, .exclusive_blocks = exclusive};
}

static bool item_is(const planned *p, int k, int32_t seq, int32_t start, int32_t n, bool decode) {
  if (k >= p->plan.n_items) return false;
  const mlxr_plan_item *it = &p->items[k];
  return it->seq == seq && it->start == start && it->n == n && it->decode == decode;
}

/* Oldest first under the row budget: an older prompt takes what is left after the decode before it. */
static void budget_and_order(void) {
  const mlxr_plan_seq seqs[] = {decoding(10, 1), prefilling(0, 100, 0), decoding(40, 3)};
  mlxr_plan_input in = {.seqs = seqs, .n_seqs = 3, .max_batch_tokens = 64, .block_size = 16, .free_blocks = 100};
  planned p;
  run(&in, &p);
  CHECK(p.plan.n_items == 2 && item_is(&p, 0, 0, 9, 1, true) && item_is(&p, 1, 1, 0, 63, false),
        "decode row, then a 63-row chunk; the third gets nothing (n_items %d)", p.plan.n_items);
  CHECK(p.plan.n_rows == 64 && p.plan.n_decode == 1 && p.plan.n_preempt == 0 && p.plan.fail == -1,
        "rows %d decode %d preempt %d fail %d", p.plan.n_rows, p.plan.n_decode, p.plan.n_preempt, p.plan.fail);
  /* blocks: the decode stays inside its block (9 -> 10 of 16), the chunk needs ceil(63/16) = 4 */
  CHECK(p.plan.blocks_used == 4, "blocks used %d, want 4", p.plan.blocks_used);
  CHECK(p.plan.prefill_cap == 0, "no latency target, no cap (%d)", p.plan.prefill_cap);
}

/* The latency cap: (target - decode time) / per-row time, within [block_size, max_batch_tokens]. */
static void latency_cap(void) {
  const mlxr_plan_seq seqs[] = {decoding(5, 1), prefilling(0, 500, 0), prefilling(0, 50, 0), decoding(70, 5)};
  mlxr_plan_input in = {.seqs = seqs, .n_seqs = 4, .max_batch_tokens = 256, .block_size = 16, .free_blocks = 100,
                        .target_latency_ms = 100, .ema_decode_ns = 20e6, .ema_prefill_row_ns = 1e6};
  planned p;
  run(&in, &p);
  CHECK(p.plan.prefill_cap == 80, "cap (100 - 20) ms / 1 ms = 80 rows, got %d", p.plan.prefill_cap);
  /* the second prompt finds the allowance spent and is skipped; the newest decoder still runs */
  CHECK(p.plan.n_items == 3 && item_is(&p, 0, 0, 4, 1, true) && item_is(&p, 1, 1, 0, 80, false) &&
            item_is(&p, 2, 3, 69, 1, true),
        "decode, 80-row chunk, (skip), decode: n_items %d", p.plan.n_items);
  struct {
    double decode_ns, row_ns;
    int32_t want;
  } bounds[] = {
      {150e6, 1e6, 16},       /* no room left: still one block */
      {0, 1e3, 256},          /* room for 100,000 rows: max_batch_tokens */
      {20e6, NAN, 16},        /* NaN cost: one block, never NaN rows */
      {20e6, 0, 0},           /* cost not measured yet: no cap */
  };
  for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
    in.ema_decode_ns = bounds[i].decode_ns;
    in.ema_prefill_row_ns = bounds[i].row_ns;
    run(&in, &p);
    CHECK(p.plan.prefill_cap == bounds[i].want, "bound %zu: cap %d, want %d", i, p.plan.prefill_cap, bounds[i].want);
  }
  /* no decoding sequence: no cap, the prompt takes the whole budget */
  const mlxr_plan_seq only_prompts[] = {prefilling(0, 500, 0)};
  mlxr_plan_input in2 = in;
  in2.seqs = only_prompts;
  in2.n_seqs = 1;
  in2.ema_decode_ns = 20e6;
  in2.ema_prefill_row_ns = 1e6;
  run(&in2, &p);
  CHECK(p.plan.prefill_cap == 0 && item_is(&p, 0, 0, 0, 256, false), "prompts only: cap %d", p.plan.prefill_cap);
}

/* Out of blocks: the newest sequences are preempted, then a non-oldest one that still does not fit
 * preempts itself and ends the step. */
static void preemption(void) {
  /* A decodes into a new block (32 -> 33: 1 block); B would too; free 0 */
  const mlxr_plan_seq seqs[] = {decoding(33, 3), decoding(17, 0), decoding(49, 1)};
  mlxr_plan_input in = {.seqs = seqs, .n_seqs = 3, .max_batch_tokens = 64, .block_size = 16, .free_blocks = 0};
  planned p;
  run(&in, &p);
  /* A needs 1: preempt C (newest, frees 1) -> A fits. B needs 1, nothing newer left, B is not the
   * oldest: B is preempted and the step ends. */
  CHECK(p.plan.n_preempt == 2 && p.preempt[0] == 2 && p.preempt[1] == 1, "preempted %d: [%d, %d]", p.plan.n_preempt,
        p.preempt[0], p.preempt[1]);
  CHECK(p.plan.n_items == 1 && item_is(&p, 0, 0, 32, 1, true) && p.plan.fail == -1, "only A runs (items %d)",
        p.plan.n_items);

  /* blocks shared with others do not count: preempting C (0 exclusive) does not help A, which is
   * the oldest and fails */
  const mlxr_plan_seq shared[] = {prefilling(0, 40, 0), decoding(20, 0)};
  in.seqs = shared;
  in.n_seqs = 2;
  in.free_blocks = 2;
  run(&in, &p);
  CHECK(p.plan.n_preempt == 1 && p.preempt[0] == 1 && p.plan.fail == 0 && p.plan.n_items == 0,
        "shared blocks: preempt %d, fail %d, items %d", p.plan.n_preempt, p.plan.fail, p.plan.n_items);

  /* enough blocks after exactly one preemption: the oldest prompt's 3 blocks */
  const mlxr_plan_seq enough[] = {prefilling(0, 40, 0), decoding(20, 1), decoding(30, 2)};
  in.seqs = enough;
  in.n_seqs = 3;
  in.free_blocks = 1;
  run(&in, &p);
  CHECK(p.plan.n_preempt == 1 && p.preempt[0] == 2 && p.plan.fail == -1, "one preemption (%d)", p.plan.n_preempt);
  /* then B (decode 19 -> 20, inside its 2nd block) needs nothing more */
  CHECK(p.plan.n_items == 2 && item_is(&p, 0, 0, 0, 40, false) && item_is(&p, 1, 1, 19, 1, true) &&
            p.plan.blocks_used == 3,
        "A's chunk and B's decode: items %d, blocks %d", p.plan.n_items, p.plan.blocks_used);
}

/* A prompt resumed after preemption keeps its cached positions: the chunk starts there. */
static void resumed_chunk(void) {
  const mlxr_plan_seq seqs[] = {prefilling(48, 70, 0)};
  mlxr_plan_input in = {.seqs = seqs, .n_seqs = 1, .max_batch_tokens = 512, .block_size = 16, .free_blocks = 2};
  planned p;
  run(&in, &p);
  /* 48 -> 70: blocks 3 -> 5, 2 new */
  CHECK(p.plan.n_items == 1 && item_is(&p, 0, 0, 48, 22, false) && p.plan.blocks_used == 2,
        "resumed: items %d blocks %d", p.plan.n_items, p.plan.blocks_used);
  in.free_blocks = 1; /* one short, alone: it can never fit */
  run(&in, &p);
  CHECK(p.plan.fail == 0 && p.plan.n_items == 0 && p.plan.n_preempt == 0, "one block short: fail %d", p.plan.fail);
}

int main(void) {
  budget_and_order();
  latency_cap();
  preemption();
  resumed_chunk();
  return check_report("test_step_plan");
}
