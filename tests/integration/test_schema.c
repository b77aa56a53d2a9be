/* test_schema: `passport-migrate schema` and `entity-dna` against the real PostgreSQL 15 server. */
#include "integration/harness.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "claim.h"

#define MAX_ARGS 16
#define MAX_FILES 256

/* The migration files of the source tree's sql/, sorted: what the binary embeds. */
static char *sql_files[MAX_FILES];
static int sql_file_count;

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_migration_name(const char *name)
{
	size_t len = strlen(name);
	return len > 8 && name[0] >= '0' && name[0] <= '9' && name[1] >= '0' && name[1] <= '9' &&
	       name[2] >= '0' && name[2] <= '9' && name[3] == '_' && strcmp(name + len - 4, ".sql") == 0;
}

static const char *source_root(void)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	if (!root)
		FAIL("PASSPORT_SOURCE_ROOT is not set");
	return root;
}

static void load_sql_file_names(void)
{
	char dir[4096];
	DIR *handle;
	struct dirent *entry;

	snprintf(dir, sizeof dir, "%s/sql", source_root());
	handle = opendir(dir);
	if (!handle)
		FAIL("cannot open %s: %s", dir, strerror(errno));
	while ((entry = readdir(handle)) != NULL) {
		if (!is_migration_name(entry->d_name))
			continue;
		ASSERT_TRUE(sql_file_count < MAX_FILES);
		sql_files[sql_file_count] = strdup(entry->d_name);
		ASSERT_TRUE(sql_files[sql_file_count] != NULL);
		sql_file_count++;
	}
	closedir(handle);
	qsort(sql_files, (size_t)sql_file_count, sizeof sql_files[0], compare_names);
	ASSERT_TRUE(sql_file_count > 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *file = fopen(path, "wb");

	if (!file)
		FAIL("cannot create %s: %s", path, strerror(errno));
	ASSERT_TRUE(fwrite(text, 1, strlen(text), file) == strlen(text));
	ASSERT_TRUE(fclose(file) == 0);
}

/*
 * Run passport-migrate with the given arguments (NULL-terminated) and extra environment; returns
 * the exit status and stores the combined output in *output (free it).
 */
static int migrate(char **output, const char *const *env, ...)
{
	const char *argv[MAX_ARGS];
	int argc = 0;
	va_list args;
	const char *arg;

	argv[argc++] = harness_migrate();
	va_start(args, env);
	while ((arg = va_arg(args, const char *)) != NULL) {
		ASSERT_TRUE(argc < MAX_ARGS - 1);
		argv[argc++] = arg;
	}
	va_end(args);
	argv[argc] = NULL;
	return harness_run(argv, env, output);
}

/* Count the lines of text that contain both needles. */
static int count_lines_with(const char *text, const char *a, const char *b)
{
	int count = 0;
	const char *line = text;

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *copy = strndup(line, len);

		ASSERT_TRUE(copy != NULL);
		if (strstr(copy, a) && strstr(copy, b))
			count++;
		free(copy);
		line += len + (end ? 1 : 0);
	}
	return count;
}

/* SQLSTATE of running sql, or "00000" when it succeeds. */
static void expect_sqlstate(PGconn *conn, const char *sql, const char *expected)
{
	PGresult *result = PQexec(conn, sql);
	const char *state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
	ExecStatusType status = PQresultStatus(result);

	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
		state = "00000";
	if (!state || strcmp(state, expected) != 0)
		FAIL("%s: expected SQLSTATE %s, got %s (%s)", sql, expected, state ? state : "?",
		     PQresultErrorMessage(result));
	PQclear(result);
}

/* A database with the upstream tables only (no project schema), for runs that must see it fresh. */
static PGconn *create_fresh_database(const char *name, char *dsn, size_t dsnlen)
{
	const char *host = getenv("PASSPORT_TEST_PGHOST");
	const char *port = getenv("PASSPORT_TEST_PGPORT");
	char admin_dsn[1024], sql[256], path[4096];
	PGconn *admin, *conn;
	char *text;

	if (!host || !*host) {
		fprintf(stderr, "SKIP: PASSPORT_TEST_PGHOST is not set\n");
		exit(77);
	}
	snprintf(admin_dsn, sizeof admin_dsn, "host='%s' port='%s' user=postgres dbname=postgres", host,
		 port ? port : "5432");
	admin = harness_connect(admin_dsn);
	harness_exec(admin, "SET client_min_messages = warning");
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"t_%s\" WITH (FORCE)", name);
	harness_exec(admin, sql);
	snprintf(sql, sizeof sql, "CREATE DATABASE \"t_%s\"", name);
	harness_exec(admin, sql);
	PQfinish(admin);

	snprintf(dsn, dsnlen, "host='%s' port='%s' user=postgres dbname=t_%s", host, port ? port : "5432",
		 name);
	conn = harness_connect(dsn);
	harness_exec(conn, "SET client_min_messages = warning");
	snprintf(path, sizeof path, "%s/tests/sql/upstream.sql", source_root());
	text = harness_read_file(path);
	harness_exec(conn, text);
	free(text);
	return conn;
}

static long long relation_exists(PGconn *conn, const char *name)
{
	char sql[256];

	snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_class WHERE relname = '%s'", name);
	return harness_query_int(conn, sql);
}

static long long count_records(PGconn *conn)
{
	return harness_query_int(conn, "SELECT count(*) FROM passport_schema_migrations");
}

static char *records_snapshot(PGconn *conn)
{
	return harness_query_text(conn, "SELECT string_agg(version || ':' || name || ':' || checksum || ':' "
					"|| applied_at, ',' ORDER BY version) FROM passport_schema_migrations");
}

/* --version, --help, unknown commands, not-yet-implemented commands. */
static void test_command_line(void)
{
	char *out;

	ASSERT_EQ_INT(migrate(&out, NULL, "--version", NULL), 0);
	ASSERT_STR_CONTAINS(out, "passport-migrate ");
	free(out);

	ASSERT_EQ_INT(migrate(&out, NULL, "--help", NULL), 0);
	ASSERT_STR_CONTAINS(out, "schema");
	ASSERT_STR_CONTAINS(out, "entity-dna");
	free(out);

	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--help", NULL), 0);
	ASSERT_STR_CONTAINS(out, "--dry-run");
	ASSERT_STR_CONTAINS(out, "--sql-dir");
	free(out);

	ASSERT_EQ_INT(migrate(&out, NULL, "entity-dna", "--help", NULL), 0);
	ASSERT_STR_CONTAINS(out, "--refresh");
	free(out);

	ASSERT_EQ_INT(migrate(&out, NULL, "backfill", "--help", NULL), 0);
	ASSERT_STR_CONTAINS(out, "--mark-processed");
	ASSERT_STR_CONTAINS(out, "--max-rate");
	free(out);
	ASSERT_EQ_INT(migrate(&out, NULL, "verify", "--help", NULL), 0);
	ASSERT_STR_CONTAINS(out, "--source");
	free(out);

	ASSERT_EQ_INT(migrate(&out, NULL, "frobnicate", NULL), 2);
	ASSERT_STR_CONTAINS(out, "unknown command");
	free(out);
	ASSERT_EQ_INT(migrate(&out, NULL, NULL), 2);
	free(out);
	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--no-such-option", NULL), 2);
	free(out);
}

/* A connection failure exits 1 with libpq's reason and never shows the password. */
static void test_connection_errors(const char *good_dsn)
{
	static const char *const bad[] = {
		"host=/nonexistent-passport-dir port=1 user=bob password=Sup3rSecretPw dbname=x",
		"postgresql://bob:Sup3rSecretPw@/x?host=/nonexistent-passport-dir",
		"host=/nonexistent-passport-dir password='Sup3rSecretPw' no_such_option=1",
		"postgresql://bob:Sup3rSecretPw@[::1/x",
		"postgresql://bob:Sup3rSecretPw@localhost/x?bogus=%zz",
	};
	char *out;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--dsn", bad[i], NULL), 1);
		ASSERT_STR_CONTAINS(out, "cannot connect");
		ASSERT_STR_NOT_CONTAINS(out, "Sup3rSecretPw");
		free(out);
	}

	/* Environment: PASSPORT_DATABASE_URL is used without --dsn, and --dsn wins over it. */
	{
		char assignment[1200];
		const char *env_good[] = {assignment, NULL};
		const char *env_bad[] = {"PASSPORT_DATABASE_URL=host=/nonexistent-passport-dir password=EnvSecretPw", NULL};

		snprintf(assignment, sizeof assignment, "PASSPORT_DATABASE_URL=%s", good_dsn);
		ASSERT_EQ_INT(migrate(&out, env_good, "schema", "--dry-run", NULL), 0);
		free(out);
		ASSERT_EQ_INT(migrate(&out, env_bad, "schema", "--dry-run", NULL), 1);
		ASSERT_STR_CONTAINS(out, "PASSPORT_DATABASE_URL");
		ASSERT_STR_NOT_CONTAINS(out, "EnvSecretPw");
		free(out);
		ASSERT_EQ_INT(migrate(&out, env_bad, "--dsn", good_dsn, "schema", "--dry-run", NULL), 0);
		free(out);
	}
}

/* Every object the migrations promise, checked by behaviour where a name would prove little. */
static void test_objects(PGconn *conn)
{
	static const char *const columns[] = {"last_error", "next_attempt_at", "dead_at", "legacy_source",
					      "legacy_id"};
	char sql[512];

	for (size_t i = 0; i < sizeof columns / sizeof columns[0]; i++) {
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM information_schema.columns WHERE table_name = 'passport_entries' "
			 "AND column_name = '%s'",
			 columns[i]);
		ASSERT_EQ_INT(harness_query_int(conn, sql), 1);
	}

	/* Unique (legacy_source, legacy_id); rows without a legacy key do not collide. */
	harness_exec(conn, "INSERT INTO passport_entries (event_type, event_category, legacy_source, legacy_id) "
			   "VALUES ('player.track_played', 'interaction', 'listening_history', 'L1')");
	expect_sqlstate(conn,
			"INSERT INTO passport_entries (event_type, event_category, legacy_source, legacy_id) "
			"VALUES ('player.track_played', 'interaction', 'listening_history', 'L1')",
			"23505");
	harness_exec(conn, "INSERT INTO passport_entries (event_type, event_category, legacy_source, legacy_id) "
			   "VALUES ('player.track_played', 'interaction', 'media_engagement_log', 'L1')");
	harness_exec(conn, "INSERT INTO passport_entries (event_type, event_category) "
			   "VALUES ('a.b', 'x'), ('a.b', 'x')");

	/* A partial index for claiming that leaves processed and dead rows out. */
	ASSERT_TRUE(harness_query_int(conn,
				      "SELECT count(*) FROM pg_index i WHERE i.indrelid = 'passport_entries'::regclass "
				      "AND i.indpred IS NOT NULL "
				      "AND pg_get_expr(i.indpred, i.indrelid) LIKE '%processed%' "
				      "AND pg_get_expr(i.indpred, i.indrelid) LIKE '%dead_at IS NULL%'") >= 1);

	/* The notify trigger is AFTER INSERT FOR EACH STATEMENT (tgtype bits: 1 row, 2 before, 4 insert). */
	ASSERT_EQ_INT(harness_query_int(conn,
					"SELECT count(*) FROM pg_trigger WHERE tgrelid = 'passport_entries'::regclass "
					"AND NOT tgisinternal AND tgtype & 1 = 0 AND tgtype & 2 = 0 AND tgtype & 4 = 4"),
		      1);

	{
		char *type = harness_query_text(conn,
						"SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
						"WHERE attrelid = 'media_ids'::regclass AND attname = 'dna_clock'");
		ASSERT_TRUE(type != NULL && strcmp(type, "timestamp with time zone") == 0);
		free(type);
		type = harness_query_text(conn,
					  "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
					  "WHERE attrelid = 'entity_dna'::regclass AND attname = 'embedding'");
		if (!type || strcmp(type, "real[]") != 0)
			FAIL("entity_dna.embedding has type %s, expected real[]", type ? type : "(none)");
		free(type);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna"), 0);

	/* ANALYZE skips the vectors (sql/101_vector_statistics.sql) and still sees the other columns. */
	harness_exec(conn, "CREATE TEMP TABLE analyzed AS SELECT gen_random_uuid() AS id FROM generate_series(1, 20)");
	harness_exec(conn, "INSERT INTO media_ids (id, user_uuid, role, profile_embedding) SELECT id, "
			   "gen_random_uuid(), 'fan', array_fill(0.5::real, ARRAY[1536]) FROM analyzed");
	harness_exec(conn, "ANALYZE media_ids");
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_stats WHERE tablename = 'media_ids' "
					      "AND attname = 'profile_embedding'"),
		      0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_stats WHERE tablename = 'media_ids' "
					      "AND attname = 'role'"),
		      1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_attribute WHERE attstattarget = 0 AND "
					      "((attrelid = 'media_ids'::regclass AND attname = 'profile_embedding') OR "
					      "(attrelid = 'entity_dna'::regclass AND attname = 'embedding'))"),
		      2);
	harness_exec(conn, "DELETE FROM media_ids WHERE id IN (SELECT id FROM analyzed); DROP TABLE analyzed");
	expect_sqlstate(conn, "INSERT INTO entity_dna (entity_type, entity_id) VALUES ('brand', gen_random_uuid())",
			"23514");
	ASSERT_TRUE(harness_query_int(conn, "SELECT count(*) FROM information_schema.columns "
				      "WHERE table_name = 'dna_evolution'") >= 17);
	/*
	 * One row per entry and DNA row: the key is (mediaid_id, event_time, passport_entry_id), the
	 * entry's own time being the same each time it is applied (sql/100_evolution_key.sql). Two
	 * entries of the same time on one row are both recorded; the same entry again is refused.
	 */
#define EVOLUTION_ROW(entry)                                                                          \
	"INSERT INTO dna_evolution (mediaid_id, passport_entry_id, event_type, event_time, "              \
	"alpha, decay_cultural, decay_behavioral, decay_economic, decay_spatial, "                        \
	"delta_cultural, delta_behavioral, delta_economic, delta_spatial, late) "                         \
	"VALUES ('00000000-0000-0000-0000-000000000001', '" entry "', "                                   \
	"'x', '2026-01-02 03:04:05.678901+00', 0.1, 1, 1, 1, 1, 0, 0, 0, 0, false)"
	harness_exec(conn, EVOLUTION_ROW("00000000-0000-0000-0000-000000000002"));
	harness_exec(conn, EVOLUTION_ROW("00000000-0000-0000-0000-000000000003"));
	expect_sqlstate(conn, EVOLUTION_ROW("00000000-0000-0000-0000-000000000002"), "23505");
#undef EVOLUTION_ROW
	/* Two btree indexes per written row: the id and that key, which inspect's walk also uses. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_index WHERE indrelid = 'dna_evolution'::regclass"), 2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
					       "WHERE i.indrelid = 'dna_evolution'::regclass AND i.indisunique AND i.indisvalid "
					       "AND pg_get_indexdef(c.oid) LIKE '%(mediaid_id, event_time, passport_entry_id)'"),
		      1);

	/* coliseum_metrics.passport_entry_id is unique. */
	harness_exec(conn, "INSERT INTO coliseum_metrics (metric_type, \"timestamp\", passport_entry_id) "
			   "VALUES ('x', now(), '00000000-0000-0000-0000-0000000000aa')");
	expect_sqlstate(conn,
			"INSERT INTO coliseum_metrics (metric_type, \"timestamp\", passport_entry_id) "
			"VALUES ('x', now(), '00000000-0000-0000-0000-0000000000aa')",
			"23505");
	harness_exec(conn, "DELETE FROM coliseum_metrics; DELETE FROM dna_evolution; DELETE FROM passport_entries");
}

/* Wait up to timeout_ms for notifications on channel; returns how many arrived. */
static int collect_notifications(PGconn *conn, const char *channel, int expected, int timeout_ms)
{
	int count = 0;
	int waited = 0;

	for (;;) {
		PGnotify *notify;
		struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};

		ASSERT_TRUE(PQconsumeInput(conn) == 1);
		while ((notify = PQnotifies(conn)) != NULL) {
			if (strcmp(notify->relname, channel) == 0)
				count++;
			PQfreemem(notify);
		}
		if (waited >= timeout_ms || count > expected)
			break;
		/* Once the expected number arrived, linger briefly to catch extras. */
		if (count == expected && waited >= timeout_ms / 10)
			break;
		poll(&pfd, 1, 20);
		waited += 20;
	}
	return count;
}

/*
 * The wake-up gate of sql/030_wakeup_gate.sql: while nobody holds it (no daemon is armed), inserts
 * do not notify; while a session holds it, as an armed passportd's LISTEN connection does, there
 * is one notification per INSERT statement, whatever its row count.
 */
static void test_notify(const char *dsn)
{
	PGconn *listener = harness_connect(dsn);
	PGconn *writer = harness_connect(dsn);
	PGconn *other = harness_connect(dsn);

	harness_exec(listener, "LISTEN passport_entries");

	/* Nobody armed: no notification, for one row or many. */
	harness_exec(writer, "INSERT INTO passport_entries (event_type, event_category) VALUES ('a.b', 'x')");
	harness_exec(writer, "INSERT INTO passport_entries (event_type, event_category) "
			     "SELECT 'a.b', 'x' FROM generate_series(1, 50)");
	ASSERT_EQ_INT(collect_notifications(listener, "passport_entries", 0, 3000), 0);

	/* Armed: the listening session holds the gate, exclusive, as passportd's listener does. */
	harness_exec(listener, "SELECT pg_advisory_lock(" LOCK_CLASS_WAKE ", 0)");

	/* Three rows in one statement, from another session. */
	harness_exec(other, "INSERT INTO passport_entries (event_type, event_category) "
			    "VALUES ('a.b', 'x'), ('a.b', 'x'), ('a.b', 'x')");
	ASSERT_EQ_INT(collect_notifications(listener, "passport_entries", 1, 1000), 1);

	/* Two statements from another session: two notifications. */
	harness_exec(writer, "INSERT INTO passport_entries (event_type, event_category) VALUES ('a.b', 'x')");
	harness_exec(writer, "INSERT INTO passport_entries (event_type, event_category) "
			     "SELECT 'a.b', 'x' FROM generate_series(1, 50)");
	ASSERT_EQ_INT(collect_notifications(listener, "passport_entries", 2, 3000), 2);

	/* A statement-level trigger fires even for zero rows; a row-level one would not. */
	harness_exec(writer, "INSERT INTO passport_entries (event_type, event_category) SELECT 'a.b', 'x' WHERE false");
	ASSERT_EQ_INT(collect_notifications(listener, "passport_entries", 1, 3000), 1);

	/* The armed session goes away: its gate goes with it, and inserts stop notifying. */
	PQfinish(listener);
	listener = harness_connect(dsn);
	harness_exec(listener, "LISTEN passport_entries");
	for (int i = 0; i < 200 && harness_query_int(listener, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
							      " AND classid = " LOCK_CLASS_WAKE " AND granted") > 0;
	     i++)
		usleep(10000);
	harness_exec(writer, "INSERT INTO passport_entries (event_type, event_category) VALUES ('a.b', 'x')");
	ASSERT_EQ_INT(collect_notifications(listener, "passport_entries", 0, 3000), 0);

	harness_exec(writer, "DELETE FROM passport_entries");
	PQfinish(other);
	PQfinish(writer);
	PQfinish(listener);
}

/* A second run applies nothing and leaves the records exactly as they were. */
static void test_idempotent(PGconn *conn, const char *dsn)
{
	char *out, *before, *after;
	char expected[64];

	ASSERT_EQ_INT(count_records(conn), sql_file_count);
	for (int i = 0; i < sql_file_count; i++) {
		char sql[512], path[4096];
		const char *params[2];
		char *text;
		PGresult *result;

		snprintf(path, sizeof path, "%s/sql/%s", source_root(), sql_files[i]);
		text = harness_read_file(path);
		params[0] = sql_files[i];
		params[1] = text;
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM passport_schema_migrations WHERE name = $1 AND version = %d "
			 "AND checksum = encode(sha256(convert_to($2, 'UTF8')), 'hex')",
			 atoi(sql_files[i]));
		result = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
		ASSERT_TRUE(PQresultStatus(result) == PGRES_TUPLES_OK);
		if (strcmp(PQgetvalue(result, 0, 0), "1") != 0)
			FAIL("no record of %s with its sha256", sql_files[i]);
		PQclear(result);
		free(text);
	}

	before = records_snapshot(conn);
	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--dsn", dsn, NULL), 0);
	snprintf(expected, sizeof expected, "0 applied, %d up to date", sql_file_count);
	ASSERT_STR_CONTAINS(out, expected);
	ASSERT_EQ_INT(count_lines_with(out, ".sql", "up to date"), sql_file_count);
	free(out);
	after = records_snapshot(conn);
	ASSERT_TRUE(strcmp(before, after) == 0);
	free(before);
	free(after);
}

/* --dry-run on a fresh database lists every file and creates nothing; then a real run. */
static void test_dry_run(PGconn *conn, const char *dsn)
{
	char *out;
	char expected[64];

	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--dry-run", "--dsn", dsn, NULL), 0);
	for (int i = 0; i < sql_file_count; i++)
		ASSERT_STR_CONTAINS(out, sql_files[i]);
	ASSERT_EQ_INT(count_lines_with(out, ".sql", "would apply"), sql_file_count);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_class WHERE relname IN "
					     "('passport_schema_migrations', 'passport_entries', 'entity_dna', "
					     "'dna_evolution', 'coliseum_metrics')"),
		      0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM information_schema.columns "
					     "WHERE table_name = 'media_ids' AND column_name = 'dna_clock'"),
		      0);

	/* entity-dna before the schema: a clear failure, not a crash. */
	ASSERT_EQ_INT(migrate(&out, NULL, "entity-dna", "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, "schema");
	free(out);

	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--dsn", dsn, NULL), 0);
	snprintf(expected, sizeof expected, "%d applied, 0 up to date", sql_file_count);
	ASSERT_STR_CONTAINS(out, expected);
	free(out);
	ASSERT_EQ_INT(count_records(conn), sql_file_count);

	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--dry-run", "--dsn", dsn, NULL), 0);
	ASSERT_EQ_INT(count_lines_with(out, ".sql", "up to date"), sql_file_count);
	ASSERT_STR_CONTAINS(out, "0 to apply");
	free(out);
}

/* Copy sql/ into a new temporary directory; returns its path (malloc'd). */
static char *copy_sql_dir(void)
{
	char *dir = strdup("/tmp/passport-sql-XXXXXX");

	ASSERT_TRUE(dir != NULL);
	if (!mkdtemp(dir))
		FAIL("mkdtemp: %s", strerror(errno));
	for (int i = 0; i < sql_file_count; i++) {
		char from[4096], to[4096];
		char *text;

		snprintf(from, sizeof from, "%s/sql/%s", source_root(), sql_files[i]);
		snprintf(to, sizeof to, "%s/%s", dir, sql_files[i]);
		text = harness_read_file(from);
		write_file(to, text);
		free(text);
	}
	return dir;
}

static void remove_dir(const char *dir)
{
	DIR *handle = opendir(dir);
	struct dirent *entry;
	char path[4096];

	if (!handle)
		return;
	while ((entry = readdir(handle)) != NULL) {
		if (entry->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
		unlink(path);
	}
	closedir(handle);
	rmdir(dir);
}

/*
 * An applied file that changed is refused, by name, before anything else is applied; a failing
 * migration leaves nothing behind; a new file in --sql-dir is applied on its own.
 */
static void test_changed_and_failing_files(PGconn *conn, const char *dsn)
{
	char *dir = copy_sql_dir();
	char path[4096], *original, *changed, *out;
	const char *victim = sql_files[0];

	snprintf(path, sizeof path, "%s/%s", dir, victim);
	original = harness_read_file(path);
	changed = malloc(strlen(original) + 64);
	ASSERT_TRUE(changed != NULL);
	sprintf(changed, "%s\n-- edited after it was applied\n", original);
	write_file(path, changed);
	snprintf(path, sizeof path, "%s/999_probe.sql", dir);
	write_file(path, "CREATE TABLE refused_probe (x int);\n");

	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--sql-dir", dir, "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, victim);
	ASSERT_STR_CONTAINS(out, "changed");
	free(out);
	ASSERT_EQ_INT(relation_exists(conn, "refused_probe"), 0);
	ASSERT_EQ_INT(count_records(conn), sql_file_count);

	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--dry-run", "--sql-dir", dir, "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, victim);
	free(out);

	/* Restored: only the new file is applied. */
	snprintf(path, sizeof path, "%s/%s", dir, victim);
	write_file(path, original);
	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--sql-dir", dir, "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(out, "1 applied");
	free(out);
	ASSERT_EQ_INT(relation_exists(conn, "refused_probe"), 1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_schema_migrations "
					     "WHERE version = 999 AND name = '999_probe.sql'"),
		      1);

	/* A migration that fails half way is rolled back whole, with no record, and named. */
	snprintf(path, sizeof path, "%s/998_broken.sql", dir);
	write_file(path, "CREATE TABLE half_applied (x int);\n\nSELECT 1 / 0;\n");
	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--sql-dir", dir, "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, "998_broken.sql");
	ASSERT_STR_CONTAINS(out, "division by zero");
	free(out);
	ASSERT_EQ_INT(relation_exists(conn, "half_applied"), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_schema_migrations WHERE version = 998"), 0);

	/* A syntax error is reported with its line in the file. */
	write_file(path, "-- a comment\nCREATE TABLE half_applied (x int);\nSELEC 1;\n");
	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--sql-dir", dir, "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, "998_broken.sql failed at line 3");
	free(out);
	ASSERT_EQ_INT(relation_exists(conn, "half_applied"), 0);

	/* Two files claiming one version are rejected before connecting. */
	unlink(path);
	snprintf(path, sizeof path, "%s/999_twin.sql", dir);
	write_file(path, "SELECT 1;\n");
	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--sql-dir", dir, "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, "share version 999");
	free(out);

	free(original);
	free(changed);
	remove_dir(dir);
	free(dir);
}

/* Two runs at once on a fresh database: both succeed and each file is recorded once. */
static void test_concurrent_runs(void)
{
	char dsn[1024];
	PGconn *conn = create_fresh_database("schema_concurrent", dsn, sizeof dsn);
	pid_t children[2];

	for (int i = 0; i < 2; i++) {
		children[i] = fork();
		ASSERT_TRUE(children[i] >= 0);
		if (children[i] == 0) {
			char *out;
			int status = migrate(&out, NULL, "schema", "--dsn", dsn, NULL);
			free(out);
			_exit(status);
		}
	}
	for (int i = 0; i < 2; i++) {
		int status;
		ASSERT_TRUE(waitpid(children[i], &status, 0) == children[i]);
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ_INT(WEXITSTATUS(status), 0);
	}
	ASSERT_EQ_INT(count_records(conn), sql_file_count);
	PQfinish(conn);
}

/* The migrations also apply over the older production media_engagement_log layout. */
static void test_production_layout(void)
{
	char dsn[1024];
	PGconn *conn = harness_create_database("schema_production", "production", dsn, sizeof dsn);

	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM information_schema.columns "
					     "WHERE table_name = 'media_engagement_log' AND column_name = 'ip_address'"),
		      1);
	ASSERT_EQ_INT(count_records(conn), sql_file_count);
	test_objects(conn);
	PQfinish(conn);
}

static double artist_vector_first(PGconn *conn, const char *artist_id)
{
	char sql[256];
	char *text;
	double value;

	snprintf(sql, sizeof sql,
		 "SELECT embedding[1]::text FROM entity_dna WHERE entity_type = 'artist' AND entity_id = '%s'",
		 artist_id);
	text = harness_query_text(conn, sql);
	ASSERT_TRUE(text != NULL);
	value = atof(text);
	free(text);
	return value;
}

static long long artist_vector_count(PGconn *conn, const char *artist_id)
{
	char sql[256];

	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM entity_dna WHERE entity_type = 'artist' AND entity_id = '%s' "
		 "AND embedding IS NOT NULL",
		 artist_id);
	return harness_query_int(conn, sql);
}

/*
 * Artists (ids a1..a8, users u1..u8) and their DNA rows, each vector filled with one value:
 *   a1: artist row 1, fan row 2        -> 1 (the artist row wins)
 *   a2: fan row 3 only                 -> 3
 *   a3: artist row with NULL embedding -> nothing
 *   a4: fan row 4, entity vector 9     -> kept 9; 4 with --refresh
 *   a5: artist row NULL, fan row 5     -> 5 (the artist's only non-NULL DNA)
 *   a6: fan row 6, entity row NULL     -> 6 (a NULL vector counts as missing)
 *   a7: no media_ids row               -> nothing
 *   a8: a brand row 8 only             -> 8
 */
static void test_entity_dna(PGconn *conn, const char *dsn)
{
	char *out;

	harness_exec(conn,
		     "INSERT INTO artist_profiles (id, user_id, artist_name) VALUES "
		     "('a0000000-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-000000000001', 'one'),"
		     "('a0000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000002', 'two'),"
		     "('a0000000-0000-0000-0000-000000000003', 'b0000000-0000-0000-0000-000000000003', 'three'),"
		     "('a0000000-0000-0000-0000-000000000004', 'b0000000-0000-0000-0000-000000000004', 'four'),"
		     "('a0000000-0000-0000-0000-000000000005', 'b0000000-0000-0000-0000-000000000005', 'five'),"
		     "('a0000000-0000-0000-0000-000000000006', 'b0000000-0000-0000-0000-000000000006', 'six'),"
		     "('a0000000-0000-0000-0000-000000000007', 'b0000000-0000-0000-0000-000000000007', 'seven'),"
		     "('a0000000-0000-0000-0000-000000000008', 'b0000000-0000-0000-0000-000000000008', 'eight')");
	harness_exec(conn,
		     "INSERT INTO media_ids (user_uuid, role, profile_embedding) VALUES "
		     "('b0000000-0000-0000-0000-000000000001', 'fan', array_fill(2::real, ARRAY[1536])),"
		     "('b0000000-0000-0000-0000-000000000001', 'artist', array_fill(1::real, ARRAY[1536])),"
		     "('b0000000-0000-0000-0000-000000000002', 'fan', array_fill(3::real, ARRAY[1536])),"
		     "('b0000000-0000-0000-0000-000000000003', 'artist', NULL),"
		     "('b0000000-0000-0000-0000-000000000004', 'fan', array_fill(4::real, ARRAY[1536])),"
		     "('b0000000-0000-0000-0000-000000000005', 'artist', NULL),"
		     "('b0000000-0000-0000-0000-000000000005', 'fan', array_fill(5::real, ARRAY[1536])),"
		     "('b0000000-0000-0000-0000-000000000006', 'fan', array_fill(6::real, ARRAY[1536])),"
		     "('b0000000-0000-0000-0000-000000000008', 'brand', array_fill(8::real, ARRAY[1536])),"
		     /* someone else's DNA, never an artist's */
		     "('b0000000-0000-0000-0000-0000000000ff', 'artist', array_fill(99::real, ARRAY[1536]))");
	harness_exec(conn,
		     "INSERT INTO entity_dna (entity_type, entity_id, embedding, updated_at) VALUES "
		     "('artist', 'a0000000-0000-0000-0000-000000000004', array_fill(9::real, ARRAY[1536]), "
		     "  now() - interval '1 day'),"
		     "('artist', 'a0000000-0000-0000-0000-000000000006', NULL, now() - interval '1 day'),"
		     "('track', 'a0000000-0000-0000-0000-000000000001', array_fill(7::real, ARRAY[1536]), "
		     "  now() - interval '1 day')");

	ASSERT_EQ_INT(migrate(&out, NULL, "entity-dna", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(out, "entity-dna: wrote 5 artist vectors");
	free(out);
	ASSERT_TRUE(artist_vector_first(conn, "a0000000-0000-0000-0000-000000000001") == 1.0);
	ASSERT_TRUE(artist_vector_first(conn, "a0000000-0000-0000-0000-000000000002") == 3.0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE entity_type = 'artist' "
					     "AND entity_id = 'a0000000-0000-0000-0000-000000000003'"),
		      0);
	ASSERT_TRUE(artist_vector_first(conn, "a0000000-0000-0000-0000-000000000004") == 9.0);
	ASSERT_TRUE(artist_vector_first(conn, "a0000000-0000-0000-0000-000000000005") == 5.0);
	ASSERT_TRUE(artist_vector_first(conn, "a0000000-0000-0000-0000-000000000006") == 6.0);
	ASSERT_EQ_INT(artist_vector_count(conn, "a0000000-0000-0000-0000-000000000007"), 0);
	ASSERT_TRUE(artist_vector_first(conn, "a0000000-0000-0000-0000-000000000008") == 8.0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE entity_type = 'artist'"), 6);
	/* The whole vector was copied, not just its first element. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna e, unnest(e.embedding) v "
					     "WHERE e.entity_id = 'a0000000-0000-0000-0000-000000000001' "
					     "AND e.entity_type = 'artist' AND v = 1"),
		      1536);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE entity_type = 'artist' "
					     "AND entity_id = 'a0000000-0000-0000-0000-000000000004' "
					     "AND updated_at < now() - interval '1 hour'"),
		      1);

	/* Nothing left to do. */
	ASSERT_EQ_INT(migrate(&out, NULL, "entity-dna", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(out, "entity-dna: wrote 0 artist vectors");
	free(out);

	/* --refresh rewrites every artist that has DNA, including the existing vector. */
	ASSERT_EQ_INT(migrate(&out, NULL, "entity-dna", "--refresh", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(out, "entity-dna: wrote 6 artist vectors");
	free(out);
	ASSERT_TRUE(artist_vector_first(conn, "a0000000-0000-0000-0000-000000000004") == 4.0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE entity_type = 'artist' "
					     "AND entity_id = 'a0000000-0000-0000-0000-000000000004' "
					     "AND updated_at > now() - interval '1 hour'"),
		      1);
	ASSERT_TRUE(artist_vector_first(conn, "a0000000-0000-0000-0000-000000000001") == 1.0);
	/* Other entity types are never touched. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE entity_type = 'track' "
					     "AND embedding[1] = 7 AND updated_at < now() - interval '1 hour'"),
		      1);
}

/*
 * The vector columns are checked by type, with messages that name the column and its type:
 * entity_dna.embedding kept from before with another type than profile_embedding is refused by
 * schema, entity-dna and passportd; a profile_embedding that is no vector type is refused at once.
 * (vector(768) and pgvector in another schema need pgvector: tests/integration/test_pgvector.sh.)
 */
static void test_vector_types(void)
{
	char dsn[1024];
	PGconn *conn = create_fresh_database("schema_vector_types", dsn, sizeof dsn);
	char *out;

	harness_exec(conn, "CREATE TABLE entity_dna (entity_type text NOT NULL, entity_id uuid NOT NULL,"
			   " embedding double precision[], updated_at timestamptz NOT NULL DEFAULT now(),"
			   " PRIMARY KEY (entity_type, entity_id))");
	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, "entity_dna.embedding is double precision[] but media_ids.profile_embedding is real[]");
	free(out);
	ASSERT_EQ_INT(count_records(conn), 0);

	/* Made to match, the schema applies; then a later change of the column is refused everywhere. */
	harness_exec(conn, "ALTER TABLE entity_dna ALTER COLUMN embedding TYPE real[]");
	ASSERT_EQ_INT(migrate(&out, NULL, "schema", "--dsn", dsn, NULL), 0);
	free(out);
	harness_exec(conn, "ALTER TABLE entity_dna ALTER COLUMN embedding TYPE double precision[]");
	ASSERT_EQ_INT(migrate(&out, NULL, "entity-dna", "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, "entity_dna.embedding is double precision[] but media_ids.profile_embedding is real[]");
	free(out);
	{
		const char *argv[] = {harness_passportd(), "drain", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 1);
		ASSERT_STR_CONTAINS(out, "entity_dna.embedding is double precision[] but media_ids.profile_embedding is real[]");
		free(out);
	}
	harness_exec(conn, "ALTER TABLE entity_dna ALTER COLUMN embedding TYPE real[];"
			   "ALTER TABLE media_ids ALTER COLUMN profile_embedding TYPE text");
	{
		const char *argv[] = {harness_passportd(), "drain", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(harness_run(argv, NULL, &out), 1);
		ASSERT_STR_CONTAINS(out, "media_ids.profile_embedding has type text, expected vector(1536) (pgvector) or real[]");
		free(out);
	}
	PQfinish(conn);
}

/* passport-migrate blanks --dsn in its arguments, as passportd does: a password there is not left in /proc. */
static void test_dsn_blanked_in_argv(PGconn *conn, const char *dsn)
{
	char with_password[1200], path[64], cmdline[4096];
	pid_t child;
	int status;
	size_t got = 0;
	FILE *file;

	snprintf(with_password, sizeof with_password, "%s password=argv-secret-4711", dsn);
	/* Hold the schema lock, so that the run waits where it can be looked at. */
	harness_exec(conn, "SELECT pg_advisory_lock(8097880544633647732)");
	child = fork();
	ASSERT_TRUE(child >= 0);
	if (child == 0) {
		execl(harness_migrate(), harness_migrate(), "schema", "--dsn", with_password, (char *)NULL);
		_exit(127);
	}
	usleep(500000);
	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)child);
	file = fopen(path, "r");
	ASSERT_NOT_NULL(file);
	got = fread(cmdline, 1, sizeof cmdline - 1, file);
	fclose(file);
	for (size_t i = 0; i < got; i++)
		if (cmdline[i] == '\0')
			cmdline[i] = ' ';
	cmdline[got] = '\0';
	ASSERT_STR_CONTAINS(cmdline, "--dsn");
	ASSERT_STR_NOT_CONTAINS(cmdline, "argv-secret-4711");
	harness_exec(conn, "SELECT pg_advisory_unlock(8097880544633647732)");
	ASSERT_EQ_INT(waitpid(child, &status, 0), child);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ_INT(WEXITSTATUS(status), 0);
}

int main(void)
{
	char dsn[1024], fresh_dsn[1024];
	PGconn *conn, *fresh;

	setvbuf(stdout, NULL, _IONBF, 0);
	conn = harness_create_database("schema", "canonical", dsn, sizeof dsn);
	load_sql_file_names();

	test_command_line();
	test_connection_errors(dsn);
	test_idempotent(conn, dsn);
	test_objects(conn);
	test_notify(dsn);

	fresh = create_fresh_database("schema_fresh", fresh_dsn, sizeof fresh_dsn);
	test_dry_run(fresh, fresh_dsn);
	test_changed_and_failing_files(fresh, fresh_dsn);
	PQfinish(fresh);

	test_concurrent_runs();
	test_production_layout();
	test_entity_dna(conn, dsn);
	test_vector_types();
	test_dsn_blanked_in_argv(conn, dsn);

	PQfinish(conn);
	TEST_PASS();
}
