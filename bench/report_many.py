#!/usr/bin/env python3
"""bench/report_many.py RESULTS.tsv [--sessions C --messages M --runs R --rcpt-domains K --size S]
— the table of bench/many.sh.

RESULTS.tsv: one "metric<TAB>target<TAB>value" per measurement (several runs of the same
metric and target are reduced to their median). Prints one table and the targets (docs/BENCHMARKS.md) for
the many-destination workload: mxguard >= 10x the best Postfix row's msg/s, relay CPU per
message <= 0.05x its, >= 0.35 of the direct ceiling, full TLS handshakes <= 1.5 per
(MX host, requirement) pair."""
import argparse
import datetime
import os
import statistics

ap = argparse.ArgumentParser()
ap.add_argument("results")
ap.add_argument("--sessions", default="?")
ap.add_argument("--messages", default="?")
ap.add_argument("--runs", default="?")
ap.add_argument("--rcpt-domains", default="1")
ap.add_argument("--size", default="1")
ap.add_argument("--order", default="?")
a = ap.parse_args()

vals = {}
for line in open(a.results):
    parts = line.rstrip("\n").split("\t")
    if len(parts) != 3:
        continue
    try:
        vals.setdefault((parts[0], parts[1]), []).append(float(parts[2]))
    except ValueError:
        pass


def get(m, t="-"):
    """The median of metric m for target t, or None."""
    v = vals.get((m, t))
    return statistics.median(v) if v else None


def fmt(v, f="%.0f"):
    """v formatted, or "-" when there is none."""
    return "-" if v is None else f % v


def ratio(x, y, f="%.3f"):
    """x / y formatted, or "-"."""
    return fmt(x / y if x is not None and y else None, f)


pairs, pairs_dane = get("pairs"), get("pairs_dane")
targets = [t for t in ("mxguard", "postfix", "postfix-reuse", "direct")
           if get("rate", t) is not None]
print("mxguard many-destination benchmark — %s domains on %s MX addresses, %s recipient "
      "domain(s) per message (order %s),\n%s sessions x %s messages of %s KiB per run, %s run(s), "
      "medians; %d CPUs; %s" % (fmt(get("domains")), fmt(get("sinks")), a.rcpt_domains, a.order,
                       a.sessions, a.messages, a.size, a.runs, os.cpu_count() or 0,
                       datetime.datetime.now().strftime("%Y-%m-%d %H:%M")))
print("(MX host, requirement) pairs the recipients touch: %s (%s DANE, %s without TLSA)"
      % (fmt(pairs), fmt(pairs_dane),
         fmt(pairs - pairs_dane if pairs is not None and pairs_dane is not None else None)))
print()
pf = [(get("rate", t), t) for t in ("postfix", "postfix-reuse") if get("rate", t)]
best = max(pf)[1] if pf else None
direct = get("rate", "direct")
hdr = "%-15s %8s %8s %8s %13s %8s %7s %6s %8s %9s" % (
    "path", "msg/s", "x best", "x direct", "CPU ms/msg", "x CPU", "conns", "TLS", "resumed",
    "full/pair")
print(hdr)
print("-" * len(hdr))
for t in targets:
    r, cpu, res = get("rate", t), get("cpu_ms", t), get("resolver_cpu_ms", t)
    cpu_txt = fmt(cpu, "%.3f")
    if res is not None and res > 0.0005:
        cpu_txt += "+%.3f" % res
    tls, resumed = get("sink_tls", t), get("sink_resumed", t)
    full = tls - resumed if tls is not None and resumed is not None else None
    print("%-15s %8s %8s %8s %13s %8s %7s %6s %8s %9s" % (
        t + (" (ceiling)" if t == "direct" else ""), fmt(r), ratio(r, get("rate", best), "%.2f")
        if best else "-", ratio(r, direct, "%.3f"), cpu_txt,
        ratio(cpu, get("cpu_ms", best), "%.3f") if best and t != "direct" else "-",
        fmt(get("sink_conns", t)), fmt(tls), fmt(resumed),
        ratio(full, pairs, "%.2f") if t != "direct" else "-"))
print()
print("x best / x CPU: against the best Postfix row by msg/s (%s); x direct: against the plaintext"
      " ceiling.\nCPU ms/msg: the relay's processes (mxguard; Postfix master + all its children) "
      "per message;\n  +N = Postfix's validating resolver (unbound). conns/TLS/resumed: at the "
      "sinks, per run;\n  full/pair = (TLS - resumed) / (MX host, requirement) pairs." % (best or "-"))
mf, mr = get("mxg_full", "mxguard"), get("mxg_resumed", "mxguard")
if mf is not None:
    print("mxguard's metrics over a run: mxguard_upstream_tls_handshakes_total full %s, resumed %s"
          " (%s full per pair); mxguard_upstream_connections_total new %s, reused %s, stale %s"
          % (fmt(mf), fmt(mr), ratio(mf, pairs, "%.2f"), fmt(get("mxg_conn_new", "mxguard")),
             fmt(get("mxg_conn_reused", "mxguard")), fmt(get("mxg_conn_stale", "mxguard"))))
fails = [(t, max(vals[("load_fail", t)])) for t in targets if vals.get(("load_fail", t))]
if any(f for _, f in fails):
    print("MESSAGES REFUSED OR LOST at the load generator (worst run): %s"
          % ", ".join("%s %d" % (t, f) for t, f in fails if f))
for t in ("mxguard", "postfix"):
    wt, wr = get("warm_tls", t), get("warm_resumed", t)
    if wt is not None:
        print("%s warm-up (one message per domain, the first contact with every pair): %s "
              "handshakes at the sinks, %s of them resumed" % (t, fmt(wt), fmt(wr)))
rss = get("peak_rss_kib", "mxguard")
if rss:
    print("mxguard peak RSS: %s KiB" % fmt(rss))
print()
mx, mxc = get("rate", "mxguard"), get("cpu_ms", "mxguard")


def check(name, value, ok):
    """One target line."""
    print("%-62s %10s  %s" % (name, value, "met" if ok else "NOT met"))


if mx and best:
    b, bc = get("rate", best), get("cpu_ms", best)
    check("mxguard / best Postfix (%s), msg/s (target >= 10)" % best, "%.2fx" % (mx / b),
          mx / b >= 10)
    if mxc and bc:
        check("mxguard / best Postfix, relay CPU per message (target <= 0.05)",
              "%.3fx" % (mxc / bc), mxc / bc <= 0.05)
if mx and direct:
    check("mxguard / direct ceiling, msg/s (target >= 0.35)", "%.3f" % (mx / direct),
          mx / direct >= 0.35)
tls, resumed = get("sink_tls", "mxguard"), get("sink_resumed", "mxguard")
wt, wr = get("warm_tls", "mxguard"), get("warm_resumed", "mxguard")
seen = get("domains") if wt is not None else pairs  # the warm-up touches every pair
if tls is not None and resumed is not None and seen:
    full = tls - resumed + (wt - wr if wt is not None and wr is not None else 0)
    check("mxguard full TLS handshakes per pair seen, warm-up + a run (target <= 1.5)",
          "%.2f" % (full / seen), full / seen <= 1.5)
