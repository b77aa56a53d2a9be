/* backfill_sql: the statements of backfill, built from a legacy table's description. */
#include "backfill.h"
#include "tables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameter types of the batch statements (pg_type oids). */
#define TEXT_OID 25
#define BOOL_OID 16
#define INT4_OID 23
#define TIMESTAMPTZ_OID 1184
#define JSONB_OID 3802

const Oid batch_param_types[PARAM_COUNT] = {
	[PARAM_CURSOR] = TEXT_OID,
	[PARAM_FROM_START] = BOOL_OID,
	[PARAM_LIMIT] = INT4_OID,
	[PARAM_SINCE] = TIMESTAMPTZ_OID,
	[PARAM_UNTIL] = TIMESTAMPTZ_OID,
	[PARAM_TYPE_MAP] = JSONB_OID,
	[PARAM_ROUTES] = JSONB_OID,
	[PARAM_DEFAULT_CATEGORY] = TEXT_OID,
	[PARAM_FALLBACK_PREFIX] = TEXT_OID,
	[PARAM_MARK_PROCESSED] = BOOL_OID,
	[PARAM_WINDOW_KEY] = TEXT_OID,
	[PARAM_SLICE_END] = TEXT_OID,
	[PARAM_SLICE_START] = TEXT_OID,
};

/*
 * The rows of the next batch. "scanned" is the next batch_size legacy rows in id order after the
 * cursor, up to the slice's end ($12, NULL for the table's end): the keyset condition
 * "($2 OR id > $1) AND ($12 IS NULL OR id <= $12)" is planned with the values bound (libpq's
 * unnamed statements get a custom plan each time), so it is a plain range scan of the primary
 * key, and every batch costs the same however far the run is. "batch" is the part of it inside the
 * --since/--until window.
 *
 * Why the window is applied after the LIMIT rather than before: filtered first, a narrow window
 * would make each batch walk (or the planner seq-scan) far past its rows to find batch_size
 * matches, once per batch. Applied after, the cursor moves batch_size ids per batch and the
 * whole run reads the table exactly once, whatever the window.
 *
 * The sample of a dry run wants the first rows of the window instead (filter_first). The write
 * and count statements read their rows with append_missing_rows (below), which applies the same
 * keyset and window but reads only the rows that have no entry yet.
 */
static void append_batch_rows(struct strbuf *sql, const struct legacy_table *t, bool filter_first)
{
	strbuf_printf(sql,
			   "WITH scanned AS MATERIALIZED (\n"
			   "    SELECT legacy.id AS legacy_key,\n"
			   "           %s AS raw_user_id,\n"
			   "           %s AS event_time,\n"
			   "           %s AS legacy_type,\n"
			   "           %s AS session_id,\n"
			   "           %s AS base_payload\n"
			   "      FROM %s AS legacy\n"
			   "     WHERE ($2 OR legacy.id > $1::%s) AND ($12 IS NULL OR legacy.id <= $12::%s)\n",
			   t->user_expr, t->time_expr, t->type_expr, t->session_expr, t->payload_expr,
			   t->relation, t->id_type, t->id_type);
	if (filter_first)
		strbuf_printf(sql,
				   "       AND ($4 IS NULL OR %s >= $4) AND ($5 IS NULL OR %s < $5)\n",
				   t->time_expr, t->time_expr);
	strbuf_add_str(sql,
			   "     ORDER BY legacy.id\n"
			   "     LIMIT $3\n"
			   "),\n"
			   "batch AS MATERIALIZED (\n"
			   "    SELECT * FROM scanned\n"
			   "     WHERE coalesce(($4 IS NULL OR event_time >= $4) AND ($5 IS NULL OR event_time < $5), false)\n"
			   ")");
}

/*
 * The rows of the next batch for the write and count statements, in three steps:
 *
 * "scanned": the next batch_size legacy ids after the cursor, ids only, so without a window it is
 * an index-only scan of the primary key (the heap is not read); with --since/--until the time
 * column is read too ("in_window", applied after the LIMIT for the reason given above).
 *
 * "missing": the scanned ids in the window that have no entry yet. The entries of the batch's
 * key range (the least to the greatest of the scanned ids' texts, in the column's collation) are
 * read in one walk of the unique (legacy_source, legacy_id) index into a hash (a hashed NOT IN:
 * one index descent per batch, not one per id), and each scanned id is looked up in it. A re-run
 * with nothing new stops here: no legacy row is read, nothing is mapped. The walk reads at most
 * batch_size entries (LIMIT $3, which also keeps the planner's estimate small enough to hash).
 * The LIMIT could only cut a range crowded with entries whose legacy rows are gone, and what it
 * cuts off makes an id look missing, never the reverse: that id's insert meets the unique index,
 * and the batch is retried with ON CONFLICT DO NOTHING (see build_write_sql). Nothing is
 * duplicated either way.
 *
 * "batch": the legacy rows of the missing ids; only these are mapped and inserted. When every
 * scanned id is missing (a fresh run: nearly every batch), they are the scanned range itself,
 * read again in one walk of the primary key with the rows (the first branch: its count
 * condition is a one-time filter, so the other branch is not run at all). Otherwise each
 * missing row is fetched by its primary key (the LATERAL subquery with OFFSET 0 keeps that a
 * per-id index lookup, never a scan of the legacy table). The range costs one index descent
 * per batch instead of one per row; the statement's snapshot makes it the same ids as scanned.
 */
static void append_missing_rows(struct strbuf *sql, const struct legacy_table *t, bool windowed)
{
	const char *source = legacy_source_name(t->source);
	char *columns = sql_printf("legacy.id AS legacy_key, %s AS raw_user_id, %s AS event_time, %s AS legacy_type,"
				   " %s AS session_id, %s AS base_payload",
				   t->user_expr, t->time_expr, t->type_expr, t->session_expr, t->payload_expr);

	if (!columns) {
		sql->failed = true;
		return;
	}

	strbuf_add_str(sql, "WITH scanned AS MATERIALIZED (\n"
				"    SELECT legacy.id AS legacy_key,\n");
	if (windowed)
		strbuf_printf(sql,
				   "           coalesce(($4 IS NULL OR %s >= $4) AND ($5 IS NULL OR %s < $5), false)"
				   " AS in_window\n",
				   t->time_expr, t->time_expr);
	else
		strbuf_add_str(sql, "           true AS in_window\n");
	strbuf_printf(sql,
			   "      FROM %s AS legacy\n"
			   "     WHERE ($2 OR legacy.id > $1::%s) AND ($12 IS NULL OR legacy.id <= $12::%s)\n"
			   "     ORDER BY legacy.id\n"
			   "     LIMIT $3\n"
			   "),\n"
			   "missing AS MATERIALIZED (\n"
			   "    SELECT s.legacy_key FROM scanned AS s\n"
			   "     WHERE s.in_window\n"
			   "       AND s.legacy_key::text NOT IN (\n"
			   "           SELECT pe.legacy_id FROM passport_entries AS pe\n"
			   "            WHERE pe.legacy_source = '%s'\n"
			   "              AND pe.legacy_id >= (SELECT min(f.legacy_key::text) FROM scanned AS f)\n"
			   "              AND pe.legacy_id <= (SELECT max(l.legacy_key::text) FROM scanned AS l)\n"
			   "            LIMIT $3)\n"
			   "),\n"
			   "batch AS MATERIALIZED (\n"
			   "    (SELECT %s\n"
			   "       FROM %s AS legacy\n"
			   "      WHERE (SELECT count(*) FROM missing) = (SELECT count(*) FROM scanned)\n"
			   "        AND ($2 OR legacy.id > $1::%s) AND ($12 IS NULL OR legacy.id <= $12::%s)\n"
			   "      ORDER BY legacy.id\n"
			   "      LIMIT $3)\n"
			   "    UNION ALL\n"
			   "    SELECT r.* FROM missing AS m\n"
			   "     CROSS JOIN LATERAL (\n"
			   "        SELECT %s\n"
			   "          FROM %s AS legacy\n"
			   "         WHERE legacy.id = m.legacy_key\n"
			   "        OFFSET 0\n"
			   "     ) AS r\n"
			   "     WHERE (SELECT count(*) FROM missing) <> (SELECT count(*) FROM scanned)\n"
			   ")",
			   t->relation, t->id_type, t->id_type, source, columns, t->relation, t->id_type, t->id_type, columns,
			   t->relation);
	free(columns);
}

/*
 * From the batch to the entries as they will be inserted.
 *
 * mediaid_id "when unambiguous" (SPEC §3's rule for choosing a DNA row, applied once here): the
 * user's only media_ids row, or its one fan row when it has several; otherwise NULL and passportd
 * decides at processing time.
 *
 * Anonymous rows (no user) keep their systems minus mediaid: there is no DNA to update. Where
 * passport_entries.user_id has a foreign key (production: auth.users), a legacy user that no
 * longer exists would fail the whole batch; such rows are kept as anonymous with the original
 * id in payload.legacy_user_id and counted as unknown users.
 *
 * Routes come from lib/tables.c (appendix B) as a parameter, so the server applies exactly the
 * table passportd uses.
 */
static void append_entries(struct strbuf *sql, const struct database_facts *facts)
{
	if (facts->user_reference_readable)
		strbuf_printf(sql,
				   ",\nknown_users AS (\n"
				   "    SELECT DISTINCT r.%s AS user_id FROM %s AS r\n"
				   "     WHERE r.%s IN (SELECT raw_user_id FROM batch)\n"
				   ")",
				   facts->user_reference_column, facts->user_reference_relation,
				   facts->user_reference_column);
	if (facts->has_media_ids) {
		strbuf_add_str(sql,
				   ",\nowners AS (\n"
				   "    SELECT mi.user_uuid AS user_id,\n"
				   "           CASE WHEN count(*) = 1 THEN (array_agg(mi.id))[1]\n");
		if (facts->media_ids_has_role)
			strbuf_add_str(sql,
					   "                WHEN count(*) FILTER (WHERE mi.role::text = 'fan') = 1\n"
					   "                THEN (array_agg(mi.id) FILTER (WHERE mi.role::text = 'fan'))[1]\n");
		strbuf_add_str(sql,
				   "           END AS mediaid_id\n"
				   "      FROM media_ids AS mi\n"
				   "     WHERE mi.user_uuid IN (SELECT raw_user_id FROM batch)\n"
				   "     GROUP BY mi.user_uuid\n"
				   ")");
	} else {
		strbuf_add_str(sql, ",\nowners AS (SELECT NULL::uuid AS user_id, NULL::uuid AS mediaid_id)");
	}
	strbuf_printf(sql,
			   ",\nmapped AS (\n"
			   "    SELECT b.*,\n"
			   "           %s AS user_id,\n"
			   "           coalesce(known.event_type,\n"
			   "                    CASE WHEN coalesce(b.legacy_type, '') = '' THEN 'legacy.unknown'\n"
			   "                         ELSE $9 || b.legacy_type END) AS event_type,\n"
			   "           known.event_type IS NULL AS unmapped\n"
			   "      FROM batch AS b\n"
			   "      LEFT JOIN jsonb_to_recordset($6) AS known(legacy_type text, event_type text)\n"
			   "        ON known.legacy_type = b.legacy_type\n"
			   "),\n"
			   "entries AS (\n"
			   "    SELECT m.legacy_key::text AS legacy_id,\n"
			   "           m.user_id,\n"
			   "           owner.mediaid_id,\n"
			   "           m.event_type,\n"
			   "           coalesce(route.category, $8) AS event_category,\n"
			   "           CASE WHEN m.user_id IS NULL AND m.raw_user_id IS NOT NULL\n"
			   "                THEN m.base_payload || jsonb_build_object('legacy_user_id', m.raw_user_id)\n"
			   "                ELSE m.base_payload END AS payload,\n"
			   "           CASE WHEN m.user_id IS NULL\n"
			   "                THEN array_remove(coalesce(route.systems, '{}'::text[]), 'mediaid')\n"
			   "                ELSE coalesce(route.systems, '{}'::text[]) END AS affects_systems,\n"
			   "           m.session_id,\n"
			   "           m.event_time,\n"
			   "           m.legacy_type,\n"
			   "           m.unmapped,\n"
			   "           m.raw_user_id\n"
			   "      FROM mapped AS m\n"
			   "      LEFT JOIN jsonb_to_recordset($7) AS route(event_type text, category text, systems text[])\n"
			   "        ON route.event_type = m.event_type\n"
			   "      LEFT JOIN owners AS owner ON owner.user_id = m.user_id\n"
			   ")",
			   facts->user_reference_readable
				   ? "CASE WHEN b.raw_user_id IN (SELECT user_id FROM known_users) THEN b.raw_user_id END"
				   : "b.raw_user_id");
}

/*
 * The write statement: insert, record progress, report. The slice's progress row is written in
 * the same statement, hence the same transaction, as the entries it describes (the run's rows
 * were written before its first batch: backfill_plan_slices); a batch shorter than the limit
 * means the scan reached the slice's end, and completes it.
 *
 * The INSERT is a plain one: "missing" already left out every row that has an entry, and ON
 * CONFLICT's speculative insertion costs about 15 % more per row (an extra heap WAL record and
 * index probe each). The unique index still guards idempotence: should another writer insert one
 * of these keys between the check and the insert (a backfill outside the advisory lock), the
 * batch fails with a unique violation and is retried at once with ON CONFLICT DO NOTHING
 * (on_conflict), which then serves the rest of the run.
 *
 * The entries get time-ordered ids (the UUIDv7 layout: the batch's milliseconds since 1970 in
 * the first 48 bits, version 7, then gen_random_uuid()'s random bits and variant) instead of
 * the column's random default: a batch's rows then go to the right edge of the primary key,
 * where its pages are already in memory, instead of to thousands of random leaf pages, each
 * written again in full to the WAL after every checkpoint. All rows of a batch share its
 * prefix; the random bits keep them unique.
 */
static char *build_write_sql(const struct legacy_table *t, const struct database_facts *facts, bool windowed,
			     bool on_conflict)
{
	struct strbuf sql = {0};
	const char *source = legacy_source_name(t->source);

	append_missing_rows(&sql, t, windowed);
	append_entries(&sql, facts);
	strbuf_printf(&sql,
			   ",\nid_prefix AS (\n"
			   "    SELECT substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) AS bytes\n"
			   "),\n"
			   "written AS (\n"
			   "    INSERT INTO passport_entries (id, user_id, mediaid_id, event_type, event_category, payload,\n"
			   "                                  affects_systems, processed, processed_at, source, session_id,\n"
			   "                                  \"timestamp\", legacy_source, legacy_id)\n"
			   "    SELECT encode(set_byte((SELECT bytes FROM id_prefix) || substring(uuid_send(gen_random_uuid()) FROM 7),\n"
			   "                           6, 112 + floor(random() * 16)::int), 'hex')::uuid,\n"
			   "           e.user_id, e.mediaid_id, e.event_type, e.event_category, e.payload,\n"
			   "           e.affects_systems, $10, CASE WHEN $10 THEN now() END, 'backfill', e.session_id,\n"
			   "           e.event_time, '%s', e.legacy_id\n"
			   "      FROM entries AS e\n"
			   "%s"
			   "    RETURNING 1\n"
			   ")",
			   source, on_conflict ? "    ON CONFLICT (legacy_source, legacy_id) DO NOTHING\n" : "");
	if (facts->has_progress_table)
		strbuf_printf(&sql,
				   ",\nprogress AS (\n"
				   "    INSERT INTO passport_backfill_progress AS p\n"
				   "           (legacy_source, window_key, slice_start, slice_end, last_id, rows_seen, started_at,\n"
				   "            updated_at, completed_at)\n"
				   "    VALUES ('%s', $11, $13, $12,\n"
				   "            (SELECT s.legacy_key FROM scanned AS s ORDER BY s.legacy_key DESC LIMIT 1)::text,\n"
				   "            (SELECT count(*) FROM scanned), now(), now(),\n"
				   "            CASE WHEN (SELECT count(*) FROM scanned) < $3 THEN now() END)\n"
				   "    ON CONFLICT (legacy_source, window_key, slice_start) DO UPDATE\n"
				   "       SET last_id = coalesce(EXCLUDED.last_id, p.last_id),\n"
				   "           rows_seen = p.rows_seen + EXCLUDED.rows_seen,\n"
				   "           updated_at = now(),\n"
				   "           completed_at = EXCLUDED.completed_at\n"
				   "    RETURNING 1\n"
				   ")",
				   source);
	return strbuf_take(&sql);
}

/* The dry run's statement: the same batch and mapping, counting the rows not yet copied. */
static char *build_count_sql(const struct legacy_table *t, const struct database_facts *facts, bool windowed)
{
	struct strbuf sql = {0};

	append_missing_rows(&sql, t, windowed);
	append_entries(&sql, facts);
	strbuf_add_str(&sql, ",\nwritten AS (SELECT 1 FROM entries)");
	return strbuf_take(&sql);
}

/*
 * Both statements end alike: one 'batch' row, then one row per unmapped (legacy, new) type. The
 * counts of anonymous rows, unknown users and unmapped types are of the rows the batch inserts
 * (would insert, in a dry run): rows already present are neither read nor mapped again.
 */
static char *finish_batch_sql(char *head)
{
	struct strbuf sql = {0};

	if (!head)
		return NULL;
	strbuf_printf(&sql,
			   "%s\n"
			   "SELECT 'batch' AS kind,\n"
			   "       (SELECT s.legacy_key FROM scanned AS s ORDER BY s.legacy_key DESC LIMIT 1)::text AS last_id,\n"
			   "       (SELECT count(*) FROM scanned) AS rows_scanned,\n"
			   "       (SELECT count(*) FROM scanned WHERE in_window) AS rows_read,\n"
			   "       (SELECT count(*) FROM written) AS written,\n"
			   "       (SELECT count(*) FROM entries WHERE raw_user_id IS NULL) AS anonymous,\n"
			   "       (SELECT count(*) FROM entries WHERE user_id IS NULL AND raw_user_id IS NOT NULL)\n"
			   "           AS unknown_users,\n"
			   "       NULL::text AS legacy_type, NULL::text AS event_type\n"
			   "UNION ALL\n"
			   "SELECT 'unmapped', NULL, NULL, count(*), NULL, NULL, NULL, legacy_type, event_type\n"
			   "  FROM entries WHERE unmapped GROUP BY legacy_type, event_type",
			   head);
	free(head);
	return strbuf_take(&sql);
}

static char *build_sample_sql(const struct legacy_table *t, const struct database_facts *facts)
{
	struct strbuf sql = {0};

	append_batch_rows(&sql, t, true);
	append_entries(&sql, facts);
	strbuf_printf(&sql,
			   "\nSELECT jsonb_build_object('legacy_source', '%s', 'legacy_id', e.legacy_id,\n"
			   "           'user_id', e.user_id, 'mediaid_id', e.mediaid_id, 'event_type', e.event_type,\n"
			   "           'event_category', e.event_category, 'affects_systems', e.affects_systems,\n"
			   "           'timestamp', e.event_time, 'session_id', e.session_id, 'source', 'backfill',\n"
			   "           'processed', $10, 'payload', e.payload)::text\n"
			   "  FROM entries AS e ORDER BY e.legacy_id",
			   legacy_source_name(t->source));
	return strbuf_take(&sql);
}

/* A slice's rows left to scan from the cursor on (the window does not change how many rows are scanned). */
static char *build_total_sql(const struct legacy_table *t)
{
	struct strbuf sql = {0};

	strbuf_printf(&sql,
			   "SELECT count(*) FROM %s AS legacy"
			   " WHERE ($2 OR legacy.id > $1::%s) AND ($12 IS NULL OR legacy.id <= $12::%s)",
			   t->relation, t->id_type, t->id_type);
	return strbuf_take(&sql);
}

char *backfill_routes_json(void)
{
	static const unsigned systems[] = {SYSTEM_MEDIAID, SYSTEM_COLISEUM, SYSTEM_TREASURY};
	cJSON *array = cJSON_CreateArray();
	char *text = NULL;

	if (!array)
		return NULL;
	for (size_t i = 0; route_table_event_type(i) != NULL; i++) {
		const char *event_type = route_table_event_type(i);
		const struct route *route = route_for_event(event_type);
		cJSON *row = cJSON_CreateObject();
		cJSON *names = cJSON_CreateArray();

		if (!row || !names) {
			cJSON_Delete(row);
			cJSON_Delete(names);
			goto out;
		}
		cJSON_AddItemToArray(array, row);
		cJSON_AddStringToObject(row, "event_type", event_type);
		cJSON_AddStringToObject(row, "category", route->category);
		cJSON_AddItemToObject(row, "systems", names);
		for (size_t s = 0; s < sizeof systems / sizeof systems[0]; s++)
			if (route->systems & systems[s])
				cJSON_AddItemToArray(names, cJSON_CreateString(system_name(systems[s])));
	}
	text = cJSON_PrintUnformatted(array);
out:
	cJSON_Delete(array);
	return text;
}

/* [{"legacy_type", "event_type"}]: the layout's type map, the batch's $6. */
static char *type_map_json(const struct legacy_layout *layout)
{
	const struct legacy_type_mapping *map = layout->type_map;
	size_t count = layout->type_map_count;
	cJSON *array = cJSON_CreateArray();
	char *text;

	if (!array)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		cJSON *row = cJSON_CreateObject();

		if (!row) {
			cJSON_Delete(array);
			return NULL;
		}
		cJSON_AddItemToArray(array, row);
		cJSON_AddStringToObject(row, "legacy_type", map[i].legacy_type);
		cJSON_AddStringToObject(row, "event_type", map[i].event_type);
	}
	text = cJSON_PrintUnformatted(array);
	cJSON_Delete(array);
	return text;
}


int backfill_load_sample(PGconn *conn, struct source_run *run, const char *const template_params[PARAM_COUNT],
			 struct db_error *error)
{
	const char *params[PARAM_COUNT];
	char limit[16];
	PGresult *result;

	memcpy(params, template_params, sizeof params);
	snprintf(limit, sizeof limit, "%d", BACKFILL_SAMPLE_ROWS);
	params[PARAM_LIMIT] = limit;
	result = db_query_typed(conn, run->sample_sql, PARAM_COUNT, batch_param_types, params, error);
	if (!result) {
		db_error_prefix(error, "reading a sample");
		return -1;
	}
	run->sample = cJSON_CreateArray();
	for (int row = 0; row < PQntuples(result) && run->sample; row++) {
		cJSON *item = cJSON_Parse(PQgetvalue(result, row, 0));
		if (item)
			cJSON_AddItemToArray(run->sample, item);
	}
	PQclear(result);
	return 0;
}

int backfill_build_statements(struct source_run *run, const struct backfill_options *options,
			      const struct database_facts *facts)
{
	bool windowed = options->since || options->until;

	run->batch_sql = finish_batch_sql(options->dry_run ? build_count_sql(&run->table, facts, windowed)
							   : build_write_sql(&run->table, facts, windowed, false));
	if (!options->dry_run) {
		run->conflict_sql = finish_batch_sql(build_write_sql(&run->table, facts, windowed, true));
		if (!run->conflict_sql)
			run->batch_sql = NULL; /* reported below (and freed with the run) */
	}
	run->count_sql = build_total_sql(&run->table);
	run->type_map_json = type_map_json(run->table.layout);
	if (options->dry_run)
		run->sample_sql = build_sample_sql(&run->table, facts);
	if (!run->batch_sql || (!options->dry_run && !run->conflict_sql) || !run->count_sql || !run->type_map_json ||
	    (options->dry_run && !run->sample_sql)) {
		snprintf(run->error, sizeof run->error, "out of memory");
		return -1;
	}
	return 0;
}
