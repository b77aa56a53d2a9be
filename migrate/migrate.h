/*
 * migrate: what the passport-migrate subcommands share (the connection, error printing and the
 * entry points). Every query goes through lib/db.h and reports a struct db_error; the
 * subcommands print it with the context of what they were doing.
 */
#ifndef PASSPORT_MIGRATE_MIGRATE_H
#define PASSPORT_MIGRATE_MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>

struct db_error;

#define MIGRATE_PROGRAM "passport-migrate"

/* Exit codes shared by every subcommand. */
enum {
	MIGRATE_EXIT_OK = 0,
	MIGRATE_EXIT_FAILURE = 1, /* the database refused, a migration failed, a connection failed */
	MIGRATE_EXIT_USAGE = 2,   /* bad arguments, or a subcommand that is not implemented yet */
};

/* Options every subcommand accepts. dsn is NULL when not given on the command line. */
struct migrate_globals {
	const char *dsn; /* a copy of --dsn (migrate_take_dsn); lives until the program exits */
};

/*
 * Keep a copy of --dsn's argument in globals and blank the argument with '*', so that a password
 * given on the command line does not stay visible in /proc/<pid>/cmdline (as passportd does; a
 * password file is better still). A second --dsn replaces the first. -1 when out of memory.
 */
int migrate_take_dsn(struct migrate_globals *globals, char *argument);

/*
 * Subcommands: argv[0] is the subcommand name; each parses its own options (including --dsn and
 * --help) and returns an exit code.
 */
int schema_main(struct migrate_globals *globals, int argc, char **argv);
int entity_dna_main(struct migrate_globals *globals, int argc, char **argv);
int backfill_main(struct migrate_globals *globals, int argc, char **argv);
int verify_main(struct migrate_globals *globals, int argc, char **argv);
int prune_main(struct migrate_globals *globals, int argc, char **argv);

/* Print "passport-migrate: <message>" to stderr. */
void migrate_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The settings of a passport-migrate transaction, local to it (set_config(..., true) is SET
 * LOCAL), so that nothing outlives it, not even behind a transaction pooler.
 */
#define MIGRATE_TRANSACTION_SETTINGS_SQL                                                           \
	"SELECT set_config('TimeZone', 'UTC', true), set_config('lock_timeout', '5s', true)"

/*
 * BEGIN (BEGIN READ ONLY when read_only) and settings_sql (a constant SELECT of set_config(...,
 * true) calls) in one round trip. Returns 0, or -1 with error set.
 */
int migrate_begin(PGconn *conn, bool read_only, const char *settings_sql, struct db_error *error);

/* COMMIT; on failure ROLLBACK. Returns 0, or -1 with error set. */
int migrate_commit(PGconn *conn, struct db_error *error);

/*
 * Connect using, in order, globals->dsn, $PASSPORT_DATABASE_URL, or libpq's own environment
 * (PGHOST, PGDATABASE, ...), with client_encoding UTF8; notices below WARNING are dropped. On failure
 * prints libpq's message with any password masked (the connection string itself is never printed)
 * and returns NULL. The caller PQfinish-es the connection.
 */
PGconn *migrate_connect(const struct migrate_globals *globals);

/*
 * Refuse, at once and with a clear message, to run command (schema, backfill) behind a
 * transaction pooler: they hold a session-level advisory lock, which a transaction pooler would
 * lose between transactions or leave behind on a pooled server connection. Returns 0 when conn
 * keeps its session (a direct connection or a session-mode pooler), -1 after printing why not.
 * Opens a second connection only when a pooler is in between.
 */
int migrate_require_session(PGconn *conn, const struct migrate_globals *globals, const char *command);

#endif
