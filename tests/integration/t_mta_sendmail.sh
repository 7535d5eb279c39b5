#!/usr/bin/env bash
# t_mta_sendmail.sh — Sendmail 8.17 (Debian 12's sendmail-bin, unpacked, not installed) with the
# README's sendmail.mc lines relays through mxguard: a three-domain message arrives at each MX
# with its own recipient and an intact body; an 8-bit message arrives octet for octet; a
# recipient the MX refuses (550) gets Sendmail's own bounce into the sender's mailbox, naming
# the recipient and the MX's reply.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
. "$TB_LIB_DIR/legacy_lib.sh"

lg_testbed
lg_use sendmail /usr/libexec/sendmail/sendmail

S=$TB/sendmail
CF=$LG_ROOT/usr/share/sendmail/cf
mkdir -p "$S/mqueue" "$S/mail"
chmod 700 "$S/mqueue"
chmod 1777 "$S/mail"
# the sender is a local user (the local mailer delivers the bounces to it), in lg_ns's /etc only
lg_users "passwd:sender:x:64990:64990:sender:$S/mail:/bin/sh" "group:sender:x:64990:"
# the local mailer: append the message to $S/mail/USER (the sender's mailbox gets the bounces)
# (the user is the last argument: Debian's linux OSTYPE puts "-f \$g" before it)
cat >"$S/deliver" <<SH
#!/bin/sh
for u; do :; done
cat >>"$S/mail/\$u"
SH
chmod 755 "$S/deliver"
printf 'postmaster: sender\nMAILER-DAEMON: sender\n' >"$S/aliases"

# sendmail.mc: the README's lines (marked); the rest is the private test-bed around them (own
# queue, address, local mailer; no DNS: its own name is given, nothing is canonified)
cat >"$S/sendmail.mc" <<MC
divert(-1)
divert(0)dnl
include(\`$CF/m4/cf.m4')dnl
VERSIONID(\`mxguard t_mta_sendmail')dnl
OSTYPE(\`linux')dnl
define(\`confDOMAIN_NAME', \`$LG_DOMAIN')dnl
define(\`QUEUE_DIR', \`$S/mqueue')dnl
define(\`confPID_FILE', \`$S/sendmail.pid')dnl
define(\`STATUS_FILE', \`$S/statistics')dnl
define(\`ALIAS_FILE', \`$S/aliases')dnl
define(\`confHELP_FILE', \`$S/helpfile')dnl
define(\`confDONT_PROBE_INTERFACES', \`True')dnl
define(\`confDONT_BLAME_SENDMAIL', \`TrustStickyBit,MapInUnsafeDirPath')dnl
define(\`confBIND_OPTS', \`-DNSRCH -DEFNAMES')dnl
define(\`confTO_QUEUERETURN', \`5m')dnl
define(\`confDELIVERY_MODE', \`background')dnl
define(\`confLOG_LEVEL', \`14')dnl
FEATURE(\`nocanonify')dnl
FEATURE(\`accept_unresolvable_domains')dnl
FEATURE(\`promiscuous_relay')dnl
DAEMON_OPTIONS(\`Port=$TB_PF_PORT, Addr=$TB_PF_IP, Name=MTA')dnl
CLIENT_OPTIONS(\`Family=inet, Addr=$TB_PF_IP')dnl
dnl --- README: the smarthost lines
define(\`SMART_HOST', \`[$TB_MXG_IP]')dnl
define(\`RELAY_MAILER_ARGS', \`TCP \$h $TB_MXG_PORT')dnl
define(\`ESMTP_MAILER_ARGS', \`TCP \$h $TB_MXG_PORT')dnl
define(\`confMAX_RCPTS_PER_MESSAGE', \`0')dnl
dnl --- end README
define(\`LOCAL_MAILER_PATH', \`$S/deliver')dnl
define(\`LOCAL_MAILER_ARGS', \`deliver \$u')dnl
MAILER(\`local')dnl
MAILER(\`smtp')dnl
MC
"$LG_ROOT/usr/bin/m4" "$S/sendmail.mc" >"$S/sendmail.cf" 2>"$TB/m4.log" ||
    { cat "$TB/m4.log"; tb_die "m4 could not build sendmail.cf"; }
SM=$LG_ROOT/usr/libexec/sendmail/sendmail
lg_ns "$SM" -C "$S/sendmail.cf" -bi >"$TB/newaliases.log" 2>&1 ||
    { cat "$TB/newaliases.log"; tb_die "sendmail -bi (aliases) failed"; }
lg_spawn_ns sendmail "$SM" -C "$S/sendmail.cf" -bD -q5s -X "$S/traffic"
lg_wait_mta sendmail

# 1. one message, three domains
lg_message three "sendmail three domains"
lg_submit three a@example.test,b@other.test,c@dane-ee.test
assert_eq "Sendmail accepted the three-domain message" ok "$SUBMIT"
lg_wait_mx_spools 1 1 1
lg_assert_arrived sendmail "sendmail three domains" "$TB/three.msg"

# 2. an 8-bit message
lg_message eight "sendmail 8bit" --8bit
lg_submit eight a@example.test 8bit
assert_eq "Sendmail accepted the 8-bit message" ok "$SUBMIT"
lg_wait_mx_spools 2 1 1
lg_assert_8bit sendmail "sendmail 8bit" "$TB/eight.msg"

# 3. refused by the MX: Sendmail's bounce in the sender's mailbox
lg_message refused "sendmail refused"
lg_submit refused reject-x@example.test
assert_eq "Sendmail accepted the message the MX will refuse" ok "$SUBMIT"
lg_wait_file "$S/mail/sender" 15
b=$S/mail/sender
assert_file_grep "Sendmail's bounce reached the sender's mailbox" "$b" '^Subject: Returned mail: see transcript for details'
assert_file_grep "... from its mailer-daemon" "$b" '^From: Mail Delivery Subsystem <MAILER-DAEMON>'
assert_file_grep "... naming the recipient" "$b" '<reject-x@example\.test>'
assert_file_grep "... and the MX's reply as mxguard relayed it" "$b" 'reason: 550 5\.1\.1 <reject-x@example\.test>: user unknown'
assert_file_grep "... with the original message" "$b" '^Subject: sendmail refused'
assert_eq "nothing more reached mx1" 2 "$(spool_count "$TB/spool/mx1")"
assert_eq "Sendmail's queue is empty" 0 "$(find "$S/mqueue" -type f | wc -l)"

tb_finish
