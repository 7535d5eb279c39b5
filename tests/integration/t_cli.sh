#!/usr/bin/env bash
# t_cli.sh — the command line (docs/man/mxguard.8): every command's and subcommand's --help
# (and -h) prints its usage on stdout and exits 0; `mxguard check` uses policy_list.file as
# the daemon does (no `list update` first); `mxguard report export DIR [--day DAY]` writes every
# finished report (UTC days before today) as RFC 8460 §5.3 named JSON files
# (SUBMITTER!DOMAIN!BEGIN!END.json) with the JSON of `report show`.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init

# ------------------------------------------------------------------ 1. --help everywhere
# "COMMAND|SYNOPSIS": the usage must name the synopsis
for c in "run|run [-c FILE]" "check|check DOMAIN" "config|config check" "config check|config check" \
    "list|list show" "list show|list show" "list update|list update" "list export|list export" \
    "report|report list" "report list|report list" "report show|report show DAY DOMAIN" \
    "report send|report send DAY" "report export|report export DIR [--day DAY]" \
    "queue|queue list" "queue list|queue list" "queue show|queue show ID" \
    "queue flush|queue flush" "queue delete|queue delete ID..." \
    "report show 2026-01-01 x.test|report show DAY DOMAIN" "check example.test|check DOMAIN"; do
    cmd=${c%%|*} syn=${c#*|}
    for h in --help -h; do
        # shellcheck disable=SC2086
        out=$("$MXG_BIN" $cmd $h 2>"$TB/help.err" </dev/null 9>&-); rc=$?
        assert_eq "mxguard $cmd $h: exit 0" 0 "$rc"
        assert_contains "mxguard $cmd $h: usage on stdout" "$out" "usage: mxguard"
        assert_contains "mxguard $cmd $h: names '$syn'" "$out" "$syn"
        assert_eq "mxguard $cmd $h: nothing on stderr" "" "$(cat "$TB/help.err")"
    done
done
out=$("$MXG_BIN" --help 2>/dev/null); rc=$?
assert_eq "mxguard --help: exit 0" 0 "$rc"
assert_contains "mxguard --help names report export" "$out" "report export DIR"
"$MXG_BIN" nosuch --help >/dev/null 2>&1
assert_eq "an unknown command with --help: exit 2" 2 "$?"
"$MXG_BIN" queue >/dev/null 2>&1
assert_eq "queue without a subcommand: still a usage error (exit 2)" 2 "$?"

# ------------------------------------------------------------------ 2. check uses policy_list.file
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx dane-ee 127.0.70.21
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
rpt_config='tlsrpt: { send_reports = false; flush_interval = "1s"; organization_name = "mxguard test"; contact_info = "mailto:tlsrpt@mxguard.test"; submitter = "mxguard.test"; };'
tb_write_config "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };" \
    "$rpt_config"
tb_check list example.test
assert_not_contains "check (no list update before): a verified list is loaded" "$CHECK_OUT" "no verified list loaded"
assert_contains "check: the list's entry for example.test is shown" "$CHECK_OUT" "policy list: entry mode enforce"
assert_eq "check: the list file was taken as the daemon takes it (state copy written)" 1 \
    "$([ -s "$TB/state/policy-list.json" ] && echo 1 || echo 0)"
# list show: the list in force from policy_list.file alone (fresh state directory, no update)
mkdir -p "$TB/state-show"
tb_write_config -o "$TB/show.conf" "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };"
sed -i "s|directory = \"$TB/state\"|directory = \"$TB/state-show\"|" "$TB/show.conf"
out=$(timeout 30 "$MXG_BIN" list show -c "$TB/show.conf" 2>&1 </dev/null); rc=$?
assert_eq "list show (no list update before): exit 0, a list in force" 0 "$rc"
assert_contains "list show (no list update before): the file's list is in force" "$out" "in force"
# a refused file is said so (and the check still runs)
cp "$TB/list.json" "$TB/bad.json"; echo " " >>"$TB/bad.json"; cp "$TB/list.json.asc" "$TB/bad.json.asc"
mkdir -p "$TB/state-bad"
tb_write_config -o "$TB/bad.conf" "policy_list: { file = \"$TB/bad.json\"; keyring = \"$TB/keyring.gpg\"; };"
sed -i "s|directory = \"$TB/state\"|directory = \"$TB/state-bad\"|" "$TB/bad.conf"
tb_check badlist example.test -c "$TB/bad.conf"
assert_contains "check with a tampered list file: no list" "$CHECK_OUT" "no verified list loaded"
assert_match "check with a tampered list file: says why" "$CHECK_OUT" 'BADSIG|bad signature'

# ------------------------------------------------------------------ 3. report export
tb_start_mxguard
swaks_send ex --to a@example.test
assert_reply "example.test delivered" "$SW_DOT" "250"
swaks_send ee --to a@dane-ee.test
assert_reply "dane-ee.test delivered" "$SW_DOT" "250"
swaks_send ins --to a@insecure.test
assert_reply "insecure.test delivered" "$SW_DOT" "250"
tb_stop mxguard
TODAY=$(date -u +%F)
D1=$(date -u -d "@$((now - 86400))" +%F)
D2=$(date -u -d "@$((now - 2 * 86400))" +%F)
# the counters move to past days: example.test to yesterday, dane-ee.test to the day before
sqlite3 "$TB/state/tlsrpt.db" "UPDATE policy SET day = '$D1' WHERE domain = 'example.test';
    UPDATE policy SET day = '$D2' WHERE domain = 'dane-ee.test';" || tb_die "sqlite3 failed"
assert_contains "report list: insecure.test today" "$("$MXG_BIN" report list -c "$TB/mxguard.conf" 2>/dev/null 9>&-)" "$TODAY insecure.test"
# insecure.test's report stays today's: unfinished, never exported
b2=$(date -u -d "$D2 00:00:00" +%s)
b1=$(date -u -d "$D1 00:00:00" +%s)
F1="mxguard.test!example.test!$b1!$((b1 + 86399)).json"
F2="mxguard.test!dane-ee.test!$b2!$((b2 + 86399)).json"

out=$(timeout 30 "$MXG_BIN" report export "$TB/export" -c "$TB/mxguard.conf" 2>"$TB/export.err" </dev/null 9>&-); rc=$?
echo "# report export: $out | $(cat "$TB/export.err")"
assert_eq "report export: exit 0" 0 "$rc"
assert_eq "report export: exactly the two finished reports" "$(printf '%s\n' "$F2" "$F1" | sort)" \
    "$(ls "$TB/export" | sort)"
for f in "$F1" "$F2"; do
    IFS='!' read -r _ dom beg end <<<"${f%.json}"
    day=$(date -u -d "@$beg" +%F)
    timeout 30 "$MXG_BIN" report show "$day" "$dom" -c "$TB/mxguard.conf" >"$TB/show.$dom" 2>/dev/null </dev/null 9>&-
    if cmp -s "$TB/show.$dom" "$TB/export/$f"; then pass "report export: $f is what report show $day $dom prints"
    else fail "report export: $f differs from report show $day $dom"; fi
    got=$("$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); p=r["policies"][0]["policy"]; print(r["date-range"]["start-datetime"], r["date-range"]["end-datetime"], p["policy-domain"])' "$TB/export/$f" 2>&1)
    assert_eq "report export: $f is JSON of $dom's report for $day" \
        "$(date -u -d "@$beg" +%Y-%m-%dT%H:%M:%SZ) $(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ) $dom" "$got"
done
assert_eq "report export: no temporary files left" "" "$(ls -A "$TB/export" | grep '^\.')"

rm -rf "$TB/export1"
out=$(timeout 30 "$MXG_BIN" report export "$TB/export1" --day "$D1" -c "$TB/mxguard.conf" 2>/dev/null </dev/null 9>&-); rc=$?
assert_eq "report export --day $D1: exit 0" 0 "$rc"
assert_eq "report export --day $D1: only that day's report" "$F1" "$(ls "$TB/export1")"
timeout 30 "$MXG_BIN" report export "$TB/export2" --day "$TODAY" -c "$TB/mxguard.conf" >/dev/null 2>"$TB/today.err" </dev/null 9>&-
assert_eq "report export --day today: refused (not finished), exit 1" 1 "$?"
assert_contains "... saying so" "$(cat "$TB/today.err")" "not finished"
timeout 30 "$MXG_BIN" report export "$TB/export2" --day 2026-13-45x -c "$TB/mxguard.conf" >/dev/null 2>&1 </dev/null 9>&-
assert_eq "report export --day garbage: usage error, exit 2" 2 "$?"

tb_list_keys_stop
tb_finish
