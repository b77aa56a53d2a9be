/*
 * backfill: the rooms of `passport-migrate backfill` and what they share. The command copies the
 * legacy logs into passport_entries, batch by batch; its files, in the order a reader meets them:
 *
 *   backfill.c           the driver: start-up, one slice's batch loop, slices side by side (--jobs)
 *   backfill_options.c   the command line: usage and options
 *   backfill_sql.c       the statements: the batch, the dry run's sample and count
 *   backfill_startup.c   the start-up reads: catalog facts, the window, running daemons
 *   backfill_session.c   the session's resilience: settings, the advisory lock, retries, reconnects,
 *                        stop signals
 *   backfill_slices.c    a source cut into slices of ids, copied side by side (--jobs), and where
 *                        an interrupted run resumes
 *   backfill_progress.c  the progress bar and log lines, and the row count they show
 *   backfill_report.c    the unmapped types and the final summary (text or --json)
 *
 * How it stays safe on a live database
 *
 * Each batch is ONE statement in its own (implicit) transaction: it takes the next batch_size
 * legacy rows in id order after the last id seen (keyset pagination, so every batch costs the
 * same however far the run is), keeps those inside --since/--until that have no entry yet (by the
 * unique (legacy_source, legacy_id) index), maps only those (event types, categories, systems,
 * payload: SPEC §6) and inserts them, records how far it got in passport_backfill_progress, and
 * returns its counts. Nothing is held between batches: no transaction, no row lock, no snapshot,
 * so vacuum and the application's writers never wait for the backfill. The rows never leave the
 * server.
 *
 * Slices: with --jobs above 1, a large log is cut into up to that many ranges of ids (slices),
 * and the jobs take slices, of every source, from one queue: all of them work to the end
 * instead of the shorter log's job finishing first. A run's slices are recorded together, one
 * progress row each, before its first batch, and each batch advances its own slice's row.
 *
 * Why kill -9 is harmless: a batch statement either commits whole (its entries and its slice's
 * progress row together) or not at all. A re-run resumes every slice not completed after its
 * recorded id; if the progress rows are missing or wrong, the unique index still makes every
 * re-inserted row a no-op, so nothing is duplicated, and since each slice is scanned by id from
 * where its last committed batch ended, nothing is skipped. Rows the application adds to a legacy table behind the cursor while a run is
 * interrupted are picked up by the next complete run (a completed run is never resumed) and
 * reported by `verify` until then.
 *
 * Timeouts: statement_timeout 60 s per batch (a timed-out batch is retried at half the size),
 * lock_timeout 5 s (the INSERT only needs ROW EXCLUSIVE on passport_entries; waiting longer
 * means someone is altering the table, and then queuing behind them would block the app too).
 * Transient failures (lock timeouts, serialization failures, a lost connection) are retried a
 * few times with a growing pause before the run gives up.
 *
 * An advisory lock per source keeps two backfills of the same source from racing each other
 * (class LOCK_CLASS_BACKFILL of lib/claim.h, key source + 1). The run's first session takes the
 * locks of all its sources before any slice is copied and keeps them to the end: the jobs copy
 * slices of sources it holds.
 */
#ifndef PASSPORT_MIGRATE_BACKFILL_H
#define PASSPORT_MIGRATE_BACKFILL_H

#include "db.h"
#include "legacy.h"
#include "migrate.h"

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define BACKFILL_DEFAULT_BATCH 5000
/* Longer than the statement timeout: a killed run's last batch may still be running. */
#define BACKFILL_DEFAULT_LOCK_WAIT 70.0
#define BACKFILL_MAX_BATCH 100000
#define BACKFILL_SAMPLE_ROWS 5
#define BACKFILL_MAX_ATTEMPTS 5
#define BACKFILL_MAX_UNMAPPED_TYPES 100
#define BACKFILL_LOG_INTERVAL 5.0
#define BACKFILL_BAR_INTERVAL 0.2
/* At most one slice per job; a slice is cut only where it gets at least this many batches. */
#define BACKFILL_MAX_SLICES 16
#define BACKFILL_MIN_SLICE_BATCHES 10
#define BACKFILL_ID_SIZE 64 /* a legacy id as text (a uuid: 36 characters) */

/* ---- options (backfill_options.c) -------------------------------------------------------- */

enum progress_mode {
	PROGRESS_AUTO,   /* a bar on a terminal, log lines otherwise */
	PROGRESS_ALWAYS, /* a bar even when stderr is not a terminal */
	PROGRESS_NEVER,  /* only the summary */
};

struct backfill_options {
	unsigned sources; /* bitmask of 1 << enum legacy_source */
	int batch_size;
	const char *since; /* as given, NULL when open */
	const char *until;
	double max_rate; /* rows per second, 0 for no limit */
	bool dry_run;
	bool mark_processed;
	bool include_client_info;
	bool json;
	bool restart;
	double lock_wait;
	enum progress_mode progress;
	int jobs; /* slices copied at once, each on its own connection */
	bool lines_only; /* several sources at once: log lines, never a bar */
};

/* The command's help text, into out. */
void backfill_usage(FILE *out);

/*
 * Parse the backfill command line (argv[0] is "backfill") into options, which hold the defaults
 * on entry; --dsn goes into globals. Returns 0, 1 when --help was printed (exit 0), or -1 after
 * printing what is wrong (the caller prints the usage; exit 2).
 */
int backfill_parse_options(int argc, char **argv, struct migrate_globals *globals, struct backfill_options *options);

/* ---- one source's run ------------------------------------------------------------------------ */

/* Database facts read once before the first batch. */
struct database_facts {
	bool progress_table_exists;
	bool progress_table_sliced; /* it has slice_start and slice_end (sql/103_backfill_slices.sql) */
	bool has_progress_table; /* it exists, has slices, and this role may read and write it */
	bool has_media_ids;
	bool media_ids_has_role;
	/* A foreign key from passport_entries.user_id (production: auth.users), quoted, or "". */
	char user_reference_relation[300];
	char user_reference_column[130];
	bool user_reference_readable; /* this role may read it: only then are unknown users checked */
};

struct unmapped_type {
	char *legacy_type; /* "" for a NULL legacy type */
	char *event_type;
	long long count;
};

enum source_status {
	SOURCE_PENDING,
	SOURCE_RUNNING,     /* taken by a session, being copied */
	SOURCE_COMPLETE,
	SOURCE_MISSING,     /* no such table: reported and skipped */
	SOURCE_INTERRUPTED, /* stopped by a signal between batches: re-run to resume */
	SOURCE_FAILED,
};

struct source_run;

/* What a source's run shows while it copies (backfill_progress.c). */
struct progress_display {
	bool bar;
	bool log_lines;
	bool terminal;
	const char *label;
	double started;
	double last_output;
	bool drawn;
};

/*
 * A range of a source's ids, copied by one job at a time: the ids after start ("" for the first
 * id) up to end, inclusive ("" to the table's end), from after cursor ("" for the slice's start).
 */
struct backfill_slice {
	struct source_run *run;
	char start[BACKFILL_ID_SIZE];
	char end[BACKFILL_ID_SIZE];
	char cursor[BACKFILL_ID_SIZE];
	enum source_status status; /* PENDING until a job takes it */
};

/* One source's run: what was found, what was done, and the SQL that does it. */
struct source_run {
	enum legacy_source source;
	enum source_status status;
	struct legacy_table table;
	char error[1024];

	char *batch_sql;  /* the write (or, in a dry run, the count) statement */
	char *conflict_sql; /* the write statement with ON CONFLICT DO NOTHING, after a unique violation */
	char *sample_sql; /* dry run: the first rows as they would be inserted */
	char *count_sql;  /* rows left to read, for the progress display */
	char *type_map_json;

	struct backfill_slice slices[BACKFILL_MAX_SLICES]; /* those left to copy, in id order */
	int slice_count;
	int slices_left; /* not yet ended (complete, interrupted or failed) */
	int resumed_slices; /* slices taken over from an interrupted run, 0 for a fresh run */
	char resumed_after[BACKFILL_ID_SIZE]; /* the first resumed slice's recorded id, or "" */
	long long resumed_rows;  /* rows the interrupted runs had read */
	struct progress_display progress;
	double started; /* when its first slice started, or 0 */
	long long total;         /* rows to scan in this run, -1 when unknown */
	bool total_estimated;

	long long rows_scanned; /* legacy rows the cursor passed */
	long long rows_read;    /* of those, the rows inside the window (all without one) */
	long long written; /* inserted, or in a dry run: would be inserted */
	long long anonymous;
	long long unknown_users;
	long long unmapped_total;
	struct unmapped_type *unmapped;
	size_t unmapped_count;
	long long unmapped_other; /* rows of types beyond BACKFILL_MAX_UNMAPPED_TYPES */
	double elapsed;
	cJSON *sample; /* dry run: array of mapped rows */
};

/* ---- statements (backfill_sql.c) ------------------------------------------------------------- */

/* Every parameter of the batch statements; each statement uses some of them. */
enum batch_param {
	PARAM_CURSOR,         /* $1 text: the last legacy id already handled */
	PARAM_FROM_START,     /* $2 bool: no cursor yet (the first batch of a fresh run) */
	PARAM_LIMIT,          /* $3 int: rows per batch */
	PARAM_SINCE,          /* $4 timestamptz or NULL */
	PARAM_UNTIL,          /* $5 timestamptz or NULL */
	PARAM_TYPE_MAP,       /* $6 jsonb: [{legacy_type, event_type}] */
	PARAM_ROUTES,         /* $7 jsonb: [{event_type, category, systems}] (appendix B) */
	PARAM_DEFAULT_CATEGORY, /* $8 text: the category of a type without a route */
	PARAM_FALLBACK_PREFIX,  /* $9 text: prefix of unmapped legacy types */
	PARAM_MARK_PROCESSED, /* $10 bool */
	PARAM_WINDOW_KEY,     /* $11 text: passport_backfill_progress.window_key */
	PARAM_SLICE_END,      /* $12 text: the slice's last id, NULL for the table's end */
	PARAM_SLICE_START,    /* $13 text: passport_backfill_progress.slice_start */
	PARAM_COUNT
};

/* The type of every batch parameter, so that parameters a statement does not use are legal. */
extern const Oid batch_param_types[PARAM_COUNT];

/*
 * The columns of a batch statement's result: one 'batch' row, then one 'unmapped' row per
 * (legacy, new) type the batch could not map.
 */
enum batch_column {
	BATCH_KIND,          /* 'batch' or 'unmapped' */
	BATCH_LAST_ID,       /* batch: the last legacy id scanned, NULL when none */
	BATCH_ROWS_SCANNED,  /* batch */
	BATCH_ROWS_READ,     /* batch: scanned rows inside the window; unmapped: the rows of the type */
	BATCH_WRITTEN,       /* batch: inserted (dry run: would be inserted) */
	BATCH_ANONYMOUS,     /* batch */
	BATCH_UNKNOWN_USERS, /* batch */
	BATCH_LEGACY_TYPE,   /* unmapped */
	BATCH_EVENT_TYPE,    /* unmapped */
};

/*
 * Build run's statements and its type-map parameter for its table (run->table, already
 * inspected and usable): the write statement (the count statement in a dry run), the write
 * statement with ON CONFLICT, the sample (dry run) and the total. Returns 0, or -1 with
 * run->error set.
 */
int backfill_build_statements(struct source_run *run, const struct backfill_options *options,
			      const struct database_facts *facts);

/* [{"event_type", "category", "systems"}] for every route of appendix B, from lib/tables.c; NULL when out of memory. */
char *backfill_routes_json(void);

/* The dry run's sample: the first BACKFILL_SAMPLE_ROWS rows of the window as they would be inserted, into run->sample. */
int backfill_load_sample(PGconn *conn, struct source_run *run, const char *const params[PARAM_COUNT],
			 struct db_error *error);

/* ---- start-up reads (backfill_startup.c) ---------------------------------------------------- */

/* Read the facts; on failure prints why (and a hint) and returns -1. */
int backfill_read_database_facts(PGconn *conn, struct database_facts *facts);

/*
 * Check --since/--until with the server's own parser (any timestamptz literal; without a zone,
 * UTC since the session runs in UTC) and build the progress window key from the normalised
 * values. since and until get "" when open. On failure prints why and returns -1 (a usage error).
 */
int backfill_check_window(PGconn *conn, const struct backfill_options *options, char *since, char *until,
			  size_t size, char *window_key, size_t key_size);

/* Warn when passportd is connected: entries it processes during the backfill are applied late. */
void backfill_warn_about_running_daemons(PGconn *conn, const struct backfill_options *options);

/* ---- session resilience (backfill_session.c) -------------------------------------------------- */

/* The connection and what must be restored on it after a reconnect. */
struct backfill_session {
	PGconn *conn;
	bool read_only;
	const char *dsn;   /* the connection string in use, to mask its password in messages */
	unsigned locked_sources; /* bitmask of 1 << source: the advisory locks this session holds */
	double lock_wait;  /* seconds to wait for the lock (--lock-wait) */
};

/*
 * SIGINT and SIGTERM request a stop between batches (the run can be resumed); a second one ends
 * the program at once, which is as safe (see "Why kill -9 is harmless" above).
 */
void backfill_install_signal_handlers(void);
bool backfill_stop_requested(void);

/* Sleep up to seconds; returns early when a stop is requested. */
void backfill_pause(double seconds);

/* Settings of every batch connection; a dry run's session cannot write at all. Returns 0 or -1 with error set. */
int backfill_session_prepare(struct backfill_session *session, struct db_error *error);

/*
 * Take the advisory lock of source, waiting up to session->lock_wait seconds. Returns 1 when
 * taken, 0 when the wait ran out (or a stop was requested), -1 on error; error says why unless 1.
 */
int backfill_session_lock(struct backfill_session *session, int source, struct db_error *error);

/* Release the locks the session holds, if any. */
void backfill_session_unlock(struct backfill_session *session);

/*
 * Run run->batch_sql (run->conflict_sql once *on_conflict) with params, with up to
 * BACKFILL_MAX_ATTEMPTS attempts, reconnecting when the connection was lost. A statement timeout
 * halves limit_text (the next attempt reads fewer rows); a unique violation sets *on_conflict
 * (the caller's, for the rest of its slice) and runs the ON CONFLICT statement. Returns the
 * result (the caller PQclears it) or NULL with error set (its message on one line).
 */
PGresult *backfill_session_execute_batch(struct backfill_session *session, const struct source_run *run,
					 bool *on_conflict, const char *const params[PARAM_COUNT], char *limit_text,
					 size_t limit_size, struct db_error *error);

/* ---- slices (backfill_slices.c) ------------------------------------------------------------ */

/*
 * The slices run copies, into run->slices: those of an interrupted run of this source and window
 * (run->resumed_*), unless options->restart; otherwise a fresh run's, at most wanted of them, cut
 * at ids that share the table's rows evenly (by the planner's row estimate), and recorded (the
 * rows of any earlier run of the window closed) when the progress table can be written. Returns
 * 0 or -1 with error set.
 */
int backfill_plan_slices(PGconn *conn, struct source_run *run, const struct backfill_options *options,
			 const struct database_facts *facts, const char *window_key, int wanted, struct db_error *error);

/* A slice's parameters of the batch statements: where it goes on from, where it ends, its row. */
void backfill_slice_params(const struct backfill_slice *slice, const char *params[PARAM_COUNT]);

/* "after id X", or "2 slices, after ids X, Y": what a resumed run takes over, for messages. */
void backfill_describe_resume(const struct source_run *run, char *out, size_t size);

/* ---- progress (backfill_progress.c) ---------------------------------------------------------- */

/* Start showing the progress of the source named label (which must outlive the display). */
void progress_begin(struct progress_display *progress, enum progress_mode mode, bool lines_only, const char *label);

/*
 * Show run's progress: a bar redrawn at most every BACKFILL_BAR_INTERVAL, or a log line every
 * BACKFILL_LOG_INTERVAL; final draws the last one whatever the time.
 */
void progress_update(struct progress_display *progress, const struct source_run *run, bool final);

/*
 * The number of rows this run will read (in all its slices), into run->total: exact, unless
 * counting takes longer than 30 s, then the planner's estimate of the whole table
 * (run->total_estimated); -1 when neither could be had.
 */
void backfill_count_rows(PGconn *conn, struct source_run *run, const char *const params[PARAM_COUNT]);

/* ---- report (backfill_report.c) -------------------------------------------------------------- */

/* Count rows of an unmapped type; beyond BACKFILL_MAX_UNMAPPED_TYPES types they go to unmapped_other. */
void backfill_add_unmapped(struct source_run *run, const char *legacy_type, const char *event_type, long long count);

/* Order the unmapped types for the summary: most rows first, then by name. */
void backfill_sort_unmapped(struct source_run *run);

/* The summary on stdout, as text or as one JSON object (status: complete, interrupted or failed). */
void backfill_print_summary_text(const struct source_run *runs, size_t count, const struct backfill_options *options,
				 double elapsed);
void backfill_print_summary_json(const struct source_run *runs, size_t count, const struct backfill_options *options,
				 const char *since, const char *until, double elapsed, const char *status);

#endif
