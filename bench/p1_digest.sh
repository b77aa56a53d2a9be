#!/usr/bin/env bash
# P1 digests: what a drain of the P1 workload leaves behind, as digests, so that a change that
# must not change results (a restructuring, a speed-up) can be checked bit for bit.
#
# Drains a copy of the P1 workload with passportd built from this tree and prints md5 digests of
# the DNA rows (embedding bits, clock), the dna_evolution rows, the coliseum rows and the
# entries' states. With BASELINE_PASSPORTD (a passportd built from another tree, e.g. the commit
# before a change) it drains a second copy with that binary and says whether every digest agrees;
# the exit status is then 1 on any difference.
#
# Environment: P1_USERS (default 5000), P1_PER_USER (default 40), DIGEST_WORKERS (default 2),
# BASELINE_PASSPORTD, plus bench/lib.sh's.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

USERS=${P1_USERS:-5000}
PER_USER=${P1_PER_USER:-40}
WORKERS=${DIGEST_WORKERS:-2}

# Timestamps print in UTC whatever the server's zone; embeddings as float4 text round-trip exactly.
# media_ids.version is left out: it counts writes, and how many batches touched a row depends on
# how the workers' batches fell.
DIGEST_SQL="SET TimeZone = 'UTC';
SELECT 'dna', md5(string_agg(concat_ws('|', id, profile_embedding::text, dna_clock), ',' ORDER BY id))
  FROM media_ids
UNION ALL
SELECT 'evolution', md5(string_agg(concat_ws('|', mediaid_id, passport_entry_id, event_type, event_time,
    target_type, target_id, alpha, decay_cultural, decay_behavioral, decay_economic, decay_spatial,
    delta_cultural, delta_behavioral, delta_economic, delta_spatial, late), ',' ORDER BY passport_entry_id, mediaid_id))
  FROM dna_evolution
UNION ALL
SELECT 'coliseum', md5(string_agg(concat_ws('|', passport_entry_id, user_id, artist_id, event_id, track_id,
    brand_id, metric_type, metric_value, metric_unit, source, session_id, dna_match_score, metadata,
    \"timestamp\"), ',' ORDER BY passport_entry_id))
  FROM coliseum_metrics
UNION ALL
SELECT 'entries', md5(string_agg(concat_ws('|', id, processed, processing_attempts, dead_at IS NULL,
    next_attempt_at IS NULL, last_error), ',' ORDER BY id))
  FROM passport_entries"

bench_build
bench_server_start
bench_base_db p1_base "$USERS" "$PER_USER"

# Drain a fresh copy with binary $1 and print its digests ("name md5" lines).
digests() {
	local binary=$1 db=$2
	bench_copy p1_base "$db"
	"$binary" drain --dsn "$(bench_dsn "$db")" --workers "$WORKERS" --log-level warning >&2
	bench_psql "$db" -At -F ' ' -c "$DIGEST_SQL" | grep -v '^SET$' | sort
}

current=$(digests "$PASSPORTD" p1_current)
echo "P1 digests ($USERS users x $PER_USER entries, drain --workers $WORKERS), this tree:"
sed 's/^/  /' <<<"$current"
if [[ -n "${BASELINE_PASSPORTD:-}" ]]; then
	baseline=$(digests "$BASELINE_PASSPORTD" p1_baseline)
	echo "baseline ($BASELINE_PASSPORTD):"
	sed 's/^/  /' <<<"$baseline"
	if [[ "$current" == "$baseline" ]]; then
		echo "digests: all the same"
	else
		echo "digests: DIFFERENT"
		exit 1
	fi
fi
