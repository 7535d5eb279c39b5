#!/usr/bin/env bash
# t_fallback.sh — MX fallback (dead preferred MX), implicit MX (A record only), and an
# insecure (unsigned, no DS) delegation are all delivered.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config
tb_start_mxguard

MX1=$TB/spool/mx1
MX2=$TB/spool/mx2

# fallback.test: MX 10 dead.fallback.test (127.0.70.13, nothing listens), MX 20 mx2
tb_make_message fb --to b@fallback.test --subject "fallback" --id fallback-1
swaks_send fb --to b@fallback.test --no-data-fixup --data "@$TB/fb.wire"
assert_reply "fallback.test: RCPT accepted" "$SW_RCPT" "250"
assert_reply "fallback.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$MX2" 1 "fallback.test delivered to mx2 (the dead MX 10 skipped)"
assert_file_count "$MX1" 0 "nothing at mx1 after fallback.test"
m=$(spool_last "$MX2")
[ -n "$m" ] && assert_eq "fallback.test: envelope recipient at mx2" '["b@fallback.test"]' "$(json_get "$m.json" rcpts)"
[ -n "$m" ] && assert_eq "fallback.test: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/fb.msg")"

# implicit.test: no MX, A 127.0.70.11 -> the domain itself is the MX
tb_make_message imp --to c@implicit.test --subject "implicit MX" --id implicit-1
swaks_send imp --to c@implicit.test --no-data-fixup --data "@$TB/imp.wire"
assert_reply "implicit.test: RCPT accepted" "$SW_RCPT" "250"
assert_reply "implicit.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$MX1" 1 "implicit.test delivered to 127.0.70.11 (mx1)"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "implicit.test: envelope recipient" '["c@implicit.test"]' "$(json_get "$m.json" rcpts)"

# insecure.test: delegated without DS (DNSSEC insecure, not bogus) -> delivered to mx1
tb_make_message ins --to d@insecure.test --subject "insecure zone" --id insecure-1
swaks_send ins --to d@insecure.test --no-data-fixup --data "@$TB/ins.wire"
assert_reply "insecure.test: RCPT accepted" "$SW_RCPT" "250"
assert_reply "insecure.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$MX1" 2 "insecure.test delivered to mx1"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "insecure.test: envelope recipient" '["d@insecure.test"]' "$(json_get "$m.json" rcpts)"

assert_file_count "$MX2" 1 "mx2 still has only the fallback.test message"
tb_finish
