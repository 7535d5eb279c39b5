#!/usr/bin/env bash
# t_fleet_report.sh — TLSRPT report sending in a fleet (state.backend = "postgresql";
# docs/ARCHITECTURE.md §Shared state): three instances on one database relay mail to the same
# domains (rpt-fleet.test: 3 + 2 + 1 messages, rpt-fleet2.test: 1 + 0 + 1, rpt-hold.test:
# 1 + 1 + 1; their MX offers no STARTTLS, so every session is a starttls-not-supported
# failure). The day then ends (the instances stop, their counters and the database's move to
# yesterday, they start again, scheduler every 1 s): exactly one report per domain reaches the
# HTTPS collector (rpt_collector.py) and one mail the mailbox (mx.rpt-inbox.test), with the
# fleet's summed counts and one report-id per domain, the database's. Takeover: the
# collector holds the first POST of rpt-hold.test's report; the instance holding its claim is
# killed with SIGKILL inside that attempt; after its lease (state.report_lease = 5s) another
# instance sends the report, with the same report-id. Nothing is sent twice. While the
# database is down (when the reports first come due) nothing is sent at all.
# Addresses: A 127.0.70.1, B .3, C .4 (port 10025); collector .63:8443; PostgreSQL .70.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
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

KEY="$TB/dns/dkim/rpt-sender.key"
RPT='tlsrpt: {
  flush_interval = "500ms";
  organization_name = "mxguard fleet";
  contact_info = "mailto:postmaster@rpt-sender.test";
  submitter = "rpt-sender.test";
  send_check_interval = "1s";
  send_max_random_delay = "500ms";
  retry_backoff = "1s";
  max_attempts = 8;
  dkim_key_file = "'$KEY'";
  dkim_selector = "tlsrpt2024";
};
mta_sts: {
  fetch_timeout = "3s";
};'
# member NAME LISTEN — the fleet member's config $TB/NAME.conf (state in $TB/state-NAME)
member() {
    tb_write_config -o "$TB/$1.conf" -l "$2" "$RPT"
    tb_pg_config "$TB/$1.conf" "$TB/state-$1" "fleet-$1"
    sed -i 's/^  sync_interval = "300ms";$/&\n  report_lease = "5s";/' "$TB/$1.conf"
}
member a 127.0.70.1:10025
member b 127.0.70.3:10025
member c 127.0.70.4:10025
grep -q 'report_lease = "5s"' "$TB/a.conf" || tb_die "report_lease not in the config"
declare -A ADDR=([a]=127.0.70.1:10025 [b]=127.0.70.3:10025 [c]=127.0.70.4:10025)
start_all() { # start_all SUFFIX — the three instances, named mxg-X$SUFFIX
    local m
    for m in a b c; do tb_start_mxguard -c "$TB/$m.conf" -n "mxg-$m$1" -a "${ADDR[$m]}"; done
}
start_all ""

# send MEMBER TAG N DOMAIN — N messages to DOMAIN through MEMBER
send() {
    local i
    for i in $(seq "$3"); do SW_SERVER=${ADDR[$1]} swaks_send "$1$2$i" --to "a@$4"; done
}
pg_fail() { tb_psql "SELECT coalesce(sum(failure), 0) FROM mxguard_rpt_policy WHERE domain = '$1'"; }
# wait_for SECONDS COMMAND... — until COMMAND succeeds (0) or the time is up (1)
wait_for() {
    local n=$(($1 * 10)); shift
    while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 0.1; n=$((n - 1)); done
    return 1
}
is() { [ "$(eval "$1")" = "$2" ]; }

# ---- 1. today: the three instances relay; the database holds the sums
send a f 3 rpt-fleet.test
assert_reply "A: delivered" "$SW_DOT" "250"
send b f 2 rpt-fleet.test
send c f 1 rpt-fleet.test
send a g 1 rpt-fleet2.test
send c g 1 rpt-fleet2.test
for m in a b c; do send "$m" h 1 rpt-hold.test; done
assert_reply "C: delivered" "$SW_DOT" "250"
wait_for 15 is "pg_fail rpt-fleet.test" 6
assert_eq "fleet: 6 sessions of rpt-fleet.test" 6 "$(pg_fail rpt-fleet.test)"
wait_for 10 is "pg_fail rpt-fleet2.test" 2
wait_for 10 is "pg_fail rpt-hold.test" 3
assert_eq "fleet: 2 of rpt-fleet2.test, 3 of rpt-hold.test" "2 3" \
    "$(pg_fail rpt-fleet2.test) $(pg_fail rpt-hold.test)"
assert_eq "nothing sent today (the day is not over)" "" "$(cat "$COL/posts.log" "$COL/held.log" 2>/dev/null)"

# ---- 2. the day ends: counters move to yesterday, the instances start again
for m in a b c; do tb_stop "mxg-$m"; done
DAY=$(date -u +%F)
Y=$(date -u -d "$DAY -1 day" +%F)
for m in a b c; do
    assert_eq "$m: outbox empty" 0 "$(sqlite3 "$TB/state-$m/tlsrpt.db" 'SELECT count(*) FROM outbox')"
    sqlite3 "$TB/state-$m/tlsrpt.db" "UPDATE policy SET day = '$Y' WHERE day = '$DAY'" || tb_die "sqlite3"
done
tb_psql "UPDATE mxguard_rpt_policy SET day = '$Y' WHERE day = '$DAY'" >/dev/null

# ---- 2b. the database is down when the day's reports are due: nothing is sent
tb_stop_pg
start_all 2
wait_for 15 grep -q "report $Y rpt-fleet\.test: shared state unreachable" "$TB/mxg-a2.log"
sleep 1
assert_log "A: rpt-fleet.test's report waits for the database" 0 \
    "report $Y rpt-fleet\.test: shared state unreachable \(.*\): not sent, looked at again in 5s" mxg-a2
assert_eq "database down: no POST" "" "$(cat "$COL/posts.log" "$COL/held.log" 2>/dev/null)"
assert_file_count "$TB/spool/rpt-inbox" 0 "database down: no report mail"
tb_start_pg
T0=$(date +%s%N)

# ---- 3. takeover: the claimant of rpt-hold.test's report dies inside its attempt
wait_for 20 test -s "$COL/held.log" || tb_die "no POST of rpt-hold.test's report reached the collector"
K=$(tb_psql "SELECT instance FROM mxguard_rpt_claim WHERE domain = 'rpt-hold.test' AND status = 'claimed'")
assert_match "rpt-hold.test is claimed by one instance ($K)" "$K" '^fleet-[abc]$'
tb_signal "mxg-${K#fleet-}2" KILL
RID_HELD=$(awk '{ print $2 }' "$COL/held.log")
echo "# killed mxg-${K#fleet-}2 inside its POST of report $RID_HELD"
sleep 0.2
touch "$COL/hold.release" # the next POST of /hold is answered
assert_eq "the claimant is gone" 1 "$(tb_alive "mxg-${K#fleet-}2" && echo 0 || echo 1)"

n_posts() { grep -c "^$1 " "$COL/posts.log" 2>/dev/null; }
wait_for 30 is "n_posts hold" 1
T1=$(date +%s%N)
echo "# rpt-hold.test taken over $(((T1 - T0) / 1000000)) ms after the database came back"
wait_for 20 is "n_posts fleet; n_posts fleet2" "1
1"
wait_for 20 is "ls '$TB/spool/rpt-inbox' | grep -c '\.eml$'" 2
# every claimed rua marked sent; other instances' leases run out and they look again (lease
# + 1 s): a duplicate would appear now
wait_for 20 is "tb_psql \"SELECT count(*) FROM mxguard_rpt_claim WHERE status = 'sent'\"" 5
sleep 7

# ---- 4. exactly one report per domain and rua, with the fleet's sums and one report-id
assert_eq "collector: one report per domain (fleet, fleet2, hold)" "1 1 1" \
    "$(n_posts fleet) $(n_posts fleet2) $(n_posts hold)"
assert_eq "collector: nothing else (but the killed sender's held POST, recorded as released)" 3 \
    "$(grep -vc '^released ' "$COL/posts.log")"
assert_file_count "$TB/spool/rpt-inbox" 2 "mailbox: one report mail per domain"
# rfail FILE — failed sessions in a report JSON; rid FILE — its report-id
rfail() { jq '[.policies[].summary["total-failure-session-count"]] | add' "$1" 2>/dev/null; }
rid() { jq -r '.["report-id"]' "$1" 2>/dev/null; }
dbrid() { tb_psql "SELECT report_id FROM mxguard_rpt_report WHERE domain = '$1'"; }
assert_eq "HTTPS rpt-fleet.test: the fleet's 6 sessions" 6 "$(rfail "$COL/fleet.1.json")"
assert_eq "HTTPS rpt-fleet2.test: the fleet's 2 (B saw none)" 2 "$(rfail "$COL/fleet2.1.json")"
assert_eq "HTTPS rpt-hold.test: the fleet's 3" 3 "$(rfail "$COL/hold.1.json")"
assert_eq "HTTPS rpt-fleet.test: yesterday's report" "${Y}T00:00:00Z" \
    "$(jq -r '.["date-range"]["start-datetime"]' "$COL/fleet.1.json")"
assert_eq "HTTPS rpt-fleet.test: the database's report-id" "$(dbrid rpt-fleet.test)" "$(rid "$COL/fleet.1.json")"
assert_eq "takeover: the same report-id as the killed claimant's" "$RID_HELD" "$(rid "$COL/hold.1.json")"
assert_eq "takeover: ... the database's" "$(dbrid rpt-hold.test)" "$RID_HELD"
assert_eq "takeover: claimed twice, sent by another instance" "2 t" \
    "$(tb_psql "SELECT claims, instance <> '$K' FROM mxguard_rpt_claim WHERE domain = 'rpt-hold.test'" | tr '|' ' ')"
# the mails: one per domain, to its rua, the same report (report-id) as the POST
"$PYTHON" - "$TB/spool/rpt-inbox" >"$TB/mails.out" 2>&1 <<'PY'
import email, email.policy, glob, gzip, json, sys
for f in sorted(glob.glob(sys.argv[1] + "/*.eml")):
    m = email.message_from_bytes(open(f, "rb").read(), policy=email.policy.default)
    a = [p for p in m.iter_parts() if p.get_content_type() == "application/tlsrpt+gzip"][0]
    j = json.loads(gzip.decompress(a.get_payload(decode=True)))
    fails = sum(p["summary"]["total-failure-session-count"] for p in j["policies"])
    print(m["TLS-Report-Domain"], m["To"], fails, j["report-id"])
PY
echo "# mails: $(tr '\n' ';' <"$TB/mails.out")"
assert_eq "mail rpt-fleet.test: to fleet@, 6 sessions, the POST's report-id" \
    "rpt-fleet.test fleet@rpt-inbox.test 6 $(rid "$COL/fleet.1.json")" \
    "$(grep '^rpt-fleet.test ' "$TB/mails.out")"
assert_eq "mail rpt-fleet2.test: to fleet2@, 2 sessions, the POST's report-id" \
    "rpt-fleet2.test fleet2@rpt-inbox.test 2 $(rid "$COL/fleet2.1.json")" \
    "$(grep '^rpt-fleet2.test ' "$TB/mails.out")"
# the surviving instances' rows of rpt-fleet.test's https rua: closed as sent, by the
# claimant itself or "sent by the fleet" (at least one survivor did not send it)
rows() { # rows WHERE — count of such rows over the two survivors
    local m
    for m in a b c; do
        [ "fleet-$m" = "$K" ] && continue
        sqlite3 "$TB/state-$m/tlsrpt.db" "SELECT count(*) FROM delivery WHERE domain = 'rpt-fleet.test' AND rua LIKE 'https:%' AND $1"
    done | awk '{ s += $1 } END { print s }'
}
assert_eq "survivors: rpt-fleet.test's https row sent" 2 "$(rows "status = 'sent'")"
assert_match "survivors: ... one or two of them by the fleet" "$(rows "last_error = 'sent by the fleet'")" '^[12]$'
tb_finish
