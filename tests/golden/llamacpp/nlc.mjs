// nlc.mjs: shared loader for the llama.cpp reference helpers (logits.mjs, tokenize.mjs, the
// llama.cpp golden tests and bench/llamacpp_bench.mjs).
//
// node-llama-cpp lives in tests/.cache/llamacpp/node_modules (installed by
// scripts/fetch.d/20-llamacpp.sh), not next to these scripts, and it is an ES module, so it is
// imported by absolute file URL. getCpuLlama() only ever loads the prebuilt CPU binaries
// (gpu: false, build: "never"): no download, no compile, no GPU probing.
//
// Which CPU variant: the prebuilt package holds one libggml-cpu-<variant>.so per x86 level
// (haswell, skylakex, icelake, zen4, sapphirerapids, ...) and ggml loads the best one this CPU
// runs. MLXR_GGML_CPU_VARIANT=<variant> pins one, so the tests can meet the variants of other
// machines (an AVX2-only laptop: haswell; an AMD EPYC with AVX-512 and no AMX: zen4): the modules
// are mirrored once into tests/.cache/llamacpp-pinned-<variant>/ (hard links) with every other
// libggml-cpu-*.so left out. loadedGgmlCpuVariant() says which one the process really loaded.
//
// Exports: repoRoot, cacheDir, quantizeBin, isInstalled(), loadNodeLlamaCpp(), getCpuLlama(opts),
// loadedGgmlCpuVariant(), loadModel(llama, path), vocabSize(model), parseArgs(argv, spec),
// parseTokenList(s).
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {fileURLToPath, pathToFileURL} from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const cacheDir = path.join(repoRoot, "tests/.cache/llamacpp");
export const quantizeBin = path.join(cacheDir, "bin/llamacpp-quantize");
const binsSubdir = "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";
const cpuLib = /^libggml-cpu-(.+)\.so$/;

/** node_modules holding only the pinned ggml CPU variant (made once, atomically). */
function pinnedModules(variant) {
  if (!/^[a-z0-9_]+$/.test(variant)) throw new Error(`MLXR_GGML_CPU_VARIANT='${variant}' is not a variant name`);
  const have = fs.readdirSync(path.join(cacheDir, binsSubdir))
    .map((f) => f.match(cpuLib)?.[1]).filter(Boolean).sort();
  if (!have.includes(variant))
    throw new Error(`MLXR_GGML_CPU_VARIANT: no ggml CPU variant '${variant}' (the package has: ${have.join(", ")})`);
  const dir = path.join(repoRoot, `tests/.cache/llamacpp-pinned-${variant}`);
  if (!fs.existsSync(dir)) {
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, {recursive: true, force: true});
    fs.mkdirSync(tmp);
    execFileSync("cp", ["-al", path.join(cacheDir, "node_modules"), path.join(tmp, "node_modules")]);
    for (const f of fs.readdirSync(path.join(tmp, binsSubdir))) {
      const m = f.match(cpuLib);
      if (m && m[1] !== variant) fs.rmSync(path.join(tmp, binsSubdir, f));
    }
    try {
      fs.renameSync(tmp, dir);
    } catch (e) { // another process made it first
      fs.rmSync(tmp, {recursive: true, force: true});
      if (!fs.existsSync(dir)) throw e;
    }
  }
  return path.join(dir, "node_modules");
}

const pinnedVariant = process.env.MLXR_GGML_CPU_VARIANT || null;
const modulesDir = () => (pinnedVariant ? pinnedModules(pinnedVariant) : path.join(cacheDir, "node_modules"));
const entryIn = (modules) => path.join(modules, "node-llama-cpp/dist/index.js");
const entry = entryIn(path.join(cacheDir, "node_modules"));

/** True when the fetch script has installed node-llama-cpp. */
export function isInstalled() {
  return fs.existsSync(entry);
}

/** The node-llama-cpp module (throws with a hint when it has not been fetched). */
export async function loadNodeLlamaCpp() {
  if (!isInstalled())
    throw new Error(`node-llama-cpp is not installed in ${cacheDir}: run scripts/fetch_test_deps.sh`);
  return import(pathToFileURL(entryIn(modulesDir())).href);
}

/** The ggml CPU variant this process has loaded ("haswell", "zen4", ...), or null before any. */
export function loadedGgmlCpuVariant() {
  const maps = fs.readFileSync("/proc/self/maps", "utf8");
  const m = maps.match(/libggml-cpu-([A-Za-z0-9_]+)\.so/);
  return m ? m[1] : null;
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
