/*
 * commit: the last step of a batch. Every effect of the good entries, their processed marks, the
 * failures of the others and COMMIT, sent as one pipeline (one round trip); plus the rule for
 * when a failed entry is tried again.
 */
#ifndef PASSPORT_COMMIT_H
#define PASSPORT_COMMIT_H

#include <stdint.h>

struct processor;
struct batch;
struct batch_totals;
struct db_error;

/*
 * Seconds until a failed entry is tried again (pure): base * 2^(attempts - 1), at most cap,
 * times a jitter in [0.8, 1.2] drawn from random (any 64-bit value), so that entries failing
 * together do not come back together. attempts counts this failure (1 for the first).
 */
double commit_retry_delay(double base, double cap, int attempts, uint64_t random);

/*
 * Build the statement of the processed marks with the coliseum rows (after coliseum_prepare).
 * Returns 0, or -1 when out of memory. commit_finish frees it.
 */
int commit_prepare(struct processor *p);
void commit_finish(struct processor *p);

/*
 * In the open transaction, send as one pipeline: the processed marks with the coliseum rows,
 * the ledger links, the dna_evolution rows, the DNA rows, the failures, and COMMIT; then read
 * every result. Returns 0 when the batch committed (adds the DNA rows written to *dna_rows), or
 * -1 with the first failure (the transaction is then aborted; the caller rolls back).
 */
int commit_batch(struct processor *p, const struct batch *b, long *dna_rows, struct db_error *error);

/*
 * Send the failures of the batch's failed entries (not the deferred ones): attempts + 1,
 * last_error, and a retry time or dead_at. Into the open pipeline, or executed at once.
 */
int commit_write_failures(struct processor *p, const struct batch *b, struct db_error *error);

/*
 * Count the batch's outcomes into totals and log each failure: a dead entry at warning, a retry
 * at info. A burst is rate-limited (COMMIT_FAILURE_LOG_BURST lines per COMMIT_FAILURE_LOG_WINDOW
 * seconds, for the whole process); the lines left out are counted in the next one logged.
 */
void commit_count_outcomes(const struct processor *p, const struct batch *b, struct batch_totals *totals);

#endif
