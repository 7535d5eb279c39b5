#!/usr/bin/env bash
# t_limits.sh — inbound limits: client networks, DATA line length, message size (SIZE= and
# actual), command line length, Received: loop count. Nothing over a limit is delivered.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config 'limits: { message_size = "100k"; data_line_length = 1000; };'
tb_start_mxguard

MX1=$TB/spool/mx1

# 1. a client outside server.allow_networks (127.0.70.0/25)
tb_make_message out --to a@example.test --subject "outsider" --id outsider-1
SW_SOURCE=$TB_OUTSIDER_IP swaks_send outsider --to a@example.test --no-data-fixup --data "@$TB/out.wire"
assert_match "client 127.0.70.200 refused with 554 (codes: $SW_CODES)" " $SW_CODES " ' 554 '
assert_match "client 127.0.70.200 gets no 2xx for MAIL/RCPT/DATA" "${SW_MAIL:0:1}${SW_RCPT:0:1}${SW_DOT:0:1}" '^[^2]*$'
assert_file_count "$MX1" 0 "nothing delivered for the outsider"

# 2. a DATA text line of 1200 octets
tb_make_message longline --to a@example.test --subject "long line" --id longline-1 --long-line 1200
swaks_send longline --to a@example.test --no-data-fixup --data "@$TB/longline.wire"
assert_reply "1200-octet text line: 5xx at the end of data" "$SW_DOT" "5"
assert_file_count "$MX1" 0 "nothing delivered with the 1200-octet line"

# 3. message bigger than limits.message_size (100k)
tb_make_message big --to a@example.test --subject "too big" --id big-1 --size 150000
swaks_send big --to a@example.test --no-data-fixup --data "@$TB/big.wire"
assert_reply "150 kB message over the 100k limit: 552 5.3.4" "$SW_DOT" "552 5.3.4"
assert_file_count "$MX1" 0 "nothing delivered for the oversized message"

# ... while a 60 kB message passes
tb_make_message mid --to a@example.test --subject "under the limit" --id mid-1 --size 60000
swaks_send mid --to a@example.test --no-data-fixup --data "@$TB/mid.wire"
assert_reply "60 kB message under the limit: 250" "$SW_DOT" "250"
assert_file_count "$MX1" 1 "60 kB message delivered"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "60 kB message intact" "received+same" "$(eml_compare "$m.eml" "$TB/mid.msg")"

# 4. SIZE= over the limit, and an over-long command line
smtp_chat sizecmd "EHLO client.test" "MAIL FROM:<sender@client.test> SIZE=10000000" \
    "NOOP $(printf 'x%.0s' $(seq 600))" "NOOP" "QUIT"
assert_contains "EHLO advertises SIZE" "$(grep '^EHLO' "$TB/sizecmd.chat")" "SIZE"
assert_reply "MAIL FROM with SIZE=10000000: 552 5.3.4" "$(chat_reply sizecmd MAIL)" "552 5.3.4"
assert_reply "command line of 605 octets: 500 5.5.2" "$(chat_reply sizecmd NOOP 1)" "500 5.5.2"
assert_reply "session usable after the long line (NOOP 250)" "$(chat_reply sizecmd NOOP 2)" "250"

# 5. 60 Received: headers (mail loop)
tb_make_message loop --to a@example.test --subject "looping" --id loop-1 --received 60
swaks_send loop --to a@example.test --no-data-fixup --data "@$TB/loop.wire"
assert_reply "60 Received: headers: 554 5.4.6" "$SW_DOT" "554 5.4.6"
assert_file_count "$MX1" 1 "nothing delivered for the looping message"
assert_file_count "$TB/spool/mx2" 0 "nothing at mx2"

tb_finish
