/* admin: the operator subcommands `status` (queue health) and `reprocess` (requeue failed entries). */
#ifndef PASSPORTD_ADMIN_H
#define PASSPORTD_ADMIN_H

#include <stdbool.h>

#include "config.h"

struct status_options {
	bool json;      /* one JSON object */
	bool check;     /* one monitoring line and a Nagios-style exit status */
	double max_lag; /* --check: CRITICAL when the oldest due entry was created longer ago (s) */
	long max_dead;  /* --check: WARNING when more entries are dead */
};

#define STATUS_DEFAULT_MAX_LAG 300.0
#define STATUS_DEFAULT_MAX_DEAD 0L
#define STATUS_OK 0
#define STATUS_WARNING 1
#define STATUS_CRITICAL 2

/*
 * Print the queue's health: counts per state, throughput, the lag (age of the oldest due entry by
 * created_at, and by its event timestamp), the top errors grouped by message with ids replaced by
 * <id>, the backlog per event type. Returns 0, or 1 when it could not run.
 * With check: one line "PASSPORT OK|WARNING|CRITICAL - ..." with performance data, and the
 * status STATUS_OK, STATUS_WARNING (more dead entries than max_dead) or STATUS_CRITICAL (lag over
 * max_lag, or the database unreachable).
 */
int admin_status(const struct config *config, const struct status_options *options);

/* The largest --limit (also what no --limit means). */
#define REPROCESS_LIMIT_MAX 1000000000L

struct reprocess_options {
	const char *ids[64];
	int n_ids;
	const char *user;
	const char *event_type;
	const char *since;      /* timestamptz text, inclusive */
	const char *until;      /* timestamptz text, exclusive */
	const char *error_like; /* ILIKE pattern on last_error */
	long limit;             /* 0: no limit (REPROCESS_LIMIT_MAX); else 1..REPROCESS_LIMIT_MAX */
	bool dry_run;
	bool now;               /* process them here and report each outcome */
	bool all;               /* no filter: every dead entry (the command line requires it) */
	bool json;              /* one JSON object: the entries, previous errors, outcomes */
};

/* Requeue the selected failed entries (dead ones by default). Returns the exit status. */
int admin_reprocess(const struct config *config, const struct reprocess_options *options);

#endif
