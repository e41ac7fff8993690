#!/usr/bin/env python3
"""test_convert_hf.py: `mlxr convert` against independent numpy references.

Random-weight HF directories are written by scripts/make_random_model.py (numpy, f32 source of
truth kept in memory); `mlxr convert` turns them into GGUF; the GGUF is read back with
tests/golden/llamacpp/gguf_np.py (an independent numpy GGUF reader, no MLXR code) and checked:

  * every tensor present with the right name, ggml ne and type (2-D: the requested type, 1-D: f32,
    q8_0 -> f16 fallback when a row is not a multiple of 32), output.weight absent when tied;
  * values: Q/K of arch llama equal llama.cpp's LlamaModel.permute (re-implemented below from its
    definition) of the HF rows; all other tensors equal the source (f16/bf16-rounded by numpy);
    q8_0 tensors decoded by a small Q8_0 decoder here are within the quantization step;
  * rope_freqs for llama3 rope scaling equals the formula of llama.cpp's converter in float64;
  * metadata keys (values from config.json), the same for the transformers v4 and v5 config forms;
  * qwen2 (q/k/v biases, no permutation) and qwen3 (q/k norms, explicit head_dim) layouts;
  * a sharded checkpoint converts to the same tensors as the single-file one;
  * llama.cpp (node-llama-cpp, when scripts/fetch_test_deps.sh has installed it) loads every
    converted model and evaluates a few tokens;
  * --vocab-only writes tokenizer metadata and no tensors;
  * malformed inputs (missing config key, shape mismatch, unsupported dtype, missing shard,
    unknown architecture, unmapped tensor) fail with exit status 1, a message naming the
    problem, and no output file (nor OUT.tmp) left behind.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("MLXR_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
MLXR = os.path.join(BIN, "mlxr")
sys.path.insert(0, os.path.join(SRC, "scripts"))
sys.path.insert(0, os.path.join(SRC, "tests", "golden", "llamacpp"))
import gguf_np  # noqa: E402
import make_random_model as mrm  # noqa: E402

FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg)
    return cond


def run(args):
    p = subprocess.run([MLXR] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stderr


def make(tmp, name, *opts):
    out = os.path.join(tmp, name)
    args = mrm.parse_args(["--out", out, "--merges", "200"] + list(opts))
    cfg, tensors = mrm.make_model(args)
    return out, cfg, dict(tensors)


def convert(hf_dir, out, *opts):
    rc, err = run(["convert", hf_dir, "-o", out] + list(opts))
    check(rc == 0, "convert %s failed (%d): %s" % (hf_dir, rc, err.strip()))
    if rc != 0:
        return None, None
    return gguf_np.read(out)


# ---- independent references ----

def permute(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute, from its definition."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def llama3_factors(theta, dim, factor, low, high, orig):
    out = []
    for i in range(0, dim, 2):
        freq = 1.0 / theta ** (i / dim)
        wavelen = 2 * np.pi / freq
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            s = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - s) / factor + s))
    return np.array(out)


def q8_0_decode(raw, n):
    b = np.frombuffer(bytes(raw), dtype=np.uint8).reshape(-1, 34)
    d = b[:, :2].copy().view("<f2").astype(np.float64)
    q = b[:, 2:].copy().view(np.int8).astype(np.float64)
    return (d * q).reshape(-1)[:n]


def rounded(a, typ):
    a = np.asarray(a, dtype=np.float32)
    if typ == "f16":
        return a.astype(np.float16).astype(np.float64)
    if typ == "bf16":
        u = a.view(np.uint32).astype(np.uint64)
        r = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32)
        return r.view(np.float32).astype(np.float64)
    return a.astype(np.float64)


HF_TO_GGUF = [
    ("self_attn.q_proj.weight", "attn_q.weight"), ("self_attn.k_proj.weight", "attn_k.weight"),
    ("self_attn.v_proj.weight", "attn_v.weight"), ("self_attn.o_proj.weight", "attn_output.weight"),
    ("self_attn.q_proj.bias", "attn_q.bias"), ("self_attn.k_proj.bias", "attn_k.bias"),
    ("self_attn.v_proj.bias", "attn_v.bias"), ("self_attn.q_norm.weight", "attn_q_norm.weight"),
    ("self_attn.k_norm.weight", "attn_k_norm.weight"), ("mlp.gate_proj.weight", "ffn_gate.weight"),
    ("mlp.up_proj.weight", "ffn_up.weight"), ("mlp.down_proj.weight", "ffn_down.weight"),
    ("input_layernorm.weight", "attn_norm.weight"),
    ("post_attention_layernorm.weight", "ffn_norm.weight"),
]


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    parts = hf.split(".")
    layer = parts[2]
    rest = ".".join(parts[3:])
    for a, b in HF_TO_GGUF:
        if rest == a:
            return "blk.%s.%s" % (layer, b)
    raise KeyError(hf)


def expected_tensor(hf_name, w, cfg, arch):
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    if arch == "llama" and hf_name.endswith("q_proj.weight"):
        return permute(w, nh)
    if arch == "llama" and hf_name.endswith("k_proj.weight"):
        return permute(w, nkv)
    return w


def check_model(tag, cfg, src, kv, tensors, arch, out_type, src_dtype="f32"):
    """Compare a converted GGUF against the HF weights src (f32 numpy, HF names)."""
    type_ids = {"f32": 0, "f16": 1, "q8_0": 8, "bf16": 30}
    want_names = {gguf_name(n) for n in src}
    if cfg.get("rope_scaling", {}) and cfg["rope_scaling"].get("rope_type") == "llama3" or \
            cfg.get("rope_parameters", {}).get("rope_type") == "llama3":
        want_names.add("rope_freqs.weight")
    check(set(tensors) == want_names,
          "%s: tensor names differ: missing %s, extra %s" % (
              tag, sorted(want_names - set(tensors))[:5], sorted(set(tensors) - want_names)[:5]))
    for hf_name, w in src.items():
        g = gguf_name(hf_name)
        if g not in tensors:
            continue
        t = tensors[g]
        check(t.ne == list(reversed(w.shape)), "%s: %s ne %s, want %s" % (tag, g, t.ne, list(reversed(w.shape))))
        exp = expected_tensor(hf_name, rounded(w, src_dtype), cfg, arch)
        if w.ndim == 1:
            check(t.type == 0, "%s: %s type %s, want f32" % (tag, g, t.type_name))
            got = t.array()
            check(np.array_equal(got, exp), "%s: %s values differ from source" % (tag, g))
            continue
        want_type = out_type
        if out_type == "q8_0" and w.shape[1] % 32 != 0:
            want_type = "f16"
        check(t.type == type_ids[want_type], "%s: %s type %s, want %s" % (tag, g, t.type_name, want_type))
        if t.type == 8:
            got = q8_0_decode(t.data, w.size).reshape(w.shape)
            blocks = exp.reshape(-1, 32)
            step = np.abs(blocks).max(axis=1, keepdims=True) / 127.0
            err = np.abs(got.reshape(-1, 32) - blocks)
            check(np.all(err <= step * 0.6 + 1e-12), "%s: %s q8_0 error above the quantization step (max %g)" % (
                tag, g, float((err - step * 0.6).max())))
        else:
            got = t.array()
            check(np.array_equal(got, rounded(exp, want_type)),
                  "%s: %s values differ from the %s reference (max |d| %g)" % (
                      tag, g, want_type, float(np.abs(got - rounded(exp, want_type)).max())))


def check_keys(tag, cfg, kv, arch, rope_theta, head_dim_explicit):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or H // nh
    want = {
        "general.architecture": arch,
        "general.quantization_version": 2,
        arch + ".context_length": cfg["max_position_embeddings"],
        arch + ".embedding_length": H,
        arch + ".block_count": cfg["num_hidden_layers"],
        arch + ".feed_forward_length": cfg["intermediate_size"],
        arch + ".attention.head_count": nh,
        arch + ".attention.head_count_kv": cfg["num_key_value_heads"],
        arch + ".rope.dimension_count": hd,
        arch + ".vocab_size": cfg["vocab_size"],
    }
    for k, v in want.items():
        check(kv.get(k) == v, "%s: key %s = %r, want %r" % (tag, k, kv.get(k), v))
    check(abs(kv.get(arch + ".rope.freq_base", -1) - rope_theta) <= 1e-6 * rope_theta,
          "%s: rope.freq_base %r" % (tag, kv.get(arch + ".rope.freq_base")))
    check(abs(kv.get(arch + ".attention.layer_norm_rms_epsilon", -1) - cfg["rms_norm_eps"]) < 1e-9,
          "%s: rms eps %r" % (tag, kv.get(arch + ".attention.layer_norm_rms_epsilon")))
    if head_dim_explicit:
        check(kv.get(arch + ".attention.key_length") == hd and kv.get(arch + ".attention.value_length") == hd,
              "%s: key/value_length missing with explicit head_dim" % tag)
    else:
        check(arch + ".attention.key_length" not in kv, "%s: key_length written without explicit head_dim" % tag)


NODE_LOGITS = os.path.join(SRC, "tests", "golden", "llamacpp", "logits.mjs")
HAVE_LLAMACPP = os.path.isdir(os.path.join(SRC, "tests", ".cache", "llamacpp", "node_modules",
                                           "node-llama-cpp")) and shutil.which("node") is not None


def llama_cpp_loads(tag, path, n_vocab):
    """llama.cpp (node-llama-cpp, CPU) loads the file and evaluates three tokens."""
    if not HAVE_LLAMACPP:
        return
    out = path + ".logprob.f32"
    p = subprocess.run(["node", NODE_LOGITS, "--model", path, "--tokens", "1,2,3", "--out", out],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not check(p.returncode == 0, "%s: llama.cpp cannot load the converted file: %s" % (
            tag, p.stderr.strip()[-400:])):
        return
    lp = np.fromfile(out, dtype=np.float32)
    check(lp.size == 3 * n_vocab and np.isfinite(lp).any(), "%s: llama.cpp output malformed" % tag)


def expect_failure(tag, hf_dir, out, needle):
    rc, err = run(["convert", hf_dir, "-o", out])
    check(rc == 1, "%s: exit status %d, want 1 (stderr: %s)" % (tag, rc, err.strip()))
    check(needle in err, "%s: message %r does not mention %r" % (tag, err.strip(), needle))
    check(not os.path.exists(out) and not os.path.exists(out + ".tmp"),
          "%s: output or temp file left behind" % tag)


def main():
    if not os.access(MLXR, os.X_OK):
        print("FAIL: %s not built (build the tree first)" % MLXR)
        return 1
    tmp = tempfile.mkdtemp(prefix="mlxr-convert-test-")
    try:
        # 1. Llama, v4 config, untied, f32 source -> f16 (default).
        d, cfg, src = make(tmp, "llama", "--seed", "1")
        kv, t = convert(d, os.path.join(tmp, "llama.gguf"))
        if kv:
            check_model("llama f16", cfg, src, kv, t, "llama", "f16")
            check_keys("llama f16", cfg, kv, "llama", 10000.0, False)
            check(kv.get("general.file_type") == 1, "llama f16: file_type %r" % kv.get("general.file_type"))
            check("output.weight" in t, "llama untied: output.weight missing")
            llama_cpp_loads("llama f16", os.path.join(tmp, "llama.gguf"), cfg["vocab_size"])
            toks = kv.get("tokenizer.ggml.tokens")
            check(toks is not None and len(toks) == cfg["vocab_size"],
                  "llama: %s tokens, vocab_size %d" % (None if toks is None else len(toks), cfg["vocab_size"]))

        # 2. Same weights in the v5 config form with llama3 rope scaling, f32 output.
        d5, cfg5, src5 = make(tmp, "llama_v5", "--seed", "1", "--config-form", "v5",
                              "--rope-scaling", "llama3", "--rope-theta", "500000", "--rope-orig-ctx", "64")
        kv5, t5 = convert(d5, os.path.join(tmp, "llama_v5.gguf"), "--type", "f32")
        if kv5:
            check_model("llama v5 f32", cfg5, src5, kv5, t5, "llama", "f32")
            check_keys("llama v5 f32", cfg5, kv5, "llama", 500000.0, False)
            check(kv5.get("general.file_type") == 0, "llama f32: file_type %r" % kv5.get("general.file_type"))
            llama_cpp_loads("llama v5 llama3", os.path.join(tmp, "llama_v5.gguf"), cfg5["vocab_size"])
            rf = t5.get("rope_freqs.weight")
            if check(rf is not None, "llama3: rope_freqs.weight missing"):
                hd = cfg5["hidden_size"] // cfg5["num_attention_heads"]
                ref = llama3_factors(500000.0, hd, 8.0, 1.0, 4.0, 64)
                check(rf.type == 0 and rf.ne == [hd // 2], "rope_freqs type/ne %s %s" % (rf.type, rf.ne))
                got = rf.array()
                check(np.allclose(got, ref, rtol=1e-6, atol=0),
                      "rope_freqs differ from the formula: %s vs %s" % (got[:6], ref[:6]))
                check(ref.min() == 1.0 and ref.max() == 8.0 and np.any((ref > 1) & (ref < 8)),
                      "llama3 test config does not exercise all three rope bands")
        if kv and kv5:
            same = [k for k in kv if k.startswith("llama.") and k != "llama.rope.freq_base"]
            check(all(kv[k] == kv5.get(k) for k in same), "v4 and v5 config forms give different keys")

        # 3. Tied embeddings, bf16 source -> bf16 (bytes pass through), GQA head_dim explicit.
        dt, cfgt, srct = make(tmp, "llama_tied", "--seed", "2", "--tie", "--dtype", "bf16",
                              "--head-dim", "32", "--heads", "8", "--kv-heads", "2")
        kvt, tt = convert(dt, os.path.join(tmp, "tied.gguf"), "--type", "bf16")
        if kvt:
            check("output.weight" not in tt, "tied: output.weight present")
            check_model("llama tied bf16", cfgt, srct, kvt, tt, "llama", "bf16", src_dtype="bf16")
            check_keys("llama tied bf16", cfgt, kvt, "llama", 10000.0, True)
            check(kvt.get("general.file_type") == 32, "bf16: file_type %r" % kvt.get("general.file_type"))
            llama_cpp_loads("llama tied bf16", os.path.join(tmp, "tied.gguf"), cfgt["vocab_size"])

        # 4. q8_0 output with a row length that is not a multiple of 32 (hidden 48): f16 fallback.
        dq, cfgq, srcq = make(tmp, "llama_q8", "--seed", "3", "--hidden", "48", "--heads", "4",
                              "--kv-heads", "2", "--intermediate", "96")
        kvq, tq = convert(dq, os.path.join(tmp, "q8.gguf"), "--type", "q8_0")
        if kvq:
            check_model("llama q8_0", cfgq, srcq, kvq, tq, "llama", "q8_0")
            check(tq["blk.0.ffn_down.weight"].type == 8 and tq["blk.0.attn_q.weight"].type == 1,
                  "q8_0: expected ffn_down q8_0 and attn_q f16 fallback")
            check(kvq.get("general.file_type") == 7, "q8_0: file_type %r" % kvq.get("general.file_type"))
            llama_cpp_loads("llama q8_0", os.path.join(tmp, "q8.gguf"), cfgq["vocab_size"])

        # 5. Qwen2 (biases) and Qwen3 (q/k norms, explicit head_dim), v5 form; sharded qwen2.
        d2, cfg2, src2 = make(tmp, "qwen2", "--seed", "4", "--arch", "qwen2", "--config-form", "v5",
                              "--rope-theta", "1000000", "--shards", "3")
        kv2, t2 = convert(d2, os.path.join(tmp, "qwen2.gguf"), "--type", "f32")
        if kv2:
            check_model("qwen2", cfg2, src2, kv2, t2, "qwen2", "f32")
            check_keys("qwen2", cfg2, kv2, "qwen2", 1000000.0, False)
            check("blk.0.attn_k.bias" in t2, "qwen2: biases missing")
            llama_cpp_loads("qwen2", os.path.join(tmp, "qwen2.gguf"), cfg2["vocab_size"])
        d3, cfg3, src3 = make(tmp, "qwen3", "--seed", "5", "--arch", "qwen3", "--head-dim", "32",
                              "--tie")
        kv3, t3 = convert(d3, os.path.join(tmp, "qwen3.gguf"), "--type", "f16")
        if kv3:
            check_model("qwen3", cfg3, src3, kv3, t3, "qwen3", "f16")
            check_keys("qwen3", cfg3, kv3, "qwen3", 10000.0, True)
            check("blk.1.attn_q_norm.weight" in t3 and "output.weight" not in t3, "qwen3: layout")
            llama_cpp_loads("qwen3", os.path.join(tmp, "qwen3.gguf"), cfg3["vocab_size"])

        # 6. --vocab-only: tokenizer keys, no tensors; works without config.json too.
        vo = os.path.join(tmp, "vocab_only")
        os.makedirs(vo)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(d, f), vo)
        rc, err = run(["convert", vo, "-o", os.path.join(tmp, "vocab.gguf"), "--vocab-only"])
        if check(rc == 0, "vocab-only failed: " + err.strip()):
            kvv, tv = gguf_np.read(os.path.join(tmp, "vocab.gguf"))
            check(len(tv) == 0, "vocab-only: %d tensors" % len(tv))
            check(kvv.get("general.architecture") == "llama", "vocab-only: architecture %r" % kvv.get("general.architecture"))
            check(kvv.get("general.name") == "vocab_only", "vocab-only: name %r" % kvv.get("general.name"))
            check(kvv.get("tokenizer.ggml.tokens") == kv.get("tokenizer.ggml.tokens") if kv else True,
                  "vocab-only: tokens differ from the full conversion")

        # 6b. config vocab_size above the tokenizer's token count (Qwen2-style padded embeddings):
        # llama.cpp requires one token per embedding row, padded with "[PAD<id>]".
        dp, cfgp, _ = make(tmp, "llama_pad", "--seed", "6", "--vocab-pad", "7", "--layers", "1")
        kvp, tp = convert(dp, os.path.join(tmp, "pad.gguf"))
        if kvp:
            toks = kvp.get("tokenizer.ggml.tokens") or []
            check(tp["token_embd.weight"].ne[1] == cfgp["vocab_size"], "pad: token_embd rows")
            check(len(toks) == cfgp["vocab_size"],
                  "pad: %d tokens for vocab_size %d" % (len(toks), cfgp["vocab_size"]))
            check(toks[-1] == "[PAD%d]" % (cfgp["vocab_size"] - 1), "pad: last token %r" % toks[-1:])
            types = kvp.get("tokenizer.ggml.token_type") or []
            check(len(types) == len(toks) and types[-1] == 5, "pad: padding tokens are type 5 (unused)")

        # 7. Malformed inputs.
        out = os.path.join(tmp, "bad.gguf")

        def variant(name, base=d):
            p = os.path.join(tmp, name)
            shutil.copytree(base, p)
            return p

        def edit_config(p, fn):
            with open(os.path.join(p, "config.json")) as f:
                c = json.load(f)
            fn(c)
            with open(os.path.join(p, "config.json"), "w") as f:
                json.dump(c, f)

        p = variant("bad_key")
        edit_config(p, lambda c: c.pop("hidden_size"))
        expect_failure("missing config key", p, out, "hidden_size")

        p = variant("bad_shape")
        edit_config(p, lambda c: c.update(intermediate_size=c["intermediate_size"] * 2))
        expect_failure("shape mismatch", p, out, "mlp.")

        p = variant("bad_arch")
        edit_config(p, lambda c: c.update(architectures=["GPTNeoXForCausalLM"]))
        expect_failure("unknown architecture", p, out, "GPTNeoXForCausalLM")

        p = variant("bad_shard", d2)
        os.remove(os.path.join(p, "model-00002-of-00003.safetensors"))
        expect_failure("missing shard", p, out, "model-00002-of-00003.safetensors")

        p = variant("bad_dtype")
        srcd = dict(src)
        tensors = []
        for name, w in srcd.items():
            if name == "model.layers.0.mlp.up_proj.weight":
                tensors.append((name, "I32", w.shape, w.astype("<i4").tobytes()))
            else:
                tensors.append((name, "F32", w.shape, w.astype("<f4").tobytes()))
        mrm.write_safetensors(os.path.join(p, "model.safetensors"), tensors)
        expect_failure("unsupported dtype", p, out, "I32")

        p = variant("bad_extra")
        tensors = [(n, "F32", w.shape, w.astype("<f4").tobytes()) for n, w in src.items()]
        tensors.append(("model.layers.0.mlp.extra_proj.weight", "F32", (4, 4), np.zeros((4, 4), "<f4").tobytes()))
        mrm.write_safetensors(os.path.join(p, "model.safetensors"), tensors)
        expect_failure("unmapped tensor", p, out, "extra_proj")

        p = variant("bad_missing")
        tensors = [(n, "F32", w.shape, w.astype("<f4").tobytes()) for n, w in src.items()
                   if n != "model.layers.1.self_attn.v_proj.weight"]
        mrm.write_safetensors(os.path.join(p, "model.safetensors"), tensors)
        expect_failure("missing tensor", p, out, "model.layers.1.self_attn.v_proj.weight")

        # An existing output must survive a failed conversion untouched.
        with open(out, "wb") as f:
            f.write(b"keep me")
        rc, _ = run(["convert", os.path.join(tmp, "bad_key"), "-o", out])
        with open(out, "rb") as f:
            check(rc == 1 and f.read() == b"keep me", "failed conversion clobbered an existing file")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if FAILURES:
        print("%d check(s) failed" % len(FAILURES))
        return 1
    print("test_convert_hf: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
