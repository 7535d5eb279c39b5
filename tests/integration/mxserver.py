#!/usr/bin/env python3
"""mxserver.py — a receiving MX for the mxguard integration test-bed (stdlib only).

ESMTP with PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, DSN and
STARTTLS (unless --no-starttls). Accepted messages are written to the spool:

  SPOOL/NNNN.eml   exact message bytes after dot-unstuffing (line ends as received)
  SPOOL/NNNN.json  {"id","helo","mail_from","mail_params","rcpts","rcpt_params",
                    "tls": null | {"version","cipher","sni","resumed"},"peer","listen",
                    "port","conn" (this server's connection number),"size","bare_lf"}
  SPOOL/max_concurrency  the most connections open at once so far
  SPOOL/connections.log  one line per connection:
                   "listen=IP starttls=yes|no tls=ok|failed|- peer=IP:PORT injected=N
                    resumed=yes|no|-" (resumed: the TLS handshake resumed a session)
                   written as soon as it is known whether the connection uses
                   STARTTLS (at the handshake, at the first MAIL, or at close).

The .json is renamed into place before the .eml, so once NNNN.eml exists the
whole message and its metadata are there.

Behaviour by the recipient's local part prefix (case-insensitive):
  reject*     RCPT -> 550 5.1.1 user unknown
  tempfail*   RCPT -> 451 4.3.0 try later
  close421*   RCPT -> 421 4.3.2 and close the connection
  dropdata*   RCPT ok; after DATA's 354 read some bytes, then close without reply
  rejectdata* RCPT ok; 554 5.6.0 after the end of data
  hostiledata* RCPT ok; 554 5.6.0 with markup, quotes and '&' in the text after the end of
              data (the status page must show it escaped)
  tempdata*   RCPT ok; 451 4.3.0 after the end of data
  slowdata*   RCPT ok; sleep 5 s (--slowdata-secs) before the final reply
  datareplyNNN*  RCPT ok; DATA is answered "NNN ..." instead of 354 (e.g. datareply250,
              datareply451, datareply554, datareply300); the transaction is reset
  dotreplyNNN*   RCPT ok; the final dot is answered "NNN ..." (e.g. dotreply354); nothing stored
  malformed*  RCPT is answered with the malformed line "2x\x01" (no valid reply code)

--without CAP (repeatable): leave CAP (8BITMIME, DSN, SMTPUTF8) out of the EHLO reply and
refuse its parameters with 555 (BODY; SMTPUTF8; RET, ENVID, NOTIFY, ORCPT), so a client
that sends them anyway shows.

--bad-tls: STARTTLS is answered 220, then garbage is sent and the connection is
closed as soon as the client's first handshake bytes arrive (at most 2 s later), so the
client's handshake fails (clients test their plaintext retry).

Bytes pipelined after the STARTTLS command (before the handshake) are discarded
and logged (STARTTLS injection, CVE-2011-0411 class). After STARTTLS the
session state is reset (a new EHLO is required).

Attacker / fault modes (for the security and fault-injection tests):
  --strip-starttls   a man in the middle that strips STARTTLS: the EHLO reply
                     carries "XXXXXXXA" in its place and the STARTTLS command
                     gets "500 5.5.1 Command unrecognized".
  --inject-after-starttls TEXT
                     after "220 2.0.0 Ready to start TLS" send TEXT (Python
                     escapes, e.g. "250 2.0.0 fake\\r\\n") in the same write, i.e.
                     the same TCP segment, before the handshake (CVE-2011-0411
                     from the server side); the handshake then goes on normally.
  --inject-delay S   ... send TEXT S seconds after the 220 instead (a separate
                     segment, arriving while the client's handshake runs); the
                     TLS handshake then fails (as with --bad-tls).
  --fault SPEC / --fault-file FILE
                     misbehave at one protocol step. SPEC = "STEP [ACTION] [once]";
                     FILE holds a SPEC and is read again at every step (missing or
                     empty: behave); with "once" the file is removed when the fault
                     fires. STEP: greeting (instead of the 220), ehlo, starttls,
                     ehlo-tls (EHLO after TLS), mail, rcpt, data (after the command,
                     before the reply), tls (after the 220 to STARTTLS, once the
                     client's first handshake bytes arrived), body (after 354, once
                     some message data arrived), dot (after the complete message,
                     before the reply; nothing is stored), quit.
                     ACTION: close (FIN; the default), rst (TCP reset: SO_LINGER 0),
                     hang (never answer; read and discard until the peer closes).
                     A fired fault is logged as "fault: ACTION at STEP".

TLS settings:
  --max-tls V        highest TLS version offered (TLSv1.2 or TLSv1.3; default: Python's)
  --ask-client-cert CAFILE
                     request a client certificate (optional) and verify it against
                     CAFILE; the spooled "tls" object then carries "client_cert": the
                     subject CN the client presented, or null
"""
import argparse
import asyncio
import codecs
import json
import os
import signal
import socket
import ssl
import struct
import sys
import time

MAX_LINE = 16 * 1024 * 1024
FAULT_STEPS = ("greeting", "ehlo", "starttls", "tls", "ehlo-tls", "mail", "rcpt", "data", "body",
               "dot", "quit")
FAULT_ACTIONS = ("close", "rst", "hang")


def parse_fault(spec):
    """'mail rst once' -> ('mail', 'rst', True); None for an empty spec; ValueError if bad."""
    words = spec.split()
    if not words:
        return None
    step, action, once = words[0].lower(), "close", False
    for w in words[1:]:
        if w.lower() in FAULT_ACTIONS:
            action = w.lower()
        elif w.lower() == "once":
            once = True
        else:
            raise ValueError("bad fault word %r" % w)
    if step not in FAULT_STEPS:
        raise ValueError("bad fault step %r" % step)
    return step, action, once


def log(msg):
    sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class Spool:
    def __init__(self, path):
        os.makedirs(path, exist_ok=True)
        self.dir = path
        n = 0
        for f in os.listdir(path):
            stem = f.split(".")[0]
            if stem.isdigit():
                n = max(n, int(stem))
        self.n = n

    def store(self, data, meta):
        self.n += 1
        ident = "%04d" % self.n
        base = os.path.join(self.dir, ident)
        meta = dict(meta, id=ident)
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        os.rename(base + ".json.tmp", base + ".json")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(data)
        os.rename(base + ".eml.tmp", base + ".eml")
        return ident

    def connection(self, line):
        with open(os.path.join(self.dir, "connections.log"), "a") as f:
            f.write(line + "\n")


def split_path_params(arg, keyword):
    """'FROM:<a@b> SIZE=1' -> ('a@b', {'SIZE': '1'}) or None on syntax error."""
    if not arg[: len(keyword) + 1].upper() == keyword + ":":
        return None
    rest = arg[len(keyword) + 1:].lstrip(" ")
    if not rest.startswith("<"):
        return None
    end = rest.find(">")
    if end < 0:
        return None
    addr = rest[1:end]
    params = {}
    order = []
    for p in rest[end + 1:].split():
        k, _, v = p.partition("=")
        params[k.upper()] = v if _ else None
        order.append(k.upper())
    return addr, params


class Session:
    def __init__(self, srv, reader, writer):
        self.srv = srv
        self.r = reader
        self.w = writer
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("sockname")
        self.peer = "%s:%d" % (peer[0], peer[1])
        self.listen = sock[0]
        self.port = sock[1]
        srv.nconn += 1
        self.conn_no = srv.nconn
        self.cid = "%s#%d" % (srv.name, srv.nconn)
        self.tls = None
        self.tls_state = "-"
        self.starttls_used = False
        self.conn_logged = False
        self.injected = 0
        self.helo = None
        self.reset()

    def reset(self):
        self.mail_from = None
        self.mail_params = {}
        self.rcpts = []
        self.rcpt_params = []
        self.flags = set()

    def log(self, msg):
        log("%s %s" % (self.cid, msg))

    def log_connection(self):
        if self.conn_logged:
            return
        self.conn_logged = True
        self.srv.spool.connection(
            "listen=%s starttls=%s tls=%s peer=%s injected=%d resumed=%s"
            % (self.listen, "yes" if self.starttls_used else "no", self.tls_state,
               self.peer, self.injected,
               "-" if self.tls is None else ("yes" if self.tls["resumed"] else "no")))

    async def fault(self, step):
        """Misbehave if a fault is set for STEP: returns True when the session must end."""
        f = self.srv.fault_for(step)
        if f is None:
            return False
        _, action, _ = f
        self.log("fault: %s at %s" % (action, step))
        if step in ("tls", "body"):
            # let the client get going first (its ClientHello / the first message data)
            try:
                chunk = await asyncio.wait_for(self.r.read(256), 5)
                self.log("fault: read %d bytes before acting" % len(chunk))
            except (asyncio.TimeoutError, ConnectionError):
                pass
        if step == "tls" and self.tls_state == "-":
            self.tls_state = "failed"
        if action == "hang":
            try:
                while await self.r.read(65536):
                    pass
            except (ConnectionError, ssl.SSLError):
                pass
            self.log("fault: peer closed the hung connection")
        elif action == "rst":
            sock = self.w.get_extra_info("socket")
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except (OSError, AttributeError) as e:
                self.log("fault: cannot set SO_LINGER: %r" % (e,))
            self.w.transport.abort()
        return True

    async def send(self, text):
        for line in text.split("\n"):
            self.log("> " + line)
        self.w.write(text.replace("\n", "\r\n").encode() + b"\r\n")
        await self.w.drain()

    async def readline(self):
        try:
            line = await asyncio.wait_for(self.r.readuntil(b"\n"), self.srv.idle)
        except asyncio.IncompleteReadError as e:
            self.partial = e.partial
            if e.partial:
                self.log("connection closed mid-line (%d bytes)" % len(e.partial))
            return None
        except asyncio.LimitOverrunError:
            return None
        return line

    def ehlo_lines(self):
        caps = [self.srv.name, "PIPELINING", "SIZE %d" % self.srv.max_size, "8BITMIME",
                "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"]
        caps = [c for c in caps if c not in self.srv.without]
        if self.tls is None and not self.starttls_used and self.srv.offer_starttls:
            caps.append("XXXXXXXA" if self.srv.strip_starttls else "STARTTLS")
        caps.append("HELP")
        return "\n".join(("250-" if i < len(caps) - 1 else "250 ") + c for i, c in enumerate(caps))

    async def run(self):
        self.log("connect from %s to %s:%d" % (self.peer, self.listen, self.port))
        try:
            if await self.fault("greeting"):
                return
            await self.send("220 %s ESMTP mxserver" % self.srv.name)
            while True:
                raw = await self.readline()
                if raw is None:
                    self.log("connection closed by peer")
                    break
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                self.log("< " + line)
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                step = {"EHLO": "ehlo", "HELO": "ehlo", "STARTTLS": "starttls", "MAIL": "mail",
                        "RCPT": "rcpt", "DATA": "data", "QUIT": "quit"}.get(verb)
                if step == "ehlo" and self.tls is not None:
                    step = "ehlo-tls"
                if step and await self.fault(step):
                    break
                handler = getattr(self, "cmd_" + verb, None) if verb.isalpha() else None
                if handler is None:
                    await self.send("500 5.5.2 Command unrecognized")
                    continue
                if await handler(arg) == "close":
                    break
        except (ConnectionError, asyncio.TimeoutError, ssl.SSLError) as e:
            self.log("connection error: %r" % (e,))
        finally:
            self.log_connection()
            try:
                self.w.close()
            except Exception:
                pass
            self.log("closed")

    async def cmd_EHLO(self, arg):
        if not arg.strip():
            await self.send("501 5.5.4 EHLO needs a domain")
            return
        self.helo = arg.strip()
        self.reset()
        await self.send(self.ehlo_lines())

    async def cmd_HELO(self, arg):
        if not arg.strip():
            await self.send("501 5.5.4 HELO needs a domain")
            return
        self.helo = arg.strip()
        self.reset()
        await self.send("250 %s" % self.srv.name)

    async def cmd_STARTTLS(self, arg):
        if arg.strip():
            await self.send("501 5.5.4 No parameters allowed")
            return
        if self.srv.strip_starttls:  # what a STARTTLS-stripping middlebox makes of it
            await self.send("500 5.5.1 Command unrecognized")
            return
        if self.tls is not None or self.starttls_used or not self.srv.offer_starttls:
            await self.send("503 5.5.1 STARTTLS not available")
            return
        # Anything the client pipelined after STARTTLS must not survive into the TLS session.
        pending = bytes(self.r._buffer)
        if pending:
            self.injected = len(pending)
            self.log("discarding %d bytes pipelined after STARTTLS: %r" % (len(pending), pending[:200]))
            self.r._buffer.clear()
        self.starttls_used = True
        inject = self.srv.inject
        if inject and self.srv.inject_delay <= 0:
            # the 220 and the injected bytes in one write: one TCP segment
            self.log("> 220 2.0.0 Ready to start TLS")
            self.log("inject: %d bytes in the same segment as the 220: %r" % (len(inject), inject[:200]))
            self.w.write(b"220 2.0.0 Ready to start TLS\r\n" + inject)
            await self.w.drain()
        else:
            await self.send("220 2.0.0 Ready to start TLS")
        if inject and self.srv.inject_delay > 0:
            await asyncio.sleep(self.srv.inject_delay)
            self.log("inject: %d bytes %.2f s after the 220: %r" % (len(inject), self.srv.inject_delay,
                                                                     inject[:200]))
            self.tls_state = "failed"
            self.log_connection()
            self.w.write(inject)
            await self.w.drain()
            # the client's handshake (if it started one) reads our bytes as a ServerHello and
            # fails; wait for it to give up
            try:
                while await asyncio.wait_for(self.r.read(65536), 10):
                    pass
            except (asyncio.TimeoutError, ConnectionError):
                pass
            return "close"
        if await self.fault("tls"):
            self.log_connection()
            return "close"
        if self.srv.bad_tls:
            self.log("bad-tls: sending garbage instead of a TLS handshake")
            self.tls_state = "failed"
            self.log_connection()
            self.w.write(b"this is not a TLS ServerHello\r\n" * 4)
            await self.w.drain()
            # Close only after the client's first handshake bytes (its ClientHello) arrived:
            # closing at once could make that write fail (EPIPE/SIGPIPE: swaks then dies
            # before reporting the failed handshake). Do not wait for the client to close:
            # a client that discarded the garbage (pipelined before its handshake) waits
            # for a ServerHello and needs our close to see the failure.
            try:
                await asyncio.wait_for(self.r.read(65536), 2)
            except (asyncio.TimeoutError, ConnectionError):
                pass
            return "close"
        try:
            await self.w.start_tls(self.srv.ssl_ctx, ssl_handshake_timeout=10)
        except Exception as e:
            self.tls_state = "failed"
            self.log("TLS handshake failed: %r" % (e,))
            return "close"
        sslobj = self.w.get_extra_info("ssl_object")
        self.tls = {"version": sslobj.version(), "cipher": sslobj.cipher()[0],
                    "sni": getattr(sslobj, "mx_sni", None), "resumed": sslobj.session_reused}
        if self.srv.ask_client_cert:
            cn = None
            for rdn in (sslobj.getpeercert() or {}).get("subject", ()):
                for k, v in rdn:
                    if k == "commonName":
                        cn = v
            self.tls["client_cert"] = cn
        self.tls_state = "ok"
        self.log("TLS established: %s" % json.dumps(self.tls))
        self.log_connection()
        self.helo = None
        self.reset()

    async def cmd_MAIL(self, arg):
        if self.helo is None:
            await self.send("503 5.5.1 Send EHLO first")
            return
        if self.mail_from is not None:
            await self.send("503 5.5.1 Nested MAIL command")
            return
        p = split_path_params(arg, "FROM")
        if p is None:
            await self.send("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        addr, params = p
        for k in params:
            if k not in ("SIZE", "BODY", "SMTPUTF8", "RET", "ENVID") or \
                    self.srv.param_cap.get(k) in self.srv.without:
                await self.send("555 5.5.4 Unsupported parameter %s" % k)
                return
        if "SIZE" in params:
            try:
                if int(params["SIZE"]) > self.srv.max_size:
                    await self.send("552 5.3.4 Message too big")
                    return
            except (TypeError, ValueError):
                await self.send("501 5.5.4 Bad SIZE")
                return
        self.log_connection()
        self.mail_from = addr
        self.mail_params = params
        await self.send("250 2.1.0 Ok")

    async def cmd_RCPT(self, arg):
        if self.mail_from is None:
            await self.send("503 5.5.1 Need MAIL first")
            return
        p = split_path_params(arg, "TO")
        if p is None or not p[0]:
            await self.send("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        addr, params = p
        for k in params:
            if k not in ("NOTIFY", "ORCPT") or self.srv.param_cap.get(k) in self.srv.without:
                await self.send("555 5.5.4 Unsupported parameter %s" % k)
                return
        local = addr.rsplit("@", 1)[0].lower()
        for pre in ("datareply", "dotreply"):
            if local.startswith(pre) and local[len(pre):len(pre) + 3].isdigit():
                self.flags.add((pre, local[len(pre):len(pre) + 3]))
        if local.startswith("malformed"):
            self.log("> 2x\\x01 (malformed)")
            self.w.write(b"2x\x01\r\n")
            await self.w.drain()
            return
        if local.startswith("rejectdata"):
            self.flags.add("rejectdata")
        elif local.startswith("hostiledata"):
            self.flags.add("hostiledata")
        elif local.startswith("tempdata"):
            self.flags.add("tempdata")
        elif local.startswith("reject"):
            await self.send("550 5.1.1 <%s>: user unknown" % addr)
            return
        elif local.startswith("tempfail"):
            await self.send("451 4.3.0 <%s>: try later" % addr)
            return
        elif local.startswith("close421"):
            await self.send("421 4.3.2 %s closing connection" % self.srv.name)
            return "close"
        elif local.startswith("dropdata"):
            self.flags.add("dropdata")
        elif local.startswith("slowdata"):
            self.flags.add("slowdata")
        self.rcpts.append(addr)
        self.rcpt_params.append(params)
        await self.send("250 2.1.5 Ok")

    async def cmd_DATA(self, arg):
        if arg.strip():
            await self.send("501 5.5.4 No parameters allowed")
            return
        if self.mail_from is None:
            await self.send("503 5.5.1 Need MAIL first")
            return
        if not self.rcpts:
            await self.send("554 5.5.1 No valid recipients")
            return
        special = dict(f for f in self.flags if isinstance(f, tuple))
        if "datareply" in special:
            code = special["datareply"]
            self.reset()
            await self.send("%s %sDATA answered %s by mxserver" % (
                code, "%s.0.0 " % code[0] if code[0] in "245" else "", code))
            return
        await self.send("354 End data with <CR><LF>.<CR><LF>")
        if await self.fault("body"):
            return "close"
        if "dropdata" in self.flags:
            chunk = await self.r.read(64)
            self.log("dropdata: read %d bytes, closing without reply" % len(chunk))
            return "close"
        body = []
        size = 0
        bare_lf = False
        after_crlf = True
        while True:
            raw = await self.readline()
            if raw is None:
                eight = sum(1 for part in body + [getattr(self, "partial", b"")]
                            for o in part if o >= 0x80)
                self.log("connection lost during DATA (%d bytes%s)" % (
                    size, ", %d 8-bit octets" % eight if eight else ""))
                return "close"
            if raw == b".\r\n" and after_crlf:
                break
            if not raw.endswith(b"\r\n"):
                bare_lf = True
            if after_crlf and raw.startswith(b"."):
                raw = raw[1:]
            after_crlf = raw.endswith(b"\r\n")
            body.append(raw)
            size += len(raw)
        data = b"".join(body)
        self.log("received %d octets of message data%s" % (len(data), " (bare LF seen)" if bare_lf else ""))
        if await self.fault("dot"):
            self.log("fault: message of %d octets not stored" % len(data))
            return "close"
        flags = self.flags
        special = dict(f for f in flags if isinstance(f, tuple))
        if "dotreply" in special:
            code = special["dotreply"]
            self.reset()
            self.log("dotreply: message of %d octets not stored" % len(data))
            await self.send("%s %sfinal dot answered %s by mxserver" % (
                code, "%s.0.0 " % code[0] if code[0] in "245" else "", code))
            return
        if "slowdata" in flags:
            self.log("slowdata: sleeping %g s" % self.srv.slowdata_secs)
            await asyncio.sleep(self.srv.slowdata_secs)
        if len(data) > self.srv.max_size:
            self.reset()
            await self.send("552 5.3.4 Message too big")
            return
        if "rejectdata" in flags:
            self.reset()
            await self.send("554 5.6.0 Message content rejected")
            return
        if "hostiledata" in flags:
            self.reset()
            await self.send("554 5.6.0 <script>alert(\"mx\")</script> & 'rejected' <b>bold</b>")
            return
        if "tempdata" in flags:
            self.reset()
            await self.send("451 4.3.0 Message content deferred, try later")
            return
        meta = {"helo": self.helo, "mail_from": self.mail_from, "mail_params": self.mail_params,
                "rcpts": self.rcpts, "rcpt_params": self.rcpt_params, "tls": self.tls,
                "peer": self.peer, "listen": self.listen, "port": self.port,
                "conn": self.conn_no, "size": len(data), "bare_lf": bare_lf}
        ident = self.srv.spool.store(data, meta)
        self.log("stored %s for %s" % (ident, ",".join(self.rcpts)))
        self.reset()
        await self.send("250 2.0.0 Ok: queued as %s" % ident)

    async def cmd_RSET(self, arg):
        self.reset()
        await self.send("250 2.0.0 Ok")

    async def cmd_NOOP(self, arg):
        await self.send("250 2.0.0 Ok")

    async def cmd_VRFY(self, arg):
        await self.send("252 2.5.0 Cannot VRFY user")

    async def cmd_HELP(self, arg):
        await self.send("214 2.0.0 mxserver test MX")

    async def cmd_QUIT(self, arg):
        await self.send("221 2.0.0 Bye")
        return "close"


class Server:
    def __init__(self, a):
        self.name = a.name
        self.spool = Spool(a.spool)
        self.max_size = a.max_size
        self.idle = a.idle
        self.slowdata_secs = a.slowdata_secs
        self.bad_tls = a.bad_tls
        self.offer_starttls = not a.no_starttls
        self.strip_starttls = a.strip_starttls
        self.inject = codecs.decode(a.inject_after_starttls, "unicode_escape").encode("latin-1") \
            if a.inject_after_starttls else b""
        self.inject_delay = a.inject_delay
        self.fault_file = a.fault_file
        self.fault_static = parse_fault(a.fault) if a.fault else None
        self.without = set(c.upper() for c in (a.without or []))
        self.param_cap = {"BODY": "8BITMIME", "SMTPUTF8": "SMTPUTF8", "RET": "DSN", "ENVID": "DSN",
                          "NOTIFY": "DSN", "ORCPT": "DSN"}
        self.nconn = 0
        self.active = 0
        self.max_active = 0
        self.ssl_ctx = None
        self.ask_client_cert = a.ask_client_cert
        if self.offer_starttls and not self.bad_tls:
            if not (a.cert and a.key):
                sys.exit("mxserver: --cert and --key are needed unless --no-starttls or --bad-tls")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(a.cert, a.key)
            if a.max_tls:
                ctx.maximum_version = {"TLSv1.2": ssl.TLSVersion.TLSv1_2,
                                       "TLSv1.3": ssl.TLSVersion.TLSv1_3}[a.max_tls]
            if a.ask_client_cert:
                ctx.verify_mode = ssl.CERT_OPTIONAL
                ctx.load_verify_locations(a.ask_client_cert)

            def sni_cb(sslobj, name, _ctx):
                try:
                    sslobj.mx_sni = name
                except Exception:
                    pass
                return None

            ctx.sni_callback = sni_cb
            self.ssl_ctx = ctx

    def fault_for(self, step):
        """The fault set for STEP (static --fault, else --fault-file read now), or None."""
        f = self.fault_static
        if f is None and self.fault_file:
            try:
                with open(self.fault_file) as fh:
                    f = parse_fault(fh.read())
            except FileNotFoundError:
                f = None
            except (OSError, ValueError) as e:
                log("fault file %s: %s" % (self.fault_file, e))
                f = None
        if f is None or f[0] != step:
            return None
        if f[2] and f is not self.fault_static:
            try:
                os.unlink(self.fault_file)
            except OSError:
                pass
        elif f[2]:
            self.fault_static = None
        return f

    async def handle(self, reader, writer):
        # SPOOL/max_concurrency: the most connections open at once (limit tests)
        self.active += 1
        if self.active > self.max_active:
            self.max_active = self.active
            with open(os.path.join(self.spool.dir, "max_concurrency"), "w") as f:
                f.write("%d\n" % self.max_active)
        try:
            await Session(self, reader, writer).run()
        finally:
            self.active -= 1


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", action="append", required=True, help="IP:PORT (repeatable)")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--no-starttls", action="store_true")
    ap.add_argument("--bad-tls", action="store_true")
    ap.add_argument("--strip-starttls", action="store_true",
                    help="MITM: STARTTLS replaced in EHLO, the command unrecognized")
    ap.add_argument("--inject-after-starttls", metavar="TEXT",
                    help="bytes sent right after the 220 to STARTTLS (Python escapes)")
    ap.add_argument("--inject-delay", type=float, default=0.0, metavar="S")
    ap.add_argument("--fault", metavar="SPEC", help="STEP [close|rst|hang] [once]")
    ap.add_argument("--fault-file", metavar="FILE", help="a SPEC read at every step")
    ap.add_argument("--without", action="append", metavar="CAP",
                    help="leave an EHLO capability out (8BITMIME, DSN, SMTPUTF8); repeatable")
    ap.add_argument("--spool", required=True)
    ap.add_argument("--name", default="mx.test")
    ap.add_argument("--ready-file")
    ap.add_argument("--max-size", type=int, default=52428800)
    ap.add_argument("--idle", type=float, default=300.0)
    ap.add_argument("--slowdata-secs", type=float, default=5.0, metavar="S",
                    help="how long slowdata* recipients hold the final reply")
    ap.add_argument("--backlog", type=int, default=100, help="listen backlog (load tests)")
    ap.add_argument("--max-tls", choices=("TLSv1.2", "TLSv1.3"), help="highest TLS version")
    ap.add_argument("--ask-client-cert", metavar="CAFILE",
                    help="request a client certificate, verified against CAFILE")
    a = ap.parse_args()
    if a.fault:
        try:
            parse_fault(a.fault)
        except ValueError as e:
            ap.error("--fault: %s" % e)
    srv = Server(a)
    servers = []
    for l in a.listen:
        host, _, port = l.rpartition(":")
        s = await asyncio.start_server(srv.handle, host.strip("[]"), int(port),
                                       limit=MAX_LINE, reuse_address=True, backlog=a.backlog)
        servers.append(s)
        log("%s listening on %s:%s%s%s" % (a.name, host, port,
                                          " (no STARTTLS)" if a.no_starttls else "",
                                          " (bad TLS)" if a.bad_tls else ""))
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write("%d\n" % os.getpid())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log("%s stopping" % a.name)
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
