#!/usr/bin/env bash
# t_reply_paths.sh — every path judges the MX's replies the same way (docs/ARCHITECTURE.md
# §Hostile peers).
#  - DATA's only success is 354 (RFC 5321 §4.3.2): an MX answering DATA with 250, 3xx or
#    5xx never gets the message counted as delivered — single domain (the client's reply),
#    two domains (a mixed end: the failed leg's recipient is spooled, not "delivered to 2
#    domains"), queue mode (the spool entry is kept with 451 4.5.0, not deleted); after such
#    a reply mxguard sends QUIT (the connection is not kept for reuse although the cache is
#    on). A 3xx to the final dot is no delivery either.
#  - a malformed reply line reaches the client as exactly the octets sent, made printable.
#  - BODY=8BITMIME with an 8-bit body to an MX without 8BITMIME: 554 5.6.3 live (no 8-bit
#    octet reaches that MX: its leg is aborted before the chunk; with a second domain the
#    transaction gets 250 and that recipient a DSN), and from the queue a DSN (5.6.3) with
#    nothing stored at the MX; SMTPUTF8 to an MX without it: 553
#    5.6.7 live, a DSN from the queue.
#  - NOTIFY=SUCCESS to an MX without DSN: the parameters are dropped and the sender gets a
#    "relayed" DSN (RFC 3461 §5.2.2), live and from the queue; none when the MX has DSN.
# The MX servers (mxserver.py) misbehave by recipient: datareplyNNN*, dotreplyNNN*,
# malformed*; mx2 (other.test) offers neither 8BITMIME, DSN nor SMTPUTF8.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx mx1 127.0.70.11
tb_start_mx mx2 127.0.70.12 --without 8BITMIME --without DSN --without SMTPUTF8
tb_start_mx legacy 127.0.70.16 # queue.bounce_route: where DSNs go
MX1=$TB/spool/mx1
MX2=$TB/spool/mx2
LEGACY=$TB/spool/legacy
SPOOL=$TB/state/spool
QPORT=10026

# a first attempt from the queue at once; retries much later (the kept entries stay put)
tb_write_config 'queue: { retry_backoff = "60s"; retry_backoff_max = "60s"; scan_interval = "1s"; bounce_route = "[127.0.70.16]:2525"; };'
sed -i "s/hostname = \"mxguard.test\";/hostname = \"mxguard.test\";\n  queue_listen = [\"$TB_MXG_IP:$QPORT\"];/" "$TB/mxguard.conf"
export MXGUARD_UPSTREAM_CACHE_IDLE=30s # connections are kept for reuse: a failed DATA must not be
tb_start_mxguard

qsend() { SW_SERVER=$TB_MXG_IP:$QPORT swaks_send "$@"; }
queue_id() { sed -n 's/.*queued as \([0-9A-Za-z-]*\).*/\1/p' <<<"$1"; }
# env_rcpt ID ADDR — "STATE LAST_REPLY" of a recipient of spool entry ID ("-" if none)
env_rcpt() {
    "$PYTHON" - "$SPOOL/$1.env" "$2" <<'PY'
import json, sys
try:
    env = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("-")
    sys.exit()
print(next(("%s %s" % (r["state"], r["last_reply"]) for r in env["rcpts"] if r["addr"] == sys.argv[2]), "-"))
PY
}
wait_log() { # wait_log SECONDS ERE
    local i
    for i in $(seq $(($1 * 10))); do grep -Eq -- "$2" "$TB/mxguard.log" && return 0; sleep 0.1; done
    return 1
}
# quits NAME — QUIT commands MX server NAME received so far
quits() { grep -c '< QUIT' "$TB/$1.log"; }
# dsn_field EML FIELD — a field of the first recipient block of a DSN (or a top-level header)
dsn_field() {
    "$PYTHON" - "$1" "$2" <<'PY'
import email, sys
msg = email.message_from_bytes(open(sys.argv[1], "rb").read())
f = sys.argv[2]
if f in ("Subject", "To", "From"):
    print(msg.get(f, "-"))
    sys.exit()
for p in msg.walk():
    if p.get_content_type() == "message/delivery-status":
        blocks = p.get_payload()
        print(blocks[1].get(f, "-") if len(blocks) > 1 else "-")
        sys.exit()
print("no delivery-status part")
PY
}

# ------------------------------------------------------------------ 1. single domain, live
q0=$(quits mx1)
swaks_send d250 --to datareply250@example.test
assert_reply "DATA answered 250: the client gets 451 4.5.0" "$SW_DATA" "451 4.5.0"
assert_contains "... naming the protocol violation" "$SW_DATA" 'answered DATA with "250 2.0.0'
assert_file_count "$MX1" 0 "DATA answered 250: mx1 stored nothing"
sleep 0.3
assert_eq "DATA answered 250: QUIT sent, the connection is not kept" $((q0 + 1)) "$(quits mx1)"

swaks_send d554 --to datareply554@example.test
assert_reply "DATA answered 554: the client gets the 554" "$SW_DATA" "554 5.0.0 DATA answered 554"
swaks_send d451 --to datareply451@example.test
assert_reply "DATA answered 451: the client gets the 451" "$SW_DATA" "451 4.0.0 DATA answered 451"
swaks_send d302 --to datareply302@example.test
assert_reply "DATA answered 302: 451 4.5.0" "$SW_DATA" "451 4.5.0"
sleep 0.3
assert_eq "QUIT after each refused DATA" $((q0 + 4)) "$(quits mx1)"

swaks_send dot354 --to dotreply354@example.test
assert_reply "final dot answered 354: the client gets 451 4.5.0, not the 354" "$SW_DOT" "451 4.5.0"
assert_contains "... naming the dot" "$SW_DOT" 'answered the final dot with "354'
assert_file_count "$MX1" 0 "mx1 still stored nothing"

# exactly the octets sent ("2x" 0x01), made printable, and nothing else
swaks_send malformed --to malformed@example.test
assert_eq "malformed RCPT reply: exactly the octets the MX sent, printable" \
    '451 4.5.0 mx1.example.test[127.0.70.11] sent a malformed reply: 2x\x01' "$SW_RCPT"

# ------------------------------------------------------------------ 2. two domains (legs)
swaks_send legs250 --to a@example.test,datareply250@other.test --h-Subject "legs 250"
assert_match "legs: the leg whose DATA got 250 is not delivered: its recipient is queued" \
    "$SW_DOT" '^250 2\.0\.0 Ok: delivered to 1 of 2 domains; the rest is queued as '
assert_not_contains "legs: never \"delivered to 2 domains\"" "$SW_DOT" "delivered to 2 domains"
ID=$(queue_id "$SW_DOT")
assert_file_count "$MX1" 1 "legs: example.test delivered"
assert_file_count "$MX2" 0 "legs: other.test stored nothing"
assert_match "legs: the spool entry keeps datareply250@other.test pending with 451 4.5.0" \
    "$(env_rcpt "$ID" datareply250@other.test)" '^pending 451 4\.5\.0 '
assert_match "legs: ... and a@example.test delivered" "$(env_rcpt "$ID" a@example.test)" '^delivered 250 '

nl=$(spool_count "$LEGACY")
swaks_send legs554 --to b@example.test,datareply554@other.test --h-Subject "legs 554"
assert_match "legs: DATA refused 554 on one leg: 250 for the other, the rest stored" \
    "$SW_DOT" '^250 2\.0\.0 Ok: delivered to 1 of 2 domains'
wait_spool_count "$LEGACY" $((nl + 1)) 15
m=$(spool_last "$LEGACY")
if [ -n "$m" ]; then
    assert_eq "legs: a DSN for the refused recipient" "rfc822; datareply554@other.test" \
        "$(dsn_field "$m.eml" Final-Recipient)"
    assert_eq "legs: Action failed" "failed" "$(dsn_field "$m.eml" Action)"
fi

# ------------------------------------------------------------------ 3. queue mode
qsend q250 --to datareply250@other.test --h-Subject "queued, DATA 250"
assert_match "queue mode: 250 queued" "$SW_DOT" '^250 .*queued as '
IDQ=$(queue_id "$SW_DOT")
wait_log 10 "$IDQ: attempt 1: .*reply=\"451 4\.5\.0" || fail "queue: no attempt with 451 4.5.0 logged"
assert_no_log "queue: DATA answered 250 is never a delivery" 0 "$IDQ: <datareply250@other\.test> delivered"
assert_match "queue: the entry is kept (pending, 451 4.5.0), not deleted" \
    "$(env_rcpt "$IDQ" datareply250@other.test)" '^pending 451 4\.5\.0 '
assert_file_count "$MX2" 0 "queue: mx2 stored nothing"

# ------------------------------------------------------------------ 4. 8BITMIME / SMTPUTF8
printf 'Subject: eight bit\r\n\r\ncaf\xc3\xa9 BODYLINE\r\n.\r\n' >"$TB/8bit.msg"
m8=$(tb_log_mark mx2)
smtp_chat live8 "EHLO client.test" "MAIL FROM:<sender@client.test> BODY=8BITMIME" \
    "RCPT TO:<e1@other.test>" "DATA" "@$TB/8bit.msg" "QUIT"
assert_eq "live: 8-bit body to an MX without 8BITMIME: 554 5.6.3" "554 5.6.3" \
    "$(chat_reply live8 DOT | cut -c1-9)"
# the leg is aborted before the 8-bit chunk: mx2 sees DATA end without the dot and without
# one 8-bit octet (mxserver.py counts them in its "connection lost during DATA" line)
for _ in $(seq 50); do
    tb_log_since "$m8" mx2 | grep -q 'connection lost during DATA' && break
    sleep 0.1
done
assert_log "live8: mx2 lost the connection in DATA (no dot)" "$m8" 'connection lost during DATA \(' mx2
assert_no_log "live8: no 8-bit octet reached mx2 (no 8BITMIME)" "$m8" '8-bit octets|caf' mx2
# two domains: the leg to mx2 (no 8BITMIME) is aborted before the 8-bit chunk, mx1 delivers;
# e4's failure is permanent: 250 for the transaction, a DSN (5.6.3) for e4
nl=$(spool_count "$LEGACY")
n1=$(spool_count "$MX1")
m8=$(tb_log_mark mx2)
smtp_chat live8b "EHLO client.test" "MAIL FROM:<sender@client.test> BODY=8BITMIME" \
    "RCPT TO:<a8@example.test>" "RCPT TO:<e4@other.test>" "DATA" "@$TB/8bit.msg" "QUIT"
assert_match "live, two domains, one MX without 8BITMIME: 250 (the rest queued)" \
    "$(chat_reply live8b DOT)" '^250 .*queued as'
assert_eq "live8b: mx1 (8BITMIME) stored the message" $((n1 + 1)) "$(spool_count "$MX1")"
wait_spool_count "$LEGACY" $((nl + 1)) 15
m=$(spool_last "$LEGACY")
if [ -n "$m" ]; then
    assert_eq "live8b: a DSN for e4 (the leg without 8BITMIME)" "rfc822; e4@other.test" \
        "$(dsn_field "$m.eml" Final-Recipient)"
    assert_eq "live8b: ... Status 5.6.3" "5.6.3" "$(dsn_field "$m.eml" Status)"
fi
for _ in $(seq 50); do
    tb_log_since "$m8" mx2 | grep -q 'connection lost during DATA' && break
    sleep 0.1
done
assert_log "live8b: mx2 lost the connection in DATA (no dot)" "$m8" 'connection lost during DATA \(' mx2
assert_no_log "live8b: no 8-bit octet reached mx2" "$m8" '8-bit octets' mx2

nl=$(spool_count "$LEGACY")
smtp_chat q8 --server "$TB_MXG_IP:$QPORT" "EHLO client.test" \
    "MAIL FROM:<sender@client.test> BODY=8BITMIME" "RCPT TO:<e2@other.test>" "DATA" \
    "@$TB/8bit.msg" "QUIT"
assert_match "queue: the 8-bit message is queued" "$(chat_reply q8 DOT)" '^250 '
wait_spool_count "$LEGACY" $((nl + 1)) 15
m=$(spool_last "$LEGACY")
if [ -n "$m" ]; then
    assert_eq "queue: 8-bit to an MX without 8BITMIME: a DSN" "rfc822; e2@other.test" \
        "$(dsn_field "$m.eml" Final-Recipient)"
    assert_eq "queue: ... Status 5.6.3" "5.6.3" "$(dsn_field "$m.eml" Status)"
fi
assert_file_count "$MX2" 0 "8-bit: mx2 stored nothing"
assert_eq "8-bit: mx2 never received a complete message" 0 "$(grep -c 'received [0-9]* octets' "$TB/mx2.log")"

nl=$(spool_count "$LEGACY")
smtp_chat qutf8 --server "$TB_MXG_IP:$QPORT" "EHLO client.test" \
    "MAIL FROM:<sender@client.test> SMTPUTF8" "RCPT TO:<u1@other.test>" "DATA" \
    "@$TB/8bit.msg" "QUIT"
assert_match "queue: an SMTPUTF8 message is queued" "$(chat_reply qutf8 DOT)" '^250 '
wait_spool_count "$LEGACY" $((nl + 1)) 15
m=$(spool_last "$LEGACY")
[ -n "$m" ] && assert_eq "queue: SMTPUTF8 to an MX without it: a DSN with 5.6.7" "5.6.7" \
    "$(dsn_field "$m.eml" Status)"
smtp_chat liveutf8 "EHLO client.test" "MAIL FROM:<sender@client.test> SMTPUTF8" \
    "RCPT TO:<u2@other.test>" "QUIT"
assert_eq "live: SMTPUTF8 to an MX without it: 553 5.6.7" "553 5.6.7" \
    "$(chat_reply liveutf8 RCPT | cut -c1-9)"

# ------------------------------------------------------------------ 5. NOTIFY=SUCCESS, MX without DSN
printf 'Subject: notify success\r\nMessage-Id: <ns.1@client.test>\r\n\r\nBODYLINE\r\n.\r\n' >"$TB/ns.msg"
nl=$(spool_count "$LEGACY")
n1=$(spool_count "$MX1")
smtp_chat ns1 "EHLO client.test" "MAIL FROM:<sender@client.test> RET=HDRS ENVID=env1" \
    "RCPT TO:<s1@example.test> NOTIFY=SUCCESS" "DATA" "@$TB/ns.msg" "QUIT"
assert_match "live, MX with DSN: delivered" "$(chat_reply ns1 DOT)" '^250 '
m=$(spool_last "$MX1")
[ -n "$m" ] && assert_eq "... NOTIFY passed on to the MX with DSN" '[{"NOTIFY": "SUCCESS"}]' \
    "$(json_get "$m.json" rcpt_params)"
smtp_chat ns2 "EHLO client.test" "MAIL FROM:<sender@client.test> RET=HDRS ENVID=env2" \
    "RCPT TO:<s2@other.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;s2@other.test" "DATA" \
    "@$TB/ns.msg" "QUIT"
assert_match "live, MX without DSN: delivered" "$(chat_reply ns2 DOT)" '^250 '
m=$(spool_last "$MX2")
if [ -n "$m" ]; then
    assert_eq "... the DSN parameters were dropped (RCPT)" '[{}]' "$(json_get "$m.json" rcpt_params)"
    assert_eq "... (MAIL)" '{}' "$(json_get "$m.json" mail_params)"
fi
wait_spool_count "$LEGACY" $((nl + 1)) 15
sleep 1.5 # a DSN for the MX with DSN would have arrived by now too
assert_file_count "$LEGACY" $((nl + 1)) "live: exactly one relayed DSN (none for the MX with DSN)"
m=$(spool_last "$LEGACY")
if [ -n "$m" ]; then
    assert_eq "live relayed DSN: to the sender" "sender@client.test" "$(json_get "$m.json" rcpts.0)"
    assert_eq "live relayed DSN: from <>" "" "$(json_get "$m.json" mail_from)"
    assert_eq "live relayed DSN: Action relayed" "relayed" "$(dsn_field "$m.eml" Action)"
    assert_eq "live relayed DSN: the recipient" "rfc822; s2@other.test" \
        "$(dsn_field "$m.eml" Final-Recipient)"
    assert_eq "live relayed DSN: Status 2.0.0" "2.0.0" "$(dsn_field "$m.eml" Status)"
    assert_eq "live relayed DSN: subject" "Successful Mail Delivery Report" "$(dsn_field "$m.eml" Subject)"
fi

nl=$(spool_count "$LEGACY")
smtp_chat ns3 --server "$TB_MXG_IP:$QPORT" "EHLO client.test" \
    "MAIL FROM:<sender@client.test> RET=HDRS" "RCPT TO:<s3@other.test> NOTIFY=SUCCESS" "DATA" \
    "@$TB/ns.msg" "QUIT"
assert_match "queue, MX without DSN: queued" "$(chat_reply ns3 DOT)" '^250 '
wait_spool_count "$LEGACY" $((nl + 1)) 15
m=$(spool_last "$LEGACY")
if [ -n "$m" ]; then
    assert_eq "queue relayed DSN: Action relayed" "relayed" "$(dsn_field "$m.eml" Action)"
    assert_eq "queue relayed DSN: the recipient" "rfc822; s3@other.test" \
        "$(dsn_field "$m.eml" Final-Recipient)"
    assert_file_grep "queue relayed DSN: the original's headers are returned" "$m.eml" \
        '^Message-Id: <ns\.1@client\.test>'
fi
assert_log "queue: the relayed DSN is logged" 0 '"relayed" DSN .* queued for <sender@client\.test>'

tb_finish
