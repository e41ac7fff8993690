#!/usr/bin/env python3
"""OpenAI tool_choice "required" and a named function are enforced: against a live mlxrd serving a
random-weight Qwen3-architecture model (whose real chat template uses <tool_call> tags), every
reply that finishes must be tool calls naming a given function, with arguments that parse as JSON
and satisfy that function's parameter schema (checked here by a small validator written from the
schema); the streamed form gives each call's id and name first and argument fragments that join
into the same JSON; tool_choice "none" gives no tool calls. The random model can only produce
these because the output is constrained. A reply cut off by max_tokens inside a call says
finish_reason "length" and never leaks the half-written call into content (streamed or not); the
calls it completed before the cut stay valid. Ends with "N passed, N failed".
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
passed = failed = 0

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer"}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
]


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
        print("SKIP: mlxrd not built\n0 passed, 0 failed")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "qwen3.gguf")
        subprocess.run([mlxr, "convert", os.path.join(SRC, "tests/fixtures/hf/qwen3"), "-o", model, "--type", "f32"],
                       check=True, capture_output=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        d = subprocess.Popen([mlxrd, "--port", str(port), "--no-socket", "--ctx", "2048", "--model", model],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2)
                    break
                except OSError:
                    time.sleep(0.1)
            base = {"model": "qwen3", "messages": [{"role": "user", "content": "Weather in Paris?"}],
                    "tools": TOOLS, "max_tokens": 160, "temperature": 1.0}
            finished = 0
            for seed in range(1, 7):
                r = post(port, dict(base, tool_choice="required", seed=seed, parallel_tool_calls=seed % 2 == 0))
                c = r["choices"][0]
                if c["finish_reason"] == "length":  # cut off mid-call by max_tokens: no leak
                    calls = c["message"].get("tool_calls") or []
                    check(c["message"]["content"] in (None, "") and
                          all(valid_args(x["function"]["name"], json.loads(x["function"]["arguments"])) for x in calls),
                          "required, seed %d, cut by max_tokens: no content, %d whole call(s)" % (seed, len(calls)))
                    continue
                finished += 1
                calls = c["message"].get("tool_calls") or []
                ok = c["finish_reason"] == "tool_calls" and calls and c["message"]["content"] in (None, "")
                for call in calls:
                    fn = call["function"]
                    ok = ok and call["type"] == "function" and call["id"].startswith("call_")
                    ok = ok and fn["name"] in ("get_weather", "now") and valid_args(fn["name"], json.loads(fn["arguments"]))
                if seed % 2:  # parallel_tool_calls false: exactly one
                    ok = ok and len(calls) == 1
                check(ok, "required, seed %d: %d call(s) with valid names and arguments" % (seed, len(calls)))
            check(finished >= 2, "some seeds finish within max_tokens (%d of 6)" % finished)
            named = {"type": "function", "function": {"name": "now"}}
            r = post(port, dict(base, tool_choice=named, seed=5))
            calls = r["choices"][0]["message"].get("tool_calls") or []
            check(r["choices"][0]["finish_reason"] != "tool_calls" or
                  (calls and all(x["function"]["name"] == "now" and json.loads(x["function"]["arguments"]) == {} for x in calls)),
                  "named tool_choice: only that function (%d calls)" % len(calls))
            chunks = post(port, dict(base, tool_choice="required", seed=3, stream=True), stream=True)
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
            check(final[-1:] == ["length"] or (final[-1:] == ["tool_calls"] and streamed_ok),
                  "streamed: id and name first, argument fragments join into valid JSON (%d calls, %s)"
                  % (len(by_index), final[-1:]))
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
            d.terminate()
            d.wait(timeout=30)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
