/*
 * test_pooler: passportd and passport-migrate behind a real PgBouncer in transaction mode (what
 * Supabase's port 6543 is), started by scripts/lib/pgbouncer.sh in front of a private server.
 *
 * The pool has one server connection per database and user, so every client of one user shares
 * it: whatever a client leaves on the session, the next one sees. Checked:
 *   - `passportd drain` and `passportd run --no-listen` through the pool process everything, with
 *     the same end state, bit for bit, as a drain on a direct connection;
 *   - another client of the pool then sees the server's defaults (lock_timeout,
 *     idle_in_transaction_session_timeout, the database's TimeZone), not passportd's settings;
 *   - `status` and `reprocess` work through the pool;
 *   - `run --no-listen`'s statement timeout holds through the pool (it is set per transaction)
 *     and is not left on the pool's session;
 *   - no statement is prepared through the pool (passportd prepares on direct sessions only);
 *   - `passport-migrate schema` and `backfill` refuse at once, naming the transaction pooler;
 *     `verify` and `entity-dna` work.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "fault.h"

static struct fault_server server;
static char pool_dir[64];
static char pool_port[16];

static void stop_pool(void)
{
	char script[512];

	if (!pool_port[0])
		return;
	snprintf(script, sizeof script, "bash -c 'source \"%s/scripts/lib/pgbouncer.sh\"; pgbouncer_private_stop %s'",
		 getenv("PASSPORT_SOURCE_ROOT"), pool_dir);
	if (system(script) != 0)
		fprintf(stderr, "could not stop PgBouncer in %s\n", pool_dir);
	pool_port[0] = '\0';
}

/* PgBouncer in transaction mode, one server connection per database and user. */
static void start_pool(void)
{
	const char *argv[] = {"/bin/bash", "-c",
			      "source \"$PASSPORT_SOURCE_ROOT/scripts/lib/pgbouncer.sh\";"
			      " pgbouncer_private_start \"$1\" \"$2\" \"$3\" 1",
			      "pgbouncer", pool_dir, server.host, server.port, NULL};
	char *out = NULL, *line;

	snprintf(pool_dir, sizeof pool_dir, "/tmp/passport-pgbouncer-XXXXXX");
	if (!mkdtemp(pool_dir) || chmod(pool_dir, 0755) != 0)
		FAIL("cannot create %s", pool_dir);
	ASSERT_EQ_INT(harness_run(argv, NULL, &out), 0);
	line = strstr(out, "port=");
	ASSERT_NOT_NULL(line);
	ASSERT_EQ_INT(sscanf(line, "port=%15[0-9]", pool_port), 1);
	free(out);
	atexit(stop_pool);
	printf("PgBouncer (transaction mode) on %s port %s\n", pool_dir, pool_port);
}

static void pool_dsn(char *out, const char *dbname, const char *user)
{
	snprintf(out, FAULT_DSN_MAX, "host='%s' port='%s' dbname='%s' user='%s'", pool_dir, pool_port, dbname, user);
}

/* What a client of the pool finds on its session: the server's defaults, whatever ran before. */
static void expect_server_defaults(const char *dbname, const char *user, const char *when)
{
	static const char *const defaults[][2] = {
		{"SHOW lock_timeout", "0"},
		{"SHOW idle_in_transaction_session_timeout", "0"},
		{"SHOW statement_timeout", "0"},
		{"SHOW TimeZone", "America/New_York"},
		{"SHOW client_min_messages", "notice"},
	};
	char dsn[FAULT_DSN_MAX];
	PGconn *conn;

	pool_dsn(dsn, dbname, user);
	conn = harness_connect(dsn);
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
		char *value = harness_query_text(conn, defaults[i][0]);
		ASSERT_STR_EQ(value, defaults[i][1]);
		free(value);
	}
	/* No statement of passportd's is left prepared on the pool's session (none is prepared there). */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_prepared_statements"), 0);
	PQfinish(conn);
	printf("ok: another client of the pool sees the server's defaults %s\n", when);
}

/* Coliseum entries added after the first drain, for `run --no-listen`. */
static void add_late_entries(PGconn *conn)
{
	harness_exec(conn, "INSERT INTO passport_entries (id, user_id, event_type, event_category, affects_systems, \"timestamp\")"
			   " SELECT passport_test_uuid('pool-late-' || i), passport_test_uuid('user-' || (1 + i % 5)),"
			   "  'player.track_played', 'interaction', '{}', timestamptz '2026-06-01' + i * interval '1 hour'"
			   " FROM generate_series(1, 30) AS i");
}

static void check_passportd(PGconn *conn, const char *daemon_pool_dsn)
{
	char log[600], *out;
	pid_t daemon;
	int status;

	{
		const char *extra[] = {"--batch-size", "50", NULL};
		ASSERT_EQ_INT(fault_drain(daemon_pool_dsn, extra), 400);
	}
	expect_server_defaults("t_pooler", "passportd", "after drain");

	add_late_entries(conn);
	snprintf(log, sizeof log, "%s/run.log", fault_temp_dir());
	{
		const char *argv[] = {harness_passportd(), "run", "--no-listen", "--poll-interval", "0.5", "--dsn",
				      daemon_pool_dsn, "--batch-size", "7", "--log-format", "plain", NULL};
		daemon = fault_spawn(argv, NULL, log);
	}
	ASSERT_TRUE(fault_wait_for(conn, 60, "SELECT count(*) = 0 FROM passport_entries WHERE NOT processed"));
	expect_server_defaults("t_pooler", "passportd", "while run --no-listen polls");
	ASSERT_EQ_INT(kill(daemon, SIGTERM), 0);
	status = fault_wait(daemon, 30);
	ASSERT_EQ_INT(status, 0);
	fault_expect_clean_log(log);

	{
		const char *argv[] = {harness_passportd(), "status", "--dsn", daemon_pool_dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 0);
		free(out);
	}
	{
		const char *argv[] = {harness_passportd(), "reprocess", "--dry-run", "--since", "2026-01-01 00:00",
				      "--dsn", daemon_pool_dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 0);
		free(out);
	}
	expect_server_defaults("t_pooler", "passportd", "after status and reprocess");
}

/*
 * The worker's statement timeout through the pool: a write that takes 2 s (a slow trigger) fails
 * the batch after 0.5 s, an entry records the timeout (retried alone, it times out again), none
 * is processed, and the pool's other clients still see
 * statement_timeout 0. A session-wide SET would not be safe here; the timeout is set per batch
 * transaction.
 */
static void check_statement_timeout(PGconn *conn, const char *daemon_pool_dsn)
{
	char log[600];
	pid_t daemon;

	harness_exec(conn, "CREATE FUNCTION passport_test_slow() RETURNS trigger LANGUAGE plpgsql"
			   " AS $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$");
	harness_exec(conn, "CREATE TRIGGER passport_test_slow AFTER INSERT ON coliseum_metrics"
			   " FOR EACH STATEMENT EXECUTE FUNCTION passport_test_slow()");
	harness_exec(conn, "INSERT INTO passport_entries (event_type, event_category, affects_systems)"
			   " SELECT 'player.track_played', 'interaction', '{coliseum}' FROM generate_series(1, 3)");
	snprintf(log, sizeof log, "%s/run-timeout.log", fault_temp_dir());
	{
		const char *argv[] = {harness_passportd(), "run", "--no-listen", "--poll-interval", "0.5",
				      "--statement-timeout", "0.5", "--dsn", daemon_pool_dsn, "--log-format", "plain",
				      NULL};
		daemon = fault_spawn(argv, NULL, log);
	}
	ASSERT_TRUE(fault_wait_for(conn, 30,
				   "SELECT count(*) >= 1 FROM passport_entries"
				   " WHERE NOT processed AND last_error ILIKE '%statement timeout%'"));
	expect_server_defaults("t_pooler", "passportd", "while batches time out");
	ASSERT_EQ_INT(kill(daemon, SIGTERM), 0);
	ASSERT_EQ_INT(fault_wait(daemon, 30), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics m JOIN passport_entries e"
					      " ON e.id = m.passport_entry_id WHERE e.event_category = 'interaction'"
					      " AND e.last_error IS NOT NULL"),
		      0);
	harness_exec(conn, "DROP TRIGGER passport_test_slow ON coliseum_metrics");
	printf("ok: run --no-listen's statement timeout holds through the pool, per transaction\n");
}

static void check_passport_migrate(void)
{
	char dsn[FAULT_DSN_MAX], *out;
	double started;

	pool_dsn(dsn, "t_pooler", "postgres");
	started = fault_now();
	{
		const char *argv[] = {harness_migrate(), "schema", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 1);
		ASSERT_STR_CONTAINS(out, "transaction pooler");
		ASSERT_STR_CONTAINS(out, "port 5432");
		free(out);
	}
	{
		const char *argv[] = {harness_migrate(), "backfill", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 1);
		ASSERT_STR_CONTAINS(out, "transaction pooler");
		free(out);
	}
	ASSERT_LT_INT((long long)(fault_now() - started), 10);
	{
		const char *argv[] = {harness_migrate(), "verify", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 0);
		free(out);
	}
	{
		const char *argv[] = {harness_migrate(), "entity-dna", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 0);
		free(out);
	}
	expect_server_defaults("t_pooler", "postgres", "after passport-migrate");
	printf("ok: schema and backfill refuse the transaction pooler at once; verify and entity-dna work\n");
}

int main(void)
{
	char dsn[FAULT_DSN_MAX], ref_dsn[FAULT_DSN_MAX], daemon_pool_dsn[FAULT_DSN_MAX];
	PGconn *conn, *ref;

	fault_begin("pooler");
	fault_server_start(&server, NULL);
	fault_server_use(&server);
	conn = fault_create_database("pooler", dsn, NULL);
	ref = fault_create_database("pooler_ref", ref_dsn, NULL);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(20, 20)"), 400);
	ASSERT_EQ_INT(harness_query_int(ref, "SELECT passport_test_workload(20, 20)"), 400);
	/* A database default the daemon's own TimeZone must not override for anyone else. */
	harness_exec(conn, "ALTER DATABASE t_pooler SET TimeZone = 'America/New_York'");
	start_pool();
	pool_dsn(daemon_pool_dsn, "t_pooler", "passportd");
	{
		/* Statements are prepared on a session of the daemon's own, never through the pool. */
		PGconn *pooled = harness_connect(daemon_pool_dsn), *direct = harness_connect(dsn);
		ASSERT_FALSE(db_prepare_enable(pooled));
		ASSERT_TRUE(db_prepare_enable(direct));
		db_prepare_disable(direct);
		PQfinish(pooled);
		PQfinish(direct);
	}

	check_passportd(conn, daemon_pool_dsn);
	{
		char daemon_ref[FAULT_DSN_MAX];
		fault_dsn_with(daemon_ref, sizeof daemon_ref, ref_dsn, "user", "passportd");
		ASSERT_EQ_INT(fault_drain(daemon_ref, NULL), 400);
		add_late_entries(ref);
		ASSERT_EQ_INT(fault_drain(daemon_ref, NULL), 30);
	}
	fault_expect_same_state(conn, ref, "through PgBouncer vs direct");
	check_statement_timeout(conn, daemon_pool_dsn);
	check_passport_migrate();

	PQfinish(ref);
	PQfinish(conn);
	fault_passed();
	TEST_PASS();
}
