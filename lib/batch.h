/*
 * batch: one batch of the pipeline, start to end: claim due entries (by user, with FOR UPDATE
 * SKIP LOCKED), route each to its systems, apply the DNA rule per DNA row in (timestamp, id)
 * order, and write every effect plus the processed marks in one transaction.
 */
#ifndef PASSPORT_BATCH_H
#define PASSPORT_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "db.h"
#include "vec.h"

/*
 * Target vectors a processor's cache keeps between batches (6 KiB each, 36 MiB at most: memory
 * only for the slots a catalogue fills). Batches use them in place, so a drain's peak RSS is
 * about this plus 20 MiB; P5 (15,000 vectors, 2 workers) measured 58.7 MiB (real[]) and
 * 57.5 MiB (pgvector) with 6,144.
 */
#define BATCH_ENTITY_CACHE_CAPACITY 6144

struct entity_cache;
struct aside;

/* The batch settings; config_to_batch (config.c) fills them from the option table, defaults included. */
struct batch_config {
	int batch_size;              /* entries per batch */
	unsigned enabled_systems;    /* bitmask of enum passport_system */
	unsigned paused_systems;     /* paused in the database (pause.h); 0 unless the caller reads it */
	size_t max_payload_bytes;    /* larger payloads are a permanent error */
	int max_attempts;            /* attempts before an entry is dead */
	double retry_base_seconds;   /* first retry delay, seconds */
	double retry_cap_seconds;    /* longest retry delay, seconds */
	int statement_timeout_ms;    /* per batch transaction (local, pooler-safe); 0: the session's */
	bool synchronous_commit;     /* false: a batch's COMMIT does not wait for its WAL flush (db.h) */
	/*
	 * Target vector cache shared by several processors (drain's workers), owned by the caller;
	 * NULL (the default): the processor keeps its own.
	 */
	struct entity_cache *shared_entities;
	/*
	 * Entries set aside as unrecordable, shared likewise (aside.h), owned by the caller; NULL:
	 * the processor keeps its own.
	 */
	struct aside *shared_aside;
};

/* Running totals, added to by each batch. */
struct batch_totals {
	long batches;
	long claimed;
	long processed;        /* committed with all their effects */
	long retrying;         /* failed, will be retried later */
	long dead;             /* failed for good (permanent error or out of attempts) */
	long dna_rows;         /* DNA rows written */
	long skipped_systems;  /* deliveries held back: their system is disabled or paused (entry postponed) */
	long unrecordable;     /* failed, and even the failure could not be recorded: left due, set aside */
};

/* Add every count of from to to (a pass's, a helper's or a worker's totals into a sum). */
void batch_totals_add(struct batch_totals *to, const struct batch_totals *from);

enum batch_status {
	BATCH_ERROR = -1, /* database error; error says why; check db_connection_lost */
	BATCH_EMPTY = 0,  /* nothing is due */
	BATCH_DONE = 1,   /* a batch was processed */
	BATCH_BUSY = 2,   /* entries are due but other workers hold all their users: try again soon */
};

/*
 * The processor keeps what it learned about the database (vector column type, optional tables)
 * and its query texts. It does not own the connection: the caller keeps it open while the
 * processor is in use and destroys the processor before PQfinish-ing a connection it replaces.
 */
struct processor;

/* Inspect the database behind conn. Returns NULL with a reason in error (e.g. schema missing). */
struct processor *processor_create(PGconn *conn, const struct batch_config *config, struct db_error *error);
void processor_destroy(struct processor *processor);

/* Replace the configuration (e.g. after a reload). */
void processor_set_config(struct processor *processor, const struct batch_config *config);

enum vec_format processor_vector_format(const struct processor *processor);

/*
 * Claim and process one batch. Failures of single entries are recorded on the entries and
 * counted, never returned. Returns a batch_status.
 */
int processor_run_batch(struct processor *processor, struct batch_totals *totals, struct db_error *error);

/*
 * Process the entry with this id now, if it is due and nobody else holds it, together with the
 * older due entries of its user (applied first, in order: a DNA row's entries never apply out of
 * order). Returns BATCH_DONE when it was processed (or recorded as failed; see totals, which count
 * the older entries too), BATCH_EMPTY when it was not due, or it or an older entry of its user is
 * held elsewhere (or they are more than a batch), BATCH_BUSY on a transient failure, BATCH_ERROR
 * on a database error.
 */
int processor_run_entry(struct processor *processor, const char *entry_id, struct batch_totals *totals,
			struct db_error *error);

/*
 * How many entries are due now (leaving out the ones this processor set aside as unrecordable);
 * with set_aside_only, only those of the users it set aside for a moment (claim_count_due).
 * 0 or -1 with error.
 */
int processor_count_due(struct processor *processor, bool set_aside_only, long long *due, struct db_error *error);
/*
 * Whether the last batch's walk passed over users set aside for a moment (their next entry was
 * held by another session). When it did not, its BATCH_EMPTY saw every due entry there is: there
 * is no need to count them.
 */
bool processor_sets_users_aside(const struct processor *processor);

/* How many entries this processor set aside because not even their failure could be recorded. */
int processor_unrecordable(const struct processor *processor);

#endif
