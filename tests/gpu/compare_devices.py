#!/usr/bin/env python3
"""compare_devices.py: whole-model parity of the CUDA backend with the CPU backend (run by
tests/gpu/run.sh on a GPU machine).

A random-weight Llama-architecture model (hidden 512, 4 layers, GQA 8/2, head_dim 64, vocab ~4k) and
a Qwen3-layout one (q/k norms, NEOX rope, head_dim 128) are written by scripts/make_random_model.py,
converted to F32, F16 and BF16 and quantized to Q8_0, Q4_0, Q4_K_M, Q5_K_M and Q6_K with
`mlxr quantize`. For each file:
  1. `mlxr logits --device cpu` and `--device cuda` over a 200-token prompt (one batched forward:
     the cuBLAS and prompt-attention paths) and over a 5-token prompt (the matvec and decode-attention
     paths): max|cuda - cpu| / max|cpu| within the type's tolerance; the CUDA run must report cuda;
  2. greedy generation of 48 tokens after a prompt, `mlxr run --ids --temp 0` on both devices: the
     ids must be identical for F32 (the GPU computes F32 in fp32 throughout); for the other types the
     number of agreeing ids is reported (the CPU rounds activations to Q8 where the GPU uses f16 or
     int8 differently, so near-ties may flip).
Prints PASS/FAIL/INFO lines and `N passed, N failed`.
"""
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
MLXR = os.path.join(BIN, "mlxr")
# max|cuda - cpu| / max|cpu| over all logits. f32: fp32 on both sides (the GPU's summation order
# differs): ~1e-6. f16/bf16 weights: the CPU multiplies f32 activations, the GPU's prompt path rounds
# activations to f16/bf16 for cuBLAS. Quantized: both round activations (CPU: Q8_0/Q8_K; GPU: int8
# per 32 in decode, f16 in prompts), differently.
TOLERANCE = {"f32": 1e-4, "f16": 1e-2, "bf16": 5e-2, "q8_0": 0.1, "q4_0": 0.1, "q4_K_M": 0.1, "q5_K_M": 0.1,
             "q6_K": 0.1}
N_PASS = 0
N_FAIL = 0


def check(ok, what, detail=""):
    global N_PASS, N_FAIL
    print("%s %s%s" % ("PASS" if ok else "FAIL", what, (": " + detail) if detail else ""), flush=True)
    if ok:
        N_PASS += 1
    else:
        N_FAIL += 1


def run(cmd, timeout=600):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def make_models(tmp):
    out = {}
    shapes = {
        "llama": ["--arch", "llama", "--hidden", "512", "--intermediate", "1536", "--layers", "4", "--heads", "8",
                  "--kv-heads", "2", "--vocab-size", "4096", "--rope-theta", "500000", "--rope-scaling", "llama3",
                  "--max-pos", "8192", "--std", "0.05"],
        "qwen3": ["--arch", "qwen3", "--hidden", "256", "--intermediate", "768", "--layers", "3", "--heads", "4",
                  "--kv-heads", "2", "--head-dim", "128", "--vocab-size", "3000", "--tie", "--std", "0.05"],
    }
    for name, args in shapes.items():
        hf = os.path.join(tmp, name + "-hf")
        subprocess.run([sys.executable, os.path.join(SRC, "scripts", "make_random_model.py"), "--out", hf] + args,
                       check=True, stdout=subprocess.DEVNULL)
        for typ in ("f32", "f16", "bf16"):
            path = os.path.join(tmp, "%s-%s.gguf" % (name, typ))
            rc, so, se = run([MLXR, "convert", hf, "-o", path, "--type", typ])
            check(rc == 0, "%s convert %s" % (name, typ), se[-300:] if rc else "")
            out[(name, typ)] = path
        for typ in ("q8_0", "q4_0", "q4_K_M", "q5_K_M", "q6_K"):
            path = os.path.join(tmp, "%s-%s.gguf" % (name, typ))
            rc, so, se = run([MLXR, "quantize", out[(name, "f32")], path, typ])
            check(rc == 0, "%s quantize %s" % (name, typ), se[-300:] if rc else "")
            out[(name, typ)] = path
    return out


def logits(path, device, tokens, tmp):
    out = os.path.join(tmp, "l-%s.f32" % device)
    rc, so, se = run([MLXR, "logits", path, "--tokens", ",".join(map(str, tokens)), "--out", out, "--device", device])
    if rc != 0:
        return None, se
    return np.fromfile(out, dtype="<f4").astype(np.float64), se


def compare_logits(name, typ, path, tokens, label, tmp):
    what = "%s %s logits (%s)" % (name, typ, label)
    cpu, se_c = logits(path, "cpu", tokens, tmp)
    gpu, se_g = logits(path, "cuda", tokens, tmp)
    if cpu is None or gpu is None:
        return check(False, what, "mlxr logits failed: " + (se_c if cpu is None else se_g)[-300:])
    if "device cuda" not in se_g:
        return check(False, what, "the cuda run did not run on the GPU: " + se_g[-300:])
    if cpu.size != gpu.size or not np.all(np.isfinite(gpu)):
        return check(False, what, "sizes %d vs %d or non-finite GPU logits" % (cpu.size, gpu.size))
    rel = float(np.abs(gpu - cpu).max() / np.abs(cpu).max())
    check(rel <= TOLERANCE[typ], what, "max|cuda-cpu|/max|cpu| = %.3g (tol %g)" % (rel, TOLERANCE[typ]))


def greedy(path, device, prompt):
    rc, so, se = run([MLXR, "run", path, "--tokens", ",".join(map(str, prompt)), "-n", "48", "--temp", "0", "--ids",
                      "--device", device, "--ignore-eos"])
    return ([int(x) for x in re.findall(r"-?\d+", so)] if rc == 0 else None), se


def main():
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="mlxr-gpu-") as tmp:
        models = make_models(tmp)
        for (name, typ), path in models.items():
            long_prompt = rng.integers(5, 2900, size=200).tolist()
            compare_logits(name, typ, path, long_prompt, "200-token prompt", tmp)
            compare_logits(name, typ, path, long_prompt[:5], "5-token prompt", tmp)
            prompt = rng.integers(5, 2900, size=12).tolist()
            ids_cpu, se_c = greedy(path, "cpu", prompt)
            ids_gpu, se_g = greedy(path, "cuda", prompt)
            what = "%s %s greedy 48 tokens" % (name, typ)
            if ids_cpu is None or ids_gpu is None:
                check(False, what, "mlxr run failed: " + (se_c if ids_cpu is None else se_g)[-300:])
                continue
            if "running on the CPU" in se_g:
                check(False, what, "the cuda run fell back to the CPU: " + se_g[-300:])
                continue
            agree = next((i for i, (a, b) in enumerate(zip(ids_cpu, ids_gpu)) if a != b), min(len(ids_cpu), len(ids_gpu)))
            if typ == "f32":
                check(ids_cpu == ids_gpu, what, "identical" if ids_cpu == ids_gpu else
                      "first difference at %d: %s vs %s" % (agree, ids_cpu, ids_gpu))
            else:
                print("INFO %s: %d/%d ids agree before the first difference" % (what, agree, len(ids_cpu)))
    print("%d passed, %d failed" % (N_PASS, N_FAIL))
    sys.exit(1 if N_FAIL else 0)


if __name__ == "__main__":
    main()
