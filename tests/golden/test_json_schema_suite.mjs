// test_json_schema_suite.mjs: the official JSON Schema Test Suite (npm json-schema-test-suite,
// draft 4, fetched by scripts/fetch.d/50-json-schema.sh) against our JSON Schema -> grammar
// converter in spec mode (JSON Schema's defaults, core/runtime/grammar/json_schema.c) and the
// validator that checks what a grammar cannot (json_schema_valid.c).
//
// For every test group the schema is converted once (test_grammar_match --suite) and every
// instance is fed to the grammar as JSON.stringify writes it, with object members put in the
// order the schema declares them (the grammar generates declared order; member order carries no
// meaning in JSON). A test passes when
//   - valid instance: the grammar accepts it completely and the validator says valid;
//   - invalid instance: the grammar rejects it, or (for the keywords the converter reports as left
//     to the validator) the validator says invalid.
// The validator alone must also agree with every test (it is the post-generation check).
// Counts are printed per keyword (file), split into "grammar" (the grammar alone decided) and
// "validator" (a keyword left to the validator decided). Groups whose schema the converter
// refuses as unsupported are listed by name; a failing test of a supported keyword fails the run.
// Ends with "N passed, N failed".
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { skip } from "./suite.mjs";

const SRC = process.env.MLXR_SRC || process.cwd();
const BIN = process.env.MLXR_BIN || path.join(SRC, "build", "bin");
const DRIVER = path.join(BIN, "test_grammar_match");
const SUITE = path.join(SRC, "tests/.cache/json-schema/node_modules/json-schema-test-suite/tests/draft4");

let passed = 0, failed = 0;
function check(ok, what) {
  if (ok) passed++;
  else {
    failed++;
    console.log("FAIL " + what);
  }
}

if (!fs.existsSync(DRIVER)) {
  console.log(`FAIL: ${DRIVER} not built (build the tree first)\n0 passed, 1 failed`);
  process.exit(1);
}
if (!fs.existsSync(SUITE)) skip("the JSON Schema Test Suite is missing (run scripts/fetch_test_deps.sh)");

// Files of the suite that test what JSON itself cannot carry through JavaScript: their instances
// lose their spelling in JSON.parse (1.0 becomes 1, 10^52 a float), so they are listed, not run.
const NOT_RUN = {
  "optional/bignum.json": "instances need number spellings JSON.parse does not keep (big integers, 1.0)",
  "optional/zeroTerminatedFloats.json": "1.0 and 1 are the same number once parsed by JavaScript",
};

// Tests where this 2015 release of the suite disagrees with the current suite (and RFC 3986):
// listed by name, run, and reported, but not counted.
const KNOWN = {
  "format: validation of URIs: a valid protocol-relative URI":
    "a 'uri' needs a scheme (RFC 3986 section 3); later suite releases expect invalid here too",
};

// Property names in the order the schema mentions them (all "properties" objects, depth first).
function nameRank(schema) {
  const rank = new Map();
  const walk = (s, depth) => {
    if (!s || typeof s !== "object" || depth > 50) return;
    if (Array.isArray(s)) return s.forEach((x) => walk(x, depth + 1));
    if (s.properties && typeof s.properties === "object" && !Array.isArray(s.properties)) {
      for (const k of Object.keys(s.properties)) if (!rank.has(k)) rank.set(k, rank.size);
    }
    if (Array.isArray(s.required)) for (const k of s.required) if (typeof k === "string" && !rank.has(k)) rank.set(k, 1e6 + rank.size);
    for (const v of Object.values(s)) walk(v, depth + 1);
  };
  walk(schema, 0);
  return rank;
}

function ordered(v, rank) {
  if (Array.isArray(v)) return v.map((x) => ordered(x, rank));
  if (v && typeof v === "object") {
    const keys = Object.keys(v);
    const r = (k) => (rank.has(k) ? rank.get(k) : 2e6);
    keys.sort((a, b) => r(a) - r(b));
    const out = {};
    for (const k of keys) out[k] = ordered(v[k], rank);
    return out;
  }
  return v;
}

const files = [];
for (const f of fs.readdirSync(SUITE).sort()) if (f.endsWith(".json")) files.push(f);
for (const f of fs.readdirSync(path.join(SUITE, "optional")).sort()) if (f.endsWith(".json")) files.push("optional/" + f);

const groups = [];
const meta = [];
const notRun = [];
for (const f of files) {
  const kw = path.basename(f, ".json");
  const data = JSON.parse(fs.readFileSync(path.join(SUITE, f), "utf8"));
  if (NOT_RUN[f]) {
    for (const g of data) notRun.push(`${f}: ${g.description} (${g.tests.length} tests): ${NOT_RUN[f]}`);
    continue;
  }
  for (const g of data) {
    const rank = nameRank(g.schema);
    groups.push({ schema: g.schema, spec: true, draft: 4, tests: g.tests.map((t) => JSON.stringify(ordered(t.data, rank))) });
    meta.push({ kw, group: g.description, tests: g.tests });
  }
}

const tmp = path.join(os.tmpdir(), `mlxr_jsts_${process.pid}.json`);
fs.writeFileSync(tmp, JSON.stringify(groups));
let out;
try {
  out = execFileSync(DRIVER, ["--suite", tmp], { encoding: "utf8", maxBuffer: 64 << 20 });
} finally {
  fs.unlinkSync(tmp);
}
const lines = out.split("\n").filter((l) => l.length);
check(lines.length === groups.length, `driver answered every group (${lines.length} of ${groups.length})`);

const per = new Map(); // kw -> {tests, grammar, validator, failed, unsupported}
const unsupported = [];
const known = [];
for (let i = 0; i < meta.length && i < lines.length; i++) {
  const m = meta[i];
  if (!per.has(m.kw)) per.set(m.kw, { tests: 0, grammar: 0, validator: 0, failed: 0, unsupported: 0 });
  const c = per.get(m.kw);
  const [status, post, codes] = lines[i].split("\t");
  if (status === "err") {
    const unsat = post === "invalid argument" && /no value satisfies/.test(codes);
    if (!unsat) {
      unsupported.push(`${m.kw}: ${m.group} (${m.tests.length} tests): ${codes}`);
      c.unsupported += m.tests.length;
      continue;
    }
    // a schema nothing satisfies: every instance is rejected
    for (const t of m.tests) {
      c.tests++;
      const ok = !t.valid;
      if (ok) c.grammar++;
      else c.failed++;
      check(ok, `${m.kw}: ${m.group}: ${t.description}: schema refused as unsatisfiable but the instance is valid`);
    }
    continue;
  }
  const cs = codes.trim().split(" ");
  m.tests.forEach((t, k) => {
    c.tests++;
    const code = cs[k] || "??";
    const g = code[0], v = code[1];
    let ok;
    if (t.valid) ok = g === "A" && v === "V";
    else ok = g !== "A" || v === "I";
    const validatorAgrees = (v === "V") === t.valid;
    const name = `${m.kw}: ${m.group}: ${t.description}`;
    if (KNOWN[name]) {
      known.push(`${name}: grammar ${g}, validator ${v}: ${KNOWN[name]}`);
      return;
    }
    if (ok && validatorAgrees) {
      if (!t.valid && g === "A") c.validator++;
      else c.grammar++;
    } else c.failed++;
    check(ok, `${m.kw}: ${m.group}: ${t.description}: expected ${t.valid ? "valid" : "invalid"}, grammar ${g} validator ${v} (post: ${post})`);
    check(validatorAgrees, `${m.kw}: ${m.group}: ${t.description}: validator says ${v}, expected ${t.valid ? "valid" : "invalid"}`);
  });
}

console.log("JSON Schema Test Suite (draft 4), per keyword: tests passed by the grammar / by the post-validation / failed / unsupported");
for (const [kw, c] of [...per.entries()].sort()) {
  console.log(`  ${kw.padEnd(22)} ${String(c.tests).padStart(3)} tests: grammar ${c.grammar}, validator ${c.validator}, failed ${c.failed}, unsupported ${c.unsupported}`);
}
if (unsupported.length) {
  console.log("Unsupported (refused by the converter, listed by name):");
  for (const u of unsupported) console.log("  " + u);
}
if (known.length) {
  console.log("Known disagreements with this old suite release (not counted):");
  for (const u of known) console.log("  " + u);
}
if (notRun.length) {
  console.log("Not run (cannot be expressed through JSON.parse):");
  for (const u of notRun) console.log("  " + u);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
