#!/usr/bin/env python3
"""test_convert_quantize.py: `mlxr quantize` against llama.cpp and against the source weights.

A random-weight Llama (scripts/make_random_model.py; hidden 256 and intermediate 512, so the
K-quants apply without fallback, plus a hidden-64 one that forces fallbacks) is converted to an
f32 GGUF with `mlxr convert`, then requantized:

  * with llama.cpp (tests/.cache/llamacpp/bin/llamacpp-tool, built by
    scripts/fetch.d/20-llamacpp.sh; without it these checks are reported as skipped, exit 77,
    tests/golden/suite.py): for every plain type, `mlxr quantize` must produce the same
    tensor types and bytes as llama.cpp's own llama_model_quantize in pure mode on the same input
    (K-quants: at most 3% of blocks may differ, where a float rounding tie in ggml's scale search
    goes the other way in llama.cpp's build, and the error must match llama.cpp's within 1%);
    llama.cpp also reads our converted file (it loads the architecture and hparams);
  * always: every tensor's type (2-D weights the requested type or llama.cpp's fallback, 1-D f32),
    values decoded by tests/golden/llamacpp/gguf_np.py (independent numpy dequantizers) within a
    per-type error bound of the f32 source, every metadata key copied except general.file_type;
  * q4_K_M: the per-tensor types follow llama.cpp's llama_tensor_get_type rules, re-implemented
    below from src/llama-quant.cpp (output.weight Q6_K; attn_v and ffn_down Q6_K where
    use_more_bits; the rest Q4_K).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("MLXR_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
MLXR = os.path.join(BIN, "mlxr")
LLAMACPP_TOOL = os.path.join(SRC, "tests", ".cache", "llamacpp", "bin", "llamacpp-tool")
sys.path.insert(0, os.path.join(SRC, "scripts"))
sys.path.insert(0, os.path.join(SRC, "tests", "golden", "llamacpp"))
import gguf_np  # noqa: E402
import make_random_model as mrm  # noqa: E402
import suite  # noqa: E402  (tests/golden/suite.py: the skip protocol)

FAILURES = []
TYPE_ID = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q4_K": 12,
           "q5_K": 13, "q6_K": 14, "bf16": 30}
BLOCK = {"q4_0": 32, "q4_1": 32, "q5_0": 32, "q5_1": 32, "q8_0": 32, "q4_K": 256, "q5_K": 256,
         "q6_K": 256}
# llama.cpp tensor_type_fallback
FALLBACK = {"q4_K": "q5_0", "q5_K": "q5_1", "q6_K": "q8_0"}
# Bound on RMS error / RMS of the tensor (generous: 4-bit types sit near 0.1 on Gaussian data).
REL_RMS = {"f32": 0, "f16": 1e-3, "bf16": 1e-2, "q8_0": 0.01, "q6_K": 0.03, "q5_0": 0.06,
           "q5_1": 0.06, "q5_K": 0.06, "q4_0": 0.12, "q4_1": 0.12, "q4_K": 0.12}


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg)
    return cond


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stderr


def target_type(name, ndim, ne0, typ):
    if ndim < 2 or not name.endswith("weight") or "_norm.weight" in name:
        return None  # copied unchanged
    if typ in BLOCK and ne0 % BLOCK[typ] != 0:
        typ = FALLBACK.get(typ, "f16")
        if typ in BLOCK and ne0 % BLOCK[typ] != 0:
            typ = "f16"
    return typ


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def q4_k_m_types(names_in_order, has_output):
    """llama.cpp llama_tensor_get_type for LLAMA_FTYPE_MOSTLY_Q4_K_M (dense model, no imatrix)."""
    n_v = sum("attn_v.weight" in n for n in names_in_order)
    n_down = sum("ffn_down" in n for n in names_in_order)
    i_v = i_down = 0
    out = {}
    for n in names_in_order:
        t = "q4_K"
        if n == "output.weight" or (not has_output and n == "token_embd.weight"):
            t = "q6_K"
        elif n == "token_embd.weight":
            t = "q4_K"
        elif "attn_v.weight" in n:
            if use_more_bits(i_v, n_v):
                t = "q6_K"
            i_v += 1
        elif "ffn_down" in n:
            if use_more_bits(i_down, n_down):
                t = "q6_K"
            i_down += 1
        out[n] = t
    return out


def main():
    if not os.access(MLXR, os.X_OK):
        print("FAIL: %s not built (build the tree first)" % MLXR)
        return 1
    have_llama = os.access(LLAMACPP_TOOL, os.X_OK)
    if not have_llama:
        suite.missing("%s missing (run scripts/fetch_test_deps.sh): the llama.cpp comparisons did not run"
                      % LLAMACPP_TOOL)
    tmp = tempfile.mkdtemp(prefix="mlxr-quantize-test-")
    try:
        hf = os.path.join(tmp, "hf")
        mrm.make_model(mrm.parse_args(["--out", hf, "--seed", "11", "--layers", "8", "--merges", "100"]))
        f32 = os.path.join(tmp, "model-f32.gguf")
        rc, err = run([MLXR, "convert", hf, "-o", f32, "--type", "f32"])
        if not check(rc == 0, "convert failed: " + err):
            return 1
        kv_in, t_in = gguf_np.read(f32)
        src = {n: t.array() for n, t in t_in.items()}

        if have_llama:
            rc, err = run([LLAMACPP_TOOL, "quantize", f32, os.path.join(tmp, "llama-read.gguf"), "f16", "1"])
            check(rc == 0, "llama.cpp cannot read the converted GGUF: " + err.strip()[-400:])

        small_hf = os.path.join(tmp, "hf_small")
        mrm.make_model(mrm.parse_args(["--out", small_hf, "--seed", "12", "--hidden", "64",
                                       "--heads", "4", "--kv-heads", "2", "--intermediate", "128",
                                       "--layers", "2", "--merges", "50"]))
        small = os.path.join(tmp, "small-f32.gguf")
        rc, err = run([MLXR, "convert", small_hf, "-o", small, "--type", "f32"])
        check(rc == 0, "convert (small) failed: " + err)

        cases = [(f32, kv_in, t_in, src, typ) for typ in
                 ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K", "f16", "bf16"]]
        if rc == 0:
            kv_s, t_s = gguf_np.read(small)
            src_s = {n: t.array() for n, t in t_s.items()}
            cases += [(small, kv_s, t_s, src_s, typ) for typ in ["q4_K", "q6_K", "q8_0"]]

        for path, kv0, t0, s0, typ in cases:
            tag = "%s %s" % (os.path.basename(path), typ)
            out = os.path.join(tmp, "out-%s" % typ)
            rc, err = run([MLXR, "quantize", path, out, typ, "-t", "2"])
            if not check(rc == 0, "%s: quantize failed: %s" % (tag, err.strip())):
                continue
            kv, t = gguf_np.read(out)
            check(set(t) == set(t0), "%s: tensor set changed" % tag)
            for k, v in kv0.items():
                if k != "general.file_type":
                    check(kv.get(k) == v, "%s: key %s not copied" % (tag, k))
            for name, ti in t0.items():
                want = target_type(name, len(ti.ne), ti.ne[0], typ)
                got = t[name]
                check(got.ne == ti.ne, "%s: %s ne changed" % (tag, name))
                if want is None:
                    check(got.type == ti.type and bytes(got.data) == bytes(ti.data),
                          "%s: %s should be copied unchanged" % (tag, name))
                    continue
                check(got.type == TYPE_ID[want], "%s: %s type %s, want %s" % (tag, name, got.type_name, want))
                a = got.array()
                ref = s0[name]
                rel = np.sqrt(np.mean((a - ref) ** 2)) / max(np.sqrt(np.mean(ref ** 2)), 1e-30)
                check(rel <= REL_RMS[want], "%s: %s relative RMS error %.4g above %.4g" % (tag, name, rel, REL_RMS[want]))
            if have_llama:
                ref_out = os.path.join(tmp, "llama-%s" % typ)
                rc, err = run([LLAMACPP_TOOL, "quantize", path, ref_out, typ, "2"])
                if check(rc == 0, "%s: llama.cpp quantize failed: %s" % (tag, err.strip()[-300:])):
                    _, tl = gguf_np.read(ref_out)
                    for name in t0:
                        if not check(t[name].type == tl[name].type, "%s: %s type %s, llama.cpp %s" % (
                                tag, name, t[name].type_name, tl[name].type_name)):
                            continue
                        if bytes(t[name].data) == bytes(tl[name].data):
                            continue
                        # K-quant blocks may differ where ggml's float search meets a rounding
                        # tie that llama.cpp's build (FMA contraction) resolves the other way:
                        # allow a few such blocks, no other difference.
                        check(t[name].type_name in ("q4_K", "q5_K", "q6_K"),
                              "%s: %s bytes differ from llama.cpp's" % (tag, name))
                        bs = gguf_np.BLOCK[t[name].type][1]
                        a = np.frombuffer(bytes(t[name].data), np.uint8).reshape(-1, bs)
                        b = np.frombuffer(bytes(tl[name].data), np.uint8).reshape(-1, bs)
                        frac = np.mean(np.any(a != b, axis=1))
                        check(frac <= 0.03, "%s: %s: %.1f%% of blocks differ from llama.cpp's" % (tag, name, 100 * frac))
                        ref = s0[name]
                        ea = np.sqrt(np.mean((t[name].array() - ref) ** 2))
                        eb = np.sqrt(np.mean((tl[name].array() - ref) ** 2))
                        check(ea <= eb * 1.01, "%s: %s error %.4g vs llama.cpp's %.4g" % (tag, name, ea, eb))
            os.remove(out)

        # q4_K_M mix.
        out = os.path.join(tmp, "out-q4_K_M")
        rc, err = run([MLXR, "quantize", f32, out, "q4_K_M"])
        if check(rc == 0, "q4_K_M failed: " + err.strip()):
            kv, t = gguf_np.read(out)
            check(kv.get("general.file_type") == 15, "q4_K_M: file_type %r" % kv.get("general.file_type"))
            quantizable = [n for n, ti in t_in.items() if target_type(n, len(ti.ne), ti.ne[0], "q4_K")]
            want = q4_k_m_types(quantizable, "output.weight" in t_in)
            check(sum(v == "q6_K" for v in want.values()) >= 5, "q4_K_M test model too small to matter")
            for n, w in want.items():
                check(t[n].type == TYPE_ID[w], "q4_K_M: %s is %s, llama.cpp rules say %s" % (n, t[n].type_name, w))

        # Bad arguments.
        rc, _ = run([MLXR, "quantize", f32, os.path.join(tmp, "x.gguf"), "q9_9"])
        check(rc == 2, "unknown type: exit %d, want 2" % rc)
        rc, _ = run([MLXR, "quantize", os.path.join(tmp, "nope.gguf"), os.path.join(tmp, "x.gguf"), "q8_0"])
        check(rc == 1 and not os.path.exists(os.path.join(tmp, "x.gguf")), "missing input: exit %d" % rc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("test_convert_quantize: all checks passed")
    return suite.exit_status(0)


if __name__ == "__main__":
    sys.exit(main())
