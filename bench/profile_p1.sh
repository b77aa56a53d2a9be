#!/usr/bin/env bash
# profile_p1: where the time of a P1 drain goes. One drain (and one floor UPDATE) on a server with
# pg_stat_statements, reporting:
#   - statements per batch (round trips) and time per statement (pg_stat_statements),
#   - WAL bytes and records per entry, drain vs floor (pg_stat_wal),
#   - passportd's own CPU (user+sys) and its hottest functions (perf, when available),
#   - the server backend's hottest functions while serving the drain (perf -p).
# Not a figure with a goal: a diagnosis to read next to P1.
#
# Environment: P1_USERS (default 5000), P1_PER_USER (default 40), PROFILE_PERF (default 1; 0 to
# skip perf), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=${P1_USERS:-5000}
PER_USER=${P1_PER_USER:-40}
PERF=${PROFILE_PERF:-1}
command -v perf >/dev/null 2>&1 || PERF=0

bench_build
bench_server_start "shared_preload_libraries = 'pg_stat_statements'" "pg_stat_statements.track = all" \
	"pg_stat_statements.max = 1000" "pg_stat_statements.track_planning = on" "track_io_timing = on"
work=$(mktemp -d /tmp/passport-bench-prof.XXXXXX)
trap 'rm -rf "$work"; bench_cleanup' EXIT
bench_sql postgres "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
bench_base_db prof_base "$USERS" "$PER_USER"
due=$(bench_sql prof_base "SELECT count(*) FROM passport_entries WHERE NOT processed")

wal_reset() { bench_sql postgres "SELECT pg_stat_reset_shared('wal'), pg_stat_statements_reset()" >/dev/null; }
wal_line() {
	bench_sql postgres "SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal" | awk -F'|' -v n="$due" -v what="$1" \
		'{ printf "  %-8s WAL: %d records (%.2f/entry), %d FPI, %d bytes (%.0f bytes/entry)\n", what, $1, $1 / n, $2, $3, $3 / n }'
}

# The floor, for the WAL comparison.
bench_copy prof_base prof_run
wal_reset
bench_sql prof_run "UPDATE passport_entries SET processed = true, processed_at = now() WHERE NOT processed" >/dev/null
wal_line floor >"$work/wal"

# The drain, with perf on the client and on its server backend.
bench_copy prof_base prof_run
wal_reset
start=$(bench_now_ns)
if ((PERF)); then
	perf record -e cpu-clock -F 499 -g -o "$work/client.data" -- \
		/usr/bin/time -f '%U %S %M' -o "$work/time" "$PASSPORTD" drain --dsn "$(bench_dsn prof_run)" \
		--log-level warning >"$work/drain.out" 2>"$work/perf-client.log" &
else
	/usr/bin/time -f '%U %S %M' -o "$work/time" "$PASSPORTD" drain --dsn "$(bench_dsn prof_run)" \
		--log-level warning >"$work/drain.out" &
fi
drain_pid=$!
backend=
for _ in $(seq 1 100); do
	backend=$(bench_sql postgres "SELECT pid FROM pg_stat_activity WHERE application_name = 'passportd drain' LIMIT 1")
	[[ -n "$backend" ]] && break
	sleep 0.05
done
if ((PERF)) && [[ -n "$backend" ]]; then
	perf record -e cpu-clock -F 499 -o "$work/server.data" -p "$backend" >"$work/perf-server.log" 2>&1 &
	server_perf=$!
fi
wait "$drain_pid"
end=$(bench_now_ns)
if [[ -n "${server_perf:-}" ]]; then
	kill -INT "$server_perf" 2>/dev/null || true
	wait "$server_perf" 2>/dev/null || true
fi
wal_line drain >>"$work/wal"
batches=$(sed -n 's/.*batches \([0-9]*\),.*/\1/p' "$work/drain.out")

echo "P1 profile: $due due entries ($USERS users x $PER_USER), one drain"
echo "  $(cat "$work/drain.out")"
echo "  wall $(((end - start) / 1000000)) ms; passportd user+sys CPU $(awk '{ printf "%.2f s, peak RSS %.1f MiB", $1 + $2, $3 / 1024 }' "$work/time")"
cat "$work/wal"
echo
echo "Statements of the drain (pg_stat_statements), by total time; per batch = calls / $batches batches:"
bench_psql postgres -P pager=off -c "
	SELECT round(total_exec_time)::bigint AS exec_ms, round(total_plan_time)::bigint AS plan_ms,
	       round((100 * total_exec_time / sum(total_exec_time) OVER ())::numeric, 1) AS pct,
	       calls, round((calls::numeric / greatest($batches, 1)), 2) AS per_batch,
	       round(mean_exec_time::numeric, 2) AS mean_ms, rows,
	       pg_size_pretty(wal_bytes) AS wal, shared_blks_hit + shared_blks_read AS blocks,
	       left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query
	  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
	 WHERE d.datname = 'prof_run' AND toplevel
	 ORDER BY total_exec_time DESC LIMIT 20"
bench_psql postgres -At -c "
	SELECT 'all statements: ' || sum(calls) || ' calls, ' || round(sum(total_exec_time)) || ' ms executing, '
	       || round(sum(total_plan_time)) || ' ms planning, '
	       || round(sum(calls)::numeric / greatest($batches, 1), 1) || ' per batch'
	  FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
	 WHERE d.datname = 'prof_run' AND toplevel"
if ((PERF)); then
	echo
	echo "passportd hottest functions (perf, self time):"
	perf report -i "$work/client.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
		grep -E '^ +[0-9]' | head -n 15 || true
	if [[ -f "$work/server.data" ]]; then
		echo
		echo "server backend hottest functions (perf -p $backend, self time):"
		perf report -i "$work/server.data" --stdio --no-children --sort dso,symbol 2>/dev/null |
			grep -E '^ +[0-9]' | head -n 20 || true
	fi
fi
