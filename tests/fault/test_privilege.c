/*
 * test_privilege: least privilege and secrets (sql/090_roles.sql, SPEC 5 "never log a password").
 *
 * A private server whose pg_hba.conf asks the roles passportd and passport_migrate for a
 * scram-sha-256 password. The schema is applied by the owner (postgres); then every command runs
 * as one of the two roles, its password given by a password file (PGPASSFILE), a service file
 * (PGSERVICEFILE), a config file, the environment, or the connection string. Checked:
 *   - each command works with the role's grants (drain, run, status, reprocess, entity-dna,
 *     backfill and verify);
 *   - the role is refused what it does not need (deleting entries, changing other columns,
 *     creating objects, reading other schemas, becoming another role);
 *   - no password appears in any output, log, `status`, `--print-config` (even when given in
 *     --dsn or a URI), or in the arguments of a running `passportd run`;
 *   - not even when the connection string is malformed around the password.
 */
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"

#define DATABASE "t_fault_priv"

static struct fault_server server;
static char daemon_password[64], migrate_password[64];
static char base_dsn[FAULT_DSN_MAX];     /* host, port, dbname: no user, no password */
static char passfile[600], servicefile[600], configfile[600];
static int checks;
static int problems; /* failures that do not stop the other cases; main fails at the end */

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
	va_list ap;

	fputs("PROBLEM: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	problems++;
}

/*
 * Whether text holds either password; if so, the first line holding it goes to line, the
 * password itself replaced by <PASSWORD>.
 */
static bool find_password(const char *text, char *line, size_t linelen)
{
	const char *passwords[] = {daemon_password, migrate_password};

	for (int i = 0; text && i < 2; i++) {
		const char *at = strstr(text, passwords[i]), *start, *end;
		if (!at)
			continue;
		start = at;
		while (start > text && start[-1] != '\n')
			start--;
		end = strchr(at, '\n');
		if (!end)
			end = at + strlen(at);
		snprintf(line, linelen, "%.*s<PASSWORD>%.*s", (int)(at - start), start,
			 (int)(end - at - (ptrdiff_t)strlen(passwords[i])), at + strlen(passwords[i]));
		return true;
	}
	return false;
}

/* Fail when text holds either password. */
static void expect_no_password(const char *what, const char *text)
{
	char line[1200];

	if (find_password(text, line, sizeof line))
		FAIL("a password appears in %s:\n    %s", what, line);
	checks++;
}

/* Run a command, check its output for passwords, return its status; *output keeps the output if asked. */
static int run(const char *what, const char *const argv[], const char *const env[], char **output)
{
	char *text = NULL;
	int status = harness_run(argv, env, &text);

	expect_no_password(what, text);
	if (output)
		*output = text;
	else
		free(text);
	return status;
}

static void write_private_file(const char *path, const char *text)
{
	FILE *file = fopen(path, "w");

	if (!file || fputs(text, file) < 0 || fclose(file) != 0)
		FAIL("cannot write %s: %s", path, strerror(errno));
	if (chmod(path, 0600) != 0)
		FAIL("chmod %s: %s", path, strerror(errno));
}

static void random_password(char *out, size_t outlen, const char *suffix)
{
	snprintf(out, outlen, "pw-%08lx%08lx-%s", (unsigned long)random(), (unsigned long)random(), suffix);
}

static void dsn_as(char *out, const char *user, const char *password)
{
	fault_dsn_with(out, FAULT_DSN_MAX, base_dsn, "user", user);
	if (password)
		fault_dsn_with(out, FAULT_DSN_MAX, out, "password", password);
}

/* ---- set-up ---------------------------------------------------------------------------- */

static PGconn *set_up(void)
{
	char dsn[FAULT_DSN_MAX], text[4096];
	PGconn *conn;
	char *sql;

	fault_server_start(&server, "local all passportd scram-sha-256\nlocal all passport_migrate scram-sha-256");
	fault_server_use(&server);
	/* The owner applies the schema (harness_create_database runs `passport-migrate schema` as postgres). */
	conn = harness_create_database("fault_priv", "canonical", dsn, sizeof dsn);
	harness_exec(conn, "SET client_min_messages = warning");
	sql = fault_read_source("tests/sql/workload.sql");
	harness_exec(conn, sql);
	free(sql);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(10, 10)"), 100);
	/* Work for each grant: a ledger link, entries that die (for reprocess), an artist without a vector. */
	harness_exec(conn,
		     "INSERT INTO ledger_entries (correlation_id, amount_cents) VALUES ('priv-correlation', 700);"
		     "INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, \"timestamp\") VALUES"
		     " (passport_test_uuid('priv-money'), passport_test_uuid('user-1'), 'treasury.transaction_created',"
		     "  'transaction', '{\"amount_cents\": 700, \"correlation_id\": \"priv-correlation\"}', '2026-02-01'),"
		     " (passport_test_uuid('priv-dead-1'), passport_test_uuid('user-2'), 'player.track_played',"
		     "  'interaction', '[]', '2026-02-02'),"
		     " (passport_test_uuid('priv-dead-2'), passport_test_uuid('user-3'), 'player.track_played',"
		     "  'interaction', '{}', NULL);"
		     "DELETE FROM entity_dna WHERE entity_type = 'artist' AND entity_id = passport_test_uuid('artist-1')");

	random_password(daemon_password, sizeof daemon_password, "daemon");
	random_password(migrate_password, sizeof migrate_password, "migrate");
	harness_execf(conn, "ALTER ROLE passportd LOGIN PASSWORD '%s'", daemon_password);
	harness_execf(conn, "ALTER ROLE passport_migrate LOGIN PASSWORD '%s'", migrate_password);

	base_dsn[0] = '\0';
	fault_dsn_with(base_dsn, sizeof base_dsn, "", "host", server.host);
	fault_dsn_with(base_dsn, sizeof base_dsn, base_dsn, "port", server.port);
	fault_dsn_with(base_dsn, sizeof base_dsn, base_dsn, "dbname", DATABASE);

	snprintf(passfile, sizeof passfile, "%s/pgpass", fault_temp_dir());
	snprintf(text, sizeof text, "*:*:*:passportd:%s\n*:*:*:passport_migrate:%s\n", daemon_password, migrate_password);
	write_private_file(passfile, text);
	snprintf(servicefile, sizeof servicefile, "%s/pg_service.conf", fault_temp_dir());
	snprintf(text, sizeof text, "[passport_fault]\nhost=%s\nport=%s\ndbname=%s\nuser=passportd\npassword=%s\n",
		 server.host, server.port, DATABASE, daemon_password);
	write_private_file(servicefile, text);
	snprintf(configfile, sizeof configfile, "%s/passportd.conf", fault_temp_dir());
	snprintf(text, sizeof text, "# passportd test config\ndsn = host=%s port=%s dbname=%s user=passportd password=%s\n",
		 server.host, server.port, DATABASE, daemon_password);
	write_private_file(configfile, text);
	return conn;
}

/* ---- authentication is really required ------------------------------------------------ */

static void case_password_required(void)
{
	char dsn[FAULT_DSN_MAX], wrong[64];
	char *output = NULL;

	printf("\n=== scram-sha-256 is enforced\n");
	dsn_as(dsn, "passportd", NULL);
	{
		const char *argv[] = {harness_passportd(), "status", "--dsn", dsn, NULL};
		const char *env[] = {"PGPASSFILE=/nonexistent", "PGPASSWORD=", NULL};
		ASSERT_EQ_INT(run("status without a password", argv, env, &output), 1);
		ASSERT_STR_CONTAINS(output, "password");
		free(output);
	}
	random_password(wrong, sizeof wrong, "wrong");
	dsn_as(dsn, "passportd", wrong);
	{
		const char *argv[] = {harness_passportd(), "status", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(run("status with a wrong password", argv, NULL, &output), 1);
		ASSERT_STR_CONTAINS(output, "password authentication failed");
		if (strstr(output, wrong))
			FAIL("the wrong password appears in the error output");
		free(output);
	}
}

/* ---- every way to give the password, and every command -------------------------------- */

static void case_daemon_commands(PGconn *conn)
{
	char dsn[FAULT_DSN_MAX], with_password[FAULT_DSN_MAX], uri[FAULT_DSN_MAX], env_uri[FAULT_DSN_MAX + 32];
	char env_dsn[FAULT_DSN_MAX + 32], passfile_env[640], servicefile_env[640];
	char *output = NULL;

	printf("\n=== passportd as the passportd role\n");
	dsn_as(dsn, "passportd", NULL);
	dsn_as(with_password, "passportd", daemon_password);
	snprintf(uri, sizeof uri, "postgresql://passportd:%s@/%s?host=%s&port=%s", daemon_password, DATABASE, server.host,
		 server.port);
	snprintf(env_uri, sizeof env_uri, "PASSPORT_DATABASE_URL=%s", uri);
	snprintf(env_dsn, sizeof env_dsn, "PASSPORTD_DSN=%s", with_password);
	snprintf(passfile_env, sizeof passfile_env, "PGPASSFILE=%s", passfile);
	snprintf(servicefile_env, sizeof servicefile_env, "PGSERVICEFILE=%s", servicefile);
	{
		const char *env[] = {passfile_env, NULL};
		const char *drain[] = {harness_passportd(), "drain", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(run("drain (password file)", drain, env, &output), 0);
		ASSERT_STR_CONTAINS(output, "drain: processed 101, failed 2");
		free(output);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM ledger_entries WHERE correlation_id = 'priv-correlation'"
					     " AND passport_entry_id = passport_test_uuid('priv-money')"),
		      1);

	/* status, every way of passing the password */
	{
		const char *env_pass[] = {passfile_env, NULL};
		const char *env_service[] = {servicefile_env, NULL};
		const char *env_service_name[] = {servicefile_env, "PGSERVICE=passport_fault", NULL};
		const char *env_url[] = {env_uri, NULL};
		const char *env_config_dsn[] = {env_dsn, NULL};
		const char *by_passfile[] = {harness_passportd(), "status", "--dsn", dsn, NULL};
		const char *by_passfile_json[] = {harness_passportd(), "status", "--json", "--dsn", dsn, NULL};
		const char *by_dsn[] = {harness_passportd(), "status", "--dsn", with_password, NULL};
		const char *by_uri[] = {harness_passportd(), "status", "--json", "--dsn", uri, NULL};
		const char *by_service[] = {harness_passportd(), "status", "--dsn", "service=passport_fault", NULL};
		const char *bare[] = {harness_passportd(), "status", NULL};
		const char *by_config[] = {harness_passportd(), "status", "-c", configfile, NULL};

		ASSERT_EQ_INT(run("status (password file)", by_passfile, env_pass, NULL), 0);
		ASSERT_EQ_INT(run("status --json (password file)", by_passfile_json, env_pass, NULL), 0);
		ASSERT_EQ_INT(run("status (password in --dsn)", by_dsn, NULL, NULL), 0);
		ASSERT_EQ_INT(run("status --json (password in a URI)", by_uri, NULL, NULL), 0);
		ASSERT_EQ_INT(run("status (service file, service= in --dsn)", by_service, env_service, NULL), 0);
		ASSERT_EQ_INT(run("status (service file, PGSERVICE)", bare, env_service_name, NULL), 0);
		ASSERT_EQ_INT(run("status (PASSPORT_DATABASE_URL)", bare, env_url, NULL), 0);
		ASSERT_EQ_INT(run("status (PASSPORTD_DSN)", bare, env_config_dsn, NULL), 0);
		ASSERT_EQ_INT(run("status (config file)", by_config, NULL, NULL), 0);
	}

	/* --print-config never shows the password, however it was given */
	{
		const char *by_dsn[] = {harness_passportd(), "--print-config", "--dsn", with_password, NULL};
		const char *by_uri[] = {harness_passportd(), "--print-config", "--dsn", uri, NULL};
		const char *by_config[] = {harness_passportd(), "--print-config", "-c", configfile, NULL};
		const char *bare[] = {harness_passportd(), "--print-config", NULL};
		const char *env_url[] = {env_uri, NULL};
		const char *env_config_dsn[] = {env_dsn, NULL};
		const char *const *commands[] = {by_dsn, by_uri, by_config, bare, bare};
		const char *const *envs[] = {NULL, NULL, NULL, env_url, env_config_dsn};
		for (int i = 0; i < 5; i++) {
			ASSERT_EQ_INT(run("--print-config", commands[i], envs[i], &output), 0);
			ASSERT_STR_CONTAINS(output, "dsn = ");
			free(output);
		}
		ASSERT_EQ_INT(run("--print-config (dsn)", by_dsn, NULL, &output), 0);
		ASSERT_STR_CONTAINS(output, "user='passportd'"); /* the rest of the DSN is still shown */
		free(output);
	}

	/* reprocess: the two dead entries die again in this process; requeued, a drain kills them again */
	{
		const char *env[] = {passfile_env, NULL};
		const char *env_service[] = {servicefile_env, NULL};
		const char *dry[] = {harness_passportd(), "reprocess", "--dry-run", "--dsn", dsn, NULL};
		const char *now[] = {harness_passportd(), "reprocess", "--now", "--all", "--dsn", dsn, NULL};
		const char *requeue[] = {harness_passportd(), "reprocess", "--all", "--dsn", dsn, NULL};
		const char *drain[] = {harness_passportd(), "drain", "--dsn", "service=passport_fault", NULL};
		ASSERT_EQ_INT(run("reprocess --dry-run", dry, env, &output), 0);
		ASSERT_STR_CONTAINS(output, "dry run: 2 entries");
		free(output);
		ASSERT_EQ_INT(run("reprocess --now", now, env, &output), 0);
		ASSERT_STR_CONTAINS(output, "dead again");
		free(output);
		ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE dead_at IS NOT NULL"), 2);
		ASSERT_EQ_INT(run("reprocess", requeue, env, &output), 0);
		ASSERT_STR_CONTAINS(output, "requeued 2 entries");
		free(output);
		ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE dead_at IS NOT NULL"), 0);
		ASSERT_EQ_INT(run("drain (service file)", drain, env_service, &output), 0);
		ASSERT_STR_CONTAINS(output, "dead 2");
		free(output);
	}
}

/* `passportd run` started with a password file: its arguments and log hold no password. */
static void case_daemon_run(PGconn *conn)
{
	char dsn[FAULT_DSN_MAX], passfile_env[640], log[600], *cmdline, *text;
	pid_t pid;
	int status;

	printf("\n=== passportd run as the passportd role\n");
	dsn_as(dsn, "passportd", NULL);
	snprintf(passfile_env, sizeof passfile_env, "PGPASSFILE=%s", passfile);
	snprintf(log, sizeof log, "%s/run.log", fault_temp_dir());
	{
		const char *argv[] = {harness_passportd(), "run", "--dsn", dsn, "--log-level", "debug",
				      "--log-format", "plain", NULL};
		const char *env[] = {passfile_env, NULL};
		pid = fault_spawn(argv, env, log);
	}
	if (!fault_wait_for(conn, 30, "SELECT count(*) = 1 FROM pg_stat_activity WHERE usename = 'passportd'"
				      " AND application_name = 'passportd listener' AND " FAULT_LISTENER_SUBSCRIBED))
		FAIL("passportd run did not start listening as passportd");
	cmdline = fault_cmdline(pid);
	printf("cmdline: %s\n", cmdline);
	expect_no_password("/proc/<pid>/cmdline of passportd run", cmdline);
	free(cmdline);
	harness_exec(conn, "INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, \"timestamp\")"
			   " SELECT passport_test_uuid('priv-run-' || i), passport_test_uuid('user-' || (1 + i % 10)),"
			   " 'player.track_completed', 'interaction',"
			   " jsonb_build_object('trackId', passport_test_uuid('track-1')::text), '2026-03-01'::timestamptz + i * interval '1 hour'"
			   " FROM generate_series(1, 20) AS i");
	if (!fault_wait_for(conn, 15, "SELECT count(*) = 20 FROM passport_entries WHERE processed"
				      " AND id IN (SELECT passport_test_uuid('priv-run-' || i) FROM generate_series(1, 20) i)"))
		FAIL("passportd run (as passportd) did not process new entries");
	kill(pid, SIGTERM);
	status = fault_wait(pid, 15);
	ASSERT_EQ_INT(status, 0);
	text = fault_read_file(log, NULL);
	ASSERT_NOT_NULL(text);
	expect_no_password("the log of passportd run", text);
	free(text);
	fault_expect_clean_log(log);
}

/* ---- passport-migrate as passport_migrate ---------------------------------------------- */

static void case_migrate_commands(PGconn *conn)
{
	char dsn[FAULT_DSN_MAX], passfile_env[640];
	char *output = NULL, *help = NULL, *legacy;

	printf("\n=== passport-migrate as the passport_migrate role\n");
	dsn_as(dsn, "passport_migrate", NULL);
	snprintf(passfile_env, sizeof passfile_env, "PGPASSFILE=%s", passfile);
	{
		const char *argv[] = {harness_migrate(), "--dsn", dsn, "entity-dna", NULL};
		const char *env[] = {passfile_env, NULL};
		ASSERT_EQ_INT(run("entity-dna", argv, env, NULL), 0);
		ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE entity_type = 'artist'"
						     " AND entity_id = passport_test_uuid('artist-1') AND embedding IS NOT NULL"),
			      1);
	}

	/* backfill and verify, where they exist yet */
	{
		const char *argv[] = {harness_migrate(), "backfill", "--help", NULL};
		harness_run(argv, NULL, &help);
	}
	{
		char path[4096];
		snprintf(path, sizeof path, "%s/tests/sql/legacy_sample.sql", getenv("PASSPORT_SOURCE_ROOT"));
		legacy = fault_read_file(path, NULL);
	}
	if (!help || strstr(help, "Not implemented") || !legacy) {
		printf("backfill is not implemented yet (or tests/sql/legacy_sample.sql is missing): not run\n");
	} else {
		const char *env[] = {passfile_env, NULL};
		const char *backfill[] = {harness_migrate(), "--dsn", dsn, "backfill", NULL};
		const char *verify[] = {harness_migrate(), "--dsn", dsn, "verify", NULL};
		long long before;

		harness_exec(conn, "SET client_min_messages = warning");
		harness_exec(conn, legacy);
		harness_exec(conn, "TRUNCATE listening_history, media_engagement_log");
		ASSERT_GT_INT(harness_query_int(conn, "SELECT passport_test_legacy(10, 50, 50)"), 0);
		before = harness_query_int(conn, "SELECT count(*) FROM passport_entries");
		ASSERT_EQ_INT(run("backfill", backfill, env, &output), 0);
		/* The role has every grant the backfill needs: no degraded mode, no permission error. */
		if (strstr(output, "not writable") || strstr(output, "permission denied"))
			problem("backfill as passport_migrate lacks a grant it needs (see its output above)");
		free(output);
		ASSERT_GT_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), before);
		ASSERT_EQ_INT(run("backfill again", backfill, env, NULL), 0);
		ASSERT_EQ_INT(run("verify", verify, env, NULL), 0);
		{
			char daemon_dsn[FAULT_DSN_MAX];
			const char *drain[] = {harness_passportd(), "drain", "--dsn", daemon_dsn, NULL};
			dsn_as(daemon_dsn, "passportd", NULL);
			ASSERT_EQ_INT(run("drain of the backfilled entries", drain, env, NULL), 0);
		}
	}
	free(legacy);
	free(help);
}

/* ---- what the roles must not do ------------------------------------------------------- */

static void expect_refused(PGconn *conn, const char *role, const char *sql)
{
	PGresult *res = PQexec(conn, sql);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK)
		FAIL("%s may run: %s", role, sql);
	if (!state || strcmp(state, "42501") != 0)
		FAIL("%s: %s failed with %s (%s), expected insufficient_privilege (42501)", role, sql,
		     state ? state : "no SQLSTATE", PQresultErrorMessage(res));
	PQclear(res);
	checks++;
}

static void case_refusals(PGconn *owner)
{
	static const char *const daemon_refused[] = {
		"DELETE FROM passport_entries",
		"TRUNCATE passport_entries",
		"INSERT INTO passport_entries (event_type, event_category) VALUES ('x', 'y')",
		"UPDATE passport_entries SET payload = '{}'",
		"UPDATE passport_entries SET user_id = NULL",
		"UPDATE passport_entries SET \"timestamp\" = now()",
		"UPDATE media_ids SET role = 'admin'",
		"UPDATE media_ids SET user_uuid = gen_random_uuid()",
		"UPDATE media_ids SET content_flags = '{}'",
		"INSERT INTO media_ids (user_uuid) VALUES (gen_random_uuid())",
		"DELETE FROM media_ids",
		"DELETE FROM dna_evolution",
		"UPDATE dna_evolution SET alpha = 0",
		"DELETE FROM coliseum_metrics",
		"UPDATE coliseum_metrics SET metric_value = 0",
		"UPDATE ledger_entries SET amount_cents = 0",
		"DELETE FROM ledger_entries",
		"INSERT INTO ledger_entries (correlation_id) VALUES ('x')",
		"INSERT INTO entity_dna (entity_type, entity_id) VALUES ('track', gen_random_uuid())",
		"UPDATE entity_dna SET embedding = NULL",
		"DELETE FROM passport_schema_migrations",
		"SELECT * FROM auth.users",
		"SELECT * FROM listening_history",
		"CREATE TABLE public.passportd_table (x int)",
		"CREATE SCHEMA passportd_schema",
		"DROP TABLE dna_evolution",
		"ALTER TABLE passport_entries ADD COLUMN x int",
		"CREATE INDEX ON passport_entries (event_type)",
		"SET ROLE postgres",
		"SELECT pg_read_file('postgresql.conf')",
		"COPY passport_entries TO PROGRAM 'true'",
		"CREATE DATABASE passportd_database",
		"CREATE ROLE passportd_friend",
		"ALTER ROLE passportd SUPERUSER",
		NULL,
	};
	static const char *const migrate_refused[] = {
		"DELETE FROM passport_entries",
		"TRUNCATE passport_entries",
		"UPDATE passport_entries SET processed = true",
		"UPDATE passport_entries SET payload = '{}'",
		"UPDATE media_ids SET profile_embedding = NULL",
		"DELETE FROM media_ids",
		"DELETE FROM entity_dna",
		"INSERT INTO dna_evolution (mediaid_id, passport_entry_id, event_type, event_time, alpha, decay_cultural,"
		" decay_behavioral, decay_economic, decay_spatial, delta_cultural, delta_behavioral, delta_economic,"
		" delta_spatial, late) VALUES (gen_random_uuid(), gen_random_uuid(), 'x', now(), 0, 0, 0, 0, 0, 0, 0, 0, 0,"
		" false)",
		"UPDATE ledger_entries SET passport_entry_id = NULL",
		"DELETE FROM coliseum_metrics",
		"SELECT * FROM auth.users",
		"CREATE TABLE public.migrate_table (x int)",
		"DROP TABLE passport_entries",
		"SET ROLE postgres",
		"ALTER ROLE passport_migrate SUPERUSER",
		NULL,
	};
	char dsn[FAULT_DSN_MAX];
	PGconn *conn;

	printf("\n=== what the roles may not do\n");
	dsn_as(dsn, "passportd", daemon_password);
	conn = harness_connect(dsn);
	harness_exec(conn, "SET client_min_messages = error");
	for (int i = 0; daemon_refused[i]; i++)
		expect_refused(conn, "passportd", daemon_refused[i]);
	/* ... but may do its own work, column by column */
	harness_exec(conn, "BEGIN; UPDATE passport_entries SET processed = processed, processed_at = processed_at,"
			   " processing_attempts = processing_attempts, last_error = last_error,"
			   " next_attempt_at = next_attempt_at, dead_at = dead_at WHERE false;"
			   " UPDATE media_ids SET profile_embedding = profile_embedding, dna_clock = dna_clock,"
			   " version = version, updated_at = updated_at WHERE false;"
			   " UPDATE ledger_entries SET passport_entry_id = passport_entry_id WHERE false;"
			   " LISTEN passport_entries; ROLLBACK");
	PQfinish(conn);

	dsn_as(dsn, "passport_migrate", migrate_password);
	conn = harness_connect(dsn);
	harness_exec(conn, "SET client_min_messages = error");
	for (int i = 0; migrate_refused[i]; i++)
		expect_refused(conn, "passport_migrate", migrate_refused[i]);
	PQfinish(conn);

	/* Role attributes: nothing beyond LOGIN, no memberships, nothing owned. */
	ASSERT_EQ_INT(harness_query_int(owner, "SELECT count(*) FROM pg_roles WHERE rolname IN ('passportd', 'passport_migrate')"
					      " AND NOT (rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls)"
					      " AND rolcanlogin"),
		      2);
	ASSERT_EQ_INT(harness_query_int(owner, "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
					      " WHERE r.rolname IN ('passportd', 'passport_migrate')"),
		      0);
	ASSERT_EQ_INT(harness_query_int(owner, "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
					      " WHERE r.rolname IN ('passportd', 'passport_migrate')"),
		      0);
	/* The Supabase notes ship with the roles. */
	{
		char *roles = fault_read_source("sql/090_roles.sql");
		ASSERT_STR_CONTAINS(roles, "Supabase");
		ASSERT_STR_CONTAINS(roles, "pooler");
		ASSERT_STR_CONTAINS(roles, "LISTEN");
		free(roles);
	}
}

/*
 * A connection string malformed around the password: libpq's own parse error quotes the text
 * it could not parse. That message must not reach a log or the terminal with the password in it.
 */
/* Run a command with a malformed connection string; count (not fail) a password in its output. */
static int run_malformed(const char *what, const char *const argv[])
{
	char *text = NULL, line[1200];
	int status = harness_run(argv, NULL, &text);

	if (find_password(text, line, sizeof line)) {
		problem("%s prints the password:\n    %s", what, line);
	}
	free(text);
	return status;
}

static void case_malformed_connection_strings(void)
{
	char uri_bad_escape[FAULT_DSN_MAX], uri_bad_parameter[FAULT_DSN_MAX], keyword_typo[FAULT_DSN_MAX + 128];
	char log[600], line[1200], what[200], *text;
	const char *malformed[3], *names[3] = {"a URI whose password has a bad %-escape",
						"a URI with an unknown parameter", "password:secret instead of password="};

	printf("\n=== connection strings malformed around the password\n");
	snprintf(uri_bad_escape, sizeof uri_bad_escape, "postgresql://passportd:%s%%zz@/%s?host=%s&port=%s",
		 daemon_password, DATABASE, server.host, server.port);
	snprintf(uri_bad_parameter, sizeof uri_bad_parameter, "postgresql://passportd:%s@/%s?host=%s&port=%s&bogus=1",
		 daemon_password, DATABASE, server.host, server.port);
	snprintf(keyword_typo, sizeof keyword_typo, "%s user=passportd password:%s", base_dsn, daemon_password);
	malformed[0] = uri_bad_escape;
	malformed[1] = uri_bad_parameter;
	malformed[2] = keyword_typo;
	for (int i = 0; i < 3; i++) {
		const char *print[] = {harness_passportd(), "--print-config", "--dsn", malformed[i], NULL};
		const char *status[] = {harness_passportd(), "status", "--dsn", malformed[i], NULL};
		const char *drain[] = {harness_passportd(), "drain", "--dsn", malformed[i], NULL};
		const char *migrate[] = {harness_migrate(), "--dsn", malformed[i], "entity-dna", NULL};

		snprintf(what, sizeof what, "passportd --print-config with %s", names[i]);
		run_malformed(what, print);
		snprintf(what, sizeof what, "passportd status with %s", names[i]);
		ASSERT_NE_INT(run_malformed(what, status), 0);
		snprintf(what, sizeof what, "passportd drain with %s", names[i]);
		ASSERT_NE_INT(run_malformed(what, drain), 0);
		snprintf(what, sizeof what, "passport-migrate entity-dna with %s", names[i]);
		ASSERT_NE_INT(run_malformed(what, migrate), 0);

		/* passportd run: a few seconds of its log. */
		snprintf(log, sizeof log, "%s/run-malformed-%d.log", fault_temp_dir(), i);
		{
			const char *argv[] = {harness_passportd(), "run", "--dsn", malformed[i], "--log-format", "plain", NULL};
			pid_t pid = fault_spawn(argv, NULL, log);
			int exit_status;
			fault_sleep(1.5);
			if (!fault_reap(pid, &exit_status)) {
				kill(pid, SIGTERM);
				fault_wait(pid, 15);
			}
		}
		text = fault_read_file(log, NULL);
		if (find_password(text, line, sizeof line)) {
			problem("the log of passportd run with %s holds the password:\n    %s", names[i], line);
		}
		free(text);
		unlink(log);
	}
}

int main(void)
{
	PGconn *conn;

	fault_begin("privilege");
	fault_seed();
	conn = set_up();
	case_password_required();
	case_daemon_commands(conn);
	case_daemon_run(conn);
	case_migrate_commands(conn);
	case_refusals(conn);
	case_malformed_connection_strings();
	if (problems)
		FAIL("%d problem(s), listed above as PROBLEM lines", problems);
	printf("\n%d password and privilege checks passed\n", checks);
	PQfinish(conn);
	fault_passed();
	TEST_PASS();
}
