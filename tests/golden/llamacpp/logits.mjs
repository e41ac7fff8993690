// logits.mjs: llama.cpp's next-token distribution at every position of a token list, as the
// reference the llama.cpp golden tests compare `mlxr logits` against.
//
//   node tests/golden/llamacpp/logits.mjs --model M.gguf --tokens 1,2,3 --out OUT.f32
//        [--threads N] [--kv f32|f16] [--flash-attention]
//   node tests/golden/llamacpp/logits.mjs --jobs JOBS.json [--threads N] [--kv ..] [..]
//
// --jobs runs several evaluations in one process (saving Node and backend start-up per file):
// JOBS.json is an array of {"model", "tokens": [ids], "out"}; one JSON line is printed per job.
//
// Writes raw little-endian float32 [n][n_vocab]: row i is llama.cpp's LOG-PROBABILITY of every
// vocabulary token after tokens[0..i], and prints {"n", "n_vocab", "values": "logprob",
// "underflow", "ggml_cpu"} as JSON on stdout (ggml_cpu: the CPU variant llama.cpp ran, nlc.mjs).
//
// How it works: node-llama-cpp 3.21.1 exposes no raw-logits call, but
// LlamaContextSequence.controlledEvaluate() can ask, per input token, for "probabilities": the
// full vocabulary distribution. With temperature 0 (the default) its sampler chain is greedy only,
// so the addon (llama/addon/AddonContext.cpp, SampleToken) takes llama_get_logits_ith() for every
// vocabulary entry untouched and returns float32 softmax(logits) computed with the row maximum
// subtracted. log(p) therefore equals logits - logsumexp(logits): the logits up to one constant
// per row, which a comparison removes by centring both sides (or by comparing log-softmax). The
// float32 probabilities carry ~1e-7 relative error, so log(p) is good to ~2e-7 absolute unless p
// underflows (a logit more than ~87 below the row maximum); such entries are written as NaN and
// counted in "underflow".
//
// All tokens go in one batch (batch size = n, flash attention off by default, KV cache f32 by
// default so attention is not rounded through f16: this reference should be as exact as
// llama.cpp's CPU path allows).
import fs from "node:fs";
import {getCpuLlama, loadedGgmlCpuVariant, loadModel, parseArgs, parseTokenList, vocabSize} from "./nlc.mjs";

function usage(msg) {
  if (msg) process.stderr.write(`logits.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node logits.mjs (--model M.gguf --tokens 1,2,3 --out OUT.f32 | --jobs JOBS.json) " +
      "[--threads N] [--kv f32|f16] [--flash-attention]\n");
  process.exit(2);
}

let opts;
try {
  ({opts} = parseArgs(process.argv.slice(2), {
    model: "string", tokens: "string", out: "string", jobs: "string", threads: "int",
    kv: "string", "flash-attention": "bool",
  }));
} catch (e) {
  usage(e.message);
}
let jobs;
if (opts.jobs != null) {
  if (opts.model || opts.tokens || opts.out) usage("--jobs excludes --model, --tokens, --out");
  jobs = JSON.parse(fs.readFileSync(opts.jobs, "utf8"));
  if (!Array.isArray(jobs)) usage("--jobs file must hold a JSON array");
} else {
  if (!opts.model || !opts.tokens || !opts.out) usage("--model, --tokens and --out are required");
  jobs = [{model: opts.model, tokens: parseTokenList(opts.tokens), out: opts.out}];
}
const kvType = (opts.kv ?? "f32").toUpperCase();
if (kvType !== "F32" && kvType !== "F16") usage(`--kv must be f32 or f16, not ${opts.kv}`);

const {llama} = await getCpuLlama({threads: opts.threads});

/** Evaluates one job and writes its file; returns the summary object. */
async function runJob({model: modelPath, tokens, out: outPath}) {
  if (!Array.isArray(tokens) || tokens.length === 0) throw new Error(`${modelPath}: empty token list`);
  const model = await loadModel(llama, modelPath);
  const vocab = vocabSize(model);
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t >= vocab)
      throw new Error(`${modelPath}: token ${t} out of range (n_vocab ${vocab})`);
  }
  const n = tokens.length;
  const context = await model.createContext({
    contextSize: Math.max(256, n),
    batchSize: n,
    sequences: 1,
    flashAttention: !!opts["flash-attention"],
    experimentalKvCacheKeyType: kvType,
    experimentalKvCacheValueType: kvType,
    ...(opts.threads != null ? {threads: opts.threads} : {}),
  });
  const sequence = context.getSequence();
  const results = await sequence.controlledEvaluate(
    tokens.map((t) => [t, {generateNext: {probabilities: true}}]));

  const out = new Float32Array(n * vocab);
  let underflow = 0;
  for (let i = 0; i < n; i++) {
    const probs = results[i]?.next?.probabilities;
    if (probs == null) throw new Error(`${modelPath}: no probabilities for position ${i}`);
    if (probs.size !== vocab)
      throw new Error(`${modelPath}: position ${i}: ${probs.size} probabilities, expected ${vocab}`);
    const row = out.subarray(i * vocab, (i + 1) * vocab);
    row.fill(Number.NaN);
    for (const [tok, p] of probs) {
      if (p > 0 && Number.isFinite(p) && p >= 1e-37) row[tok] = Math.log(p);
      else underflow++;
    }
  }
  fs.writeFileSync(outPath, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  await context.dispose();
  await model.dispose();
  return {model: modelPath, n, n_vocab: vocab, values: "logprob", underflow, ggml_cpu: loadedGgmlCpuVariant()};
}

let failed = false;
for (const job of jobs) {
  try {
    process.stdout.write(JSON.stringify(await runJob(job)) + "\n");
  } catch (e) {
    failed = true;
    process.stdout.write(JSON.stringify({model: job.model, error: String(e?.message ?? e)}) + "\n");
  }
}
await llama.dispose();
process.exit(failed ? 1 : 0);
