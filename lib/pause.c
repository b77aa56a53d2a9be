/* pause: reading and changing the pause state (passport_pause) shared by every passportd. */
#include "pause.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "claim.h"
#include "tables.h"

#define SQLSTATE_UNDEFINED_TABLE "42P01"

bool pause_valid_name(const char *name)
{
	return strcmp(name, "all") == 0 || system_from_name(name) != 0;
}

int pause_read(PGconn *conn, unsigned *paused, struct db_error *error)
{
	PGresult *res;

	*paused = 0;
	res = db_query(conn, "SELECT system FROM passport_pause WHERE paused", 0, NULL, NULL, NULL, 0, error);
	if (!res) {
		if (strcmp(error->sqlstate, SQLSTATE_UNDEFINED_TABLE) == 0) {
			db_error_clear(error);
			return 0;
		}
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *name = PQgetvalue(res, i, 0);
		*paused |= strcmp(name, "all") == 0 ? SYSTEM_ALL : system_from_name(name);
	}
	PQclear(res);
	return 0;
}

long long pause_set(PGconn *conn, const char *const *names, int n_names, bool paused, struct db_error *error)
{
	/* $1: the names as a text[] literal; $2: paused. */
	char list[256];
	const char *values[2];
	PGresult *res;
	long long made_due = 0;
	size_t used;

	/* Pausing nothing named pauses 'all'; resuming nothing named resumes every row. */
	snprintf(list, sizeof(list), "%s", paused ? "{all}" : "{all,mediaid,coliseum,treasury}");
	if (n_names > 0) {
		used = (size_t)snprintf(list, sizeof(list), "{");
		for (int i = 0; i < n_names && used < sizeof(list); i++)
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? "," : "", names[i]);
		if (used + 2 > sizeof(list)) {
			db_error_set(error, NULL, "too many names");
			return -1;
		}
		strcat(list, "}");
	}
	values[0] = list;
	values[1] = paused ? "true" : "false";
	if (db_command(conn, "BEGIN", error) < 0)
		return -1;
	res = db_query(conn,
		       "INSERT INTO passport_pause AS p (system, paused) SELECT unnest($1::text[]), $2::boolean"
		       " ON CONFLICT (system) DO UPDATE SET paused = excluded.paused, changed_at = now(),"
		       " changed_by = current_user",
		       2, values, NULL, NULL, 0, error);
	if (!res)
		goto rollback;
	PQclear(res);
	if (!paused) {
		/*
		 * Entries postponed while a system was paused or disabled wait for their next attempt
		 * time; make them due now (those that still touch a paused system are postponed again).
		 */
		res = db_query(conn,
			       "UPDATE passport_entries e SET next_attempt_at = NULL"
			       " WHERE e.processed IS NOT TRUE AND e.dead_at IS NULL AND e.next_attempt_at > now()"
			       " AND (e.last_error LIKE 'paused: %' OR e.last_error LIKE 'disabled: %')",
			       0, NULL, NULL, NULL, 0, error);
		if (!res)
			goto rollback;
		made_due = strtoll(PQcmdTuples(res), NULL, 10);
		PQclear(res);
		res = db_query(conn, "SELECT pg_notify('" PASSPORT_CHANNEL "', '')", 0, NULL, NULL, NULL, 0, error);
		if (!res)
			goto rollback;
		PQclear(res);
	}
	if (db_command(conn, "COMMIT", error) < 0)
		return -1;
	return made_due;
rollback:
	{
		struct db_error ignored;
		(void)db_command(conn, "ROLLBACK", &ignored);
	}
	return -1;
}
