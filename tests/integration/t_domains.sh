#!/usr/bin/env bash
# t_domains.sh — per-domain outcomes at RCPT time: a second destination domain in one
# transaction under server.multi_domain = "defer" (452 4.5.3; the default, parallel legs, is
# t_legs.sh), null MX, NXDOMAIN, DNSSEC-bogus, an MX that is mxguard itself,
# and an unreachable DNS server.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
# A trap MX on mxguard's own address (127.0.70.1:2525): loop.self.test points here. mxguard
# must never connect to an address it listens on, so this server must see no connection.
tb_start_mx trap 127.0.70.1
tb_write_config
sed -i 's/hostname = "mxguard.test";/hostname = "mxguard.test";\n  multi_domain = "defer";/' "$TB/mxguard.conf"
tb_start_mxguard

MX1=$TB/spool/mx1
MX2=$TB/spool/mx2

# 1. two destination domains in one transaction, multi_domain = defer: the second RCPT gets
#    452 4.5.3
tb_make_message two --to a@example.test --subject "two domains" --id two-1
swaks_send two --to a@example.test,b@other.test --no-data-fixup --data "@$TB/two.wire"
assert_reply "first domain: RCPT a@example.test accepted" "$SW_RCPT" "250"
assert_reply "second domain: RCPT b@other.test deferred" "$SW_RCPT2" "452 4.5.3"
assert_reply "message accepted for the first domain" "$SW_DOT" "250"
assert_file_count "$MX1" 1 "mx1 got the message once"
assert_file_count "$MX2" 0 "mx2 (other.test) got nothing in that transaction"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "only the first domain's recipient was relayed" '["a@example.test"]' "$(json_get "$m.json" rcpts)"

# ... and the client retries the deferred recipient in its own transaction
tb_make_message retry --to b@other.test --subject "retry other" --id two-2
swaks_send retry --to b@other.test --no-data-fixup --data "@$TB/retry.wire"
assert_reply "retried RCPT b@other.test accepted" "$SW_RCPT" "250"
assert_reply "retried message accepted" "$SW_DOT" "250"
assert_file_count "$MX2" 1 "other.test delivered to mx2 on retry"
m=$(spool_last "$MX2")
[ -n "$m" ] && assert_eq "retry: envelope recipient at mx2" '["b@other.test"]' "$(json_get "$m.json" rcpts)"

# 2. null MX (RFC 7505)
swaks_send nullmx --to x@nullmx.test
assert_reply "null MX: 556 5.1.10" "$SW_RCPT" "556 5.1.10"

# 3. NXDOMAIN
swaks_send nosuch --to x@nosuch.test
assert_reply "NXDOMAIN: 550 5.1.2" "$SW_RCPT" "550 5.1.2"

# 4. DNSSEC bogus MX RRset
swaks_send bogus --to x@bogus.test
assert_reply "bogus MX RRset: 451 4.4.3" "$SW_RCPT" "451 4.4.3"

# 5. MX pointing at mxguard's own address
swaks_send self --to x@self.test
assert_reply "MX is mxguard itself: temporary failure" "$SW_RCPT" "4"
assert_eq "mxguard did not connect to its own address (trap MX saw no connection)" 0 \
    "$(wc -l 2>/dev/null <"$TB/spool/trap/connections.log" || echo 0)"
assert_file_count "$TB/spool/trap" 0 "nothing delivered to the trap MX"

assert_file_count "$MX1" 1 "mx1 unchanged after the failures"
assert_file_count "$MX2" 1 "mx2 unchanged after the failures"

# 6. DNS server unreachable: a second mxguard instance whose dns.servers has no server
# (with DANE on, such an instance refuses to start: t_dane_startup tests that; here DANE
# is off explicitly so that the per-message DNS failure can be seen)
tb_write_config -o "$TB/mxguard-nodns.conf" -l 127.0.70.3:10025 -s "$TB/state-nodns" -d 127.0.70.53:5301 \
    'dane: { enabled = false; };'
tb_start_mxguard -c "$TB/mxguard-nodns.conf" -n mxguard-nodns -a 127.0.70.3:10025
t0=$(date +%s)
SW_SERVER=127.0.70.3:10025 swaks_send nodns --to a@example.test
t1=$(date +%s)
assert_reply "DNS server unreachable: 451 4.4.3" "$SW_RCPT" "451 4.4.3"
assert_match "DNS failure answered within timeouts.rcpt_total (15 s) (took $((t1 - t0)) s)" "$((t1 - t0))" '^([0-9]|1[0-7])$'
assert_file_count "$MX1" 1 "nothing delivered by the instance without DNS"

tb_finish
