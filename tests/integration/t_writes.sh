#!/usr/bin/env bash
# t_writes.sh — writes per relayed message on a reused upstream connection ("cheaper
# per message"), counted by mxguard itself (mxguard_upstream_writes_total): with PIPELINING,
# RSET, MAIL and the first RCPT go out in one write (RFC 2920 §3.1), and the Received: header,
# a message that arrives in one read and the final dot in one more (3 writes: RSET+MAIL+RCPT,
# DATA, the rest); a message in two reads costs one write more (the header with the first
# part, the dot with the last); an MX without PIPELINING gets RSET, MAIL and RCPT one by one
# (5); on a fresh connection the client's last TLS handshake flight and EHLO share a write.
# Every message arrives byte for byte + Received:.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12 --without PIPELINING
tb_write_config
export MXGUARD_UPSTREAM_CACHE_IDLE=30s
export MXGUARD_METRICS_LISTEN=$TB_MXG_IP:9125
tb_start_mxguard

writes() { # mxguard_upstream_writes_total now
    "$PYTHON" - "$TB_MXG_IP" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://%s:9125/metrics" % sys.argv[1], timeout=5).read().decode()
print(next((l.split()[1] for l in body.splitlines()
            if l.startswith("mxguard_upstream_writes_total ")), "absent"))
PY
}
# msg NAME RCPT — $TB/NAME.msg and $TB/NAME.data (dot-stuffed, with the final ".\r\n")
msg() {
    tb_make_message "$1" --to "$2" --subject "$1" --id "$1"
    { cat "$TB/$1.wire"; printf '\r\n'; } >"$TB/$1.data"
}
# one NAME RCPT — one message in one client session, the data in one send
one() {
    msg "$1" "$2"
    smtp_chat "$1" "EHLO client.test" "MAIL FROM:<sender@client.test>" "RCPT TO:<$2>" DATA \
        "@$TB/$1.data" QUIT
    assert_eq "$1: 250 after the dot" 250 "$(awk -F'\t' '$1 == "DOT" { print $2 }' "$TB/$1.chat")"
}
# delta W0 W1 — W1 - W0 (or "absent")
delta() { if [ "$1" = absent ] || [ "$2" = absent ]; then echo absent; else echo $(($2 - $1)); fi; }

# 1. a fresh connection with STARTTLS: EHLO, STARTTLS, ClientHello, the client's last
#    handshake flight with EHLO (TLS 1.3; in TLS 1.2 EHLO follows the server's Finished alone),
#    MAIL+RCPT, DATA, the rest: 7 writes
w0=$(writes)
one warm1 a@example.test
w1=$(writes)
assert_eq "fresh connection with STARTTLS: 7 writes" 7 "$(delta "$w0" "$w1")"
# 2. PIPELINING, TLS, a cached connection: 3 writes
w0=$(writes)
one reuse1 b@example.test
w1=$(writes)
assert_eq "pipelining MX, cached connection, message in one read: 3 writes" 3 "$(delta "$w0" "$w1")"
m=$(spool_last "$TB/spool/mx1")
[ -n "$m" ] && assert_eq "reuse1: byte for byte + Received:" "received+same" \
    "$(eml_compare "$m.eml" "$TB/reuse1.msg")"
[ -n "$m" ] && assert_match "reuse1 went over TLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
assert_file_grep "mx1 got RSET (the connection was reused)" "$TB/mx1.log" '< RSET'

# 3. the message in two reads: the Received: header goes with the first part, the dot with
#    the second (4 writes)
msg split1 c@example.test
head -c 100 "$TB/split1.data" >"$TB/split1.a"
tail -c +101 "$TB/split1.data" >"$TB/split1.b"
first=$("$PYTHON" -c 'import sys; print(open(sys.argv[1], "rb").read().decode("latin-1").encode("unicode_escape").decode())' "$TB/split1.a")
w0=$(writes)
smtp_chat split1 "EHLO client.test" "MAIL FROM:<sender@client.test>" "RCPT TO:<c@example.test>" \
    DATA "raw:0:$first" sleep:0.5 "@$TB/split1.b" QUIT
w1=$(writes)
assert_eq "split1: 250 after the dot" 250 "$(awk -F'\t' '$1 == "DOT" { print $2 }' "$TB/split1.chat")"
assert_eq "message in two reads: 4 writes" 4 "$(delta "$w0" "$w1")"
m=$(spool_last "$TB/spool/mx1")
[ -n "$m" ] && assert_eq "split1: byte for byte + Received:" "received+same" \
    "$(eml_compare "$m.eml" "$TB/split1.msg")"

# 4. no PIPELINING (mx2, other.test): RSET alone, then MAIL, then RCPT (5 writes)
one warm2 a@other.test
w0=$(writes)
one reuse2 b@other.test
w1=$(writes)
assert_eq "MX without PIPELINING, cached connection: 5 writes" 5 "$(delta "$w0" "$w1")"
m=$(spool_last "$TB/spool/mx2")
[ -n "$m" ] && assert_eq "reuse2: byte for byte + Received:" "received+same" \
    "$(eml_compare "$m.eml" "$TB/reuse2.msg")"
assert_eq "mx2: one connection for both messages" 1 "$(wc -l <"$TB/spool/mx2/connections.log")"
assert_eq "mx1 has 3 messages" 3 "$(spool_count "$TB/spool/mx1")"

tb_finish
