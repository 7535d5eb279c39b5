#!/usr/bin/env bash
# mxguard set-up on a fresh Debian 12 machine (run as root, or with sudo).
#
#   scripts/setup.sh run    install dependencies, build, run mxguard on etc/mxguard.conf
#   scripts/setup.sh test   install dependencies, build (also with ASan+UBSan), run every test
#                           (unit + integration also under ASan+UBSan+LSan), the fuzzers and
#                           the Debian package's test (installs and purges it) and the
#                           container image's (builds it with podman, runs it)
#   scripts/setup.sh deps   install dependencies only
#   scripts/setup.sh build  build only (into ./build)
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=$(nproc 2>/dev/null || echo 2)

deps() {
    # The one list of Debian packages mxguard needs to build, run and test.
    local pkgs=(
        build-essential cmake pkg-config clang-14 libclang-rt-14-dev
        libuv1-dev libssl-dev openssl libgetdns-dev libidn2-dev libjansson-dev libcmocka-dev
        libcurl4-openssl-dev zlib1g-dev libsqlite3-dev libconfig-dev libmicrohttpd-dev libcrypt-dev
        libopendkim-dev opendkim-tools gnupg dns-root-data ca-certificates
        python3 nsd ldnsutils bind9-dnsutils bind9-utils swaks nginx
        libnet-ssleay-perl libio-socket-ssl-perl postfix iproute2 procps
        sqlite3   # tests: t_cli.sh edits a TLSRPT store
        jq        # tests: t_check_json.sh reads `mxguard check --json`; t_status.sh the dashboard
        chromium  # tests: t_status.sh loads the status page headless (DOM, console, screenshot)
        libpq-dev # state/: state.backend = "postgresql" (libpq)
        postgresql-15 postgresql-client-15   # tests: tb_start_pg's private cluster (initdb, psql)
        unbound valgrind   # bench/run.sh: Postfix's validating resolver; callgrind
        # tests/package/t_deb.sh: build the .deb with debhelper (dpkg-buildpackage; no fakeroot:
        # debian/control says Rules-Requires-Root: no), lint it, `man mxguard` once installed
        debhelper dpkg-dev lintian man-db
        podman mmdebstrap   # tests: scripts/container-test.sh builds the image and mounts it
    )
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: installing ${missing[*]} needs root (run it as root, or with sudo)" >&2
        exit 1
    fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # Debian starts nsd on install; the tests run their own instance.
    # So does unbound (bench/run.sh runs Postfix's resolver itself).
    for svc in nsd unbound; do
        if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
            systemctl stop "$svc" || true
        fi
    done
}

build() {
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$JOBS"
}

build_asan() {
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMXG_SANITIZE=ON >/dev/null
    cmake --build build-asan -j"$JOBS"
}

case "${1:-}" in
deps) deps ;;
build) build ;;
run)
    deps
    build
    rc=0
    ./build/mxguard run -c etc/mxguard.conf || rc=$?
    if [ "$rc" -ne 0 ]; then
        cat >&2 <<'HINT'
setup: mxguard stopped (see the error above). If it says that neither resolver path passes the
DNSSEC self-check, the resolver in /etc/resolv.conf strips DNSSEC and the root servers cannot be
reached from here (outbound DNS blocked?): set dns.servers in etc/mxguard.conf to a resolver that
passes DNSSEC (or a local validating resolver such as unbound), or try mxguard without DANE:
    MXGUARD_DANE_ENABLED=false ./build/mxguard run -c etc/mxguard.conf
HINT
    fi
    exit "$rc"
    ;;
test)
    deps
    # The legacy MTAs of tests/integration/t_mta_*.sh (Exim, OpenSMTPD, msmtp, Sendmail) conflict
    # as Debian packages: downloaded and unpacked into a cache (/var/cache/mxguard-tests/mta),
    # never installed; a test whose MTA is missing fails and says so.
    bash tests/integration/legacy_fetch.sh || echo "setup: could not fetch every legacy MTA" >&2
    build
    build_asan
    # Every stage runs; the first failure is remembered and decides the exit status.
    # Sanitizer runs: any ASan/LSan/UBSan report fails the test (UBSan halts; the integration
    # scripts collect mxguard's reports in the test-bed, tests/integration/lib.sh); LSan
    # suppressions are for third-party leaks only (scripts/lsan.supp).
    rc=0
    supp=$PWD/scripts/lsan.supp
    sanitized() {
        ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            LSAN_OPTIONS="suppressions=$supp:print_suppressions=0" "$@"
    }
    echo "== unit tests under ASan+UBSan+LSan =="
    (cd build-asan && sanitized ctest -L unit --output-on-failure) || rc=1
    echo "== unit tests (release build) =="
    (cd build && ctest -L unit --output-on-failure) || rc=1
    echo "== Debian package: build, lintian, install, purge (tests/package/t_deb.sh) =="
    (cd build && ctest -L package --output-on-failure) || rc=1
    echo "== fuzzing: every fuzz/ target ${FUZZ_SECONDS:-20} s (scripts/fuzz.sh) =="
    FUZZ_SECONDS=${FUZZ_SECONDS:-20} scripts/fuzz.sh || rc=1
    # The integration suite runs once, against the sanitized binary: the same scenarios,
    # and any ASan/LSan/UBSan finding fails its test. (Twice would double the CI time;
    # MXG_IT_RELEASE=1 also runs it against the release build.)
    echo "== integration tests under ASan+UBSan+LSan =="
    (cd build-asan && sanitized ctest -L integration --output-on-failure) || rc=1
    if [ "${MXG_IT_RELEASE:-0}" = 1 ]; then
        echo "== integration tests (release build) =="
        (cd build && ctest -L integration --output-on-failure) || rc=1
    fi
    # The container image: a minbase base from the Debian mirror, podman build, and the image's
    # entrypoint run against the test-bed (scripts/container-test.sh; ~5 min from nothing).
    echo "== container image: build and run against the test-bed (scripts/container-test.sh) =="
    (cd build && ctest -L container --output-on-failure) || rc=1
    exit "$rc"
    ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
