/* treasury: amount checks, ledger rows that must exist, and the ledger links of a batch. */
#ifndef PASSPORT_TREASURY_H
#define PASSPORT_TREASURY_H

#include <libpq-fe.h>

struct processor;
struct batch;
struct entry;
struct db_statement;
struct db_error;

/* The entry's correlation id: payload.correlation_id, else the treasury_correlation_id column; or NULL. */
const char *treasury_correlation(const struct entry *e);

/*
 * The query for which correlation ids of good treasury entries have ledger rows (none when the
 * database has no ledger_entries). Leaves f->sql NULL when there is nothing to ask; -1 when out
 * of memory.
 */
int treasury_fetch(const struct processor *p, const struct batch *b, struct db_statement *f);

/* Keep the correlation ids that query found (res may be NULL), sorted. */
int treasury_take(struct batch *b, PGresult *res, struct db_error *error);

/* The treasury checks of one good entry; a failure is recorded on it. */
void treasury_check_entry(const struct processor *p, const struct batch *b, struct entry *e);

/* Send the ledger links of the good treasury entries (into the open pipeline). */
int treasury_write_links(struct processor *p, const struct batch *b, struct db_error *error);

#endif
