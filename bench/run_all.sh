#!/usr/bin/env bash
# run_all: every benchmark in turn, each with its own private server, output into one report.
#
# Usage: bench/run_all.sh [OUTPUT_DIR]   (default /tmp/passport-bench-results)
# Environment: as the single scripts (BENCH_RUNS, P1_USERS, ...). BENCH_QUICK=1 runs every script
# at a small size, to check that they work. On a 2-core machine the full set takes about an hour.
set -uo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-/tmp/passport-bench-results}
mkdir -p "$OUT"

if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
	export P1_USERS=200 P2_USERS=200 P2_COUNT=100 P3_ROWS=20000 P3_USERS=200 P4_USERS=200 \
		P5_USERS=500 P5_ROWS=20000 P6_SECONDS=5 P7_SECONDS=5 P7_RATES="500 1000" BENCH_RUNS=${BENCH_RUNS:-1}
fi
# Build once; the scripts reuse the binaries.
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
bench_build

status=0
for script in p1_drain p2_latency p3_backfill p4_history p4_catch_up p5_memory p6_writers p7_steady profile_p1 profile_p3; do
	echo "==> $script ($(date -u +%H:%M:%S))" >&2
	if ! bash "$BENCH/$script.sh" >"$OUT/$script.txt" 2>"$OUT/$script.log"; then
		echo "$script failed: see $OUT/$script.log" >&2
		tail -n 5 "$OUT/$script.log" >&2
		status=1
	fi
	cat "$OUT/$script.txt"
	echo
done
{
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
	echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"
exit $status
