#!/usr/bin/env bash
# t_loop_self.sh — loop and SSRF protection beyond mxguard's own listeners (docs/ARCHITECTURE.md
# §Hostile peers). A. upstream.self_addresses = ["127.0.70.11"] (mx1.example.test stands for the
# legacy MTA's LAN address): implicit.test (A 127.0.70.11 only) → 451 4.4.6 and mx1 is never
# connected to; example.test (MX 10 mx1, MX 20 mx2) goes to mx2; a route_map next hop to the self
# address is refused as well. B. upstream.refuse_private_addresses = true (the whole test-bed is
# loopback): MX addresses refused → 451 4.4.4, no connection; a route_map next hop (the operator's)
# is trusted and delivered. C. a self address with another port does not match the MX port:
# delivered. Settings changed by SIGHUP (they are live).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
printf 'routed.test [127.0.70.11]:2525\nrouted2.test [127.0.70.12]:2525\n' >"$TB/routes"

# loop_config UPSTREAM_LINE... — the test-bed config plus the route map and these lines in
# the upstream group
loop_config() {
    tb_write_config
    local l extra="  route_map = \"$TB/routes\";"$'\n'
    for l in "$@"; do extra="$extra  $l"$'\n'; done
    awk -v extra="$extra" '{ print } /^  helo_name = / { printf "%s", extra }' "$TB/mxguard.conf" \
        >"$TB/mxguard.conf.new" && mv "$TB/mxguard.conf.new" "$TB/mxguard.conf"
}
reload() { # reload UPSTREAM_LINE... — rewrite the config and SIGHUP, wait for the reload
    loop_config "$@"
    local mark i
    mark=$(tb_log_mark)
    kill -HUP "$(tb_pid mxguard)"
    for i in $(seq 50); do tb_log_since "$mark" | grep -q 'reload: policy overrides' && break; sleep 0.1; done
}
connects() { grep -c 'connect from' "$TB/$1.log" 2>/dev/null || true; }

# ------------------------------------------------------------------ A. self_addresses
loop_config 'self_addresses = ["127.0.70.11"];'
tb_start_mxguard
swaks_send self1 --to a@implicit.test
assert_reply "an MX on a self address: 451 4.4.6" "$SW_RCPT" "451 4.4.6"
assert_contains "the reply names the setting" "$(cat "$TB/self1.replies")" \
    "upstream.self_addresses"
swaks_send self2 --to b@example.test
assert_reply "example.test: the self MX skipped, MX 20 (mx2) used" "$SW_DOT" "250"
assert_file_count "$TB/spool/mx2" 1 "mx2 got the example.test message"
swaks_send self3 --to c@routed.test
assert_reply "a route_map next hop on a self address: 451 4.4.6" "$SW_RCPT" "451 4.4.6"
assert_no_connect "mx1 (the self address) was never connected to" mx1

# ------------------------------------------------------------------ B. refuse_private_addresses
reload 'refuse_private_addresses = true;'
before=$(connects mx2)
swaks_send priv1 --to d@example.test
assert_reply "every MX address is loopback: 451 4.4.4" "$SW_RCPT" "451 4.4.4"
assert_contains "the reason is named" "$(cat "$TB/priv1.replies")" "loopback (127.0.0.0/8) address refused"
swaks_send priv2 --to e@implicit.test
assert_reply "implicit.test (A on loopback): 451 4.4.4" "$SW_RCPT" "451 4.4.4"
assert_eq "no connection to mx2 for refused MX hosts" "$before" "$(connects mx2)"
assert_no_connect "no connection to mx1 either" mx1
swaks_send priv3 --to f@routed2.test
assert_reply "a route_map next hop is the operator's: trusted, delivered" "$SW_DOT" "250"
assert_file_count "$TB/spool/mx2" 2 "mx2 got the routed2.test message"

# ------------------------------------------------------------------ C. a self address with a port
reload 'self_addresses = ["127.0.70.11:2526"];'
swaks_send port1 --to g@implicit.test
assert_reply "self address on another port than the MX's: delivered" "$SW_DOT" "250"
assert_file_count "$TB/spool/mx1" 1 "mx1 got it"

tb_finish
