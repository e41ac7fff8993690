"""ref_forward.py: a float64 numpy forward pass over a GGUF file, the third reference of the
llama.cpp golden tests (next to llama.cpp itself and MLXR).

It reads the file with gguf_np (its own GGUF reader and ggml block dequantizer, checked bit-exact
against ggml's to_float by the test), turns every weight into float64 and runs the model in
float64: no activation quantization, no f16 anywhere. Comparing llama.cpp and MLXR with it
separates "the engines read the blocks the same way" from "the engines round activations
differently" (llama.cpp quantizes activations to Q8_0 / Q8_K for its quantized dot products).

Architectures: llama (NORM rope: rotate pairs (x[2i], x[2i+1]), the GGUF Q/K rows being already
permuted by the converter; optional rope_freqs divisors, linear rope scaling), qwen2 (NEOX rope:
pairs (x[i], x[i+d/2]); q/k/v biases), qwen3 (NEOX rope; per-head RMSNorm of q and k before rope).

    python3 ref_forward.py MODEL.gguf 1,2,3 OUT.f32   # float32 [n][n_vocab] logits
"""
import sys

import numpy as np

import gguf_np

NEOX_ARCHES = {"qwen2", "qwen3"}


def _rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def _rope(x, pos, base, n_rot, neox, freq_factors=None, scale=1.0):
    """x [T, n_head, head_dim]; rotates the first n_rot dims."""
    half = n_rot // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)
    if freq_factors is not None:
        inv = inv / freq_factors[:half]
    ang = (pos * scale)[:, None] * inv[None, :]
    c = np.cos(ang)[:, None, :]
    s = np.sin(ang)[:, None, :]
    out = x.copy()
    if neox:
        a = x[..., :half]
        b = x[..., half:n_rot]
        out[..., :half] = a * c - b * s
        out[..., half:n_rot] = a * s + b * c
    else:
        a = x[..., 0:n_rot:2]
        b = x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * c - b * s
        out[..., 1:n_rot:2] = a * s + b * c
    return out


def forward(path, tokens):
    """float64 logits [len(tokens)][n_vocab] of one causal forward pass over tokens."""
    kv, tensors = gguf_np.read(path)
    arch = kv["general.architecture"]
    if arch not in ("llama", "qwen2", "qwen3"):
        raise ValueError(f"ref_forward: architecture {arch} not supported")

    def hp(key, default=None):
        v = kv.get(f"{arch}.{key}", default)
        if v is None:
            raise ValueError(f"ref_forward: missing {arch}.{key}")
        return v

    cache = {}

    def w(name):
        if name not in cache:
            cache[name] = tensors[name].array() if name in tensors else None
        return cache[name]

    n_layer = hp("block_count")
    n_embd = hp("embedding_length")
    n_head = hp("attention.head_count")
    n_kv = hp("attention.head_count_kv", n_head)
    head_dim = hp("attention.key_length", n_embd // n_head)
    eps = hp("attention.layer_norm_rms_epsilon")
    base = hp("rope.freq_base", 10000.0)
    n_rot = hp("rope.dimension_count", head_dim)
    scaling = kv.get(f"{arch}.rope.scaling.type", "none")
    scale = 1.0
    if scaling == "linear":
        scale = 1.0 / kv[f"{arch}.rope.scaling.factor"]
    elif scaling not in ("none", ""):
        raise ValueError(f"ref_forward: rope scaling {scaling} not supported")
    neox = arch in NEOX_ARCHES
    freq_factors = w("rope_freqs.weight")

    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    x = w("token_embd.weight")[np.asarray(tokens)]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for il in range(n_layer):
        p = f"blk.{il}."
        h = _rms(x, w(p + "attn_norm.weight"), eps)

        def proj(name, h=h):
            y = h @ w(p + name + ".weight").T
            b = w(p + name + ".bias")
            return y + b if b is not None else y

        q = proj("attn_q").reshape(T, n_head, head_dim)
        k = proj("attn_k").reshape(T, n_kv, head_dim)
        v = proj("attn_v").reshape(T, n_kv, head_dim)
        if w(p + "attn_q_norm.weight") is not None:
            q = _rms(q, w(p + "attn_q_norm.weight"), eps)
            k = _rms(k, w(p + "attn_k_norm.weight"), eps)
        q = _rope(q, pos, base, n_rot, neox, freq_factors, scale)
        k = _rope(k, pos, base, n_rot, neox, freq_factors, scale)
        rep = n_head // n_kv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        sc = np.einsum("thd,shd->hts", q, k) / np.sqrt(head_dim) + mask
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        sc /= sc.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", sc, v).reshape(T, n_head * head_dim)
        x = x + o @ w(p + "attn_output.weight").T
        h = _rms(x, w(p + "ffn_norm.weight"), eps)
        g = h @ w(p + "ffn_gate.weight").T
        u = h @ w(p + "ffn_up.weight").T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ w(p + "ffn_down.weight").T
    x = _rms(x, w("output_norm.weight"), eps)
    out = w("output.weight")
    if out is None:
        out = w("token_embd.weight")
    return x @ out.T


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    toks = [int(t) for t in argv[2].replace(" ", ",").split(",") if t]
    forward(argv[1], toks).astype("<f4").tofile(argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
