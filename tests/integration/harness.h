/* harness: helpers for integration tests against the private PostgreSQL that scripts/test starts. */
#ifndef PASSPORT_TEST_HARNESS_H
#define PASSPORT_TEST_HARNESS_H

#include <stdarg.h>

#include <libpq-fe.h>
#include <stddef.h>

#include "task.h" /* the assertion vocabulary every integration test uses */

/*
 * Create a fresh database named "t_<name>" (dropped first if it exists) holding the upstream
 * tables of tests/sql/upstream.sql and the media_engagement_log layout given by mel_layout
 * ("canonical", "production" or NULL for none), then run `passport-migrate schema` against it.
 * Writes the database's connection string into dsn (libpq keyword form). Returns an open
 * connection (the caller PQfinish-es it). Exits 77 (meson's "skipped") when no test server is
 * configured (PASSPORT_TEST_PGHOST unset), and fails the test on any error.
 */
PGconn *harness_create_database(const char *name, const char *mel_layout, char *dsn, size_t dsnlen);

/*
 * The connection string dsn, logging in as role instead ("passportd" or "passport_migrate", the
 * least-privilege roles of sql/090_roles.sql, which harness_create_database lets log in).
 */
void harness_role_dsn(const char *dsn, const char *role, char *out, size_t outlen);

/* Let the least-privilege roles log in (trust authentication on the test socket); safe in parallel. */
void harness_allow_role_login(PGconn *conn);

/* Connect to a connection string; fails the test on error. */
PGconn *harness_connect(const char *dsn);

struct processor;
/*
 * One processor (lib/batch.h) on a connection of its own, as one worker of a drain has it, with
 * the default configuration and batches of batch_size. *conn receives the connection; the caller
 * destroys the processor, then finishes the connection.
 */
struct processor *harness_open_processor(const char *dsn, int batch_size, PGconn **conn);

struct entity_cache;
/* The same, with a target vector cache it shares (lib/entity_cache.h; NULL: a cache of its own). */
struct processor *harness_open_processor_sharing(const char *dsn, int batch_size, struct entity_cache *cache,
						 PGconn **conn);

/*
 * A fresh database (harness_create_database, no legacy table) holding tests/sql/workload.sql's
 * deterministic workload of users x per_user entries; fails the test when it does not.
 */
PGconn *harness_open_workload(const char *name, int users, int per_user, char *dsn, size_t dsnlen);

/* Run SQL (several statements allowed); fail the test, printing the SQL and the error, on error. */
void harness_exec(PGconn *conn, const char *sql);

/* First column of the first row of a query as a long long / malloc'd string (NULL for SQL NULL). */
long long harness_query_int(PGconn *conn, const char *sql);
char *harness_query_text(PGconn *conn, const char *sql);

/* printf-style versions of the three above, and the formatter they share (malloc'd). */
void harness_execf(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long harness_intf(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *harness_textf(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *harness_vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* Run a file of the source tree (a path relative to PASSPORT_SOURCE_ROOT), e.g. tests/sql/workload.sql. */
void harness_exec_source_file(PGconn *conn, const char *relative);
/* A whole file as a malloc'd string; fails the test when it cannot be read. */
char *harness_read_file(const char *path);

/*
 * Run a program (argv[0] is a path, argv NULL-terminated) with extra environment assignments
 * env (NAME=VALUE strings, NULL-terminated, may be NULL), wait for it, and return its exit status
 * (128 + signal when killed). Its stdout and stderr are captured together into *output (malloc'd,
 * NUL-terminated) when output is not NULL, and echoed to the test log either way.
 */
int harness_run(const char *const argv[], const char *const env[], char **output);

/* Paths of the built programs (from the PASSPORTD / PASSPORT_MIGRATE environment variables). */
const char *harness_passportd(void);
const char *harness_migrate(void);

#endif
