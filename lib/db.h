/*
 * db: the one libpq layer of the project: connecting, statements, pipelines, and the error that
 * every database path reports (struct db_error).
 *
 * Ownership: a PGresult returned by a db_* function belongs to the caller (PQclear); a
 * db_statement's results and owned parameter texts belong to the statement until
 * db_statement_clear. Connections belong to whoever opened them (PQfinish).
 */
#ifndef PASSPORT_DB_H
#define PASSPORT_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#define DB_ERROR_MESSAGE_MAX 1024
#define DB_SQLSTATE_CONNECTION_FAILURE "08006"
#define DB_SQLSTATE_NO_SUCH_STATEMENT "26000" /* a prepared statement the server does not have */

/*
 * Why a database step failed: libpq's message on one line, and the SQLSTATE ("" when the server
 * sent none, 08006 when the connection was lost or could not carry the statement).
 */
struct db_error {
	char sqlstate[6];
	char message[DB_ERROR_MESSAGE_MAX];
};

/* Set both fields to "". */
void db_error_clear(struct db_error *error);

/* Set the error from a format; sqlstate may be NULL (""). */
void db_error_set(struct db_error *error, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The message and SQLSTATE of a failed result (res may be NULL: conn's message, no SQLSTATE). */
void db_error_from_result(struct db_error *error, PGconn *conn, const PGresult *res);

/* conn's message with SQLSTATE 08006: the connection could not send or receive. */
void db_error_from_connection(struct db_error *error, PGconn *conn);

/*
 * Failures that say nothing about the data: a deadlock, a serialization failure, a cancelled
 * statement (e.g. when the daemon is stopping) or a prepared statement the server no longer has.
 * The work is rolled back and tried again.
 */
bool db_error_is_transient(const struct db_error *error);

/*
 * The connection string to use: dsn when given, else $PASSPORT_DATABASE_URL, else "" (libpq's
 * own PG* environment and service file). The result is never logged: it may hold a password.
 */
const char *db_resolve_dsn(const char *dsn);

/*
 * Open a blocking connection for passportd. application_name and connect_timeout (10 s) are
 * fallbacks: the user's own values (in dsn, PGAPPNAME / PGCONNECT_TIMEOUT, or a service file)
 * win. Nothing is SET on the session: settings go with each transaction (db_begin), so behind a
 * transaction pooler nothing leaks to the pool's other clients. Server notices below WARNING are
 * dropped. Returns the connection, or NULL with libpq's reason (password masked). The caller owns
 * the connection (PQfinish).
 */
PGconn *db_connect(const char *dsn, const char *application_name, struct db_error *error);

#define DB_CONNECTION_PARAMS_MAX 12

/*
 * The extra pairs (for db_connection_params) every passportd connection passes: TCP keepalives
 * (a silently dropped idle connection, e.g. the listener's) and tcp_user_timeout 60 s (data sent
 * into a partition and never acknowledged, e.g. a batch's statement). NULL-terminated; the user's
 * connection string overrides them.
 */
extern const char *const db_liveness_keys[];
extern const char *const db_liveness_values[];

/*
 * The keyword/value arrays (NULL-terminated) of a passportd connection, as db_connect uses them:
 * fallback_application_name, connect_timeout 10 unless the user sets one, then the extra pairs
 * (at most 8: defaults such as keepalives), then dbname = the connection string, whose own
 * settings therefore win. The values point into the arguments and the environment.
 */
void db_connection_params(const char *dsn, const char *application_name, const char *const *extra_keys,
			  const char *const *extra_values, const char *keys[DB_CONNECTION_PARAMS_MAX],
			  const char *values[DB_CONNECTION_PARAMS_MAX]);

/*
 * The settings every passportd transaction runs with, local to it (set_config(..., true) is SET
 * LOCAL): lock_timeout 10 s, so that a row another client holds never stalls a batch for long;
 * idle_in_transaction_session_timeout 10 min, so that a daemon stuck mid-batch does not hold its
 * locks forever; TimeZone UTC. Send it right after BEGIN.
 */
#define DB_TRANSACTION_SETTINGS_SQL                                                                \
	"SELECT set_config('lock_timeout', '10s', true),"                                            \
	" set_config('idle_in_transaction_session_timeout', '10min', true),"                         \
	" set_config('TimeZone', 'UTC', true)"

#define DB_TIMEOUT_TEXT_SIZE 16

struct db_statement;

/*
 * The transaction's settings as one statement of a pipeline: DB_TRANSACTION_SETTINGS_SQL, and
 * statement_timeout (local too) when statement_timeout_ms > 0, and synchronous_commit = off (local
 * too) when synchronous_commit is false. Local settings are the only kind a transaction pooler does
 * not hand to its other clients. text holds the timeout's parameter and must live as long as the
 * statement.
 *
 * Why synchronous_commit = off is sound for a batch (passportd's synchronous_commit option): a
 * batch's effects (processed marks, DNA rows, dna_evolution, coliseum rows, ledger links, failure
 * records) are one transaction, so a server crash can lose only whole batches, the last ones
 * committed (up to about three times wal_writer_delay), and the WAL is flushed in order: any later
 * durable commit makes every earlier batch durable too. A lost batch leaves its entries due, and
 * they are processed again with the same result (SPEC 3: crashes do not change the DNA). What is
 * not durable: a reader that saw such a batch's rows before the crash saw rows that vanish and
 * come back (coliseum rows with new ids).
 */
void db_transaction_settings(struct db_statement *statement, int statement_timeout_ms, bool synchronous_commit,
			     char text[DB_TIMEOUT_TEXT_SIZE]);

/* BEGIN and db_transaction_settings in one round trip. Returns 0, or -1 with error set. */
int db_begin(PGconn *conn, int statement_timeout_ms, struct db_error *error);

/*
 * Drop the server's notices below WARNING (what client_min_messages = warning did for a session,
 * without setting anything on it); warnings and above are printed to stderr as libpq does.
 */
void db_quiet_notices(PGconn *conn);

/*
 * Open a blocking connection with libpq's keyword/value arrays (one of them "dbname", whose value
 * may be a whole connection string: keywords after it override its settings, keywords before it
 * are overridden), then run session_sql when not NULL. On failure returns NULL with the reason,
 * the password masked.
 */
PGconn *db_connect_params(const char *const *keywords, const char *const *values, const char *session_sql,
			  struct db_error *error);

/*
 * libpq's error message of conn or res on one line, without a trailing newline (the line breaks
 * are kept after db_keep_line_breaks(true)).
 */
void db_error_text(PGconn *conn, const PGresult *res, char *err, size_t errlen);

/*
 * Keep libpq's line breaks in error messages (a syntax error's LINE and caret, DETAIL, a
 * connection failure's hint) instead of folding them into one line. A terminal program
 * (passport-migrate) sets it once at start-up, before any thread; passportd's log lines keep the
 * default, one line per message.
 */
void db_keep_line_breaks(bool keep);

/* Put "<context>: " in front of the error's message (the SQLSTATE stays). */
void db_error_prefix(struct db_error *error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Make a libpq error message safe to print for a connection made with dsn: when dsn does not
 * parse, libpq's message may quote the text around the error (a password among it), so the whole
 * message is replaced; otherwise every occurrence of the password is masked.
 */
void db_redact_error(const char *dsn, char *message, size_t size);

/* 0 when dsn (after db_resolve_dsn) is a valid connection string, else -1 with a reason that never quotes it. */
int db_check_dsn(const char *dsn, char *err, size_t errlen);

/* True when the connection is gone (the caller should reconnect). */
bool db_connection_lost(PGconn *conn);

/*
 * Prepare the statements run on conn through db_query, db_send and db_pipeline_run, each once
 * (named, on first use), when conn is a session of its own: its server process id is the one
 * the connection reported (a pooler reports one of its own). Returns true when turned on. Call
 * db_prepare_disable before closing conn. See db_prepared.c.
 */
bool db_prepare_enable(PGconn *conn);
void db_prepare_disable(PGconn *conn);
/* Run a command that returns no rows (BEGIN, COMMIT, SET ...). Returns 0, or -1 with error set. */
int db_command(PGconn *conn, const char *sql, struct db_error *error);

/* ROLLBACK when the connection is still there; errors are ignored (the caller already has one). */
void db_rollback(PGconn *conn);

/*
 * Run one statement (PQexecParams). Returns its result (rows or a command), or NULL with error
 * set. lengths, formats may be NULL (all text).
 */
PGresult *db_query(PGconn *conn, const char *sql, int nparams, const char *const *values, const int *lengths,
		   const int *formats, int result_format, struct db_error *error);

/*
 * db_query with the parameters' types (types[i] 0: let the server infer it), so that a parameter
 * the statement does not use is still legal. Text parameters and results.
 */
PGresult *db_query_typed(PGconn *conn, const char *sql, int nparams, const Oid *types, const char *const *values,
			 struct db_error *error);

/*
 * Run a script: sql may hold several statements, or none (PQexec). Returns 0 when it succeeded
 * (an empty script included), else -1 with error set. Either way *result is the result (NULL
 * when libpq returned none), so a caller can read a failure's diagnostic fields
 * (PG_DIAG_STATEMENT_POSITION, PG_DIAG_CONTEXT); the caller PQclears it.
 */
int db_run_script(PGconn *conn, const char *sql, PGresult **result, struct db_error *error);

/* A query of one boolean: *out is true when it returned one row holding true. */
int db_query_bool(PGconn *conn, const char *sql, bool *out, struct db_error *error);

/* SQLSTATE of a failed result ("" when none). */
const char *db_sqlstate(const PGresult *res);

/* ---- pipelines ------------------------------------------------------------------------------ */

#define DB_STATEMENT_MAX_PARAMS 16
#define DB_PIPELINE_MAX_STATEMENTS 16

/*
 * One statement of a pipeline. sql NULL: skipped (nothing to ask). owned[] are parameter texts
 * the statement frees; res is its result after db_pipeline_run.
 */
struct db_statement {
	const char *sql;
	int nparams;
	const Oid *types; /* the parameters' types, or NULL: all inferred */
	const char *values[DB_STATEMENT_MAX_PARAMS];
	int result_format;
	/*
	 * Planned for its parameters every time, never prepared: for a statement whose best plan
	 * depends on their size (a generic plan guesses an array's length).
	 */
	bool unnamed;
	char *owned[2];
	PGresult *res;
};

/* Free the owned texts and the result, and zero the statement. */
void db_statement_clear(struct db_statement *statement);

/*
 * Send the statements (those with sql) in one pipeline, one round trip, and keep each one's
 * result in its res. Returns 0, or -1 with the first error (the results are then cleared).
 */
int db_pipeline_run(PGconn *conn, struct db_statement *statements, int n, struct db_error *error);

/* Enter pipeline mode: the following db_send calls are queued until db_pipeline_finish. */
int db_pipeline_begin(PGconn *conn, struct db_error *error);

/*
 * Send a statement that returns nothing the caller reads: queued when the connection is in
 * pipeline mode (the result is checked by db_pipeline_finish), else executed at once.
 */
int db_send(PGconn *conn, const char *sql, int nparams, const char *const *values, const int *lengths,
	    const int *formats, struct db_error *error);

/*
 * Send the pipeline's sync and read every result up to it. Returns 0 when all succeeded, else -1
 * with the first failure (the server skips the statements after it). Leaves pipeline mode
 * either way.
 */
int db_pipeline_finish(PGconn *conn, struct db_error *error);

#endif
