/*
 * migrate: what the passport-migrate subcommands share (the connection, error printing and the
 * entry points). Every query goes through lib/db.h and reports a struct db_error; the
 * subcommands print it with the context of what they were doing.
 */
#ifndef PASSPORT_MIGRATE_MIGRATE_H
#define PASSPORT_MIGRATE_MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>

#define MIGRATE_PROGRAM "passport-migrate"

/* Exit codes shared by every subcommand. */
enum {
	MIGRATE_EXIT_OK = 0,
	MIGRATE_EXIT_FAILURE = 1, /* the database refused, a migration failed, a connection failed */
	MIGRATE_EXIT_USAGE = 2,   /* bad arguments, or a subcommand that is not implemented yet */
};

/* Options every subcommand accepts. dsn is NULL when not given on the command line. */
struct migrate_globals {
	const char *dsn;
};

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
 * Connect using, in order, globals->dsn, $PASSPORT_DATABASE_URL, or libpq's own environment
 * (PGHOST, PGDATABASE, ...), with client_encoding UTF8 and client_min_messages warning. On failure
 * prints libpq's message with any password masked (the connection string itself is never printed)
 * and returns NULL. The caller PQfinish-es the connection.
 */
PGconn *migrate_connect(const struct migrate_globals *globals);

#endif
