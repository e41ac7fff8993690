// test_daemon_registry.mjs: the model registry through mlxrd's Ollama routes, with the official
// `ollama` npm client (pinned in tests/golden/daemon/package.json) where it has the call and plain
// HTTP where it has none (blobs) or where the input must be hostile. mlxrd runs with a private
// store (the harness's MLXR_MODELS) and serves the tiny random-weight model as the --model file
// "tiny"; the same GGUF is uploaded (HEAD/POST /api/blobs/:digest, as Ollama's CLI does before
// /api/create; ollama-js 0.6's create() only posts the request), created as catalog models with
// files / from / modelfile, listed, shown, copied, generated with and deleted, each response
// checked field by field. Hostile input (digests with separators, dots, uppercase; names with '..'
// or '/'; a blob whose bytes do not match its digest; bad Modelfiles; local paths in FROM) gets a
// 4xx with a clear error and changes nothing (the listing and the store's files before and after).
// Also: a catalog model's system prompt, parameters and messages as defaults at generation;
// generations during create/copy/delete churn, a model deleted while it streams, racing creates of
// one name; a restart on the same store serves the catalog models again; mlxrd SIGKILLed mid
// upload leaves no blob and the next start sweeps its temporary file; where the store is
// (--models-store, MLXR_MODELS, server.yaml, $XDG_DATA_HOME); a store that cannot be opened stops
// the start with a message naming it.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { startDaemon, loadClient, checker } from "./daemon/harness.mjs";

const { check, summary } = checker();
const { Ollama } = loadClient("ollama");
let d = await startDaemon(["--ctx", "512"]);
const store = path.join(d.tmp, "store");
let ollama = new Ollama({ host: d.base });
const greedy = { temperature: 0, num_predict: 6 };
const HEX64 = /^[0-9a-f]{64}$/;

const gguf = fs.readFileSync(path.join(d.tmp, "tiny.gguf"));
const sha = (buf) => crypto.createHash("sha256").update(buf).digest("hex");
const digest = "sha256:" + sha(gguf);

// a raw request: the path goes out exactly as given (fetch would resolve "..")
const raw = (method, p, body = null) => new Promise((resolve, reject) => {
  const u = new URL(d.base);
  const req = http.request({ host: u.hostname, port: u.port, method, path: p, headers: body ? { "content-length": body.length } : {} }, (res) => {
    const chunks = [];
    res.on("data", (c) => chunks.push(c));
    res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
  });
  req.on("error", reject);
  if (body) req.write(body);
  req.end();
});
const post = async (p, body) => {
  const r = await fetch(d.base + p, { method: "POST", body: JSON.stringify(body) });
  return { status: r.status, text: await r.text() };
};
const errOf = (r) => { try { return JSON.parse(r.text).error || ""; } catch { return ""; } };
const byName = (tags, n) => tags.models.find((m) => m.name === n);
const storeFiles = () => fs.readdirSync(path.join(store, "blobs")).sort();
const snapshot = async () => JSON.stringify({ tags: (await ollama.list()).models.map((m) => [m.name, m.digest, m.size]), files: storeFiles() });
const expectErr = async (name, fn, status, re) => {
  try { await fn(); check(name, false, "no error"); }
  catch (err) { check(name, err.status_code === status && (!re || re.test(err.error)), `${err.status_code} ${err.error}`); }
};

try {
  // ---- blobs
  let r = await raw("HEAD", "/api/blobs/" + digest);
  check("HEAD missing blob 404", r.status === 404, String(r.status));
  r = await raw("POST", "/api/blobs/" + digest, gguf);
  check("POST blob 201", r.status === 201, `${r.status} ${r.text}`);
  r = await raw("HEAD", "/api/blobs/" + digest);
  check("HEAD present blob 200", r.status === 200, String(r.status));
  r = await raw("HEAD", "/api/blobs/sha256-" + sha(gguf));
  check("HEAD sha256- form 200", r.status === 200, String(r.status));
  r = await raw("POST", "/api/blobs/" + digest, gguf);
  check("POST existing blob 200", r.status === 200, `${r.status} ${r.text}`);
  check("blob stored under its digest", fs.existsSync(path.join(store, "blobs", "sha256-" + sha(gguf))) &&
    fs.statSync(path.join(store, "blobs", "sha256-" + sha(gguf))).size === gguf.length);

  // ---- create: files + template, system, parameters (non-streamed), and streamed with license and messages
  const tmpl = "{{ .System }} {{ .Prompt }}";
  const c1 = await ollama.create({ model: "reg-tiny", files: { "tiny.gguf": digest }, template: tmpl, system: "Be terse.",
    parameters: { temperature: 0.5, stop: ["</s>", "END"] }, stream: false });
  check("create (stream false) answers success", c1.status === "success", JSON.stringify(c1));
  const statuses = [];
  for await (const p of await ollama.create({ model: "me/reg-full:v1", files: { "tiny.gguf": digest }, license: "MIT License text",
    messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }], stream: true })) statuses.push(p.status);
  check("create (stream) status lines end with success", statuses.length >= 2 && statuses.at(-1) === "success" &&
    statuses.includes(`using existing layer ${digest}`), JSON.stringify(statuses));
  const c3 = await ollama.create({ model: "reg-plain", files: { "tiny.gguf": digest }, stream: false });
  check("create plain", c3.status === "success");
  // the older API: a Modelfile, FROM an existing catalog model
  r = await post("/api/create", { model: "reg-mf", modelfile: "FROM reg-plain\nPARAMETER temperature 0.25\nPARAMETER stop \"<|x|>\"\nSYSTEM \"\"\"You are a modelfile.\"\"\"\nLICENSE Apache-2.0\n", stream: false });
  check("create from a modelfile", r.status === 200 && JSON.parse(r.text).status === "success", `${r.status} ${r.text}`);
  // from a --model file: its bytes are imported into the store
  const c5 = await ollama.create({ model: "reg-fromfile", from: "tiny", stream: false });
  check("create from a --model file", c5.status === "success");

  // quantize on create (the existing quantizer): a new, smaller model layer
  const qs = [];
  for await (const p of await ollama.create({ model: "reg-q8", from: "reg-plain", quantize: "q8_0", stream: true })) qs.push(p.status);
  check("create with quantize: status lines", /^quantizing F(32|16) model to Q8_0$/.test(qs[0]) && qs.at(-1) === "success", JSON.stringify(qs));

  // ---- list
  const tags = await ollama.list();
  const fileModel = byName(tags, "tiny:latest");
  check("the --model file still listed", !!fileModel);
  for (const n of ["reg-tiny:latest", "me/reg-full:v1", "reg-plain:latest", "reg-mf:latest", "reg-fromfile:latest"]) {
    const m = byName(tags, n);
    if (!check(`list has ${n}`, !!m, JSON.stringify(tags.models.map((x) => x.name)))) continue;
    check(`${n}: model == name`, m.model === n);
    check(`${n}: digest is 64 hex`, HEX64.test(m.digest), m.digest);
    check(`${n}: modified_at recent`, Math.abs(Date.now() - Date.parse(m.modified_at)) < 600000, m.modified_at);
    check(`${n}: details`, m.details.format === "gguf" && m.details.family === fileModel.details.family &&
      JSON.stringify(m.details.families) === JSON.stringify([fileModel.details.family]) &&
      m.details.parameter_size === fileModel.details.parameter_size &&
      m.details.quantization_level === fileModel.details.quantization_level && m.details.parent_model === "",
      JSON.stringify(m.details) + " vs " + JSON.stringify(fileModel.details));
  }
  const sizeOf = (n) => byName(tags, n)?.size;
  check("size = the GGUF's size (files only)", sizeOf("reg-tiny:latest") === gguf.length && sizeOf("reg-plain:latest") === gguf.length &&
    sizeOf("reg-fromfile:latest") === gguf.length, `${sizeOf("reg-tiny:latest")} vs ${gguf.length}`);
  check("size counts license and messages layers", sizeOf("me/reg-full:v1") > gguf.length + "MIT License text".length);
  check("file model's size is the file's", fileModel.size === gguf.length);
  const q8 = byName(tags, "reg-q8:latest");
  check("quantized model listed: Q8_0, smaller, its own digest", q8 && q8.details.quantization_level === "Q8_0" && q8.size < gguf.length &&
    q8.digest !== byName(tags, "reg-plain:latest").digest, JSON.stringify(q8));
  const gq = await ollama.generate({ model: "reg-q8", prompt: "Why is the sky blue?", raw: true, options: greedy, stream: false });
  check("the quantized model generates", gq.done === true && gq.eval_count > 0, JSON.stringify(gq));
  await ollama.delete({ model: "reg-q8" });
  check("no quantizer leftovers in the store", !fs.readdirSync(store).some((f) => f.startsWith("quantize-")), JSON.stringify(fs.readdirSync(store)));

  // ---- show
  const s1 = await ollama.show({ model: "reg-tiny" });
  check("show: template", s1.template === tmpl, s1.template);
  check("show: system", s1.system === "Be terse.", s1.system);
  check("show: parameters text", /^temperature\s+0\.5$/m.test(s1.parameters) && /^stop\s+"<\/s>"$/m.test(s1.parameters) &&
    /^stop\s+"END"$/m.test(s1.parameters), JSON.stringify(s1.parameters));
  check("show: license empty", s1.license === "");
  check("show: details", s1.details.format === "gguf" && s1.details.family === fileModel.details.family &&
    s1.details.parameter_size === fileModel.details.parameter_size);
  check("show: model_info", s1.model_info["general.architecture"] === fileModel.details.family);
  check("show: modelfile", /^FROM \S*sha256-[0-9a-f]{64}$/m.test(s1.modelfile) && /^TEMPLATE /m.test(s1.modelfile) &&
    /^SYSTEM /m.test(s1.modelfile) && /^PARAMETER temperature 0.5$/m.test(s1.modelfile), s1.modelfile);
  check("show: modified_at", Math.abs(Date.now() - Date.parse(s1.modified_at)) < 600000);
  const s2 = await ollama.show({ model: "me/reg-full:v1" });
  check("show: license", s2.license === "MIT License text", s2.license);
  check("show: messages", JSON.stringify(s2.messages) === JSON.stringify([{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }]),
    JSON.stringify(s2.messages));
  const s3 = await ollama.show({ model: "reg-mf:latest" });
  check("show (modelfile model): system, parameters, license", s3.system === "You are a modelfile." &&
    /^temperature\s+0\.25$/m.test(s3.parameters) && /^stop\s+"<\|x\|>"$/m.test(s3.parameters) && s3.license === "Apache-2.0",
    JSON.stringify([s3.system, s3.parameters, s3.license]));

  // ---- copy, then generate with the copy (same weights as the file: same greedy output)
  await ollama.copy({ source: "reg-plain", destination: "me/reg-copy:v2" });
  const tags2 = await ollama.list();
  const cp = byName(tags2, "me/reg-copy:v2");
  check("copy listed with the source's digest and size", cp && cp.digest === byName(tags2, "reg-plain:latest").digest &&
    cp.size === gguf.length, JSON.stringify(cp));
  const gFile = await ollama.generate({ model: "tiny", prompt: "Why is the sky blue?", raw: true, options: greedy, stream: false });
  const gCopy = await ollama.generate({ model: "me/reg-copy:v2", prompt: "Why is the sky blue?", raw: true, options: greedy, stream: false });
  check("generate with the copy", gCopy.done === true && typeof gCopy.response === "string" && gCopy.eval_count > 0, JSON.stringify(gCopy));
  check("the copy generates what the file does", gCopy.response === gFile.response, `${JSON.stringify(gCopy.response)} vs ${JSON.stringify(gFile.response)}`);
  const gLatest = await ollama.generate({ model: "reg-plain:latest", prompt: "Why is the sky blue?", raw: true, options: greedy, stream: false });
  check("name:latest names the same model", gLatest.response === gFile.response);
  // a catalog model's system prompt and parameters are defaults at generation
  const msgs = [{ role: "user", content: "Hello there" }];
  const cMf = await ollama.chat({ model: "reg-mf", messages: msgs, options: greedy, stream: false });
  const cSys = await ollama.chat({ model: "tiny", messages: [{ role: "system", content: "You are a modelfile." }, ...msgs], options: greedy, stream: false });
  const cNoSys = await ollama.chat({ model: "tiny", messages: msgs, options: greedy, stream: false });
  check("the model's system prompt is used", cMf.message.content === cSys.message.content && cMf.prompt_eval_count === cSys.prompt_eval_count &&
    cMf.prompt_eval_count > cNoSys.prompt_eval_count, JSON.stringify([cMf.message.content, cSys.message.content, cMf.prompt_eval_count, cNoSys.prompt_eval_count]));
  const cMsgs = await ollama.chat({ model: "me/reg-full:v1", messages: msgs, options: greedy, stream: false });
  const cMsgsFile = await ollama.chat({ model: "tiny", messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }, ...msgs], options: greedy, stream: false });
  check("the model's messages go before the chat's", cMsgs.message.content === cMsgsFile.message.content &&
    cMsgs.prompt_eval_count === cMsgsFile.prompt_eval_count, JSON.stringify([cMsgs.prompt_eval_count, cMsgsFile.prompt_eval_count]));
  const cOwn = await ollama.chat({ model: "reg-mf", messages: [{ role: "system", content: "Own." }, ...msgs], options: greedy, stream: false });
  const cOwnFile = await ollama.chat({ model: "tiny", messages: [{ role: "system", content: "Own." }, ...msgs], options: greedy, stream: false });
  check("a request's own system message wins", cOwn.message.content === cOwnFile.message.content && cOwn.prompt_eval_count === cOwnFile.prompt_eval_count);
  await ollama.create({ model: "reg-short", from: "reg-plain", parameters: { temperature: 0, num_predict: 3 }, stream: false });
  const p1 = await ollama.generate({ model: "reg-short", prompt: "Why", raw: true, stream: false });
  const p2 = await ollama.generate({ model: "reg-short", prompt: "Why", raw: true, stream: false });
  const p3 = await ollama.generate({ model: "reg-short", prompt: "Why", raw: true, options: { num_predict: 5, temperature: 0 }, stream: false });
  check("the model's parameters are defaults", p1.eval_count === 3 && p1.response === p2.response, JSON.stringify([p1.eval_count, p1.response, p2.response]));
  check("a request's options win over the model's", p3.eval_count === 5, String(p3.eval_count));
  await ollama.delete({ model: "reg-short" });

  const ps = await ollama.ps();
  check("ps lists the loaded catalog model", ps.models.some((m) => m.name === "me/reg-copy:v2"), JSON.stringify(ps.models.map((m) => m.name)));

  // ---- delete (the copy is loaded: unloaded first)
  await ollama.delete({ model: "me/reg-copy:v2" });
  const tags3 = await ollama.list();
  check("deleted copy gone from list", !byName(tags3, "me/reg-copy:v2"));
  check("the source keeps the shared blob", !!byName(tags3, "reg-plain:latest") && fs.existsSync(path.join(store, "blobs", "sha256-" + sha(gguf))));
  check("deleted copy gone from ps", !(await ollama.ps()).models.some((m) => m.name === "me/reg-copy:v2"));
  await expectErr("generate with a deleted model 404", () => ollama.generate({ model: "me/reg-copy:v2", prompt: "x", stream: false }), 404);
  await expectErr("delete again 404", () => ollama.delete({ model: "me/reg-copy:v2" }), 404);
  await expectErr("delete missing 404", () => ollama.delete({ model: "never-was" }), 404, /not found/);
  await expectErr("delete a --model file refused", () => ollama.delete({ model: "tiny" }), 400, /--model/);
  await expectErr("copy from missing 404", () => ollama.copy({ source: "never-was", destination: "x" }), 404);
  await expectErr("show missing 404", () => ollama.show({ model: "never-was" }), 404);
  // replacing a model by create keeps one entry under the name
  await ollama.create({ model: "reg-tiny", files: { "tiny.gguf": digest }, system: "Replaced.", stream: false });
  const s4 = await ollama.show({ model: "reg-tiny" });
  check("create replaces a model of the same name", s4.system === "Replaced." && (await ollama.list()).models.filter((m) => m.name === "reg-tiny:latest").length === 1);

  // ---- concurrency: generations on catalog models while others are created, copied and deleted;
  // a model deleted while it streams finishes that stream and is gone afterwards; racing creates of
  // one name leave one model
  await ollama.copy({ source: "reg-plain", destination: "conc-a" });
  const long = { temperature: 0, num_predict: 24 };
  const gens = [];
  for (let i = 0; i < 4; i++) gens.push(ollama.generate({ model: "reg-plain", prompt: "Why is the sky blue?", raw: true, options: long, stream: false }));
  const churn = (async () => {
    for (let i = 0; i < 6; i++) {
      await ollama.copy({ source: "reg-plain", destination: `churn-${i}` });
      await ollama.create({ model: `churn-c${i}`, files: { "tiny.gguf": digest }, stream: false });
      await ollama.generate({ model: `churn-c${i}`, prompt: "x", raw: true, options: { temperature: 0, num_predict: 2 }, stream: false });
      await ollama.delete({ model: `churn-${i}` });
      await ollama.delete({ model: `churn-c${i}` });
    }
  })();
  let first = true, streamed = "", last = null;
  for await (const p of await ollama.generate({ model: "conc-a", prompt: "Why is the sky blue?", raw: true, options: { temperature: 0, num_predict: 32 }, stream: true })) {
    if (first) { first = false; await ollama.delete({ model: "conc-a" }); }
    streamed += p.response;
    if (p.done) last = p;
  }
  check("a stream outlives its model's deletion", last && last.done === true && streamed.length > 0, JSON.stringify(last));
  const outs = await Promise.all(gens);
  await churn;
  check("generations during churn all complete alike", outs.every((o) => o.done && o.response === outs[0].response && o.response.length > 0),
    JSON.stringify(outs.map((o) => o.response)));
  await Promise.all([0, 1, 2, 3].map(() => ollama.create({ model: "race-x", files: { "tiny.gguf": digest }, stream: false })));
  const tags4 = await ollama.list();
  check("racing creates of one name: one model", tags4.models.filter((m) => m.name === "race-x:latest").length === 1);
  check("churned models gone", !tags4.models.some((m) => /^(churn-|conc-a)/.test(m.name)), JSON.stringify(tags4.models.map((m) => m.name)));
  await expectErr("deleted mid-stream model 404", () => ollama.generate({ model: "conc-a", prompt: "x", stream: false }), 404);
  const gRace = await ollama.generate({ model: "race-x", prompt: "Why is the sky blue?", raw: true, options: greedy, stream: false });
  check("the raced model generates", gRace.response === gFile.response);
  await ollama.delete({ model: "race-x" });

  // ---- hostile input: a 4xx with a clear error, nothing changed
  const before = await snapshot();
  const hex = sha(gguf);
  for (const [label, p] of [
    ["dots and slashes", "/api/blobs/sha256:../../etc/passwd"],
    ["uppercase", "/api/blobs/sha256:" + hex.toUpperCase()],
    ["short", "/api/blobs/sha256:abc"],
    ["trailing dot", "/api/blobs/sha256:" + hex + ".x"],
    ["separator", "/api/blobs/sha256-" + hex.slice(0, 32) + "/" + hex.slice(32)],
    ["other algorithm", "/api/blobs/md5:" + hex.slice(0, 32)],
    ["dots in the digest", "/api/blobs/sha256:" + hex.slice(0, 62) + ".."],
  ]) {
    r = await raw("HEAD", p);
    check(`HEAD blob digest ${label}: 400`, r.status === 400, String(r.status));
    r = await raw("POST", p, Buffer.from("payload"));
    check(`POST blob digest ${label}: 400 invalid digest`, r.status === 400 && /invalid digest/.test(errOf(r)), `${r.status} ${r.text}`);
  }
  const other = Buffer.from("these bytes are not the digest's");
  const wrong = "sha256:" + sha(Buffer.from("something else"));
  r = await raw("POST", "/api/blobs/" + wrong, other);
  check("blob whose bytes do not match its digest: 400", r.status === 400 && /mismatch|digest/.test(errOf(r)), `${r.status} ${r.text}`);
  r = await raw("HEAD", "/api/blobs/" + wrong);
  check("nothing kept under the digest", r.status === 404);
  r = await raw("HEAD", "/api/blobs/sha256:" + sha(other));
  check("nothing kept under the bytes' digest", r.status === 404);
  for (const [label, body, status, re] of [
    ["name with ..", { model: "../evil", files: { "tiny.gguf": digest } }, 400, /invalid model name/],
    ["name with .. inside", { model: "a/../b", files: { "tiny.gguf": digest } }, 400, /invalid model name/],
    ["name with too many /", { model: "a/b/c/d", files: { "tiny.gguf": digest } }, 400, /invalid model name/],
    ["name with leading /", { model: "/etc/passwd", files: { "tiny.gguf": digest } }, 400, /invalid model name/],
    ["the name of a --model file", { model: "tiny", files: { "tiny.gguf": digest } }, 400, /--model/],
    ["file name with ..", { model: "h1", files: { "../tiny.gguf": digest } }, 400, /invalid file name/],
    ["file name with /", { model: "h1", files: { "x/tiny.gguf": digest } }, 400, /invalid file name/],
    ["file digest uppercase", { model: "h1", files: { "tiny.gguf": "sha256:" + hex.toUpperCase() } }, 400, /digest/],
    ["file digest with separator", { model: "h1", files: { "tiny.gguf": "sha256:../" + hex } }, 400, /digest/],
    ["blob not uploaded", { model: "h1", files: { "tiny.gguf": wrong } }, 400, /not found/],
    ["not a GGUF", { model: "h1", files: { "x.safetensors": digest } }, 400, /GGUF/],
    ["from an absolute path", { model: "h1", from: "/etc/passwd" }, 400, /local paths/],
    ["from a relative path", { model: "h1", from: "../tiny.gguf" }, 400, /local paths/],
    ["from a missing model", { model: "h1", from: "never-was" }, 404, /not found/],
    ["neither from nor files", { model: "h1" }, 400, /from/],
    ["unknown quantization type", { model: "h1", from: "reg-plain", quantize: "q3_zz" }, 400, /unknown quantization type/],
    ["parameters not an object", { model: "h1", from: "reg-plain", parameters: [1] }, 400, /parameters/],
    ["bad message role", { model: "h1", from: "reg-plain", messages: [{ role: "tool", content: "x" }] }, 400, /role/],
    ["modelfile unknown instruction", { model: "h1", modelfile: "FROM reg-plain\nFROBNICATE yes\n" }, 400, /line 2/],
    ["modelfile repeated TEMPLATE", { model: "h1", modelfile: "FROM reg-plain\nTEMPLATE a\nTEMPLATE b\n" }, 400, /line 3/],
    ["modelfile FROM a path", { model: "h1", modelfile: "FROM /etc/passwd\n" }, 400, /local paths/],
  ]) {
    r = await post("/api/create", { ...body, stream: false });
    check(`create ${label}: ${status}`, r.status === status && re.test(errOf(r)), `${r.status} ${r.text}`);
  }
  for (const [label, body, status] of [
    ["destination with ..", { source: "reg-plain", destination: "../x" }, 400],
    ["destination with /", { source: "reg-plain", destination: "a/b/c/d" }, 400],
    ["destination empty", { source: "reg-plain", destination: "" }, 400],
    ["destination a --model file", { source: "reg-plain", destination: "tiny" }, 400],
    ["source missing", { source: "never-was", destination: "x" }, 404],
  ]) {
    r = await post("/api/copy", body);
    check(`copy ${label}: ${status}`, r.status === status && errOf(r).length > 0, `${r.status} ${r.text}`);
  }
  r = await fetch(d.base + "/api/delete", { method: "DELETE", body: JSON.stringify({ model: "../reg-plain" }) });
  check("delete ../name: 404", r.status === 404);
  r = await fetch(d.base + "/api/delete", { method: "POST", body: JSON.stringify({ model: "reg-plain" }) });
  check("delete with POST: 405", r.status === 405);
  check("hostile input changed nothing", (await snapshot()) === before, `${before}\nvs\n${await snapshot()}`);
  check("no temporary files left in the store", storeFiles().every((f) => /^sha256-[0-9a-f]{64}$/.test(f)), JSON.stringify(storeFiles()));

  // ---- a restart on the same store serves the catalog again
  const names = (await ollama.list()).models.map((m) => m.name).sort();
  // two blobs no model uses: one two days old (removed at the next start), one fresh (kept: its
  // create may be on its way)
  const oldBlob = Buffer.from("unused and old"), youngBlob = Buffer.from("unused and young");
  for (const b of [oldBlob, youngBlob]) await raw("POST", "/api/blobs/sha256:" + sha(b), b);
  const twoDays = Date.now() / 1000 - 2 * 86400;
  fs.utimesSync(path.join(store, "blobs", "sha256-" + sha(oldBlob)), twoDays, twoDays);
  check("daemon stops cleanly", await d.stop());
  d = await startDaemon(["--ctx", "512"], { MLXR_MODELS: store });
  ollama = new Ollama({ host: d.base });
  const names2 = (await ollama.list()).models.map((m) => m.name).sort();
  check("restart: the same models", JSON.stringify(names2) === JSON.stringify(names), `${names2} vs ${names}`);
  check("restart: an unused blob a day old is removed, a fresh one kept", !fs.existsSync(path.join(store, "blobs", "sha256-" + sha(oldBlob))) &&
    fs.existsSync(path.join(store, "blobs", "sha256-" + sha(youngBlob))) && /store: removed 1 unused blob/.test(d.log.join("")), d.log.join(""));
  const g2 = await ollama.generate({ model: "reg-plain", prompt: "Why is the sky blue?", raw: true, options: greedy, stream: false });
  check("restart: a catalog model generates", g2.response === gFile.response);
  check("daemon stops cleanly after restart", await d.stop());
  // crash safety: mlxrd SIGKILLed in the middle of a blob upload leaves no file under the final
  // name, and the next start sweeps the temporary file away (and says so)
  {
    const x = await startDaemon([]);
    const xs = path.join(x.tmp, "store");
    const big = crypto.randomBytes(4 << 20);
    const dg = "sha256-" + sha(big);
    const u = new URL(x.base);
    const req = http.request({ host: u.hostname, port: u.port, method: "POST", path: "/api/blobs/" + dg, headers: { "content-length": big.length } });
    req.on("error", () => {});
    req.write(big.subarray(0, 1 << 20));
    const partial = () => fs.readdirSync(path.join(xs, "blobs")).filter((f) => /^tmp-[0-9a-f]+-partial$/.test(f) && fs.statSync(path.join(xs, "blobs", f)).size > 0);
    for (let i = 0; i < 500 && partial().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    check("crash: the upload is in a temporary file", partial().length === 1, JSON.stringify(fs.readdirSync(path.join(xs, "blobs"))));
    process.kill(-x.child.pid, "SIGKILL");
    for (let i = 0; i < 250 && x.alive(); i++) await new Promise((r) => setTimeout(r, 20));
    req.destroy();
    check("crash: nothing under the final name", !fs.existsSync(path.join(xs, "blobs", dg)));
    const y = await startDaemon([], { MLXR_MODELS: xs });
    check("crash: the next start sweeps the temporary file", partial().length === 0 && fs.readdirSync(path.join(xs, "blobs")).length === 0 &&
      /store: removed tmp-[0-9a-f]+-partial/.test(y.log.join("")), y.log.join(""));
    const yr = await fetch(y.base + "/api/blobs/" + dg, { method: "HEAD" });
    check("crash: the blob is absent", yr.status === 404);
    await y.stop();
  }

  // where the store is: --models-store over MLXR_MODELS over server.yaml's models_store over
  // $XDG_DATA_HOME/mlxr (each daemon says it on stderr)
  const where = async (args, env, opts) => {
    const x = await startDaemon(args, env, opts);
    const m = /mlxrd: model store (.*): \d+ catalog model\(s\)/.exec(x.log.join(""));
    await x.stop();
    return m ? m[1] : "(not said)";
  };
  const tdir = d.tmp;
  check("store from server.yaml", (await where([], { MLXR_MODELS: "" }, { config: `models_store: ${tdir}/yaml-store\n` })) === `${tdir}/yaml-store`);
  check("MLXR_MODELS over server.yaml", (await where([], { MLXR_MODELS: `${tdir}/env-store` }, { config: `models_store: ${tdir}/yaml-store\n` })) === `${tdir}/env-store`);
  check("--models-store over MLXR_MODELS", (await where(["--models-store", `${tdir}/flag-store`], { MLXR_MODELS: `${tdir}/env-store` })) === `${tdir}/flag-store`);
  check("default: $XDG_DATA_HOME/mlxr", (await where([], { MLXR_MODELS: "", XDG_DATA_HOME: `${tdir}/xdg` })) === `${tdir}/xdg/mlxr` &&
    fs.existsSync(`${tdir}/xdg/mlxr/catalog.db`));

  // a store that cannot be opened is a clear startup error
  const notDir = path.join(d.tmp, "not-a-dir");
  fs.writeFileSync(notDir, "x");
  try {
    const bad = await startDaemon([], { MLXR_MODELS: notDir });
    check("a bad store refuses to start", false, "it started");
    await bad.stop();
  } catch (e) {
    check("a bad store refuses to start, naming it", /mlxrd exited early: [\s\S]*model store '[^']*not-a-dir'/.test(String(e.message)), String(e.message).slice(0, 400));
  }
} catch (e) {
  check("no exception", false, (e && e.stack) || String(e));
  console.log(d.log.join(""));
  await d.stop();
}
process.exit(summary() ? 0 : 1);
