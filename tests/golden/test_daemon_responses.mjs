// test_daemon_responses.mjs: the OpenAI Responses API (/v1/responses) through the official `openai`
// npm client (pinned in tests/golden/daemon/package.json) against a live mlxrd serving random-weight
// models: the tiny Llama, the Qwen3 fixture (its real template renders tools) and "qthink" (a
// Qwen3 whose template opens <think>, so all it writes is reasoning). The output is noise, so the
// checks are about structure and bookkeeping that can fail:
// - responses.create: object shape, ids, status/incomplete_details, usage equal to the token count
//   of the rendered template (/apply-template + /tokenize) and to max_output_tokens, greedy runs equal;
// - responses.stream: every event in the documented order with consecutive sequence_numbers, deltas
//   joining into the .done texts and into the final response, the same text as non-streamed;
// - tools (forced with tool_choice, so the grammar guarantees a call): a function_call item whose
//   arguments follow the schema, then function_call_output -> answer, by previous_response_id and by
//   sending the items again (the same prompt either way); streamed argument events;
// - text.format json_schema / json_object: the output parses and validates;
// - previous_response_id continues a conversation (the prompt is the whole conversation); store,
//   retrieve, input_items, delete, store: false; the LRU bound (a second daemon keeping 2);
// - reasoning items from a thinking model; errors as the SDK's typed errors.
import { startDaemon, loadClient, checker, promptTokens as countPrompt } from "./daemon/harness.mjs";

const { check, summary } = checker();
const OpenAI = loadClient("openai");
const d = await startDaemon(["--ctx", "1024"], {}, { qwen3: true, qthink: true });
const client = new OpenAI({ baseURL: d.base + "/v1", apiKey: "unused", maxRetries: 0, timeout: 60000 });
const promptTokens = (model, messages, tools) => countPrompt(d.base, model, messages, tools);

const WEATHER = {
  type: "function", name: "get_weather", description: "Weather of a city",
  parameters: { type: "object", properties: { city: { type: "string", enum: ["Paris", "Rome"] } },
    required: ["city"], additionalProperties: false },
};
const NOW = { type: "function", name: "now", parameters: { type: "object", properties: {}, additionalProperties: false } };
const chatTool = (t) => ({ type: "function", function: { name: t.name, description: t.description, parameters: t.parameters } });

// The documented order of a streamed response; returns "" or what is wrong.
function orderError(events) {
  let i = 0;
  const next = () => events[i++] || { type: "<end>" };
  const want = (e, type) => (e.type === type ? "" : `event ${i - 1}: ${e.type}, expected ${type}`);
  for (let k = 0; k < events.length; k++) if (events[k].sequence_number !== k) return `sequence_number ${events[k].sequence_number} at ${k}`;
  let err = want(next(), "response.created") || want(next(), "response.in_progress");
  if (err) return err;
  const items = [];
  for (;;) {
    const e = next();
    if (e.type === "response.completed" || e.type === "response.incomplete") {
      if (i !== events.length) return "events after " + e.type;
      const out = e.response.output;
      if (JSON.stringify(out) !== JSON.stringify(items)) return "final output differs from the output_item.done items";
      return "";
    }
    if ((err = want(e, "response.output_item.added"))) return err;
    const item = e.item, idx = items.length;
    if (e.output_index !== idx || item.status !== "in_progress" || !item.id) return `output_item.added ${idx}: ${JSON.stringify(e)}`;
    let text = "";
    const same = (x) => x.item_id === item.id && x.output_index === idx;
    if (item.type === "message" || item.type === "reasoning") {
      const r = item.type === "reasoning";
      const [added, delta, tdone, pdone, key] = r
        ? ["response.reasoning_summary_part.added", "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "summary_index"]
        : ["response.content_part.added", "response.output_text.delta", "response.output_text.done", "response.content_part.done", "content_index"];
      let x = next();
      if ((err = want(x, added)) || !same(x) || x[key] !== 0) return err || "part.added ids";
      for (x = next(); x.type === delta; x = next()) {
        if (!same(x) || x[key] !== 0) return "delta ids";
        text += x.delta;
      }
      if ((err = want(x, tdone)) || !same(x) || x.text !== text) return err || "text.done text/ids";
      x = next();
      if ((err = want(x, pdone)) || !same(x) || x.part.text !== text) return err || "part.done text/ids";
    } else if (item.type === "function_call") {
      let x;
      for (x = next(); x.type === "response.function_call_arguments.delta"; x = next()) {
        if (!same(x)) return "arguments delta ids";
        text += x.delta;
      }
      if ((err = want(x, "response.function_call_arguments.done")) || !same(x) || x.arguments !== text) return err || "arguments.done";
    } else return "unknown item type " + item.type;
    const done = next();
    if ((err = want(done, "response.output_item.done")) || done.output_index !== idx || done.item.id !== item.id) return err || "item.done ids";
    const got = item.type === "function_call" ? done.item.arguments : item.type === "message" ? done.item.content[0].text : done.item.summary[0].text;
    if (got !== text) return "output_item.done text differs from the deltas";
    items.push(done.item);
  }
}

// The text of a response's message items (what the SDK calls output_text on non-streamed ones).
const outText = (r) => r.output.filter((o) => o.type === "message").map((o) => o.content.map((c) => c.text).join("")).join("");

// A streamed response: its events and the final response (the SDK's finalResponse() when it
// completed; the response.incomplete event's response otherwise, which the SDK does not adopt).
async function streamed(params) {
  const s = client.responses.stream(params);
  const events = [];
  for await (const e of s) events.push(e);
  const sdkFinal = await s.finalResponse();
  const last = events.at(-1);
  const final = last.type === "response.completed" ? sdkFinal : last.response;
  return { events, final, text: outText(final), sdkText: outText(sdkFinal) };
}

try {
  // ---- create: text
  const greedy = { model: "tiny", input: "Say something.", instructions: "You are terse.", temperature: 0, max_output_tokens: 8 };
  const r1 = await client.responses.create(greedy);
  check("id resp_", typeof r1.id === "string" && r1.id.startsWith("resp_"), r1.id);
  check("object response", r1.object === "response" && r1.model === "tiny");
  check("created_at", Number.isInteger(r1.created_at) && Math.abs(r1.created_at - Date.now() / 1000) < 600);
  check("status incomplete at max_output_tokens", r1.status === "incomplete" && r1.incomplete_details?.reason === "max_output_tokens",
    JSON.stringify([r1.status, r1.incomplete_details]));
  const msg = r1.output[0];
  check("one message item", r1.output.length === 1 && msg.type === "message" && msg.role === "assistant" && msg.id.startsWith("msg_"),
    JSON.stringify(r1.output));
  check("output_text part", msg.content.length === 1 && msg.content[0].type === "output_text" && Array.isArray(msg.content[0].annotations));
  check("SDK output_text", typeof r1.output_text === "string" && r1.output_text === msg.content[0].text);
  const u = r1.usage;
  check("usage output == max_output_tokens", u.output_tokens === 8, JSON.stringify(u));
  check("usage total", u.total_tokens === u.input_tokens + u.output_tokens && typeof u.input_tokens_details.cached_tokens === "number"
    && u.output_tokens_details.reasoning_tokens === 0);
  const want = await promptTokens("tiny", [{ role: "system", content: "You are terse." }, { role: "user", content: "Say something." }]);
  check("input_tokens == tokenize(apply-template(instructions + input))", u.input_tokens === want, `${u.input_tokens} vs ${want}`);
  const counted = await client.responses.inputTokens.count({ model: "tiny", input: greedy.input, instructions: greedy.instructions });
  check("inputTokens.count", counted.input_tokens === want && counted.object === "response.input_tokens", JSON.stringify(counted));
  const r2 = await client.responses.create(greedy);
  check("greedy deterministic", r2.output_text === r1.output_text && r2.id !== r1.id);
  const echo = r1;
  check("echoes request fields", echo.instructions === "You are terse." && echo.max_output_tokens === 8 && echo.temperature === 0
    && echo.store === true && echo.text.format.type === "text" && echo.tool_choice === "auto" && Array.isArray(echo.tools));
  const items = await client.responses.create({ model: "tiny", temperature: 0, max_output_tokens: 8, instructions: "You are terse.",
    input: [{ role: "user", content: [{ type: "input_text", text: "Say something." }] }] });
  check("input as items == input as string", items.output_text === r1.output_text && items.usage.input_tokens === u.input_tokens);

  // ---- stream: the documented event order
  const st = await streamed(greedy);
  const oe = orderError(st.events);
  check("stream event order", oe === "", oe + " " + st.events.map((e) => e.type).join(","));
  check("stream ends incomplete", st.events.at(-1).type === "response.incomplete");
  check("stream text == non-stream text", st.text === r1.output_text && st.sdkText === st.text, `${JSON.stringify(st.text)} vs ${JSON.stringify(r1.output_text)}`);
  check("stream usage", st.final.usage.output_tokens === 8 && st.final.usage.input_tokens === u.input_tokens);
  // the wire itself: "event: TYPE" lines matching each data's type, response.created with no output yet
  const raw = await (await fetch(d.base + "/v1/responses", { method: "POST", body: JSON.stringify({ ...greedy, stream: true }) })).text();
  const frames = raw.split("\n\n").filter((f) => f.trim());
  const parsed = frames.map((f) => { const [ev, data] = f.split("\n"); return { ev: ev.slice(7), data: JSON.parse(data.slice(6)) }; });
  check("SSE event lines name each event", frames.every((f) => /^event: \S+\ndata: \{/.test(f)) && parsed.every((p) => p.ev === p.data.type));
  check("response.created has no output yet", parsed[0].data.response.output.length === 0 && parsed[0].data.response.status === "in_progress"
    && parsed[0].data.response.usage === null);
  check("no [DONE] after the last event", !raw.includes("[DONE]") && parsed.at(-1).ev === "response.incomplete");
  const done = await client.responses.create({ ...greedy, max_output_tokens: 200 });
  if (done.status === "completed") {
    check("completed: no incomplete_details", done.incomplete_details === null && done.output.every((o) => o.status === "completed"));
  } else check("long generation stops at EOS or 200", done.usage.output_tokens === 200, JSON.stringify(done.usage));

  // ---- tools: forced call, then function_call_output -> answer
  const toolReq = { model: "qwen3", input: "Weather in Paris?", tools: [WEATHER, NOW], temperature: 1, seed: 7,
    tool_choice: { type: "function", name: "get_weather" }, parallel_tool_calls: false, max_output_tokens: 150 };
  const t1 = await client.responses.create(toolReq);
  const call = t1.output.find((o) => o.type === "function_call");
  check("forced call: one function_call item", t1.output.length === 1 && call && call.name === "get_weather" && call.status === "completed",
    JSON.stringify(t1.output));
  let args = null;
  try { args = JSON.parse(call.arguments); } catch {}
  check("call arguments follow the schema", args && ["Paris", "Rome"].includes(args.city) && Object.keys(args).length === 1, call?.arguments);
  check("call ids", call.id.startsWith("fc_") && call.call_id.startsWith("call_") && t1.status === "completed");
  check("no message beside a forced call", !t1.output.some((o) => o.type === "message"));
  const output = { type: "function_call_output", call_id: call.call_id, output: "Sunny, 21 C" };
  const t2 = await client.responses.create({ model: "qwen3", previous_response_id: t1.id, input: [output], tools: [WEATHER, NOW],
    temperature: 0, max_output_tokens: 6 });
  check("round trip answers", t2.previous_response_id === t1.id && t2.output.length >= 1 && t2.usage.output_tokens > 0, JSON.stringify(t2.output));
  const convo = [{ role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: "", tool_calls: [{ id: call.call_id, type: "function", function: { name: "get_weather", arguments: call.arguments } }] },
    { role: "tool", tool_call_id: call.call_id, name: "get_weather", content: "Sunny, 21 C" }];
  const wantRT = await promptTokens("qwen3", convo, [chatTool(WEATHER), chatTool(NOW)]);
  check("round trip prompt = conversation with the call and its output", t2.usage.input_tokens === wantRT, `${t2.usage.input_tokens} vs ${wantRT}`);
  const t3 = await client.responses.create({ model: "qwen3", store: false, tools: [WEATHER, NOW], temperature: 0, max_output_tokens: 6,
    input: [{ role: "user", content: "Weather in Paris?" },
      { type: "function_call", call_id: call.call_id, name: "get_weather", arguments: call.arguments }, output] });
  check("items sent again == previous_response_id", t3.usage.input_tokens === t2.usage.input_tokens && t3.output_text === t2.output_text,
    `${t3.usage.input_tokens} vs ${t2.usage.input_tokens}`);
  const ref = await client.responses.create({ model: "qwen3", store: false, tools: [WEATHER, NOW], temperature: 0, max_output_tokens: 6,
    input: [{ role: "user", content: "Weather in Paris?" }, { type: "item_reference", id: call.id }, output] });
  check("item_reference to a stored call", ref.usage.input_tokens === t2.usage.input_tokens, `${ref.usage.input_tokens}`);
  const req = await client.responses.create({ ...toolReq, tool_choice: "required", seed: 3 });
  check("tool_choice required: calls only", req.output.length >= 1 && req.output.every((o) => o.type === "function_call"), JSON.stringify(req.output));
  const none = await client.responses.create({ ...toolReq, tool_choice: "none", max_output_tokens: 10 });
  check("tool_choice none: no calls", none.output.every((o) => o.type !== "function_call"));
  const ts = await streamed(toolReq);
  const toe = orderError(ts.events);
  check("streamed call: event order", toe === "", toe + " " + ts.events.map((e) => e.type).join(","));
  const fc = ts.final.output[0];
  check("streamed call: arguments event and item", fc?.type === "function_call" && JSON.parse(fc.arguments).city !== undefined
    && ts.events.some((e) => e.type === "response.function_call_arguments.done" && e.arguments === fc.arguments), JSON.stringify(fc));
  check("streamed call completes", ts.events.at(-1).type === "response.completed");

  // ---- text.format
  const schema = { type: "object", properties: { name: { type: "string", maxLength: 8 }, ok: { type: "boolean" },
    kind: { type: "string", enum: ["a", "b"] } }, required: ["name", "ok", "kind"], additionalProperties: false };
  let valid = 0, finished = 0;
  for (const seed of [1, 2, 3]) {
    const js = await client.responses.create({ model: "tiny", input: "JSON please", temperature: 1, seed, max_output_tokens: 60,
      text: { format: { type: "json_schema", name: "thing", schema, strict: true } } });
    if (js.status !== "completed") continue;
    finished++;
    let v = null;
    try { v = JSON.parse(js.output_text); } catch {}
    if (v && typeof v.name === "string" && [...v.name].length <= 8 /* code points */ && typeof v.ok === "boolean" && ["a", "b"].includes(v.kind)
      && Object.keys(v).length === 3 && js.schema_violation === undefined) valid++;
    else console.log("invalid json_schema output: " + JSON.stringify(js.output_text));
  }
  check("json_schema outputs validate", finished >= 2 && valid === finished, `${valid}/${finished}`);
  check("json_schema echoed", (await client.responses.create({ model: "tiny", input: "x", max_output_tokens: 2,
    text: { format: { type: "json_schema", name: "thing", schema } } })).text.format.name === "thing");
  // numbers past 15 digits survive the round trip (Zod's z.int() bounds are +-(2^53 - 1); cJSON's own
  // printing would send 9.00719925474099e+15), in the echo and in the tools
  const big = { type: "object", properties: { n: { type: "integer", minimum: -9007199254740991, maximum: 9007199254740991 },
    x: { type: "number", maximum: 0.1 } }, required: ["n", "x"], additionalProperties: false };
  const eb = await client.responses.create({ model: "tiny", input: "x", max_output_tokens: 2,
    text: { format: { type: "json_schema", name: "big", schema: big } },
    tools: [{ type: "function", name: "f", parameters: big }] });
  const echoed = eb.text.format.schema?.properties?.n, tooled = eb.tools?.[0]?.parameters?.properties?.n;
  check("integer bounds of 16 digits echoed exactly", echoed?.maximum === 9007199254740991 && echoed?.minimum === -9007199254740991
    && tooled?.maximum === 9007199254740991 && eb.text.format.schema.properties.x.maximum === 0.1, JSON.stringify([echoed, tooled]));
  const jo = await client.responses.create({ model: "tiny", input: "JSON", temperature: 1, seed: 5, max_output_tokens: 80, text: { format: { type: "json_object" } } });
  let jv = null;
  try { jv = JSON.parse(jo.output_text); } catch {}
  check("json_object output parses", jo.status !== "completed" || (jv && typeof jv === "object" && !Array.isArray(jv)), jo.output_text);

  // ---- previous_response_id continues the conversation
  const c1 = await client.responses.create({ model: "tiny", input: "First question.", temperature: 0, max_output_tokens: 5 });
  const c2 = await client.responses.create({ model: "tiny", previous_response_id: c1.id, input: "Second question.", temperature: 0, max_output_tokens: 5 });
  const wantC = await promptTokens("tiny", [{ role: "user", content: "First question." }, { role: "assistant", content: c1.output_text },
    { role: "user", content: "Second question." }]);
  check("continuation prompt = whole conversation", c2.usage.input_tokens === wantC, `${c2.usage.input_tokens} vs ${wantC}`);
  check("continuation reuses the cached prefix", c2.usage.input_tokens_details.cached_tokens > 0, JSON.stringify(c2.usage));
  const c3 = await client.responses.create({ model: "tiny", previous_response_id: c2.id, input: "Third.", instructions: "Be brief.", temperature: 0, max_output_tokens: 3 });
  const wantC3 = await promptTokens("tiny", [{ role: "system", content: "Be brief." }, { role: "user", content: "First question." },
    { role: "assistant", content: c1.output_text }, { role: "user", content: "Second question." },
    { role: "assistant", content: c2.output_text }, { role: "user", content: "Third." }]);
  check("chained continuation (instructions not carried over, new ones first)", c3.usage.input_tokens === wantC3, `${c3.usage.input_tokens} vs ${wantC3}`);

  // ---- stored responses
  const got = await client.responses.retrieve(c1.id);
  check("retrieve", got.id === c1.id && got.output_text === c1.output_text && got.status === c1.status);
  const ii = await client.responses.inputItems.list(c1.id);
  check("input_items", ii.data.length === 1 && ii.data[0].type === "message" && ii.data[0].content[0].text === "First question." && ii.data[0].id,
    JSON.stringify(ii.data));
  await client.responses.delete(c1.id);
  try { await client.responses.retrieve(c1.id); check("deleted is gone", false); }
  catch (e) { check("deleted -> 404", e instanceof OpenAI.NotFoundError, String(e)); }
  const c4 = await client.responses.create({ model: "tiny", previous_response_id: c2.id, input: "Still there?", max_output_tokens: 2 });
  check("a later response still continues", c4.status === "incomplete");
  const ns = await client.responses.create({ model: "tiny", input: "x", store: false, max_output_tokens: 2 });
  try { await client.responses.retrieve(ns.id); check("store:false not kept", false); }
  catch (e) { check("store:false -> 404", e instanceof OpenAI.NotFoundError && ns.store === false, String(e)); }

  // ---- reasoning items (the thinking model)
  const th = await client.responses.create({ model: "qthink", input: "Think.", max_output_tokens: 10, temperature: 1, seed: 2 });
  const rs = th.output[0];
  check("reasoning item", rs?.type === "reasoning" && rs.id.startsWith("rs_") && rs.summary[0]?.type === "summary_text"
    && rs.summary[0].text.length > 0 && rs.content?.[0]?.type === "reasoning_text" && rs.content[0].text === rs.summary[0].text, JSON.stringify(th.output));
  check("reasoning tokens counted", th.usage.output_tokens_details.reasoning_tokens > 0
    && th.usage.output_tokens_details.reasoning_tokens <= th.usage.output_tokens, JSON.stringify(th.usage));
  check("no reasoning text in output_text", th.output_text === "");
  const ths = await streamed({ model: "qthink", input: "Think.", max_output_tokens: 10, temperature: 1, seed: 2 });
  const thoe = orderError(ths.events);
  check("streamed reasoning: event order", thoe === "", thoe);
  check("streamed reasoning == non-streamed", ths.final.output[0]?.summary?.[0]?.text === rs.summary[0].text);
  const off = await client.responses.create({ model: "qthink", input: "Think.", max_output_tokens: 6, reasoning: { effort: "none" } });
  check("reasoning effort none: no reasoning item", off.output.every((o) => o.type !== "reasoning") && off.reasoning.effort === "none",
    JSON.stringify(off.output.map((o) => o.type)));

  // ---- errors
  try { await client.responses.create({ model: "nope", input: "x" }); check("unknown model throws", false); }
  catch (e) { check("unknown model -> 404", e instanceof OpenAI.NotFoundError && e.status === 404, String(e)); }
  try { await client.responses.create({ model: "tiny", input: 42 }); check("bad input throws", false); }
  catch (e) { check("bad input -> 400 param input", e instanceof OpenAI.BadRequestError && e.param === "input", String(e)); }
  try { await client.responses.create({ model: "tiny", input: "x", previous_response_id: "resp_nope" }); check("unknown previous throws", false); }
  catch (e) { check("unknown previous_response_id -> 404", e instanceof OpenAI.NotFoundError && e.param === "previous_response_id", String(e)); }
  try { await client.responses.create({ model: "tiny", input: "x", tools: [{ type: "web_search" }] }); check("hosted tool throws", false); }
  catch (e) { check("hosted tool -> 400", e instanceof OpenAI.BadRequestError && e.param === "tools", String(e)); }
  try { await client.responses.create({ ...toolReq, tool_choice: { type: "function", name: "missing" } }); check("unknown named tool throws", false); }
  catch (e) { check("named tool not in tools -> 400", e instanceof OpenAI.BadRequestError && e.param === "tool_choice", String(e)); }
  try { await client.responses.create({ model: "tiny", input: [{ type: "message", role: "user", content: [{ type: "input_image", image_url: "x" }] }] }); check("image throws", false); }
  catch (e) { check("image input -> 400", e instanceof OpenAI.BadRequestError, String(e)); }
} catch (e) {
  check("no exception", false, e.stack || String(e));
}

// ---- the store's bound: a daemon that keeps 2 responses drops the least recently used
const small = await startDaemon([], {}, { config: "limits:\n  stored_responses: 2\n" });
try {
  const c = new OpenAI({ baseURL: small.base + "/v1", apiKey: "unused", maxRetries: 0, timeout: 60000 });
  const ids = [];
  for (let i = 0; i < 3; i++) ids.push((await c.responses.create({ model: "tiny", input: "n" + i, max_output_tokens: 1 })).id);
  await c.responses.retrieve(ids[1]); // ids[1] is now the most recently used
  ids.push((await c.responses.create({ model: "tiny", input: "n3", max_output_tokens: 1 })).id);
  const alive = [];
  for (const id of ids) { try { await c.responses.retrieve(id); alive.push(true); } catch { alive.push(false); } }
  check("LRU keeps the 2 most recently used", alive.join() === "false,true,false,true", alive.join());
} catch (e) {
  check("no exception (store bound)", false, e.stack || String(e));
}
await small.stop();
check("daemon alive", d.alive());
check("daemon exits cleanly", await d.stop());
process.exit(summary() ? 0 : 1);
