#!/usr/bin/env bash
# t_startup.sh — the listeners open only once every local policy source is in force
# (docs/ARCHITECTURE.md §Operating): the policy list from policy_list.file is accepted, and said so
# in the log, before "listening on"; a client that connects the moment the port accepts and sends
# to a domain the list enforces, whose only MX has no STARTTLS, is deferred (451 4.7.5), never
# delivered in plaintext. A restart without the file (the last verified copy in the state directory
# counts as loaded) and one with an unreachable policy_list.url (never waited for) do the same.
# 4. The listener's port held by another program: mxguard (server.workers = 2, and 1) exits 1 at
# once, before its DNSSEC self-check, saying "cannot bind ADDR: Address already in use".
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

tb_init
tb_start_dns
tb_start_mx plain 127.0.70.14 --no-starttls
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
  "policies": {"plain.test": {"mode": "enforce", "mxs": ["mx.plain.test"]}}
}
JSON
tb_list_sign "$TB/list.json"
tb_make_message race --to a@plain.test --subject "start-up race" --id race-1

# race NAME — start mxguard (log $TB/NAME.log) while a client connects as soon as the port
# accepts (a connection attempt every millisecond) and sends one message to a@plain.test;
# its replies in $TB/NAME.race (STAGE<TAB>REPLY per line)
race() {
    local name=$1
    "$PYTHON" - "$TB_MXG_IP" "$TB_MXG_PORT" "$TB_CLIENT_IP" "$TB/race.wire" >"$TB/$name.race" \
        2>"$TB/$name.race.err" <<'PY' &
import socket, sys, time
ip, port, src, wire = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
deadline = time.time() + 20
while True:
    s = socket.socket()
    s.bind((src, 0))
    try:
        s.connect((ip, port))
        break
    except OSError:
        s.close()
        if time.time() > deadline:
            print("NOCONNECT\t-")
            sys.exit(1)
        time.sleep(0.001)
s.settimeout(30)
f = s.makefile("rb")
def reply(stage):
    lines = []
    while True:
        l = f.readline()
        if not l:
            print(stage + "\tCLOSED", flush=True)
            sys.exit(0)
        lines.append(l.decode("latin-1").rstrip("\r\n"))
        if len(l) < 4 or l[3:4] != b"-":
            break
    print(stage + "\t" + lines[-1], flush=True)
    return lines[-1]
reply("BANNER")
for stage, cmd in (("EHLO", b"EHLO client.test"), ("MAIL", b"MAIL FROM:<s@client.test>"),
                   ("RCPT", b"RCPT TO:<a@plain.test>"), ("DATA", b"DATA")):
    s.sendall(cmd + b"\r\n")
    r = reply(stage)
    if not r.startswith(("2", "3")):
        s.sendall(b"QUIT\r\n")
        sys.exit(0)
s.sendall(open(wire, "rb").read() + b"\r\n")
reply("DOT")
s.sendall(b"QUIT\r\n")
PY
    local racer=$!
    tb_spawn "$name" "$MXG_BIN" run -c "$TB/mxguard.conf"
    wait "$racer"
    echo "# $name: $(tr '\t\n' ' ;' <"$TB/$name.race")"
}

# listen_line LOG — the line number where the first listener opened to serve: "listening on";
# with server.workers > 1 the master binds first (clients are refused until a worker listens)
# and a worker serves from its "worker I of N (pid P) started"
listen_line() {
    if grep -q 'main: mxguard .*: master (pid [0-9]*) starting' "$1"; then
        grep -nE 'main: worker [0-9]+ of [0-9]+ \(pid [0-9]+\) started' "$1" | head -1 | cut -d: -f1
    else
        grep -n 'server: listening on' "$1" | head -1 | cut -d: -f1
    fi
}

# check_start NAME WHAT — the assertions on one start
check_start() {
    local name=$1 what=$2 lp ll rcpt dot
    lp=$(grep -n 'list: policy list loaded:' "$TB/$name.log" | head -1 | cut -d: -f1)
    ll=$(listen_line "$TB/$name.log")
    if [ -n "$lp" ] && [ -n "$ll" ] && [ "$lp" -lt "$ll" ]; then
        pass "$what: 'policy list loaded' (line $lp) before 'listening on' (line $ll)"
    else
        fail "$what: 'policy list loaded' (line ${lp:-none}) not before 'listening on' (line ${ll:-none})"
    fi
    assert_file_grep "$what: the list is in force when the listener opens" "$TB/$name.log" \
        'policy list loaded: .*in force: the list of timestamp'
    rcpt=$(awk -F'\t' '$1 == "RCPT" { print $2 }' "$TB/$name.race")
    dot=$(awk -F'\t' '$1 == "DOT" { print $2 }' "$TB/$name.race")
    if [[ "$rcpt" == "451 4.7.5"* || "$dot" == "451 4.7.5"* ]]; then
        pass "$what: the racing client is deferred under the list (${rcpt:-} ${dot:-})"
    else
        fail "$what: the racing client got RCPT [${rcpt:-none}] DOT [${dot:-none}], not 451 4.7.5"
    fi
    assert_no_mail "$what: mx.plain.test (no STARTTLS) got no MAIL" plain
    tb_stop "$name"
}

# 1. policy_list.file, first start (an empty state directory)
tb_write_config "policy_list: { file = \"$TB/list.json\"; keyring = \"$TB/keyring.gpg\"; };"
race first
check_start first "first start"
la=$(grep -n "policy list from $TB/list.json accepted" "$TB/first.log" | head -1 | cut -d: -f1)
ll=$(listen_line "$TB/first.log")
if [ -n "$la" ] && [ -n "$ll" ] && [ "$la" -lt "$ll" ]; then
    pass "first start: the file's list was accepted (line $la) before the listener opened (line $ll)"
else
    fail "first start: the file's list accepted at line ${la:-none}, the listener opened at line ${ll:-none}"
fi

# 2. the file gone: the last verified copy in the state directory is in force at once
mv "$TB/list.json" "$TB/list.json.away"
race second
check_start second "restart without the file"

# 3. policy_list.url that never answers: the start does not wait for it (nor mail)
tb_write_config "policy_list: { url = \"https://dead.fallback.test:8443/policy.json\"; keyring = \"$TB/keyring.gpg\"; };"
race third
check_start third "restart with an unreachable policy_list.url"

# 4. the port is taken: stop at once, before the slow start-up work
tb_spawn squatter "$PYTHON" -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
time.sleep(600)' "$TB_MXG_IP" "$TB_MXG_PORT"
tb_wait_port "$TB_MXG_IP" "$TB_MXG_PORT" || tb_die "the squatter did not listen"
for w in 2 1; do
    what="port taken, $w worker(s)"
    MXGUARD_SERVER_WORKERS=$w tb_start_mxguard_fails -n "clash$w" 10
    assert_eq "$what: mxguard exits 1" 1 "$MXG_EXIT"
    assert_file_grep "$what: it says why" "$TB/clash$w.log" \
        "error main: cannot bind $TB_MXG_IP:$TB_MXG_PORT: Address already in use"
    assert_no_log "$what: before the DNSSEC self-check" 0 "DNSSEC self-check" "clash$w"
    assert_no_log "$what: before any worker started" 0 "worker [0-9]+ (started|of)" "clash$w"
done
tb_stop squatter

tb_list_keys_stop
tb_finish
