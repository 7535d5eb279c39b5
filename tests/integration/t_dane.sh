#!/usr/bin/env bash
# t_dane.sh — DANE (RFC 7672) delivery: TLSA 3 1 1 and 2 1 1 matches are delivered over TLS
# with SNI = the TLSA base domain and a "TLSA U S M matched at depth D" log line; a DANE-TA
# name mismatch, a wrong digest on every MX, a DANE host without STARTTLS and an
# only-unusable-TLSA host without STARTTLS are refused with 4xx (451 4.7.5 "DANE") and
# nothing reaches them (no MAIL, no plaintext); a wrong digest on MX 10 falls back to MX 20;
# no TLSA or only unusable TLSA -> TLS without authentication; a CNAME'd MX host uses the
# TLSA records at the CNAME target. (Zones: mkzones.sh.)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx dane-ee 127.0.70.21
tb_start_mx --chain dane-ta 127.0.70.22
tb_start_mx --chain --cert wrong.dane-taname.test dane-taname 127.0.70.23
tb_start_mx dane-2nd1 127.0.70.24
tb_start_mx dane-2nd2 127.0.70.25
tb_start_mx dane-allbad 127.0.70.27
tb_start_mx dane-nodata 127.0.70.29
tb_start_mx dane-unusable 127.0.70.30
tb_start_mx dane-unusable-plain 127.0.70.31 --no-starttls
tb_start_mx dane-nostarttls 127.0.70.32 --no-starttls
tb_start_mx dane-cname 127.0.70.33
tb_write_config
tb_start_mxguard

# dane_deliver NAME DOMAIN MX SNI MATCHED — a message to a@DOMAIN must be accepted and reach
# MX server MX over TLS, with SNI (or "-": not checked) and the log line MATCHED since the
# send ("-": no "matched at depth" line at all).
dane_deliver() {
    local name=$1 d=$2 mx=$3 sni=$4 matched=$5 mark m
    mark=$(tb_log_mark)
    tb_make_message "$name" --to "a@$d" --subject "DANE $d" --id "$name-1"
    swaks_send "$name" --to "a@$d" --no-data-fixup --data "@$TB/$name.wire"
    assert_reply "$d: RCPT accepted" "$SW_RCPT" "250"
    assert_reply "$d: final dot 250" "$SW_DOT" "250"
    assert_file_count "$TB/spool/$mx" 1 "$d: delivered to $(tb_mx_host "$mx")"
    m=$(spool_last "$TB/spool/$mx")
    if [ -n "$m" ]; then
        assert_match "$d: delivered over TLS (json tls.version)" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
        assert_eq "$d: envelope recipient" "[\"a@$d\"]" "$(json_get "$m.json" rcpts)"
        assert_eq "$d: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/$name.msg")"
        [ "$sni" = - ] || assert_eq "$d: SNI = $sni" "$sni" "$(json_get "$m.json" tls.sni)"
    fi
    if [ "$matched" = - ]; then
        assert_no_log "$d: no TLSA match logged (no DANE authentication)" "$mark" 'matched at depth'
    else
        assert_log "$d: log has \"$matched\"" "$mark" "$matched"
    fi
}

# dane_refuse NAME DOMAIN REPLY MX... — RCPT a@DOMAIN gets REPLY (a prefix; with 451 4.7.5
# the text must say "DANE"), no message is accepted, and no MX server got a MAIL command
dane_refuse() {
    local name=$1 d=$2 reply=$3 mx; shift 3
    swaks_send "$name" --to "a@$d"
    assert_reply "$d: RCPT refused" "$SW_RCPT" "$reply"
    [ "$reply" != "451 4.7.5" ] || assert_contains "$d: the reply says DANE" "$SW_RCPT" "DANE"
    assert_eq "$d: no final dot reply (nothing relayed)" "" "$SW_DOT"
    for mx in "$@"; do
        assert_no_mail "$d: nothing reached $(tb_mx_host "$mx") (no MAIL, no plaintext)" "$mx"
    done
}

# 1. DANE-EE 3 1 1 matching
dane_deliver ee dane-ee.test dane-ee mx.dane-ee.test "TLSA 3 1 1 matched at depth 0"
# 2. DANE-TA 2 1 1 (the CA, sent by the server) + the leaf names the MX host
dane_deliver ta dane-ta.test dane-ta mx.dane-ta.test "TLSA 2 1 1 matched at depth 1"
# 3. DANE-TA chain fine, but the leaf names wrong.dane-taname.test
dane_refuse taname dane-taname.test "451 4.7.5" dane-taname
assert_match "dane-taname.test: the reply names the cause (docs/ARCHITECTURE.md §Failure codes)" "$SW_RCPT" \
    '[Hh]ost ?name mismatch|[Nn]ame mismatch|name does not match|not valid for'
assert_file_grep "dane-taname.test: the MX was tried (STARTTLS)" "$TB/spool/dane-taname/connections.log" 'starttls=yes'
# 4. MX 10 wrong digest -> MX 20 matching
dane_deliver 2nd dane-2nd.test dane-2nd2 mx2.dane-2nd.test "TLSA 3 1 1 matched at depth 0"
assert_no_mail "dane-2nd.test: nothing reached mx1.dane-2nd.test (wrong digest)" dane-2nd1
assert_file_grep "dane-2nd.test: mx1 (MX 10) was tried first (STARTTLS)" "$TB/spool/dane-2nd1/connections.log" 'starttls=yes'
# 5. every MX has a wrong digest
dane_refuse allbad dane-allbad.test "451 4.7.5" dane-2nd1 dane-allbad
assert_match "dane-allbad.test: the reply names the cause (docs/ARCHITECTURE.md §Failure codes)" "$SW_RCPT" \
    '[Nn]o matching (DANE )?TLSA|[Nn]o TLSA (record )?match|TLSA (record )?mismatch|match(es)? no TLSA'
assert_file_grep "dane-allbad.test: mx3 (MX 20) was tried too (STARTTLS)" "$TB/spool/dane-allbad/connections.log" 'starttls=yes'
# 6. signed zone, no TLSA -> opportunistic TLS
dane_deliver nodata dane-nodata.test dane-nodata - -
# 7. only unusable TLSA (0 0 1, 1 1 1) -> TLS mandatory, not authenticated
dane_deliver unusable dane-unusable.test dane-unusable - -
# ... and the same without STARTTLS at the MX -> temporary failure, never plaintext
dane_refuse unusable-plain dane-unusable-plain.test "4" dane-unusable-plain
# 8. matching TLSA but the MX offers no STARTTLS
dane_refuse nostarttls dane-nostarttls.test "451 4.7.5" dane-nostarttls
# 9. MX host is a CNAME: TLSA at the target, SNI = the target
dane_deliver cname dane-cname.test dane-cname real.dane-target.test "TLSA 3 1 1 matched at depth 0"

assert_file_count "$TB/spool/dane-ee" 1 "dane-ee: still one message"
assert_file_count "$TB/spool/dane-2nd2" 1 "mx2.dane-2nd.test: still one message"

# 10. a TLSA RRset too big for UDP (26 records, ~1.7 KB signed): the answer comes over TCP
# (dns.transport "tcp", the default), and the one matching record among 25 others authenticates
out=$(dig @$TB_DNS_IP -p $TB_DNS_PORT -b $TB_CLIENT_IP +dnssec +norec +ignore +bufsize=1232 _25._tcp.mx.dane-big.test TLSA)
assert_match "dane-big.test: over UDP the TLSA answer is truncated (test-bed check)" "$out" 'flags: qr aa tc|flags:[a-z ]* tc'
mark=$(tb_log_mark)
tb_make_message big --to a@dane-big.test --subject "DANE big RRset" --id big-1
swaks_send big --to a@dane-big.test --no-data-fixup --data "@$TB/big.wire"
assert_reply "dane-big.test: RCPT accepted" "$SW_RCPT" "250"
assert_reply "dane-big.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$TB/spool/dane-ee" 2 "dane-big.test: delivered to its MX (dane-ee's server)"
m=$(spool_last "$TB/spool/dane-ee")
[ -n "$m" ] && assert_eq "dane-big.test: SNI = mx.dane-big.test" mx.dane-big.test "$(json_get "$m.json" tls.sni)"
[ -n "$m" ] && assert_eq "dane-big.test: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/big.msg")"
assert_log "dane-big.test: log has \"TLSA 3 1 1 matched at depth 0\"" "$mark" "TLSA 3 1 1 matched at depth 0"
assert_no_log "dane-big.test: no DNS event-loop trouble logged" "$mark" 'closed under it|not polled'
tb_finish
