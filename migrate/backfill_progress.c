/* backfill_progress: what a running backfill shows while it copies: a bar on a terminal, log lines otherwise. */
#include "backfill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void format_duration(double seconds, char *buf, size_t size)
{
	long long s = (long long)(seconds + 0.5);

	if (s >= 3600)
		snprintf(buf, size, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
	else if (s >= 60)
		snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(buf, size, "%llds", s);
}

void progress_begin(struct progress_display *progress, enum progress_mode mode, bool lines_only,
		    const char *label)
{
	memset(progress, 0, sizeof *progress);
	progress->terminal = isatty(STDERR_FILENO);
	progress->bar = !lines_only && (mode == PROGRESS_ALWAYS || (mode == PROGRESS_AUTO && progress->terminal));
	progress->log_lines = mode != PROGRESS_NEVER && !progress->bar;
	progress->label = label;
	progress->started = monotonic_seconds();
	progress->last_output = progress->started;
}

/*
 * "\r[#####.....] 45% 450,000/1,000,000 rows 52,000 rows/s ETA 10s" on a terminal, redrawn at
 * most every BACKFILL_BAR_INTERVAL; otherwise a log line every BACKFILL_LOG_INTERVAL.
 */
void progress_update(struct progress_display *progress, const struct source_run *run, bool final)
{
	double now = monotonic_seconds();
	double elapsed = now - progress->started;
	double rate = elapsed > 0 ? (double)run->rows_scanned / elapsed : 0;
	char done[32], total[32], rate_text[32], eta[48] = "";
	long long shown_total = run->total;
	int percent = -1;

	if (!progress->bar && !progress->log_lines)
		return;
	if (!final && now - progress->last_output < (progress->bar ? BACKFILL_BAR_INTERVAL : BACKFILL_LOG_INTERVAL))
		return;
	progress->last_output = now;

	/* An estimated total may be exceeded; never show more than 100 %. */
	if (shown_total >= 0 && shown_total < run->rows_scanned)
		shown_total = run->rows_scanned;
	if (shown_total > 0)
		percent = (int)(100.0 * (double)run->rows_scanned / (double)shown_total);
	else if (shown_total == 0)
		percent = 100;
	format_count(run->rows_scanned, done, sizeof done);
	format_count(shown_total, total, sizeof total);
	format_count((long long)(rate + 0.5), rate_text, sizeof rate_text);
	if (percent >= 0 && rate > 0 && !final) {
		char left[32];
		format_duration((double)(shown_total - run->rows_scanned) / rate, left, sizeof left);
		snprintf(eta, sizeof eta, " ETA %s", left);
	}

	if (progress->bar) {
		char bar[31];
		int filled = percent >= 0 ? percent * 30 / 100 : 0;

		for (int i = 0; i < 30; i++)
			bar[i] = i < filled ? '#' : '.';
		bar[30] = '\0';
		if (percent >= 0)
			fprintf(stderr, "\r%s [%s] %3d%% %s/%s rows %s rows/s%s%s", progress->label, bar, percent,
				done, total, rate_text, eta, progress->terminal ? "\033[K" : "  ");
		else
			fprintf(stderr, "\r%s %s rows %s rows/s%s", progress->label, done, rate_text,
				progress->terminal ? "\033[K" : "  ");
		progress->drawn = true;
		if (final)
			fputc('\n', stderr);
	} else if (percent >= 0) {
		fprintf(stderr, MIGRATE_PROGRAM ": backfill: %s: %s/%s rows (%d%%), %s rows/s%s\n", progress->label,
			done, total, percent, rate_text, eta);
	} else {
		fprintf(stderr, MIGRATE_PROGRAM ": backfill: %s: %s rows, %s rows/s\n", progress->label, done,
			rate_text);
	}
	fflush(stderr);
}

/*
 * Why a transaction: SET LOCAL bounds the count alone to 30 s, however long the session's batch
 * timeout is. A count that times out is not an error (the estimate is shown instead); a failure
 * to begin, set or commit is printed, as every command of the tool is.
 */
void backfill_count_rows(PGconn *conn, struct source_run *run, const char *const template_params[PARAM_COUNT])
{
	const char *relation[1] = {run->table.relation};
	const char *params[PARAM_COUNT];
	struct db_error error;
	PGresult *result;
	long long total = 0;

	run->total = -1;
	memcpy(params, template_params, sizeof params);
	if (db_command(conn, "BEGIN", &error) < 0) {
		migrate_error("count: %s", error.message);
		return;
	}
	if (db_command(conn, "SET LOCAL statement_timeout = '30s'", &error) < 0) {
		migrate_error("count: %s", error.message);
		goto rollback;
	}
	for (int i = 0; i < run->slice_count; i++) {
		backfill_slice_params(&run->slices[i], params);
		result = db_query_typed(conn, run->count_sql, PARAM_COUNT, batch_param_types, params, &error);
		if (!result)
			goto rollback;
		total += atoll(PQgetvalue(result, 0, 0));
		PQclear(result);
	}
	run->total = total;
	if (db_command(conn, "COMMIT", &error) < 0)
		migrate_error("count: %s", error.message);
	return;
rollback:
	db_rollback(conn);
	result = db_query(conn, "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", 1, relation, NULL,
			  NULL, 0, &error);
	if (result && PQntuples(result) == 1 && atoll(PQgetvalue(result, 0, 0)) >= 0) {
		run->total = atoll(PQgetvalue(result, 0, 0));
		run->total_estimated = true;
	}
	PQclear(result);
}
