#!/usr/bin/env python3
"""hostile_mx.py — a scriptable hostile receiving MX for the mxguard test-bed (stdlib only).

One process listens on several addresses (--listen IP:PORT, repeatable). Before each
connection it reads the control file (--control, JSON; the test driver rewrites it before
every row):

  {"rev": "ROW-ID",
   "IP": {"steps": {"STEP": "BEHAVIOUR", ...}, "certs": ["CERT", ...], "starttls": true},
   "*":  {...}}                      (for any listen address without an entry of its own)

"pipelining": true adds PIPELINING (RFC 2920) to the EHLO reply (default: not offered).

STEP: greeting, ehlo, starttls, ehlo2 (EHLO after TLS), mail, rcpt1, rcpt2 (the first /
second RCPT of a transaction), data, body (after 354, once the first line of data arrived),
dot (after the complete message, before the reply), quit.
BEHAVIOUR:
  ok         the normal reply (220 greeting, EHLO capabilities, 220 to STARTTLS, 250, 354
             to DATA, 221 to QUIT)
  2xx        "250 2.0.0 ..." (where 250 is the normal reply, the same as ok; at greeting,
             STARTTLS, DATA and QUIT it is the wrong 2xx)
  354        "354 ..." where it is not expected
  4xx / 5xx  "450 4.7.0 ..." / "550 5.7.1 ..."
  503        "503 5.5.1 ..." (bad sequence of commands)
  twice      the normal reply, twice (an extra reply nothing asked for)
  4xx8bit    a well-formed "450 4.7.0 ..." whose text has Latin-1 octets (as real MXes send)
  421        "421 4.3.2 ..." and close
  malformed  a reply line that is no reply (no code, control and 8-bit octets)
  overlong   "250 " and 5000 more octets on one line (RFC 5321: at most 512 with CRLF)
  multiline  a multi-line reply with mixed codes (250-, 550-, 250 )
  disconnect close the connection without a reply
  stall      never reply: read and discard until the peer closes (at most 60 s)
  tlsalert   (TLS up, or at STARTTLS: after the 220, once the ClientHello arrived) a fatal
             TLS alert record written under the TLS layer, then close
At "body" a reply behaviour is sent mid-stream (before the final dot), then the connection
is closed. "certs": the certificate (name under --certs DIR, NAME.crt/NAME.key) presented by
the Nth connection to that address since the control file's rev changed (the last one is
used from then on): ["a", "b"] = a certificate change between connections.

Every connection appends two JSON lines to --events: {"ev":"open",...} at accept and
{"ev":"close",...} at the end, with rev, listen, n (per address since rev), cmds (the
commands received, "DATA-BODY" for message data), tls (handshake done), cert, helo,
mail_from, rcpts (accepted), body (a complete message was received), stored (it was
answered 250: the message is in --spool as NNNN.eml + NNNN.json), msg (its file),
pipelining (offered), mail_rcpt_together / mail_alone (MAIL commands that came with more
input right behind them, i.e. the client's first RCPT in the same write / that came alone).
"""
import argparse
import json
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time

STEPS = ("greeting", "ehlo", "starttls", "ehlo2", "mail", "rcpt1", "rcpt2", "data", "body",
         "dot", "quit")
BEHAVIOURS = ("ok", "2xx", "354", "4xx", "4xx8bit", "5xx", "503", "421", "malformed", "overlong",
              "multiline", "twice", "disconnect", "stall", "tlsalert")
# a fatal alert record (handshake_failure), written in the clear under the TLS layer
TLS_ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])


def log(msg):
    sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class Closed(Exception):
    pass


class Server:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.counts = {}  # (rev, listen) -> connections so far
        self.ctx = {}
        self.n_msg = 0
        os.makedirs(a.spool, exist_ok=True)

    def control(self):
        try:
            with open(self.a.control) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {"rev": "-"}

    def ssl_ctx(self, cert):
        with self.lock:
            if cert not in self.ctx:
                c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                base = os.path.join(self.a.certs, cert)
                c.load_cert_chain(base + ".crt", base + ".key")
                self.ctx[cert] = c
            return self.ctx[cert]

    def event(self, rec):
        with self.lock:
            with open(self.a.events, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def store(self, data, meta):
        with self.lock:
            self.n_msg += 1
            base = os.path.join(self.a.spool, "%04d" % self.n_msg)
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        with open(base + ".eml", "wb") as f:
            f.write(data)
        return base + ".eml"


class Session:
    def __init__(self, srv, sock):
        self.srv = srv
        self.sock = sock
        self.buf = b""
        ctl = srv.control()
        self.listen = sock.getsockname()[0]
        script = ctl.get(self.listen) or ctl.get("*") or {}
        self.steps = script.get("steps", {})
        self.offer_tls = script.get("starttls", True)
        self.offer_pipelining = script.get("pipelining", False)
        key = (ctl.get("rev", "-"), self.listen)
        with srv.lock:
            srv.counts[key] = srv.counts.get(key, 0) + 1
            self.n = srv.counts[key]
        certs = script.get("certs") or [srv.a.default_cert.get(self.listen, srv.a.fallback_cert)]
        self.cert = certs[min(self.n, len(certs)) - 1]
        self.rec = {"rev": ctl.get("rev", "-"), "listen": self.listen, "n": self.n,
                    "peer": "%s:%d" % sock.getpeername(), "cmds": [], "tls": False,
                    "cert": None, "helo": None, "mail_from": None, "rcpts": [], "body": False,
                    "stored": False, "msg": None, "pipelining": self.offer_pipelining,
                    "mail_rcpt_together": 0, "mail_alone": 0}
        self.tls = False
        self.nrcpt = 0

    def log(self, msg):
        log("%s#%d %s" % (self.listen, self.n, msg))

    # ---------------------------------------------------------------- I/O
    def sendraw(self, data):
        self.log("> %r" % data[:200])
        self.sock.sendall(data)

    def send(self, text):
        self.sendraw(text.replace("\n", "\r\n").encode() + b"\r\n")

    def readline(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except (OSError, ssl.SSLError):
                chunk = b""
            if not chunk:
                raise Closed()
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def more_waiting(self):
        """did more input come with the last command (a pipelined group)? A complete line
        buffered, a TLS record read ahead, or bytes in the socket at once"""
        if self.buf:
            return True
        if self.tls and self.sock.pending() > 0:
            return True
        return bool(select.select([self.sock], [], [], 0)[0])

    def drain(self, limit=60.0):
        """stall: read and discard until the peer closes (or LIMIT seconds)"""
        end = time.time() + limit
        self.sock.settimeout(1.0)
        while time.time() < end:
            try:
                if not self.sock.recv(65536):
                    break
            except socket.timeout:
                continue
            except (OSError, ssl.SSLError):
                break
        self.log("stall: peer closed (or limit)")

    def tls_alert(self):
        """a fatal alert record in the clear, under the TLS layer, then close"""
        os.write(self.sock.fileno(), TLS_ALERT)  # (an SSLSocket owns the same descriptor)
        self.log("> TLS alert (fatal, handshake_failure) in the clear")

    # ---------------------------------------------------------------- behaviours
    def act(self, step, normal):
        """Answer at STEP: the normal reply or the scripted behaviour. Returns False when the
        session must end."""
        b = self.steps.get(step, "ok")
        if b != "ok":
            self.log("behaviour %s at %s" % (b, step))
        if b == "ok" or (b == "2xx" and normal.startswith("250")):
            self.send(normal)
        elif b == "2xx":
            self.send("250 2.0.0 hostile: a 2xx where %s was due" % normal[:3])
        elif b == "354":
            self.send("354 hostile: go ahead (not expected here)")
        elif b == "4xx":
            self.send("450 4.7.0 hostile: temporary failure at %s" % step)
        elif b == "4xx8bit":
            self.sendraw(b"450 4.7.0 hostile: Zustellung verz\xf6gert at " + step.encode() + b" \xe4\xfc\r\n")
        elif b == "5xx":
            self.send("550 5.7.1 hostile: permanent failure at %s" % step)
        elif b == "503":
            self.send("503 5.5.1 hostile: bad sequence of commands at %s" % step)
        elif b == "twice":
            self.send(normal)
            self.send(normal)
        elif b == "421":
            self.send("421 4.3.2 hostile: closing at %s" % step)
            return False
        elif b == "malformed":
            self.sendraw(b"2x5 hostile\x01\x1b[2J\xff\xfe%s%n\x7f garbage at " + step.encode() + b"\r\n")
        elif b == "overlong":
            self.sendraw(b"250 hostile " + b"L" * 5000 + b"\r\n")
        elif b == "multiline":
            self.sendraw(b"250-hostile first line\r\n550-hostile second line, another code\r\n"
                         b"250 hostile last line\r\n")
        elif b == "disconnect":
            return False
        elif b == "stall":
            self.drain()
            return False
        elif b == "tlsalert":
            if self.tls or step == "starttls":
                self.tls_alert()
                return False
            self.send(normal)  # no TLS here: nothing to alert about
        else:
            self.log("unknown behaviour %r" % b)
            self.send(normal)
        return True

    # ---------------------------------------------------------------- session
    def run(self):
        self.srv.event(dict(self.rec, ev="open"))
        self.log("connect from %s (cert %s)" % (self.rec["peer"], self.cert))
        try:
            self.session()
        except (Closed, OSError, ssl.SSLError) as e:
            self.log("session ended: %r" % (e,))
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
            self.srv.event(dict(self.rec, ev="close"))
            self.log("closed")

    def ehlo_reply(self):
        caps = ["hostile.mx", "SIZE 10485760", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.offer_pipelining:
            caps.append("PIPELINING")
        if not self.tls and self.offer_tls:
            caps.append("STARTTLS")
        return "\n".join(("250-" if i < len(caps) - 1 else "250 ") + c for i, c in enumerate(caps))

    def session(self):
        if not self.act("greeting", "220 hostile.mx ESMTP hostile"):
            return
        while True:
            line = self.readline()
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            self.log("< " + text)
            self.rec["cmds"].append(text)
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                self.rec["helo"] = arg
                self.nrcpt = 0
                if verb == "HELO":
                    self.send("250 hostile.mx")
                elif not self.act("ehlo2" if self.tls else "ehlo", self.ehlo_reply()):
                    return
            elif verb == "STARTTLS":
                if self.tls or not self.offer_tls:
                    self.send("503 5.5.1 STARTTLS not available")
                    continue
                b = self.steps.get("starttls", "ok")
                if b == "tlsalert":
                    self.send("220 2.0.0 go ahead")
                    self.sock.settimeout(5)
                    try:
                        self.sock.recv(4096)  # the ClientHello
                    except OSError:
                        pass
                    self.tls_alert()
                    return
                if not self.act("starttls", "220 2.0.0 go ahead"):
                    return
                if b not in ("ok",):
                    continue  # no handshake after a reply that was not 220
                self.buf = b""
                self.sock.settimeout(10)
                self.sock = self.srv.ssl_ctx(self.cert).wrap_socket(self.sock, server_side=True)
                self.sock.settimeout(None)
                self.tls = True
                self.rec["tls"] = True
                self.rec["cert"] = self.cert
                self.log("TLS up (%s), certificate %s" % (self.sock.version(), self.cert))
            elif verb == "MAIL":
                self.nrcpt = 0
                if self.more_waiting():
                    self.rec["mail_rcpt_together"] += 1
                else:
                    self.rec["mail_alone"] += 1
                self.rec["mail_from"] = arg[5:] if arg.upper().startswith("FROM:") else arg
                if not self.act("mail", "250 2.1.0 ok"):
                    return
            elif verb == "RCPT":
                self.nrcpt += 1
                step = "rcpt1" if self.nrcpt == 1 else "rcpt2"
                b = self.steps.get(step, "ok")
                if b in ("ok", "2xx"):
                    self.rec["rcpts"].append(arg[3:] if arg.upper().startswith("TO:") else arg)
                if not self.act(step, "250 2.1.5 ok"):
                    return
            elif verb == "DATA":
                b = self.steps.get("data", "ok")
                if not self.act("data", "354 go ahead"):
                    return
                if b in ("ok", "354"):
                    if not self.message():
                        return
            elif verb == "RSET":
                self.nrcpt = 0
                self.send("250 2.0.0 ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 ok")
            elif verb == "QUIT":
                self.act("quit", "221 2.0.0 bye")
                return
            else:
                self.send("500 5.5.2 command unrecognized")

    def message(self):
        """after 354: read the message; False when the session must end"""
        data = []
        first = True
        while True:
            line = self.readline()
            if first:
                first = False
                b = self.steps.get("body", "ok")
                if b not in ("ok",):
                    self.rec["cmds"].append("DATA-BODY (%s mid-stream)" % b)
                    if b == "2xx":
                        self.send("250 2.0.0 hostile: 2xx in the middle of the message")
                        return False
                    self.act("body", "250 2.0.0 ok")
                    return False
            if line == b".\r\n":
                break
            data.append(line[1:] if line.startswith(b".") else line)
        self.rec["cmds"].append("DATA-BODY")
        self.rec["body"] = True
        msg = b"".join(data)
        b = self.steps.get("dot", "ok")
        if b in ("ok", "2xx"):
            self.rec["stored"] = True
            self.rec["msg"] = self.srv.store(msg, {k: self.rec[k] for k in
                                                   ("rev", "listen", "helo", "mail_from", "rcpts",
                                                    "tls", "cert")})
        return self.act("dot", "250 2.0.0 ok: queued")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", action="append", required=True, help="IP:PORT[:CERT] (repeatable)")
    ap.add_argument("--certs", required=True, help="directory with NAME.crt / NAME.key")
    ap.add_argument("--control", required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--spool", required=True)
    ap.add_argument("--ready-file")
    a = ap.parse_args()
    a.default_cert = {}
    a.fallback_cert = "wrong.invalid.test"
    srv = Server(a)
    socks = []
    for l in a.listen:
        parts = l.split(":")
        ip, port = parts[0], int(parts[1])
        if len(parts) > 2:
            a.default_cert[ip] = parts[2]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(64)
        socks.append(s)
        log("hostile MX listening on %s:%d" % (ip, port))

    def accept_loop(s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            # replies go out at once: without this, the reply to EHLO after the TLS
            # handshake waits ~40 ms for the client's delayed ACK (Nagle)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=Session(srv, c).run, daemon=True).start()

    for s in socks:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write("%d\n" % os.getpid())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    log("stopping")


if __name__ == "__main__":
    main()
