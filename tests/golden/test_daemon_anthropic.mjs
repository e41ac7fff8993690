// test_daemon_anthropic.mjs: the Anthropic Messages API (/v1/messages) through the official
// `@anthropic-ai/sdk` npm client (pinned in tests/golden/daemon/package.json) against a live mlxrd
// that requires an API key (the SDK sends it as x-api-key, with anthropic-version), serving
// random-weight models: the tiny Llama, the Qwen3 fixture (its template renders tools) and "qthink"
// (a Qwen3 whose template opens <think>). Outputs are noise; the checks are structural:
// - messages.create: ids, content blocks, stop_reason (max_tokens, end_turn, stop_sequence with the
//   sequence that matched, tool_use), usage equal to countTokens and to the rendered template's
//   token count (/apply-template + /tokenize), system as a string or as blocks;
// - messages.stream: the event order (message_start, content_block_start/delta/stop, message_delta,
//   message_stop; ping), deltas joining into finalMessage(), the same text as non-streamed;
// - tool use forced with tool_choice tool/any (the grammar guarantees a call): a tool_use block whose
//   input follows input_schema; a tool_result round trip whose prompt is the whole conversation;
//   streamed input_json_delta; tool_choice none;
// - thinking blocks from a thinking model, streamed as thinking_delta; thinking disabled;
// - errors in Anthropic's shape ({"type":"error","error":{type,message}}) as the SDK's typed errors:
//   missing max_tokens, unknown model, missing or wrong API key.
import { startDaemon, loadClient, checker, postJSON, promptTokens as countPrompt } from "./daemon/harness.mjs";

const { check, summary } = checker();
const Anthropic = loadClient("@anthropic-ai/sdk");
const KEY = "sk-ant-test-key";
const d = await startDaemon(["--ctx", "1024", "--api-key", KEY], {}, { qwen3: true, qthink: true });
const client = new Anthropic({ baseURL: d.base, apiKey: KEY, maxRetries: 0, timeout: 60000 });
const post = (p, body, headers) => postJSON(d.base, p, body, headers);
const promptTokens = (model, messages, tools) => countPrompt(d.base, model, messages, tools, { Authorization: "Bearer " + KEY });
const WEATHER = { name: "get_weather", description: "Weather of a city",
  input_schema: { type: "object", properties: { city: { type: "string", enum: ["Paris", "Rome"] } }, required: ["city"], additionalProperties: false } };
const NOW = { name: "now", input_schema: { type: "object", properties: {}, additionalProperties: false } };
const chatTool = (t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.input_schema } });
const textOf = (m) => m.content.filter((b) => b.type === "text").map((b) => b.text).join("");

// Anthropic's event order; returns "" or what is wrong. (The SDK accumulates into message_start's
// message, so what it held at the start is checked on the raw wire below.)
function orderError(events) {
  let i = 0;
  const next = () => { while (events[i]?.type === "ping") i++; return events[i++] || { type: "<end>" }; };
  if (events[0]?.type !== "message_start") return "first event " + events[0]?.type;
  next();
  if (!events[0].message.id.startsWith("msg_")) return "message_start message " + JSON.stringify(events[0].message);
  for (let index = 0; ; index++) {
    let e = next();
    if (e.type === "message_delta") {
      if (!e.delta.stop_reason || typeof e.usage.output_tokens !== "number") return "message_delta " + JSON.stringify(e);
      return next().type === "message_stop" && i === events.length ? "" : "message_stop must end the stream";
    }
    if (e.type !== "content_block_start" || e.index !== index) return `event ${i - 1}: ${e.type} (index ${e.index}), expected content_block_start ${index}`;
    const kind = e.content_block.type;
    const dt = { text: "text_delta", thinking: "thinking_delta", tool_use: "input_json_delta" }[kind];
    if (!dt) return "block type " + kind;
    for (e = next(); e.type === "content_block_delta"; e = next())
      if (e.index !== index || e.delta.type !== dt) return `delta ${JSON.stringify(e)} in a ${kind} block`;
    if (e.type !== "content_block_stop" || e.index !== index) return `event ${i - 1}: ${e.type}, expected content_block_stop ${index}`;
  }
}

async function streamed(params) {
  const s = client.messages.stream(params);
  const events = [];
  for await (const e of s) events.push(e);
  return { events, final: await s.finalMessage() };
}

try {
  // ---- create: text
  const msgs = [{ role: "user", content: "Say something." }];
  const greedy = { model: "tiny", max_tokens: 8, temperature: 0, system: "You are terse.", messages: msgs };
  const m1 = await client.messages.create(greedy);
  check("id msg_", typeof m1.id === "string" && m1.id.startsWith("msg_"), m1.id);
  check("type/role/model", m1.type === "message" && m1.role === "assistant" && m1.model === "tiny");
  check("one text block", m1.content.length === 1 && m1.content[0].type === "text" && typeof m1.content[0].text === "string", JSON.stringify(m1.content));
  check("stop_reason max_tokens", m1.stop_reason === "max_tokens" && m1.stop_sequence === null, m1.stop_reason);
  const u = m1.usage;
  check("usage output_tokens == max_tokens", u.output_tokens === 8, JSON.stringify(u));
  const want = await promptTokens("tiny", [{ role: "system", content: "You are terse." }, ...msgs]);
  check("input + cache_read == tokenize(apply-template)", u.input_tokens + u.cache_read_input_tokens === want && u.cache_creation_input_tokens === 0,
    `${JSON.stringify(u)} vs ${want}`);
  const ct = await client.messages.countTokens({ model: "tiny", system: "You are terse.", messages: msgs });
  check("countTokens", ct.input_tokens === want, JSON.stringify(ct));
  const ctb = await client.messages.countTokens({ model: "tiny", system: [{ type: "text", text: "You are terse." }], messages: [{ role: "user", content: [{ type: "text", text: "Say something." }] }] });
  check("system and content as blocks == as strings", ctb.input_tokens === want);
  const m2 = await client.messages.create(greedy);
  check("greedy deterministic", textOf(m2) === textOf(m1) && m2.id !== m1.id);

  // ---- stop_sequences: cut at the first occurrence, reported
  const long = textOf(await client.messages.create({ ...greedy, max_tokens: 40 }));
  const at = Math.max(3, Math.floor(long.length / 2));
  const stop = long.slice(at, at + 3);
  if (stop.length === 3 && !/\uFFFD/.test(stop)) {
    const cut = await client.messages.create({ ...greedy, max_tokens: 40, stop_sequences: ["zzzq", stop] });
    check("stop_sequence cut", textOf(cut) === long.slice(0, long.indexOf(stop)), JSON.stringify([textOf(cut), stop]));
    check("stop_reason stop_sequence + which", cut.stop_reason === "stop_sequence" && cut.stop_sequence === stop, JSON.stringify([cut.stop_reason, cut.stop_sequence]));
  } else check("stop sample text usable", false, JSON.stringify(long));
  const end = await client.messages.create({ ...greedy, max_tokens: 300 });
  check("end_turn or max_tokens", (end.stop_reason === "end_turn" && end.usage.output_tokens < 300) ||
    (end.stop_reason === "max_tokens" && end.usage.output_tokens === 300), JSON.stringify([end.stop_reason, end.usage]));

  // ---- stream
  const st = await streamed(greedy);
  const oe = orderError(st.events);
  check("stream event order", oe === "", oe + " " + st.events.map((e) => e.type).join(","));
  const deltas = st.events.filter((e) => e.type === "content_block_delta").map((e) => e.delta.text).join("");
  check("stream deltas == finalMessage == non-stream", deltas === textOf(st.final) && deltas === textOf(m1), JSON.stringify([deltas, textOf(m1)]));
  check("stream usage and stop", st.final.usage.output_tokens === 8 && st.final.stop_reason === "max_tokens" && st.final.usage.input_tokens + st.final.usage.cache_read_input_tokens === want);
  const raw = await (await fetch(d.base + "/v1/messages", { method: "POST", headers: { "x-api-key": KEY, "anthropic-version": "2023-06-01" },
    body: JSON.stringify({ ...greedy, stream: true }) })).text();
  const frames = raw.split("\n\n").filter((f) => f.trim());
  check("SSE: event line names each data type", frames.every((f) => { const [a, b] = f.split("\n"); return a.startsWith("event: ") && b.startsWith("data: ") && JSON.parse(b.slice(6)).type === a.slice(7); }));
  check("SSE: ping after message_start", frames[1]?.startsWith("event: ping"));
  const start0 = JSON.parse(frames[0].split("\n")[1].slice(6)).message;
  check("SSE: message_start holds an empty message", start0.content.length === 0 && start0.stop_reason === null && start0.usage.output_tokens === 0
    && start0.usage.input_tokens === want, JSON.stringify(start0));

  // ---- tool use
  const toolReq = { model: "qwen3", max_tokens: 150, temperature: 1, seed: 11, messages: [{ role: "user", content: "Weather in Paris?" }],
    tools: [WEATHER, NOW], tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true } };
  const t1 = await client.messages.create(toolReq);
  const use = t1.content.find((b) => b.type === "tool_use");
  check("forced tool_use block", t1.content.length === 1 && use && use.name === "get_weather" && use.id.startsWith("toolu_"), JSON.stringify(t1.content));
  check("input follows input_schema", use && ["Paris", "Rome"].includes(use.input.city) && Object.keys(use.input).length === 1, JSON.stringify(use?.input));
  check("stop_reason tool_use", t1.stop_reason === "tool_use", t1.stop_reason);
  const rt = [...toolReq.messages, { role: "assistant", content: t1.content },
    { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: "Sunny, 21 C" }] }];
  const t2 = await client.messages.create({ model: "qwen3", max_tokens: 6, temperature: 0, tools: [WEATHER, NOW], messages: rt });
  check("tool_result round trip answers", t2.content.length >= 1 && t2.usage.output_tokens > 0, JSON.stringify(t2.content));
  const wantRT = await promptTokens("qwen3", [{ role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: "", tool_calls: [{ id: use.id, type: "function", function: { name: "get_weather", arguments: use.input } }] },
    { role: "tool", tool_call_id: use.id, name: "get_weather", content: "Sunny, 21 C" }], [chatTool(WEATHER), chatTool(NOW)]);
  const ctr = await client.messages.countTokens({ model: "qwen3", tools: [WEATHER, NOW], messages: rt });
  check("round trip prompt = conversation with tool_use and tool_result", ctr.input_tokens === wantRT &&
    t2.usage.input_tokens + t2.usage.cache_read_input_tokens === wantRT, `${ctr.input_tokens}, ${JSON.stringify(t2.usage)} vs ${wantRT}`);
  const rtBlocks = await client.messages.countTokens({ model: "qwen3", tools: [WEATHER, NOW], messages: [...rt.slice(0, 2),
    { role: "user", content: [{ type: "tool_result", tool_use_id: use.id, content: [{ type: "text", text: "Sunny, 21 C" }] }] }] });
  check("tool_result content as blocks", rtBlocks.input_tokens === wantRT);
  const any = await client.messages.create({ ...toolReq, tool_choice: { type: "any" }, seed: 5, max_tokens: 100 });
  check("tool_choice any: tool_use blocks only", any.content.length >= 1 && any.content.every((b) => b.type === "tool_use"), JSON.stringify(any.content));
  const none = await client.messages.create({ ...toolReq, tool_choice: { type: "none" }, max_tokens: 10 });
  check("tool_choice none: no tool_use", none.content.every((b) => b.type !== "tool_use"));
  const ts = await streamed(toolReq);
  const toe = orderError(ts.events);
  check("streamed tool_use: event order", toe === "", toe + " " + ts.events.map((e) => e.type).join(","));
  const pj = ts.events.filter((e) => e.type === "content_block_delta" && e.delta.type === "input_json_delta").map((e) => e.delta.partial_json).join("");
  const fu = ts.final.content[0];
  check("input_json_delta joins into the tool_use input", fu?.type === "tool_use" && JSON.stringify(JSON.parse(pj)) === JSON.stringify(fu.input)
    && ts.final.stop_reason === "tool_use", pj);
  const start = ts.events.find((e) => e.type === "content_block_start");
  check("tool_use block starts with id, name, empty input", start.content_block.id.startsWith("toolu_") && start.content_block.name === "get_weather"
    && JSON.stringify(start.content_block.input) === "{}");

  // ---- thinking
  const th = await client.messages.create({ model: "qthink", max_tokens: 10, temperature: 1, messages: msgs, thinking: { type: "enabled", budget_tokens: 1024 } });
  check("thinking block", th.content[0]?.type === "thinking" && th.content[0].thinking.length > 0 && typeof th.content[0].signature === "string", JSON.stringify(th.content));
  const ths = await streamed({ model: "qthink", max_tokens: 6, temperature: 1, messages: msgs });
  const thoe = orderError(ths.events);
  check("streamed thinking: order and thinking_delta", thoe === "" && ths.events.some((e) => e.delta?.type === "thinking_delta")
    && ths.final.content[0].type === "thinking" && ths.final.content[0].thinking.length > 0, thoe);
  const off = await client.messages.create({ model: "qthink", max_tokens: 6, messages: msgs, thinking: { type: "disabled" } });
  check("thinking disabled: no thinking block", off.content.every((b) => b.type !== "thinking"), JSON.stringify(off.content.map((b) => b.type)));

  // ---- errors
  try { await client.messages.create({ model: "tiny", messages: msgs }); check("missing max_tokens throws", false); }
  catch (e) { check("missing max_tokens -> 400 invalid_request_error", e instanceof Anthropic.BadRequestError && e.type === "invalid_request_error", String(e)); }
  try { await client.messages.create({ model: "nope", max_tokens: 4, messages: msgs }); check("unknown model throws", false); }
  catch (e) { check("unknown model -> 404 not_found_error", e instanceof Anthropic.NotFoundError && e.type === "not_found_error", String(e)); }
  try { await client.messages.create({ model: "tiny", max_tokens: 4, messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "" } }] }] }); check("image throws", false); }
  catch (e) { check("image block -> 400", e instanceof Anthropic.BadRequestError, String(e)); }
  const bad = new Anthropic({ baseURL: d.base, apiKey: "wrong", maxRetries: 0 });
  try { await bad.messages.create(greedy); check("wrong key throws", false); }
  catch (e) { check("wrong x-api-key -> 401 authentication_error", e instanceof Anthropic.AuthenticationError && e.type === "authentication_error", String(e)); }
  const noKey = await fetch(d.base + "/v1/messages", { method: "POST", body: JSON.stringify(greedy) });
  const body = await noKey.json();
  check("no key: Anthropic error shape", noKey.status === 401 && body.type === "error" && body.error.type === "authentication_error"
    && typeof body.error.message === "string", JSON.stringify(body));
  const bodyErr = await post("/v1/messages", { model: "tiny", max_tokens: 0, messages: msgs }, { "x-api-key": KEY });
  check("bad max_tokens: error shape", bodyErr.type === "error" && bodyErr.error.type === "invalid_request_error" && /max_tokens/.test(bodyErr.error.message),
    JSON.stringify(bodyErr));
} catch (e) {
  check("no exception", false, e.stack || String(e));
}
check("daemon alive", d.alive());
check("daemon exits cleanly", await d.stop());
process.exit(summary() ? 0 : 1);
