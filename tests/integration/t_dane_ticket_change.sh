#!/usr/bin/env bash
# t_dane_ticket_change.sh — the hostile row "the domain's TLSA RRset changes while a TLS session
# (and a cached connection) verified under the old one is kept" (docs/ARCHITECTURE.md §Reuse:
# OpenSSL re-verifies nothing on a resumed session, so the requirement digest with the TLSA set
# in the session-store and connection-cache keys is the only guard).
# dane-swap.test (mkzones.sh, TTL 2 s, mxguard's dns.cache_max_ttl 1 s): a message under TLSA
# variant a (matching) stores tickets (and parks the connection); the TLSA RRset becomes b (a
# wrong digest only: a rollover gone wrong, an attacker's key): the next message must get
# 451 4.7.5 at RCPT after a FULL handshake that failed DANE — no resumption, no reuse of the
# parked connection, nothing reaches the MX; then c (a new set that matches: 3 0 1 of the
# certificate): delivered after a full handshake verified by the new record.
# Three mxguard runs: (1) TLS 1.3 tickets only (upstream.cache_idle = 0s), (2) a parked
# connection and tickets (cache_idle 30s; back to a at the end: the connection parked under a
# is reused, the requirement being identical again), (3) an MX with TLS 1.2 only, whose
# session stays in the store after a resumption. Each first shows that the session / parked
# connection IS used under an unchanged TLSA set (so a broken guard would show).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx dane-swap 127.0.70.36
MX=dane-swap
MPORT=9126
tb_write_config -D 'cache_max_ttl = "1s";'
export MXGUARD_UPSTREAM_TLS_SESSION_CACHE=1000
export MXGUARD_METRICS_LISTEN=$TB_MXG_IP:$MPORT

metric() { # metric NAME{LABELS} — a counter of the running mxguard's /metrics (0 if absent)
    "$PYTHON" - "$TB_MXG_IP:$MPORT" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://%s/metrics" % sys.argv[1], timeout=5).read().decode()
print(next((l.split()[1] for l in body.splitlines() if l.startswith(sys.argv[2] + " ")), "0"))
PY
}
hs() { metric "mxguard_upstream_tls_handshakes_total{kind=\"$1\"}"; }   # full | resumed
cc() { metric "mxguard_upstream_connections_total{how=\"$1\"}"; }       # new | reused
conns() { # connections the MX accepted that got as far as STARTTLS or MAIL (connections.log)
    if [ -f "$TB/spool/$MX/connections.log" ]; then wc -l <"$TB/spool/$MX/connections.log"; else echo 0; fi
}
conn_line() { sed -n "${1}p" "$TB/spool/$MX/connections.log" 2>/dev/null; } # conn_line N
mails() { grep -c '< MAIL FROM' "$TB/$MX.log" 2>/dev/null; }             # MAIL commands the MX got
send() { # send NAME — one message to a@dane-swap.test in its own client session
    tb_make_message "$1" --to a@dane-swap.test --subject "$1" --id "$1"
    swaks_send "$1" --to a@dane-swap.test --no-data-fixup --data "@$TB/$1.wire"
}
delivered() { # delivered NAME N — NAME got 250 after the dot; the MX holds N messages, the last intact
    local m
    assert_reply "$1: delivered (250 after the dot)" "$SW_DOT" "250"
    assert_file_count "$TB/spool/$MX" "$2" "$1: the MX holds $2 message(s)"
    m=$(spool_last "$TB/spool/$MX")
    [ -n "$m" ] && assert_eq "$1: the MX's last message is $1, intact" "received+same" \
        "$(eml_compare "$m.eml" "$TB/$1.msg")"
}
swap() { # swap VARIANT — serve dane-swap.test's TLSA variant, wait out mxguard's DNS cache
    tb_dns_swap dane-swap.test "$1"
    sleep 1.5 # dns.cache_max_ttl = 1s (and the zone's TTL is 2 s)
}
refused() { # refused NAME — the TLSA no longer matches: 451 4.7.5 DANE at RCPT, nothing relayed
    local mails0=$2
    assert_reply "$1: RCPT deferred 451 4.7.5" "$SW_RCPT" "451 4.7.5"
    assert_contains "$1: the reply says DANE" "$SW_RCPT" "DANE"
    assert_eq "$1: no final dot reply (nothing relayed)" "" "$SW_DOT"
    assert_eq "$1: the MX got no MAIL command" "$mails0" "$(mails)"
}

# ------------------------------------------------ 1. stored tickets only (no connection cache)
echo "# --- 1. TLS session store (upstream.cache_idle = 0s)"
export MXGUARD_UPSTREAM_CACHE_IDLE=0s
tb_start_mxguard -n mxguard
mark=$(tb_log_mark)
send t1
delivered t1 1
assert_eq "t1: a full handshake" "1 0" "$(hs full) $(hs resumed)"
assert_match "t1: MX side: a full TLS handshake" "$(conn_line 1)" 'tls=ok .*resumed=no$'
send t2
delivered t2 2
assert_eq "t2 (TLSA unchanged): the stored ticket is used: resumed" "1 1" "$(hs full) $(hs resumed)"
assert_match "t2: MX side: a resumed handshake" "$(conn_line 2)" 'tls=ok .*resumed=yes$'
assert_log "t2: mxguard logged the resumed DANE session" "$mark" 'DANE \(resumed TLS session'

swap b
mark=$(tb_log_mark)
m0=$(mails)
send t3
refused t3 "$m0"
assert_file_count "$TB/spool/$MX" 2 "t3: the MX still holds 2 messages"
assert_eq "t3: not resumed (metrics: still 1 full, 1 resumed)" "1 1" "$(hs full) $(hs resumed)"
assert_eq "t3: the MX saw a third connection" 3 "$(conns)"
assert_match "t3: MX side: the handshake failed (mxguard refused the key)" "$(conn_line 3)" 'tls=failed'
assert_log "t3: mxguard: no TLSA record matched" "$mark" 'DANE: no TLSA record matched mx\.dane-swap\.test'
assert_no_log "t3: no resumed session" "$mark" 'resumed TLS session'

swap c
mark=$(tb_log_mark)
send t4
delivered t4 3
assert_eq "t4 (new matching TLSA): a full handshake, not resumed" "2 1" "$(hs full) $(hs resumed)"
assert_match "t4: MX side: a full TLS handshake" "$(conn_line 4)" 'tls=ok .*resumed=no$'
assert_log "t4: verified by the new record (3 0 1)" "$mark" 'TLSA 3 0 1 matched'
send t5
delivered t5 4
assert_eq "t5 (TLSA c unchanged): resumes c's ticket" "2 2" "$(hs full) $(hs resumed)"
tb_stop mxguard

# ------------------------------------------------ 2. a parked connection and stored tickets
echo "# --- 2. connection cache + TLS session store (upstream.cache_idle = 30s)"
swap a
export MXGUARD_UPSTREAM_CACHE_IDLE=30s
tb_start_mxguard -n mxguard2
c0=$(conns) # (counts relative to part 1's end: a failure there does not shift these checks)
n0=$(spool_count "$TB/spool/$MX")
mark=$(tb_log_mark mxguard2)
send p1
delivered p1 $((n0 + 1))
assert_eq "p1: a full handshake" "1 0" "$(hs full) $(hs resumed)"
send p2
delivered p2 $((n0 + 2))
assert_eq "p2 (TLSA unchanged): the parked connection is reused" "1 1" "$(cc new) $(cc reused)"
assert_eq "p2: the MX saw one connection for p1 and p2" $((c0 + 1)) "$(conns)"
assert_log "p2: mxguard logged the reuse" "$mark" 'reusing the cached connection to mx\.dane-swap\.test' mxguard2

swap b
mark=$(tb_log_mark mxguard2)
m0=$(mails)
send p3
refused p3 "$m0"
assert_file_count "$TB/spool/$MX" $((n0 + 2)) "p3: the MX holds no new message"
assert_eq "p3: the parked connection was not reused (a new one)" "2 1" "$(cc new) $(cc reused)"
assert_eq "p3: no handshake completed, none resumed" "1 0" "$(hs full) $(hs resumed)"
assert_eq "p3: the MX saw a new connection" $((c0 + 2)) "$(conns)"
assert_match "p3: MX side: the handshake failed" "$(conn_line $((c0 + 2)))" 'tls=failed'
assert_log "p3: mxguard: no TLSA record matched" "$mark" 'DANE: no TLSA record matched mx\.dane-swap\.test' mxguard2
assert_no_log "p3: no reuse" "$mark" 'reusing the cached connection' mxguard2

swap c
mark=$(tb_log_mark mxguard2)
send p4
delivered p4 $((n0 + 3))
assert_eq "p4 (new matching TLSA): a new connection" "3 1" "$(cc new) $(cc reused)"
assert_eq "p4: a full handshake, not resumed" "2 0" "$(hs full) $(hs resumed)"
assert_log "p4: verified by the new record (3 0 1)" "$mark" 'TLSA 3 0 1 matched' mxguard2
assert_no_log "p4: no reuse" "$mark" 'reusing the cached connection' mxguard2

# back to a: the requirement is identical to the one the parked connection was verified under
# again, so reusing it is right (§Reuse: keyed by content, not by time)
swap a
mark=$(tb_log_mark mxguard2)
send p5
delivered p5 $((n0 + 4))
assert_eq "p5 (TLSA a again): the connection parked under a is reused" "3 2" "$(cc new) $(cc reused)"
assert_log "p5: mxguard logged the reuse" "$mark" 'reusing the cached connection to mx\.dane-swap\.test' mxguard2
tb_stop mxguard2

# ------------------------------------------------ 3. TLS 1.2 sessions (kept for several uses)
echo "# --- 3. an MX with TLS 1.2 only: a session stays in the store after a resumption"
tb_stop dane-swap
MX=dane-swap12
tb_start_mx --cert mx.dane-swap.test "$MX" 127.0.70.36 --max-tls TLSv1.2
export MXGUARD_UPSTREAM_CACHE_IDLE=0s
tb_start_mxguard -n mxguard3
mark=$(tb_log_mark mxguard3)
send u1
delivered u1 1
assert_eq "u1: a full handshake" "1 0" "$(hs full) $(hs resumed)"
assert_match "u1: MX side: TLS 1.2" "$(json_get "$(spool_last "$TB/spool/$MX").json" tls.version)" '^TLSv1\.2$'
send u2
delivered u2 2
assert_eq "u2 (TLSA unchanged): the TLS 1.2 session is resumed" "1 1" "$(hs full) $(hs resumed)"
assert_match "u2: MX side: a resumed handshake" "$(conn_line 2)" 'tls=ok .*resumed=yes$'

swap b
mark=$(tb_log_mark mxguard3)
m0=$(mails)
send u3
refused u3 "$m0"
assert_file_count "$TB/spool/$MX" 2 "u3: the MX holds no new message"
assert_eq "u3: not resumed" "1 1" "$(hs full) $(hs resumed)"
assert_match "u3: MX side: the handshake failed" "$(conn_line 3)" 'tls=failed'
assert_log "u3: mxguard: no TLSA record matched" "$mark" 'DANE: no TLSA record matched mx\.dane-swap\.test' mxguard3

swap c
mark=$(tb_log_mark mxguard3)
send u4
delivered u4 3
assert_eq "u4 (new matching TLSA): a full handshake" "2 1" "$(hs full) $(hs resumed)"
assert_log "u4: verified by the new record (3 0 1)" "$mark" 'TLSA 3 0 1 matched' mxguard3

tb_finish
