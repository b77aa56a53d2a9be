/*
 * test_supabase: the project's tables on a Supabase-shaped database (sql/010_api_roles.sql).
 *
 * A private server with Supabase's API roles (anon, authenticated, service_role with BYPASSRLS),
 * their usage of `public`, Supabase's default privileges (all rights on every new table, sequence
 * and function) and an `extensions` schema. pgvector cannot be installed on Debian's server, so
 * profile_embedding is real[] here (tests/integration/test_pgvector.sh covers vector(1536)).
 * Checked, after `passport-migrate schema` run by the owner:
 *   - anon and authenticated can neither read nor delete any project table, nor use its sequence;
 *     even when a privilege is granted back by mistake, row level security shows them no row;
 *   - passportd (drain, status) and passport_migrate (backfill, verify, entity-dna) keep working
 *     as their least-privilege roles;
 *   - where upstream created passport_entries with row level security and its own policy, that
 *     policy and its grant stay, and passportd still processes the entries;
 *   - upstream's events table (row level security on) is readable by passportd for the coliseum
 *     id check (sql/011_coliseum_references.sql).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

static struct fault_server server;

/* Supabase's roles (cluster-wide) and, in template1, its schema grants and default privileges. */
static void make_supabase_shaped(void)
{
	char dsn[FAULT_DSN_MAX];
	PGconn *conn;

	snprintf(dsn, sizeof dsn, "host='%s' port='%s' user=postgres dbname=template1", server.host, server.port);
	conn = harness_connect(dsn);
	harness_exec(conn, "CREATE ROLE anon NOLOGIN NOINHERIT;"
			   "CREATE ROLE authenticated NOLOGIN NOINHERIT;"
			   "CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;"
			   "CREATE SCHEMA extensions;"
			   "GRANT USAGE ON SCHEMA public, extensions TO anon, authenticated, service_role;"
			   "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;"
			   "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;"
			   "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;");
	PQfinish(conn);
}

/* The SQLSTATE of sql run as role ("00000" when it succeeds); *rows gets the count it returned. */
static const char *as_role(PGconn *conn, const char *role, const char *sql, long long *rows)
{
	static char state[6];
	PGresult *res;
	const char *code;

	harness_execf(conn, "SET ROLE %s", role);
	res = PQexec(conn, sql);
	code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	snprintf(state, sizeof state, "%s", PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK
						   ? "00000" : (code ? code : "?????"));
	if (rows)
		*rows = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0)) : -1;
	PQclear(res);
	harness_exec(conn, "RESET ROLE");
	return state;
}

static void expect_state(PGconn *conn, const char *role, const char *sql, const char *expected)
{
	const char *got = as_role(conn, role, sql, NULL);

	if (strcmp(got, expected) != 0)
		FAIL("as %s, %s: SQLSTATE %s, expected %s", role, sql, got, expected);
}

static const char *const project_tables[] = {"passport_entries", "dna_evolution", "entity_dna", "coliseum_metrics",
					     "passport_schema_migrations", "passport_backfill_progress"};
#define N_PROJECT_TABLES (sizeof project_tables / sizeof project_tables[0])

/* Nobody with the public key reads or erases anything the project keeps. */
static void check_closed_to_api_roles(PGconn *conn)
{
	const char *roles[] = {"anon", "authenticated"};

	for (size_t r = 0; r < 2; r++) {
		for (size_t t = 0; t < N_PROJECT_TABLES; t++) {
			char *sql = harness_textf(conn, "SELECT 'SELECT count(*) FROM %s'", project_tables[t]);
			expect_state(conn, roles[r], sql, "42501");
			free(sql);
			sql = harness_textf(conn, "SELECT 'DELETE FROM %s'", project_tables[t]);
			expect_state(conn, roles[r], sql, "42501");
			free(sql);
			ASSERT_EQ_INT(harness_intf(conn, "SELECT count(*) FROM pg_class WHERE oid = '%s'::regclass AND relrowsecurity",
						  project_tables[t]),
				     1);
		}
		ASSERT_EQ_INT(harness_intf(conn, "SELECT has_sequence_privilege('%s', 'dna_evolution_id_seq', 'USAGE')::int",
					  roles[r]),
			     0);
	}
	/* A privilege granted back by mistake still shows no row: row level security has no policy for them. */
	ASSERT_TRUE(harness_query_int(conn, "SELECT count(*) FROM dna_evolution") > 0);
	harness_exec(conn, "GRANT SELECT ON dna_evolution, passport_entries TO authenticated");
	{
		long long rows;
		ASSERT_TRUE(strcmp(as_role(conn, "authenticated", "SELECT count(*) FROM dna_evolution", &rows), "00000") == 0);
		ASSERT_EQ_INT(rows, 0);
		ASSERT_TRUE(strcmp(as_role(conn, "authenticated", "SELECT count(*) FROM passport_entries", &rows), "00000") == 0);
		ASSERT_EQ_INT(rows, 0);
	}
	harness_exec(conn, "REVOKE SELECT ON dna_evolution, passport_entries FROM authenticated");
	printf("ok: anon and authenticated read and delete nothing of the project's\n");
}

static int run_program(const char *const argv[], char **out)
{
	return harness_run(argv, NULL, out);
}

/* passportd and passport_migrate, logged in as themselves, do their work. */
static void check_project_roles_work(PGconn *conn, const char *dsn)
{
	char daemon_dsn[FAULT_DSN_MAX], migrate_dsn[FAULT_DSN_MAX];
	long long entries = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed");
	char *out;

	fault_dsn_with(daemon_dsn, sizeof daemon_dsn, dsn, "user", "passportd");
	fault_dsn_with(migrate_dsn, sizeof migrate_dsn, dsn, "user", "passport_migrate");
	{
		const char *argv[] = {harness_migrate(), "entity-dna", "--dsn", migrate_dsn, NULL};
		ASSERT_EQ_INT(run_program(argv, &out), 0);
		free(out);
	}
	harness_exec(conn, "INSERT INTO listening_history (id, user_id, content_id, event_type, created_at)"
			   " SELECT passport_test_uuid('lh-' || i), passport_test_uuid('user-' || (1 + i % 5)),"
			   "  passport_test_uuid('track-' || i), 'played', timestamptz '2026-02-01' + i * interval '1 minute'"
			   " FROM generate_series(1, 20) AS i");
	{
		const char *argv[] = {harness_migrate(), "backfill", "--source", "listening_history", "--dsn", migrate_dsn, NULL};
		ASSERT_EQ_INT(run_program(argv, &out), 0);
		free(out);
	}
	{
		const char *argv[] = {harness_migrate(), "verify", "--source", "listening_history", "--dsn", migrate_dsn, NULL};
		ASSERT_EQ_INT(run_program(argv, &out), 0);
		free(out);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE legacy_source = 'listening_history'"),
		     20);
	{
		const char *extra[] = {"--batch-size", "50", NULL};
		ASSERT_EQ_INT(fault_drain(daemon_dsn, extra), entries + 20);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"), 0);
	ASSERT_TRUE(harness_query_int(conn, "SELECT count(*) FROM dna_evolution") > 0);
	ASSERT_TRUE(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics") > 0);
	{
		const char *argv[] = {harness_passportd(), "status", "--dsn", daemon_dsn, NULL};
		ASSERT_EQ_INT(run_program(argv, &out), 0);
		free(out);
	}
	printf("ok: passportd and passport_migrate work as themselves under row level security\n");
}

/* Upstream created passport_entries with row level security and a policy of its own: both stay. */
static void check_upstream_policy_kept(void)
{
	char dsn[FAULT_DSN_MAX], admin_dsn[FAULT_DSN_MAX], daemon_dsn[FAULT_DSN_MAX];
	PGconn *admin, *conn;
	char *text, *out;

	snprintf(admin_dsn, sizeof admin_dsn, "host='%s' port='%s' user=postgres dbname=postgres", server.host, server.port);
	admin = harness_connect(admin_dsn);
	harness_exec(admin, "DROP DATABASE IF EXISTS t_supabase_upstream WITH (FORCE)");
	harness_exec(admin, "CREATE DATABASE t_supabase_upstream");
	PQfinish(admin);
	snprintf(dsn, sizeof dsn, "host='%s' port='%s' user=postgres dbname=t_supabase_upstream", server.host, server.port);
	conn = harness_connect(dsn);
	harness_exec(conn, "SET client_min_messages = warning");
	text = fault_read_source("tests/sql/upstream.sql");
	harness_exec(conn, text);
	free(text);
	/* Upstream's table: users insert their own entries through the API, nobody reads them back. */
	harness_exec(conn, "CREATE TABLE passport_entries (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid,"
			   " mediaid_id uuid, event_type text NOT NULL, event_category text NOT NULL,"
			   " payload jsonb DEFAULT '{}', affects_systems text[] DEFAULT '{}', processed boolean DEFAULT false,"
			   " processed_at timestamptz, processing_attempts int DEFAULT 0, source text DEFAULT 'web',"
			   " session_id text, \"timestamp\" timestamptz DEFAULT now(), created_at timestamptz DEFAULT now());"
			   "ALTER TABLE passport_entries ENABLE ROW LEVEL SECURITY;"
			   "CREATE POLICY users_insert ON passport_entries FOR INSERT TO authenticated WITH CHECK (true);"
			   /* Upstream's events, closed by row level security: passportd reads their ids (sql/011). */
			   "CREATE TABLE events (id uuid PRIMARY KEY, title text);"
			   "ALTER TABLE events ENABLE ROW LEVEL SECURITY;"
			   "INSERT INTO events VALUES ('e0000000-0000-4000-8000-000000000001', 'a concert')");
	{
		const char *argv[] = {harness_migrate(), "schema", "--dsn", dsn, NULL};
		ASSERT_EQ_INT(run_program(argv, &out), 0);
		free(out);
	}
	harness_allow_role_login(conn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_policy WHERE polrelid = 'passport_entries'::regclass"
					     " AND polname = 'users_insert'"),
		     1);
	expect_state(conn, "authenticated",
		     "INSERT INTO passport_entries (user_id, event_type, event_category, affects_systems)"
		     " VALUES (gen_random_uuid(), 'coliseum.metric_tracked', 'trinity', '{coliseum}')",
		     "00000");
	/* The project's own tables are closed all the same. */
	expect_state(conn, "authenticated", "SELECT count(*) FROM dna_evolution", "42501");
	fault_dsn_with(daemon_dsn, sizeof daemon_dsn, dsn, "user", "passportd");
	harness_exec(conn, "INSERT INTO passport_entries (user_id, event_type, event_category, affects_systems, payload)"
			   " VALUES (gen_random_uuid(), 'concierto.event_viewed', 'interaction', '{coliseum}',"
			   "         '{\"eventId\": \"e0000000-0000-4000-8000-000000000001\"}'),"
			   "        (gen_random_uuid(), 'concierto.event_viewed', 'interaction', '{coliseum}',"
			   "         '{\"eventId\": \"e0000000-0000-4000-8000-000000000002\"}')");
	ASSERT_EQ_INT(fault_drain(daemon_dsn, NULL), 3);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics"), 3);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics"
					     " WHERE event_id = 'e0000000-0000-4000-8000-000000000001'"),
		     1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"), 0);
	PQfinish(conn);
	printf("ok: upstream's row level security and policy on passport_entries are kept\n");
}

int main(void)
{
	char dsn[FAULT_DSN_MAX];
	PGconn *conn;

	fault_begin("supabase");
	fault_server_start(&server, NULL);
	fault_server_use(&server);
	make_supabase_shaped();

	conn = fault_create_database("supabase", dsn, NULL);
	harness_exec(conn, "SELECT passport_test_workload(10, 10)");
	harness_exec(conn, "INSERT INTO passport_backfill_progress (legacy_source, window_key) VALUES ('x', 'y')");
	harness_exec(conn, "INSERT INTO entity_dna (entity_type, entity_id) VALUES ('event', gen_random_uuid())");
	ASSERT_TRUE(harness_query_int(conn, "SELECT count(*) FROM passport_schema_migrations") > 0);
	check_project_roles_work(conn, dsn);
	check_closed_to_api_roles(conn);
	PQfinish(conn);

	check_upstream_policy_kept();
	fault_passed();
	TEST_PASS();
}
