#!/usr/bin/env bash
# t_limits_upstream.sh — upstream connection limits (proxy/outbound/conncache.h) against a real
# MX that counts the connections it has open at once (mxserver.py SPOOL/max_concurrency):
# 50 clients at once to one MX with limits.destination_concurrency = 5 → never more than 5
# connections at the MX, every message delivered (the waiting legs take the cached
# connections); the same load without the limit opens more (the check can fail);
# limits.connection_wait = 0 with the only slot busy → 451 4.7.0 at RCPT, nothing delivered for
# it; a short wait that runs out → 451 4.7.0 after about that long; limits.destination_rate = 2
# spreads 6 new connections over ≥ 2 s; limits.upstream_connections = 2 holds at each MX.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# server.workers = 1: it counts exact upstream connections under a limit of one process; with
# several workers each keeps floor(limit / workers) (5 over 2 workers: 4), and a limit of 1
# with an explicit worker count is refused (t_workers.sh §6 covers a limit across workers)
TB_WORKERS=1
tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12
tb_write_config

maxconc() { cat "$TB/spool/$1/max_concurrency" 2>/dev/null || echo 0; }
reset_mx() { # reset_mx NAME — forget the counts (restart the MX with an empty spool)
    tb_stop "$1"
    rm -rf "$TB/spool/$1"
    tb_start_mx "$1" "$2"
}

# parallel N PREFIX DOMAIN [SLOW] — N swaks clients at once (one message each), wait for all;
# the first SLOW of them (default 0) send to slowdata* (the MX answers their dot after 5 s),
# so that they hold their connections while the others arrive, however fast the machine is;
# sets PAR_OK (number of 250 after the dot), PAR_CODES (the distinct RCPT reply lines, counted)
parallel() {
    local n=$1 prefix=$2 domain=$3 slow=${4:-0} i rcpt pids=()
    for i in $(seq "$n"); do
        rcpt=$prefix$i
        [ "$i" -le "$slow" ] && rcpt=slowdata-$prefix$i
        swaks --server "$TB_MXG_IP:$TB_MXG_PORT" --local-interface "$TB_CLIENT_IP" \
            --from sender@client.test --ehlo client.test --timeout 60 \
            --to "$rcpt@$domain" --header "Subject: $prefix $i" --body "message $i" \
            >"$TB/$prefix$i.swaks" 2>&1 </dev/null &
        pids+=($!)
    done
    wait "${pids[@]}" # not a bare wait: the test-bed's servers are background jobs too
    PAR_OK=0
    for i in $(seq "$n"); do
        tb_parse_swaks "$TB/$prefix$i.swaks" >"$TB/$prefix$i.replies"
        awk -F'\t' '$1 == "DOT" && $2 == "250" { f = 1 } END { exit !f }' "$TB/$prefix$i.replies" &&
            PAR_OK=$((PAR_OK + 1))
    done
    PAR_CODES=$(cat "$TB"/"$prefix"*.replies | awk -F'\t' '$1 == "RCPT" { print substr($3, 1, 9) }' |
        sort | uniq -c | tr -s ' ' | tr '\n' ';')
    echo "# $prefix: $PAR_OK of $n delivered; RCPT replies: $PAR_CODES"
}

# 1. control: no limits, caching off → the herd shows at the MX
export MXGUARD_LIMITS_DESTINATION_CONCURRENCY=0
export MXGUARD_UPSTREAM_CACHE_IDLE=0
tb_start_mxguard
parallel 50 slowdata example.test # each waits 5 s for its final reply: they overlap
assert_eq "no limit: all 50 delivered" 50 "$PAR_OK"
nl=$(maxconc mx1)
assert_match "no limit: more than 5 connections at once at mx1 (got $nl)" "$nl" '^([6-9]|[1-9][0-9]+)$'
tb_stop mxguard

# 2. destination_concurrency = 5 (caching on): at most 5 at once, all delivered
reset_mx mx1 127.0.70.11
export MXGUARD_LIMITS_DESTINATION_CONCURRENCY=5
export MXGUARD_UPSTREAM_CACHE_IDLE=10s
tb_start_mxguard -n mxguard2
# 10 slow ones fill the 5 slots twice over (about 10 s); the 40 others must wait for a slot
# and then reuse the cached connections
parallel 50 limited example.test 10
assert_eq "limit 5: all 50 delivered" 50 "$PAR_OK"
assert_eq "limit 5: all 50 in mx1's spool" 50 "$(spool_count "$TB/spool/mx1")"
lc=$(maxconc mx1)
assert_match "limit 5: at most 5 connections at once at mx1 (got $lc)" "$lc" '^[1-5]$'
assert_eq "limit 5: the MX saw exactly 5 connections for 50 messages (reuse)" 5 \
    "$(wc -l <"$TB/spool/mx1/connections.log")"
# they wait for a slot, or (upstream.cache_busy_wait) for a busy connection of their requirement
assert_eq "legs waited for a slot or a busy connection" yes \
    "$(grep -qE 'waiting for a (connection slot|busy connection)' "$TB/mxguard2.log" && echo yes || echo no)"
tb_stop mxguard2

# 3. concurrency 1, no waiting, the only connection busy (slowdata: 5 s before the final
#    reply) → the second client gets 451 4.7.0 at RCPT
reset_mx mx1 127.0.70.11
export MXGUARD_LIMITS_DESTINATION_CONCURRENCY=1
export MXGUARD_LIMITS_CONNECTION_WAIT=0
export MXGUARD_UPSTREAM_CACHE_IDLE=0
tb_start_mxguard -n mxguard3
swaks --server "$TB_MXG_IP:$TB_MXG_PORT" --local-interface "$TB_CLIENT_IP" --from s@client.test \
    --ehlo client.test --timeout 60 --to slowdata1@example.test >"$TB/busy.swaks" 2>&1 </dev/null &
busy=$!
sleep 1
swaks_send refused --to a@example.test
assert_match "no slot, no wait: 451 4.7.0 at RCPT" "$SW_RCPT" '^451 4\.7\.0 '
assert_contains "the reply names the limit" "$SW_RCPT" "concurrency limit 1"
wait "$busy"
tb_parse_swaks "$TB/busy.swaks" >"$TB/busy.replies"
assert_reply "the busy one was delivered" "$(sw_reply busy DOT)" "250"
assert_eq "only the busy one reached mx1" 1 "$(spool_count "$TB/spool/mx1")"
tb_stop mxguard3

# 4. a wait of 1 s that runs out → 451 4.7.0 after about 1 s
export MXGUARD_LIMITS_CONNECTION_WAIT=1s
tb_start_mxguard -n mxguard4
swaks --server "$TB_MXG_IP:$TB_MXG_PORT" --local-interface "$TB_CLIENT_IP" --from s@client.test \
    --ehlo client.test --timeout 60 --to slowdata2@example.test >"$TB/busy2.swaks" 2>&1 </dev/null &
busy=$!
sleep 1
t0=$(date +%s.%N)
swaks_send waited --to b@example.test
t1=$(date +%s.%N)
assert_match "wait over: 451 4.7.0 at RCPT" "$SW_RCPT" '^451 4\.7\.0 '
assert_eq "it waited about 1 s (0.8 .. 3)" 1 "$(echo "$t1 - $t0" | bc | awk '{ print ($1 >= 0.8 && $1 < 3) }')"
wait "$busy"
tb_stop mxguard4
unset MXGUARD_LIMITS_CONNECTION_WAIT

# 5. destination_rate = 2 (new connections per second, caching off): 6 at once take >= 2 s
export MXGUARD_LIMITS_DESTINATION_CONCURRENCY=0
export MXGUARD_LIMITS_DESTINATION_RATE=2
tb_start_mxguard -n mxguard5
t0=$(date +%s.%N)
parallel 6 rate example.test
t1=$(date +%s.%N)
assert_eq "rate 2/s: all 6 delivered" 6 "$PAR_OK"
assert_eq "rate 2/s: 6 new connections took at least 1.9 s" 1 \
    "$(echo "$t1 - $t0" | bc | awk '{ print ($1 >= 1.9) }')"
tb_stop mxguard5
unset MXGUARD_LIMITS_DESTINATION_RATE

# 6. the global cap: upstream_connections = 2 over two MX hosts
reset_mx mx1 127.0.70.11
reset_mx mx2 127.0.70.12
export MXGUARD_LIMITS_UPSTREAM_CONNECTIONS=2
export MXGUARD_UPSTREAM_CACHE_IDLE=10s
tb_start_mxguard -n mxguard6
parallel 20 globa example.test &
pa=$!
parallel 20 globb other.test &
pb=$!
wait "$pa" "$pb"
assert_eq "global cap: all 20 for example.test delivered" 20 "$(spool_count "$TB/spool/mx1")"
assert_eq "global cap: all 20 for other.test delivered" 20 "$(spool_count "$TB/spool/mx2")"
assert_match "global cap 2: at most 2 at once at mx1" "$(maxconc mx1)" '^[12]$'
assert_match "global cap 2: at most 2 at once at mx2" "$(maxconc mx2)" '^[12]$'
tb_stop mxguard6

tb_finish
