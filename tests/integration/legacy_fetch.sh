#!/usr/bin/env bash
# legacy_fetch.sh [MTA...] — download and unpack the legacy MTAs the t_mta_*.sh tests run
# (legacy_lib.sh: lg_fetch) into their cache, so the tests need no network. Called by
# `scripts/setup.sh deps`; default: every MTA.
set -u
LG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$LG_DIR/legacy_lib.sh"
rc=0
for mta in "${@:-exim opensmtpd msmtp sendmail}"; do
    for m in $mta; do
        if root=$(lg_fetch "$m"); then echo "legacy MTA $m: $root"; else rc=1; fi
    done
done
exit $rc
