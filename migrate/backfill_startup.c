/*
 * backfill_startup: what backfill reads from the database before its first batch: the catalog
 * facts its statements depend on, the --since/--until window checked by the server's own
 * parser, and whether passportd is connected.
 */
#include "backfill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int backfill_read_database_facts(PGconn *conn, struct database_facts *facts)
{
	struct db_error error;
	PGresult *result = db_query(conn,
				  "SELECT to_regclass('passport_entries') IS NOT NULL,\n"
				  "       (SELECT count(*) FROM pg_attribute\n"
				  "         WHERE attrelid = to_regclass('passport_entries') AND NOT attisdropped\n"
				  "           AND attname IN ('legacy_source', 'legacy_id')) = 2,\n"
				  "       to_regclass('passport_backfill_progress') IS NOT NULL,\n"
				  "       (SELECT count(*) FROM pg_attribute\n"
				  "         WHERE attrelid = to_regclass('passport_backfill_progress') AND NOT attisdropped\n"
				  "           AND attname IN ('slice_start', 'slice_end')) = 2,\n"
				  "       to_regclass('passport_backfill_progress') IS NOT NULL\n"
				  "         AND has_table_privilege('passport_backfill_progress', 'SELECT')\n"
				  "         AND has_table_privilege('passport_backfill_progress', 'INSERT')\n"
				  "         AND has_table_privilege('passport_backfill_progress', 'UPDATE'),\n"
				  "       to_regclass('media_ids') IS NOT NULL,\n"
				  "       EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('media_ids')\n"
				  "                  AND attname = 'role' AND NOT attisdropped)",
				  0, NULL, NULL, NULL, 0, &error);

	if (!result) {
		migrate_error("backfill: reading the catalog: %s", error.message);
		return -1;
	}
	if (strcmp(PQgetvalue(result, 0, 0), "t") != 0 || strcmp(PQgetvalue(result, 0, 1), "t") != 0) {
		migrate_error("backfill: passport_entries or its legacy_source/legacy_id columns are missing");
		fprintf(stderr, "  hint: run `" MIGRATE_PROGRAM " schema` first\n");
		PQclear(result);
		return -1;
	}
	facts->progress_table_exists = strcmp(PQgetvalue(result, 0, 2), "t") == 0;
	facts->progress_table_sliced = strcmp(PQgetvalue(result, 0, 3), "t") == 0;
	facts->has_progress_table = facts->progress_table_sliced && strcmp(PQgetvalue(result, 0, 4), "t") == 0;
	facts->has_media_ids = strcmp(PQgetvalue(result, 0, 5), "t") == 0;
	facts->media_ids_has_role = strcmp(PQgetvalue(result, 0, 6), "t") == 0;
	PQclear(result);

	/* A single-column foreign key on passport_entries.user_id, as production has to auth.users. */
	result = db_query(conn,
			"SELECT format('%I.%I', n.nspname, c.relname), quote_ident(a.attname),\n"
			"       has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')\n"
			"  FROM pg_constraint k\n"
			"  JOIN pg_class c ON c.oid = k.confrelid\n"
			"  JOIN pg_namespace n ON n.oid = c.relnamespace\n"
			"  JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = k.confkey[1]\n"
			"  JOIN pg_attribute u ON u.attrelid = k.conrelid AND u.attnum = k.conkey[1]\n"
			" WHERE k.conrelid = to_regclass('passport_entries') AND k.contype = 'f'\n"
			"   AND cardinality(k.conkey) = 1 AND u.attname = 'user_id'\n"
			" LIMIT 1",
			0, NULL, NULL, NULL, 0, &error);
	if (!result) {
		migrate_error("backfill: reading foreign keys: %s", error.message);
		return -1;
	}
	if (PQntuples(result) == 1) {
		snprintf(facts->user_reference_relation, sizeof facts->user_reference_relation, "%s",
			 PQgetvalue(result, 0, 0));
		snprintf(facts->user_reference_column, sizeof facts->user_reference_column, "%s",
			 PQgetvalue(result, 0, 1));
		facts->user_reference_readable = strcmp(PQgetvalue(result, 0, 2), "t") == 0;
	}
	PQclear(result);
	return 0;
}

int backfill_check_window(PGconn *conn, const struct backfill_options *options, char *since, char *until,
			  size_t size, char *window_key, size_t key_size)
{
	const char *params[2] = {options->since, options->until};
	struct db_error error;
	PGresult *result;

	/* A time without an offset is UTC: the transaction's TimeZone (never the session's). */
	if (migrate_begin(conn, true, MIGRATE_TRANSACTION_SETTINGS_SQL, &error) < 0) {
		migrate_error("backfill: %s", error.message);
		return -1;
	}
	result = db_query(conn,
			  "SELECT to_char($1::timestamptz, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
			  "       to_char($2::timestamptz, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
			  "       $1::timestamptz < $2::timestamptz",
			  2, params, NULL, NULL, 0, &error);
	if (!result) {
		db_rollback(conn);
		migrate_error("backfill: bad --since or --until: %s", error.message);
		return -1;
	}
	if (migrate_commit(conn, &error) < 0) {
		PQclear(result);
		migrate_error("backfill: %s", error.message);
		return -1;
	}
	snprintf(since, size, "%s", PQgetvalue(result, 0, 0));
	snprintf(until, size, "%s", PQgetvalue(result, 0, 1));
	if (!PQgetisnull(result, 0, 2) && strcmp(PQgetvalue(result, 0, 2), "t") != 0) {
		migrate_error("backfill: --since (%s) must be before --until (%s)", since, until);
		PQclear(result);
		return -1;
	}
	PQclear(result);
	snprintf(window_key, key_size, "%s..%s", since, until);
	return 0;
}

/* Entries passportd processes while history is still arriving are applied as late entries. */
void backfill_warn_about_running_daemons(PGconn *conn, const struct backfill_options *options)
{
	struct db_error ignored; /* a warning that cannot be checked is not given */
	PGresult *result;
	long long daemons;

	if (options->dry_run || options->mark_processed)
		return;
	result = db_query(conn,
			  "SELECT count(*) FROM pg_stat_activity"
			  " WHERE datname = current_database() AND application_name LIKE 'passportd%'",
			  0, NULL, NULL, NULL, 0, &ignored);
	if (result && (daemons = atoll(PQgetvalue(result, 0, 0))) > 0)
		migrate_error("backfill: warning: %lld passportd connection(s) are open; entries they process "
			      "before the backfill ends are applied as late entries. Stop passportd during the "
			      "backfill for an exact event-time replay.",
			      daemons);
	PQclear(result);
}

