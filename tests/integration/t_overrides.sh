#!/usr/bin/env bash
# t_overrides.sh — the operator's controls (docs/ARCHITECTURE.md §Decision, row 1): per-domain TLS
# policy overrides (tls.policy_map), static routes (upstream.route_map) and the TLS client
# settings.
#   A. every override level against the loopback world: dane-only on an insecure domain and
#      on a domain with only unusable TLSA → 451 4.7.5, nothing sent; dane-only on a DANE
#      domain → delivered with DANE; encrypt to a host without STARTTLS → 451 4.7.5; none on a
#      DANE domain → plaintext, logged as warnings; verify with the right / a wrong match list;
#      verify by the next hop's entry; mta-sts without a policy → 451 4.7.5, with an enforce
#      policy → delivered; a [host] route with verify and a wrong name → 451, with the right
#      name → delivered to that host and not to the domain's MX; a host (MX-style) route;
#      the client certificate reaches an MX that asks for one; `mxguard check` shows the
#      override and the route; `config check -v` shows the TLS settings and the maps.
#   B. SIGHUP: changed maps apply ("*" route added, a level changed); a broken map is
#      refused with its file and line and the old maps stay; a bad map stops start-up.
#   C. tls.min_version = TLSv1.3 against TLS 1.2-only MX hosts: enforcing policies (verify,
#      dane-only) → 451 4.7.5, nothing sent; opportunistic → the one plaintext retry delivers.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
C="$TB/dns/certs"

# a client certificate from the test CA (clientAuth), for the MX that asks for one
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TB/client.key" \
    -out "$TB/client.csr" -subj "/CN=client.mxguard.test" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
    >"$TB/client.ext"
openssl x509 -req -in "$TB/client.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial -days 30 \
    -sha256 -extfile "$TB/client.ext" -out "$TB/client.crt" 2>/dev/null ||
    tb_die "cannot make the client certificate"

tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12 --ask-client-cert "$C/ca.crt"
tb_start_mx plain 127.0.70.14 --no-starttls
tb_start_mx dane-ee 127.0.70.21
tb_start_mx --chain dane-ta 127.0.70.22
tb_start_mx dane-nodata 127.0.70.29
tb_start_mx dane-unusable 127.0.70.30
tb_start_sts_mx sts-enforce

# ovr_config [TLS_LINE...] — the test-bed config with the map files and TLS_LINEs in the
# tls group (tb_write_config already writes that group and the upstream group)
ovr_config() {
    tb_write_config
    local l extra=""
    for l in "$@"; do extra="$extra  $l"$'\n'; done
    awk -v maps="  policy_map = \"$TB/tls_policy\";"$'\n'"$extra" -v route="  route_map = \"$TB/routes\";" '
        { print }
        /^  ca_file = / { printf "%s", maps }
        /^  helo_name = / { print route }
    ' "$TB/mxguard.conf" >"$TB/mxguard.conf.new" && mv "$TB/mxguard.conf.new" "$TB/mxguard.conf"
}

cat >"$TB/tls_policy" <<'EOF'
# the overrides of part A
insecure.test        dane-only
dane-unusable.test   dane-only
dane-ta.test         dane-only
plain.test           encrypt
dane-ee.test         none
example.test         verify    match=.example.test
other.test           verify    match=mx1.example.test
dane-nodata.test     mta-sts
sts-enforce.test     mta-sts
implicit.test        verify
nosuch.test          verify    match=mx1.example.test   # the route goes to mx2: wrong name
EOF
cat >"$TB/routes" <<'EOF'
# the routes of part A
implicit.test        [mx2.example.test]:2525
nosuch.test          [mx2.example.test]
.viamx.test          example.test
EOF
ovr_config "client_cert_file = \"$TB/client.crt\";" "client_key_file = \"$TB/client.key\";"
tb_start_mxguard
MXPID=$(tb_pid mxguard)

# refuse NAME DOMAIN PREFIX TEXT — RCPT a@DOMAIN gets a reply starting with PREFIX that
# contains TEXT; nothing is relayed
refuse() {
    swaks_send "$1" --to "a@$2"
    assert_reply "$2: RCPT refused" "$SW_RCPT" "$3"
    assert_contains "$2: the reply says why" "$SW_RCPT" "$4"
    assert_eq "$2: nothing relayed (no final dot)" "" "$SW_DOT"
}

# deliver NAME DOMAIN MX — a@DOMAIN is accepted and MX server MX stores it; M = its spool
# entry (without extension)
deliver() {
    local n0
    n0=$(spool_count "$TB/spool/$3")
    swaks_send "$1" --to "a@$2"
    assert_reply "$2: RCPT accepted" "$SW_RCPT" "250"
    assert_reply "$2: final dot 250" "$SW_DOT" "250"
    assert_file_count "$TB/spool/$3" $((n0 + 1)) "$2: delivered to $(tb_mx_host "$3")"
    M=$(spool_last "$TB/spool/$3")
}

# ------------------------------------------------------------------ A. the levels
mark=$(tb_log_mark)
# dane-only: an insecure zone has no DANE → deferred, nothing reaches its MX
refuse daneonly-insecure insecure.test "451 4.7.5" "dane-only"
assert_contains "insecure.test: the reply names DANE" "$SW_RCPT" "DANE required"
assert_no_connect "insecure.test: mx1 never connected to (DANE decided first)" mx1
# dane-only: only unusable TLSA records (0 0 1, 1 1 1) are not DANE
refuse daneonly-unusable dane-unusable.test "451 4.7.5" "only unusable TLSA records"
assert_no_connect "dane-unusable.test: its MX never connected to" dane-unusable
# dane-only on a DANE domain: delivered, DANE-authenticated
deliver daneonly-ta dane-ta.test dane-ta
assert_eq "dane-ta.test: over TLS" "TLSv1.3" "$(json_get "$M.json" tls.version)"
assert_log "dane-ta.test: DANE authenticated" "$mark" 'dane-ta\.test: connected to .*peer DANE \(TLSA 2 1 1 matched'

# encrypt: a host without STARTTLS → deferred, never plaintext
refuse encrypt-plain plain.test "451 4.7.5" "STARTTLS not offered"
assert_no_mail "plain.test: no MAIL at mx.plain.test" plain

# none on a DANE domain: plaintext, because the operator said so, loudly
mark=$(tb_log_mark)
deliver none-dane dane-ee.test dane-ee
assert_eq "dane-ee.test: delivered in plaintext (json tls = null)" "null" "$(json_get "$M.json" tls)"
assert_file_grep "dane-ee.test: STARTTLS not used" "$TB/spool/dane-ee/connections.log" 'starttls=no'
assert_log "dane-ee.test: warning: the host has DANE but gets plaintext" "$mark" \
    'warning upstream: .*mx\.dane-ee\.test has DANE \(dane: .*policy override none for dane-ee\.test \(.*tls_policy:6\) sends mail to it in PLAINTEXT'
assert_log "dane-ee.test: warning on the delivery itself" "$mark" \
    'warning upstream: .*delivering to mx\.dane-ee\.test\[127\.0\.70\.21\] in PLAINTEXT although it offers STARTTLS: policy override none'

# verify with the right match list (.example.test: any subdomain)
mark=$(tb_log_mark)
deliver verify-ok example.test mx1
assert_eq "example.test: over TLS" "TLSv1.3" "$(json_get "$M.json" tls.version)"
assert_log "example.test: WebPKI with the match list" "$mark" \
    'peer WebPKI mx1\.example\.test \(policy override verify, match \.example\.test\)'
# verify with a wrong match list: other.test's MX is mx2.example.test
n2=$(spool_count "$TB/spool/mx2")
refuse verify-wrong other.test "451 4.7.5" "not valid for mx1.example.test"
assert_eq "other.test: nothing stored at mx2" "$n2" "$(spool_count "$TB/spool/mx2")"
assert_file_grep "other.test: mx2 was tried (STARTTLS)" "$TB/spool/mx2/connections.log" 'starttls=yes'
# a host (MX-style) route: a.viamx.test → the MX hosts of example.test, and the next hop's
# override (example.test verify) applies
mark=$(tb_log_mark)
deliver viamx a.viamx.test mx1
assert_eq "a.viamx.test: over TLS" "TLSv1.3" "$(json_get "$M.json" tls.version)"
assert_eq "a.viamx.test: the envelope recipient" '["a@a.viamx.test"]' "$(json_get "$M.json" rcpts)"
assert_log "a.viamx.test: the next hop's override" "$mark" \
    'policy override/verify: override verify for example\.test .*the next hop example\.test'
assert_log "a.viamx.test: verified by the match list" "$mark" 'a\.viamx\.test: connected to mx1\.example\.test.*policy override verify'

# mta-sts: no policy → deferred before any connection; an enforce policy → delivered
refuse mtasts-none dane-nodata.test "451 4.7.5" "MTA-STS required for dane-nodata.test"
assert_no_connect "dane-nodata.test: its MX never connected to" dane-nodata
mark=$(tb_log_mark)
deliver mtasts-ok sts-enforce.test sts-enforce
assert_log "sts-enforce.test: MTA-STS enforce, WebPKI" "$mark" 'sts-enforce\.test: connected to .*peer WebPKI mx\.sts-enforce\.test \(MTA-STS enforce\)'

# a static route to a fixed host: implicit.test's only "MX" is mx1 (its A record), the route
# sends it to [mx2.example.test]:2525; verify's default match = the host connected to
n1=$(spool_count "$TB/spool/mx1")
mark=$(tb_log_mark)
deliver route-ok implicit.test mx2
assert_eq "implicit.test: nothing at mx1 (its own address)" "$n1" "$(spool_count "$TB/spool/mx1")"
assert_eq "implicit.test: over TLS" "TLSv1.3" "$(json_get "$M.json" tls.version)"
assert_log "implicit.test: the route is logged" "$mark" 'next hop \[mx2\.example\.test\] port 2525.*route implicit\.test, .*routes:2'
assert_log "implicit.test: verified as mx2.example.test" "$mark" 'peer WebPKI mx2\.example\.test \(policy override verify, match mx2\.example\.test\)'
# the client certificate went to the MX that asked for one
assert_eq "implicit.test: mx2 got our client certificate" "client.mxguard.test" "$(json_get "$M.json" tls.client_cert)"
# ... and a wrong name at the routed host: nosuch.test does not even exist in DNS
n2=$(spool_count "$TB/spool/mx2")
refuse route-wrong nosuch.test "451 4.7.5" "not valid for mx1.example.test"
assert_eq "nosuch.test: nothing stored at mx2" "$n2" "$(spool_count "$TB/spool/mx2")"

# mxguard check: the override and the route are the policy source
tb_check chk-verify example.test
assert_eq "check example.test: exit 0" 0 "$CHECK_RC"
assert_contains "check example.test: policy source = override" "$CHECK_OUT" "policy source: override (tls.policy_map)"
assert_contains "check example.test: names the entry" "$CHECK_OUT" "override verify for example.test ($TB/tls_policy:7)"
assert_contains "check example.test: the match names per host" "$CHECK_OUT" "valid for one of: .example.test (override verify)"
tb_check chk-route nosuch.test
assert_contains "check nosuch.test: the route" "$CHECK_OUT" "route: [mx2.example.test] (no MX lookup), port 2525 (static route nosuch.test, $TB/routes:3)"
assert_contains "check nosuch.test: the next hop" "$CHECK_OUT" "next hop [mx2.example.test]"
assert_contains "check nosuch.test: the match list" "$CHECK_OUT" "valid for one of: mx1.example.test"
tb_check chk-route-connect nosuch.test --connect
assert_eq "check nosuch.test --connect: not deliverable (exit 1)" 1 "$CHECK_RC"
assert_contains "check nosuch.test --connect: the probe fails on the name" "$CHECK_OUT" "FAILED"
tb_check chk-none dane-ee.test
assert_contains "check dane-ee.test: plaintext by override" "$CHECK_OUT" "PLAINTEXT, STARTTLS not used (override none)"
assert_contains "check dane-ee.test: warns about DANE" "$CHECK_OUT" "WARNING: this host publishes DANE TLSA records"
tb_check chk-daneonly insecure.test
assert_eq "check insecure.test (dane-only): not deliverable (exit 1)" 1 "$CHECK_RC"
assert_contains "check insecure.test: why" "$CHECK_OUT" "DANE required (override dane-only): host NOT usable"
tb_check chk-none-listed other-unlisted.test
assert_contains "check without an entry: no override" "$CHECK_OUT" "policy source: no override (tls.policy_map has no entry)"

# config check -v: the TLS client settings and the maps
out=$("$MXG_BIN" config check -c "$TB/mxguard.conf" -v 2>&1)
assert_contains "config check -v: tls.min_version" "$out" 'min_version = "TLSv1.2";'
assert_contains "config check -v: the client certificate" "$out" "client_cert_file = \"$TB/client.crt\";"
assert_contains "config check -v: the TLS client context" "$out" "# TLS client: protocols TLSv1.2 .. (highest), client certificate /CN=client.mxguard.test"
assert_contains "config check -v: the policy map" "$out" "# tls.policy_map $TB/tls_policy: 11 entries"
assert_contains "config check -v: the route map" "$out" "# upstream.route_map $TB/routes: 3 entries"

# ------------------------------------------------------------------ B. SIGHUP and bad maps
# before: unrouted.test does not exist → 550; plain.test is "encrypt"; after: a "*" route,
# plain.test routed to its own MX hosts (an MX-style route where the names match: its own
# policy) and "may"
swaks_send before-star --to a@unrouted.test
assert_reply "unrouted.test without a route: 550 5.1.2" "$SW_RCPT" "550 5.1.2"
printf 'plain.test plain.test\n* [mx2.example.test]\n' >>"$TB/routes"
sed -i 's/^plain.test .*/plain.test may/' "$TB/tls_policy"
mark=$(tb_log_mark)
kill -HUP "$MXPID"
for i in $(seq 50); do tb_log_since "$mark" | grep 'reload: policy overrides' >/dev/null && break; sleep 0.1; done
assert_log "SIGHUP: the maps are reloaded" "$mark" "reload: policy overrides: 11 \($TB/tls_policy\), static routes: 5 \($TB/routes\)"
deliver star unrouted.test mx2
assert_eq "unrouted.test via \"*\": the envelope recipient" '["a@unrouted.test"]' "$(json_get "$M.json" rcpts)"
deliver may-plain plain.test plain
assert_eq "plain.test (now may): plaintext" "null" "$(json_get "$M.json" tls)"
# a broken map: refused with file and line, the old maps stay in force
printf 'broken.test sometimes\n' >>"$TB/tls_policy"
mark=$(tb_log_mark)
kill -HUP "$MXPID"
for i in $(seq 50); do tb_log_since "$mark" | grep 'stay in force' >/dev/null && break; sleep 0.1; done
assert_log "SIGHUP with a broken map: error with file and line" "$mark" \
    "error reload: $TB/tls_policy:13: broken.test: unknown level \"sometimes\".*previous policy overrides and routes stay in force"
deliver still-star unrouted.test mx2
refuse still-verify other.test "451 4.7.5" "not valid for mx1.example.test"
out=$("$MXG_BIN" config check -c "$TB/mxguard.conf" 2>&1)
rc=$?
assert_eq "config check with the broken map: exit 1" 1 "$rc"
assert_contains "config check names file and line" "$out" "$TB/tls_policy:13: broken.test: unknown level"
tb_stop mxguard
tb_start_mxguard_fails 10
assert_match "mxguard refuses to start with the broken map" "$MXG_EXIT" '^[1-9][0-9]*$'
assert_eq "... and never accepted a connection" 0 "$MXG_ACCEPTED"
assert_file_grep "... saying why" "$TB/mxguard.log" "tls_policy:13: broken.test: unknown level"

# ------------------------------------------------------------------ C. TLS 1.3 only vs TLS 1.2-only MX
tb_stop mx1
tb_start_mx mx1 127.0.70.11 --max-tls TLSv1.2
tb_stop dane-ta
tb_start_mx --chain dane-ta 127.0.70.22 --max-tls TLSv1.2
cat >"$TB/tls_policy" <<'EOF'
insecure.test        verify    match=mx1.example.test
dane-ta.test         dane-only
EOF
: >"$TB/routes"
ovr_config 'min_version = "TLSv1.3";'
tb_start_mxguard
# enforcing: verify (insecure.test → mx1 only) and dane-only → deferred, nothing sent
n1=$(spool_count "$TB/spool/mx1")
refuse tls13-verify insecure.test "451 4.7.5" "TLS failed"
assert_eq "insecure.test: nothing stored at mx1" "$n1" "$(spool_count "$TB/spool/mx1")"
assert_no_log "insecure.test: no plaintext retry under verify" 0 'insecure\.test: TLS with .* retrying once in plaintext'
nt=$(spool_count "$TB/spool/dane-ta")
refuse tls13-daneonly dane-ta.test "451 4.7.5" "TLS failed"
assert_eq "dane-ta.test: nothing stored" "$nt" "$(spool_count "$TB/spool/dane-ta")"
assert_file_grep "mx1 saw the protocol version refused" "$TB/mx1.log" 'UNSUPPORTED_PROTOCOL|unsupported protocol'
assert_file_grep "mx.dane-ta.test saw the protocol version refused" "$TB/dane-ta.log" 'UNSUPPORTED_PROTOCOL|unsupported protocol'
# opportunistic (implicit.test: no override, no route now → mx1): the one plaintext retry
mark=$(tb_log_mark)
deliver tls13-may implicit.test mx1
assert_eq "implicit.test: delivered in plaintext after the failed handshake" "null" "$(json_get "$M.json" tls)"
assert_log "implicit.test: the plaintext retry is logged" "$mark" 'implicit\.test: TLS with implicit\.test\[127\.0\.70\.11\] failed .*retrying once in plaintext'

tb_finish
