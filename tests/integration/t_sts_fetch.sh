#!/usr/bin/env bash
# t_sts_fetch.sh — MTA-STS discovery and policy fetch edge cases, nothing cached. A TXT
# record that is not exactly one valid "v=STSv1; id=..." (two records, an id with '-') gives
# no policy and no fetch; a policy fetch that fails (301 — not followed —, 404, text/html,
# 70 KB with and without Content-Length, a server slower than mta_sts.fetch_timeout, a
# certificate for the wrong name, an expired certificate) gives no policy: the mail goes out
# opportunistically, even to an MX the policy would not allow (each served policy is enforce
# with "mx: nomatch.sts-open.test"), and `mxguard check` says "MTA-STS: failed" with the
# reason. A _mta-sts CNAME to a TXT record in another zone works (the policy applies).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_sts_mx sts-open sts-cname
tb_write_config "$(tb_sts_config)"
tb_start_mxguard
OPEN=$TB/spool/sts-open
SENT=0 # messages mx.sts-open.test should hold

# open_deliver NAME DOMAIN — a@DOMAIN is delivered to mx.sts-open.test (the only MX) without
# MTA-STS: TLS, but "unauthenticated (opportunistic)". Sets MARK.
open_deliver() {
    local name=$1 d=$2 m
    MARK=$(tb_log_mark)
    swaks_send "$name" --to "a@$d"
    assert_reply "$d: RCPT accepted" "$SW_RCPT" "250"
    assert_reply "$d: final dot 250" "$SW_DOT" "250"
    SENT=$((SENT + 1))
    assert_file_count "$OPEN" "$SENT" "$d: delivered to mx.sts-open.test"
    m=$(spool_last "$OPEN")
    [ -z "$m" ] || assert_eq "$d: the last message there is for a@$d" "[\"a@$d\"]" "$(json_get "$m.json" rcpts)"
    assert_log "$d: log: delivered via mx.sts-open.test, opportunistic TLS" "$MARK" \
        "domain=$d mx=mx\\.sts-open\\.test\\[.* tls=TLSv1\\.[23] .* peer=unauthenticated \\(opportunistic\\) .*reply=\"250"
}

# check_sts NAME DOMAIN OUTCOME_ERE REASON_ERE [FAILURE] — `mxguard check DOMAIN`: exit 0
# (deliverable), the MTA-STS line matches "MTA-STS: OUTCOME — ...REASON..." (ERE), no policy
# lines; FAILURE: the TLSRPT result type it names ("failure: ...")
check_sts() {
    local name=$1 d=$2 outcome=$3 reason=$4 failure=${5:-} line
    tb_check "$name" "$d"
    assert_eq "check $d: exit 0 (deliverable)" 0 "$CHECK_RC"
    line=$(grep -m1 '^MTA-STS:' "$TB/$name.check")
    assert_match "check $d: MTA-STS: $outcome" "$line" "^MTA-STS: ($outcome) "
    assert_match "check $d: the reason names the cause (/$reason/)" "$line" "$reason"
    assert_not_contains "check $d: shows no policy" "$CHECK_OUT" "policy id "
    [ -z "$failure" ] || assert_contains "check $d: failure: $failure" "$CHECK_OUT" "failure: $failure"
}

# fetch_fails NAME DOMAIN REASON_ERE [FAILURE] — a failing policy fetch: delivered without
# MTA-STS, logged, and check says failed
fetch_fails() {
    local name=$1 d=$2 reason=$3 failure=${4:-}
    open_deliver "$name" "$d"
    assert_log "$d: log: policy fetch failed" "$MARK" "sts: ${d//./\\.}: failed .*mta-sts\\.${d//./\\.}"
    check_sts "$name" "$d" failed "$reason" "$failure"
}

# 0. no _mta-sts record at all
open_deliver open sts-open.test
check_sts open sts-open.test no-policy 'no MTA-STS record'

# 1. TXT edge cases: no policy, and no fetch either
open_deliver twotxt sts-twotxt.test
check_sts twotxt sts-twotxt.test 'no-policy|failed' '[Ss]everal|[Mm]ore than one|[Mm]ultiple|2 records'
assert_eq "sts-twotxt.test: no policy fetch" 0 "$(tb_sts_fetches sts-twotxt.test)"
open_deliver badid sts-badid.test
check_sts badid sts-badid.test 'no-policy|failed' 'id'
assert_eq "sts-badid.test: no policy fetch" 0 "$(tb_sts_fetches sts-badid.test)"

# 2. _mta-sts.sts-cname.test is a CNAME to a TXT record in sts-elsewhere.test: a policy
MARK=$(tb_log_mark)
swaks_send cname --to a@sts-cname.test
assert_reply "sts-cname.test: final dot 250" "$SW_DOT" "250"
assert_file_count "$TB/spool/sts-cname" 1 "sts-cname.test: delivered to mx.sts-cname.test"
assert_log "sts-cname.test: log: verified by WebPKI under MTA-STS enforce" "$MARK" \
    'domain=sts-cname\.test mx=mx\.sts-cname\.test\[.* peer=WebPKI mx\.sts-cname\.test \(MTA-STS enforce\)'
assert_eq "sts-cname.test: one policy fetch" 1 "$(tb_sts_fetches sts-cname.test)"
tb_check cname sts-cname.test
assert_contains "check sts-cname.test: MTA-STS: policy, id cname1" "$CHECK_OUT" "policy id cname1, mode enforce"

# 3. HTTP edge cases: the fetch fails, nothing is cached
fetch_fails redirect sts-redirect.test '301' sts-policy-fetch-error
assert_eq "sts-redirect.test: the redirect was not followed (sts-enforce.test's policy never fetched)" \
    0 "$(tb_sts_fetches sts-enforce.test)"
fetch_fails notfound sts-notfound.test '404' sts-policy-fetch-error
fetch_fails html sts-html.test 'text/html'
fetch_fails big sts-big.test '65536|64 ?Ki?B|limit|too (big|large)'
fetch_fails chunked sts-chunked.test '65536|64 ?Ki?B|limit|too (big|large)'
for d in sts-redirect.test sts-notfound.test sts-html.test sts-big.test sts-chunked.test; do
    assert_match "$d: the policy host was asked (nginx access log)" "$(tb_sts_fetches $d)" '^[1-9][0-9]*$'
done
t0=$(date +%s)
fetch_fails slow sts-slow.test '[Tt]ime(d)? ?out' sts-policy-fetch-error
assert_match "sts-slow.test: given up after mta_sts.fetch_timeout (3 s), delivery and check ($(($(date +%s) - t0)) s)" \
    "$(($(date +%s) - t0))" '^([5-9]|1[0-4])$'
fetch_fails wrongname sts-wrongname.test '[Cc]ertificate|name' sts-webpki-invalid
fetch_fails expired sts-expired.test 'expired' sts-webpki-invalid

assert_file_count "$OPEN" "$SENT" "mx.sts-open.test: every message ($SENT)"
tb_finish
