/*
 * test_prepared: a processor on a session of its own prepares each of its statements once (named,
 * lib/db_prepared.c), and gets over the server losing them. Each case drives one processor
 * (lib/batch.h) and reads pg_prepared_statements on the processor's own connection:
 *   - the batches' statements are prepared on the first batch and reused by every later one;
 *   - after they are deallocated behind the processor's back, the next batch is rolled back as
 *     busy (no entry touched, nothing recorded against one) and the one after prepares them anew;
 *   - a session that keeps losing them goes back to unnamed statements after a few resets;
 *   - a batch that fails on an entry's data keeps them (the entry is isolated and recorded).
 */
#include "integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "db.h"

#define DSN_MAX 1024
#define PREPARED_COUNT "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'passportd\\_%'"
#define PREPARED_NAMES "SELECT string_agg(name, ',' ORDER BY name) FROM pg_prepared_statements"

static PGconn *open_workload(const char *name, int users, int per_user, char *dsn)
{
	return harness_open_workload(name, users, per_user, dsn, DSN_MAX);
}

static int run_batch(struct processor *p, long *processed)
{
	struct batch_totals totals = {0};
	struct db_error error;
	int status = processor_run_batch(p, &totals, &error);

	if (status == BATCH_ERROR)
		fprintf(stderr, "processor_run_batch: %s\n", error.message);
	*processed += totals.processed;
	return status;
}

static long run_until_empty(struct processor *p)
{
	long processed = 0;
	int status;

	for (int i = 0; i < 1000 && (status = run_batch(p, &processed)) != BATCH_EMPTY; i++)
		ASSERT_EQ_INT(status, BATCH_DONE);
	return processed;
}

/* How many of the names (comma-separated) are still prepared on the worker's session. */
static int still_prepared(PGconn *worker, const char *names)
{
	return harness_intf(worker, "SELECT count(*) FROM pg_prepared_statements WHERE name = ANY(string_to_array('%s', ','))",
			    names);
}

static int count_names(const char *names)
{
	int n = 1;

	for (const char *c = names; *c; c++)
		n += *c == ',';
	return n;
}

/* No entry carries a failure: nothing was recorded against the data. */
static void expect_no_failures(PGconn *conn)
{
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE last_error IS NOT NULL"
					      " OR dead_at IS NOT NULL OR coalesce(processing_attempts, 0) <> 0"),
		      0);
}

static void case_prepared_once(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("prepared_once", 40, 6, dsn);
	PGconn *worker;
	struct processor *p = harness_open_processor(dsn, 30, &worker);
	long processed = 0;
	int after_first;
	char *names_first, *names_last;

	printf("\n=== statements prepared on the first batch, reused after\n");
	ASSERT_EQ_INT(run_batch(p, &processed), BATCH_DONE);
	after_first = harness_query_int(worker, PREPARED_COUNT);
	names_first = harness_query_text(worker, PREPARED_NAMES);
	printf("after the first batch: %d prepared (%s)\n", after_first, names_first);
	/* the walk, the claim, the DNA rows, the marks with coliseum rows, dna_evolution, the DNA write */
	ASSERT_GT_INT(after_first, 5);
	processed += run_until_empty(p);
	ASSERT_EQ_INT(processed, 240);
	names_last = harness_query_text(worker, PREPARED_NAMES);
	printf("after all batches: %s\n", names_last);
	/* The same statements, no new ones per batch (a late statement, e.g. the last count, may add one). */
	ASSERT_EQ_INT(still_prepared(worker, names_first), after_first);
	ASSERT_TRUE(harness_query_int(worker, PREPARED_COUNT) <= after_first + 2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"), 0);
	expect_no_failures(conn);
	free(names_first);
	free(names_last);
	processor_destroy(p);
	PQfinish(worker);
	PQfinish(conn);
}

static void case_deallocated(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("prepared_lost", 30, 4, dsn);
	PGconn *worker;
	struct processor *p = harness_open_processor(dsn, 20, &worker);
	long processed = 0, before;
	char *names_before, *names_after;

	printf("\n=== the server loses the prepared statements between batches\n");
	ASSERT_EQ_INT(run_batch(p, &processed), BATCH_DONE);
	names_before = harness_query_text(worker, PREPARED_NAMES);
	harness_exec(worker, "DEALLOCATE ALL");
	before = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed");
	/* The walk finds its statement gone: a busy batch, rolled back, nothing recorded. */
	ASSERT_EQ_INT(run_batch(p, &processed), BATCH_BUSY);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed"), before);
	expect_no_failures(conn);
	processed += run_until_empty(p);
	ASSERT_EQ_INT(processed, 120);
	names_after = harness_query_text(worker, PREPARED_NAMES);
	printf("before: %s\nafter: %s\n", names_before, names_after);
	ASSERT_GT_INT(harness_query_int(worker, PREPARED_COUNT), 5);
	ASSERT_EQ_INT(still_prepared(worker, names_before), 0); /* prepared anew, under new names */
	expect_no_failures(conn);
	free(names_before);
	free(names_after);
	processor_destroy(p);
	PQfinish(worker);
	PQfinish(conn);
}

/*
 * A session that keeps losing them (what a pooler passing the server's process id through while
 * moving sessions would look like): after a few resets the processor stops preparing, and every
 * entry still goes through once.
 */
static void case_keeps_losing_them(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("prepared_gone", 40, 2, dsn);
	PGconn *worker;
	struct processor *p = harness_open_processor(dsn, 4, &worker);
	long processed = 0;
	int busy = 0, status;

	printf("\n=== the session loses its prepared statements before every batch\n");
	for (int i = 0; i < 200; i++) {
		harness_exec(worker, "DEALLOCATE ALL");
		status = run_batch(p, &processed);
		if (status == BATCH_EMPTY)
			break;
		if (status == BATCH_BUSY)
			busy++;
		else
			ASSERT_EQ_INT(status, BATCH_DONE);
	}
	printf("%d busy batches, %ld entries processed, %lld statements prepared now\n", busy, processed,
	       harness_query_int(worker, PREPARED_COUNT));
	ASSERT_EQ_INT(processed, 80);
	ASSERT_TRUE(busy >= 1 && busy <= 4);
	/* Given up: the last batches ran unnamed and left nothing prepared. */
	ASSERT_EQ_INT(harness_query_int(worker, PREPARED_COUNT), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"), 0);
	expect_no_failures(conn);
	processor_destroy(p);
	PQfinish(worker);
	PQfinish(conn);
}

static void case_data_error_keeps_them(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("prepared_kept", 20, 3, dsn);
	PGconn *worker;
	struct processor *p = harness_open_processor(dsn, 100, &worker);
	long processed = 0;
	char *names_before, *names_after;
	char *bad;

	printf("\n=== a batch that fails on one entry's data keeps the prepared statements\n");
	/* Prepare everything on a first small part of the queue: 10 entries. */
	harness_exec(conn, "CREATE TABLE later AS SELECT id FROM passport_entries ORDER BY \"timestamp\", id OFFSET 10");
	harness_exec(conn, "UPDATE passport_entries SET dead_at = now() WHERE id IN (SELECT id FROM later)");
	ASSERT_EQ_INT(run_batch(p, &processed), BATCH_DONE);
	ASSERT_EQ_INT(processed, 10);
	names_before = harness_query_text(worker, PREPARED_NAMES);
	harness_exec(conn, "UPDATE passport_entries SET dead_at = NULL WHERE id IN (SELECT id FROM later)");
	/* One entry's dna_evolution row is refused by the database: the whole batch fails on it. */
	bad = harness_query_text(conn, "SELECT id::text FROM passport_entries WHERE id IN (SELECT id FROM later)"
				       " AND event_type = 'player.track_completed' AND user_id IS NOT NULL ORDER BY id LIMIT 1");
	harness_execf(conn,
		      "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
		      " IF NEW.passport_entry_id = '%s' THEN RAISE EXCEPTION 'refused for the test'; END IF;"
		      " RETURN NEW; END $$",
		      bad);
	harness_exec(conn, "CREATE TRIGGER refuse_one BEFORE INSERT ON dna_evolution FOR EACH ROW EXECUTE FUNCTION refuse_one()");
	processed += run_until_empty(p);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE last_error LIKE '%refused for the test%'"),
		      1);
	names_after = harness_query_text(worker, PREPARED_NAMES);
	printf("before: %s\nafter: %s\n", names_before, names_after);
	/* The names of the first batch are all still there: none was dropped by the failure. */
	ASSERT_EQ_INT(still_prepared(worker, names_before), count_names(names_before));
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"
					      " AND last_error IS NULL"), 0);
	free(bad);
	free(names_before);
	free(names_after);
	processor_destroy(p);
	PQfinish(worker);
	PQfinish(conn);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	case_prepared_once();
	case_deallocated();
	case_keeps_losing_them();
	case_data_error_keeps_them();
	TEST_PASS();
}
