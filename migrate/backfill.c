/*
 * backfill: `passport-migrate backfill` copies the legacy logs into passport_entries, batch by
 * batch. This file is the driver: start-up checks, each source's preparation (lock, slices,
 * counts), one slice's batch loop, and the slices side by side (--jobs). backfill.h says how the
 * run stays safe on a live database, and which file holds each of its other parts.
 */
#include "backfill.h"
#include "config.h"
#include "tables.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Guards what the jobs share: the slice queue, and each run's counts, status and progress output. */
static pthread_mutex_t runs_mutex = PTHREAD_MUTEX_INITIALIZER;

/* What the copying jobs share: the slices to copy, in order, and everything a batch needs. */
struct copy_shared {
	const struct migrate_globals *globals;
	const struct backfill_options *options;
	const char *routes, *window_key, *since, *until;
	struct backfill_slice *queue[LEGACY_SOURCE_COUNT * BACKFILL_MAX_SLICES];
	size_t queue_length;
	size_t next; /* the first slice no job has taken */
};

/* One batch at most per second under a rate below the batch size: smoother than bursts. */
static int batch_size_of(const struct backfill_options *options)
{
	if (options->max_rate > 0 && options->max_rate < options->batch_size)
		return options->max_rate >= 1 ? (int)options->max_rate : 1;
	return options->batch_size;
}

/* The parameters every batch of run shares (the slice's own come from backfill_slice_params). */
static void run_params(const char *params[PARAM_COUNT], const struct source_run *run,
		       const struct copy_shared *shared, const char *limit)
{
	params[PARAM_LIMIT] = limit;
	params[PARAM_SINCE] = shared->since;
	params[PARAM_UNTIL] = shared->until;
	params[PARAM_TYPE_MAP] = run->type_map_json;
	params[PARAM_ROUTES] = shared->routes;
	params[PARAM_DEFAULT_CATEGORY] = route_for_event(NULL)->category;
	params[PARAM_FALLBACK_PREFIX] = run->table.layout->fallback_prefix;
	params[PARAM_MARK_PROCESSED] = shared->options->mark_processed ? "true" : "false";
	params[PARAM_WINDOW_KEY] = shared->window_key;
	backfill_slice_params(&run->slices[0], params);
}

/*
 * Before any slice is copied, on the main session: the statements, the source's lock (kept to
 * the end of the run), its slices (an interrupted run's, or a fresh run's cut in up to wanted),
 * the dry run's sample, the row count and the opening lines. Returns 0, or -1 with run->error set.
 */
static int prepare_source(struct backfill_session *session, struct source_run *run, const struct copy_shared *shared,
			  const struct database_facts *facts, int wanted)
{
	const struct backfill_options *options = shared->options;
	const char *name = legacy_source_name(run->source);
	const char *params[PARAM_COUNT];
	char limit[16], resumed[512];
	struct db_error error;

	if (backfill_build_statements(run, options, facts) < 0)
		return -1;
	if (!options->dry_run && backfill_session_lock(session, (int)run->source, &error) != 1)
		goto fail;
	if (backfill_plan_slices(session->conn, run, options, facts, shared->window_key, wanted, &error) < 0)
		goto fail;
	snprintf(limit, sizeof limit, "%d", batch_size_of(options));
	run_params(params, run, shared, limit);
	if (options->dry_run && backfill_load_sample(session->conn, run, params, &error) < 0)
		goto fail;
	if (options->progress != PROGRESS_NEVER)
		backfill_count_rows(session->conn, run, params);

	/* Resuming is worth saying even without progress output: it explains the counts. */
	backfill_describe_resume(run, resumed, sizeof resumed);
	if (resumed[0])
		fprintf(stderr, MIGRATE_PROGRAM ": backfill: %s: resuming %s (%lld rows read by the interrupted run)\n",
			name, resumed, run->resumed_rows);
	if (options->progress != PROGRESS_NEVER) {
		char total[32], slices[48] = "";

		format_count(run->total, total, sizeof total);
		if (run->slice_count > 1)
			snprintf(slices, sizeof slices, ", in %d slices", run->slice_count);
		fprintf(stderr, MIGRATE_PROGRAM ": backfill: %s (%s layout): %s%s rows %s%s%s\n", name,
			legacy_table_layout_name(&run->table), run->total_estimated ? "about " : "",
			run->total >= 0 ? total : "?", resumed[0] ? "left" : "to read", slices,
			options->dry_run ? " (dry run)" : "");
	}
	run->slices_left = run->slice_count;
	return 0;
fail:
	snprintf(run->error, sizeof run->error, "%s", error.message);
	return -1;
}

/* A slice has ended: count it, and when it was the run's last, show the run's final progress. */
static void end_slice(struct backfill_slice *slice, enum source_status status)
{
	struct source_run *run = slice->run;

	pthread_mutex_lock(&runs_mutex);
	slice->status = status;
	if (--run->slices_left == 0) {
		run->elapsed = monotonic_seconds() - run->started;
		progress_update(&run->progress, run, true);
	}
	pthread_mutex_unlock(&runs_mutex);
}

/* Add a batch's result to its run's counts and the slice's cursor; returns the rows it scanned. */
static long long take_batch_result(struct backfill_slice *slice, PGresult *result)
{
	struct source_run *run = slice->run;
	long long scanned = 0;

	pthread_mutex_lock(&runs_mutex);
	for (int row = 0; row < PQntuples(result); row++) {
		if (strcmp(PQgetvalue(result, row, BATCH_KIND), "batch") == 0) {
			scanned = atoll(PQgetvalue(result, row, BATCH_ROWS_SCANNED));
			run->rows_scanned += scanned;
			run->rows_read += atoll(PQgetvalue(result, row, BATCH_ROWS_READ));
			run->written += atoll(PQgetvalue(result, row, BATCH_WRITTEN));
			run->anonymous += atoll(PQgetvalue(result, row, BATCH_ANONYMOUS));
			run->unknown_users += atoll(PQgetvalue(result, row, BATCH_UNKNOWN_USERS));
			if (!PQgetisnull(result, row, BATCH_LAST_ID))
				snprintf(slice->cursor, sizeof slice->cursor, "%s", PQgetvalue(result, row, BATCH_LAST_ID));
		} else {
			backfill_add_unmapped(run, PQgetvalue(result, row, BATCH_LEGACY_TYPE),
					      PQgetvalue(result, row, BATCH_EVENT_TYPE),
					      atoll(PQgetvalue(result, row, BATCH_ROWS_READ)));
		}
	}
	run->elapsed = monotonic_seconds() - run->started;
	progress_update(&run->progress, run, false);
	pthread_mutex_unlock(&runs_mutex);
	return scanned;
}

/* Seconds to wait before the next batch for the run to stay under --max-rate (its slices together). */
static double rate_pause(const struct source_run *run, double max_rate)
{
	double pause;

	if (max_rate <= 0)
		return 0;
	pthread_mutex_lock(&runs_mutex);
	pause = (double)run->rows_scanned / max_rate - (monotonic_seconds() - run->started);
	pthread_mutex_unlock(&runs_mutex);
	return pause;
}

/* Copy one slice, batch by batch, until its end, a failure or a stop request. */
static void copy_slice(struct backfill_session *session, struct backfill_slice *slice, const struct copy_shared *shared)
{
	struct source_run *run = slice->run;
	const struct backfill_options *options = shared->options;
	const char *params[PARAM_COUNT];
	char limit[16];
	struct db_error error;
	bool on_conflict = false;
	enum source_status status;

	snprintf(limit, sizeof limit, "%d", batch_size_of(options));
	run_params(params, run, shared, limit);
	pthread_mutex_lock(&runs_mutex);
	if (run->started == 0) {
		run->started = monotonic_seconds();
		run->progress.started = run->started;
		run->progress.last_output = run->started;
	}
	pthread_mutex_unlock(&runs_mutex);

	for (;;) {
		PGresult *result;
		long long scanned;

		backfill_slice_params(slice, params);
		result = backfill_session_execute_batch(session, run, &on_conflict, params, limit, sizeof limit, &error);
		if (!result) {
			pthread_mutex_lock(&runs_mutex);
			if (!run->error[0])
				snprintf(run->error, sizeof run->error, "batch after id %s: %.900s",
					 params[PARAM_CURSOR] ? params[PARAM_CURSOR] : "(start)", error.message);
			pthread_mutex_unlock(&runs_mutex);
			migrate_error("backfill: %s: batch after id %s: %s", legacy_source_name(run->source),
				      params[PARAM_CURSOR] ? params[PARAM_CURSOR] : "(start)", error.message);
			status = SOURCE_FAILED;
			break;
		}
		scanned = take_batch_result(slice, result);
		PQclear(result);
		if (scanned < atoll(limit)) {
			status = SOURCE_COMPLETE;
			break;
		}
		if (backfill_stop_requested()) {
			status = SOURCE_INTERRUPTED;
			break;
		}
		backfill_pause(rate_pause(run, options->max_rate));
		if (backfill_stop_requested()) {
			status = SOURCE_INTERRUPTED;
			break;
		}
	}
	end_slice(slice, status);
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

/* ---- slices side by side (--jobs) ---------------------------------------------------------- */

/* The next slice nobody has taken yet, marked taken; NULL when none is left (or on a stop). */
static struct backfill_slice *take_slice(struct copy_shared *shared)
{
	struct backfill_slice *slice = NULL;

	pthread_mutex_lock(&runs_mutex);
	if (shared->next < shared->queue_length && !backfill_stop_requested()) {
		slice = shared->queue[shared->next++];
		slice->status = SOURCE_RUNNING;
	}
	pthread_mutex_unlock(&runs_mutex);
	return slice;
}

/* Copy slices one after another on this session until none is left. */
static void copy_slices(struct copy_shared *shared, struct backfill_session *session)
{
	struct backfill_slice *slice;

	while ((slice = take_slice(shared)) != NULL)
		copy_slice(session, slice, shared);
}

struct copy_job {
	struct copy_shared *shared;
	struct backfill_session session;
	pthread_t thread;
};

static void *copy_job_main(void *arg)
{
	struct copy_job *job = arg;

	copy_slices(job->shared, &job->session);
	return NULL;
}

/*
 * Copy the queued slices with `jobs` sessions at once: the first is the main session, the others
 * are new connections with the same settings. A job that cannot connect leaves its slices to the
 * others.
 */
static void copy_in_parallel(struct copy_shared *shared, struct backfill_session *main_session, int jobs)
{
	struct copy_job *job = calloc((size_t)jobs, sizeof(*job));
	int started = 0;

	if (!job) {
		copy_slices(shared, main_session);
		return;
	}
	job[0].session = *main_session;
	for (int i = 0; i < jobs; i++) {
		struct db_error error;

		job[i].shared = shared;
		if (i > 0) {
			job[i].session = *main_session;
			job[i].session.conn = migrate_connect(shared->globals);
			job[i].session.locked_sources = 0;
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
	/* The main session may have been reset (a reconnect) by its job: keep the live handle and its locks. */
	main_session->conn = job[0].session.conn;
	main_session->locked_sources = job[0].session.locked_sources;
	if (!(started & 1))
		copy_slices(shared, main_session); /* no thread ran it: finish here */
	free(job);
}

/*
 * A pending run's status once the jobs are done: failed if a slice failed; interrupted if one
 * was stopped or never taken, or the run was never prepared (a stop came first); otherwise
 * complete. A run stopped with slices never taken shows its last progress line here.
 */
static enum source_status source_status_of_slices(struct source_run *run)
{
	enum source_status status = run->slice_count > 0 ? SOURCE_COMPLETE : SOURCE_INTERRUPTED;

	for (int i = 0; i < run->slice_count; i++) {
		enum source_status slice = run->slices[i].status;

		if (slice == SOURCE_FAILED)
			return SOURCE_FAILED;
		if (slice != SOURCE_COMPLETE)
			status = SOURCE_INTERRUPTED;
	}
	if (run->slices_left > 0 && run->started > 0) {
		run->elapsed = monotonic_seconds() - run->started;
		progress_update(&run->progress, run, true);
	}
	return status;
}

int backfill_main(struct migrate_globals *globals, int argc, char **argv)
{
	struct backfill_options options = {
		.sources = legacy_sources_parse("all"),
		.batch_size = BACKFILL_DEFAULT_BATCH,
		.lock_wait = BACKFILL_DEFAULT_LOCK_WAIT,
		.progress = PROGRESS_AUTO,
		/* One per online CPU, at most 4 (as drain's workers): the logs' slices side by side on 2+ cores. */
		.jobs = config_machine_parallelism(CONFIG_AUTO_WORKERS_MAX),
	};
	struct backfill_session session = {.conn = NULL, .locked_sources = 0};
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
			      !facts.progress_table_exists  ? "missing (run `" MIGRATE_PROGRAM " schema`)"
			      : !facts.progress_table_sliced ? "older than this program (run `" MIGRATE_PROGRAM " schema`)"
							     : "not writable by this role (grant SELECT, INSERT, UPDATE on it)");
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
			.globals = globals, .options = &options, .routes = routes, .window_key = window_key,
			.since = since[0] ? since : NULL, .until = until[0] ? until : NULL,
		};
		/* Slices only pay with jobs to share them; under --max-rate one source reads at one pace. */
		int wanted = options.jobs > 1 && options.max_rate <= 0 && !options.dry_run ? options.jobs : 1;
		int jobs;

		for (size_t i = 0; i < run_count; i++) {
			if (runs[i].status != SOURCE_PENDING || backfill_stop_requested())
				continue;
			if (prepare_source(&session, &runs[i], &shared, &facts, wanted) < 0) {
				runs[i].status = SOURCE_FAILED;
				migrate_error("backfill: %s: %s", legacy_source_name(runs[i].source), runs[i].error);
			}
		}
		/* The queue takes the sources' first slices first, then their second ones, and so on. */
		for (int slice = 0; slice < BACKFILL_MAX_SLICES; slice++)
			for (size_t i = 0; i < run_count; i++)
				if (runs[i].status == SOURCE_PENDING && slice < runs[i].slice_count)
					shared.queue[shared.queue_length++] = &runs[i].slices[slice];
		jobs = shared.queue_length < (size_t)options.jobs ? (int)shared.queue_length : options.jobs;
		options.lines_only = jobs > 1; /* two bars cannot share one terminal line */
		for (size_t i = 0; i < run_count; i++)
			if (runs[i].status == SOURCE_PENDING)
				progress_begin(&runs[i].progress, options.progress, options.lines_only,
					       legacy_source_name(runs[i].source));
		if (jobs > 1)
			copy_in_parallel(&shared, &session, jobs);
		else
			copy_slices(&shared, &session);
	}
	for (size_t i = 0; i < run_count; i++) {
		struct source_run *run = &runs[i];

		if (run->status == SOURCE_PENDING)
			run->status = source_status_of_slices(run);
		backfill_sort_unmapped(run);
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
	backfill_session_unlock(&session);
	for (size_t i = 0; i < run_count; i++)
		source_run_finish(&runs[i]);
	free(routes);
	PQfinish(session.conn);
	return exit_code;
}
