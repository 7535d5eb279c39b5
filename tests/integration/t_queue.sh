#!/usr/bin/env bash
# t_queue.sh — the spool's queue runner and queue mode (docs/ARCHITECTURE.md §Spool): a queue-mode
# listener answers 250 while the MX is down and the message arrives exactly once when it is back; a
# message past queue.lifetime bounces to queue.bounce_route as an RFC 3464 DSN (parsed with
# Python's email module: structure, per-message and per-recipient fields, headers vs RET=FULL,
# ENVID/ORCPT); NOTIFY=NEVER and the null sender get none; a bounce the bounce route refuses is
# dropped (never a DSN about a DSN); kill -9 between spooling and delivery → delivered exactly once
# after the restart; kill -9 while a body streams → the leftover is removed at start; `mxguard
# queue list|show|flush|delete` (flush signals the daemon).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx legacy 127.0.70.16 # the legacy MTA: queue.bounce_route
tb_start_mx mx1 127.0.70.11    # example.test (MX 10; MX 20 is mx2)
MX2=$TB/spool/mx2              # other.test -> mx2.example.test only
LEGACY=$TB/spool/legacy
SPOOL=$TB/state/spool
QPORT=10026
CONF=$TB/mxguard.conf

# write_cfg LIFETIME BACKOFF SCAN — queue mode on $TB_MXG_IP:$QPORT, bounces to the legacy MX
write_cfg() {
    tb_write_config "queue: { lifetime = \"$1\"; retry_backoff = \"$2\"; retry_backoff_max = \"$2\"; scan_interval = \"$3\"; bounce_route = \"[127.0.70.16]:2525\"; };"
    sed -i "s/hostname = \"mxguard.test\";/hostname = \"mxguard.test\";\n  queue_listen = [\"$TB_MXG_IP:$QPORT\"];/" "$CONF"
}
qsend() { SW_SERVER=$TB_MXG_IP:$QPORT swaks_send "$@"; }
spool_entries() { find "$SPOOL" -maxdepth 1 -name '*.env' 2>/dev/null | wc -l; }
wait_spool_empty() {
    local i
    for i in $(seq $((${1:-10} * 10))); do [ "$(spool_entries)" -eq 0 ] && return 0; sleep 0.1; done
    return 1
}
wait_log() { # wait_log SECONDS ERE — until the mxguard log has a line matching ERE
    local i
    for i in $(seq $(($1 * 10))); do grep -Eq "$2" "$TB/mxguard.log" && return 0; sleep 0.1; done
    return 1
}
queue_id() { sed -n 's/.*queued as \([0-9A-Za-z-]*\).*/\1/p' <<<"$1"; }
mxq() { # mxq NAME ARGS... — `mxguard queue ARGS -c CONF`; output in $TB/NAME.q, status in Q_RC
    local name=$1; shift
    "$MXG_BIN" queue "$@" -c "$CONF" >"$TB/$name.q" 2>&1 </dev/null 9>&-
    Q_RC=$?
    Q_OUT=$(cat "$TB/$name.q")
    echo "# mxguard queue $* -> exit $Q_RC"
    sed 's/^/#   /' "$TB/$name.q" | head -n 20
}
# dsn_parse EML — the DSN's structure as KEY=VALUE lines (Python's email module)
dsn_parse() {
    "$PYTHON" - "$1" <<'PY'
import email, sys
from email import policy
msg = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=policy.compat32)
print("type=%s" % msg.get_content_type())
print("report-type=%s" % msg.get_param("report-type"))
for h in ("From", "To", "Subject", "Auto-Submitted", "MIME-Version"):
    print("%s=%s" % (h, msg.get(h, "-")))
print("defects=%d" % sum(len(p.defects) for p in msg.walk()))
parts = msg.get_payload() if msg.is_multipart() else []
print("parts=%s" % ",".join(p.get_content_type() for p in parts))
for p in parts:
    if p.get_content_type() == "message/delivery-status":
        blocks = p.get_payload()
        for k in ("Reporting-MTA", "Original-Envelope-Id", "Arrival-Date"):
            print("msg.%s=%s" % (k, blocks[0].get(k, "-")))
        print("recipients=%d" % (len(blocks) - 1))
        for k in ("Original-Recipient", "Final-Recipient", "Action", "Status", "Remote-MTA",
                  "Diagnostic-Code", "Last-Attempt-Date"):
            print("rcpt.%s=%s" % (k, blocks[1].get(k, "-") if len(blocks) > 1 else "-"))
    elif p.get_content_type() == "text/rfc822-headers":
        print("returned.message-id=%s" % email.message_from_string(p.get_payload()).get("Message-Id", "-"))
        print("returned.has-body=%d" % ("BODYLINE" in p.get_payload()))
    elif p.get_content_type() == "message/rfc822":
        inner = p.get_payload()[0]
        print("returned.message-id=%s" % inner.get("Message-Id", "-"))
        print("returned.has-body=%d" % ("BODYLINE" in inner.get_payload()))
PY
}
dv() { sed -n "s/^$1=//p" "$2" | head -n 1; }

# ------------------------------------------------------------------ 1. MX down, then back
write_cfg 1h 1s 1s
tb_start_mxguard
qsend down --to q1@other.test --h-Subject "while the MX was down" --body "BODYLINE"
assert_match "queue mode: 250 while the MX is down" "$SW_DOT" '^250 2\.0\.0 .*queued as '
ID1=$(queue_id "$SW_DOT")
assert_match "queue mode: an entry ID in the reply" "$ID1" '^[0-9]{13}-[0-9A-F]{4}-[0-9]+$'
wait_log 10 "$ID1: attempt 1: .*domain=other\.test .*reply=\"451 4\.4\.1" ||
    fail "no first attempt logged"
assert_log "first attempt: 451 4.4.1 (connection refused), one log line" 0 \
    "$ID1: attempt 1: from=<sender@client\.test> domain=other\.test rcpts=<q1@other\.test> accepted=0/1 reply=\"451 4\.4\.1"
assert_log "the deferral is logged with the next attempt" 0 "$ID1: 1 recipient\(s\) deferred, next attempt in"
assert_eq "the entry is in the spool" 1 "$(spool_entries)"
mxq list1 list
assert_eq "queue list: exit 0" 0 "$Q_RC"
assert_match "queue list: the entry with its recipient's state and last reply" "$Q_OUT" \
    "$ID1 message age=[0-9]+s size=[0-9]+ from=<sender@client\.test> attempts=[0-9]+ next=(now|in [0-9a-z]+) \| <q1@other\.test> pending \"451 4\.4\.1"
sleep 2
assert_eq "not delivered while the MX is down" 0 "$(spool_count "$MX2")"
tb_start_mx mx2 127.0.70.12
wait_spool_count "$MX2" 1 15
assert_eq "delivered once the MX is back" 1 "$(spool_count "$MX2")"
wait_spool_empty 10
assert_eq "the spool is empty after the delivery" 0 "$(spool_entries)"
m=$(spool_last "$MX2")
if [ -n "$m" ]; then
    assert_eq "the recipient" '["q1@other.test"]' "$(json_get "$m.json" rcpts)"
    assert_eq "the sender" "sender@client.test" "$(json_get "$m.json" mail_from)"
    assert_file_grep "the message itself" "$m.eml" '^Subject: while the MX was down'
    assert_eq "one Received: header of ours" 1 "$(grep -ac '^Received: from client.test' "$m.eml")"
fi
assert_log "the delivery is logged" 0 "$ID1: <q1@other\.test> delivered: 250"
sleep 3
assert_eq "exactly once (no second copy after more scans)" 1 "$(spool_count "$MX2")"

# ------------------------------------------------------------------ 2. two domains at once
qsend two --to a@other.test,b@example.test --h-Subject "two domains"
assert_match "queue mode: 250 for two domains" "$SW_DOT" '^250 '
wait_spool_count "$MX2" 2 10
wait_spool_count "$TB/spool/mx1" 1 10
assert_eq "other.test copy" 2 "$(spool_count "$MX2")"
assert_eq "example.test copy" 1 "$(spool_count "$TB/spool/mx1")"
wait_spool_empty 10
assert_eq "spool empty" 0 "$(spool_entries)"

# ------------------------------------------------------------------ 3. lifetime: the bounce
tb_stop mxguard
tb_stop mx2
write_cfg 3s 1s 1s
tb_start_mxguard
nl=$(spool_count "$LEGACY")
qsend exp --to late@other.test --h-Subject "too late" --h-Message-Id "<exp.1@client.test>" --body "BODYLINE"
assert_match "lifetime: 250 first" "$SW_DOT" '^250 '
IDE=$(queue_id "$SW_DOT")
wait_spool_count "$LEGACY" $((nl + 1)) 20
assert_eq "lifetime: one DSN at the bounce route" $((nl + 1)) "$(spool_count "$LEGACY")"
assert_log "lifetime: the expiry is logged" 0 "$IDE: <late@other\.test> failed \(delivery time expired\): 451 4\.4\.1.*bounce queued as"
m=$(spool_last "$LEGACY")
if [ -n "$m" ]; then
    assert_eq "DSN: MAIL FROM <>" "" "$(json_get "$m.json" mail_from)"
    assert_eq "DSN: to the original sender" '["sender@client.test"]' "$(json_get "$m.json" rcpts)"
    dsn_parse "$m.eml" >"$TB/dsn1.txt"
    sed 's/^/# /' "$TB/dsn1.txt"
    assert_eq "DSN: multipart/report" "multipart/report" "$(dv type "$TB/dsn1.txt")"
    assert_eq "DSN: report-type=delivery-status" "delivery-status" "$(dv report-type "$TB/dsn1.txt")"
    assert_eq "DSN: no MIME defects" 0 "$(dv defects "$TB/dsn1.txt")"
    assert_eq "DSN: text, delivery-status, headers" "text/plain,message/delivery-status,text/rfc822-headers" \
        "$(dv parts "$TB/dsn1.txt")"
    assert_match "DSN: From MAILER-DAEMON@ our host" "$(dv From "$TB/dsn1.txt")" '^MAILER-DAEMON@mxguard\.test'
    assert_eq "DSN: To the sender" "<sender@client.test>" "$(dv To "$TB/dsn1.txt")"
    assert_eq "DSN: Subject" "Undelivered Mail Returned to Sender" "$(dv Subject "$TB/dsn1.txt")"
    assert_eq "DSN: Auto-Submitted" "auto-replied" "$(dv Auto-Submitted "$TB/dsn1.txt")"
    assert_eq "DSN: Reporting-MTA" "dns; mxguard.test" "$(dv msg.Reporting-MTA "$TB/dsn1.txt")"
    assert_match "DSN: Arrival-Date" "$(dv msg.Arrival-Date "$TB/dsn1.txt")" '^[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} 20[0-9]{2} '
    assert_eq "DSN: no ENVID given, no Original-Envelope-Id" "-" "$(dv msg.Original-Envelope-Id "$TB/dsn1.txt")"
    assert_eq "DSN: one recipient block" 1 "$(dv recipients "$TB/dsn1.txt")"
    assert_eq "DSN: Final-Recipient" "rfc822; late@other.test" "$(dv rcpt.Final-Recipient "$TB/dsn1.txt")"
    assert_eq "DSN: Action failed" "failed" "$(dv rcpt.Action "$TB/dsn1.txt")"
    assert_eq "DSN: Status 4.4.7 (delivery time expired)" "4.4.7" "$(dv rcpt.Status "$TB/dsn1.txt")"
    assert_match "DSN: Diagnostic-Code has the last error" "$(dv rcpt.Diagnostic-Code "$TB/dsn1.txt")" '; 451 4\.4\.1'
    assert_eq "DSN: the original's headers are returned" "<exp.1@client.test>" \
        "$(dv returned.message-id "$TB/dsn1.txt")"
    assert_eq "DSN: ... without its body (no RET)" 0 "$(dv returned.has-body "$TB/dsn1.txt")"
fi
wait_spool_empty 10
assert_eq "lifetime: spool empty (original bounced, DSN delivered)" 0 "$(spool_entries)"

# RET=FULL, ENVID, ORCPT; NOTIFY=NEVER; the null sender
printf 'From: sender@client.test\r\nTo: full@other.test\r\nSubject: return it all\r\nMessage-Id: <full.1@client.test>\r\n\r\nBODYLINE\r\n..a dotted line\r\n.\r\n' >"$TB/full.wire"
smtp_chat full --server "$TB_MXG_IP:$QPORT" "EHLO client.test" \
    "MAIL FROM:<sender@client.test> RET=FULL ENVID=QQ+2B42" \
    "RCPT TO:<full@other.test> NOTIFY=FAILURE ORCPT=rfc822;Full+2Bx@other.test" \
    "RCPT TO:<never@other.test> NOTIFY=NEVER" "DATA" "@$TB/full.wire" "QUIT"
assert_match "RET=FULL message queued" "$(chat_reply full DOT)" '^250 '
smtp_chat null --server "$TB_MXG_IP:$QPORT" "EHLO client.test" "MAIL FROM:<>" \
    "RCPT TO:<nullsender@other.test>" "DATA" "@$TB/full.wire" "QUIT"
assert_match "null-sender message queued" "$(chat_reply null DOT)" '^250 '
wait_spool_count "$LEGACY" $((nl + 2)) 20
sleep 3
assert_eq "exactly one more DSN (none for NOTIFY=NEVER, none for <>)" $((nl + 2)) "$(spool_count "$LEGACY")"
m=$(spool_last "$LEGACY")
if [ -n "$m" ]; then
    dsn_parse "$m.eml" >"$TB/dsn2.txt"
    sed 's/^/# /' "$TB/dsn2.txt"
    assert_eq "RET=FULL: message/rfc822 returned" "text/plain,message/delivery-status,message/rfc822" \
        "$(dv parts "$TB/dsn2.txt")"
    assert_eq "RET=FULL: with its body" 1 "$(dv returned.has-body "$TB/dsn2.txt")"
    assert_eq "RET=FULL: the original message" "<full.1@client.test>" "$(dv returned.message-id "$TB/dsn2.txt")"
    assert_eq "ENVID decoded into Original-Envelope-Id" "QQ+42" "$(dv msg.Original-Envelope-Id "$TB/dsn2.txt")"
    assert_eq "only the NOTIFY=FAILURE recipient is reported" 1 "$(dv recipients "$TB/dsn2.txt")"
    assert_eq "ORCPT decoded into Original-Recipient" "rfc822;Full+x@other.test" \
        "$(dv rcpt.Original-Recipient "$TB/dsn2.txt")"
    assert_eq "the DSN's body is intact (no MIME defects)" 0 "$(dv defects "$TB/dsn2.txt")"
fi
assert_log "null sender: no bounce" 0 "<nullsender@other\.test> failed \(delivery time expired\).*no bounce \(null sender\)"
assert_log "NOTIFY=NEVER: no bounce" 0 "<never@other\.test> failed \(delivery time expired\).*no bounce \(NOTIFY=NEVER\)"
assert_log "NOTIFY=FAILURE: the bounce" 0 "<full@other\.test> failed \(delivery time expired\).*bounce queued as"
wait_spool_empty 10
assert_eq "spool empty" 0 "$(spool_entries)"

# a permanent failure whose bounce the bounce route refuses: dropped, never a DSN about a DSN
tb_start_mx mx2 127.0.70.12
nl=$(spool_count "$LEGACY")
SW_FROM=rejectsender@client.test qsend bb --to reject1@other.test
assert_match "bounce-of-bounce case queued" "$SW_DOT" '^250 '
wait_log 15 "bounce to <rejectsender@client\.test> dropped" || fail "the refused bounce was not dropped"
assert_log "the recipient failed permanently at RCPT" 0 "<reject1@other\.test> failed: 550 5\.1\.1"
assert_log "the refused bounce is dropped with a log line" 0 "bounce to <rejectsender@client\.test> dropped: 550 5\.1\.1"
wait_spool_empty 10
sleep 2
assert_eq "nothing reached the bounce route" "$nl" "$(spool_count "$LEGACY")"
assert_eq "no DSN about the DSN (spool empty)" 0 "$(spool_entries)"

# ------------------------------------------------------------------ 4. kill -9
tb_stop mxguard
tb_stop mx2
write_cfg 1h 1s 1s
tb_start_mxguard
n2=$(spool_count "$MX2")
qsend k9 --to crash@other.test --h-Subject "survives kill -9"
assert_match "kill -9: 250 first" "$SW_DOT" '^250 '
IDK=$(queue_id "$SW_DOT")
wait_log 10 "$IDK: attempt 1:" || fail "no attempt before the crash"
tb_signal mxguard KILL
sleep 0.5
assert_eq "kill -9: the entry survived" 1 "$(spool_entries)"
# a body that was still streaming when the process died
tb_start_mxguard
"$PYTHON" - "$TB_MXG_IP" "$QPORT" "$TB_CLIENT_IP" >"$TB/partial.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20, source_address=(sys.argv[3], 0))
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if len(l) < 4 or l[3:4] != b"-":
            return l
reply()
for c in (b"EHLO client.test", b"MAIL FROM:<sender@client.test>", b"RCPT TO:<half@other.test>", b"DATA"):
    s.sendall(c + b"\r\n"); print(reply().decode().strip(), flush=True)
s.sendall(b"Subject: half\r\n\r\n" + b"x" * 200000 + b"\r\n")
print("SENT", flush=True)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
PY
for i in $(seq 50); do grep -q SENT "$TB/partial.out" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
nmsg=$(find "$SPOOL" -maxdepth 1 -name '*.msg' | wc -l)
assert_eq "a body is being written (one entry + one streaming body)" 2 "$nmsg"
tb_signal mxguard KILL
sleep 0.5
tb_start_mx mx2 127.0.70.12
tb_start_mxguard # (a new log)
wait_spool_count "$MX2" $((n2 + 1)) 15
assert_eq "kill -9: delivered after the restart" $((n2 + 1)) "$(spool_count "$MX2")"
grep -q "removed 1 leftover" "$TB/mxguard.log" && pass "the streaming body's leftover was removed at start" ||
    fail "no 'removed 1 leftover' at start"
wait_spool_empty 10
assert_eq "kill -9: spool empty, no .msg left over" 0 "$(find "$SPOOL" -maxdepth 1 -name '*.msg' | wc -l)"
sleep 3
assert_eq "kill -9: exactly once" $((n2 + 1)) "$(spool_count "$MX2")"
assert_eq "kill -9: the half-sent message never arrived" 0 "$(grep -l 'half@other.test' "$MX2"/*.json 2>/dev/null | wc -l)"

# ------------------------------------------------------------------ 5. mxguard queue
tb_stop mxguard
tb_stop mx2
write_cfg 1h 1h 1h # nothing is retried unless flushed
tb_start_mxguard
n2=$(spool_count "$MX2")
qsend f1 --to flush1@other.test --h-Subject "flush me"
IDF=$(queue_id "$SW_DOT")
qsend f2 --to tempfail1@other.test --h-Subject "delete me"
IDD=$(queue_id "$SW_DOT")
wait_log 10 "$IDD: attempt 1:" || fail "no first attempt"
assert_eq "two entries" 2 "$(spool_entries)"
mxq list2 list
assert_eq "queue list: exit 0" 0 "$Q_RC"
assert_eq "queue list: two lines" 2 "$(grep -c ' message age=' "$TB/list2.q")"
assert_contains "queue list: first entry" "$Q_OUT" "$IDF message"
assert_contains "queue list: second entry" "$Q_OUT" "<tempfail1@other.test> pending"
assert_match "queue list: next attempt in about an hour" "$Q_OUT" "next=in (59m[0-9]+s|1h0m)"
mxq show show "$IDD"
assert_eq "queue show: exit 0" 0 "$Q_RC"
assert_contains "queue show: the envelope" "$Q_OUT" '"addr": "tempfail1@other.test"'
assert_contains "queue show: the state" "$Q_OUT" '"state": "pending"'
assert_contains "queue show: the message headers" "$Q_OUT" "Subject: delete me"
mxq shownx show 1700000000000-0000-1
assert_eq "queue show of a missing entry: exit 1" 1 "$Q_RC"
mxq showbad show ../../etc/passwd
assert_eq "queue show of a bad ID: exit 1" 1 "$Q_RC"
mxq usage frobnicate
assert_eq "queue with an unknown subcommand: exit 2" 2 "$Q_RC"
# delete
mxq del delete "$IDD"
assert_eq "queue delete: exit 0" 0 "$Q_RC"
assert_contains "queue delete: says so" "$Q_OUT" "deleted $IDD"
assert_contains "queue delete: logs who deleted what" "$Q_OUT" "$IDD deleted by uid"
assert_contains "queue delete: ... and the recipients" "$Q_OUT" "rcpts=<tempfail1@other.test>"
assert_eq "queue delete: gone from the spool" 0 "$(ls "$SPOOL" | grep -c "^$IDD\.")"
mxq del2 delete "$IDD"
assert_eq "queue delete of a deleted entry: exit 1" 1 "$Q_RC"
# flush
tb_start_mx mx2 127.0.70.12
sleep 2
assert_eq "not retried by itself (backoff 1h)" "$n2" "$(spool_count "$MX2")"
mark=$(tb_log_mark)
mxq flush flush
assert_eq "queue flush: exit 0" 0 "$Q_RC"
assert_contains "queue flush: one entry due" "$Q_OUT" "1 entry due now"
assert_match "queue flush: the daemon was signalled" "$Q_OUT" 'asked mxguard \(pid [0-9]+\) to scan'
wait_spool_count "$MX2" $((n2 + 1)) 10
assert_eq "queue flush: delivered at once" $((n2 + 1)) "$(spool_count "$MX2")"
assert_log "the daemon scanned on SIGUSR1" "$mark" "SIGUSR1: scanning the spool now"
wait_spool_empty 10
mxq list3 list
assert_eq "queue list: empty at the end" "" "$(grep ' age=' "$TB/list3.q")"
tb_stop mxguard
assert_eq "the pid file is removed at exit" 0 "$(ls "$TB/state/mxguard.pid" 2>/dev/null | wc -l)"
mxq flush2 flush
assert_contains "flush without a daemon: says it is not running" "$Q_OUT" "does not seem to run"
tb_finish
