/*
 * queue: the queue's state as counts (due, retrying, dead, the age of the oldest due entry), read
 * in one statement outside any batch. The metrics endpoint's gauges come from here; the states
 * are those of SPEC section 2.1 (DUE_CONDITION in claim.h).
 */
#ifndef PASSPORT_QUEUE_H
#define PASSPORT_QUEUE_H

#include <stdbool.h>

#include <libpq-fe.h>

struct db_error;

struct queue_counts {
	long due;                     /* not processed, not dead, no retry pending */
	long retrying;                /* not processed, a retry pending in the future */
	long dead;                    /* dead_at set */
	bool has_oldest_due;          /* false when nothing is due */
	double oldest_due_age_seconds; /* now() - the oldest due entry's timestamp */
};

/*
 * Read the counts on conn, which must not be inside a transaction of its own (the statement runs
 * as its own). Cost grows with the unprocessed entries only (the partial index of
 * sql/001_passport_entries.sql). Returns 0, or -1 with error set.
 */
int queue_read_counts(PGconn *conn, struct queue_counts *counts, struct db_error *error);

#endif
