// test_json_schema_ajv.mjs: JSON-schema-constrained generation through a live mlxrd, checked with
// ajv + ajv-formats as the independent validator (npm, fetched by scripts/fetch.d/50-json-schema.sh).
//
// The schema set covers every keyword the converter handles (core/runtime/grammar/json_schema*.c):
// integer bounds of any magnitude (Zod's +-9007199254740991), number bounds, both exclusive forms,
// multipleOf, pattern (classes, escapes, groups, alternation, bounded quantifiers, anchors), the
// formats date, time, date-time, uuid, email, uri, ipv4, ipv6, min/maxLength, min/maxItems,
// prefixItems, draft-7 array items with additionalItems, const, enum, nullable types,
// anyOf/oneOf/allOf, $ref/$defs/definitions with recursion, additionalProperties true/false/schema,
// patternProperties, required and optional members; real Zod 4 output (z.toJSONSchema, made here
// at test time with the zod package) and schemas written as Pydantic v2 emits them ($defs, anyOf
// with null, titles, defaults, discriminator). Each schema gets N constrained generations (50; 10
// in the sanitizer tree, which runs ~10x slower) from a random-weight model, through OpenAI's
// response_format and Ollama's format, streamed and not. Every output must finish ("stop"),
// parse, and:
//   - for schemas the grammar enforces completely: validate under ajv, with no schema_violation;
//   - for schemas with keywords left to the post-generation validator (uniqueItems, not, oneOf
//     overlap, ...): the daemon's schema_violation report must agree with ajv (reported exactly
//     when ajv rejects), and ajv-valid outputs must exist.
// Ends with "N passed, N failed".
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { startDaemon, checker, SRC } from "./daemon/harness.mjs";
import { skip } from "./suite.mjs";

const { check, summary } = checker();
const DEPS = path.join(SRC, "tests/.cache/json-schema");
if (!fs.existsSync(path.join(DEPS, "node_modules/ajv/package.json"))) skip("ajv/zod missing (run scripts/fetch_test_deps.sh)");
const req = createRequire(path.join(DEPS, "package.json"));
const Ajv = req("ajv").default;
const Ajv2020 = req("ajv/dist/2020").default;
const addFormats = req("ajv-formats").default;
const { z } = req("zod");

const ASAN = /asan/.test(process.env.MLXR_BUILD || "");
const N = ASAN ? 10 : 50;

// ---------------- the schema set ----------------

const zodSchemas = () => {
  const Tree = z.object({ value: z.number().int().min(0).max(99), get children() { return z.array(Tree).max(2).optional(); } });
  return {
    "zod: integers, bounds, positive": z.object({
      id: z.number().int(), age: z.number().int().min(0).max(120), step: z.number().int().multipleOf(5),
      ratio: z.number().min(-1.5).max(2.25), pos: z.number().positive().max(100), neg: z.number().negative(),
    }),
    "zod: strings and formats": z.object({
      email: z.email(), id: z.uuid(), day: z.iso.date(), at: z.iso.datetime(), code: z.string().regex(/^[A-Z]{3}-\d{2,4}$/),
      short: z.string().min(2).max(5), ip: z.ipv4(), ip6: z.ipv6(), site: z.url(),
    }),
    "zod: enums, literals, nullable, optional": z.object({
      role: z.enum(["admin", "user", "guest"]), kind: z.literal("item"), note: z.string().max(6).nullable(),
      flag: z.boolean().optional(), count: z.number().int().min(1).max(9).optional(),
    }),
    "zod: arrays and tuples": z.object({
      tags: z.array(z.string().min(1).max(4)).min(1).max(3), pair: z.tuple([z.string().max(3), z.number().int().min(0).max(9)]),
      matrix: z.array(z.array(z.number().int().min(0).max(9)).max(2)).max(2),
    }),
    "zod: unions": z.object({
      shape: z.discriminatedUnion("type", [z.object({ type: z.literal("circle"), r: z.number().min(0).max(10) }),
        z.object({ type: z.literal("rect"), w: z.number().int().min(1).max(5), h: z.number().int().min(1).max(5) })]),
      id: z.union([z.number().int().min(0).max(999), z.string().regex(/^id-[0-9]{3}$/)]),
    }),
    "zod: recursive (getter)": Tree,
    "zod: record": z.object({ scores: z.record(z.string().regex(/^[a-z]{1,4}$/), z.number().int().min(0).max(9)) }),
  };
};

const PYDANTIC = {
  "pydantic: model with $defs, Optional, Literal": {
    "$defs": {
      "Address": {
        "properties": { "street": { "maxLength": 12, "title": "Street", "type": "string" },
          "zip": { "pattern": "^[0-9]{5}$", "title": "Zip", "type": "string" } },
        "required": ["street", "zip"], "title": "Address", "type": "object",
      },
    },
    "properties": {
      "name": { "maxLength": 10, "minLength": 1, "title": "Name", "type": "string" },
      "age": { "anyOf": [{ "maximum": 150, "minimum": 0, "type": "integer" }, { "type": "null" }], "default": null, "title": "Age" },
      "address": { "$ref": "#/$defs/Address" },
      "backup": { "anyOf": [{ "$ref": "#/$defs/Address" }, { "type": "null" }], "default": null },
      "kind": { "const": "person", "default": "person", "title": "Kind", "type": "string" },
      "score": { "exclusiveMinimum": 0, "maximum": 1, "title": "Score", "type": "number" },
      "tags": { "items": { "maxLength": 5, "type": "string" }, "maxItems": 3, "title": "Tags", "type": "array" },
    },
    "required": ["name", "address", "score"], "title": "Person", "type": "object",
  },
  "pydantic: discriminated union": {
    "$defs": {
      "Cat": { "properties": { "pet_type": { "const": "cat", "title": "Pet Type", "type": "string" },
        "lives": { "maximum": 9, "minimum": 1, "title": "Lives", "type": "integer" } }, "required": ["pet_type", "lives"], "title": "Cat", "type": "object" },
      "Dog": { "properties": { "pet_type": { "const": "dog", "title": "Pet Type", "type": "string" },
        "bark": { "enum": ["loud", "soft"], "title": "Bark", "type": "string" } }, "required": ["pet_type", "bark"], "title": "Dog", "type": "object" },
    },
    "properties": { "pet": { "discriminator": { "mapping": { "cat": "#/$defs/Cat", "dog": "#/$defs/Dog" }, "propertyName": "pet_type" },
      "oneOf": [{ "$ref": "#/$defs/Cat" }, { "$ref": "#/$defs/Dog" }], "title": "Pet" } },
    "required": ["pet"], "title": "Owner", "type": "object",
  },
  "pydantic: recursive tree": {
    "$defs": { "Node": { "properties": { "value": { "maximum": 99, "minimum": 0, "title": "Value", "type": "integer" },
      "children": { "items": { "$ref": "#/$defs/Node" }, "maxItems": 2, "title": "Children", "type": "array" } },
    "required": ["value"], "title": "Node", "type": "object" } },
    "$ref": "#/$defs/Node",
  },
};

const HAND = {
  "formats": { type: "object", properties: Object.fromEntries(["date", "time", "date-time", "uuid", "email", "uri", "ipv4", "ipv6"]
    .map((f) => [f, { type: "string", format: f }])), required: ["date", "time", "date-time", "uuid", "email", "uri", "ipv4", "ipv6"], additionalProperties: false },
  "pattern: classes, groups, alternation, quantifiers": { type: "object", properties: {
    a: { type: "string", pattern: "^(?:[a-f]{2}|\\d{3})(-[A-Z]?x){1,3}\\.\\w+$" },
    b: { type: "string", pattern: "^[^\\s\"\\\\]{1,5}\\t?$" },
    c: { type: "string", pattern: "^(cat|dog|\\u00e9l\\u00e8ve)s?$" },
    d: { type: "string", pattern: "^\\+?[0-9]{1,3}[ .-]?\\(?[0-9]{3}\\)?$" },
  }, required: ["a", "b", "c", "d"], additionalProperties: false },
  "numbers: big bounds, exclusive, multipleOf": { type: "object", properties: {
    big: { type: "integer", minimum: -1e20, maximum: 1e20 }, ex: { type: "integer", exclusiveMinimum: -3, exclusiveMaximum: 3 },
    m7: { type: "integer", multipleOf: 7 }, cents: { type: "number", minimum: 0, maximum: 50, multipleOf: 0.01 },
    frac: { type: "number", exclusiveMinimum: 0.25, exclusiveMaximum: 0.5 }, neg: { type: "number", minimum: -1000.5, maximum: -999.75 },
  }, required: ["big", "ex", "m7", "cents", "frac", "neg"], additionalProperties: false },
  "arrays: prefixItems, items, min/maxItems": { type: "object", properties: {
    t: { type: "array", prefixItems: [{ type: "boolean" }, { enum: ["x", "y"] }], items: { type: "integer", minimum: 0, maximum: 3 }, minItems: 1, maxItems: 4 },
    u: { type: "array", items: { type: "null" }, minItems: 2, maxItems: 2 },
  }, required: ["t", "u"], additionalProperties: false },
  "draft-07: items array, additionalItems, definitions": { $schema: "http://json-schema.org/draft-07/schema#",
    definitions: { small: { type: "integer", minimum: 0, maximum: 9 }, list: { type: "object", properties: { head: { $ref: "#/definitions/small" }, tail: { $ref: "#/definitions/list" } }, required: ["head"] } },
    type: "object", properties: {
      t: { type: "array", items: [{ type: "string", maxLength: 2 }, { $ref: "#/definitions/small" }], additionalItems: false },
      v: { type: "array", items: [{ type: "boolean" }], additionalItems: { type: "null" }, maxItems: 3 },
      l: { $ref: "#/definitions/list" } },
    required: ["t", "v", "l"] },
  "objects: additionalProperties, patternProperties, required order": { type: "object", properties: {
    fixed: { type: "object", properties: { a: { type: "integer", minimum: 0, maximum: 5 }, b: { type: "boolean" } }, required: ["b"], additionalProperties: false },
    open: { type: "object", properties: { k: { type: "null" } }, required: ["k"], additionalProperties: { type: "integer", minimum: 0, maximum: 9 }, maxProperties: 3 },
    anyextra: { type: "object", properties: { k: { type: "boolean" } }, required: ["k"], additionalProperties: true, maxProperties: 1 },
    pat: { type: "object", patternProperties: { "^x_[0-9]$": { type: "boolean" } }, additionalProperties: false, minProperties: 1, maxProperties: 2 },
    names: { type: "object", propertyNames: { pattern: "^[a-z]{1,3}$" }, additionalProperties: { type: "boolean" }, maxProperties: 2 },
  }, required: ["fixed", "open", "anyextra", "pat", "names"], additionalProperties: false },
  "const, enum, nullable types": { type: "object", properties: {
    c: { const: { a: [1, "two", null], b: true } }, e: { enum: [1, "one", null, [2], { k: "v" }] },
    n: { type: ["integer", "null"], minimum: 10, maximum: 12 }, s: { type: ["string", "boolean"], maxLength: 2 },
  }, required: ["c", "e", "n", "s"], additionalProperties: false },
  "allOf merge, anyOf": { allOf: [
    { type: "object", properties: { a: { type: "integer", minimum: 0 } }, required: ["a"] },
    { type: "object", properties: { a: { maximum: 50 }, b: { anyOf: [{ type: "string", maxLength: 3 }, { type: "number", minimum: 1, maximum: 2 }] } }, required: ["b"] },
    { properties: { a: true, b: true, c: { type: "null" } }, additionalProperties: false },
  ] },
  // leftovers: the grammar cannot enforce these; the daemon checks and reports
  "post: uniqueItems, contains": { type: "object", properties: {
    u: { type: "array", items: { enum: [1, 2, 3] }, minItems: 2, maxItems: 3, uniqueItems: true },
    c: { type: "array", items: { type: "integer", minimum: 0, maximum: 3 }, minItems: 1, maxItems: 3, contains: { const: 2 } },
  }, required: ["u", "c"], additionalProperties: false },
  "post: min/maxProperties with optional members, dependentRequired": { type: "object", properties: {
    a: { type: "boolean" }, b: { type: "null" }, c: { type: "integer", minimum: 0, maximum: 1 } },
    minProperties: 1, maxProperties: 2, dependentRequired: { a: ["b"] }, additionalProperties: false },
  "post: oneOf overlap, not, if/then/else": { type: "object", properties: {
    o: { oneOf: [{ type: "integer", minimum: 0, maximum: 5 }, { type: "integer", minimum: 3, maximum: 9 }] },
    n: { type: "integer", minimum: 0, maximum: 4, not: { const: 2 } },
    i: { type: "object", properties: { k: { enum: ["a", "b"] }, v: { type: "integer", minimum: 0, maximum: 3 } }, required: ["k", "v"],
      if: { properties: { k: { const: "a" } } }, then: { properties: { v: { maximum: 1 } } }, else: { properties: { v: { minimum: 2 } } } },
  }, required: ["o", "n", "i"], additionalProperties: false },
};

// ---------------- generation ----------------

const d = await startDaemon();
const post = async (p, body) => {
  const r = await fetch(d.base + p, { method: "POST", body: JSON.stringify(body) });
  return { status: r.status, text: await r.text() };
};

// one generation: {text, finish, violation}
async function generate(schema, k) {
  const api = k % 2 === 0 ? "openai" : "ollama";
  const stream = k % 4 >= 2;
  const seed = 1000 + k;
  if (api === "openai") {
    const r = await post("/v1/chat/completions", { model: "tiny", messages: [{ role: "user", content: "JSON please" }], seed,
      temperature: 1.0, max_tokens: 1500, stream, response_format: { type: "json_schema", json_schema: { name: "t", schema, strict: true } } });
    if (r.status !== 200) return { error: `HTTP ${r.status} ${r.text.slice(0, 300)}` };
    if (!stream) {
      const c = JSON.parse(r.text).choices[0];
      return { text: c.message.content, finish: c.finish_reason, violation: c.schema_violation };
    }
    let text = "", finish = null, violation;
    for (const line of r.text.split("\n")) {
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      for (const c of JSON.parse(line.slice(6)).choices || []) {
        text += (c.delta && c.delta.content) || "";
        finish = c.finish_reason || finish;
        violation = c.schema_violation || violation;
      }
    }
    return { text, finish, violation };
  }
  const r = await post("/api/generate", { model: "tiny", prompt: "JSON please", format: schema, stream,
    options: { seed, temperature: 1.0, num_predict: 1500 } });
  if (r.status !== 200) return { error: `HTTP ${r.status} ${r.text.slice(0, 300)}` };
  let text = "", finish = null, violation;
  for (const line of r.text.split("\n")) {
    if (!line.trim()) continue;
    const j = JSON.parse(line);
    text += j.response || "";
    if (j.done) finish = j.done_reason;
    violation = j.schema_violation || violation;
  }
  return { text, finish, violation };
}

async function pool(n, width, fn) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      out[i] = await fn(i);
    }
  }));
  return out;
}

const schemas = [];
for (const [name, zs] of Object.entries(zodSchemas())) schemas.push([name, z.toJSONSchema(zs)]);
for (const [name, s] of Object.entries(PYDANTIC)) schemas.push([name, s]);
for (const [name, s] of Object.entries(HAND)) schemas.push([name, s]);

const t0 = Date.now();
let total = 0;
for (const [name, schema] of schemas) {
  const draft7 = (schema.$schema || "").includes("draft-07");
  // multipleOfPrecision: ajv's multipleOf divides in floating point (9.53 / 0.01 is not an integer
  // there); JSON Schema means the decimal value, which the grammar enforces
  const opts = { strict: false, allErrors: false, multipleOfPrecision: 9 };
  const ajv = draft7 ? new Ajv(opts) : new Ajv2020(opts);
  addFormats(ajv);
  let validate;
  try {
    validate = ajv.compile(schema);
  } catch (e) {
    check(`${name}: ajv compiles the schema`, false, String(e));
    continue;
  }
  const leftovers = name.startsWith("post:");
  const results = await pool(N, 8, (k) => generate(schema, k));
  let nValid = 0, nReported = 0, nFail = 0;
  results.forEach((r, k) => {
    total++;
    const what = `${name} #${k}`;
    if (r.error) return check(what, false, r.error), nFail++;
    if (!check(`${what}: finishes`, r.finish === "stop", `finish ${r.finish}, text ${JSON.stringify(r.text.slice(-120))}`)) return nFail++;
    let v;
    try {
      v = JSON.parse(r.text);
    } catch {
      return check(`${what}: output parses`, false, JSON.stringify(r.text.slice(0, 200))), nFail++;
    }
    const ok = validate(v);
    nValid += ok;
    nReported += !!r.violation;
    if (leftovers) {
      if (!check(`${what}: schema_violation reported exactly when ajv rejects`, ok === !r.violation,
        `ajv ${ok ? "valid" : JSON.stringify(validate.errors)}, reported ${r.violation}, output ${r.text.slice(0, 200)}`)) nFail++;
    } else {
      if (!check(`${what}: ajv validates`, ok && !r.violation,
        `${JSON.stringify(validate.errors)} reported ${r.violation}, output ${r.text.slice(0, 300)}`)) nFail++;
    }
  });
  // both outcomes occur with 50 draws (with 10, a valid one may not)
  if (leftovers && N >= 50) check(`${name}: some outputs are valid`, nValid > 0, `${nValid} of ${N}`);
  console.log(`${nFail ? "FAIL" : "PASS"} ${name}: ${N} generations, ${nValid} valid under ajv, ${nReported} reported by the daemon`);
}
console.log(`${schemas.length} schemas, ${total} generations in ${((Date.now() - t0) / 1000).toFixed(1)} s${ASAN ? " (sanitizer tree: 10 per schema)" : ""}`);
await d.stop();
process.exit(summary() ? 0 : 1);
