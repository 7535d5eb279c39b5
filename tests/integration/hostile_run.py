#!/usr/bin/env python3
"""hostile_run.py — runs the rows of hostile_table.txt against a running test-bed (stdlib only).

Called by t_hostile_*.sh once mxguard (listener 127.0.70.1:10025, queue listener :10026) and
hostile_mx.py run:  hostile_run.py --tb DIR --path PATH [--only REGEX] [--pipelining]
(--pipelining: the MX offers PIPELINING; every row checks that MAIL came with the first RCPT
in one write exactly when it was offered)
Prints "ok   - ..." / "FAIL - ..." / "XFAIL ..." / "XPASS ..." lines (the shell counts them).

Per row: write hostile_mx.py's control file (rev = the row id), send one transaction (or run
`mxguard report send`), wait until every connection of the row has ended, then check
  client   the replies the client got (KEY=CODE[/ENH], see the table's header)
  mx       what the hostile MX received
  spool    how many entries the row left in mxguard's spool
  dsn      the DSN at the bounce route (queue/legs), or report send's verdict (report)
  tlsrpt   the TLSRPT failure/success counters of the domain (report show), where given
  log      a line in mxguard's log (a regex, searched in what the row added)
and, for every row, that each reply the client got is printable ASCII of at most 512 octets.
"""
import argparse
import glob
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time

MXG = "127.0.70.1"
CLIENT = "127.0.70.100"
PORT = {"single": 10025, "legs": 10025, "queue": 10026}
DOMAIN = {"h": "hostile.test", "d": "hostile-dane.test"}
HOSTS = {"h": ["127.0.70.160", "127.0.70.161"], "d": ["127.0.70.162"], "rua": ["127.0.70.165"]}
BOUNCE = "127.0.70.164"
FLUSH_WAIT = 0.6  # > tlsrpt.flush_interval (250 ms, hostile_lib.sh), with room for a slow tick
DANE_CERTS = ["mx.hostile-dane.test", "wrong.invalid.test"]


class Closed(Exception):
    pass


# ------------------------------------------------------------------ the table
def load_table(path):
    rows = []
    for n, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = [c.strip() for c in line.split("|")]
        if len(cols) != 11:
            sys.exit("%s:%d: %d columns, want 11" % (path, n, len(cols)))
        keys = ("path", "dom", "step", "behaviour", "client", "mx", "spool", "dsn", "tlsrpt",
                "log", "xfail")
        r = dict(zip(keys, cols))
        r["id"] = "%s.%s.%s.%s" % (r["path"], r["dom"], r["step"], r["behaviour"])
        r["line"] = n
        rows.append(r)
    return rows


# ------------------------------------------------------------------ a raw SMTP client
class Client:
    def __init__(self, port, timeout=40):
        self.s = socket.create_connection((MXG, port), timeout=timeout,
                                          source_address=(CLIENT, 0))
        self.buf = b""
        self.replies = []  # (stage, code, text of all lines as received, raw bytes)

    def reply(self, stage):
        lines = []
        raw = b""
        while True:
            while b"\n" not in self.buf:
                try:
                    c = self.s.recv(65536)
                except OSError:
                    c = b""
                if not c:
                    self.replies.append((stage, "CLOSED", "", raw))
                    raise Closed()
                self.buf += c
            line, _, self.buf = self.buf.partition(b"\n")
            raw += line + b"\n"
            t = line.rstrip(b"\r").decode("latin-1")
            lines.append(t)
            if len(t) < 4 or t[3] != "-":
                break
        code = lines[-1][:3]
        self.replies.append((stage, code, " | ".join(lines), raw))
        return code, lines[-1]

    def cmd(self, line, stage):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply(stage)


def transaction(port, rcpts, subject, pause=0.0, big=False):
    """EHLO, MAIL, RCPT..., DATA, message, QUIT. -> dict stage -> last reply line, and all
    replies. PAUSE: seconds between the message's first lines and the rest (so that an MX
    acting mid-stream does so before the final dot was sent). BIG: a 1.6 MB body (more than
    the socket buffers hold: the queue runner and the legs are still streaming when the MX
    acts mid-stream)."""
    c = Client(port)
    got = {}
    try:
        c.reply("banner")
        c.cmd("EHLO client.test", "ehlo")
        got["mail"] = c.cmd("MAIL FROM:<sender@client.test>", "mail")[1]
        ok = 0
        for i, r in enumerate(rcpts, 1):
            code, last = c.cmd("RCPT TO:<%s>" % r, "r%d" % i)
            got["r%d" % i] = last
            ok += code.startswith("2")
        if ok:
            code, last = c.cmd("DATA", "data")
            got["data"] = last
            if code == "354":
                msg = ("From: sender@client.test\r\nTo: %s\r\nSubject: %s\r\n"
                       "Message-Id: <%s@client.test>\r\n\r\nBODYLINE one\r\n..dotted\r\n"
                       "BODYLINE two\r\n%s.\r\n" % (rcpts[0], subject, subject,
                                                       ("x" * 78 + "\r\n") * (20000 if big else 0)))
                if pause:
                    cut = msg.index("BODYLINE two")
                    c.s.sendall(msg[:cut].encode())
                    time.sleep(pause)
                    msg = msg[cut:]
                c.s.sendall(msg.encode())
                got["dot"] = c.reply("dot")[1]
        c.cmd("QUIT", "quit")
    except (Closed, OSError) as e:
        got.setdefault("error", repr(e))
    finally:
        c.s.close()
    if "data" in got and not got["data"].startswith("354"):
        got["end"] = got["data"]
    elif "dot" in got:
        got["end"] = got["dot"]
    else:
        got["end"] = "-"
    return got, c.replies


# ------------------------------------------------------------------ the runner
class Runner:
    def __init__(self, a):
        self.a = a
        self.tb = a.tb
        self.results = []
        self.quiet = (None, None, 0)  # wait_quiet's last quiet state: (rev, counts, since)
        self.day = time.strftime("%Y-%m-%d", time.gmtime())

    def out(self, s):
        print(s)
        sys.stdout.flush()

    # -- files
    def log_size(self):
        try:
            return os.path.getsize(os.path.join(self.tb, "mxguard.log"))
        except OSError:
            return 0

    def log_since(self, mark):
        with open(os.path.join(self.tb, "mxguard.log"), "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def events(self, rev):
        res = []
        try:
            with open(os.path.join(self.tb, "hostile.events")) as f:
                for line in f:
                    e = json.loads(line)
                    if e["rev"] == rev:
                        res.append(e)
        except OSError:
            pass
        return res

    def spool_ids(self):
        return set(os.path.basename(p)[:-4] for p in
                   glob.glob(os.path.join(self.tb, "state", "spool", "*.env")))

    def control(self, rev, row):
        ctl = {"rev": rev}
        hosts = HOSTS["rua"] if row["path"] == "report" else HOSTS[row["dom"]]
        script = {"steps": {}, "pipelining": self.a.pipelining}
        if row["behaviour"] == "certchange":
            script["certs"] = DANE_CERTS
        elif row["step"] != "-":
            # "mail+rcpt1 | 5xx+503": a behaviour at each of several steps
            for step, b in zip(row["step"].split("+"), row["behaviour"].split("+")):
                script["steps"][step] = b
        for h in hosts:
            ctl[h] = script
        tmp = os.path.join(self.tb, "hostile.control.tmp")
        with open(tmp, "w") as f:
            json.dump(ctl, f)
        os.rename(tmp, os.path.join(self.tb, "hostile.control"))

    def wait_quiet(self, rev, secs=20, carry=False):
        """until every hostile connection of REV ended and nothing new came for 0.2 s.
        CARRY: the quiet time an earlier call for REV saw counts too when nothing changed
        since (a second wait right after the first then costs one look, not another 0.2 s)"""
        end = time.time() + secs
        last, since = None, time.time()
        if carry and self.quiet[0] == rev:
            last, since = self.quiet[1], self.quiet[2]
        while time.time() < end:
            ev = self.events(rev)
            opened = sum(e["ev"] == "open" for e in ev)
            closed = sum(e["ev"] == "close" for e in ev)
            state = (opened, closed)
            if state != last:
                last, since = state, time.time()
            elif opened == closed and time.time() - since >= 0.2:
                self.quiet = (rev, last, since)
                return True
            time.sleep(0.05)
        self.quiet = (None, None, 0)
        return False

    def wait_log(self, mark, regex, secs):
        end = time.time() + secs
        while time.time() < end:
            m = re.search(regex, self.log_since(mark), re.M)
            if m:
                return m
            time.sleep(0.05)
        return None

    def tlsrpt_counts(self, domain):
        """(successes, failures) today for DOMAIN from `mxguard report show`"""
        p = subprocess.run([self.a.bin, "report", "show", self.day, domain, "-c",
                            os.path.join(self.tb, "mxguard.conf")], capture_output=True,
                           timeout=30)
        try:
            r = json.loads(p.stdout)
        except ValueError:
            return (0, 0)
        ok = sum(x["summary"]["total-successful-session-count"] for x in r.get("policies", []))
        bad = sum(x["summary"]["total-failure-session-count"] for x in r.get("policies", []))
        return (ok, bad)

    # -- one row
    def run_row(self, row):
        rev = "%s@%d" % (row["id"], time.time() * 1000)
        path, dom = row["path"], row["dom"]
        domain = DOMAIN.get(dom, "hostile.test")
        mark = self.log_size()
        before = self.spool_ids()
        check_rpt = row["tlsrpt"] != "-"
        if check_rpt:
            time.sleep(FLUSH_WAIT)  # earlier rows' counters are on disk
            rpt0 = self.tlsrpt_counts(domain)
        self.control(rev, row)
        got, replies, qid, rep_out = {}, [], None, ""
        pre = 0
        if row["behaviour"] == "certchange":
            # the first connection presents the certificate of the TLSA record: delivered
            g0, _ = transaction(PORT["single"], ["pre@" + domain], "pre-" + row["id"])
            if not g0.get("end", "").startswith("250"):
                self.check(row, "certchange: the first delivery (right certificate) is 250",
                           False, g0)
            self.wait_quiet(rev)
            mark = self.log_size()
            pre = len(self.events(rev))
        if path == "report":
            rep_out = self.report_send()
            got = {"end": rep_out}
        else:
            rcpts = ["a@" + domain, "b@" + domain]
            if path == "legs":
                rcpts.append("c@hostile2.test")
            # the pause lets an in-session MX act mid-stream before the dot; the queue's MX
            # sees nothing before the client's dot (the runner relays from the spool)
            got, replies = transaction(PORT[path], rcpts, row["id"].replace(".", "-"),
                                       0.5 if row["step"] == "body" and path != "queue" else 0.0,
                                       big=row["step"] == "body")
            if path == "queue":
                m = re.search(r"queued as (\S+)", got.get("end", ""))
                qid = m.group(1) if m else None
                if qid:
                    self.wait_log(mark, r"%s: attempt 1:" % re.escape(qid), 20)
                    # settled: the entry is gone (delivered / bounced) or deferred
                    env = os.path.join(self.tb, "state", "spool", qid + ".env")
                    end = time.time() + 3
                    while time.time() < end and os.path.exists(env) and not re.search(
                            r"%s: \d recipient\(s\) deferred" % re.escape(qid), self.log_since(mark)):
                        time.sleep(0.05)
        self.wait_quiet(rev)
        if path in ("queue", "legs"):
            # a DSN goes out from the spool: wait until it is delivered (a row that wants one
            # first waits for it to be queued)
            end = time.time() + 10
            if row["dsn"] not in ("-", "none"):
                self.wait_log(mark, r"bounce \S+ queued for", 10)
            while time.time() < end and re.search(r"bounce \S+ queued for", self.log_since(mark)) \
                    and not any(e["listen"] == BOUNCE and e["ev"] == "close"
                                for e in self.events(rev)):
                time.sleep(0.05)
            self.wait_quiet(rev, 5, carry=True)
        log = self.legs_closed(mark)
        ev = [e for e in self.events(rev)[pre:] if e["ev"] == "close"]
        new_spool = self.spool_ids() - before
        self.assess(row, got, replies, ev, new_spool, log, rep_out,
                    self.tlsrpt_after(domain, rpt0) if check_rpt else None)

    def legs_closed(self, mark, secs=3):
        """the row's log once every upstream leg it started reached "closed" (or SECS)"""
        end = time.time() + secs
        while True:
            log = self.log_since(mark)
            last = {}
            for m in re.finditer(r"debug upstream: (\S+) \S+: ([a-z-]+) -> ([a-z-]+)$", log, re.M):
                last[m.group(1)] = m.group(3)
            self.open_legs = sorted("%s (%s)" % kv for kv in last.items() if kv[1] != "closed")
            if not self.open_legs or time.time() > end:
                return log
            time.sleep(0.1)

    def tlsrpt_after(self, domain, rpt0):
        time.sleep(FLUSH_WAIT)
        ok, bad = self.tlsrpt_counts(domain)
        return (ok - rpt0[0], bad - rpt0[1])

    def report_send(self):
        st = os.path.join(self.tb, "rstate")
        subprocess.run(["rm", "-rf", st])
        os.makedirs(st)
        src = sqlite3.connect(os.path.join(self.tb, "rpt.db"))
        dst = sqlite3.connect(os.path.join(st, "tlsrpt.db"))
        src.backup(dst)
        dst.close()
        src.close()
        p = subprocess.run([self.a.bin, "report", "send", self.day, "-c",
                            os.path.join(self.tb, "rpt.conf")], capture_output=True, timeout=60)
        with open(os.path.join(self.tb, "mxguard.log"), "ab") as f:
            f.write(p.stderr)  # its log, so the row's log column can look at it
        return p.stdout.decode("utf-8", "replace").strip()

    # -- verdicts
    def check(self, row, what, ok, detail=""):
        self.results.append((row, what, ok, detail))

    def assess(self, row, got, replies, ev, new_spool, log, rep_out, rpt):
        rid = row["id"]
        fails = []
        # client replies
        for item in row["client"].split(","):
            item = item.strip()
            if not item or item == "-":
                continue
            k, _, want = item.partition("=")
            have = got.get(k, "-")
            if not reply_matches(have, want):
                fails.append("client %s: want %s, got [%s]" % (k, want, have[:160]))
        for stage, code, text, raw in replies:
            for line in raw.split(b"\n")[:-1]:
                if len(line) + 1 > 512 or re.search(rb"[^\x20-\x7e\r]", line):
                    fails.append("client %s: reply not sanitised: %r" % (stage, line[:120]))
        # what the hostile MX got (the row's domain: not the second leg, not the bounce route)
        hosts = HOSTS["rua"] if row["path"] == "report" else HOSTS[row["dom"]]
        mine = [e for e in ev if e["listen"] in hosts]
        stored = [e for e in mine if e["stored"]]
        body = [e for e in mine if e["body"]]
        mail = [e for e in mine if any(c.upper().startswith("MAIL") for c in e["cmds"])]
        for want in row["mx"].split(","):
            want = want.strip()
            if want == "body" and not stored:
                fails.append("mx: want the message stored, it was not")
            elif want == "tls" and not any(e["tls"] for e in stored):
                fails.append("mx: want the message stored over TLS")
            elif want == "plain" and not any(not e["tls"] for e in stored):
                fails.append("mx: want the message stored in plaintext (fallback)")
            elif want == "nobody" and stored:
                fails.append("mx: want no stored message, got %d" % len(stored))
            elif want == "nomail" and mail:
                fails.append("mx: want no MAIL command at all, got %d" % len(mail))
            elif want == "once" and len(stored) > 1:
                fails.append("mx: want at most one copy, got %d" % len(stored))
            elif want.startswith("conns"):
                n = len(mine)
                w = want[5:]
                if w.endswith("+") and n < int(w[:-1]) or not w.endswith("+") and n != int(w):
                    fails.append("mx: want %s connections, got %d" % (w, n))
        if row["path"] == "legs":
            leg2 = [e for e in ev if e["listen"] == "127.0.70.163" and e["stored"]]
            if "c@hostile2.test" in got.get("r3", "") or not got.get("r3", "").startswith("250"):
                pass
            elif not leg2:
                fails.append("legs: the good leg (hostile2.test) did not get the message")
        # RFC 2920: the first RCPT rides with MAIL exactly when PIPELINING was offered
        for e in mine:
            if self.a.pipelining and e["mail_alone"]:
                fails.append("mx: PIPELINING offered, but MAIL came without the first RCPT")
                break
            if not self.a.pipelining and e["mail_rcpt_together"]:
                fails.append("mx: MAIL came with more commands, PIPELINING was not offered")
                break
        # spool
        if row["spool"] != "-" and str(len(new_spool)) != row["spool"]:
            fails.append("spool: want %s new entr(ies), got %d" % (row["spool"], len(new_spool)))
        # DSN / report verdict
        d = row["dsn"]
        dsns = [e for e in ev if e["listen"] == BOUNCE and e["stored"]]
        if row["path"] == "report":
            verdict = {"sent": "sent 1,", "retry": "to retry 1,", "gaveup": "given up 1,"}.get(d)
            if verdict and verdict not in rep_out:
                fails.append("report send: want [%s], got [%s]" % (verdict, rep_out))
        elif d == "none":
            if dsns:
                fails.append("dsn: want none, got %d" % len(dsns))
        elif d != "-":
            if not dsns:
                fails.append("dsn: want a DSN with Status %s, got none" % d)
            else:
                eml = open(dsns[0]["msg"], "rb").read().decode("latin-1")
                m = re.search(r"^Status: (\S+)", eml, re.M)
                if not m or not m.group(1).startswith(d):
                    fails.append("dsn: want Status %s, got %s" % (d, m.group(1) if m else "none"))
        # TLSRPT
        if rpt is not None:
            want = tuple(int(x) for x in row["tlsrpt"].split("/"))
            if tuple(rpt) != want:
                fails.append("tlsrpt: want (successes, failures) +%s, got +%s" % (want, rpt))
        # every leg the row started was closed (freed) in the end
        if self.open_legs:
            fails.append("legs never closed: %s" % ", ".join(self.open_legs))
        # no error-level line (e.g. "cannot record the delivery results")
        for m in re.finditer(r"^\S+ error .*$", log, re.M):
            fails.append("error in the log: %s" % m.group(0)[:200])
            break
        # log
        if row["log"] != "-" and not re.search(row["log"], log, re.M):
            fails.append("log: /%s/ not found" % row["log"])
        summary = "; ".join("%s=%s" % (k, v[:70]) for k, v in got.items() if k in
                            ("r1", "r2", "r3", "end", "error"))
        self.verdict(row, fails, summary)

    def verdict(self, row, fails, summary):
        rid = "%s (table line %d)" % (row["id"], row["line"])
        xf = row["xfail"] if row["xfail"] != "-" else None
        if fails and xf:
            self.out("XFAIL %s [%s]: %s" % (rid, xf, " / ".join(fails)))
        elif fails:
            self.out("FAIL - %s: %s   [%s]" % (rid, " / ".join(fails), summary))
        elif xf:
            self.out("XPASS %s [%s] passes now: flip it in the table   [%s]" % (rid, xf, summary))
        else:
            self.out("ok   - %s   [%s]" % (rid, summary))


def reply_matches(have, want):
    """want: CODE[/ENH] — CODE '250' or a class '4xx'/'5xx'/'2xx', or 'none' (no reply);
    several alternatives with '~'"""
    for w in want.split("~"):
        if w == "none":
            if have == "-":
                return True
            continue
        code, _, enh = w.partition("/")
        if len(have) < 3:
            continue
        if code.endswith("xx"):
            if have[0] != code[0]:
                continue
        elif not have.startswith(code):
            continue
        if enh and not have[4:].startswith(enh):
            continue
        return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tb", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--pipelining", action="store_true",
                    help="the hostile MX offers PIPELINING (row ids get +pipelining)")
    a = ap.parse_args()
    rows = [r for r in load_table(a.table) if r["path"] == a.path
            and (not a.only or re.search(a.only, r["id"]))]
    if a.pipelining:
        for r in rows:
            r["id"] += "+pipelining"
    run = Runner(a)
    t0 = time.time()
    for row in rows:
        if row["xfail"].startswith("!") and not os.environ.get("HOSTILE_RUN_ALL"):
            print("SKIP  %s (table line %d) [%s]: not run (it would fail the whole script, e.g. "
                  "a leak the sanitizer build reports at exit); HOSTILE_RUN_ALL=1 runs it"
                  % (row["id"], row["line"], row["xfail"]))
            continue
        t = time.time()
        try:
            run.run_row(row)
        except Exception as e:  # a broken row fails, the others still run
            run.verdict(row, ["runner error: %r" % (e,)], "")
        sys.stderr.write("# %s: %.1f s\n" % (row["id"], time.time() - t))
    print("# %d rows of path %s in %.0f s" % (len(rows), a.path, time.time() - t0))


if __name__ == "__main__":
    main()
