// logits.mjs: llama.cpp's next-token distribution at every position of a token list, as the
// reference the llama.cpp golden tests compare `mlxr logits` against.
//
//   node tests/golden/llamacpp/logits.mjs --model M.gguf --tokens 1,2,3 --out OUT.f32
//        [--threads N] [--kv f32|f16] [--flash-attention]
//
// Writes raw little-endian float32 [n][n_vocab]: row i is llama.cpp's LOG-PROBABILITY of every
// vocabulary token after tokens[0..i], and prints {"n", "n_vocab", "values": "logprob",
// "underflow"} as JSON on stdout.
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
import {getCpuLlama, loadModel, parseArgs, parseTokenList, vocabSize} from "./nlc.mjs";

function usage(msg) {
  if (msg) process.stderr.write(`logits.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node logits.mjs --model M.gguf --tokens 1,2,3 --out OUT.f32 " +
      "[--threads N] [--kv f32|f16] [--flash-attention]\n");
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs(process.argv.slice(2), {
    model: "string", tokens: "string", out: "string", threads: "int", kv: "string",
    "flash-attention": "bool",
  });
} catch (e) {
  usage(e.message);
}
const {opts} = parsed;
if (!opts.model || !opts.tokens || !opts.out) usage("--model, --tokens and --out are required");
const tokens = parseTokenList(opts.tokens);
if (tokens.length === 0) usage("empty token list");
const kvType = (opts.kv ?? "f32").toUpperCase();
if (kvType !== "F32" && kvType !== "F16") usage(`--kv must be f32 or f16, not ${opts.kv}`);

const {llama} = await getCpuLlama({threads: opts.threads});
const model = await loadModel(llama, opts.model);
const vocab = vocabSize(model);
for (const t of tokens) {
  if (t >= vocab) usage(`token ${t} out of range (n_vocab ${vocab})`);
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
  if (probs == null) throw new Error(`no probabilities returned for position ${i}`);
  if (probs.size !== vocab)
    throw new Error(`position ${i}: ${probs.size} probabilities, expected ${vocab}`);
  const row = out.subarray(i * vocab, (i + 1) * vocab);
  row.fill(Number.NaN);
  for (const [tok, p] of probs) {
    if (p > 0 && Number.isFinite(p) && p >= 1e-37) row[tok] = Math.log(p);
    else underflow++;
  }
}
fs.writeFileSync(opts.out, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
process.stdout.write(JSON.stringify({n, n_vocab: vocab, values: "logprob", underflow}) + "\n");

await context.dispose();
await model.dispose();
await llama.dispose();
