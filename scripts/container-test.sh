#!/usr/bin/env bash
# container-test.sh — build the container image (Dockerfile) without an image registry and
# exercise it against the integration test-bed (tests/container/checks.sh).
#
#   scripts/container-test.sh [--fresh-base] [--remove-base] [--keep-image]
#
# As root, on Debian 12 (Debian's package mirror is the only network it needs):
#  1. the base image: `mmdebstrap --variant=minbase bookworm` imported into podman as
#     localhost/mxguard-base:bookworm-minbase (~1 min). An existing one is reused unless
#     --fresh-base; it is kept for the next run unless --remove-base.
#  2. `podman build --isolation chroot --build-arg BASE=<that image>` of the Dockerfile.
#  3. the image's file system is mounted (podman create + podman mount) and
#     tests/container/checks.sh runs its entrypoint with unshare + chroot (`podman run` does not
#     work on the development machines: crun "cgroups in hybrid mode not supported"), in a
#     network namespace of its own (MXG_CTR_NETNS=0: in this one; the test-bed uses
#     127.0.70.0/24).
#  4. the container, the image and the build's intermediate images are removed (--keep-image
#     keeps the image localhost/mxguard:container-test).
# Prints the time of each step, the image size, and exits non-zero if anything failed.
# Installs podman and mmdebstrap (and the test-bed's packages, scripts/setup.sh deps) if missing.
set -u
set -o pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE_IMAGE=localhost/mxguard-base:bookworm-minbase
IMAGE=localhost/mxguard:container-test
FRESH_BASE=0
REMOVE_BASE=0
KEEP_IMAGE=0
for a in "$@"; do
    case $a in
        --fresh-base) FRESH_BASE=1 ;;
        --remove-base) REMOVE_BASE=1 ;;
        --keep-image) KEEP_IMAGE=1 ;;
        *) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "container-test: run as root" >&2; exit 1; }

T0=$(date +%s)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mxg-container.XXXXXX")
CTR=""
MNT=""
NS=""
DANGLING_BEFORE=""

# step NAME — print how long the script has run so far
step() { echo "== container-test: $1 (t=$(($(date +%s) - T0)) s)"; }

# cleanup — unmount and remove what this run made (the base image only with --remove-base)
cleanup() {
    local id
    if [ -n "$CTR" ]; then
        podman umount "$CTR" >/dev/null 2>&1
        podman rm -f "$CTR" >/dev/null 2>&1
    fi
    [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
    [ "$KEEP_IMAGE" = 1 ] || podman rmi -f "$IMAGE" >/dev/null 2>&1
    # the build stage's image (untagged): what is dangling now and was not before this run
    for id in $(podman images -q --filter dangling=true 2>/dev/null); do
        grep -qx "$id" <<<"$DANGLING_BEFORE" || podman rmi -f "$id" >/dev/null 2>&1
    done
    [ "$REMOVE_BASE" = 1 ] && podman rmi -f "$BASE_IMAGE" >/dev/null 2>&1
    rm -rf "$WORK"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "packages"
bash "$SRC/scripts/setup.sh" deps || exit 1
need=()
for p in podman mmdebstrap; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" || exit 1
fi
DANGLING_BEFORE=$(podman images -q --filter dangling=true 2>/dev/null)

if [ "$FRESH_BASE" = 1 ] || ! podman image exists "$BASE_IMAGE"; then
    step "base image: mmdebstrap --variant=minbase bookworm"
    if ! mmdebstrap --quiet --variant=minbase --format=tar bookworm "$WORK/base.tar"; then
        echo "container-test: mmdebstrap failed" >&2; exit 1
    fi
    podman import --quiet "$WORK/base.tar" "$BASE_IMAGE" >/dev/null || exit 1
    rm -f "$WORK/base.tar"
else
    step "base image: reusing $BASE_IMAGE (--fresh-base makes a new one)"
fi

step "podman build"
# (the two --ulimit: without them crun fails on setrlimit on these machines)
if ! podman build --quiet --isolation chroot --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 \
    --build-arg BASE="$BASE_IMAGE" -t "$IMAGE" "$SRC" >"$WORK/build.log" 2>&1; then
    tail -n 60 "$WORK/build.log"
    echo "container-test: podman build failed" >&2
    exit 1
fi
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "== container-test: image $IMAGE: $SIZE bytes ($((SIZE / 1000000)) MB)"

step "checks"
CTR=$(podman create "$IMAGE") || exit 1
MNT=$(podman mount "$CTR") || exit 1
run=(bash "$SRC/tests/container/checks.sh" "$MNT" "$IMAGE")
if [ "${MXG_CTR_NETNS:-1}" = 1 ]; then
    NS=mxg-ctr-$$
    ip netns add "$NS" || exit 1
    ip netns exec "$NS" ip link set lo up || exit 1
    run=(ip netns exec "$NS" "${run[@]}")
fi
"${run[@]}"
rc=$?
step "done, checks exit status $rc"
exit $rc
