#!/usr/bin/env bash
# inspect: `passportd inspect USER` on a user with 100,000 entries and 100,000 dna_evolution steps,
# among other users' rows. Goal: well under a second. Baseline, measured in the same run the same
# way (a process that connects and runs one query): `SELECT count(*)` over that user's entries.
#
# Figures (medians of INSPECT_RUNS runs, alternating with the baseline): the default report (JSON,
# last 30 days); the whole history (--since 1970, drift over all 100,000 steps) with a PNG plot
# of the latest 20,000 steps.
#
# Environment: INSPECT_ENTRIES (default 100000) entries and steps of the user, INSPECT_OTHERS
# (default 2000) other users with 100 entries each, INSPECT_RUNS (default 7), plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENTRIES=${INSPECT_ENTRIES:-100000}
OTHERS=${INSPECT_OTHERS:-2000}
RUNS=${INSPECT_RUNS:-7}
USER_ID=00000000-0000-4000-8000-000000000001
FAN_ROW=00000000-0000-4000-8000-0000000000f1
GOAL_MS=1000

bench_build
bench_server_start
work=$(mktemp -d /tmp/passport-bench-inspect.XXXXXX)
trap 'rm -rf "$work"; bench_cleanup' EXIT

db=inspect_bench
bench_log "database: one user with $ENTRIES entries and steps, $OTHERS others with 100 entries each"
createdb "$db" || bench_die "createdb failed"
bench_psql "$db" -f "$BENCH_ROOT/tests/sql/upstream.sql" >/dev/null || bench_die "loading upstream tables failed"
"$PASSPORT_MIGRATE" schema --dsn "$(bench_dsn "$db")" >/dev/null || bench_die "passport-migrate schema failed"
# Deterministic rows: the user's entries one every 5 minutes back from 2025-01-01 (every 50th dead,
# every 20th due), a step per entry (every 10th late); other users' entries interleaved.
bench_psql "$db" -v ON_ERROR_STOP=1 >/dev/null <<-SQL || bench_die "loading the rows failed"
	INSERT INTO auth.users VALUES ('$USER_ID', 'bench@example.com');
	INSERT INTO media_ids (id, user_uuid, role, profile_embedding)
	SELECT '$FAN_ROW', '$USER_ID', 'fan', array_agg(sin(i)::real ORDER BY i) FROM generate_series(1, 1536) i;
	INSERT INTO passport_entries (user_id, event_type, event_category, affects_systems, "timestamp",
	    processed, processed_at, processing_attempts, last_error, dead_at)
	SELECT '$USER_ID', 'player.track_played', 'interaction', '{mediaid,coliseum}',
	       '2025-01-01'::timestamptz - k * interval '5 minutes', k % 20 <> 0 AND k % 50 <> 0,
	       CASE WHEN k % 20 <> 0 AND k % 50 <> 0 THEN '2025-01-01'::timestamptz END, (k % 50 = 0)::int,
	       CASE WHEN k % 50 = 0 THEN 'mediaid: bench' END, CASE WHEN k % 50 = 0 THEN '2025-01-01'::timestamptz END
	FROM generate_series(1, $ENTRIES) k;
	INSERT INTO passport_entries (user_id, event_type, event_category, "timestamp", processed)
	SELECT md5('other' || u)::uuid, 'player.track_played', 'interaction',
	       '2025-01-01'::timestamptz - (u * 100 + k) * interval '1 minute', true
	FROM generate_series(1, $OTHERS) u, generate_series(1, 100) k;
	INSERT INTO dna_evolution (mediaid_id, passport_entry_id, event_type, event_time, target_type, target_id,
	    alpha, decay_cultural, decay_behavioral, decay_economic, decay_spatial,
	    delta_cultural, delta_behavioral, delta_economic, delta_spatial, late)
	SELECT '$FAN_ROW', md5('entry' || k)::uuid, 'player.track_played',
	       '2025-01-01'::timestamptz - k * interval '5 minutes', 'track', md5('track' || (k % 97))::uuid,
	       0.05, 0.999, 0.998, 0.9995, 0.9997, 0.01 + (k % 7) * 0.001, 0.02, 0.005, 0.004, k % 10 = 0
	FROM generate_series(1, $ENTRIES) k;
	ALTER ROLE passportd LOGIN;
SQL
bench_finish_db "$db"
dsn="$(bench_dsn "$db") user=passportd"

# Run "$@" and append its wall time in milliseconds to the file $1 (the command is the rest).
timed() {
	local file=$1 start end
	shift
	start=$(bench_now_ns)
	"$@" >/dev/null
	end=$(bench_now_ns)
	echo "$(((end - start) / 1000000))" >>"$file"
}

baseline() { psql -X -At -d "$dsn" -c "SELECT count(*) FROM passport_entries WHERE user_id = '$USER_ID'"; }
report() { "$PASSPORTD" inspect "$USER_ID" --json --dsn "$dsn"; }
history() { "$PASSPORTD" inspect bench@example.com --json --since 1970-01-01 --plot "$work/dna.png" --dsn "$dsn"; }

# The email lookup needs what the README tells an administrator to grant.
bench_sql "$db" "GRANT USAGE ON SCHEMA auth TO passportd; GRANT SELECT (id, email) ON auth.users TO passportd" >/dev/null
out=$(history) || bench_die "inspect failed: $out"
python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
fan = r["media_ids"][0]
print("  check: %d entries counted, %d drift steps, %d plotted points" % (
    r["entries"]["counts"]["total"], fan["drift"]["steps"], r["plot"]["points"]))
' <<<"$out" >&2

: >"$work/baseline"
: >"$work/report"
: >"$work/history"
for run in $(seq 1 "$RUNS"); do
	if ((run % 2)); then
		timed "$work/baseline" baseline
		timed "$work/report" report
		timed "$work/history" history
	else
		timed "$work/history" history
		timed "$work/report" report
		timed "$work/baseline" baseline
	fi
done

baseline_ms=$(bench_median <"$work/baseline")
report_ms=$(bench_median <"$work/report")
history_ms=$(bench_median <"$work/history")
echo "inspect: one user with $ENTRIES entries and steps; median of $RUNS runs (process start to exit)"
bench_figure "baseline: psql count(*) of the user's entries ms" "$baseline_ms   runs: $(tr '\n' ' ' <"$work/baseline")"
bench_figure "inspect --json (last 30 days) ms" "$(bench_goal "$report_ms" "$GOAL_MS")   runs: $(tr '\n' ' ' <"$work/report")"
bench_figure "inspect by email, all history, --plot png ms" "$(bench_goal "$history_ms" "$GOAL_MS")   runs: $(tr '\n' ' ' <"$work/history")"
bench_figure "ratio report / baseline" "$(bench_ratio "$report_ms" "$baseline_ms")"
bench_figure "ratio all history + plot / baseline" "$(bench_ratio "$history_ms" "$baseline_ms")"
