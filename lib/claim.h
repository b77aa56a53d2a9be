/*
 * claim: the first step of a batch. Which users a batch takes (candidates, advisory user locks,
 * users set aside for a while) and the claim of their due entries, FOR UPDATE SKIP LOCKED. Also
 * the predicates every part of the project shares about the queue: the due condition, the
 * notification channel and the advisory-lock classes.
 */
#ifndef PASSPORT_CLAIM_H
#define PASSPORT_CLAIM_H

/* The channel passportd LISTENs on; the trigger of sql/ notifies it. */
#define PASSPORT_CHANNEL "passport_entries"

/*
 * Advisory-lock classes: the first key of pg_try_advisory_xact_lock(class, key) /
 * pg_advisory_lock(class, key). Each use has its own class so that keys of one can never collide
 * with another's.
 *   user:     key hashtext(user_id), held by a batch for its transaction; every passportd of a
 *             database must agree on it, so it never changes ('PASS' in ASCII).
 *   backfill: key source + 1, held by passport-migrate backfill for its session ('PBFL').
 */
#define LOCK_CLASS_USER "1346458451"
#define LOCK_CLASS_BACKFILL "1346520652"

/* A condition on passport_entries e: the entry is due now. */
#define DUE_CONDITION                                                                              \
	"NOT e.processed AND e.dead_at IS NULL AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= now())"

#endif
