#!/usr/bin/env bash
# scripts/check-layers.sh — the layer check (docs/ARCHITECTURE.md §Layers): every
# `#include "..."` in the source folders points down the layer diagram, to a folder in the
# including folder's allowed list, and so does every library of CMakeLists.txt's link lines.
# Exits 1 listing each offending file:line and edge.
#
#   check-layers.sh [SOURCE_ROOT]     check the tree (default: the script's parent folder)
#   check-layers.sh --self-test       run the checker on small trees with known edges and
#                                     assert that it passes the good one and fails the bad ones
#
# An include is resolved as the compiler does: relative to the including file first, then
# relative to SOURCE_ROOT (the one include directory, CMakeLists.txt). Every .c/.h under a
# top-level folder other than those in SKIP must belong to a folder of the table: a new folder
# is a decision (add a row here and to the diagram in docs/ARCHITECTURE.md), not an accident.
# ctest: unit.layers and unit.layers_selftest (tests/CMakeLists.txt).
set -uo pipefail

# ---- The layer table: folder, line of the diagram (higher = further up), allowed folders.
# A folder may always include itself. Keep in step with docs/ARCHITECTURE.md §Layers.
LAYERS='
app             6  proxy/inbound proxy/outbound policy report dane dns http tls smtp spool state core
proxy/inbound   5  proxy/outbound spool smtp tls core
proxy/outbound  4  policy report dane dns tls smtp spool core
policy          3  dane dns http tls core
report          3  dns http smtp core
dane            2  dns tls core
dns             1  core
http            1  core
tls             1  core
smtp            1  core
state           1  core
spool           1  smtp core
core            0
'
# Top-level folders that are not part of the layered program (tests may include anything).
SKIP='tests fuzz bench docs etc scripts'

declare -A RANK ALLOW
load_table() {
    local line folder rank deps d bad=0
    while read -r line; do
        [ -z "$line" ] && continue
        read -r folder rank deps <<<"$line"
        RANK[$folder]=$rank
        ALLOW[$folder]=" $deps "
    done <<<"$LAYERS"
    # the table itself must point down (or sideways): a row that allows an upward edge is a typo
    for folder in "${!ALLOW[@]}"; do
        for d in ${ALLOW[$folder]}; do
            if [ -z "${RANK[$d]:-}" ]; then
                echo "check-layers: table: $folder allows unknown folder $d" >&2; bad=1
            elif [ "${RANK[$d]}" -gt "${RANK[$folder]}" ]; then
                echo "check-layers: table: $folder allows $d, which is above it" >&2; bad=1
            fi
        done
    done
    return $bad
}

# normalise PATH: drop "." and resolve ".." lexically (no file system access)
normalise() {
    local IFS=/ part out=()
    for part in $1; do
        case $part in
            '' | .) ;;
            ..) if [ ${#out[@]} -gt 0 ]; then unset 'out[${#out[@]}-1]'; else out+=(..); fi ;;
            *) out+=("$part") ;;
        esac
    done
    local joined="${out[*]}"
    printf '%s' "$joined"
}

# folder_of RELPATH: the deepest table folder containing RELPATH, or "" if none
folder_of() {
    local dir=${1%/*} best=""
    [ "$dir" = "$1" ] && dir=""
    while [ -n "$dir" ]; do
        if [ -n "${RANK[$dir]:-}" ]; then best=$dir; break; fi
        [ "${dir%/*}" = "$dir" ] && break
        dir=${dir%/*}
    done
    printf '%s' "$best"
}

# check ROOT: prints violations, returns 1 if any
check_tree() {
    local root=$1 nbad=0 nfiles=0 nedges=0 top f rel from lineno inc target to why
    local -a files=()
    for top in "$root"/*/; do
        top=${top%/}; top=${top##*/}
        case " $SKIP " in *" $top "*) continue ;; esac
        case $top in build | build-* | .*) continue ;; esac
        while IFS= read -r -d '' f; do files+=("$f"); done \
            < <(find "$root/$top" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
    done
    for f in "${files[@]}"; do
        rel=${f#"$root"/}
        from=$(folder_of "$rel")
        nfiles=$((nfiles + 1))
        if [ -z "$from" ]; then
            echo "$rel: folder ${rel%/*}/ is not in the layer table (scripts/check-layers.sh, docs/ARCHITECTURE.md §Layers)"
            nbad=$((nbad + 1))
            continue
        fi
        lineno=0
        while IFS= read -r line || [ -n "$line" ]; do
            lineno=$((lineno + 1))
            [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]] || continue
            inc=${BASH_REMATCH[1]}
            nedges=$((nedges + 1))
            target=$(normalise "${rel%/*}/$inc")
            if [ ! -f "$root/$target" ]; then
                target=$(normalise "$inc")
                if [ ! -f "$root/$target" ]; then
                    echo "$rel:$lineno: #include \"$inc\" does not resolve to a file of the tree"
                    nbad=$((nbad + 1))
                    continue
                fi
            fi
            to=$(folder_of "$target")
            [ "$to" = "$from" ] && continue
            if [ -z "$to" ]; then
                why="${target%/*}/ is not a layer"
            elif [ "${RANK[$to]}" -gt "${RANK[$from]}" ]; then
                why="upward: $to is above $from"
            elif [[ ${ALLOW[$from]} != *" $to "* ]]; then
                why="$to is not in $from's allowed list"
            else
                continue
            fi
            echo "$rel:$lineno: $from -> ${to:-${target%/*}/} (#include \"$inc\"): $why"
            nbad=$((nbad + 1))
        done <"$f"
    done
    if [ "$nbad" -gt 0 ]; then
        echo "check-layers: $nbad violation(s) in $nfiles files ($nedges includes)"
        return 1
    fi
    echo "check-layers: ok ($nfiles files, $nedges includes)"
    return 0
}

# ---- the link lines: every mxg_module(NAME "DEPS" [DIR]) of ROOT/CMakeLists.txt links only
# libraries of folders NAME's folder may include (a link line can allow what includes do not)
check_links() {
    local root=$1 nbad=0 line name deps dir from dep to why
    declare -A LIBDIR=()
    local re='^mxg_module\(([a-z_]+)[[:space:]]+"([^"]*)"[[:space:]]*([^)[:space:]]*)\)'
    while IFS= read -r line; do
        [[ $line =~ $re ]] || continue
        LIBDIR[${BASH_REMATCH[1]}]=${BASH_REMATCH[3]:-${BASH_REMATCH[1]}}
    done <"$root/CMakeLists.txt"
    while IFS= read -r line; do
        [[ $line =~ $re ]] || continue
        name=${BASH_REMATCH[1]} deps=${BASH_REMATCH[2]}
        from=${LIBDIR[$name]}
        for dep in ${deps//;/ }; do
            [[ $dep == mxg_* ]] || continue
            to=${LIBDIR[${dep#mxg_}]:-}
            if [ -z "$to" ]; then
                why="no mxg_module builds $dep"
            elif [ -z "${RANK[$from]:-}" ]; then
                why="$from is not in the layer table"
            elif [ "$to" = "$from" ]; then
                continue
            elif [ "${RANK[$to]}" -gt "${RANK[$from]}" ]; then
                why="upward: $to is above $from"
            elif [[ ${ALLOW[$from]} != *" $to "* ]]; then
                why="$to is not in $from's allowed list"
            else
                continue
            fi
            echo "CMakeLists.txt: mxg_$name links $dep: $why"
            nbad=$((nbad + 1))
        done
    done <"$root/CMakeLists.txt"
    if [ "$nbad" -gt 0 ]; then
        echo "check-layers: $nbad link line violation(s)"
        return 1
    fi
    echo "check-layers: link lines ok"
}

# ---- self-test: the checker passes a tree that follows the table and fails each bad edge
self_test() {
    local tmp fails=0 out
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-layers.XXXXXX") || return 1
    mk() { mkdir -p "$(dirname "$tmp/$1")"; printf '%s\n' "${@:2}" >"$tmp/$1"; }
    expect() { # expect NAME RC OUT PATTERN...
        local name=$1 want=$2 rc=$3 got=$4 p
        shift 4
        if [ "$rc" != "$want" ]; then
            echo "self-test FAIL: $name: exit $rc, want $want"; echo "$got"; fails=$((fails + 1)); return
        fi
        for p in "$@"; do
            if ! grep -qF -- "$p" <<<"$got"; then
                echo "self-test FAIL: $name: output lacks [$p]"; echo "$got"; fails=$((fails + 1)); return
            fi
        done
        echo "self-test ok: $name"
    }
    # a good tree: every kind of include spelling, all pointing down
    mk core/buf.h '/* core/buf.h */'
    mk core/log.c '#include "buf.h"'
    mk smtp/stuff.h '#include "../core/buf.h"'
    mk spool/spool.h '#include "../smtp/stuff.h"' '#include "core/buf.h"'
    mk proxy/inbound/session.c '#include "../../spool/spool.h"' '  #  include "smtp/stuff.h"'
    mk app/main.c '#include "../proxy/inbound/session.c"' '#include <stdio.h>'
    out=$(check_tree "$tmp"); expect "a tree that follows the table passes" 0 $? "$out" "check-layers: ok (6 files, 7 includes)"

    # core includes a folder above it (the edge the issue names)
    mk core/log.c '#include "buf.h"' '/* comment */' '#include "../smtp/stuff.h"'
    out=$(check_tree "$tmp"); expect "core -> smtp fails" 1 $? "$out" \
        'core/log.c:3: core -> smtp (#include "../smtp/stuff.h"): upward: smtp is above core' \
        "check-layers: 1 violation(s)"
    mk core/log.c '#include "buf.h"'

    # spool includes the inbound side (upward, spelled from the include directory)
    mk spool/dsn.c '#include "spool.h"' '#include "proxy/inbound/session.c"'
    out=$(check_tree "$tmp"); expect "spool -> proxy/inbound fails" 1 $? "$out" \
        'spool/dsn.c:2: spool -> proxy/inbound (#include "proxy/inbound/session.c"): upward'
    rm "$tmp/spool/dsn.c"

    # a lower folder that is not in the allowed list (tls may include only core)
    mk tls/engine.c '#include "../spool/spool.h"'
    out=$(check_tree "$tmp"); expect "tls -> spool (same line, not allowed) fails" 1 $? "$out" \
        "tls/engine.c:1: tls -> spool" "spool is not in tls's allowed list"
    rm "$tmp/tls/engine.c"

    # a folder the table does not know, and an include that resolves to nothing
    mk proxy/check.c '#include "../core/buf.h"'
    mk dns/dns.c '#include "nowhere.h"'
    out=$(check_tree "$tmp"); expect "unknown folder and unresolved include fail" 1 $? "$out" \
        "proxy/check.c: folder proxy/ is not in the layer table" \
        'dns/dns.c:1: #include "nowhere.h" does not resolve' "check-layers: 2 violation(s)"
    rm "$tmp/proxy/check.c" "$tmp/dns/dns.c"

    # back to good; a table row that allows an upward edge is refused
    out=$(check_tree "$tmp"); expect "the repaired tree passes again" 0 $? "$out" "check-layers: ok"
    out=$(LAYERS=$'core 0 dns\ndns 1 core' load_table 2>&1); expect "a table that allows upward fails" 1 $? "$out" \
        "table: core allows dns, which is above it"

    # link lines: a library linking one of a folder above it (or outside its list) fails
    mk CMakeLists.txt 'mxg_module(core "PkgConfig::UV")' 'mxg_module(smtp "mxg_core;PkgConfig::IDN2")' \
        'mxg_module(inbound "mxg_smtp;mxg_core" proxy/inbound)'
    out=$(check_links "$tmp"); expect "link lines that follow the table pass" 0 $? "$out" "link lines ok"
    mk CMakeLists.txt 'mxg_module(core "mxg_smtp")' 'mxg_module(smtp "mxg_core")' \
        'mxg_module(tls "mxg_inbound")' 'mxg_module(inbound "mxg_smtp" proxy/inbound)'
    out=$(check_links "$tmp"); expect "upward link lines fail" 1 $? "$out" \
        "mxg_core links mxg_smtp: upward: smtp is above core" \
        "mxg_tls links mxg_inbound: upward: proxy/inbound is above tls" "2 link line violation(s)"

    rm -rf "$tmp"
    if [ "$fails" -gt 0 ]; then echo "check-layers self-test: $fails failure(s)"; return 1; fi
    echo "check-layers self-test: all passed"
}

load_table || exit 2
if [ "${1:-}" = "--self-test" ]; then
    self_test
    exit $?
fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
[ -d "$root" ] || { echo "check-layers: no such folder: $root" >&2; exit 2; }
root=$(cd "$root" && pwd)
check_tree "$root"; rc=$?
check_links "$root" || rc=1
exit $rc
