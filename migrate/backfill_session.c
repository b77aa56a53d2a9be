/* backfill_session: keep a backfill's connection working: settings, the source lock, retries, reconnects, stops. */
#include "backfill.h"
#include "claim.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * The settings of a batch's transaction, local to it (SET LOCAL), so that nothing outlives the
 * batch, not even behind a transaction pooler (see backfill.h for the values).
 */
#define BATCH_SETTINGS_SQL                                                                         \
	"SELECT set_config('TimeZone', 'UTC', true), set_config('statement_timeout', '60s', true),"   \
	" set_config('lock_timeout', '5s', true), set_config('idle_in_transaction_session_timeout', '60s', true)," \
	" set_config('work_mem', '32MB', true)"

/* ---- stop requests ------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo)
{
	/* A second signal ends the program at once; that is as safe as the first (see backfill.h). */
	if (stop_requested) {
		signal(signo, SIG_DFL);
		raise(signo);
		return;
	}
	stop_requested = 1;
}

void backfill_install_signal_handlers(void)
{
	struct sigaction action;

	memset(&action, 0, sizeof action);
	action.sa_handler = on_stop_signal;
	sigemptyset(&action.sa_mask);
	/* No SA_RESTART: a rate-limit pause must wake up at once. */
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
}

bool backfill_stop_requested(void)
{
	return stop_requested != 0;
}

void backfill_pause(double seconds)
{
	double until = monotonic_seconds() + seconds;

	while (!stop_requested) {
		double left = until - monotonic_seconds();
		struct timespec step;

		if (left <= 0)
			return;
		if (left > 0.25)
			left = 0.25;
		step.tv_sec = (time_t)left;
		step.tv_nsec = (long)((left - (double)step.tv_sec) * 1e9);
		nanosleep(&step, NULL);
	}
}

/* ---- the session ----------------------------------------------------------------------------- */

/* Fold libpq's multi-line messages ("server closed the connection...\n\tThis probably...") into one line. */
static void fold_lines(char *text)
{
	char *out = text;

	for (const char *in = text; *in; in++) {
		if (*in == '\n' || *in == '\t' || *in == '\r') {
			if (out > text && out[-1] != ' ')
				*out++ = ' ';
			continue;
		}
		*out++ = *in;
	}
	*out = '\0';
}

/* Errors worth another attempt at the same batch: the next try may well succeed. */
static bool is_transient(PGconn *conn, const struct db_error *error)
{
	const char *sqlstate = error->sqlstate;

	if (PQstatus(conn) != CONNECTION_OK)
		return true;
	return strcmp(sqlstate, "40001") == 0 || /* serialization_failure */
	       strcmp(sqlstate, "40P01") == 0 || /* deadlock_detected */
	       strcmp(sqlstate, "55P03") == 0 || /* lock_not_available (lock_timeout) */
	       strcmp(sqlstate, "57014") == 0 || /* query_canceled (statement_timeout) */
	       strncmp(sqlstate, "08", 2) == 0 || /* connection exceptions */
	       strcmp(sqlstate, "57P01") == 0 || /* admin_shutdown */
	       strcmp(sqlstate, "53300") == 0;   /* too_many_connections */
}

int backfill_session_prepare(struct backfill_session *session, struct db_error *error)
{
	/* Nothing is set on the session: each batch's transaction carries its settings (BATCH_SETTINGS_SQL). */
	(void)session;
	(void)error;
	return 0;
}

/*
 * One batch in its own transaction, one round trip: BEGIN (READ ONLY for a dry run), the
 * settings, the batch statement, COMMIT. Returns the batch's result, or NULL with the first
 * error (the transaction is then rolled back).
 */
static PGresult *run_batch_transaction(struct backfill_session *session, const char *sql,
				       const char *const params[PARAM_COUNT], struct db_error *error)
{
	struct db_statement statements[4] = {
		{.sql = session->read_only ? "BEGIN READ ONLY" : "BEGIN"},
		{.sql = BATCH_SETTINGS_SQL},
		{.sql = sql, .nparams = PARAM_COUNT, .types = batch_param_types},
		{.sql = "COMMIT"},
	};
	PGresult *result = NULL;

	for (int i = 0; i < PARAM_COUNT; i++)
		statements[2].values[i] = params[i];
	if (db_pipeline_run(session->conn, statements, 4, error) == 0) {
		result = statements[2].res;
		statements[2].res = NULL;
	} else {
		db_rollback(session->conn);
	}
	for (int i = 0; i < 4; i++)
		PQclear(statements[i].res);
	return result;
}

/*
 * Why wait for the lock: the holder may be another backfill, or the server-side backend of a
 * killed one still finishing its last batch (up to the statement timeout) before it notices its
 * client is gone.
 *
 * The lock has a class of its own (LOCK_CLASS_BACKFILL), so its keys can never meet passportd's
 * user locks. Since the class changed, a backfill of this release and one of an earlier release
 * (which used passportd's class) do not exclude each other: run one version at a time.
 */
int backfill_session_lock(struct backfill_session *session, int source, struct db_error *error)
{
	const char *name = legacy_source_name((enum legacy_source)source);
	double deadline = monotonic_seconds() + session->lock_wait;
	char sql[128];
	bool said = false;

	snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(" LOCK_CLASS_BACKFILL ", %d)", source + 1);
	for (;;) {
		bool taken;

		if (db_query_bool(session->conn, sql, &taken, error) < 0) {
			db_error_prefix(error, "taking the backfill lock");
			return -1;
		}
		if (taken) {
			session->locked_sources |= 1u << source;
			return 1;
		}
		if (monotonic_seconds() >= deadline || stop_requested)
			break;
		if (!said) {
			migrate_error("backfill: %s: another backfill of it holds the lock (or a killed one's last "
				      "batch is still finishing on the server); waiting up to %.0f s",
				      name, session->lock_wait);
			said = true;
		}
		backfill_pause(0.5);
	}
	db_error_set(error, NULL, "another backfill of %s is running (advisory lock held); wait for it or stop it first",
		     name);
	return 0;
}

void backfill_session_unlock(struct backfill_session *session)
{
	struct db_error ignored; /* a lost connection released the locks already */

	for (int source = 0; source < LEGACY_SOURCE_COUNT; source++) {
		char sql[128];

		if (!(session->locked_sources & (1u << source)))
			continue;
		snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(" LOCK_CLASS_BACKFILL ", %d)", source + 1);
		(void)db_command(session->conn, sql, &ignored);
	}
	session->locked_sources = 0;
}

/*
 * After a lost connection: reconnect with the same parameters, restore the settings and the
 * advisory locks. Another run may have taken a lock meanwhile; then this one stops.
 */
static int session_reconnect(struct backfill_session *session, struct db_error *error)
{
	unsigned locked = session->locked_sources;

	PQreset(session->conn);
	if (PQstatus(session->conn) != CONNECTION_OK) {
		db_error_from_connection(error, session->conn);
		db_redact_error(session->dsn, error->message, sizeof error->message);
		db_error_prefix(error, "reconnecting");
		return -1;
	}
	if (backfill_session_prepare(session, error) < 0)
		return -1;
	session->locked_sources = 0;
	for (int source = 0; source < LEGACY_SOURCE_COUNT; source++)
		if ((locked & (1u << source)) && backfill_session_lock(session, source, error) != 1)
			return -1;
	return 0;
}

PGresult *backfill_session_execute_batch(struct backfill_session *session, const struct source_run *run,
					 bool *on_conflict, const char *const params[PARAM_COUNT], char *limit_text,
					 size_t limit_size, struct db_error *error)
{
	for (int attempt = 1;; attempt++) {
		PGresult *result = run_batch_transaction(session, *on_conflict ? run->conflict_sql : run->batch_sql,
							 params, error);
		struct db_error reconnect_error;
		bool transient;

		if (result)
			return result;
		/* Someone else inserted one of the keys meanwhile: from now on, let the index skip them. */
		if (strcmp(error->sqlstate, "23505") == 0 && !*on_conflict && run->conflict_sql) { /* unique_violation */
			*on_conflict = true;
			attempt--;
			continue;
		}
		fold_lines(error->message);
		transient = is_transient(session->conn, error);
		if (strcmp(error->sqlstate, "57014") == 0) {
			int limit = atoi(limit_text) / 2;
			snprintf(limit_text, limit_size, "%d", limit > 0 ? limit : 1);
		}
		if (!transient || attempt >= BACKFILL_MAX_ATTEMPTS || stop_requested)
			return NULL;
		migrate_error("backfill: %s; retrying in %d s (attempt %d of %d)", error->message, 1 << (attempt - 1),
			      attempt + 1, BACKFILL_MAX_ATTEMPTS);
		backfill_pause((double)(1 << (attempt - 1)));
		if (PQstatus(session->conn) != CONNECTION_OK && session_reconnect(session, &reconnect_error) < 0) {
			if (attempt + 1 >= BACKFILL_MAX_ATTEMPTS) {
				*error = reconnect_error;
				return NULL;
			}
			migrate_error("backfill: %s", reconnect_error.message);
		}
	}
}
