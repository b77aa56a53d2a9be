#!/usr/bin/env bash
# Online schema: `passport-migrate schema` on a live passport_entries of ONLINE_ROWS rows (default
# 1,000,000, the seed layout) while two writers insert one row at a time and a third client holds
# a lock for the first 3 s; prints how long schema took and the slowest insert (goal: < 1 s).
# It runs tests/production/test_online_schema at that size (the test runs it at 100,000 rows):
# the test's own assertions (the slowest insert under 1 s, every index valid) apply.
#
# Environment: ONLINE_ROWS (default 1000000), BUILD_DIR (default build-bench-online, a meson
# build of this tree with its tests).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build-bench-online}

if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
	meson setup "$BUILD_DIR" "$ROOT" --buildtype=release >/dev/null
fi
ninja -C "$BUILD_DIR" tests/production/ptest_online_schema daemon/passportd migrate/passport-migrate >/dev/null
# The test starts a private server of its own; PASSPORT_TEST_PGHOST only says one may be started.
PASSPORT_TEST_PGHOST=${PASSPORT_TEST_PGHOST:-/tmp} \
PASSPORT_ONLINE_ROWS=${ONLINE_ROWS:-1000000} \
PASSPORTD="$BUILD_DIR/daemon/passportd" PASSPORT_MIGRATE="$BUILD_DIR/migrate/passport-migrate" \
PASSPORT_SOURCE_ROOT="$ROOT" \
	"$BUILD_DIR/tests/production/ptest_online_schema" | grep -E '^ +[0-9]{3} |^online schema:|^PASS'
