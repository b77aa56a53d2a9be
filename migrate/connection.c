/* connection: open the database connection for passport-migrate without ever printing a password. */
#include "db.h"
#include "migrate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void migrate_error(const char *fmt, ...)
{
	va_list args;

	fputs(MIGRATE_PROGRAM ": ", stderr);
	va_start(args, fmt);
	vfprintf(stderr, fmt, args);
	va_end(args);
	fputc('\n', stderr);
	fflush(stderr);
}

int migrate_take_dsn(struct migrate_globals *globals, char *argument)
{
	static char *copy; /* the program's one --dsn, kept until exit */
	char *taken = strdup(argument);

	if (!taken) {
		migrate_error("out of memory");
		return -1;
	}
	free(copy);
	copy = taken;
	globals->dsn = copy;
	memset(argument, '*', strlen(argument));
	return 0;
}

PGconn *migrate_connect(const struct migrate_globals *globals)
{
	const char *dsn = globals->dsn;
	const char *origin = "--dsn";
	const char *keywords[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
	const char *values[] = {NULL, MIGRATE_PROGRAM, "UTF8", NULL};
	struct db_error error;
	PGconn *conn;

	if (!dsn) {
		dsn = getenv("PASSPORT_DATABASE_URL");
		origin = "PASSPORT_DATABASE_URL";
	}
	if (!dsn || !*dsn) {
		dsn = "";
		origin = "the PG* environment";
	}
	values[0] = dsn;
	/* db_connect_params masks the password in its message (the same rule as passportd's). */
	conn = db_connect_params(keywords, values, NULL, &error);
	if (!conn) {
		migrate_error("cannot connect to the database (connection string from %s): %s", origin, error.message);
		return NULL;
	}
	db_quiet_notices(conn);
	return conn;
}

int migrate_begin(PGconn *conn, bool read_only, const char *settings_sql, struct db_error *error)
{
	char *sql = NULL;
	int rc;

	if (asprintf(&sql, "%s; %s", read_only ? "BEGIN READ ONLY" : "BEGIN", settings_sql) < 0) {
		db_error_set(error, NULL, "out of memory");
		return -1;
	}
	rc = db_command(conn, sql, error);
	free(sql);
	if (rc < 0)
		db_rollback(conn);
	return rc;
}

int migrate_commit(PGconn *conn, struct db_error *error)
{
	if (db_command(conn, "COMMIT", error) < 0) {
		db_rollback(conn);
		return -1;
	}
	return 0;
}

/* pg_backend_pid() of the server connection that runs the next statement; -1 on error. */
static long server_pid(PGconn *conn)
{
	struct db_error ignored;
	PGresult *res = db_query(conn, "SELECT pg_backend_pid()", 0, NULL, NULL, NULL, 0, &ignored);
	long pid = res && PQntuples(res) == 1 ? atol(PQgetvalue(res, 0, 0)) : -1;

	PQclear(res);
	return pid;
}

/*
 * Why two steps. A server tells its client its process id when the connection starts; a pooler
 * makes one up. The same id as pg_backend_pid() means a session of our own (the common case,
 * decided at once). Another one means a pooler, in session or transaction mode: a second client
 * then opens a transaction while this one is idle. A transaction pooler hands it this client's
 * idle server connection (PgBouncer reuses the most recent one), or moves this client to another
 * server connection; a session pooler does neither.
 */
int migrate_require_session(PGconn *conn, const struct migrate_globals *globals, const char *command)
{
	long first = server_pid(conn), other = -1, again;
	PGconn *probe;
	struct db_error ignored;

	if (first < 0 || first == (long)PQbackendPID(conn))
		return 0;
	probe = migrate_connect(globals);
	if (!probe)
		return -1;
	if (db_command(probe, "BEGIN", &ignored) == 0)
		other = server_pid(probe);
	PQfinish(probe); /* ends its transaction (while it is open, a pool of one has nothing for conn) */
	again = other == first ? -1 : server_pid(conn);
	if (other != first && again == first)
		return 0;
	migrate_error("%s: this connection goes through a transaction pooler (each transaction may run on another "
		      "server connection), where the session lock that keeps two runs of %s apart would be lost "
		      "or left behind on a pooled connection. Connect to the server directly, or through a pooler "
		      "in session mode (on Supabase: the direct connection or the session pooler, port 5432, not "
		      "port 6543).",
		      command, command);
	return -1;
}
