/*
 * test_online_schema: `passport-migrate schema` on a live passport_entries (the seed layout,
 * PASSPORT_ONLINE_ROWS rows, default 100,000) while two writers insert rows one at a time.
 *
 * The slowest insert of the run must take less than 1 s (SCHEMA_MAX_INSERT_WAIT), also while a
 * third client holds a lock that makes schema's ALTER TABLE wait: schema's lock_timeout then
 * gives up, lets the queued inserts through, and tries again until the holder is gone. Also: an
 * index of the project's name left INVALID by an interrupted build is dropped and built again.
 * bench/online_schema.sh runs this program at 1,000,000 rows and prints the figures.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"

#define WRITERS 2
#define SCHEMA_MAX_INSERT_WAIT 1.0 /* seconds */
#define LOCK_HOLD_SECONDS 3.0

struct writer_stats {
	volatile long inserts;
	volatile double max_wait;
	volatile int failed;
};

static struct writer_stats *stats; /* shared with the writer processes */
static volatile sig_atomic_t writer_stop;

static void on_writer_stop(int signo)
{
	(void)signo;
	writer_stop = 1;
}

/* A writer: insert one entry at a time, as the application does, timing each. */
static void run_writer(const char *dsn, struct writer_stats *mine)
{
	PGconn *conn = PQconnectdb(dsn);

	signal(SIGTERM, on_writer_stop);
	if (PQstatus(conn) != CONNECTION_OK) {
		mine->failed = 1;
		_exit(1);
	}
	while (!writer_stop) {
		double started = fault_now(), took;
		PGresult *res = PQexec(conn, "INSERT INTO passport_entries (user_id, event_type, event_category, payload)"
					     " VALUES (gen_random_uuid(), 'player.track_played', 'interaction', '{}')");

		took = fault_now() - started;
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			fprintf(stderr, "writer: %s", PQresultErrorMessage(res));
			mine->failed = 1;
		}
		PQclear(res);
		mine->inserts++;
		if (took > mine->max_wait)
			mine->max_wait = took;
		usleep(2000);
	}
	PQfinish(conn);
	_exit(0);
}

/* Static: the exit hook stops the server after main has returned (a local's frame is gone then). */
static struct fault_server server;

/* The seed layout of passport_entries (sql/001's table and indexes) with rows rows, as production has it. */
static void seed_entries(PGconn *conn, long rows)
{
	char *text = fault_read_source("sql/001_passport_entries.sql");

	harness_exec(conn, text);
	free(text);
	harness_execf(conn,
		      "INSERT INTO passport_entries (user_id, event_type, event_category, payload, processed, \"timestamp\")"
		      " SELECT md5((i %% 5000)::text)::uuid, 'player.track_played', 'interaction',"
		      "  jsonb_build_object('track_id', md5(i::text)::uuid), i %% 10 <> 0,"
		      "  timestamptz '2025-01-01' + i * interval '1 second'"
		      " FROM generate_series(1, %ld) AS i; ANALYZE passport_entries",
		      rows);
}

/*
 * What an interrupted run leaves: the columns of sql/002 and its unique index, INVALID (a build
 * that failed half way; here on duplicates, then removed).
 */
static void leave_invalid_index(PGconn *conn)
{
	PGresult *res;

	harness_exec(conn, "ALTER TABLE passport_entries ADD COLUMN IF NOT EXISTS legacy_source text,"
			   " ADD COLUMN IF NOT EXISTS legacy_id text;"
			   "INSERT INTO passport_entries (event_type, event_category, legacy_source, legacy_id)"
			   " VALUES ('x', 'x', 'dup', '1'), ('x', 'x', 'dup', '1')");
	res = PQexec(conn, "CREATE UNIQUE INDEX CONCURRENTLY passport_entries_legacy_key"
			   " ON passport_entries (legacy_source, legacy_id)");
	ASSERT_TRUE(PQresultStatus(res) == PGRES_FATAL_ERROR);
	PQclear(res);
	harness_exec(conn, "DELETE FROM passport_entries WHERE legacy_source = 'dup'");
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_index"
					      " WHERE indexrelid = 'passport_entries_legacy_key'::regclass AND NOT indisvalid"),
		      1);
}

int main(void)
{
	char dsn[FAULT_DSN_MAX], admin_dsn[FAULT_DSN_MAX], *out = NULL;
	const char *rows_text = getenv("PASSPORT_ONLINE_ROWS");
	long rows = rows_text ? atol(rows_text) : 100000;
	pid_t writers[WRITERS], schema;
	PGconn *conn, *holder;
	double started, took, max_wait = 0;
	long inserts = 0;
	int status;

	fault_begin("online_schema");
	fault_server_start(&server, NULL);
	fault_server_use(&server);
	/* The upstream tables, no project schema yet: harness_create_database's schema run comes later. */
	snprintf(admin_dsn, sizeof admin_dsn, "host='%s' port='%s' user=postgres dbname=postgres", server.host, server.port);
	conn = harness_connect(admin_dsn);
	harness_exec(conn, "CREATE DATABASE t_online");
	PQfinish(conn);
	snprintf(dsn, sizeof dsn, "host='%s' port='%s' user=postgres dbname=t_online", server.host, server.port);
	conn = harness_connect(dsn);
	harness_exec(conn, "SET client_min_messages = warning");
	{
		char *text = fault_read_source("tests/sql/upstream.sql");
		harness_exec(conn, text);
		free(text);
	}
	seed_entries(conn, rows);
	leave_invalid_index(conn);

	stats = mmap(NULL, sizeof(*stats) * WRITERS, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(stats != MAP_FAILED);
	memset(stats, 0, sizeof(*stats) * WRITERS);
	for (int i = 0; i < WRITERS; i++) {
		writers[i] = fork();
		ASSERT_TRUE(writers[i] >= 0);
		if (writers[i] == 0)
			run_writer(dsn, &stats[i]);
	}
	fault_sleep(0.5);

	/* A client holding a lock that ALTER TABLE must wait for (ACCESS SHARE; the writers are not held up). */
	holder = harness_connect(dsn);
	harness_exec(holder, "BEGIN; LOCK TABLE passport_entries IN ACCESS SHARE MODE");

	started = fault_now();
	{
		char log[600];
		const char *argv[] = {harness_migrate(), "schema", "--dsn", dsn, NULL};

		snprintf(log, sizeof log, "%s/schema.log", fault_temp_dir());
		schema = fault_spawn(argv, NULL, log);
		fault_sleep(LOCK_HOLD_SECONDS);
		harness_exec(holder, "COMMIT");
		status = fault_wait(schema, 600);
		took = fault_now() - started;
		out = fault_read_file(log, NULL);
		printf("%s", out ? out : "");
	}
	for (int i = 0; i < WRITERS; i++) {
		kill(writers[i], SIGTERM);
		ASSERT_EQ_INT(fault_wait(writers[i], 30), 0);
		inserts += stats[i].inserts;
		if (stats[i].max_wait > max_wait)
			max_wait = stats[i].max_wait;
		ASSERT_EQ_INT(stats[i].failed, 0);
	}
	printf("online schema: %ld rows, schema took %.1f s (a lock held for the first %.0f s); %ld inserts meanwhile, "
	       "the slowest %.0f ms\n",
	       rows, took, LOCK_HOLD_SECONDS, inserts, max_wait * 1000.0);
	ASSERT_EQ_INT(status, 0);
	ASSERT_STR_CONTAINS(out, "lock not granted");
	ASSERT_STR_CONTAINS(out, "left INVALID by an interrupted run");
	free(out);
	ASSERT_TRUE(max_wait < SCHEMA_MAX_INSERT_WAIT);
	ASSERT_TRUE(inserts > 0);

	/* Everything is there and valid, and a second run has nothing to do. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
					      " WHERE i.indrelid = 'passport_entries'::regclass AND NOT i.indisvalid"),
		      0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_class WHERE relname IN ('passport_entries_legacy_key',"
					      " 'passport_entries_due_idx', 'passport_entries_due_user_idx',"
					      " 'passport_entries_processed_at_idx')"),
		      4);
	{
		const char *argv[] = {harness_migrate(), "schema", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 0);
		ASSERT_STR_CONTAINS(out, "0 applied");
		free(out);
	}
	PQfinish(holder);
	PQfinish(conn);
	fault_passed();
	TEST_PASS();
}
