#!/usr/bin/env bash
# P5 memory: peak RSS of `passportd drain` over DUE due entries and of `passport-migrate backfill`
# over ROWS legacy rows. Goal: <= 64 MiB each. And the catalogue: the drain's throughput with a
# catalogue of 20,000 tracks (15,000 with vectors) against a drain of P1's database (5,000 users:
# 4,000 tracks) in the same run. Goal: >= 0.7x. Two figures: P1's 200,000 entries of 5,000 users
# with their targets spread over the large catalogue (the catalogue alone changes), and the large
# database itself (25,000 users, 1,000,000 entries: the catalogue and the tables' size change).
#
# Peak RSS hardly varies between runs (it is set by the batch size, not by timing), and one run at
# 1M rows takes minutes on a 2-core machine, so the default is one run: P5_RUNS=3 for medians.
#
# Environment: P5_USERS (default 25000) x P5_PER_USER (default 40) due entries (1,000,000),
# P5_ROWS (default 1000000) legacy rows, P5_RUNS (default 1), P5_WORKERS (drain --workers) and
# P5_JOBS (backfill --jobs), both by default the tools' own (no flag), as in P1 and P3, plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=${P5_USERS:-25000}
PER_USER=${P5_PER_USER:-40}
ROWS=${P5_ROWS:-1000000}
RUNS=${P5_RUNS:-1}
WORKERS=${P5_WORKERS:-}
JOBS=${P5_JOBS:-}
drain_args=()
[[ -n "$WORKERS" ]] && drain_args+=(--workers "$WORKERS")
backfill_args=()
[[ -n "$JOBS" ]] && backfill_args+=(--jobs "$JOBS")

bench_build
bench_server_start
work=$(mktemp -d /tmp/passport-bench-p5.XXXXXX)
trap 'rm -rf "$work"; bench_cleanup' EXIT

bench_base_db p5_drain "$USERS" "$PER_USER"
due=$(bench_sql p5_drain "SELECT count(*) FROM passport_entries WHERE NOT processed")
bench_base_db p5_small 5000 40
small_due=$(bench_sql p5_small "SELECT count(*) FROM passport_entries WHERE NOT processed")
bench_log "base database p5_catalogue: P1's 5000 users x 40 entries over the catalogue of $USERS users"
bench_empty_db p5_catalogue "$USERS"
bench_sql p5_catalogue "SELECT passport_bench_entries(5000, 40, 1, false, '2026-01-01 00:00:00+00', $USERS)" >/dev/null
bench_sql p5_catalogue "SELECT passport_bench_late(5000, 4)" >/dev/null
bench_finish_db p5_catalogue
catalogue_due=$(bench_sql p5_catalogue "SELECT count(*) FROM passport_entries WHERE NOT processed")
tracks() { bench_sql "$1" "SELECT count(*) FROM entity_dna WHERE entity_type = 'track'"; }

have_backfill=1
if "$PASSPORT_MIGRATE" backfill --help 2>&1 | grep -qi "not implemented"; then
	have_backfill=0
else
	bench_log "base database p5_backfill: $ROWS legacy rows"
	bench_empty_db p5_backfill 5000
	bench_sql p5_backfill "SELECT passport_bench_legacy($ROWS, 5000)" >/dev/null
	bench_finish_db p5_backfill
fi

: >"$work/drain"
: >"$work/backfill"
: >"$work/small"
: >"$work/catalogue"
# Drain a copy of base DB and append its milliseconds to FILE.
timed_drain() {
	local start end
	bench_copy "$1" p5_run
	start=$(bench_now_ns)
	"$PASSPORTD" drain --dsn "$(bench_dsn p5_run)" --log-level warning "${drain_args[@]}" >"$work/out"
	end=$(bench_now_ns)
	echo "$(((end - start) / 1000000))" >>"$2"
}

for run in $(seq 1 "$RUNS"); do
	timed_drain p5_small "$work/small"
	timed_drain p5_catalogue "$work/catalogue"
	bench_copy p5_drain p5_run
	start=$(bench_now_ns)
	bench_peak_rss "$work/rss" "$PASSPORTD" drain --dsn "$(bench_dsn p5_run)" --log-level warning "${drain_args[@]}" >"$work/out"
	end=$(bench_now_ns)
	echo "$(tail -n 1 "$work/rss") $(((end - start) / 1000000))" >>"$work/drain"
	bench_log "run $run: drain $(cat "$work/out")"
	if ((have_backfill)); then
		bench_copy p5_backfill p5_run
		start=$(bench_now_ns)
		bench_peak_rss "$work/rss" "$PASSPORT_MIGRATE" backfill --dsn "$(bench_dsn p5_run)" --source all \
			"${backfill_args[@]}" --progress never --json >"$work/out"
		end=$(bench_now_ns)
		echo "$(tail -n 1 "$work/rss") $(((end - start) / 1000000))" >>"$work/backfill"
	fi
done

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
drain_kib=$(cut -d' ' -f1 "$work/drain" | bench_median)
echo "P5 memory: median of $RUNS run(s); drain ${drain_args[*]:-with no flags}, backfill ${backfill_args[*]:-with no flags}"
bench_figure "passportd drain over $due entries, MiB" "$(bench_goal "$(mib "$drain_kib")" 64)"
drain_ms=$(cut -d' ' -f2 "$work/drain" | bench_median)
small_ms=$(bench_median <"$work/small")
bench_figure "  (drain took ms)" "$drain_ms"
large_rate=$(awk -v n="$due" -v ms="$drain_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }')
small_rate=$(awk -v n="$small_due" -v ms="$small_ms" 'BEGIN { printf "%.0f", n * 1000 / ms }')
catalogue_rate=$(awk -v n="$catalogue_due" -v ms="$(bench_median <"$work/catalogue")" 'BEGIN { printf "%.0f", n * 1000 / ms }')
bench_figure "drain entries/s, $(tracks p5_small) track vectors ($small_due entries)" "$small_rate"
bench_figure "drain entries/s, $(tracks p5_catalogue) track vectors ($catalogue_due entries, same run)" "$catalogue_rate"
bench_figure "  throughput ratio, the catalogue alone (goal >= 0.7)" "$(awk -v a="$catalogue_rate" -v b="$small_rate" 'BEGIN { printf "%.2f", a / b }')"
bench_figure "drain entries/s, $(tracks p5_drain) track vectors ($due entries, same run)" "$large_rate"
bench_figure "  throughput ratio, catalogue and size" "$(awk -v a="$large_rate" -v b="$small_rate" 'BEGIN { printf "%.2f", a / b }')"
if ((have_backfill)); then
	backfill_kib=$(cut -d' ' -f1 "$work/backfill" | bench_median)
	bench_figure "passport-migrate backfill of $ROWS rows, MiB" "$(bench_goal "$(mib "$backfill_kib")" 64)"
	bench_figure "  (backfill took ms)" "$(cut -d' ' -f2 "$work/backfill" | bench_median)"
else
	echo "  passport-migrate backfill: not measured (not implemented in this tree)"
fi
