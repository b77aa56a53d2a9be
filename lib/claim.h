/*
 * claim: the first step of a batch. Which users a batch takes (candidates, advisory user locks,
 * users set aside for a while) and the claim of their due entries, FOR UPDATE SKIP LOCKED. Also
 * the predicates every part of the project shares about the queue: the due condition, the
 * notification channel and the advisory-lock classes.
 */
#ifndef PASSPORT_CLAIM_H
#define PASSPORT_CLAIM_H

#include <stdbool.h>

/* The channel passportd LISTENs on; the trigger of sql/ notifies it. */
#define PASSPORT_CHANNEL "passport_entries"

/*
 * Advisory-lock classes: the first key of pg_try_advisory_xact_lock(class, key) /
 * pg_advisory_lock(class, key). Each use has its own class so that keys of one can never collide
 * with another's.
 *   user:     key hashtext(user_id), held by a batch for its transaction; every passportd of a
 *             database must agree on it, so it never changes ('PASS' in ASCII).
 *   backfill: key source + 1, held by passport-migrate backfill for its session ('PBFL').
 *   wake:     key 0, the wake-up gate of sql/030_wakeup_gate.sql ('PWAK'): held exclusive by the
 *             LISTEN connection of an armed passportd, probed shared by the notify trigger, which
 *             notifies only when the probe fails. The trigger's SQL spells the number out, so it
 *             never changes either.
 */
#define LOCK_CLASS_USER "1346458451"
#define LOCK_CLASS_BACKFILL "1346520652"
#define LOCK_CLASS_WAKE "1347895627"

/*
 * A condition on passport_entries e: the entry is due now. The seed's processed column is
 * nullable; an entry whose processed is NULL has not been processed, so it is due like a false one
 * (sql/016 indexes exactly this predicate). Every query of the queue's states says the same.
 */
#define NOT_PROCESSED "e.processed IS NOT TRUE"
#define DUE_CONDITION                                                                              \
	NOT_PROCESSED " AND e.dead_at IS NULL AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= now())"

struct processor;
struct batch;
struct db_error;

/* Build the claim statements for this database (after processor_create inspected it). -1: out of memory. */
int claim_prepare(struct processor *p);
void claim_finish(struct processor *p);

/*
 * Open a transaction, lock users and claim their due entries into b. Returns BATCH_DONE with the
 * transaction open and b filled; BATCH_EMPTY (nothing due) or BATCH_BUSY (everything due is held
 * elsewhere) rolled back; BATCH_ERROR rolled back, with error set. Nothing claimed because of a
 * race between workers (claim.c, claim_batch) is looked at again at once, a few times, before
 * BATCH_BUSY.
 */
int claim_batch(struct processor *p, struct batch *b, struct db_error *error);

enum claim_entry_mode {
	/*
	 * The entry and, before it, every older due entry of its user, in (timestamp, id) order, so
	 * that applying them keeps each DNA row's order (reprocess --now). Nothing when any of them
	 * is held by another session.
	 */
	CLAIM_WITH_OLDER,
	/* The entry alone, and only when no older due entry of its user waits (batch isolation). */
	CLAIM_ALONE,
	/* The entry alone, whatever waits before it: only to record its failure (no effects applied). */
	CLAIM_ANY,
};

/*
 * Open a transaction and claim the entry with this canonical id into b (with the older due
 * entries of its user in CLAIM_WITH_OLDER mode; the entry itself last), if it is due and nobody
 * holds it or its user; b has no entries otherwise. Returns 0, or -1 with error set; the caller
 * rolls back either way when it does not commit.
 */
int claim_entry(struct processor *p, struct batch *b, const char *entry_id, enum claim_entry_mode mode,
		struct db_error *error);

/*
 * Due entries now, leaving out those set aside as unrecordable; with set_aside_only, only those
 * of the users set aside (any this processor still lists, expired or not). Returns 0 or -1 with
 * error set.
 */
int claim_count_due(struct processor *p, bool set_aside_only, long long *due, struct db_error *error);

/* Leave the user out of the candidates for SET_ASIDE_SECONDS: another session holds its next entry. */
void claim_set_aside_user(struct processor *p, const char *user);
/*
 * Whether the last walk left users out of its scan (users set aside then): their due entries
 * were not looked at, so an empty walk does not mean nothing is due.
 */
bool claim_users_set_aside(const struct processor *p);

#endif
