/*
 * backfill: `passport-migrate backfill` copies the legacy logs into passport_entries, batch by
 * batch. This file is the driver: start-up checks, one source's batch loop, and the sources side
 * by side (--jobs). backfill.h says how the run stays safe on a live database, and which file
 * holds each of its other parts.
 */
#include "backfill.h"
#include "tables.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copy one source, batch by batch, until its end, a failure or a stop request. */
static void backfill_source(struct backfill_session *session, struct source_run *run,
			    const struct backfill_options *options, const struct database_facts *facts,
			    const char *routes, const char *window_key, const char *since, const char *until)
{
	const char *params[PARAM_COUNT];
	char cursor[128] = "", limit[16], label[96];
	struct progress_display progress;
	struct db_error error;
	int batch_size = options->batch_size;
	double started = monotonic_seconds();

	/* One batch per second at most under a rate below the batch size: smoother than bursts. */
	if (options->max_rate > 0 && options->max_rate < batch_size)
		batch_size = options->max_rate >= 1 ? (int)options->max_rate : 1;
	snprintf(limit, sizeof limit, "%d", batch_size);

	if (backfill_build_statements(run, options, facts) < 0) {
		run->status = SOURCE_FAILED;
		return;
	}
	if (!options->dry_run) {
		int taken = backfill_session_lock(session, (int)run->source, &error);
		if (taken != 1) {
			snprintf(run->error, sizeof run->error, "%s", error.message);
			run->status = SOURCE_FAILED;
			return;
		}
		if (facts->has_progress_table && !options->restart &&
		    backfill_find_resume_point(session->conn, run, window_key, cursor, sizeof cursor, &error) < 0) {
			snprintf(run->error, sizeof run->error, "%s", error.message);
			run->status = SOURCE_FAILED;
			goto out;
		}
	}

	params[PARAM_CURSOR] = cursor[0] ? cursor : NULL;
	params[PARAM_FROM_START] = cursor[0] ? "false" : "true";
	params[PARAM_LIMIT] = limit;
	params[PARAM_SINCE] = since;
	params[PARAM_UNTIL] = until;
	params[PARAM_TYPE_MAP] = run->type_map_json;
	params[PARAM_ROUTES] = routes;
	params[PARAM_DEFAULT_CATEGORY] = route_for_event(NULL)->category;
	params[PARAM_FALLBACK_PREFIX] = run->table.layout->fallback_prefix;
	params[PARAM_MARK_PROCESSED] = options->mark_processed ? "true" : "false";
	params[PARAM_WINDOW_KEY] = window_key;

	if (options->dry_run && backfill_load_sample(session->conn, run, params, &error) < 0) {
		snprintf(run->error, sizeof run->error, "%s", error.message);
		run->status = SOURCE_FAILED;
		goto out;
	}
	if (options->progress != PROGRESS_NEVER)
		backfill_count_rows(session->conn, run, params);

	snprintf(label, sizeof label, "%s", legacy_source_name(run->source));
	/* Resuming is worth saying even without progress output: it explains the counts. */
	if (run->resumed_after[0])
		fprintf(stderr, MIGRATE_PROGRAM ": backfill: %s: resuming after id %s (%lld rows read by the "
				"interrupted run)\n",
			label, run->resumed_after, run->resumed_rows);
	if (options->progress != PROGRESS_NEVER) {
		char total[32];

		format_count(run->total, total, sizeof total);
		fprintf(stderr, MIGRATE_PROGRAM ": backfill: %s (%s layout): %s%s rows %s%s\n", label,
			legacy_table_layout_name(&run->table), run->total_estimated ? "about " : "", run->total >= 0 ? total : "?",
			run->resumed_after[0] ? "left" : "to read", options->dry_run ? " (dry run)" : "");
	}
	progress_begin(&progress, options->progress, options->lines_only, label);
	started = monotonic_seconds();

	for (;;) {
		PGresult *result = backfill_session_execute_batch(session, run, params, limit, sizeof limit, &error);
		long long scanned_now = 0;

		if (!result) {
			snprintf(run->error, sizeof run->error, "batch after id %s: %.900s",
				 params[PARAM_CURSOR] ? params[PARAM_CURSOR] : "(start)", error.message);
			run->status = SOURCE_FAILED;
			break;
		}
		for (int row = 0; row < PQntuples(result); row++) {
			if (strcmp(PQgetvalue(result, row, BATCH_KIND), "batch") == 0) {
				scanned_now = atoll(PQgetvalue(result, row, BATCH_ROWS_SCANNED));
				run->rows_scanned += scanned_now;
				run->rows_read += atoll(PQgetvalue(result, row, BATCH_ROWS_READ));
				run->written += atoll(PQgetvalue(result, row, BATCH_WRITTEN));
				run->anonymous += atoll(PQgetvalue(result, row, BATCH_ANONYMOUS));
				run->unknown_users += atoll(PQgetvalue(result, row, BATCH_UNKNOWN_USERS));
				if (!PQgetisnull(result, row, BATCH_LAST_ID))
					snprintf(cursor, sizeof cursor, "%s", PQgetvalue(result, row, BATCH_LAST_ID));
			} else {
				backfill_add_unmapped(run, PQgetvalue(result, row, BATCH_LEGACY_TYPE),
						      PQgetvalue(result, row, BATCH_EVENT_TYPE),
						      atoll(PQgetvalue(result, row, BATCH_ROWS_READ)));
			}
		}
		PQclear(result);
		params[PARAM_CURSOR] = cursor[0] ? cursor : NULL;
		params[PARAM_FROM_START] = cursor[0] ? "false" : "true";

		run->elapsed = monotonic_seconds() - started;
		progress_update(&progress, run, false);
		if (scanned_now < atoll(limit)) {
			run->status = SOURCE_COMPLETE;
			break;
		}
		if (backfill_stop_requested()) {
			run->status = SOURCE_INTERRUPTED;
			break;
		}
		if (options->max_rate > 0)
			backfill_pause((double)run->rows_scanned / options->max_rate - (monotonic_seconds() - started));
		if (backfill_stop_requested()) {
			run->status = SOURCE_INTERRUPTED;
			break;
		}
	}
	run->elapsed = monotonic_seconds() - started;
	progress_update(&progress, run, true);
out:
	if (!options->dry_run)
		backfill_session_unlock(session);
	backfill_sort_unmapped(run);
}

static void source_run_finish(struct source_run *run)
{
	legacy_table_finish(&run->table);
	free(run->batch_sql);
	free(run->conflict_sql);
	free(run->sample_sql);
	free(run->count_sql);
	free(run->type_map_json);
	for (size_t i = 0; i < run->unmapped_count; i++) {
		free(run->unmapped[i].legacy_type);
		free(run->unmapped[i].event_type);
	}
	free(run->unmapped);
	cJSON_Delete(run->sample);
}

/* ---- sources side by side (--jobs) ------------------------------------------------------ */

/* What the copying threads share: the runs to do and everything a run needs. */
struct copy_shared {
	const struct migrate_globals *globals;
	const struct backfill_options *options;
	const struct database_facts *facts;
	const char *routes, *window_key, *since, *until;
	struct source_run *runs;
	size_t run_count;
	pthread_mutex_t mutex; /* guards the runs' SOURCE_PENDING -> running hand-out */
};

/* The next run nobody has taken yet, marked taken; NULL when none is left (or on a stop). */
static struct source_run *take_pending_run(struct copy_shared *shared)
{
	struct source_run *run = NULL;

	pthread_mutex_lock(&shared->mutex);
	for (size_t i = 0; i < shared->run_count && !run && !backfill_stop_requested(); i++) {
		if (shared->runs[i].status == SOURCE_PENDING) {
			run = &shared->runs[i];
			run->status = SOURCE_RUNNING;
		}
	}
	pthread_mutex_unlock(&shared->mutex);
	return run;
}

/* Copy pending sources one after another on this session until none is left. */
static void copy_sources(struct copy_shared *shared, struct backfill_session *session)
{
	struct source_run *run;

	while ((run = take_pending_run(shared)) != NULL) {
		backfill_source(session, run, shared->options, shared->facts, shared->routes, shared->window_key,
				shared->since, shared->until);
		if (run->status == SOURCE_RUNNING)
			run->status = SOURCE_FAILED;
		if (run->status == SOURCE_FAILED)
			migrate_error("backfill: %s: %s", legacy_source_name(run->source), run->error);
	}
}

struct copy_job {
	struct copy_shared *shared;
	struct backfill_session session;
	pthread_t thread;
};

static void *copy_job_main(void *arg)
{
	struct copy_job *job = arg;

	copy_sources(job->shared, &job->session);
	return NULL;
}

/*
 * Copy the pending sources with `jobs` sessions at once: the first is the main session, the
 * others are new connections with the same settings. A job that cannot connect leaves its
 * sources to the others.
 */
static void copy_in_parallel(struct copy_shared *shared, struct backfill_session *main_session, int jobs)
{
	struct copy_job *job = calloc((size_t)jobs, sizeof(*job));
	int started = 0;

	if (!job) {
		copy_sources(shared, main_session);
		return;
	}
	job[0].session = *main_session;
	for (int i = 0; i < jobs; i++) {
		struct db_error error;

		job[i].shared = shared;
		if (i > 0) {
			job[i].session = *main_session;
			job[i].session.conn = migrate_connect(shared->globals);
			job[i].session.locked_source = -1;
			if (!job[i].session.conn)
				continue;
			if (backfill_session_prepare(&job[i].session, &error) < 0) {
				migrate_error("backfill: %s", error.message);
				PQfinish(job[i].session.conn);
				job[i].session.conn = NULL;
				continue;
			}
		}
		if (pthread_create(&job[i].thread, NULL, copy_job_main, &job[i]) != 0) {
			if (i > 0) {
				PQfinish(job[i].session.conn);
				job[i].session.conn = NULL;
			}
			continue;
		}
		started |= 1 << i;
	}
	for (int i = 0; i < jobs; i++) {
		if (!(started & (1 << i)))
			continue;
		pthread_join(job[i].thread, NULL);
		if (i > 0)
			PQfinish(job[i].session.conn);
	}
	/* The main session may have been reset (a reconnect) by its job: keep the live handle. */
	main_session->conn = job[0].session.conn;
	if (!(started & 1))
		copy_sources(shared, main_session); /* no thread ran it: finish here */
	free(job);
}

int backfill_main(struct migrate_globals *globals, int argc, char **argv)
{
	struct backfill_options options = {
		.sources = legacy_sources_parse("all"),
		.batch_size = BACKFILL_DEFAULT_BATCH,
		.lock_wait = BACKFILL_DEFAULT_LOCK_WAIT,
		.progress = PROGRESS_AUTO,
		.jobs = 1,
	};
	struct backfill_session session = {.conn = NULL, .locked_source = -1};
	struct database_facts facts;
	struct source_run runs[LEGACY_SOURCE_COUNT];
	size_t run_count = 0;
	char since[64] = "", until[64] = "", window_key[160];
	struct db_error error;
	char *routes = NULL;
	double started;
	int rc, exit_code = MIGRATE_EXIT_FAILURE;
	bool all_complete = true, interrupted = false;

	memset(&facts, 0, sizeof facts);
	memset(runs, 0, sizeof runs);
	rc = backfill_parse_options(argc, argv, globals, &options);
	if (rc > 0)
		return MIGRATE_EXIT_OK;
	if (rc < 0) {
		backfill_usage(stderr);
		return MIGRATE_EXIT_USAGE;
	}

	session.read_only = options.dry_run;
	session.dsn = globals->dsn ? globals->dsn : getenv("PASSPORT_DATABASE_URL");
	session.lock_wait = options.lock_wait;
	session.conn = migrate_connect(globals);
	if (!session.conn)
		return MIGRATE_EXIT_FAILURE;
	if (backfill_session_prepare(&session, &error) < 0) {
		migrate_error("backfill: %s", error.message);
		goto out;
	}
	/* The per-source lock is a session lock (a dry run takes none). */
	if (!options.dry_run && migrate_require_session(session.conn, globals, "backfill") < 0)
		goto out;
	if (backfill_check_window(session.conn, &options, since, until, sizeof since, window_key, sizeof window_key) < 0) {
		exit_code = MIGRATE_EXIT_USAGE;
		goto out;
	}
	if (backfill_read_database_facts(session.conn, &facts) < 0)
		goto out;
	if (!facts.has_progress_table && !options.dry_run)
		migrate_error("backfill: warning: passport_backfill_progress is %s; an interrupted run will re-read "
			      "from the start (still without duplicates)",
			      facts.progress_table_exists ? "not writable by this role (grant SELECT, INSERT, UPDATE on it)"
							  : "missing (run `" MIGRATE_PROGRAM " schema`)");
	if (facts.user_reference_relation[0] && !facts.user_reference_readable)
		migrate_error("backfill: warning: passport_entries.user_id references %s, which this role cannot "
			      "read: a legacy row whose user no longer exists will fail its batch (grant SELECT on "
			      "%s to keep such rows as anonymous)",
			      facts.user_reference_relation, facts.user_reference_relation);
	backfill_warn_about_running_daemons(session.conn, &options);
	routes = backfill_routes_json();
	if (!routes) {
		migrate_error("backfill: out of memory");
		goto out;
	}

	backfill_install_signal_handlers();
	started = monotonic_seconds();
	for (unsigned source = 0; source < LEGACY_SOURCE_COUNT; source++) {
		struct source_run *run;

		if (!(options.sources & (1u << source)))
			continue;
		run = &runs[run_count++];
		run->source = (enum legacy_source)source;
		if (legacy_table_inspect(session.conn, run->source, options.include_client_info, &run->table, &error) <
		    0) {
			snprintf(run->error, sizeof run->error, "%s", error.message);
			run->status = SOURCE_FAILED;
			continue;
		}
		if (!run->table.exists) {
			run->status = SOURCE_MISSING;
			migrate_error("backfill: %s: table not found, skipped", legacy_source_name(run->source));
			continue;
		}
		if (run->table.problem[0]) {
			char problem[sizeof run->error];

			snprintf(problem, sizeof problem, "%s cannot be read: %s", run->table.relation,
				 run->table.problem);
			memcpy(run->error, problem, sizeof problem);
			run->status = SOURCE_FAILED;
			continue;
		}
		run->status = SOURCE_PENDING;
	}
	{
		struct copy_shared shared = {
			.globals = globals, .options = &options, .facts = &facts, .routes = routes,
			.window_key = window_key, .since = since[0] ? since : NULL, .until = until[0] ? until : NULL,
			.runs = runs, .run_count = run_count, .mutex = PTHREAD_MUTEX_INITIALIZER,
		};
		size_t pending = 0;

		for (size_t i = 0; i < run_count; i++)
			pending += runs[i].status == SOURCE_PENDING;
		if (options.jobs > 1 && pending > 1) {
			options.lines_only = true; /* two bars cannot share one terminal line */
			copy_in_parallel(&shared, &session, pending < (size_t)options.jobs ? (int)pending : options.jobs);
		} else
			copy_sources(&shared, &session);
	}
	for (size_t i = 0; i < run_count; i++) {
		struct source_run *run = &runs[i];

		if (run->status == SOURCE_PENDING)
			run->status = SOURCE_INTERRUPTED; /* a stop came first */
		if (run->status == SOURCE_INTERRUPTED)
			interrupted = true;
		if (run->status != SOURCE_COMPLETE && run->status != SOURCE_MISSING)
			all_complete = false;
	}

	if (options.json)
		backfill_print_summary_json(runs, run_count, &options, since, until, monotonic_seconds() - started,
				   all_complete ? "complete" : interrupted ? "interrupted" : "failed");
	else
		backfill_print_summary_text(runs, run_count, &options, monotonic_seconds() - started);
	if (interrupted)
		migrate_error("backfill: interrupted; run the same command again to resume");
	exit_code = all_complete ? MIGRATE_EXIT_OK : MIGRATE_EXIT_FAILURE;
out:
	for (size_t i = 0; i < run_count; i++)
		source_run_finish(&runs[i]);
	free(routes);
	PQfinish(session.conn);
	return exit_code;
}
