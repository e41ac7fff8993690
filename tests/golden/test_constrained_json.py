#!/usr/bin/env python3
"""Constrained decoding (core/runtime/grammar) checked against independent references.

1. The exact JSON grammar vs Python's json module: random JSON documents (nesting, escapes,
   non-ASCII, odd whitespace, numbers in every form) and random byte corruptions of them; our
   matcher (test_grammar_match --cases exact) must say "complete" exactly when json.loads accepts
   the bytes (strict UTF-8, NaN/Infinity refused), and every prefix of a valid document must be
   accepted as a prefix.
2. JSON Schema -> grammar: for several schemas, instances made by a Python generator from the
   schema must be accepted; random mutations are classified by a small independent validator
   written here (the supported subset) and every mutation our matcher calls complete must be
   valid; mutations that break the schema but stay JSON must be rejected. Unsupported keywords
   must be refused with a message naming them.
3. End to end through mlxrd with a random-weight model (so the constraint does all the work):
   OpenAI response_format json_object / json_schema and Ollama format "json" / schema, stream on
   and off, several seeds: outputs that finish with "stop" parse and match the schema; outputs cut
   by max_tokens finish with "length" and are prefixes of valid JSON (checked by a prefix parser
   written here). Also reports the per-token time of constrained vs unconstrained decoding.
4. What a grammar cannot enforce: uniqueItems outputs are checked with Python here and the daemon's
   schema_violation must be reported exactly for those with duplicates (both APIs, streamed or not);
   logprobs under a grammar list only tokens the grammar allows, with mass <= 1 (the masked,
   renormalized distribution); typical_p is applied (a tiny typical_p makes sampling deterministic).
Ends with "N passed, N failed".
"""
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import mlxrd_proc  # tests/golden/mlxrd_proc.py: mlxrd on a kernel-chosen port, under a time limit

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
DRIVER = os.path.join(BIN, "test_grammar_match")
passed = failed = 0


def check(ok, what):
    global passed, failed
    if not ok:
        print("FAIL " + what)
    passed, failed = passed + bool(ok), failed + (not ok)


def classify(what, docs):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for d in docs:
            f.write(d.hex() + "\n")
        path = f.name
    try:
        r = subprocess.run([DRIVER, "--cases", what, path], capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise RuntimeError("driver failed: " + r.stderr)
    out = r.stdout.split()
    assert len(out) == len(docs), (len(out), len(docs))
    return out


def py_json_ok(b):
    def no_const(x):
        raise ValueError(x)
    try:
        json.loads(b.decode("utf-8"), parse_constant=no_const)
        return True
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


# ---------------- random JSON ----------------

WS = [" ", "\t", "\n", "\r"]


def rnd_ws(rng):
    return "".join(rng.choice(WS) for _ in range(rng.choice([0, 0, 0, 1, 2])))


def rnd_string(rng):
    parts = []
    for _ in range(rng.randint(0, 6)):
        k = rng.random()
        if k < 0.5:
            parts.append(rng.choice("abc xyz_-/"))
        elif k < 0.65:
            parts.append(rng.choice(["\\n", "\\t", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r"]))
        elif k < 0.75:
            parts.append("\\u%04x" % rng.randint(0, 0xFFFF))
        else:
            parts.append(rng.choice(["é", "中", "😀", "ß", "\u2028"]))
    return '"' + "".join(parts) + '"'


def rnd_number(rng):
    s = rng.choice(["", "-"]) + rng.choice(["0", str(rng.randint(1, 10 ** rng.randint(1, 12)))])
    if rng.random() < 0.4:
        s += "." + str(rng.randint(0, 99999))
    if rng.random() < 0.3:
        s += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 300))
    return s


def rnd_json(rng, depth=0):
    k = rng.random() if depth < 4 else rng.random() * 0.6
    if k < 0.15:
        return rnd_string(rng)
    if k < 0.3:
        return rnd_number(rng)
    if k < 0.4:
        return rng.choice(["true", "false", "null"])
    if k < 0.7:
        items = [rnd_ws(rng) + rnd_string(rng) + rnd_ws(rng) + ":" + rnd_ws(rng) + rnd_json(rng, depth + 1) + rnd_ws(rng)
                 for _ in range(rng.randint(0, 4))]
        return "{" + (",".join(items) if items else rnd_ws(rng)) + "}"
    items = [rnd_ws(rng) + rnd_json(rng, depth + 1) + rnd_ws(rng) for _ in range(rng.randint(0, 4))]
    return "[" + (",".join(items) if items else rnd_ws(rng)) + "]"


def corrupt(rng, b):
    b = bytearray(b)
    for _ in range(rng.randint(1, 3)):
        k = rng.random()
        pos = rng.randint(0, len(b))
        if k < 0.3 and len(b) > 0:
            del b[min(pos, len(b) - 1)]
        elif k < 0.6:
            b[pos:pos] = bytes([rng.choice(b'{}[]",:0123456789-+.eE \\tfnu\x00\x1f\x7f\xc3\xa9\xff\xed\xa0\x80')])
        elif len(b) > 0:
            b[min(pos, len(b) - 1)] = rng.randint(0, 255)
    return bytes(b)


def test_json_grammar():
    rng = random.Random(1234)
    docs = []
    for _ in range(700):
        d = (rnd_ws(rng) + rnd_json(rng) + rnd_ws(rng)).encode("utf-8")
        docs.append(d)
        for _ in range(3):
            docs.append(corrupt(rng, d))
    docs += [b"NaN", b"-Infinity", b"01", b"1.", b".5", b"1e", b"[1,]", b'{"a" 1}', b'"\\x41"', b'"\t"',
             b"\xef\xbb\xbf{}", b"", b" ", b"tru", b"nul", b"[]]", b'"\xed\xa0\x80"', b'"\xc0\x80"',
             b'"\\ud800"', b"-0", b"-0.0e-0", b"1E+2", b'{"":""}', b"[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]"]
    got = classify("exact", docs)
    n_ok = n_agree = 0
    for d, g in zip(docs, got):
        want = py_json_ok(d)
        n_ok += want
        agree = (g == "A") == want
        n_agree += agree
        check(agree, "json grammar vs json.loads on %r: matcher %s, python %s" % (d[:80], g, want))
    print("json grammar: %d documents (%d valid), %d agree with json.loads" % (len(docs), n_ok, n_agree))
    # prefixes of valid documents are never rejected
    prefixes = []
    for d in docs[:400]:
        if py_json_ok(d):
            for cut in sorted(set(rng.randint(0, len(d)) for _ in range(4))):
                prefixes.append(d[:cut])
    got = classify("exact", prefixes)
    bad = [p for p, g in zip(prefixes, got) if g == "R"]
    check(not bad, "prefixes of valid JSON accepted (%d prefixes, rejected e.g. %r)" % (len(prefixes), bad[:1]))


# ---------------- JSON Schema (an independent validator for the supported subset) ----------------

def resolve(root, s):
    while isinstance(s, dict) and "$ref" in s:
        ref = s["$ref"]
        if ref == "#":
            s = root
        else:
            _, kind, name = ref.split("/", 2)
            s = root[kind][name]
    return s


def type_ok(t, v):
    return {"string": isinstance(v, str), "boolean": isinstance(v, bool), "null": v is None,
            "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool),
            "array": isinstance(v, list), "object": isinstance(v, dict)}[t]


def validate(root, s, v):
    s = resolve(root, s)
    if s is True or s == {}:
        return True
    if "const" in s:
        return json.dumps(v) == json.dumps(s["const"])
    if "enum" in s:
        return any(json.dumps(v) == json.dumps(e) for e in s["enum"])
    for key in ("anyOf", "oneOf"):
        if key in s:
            n = sum(validate(root, sub, v) for sub in s[key])
            return n >= 1 if key == "anyOf" else n == 1
    t = s.get("type")
    if t is not None:
        ts = t if isinstance(t, list) else [t]
        if not any(type_ok(x, v) for x in ts):
            return False
    if isinstance(v, str):
        if len(v) < s.get("minLength", 0) or len(v) > s.get("maxLength", 1 << 30):
            return False
    if isinstance(v, list):
        if len(v) < s.get("minItems", 0) or len(v) > s.get("maxItems", 1 << 30):
            return False
        if "items" in s and not all(validate(root, s["items"], x) for x in v):
            return False
    if isinstance(v, dict):
        props = s.get("properties", {})
        if any(r not in v for r in s.get("required", [])):
            return False
        addl = s.get("additionalProperties", False if "properties" in s else True)
        for k, x in v.items():
            if k in props:
                if not validate(root, props[k], x):
                    return False
            elif addl is False:
                return False
            elif isinstance(addl, dict) and not validate(root, addl, x):
                return False
    return True


def gen_instance(rng, root, s, depth=0):
    """A random instance of schema s (keys in declared order, as the grammar generates them)."""
    s = resolve(root, s)
    if s is True or s == {}:
        return rng.choice([1, "x", None, [True], {"k": 2.5}])
    if "const" in s:
        return s["const"]
    if "enum" in s:
        return rng.choice(s["enum"])
    for key in ("anyOf", "oneOf"):
        if key in s:
            return gen_instance(rng, root, rng.choice(s[key]), depth + 1)
    t = s.get("type")
    if isinstance(t, list):
        t = rng.choice(t)
    if t == "string":
        lo, hi = s.get("minLength", 0), s.get("maxLength", 8)
        return "".join(rng.choice("ab é\"\\\n中😀") for _ in range(rng.randint(lo, hi)))
    if t == "integer":
        return rng.randint(-10 ** 6, 10 ** 6)
    if t == "number":
        return rng.choice([rng.randint(-100, 100), rng.uniform(-1e3, 1e3), 1e-7])
    if t == "boolean":
        return rng.choice([True, False])
    if t == "null":
        return None
    if t == "array":
        lo = s.get("minItems", 0)
        hi = s.get("maxItems", lo + 3) if depth < 6 else lo
        return [gen_instance(rng, root, s.get("items", True), depth + 1) for _ in range(rng.randint(lo, hi))]
    if t == "object" or "properties" in s:
        out = {}
        req = s.get("required", [])
        for k, sub in s.get("properties", {}).items():
            if k in req or (rng.random() < 0.5 and depth < 6):
                out[k] = gen_instance(rng, root, sub, depth + 1)
        addl = s.get("additionalProperties", False if "properties" in s else True)
        if addl is not False and rng.random() < 0.5:
            out["extra_%d" % rng.randint(0, 99)] = gen_instance(rng, root, addl, depth + 1)
        return out
    return None


def dumps_random(rng, v, ascii_ok):
    # ensure_ascii writes astral characters as surrogate-pair escapes, which length-bounded strings
    # leave out (a pair is one character; see json_schema.c)
    if rng.random() < 0.5:
        return json.dumps(v, ensure_ascii=ascii_ok and rng.random() < 0.5)
    return json.dumps(v, indent=rng.choice([None, 1, 2]), separators=rng.choice([(",", ":"), (", ", ": ")]),
                      ensure_ascii=False)


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 6},
                                      "age": {"type": "integer"}, "score": {"type": "number"},
                                      "ok": {"type": "boolean"}, "none": {"type": "null"}},
     "required": ["name", "age"]},
    {"type": "array", "items": {"enum": ["red", "green", 3, None, {"a": [1]}]}, "minItems": 1, "maxItems": 3},
    {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": ["number", "null"]},
                                      "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}}},
     "required": ["kind"], "additionalProperties": {"type": "integer"}},
    {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "object", "properties": {"x": {"type": "integer"}},
                                                     "required": ["x"]}]},
    {"$defs": {"pt": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                      "required": ["x", "y"]}},
     "type": "object", "properties": {"a": {"$ref": "#/$defs/pt"}, "b": {"$ref": "#/$defs/pt"}}, "required": ["a"]},
    {"definitions": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
                                                               "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}, "maxItems": 2}},
                              "required": ["v"]}},
     "$ref": "#/definitions/node"},
    {"type": "object"},
    {"oneOf": [{"type": "integer"}, {"type": "boolean"}]},
]


def mutate_value(rng, v):
    k = rng.random()
    if isinstance(v, dict) and v and k < 0.4:
        v = dict(v)
        key = rng.choice(list(v))
        if rng.random() < 0.5:
            del v[key]
        else:
            v[key] = mutate_value(rng, v[key])
        return v
    if isinstance(v, list) and v and k < 0.4:
        v = list(v)
        i = rng.randrange(len(v))
        v[i] = mutate_value(rng, v[i])
        if rng.random() < 0.3:
            v.append(v[0])
        return v
    if k < 0.55 and isinstance(v, dict):
        v = dict(v)
        v[rng.choice(["zz", "name", "x"])] = rng.choice([1, "s", None])
        return v
    return rng.choice([1, -2.5, "s", "long string!", True, None, [], {}, [1, 2, 3, 4], {"x": "y"}])


def test_schemas():
    rng = random.Random(99)
    for si, schema in enumerate(SCHEMAS):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(schema, f)
            spath = f.name
        try:
            valid, mutants = [], []
            for _ in range(120):
                inst = gen_instance(rng, schema, schema)
                assert validate(schema, schema, inst), (schema, inst)
                valid.append(dumps_random(rng, inst, "Length" not in json.dumps(schema)).encode("utf-8"))
                m = mutate_value(rng, inst)
                mutants.append((m, json.dumps(m, ensure_ascii=False).encode("utf-8")))
            got = classify("schema:" + spath, valid)
            for d, g in zip(valid, got):
                check(g == "A", "schema %d: valid instance %r accepted (%s)" % (si, d[:100], g))
            got = classify("schema:" + spath, [b for _, b in mutants])
            n_bad = 0
            for (m, b), g in zip(mutants, got):
                ok = validate(schema, schema, m)
                n_bad += not ok
                if g == "A":
                    check(ok, "schema %d: matcher accepted an invalid instance %r" % (si, b[:100]))
                if not ok:
                    check(g != "A", "schema %d: invalid instance %r rejected" % (si, b[:100]))
            print("schema %d: %d valid instances, %d mutants (%d invalid)" % (si, len(valid), len(mutants), n_bad))
        finally:
            os.unlink(spath)
    for bad, word in [({"type": "string", "pattern": "(a"}, "pattern"), ({"type": "object", "unevaluatedProperties": False}, "unevaluatedProperties"),
                      ({"$ref": "http://x/y"}, "$ref"), ({"type": "frob"}, "frob"),
                      ({"type": "object", "properties": {}, "required": ["q"], "additionalProperties": False}, "no value")]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(bad, f)
            spath = f.name
        r = subprocess.run([DRIVER, "--print-schema", spath], capture_output=True, text=True)
        os.unlink(spath)
        check(r.returncode == 2 and word in r.stdout, "schema %s refused naming %s (%r)" % (bad, word, r.stdout.strip()))


# ---------------- end to end ----------------

def json_prefix_ok(s):
    """True if s is a prefix of some valid JSON text (a recursive-descent parser that succeeds when
    the input ends early)."""
    class End(Exception):
        pass
    i = 0
    n = len(s)

    def peek():
        if i >= n:
            raise End()
        return s[i]

    def ws():
        nonlocal i
        while i < n and s[i] in " \t\n\r":
            i += 1

    def lit(word):
        nonlocal i
        for ch in word:
            if peek() != ch:
                raise ValueError
            i += 1

    def string():
        nonlocal i
        lit('"')
        while True:
            c = peek()
            i += 1
            if c == '"':
                return
            if c == "\\":
                e = peek()
                i += 1
                if e == "u":
                    for _ in range(4):
                        if peek() not in "0123456789abcdefABCDEF":
                            raise ValueError
                        i += 1
                elif e not in '"\\/bfnrt':
                    raise ValueError
            elif ord(c) < 0x20:
                raise ValueError

    def digits(required):
        nonlocal i
        start = i
        while i < n and s[i].isdigit() and s[i] in "0123456789":
            i += 1
        if i == n:
            raise End()
        if required and i == start:
            raise ValueError

    def number():
        nonlocal i
        if peek() == "-":
            i += 1
        if peek() == "0":
            i += 1
        else:
            if peek() not in "123456789":
                raise ValueError
            digits(False)
        if i < n and s[i] == ".":
            i += 1
            digits(True)
        if i < n and s[i] in "eE":
            i += 1
            if peek() in "+-":
                i += 1
            digits(True)
        if i == n:
            raise End()

    def value():
        nonlocal i
        c = peek()
        if c == "{":
            i += 1
            ws()
            if peek() == "}":
                i += 1
                return
            while True:
                ws()
                string()
                ws()
                lit(":")
                ws()
                value()
                ws()
                c = peek()
                i += 1
                if c == "}":
                    return
                if c != ",":
                    raise ValueError
        elif c == "[":
            i += 1
            ws()
            if peek() == "]":
                i += 1
                return
            while True:
                ws()
                value()
                ws()
                c = peek()
                i += 1
                if c == "]":
                    return
                if c != ",":
                    raise ValueError
        elif c == '"':
            string()
        elif c in "-0123456789":
            number()
        elif c in "tfn":
            lit({"t": "true", "f": "false", "n": "null"}[c])
        else:
            raise ValueError

    try:
        ws()
        value()
        ws()
        return i == n
    except End:
        return True
    except ValueError:
        return False


def http(port, path, body, stream):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            raw = r.read().decode()
            status = r.status
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), None
    if not stream:
        j = json.loads(raw)
        if path.startswith("/v1"):
            c = j["choices"][0]
            return status, c["message"]["content"] if "message" in c else c["text"], c["finish_reason"]
        return status, j["response"] if "response" in j else j["message"]["content"], j.get("done_reason")
    text, reason = "", None
    if path.startswith("/v1"):
        for line in raw.split("\n"):
            if line.startswith("data: ") and line != "data: [DONE]":
                c = json.loads(line[6:])["choices"]
                if c:
                    d = c[0].get("delta", {})
                    text += d.get("content") or ""
                    reason = c[0].get("finish_reason") or reason
    else:
        for line in raw.split("\n"):
            if line.strip():
                j = json.loads(line)
                text += j.get("response", "") or (j.get("message") or {}).get("content", "")
                if j.get("done"):
                    reason = j.get("done_reason")
    return status, text, reason


E2E_SCHEMA = {"type": "object",
              "properties": {"name": {"type": "string", "maxLength": 6}, "age": {"type": "integer"},
                             "color": {"enum": ["red", "green", None, 3]},
                             "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3},
                             "pos": {"$ref": "#/$defs/pt"}},
              "required": ["name", "age", "pos"],
              "$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "null"}},
                               "required": ["x"]}}}


def test_e2e():
    mlxr, mlxrd = os.path.join(BIN, "mlxr"), os.path.join(BIN, "mlxrd")
    if not (os.path.exists(mlxr) and os.path.exists(mlxrd)):
        check(False, "e2e: mlxr/mlxrd not built in %s (build the tree first)" % BIN)
        return
    with tempfile.TemporaryDirectory() as T:
        subprocess.run(["/usr/bin/python3", os.path.join(SRC, "scripts/make_random_model.py"), "--out", T + "/m",
                        "--hidden", "64", "--intermediate", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2"],
                       check=True, capture_output=True, timeout=300)
        subprocess.run([mlxr, "convert", T + "/m", "-o", T + "/m.gguf", "--type", "f32"], check=True, capture_output=True,
                       timeout=300)
        d = subprocess.Popen(mlxrd_proc.command([mlxrd, "--no-socket", "--model", T + "/m.gguf", "--threads", "2"],
                                                T + "/port"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = mlxrd_proc.wait_port(d, T + "/port", 120)
            if port is None:
                check(False, "e2e: mlxrd came up (exit status %s)" % d.poll())
                return
            msgs = [{"role": "user", "content": "Give me JSON"}]
            n_stop = {"object": 0, "schema": 0}
            for seed in range(4):
                for stream in (False, True):
                    for api in ("openai", "ollama"):
                        for mode in ("object", "schema"):
                            max_tok = 400
                            if api == "openai":
                                rf = {"type": "json_object"} if mode == "object" else \
                                    {"type": "json_schema", "json_schema": {"name": "t", "schema": E2E_SCHEMA, "strict": True}}
                                body = {"model": "m", "messages": msgs, "response_format": rf, "seed": seed,
                                        "max_tokens": max_tok, "stream": stream}
                                path = "/v1/chat/completions"
                            else:
                                body = {"model": "m", "prompt": "Give me JSON", "format": "json" if mode == "object" else E2E_SCHEMA,
                                        "stream": stream, "options": {"seed": seed, "num_predict": max_tok, "temperature": 1.0}}
                                path = "/api/generate"
                            st, text, reason = http(port, path, body, stream)
                            what = "%s %s seed %d stream %s" % (api, mode, seed, stream)
                            if st != 200:
                                check(False, "%s: HTTP %s %s" % (what, st, text[:200]))
                                continue
                            if reason == "stop":
                                n_stop[mode] += 1
                                try:
                                    v = json.loads(text)
                                    ok = isinstance(v, dict) and (mode == "object" or validate(E2E_SCHEMA, E2E_SCHEMA, v))
                                except ValueError:
                                    ok = False
                                check(ok, "%s: output parses and matches (%r)" % (what, text[:200]))
                            else:
                                check(reason == "length" and json_prefix_ok(text),
                                      "%s: cut output is a JSON prefix (%s, %r)" % (what, reason, text[-100:]))
                            if mode == "schema":
                                check(reason == "stop", "%s: bounded schema finishes (%s)" % (what, reason))
            check(n_stop["object"] > 0, "some json_object generations complete (%d of 16)" % n_stop["object"])
            print("e2e: json_object completed %d of 16, schema %d of 16" % (n_stop["object"], n_stop["schema"]))
            # max_tokens too small: length, and a prefix of valid JSON
            for api in ("openai", "ollama"):
                for seed in range(3):
                    if api == "openai":
                        body = {"model": "m", "messages": msgs, "seed": seed, "max_tokens": 4,
                                "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": E2E_SCHEMA}}}
                        path = "/v1/chat/completions"
                    else:
                        body = {"model": "m", "prompt": "x", "format": E2E_SCHEMA, "stream": False,
                                "options": {"seed": seed, "num_predict": 4}}
                        path = "/api/generate"
                    st, text, reason = http(port, path, body, False)
                    check(st == 200 and reason == "length" and json_prefix_ok(text) and text.startswith("{"),
                          "%s max_tokens 4: length and a JSON prefix (%s %r)" % (api, reason, text))
            # unsupported schema and bad grammar: 400 with a message
            st, text, _ = http(port, "/v1/chat/completions", {"model": "m", "messages": msgs, "response_format": {
                "type": "json_schema", "json_schema": {"name": "t", "schema": {"$ref": "http://example.com/s.json"}}}}, False)
            check(st == 400 and "$ref" in text, "unsupported schema keyword -> 400 (%s %s)" % (st, text[:120]))
            st, text, _ = http(port, "/api/generate", {"model": "m", "prompt": "x", "stream": False,
                                                      "format": {"type": "object", "unevaluatedProperties": False}}, False)
            check(st == 400 and "unevaluatedProperties" in text, "ollama unsupported schema -> 400 (%s %s)" % (st, text[:120]))
            test_e2e_leftovers(port, msgs)
            st, text, _ = http(port, "/v1/completions", {"model": "m", "prompt": "x", "grammar": "root ::= missing"}, False)
            check(st == 400 and "missing" in text, "bad GBNF grammar -> 400 (%s %s)" % (st, text[:120]))
            # a raw GBNF grammar (llama.cpp's extra field) is enforced too
            st, text, reason = http(port, "/v1/completions", {"model": "m", "prompt": "x", "seed": 5, "max_tokens": 50,
                                                             "grammar": "root ::= (\"yes\" | \"no\") \" \" [0-9]{2}"}, False)
            check(st == 200 and reason == "stop" and text[:-3] in ("yes", "no") and text[-3] == " " and text[-2:].isdigit(),
                  "GBNF grammar output matches (%r)" % text)
            # overhead: greedy decoding of 200 tokens, unconstrained vs a grammar that allows anything
            # except the end token (every token is checked)
            times = {}
            for name, extra in (("free", {}), ("grammar", {"grammar": "root ::= [^\\x00]*"})):
                best = 1e9
                for _ in range(3):
                    body = dict({"model": "m", "prompt": "x", "max_tokens": 200, "temperature": 0, "ignore_eos": True}, **extra)
                    t0 = time.time()
                    st, text, reason = http(port, "/v1/completions", body, False)
                    best = min(best, time.time() - t0)
                times[name] = best
            print("per-token time: unconstrained %.3f ms, with a grammar %.3f ms (greedy, 200 tokens, tiny model)" %
                  (times["free"] / 200 * 1e3, times["grammar"] / 200 * 1e3))
        finally:
            mlxrd_proc.stop(d)


def dup_free(v):
    return len(set(json.dumps(x, sort_keys=True) for x in v)) == len(v)


def test_e2e_leftovers(port, msgs):
    """What the grammar cannot enforce is validated after generation and reported (schema_violation);
    logprobs under a grammar are those of the masked distribution; typical_p is applied."""
    # uniqueItems cannot be a grammar: outputs with duplicates must say so, the others must not
    schema = {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "maxItems": 4, "uniqueItems": True}
    n_dup = n_reported = 0
    for seed in range(12):
        for api, stream in (("openai", False), ("openai", True), ("ollama", False), ("ollama", True)):
            if api == "openai":
                body = {"model": "m", "messages": msgs, "seed": seed, "max_tokens": 400, "stream": stream,
                        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}}
                path = "/v1/chat/completions"
            else:
                body = {"model": "m", "prompt": "x", "format": schema, "stream": stream,
                        "options": {"seed": seed, "num_predict": 400, "temperature": 1.0}}
                path = "/api/generate"
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=300) as r:
                raw = r.read().decode()
            text, violation = "", None
            if api == "openai" and not stream:
                c = json.loads(raw)["choices"][0]
                text, violation = c["message"]["content"], c.get("schema_violation")
            elif api == "openai":
                for line in raw.split("\n"):
                    if line.startswith("data: ") and line != "data: [DONE]":
                        for c in json.loads(line[6:])["choices"]:
                            text += (c.get("delta") or {}).get("content") or ""
                            violation = c.get("schema_violation") or violation
            else:
                for line in raw.split("\n"):
                    if line.strip():
                        j = json.loads(line)
                        text += j.get("response", "")
                        violation = j.get("schema_violation") or violation
            try:
                v = json.loads(text)
            except ValueError:
                check(False, "%s stream %s seed %d: output is JSON (%r)" % (api, stream, seed, text[:200]))
                continue
            dup = not dup_free(v)
            n_dup += dup
            n_reported += violation is not None
            check(dup == (violation is not None) and (not dup or "uniqueItems" in violation),
                  "%s stream %s seed %d: duplicates %s, reported %r (%s)" % (api, stream, seed, dup, violation, text))
    check(n_dup > 0 and n_dup < 48, "uniqueItems outputs both with and without duplicates (%d of 48 had some)" % n_dup)
    print("post-validation: %d of 48 uniqueItems outputs had duplicates, %d were reported" % (n_dup, n_reported))
    # logprobs under a grammar: only allowed tokens, renormalized over them
    for seed in range(3):
        body = {"model": "m", "prompt": "x", "seed": seed, "max_tokens": 8, "logprobs": 5, "temperature": 1.0,
                "grammar": "root ::= [0-9]{8}"}
        st, raw = 0, ""
        req = urllib.request.Request("http://127.0.0.1:%d/v1/completions" % port, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            j = json.loads(r.read().decode())
        lp = j["choices"][0]["logprobs"]
        ok = True
        for tok, tops in zip(lp["tokens"], lp["top_logprobs"]):
            ok = ok and tok.isdigit() and all(k.isdigit() for k in tops)
            mass = sum(math.exp(x) for x in tops.values())
            ok = ok and mass <= 1.0001
        # renormalized over the allowed tokens: the chosen token's probability is above what the
        # unconstrained model gives it, and the digit tokens' mass is (nearly) all of it
        check(ok, "grammar logprobs: only digits in top_logprobs, mass <= 1 (seed %d: %s)" % (seed, lp["tokens"]))
    # typical_p: a tiny mass keeps only the most typical token, so every seed writes the same text
    outs = set()
    for seed in range(4):
        st, text, _ = http(port, "/v1/completions", {"model": "m", "prompt": "x", "seed": seed, "max_tokens": 12,
                                                    "temperature": 1.0, "typical_p": 0.001}, False)
        outs.add(text)
    free = set()
    for seed in range(4):
        st, text, _ = http(port, "/v1/completions", {"model": "m", "prompt": "x", "seed": seed, "max_tokens": 12,
                                                    "temperature": 1.0}, False)
        free.add(text)
    check(len(outs) == 1 and len(free) > 1, "typical_p 0.001 is deterministic (%d texts), without it not (%d)" % (len(outs), len(free)))


def main():
    if not os.path.exists(DRIVER):
        print("FAIL: %s not built (build the tree first)\n0 passed, 1 failed" % DRIVER)
        return 1
    test_json_grammar()
    test_schemas()
    test_e2e()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
