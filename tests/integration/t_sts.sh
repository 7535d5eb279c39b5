#!/usr/bin/env bash
# t_sts.sh — MTA-STS (RFC 8461) delivery outcomes, each policy freshly fetched from nginx:
# enforce with a matching MX and a WebPKI-valid certificate → delivered over TLS ("WebPKI ...
# (MTA-STS enforce)"); an MX not in the policy is never connected to (the next one is used);
# no MX in the policy → 451 4.7.5 "MTA-STS", nothing connected; a certificate for another name
# → 451 4.7.5, no MAIL; testing → delivered anyway with "MTA-STS testing" log lines; mode none →
# opportunistic; "*.sts-wild.test" matches a.sts-wild.test but not b.c.sts-wild.test; a host
# with a usable DANE TLSA is governed by DANE alone: a wrong digest is not rescued by the
# matching, WebPKI-valid STS policy, and a matching TLSA is enough for a host the policy does
# not name (docs/ARCHITECTURE.md §DANE per host). `mxguard check` shows the policy and per MX
# whether it matches.
# (Zones and policies: mkzones.sh.)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_sts_mx sts-enforce sts-nomatch sts-nomatch2 sts-nomatch-all1 sts-nomatch-all2 sts-badcert \
    sts-testing sts-none sts-wild-bc sts-wild-a sts-dane sts-daneok
tb_write_config "$(tb_sts_config)"
tb_start_mxguard

# sts_deliver NAME DOMAIN MX VERIFIED — a message to a@DOMAIN is accepted and reaches MX
# server MX over TLS with SNI = its host name; the transaction log line names DOMAIN, the MX
# host and VERIFIED (an ERE for what mxguard verified, e.g. 'WebPKI .* \(MTA-STS enforce\)').
# Sets MARK (the log offset before the send).
sts_deliver() {
    local name=$1 d=$2 mx=$3 verified=$4 host m
    host=$(tb_mx_host "$mx")
    MARK=$(tb_log_mark)
    tb_make_message "$name" --to "a@$d" --subject "MTA-STS $d" --id "$name-1"
    swaks_send "$name" --to "a@$d" --no-data-fixup --data "@$TB/$name.wire"
    assert_reply "$d: RCPT accepted" "$SW_RCPT" "250"
    assert_reply "$d: final dot 250" "$SW_DOT" "250"
    assert_file_count "$TB/spool/$mx" 1 "$d: delivered to $host"
    m=$(spool_last "$TB/spool/$mx")
    if [ -n "$m" ]; then
        assert_match "$d: delivered over TLS (json tls.version)" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
        assert_eq "$d: envelope recipient" "[\"a@$d\"]" "$(json_get "$m.json" rcpts)"
        assert_eq "$d: message intact" "received+same" "$(eml_compare "$m.eml" "$TB/$name.msg")"
        assert_eq "$d: SNI = $host" "$host" "$(json_get "$m.json" tls.sni)"
    fi
    assert_log "$d: log: delivered via $host, verified: $verified" "$MARK" \
        "domain=$d mx=${host//./\\.}\\[.* peer=$verified .*reply=\"250"
}

# sts_refuse NAME DOMAIN TEXT MX... — RCPT a@DOMAIN gets 451 4.7.5 naming TEXT, nothing is
# relayed and no MX server got a MAIL command
sts_refuse() {
    local name=$1 d=$2 text=$3 mx; shift 3
    MARK=$(tb_log_mark)
    swaks_send "$name" --to "a@$d"
    assert_reply "$d: RCPT refused" "$SW_RCPT" "451 4.7.5"
    assert_contains "$d: the reply says $text" "$SW_RCPT" "$text"
    assert_eq "$d: no final dot reply (nothing relayed)" "" "$SW_DOT"
    for mx in "$@"; do
        assert_no_mail "$d: nothing reached $(tb_mx_host "$mx") (no MAIL, no plaintext)" "$mx"
    done
}

# check_has DESC NAME TEXT — $TB/NAME.check (tb_check) has the line TEXT (fixed string)
check_has() {
    if grep -qF -- "$3" "$TB/$2.check"; then pass "$1"; else fail "$1: [$3] not in $2.check"; fi
}

# 1. enforce, the MX matches, its certificate is valid for its name
sts_deliver enforce sts-enforce.test sts-enforce 'WebPKI mx\.sts-enforce\.test \(MTA-STS enforce\)'
assert_log "sts-enforce.test: policy fetched (log)" "$MARK" 'sts-enforce\.test: policy mode=enforce .*fetched'
assert_eq "sts-enforce.test: one policy fetch" 1 "$(tb_sts_fetches sts-enforce.test)"
tb_check enforce sts-enforce.test
assert_eq "check sts-enforce.test: exit 0" 0 "$CHECK_RC"
check_has "check sts-enforce.test: MTA-STS: policy" enforce "MTA-STS: policy"
check_has "check sts-enforce.test: id and mode" enforce "policy id enforce1, mode enforce"
check_has "check sts-enforce.test: the mx line" enforce "mx: mx.sts-enforce.test"
check_has "check sts-enforce.test: the MX matches" enforce "host matches the policy's mx patterns"

# 2. MX 10 is not in the policy: never connected to; MX 20 (in it) gets the mail
sts_deliver nomatch sts-nomatch.test sts-nomatch2 'WebPKI mx2\.sts-nomatch\.test \(MTA-STS enforce\)'
assert_no_connect "sts-nomatch.test: mx.sts-nomatch.test (MX 10, not in the policy) never connected to" sts-nomatch
tb_check nomatch sts-nomatch.test
check_has "check sts-nomatch.test: MTA-STS: policy (CRLF policy file)" nomatch "MTA-STS: policy"
assert_match "check sts-nomatch.test: MX 10 does not match, MX 20 matches" "$(tr '\n' ' ' <"$TB/nomatch.check")" \
    'MX 10 mx\.sts-nomatch\.test .*does NOT match.* MX 20 mx2\.sts-nomatch\.test .*host matches'

# 3. no MX in the policy: temporary failure, nothing connected
sts_refuse nomatch-all sts-nomatch-all.test "MTA-STS" sts-nomatch-all1 sts-nomatch-all2
assert_no_connect "sts-nomatch-all.test: mx1 never connected to" sts-nomatch-all1
assert_no_connect "sts-nomatch-all.test: mx2 never connected to" sts-nomatch-all2
tb_check nomatch-all sts-nomatch-all.test
assert_match "check sts-nomatch-all.test: non-zero exit ($CHECK_RC)" "$CHECK_RC" '^[1-9][0-9]*$'
assert_eq "check sts-nomatch-all.test: both MX do not match" 2 "$(grep -c 'does NOT match' "$TB/nomatch-all.check")"

# 4. the MX presents a (test-CA) certificate for another name
sts_refuse badcert sts-badcert.test "MTA-STS" sts-badcert
assert_file_grep "sts-badcert.test: the MX was tried (STARTTLS)" "$TB/spool/sts-badcert/connections.log" 'starttls=yes'
assert_match "sts-badcert.test: the reply names the cause" "$SW_RCPT" \
    '[Hh]ost ?name mismatch|[Nn]ame mismatch|not valid for'

# 5. testing: not in the policy and a wrong certificate, delivered anyway and logged
sts_deliver testing sts-testing.test sts-testing 'unauthenticated: MTA-STS testing.*'
assert_log "sts-testing.test: log: MTA-STS testing, MX not in the policy" "$MARK" \
    'MTA-STS testing: mx\.sts-testing\.test is not in the policy'
assert_log "sts-testing.test: log: MTA-STS testing, certificate not valid" "$MARK" \
    'MTA-STS testing: certificate of mx\.sts-testing\.test.* not valid'
tb_check testing sts-testing.test
assert_eq "check sts-testing.test: exit 0" 0 "$CHECK_RC"
check_has "check sts-testing.test: mode testing" testing "mode testing"

# 6. mode none: no policy to enforce (wrong certificate, delivered opportunistically)
sts_deliver none sts-none.test sts-none 'unauthenticated \(opportunistic\)'
assert_no_log "sts-none.test: no MTA-STS testing/enforce line" "$MARK" 'sts-none\.test.*MTA-STS (testing|enforce)'
tb_check none sts-none.test
check_has "check sts-none.test: mode none" none "mode none"

# 7. "*.sts-wild.test" stands for exactly one label: a.sts-wild.test (MX 20), not b.c (MX 10)
sts_deliver wild sts-wild.test sts-wild-a 'WebPKI a\.sts-wild\.test \(MTA-STS enforce\)'
assert_no_connect "sts-wild.test: b.c.sts-wild.test (two labels) never connected to" sts-wild-bc
tb_check wild sts-wild.test
check_has "check sts-wild.test: the mx line" wild "mx: *.sts-wild.test"
assert_match "check sts-wild.test: b.c does not match, a matches" "$(tr '\n' ' ' <"$TB/wild.check")" \
    'MX 10 b\.c\.sts-wild\.test .*does NOT match.* MX 20 a\.sts-wild\.test .*host matches'

# 8. DANE (3 1 1, wrong digest) and a matching STS enforce policy: DANE alone decides
sts_refuse dane sts-dane.test "DANE" sts-dane
assert_file_grep "sts-dane.test: the MX was tried (STARTTLS)" "$TB/spool/sts-dane/connections.log" 'starttls=yes'
assert_log "sts-dane.test: the STS policy was there (enforce)" "$MARK" 'sts-dane\.test: policy mode=enforce'
assert_no_log "sts-dane.test: no WebPKI/MTA-STS verification of the DANE host" "$MARK" 'sts-dane\.test.*(WebPKI|MTA-STS enforce\))'

# 9. matching DANE TLSA, STS enforce policy naming another host: DANE decides (eligibility too)
sts_deliver daneok sts-daneok.test sts-daneok 'DANE \(TLSA 3 1 1 matched.*'
assert_log "sts-daneok.test: the STS policy was there (enforce)" "$MARK" 'sts-daneok\.test: policy mode=enforce'

assert_file_count "$TB/spool/sts-enforce" 1 "mx.sts-enforce.test: still one message"
tb_finish
