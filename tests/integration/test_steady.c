/*
 * test_steady: what the steady state (entries arriving continuously, SPEC 5) may not lose while
 * passportd writes less per entry: the rows it inserts get time-ordered ids (coliseum_metrics.id:
 * UUID version 7, increasing with the order of insertion across batches and runs).
 */
#include "integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DSN_MAX 1024

static void load_workload(PGconn *conn)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char path[1024];
	char *sql;

	snprintf(path, sizeof(path), "%s/tests/sql/workload.sql", root ? root : ".");
	sql = harness_read_file(path);
	harness_exec(conn, "SET client_min_messages = warning");
	harness_exec(conn, sql);
	free(sql);
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

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	case_coliseum_ids_increase();
	TEST_PASS();
}
