/*
 * claim: which users a batch takes and the claim of their due entries.
 *
 * Three steps, in one transaction, whatever the batch size:
 *   1. candidates: the users of the oldest due entries (leaving out users set aside);
 *   2. lock: a transaction-scoped advisory lock per user (skipping users another worker holds),
 *      taking users in order of their oldest due entry until their due entries fill the batch;
 *   3. claim: all due entries of the locked users, FOR UPDATE SKIP LOCKED, in (timestamp, id)
 *      order, each user's claim cut at the first due entry another session holds.
 * Steps 1 and 2 are one statement, sent in one round trip with BEGIN; step 3 is a second.
 *
 * Why lock users and not only entries: the DNA rule is order dependent. If two workers could hold
 * entries of one user at once, the later entries could be applied before the earlier ones, and
 * the result would depend on scheduling. Holding the user for the whole transaction makes every
 * DNA row's entries apply strictly in (timestamp, id) order, whatever the batch size or the
 * number of workers.
 */
#include "claim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "claim_result.h"
#include "db.h"
#include "log.h"
#include "pipeline.h"
#include "strbuf.h"

/*
 * The columns a batch reads of an entry, from a CTE named c that has CLAIMED_COLUMNS plus
 * correlation, payload_text and payload_bytes. The payload text travels only when it is within
 * the limit (parameter max): an oversized payload is refused by its size alone, without
 * transferring it (its size is the last column). The result comes in binary format
 * (claim_take_result, claim_result.c): the ids as their 16 bytes, the time as its exact microseconds, the ctid as its
 * 6 bytes; the server formats none of them as text (that was ~15 % of a claim: uuid_out three
 * times, the time's epoch through numeric arithmetic) and passportd parses none back.
 */
#define ENTRY_COLUMNS(max)                                                                         \
	"c.id, c.user_id, c.mediaid_id, c.event_type::text,"                                            \
	" CASE WHEN c.payload_bytes <= " max "::bigint THEN c.payload_text END,"                       \
	" array_to_json(c.affects_systems)::text,"                                                     \
	" greatest(least(coalesce(c.processing_attempts, 0), 2147483647), -2147483648)::int4,"          \
	" c.\"timestamp\", c.correlation, c.row_ctid, c.payload_bytes"

/*
 * The columns a claim takes of passport_entries: what ENTRY_COLUMNS and the cut read, not e.*
 * (the claimed rows are kept in a CTE and read twice; their other columns cost ~9 % of a claim).
 */
#define CLAIMED_COLUMNS                                                                            \
	"e.id, e.user_id, e.mediaid_id, e.event_type, e.payload, e.affects_systems,"                 \
	" e.processing_attempts, e.\"timestamp\", e.ctid AS row_ctid"

/* The payload's text, made once per row (OFFSET 0 keeps the planner from repeating it), and its size. */
#define PAYLOAD_TEXT                                                                               \
	" CROSS JOIN LATERAL (SELECT c.payload::text AS payload_text OFFSET 0) t"                      \
	" CROSS JOIN LATERAL (SELECT coalesce(octet_length(t.payload_text), 0)::bigint AS payload_bytes) s"

int claim_prepare(struct processor *p)
{
	const char *correlation;

	correlation = p->has_correlation_column ? "e.treasury_correlation_id::text" : "NULL::text";
	/*
	 * Claim the due entries of the locked users (and of no user). SKIP LOCKED passes over an
	 * entry some other session holds; taking the user's later entries then would apply them
	 * before it. So each user's claim is cut at the first due entry not claimed ("gap"): what
	 * is claimed is always a prefix of the user's due entries in (timestamp, id) order. The cut
	 * entries stay due, untouched. The text budget ($6) then cuts the whole claim, in the same
	 * order, so every user's part stays a prefix. An entry's text_bytes fits an int (the payload
	 * limit is at most 256 MiB, a text at most 1 GB), so the running sum is bigint arithmetic, not
	 * numeric (sum of a bigint).
	 *   $1 locked users  $2 batch size  $3 take entries without a user  $4 payload limit (bytes)
	 *   $5 entries set aside as unrecordable  $6 text budget (bytes)
	 */
	p->claim_users_sql = sql_printf(
		"WITH claimed AS (SELECT " CLAIMED_COLUMNS ", %s AS correlation FROM passport_entries e"
		"  WHERE (e.user_id = ANY($1::uuid[]) OR ($3::boolean AND e.user_id IS NULL)) AND " DUE_CONDITION
		"  AND NOT e.id = ANY($5::uuid[])"
		"  ORDER BY e.\"timestamp\", e.id LIMIT $2 FOR UPDATE OF e SKIP LOCKED),"
		" gap AS (SELECT DISTINCT ON (e.user_id) e.user_id, coalesce(e.\"timestamp\", 'infinity') AS ts, e.id"
		"  FROM passport_entries e WHERE e.user_id = ANY($1::uuid[]) AND " DUE_CONDITION
		"  AND NOT e.id = ANY($5::uuid[]) AND e.id NOT IN (SELECT id FROM claimed)"
		"  ORDER BY e.user_id, coalesce(e.\"timestamp\", 'infinity'), e.id),"
		" kept AS (SELECT c.*, t.payload_text, s.payload_bytes,"
		"  (CASE WHEN s.payload_bytes <= $4::bigint THEN s.payload_bytes ELSE 0 END"
		"  + octet_length(c.event_type) + 256)::int AS text_bytes"
		"  FROM claimed c LEFT JOIN gap g ON g.user_id = c.user_id" PAYLOAD_TEXT
		"  WHERE g.user_id IS NULL OR (coalesce(c.\"timestamp\", 'infinity'), c.id) < (g.ts, g.id)),"
		" budgeted AS (SELECT k.*, sum(k.text_bytes) OVER (ORDER BY k.\"timestamp\", k.id"
		"  ROWS UNBOUNDED PRECEDING) - k.text_bytes AS bytes_before FROM kept k)"
		" SELECT " ENTRY_COLUMNS("$4") " FROM budgeted c WHERE c.bytes_before < $6::bigint"
		" ORDER BY c.\"timestamp\", c.id",
		correlation);
	/*
	 * One entry, with the older due entries of its user (all of them, or nothing when another
	 * session holds one, or when they are more than a batch):
	 *   $1 the entry  $2 payload limit  $3 entries set aside  $5 batch size
	 *   $4 mode: 'older' takes the older ones too, 'alone' takes nothing when there are any,
	 *      'any' takes the entry whatever waits before it (to record a failure: no effects)
	 */
	p->claim_id_sql = sql_printf(
		"WITH target AS (SELECT e.id, e.user_id, coalesce(e.\"timestamp\", 'infinity') AS ts"
		"  FROM passport_entries e WHERE e.id = $1::uuid AND " DUE_CONDITION " AND NOT e.id = ANY($3::uuid[])),"
		" locked AS (SELECT l.* FROM target l WHERE l.user_id IS NULL"
		"  OR pg_try_advisory_xact_lock(" LOCK_CLASS_USER ", hashtext(l.user_id::text)) OFFSET 0),"
		" wanted AS (SELECT e.id FROM passport_entries e, locked l WHERE " DUE_CONDITION
		"  AND NOT e.id = ANY($3::uuid[]) AND (e.id = l.id OR ($4::text <> 'any' AND e.user_id = l.user_id"
		"  AND (coalesce(e.\"timestamp\", 'infinity'), e.id) < (l.ts, l.id)))),"
		" claimed AS (SELECT " CLAIMED_COLUMNS ", %s AS correlation FROM passport_entries e"
		"  WHERE e.id IN (SELECT id FROM wanted) AND ($4::text <> 'alone' OR (SELECT count(*) FROM wanted) = 1)"
		"  AND (SELECT count(*) FROM wanted) <= $5::int"
		"  ORDER BY e.\"timestamp\", e.id FOR UPDATE OF e SKIP LOCKED),"
		" kept AS (SELECT c.*, t.payload_text, s.payload_bytes FROM claimed c" PAYLOAD_TEXT
		"  WHERE (SELECT count(*) FROM claimed) = (SELECT count(*) FROM wanted))"
		" SELECT " ENTRY_COLUMNS("$2") " FROM kept c ORDER BY c.\"timestamp\", c.id",
		correlation);
	return p->claim_users_sql && p->claim_id_sql ? 0 : -1;
}

void claim_finish(struct processor *p)
{
	free(p->claim_users_sql);
	free(p->claim_id_sql);
	p->claim_users_sql = p->claim_id_sql = NULL;
}

/* "{...}" of the entries set aside as unrecordable; NULL when out of memory. */
static char *unrecordable_literal(const struct processor *p)
{
	return aside_literal(p->unrecordable);
}

static double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void claim_set_aside_user(struct processor *p, const char *user)
{
	double now = monotonic_seconds();
	int keep = 0;

	for (int i = 0; i < p->n_set_aside; i++) {
		if (p->set_aside[i].until <= now || strcmp(p->set_aside[i].user, user) == 0)
			continue;
		p->set_aside[keep++] = p->set_aside[i];
	}
	p->n_set_aside = keep;
	if (p->n_set_aside == SET_ASIDE_MAX)
		return; /* full: this one stays a candidate, which is only slower */
	snprintf(p->set_aside[p->n_set_aside].user, sizeof(p->set_aside[0].user), "%s", user);
	p->set_aside[p->n_set_aside].until = now + SET_ASIDE_SECONDS;
	p->n_set_aside++;
}

bool claim_users_set_aside(const struct processor *p)
{
	return p->last_walk_left_out_users;
}

/*
 * "{...}" of the users set aside now (expired ones are left out unless with_expired). NULL when
 * out of memory.
 */
static char *set_aside_literal(struct processor *p, bool with_expired)
{
	double now = monotonic_seconds();
	const char *users[SET_ASIDE_MAX];
	int n = 0;

	for (int i = 0; i < p->n_set_aside; i++)
		if (with_expired || p->set_aside[i].until > now)
			users[n++] = p->set_aside[i].user;
	return uuid_array_literal(users, n);
}

/*
 * Why a count of the users set aside: after a walk that passed over them found nothing, their
 * entries are all that can still be due (besides new ones). Counting every due entry walks the
 * due index through the index entries of every entry processed since the last vacuum: 57 ms at
 * the end of P1's 200,000-entry drain, where this count, a few index probes, took 0.6-1.7 ms.
 */
int claim_count_due(struct processor *p, bool set_aside_only, long long *due, struct db_error *error)
{
	char *unrecordable = unrecordable_literal(p);
	char *users = set_aside_only ? set_aside_literal(p, true) : NULL;
	const char *values[2] = {unrecordable, users};
	PGresult *res = NULL;

	if (!unrecordable || (set_aside_only && !users))
		db_error_set(error, NULL, "out of memory");
	else if (set_aside_only)
		res = db_query(p->conn, "SELECT count(*) FROM passport_entries e WHERE e.user_id = ANY($2::uuid[]) AND "
				       DUE_CONDITION " AND NOT e.id = ANY($1::uuid[])",
			       2, values, NULL, NULL, 0, error);
	else
		res = db_query(p->conn, "SELECT count(*) FROM passport_entries e WHERE " DUE_CONDITION
				       " AND NOT e.id = ANY($1::uuid[])",
			       1, values, NULL, NULL, 0, error);
	free(unrecordable);
	free(users);
	if (!res)
		return -1;
	*due = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/*
 * BEGIN, the transaction's settings and one query in a single round trip. Returns the query's
 * result, or NULL with the first error (the caller rolls back).
 */
static PGresult *begin_and_query(struct processor *p, const char *sql, int nparams, const char *const *values,
				 struct db_error *error)
{
	struct db_statement f[3] = {{.sql = "BEGIN"}, {0}, {.sql = sql, .nparams = nparams}};
	char timeout[DB_TIMEOUT_TEXT_SIZE];
	PGresult *res;

	if (nparams > (int)(sizeof(f[2].values) / sizeof(f[2].values[0]))) {
		db_error_set(error, NULL, "begin_and_query: too many parameters");
		return NULL;
	}
	for (int i = 0; i < nparams; i++)
		f[2].values[i] = values[i];
	db_transaction_settings(&f[1], p->config.statement_timeout_ms, p->config.synchronous_commit, timeout);
	if (db_pipeline_run(p->conn, f, 3, error) < 0)
		return NULL;
	res = f[2].res;
	f[2].res = NULL;
	PQclear(f[0].res);
	PQclear(f[1].res);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		db_error_set(error, NULL, "the user lock query returned no rows");
		return NULL;
	}
	return res;
}

/*
 * Which users a batch takes, in one statement (sent together with BEGIN):
 *   scan: the oldest due entries (about twice as many as users are wanted, at most a batch),
 *         leaving out users set aside;
 *   candidate: their users in order of first appearance, without repeats;
 *   counted: every candidate's due entries, counted in one pass (the statement's one snapshot:
 *         the same counts a count at each lock would see), as one object keyed by user (a join
 *         here may be planned as a nested loop, one aggregate per candidate);
 *   walk: lock candidates in that order while the due entries of the users locked so far fit in
 *         the batch (the first user always). Users held by another worker are skipped, not waited
 *         for, and do not count. It is a recursive CTE so that each user's lock is tried only when
 *         the walk reaches it (OFFSET 0 keeps the planner from evaluating the lock more than once).
 *
 * Why the counts are not taken user by user as the walk reaches them: under a steady stream the
 * due part of the table is small when it is analyzed, so both partial due indexes look alike to
 * the planner, which may then count each user by walking the (timestamp, id) index through every
 * due entry: a walk of several hundred users read the whole due set once per user. One count
 * for all candidates (user_id = ANY) reads each due entry at most once, whichever index serves it.
 * One row per locked user (id, due entries) in walk order, or one row with NULLs there when
 * none; every row also says how many entries the scan saw, whether one had no user, and how
 * many candidates the walk found held by other workers (which sizes the next walk's candidates).
 */
#define LOCK_USERS_SQL                                                                             \
	"WITH RECURSIVE scan AS MATERIALIZED ("                                                     \
	"  SELECT e.user_id, row_number() OVER (ORDER BY e.\"timestamp\", e.id) AS n FROM ("       \
	"   SELECT e.user_id, e.\"timestamp\", e.id FROM passport_entries e WHERE " DUE_CONDITION   \
	"   AND (e.user_id IS NULL OR NOT e.user_id = ANY($1::uuid[])) AND NOT e.id = ANY($5::uuid[])"  \
	"   ORDER BY e.\"timestamp\", e.id LIMIT $2::int) e),"                                       \
	" candidate AS MATERIALIZED ("                                                              \
	"  SELECT user_id AS id, row_number() OVER (ORDER BY min(n)) AS ord FROM scan"              \
	"  WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY min(n) LIMIT $3::int),"               \
	" counted AS MATERIALIZED ("                                                                \
	"  SELECT coalesce(jsonb_object_agg(k.user_id, k.due), '{}') AS due FROM ("                 \
	"   SELECT e.user_id::text, count(*) AS due FROM passport_entries e"                        \
	"   WHERE e.user_id = ANY(ARRAY(SELECT id FROM candidate)) AND " DUE_CONDITION                \
	"   AND NOT e.id = ANY($5::uuid[]) GROUP BY e.user_id) k),"                                  \
	" walk(ord, id, locked, due, total) AS ("                                                   \
	"  SELECT 0::bigint, NULL::uuid, false, 0::bigint, 0::bigint"                                \
	"  UNION ALL"                                                                               \
	"  SELECT c.ord, c.id, l.locked, d.due, w.total + d.due"                                      \
	"  FROM walk w JOIN candidate c ON c.ord = w.ord + 1 CROSS JOIN counted k"                    \
	"  CROSS JOIN LATERAL (SELECT pg_try_advisory_xact_lock(" LOCK_CLASS_USER ","              \
	"   hashtext(c.id::text)) AS locked OFFSET 0) l"                                              \
	"  CROSS JOIN LATERAL (SELECT CASE WHEN l.locked THEN coalesce((k.due ->> c.id::text)::bigint, 0)" \
	"   ELSE 0 END AS due) d"                                                                       \
	"  WHERE w.total < $4::int)"                                                                 \
	" SELECT s.scanned, s.null_user, w.id::text, w.due, h.held FROM"                              \
	" (SELECT count(*) AS scanned, coalesce(bool_or(user_id IS NULL), false) AS null_user FROM scan) s" \
	" CROSS JOIN (SELECT count(*) AS held FROM walk WHERE ord > 0 AND NOT locked) h"               \
	" LEFT JOIN (SELECT ord, id, due FROM walk WHERE locked) w ON true ORDER BY w.ord"

/*
 * Take more candidates at the next look: every candidate of this one was held by another worker.
 * Returns whether there are more to take.
 */
static bool widen_candidates(struct processor *p)
{
	if (p->candidate_users >= p->config.batch_size)
		return false;
	p->candidate_users = (int)fmin(2.0 * p->candidate_users, (double)p->config.batch_size);
	return true;
}

/*
 * One look at the queue: BEGIN, the walk, the claim. Sets *look_again when nothing was claimed
 * for a reason another look right away can get past (see claim_batch).
 */
static int claim_look(struct processor *p, struct batch *b, bool *look_again, struct db_error *error)
{
	char *aside = NULL, *locked = NULL, *unrecordable = NULL;
	bool null_user;
	char limit[16], scan[16], wanted_users[16], max_payload[24], budget[24];
	PGresult *res, *lock_res = NULL;

	aside = set_aside_literal(p, false);
	p->last_walk_left_out_users = aside && strcmp(aside, "{}") != 0; /* this look's scan passes them over */
	unrecordable = unrecordable_literal(p);
	if (!aside || !unrecordable) {
		free(aside);
		free(unrecordable);
		db_error_set(error, NULL, "out of memory");
		return BATCH_ERROR;
	}
	snprintf(max_payload, sizeof(max_payload), "%zu", p->config.max_payload_bytes);
	snprintf(budget, sizeof(budget), "%ld", CLAIM_TEXT_BUDGET);
	snprintf(limit, sizeof(limit), "%d", p->config.batch_size);
	/* Most of the oldest entries belong to different users: scan twice the users wanted. */
	snprintf(scan, sizeof(scan), "%d", (int)fmin(p->config.batch_size, fmax(64.0, 2.0 * p->candidate_users)));
	snprintf(wanted_users, sizeof(wanted_users), "%d", p->candidate_users);
	{
		const char *values[5] = {aside, scan, wanted_users, limit, unrecordable};
		res = begin_and_query(p, LOCK_USERS_SQL, 5, values, error);
	}
	free(aside);
	if (!res)
		goto error;
	if (PQntuples(res) < 1 || atol(PQgetvalue(res, 0, 0)) == 0) {
		PQclear(res);
		free(unrecordable);
		db_rollback(p->conn);
		return BATCH_EMPTY;
	}
	null_user = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	{
		int n = PQntuples(res), n_users = 0;
		const char **users = malloc(sizeof(*users) * (size_t)(n + 1));
		long due = 0;

		if (!users) {
			PQclear(res);
			db_error_set(error, NULL, "out of memory");
			goto error;
		}
		for (int i = 0; i < n; i++) {
			if (PQgetisnull(res, i, 2))
				continue; /* the one row of a walk that locked nobody */
			users[n_users++] = PQgetvalue(res, i, 2);
			due += atol(PQgetvalue(res, i, 3));
		}
		if (n_users > 0) {
			/*
			 * Next time: twice the users a batch of this average needs, plus as many as the
			 * walk just found held by other workers (who will hold about as many again).
			 */
			double average = (double)due / n_users;
			double held = atof(PQgetvalue(res, 0, 4));
			double wanted = average > 0 ? 2.0 * ceil((double)p->config.batch_size / average) + held : 16.0;
			p->candidate_users = (int)fmin(fmax(wanted, 4.0), (double)p->config.batch_size);
		}
		locked = n_users > 0 ? uuid_array_literal(users, n_users) : NULL;
		free(users);
		lock_res = res; /* kept to see which locked users got no entries */
	}

	if (!locked && !null_user) {
		PQclear(lock_res);
		free(unrecordable);
		db_rollback(p->conn);
		*look_again = widen_candidates(p);
		return BATCH_BUSY;
	}
	/*
	 * Entries without a user need no lock (they touch no DNA row); they join the batch whenever
	 * one of them is among the oldest due entries, so they are never starved by busy users.
	 */
	{
		const char *values[6] = {locked ? locked : "{}", limit, null_user ? "true" : "false", max_payload,
					  unrecordable, budget};
		res = db_query(p->conn, p->claim_users_sql, 6, values, NULL, NULL, 1, error);
		free(locked);
		locked = NULL;
		if (!res)
			goto error;
	}
	if (claim_take_result(p, b, res, error) < 0)
		goto error;
	/* A locked user with nothing claimed has its next entry held by another session. */
	for (int u = 0; u < PQntuples(lock_res); u++) {
		const char *user = PQgetvalue(lock_res, u, 2);
		bool claimed = false;
		if (PQgetisnull(lock_res, u, 2))
			continue;
		for (int i = 0; i < b->n_entries && !claimed; i++)
			claimed = strcmp(b->entries[i].user_id, user) == 0;
		if (!claimed)
			claim_set_aside_user(p, user);
	}
	PQclear(lock_res);
	lock_res = NULL;
	free(unrecordable);
	unrecordable = NULL;
	if (b->n_entries == 0) {
		batch_clear(b);
		db_rollback(p->conn);
		*look_again = true; /* its users are set aside now: the next walk passes them over */
		return BATCH_BUSY;
	}
	log_debug("batch: claimed %d entries", b->n_entries);
	return BATCH_DONE;

error:
	free(locked);
	free(unrecordable);
	PQclear(lock_res);
	batch_clear(b);
	db_rollback(p->conn);
	/* A prepared statement the server no longer has is forgotten now: the next look prepares it. */
	return strcmp(error->sqlstate, DB_SQLSTATE_NO_SUCH_STATEMENT) == 0 ? BATCH_BUSY : BATCH_ERROR;
}

/*
 * Nothing claimed is worth another look at once, without the pause BATCH_BUSY asks of the caller,
 * in two cases that are races between this drain's (or daemon's) own workers, not waits:
 *   - every candidate was held by another worker: it took the oldest users, and this worker saw
 *     the same ones (at start, when every worker looks at once, or after its own estimate of the
 *     users a batch needs fell short). The next look takes twice the candidates.
 *   - every user locked had nothing left to claim: the worker that held them committed between
 *     the walk's snapshot and the claim's, which sees their entries processed. They are set
 *     aside, so the next walk passes them over.
 * Before this, each such race cost a worker a pause of its caller's (50 ms in drain): at start, a
 * second worker kept losing the same oldest users to the first one for half a second.
 */
#define CLAIM_LOOKS 4

int claim_batch(struct processor *p, struct batch *b, struct db_error *error)
{
	for (int look = 1;; look++) {
		bool look_again = false;
		int status = claim_look(p, b, &look_again, error);

		if (status != BATCH_BUSY || !look_again || look == CLAIM_LOOKS)
			return status;
		log_debug("batch: nothing claimed at look %d of %d; looking again", look, CLAIM_LOOKS);
	}
}

int claim_entry(struct processor *p, struct batch *b, const char *entry_id, enum claim_entry_mode mode,
		struct db_error *error)
{
	char max_payload[24], limit[16];
	char *unrecordable = unrecordable_literal(p);
	static const char *const modes[] = {[CLAIM_WITH_OLDER] = "older", [CLAIM_ALONE] = "alone", [CLAIM_ANY] = "any"};
	const char *values[5] = {entry_id, max_payload, unrecordable, modes[mode], limit};
	PGresult *res;

	if (!unrecordable) {
		db_error_set(error, NULL, "out of memory");
		return -1;
	}
	snprintf(max_payload, sizeof(max_payload), "%zu", p->config.max_payload_bytes);
	snprintf(limit, sizeof(limit), "%d", p->config.batch_size);
	if (db_begin(p->conn, p->config.statement_timeout_ms, error) < 0) {
		free(unrecordable);
		return -1;
	}
	res = db_query(p->conn, p->claim_id_sql, 5, values, NULL, NULL, 1, error);
	free(unrecordable);
	if (!res)
		return -1;
	if (claim_take_result(p, b, res, error) < 0)
		return -1;
	return 0;
}
