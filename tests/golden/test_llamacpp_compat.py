#!/usr/bin/env python3
"""llama.cpp compatibility: MLXR's GGUF files, quantized blocks, logits and tokenizer against
llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build, fetched by scripts/fetch.d/20-llamacpp.sh)
and against a float64 numpy forward pass (tests/golden/llamacpp/ref_forward.py).

Run from the repository root with MLXR_BIN (the directory holding `mlxr`); MLXR_SRC defaults to
the repository root. Prints one line per check and ends with "N passed, N failed"; exits 1 if any
check failed.

What it does:
 1. Makes a random Llama with scripts/make_random_model.py (hidden 256, intermediate 512, so every
    weight row is a multiple of 256 and K-quants apply), converts it with `mlxr convert` to f32
    and f16 GGUF, and evaluates one 32-token batch three ways: llama.cpp (tests/golden/llamacpp/
    logits.mjs, f32 KV cache), `mlxr logits --kv-type f32`, and the float64 reference.
 2. llama.cpp quantizes the f32 file to Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K (every 2-D tensor,
    "pure"); MLXR loads each file and must agree with llama.cpp on it.
 3. `mlxr quantize` makes the same eight types; llama.cpp loads MLXR's files and must agree with
    MLXR, ggml's own dequantizer must read MLXR's blocks exactly as the numpy dequantizer does,
    and MLXR's quantization error must be no worse than llama.cpp's on the same weights.
 4. Tokenizer: llama.cpp's tokenizer on MLXR's GGUF equals `mlxr tokenize --no-bos --no-special`.
 5. Every tests/fixtures/hf/* model (when present) converted to f32: llama.cpp on MLXR's file vs
    the transformers float64 logits stored with the fixture, and MLXR vs llama.cpp.

Logits are compared after centring each row (llama.cpp's helper yields log-probabilities, i.e.
logits minus a per-row constant). "rel" = max|a - b| / max|b| over the whole [n][n_vocab] matrix.

Tolerances (see docs/llamacpp-interop.md). llama.cpp's own error is a property of the ggml CPU
variant it loads on this machine, not of MLXR, so every bound against llama.cpp is derived from
llama.cpp's distance from the float64 reference measured in the same run, as for quantized weights:
 - llama.cpp vs float64 on float weights: only that it reads MLXR's file as written (a misread
   tensor is an error of order 1): f32 limit 1e-5 (measured 3e-7 to 1.2e-6, f32 KV cache); f16 limit
   1e-2: ggml's F16 matmul rounds activations to f16 (its vec_dot_type for F16) on some shapes and
   CPU variants: measured 2.7e-4 on an Intel Xeon with AMX, 1.47e-3 on an AMD EPYC with AVX-512
   and no AMX.
 - MLXR vs float64 on float weights (MLXR's own accuracy, the same on every CPU): f32 1e-5, f16
   1e-5 (MLXR multiplies f16 weights in float32; measured 8e-7 and 2.1e-6).
 - MLXR vs llama.cpp on float weights: rel <= max(1e-4, 1.5 x llama.cpp's own distance from
   float64) and argmax agreement on every position.
 - quantized weights: llama.cpp rounds activations to Q8_0/Q8_1/Q8_K for quantized dot products,
   which alone moves it 1-5% (rel) from the float64 forward over the same dequantized weights on
   these random models. MLXR vs llama.cpp: rel <= max(3e-2, 1.5 x llama.cpp's own distance from
   float64) and argmax agreement on >= 90% of positions; MLXR vs float64: <= 1.5 x llama.cpp's.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.path.abspath(os.environ.get("MLXR_SRC", os.path.join(os.path.dirname(__file__), "../..")))
sys.path.insert(0, os.path.join(SRC, "tests/golden/llamacpp"))
import gguf_np  # noqa: E402
import ref_forward  # noqa: E402
import suite  # noqa: E402  (tests/golden/suite.py: the skip protocol)

BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build/bin"))
MLXR = os.path.join(BIN, "mlxr")
HELPERS = os.path.join(SRC, "tests/golden/llamacpp")
CACHE = os.path.join(SRC, "tests/.cache/llamacpp")
TOOL = os.path.join(CACHE, "bin/llamacpp-tool")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

QUANT_TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K"]
TOL_REF = {"f32": 1e-5, "f16": 1e-2}    # llama.cpp vs float64 reference, float weights (reads the file)
TOL_OURS = {"f32": 1e-5, "f16": 1e-5}   # MLXR vs float64 reference, float weights
TOL_FLOAT = 1e-4    # MLXR vs llama.cpp, float weights: max(this, 1.5 x llama.cpp's own error)
TOL_QUANT = 3e-2    # MLXR vs llama.cpp, quantized weights
ARGMAX_QUANT = 0.90
TOL_HF = 1e-4       # llama.cpp on MLXR's conversion vs transformers float64
# Seconds one `mlxr logits` run may take (a few hundred ms normally; generous for ASan builds).
LOGITS_TIMEOUT = int(os.environ.get("MLXR_LLAMACPP_LOGITS_TIMEOUT", "120"))

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def run(cmd, timeout=300):
    """Runs cmd from the repository root; a command past its timeout counts as failed."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=SRC, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {timeout} s: {cmd[:2]}")


# llama.cpp's helper (llamacpp/logits.mjs) writes NaN where its float32 probability underflowed,
# i.e. where the log-probability is below about -87 (-103 with subnormals). Such an entry is
# accepted only where the other side's log-softmax is below this too.
UNDERFLOW_LOGPROB = -80.0


def compare(a, b, lc=None):
    """(rel, argmax agreement, rms rel) of centred rows; b is the reference. lc ("a" or "b") names
    the side holding llama.cpp's log-probabilities, whose NaN entries mark underflow; they are left
    out of the comparison (on both sides, so both are centred over the same entries) where the other
    side agrees that the probability is that small. Every other non-finite value, on either side,
    is a failure: rel, rms = inf and argmax agreement 0 (np.nanmax would have dropped a NaN)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.shape != b.shape:
        return float("inf"), 0.0, float("inf")
    under = np.zeros(a.shape, dtype=bool)
    if lc is not None:
        x, y = (a, b) if lc == "a" else (b, a)
        with np.errstate(invalid="ignore", over="ignore"):
            m = np.max(y, axis=1, keepdims=True)
            y_lsm = y - m - np.log(np.sum(np.exp(y - m), axis=1, keepdims=True))
            under = np.isnan(x) & np.isfinite(y_lsm) & (y_lsm < UNDERFLOW_LOGPROB)
    bad = ~(np.isfinite(a) & np.isfinite(b)) & ~under
    if bad.any():
        pos = np.argwhere(bad)[0]
        print(f"  non-finite: {int(bad.sum())} entries, first at {tuple(int(i) for i in pos)}: "
              f"{a[tuple(pos)]!r} vs {b[tuple(pos)]!r}", flush=True)
        return float("inf"), 0.0, float("inf")
    keep = ~under
    n = np.maximum(keep.sum(axis=1, keepdims=True), 1)
    ac = np.where(keep, a - np.sum(np.where(keep, a, 0), axis=1, keepdims=True) / n, 0.0)
    bc = np.where(keep, b - np.sum(np.where(keep, b, 0), axis=1, keepdims=True) / n, 0.0)
    d = np.abs(ac - bc)
    rel = np.max(d) / np.max(np.abs(bc))
    agree = float(np.mean(np.argmax(np.where(keep, ac, -np.inf), axis=1) ==
                          np.argmax(np.where(keep, bc, -np.inf), axis=1)))
    rms = float(np.sqrt(np.sum(d * d) / keep.sum()) / np.sqrt(np.sum(bc * bc) / keep.sum()))
    return float(rel), agree, rms


def fmt(rel, agree, rms=None):
    s = f"rel {rel:.2e}, argmax {agree * 100:.0f}%"
    return s + (f", rms {rms:.2e}" if rms is not None else "")


def mlxr_logits(model, tokens, out):
    r = run([MLXR, "logits", "--tokens", ",".join(map(str, tokens)), "--out", out,
             "--kv-type", "f32", model], timeout=LOGITS_TIMEOUT)
    if r.returncode != 0:
        return None, r.stderr.strip()[-300:]
    a = np.fromfile(out, dtype="<f4")
    if a.size % len(tokens) != 0:
        return None, f"{a.size} floats is not a multiple of {len(tokens)} positions"
    return a.reshape(len(tokens), -1), ""


def check_ggml_variant(seen):
    """The ggml CPU variant(s) logits.mjs ran: printed, and equal to MLXR_GGML_CPU_VARIANT when that
    pins one (tests/golden/llamacpp/nlc.mjs), so a pinned run cannot silently use another."""
    seen = sorted(v or "unknown" for v in seen)
    if not seen:
        return
    pinned = os.environ.get("MLXR_GGML_CPU_VARIANT")
    check("llama.cpp CPU variant" + (f" pinned to {pinned}" if pinned else ""),
          seen == [pinned] if pinned else "unknown" not in seen, "ran " + ", ".join(seen))


def llamacpp_logits(jobs, tmp):
    """jobs: list of (key, model, tokens). Returns {key: array or error string}."""
    spec = [{"model": m, "tokens": list(map(int, t)), "out": os.path.join(tmp, f"lc_{k}.f32")}
            for k, m, t in jobs]
    path = os.path.join(tmp, "lc_jobs.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    r = run(["node", os.path.join(HELPERS, "logits.mjs"), "--jobs", path, "--kv", "f32"])
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    check_ggml_variant({res.get("ggml_cpu") for res in lines if "error" not in res})
    out = {}
    for (k, _, t), s, res in zip(jobs, spec, lines + [None] * (len(jobs) - len(lines))):
        if res is None:
            out[k] = "no result: " + r.stderr.strip()[-300:]
        elif "error" in res:
            out[k] = res["error"][-300:]
        else:
            out[k] = np.fromfile(s["out"], dtype="<f4").reshape(len(t), res["n_vocab"])
    return out


def weights_2d(path):
    _, tensors = gguf_np.read(path)
    return {n: t for n, t in tensors.items() if len(t.ne) >= 2 and t.ne[1] > 1}


def main():
    for what, path in (("mlxr", MLXR), ("llamacpp-tool", TOOL),
                       ("node-llama-cpp", os.path.join(CACHE, "node_modules/node-llama-cpp"))):
        if not os.path.exists(path) and what == "mlxr":
            check(f"prerequisite {what}", False, f"{path} missing (build the tree first)")
            print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
            return 1
        if not os.path.exists(path):  # the reference itself
            suite.skip(f"{path} missing (run scripts/fetch_test_deps.sh)")

    with tempfile.TemporaryDirectory(prefix="mlxr-llamacpp-") as tmp:
        hf = os.path.join(tmp, "m")
        r = run([PY, os.path.join(SRC, "scripts/make_random_model.py"), "--out", hf, "--seed", "11",
                 "--hidden", "256", "--intermediate", "512", "--layers", "2", "--heads", "4",
                 "--kv-heads", "2", "--std", "0.08"])
        if not check("make_random_model", r.returncode == 0, r.stderr.strip()[-300:]):
            return finish()
        files = {}
        for t in ("f32", "f16"):
            files[t] = os.path.join(tmp, f"m-{t}.gguf")
            r = run([MLXR, "convert", hf, "-o", files[t], "--type", t])
            check(f"mlxr convert --type {t}", r.returncode == 0 and os.path.exists(files[t]),
                  r.stderr.strip()[-300:])
        if not os.path.exists(files["f32"]):
            return finish()
        kv, tensors = gguf_np.read(files["f32"])
        n_vocab = tensors["token_embd.weight"].ne[1]
        rng = np.random.default_rng(3)
        tokens = [int(x) for x in rng.integers(0, n_vocab, 32)]
        bos = kv.get("tokenizer.ggml.bos_token_id")
        if bos is not None:
            tokens[0] = int(bos)

        # -- quantized files: llama.cpp's and MLXR's ------------------------------------------
        qfiles = {}
        for qt in QUANT_TYPES:
            lc = os.path.join(tmp, f"m-lc-{qt}.gguf")
            r = run([TOOL, "quantize", files["f32"], lc, qt, "2"])
            if check(f"llama.cpp quantize {qt}", r.returncode == 0, r.stderr.strip()[-200:]):
                qfiles[f"lc-{qt}"] = lc
            ours = os.path.join(tmp, f"m-mlxr-{qt}.gguf")
            r = run([MLXR, "quantize", files["f32"], ours, qt, "-t", "2"])
            if check(f"mlxr quantize {qt}", r.returncode == 0, r.stderr.strip()[-200:]):
                qfiles[f"mlxr-{qt}"] = ours

        # -- llama.cpp logits for every file in one node process ------------------------------
        all_files = {**files, **qfiles}
        lc = llamacpp_logits([(k, p, tokens) for k, p in all_files.items()], tmp)

        # 1. float weights: llama.cpp vs float64, MLXR vs llama.cpp
        for t, path in files.items():
            ref = ref_forward.forward(path, tokens)
            got = lc.get(t)
            if isinstance(got, str) or got is None:
                check(f"llama.cpp loads mlxr {t} GGUF", False, str(got))
                continue
            rel_lc, agree, rms = compare(got, ref, lc="a")
            check(f"llama.cpp on mlxr {t} GGUF vs float64 reference", rel_lc <= TOL_REF[t], fmt(rel_lc, agree, rms))
            ours, err = mlxr_logits(path, tokens, os.path.join(tmp, f"ours-{t}.f32"))
            if ours is None or ours.shape != got.shape:
                check(f"mlxr logits {t} vs llama.cpp", False, err or f"shape {None if ours is None else ours.shape} vs {got.shape}")
                continue
            rel, agree, rms = compare(ours, ref)
            check(f"mlxr logits {t} vs float64 reference", rel <= TOL_OURS[t] and agree == 1.0, fmt(rel, agree, rms))
            rel, agree, rms = compare(ours, got, lc="b")
            lim = max(TOL_FLOAT, 1.5 * rel_lc)
            check(f"mlxr logits {t} vs llama.cpp", rel <= lim and agree == 1.0,
                  f"{fmt(rel, agree, rms)}, limit {lim:.2e} (llama.cpp vs float64: rel {rel_lc:.2e})")

        # 2./3. quantized files
        w32 = {n: t.array() for n, t in weights_2d(files["f32"]).items()}
        for qt in QUANT_TYPES:
            for who in ("lc", "mlxr"):
                key = f"{who}-{qt}"
                if key not in qfiles:
                    continue
                path = qfiles[key]
                label = f"{'llama.cpp' if who == 'lc' else 'mlxr'}-quantized {qt}"
                w = weights_2d(path)
                kinds = sorted({t.type_name for t in w.values()})
                if who == "lc":
                    check(f"{label}: every 2-D tensor is {qt}", kinds == [qt], f"types {kinds}")
                # ggml's own dequantizer reads the blocks exactly as the numpy one does
                name = "blk.0.ffn_down.weight"
                dq = os.path.join(tmp, f"dq-{key}.f32")
                r = run([TOOL, "dequantize", path, name, dq])
                if r.returncode == 0:
                    a = np.fromfile(dq, dtype="<f4")
                    b = w[name].array().astype(np.float32).reshape(-1)
                    same = a.shape == b.shape and np.array_equal(a, b)
                    check(f"{label}: ggml dequantize == numpy dequantize ({name}, {w[name].type_name})",
                          same, f"max|d| {np.max(np.abs(a - b)) if a.shape == b.shape else 'shape'}")
                else:
                    check(f"{label}: ggml dequantize {name}", False, r.stderr.strip()[-200:])
                got = lc.get(key)
                if isinstance(got, str) or got is None:
                    check(f"llama.cpp loads {label}", False, str(got))
                    continue
                ref = ref_forward.forward(path, tokens)
                rel_lc, agree_lc, _ = compare(got, ref, lc="a")
                ours, err = mlxr_logits(path, tokens, os.path.join(tmp, f"ours-{key}.f32"))
                if ours is None or ours.shape != got.shape:
                    check(f"mlxr logits on {label} vs llama.cpp", False,
                          err or f"shape {None if ours is None else ours.shape} vs {got.shape}")
                    continue
                rel, agree, rms = compare(ours, got, lc="b")
                rel_ref, agree_ref, _ = compare(ours, ref)
                # The engines may round activations differently (llama.cpp: Q8_0/Q8_1/Q8_K per
                # weight type); llama.cpp's own distance from float64 measures that effect.
                lim = max(TOL_QUANT, 1.5 * rel_lc)
                # argmax agreement between the engines is bounded by the less accurate one: when
                # llama.cpp itself agrees with float64 on fewer positions, so can we with it
                check(f"mlxr logits on {label} vs llama.cpp",
                      rel <= lim and agree >= min(ARGMAX_QUANT, agree_lc - 2 / 32),
                      f"{fmt(rel, agree, rms)}, limit {lim:.2e} (vs float64 of dequantized weights: "
                      f"mlxr rel {rel_ref:.2e}, llama.cpp rel {rel_lc:.2e})")
                check(f"mlxr on {label} no less accurate than llama.cpp (vs float64)",
                      # argmax agreement with float64 is judged against llama.cpp's own on the same
                      # file (random-weight models have near-ties), with two positions of slack
                      rel_ref <= 1.5 * rel_lc + 1e-6 and agree_ref >= min(ARGMAX_QUANT, agree_lc - 2 / 32),
                      f"mlxr rel {rel_ref:.2e} argmax {agree_ref * 100:.0f}%, "
                      f"llama.cpp rel {rel_lc:.2e} argmax {agree_lc * 100:.0f}%")
            # quantization quality: MLXR's error no worse than llama.cpp's on the same weights
            if f"lc-{qt}" in qfiles and f"mlxr-{qt}" in qfiles:
                wl = weights_2d(qfiles[f"lc-{qt}"])
                wm = weights_2d(qfiles[f"mlxr-{qt}"])
                el = em = 0.0
                same_bytes = total = 0
                types_m = sorted({t.type_name for t in wm.values()})
                for n, ref_w in w32.items():
                    if n not in wl or n not in wm:
                        continue
                    el += float(np.sum((wl[n].array() - ref_w) ** 2))
                    em += float(np.sum((wm[n].array() - ref_w) ** 2))
                    if wl[n].type == wm[n].type:
                        a = np.frombuffer(wl[n].data, np.uint8)
                        b = np.frombuffer(wm[n].data, np.uint8)
                        same_bytes += int(np.sum(a == b))
                        total += a.size
                ratio = np.sqrt(em / el) if el > 0 else float("inf")
                check(f"mlxr {qt} quantization error vs llama.cpp's", ratio <= 1.10,
                      f"rmse ratio {ratio:.4f}, mlxr types {types_m}, identical bytes "
                      f"{(same_bytes / total * 100) if total else 0:.1f}%")

        # 4. tokenizer
        texts = ["Hello world", "The quick brown fox jumps over the lazy dog.",
                 "  leading spaces,\ttabs and\nnew lines\n\n", "numbers 12345 and 3.14159",
                 "it's we're they'll I'd", "café naïve 日本語 🙂", "def main(): return 0"]
        tl = os.path.join(tmp, "texts.jsonl")
        with open(tl, "w") as f:
            for t in texts:
                f.write(json.dumps(t) + "\n")
        r = run(["node", os.path.join(HELPERS, "tokenize.mjs"), "--model", files["f32"], "--json-lines", tl])
        lc_ids = [json.loads(x) for x in r.stdout.splitlines()] if r.returncode == 0 else []
        bad = []
        for i, t in enumerate(texts):
            rr = run([MLXR, "tokenize", "--no-bos", "--no-special", files["f32"], t])
            ours = [int(x) for x in rr.stdout.split()] if rr.returncode == 0 else None
            if i >= len(lc_ids) or ours != lc_ids[i]:
                bad.append(f"{t!r}: llama.cpp {lc_ids[i] if i < len(lc_ids) else r.stderr[-200:]} mlxr {ours}")
        check(f"tokenizer: llama.cpp ids == mlxr tokenize on {len(texts)} texts", not bad, "; ".join(bad)[:600])

        # 5. Hugging Face fixtures
        fixtures = os.path.join(SRC, "tests/fixtures/hf")
        names = sorted(d for d in os.listdir(fixtures)) if os.path.isdir(fixtures) else []
        fx_jobs = []
        fx = {}
        for name in names:
            d = os.path.join(fixtures, name)
            if not os.path.exists(os.path.join(d, "reference.json")):
                continue
            with open(os.path.join(d, "reference.json")) as f:
                meta = json.load(f)
            out = os.path.join(tmp, f"hf-{name}.gguf")
            r = run([MLXR, "convert", d, "-o", out, "--type", "f32"])
            if not check(f"hf/{name}: mlxr convert f32", r.returncode == 0, r.stderr.strip()[-200:]):
                continue
            fx[name] = (out, meta, d)
            fx_jobs.append((f"hf-{name}", out, meta["tokens"]))
        lc_fx = llamacpp_logits(fx_jobs, tmp) if fx_jobs else {}
        for name, (out, meta, d) in fx.items():
            toks = meta["tokens"]
            got = lc_fx.get(f"hf-{name}")
            if isinstance(got, str) or got is None:
                check(f"hf/{name}: llama.cpp loads mlxr's GGUF", False, str(got))
                continue
            ref = np.fromfile(os.path.join(d, "reference_logits.f32"), dtype="<f4")
            ref = ref.reshape(len(toks), -1)
            nv = min(ref.shape[1], got.shape[1])
            rel_lc, agree, rms = compare(got[:, :nv], ref[:, :nv], lc="a")
            rel = rel_lc
            check(f"hf/{name}: llama.cpp on mlxr's GGUF vs transformers float64", rel <= TOL_HF and agree == 1.0,
                  fmt(rel, agree, rms) + (f" (n_vocab llama.cpp {got.shape[1]}, transformers {ref.shape[1]})"
                                          if got.shape[1] != ref.shape[1] else ""))
            ours, err = mlxr_logits(out, toks, os.path.join(tmp, f"ours-hf-{name}.f32"))
            if ours is None or ours.shape != got.shape:
                check(f"hf/{name}: mlxr logits vs llama.cpp", False, err or f"shape {None if ours is None else ours.shape} vs {got.shape}")
                continue
            rel, agree, rms = compare(ours, got, lc="b")
            lim = max(TOL_FLOAT, 1.5 * rel_lc)
            check(f"hf/{name}: mlxr logits vs llama.cpp", rel <= lim and agree == 1.0,
                  f"{fmt(rel, agree, rms)}, limit {lim:.2e}")
            # tokenizer: llama.cpp on our GGUF reproduces the tokenizers library's ids
            if "text" in meta and "text_ids" in meta:
                tf = os.path.join(tmp, f"hf-{name}.jsonl")
                with open(tf, "w") as f:
                    f.write(json.dumps(meta["text"]) + "\n")
                r = run(["node", os.path.join(HELPERS, "tokenize.mjs"), "--model", out, "--json-lines", tf])
                ids = json.loads(r.stdout.splitlines()[0]) if r.returncode == 0 and r.stdout else None
                want = list(meta["text_ids"])
                bos_id = meta.get("bos_id")
                if ids is not None and want and bos_id is not None and want[0] == bos_id and \
                        (not ids or ids[0] != bos_id):
                    ids = [bos_id] + ids  # llama.cpp's helper adds no BOS; the HF ids carry it
                check(f"hf/{name}: llama.cpp tokenizer on mlxr's GGUF == tokenizers ids", ids == want,
                      "" if ids == want else f"llama.cpp {ids} vs tokenizers {want}"[:400])
    return finish()


def finish():
    passed = sum(results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
