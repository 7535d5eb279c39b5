#!/usr/bin/env python3
"""smtpclient.py — a raw SMTP client for the mxguard test-bed (stdlib only).

Common options: --server IP:PORT  --source IP (bind address)  --timeout SECONDS

  probe [--served]        connect once and close; exit 0 if the connection was accepted
                         (--served: and a reply began within --timeout; a connection only
                         queued in a listening socket's backlog, with no process accepting
                         from it, is not served)
  watch --for S [--pidfile F] [--until-served N]
                         a start-up seen from a client: connect every 50 ms for S seconds (or
                         until the pid in F has exited, or N attempts were served); each attempt
                         is REFUSED (ECONNREFUSED), SERVED (a reply began within --timeout) or
                         UNSERVED (the kernel accepted it, but no reply began within --timeout:
                         left in a backlog, or closed or reset without one). Prints
                         "REFUSED=n SERVED=n UNSERVED=n REFUSED_AFTER_SERVED=n" (refusals after
                         the first served attempt) and one line "T OUTCOME" (seconds since the
                         start) per change of outcome; exit 0.
  chat ITEM...           read the banner, then for each ITEM:
                           "CMD args"      send one command line, read one reply
                                           (STARTTLS + 220 -> TLS handshake, no verification)
                           "@FILE"         send FILE's bytes as they are (message data, already
                                           dot-stuffed and ending with CRLF.CRLF), read one reply
                           "raw:N:TEXT"    send TEXT (Python escapes such as \\r\\n decoded),
                                           read N replies
                           "sleep:S"       pause S seconds
                         prints one line per reply: STAGE<TAB>CODE<TAB>TEXT (multi-line
                         replies joined with " | "); STAGE is BANNER, the command verb, or DOT;
                         prints "CLOSED" and stops if the server closes the connection.
  mkmsg --msg F --wire F [--to A] [--from A] [--subject S] [--long-line N] [--size N]
        [--received N] [--id ID]
                         write a test message: F (--msg) the exact bytes a receiver must get,
                         F (--wire) the same dot-stuffed and ending with "\r\n." (what
                         `swaks --no-data-fixup --data @F` must send: swaks adds the last CRLF).
                         The body has lines ".", "..", ".x" and " ." (transparency);
                         --long-line adds one line of N octets (without CRLF), --size pads the
                         body to about N octets, --received prepends N Received: headers.
  pipeline               one connection, EHLO, then --count transactions sent with RFC 2920
                         pipelining: MAIL+RCPT+DATA in one write; after 354 the body, the final
                         dot and the next MAIL+RCPT+DATA in one write. Prints one line per
                         transaction "TXN i MAIL RCPT DATA DOT" (reply codes) and a summary;
                         exit 0 only if every final reply is 250.
"""
import argparse
import codecs
import os
import socket
import ssl
import sys
import time


class Closed(Exception):
    pass


class Conn:
    def __init__(self, server, source, timeout, sni=None):
        host, _, port = server.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.timeout = timeout
        self.sni = sni
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def readline(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                raise Closed()
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """-> (code, [lines])"""
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        code = lines[-1][:3]
        return code, lines

    def starttls(self):
        if self.buf:
            sys.stderr.write("smtpclient: server sent %d bytes before the TLS handshake\n" % len(self.buf))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.sni)
        self.buf = b""
        return self.sock.version()


def fmt(stage, code, lines):
    return "%s\t%s\t%s" % (stage, code, " | ".join(lines))


def cmd_probe(a):
    try:
        c = Conn(a.server, a.source, a.timeout)
        try:
            # served: the first byte of a reply (a close or a reset without one is not)
            return 0 if not a.served or c.sock.recv(1) else 1
        except OSError:  # socket.timeout included
            return 1
        finally:
            c.sock.close()
    except OSError:
        return 1


def cmd_chat(a):
    c = Conn(a.server, a.source, a.timeout, a.sni)
    out = sys.stdout
    try:
        code, lines = c.reply()
        print(fmt("BANNER", code, lines), file=out, flush=True)
        for item in a.items:
            if item.startswith("sleep:"):
                time.sleep(float(item[6:]))
                continue
            if item.startswith("@"):
                with open(item[1:], "rb") as f:
                    c.send(f.read())
                code, lines = c.reply()
                print(fmt("DOT", code, lines), file=out, flush=True)
                continue
            if item.startswith("raw:"):
                _, n, text = item.split(":", 2)
                data = codecs.decode(text, "unicode_escape").encode("latin-1")
                c.send(data)
                verbs = [l.split(b" ")[0].decode("latin-1").upper() for l in data.split(b"\r\n") if l]
                for i in range(int(n)):
                    code, lines = c.reply()
                    stage = verbs[i] if i < len(verbs) else "REPLY"
                    print(fmt(stage, code, lines), file=out, flush=True)
                    if stage == "STARTTLS" and code == "220" and i == int(n) - 1:
                        print("TLS\tok\t%s" % c.starttls(), file=out, flush=True)
                continue
            c.send(item.encode("utf-8") + b"\r\n")
            code, lines = c.reply()
            stage = item.split(" ")[0].upper()
            print(fmt(stage, code, lines), file=out, flush=True)
            if stage == "STARTTLS" and code == "220":
                print("TLS\tok\t%s" % c.starttls(), file=out, flush=True)
    except Closed:
        print("CLOSED", file=out, flush=True)
    except socket.timeout:
        print("TIMEOUT", file=out, flush=True)
        return 1
    return 0


def message(i, a):
    lines = [
        "From: <%s>" % a.sender,
        "To: <%s>" % a.rcpt,
        "Subject: pipeline test %d of %d" % (i, a.count),
        "Message-ID: <%d.%s@client.test>" % (i, a.tag),
        "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        "",
        "Message number %d." % i,
        ".A line that starts with a dot (stuffed on the wire).",
        "x" * 200,
        "",
    ]
    return ("\r\n".join(lines)).encode()


def stuff(body):
    out = []
    for line in body.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


def cmd_mkmsg(a):
    head = []
    for i in range(a.received):
        head.append("Received: from hop%d.client.test (hop%d.client.test [127.0.70.%d])" % (i, i, 100 + i % 50))
        head.append("\tby relay%d.client.test with ESMTP id HOP%04d; Mon, 1 Jan 2024 00:00:00 +0000" % (i, i))
    head += [
        "From: Sender <%s>" % a.sender,
        "To: <%s>" % a.rcpt,
        "Subject: %s" % a.subject,
        "Message-ID: <%s@client.test>" % a.id,
        "Date: Mon, 01 Jan 2024 00:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    body = [
        "First body line.",
        ".a line starting with a dot",
        "..two dots",
        ".",
        " .",
        "",
        "an empty line above, a tab\there",
    ]
    if a.long_line:
        body.append(("L%d:" % a.long_line + "0123456789" * (a.long_line // 10 + 1))[: a.long_line])
    if a.size:
        n = 0
        i = 0
        cur = len("\r\n".join(head + [""] + body))
        while cur + n < a.size:
            line = "%06d %s" % (i, "abcdefghijklmnopqrstuvwxyz" * 3)
            body.append(line)
            n += len(line) + 2
            i += 1
    body.append("last line")
    msg = ("\r\n".join(head + [""] + body) + "\r\n").encode()
    with open(a.msg, "wb") as f:
        f.write(msg)
    with open(a.wire, "wb") as f:
        f.write(stuff(msg) + b".")
    return 0


def cmd_pipeline(a):
    c = Conn(a.server, a.source, a.timeout)
    code, lines = c.reply()
    if code != "220":
        print("banner: %s" % " | ".join(lines))
        return 1
    c.send(("EHLO %s\r\n" % a.ehlo).encode())
    code, lines = c.reply()
    caps = [l[4:].upper() for l in lines]
    print("EHLO %s PIPELINING=%s" % (code, "yes" if "PIPELINING" in caps else "no"))
    if code != "250":
        return 1
    if "PIPELINING" not in caps:
        print("EHLO reply: %s" % " | ".join(lines))
        if not a.force:
            return 1
        print("PIPELINING not advertised: pipelining anyway (--force)")
    group = ("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (a.sender, a.rcpt)).encode()
    ok = 0
    pending_body = b""
    results = []
    t0 = time.time()
    try:
        for i in range(1, a.count + 1):
            c.send(pending_body + group)
            if pending_body:
                dot, dl = c.reply()
                results[-1][3] = dot
                print("TXN %d %s" % (i - 1, " ".join(results[-1])), flush=True)
                if dot == "250":
                    ok += 1
                else:
                    print("   final reply: %s" % " | ".join(dl))
            m, ml = c.reply()
            r, rl = c.reply()
            d, dl = c.reply()
            results.append([m, r, d, "-"])
            if d == "354":
                pending_body = stuff(message(i, a)) + b".\r\n"
            else:
                pending_body = b""
                print("TXN %d %s   (%s / %s / %s)" % (i, " ".join(results[-1]), ml[-1], rl[-1], dl[-1]), flush=True)
        if pending_body:
            c.send(pending_body)
            dot, dl = c.reply()
            results[-1][3] = dot
            print("TXN %d %s" % (a.count, " ".join(results[-1])), flush=True)
            if dot == "250":
                ok += 1
            else:
                print("   final reply: %s" % " | ".join(dl))
        c.send(b"QUIT\r\n")
        c.reply()
    except Closed:
        print("CLOSED after %d transactions" % len(results))
    except socket.timeout:
        print("TIMEOUT after %d transactions" % len(results))
    print("pipeline: %d of %d transactions got 250 in %.2fs" % (ok, a.count, time.time() - t0))
    return 0 if ok == a.count else 1


def attempt(a):
    """One connection attempt of watch: REFUSED, SERVED or UNSERVED."""
    host, _, port = a.server.rpartition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(a.timeout)
        s.bind((a.source, 0))
        try:
            s.connect((host, int(port)))
        except ConnectionRefusedError:
            return "REFUSED"
        except OSError:
            return "UNSERVED"  # a connect that hangs: not refused, not served
        try:
            return "SERVED" if s.recv(1) else "UNSERVED"
        except OSError:  # a reset, a timeout
            return "UNSERVED"
    finally:
        s.close()


def pid_alive(pidfile):
    """False once the process whose pid is in pidfile has gone (no file yet: not started)."""
    if not pidfile:
        return True
    try:
        with open(pidfile) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return True
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def cmd_watch(a):
    n = {"REFUSED": 0, "SERVED": 0, "UNSERVED": 0}
    after, last, t0 = 0, None, time.time()
    while time.time() - t0 < a.for_s and n["SERVED"] < a.until_served:
        alive = pid_alive(a.pidfile)
        r = attempt(a)
        n[r] += 1
        if r == "REFUSED" and n["SERVED"]:
            after += 1
        if r != last:
            print("%.2f %s" % (time.time() - t0, r), flush=True)
            last = r
        if not alive:
            break  # one attempt after the process was gone
        time.sleep(0.05)
    print("REFUSED=%d SERVED=%d UNSERVED=%d REFUSED_AFTER_SERVED=%d"
          % (n["REFUSED"], n["SERVED"], n["UNSERVED"], after), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default="127.0.70.1:10025")
    ap.add_argument("--source", default="127.0.70.100")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--sni")
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--served", action="store_true")
    p = sub.add_parser("chat")
    p.add_argument("items", nargs="*")
    p = sub.add_parser("watch")
    p.add_argument("--for", dest="for_s", type=float, required=True)
    p.add_argument("--pidfile")
    p.add_argument("--until-served", type=int, default=1 << 30)
    p = sub.add_parser("pipeline")
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--from", dest="sender", default="sender@client.test")
    p.add_argument("--to", dest="rcpt", default="a@example.test")
    p.add_argument("--ehlo", default="client.test")
    p.add_argument("--tag", default="%d" % time.time())
    p.add_argument("--force", action="store_true", help="pipeline even if PIPELINING is not advertised")
    p = sub.add_parser("mkmsg")
    p.add_argument("--msg", required=True)
    p.add_argument("--wire", required=True)
    p.add_argument("--from", dest="sender", default="sender@client.test")
    p.add_argument("--to", dest="rcpt", default="a@example.test")
    p.add_argument("--subject", default="mxguard test message")
    p.add_argument("--id", default="%d.%d" % (time.time(), os.getpid()))
    p.add_argument("--long-line", type=int, default=0)
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--received", type=int, default=0)
    a = ap.parse_args()
    return {"probe": cmd_probe, "chat": cmd_chat, "pipeline": cmd_pipeline,
            "mkmsg": cmd_mkmsg, "watch": cmd_watch}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
