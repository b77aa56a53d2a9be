/*
 * batch: one batch of the pipeline, start to end, as a table of contents of its steps:
 *   1. claim (claim.c): lock users and claim their due entries, in (timestamp, id) order;
 *   2. route (route.c): payload, timestamp and systems of each entry, no database needed;
 *   3. facts, asked in one round trip: the users' DNA rows (mediaid.c), the target vectors
 *      (targets.c), the ledger rows (treasury.c);
 *   4. evaluate, entry by entry in order: treasury checks (treasury.c), then the DNA rule on the
 *      rows' in-memory state (mediaid.c);
 *   5. commit (commit.c): coliseum rows (coliseum.c) with the processed marks, ledger links,
 *      dna_evolution rows, DNA rows, failures and COMMIT, in one round trip.
 *
 * Bad entries: everything that can be wrong with one entry is found in steps 2-4 and recorded
 * for that entry alone. Should a write still fail (a constraint the upstream schema adds, a lock
 * timeout), the transaction is rolled back and the batch is redone one entry per transaction, so
 * the failing entry is recorded with the database's message and the others go through.
 *
 * Should even the record of a failure fail (a trigger, a column narrower than anything we write),
 * the entry is set aside with a short fixed message and dead_at, or, when its row takes no write
 * at all, left out of this processor's claims and logged as an error: one entry never stops the
 * queue, and the daemon never spins on it. A failure the database calls transient that repeats
 * TRANSIENT_FAILURES_MAX times in a row is treated like any other.
 */
#include "batch.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "claim.h"
#include "coliseum.h"
#include "commit.h"
#include "db.h"
#include "dna.h"
#include "entity_cache.h"
#include "log.h"
#include "mediaid.h"
#include "pipeline.h"
#include "route.h"
#include "strbuf.h"
#include "targets.h"
#include "treasury.h"
#include "vector_type.h"

void entry_fail(struct entry *entry, enum outcome outcome, const char *fmt, ...)
{
	va_list ap;

	if (entry->outcome != OUTCOME_OK)
		return; /* the first failure is the one recorded */
	entry->outcome = outcome;
	va_start(ap, fmt);
	vsnprintf(entry->error, sizeof(entry->error), fmt, ap);
	va_end(ap);
	utf8_truncate(entry->error, ERROR_TEXT_MAX);
}

struct processor *processor_create(PGconn *conn, const struct batch_config *config, struct db_error *error)
{
	struct processor *p = calloc(1, sizeof(*p));
	PGresult *res;
	bool schema_ready;

	if (!p) {
		db_error_set(error, NULL, "out of memory");
		return NULL;
	}
	p->conn = conn;
	p->config = *config;
	p->candidate_users = 16;
	p->random_state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;

	if (db_query_bool(p->conn,
		       "SELECT to_regclass('passport_entries') IS NOT NULL AND to_regclass('dna_evolution') IS NOT NULL"
		       " AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('media_ids')"
		       " AND attname = 'dna_clock' AND NOT attisdropped)",
		       &schema_ready, error) < 0)
		goto fail;
	if (!schema_ready) {
		db_error_set(error, NULL, "the project's schema is missing: run `passport-migrate schema` first");
		goto fail;
	}

	/* vector(1536) (pgvector, in any schema) or real[], the same type in entity_dna. */
	if (vector_type_inspect(p->conn, &p->vector_type, error) < 0)
		goto fail;
	p->format = p->vector_type.format;

	/* real[] target vectors with their send copies (sql/102_entity_dna_send.sql). */
	if (p->format == VEC_FORMAT_REAL_ARRAY &&
	    db_query_bool(p->conn,
			  "SELECT count(*) = 2 FROM pg_attribute WHERE attrelid = to_regclass('entity_dna') AND NOT attisdropped"
			  " AND ((attname = 'embedding_send' AND atttypid = 'bytea'::regtype)"
			  " OR (attname = 'embedding_send_xid' AND atttypid = 'xid'::regtype))",
			  &p->has_entity_send, error) < 0)
		goto fail;
	if (db_query_bool(p->conn, "SELECT to_regclass('ledger_entries') IS NOT NULL", &p->has_ledger, error) < 0)
		goto fail;
	if (db_query_bool(p->conn,
		       "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'passport_entries'::regclass"
		       " AND attname = 'treasury_correlation_id' AND NOT attisdropped)",
		       &p->has_correlation_column, error) < 0)
		goto fail;

	/* The limits of the columns a failure writes (see struct processor). */
	res = db_query(p->conn,
		    "SELECT (SELECT CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int8'::regtype"
		    "  THEN 9223372036854775807 ELSE 2147483647 END FROM pg_attribute a"
		    "  WHERE a.attrelid = 'passport_entries'::regclass AND a.attname = 'processing_attempts'"
		    "  AND NOT a.attisdropped)::text,"
		    " (SELECT CASE WHEN a.atttypid IN ('varchar'::regtype, 'bpchar'::regtype) AND a.atttypmod > 4"
		    "  THEN a.atttypmod - 4 END FROM pg_attribute a"
		    "  WHERE a.attrelid = 'passport_entries'::regclass AND a.attname = 'last_error' AND NOT a.attisdropped)",
		    0, NULL, NULL, NULL, 0, error);
	if (!res)
		goto fail;
	p->attempts_max = PQgetisnull(res, 0, 0) ? INT_MAX : atoll(PQgetvalue(res, 0, 0));
	p->error_chars = PQgetisnull(res, 0, 1) ? INT_MAX : atoi(PQgetvalue(res, 0, 1));
	PQclear(res);

	p->scratch = vec_create(VEC_DIM);
	p->owns_entities = config->shared_entities == NULL;
	p->entities = p->owns_entities ? entity_cache_create(BATCH_ENTITY_CACHE_CAPACITY) : config->shared_entities;
	p->owns_unrecordable = config->shared_aside == NULL;
	p->unrecordable = p->owns_unrecordable ? aside_create() : config->shared_aside;
	if (coliseum_prepare(p, error) < 0)
		goto fail;
	if (!p->entities || !p->unrecordable || claim_prepare(p) < 0 || mediaid_prepare(p) < 0 || commit_prepare(p) < 0 || !p->scratch) {
		db_error_set(error, NULL, "out of memory");
		goto fail;
	}
	dna_init_blas();
	(void)db_prepare_enable(p->conn); /* a session of its own: statements prepared once */
	return p;

fail:
	processor_destroy(p);
	return NULL;
}

void processor_destroy(struct processor *p)
{
	if (!p)
		return;
	db_prepare_disable(p->conn);
	claim_finish(p);
	mediaid_finish(p);
	coliseum_finish(p);
	commit_finish(p);
	vec_free(p->scratch);
	if (p->owns_entities)
		entity_cache_destroy(p->entities);
	if (p->owns_unrecordable)
		aside_destroy(p->unrecordable);
	free(p->entry_buffer);
	free(p);
}

void processor_set_config(struct processor *p, const struct batch_config *config)
{
	p->config = *config;
}

enum vec_format processor_vector_format(const struct processor *p)
{
	return p->format;
}

void batch_clear(struct batch *b)
{
	PQclear(b->claimed);
	for (int i = 0; i < b->n_rows; i++)
		vec_free(b->rows[i].v);
	free(b->rows);
	free(b->targets);
	if (b->n_pins > 0) {
		entity_cache_lock(b->pinned_in);
		for (int i = 0; i < b->n_pins; i++)
			entity_cache_unpin(b->pinned_in, b->pins[i]);
		entity_cache_unlock(b->pinned_in);
	}
	free(b->pins);
	for (int i = 0; i < b->n_copies; i++)
		vec_free(b->copies[i]);
	free(b->copies);
	for (int i = 0; i < b->n_correlations; i++)
		free(b->correlations[i]);
	free(b->correlations);
	memset(b, 0, sizeof(*b));
}

/* Step 3: the facts the entries need, asked in one round trip: DNA rows, targets, ledger rows. */
static int read_facts(struct processor *p, struct batch *b, struct db_error *error)
{
	struct db_statement facts[3] = {{0}};
	int rc;

	if (mediaid_rows_fetch(b, &facts[0]) < 0 || targets_fetch(b, &facts[1]) < 0 ||
	    treasury_fetch(p, b, &facts[2]) < 0) {
		db_error_set(error, NULL, "out of memory");
		rc = -1;
	} else {
		rc = db_pipeline_run(p->conn, facts, 3, error);
	}
	if (rc == 0)
		rc = mediaid_rows_take(p, b, facts[0].res, error);
	if (rc == 0) {
		mediaid_pick_rows(b);
		rc = targets_take(p, b, facts[1].res, error);
	}
	if (rc == 0)
		rc = treasury_take(b, facts[2].res, error);
	for (int i = 0; i < 3; i++)
		db_statement_clear(&facts[i]);
	return rc;
}

/* Step 4 for one entry: treasury checks, then the DNA update. */
static void evaluate_entry(struct processor *p, struct batch *b, int index)
{
	struct entry *e = &b->entries[index];

	if (e->outcome != OUTCOME_OK)
		return;
	if (e->systems & SYSTEM_TREASURY)
		treasury_check_entry(p, b, e);
	if (e->outcome == OUTCOME_OK && (e->systems & SYSTEM_MEDIAID))
		mediaid_apply_entry(p, b, index);
}

/* Steps 2-5 of a claimed batch, inside the open transaction. */
static int process_claimed(struct processor *p, struct batch *b, struct batch_totals *totals, struct db_error *error)
{
	long dna_rows = 0;
	struct batch_totals local = {0};

	for (int i = 0; i < b->n_entries; i++)
		route_entry(p, &b->entries[i], &local);
	if (read_facts(p, b, error) < 0)
		return -1;
	for (int i = 0; i < b->n_entries; i++)
		evaluate_entry(p, b, i);
	if (commit_batch(p, b, &dna_rows, error) < 0)
		return -1;
	totals->batches++;
	totals->claimed += b->n_entries;
	totals->dna_rows += dna_rows;
	totals->skipped_systems += local.skipped_systems;
	commit_count_outcomes(p, b, totals);
	return 0;
}

/* The fixed message of an entry whose failure could not be recorded as it was. */
#define SET_ASIDE_MESSAGE "set aside: its failure could not be recorded (see the daemon log)"

/* One statement on an entry, in its own transaction; 0, or -1 with error set. */
static int update_entry(struct processor *p, const char *sql, const char *entry_id, struct db_error *error)
{
	char chars[16];
	const char *values[3] = {entry_id, SET_ASIDE_MESSAGE, chars};
	PGresult *res;

	snprintf(chars, sizeof(chars), "%d", p->error_chars);
	res = db_query(p->conn, sql, 3, values, NULL, NULL, 0, error);
	PQclear(res);
	return res ? 0 : -1;
}

/*
 * Record a failure that the database itself reported for one entry, in its own transaction. When
 * that record is refused too, set the entry aside: dead with a short fixed message, dead alone,
 * or (its row takes no write at all) left out of this processor's claims. Returns -1 only when
 * the connection is lost.
 */
static int record_database_failure(struct processor *p, const char *entry_id, const char *message,
				   struct batch_totals *totals, struct db_error *error)
{
	static const char *const set_aside_sql[] = {
		"UPDATE passport_entries e SET dead_at = now(), next_attempt_at = NULL, last_error = left($2, $3::int)"
		" WHERE e.id = $1::uuid AND " DUE_CONDITION,
		"UPDATE passport_entries e SET dead_at = now(), next_attempt_at = NULL"
		" WHERE e.id = $1::uuid AND " DUE_CONDITION " AND $2::text IS NOT NULL AND $3::int IS NOT NULL",
	};
	struct batch b = {0};
	struct entry *e;

	if (claim_entry(p, &b, entry_id, CLAIM_ANY, error) < 0)
		goto refused;
	if (b.n_entries == 1) {
		e = &b.entries[0];
		e->outcome = OUTCOME_OK;
		entry_fail(e, OUTCOME_RETRY, "database: %s", message);
		if (commit_write_failures(p, &b, error) < 0 || db_command(p->conn, "COMMIT", error) < 0)
			goto refused;
		commit_count_outcomes(p, &b, totals);
		totals->claimed++;
	} else {
		db_rollback(p->conn);
	}
	batch_clear(&b);
	return 0;

refused:
	batch_clear(&b);
	db_rollback(p->conn);
	if (db_connection_lost(p->conn))
		return -1;
	log_error("entry %s: its failure could not be recorded (%s: %s); setting it aside", entry_id, error->sqlstate,
		  error->message);
	for (size_t i = 0; i < sizeof(set_aside_sql) / sizeof(set_aside_sql[0]); i++) {
		if (update_entry(p, set_aside_sql[i], entry_id, error) == 0) {
			totals->dead++;
			totals->claimed++;
			return 0;
		}
		if (db_connection_lost(p->conn))
			return -1;
	}
	log_error("entry %s: its row refuses every write (%s: %s); this process leaves it out from now on, "
		  "it stays due", entry_id, error->sqlstate, error->message);
	switch (aside_add(p->unrecordable, entry_id)) {
	case ASIDE_ADDED:
		totals->unrecordable++;
		break;
	case ASIDE_PRESENT: /* another worker of this process set it aside first */
		break;
	case ASIDE_FULL:
		log_error("entry %s: too many entries set aside; it will be tried again", entry_id);
		totals->unrecordable++;
		break;
	}
	return 0;
}

/*
 * A transient failure of one entry: true when it has repeated TRANSIENT_FAILURES_MAX times in a
 * row for this entry, and is then to be recorded like any other failure.
 */
static bool transient_repeats(struct processor *p, const char *entry_id)
{
	if (strcmp(p->transient_entry, entry_id) != 0) {
		snprintf(p->transient_entry, sizeof(p->transient_entry), "%s", entry_id);
		p->transient_entry_failures = 0;
	}
	return ++p->transient_entry_failures >= TRANSIENT_FAILURES_MAX;
}

/*
 * Run the batch's entries again one per transaction (CLAIM_ALONE), in order, and clear the batch.
 * Stops at a lost connection or a transient failure; an entry no longer due is skipped. Returns
 * the status of the last entry run.
 */
static int run_each_alone(struct processor *p, struct batch *b, struct batch_totals *totals,
			  struct db_error *error);

/*
 * Process one entry in its own transaction: in CLAIM_ALONE mode only when no older due entry of
 * its user waits (isolating a batch whose writes failed), in CLAIM_WITH_OLDER mode together with
 * them (reprocess --now), so that every DNA row's entries still apply in order. Returns
 * BATCH_DONE when the entry was processed or recorded, BATCH_EMPTY when it was not due, held
 * elsewhere, deferred or waiting behind older entries, BATCH_BUSY on a transient failure,
 * BATCH_ERROR when the connection is lost.
 */
static int run_single(struct processor *p, const char *entry_id, enum claim_entry_mode mode,
		      struct batch_totals *totals, struct db_error *error)
{
	struct batch b = {0};
	char message[ERROR_TEXT_MAX + 1];
	int status;

	if (claim_entry(p, &b, entry_id, mode, error) < 0) {
		batch_clear(&b);
		db_rollback(p->conn);
		return BATCH_ERROR;
	}
	if (b.n_entries == 0) {
		batch_clear(&b);
		db_rollback(p->conn);
		return BATCH_EMPTY;
	}
	if (process_claimed(p, &b, totals, error) == 0) {
		bool deferred = b.entries[b.n_entries - 1].outcome == OUTCOME_DEFERRED;
		batch_clear(&b);
		return deferred ? BATCH_EMPTY : BATCH_DONE;
	}
	db_rollback(p->conn);
	if (db_connection_lost(p->conn)) {
		batch_clear(&b);
		return BATCH_ERROR;
	}
	if (db_error_is_transient(error) && !transient_repeats(p, entry_id)) {
		batch_clear(&b);
		return BATCH_BUSY;
	}
	if (b.n_entries > 1) /* The entry and older ones failed together: each alone finds the one at fault. */
		return run_each_alone(p, &b, totals, error);
	batch_clear(&b);
	snprintf(message, sizeof(message), "%.*s", ERROR_TEXT_MAX, error->message);
	utf8_truncate(message, ERROR_TEXT_MAX - 20);
	log_warning("entry %s: the database refused its effects: %s", entry_id, message);
	status = record_database_failure(p, entry_id, message, totals, error);
	return status < 0 ? BATCH_ERROR : BATCH_DONE;
}

static int run_each_alone(struct processor *p, struct batch *b, struct batch_totals *totals,
			  struct db_error *error)
{
	/* The ids first: each run_single reuses the processor's entry buffer. */
	int n = b->n_entries, status = BATCH_DONE;
	uuid_text *ids = malloc(sizeof(*ids) * (size_t)(n > 0 ? n : 1));

	if (!ids) {
		batch_clear(b);
		db_error_set(error, NULL, "out of memory");
		return BATCH_ERROR;
	}
	for (int i = 0; i < n; i++)
		snprintf(ids[i], sizeof(ids[i]), "%s", b->entries[i].id);
	batch_clear(b);
	for (int i = 0; i < n && (status == BATCH_DONE || status == BATCH_EMPTY); i++)
		status = run_single(p, ids[i], CLAIM_ALONE, totals, error);
	free(ids);
	return status;
}

int processor_run_entry(struct processor *p, const char *entry_id, struct batch_totals *totals, struct db_error *error)
{
	uuid_text id;

	if (uuid_canonical(entry_id, id) < 0) {
		db_error_set(error, NULL, "not a UUID: %.40s", entry_id);
		return BATCH_ERROR;
	}
	return run_single(p, id, CLAIM_WITH_OLDER, totals, error);
}

int processor_count_due(struct processor *p, bool set_aside_only, long long *due, struct db_error *error)
{
	return claim_count_due(p, set_aside_only, due, error);
}

bool processor_sets_users_aside(const struct processor *p)
{
	return claim_users_set_aside(p);
}

void batch_totals_add(struct batch_totals *to, const struct batch_totals *from)
{
	to->batches += from->batches;
	to->claimed += from->claimed;
	to->processed += from->processed;
	to->retrying += from->retrying;
	to->dead += from->dead;
	to->dna_rows += from->dna_rows;
	to->skipped_systems += from->skipped_systems;
	to->unrecordable += from->unrecordable;
}

int processor_unrecordable(const struct processor *p)
{
	return aside_count(p->unrecordable);
}

int processor_run_batch(struct processor *p, struct batch_totals *totals, struct db_error *error)
{
	struct batch b = {0};
	int status = claim_batch(p, &b, error);

	if (status != BATCH_DONE)
		return status;
	if (process_claimed(p, &b, totals, error) == 0) {
		bool progressed = false;
		p->transient_failures = 0;
		for (int i = 0; i < b.n_entries; i++) {
			if (b.entries[i].outcome != OUTCOME_DEFERRED)
				progressed = true;
			else
				claim_set_aside_user(p, b.entries[i].user_id);
		}
		batch_clear(&b);
		return progressed ? BATCH_DONE : BATCH_BUSY;
	}

	/* The batch failed as a whole. Roll back, then isolate the entry at fault. */
	db_rollback(p->conn);
	if (db_connection_lost(p->conn)) {
		batch_clear(&b);
		return BATCH_ERROR;
	}
	if (db_error_is_transient(error) && ++p->transient_failures < TRANSIENT_FAILURES_MAX) {
		log_info("batch of %d entries rolled back (%s: %s); it will be tried again", b.n_entries,
			 error->sqlstate, error->message);
		batch_clear(&b);
		return BATCH_BUSY;
	}
	p->transient_failures = 0;
	log_warning("batch of %d entries failed (%s: %s); retrying them one at a time", b.n_entries, error->sqlstate,
		    error->message);
	status = run_each_alone(p, &b, totals, error);
	return status == BATCH_EMPTY ? BATCH_DONE : status;
}
