#!/usr/bin/env bash
# t_testbed_sts.sh — checks the MTA-STS part of the test-bed itself, without mxguard: the
# sts-* zones validate with delv (TXT records, the CNAME'd _mta-sts, two records, the bad id,
# mta-sts.D addresses, the zone variants of tb_dns_swap), nginx serves every policy host as
# intended (tb_https_get, WebPKI with the test CA: 200 text/plain policies, 301, 404, text/html, 70 KB with
# Content-Length and chunked, the slow one, the wrong-name and expired certificates, unknown
# SNI; tb_sts_policy), and each MTA-STS MX server presents the certificate it should
# (openssl s_client -verify_hostname against the test CA).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx

delv_q() { # delv_q NAME TYPE — validating lookup through nsd with the test anchor
    delv @"$TB_DNS_IP" -p "$TB_DNS_PORT" -b "$TB_CLIENT_IP" -a "$TB/dns/delv.anchor" +root=. "$1" "$2" 2>&1
}

# ---- DNS
while read -r d cert; do
    case $d in
        sts-cname.test)
            out=$(delv_q "_mta-sts.$d" TXT)
            assert_match "_mta-sts.$d: CNAME to _mta-sts.sts-cname.sts-elsewhere.test, TXT there (validated)" "$out" \
                'fully validated.*CNAME[[:space:]]+_mta-sts\.sts-cname\.sts-elsewhere\.test\..*TXT[[:space:]]+"v=STSv1; id=cname1"' ;;
        sts-twotxt.test)
            assert_match "_mta-sts.$d: two v=STSv1 records (validated)" "$(delv_q "_mta-sts.$d" TXT)" \
                'fully validated.*TXT[[:space:]]+"v=STSv1; id=twotxt1".*TXT[[:space:]]+"v=STSv1; id=twotxt2"' ;;
        sts-badid.test)
            assert_match "_mta-sts.$d: id=bad-id1 (validated)" "$(delv_q "_mta-sts.$d" TXT)" \
                'fully validated.*TXT[[:space:]]+"v=STSv1; id=bad-id1"' ;;
        *)
            assert_match "_mta-sts.$d: one v=STSv1 record with an id (validated)" "$(delv_q "_mta-sts.$d" TXT)" \
                'fully validated.*TXT[[:space:]]+"v=STSv1; id=[a-z0-9]+"' ;;
    esac
    assert_match "mta-sts.$d A $TB_HTTPS_IP (validated)" "$(delv_q "mta-sts.$d" A)" \
        "fully validated.*A[[:space:]]+${TB_HTTPS_IP//./\\.}([^0-9]|\$)"
done <"$TB/dns/sts.domains"
assert_eq "every sts-* domain with a policy host is in sts.domains (23)" 23 "$(wc -l <"$TB/dns/sts.domains")"
assert_match "sts-open.test: no _mta-sts record (validated NXDOMAIN)" "$(delv_q _mta-sts.sts-open.test TXT)" \
    'negative response, fully validated'
assert_match "sts-nomatch.test MX 10 mx, 20 mx2 (validated)" "$(delv_q sts-nomatch.test MX)" \
    'fully validated.*MX[[:space:]]+10 mx\.sts-nomatch\.test\..*MX[[:space:]]+20 mx2\.sts-nomatch\.test\.'
assert_match "sts-wild.test MX 10 b.c, 20 a (validated)" "$(delv_q sts-wild.test MX)" \
    'fully validated.*MX[[:space:]]+10 b\.c\.sts-wild\.test\..*MX[[:space:]]+20 a\.sts-wild\.test\.'
assert_match "b.c.sts-wild.test A 127.0.70.48 (validated)" "$(delv_q b.c.sts-wild.test A)" 'fully validated.*127\.0\.70\.48'
assert_match "sts-redirect.test MX 10 mx.sts-open.test (validated)" "$(delv_q sts-redirect.test MX)" \
    'fully validated.*MX[[:space:]]+10 mx\.sts-open\.test\.'
assert_match "_25._tcp.mx.sts-dane.test TLSA = the wrong digest (validated)" "$(delv_q _25._tcp.mx.sts-dane.test TLSA)" \
    "fully validated.*TLSA[[:space:]]+3 1 1 $(cut -c7-38 "$TB/dns/tlsa.wrong311" | tr a-f A-F)"
assert_match "_25._tcp.mx.sts-daneok.test TLSA 3 1 1 = its key (validated)" "$(delv_q _25._tcp.mx.sts-daneok.test TLSA)" \
    "fully validated.*TLSA[[:space:]]+3 1 1 $(cut -c1-32 "$TB/dns/certs/mx.sts-daneok.test.tlsa311" | tr a-f A-F)"
# zone variants
tb_dns_swap sts-cache.test b sts-rotate.test b
assert_match "sts-cache.test variant b: no _mta-sts record (validated)" "$(delv_q _mta-sts.sts-cache.test TXT)" \
    'negative response, fully validated'
assert_match "sts-cache.test variant b: MX 10 mx2 (validated)" "$(delv_q sts-cache.test MX)" \
    'fully validated.*MX[[:space:]]+10 mx2\.sts-cache\.test\.'
assert_match "sts-rotate.test variant b: id=rotate2 (validated)" "$(delv_q _mta-sts.sts-rotate.test TXT)" \
    'fully validated.*"v=STSv1; id=rotate2"'
tb_dns_swap sts-cache.test a sts-rotate.test a
assert_match "sts-cache.test variant a again: id=cache1 (validated)" "$(delv_q _mta-sts.sts-cache.test TXT)" \
    'fully validated.*"v=STSv1; id=cache1"'
assert_match "sts-rotate.test variant a again: MX 10 mx (validated)" "$(delv_q sts-rotate.test MX)" \
    'fully validated.*MX[[:space:]]+10 mx\.sts-rotate\.test\.'

# ---- nginx: the policy hosts
# policy_ok D MODE MX — 200 text/plain, a policy with that mode and mx line
policy_ok() {
    tb_https_get "$1" "$1"
    assert_eq "mta-sts.$1: 200 text/plain" "ok 200 text/plain" "$HTTP_RC $HTTP_CODE $HTTP_CTYPE"
    local body
    body=$(tr -d '\r' <"$TB/$1.body")
    assert_match "mta-sts.$1: a policy (version, mode, max_age)" "$body" \
        "^version: STSv1"$'\n'"mode: $2"$'\n'"(mx: [^"$'\n'"]+"$'\n'")?max_age: [0-9]+\$"
    [ -z "$3" ] || assert_contains "mta-sts.$1: mx: $3" "$body" "mx: $3"$'\n'
}
policy_ok sts-enforce.test enforce mx.sts-enforce.test
policy_ok sts-nomatch.test enforce mx2.sts-nomatch.test
assert_eq "mta-sts.sts-nomatch.test: CRLF line ends" 4 "$(grep -c $'\r$' "$TB/sts-nomatch.test.body")"
policy_ok sts-nomatch-all.test enforce mx.sts-nomatch-all.test
policy_ok sts-badcert.test enforce mx.sts-badcert.test
policy_ok sts-testing.test testing other.sts-testing.test
policy_ok sts-none.test none ""
policy_ok sts-wild.test enforce '*.sts-wild.test'
policy_ok sts-dane.test enforce mx.sts-dane.test
policy_ok sts-daneok.test enforce other.sts-daneok.test
policy_ok sts-cname.test enforce mx.sts-cname.test
policy_ok sts-twotxt.test enforce nomatch.sts-open.test
policy_ok sts-badid.test enforce nomatch.sts-open.test
policy_ok sts-cache.test enforce mx.sts-cache.test
policy_ok sts-rotate.test enforce mx.sts-rotate.test
policy_ok sts-short.test enforce other.sts-short.test
assert_match "mta-sts.sts-short.test: max_age 2" "$(cat "$TB/sts-short.test.body")" 'max_age: 2$'
tb_https_get redirect sts-redirect.test
assert_eq "mta-sts.sts-redirect.test: 301" "ok 301" "$HTTP_RC $HTTP_CODE"
assert_file_grep "mta-sts.sts-redirect.test: Location = sts-enforce.test's policy" "$TB/redirect.headers" \
    '^Location: https://mta-sts\.sts-enforce\.test/\.well-known/mta-sts\.txt'
tb_https_get notfound sts-notfound.test
assert_eq "mta-sts.sts-notfound.test: 404" "ok 404" "$HTTP_RC $HTTP_CODE"
tb_https_get html sts-html.test
assert_eq "mta-sts.sts-html.test: 200 text/html" "ok 200 text/html" "$HTTP_RC $HTTP_CODE $HTTP_CTYPE"
assert_match "mta-sts.sts-html.test: a policy nonetheless" "$(cat "$TB/html.body")" '^version: STSv1'
tb_https_get big sts-big.test
assert_eq "mta-sts.sts-big.test: 200 text/plain" "ok 200 text/plain" "$HTTP_RC $HTTP_CODE $HTTP_CTYPE"
assert_match "mta-sts.sts-big.test: over 70000 octets ($HTTP_SIZE)" "$HTTP_SIZE" '^(7[0-9]|[89][0-9])[0-9]{3}$'
assert_file_grep "mta-sts.sts-big.test: Content-Length announced" "$TB/big.headers" "^Content-Length: $HTTP_SIZE"
assert_match "mta-sts.sts-big.test: starts as an enforce policy" "$(head -n 4 "$TB/big.body")" 'mode: enforce'
tb_https_get chunked sts-chunked.test
assert_eq "mta-sts.sts-chunked.test: 200 text/plain" "ok 200 text/plain" "$HTTP_RC $HTTP_CODE $HTTP_CTYPE"
assert_eq "mta-sts.sts-chunked.test: the same 70 KB" "$(stat -c %s "$TB/big.body")" "$HTTP_SIZE"
assert_file_grep "mta-sts.sts-chunked.test: Transfer-Encoding: chunked" "$TB/chunked.headers" '^Transfer-Encoding: chunked'
if grep -qi '^Content-Length' "$TB/chunked.headers"; then fail "mta-sts.sts-chunked.test: has a Content-Length"
else pass "mta-sts.sts-chunked.test: no Content-Length"; fi
tb_https_get slow sts-slow.test --max-time 4
assert_eq "mta-sts.sts-slow.test: not complete within 4 s" timeout "$HTTP_RC"
tb_https_get wrongname sts-wrongname.test
assert_eq "mta-sts.sts-wrongname.test: certificate rejected" cert "$HTTP_RC"
assert_contains "mta-sts.sts-wrongname.test: for another name" "$HTTP_ERR" "Hostname mismatch"
tb_https_get wrongname-k sts-wrongname.test --insecure
assert_eq "mta-sts.sts-wrongname.test: without the check a 200 policy" "ok 200" "$HTTP_RC $HTTP_CODE"
tb_https_get expired sts-expired.test
assert_eq "mta-sts.sts-expired.test: certificate rejected" cert "$HTTP_RC"
assert_contains "mta-sts.sts-expired.test: expired" "$HTTP_ERR" "certificate has expired"
tb_https_get expired-k sts-expired.test --insecure
assert_eq "mta-sts.sts-expired.test: without the check a 200 policy" "ok 200" "$HTTP_RC $HTTP_CODE"
tb_https_get nosuch nosuch.test
assert_eq "unknown name mta-sts.nosuch.test: certificate rejected" cert "$HTTP_RC"
tb_https_get nosuch-k nosuch.test --insecure
assert_eq "unknown name mta-sts.nosuch.test: 421 from the default server" "ok 421" "$HTTP_RC $HTTP_CODE"
# tb_sts_policy: other versions, none (404), and the access log counts
tb_sts_policy sts-rotate.test b
policy_ok sts-rotate.test enforce mx2.sts-rotate.test
tb_sts_policy sts-rotate.test none
tb_https_get rotate-none sts-rotate.test
assert_eq "tb_sts_policy sts-rotate.test none: 404" "ok 404" "$HTTP_RC $HTTP_CODE"
tb_sts_policy sts-rotate.test a
policy_ok sts-rotate.test enforce mx.sts-rotate.test
assert_eq "tb_sts_fetches sts-rotate.test: 4 requests logged" 4 "$(tb_sts_fetches sts-rotate.test)"
assert_eq "tb_sts_fetches sts-enforce.test: 1 request logged" 1 "$(tb_sts_fetches sts-enforce.test)"
tb_stop nginx
tb_https_get stopped sts-enforce.test
assert_eq "nginx stopped: connection refused" refused "$HTTP_RC"
tb_start_nginx
policy_ok sts-enforce.test enforce mx.sts-enforce.test

# ---- the MX servers: their certificates by WebPKI (test CA) for the MX host name
for e in $TB_STS_MX; do tb_start_sts_mx "${e%%:*}"; done
# webpki_probe NAME — STARTTLS to MX server NAME, verify the chain and the host name
webpki_probe() {
    local host ip
    host=$(tb_mx_host "$1")
    ip=127.0.70.$(tr ' ' '\n' <<<"$TB_STS_MX" | grep -E "^$1:" | cut -d: -f2)
    timeout 15 openssl s_client -starttls smtp -name client.test -bind "$TB_CLIENT_IP:0" \
        -connect "$ip:$TB_MX_PORT" -servername "$host" -verify_hostname "$host" \
        -CAfile "$TB/dns/certs/ca.crt" -verify_return_error -brief >"$TB/$1.sclient" 2>&1 </dev/null
    PROBE_RC=$?
    PROBE_OUT=$(cat "$TB/$1.sclient")
}
for e in $TB_STS_MX; do
    n=${e%%:*}
    webpki_probe "$n"
    case $n in
        sts-badcert|sts-testing|sts-none)
            assert_eq "$(tb_mx_host "$n"): WebPKI verification fails" 1 "$((PROBE_RC != 0))"
            assert_contains "$(tb_mx_host "$n"): hostname mismatch" "$PROBE_OUT" "hostname mismatch" ;;
        *)
            assert_eq "$(tb_mx_host "$n"): WebPKI-valid for its name (exit 0)" 0 "$PROBE_RC"
            assert_contains "$(tb_mx_host "$n"): peer name verified" "$PROBE_OUT" "Verified peername: $(tb_mx_host "$n")" ;;
    esac
done

tb_finish
