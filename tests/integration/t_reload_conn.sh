#!/usr/bin/env bash
# t_reload_conn.sh — connections and TLS sessions made under the old tls.* settings do not
# outlive a SIGHUP (docs/ARCHITECTURE.md §Reuse). A transaction to dane-ee.test is in flight (RCPT
# accepted: upstream connection and TLS handshake done) when tls.ciphers changes and mxguard
# gets SIGHUP; it completes after the reload.
#   1. with the connection cache on: its connection is not parked (QUIT), so the next message
#      opens a new connection (dane-ee's connections.log) with a full handshake;
#   2. one transaction per connection (cache_max_uses = 1), TLS resumption on: the next
#      connection does not resume the old connection's session (a full DANE match), and the
#      one after it does resume (resumption still works under the new settings).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# server.workers = 1: it follows one parked connection across a reload; each worker has its own
# connection cache, so with several the next transaction may land in the other worker
TB_WORKERS=1
tb_init
tb_start_dns
tb_start_mx dane-ee 127.0.70.21
tb_write_config
export MXGUARD_UPSTREAM_CACHE_IDLE=30s
export MXGUARD_UPSTREAM_TLS_SESSION_CACHE=1000

conns() { if [ -f "$TB/spool/$1/connections.log" ]; then wc -l <"$TB/spool/$1/connections.log"; else echo 0; fi; }
send() { # send NAME RCPT — one message in its own client session; expects 250 after the dot
    tb_make_message "$1" --to "$2" --subject "$1" --id "$1"
    swaks_send "$1" --to "$2" --no-data-fixup --data "@$TB/$1.wire"
    assert_reply "$1: delivered (250 after the dot)" "$SW_DOT" "250"
}
# across_hup NAME RCPT CIPHERS — a transaction open across a SIGHUP that sets tls.ciphers
across_hup() {
    local name=$1 rcpt=$2 ciphers=$3 mark i pid
    tb_make_message "$name" --to "$rcpt" --subject "$name" --id "$name"
    cp "$TB/$name.wire" "$TB/$name.chat-data"
    printf '\r\n' >>"$TB/$name.chat-data"
    smtp_chat "$name" --timeout 20 "EHLO client.test" "MAIL FROM:<sender@client.test>" \
        "RCPT TO:<$rcpt>" "sleep:5" "DATA" "@$TB/$name.chat-data" "QUIT" &
    local bg=$!
    sleep 2.5 # RCPT answered: the upstream connection is up (TLS done) and in use
    sed -i "/^  ciphers = /d; s|^  ca_file = \(.*\)|  ca_file = \1\n  ciphers = \"$ciphers\";|" \
        "$TB/mxguard.conf"
    mark=$(tb_log_mark)
    pid=$(tb_pid mxguard)
    kill -HUP "$pid"
    for i in $(seq 50); do tb_log_since "$mark" | grep -q 'TLS client context rebuilt' && break; sleep 0.1; done
    wait $bg
    assert_reply "$name: RCPT accepted before the reload" "$(chat_reply "$name" RCPT)" "250"
    assert_reply "$name: delivered after the reload" "$(chat_reply "$name" DOT)" "250"
    assert_log "$name: tls.ciphers changed by the reload" "$mark" "reload: tls\.ciphers: "
}

# ------------------------------------------------------------------ 1. connection cache
tb_start_mxguard
send warm a@dane-ee.test
assert_eq "one connection so far" 1 "$(conns dane-ee)"
across_hup inflight b@dane-ee.test 'HIGH:!aNULL'
assert_eq "the transaction in flight went over the cached connection" 1 "$(conns dane-ee)"
sleep 0.3
mark=$(tb_log_mark)
send after c@dane-ee.test
log=$(tb_log_since "$mark")
assert_eq "after the reload: a new connection (the one in flight was not kept)" 2 "$(conns dane-ee)"
assert_not_contains "no reuse of a connection made under the old settings" "$log" "reused connection"
assert_not_contains "no resumption of a session of the old settings" "$log" "resumed TLS session"
assert_contains "a full DANE match" "$log" "DANE (TLSA 3 1 1"
mark=$(tb_log_mark)
send again d@dane-ee.test
assert_eq "a connection made after the reload is cached and reused" 2 "$(conns dane-ee)"
assert_contains "reused after the reload" "$(tb_log_since "$mark")" "reused connection"

# ------------------------------------------------------------------ 2. TLS session resumption
tb_stop mxguard
export MXGUARD_UPSTREAM_CACHE_MAX_USES=1
tb_start_mxguard
send warm2 e@dane-ee.test
across_hup inflight2 f@dane-ee.test 'HIGH:!aNULL:!MD5'
sleep 0.3
mark=$(tb_log_mark)
send after2 g@dane-ee.test
log=$(tb_log_since "$mark")
assert_not_contains "no resumption of the session made under the old settings" "$log" \
    "resumed TLS session"
assert_contains "a full handshake with a DANE match" "$log" "DANE (TLSA 3 1 1"
mark=$(tb_log_mark)
send again2 h@dane-ee.test
assert_contains "a session made after the reload is resumed" "$(tb_log_since "$mark")" \
    "DANE (resumed TLS session"
unset MXGUARD_UPSTREAM_CACHE_MAX_USES

tb_finish
