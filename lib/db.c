/* db: connecting to PostgreSQL and small helpers around libpq results. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *db_resolve_dsn(const char *dsn)
{
	const char *env;

	if (dsn && *dsn)
		return dsn;
	env = getenv("PASSPORT_DATABASE_URL");
	if (env && *env)
		return env;
	return "";
}

void db_error_text(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *message = NULL;
	size_t n;

	if (res)
		message = PQresultErrorMessage(res);
	if ((!message || !*message) && conn)
		message = PQerrorMessage(conn);
	if (!message || !*message)
		message = "unknown database error";
	snprintf(err, errlen, "%s", message);
	/* One line: fold newlines, drop the trailing one. */
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n = strlen(err);
	while (n > 0 && err[n - 1] == ' ')
		err[--n] = '\0';
}

int db_check_dsn(const char *dsn, char *err, size_t errlen)
{
	PQconninfoOption *options = PQconninfoParse(db_resolve_dsn(dsn), NULL);

	if (!options) {
		snprintf(err, errlen,
			 "invalid connection string (not shown, it may hold a password): check its syntax, "
			 "e.g. 'host=... dbname=...' or 'postgresql://user@host/db'");
		return -1;
	}
	PQconninfoFree(options);
	return 0;
}

/* Replace every occurrence of secret in message by asterisks, within size. */
static void mask_secret(char *message, size_t size, const char *secret)
{
	static const char mask[] = "********";
	size_t secret_len = strlen(secret), mask_len = sizeof(mask) - 1;
	char *hit = message;

	if (secret_len == 0)
		return;
	while ((hit = strstr(hit, secret)) != NULL) {
		size_t tail = strlen(hit + secret_len);
		if ((size_t)(hit - message) + mask_len + tail + 1 > size) {
			*hit = '\0';
			return;
		}
		memmove(hit + mask_len, hit + secret_len, tail + 1);
		memcpy(hit, mask, mask_len);
		hit += mask_len;
	}
}

void db_redact_error(const char *dsn, char *message, size_t size)
{
	PQconninfoOption *options = PQconninfoParse(db_resolve_dsn(dsn), NULL);

	if (!options) {
		db_check_dsn(dsn, message, size);
		return;
	}
	for (PQconninfoOption *o = options; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val)
			mask_secret(message, size, o->val);
	PQconninfoFree(options);
}

PGconn *db_connect(const char *dsn, const char *application_name, char *err, size_t errlen)
{
	const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
	const char *values[] = {db_resolve_dsn(dsn), application_name, "10", NULL};
	PGconn *conn;

	/* expand_dbname = 1: dbname may be a whole connection string or URI. */
	conn = PQconnectdbParams(keys, values, 1);
	if (!conn) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		db_error_text(conn, NULL, err, errlen);
		db_redact_error(dsn, err, errlen);
		PQfinish(conn);
		return NULL;
	}
	if (db_command(conn,
		       "SET TimeZone = 'UTC'; SET client_min_messages = warning; "
		       "SET lock_timeout = '10s'; SET idle_in_transaction_session_timeout = '10min'",
		       err, errlen) < 0) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

bool db_connection_lost(PGconn *conn)
{
	return !conn || PQstatus(conn) != CONNECTION_OK;
}

int db_command(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
		db_error_text(conn, res, err, errlen);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

const char *db_sqlstate(const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return state ? state : "";
}
