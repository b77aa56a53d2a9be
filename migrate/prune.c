/*
 * prune: `passport-migrate prune --evolution-older-than DAYS` deletes old dna_evolution rows in
 * short batches, each one statement in a transaction of its own, so that it is safe on a live
 * database and can be stopped at any moment: what was committed stays deleted, and the next run
 * goes on from there.
 *
 * The walk follows the primary key (id, a sequence) from the start of the table: each batch takes
 * the next --batch-size rows after the last id seen, deletes those applied before the cutoff, and
 * reports where it got to. A batch that meets a row another session holds waits at most
 * --lock-timeout, then the run stops (exit 1) with every earlier batch kept: run it again.
 * ids grow with applied_at (both are taken as the daemon inserts), except within the few seconds
 * of concurrent transactions, so the walk stops at the first batch holding no row older than the
 * cutoff: it never reads the young part of the table, and it uses only the primary key's index.
 * A row that commits out of order right at the boundary is caught by the next run.
 */
#include "db.h"
#include "migrate.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRUNE_DEFAULT_BATCH 5000
#define PRUNE_MAX_BATCH 100000
#define PRUNE_PROGRESS_SECONDS 5.0
#define PRUNE_DEFAULT_LOCK_TIMEOUT 10.0

/* The cutoff, fixed once per run so that every batch uses the same one. $1: days. */
static const char PRUNE_CUTOFF_SQL[] = "SELECT now() - $1::float8 * interval '1 day'";

/* Parameters of PRUNE_BATCH_SQL and PRUNE_COUNT_SQL. */
enum prune_param {
	PRUNE_PARAM_AFTER_ID,   /* $1: the last id of the previous batch (0 at the start) */
	PRUNE_PARAM_BATCH_SIZE, /* $2: rows per batch */
	PRUNE_PARAM_CUTOFF,     /* $3: rows applied before it go */
	PRUNE_PARAMS,
};

/* Result columns of both statements. */
enum prune_column {
	PRUNE_COL_LAST_ID,  /* the batch's largest id; NULL when the batch is empty (end of table) */
	PRUNE_COL_OLD_ROWS, /* rows of the batch older than the cutoff */
	PRUNE_COL_DELETED,  /* rows deleted (0 in a dry run) */
	PRUNE_COLUMNS,
};

static const char PRUNE_BATCH_SQL[] =
	"WITH batch AS (\n"
	"    SELECT id, applied_at FROM dna_evolution\n"
	"     WHERE id > $1::bigint ORDER BY id LIMIT $2::int),\n"
	"gone AS (\n"
	"    DELETE FROM dna_evolution d USING batch b\n"
	"     WHERE d.id = b.id AND b.applied_at < $3::timestamptz\n"
	" RETURNING d.id)\n"
	"SELECT (SELECT max(id) FROM batch),\n"
	"       (SELECT count(*) FROM batch WHERE applied_at < $3::timestamptz),\n"
	"       (SELECT count(*) FROM gone)";

/* --dry-run: the same walk, reading only. */
static const char PRUNE_COUNT_SQL[] =
	"WITH batch AS (\n"
	"    SELECT id, applied_at FROM dna_evolution\n"
	"     WHERE id > $1::bigint ORDER BY id LIMIT $2::int)\n"
	"SELECT (SELECT max(id) FROM batch),\n"
	"       (SELECT count(*) FROM batch WHERE applied_at < $3::timestamptz),\n"
	"       0";

struct prune_options {
	double days;
	long batch_size;
	double lock_timeout; /* seconds */
	bool dry_run;
};

static void prune_usage(FILE *out)
{
	fputs("Usage: " MIGRATE_PROGRAM " prune --evolution-older-than DAYS [OPTIONS]\n"
	      "\n"
	      "Delete dna_evolution rows applied more than DAYS days ago, in short batches of one\n"
	      "statement and one transaction each: safe on a live database, and safe to stop at any\n"
	      "moment (the next run goes on where this one stopped). Progress is printed every 5 s.\n"
	      "\n"
	      "Options:\n"
	      "      --evolution-older-than DAYS  the age, in days (fractions allowed), past which\n"
	      "                         dna_evolution rows go (required)\n"
	      "      --batch-size N     rows per batch (default 5,000; at most 100,000)\n"
	      "      --lock-timeout SEC wait at most SEC for a row another session holds, then stop\n"
	      "                         (exit 1; default 10)\n"
	      "  -n, --dry-run          count what would be deleted; delete nothing\n"
	      "      --dsn DSN          connection string (default: $PASSPORT_DATABASE_URL, then the\n"
	      "                         PG* environment variables)\n"
	      "  -h, --help             show this help\n"
	      "\n"
	      "Exit status: 0 done, 1 a failure (run again to go on), 2 a usage error.\n",
	      out);
}

static double monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_prune_options(struct migrate_globals *globals, int argc, char **argv, struct prune_options *opt)
{
	enum { OPT_OLDER_THAN = 1000, OPT_BATCH_SIZE, OPT_LOCK_TIMEOUT };
	static const struct option options[] = {
		{"evolution-older-than", required_argument, NULL, OPT_OLDER_THAN},
		{"batch-size", required_argument, NULL, OPT_BATCH_SIZE},
		{"lock-timeout", required_argument, NULL, OPT_LOCK_TIMEOUT},
		{"dry-run", no_argument, NULL, 'n'},
		{"dsn", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool have_days = false;
	char *end;
	int c;

	opt->days = 0;
	opt->batch_size = PRUNE_DEFAULT_BATCH;
	opt->lock_timeout = PRUNE_DEFAULT_LOCK_TIMEOUT;
	opt->dry_run = false;
	optind = 0;
	while ((c = getopt_long(argc, argv, "nh", options, NULL)) != -1) {
		switch (c) {
		case OPT_OLDER_THAN:
			opt->days = strtod(optarg, &end);
			if (end == optarg || *end || !(opt->days >= 0) || opt->days > 1e6) {
				migrate_error("prune: --evolution-older-than must be a number of days, not '%s'", optarg);
				return -1;
			}
			have_days = true;
			break;
		case OPT_BATCH_SIZE:
			opt->batch_size = strtol(optarg, &end, 10);
			if (end == optarg || *end || opt->batch_size < 1 || opt->batch_size > PRUNE_MAX_BATCH) {
				migrate_error("prune: --batch-size must be a whole number from 1 to %d", PRUNE_MAX_BATCH);
				return -1;
			}
			break;
		case OPT_LOCK_TIMEOUT:
			opt->lock_timeout = strtod(optarg, &end);
			if (end == optarg || *end || !(opt->lock_timeout >= 0.001) || opt->lock_timeout > 3600) {
				migrate_error("prune: --lock-timeout must be a number of seconds from 0.001 to 3600");
				return -1;
			}
			break;
		case 'n':
			opt->dry_run = true;
			break;
		case 'd':
			globals->dsn = optarg;
			break;
		case 'h':
			prune_usage(stdout);
			return 1;
		default:
			prune_usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		migrate_error("prune: unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (!have_days) {
		migrate_error("prune: --evolution-older-than DAYS is required");
		prune_usage(stderr);
		return -1;
	}
	return 0;
}

/* The cutoff timestamp as the server's text, into cutoff. Returns 0, or -1 after printing why. */
static int prune_cutoff(PGconn *conn, double days, char *cutoff, size_t size)
{
	char days_text[64];
	const char *params[1] = {days_text};
	struct db_error error;
	PGresult *res;

	snprintf(days_text, sizeof(days_text), "%.17g", days);
	res = db_query(conn, PRUNE_CUTOFF_SQL, 1, params, NULL, NULL, 0, &error);
	if (!res) {
		migrate_error("prune: %s", error.message);
		return -1;
	}
	snprintf(cutoff, size, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

int prune_main(struct migrate_globals *globals, int argc, char **argv)
{
	struct prune_options opt;
	char cutoff[64], after_id[32] = "0", batch_size[32], session[128];
	const char *params[PRUNE_PARAMS];
	long long deleted = 0, old_rows = 0, batches = 0;
	double started, last_progress;
	struct db_error error;
	PGconn *conn;
	int rc;

	rc = parse_prune_options(globals, argc, argv, &opt);
	if (rc != 0)
		return rc > 0 ? MIGRATE_EXIT_OK : MIGRATE_EXIT_USAGE;
	conn = migrate_connect(globals);
	if (!conn)
		return MIGRATE_EXIT_FAILURE;
	/* A batch that cannot finish in a minute is cancelled by the server rather than left to grow. */
	snprintf(session, sizeof(session), "SET statement_timeout = '60s'; SET lock_timeout = '%.0fms'",
		 opt.lock_timeout * 1000);
	if (db_command(conn, session, &error) < 0) {
		migrate_error("prune: %s", error.message);
		PQfinish(conn);
		return MIGRATE_EXIT_FAILURE;
	}
	if (prune_cutoff(conn, opt.days, cutoff, sizeof(cutoff)) < 0) {
		PQfinish(conn);
		return MIGRATE_EXIT_FAILURE;
	}
	snprintf(batch_size, sizeof(batch_size), "%ld", opt.batch_size);
	params[PRUNE_PARAM_AFTER_ID] = after_id;
	params[PRUNE_PARAM_BATCH_SIZE] = batch_size;
	params[PRUNE_PARAM_CUTOFF] = cutoff;
	printf("prune: %s dna_evolution rows applied before %s, %ld rows a batch\n",
	       opt.dry_run ? "counting (dry run)" : "deleting", cutoff, opt.batch_size);
	started = last_progress = monotonic_now();

	for (;;) {
		PGresult *res = db_query(conn, opt.dry_run ? PRUNE_COUNT_SQL : PRUNE_BATCH_SQL, PRUNE_PARAMS, params, NULL,
					 NULL, 0, &error);
		long long batch_old, batch_deleted;

		if (!res) {
			migrate_error("prune: batch after id %s: %s", after_id, error.message);
			if (strcmp(error.sqlstate, "42P01") == 0) /* undefined_table */
				fprintf(stderr, "  hint: run `" MIGRATE_PROGRAM " schema` first\n");
			else
				fprintf(stderr, "  %lld rows deleted before the failure stay deleted; run again to go on\n",
					deleted);
			PQfinish(conn);
			return MIGRATE_EXIT_FAILURE;
		}
		if (PQgetisnull(res, 0, PRUNE_COL_LAST_ID)) {
			PQclear(res);
			break; /* the end of the table */
		}
		snprintf(after_id, sizeof(after_id), "%s", PQgetvalue(res, 0, PRUNE_COL_LAST_ID));
		batch_old = strtoll(PQgetvalue(res, 0, PRUNE_COL_OLD_ROWS), NULL, 10);
		batch_deleted = strtoll(PQgetvalue(res, 0, PRUNE_COL_DELETED), NULL, 10);
		PQclear(res);
		batches++;
		old_rows += batch_old;
		deleted += batch_deleted;
		if (batch_old == 0)
			break; /* past the cutoff: the rest of the table is younger */
		if (monotonic_now() - last_progress >= PRUNE_PROGRESS_SECONDS) {
			last_progress = monotonic_now();
			printf("prune: %lld rows %s so far (up to id %s, %.0f rows/s)\n", opt.dry_run ? old_rows : deleted,
			       opt.dry_run ? "to delete" : "deleted", after_id,
			       (double)(opt.dry_run ? old_rows : deleted) / (last_progress - started));
		}
	}
	if (opt.dry_run)
		printf("prune: would delete %lld dna_evolution rows (dry run; %lld batches read, %.1f s)\n", old_rows,
		       batches, monotonic_now() - started);
	else
		printf("prune: deleted %lld dna_evolution rows in %lld batches (%.1f s)\n", deleted, batches,
		       monotonic_now() - started);
	PQfinish(conn);
	return MIGRATE_EXIT_OK;
}
