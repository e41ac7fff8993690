#!/usr/bin/env python3
"""gpu_report.py: bench/gpu.sh's raw outputs -> one results JSON and one Markdown table per model set.

    python3 bench/gpu_report.py RAW_DIR

RAW_DIR is what gpu.sh writes while it runs (standard library only, so this runs anywhere):
  machine.tsv                         key <TAB> value: gpu, driver, commit, date, options of the run
  events.tsv                          shape <TAB> type <TAB> key <TAB> value, in the order they
                                      happened (file bytes, seconds per step, exit codes, errors)
  membw.json                          bench/hf_gpu_bench.py --membw (the roofline)
  mlxr-SHAPE-TYPE.bench.json / .err   `mlxr bench ... --json` stdout / stderr
  mlxr-SHAPE-TYPE.conc.json / .err    `mlxr bench --concurrency ... --json` stdout / stderr
  hf-SHAPE.json / .err                bench/hf_gpu_bench.py --shape SHAPE --out
Writes RAW_DIR/results.json (every raw JSON object, parsed, plus the errors) and RAW_DIR/tables.md,
and prints the tables. Safe to run on a partial directory (gpu.sh runs it after every model, so a
run cut off by a time limit still leaves its tables). A concurrency run that failed part-way
printed an unterminated JSON object; its complete levels are kept.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_gpu_bench import SHAPES  # noqa: E402 - the shapes' titles (standard library only at import)

TYPE_ORDER = ["f16", "bf16", "q8_0", "q4_0", "q4_K_M"]


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_tsv(path, ncols):
    rows = []
    for line in (read_text(path) or "").splitlines():
        parts = line.split("\t")
        if len(parts) >= ncols:
            rows.append(parts[:ncols - 1] + ["\t".join(parts[ncols - 1:])])
    return rows


def parse_json(path):
    """(object or None, error or None) from a file holding one JSON object (maybe cut short)."""
    text = read_text(path)
    if text is None:
        return None, None
    text = text.strip()
    if not text:
        return None, "no output"
    try:
        return json.loads(text), None
    except ValueError:
        pass
    for line in reversed(text.splitlines()):  # the JSON line among others
        if line.startswith("{"):
            try:
                return json.loads(line), None
            except ValueError:
                break
    levels = []  # an unterminated --concurrency object: keep its complete levels
    for m in re.finditer(r"\{[^{}]*\"sequences\"[^{}]*\}", text):
        try:
            levels.append(json.loads(m.group(0)))
        except ValueError:
            pass
    if levels:
        return {"levels": levels, "partial": True}, "output cut short after %d levels" % len(levels)
    return None, "unparsable output: " + text[:200]


def err_tail(path):
    """The last meaningful line of a stderr file."""
    lines = [l.strip() for l in (read_text(path) or "").splitlines() if l.strip()]
    return lines[-1][:300] if lines else ""


def fmt_rate(v):
    if v is None:
        return "-"
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v


def level_cell(level, failed):
    """One concurrency cell: decode tok/s, OOM, err, or - (not run)."""
    if level is None:
        return "err" if failed else "-"
    if "error" in level:
        return "OOM" if "memory" in level["error"] else "err"
    return fmt_rate(level.get("decode_tok_s"))


def collect(raw):
    machine = dict(read_tsv(os.path.join(raw, "machine.tsv"), 2))
    membw, membw_err = parse_json(os.path.join(raw, "membw.json"))
    if membw_err or (membw is None and read_text(os.path.join(raw, "membw.err"))):
        membw_err = membw_err or err_tail(os.path.join(raw, "membw.err"))
    events = read_tsv(os.path.join(raw, "events.tsv"), 4)
    models, hf = {}, {}
    for shape, typ, key, value in events:
        if typ == "hf":
            entry = hf.setdefault(shape, {"shape": shape, "events": {}})
        else:
            entry = models.setdefault((shape, typ), {"shape": shape, "type": typ, "events": {}})
        entry["events"][key] = value
    for (shape, typ), m in models.items():
        base = os.path.join(raw, "mlxr-%s-%s" % (shape, typ))
        m["bench"], err = parse_json(base + ".bench.json")
        if m["events"].get("bench_rc", "0") != "0" or err:
            m["bench_error"] = "exit %s: %s" % (m["events"].get("bench_rc", "?"), err_tail(base + ".bench.err") or err)
        m["concurrency"], err = parse_json(base + ".conc.json")
        if m["events"].get("conc_rc", "0") != "0" or err:
            m["concurrency_error"] = "exit %s: %s" % (m["events"].get("conc_rc", "?"), err_tail(base + ".conc.err") or err)
    for shape, h in hf.items():
        h["result"], err = parse_json(os.path.join(raw, "hf-%s.json" % shape))
        if h["events"].get("rc", "0") != "0" or err:
            h["error"] = "exit %s: %s" % (h["events"].get("rc", "?"), err_tail(os.path.join(raw, "hf-%s.err" % shape)) or err)
    return machine, membw, membw_err, models, hf


def table(shape, machine, membw, models, hf):
    """Markdown for one model set; returns (lines, notes)."""
    bw = float(machine["bw_override"]) if machine.get("bw_override") else (membw or {}).get("copy_gb_s")
    levels = [int(x) for x in machine.get("levels", "").split(",") if x.strip()]
    h = hf.get(shape, {})
    hr = h.get("result") or {}
    title = SHAPES[shape]["title"] if shape in SHAPES else shape
    if bw:
        bw_text = "%.0f GB/s" % bw + (" (given with --bw)" if machine.get("bw_override") else
                                      " (device-to-device copy, read + write, median of %s x %s MiB)" %
                                      (membw.get("reps"), membw.get("buffer_mib")))
    else:
        bw_text = "not measured"
    lines = ["### %s: %s, random weights (std 0.02)" % (shape, title), "",
             "GPU: %s, driver %s, CUDA %s; commit %s; %s; copy bandwidth %s." %
             (machine.get("gpu", "?"), machine.get("driver", "?"), machine.get("cuda", "?"),
              machine.get("commit", "?"), machine.get("date", "?"), bw_text),
             "MLXR: `mlxr bench -p %s -n %s -r %s --device %s` (medians)%s. "
             "tg roofline = tg tok/s x weight bytes / copy bandwidth." %
             (machine.get("pp"), machine.get("tg"), machine.get("reps"), machine.get("device"),
              "; `--concurrency %s -p %s -n %s`: decode tok/s while all sequences decode" %
              (machine.get("levels"), machine.get("conc_prompt"), machine.get("conc_gen")) if levels else "")]
    if hr:
        lines.append("transformers %s (torch %s): bf16, %s attention, static KV cache, %s; pp = one forward, "
                     "tg = generate() decode steps, concurrency = batched generate(), prefill timed apart." %
                     (hr.get("transformers"), hr.get("torch"), hr.get("attn"),
                      "torch.compile (decode step)" if hr.get("compile") else "eager (no torch.compile)"))
    lines.append("")
    head = "| engine | type | GiB | pp%s tok/s | tg%s tok/s | tg roofline |" % (machine.get("pp"), machine.get("tg"))
    head += "".join(" decode @%d |" % b for b in levels)
    lines += [head, "|---|---|---|---|---|---|" + "---|" * len(levels)]
    notes = []

    def row(engine, typ, wbytes, pp, tg, lvl, lvl_failed=False):
        roof = "%.0f%%" % (100.0 * tg * wbytes / (bw * 1e9)) if tg and wbytes and bw else "-"
        gib = "%.2f" % (wbytes / 2**30) if wbytes else "-"
        cells = [engine, typ, gib, fmt_rate(pp), fmt_rate(tg), roof]
        by_b = {l.get("sequences"): l for l in lvl or []}
        cells += [level_cell(by_b.get(b), lvl_failed) for b in levels]
        lines.append("| " + " | ".join(cells) + " |")

    for typ in sorted((t for s, t in models if s == shape),
                      key=lambda t: TYPE_ORDER.index(t) if t in TYPE_ORDER else len(TYPE_ORDER)):
        m = models[(shape, typ)]
        b = m.get("bench") or {}
        c = m.get("concurrency") or {}
        label = typ
        dev = b.get("device") or c.get("device") or ""
        if dev and machine.get("device", "cuda").startswith("cuda") and not dev.startswith("cuda"):
            label += " (ran on %s!)" % dev
        fbytes = int(m["events"]["file_bytes"]) if m["events"].get("file_bytes", "").isdigit() else None
        row("MLXR", label, b.get("weight_bytes") or fbytes, (b.get("pp") or {}).get("tok_s"),
            (b.get("tg") or {}).get("tok_s"), c.get("levels"), bool(m.get("concurrency_error")))
        for key, what in (("make_error", "model"), ("bench_error", "bench"), ("concurrency_error", "concurrency")):
            err = m["events"].get(key) if key == "make_error" else m.get(key)
            if err:
                notes.append("MLXR %s %s: %s" % (typ, what, err))
    if hr:
        row("transformers", "bf16", hr.get("weight_bytes"), (hr.get("pp") or {}).get("tok_s"),
            (hr.get("tg") or {}).get("tok_s"), hr.get("levels"))
        for e in hr.get("errors", []):
            notes.append("transformers %s: %s" % (e.get("what"), e.get("error")))
    if h.get("error"):
        notes.append("transformers: %s" % h["error"])
    if notes:
        lines += [""] + ["- " + n for n in notes]
    return lines


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: gpu_report.py RAW_DIR")
    raw = argv[1]
    machine, membw, membw_err, models, hf = collect(raw)
    shapes = [s for s in machine.get("shapes", "").split() if any(k[0] == s for k in models) or s in hf]
    out = []
    if membw_err:
        out += ["copy bandwidth: %s" % membw_err, ""]
    for shape in shapes:
        out += table(shape, machine, membw, models, hf) + [""]
    md = "\n".join(out).rstrip() + "\n"
    results = {"machine": machine, "membw": membw, "membw_error": membw_err,
               "mlxr": [dict(m, shape=s, type=t) for (s, t), m in models.items()],
               "transformers": hf, "tables_md": md}
    for name, text in (("results.json", json.dumps(results, indent=1)), ("tables.md", md)):
        tmp = os.path.join(raw, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(raw, name))
    sys.stdout.write(md)


if __name__ == "__main__":
    main(sys.argv)
