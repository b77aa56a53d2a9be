#!/usr/bin/env bash
# test_pgvector: `passport-migrate schema` and `entity-dna` on a real pgvector server, where
# media_ids.profile_embedding is vector(1536) (PGlite + pgvector from npm, see tests/pgvector).
# Skipped (77) when node is not available.
set -euo pipefail

root=${PASSPORT_SOURCE_ROOT:?run through meson}
migrate=${PASSPORT_MIGRATE:?run through meson}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "SKIP: node/npm not found"
	exit 77
fi

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# Run a query in its own connection (the server takes one at a time) and print the value.
query() {
	psql "$dsn" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
}

expect_eq() { # what, got, expected
	if [[ "$2" != "$3" ]]; then
		fail "$1: got '$2', expected '$3'"
	fi
	echo "ok: $1 = $3"
}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
logdir=$(mktemp -d /tmp/passport-pgvector-test.XXXXXX)
server_pid=
cleanup() {
	if [[ -n "$server_pid" ]]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	if [[ "${keep_log:-0}" == 1 ]]; then
		echo "---- pgvector server log ----" >&2
		cat "$logdir/server.log" >&2 || true
	fi
	rm -rf "$logdir"
}
trap 'keep_log=$(( $? != 0 )); cleanup' EXIT

server_pid=$("$root/tests/pgvector/start.sh" "$port" "$logdir/server.log")
dsn="host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable"
echo "pgvector server pid $server_pid on port $port"

psql "$dsn" -X -q -v ON_ERROR_STOP=1 -c 'SET client_min_messages = warning' \
	-c 'CREATE EXTENSION IF NOT EXISTS vector' -f "$root/tests/sql/upstream.sql"
expect_eq "media_ids.profile_embedding type" \
	"$(query "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	          WHERE attrelid = 'media_ids'::regclass AND attname = 'profile_embedding'")" "vector(1536)"

out=$("$migrate" schema --dsn "$dsn" 2>&1) || fail "schema failed: $out"
echo "$out"
files=$(find "$root/sql" -maxdepth 1 -name '[0-9][0-9][0-9]_*.sql' | wc -l)
[[ "$out" == *"$files applied, 0 up to date"* ]] || fail "first schema run did not apply $files files"
expect_eq "entity_dna.embedding type" \
	"$(query "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	          WHERE attrelid = 'entity_dna'::regclass AND attname = 'embedding'")" "vector(1536)"
expect_eq "recorded migrations" "$(query 'SELECT count(*) FROM passport_schema_migrations')" "$files"
expect_eq "media_ids.dna_clock type" \
	"$(query "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	          WHERE attrelid = 'media_ids'::regclass AND attname = 'dna_clock'")" "timestamp with time zone"

out=$("$migrate" schema --dsn "$dsn" 2>&1) || fail "second schema run failed: $out"
[[ "$out" == *"0 applied, $files up to date"* ]] || fail "second schema run was not a no-op: $out"
echo "ok: second schema run applied nothing"

# entity-dna copies vector(1536) values server-side: the artist row wins over the fan row.
psql "$dsn" -X -q -v ON_ERROR_STOP=1 <<-'SQL'
	INSERT INTO artist_profiles (id, user_id, artist_name) VALUES
	    ('a0000000-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-000000000001', 'one'),
	    ('a0000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000002', 'two');
	INSERT INTO media_ids (user_uuid, role, profile_embedding) VALUES
	    ('b0000000-0000-0000-0000-000000000001', 'fan', array_fill(2::real, ARRAY[1536])::vector),
	    ('b0000000-0000-0000-0000-000000000001', 'artist',
	     (SELECT array_agg(i::real / 1536) FROM generate_series(1, 1536) i)::vector),
	    ('b0000000-0000-0000-0000-000000000002', 'fan', NULL);
SQL
out=$("$migrate" entity-dna --dsn "$dsn" 2>&1) || fail "entity-dna failed: $out"
echo "$out"
[[ "$out" == *"entity-dna: wrote 1 artist vectors"* ]] || fail "entity-dna wrote the wrong count"
expect_eq "artist vector equals the artist row's DNA" \
	"$(query "SELECT count(*) FROM entity_dna e JOIN media_ids m ON m.role = 'artist'
	          AND m.user_uuid = 'b0000000-0000-0000-0000-000000000001'
	          WHERE e.entity_type = 'artist' AND e.entity_id = 'a0000000-0000-0000-0000-000000000001'
	          AND e.embedding = m.profile_embedding AND vector_dims(e.embedding) = 1536")" "1"
expect_eq "artist without DNA has no vector" \
	"$(query "SELECT count(*) FROM entity_dna WHERE entity_id = 'a0000000-0000-0000-0000-000000000002'")" "0"

query "UPDATE media_ids SET profile_embedding = array_fill(3::real, ARRAY[1536])::vector
       WHERE user_uuid = 'b0000000-0000-0000-0000-000000000001' AND role = 'artist'" >/dev/null
out=$("$migrate" entity-dna --dsn "$dsn" 2>&1) || fail "entity-dna failed: $out"
[[ "$out" == *"entity-dna: wrote 0 artist vectors"* ]] || fail "entity-dna overwrote without --refresh: $out"
out=$("$migrate" entity-dna --refresh --dsn "$dsn" 2>&1) || fail "entity-dna --refresh failed: $out"
[[ "$out" == *"entity-dna: wrote 1 artist vectors"* ]] || fail "entity-dna --refresh wrote the wrong count: $out"
expect_eq "refreshed artist vector" \
	"$(query "SELECT (embedding::real[])[1536] FROM entity_dna
	          WHERE entity_type = 'artist' AND entity_id = 'a0000000-0000-0000-0000-000000000001'")" "3"

echo "PASS test_pgvector"
