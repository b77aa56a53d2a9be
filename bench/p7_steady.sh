#!/usr/bin/env bash
# P7 steady state: entries arrive continuously, as in production (about one due entry per user at
# a time), with durable commits (fsync, synchronous_commit, full_page_writes on), and `passportd
# run` keeps up. pgbench clients insert single entries at a fixed rate (`pgbench --rate`): 85 % plays
# of a track (routed to mediaid and coliseum: a DNA write each) and 15 % pauses (coliseum only),
# spread uniformly over USERS users whose history (HISTORY processed entries each, with their
# coliseum_metrics and dna_evolution rows) is already in the tables.
#
# Two figures, each for the candidate (PASSPORTD, built from this tree) and a baseline measured in
# the same run (BASELINE_PASSPORTD, e.g. main's binary; without it only the candidate runs):
#
# 1. WAL per entry at P7_WAL_RATE entries/s: pg_current_wal_insert_lsn before and after a step
#    (writers, then the drain of what is left), minus the WAL of the same writers with nobody
#    processing (mode `writers`), divided by the entries processed. The floor is a session that
#    every 100 ms marks every due entry processed (`UPDATE ... SET processed = true, processed_at =
#    now()`), i.e. the processed marks alone. Every step starts on a fresh copy right after a
#    CHECKPOINT, so the full-page images of the first touch of each page are in the figure, as they
#    are after every checkpoint in production (more of them the shorter the step: P7_SECONDS).
#    The same without full-page images (the WAL long after a checkpoint) comes from pg_waldump
#    --stats; P7_WALDUMP=PREFIX keeps each step's summary in PREFIX-MODE-RATE-RUN.txt.
# 2. The highest sustainable rate: the rates of P7_RATES in turn, each on a fresh copy; a rate is
#    sustained when pgbench reached 95 % of it, the backlog when the writers stop is at most one
#    second of inserts, and the p99 latency is within P7_MAX_P99_MS (the lag did not grow: a
#    15-s step that ends one second behind may still count by the backlog alone, with a p50 of
#    over a second); the figure is the highest rate sustained (the steps
#    stop at the first rate missed). Latency (insert -> processed_at, from the insert's created_at)
#    p50/p99 of each step is printed.
#
# 3. The processing CPU per entry at P7_WAL_RATE: user and system time of passportd and of the
#    server backends of its connections (/proc), divided by the entries processed; the machine's
#    cores divided by it is the rate the processing alone could sustain (the writers' own CPU,
#    which on 2 cores caps the rate of figure 2, left out).
#
# Environment: P7_USERS (default 500, as P6), P7_HISTORY (default 40 processed entries per
# user), P7_WAL_RATE (default 1000), P7_RATES (default "1000 1500 2000 3000 4000"), P7_SECONDS
# (default 15 per step), P7_MAX_P99_MS (default 1000), P7_CLIENTS (default 16), P7_ROWS
# (default 1: entries per insert statement and transaction, each of its own random user; rates
# stay in entries/s, pgbench runs at rate / P7_ROWS transactions/s. On this 2-core machine the
# single-row writers' own commits cap figure 2; an application that batches its inserts, e.g.
# P7_ROWS=10, leaves the cores to the processing, so that figure 2 shows what the daemon
# sustains), BASELINE_PASSPORTD, P7_DAEMON_ARGS (extra options for both daemons), P7_WALDUMP=1, BENCH_RUNS (default 3, for figure 1; figure 2 runs
# once), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=${P7_USERS:-500}
HISTORY=${P7_HISTORY:-40}
WAL_RATE=${P7_WAL_RATE:-1000}
read -r -a RATES <<<"${P7_RATES-1000 1500 2000 3000 4000}"
SECONDS_PER_STEP=${P7_SECONDS:-15}
CLIENTS=${P7_CLIENTS:-16}
ROWS=${P7_ROWS:-1}
MAX_P99_MS=${P7_MAX_P99_MS:-1000}
[[ "$ROWS" =~ ^[1-9][0-9]*$ ]] || bench_die "P7_ROWS must be a positive integer"
# shellcheck disable=SC2017 # integer division on purpose: passport_bench_users makes USERS / 5 artists, 4 tracks each
TRACKS=$((USERS / 5 * 4))
BASELINE=${BASELINE_PASSPORTD:-}
read -r -a DAEMON_ARGS <<<"${P7_DAEMON_ARGS:-}"

bench_build
CANDIDATE=$PASSPORTD
work=$(mktemp -d /tmp/passport-bench-p7.XXXXXX)
daemon_pid=
floor_pid=
cleanup_p7() {
	local pid
	for pid in $daemon_pid $floor_pid; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
	bench_cleanup
}
bench_server_start "${BENCH_DURABLE_SETTINGS[@]}" "track_commit_timestamp = on"
trap cleanup_p7 EXIT
bench_log_durability

bench_log "base database p7_base: $USERS users, $HISTORY processed entries each with their effects"
bench_empty_db p7_base "$USERS"
bench_sql p7_base "SELECT passport_bench_entries($USERS, $HISTORY, 1, true)" >/dev/null
# The history's effects, so that the indexes the daemon inserts into have a realistic size.
bench_sql p7_base "INSERT INTO coliseum_metrics (user_id, metric_type, source, metadata, \"timestamp\", passport_entry_id)
                   SELECT user_id, event_type, 'system', payload, \"timestamp\", id FROM passport_entries" >/dev/null
bench_sql p7_base "INSERT INTO dna_evolution (mediaid_id, passport_entry_id, event_type, event_time, alpha,
                          decay_cultural, decay_behavioral, decay_economic, decay_spatial, delta_cultural,
                          delta_behavioral, delta_economic, delta_spatial, late)
                   SELECT m.id, e.id, e.event_type, e.\"timestamp\", 0.05, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, false
                     FROM passport_entries e JOIN media_ids m ON m.user_uuid = e.user_id AND m.role = 'fan'" >/dev/null
bench_finish_db p7_base

bench_pgbench_insert_script "$work/play.sql" player.track_played "$USERS" "$TRACKS" "$ROWS"
bench_pgbench_insert_script "$work/pause.sql" player.track_paused "$USERS" "$TRACKS" "$ROWS"
echo "UPDATE passport_entries SET processed = true, processed_at = now() WHERE NOT processed AND dead_at IS NULL;" \
	>"$work/floor.sql"

due() { bench_sql p7_run "SELECT count(*) FROM passport_entries WHERE NOT processed AND dead_at IS NULL"; }

# CPU ticks (user + system) of the daemon and of the server backends of its connections.
processing_ticks() {
	local pid total=0 t
	for pid in $1 $(bench_sql postgres "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'passportd%'"); do
		t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
		total=$((total + t))
	done
	echo "$total"
}

# step MODE RATE RUN: one step on a fresh copy; appends
# "MODE RATE RUN inserts_per_s backlog_at_stop entries wal_bytes p50_ms p99_ms" to $work/results.
step() {
	local mode=$1 rate=$2 run=$3 db=p7_run lsn0 lsn1 tps backlog entries wal lat deadline since versions writes fpi ticks0 ticks
	bench_copy p7_base "$db"
	since=$(bench_sql postgres "SELECT now()")
	versions=$(bench_sql "$db" "SELECT sum(version) FROM media_ids")
	case $mode in
	base | new)
		local bin=$CANDIDATE
		[[ $mode == base ]] && bin=$BASELINE
		"$bin" run --dsn "$(bench_dsn "$db")" --log-level warning "${DAEMON_ARGS[@]}" 2>"$work/daemon-$mode.log" &
		daemon_pid=$!
		sleep 2 # connect, LISTEN, one empty look, arm: idle from here on
		;;
	floor)
		pgbench -n -c 1 -R 10 -T $((SECONDS_PER_STEP + 600)) -f "$work/floor.sql" "$(bench_dsn "$db")" \
			>"$work/floor.log" 2>&1 &
		floor_pid=$!
		;;
	writers) ;;
	*) bench_die "unknown mode $mode" ;;
	esac
	ticks0=0
	[[ -n "$daemon_pid" ]] && ticks0=$(processing_ticks "$daemon_pid")
	lsn0=$(bench_wal_lsn)
	pgbench -n -c "$CLIENTS" -j 2 -R "$(awk -v r="$rate" -v n="$ROWS" 'BEGIN { printf "%g", r / n }')" -T "$SECONDS_PER_STEP" -f "$work/play.sql@85" -f "$work/pause.sql@15" \
		"$(bench_dsn "$db")" >"$work/pgbench.txt" 2>&1 || bench_die "pgbench failed: $(tail -n 5 "$work/pgbench.txt")"
	# Entries per second: transactions per second times the entries each inserts.
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$work/pgbench.txt" |
		awk -v n="$ROWS" '{ printf "%.1f", $1 * n }')
	backlog=$(due)
	if [[ $mode != writers ]]; then
		deadline=$(($(date +%s) + 120))
		while [[ $(due) -gt 0 ]]; do
			[[ $(date +%s) -lt $deadline ]] || bench_die "$mode at $rate/s: not drained within 120 s"
			sleep 0.2
		done
	fi
	ticks=0
	[[ -n "$daemon_pid" ]] && ticks=$(($(processing_ticks "$daemon_pid") - ticks0))
	for pid in $daemon_pid $floor_pid; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	daemon_pid=''
	floor_pid=''
	lsn1=$(bench_wal_lsn)
	wal=$(bench_wal_bytes "$lsn0" "$lsn1")
	entries=$(bench_sql "$db" "SELECT count(*) FROM passport_entries WHERE created_at > '$since'")
	lat=$(bench_sql "$db" "SELECT coalesce(round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1), 0) || ' ' ||
	                              coalesce(round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1), 0)
	                         FROM (SELECT extract(epoch FROM processed_at - created_at) * 1000 AS ms
	                                 FROM passport_entries WHERE created_at > '$since' AND processed) s")
	writes=$(($(bench_sql "$db" "SELECT sum(version) FROM media_ids") - versions))
	# The full-page images' share of the WAL (pg_waldump's Total line: records, then images).
	"$(pg_config --bindir)/pg_waldump" --stats=record -p "$BENCH_PG_DIR/data/pg_wal" -s "$lsn0" -e "$lsn1" \
		>"$work/waldump.txt" 2>&1 || true
	fpi=$(awk '$1 == "Total" { print $5 + 0 }' "$work/waldump.txt")
	[[ -n "$fpi" ]] || fpi=0
	if [[ -n "${P7_WALDUMP:-}" ]]; then
		cp "$work/waldump.txt" "$P7_WALDUMP-$mode-$rate-$run.txt"
	fi
	echo "$mode $rate $run $tps $backlog $entries $wal $lat $writes $fpi $ticks" >>"$work/results"
	bench_log "$mode at $rate/s (run $run): $tps inserts/s, backlog $backlog when the writers stopped, $entries entries, $writes DNA writes, $wal B of WAL ($fpi B of full-page images), latency p50/p99 ms $lat, $ticks CPU ticks"
}

modes=(writers floor new)
[[ -n "$BASELINE" ]] && modes=(writers floor base new)
: >"$work/results"
for run in $(seq 1 "$BENCH_RUNS"); do
	for mode in "${modes[@]}"; do
		step "$mode" "$WAL_RATE" "$run"
	done
done
steppers=(new)
[[ -n "$BASELINE" ]] && steppers=(base new)
# Rate by rate, the modes one after the other (their order alternating), until each has missed a
# rate: a slow phase of the shared machine then hits both modes alike.
declare -A missed=()
i=0
for rate in ${RATES[@]+"${RATES[@]}"}; do
	order=("${steppers[@]}")
	((i++ % 2)) && mapfile -t order < <(printf '%s\n' "${steppers[@]}" | tac)
	for mode in "${order[@]}"; do
		[[ -z "${missed[$mode]:-}" ]] || continue
		step "$mode" "$rate" 0
		# Sustained: the writers reached 95 % of the rate, at most a second of inserts was due,
		# and the p99 latency stayed within MAX_P99_MS.
		if ! awk -v m="$mode" -v r="$rate" -v p99="$MAX_P99_MS" '$1 == m && $2 == r && $3 == 0 {
		             exit !($4 >= 0.95 * r && $5 <= r && $9 <= p99) }' "$work/results"; then
			missed[$mode]=$rate
		fi
	done
	[[ ${#missed[@]} -lt ${#steppers[@]} ]] || break
done

# WAL per processed entry of MODE at the WAL rate, run by run, minus the writers' own WAL; with
# "records" as the second argument, without the full-page images.
wal_per_entry() {
	awk -v m="$1" -v r="$WAL_RATE" -v part="${2:-all}" '
	     { b = (part == "records") ? $7 - $11 : $7 }
	     $2 == r && $3 > 0 && $1 == "writers" { w[$3] = b / $6 }
	     $2 == r && $3 > 0 && $1 == m { e[$3] = $6; t[$3] = b }
	     END { for (k in t) if (k in w) printf "%.0f\n", (t[k] - w[k] * e[k]) / e[k] }' "$work/results" | bench_median
}
# CPU ms per entry of MODE at the WAL rate (passportd and its backends; median over the runs).
cpu_per_entry() {
	awk -v m="$1" -v r="$WAL_RATE" -v hz="$(getconf CLK_TCK)" '$1 == m && $2 == r && $3 > 0 && $6 > 0 {
	     printf "%.3f\n", $12 * 1000 / hz / $6 }' "$work/results" | bench_median
}
# Entries per DNA write of MODE at the WAL rate (median over the runs).
per_write() {
	awk -v m="$1" -v r="$WAL_RATE" '$1 == m && $2 == r && $3 > 0 && $10 > 0 { printf "%.3f\n", $6 / $10 }' "$work/results" | bench_median
}
sustained() {
	awk -v m="$1" -v p99="$MAX_P99_MS" '$1 == m && $3 == 0 && $4 >= 0.95 * $2 && $5 <= $2 && $9 <= p99 {
	     if ($2 > best) best = $2 } END { print best + 0 }' "$work/results"
}
echo "P7 steady state: $USERS users ($HISTORY processed entries of history each), 85 % plays / 15 % pauses, $CLIENTS pgbench clients at a fixed rate ($ROWS per insert), durable commits, $SECONDS_PER_STEP s per step after a checkpoint; WAL: median of $BENCH_RUNS runs at $WAL_RATE/s"
floor=$(wal_per_entry floor)
bench_figure "writers alone: WAL per insert B" "$(awk -v r="$WAL_RATE" '$1 == "writers" && $2 == r { print $7 / $6 }' "$work/results" | bench_median | xargs printf '%.0f')"
bench_figure "floor (marks only): WAL per entry B" "$floor"
for mode in "${steppers[@]}"; do
	wal=$(wal_per_entry "$mode")
	bench_figure "$mode: WAL per entry B" "$(bench_goal "$wal" 8192) ($(bench_ratio "$wal" "$floor")x the floor)"
	bench_figure "$mode: without full-page images B" "$(wal_per_entry "$mode" records) (floor $(wal_per_entry floor records))"
	bench_figure "$mode: entries per DNA write" "$(per_write "$mode")"
	cpu=$(cpu_per_entry "$mode")
	bench_figure "$mode: processing CPU ms per entry" "$cpu (passportd + its backends; $(nproc) cores / that: $(awk -v c="$cpu" -v n="$(nproc)" 'BEGIN { if (c > 0) printf "%.0f", n * 1000 / c }') entries/s)"
	bench_figure "$mode: latency p50/p99 ms at $WAL_RATE/s" "$(awk -v m="$mode" -v r="$WAL_RATE" '$1 == m && $2 == r && $3 > 0 { print $8 }' "$work/results" | bench_median) / $(awk -v m="$mode" -v r="$WAL_RATE" '$1 == m && $2 == r && $3 > 0 { print $9 }' "$work/results" | bench_median)"
	bench_figure "$mode: highest sustained rate /s" "$(sustained "$mode")"
	bench_figure "$mode: steps (rate inserts/s backlog p50 p99)" "$(awk -v m="$mode" '$1 == m && $3 == 0 { printf "%s:%s/%s/%s/%s  ", $2, $4, $5, $8, $9 }' "$work/results")"
done
if [[ -n "$BASELINE" ]]; then
	bench_figure "new / base WAL per entry" "$(bench_ratio "$(wal_per_entry new)" "$(wal_per_entry base)")"
	paired=$(awk -v r="$WAL_RATE" '$2 == r && $3 > 0 { v[$1, $3] = $7; e[$1, $3] = $6; if ($1 == "writers") w[$3] = $7 / $6 }
	              END { for (k in w) if (("new", k) in v && ("base", k) in v)
	                      printf "%.2f\n", (v["new", k] / e["new", k] - w[k]) / (v["base", k] / e["base", k] - w[k]) }' "$work/results")
	bench_figure "new / base WAL per entry, per-run ratios" "$(sort -g <<<"$paired" | tr '\n' ' ')"
	bench_figure "new / base sustained rate" "$(bench_ratio "$(sustained new)" "$(sustained base)")"
	bench_figure "new / base processing CPU per entry" "$(bench_ratio "$(cpu_per_entry new)" "$(cpu_per_entry base)")"
fi
