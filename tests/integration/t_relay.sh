#!/usr/bin/env bash
# t_relay.sh — a message relayed through mxguard to the preferred MX arrives byte for byte
# (plus exactly one prepended Received: block), with the same envelope, over STARTTLS.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config
tb_start_mxguard

MX1=$TB/spool/mx1
MX2=$TB/spool/mx2

# 1. one message with dot-lines and a 900-octet line
tb_make_message relay --to a@example.test --subject "relay test" --id relay-1 --long-line 900
swaks_send relay --to a@example.test --no-data-fixup --data "@$TB/relay.wire"
assert_reply "banner" "$SW_BANNER" "220"
assert_reply "MAIL FROM accepted" "$SW_MAIL" "250"
assert_reply "RCPT a@example.test accepted" "$SW_RCPT" "250"
assert_reply "DATA accepted" "$SW_DATA" "354"
assert_reply "final dot answered 250 (upstream accepted)" "$SW_DOT" "250"
assert_eq "swaks exit status" 0 "$SW_RC"
assert_file_count "$MX1" 1 "mx1 (preferred MX) received the message"
assert_file_count "$MX2" 0 "mx2 received nothing"

m=$(spool_last "$MX1")
if [ -n "$m" ]; then
    assert_eq "envelope sender" "sender@client.test" "$(json_get "$m.json" mail_from)"
    assert_eq "envelope recipients" '["a@example.test"]' "$(json_get "$m.json" rcpts)"
    assert_eq "upstream EHLO name is upstream.helo_name" "mxguard.test" "$(json_get "$m.json" helo)"
    assert_match "upstream session used STARTTLS (tls.version)" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
    assert_eq "upstream connection from upstream.source_ipv4" "127.0.70.1" "$(json_get "$m.json" peer | cut -d: -f1)"
    cmp_result=$(eml_compare "$m.eml" "$TB/relay.msg")
    assert_eq "message byte for byte + one prepended Received: block" "received+same" "$cmp_result"
    assert_eq "exactly one Received: header in the relayed message" 1 "$(grep -c '^Received:' "$m.eml")"
    if [ -f "$m.eml.received" ]; then
        assert_contains "Received: names mxguard (server.hostname)" "$(cat "$m.eml.received")" "mxguard.test"
        assert_eq "every line of the Received: block ends with CRLF" \
            "$(wc -l <"$m.eml.received")" "$(grep -c $'\r$' "$m.eml.received")"
    fi
fi
assert_file_grep "mx1 saw STARTTLS on the connection" "$MX1/connections.log" '^listen=127\.0\.70\.11 starttls=yes tls=ok'

# 2. a second message on a new client session (connection reuse must not break anything)
tb_make_message relay2 --to b@example.test --subject "relay test 2" --id relay-2
swaks_send relay2 --to b@example.test --no-data-fixup --data "@$TB/relay2.wire"
assert_reply "second message: final dot answered 250" "$SW_DOT" "250"
assert_file_count "$MX1" 2 "mx1 has both messages"
m=$(spool_last "$MX1")
if [ -n "$m" ]; then
    assert_eq "second message: envelope recipients" '["b@example.test"]' "$(json_get "$m.json" rcpts)"
    assert_eq "second message: byte for byte + Received:" "received+same" "$(eml_compare "$m.eml" "$TB/relay2.msg")"
fi

tb_finish
