/*
 * commit: the write phase of a batch and the record of failures.
 *
 * Why one pipeline: the batch's writes and COMMIT go out together and their results come back
 * together, one round trip for the whole phase. The server stops at the first failing statement
 * and the transaction is aborted, so a batch commits whole or not at all; the caller then
 * isolates the entry at fault (batch.c).
 */
#include "commit.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "coliseum.h"
#include "db.h"
#include "log.h"
#include "mediaid.h"
#include "pipeline.h"
#include "strbuf.h"
#include "treasury.h"

/* The processed mark of the rows at the ctids of parameter $n (the claim's lock keeps them in place). */
#define MARK_PROCESSED(param)                                                                      	"UPDATE passport_entries SET processed = true, processed_at = now(),"                       	" last_error = NULL, next_attempt_at = NULL WHERE ctid = ANY(" param "::tid[])"

static uint64_t next_random(struct processor *p)
{
	/* xorshift64*: jitter only, not security. */
	uint64_t x = p->random_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	p->random_state = x;
	return x * 2685821657736338717ULL;
}

double commit_retry_delay(double base, double cap, int attempts, uint64_t random)
{
	double delay = base;
	double jitter;

	for (int i = 1; i < attempts && delay < cap; i++)
		delay *= 2.0;
	if (delay > cap)
		delay = cap;
	/* +-20 % so that entries failing together do not come back together. */
	jitter = 0.8 + 0.4 * (double)(random >> 11) / 9007199254740992.0;
	return delay * jitter;
}

/* Finish the columns and run the statement with them as parameters $1..$n. */
static int write_arrays(struct processor *p, const char *sql, struct array_param *columns, int n, struct db_error *error)
{
	const char *values[16];
	int lengths[16], formats[16];
	int rc = 0;

	if (n > (int)(sizeof(values) / sizeof(values[0]))) {
		db_error_set(error, NULL, "write_arrays: %d columns, at most %zu", n, sizeof(values) / sizeof(values[0]));
		rc = -1;
		goto done;
	}
	if (columns[0].n == 0)
		goto done; /* nothing to write */
	rc = array_params_finish(columns, n, values, lengths, formats);
	if (rc < 0) {
		/* Ids and ctids come from the server or were validated: an invalid one is a bug here. */
		db_error_set(error, NULL, rc == -2 ? "write_arrays: a uuid or ctid is malformed" : "out of memory");
		rc = -1;
		goto done;
	}
	rc = db_send(p->conn, sql, n, values, lengths, formats, error);
done:
	for (int i = 0; i < n; i++)
		strbuf_free(&columns[i].text);
	return rc;
}

int commit_prepare(struct processor *p)
{
	p->marked_coliseum_sql = sql_printf("WITH marked AS (" MARK_PROCESSED("$10")
					    " RETURNING id, user_id, event_type, source, session_id, payload, \"timestamp\")%s",
					    p->coliseum_insert_sql);
	return p->marked_coliseum_sql ? 0 : -1;
}

void commit_finish(struct processor *p)
{
	free(p->marked_coliseum_sql);
	p->marked_coliseum_sql = NULL;
}

/*
 * The processed marks of the entries that succeeded and, in the same statement, the coliseum
 * rows of those routed there (coliseum_prepare's statement). Rows are found by ctid (no index
 * descent): the claim's FOR UPDATE lock, held until COMMIT, keeps them in place.
 */
static int write_processed(struct processor *p, const struct batch *b, struct db_error *error)
{
	struct array_param columns[COLISEUM_COLUMNS + 1] = {0};
	struct array_param *done = &columns[COLISEUM_COLUMNS];

	coliseum_columns_init(columns);
	array_param_binary(done, ARRAY_TID_OID);
	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];

		if (e->outcome != OUTCOME_OK)
			continue;
		array_add_tid_bytes(done, e->ctid);
		if (e->systems & SYSTEM_COLISEUM)
			coliseum_add_row(columns, e, &p->coliseum_ids);
	}
	if (columns[0].n == 0) {
		for (int i = 0; i < COLISEUM_COLUMNS; i++)
			strbuf_free(&columns[i].text);
		return write_arrays(p, MARK_PROCESSED("$1"), done, 1, error);
	}
	return write_arrays(p, p->marked_coliseum_sql, columns, COLISEUM_COLUMNS + 1, error);
}

/* The attempts an entry has after this failure (its attempts saturate, they never overflow). */
static int attempts_after(const struct entry *e)
{
	return e->attempts < INT_MAX ? e->attempts + 1 : INT_MAX;
}

/*
 * The failures of a batch: attempts, last_error, and a retry time or dead_at. Every value fits
 * its column: attempts stop at the largest value of processing_attempts' type (numeric
 * arithmetic, so the + 1 itself cannot overflow), and last_error is cut to the characters the
 * column holds.
 */
int commit_write_failures(struct processor *p, const struct batch *b, struct db_error *error)
{
	cJSON *failures = cJSON_CreateArray();
	char *text;
	char max_attempts[16], attempts_max[24], error_chars[16];
	const char *values[4];
	int rc;

	if (!failures)
		goto oom;
	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
		cJSON *row;

		if (e->outcome == OUTCOME_OK || e->outcome == OUTCOME_DEFERRED)
			continue;
		row = cJSON_CreateObject();
		cJSON_AddItemToArray(failures, row);
		cJSON_AddStringToObject(row, "id", e->id);
		cJSON_AddStringToObject(row, "error", e->error);
		cJSON_AddBoolToObject(row, "permanent", e->outcome == OUTCOME_PERMANENT);
		cJSON_AddBoolToObject(row, "postponed", e->outcome == OUTCOME_POSTPONED);
		cJSON_AddNumberToObject(row, "delay",
					e->outcome == OUTCOME_POSTPONED
						? POSTPONE_SECONDS
						: commit_retry_delay(p->config.retry_base_seconds, p->config.retry_cap_seconds,
								     attempts_after(e), next_random(p)));
	}
	if (cJSON_GetArraySize(failures) == 0) {
		cJSON_Delete(failures);
		return 0;
	}
	text = cJSON_PrintUnformatted(failures);
	cJSON_Delete(failures);
	if (!text)
		goto oom;
	snprintf(max_attempts, sizeof(max_attempts), "%d", p->config.max_attempts);
	snprintf(attempts_max, sizeof(attempts_max), "%lld", p->attempts_max);
	snprintf(error_chars, sizeof(error_chars), "%d", p->error_chars);
	values[0] = text;
	values[1] = max_attempts;
	values[2] = attempts_max;
	values[3] = error_chars;
	rc = db_send(p->conn,
			     "UPDATE passport_entries e"
			     " SET processing_attempts = CASE WHEN r.postponed THEN e.processing_attempts"
			     " ELSE least(coalesce(e.processing_attempts, 0)::numeric + 1, $3::numeric) END,"
			     " last_error = left(r.error, $4::int),"
			     " dead_at = CASE WHEN NOT r.postponed AND (r.permanent"
			     " OR coalesce(e.processing_attempts, 0)::numeric + 1 >= $2::int) THEN now() END,"
			     " next_attempt_at = CASE WHEN NOT r.postponed AND (r.permanent"
			     " OR coalesce(e.processing_attempts, 0)::numeric + 1 >= $2::int)"
			     " THEN NULL ELSE now() + make_interval(secs => r.delay) END"
			     " FROM jsonb_to_recordset($1::jsonb)"
			     " AS r(id uuid, error text, permanent boolean, postponed boolean, delay float8)"
			     " WHERE e.id = r.id",
			     4, values, NULL, NULL, error);
	cJSON_free(text);
	return rc;
oom:
	db_error_set(error, NULL, "out of memory");
	return -1;
}

#define COMMIT_FAILURE_LOG_BURST 20
#define COMMIT_FAILURE_LOG_WINDOW 10 /* seconds */

/* Whether one more failure may be logged now. Shared by drain's worker threads, hence the lock. */
static bool failure_log_allowed(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static time_t window_start;
	static int logged;
	struct timespec now;
	bool allowed;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&lock);
	if (now.tv_sec - window_start >= COMMIT_FAILURE_LOG_WINDOW) {
		window_start = now.tv_sec;
		logged = 0;
	}
	allowed = logged < COMMIT_FAILURE_LOG_BURST;
	if (allowed)
		logged++;
	pthread_mutex_unlock(&lock);
	return allowed;
}

void commit_count_outcomes(const struct processor *p, const struct batch *b, struct batch_totals *totals)
{
	long suppressed = 0;

	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
		bool dead = e->outcome == OUTCOME_PERMANENT || attempts_after(e) >= p->config.max_attempts;

		if (e->outcome == OUTCOME_DEFERRED || e->outcome == OUTCOME_POSTPONED)
			continue;
		if (e->outcome == OUTCOME_OK) {
			totals->processed++;
			continue;
		}
		if (dead)
			totals->dead++;
		else
			totals->retrying++;
		if (!log_enabled(dead ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO))
			continue;
		if (!failure_log_allowed())
			suppressed++;
		else if (dead)
			log_warning("entry %s (%s) is dead: %s", e->id, e->event_type, e->error);
		else
			log_info("entry %s (%s) failed, will retry: %s", e->id, e->event_type, e->error);
	}
	if (suppressed > 0)
		log_notice("%ld more failed entries of this batch not logged (at most %d lines per %d s;"
			   " see passportd status)",
			   suppressed, COMMIT_FAILURE_LOG_BURST, COMMIT_FAILURE_LOG_WINDOW);
}

int commit_batch(struct processor *p, const struct batch *b, long *dna_rows, struct db_error *error)
{
	if (db_pipeline_begin(p->conn, error) < 0)
		return -1;
	if (write_processed(p, b, error) < 0 || treasury_write_links(p, b, error) < 0 ||
	    mediaid_write_evolution(p, b, error) < 0 || mediaid_write_rows(p, b, dna_rows, error) < 0 ||
	    commit_write_failures(p, b, error) < 0 || db_send(p->conn, "COMMIT", 0, NULL, NULL, NULL, error) < 0) {
		struct db_error ignored;
		(void)db_pipeline_finish(p->conn, &ignored);
		return -1;
	}
	return db_pipeline_finish(p->conn, error);
}
