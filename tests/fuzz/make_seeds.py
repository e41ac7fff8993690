#!/usr/bin/env python3
"""make_seeds.py: write the binary seeds of tests/fuzz/corpus/ (GGUF and safetensors) from the
test fixtures, small enough for a fuzzer.

  fuzz_gguf/        every metadata key of a fixture converted by `mlxr convert` (hyperparameters,
                    the whole tokenizer, chat template), with three tiny tensors (f32, f16, q8_0)
                    instead of the weights, and the same as llama.cpp writes it (no
                    tokenizer.mlxr.* keys); plus a minimal file (no keys, one tensor) and a v2 one.
  fuzz_safetensors/ a fixture's header (its real names and dtypes) with every tensor cut to a few
                    elements; an MLX-style quantized file (u32 weight, f16 scales and biases,
                    "format": "mlx"); an empty one.

Usage (from the repository root, after a build): python3 tests/fuzz/make_seeds.py [MLXR_BIN]
Run once when the formats change; the outputs are committed.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "hf")

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q", F64: "d"}


def read_gguf_kv(path):
    """The metadata of a GGUF as a list of (key, type, raw value bytes)."""
    b = open(path, "rb").read()
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", b, 0)
    assert magic == b"GGUF", path
    off = 24
    kvs = []

    def value_end(t, off):
        if t == STRING:
            (n,) = struct.unpack_from("<Q", b, off)
            return off + 8 + n
        if t == ARRAY:
            et, n = struct.unpack_from("<IQ", b, off)
            off += 12
            if et == STRING:
                for _ in range(n):
                    off = value_end(STRING, off)
                return off
            return off + n * struct.calcsize("<" + SCALAR[et])
        return off + struct.calcsize("<" + SCALAR[t])

    for _ in range(n_kv):
        (kl,) = struct.unpack_from("<Q", b, off)
        key = b[off + 8 : off + 8 + kl].decode()
        off += 8 + kl
        (t,) = struct.unpack_from("<I", b, off)
        off += 4
        end = value_end(t, off)
        kvs.append((key, t, b[off:end]))
        off = end
    return version, kvs


def gguf_string(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def write_gguf(path, kvs, tensors, version=3, alignment=32):
    """tensors: (name, ggml type, dims (ggml order), data bytes)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)))
    for key, t, raw in kvs:
        out += gguf_string(key) + struct.pack("<I", t) + raw
    offset = 0
    for name, gtype, dims, data in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", gtype, offset)
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    for _, _, _, data in tensors:
        out += data + b"\0" * (-len(data) % alignment)
    open(path, "wb").write(out)


TINY_TENSORS = [
    ("token_embd.weight", 0, [4, 2], struct.pack("<8f", *[0.5 * i for i in range(8)])),  # f32
    ("output_norm.weight", 1, [4], struct.pack("<4e", 1.0, 0.5, -2.0, 0.25)),  # f16
    ("blk.0.attn_q.weight", 8, [32, 1], struct.pack("<e", 0.1) + bytes(range(32))),  # q8_0
]


def gguf_seeds(mlxr_bin):
    d = os.path.join(CORPUS, "fuzz_gguf")
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for fx in ["llama_tied", "llama3_rope", "qwen2", "qwen3"]:
            g = os.path.join(tmp, fx + ".gguf")
            subprocess.run([os.path.join(mlxr_bin, "mlxr"), "convert", os.path.join(FIXTURES, fx), "-o", g,
                            "--type", "f32"], check=True, stdout=subprocess.DEVNULL)
            version, kvs = read_gguf_kv(g)
            write_gguf(os.path.join(d, fx + ".gguf"), kvs, TINY_TENSORS, version)
            # as llama.cpp writes it: no tokenizer.mlxr.* pipeline, only tokenizer.ggml.pre's name
            kvs = [kv for kv in kvs if not kv[0].startswith("tokenizer.mlxr.")]
            write_gguf(os.path.join(d, fx + "_llamacpp.gguf"), kvs, TINY_TENSORS, version)
    write_gguf(os.path.join(d, "minimal.gguf"), [], TINY_TENSORS[:1])
    kv = [("general.architecture", STRING, gguf_string("llama")),
          ("general.alignment", U32, struct.pack("<I", 64)),
          ("llama.context_length", U32, struct.pack("<I", 128)),
          ("tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", STRING, 3) + b"".join(gguf_string(s) for s in ["<s>", "a", "b"])),
          ("tokenizer.ggml.scores", ARRAY, struct.pack("<IQ", F32, 3) + struct.pack("<3f", 0, -1, -2)),
          ("tokenizer.ggml.model", STRING, gguf_string("llama"))]
    write_gguf(os.path.join(d, "v2_aligned64.gguf"), kv, TINY_TENSORS, version=2, alignment=64)


def write_safetensors(path, header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)


ST_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "U32": 4, "I64": 8, "U8": 1}


def safetensors_seeds():
    d = os.path.join(CORPUS, "fuzz_safetensors")
    os.makedirs(d, exist_ok=True)
    for fx in ["llama_untied", "qwen3"]:
        b = open(os.path.join(FIXTURES, fx, "model.safetensors"), "rb").read()
        (n,) = struct.unpack_from("<Q", b, 0)
        src = json.loads(b[8 : 8 + n])
        header, data = {}, bytearray()
        for name, info in src.items():
            if name == "__metadata__":
                header[name] = info
                continue
            shape = [min(s, 2) for s in info["shape"]]
            size = ST_SIZES[info["dtype"]]
            for s in shape:
                size *= s
            header[name] = {"dtype": info["dtype"], "shape": shape, "data_offsets": [len(data), len(data) + size]}
            data += bytes((len(data) + i) % 251 for i in range(size))
        write_safetensors(os.path.join(d, fx + ".safetensors"), header, bytes(data))
    # MLX affine 4-bit: weight [out][in * 4 / 32] u32, scales and biases [out][in / group] f16
    header = {"__metadata__": {"format": "mlx"},
              "model.layers.0.mlp.up_proj.weight": {"dtype": "U32", "shape": [2, 8], "data_offsets": [0, 64]},
              "model.layers.0.mlp.up_proj.scales": {"dtype": "F16", "shape": [2, 1], "data_offsets": [64, 68]},
              "model.layers.0.mlp.up_proj.biases": {"dtype": "F16", "shape": [2, 1], "data_offsets": [68, 72]}}
    write_safetensors(os.path.join(d, "mlx_q4.safetensors"), header, bytes(range(64)) + struct.pack("<4e", 0.5, 0.25, -1, 1))
    write_safetensors(os.path.join(d, "empty.safetensors"), {}, b"")


if __name__ == "__main__":
    gguf_seeds(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bin"))
    safetensors_seeds()
