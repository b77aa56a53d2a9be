/*
 * options: passportd's command line. One table says which options each subcommand takes and how
 * `--help` describes them; an option given to a subcommand that does not take it is a usage
 * error (exit 2) before anything connects, so that `drain --dry-run` can never really drain.
 */
#ifndef PASSPORTD_OPTIONS_H
#define PASSPORTD_OPTIONS_H

#include <stdbool.h>

#include "admin.h"
#include "pause_command.h"
#include "config.h"

#define EXIT_USAGE 2   /* bad command line */
#define EXIT_CONFIG 78 /* EX_CONFIG: the configuration cannot be loaded; systemd does not restart */

enum command {
	COMMAND_RUN,
	COMMAND_DRAIN,
	COMMAND_STATUS,
	COMMAND_REPROCESS,
	COMMAND_INSPECT,
	COMMAND_PAUSE,
	COMMAND_RESUME,
	COMMAND_COUNT,
};

struct options {
	struct config config;
	struct config_sources sources;
	enum command command;
	const char *command_name;
	bool print_config;
	bool check_config;        /* load the configuration and exit: 0, or EXIT_CONFIG */
	bool json;
	struct status_options status; /* status: --json (copied from json), --check, thresholds */
	struct reprocess_options reprocess;
	const char *inspect_user; /* inspect's USER argument */
	const char *systems[4];   /* pause, resume: the SYSTEM arguments (none: all) */
	int n_systems;
	const char *plot;         /* inspect --plot FILE */
	const char *role;         /* inspect --role ROLE */
	char *dsn_copy;           /* --dsn, copied before the argument is blanked */
};

/*
 * Parse argv into opt (config_init'ed by the caller). Returns OPTIONS_CONTINUE to run the
 * command, or the status to exit with: 0 after printing --help or --version, EXIT_USAGE after
 * saying what is wrong with the command line.
 */
#define OPTIONS_CONTINUE (-1)
int options_parse(int argc, char **argv, struct options *opt);

/* Release what options_parse allocated (and the config). */
void options_finish(struct options *opt);

#endif
