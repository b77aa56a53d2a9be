#!/usr/bin/env bash
# P4 claim cost vs history: drain NEW due entries on top of SMALL and then LARGE processed ones
# (the same new entries in both databases). Goal: time(LARGE) / time(SMALL) <= 1.2.
#
# Environment: P4_USERS (default 5000), P4_NEW_PER_USER (default 2: 10,000 new entries),
# P4_SMALL_PER_USER (default 40: 200,000 processed), P4_LARGE_PER_USER (default 200: 1,000,000
# processed), BENCH_RUNS (default 3), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=${P4_USERS:-5000}
NEW=${P4_NEW_PER_USER:-2}
SMALL=${P4_SMALL_PER_USER:-40}
LARGE=${P4_LARGE_PER_USER:-200}
NEW_FIRST_K=1001 # after any history: the new entries are the same rows in both databases
GOAL=1.2

bench_build
bench_server_start
work=$(mktemp -d /tmp/passport-bench-p4.XXXXXX)
trap 'rm -rf "$work"; bench_cleanup' EXIT

bench_log "base databases: $USERS users; $((USERS * SMALL)) and $((USERS * LARGE)) processed entries; $((USERS * NEW)) new"
bench_empty_db p4_empty "$USERS"
bench_finish_db p4_empty
for size in small large; do
	per_user=$SMALL
	[[ $size == large ]] && per_user=$LARGE
	bench_copy p4_empty "p4_$size"
	bench_sql "p4_$size" "SELECT passport_bench_entries($USERS, $per_user, 1, true)" >/dev/null
	bench_sql "p4_$size" "SELECT passport_bench_entries($USERS, $NEW, $NEW_FIRST_K, false)" >/dev/null
	bench_finish_db "p4_$size"
done
dropdb p4_empty

run_size() {
	local size=$1 start end out
	bench_copy "p4_$size" p4_run
	start=$(bench_now_ns)
	out=$("$PASSPORTD" drain --dsn "$(bench_dsn p4_run)" --log-level warning)
	end=$(bench_now_ns)
	grep -q "processed $((USERS * NEW))," <<<"$out" || bench_log "warning: $out"
	echo "$(((end - start) / 1000000))" >>"$work/$size"
}

: >"$work/small"
: >"$work/large"
for run in $(seq 1 "$BENCH_RUNS"); do
	if ((run % 2)); then run_size small; run_size large; else run_size large; run_size small; fi
	bench_log "run $run: small $(tail -n 1 "$work/small") ms, large $(tail -n 1 "$work/large") ms"
done

small_ms=$(bench_median <"$work/small")
large_ms=$(bench_median <"$work/large")
echo "P4 claim cost vs history: drain $((USERS * NEW)) new entries; median of $BENCH_RUNS runs"
bench_figure "on $((USERS * SMALL)) processed ms" "$small_ms   runs: $(tr '\n' ' ' <"$work/small")"
bench_figure "on $((USERS * LARGE)) processed ms" "$large_ms   runs: $(tr '\n' ' ' <"$work/large")"
bench_figure "ratio large / small" "$(bench_goal "$(bench_ratio "$large_ms" "$small_ms")" "$GOAL")"
