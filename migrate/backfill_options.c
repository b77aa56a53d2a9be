/* backfill_options: the command line of `passport-migrate backfill`: its help text and its options. */
#include "backfill.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void backfill_usage(FILE *out)
{
	fputs("Usage: " MIGRATE_PROGRAM " backfill [OPTIONS]\n"
	      "\n"
	      "Copy the legacy logs (listening_history, media_engagement_log) into passport_entries in\n"
	      "short batches, one transaction each, mapping event types, categories and systems as\n"
	      "passportd expects (SPEC §6). Safe to run against a live database and to re-run: rows\n"
	      "already copied are recognised by (legacy_source, legacy_id) and never duplicated; an\n"
	      "interrupted run (Ctrl-C, kill -9, lost connection) resumes where it stopped.\n"
	      "Entries are inserted unprocessed, so `passportd drain` then replays the history into\n"
	      "DNA in event-time order; stop passportd during the backfill for an exact replay.\n"
	      "\n"
	      "Options:\n"
	      "      --source SOURCE      listening_history, media_engagement_log or all (default all)\n"
	      "      --batch-size N       legacy rows per batch (default 5,000; at most 100,000)\n"
	      "      --since TIME         only events at or after TIME (a timestamp; UTC unless it\n"
	      "                           names a zone)\n"
	      "      --until TIME         only events before TIME\n"
	      "      --max-rate ROWS      read at most ROWS legacy rows per second on average (per\n"
	      "                           source; a throttled log is not cut into slices)\n"
	      "  -j, --jobs N             copy with up to N connections at once (default: one per\n"
	      "                           online CPU, at most 4): a log of at least 10 batches per\n"
	      "                           slice is cut into up to N slices of ids, and the jobs\n"
	      "                           share all the logs' slices to the end; with 2 or more,\n"
	      "                           progress is printed as lines instead of a bar\n"
	      "  -n, --dry-run            count what would be copied and show a sample; write nothing\n"
	      "      --mark-processed     insert the entries as processed history (passportd skips them)\n"
	      "      --include-client-info  also copy user_agent and ip_address into the payload\n"
	      "      --restart            ignore the recorded positions of an interrupted run and\n"
	      "                           start over from the first id (rows already copied are\n"
	      "                           still skipped)\n"
	      "      --lock-wait SEC      wait this long for another backfill of a source to end\n"
	      "                           (default 70, longer than a batch can run)\n"
	      "      --progress WHEN      auto (a bar on a terminal, log lines otherwise), always, never\n"
	      "      --json               print the summary as one JSON object on stdout\n"
	      "      --dsn DSN            connection string (default: $PASSPORT_DATABASE_URL, then the\n"
	      "                           PG* environment variables)\n"
	      "  -h, --help               show this help\n"
	      "\n"
	      "Exit status: 0 every source copied (a missing legacy table is reported and skipped),\n"
	      "1 a failure or an interruption (run again to resume), 2 a usage error.\n",
	      out);
}

int backfill_parse_options(int argc, char **argv, struct migrate_globals *globals, struct backfill_options *options)
{
	enum {
		OPT_SOURCE = 256,
		OPT_BATCH_SIZE,
		OPT_SINCE,
		OPT_UNTIL,
		OPT_MAX_RATE,
		OPT_MARK_PROCESSED,
		OPT_CLIENT_INFO,
		OPT_RESTART,
		OPT_PROGRESS,
		OPT_LOCK_WAIT,
		OPT_JSON,
		OPT_DSN,
	};
	static const struct option long_options[] = {
		{"source", required_argument, NULL, OPT_SOURCE},
		{"batch-size", required_argument, NULL, OPT_BATCH_SIZE},
		{"since", required_argument, NULL, OPT_SINCE},
		{"until", required_argument, NULL, OPT_UNTIL},
		{"max-rate", required_argument, NULL, OPT_MAX_RATE},
		{"dry-run", no_argument, NULL, 'n'},
		{"mark-processed", no_argument, NULL, OPT_MARK_PROCESSED},
		{"include-client-info", no_argument, NULL, OPT_CLIENT_INFO},
		{"restart", no_argument, NULL, OPT_RESTART},
		{"progress", required_argument, NULL, OPT_PROGRESS},
		{"lock-wait", required_argument, NULL, OPT_LOCK_WAIT},
		{"json", no_argument, NULL, OPT_JSON},
		{"dsn", required_argument, NULL, OPT_DSN},
		{"jobs", required_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;
	char *end;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "nhj:", long_options, NULL)) != -1) {
		switch (opt) {
		case 'j': {
			long value;

			errno = 0;
			value = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || value < 1 || value > 16) {
				migrate_error("backfill: --jobs must be a number from 1 to 16");
				return -1;
			}
			options->jobs = (int)value;
			break;
		}
		case OPT_SOURCE:
			options->sources = legacy_sources_parse(optarg);
			if (!options->sources) {
				migrate_error("backfill: --source must be listening_history, media_engagement_log or all");
				return -1;
			}
			break;
		case OPT_BATCH_SIZE: {
			long value;

			errno = 0;
			value = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || value < 1 || value > BACKFILL_MAX_BATCH) {
				migrate_error("backfill: --batch-size must be a number from 1 to %d", BACKFILL_MAX_BATCH);
				return -1;
			}
			options->batch_size = (int)value;
			break;
		}
		case OPT_SINCE:
			options->since = optarg;
			break;
		case OPT_UNTIL:
			options->until = optarg;
			break;
		case OPT_MAX_RATE:
			errno = 0;
			options->max_rate = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(options->max_rate > 0) || options->max_rate > 1e9) {
				migrate_error("backfill: --max-rate must be a positive number of rows per second");
				return -1;
			}
			break;
		case 'n':
			options->dry_run = true;
			break;
		case OPT_MARK_PROCESSED:
			options->mark_processed = true;
			break;
		case OPT_CLIENT_INFO:
			options->include_client_info = true;
			break;
		case OPT_RESTART:
			options->restart = true;
			break;
		case OPT_PROGRESS:
			if (strcmp(optarg, "auto") == 0)
				options->progress = PROGRESS_AUTO;
			else if (strcmp(optarg, "always") == 0)
				options->progress = PROGRESS_ALWAYS;
			else if (strcmp(optarg, "never") == 0)
				options->progress = PROGRESS_NEVER;
			else {
				migrate_error("backfill: --progress must be auto, always or never");
				return -1;
			}
			break;
		case OPT_LOCK_WAIT:
			errno = 0;
			options->lock_wait = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(options->lock_wait >= 0) || options->lock_wait > 86400) {
				migrate_error("backfill: --lock-wait must be a number of seconds from 0 to 86400");
				return -1;
			}
			break;
		case OPT_JSON:
			options->json = true;
			break;
		case OPT_DSN:
			if (migrate_take_dsn(globals, optarg) < 0)
				return -1;
			break;
		case 'h':
			backfill_usage(stdout);
			return 1;
		default:
			return -1;
		}
	}
	if (optind < argc) {
		migrate_error("backfill: unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}
