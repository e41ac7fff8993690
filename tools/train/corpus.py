#!/usr/bin/env python3
"""corpus.py: the training corpus of MLXR's own small models (issue 12), from English text that
Debian packages ship under public-domain or free licenses (tools/train/SOURCES.md lists each one).

Runs on a Debian machine with network to Debian's archive (a developer's machine or CI's; the lent
GPU machines have none), with the Python standard library alone:

    python3 tools/train/corpus.py [--out .devcarry/train/corpus] [--work build-train] [--debs DIR]

1. `apt-get download` of each package of SOURCES (into WORK/debs; --debs DIR uses .debs already
   there, named as apt-get names them), `dpkg-deb -x` into WORK/x/PACKAGE. The King James Bible is
   stored in bible-kjv-text in its own compressed format: the `bible` program of the bible-kjv
   package (run from where it was extracted, not installed) prints every verse.
2. Each package's text is cut into documents: a dictionary entry (dictd's .index gives each entry's
   offset and length in the .dict.dz, which is gzip), a chapter of the Bible, a fortune cookie, a
   WordNet synset. Cleaning: dictd/GCIDE markup goes (pronunciations between backslashes, the
   source tags "[1913 Webster]", "[PJC]", "[WordNet 1.5]", cross-reference braces {...}), wrapped
   lines of a paragraph are joined (short-lined paragraphs, i.e. verse, keep their lines), tabs
   and runs of spaces become one space, three or more newlines become two; the database's own
   "00-database-*" entries and fortune's ascii-art file are skipped.
3. Exact duplicates (after cleaning; fortunes-min repeats fortunes, GCIDE repeats some entries)
   are dropped, first seen kept, in the fixed order of SOURCES.
4. Split: a document goes to validation when the first 8 bytes of SHA-256 of its text, as an
   integer, mod 1000 is below --valid-permille (default 20, i.e. 2%): deterministic, independent
   of order and of the other documents, stable when a source is added.
5. Writes OUT/train.jsonl.gz and OUT/valid.jsonl.gz (one {"src": package, "text": document} per
   line; gzip with mtime 0, so the same input gives the same bytes) and OUT/MANIFEST.txt: per
   source the package version, documents and bytes of text in each split, and the SHA-256 of each
   output file (tools/train/MANIFEST.txt is the committed copy).

Sizes are bytes of UTF-8 text of the documents (without the JSON around them).
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

# (package, kind, where in the package, license): the order is the dedupe order.
SOURCES = [
    ("bible-kjv-text", "kjv", "usr/lib/bible.data", "public domain (KJV text)"),
    ("bible-kjv", "tool", "usr/bin/bible", "GPL-2+ (program only, used to decode)"),
    ("dict-gcide", "dictd", "usr/share/dictd/gcide", "GPL-2+ (GCIDE); its Webster 1913 text is public domain"),
    ("dict-devil", "dictd", "usr/share/dictd/devil", "public domain"),
    ("dict-jargon", "dictd", "usr/share/dictd/jargon", "public domain"),
    ("wordnet-base", "wordnet", "usr/share/wordnet", "WordNet 3.0 license (BSD-like)"),
    ("fortunes", "fortune", "usr/share/games/fortunes", "BSD (fortune-mod)"),
    ("fortunes-min", "fortune", "usr/share/games/fortunes", "BSD (fortune-mod)"),
    ("fortune-anarchism", "fortune", "usr/share/games/fortunes", "public domain (BLAG)"),
    ("fortunes-debian-hints", "fortune", "usr/share/games/fortunes", "BSD-3-clause"),
]

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
SOURCE_TAG = re.compile(
    r"\s*\[(?:1913 Webster|Webster 1913 Suppl\.|WordNet 1\.5|WordNet sense \d+|PJC|Century Dict\.)"
    r"(?:\s*\+\s*(?:PJC|WordNet 1\.5|1913 Webster))*\]")
PRONUNCIATION = re.compile(r"\\[^\\\n]{1,80}\\")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def b64num(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def decode(raw):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def normalize(text):
    """Whitespace: tabs/runs of spaces -> one space (leading indentation kept for verse), no
    trailing spaces, at most one blank line in a row, no blank lines at either end."""
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.replace("\t", "    ").rstrip()
        indent = len(line) - len(line.lstrip(" "))
        body = re.sub(r" {2,}", " ", line.strip())
        lines.append(" " * min(indent, 8) + body if body else "")
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return out.strip("\n")


def reflow(text):
    """Join the wrapped lines of each paragraph (paragraphs end at blank lines); a paragraph of
    two or more lines, all shorter than 60 characters and all indented alike, is verse or a table
    and keeps its lines (a dictionary head line followed by its indented body is joined)."""
    paras = []
    for para in re.split(r"\n\s*\n", text):
        lines = [l.rstrip() for l in para.split("\n") if l.strip()]
        if not lines:
            continue
        indents = {len(l) - len(l.lstrip()) for l in lines}
        if len(lines) >= 2 and len(indents) == 1 and all(len(l.strip()) < 60 for l in lines):
            base = min(len(l) - len(l.lstrip()) for l in lines)
            paras.append("\n".join(l[base:] for l in lines))
        else:
            paras.append(" ".join(l.strip() for l in lines))
    return "\n\n".join(paras)


def clean_dict_entry(text):
    text = SOURCE_TAG.sub("", text)
    text = PRONUNCIATION.sub("", text)
    text = text.replace("{", "").replace("}", "")
    text = re.sub(r" +,", ",", text)
    return normalize(reflow(text))


def docs_dictd(root, where):
    base = os.path.join(root, where)
    with gzip.open(base + ".dict.dz", "rb") as f:
        data = f.read()
    seen = set()
    with open(base + ".index", "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
                continue
            off, ln = b64num(parts[1]), b64num(parts[2])
            if (off, ln) in seen or off + ln > len(data):
                continue
            seen.add((off, ln))
            text = clean_dict_entry(decode(data[off:off + ln]))
            if len(text) >= 16:
                yield off, text
    # dictd's index is sorted by headword; documents go out in file order


def docs_kjv(root_text, root_tool):
    exe = os.path.join(root_tool, "usr/bin/bible")
    datadir = os.path.join(root_text, "usr/lib")
    out = subprocess.run([exe, "-f", "-p", datadir, "gen1:1-rev22:21"], stdin=subprocess.DEVNULL,
                         capture_output=True, check=True).stdout
    chapters = {}
    order = []
    for line in decode(out).split("\n"):
        m = re.match(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        if not m:
            continue
        key = (m.group(1), int(m.group(2)))
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(m.group(4).strip())
    n_verses = sum(len(v) for v in chapters.values())
    if n_verses != 31102:
        raise RuntimeError(f"bible printed {n_verses} verses, expected 31102")
    for key in order:
        yield normalize("\n".join(chapters[key]))


def docs_wordnet(root, where):
    kinds = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}
    for part, name in kinds.items():
        with open(os.path.join(root, where, "data." + part), "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue
                head, gloss = line.split(" | ", 1)
                fields = head.split()
                w_cnt = int(fields[3], 16)
                words = [re.sub(r"\([a-z]+\)$", "", w).replace("_", " ") for w in fields[4:4 + 2 * w_cnt:2]]
                gloss = gloss.strip()
                if gloss:
                    yield normalize(f"{', '.join(words)} ({name}): {gloss}")


def docs_fortune(root, where):
    d = os.path.join(root, where)
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if "." in name or os.path.islink(path) or not os.path.isfile(path) or name in ("ascii-art",):
            continue
        with open(path, "rb") as f:
            text = decode(f.read())
        for cookie in re.split(r"\n%\n", "\n" + text + "\n"):
            cookie = normalize(cookie)
            if len(cookie) >= 16:
                yield cookie


def fetch(pkgs, work, debs_dir):
    dl = debs_dir or os.path.join(work, "debs")
    os.makedirs(dl, exist_ok=True)
    have = {f.split("_")[0]: f for f in os.listdir(dl) if f.endswith(".deb")}
    missing = [p for p in pkgs if p not in have]
    if missing:
        if debs_dir:
            raise SystemExit(f"corpus: no .deb for {' '.join(missing)} in {debs_dir}")
        log(f"apt-get download {' '.join(missing)}")
        subprocess.run(["apt-get", "download", *missing], cwd=dl, check=True)
        have = {f.split("_")[0]: f for f in os.listdir(dl) if f.endswith(".deb")}
    roots, versions = {}, {}
    for p in pkgs:
        deb = os.path.join(dl, have[p])
        root = os.path.join(work, "x", p)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        versions[p] = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True, text=True,
                                     check=True).stdout.strip()
        roots[p] = root
    return roots, versions


def is_valid(text, permille):
    h = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") % 1000 < permille


def write_jsonl_gz(path, docs):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        for src, text in docs:
            gz.write((json.dumps({"src": src, "text": text}, ensure_ascii=False) + "\n").encode("utf-8"))
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest(), len(buf.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".devcarry/train/corpus", help="output folder (default %(default)s)")
    ap.add_argument("--work", default="build-train", help="downloads and extracted packages (default %(default)s)")
    ap.add_argument("--debs", default=None, help="use the .deb files in this folder instead of apt-get download")
    ap.add_argument("--valid-permille", type=int, default=20, help="validation share in 1/1000 (default %(default)s)")
    ap.add_argument("--exclude", default="", help="comma-separated packages to leave out (e.g. dict-gcide: "
                    "public domain and permissive sources only, about 20.8 MB)")
    ap.add_argument("--min-mb", type=float, default=20.0, help="fail below this many MB of text (default %(default)s)")
    args = ap.parse_args(argv)
    if not 1 <= args.valid_permille <= 500:
        ap.error("--valid-permille must be in 1..500")
    for tool in ("dpkg-deb",) + (() if args.debs else ("apt-get",)):
        if shutil.which(tool) is None:
            ap.error(f"{tool} not found: run this on a Debian machine")

    exclude = {p for p in args.exclude.split(",") if p}
    unknown = exclude - {s[0] for s in SOURCES if s[1] != "tool"}
    if unknown:
        ap.error(f"--exclude: no such source {' '.join(sorted(unknown))}")
    pkgs = [s[0] for s in SOURCES]
    roots, versions = fetch(pkgs, args.work, args.debs)
    gens = {
        "bible-kjv-text": lambda: docs_kjv(roots["bible-kjv-text"], roots["bible-kjv"]),
        "dict-gcide": lambda: (t for _, t in docs_dictd(roots["dict-gcide"], "usr/share/dictd/gcide")),
        "dict-devil": lambda: (t for _, t in docs_dictd(roots["dict-devil"], "usr/share/dictd/devil")),
        "dict-jargon": lambda: (t for _, t in docs_dictd(roots["dict-jargon"], "usr/share/dictd/jargon")),
        "wordnet-base": lambda: docs_wordnet(roots["wordnet-base"], "usr/share/wordnet"),
    }
    seen = set()
    train, valid = [], []
    stats = {}  # src -> [docs_train, bytes_train, docs_valid, bytes_valid, dupes]
    for pkg, kind, where, _lic in SOURCES:
        if kind == "tool" or pkg in exclude:
            continue
        gen = gens[pkg]() if pkg in gens else docs_fortune(roots[pkg], where)
        st = stats.setdefault(pkg, [0, 0, 0, 0, 0])
        for text in gen:
            key = hashlib.sha256(text.encode("utf-8")).digest()
            if key in seen:
                st[4] += 1
                continue
            seen.add(key)
            n = len(text.encode("utf-8"))
            if is_valid(text, args.valid_permille):
                valid.append((pkg, text)); st[2] += 1; st[3] += n
            else:
                train.append((pkg, text)); st[0] += 1; st[1] += n
        log(f"{pkg:24s} {st[0] + st[2]:7d} docs {(st[1] + st[3]) / 1e6:7.2f} MB  ({st[4]} duplicates dropped)")

    os.makedirs(args.out, exist_ok=True)
    sha_t, gz_t = write_jsonl_gz(os.path.join(args.out, "train.jsonl.gz"), train)
    sha_v, gz_v = write_jsonl_gz(os.path.join(args.out, "valid.jsonl.gz"), valid)
    tot = [sum(s[i] for s in stats.values()) for i in range(5)]
    lines = ["# MLXR training corpus, made by tools/train/corpus.py (sizes: bytes of UTF-8 document text)",
             f"# valid-permille {args.valid_permille}",
             "# source version docs_train bytes_train docs_valid bytes_valid duplicates_dropped"]
    for pkg, _k, _w, _l in SOURCES:
        if pkg in stats:
            s = stats[pkg]
            lines.append(f"{pkg} {versions[pkg]} {s[0]} {s[1]} {s[2]} {s[3]} {s[4]}")
    lines.append(f"total - {tot[0]} {tot[1]} {tot[2]} {tot[3]} {tot[4]}")
    lines.append(f"file train.jsonl.gz {gz_t} sha256 {sha_t}")
    lines.append(f"file valid.jsonl.gz {gz_v} sha256 {sha_v}")
    with open(os.path.join(args.out, "MANIFEST.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    total_mb = (tot[1] + tot[3]) / 1e6
    print(f"corpus: {total_mb:.2f} MB of text ({tot[1] / 1e6:.2f} MB train, {tot[3] / 1e6:.2f} MB valid) in {args.out}")
    if total_mb < args.min_mb:
        print(f"corpus: FAIL: under {args.min_mb} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
