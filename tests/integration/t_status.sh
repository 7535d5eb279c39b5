#!/usr/bin/env bash
# t_status.sh — the status page (/status on metrics.listen) as a person sees it, and the
# Grafana dashboard's metrics. After deliveries that succeed (DANE 3 1 1, MTA-STS enforce and
# testing, opportunistic) and fail (every MX of dane-allbad.test has a wrong TLSA digest: 451
# 4.7.5; MTA-STS enforce with a certificate for another name: 451 4.7.5; an MX that answers
# the final dot with markup, quotes and '&': 554 5.6.0), the page lists each domain under its
# policy source with its counts and last failure reason, every peer string HTML-escaped; the
# domain page shows the decision of the delivery; page views make no DNS lookup (metrics) and
# no policy fetch (nginx's logs); only
# GET/HEAD; with metrics.status_credentials_file basic auth is required. Headless Chromium
# (Debian's) loads the page: the DOM shows the failing domain with its reason and no script
# element, no console error is logged, a screenshot is taken (STATUS_PNG=FILE copies it).
# Every metric the dashboard (etc/grafana/mxguard-dashboard.json) queries is served on /metrics.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# (any server.workers: the page merges every worker's destinations, docs/ARCHITECTURE.md
# §Workers; t_status_workers.sh checks that with 2)
tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx dane-ee 127.0.70.21
tb_start_mx dane-2nd1 127.0.70.24
tb_start_mx dane-allbad 127.0.70.27
tb_start_nginx
tb_start_sts_mx sts-enforce sts-testing sts-badcert
METRICS="$TB_MXG_IP:9125"
# Chromium connects from 127.0.0.1 (it cannot bind a source address)
ALLOW='allow_networks = ["127.0.70.0/25", "127.0.0.1/32"];'
tb_write_config "$(tb_sts_config)" "metrics: { listen = \"$METRICS\"; $ALLOW };"
tb_start_mxguard

# get NAME PATH [METHOD] [AUTH] — an HTTP request from the client address; the body goes to
# $TB/NAME.html, the headers to $TB/NAME.hdr; prints the status code (or "closed"/"error")
get() {
    "$PYTHON" - "$TB_MXG_IP" 9125 "$TB_CLIENT_IP" "$TB/$1" "$2" "${3:-GET}" "${4:-}" <<'PY'
import base64, http.client, sys
ip, port, src, out, path, method, auth = sys.argv[1:8]
h = {}
if auth:
    h["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
try:
    c = http.client.HTTPConnection(ip, int(port), timeout=10, source_address=(src, 0))
    c.request(method, path, headers=h)
    r = c.getresponse()
    open(out + ".html", "wb").write(r.read())
    open(out + ".hdr", "w").write("".join("%s: %s\n" % kv for kv in r.getheaders()))
    print(r.status)
except (http.client.RemoteDisconnected, ConnectionResetError):
    print("closed")
except Exception as e:
    print("error-%s" % type(e).__name__)
PY
}
# dns_lookups NAME — the sum of mxguard_dns_queries_total over its statuses in a scrape
dns_lookups() {
    [ "$(get "$1" /metrics)" = 200 ] || { echo scrape-failed; return; }
    awk '/^mxguard_dns_queries_total\{/ { s += $2 } END { print s + 0 }' "$TB/$1.html"
}

# ------------------------------------------------------------------ 1. traffic
swaks_send ok1 --to a@dane-ee.test
assert_reply "dane-ee.test delivered" "$SW_DOT" "250"
swaks_send ok2 --to a@example.test
assert_reply "example.test delivered" "$SW_DOT" "250"
swaks_send ok3 --to b@example.test
assert_reply "example.test delivered again" "$SW_DOT" "250"
swaks_send bad1 --to a@dane-allbad.test
assert_reply "dane-allbad.test refused (DANE)" "$SW_RCPT" "451 4.7.5"
# two domains, one refuses the data for now: the client gets 250, the failed recipient waits
# in the spool (the first retry is minutes away: queue.retry_backoff)
swaks_send spooled --to b@dane-ee.test,tempdata@example.test
assert_match "dane-ee.test + example.test: 250, the failed recipient is stored" "$SW_DOT" \
    '^250 2\.0\.0 .*queued as'
swaks_send bad2 --to hostiledata@example.test
assert_reply "example.test: the MX refused the data with a hostile text" "$SW_DOT" "554 5.6.0"
swaks_send ok4 --to a@sts-enforce.test
assert_reply "sts-enforce.test delivered (MTA-STS enforce)" "$SW_DOT" "250"
swaks_send ok5 --to a@sts-testing.test
assert_reply "sts-testing.test delivered (MTA-STS testing)" "$SW_DOT" "250"
swaks_send bad3 --to a@sts-badcert.test
assert_reply "sts-badcert.test refused (MTA-STS enforce, certificate for another name)" \
    "$SW_RCPT" "451 4.7.5"
# sts_fetches — policy fetches nginx has served for the three MTA-STS domains
sts_fetches() {
    echo $(($(tb_sts_fetches sts-enforce.test) + $(tb_sts_fetches sts-testing.test) +
        $(tb_sts_fetches sts-badcert.test)))
}
sleep 1.5 # the TLSRPT store is written every second: the chart reads the store

# ------------------------------------------------------------------ 2. the page, by HTTP
before=$(dns_lookups m0)
fetches=$(sts_fetches)
assert_eq "GET /status: 200" 200 "$(get main /status)"
P=$(cat "$TB/main.html")
assert_file_grep "served as HTML" "$TB/main.hdr" '^Content-Type: text/html; charset=utf-8$'
assert_file_grep "a Content-Security-Policy that allows no script" "$TB/main.hdr" \
    "^Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'"
assert_not_contains "no script on the page" "$P" "<script"
assert_not_contains "no markup from the MX's reply (<b>)" "$P" "<b>bold"
assert_contains "the MX's reply is shown escaped" "$P" \
    "554 5.6.0 &lt;script&gt;alert(&quot;mx&quot;)&lt;/script&gt; &amp; &#39;rejected&#39; &lt;b&gt;bold&lt;/b&gt;"
assert_match "DANE group: dane-ee.test 2 delivered, 0 failed" "$(tr -d '\n' <"$TB/main.html")" \
    '<h3>DANE \([0-9]+ domains?\)</h3>.*dane-ee\.test</a></td><td class="n">2</td><td class="n">0</td>'
assert_match "dane-allbad.test: 0 delivered, 1 failed, its reason" "$(tr -d '\n' <"$TB/main.html")" \
    'href="/status/domain/dane-allbad\.test">dane-allbad\.test</a></td><td class="n">0</td><td class="n bad">1</td><td>451 4\.7\.5 [^<]*DANE'
assert_match "example.test is opportunistic: 2 delivered, 2 failed" "$(tr -d '\n' <"$TB/main.html")" \
    '<h3>opportunistic \([0-9]+ domains?\)</h3>.*example\.test</a></td><td class="n">2</td><td class="n bad">2</td>'
assert_contains "health: DNSSEC path passed" "$P" "passed: DNSKEY"
assert_contains "health: the DNS mode" "$P" "stub (servers: $TB_DNS_IP:$TB_DNS_PORT)"
assert_contains "health: the database backend" "$P" "<th>Database backend</th><td>sqlite</td>"
assert_contains "health: reload generation 0" "$P" "<th>Reload generation</th><td>0 (last reload: never)"
assert_contains "spool: one message" "$P" "<tr><th>messages</th><td>1</td></tr>"
assert_match "spool: the oldest, seconds ago" "$P" "<tr><th>oldest</th><td>$(date -u +%F) [0-9:]{8} UTC \([0-9]+s ago\)</td></tr>"
assert_match "spool: the next retry, minutes ahead" "$P" "<tr><th>next retry</th><td>[-0-9]{10} [0-9:]{8} UTC \(in [0-9]+m [0-9]+s\)</td></tr>"
today=$(date -u +%F)
assert_match "MTA-STS enforce group: sts-enforce.test 1 delivered" "$(tr -d '\n' <"$TB/main.html")" \
    '<h3>MTA-STS enforce \([0-9]+ domains?\)</h3>.*sts-enforce\.test</a></td><td class="n">1</td><td class="n">0</td>'
assert_match "MTA-STS enforce group: sts-badcert.test failed with its reason" "$(tr -d '\n' <"$TB/main.html")" \
    '<h3>MTA-STS enforce .*sts-badcert\.test</a></td><td class="n">0</td><td class="n bad">1</td><td>451 4\.7\.5 [^<]*'
assert_match "testing group: sts-testing.test 1 delivered" "$(tr -d '\n' <"$TB/main.html")" \
    '<h3>testing \(1 domain\)</h3><table class="dest"><tr><th>domain</th><th>delivered</th><th>failed</th><th>last failure</th></tr><tr><td><a href="/status/domain/sts-testing\.test">sts-testing\.test</a></td><td class="n">1</td>'
# the chart's bar for today = the TLS sessions mxguard counted (mxguard_tls_sessions_total:
# success, and every result type else), as the TLSRPT store has them
tls_ok=$(awk '/^mxguard_tls_sessions_total\{result="success"\}/ { s += $2 } END { print s + 0 }' "$TB/m0.html")
tls_fail=$(awk '/^mxguard_tls_sessions_total\{/ && !/result="success"/ { s += $2 } END { print s + 0 }' "$TB/m0.html")
assert_match "TLS sessions: some succeeded, some failed" "$tls_ok $tls_fail" '^[1-9][0-9]* [1-9][0-9]*$'
assert_contains "chart: today's bar from the TLSRPT store ($tls_ok ok, $tls_fail failed)" "$P" \
    "<title>$today: $tls_ok successful, $tls_fail failed</title>"
assert_eq "GET /status/domain/dane-allbad.test: 200" 200 "$(get dom /status/domain/dane-allbad.test)"
D=$(cat "$TB/dom.html")
assert_contains "domain page: the check's MX line" "$D" "MX RRset: SECURE, 2 hosts"
assert_contains "domain page: the requirement line check prints" "$D" "requirement:"
assert_contains "domain page: DANE fact of the MX host" "$D" "DANE: "
assert_contains "domain page: the failure" "$D" "451 4.7.5"
assert_eq "a domain not seen today: 404" 404 "$(get none '/status/domain/%3Cscript%3Ex.test')"
assert_not_contains "... and its name is escaped" "$(cat "$TB/none.html")" "<script"
assert_contains "... shown as text" "$(cat "$TB/none.html")" "&lt;script&gt;x.test"
assert_eq "POST /status: 405" 405 "$(get post /status POST)"
assert_eq "HEAD /status: 200" 200 "$(get head /status HEAD)"
after=$(dns_lookups m1)
assert_eq "page views made no DNS lookup (mxguard_dns_queries_total, cache hits included)" \
    "$before" "$after"
assert_eq "page views made no MTA-STS policy fetch (nginx's access logs)" "$fetches" "$(sts_fetches)"
assert_eq "GET /status/domain/sts-badcert.test: 200" 200 "$(get dom2 /status/domain/sts-badcert.test)"
assert_contains "its decision: the MTA-STS policy line" "$(cat "$TB/dom2.html")" "MTA-STS: policy"
assert_eq "... still no MTA-STS fetch" "$fetches" "$(sts_fetches)"
assert_eq "... still no DNS lookup" "$before" "$(dns_lookups m3)"

# ------------------------------------------------------------------ 3. Chromium
CHROME=$(command -v chromium || true)
if [ -z "$CHROME" ]; then
    fail "chromium is not installed (scripts/setup.sh deps)"
else
    export HOME="$TB/chrome-home"
    mkdir -p "$HOME"
    # chrome N OPTIONS... — headless Chromium as root (no sandbox; its own profile per run),
    # console messages in $TB/chromeN.log
    chrome() {
        local n=$1; shift
        timeout 60 "$CHROME" --headless=new --no-sandbox --disable-gpu --no-first-run \
            --disable-extensions --disable-background-networking --disable-sync \
            --disable-component-update --user-data-dir="$TB/chrome-profile$n" \
            --enable-logging=stderr --v=0 "$@" 2>"$TB/chrome$n.log"
    }
    # the console check can fail: a page that logs an error shows in the log
    chrome 0 --dump-dom "data:text/html,<p>x</p><script>console.error('selfcheck-4711')</script>" \
        >/dev/null
    assert_file_grep "chromium: a console error would be seen" "$TB/chrome0.log" \
        'CONSOLE.*selfcheck-4711'
    chrome 1 --dump-dom "http://$METRICS/status" >"$TB/dom-js.html"
    # JavaScript off: headless Chromium's --dump-dom and --screenshot run script of their own
    # and give nothing with scriptEnabled=false, so the proof is that the page has no script
    # element and its Content-Security-Policy (checked above) lets none run: what Chromium
    # renders here is what a browser without JavaScript renders
    chrome 3 --screenshot="$TB/status.png" --window-size=1100,1480 --hide-scrollbars \
        "http://$METRICS/status" >/dev/null
    DOM=$(tr -d '\n' <"$TB/dom-js.html")
    assert_match "chromium: the failing domain with its reason" "$DOM" \
        'dane-allbad\.test</a></td><td class="n">0</td><td class="n bad">1</td><td>451 4\.7\.5 [^<]*DANE'
    assert_contains "chromium: the hostile reply is text, not markup" "$DOM" \
        "554 5.6.0 &lt;script&gt;alert(\"mx\")&lt;/script&gt; &amp; 'rejected' &lt;b&gt;bold&lt;/b&gt;"
    assert_contains "chromium: the chart is there" "$DOM" "<svg"
    assert_not_contains "chromium: no script element in the DOM (nothing needs JavaScript)" "$DOM" \
        "<script"
    for l in 1 3; do
        if grep -Ei 'CONSOLE|Uncaught|Refused to|Failed to load resource|ERR_' "$TB/chrome$l.log" \
            | grep -v 'dbus\|DBus\|gcm\|GCM' >"$TB/chrome$l.errors"; then
            fail "chromium run $l: console errors: $(head -3 "$TB/chrome$l.errors")"
        else
            pass "chromium run $l: no console error"
        fi
    done
    assert_eq "chromium: a PNG screenshot" "PNG" "$(head -c 4 "$TB/status.png" 2>/dev/null | tail -c 3)"
    assert_match "chromium: the screenshot is not empty (> 20 KB)" "$(stat -c %s "$TB/status.png" 2>/dev/null)" \
        '^[0-9]{5,}$'
    [ -z "${STATUS_PNG:-}" ] || cp "$TB/status.png" "$STATUS_PNG"
fi

# ------------------------------------------------------------------ 4. the Grafana dashboard
DASH="$MXG_SRC/etc/grafana/mxguard-dashboard.json"
names=$(jq -r '.. | objects | (.expr?, .definition?) // empty | strings' "$DASH" \
    | grep -oE 'mxguard_[a-z0-9_]+' | sort -u)
assert_match "the dashboard queries mxguard metrics" "$(echo "$names" | wc -l)" '^[0-9]{2,}$'
get m2 /metrics >/dev/null
for n in $names; do
    base=${n%_bucket}
    if [ "$base" != "$n" ]; then
        assert_file_grep "dashboard metric $n: $base is a histogram on /metrics" "$TB/m2.html" \
            "^# TYPE $base histogram\$"
    else
        assert_file_grep "dashboard metric $n is on /metrics" "$TB/m2.html" "^# TYPE $n "
    fi
done

# ------------------------------------------------------------------ 5. basic auth
tb_stop mxguard
printf '# status page users\nops:s3cret&<pw>\n' >"$TB/status-users"
chmod 600 "$TB/status-users"
tb_write_config "metrics: { listen = \"$METRICS\"; $ALLOW
  status_credentials_file = \"$TB/status-users\"; };"
export MXGUARD_METRICS_STATUS_REFRESH=1h # section 6
tb_start_mxguard
assert_eq "credentials file: no credentials → 401" 401 "$(get a1 /status)"
assert_file_grep "... with a Basic challenge" "$TB/a1.hdr" '^WWW-Authenticate: Basic realm="mxguard status"'
assert_eq "wrong password → 401" 401 "$(get a2 /status GET 'ops:s3cret&<pW>')"
assert_eq "wrong user → 401" 401 "$(get a3 /status GET 'op:s3cret&<pw>')"
assert_eq "right pair → 200" 200 "$(get a4 /status GET 'ops:s3cret&<pw>')"
assert_eq "/metrics needs none" 200 "$(get a5 /metrics)"

# ------------------------------------------------------------------ 6. metrics.status_refresh
# the spool and the TLSRPT store are read at most once per status_refresh (1h here): a page
# view after a second message was spooled still shows what the first view read
assert_contains "refresh: the first view read the spool (one message)" "$(cat "$TB/a4.html")" \
    "<tr><th>messages</th><td>1</td></tr>"
swaks_send spooled2 --to c@dane-ee.test,tempdata2@example.test
assert_reply "refresh: a second partly failed message is answered 250 (spooled)" "$SW_DOT" "250"
assert_eq "refresh: the spool holds two messages now" 2 \
    "$(ls "$TB/state/spool"/*.env 2>/dev/null | wc -l)"
assert_eq "refresh: a view within status_refresh → 200" 200 "$(get a6 /status GET 'ops:s3cret&<pw>')"
assert_contains "... shows the spool as read before (no disk read per view)" \
    "$(cat "$TB/a6.html")" "<tr><th>messages</th><td>1</td></tr>"
unset MXGUARD_METRICS_STATUS_REFRESH
tb_finish
