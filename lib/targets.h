/* targets: the target vectors of a batch's mediaid entries, from the entity cache or entity_dna. */
#ifndef PASSPORT_TARGETS_H
#define PASSPORT_TARGETS_H

#include <libpq-fe.h>

struct processor;
struct batch;
struct db_statement;
struct db_error;

/*
 * Collect the distinct targets of good mediaid entries into b->targets (each entry's target set)
 * and build the query that finds where each one's vector is. Leaves f->sql NULL when there is no
 * target. Returns -1 when out of memory.
 */
int targets_fetch(struct batch *b, struct db_statement *f);

/*
 * Give the targets their vectors: from the entity cache, else read now in single-row mode and
 * cached. The vectors stay the cache's, pinned until batch_clear (the batch's own copy when the
 * cache has no room). sources_res is the result of the targets_fetch query (NULL: none asked).
 * A target without a vector keeps x NULL (decay only).
 */
int targets_take(struct processor *p, struct batch *b, PGresult *sources_res, struct db_error *error);

#endif
