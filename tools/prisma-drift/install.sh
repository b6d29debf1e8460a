#!/usr/bin/env bash
# Installs what the Prisma drift check needs (ice_pipeline_tests/test_prisma_drift.py), for `make install`:
# Node.js and npm (Debian's packages, when missing and run as root), then the pinned Prisma CLI
# (package-lock.json) with `npm ci` into $1 -- the folder run-check.sh uses as PRISMA_DRIFT_DIR.
# Never fails the install: without Node.js the test skips and says why.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${1:?target folder}
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "prisma-drift: installing nodejs and npm (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; } >/dev/null \
            || echo "prisma-drift: apt-get could not install nodejs/npm; the drift test will be skipped" >&2
    else
        echo "prisma-drift: npm not found (install Node.js 18+ and npm); the drift test will be skipped" >&2
    fi
fi
command -v npm >/dev/null 2>&1 || exit 0
mkdir -p "$target"
cp "$here/package.json" "$here/package-lock.json" "$target/"
cd "$target" && npm ci --ignore-scripts --no-audit --no-fund --silent \
    || echo "prisma-drift: npm ci failed; run-check.sh will try again when the test runs" >&2
exit 0
