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

const char *migrate_result_error(const PGresult *result, char *buf, size_t size)
{
	const char *message = result ? PQresultErrorMessage(result) : "";
	size_t len;

	if (!message || !*message)
		message = result ? PQresStatus(PQresultStatus(result)) : "no result (connection lost?)";
	snprintf(buf, size, "%s", message);
	len = strlen(buf);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
	return buf;
}

int migrate_exec(PGconn *conn, const char *sql, const char *what)
{
	PGresult *result = PQexec(conn, sql);
	ExecStatusType status = PQresultStatus(result);
	char message[2048];

	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
		PQclear(result);
		return 0;
	}
	migrate_error("%s: %s", what, migrate_result_error(result, message, sizeof message));
	PQclear(result);
	return -1;
}

/* Mask every occurrence of secret (when at least 1 character long) in message. */
/* The same rule as the daemon's (lib/db.c): an unparsable string is never quoted back. */
void migrate_mask_password(const char *dsn, char *message, size_t size)
{
	db_redact_error(dsn ? dsn : "", message, size);
}

PGconn *migrate_connect(const struct migrate_globals *globals)
{
	const char *dsn = globals->dsn;
	const char *origin = "--dsn";
	const char *keywords[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
	const char *values[] = {NULL, MIGRATE_PROGRAM, "UTF8", NULL};
	char message[2048];
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
	conn = PQconnectdbParams(keywords, values, 1);
	if (!conn) {
		migrate_error("cannot connect to the database: out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		size_t len;

		snprintf(message, sizeof message, "%s", PQerrorMessage(conn));
		migrate_mask_password(dsn, message, sizeof message);
		len = strlen(message);
		while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
			message[--len] = '\0';
		migrate_error("cannot connect to the database (connection string from %s): %s", origin,
			      message);
		PQfinish(conn);
		return NULL;
	}
	if (migrate_exec(conn, "SET client_min_messages = warning", "set client_min_messages") < 0) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}
