#!/usr/bin/env bash
# P2 latency: with `passportd run` idle on a database holding USERS x PER_USER processed entries,
# insert COUNT single entries (one transaction each) paced at RATE per second and measure the time
# from each insert's commit to its processed_at (bench/latency.c). Goal: p50 <= 15 ms, p99 <= 60 ms.
#
# Environment: P2_COUNT (default 1000), P2_RATE (default 20), P2_USERS (default 5000),
# P2_PER_USER (default 40), P2_DURABLE=1 (durable commits, as on Supabase; default off),
# BENCH_RUNS (default 3), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=${P2_COUNT:-1000}
RATE=${P2_RATE:-20}
USERS=${P2_USERS:-5000}
PER_USER=${P2_PER_USER:-40}

bench_build
work=$(mktemp -d /tmp/passport-bench-p2.XXXXXX)
daemon_pid=
cleanup_p2() {
	if [[ -n "$daemon_pid" ]]; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
	bench_cleanup
}
cc -O2 -o "$work/latency" "$BENCH_DIR/latency.c" -I"$(pg_config --includedir)" -lpq -lm ||
	bench_die "cannot build bench/latency.c (needs cc and libpq-dev)"
if [[ "${P2_DURABLE:-0}" == 1 ]]; then
	bench_server_start "track_commit_timestamp = on" "${BENCH_DURABLE_SETTINGS[@]}"
else
	bench_server_start "track_commit_timestamp = on"
fi
trap cleanup_p2 EXIT

bench_log "base database p2_base: $USERS users x $PER_USER processed entries"
bench_empty_db p2_base "$USERS"
bench_sql p2_base "SELECT passport_bench_entries($USERS, $PER_USER, 1, true)" >/dev/null
bench_finish_db p2_base

: >"$work/results"
for run in $(seq 1 "$BENCH_RUNS"); do
	bench_copy p2_base p2_run
	"$PASSPORTD" run --dsn "$(bench_dsn p2_run)" --log-level warning 2>"$work/daemon.log" &
	daemon_pid=$!
	sleep 2 # connect, LISTEN, one empty claim: idle from here on
	"$work/latency" "$(bench_dsn p2_run)" "$COUNT" "$RATE" "$USERS" | tee "$work/run$run" >&2
	kill -TERM "$daemon_pid"
	wait "$daemon_pid" || bench_log "passportd run exited with $?: $(tail -n 5 "$work/daemon.log")"
	daemon_pid=
	grep '^RESULT' "$work/run$run" >>"$work/results"
done

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" "$work/results" | bench_median; }
p50=$(field p50_ms)
p99=$(field p99_ms)
echo "P2 latency: $COUNT single inserts at $RATE/s$([[ "${P2_DURABLE:-0}" == 1 ]] && echo ", durable commits"), passportd run idle, $((USERS * PER_USER)) processed entries; median of $BENCH_RUNS runs"
bench_figure "commit -> processed_at p50 ms" "$(bench_goal "$p50" 15)"
bench_figure "commit -> processed_at p90 ms" "$(field p90_ms)"
bench_figure "commit -> processed_at p99 ms" "$(bench_goal "$p99" 60)"
bench_figure "commit -> processed_at max ms" "$(field max_ms)"
bench_figure "commit -> processing commit p50 ms" "$(field visible_p50_ms)"
bench_figure "commit -> processing commit p99 ms" "$(field visible_p99_ms)"
bench_figure "runs p50 / p99 ms" "$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "p50_ms") a = kv[2]; if (kv[1] == "p99_ms") b = kv[2] } printf "%s/%s  ", a, b }' "$work/results")"
