/* queue: the queue's due / retrying / dead counts and the age of its oldest due entry, in one statement. */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

#include "claim.h"
#include "db.h"

/* Result columns of QUEUE_COUNTS_SQL. */
enum {
	QUEUE_COL_DUE,
	QUEUE_COL_RETRYING,
	QUEUE_COL_DEAD,
	QUEUE_COL_OLDEST_DUE_AGE, /* seconds; NULL when nothing is due */
	QUEUE_COLUMNS,
};

static const char QUEUE_COUNTS_SQL[] =
	"SELECT count(*) FILTER (WHERE " DUE_CONDITION "),"
	"       count(*) FILTER (WHERE e.dead_at IS NULL AND e.next_attempt_at > now()),"
	"       count(*) FILTER (WHERE e.dead_at IS NOT NULL),"
	"       extract(epoch FROM now() - min(e.\"timestamp\") FILTER (WHERE " DUE_CONDITION "))"
	"  FROM passport_entries e"
	" WHERE NOT e.processed";

int queue_read_counts(PGconn *conn, struct queue_counts *counts, struct db_error *error)
{
	PGresult *res = db_query(conn, QUEUE_COUNTS_SQL, 0, NULL, NULL, NULL, 0, error);

	if (!res)
		return -1;
	if (PQntuples(res) != 1 || PQnfields(res) != QUEUE_COLUMNS) {
		db_error_set(error, NULL, "queue counts: unexpected result shape");
		PQclear(res);
		return -1;
	}
	memset(counts, 0, sizeof(*counts));
	counts->due = strtol(PQgetvalue(res, 0, QUEUE_COL_DUE), NULL, 10);
	counts->retrying = strtol(PQgetvalue(res, 0, QUEUE_COL_RETRYING), NULL, 10);
	counts->dead = strtol(PQgetvalue(res, 0, QUEUE_COL_DEAD), NULL, 10);
	counts->has_oldest_due = !PQgetisnull(res, 0, QUEUE_COL_OLDEST_DUE_AGE);
	if (counts->has_oldest_due)
		counts->oldest_due_age_seconds = strtod(PQgetvalue(res, 0, QUEUE_COL_OLDEST_DUE_AGE), NULL);
	PQclear(res);
	return 0;
}
