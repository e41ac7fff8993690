// soak_load.mjs: the mixed client load of bench/soak.sh. For --seconds it keeps --clients workers
// busy against a live mlxrd, each picking a scenario at random (weights in SCENARIOS below):
//   OpenAI (the official `openai` npm client): chat and completions, streamed and not, some with a
//     shared long system prompt (prefix cache), json_object / json_schema output, logprobs, stop
//     strings, n = 2; tool calls forced by tool_choice "required" (constrained decoding), streamed
//     and not; embeddings (float and base64); the Responses API with store and previous_response_id;
//   Ollama (the official `ollama` npm client): chat and generate, streamed and not, tools, embed
//     and the legacy embeddings route;
//   Anthropic Messages and the llama.cpp / listing routes by plain fetch;
//   cancellations: streams dropped after a few chunks (openai: leaving the loop; ollama: abort()),
//     non-streamed requests aborted after 20-400 ms;
//   bad requests by plain fetch or a raw socket: malformed JSON, wrong types, unknown model and
//     route, wrong method, a prompt over the context, invalid UTF-8, a body over --max-body, an
//     unknown tool_choice, a truncated request whose client hangs up, a garbage request line;
//     each has the one status the API documents (BAD below).
// Besides the workers, every 60 s a burst of --burst concurrent completions goes to --burst-model
// (a second model, so the main model's queue is never the one filled): more than it can run and
// queue, so some are refused with 503 (code server_busy, Retry-After): the only 503 that is
// intended. The other intended 5xx is 501 from Ollama's model-management routes (/api/pull):
// mlxrd documents them as not implemented. Every other 5xx, any other status a request did not
// expect, a malformed success body and any transport error not caused by our own abort is
// "unexpected"; bench/soak.sh fails the run on any.
//
// The clients are the pinned ones in tests/.cache/daemon-clients (scripts/fetch_test_deps.sh).
// Every request has a time limit (REQ_TIMEOUT_MS). At the end the outcome counts (per scenario and
// per status) and the first unexpected details go to --out as JSON; a progress line goes to stderr
// every minute. Exit 0 once the time is up, whatever the outcomes (soak.sh judges them); 2 on
// usage or setup errors.
//
// usage: node bench/soak_load.mjs --base http://127.0.0.1:PORT --model M --burst-model B
//          --seconds S [--clients 8] [--burst 28] [--ctx 2048] [--max-body BYTES] [--seed N] --out FILE
import { createRequire } from "node:module";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const REQ_TIMEOUT_MS = 120000; // one request, streamed or not (a hang is an unexpected outcome)
const BURST_EVERY_MS = 60000;

// ---- arguments
const opt = { clients: 8, burst: 28, ctx: 2048, "max-body": 1 << 20, seed: 1 };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, ""), v = process.argv[i + 1];
  if (v === undefined) { console.error("soak_load: missing value for " + k); process.exit(2); }
  opt[k] = /^-?\d+$/.test(v) ? Number(v) : v;
}
for (const k of ["base", "model", "burst-model", "seconds", "out"]) {
  if (opt[k] === undefined) { console.error("soak_load: --" + k + " is required"); process.exit(2); }
}
const BASE = opt.base, MODEL = opt.model, BURST_MODEL = opt["burst-model"];

// ---- clients (as tests/golden/daemon/harness.mjs loads them)
const SRC = process.env.MLXR_SRC || path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLIENTS = path.join(SRC, "tests/.cache/daemon-clients");
function loadClient(name) {
  if (!fs.existsSync(path.join(CLIENTS, "node_modules", name, "package.json"))) {
    console.error(`soak_load: npm package ${name} missing: run scripts/fetch_test_deps.sh`);
    process.exit(2);
  }
  return createRequire(path.join(CLIENTS, "package.json"))(name);
}
const OpenAI = loadClient("openai");
const { Ollama } = loadClient("ollama");
const oai = new OpenAI({ baseURL: BASE + "/v1", apiKey: "unused", maxRetries: 0, timeout: REQ_TIMEOUT_MS });
// ollama-js has no timeout of its own: every fetch it makes gets one, next to its abort signal
const timedFetch = (url, init = {}) => {
  const t = AbortSignal.timeout(REQ_TIMEOUT_MS);
  return fetch(url, { ...init, signal: init.signal ? AbortSignal.any([init.signal, t]) : t });
};
const ollama = new Ollama({ host: BASE, fetch: timedFetch });

// ---- a seeded PRNG (mulberry32), so a run's mix is reproducible
let rngState = opt.seed >>> 0;
function rand() {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1)); // inclusive
const pick = (a) => a[Math.floor(rand() * a.length)];
const WORDS = ("the a of to and in is was for on with as by at from it that this be are or an which one all " +
  "time city river light stone music garden morning winter paper window story number question answer " +
  "mountain engine signal market letter bridge forest quiet bright slow early green ancient simple").split(" ");
const words = (n) => Array.from({ length: n }, () => pick(WORDS)).join(" ");
// A long system prompt shared by half the chat requests: its blocks stay in the prefix cache
const SYSTEM = "You are a careful assistant for the soak test. " + words(180);
const messages = () => {
  const m = [];
  if (rand() < 0.5) m.push({ role: "system", content: SYSTEM });
  m.push({ role: "user", content: words(randInt(3, 120)) });
  return m;
};
const TOOLS = [{ type: "function", function: { name: "get_time", description: "time in a zone",
  parameters: { type: "object", properties: { zone: { type: "string", maxLength: 8 } }, required: ["zone"] } } }];
const SCHEMA = { type: "object", properties: { name: { type: "string", maxLength: 12 }, n: { type: "integer", minimum: 0, maximum: 99 } },
  required: ["name", "n"], additionalProperties: false };

// ---- outcomes
const stats = { requests: 0, by_scenario: {}, statuses: {}, outcomes: { ok: 0, cancelled: 0, intended_5xx: 0, unexpected: 0 },
  unexpected: [], bursts: 0, burst_503: 0, burst_200: 0 };
class Unexpected extends Error {}
function record(scenario, outcome, status, detail) {
  stats.requests++;
  const s = (stats.by_scenario[scenario] ||= { n: 0, ok: 0, cancelled: 0, intended_5xx: 0, unexpected: 0 });
  s.n++;
  s[outcome]++;
  stats.outcomes[outcome]++;
  const key = String(status ?? "none");
  stats.statuses[key] = (stats.statuses[key] || 0) + 1;
  if (outcome === "unexpected" && stats.unexpected.length < 50)
    stats.unexpected.push({ t_s: Math.round((Date.now() - T0) / 1000), scenario, status, detail: String(detail).slice(0, 400) });
}
const expect = (cond, what) => { if (!cond) throw new Unexpected(what); };
// An error thrown by a client, as (status, text): the SDKs' typed errors carry the HTTP status
const errStatus = (e) => e?.status ?? e?.status_code ?? null;

// Runs one scenario body; body returns "ok" or "cancelled" (its own abort took effect).
async function run(name, body) {
  let aborted = false;
  const markAborted = () => { aborted = true; };
  try {
    const out = await body(markAborted);
    record(name, out || "ok", 200);
  } catch (e) {
    const st = errStatus(e);
    if (aborted && (st === null || st === undefined)) record(name, "cancelled", "aborted");
    else record(name, "unexpected", st, e instanceof Unexpected ? e.message : (e?.stack || String(e)));
  }
}

// ---- OpenAI scenarios
async function oaiChat() {
  const req = { model: MODEL, messages: messages(), max_tokens: randInt(4, 48), temperature: pick([0, 0.7, 1.0]), seed: randInt(0, 1e6) };
  const v = rand();
  if (v < 0.15) req.response_format = { type: "json_schema", json_schema: { name: "thing", schema: SCHEMA, strict: true } }, req.max_tokens = 96;
  else if (v < 0.25) req.response_format = { type: "json_object" }, req.max_tokens = 64;
  else if (v < 0.35) req.logprobs = true, req.top_logprobs = 2;
  else if (v < 0.45) req.stop = [pick(WORDS), "\n"];
  else if (v < 0.5) req.n = 2;
  const r = await oai.chat.completions.create(req);
  expect(r.object === "chat.completion" && r.choices.length === (req.n || 1), "chat shape: " + JSON.stringify(r).slice(0, 200));
  expect(r.choices.every((c) => typeof c.message.content === "string" && ["stop", "length"].includes(c.finish_reason)),
    "chat choice: " + JSON.stringify(r.choices).slice(0, 200));
  if (req.response_format?.type === "json_schema" && r.choices[0].finish_reason === "stop") {
    const o = JSON.parse(r.choices[0].message.content);
    expect(typeof o.name === "string" && Number.isInteger(o.n), "json_schema output: " + r.choices[0].message.content);
  }
}
async function oaiChatStream() {
  const s = await oai.chat.completions.create({ model: MODEL, messages: messages(), max_tokens: randInt(4, 64),
    temperature: pick([0, 0.8]), stream: true, stream_options: { include_usage: true } });
  let finish = null, usage = null;
  for await (const ch of s) {
    if (ch.choices?.[0]?.finish_reason) finish = ch.choices[0].finish_reason;
    if (ch.usage) usage = ch.usage;
  }
  expect(["stop", "length"].includes(finish) && usage?.prompt_tokens > 0 && usage.completion_tokens >= 0,
    `stream end: ${finish} ${JSON.stringify(usage)}`);
}
async function oaiCompletion() {
  const stream = rand() < 0.5;
  const req = { model: MODEL, prompt: words(randInt(2, 200)), max_tokens: randInt(4, 48), temperature: pick([0, 1]), stream };
  if (!stream) {
    const r = await oai.completions.create(req);
    expect(r.object === "text_completion" && typeof r.choices[0].text === "string", "completion shape");
    return;
  }
  let finish = null;
  for await (const ch of await oai.completions.create(req)) if (ch.choices?.[0]?.finish_reason) finish = ch.choices[0].finish_reason;
  expect(["stop", "length"].includes(finish), "completion stream end: " + finish);
}
async function oaiStreamAbort(markAborted) {
  const k = randInt(1, 8);
  const s = await oai.chat.completions.create({ model: MODEL, messages: messages(), max_tokens: 600, temperature: 1, stream: true });
  let got = 0;
  for await (const _ of s) if (++got === k) { markAborted(); break; } // leaving the loop aborts the request
  return got === k ? "cancelled" : "ok";
}
async function oaiAbortNonStream(markAborted) {
  const ac = new AbortController();
  const timer = setTimeout(() => { markAborted(); ac.abort(); }, randInt(20, 400));
  try {
    const r = await oai.chat.completions.create({ model: MODEL, messages: messages(), max_tokens: 400, temperature: 1 }, { signal: ac.signal });
    expect(r.choices?.length === 1, "chat shape");
    return "ok";
  } finally { clearTimeout(timer); }
}
async function oaiTools() {
  const req = { model: MODEL, messages: messages(), tools: TOOLS, tool_choice: "required", parallel_tool_calls: false,
    max_tokens: 160, temperature: 0.7, seed: randInt(0, 1e6) };
  if (rand() < 0.5) {
    const r = await oai.chat.completions.create(req);
    const c = r.choices[0];
    expect(c.finish_reason === "tool_calls" && c.message.tool_calls?.[0]?.function?.name === "get_time" &&
      typeof JSON.parse(c.message.tool_calls[0].function.arguments).zone === "string", "tool call: " + JSON.stringify(c).slice(0, 300));
    return;
  }
  let name = null, args = "", finish = null;
  for await (const ch of await oai.chat.completions.create({ ...req, stream: true })) {
    const c = ch.choices?.[0];
    if (!c) continue;
    for (const t of c.delta?.tool_calls || []) { name ||= t.function?.name; args += t.function?.arguments || ""; }
    if (c.finish_reason) finish = c.finish_reason;
  }
  expect(finish === "tool_calls" && name === "get_time" && typeof JSON.parse(args).zone === "string", `streamed tool call: ${finish} ${name} ${args}`);
}
async function oaiEmbeddings() {
  const input = rand() < 0.5 ? words(randInt(1, 60)) : Array.from({ length: randInt(2, 6) }, () => words(randInt(1, 30)));
  const format = pick(["float", "base64"]); // asked for by name, base64 comes back as the string
  const r = await oai.embeddings.create({ model: MODEL, input, encoding_format: format });
  const n = Array.isArray(input) ? input.length : 1;
  const vec = (e) => format === "base64" ? new Float32Array(Uint8Array.from(Buffer.from(e, "base64")).buffer) : e;
  expect(r.data.length === n && r.data.every((d) => vec(d.embedding).length > 0 && vec(d.embedding).every(Number.isFinite)),
    "embeddings shape: " + JSON.stringify(r).slice(0, 200));
}
const lastResponse = new Map(); // worker id -> the id of its last stored response
async function oaiResponses(worker) {
  const req = { model: MODEL, input: words(randInt(3, 40)), max_output_tokens: randInt(4, 32), temperature: 0.7 };
  const prev = lastResponse.get(worker);
  if (prev && rand() < 0.5) req.previous_response_id = prev;
  if (rand() < 0.3) {
    let done = null;
    for await (const ev of await oai.responses.create({ ...req, stream: true }))
      if (ev.type === "response.completed" || ev.type === "response.incomplete") done = ev.response;
    expect(done?.status === "completed" || done?.status === "incomplete", "responses stream end: " + JSON.stringify(done).slice(0, 200));
    lastResponse.set(worker, done.id);
    return;
  }
  const r = await oai.responses.create(req);
  expect(r.object === "response" && typeof r.output_text === "string", "response shape: " + JSON.stringify(r).slice(0, 200));
  lastResponse.set(worker, r.id);
}

// ---- Ollama scenarios
async function ollamaChat() {
  const stream = rand() < 0.5;
  const req = { model: MODEL, messages: messages(), stream, options: { num_predict: randInt(4, 48), temperature: pick([0, 0.8]), seed: randInt(0, 1e6) } };
  if (!stream) {
    const r = await ollama.chat(req);
    expect(r.done === true && typeof r.message?.content === "string", "ollama chat shape");
    return;
  }
  let last = null;
  for await (const part of await ollama.chat(req)) last = part;
  expect(last?.done === true && last.eval_count > 0, "ollama chat stream end: " + JSON.stringify(last).slice(0, 200));
}
async function ollamaGenerate() {
  const stream = rand() < 0.5;
  const req = { model: MODEL, prompt: words(randInt(2, 150)), stream, options: { num_predict: randInt(4, 48), temperature: pick([0, 1]) } };
  if (rand() < 0.15) req.format = SCHEMA, req.options.num_predict = 96;
  if (!stream) {
    const r = await ollama.generate(req);
    expect(r.done === true && typeof r.response === "string", "ollama generate shape");
    return;
  }
  let last = null;
  for await (const part of await ollama.generate(req)) last = part;
  expect(last?.done === true, "ollama generate stream end");
}
async function ollamaAbort(markAborted) {
  const k = randInt(1, 8);
  const s = await ollama.generate({ model: MODEL, prompt: words(randInt(2, 80)), stream: true, options: { num_predict: 600, temperature: 1 } });
  let got = 0;
  try {
    for await (const _ of s) if (++got === k) { markAborted(); s.abort(); }
  } catch (e) {
    if (got >= k && e?.name === "AbortError") return "cancelled";
    throw e;
  }
  return "ok"; // finished before the k-th part
}
async function ollamaTools() {
  const r = await ollama.chat({ model: MODEL, messages: messages(), tools: TOOLS, stream: false, options: { num_predict: 32 } });
  expect(r.done === true && r.message?.role === "assistant", "ollama tools shape");
}
async function ollamaEmbed() {
  if (rand() < 0.7) {
    const input = Array.from({ length: randInt(1, 5) }, () => words(randInt(1, 40)));
    const r = await ollama.embed({ model: MODEL, input });
    expect(r.embeddings?.length === input.length && r.embeddings[0].length > 0, "ollama embed shape");
  } else {
    const r = await ollama.embeddings({ model: MODEL, prompt: words(randInt(1, 40)) });
    expect(r.embedding?.length > 0, "ollama embeddings shape");
  }
}

// ---- plain fetch: Anthropic Messages, listings, llama.cpp extras
async function fetchJSON(p, body, method = "POST") {
  const init = { method, signal: AbortSignal.timeout(REQ_TIMEOUT_MS) };
  if (body !== undefined) init.body = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  const res = await fetch(BASE + p, init);
  const text = await res.text();
  return { status: res.status, text, headers: res.headers };
}
async function anthropic() {
  const stream = rand() < 0.4;
  const r = await fetchJSON("/v1/messages", { model: MODEL, max_tokens: randInt(4, 32), stream,
    messages: [{ role: "user", content: words(randInt(3, 60)) }] });
  if (r.status !== 200) { const e = new Unexpected("messages: " + r.text.slice(0, 200)); e.status = r.status; throw e; }
  expect(stream ? /event: message_stop/.test(r.text) : JSON.parse(r.text).type === "message", "messages shape");
}
async function listings() {
  const which = pick([["/v1/models", "GET"], ["/api/tags", "GET"], ["/api/ps", "GET"], ["/health", "GET"], ["/api/version", "GET"],
    ["/tokenize", "POST", { content: words(20) }], ["/apply-template", "POST", { messages: messages() }], ["/api/show", "POST", { model: MODEL }]]);
  const r = await fetchJSON(which[0], which[2], which[1]);
  if (r.status !== 200) { const e = new Unexpected(which[0] + ": " + r.text.slice(0, 200)); e.status = r.status; throw e; }
  JSON.parse(r.text);
}

// ---- bad requests: [name, path, body or () => body, expected status, method]
const invalidUtf8 = () => Buffer.concat([Buffer.from(`{"model":"${MODEL}","messages":[{"role":"user","content":"`), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(`"}]}`)]);
const BAD = [
  ["malformed JSON", "/v1/chat/completions", "{\"model\": ", 400],
  ["body not an object", "/v1/chat/completions", "[1,2,3]", 400],
  ["unknown model", "/v1/chat/completions", () => ({ model: "nope", messages: messages() }), 404],
  ["messages wrong type", "/v1/chat/completions", () => ({ model: MODEL, messages: "hi" }), 400],
  ["negative max_tokens", "/v1/chat/completions", () => ({ model: MODEL, messages: messages(), max_tokens: -5 }), 400],
  ["temperature wrong type", "/v1/chat/completions", () => ({ model: MODEL, messages: messages(), temperature: "hot" }), 400],
  ["huge n", "/v1/chat/completions", () => ({ model: MODEL, messages: messages(), n: 1e12 }), 400],
  ["unknown tool_choice", "/v1/chat/completions", () => ({ model: MODEL, messages: messages(), tools: TOOLS, tool_choice: { type: "function", function: { name: "nope" } } }), 400],
  ["prompt over the context", "/v1/completions", () => ({ model: MODEL, prompt: "word ".repeat(opt.ctx + 500), max_tokens: 4 }), 400],
  ["invalid UTF-8", "/v1/chat/completions", invalidUtf8, 400],
  ["body over max-body", "/v1/chat/completions", () => JSON.stringify({ model: MODEL, prompt: "x".repeat(opt["max-body"] + 1000) }), 413],
  ["embeddings input wrong type", "/v1/embeddings", () => ({ model: MODEL, input: 5 }), 400],
  ["wrong method", "/v1/chat/completions", undefined, 405, "GET"],
  ["unknown route", "/v1/nope", () => ({}), 404],
  ["ollama messages wrong type", "/api/chat", () => ({ model: MODEL, messages: 5 }), 400],
  ["ollama unknown model", "/api/generate", () => ({ model: "nope", prompt: "x" }), 404],
  ["ollama option wrong type", "/api/generate", () => ({ model: MODEL, prompt: "x", stream: false, options: { temperature: "hot" } }), 400],
  ["ollama images refused", "/api/generate", () => ({ model: MODEL, prompt: "x", stream: false, images: ["aGVsbG8="] }), 400],
  ["ollama pull (501, intended)", "/api/pull", () => ({ model: "llama3", stream: false }), 501],
  ["messages without max_tokens", "/v1/messages", () => ({ model: MODEL, messages: [{ role: "user", content: "hi" }] }), 400],
  ["responses unknown previous id", "/v1/responses", () => ({ model: MODEL, input: "hi", previous_response_id: "resp_nope" }), 404],
];
async function badRequest() {
  const [name, p, body, want, method] = pick(BAD);
  const label = "bad: " + name;
  try {
    const r = await fetchJSON(p, typeof body === "function" ? body() : body, method || "POST");
    if (r.status !== want) return record(label, "unexpected", r.status, `want ${want}: ${r.text.slice(0, 200)}`);
    let err;
    try { err = JSON.parse(r.text).error; } catch { err = undefined; }
    if (!err) return record(label, "unexpected", r.status, "no error object: " + r.text.slice(0, 200));
    record(label, want >= 500 ? "intended_5xx" : "ok", r.status);
  } catch (e) {
    // a body over --max-body (within twice it) is read and dropped before its 413, so EPIPE or a
    // reset here is a failure like any other (daemon/server/server.c says why)
    record(label, "unexpected", null, e?.stack || String(e));
  }
}

// Raw sockets: a request cut short by a client that hangs up, and a garbage request line.
function rawSocket(payload, waitReply) {
  const u = new URL(BASE);
  return new Promise((resolve) => {
    const sock = net.connect(Number(u.port), u.hostname);
    let data = "";
    const done = (v) => { clearTimeout(timer); sock.destroy(); resolve(v); };
    const timer = setTimeout(() => done({ timeout: true, data }), 10000);
    sock.on("connect", () => {
      sock.write(payload);
      if (!waitReply) setTimeout(() => done({ data }), randInt(5, 200));
    });
    sock.on("data", (d) => { data += d; });
    sock.on("error", (e) => done({ error: String(e), data }));
    sock.on("close", () => done({ data }));
  });
}
async function rawBad() {
  if (rand() < 0.5) {
    const r = await rawSocket(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n{"model": "${MODEL}", "mess`, false);
    const st = /^HTTP\/1\.[01] (\d{3})/.exec(r.data)?.[1];
    record("bad: truncated body, client hangs up", st && Number(st) >= 500 ? "unexpected" : "ok", st ? Number(st) : "closed", r.data.slice(0, 200));
  } else {
    const r = await rawSocket("GARBAGE\r\n\r\n", true);
    const st = Number(/^HTTP\/1\.[01] (\d{3})/.exec(r.data)?.[1] || 0);
    record("bad: garbage request line", r.timeout || st >= 500 ? "unexpected" : "ok", st || "closed",
      r.timeout ? "no answer in 10 s" : r.data.slice(0, 200));
  }
}

// ---- the mix (relative weights)
const SCENARIOS = [
  [12, "openai chat", () => run("openai chat", oaiChat)],
  [10, "openai chat stream", () => run("openai chat stream", oaiChatStream)],
  [6, "openai completions", () => run("openai completions", oaiCompletion)],
  [6, "openai stream cancelled", () => run("openai stream cancelled", oaiStreamAbort)],
  [4, "openai request aborted", () => run("openai request aborted", oaiAbortNonStream)],
  [6, "openai tool call", () => run("openai tool call", oaiTools)],
  [6, "openai embeddings", () => run("openai embeddings", oaiEmbeddings)],
  [4, "openai responses", (w) => run("openai responses", () => oaiResponses(w))],
  [8, "ollama chat", () => run("ollama chat", ollamaChat)],
  [6, "ollama generate", () => run("ollama generate", ollamaGenerate)],
  [5, "ollama stream cancelled", () => run("ollama stream cancelled", ollamaAbort)],
  [3, "ollama tools", () => run("ollama tools", ollamaTools)],
  [5, "ollama embed", () => run("ollama embed", ollamaEmbed)],
  [3, "anthropic messages", () => run("anthropic messages", anthropic)],
  [4, "listings", () => run("listings", listings)],
  [10, "bad request", () => badRequest()],
  [2, "raw socket", () => rawBad()],
];
const TOTAL_W = SCENARIOS.reduce((s, x) => s + x[0], 0);
function pickScenario() {
  let r = rand() * TOTAL_W;
  for (const s of SCENARIOS) if ((r -= s[0]) < 0) return s;
  return SCENARIOS[0];
}

// A burst of opt.burst concurrent completions to the burst model: each ends 200, or 503 with
// code server_busy and a Retry-After header (intended), or cancelled (a quarter abort early).
async function burst() {
  stats.bursts++;
  await Promise.all(Array.from({ length: opt.burst }, async (_, i) => {
    const ac = new AbortController();
    let aborted = false;
    const timer = i % 4 === 3 ? setTimeout(() => { aborted = true; ac.abort(); }, randInt(0, 300)) : null;
    try {
      const res = await fetch(BASE + "/v1/completions", { method: "POST", signal: AbortSignal.any([ac.signal, AbortSignal.timeout(REQ_TIMEOUT_MS)]),
        body: JSON.stringify({ model: BURST_MODEL, prompt: words(randInt(5, 40)), max_tokens: 48, temperature: 1 }) });
      const text = await res.text();
      if (res.status === 200) { stats.burst_200++; record("burst", "ok", 200); return; }
      let code = null;
      try { code = JSON.parse(text).error?.code; } catch { /* not JSON: unexpected below */ }
      if (res.status === 503 && code === "server_busy" && Number(res.headers.get("retry-after")) >= 1) {
        stats.burst_503++;
        record("burst", "intended_5xx", 503);
      } else record("burst", "unexpected", res.status, text.slice(0, 200));
    } catch (e) {
      if (aborted) record("burst", "cancelled", "aborted");
      else record("burst", "unexpected", null, e?.stack || String(e));
    } finally { if (timer) clearTimeout(timer); }
  }));
}

// ---- main
const T0 = Date.now();
const END = T0 + opt.seconds * 1000;
let lastProgress = T0;
function progress(final = false) {
  const o = stats.outcomes;
  console.error(`soak_load: ${final ? "done" : "t=" + Math.round((Date.now() - T0) / 1000) + "s"} requests ${stats.requests}: ` +
    `ok ${o.ok}, cancelled ${o.cancelled}, intended 5xx ${o.intended_5xx}, unexpected ${o.unexpected}; bursts ${stats.bursts} ` +
    `(503 ${stats.burst_503}, 200 ${stats.burst_200})`);
}
async function worker(id) {
  while (Date.now() < END) {
    await pickScenario()[2](id);
    if (Date.now() - lastProgress >= 60000) { lastProgress = Date.now(); progress(); }
  }
}
async function burster() {
  for (let next = T0 + BURST_EVERY_MS / 2; next < END - 5000; next += BURST_EVERY_MS) {
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    if (Date.now() < END - 5000) await burst();
  }
}
await Promise.all([...Array.from({ length: opt.clients }, (_, i) => worker(i)), burster()]);
stats.seconds = (Date.now() - T0) / 1000;
stats.clients = opt.clients;
progress(true);
fs.writeFileSync(opt.out, JSON.stringify(stats, null, 1));
