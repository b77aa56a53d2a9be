/*
 * test_prune: `passport-migrate prune` as the passport_migrate role: --dry-run counts and deletes
 * nothing; a run deletes exactly the rows older than the cutoff, in batches, and leaves the
 * others; a run stopped by a row another session holds keeps what its batches committed and the
 * next run finishes the job; a run after that finds nothing; bad arguments are usage errors.
 */
#include "integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OLD_ROWS 1234
#define YOUNG_ROWS 300

static int prune(char **output, const char *dsn, const char *a, const char *b, const char *c, const char *d)
{
	const char *argv[] = {harness_migrate(), "prune", "--dsn", dsn, a, b, c, d, NULL};

	return harness_run(argv, NULL, output);
}

/* dna_evolution rows: old ones first (applied 100 to 200 days ago), then young ones (this week). */
static void add_evolution_rows(PGconn *conn)
{
	static const char columns[] =
		"INSERT INTO dna_evolution (mediaid_id, passport_entry_id, event_type, event_time, alpha,"
		" decay_cultural, decay_behavioral, decay_economic, decay_spatial, delta_cultural, delta_behavioral,"
		" delta_economic, delta_spatial, late, applied_at)";

	harness_execf(conn,
		      "%s SELECT gen_random_uuid(), gen_random_uuid(), 'player.track_played', now(), 0.1, 1, 1, 1, 1,"
		      " 0, 0, 0, 0, false, now() - interval '200 days' + i * interval '1 minute'"
		      " FROM generate_series(1, %d) i",
		      columns, OLD_ROWS);
	harness_execf(conn,
		      "%s SELECT gen_random_uuid(), gen_random_uuid(), 'player.track_played', now(), 0.1, 1, 1, 1, 1,"
		      " 0, 0, 0, 0, false, now() - interval '7 days' + i * interval '1 minute'"
		      " FROM generate_series(1, %d) i",
		      columns, YOUNG_ROWS);
}

int main(void)
{
	char dsn[1024], migrate_dsn[1200], expected[128];
	PGconn *conn, *holder;
	char *out;

	conn = harness_create_database("prune", NULL, dsn, sizeof(dsn));
	harness_role_dsn(dsn, "passport_migrate", migrate_dsn, sizeof(migrate_dsn));
	add_evolution_rows(conn);

	/* Usage errors. */
	ASSERT_EQ_INT(prune(&out, migrate_dsn, NULL, NULL, NULL, NULL), 2);
	ASSERT_STR_CONTAINS(out, "--evolution-older-than DAYS is required");
	free(out);
	ASSERT_EQ_INT(prune(&out, migrate_dsn, "--evolution-older-than", "-3", NULL, NULL), 2);
	free(out);
	ASSERT_EQ_INT(prune(&out, migrate_dsn, "--evolution-older-than", "90", "--batch-size", "0"), 2);
	free(out);

	/* A dry run counts and deletes nothing. */
	ASSERT_EQ_INT(prune(&out, migrate_dsn, "--evolution-older-than", "90", "--dry-run", NULL), 0);
	snprintf(expected, sizeof(expected), "would delete %d dna_evolution rows", OLD_ROWS);
	ASSERT_STR_CONTAINS(out, expected);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), OLD_ROWS + YOUNG_ROWS);

	/*
	 * Another session holds the 501st row: the sixth batch of 100 gives up after the lock
	 * timeout and the run stops, keeping the five batches it committed.
	 */
	holder = harness_connect(dsn);
	/* (FOR UPDATE under OFFSET would lock the skipped rows too.) */
	harness_exec(holder, "BEGIN; SELECT id FROM dna_evolution"
			     " WHERE id = (SELECT id FROM dna_evolution ORDER BY id OFFSET 500 LIMIT 1) FOR UPDATE");
	{
		const char *argv[] = {harness_migrate(), "prune", "--dsn", migrate_dsn, "--evolution-older-than", "90",
				      "--batch-size", "100", "--lock-timeout", "0.2", NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 1);
	}
	ASSERT_STR_CONTAINS(out, "lock timeout");
	ASSERT_STR_CONTAINS(out, "500 rows deleted before the failure stay deleted; run again to go on");
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), OLD_ROWS - 500 + YOUNG_ROWS);
	harness_exec(holder, "COMMIT");
	PQfinish(holder);

	/* The next run goes on and leaves only the young rows; the one after finds nothing. */
	ASSERT_EQ_INT(prune(&out, migrate_dsn, "--evolution-older-than", "90", "--batch-size", "100"), 0);
	snprintf(expected, sizeof(expected), "deleted %d dna_evolution rows", OLD_ROWS - 500);
	ASSERT_STR_CONTAINS(out, expected);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution WHERE applied_at >= now() - interval '90 days'"),
		      YOUNG_ROWS);
	ASSERT_EQ_INT(prune(&out, migrate_dsn, "--evolution-older-than", "90", NULL, NULL), 0);
	ASSERT_STR_CONTAINS(out, "deleted 0 dna_evolution rows");
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), YOUNG_ROWS);

	/* Fractions of a day: rows older than 3.5 days go, the week's first half of them. */
	ASSERT_EQ_INT(prune(&out, migrate_dsn, "--evolution-older-than", "6.9", "--batch-size", "7"), 0);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution WHERE applied_at < now() - interval '6.9 days'"),
		      0);
	ASSERT_GT_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), 0);

	PQfinish(conn);
	TEST_PASS();
}
