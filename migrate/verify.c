/* verify: `passport-migrate verify` checks that every legacy row has its backfilled entry. */
#include "legacy.h"
#include "migrate.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERIFY_MISSING_SAMPLE 10

/*
 * Per source: the legacy rows (within --since/--until when given, by the same event time
 * backfill uses), how many of them have an entry with their (legacy_source, legacy_id), and the
 * first VERIFY_MISSING_SAMPLE ids (in id order) of those that do not. Both queries are a single
 * pass joining on the unique (legacy_source, legacy_id) index. The session is read-only.
 *
 * Entries whose legacy row has since been deleted ("orphaned") are counted when no window is
 * given; they are reported, not treated as a mismatch: the legacy log lost a row, the copy did not.
 */

enum verify_status {
	VERIFY_COMPLETE,
	VERIFY_MISMATCH,
	VERIFY_MISSING_TABLE,
	VERIFY_FAILED,
};

static const char *const verify_status_names[] = {
	[VERIFY_COMPLETE] = "complete",
	[VERIFY_MISMATCH] = "mismatch",
	[VERIFY_MISSING_TABLE] = "missing",
	[VERIFY_FAILED] = "failed",
};

struct verify_result {
	enum legacy_source source;
	enum verify_status status;
	char layout[16];
	long long legacy_rows;
	long long backfilled;
	long long orphaned; /* -1 when not counted (a window was given) */
	char missing_ids[VERIFY_MISSING_SAMPLE][128];
	int missing_id_count;
	char error[1024];
};

static void verify_usage(FILE *out)
{
	fputs("Usage: " MIGRATE_PROGRAM " verify [OPTIONS]\n"
	      "\n"
	      "For each legacy log, count its rows and the passport_entries backfilled from them, and\n"
	      "list up to 10 ids of legacy rows without an entry. Reads only.\n"
	      "\n"
	      "Options:\n"
	      "      --source SOURCE   listening_history, media_engagement_log or all (default all)\n"
	      "      --since TIME      only legacy rows with events at or after TIME (UTC unless it\n"
	      "                        names a zone)\n"
	      "      --until TIME      only legacy rows with events before TIME\n"
	      "      --json            print the result as one JSON object on stdout\n"
	      "      --dsn DSN         connection string (default: $PASSPORT_DATABASE_URL, then the\n"
	      "                        PG* environment variables)\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "Exit status: 0 every legacy row is backfilled (a missing legacy table is reported and\n"
	      "skipped), 1 some are missing or the check failed, 2 a usage error.\n",
	      out);
}

static int verify_source(PGconn *conn, const struct legacy_table *table, const char *since, const char *until,
			 struct verify_result *result)
{
	const char *params[3] = {since, until, legacy_source_name(table->source)};
	struct strbuf sql = {0};
	char *counts_sql, *missing_sql;
	struct db_error error;
	PGresult *res;
	int rc = -1;

	strbuf_printf(&sql,
			   "SELECT count(*), count(pe.legacy_id)\n"
			   "  FROM %s AS legacy\n"
			   "  LEFT JOIN passport_entries AS pe ON pe.legacy_source = $3 AND pe.legacy_id = legacy.id::text\n"
			   " WHERE ($1::timestamptz IS NULL OR %s >= $1::timestamptz)\n"
			   "   AND ($2::timestamptz IS NULL OR %s < $2::timestamptz)",
			   table->relation, table->time_expr, table->time_expr);
	counts_sql = strbuf_take(&sql);
	strbuf_printf(&sql,
			   "SELECT legacy.id::text\n"
			   "  FROM %s AS legacy\n"
			   " WHERE ($1::timestamptz IS NULL OR %s >= $1::timestamptz)\n"
			   "   AND ($2::timestamptz IS NULL OR %s < $2::timestamptz)\n"
			   "   AND NOT EXISTS (SELECT 1 FROM passport_entries AS pe\n"
			   "                    WHERE pe.legacy_source = $3 AND pe.legacy_id = legacy.id::text)\n"
			   " ORDER BY legacy.id\n"
			   " LIMIT %d",
			   table->relation, table->time_expr, table->time_expr, VERIFY_MISSING_SAMPLE);
	missing_sql = strbuf_take(&sql);
	if (!counts_sql || !missing_sql) {
		snprintf(result->error, sizeof result->error, "out of memory");
		goto out;
	}

	res = db_query(conn, counts_sql, 3, params, NULL, NULL, 0, &error);
	if (!res) {
		db_error_prefix(&error, "counting");
		snprintf(result->error, sizeof result->error, "%s", error.message);
		goto out;
	}
	result->legacy_rows = atoll(PQgetvalue(res, 0, 0));
	result->backfilled = atoll(PQgetvalue(res, 0, 1));
	PQclear(res);

	if (result->backfilled < result->legacy_rows) {
		res = db_query(conn, missing_sql, 3, params, NULL, NULL, 0, &error);
		if (!res) {
			db_error_prefix(&error, "listing missing ids");
			snprintf(result->error, sizeof result->error, "%s", error.message);
			goto out;
		}
		for (int row = 0; row < PQntuples(res) && row < VERIFY_MISSING_SAMPLE; row++)
			snprintf(result->missing_ids[result->missing_id_count++], sizeof result->missing_ids[0], "%s",
				 PQgetvalue(res, row, 0));
		PQclear(res);
	}

	result->orphaned = -1;
	if (!since && !until) {
		/* Not counted when the query fails: orphans are reported, never a reason to fail. */
		res = db_query(conn, "SELECT count(*) FROM passport_entries WHERE legacy_source = $3", 3, params, NULL,
			       NULL, 0, &error);
		if (res)
			result->orphaned = atoll(PQgetvalue(res, 0, 0)) - result->backfilled;
		PQclear(res);
	}
	result->status = result->backfilled == result->legacy_rows ? VERIFY_COMPLETE : VERIFY_MISMATCH;
	rc = 0;
out:
	free(counts_sql);
	free(missing_sql);
	return rc;
}

static void print_text(const struct verify_result *results, size_t count, bool ok)
{
	char a[32], b[32], c[32];

	for (size_t i = 0; i < count; i++) {
		const struct verify_result *r = &results[i];
		const char *name = legacy_source_name(r->source);

		switch (r->status) {
		case VERIFY_MISSING_TABLE:
			printf("verify: %s: table not found, skipped\n", name);
			continue;
		case VERIFY_FAILED:
			printf("verify: %s: failed: %s\n", name, r->error);
			continue;
		default:
			break;
		}
		printf("verify: %s (%s layout): %s legacy rows, %s backfilled, %s missing%s\n", name, r->layout,
		       format_count(r->legacy_rows, a, sizeof a), format_count(r->backfilled, b, sizeof b),
		       format_count(r->legacy_rows - r->backfilled, c, sizeof c),
		       r->status == VERIFY_COMPLETE ? "" : "  <-- MISMATCH");
		if (r->missing_id_count > 0) {
			printf("  missing ids (first %d):\n", r->missing_id_count);
			for (int m = 0; m < r->missing_id_count; m++)
				printf("    %s\n", r->missing_ids[m]);
		}
		if (r->orphaned > 0)
			printf("  %s backfilled entries whose legacy row no longer exists (not a mismatch)\n",
			       format_count(r->orphaned, a, sizeof a));
	}
	for (size_t i = 0; i < count; i++)
		if (results[i].status == VERIFY_FAILED)
			ok = false;
	if (ok)
		printf("verify: complete: every legacy row has its entry\n");
	else
		printf("verify: MISMATCH or failure: run `" MIGRATE_PROGRAM " backfill` again, then verify\n");
}

static void print_json(const struct verify_result *results, size_t count, bool ok)
{
	bool failed = false;
	cJSON *root = cJSON_CreateObject(), *sources;
	char *text;

	if (!root)
		return;
	cJSON_AddStringToObject(root, "command", "verify");
	for (size_t i = 0; i < count; i++)
		failed = failed || results[i].status == VERIFY_FAILED;
	cJSON_AddStringToObject(root, "status", ok ? "complete" : failed ? "failed" : "mismatch");
	sources = cJSON_AddArrayToObject(root, "sources");
	for (size_t i = 0; i < count; i++) {
		const struct verify_result *r = &results[i];
		cJSON *item = cJSON_CreateObject(), *ids;

		if (!item)
			continue;
		cJSON_AddItemToArray(sources, item);
		cJSON_AddStringToObject(item, "source", legacy_source_name(r->source));
		cJSON_AddStringToObject(item, "status", verify_status_names[r->status]);
		cJSON_AddStringToObject(item, "layout", r->layout);
		cJSON_AddNumberToObject(item, "legacy_rows", (double)r->legacy_rows);
		cJSON_AddNumberToObject(item, "backfilled", (double)r->backfilled);
		cJSON_AddNumberToObject(item, "missing", (double)(r->legacy_rows - r->backfilled));
		ids = cJSON_AddArrayToObject(item, "missing_ids");
		for (int m = 0; m < r->missing_id_count; m++)
			cJSON_AddItemToArray(ids, cJSON_CreateString(r->missing_ids[m]));
		if (r->orphaned >= 0)
			cJSON_AddNumberToObject(item, "orphaned", (double)r->orphaned);
		else
			cJSON_AddNullToObject(item, "orphaned");
		if (r->error[0])
			cJSON_AddStringToObject(item, "error", r->error);
		else
			cJSON_AddNullToObject(item, "error");
	}
	text = cJSON_PrintUnformatted(root);
	if (text)
		printf("%s\n", text);
	free(text);
	cJSON_Delete(root);
}

int verify_main(struct migrate_globals *globals, int argc, char **argv)
{
	enum { OPT_SOURCE = 256, OPT_SINCE, OPT_UNTIL, OPT_JSON, OPT_DSN };
	static const struct option options[] = {
		{"source", required_argument, NULL, OPT_SOURCE},
		{"since", required_argument, NULL, OPT_SINCE},
		{"until", required_argument, NULL, OPT_UNTIL},
		{"json", no_argument, NULL, OPT_JSON},
		{"dsn", required_argument, NULL, OPT_DSN},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned sources = legacy_sources_parse("all");
	const char *since = NULL, *until = NULL;
	struct verify_result results[LEGACY_SOURCE_COUNT];
	size_t count = 0;
	bool json = false, ok = true;
	struct db_error error;
	PGresult *res;
	PGconn *conn;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case OPT_SOURCE:
			sources = legacy_sources_parse(optarg);
			if (!sources) {
				migrate_error("verify: --source must be listening_history, media_engagement_log or all");
				verify_usage(stderr);
				return MIGRATE_EXIT_USAGE;
			}
			break;
		case OPT_SINCE:
			since = optarg;
			break;
		case OPT_UNTIL:
			until = optarg;
			break;
		case OPT_JSON:
			json = true;
			break;
		case OPT_DSN:
			if (migrate_take_dsn(globals, optarg) < 0)
				return MIGRATE_EXIT_FAILURE;
			break;
		case 'h':
			verify_usage(stdout);
			return MIGRATE_EXIT_OK;
		default:
			verify_usage(stderr);
			return MIGRATE_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		migrate_error("verify: unexpected argument '%s'", argv[optind]);
		verify_usage(stderr);
		return MIGRATE_EXIT_USAGE;
	}

	conn = migrate_connect(globals);
	if (!conn)
		return MIGRATE_EXIT_FAILURE;
	/*
	 * Every step runs in a read-only transaction of its own with the settings local to it (UTC,
	 * lock_timeout): nothing is set on the session, which a transaction pooler would hand on.
	 */
	if (migrate_begin(conn, true, MIGRATE_TRANSACTION_SETTINGS_SQL, &error) < 0) {
		migrate_error("verify: %s", error.message);
		PQfinish(conn);
		return MIGRATE_EXIT_FAILURE;
	}
	{
		const char *params[2] = {since, until};

		res = db_query(conn, "SELECT $1::timestamptz, $2::timestamptz", 2, params, NULL, NULL, 0, &error);
		if (!res) {
			migrate_error("verify: bad --since or --until: %s", error.message);
			PQfinish(conn);
			return MIGRATE_EXIT_USAGE;
		}
		PQclear(res);
	}
	{
		bool ready = false;

		/* A failed query counts as missing columns, as it always has: the hint is the likely cure. */
		if (db_query_bool(conn,
				  "SELECT to_regclass('passport_entries') IS NOT NULL AND EXISTS (SELECT 1 FROM pg_attribute"
				  " WHERE attrelid = to_regclass('passport_entries') AND attname = 'legacy_id'"
				  " AND NOT attisdropped)",
				  &ready, &error) < 0 ||
		    !ready) {
			migrate_error("verify: passport_entries or its legacy columns are missing");
			fprintf(stderr, "  hint: run `" MIGRATE_PROGRAM " schema` first\n");
			PQfinish(conn);
			return MIGRATE_EXIT_FAILURE;
		}
	}

	memset(results, 0, sizeof results);
	for (unsigned source = 0; source < LEGACY_SOURCE_COUNT; source++) {
		struct verify_result *r;
		struct legacy_table table;

		if (!(sources & (1u << source)))
			continue;
		r = &results[count++];
		r->source = (enum legacy_source)source;
		r->orphaned = -1;
		/* One transaction per source: a failed query of one source does not abort the next. */
		db_rollback(conn);
		if (migrate_begin(conn, true, MIGRATE_TRANSACTION_SETTINGS_SQL, &error) < 0) {
			snprintf(r->error, sizeof r->error, "%s", error.message);
			r->status = VERIFY_FAILED;
			ok = false;
			continue;
		}
		if (legacy_table_inspect(conn, r->source, false, &table, &error) < 0) {
			snprintf(r->error, sizeof r->error, "%s", error.message);
			r->status = VERIFY_FAILED;
			ok = false;
			continue;
		}
		snprintf(r->layout, sizeof r->layout, "%s", legacy_table_layout_name(&table));
		if (!table.exists) {
			r->status = VERIFY_MISSING_TABLE;
		} else if (table.problem[0]) {
			snprintf(r->error, sizeof r->error, "%s cannot be read: %s", table.relation, table.problem);
			r->status = VERIFY_FAILED;
		} else if (verify_source(conn, &table, since, until, r) < 0) {
			r->status = VERIFY_FAILED;
		}
		if (r->status == VERIFY_MISMATCH || r->status == VERIFY_FAILED)
			ok = false;
		legacy_table_finish(&table);
	}
	db_rollback(conn); /* read only: nothing to commit */
	PQfinish(conn);

	if (json)
		print_json(results, count, ok);
	else
		print_text(results, count, ok);
	return ok ? MIGRATE_EXIT_OK : MIGRATE_EXIT_FAILURE;
}
