#!/usr/bin/env bash
# t_sts_cache.sh — the MTA-STS policy cache ($TB/state/mta-sts.db, RFC 8461 §3.1/§5.1):
# the same TXT id is not fetched again (nginx access log), also not by `mxguard check` (another
# process reading the same cache); across a restart of mxguard a cached enforce policy still
# governs delivery after the TXT record was removed, the MX replaced by one the policy does
# not name and the policy host stopped (451 4.7.5, the new MX never connected to); a new id
# whose fetch fails keeps the old policy; a policy whose max_age (2 s) ran out is not used
# when the refetch fails (opportunistic delivery); once the policy host is back the new id's
# policy is fetched and used. (Zones, variants and policies: mkzones.sh.)
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_sts_mx sts-cache sts-cache2 sts-rotate sts-rotate2 sts-short
tb_write_config "$(tb_sts_config 'refresh_min_interval = "0s";')"
tb_start_mxguard
LOG=mxguard # the log the assertions read (the second instance logs to mxguard2.log)

# deliver NAME DOMAIN MX — a@DOMAIN is delivered to MX server MX (the Nth message there),
# verified by WebPKI under MTA-STS enforce. Sets MARK.
deliver() {
    local name=$1 d=$2 mx=$3 host n
    host=$(tb_mx_host "$mx")
    n=$(($(spool_count "$TB/spool/$mx") + 1))
    MARK=$(tb_log_mark $LOG)
    swaks_send "$name" --to "a@$d"
    assert_reply "$d: final dot 250" "$SW_DOT" "250"
    assert_file_count "$TB/spool/$mx" "$n" "$d: delivered to $host"
    assert_log "$d: log: verified by WebPKI under MTA-STS enforce" "$MARK" \
        "domain=$d mx=${host//./\\.}\\[.* peer=WebPKI ${host//./\\.} \\(MTA-STS enforce\\)" $LOG
}

# refuse NAME DOMAIN MX — RCPT a@DOMAIN gets 451 4.7.5 "MTA-STS"; MX server MX (the one the
# DNS now names, not in the cached policy) never got a connection. Sets MARK.
refuse() {
    local name=$1 d=$2 mx=$3
    MARK=$(tb_log_mark $LOG)
    swaks_send "$name" --to "a@$d"
    assert_reply "$d: RCPT refused" "$SW_RCPT" "451 4.7.5"
    assert_contains "$d: the reply says MTA-STS" "$SW_RCPT" "MTA-STS"
    assert_eq "$d: nothing relayed" "" "$SW_DOT"
    assert_no_connect "$d: $(tb_mx_host "$mx") (not in the cached policy) never connected to" "$mx"
}

# ---- 1. fetch and cache
deliver cache1 sts-cache.test sts-cache
assert_eq "sts-cache.test: one policy fetch" 1 "$(tb_sts_fetches sts-cache.test)"
deliver cache2 sts-cache.test sts-cache
assert_log "sts-cache.test: second message: cached policy, TXT id unchanged" "$MARK" \
    'sts-cache\.test: policy mode=enforce .*cached policy id cache1 still current'
assert_eq "sts-cache.test: same id, no second fetch" 1 "$(tb_sts_fetches sts-cache.test)"
tb_check cache sts-cache.test
assert_contains "check sts-cache.test: the policy from the cache (another process)" "$CHECK_OUT" \
    "policy id cache1, mode enforce, max_age 86400, from the cache"
assert_eq "check sts-cache.test: no fetch either" 1 "$(tb_sts_fetches sts-cache.test)"
if [ -s "$TB/state/mta-sts.db" ]; then pass "the cache is $TB/state/mta-sts.db"
else fail "no cache file $TB/state/mta-sts.db"; fi
deliver rotate1 sts-rotate.test sts-rotate
assert_eq "sts-rotate.test: one policy fetch" 1 "$(tb_sts_fetches sts-rotate.test)"
MARK=$(tb_log_mark)
swaks_send short1 --to a@sts-short.test
T_SHORT=$(date +%s)
assert_reply "sts-short.test: the policy (max_age 2, mx other.sts-short.test) applies: 451 4.7.5" "$SW_RCPT" "451 4.7.5"
assert_log "sts-short.test: policy fetched" "$MARK" 'sts-short\.test: policy mode=enforce .*max_age 2\)'
assert_no_mail "sts-short.test: nothing reached mx.sts-short.test" sts-short

# ---- 2. restart: TXT removed + MX replaced (sts-cache), new id (sts-rotate), policy host down
tb_stop mxguard
tb_dns_swap sts-cache.test b sts-rotate.test b
tb_stop nginx
tb_start_mxguard -n mxguard2
LOG=mxguard2
refuse cache3 sts-cache.test sts-cache2
assert_log "sts-cache.test: log: the cached policy used without a TXT record" "$MARK" \
    'sts-cache\.test: policy mode=enforce .*cached policy used: no MTA-STS record' $LOG
assert_no_log "sts-cache.test: no fetch attempted" "$MARK" 'sts: sts-cache\.test: fetching' $LOG
refuse rotate2 sts-rotate.test sts-rotate2
assert_log "sts-rotate.test: log: new id rotate2, fetch failed, cached policy kept" "$MARK" \
    'sts-rotate\.test: policy mode=enforce .*cached policy kept: refresh failed' $LOG
tb_check rotate sts-rotate.test
assert_contains "check sts-rotate.test: still policy id rotate1" "$CHECK_OUT" "policy id rotate1, mode enforce"
assert_contains "check sts-rotate.test: says the refresh failed" "$CHECK_OUT" "refresh failed"
tb_check cache-gone sts-cache.test
assert_contains "check sts-cache.test: still policy id cache1 without a TXT record" "$CHECK_OUT" "policy id cache1, mode enforce"
assert_match "check sts-cache.test: MX mx2.sts-cache.test does not match" "$(tr '\n' ' ' <"$TB/cache-gone.check")" \
    'mx2\.sts-cache\.test .*does NOT match'
# sts-short.test: max_age 2 is over; the refetch fails -> no policy -> opportunistic
while [ $(($(date +%s) - T_SHORT)) -lt 3 ]; do sleep 0.2; done
MARK=$(tb_log_mark $LOG)
swaks_send short2 --to a@sts-short.test
assert_reply "sts-short.test: policy expired + fetch failed: delivered" "$SW_DOT" "250"
assert_file_count "$TB/spool/sts-short" 1 "sts-short.test: delivered to mx.sts-short.test (not in the expired policy)"
assert_log "sts-short.test: log: failed (no policy)" "$MARK" 'sts: sts-short\.test: failed ' $LOG
assert_log "sts-short.test: log: opportunistic TLS" "$MARK" \
    'domain=sts-short\.test mx=mx\.sts-short\.test\[.* peer=unauthenticated \(opportunistic\)' $LOG

# ---- 3. the policy host is back with the policy for id rotate2
tb_sts_policy sts-rotate.test b
tb_start_nginx
deliver rotate3 sts-rotate.test sts-rotate2
assert_log "sts-rotate.test: log: policy id rotate2 fetched" "$MARK" 'policy id rotate2 fetched' $LOG
assert_eq "sts-rotate.test: two fetches in all (rotate1, rotate2)" 2 "$(tb_sts_fetches sts-rotate.test)"
deliver rotate4 sts-rotate.test sts-rotate2
assert_eq "sts-rotate.test: same id again, no third fetch" 2 "$(tb_sts_fetches sts-rotate.test)"
assert_no_mail "sts-cache.test: nothing ever reached mx2.sts-cache.test" sts-cache2

# ---- 4. the cache cannot be read (here: its table is gone) and the TXT record is stripped:
# a cached enforce policy may apply that mxguard cannot see -> defer, never "no policy"
"$PYTHON" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute("DROP TABLE sts_policy"); c.commit()' \
    "$TB/state/mta-sts.db" || tb_die "cannot drop the cache table"
MARK=$(tb_log_mark $LOG)
swaks_send unreadable --to a@sts-cache.test
assert_reply "sts-cache.test, cache unreadable: RCPT deferred" "$SW_RCPT" "451 4.7.5"
assert_contains "sts-cache.test, cache unreadable: the reply says why" "$SW_RCPT" "MTA-STS policy of sts-cache.test unknown"
assert_eq "sts-cache.test, cache unreadable: nothing relayed" "" "$SW_DOT"
assert_no_connect "sts-cache.test, cache unreadable: mx2.sts-cache.test never connected to" sts-cache2
assert_log "sts-cache.test, cache unreadable: logged as an error" "$MARK" \
    'error sts: sts-cache\.test: the MTA-STS cache could not be read' $LOG

tb_finish
