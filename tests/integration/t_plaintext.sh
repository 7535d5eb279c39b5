#!/usr/bin/env bash
# t_plaintext.sh — opportunistic TLS: an MX without STARTTLS gets the mail in plaintext; an MX
# whose STARTTLS handshake fails gets it through one plaintext retry, which mxguard logs.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx plain 127.0.70.14 --no-starttls
tb_start_mx badtls 127.0.70.15 --bad-tls
tb_write_config
tb_start_mxguard

PLAIN=$TB/spool/plain
BAD=$TB/spool/badtls

tb_make_message p --to a@plain.test --subject "plaintext MX" --id plain-1
swaks_send plain --to a@plain.test --no-data-fixup --data "@$TB/p.wire"
assert_reply "plain.test: RCPT accepted" "$SW_RCPT" "250"
assert_reply "plain.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$PLAIN" 1 "plain.test delivered"
m=$(spool_last "$PLAIN")
[ -n "$m" ] && assert_eq "plain.test: no TLS (json tls null)" null "$(json_get "$m.json" tls)"
[ -n "$m" ] && assert_eq "plain.test: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/p.msg")"
assert_file_grep "plain.test: connection without STARTTLS" "$PLAIN/connections.log" 'starttls=no'

tb_make_message b --to a@badtls.test --subject "bad TLS MX" --id badtls-1
swaks_send badtls --to a@badtls.test --no-data-fixup --data "@$TB/b.wire"
assert_reply "badtls.test: RCPT accepted" "$SW_RCPT" "250"
assert_reply "badtls.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$BAD" 1 "badtls.test delivered after the failed handshake"
m=$(spool_last "$BAD")
[ -n "$m" ] && assert_eq "badtls.test: delivered in plaintext (json tls null)" null "$(json_get "$m.json" tls)"
assert_file_grep "badtls.test: a STARTTLS attempt failed first" "$BAD/connections.log" 'starttls=yes tls=failed'
assert_file_grep "badtls.test: then a plaintext connection" "$BAD/connections.log" 'starttls=no'
assert_eq "badtls.test: exactly one plaintext retry (two connections)" 2 "$(wc -l <"$BAD/connections.log")"
assert_file_grep "mxguard logs the plaintext retry" "$TB/mxguard.log" \
    '([Pp]lain ?text|[Cc]lear ?text|without TLS).*([Rr]etr|again|reconnect|[Ff]all ?back)|([Rr]etr|again|reconnect|[Ff]all ?back).*([Pp]lain ?text|[Cc]lear ?text|without TLS)'

tb_finish
