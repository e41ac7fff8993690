#!/usr/bin/python3
"""soak_stats.py: the sampler and the judge of bench/soak.sh.

  sample    every --interval s until --until (epoch s), one CSV row: the daemon's resident memory
            (VmRSS), open file descriptors (/proc/PID/fd), threads (Threads: in /proc/PID/status),
            and from its /metrics the KV blocks in use (mlxr_kv_blocks_used), the free blocks that
            still hold a cached prefix (mlxr_kv_blocks_cached), the pool's capacity, sequences
            running and waiting, streams open, and the HTTP requests answered so far (all models
            summed). t_s counts from --t0 (the start of the load).
  snapshot  one such row now, labelled --phase (idle-before, idle-after).
  report    reads the CSV, the load generator's JSON and the /metrics texts taken before and after,
            prints the curves (a sparkline per quantity and a table of every minute, as Markdown
            for bench/RESULTS.md), writes them to --out too, and exits 1 if the run failed.

"Grows without bound", as judged here. The load phase is cut into thirds by time: the first is
warm-up (allocator arenas, thread stacks, the prefix cache and the response store filling up to
their bounds), the middle is the reference, the last is tested. The level of a third is its median
sample (robust to the instant a burst or a long stream is in flight). A quantity fails if
    median(last third) > median(middle third) + tolerance
with tolerances of RSS max(8 MiB, 5%), fds and threads max(4, 10%), KV blocks in use max(8, 5% of
the pool). A leak of L per minute moves the median by L x duration/3 between the two thirds: at
20 minutes 8 MiB is 1.2 MiB/min, or about 300 bytes per request at this soak's ~70 requests/s;
fds and threads (per connection in libmicrohttpd) would show a leak of one every 100 s. Besides:
  - hard ceilings on every sample (--max-rss-mib, --max-fds, --max-threads; KV used <= capacity),
    for a quantity that jumps rather than creeps;
  - back to idle: after the load ends and connections close, no sequence runs or waits, no stream
    is open, no KV block is in use, and fds and threads are within 2 of their idle level before
    the load (a leaked connection, thread or KV block shows here exactly, whatever the trend);
  - no unexpected outcome in the load (soak_load.mjs: an unintended 5xx, a wrong status, a
    malformed body, a transport error not caused by our own abort);
  - the daemon's own count agrees: every 5xx in /metrics (after minus before) is one the load
    intends: 503 on /v1/completions (the burst model's full queue) or 501 on /api/pull.
"""
import argparse
import csv
import json
import os
import re
import statistics
import sys
import time
import urllib.request

FIELDS = ["t_s", "phase", "rss_mib", "fds", "threads", "kv_used", "kv_cached", "kv_total", "running",
          "waiting", "streams", "http_total"]
SPARK = "▁▂▃▄▅▆▇█"


def metrics_text(base):
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        return r.read().decode()


def metric_sum(text, name):
    """Sum of every series of name (all label sets)."""
    total = 0.0
    for m in re.finditer(r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)$", text, re.M):
        total += float(m.group(1))
    return total


def proc_status(pid):
    rss = threads = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def one_row(pid, base, t0, phase):
    rss, threads = proc_status(pid)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    row = {"t_s": round(time.time() - t0, 1), "phase": phase, "rss_mib": round(rss, 2), "fds": fds, "threads": threads}
    try:
        m = metrics_text(base)
        row.update(kv_used=int(metric_sum(m, "mlxr_kv_blocks_used")), kv_cached=int(metric_sum(m, "mlxr_kv_blocks_cached")),
                   kv_total=int(metric_sum(m, "mlxr_kv_blocks")), running=int(metric_sum(m, "mlxr_requests_running")),
                   waiting=int(metric_sum(m, "mlxr_requests_waiting")), streams=int(metric_sum(m, "mlxr_active_streams")),
                   http_total=int(metric_sum(m, "mlxr_http_requests_total")))
    except OSError as e:  # a scrape that fails is recorded empty; the report fails on it
        print(f"soak_stats: /metrics: {e}", file=sys.stderr)
    return row


def append(path, row):
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def cmd_sample(a):
    k = 0
    while True:
        due = a.t0 + k * a.interval
        if due > a.until + 1.0:  # + 1 s: --until comes rounded to the millisecond
            return 0
        time.sleep(max(0.0, due - time.time()))
        try:
            append(a.csv, one_row(a.pid, a.base, a.t0, "load"))
        except (FileNotFoundError, ProcessLookupError):
            print("soak_stats: the daemon is gone", file=sys.stderr)
            return 1
        k += 1


def cmd_snapshot(a):
    append(a.csv, one_row(a.pid, a.base, a.t0, a.phase))
    return 0


# ---------------- report ----------------

def num(row, k):
    v = row.get(k, "")
    return float(v) if v not in ("", None) else None


def spark(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return SPARK[0] * len(vals)
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / (hi - lo) * len(SPARK)))] for v in vals)


def slope(rows, col):
    """Least-squares slope of col against time, per minute (information only, not judged)."""
    pts = [(float(r["t_s"]) / 60, num(r, col)) for r in rows if num(r, col) is not None]
    if len(pts) < 2:
        return 0.0
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0


def http_5xx(text):
    """{(route, status): count} of the 5xx series of mlxr_http_requests_total."""
    out = {}
    for m in re.finditer(r'^mlxr_http_requests_total\{route="([^"]*)",method="[^"]*",status="(\d+)"\} (\d+)$', text, re.M):
        if int(m.group(2)) >= 500:
            key = (m.group(1), int(m.group(2)))
            out[key] = out.get(key, 0) + int(m.group(3))
    return out


def cmd_report(a):
    rows = list(csv.DictReader(open(a.csv)))
    load = [r for r in rows if r["phase"] == "load"]
    before = next((r for r in rows if r["phase"] == "idle-before"), None)
    after = next((r for r in rows if r["phase"] == "idle-after"), None)
    lg = json.load(open(a.load))
    fails = []
    lines = []
    say = lines.append

    if len(load) < 6:
        fails.append(f"only {len(load)} load samples (at least 6 needed to judge a trend)")
    for r in load:
        if any(r.get(k) in ("", None) for k in FIELDS):
            fails.append(f"sample at {r['t_s']} s incomplete (/metrics did not answer?)")
            break
    dur = max((float(r["t_s"]) for r in load), default=0.0)
    thirds = ([r for r in load if float(r["t_s"]) < dur / 3], [r for r in load if dur / 3 <= float(r["t_s"]) < 2 * dur / 3],
              [r for r in load if float(r["t_s"]) >= 2 * dur / 3])
    kv_total = max((num(r, "kv_total") or 0 for r in load), default=0)
    quantities = [  # column, label, tolerance(middle level), ceiling
        ("rss_mib", "RSS (MiB)", lambda m: max(8.0, 0.05 * m), a.max_rss_mib),
        ("fds", "open fds", lambda m: max(4.0, 0.10 * m), a.max_fds),
        ("threads", "threads", lambda m: max(4.0, 0.10 * m), a.max_threads),
        ("kv_used", "KV blocks in use", lambda m: max(8.0, 0.05 * kv_total), kv_total),
    ]
    curves = []
    say("| quantity | min | max | warm-up third | middle third | last third | bound (middle + tol) | verdict | slope after warm-up, /min |")
    say("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for col, label, tol, ceil in quantities:
        vals = [num(r, col) for r in load]
        vals = [v for v in vals if v is not None]
        if not vals:
            continue
        med = [statistics.median([num(r, col) for r in t if num(r, col) is not None] or [0]) for t in thirds]
        bound = med[1] + tol(med[1])
        ok = med[2] <= bound
        if not ok:
            fails.append(f"{label} grows: last third {med[2]:.1f} > middle {med[1]:.1f} + tolerance = {bound:.1f}")
        if max(vals) > ceil:
            fails.append(f"{label} {max(vals):.1f} over the ceiling {ceil}")
        say(f"| {label} | {min(vals):.1f} | {max(vals):.1f} | {med[0]:.1f} | {med[1]:.1f} | {med[2]:.1f} | "
            f"{bound:.1f} | {'ok' if ok else 'GROWS'} | {slope(thirds[1] + thirds[2], col):+.3f} |")
        curves.append((label, min(vals), max(vals), spark(vals)))
    cached = [num(r, "kv_cached") for r in load if num(r, "kv_cached") is not None]
    if cached:
        curves.append(("KV blocks cached", min(cached), max(cached), spark(cached)))
    say("")
    say(f"Curves, one character per 10 s sample from the start of the load to its end, each scaled to its own "
        f"min..max (KV pool: {kv_total:.0f} blocks of 16 tokens over both models; cached = free blocks that still "
        f"hold a reusable prefix):")
    say("")
    say("```")
    for label, lo, hi, sp in curves:
        say(f"{label:<18} {lo:7.1f} .. {hi:7.1f}  {sp}")
    say("```")
    say("")

    # every minute: the sample nearest each whole minute of the load
    say("| minute | RSS MiB | fds | threads | KV used | KV cached | running | waiting | streams | requests in the minute before |")
    say("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    prev_http = None
    for minute in range(0, int(dur // 60) + 1):
        r = min(load, key=lambda x: abs(float(x["t_s"]) - minute * 60))
        if abs(float(r["t_s"]) - minute * 60) > 10:
            continue
        http = num(r, "http_total")
        rate = f"{http - prev_http:.0f}" if http is not None and prev_http is not None else ""
        prev_http = http
        say(f"| {minute} | {r['rss_mib']} | {r['fds']} | {r['threads']} | {r['kv_used']} | {r['kv_cached']} | "
            f"{r['running']} | {r['waiting']} | {r['streams']} | {rate} |")
    say("")

    # back to idle
    if not before or not after:
        fails.append("idle snapshots missing")
    else:
        say(f"Idle before the load: RSS {before['rss_mib']} MiB, {before['fds']} fds, {before['threads']} threads, "
            f"KV used {before['kv_used']}. After it (connections closed): RSS {after['rss_mib']} MiB, {after['fds']} fds, "
            f"{after['threads']} threads, KV used {after['kv_used']} (cached {after['kv_cached']}), running {after['running']}, "
            f"waiting {after['waiting']}, streams {after['streams']}.")
        for k in ("kv_used", "running", "waiting", "streams"):
            if num(after, k) != 0:
                fails.append(f"after the load {k} = {after[k]} (0 expected)")
        for k in ("fds", "threads"):
            if num(after, k) > num(before, k) + 2:
                fails.append(f"after the load {k} = {after[k]}, idle level before it {before[k]} (+2 allowed)")
        say("")

    # the load's outcomes
    o = lg["outcomes"]
    say(f"Load: {lg['requests']} requests in {lg['seconds']:.0f} s by {lg['clients']} clients "
        f"({lg['requests'] / max(1.0, lg['seconds']):.1f}/s): {o['ok']} as expected, {o['cancelled']} cancelled by the client "
        f"on purpose, {o['intended_5xx']} intended 5xx ({lg['burst_503']} x 503 queue full in {lg['bursts']} bursts, the "
        f"rest 501 /api/pull), {o['unexpected']} unexpected.")
    say("Statuses: " + ", ".join(f"{k} x{v}" for k, v in sorted(lg["statuses"].items())) + ".")
    say("")
    say("| scenario | requests | ok | cancelled | intended 5xx | unexpected |")
    say("| --- | --- | --- | --- | --- | --- |")
    for name, s in sorted(lg["by_scenario"].items()):
        say(f"| {name} | {s['n']} | {s['ok']} | {s['cancelled']} | {s['intended_5xx']} | {s['unexpected']} |")
    say("")
    if o["unexpected"]:
        fails.append(f"{o['unexpected']} unexpected outcomes in the load, first: " +
                     "; ".join(f"{u['scenario']} at {u['t_s']} s: {u['status']} {u['detail'][:160]}" for u in lg["unexpected"][:5]))

    # the daemon's own 5xx count
    m0, m1 = http_5xx(open(a.metrics_before).read()), http_5xx(open(a.metrics_after).read())
    diff = {k: v - m0.get(k, 0) for k, v in m1.items() if v - m0.get(k, 0) > 0}
    allowed = {("/v1/completions", 503), ("/api/pull", 501)}
    say("mlxrd's /metrics, 5xx answered during the load: " +
        (", ".join(f"{st} on {route} x{n}" for (route, st), n in sorted(diff.items())) or "none") + ".")
    bad5 = {k: v for k, v in diff.items() if k not in allowed}
    if bad5:
        fails.append("unintended 5xx in mlxrd's /metrics: " + ", ".join(f"{st} on {route} x{n}" for (route, st), n in bad5.items()))
    if diff.get(("/v1/completions", 503), 0) and not lg["burst_503"]:
        fails.append("/metrics counts 503s but the bursts saw none")
    say("")
    say("Verdict: " + ("PASS" if not fails else "FAIL"))
    for f in fails:
        say(f"- {f}")
    text = "\n".join(lines) + "\n"
    if a.out:
        open(a.out, "w").write(text)
    sys.stdout.write(text)
    return 0 if not fails else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("sample", "snapshot"):
        p = sub.add_parser(name)
        p.add_argument("--pid", type=int, required=True)
        p.add_argument("--base", required=True)
        p.add_argument("--csv", required=True)
        p.add_argument("--t0", type=float, required=True)
        if name == "sample":
            p.add_argument("--interval", type=float, default=10.0)
            p.add_argument("--until", type=float, required=True)
        else:
            p.add_argument("--phase", required=True)
    p = sub.add_parser("report")
    p.add_argument("--csv", required=True)
    p.add_argument("--load", required=True)
    p.add_argument("--metrics-before", required=True)
    p.add_argument("--metrics-after", required=True)
    p.add_argument("--out")
    p.add_argument("--max-rss-mib", type=float, default=1024)
    p.add_argument("--max-fds", type=float, default=1000)
    p.add_argument("--max-threads", type=float, default=500)
    a = ap.parse_args()
    return {"sample": cmd_sample, "snapshot": cmd_snapshot, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
