/*
 * backfill_slices: a source cut into slices of ids that the jobs copy side by side, and where an
 * interrupted run resumes (sql/103_backfill_slices.sql has the rows' layout).
 *
 * Why slices: --jobs used to give each job a whole legacy log, so the shorter log's job ended
 * first and the rest of the longer one ran on one connection (a sixth of the run at 200,000
 * rows). Cut into as many slices as there are jobs, a log is shared by all of them to the end.
 *
 * Why the cuts come from the planner's row estimate: a cut only balances work, so it may be
 * rough; finding exact quantiles would read the whole index once more. Each cut is then one
 * index-only walk to an OFFSET, once per fresh run.
 */
#include "backfill.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds the start-up reads (estimate, count, cuts) of a large table: slicing is only worth so much. */
#define SLICE_READ_TIMEOUT_SQL "SET LOCAL statement_timeout = '30s'"

void backfill_slice_params(const struct backfill_slice *slice, const char *params[PARAM_COUNT])
{
	const char *from = slice->cursor[0] ? slice->cursor : slice->start;

	params[PARAM_CURSOR] = from[0] ? from : NULL;
	params[PARAM_FROM_START] = from[0] ? "false" : "true";
	params[PARAM_SLICE_END] = slice->end[0] ? slice->end : NULL;
	params[PARAM_SLICE_START] = slice->start;
}

/* Copy a recorded id into field; an id that does not fit is refused (it would be cut short). */
static int copy_id(char field[BACKFILL_ID_SIZE], const char *value, const char *what, struct db_error *error)
{
	size_t length = strlen(value);

	if (length >= BACKFILL_ID_SIZE) {
		db_error_set(error, NULL,
			     "passport_backfill_progress holds a %s of %zu characters (at most %d); "
			     "run with --restart to start over",
			     what, length, BACKFILL_ID_SIZE - 1);
		return -1;
	}
	memcpy(field, value, length + 1);
	return 0;
}

/*
 * The slices of an interrupted run of this source and window: its rows not completed. The rows
 * read by the interrupted run are those of every slice recorded with it (the same started_at),
 * completed ones included.
 */
static int load_interrupted(PGconn *conn, struct source_run *run, const char *window_key, struct db_error *error)
{
	const char *params[2] = {legacy_source_name(run->source), window_key};
	PGresult *result = db_query(conn,
				    "SELECT p.slice_start, coalesce(p.slice_end, ''), coalesce(p.last_id, ''),\n"
				    "       (SELECT sum(q.rows_seen) FROM passport_backfill_progress AS q\n"
				    "         WHERE q.legacy_source = $1 AND q.window_key = $2\n"
				    "           AND q.started_at IN (SELECT r.started_at FROM passport_backfill_progress AS r\n"
				    "                                 WHERE r.legacy_source = $1 AND r.window_key = $2\n"
				    "                                   AND r.completed_at IS NULL))\n"
				    "  FROM passport_backfill_progress AS p\n"
				    " WHERE p.legacy_source = $1 AND p.window_key = $2 AND p.completed_at IS NULL\n"
				    " ORDER BY p.slice_start COLLATE \"C\"",
				    2, params, NULL, NULL, 0, error);
	int rows;

	if (!result) {
		db_error_prefix(error, "reading passport_backfill_progress");
		return -1;
	}
	rows = PQntuples(result);
	if (rows > BACKFILL_MAX_SLICES) {
		db_error_set(error, NULL,
			     "passport_backfill_progress holds %d unfinished slices of %s (at most %d); "
			     "run with --restart to start over",
			     rows, legacy_source_name(run->source), BACKFILL_MAX_SLICES);
		PQclear(result);
		return -1;
	}
	for (int row = 0; row < rows; row++) {
		struct backfill_slice *slice = &run->slices[row];

		memset(slice, 0, sizeof *slice);
		slice->run = run;
		slice->status = SOURCE_PENDING;
		if (copy_id(slice->start, PQgetvalue(result, row, 0), "slice start", error) < 0 ||
		    copy_id(slice->end, PQgetvalue(result, row, 1), "slice end", error) < 0 ||
		    copy_id(slice->cursor, PQgetvalue(result, row, 2), "last id", error) < 0) {
			PQclear(result);
			return -1;
		}
		if (!run->resumed_after[0] && slice->cursor[0])
			memcpy(run->resumed_after, slice->cursor, sizeof run->resumed_after);
	}
	if (rows > 0)
		run->resumed_rows = atoll(PQgetvalue(result, 0, 3));
	run->slice_count = rows;
	run->resumed_slices = rows;
	PQclear(result);
	return 0;
}

/*
 * Where to cut a fresh run's table into up to wanted slices of at least
 * BACKFILL_MIN_SLICE_BATCHES batches each: into cuts (ids, increasing), returning how many
 * (0: one slice). A table never analyzed has no estimate and is counted instead. Anything that
 * goes wrong here only costs the slicing: the run then copies the table as one slice.
 */
static int find_cuts(PGconn *conn, const struct source_run *run, int wanted, int batch_size,
		     char cuts[][BACKFILL_ID_SIZE])
{
	const char *relation[1] = {run->table.relation};
	struct db_error error;
	PGresult *result = NULL;
	long long rows, per_slice = (long long)BACKFILL_MIN_SLICE_BATCHES * batch_size;
	char rows_text[32], slices_text[16], *sql = NULL;
	const char *params[2] = {rows_text, slices_text};
	int slices, count = 0;

	if (wanted < 2 || migrate_begin(conn, true, SLICE_READ_TIMEOUT_SQL, &error) < 0)
		return 0;
	result = db_query(conn, "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", 1, relation, NULL,
			  NULL, 0, &error);
	if (!result || PQntuples(result) != 1)
		goto out;
	rows = atoll(PQgetvalue(result, 0, 0));
	PQclear(result);
	result = NULL;
	if (rows < 0) {
		sql = sql_printf("SELECT count(*) FROM %s", run->table.relation);
		result = sql ? db_query(conn, sql, 0, NULL, NULL, NULL, 0, &error) : NULL;
		free(sql);
		sql = NULL;
		if (!result)
			goto out;
		rows = atoll(PQgetvalue(result, 0, 0));
		PQclear(result);
		result = NULL;
	}
	slices = rows / per_slice < wanted ? (int)(rows / per_slice) : wanted;
	if (slices < 2)
		goto out;
	snprintf(rows_text, sizeof rows_text, "%lld", rows);
	snprintf(slices_text, sizeof slices_text, "%d", slices);
	sql = sql_printf("SELECT cut::text FROM (\n"
			 "    SELECT DISTINCT (SELECT legacy.id FROM %s AS legacy ORDER BY legacy.id\n"
			 "                      OFFSET $1::bigint * g / $2::int LIMIT 1) AS cut\n"
			 "      FROM generate_series(1, $2::int - 1) AS g\n"
			 ") AS cuts WHERE cut IS NOT NULL ORDER BY cut",
			 run->table.relation);
	result = sql ? db_query(conn, sql, 2, params, NULL, NULL, 0, &error) : NULL;
	free(sql);
	if (!result)
		goto out;
	for (int row = 0; row < PQntuples(result) && count < BACKFILL_MAX_SLICES - 1; row++) {
		if (strlen(PQgetvalue(result, row, 0)) >= BACKFILL_ID_SIZE) {
			count = 0;
			break;
		}
		snprintf(cuts[count++], BACKFILL_ID_SIZE, "%s", PQgetvalue(result, row, 0));
	}
out:
	PQclear(result);
	db_rollback(conn); /* it only read */
	return count;
}

/*
 * Record a fresh run's slices, in one transaction: rows of the source and window still open (an
 * interrupted run that --restart sets aside) are closed, and each slice's row is written anew.
 */
static int record_slices(PGconn *conn, const struct source_run *run, const char *window_key, struct db_error *error)
{
	const char *source = legacy_source_name(run->source);

	if (migrate_begin(conn, false, MIGRATE_TRANSACTION_SETTINGS_SQL, error) < 0)
		return -1;
	{
		const char *params[2] = {source, window_key};
		PGresult *result = db_query(conn,
					    "UPDATE passport_backfill_progress SET completed_at = now(), updated_at = now()"
					    " WHERE legacy_source = $1 AND window_key = $2 AND completed_at IS NULL",
					    2, params, NULL, NULL, 0, error);
		if (!result)
			goto fail;
		PQclear(result);
	}
	for (int i = 0; i < run->slice_count; i++) {
		const struct backfill_slice *slice = &run->slices[i];
		const char *params[4] = {source, window_key, slice->start, slice->end[0] ? slice->end : NULL};
		PGresult *result = db_query(conn,
					    "INSERT INTO passport_backfill_progress AS p\n"
					    "       (legacy_source, window_key, slice_start, slice_end, last_id, rows_seen,\n"
					    "        started_at, updated_at, completed_at)\n"
					    "VALUES ($1, $2, $3, $4, NULL, 0, now(), now(), NULL)\n"
					    "ON CONFLICT (legacy_source, window_key, slice_start) DO UPDATE\n"
					    "   SET slice_end = EXCLUDED.slice_end, last_id = NULL, rows_seen = 0,\n"
					    "       started_at = now(), updated_at = now(), completed_at = NULL",
					    4, params, NULL, NULL, 0, error);
		if (!result)
			goto fail;
		PQclear(result);
	}
	return migrate_commit(conn, error);
fail:
	db_rollback(conn);
	return -1;
}

int backfill_plan_slices(PGconn *conn, struct source_run *run, const struct backfill_options *options,
			 const struct database_facts *facts, const char *window_key, int wanted, struct db_error *error)
{
	char cuts[BACKFILL_MAX_SLICES - 1][BACKFILL_ID_SIZE];
	bool recorded = !options->dry_run && facts->has_progress_table;
	int count;

	run->slice_count = 0;
	run->resumed_slices = 0;
	run->resumed_after[0] = '\0';
	run->resumed_rows = 0;
	if (recorded && !options->restart) {
		if (load_interrupted(conn, run, window_key, error) < 0)
			return -1;
		if (run->slice_count > 0)
			return 0;
	}

	if (wanted > BACKFILL_MAX_SLICES)
		wanted = BACKFILL_MAX_SLICES;
	count = find_cuts(conn, run, wanted, options->batch_size, cuts);
	for (int i = 0; i <= count; i++) {
		struct backfill_slice *slice = &run->slices[i];

		memset(slice, 0, sizeof *slice);
		slice->run = run;
		slice->status = SOURCE_PENDING;
		if (i > 0)
			memcpy(slice->start, cuts[i - 1], sizeof slice->start);
		if (i < count)
			memcpy(slice->end, cuts[i], sizeof slice->end);
	}
	run->slice_count = count + 1;
	if (recorded && record_slices(conn, run, window_key, error) < 0) {
		db_error_prefix(error, "recording the slices in passport_backfill_progress");
		return -1;
	}
	return 0;
}

void backfill_describe_resume(const struct source_run *run, char *out, size_t size)
{
	size_t used;

	out[0] = '\0';
	if (run->resumed_slices == 0)
		return;
	if (run->resumed_slices == 1) {
		const struct backfill_slice *slice = &run->slices[0];
		const char *from = slice->cursor[0] ? slice->cursor : slice->start;

		if (from[0])
			snprintf(out, size, "after id %s", from);
		else
			snprintf(out, size, "from the first id");
		return;
	}
	snprintf(out, size, "%d slices, after ids", run->resumed_slices);
	for (int i = 0; i < run->resumed_slices; i++) {
		const struct backfill_slice *slice = &run->slices[i];
		const char *from = slice->cursor[0] ? slice->cursor : slice->start;

		used = strlen(out);
		if (used + 1 >= size)
			break;
		snprintf(out + used, size - used, "%s %s", i > 0 ? "," : "", from[0] ? from : "(start)");
	}
}
