#!/usr/bin/env bash
# t_mta_smtplib.sh — Python's smtplib (an application without a queue) hands mail to mxguard
# as the README shows: a three-domain message arrives at each MX with its own recipient and
# an intact body; an 8-bit message goes with BODY=8BITMIME and arrives octet for octet; a
# recipient the MX refuses raises SMTPRecipientsRefused (550 5.1.1), a message the MX refuses
# after DATA raises SMTPDataError (554 5.6.0) — smtplib keeps no queue, the exception is the
# sender's only notice. A client that half-closes after the final dot (as Exim does) still
# gets the dot's reply.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
. "$TB_LIB_DIR/legacy_lib.sh"

lg_testbed

# smtplib_send NAME RCPTS [8bit] — send $TB/NAME.msg to mxguard as the README's example does
# (smtplib.SMTP(host, port); sendmail(); a bytes message with BODY=8BITMIME when 8bit);
# prints "ok REFUSED-DICT" or "EXCEPTIONCLASS DETAILS" into $TB/NAME.result
smtplib_send() {
    "$PYTHON" - "$TB_MXG_IP" "$TB_MXG_PORT" "$TB_PF_IP" "$LG_SENDER" "$TB/$1.msg" "$2" "${3:-}" \
        >"$TB/$1.result" 2>&1 <<'PY'
import smtplib, sys
host, port, src, sender, path, rcpts, eight = sys.argv[1:8]
msg = open(path, "rb").read()
try:
    with smtplib.SMTP(host, int(port), local_hostname="app.client.test", timeout=20,
                      source_address=(src, 0)) as s:
        opts = ["BODY=8BITMIME"] if eight else []
        refused = s.sendmail(sender, rcpts.split(","), msg, mail_options=opts)
    print("ok", sorted(refused.items()))
except smtplib.SMTPRecipientsRefused as e:
    print("SMTPRecipientsRefused", sorted(e.recipients.items()))
except smtplib.SMTPDataError as e:
    print("SMTPDataError", e.smtp_code, e.smtp_error)
except Exception as e:
    print(type(e).__name__, e)
PY
    echo "# $1: $(cat "$TB/$1.result")"
}

# 1. one message, three domains (three MX hosts)
lg_message three "smtplib three domains"
smtplib_send three a@example.test,b@other.test,c@dane-ee.test
assert_eq "smtplib: three-domain message accepted, nothing refused" "ok []" "$(cat "$TB/three.result")"
lg_wait_mx_spools 1 1 1
lg_assert_arrived smtplib "smtplib three domains" "$TB/three.msg"

# 2. an 8-bit message
lg_message eight "smtplib 8bit" --8bit
smtplib_send eight a@example.test 8bit
assert_eq "smtplib: 8-bit message accepted" "ok []" "$(cat "$TB/eight.result")"
lg_wait_mx_spools 2 1 1
lg_assert_8bit smtplib "smtplib 8bit" "$TB/eight.msg"

# 3. refused by the MX: at RCPT (550) and after DATA (554)
lg_message refused "smtplib refused"
smtplib_send refused reject-x@example.test
assert_match "smtplib: the MX's 550 raised SMTPRecipientsRefused for the recipient" \
    "$(cat "$TB/refused.result")" "^SMTPRecipientsRefused \[\('reject-x@example.test', \(550, b'5\.1\.1 "
cp "$TB/refused.msg" "$TB/refused2.msg"
cp "$TB/refused.msg" "$TB/mixed.msg"
smtplib_send refused2 rejectdata-x@example.test
assert_match "smtplib: the MX's 554 after DATA raised SMTPDataError" \
    "$(cat "$TB/refused2.result")" "^SMTPDataError 554 b'5\.6\.0 "
# one good and one refused recipient: no exception, sendmail() returns the refused one
smtplib_send mixed a@example.test,reject-y@example.test
assert_match "smtplib: a partly refused message names the refused recipient" \
    "$(cat "$TB/mixed.result")" "^ok \[\('reject-y@example.test', \(550, b'5\.1\.1 "
wait_spool_count "$TB/spool/mx1" 3 10
assert_eq "mx1 got the partly refused message for the good recipient only" 3 "$(spool_count "$TB/spool/mx1")"
m=$(spool_last "$TB/spool/mx1")
[ -n "$m" ] && assert_eq "... its recipient" '["a@example.test"]' "$(json_get "$m.json" rcpts)"

# 4. a client that pipelines QUIT behind the final dot and then shuts its sending side (as Exim
# does) still gets the dot's 250 (the legs hold the dot when the half-close arrives), once
"$PYTHON" - "$TB_MXG_IP" "$TB_MXG_PORT" "$TB_PF_IP" >"$TB/halfclose.out" 2>&1 <<'PY'
import socket, sys
ip, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((ip, port), timeout=20, source_address=(src, 0))
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline()
        if not l:
            return "EOF"
        lines.append(l.decode().rstrip())
        if l[3:4] != b"-":
            return lines[-1][:3]
codes = [reply()]
for c in (b"EHLO app.client.test", b"MAIL FROM:<sender@legacy.client.test>",
          b"RCPT TO:<h@example.test>", b"DATA"):
    s.sendall(c + b"\r\n")
    codes.append(reply())
s.sendall(b"Subject: half-close\r\n\r\nbody\r\n.\r\nQUIT\r\n")
s.shutdown(socket.SHUT_WR)
codes += [reply(), reply(), reply()]
print(" ".join(codes))
PY
assert_eq "half-close after dot+QUIT: the dot's 250, QUIT's 221, then the close" \
    "220 250 250 250 354 250 221 EOF" "$(cat "$TB/halfclose.out")"
wait_spool_count "$TB/spool/mx1" 4 10
assert_eq "... and mx1 got the message once" 1 "$(grep -alE '^Subject: half-close'$'\r?$' "$TB/spool/mx1"/*.eml | wc -l)"

tb_finish
