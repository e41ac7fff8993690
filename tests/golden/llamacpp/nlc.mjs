// nlc.mjs: shared loader for the llama.cpp reference helpers (logits.mjs, tokenize.mjs, the
// llama.cpp golden tests and bench/llamacpp_bench.mjs).
//
// node-llama-cpp lives in tests/.cache/llamacpp/node_modules (installed by
// scripts/fetch.d/20-llamacpp.sh), not next to these scripts, and it is an ES module, so it is
// imported by absolute file URL. getCpuLlama() only ever loads the prebuilt CPU binaries
// (gpu: false, build: "never"): no download, no compile, no GPU probing.
//
// Exports: repoRoot, cacheDir, quantizeBin, isInstalled(), loadNodeLlamaCpp(), getCpuLlama(opts),
// loadModel(llama, path), vocabSize(model), parseArgs(argv, spec), parseTokenList(s).
import fs from "node:fs";
import path from "node:path";
import {fileURLToPath, pathToFileURL} from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const cacheDir = path.join(repoRoot, "tests/.cache/llamacpp");
export const quantizeBin = path.join(cacheDir, "bin/llamacpp-quantize");
const entry = path.join(cacheDir, "node_modules/node-llama-cpp/dist/index.js");

/** True when the fetch script has installed node-llama-cpp. */
export function isInstalled() {
  return fs.existsSync(entry);
}

/** The node-llama-cpp module (throws with a hint when it has not been fetched). */
export async function loadNodeLlamaCpp() {
  if (!isInstalled())
    throw new Error(`node-llama-cpp is not installed in ${cacheDir}: run scripts/fetch_test_deps.sh`);
  return import(pathToFileURL(entry).href);
}

/** A Llama instance on the prebuilt CPU backend. threads: maximum threads (default: all cores). */
export async function getCpuLlama({threads, logLevel = "error"} = {}) {
  const nlc = await loadNodeLlamaCpp();
  const llama = await nlc.getLlama({
    gpu: false,
    build: "never",
    logLevel,
    ...(threads != null ? {maxThreads: threads} : {}),
  });
  return {nlc, llama};
}

/** Load a GGUF fully on the CPU. */
export async function loadModel(llama, modelPath) {
  return llama.loadModel({modelPath: path.resolve(modelPath), gpuLayers: 0, useMmap: true});
}

/** n_vocab of a loaded model: the length of tokenizer.ggml.tokens, as llama.cpp counts it. */
export function vocabSize(model) {
  const n = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length;
  if (!Number.isInteger(n) || n <= 0) throw new Error("cannot tell the vocabulary size");
  return n;
}

/**
 * Minimal --key value / --flag parser. spec maps option names to "string" | "int" | "bool";
 * unknown options throw. Returns {opts, rest}.
 */
export function parseArgs(argv, spec) {
  const opts = {};
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) {
      rest.push(a);
      continue;
    }
    const key = a.slice(2);
    const kind = spec[key];
    if (kind == null) throw new Error(`unknown option ${a}`);
    if (kind === "bool") {
      opts[key] = true;
      continue;
    }
    if (i + 1 >= argv.length) throw new Error(`option ${a} needs a value`);
    const v = argv[++i];
    if (kind === "int") {
      if (!/^-?\d+$/.test(v)) throw new Error(`option ${a}: not an integer: ${v}`);
      opts[key] = Number.parseInt(v, 10);
    } else {
      opts[key] = v;
    }
  }
  return {opts, rest};
}

/** "1,2,3" or "1 2 3" -> [1, 2, 3] (non-negative integers only). */
export function parseTokenList(s) {
  const parts = s.split(/[\s,]+/).filter((x) => x.length > 0);
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new Error(`bad token id '${p}'`);
    return Number.parseInt(p, 10);
  });
}
