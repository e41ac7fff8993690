#!/usr/bin/env python3
"""train_tokenizer.py: the byte-level BPE tokenizer of MLXR's own models (issue 12), written as a
Hugging Face tokenizer.json + tokenizer_config.json + special_tokens_map.json.

    python3 tools/train/train_tokenizer.py --corpus .devcarry/train/corpus --out DIR
        [--vocab-size 8192] [--backend auto|hf|python] [--max-mb N]

The tokenizer (what MLXR's core/runtime/tokenizer and tools/convert_tokenizer.c read; GPT-2's
byte-level scheme):
  - ids 0..6 the special tokens SPECIALS (<|bos|> <|eos|> <|pad|> <|system|> <|user|>
    <|assistant|> <|end|>), ids 7..262 the 256 bytes in byte order (GPT-2's byte->unicode map),
    then one token per merge in merge order; vocabulary --vocab-size in all (4096..8192).
  - pre_tokenizer ByteLevel(add_prefix_space=false, use_regex=true): GPT-2's split regex, then
    bytes mapped to GPT-2's alphabet; decoder ByteLevel; no normalizer.
  - post_processor TemplateProcessing "<|bos|> $A": encoding a text prepends <|bos|>, as the
    models are trained (every document is <|bos|> text <|eos|>).
  - chat template (our own; tokenizer_config.json "chat_template"):
        <|bos|><|system|>\nYou are ...<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n
    roles system, user, assistant only; an assistant turn ends with <|end|>, which is also an end
    of generation (generation_config.json of the models lists <|eos|> and <|end|>).

Backends (merges differ in ties only; the written files have the same form):
  hf      the `tokenizers` package's BpeTrainer (fast, Rust; what the device machine runs);
  python  a pure-Python BPE trainer (heap of pair counts, index of words per pair), slower: use
          --max-mb to train on the first N MB of the training split (here, for testing; it is how
          the files were checked against MLXR's loader on a machine without `tokenizers`);
  auto    hf when `tokenizers` imports, else python.
Training text: the documents of CORPUS/train.jsonl.gz (made by corpus.py), each as one text.
Pre-tokenized words are counted once (a word's count weighs its pairs).

After writing, it reports tokens per byte of the validation split (encoded by the written
tokenizer through `tokenizers` when present, else by this file's own encoder on a sample).
"""
import argparse
import gzip
import heapq
import json
import os
import re
import sys
import time

SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
BOS, EOS, PAD, END = "<|bos|>", "<|eos|>", "<|pad|>", "<|end|>"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles are system, user and assistant') }}"
    "{%- endif %}"
    "{{ '<|' + message['role'] + '|>\\n' + (message['content'] | trim) + '<|end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}{%- endif %}"
)

# GPT-2's split regex, as ByteLevel(use_regex=true) applies it, with Python re's classes standing
# in for \p{L} and \p{N} (only the trainer's word counts use this; encoding uses the real one).
GPT2_SPLIT_PY = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


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


def read_docs(corpus, split, max_bytes=0):
    n = 0
    with gzip.open(os.path.join(corpus, f"{split}.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            yield text
            n += len(text.encode("utf-8"))
            if max_bytes and n >= max_bytes:
                return


def train_python(docs, n_merges):
    """BPE over word counts: a max-heap of (count, pair) with stale entries skipped, an index from
    each pair to the words holding it, so a merge touches only those words. Ties: the pair that
    sorts last (deterministic). Returns the merges in order."""
    enc = bytes_to_unicode()
    freq = {}
    for text in docs:
        for piece in GPT2_SPLIT_PY.findall(text):
            freq[piece] = freq.get(piece, 0) + 1
    words = [[[enc[b] for b in w.encode("utf-8")], c] for w, c in freq.items()]
    counts, where = {}, {}
    for i, (syms, c) in enumerate(words):
        for p in zip(syms, syms[1:]):
            counts[p] = counts.get(p, 0) + c
            where.setdefault(p, set()).add(i)
    heap = [(-c, tuple(-ord(ch) for ch in a + "\0" + b), p) for p, c in counts.items() for a, b in [p]]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges and heap:
        negc, _, p = heapq.heappop(heap)
        if counts.get(p, 0) != -negc or -negc <= 0:
            continue  # stale entry
        a, b = p
        ab = a + b
        merges.append(p)
        changed = {}
        for i in where.pop(p, ()):
            syms, c = words[i]
            out, j = [], 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == a and syms[j + 1] == b:
                    out.append(ab)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            for q in zip(syms, syms[1:]):
                counts[q] -= c
                changed[q] = True
            for q in zip(out, out[1:]):
                counts[q] = counts.get(q, 0) + c
                where.setdefault(q, set()).add(i)
                changed[q] = True
            words[i][0] = out
        counts.pop(p, None)
        for q in changed:
            c = counts.get(q, 0)
            if c > 0 and q != p:
                heapq.heappush(heap, (-c, tuple(-ord(ch) for ch in q[0] + "\0" + q[1]), q))
    return merges


def train_hf(docs, vocab_size):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(docs, trainer=trainer)
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]


def build_vocab(merges, vocab_size):
    enc = bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for b in range(256):
        vocab[enc[b]] = len(vocab)
    kept = []
    for a, b in merges:
        if len(vocab) >= vocab_size:
            break
        if a not in vocab or b not in vocab:
            raise RuntimeError(f"merge {a!r} {b!r} uses a symbol not in the vocabulary")
        kept.append((a, b))
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    return vocab, kept


def tokenizer_json(vocab, merges):
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    bos = vocab[BOS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [bos], "tokens": [BOS]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


def tokenizer_config(max_len):
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {str(i): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True} for i, s in enumerate(SPECIALS)},
    }


def encode_python(text, vocab, ranks, enc):
    """Reference encoder for the report when `tokenizers` is missing (no special-token matching)."""
    ids = [vocab[BOS]]
    for piece in GPT2_SPLIT_PY.findall(text):
        syms = [enc[b] for b in piece.encode("utf-8")]
        while len(syms) > 1:
            best = min(range(len(syms) - 1), key=lambda i: ranks.get((syms[i], syms[i + 1]), 1 << 30))
            if (syms[best], syms[best + 1]) not in ranks:
                break
            syms[best:best + 2] = [syms[best] + syms[best + 1]]
        ids.extend(vocab[s] for s in syms)
    return ids


def have_tokenizers():
    try:
        import tokenizers  # noqa: F401
        return True
    except ImportError:
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=".devcarry/train/corpus", help="corpus.py's output (default %(default)s)")
    ap.add_argument("--out", required=True, help="output folder for tokenizer.json and tokenizer_config.json")
    ap.add_argument("--vocab-size", type=int, default=8192, help="4096..8192 (default %(default)s)")
    ap.add_argument("--backend", choices=["auto", "hf", "python"], default="auto")
    ap.add_argument("--max-mb", type=float, default=0, help="train on the first N MB of train only (0: all)")
    ap.add_argument("--max-len", type=int, default=4096, help="model_max_length (default %(default)s)")
    args = ap.parse_args(argv)
    if not 4096 <= args.vocab_size <= 8192:
        ap.error("--vocab-size must be in 4096..8192 (issue 12)")
    for split in ("train", "valid"):
        if not os.path.isfile(os.path.join(args.corpus, f"{split}.jsonl.gz")):
            ap.error(f"{args.corpus}/{split}.jsonl.gz not found: run tools/train/corpus.py first")
    backend = args.backend
    if backend == "auto":
        backend = "hf" if have_tokenizers() else "python"
    if backend == "hf" and not have_tokenizers():
        ap.error("--backend hf: the `tokenizers` package is not installed here")

    t0 = time.time()
    docs = read_docs(args.corpus, "train", int(args.max_mb * 1e6))
    n_merges = args.vocab_size - len(SPECIALS) - 256
    merges = train_hf(docs, args.vocab_size) if backend == "hf" else train_python(docs, n_merges)
    vocab, merges = build_vocab(merges, args.vocab_size)
    t_train = time.time() - t0
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False, indent=1)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(args.max_len), f, ensure_ascii=False, indent=2)
    with open(os.path.join(args.out, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": BOS, "eos_token": EOS, "pad_token": PAD}, f, indent=2)

    # Report: tokens per byte on the validation split (a sample with the Python encoder).
    valid = list(read_docs(args.corpus, "valid", 0 if backend == "hf" else 200_000))
    n_bytes = sum(len(t.encode("utf-8")) for t in valid)
    if have_tokenizers():
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
        n_tok = sum(len(e.ids) for e in tok.encode_batch(valid))
        sample = "Once upon a time, the King's 3 dogs ran; \"why?\"  Done.\n\n<|user|>"
        back = tok.decode(tok.encode(sample).ids, skip_special_tokens=False)
        if back != BOS + sample:
            raise SystemExit(f"train_tokenizer: round trip failed: {back!r}")
        how = "tokenizers"
    else:
        ranks = {p: i for i, p in enumerate(merges)}
        enc = bytes_to_unicode()
        n_tok = sum(len(encode_python(t, vocab, ranks, enc)) for t in valid)
        how = "this file's encoder"
    print(f"train_tokenizer: backend {backend}, {len(vocab)} tokens ({len(merges)} merges), trained in "
          f"{t_train:.1f} s; validation ({n_bytes / 1e6:.2f} MB, {how}): {n_tok} tokens, "
          f"{n_bytes / max(n_tok, 1):.2f} bytes/token; wrote {args.out}/tokenizer.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
