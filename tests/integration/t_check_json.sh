#!/usr/bin/env bash
# t_check_json.sh — `mxguard check DOMAIN --json` names exactly the per-host requirement the
# delivery path uses and enforces (docs/ARCHITECTURE.md §Requirement): for one domain per policy kind of the test-bed
# (DANE verify, DANE with only unusable TLSA, bogus TLSA, MTA-STS enforce, enforce with an MX
# outside the policy, testing, the policy list, no policy, an override verify, an override
# mta-sts without a policy) the JSON object is read, then a message is sent to the domain:
#   - every host the delivery evaluated logged "requirement host=H level=... metric=..." at
#     debug, and that text equals the JSON's hosts[].summary for H (one function makes both);
#   - the outcome is the one the requirement promises: delivered to the first usable host
#     with the level's `verified` text, or refused with 451 and the JSON's enh (per host, or
#     the domain-wide "deferred" one).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_mx mx1 127.0.70.11
tb_start_mx dane-ee 127.0.70.21
tb_start_mx dane-nodata 127.0.70.29
tb_start_mx dane-unusable 127.0.70.30
tb_start_sts_mx sts-enforce sts-nomatch sts-nomatch2 sts-testing

tb_list_keys
now=$(date +%s)
cat >"$TB/list.json" <<JSON
{
  "timestamp": "$(date -u -d "@$((now - 60))" +%Y-%m-%dT%H:%M:%S+00:00)",
  "expires": $((now + 86400)),
  "version": "0.1",
  "author": "mxguard test suite",
  "pinsets": {},
  "policy-aliases": {},
  "policies": {"example.test": {"mode": "enforce", "mxs": ["mx1.example.test"]}}
}
JSON
tb_list_sign "$TB/list.json"
cat >"$TB/tls_policy" <<'EOF'
dane-nodata.test   verify
sts-open.test      mta-sts
EOF
tb_write_config "$(tb_sts_config)" \
    "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };"
awk -v maps="  policy_map = \"$TB/tls_policy\";" '{ print } /^  ca_file = / { print maps }' \
    "$TB/mxguard.conf" >"$TB/mxguard.conf.new" && mv "$TB/mxguard.conf.new" "$TB/mxguard.conf"
tb_start_mxguard
sleep 0.5 # the list is loaded right after start-up

# jq_host FILE HOST FIELD — hosts[] entry HOST's FIELD of check's JSON
jq_host() { jq -r --arg h "$2" ".hosts[] | select(.host == \$h) | .$3" "$1"; }

# case DOMAIN FIRST_LEVEL OUTCOME [MX|ENH] [VERIFIED_ERE] — OUTCOME: delivered (to the MX
# server MX, with peer text VERIFIED_ERE) or deferred (RCPT 451 ENH)
case_() {
    local d=$1 level=$2 outcome=$3 arg=${4:-} ver=${5:-} j="$TB/$1.json" n0 mark h line sum
    "$MXG_BIN" check "$d" -c "$TB/mxguard.conf" --json >"$j" 2>"$TB/$d.check-err" </dev/null
    if ! jq -e .domain "$j" >/dev/null 2>&1; then
        fail "$d: check --json printed no JSON object"; cat "$j" "$TB/$d.check-err"; return
    fi
    assert_eq "$d: JSON names the domain" "$d" "$(jq -r .domain "$j")"
    assert_eq "$d: the first host's level" "$level" "$(jq -r '.hosts[0].level // "none"' "$j")"
    mark=$(tb_log_mark)
    [ "$outcome" = delivered ] && n0=$(spool_count "$TB/spool/$arg")
    swaks_send "json-$d" --to "a@$d"
    sleep 0.2
    # every requirement the delivery logged is the one check printed for that host
    local logged=0
    while IFS= read -r line; do
        h=$(sed -E 's/.*requirement host=([^ ]+) .*/\1/' <<<"$line")
        sum=$(sed -E 's/.*requirement (host=.*)$/\1/' <<<"$line")
        logged=$((logged + 1))
        assert_eq "$d: host $h: delivery's requirement = check's" "$(jq_host "$j" "$h" summary)" "$sum"
    done < <(tb_log_since "$mark" | grep -E " $d: requirement host=")
    if [ "$outcome" = delivered ]; then
        [ "$logged" -gt 0 ] || fail "$d: the delivery logged no requirement"
        assert_reply "$d: delivered" "$SW_DOT" "250"
        assert_file_count "$TB/spool/$arg" $((n0 + 1)) "$d: stored at $(tb_mx_host "$arg")"
        assert_eq "$d: check says deliverable" "deliverable" "$(jq -r .verdict "$j")"
        h=$(tb_mx_host "$arg")
        assert_eq "$d: $h is not skipped in the JSON" "false" "$(jq_host "$j" "$h" skip)"
        assert_log "$d: connected to $h, peer $ver" "$mark" " $d: connected to $h\[.*peer $ver"
    else
        assert_reply "$d: refused with 451 $arg" "$SW_RCPT" "451 $arg"
        assert_eq "$d: check says not deliverable now" "not-deliverable-now" "$(jq -r .verdict "$j")"
        local want
        want=$(jq -r 'if .deferred then .deferred.enh else ([.hosts[] | select(.skip) | .enh] | max) end' "$j")
        assert_eq "$d: the JSON's enh is the reply's" "$arg" "$want"
        if [ "$(jq -r .deferred "$j")" = null ]; then
            [ "$logged" -gt 0 ] || fail "$d: the delivery logged no requirement"
        fi
    fi
}

case_ dane-ee.test dane delivered dane-ee 'DANE \(TLSA 3 1 1 matched at depth 0'
case_ dane-unusable.test encrypt delivered dane-unusable 'unauthenticated \(only unusable TLSA\)'
case_ dane-bogus.test skip-host deferred 4.7.5
case_ sts-enforce.test webpki delivered sts-enforce 'WebPKI mx\.sts-enforce\.test \(MTA-STS enforce\)'
case_ sts-nomatch.test skip-host delivered sts-nomatch2 'WebPKI mx2\.sts-nomatch\.test \(MTA-STS enforce\)'
case_ sts-testing.test webpki-testing delivered sts-testing 'unauthenticated: MTA-STS testing, WebPKI failed'
case_ example.test webpki delivered mx1 'WebPKI mx1\.example\.test \(policy list enforce\)'
case_ insecure.test may delivered mx1 'unauthenticated \(opportunistic\)'
case_ dane-nodata.test webpki delivered dane-nodata 'WebPKI mx\.dane-nodata\.test \(policy override verify, match mx\.dane-nodata\.test\)'
case_ sts-open.test encrypt deferred 4.7.5

# the stable fields of the JSON object (docs/man/mxguard.8)
j="$TB/sts-nomatch.test.json"
assert_eq "JSON: top-level fields" "deferred,dns,domain,hosts,list,mta_sts,policy,route,status,usable,verdict" \
    "$(jq -r 'keys | join(",")' "$j")"
assert_eq "JSON: dns = the stub path of dns.mode stub (the test-bed's nsd)" \
    "stub stub $TB_DNS_IP:$TB_DNS_PORT over TCP" "$(jq -r '"\(.dns.mode) \(.dns.configured) \(.dns.via)"' "$j")"
assert_eq "JSON: per-host requirement fields" \
    "addresses,dane,dane_fact,dane_why,dnssec,enh,host,level,metric,not_in_policy,pref,skip,source,starttls,summary,tls_required,tlsrpt,verify,why" \
    "$(jq -r '.hosts[0] | keys | join(",")' "$j")"
assert_eq "JSON: mx.sts-nomatch.test skipped with 4.7.5 under MTA-STS" "true 4.7.5 mta-sts sts" \
    "$(jq -r '.hosts[0] | "\(.skip) \(.enh) \(.source) \(.tlsrpt)"' "$j")"
assert_eq "JSON: mx2 verified by WebPKI names, enforced" "names true mx2.sts-nomatch.test mta-sts" \
    "$(jq -r '.hosts[1] | "\(.verify.how) \(.verify.enforce) \(.verify.names[0]) \(.metric)"' "$j")"
assert_eq "JSON: the MTA-STS policy" "true policy enforce" \
    "$(jq -r '.mta_sts | "\(.consulted) \(.outcome) \(.mode)"' "$j")"
assert_eq "JSON: DANE host, the TLSA set" "dane true 1" \
    "$(jq -r '.hosts[0] | "\(.verify.how) \(.verify.enforce) \(.verify.tlsa)"' "$TB/dane-ee.test.json")"

tb_list_keys_stop
tb_finish
