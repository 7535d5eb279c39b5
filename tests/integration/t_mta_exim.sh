#!/usr/bin/env bash
# t_mta_exim.sh — Exim 4.96 (Debian 12's exim4-daemon-light, unpacked, not installed) with the
# README's smarthost router and transport relays through mxguard: a three-domain message
# arrives at each MX with its own recipient and an intact body, on the first attempt; an 8-bit
# message arrives octet for octet (Exim sends no BODY=8BITMIME); a recipient the MX refuses (550) gets Exim's own
# bounce into the sender's mailbox, naming the recipient and the MX's reply.
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
. "$TB_LIB_DIR/legacy_lib.sh"

lg_testbed
lg_use exim /usr/sbin/exim4

E=$TB/exim
mkdir -p "$E/spool" "$E/log" "$E/mail"
chown mail:mail "$E/spool" "$E/log" "$E/mail"
# Debian's exim4 looks up its compiled-in user Debian-exim at start: it exists only in the
# private /etc/passwd of lg_ns (as the uid of "mail")
lg_users "passwd:Debian-exim:x:$(id -u mail):$(id -g mail):exim test:/nonexistent:/usr/sbin/nologin" \
    "group:Debian-exim:x:$(id -g mail):"

# Exim's configuration: the README's router and transport (marked), the rest is the private
# test-bed around them (own spool, log, address, local mailboxes, short retries)
cat >"$E/exim.conf" <<CONF
exim_path = $LG_ROOT/usr/sbin/exim4
keep_environment = LD_LIBRARY_PATH
primary_hostname = $LG_DOMAIN
qualify_domain = $LG_DOMAIN
domainlist local_domains = $LG_DOMAIN
hostlist relay_from_hosts = 127.0.70.0/24
spool_directory = $E/spool
log_file_path = $E/log/%slog
pid_file_path = $E/exim.pid
local_interfaces = <; $TB_PF_IP
daemon_smtp_ports = $TB_PF_PORT
acl_smtp_rcpt = acl_check_rcpt
host_lookup =
rfc1413_hosts =
queue_run_max = 1

begin acl
acl_check_rcpt:
  accept hosts = +relay_from_hosts
  deny   message = relay not permitted

begin routers
# --- README: the smarthost router
smarthost:
  driver = manualroute
  domains = ! +local_domains
  transport = remote_smtp_mxguard
  route_list = * $TB_MXG_IP::$TB_MXG_PORT byname
  no_more
# --- end README
local_user:
  driver = accept
  domains = +local_domains
  local_parts = sender : postmaster
  transport = local_mailbox

begin transports
# --- README: the transport
remote_smtp_mxguard:
  driver = smtp
  port = $TB_MXG_PORT
  hosts_avoid_tls = *
# --- end README
  interface = $TB_PF_IP
local_mailbox:
  driver = appendfile
  file = $E/mail/\$local_part_data
  user = mail
  group = mail
  delivery_date_add
  envelope_to_add
  return_path_add

begin retry
*   *   F,2m,10s
CONF

lg_ns "$LG_ROOT/usr/sbin/exim4" -C "$E/exim.conf" -bV >"$TB/exim.bV" 2>&1 ||
    { cat "$TB/exim.bV"; tb_die "exim -bV failed"; }
grep -m1 '^Exim version' "$TB/exim.bV"
lg_spawn_ns exim "$LG_ROOT/usr/sbin/exim4" -C "$E/exim.conf" -bdf -q5s
lg_wait_mta exim

# 1. one message, three domains
lg_message three "exim three domains"
lg_submit three a@example.test,b@other.test,c@dane-ee.test
assert_eq "Exim accepted the three-domain message" ok "$SUBMIT"
lg_wait_mx_spools 1 1 1
lg_assert_arrived exim "exim three domains" "$TB/three.msg"

# 2. an 8-bit message
lg_message eight "exim 8bit" --8bit
lg_submit eight a@example.test 8bit
assert_eq "Exim accepted the 8-bit message" ok "$SUBMIT"
lg_wait_mx_spools 2 1 1
# Exim 4.96 never sends BODY=8BITMIME (it passes 8-bit data as it came); mxguard relays MAIL as is
lg_assert_8bit exim "exim 8bit" "$TB/eight.msg" null

# 3. refused by the MX: Exim's bounce in the sender's mailbox
lg_message refused "exim refused"
lg_submit refused reject-x@example.test
assert_eq "Exim accepted the message the MX will refuse" ok "$SUBMIT"
lg_wait_file "$E/mail/sender" 15
b=$E/mail/sender
assert_file_grep "Exim's bounce reached the sender's mailbox" "$b" '^Subject: Mail delivery failed'
assert_file_grep "... from Exim's mailer-daemon" "$b" "^From: Mail Delivery System <Mailer-Daemon@$LG_DOMAIN>"
assert_file_grep "... naming the recipient" "$b" '^ *reject-x@example\.test'
assert_file_grep "... and the MX's reply as mxguard relayed it" "$b" '550[ -]5\.1\.1 <reject-x@example\.test>: user unknown'
assert_file_grep "... with the original message attached" "$b" '^Subject: exim refused'
assert_eq "nothing more reached mx1" 2 "$(spool_count "$TB/spool/mx1")"

sleep 0.5
# Exim pipelines QUIT behind the final dot and half-closes its socket: mxguard must still
# answer the dot (it once took the half-close for a vanished client, after the MX hosts had
# the message: Exim deferred, retried, and every MX got it twice)
assert_eq "Exim logged 4 deliveries through mxguard on the first attempt (=>, ->)" 4 \
    "$(grep -cE "(=>|->) .* R=smarthost T=remote_smtp_mxguard H=$TB_MXG_IP \[$TB_MXG_IP\] C=\"250 " "$E/log/mainlog")"
assert_eq "Exim deferred nothing" 0 "$(grep -c ' == ' "$E/log/mainlog")"
assert_eq "Exim's queue is empty" "" "$(lg_ns "$LG_ROOT/usr/sbin/exim4" -C "$E/exim.conf" -bp 2>/dev/null)"

tb_finish
