/* passportd: the command line (options, help, the configuration) and the dispatch to a subcommand. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "build_config.h"
#include "config.h"
#include "db.h"
#include "drain.h"
#include "inspect.h"
#include "log.h"
#include "service.h"
#include "version.h"

/*
 * The subcommands other than `run` (which handles its signals inside its loop): the first
 * SIGTERM or SIGINT sets stop_requested, which drain reads between batches; a second one exits.
 */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo)
{
	if (stop_requested) {
		/* A second signal: leave at once; the server rolls back the open transaction. */
		_exit(128 + signo);
	}
	stop_requested = 1;
}

struct options {
	struct config config;
	struct config_sources sources;
	const char *command;
	bool print_config;
	bool json;
	struct reprocess_options reprocess;
	const char *inspect_user; /* inspect's USER argument */
	const char *plot;         /* inspect --plot FILE */
	const char *role;         /* inspect --role ROLE */
	char *dsn_copy; /* --dsn, copied before the argument is blanked */
};

static void options_finish(struct options *opt)
{
	config_finish(&opt->config);
	free(opt->dsn_copy);
	opt->dsn_copy = NULL;
}

/*
 * "a, b, c (default) or d": the choices of an option, its default in the table marked. names ends
 * with NULL.
 */
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

/* The help text; every default it shows comes from the option table (config_options[]). */
static void usage(FILE *out)
{
	static const char *const log_levels[] = {"error", "warning", "notice", "info", "debug", NULL};
	static const char *const log_formats[] = {"auto", "plain", "journal", "json", NULL};
	char levels[128], formats[128];

	choices_text(levels, sizeof(levels), log_levels, config_default("log_level"));
	choices_text(formats, sizeof(formats), log_formats, config_default("log_format"));
	fprintf(out,
		"Usage: passportd [OPTIONS] [COMMAND]\n"
		"\n"
		"Turns the passport_entries log into user profiles: claims due entries, routes them to\n"
		"mediaid (DNA), coliseum (metrics) and treasury (ledger links), and marks them processed.\n"
		"\n"
		"Commands:\n"
		"  run         the service (default): wake on NOTIFY, poll for retries, process batches\n"
		"              until SIGTERM; SIGHUP reloads the config file\n"
		"  drain       process every due entry, print a summary, exit\n"
		"  status      queue health: due, retrying, dead, throughput, oldest due, top errors\n"
		"  reprocess   requeue dead entries (or those selected below); never processed ones\n"
		"  inspect     USER (a user id or an email): DNA rows and their norms, entries by state\n"
		"              and the latest ones, the DNA's evolution and drift; read-only\n"
		"\n"
		"Options (command line > PASSPORTD_<NAME> environment > config file > defaults):\n"
		"  -d, --dsn DSN            connection string or URI; else $PASSPORT_DATABASE_URL, else\n"
		"                           libpq's environment (PGHOST, PGSERVICE, PGPASSFILE, ...)\n"
		"  -c, --config FILE        config file (default " CONFIG_DEFAULT_PATH ", optional)\n"
		"  -b, --batch-size N       entries per batch (default %s)\n"
		"  -j, --workers N          drain: work with N connections in parallel, each on other\n"
		"                           users (default %s; more than the server's cores do not help)\n"
		"      --poll-interval SEC  poll for retries and missed notifications (default %s)\n"
		"      --no-listen          poll only: for transaction poolers, where LISTEN does not work\n"
		"      --systems LIST       enabled systems (default %s)\n"
		"      --max-attempts N     failed attempts before an entry is dead (default %s)\n"
		"      --log-level LEVEL    %s\n"
		"      --log-format FORMAT  %s\n"
		"      --metrics-listen HOST:PORT\n"
		"                           run: serve Prometheus metrics at http://HOST:PORT/metrics\n"
		"      --print-config       print the effective configuration (no password) and exit\n"
		"      --json               status, inspect: print one JSON object\n"
		"  -h, --help               show this help\n"
		"  -V, --version            show the version, git revision, libpq, sd_notify and BLAS\n"
		"\n"
		"Reprocess selection (default: all dead entries; filters combine):\n"
		"      --id UUID            this entry (repeatable; any unprocessed state)\n"
		"      --user UUID          entries of this user\n"
		"      --event-type TYPE    entries of this event type\n"
		"      --since TIME         entries at or after this timestamp\n"
		"      --until TIME         entries before this timestamp\n"
		"      --error-like PATTERN last_error ILIKE PATTERN (e.g. '%%ledger%%')\n"
		"      --limit N            at most N entries\n"
		"      --dry-run            list what would be requeued, change nothing\n"
		"      --now                process them in this process and report each outcome\n"
		"\n"
		"Inspect (also --json):\n"
		"      --limit N            latest entries and evolution steps shown (default %d, at most %d)\n"
		"      --since TIME         start of the drift and plot window (default %s ago)\n"
		"      --plot FILE          draw the DNA's cumulative change per domain over time (.svg or .png)\n"
		"      --role ROLE          the DNA row to plot (default: the only row, or the fan row)\n"
		"\n"
		"Exit status: 0 when the command did its work (failed entries are recorded on the\n"
		"entries, not an error), 1 when it could not run (bad options, database unreachable,\n"
		"schema missing), 3 when drain left due entries behind (held by other sessions for\n"
		"longer than it waits, or entries whose failure could not be recorded), or when inspect\n"
		"found no user, or several users (listed), with the email.\n",
		config_default("batch_size"), config_default("workers"), config_default("poll_interval"),
		config_default("systems"), config_default("max_attempts"), levels, formats, INSPECT_DEFAULT_LIMIT,
		INSPECT_MAX_LIMIT, INSPECT_DEFAULT_SINCE);
}

enum {
	OPT_POLL_INTERVAL = 1000,
	OPT_NO_LISTEN,
	OPT_SYSTEMS,
	OPT_MAX_ATTEMPTS,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
	OPT_PRINT_CONFIG,
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
	OPT_PLOT,
	OPT_ROLE,
	OPT_METRICS_LISTEN,
	OPT_STATEMENT_TIMEOUT,
};

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

static int parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{"dsn", required_argument, NULL, 'd'},
		{"config", required_argument, NULL, 'c'},
		{"batch-size", required_argument, NULL, 'b'},
		{"workers", required_argument, NULL, 'j'},
		{"poll-interval", required_argument, NULL, OPT_POLL_INTERVAL},
		{"no-listen", no_argument, NULL, OPT_NO_LISTEN},
		{"systems", required_argument, NULL, OPT_SYSTEMS},
		{"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
		{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
		{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
		{"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
		{"json", no_argument, NULL, OPT_JSON},
		{"id", required_argument, NULL, OPT_ID},
		{"user", required_argument, NULL, OPT_USER},
		{"event-type", required_argument, NULL, OPT_EVENT_TYPE},
		{"since", required_argument, NULL, OPT_SINCE},
		{"until", required_argument, NULL, OPT_UNTIL},
		{"error-like", required_argument, NULL, OPT_ERROR_LIKE},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"dry-run", no_argument, NULL, OPT_DRY_RUN},
		{"now", no_argument, NULL, OPT_NOW},
		{"plot", required_argument, NULL, OPT_PLOT},
		{"role", required_argument, NULL, OPT_ROLE},
		{"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
		{"statement-timeout", required_argument, NULL, OPT_STATEMENT_TIMEOUT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct reprocess_options *rp = &opt->reprocess;
	int c, rc = 0;

	opt->sources.path = CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "d:c:b:j:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': {
			/*
			 * Keep a copy and blank the argument, so that a password given on the command line
			 * does not stay visible in /proc/<pid>/cmdline (a password file is better still).
			 */
			if (opt->dsn_copy) {
				fprintf(stderr, "passportd: --dsn given twice\n");
				return -1;
			}
			opt->dsn_copy = strdup(optarg);
			if (!opt->dsn_copy) {
				fprintf(stderr, "passportd: out of memory\n");
				return -1;
			}
			memset(optarg, '*', strlen(optarg));
			rc = add_override(opt, "dsn", opt->dsn_copy);
			break;
		}
		case 'c':
			opt->sources.path = optarg;
			opt->sources.path_required = true;
			break;
		case 'b': rc = add_override(opt, "batch_size", optarg); break;
		case 'j': rc = add_override(opt, "workers", optarg); break;
		case OPT_POLL_INTERVAL: rc = add_override(opt, "poll_interval", optarg); break;
		case OPT_NO_LISTEN: rc = add_override(opt, "listen", "false"); break;
		case OPT_SYSTEMS: rc = add_override(opt, "systems", optarg); break;
		case OPT_MAX_ATTEMPTS: rc = add_override(opt, "max_attempts", optarg); break;
		case OPT_LOG_LEVEL: rc = add_override(opt, "log_level", optarg); break;
		case OPT_LOG_FORMAT: rc = add_override(opt, "log_format", optarg); break;
		case OPT_METRICS_LISTEN: rc = add_override(opt, "metrics_listen", optarg); break;
		case OPT_STATEMENT_TIMEOUT: rc = add_override(opt, "statement_timeout", optarg); break;
		case OPT_PRINT_CONFIG: opt->print_config = true; break;
		case OPT_JSON: opt->json = true; break;
		case OPT_ID:
			if (rp->n_ids >= (int)(sizeof(rp->ids) / sizeof(rp->ids[0]))) {
				fprintf(stderr, "passportd: at most 64 --id options\n");
				return -1;
			}
			rp->ids[rp->n_ids++] = optarg;
			break;
		case OPT_USER: rp->user = optarg; break;
		case OPT_EVENT_TYPE: rp->event_type = optarg; break;
		case OPT_SINCE: rp->since = optarg; break;
		case OPT_UNTIL: rp->until = optarg; break;
		case OPT_ERROR_LIKE: rp->error_like = optarg; break;
		case OPT_LIMIT: {
			char *end;
			/* Bounded like the option table's numbers: an overflow is an error, not "no limit". */
			errno = 0;
			rp->limit = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || rp->limit < 1 || rp->limit > REPROCESS_LIMIT_MAX) {
				fprintf(stderr, "passportd: --limit must be a whole number from 1 to %ld, not '%.40s'\n",
					REPROCESS_LIMIT_MAX, optarg);
				return -1;
			}
			break;
		}
		case OPT_DRY_RUN: rp->dry_run = true; break;
		case OPT_NOW: rp->now = true; break;
		case OPT_PLOT: opt->plot = optarg; break;
		case OPT_ROLE: opt->role = optarg; break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V': {
			char line[512];
			printf("%s\n", version_line("passportd", line, sizeof(line)));
			exit(0);
		}
		default:
			fprintf(stderr, "Try 'passportd --help'.\n");
			return -1;
		}
		if (rc < 0)
			return -1;
	}
	opt->command = optind < argc ? argv[optind++] : "run";
	if (strcmp(opt->command, "inspect") == 0 && optind < argc)
		opt->inspect_user = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "passportd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* inspect's options: --limit and --since are shared with reprocess, and parsed there. */
static int run_inspect(const struct options *opt)
{
	struct inspect_options inspect = {
		.user = opt->inspect_user,
		.limit = opt->reprocess.limit ? opt->reprocess.limit : INSPECT_DEFAULT_LIMIT,
		.since = opt->reprocess.since,
		.plot = opt->plot,
		.role = opt->role,
		.json = opt->json,
	};

	return command_inspect(&opt->config, &inspect);
}

int main(int argc, char **argv)
{
	struct options opt;
	struct sigaction sa;
	char err[512];
	int rc;

	/*
	 * Large transient buffers (query results holding vectors, a batch's write parameters) come
	 * from mmap and go back to the system when freed, and drain's workers share one arena: the
	 * resident size then follows what is in use, not the high-water mark of a fragmented heap.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	mallopt(M_ARENA_MAX, 1);
	memset(&opt, 0, sizeof(opt));
	config_init(&opt.config);
	if (parse_options(argc, argv, &opt) < 0) {
		options_finish(&opt);
		return 1;
	}
	if (config_load(&opt.config, &opt.sources, err, sizeof(err)) < 0) {
		fprintf(stderr, "passportd: %s\n", err);
		options_finish(&opt);
		return 1;
	}
	if (opt.print_config) {
		config_print(&opt.config, stdout);
		options_finish(&opt);
		return 0;
	}
	log_setup("passportd", (enum log_level)opt.config.log_level, (enum log_format)opt.config.log_format);
	/* A connection string that cannot parse will never connect: say so once, without quoting it. */
	if (db_check_dsn(opt.config.dsn, err, sizeof(err)) < 0) {
		fprintf(stderr, "passportd: %s\n", err);
		options_finish(&opt);
		return 1;
	}

	if (strcmp(opt.command, "run") == 0) {
		char line[512];
		log_info("%s", version_line("passportd", line, sizeof(line)));
		rc = service_run(&opt.config, &opt.sources);
		options_finish(&opt);
		return rc;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (strcmp(opt.command, "drain") == 0)
		rc = command_drain(&opt.config, &stop_requested);
	else if (strcmp(opt.command, "status") == 0)
		rc = admin_status(&opt.config, opt.json);
	else if (strcmp(opt.command, "reprocess") == 0)
		rc = admin_reprocess(&opt.config, &opt.reprocess);
	else if (strcmp(opt.command, "inspect") == 0)
		rc = run_inspect(&opt);
	else {
		fprintf(stderr, "passportd: unknown command '%s'. Try 'passportd --help'.\n", opt.command);
		rc = 1;
	}
	options_finish(&opt);
	return rc;
}
