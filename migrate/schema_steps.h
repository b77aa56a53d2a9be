/*
 * schema_steps: how `passport-migrate schema` applies one migration file to a live database
 * without stalling the application.
 *
 * A file is cut into steps at its top-level statements (pure: schema_steps_split):
 *   - ALTER TABLE: a short transaction of its own, under a lock_timeout, retried with backoff
 *     when the lock is not granted in time (the application's writes queue behind a waiting
 *     ALTER, so it must never wait long);
 *   - CREATE [UNIQUE] INDEX: CREATE INDEX CONCURRENTLY, outside any transaction (writers go on
 *     while it builds); an index of that name left INVALID by an interrupted run is dropped
 *     (concurrently) and built again, after waiting for a build still in progress;
 *   - DROP INDEX: DROP INDEX CONCURRENTLY, outside any transaction;
 *   - every run of other statements: one transaction, under the same lock_timeout and retries.
 * The file's text is not changed (its checksum stays); only how it is sent. Migrations are
 * idempotent, so a run interrupted between steps is completed by the next one.
 */
#ifndef PASSPORT_MIGRATE_SCHEMA_STEPS_H
#define PASSPORT_MIGRATE_SCHEMA_STEPS_H

#include <stddef.h>

#include <libpq-fe.h>

struct migration;
struct vector_type;

enum schema_step_kind {
	SCHEMA_STEP_TRANSACTION, /* statements run together in one transaction */
	SCHEMA_STEP_ALTER,       /* one ALTER TABLE in a transaction of its own */
	SCHEMA_STEP_INDEX,       /* one CREATE INDEX or DROP INDEX, run CONCURRENTLY outside a transaction */
};

#define SCHEMA_STEP_NAME_MAX 200

struct schema_step {
	enum schema_step_kind kind;
	size_t start, end; /* the step's bytes of the migration text: [start, end) */
	/*
	 * SCHEMA_STEP_INDEX: where " CONCURRENTLY" goes (0: the statement says it already), and for
	 * CREATE INDEX the index name ("" when unnamed, and for DROP INDEX).
	 */
	size_t concurrently_at;
	char index_name[SCHEMA_STEP_NAME_MAX];
};

/*
 * Cut text into steps (pure). Returns the number of steps (0 for a file of comments and blanks)
 * and a malloc'd array in *steps (free it), or -1 when out of memory.
 */
int schema_steps_split(const char *text, struct schema_step **steps);

/*
 * Apply the migration's steps in order on conn (no transaction open), with the vector type's
 * schema on each transaction's search path (see schema.c). Prints progress and, on failure, why
 * (the file's line for a statement error). Returns 0, or -1 when a step failed (the steps before
 * it stay applied).
 */
int schema_steps_apply(PGconn *conn, const struct migration *m, const struct vector_type *type);

/* lock_timeout of every step's transaction, and how often a step is tried when it is not granted. */
#define SCHEMA_LOCK_TIMEOUT "500ms"
#define SCHEMA_LOCK_ATTEMPTS 40

#endif
