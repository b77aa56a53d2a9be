/*
 * pipeline: the state the steps of one batch hand each other, in the order they run:
 *   claim (claim.c)      -> entries, locked users
 *   route (route.c)      -> each entry's payload facts and systems
 *   facts                -> DNA rows (mediaid.c), target vectors (targets.c), ledger rows (treasury.c)
 *   evaluate             -> treasury checks, the DNA rule on the rows' in-memory state (mediaid.c)
 *   commit (commit.c)    -> coliseum rows (coliseum.c), ledger links, evolution, DNA rows, marks,
 *                           failures, COMMIT
 * batch.c calls them in that order. This header is internal to lib/: the daemon sees batch.h.
 *
 * Ownership: a batch's entries point into its claim result (batch.claimed) and into the
 * processor's entry buffer, both valid until batch_clear; rows' vectors and the targets array
 * belong to the batch; target vectors are the entity cache's, pinned until batch_clear (or the
 * batch's own copies when the cache had no room).
 */
#ifndef PASSPORT_PIPELINE_H
#define PASSPORT_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "aside.h"
#include "batch.h"
#include "dna.h"
#include "payload.h"
#include "tables.h"
#include "uuid_v7.h"
#include "vec.h"
#include "vector_type.h"

#define ERROR_TEXT_MAX 500  /* bytes of last_error an entry's failure may take */
#define SET_ASIDE_MAX 256   /* users passed over for a while, see struct set_aside */
#define SET_ASIDE_SECONDS 1.0
#define POSTPONE_SECONDS 300.0 /* an entry of a paused or disabled system waits this long */
/*
 * Bytes of claimed text a batch may hold (payloads, event types, systems): the claim stops taking
 * entries once their running total passes it (the first entry always goes in). With payloads up
 * to the 1 MiB limit, a batch of 500 could otherwise hold 500 MiB.
 */
#define CLAIM_TEXT_BUDGET (32L * 1024 * 1024)
/* Consecutive transient failures of one batch (or entry) before it is isolated and recorded. */
#define TRANSIENT_FAILURES_MAX 5

enum outcome {
	OUTCOME_OK = 0,
	OUTCOME_RETRY,
	OUTCOME_PERMANENT,
	OUTCOME_DEFERRED, /* left due, untouched: its DNA row is locked by another session */
	/*
	 * Left unprocessed with its attempts untouched: it touches a paused or disabled system. Its
	 * last_error says which ("paused: coliseum"); it comes back after POSTPONE_SECONDS, or at
	 * once on `passportd resume`.
	 */
	OUTCOME_POSTPONED,
};

struct entry {
	const char *id;         /* id_text */
	const char *user_id;    /* user_text; "" when NULL */
	const char *mediaid_id; /* mediaid_text; "" when NULL */
	const char *event_type;
	const char *payload; /* NULL when SQL NULL or over the limit (payload_bytes says which) */
	size_t payload_len;
	long long payload_bytes; /* size of the payload text on the server; 0 when NULL */
	const char *systems_json; /* NULL when SQL NULL */
	const char *correlation_column; /* treasury_correlation_id, NULL when absent */
	unsigned char ctid[6]; /* where the row is (block, offset): stable while the claim's lock is held */
	uint8_t id_bytes[UUID_BYTES];
	char id_text[UUID_TEXT_SIZE];
	char user_text[UUID_TEXT_SIZE];
	char mediaid_text[UUID_TEXT_SIZE];
	int attempts;
	bool has_time;
	int64_t time_us;

	unsigned systems;
	struct payload_info info;
	enum outcome outcome;
	char error[ERROR_TEXT_MAX + 1];

	int dna_row;      /* index into batch rows, or -1 */
	int target;       /* index into batch targets, or -1 */
	struct dna_step step;
	double delta_norms[VEC_DOMAINS];
};

struct dna_row {
	char id[UUID_TEXT_LEN + 1];
	char user_id[UUID_TEXT_LEN + 1];
	bool is_fan;
	float *v;
	bool valid;
	char invalid_reason[200];
	bool has_clock; /* false when dna_clock or the embedding is NULL */
	int64_t clock_us;
	struct dna_preferences prefs;
	int clock_entry; /* entry whose timestamp is the new clock, or -1 */
	bool dirty;
	bool held_elsewhere; /* another session holds a lock on the row */
};

struct target {
	enum target_type type;
	char id[UUID_TEXT_LEN + 1];
	float *x; /* NULL when no vector was found */
	bool valid;
	char invalid_reason[200];
};

struct batch {
	PGresult *claimed; /* owns the strings the entries point to */
	struct entry *entries;
	int n_entries;
	struct dna_row *rows; /* sorted by (user_id, id) */
	int n_rows;
	struct target *targets;
	int n_targets;
	/*
	 * The targets' vectors are the entity cache's, pinned until batch_clear (pins, n_pins);
	 * when the cache had no room for one, the batch's own copy (copies, n_copies).
	 */
	struct entity_cache *pinned_in;
	struct entity_pin **pins;
	int n_pins, max_pins;
	float **copies;
	int n_copies;
	char **correlations; /* ledger correlation ids that exist, sorted */
	int n_correlations;
};

/*
 * A user whose next due entry (or DNA row) another session holds cannot make progress; it is
 * left out of the candidates for a second, so that it does not take a place in every batch
 * (with small batches it could otherwise fill them all, and nobody else would move).
 */
struct set_aside {
	char user[UUID_TEXT_LEN + 1];
	double until; /* monotonic seconds */
};

struct processor {
	PGconn *conn;
	struct batch_config config;
	enum vec_format format;
	struct vector_type vector_type; /* the vector columns' type (vector_type.h) */
	bool has_ledger;
	bool has_correlation_column;
	bool has_entity_send; /* entity_dna.embedding_send(_xid): real[] vectors ready to send */
	char *claim_users_sql; /* claim.c */
	char *claim_id_sql;    /* claim.c */
	char *update_dna_sql;  /* mediaid.c */
	char *coliseum_insert_sql; /* coliseum.c */
	char *marked_coliseum_sql; /* commit.c: the processed marks with the coliseum rows */
	struct uuid_v7 coliseum_ids; /* the coliseum rows' time-ordered ids (uuid_v7.h) */
	float *scratch;
	uint64_t random_state;
	/*
	 * How many candidate users to consider for the next batch: about twice the number whose due
	 * entries filled the last one. Counting the due entries of every user behind the oldest
	 * batch_size entries would cost a count per user for users the batch cannot take.
	 */
	int candidate_users;
	struct entity_cache *entities;
	bool owns_entities;
	struct entry *entry_buffer; /* likewise the batch's entries */
	size_t entry_buffer_entries;
	struct set_aside set_aside[SET_ASIDE_MAX];
	int n_set_aside;
	bool last_walk_left_out_users; /* the last walk's scan passed over users set aside */
	/*
	 * Limits of the columns a failure writes, read from the catalogue at start-up: the largest
	 * processing_attempts its type holds, and the characters last_error holds (varchar(n) or
	 * character(n); INT_MAX for text).
	 */
	long long attempts_max;
	int error_chars;
	/*
	 * Entries whose failure could not be recorded at all (every write to their row failed):
	 * left out of every claim of this processor, so that nothing spins on them, and reported
	 * (drain's summary, the log). A restart tries them once more. Shared with the processors
	 * of the same drain or run (batch_config.shared_aside), or the processor's own.
	 */
	struct aside *unrecordable;
	bool owns_unrecordable;
	int transient_failures; /* consecutive transient failures of whole batches */
	uuid_text transient_entry; /* the entry of the last transient failure of run_single */
	int transient_entry_failures;
};


/* Record a failure on the entry; only the first failure of an entry is kept. */
void entry_fail(struct entry *entry, enum outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Free what the batch owns and zero it (the processor's buffers stay). */
void batch_clear(struct batch *b);

#endif
