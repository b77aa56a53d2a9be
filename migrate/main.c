/* passport-migrate: the companion tool of passportd (schema, backfill, verify, entity-dna, prune). */
#include "build_config.h"
#include "db.h"
#include "migrate.h"
#include "version.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
	fputs("Usage: " MIGRATE_PROGRAM " [--dsn DSN] COMMAND [OPTIONS]\n"
	      "\n"
	      "Commands:\n"
	      "  schema       apply the project's SQL migrations (sql/) in order, once each\n"
	      "  entity-dna   seed artist target vectors (entity_dna) from the artists' own DNA\n"
	      "  backfill     copy the legacy logs into passport_entries (batched, resumable)\n"
	      "  verify       check that every legacy row was backfilled (exit 1 when some are missing)\n"
	      "  prune        delete old dna_evolution rows in short batches (--evolution-older-than DAYS)\n"
	      "\n"
	      "Options:\n"
	      "      --dsn DSN   connection string, keyword or URI form (default:\n"
	      "                  $PASSPORT_DATABASE_URL, then the PG* environment variables)\n"
	      "  -h, --help      show this help (`" MIGRATE_PROGRAM " COMMAND --help` for a command)\n"
	      "  -V, --version   show the version\n"
	      "\n"
	      "Exit status: 0 success, 1 failure, 2 usage error.\n",
	      out);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"dsn", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct migrate_globals globals = {.dsn = NULL};
	const char *command;
	int opt;

	/* Line-buffered even into a pipe, so progress and errors interleave in order. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A terminal tool: libpq's messages keep their lines (a syntax error's caret, a hint). */
	db_keep_line_breaks(true);

	/* "+": stop at the command name, whose options its own parser reads. */
	while ((opt = getopt_long(argc, argv, "+hV", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			if (migrate_take_dsn(&globals, optarg) < 0)
				return MIGRATE_EXIT_FAILURE;
			break;
		case 'h':
			usage(stdout);
			return MIGRATE_EXIT_OK;
		case 'V': {
			char line[512];
			printf("%s\n", version_line(MIGRATE_PROGRAM, line, sizeof(line)));
			return MIGRATE_EXIT_OK;
		}
		default:
			usage(stderr);
			return MIGRATE_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		migrate_error("no command given");
		usage(stderr);
		return MIGRATE_EXIT_USAGE;
	}

	command = argv[optind];
	argc -= optind;
	argv += optind;
	if (strcmp(command, "schema") == 0)
		return schema_main(&globals, argc, argv);
	if (strcmp(command, "entity-dna") == 0)
		return entity_dna_main(&globals, argc, argv);
	if (strcmp(command, "backfill") == 0)
		return backfill_main(&globals, argc, argv);
	if (strcmp(command, "verify") == 0)
		return verify_main(&globals, argc, argv);
	if (strcmp(command, "prune") == 0)
		return prune_main(&globals, argc, argv);
	if (strcmp(command, "help") == 0) {
		usage(stdout);
		return MIGRATE_EXIT_OK;
	}
	migrate_error("unknown command '%s'", command);
	usage(stderr);
	return MIGRATE_EXIT_USAGE;
}
