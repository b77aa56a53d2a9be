/* db: the one libpq layer: connections, statements, pipelines and struct db_error. */
#include "db.h"
#include "db_prepared.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set once at start-up by a terminal program (db_keep_line_breaks); the daemon leaves it false. */
static bool keep_line_breaks;

void db_keep_line_breaks(bool keep)
{
	keep_line_breaks = keep;
}

const char *db_resolve_dsn(const char *dsn)
{
	const char *env;

	if (dsn && *dsn)
		return dsn;
	env = getenv("PASSPORT_DATABASE_URL");
	if (env && *env)
		return env;
	return "";
}

void db_error_text(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
	const char *message = NULL;
	size_t n;

	if (res)
		message = PQresultErrorMessage(res);
	if ((!message || !*message) && conn)
		message = PQerrorMessage(conn);
	if (!message || !*message)
		message = "unknown database error";
	snprintf(err, errlen, "%s", message);
	/* One line: fold newlines, drop the trailing one (unless the program keeps them). */
	for (char *p = err; *p && !keep_line_breaks; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n = strlen(err);
	while (n > 0 && (err[n - 1] == ' ' || err[n - 1] == '\n' || err[n - 1] == '\r'))
		err[--n] = '\0';
}

int db_check_dsn(const char *dsn, char *err, size_t errlen)
{
	PQconninfoOption *options = PQconninfoParse(db_resolve_dsn(dsn), NULL);

	if (!options) {
		snprintf(err, errlen,
			 "invalid connection string (not shown, it may hold a password): check its syntax, "
			 "e.g. 'host=... dbname=...' or 'postgresql://user@host/db'");
		return -1;
	}
	PQconninfoFree(options);
	return 0;
}

/* Replace every occurrence of secret in message by asterisks, within size. */
static void mask_secret(char *message, size_t size, const char *secret)
{
	static const char mask[] = "********";
	size_t secret_len = strlen(secret), mask_len = sizeof(mask) - 1;
	char *hit = message;

	if (secret_len == 0)
		return;
	while ((hit = strstr(hit, secret)) != NULL) {
		size_t tail = strlen(hit + secret_len);
		if ((size_t)(hit - message) + mask_len + tail + 1 > size) {
			*hit = '\0';
			return;
		}
		memmove(hit + mask_len, hit + secret_len, tail + 1);
		memcpy(hit, mask, mask_len);
		hit += mask_len;
	}
}

void db_redact_error(const char *dsn, char *message, size_t size)
{
	PQconninfoOption *options = PQconninfoParse(db_resolve_dsn(dsn), NULL);

	if (!options) {
		db_check_dsn(dsn, message, size);
		return;
	}
	for (PQconninfoOption *o = options; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val)
			mask_secret(message, size, o->val);
	PQconninfoFree(options);
}

void db_error_clear(struct db_error *error)
{
	error->sqlstate[0] = '\0';
	error->message[0] = '\0';
}

void db_error_set(struct db_error *error, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	snprintf(error->sqlstate, sizeof(error->sqlstate), "%s", sqlstate ? sqlstate : "");
	va_start(ap, fmt);
	vsnprintf(error->message, sizeof(error->message), fmt, ap);
	va_end(ap);
}

/* A failure that says the server lost what it prepared is reported here too (db_prepared.c). */
void db_error_from_result(struct db_error *error, PGconn *conn, const PGresult *res)
{
	db_error_text(conn, res, error->message, sizeof(error->message));
	snprintf(error->sqlstate, sizeof(error->sqlstate), "%s", db_sqlstate(res));
	db_prepared_failed(conn, error->sqlstate);
}

void db_error_from_connection(struct db_error *error, PGconn *conn)
{
	db_error_text(conn, NULL, error->message, sizeof(error->message));
	snprintf(error->sqlstate, sizeof(error->sqlstate), "%s", DB_SQLSTATE_CONNECTION_FAILURE);
}

bool db_error_is_transient(const struct db_error *error)
{
	return strcmp(error->sqlstate, "40001") == 0 || strcmp(error->sqlstate, "40P01") == 0 ||
	       strcmp(error->sqlstate, "57014") == 0 ||
	       strcmp(error->sqlstate, DB_SQLSTATE_NO_SUCH_STATEMENT) == 0;
}

PGconn *db_connect_params(const char *const *keywords, const char *const *values, const char *session_sql,
			  struct db_error *error)
{
	PGconn *conn;

	/* expand_dbname = 1: dbname may be a whole connection string or URI. */
	conn = PQconnectdbParams(keywords, values, 1);
	if (!conn) {
		db_error_set(error, DB_SQLSTATE_CONNECTION_FAILURE, "out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		db_error_from_connection(error, conn);
		for (int i = 0; keywords[i]; i++)
			if (strcmp(keywords[i], "dbname") == 0)
				db_redact_error(values[i], error->message, sizeof(error->message));
		PQfinish(conn);
		return NULL;
	}
	if (session_sql && db_command(conn, session_sql, error) < 0) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* Print notices of WARNING and above, as libpq's default processor does; drop the rest. */
static void notice_receiver(void *arg, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

	(void)arg;
	if (severity && (strcmp(severity, "NOTICE") == 0 || strcmp(severity, "INFO") == 0 ||
			 strcmp(severity, "LOG") == 0 || strcmp(severity, "DEBUG") == 0))
		return;
	fprintf(stderr, "%s", PQresultErrorMessage(res));
}

void db_quiet_notices(PGconn *conn)
{
	PQsetNoticeReceiver(conn, notice_receiver, NULL);
}

/*
 * Whether the user chose a connect_timeout: in dsn, in PGCONNECT_TIMEOUT, or possibly in a service
 * file (dsn's service or PGSERVICE), whose values libpq applies only where none is given.
 */
static bool user_sets_connect_timeout(const char *dsn)
{
	PQconninfoOption *options = PQconninfoParse(dsn, NULL);
	bool set = getenv("PGCONNECT_TIMEOUT") || getenv("PGSERVICE");

	for (PQconninfoOption *o = options; o && o->keyword; o++)
		if ((strcmp(o->keyword, "connect_timeout") == 0 || strcmp(o->keyword, "service") == 0) && o->val &&
		    *o->val)
			set = true;
	PQconninfoFree(options);
	return set;
}

void db_connection_params(const char *dsn, const char *application_name, const char *const *extra_keys,
			  const char *const *extra_values, const char *keys[DB_CONNECTION_PARAMS_MAX],
			  const char *values[DB_CONNECTION_PARAMS_MAX])
{
	const char *resolved = db_resolve_dsn(dsn);
	int n = 0;

	keys[n] = "fallback_application_name";
	values[n++] = application_name;
	if (!user_sets_connect_timeout(resolved)) {
		keys[n] = "connect_timeout";
		values[n++] = "10";
	}
	for (int i = 0; extra_keys && extra_keys[i] && n < DB_CONNECTION_PARAMS_MAX - 2; i++) {
		keys[n] = extra_keys[i];
		values[n++] = extra_values[i];
	}
	/* dbname (the connection string, expanded) last: libpq keeps a keyword's last value. */
	keys[n] = "dbname";
	values[n++] = resolved;
	keys[n] = NULL;
	values[n] = NULL;
}

const char *const db_liveness_keys[] = {"keepalives",       "keepalives_idle",  "keepalives_interval",
					"keepalives_count", "tcp_user_timeout", NULL};
const char *const db_liveness_values[] = {"1", "30", "10", "3", "60000", NULL};

PGconn *db_connect(const char *dsn, const char *application_name, struct db_error *error)
{
	const char *keys[DB_CONNECTION_PARAMS_MAX], *values[DB_CONNECTION_PARAMS_MAX];
	PGconn *conn;

	db_connection_params(dsn, application_name, db_liveness_keys, db_liveness_values, keys, values);
	conn = db_connect_params(keys, values, NULL, error);
	if (conn)
		db_quiet_notices(conn);
	return conn;
}

void db_transaction_settings(struct db_statement *statement, int statement_timeout_ms, bool synchronous_commit,
			     char text[DB_TIMEOUT_TEXT_SIZE])
{
#define ASYNC_COMMIT ", set_config('synchronous_commit', 'off', true)"
	memset(statement, 0, sizeof(*statement));
	statement->sql = synchronous_commit ? DB_TRANSACTION_SETTINGS_SQL : DB_TRANSACTION_SETTINGS_SQL ASYNC_COMMIT;
	if (statement_timeout_ms <= 0)
		return;
	statement->sql = synchronous_commit
				 ? DB_TRANSACTION_SETTINGS_SQL ", set_config('statement_timeout', $1, true)"
				 : DB_TRANSACTION_SETTINGS_SQL ", set_config('statement_timeout', $1, true)" ASYNC_COMMIT;
#undef ASYNC_COMMIT
	statement->nparams = 1;
	snprintf(text, DB_TIMEOUT_TEXT_SIZE, "%d", statement_timeout_ms);
	statement->values[0] = text;
}

int db_begin(PGconn *conn, int statement_timeout_ms, struct db_error *error)
{
	struct db_statement f[2] = {{.sql = "BEGIN"}};
	char timeout[DB_TIMEOUT_TEXT_SIZE];
	int rc;

	db_transaction_settings(&f[1], statement_timeout_ms, true, timeout);
	rc = db_pipeline_run(conn, f, 2, error);
	db_statement_clear(&f[0]);
	db_statement_clear(&f[1]);
	return rc;
}

bool db_connection_lost(PGconn *conn)
{
	return !conn || PQstatus(conn) != CONNECTION_OK;
}

PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *values, const int *lengths,
		   const int *formats, int result_format, struct db_error *error)
{
	char name[DB_PREPARED_NAME_SIZE];
	PGresult *res;

	switch (db_prepared_name(conn, sql, nparams, name)) {
	case DB_PREPARED_NEW:
		res = PQprepare(conn, name, sql, nparams, NULL);
		db_prepared_settle(conn, res && PQresultStatus(res) == PGRES_COMMAND_OK);
		if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
			db_error_from_result(error, conn, res);
			PQclear(res);
			return NULL;
		}
		PQclear(res);
		/* fall through */
	case DB_PREPARED_READY:
		res = PQexecPrepared(conn, name, nparams, values, lengths, formats, result_format);
		break;
	default:
		res = PQexecParams(conn, sql, nparams, NULL, values, lengths, formats, result_format);
		break;
	}
	if (!res || (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)) {
		db_error_from_result(error, conn, res);
		PQclear(res);
		return NULL;
	}
	return res;
}

int db_command(PGconn *conn, const char *sql, struct db_error *error)
{
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
		db_error_from_result(error, conn, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

void db_rollback(PGconn *conn)
{
	struct db_error ignored;

	if (!db_connection_lost(conn))
		(void)db_command(conn, "ROLLBACK", &ignored);
}

int db_query_bool(PGconn *conn, const char *sql, bool *out, struct db_error *error)
{
	PGresult *res = db_query(conn, sql, 0, NULL, NULL, NULL, 0, error);

	if (!res)
		return -1;
	*out = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return 0;
}

const char *db_sqlstate(const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	return state ? state : "";
}

void db_statement_clear(struct db_statement *statement)
{
	free(statement->owned[0]);
	free(statement->owned[1]);
	PQclear(statement->res);
	memset(statement, 0, sizeof(*statement));
}

/*
 * Queue one statement of a pipeline: unnamed, or (on a connection that prepares) its prepare the
 * first time and then its named execution. *prepared_now tells the reader that a prepare's
 * result comes first. Returns 0, or -1 when the connection cannot take it.
 */
static int pipeline_send(PGconn *conn, const char *sql, int nparams, const Oid *types, const char *const *values,
			 const int *lengths, const int *formats, int result_format, bool unnamed, bool *prepared_now)
{
	char name[DB_PREPARED_NAME_SIZE];

	*prepared_now = false;
	switch (unnamed ? DB_PREPARED_NONE : db_prepared_name(conn, sql, nparams, name)) {
	case DB_PREPARED_NEW:
		if (!PQsendPrepare(conn, name, sql, nparams, types))
			return -1;
		*prepared_now = true;
		/* fall through */
	case DB_PREPARED_READY:
		return PQsendQueryPrepared(conn, name, nparams, values, lengths, formats, result_format) ? 0 : -1;
	default:
		return PQsendQueryParams(conn, sql, nparams, types, values, lengths, formats, result_format) ? 0 : -1;
	}
}

/* Read one command's results up to its NULL, keeping the first failure in error. */
static void pipeline_skip_command(PGconn *conn, int *rc, struct db_error *error)
{
	PGresult *res;

	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && *rc == 0) {
			db_error_from_result(error, conn, res);
			*rc = -1;
		}
		PQclear(res);
	}
}

int db_pipeline_run(PGconn *conn, struct db_statement *statements, int n, struct db_error *error)
{
	int rc = 0, sent = 0;
	bool prepared_now[DB_PIPELINE_MAX_STATEMENTS] = {false};

	for (int i = 0; i < n; i++)
		sent += statements[i].sql != NULL;
	if (sent == 0)
		return 0;
	if (n > DB_PIPELINE_MAX_STATEMENTS) {
		db_error_set(error, NULL, "db_pipeline_run: %d statements, at most %d", n, DB_PIPELINE_MAX_STATEMENTS);
		return -1;
	}
	if (!PQenterPipelineMode(conn))
		goto lost;
	for (int i = 0; i < n; i++) {
		const struct db_statement *s = &statements[i];
		if (s->sql && pipeline_send(conn, s->sql, s->nparams, s->types, s->values, NULL, NULL, s->result_format,
					    s->unnamed, &prepared_now[i]) < 0)
			goto lost_in_pipeline;
	}
	if (!PQpipelineSync(conn))
		goto lost_in_pipeline;
	/* Each command's results end with a NULL; then comes the sync. */
	for (int i = 0; i <= n; i++) {
		PGresult *res;

		if (i < n && !statements[i].sql)
			continue;
		if (i < n && prepared_now[i])
			pipeline_skip_command(conn, &rc, error);
		while ((res = PQgetResult(conn)) != NULL) {
			ExecStatusType status = PQresultStatus(res);

			if (i == n && status == PGRES_PIPELINE_SYNC) {
				PQclear(res);
				break; /* no NULL follows the sync */
			}
			if (status == PGRES_FATAL_ERROR && rc == 0) {
				db_error_from_result(error, conn, res);
				rc = -1;
			}
			if (i < n && !statements[i].res && (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK))
				statements[i].res = res;
			else
				PQclear(res);
		}
		if (db_connection_lost(conn))
			goto lost_in_pipeline;
	}
	if (!PQexitPipelineMode(conn))
		goto lost;
	db_prepared_settle(conn, rc == 0);
	if (rc < 0)
		for (int i = 0; i < n; i++) {
			PQclear(statements[i].res);
			statements[i].res = NULL;
		}
	return rc;
lost_in_pipeline:
	(void)PQexitPipelineMode(conn);
lost:
	db_prepared_settle(conn, false);
	if (rc == 0)
		db_error_from_connection(error, conn);
	for (int i = 0; i < n; i++) {
		PQclear(statements[i].res);
		statements[i].res = NULL;
	}
	return -1;
}

int db_pipeline_begin(PGconn *conn, struct db_error *error)
{
	if (!PQenterPipelineMode(conn)) {
		db_error_from_connection(error, conn);
		return -1;
	}
	return 0;
}

int db_send(PGconn *conn, const char *sql, int nparams, const char *const *values, const int *lengths,
	    const int *formats, struct db_error *error)
{
	PGresult *res;

	if (PQpipelineStatus(conn) == PQ_PIPELINE_ON) {
		bool prepared_now; /* db_pipeline_finish reads the prepare's result like any other */

		if (pipeline_send(conn, sql, nparams, NULL, values, lengths, formats, 0, false, &prepared_now) < 0) {
			db_error_from_connection(error, conn);
			return -1;
		}
		return 0;
	}
	res = db_query(conn, sql, nparams, values, lengths, formats, 0, error);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

int db_pipeline_finish(PGconn *conn, struct db_error *error)
{
	int rc = 0, empty = 0;

	if (!PQpipelineSync(conn)) {
		db_prepared_settle(conn, false);
		db_error_from_connection(error, conn);
		(void)PQexitPipelineMode(conn);
		return -1;
	}
	for (;;) {
		PGresult *res = PQgetResult(conn);
		ExecStatusType status;

		if (!res) {
			/* NULL separates the results of two statements; a dead connection yields only NULLs. */
			if (db_connection_lost(conn) || ++empty > 64) {
				if (rc == 0)
					db_error_from_connection(error, conn);
				rc = -1;
				break;
			}
			continue;
		}
		empty = 0;
		status = PQresultStatus(res);
		if (status == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			break;
		}
		if (status == PGRES_FATAL_ERROR && rc == 0) {
			db_error_from_result(error, conn, res);
			rc = -1;
		}
		PQclear(res);
	}
	if (!PQexitPipelineMode(conn) && rc == 0) {
		db_error_from_connection(error, conn);
		rc = -1;
	}
	db_prepared_settle(conn, rc == 0); /* the prepares db_send queued */
	return rc;
}

void db_error_prefix(struct db_error *error, const char *fmt, ...)
{
	char context[DB_ERROR_MESSAGE_MAX], reason[DB_ERROR_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(context, sizeof(context), fmt, ap);
	va_end(ap);
	memcpy(reason, error->message, sizeof(reason));
	/* A message too long for the buffer is cut; the context comes first, so it survives. */
	if (snprintf(error->message, sizeof(error->message), "%s: %s", context, reason) < 0)
		error->message[0] = '\0';
}

PGresult *db_query_typed(PGconn *conn, const char *sql, int nparams, const Oid *types, const char *const *values,
			 struct db_error *error)
{
	PGresult *res = PQexecParams(conn, sql, nparams, types, values, NULL, NULL, 0);

	if (!res || (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)) {
		db_error_from_result(error, conn, res);
		PQclear(res);
		return NULL;
	}
	return res;
}

int db_run_script(PGconn *conn, const char *sql, PGresult **result, struct db_error *error)
{
	ExecStatusType status;

	*result = PQexec(conn, sql);
	status = PQresultStatus(*result);
	if (*result && (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY))
		return 0;
	db_error_from_result(error, conn, *result);
	return -1;
}
