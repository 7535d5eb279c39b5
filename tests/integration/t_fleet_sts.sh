#!/usr/bin/env bash
# t_fleet_sts.sh — a fleet of mxguards sharing the MTA-STS policy cache on PostgreSQL
# (state.backend = "postgresql"; docs/ARCHITECTURE.md §Shared state), on the test-bed's own
# cluster (tb_start_pg: TLS with verify-full, scram, a password file). The issue's test 1:
# instance A fetches an enforce policy for sts-cache.test; then the TXT record goes, the MX is
# replaced by one the policy does not list (mx2.sts-cache.test) and the policy host stops;
# instance B, which never saw the domain, defers (451 4.7.5) and mx2 gets nothing. Control:
# instance C on the sqlite backend (not in the fleet) delivers the same message to mx2, which
# is what B would do without the shared cache. Also: `state migrate` creates the schema under
# the advisory lock and says so once; `state status`; the password never shows in
# `config check -v` or the logs; a conninfo carrying a password is refused. A new member waits
# for its first complete pull before serving (B's first transaction is already deferred), and
# one started while the database is down (D) serves after state.first_pull_timeout, warning.
# Addresses: A 127.0.70.1, B 127.0.70.3, C 127.0.70.4, D 127.0.70.5 (port 10025); PostgreSQL 127.0.70.70.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_nginx
tb_start_sts_mx sts-cache sts-cache2 sts-enforce
tb_start_pg
STS=$(tb_sts_config 'refresh_min_interval = "0s";')
tb_write_config -o "$TB/a.conf" "$STS" \
    'metrics: { listen = "127.0.70.1:9125"; allow_networks = ["127.0.70.0/25"]; };'
tb_pg_config "$TB/a.conf" "$TB/state-a" fleet-a
tb_write_config -o "$TB/b.conf" -l 127.0.70.3:10025 "$STS"
tb_pg_config "$TB/b.conf" "$TB/state-b" fleet-b
tb_write_config -o "$TB/c.conf" -l 127.0.70.4:10025 "$STS"
sed -i "s|directory = \"$TB/state\";|directory = \"$TB/state-c\";|" "$TB/c.conf"
mkdir -p "$TB/state-c"
PW=$(cat "$TB/pg/password")

# ---- 0. configuration: the password stays out of the printout; none in the string
OUT=$("$MXG_BIN" config check -v -c "$TB/a.conf" 2>&1)
assert_contains "config check -v: the backend" "$OUT" 'backend = "postgresql"'
assert_contains "config check -v: the password file" "$OUT" "postgresql_password_file = \"$TB/pg/password\""
assert_not_contains "config check -v: never the password" "$OUT" "$PW"
cp "$TB/a.conf" "$TB/bad.conf"
sed -i "s|sslmode=verify-full|password=$PW sslmode=verify-full|" "$TB/bad.conf"
OUT=$("$MXG_BIN" config check -c "$TB/bad.conf" 2>&1); RC=$?
assert_eq "a password in state.postgresql: refused" 1 "$RC"
assert_contains "... says where it belongs" "$OUT" "state.postgresql_password_file"

# ---- 1. schema: `state migrate` creates it (advisory lock), a second run has nothing to do
OUT=$("$MXG_BIN" state status -c "$TB/a.conf" 2>&1); RC=$?
assert_eq "state status before the schema: exit 1" 1 "$RC"
assert_contains "state status before the schema: says migrate" "$OUT" "run \`mxguard state migrate\`"
OUT=$("$MXG_BIN" state migrate -c "$TB/a.conf" 2>&1); RC=$?
assert_eq "state migrate: exit 0" 0 "$RC"
assert_contains "state migrate: created" "$OUT" "schema version 5: migrated from 0"
OUT=$("$MXG_BIN" state migrate -c "$TB/b.conf" 2>&1)
assert_contains "state migrate again: current" "$OUT" "schema version 5: current, nothing to do"
assert_eq "mxguard_schema holds version 5" 5 "$(tb_psql 'SELECT version FROM mxguard_schema')"
OUT=$("$MXG_BIN" state status -c "$TB/b.conf" 2>&1); RC=$?
assert_eq "state status: exit 0" 0 "$RC"
assert_contains "state status: up, schema 5" "$OUT" "state: backend postgresql, up, schema version 5"

# ---- 2. A fetches the enforce policy and publishes it
tb_start_mxguard -c "$TB/a.conf" -n mxg-a
n=0; while ! grep -q 'state: postgresql: up' "$TB/mxg-a.log" && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
assert_log "A: the link is up" 0 'notice state: postgresql: up \(schema version 5\)' mxg-a
swaks_send a1 --to a@sts-cache.test
assert_reply "A: delivered under the policy" "$SW_DOT" "250"
assert_file_count "$TB/spool/sts-cache" 1 "A: mx.sts-cache.test got it"
assert_eq "A: one policy fetch" 1 "$(tb_sts_fetches sts-cache.test)"
ROW=""
for n in $(seq 50); do
    ROW=$(tb_psql "SELECT domain, id, instance, expires_at - fetched_at FROM mxguard_sts_policy")
    [ -n "$ROW" ] && break
    sleep 0.1
done
assert_eq "the database holds A's policy (domain, id, instance, max_age)" \
    "sts-cache.test|cache1|fleet-a|86400" "$ROW"

# ---- 2b. a refresh that finds the same id extends the fleet's row too; a stale or broken
# database row never replaces A's local copy (it is logged and refused or left out)
F0=$(tb_psql "SELECT fetched_at FROM mxguard_sts_policy WHERE domain = 'sts-cache.test'")
sleep 1.1
swaks_send a1b --to a@sts-cache.test
assert_reply "A: delivered again (same id, refreshed)" "$SW_DOT" "250"
F1=$F0
for n in $(seq 50); do
    F1=$(tb_psql "SELECT fetched_at FROM mxguard_sts_policy WHERE domain = 'sts-cache.test'")
    [ "$F1" -gt "$F0" ] && break
    sleep 0.1
done
assert_match "the refresh moved the database row's fetched_at forward ($F0 -> $F1)" \
    "$((F1 - F0))" '^[1-9][0-9]*$'
assert_eq "A: still one policy fetch (the refresh found the same id)" 1 "$(tb_sts_fetches sts-cache.test)"
tb_psql "CREATE TABLE keep AS SELECT * FROM mxguard_sts_policy WHERE domain = 'sts-cache.test'" >/dev/null
MARK=$(tb_log_mark mxg-a)
tb_psql "UPDATE mxguard_sts_policy SET id = 'stale', fetched_at = fetched_at - 3000000, expires_at = fetched_at - 3000000 + 86400, rev = nextval('mxguard_sts_rev') WHERE domain = 'sts-cache.test'" >/dev/null
tb_psql "INSERT INTO mxguard_sts_policy SELECT 'sts-cache.test' || repeat('x', 260), 'long', body, fetched_at, expires_at, nextval('mxguard_sts_rev'), 'evil' FROM keep" >/dev/null
tb_psql "INSERT INTO mxguard_sts_policy SELECT 'sts-broken.test', 'broken', convert_to('garbage', 'UTF8'), fetched_at, expires_at, nextval('mxguard_sts_rev'), 'evil' FROM keep" >/dev/null
for n in $(seq 50); do
    tb_log_since "$MARK" mxg-a | grep -q 'sts-broken.test: policy id broken from the fleet refused' && break
    sleep 0.1
done
assert_log "A: an expired database row is refused" "$MARK" \
    'sts-cache\.test: policy id stale from the fleet refused: expired' mxg-a
assert_log "A: an unparseable database row is refused" "$MARK" \
    'sts-broken\.test: policy id broken from the fleet refused: invalid policy' mxg-a
assert_log "A: a database row with a domain too long is refused, not cut" "$MARK" \
    'from the fleet refused: domain or id too long' mxg-a
assert_eq "A: its local copy of sts-cache.test is still id cache1, unexpired" "cache1|1" \
    "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT id, expires_at > strftime('%s', 'now') FROM sts_policy WHERE domain = 'sts-cache.test'")"
assert_eq "A: no row for the broken or cut domains" 0 \
    "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT count(*) FROM sts_policy WHERE domain LIKE 'sts-broken%' OR domain LIKE 'sts-cache.testx%'")"
tb_psql "DELETE FROM mxguard_sts_policy WHERE instance = 'evil'" >/dev/null
tb_psql "UPDATE mxguard_sts_policy p SET id = k.id, body = k.body, fetched_at = k.fetched_at, expires_at = k.expires_at, rev = nextval('mxguard_sts_rev') FROM keep k WHERE p.domain = k.domain" >/dev/null

# ---- 3. the policy host goes away, TXT removed, MX replaced; B never saw the domain
tb_dns_swap sts-cache.test b
tb_stop nginx
# (and 1,000 more policies, as a large fleet's table: a new member pulls them in pages)
tb_psql "INSERT INTO mxguard_sts_policy SELECT 'bulk' || g || '.test', 'bulk', convert_to(E'version: STSv1\\nmode: testing\\nmx: *.test\\nmax_age: 86400\\n', 'UTF8'), 0, 4102444800, nextval('mxguard_sts_rev'), 'bulk' FROM generate_series(1, 1000) g" >/dev/null
# A's policy last (the highest rev: the third 400-row sync brings it), and the table locked
# for 3 s while B starts (a slow database): B's first transaction, sent the moment its
# listener accepts, is decided by the fleet's policy only if B waited for its first COMPLETE
# pull before opening the listeners (without that wait it is relayed to mx2)
tb_psql "UPDATE mxguard_sts_policy SET rev = nextval('mxguard_sts_rev') WHERE domain = 'sts-cache.test'" >/dev/null
tb_psql "BEGIN; LOCK TABLE mxguard_sts_policy IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT" >/dev/null &
LOCKER=$!
for n in $(seq 50); do
    [ "$(tb_psql "SELECT count(*) FROM pg_locks WHERE relation = 'mxguard_sts_policy'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1 ] && break
    sleep 0.1
done
tb_start_mxguard -c "$TB/b.conf" -n mxg-b -a 127.0.70.3:10025
SW_SERVER=127.0.70.3:10025 swaks_send b0 --to a@sts-cache.test
wait "$LOCKER"
assert_reply "B: its first transaction right after the listener opened: deferred 451 4.7.5" \
    "$SW_RCPT" "451 4.7.5"
assert_eq "B: first transaction not relayed" "" "$SW_DOT"
assert_log "B: waited for the first complete pull before opening the listeners" 0 \
    'notice main: shared state: first complete pull after [0-9]+ ms' mxg-b
for n in $(seq 100); do
    [ "$(sqlite3 "$TB/state-b/mta-sts.db" 'SELECT count(*) FROM sts_policy' 2>/dev/null)" = 1001 ] && break
    sleep 0.1
done
assert_eq "B: all 1,001 rows of the fleet's table in its local cache (paged pulls)" 1001 \
    "$(sqlite3 "$TB/state-b/mta-sts.db" 'SELECT count(*) FROM sts_policy')"
for n in $(seq 50); do
    grep -q 'sts-cache.test: policy id cache1 from the fleet stored' "$TB/mxg-b.log" && break
    sleep 0.1
done
assert_log "B: pulled A's policy into its local cache" 0 \
    'state: sts-cache\.test: policy id cache1 from the fleet stored in the local cache' mxg-b
MARK=$(tb_log_mark mxg-b)
SW_SERVER=127.0.70.3:10025 swaks_send b1 --to a@sts-cache.test
assert_reply "B: RCPT deferred 451 4.7.5" "$SW_RCPT" "451 4.7.5"
assert_contains "B: the reply says MTA-STS" "$SW_RCPT" "MTA-STS"
assert_eq "B: nothing relayed" "" "$SW_DOT"
assert_no_connect "B: mx2.sts-cache.test (not in the policy) never connected to" sts-cache2
assert_no_mail "B: mx2.sts-cache.test got nothing" sts-cache2
assert_log "B: the cached (fleet) policy decided" "$MARK" \
    'sts-cache\.test: policy mode=enforce .*cached policy used' mxg-b
assert_eq "B: no fetch (the policy host is gone)" 1 "$(tb_sts_fetches sts-cache.test)"

# ---- 4. control: C, not in the fleet, has no policy and delivers to mx2 (what B would do)
tb_start_mxguard -c "$TB/c.conf" -n mxg-c -a 127.0.70.4:10025
SW_SERVER=127.0.70.4:10025 swaks_send c1 --to a@sts-cache.test
assert_reply "C (sqlite, alone): delivered" "$SW_DOT" "250"
assert_file_count "$TB/spool/sts-cache2" 1 "C: mx2.sts-cache.test got it (no policy without the fleet)"

# ---- 5. B's view from `mxguard check` (its local copy), and the shared state's link
tb_check check-b sts-cache.test -c "$TB/b.conf"
assert_contains "check (B's state): the fleet's policy from the local cache" "$CHECK_OUT" \
    "policy id cache1, mode enforce, max_age 86400, from the cache"
assert_contains "check: the shared state is up" "$CHECK_OUT" \
    "shared state: backend postgresql, up, schema version 5"

# ---- 6. the database goes away: mail is not delayed, the outage shows (log, metrics, check)
scrape() { # scrape NAME — GET /metrics of A into $TB/NAME.metrics
    "$PYTHON" - "$TB/$1.metrics" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.70.1", 9125, timeout=5, source_address=("127.0.70.100", 0))
c.request("GET", "/metrics")
open(sys.argv[1], "wb").write(c.getresponse().read())
PY
}
metric() { awk -v s="$2" '$1 == s { v = $2 } END { print v == "" ? "absent" : v }' "$TB/$1.metrics"; }
tb_start_nginx # the policy hosts again (sts-enforce.test is fetched during the outage below)
scrape up1
assert_eq "metrics: mxguard_state_up 1" 1 "$(metric up1 mxguard_state_up)"
MARK=$(tb_log_mark mxg-a)
tb_stop_pg
for n in $(seq 50); do
    tb_log_since "$MARK" mxg-a | grep -q 'state: postgresql: down' && break
    sleep 0.1
done
assert_log "A: the outage is logged once, mail unaffected" "$MARK" \
    'warning state: postgresql: down: .*mail is not affected' mxg-a
T0=$(date +%s%N)
swaks_send a2 --to a@sts-enforce.test
T1=$(date +%s%N)
assert_reply "A: delivery during the outage" "$SW_DOT" "250"
assert_match "A: not delayed by the outage (under 3 s)" "$(((T1 - T0) / 1000000))" '^([0-9]{1,3}|[0-2][0-9]{3})$'
# a new member started while the database is down waits state.first_pull_timeout (2 s here)
# for its first pull, then serves anyway and logs the first-use risk
tb_write_config -o "$TB/d.conf" -l 127.0.70.5:10025 "$STS"
tb_pg_config "$TB/d.conf" "$TB/state-d" fleet-d
sed -i 's/^  sync_interval = "300ms";$/&\n  first_pull_timeout = "2s";/' "$TB/d.conf"
T0=$(date +%s%N)
tb_start_mxguard -c "$TB/d.conf" -n mxg-d -a 127.0.70.5:10025
T1=$(date +%s%N)
assert_match "D (database down at start): serves after the 2 s bound, not before, not much later ($(((T1 - T0) / 1000000)) ms)" \
    "$(((T1 - T0) / 1000000))" '^(2[0-9]{3}|3[0-9]{3})$'
assert_log "D: the warning names the first-use risk" 0 \
    'warning main: shared state: no complete pull within state.first_pull_timeout \(2000 ms; link down: .*\): serving anyway; .*first use' mxg-d
tb_stop mxg-d
scrape down1
assert_eq "metrics: mxguard_state_up 0 during the outage" 0 "$(metric down1 mxguard_state_up)"
tb_check check-down sts-cache.test -c "$TB/b.conf"
assert_contains "check during the outage: says down" "$CHECK_OUT" "shared state: backend postgresql, down"
assert_contains "check during the outage: the local copy still decides" "$CHECK_OUT" "policy id cache1, mode enforce"
SW_SERVER=127.0.70.3:10025 swaks_send b2 --to a@sts-cache.test
assert_reply "B during the outage: still 451 4.7.5 from its local copy" "$SW_RCPT" "451 4.7.5"
MARK=$(tb_log_mark mxg-a)
tb_start_pg
for n in $(seq 50); do
    tb_log_since "$MARK" mxg-a | grep -q 'state: postgresql: up' && break
    sleep 0.1
done
assert_log "A: back up after the outage" "$MARK" 'notice state: postgresql: up' mxg-a
scrape up2
assert_eq "metrics: mxguard_state_up 1 again" 1 "$(metric up2 mxguard_state_up)"
assert_eq "A's policy of sts-enforce.test (fetched during the outage) reached the database" \
    "sts-enforce.test|fleet-a" \
    "$(tb_psql "SELECT domain, instance FROM mxguard_sts_policy WHERE domain = 'sts-enforce.test'")"

# ---- 8. one push the database refuses (a trigger) does not stall the sync: the other rows are
# still pulled; a fleet row newer than a queued push, skipped by the pull meanwhile, is taken
# once the push reaches the database and finds it older (read back)
tb_psql "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'held by the test'; END \$\$;
CREATE TRIGGER hold BEFORE INSERT ON mxguard_sts_policy FOR EACH ROW
WHEN (NEW.domain = 'sts-enforce.test' AND NEW.instance = 'fleet-a') EXECUTE FUNCTION hold()" >/dev/null
MARK=$(tb_log_mark mxg-a)
sleep 1.1
swaks_send a3 --to a@sts-enforce.test
assert_reply "A: delivered (the refresh's push is refused by the database)" "$SW_DOT" "250"
for n in $(seq 50); do
    tb_log_since "$MARK" mxg-a | grep -q 'MTA-STS push of sts-enforce.test refused' && break
    sleep 0.1
done
assert_log "A: the refused push is logged and kept queued" "$MARK" \
    'state: postgresql: MTA-STS push of sts-enforce\.test refused \(kept queued\): .*held by the test' mxg-a
POL="convert_to(E'version: STSv1\\nmode: enforce\\nmx: mx.sts-enforce.test\\nmax_age: 86400\\n', 'UTF8')"
tb_psql "INSERT INTO mxguard_sts_policy VALUES ('fleet-only.test', 'other', $POL, extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint + 86400, nextval('mxguard_sts_rev'), 'fleet-x')" >/dev/null
for n in $(seq 50); do
    [ "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT id FROM sts_policy WHERE domain = 'fleet-only.test'")" = other ] && break
    sleep 0.1
done
assert_eq "A: still pulls while its push is refused" other \
    "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT id FROM sts_policy WHERE domain = 'fleet-only.test'")"
assert_no_log "A: the link did not go down" "$MARK" 'state: postgresql: down' mxg-a
tb_psql "UPDATE mxguard_sts_policy SET id = 'fleetnew', body = $POL, fetched_at = extract(epoch FROM now())::bigint + 60, expires_at = extract(epoch FROM now())::bigint + 86400, rev = nextval('mxguard_sts_rev'), instance = 'fleet-x' WHERE domain = 'sts-enforce.test'" >/dev/null
sleep 1.5 # A pulls that row and skips it: its own push of the domain is still queued
tb_psql "DROP TRIGGER hold ON mxguard_sts_policy" >/dev/null
for n in $(seq 50); do
    [ "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT id FROM sts_policy WHERE domain = 'sts-enforce.test'")" = fleetnew ] && break
    sleep 0.1
done
assert_eq "A: took the fleet's newer row once its older push reached the database" fleetnew \
    "$(sqlite3 "$TB/state-a/mta-sts.db" "SELECT id FROM sts_policy WHERE domain = 'sts-enforce.test'")"
assert_eq "the database kept the newer row" "fleetnew|fleet-x" \
    "$(tb_psql "SELECT id, instance FROM mxguard_sts_policy WHERE domain = 'sts-enforce.test'")"

# ---- 9. a database that accepts the connection but stops answering (a lock the test holds
# 4 s) marks the link down after three sync intervals, not when the query returns
MARK=$(tb_log_mark mxg-a)
tb_psql "BEGIN; LOCK TABLE mxguard_sts_policy IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT" >/dev/null &
LOCKER=$!
for n in $(seq 30); do
    tb_log_since "$MARK" mxg-a | grep -q 'state: postgresql: down' && break
    sleep 0.1
done
assert_log "A: a sync that hangs marks the link down" "$MARK" \
    'warning state: postgresql: down: the database has not answered for [0-9]+ ms' mxg-a
scrape hung
assert_eq "metrics: mxguard_state_up 0 while the sync hangs" 0 "$(metric hung mxguard_state_up)"
wait "$LOCKER"
for n in $(seq 50); do
    tb_log_since "$MARK" mxg-a | grep -q 'state: postgresql: up' && break
    sleep 0.1
done
assert_log "A: up again once the database answers" "$MARK" 'notice state: postgresql: up' mxg-a

# ---- 7. no password in any log
for f in mxg-a mxg-b pg; do
    if grep -qF "$PW" "$TB/$f.log"; then fail "$f.log shows the password"; else pass "$f.log: no password"; fi
done
tb_finish
