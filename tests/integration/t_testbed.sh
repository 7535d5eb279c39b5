#!/usr/bin/env bash
# t_testbed.sh — checks the test-bed itself, without mxguard: the signed DNS hierarchy
# (validated with delv against the fake root anchor), the MX test server's behaviours, and
# the legacy Postfix instance. When this fails, the other integration tests' results mean
# little.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns

delv_q() { # delv_q NAME TYPE — validating lookup through nsd with the test anchor
    delv @"$TB_DNS_IP" -p "$TB_DNS_PORT" -b "$TB_CLIENT_IP" -a "$TB/dns/delv.anchor" +root=. "$1" "$2" 2>&1
}

# ---- DNS
out=$(delv_q example.test MX)
assert_contains "example.test MX: fully validated" "$out" "; fully validated"
assert_match "example.test MX: 10 mx1, 20 mx2" "$out" 'MX[[:space:]]+10 mx1\.example\.test\..*MX[[:space:]]+20 mx2\.example\.test\.'
assert_match "mx1.example.test A 127.0.70.11 (validated)" "$(delv_q mx1.example.test A)" 'fully validated.*A[[:space:]]+127\.0\.70\.11'
assert_match "other.test MX 10 mx2 (validated)" "$(delv_q other.test MX)" 'fully validated.*MX[[:space:]]+10 mx2\.example\.test\.'
assert_match "fallback.test MX dead + mx2 (validated)" "$(delv_q fallback.test MX)" 'fully validated.*10 dead\.fallback\.test\..*20 mx2\.example\.test\.'
assert_match "dead.fallback.test A 127.0.70.13" "$(delv_q dead.fallback.test A)" 'fully validated.*127\.0\.70\.13'
assert_match "implicit.test: no MX (validated NODATA)" "$(delv_q implicit.test MX)" 'negative response, fully validated'
assert_match "implicit.test A 127.0.70.11" "$(delv_q implicit.test A)" 'fully validated.*127\.0\.70\.11'
assert_match "plain.test MX mx.plain.test -> 127.0.70.14" "$(delv_q plain.test MX; delv_q mx.plain.test A)" 'mx\.plain\.test\..*127\.0\.70\.14'
assert_match "badtls.test MX mx.badtls.test -> 127.0.70.15" "$(delv_q badtls.test MX; delv_q mx.badtls.test A)" 'mx\.badtls\.test\..*127\.0\.70\.15'
assert_match "nullmx.test MX 0 . (validated)" "$(delv_q nullmx.test MX)" 'fully validated.*MX[[:space:]]+0 \.'
assert_match "self.test MX loop.self.test -> 127.0.70.1" "$(delv_q self.test MX; delv_q loop.self.test A)" 'loop\.self\.test\..*A[[:space:]]+127\.0\.70\.1([^0-9]|$)'
out=$(delv_q bogus.test MX)
assert_match "bogus.test MX is bogus (RRSIG fails)" "$out" 'RRSIG failed to verify|no valid signature'
assert_not_contains "bogus.test MX is not validated" "$out" "fully validated"
assert_match "bogus.test has a DS in test. (validated)" "$(delv_q bogus.test DS)" 'fully validated.*DS'
out=$(delv_q insecure.test MX)
assert_contains "insecure.test: unsigned (insecure) answer" "$out" "; unsigned answer"
assert_match "insecure.test MX 10 mx1" "$out" 'MX[[:space:]]+10 mx1\.example\.test\.'
assert_match "nosuch.test: validated NXDOMAIN" "$(delv_q nosuch.test MX)" 'ncache nxdomain.*|NXDOMAIN'
assert_contains "nosuch.test: negative response validated" "$(delv_q nosuch.test MX)" "negative response, fully validated"
assert_match "dig: example.test MX has RRSIG (+dnssec)" \
    "$(dig @$TB_DNS_IP -p $TB_DNS_PORT -b $TB_CLIENT_IP +dnssec +norec example.test MX)" 'RRSIG[[:space:]]+MX 13 '
assert_match "trust anchor root.ds is a DS record for ." "$(cat "$TB/dns/root.ds")" '^\. [0-9]+ IN DS [0-9]+ 13 2 [0-9A-F]+$'
all_a=$(grep -hE '[[:space:]]IN[[:space:]]+A[[:space:]]' "$TB"/dns/zones/*.zone | awk '{print $NF}' | sort -u | tr '\n' ' ')
assert_match "every A record in 127.0.70.0/24 ($all_a)" "$all_a" '^(127\.0\.70\.[0-9]+ )+$'

# ---- MX test server
tb_start_mx mx1 127.0.70.11
tb_start_mx plain 127.0.70.14 --no-starttls
tb_start_mx badtls 127.0.70.15 --bad-tls
MX1=$TB/spool/mx1

tb_make_message m --to a@example.test --long-line 900
SW_SERVER=127.0.70.11:$TB_MX_PORT swaks_send direct --to a@example.test --tls --tls-sni mx1.example.test \
    --no-data-fixup --data "@$TB/m.wire"
assert_reply "mx1: STARTTLS + message accepted" "$SW_DOT" "250"
m=$(spool_last "$MX1")
assert_eq "mx1: spooled bytes equal the message (dot-unstuffed)" same "$([ -n "$m" ] && eml_compare "$m.eml" "$TB/m.msg")"
assert_match "mx1: json tls.version" "$([ -n "$m" ] && json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
assert_eq "mx1: json tls.sni" mx1.example.test "$([ -n "$m" ] && json_get "$m.json" tls.sni)"
assert_eq "mx1: json rcpts" '["a@example.test"]' "$([ -n "$m" ] && json_get "$m.json" rcpts)"
assert_eq "mx1: json listen" 127.0.70.11 "$([ -n "$m" ] && json_get "$m.json" listen)"

SW_SERVER=127.0.70.11:$TB_MX_PORT swaks_send behave --to reject@example.test,tempfail@example.test,ok@example.test
assert_eq "mx1: reject/tempfail/ok RCPT codes" "550 451 250" "$SW_RCPTS"
assert_reply "mx1: reject -> 550 5.1.1" "$SW_RCPT" "550 5.1.1"
assert_reply "mx1: tempfail -> 451 4.3.0" "$SW_RCPT2" "451 4.3.0"
SW_SERVER=127.0.70.11:$TB_MX_PORT swaks_send c421 --to close421@example.test
assert_reply "mx1: close421 -> 421 4.3.2" "$SW_RCPT" "421 4.3.2"
assert_eq "mx1: close421 closes the connection" 1 "$SW_CLOSED"
SW_SERVER=127.0.70.11:$TB_MX_PORT swaks_send dd --to dropdata@example.test
assert_eq "mx1: dropdata -> no reply after the data, connection closed" "1:" "$SW_CLOSED:$SW_DOT"
SW_SERVER=127.0.70.11:$TB_MX_PORT swaks_send rd --to rejectdata@example.test
assert_reply "mx1: rejectdata -> 554 5.6.0 after data" "$SW_DOT" "554 5.6.0"
t0=$(date +%s)
SW_SERVER=127.0.70.11:$TB_MX_PORT swaks_send sd --to slowdata@example.test
assert_reply "mx1: slowdata -> 250" "$SW_DOT" "250"
assert_match "mx1: slowdata waited 5 s" "$(($(date +%s) - t0))" '^([5-9])$'
assert_file_count "$MX1" 3 "mx1: only the accepted messages are spooled (direct, ok@, slowdata@)"

smtp_chat inject --server 127.0.70.11:$TB_MX_PORT "EHLO c.test" \
    'raw:1:STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n' "MAIL FROM:<a@b.test>" "EHLO c.test" "MAIL FROM:<a@b.test>"
assert_eq "mx1: after STARTTLS, pipelined command discarded and EHLO required again" "503" "$(chat_reply inject MAIL 1 | cut -c1-3)"
assert_eq "mx1: MAIL after the new EHLO accepted" "250" "$(chat_reply inject MAIL 2 | cut -c1-3)"
assert_file_grep "mx1: discarded bytes logged" "$TB/mx1.log" 'discarding 25 bytes pipelined after STARTTLS'
assert_file_grep "mx1: connections.log records the injection" "$MX1/connections.log" 'starttls=yes tls=ok .*injected=25'

SW_SERVER=127.0.70.14:$TB_MX_PORT swaks_send plain --to a@plain.test
assert_reply "plain: message accepted" "$SW_DOT" "250"
assert_not_contains "plain: STARTTLS not advertised" "$(grep -a '250.STARTTLS' "$TB/plain.swaks")" "STARTTLS"
assert_eq "plain: json tls null" null "$(json_get "$(spool_last "$TB/spool/plain").json" tls)"

SW_SERVER=127.0.70.15:$TB_MX_PORT swaks_send badtls --to a@badtls.test --tls
assert_file_grep "badtls: STARTTLS advertised" "$TB/badtls.swaks" '250.STARTTLS'
assert_file_grep "badtls: the TLS handshake fails" "$TB/badtls.swaks" 'TLS startup failed|STARTTLS attempted but failed'
SW_SERVER=127.0.70.15:$TB_MX_PORT swaks_send badtls2 --to a@badtls.test
assert_reply "badtls: plaintext delivery works" "$SW_DOT" "250"
assert_file_grep "badtls: connections.log has the failed handshake" "$TB/spool/badtls/connections.log" 'starttls=yes tls=failed'

# ---- Postfix
tb_start_postfix
SW_SERVER=$TB_PF_IP:$TB_PF_PORT swaks_send pf --to a@example.test
assert_reply "Postfix on $TB_PF_IP:$TB_PF_PORT accepts mail for relaying" "$SW_DOT" "250"
sleep 1
assert_file_grep "Postfix tried the relayhost [127.0.70.1]:10025 from 127.0.70.2" "$TB/postfix/maillog" \
    'connect to 127\.0\.70\.1\[127\.0\.70\.1\]:10025|relay=127\.0\.70\.1\[127\.0\.70\.1\]:10025'
tb_stop_postfix

tb_finish
