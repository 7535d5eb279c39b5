#!/usr/bin/env python3
"""fleet_stream.py — a steady stream of SMTP transactions to several mxguard instances at once
(t_fleet_outage.sh; stdlib only).

  fleet_stream.py --dir DIR [--interval S] [--source IP] [--timeout S] NAME=IP:PORT=DOM,DOM... ...

One thread per NAME sends one message per connection (EHLO, MAIL, RCPT, DATA, dot, QUIT) to
IP:PORT, the recipient's domain taking the DOMs in turn, then waits --interval seconds. Each
transaction appends one line to DIR/stream.NAME.log when it ends:

  NAME DOMAIN N RESULT LATENCY_MS START_MS

RESULT is the final reply's code (250 for a relayed message) or STAGE:CODE when an earlier
step failed (e.g. RCPT:451, CONNECT:err); LATENCY_MS runs from connect to the dot's reply,
START_MS is the wall clock at the connect. The message carries "Subject: stream NAME N" and
"Message-ID: <NAME.N@stream.test>", so a test finds it in the MX's spool. A thread stops
after its current transaction once DIR/stop.NAME or DIR/stop exists."""
import argparse
import os
import socket
import threading
import time


def reply(f):
    """Reads one (multi-line) reply; returns its code, or raises EOFError."""
    while True:
        line = f.readline()
        if not line:
            raise EOFError()
        if len(line) < 4 or line[3:4] != b"-":
            return line[:3].decode("ascii", "replace")


def one(addr, source, timeout, name, dom, n):
    """One transaction; returns (RESULT, latency in ms)."""
    host, port = addr.rsplit(":", 1)
    t0 = time.monotonic()
    stage = "CONNECT"
    try:
        s = socket.create_connection((host, int(port)), timeout=timeout,
                                     source_address=(source, 0))
    except OSError:
        return "CONNECT:err", int((time.monotonic() - t0) * 1000)
    f = s.makefile("rb")
    try:
        steps = [("BANNER", None, "220"), ("EHLO", b"EHLO stream.test\r\n", "250"),
                 ("MAIL", b"MAIL FROM:<sender@client.test>\r\n", "250"),
                 ("RCPT", ("RCPT TO:<%s.%d@%s>\r\n" % (name, n, dom)).encode(), "250"),
                 ("DATA", b"DATA\r\n", "354")]
        for stage, line, want in steps:
            if line:
                s.sendall(line)
            code = reply(f)
            if code != want:
                return "%s:%s" % (stage, code), int((time.monotonic() - t0) * 1000)
        stage = "DOT"
        body = ("From: <sender@client.test>\r\nTo: <%s.%d@%s>\r\nSubject: stream %s %d\r\n"
                "Message-ID: <%s.%d@stream.test>\r\n\r\nmessage %d of %s\r\n.\r\n"
                % (name, n, dom, name, n, name, n, n, name)).encode()
        s.sendall(body)
        code = reply(f)
        ms = int((time.monotonic() - t0) * 1000)
        try:
            s.sendall(b"QUIT\r\n")
            reply(f)
        except (OSError, EOFError):
            pass
        return code, ms
    except (OSError, EOFError):
        return "%s:err" % stage, int((time.monotonic() - t0) * 1000)
    finally:
        f.close()
        s.close()


def run(a, name, addr, doms):
    """The thread of one instance."""
    out = open(os.path.join(a.dir, "stream.%s.log" % name), "a")
    n = 0
    while not (os.path.exists(os.path.join(a.dir, "stop")) or
               os.path.exists(os.path.join(a.dir, "stop." + name))):
        n += 1
        dom = doms[(n - 1) % len(doms)]
        start = int(time.time() * 1000)
        res, ms = one(addr, a.source, a.timeout, name, dom, n)
        out.write("%s %s %d %s %d %d\n" % (name, dom, n, res, ms, start))
        out.flush()
        time.sleep(a.interval)
    out.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--interval", type=float, default=0.3)
    ap.add_argument("--source", default="127.0.70.100")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("streams", nargs="+", metavar="NAME=IP:PORT=DOM,DOM...")
    a = ap.parse_args()
    threads = []
    for spec in a.streams:
        name, addr, doms = spec.split("=")
        t = threading.Thread(target=run, args=(a, name, addr, doms.split(",")))
        t.start()
        threads.append(t)
    print("streaming", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
