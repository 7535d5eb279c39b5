#!/usr/bin/env python3
"""load.py — many concurrent SMTP sessions through mxguard, with an accounting check.

Each session connects from --source, sends one message (EHLO, MAIL, RCPT, DATA) to a recipient
drawn round-robin from --mix, and QUITs. Every message carries a unique Message-ID
<TAG-N@load.test>. Afterwards the MX servers' spools (--spool DIR, mxserver.py's NNNN.eml) are
scanned and every message is accounted for:

  accepted  the client got 250 after the final dot  -> must be in the spools exactly once,
                                                       byte for byte (after mxguard's Received:)
  refused   a 4xx/5xx reply at RCPT, DATA or the dot -> must not be in any spool
  unknown   connection lost / timeout (no final reply) -> reported; counted as errors

With --barrier every session stops after its RCPT reply until all sessions got theirs: that many
inbound sessions (and an upstream connection for every accepted RCPT) are open at once; the
open fds of mxguard (--mxg-pid) are sampled there. Before and after the run mxguard's open fds
and RSS are read from /proc; after the run the script waits (--settle seconds) for the fds to
get back to the baseline.

Prints a table of figures (and --json FILE); exits 0 only if the accounting holds, mxguard is
still running, no session ended without a final reply (unless --max-unknown), its fds are back
to the baseline (+ --fd-slack) and its RSS is within --rss-slack-mb of the baseline.
"""
import argparse
import asyncio
import json
import os
import re
import resource
import sys
import time


def proc_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def proc_mem(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def message(tag, i, rcpt, size):
    lines = [
        "From: Load <load@client.test>",
        "To: <%s>" % rcpt,
        "Subject: load %s %d" % (tag, i),
        "Message-ID: <%s-%d@load.test>" % (tag, i),
        "Date: Mon, 01 Jan 2024 00:00:00 +0000",
        "",
        "Message %d of run %s." % (i, tag),
        ".a line that starts with a dot",
    ]
    n = 0
    while sum(len(l) + 2 for l in lines) < size:
        lines.append("%06d %s" % (n, "0123456789abcdefghijklmnopqrstuvwxyz" * 2))
        n += 1
    return ("\r\n".join(lines) + "\r\n").encode()


def stuff(msg):
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in msg.split(b"\r\n"))


class Run:
    def __init__(self, a):
        self.a = a
        self.mix = []
        for item in a.mix.split(","):
            addr, _, w = item.partition(":")
            self.mix += [addr.strip()] * int(w or 1)
        self.results = {}
        self.arrived = 0
        self.gone = 0
        self.barrier = asyncio.Event()
        self.fds_at_barrier = None
        self.open_now = 0
        self.open_peak = 0

    def barrier_check(self):
        if self.arrived + self.gone >= self.a.sessions and not self.barrier.is_set():
            if self.a.mxg_pid:
                self.fds_at_barrier = proc_fds(self.a.mxg_pid)
            self.barrier.set()

    async def reply(self, r):
        lines = []
        while True:
            line = await r.readline()
            if not line:
                raise ConnectionError("connection closed")
            line = line.decode("latin-1").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return line

    async def session(self, i, sem):
        a = self.a
        rcpt = self.mix[i % len(self.mix)]
        res = {"rcpt": rcpt, "outcome": "unknown", "reply": "", "stage": "connect"}
        self.results[i] = res
        reached_barrier = False
        async with sem:
            t0 = time.monotonic()
            host, _, port = a.server.rpartition(":")
            w = None
            try:
                async def run():
                    nonlocal w, reached_barrier
                    r, w = await asyncio.open_connection(host, int(port), local_addr=(a.source, 0),
                                                         limit=1 << 20)
                    self.open_now += 1
                    self.open_peak = max(self.open_peak, self.open_now)
                    res["stage"] = "banner"
                    l = await self.reply(r)
                    if not l.startswith("220"):
                        res.update(outcome="refused", reply=l)
                        return
                    for stage, cmd in (("ehlo", "EHLO load.client.test"),
                                       ("mail", "MAIL FROM:<load@client.test>"),
                                       ("rcpt", "RCPT TO:<%s>" % rcpt)):
                        res["stage"] = stage
                        w.write(cmd.encode() + b"\r\n")
                        l = await self.reply(r)
                        if l[:1] != "2":
                            res.update(outcome="refused", reply=l)
                            break
                    if a.barrier:
                        self.arrived += 1
                        reached_barrier = True
                        self.barrier_check()
                        await self.barrier.wait()
                    if res["outcome"] == "refused":
                        w.write(b"QUIT\r\n")
                        return
                    res["stage"] = "data"
                    w.write(b"DATA\r\n")
                    l = await self.reply(r)
                    if not l.startswith("354"):
                        res.update(outcome="refused", reply=l)
                        w.write(b"QUIT\r\n")
                        return
                    res["stage"] = "dot"
                    w.write(stuff(message(a.tag, i, rcpt, a.size)) + b".\r\n")
                    l = await self.reply(r)
                    res["reply"] = l
                    res["outcome"] = "accepted" if l.startswith("250") else "refused"
                    res["stage"] = "quit"
                    w.write(b"QUIT\r\n")
                    await self.reply(r)
                    res["stage"] = "done"

                await asyncio.wait_for(run(), a.timeout)
            except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                if res["outcome"] == "unknown":
                    res["reply"] = "%s at %s" % (type(e).__name__, res["stage"])
                # a failure after the final reply (QUIT) changes nothing
            finally:
                res["secs"] = time.monotonic() - t0
                if a.barrier and not reached_barrier:
                    self.gone += 1
                    self.barrier_check()
                if w is not None:
                    self.open_now -= 1
                    w.close()
                    try:
                        await w.wait_closed()
                    except Exception:
                        pass

    async def go(self):
        a = self.a
        sem = asyncio.Semaphore(a.concurrency or a.sessions)
        tasks = []
        for i in range(a.sessions):
            tasks.append(asyncio.create_task(self.session(i, sem)))
            if a.ramp and i % 50 == 49:
                await asyncio.sleep(a.ramp * 50 / a.sessions)
        await asyncio.gather(*tasks)


def scan_spools(dirs, tag):
    """Message-ID -> list of .eml paths, for this run's messages."""
    pat = re.compile(rb"^Message-ID: <(%s-(\d+))@load\.test>\r?$" % re.escape(tag.encode()), re.M | re.I)
    found = {}
    for d in dirs:
        for f in os.listdir(d):
            if not f.endswith(".eml"):
                continue
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                head = fh.read(4096)
            m = pat.search(head)
            if m:
                found.setdefault(int(m.group(2)), []).append(p)
    return found


def strip_received(data):
    if not data.startswith(b"Received:"):
        return None
    i = data.find(b"\n") + 1
    while i > 0 and data[i:i + 1] in (b" ", b"\t"):
        i = data.find(b"\n", i) + 1
    return data[i:]


def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default="127.0.70.1:10025")
    ap.add_argument("--source", default="127.0.70.100")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=0, help="at most this many at once (0: all)")
    ap.add_argument("--barrier", action="store_true", help="hold every session after RCPT until all got there")
    ap.add_argument("--ramp", type=float, default=0.5, help="spread the connects over this many seconds")
    ap.add_argument("--mix", default="a@example.test:1",
                    help="ADDR[:WEIGHT],... recipients, round-robin by weight")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--spool", action="append", default=[], help="an MX spool directory (repeatable)")
    ap.add_argument("--tag", default="r%d" % int(time.time()))
    ap.add_argument("--timeout", type=float, default=120.0, help="per session")
    ap.add_argument("--mxg-pid", type=int, default=0)
    ap.add_argument("--settle", type=float, default=20.0, help="seconds to wait for spools and fds")
    ap.add_argument("--fd-slack", type=int, default=0)
    ap.add_argument("--rss-slack-mb", type=float, default=32.0)
    ap.add_argument("--max-unknown", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()

    if a.barrier and a.concurrency and a.concurrency < a.sessions:
        ap.error("--barrier needs every session at once (no --concurrency below --sessions)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, a.sessions * 2 + 256)) if hard != resource.RLIM_INFINITY else a.sessions * 2 + 256
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if (a.concurrency or a.sessions) + 64 > resource.getrlimit(resource.RLIMIT_NOFILE)[0]:
        sys.exit("load.py: open file limit %d too low for %d sessions"
                 % (resource.getrlimit(resource.RLIMIT_NOFILE)[0], a.concurrency or a.sessions))

    pid = a.mxg_pid
    fd0 = proc_fds(pid) if pid else -1
    rss0 = proc_mem(pid, "VmRSS") if pid else -1
    before = {d: set(f for f in os.listdir(d) if f.endswith(".eml")) for d in a.spool}

    run = Run(a)
    t0 = time.monotonic()
    asyncio.run(run.go())
    wall = time.monotonic() - t0
    hwm = proc_mem(pid, "VmHWM") if pid else -1

    res = run.results
    acc = [i for i, r in res.items() if r["outcome"] == "accepted"]
    ref = [i for i, r in res.items() if r["outcome"] == "refused"]
    unk = [i for i, r in res.items() if r["outcome"] == "unknown"]

    # wait for the spools (an MX renames the .eml into place right before its 250)
    deadline = time.monotonic() + a.settle
    while True:
        found = scan_spools(a.spool, a.tag)
        if all(i in found for i in acc) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    lost = [i for i in acc if i not in found]
    dup = [i for i in found if len(found[i]) > 1]
    ref_delivered = [i for i in ref if i in found]
    unk_delivered = [i for i in unk if i in found]
    strangers = [i for i in found if i not in res]
    corrupt = []
    for i in acc:
        for p in found.get(i, []):
            with open(p, "rb") as fh:
                body = strip_received(fh.read())
            if body != message(a.tag, i, res[i]["rcpt"], a.size):
                corrupt.append(i)
    new_files = sum(len(set(f for f in os.listdir(d) if f.endswith(".eml")) - before[d]) for d in a.spool)

    fd1, rss1 = -1, -1
    mxg_alive = True
    if pid:
        mxg_alive = alive(pid)
        deadline = time.monotonic() + a.settle
        while True:
            fd1 = proc_fds(pid)
            if fd1 <= fd0 + a.fd_slack or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        rss1 = proc_mem(pid, "VmRSS")

    codes = {}
    for i in ref:
        c = res[i]["reply"][:3]
        codes[c] = codes.get(c, 0) + 1
    unk_why = {}
    for i in unk:
        unk_why[res[i]["reply"]] = unk_why.get(res[i]["reply"], 0) + 1
    lat = [r["secs"] for r in res.values() if r["outcome"] == "accepted"]

    fig = {
        "sessions": a.sessions, "concurrency": a.concurrency or a.sessions, "barrier": a.barrier,
        "open_sessions_peak": run.open_peak, "message_size": a.size, "mix": a.mix,
        "accepted": len(acc), "refused": len(ref), "refused_by_code": codes,
        "unknown": len(unk), "unknown_why": unk_why,
        "delivered_once": len(acc) - len(lost) - len([i for i in dup if i in acc]),
        "lost": len(lost), "duplicates": len(dup), "refused_but_delivered": len(ref_delivered),
        "unknown_delivered": len(unk_delivered), "corrupt": len(corrupt), "strangers": len(strangers),
        "new_spool_files": new_files,
        "wall_s": round(wall, 2), "accepted_per_s": round(len(acc) / wall, 1) if wall else 0,
        "latency_p50_s": round(pct(lat, 50), 3), "latency_p95_s": round(pct(lat, 95), 3),
        "latency_max_s": round(max(lat), 3) if lat else 0,
        "mxguard_alive": mxg_alive, "fds_before": fd0, "fds_at_barrier": run.fds_at_barrier,
        "fds_after": fd1, "rss_before_kb": rss0, "rss_peak_kb": hwm, "rss_after_kb": rss1,
    }
    problems = []
    if lost:
        problems.append("%d accepted message(s) not at any MX: %s" % (len(lost), lost[:10]))
    if dup:
        problems.append("%d message(s) delivered more than once: %s" % (len(dup), dup[:10]))
    if ref_delivered:
        problems.append("%d refused message(s) delivered: %s" % (len(ref_delivered), ref_delivered[:10]))
    if corrupt:
        problems.append("%d message(s) altered: %s" % (len(corrupt), corrupt[:10]))
    if strangers:
        problems.append("%d unknown message(s) of this run in the spools" % len(strangers))
    if new_files != sum(len(v) for v in found.values()):
        problems.append("%d new spool files, %d of this run" % (new_files, sum(len(v) for v in found.values())))
    if len(unk) > a.max_unknown:
        problems.append("%d session(s) without a final reply: %s" % (len(unk), unk_why))
    if pid and not mxg_alive:
        problems.append("mxguard (pid %d) is gone" % pid)
    if pid and mxg_alive and fd1 > fd0 + a.fd_slack:
        problems.append("mxguard has %d open fds after the run, %d before" % (fd1, fd0))
    if pid and mxg_alive and rss1 > rss0 + a.rss_slack_mb * 1024:
        problems.append("mxguard RSS %d kB after the run, %d kB before (slack %.0f MB)"
                        % (rss1, rss0, a.rss_slack_mb))
    fig["problems"] = problems

    rows = [
        ("sessions (concurrency)", "%d (%s)" % (a.sessions, a.concurrency or "all at once")),
        ("open at once (peak, client side)", "%d%s" % (run.open_peak, ", held at RCPT" if a.barrier else "")),
        ("message size", "%d octets" % a.size),
        ("accepted (250 after the dot)", len(acc)),
        ("refused (4xx/5xx)", "%d %s" % (len(ref), " ".join("%s:%d" % kv for kv in sorted(codes.items())))),
        ("no final reply", "%d %s" % (len(unk), "; ".join("%s x%d" % kv for kv in unk_why.items()))),
        ("accepted and at the MX exactly once", fig["delivered_once"]),
        ("lost / duplicated / altered", "%d / %d / %d" % (len(lost), len(dup), len(corrupt))),
        ("refused but delivered", len(ref_delivered)),
        ("no reply but delivered", len(unk_delivered)),
        ("wall time", "%.2f s" % wall),
        ("accepted messages per second", fig["accepted_per_s"]),
        ("session latency p50 / p95 / max", "%.3f / %.3f / %.3f s" % (fig["latency_p50_s"], fig["latency_p95_s"], fig["latency_max_s"])),
    ]
    if pid:
        rows += [
            ("mxguard open fds before / at barrier / after", "%d / %s / %d" % (fd0, run.fds_at_barrier if run.fds_at_barrier is not None else "-", fd1)),
            ("mxguard RSS before / peak / after", "%.1f / %.1f / %.1f MB" % (rss0 / 1024, hwm / 1024, rss1 / 1024)),
            ("mxguard still running", "yes" if mxg_alive else "NO"),
        ]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print("%-*s  %s" % (w, k, v))
    for p in problems:
        print("PROBLEM: %s" % p)
    print("accounting: %s" % ("OK" if not problems else "FAILED"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(fig, f, indent=1)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
