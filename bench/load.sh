#!/usr/bin/env bash
# bench/load.sh [SESSIONS [MESSAGES [CONCURRENCY [SIZE]]]] — the full-size load run with the
# accounting check: tests/integration/t_load.sh with a cold burst of
# MXG_LOAD_COLD (default SESSIONS) sessions against empty caches, SESSIONS (default 1000)
# inbound sessions open at once (twice), then MESSAGES (default 5000) sessions CONCURRENCY
# (default 200) at a time, SIZE-octet messages (default 1024). Prints bench/load.py's table per
# phase and a summary line per phase; exit status 0 only if every check held. The test-bed's
# nsd keeps its default response rate limit, 200 answers/s (MXG_LOAD_DNS_RRL=N sets another,
# 0 = off); mxguard's DNS goes over TCP, which the limit does not touch.
#   MXG_BIN=build/mxguard bench/load.sh 2000 10000 500
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export MXG_SRC=${MXG_SRC:-$(cd "$here/.." && pwd)}
export MXG_BIN=${MXG_BIN:-$MXG_SRC/build/mxguard}
export MXG_LOAD_SESSIONS=${1:-1000}
export MXG_LOAD_MESSAGES=${2:-5000}
export MXG_LOAD_CONCURRENCY=${3:-200}
export MXG_LOAD_COLD=${MXG_LOAD_COLD:-$MXG_LOAD_SESSIONS} # the cold burst (phase 0)
export MXG_LOAD_SIZE=${4:-1024}
need=$(( (MXG_LOAD_COLD > MXG_LOAD_SESSIONS ? MXG_LOAD_COLD : MXG_LOAD_SESSIONS) * 3 + 1024 ))
[ "$(ulimit -n)" -ge "$need" ] || ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "# bench/load.sh: $MXG_LOAD_SESSIONS sessions at once, then $MXG_LOAD_MESSAGES sessions" \
    "$MXG_LOAD_CONCURRENCY at a time, ${MXG_LOAD_SIZE}-octet messages; $(nproc) CPUs; open files $(ulimit -n)"
exec bash "$MXG_SRC/tests/integration/t_load.sh"
