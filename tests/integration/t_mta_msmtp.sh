#!/usr/bin/env bash
# t_mta_msmtp.sh — msmtp 1.8 (Debian 12's; the cron / appliance sender, no queue) hands mail to
# mxguard with the README's msmtprc: a three-domain message arrives at each MX with its own
# recipient and an intact body; an 8-bit message arrives octet for octet with BODY=8BITMIME; a
# recipient the MX refuses (550) makes msmtp exit 65 (EX_DATAERR), naming the recipient and the reply
# (msmtp keeps no queue: its exit status is the sender's only notice).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
. "$TB_LIB_DIR/legacy_lib.sh"

lg_testbed
lg_use msmtp /usr/bin/msmtp

# the README's msmtprc (test-bed addresses; source_ip: mxguard allows 127.0.70.0/25 only)
cat >"$TB/msmtprc" <<CONF
defaults
logfile $TB/msmtp.log

account mxguard
host $TB_MXG_IP
port $TB_MXG_PORT
source_ip $TB_PF_IP
domain app.client.test
from $LG_SENDER
auth off
tls off
timeout 20

account default : mxguard
CONF
chmod 600 "$TB/msmtprc"

# msmtp_send NAME RCPT... — msmtp -C msmtprc RCPT... < $TB/NAME.msg; sets MSMTP_RC,
# stderr in $TB/NAME.msmtp
msmtp_send() {
    local name=$1; shift
    LD_LIBRARY_PATH=$LG_LIBS timeout 30 "$LG_ROOT/usr/bin/msmtp" -C "$TB/msmtprc" "$@" \
        <"$TB/$name.msg" >"$TB/$name.msmtp" 2>&1
    MSMTP_RC=$?
    echo "# $name: msmtp exit $MSMTP_RC $(head -c 300 "$TB/$name.msmtp" | tr '\n' ' ')"
}

# 1. one message, three domains
lg_message three "msmtp three domains"
msmtp_send three a@example.test b@other.test c@dane-ee.test
assert_eq "msmtp: three-domain message sent (exit 0)" 0 "$MSMTP_RC"
lg_wait_mx_spools 1 1 1
lg_assert_arrived msmtp "msmtp three domains" "$TB/three.msg"

# 2. an 8-bit message
lg_message eight "msmtp 8bit" --8bit
msmtp_send eight a@example.test
assert_eq "msmtp: 8-bit message sent (exit 0)" 0 "$MSMTP_RC"
lg_wait_mx_spools 2 1 1
# msmtp never sends BODY=8BITMIME (RFC 6152 asks for it); mxguard passes MAIL on as it came
lg_assert_8bit msmtp "msmtp 8bit" "$TB/eight.msg" null

# 3. refused by the MX
lg_message refused "msmtp refused"
msmtp_send refused reject-x@example.test
assert_eq "msmtp: the MX's 550 makes msmtp exit 65 (EX_DATAERR)" 65 "$MSMTP_RC"
assert_contains "msmtp: its error names the recipient" "$(cat "$TB/refused.msmtp")" "reject-x@example.test"
assert_contains "msmtp: ... and the MX's reply" "$(cat "$TB/refused.msmtp")" "550 5.1.1"
assert_eq "nothing more reached mx1" 2 "$(spool_count "$TB/spool/mx1")"
assert_file_grep "msmtp's log records the failure" "$TB/msmtp.log" "recipients=reject-x@example.test .*smtpstatus=550 .*exitcode=EX_DATAERR"

tb_finish
