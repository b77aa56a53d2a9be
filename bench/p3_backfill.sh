#!/usr/bin/env bash
# P3 backfill: ROWS legacy rows (half listening_history, half media_engagement_log) backfilled by
# `passport-migrate backfill`, against the seed's original migration (bench/seed_backfill.sql) on
# an identical copy. Goals: <= 1.0x the seed SQL's time; a re-run with nothing new <= 0.1x the
# first run. Also prints the backfill's peak RSS (P5 has its own script).
#
# Environment: P3_ROWS (default 1000000), P3_USERS (default 5000), BENCH_RUNS (default 3; at 1M
# rows one run takes minutes: BENCH_RUNS=1 is reasonable on a shared machine), P3_BATCH_SIZE
# (default: the tool's own), P3_JOBS (default: the tool's own, i.e. no flag; e.g. 2 for `backfill --jobs 2`),
# plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROWS=${P3_ROWS:-1000000}
USERS=${P3_USERS:-5000}
JOBS=${P3_JOBS:-}
batch_args=()
[[ -n "$JOBS" ]] && batch_args+=(--jobs "$JOBS")
[[ -n "${P3_BATCH_SIZE:-}" ]] && batch_args+=(--batch-size "$P3_BATCH_SIZE")

bench_build
bench_server_start
work=$(mktemp -d /tmp/passport-bench-p3.XXXXXX)
trap 'rm -rf "$work"; bench_cleanup' EXIT

bench_log "base database p3_base: $USERS users, $ROWS legacy rows"
bench_empty_db p3_base "$USERS"
bench_sql p3_base "SELECT passport_bench_legacy($ROWS, $USERS)" >/dev/null
bench_finish_db p3_base

have_backfill=1
if "$PASSPORT_MIGRATE" backfill --help 2>&1 | grep -qi "not implemented"; then
	have_backfill=0
	bench_log "passport-migrate backfill is not implemented yet: only the seed SQL is measured"
fi

run_seed() {
	local start end
	bench_copy p3_base p3_run
	start=$(bench_now_ns)
	bench_psql p3_run -f "$BENCH_DIR/seed_backfill.sql" >/dev/null
	end=$(bench_now_ns)
	echo "$(((end - start) / 1000000)) $(bench_sql p3_run 'SELECT count(*) FROM passport_entries')" >>"$work/seed"
}

run_tool() {
	local start mid end rss n
	bench_copy p3_base p3_run
	start=$(bench_now_ns)
	/usr/bin/time -f '%M' -o "$work/rss" "$PASSPORT_MIGRATE" backfill --dsn "$(bench_tool_dsn passport_migrate p3_run)" --source all \
		--progress never --json "${batch_args[@]}" >"$work/first.out" 2>"$work/first.err" ||
		bench_die "backfill failed: $(tail -n 5 "$work/first.err")"
	mid=$(bench_now_ns)
	rss=$(tail -n 1 "$work/rss")
	n=$(bench_sql p3_run 'SELECT count(*) FROM passport_entries')
	"$PASSPORT_MIGRATE" backfill --dsn "$(bench_tool_dsn passport_migrate p3_run)" --source all --progress never --json \
		"${batch_args[@]}" >"$work/second.out" 2>"$work/second.err" ||
		bench_die "backfill re-run failed: $(tail -n 5 "$work/second.err")"
	end=$(bench_now_ns)
	[[ "$(bench_sql p3_run 'SELECT count(*) FROM passport_entries')" == "$n" ]] ||
		bench_log "warning: the re-run inserted rows"
	echo "$(((mid - start) / 1000000)) $(((end - mid) / 1000000)) $n $rss" >>"$work/tool"
}

: >"$work/seed"
: >"$work/tool"
for run in $(seq 1 "$BENCH_RUNS"); do
	if ((have_backfill)); then
		if ((run % 2)); then run_seed; run_tool; else run_tool; run_seed; fi
		bench_log "run $run: seed $(tail -n 1 "$work/seed" | cut -d' ' -f1) ms, backfill $(tail -n 1 "$work/tool" | cut -d' ' -f1-2) ms"
	else
		run_seed
		bench_log "run $run: seed $(tail -n 1 "$work/seed" | cut -d' ' -f1) ms"
	fi
done

col() { cut -d' ' -f"$2" "$work/$1" | bench_median; }
seed_ms=$(col seed 1)
echo "P3 backfill: $ROWS legacy rows ($USERS users), backfill ${JOBS:+--jobs $JOBS}${JOBS:+,}${JOBS:-with no flags,} median of $BENCH_RUNS runs"
bench_figure "seed SQL (2 x INSERT ... SELECT) ms" "$seed_ms   runs: $(cut -d' ' -f1 "$work/seed" | tr '\n' ' ')"
bench_figure "seed SQL rows/s" "$(awk -v n="$(col seed 2)" -v ms="$seed_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }')"
if ((!have_backfill)); then
	echo "  passport-migrate backfill: not measured (not implemented in this tree)"
	exit 0
fi
first_ms=$(col tool 1)
rerun_ms=$(col tool 2)
bench_figure "passport-migrate backfill ms" "$first_ms   runs: $(cut -d' ' -f1 "$work/tool" | tr '\n' ' ')"
bench_figure "backfill rows/s" "$(awk -v n="$(col tool 3)" -v ms="$first_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }')"
bench_figure "ratio backfill / seed SQL" "$(bench_goal "$(bench_ratio "$first_ms" "$seed_ms")" 1.0)"
bench_figure "re-run with nothing new ms" "$rerun_ms   runs: $(cut -d' ' -f2 "$work/tool" | tr '\n' ' ')"
bench_figure "ratio re-run / first run" "$(bench_goal "$(bench_ratio "$rerun_ms" "$first_ms")" 0.1)"
bench_figure "rows: seed / backfill" "$(col seed 2) / $(col tool 3)"
bench_figure "backfill peak RSS MiB" "$(awk -v k="$(col tool 4)" 'BEGIN { printf "%.1f", k / 1024 }')"
