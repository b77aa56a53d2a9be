#!/usr/bin/env bash
# P6 writers: what passportd's wake-ups cost the application's inserts. 8 pgbench clients insert
# one entry per transaction, with durable commits (fsync, synchronous_commit, full_page_writes on,
# as on Supabase), while `passportd run` keeps up. The insert rate with the project's triggers
# (the wake-up gate of sql/030_wakeup_gate.sql) is compared with the rate with them disabled
# (ALTER TABLE passport_entries DISABLE TRIGGER USER), and, for reference, with the trigger that
# notified on every statement (before the gate). Modes alternate within each run, each on a fresh
# copy of the same database; figures are medians over the runs. Goal: gate / disabled >= 0.90.
#
# Also, for the gate: insert -> processed latency under that load (p50, p99; from the insert's
# created_at, i.e. the start of its transaction, so slightly longer than from its commit), the
# backlog when the writers stop, and how often the daemon armed (each arming lets inserts notify
# until the next notification reaches it).
#
# Environment: P6_CLIENTS (default 8), P6_SECONDS (default 20) per mode and run, P6_USERS (default
# 500), P6_MODES (default "gate disabled always"), P6_DAEMON=0 (no passportd: the trigger's own
# cost, nobody armed), BENCH_RUNS (default 3), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLIENTS=${P6_CLIENTS:-8}
SECONDS_PER_MODE=${P6_SECONDS:-20}
USERS=${P6_USERS:-500}
read -r -a MODES <<<"${P6_MODES:-gate disabled always}"
DAEMON=${P6_DAEMON:-1}
TRACKS=$((USERS / 5 * 4))

bench_build
work=$(mktemp -d /tmp/passport-bench-p6.XXXXXX)
daemon_pid=
cleanup_p6() {
	if [[ -n "$daemon_pid" ]]; then
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
	bench_cleanup
}
bench_server_start "${BENCH_DURABLE_SETTINGS[@]}" "track_commit_timestamp = on"
trap cleanup_p6 EXIT
bench_log_durability

bench_log "base database p6_base: $USERS users, no entries"
bench_empty_db p6_base "$USERS"
bench_finish_db p6_base

# One entry per transaction: a play of a track, routed to mediaid and coliseum (appendix B).
bench_pgbench_insert_script "$work/insert.sql" player.track_played "$USERS" "$TRACKS"

# The trigger function as it was before the gate: a notification for every statement.
ALWAYS_NOTIFY="CREATE OR REPLACE FUNCTION passport_entries_notify() RETURNS trigger LANGUAGE plpgsql AS
\$\$ BEGIN PERFORM pg_notify('passport_entries', ''); RETURN NULL; END \$\$"

# run_mode RUN MODE: one pgbench run against a fresh copy with passportd running; appends
# "MODE tps backlog p50 p99 visible_p99 arms RUN notifications inserts" to $work/results.
run_mode() {
	local run=$1 mode=$2 db=p6_run tps backlog lat arms=0 drained_by
	bench_copy p6_base "$db"
	case $mode in
	disabled) bench_sql "$db" "ALTER TABLE passport_entries DISABLE TRIGGER USER" >/dev/null ;;
	always) bench_sql "$db" "$ALWAYS_NOTIFY" >/dev/null ;;
	gate) ;;
	*) bench_die "unknown mode $mode" ;;
	esac
	if [[ $DAEMON == 1 ]]; then
		# A 1 s poll in every mode, so that with the triggers disabled the daemon also starts at
		# once rather than at its first 5 s poll (and, busy from the start, takes its CPU share).
		"$PASSPORTD" run --dsn "$(bench_dsn "$db")" --poll-interval 1 --log-level debug 2>"$work/daemon-$mode-$run.log" &
		daemon_pid=$!
		sleep 2 # connect, LISTEN, one empty look, arm: idle from here on
	fi
	# A session of our own LISTENs through the run and counts the notifications the inserts sent
	# (psql prints those that arrived when its next command completes).
	{ echo "LISTEN passport_entries;"; echo "\\! sleep $((SECONDS_PER_MODE + 2))"; echo "SELECT 1;"; } |
		psql -X -q -d "$(bench_dsn "$db")" >"$work/notifications-$mode-$run.txt" 2>&1 &
	listen_pid=$!
	sleep 0.5
	pgbench -n -c "$CLIENTS" -j 2 -T "$SECONDS_PER_MODE" -f "$work/insert.sql" "$(bench_dsn "$db")" \
		>"$work/pgbench-$mode-$run.txt" 2>&1 || bench_die "pgbench failed: $(tail -n 5 "$work/pgbench-$mode-$run.txt")"
	wait "$listen_pid" || true
	notified=$(grep -c 'Asynchronous notification "passport_entries"' "$work/notifications-$mode-$run.txt" || true)
	inserted=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/pgbench-$mode-$run.txt")
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench-$mode-$run.txt")
	backlog=$(bench_sql "$db" "SELECT count(*) FROM passport_entries WHERE NOT processed")
	if [[ $DAEMON != 1 ]]; then
		echo "$mode $tps - - - - - $run $notified $inserted" >>"$work/results"
		bench_log "run $run $mode (no daemon): $tps inserts/s"
		return
	fi
	# Keep up: everything processed within the poll interval plus a margin.
	drained_by=$(($(date +%s) + 30))
	while [[ $(bench_sql "$db" "SELECT count(*) FROM passport_entries WHERE NOT processed AND dead_at IS NULL") -gt 0 ]]; do
		[[ $(date +%s) -lt $drained_by ]] || bench_die "$mode: passportd did not drain within 30 s of the writers stopping"
		sleep 0.2
	done
	kill -TERM "$daemon_pid"
	wait "$daemon_pid" || bench_log "passportd run exited with $?: $(tail -n 5 "$work/daemon-$mode-$run.log")"
	daemon_pid=
	lat=$(bench_sql "$db" "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' ' ||
	                              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' ' ||
	                              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY visible_ms)::numeric, 1)
	                         FROM (SELECT extract(epoch FROM processed_at - created_at) * 1000 AS ms,
	                                      extract(epoch FROM pg_xact_commit_timestamp(xmin) - created_at) * 1000 AS visible_ms
	                                 FROM passport_entries WHERE processed) s")
	arms=$(grep -c 'listener: armed' "$work/daemon-$mode-$run.log" || true)
	echo "$mode $tps $backlog $lat $arms $run $notified $inserted" >>"$work/results"
	bench_log "run $run $mode: $tps inserts/s, $notified notifications for $inserted inserts, backlog $backlog at the end, latency p50/p99/visible p99 ms $lat, armed $arms times"
}

: >"$work/results"
for run in $(seq 1 "$BENCH_RUNS"); do
	# Alternate the order, so that a slow phase of the machine does not favour one mode.
	if ((run % 2)); then order=("${MODES[@]}"); else order=(); for ((i = ${#MODES[@]} - 1; i >= 0; i--)); do order+=("${MODES[i]}"); done; fi
	for mode in "${order[@]}"; do
		run_mode "$run" "$mode"
	done
done

col() { awk -v m="$1" -v c="$2" '$1 == m { print $c }' "$work/results" | bench_median; }
runs() { awk -v m="$1" '$1 == m { printf "%s ", $2 }' "$work/results"; }
echo "P6 writers: $CLIENTS pgbench clients, one insert per transaction, durable commits, $SECONDS_PER_MODE s per mode, $([[ $DAEMON == 1 ]] && echo "passportd run keeping up" || echo "no passportd"); median of $BENCH_RUNS runs"
for mode in "${MODES[@]}"; do
	bench_figure "$mode: inserts/s (runs)" "$(col "$mode" 2) ($(runs "$mode"))"
	bench_figure "$mode: notifications / inserts" "$(awk -v m="$mode" '$1 == m { n += $9; i += $10 } END { printf "%d / %d\n", n, i }' "$work/results")"
done
if [[ " ${MODES[*]} " == *" gate "* && " ${MODES[*]} " == *" disabled "* ]]; then
	ratio=$(bench_ratio "$(col gate 2)" "$(col disabled 2)")
	bench_figure "gate / triggers disabled" "$(awk -v v="$ratio" 'BEGIN { printf "%s (goal >= 0.90: %s)\n", v, (v + 0 >= 0.90) ? "met" : "NOT met" }')"
	# The two modes of one run ran back to back: their ratio is the least disturbed by a machine
	# whose speed drifts (a shared VM).
	paired=$(awk '$1 == "gate" { g[$8] = $2 } $1 == "disabled" { d[$8] = $2 }
	              END { for (r in g) if (r in d && d[r] > 0) printf "%.2f\n", g[r] / d[r] }' "$work/results")
	bench_figure "gate / disabled, median of per-run ratios" "$(bench_median <<<"$paired") (runs: $(sort -g <<<"$paired" | tr '\n' ' '))"
	bench_figure "gate / disabled, all inserts of all runs" "$(awk '$1 == "gate" { g += $10 } $1 == "disabled" { d += $10 }
	                                                          END { if (d > 0) printf "%.2f\n", g / d }' "$work/results")"
	if [[ " ${MODES[*]} " == *" always "* ]]; then
		bench_figure "notify on every insert / disabled" "$(bench_ratio "$(col always 2)" "$(col disabled 2)")"
	fi
	[[ $DAEMON == 1 ]] || exit 0
	bench_figure "gate: insert -> processed_at p50 ms" "$(col gate 4)"
	bench_figure "gate: insert -> processed_at p99 ms" "$(bench_goal "$(col gate 5)" 1000)"
	bench_figure "gate: insert -> processing commit p99 ms" "$(col gate 6)"
	bench_figure "gate: backlog when the writers stopped" "$(col gate 3)"
	bench_figure "gate: times the daemon armed" "$(col gate 7)"
fi
