// tokenize.mjs: llama.cpp's tokenizer on a GGUF, for cross-checking MLXR's tokenizers.
//
//   node tests/golden/llamacpp/tokenize.mjs --model M.gguf (--text STR | --file F | --json-lines F)
//        [--special]
//
// Prints the token ids as a JSON array (one array per input line with --json-lines, whose lines
// are JSON strings). The model is loaded with vocabOnly, so no weights are read.
//
// How it works: LlamaModel.tokenize(text, special) calls llama.cpp's common_tokenize(vocab, text,
// add_special = false, parse_special = special): no BOS/EOS is added, and special-token text such
// as "<s>" is matched as a special token only with --special. That is what
// `mlxr tokenize --no-special` should reproduce without --special.
import fs from "node:fs";
import path from "node:path";
import {getCpuLlama, parseArgs} from "./nlc.mjs";

function usage(msg) {
  if (msg) process.stderr.write(`tokenize.mjs: ${msg}\n`);
  process.stderr.write(
    "usage: node tokenize.mjs --model M.gguf (--text STR | --file F | --json-lines F) [--special]\n");
  process.exit(2);
}

let opts;
try {
  ({opts} = parseArgs(process.argv.slice(2), {
    model: "string", text: "string", file: "string", "json-lines": "string", special: "bool",
  }));
} catch (e) {
  usage(e.message);
}
if (!opts.model) usage("--model is required");
const sources = ["text", "file", "json-lines"].filter((k) => opts[k] != null);
if (sources.length !== 1) usage("give exactly one of --text, --file, --json-lines");

const {llama} = await getCpuLlama();
const model = await llama.loadModel({modelPath: path.resolve(opts.model), vocabOnly: true});
const special = !!opts.special;
if (opts["json-lines"] != null) {
  const lines = fs.readFileSync(opts["json-lines"], "utf8").split("\n").filter((l) => l.length > 0);
  for (const line of lines) {
    const text = JSON.parse(line);
    process.stdout.write(JSON.stringify(Array.from(model.tokenize(text, special))) + "\n");
  }
} else {
  const text = opts.text ?? fs.readFileSync(opts.file, "utf8");
  process.stdout.write(JSON.stringify(Array.from(model.tokenize(text, special))) + "\n");
}
await model.dispose();
await llama.dispose();
