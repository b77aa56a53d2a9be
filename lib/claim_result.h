/*
 * claim_result: a claim's rows, in binary format, into a batch (claim.c's statements select
 * ENTRY_COLUMNS; claim_result.c reads them).
 */
#ifndef PASSPORT_CLAIM_RESULT_H
#define PASSPORT_CLAIM_RESULT_H

#include <libpq-fe.h>

struct processor;
struct batch;
struct db_error;

/*
 * Check res (the claim's result, binary) and make its rows the batch's entries, which point into
 * it: b owns res from then on. Returns 0, or -1 with error set (out of memory; or a result not of
 * the expected columns, types and sizes, which is refused whole, freed, and never read as
 * something else).
 */
int claim_take_result(struct processor *p, struct batch *b, PGresult *res, struct db_error *error);

#endif
