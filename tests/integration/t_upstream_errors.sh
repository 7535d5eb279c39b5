#!/usr/bin/env bash
# t_upstream_errors.sh — upstream replies and failures are relayed to the client with the
# codes docs/ARCHITECTURE.md §Replies pins (421 -> 451 4.4.2), nothing is delivered on
# failure, and mxguard keeps working afterwards.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config
tb_start_mxguard

MX1=$TB/spool/mx1
MX2=$TB/spool/mx2

swaks_send reject --to reject@example.test
assert_reply "upstream 550 5.1.1 relayed" "$SW_RCPT" "550 5.1.1"

swaks_send tempfail --to tempfail@example.test
assert_reply "upstream 451 4.3.0 relayed" "$SW_RCPT" "451 4.3.0"

swaks_send close421 --to close421@example.test
assert_reply "upstream 421 becomes 451 4.4.2" "$SW_RCPT" "451 4.4.2"
assert_eq "client session survives the upstream 421 (no close)" 0 "$SW_CLOSED"

tb_make_message dd --to dropdata@example.test --subject "dropped" --id drop-1
swaks_send dropdata --to dropdata@example.test --no-data-fixup --data "@$TB/dd.wire"
assert_reply "dropdata: RCPT accepted" "$SW_RCPT" "250"
if [[ "$SW_DATA" == 4* ]]; then
    pass "dropdata: client got 4xx for DATA ($SW_DATA)"
else
    assert_reply "dropdata: upstream closed during DATA -> client gets 4xx at the end of data" "$SW_DOT" "4"
fi

tb_make_message rd --to rejectdata@example.test --subject "rejected" --id rejectdata-1
swaks_send rejectdata --to rejectdata@example.test --no-data-fixup --data "@$TB/rd.wire"
assert_reply "rejectdata: RCPT accepted" "$SW_RCPT" "250"
assert_reply "rejectdata: upstream 554 5.6.0 after data relayed" "$SW_DOT" "554 5.6.0"

assert_file_count "$MX1" 0 "nothing delivered to mx1 by the failing cases"
assert_file_count "$MX2" 0 "nothing delivered to mx2 by the failing cases"

# one rejected and one accepted recipient in the same transaction
tb_make_message mixed --to ok@example.test --subject "mixed" --id mixed-1
swaks_send mixed --to reject@example.test,ok@example.test --no-data-fixup --data "@$TB/mixed.wire"
assert_reply "mixed: first RCPT 550 5.1.1" "$SW_RCPT" "550 5.1.1"
assert_reply "mixed: second RCPT 250" "$SW_RCPT2" "250"
assert_reply "mixed: final dot 250" "$SW_DOT" "250"
assert_file_count "$MX1" 1 "mixed: delivered once"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "mixed: only the accepted recipient" '["ok@example.test"]' "$(json_get "$m.json" rcpts)"

# slow upstream final reply (5 s) within timeouts.final_reply (8 s)
tb_make_message slow --to slowdata@example.test --subject "slow" --id slow-1
t0=$(date +%s)
swaks_send slow --to slowdata@example.test --no-data-fixup --data "@$TB/slow.wire"
t1=$(date +%s)
assert_reply "slowdata: final dot 250 after the upstream's delay" "$SW_DOT" "250"
assert_match "slowdata: the client waited for the upstream's reply ($((t1 - t0)) s)" "$((t1 - t0))" '^([5-9]|1[0-9])$'
assert_file_count "$MX1" 2 "slowdata: delivered"

# mxguard still relays normally after all of this
tb_make_message after --to after@example.test --subject "after errors" --id after-1
swaks_send after --to after@example.test --no-data-fixup --data "@$TB/after.wire"
assert_reply "a normal message after the failures: 250" "$SW_DOT" "250"
assert_file_count "$MX1" 3 "normal message delivered"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "normal message intact" "received+same" "$(eml_compare "$m.eml" "$TB/after.msg")"

tb_finish
