#!/usr/bin/env bash
# checks.sh ROOT IMAGE — exercise the container image IMAGE, whose file system is mounted at
# ROOT (podman create + podman mount; scripts/container-test.sh builds and mounts it), against
# the integration test-bed (tests/integration/lib.sh):
#  (a) `mxguard config check` of the image's own configuration (/etc/mxguard/mxguard.conf);
#  (b) the image's ENTRYPOINT + CMD (from `podman image inspect`) start as a container would:
#      its own mount and PID namespaces (mxguard is PID 1), the image's root read-only, a /tmp
#      tmpfs, a host directory as the volume /var/lib/mxguard, only the capabilities
#      docker-compose.yml adds, no-new-privileges, the image's environment plus MXGUARD_*
#      overrides for the test-bed (listen address, DNS server + trust anchor, dns.mode, upstream
#      port); it runs as the user mxguard (/proc/PID/status) with its state on the volume;
#  (c) a message is delivered under DANE (TLSA 3 1 1) to mx.dane-ee.test (and /metrics counts it);
#  (d) SIGTERM drains: the transaction in flight completes (the MX holds the dot 5 s, less than
#      the image's server.drain_timeout), new connections are refused, the process exits 0
#      within docker-compose.yml's stop_grace_period.
# Needs root (unshare, mount, chroot).
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../integration" && pwd)/lib.sh"

ROOT=${1:?usage: checks.sh ROOT IMAGE}
IMAGE=${2:?usage: checks.sh ROOT IMAGE}
[ -x "$ROOT/usr/sbin/mxguard" ] || { echo "checks.sh: no $ROOT/usr/sbin/mxguard" >&2; exit 1; }

tb_init
tb_start_dns
tb_start_mx dane-ee 127.0.70.21

# inspect FIELD — one field of the image's configuration as JSON (e.g. .Config.Entrypoint)
inspect() { podman image inspect --format "{{json $1}}" "$IMAGE"; }
# json_words JSON — a JSON list of strings as one NUL-terminated word each ("null": none)
json_words() { "$PYTHON" -c 'import json,sys; [print(w, end="\0") for w in (json.loads(sys.argv[1]) or [])]' "$1"; }

mapfile -d '' ENTRY < <(json_words "$(inspect .Config.Entrypoint)")
mapfile -d '' CMD < <(json_words "$(inspect .Config.Cmd)")
mapfile -d '' IMG_ENV < <(json_words "$(inspect .Config.Env)")
echo "# image: entrypoint [${ENTRY[*]-}] cmd [${CMD[*]-}] env [${IMG_ENV[*]-}]"
assert_match "the image has an entrypoint" "${ENTRY[*]-}" '.'
assert_contains "the image declares the volume /var/lib/mxguard" "$(inspect .Config.Volumes)" '"/var/lib/mxguard"'
assert_match "the image's stop signal is SIGTERM (the drain)" "$(inspect .Config.StopSignal)" '^"(SIGTERM|15)?"$'
assert_match "the image runs as root (it binds port 25, then drops to mxguard)" "$(inspect .Config.User)" '^"(root|0)?"$'
MXG_UID=$(awk -F: '$1 == "mxguard" { print $3 }' "$ROOT/etc/passwd")
MXG_GID=$(awk -F: '$1 == "mxguard" { print $4 }' "$ROOT/etc/passwd")
assert_match "the image has the user mxguard (not root)" "$MXG_UID" '^[1-9][0-9]*$'

# (a) the image's configuration, as it is (no overrides)
out=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$ROOT" /usr/sbin/mxguard config check \
    -c /etc/mxguard/mxguard.conf 2>&1 </dev/null)
rc=$?
assert_eq "mxguard config check of the image's /etc/mxguard/mxguard.conf: exit 0 ($out)" 0 "$rc"
assert_contains "... it says OK" "$out" "configuration OK"

# The container: test-bed files (the trust anchor) bind-mounted read-only at /run/testbed,
# the volume a fresh host directory (root's, as `docker run -v /host/dir:...` gives it).
VOL="$TB/volume"
mkdir -m 700 "$VOL"
mkdir "$TB/files"
cp "$TB/dns/root.ds" "$TB/files/root.ds"
# docker-compose.yml's cap_add list (cap_drop: ALL)
CAPS=$(awk '/^ *cap_add:/ { on = 1; next } on && /^ *- / { print $2; next } on { exit }' \
    "$MXG_SRC/docker-compose.yml" | tr 'A-Z' 'a-z' | sed 's/^/+/' | paste -sd, -)
assert_match "docker-compose.yml adds capabilities (cap_add)" "$CAPS" '^\+[a-z_]+'
CTR_ENV=(
    "${IMG_ENV[@]}"
    MXGUARD_SERVER_LISTEN="$TB_MXG_IP:$TB_MXG_PORT"
    MXGUARD_METRICS_LISTEN="$TB_MXG_IP:9125"
    MXGUARD_DNS_MODE=stub
    MXGUARD_DNS_SERVERS="$TB_DNS_IP:$TB_DNS_PORT"
    MXGUARD_DNS_TRUST_ANCHOR_FILE=/run/testbed/root.ds
    MXGUARD_UPSTREAM_PORT="$TB_MX_PORT"
    MXGUARD_UPSTREAM_SOURCE_IPV4="$TB_MXG_IP"
    MXGUARD_TIMEOUTS_CONNECT=2s
    MXGUARD_TIMEOUTS_DNS=3s
)
# The start script runs as PID 1 of the new PID namespace; it ends by exec-ing the entrypoint.
{
    echo 'set -e'
    printf 'R=%q\n' "$ROOT"
    echo 'mount --bind "$R" "$R"'
    echo 'mount -t proc proc "$R/proc"'
    echo 'mount -t tmpfs -o size=16m,mode=1777 tmpfs "$R/tmp"'
    printf 'mount --bind %q "$R/var/lib/mxguard"\n' "$VOL"
    echo 'mkdir -p "$R/run/testbed"'
    printf 'mount --bind -o ro %q "$R/run/testbed"\n' "$TB/files"
    echo 'mount -o remount,bind,ro "$R"'
    printf 'exec env -i'; printf ' %q' "${CTR_ENV[@]}"
    printf ' chroot "$R" /usr/bin/setpriv --no-new-privs --inh-caps=-all --bounding-set=-all,%s --' "$CAPS"
    printf ' %q' "${ENTRY[@]}" "${CMD[@]-}"; echo
} >"$TB/container-start.sh"

# the container's PID 1 (mxguard) as the host sees it: the child of unshare
ctr_pid() { pgrep -P "$UNSHARE_PID" | head -n 1; }

tb_spawn mxguard unshare --mount --pid --fork --propagation private bash "$TB/container-start.sh"
UNSHARE_PID=$TB_LAST_PID
started=0
for i in $(seq 150); do
    kill -0 "$UNSHARE_PID" 2>/dev/null || break
    if "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$TB_MXG_IP:$TB_MXG_PORT" \
        --source "$TB_CLIENT_IP" --timeout 1 probe; then
        started=1; break
    fi
    sleep 0.1
done
[ $started = 1 ] || { tail -n 40 "$TB/mxguard.log" "$TB/mxguard.out"; tb_die "the container did not accept connections"; }
pass "the container's entrypoint accepts SMTP on $TB_MXG_IP:$TB_MXG_PORT"

# (b) who runs
PID=$(ctr_pid)
st=$(cat "/proc/$PID/status" 2>/dev/null)
assert_eq "the entrypoint is mxguard itself (PID 1 of the container)" mxguard "$(awk '$1 == "Name:" { print $2 }' <<<"$st")"
assert_eq "it runs as the user mxguard (real, effective, saved, fs uid)" "$MXG_UID $MXG_UID $MXG_UID $MXG_UID" \
    "$(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' <<<"$st")"
assert_eq "... and group mxguard" "$MXG_GID $MXG_GID $MXG_GID $MXG_GID" "$(awk '$1 == "Gid:" { print $2, $3, $4, $5 }' <<<"$st")"
assert_eq "... with no capabilities left (CapEff, CapPrm)" "0000000000000000 0000000000000000" \
    "$(awk '$1 == "CapEff:" { e = $2 } $1 == "CapPrm:" { p = $2 } END { print e, p }' <<<"$st")"
assert_eq "... no-new-privileges (as docker-compose.yml sets)" 1 "$(awk '$1 == "NoNewPrivs:" { print $2 }' <<<"$st")"
assert_match "its root file system is read-only (docker-compose.yml: read_only)" \
    "$(awk '$5 == "/" { print $6 }' "/proc/$PID/mountinfo" 2>/dev/null)" '^ro(,|$)'
assert_eq "the volume directory was given to mxguard" "$MXG_UID:$MXG_GID" "$(stat -c %u:%g "$VOL")"

# (c) a message delivered under DANE
mark=$(tb_log_mark)
tb_make_message ee --to a@dane-ee.test --subject "container DANE" --id ctr-ee-1
swaks_send ee --to a@dane-ee.test --no-data-fixup --data "@$TB/ee.wire"
assert_reply "dane-ee.test: RCPT accepted" "$SW_RCPT" 250
assert_reply "dane-ee.test: final dot 250" "$SW_DOT" 250
assert_file_count "$TB/spool/dane-ee" 1 "the message reached mx.dane-ee.test"
m=$(spool_last "$TB/spool/dane-ee")
if [ -n "$m" ]; then
    assert_match "... over TLS" "$(json_get "$m.json" tls.version)" '^TLSv1\.[23]$'
    assert_eq "... SNI = mx.dane-ee.test" mx.dane-ee.test "$(json_get "$m.json" tls.sni)"
    assert_eq "... envelope recipient" '["a@dane-ee.test"]' "$(json_get "$m.json" rcpts)"
    assert_eq "... message intact" "received+same" "$(eml_compare "$m.eml" "$TB/ee.msg")"
fi
assert_log "the log says DANE authenticated the MX" "$mark" \
    'peer=DANE \(TLSA 3 1 1 matched at depth 0, base mx\.dane-ee\.test\).*reply=\\"250 '
assert_log "the log is JSON lines (the image's log.format)" "$mark" '^\{.*\}$'
assert_match "mxguard keeps its state on the volume" "$(ls -A "$VOL")" '.'
assert_eq "... every file there is mxguard's" "" "$(find "$VOL" -mindepth 1 ! -uid "$MXG_UID" -printf '%P ')"

# the metrics port (docker-compose.yml publishes it) counts the delivery
metrics=$("$PYTHON" - "$TB_MXG_IP" 9125 "$TB_CLIENT_IP" <<'PY'
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=5, source_address=(sys.argv[3], 0))
c.request("GET", "/metrics")
r = c.getresponse()
print("HTTP %d" % r.status)
print(r.read().decode())
PY
)
assert_match "GET /metrics answers 200" "$metrics" '^HTTP 200'
assert_eq "... mxguard_transactions_total{outcome=\"delivered\"} = 1" 1 \
    "$(awk '$1 == "mxguard_transactions_total{outcome=\"delivered\"}" { print $2 }' <<<"$metrics")"

# (d) SIGTERM drains
tb_make_message slow --to slowdata@dane-ee.test --subject "container drain" --id ctr-slow-1
( swaks_send slow --to slowdata@dane-ee.test --no-data-fixup --data "@$TB/slow.wire" >/dev/null
  echo "$SW_DOT" >"$TB/slow.dot" ) &
bg=$!
sleep 1.5 # the dot is sent; the MX holds its reply 5 s
t0=$(date +%s)
kill -TERM "$PID"
sleep 0.5
if "$PYTHON" "$TB_LIB_DIR/smtpclient.py" --server "$TB_MXG_IP:$TB_MXG_PORT" \
    --source "$TB_CLIENT_IP" --timeout 1 probe; then
    fail "a new connection was accepted during the drain"
else
    pass "new connections are refused during the drain"
fi
assert_eq "mxguard still runs while a transaction is in flight" 0 "$(kill -0 "$PID" 2>/dev/null; echo $?)"
wait "$bg"
assert_reply "the transaction in flight completed with the MX's 250" "$(cat "$TB/slow.dot")" 250
assert_file_count "$TB/spool/dane-ee" 2 "the drained message reached mx.dane-ee.test"
grace=$(awk '/stop_grace_period:/ { sub(/s$/, "", $2); print $2 }' "$MXG_SRC/docker-compose.yml")
for i in $(seq $((${grace:-10} * 10))); do
    kill -0 "$UNSHARE_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$UNSHARE_PID" 2>/dev/null; then
    fail "the container still runs ${grace:-10} s (stop_grace_period) after SIGTERM"
else
    wait "$UNSHARE_PID"
    assert_eq "the container exited with status 0 within stop_grace_period ($(($(date +%s) - t0)) s)" 0 "$?"
fi
assert_file_grep "the log says it drained" "$TB/mxguard.log" 'drained: all sessions finished'
tb_finish
