/* connection: open the database connection for passport-migrate without ever printing a password. */
#include "db.h"
#include "migrate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
	if (db_command(conn, "SET client_min_messages = warning", &error) < 0) {
		migrate_error("set client_min_messages: %s", error.message);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}
