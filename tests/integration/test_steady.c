/*
 * test_steady: what the steady state (entries arriving continuously, SPEC 5) may not lose while
 * passportd writes less per entry: the rows it inserts get time-ordered ids (coliseum_metrics.id:
 * UUID version 7, increasing with the order of insertion across batches and runs); entries of one
 * user that arrive while `passportd run` is busy share DNA writes, and the DNA is the same, bit for
 * bit, as a drain of the same entries gives.
 */
#include "integration/children.h"
#include "integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DSN_MAX 1024
#define GATHER_USERS 3
#define GATHER_ENTRIES 600
#define DUE_SQL "SELECT count(*) FROM passport_entries WHERE NOT processed AND dead_at IS NULL"
/* The DNA of every row, as one digest. */
#define DNA_DIGEST_SQL                                                                                  \
	"SELECT md5(string_agg(id::text || ':' || coalesce(profile_embedding::text, 'null') || ':'"      \
	" || coalesce(dna_clock::text, 'null'), ',' ORDER BY id)) FROM media_ids"

static void load_workload(PGconn *conn)
{
	harness_exec(conn, "SET client_min_messages = warning");
	harness_exec_source_file(conn, "tests/sql/workload.sql");
}

static void drain(const char *dsn, const char *batch_size)
{
	const char *argv[] = {harness_passportd(), "drain", "--dsn", dsn, "--batch-size", batch_size, "--workers", "1", NULL};

	ASSERT_EQ_INT(harness_run(argv, NULL, NULL), 0);
}

/*
 * coliseum_metrics ids are UUIDv7 and increase in the order the rows were inserted (the heap
 * order of a table that was only ever inserted into), over many batches and two runs.
 */
static void case_coliseum_ids_increase(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = harness_create_database("steady_ids", NULL, dsn, sizeof(dsn));
	long long rows;

	printf("\n=== coliseum_metrics ids are time-ordered\n");
	load_workload(conn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(12, 10)"), 120);
	harness_exec(conn, "UPDATE passport_entries SET next_attempt_at = 'infinity' WHERE user_id IN"
			   " (SELECT user_uuid FROM media_ids WHERE role = 'fan' ORDER BY id LIMIT 6)");
	drain(dsn, "7");
	harness_exec(conn, "UPDATE passport_entries SET next_attempt_at = NULL WHERE next_attempt_at = 'infinity'");
	drain(dsn, "5");
	rows = harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics");
	ASSERT_GT_INT(rows, 40);
	/* Version 7 and the RFC variant, every one. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics"
					      " WHERE substr(id::text, 15, 1) = '7' AND substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')"),
		      rows);
	/* Each row's id is greater than that of the row inserted before it. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM (SELECT id, lag(id) OVER (ORDER BY ctid) AS previous"
					      " FROM coliseum_metrics) s WHERE previous IS NOT NULL AND id <= previous"),
		      0);
	/* And about now: the first 48 bits are the time in milliseconds. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics WHERE abs(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint"
					      " - (extract(epoch FROM clock_timestamp()) * 1000)::bigint) > 600000"),
		      0);
	PQfinish(conn);
}

/* Entry i of the gathering case: one of GATHER_USERS users in turn, a minute after the one before. */
static void insert_gather_entries(PGconn *conn, int first, int last)
{
	harness_execf(conn,
		      "INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, affects_systems,"
		      " \"timestamp\")"
		      " SELECT passport_test_uuid('gather-' || i), passport_test_uuid('user-' || (1 + i %% %d)),"
		      " 'player.track_played', 'interaction',"
		      " jsonb_build_object('trackId', passport_test_uuid('track-' || (1 + i %% 4))::text), '{mediaid}',"
		      " '2026-02-01 00:00:00+00'::timestamptz + i * interval '1 minute'"
		      " FROM generate_series(%d, %d) AS i",
		      GATHER_USERS, first, last);
}

static PGconn *gather_database(const char *name, char *dsn)
{
	PGconn *conn = harness_create_database(name, NULL, dsn, DSN_MAX);

	load_workload(conn);
	ASSERT_EQ_INT(harness_intf(conn, "SELECT passport_test_workload(%d, 0)", GATHER_USERS), 0);
	return conn;
}

/*
 * Entries of a few users inserted one by one, about 150 a second, while `passportd run` is busy
 * with them: they are applied with a fraction of the DNA writes (one per user per batch, and a
 * busy service lets a batch gather entries), and the DNA equals that of a drain of the same
 * entries inserted at once.
 */
static void case_gathering(void)
{
	char dsn[DSN_MAX], reference_dsn[DSN_MAX];
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "5", NULL};
	PGconn *conn, *reference;
	struct child *daemon;
	long long versions_before, writes;
	double deadline;
	char *digest, *reference_digest;

	printf("\n=== entries of one user that arrive while the service is busy share DNA writes\n");
	conn = gather_database("steady_gather", dsn);
	versions_before = harness_query_int(conn, "SELECT sum(version) FROM media_ids");
	daemon = daemon_start("run", args, NULL);
	children_sleep(1.0); /* connected, idle, armed */
	for (int i = 0; i < GATHER_ENTRIES; i++) {
		insert_gather_entries(conn, i, i);
		children_sleep(0.005);
	}
	deadline = children_now() + 30;
	while (harness_query_int(conn, DUE_SQL) > 0) {
		if (children_now() > deadline)
			FAIL("%lld entries still due 30 s after the last insert", harness_query_int(conn, DUE_SQL));
		children_sleep(0.05);
	}
	daemon_stop_ok(daemon);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed"), GATHER_ENTRIES);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), GATHER_ENTRIES);
	writes = harness_query_int(conn, "SELECT sum(version) FROM media_ids") - versions_before;
	printf("%d entries of %d users: %lld DNA writes\n", GATHER_ENTRIES, GATHER_USERS, writes);
	/* Without gathering nearly every batch holds one entry per user: about one write per entry. */
	ASSERT_LE_INT(writes * 3, GATHER_ENTRIES);

	reference = gather_database("steady_gather_reference", reference_dsn);
	insert_gather_entries(reference, 0, GATHER_ENTRIES - 1);
	drain(reference_dsn, "500");
	digest = harness_query_text(conn, DNA_DIGEST_SQL);
	reference_digest = harness_query_text(reference, DNA_DIGEST_SQL);
	ASSERT_STR_EQ(digest, reference_digest);
	free(digest);
	free(reference_digest);
	PQfinish(reference);
	PQfinish(conn);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!getenv("PASSPORT_TEST_PGHOST") || !*getenv("PASSPORT_TEST_PGHOST")) {
		fprintf(stderr, "SKIP: PASSPORT_TEST_PGHOST is not set (run ./scripts/test)\n");
		return 77;
	}
	children_init("passport-steady");
	children_case_begin();
	/* PASSPORT_STEADY_CASE=ids or gathering runs one case (to check it against another build). */
	if (!getenv("PASSPORT_STEADY_CASE") || strcmp(getenv("PASSPORT_STEADY_CASE"), "gathering") != 0)
		case_coliseum_ids_increase();
	if (!getenv("PASSPORT_STEADY_CASE") || strcmp(getenv("PASSPORT_STEADY_CASE"), "ids") != 0)
		case_gathering();
	children_passed();
	TEST_PASS();
}
