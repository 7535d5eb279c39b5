#!/usr/bin/env bash
# t_postfix.sh — real Postfix 3.7 as the legacy MTA in front of mxguard (relayhost), with
# smtp_destination_recipient_limit = 1 (one transaction per recipient, the old advice):
# single- and two-domain messages arrive, nothing deferred. t_legs.sh runs Postfix with its
# default limit (all recipients in one transaction, fanned out to parallel legs).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config
tb_start_mxguard
TB_PF_RCPT_LIMIT=1 tb_start_postfix

MX1=$TB/spool/mx1
MX2=$TB/spool/mx2

# 1. one recipient
SW_SERVER=$TB_PF_IP:$TB_PF_PORT swaks_send pf1 --to a@example.test --h-Subject "via postfix 1"
assert_reply "Postfix accepted the message" "$SW_DOT" "250"
wait_spool_count "$MX1" 1 30
assert_file_count "$MX1" 1 "message relayed Postfix -> mxguard -> mx1"
m=$(spool_last "$MX1")
if [ -n "$m" ]; then
    assert_eq "envelope recipient at mx1" '["a@example.test"]' "$(json_get "$m.json" rcpts)"
    assert_eq "envelope sender at mx1" "sender@client.test" "$(json_get "$m.json" mail_from)"
    assert_match "mxguard -> mx1 used STARTTLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
    assert_match "mxguard's Received: on top" "$(head -n 3 "$m.eml")" '^Received: .*mxguard\.test'
    assert_eq "Postfix's Received: below it" 2 "$(grep -ac '^Received:' "$m.eml")"
    assert_file_grep "the subject survived" "$m.eml" '^Subject: via postfix 1'
fi

# 2. one message, two destination domains (Postfix sends one transaction per recipient)
SW_SERVER=$TB_PF_IP:$TB_PF_PORT swaks_send pf2 --to x@example.test,y@other.test --h-Subject "via postfix 2"
assert_reply "Postfix accepted the two-domain message" "$SW_DOT" "250"
wait_spool_count "$MX1" 2 30
wait_spool_count "$MX2" 1 30
assert_file_count "$MX1" 2 "example.test copy arrived at mx1"
assert_file_count "$MX2" 1 "other.test copy arrived at mx2"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "mx1 copy: recipient" '["x@example.test"]' "$(json_get "$m.json" rcpts)"
m=$(spool_last "$MX2")
[ -n "$m" ] && assert_eq "mx2 copy: recipient" '["y@other.test"]' "$(json_get "$m.json" rcpts)"

sleep 1
assert_eq "Postfix logged 3 deliveries to mxguard" 3 \
    "$(grep -c 'relay=127\.0\.70\.1\[127\.0\.70\.1\]:10025.*status=sent' "$TB/postfix/maillog" 2>/dev/null)"
assert_eq "Postfix queue is empty" 0 \
    "$(find "$TB/postfix/queue/deferred" "$TB/postfix/queue/active" "$TB/postfix/queue/incoming" -type f 2>/dev/null | wc -l)"

tb_stop_postfix
tb_finish
