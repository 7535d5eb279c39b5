#!/usr/bin/env python3
"""bench/report.py RESULTS.tsv [--sessions N --messages M --runs R] — the table of bench/run.sh.

RESULTS.tsv: one "metric<TAB>target<TAB>size<TAB>value" per measurement (several runs of the
same metric/target/size are reduced to their median). Prints one table and the target checks
of docs/BENCHMARKS.md (mxguard >= 2x the better Postfix in msg/s, <= 1/2 its CPU per message,
<= 32 KiB RSS per idle session)."""
import argparse
import datetime
import os
import statistics
import sys

ap = argparse.ArgumentParser()
ap.add_argument("results")
ap.add_argument("--sessions", default="?")
ap.add_argument("--messages", default="?")
ap.add_argument("--runs", default="?")
a = ap.parse_args()

vals = {}
for line in open(a.results):
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 4:
        continue
    m, t, s, v = parts
    try:
        vals.setdefault((m, t, s), []).append(float(v))
    except ValueError:
        pass


def get(m, t, s="-"):
    v = vals.get((m, t, s))
    return statistics.median(v) if v else None


def fmt(v, f="%.0f"):
    return "-" if v is None else f % v


sizes = sorted({s for (m, t, s) in vals if m == "rate"}, key=lambda x: float(x))
targets = [t for t in ("mxguard", "mxguard-base", "postfix", "postfix-reuse", "direct")
           if any(k[1] == t for k in vals)]
print("mxguard benchmark — %s sessions x %s messages per run, %s run(s), medians; %d CPUs; %s"
      % (a.sessions, a.messages, a.runs, os.cpu_count() or 0,
         datetime.datetime.now().strftime("%Y-%m-%d %H:%M")))
print()
hdr = "%-8s %-15s %9s %9s %11s %9s %9s %14s" % (
    "size", "path", "msg/s", "x direct", "CPU ms/msg", "p50 ms", "p99 ms", "conns/TLS/resumed")
print(hdr)
print("-" * len(hdr))
checks = []
for s in sizes:
    direct = get("rate", "direct", s)
    for t in targets:
        r = get("rate", t, s)
        cpu = get("cpu_ms", t, s)
        res = get("resolver_cpu_ms", t, s)
        cpu_txt = fmt(cpu, "%.3f")
        if res is not None and res > 0.0005:
            cpu_txt += "+%.3f" % res
        conns = "%s/%s/%s" % (fmt(get("sink_conns", t, s)), fmt(get("sink_tls", t, s)),
                              fmt(get("sink_resumed", t, s)))
        print("%-8s %-15s %9s %9s %11s %9s %9s %14s" % (
            "%s KiB" % s, t + (" (ceiling)" if t == "direct" else ""), fmt(r),
            fmt(r / direct if r and direct else None, "%.2f"), cpu_txt,
            fmt(get("p50_ms", t, s), "%.1f"), fmt(get("p99_ms", t, s), "%.1f"), conns))
    pf = [(get("rate", t, s), get("cpu_ms", t, s), t) for t in ("postfix", "postfix-reuse")
          if get("rate", t, s)]
    mx, mxc = get("rate", "mxguard", s), get("cpu_ms", "mxguard", s)
    br, bc = get("rate", "mxguard-base", s), get("cpu_ms", "mxguard-base", s)
    if mx and br:
        checks.append("%s KiB: mxguard / mxguard-base = %.3fx msg/s, %s CPU per message "
                      "(same run; a change without a performance aim: 0.95-1.05)"
                      % (s, mx / br, "%.3fx" % (mxc / bc) if mxc and bc else "-"))
    if pf and mx:
        best = max(pf)
        checks.append("%s KiB: mxguard / best Postfix (%s) = %.2fx msg/s (target >= 2)%s"
                      % (s, best[2], mx / best[0],
                         "; CPU per message %.2fx (target <= 0.5)" % (mxc / best[1])
                         if mxc and best[1] else ""))
print()
print("CPU ms/msg: the relay's processes (mxguard; Postfix master + all its children) per "
      "message;\n  +N = Postfix's validating resolver (unbound). p50/p99: from the client's "
      "connect to the\n  sink's final dot (bench/smtpload.c, one run). conns/TLS/resumed: at the "
      "sink, per run.")
for c in checks:
    print(c)
print()
rss = get("peak_rss_kib", "mxguard")
line = "RSS: peak under load %s KiB" % fmt(rss)
if get("peak_rss_kib", "mxguard-base"):
    line += " (mxguard-base %s KiB)" % fmt(get("peak_rss_kib", "mxguard-base"))
for n in sorted({s for (m, t, s) in vals if m == "idle_rss_per_session_kib"}, key=int):
    per = get("idle_rss_per_session_kib", "mxguard", n)
    line += "; %s idle sessions: %s KiB each (total %s KiB; target <= 32)" % (
        n, fmt(per, "%.1f"), fmt(get("idle_rss_total_kib", "mxguard", n)))
print(line)
cold, per_s, us = (get("decide_cold_ms", "mxguard"), get("decide_cached_per_s", "mxguard"),
                   get("decide_cached_us", "mxguard"))
if per_s:
    print("Policy decisions (route + DANE + MTA-STS + override, dane-ee.test): cold %s ms; "
          "cached %s/s (%s us each)" % (fmt(cold, "%.1f"), fmt(per_s), fmt(us, "%.2f")))
ic, if_ = get("instr_per_msg", "mxguard-cached", "1"), get("instr_per_msg", "mxguard-fresh", "1")
if ic or if_:
    print("Instructions per relayed 1 KiB message (callgrind, mxguard process): %s with a cached "
          "upstream connection, %s with a new connection + DANE handshake each"
          % ("{:,.0f}".format(ic) if ic else "-", "{:,.0f}".format(if_) if if_ else "-"))
bc, bf = (get("instr_per_msg", "mxguard-base-cached", "1"),
          get("instr_per_msg", "mxguard-base-fresh", "1"))
if bc or bf:
    print("  mxguard-base: %s cached, %s new connection; mxguard / mxguard-base = %s cached, %s new"
          % ("{:,.0f}".format(bc) if bc else "-", "{:,.0f}".format(bf) if bf else "-",
             "%.3fx" % (ic / bc) if ic and bc else "-", "%.3fx" % (if_ / bf) if if_ and bf else "-"))
