#!/usr/bin/env bash
# scripts/check-doc-refs.sh — every citation of docs/ARCHITECTURE.md in the code names a section
# that exists, and no comment cites a document outside the tree (DESIGN.md) or a tracker issue
# (docs/ARCHITECTURE.md §Conventions, "Citations"). Exits 1 listing file:line and the reason.
#
#   check-doc-refs.sh [SOURCE_ROOT]
#   check-doc-refs.sh --self-test     a small tree with good and bad citations: must pass/fail
#
# A citation is "docs/ARCHITECTURE.md §Name" (or a bare "§Name" later on the same line, as in
# "§Decision row 4, §Policy list"); Name must be a heading ("## Name", "### Name") or a bold
# item ("**Name.**") of docs/ARCHITECTURE.md. "§" followed by a digit is an RFC section, not
# checked. ctest: unit.doc_refs (tests/CMakeLists.txt).
set -uo pipefail
if [ "${1:-}" = "--self-test" ]; then
    t=$(mktemp -d "${TMPDIR:-/tmp}/check-doc-refs.XXXXXX") || exit 2
    mkdir -p "$t/docs" "$t/core"
    printf '## Reuse\n- **Line ends.** x\n' >"$t/docs/ARCHITECTURE.md"
    printf '/* a (docs/ARCHITECTURE.md §Reuse, §Line ends) */\n' >"$t/core/a.c"
    fails=0
    out=$(bash "$0" "$t") || { echo "self-test FAIL: good tree: $out"; fails=1; }
    printf '/* b (docs/ARCHITECTURE.md §Nowhere) */\n/* c (DESIGN §10) */\n/* d (issue #8) */\n' >"$t/core/b.c"
    out=$(bash "$0" "$t") && { echo "self-test FAIL: bad tree passed"; fails=1; }
    for want in "core/b.c:1: §Nowhere is not a section" "core/b.c:2: cites DESIGN.md" \
        "core/b.c:3: cites a tracker issue" "check-doc-refs: 3 problem(s)"; do
        grep -qF -- "$want" <<<"$out" || { echo "self-test FAIL: lacks [$want] in: $out"; fails=1; }
    done
    rm -rf "$t"
    [ "$fails" = 0 ] && echo "check-doc-refs self-test: all passed"
    exit "$fails"
fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
doc=$root/docs/ARCHITECTURE.md
[ -f "$doc" ] || { echo "check-doc-refs: no $doc" >&2; exit 2; }

# the names a citation may use
names=$(sed -n -e 's/^##* \(.*\)$/\1/p' -e 's/.*\*\*\([^*]*\)\.\*\*.*/\1/p' "$doc" | sort -u)

bad=0 n=0
while IFS=: read -r file line text; do
    case $text in
        *DESIGN.md* | *"DESIGN §"*)
            echo "$file:$line: cites DESIGN.md, which is not in the tree (cite docs/ARCHITECTURE.md)"
            bad=$((bad + 1)); continue ;;
    esac
    if [[ $text =~ [Ii]ssue\ ?#?[0-9] ]]; then
        echo "$file:$line: cites a tracker issue (cite docs/ARCHITECTURE.md or the RFC section)"
        bad=$((bad + 1)); continue
    fi
    [[ $text == *ARCHITECTURE* ]] || continue
    # every §Name after the first mention of ARCHITECTURE on the line
    rest=${text#*ARCHITECTURE}
    while [[ $rest =~ §([A-Za-z][A-Za-z0-9 /-]*) ]]; do
        cand=${BASH_REMATCH[1]}
        rest=${rest#*"§$cand"}
        n=$((n + 1))
        # the longest prefix of the words after § that is a known name
        found=""
        words=($cand)
        for ((k = ${#words[@]}; k > 0; k--)); do
            try="${words[*]:0:k}"
            if grep -qxF -- "$try" <<<"$names"; then found=$try; break; fi
        done
        if [ -z "$found" ]; then
            echo "$file:$line: §${cand% } is not a section of docs/ARCHITECTURE.md"
            bad=$((bad + 1))
        fi
    done
done < <(cd "$root" && grep -rnE 'ARCHITECTURE|DESIGN|[Ii]ssue ?#?[0-9]' \
    --include='*.c' --include='*.h' --include='*.sh' --include='*.py' --include='*.txt' \
    --include=CMakeLists.txt --exclude-dir='build*' --exclude-dir=.git \
    --exclude=check-doc-refs.sh . | sed 's|^\./||')

if [ "$bad" -gt 0 ]; then
    echo "check-doc-refs: $bad problem(s)"
    exit 1
fi
echo "check-doc-refs: ok ($n citations of docs/ARCHITECTURE.md)"
