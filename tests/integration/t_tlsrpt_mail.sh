#!/usr/bin/env bash
# t_tlsrpt_mail.sh — TLSRPT reports by mail (RFC 8460 §5.3), end to end: deliveries through
# mxguard to rpt-mail.test / rpt-fail.test / rpt-reject.test (their MX offers no STARTTLS:
# no-policy-found, starttls-not-supported), then `mxguard report send DAY`:
#  - rpt-mail.test's report reaches its rua (tlsrpt@rpt-inbox.test, delivered by MX) as one
#    mail: MIME parsed with Python's email module (multipart/report; report-type="tlsrpt",
#    text part, application/tlsrpt+gzip attachment named SUBMITTER!DOMAIN!BEGIN!END.json.gz
#    whose gunzipped JSON is `mxguard report show`'s), the RFC headers, envelope sender
#    noreply-smtp-tls-reporting@SUBMITTER; the DKIM signature verified by opendkim-testmsg
#    against the key published in the signed test zone (nsd; libopendkim's resolver reads
#    /etc/resolv.conf, so it runs in a private mount namespace with a resolv.conf naming a
#    second nsd instance on port 53), and fails once the mail is altered;
#  - opportunistic TLS whatever the policy: mx.rpt-inbox.test has a TLSA record that matches
#    nothing and a certificate for another name, and still gets the report over TLS;
#  - the report session records no TLSRPT result (rpt-inbox.test's own report, one refused
#    delivery under DANE, is the same before and after);
#  - rpt-fail.test's rua answers 451 to RCPT: retried (row pending, attempt 1), then given up
#    at max_attempts with a log line; rpt-reject.test's rua answers 550: given up at once;
#  - without a DKIM key (same counters): mailto: skipped with a log line, no connection to
#    the MX.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx rpt-mail 127.0.70.61 --no-starttls
tb_start_mx rpt-inbox 127.0.70.62

DAY=$(date -u +%F)
CONF="$TB/mxguard.conf"
KEY="$TB/dns/dkim/rpt-sender.key"
SUBMITTER=rpt-sender.test

# rpt_config [EXTRA_LINE...] — the tlsrpt group: reports sent (scheduler idle: today only),
# two attempts, 1 s backoff
rpt_config() {
    local l out
    out='tlsrpt: {'$'\n''  flush_interval = "1s";'$'\n''  organization_name = "mxguard mail test";'
    out="$out"$'\n''  contact_info = "mailto:postmaster@rpt-sender.test";'
    out="$out"$'\n''  submitter = "'$SUBMITTER'";'$'\n''  send_check_interval = "1h";'
    out="$out"$'\n''  max_attempts = 2;'$'\n''  retry_backoff = "1s";'
    for l in "$@"; do out="$out"$'\n'"  $l"; done
    printf '%s\n};\n' "$out"
}
tb_write_config "$(rpt_config "dkim_key_file = \"$KEY\";" 'dkim_selector = "tlsrpt2024";')"
tb_write_config -o "$TB/nokey.conf" "$(rpt_config)"
sed -i "s#directory = \"$TB/state\"#directory = \"$TB/state-nokey\"#" "$TB/nokey.conf"
tb_start_mxguard

# ------------------------------------------------------------------ traffic
swaks_send m1 --to a@rpt-mail.test
assert_reply "rpt-mail.test: delivered (plaintext)" "$SW_DOT" "250"
swaks_send m2 --to b@rpt-mail.test
assert_reply "rpt-mail.test: delivered again" "$SW_DOT" "250"
swaks_send f1 --to a@rpt-fail.test
assert_reply "rpt-fail.test: delivered" "$SW_DOT" "250"
swaks_send r1 --to a@rpt-reject.test
assert_reply "rpt-reject.test: delivered" "$SW_DOT" "250"
assert_file_count "$TB/spool/rpt-mail" 4 "mx.rpt-mail.test: the 4 messages"
# mail to rpt-inbox.test itself is refused under its DANE policy (a TLSA record that matches
# nothing): that is what the report mail's opportunistic TLS must get past
swaks_send inbox --to x@rpt-inbox.test
assert_reply "rpt-inbox.test: refused under DANE" "$SW_RCPT" "451 4.7.5"
# SIGTERM writes every count; the no-key run gets a copy of the same database
tb_stop mxguard
mkdir -p "$TB/state-nokey"
cp "$TB/state/tlsrpt.db" "$TB/state-nokey/tlsrpt.db"

# report_cmd NAME CONF ARGS... — `mxguard report ARGS -c CONF`: stdout $TB/NAME.out, stderr
# (the log) $TB/NAME.log; sets RC
report_cmd() {
    local name=$1 conf=$2; shift 2
    timeout 60 "$MXG_BIN" report "$@" -c "$conf" >"$TB/$name.out" 2>"$TB/$name.log" </dev/null 9>&-
    RC=$?
    echo "# $name: report $* -> exit $RC: $(head -c 600 "$TB/$name.out" | tr '\n' ';')"
}

report_cmd show "$CONF" show "$DAY" rpt-mail.test
assert_eq "report show rpt-mail.test exits 0" 0 "$RC"
cp "$TB/show.out" "$TB/rpt-mail.json"
report_cmd show "$CONF" show "$DAY" rpt-inbox.test
assert_eq "report show rpt-inbox.test: the refused delivery is counted" 1 \
    "$("$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(p["summary"]["total-failure-session-count"] for p in r["policies"]))' "$TB/show.out")"
cp "$TB/show.out" "$TB/rpt-inbox.json"
INBOX_CONNECTS=$(grep -c 'connect from' "$TB/rpt-inbox.log")

# ------------------------------------------------------------------ without a DKIM key
report_cmd nokey "$TB/nokey.conf" send "$DAY"
assert_contains "no key: 3 mailto: destinations skipped" "$(cat "$TB/nokey.out")" "skipped 3"
assert_contains "no key: nothing sent" "$(cat "$TB/nokey.out")" "sent 0,"
assert_log "no key: one log line per skipped rua" 0 \
    "report $DAY rpt-mail\.test to mailto:tlsrpt@rpt-inbox\.test: no DKIM key.*skipped" nokey
assert_eq "no key: no connection to mx.rpt-inbox.test" "$INBOX_CONNECTS" \
    "$(grep -c 'connect from' "$TB/rpt-inbox.log")"
assert_file_count "$TB/spool/rpt-inbox" 0 "no key: mx.rpt-inbox.test got nothing"

# ------------------------------------------------------------------ with the key: first round
report_cmd send1 "$CONF" send "$DAY"
assert_eq "round 1: exit 1 (a destination is to be retried)" 1 "$RC"
assert_contains "round 1: 4 domains (one without _smtp._tls), sent 1, 1 to retry, 1 given up" \
    "$(cat "$TB/send1.out")" \
    "domains 4, no _smtp._tls record 1, DNS failures 0, sent 1, to retry 1, given up 1, skipped 0"
assert_file_count "$TB/spool/rpt-inbox" 1 "mx.rpt-inbox.test: one report mail"
assert_log "round 1: the 451 is retried later" 0 \
    "report $DAY rpt-fail\.test to mailto:tempfail@rpt-inbox\.test: 451 .*attempt 1 failed, next in" send1
assert_log "round 1: the 550 is given up at once" 0 \
    "report $DAY rpt-reject\.test to mailto:reject@rpt-inbox\.test: 550 .*giving up after 1 attempt \(permanent failure\)" send1

MAIL=$(spool_last "$TB/spool/rpt-inbox")
assert_eq "envelope sender" "noreply-smtp-tls-reporting@$SUBMITTER" "$(json_get "$MAIL.json" mail_from)"
assert_eq "envelope recipient" "tlsrpt@rpt-inbox.test" "$(json_get "$MAIL.json" rcpts.0)"
assert_match "delivered over TLS (despite a TLSA record that matches nothing)" \
    "$(json_get "$MAIL.json" tls.version)" '^TLSv1\.[23]$'
assert_eq "sent from mxguard's source address" "127.0.70.1" \
    "$(json_get "$MAIL.json" peer | sed 's/:[0-9]*$//')"

# the message, parsed with Python's email module
"$PYTHON" - "$MAIL.eml" "$TB/rpt-mail.json" "$DAY" "$SUBMITTER" >"$TB/mime.out" 2>&1 <<'PY'
import email, email.policy, gzip, json, re, sys, calendar, time
raw = open(sys.argv[1], "rb").read()
want = json.load(open(sys.argv[2]))
day, sub = sys.argv[3], sys.argv[4]
m = email.message_from_bytes(raw, policy=email.policy.default)
def out(k, v):
    print("%s=%s" % (k, v))
out("crlf", b"\n" not in raw.replace(b"\r\n", b""))
out("content_type", m.get_content_type())
out("report_type", m.get_param("report-type"))
out("from", m["From"])
out("to", m["To"])
out("subject", re.sub(r"\s+", " ", str(m["Subject"])))
out("tls_report_domain", m["TLS-Report-Domain"])
out("tls_report_submitter", m["TLS-Report-Submitter"])
out("mime_version", m["MIME-Version"])
out("has_date", m["Date"] is not None and m["Date"].datetime is not None)
out("has_message_id", bool(re.match(r"^<[^<>@\s]+@[^<>@\s]+>$", str(m["Message-ID"]))))
out("dkim_signature", "DKIM-Signature" in m)
parts = list(m.iter_parts())
out("parts", ",".join(p.get_content_type() for p in parts))
att = [p for p in parts if p.get_content_type() == "application/tlsrpt+gzip"]
if att:
    a = att[0]
    out("cte", a["Content-Transfer-Encoding"])
    out("disposition", a.get_content_disposition())
    begin = calendar.timegm(time.strptime(day, "%Y-%m-%d"))
    out("filename_ok", a.get_filename() == "%s!%s!%d!%d.json.gz" % (sub, "rpt-mail.test", begin, begin + 86399))
    out("filename", a.get_filename())
    j = json.loads(gzip.decompress(a.get_payload(decode=True)))
    out("json_equal", j == want)
    out("report_id", j["report-id"])
text = [p for p in parts if p.get_content_type() == "text/plain"]
out("text_mentions_domain", bool(text) and "rpt-mail.test" in text[0].get_content())
PY
echo "# MIME: $(tr '\n' ' ' <"$TB/mime.out")"
mf() { sed -n "s/^$1=//p" "$TB/mime.out"; }
RID=$(mf report_id)
assert_eq "CRLF line ends only" True "$(mf crlf)"
assert_eq "Content-Type multipart/report" multipart/report "$(mf content_type)"
assert_eq "report-type=tlsrpt" tlsrpt "$(mf report_type)"
assert_eq "From" "noreply-smtp-tls-reporting@$SUBMITTER" "$(mf from)"
assert_eq "To" "tlsrpt@rpt-inbox.test" "$(mf to)"
assert_eq "Subject (RFC 8460 §5.3)" "Report Domain: rpt-mail.test Submitter: $SUBMITTER Report-ID: <$RID>" "$(mf subject)"
assert_match "report-id names day and domain" "$RID" "^$DAY\\.rpt-mail\\.test\\..+@rpt-sender\\.test\$"
assert_eq "TLS-Report-Domain" rpt-mail.test "$(mf tls_report_domain)"
assert_eq "TLS-Report-Submitter" "$SUBMITTER" "$(mf tls_report_submitter)"
assert_eq "MIME-Version" 1.0 "$(mf mime_version)"
assert_eq "Date parses" True "$(mf has_date)"
assert_eq "Message-ID" True "$(mf has_message_id)"
assert_eq "DKIM-Signature present" True "$(mf dkim_signature)"
assert_eq "parts: text/plain, application/tlsrpt+gzip" "text/plain,application/tlsrpt+gzip" "$(mf parts)"
assert_eq "attachment: base64" base64 "$(mf cte)"
assert_eq "attachment: Content-Disposition attachment" attachment "$(mf disposition)"
assert_eq "attachment: filename SUBMITTER!DOMAIN!BEGIN!END.json.gz ($(mf filename))" True "$(mf filename_ok)"
assert_eq "attachment: the gunzipped JSON is report show's" True "$(mf json_equal)"
assert_eq "text part names the policy domain" True "$(mf text_mentions_domain)"

# ------------------------------------------------------------------ DKIM, verified by opendkim
# libopendkim resolves the key with the system resolver (port 53 only): a second nsd on
# 127.0.70.53:53 serving the same signed zones, and /etc/resolv.conf replaced in a private
# mount namespace for opendkim-testmsg alone.
sed -e 's/@5300$/@53/' -e 's/port: 5300/port: 53/' \
    -e 's#/nsd\.\(pid\|zonelist\|xfrd\.state\|log\)"#/nsd53.\1"#' "$TB/dns/nsd.conf" >"$TB/nsd53.conf"
tb_spawn nsd53 nsd -d -c "$TB/nsd53.conf"
for i in $(seq 100); do
    [ -n "$(dig @127.0.70.53 -p 53 +short +time=1 +tries=1 +norec . SOA 2>/dev/null)" ] && break
    sleep 0.1
done
echo "nameserver 127.0.70.53" >"$TB/resolv.conf"
dkim_verify() { # dkim_verify FILE — opendkim-testmsg's verdict: prints its output, returns its status
    unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && opendkim-testmsg <"$2"' sh \
        "$TB/resolv.conf" "$1" 2>&1
}
assert_match "the DKIM key is published" \
    "$(dig @127.0.70.53 -p 53 +short tlsrpt2024._domainkey.$SUBMITTER TXT | tr -d '" ')" '^v=DKIM1;k=rsa;p=MII'
out=$(dkim_verify "$MAIL.eml")
rc=$?
assert_eq "opendkim-testmsg verifies the signature (output: ${out:-none})" 0 "$rc"
# altered copies must fail: a header the signature covers, and the body
sed 's/^TLS-Report-Domain: rpt-mail.test/TLS-Report-Domain: rpt-fail.test/' "$MAIL.eml" >"$TB/alt1.eml"
out=$(dkim_verify "$TB/alt1.eml")
rc=$?
assert_eq "altered TLS-Report-Domain: verification fails ($out)" 1 "$((rc != 0))"
sed 's/^This is an aggregate TLS report/This is an aggregated TLS report/' "$MAIL.eml" >"$TB/alt2.eml"
out=$(dkim_verify "$TB/alt2.eml")
rc=$?
assert_eq "altered body: verification fails ($out)" 1 "$((rc != 0))"
assert_eq "(the alterations changed the files)" 1 \
    "$( (cmp -s "$MAIL.eml" "$TB/alt1.eml" || cmp -s "$MAIL.eml" "$TB/alt2.eml") && echo 0 || echo 1)"

# ------------------------------------------------------------------ no TLSRPT result for it
report_cmd list "$CONF" list
assert_eq "report list exits 0" 0 "$RC"
assert_file_grep "report list: rpt-mail.test counted" "$TB/list.out" "^$DAY rpt-mail\\.test\$"
assert_eq "rpt-inbox.test's report is unchanged by the report mail (records nothing)" \
    "$(cat "$TB/rpt-inbox.json")" \
    "$(timeout 30 "$MXG_BIN" report show "$DAY" rpt-inbox.test -c "$CONF" 2>/dev/null </dev/null 9>&-)"
assert_eq "the report's counts are unchanged by the report mail" "$(cat "$TB/rpt-mail.json")" \
    "$(timeout 30 "$MXG_BIN" report show "$DAY" rpt-mail.test -c "$CONF" 2>/dev/null </dev/null 9>&-)"

# ------------------------------------------------------------------ second round
sleep 1.2 # > retry_backoff (the explicit send does not wait for it anyway)
report_cmd send2 "$CONF" send "$DAY"
assert_contains "round 2: the 451 destination given up, the rest already done" \
    "$(cat "$TB/send2.out")" "sent 0, to retry 0, given up 1, skipped 0, already done 2"
assert_log "round 2: give-up log line" 0 \
    "report $DAY rpt-fail\.test to mailto:tempfail@rpt-inbox\.test: 451 .*giving up after 2 attempts" send2
assert_file_count "$TB/spool/rpt-inbox" 1 "mx.rpt-inbox.test: still one report mail (sent once)"
assert_eq "RCPT attempts for tempfail@: 2" 2 "$(grep -c '< RCPT TO:<tempfail@rpt-inbox.test>' "$TB/rpt-inbox.log")"
assert_eq "RCPT attempts for reject@: 1" 1 "$(grep -c '< RCPT TO:<reject@rpt-inbox.test>' "$TB/rpt-inbox.log")"

tb_finish
