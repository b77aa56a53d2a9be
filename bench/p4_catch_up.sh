#!/usr/bin/env bash
# P4 catch-up: `passportd run` restarted in front of USERS x PER_USER due entries, against
# `passportd drain` on an identical copy, both with no flags (their defaults). Goal: run clears the
# backlog within 1.2x of drain's time. The time of run is from its start until nothing is due and
# no transaction of it is open (polled every 250 ms: a psql every 50 ms cost a noticeable share of the 2 cores), so it includes connecting and the first claim.
# While run catches up, writers keep inserting (pgbench, P4C_INSERT_RATE entries/s for the first
# P4C_INSERT_SECONDS): their insert latency says whether new inserts still get through, and the
# run's time includes processing them.
#
# Environment: P4C_USERS (default 5000), P4C_PER_USER (default 40), P4C_INSERT_RATE (default 20;
# 0: no writers), P4C_INSERT_SECONDS (default 5), BENCH_RUNS (default 3), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=${P4C_USERS:-5000}
PER_USER=${P4C_PER_USER:-40}
INSERT_RATE=${P4C_INSERT_RATE:-20}
INSERT_SECONDS=${P4C_INSERT_SECONDS:-5}
GOAL=1.2

bench_build
bench_server_start
bench_base_db p4c_base "$USERS" "$PER_USER"
due=$(bench_sql p4c_base "SELECT count(*) FROM passport_entries WHERE NOT processed")
bench_log "$due due entries"

DRAINED_SQL="SELECT (NOT EXISTS (SELECT 1 FROM passport_entries WHERE processed IS NOT TRUE AND dead_at IS NULL
	AND (next_attempt_at IS NULL OR next_attempt_at <= now()))
	AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = 'p4c_run' AND application_name LIKE 'passportd%'
	AND application_name <> 'passportd listener' AND state NOT IN ('idle')))::int"

run_drain() {
	local start end
	bench_copy p4c_base p4c_run
	start=$(bench_now_ns)
	"$PASSPORTD" drain --dsn "$(bench_dsn p4c_run)" --log-level warning >/dev/null
	end=$(bench_now_ns)
	echo "$(((end - start) / 1000000))" >>"$work/drain"
}

run_service() {
	local start end pid writers='' since
	bench_copy p4c_base p4c_run
	since=$(bench_sql postgres "SELECT now()")
	start=$(bench_now_ns)
	"$PASSPORTD" run --dsn "$(bench_dsn p4c_run)" --log-level notice >"$work/run.log" 2>&1 &
	pid=$!
	if ((INSERT_RATE > 0)); then
		rm -f "$work"/pgbench_log.*
		pgbench -n -c 2 -j 1 -R "$INSERT_RATE" -T "$INSERT_SECONDS" -f "$work/insert.sql" --log \
			--log-prefix="$work/pgbench_log" "$(bench_dsn p4c_run)" >"$work/pgbench.txt" 2>&1 &
		writers=$!
	fi
	sleep 0.2
	until [[ "$(bench_sql postgres "SELECT 1 FROM pg_database WHERE datname = 'p4c_run'")" == 1 &&
		"$(bench_psql p4c_run -At -c "$DRAINED_SQL")" == 1 ]]; do
		kill -0 "$pid" 2>/dev/null || bench_die "passportd run exited: $(tail -n 5 "$work/run.log")"
		sleep 0.25
	done
	end=$(bench_now_ns)
	if [[ -n "$writers" ]]; then
		# Drained before the writers stopped: what they insert later is processed too (the
		# figure stays the backlog's time).
		wait "$writers" || bench_die "pgbench failed: $(tail -n 5 "$work/pgbench.txt")"
		until [[ "$(bench_psql p4c_run -At -c "$DRAINED_SQL")" == 1 ]]; do sleep 0.25; done
		# Insert latency in ms, one a line (pgbench's log: the third field, in microseconds).
		awk '{ printf "%.3f\n", $3 / 1000 }' "$work"/pgbench_log.* >>"$work/insert_ms"
		bench_sql p4c_run "SELECT count(*) FILTER (WHERE processed) || ' ' || count(*) FROM passport_entries
		                    WHERE created_at > '$since'" >>"$work/inserted"
	fi
	kill -TERM "$pid"
	wait "$pid" || bench_die "passportd run did not stop cleanly: $(tail -n 5 "$work/run.log")"
	echo "$(((end - start) / 1000000))" >>"$work/run"
}

work=$(mktemp -d /tmp/passport-bench-p4c.XXXXXX)
trap 'rm -rf "$work"; bench_cleanup' EXIT
: >"$work/drain"
: >"$work/run"
: >"$work/insert_ms"
: >"$work/inserted"
# shellcheck disable=SC2017 # integer division on purpose: passport_bench_users makes USERS / 5 artists, 4 tracks each
bench_pgbench_insert_script "$work/insert.sql" player.track_played "$USERS" "$((USERS / 5 * 4))"
for run in $(seq 1 "$BENCH_RUNS"); do
	if ((run % 2)); then run_drain; run_service; else run_service; run_drain; fi
	bench_log "run $run: drain $(tail -n 1 "$work/drain") ms, run $(tail -n 1 "$work/run") ms"
done

drain_ms=$(bench_median <"$work/drain")
run_ms=$(bench_median <"$work/run")
echo "P4 catch-up: $due due entries ($USERS users x $PER_USER), no flags, median of $BENCH_RUNS runs"
bench_figure "passportd drain ms" "$drain_ms   runs: $(tr '\n' ' ' <"$work/drain")"
bench_figure "passportd run until drained ms" "$run_ms   runs: $(tr '\n' ' ' <"$work/run")"
bench_figure "ratio run / drain" "$(bench_goal "$(bench_ratio "$run_ms" "$drain_ms")" "$GOAL")"
if ((INSERT_RATE > 0)); then
	bench_figure "inserts during run's catch-up" "$INSERT_RATE/s for ${INSERT_SECONDS} s, $(awk '{ p += $1; n += $2 } END { print p " of " n }' "$work/inserted") processed by the end"
	bench_figure "insert latency ms p50 / p99 / max" "$(bench_percentile 50 <"$work/insert_ms") / $(bench_percentile 99 <"$work/insert_ms") / $(sort -g "$work/insert_ms" | tail -n 1)"
fi
