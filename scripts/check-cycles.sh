#!/usr/bin/env bash
# scripts/check-cycles.sh — the link-graph check (docs/ARCHITECTURE.md §Layers): no two object
# files of the program call each other both ways, unless both belong to one module that is
# split by concern over several files behind one private header (the ONE_MODULE list below).
# Reads the symbols each object defines and uses (nm), so it sees what #include lines do not.
#
#   check-cycles.sh BUILD_DIR      check the objects of a configured and built tree
#   check-cycles.sh --self-test    build three tiny objects with a known cycle and assert that
#                                  it is found, and that an allowed module passes
# ctest: unit.cycles and unit.cycles_selftest (tests/CMakeLists.txt).
set -uo pipefail

# Modules whose files may call each other (one concern, one private header):
#   proxy/outbound/leg*.c   the SMTP client, split as Postfix splits src/smtp/ (leg_int.h)
ONE_MODULE='/proxy/outbound/leg[a-z_]*\.c\.o$'

# objects DIR: the program's object files in a CMake build tree — those its current targets
# (CMakeFiles/TargetDirectories.txt: mxguard, mxg_*) link, so objects left behind by a target
# that no longer exists are not read; any other DIR: every *.o under it
objects() {
    local dir=$1 t
    if [ -f "$dir/CMakeFiles/TargetDirectories.txt" ]; then
        while read -r t; do
            case ${t##*/} in mxguard.dir | mxg_*.dir) ;; *) continue ;; esac
            [ -f "$t/link.txt" ] || continue
            tr ' ' '\n' <"$t/link.txt" | grep '\.o$' | sed "s|^|$dir/|"
        done <"$dir/CMakeFiles/TargetDirectories.txt" | sort -u
    else
        find "$dir" -name '*.o' | sort
    fi
}

# cycles DIR ALLOW: prints "a <-> b" per two-object cycle among DIR's objects
cycles() {
    local dir=$1 allow=$2 o s d a b
    declare -A def=() edge=()
    local objs
    objs=$(objects "$dir")
    [ -n "$objs" ] || { echo "check-cycles: no object files under $dir (build first)" >&2; return 2; }
    for o in $objs; do
        while read -r s; do def[$s]=$o; done < <(nm --defined-only -g "$o" | awk 'NF==3{print $3}')
    done
    for o in $objs; do
        while read -r s; do
            d=${def[$s]:-}
            [ -n "$d" ] && [ "$d" != "$o" ] && edge["$o|$d"]=1
        done < <(nm -u "$o" | awk '{print $NF}')
    done
    for s in "${!edge[@]}"; do
        a=${s%|*} b=${s#*|}
        [[ "$a" < "$b" ]] || continue
        [ -n "${edge[$b|$a]:-}" ] || continue
        if [ -n "$allow" ] && [[ "$a" =~ $allow ]] && [[ "$b" =~ $allow ]]; then continue; fi
        echo "${a#"$dir"/} <-> ${b#"$dir"/}"
    done | sort
}

self_test() {
    local t rc=0 out
    t=$(mktemp -d) || return 1
    trap 'rm -rf "$t"' RETURN
    mkdir -p "$t/b/x" "$t/b/proxy/outbound"
    printf 'int b(void);\nint a(void) { return b(); }\n' >"$t/a.c"
    printf 'int a(void);\nint b(void) { return a() + 1; }\n' >"$t/b.c"
    printf 'int b(void);\nint c(void) { return b(); }\n' >"$t/c.c"
    cc -c -o "$t/b/x/a.c.o" "$t/a.c" && cc -c -o "$t/b/x/b.c.o" "$t/b.c" &&
        cc -c -o "$t/b/x/c.c.o" "$t/c.c" || return 1
    out=$(cycles "$t/b" "$ONE_MODULE")
    [ "$out" = "x/a.c.o <-> x/b.c.o" ] || { echo "self-test: a<->b not found alone: [$out]"; rc=1; }
    mv "$t/b/x/a.c.o" "$t/b/proxy/outbound/leg.c.o"
    mv "$t/b/x/b.c.o" "$t/b/proxy/outbound/leg_tls.c.o"
    out=$(cycles "$t/b" "$ONE_MODULE")
    [ -z "$out" ] || { echo "self-test: an allowed module was reported: [$out]"; rc=1; }
    [ $rc = 0 ] && echo "check-cycles self-test: ok"
    return $rc
}

case "${1:-}" in
--self-test) self_test; exit ;;
"" | -h | --help) sed -n '2,10p' "$0"; exit 2 ;;
esac
out=$(cycles "$1" "$ONE_MODULE") || exit 2
if [ -n "$out" ]; then
    echo "check-cycles: object files that call each other both ways (docs/ARCHITECTURE.md §Layers):"
    echo "$out" | sed 's/^/  /'
    exit 1
fi
echo "check-cycles: no two-file link cycle outside one-module groups"
