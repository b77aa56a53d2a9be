/* passportd: the command line, and the drain subcommand (process everything due, then exit). */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "batch.h"
#include "build_config.h"
#include "config.h"
#include "db.h"
#include "entity_cache.h"
#include "log.h"
#include "service.h"
#include "tables.h"

#define DRAIN_BUSY_LIMIT_SECONDS 10

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
	char *dsn_copy; /* --dsn, copied before the argument is blanked */
};

static void options_finish(struct options *opt)
{
	config_finish(&opt->config);
	free(opt->dsn_copy);
	opt->dsn_copy = NULL;
}

static void usage(FILE *out)
{
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
		"\n"
		"Options (command line > PASSPORTD_<NAME> environment > config file > defaults):\n"
		"  -d, --dsn DSN            connection string or URI; else $PASSPORT_DATABASE_URL, else\n"
		"                           libpq's environment (PGHOST, PGSERVICE, PGPASSFILE, ...)\n"
		"  -c, --config FILE        config file (default " CONFIG_DEFAULT_PATH ", optional)\n"
		"  -b, --batch-size N       entries per batch (default 500)\n"
		"  -j, --workers N          drain: work with N connections in parallel, each on other\n"
		"                           users (default 1; more than the server's cores do not help)\n"
		"      --poll-interval SEC  poll for retries and missed notifications (default 5)\n"
		"      --no-listen          poll only: for transaction poolers, where LISTEN does not work\n"
		"      --systems LIST       enabled systems (default mediaid,coliseum,treasury)\n"
		"      --max-attempts N     failed attempts before an entry is dead (default 5)\n"
		"      --log-level LEVEL    error, warning, notice, info (default) or debug\n"
		"      --log-format FORMAT  auto (default), plain, journal or json\n"
		"      --print-config       print the effective configuration (no password) and exit\n"
		"      --json               status: print one JSON object\n"
		"  -h, --help               show this help\n"
		"  -V, --version            show the version\n"
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
		"Exit status: 0 when the command did its work (failed entries are recorded on the\n"
		"entries, not an error), 1 when it could not run (bad options, database unreachable,\n"
		"schema missing).\n");
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
			rp->limit = strtol(optarg, &end, 10);
			if (*end || rp->limit < 1) {
				fprintf(stderr, "passportd: --limit must be a positive whole number\n");
				return -1;
			}
			break;
		}
		case OPT_DRY_RUN: rp->dry_run = true; break;
		case OPT_NOW: rp->now = true; break;
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
		if (rc < 0)
			return -1;
	}
	opt->command = optind < argc ? argv[optind++] : "run";
	if (optind < argc) {
		fprintf(stderr, "passportd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

int config_load(struct config *config, const struct config_sources *sources, char *err, size_t errlen)
{
	if (config_read_file(config, sources->path, sources->path_required, err, errlen) < 0 ||
	    config_read_environment(config, err, errlen) < 0)
		return -1;
	for (int i = 0; i < sources->n_overrides; i++) {
		char reason[256];
		if (config_set(config, sources->override_names[i], sources->override_values[i], reason, sizeof(reason)) < 0) {
			snprintf(err, errlen, "%s", reason);
			return -1;
		}
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

/* What drain's workers share. */
struct drain_shared {
	const struct config *config;
	struct entity_cache *entities; /* target vectors, one cache for all workers */
	pthread_mutex_t mutex;
	int active; /* workers still running (under mutex) */
};

/* One drain worker: its own connection, its own users (held with advisory locks). */
struct drain_worker {
	struct drain_shared *shared;
	pthread_t thread;
	PGconn *conn;
	struct processor *processor;
	struct batch_totals totals;
	bool failed;         /* stopped on an error it could not get past */
	bool held_elsewhere; /* stopped while other sessions held the remaining entries */
};

/* Connect and inspect the schema, retrying a lost server a few times with growing pauses. */
static int drain_connect(struct drain_worker *w, int tries)
{
	const struct config *config = w->shared->config;
	struct db_error error;
	double pause = 0.5;

	for (int attempt = 1;; attempt++) {
		w->conn = db_connect(config->dsn, "passportd drain", &error);
		if (w->conn) {
			struct batch_config batch;
			config_to_batch(config, &batch);
			batch.shared_entities = w->shared->entities;
			w->processor = processor_create(w->conn, &batch, &error);
			if (w->processor)
				return 0;
			PQfinish(w->conn);
			w->conn = NULL;
			log_error("%s", error.message);
			return -1; /* a schema problem does not go away by waiting */
		}
		if (attempt >= tries || stop_requested) {
			log_error("cannot connect to the database: %s", error.message);
			return -1;
		}
		log_warning("cannot connect to the database (%s); retrying in %.1f s", error.message, pause);
		sleep_seconds(pause);
		pause = pause * 2 > 8 ? 8 : pause * 2;
	}
}

static void drain_disconnect(struct drain_worker *w)
{
	processor_destroy(w->processor);
	PQfinish(w->conn);
	w->processor = NULL;
	w->conn = NULL;
}

static int drain_siblings_active(struct drain_shared *shared)
{
	int active;

	pthread_mutex_lock(&shared->mutex);
	active = shared->active - 1;
	pthread_mutex_unlock(&shared->mutex);
	return active;
}

/* Batches until nothing is due (or a stop signal, or an error it cannot get past). */
static void *drain_work(void *arg)
{
	struct drain_worker *w = arg;
	struct db_error error;
	int status, reconnects = 0;
	double busy_since = 0;

	if (!w->conn && drain_connect(w, 3) < 0) {
		w->failed = true;
		goto done;
	}
	while (!stop_requested) {
		status = processor_run_batch(w->processor, &w->totals, &error);
		if (status == BATCH_EMPTY)
			break;
		if (status == BATCH_BUSY) {
			/*
			 * Due entries are held by other sessions (other daemons, or this drain's other
			 * workers, finish them soon). Wait for them a while, but do not wait forever on a
			 * session that keeps a lock; while other workers of this drain still run, leave the
			 * rest to them.
			 */
			if (busy_since == 0)
				busy_since = now_seconds();
			if (now_seconds() - busy_since > DRAIN_BUSY_LIMIT_SECONDS) {
				if (drain_siblings_active(w->shared) > 0)
					break;
				log_warning("stopping: the remaining due entries have been held by other sessions for %d s",
					    DRAIN_BUSY_LIMIT_SECONDS);
				w->held_elsewhere = true;
				break;
			}
			sleep_seconds(0.05);
			continue;
		}
		busy_since = 0;
		if (status == BATCH_ERROR) {
			if (!db_connection_lost(w->conn) || ++reconnects > 5) {
				log_error("batch failed: %s", error.message);
				w->failed = true;
				break;
			}
			log_warning("lost the database connection (%s); reconnecting", error.message);
			drain_disconnect(w);
			if (drain_connect(w, 10) < 0) {
				w->failed = true;
				break;
			}
			continue;
		}
		log_debug("batch done: %ld processed so far", w->totals.processed);
	}
done:
	drain_disconnect(w);
	pthread_mutex_lock(&w->shared->mutex);
	w->shared->active--;
	pthread_mutex_unlock(&w->shared->mutex);
	return NULL;
}

static int command_drain(const struct config *config)
{
	struct drain_shared shared = {.config = config};
	struct drain_worker *workers;
	struct batch_totals totals = {0};
	double started = now_seconds(), elapsed;
	int n = config->workers > 0 ? config->workers : 1, started_workers = 0;
	bool failed = false, held_elsewhere = false;

	workers = calloc((size_t)n, sizeof(*workers));
	shared.entities = entity_cache_create(BATCH_ENTITY_CACHE_CAPACITY);
	if (!workers || !shared.entities) {
		log_error("out of memory");
		free(workers);
		entity_cache_destroy(shared.entities);
		return 1;
	}
	pthread_mutex_init(&shared.mutex, NULL);
	for (int i = 0; i < n; i++)
		workers[i].shared = &shared;
	/* The first connection in this thread: a server that cannot be reached is reported once. */
	if (drain_connect(&workers[0], 3) < 0) {
		free(workers);
		entity_cache_destroy(shared.entities);
		pthread_mutex_destroy(&shared.mutex);
		return 1;
	}
	log_info("draining with %d worker%s, batches of %d (%s columns)", n, n == 1 ? "" : "s", config->batch_size,
		 processor_vector_format(workers[0].processor) == VEC_FORMAT_PGVECTOR ? "vector" : "real[]");
	shared.active = n;
	for (int i = 0; i < n; i++) {
		int rc = pthread_create(&workers[i].thread, NULL, drain_work, &workers[i]);
		if (rc != 0) {
			log_error("cannot start drain worker %d: %s", i + 1, strerror(rc));
			pthread_mutex_lock(&shared.mutex);
			shared.active -= n - i;
			pthread_mutex_unlock(&shared.mutex);
			if (i == 0)
				drain_disconnect(&workers[0]);
			failed = true;
			break;
		}
		started_workers++;
	}
	for (int i = 0; i < started_workers; i++) {
		struct batch_totals *t = &workers[i].totals;
		pthread_join(workers[i].thread, NULL);
		failed |= workers[i].failed;
		held_elsewhere |= workers[i].held_elsewhere;
		if (n > 1)
			log_info("drain worker %d: %ld batches, %ld entries%s", i + 1, t->batches, t->claimed,
				 workers[i].failed ? " (stopped by an error)" : "");
		totals.batches += t->batches;
		totals.claimed += t->claimed;
		totals.processed += t->processed;
		totals.retrying += t->retrying;
		totals.dead += t->dead;
		totals.dna_rows += t->dna_rows;
		totals.skipped_systems += t->skipped_systems;
	}
	elapsed = now_seconds() - started;
	printf("drain: processed %ld, failed %ld (retrying %ld, dead %ld), DNA rows updated %ld, "
	       "batches %ld, skipped deliveries %ld, elapsed %.2f s, %.0f entries/s%s\n",
	       totals.processed, totals.retrying + totals.dead, totals.retrying, totals.dead, totals.dna_rows,
	       totals.batches, totals.skipped_systems, elapsed,
	       elapsed > 0 ? (double)totals.claimed / elapsed : 0.0,
	       stop_requested ? " (stopped by signal)"
	       : failed       ? " (stopped by an error)"
	       : held_elsewhere ? " (some due entries are held by other sessions)"
			      : "");
	fflush(stdout);
	free(workers);
	entity_cache_destroy(shared.entities);
	pthread_mutex_destroy(&shared.mutex);
	return failed ? 1 : 0;
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
		rc = command_drain(&opt.config);
	else if (strcmp(opt.command, "status") == 0)
		rc = admin_status(&opt.config, opt.json);
	else if (strcmp(opt.command, "reprocess") == 0)
		rc = admin_reprocess(&opt.config, &opt.reprocess);
	else {
		fprintf(stderr, "passportd: unknown command '%s'. Try 'passportd --help'.\n", opt.command);
		rc = 1;
	}
	options_finish(&opt);
	return rc;
}
