#!/usr/bin/env bash
# t_conncache.sh — the upstream connection cache and TLS resumption (docs/ARCHITECTURE.md §Reuse)
# against real MX servers: a second message to the same MX goes over the same connection (one line
# in the MX's connections.log, both messages from the same peer port, RSET between them,
# "reused" in mxguard's log); another requirement to the same MX address (another reference
# name; a per-domain policy override) gets its own connection; an MX that closes the idle
# connection, and one that drops it right after RSET (MAIL), cost a new connection, never a
# failed delivery; three messages to a DANE domain over one connection count one TLSRPT
# success (one handshake); with one transaction per connection a new connection resumes the
# TLS session (still DANE, TLSRPT counts each handshake); SIGTERM sends QUIT on idle ones.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# server.workers = 1: it counts one connection cache's reuse across client sessions; each worker
# has its own cache (docs/ARCHITECTURE.md §Workers), so with several workers a session may
# land where the parked connection is not (t_workers.sh covers the workers)
TB_WORKERS=1
tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12 --idle 1
# a fault-injecting MX on dead.fallback.test's address (fallback.test: MX 10 there)
tb_start_mx --cert mx1.example.test dead 127.0.70.13 --fault-file "$TB/dead.fault"
tb_start_mx dane-ee 127.0.70.21

printf 'insecure.test encrypt\n' >"$TB/tls_policy"
rpt_config='tlsrpt: {
  send_reports = false;
  flush_interval = "1s";
  organization_name = "mxguard test";
  contact_info = "mailto:tlsrpt@mxguard.test";
  submitter = "mxguard.test";
};'
tb_write_config "$rpt_config"
export MXGUARD_UPSTREAM_CACHE_IDLE=30s
export MXGUARD_UPSTREAM_TLS_SESSION_CACHE=1000
export MXGUARD_TLS_POLICY_MAP="$TB/tls_policy"
tb_start_mxguard
DAY=$(date -u +%F)

conns() { # conns NAME — connections the MX server NAME saw
    if [ -f "$TB/spool/$1/connections.log" ]; then wc -l <"$TB/spool/$1/connections.log"; else echo 0; fi
}
peers() { # peers NAME — the distinct peer IP:PORTs of the messages in NAME's spool
    local f
    for f in "$TB/spool/$1"/*.json; do [ -f "$f" ] && json_get "$f" peer; done | sort -u | wc -l
}
send() { # send NAME RCPT — one message in its own client session; expects 250 after the dot
    tb_make_message "$1" --to "$2" --subject "$1" --id "$1"
    swaks_send "$1" --to "$2" --no-data-fixup --data "@$TB/$1.wire"
    assert_reply "$1: delivered (250 after the dot)" "$SW_DOT" "250"
}

# 1. two messages, two client sessions, one upstream connection
mark=$(tb_log_mark)
send reuse1 a@example.test
send reuse2 b@example.test
assert_file_count "$TB/spool/mx1" 2 "mx1 has both messages"
sleep 0.3 # connections.log is written when the TLS state is known (already) — settle anyway
assert_eq "mx1 saw one connection for two messages" 1 "$(conns mx1)"
assert_eq "both messages came from the same peer port" 1 "$(peers mx1)"
assert_file_grep "mx1 got RSET before the second MAIL" "$TB/mx1.log" '< RSET'
assert_contains "mxguard logged the reuse" "$(tb_log_since "$mark")" "reused connection, transaction 2"
m=$(spool_last "$TB/spool/mx1")
[ -n "$m" ] && assert_match "second message still over TLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
assert_eq "second message: byte for byte + Received:" "received+same" "$(eml_compare "$m.eml" "$TB/reuse2.msg")"

# 2. same MX address, another reference name (implicit.test: A record 127.0.70.11, host name
#    implicit.test instead of mx1.example.test): a connection of its own
send implicit1 c@implicit.test
assert_file_count "$TB/spool/mx1" 3 "mx1 has the implicit.test message"
assert_eq "another reference name: a second connection to mx1" 2 "$(conns mx1)"
send implicit2 d@implicit.test
assert_eq "implicit.test again: its own cached connection (still 2)" 2 "$(conns mx1)"

# 3. same MX host and address, another policy (override "encrypt" for insecure.test)
mark=$(tb_log_mark)
send override1 e@insecure.test
assert_eq "another policy (override encrypt): a third connection to mx1" 3 "$(conns mx1)"
send override2 f@insecure.test
assert_eq "the same override again: no new connection" 3 "$(conns mx1)"
send reuse3 g@example.test
assert_eq "example.test again: its first connection is still cached" 3 "$(conns mx1)"
assert_eq "mx1 has all 7 messages" 7 "$(spool_count "$TB/spool/mx1")"
assert_eq "7 messages from 3 peer ports" 3 "$(peers mx1)"

# 4. the MX closes an idle cached connection (mx2 runs with --idle 1): the next message goes
#    over a new connection, delivered
mark=$(tb_log_mark)
send idle1 a@other.test
sleep 2.5
send idle2 b@other.test
assert_eq "mx2 has both messages" 2 "$(spool_count "$TB/spool/mx2")"
assert_eq "mx2 saw two connections (it closed the first)" 2 "$(conns mx2)"
assert_contains "mxguard noticed the idle connection ending" "$(tb_log_since "$mark")" \
    "an idle cached connection ended"

# 5. the MX drops the cached connection right after RSET (at MAIL): a stale entry costs a new
#    connection, never a failed delivery
send stale1 a@fallback.test
tb_mx_fault dead "mail close once"
mark=$(tb_log_mark)
send stale2 b@fallback.test
assert_eq "the fault fired (the file is gone)" no "$([ -e "$TB/dead.fault" ] && echo yes || echo no)"
assert_eq "both fallback.test messages at the first MX" 2 "$(spool_count "$TB/spool/dead")"
assert_eq "two connections: the stale one and a new one" 2 "$(conns dead)"
assert_contains "mxguard connected afresh" "$(tb_log_since "$mark")" "is unusable; connecting afresh"
assert_eq "nothing went to the second MX (mx2) for it" 2 "$(spool_count "$TB/spool/mx2")"

# 6. DANE: three messages over one connection = one TLS handshake = one TLSRPT success
mark=$(tb_log_mark)
send dane1 a@dane-ee.test
send dane2 b@dane-ee.test
send dane3 c@dane-ee.test
assert_eq "dane-ee: one connection for three messages" 1 "$(conns dane-ee)"
assert_contains "DANE-verified connection reused" "$(tb_log_since "$mark")" "peer DANE (TLSA 3 1 1"
sleep 2.5 # tlsrpt.flush_interval
rpt() { # rpt EXPR — evaluate EXPR over the TLSRPT report of dane-ee.test
    timeout 30 "$MXG_BIN" report show "$DAY" dane-ee.test -c "$TB/mxguard.conf" >"$TB/rpt.json" 2>"$TB/rpt.err" </dev/null 9>&-
    "$PYTHON" - "$TB/rpt.json" "$1" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print("invalid-json: %s" % e); sys.exit()
P = [p for p in r.get("policies", []) if p["policy"]["policy-type"] == "tlsa"]
S = lambda k: sum(p["summary"][k] for p in P)
print(eval(sys.argv[2]))
PY
}
assert_eq "TLSRPT: one successful session (one handshake, three messages)" 1 \
    "$(rpt 'S("total-successful-session-count")')"
assert_eq "TLSRPT: no failures" 0 "$(rpt 'S("total-failure-session-count")')"

# 7. one transaction per connection (cache_max_uses = 1): the second connection resumes the
#    first one's TLS session; still DANE; TLSRPT counts each handshake
tb_stop mxguard
assert_file_grep "SIGTERM: the idle cached connections got QUIT" "$TB/mx1.log" '< QUIT'
export MXGUARD_UPSTREAM_CACHE_MAX_USES=1
export MXGUARD_METRICS_LISTEN=$TB_MXG_IP:9125
tb_start_mxguard -n mxguard2
mark=$(tb_log_mark mxguard2)
send resume1 d@dane-ee.test
send resume2 e@dane-ee.test
log=$(tb_log_since "$mark" mxguard2)
assert_eq "dane-ee: two more connections" 3 "$(conns dane-ee)"
assert_contains "the second handshake resumed the session" "$log" "DANE (resumed TLS session"
assert_not_contains "no reuse of connections with cache_max_uses = 1" "$log" "reused connection"
handshakes() { # handshakes KIND — mxguard_upstream_tls_handshakes_total{kind="KIND"} of mxguard2
    "$PYTHON" - "$TB_MXG_IP" "$1" "$TB/handshakes.metrics" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen("http://%s:9125/metrics" % sys.argv[1], timeout=5).read().decode()
open(sys.argv[3], "w").write(body)
key = 'mxguard_upstream_tls_handshakes_total{kind="%s"}' % sys.argv[2]
print(next((l.split()[1] for l in body.splitlines() if l.startswith(key + " ")), "absent"))
PY
}
assert_eq "metrics: one full handshake" 1 "$(handshakes full)"
assert_eq "metrics: one resumed handshake" 1 "$(handshakes resumed)"
unset MXGUARD_METRICS_LISTEN
sleep 2.5
assert_eq "TLSRPT: 1 + 2 successful sessions (a resumed handshake counts)" 3 \
    "$(rpt 'S("total-successful-session-count")')"
unset MXGUARD_UPSTREAM_CACHE_MAX_USES

# 8. caching off (cache_idle = 0): one connection per message, QUIT after each
tb_stop mxguard2
export MXGUARD_UPSTREAM_CACHE_IDLE=0
tb_start_mxguard -n mxguard3
before=$(conns mx1)
send off1 h@example.test
send off2 i@example.test
assert_eq "cache off: two messages, two new connections" $((before + 2)) "$(conns mx1)"

tb_finish
