#!/usr/bin/env bash
# profile_p3: where the time of a backfill goes. One `passport-migrate backfill` (then a re-run
# with nothing new) and the seed SQL on identical copies, on a server with pg_stat_statements:
# time per statement, planning time, WAL bytes per row. A diagnosis to read next to P3.
#
# Environment: P3_ROWS (default 200000), P3_USERS (default 5000), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROWS=${P3_ROWS:-200000}
USERS=${P3_USERS:-5000}

bench_build
bench_server_start "shared_preload_libraries = 'pg_stat_statements'" "pg_stat_statements.track = all" \
	"pg_stat_statements.max = 1000" "pg_stat_statements.track_planning = on"
work=$(mktemp -d /tmp/passport-bench-prof3.XXXXXX)
trap 'rm -rf "$work"; bench_cleanup' EXIT
bench_sql postgres "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
bench_empty_db prof_base "$USERS"
bench_sql prof_base "SELECT passport_bench_legacy($ROWS, $USERS)" >/dev/null
bench_finish_db prof_base

reset() { bench_sql postgres "SELECT pg_stat_reset_shared('wal'), pg_stat_statements_reset()" >/dev/null; }
wal() {
	bench_sql postgres "SELECT wal_records, wal_bytes FROM pg_stat_wal" |
		awk -F'|' -v n="$ROWS" -v what="$1" '{ printf "  %-22s WAL: %.2f records/row, %.0f bytes/row\n", what, $1 / n, $2 / n }'
}
statements() {
	bench_psql postgres -P pager=off -c "
		SELECT round(total_exec_time)::bigint AS exec_ms, round(total_plan_time)::bigint AS plan_ms, calls,
		       round(mean_exec_time::numeric, 2) AS mean_ms, rows, pg_size_pretty(wal_bytes) AS wal,
		       left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query
		  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
		 WHERE d.datname = 'prof_run' AND toplevel
		 ORDER BY total_exec_time DESC LIMIT 8"
}
timed() {
	local start end
	start=$(bench_now_ns)
	"$@" >/dev/null
	end=$(bench_now_ns)
	echo "$(((end - start) / 1000000))"
}

echo "P3 profile: $ROWS legacy rows ($USERS users)"
bench_copy prof_base prof_run
reset
ms=$(timed bench_psql prof_run -f "$BENCH_DIR/seed_backfill.sql")
echo "seed SQL: $ms ms"
wal "seed SQL"

bench_copy prof_base prof_run
reset
ms=$(timed /usr/bin/time -f '%U %S' -o "$work/time" "$PASSPORT_MIGRATE" backfill --dsn "$(bench_dsn prof_run)" \
	--source all --progress never --json)
echo "backfill: $ms ms, client CPU $(awk '{ printf "%.2f s", $1 + $2 }' "$work/time")"
wal "backfill"
statements

reset
ms=$(timed "$PASSPORT_MIGRATE" backfill --dsn "$(bench_dsn prof_run)" --source all --progress never --json)
echo "re-run with nothing new: $ms ms"
statements
