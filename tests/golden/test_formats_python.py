#!/usr/bin/env python3
"""test_formats_python.py: GGUF cross-checks against references that share no code with MLXR.

1. Our writer -> independent readers. `test_gguf --write-sample F` writes a fixed file with
   MLXR's writer. It is parsed here by a small GGUF parser written from the spec (ggml
   docs/gguf.md) and every key, type, value, tensor info, offset, alignment padding and tensor
   byte is compared with the content restated below. If the llama.cpp tool is built
   (scripts/fetch_test_deps.sh -> tests/.cache/llamacpp/bin/llamacpp-tool), llama.cpp's own
   gguf reader must also accept the file, and its dequantization of each tensor must equal the
   values computed here with numpy.
2. Independent writer -> our reader. A GGUF v2 file (all 13 value types, nested arrays, a bool
   array, alignment 64, three tensors) is written here from the spec with struct/numpy;
   llama.cpp (if built) must accept it, and `test_gguf --dump F` (MLXR's reader) must report
   exactly the keys, values, tensor infos and bytes written.

Run from the repository root with MLXR_BIN set to the build's bin directory. Fails if test_gguf
is not built; without the llama.cpp tool the llama.cpp checks are reported as skipped (exit 77,
tests/golden/suite.py; a failure under MLXR_REQUIRE_ALL=1).
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

import suite  # tests/golden/suite.py: the skip protocol

SRC = os.environ.get("MLXR_SRC", os.getcwd())
BIN = os.environ.get("MLXR_BIN", os.path.join(SRC, "build", "bin"))
TEST_GGUF = os.path.join(BIN, "test_gguf")
TOOL = os.path.join(SRC, "tests", ".cache", "llamacpp", "bin", "llamacpp-tool")

FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
        print("FAIL:", msg)


# ---- a GGUF parser written from the spec ----
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q",
          12: "d"}


class Parser:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize("<" + fmt)
        return v

    def string(self):
        n = self.take("Q")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b.decode("utf-8")

    def value(self, t):
        if t in SCALAR:
            v = self.take(SCALAR[t])
            return bool(v) if t == 7 else v
        if t == 8:
            return self.string()
        assert t == 9, t
        et, n = self.take("I"), self.take("Q")
        return (et, [self.value(et) for _ in range(n)])


def parse_gguf(buf):
    p = Parser(buf)
    check(buf[:4] == b"GGUF", "magic")
    p.pos = 4
    version, n_t, n_kv = p.take("I"), p.take("Q"), p.take("Q")
    kv = {}
    for _ in range(n_kv):
        k = p.string()
        t = p.take("I")
        kv[k] = (t, p.value(t))
    align = kv.get("general.alignment", (4, 32))[1]
    tensors = []
    for _ in range(n_t):
        name = p.string()
        nd = p.take("I")
        ne = [p.take("Q") for _ in range(nd)]
        tensors.append((name, ne, p.take("I"), p.take("Q")))
    data_start = (p.pos + align - 1) // align * align
    check(all(b == 0 for b in buf[p.pos:data_start]), "header padding is zeros")
    return version, kv, tensors, data_start, align


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


# ---- 1. our writer -> spec parser and llama.cpp ----
def sample_expected():
    f32 = np.arange(12, dtype=np.float32) * np.float32(0.5) - np.float32(3.0)
    f16 = (0x3C00 + np.arange(16)).astype("<u2")
    q8 = bytearray()
    q8_values = []
    for d_bits, d in ((0x3800, 0.5), (0x4000, 2.0)):
        q8 += struct.pack("<H", d_bits) + bytes((j - 16) & 0xFF for j in range(32))
        q8_values += [d * (j - 16) for j in range(32)]
    return {
        "t.f32": (0, [4, 3], f32.tobytes(), f32.astype(np.float64)),
        "t.f16": (1, [8, 2], f16.tobytes(), f16.view("<f2").astype(np.float64)),
        "t.q8_0": (8, [64], bytes(q8), np.array(q8_values)),
    }


SAMPLE_KV = {
    "general.architecture": (8, "llama"), "s.u8": (0, 200), "s.i8": (1, -100),
    "s.u16": (2, 60000), "s.i16": (3, -30000), "s.u32": (4, 4000000000),
    "s.i32": (5, -2000000000), "s.f32": (6, 1.5), "s.bool": (7, True), "s.str": (8, "héllo"),
    "s.u64": (10, 2**63 + 5), "s.i64": (11, -(2**62) - 3), "s.f64": (12, -0.1),
    "a.i32": (9, (5, [-1, 0, 7])), "a.str": (9, (8, ["<s>", "", "\u2581the"])),
    "general.alignment": (4, 64),
}


def llama_dequant(path, name, tmp):
    out = os.path.join(tmp, "deq.f32")
    r = subprocess.run([TOOL, "dequantize", path, name, out], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return np.fromfile(out, dtype="<f4").astype(np.float64), ""


def check_our_writer(tmp):
    path = os.path.join(tmp, "ours.gguf")
    r = subprocess.run([TEST_GGUF, "--write-sample", path], capture_output=True, text=True)
    check(r.returncode == 0, "test_gguf --write-sample: " + r.stderr)
    if r.returncode:
        return
    buf = open(path, "rb").read()
    version, kv, tensors, data_start, align = parse_gguf(buf)
    check(version == 3, "writer version %d" % version)
    check(list(kv) == list(SAMPLE_KV), "key order %s" % list(kv))
    for k, v in SAMPLE_KV.items():
        check(kv.get(k) == v, "key %s: got %r want %r" % (k, kv.get(k), v))
    check(align == 64 and data_start % 64 == 0, "alignment")
    exp = sample_expected()
    offset = 0
    check([t[0] for t in tensors] == list(exp), "tensor order")
    for name, ne, ttype, off in tensors:
        etype, ene, ebytes, evals = exp[name]
        check(ttype == etype and ne == ene, "%s: type %d ne %s" % (name, ttype, ne))
        check(off == offset, "%s: offset %d, want %d" % (name, off, offset))
        check(buf[data_start + off:data_start + off + len(ebytes)] == ebytes, name + " bytes")
        pad = buf[data_start + off + len(ebytes):data_start + off + (len(ebytes) + 63) // 64 * 64]
        check(all(b == 0 for b in pad), name + " padding")
        offset += (len(ebytes) + 63) // 64 * 64
    check(len(buf) == data_start + offset, "file size %d, want %d" % (len(buf), data_start + offset))
    if os.access(TOOL, os.X_OK):
        # This llama.cpp build has no f32 to_float; reading the f16 and q8_0 tensors still makes
        # gguf_init_from_file validate the whole file.
        for name, (_, _, _, evals) in exp.items():
            if name == "t.f32":
                continue
            got, err = llama_dequant(path, name, tmp)
            check(got is not None, "llama.cpp could not read %s: %s" % (name, err))
            if got is not None:
                check(got.shape == evals.shape and np.array_equal(got, evals),
                      "llama.cpp dequant of %s differs" % name)


# ---- 2. spec writer -> our reader ----
def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def enc_value(t, v):
    if t in SCALAR:
        return struct.pack("<" + SCALAR[t], int(v) if t == 7 else v)
    if t == 8:
        return enc_str(v)
    et, items = v
    return struct.pack("<IQ", et, len(items)) + b"".join(enc_value(et, x) for x in items)


def check_our_reader(tmp):
    kvs = [
        ("general.architecture", 8, "qwen3"), ("general.alignment", 4, 64),
        ("k.u8", 0, 255), ("k.i8", 1, -128), ("k.u16", 2, 65535), ("k.i16", 3, -32768),
        ("k.u32", 4, 2**32 - 1), ("k.i32", 5, -(2**31)), ("k.f32", 6, -2.25),
        ("k.bool", 7, False), ("k.str", 8, "tab\tquote\"\u00e9\u4e2d"), ("k.u64", 10, 2**64 - 1),
        ("k.i64", 11, -(2**63)), ("k.f64", 12, math.pi),
        ("k.arr_f32", 9, (6, [0.5, -1.0, 3.0e-8])), ("k.arr_bool", 9, (7, [True, False, True])),
        ("k.arr_u64", 9, (10, [0, 2**64 - 1])), ("k.arr_f64", 9, (12, [math.e])),
        ("k.arr_empty", 9, (4, [])), ("k.arr_str", 9, (8, ["a", "", "bc"])),
        ("k.nested", 9, (9, [(5, [1, 2]), (5, [3])])),
    ]
    rng = np.random.default_rng(1234)
    t_f32 = rng.standard_normal(6).astype("<f4")
    t_f16 = rng.standard_normal(16).astype("<f2")
    t_q8 = struct.pack("<H", 0x3C00) + bytes(rng.integers(0, 256, 32, dtype=np.uint8))
    tensors = [("w.f32", [3, 2], 0, t_f32.tobytes()), ("w.f16", [16], 1, t_f16.tobytes()),
               ("w.q8_0", [32], 8, t_q8)]
    def build(kv_list):
        hdr = b"GGUF" + struct.pack("<IQQ", 2, len(tensors), len(kv_list))
        for k, t, v in kv_list:
            hdr += enc_str(k) + struct.pack("<I", t) + enc_value(t, v)
        offsets, off = [], 0
        for name, ne, t, data in tensors:
            hdr += enc_str(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
            hdr += struct.pack("<IQ", t, off)
            offsets.append(off)
            off += (len(data) + 63) // 64 * 64
        body = bytearray(hdr + bytes(-len(hdr) % 64))
        for name, ne, t, data in tensors:
            body += data + bytes(-len(data) % 64)
        return bytes(body), offsets

    if os.access(TOOL, os.X_OK):
        # llama.cpp refuses nested arrays, so it checks this writer on a file without them.
        body, _ = build([x for x in kvs if x[0] != "k.nested"])
        path = os.path.join(tmp, "spec_flat.gguf")
        open(path, "wb").write(body)
        got, err = llama_dequant(path, "w.f16", tmp)
        check(got is not None and np.array_equal(got, t_f16.astype(np.float64)),
              "llama.cpp rejects or misreads the spec-written file: " + err)
    body, offsets = build(kvs)
    path = os.path.join(tmp, "spec.gguf")
    open(path, "wb").write(body)
    r = subprocess.run([TEST_GGUF, "--dump", path], capture_output=True, text=True)
    check(r.returncode == 0, "test_gguf --dump: " + r.stderr)
    if r.returncode:
        return
    d = json.loads(r.stdout)
    check(d["version"] == 2 and d["alignment"] == 64, "version/alignment %r" % d)
    check(list(d["kv"]) == [k for k, _, _ in kvs], "key order")
    for k, t, v in kvs:
        got = d["kv"].get(k)
        if t == 9:
            et, items = v
            if et == 9:
                items = []  # nested arrays: the dump gives element type and count only
            elif et == 6:
                items = [float(np.float32(x)) for x in items]
            want = [9, [et, items, len(v[1])]]
        elif t == 6:
            want = [6, float(np.float32(v))]
        else:
            want = [t, v]
        check(got == want, "%s: got %r want %r" % (k, got, want))
    check(len(d["tensors"]) == len(tensors), "tensor count")
    for (name, ne, t, data), o, got in zip(tensors, offsets, d["tensors"]):
        want = [name, t, ne, o, len(data), data.hex()]
        check(got == want, "tensor %s: got %r" % (name, got[:5]))


def main():
    if not os.access(TEST_GGUF, os.X_OK):
        print("FAIL: %s not built (build the tree first)" % TEST_GGUF)
        return 1
    if not os.access(TOOL, os.X_OK):
        suite.missing("%s not built (scripts/fetch_test_deps.sh): the llama.cpp cross-checks did not run" % TOOL)
    with tempfile.TemporaryDirectory() as tmp:
        check_our_writer(tmp)
        check_our_reader(tmp)
    if FAILURES:
        print("test_formats_python: %d failure(s)" % len(FAILURES))
        return 1
    print("test_formats_python: ok")
    return suite.exit_status(0)


if __name__ == "__main__":
    sys.exit(main())
