// llamacpp_bench.mjs: llama.cpp's CPU speed on a GGUF, measured through node-llama-cpp 3.21.1's
// prebuilt binaries, as the baseline `mlxr bench --json` is compared with.
//
//   node bench/llamacpp_bench.mjs MODEL.gguf [--threads N] [--p 512] [--n 128] [--reps 3]
//        [--flash-attention on|off|auto] [--kv f16|f32|q8_0]
//
// Prints one JSON object:
//   {"pp": {"n": P, "tok_s": X}, "tg": {"n": N, "tok_s": Y}, "threads": T, "reps": R,
//    "engine": "llama.cpp ...", "model": PATH, "pp_runs": [...], "tg_runs": [...]}
//
// How it is measured (like llama-bench's pp/tg tests): after a warm-up, each repetition clears the
// sequence (an empty KV cache); pp decodes P tokens as one batch (batch size P, no logits wanted
// but the last); tg then starts again from an empty cache and decodes N tokens one at a time, each
// the greedy choice after the previous one (a plain fixed token where the model picks an
// end-of-generation token). Tokens are pseudo-random non-special ids from a fixed seed. tok_s is
// the mean over repetitions of tokens / wall seconds of that phase. The JS overhead per step
// (one addon call and one sample) is included, as it would be for any node-llama-cpp user; on
// small models it is visible in tg.
//
// Needs scripts/fetch_test_deps.sh (or scripts/fetch.d/20-llamacpp.sh) to have run.
import path from "node:path";
import {getCpuLlama, loadModel, parseArgs, vocabSize} from "../tests/golden/llamacpp/nlc.mjs";

function usage(msg) {
  if (msg) process.stderr.write(`llamacpp_bench.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node bench/llamacpp_bench.mjs MODEL.gguf [--threads N] [--p 512] [--n 128] " +
      "[--reps 3] [--flash-attention on|off|auto] [--kv f16|f32|q8_0]\n");
  process.exit(2);
}

let opts, rest;
try {
  ({opts, rest} = parseArgs(process.argv.slice(2), {
    model: "string", threads: "int", p: "int", n: "int", reps: "int",
    "flash-attention": "string", kv: "string",
  }));
} catch (e) {
  usage(e.message);
}
const modelPath = opts.model ?? rest[0];
if (!modelPath || rest.length > (opts.model ? 0 : 1)) usage("give exactly one model path");
const P = opts.p ?? 512;
const N = opts.n ?? 128;
const reps = opts.reps ?? 3;
if (P < 1 || N < 1 || reps < 1) usage("--p, --n and --reps must be positive");
const fa = opts["flash-attention"] ?? "auto";
if (!["on", "off", "auto"].includes(fa)) usage(`bad --flash-attention ${fa}`);
const kv = (opts.kv ?? "f16").toUpperCase();

const {llama} = await getCpuLlama({threads: opts.threads});
const model = await loadModel(llama, modelPath);
const threads = opts.threads ?? llama.cpuMathCores;
const context = await model.createContext({
  contextSize: Math.max(P, N) + 16,
  batchSize: P,
  sequences: 1,
  threads: {ideal: threads, min: threads},
  flashAttention: fa === "auto" ? "auto" : fa === "on",
  experimentalKvCacheKeyType: kv,
  experimentalKvCacheValueType: kv,
});
const seq = context.getSequence();

// Non-special token ids from a fixed-seed LCG.
const nVocab = vocabSize(model);
const usable = [];
for (let t = 0; t < nVocab; t++) {
  if (!model.isSpecialToken(t)) usable.push(t);
}
if (usable.length === 0) throw new Error("model has no non-special tokens");
let state = 12345;
function nextToken() {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return usable[state % usable.length];
}
const promptTokens = Array.from({length: P}, nextToken);
const fixedToken = usable[Math.floor(usable.length / 2)];

async function runPp() {
  await seq.clearHistory();
  const t0 = process.hrtime.bigint();
  await seq.evaluateWithoutGeneratingNewTokens(promptTokens);
  const t1 = process.hrtime.bigint();
  return P / (Number(t1 - t0) / 1e9);
}

async function runTg() {
  await seq.clearHistory();
  let tok = promptTokens[0];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const res = await seq.controlledEvaluate([[tok, {generateNext: {token: true}}]]);
    const next = res[0]?.next?.token;
    tok = next == null || model.isEogToken(next) ? fixedToken : next;
  }
  const t1 = process.hrtime.bigint();
  return N / (Number(t1 - t0) / 1e9);
}

// Warm-up: page the weights in and let the thread pool spin up.
await seq.clearHistory();
await seq.evaluateWithoutGeneratingNewTokens(promptTokens.slice(0, Math.min(P, 32)));
await runTg();

const ppRuns = [];
const tgRuns = [];
for (let r = 0; r < reps; r++) {
  ppRuns.push(await runPp());
  tgRuns.push(await runTg());
}
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
const round = (x) => Math.round(x * 100) / 100;
const result = {
  pp: {n: P, tok_s: round(mean(ppRuns))},
  tg: {n: N, tok_s: round(mean(tgRuns))},
  threads,
  reps,
  engine: `llama.cpp ${llama.llamaCppRelease.release} (node-llama-cpp 3.21.1 prebuilt CPU, ` +
    `kv ${kv.toLowerCase()}, flash-attention ${fa})`,
  model: path.resolve(modelPath),
  pp_runs: ppRuns.map(round),
  tg_runs: tgRuns.map(round),
};
process.stdout.write(JSON.stringify(result) + "\n");

await context.dispose();
await model.dispose();
await llama.dispose();
