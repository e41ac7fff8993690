#!/usr/bin/env python3
"""`mlxr run --chat`: the interactive chat's glue, checked against the CLI's independent pieces.

For each of two turns, the reply the chat prints must equal what a fresh `mlxr run --tokens IDS
--temp 0` prints, where IDS are the conversation so far rendered by `mlxr render-template` with the
model's chat template (itself checked against python3-jinja2 in test_chat_templates.py) and
tokenized by `mlxr tokenize` (checked against the reference tokenizers elsewhere). Turn 2 runs on a
KV cache that the chat reuses from turn 1 (only the new tokens are evaluated), so equality also
shows that prefix reuse changes nothing. Also: /clear forgets the conversation, and a message in
triple double quotes arrives as one multi-line message.
Ends with "N passed, N failed".
"""
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
MLXR = os.path.join(BIN, "mlxr")
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("PASS " if ok else "FAIL ") + what)
    if ok:
        passed += 1
    else:
        failed += 1


def run(args, stdin=None):
    r = subprocess.run([MLXR] + args, input=stdin, capture_output=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("mlxr %s failed: %s" % (" ".join(args[:2]), r.stderr.decode(errors="replace")))
    return r.stdout


def expected_reply(model, template_file, messages, n):
    case = {"messages": messages, "add_generation_prompt": True, "bos_token": "", "eos_token": "<|im_end|>"}
    prompt = run(["render-template", template_file, json.dumps(case)])
    ids = run(["tokenize", "--no-bos", model], stdin=prompt).decode().split()
    out = run(["run", model, "--tokens", ",".join(ids), "-n", str(n), "--temp", "0"])
    return out.decode("utf-8", errors="replace")[:-1]  # run ends its output with one newline


def main():
    if not os.path.exists(MLXR):
        print("FAIL: %s not built (build the tree first)" % MLXR)
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "qwen3.gguf")
        run(["convert", os.path.join(SRC, "tests/fixtures/hf/qwen3"), "-o", model, "--type", "f32"])
        cfg = json.load(open(os.path.join(SRC, "tests/fixtures/hf/qwen3/tokenizer_config.json")))
        template_file = os.path.join(tmp, "chat.jinja")
        with open(template_file, "w") as f:
            f.write(cfg["chat_template"])
        n = 6
        user1, user2 = "Hello there", "line one\nline two"
        q3 = '"' * 3
        chat_in = (user1 + "\n" + q3 + user2 + q3 + "\n/bye\n").encode()
        out = run(["run", "--local", model, "--chat", "-n", str(n), "--temp", "0"], stdin=chat_in).decode("utf-8", errors="replace")
        r1 = expected_reply(model, template_file, [{"role": "user", "content": user1}], n)
        check(out.startswith(r1 + "\n"), "turn 1 reply equals a fresh run on the rendered prompt (%r)" % r1)
        r2 = expected_reply(model, template_file, [{"role": "user", "content": user1},
                                                   # a NUL byte cannot travel in the template's
                                                   # JSON variables: the chat drops it from history
                                                   {"role": "assistant", "content": r1.replace("\x00", "")},
                                                   {"role": "user", "content": user2}], n)
        if out != r1 + "\n" + r2 + "\n": print("got %r\nexpected %r" % (out, r1 + "\n" + r2 + "\n"))
        check(out == r1 + "\n" + r2 + "\n",
              "turn 2 (multi-line message, reused KV) equals a fresh run on the whole conversation")
        # /clear: the next turn starts a new conversation
        out2 = run(["run", "--local", model, "--chat", "-n", str(n), "--temp", "0"],
                   stdin=("%s\n/clear\n%s\n" % (user2.replace("\n", " "), user1)).encode()).decode("utf-8", errors="replace")
        check(out2.endswith("\n" + r1 + "\n"), "after /clear the reply is the first-turn reply again")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
