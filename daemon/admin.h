/* admin: the operator subcommands `status` (queue health) and `reprocess` (requeue failed entries). */
#ifndef PASSPORTD_ADMIN_H
#define PASSPORTD_ADMIN_H

#include <stdbool.h>

#include "config.h"

/* Print the queue's health: counts per state, throughput, oldest due entry, top errors, backlog. */
int admin_status(const struct config *config, bool json);

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
};

/* Requeue the selected failed entries (dead ones by default). Returns the exit status. */
int admin_reprocess(const struct config *config, const struct reprocess_options *options);

#endif
