/* passportd: the command line and the drain subcommand (process everything due, then exit). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "tables.h"

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
	const char *dsn;
	struct batch_config batch;
	enum log_level log_level;
	enum log_format log_format;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: passportd [OPTIONS] [COMMAND]\n"
		"\n"
		"Turns the passport_entries log into user profiles: claims due entries, routes them to\n"
		"mediaid (DNA), coliseum (metrics) and treasury (ledger links), and marks them processed.\n"
		"\n"
		"Commands:\n"
		"  run        the long-running service (default; not available in this build yet)\n"
		"  drain      process every due entry in batches, print a summary, exit\n"
		"\n"
		"Options:\n"
		"  -d, --dsn DSN            connection string or URI; else $PASSPORT_DATABASE_URL,\n"
		"                           else libpq's environment (PGHOST, PGDATABASE, PGSERVICE, ...)\n"
		"  -b, --batch-size N       entries per batch, 1..100000 (default 500)\n"
		"      --max-attempts N     failed attempts before an entry is dead (default 5)\n"
		"      --disable SYSTEM     skip a system (mediaid, coliseum or treasury); repeatable\n"
		"      --log-level LEVEL    error, warning, notice, info (default) or debug\n"
		"      --log-format FORMAT  auto (default), plain, journal or json\n"
		"  -h, --help               show this help\n"
		"  -V, --version            show the version\n"
		"\n"
		"Exit status: 0 when the command did its work (failed entries are recorded on the\n"
		"entries, not an error), 1 when it could not run (bad options, database unreachable,\n"
		"schema missing).\n");
}

static int parse_int(const char *text, int min, int max, int *out)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || end == text || *end != '\0' || value < min || value > max)
		return -1;
	*out = (int)value;
	return 0;
}

enum {
	OPT_MAX_ATTEMPTS = 1000,
	OPT_DISABLE,
	OPT_LOG_LEVEL,
	OPT_LOG_FORMAT,
};

static int parse_options(int argc, char **argv, struct options *opt, const char **command)
{
	static const struct option longopts[] = {
		{"dsn", required_argument, NULL, 'd'},
		{"batch-size", required_argument, NULL, 'b'},
		{"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
		{"disable", required_argument, NULL, OPT_DISABLE},
		{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
		{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "d:b:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			opt->dsn = optarg;
			break;
		case 'b':
			if (parse_int(optarg, 1, 100000, &opt->batch.batch_size) < 0) {
				fprintf(stderr, "passportd: --batch-size must be a whole number from 1 to 100000\n");
				return -1;
			}
			break;
		case OPT_MAX_ATTEMPTS:
			if (parse_int(optarg, 1, 1000, &opt->batch.max_attempts) < 0) {
				fprintf(stderr, "passportd: --max-attempts must be a whole number from 1 to 1000\n");
				return -1;
			}
			break;
		case OPT_DISABLE: {
			unsigned system = system_from_name(optarg);
			if (!system) {
				fprintf(stderr, "passportd: --disable: unknown system '%s' (mediaid, coliseum, treasury)\n",
					optarg);
				return -1;
			}
			opt->batch.enabled_systems &= ~system;
			break;
		}
		case OPT_LOG_LEVEL: {
			int level = log_level_from_name(optarg);
			if (level < 0) {
				fprintf(stderr, "passportd: --log-level must be error, warning, notice, info or debug\n");
				return -1;
			}
			opt->log_level = (enum log_level)level;
			break;
		}
		case OPT_LOG_FORMAT: {
			int format = log_format_from_name(optarg);
			if (format < 0) {
				fprintf(stderr, "passportd: --log-format must be auto, plain, journal or json\n");
				return -1;
			}
			opt->log_format = (enum log_format)format;
			break;
		}
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("passportd %s\n", PASSPORT_VERSION);
			exit(0);
		default:
			fprintf(stderr, "Try 'passportd --help'.\n");
			return -1;
		}
	}
	*command = optind < argc ? argv[optind++] : "run";
	if (optind < argc) {
		fprintf(stderr, "passportd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds)
{
	struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
}

/* Connect and inspect the schema, retrying a lost server a few times with growing pauses. */
static int drain_connect(const struct options *opt, PGconn **conn, struct processor **processor, int tries)
{
	char err[512];
	double pause = 0.5;

	for (int attempt = 1;; attempt++) {
		*conn = db_connect(opt->dsn, "passportd drain", err, sizeof(err));
		if (*conn) {
			*processor = processor_create(*conn, &opt->batch, err, sizeof(err));
			if (*processor)
				return 0;
			PQfinish(*conn);
			*conn = NULL;
			log_error("%s", err);
			return -1; /* a schema problem does not go away by waiting */
		}
		if (attempt >= tries || stop_requested) {
			log_error("cannot connect to the database: %s", err);
			return -1;
		}
		log_warning("cannot connect to the database (%s); retrying in %.1f s", err, pause);
		sleep_seconds(pause);
		pause = pause * 2 > 8 ? 8 : pause * 2;
	}
}

static int command_drain(const struct options *opt)
{
	PGconn *conn = NULL;
	struct processor *processor = NULL;
	struct batch_totals totals = {0};
	double started = now_seconds(), elapsed;
	char err[1024];
	int status, reconnects = 0;

	if (drain_connect(opt, &conn, &processor, 3) < 0)
		return 1;
	log_info("draining with batches of %d (%s columns)", opt->batch.batch_size,
		 processor_vector_format(processor) == VEC_FORMAT_PGVECTOR ? "vector" : "real[]");
	while (!stop_requested) {
		status = processor_run_batch(processor, &totals, err, sizeof(err));
		if (status == BATCH_EMPTY)
			break;
		if (status == BATCH_BUSY) {
			sleep_seconds(0.05);
			continue;
		}
		if (status == BATCH_ERROR) {
			if (!db_connection_lost(conn) || ++reconnects > 5) {
				log_error("batch failed: %s", err);
				processor_destroy(processor);
				PQfinish(conn);
				return 1;
			}
			log_warning("lost the database connection (%s); reconnecting", err);
			processor_destroy(processor);
			PQfinish(conn);
			if (drain_connect(opt, &conn, &processor, 10) < 0)
				return 1;
			continue;
		}
		log_debug("batch done: %ld processed so far", totals.processed);
	}
	elapsed = now_seconds() - started;
	printf("drain: processed %ld, failed %ld (retrying %ld, dead %ld), DNA rows updated %ld, "
	       "batches %ld, skipped deliveries %ld, elapsed %.2f s, %.0f entries/s%s\n",
	       totals.processed, totals.retrying + totals.dead, totals.retrying, totals.dead, totals.dna_rows,
	       totals.batches, totals.skipped_systems, elapsed,
	       elapsed > 0 ? (double)totals.claimed / elapsed : 0.0, stop_requested ? " (stopped by signal)" : "");
	fflush(stdout);
	processor_destroy(processor);
	PQfinish(conn);
	return 0;
}

int main(int argc, char **argv)
{
	struct options opt = {0};
	const char *command;
	struct sigaction sa;

	batch_config_default(&opt.batch);
	opt.log_level = LOG_LEVEL_INFO;
	opt.log_format = LOG_FORMAT_AUTO;
	if (parse_options(argc, argv, &opt, &command) < 0)
		return 1;
	log_setup("passportd", opt.log_level, opt.log_format);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (strcmp(command, "drain") == 0)
		return command_drain(&opt);
	if (strcmp(command, "run") == 0 || strcmp(command, "status") == 0 || strcmp(command, "reprocess") == 0) {
		fprintf(stderr, "passportd: '%s' is not available in this build yet; use 'drain'\n", command);
		return 2;
	}
	fprintf(stderr, "passportd: unknown command '%s'. Try 'passportd --help'.\n", command);
	return 1;
}
