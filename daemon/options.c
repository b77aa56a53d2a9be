/*
 * options: passportd's command line as one table (name, argument, the subcommands that take it,
 * help text). getopt_long reads it; the subcommand is then known, and every option given is
 * checked against it; `passportd --help` shows every subcommand's options, `passportd CMD
 * --help` only CMD's.
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "inspect.h"
#include "pause.h"
#include "version.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define RUN (1u << COMMAND_RUN)
#define DRAIN (1u << COMMAND_DRAIN)
#define STATUS (1u << COMMAND_STATUS)
#define REPROCESS (1u << COMMAND_REPROCESS)
#define INSPECT (1u << COMMAND_INSPECT)
#define PAUSE (1u << COMMAND_PAUSE)
#define RESUME (1u << COMMAND_RESUME)
#define EVERY (RUN | DRAIN | STATUS | REPROCESS | INSPECT | PAUSE | RESUME)
#define MAX_SEEN 256
#define HELP_COLUMN 27

static const struct command_info {
	const char *name;
	const char *arguments; /* after the name in the usage line */
	const char *summary;
} commands[COMMAND_COUNT] = {
	[COMMAND_RUN] = {"run", "[OPTIONS]",
			 "the service (default): wake on NOTIFY, poll for retries, process batches\n"
			 "until SIGTERM; SIGHUP reloads the config file"},
	[COMMAND_DRAIN] = {"drain", "[OPTIONS]", "process every due entry, print a summary, exit"},
	[COMMAND_STATUS] = {"status", "[OPTIONS]",
			    "queue health: due, retrying, dead, throughput, oldest due, top errors"},
	[COMMAND_REPROCESS] = {"reprocess", "(FILTER... | --all) [OPTIONS]",
			       "requeue failed entries chosen by filters, or every dead one with --all;\n"
			       "never processed ones"},
	[COMMAND_INSPECT] = {"inspect", "USER [OPTIONS]",
			     "USER (a user id or an email): DNA rows and their norms, entries by state\n"
			     "and the latest ones, the DNA's evolution and drift; read-only"},
	[COMMAND_PAUSE] = {"pause", "[SYSTEM...] [OPTIONS]",
			   "pause the named systems (mediaid, coliseum, treasury; none: all) for\n"
			   "every passportd: entries that touch them stay unprocessed until resume"},
	[COMMAND_RESUME] = {"resume", "[SYSTEM...] [OPTIONS]",
			    "resume the named systems (none: all) and make the postponed entries due"},
};

enum {
	OPT_POLL_INTERVAL = 1000,
	OPT_NO_LISTEN,
	OPT_SYSTEMS,
	OPT_MAX_ATTEMPTS,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_PRINT_CONFIG,
	OPT_CHECK_CONFIG,
	OPT_JSON,
	OPT_ID,
	OPT_USER,
	OPT_EVENT_TYPE,
	OPT_SINCE,
	OPT_UNTIL,
	OPT_ERROR_LIKE,
	OPT_LIMIT,
	OPT_DRY_RUN,
	OPT_NOW,
	OPT_ALL,
	OPT_PLOT,
	OPT_ROLE,
	OPT_METRICS_LISTEN,
	OPT_STATEMENT_TIMEOUT,
	OPT_CHECK,
	OPT_MAX_LAG,
	OPT_MAX_DEAD,
};

/*
 * One row per (option, meaning): an option whose help differs between subcommands (--limit,
 * --since) has a row for each. default_of names the option-table entry whose default the help
 * shows.
 */
static const struct cli_option {
	const char *name;
	int short_name;
	int code;
	const char *argument; /* NULL: no argument */
	unsigned commands;
	const char *help;
	const char *default_of;
} cli_options[] = {
	{"dsn", 'd', 'd', "DSN", EVERY,
	 "connection string or URI; else $PASSPORT_DATABASE_URL, else\n"
	 "libpq's environment (PGHOST, PGSERVICE, PGPASSFILE, ...)", NULL},
	{"config", 'c', 'c', "FILE", EVERY,
	 "config file; default $PASSPORTD_CONFIG (which must exist),\nelse " CONFIG_DEFAULT_PATH " if it exists",
	 NULL},
	{"log-level", 0, OPT_LOG_LEVEL, "LEVEL", EVERY, "", "log_level"},
	{"log-format", 0, OPT_LOG_FORMAT, "FORMAT", EVERY, "", "log_format"},
	{"print-config", 0, OPT_PRINT_CONFIG, NULL, EVERY, "print the effective configuration (no password) and exit", NULL},
	{"check-config", 0, OPT_CHECK_CONFIG, NULL, EVERY,
	 "load the configuration, print nothing, exit 0 (valid) or 78 (not)", NULL},
	{"help", 'h', 'h', NULL, EVERY, "show this help", NULL},
	{"version", 'V', 'V', NULL, EVERY, "show the version, git revision, libpq, sd_notify and BLAS", NULL},
	{"batch-size", 'b', 'b', "N", RUN | DRAIN | REPROCESS, "entries per batch", "batch_size"},
	{"workers", 'j', 'j', "N", RUN | DRAIN,
	 "work with N connections in parallel, each on other users (run: after\n"
	 "a full batch, during a backlog); 0: one per online CPU, at most 4;\n"
	 "more than the server's cores do not help", "workers"},
	{"systems", 0, OPT_SYSTEMS, "LIST", RUN | DRAIN | REPROCESS, "enabled systems", "systems"},
	{"max-attempts", 0, OPT_MAX_ATTEMPTS, "N", RUN | DRAIN | REPROCESS, "failed attempts before an entry is dead",
	 "max_attempts"},
	{"poll-interval", 0, OPT_POLL_INTERVAL, "SEC", RUN, "poll for retries and missed notifications", "poll_interval"},
	{"no-listen", 0, OPT_NO_LISTEN, NULL, RUN, "poll only: for transaction poolers, where LISTEN does not work", NULL},
	{"statement-timeout", 0, OPT_STATEMENT_TIMEOUT, "SEC", RUN,
	 "the server cancels a statement of the worker after SEC seconds", "statement_timeout"},
	{"metrics-listen", 0, OPT_METRICS_LISTEN, "HOST:PORT", RUN, "serve Prometheus metrics at http://HOST:PORT/metrics",
	 NULL},
	{"json", 0, OPT_JSON, NULL, STATUS | INSPECT | REPROCESS, "print one JSON object", NULL},
	{"check", 0, OPT_CHECK, NULL, STATUS,
	 "one monitoring line; exit 0 OK, 1 WARNING (dead over --max-dead),\n"
	 "2 CRITICAL (lag over --max-lag, or the database unreachable)", NULL},
	{"max-lag", 0, OPT_MAX_LAG, "SEC", STATUS,
	 "--check: the longest the oldest due entry may wait since created_at\n(default " STRINGIFY(300) ")", NULL},
	{"max-dead", 0, OPT_MAX_DEAD, "N", STATUS, "--check: the most dead entries that are OK (default 0)", NULL},
	{"all", 0, OPT_ALL, NULL, REPROCESS, "select every dead entry (instead of filters)", NULL},
	{"id", 0, OPT_ID, "UUID", REPROCESS, "this entry (repeatable; any unprocessed state)", NULL},
	{"user", 0, OPT_USER, "UUID", REPROCESS, "entries of this user", NULL},
	{"event-type", 0, OPT_EVENT_TYPE, "TYPE", REPROCESS, "entries of this event type", NULL},
	{"since", 0, OPT_SINCE, "TIME", REPROCESS, "entries at or after this timestamp", NULL},
	{"until", 0, OPT_UNTIL, "TIME", REPROCESS, "entries before this timestamp", NULL},
	{"error-like", 0, OPT_ERROR_LIKE, "PATTERN", REPROCESS, "last_error ILIKE PATTERN (e.g. '%ledger%')", NULL},
	{"limit", 0, OPT_LIMIT, "N", REPROCESS, "at most N entries", NULL},
	{"dry-run", 0, OPT_DRY_RUN, NULL, REPROCESS,
	 "list what would be requeued, change nothing (without a filter:\nwhat --all would select)", NULL},
	{"now", 0, OPT_NOW, NULL, REPROCESS, "process them in this process and report each outcome", NULL},
	{"limit", 0, OPT_LIMIT, "N", INSPECT,
	 "latest entries and evolution steps shown (default " STRINGIFY(INSPECT_DEFAULT_LIMIT) ", at most " STRINGIFY(
		 INSPECT_MAX_LIMIT) ")",
	 NULL},
	{"since", 0, OPT_SINCE, "TIME", INSPECT, "start of the drift and plot window (default " INSPECT_DEFAULT_SINCE " ago)",
	 NULL},
	{"plot", 0, OPT_PLOT, "FILE", INSPECT, "draw the DNA's cumulative change per domain over time (.svg or .png)", NULL},
	{"role", 0, OPT_ROLE, "ROLE", INSPECT, "the DNA row to plot (default: the only row, or the fan row)", NULL},
};

#define N_CLI_OPTIONS (sizeof(cli_options) / sizeof(cli_options[0]))

static const char exit_status_text[] =
	"Exit status: 0 when the command did its work (failed entries are recorded on the\n"
	"entries, not an error), 1 when it could not run (database unreachable, schema missing),\n"
	"2 on a usage error (an unknown option, or one the command does not take), 3 when drain\n"
	"left due entries behind (held by other sessions for longer than it waits, or entries\n"
	"whose failure could not be recorded), or when inspect found no user, or several users\n"
	"(listed), with the email; 78 when the configuration is invalid.\n";

void options_finish(struct options *opt)
{
	config_finish(&opt->config);
	free(opt->dsn_copy);
	opt->dsn_copy = NULL;
}

/* "a, b, c (default) or d": the choices of an option, its default in the table marked. */
static void choices_text(char *out, size_t size, const char *const *names, const char *default_value)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; names[i] && used < size; i++) {
		const char *separator = i == 0 ? "" : names[i + 1] ? ", " : " or ";
		used += (size_t)snprintf(out + used, size - used, "%s%s%s", separator, names[i],
					 strcmp(names[i], default_value) == 0 ? " (default)" : "");
	}
}

/* One option's lines: "  -d, --dsn DSN" then the help at HELP_COLUMN, continuation lines indented. */
static void print_option(FILE *out, const struct cli_option *o)
{
	static const char *const log_levels[] = {"error", "warning", "notice", "info", "debug", NULL};
	static const char *const log_formats[] = {"auto", "plain", "journal", "json", NULL};
	char left[64], help[512];
	int width;

	if (o->short_name)
		snprintf(left, sizeof(left), "  -%c, --%s%s%s", o->short_name, o->name, o->argument ? " " : "",
			 o->argument ? o->argument : "");
	else
		snprintf(left, sizeof(left), "      --%s%s%s", o->name, o->argument ? " " : "", o->argument ? o->argument : "");
	if (o->default_of && strcmp(o->default_of, "log_level") == 0)
		choices_text(help, sizeof(help), log_levels, config_default("log_level"));
	else if (o->default_of && strcmp(o->default_of, "log_format") == 0)
		choices_text(help, sizeof(help), log_formats, config_default("log_format"));
	else if (o->default_of)
		snprintf(help, sizeof(help), "%s (default %s)", o->help, config_default(o->default_of));
	else
		snprintf(help, sizeof(help), "%s", o->help);
	width = fprintf(out, "%s", left);
	if (width >= HELP_COLUMN - 1) {
		fputc('\n', out);
		width = 0;
	}
	fprintf(out, "%*s", HELP_COLUMN - width, "");
	for (const char *p = help; *p; p++) {
		fputc(*p, out);
		if (*p == '\n')
			fprintf(out, "%*s", HELP_COLUMN, "");
	}
	fputc('\n', out);
}

/* The options of command, those it alone takes (or shares with some) first, then the common ones. */
static void print_command_options(FILE *out, enum command command)
{
	for (size_t i = 0; i < N_CLI_OPTIONS; i++)
		if ((cli_options[i].commands & (1u << command)) && cli_options[i].commands != EVERY)
			print_option(out, &cli_options[i]);
}

static void print_common_options(FILE *out)
{
	for (size_t i = 0; i < N_CLI_OPTIONS; i++)
		if (cli_options[i].commands == EVERY)
			print_option(out, &cli_options[i]);
}

static void print_summary(FILE *out, const char *summary, int indent)
{
	for (const char *p = summary; *p; p++) {
		fputc(*p, out);
		if (*p == '\n')
			fprintf(out, "%*s", indent, "");
	}
	fputc('\n', out);
}

/* `passportd --help`: every command and every command's options. */
static void usage(FILE *out)
{
	fprintf(out, "Usage: passportd [COMMAND] [OPTIONS]\n"
		     "\n"
		     "Turns the passport_entries log into user profiles: claims due entries, routes them to\n"
		     "mediaid (DNA), coliseum (metrics) and treasury (ledger links), and marks them processed.\n"
		     "\n"
		     "Commands ('passportd COMMAND --help' shows one command's options):\n");
	for (int c = 0; c < COMMAND_COUNT; c++) {
		fprintf(out, "  %-12s", commands[c].name);
		print_summary(out, commands[c].summary, 14);
	}
	fprintf(out, "\nOptions of every command (command line > PASSPORTD_<NAME> environment > config file >\n"
		     "defaults):\n");
	print_common_options(out);
	for (int c = 0; c < COMMAND_COUNT; c++) {
		fprintf(out, "\n%s:\n", commands[c].name);
		print_command_options(out, (enum command)c);
	}
	fprintf(out, "\n%s", exit_status_text);
}

/* `passportd COMMAND --help`. */
static void command_usage(FILE *out, enum command command)
{
	fprintf(out, "Usage: passportd %s %s\n\n", commands[command].name, commands[command].arguments);
	print_summary(out, commands[command].summary, 0);
	fprintf(out, "\nOptions:\n");
	print_command_options(out, command);
	print_common_options(out);
	if (command == COMMAND_REPROCESS)
		fprintf(out, "\nFilters (--id, --user, --event-type, --since, --until, --error-like) combine; without\n"
			     "one, reprocess refuses to requeue unless --all says every dead entry.\n");
	fprintf(out, "\n%s", exit_status_text);
}

static int usage_error(const char *fmt, const char *a, const char *b) __attribute__((format(printf, 1, 0)));

static int usage_error(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "passportd: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n");
	return EXIT_USAGE;
}

static int add_override(struct options *opt, const char *name, const char *value)
{
	struct config_sources *src = &opt->sources;

	if (src->n_overrides >= (int)(sizeof(src->override_names) / sizeof(src->override_names[0]))) {
		fprintf(stderr, "passportd: too many options\n");
		return -1;
	}
	src->override_names[src->n_overrides] = name;
	src->override_values[src->n_overrides] = value;
	src->n_overrides++;
	return 0;
}

static int find_command(const char *name)
{
	for (int c = 0; c < COMMAND_COUNT; c++)
		if (strcmp(commands[c].name, name) == 0)
			return c;
	return -1;
}

/* Whether some row of that option's code belongs to command. */
static bool option_allowed(int code, enum command command)
{
	for (size_t i = 0; i < N_CLI_OPTIONS; i++)
		if (cli_options[i].code == code && (cli_options[i].commands & (1u << command)))
			return true;
	return false;
}

static const char *option_name(int code)
{
	for (size_t i = 0; i < N_CLI_OPTIONS; i++)
		if (cli_options[i].code == code)
			return cli_options[i].name;
	return "?";
}

/* One option's effect on opt. Returns 0, or an exit status. */
static int apply_option(struct options *opt, int c, char *arg)
{
	struct reprocess_options *rp = &opt->reprocess;
	int rc = 0;

	switch (c) {
	case 'd':
		/*
		 * Keep a copy and blank the argument, so that a password given on the command line
		 * does not stay visible in /proc/<pid>/cmdline (a password file is better still).
		 */
		if (opt->dsn_copy)
			return usage_error("--dsn given twice%s%s", "", "");
		opt->dsn_copy = strdup(arg);
		if (!opt->dsn_copy) {
			fprintf(stderr, "passportd: out of memory\n");
			return 1;
		}
		memset(arg, '*', strlen(arg));
		rc = add_override(opt, "dsn", opt->dsn_copy);
		break;
	case 'c':
		opt->sources.path = arg;
		opt->sources.path_required = true;
		break;
	case 'b': rc = add_override(opt, "batch_size", arg); break;
	case 'j': rc = add_override(opt, "workers", arg); break;
	case OPT_POLL_INTERVAL: rc = add_override(opt, "poll_interval", arg); break;
	case OPT_NO_LISTEN: rc = add_override(opt, "listen", "false"); break;
	case OPT_SYSTEMS: rc = add_override(opt, "systems", arg); break;
	case OPT_MAX_ATTEMPTS: rc = add_override(opt, "max_attempts", arg); break;
	case OPT_LOG_LEVEL: rc = add_override(opt, "log_level", arg); break;
	case OPT_LOG_FORMAT: rc = add_override(opt, "log_format", arg); break;
	case OPT_METRICS_LISTEN: rc = add_override(opt, "metrics_listen", arg); break;
	case OPT_STATEMENT_TIMEOUT: rc = add_override(opt, "statement_timeout", arg); break;
	case OPT_PRINT_CONFIG: opt->print_config = true; break;
	case OPT_CHECK_CONFIG: opt->check_config = true; break;
	case OPT_JSON: opt->json = true; break;
	case OPT_CHECK: opt->status.check = true; break;
	case OPT_MAX_LAG:
	case OPT_MAX_DEAD: {
		char *end;
		double value;
		errno = 0;
		value = strtod(arg, &end);
		if (errno || end == arg || *end || !(value >= 0) || value > 1e12) {
			fprintf(stderr, "passportd: --%s must be a number from 0, not '%.40s'\n", option_name(c), arg);
			return EXIT_USAGE;
		}
		if (c == OPT_MAX_LAG)
			opt->status.max_lag = value;
		else
			opt->status.max_dead = (long)value;
		break;
	}
	case OPT_ID:
		if (rp->n_ids >= (int)(sizeof(rp->ids) / sizeof(rp->ids[0])))
			return usage_error("at most 64 --id options%s%s", "", "");
		rp->ids[rp->n_ids++] = arg;
		break;
	case OPT_USER: rp->user = arg; break;
	case OPT_EVENT_TYPE: rp->event_type = arg; break;
	case OPT_SINCE: rp->since = arg; break;
	case OPT_UNTIL: rp->until = arg; break;
	case OPT_ERROR_LIKE: rp->error_like = arg; break;
	case OPT_LIMIT: {
		char *end;
		/* Bounded like the option table's numbers: an overflow is an error, not "no limit". */
		errno = 0;
		rp->limit = strtol(arg, &end, 10);
		if (errno || end == arg || *end || rp->limit < 1 || rp->limit > REPROCESS_LIMIT_MAX) {
			fprintf(stderr, "passportd: --limit must be a whole number from 1 to %ld, not '%.40s'\n",
				REPROCESS_LIMIT_MAX, arg);
			return EXIT_USAGE;
		}
		break;
	}
	case OPT_DRY_RUN: rp->dry_run = true; break;
	case OPT_NOW: rp->now = true; break;
	case OPT_ALL: rp->all = true; break;
	case OPT_PLOT: opt->plot = arg; break;
	case OPT_ROLE: opt->role = arg; break;
	default:
		return EXIT_USAGE;
	}
	return rc < 0 ? EXIT_USAGE : 0;
}

/* What a command needs beyond taking its options. Returns 0, or EXIT_USAGE after saying why. */
static int check_command(const struct options *opt)
{
	const struct reprocess_options *rp = &opt->reprocess;
	bool filtered = rp->n_ids > 0 || rp->user || rp->event_type || rp->since || rp->until || rp->error_like;

	if (opt->command != COMMAND_REPROCESS)
		return 0;
	if (rp->all && filtered)
		return usage_error("reprocess: --all selects every dead entry and takes no filter%s%s", "", "");
	if (!rp->all && !filtered && !rp->dry_run && !opt->print_config && !opt->check_config)
		return usage_error("reprocess needs a filter (--id, --user, --event-type, --since, --until,"
				   " --error-like) or --all%s%s", "", "");
	if (rp->dry_run && rp->now)
		return usage_error("reprocess: --dry-run and --now exclude each other%s%s", "", "");
	return 0;
}

int options_parse(int argc, char **argv, struct options *opt)
{
	struct option longopts[N_CLI_OPTIONS + 1];
	char shortopts[32];
	int seen[MAX_SEEN], n_seen = 0, n_long = 0, c, rc, command;
	size_t n_short = 0;
	bool help = false;

	/* getopt's tables from ours: one long option per name, the short ones with their ':'. */
	for (size_t i = 0; i < N_CLI_OPTIONS; i++) {
		const struct cli_option *o = &cli_options[i];
		bool duplicate = false;

		for (int j = 0; j < n_long; j++)
			duplicate = duplicate || strcmp(longopts[j].name, o->name) == 0;
		if (duplicate)
			continue;
		longopts[n_long++] = (struct option){o->name, o->argument ? required_argument : no_argument, NULL, o->code};
		if (o->short_name && n_short + 3 < sizeof(shortopts)) {
			shortopts[n_short++] = (char)o->short_name;
			if (o->argument)
				shortopts[n_short++] = ':';
		}
	}
	longopts[n_long] = (struct option){NULL, 0, NULL, 0};
	shortopts[n_short] = '\0';

	/* --config > PASSPORTD_CONFIG (required to exist, like --config) > the default (optional). */
	opt->sources.path = CONFIG_DEFAULT_PATH;
	if (getenv("PASSPORTD_CONFIG") && *getenv("PASSPORTD_CONFIG")) {
		opt->sources.path = getenv("PASSPORTD_CONFIG");
		opt->sources.path_required = true;
	}
	opt->status.max_lag = STATUS_DEFAULT_MAX_LAG;
	opt->status.max_dead = STATUS_DEFAULT_MAX_DEAD;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c == '?') {
			fprintf(stderr, "Try 'passportd --help'.\n");
			return EXIT_USAGE;
		}
		if (c == 'h') {
			help = true;
			continue;
		}
		if (c == 'V') {
			char line[512];
			printf("%s\n", version_line("passportd", line, sizeof(line)));
			return 0;
		}
		if (n_seen < MAX_SEEN)
			seen[n_seen++] = c;
		rc = apply_option(opt, c, optarg);
		if (rc)
			return rc;
	}
	if (optind >= argc && help) {
		usage(stdout);
		return 0;
	}
	opt->command_name = optind < argc ? argv[optind++] : "run";
	command = find_command(opt->command_name);
	if (command < 0) {
		fprintf(stderr, "passportd: unknown command '%s'. Try 'passportd --help'.\n", opt->command_name);
		return EXIT_USAGE;
	}
	opt->command = (enum command)command;
	if (help) {
		command_usage(stdout, opt->command);
		return 0;
	}
	for (int i = 0; i < n_seen; i++)
		if (!option_allowed(seen[i], opt->command)) {
			fprintf(stderr, "passportd: %s does not take --%s. Try 'passportd %s --help'.\n", opt->command_name,
				option_name(seen[i]), opt->command_name);
			return EXIT_USAGE;
		}
	if (opt->command == COMMAND_INSPECT && optind < argc)
		opt->inspect_user = argv[optind++];
	while ((opt->command == COMMAND_PAUSE || opt->command == COMMAND_RESUME) && optind < argc) {
		if (!pause_valid_name(argv[optind]))
			return usage_error("%s: unknown system '%s' (all, mediaid, coliseum or treasury)",
					   opt->command_name, argv[optind]);
		if (opt->n_systems >= (int)(sizeof(opt->systems) / sizeof(opt->systems[0])))
			return usage_error("%s: too many systems%s", opt->command_name, "");
		opt->systems[opt->n_systems++] = argv[optind++];
	}
	if (optind < argc) {
		fprintf(stderr, "passportd: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	opt->status.json = opt->json;
	opt->reprocess.json = opt->json;
	rc = check_command(opt);
	return rc ? rc : OPTIONS_CONTINUE;
}
