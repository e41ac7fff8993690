// test_daemon_frameworks.mjs: application frameworks whose default OpenAI path is the Responses API,
// used unchanged against a live mlxrd (random-weight models, so the checks are about structure):
// - the Vercel AI SDK (`ai` + `@ai-sdk/openai`, pinned in tests/golden/daemon/package.json):
//   createOpenAI({baseURL}) then openai(model), which calls /v1/responses: generateText and
//   streamText (same greedy text, usage, finish reasons), a tool loop (a forced call executed by the
//   SDK, its result sent back for a second step), generateObject with a Zod schema;
// - LangChain JS (`@langchain/openai` ChatOpenAI with useResponsesApi: true): invoke, stream, bound
//   tools with a forced tool_choice and a ToolMessage round trip, withStructuredOutput;
// - openai-node's Zod helpers: chat.completions.parse with zodResponseFormat and responses.parse with
//   zodTextFormat; ollama-js chat with `format` from z.toJSONSchema;
// - LlamaIndex TS (`@llamaindex/openai` 0.4, the last release: the line is deprecated on npm) has two
//   structured-output paths, both tested: its OpenAI LLM's chat({ responseFormat: zod }) sends
//   response_format json_schema to /v1/chat/completions and hands back the JSON text (parsed here);
//   exec({ responseFormat: zod }) instead adds a "format_output" tool and takes the object from its
//   call, left to tool_choice auto by LlamaIndex, so the test forces it through additionalChatOptions
//   (a random-weight model would not choose it): OpenAI over /v1/chat/completions, OpenAIResponses
//   over /v1/responses. (OpenAIResponses.chat ignores responseFormat: LlamaIndex never sends it.)
// A forced call always completes there (parallel_tool_calls false, and 300 tokens: the grammar's
// longest format_output call is under 270 bytes, a token at least one byte), so every run must give
// one valid object.
// The structured-output schema has integer (z.int(): +-2^53-1 bounds), bounded and pattern fields.
import { startDaemon, loadClient, checker, promptTokens as countPrompt } from "./daemon/harness.mjs";

const { check, summary } = checker();
globalThis.AI_SDK_LOG_WARNINGS = false; // "seed is not supported" by the OpenAI provider's types: mlxrd does use it
const { generateText, streamText, generateObject, tool, stepCountIs } = loadClient("ai");
const { createOpenAI } = loadClient("@ai-sdk/openai");
const { ChatOpenAI } = loadClient("@langchain/openai");
const { HumanMessage, ToolMessage } = loadClient("@langchain/core/messages");
const { z } = loadClient("zod");
const OpenAI = loadClient("openai").default;
const { zodResponseFormat, zodTextFormat } = loadClient("openai/helpers/zod");
const { Ollama } = loadClient("ollama");
const LI = loadClient("@llamaindex/openai");

const d = await startDaemon(["--ctx", "1024"], {}, { qwen3: true });
const promptTokens = (model, messages) => countPrompt(d.base, model, messages);
// user -> assistant call -> tool result, as chat messages (what a round trip's prompt must render)
const roundTrip = (user, id, name, args, result) => [{ role: "user", content: user },
  { role: "assistant", content: "", tool_calls: [{ id, type: "function", function: { name, arguments: args } }] },
  { role: "tool", tool_call_id: id, name, content: result }];
const seen = []; // the paths the frameworks called
const spy = async (url, init) => { seen.push(new URL(url).pathname); return fetch(url, init); };
const openai = createOpenAI({ baseURL: d.base + "/v1", apiKey: "unused", fetch: spy });
const CITY = z.object({ city: z.enum(["Paris", "Rome"]) });
// integer, bounded and pattern fields: Zod 4 emits minimum/maximum (z.int() always +-2^53-1) and pattern
const THING = z.object({ name: z.string().max(8), ok: z.boolean(), kind: z.enum(["a", "b"]), n: z.int(),
  age: z.number().int().min(0).max(120), score: z.number().min(-1).max(1), code: z.string().regex(/^[A-Z]{2}[0-9]$/) });

try {
  // ---- AI SDK: generateText / streamText through the Responses API
  const g = await generateText({ model: openai("tiny"), prompt: "Say something.", temperature: 0, maxOutputTokens: 8 });
  check("AI SDK used /v1/responses", seen.at(-1) === "/v1/responses", seen.join());
  check("generateText text", typeof g.text === "string" && g.text.length > 0, JSON.stringify(g.text));
  check("generateText finishReason length", g.finishReason === "length", g.finishReason);
  check("generateText usage", g.usage.outputTokens === 8 && g.usage.inputTokens > 0 && g.usage.totalTokens === g.usage.inputTokens + 8, JSON.stringify(g.usage));
  check("response id", g.response.id.startsWith("resp_") && g.response.modelId === "tiny", JSON.stringify(g.response.id));
  const s = streamText({ model: openai("tiny"), prompt: "Say something.", temperature: 0, maxOutputTokens: 8 });
  let streamedText = "";
  for await (const t of s.textStream) streamedText += t;
  check("streamText == generateText", streamedText === g.text, JSON.stringify([streamedText, g.text]));
  const su = await s.usage;
  check("streamText usage and finish", su.outputTokens === 8 && su.inputTokens === g.usage.inputTokens && (await s.finishReason) === "length", JSON.stringify(su));

  // ---- AI SDK: a tool loop (step 1 forced call, executed; step 2 gets the result)
  const calls = [];
  const weather = tool({ description: "Weather of a city", inputSchema: CITY,
    execute: async ({ city }) => { calls.push(city); return `Sunny in ${city}`; } });
  const loop = await generateText({ model: openai("qwen3"), prompt: "Weather in Paris?", tools: { get_weather: weather },
    toolChoice: { type: "tool", toolName: "get_weather" }, stopWhen: stepCountIs(2), maxOutputTokens: 150, temperature: 1, seed: 3,
    prepareStep: ({ stepNumber }) => (stepNumber === 1 ? { toolChoice: "none", maxOutputTokens: 6 } : undefined),
    providerOptions: { openai: { parallelToolCalls: false } } });
  const s0 = loop.steps[0];
  check("tool loop: two steps", loop.steps.length === 2, String(loop.steps.length));
  check("step 1: a call the SDK executed", s0?.toolCalls.length === 1 && s0.toolCalls[0].toolName === "get_weather"
    && ["Paris", "Rome"].includes(s0.toolCalls[0].input.city) && calls.length === 1 && s0.finishReason === "tool-calls",
    JSON.stringify([s0?.toolCalls, s0?.finishReason]));
  check("step 1: its result", s0?.toolResults[0]?.output === `Sunny in ${calls[0]}`, JSON.stringify(s0?.toolResults));
  const tc0 = s0?.toolCalls[0];
  const want2 = tc0 ? await promptTokens("qwen3", roundTrip("Weather in Paris?", tc0.toolCallId, "get_weather", tc0.input, `Sunny in ${calls[0]}`)) : -1;
  check("step 2: its prompt is the call and its result (tools off by toolChoice none)", loop.steps[1]?.usage.inputTokens === want2
    && loop.steps[1].toolCalls.length === 0, JSON.stringify([loop.steps[1]?.usage.inputTokens, want2]));

  // ---- AI SDK: structured output with a Zod schema (text.format json_schema)
  let objects = 0, cut = 0;
  for (const seed of [1, 2, 3]) {
    try {
      const o = await generateObject({ model: openai("tiny"), schema: THING, prompt: "A thing.", temperature: 1, seed, maxOutputTokens: 300 });
      if (THING.safeParse(o.object).success) objects++;
    } catch (e) {
      if (e.finishReason === "length") cut++;
      else check("generateObject error only when cut", false, String(e));
    }
  }
  check("generateObject: objects that validate", objects >= 1 && objects + cut === 3, `${objects} valid, ${cut} cut`);

  // ---- LangChain: ChatOpenAI with useResponsesApi
  seen.length = 0;
  const llm = (opts = {}) => new ChatOpenAI({ model: "tiny", apiKey: "unused", useResponsesApi: true, temperature: 0, maxTokens: 8,
    maxRetries: 0, configuration: { baseURL: d.base + "/v1", fetch: spy }, ...opts });
  const m = await llm().invoke("Say something.");
  check("LangChain used /v1/responses", seen.length > 0 && seen.every((p) => p === "/v1/responses"), seen.join());
  check("LangChain invoke text == AI SDK text (same greedy request)", m.text === g.text, JSON.stringify([m.text, g.text]));
  check("LangChain usage_metadata", m.usage_metadata?.output_tokens === 8 && m.usage_metadata.input_tokens === g.usage.inputTokens,
    JSON.stringify(m.usage_metadata));
  check("LangChain response id", String(m.response_metadata?.id || m.id).startsWith("resp_"), JSON.stringify([m.id, m.response_metadata?.id]));
  let lcStream = "";
  for await (const chunk of await llm().stream("Say something.")) lcStream += chunk.text;
  check("LangChain stream == invoke", lcStream === m.text, JSON.stringify(lcStream));

  const tooled = llm({ model: "qwen3", temperature: 1, maxTokens: 150 }).bindTools(
    [{ type: "function", function: { name: "get_weather", description: "Weather of a city",
      parameters: { type: "object", properties: { city: { type: "string", enum: ["Paris", "Rome"] } }, required: ["city"], additionalProperties: false } } }],
    { tool_choice: "get_weather", parallel_tool_calls: false });
  const human = new HumanMessage("Weather in Paris?");
  const tc = await tooled.invoke([human]);
  const call = tc.tool_calls?.[0];
  check("LangChain forced tool call", tc.tool_calls?.length === 1 && call.name === "get_weather" && ["Paris", "Rome"].includes(call.args.city)
    && typeof call.id === "string", JSON.stringify(tc.tool_calls));
  const answer = await llm({ model: "qwen3", maxTokens: 6 }).invoke([human, tc, new ToolMessage({ tool_call_id: call.id, content: "Sunny, 21 C" })]);
  const wantLC = await promptTokens("qwen3", roundTrip("Weather in Paris?", call.id, "get_weather", call.args, "Sunny, 21 C"));
  check("LangChain ToolMessage round trip: the prompt is the call and its result", typeof answer.text === "string"
    && answer.usage_metadata.input_tokens === wantLC, JSON.stringify([answer.usage_metadata.input_tokens, wantLC]));

  let parsed = 0, failed = 0;
  for (let i = 0; i < 3; i++) {
    const r = await llm({ temperature: 1, maxTokens: 300 }).withStructuredOutput(THING, { name: "thing", includeRaw: true }).invoke("A thing.");
    if (r.parsed && THING.safeParse(r.parsed).success) parsed++;
    else if (r.raw?.response_metadata?.status !== "incomplete") failed++;
  }
  check("LangChain withStructuredOutput parses (unless cut by maxTokens)", parsed >= 1 && failed === 0, `${parsed} parsed, ${failed} bad`);

  // ---- openai-node's Zod helpers and ollama-js format, with the same schema
  const client = new OpenAI({ baseURL: d.base + "/v1", apiKey: "unused", maxRetries: 0 });
  let okChat = 0, okResp = 0, okOllama = 0, bad = [];
  for (const seed of [1, 2, 3]) {
    const c = await client.chat.completions.parse({ model: "tiny", messages: [{ role: "user", content: "A thing." }],
      response_format: zodResponseFormat(THING, "thing"), temperature: 1, seed, max_tokens: 300 });
    const ch = c.choices[0];
    if (ch.message.parsed && THING.safeParse(ch.message.parsed).success) okChat++;
    else if (ch.finish_reason !== "length") bad.push("chat " + JSON.stringify(ch.message.content));
    const r = await client.responses.parse({ model: "tiny", input: "A thing.", text: { format: zodTextFormat(THING, "thing") },
      temperature: 1, max_output_tokens: 300 });
    if (r.output_parsed && THING.safeParse(r.output_parsed).success) okResp++;
    else if (r.status !== "incomplete") bad.push("responses " + JSON.stringify(r.output_text));
    const ol = new Ollama({ host: d.base });
    const o = await ol.chat({ model: "tiny", messages: [{ role: "user", content: "A thing." }], format: z.toJSONSchema(THING),
      options: { temperature: 1, seed, num_predict: 300 } });
    let parsedOk = false;
    try { parsedOk = THING.safeParse(JSON.parse(o.message.content)).success; } catch { parsedOk = false; }
    if (parsedOk) okOllama++;
    else if (o.done_reason !== "length") bad.push("ollama " + JSON.stringify(o.message.content));
  }
  check("openai-node zodResponseFormat: parsed objects validate (unless cut)", okChat >= 1 && !bad.some((b) => b.startsWith("chat")), `${okChat} ok; ${bad.join(" | ")}`);
  check("openai-node zodTextFormat (responses.parse): objects validate (unless cut)", okResp >= 1 && !bad.some((b) => b.startsWith("responses")), `${okResp} ok; ${bad.join(" | ")}`);
  check("ollama-js format from z.toJSONSchema: objects validate (unless cut)", okOllama >= 1 && !bad.some((b) => b.startsWith("ollama")), `${okOllama} ok; ${bad.join(" | ")}`);

  // ---- LlamaIndex TS: chat({ responseFormat }) and exec({ responseFormat }) with the same schema
  const li = []; // each request LlamaIndex sent: path, body, reply
  const liSpy = async (url, init) => {
    const res = await fetch(url, init);
    li.push({ path: new URL(url).pathname, body: JSON.parse(init.body), reply: await res.clone().json() });
    return res;
  };
  const liLLM = (Cls, model, opts) => new Cls({ model, apiKey: "unused", baseURL: d.base + "/v1", maxRetries: 0,
    additionalSessionOptions: { fetch: liSpy }, ...opts });
  const thing = [{ role: "user", content: "A thing." }];
  const intBounds = (schema) => schema?.properties?.n?.type === "integer" && schema.properties.n.maximum === Number.MAX_SAFE_INTEGER
    && schema.properties.code?.pattern === "^[A-Z]{2}[0-9]$";
  let liChat = 0;
  const liBad = [];
  for (const seed of [1, 2, 3]) {
    const r = await liLLM(LI.OpenAI, "tiny", { temperature: 1, maxTokens: 300, additionalChatOptions: { seed } })
      .chat({ messages: thing, responseFormat: THING });
    let ok = false;
    try { ok = THING.safeParse(JSON.parse(r.message.content)).success; } catch { ok = false; }
    if (ok) liChat++;
    else if (r.raw.choices[0].finish_reason !== "length") liBad.push("chat " + JSON.stringify(r.message.content));
  }
  check("LlamaIndex OpenAI.chat: /v1/chat/completions with response_format json_schema (z.int bounds, pattern)",
    li.length === 3 && li.every((c) => c.path === "/v1/chat/completions" && c.body.response_format?.type === "json_schema"
      && intBounds(c.body.response_format.json_schema?.schema)), JSON.stringify(li.map((c) => [c.path, c.body.response_format])));
  check("LlamaIndex chat responseFormat: objects validate (unless cut)", liChat >= 1 && liBad.length === 0,
    `${liChat} ok; ${liBad.join(" | ")}`);

  // exec: the object is the forced format_output call's arguments, validated by LlamaIndex and here
  const execRuns = [
    ["OpenAI", "/v1/chat/completions", (seed) => liLLM(LI.OpenAI, "qwen3", { temperature: 1, maxTokens: 300,
      additionalChatOptions: { seed, parallel_tool_calls: false, tool_choice: { type: "function", function: { name: "format_output" } } } }),
    (b) => b.tools?.[0]?.function?.name === "format_output" && intBounds(b.tools[0].function.parameters) && b.parallel_tool_calls === false],
    ["OpenAIResponses", "/v1/responses", (seed) => liLLM(LI.OpenAIResponses, "qwen3", { maxOutputTokens: 300,
      additionalChatOptions: { seed, parallel_tool_calls: false, tool_choice: { type: "function", name: "format_output" } } }),
    (b) => b.tools?.[0]?.name === "format_output" && intBounds(b.tools[0].parameters) && b.parallel_tool_calls === false],
  ];
  for (const [name, route, make, sentTool] of execRuns) {
    li.length = 0;
    let ok = 0;
    const bad = [];
    for (const seed of [1, 2, 3]) {
      const e = await make(seed).exec({ messages: thing, responseFormat: THING });
      if (e.toolCalls.length === 1 && e.toolCalls[0].name === "format_output" && THING.safeParse(e.object).success) ok++;
      else bad.push(JSON.stringify([e.toolCalls, e.object, li.at(-1)?.reply]));
    }
    check(`LlamaIndex ${name}.exec: ${route} with the format_output tool (z.int bounds, pattern), forced`,
      li.length === 3 && li.every((c) => c.path === route && sentTool(c.body)), JSON.stringify(li.map((c) => [c.path, c.body.tools])));
    check(`LlamaIndex ${name}.exec responseFormat: every forced call gives an object that validates`, ok === 3 && bad.length === 0,
      `${ok} ok; ${bad.join(" | ")}`);
  }
} catch (e) {
  check("no exception", false, e.stack || String(e));
}
check("daemon alive", d.alive());
check("daemon exits cleanly", await d.stop());
process.exit(summary() ? 0 : 1);
