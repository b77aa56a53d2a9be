/*
 * inspect: `passportd inspect USER`, everything about one user in one read-only look: the user's
 * DNA rows (media_ids) with per-domain norms, the entries by state and the latest ones, the DNA's
 * evolution and drift, and optionally a plot of the DNA's change over time.
 *
 * The parts: inspect.c gathers the report (queries, one cJSON object); inspect_user.c turns the
 * USER argument (a user id or an email) into a user id; inspect_text.c prints the report for a
 * terminal; inspect_plot.c draws the plot (cairo).
 *
 * Safety: every query runs in one READ ONLY, REPEATABLE READ transaction (one snapshot, so the
 * counts and the lists agree), takes no row or advisory locks (plain SELECTs: the daemon's claims,
 * DNA writes and user locks never wait for inspect), has a statement timeout, is bounded by a
 * LIMIT and walks the indexes passport_entries (user_id, timestamp) and dna_evolution
 * (mediaid_id, event_time, passport_entry_id). All input reaches SQL as parameters.
 */
#ifndef PASSPORTD_INSPECT_H
#define PASSPORTD_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "config.h"

/* The version of the --json object; it changes only when a field changes meaning or goes away. */
#define INSPECT_JSON_VERSION 1

#define INSPECT_DEFAULT_LIMIT 20
#define INSPECT_MAX_LIMIT 1000
/* The drift window when --since is not given. */
#define INSPECT_DEFAULT_SINCE "30 days"

/* Bounds of the queries (each is a LIMIT; a report says when one was reached). */
#define INSPECT_MAX_MATCHES 20          /* users listed for an ambiguous email */
#define INSPECT_MAX_DNA_ROWS 20         /* media_ids rows of one user */
#define INSPECT_MAX_COUNTED 10000000    /* entries counted by state */
#define INSPECT_MAX_DRIFT_STEPS 1000000 /* evolution steps summed per DNA row */
#define INSPECT_MAX_PLOT_POINTS 20000   /* evolution steps plotted (the latest) */

/*
 * Exit statuses beyond 0 (report printed) and 1 (could not run); 2 is kept for usage errors, and
 * 3 means, as for drain, that the command ran but could not do its work.
 */
#define INSPECT_EXIT_NO_SINGLE_USER 3 /* no user, or several users, match the email */

struct inspect_options {
	const char *user;  /* the USER argument: a user id (UUID) or an email */
	long limit;        /* latest entries and evolution steps shown per list */
	const char *since; /* timestamptz text: start of the drift and plot window; NULL: 30 days ago */
	const char *plot;  /* --plot FILE (.svg or .png), NULL for none */
	const char *role;  /* --role: the DNA row to plot; NULL: the user's only row, or its fan row */
	bool json;
};

/* Run the subcommand: print the report (text or JSON). Returns the exit status. */
int command_inspect(const struct config *config, const struct inspect_options *options);

/* ---- inspect_user.c ------------------------------------------------------------------------ */

/*
 * Resolve text (a user id or an email) to a user id. Adds to report "matches": an array of
 * {"user_id", "email", "source"}: the rows that matched an email (auth.users.email, and
 * profiles.email where that table exists), or the emails of a given user id where the role may
 * read them. Returns 1 with user_id set when exactly one user matched (or text is a UUID), 0 when
 * none or several did (listed in "matches"), -1 with a message on stderr when it could not look.
 */
int inspect_resolve_user(PGconn *conn, const char *text, cJSON *report, char user_id[37]);

/* text with control characters replaced and cut to a length that is safe to print in a message. */
void inspect_printable(const char *text, char *out, size_t size);

/* ---- inspect_text.c ------------------------------------------------------------------------ */

/* Print the report (the --json object) for a terminal on out. */
void inspect_print_text(const cJSON *report, FILE *out);

#endif
