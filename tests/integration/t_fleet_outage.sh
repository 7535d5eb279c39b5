#!/usr/bin/env bash
# t_fleet_outage.sh — the issue's fleet test 3 (state.backend = "postgresql"; docs/ARCHITECTURE.md
# §Shared state): three instances on one database each relay a steady stream of messages
# (fleet_stream.py: sts-enforce.test, a TLS success; sts-testing.test, an MTA-STS testing
# policy whose MX fails validation; rpt-fleet.test and rpt-fleet2.test, no STARTTLS — the
# three are delivered and counted as failures with their details). The database is stopped
# for OUTAGE_S seconds (default 30) mid-run and started again. During the outage every message
# is answered 250 and reaches its MX, no transaction takes longer than LAT_MAX_MS, and each
# instance shows the outage: its log, mxguard_state_up 0 on /metrics, `mxguard check`.
# Then instance C is killed with SIGKILL while it flushes its backlog to the database: the
# test holds one of C's outbox batches (an uncommitted insert of its id into mxguard_rpt_batch,
# so C's own insert of that id waits on the row lock; pg_stat_activity shows it waiting)
# after C committed the batches before it — which its outbox still holds —, kills C, lets go
# and starts C again on the same state.directory. Afterwards the fleet's counts (database,
# `report show`, `report export`, and after the day ends the reports that reach the HTTPS
# collector and the mailbox) are exactly what the instances relayed, per domain: success,
# failure and failure-detail counts — nothing durable lost, nothing counted twice.
# The database stays closed to mxguard's role (NOLOGIN) from just before the stop until the
# hold is in place, so C cannot drain its backlog before the test sees it.
# Addresses: A 127.0.70.1, B .3, C .4 (port 10025; metrics :9125); MX sts-enforce .40,
# sts-testing .46, rpt-mail .61 (no STARTTLS), rpt-inbox .62; collector .63:8443; PostgreSQL .70.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

OUTAGE_S=${OUTAGE_S:-30}        # how long the database is down (the issue: 30 s)
LAT_MAX_MS=${LAT_MAX_MS:-2000}  # bound on any one transaction during the outage
INTERVAL=${INTERVAL:-0.3}       # pause between two transactions of one instance's stream

tb_init
tb_start_dns
tb_start_nginx
tb_start_sts_mx sts-enforce sts-testing
tb_start_mx rpt-mail 127.0.70.61 --no-starttls
tb_start_mx rpt-inbox 127.0.70.62
tb_start_pg
COL=$TB/collector
mkdir -p "$COL"
tb_spawn collector "$PYTHON" "$TB_LIB_DIR/rpt_collector.py" --listen 127.0.70.63:8443 \
    --cert "$TB/dns/certs/collect.rpt-fleet.test.crt" --key "$TB/dns/certs/collect.rpt-fleet.test.key" \
    --dir "$COL"
for i in $(seq 100); do grep -q listening "$TB/collector.out" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$TB/collector.out" || { cat "$TB/collector.log"; tb_die "collector did not start"; }

DOMS="sts-enforce.test sts-testing.test rpt-fleet.test rpt-fleet2.test"
OK_DOM=sts-enforce.test # the one domain whose sessions succeed (the others fail)
RPT='tlsrpt: {
  flush_interval = "500ms";
  organization_name = "mxguard fleet";
  contact_info = "mailto:postmaster@rpt-sender.test";
  submitter = "rpt-sender.test";
  send_check_interval = "1s";
  send_max_random_delay = "500ms";
  retry_backoff = "1s";
  dkim_key_file = "'$TB/dns/dkim/rpt-sender.key'";
  dkim_selector = "tlsrpt2024";
};'
declare -A ADDR=([a]=127.0.70.1:10025 [b]=127.0.70.3:10025 [c]=127.0.70.4:10025)
# member NAME — the fleet member's config $TB/NAME.conf: state in $TB/state-NAME, instance
# fleet-NAME, its PostgreSQL sessions named fleet-NAME (application_name, pg_stat_activity)
member() {
    local ip=${ADDR[$1]%:*}
    tb_write_config -o "$TB/$1.conf" -l "${ADDR[$1]}" "$(tb_sts_config)" "$RPT" \
        "metrics: { listen = \"$ip:9125\"; allow_networks = [\"127.0.70.0/25\"]; };"
    tb_pg_config "$TB/$1.conf" "$TB/state-$1" "fleet-$1"
    sed -i -e "s|^\(  postgresql = \"[^\"]*\)\";|\1 application_name=fleet-$1\";|" \
        -e 's/^  level = "debug";/  level = "info";/' "$TB/$1.conf"
    grep -q "application_name=fleet-$1\"" "$TB/$1.conf" || tb_die "member $1: no application_name"
}
for m in a b c; do member "$m"; done
start() { tb_start_mxguard -c "$TB/${1:0:1}.conf" -n "mxg-$1" -a "${ADDR[${1:0:1}]}"; }
for m in a b c; do start "$m"; done

# stream NAME — NAME's stream of messages (to instance ${NAME:0:1}), log $TB/stream.NAME.log
stream() {
    tb_spawn "stream-$1" "$PYTHON" "$TB_LIB_DIR/fleet_stream.py" --dir "$TB" --interval "$INTERVAL" \
        "$1=${ADDR[${1:0:1}]}=${DOMS// /,}"
}
# stream_stop NAME — ask NAME's stream to stop and wait (10 s at most) until it did
stream_stop() {
    touch "$TB/stop.$1"
    for i in $(seq 100); do tb_alive "stream-$1" || return 0; sleep 0.1; done
    tb_die "stream $1 did not stop"
}
# relayed INSTANCE DOMAIN — messages the streams to INSTANCE (a, b, c: also c2) got 250 for
relayed() { cat "$TB"/stream."$1"*.log 2>/dev/null | awk -v d="$2" '$2 == d && $4 == "250"' | wc -l; }
# want WHAT DOMAIN — the fleet's expected count of DOMAIN: success or failure sessions
want() {
    local n=0 m
    for m in a b c; do n=$((n + $(relayed "$m" "$2"))); done
    if [ "$1" = success ] && [ "$2" = "$OK_DOM" ] || { [ "$1" = failure ] && [ "$2" != "$OK_DOM" ]; }; then
        echo "$n"
    else
        echo 0
    fi
}
# local_sum NAME DOMAIN — success+failure sessions of DOMAIN in NAME's local tlsrpt.db
local_sum() {
    sqlite3 "$TB/state-$1/tlsrpt.db" "SELECT coalesce(sum(success + failure), 0) FROM policy WHERE domain = '$2'" 2>/dev/null || echo err
}
outbox() { sqlite3 "$TB/state-$1/tlsrpt.db" 'SELECT count(*) FROM outbox' 2>/dev/null || echo err; }
# pg_counts DOMAIN [DAY] — "success failure details" of DOMAIN in the database
pg_counts() {
    local day=${2:-$(date -u +%F)}
    tb_psql "SELECT (SELECT coalesce(sum(success), 0) FROM mxguard_rpt_policy WHERE domain = '$1' AND day = '$day'),
        (SELECT coalesce(sum(failure), 0) FROM mxguard_rpt_policy WHERE domain = '$1' AND day = '$day'),
        (SELECT coalesce(sum(f.sessions), 0) FROM mxguard_rpt_failure f JOIN mxguard_rpt_policy p
          ON p.key = f.policy_key WHERE p.domain = '$1' AND p.day = '$day')" | tr '|' ' '
}
want_counts() { echo "$(want success "$1") $(want failure "$1") $(want failure "$1")"; }
# wait_for SECONDS COMMAND... — until COMMAND succeeds (0) or the time is up (1)
wait_for() {
    local n=$(($1 * 10)); shift
    while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 0.1; n=$((n - 1)); done
    return 1
}
is() { [ "$(eval "$1")" = "$2" ]; }
scrape() { # scrape NAME IP — GET /metrics of the instance on IP into $TB/NAME.metrics
    "$PYTHON" - "$TB/$1.metrics" "$2" <<'PY'
import http.client, sys
c = http.client.HTTPConnection(sys.argv[2], 9125, timeout=5, source_address=("127.0.70.100", 0))
c.request("GET", "/metrics")
open(sys.argv[1], "wb").write(c.getresponse().read())
PY
}
metric() { awk -v s="$2" '$1 == s { v = $2 } END { print v == "" ? "absent" : v }' "$TB/$1.metrics"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# lat_stats FROM TO — "count max p50" of the transactions that started in [FROM, TO) (ms)
lat_stats() {
    cat "$TB"/stream.*.log | awk -v f="$1" -v t="$2" '$6 >= f && $6 < t { print $5 }' | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "0 0 0"; else print NR, v[NR], v[int((NR + 1) / 2)] }'
}

# ---- 1. the fleet relays; the database is up
for m in a b c; do stream "$m"; done
wait_for 20 is "pg_counts $OK_DOM | cut -d' ' -f1 | awk '\$1 >= 3 { print \"y\" }'" y ||
    tb_die "no counts of $OK_DOM reached the database"
sleep 2
T_PRE=$(now_ms)

# ---- 2. the database goes away for OUTAGE_S seconds
tb_psql "ALTER ROLE mxguard NOLOGIN" >/dev/null # see the header: opened again once the hold is in place
declare -A MARK
for m in a b c; do MARK[$m]=$(tb_log_mark "mxg-$m"); done
tb_stop_pg
T_DOWN=$(now_ms)
echo "# database stopped"
for m in a b c; do
    wait_for 10 eval "tb_log_since ${MARK[$m]} mxg-$m | grep -q 'state: postgresql: down'"
    assert_log "$m: the outage is logged (mail is not affected)" "${MARK[$m]}" \
        'warning state: postgresql: down: .*\(mail is not affected' "mxg-$m"
done
sleep 1
for m in a b c; do
    scrape "down-$m" "${ADDR[$m]%:*}"
    assert_eq "$m: mxguard_state_up 0 on /metrics during the outage" 0 "$(metric "down-$m" mxguard_state_up)"
done
tb_check check-down "$OK_DOM" -c "$TB/b.conf"
assert_contains "mxguard check (B) during the outage: the link is down" "$CHECK_OUT" \
    "shared state: backend postgresql, down"
NB=$(outbox c)
assert_match "C: the outage's batches wait in its durable outbox ($NB)" "$NB" '^[1-9][0-9]*$'
# C's stream ends shortly before the database returns: what C relayed is then all durable
# locally (flushed to tlsrpt.db and its outbox) — a SIGKILL loses only counters not yet flushed
sleep $(((T_DOWN + OUTAGE_S * 1000 - $(now_ms)) / 1000 - 2)) 2>/dev/null
stream_stop c
durable() { local d; for d in $DOMS; do [ "$(local_sum c "$d")" = "$(relayed c "$d")" ] || return 1; done; }
wait_for 5 durable
for d in $DOMS; do
    assert_eq "C: its $(relayed c "$d") relayed message(s) to $d are durable in tlsrpt.db" \
        "$(relayed c "$d")" "$(local_sum c "$d")"
done
while [ "$(now_ms)" -lt $((T_DOWN + OUTAGE_S * 1000)) ]; do sleep 0.1; done
tb_start_pg
T_UP=$(now_ms)
echo "# database started again after $((T_UP - T_DOWN)) ms"
assert_eq "the database was down ${OUTAGE_S} s or more" 1 "$(((T_UP - T_DOWN) >= OUTAGE_S * 1000))"

# ---- 3. during the outage: every message 250, delivered, without delay
read -r N_PRE MAX_PRE P50_PRE <<<"$(lat_stats 0 "$T_PRE")"
read -r N_OUT MAX_OUT P50_OUT <<<"$(lat_stats "$T_DOWN" "$T_UP")"
echo "# latency before the outage: $N_PRE transactions, p50 $P50_PRE ms, max $MAX_PRE ms"
echo "# latency during the outage: $N_OUT transactions, p50 $P50_OUT ms, max $MAX_OUT ms"
assert_match "transactions during the outage ($N_OUT)" "$N_OUT" '^[1-9][0-9]+$'
assert_eq "during the outage: every transaction took at most $LAT_MAX_MS ms" 1 "$((MAX_OUT <= LAT_MAX_MS))"
assert_eq "during the outage: the median is not more than twice the one before (+100 ms)" 1 \
    "$((P50_OUT <= 2 * P50_PRE + 100))"
assert_eq "during the outage: every transaction answered 250" "" \
    "$(cat "$TB"/stream.*.log | awk -v f="$T_DOWN" -v t="$T_UP" '$6 >= f && $6 < t && $4 != "250"' | head -3)"

# ---- 4. C is killed with SIGKILL while it flushes its backlog
# C pushes its outbox oldest first (created_at, id), up to 50 batches per sync: hold the
# batch in the middle (at most the 41st, so that it is in C's first sync)
mapfile -t IDS < <(sqlite3 "$TB/state-c/tlsrpt.db" 'SELECT id FROM outbox ORDER BY created_at, id')
K=$((${#IDS[@]} / 2 < 40 ? ${#IDS[@]} / 2 : 40))
if [ "${#IDS[@]}" -lt 4 ]; then # (a broken outbox: go on without the hold, to count the loss)
    fail "C's backlog: ${#IDS[@]} batches, at least 4 needed (C is killed without the hold)"
    tb_psql "ALTER ROLE mxguard LOGIN" >/dev/null
    tb_signal mxg-c KILL
else
    pass "C's backlog: ${#IDS[@]} batches (at least 4)"
    HOLD=${IDS[$K]}
    mkfifo "$TB/hold.fifo"
    exec 7<>"$TB/hold.fifo"
    setsid runuser -u postgres -- psql -X -q -A -t -h "$TB/pg" -p "$TB_PG_PORT" -d mxguard \
        <"$TB/hold.fifo" >"$TB/hold.out" 2>&1 &
    echo "$! holder" >>"$TB/pids"
    echo "BEGIN; INSERT INTO mxguard_rpt_batch (id, instance) VALUES ('$HOLD', 'test-hold'); SELECT 'held';" >&7
    wait_for 10 grep -q '^held' "$TB/hold.out" || tb_die "the hold of batch $HOLD failed: $(cat "$TB/hold.out")"
    tb_psql "ALTER ROLE mxguard LOGIN" >/dev/null
    waiting() {
        tb_psql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fleet-c'
            AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO mxguard_rpt_batch%'"
    }
    # (with server.workers > 1 every worker of C flushes the shared outbox: each one waits)
    waits() { [ "$(waiting)" -ge 1 ]; }
    wait_for 15 waits
    assert_eq "C's flush waits on the held batch (pg_stat_activity: its INSERT, wait_event_type Lock)" \
        yes "$([ "$(waiting)" -ge 1 ] && echo yes || echo "no: $(waiting)")"
    # in_db — how many of C's outbox batches the database has (committed, not yet forgotten by C)
    in_db() {
        local ids
        ids=$(sqlite3 "$TB/state-c/tlsrpt.db" "SELECT group_concat(quote(id)) FROM outbox")
        tb_psql "SELECT count(*) FROM mxguard_rpt_batch WHERE instance = 'fleet-c' AND id IN (${ids:-''})"
    }
    N_IN=$(in_db)
    assert_eq "... after committing the $K batches before it, which C's outbox still holds" "$K" "$N_IN"
    tb_signal mxg-c KILL
    for i in $(seq 30); do tb_alive mxg-c || break; sleep 0.1; done
    assert_eq "C killed (SIGKILL) inside its flush" 1 "$(tb_alive mxg-c && echo 0 || echo 1)"
    echo "ROLLBACK;" >&7
    exec 7>&-
    gone() { tb_psql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fleet-c'"; }
    wait_for 10 is gone 0
    assert_eq "C's session ended with it" 0 "$(gone)"
    assert_eq "the batch C was writing is not in the database (rolled back with its session)" 0 \
        "$(tb_psql "SELECT count(*) FROM mxguard_rpt_batch WHERE id = '$HOLD'")"
    assert_eq "C's outbox kept all ${#IDS[@]} batches (and any flushed since)" 1 "$(($(outbox c) >= ${#IDS[@]}))"
fi
start c2
stream c2
sleep 3

# ---- 5. afterwards: nothing lost, nothing twice
for s in a b c2; do stream_stop "$s"; done
settled() {
    local d m
    for m in a b c; do [ "$(outbox "$m")" = 0 ] || return 1; done
    for d in $DOMS; do [ "$(pg_counts "$d")" = "$(want_counts "$d")" ] || return 1; done
}
wait_for 20 settled
for m in a b c; do assert_eq "$m: outbox empty" 0 "$(outbox "$m")"; done
for m in a b; do
    assert_log "$m: the link is up again (logged)" "${MARK[$m]}" 'notice state: postgresql: up' "mxg-$m"
    scrape "up-$m" "${ADDR[$m]%:*}"
    assert_eq "$m: mxguard_state_up 1 again" 1 "$(metric "up-$m" mxguard_state_up)"
done
for d in $DOMS; do
    assert_eq "database: $d — success, failure, failure-detail sessions = what A, B, C relayed ($(relayed a "$d") + $(relayed b "$d") + $(relayed c "$d"))" \
        "$(want_counts "$d")" "$(pg_counts "$d")"
done
assert_eq "database: each of C's batches once (C's ids are unique)" 0 \
    "$(tb_psql "SELECT count(*) FROM (SELECT id FROM mxguard_rpt_batch GROUP BY id HAVING count(*) > 1) x")"
assert_eq "database: the failure details' result types" \
    "rpt-fleet.test starttls-not-supported
rpt-fleet2.test starttls-not-supported
sts-testing.test certificate-host-mismatch" \
    "$(tb_psql "SELECT DISTINCT p.domain, f.result_type FROM mxguard_rpt_failure f JOIN mxguard_rpt_policy p ON p.key = f.policy_key ORDER BY 1" | tr '|' ' ')"
# every 250 reached its MX, once (by Message-ID), and nothing else did
"$PYTHON" - "$TB" >"$TB/delivered.out" <<'PY'
import glob, re, sys
tb = sys.argv[1]
want = set()
for f in glob.glob(tb + "/stream.*.log"):
    for l in open(f):
        w = l.split()
        if len(w) == 6 and w[3] == "250":
            want.add("%s.%s" % (w[0], w[2]))
got = []
for f in glob.glob(tb + "/spool/*/*.eml"):
    m = re.search(rb"^Message-ID: <([^@>]+)@stream\.test>", open(f, "rb").read(), re.M)
    if m:
        got.append(m.group(1).decode())
print(len(want), len(got), len(set(got)), len(want - set(got)), len(set(got) - want))
PY
read -r N_WANT N_GOT N_UNIQ N_MISSING N_EXTRA <"$TB/delivered.out"
echo "# relayed (250): $N_WANT; at the MX servers: $N_GOT"
assert_eq "every 250 reached its MX once, nothing else did (missing, extra, duplicates)" "0 0 0" \
    "$N_MISSING $N_EXTRA $((N_GOT - N_UNIQ))"
assert_eq "no stream transaction answered other than 250" "" \
    "$(cat "$TB"/stream.*.log | awk '$4 != "250"' | head -3)"
DAY=$(date -u +%F)
for d in $DOMS; do
    OUT=$("$MXG_BIN" report show "$DAY" "$d" -c "$TB/a.conf" 2>/dev/null)
    assert_eq "report show (A) $d: success, failure, failure-detail sessions" "$(want_counts "$d")" \
        "$(printf '%s' "$OUT" | jq -r '[([.policies[].summary["total-successful-session-count"]] | add),
            ([.policies[].summary["total-failure-session-count"]] | add),
            ([.policies[]["failure-details"][]?["failed-session-count"]] | add // 0)] | map(tostring) | join(" ")')"
done

# ---- 6. the day ends: the reports carry the fleet's sums (t_fleet_report.sh's way: the
# instances stop, their counters and the database's move to yesterday, they start again)
for m in a b c2; do tb_stop "mxg-$m"; done
Y=$(date -u -d "$DAY -1 day" +%F)
for m in a b c; do
    assert_eq "$m: outbox empty after the stop" 0 "$(outbox "$m")"
    sqlite3 "$TB/state-$m/tlsrpt.db" "UPDATE policy SET day = '$Y' WHERE day = '$DAY'" || tb_die "sqlite3"
done
tb_psql "UPDATE mxguard_rpt_policy SET day = '$Y' WHERE day = '$DAY'" >/dev/null
for m in a3 b3 c3; do start "$m"; done
n_posts() { grep -c "^$1 " "$COL/posts.log" 2>/dev/null; }
wait_for 30 is "n_posts fleet; n_posts fleet2" "1
1"
wait_for 20 is "ls '$TB/spool/rpt-inbox' | grep -c '\.eml$'" 2
sleep 2 # a second report would show now
rfail() { jq '[.policies[].summary["total-failure-session-count"]] | add' "$1" 2>/dev/null; }
assert_eq "collector: one report each for rpt-fleet.test and rpt-fleet2.test" "1 1" "$(n_posts fleet) $(n_posts fleet2)"
assert_eq "HTTPS report rpt-fleet.test: the fleet's failures ($(want failure rpt-fleet.test))" \
    "$(want failure rpt-fleet.test)" "$(rfail "$COL/fleet.1.json")"
assert_eq "HTTPS report rpt-fleet2.test: the fleet's failures ($(want failure rpt-fleet2.test))" \
    "$(want failure rpt-fleet2.test)" "$(rfail "$COL/fleet2.1.json")"
assert_eq "HTTPS report rpt-fleet.test: its failure details add up" "$(want failure rpt-fleet.test)" \
    "$(jq '[.policies[]["failure-details"][]["failed-session-count"]] | add' "$COL/fleet.1.json")"
assert_file_count "$TB/spool/rpt-inbox" 2 "mailbox: one report mail per domain"
"$PYTHON" - "$TB/spool/rpt-inbox" >"$TB/mails.out" 2>&1 <<'PY'
import email, email.policy, glob, gzip, json, sys
for f in sorted(glob.glob(sys.argv[1] + "/*.eml")):
    m = email.message_from_bytes(open(f, "rb").read(), policy=email.policy.default)
    a = [p for p in m.iter_parts() if p.get_content_type() == "application/tlsrpt+gzip"][0]
    j = json.loads(gzip.decompress(a.get_payload(decode=True)))
    fails = sum(p["summary"]["total-failure-session-count"] for p in j["policies"])
    print(m["TLS-Report-Domain"], fails)
PY
for d in rpt-fleet.test rpt-fleet2.test; do
    assert_eq "mail report $d: the fleet's failures" "$d $(want failure "$d")" "$(grep "^$d " "$TB/mails.out")"
done
mkdir -p "$TB/export"
"$MXG_BIN" report export "$TB/export" --day "$Y" -c "$TB/b.conf" >"$TB/export.out" 2>&1
for d in $DOMS; do
    F=$(ls "$TB/export"/*"!$d!"*.json 2>/dev/null | head -1)
    assert_eq "report export (B) $d, yesterday: success and failure sessions" \
        "$(want success "$d") $(want failure "$d")" \
        "$(jq -r '[([.policies[].summary["total-successful-session-count"]] | add),
            ([.policies[].summary["total-failure-session-count"]] | add)] | map(tostring) | join(" ")' "$F" 2>/dev/null)"
done
tb_finish
