# hostile_lib.sh — the hostile-MX suite's test-bed (sourced by t_hostile_*.sh after lib.sh).
#
# hostile_bed — nsd, hostile_mx.py on 127.0.70.160-165 (see mkzones.sh: hostile.test MX 10/20
# on .160/.161, hostile-dane.test on .162 (TLSA 3 1 1), hostile2.test on .163 (the second leg),
# .164 the queue's bounce route, hostile-rua.test on .165 (TLSRPT report mail)) and one
# mxguard (listener :10025, queue listener :10026) with short timeouts:
# upstream_command 1 s, quit 1 s, final_reply 2 s, connect 2 s; TLSRPT counters flushed every 250 ms;
# queue retry after 1 h (a row sees one attempt), bounce route .164.
# hostile_rows PATH — run the rows of hostile_table.txt for PATH (hostile_run.py) and count
# its ok/FAIL lines as assertions (XFAIL/XPASS lines are reported, not counted as failures).
# hostile_rows PATH pipelining REGEX — the rows of PATH whose id matches REGEX (HOSTILE_ONLY
# wins) again, with the hostile MX offering PIPELINING (the first RCPT rides with MAIL): the
# same outcomes are expected.

HOSTILE_TABLE=${HOSTILE_TABLE:-$TB_LIB_DIR/hostile_table.txt}
HOSTILE_QPORT=10026

hostile_bed() {
    tb_start_dns
    local certs="$TB/dns/certs" i
    : >"$TB/hostile.events"
    echo '{"rev": "-"}' >"$TB/hostile.control"
    mkdir -p "$TB/spool/hostile"
    tb_spawn hostile "$PYTHON" "$TB_LIB_DIR/hostile_mx.py" \
        --listen "127.0.70.160:$TB_MX_PORT:mx1.hostile.test" \
        --listen "127.0.70.161:$TB_MX_PORT:mx2.hostile.test" \
        --listen "127.0.70.162:$TB_MX_PORT:mx.hostile-dane.test" \
        --listen "127.0.70.163:$TB_MX_PORT:mx.hostile2.test" \
        --listen "127.0.70.164:$TB_MX_PORT:wrong.invalid.test" \
        --listen "127.0.70.165:$TB_MX_PORT:mx.hostile-rua.test" \
        --certs "$certs" --control "$TB/hostile.control" --events "$TB/hostile.events" \
        --spool "$TB/spool/hostile" --ready-file "$TB/hostile.ready"
    for i in $(seq 100); do
        [ -e "$TB/hostile.ready" ] && break
        tb_alive hostile || break
        sleep 0.1
    done
    [ -e "$TB/hostile.ready" ] || { tail -n 20 "$TB/hostile.log"; tb_die "hostile_mx.py did not start"; }

    local q='queue: { lifetime = "1d"; retry_backoff = "1h"; retry_backoff_max = "1h";'
    q="$q"' scan_interval = "250ms"; bounce_route = "[127.0.70.164]:2525"; };'
    local r='tlsrpt: { flush_interval = "250ms"; send_check_interval = "1h"; submitter = "rpt-sender.test";'
    r="$r"' organization_name = "mxguard hostile test"; contact_info = "mailto:postmaster@rpt-sender.test";'
    r="$r"' max_attempts = 2; retry_backoff = "1s";'
    r="$r"" dkim_key_file = \"$TB/dns/dkim/rpt-sender.key\"; dkim_selector = \"tlsrpt2024\"; };"
    tb_write_config "$q" "$r"
    sed -i -e 's/upstream_command = "5s";/upstream_command = "1s";\n  quit = "1s";/' \
        -e 's/final_reply = "8s";/final_reply = "2s";/' \
        -e "s/hostname = \"mxguard.test\";/hostname = \"mxguard.test\";\n  queue_listen = [\"$TB_MXG_IP:$HOSTILE_QPORT\"];/" \
        "$TB/mxguard.conf"
    # `mxguard report send` (report path) runs on a copy of the TLSRPT database in $TB/rstate
    sed "s#directory = \"$TB/state\"#directory = \"$TB/rstate\"#" "$TB/mxguard.conf" >"$TB/rpt.conf"
    tb_start_mxguard
}

hostile_rows() {
    local path=$1 pipe=${2:-} line only=${HOSTILE_ONLY:-}
    local out=$path
    if [ "$pipe" = pipelining ]; then
        out=$path-pipelining
        only=${HOSTILE_ONLY:-$3}
    fi
    "$PYTHON" "$TB_LIB_DIR/hostile_run.py" --tb "$TB" --bin "$MXG_BIN" --table "$HOSTILE_TABLE" \
        --path "$path" ${only:+--only "$only"} ${pipe:+--pipelining} \
        >"$TB/hostile-$out.out" 2>"$TB/hostile-$out.err"
    local rc=$?
    path=$out
    echo "# hostile_run.py exit $rc"
    [ "$rc" = 0 ] || fail "hostile_run.py exited with $rc: $(tail -n 3 "$TB/hostile-$path.err")"
    while IFS= read -r line; do
        case $line in
            "ok   - "*) pass "${line#ok   - }" ;;
            "FAIL - "*) fail "${line#FAIL - }" ;;
            "XPASS "*) echo "$line"; HOSTILE_XPASS=$((${HOSTILE_XPASS:-0} + 1)) ;;
            *) echo "$line" ;;
        esac
    done <"$TB/hostile-$path.out"
    if grep -q Traceback "$TB/hostile-$path.err"; then
        cat "$TB/hostile-$path.err"
        fail "hostile_run.py crashed"
    fi
}

# hostile_rpt_db — the report path's TLSRPT database: one delivery to hostile.test (whose
# _smtp._tls rua is mailto:rua@hostile-rua.test), counted and flushed, copied to $TB/rpt.db
hostile_rpt_db() {
    swaks_send rptseed --to seed@hostile.test
    assert_reply "report path: a delivery to hostile.test to report on" "$SW_DOT" "250"
    sleep 0.6 # > tlsrpt.flush_interval (250 ms), with room for a slow tick
    "$PYTHON" - "$TB/state/tlsrpt.db" "$TB/rpt.db" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst)
PY
    [ -s "$TB/rpt.db" ] || tb_die "no TLSRPT database to report from"
}
