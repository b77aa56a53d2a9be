/*
 * mediaid: the DNA system of a batch: DNA rows, the choice of an entry's row, the DNA rule on the
 * rows' in-memory state, and the dna_evolution and media_ids writes (SPEC 3).
 */
#ifndef PASSPORT_MEDIAID_H
#define PASSPORT_MEDIAID_H

#include <stddef.h>

#include <libpq-fe.h>

#include "pipeline.h"

struct db_statement;
struct db_error;

/* Build the DNA write statement for the database's vector type. -1: out of memory. */
int mediaid_prepare(struct processor *p);
void mediaid_finish(struct processor *p);

/*
 * The query for the media_ids rows of every user with a mediaid entry, locking them FOR NO KEY
 * UPDATE SKIP LOCKED (a row held by another session is reported, not waited for). Leaves f->sql
 * NULL when no entry needs a row. Returns -1 when out of memory.
 */
int mediaid_rows_fetch(const struct batch *b, struct db_statement *f);

/* Decode the rows of that query (res may be NULL: none asked) into b->rows, sorted by (user, id). */
int mediaid_rows_take(struct processor *p, struct batch *b, PGresult *res, struct db_error *error);

/*
 * Which DNA row an entry applies to (SPEC 3), pure: rows sorted by (user_id, id); user_id and
 * mediaid_id are "" when NULL. The entry's mediaid_id when set (it must belong to the user);
 * else the user's only row, or its fan row where there are several. Returns OUTCOME_OK with *row
 * set, or OUTCOME_RETRY (no row yet) / OUTCOME_PERMANENT with a reason (*row = -1).
 */
enum outcome mediaid_choose_row(const struct dna_row *rows, int n_rows, const char *user_id, const char *mediaid_id,
			       int *row, char *reason, size_t reason_len);

/*
 * Give every good mediaid entry its DNA row (a failure recorded on the entry otherwise), and
 * defer the entries whose row another session holds.
 */
void mediaid_pick_rows(struct batch *b);

/*
 * Apply entry index to its row's in-memory state (entries in (timestamp, id) order). The state
 * changes only when the whole step is valid; a problem is recorded on the entry.
 */
void mediaid_apply_entry(struct processor *p, struct batch *b, int index);

/* Send the dna_evolution rows of the applied entries (into the open pipeline). */
int mediaid_write_evolution(struct processor *p, const struct batch *b, struct db_error *error);

/* Send the changed DNA rows, DNA_WRITE_CHUNK per UPDATE; adds their number to *written. */
int mediaid_write_rows(struct processor *p, const struct batch *b, long *written, struct db_error *error);

#endif
