#!/usr/bin/env python3
"""OpenAI tool_choice "required" and a named function are enforced: against a live mlxrd serving a
random-weight Qwen3-architecture model (whose real chat template uses <tool_call> tags), every
reply that finishes must be tool calls naming a given function, with arguments that parse as JSON
and satisfy that function's parameter schema (checked here by a small validator written from the
schema); the streamed form gives each call's id and name first and argument fragments that join
into the same JSON; tool_choice "none" gives no tool calls. The random model can only produce
these because the output is constrained.

How many tokens a call takes is bounded by its grammar (ONE_CALL_BYTES below: every token is at
least one byte), so with max_tokens above that bound a forced call always completes: with
parallel_tool_calls false the reply must finish with "tool_calls" and exactly one valid call;
with parallel_tool_calls true the grammar allows any number of calls, so the reply may be cut by
max_tokens while writing a later one ("length"), but the first call must be there, whole and
valid. A reply cut off by a small max_tokens inside a call says finish_reason "length" and never
leaks the half-written call into content (streamed or not); the calls it completed before the
cut stay valid. Ends with "N passed, N failed".
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

import mlxrd_proc  # tests/golden/mlxrd_proc.py: mlxrd on a kernel-chosen port, under a time limit

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
passed = failed = 0

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer"}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
]


# The longest call the tool-call grammar (daemon/server/chat.c, mlxr_chat_tool_grammar) can write
# for TOOLS, in bytes: the fixed text of the Hermes/Qwen form with every key of get_weather, at most
# one space in each of the <= 24 gaps, "city" at its maxLength of 12 characters written as 6-byte
# \uXXXX escapes, "days" as the grammar's longest integer (a sign and 16 digits). A token is at
# least one byte (the grammar allows no empty token), so this many tokens, plus the end token,
# always hold one whole call.
ONE_CALL_BYTES = (len('<tool_call>\n{"name":"get_weather","arguments":{"city":"","days":}}\n</tool_call>')
                  + 24 + 12 * 6 + 17)
CALL_TOKENS = ONE_CALL_BYTES + 1


def check(ok, what):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + what)
    passed, failed = passed + bool(ok), failed + (not ok)


def valid_args(name, args):
    """The function's schema, checked by hand: types, required, no extra properties, maxLength."""
    if not isinstance(args, dict):
        return False
    if name == "now":
        return args == {}
    if set(args) - {"city", "days"} or "city" not in args:
        return False
    if not isinstance(args["city"], str) or len(args["city"]) > 12:
        return False
    return "days" not in args or (isinstance(args["days"], int) and not isinstance(args["days"], bool))


def post(port, body, stream=False):
    req = urllib.request.Request("http://127.0.0.1:%d/v1/chat/completions" % port, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        if not stream:
            return json.loads(r.read())
        chunks = []
        for line in r.read().decode().split("\n\n"):
            if line.startswith("data: ") and line[6:] != "[DONE]":
                chunks.append(json.loads(line[6:]))
        return chunks


def main():
    mlxr, mlxrd = os.path.join(BIN, "mlxr"), os.path.join(BIN, "mlxrd")
    if not os.path.exists(mlxrd):
        print("FAIL: %s not built (build the tree first)\n0 passed, 1 failed" % mlxrd)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "qwen3.gguf")
        subprocess.run([mlxr, "convert", os.path.join(SRC, "tests/fixtures/hf/qwen3"), "-o", model, "--type", "f32"],
                       check=True, capture_output=True, timeout=300)
        port_file = os.path.join(tmp, "port")
        d = subprocess.Popen(mlxrd_proc.command([mlxrd, "--no-socket", "--ctx", "2048", "--model", model], port_file),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = mlxrd_proc.wait_port(d, port_file, 120)
            if port is None:
                check(False, "mlxrd came up (exit status %s)" % d.poll())
                print("%d passed, %d failed" % (passed, failed))
                return 1
            base = {"model": "qwen3", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                    "tools": TOOLS, "max_tokens": CALL_TOKENS, "temperature": 1.0}
            for seed in range(1, 7):
                parallel = seed % 2 == 0
                r = post(port, dict(base, tool_choice="required", seed=seed, parallel_tool_calls=parallel))
                c = r["choices"][0]
                calls = c["message"].get("tool_calls") or []
                # one call always fits; with parallel calls a later one may be cut by max_tokens
                ok = (c["finish_reason"] == "tool_calls" or (parallel and c["finish_reason"] == "length"))
                ok = ok and len(calls) >= 1 and c["message"]["content"] in (None, "")
                for call in calls:
                    fn = call["function"]
                    ok = ok and call["type"] == "function" and call["id"].startswith("call_")
                    ok = ok and fn["name"] in ("get_weather", "now") and valid_args(fn["name"], json.loads(fn["arguments"]))
                if not parallel:  # parallel_tool_calls false: exactly one
                    ok = ok and len(calls) == 1
                check(ok, "required, seed %d, parallel %s: finish %s, %d whole call(s) with valid names and "
                      "arguments, no content%s" % (seed, parallel, c["finish_reason"], len(calls),
                                                  "" if ok else " (%r)" % c["message"]))
            named = {"type": "function", "function": {"name": "now"}}
            for parallel in (False, True):
                r = post(port, dict(base, tool_choice=named, seed=5, parallel_tool_calls=parallel))
                c = r["choices"][0]
                calls = c["message"].get("tool_calls") or []
                check((c["finish_reason"] == "tool_calls" or (parallel and c["finish_reason"] == "length")) and
                      len(calls) >= 1 and (parallel or len(calls) == 1) and
                      all(x["function"]["name"] == "now" and json.loads(x["function"]["arguments"]) == {} for x in calls),
                      "named tool_choice, parallel %s: only that function (finish %s, %d calls)"
                      % (parallel, c["finish_reason"], len(calls)))
            chunks = post(port, dict(base, tool_choice="required", seed=3, parallel_tool_calls=False, stream=True),
                          stream=True)
            by_index, first_has_name = {}, True
            for ch in chunks:
                for choice in ch.get("choices", []):
                    for tc in (choice.get("delta") or {}).get("tool_calls") or []:
                        if tc["index"] not in by_index:
                            first_has_name = first_has_name and bool(tc.get("id")) and bool(tc["function"].get("name"))
                            by_index[tc["index"]] = [tc["function"]["name"], ""]
                        by_index[tc["index"]][1] += tc["function"].get("arguments") or ""
            final = [ch["choices"][0]["finish_reason"] for ch in chunks if ch.get("choices") and ch["choices"][0].get("finish_reason")]
            streamed_ok = first_has_name and by_index and all(valid_args(n, json.loads(a)) for n, a in by_index.values())
            check(final == ["tool_calls"] and streamed_ok and len(by_index) == 1,
                  "streamed: id and name first, argument fragments join into valid JSON (%d calls, %s)"
                  % (len(by_index), final))
            for mt in (8, 25, 40):  # cut inside the first call, at every depth
                r = post(port, dict(base, tool_choice="required", seed=mt, max_tokens=mt))
                c = r["choices"][0]
                calls = c["message"].get("tool_calls") or []
                check(c["finish_reason"] == "length" and c["message"]["content"] in (None, "") and
                      all(valid_args(x["function"]["name"], json.loads(x["function"]["arguments"])) for x in calls),
                      "max_tokens %d inside a forced call: finish length, no content, only whole calls (%r)" % (mt, c["message"]))
                chunks = post(port, dict(base, tool_choice="required", seed=mt, max_tokens=mt, stream=True), stream=True)
                text = "".join((ch["choices"][0]["delta"].get("content") or "") for ch in chunks if ch.get("choices"))
                fin = [ch["choices"][0]["finish_reason"] for ch in chunks if ch.get("choices") and ch["choices"][0].get("finish_reason")]
                check(text == "" and fin == ["length"], "streamed, max_tokens %d: no content deltas (%r, %s)" % (mt, text, fin))
            r = post(port, dict(base, tool_choice="none", seed=1, max_tokens=24))
            check(not r["choices"][0]["message"].get("tool_calls"), "tool_choice none: no tool calls")
        finally:
            mlxrd_proc.stop(d)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
