/*
 * test_claim: a claim that finds nothing only because of its own workers' races looks again at
 * once instead of reporting BATCH_BUSY (which makes drain, `run` and the catch-up helpers pause).
 * Each case drives one processor (lib/batch.h) while another session holds what a second worker
 * would hold, and asks for one batch: it must be claimed and processed on that first call, and
 * must leave the held users' entries alone. The third case runs `passportd drain` while another
 * session holds one user's oldest entry for a while: the drain must wait for it, not end early.
 * The last one checks every field a claim decodes (its result comes in binary) against the row.
 */
#include "integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "claim.h"
#include "db.h"
#include "pipeline.h"

#define DSN_MAX 1024
/* The users in order of their oldest due entry: the order in which the walk takes them. */
#define USERS_IN_WALK_ORDER                                                                        \
	"(SELECT f.user_id FROM (SELECT DISTINCT ON (user_id) user_id, \"timestamp\", id"            \
	" FROM passport_entries WHERE NOT processed ORDER BY user_id, \"timestamp\", id) f"           \
	" ORDER BY f.\"timestamp\", f.id LIMIT %d) w"

static PGconn *open_workload(const char *name, int users, int per_user, char *dsn)
{
	PGconn *conn = harness_open_workload(name, users, per_user, dsn, DSN_MAX);

	/* Every entry has a user: entries without one need no user lock and would mask the case. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE user_id IS NULL"), 0);
	return conn;
}

/* One batch, which must be claimed on this call. Returns the entries it processed. */
static long one_batch(struct processor *p)
{
	struct batch_totals totals = {0};
	struct db_error error;
	int status = processor_run_batch(p, &totals, &error);

	if (status == BATCH_ERROR)
		fprintf(stderr, "processor_run_batch: %s\n", error.message);
	ASSERT_EQ_INT(status, BATCH_DONE);
	return totals.processed;
}

/*
 * The oldest users are held by another worker (their user locks, as a batch of that worker holds
 * them), more of them than the processor's first look takes as candidates. The first call widens
 * its candidates and claims other users' entries. Before, it reported BATCH_BUSY: at the start of
 * a drain, the second worker kept losing the first one's users and pausing.
 */
static void case_candidates_held(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("claim_held", 60, 5, dsn);
	PGconn *holder = harness_connect(dsn);
	PGconn *worker_conn;
	struct processor *p = harness_open_processor(dsn, 50, &worker_conn);
	long processed;

	printf("\n=== the oldest users held by another worker\n");
	harness_execf(conn, "CREATE TABLE held_users AS SELECT user_id FROM " USERS_IN_WALK_ORDER, 40);
	ASSERT_EQ_INT(harness_query_int(holder, "SELECT count(pg_advisory_lock(" LOCK_CLASS_USER ", hashtext(user_id::text)))"
						 " FROM held_users"),
		      40);
	processed = one_batch(p);
	printf("processed %ld entries with the 40 oldest users held\n", processed);
	ASSERT_GT_INT(processed, 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed"), processed);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries e JOIN held_users h USING (user_id)"
					      " WHERE e.processed"),
		      0);
	harness_exec(holder, "SELECT pg_advisory_unlock_all()");
	processor_destroy(p);
	PQfinish(worker_conn);
	PQfinish(holder);
	PQfinish(conn);
}

/*
 * The users the walk takes first have nothing it can claim: the oldest due entry of each is
 * locked by another session (here an operator's SELECT ... FOR UPDATE; between a drain's own
 * workers, the same happens when the worker that held them commits between the walk and the
 * claim). They are set aside and the same call takes the next users. Before, BATCH_BUSY.
 */
static void case_nothing_claimable(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("claim_nothing", 10, 4, dsn);
	PGconn *holder = harness_connect(dsn);
	PGconn *worker_conn;
	/* Batches of 8: the walk takes two users of 4 due entries each. */
	struct processor *p = harness_open_processor(dsn, 8, &worker_conn);
	long processed;

	printf("\n=== the first users' oldest entries locked by another session\n");
	harness_execf(conn, "CREATE TABLE first_users AS SELECT user_id FROM " USERS_IN_WALK_ORDER, 2);
	harness_exec(holder, "BEGIN");
	ASSERT_EQ_INT(harness_query_int(holder,
					"SELECT count(*) FROM (SELECT e.id FROM passport_entries e WHERE e.id IN"
					" (SELECT DISTINCT ON (user_id) id FROM passport_entries WHERE user_id IN"
					" (SELECT user_id FROM first_users) ORDER BY user_id, \"timestamp\", id)"
					" FOR UPDATE) l"),
		      2);
	processed = one_batch(p);
	printf("processed %ld entries with the first two users' oldest entries locked\n", processed);
	ASSERT_EQ_INT(processed, 8);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries e JOIN first_users f USING (user_id)"
					      " WHERE e.processed"), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(DISTINCT user_id) FROM passport_entries WHERE processed"), 2);
	harness_exec(holder, "ROLLBACK");
	processor_destroy(p);
	PQfinish(worker_conn);
	PQfinish(holder);
	PQfinish(conn);
}

/*
 * Another session holds the first user's oldest entry (SELECT ... FOR UPDATE) for 1.5 s while
 * `passportd drain` runs. The drain sets the user aside, processes the others, then finds only
 * the set-aside user's entries due (its count of them, claim_count_due) and waits: it ends with
 * every entry processed. A count that missed them would end the drain with that user's 3 left.
 */
static void case_drain_waits_for_held_entry(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("claim_drain_held", 6, 3, dsn);
	PGconn *holder = harness_connect(dsn);
	const char *argv[] = {harness_passportd(), "drain", "--dsn", dsn, "--workers", "1", NULL};
	char *output = NULL, *first;
	PGresult *res;
	int status;

	printf("\n=== drain while another session holds one user's oldest entry\n");
	first = harness_textf(conn, "SELECT id FROM passport_entries WHERE user_id = (SELECT user_id FROM "
				    USERS_IN_WALK_ORDER ") ORDER BY \"timestamp\", id LIMIT 1", 1);
	{
		char sql[256];
		snprintf(sql, sizeof sql, "BEGIN; SELECT id FROM passport_entries WHERE id = '%s' FOR UPDATE;"
					  " SELECT pg_sleep(1.5); COMMIT", first);
		ASSERT_TRUE(PQsendQuery(holder, sql) == 1);
	}
	/* The lock is held once the holder sleeps. */
	for (int i = 0; harness_intf(conn, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event = 'PgSleep'",
				     PQbackendPID(holder)) == 0;
	     i++) {
		ASSERT_TRUE(i < 500);
		usleep(10 * 1000);
	}
	status = harness_run(argv, NULL, &output);
	printf("%s", output ? output : "");
	ASSERT_EQ_INT(status, 0);
	ASSERT_TRUE(output && strstr(output, "drain: processed 18,") != NULL);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"), 0);
	while ((res = PQgetResult(holder)) != NULL) {
		ASSERT_TRUE(PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK);
		PQclear(res);
	}
	free(output);
	free(first);
	PQfinish(holder);
	PQfinish(conn);
}

/*
 * The claim's result comes in binary format and take_claimed decodes it: every field of every
 * claimed entry must equal what the server prints for the row. The oldest entries carry the
 * edge cases: a time of -infinity (no time), times before 1970 with microseconds (negative Unix
 * microseconds), a NULL mediaid_id, attempts beyond an int in a bigint column (clamped), and a
 * NULL time (no time).
 */
static void case_claimed_columns(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("claim_columns", 3, 4, dsn);
	PGconn *worker_conn;
	struct processor *p;
	struct batch b = {0};
	struct db_error error;
	int checked = 0, edge = 0;

	printf("\n=== claimed columns, decoded from binary\n");
	harness_exec(conn, "ALTER TABLE passport_entries ALTER processing_attempts TYPE bigint");
	harness_exec(conn, "CREATE TABLE edge AS SELECT id, row_number() OVER (ORDER BY \"timestamp\", id) AS k"
			   " FROM passport_entries ORDER BY \"timestamp\", id LIMIT 4");
	harness_exec(conn, "UPDATE passport_entries e SET \"timestamp\" = NULL FROM edge WHERE edge.id = e.id AND k = 4");
	harness_exec(conn, "UPDATE passport_entries e SET \"timestamp\" = '-infinity' FROM edge WHERE edge.id = e.id AND k = 1");
	harness_exec(conn, "UPDATE passport_entries e SET \"timestamp\" = '1969-12-31 23:59:59.999999+00',"
			   " processing_attempts = 5000000000 FROM edge WHERE edge.id = e.id AND k = 2");
	harness_exec(conn, "UPDATE passport_entries e SET \"timestamp\" = '1900-01-01 00:00:00.000001+00', mediaid_id = NULL,"
			   " processing_attempts = -5000000000 FROM edge WHERE edge.id = e.id AND k = 3");
	p = harness_open_processor(dsn, 1000, &worker_conn);
	ASSERT_EQ_INT(claim_batch(p, &b, &error), BATCH_DONE);
	ASSERT_GT_INT(b.n_entries, 3);
	for (int i = 0; i < b.n_entries; i++) {
		const struct entry *e = &b.entries[i];
		char decoded[512], *expected;

		snprintf(decoded, sizeof(decoded), "%s|%s|%s|%s|%s|%d|(%u,%u)|%lld|%zu", e->id, e->user_id, e->mediaid_id,
			 e->event_type, e->has_time ? "" : "none", e->attempts,
			 (unsigned)e->ctid[0] << 24 | (unsigned)e->ctid[1] << 16 | (unsigned)e->ctid[2] << 8 | e->ctid[3],
			 (unsigned)e->ctid[4] << 8 | e->ctid[5], e->payload_bytes, e->payload_len);
		expected = harness_textf(conn,
					 "SELECT id::text || '|' || coalesce(user_id::text, '') || '|' || coalesce(mediaid_id::text, '')"
					 " || '|' || event_type || '|' || CASE WHEN isfinite(\"timestamp\") THEN '' ELSE 'none' END"
					 " || '|' || greatest(least(processing_attempts, 2147483647), -2147483648) || '|' || ctid::text"
					 " || '|' || coalesce(octet_length(payload::text), 0) || '|' || coalesce(octet_length(payload::text), 0)"
					 " FROM passport_entries WHERE id = '%s'", e->id);
		ASSERT_STR_EQ(decoded, expected);
		free(expected);
		if (e->has_time) {
			expected = harness_textf(conn, "SELECT (extract(epoch FROM \"timestamp\") * 1000000)::bigint"
						       " FROM passport_entries WHERE id = '%s'", e->id);
			ASSERT_EQ_INT(e->time_us, atoll(expected));
			free(expected);
		}
		edge += harness_intf(conn, "SELECT count(*) FROM edge WHERE id = '%s'", e->id) == 1;
		checked++;
	}
	printf("%d claimed entries match the server's text of them, the 4 edge rows among them\n", checked);
	ASSERT_EQ_INT(edge, 4);
	/* In claim order: -infinity (no time), 1900 and 1969 with their exact microseconds. */
	ASSERT_FALSE(b.entries[0].has_time);
	ASSERT_TRUE(b.entries[1].has_time && b.entries[1].time_us == -2208988799999999LL);
	ASSERT_EQ_INT(b.entries[1].attempts, -2147483647 - 1);
	ASSERT_TRUE(b.entries[2].has_time && b.entries[2].time_us == -1);
	ASSERT_EQ_INT(b.entries[2].attempts, 2147483647);
	/* A NULL time sorts last and has no time. */
	ASSERT_FALSE(b.entries[b.n_entries - 1].has_time);
	ASSERT_EQ_INT(harness_intf(conn, "SELECT count(*) FROM edge WHERE k = 4 AND id = '%s'", b.entries[b.n_entries - 1].id), 1);
	batch_clear(&b);
	db_rollback(worker_conn);
	processor_destroy(p);
	PQfinish(worker_conn);
	PQfinish(conn);
}

/*
 * A passport_entries whose column is not of the type the claim reads (here a text "timestamp")
 * is refused whole, with the column named: the batch fails and rolls back, every entry stays due
 * and unlocked, nothing is read as something else.
 */
static void case_claimed_column_of_another_type(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("claim_refused", 2, 3, dsn);
	PGconn *worker_conn;
	struct processor *p;
	struct batch b = {0};
	struct db_error error;

	printf("\n=== a claimed column of another type\n");
	harness_exec(conn, "ALTER TABLE passport_entries ALTER \"timestamp\" TYPE text");
	p = harness_open_processor(dsn, 1000, &worker_conn);
	ASSERT_EQ_INT(claim_batch(p, &b, &error), BATCH_ERROR);
	printf("refused: %s\n", error.message);
	ASSERT_NOT_NULL(strstr(error.message, "passport_entries.timestamp has type oid 25"));
	ASSERT_EQ_INT(b.n_entries, 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed IS NOT TRUE"), 6);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM (SELECT id FROM passport_entries FOR UPDATE NOWAIT) l"), 6);
	processor_destroy(p);
	PQfinish(worker_conn);
	PQfinish(conn);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	case_candidates_held();
	case_nothing_claimable();
	case_drain_waits_for_held_entry();
	case_claimed_columns();
	case_claimed_column_of_another_type();
	TEST_PASS();
}
