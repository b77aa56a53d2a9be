#!/usr/bin/env bash
# test_pgvector: `passport-migrate schema`, `entity-dna`, `backfill` and `passportd drain` on a real
# pgvector server, where media_ids.profile_embedding is vector(1536) (also in a schema off the
# search path, as Supabase installs it) (PGlite + pgvector from npm, see tests/pgvector).
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

# The stand-in server takes one connection at a time, and a client that connects while the
# previous one is still closing is turned away before anything runs (libpq: "connection to server
# at ..., port N failed: server closed the connection unexpectedly"). on_server runs a command
# against it and tries again after such a refusal only; any other failure is the test's.
on_server() {
	local out status attempt
	for attempt in 1 2 3 4 5 6; do
		out=$("$@" 2>&1) && {
			printf '%s\n' "$out"
			return 0
		}
		status=$?
		[[ "$out" == *"port $port failed: server closed the connection unexpectedly"* ]] || break
		echo "on_server: the server turned the connection away (attempt $attempt); trying again" >&2
		sleep 0.5
	done
	printf '%s\n' "$out"
	return "$status"
}

# Run a query in its own connection (the server takes one at a time) and print the value.
query() {
	on_server psql "$dsn" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
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

on_server psql "$dsn" -X -q -v ON_ERROR_STOP=1 -c 'SET client_min_messages = warning' \
	-c 'CREATE EXTENSION IF NOT EXISTS vector' -f "$root/tests/sql/upstream.sql"
expect_eq "media_ids.profile_embedding type" \
	"$(query "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	          WHERE attrelid = 'media_ids'::regclass AND attname = 'profile_embedding'")" "vector(1536)"

out=$(on_server "$migrate" schema --dsn "$dsn" 2>&1) || fail "schema failed: $out"
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

out=$(on_server "$migrate" schema --dsn "$dsn" 2>&1) || fail "second schema run failed: $out"
[[ "$out" == *"0 applied, $files up to date"* ]] || fail "second schema run was not a no-op: $out"
echo "ok: second schema run applied nothing"

# entity-dna copies vector(1536) values server-side: the artist row wins over the fan row.
on_server psql "$dsn" -X -q -v ON_ERROR_STOP=1 <<-'SQL'
	INSERT INTO artist_profiles (id, user_id, artist_name) VALUES
	    ('a0000000-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-000000000001', 'one'),
	    ('a0000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000002', 'two');
	INSERT INTO media_ids (user_uuid, role, profile_embedding) VALUES
	    ('b0000000-0000-0000-0000-000000000001', 'fan', array_fill(2::real, ARRAY[1536])::vector),
	    ('b0000000-0000-0000-0000-000000000001', 'artist',
	     (SELECT array_agg(i::real / 1536) FROM generate_series(1, 1536) i)::vector),
	    ('b0000000-0000-0000-0000-000000000002', 'fan', NULL);
SQL
out=$(on_server "$migrate" entity-dna --dsn "$dsn" 2>&1) || fail "entity-dna failed: $out"
echo "$out"
[[ "$out" == *"entity-dna: wrote 1 artist vectors"* ]] || fail "entity-dna wrote the wrong count"
expect_eq "artist vector equals the artist row's DNA" \
	"$(query "SELECT count(*) FROM entity_dna e JOIN media_ids m ON m.role = 'artist'
	          AND m.user_uuid = 'b0000000-0000-0000-0000-000000000001'
	          WHERE e.entity_type = 'artist' AND e.entity_id = 'a0000000-0000-0000-0000-000000000001'
	          AND e.embedding = m.profile_embedding AND vector_dims(e.embedding) = 1536")" "1"
# sql/102_entity_dna_send.sql: with vector(1536) no trigger, and the copies stay NULL.
expect_eq "entity_dna send trigger on vector(1536)" \
	"$(query "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'entity_dna'::regclass AND tgname = 'passport_entity_dna_send'")" "0"
expect_eq "entity_dna copies on vector(1536)" \
	"$(query "SELECT count(*) FROM entity_dna WHERE embedding_send IS NOT NULL OR embedding_send_xid IS NOT NULL")" "0"
expect_eq "artist without DNA has no vector" \
	"$(query "SELECT count(*) FROM entity_dna WHERE entity_id = 'a0000000-0000-0000-0000-000000000002'")" "0"

query "UPDATE media_ids SET profile_embedding = array_fill(3::real, ARRAY[1536])::vector
       WHERE user_uuid = 'b0000000-0000-0000-0000-000000000001' AND role = 'artist'" >/dev/null
out=$(on_server "$migrate" entity-dna --dsn "$dsn" 2>&1) || fail "entity-dna failed: $out"
[[ "$out" == *"entity-dna: wrote 0 artist vectors"* ]] || fail "entity-dna overwrote without --refresh: $out"
out=$(on_server "$migrate" entity-dna --refresh --dsn "$dsn" 2>&1) || fail "entity-dna --refresh failed: $out"
[[ "$out" == *"entity-dna: wrote 1 artist vectors"* ]] || fail "entity-dna --refresh wrote the wrong count: $out"
expect_eq "refreshed artist vector" \
	"$(query "SELECT (embedding::real[])[1536] FROM entity_dna
	          WHERE entity_type = 'artist' AND entity_id = 'a0000000-0000-0000-0000-000000000001'")" "3"

# passportd drain on vector(1536) columns must give exactly what it gives on real[] columns for the
# same workload: the same entries, vectors and timestamps, drained on the PostgreSQL 15 test server.
passportd=${PASSPORTD:?run through meson}
on_server psql "$dsn" -X -q -v ON_ERROR_STOP=1 \
	-c 'DELETE FROM entity_dna' -c 'DELETE FROM media_ids' -c 'DELETE FROM artist_profiles' \
	-f "$root/tests/sql/workload.sql" -c 'SELECT passport_test_workload(12, 15)'
out=$(on_server "$passportd" drain --dsn "$dsn" --batch-size 40 2>&1) || fail "drain on pgvector failed: $out"
echo "$out"
[[ "$out" == *"processed 180, failed 0"* ]] || fail "drain on pgvector did not process all 180 entries: $out"
expect_eq "DNA rows updated on vector(1536)" \
	"$(query "SELECT count(*) FROM media_ids WHERE version > 1 AND vector_dims(profile_embedding) = 1536")" \
	"$(query "SELECT count(DISTINCT mediaid_id) FROM dna_evolution")"
# passportd inspect decodes vector(1536) with the pgvector codec: its per-domain norms match the
# server's own, computed from the same DNA row.
inspect_user=$(query "SELECT user_uuid FROM media_ids WHERE profile_embedding IS NOT NULL AND version > 1 ORDER BY id LIMIT 1")
expected_norms=$(query "SELECT string_agg(round(sqrt(s)::numeric, 6)::text, ' ' ORDER BY d) FROM (
	SELECT d, sum(x::float8 * x) AS s FROM media_ids m,
	     unnest(m.profile_embedding::real[]) WITH ORDINALITY AS u(x, i), LATERAL (SELECT (i - 1) / 384 AS d) b
	WHERE m.user_uuid = '$inspect_user' AND m.role = 'fan' GROUP BY d) t")
out=$(on_server "$passportd" inspect "$inspect_user" --json --since 1970-01-01 --dsn "$dsn" 2>&1) || fail "inspect on pgvector failed: $out"
got_norms=$(python3 -c '
import json, sys
report = json.loads(sys.stdin.read())
assert report["vector_type"] == "vector", report["vector_type"]
row = next(r for r in report["media_ids"] if r["role"] == "fan")
assert row["dna"]["state"] == "ok", row["dna"]
assert row["drift"]["steps"] > 0 and len(row["evolution"]) > 0
print(" ".join("%.6f" % row["dna"]["norms"][d] for d in ("cultural", "behavioral", "economic", "spatial")))
' <<<"$out") || fail "inspect's JSON on pgvector: $out"
expect_eq "inspect's per-domain norms on vector(1536)" "$got_norms" "$expected_norms"

vector_dump=$(query "SELECT string_agg(id::text || ' ' || coalesce((profile_embedding::real[])::text, 'null')
                     || ' ' || coalesce(dna_clock::text, 'null'), E'\n' ORDER BY id) FROM media_ids")

if [[ -n "${PASSPORT_TEST_PGHOST:-}" ]]; then
	pg15="host=$PASSPORT_TEST_PGHOST port=${PASSPORT_TEST_PGPORT:-5432} user=postgres"
	psql "$pg15 dbname=postgres" -X -q -v ON_ERROR_STOP=1 \
		-c 'DROP DATABASE IF EXISTS t_pgvector_real' -c 'CREATE DATABASE t_pgvector_real'
	real_dsn="$pg15 dbname=t_pgvector_real"
	psql "$real_dsn" -X -q -v ON_ERROR_STOP=1 -c 'SET client_min_messages = warning' -f "$root/tests/sql/upstream.sql"
	"$migrate" schema --dsn "$real_dsn" >/dev/null || fail "schema on real[] failed"
	psql "$real_dsn" -X -q -v ON_ERROR_STOP=1 -f "$root/tests/sql/workload.sql" -c 'SELECT passport_test_workload(12, 15)' >/dev/null
	out=$("$passportd" drain --dsn "$real_dsn" --batch-size 500 2>&1) || fail "drain on real[] failed: $out"
	[[ "$out" == *"processed 180, failed 0"* ]] || fail "drain on real[] did not process all 180 entries: $out"
	real_dump=$(psql "$real_dsn" -X -q -A -t -c "SELECT string_agg(id::text || ' ' || coalesce(profile_embedding::text, 'null')
	                     || ' ' || coalesce(dna_clock::text, 'null'), E'\n' ORDER BY id) FROM media_ids")
	if [[ "$vector_dump" != "$real_dump" ]]; then
		diff <(echo "$vector_dump" | cut -c1-200) <(echo "$real_dump" | cut -c1-200) | head -20 >&2 || true
		fail "embeddings on vector(1536) differ from those on real[]"
	fi
	echo "ok: vector(1536) and real[] embeddings are identical after drain ($(echo "$vector_dump" | wc -l) rows)"
	psql "$pg15 dbname=postgres" -X -q -c 'DROP DATABASE IF EXISTS t_pgvector_real' || true
else
	echo "note: PASSPORT_TEST_PGHOST not set; the real[] comparison was not run"
fi

# Supabase's layout: pgvector installed in the schema `extensions`, off the search path. A second
# server (the first one's vector type lives in public). The type is found by OID wherever it is;
# its dimension must be 1536; backfill and drain work on it. (PGlite's one backend keeps session
# settings from one client to the next: whatever a client SETs, it RESETs.)
kill "$server_pid" 2>/dev/null || true
server_pid=
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dsn="host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable"
server_pid=$("$root/tests/pgvector/start.sh" "$port" "$logdir/server.log")
on_server psql "$dsn" -X -q -v ON_ERROR_STOP=1 -c 'SET client_min_messages = warning' \
	-c 'CREATE SCHEMA extensions' -c 'CREATE EXTENSION vector SCHEMA extensions' \
	-c 'SET search_path = public, extensions' -f "$root/tests/sql/upstream.sql" -c 'RESET search_path'
expect_eq "profile_embedding type (off the search path)" \
	"$(query "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	          WHERE attrelid = 'media_ids'::regclass AND attname = 'profile_embedding'")" "extensions.vector(1536)"

query "ALTER TABLE media_ids ALTER COLUMN profile_embedding TYPE extensions.vector(768)" >/dev/null
if out=$(on_server "$migrate" schema --dsn "$dsn" 2>&1); then
	fail "schema accepted a vector(768) profile_embedding: $out"
fi
[[ "$out" == *"media_ids.profile_embedding is extensions.vector(768)"*"must be vector(1536)"* ]] ||
	fail "schema's refusal of vector(768) does not name the column and its type: $out"
echo "ok: schema refuses vector(768), naming the column"
query "ALTER TABLE media_ids ALTER COLUMN profile_embedding TYPE extensions.vector(1536)" >/dev/null

out=$(on_server "$migrate" schema --dsn "$dsn" 2>&1) || fail "schema with pgvector in extensions failed: $out"
expect_eq "entity_dna.embedding type (off the search path)" \
	"$(query "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
	          WHERE attrelid = 'entity_dna'::regclass AND attname = 'embedding'")" "extensions.vector(1536)"
on_server psql "$dsn" -X -q -v ON_ERROR_STOP=1 -f "$root/tests/sql/workload.sql" -c 'SELECT passport_test_workload(6, 10)' >/dev/null
on_server psql "$dsn" -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO listening_history (id, user_id, content_id, event_type, created_at)
	SELECT passport_test_uuid('lh-' || i), passport_test_uuid('user-' || (1 + i % 6)), passport_test_uuid('track-' || i),
	       'played', timestamptz '2026-02-01' + i * interval '1 minute' FROM generate_series(1, 12) AS i" >/dev/null
out=$(on_server "$migrate" backfill --source listening_history --dsn "$dsn" 2>&1) || fail "backfill on pgvector failed: $out"
expect_eq "backfilled entries" "$(query "SELECT count(*) FROM passport_entries WHERE legacy_source = 'listening_history'")" "12"
out=$(on_server "$migrate" entity-dna --dsn "$dsn" 2>&1) || fail "entity-dna with pgvector in extensions failed: $out"
out=$(on_server "$passportd" drain --dsn "$dsn" --batch-size 25 2>&1) || fail "drain with pgvector in extensions failed: $out"
[[ "$out" == *"processed 72, failed 0"* ]] || fail "drain with pgvector in extensions did not process all 72 entries: $out"
expect_eq "DNA rows updated (extensions.vector)" \
	"$(query "SELECT count(*) FROM media_ids WHERE version > 1 AND extensions.vector_dims(profile_embedding) = 1536")" \
	"$(query "SELECT count(DISTINCT mediaid_id) FROM dna_evolution")"

query "ALTER TABLE media_ids ALTER COLUMN profile_embedding TYPE extensions.vector(768) USING NULL" >/dev/null
if out=$(on_server "$passportd" drain --dsn "$dsn" 2>&1); then
	fail "passportd started on a vector(768) profile_embedding: $out"
fi
[[ "$out" == *"media_ids.profile_embedding is extensions.vector(768)"*"must be vector(1536)"* ]] ||
	fail "passportd's refusal of vector(768) does not name the column and its type: $out"
echo "ok: passportd refuses vector(768) at start-up, naming the column"

echo "PASS test_pgvector"
