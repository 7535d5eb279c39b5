#!/usr/bin/env bash
# t_legs.sh — one transaction, many destination domains (docs/ARCHITECTURE.md §Legs): parallel
# upstream legs, RCPT replies in order under PIPELINING, the legs limit and
# multi_domain = defer, a mixed end of DATA (one MX accepts, one fails temporarily, one
# permanently: 250 to the client, the temporary one delivered from the spool later, a DSN
# for the permanent one at the bounce route), and Postfix as the legacy MTA sending one
# multi-domain message without smtp_destination_recipient_limit = 1.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12 --fault-file "$TB/mx2.fault"
tb_start_mx dane-ee 127.0.70.21
tb_start_mx legacy 127.0.70.16
MX1=$TB/spool/mx1
MX2=$TB/spool/mx2
DANE=$TB/spool/dane-ee
LEGACY=$TB/spool/legacy
SPOOL=$TB/state/spool

QUEUE='queue: { retry_backoff = "1s"; retry_backoff_max = "2s"; scan_interval = "1s"; bounce_route = "[127.0.70.16]:2525"; };'
tb_write_config "$QUEUE"
tb_start_mxguard

spool_entries() { find "$SPOOL" -maxdepth 1 -name '*.env' 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- 1. fan-out to three domains
swaks_send fan --to a@example.test,b@example.test,c@other.test,d@dane-ee.test \
    --h-Subject "three domains"
assert_eq "all four RCPTs accepted" "250 250 250 250" "$SW_RCPTS"
assert_match "client got 250 for the dot" "$SW_DOT" '^250 2\.0\.0 .*3 domains'
wait_spool_count "$MX1" 1 10
wait_spool_count "$MX2" 1 10
wait_spool_count "$DANE" 1 10
assert_file_count "$MX1" 1 "example.test: one copy at mx1"
assert_file_count "$MX2" 1 "other.test: one copy at mx2"
assert_file_count "$DANE" 1 "dane-ee.test: one copy at its MX"
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "mx1 copy carries both example.test recipients" \
    '["a@example.test", "b@example.test"]' "$(json_get "$m.json" rcpts)"
m=$(spool_last "$MX2")
[ -n "$m" ] && assert_eq "mx2 copy: other.test recipient only" '["c@other.test"]' \
    "$(json_get "$m.json" rcpts)"
m=$(spool_last "$DANE")
if [ -n "$m" ]; then
    assert_eq "dane-ee copy: its recipient only" '["d@dane-ee.test"]' "$(json_get "$m.json" rcpts)"
    assert_match "dane-ee leg used TLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
    assert_file_grep "the subject arrived" "$m.eml" '^Subject: three domains'
fi
assert_log "the DANE leg was verified by DANE" 0 'domain=dane-ee\.test .*DANE'
assert_log "one summary line for the three domains" 0 '3 domains, client got "250'
assert_eq "nothing left in the spool after a full success" 0 "$(spool_entries)"

# ---------------------------------------------------------------- 2. pipelined RCPTs, in order
"$PYTHON" - "$TB_MXG_IP" "$TB_MXG_PORT" "$TB_CLIENT_IP" >"$TB/pipe.out" 2>&1 <<'PY'
import socket, sys
ip, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((ip, port), timeout=30, source_address=(src, 0))
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline().decode().rstrip("\r\n")
        lines.append(l)
        if len(l) < 4 or l[3] != "-":
            return lines
reply()
s.sendall(b"EHLO client.test\r\n"); reply()
s.sendall(b"MAIL FROM:<p@client.test>\r\n"
          b"RCPT TO:<reject1@example.test>\r\n"   # mx1 says 550
          b"RCPT TO:<x@other.test>\r\n"           # mx2: 250
          b"RCPT TO:<y@nosuch.test>\r\n"          # NXDOMAIN: 550 5.1.2
          b"RCPT TO:<tempfail1@dane-ee.test>\r\n" # 451 from the DANE MX
          b"RCPT TO:<z@example.test>\r\n"         # mx1: 250
          b"DATA\r\n")
for what in ("MAIL", "RCPT1", "RCPT2", "RCPT3", "RCPT4", "RCPT5", "DATA"):
    print(what, reply()[-1])
s.sendall(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
print("DOT", reply()[-1])
print("QUIT", reply()[-1])
PY
cat "$TB/pipe.out" | sed 's/^/# /'
pr() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$TB/pipe.out"; }
assert_match "pipelined: MAIL 250" "$(pr MAIL)" '^250 '
assert_match "pipelined: RCPT 1 (reject at mx1) 550, in order" "$(pr RCPT1)" '^550 5\.1\.1 .*reject1@example\.test'
assert_match "pipelined: RCPT 2 (other.test) 250" "$(pr RCPT2)" '^250 '
assert_match "pipelined: RCPT 3 (no such domain) 550 5.1.2" "$(pr RCPT3)" '^550 5\.1\.2 '
assert_match "pipelined: RCPT 4 (tempfail at the DANE MX) 451" "$(pr RCPT4)" '^451 4\.3\.0 .*tempfail1@dane-ee\.test'
assert_match "pipelined: RCPT 5 (example.test) 250" "$(pr RCPT5)" '^250 '
assert_match "pipelined: DATA 354" "$(pr DATA)" '^354 '
assert_match "pipelined: the dot 250 (two domains)" "$(pr DOT)" '^250 2\.0\.0 .*2 domains'
assert_match "pipelined: QUIT 221" "$(pr QUIT)" '^221 '
wait_spool_count "$MX1" 2 10
wait_spool_count "$MX2" 2 10
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "mx1 got the pipelined message for z only" '["z@example.test"]' \
    "$(json_get "$m.json" rcpts)"
m=$(spool_last "$MX2")
[ -n "$m" ] && assert_eq "mx2 got the pipelined message for x" '["x@other.test"]' \
    "$(json_get "$m.json" rcpts)"
assert_file_count "$DANE" 1 "the DANE MX got nothing new (its only RCPT was refused)"

# ---------------------------------------------------------------- 3. mixed end of DATA
echo "dot close once" >"$TB/mx2.fault"   # mx2 drops the first delivery after the dot
n1=$(spool_count "$MX1"); n2=$(spool_count "$MX2"); nl=$(spool_count "$LEGACY")
swaks_send mixed --to ok@example.test,later@other.test,rejectdata@dane-ee.test \
    --h-Subject "mixed outcome" --h-Message-Id "<mixed.1@client.test>"
assert_eq "mixed: three RCPTs accepted" "250 250 250" "$SW_RCPTS"
assert_match "mixed: client got 250 (the rest is stored)" "$SW_DOT" '^250 2\.0\.0 .*queued as'
assert_eq "mixed: mx1 delivered at once" $((n1 + 1)) "$(spool_count "$MX1")"
assert_log "mixed: the failed domains were stored" 0 'failed; stored as'
# the temporarily failed recipient is retried from the spool and arrives once
wait_spool_count "$MX2" $((n2 + 1)) 15
assert_eq "mixed: other.test arrived from the spool, exactly once" $((n2 + 1)) "$(spool_count "$MX2")"
m=$(spool_last "$MX2")
if [ -n "$m" ]; then
    assert_eq "spool delivery: recipient" '["later@other.test"]' "$(json_get "$m.json" rcpts)"
    assert_eq "spool delivery: sender kept" "sender@client.test" "$(json_get "$m.json" mail_from)"
    assert_file_grep "spool delivery: the message itself" "$m.eml" '^Subject: mixed outcome'
    assert_eq "spool delivery: one mxguard Received: header" 1 \
        "$(grep -ac '^Received: from client.test' "$m.eml")"
fi
# the permanent failure produced a DSN at the bounce route
wait_spool_count "$LEGACY" $((nl + 1)) 15
assert_eq "mixed: one DSN at the bounce route" $((nl + 1)) "$(spool_count "$LEGACY")"
m=$(spool_last "$LEGACY")
if [ -n "$m" ]; then
    assert_eq "DSN: null sender" "" "$(json_get "$m.json" mail_from)"
    assert_eq "DSN: to the original sender" '["sender@client.test"]' "$(json_get "$m.json" rcpts)"
    dsn=$("$PYTHON" - "$m.eml" <<'PY'
import email, sys
from email import policy
msg = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=policy.compat32)
out = [msg.get_content_type(), msg.get_param("report-type") or "-"]
parts = msg.get_payload() if msg.is_multipart() else []
out.append(",".join(p.get_content_type() for p in parts))
for p in parts:
    if p.get_content_type() == "message/delivery-status":
        blocks = p.get_payload()
        rec = blocks[1] if len(blocks) > 1 else None
        if rec is not None:
            out += [rec.get("Final-Recipient", "-"), rec.get("Action", "-"), rec.get("Status", "-")]
print("|".join(out))
PY
)
    echo "# DSN: $dsn"
    assert_match "DSN: multipart/report; report-type=delivery-status" "$dsn" '^multipart/report\|delivery-status\|'
    assert_match "DSN: text, delivery-status and the returned headers" "$dsn" 'text/plain,message/delivery-status,(text/rfc822-headers|message/rfc822)'
    assert_match "DSN: Final-Recipient, Action failed, Status 5.6.0" "$dsn" 'rfc822; ?rejectdata@dane-ee\.test\|failed\|5\.6\.0'
    assert_file_grep "DSN: names the original message" "$m.eml" 'mixed\.1@client\.test'
fi
for i in $(seq 50); do [ "$(spool_entries)" -eq 0 ] && break; sleep 0.2; done
assert_eq "mixed: spool empty once everything is settled" 0 "$(spool_entries)"

# ---------------------------------------------------------------- 4. limits.legs and defer
tb_stop mxguard
tb_write_config "$QUEUE" 'limits: { legs = 2; };'
tb_start_mxguard
swaks_send legs2 --to a@example.test,b@other.test,c@dane-ee.test
assert_match "legs = 2: the third domain gets 452 4.5.3" "$(sw_reply legs2 RCPT 3)" '^452 4\.5\.3 '
assert_match "legs = 2: the first two delivered" "$SW_DOT" '^250 .*2 domains'
tb_stop mxguard
tb_write_config "$QUEUE"
sed -i 's/hostname = "mxguard.test";/hostname = "mxguard.test";\n  multi_domain = "defer";/' "$TB/mxguard.conf"
tb_start_mxguard
swaks_send defer --to a@example.test,b@other.test
assert_match "multi_domain = defer: second domain 452 4.5.3" "$SW_RCPT2" '^452 4\.5\.3 '
assert_match "multi_domain = defer: the first domain delivered" "$SW_DOT" '^250 '
tb_stop mxguard

# ---------------------------------------------------------------- 5. a full spool
# A 256 KiB tmpfs as the spool: a two-domain message of 600 KB cannot be stored while it
# streams, so both legs are aborted before the dot and the client gets 452 4.3.1; the same
# on a queue-mode listener; a small message still goes through both.
if tb_mount_tmpfs "$SPOOL" 256k; then
    tb_write_config "$QUEUE"
    sed -i "s/hostname = \"mxguard.test\";/hostname = \"mxguard.test\";\n  queue_listen = [\"$TB_MXG_IP:10026\"];/" "$TB/mxguard.conf"
    tb_start_mxguard
    n1=$(spool_count "$MX1"); n2=$(spool_count "$MX2")
    tb_make_message huge --to a@example.test --subject "too big for the spool" --id huge-1 --size 600000
    swaks_send full --to a@example.test,b@other.test --no-data-fixup --data "@$TB/huge.wire"
    assert_eq "full spool: both RCPTs accepted" "250 250" "$SW_RCPTS"
    assert_match "full spool: 452 4.3.1 at the end of DATA" "$SW_DOT" '^452 4\.3\.1 '
    sleep 1
    assert_eq "full spool: mx1 got nothing (leg aborted before the dot)" "$n1" "$(spool_count "$MX1")"
    assert_eq "full spool: mx2 got nothing" "$n2" "$(spool_count "$MX2")"
    assert_eq "full spool: no entry left behind" 0 "$(spool_entries)"
    SW_SERVER=$TB_MXG_IP:10026 swaks_send qfull --to a@example.test --no-data-fixup --data "@$TB/huge.wire"
    assert_match "full spool, queue mode: 452 4.3.1" "$SW_DOT" '^452 4\.3\.1 '
    SW_SERVER=$TB_MXG_IP:10026 swaks_send qsmall --to q@example.test --h-Subject "queued small"
    assert_match "queue mode: a small message is queued" "$SW_DOT" '^250 2\.0\.0 Ok: queued as '
    wait_spool_count "$MX1" $((n1 + 1)) 10
    m=$(spool_last "$MX1")
    [ -n "$m" ] && assert_eq "queue mode: delivered from the spool" '["q@example.test"]' \
        "$(json_get "$m.json" rcpts)"
    swaks_send small2 --to s@example.test,t@other.test --h-Subject "small two-domain"
    assert_match "full spool: a small two-domain message still goes through" "$SW_DOT" '^250 '
    tb_stop mxguard
    umount -l "$SPOOL"
else
    echo "# skipped the full-spool scenario: cannot mount a tmpfs here"
fi

# ---------------------------------------------------------------- 6. Postfix in front
tb_write_config "$QUEUE"
tb_start_mxguard
TB_PF_RCPT_LIMIT=50 tb_start_postfix
n1=$(spool_count "$MX1"); n2=$(spool_count "$MX2"); nd=$(spool_count "$DANE")
SW_SERVER=$TB_PF_IP:$TB_PF_PORT swaks_send pf --to p1@example.test,p2@example.test,p3@other.test,p4@dane-ee.test \
    --h-Subject "via postfix, three domains"
assert_reply "Postfix accepted the message" "$SW_DOT" "250"
t0=$(date +%s)
wait_spool_count "$MX1" $((n1 + 1)) 20
wait_spool_count "$MX2" $((n2 + 1)) 20
wait_spool_count "$DANE" $((nd + 1)) 20
t1=$(date +%s)
assert_eq "Postfix: one copy at mx1" $((n1 + 1)) "$(spool_count "$MX1")"
assert_eq "Postfix: one copy at mx2" $((n2 + 1)) "$(spool_count "$MX2")"
assert_eq "Postfix: one copy at the DANE MX" $((nd + 1)) "$(spool_count "$DANE")"
assert_match "Postfix: all three within seconds ($((t1 - t0)) s)" "$((t1 - t0))" '^[0-9]$'
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "Postfix: mx1 copy has both example.test recipients" \
    '["p1@example.test", "p2@example.test"]' "$(json_get "$m.json" rcpts)"
sleep 1
assert_eq "Postfix: 4 recipients sent via mxguard" 4 \
    "$(grep -c 'relay=127\.0\.70\.1\[127\.0\.70\.1\]:10025.*status=sent' "$TB/postfix/maillog" 2>/dev/null)"
assert_eq "Postfix: no deferral" 0 "$(grep -c 'status=deferred' "$TB/postfix/maillog" 2>/dev/null)"
tb_stop_postfix
tb_finish
