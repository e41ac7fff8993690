#!/usr/bin/env python3
"""make_random_model.py: write a random-weight Hugging Face model directory (numpy; torch optional).

The default is a small Llama (LlamaForCausalLM: hidden 256, 4 layers, 4 heads, 2 KV heads,
intermediate 512) used by scripts/setup.sh as the default model, and by tests as a tiny fixture.
Options select Qwen2 / Qwen3 layouts, dtypes, tied embeddings, rope scaling, the transformers v4
or v5 config.json form and sharded checkpoints.

Files written into --out:
  config.json                      the model's hyperparameters (transformers' layout)
  model.safetensors                written by hand per the safetensors format: u64 LE header
                                   length, JSON header {name: {dtype, shape, data_offsets}},
                                   raw little-endian bytes (or model-0000i-of-0000N.safetensors
                                   shards plus model.safetensors.index.json with --shards N)
  tokenizer.json                   a real byte-level BPE tokenizer: GPT-2's byte->unicode map for
                                   the 256 byte tokens, merges learned by a small BPE trainer over
                                   the built-in text below, Llama-3 pre-tokenizer (Split on the
                                   Llama 3 regex + ByteLevel), ByteLevel decoder, special tokens
  tokenizer_config.json            bos/eos tokens and a Llama-3-style chat template
  generation_config.json           bos/eos ids

The weights are random (normal, seeded): the model says nothing sensible, but it is a real
architecture that transformers, llama.cpp and MLXR all run, which is what tests need.

Generators (--generator). numpy, the default, draws every tensor with numpy's default_rng(seed) in
state_dict order, holds them all as float32 (make_model returns them; tests read them) and then
writes the file: byte-for-byte reproducible, the reference for tests/golden. torch is for
benchmark-sized models (bench/gpu.sh: an 8B checkpoint is 16 GB of f16, minutes with numpy): each
tensor is drawn with torch.randn on the GPU (torch.cuda; the CPU when there is none) in chunks of
CHUNK_ELEMS, rounded to --dtype there, copied to the host and written straight into the safetensors
file after a header computed from the shapes alone, so the host never holds more than one chunk.
Same distributions (matrices and biases N(0, std), norms 1 + N(0, 0.1)) and layout, other numbers;
seeded, but reproducible only on the same torch version and device kind. The tokenizer and the
JSON files do not depend on the generator.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

# ----------------------------------------------------------------------------------------------
# Tokenizer

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# An ASCII approximation of the Llama 3 regex for training (Python's re has no \p{L}); the
# tokenizer.json carries the real regex, which is what tokenizers apply at run time.
TRAIN_REGEX = re.compile(r"'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\nA-Za-z0-9]?[A-Za-z]+"
                         r"|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>"]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

# Training text, written for this script (no third-party text).
CORPUS = """
The small model in this directory was made from random numbers. It has never read a book, so
anything it says is noise, but its shape is the shape of a real language model: an embedding
table, a stack of attention and feed-forward blocks, a final norm and an output projection.
Tests use it because it is quick to build, quick to run and exactly reproducible from a seed.

A tokenizer turns text into numbers. This one starts from the 256 possible byte values, so every
string can be written down, and then learns merges: pairs of pieces that often appear next to
each other become a new piece. After a few hundred merges, common words such as "the", "and",
"model", "token" and "number" are single pieces, while rare words are still spelled out in
smaller parts. The same idea, trained on far more text, is used by many large models today.

In the morning the river was quiet and grey. A boat moved slowly past the old mill, and two
children on the bridge counted the ducks: one, two, three, four, five, six, seven. Their mother
called them home for breakfast at half past seven; there was bread, butter, honey and tea.
Later that day the wind turned cold, the clouds came in from the west, and it rained until night.

Numbers appear in text too: 1, 2, 3, 10, 42, 100, 256, 1024, 2048, 65536 and 3.14159. Dates like
2024-05-17, times like 08:30 and prices like $19.99 or 7.50 EUR should all be handled. Code looks
different again: def main(): return 0; for (int i = 0; i < n; i++) { sum += x[i]; } and
print("hello, world") are all just bytes to a byte-level tokenizer.

What makes a good answer? It should be correct, clear and short. It should say what it knows,
say what it does not know, and never pretend. When someone asks a question, read it twice, think
about what they need, and then write the answer they can use. Questions about time, place,
people, things and ideas each need a different kind of care.

The engine reads the weights from the file, builds the tokenizer from the metadata, renders the
chat template, encodes the prompt, runs the forward pass for every token, samples the next token
from the logits and streams the text back. Each step is tested against an independent reference,
because a number that is almost right is still wrong.

She walked to the station, bought a ticket to the coast and sat by the window. The train passed
fields of wheat, small towns with red roofs, a castle on a hill and a long grey lake. At the end
of the line the sea was bright and loud, and the air smelled of salt. She stayed for three days,
wrote letters, walked on the beach every evening and did not think about work at all.

Water boils at one hundred degrees at sea level and freezes at zero. Light travels faster than
sound, which is why we see lightning before we hear thunder. Plants take in light, water and air
and make sugar; animals eat plants or other animals; and when they die, small living things turn
them back into soil. Everything is connected to everything else, one way or another.
"""


def bytes_to_unicode():
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) +
          list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_bpe(text, n_merges):
    """Classic BPE: count symbol pairs over pre-tokenized words (weighted by word frequency) and
    merge the most frequent pair (ties: the larger pair in string order, so it is deterministic).
    Stops at n_merges or when every word is a single symbol. Returns the merges in order."""
    enc = bytes_to_unicode()
    freq = {}
    for piece in TRAIN_REGEX.findall(text):
        word = tuple(enc[b] for b in piece.encode("utf-8"))
        freq[word] = freq.get(word, 0) + 1
    words = [[list(w), c] for w, c in freq.items()]
    merges = []
    while len(merges) < n_merges:
        pairs = {}
        for syms, c in words:
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        (a, b), _ = best
        merges.append((a, b))
        ab = a + b
        for w in words:
            syms = w[0]
            if len(syms) < 2:
                continue
            out = []
            i = 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(ab)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            w[0] = out
    return merges


def build_tokenizer(n_merges):
    """Returns (tokenizer.json dict, tokenizer_config.json dict, n_tokens, special id map)."""
    enc = bytes_to_unicode()
    vocab = {}
    for b in range(256):
        vocab[enc[b]] = len(vocab)
    merges = train_bpe(CORPUS, n_merges)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    special = {}
    added = []
    for s in SPECIAL_TOKENS:
        special[s] = len(vocab)
        vocab[s] = special[s]
        added.append({"id": special[s], "content": s, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    bos = "<|begin_of_text|>"
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated",
                 "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                 "use_regex": False},
            ],
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [special[bos]], "tokens": [bos]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [a + " " + b for a, b in merges],
        },
    }
    tok_cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                              "single_word", "special")} for t in added},
        "bos_token": bos,
        "eos_token": "<|eot_id|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return tok, tok_cfg, len(vocab), special


# ----------------------------------------------------------------------------------------------
# Safetensors

def to_dtype_bytes(arr, dtype):
    """f32 array -> (safetensors dtype name, little-endian bytes)."""
    a = np.ascontiguousarray(arr, dtype=np.float32)
    if dtype == "f32":
        return "F32", a.astype("<f4").tobytes()
    if dtype == "f16":
        return "F16", a.astype("<f2").tobytes()
    if dtype == "bf16":
        u = a.view(np.uint32).astype(np.uint64)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
        return "BF16", r.tobytes()
    raise ValueError("unknown dtype " + dtype)


def safetensors_header(entries, metadata=None):
    """entries: list of (name, dtype_name, shape, n_bytes) in file order -> the 8-byte length
    prefix plus the JSON header, padded with spaces to a multiple of 8 bytes."""
    header = {}
    off = 0
    for name, dt, shape, nbytes in entries:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    if metadata:
        header["__metadata__"] = metadata
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    return struct.pack("<Q", len(hj)) + hj


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype_name, shape, raw_bytes). Header padded to 8 bytes."""
    head = safetensors_header([(name, dt, shape, len(raw)) for name, dt, shape, raw in tensors], metadata)
    with open(path, "wb") as f:
        f.write(head)
        for _, _, _, raw in tensors:
            f.write(raw)


# ----------------------------------------------------------------------------------------------
# Model

def tensor_specs(cfg, arch):
    """(name, shape, kind) of every weight, in the order transformers' state_dict lists them.
    kind: "mat" (matrices, N(0, std)), "bias" (N(0, std)) or "norm" (1 + N(0, 0.1))."""
    H = cfg["hidden_size"]
    F = cfg["intermediate_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    V = cfg["vocab_size"]
    out = [("model.embed_tokens.weight", (V, H), "mat")]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        out.append((p + "self_attn.q_proj.weight", (nh * hd, H), "mat"))
        out.append((p + "self_attn.k_proj.weight", (nkv * hd, H), "mat"))
        out.append((p + "self_attn.v_proj.weight", (nkv * hd, H), "mat"))
        if arch == "qwen2":
            out.append((p + "self_attn.q_proj.bias", (nh * hd,), "bias"))
            out.append((p + "self_attn.k_proj.bias", (nkv * hd,), "bias"))
            out.append((p + "self_attn.v_proj.bias", (nkv * hd,), "bias"))
        if arch == "qwen3":
            out.append((p + "self_attn.q_norm.weight", (hd,), "norm"))
            out.append((p + "self_attn.k_norm.weight", (hd,), "norm"))
        out.append((p + "self_attn.o_proj.weight", (H, nh * hd), "mat"))
        out.append((p + "mlp.gate_proj.weight", (F, H), "mat"))
        out.append((p + "mlp.up_proj.weight", (F, H), "mat"))
        out.append((p + "mlp.down_proj.weight", (H, F), "mat"))
        out.append((p + "input_layernorm.weight", (H,), "norm"))
        out.append((p + "post_attention_layernorm.weight", (H,), "norm"))
    out.append(("model.norm.weight", (H,), "norm"))
    if not cfg["tie_word_embeddings"]:
        out.append(("lm_head.weight", (V, H), "mat"))
    return out


def model_tensors(cfg, arch, rng, std):
    """HF-named f32 weights drawn with numpy, in tensor_specs order (one draw per tensor, in
    that order: the files are reproducible from the seed)."""
    out = []
    for name, shape, kind in tensor_specs(cfg, arch):
        if kind == "norm":
            arr = (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            arr = (rng.standard_normal(shape) * std).astype(np.float32)
        out.append((name, arr))
    return out


# ----------------------------------------------------------------------------------------------
# torch generator (--generator torch): weights streamed from the GPU into the file

CHUNK_ELEMS = 1 << 26  # elements drawn per torch.randn call (256 MiB of float32 on the device)

ST_DTYPES = {"f32": ("F32", 4), "f16": ("F16", 2), "bf16": ("BF16", 2)}


def write_tensors_torch(out_dir, specs, dtype, std, seed, shards, meta):
    """Writes the safetensors file(s) for specs (tensor_specs) with torch-drawn weights; returns
    ({name: file name}, total bytes of tensor data). One chunk at a time lives on the host."""
    import torch
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        print("make_random_model: torch has no CUDA device here; drawing on the CPU", file=sys.stderr)
    tdt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    bits = torch.int32 if dtype == "f32" else torch.int16  # same-size integer view: numpy has no bf16
    st_name, size = ST_DTYPES[dtype]
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)

    def numel(shape):
        n = 1
        for d in shape:
            n *= d
        return n

    def write_one(f, shape, kind):
        n = numel(shape)
        for off in range(0, n, CHUNK_ELEMS):
            x = torch.randn(min(CHUNK_ELEMS, n - off), generator=gen, device=dev, dtype=torch.float32)
            x = 1.0 + 0.1 * x if kind == "norm" else x * std
            host = x.to(tdt).view(bits).cpu().numpy()  # little-endian hosts only, as the numpy path
            f.write(host.data)

    n = max(1, shards)
    groups = [specs[i * len(specs) // n:(i + 1) * len(specs) // n] for i in range(n)]
    weight_map = {}
    for i, group in enumerate(groups):
        fname = "model.safetensors" if n == 1 else "model-%05d-of-%05d.safetensors" % (i + 1, n)
        entries = [(name, st_name, shape, numel(shape) * size) for name, shape, _ in group]
        with open(os.path.join(out_dir, fname), "wb") as f:
            f.write(safetensors_header(entries, meta))
            for name, shape, kind in group:
                write_one(f, shape, kind)
                weight_map[name] = fname
    if dev == "cuda":
        torch.cuda.synchronize()
    return weight_map, sum(numel(shape) * size for _, shape, _ in specs)


def make_config(args, vocab_size, special):
    arch = args.arch
    if args.vocab_size and args.vocab_size < vocab_size:
        sys.exit("make_random_model: --vocab-size %d is below the tokenizer's %d tokens" % (args.vocab_size, vocab_size))
    hf_class = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                "qwen3": "Qwen3ForCausalLM"}[arch]
    cfg = {
        "architectures": [hf_class],
        "model_type": arch,
        "hidden_size": args.hidden,
        "intermediate_size": args.intermediate,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "num_key_value_heads": args.kv_heads,
        "max_position_embeddings": args.max_pos,
        "rms_norm_eps": 1e-5 if arch == "llama" else 1e-6,
        "vocab_size": args.vocab_size if args.vocab_size else vocab_size + args.vocab_pad,
        "tie_word_embeddings": bool(args.tie),
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "use_cache": True,
        "bos_token_id": special["<|begin_of_text|>"],
        "eos_token_id": special["<|eot_id|>"],
    }
    if arch == "llama":
        cfg.update({"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1})
    if arch == "qwen2":
        cfg.update({"use_sliding_window": False, "sliding_window": None, "max_window_layers": args.layers})
    if arch == "qwen3":
        cfg.update({"attention_bias": False, "use_sliding_window": False, "sliding_window": None})
    if args.head_dim or arch == "qwen3":
        cfg["head_dim"] = args.head_dim or args.hidden // args.heads
    rope = None
    if args.rope_scaling == "llama3":
        rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": args.rope_orig_ctx}
    elif args.rope_scaling == "linear":
        rope = {"rope_type": "linear", "factor": 2.0}
    elif args.rope_scaling == "yarn":
        rope = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": args.rope_orig_ctx,
                "beta_fast": 32.0, "beta_slow": 1.0}
    dtype_name = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[args.dtype]
    if args.config_form == "v5":
        rp = {"rope_theta": args.rope_theta, "rope_type": "default"}
        if rope:
            rp.update(rope)
        cfg["rope_parameters"] = rp
        cfg["dtype"] = dtype_name
        cfg["transformers_version"] = "5.0.0"
    else:
        cfg["rope_theta"] = args.rope_theta
        cfg["rope_scaling"] = rope
        cfg["torch_dtype"] = dtype_name
        cfg["transformers_version"] = "4.46.0"
    return cfg


def make_model(args):
    """Writes the directory; returns (config dict, [(name, float32 array)] in file order), the
    arrays only with the numpy generator (None with torch, which never holds them)."""
    os.makedirs(args.out, exist_ok=True)
    tok, tok_cfg, n_tokens, special = build_tokenizer(args.merges)
    cfg = make_config(args, n_tokens, special)
    if args.generator == "numpy":
        rng = np.random.default_rng(args.seed)
        tensors = model_tensors(cfg, args.arch, rng, args.std)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_cfg, f, ensure_ascii=False, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]}, f, indent=2)

    meta = {"format": "pt"}
    for stale in [f for f in os.listdir(args.out) if f.endswith(".safetensors") or f.endswith(".index.json")]:
        os.remove(os.path.join(args.out, stale))
    if args.generator == "torch":
        weight_map, total = write_tensors_torch(args.out, tensor_specs(cfg, args.arch), args.dtype, args.std,
                                                args.seed, args.shards, meta)
        if args.shards > 1:
            with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        return cfg, None
    raw = []
    for name, arr in tensors:
        dt, data = to_dtype_bytes(arr, args.dtype)
        raw.append((name, dt, arr.shape, data))
    if args.shards <= 1:
        write_safetensors(os.path.join(args.out, "model.safetensors"), raw, meta)
    else:
        n = args.shards
        groups = [raw[i * len(raw) // n:(i + 1) * len(raw) // n] for i in range(n)]
        weight_map = {}
        total = 0
        for i, g in enumerate(groups):
            fname = "model-%05d-of-%05d.safetensors" % (i + 1, n)
            write_safetensors(os.path.join(args.out, fname), g, meta)
            for name, _, _, data in g:
                weight_map[name] = fname
                total += len(data)
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return cfg, tensors


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Write a random-weight HF model directory.")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", choices=["llama", "qwen2", "qwen3"], default="llama")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=0, help="explicit head_dim (0: hidden/heads, implicit)")
    ap.add_argument("--max-pos", type=int, default=2048)
    ap.add_argument("--merges", type=int, default=1000, help="BPE merges to learn (at most)")
    ap.add_argument("--vocab-pad", type=int, default=0, help="config vocab_size beyond the tokenizer's tokens")
    ap.add_argument("--vocab-size", type=int, default=0,
                    help="config vocab_size in total (padding the tokenizer's tokens up to it; 0: --vocab-pad)")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    ap.add_argument("--std", type=float, default=0.05, help="std of the random weights")
    ap.add_argument("--tie", action="store_true", help="tie_word_embeddings (no lm_head)")
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--rope-scaling", choices=["none", "llama3", "linear", "yarn"], default="none")
    ap.add_argument("--rope-orig-ctx", type=int, default=8192)
    ap.add_argument("--config-form", choices=["v4", "v5"], default="v4")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--generator", choices=["numpy", "torch"], default="numpy",
                    help="numpy (default, reproducible, what tests use) or torch (on the GPU when torch "
                         "has CUDA: fast for multi-GB models; other numbers)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg, _ = make_model(args)
    print("make_random_model: wrote %s (%s, hidden %d, %d layers, vocab %d)" %
          (args.out, cfg["architectures"][0], cfg["hidden_size"], cfg["num_hidden_layers"],
           cfg["vocab_size"]), file=sys.stderr)


if __name__ == "__main__":
    main()
