/* connection: open the database connection for passport-migrate without ever printing a password. */
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
static void mask_secret(char *message, size_t size, const char *secret, size_t secret_len)
{
	static const char mask[] = "********";
	size_t mask_len = sizeof mask - 1;
	char *hit;

	if (secret_len == 0)
		return;
	while ((hit = memmem(message, strlen(message), secret, secret_len)) != NULL) {
		size_t tail = strlen(hit + secret_len);
		size_t offset = (size_t)(hit - message);

		if (offset + mask_len + tail + 1 > size) {
			/* No room to grow: truncate at the secret rather than leave it visible. */
			*hit = '\0';
			return;
		}
		memmove(hit + mask_len, hit + secret_len, tail + 1);
		memcpy(hit, mask, mask_len);
	}
}

/*
 * Why two ways: PQconninfoParse finds the password of any valid connection string, but an invalid
 * one is exactly when libpq's message may quote parts of it, so the raw text is also searched for
 * "password=" (keyword form) and "scheme://user:password@" (URI form).
 */
void migrate_mask_password(const char *dsn, char *message, size_t size)
{
	PQconninfoOption *options;
	const char *p;

	if (!dsn || !*dsn)
		return;
	options = PQconninfoParse(dsn, NULL);
	if (options) {
		for (PQconninfoOption *o = options; o->keyword; o++)
			if (strcmp(o->keyword, "password") == 0 && o->val)
				mask_secret(message, size, o->val, strlen(o->val));
		PQconninfoFree(options);
	}

	p = strstr(dsn, "://");
	if (p) {
		const char *authority = p + 3;
		const char *at = strchr(authority, '@');
		const char *colon = strchr(authority, ':');
		if (at && colon && colon < at)
			mask_secret(message, size, colon + 1, (size_t)(at - colon - 1));
	}
	for (p = strstr(dsn, "password"); p; p = strstr(p + 1, "password")) {
		const char *value = p + strlen("password");
		size_t len = 0;

		while (*value == ' ' || *value == '\t')
			value++;
		if (*value != '=')
			continue;
		value++;
		while (*value == ' ' || *value == '\t')
			value++;
		if (*value == '\'') {
			value++;
			while (value[len] && value[len] != '\'')
				len += value[len] == '\\' && value[len + 1] ? 2 : 1;
		} else {
			while (value[len] && value[len] != ' ' && value[len] != '\t' && value[len] != '&')
				len++;
		}
		mask_secret(message, size, value, len);
	}
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
