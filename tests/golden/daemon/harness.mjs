// harness.mjs: shared by tests/golden/test_daemon_*.mjs. Makes the tiny random-weight test model
// (scripts/make_random_model.py + mlxr convert) in a temp dir, starts build/bin/mlxrd with --port 0
// (the kernel picks a free port at bind time; mlxrd prints "mlxrd: listening on 127.0.0.1:PORT" on
// stdout, which is read here, so no port is guessed and no other process can take it first) and
// its own Unix socket, and stops it (SIGTERM, then SIGKILL) at exit. Every process started here has
// a time limit: helpers through execFileSync's timeout, mlxrd under coreutils' timeout(1), so that a
// daemon outlives a test killed by ctest by DAEMON_LIMIT_S at most.
// Optionally also serves the random-weight Qwen3 fixture (tests/fixtures/hf/qwen3: its real chat
// template renders tools and <tool_call>s) as "qwen3", and a copy whose template opens <think> in
// the generation prompt, as reasoning models' templates do, as "qthink" (every token it writes is
// reasoning). Also loads the pinned official clients from tests/.cache/daemon-clients
// (scripts/fetch.d/40-clients.sh).
import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { skip } from "../suite.mjs";

export const SRC = process.env.MLXR_SRC || process.cwd();
export const BIN = process.env.MLXR_BIN || path.join(SRC, "build/bin");
const HELPER_LIMIT_MS = 300000;  // model making and conversion (seconds under ASan)
const DAEMON_LIMIT_S = 1200;     // mlxrd's own limit: ctest's TIMEOUT for a script test
const READY_LIMIT_MS = 120000;   // from spawn to the readiness line (models load first)

// name: a package, or a package's subpath export ("@langchain/core/messages").
export function loadClient(name) {
  const dir = path.join(SRC, "tests/.cache/daemon-clients");
  const pkg = name.split("/").slice(0, name.startsWith("@") ? 2 : 1).join("/");
  if (!fs.existsSync(path.join(dir, "node_modules", pkg, "package.json"))) // the reference client
    skip(`npm package ${name} missing: run scripts/fetch_test_deps.sh (scripts/fetch.d/40-clients.sh)`);
  return createRequire(path.join(dir, "package.json"))(name);
}

// Debian's python3 (with numpy, from scripts/setup.sh); elsewhere (a GPU machine's image) whichever
// python3 on PATH has numpy.
const PYTHON = (() => {
  try {
    execFileSync("/usr/bin/python3", ["-c", "import numpy"], { stdio: "ignore" });
    return "/usr/bin/python3";
  } catch {
    return "python3";
  }
})();

export function makeModel(tmp) {
  const hf = path.join(tmp, "hf");
  execFileSync(PYTHON, [path.join(SRC, "scripts/make_random_model.py"), "--out", hf, "--hidden", "64",
    "--intermediate", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2"], { stdio: "ignore", timeout: HELPER_LIMIT_MS });
  const out = path.join(tmp, "tiny.gguf");
  execFileSync(path.join(BIN, "mlxr"), ["convert", hf, "-o", out], { stdio: "ignore", timeout: HELPER_LIMIT_MS });
  return out;
}

// The Qwen3 fixture converted to name.gguf; thinking: its generation prompt opens <think>.
export function makeQwen3(tmp, name, thinking = false) {
  const hf = path.join(tmp, name + "-hf");
  fs.cpSync(path.join(SRC, "tests/fixtures/hf/qwen3"), hf, { recursive: true });
  if (thinking) {
    const p = path.join(hf, "tokenizer_config.json");
    const cfg = JSON.parse(fs.readFileSync(p, "utf8"));
    const gen = "{{- '<|im_start|>assistant\\n' }}";
    if (!cfg.chat_template.includes(gen)) throw new Error("qwen3 fixture template changed: " + gen + " not found");
    cfg.chat_template = cfg.chat_template.replace(gen, "{{- '<|im_start|>assistant\\n<think>\\n' }}")
      .replace("{{- '<think>\\n\\n</think>\\n\\n' }}", "{{- '\\n</think>\\n\\n' }}");
    fs.writeFileSync(p, JSON.stringify(cfg));
  }
  const out = path.join(tmp, name + ".gguf");
  execFileSync(path.join(BIN, "mlxr"), ["convert", hf, "-o", out, "--type", "f32"], { stdio: "ignore", timeout: HELPER_LIMIT_MS });
  return out;
}

// opts.qwen3 / opts.qthink: also serve those models (see makeQwen3); opts.config: server.yaml text.
export async function startDaemon(extraArgs = [], env = {}, opts = {}) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlxrd-test-"));
  const model = makeModel(tmp);
  const more = [];
  if (opts.qwen3) more.push("--model", makeQwen3(tmp, "qwen3"));
  if (opts.qthink) more.push("--model", makeQwen3(tmp, "qthink", true));
  if (opts.config) {
    fs.writeFileSync(path.join(tmp, "server.yaml"), opts.config);
    more.push("--config", path.join(tmp, "server.yaml"));
  }
  const sock = path.join(tmp, "mlxr.sock");
  const log = [];
  // timeout(1) passes our SIGTERM on to mlxrd and exits with mlxrd's status
  const child = spawn("timeout", ["-k", "10", String(DAEMON_LIMIT_S), path.join(BIN, "mlxrd"), "--model", model,
    "--port", "0", "--socket", sock, "--threads", "2", ...more, ...extraArgs],
    // a private model store (the registry) unless the test names one: never the user's
    { env: { ...process.env, MLXR_MODELS: path.join(tmp, "store"), ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", port = 0;
  child.stdout.on("data", (d) => {
    log.push(String(d));
    stdout += String(d);
    const m = /^mlxrd: listening on 127\.0\.0\.1:(\d+)$/m.exec(stdout);
    if (m) port = Number(m[1]);
  });
  child.stderr.on("data", (d) => log.push(String(d)));
  let exited = null;
  child.on("exit", (code, sig) => { exited = { code, sig }; });
  const stop = () => {
    if (exited) return;
    try { child.kill("SIGTERM"); } catch {}
  };
  // timeout(1) leads its own process group (it and mlxrd): a SIGKILL goes to the group, since
  // timeout cannot pass that one on
  const kill = () => { try { process.kill(-child.pid, "SIGKILL"); } catch {} };
  process.on("exit", () => { if (!exited) kill(); fs.rmSync(tmp, { recursive: true, force: true }); });
  for (const t0 = Date.now(); !port; await new Promise((r) => setTimeout(r, 20))) {
    if (exited) throw new Error("mlxrd exited early: " + log.join(""));
    if (Date.now() - t0 > READY_LIMIT_MS) {
      stop();
      throw new Error(`mlxrd not listening after ${READY_LIMIT_MS / 1000} s: ` + log.join(""));
    }
  }
  const base = `http://127.0.0.1:${port}`;
  const health = await fetch(base + "/health");
  if (!health.ok) throw new Error(`mlxrd listening on ${port} but /health says ${health.status}: ` + log.join(""));
  return {
    base, port, sock, tmp, child, log,
    alive: () => !exited,
    async stop() {
      stop();
      for (let i = 0; i < 100 && !exited; i++) await new Promise((r) => setTimeout(r, 50));
      if (!exited) { kill(); return false; }
      return exited.code === 0;
    },
  };
}

// A tiny check collector: check(name, cond, detail); summary() prints "N passed, N failed".
export function checker() {
  let pass = 0, fail = 0;
  const check = (name, cond, detail = "") => {
    if (cond) pass++;
    else { fail++; console.log(`FAIL ${name}${detail ? ": " + detail : ""}`); }
    return cond;
  };
  const summary = () => { console.log(`${pass} passed, ${fail} failed`); return fail === 0 && pass > 0; };
  return { check, summary };
}

// POST a JSON body to the daemon at base, the JSON answer back.
export const postJSON = async (base, p, body, headers = {}) =>
  (await fetch(base + p, { method: "POST", headers, body: JSON.stringify(body) })).json();

// How many tokens messages (and tools) take once the model's chat template renders them
// (/apply-template, then /tokenize): what the prompt of a generation route must be.
export async function promptTokens(base, model, messages, tools = null, headers = {}) {
  const body = { model, messages };
  if (tools) body.tools = tools;
  const t = await postJSON(base, "/apply-template", body, headers);
  return (await postJSON(base, "/tokenize", { model, content: t.prompt }, headers)).tokens.length;
}

export const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
