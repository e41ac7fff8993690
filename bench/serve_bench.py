#!/usr/bin/env python3
"""serve_bench.py: many clients at once against mlxrd, with continuous batching on and off.

For each concurrency level C (default 1, 4, 16, 64) every one of C client threads sends one
streaming /v1/completions request (distinct prompts, greedy, ignore_eos, max_tokens N) at the same
moment; the script records, per request, the time to the first token (TTFT) and the gaps between
tokens (inter-token latency, ITL), and overall the aggregate generated tokens per second
(all tokens / wall time from the first send to the last byte).

It runs two daemons on the same GGUF, one after the other, in the same invocation:
  batching on:  mlxrd --max-running C  (continuous batching: all C streams decode together)
  batching off: mlxrd --max-running 1  (one request at a time, as Ollama serves by default)
and prints one table with both, plus the speedup of aggregate throughput at each level over the
single-stream figure.

  /usr/bin/python3 bench/serve_bench.py MODEL.gguf [--levels 1,4,16,64] [--tokens 32]
        [--prompt-words 24] [--threads N] [--mlxrd build/bin/mlxrd]

Not a test: numbers depend on the machine. Record them in bench/RESULTS.md with machine, commit
and date.
"""
import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_daemon(mlxrd, model, port, max_running, threads, n_ctx):
    args = [mlxrd, "--port", str(port), "--socket", "", "--model", model,
            "--max-running", str(max_running), "--max-queue", "1024", "--ctx", str(n_ctx)]
    if threads:
        args += ["--threads", str(threads)]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("mlxrd did not come up: " + p.stderr.read().decode(errors="replace")[-2000:])


def control_token_bias(model):
    """logit_bias banning control tokens (type 3): a random-weight model would otherwise pick them,
    and they render as no text, so their chunks never reach the client and TTFT/ITL go unmeasured."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "llamacpp"))
    import gguf_np
    kv, _ = gguf_np.read(model)
    types = kv.get("tokenizer.ggml.token_type") or []
    return {str(i): -100 for i, t in enumerate(types) if t == 3}


BIAS = {}


def one_request(port, model_id, prompt, n_tokens, out):
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    body = json.dumps({"model": model_id, "prompt": prompt, "max_tokens": n_tokens, "temperature": 0,
                       "stream": True, "ignore_eos": True, "logit_bias": BIAS,
                       "stream_options": {"include_usage": True}})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    stamps, tokens = [], None
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if not event.startswith(b"data: "):
                continue
            data = event[6:]
            if data == b"[DONE]":
                continue
            obj = json.loads(data)
            if obj.get("usage"):
                tokens = obj["usage"].get("completion_tokens")
            # one chunk per generated token (its text may be empty while a UTF-8 sequence is
            # incomplete); the closing chunk carries finish_reason
            if obj.get("choices") and obj["choices"][0].get("finish_reason") is None:
                stamps.append(time.perf_counter())
    conn.close()
    out.append({"t0": t0, "stamps": stamps, "tokens": tokens if tokens is not None else len(stamps),
                "end": time.perf_counter(), "status": resp.status})


def run_level(port, model_id, level, n_tokens, prompt_words, rng):
    words = ["alpha", "bravo", "river", "stone", "cloud", "engine", "number", "light", "garden",
             "signal", "winter", "copper", "orbit", "paper", "silver", "forest", "market", "planet"]
    prompts = [" ".join(rng.choice(words) for _ in range(prompt_words)) + " %d" % i for i in range(level)]
    results, threads = [], []
    start = time.perf_counter()
    for p in prompts:
        th = threading.Thread(target=one_request, args=(port, model_id, p, n_tokens, results))
        threads.append(th)
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = max(r["end"] for r in results) - start
    ttft = [r["stamps"][0] - r["t0"] for r in results if r["stamps"]]
    itl = [b - a for r in results for a, b in zip(r["stamps"], r["stamps"][1:])]
    total = sum(r["tokens"] for r in results)
    bad = sum(1 for r in results if r["status"] != 200)

    def pct(v, q):
        if not v:
            return float("nan")
        v = sorted(v)
        return v[min(len(v) - 1, int(q * len(v)))]
    return {"level": level, "tok_s": total / wall, "tokens": total, "wall": wall, "errors": bad,
            "ttft_p50": pct(ttft, 0.5), "ttft_p95": pct(ttft, 0.95),
            "itl_p50": pct(itl, 0.5), "itl_p95": pct(itl, 0.95)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--prompt-words", type=int, default=24)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--mlxrd", default=os.path.join(os.environ.get("MLXR_BIN", "build/bin"), "mlxrd"))
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    BIAS.update(control_token_bias(a.model))
    model_id = os.path.basename(a.model)[:-5] if a.model.endswith(".gguf") else os.path.basename(a.model)
    rows = {}
    for mode, running in (("on", max(levels)), ("off", 1)):
        port = free_port()
        d = start_daemon(a.mlxrd, a.model, port, running, a.threads, 512)
        try:
            rng = random.Random(1)
            run_level(port, model_id, 1, 4, a.prompt_words, rng)  # warm-up
            for lv in levels:
                rows[(mode, lv)] = run_level(port, model_id, lv, a.tokens, a.prompt_words, rng)
                r = rows[(mode, lv)]
                print("batching %-3s C=%-3d %8.2f tok/s  TTFT p50 %7.3f s p95 %7.3f s  ITL p50 %7.4f s p95 %7.4f s%s"
                      % (mode, lv, r["tok_s"], r["ttft_p50"], r["ttft_p95"], r["itl_p50"], r["itl_p95"],
                         "  (%d errors)" % r["errors"] if r["errors"] else ""), flush=True)
        finally:
            d.terminate()
            d.wait(timeout=60)
    print()
    print("| streams | batching on tok/s | x single | TTFT p50/p95 (s) | ITL p50/p95 (s) | batching off tok/s | TTFT p50/p95 (s) |")
    print("|---|---|---|---|---|---|---|")
    base = rows[("on", levels[0])]["tok_s"]
    for lv in levels:
        on, off = rows[("on", lv)], rows[("off", lv)]
        print("| %d | %.1f | %.2fx | %.2f / %.2f | %.3f / %.3f | %.1f | %.2f / %.2f |"
              % (lv, on["tok_s"], on["tok_s"] / base, on["ttft_p50"], on["ttft_p95"], on["itl_p50"],
                 on["itl_p95"], off["tok_s"], off["ttft_p50"], off["ttft_p95"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
