/* db: connecting to PostgreSQL and small helpers around libpq results. */
#ifndef PASSPORT_DB_H
#define PASSPORT_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/*
 * The connection string to use: dsn when given, else $PASSPORT_DATABASE_URL, else "" (libpq's
 * own PG* environment and service file). The result is never logged: it may hold a password.
 */
const char *db_resolve_dsn(const char *dsn);

/*
 * Open a blocking connection and prepare the session (application_name, UTC, quiet notices,
 * lock_timeout so a row held by another client can never stall a batch for long). Returns the
 * connection, or NULL with libpq's reason in err. The caller owns the connection (PQfinish).
 */
PGconn *db_connect(const char *dsn, const char *application_name, char *err, size_t errlen);

/* libpq's error message of conn or res on one line, without a trailing newline. */
void db_error_text(PGconn *conn, const PGresult *res, char *err, size_t errlen);

/*
 * Make a libpq error message safe to print for a connection made with dsn: when dsn does not
 * parse, libpq's message may quote the text around the error (a password among it), so the whole
 * message is replaced; otherwise every occurrence of the password is masked.
 */
void db_redact_error(const char *dsn, char *message, size_t size);

/* 0 when dsn (after db_resolve_dsn) is a valid connection string, else -1 with a reason that never quotes it. */
int db_check_dsn(const char *dsn, char *err, size_t errlen);

/* True when the connection is gone (the caller should reconnect). */
bool db_connection_lost(PGconn *conn);

/*
 * Run a command that returns no rows (BEGIN, COMMIT, SET ...). Returns 0, or -1 with a reason in
 * err. The result is cleared either way.
 */
int db_command(PGconn *conn, const char *sql, char *err, size_t errlen);

/* SQLSTATE of a failed result ("" when none). */
const char *db_sqlstate(const PGresult *res);

#endif
