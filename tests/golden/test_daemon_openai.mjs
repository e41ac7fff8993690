// test_daemon_openai.mjs: the official `openai` npm client (pinned in tests/golden/daemon/package.json)
// against a live mlxrd serving a tiny random-weight model. Checks response shapes field by field and
// properties that can fail: greedy determinism, stream == non-stream, stop strings cut at their
// first occurrence and never emitted, max_tokens honoured, logprobs consistent with greedy choice,
// logit_bias forcing a token, n choices, embeddings L2-normalized and `dimensions` = truncate +
// renormalize, base64 == float, and errors (404 model_not_found, 400 with param, context overflow
// with token counts) as the SDK's typed errors.
import { startDaemon, loadClient, checker, norm, promptTokens } from "./daemon/harness.mjs";

const { check, summary } = checker();
const OpenAI = loadClient("openai");
const d = await startDaemon(["--ctx", "256"]);
const client = new OpenAI({ baseURL: d.base + "/v1", apiKey: "unused", maxRetries: 0, timeout: 60000 });
const msgs = [{ role: "system", content: "You are terse." }, { role: "user", content: "Say something." }];
const post = async (p, body) => (await fetch(d.base + p, { method: "POST", body: JSON.stringify(body) })).json();

try {
  // ---- models
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id);
  check("models.list has tiny", ids.includes("tiny"), JSON.stringify(ids));
  const m0 = list.data[0];
  check("model shape", m0.object === "model" && typeof m0.created === "number" && typeof m0.owned_by === "string");
  const one = await client.models.retrieve("tiny");
  check("models.retrieve", one.id === "tiny" && one.object === "model");
  try { await client.models.retrieve("nope"); check("retrieve unknown throws", false); }
  catch (e) { check("retrieve unknown -> 404", e instanceof OpenAI.NotFoundError && e.status === 404, String(e)); }

  // ---- chat, non-streamed
  const greedy = { model: "tiny", messages: msgs, temperature: 0, max_tokens: 12 };
  const c1 = await client.chat.completions.create(greedy);
  check("chat id", typeof c1.id === "string" && c1.id.startsWith("chatcmpl-"), c1.id);
  check("chat object", c1.object === "chat.completion");
  check("chat created", Number.isInteger(c1.created) && Math.abs(c1.created - Date.now() / 1000) < 600);
  check("chat model", c1.model === "tiny");
  check("one choice", c1.choices.length === 1 && c1.choices[0].index === 0);
  const msg = c1.choices[0].message;
  check("message role/content", msg.role === "assistant" && typeof msg.content === "string");
  check("finish length", c1.choices[0].finish_reason === "length", c1.choices[0].finish_reason);
  check("logprobs null when not asked", c1.choices[0].logprobs === null);
  const u = c1.usage;
  check("usage completion == max_tokens", u.completion_tokens === 12, JSON.stringify(u));
  check("usage total", u.total_tokens === u.prompt_tokens + u.completion_tokens && u.prompt_tokens > 0);
  check("usage cached field", typeof u.prompt_tokens_details?.cached_tokens === "number");
  // the prompt is the rendered template: its token count is what /tokenize says of /apply-template
  const rendered = await post("/apply-template", { messages: msgs });
  const toks = await post("/tokenize", { content: rendered.prompt });
  check("prompt_tokens == tokenize(apply-template)", toks.tokens.length === u.prompt_tokens,
    `${toks.tokens.length} vs ${u.prompt_tokens}`);
  check("template used the messages", rendered.prompt.includes("You are terse.") && rendered.prompt.includes("Say something."));
  const c2 = await client.chat.completions.create(greedy);
  check("greedy deterministic", c2.choices[0].message.content === msg.content);
  const c3 = await client.chat.completions.create({ ...greedy, max_tokens: undefined, max_completion_tokens: 5 });
  check("max_completion_tokens", c3.usage.completion_tokens === 5 && c3.choices[0].finish_reason === "length");
  const s1 = await client.chat.completions.create({ model: "tiny", messages: msgs, temperature: 1.0, seed: 1234, max_tokens: 10 });
  const s2 = await client.chat.completions.create({ model: "tiny", messages: msgs, temperature: 1.0, seed: 1234, max_tokens: 10 });
  check("seeded sampling reproducible", s1.choices[0].message.content === s2.choices[0].message.content);

  // ---- stop strings: cut at the first occurrence, never emitted
  const long = (await client.chat.completions.create({ ...greedy, max_tokens: 30 })).choices[0].message.content;
  const at = Math.max(3, Math.floor(long.length / 2));
  const stop = long.slice(at, at + 3);
  if (stop.length === 3 && !/\uFFFD/.test(stop)) {
    const cut = await client.chat.completions.create({ ...greedy, max_tokens: 30, stop: [stop] });
    const want = long.slice(0, long.indexOf(stop));
    check("stop string cut", cut.choices[0].message.content === want,
      `${JSON.stringify(cut.choices[0].message.content)} vs ${JSON.stringify(want)}`);
    check("stop finish_reason", cut.choices[0].finish_reason === "stop");
  } else check("stop sample text usable", false, JSON.stringify(long));

  // ---- n choices
  const nres = await client.chat.completions.create({ ...greedy, n: 3, max_tokens: 6 });
  check("n=3 choices", nres.choices.length === 3 && nres.choices.map((c) => c.index).join() === "0,1,2");
  check("n greedy choices equal", nres.choices.every((c) => c.message.content === nres.choices[0].message.content));
  check("n usage", nres.usage.completion_tokens === 18, JSON.stringify(nres.usage));

  // ---- logprobs
  const lp = await client.chat.completions.create({ ...greedy, max_tokens: 6, logprobs: true, top_logprobs: 3 });
  const content = lp.choices[0].logprobs?.content || [];
  check("logprobs per token", content.length === 6, String(content.length));
  let lpOk = true, greedyOk = true, bytesOk = true;
  for (const t of content) {
    lpOk &&= typeof t.token === "string" && t.logprob <= 0 && Array.isArray(t.bytes) && t.top_logprobs.length === 3;
    for (let i = 1; i < t.top_logprobs.length; i++) lpOk &&= t.top_logprobs[i - 1].logprob >= t.top_logprobs[i].logprob;
    greedyOk &&= Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-5;
    const txt = Buffer.from(t.bytes).toString("utf8");
    if (!txt.includes("\uFFFD")) bytesOk &&= txt === t.token;
  }
  check("logprob entries well-formed and sorted", lpOk);
  check("greedy token is the top logprob", greedyOk);
  check("bytes decode to token", bytesOk);
  check("logprob tokens join to content", content.map((t) => t.token).join("") === lp.choices[0].message.content
    || lp.choices[0].message.content.includes("\uFFFD"));

  // ---- logit_bias forces a token
  const forced = 65;
  const piece = (await post("/detokenize", { tokens: [forced] })).content;
  const lb = await client.chat.completions.create({ ...greedy, max_tokens: 4, logit_bias: { [forced]: 100 } });
  check("logit_bias forces token", lb.choices[0].message.content === piece.repeat(4),
    `${JSON.stringify(lb.choices[0].message.content)} vs ${JSON.stringify(piece)}`);

  // ---- streaming with usage
  const stream = await client.chat.completions.create({ ...greedy, stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const ch of stream) chunks.push(ch);
  check("stream has chunks", chunks.length >= 3, String(chunks.length));
  check("chunk object/id", chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id && c.model === "tiny"));
  check("first delta role", chunks[0].choices[0].delta.role === "assistant");
  const text = chunks.flatMap((c) => c.choices).map((c) => c.delta.content || "").join("");
  check("stream text == non-stream", text === msg.content, `${JSON.stringify(text)} vs ${JSON.stringify(msg.content)}`);
  const last = chunks[chunks.length - 1];
  check("usage chunk last", last.choices.length === 0 && last.usage?.completion_tokens === 12 && last.usage.prompt_tokens === u.prompt_tokens);
  check("usage null before", chunks.slice(0, -1).every((c) => c.usage === null));
  const fin = chunks[chunks.length - 2].choices[0];
  check("finish chunk", fin.finish_reason === "length");
  const noUsage = [];
  for await (const ch of await client.chat.completions.create({ ...greedy, max_tokens: 3, stream: true })) noUsage.push(ch);
  check("no usage unless asked", noUsage.every((c) => c.usage === undefined || c.usage === null) && noUsage.every((c) => c.choices.length === 1));

  // ---- tools go through the template; tool history accepted
  const tools = [{ type: "function", function: { name: "get_weather", description: "Weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
  const tmsgs = [{ role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: "{\"city\":\"Paris\"}" } }] },
    { role: "tool", tool_call_id: "call_1", content: "18C and sunny" }];
  const tc = await client.chat.completions.create({ model: "tiny", messages: tmsgs, tools, max_tokens: 3, temperature: 0 });
  // tool_choice auto forces nothing, so the reply may end any of three ways; each must agree with
  // what was written (forced calls, which must come, are checked below)
  const tcc = tc.choices[0], tcu = tc.usage;
  check("tool request answered, its ending consistent", tcc.message.role === "assistant" &&
    tcu.prompt_tokens === await promptTokens(d.base, "tiny", tmsgs, tools) &&
    (tcc.finish_reason === "length" ? tcu.completion_tokens === 3 && typeof tcc.message.content === "string"
      : tcc.finish_reason === "stop" ? tcu.completion_tokens <= 3 && typeof tcc.message.content === "string"
        : tcc.finish_reason === "tool_calls" && tcc.message.tool_calls?.length > 0 &&
          tcc.message.tool_calls.every((x) => x.function.name === "get_weather")), JSON.stringify(tc));
  const none = await client.chat.completions.create({ model: "tiny", messages: tmsgs, tools, tool_choice: "none", max_tokens: 3, temperature: 0 });
  check("tool_choice none answered", typeof none.choices[0].message.content === "string");
  try { await client.chat.completions.create({ model: "tiny", messages: tmsgs, tools, tool_choice: { type: "function", function: { name: "nope" } }, max_tokens: 2 }); check("bad tool_choice throws", false); }
  catch (e) { check("bad tool_choice -> 400", e.status === 400 && e.param === "tool_choice", String(e)); }

  // ---- completions
  const cp = await client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 5, temperature: 0 });
  check("completion shape", cp.object === "text_completion" && cp.id.startsWith("cmpl-") && typeof cp.choices[0].text === "string");
  check("completion usage", cp.usage.completion_tokens === 5 && cp.choices[0].finish_reason === "length");
  const ptoks = (await post("/tokenize", { content: "Once upon", add_special: true })).tokens;
  const cpIds = await client.completions.create({ model: "tiny", prompt: ptoks, max_tokens: 5, temperature: 0 });
  check("token-id prompt == string prompt", cpIds.choices[0].text === cp.choices[0].text);
  const cpMany = await client.completions.create({ model: "tiny", prompt: ["a", "b c"], max_tokens: 2, temperature: 0, n: 2 });
  check("prompts x n choices", cpMany.choices.length === 4 && cpMany.choices.map((c) => c.index).join() === "0,1,2,3");
  const echo = await client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 3, temperature: 0, echo: true });
  check("echo prefixes prompt", echo.choices[0].text.startsWith("Once upon"));
  const cpl = await client.completions.create({ model: "tiny", prompt: "x y", max_tokens: 3, temperature: 0, logprobs: 2 });
  const L = cpl.choices[0].logprobs;
  check("completion logprobs shape", L.tokens.length === 3 && L.token_logprobs.length === 3 && L.top_logprobs.length === 3 && L.text_offset.length === 3);
  const cs = await client.completions.create({ model: "tiny", prompt: "Once upon", max_tokens: 5, temperature: 0, stream: true });
  let ctext = "";
  let cfinish = null;
  for await (const ch of cs) { ctext += ch.choices[0]?.text || ""; cfinish = ch.choices[0]?.finish_reason || cfinish; }
  check("completion stream == non-stream", ctext === cp.choices[0].text && cfinish === "length");

  // ---- embeddings
  const e1 = await client.embeddings.create({ model: "tiny", input: ["hello world", "second"], encoding_format: "float" });
  check("embedding list shape", e1.object === "list" && e1.data.length === 2 && e1.data[1].index === 1 && e1.data[0].object === "embedding");
  const v = e1.data[0].embedding;
  check("embedding dim = n_embd", v.length === 64, String(v.length));
  check("embedding L2-normalized", Math.abs(norm(v) - 1) < 1e-5);
  check("embedding usage", e1.usage.prompt_tokens > 0 && e1.usage.total_tokens === e1.usage.prompt_tokens);
  const e64 = await client.embeddings.create({ model: "tiny", input: "hello world" }); // SDK asks base64, decodes
  check("base64 == float", e64.data[0].embedding.length === 64 && e64.data[0].embedding.every((x, i) => Math.abs(x - v[i]) < 1e-6));
  const e8 = await client.embeddings.create({ model: "tiny", input: "hello world", dimensions: 8, encoding_format: "float" });
  const n8 = norm(v.slice(0, 8));
  check("dimensions: truncate then renormalize", e8.data[0].embedding.length === 8 &&
    e8.data[0].embedding.every((x, i) => Math.abs(x - v[i] / n8) < 1e-5));
  {
  // pooling (extension field): mean and last differ for several tokens; for one token they must agree
  const ids1 = await post("/tokenize", { model: "tiny", content: "hello world", add_special: false });
  const pl = async (input, pooling) => (await post("/v1/embeddings", { model: "tiny", input, pooling, encoding_format: "float" })).data[0].embedding;
  const meanV = await pl("hello world", "mean"), lastV = await pl("hello world", "last");
  check("pooling mean is the default", meanV.every((x, i) => Math.abs(x - v[i]) < 1e-6));
  check("pooling last differs from mean", ids1.tokens.length > 1 && lastV.some((x, i) => Math.abs(x - meanV[i]) > 1e-4) &&
    Math.abs(norm(lastV) - 1) < 1e-5);
  const one = [ids1.tokens[0]];
  const m1 = await pl(one, "mean"), l1 = await pl(one, "last");
  check("one token: mean == last", m1.every((x, i) => Math.abs(x - l1[i]) < 1e-6));
  const badPool = await fetch(d.base + "/v1/embeddings", { method: "POST", body: JSON.stringify({ model: "tiny", input: "x", pooling: "max" }) });
  check("pooling max is a 400", badPool.status === 400);

  }

  // ---- errors
  const expectErr = async (name, fn, status, pred = () => true) => {
    try { await fn(); check(name, false, "no error"); }
    catch (e) { check(name, e.status === status && pred(e), `${e.status} ${e.message}`); }
  };
  await expectErr("unknown model 404", () => client.chat.completions.create({ model: "nope", messages: msgs }), 404,
    (e) => e.code === "model_not_found" && e.type === "invalid_request_error");
  await expectErr("wrong type temperature 400", () => client.chat.completions.create({ ...greedy, temperature: "hot" }), 400,
    (e) => e.param === "temperature");
  await expectErr("temperature out of range", () => client.chat.completions.create({ ...greedy, temperature: 7 }), 400);
  await expectErr("n=0", () => client.chat.completions.create({ ...greedy, n: 0 }), 400, (e) => e.param === "n");
  await expectErr("max_tokens negative", () => client.chat.completions.create({ ...greedy, max_tokens: -1 }), 400);
  await expectErr("messages missing", () => client.chat.completions.create({ model: "tiny" }), 400);
  await expectErr("bad role", () => client.chat.completions.create({ model: "tiny", messages: [{ role: "wizard", content: "x" }] }), 400);
  await expectErr("token id out of vocab", () => client.completions.create({ model: "tiny", prompt: [999999], max_tokens: 1 }), 400);
  const big = "hello world ".repeat(400);
  try { await client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: big }], max_tokens: 2 }); check("context overflow throws", false); }
  catch (e) {
    const body = e.error || {};
    check("context overflow 400 with counts", e.status === 400 && e.code === "context_length_exceeded" &&
      body.n_prompt_tokens > 256 && body.n_ctx === 256, `${e.status} ${JSON.stringify(body)}`);
  }
  try {
    const es = await client.chat.completions.create({ model: "nope", messages: msgs, stream: true });
    for await (const _ of es) {}
    check("stream unknown model throws", false);
  } catch (e) { check("stream unknown model 404", e.status === 404); }

  {
  // Tool calls through the SDK. tool_choice "required" is enforced by constrained decoding, so even
  // this random-weight model answers with a call whose arguments match the tool's schema. 160
  // tokens always hold it: the grammar's longest get_time call is under 140 bytes (the fixed text,
  // one space per gap, 8 characters of zone as 6-byte \uXXXX escapes), and a token is >= 1 byte.
  const timeTools = [{ type: "function", function: { name: "get_time", description: "time in a zone",
    parameters: { type: "object", properties: { zone: { type: "string", maxLength: 8 } }, required: ["zone"] } } }];
  const tcReq = { model: "tiny", messages: msgs, tools: timeTools, tool_choice: "required", parallel_tool_calls: false,
    max_tokens: 160, temperature: 0.7, seed: 1 };
  const tc = await client.chat.completions.create(tcReq);
  const tcMsg = tc.choices[0].message, call = tcMsg.tool_calls?.[0];
  let tcArgs = null;
  try { tcArgs = JSON.parse(call.function.arguments); } catch { /* checked below */ }
  check("tool call finish_reason", tc.choices[0].finish_reason === "tool_calls", tc.choices[0].finish_reason);
  check("tool call shape", tcMsg.tool_calls?.length === 1 && call.type === "function" && call.id.startsWith("call_") &&
    call.function.name === "get_time" && typeof call.function.arguments === "string" && !tcMsg.content, JSON.stringify(tcMsg));
  check("tool call arguments match the schema", tcArgs && Object.keys(tcArgs).join() === "zone" &&
    typeof tcArgs.zone === "string" && [...tcArgs.zone].length <= 8, call?.function?.arguments);
  const tcs = await client.chat.completions.create({ ...tcReq, stream: true });
  const parts = {};
  let firstOk = true, tcFinish = null;
  for await (const ch of tcs) {
    const c = ch.choices[0];
    if (!c) continue;
    for (const t of c.delta?.tool_calls || []) {
      if (!(t.index in parts)) { firstOk &&= !!t.id && !!t.function?.name; parts[t.index] = { name: t.function?.name, args: "" }; }
      parts[t.index].args += t.function?.arguments || "";
    }
    if (c.finish_reason) tcFinish = c.finish_reason;
  }
  check("streamed tool call: id and name first, fragments join to the same call", firstOk && tcFinish === "tool_calls" &&
    parts[0]?.name === "get_time" && parts[0].args === call?.function?.arguments, JSON.stringify(parts));

  }
  check("daemon alive", d.alive());
  check("metrics count chat requests", /mlxr_http_requests_total\{route="\/v1\/chat\/completions",method="POST",status="200"\} \d+/.test(
    await (await fetch(d.base + "/metrics")).text()));
} catch (e) {
  check("unexpected exception", false, e.stack || String(e));
}
check("clean shutdown", await d.stop());
if (!summary()) { console.log(d.log.join("").slice(-2000)); process.exit(1); }
