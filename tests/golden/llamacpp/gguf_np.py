"""gguf_np.py: a small, independent GGUF reader and block dequantizer in numpy, for the llama.cpp
golden tests (tests/golden/test_llamacpp_compat.sh).

It lets a test see what a GGUF file really holds (which block type each tensor has after
llama.cpp's quantizer ran) and turn any supported tensor back into float64, written from the
block layouts of ggml (ggml/src/ggml-common.h, dequantize_row_* in ggml/src/ggml-quants.c), not
from MLXR's C code. It shares nothing with MLXR.

    python3 gguf_np.py types FILE.gguf          # prints "name type ne0 ne1 ..." per tensor
    python3 gguf_np.py dequant FILE.gguf NAME   # prints shape, min, max, mean of one tensor

Library: read(path) -> (kv: dict, tensors: dict name -> Tensor); Tensor.array() -> float64
ndarray in numpy order (ggml ne reversed, so a [in, out] ggml weight comes back [out, in]).
Supported types: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K IQ4_NL IQ4_XS.
"""
import struct
import sys

import numpy as np

TYPE_NAMES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0",
              10: "q2_K", 11: "q3_K", 12: "q4_K", 13: "q5_K", 14: "q6_K", 20: "iq4_nl",
              23: "iq4_xs", 30: "bf16"}
# (elements per block, bytes per block)
BLOCK = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
         8: (32, 34), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
         14: (256, 210), 20: (32, 18), 23: (256, 136)}
IQ4_TABLE = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                     dtype=np.float64)


class Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("Q")
        s = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def value(self, t):
        scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
                  11: "q", 12: "d"}
        if t in scalar:
            return self.take(scalar[t])
        if t == 8:
            return self.string()
        if t == 9:
            et = self.take("I")
            n = self.take("Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"bad GGUF value type {t}")


class Tensor:
    def __init__(self, name, ggml_type, ne, data):
        self.name = name
        self.type = ggml_type          # ggml type id
        self.ne = ne                   # ggml order, ne[0] fastest
        self.data = data               # raw bytes (memoryview into the file)

    @property
    def type_name(self):
        return TYPE_NAMES.get(self.type, str(self.type))

    def array(self):
        """float64 ndarray, shape = reversed(ne)."""
        n = 1
        for d in self.ne:
            n *= d
        flat = dequantize(self.type, self.data, n)
        return flat.reshape(tuple(reversed(self.ne)))


def read(path):
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    r = Reader(buf)
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    r.pos = 4
    version = r.take("I")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version}")
    n_tensors = r.take("Q")
    n_kv = r.take("Q")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.take("I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.take("I")
        ne = [r.take("Q") for _ in range(nd)]
        t = r.take("I")
        off = r.take("Q")
        infos.append((name, ne, t, off))
    align = kv.get("general.alignment", 32)
    base = (r.pos + align - 1) // align * align
    tensors = {}
    for name, ne, t, off in infos:
        if t not in BLOCK:
            raise ValueError(f"{name}: unsupported ggml type {t}")
        bs, ts = BLOCK[t]
        n = 1
        for d in ne:
            n *= d
        size = n // bs * ts
        tensors[name] = Tensor(name, t, ne, buf[base + off:base + off + size])
    return kv, tensors


def _f16(b):
    return np.frombuffer(b.tobytes(), dtype="<f2").astype(np.float64)


def _scale_min_k4(scales):
    """scales: [nb, 12] uint8 -> (sc [nb, 8], m [nb, 8]) per get_scale_min_k4."""
    s = scales.astype(np.int64)
    sc = np.empty((s.shape[0], 8), dtype=np.int64)
    m = np.empty((s.shape[0], 8), dtype=np.int64)
    for j in range(8):
        if j < 4:
            sc[:, j] = s[:, j] & 63
            m[:, j] = s[:, j + 4] & 63
        else:
            sc[:, j] = (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4)
            m[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
    return sc.astype(np.float64), m.astype(np.float64)


def dequantize(t, data, n):
    raw = np.frombuffer(data, dtype=np.uint8)
    if t == 0:
        return np.frombuffer(data, dtype="<f4").astype(np.float64)
    if t == 1:
        return np.frombuffer(data, dtype="<f2").astype(np.float64)
    if t == 30:
        u = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    bs, ts = BLOCK[t]
    nb = n // bs
    b = raw.reshape(nb, ts)
    if t in (2, 3, 6, 7, 20):  # 32-element blocks with nibbles: elem j low, elem j+16 high
        d = _f16(b[:, 0:2])[:, None]
        if t == 2 or t == 20:
            qs = b[:, 2:18]
        elif t == 3:
            m = _f16(b[:, 2:4])[:, None]
            qs = b[:, 4:20]
        elif t == 6:
            qh = b[:, 2:6].copy().view("<u4")[:, 0].astype(np.int64)
            qs = b[:, 6:22]
        else:
            m = _f16(b[:, 2:4])[:, None]
            qh = b[:, 4:8].copy().view("<u4")[:, 0].astype(np.int64)
            qs = b[:, 8:24]
        q = np.concatenate([qs & 0xF, qs >> 4], axis=1).astype(np.int64)  # [nb, 32]
        if t in (6, 7):
            bits = (qh[:, None] >> np.arange(32)[None, :]) & 1
            q = q | (bits << 4)
        if t == 2:
            return (d * (q - 8)).reshape(-1)
        if t == 20:
            return (d * IQ4_TABLE[q]).reshape(-1)
        if t == 3:
            return (d * q + m).reshape(-1)
        if t == 6:
            return (d * (q - 16)).reshape(-1)
        return (d * q + m).reshape(-1)
    if t == 8:
        d = _f16(b[:, 0:2])[:, None]
        q = b[:, 2:34].copy().view(np.int8).astype(np.float64)
        return (d * q).reshape(-1)
    if t in (12, 13):  # Q4_K, Q5_K: 8 sub-blocks of 32, 6-bit scales and mins
        d = _f16(b[:, 0:2])[:, None]
        dmin = _f16(b[:, 2:4])[:, None]
        sc, mn = _scale_min_k4(b[:, 4:16])
        if t == 12:
            qs = b[:, 16:144].astype(np.int64)
            qh = None
        else:
            qh = b[:, 16:48].astype(np.int64)
            qs = b[:, 48:176].astype(np.int64)
        out = np.empty((nb, 256))
        for j in range(4):  # each 64 elements: 32 low nibbles then 32 high nibbles of qs[32j:32j+32]
            chunk = qs[:, 32 * j:32 * j + 32]
            lo = chunk & 0xF
            hi = chunk >> 4
            if qh is not None:
                lo = lo + ((qh >> (2 * j)) & 1) * 16
                hi = hi + ((qh >> (2 * j + 1)) & 1) * 16
            out[:, 64 * j:64 * j + 32] = d * sc[:, 2 * j:2 * j + 1] * lo - dmin * mn[:, 2 * j:2 * j + 1]
            out[:, 64 * j + 32:64 * j + 64] = (d * sc[:, 2 * j + 1:2 * j + 2] * hi
                                               - dmin * mn[:, 2 * j + 1:2 * j + 2])
        return out.reshape(-1)
    if t == 14:  # Q6_K
        ql = b[:, 0:128].astype(np.int64)
        qh = b[:, 128:192].astype(np.int64)
        sc = b[:, 192:208].copy().view(np.int8).astype(np.float64)
        d = _f16(b[:, 208:210])[:, None]
        out = np.empty((nb, 256))
        for half in range(2):
            l_ = ql[:, 64 * half:64 * half + 64]
            h_ = qh[:, 32 * half:32 * half + 32]
            s_ = sc[:, 8 * half:8 * half + 8]
            q1 = ((l_[:, 0:32] & 0xF) | (((h_ >> 0) & 3) << 4)) - 32
            q2 = ((l_[:, 32:64] & 0xF) | (((h_ >> 2) & 3) << 4)) - 32
            q3 = ((l_[:, 0:32] >> 4) | (((h_ >> 4) & 3) << 4)) - 32
            q4 = ((l_[:, 32:64] >> 4) | (((h_ >> 6) & 3) << 4)) - 32
            base = 128 * half
            for k, q in enumerate((q1, q2, q3, q4)):
                # elements l (l < 16 -> scale is, else is+1), scales step by 2 per quarter
                scl = np.repeat(s_[:, 2 * k:2 * k + 2], 16, axis=1)
                out[:, base + 32 * k:base + 32 * k + 32] = d * scl * q
        return out.reshape(-1)
    if t == 23:  # IQ4_XS
        d = _f16(b[:, 0:2])[:, None]
        sh = b[:, 2:4].copy().view("<u2")[:, 0].astype(np.int64)
        sl = b[:, 4:8].astype(np.int64)
        qs = b[:, 8:136].astype(np.int64)
        out = np.empty((nb, 256))
        for ib in range(8):
            ls = ((sl[:, ib // 2] >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4)
            dl = d[:, 0] * (ls - 32)
            q = qs[:, 16 * ib:16 * ib + 16]
            out[:, 32 * ib:32 * ib + 16] = dl[:, None] * IQ4_TABLE[q & 0xF]
            out[:, 32 * ib + 16:32 * ib + 32] = dl[:, None] * IQ4_TABLE[q >> 4]
        return out.reshape(-1)
    raise ValueError(f"dequantize: unsupported ggml type {t} ({TYPE_NAMES.get(t, '?')})")


def main(argv):
    if len(argv) >= 3 and argv[1] == "types":
        _, tensors = read(argv[2])
        for t in tensors.values():
            print(t.name, t.type_name, *t.ne)
        return 0
    if len(argv) == 4 and argv[1] == "dequant":
        _, tensors = read(argv[2])
        a = tensors[argv[3]].array()
        print(a.shape, a.min(), a.max(), a.mean())
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
