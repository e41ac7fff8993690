// test_daemon_ollama.mjs: the official `ollama` npm client (pinned in tests/golden/daemon/package.json)
// against a live mlxrd serving a tiny random-weight model: list/show/ps/version, generate and chat
// (streamed NDJSON and not; final chunk fields in nanoseconds; context = prompt + generated ids;
// stream == non-stream under greedy sampling; options.stop cuts at the first occurrence;
// num_predict honoured), load/unload with an empty prompt and keep_alive 0 (ps reflects it, the next
// request reloads), embed (L2-normalized, dimensions), legacy embeddings (unnormalized, as Ollama), errors as ResponseError, 501 for
// pull, 400 for deleting a --model file (test_daemon_registry.mjs tests the registry's routes), and a client abort that cancels the generation (metrics count it) while the
// daemon keeps serving.
import { startDaemon, loadClient, checker, norm } from "./daemon/harness.mjs";

const { check, summary } = checker();
const { Ollama } = loadClient("ollama");
const d = await startDaemon(["--ctx", "2048"]);
const ollama = new Ollama({ host: d.base });
const greedy = { temperature: 0, num_predict: 10 };
const isNs = (x) => Number.isInteger(x) && x >= 0;

try {
  const v = await ollama.version();
  check("version", typeof v.version === "string" && v.version.length > 0);
  const tags = await ollama.list();
  const m = tags.models.find((x) => x.name === "tiny:latest");
  check("list has tiny:latest", !!m, JSON.stringify(tags));
  if (m) {
    check("tag fields", m.model === "tiny:latest" && typeof m.size === "number" && m.size > 0 && !isNaN(Date.parse(m.modified_at)));
    check("details", m.details.format === "gguf" && m.details.family === "llama" && Array.isArray(m.details.families) &&
      /^[\d.]+[KMB]?$/.test(m.details.parameter_size) && typeof m.details.quantization_level === "string");
  }
  const show = await ollama.show({ model: "tiny" });
  check("show template", typeof show.template === "string" && show.template.includes("messages"));
  check("show model_info", show.model_info["general.architecture"] === "llama" && show.model_info["llama.block_count"] === 2,
    JSON.stringify(show.model_info).slice(0, 300));
  check("show capabilities", Array.isArray(show.capabilities) && show.capabilities.includes("completion"));

  // ---- generate
  const g1 = await ollama.generate({ model: "tiny", prompt: "Why is the sky blue?", options: greedy, stream: false });
  check("generate done", g1.done === true && g1.done_reason === "length" && g1.model === "tiny", JSON.stringify(g1).slice(0, 200));
  check("generate counts", g1.eval_count === 10 && g1.prompt_eval_count > 0);
  check("durations ns", isNs(g1.total_duration) && isNs(g1.load_duration) && isNs(g1.prompt_eval_duration) && isNs(g1.eval_duration) &&
    g1.total_duration >= g1.eval_duration && g1.total_duration > 0);
  check("context = prompt + generated", Array.isArray(g1.context) && g1.context.length === g1.prompt_eval_count + g1.eval_count);
  check("created_at RFC3339", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(g1.created_at));
  const parts = [];
  for await (const p of await ollama.generate({ model: "tiny", prompt: "Why is the sky blue?", options: greedy, stream: true })) parts.push(p);
  const streamed = parts.map((p) => p.response).join("");
  check("generate stream == non-stream", streamed === g1.response, `${JSON.stringify(streamed)} vs ${JSON.stringify(g1.response)}`);
  check("only last done", parts.slice(0, -1).every((p) => p.done === false) && parts[parts.length - 1].done === true);
  check("stream final stats", parts[parts.length - 1].eval_count === 10 && parts[parts.length - 1].context.length === g1.context.length);
  // continuing from context: the old ids are the start of the new prompt
  const g2 = await ollama.generate({ model: "tiny", prompt: "And then?", context: g1.context, options: { ...greedy, num_predict: 3 }, stream: false });
  check("context continues", g2.context.length > g1.context.length + g2.eval_count && g2.context.slice(0, g1.context.length).join() === g1.context.join());
  // prompt_eval_count counts only the evaluated prompt tokens: g1's KV blocks are reused from the prefix cache
  check("cached prefix not re-evaluated", g2.prompt_eval_count > 0 && g2.prompt_eval_count < g2.context.length - g2.eval_count,
    `${g2.prompt_eval_count} vs prompt ${g2.context.length - g2.eval_count}`);
  const raw = await ollama.generate({ model: "tiny", prompt: "plain text", raw: true, options: { ...greedy, num_predict: 3 }, stream: false });
  const rawToks = await (await fetch(d.base + "/tokenize", { method: "POST", body: JSON.stringify({ content: "plain text", add_special: true }) })).json();
  check("raw prompt not templated", raw.prompt_eval_count === rawToks.tokens.length, `${raw.prompt_eval_count} vs ${rawToks.tokens.length}`);
  // stop
  const long = (await ollama.generate({ model: "tiny", prompt: "Tell me", options: { temperature: 0, num_predict: 30 }, stream: false })).response;
  const at = Math.max(3, Math.floor(long.length / 2));
  const stop = long.slice(at, at + 3);
  const cut = await ollama.generate({ model: "tiny", prompt: "Tell me", options: { temperature: 0, num_predict: 30, stop: [stop] }, stream: false });
  check("options.stop cuts", cut.response === long.slice(0, long.indexOf(stop)) && cut.done_reason === "stop",
    `${JSON.stringify(cut.response)} / ${JSON.stringify(long)} / ${JSON.stringify(stop)}`);
  const seeded = async () => (await ollama.generate({ model: "tiny", prompt: "x", options: { temperature: 0.9, seed: 42, num_predict: 8 }, stream: false })).response;
  check("seeded reproducible", (await seeded()) === (await seeded()));

  // ---- chat
  const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello!" }];
  const c1 = await ollama.chat({ model: "tiny", messages, options: greedy, stream: false });
  check("chat message", c1.message.role === "assistant" && typeof c1.message.content === "string" && c1.done && c1.done_reason === "length");
  check("chat counts", c1.eval_count === 10 && c1.prompt_eval_count > 0 && isNs(c1.eval_duration));
  const cparts = [];
  for await (const p of await ollama.chat({ model: "tiny", messages, options: greedy, stream: true })) cparts.push(p);
  check("chat stream == non-stream", cparts.map((p) => p.message.content).join("") === c1.message.content);
  check("chat stream final", cparts[cparts.length - 1].done === true && cparts[cparts.length - 1].message.content === "");
  const tools = [{ type: "function", function: { name: "add", description: "add numbers", parameters: { type: "object", properties: { a: { type: "number" } } } } }];
  const withTools = await ollama.chat({ model: "tiny", stream: false, tools, options: { ...greedy, num_predict: 3 }, messages: [
    { role: "user", content: "add 1" },
    { role: "assistant", content: "", tool_calls: [{ function: { name: "add", arguments: { a: 1 } } }] },
    { role: "tool", content: "1", tool_name: "add" }] });
  check("chat with tools + tool history", withTools.done === true && withTools.message.role === "assistant");

  // ---- load / unload
  const load = await ollama.generate({ model: "tiny", prompt: "" });
  check("empty prompt loads", load.done === true && load.done_reason === "load", JSON.stringify(load));
  let ps = await ollama.ps();
  check("ps lists loaded", ps.models.some((x) => x.name === "tiny:latest" && x.context_length === 2048 && typeof x.expires_at === "string"));
  const unload = await ollama.generate({ model: "tiny", prompt: "", keep_alive: 0 });
  check("keep_alive 0 unloads", unload.done_reason === "unload", JSON.stringify(unload));
  ps = await ollama.ps();
  check("ps empty after unload", ps.models.length === 0, JSON.stringify(ps));
  const again = await ollama.generate({ model: "tiny", prompt: "hi", options: greedy, stream: false });
  check("reload on demand", again.done && again.load_duration > 0, String(again.load_duration));
  check("reloaded output equal", (await ollama.generate({ model: "tiny", prompt: "Why is the sky blue?", options: greedy, stream: false })).response === g1.response);
  const cl = await ollama.chat({ model: "tiny", messages: [] });
  check("chat empty messages loads", cl.done_reason === "load");

  // ---- embeddings
  const e = await ollama.embed({ model: "tiny", input: ["hello", "world"] });
  check("embed shape", e.model === "tiny" && e.embeddings.length === 2 && e.embeddings[0].length === 64);
  check("embed normalized", e.embeddings.every((x) => Math.abs(norm(x) - 1) < 1e-5));
  check("embed fields", e.prompt_eval_count > 0 && isNs(e.total_duration));
  const e4 = await ollama.embed({ model: "tiny", input: "hello", dimensions: 4 });
  const n4 = norm(e.embeddings[0].slice(0, 4));
  check("embed dimensions", e4.embeddings[0].length === 4 && e4.embeddings[0].every((x, i) => Math.abs(x - e.embeddings[0][i] / n4) < 1e-5));
  const legacy = await ollama.embeddings({ model: "tiny", prompt: "hello" });
  check("legacy embeddings", Array.isArray(legacy.embedding) && legacy.embedding.length === 64);
  // the legacy endpoint returns the pooled states unnormalized (as Ollama does): same direction as
  // /api/embed's unit vector, its own length
  const one = await ollama.embed({ model: "tiny", input: "hello" });
  const ln = norm(legacy.embedding);
  check("legacy embeddings unnormalized", Math.abs(ln - 1) > 1e-3 &&
        legacy.embedding.every((x, i) => Math.abs(x / ln - one.embeddings[0][i]) < 1e-5));
  const oaiEmb = await (await fetch(d.base + "/v1/embeddings", { method: "POST", body: JSON.stringify({ model: "tiny", input: "hello" }) })).json();
  check("/api/embed == /v1/embeddings", oaiEmb.data[0].embedding.every((x, i) => Math.abs(x - e.embeddings[0][i]) < 1e-6));

  // ---- errors
  const expectErr = async (name, fn, status, re) => {
    try { await fn(); check(name, false, "no error"); }
    catch (err) { check(name, err.status_code === status && (!re || re.test(err.error)), `${err.status_code} ${err.error}`); }
  };
  await expectErr("unknown model", () => ollama.generate({ model: "nope", prompt: "x", stream: false }), 404, /model 'nope' not found/);
  await expectErr("unknown model chat stream", async () => { for await (const _ of await ollama.chat({ model: "nope", messages, stream: true })) {} }, 404);
  await expectErr("bad option type", () => ollama.generate({ model: "tiny", prompt: "x", options: { temperature: "hot" }, stream: false }), 400, /temperature/);
  await expectErr("pull 501", () => ollama.pull({ model: "llama3", stream: false }), 501, /not implemented/);
  await expectErr("delete of a --model file refused", () => ollama.delete({ model: "tiny" }), 400, /given with --model/);
  await expectErr("images refused", () => ollama.generate({ model: "tiny", prompt: "x", images: ["aGVsbG8="], stream: false }), 400);
  const over = await fetch(d.base + "/api/generate", { method: "POST", body: JSON.stringify({ model: "tiny", prompt: "word ".repeat(3000), stream: false }) });
  const overBody = await over.json();
  check("context overflow 400", over.status === 400 && /context/.test(overBody.error) && /\d+ tokens/.test(overBody.error), JSON.stringify(overBody));

  // ---- abort cancels the generation
  const before = await (await fetch(d.base + "/metrics")).text();
  const cancelled = (t) => Number((t.match(/^mlxr_requests_cancelled_total (\d+)/m) || [0, -1])[1]);
  const c0 = cancelled(before);
  const longRun = await ollama.generate({ model: "tiny", prompt: "go", options: { temperature: 1, num_predict: 1800 }, stream: true });
  let got = 0;
  try { for await (const _ of longRun) { if (++got === 3) longRun.abort(); } } catch (err) { /* AbortError expected */ }
  let c1n = c0;
  for (let i = 0; i < 40 && c1n === c0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    c1n = cancelled(await (await fetch(d.base + "/metrics")).text());
  }
  check("abort cancels generation", c1n === c0 + 1, `${c0} -> ${c1n}`);
  const after = await ollama.generate({ model: "tiny", prompt: "hi", options: { ...greedy, num_predict: 2 }, stream: false });
  check("serves after abort", after.done === true);
  check("daemon alive", d.alive());
} catch (err) {
  check("unexpected exception", false, err.stack || String(err));
}
check("clean shutdown", await d.stop());
if (!summary()) { console.log(d.log.join("").slice(-2000)); process.exit(1); }
