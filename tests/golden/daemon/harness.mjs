// harness.mjs: shared by tests/golden/test_daemon_*.mjs. Makes the tiny random-weight test model
// (scripts/make_random_model.py + mlxr convert) in a temp dir, starts build/bin/mlxrd on a free
// port with its own Unix socket, waits for /health, and stops it (SIGTERM, then SIGKILL) at exit.
// Also loads the pinned official clients from tests/.cache/daemon-clients (scripts/fetch.d/40-clients.sh).
import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const SRC = process.env.MLXR_SRC || process.cwd();
export const BIN = process.env.MLXR_BIN || path.join(SRC, "build/bin");

export function loadClient(name) {
  const dir = path.join(SRC, "tests/.cache/daemon-clients");
  if (!fs.existsSync(path.join(dir, "node_modules", name, "package.json")))
    throw new Error(`npm package ${name} missing: run scripts/fetch_test_deps.sh (scripts/fetch.d/40-clients.sh)`);
  return createRequire(path.join(dir, "package.json"))(name);
}

export function makeModel(tmp) {
  const hf = path.join(tmp, "hf");
  execFileSync("/usr/bin/python3", [path.join(SRC, "scripts/make_random_model.py"), "--out", hf, "--hidden", "64",
    "--intermediate", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2"], { stdio: "ignore" });
  const out = path.join(tmp, "tiny.gguf");
  execFileSync(path.join(BIN, "mlxr"), ["convert", hf, "-o", out], { stdio: "ignore" });
  return out;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

export async function startDaemon(extraArgs = [], env = {}) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mlxrd-test-"));
  const model = makeModel(tmp);
  const port = await freePort();
  const sock = path.join(tmp, "mlxr.sock");
  const log = [];
  const child = spawn(path.join(BIN, "mlxrd"), ["--model", model, "--port", String(port), "--socket", sock,
    "--threads", "2", ...extraArgs], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => log.push(String(d)));
  child.stderr.on("data", (d) => log.push(String(d)));
  let exited = null;
  child.on("exit", (code, sig) => { exited = { code, sig }; });
  const stop = () => {
    if (exited) return;
    try { child.kill("SIGTERM"); } catch {}
  };
  process.on("exit", () => { if (!exited) try { child.kill("SIGKILL"); } catch {} fs.rmSync(tmp, { recursive: true, force: true }); });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (exited) throw new Error("mlxrd exited early: " + log.join(""));
    try { const r = await fetch(base + "/health"); if (r.ok) break; } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base, port, sock, tmp, child, log,
    alive: () => !exited,
    async stop() {
      stop();
      for (let i = 0; i < 100 && !exited; i++) await new Promise((r) => setTimeout(r, 50));
      if (!exited) { child.kill("SIGKILL"); return false; }
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

export const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
