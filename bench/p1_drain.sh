#!/usr/bin/env bash
# P1 drain throughput: `passportd drain` over USERS x PER_USER due entries, against the floor (one
# UPDATE ... SET processed = true over an identical copy of the same rows). Goal: <= 2.0x the floor with no flags.
#
# Environment: P1_USERS (default 5000), P1_PER_USER (default 40), BENCH_RUNS (default 3),
# P1_BATCH_SIZE (default: passportd's own), P1_WORKERS (default: passportd's own, i.e. no flag, as
# a user runs it; e.g. 2 for `drain --workers 2`), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=${P1_USERS:-5000}
PER_USER=${P1_PER_USER:-40}
GOAL=2.0
WORKERS=${P1_WORKERS:-}
batch_args=()
[[ -n "$WORKERS" ]] && batch_args+=(--workers "$WORKERS")
[[ -n "${P1_BATCH_SIZE:-}" ]] && batch_args+=(--batch-size "$P1_BATCH_SIZE")

bench_build
bench_server_start
bench_base_db p1_base "$USERS" "$PER_USER"
due=$(bench_sql p1_base "SELECT count(*) FROM passport_entries WHERE NOT processed")
bench_log "$due due entries"

FLOOR_SQL="UPDATE passport_entries SET processed = true, processed_at = now() WHERE NOT processed"

run_floor() {
	local start end lsn0 lsn1 cpu0 cpu1
	bench_copy p1_base p1_run
	lsn0=$(bench_wal_lsn)
	cpu0=$(bench_server_cpu)
	start=$(bench_now_ns)
	bench_sql p1_run "$FLOOR_SQL" >/dev/null
	end=$(bench_now_ns)
	sleep 0.3 # as for the drain: the session's backend has exited and been reaped
	cpu1=$(bench_server_cpu)
	lsn1=$(bench_wal_lsn)
	echo "$(((end - start) / 1000000)) $(bench_wal_bytes "$lsn0" "$lsn1") $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" >>"$work/floor"
}

run_drain() {
	local start end lsn0 lsn1 out processed dna evolution cpu cpu0 cpu1
	bench_copy p1_base p1_run
	lsn0=$(bench_wal_lsn)
	cpu0=$(bench_server_cpu)
	start=$(bench_now_ns)
	/usr/bin/time -f '%U %S' -o "$work/time" "$PASSPORTD" drain --dsn "$(bench_tool_dsn passportd p1_run)" "${batch_args[@]}" \
		--log-level warning >"$work/drain.out"
	end=$(bench_now_ns)
	sleep 0.3 # the drain's backends have exited and been reaped: their CPU is the postmaster's
	cpu1=$(bench_server_cpu)
	lsn1=$(bench_wal_lsn)
	out=$(cat "$work/drain.out")
	processed=$(sed -n 's/.*processed \([0-9]*\),.*/\1/p' <<<"$out")
	dna=$(sed -n 's/.*DNA rows updated \([0-9]*\),.*/\1/p' <<<"$out")
	evolution=$(bench_sql p1_run "SELECT count(*) FROM dna_evolution")
	cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$work/time")
	[[ "$processed" == "$due" ]] || bench_log "warning: drain processed $processed of $due: $out"
	echo "$(((end - start) / 1000000)) $(bench_wal_bytes "$lsn0" "$lsn1") $processed $dna $evolution $cpu $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" >>"$work/drain"
}

work=$(mktemp -d /tmp/passport-bench-p1.XXXXXX)
trap 'rm -rf "$work"; bench_cleanup' EXIT
: >"$work/floor"
: >"$work/drain"
for run in $(seq 1 "$BENCH_RUNS"); do
	# Alternate the order so that a slow phase of the machine does not favour one side.
	if ((run % 2)); then run_floor; run_drain; else run_drain; run_floor; fi
	bench_log "run $run: floor $(tail -n 1 "$work/floor" | cut -d' ' -f1) ms, drain $(tail -n 1 "$work/drain" | cut -d' ' -f1) ms"
done

col() { cut -d' ' -f"$2" "$work/$1" | bench_median; }
floor_ms=$(col floor 1)
drain_ms=$(col drain 1)
floor_wal=$(col floor 2)
drain_wal=$(col drain 2)
dna=$(col drain 4)
evolution=$(col drain 5)
cpu=$(col drain 6)
ratio=$(bench_ratio "$drain_ms" "$floor_ms")

echo "P1 drain throughput: $due due entries ($USERS users x $PER_USER), drain ${WORKERS:+--workers $WORKERS}${WORKERS:+,}${WORKERS:-with no flags,} median of $BENCH_RUNS runs"
bench_figure "floor (one UPDATE) ms" "$floor_ms   runs: $(cut -d' ' -f1 "$work/floor" | tr '\n' ' ')"
bench_figure "passportd drain ms" "$drain_ms   runs: $(cut -d' ' -f1 "$work/drain" | tr '\n' ' ')"
bench_figure "ratio drain / floor" "$(bench_goal "$ratio" "$GOAL")"
bench_figure "median of per-run ratios" "$(paste -d' ' "$work/drain" "$work/floor" | awk '{ printf "%.2f\n", $1 / $8 }' | bench_median)"
bench_figure "entries/s" "$(awk -v n="$due" -v ms="$drain_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }')"
bench_figure "DNA rows written/s (media_ids updates)" "$(awk -v n="$dna" -v ms="$drain_ms" 'BEGIN { printf "%.0f (%d rows)", n * 1000 / ms, n }')"
bench_figure "dna_evolution rows/s" "$(awk -v n="$evolution" -v ms="$drain_ms" 'BEGIN { printf "%.0f (%d rows)", n * 1000 / ms, n }')"
bench_figure "passportd CPU s (user+sys)" "$cpu"
bench_figure "server CPU s floor" "$(col floor 3)"
bench_figure "server CPU s drain" "$(col drain 7)   ($(bench_ratio "$(col drain 7)" "$(col floor 3)")x the floor's)"
bench_figure "WAL bytes/entry floor" "$(awk -v w="$floor_wal" -v n="$due" 'BEGIN { printf "%.0f", w / n }')"
bench_figure "WAL bytes/entry drain" "$(awk -v w="$drain_wal" -v n="$due" 'BEGIN { printf "%.0f", w / n }')"
