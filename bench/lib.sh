# lib.sh: helpers shared by the benchmark scripts (build, private server, base databases, timing).
#
# Source it from a bench script, then:
#   bench_build                 build release binaries; sets PASSPORTD and PASSPORT_MIGRATE
#   bench_server_start [LINE..] start a private PostgreSQL in a fresh temp directory; each LINE is
#                               added to its postgresql.conf (e.g. "track_commit_timestamp = on";
#                               "${BENCH_DURABLE_SETTINGS[@]}" for durable commits)
#   bench_base_db DB USERS PER_USER [DUE_LATE_EVERY]
#                               a database with the upstream tables, the project schema, USERS users
#                               and USERS x PER_USER due entries (bench/workload.sql)
#   bench_copy SRC DST          DST := an identical copy of SRC (CREATE DATABASE ... TEMPLATE)
#   bench_dsn DB                a libpq connection string for DB on the private server
#   bench_tool_dsn ROLE DB      the same for a tool: as ROLE (passportd, passport_migrate) with
#                               BENCH_SUPABASE=1, else as the superuser like bench_dsn
#   bench_sql DB SQL            run SQL in DB, print unaligned tuples
#   bench_pgbench_insert_script FILE EVENT_TYPE USERS TRACKS [ROWS]
#                               a pgbench script inserting ROWS (default 1) entries, each of a
#                               random user and track, in one statement
#   bench_now_ns                a monotonic clock in nanoseconds
#   bench_server_cpu            CPU seconds the private server has used so far (all its processes)
#   bench_median                median of the numbers on stdin, one a line
#   bench_percentile P          the P-th percentile (nearest rank) of the numbers on stdin
#   bench_ratio A B             A / B with 2 decimals
#   bench_cleanup               stop the server and delete its directory (set as the EXIT trap)
#
# Environment: BENCH_RUNS (default 3) runs per figure; PASSPORTD / PASSPORT_MIGRATE use these
# binaries instead of building; BENCH_BUILD_DIR (default /tmp/passport-bench-build) the release
# build directory; BENCH_KEEP=1 keeps the server directory for inspection; BENCH_SUPABASE=1 gives
# the server Supabase's API roles (anon, authenticated, service_role) and the upstream tables row
# level security with a policy for signed-in users, so that `passport-migrate schema` closes the
# tables and adds its roles' policies as on Supabase, and the tools run as their own roles
# (bench_tool_dsn): the figures then include the policies' and privilege checks' cost;
# BENCH_PGVECTOR=1 (the server must have pgvector, which Debian 12 does not package) makes
# media_ids.profile_embedding and entity_dna.embedding vector(1536), with pgvector in its own
# schema `extensions` as on Supabase, instead of real[].
#
# Why a snapshot build: the benchmarks need only the two binaries. When the tree does not
# configure (another engineer's test file is not there yet), the build falls back to a copy of the
# tree without tests/, so a half-finished test list never blocks a benchmark.

# shellcheck shell=bash
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(dirname "$BENCH_DIR")
# shellcheck source=scripts/lib/pg.sh
source "$BENCH_ROOT/scripts/lib/pg.sh"

BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_BUILD_DIR=${BENCH_BUILD_DIR:-/tmp/passport-bench-build}
BENCH_PG_DIR=

bench_log() { printf '==> %s\n' "$*" >&2; }
bench_die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

bench_build() {
	local snapshot="$BENCH_BUILD_DIR-src" dir
	if [[ -n "${PASSPORTD:-}" && -n "${PASSPORT_MIGRATE:-}" ]]; then
		[[ -x "$PASSPORTD" && -x "$PASSPORT_MIGRATE" ]] || bench_die "PASSPORTD or PASSPORT_MIGRATE is not executable"
		return 0
	fi
	dir=$BENCH_BUILD_DIR
	if [[ ! -f "$dir/build.ninja" ]] &&
		! meson setup "$dir" "$BENCH_ROOT" -Dbuildtype=release >"/tmp/passport-bench-setup.log" 2>&1; then
		bench_log "the tree does not configure; building a snapshot without tests/ (see /tmp/passport-bench-setup.log)"
		rm -rf "$dir" "$snapshot"
		mkdir -p "$snapshot"
		tar -C "$BENCH_ROOT" --exclude=./build --exclude='./build-*' --exclude=./.git \
			--exclude=./tests -cf - . | tar -C "$snapshot" -xf -
		sed -i "/^subdir('tests')/d" "$snapshot/meson.build"
		meson setup "$dir" "$snapshot" -Dbuildtype=release >"/tmp/passport-bench-setup.log" 2>&1 ||
			bench_die "meson setup failed: $(tail -n 5 /tmp/passport-bench-setup.log)"
	elif [[ -f "$snapshot/meson.build" ]]; then
		# A snapshot build: refresh the copied sources so the binaries match the tree.
		tar -C "$BENCH_ROOT" --exclude=./build --exclude='./build-*' --exclude=./.git \
			--exclude=./tests -cf - . | tar -C "$snapshot" -xf -
		sed -i "/^subdir('tests')/d" "$snapshot/meson.build"
	fi
	ninja -C "$dir" daemon/passportd migrate/passport-migrate >"/tmp/passport-bench-ninja.log" 2>&1 ||
		bench_die "build failed: $(tail -n 20 /tmp/passport-bench-ninja.log)"
	PASSPORTD=$dir/daemon/passportd
	PASSPORT_MIGRATE=$dir/migrate/passport-migrate
	export PASSPORTD PASSPORT_MIGRATE
}

bench_cleanup() {
	if [[ -n "$BENCH_PG_DIR" ]]; then
		pg_private_stop "$BENCH_PG_DIR" || true
		if [[ "${BENCH_KEEP:-0}" != 1 ]]; then
			rm -rf "$BENCH_PG_DIR"
		else
			bench_log "kept $BENCH_PG_DIR"
		fi
		BENCH_PG_DIR=
	fi
}

# Settings every benchmark server gets: large enough WAL between checkpoints that a run is not
# dominated by one (the same for the baseline and the candidate), and a statement log of nothing.
BENCH_PG_SETTINGS=(
	"fsync = on"
	"synchronous_commit = on"
	"full_page_writes = on"
	"max_wal_size = 8GB"
	"checkpoint_timeout = 30min"
	"log_min_duration_statement = -1"
)

# Durable commits, as on Supabase (scripts/lib/pg.sh turns all three off): for the benchmarks whose
# figure depends on the cost of a commit. Pass them to bench_server_start.
BENCH_DURABLE_SETTINGS=(
	"fsync = on"
	"synchronous_commit = on"
	"full_page_writes = on"
)

# Log the running server's durability settings (what the figures were measured with).
bench_log_durability() {
	bench_log "durability: fsync $(bench_sql postgres 'SHOW fsync'), synchronous_commit $(bench_sql postgres \
		'SHOW synchronous_commit'), full_page_writes $(bench_sql postgres 'SHOW full_page_writes')"
}

# shellcheck disable=SC2120 # the settings are optional
bench_server_start() {
	local line
	BENCH_PG_DIR=$(mktemp -d /tmp/passport-bench-pg.XXXXXX)
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
	pg_private_start "$BENCH_PG_DIR" || bench_die "could not start PostgreSQL"
	for line in "${BENCH_PG_SETTINGS[@]}" "$@"; do
		printf '%s\n' "$line"
	done | pg_private_as_owner "$BENCH_PG_DIR" tee -a "$BENCH_PG_DIR/data/postgresql.conf" >/dev/null
	pg_private_stop "$BENCH_PG_DIR" || bench_die "could not restart PostgreSQL"
	pg_private_start "$BENCH_PG_DIR" || bench_die "could not restart PostgreSQL"
	bench_log "PostgreSQL $(bench_sql postgres 'SHOW server_version') in $BENCH_PG_DIR"
	if [[ "${BENCH_SUPABASE:-0}" == 1 ]]; then
		# As tests/production/test_supabase.c: the roles exist before the schema is applied.
		bench_sql postgres "CREATE ROLE anon NOLOGIN NOINHERIT; CREATE ROLE authenticated NOLOGIN NOINHERIT;
		                    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS" >/dev/null ||
			bench_die "creating the API roles failed"
		bench_log "Supabase shape: API roles, row level security on the upstream tables, tools as their roles"
	fi
}

bench_dsn() { printf 'host=%s port=%s user=postgres dbname=%s' "$PGHOST" "$PGPORT" "$1"; }

bench_tool_dsn() {
	local role=postgres
	[[ "${BENCH_SUPABASE:-0}" == 1 ]] && role=$1
	printf 'host=%s port=%s user=%s dbname=%s' "$PGHOST" "$PGPORT" "$role" "$2"
}

# A pgbench script inserting ROWS (default 1) entries of EVENT_TYPE (e.g. player.track_played) in
# one statement, each for a random one of USERS users, targeting a random one of TRACKS tracks
# (the workload's ids), written to FILE.
bench_pgbench_insert_script() {
	local file=$1 event_type=$2 users=$3 tracks=$4 rows=${5:-1} i sep=''
	{
		for ((i = 1; i <= rows; i++)); do
			printf '\\set u%d random(1, %d)\n\\set t%d random(1, %d)\n' "$i" "$users" "$i" "$tracks"
		done
		echo "INSERT INTO passport_entries (user_id, event_type, event_category, payload) VALUES"
		for ((i = 1; i <= rows; i++)); do
			printf "%s(passport_test_uuid('user-' || :u%d), '%s', 'interaction',\n jsonb_build_object('trackId', passport_test_uuid('track-' || :t%d)::text))" \
				"$sep" "$i" "$event_type" "$i"
			sep=$',\n'
		done
		echo ";"
	} >"$file"
}

# Supabase's shape for the upstream tables of DB (BENCH_SUPABASE=1): row level security on, with
# a policy for signed-in users (the project's roles get their own from `passport-migrate schema`).
bench_supabase_tables() {
	bench_psql "$1" >/dev/null <<'SQL' || bench_die "row level security on the upstream tables failed"
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['media_ids', 'artist_profiles', 'content_items', 'ledger_entries',
                                'listening_history', 'media_engagement_log'] LOOP
        CONTINUE WHEN to_regclass(name) IS NULL;
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', name);
        EXECUTE format('CREATE POLICY signed_in_read ON %I FOR SELECT TO authenticated USING (true)', name);
    END LOOP;
END
$$;
SQL
}

bench_psql() {
	local db=$1
	shift
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"
}

bench_sql() { bench_psql "$1" -At -c "$2"; }

bench_now_ns() { date +%s%N; }

# The P-th percentile (nearest rank) of the numbers on stdin, one a line.
bench_percentile() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else { k = int((p * NR + 99) / 100); if (k < 1) k = 1; print v[k] } }'; }
bench_median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "inf"; else printf "%.2f\n", a / b }'; }

# A database with the upstream tables, the project's schema and the workload functions, and
# USERS users with their DNA rows, artists, tracks and entity vectors, but no entries yet.
bench_empty_db() {
	local db=$1 users=$2
	createdb "$db" || bench_die "createdb $db failed"
	if [[ "${BENCH_PGVECTOR:-0}" == 1 ]]; then
		# As on Supabase: pgvector in its own schema, on the database's search path.
		bench_sql "$db" "CREATE SCHEMA extensions; CREATE EXTENSION vector SCHEMA extensions;
		                 ALTER DATABASE $db SET search_path = \"\$user\", public, extensions" >/dev/null ||
			bench_die "pgvector is not installed on this server (BENCH_PGVECTOR=1)"
	fi
	bench_psql "$db" -f "$BENCH_ROOT/tests/sql/upstream.sql" -f "$BENCH_ROOT/tests/sql/media_engagement_log_canonical.sql" \
		>/dev/null || bench_die "loading upstream tables failed"
	[[ "${BENCH_SUPABASE:-0}" == 1 ]] && bench_supabase_tables "$db"
	"$PASSPORT_MIGRATE" schema --dsn "$(bench_dsn "$db")" >/dev/null || bench_die "passport-migrate schema failed"
	if [[ "${BENCH_SUPABASE:-0}" == 1 ]]; then
		bench_sql "$db" "ALTER ROLE passportd LOGIN; ALTER ROLE passport_migrate LOGIN" >/dev/null ||
			bench_die "letting the project's roles log in failed"
	fi
	bench_psql "$db" -f "$BENCH_ROOT/tests/sql/workload.sql" -f "$BENCH_DIR/workload.sql" >/dev/null ||
		bench_die "loading the workload functions failed"
	bench_sql "$db" "SELECT passport_bench_users($users)" >/dev/null || bench_die "creating users failed"
}

bench_base_db() {
	local db=$1 users=$2 per_user=$3 late_every=${4:-4}
	bench_log "base database $db: $users users x $per_user entries"
	bench_empty_db "$db" "$users"
	bench_sql "$db" "SELECT passport_bench_entries($users, $per_user)" >/dev/null || bench_die "creating entries failed"
	if [[ "$late_every" -gt 0 ]]; then
		bench_sql "$db" "SELECT passport_bench_late($users, $late_every)" >/dev/null || bench_die "late set-up failed"
	fi
	bench_finish_db "$db"
}

# Make a loaded database ready to be copied: statistics, hint bits, a checkpoint.
bench_finish_db() {
	bench_psql "$1" -c "VACUUM (ANALYZE)" >/dev/null
	bench_sql postgres "CHECKPOINT" >/dev/null
}

bench_copy() {
	local src=$1 dst=$2
	dropdb --if-exists "$dst" >/dev/null 2>&1
	createdb -T "$src" "$dst" || bench_die "copy of $src failed"
	# The copy is written through the WAL: flush it now so a checkpoint does not land in the run.
	bench_sql postgres "CHECKPOINT" >/dev/null
}

# Count the entries and DNA rows of a database (after a run).
bench_count() { bench_sql "$1" "$2"; }

# WAL position, for WAL bytes of a run.
bench_wal_lsn() { bench_sql postgres "SELECT pg_current_wal_insert_lsn()"; }
bench_wal_bytes() { bench_sql postgres "SELECT pg_wal_lsn_diff('$2', '$1')::bigint"; }

# CPU seconds the private server has used so far (every process of the cluster, live or ended:
# the postmaster's own time, its reaped children's, and its live children's). The difference over
# a run is the server's CPU for it, a figure a busy shared machine does not inflate as it does
# wall time (the psql sessions that read it count too: a few ms).
bench_server_cpu() {
	local pm
	pm=$(head -n 1 "$BENCH_PG_DIR/data/postmaster.pid")
	{
		awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat"
		for child in $(cat /proc/"$pm"/task/*/children); do
			awk '{ print $14 + $15 }' "/proc/$child/stat" 2>/dev/null || true
		done
	} | awk -v hz="$(getconf CLK_TCK)" '{ s += $1 } END { printf "%.2f\n", s / hz }'
}

# Print "name: value" aligned.
bench_figure() { printf '  %-44s %s\n' "$1" "$2"; }

# goal check text: "value <= goal" with a verdict (the figures are not pass/fail tests).
bench_goal() {
	awk -v v="$1" -v g="$2" 'BEGIN { printf "%s (goal <= %s: %s)\n", v, g, (v + 0 <= g + 0) ? "met" : "NOT met" }'
}

# Run a command and write its peak resident set size in KiB to FILE: /usr/bin/time -f %M where
# it exists (Debian package `time`), else VmHWM from /proc/PID/status, polled every 50 ms.
bench_peak_rss() {
	local file=$1 pid hwm peak=0
	shift
	if [[ -x /usr/bin/time ]]; then
		/usr/bin/time -f '%M' -o "$file" "$@"
		return
	fi
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
		[[ -n "$hwm" && "$hwm" -gt "$peak" ]] && peak=$hwm
		sleep 0.05
	done
	echo "$peak" >"$file"
	wait "$pid"
}
