/* backfill: `passport-migrate backfill` copies the legacy logs into passport_entries, batch by batch. */
#include "legacy.h"
#include "migrate.h"
#include "tables.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
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
 * Why kill -9 is harmless: a batch statement either commits whole (its entries and its progress
 * row together) or not at all. A re-run resumes after the recorded id; if the progress row is
 * missing or wrong, the unique index still makes every re-inserted row a no-op, so nothing is
 * duplicated, and since the scan is by id from where the last committed batch ended, nothing is
 * skipped. Rows the application adds to a legacy table behind the cursor while a run is
 * interrupted are picked up by the next complete run (a completed run is never resumed) and
 * reported by `verify` until then.
 *
 * Timeouts: statement_timeout 60 s per batch (a timed-out batch is retried at half the size),
 * lock_timeout 5 s (the INSERT only needs ROW EXCLUSIVE on passport_entries; waiting longer
 * means someone is altering the table, and then queuing behind them would block the app too).
 * Transient failures (lock timeouts, serialization failures, a lost connection) are retried a
 * few times with a growing pause before the run gives up.
 *
 * An advisory lock per source keeps two backfills of the same source from racing each other.
 */

#define BACKFILL_DEFAULT_BATCH 5000
/* Longer than the statement timeout: a killed run's last batch may still be running. */
#define BACKFILL_DEFAULT_LOCK_WAIT 70.0
#define BACKFILL_MAX_BATCH 100000
#define BACKFILL_SAMPLE_ROWS 5
#define BACKFILL_MAX_ATTEMPTS 5
#define BACKFILL_MAX_UNMAPPED_TYPES 100
#define BACKFILL_LOG_INTERVAL 5.0
#define BACKFILL_BAR_INTERVAL 0.2
/* pg_advisory_lock(class, source + 1); the class is "PASS" in ASCII. */
#define BACKFILL_LOCK_CLASS "1346458451"

#define SESSION_SETTINGS_SQL                                                                  \
	"SET TimeZone = 'UTC'; SET statement_timeout = '60s'; SET lock_timeout = '5s'; "      \
	"SET idle_in_transaction_session_timeout = '60s'; SET work_mem = '32MB'"

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
	int jobs; /* sources copied at once, each on its own connection */
	bool lines_only; /* several sources at once: log lines, never a bar */
};

/* The legacy event types with a canonical name (SPEC §6). */
struct type_mapping {
	const char *legacy_type;
	const char *event_type;
};

static const struct type_mapping listening_history_types[] = {
	{"played", "player.track_played"},
	{"completed", "player.track_completed"},
	{"skipped", "player.track_skipped"},
	{"paused", "player.track_paused"},
	{"resumed", "player.track_resumed"},
	{"added", "player.queue_updated"},
	{"added_to_queue", "player.queue_updated"},
	{"downloaded", "player.track_downloaded"},
};

static const struct type_mapping media_engagement_log_types[] = {
	{"track_play", "player.track_played"},
	{"track_complete", "player.track_completed"},
	{"track_skip", "player.track_skipped"},
	{"track_pause", "player.track_paused"},
	{"play", "player.track_played"},
	{"content_like", "social.content_liked"},
	{"like", "social.content_liked"},
	{"share", "social.content_shared"},
	{"mediaid_setup_completed", "mediaid.setup_completed"},
};

/*
 * Any other type keeps its name under a prefix: listening_history follows the seed's rule
 * (x -> player.track_x), media_engagement_log becomes legacy.x, which routes nowhere. Both are
 * reported as unmapped types. A NULL or empty legacy type becomes legacy.unknown.
 */
static const char *const fallback_prefix[LEGACY_SOURCE_COUNT] = {
	[LEGACY_LISTENING_HISTORY] = "player.track_",
	[LEGACY_MEDIA_ENGAGEMENT_LOG] = "legacy.",
};

/* Database facts read once before the first batch. */
struct database_facts {
	bool progress_table_exists;
	bool has_progress_table; /* it exists and this role may read and write it */
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

static const char *const status_names[] = {
	[SOURCE_PENDING] = "pending",
	[SOURCE_RUNNING] = "running",
	[SOURCE_COMPLETE] = "complete",
	[SOURCE_MISSING] = "missing",
	[SOURCE_INTERRUPTED] = "interrupted",
	[SOURCE_FAILED] = "failed",
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

	char resumed_after[128]; /* the recorded id a resumed run started after, or "" */
	long long resumed_rows;  /* rows the interrupted runs had read */
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

/* The connection and what must be restored on it after a reconnect. */
struct backfill_session {
	PGconn *conn;
	bool read_only;
	const char *dsn;   /* the connection string in use, to mask its password in messages */
	int locked_source; /* the source whose advisory lock this session holds, or -1 */
	double lock_wait;  /* seconds to wait for the lock (--lock-wait) */
};

struct progress_display {
	bool bar;
	bool log_lines;
	bool terminal;
	const char *label;
	double started;
	double last_output;
	bool drawn;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signo)
{
	/* A second signal ends the program at once; that is as safe as the first (see above). */
	if (stop_requested) {
		signal(signo, SIG_DFL);
		raise(signo);
		return;
	}
	stop_requested = 1;
}

static void install_signal_handlers(void)
{
	struct sigaction action;

	memset(&action, 0, sizeof action);
	action.sa_handler = on_stop_signal;
	sigemptyset(&action.sa_mask);
	/* No SA_RESTART: a rate-limit pause must wake up at once. */
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
}

/* Sleep up to seconds; returns early when a stop was requested. */
static void pause_seconds(double seconds)
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

static void backfill_usage(FILE *out)
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
	      "                           source)\n"
	      "  -j, --jobs N             copy up to N sources at once, each on its own connection\n"
	      "                           (default 1; 2 copies both logs side by side)\n"
	      "  -n, --dry-run            count what would be copied and show a sample; write nothing\n"
	      "      --mark-processed     insert the entries as processed history (passportd skips them)\n"
	      "      --include-client-info  also copy user_agent and ip_address into the payload\n"
	      "      --restart            ignore the recorded position of an interrupted run\n"
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

/* ---- SQL ------------------------------------------------------------------------------------- */

/* Parameter types of the batch statements, so parameters a statement does not use are legal. */
#define TEXT_OID 25
#define BOOL_OID 16
#define INT4_OID 23
#define TIMESTAMPTZ_OID 1184
#define JSONB_OID 3802

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
	PARAM_COUNT
};

static const Oid batch_param_types[PARAM_COUNT] = {
	[PARAM_CURSOR] = TEXT_OID,
	[PARAM_FROM_START] = BOOL_OID,
	[PARAM_LIMIT] = INT4_OID,
	[PARAM_SINCE] = TIMESTAMPTZ_OID,
	[PARAM_UNTIL] = TIMESTAMPTZ_OID,
	[PARAM_TYPE_MAP] = JSONB_OID,
	[PARAM_ROUTES] = JSONB_OID,
	[PARAM_DEFAULT_CATEGORY] = TEXT_OID,
	[PARAM_FALLBACK_PREFIX] = TEXT_OID,
	[PARAM_MARK_PROCESSED] = BOOL_OID,
	[PARAM_WINDOW_KEY] = TEXT_OID,
};

/*
 * The rows of the next batch. "scanned" is the next batch_size legacy rows in id order after the
 * cursor: the keyset condition "$2 OR id > $1" is planned with the values bound (libpq's unnamed
 * statements get a custom plan each time), so it is a plain range scan of the primary key, and
 * every batch costs the same however far the run is. "batch" is the part of it inside the
 * --since/--until window.
 *
 * Why the window is applied after the LIMIT rather than before: filtered first, a narrow window
 * would make each batch walk (or the planner seq-scan) far past its rows to find batch_size
 * matches, once per batch. Applied after, the cursor moves batch_size ids per batch and the
 * whole run reads the table exactly once, whatever the window.
 *
 * The sample of a dry run wants the first rows of the window instead (filter_first). The write
 * and count statements read their rows with append_missing_rows (below), which applies the same
 * keyset and window but reads only the rows that have no entry yet.
 */
static void append_batch_rows(struct text_buffer *sql, const struct legacy_table *t, bool filter_first)
{
	text_buffer_printf(sql,
			   "WITH scanned AS MATERIALIZED (\n"
			   "    SELECT legacy.id AS legacy_key,\n"
			   "           %s AS raw_user_id,\n"
			   "           %s AS event_time,\n"
			   "           %s AS legacy_type,\n"
			   "           %s AS session_id,\n"
			   "           %s AS base_payload\n"
			   "      FROM %s AS legacy\n"
			   "     WHERE ($2 OR legacy.id > $1::%s)\n",
			   t->user_expr, t->time_expr, t->type_expr, t->session_expr, t->payload_expr,
			   t->relation, t->id_type);
	if (filter_first)
		text_buffer_printf(sql,
				   "       AND ($4 IS NULL OR %s >= $4) AND ($5 IS NULL OR %s < $5)\n",
				   t->time_expr, t->time_expr);
	text_buffer_append(sql,
			   "     ORDER BY legacy.id\n"
			   "     LIMIT $3\n"
			   "),\n"
			   "batch AS MATERIALIZED (\n"
			   "    SELECT * FROM scanned\n"
			   "     WHERE coalesce(($4 IS NULL OR event_time >= $4) AND ($5 IS NULL OR event_time < $5), false)\n"
			   ")");
}

/*
 * The rows of the next batch for the write and count statements, in three steps:
 *
 * "scanned": the next batch_size legacy ids after the cursor, ids only, so without a window it is
 * an index-only scan of the primary key (the heap is not read); with --since/--until the time
 * column is read too ("in_window", applied after the LIMIT for the reason given above).
 *
 * "missing": the scanned ids in the window that have no entry yet, by the unique
 * (legacy_source, legacy_id) index. A re-run with nothing new stops here: no legacy row is read,
 * nothing is mapped. (Backfilled entries were inserted in id order, so these probes walk the
 * index and its heap pages in order.) OFFSET 0 keeps the NOT EXISTS a probe per id: as an anti
 * join the planner may hash all of the source's entries instead, once per batch, which grows
 * with every batch.
 *
 * "batch": the legacy rows of the missing ids, each fetched by its primary key (the LATERAL
 * subquery with OFFSET 0 keeps that a per-id index lookup, never a scan of the legacy table).
 * Only these are mapped and inserted.
 */
static void append_missing_rows(struct text_buffer *sql, const struct legacy_table *t, bool windowed)
{
	const char *source = legacy_source_name(t->source);

	text_buffer_append(sql, "WITH scanned AS MATERIALIZED (\n"
				"    SELECT legacy.id AS legacy_key,\n");
	if (windowed)
		text_buffer_printf(sql,
				   "           coalesce(($4 IS NULL OR %s >= $4) AND ($5 IS NULL OR %s < $5), false)"
				   " AS in_window\n",
				   t->time_expr, t->time_expr);
	else
		text_buffer_append(sql, "           true AS in_window\n");
	text_buffer_printf(sql,
			   "      FROM %s AS legacy\n"
			   "     WHERE ($2 OR legacy.id > $1::%s)\n"
			   "     ORDER BY legacy.id\n"
			   "     LIMIT $3\n"
			   "),\n"
			   "missing AS MATERIALIZED (\n"
			   "    SELECT s.legacy_key FROM scanned AS s\n"
			   "     WHERE s.in_window\n"
			   "       AND NOT EXISTS (SELECT 1 FROM passport_entries AS pe\n"
			   "                        WHERE pe.legacy_source = '%s' AND pe.legacy_id = s.legacy_key::text\n"
			   "                       OFFSET 0)\n"
			   "),\n"
			   "batch AS MATERIALIZED (\n"
			   "    SELECT r.* FROM missing AS m\n"
			   "     CROSS JOIN LATERAL (\n"
			   "        SELECT legacy.id AS legacy_key,\n"
			   "               %s AS raw_user_id,\n"
			   "               %s AS event_time,\n"
			   "               %s AS legacy_type,\n"
			   "               %s AS session_id,\n"
			   "               %s AS base_payload\n"
			   "          FROM %s AS legacy\n"
			   "         WHERE legacy.id = m.legacy_key\n"
			   "        OFFSET 0\n"
			   "     ) AS r\n"
			   ")",
			   t->relation, t->id_type, source, t->user_expr, t->time_expr, t->type_expr, t->session_expr,
			   t->payload_expr, t->relation);
}

/*
 * From the batch to the entries as they will be inserted.
 *
 * mediaid_id "when unambiguous" (SPEC §3's rule for choosing a DNA row, applied once here): the
 * user's only media_ids row, or its one fan row when it has several; otherwise NULL and passportd
 * decides at processing time.
 *
 * Anonymous rows (no user) keep their systems minus mediaid: there is no DNA to update. Where
 * passport_entries.user_id has a foreign key (production: auth.users), a legacy user that no
 * longer exists would fail the whole batch; such rows are kept as anonymous with the original
 * id in payload.legacy_user_id and counted as unknown users.
 *
 * Routes come from lib/tables.c (appendix B) as a parameter, so the server applies exactly the
 * table passportd uses.
 */
static void append_entries(struct text_buffer *sql, const struct database_facts *facts)
{
	if (facts->user_reference_readable)
		text_buffer_printf(sql,
				   ",\nknown_users AS (\n"
				   "    SELECT DISTINCT r.%s AS user_id FROM %s AS r\n"
				   "     WHERE r.%s IN (SELECT raw_user_id FROM batch)\n"
				   ")",
				   facts->user_reference_column, facts->user_reference_relation,
				   facts->user_reference_column);
	if (facts->has_media_ids) {
		text_buffer_append(sql,
				   ",\nowners AS (\n"
				   "    SELECT mi.user_uuid AS user_id,\n"
				   "           CASE WHEN count(*) = 1 THEN (array_agg(mi.id))[1]\n");
		if (facts->media_ids_has_role)
			text_buffer_append(sql,
					   "                WHEN count(*) FILTER (WHERE mi.role::text = 'fan') = 1\n"
					   "                THEN (array_agg(mi.id) FILTER (WHERE mi.role::text = 'fan'))[1]\n");
		text_buffer_append(sql,
				   "           END AS mediaid_id\n"
				   "      FROM media_ids AS mi\n"
				   "     WHERE mi.user_uuid IN (SELECT raw_user_id FROM batch)\n"
				   "     GROUP BY mi.user_uuid\n"
				   ")");
	} else {
		text_buffer_append(sql, ",\nowners AS (SELECT NULL::uuid AS user_id, NULL::uuid AS mediaid_id)");
	}
	text_buffer_printf(sql,
			   ",\nmapped AS (\n"
			   "    SELECT b.*,\n"
			   "           %s AS user_id,\n"
			   "           coalesce(known.event_type,\n"
			   "                    CASE WHEN coalesce(b.legacy_type, '') = '' THEN 'legacy.unknown'\n"
			   "                         ELSE $9 || b.legacy_type END) AS event_type,\n"
			   "           known.event_type IS NULL AS unmapped\n"
			   "      FROM batch AS b\n"
			   "      LEFT JOIN jsonb_to_recordset($6) AS known(legacy_type text, event_type text)\n"
			   "        ON known.legacy_type = b.legacy_type\n"
			   "),\n"
			   "entries AS (\n"
			   "    SELECT m.legacy_key::text AS legacy_id,\n"
			   "           m.user_id,\n"
			   "           owner.mediaid_id,\n"
			   "           m.event_type,\n"
			   "           coalesce(route.category, $8) AS event_category,\n"
			   "           m.base_payload || jsonb_build_object('legacy_event_type', m.legacy_type)\n"
			   "             || CASE WHEN m.user_id IS NULL AND m.raw_user_id IS NOT NULL\n"
			   "                     THEN jsonb_build_object('legacy_user_id', m.raw_user_id)\n"
			   "                     ELSE '{}'::jsonb END AS payload,\n"
			   "           CASE WHEN m.user_id IS NULL\n"
			   "                THEN array_remove(coalesce(route.systems, '{}'::text[]), 'mediaid')\n"
			   "                ELSE coalesce(route.systems, '{}'::text[]) END AS affects_systems,\n"
			   "           m.session_id,\n"
			   "           m.event_time,\n"
			   "           m.legacy_type,\n"
			   "           m.unmapped,\n"
			   "           m.raw_user_id\n"
			   "      FROM mapped AS m\n"
			   "      LEFT JOIN jsonb_to_recordset($7) AS route(event_type text, category text, systems text[])\n"
			   "        ON route.event_type = m.event_type\n"
			   "      LEFT JOIN owners AS owner ON owner.user_id = m.user_id\n"
			   ")",
			   facts->user_reference_readable
				   ? "CASE WHEN b.raw_user_id IN (SELECT user_id FROM known_users) THEN b.raw_user_id END"
				   : "b.raw_user_id");
}

/*
 * The write statement: insert, record progress, report. The progress row is written in the same
 * statement, hence the same transaction, as the entries it describes. "$2" (a fresh run) resets
 * the row; a batch shorter than the limit means the scan reached the end, and completes it.
 *
 * The INSERT is a plain one: "missing" already left out every row that has an entry, and ON
 * CONFLICT's speculative insertion costs about 15 % more per row (an extra heap WAL record and
 * index probe each). The unique index still guards idempotence: should another writer insert one
 * of these keys between the check and the insert (a backfill outside the advisory lock), the
 * batch fails with a unique violation and is retried at once with ON CONFLICT DO NOTHING
 * (on_conflict), which then serves the rest of the run.
 */
static char *build_write_sql(const struct legacy_table *t, const struct database_facts *facts, bool windowed,
			     bool on_conflict)
{
	struct text_buffer sql = {0};
	const char *source = legacy_source_name(t->source);

	append_missing_rows(&sql, t, windowed);
	append_entries(&sql, facts);
	text_buffer_printf(&sql,
			   ",\nwritten AS (\n"
			   "    INSERT INTO passport_entries (user_id, mediaid_id, event_type, event_category, payload,\n"
			   "                                  affects_systems, processed, processed_at, source, session_id,\n"
			   "                                  \"timestamp\", legacy_source, legacy_id)\n"
			   "    SELECT e.user_id, e.mediaid_id, e.event_type, e.event_category, e.payload,\n"
			   "           e.affects_systems, $10, CASE WHEN $10 THEN now() END, 'backfill', e.session_id,\n"
			   "           e.event_time, '%s', e.legacy_id\n"
			   "      FROM entries AS e\n"
			   "%s"
			   "    RETURNING 1\n"
			   ")",
			   source, on_conflict ? "    ON CONFLICT (legacy_source, legacy_id) DO NOTHING\n" : "");
	if (facts->has_progress_table)
		text_buffer_printf(&sql,
				   ",\nprogress AS (\n"
				   "    INSERT INTO passport_backfill_progress AS p\n"
				   "           (legacy_source, window_key, last_id, rows_seen, started_at, updated_at, completed_at)\n"
				   "    VALUES ('%s', $11,\n"
				   "            (SELECT s.legacy_key FROM scanned AS s ORDER BY s.legacy_key DESC LIMIT 1)::text,\n"
				   "            (SELECT count(*) FROM scanned), now(), now(),\n"
				   "            CASE WHEN (SELECT count(*) FROM scanned) < $3 THEN now() END)\n"
				   "    ON CONFLICT (legacy_source, window_key) DO UPDATE\n"
				   "       SET last_id = CASE WHEN $2 THEN EXCLUDED.last_id\n"
				   "                          ELSE coalesce(EXCLUDED.last_id, p.last_id) END,\n"
				   "           rows_seen = CASE WHEN $2 THEN EXCLUDED.rows_seen\n"
				   "                            ELSE p.rows_seen + EXCLUDED.rows_seen END,\n"
				   "           started_at = CASE WHEN $2 THEN now() ELSE p.started_at END,\n"
				   "           updated_at = now(),\n"
				   "           completed_at = EXCLUDED.completed_at\n"
				   "    RETURNING 1\n"
				   ")",
				   source);
	return text_buffer_take(&sql);
}

/* The dry run's statement: the same batch and mapping, counting the rows not yet copied. */
static char *build_count_sql(const struct legacy_table *t, const struct database_facts *facts, bool windowed)
{
	struct text_buffer sql = {0};

	append_missing_rows(&sql, t, windowed);
	append_entries(&sql, facts);
	text_buffer_append(&sql, ",\nwritten AS (SELECT 1 FROM entries)");
	return text_buffer_take(&sql);
}

/*
 * Both statements end alike: one 'batch' row, then one row per unmapped (legacy, new) type. The
 * counts of anonymous rows, unknown users and unmapped types are of the rows the batch inserts
 * (would insert, in a dry run): rows already present are neither read nor mapped again.
 */
static char *finish_batch_sql(char *head)
{
	struct text_buffer sql = {0};

	if (!head)
		return NULL;
	text_buffer_printf(&sql,
			   "%s\n"
			   "SELECT 'batch' AS kind,\n"
			   "       (SELECT s.legacy_key FROM scanned AS s ORDER BY s.legacy_key DESC LIMIT 1)::text AS last_id,\n"
			   "       (SELECT count(*) FROM scanned) AS rows_scanned,\n"
			   "       (SELECT count(*) FROM scanned WHERE in_window) AS rows_read,\n"
			   "       (SELECT count(*) FROM written) AS written,\n"
			   "       (SELECT count(*) FROM entries WHERE raw_user_id IS NULL) AS anonymous,\n"
			   "       (SELECT count(*) FROM entries WHERE user_id IS NULL AND raw_user_id IS NOT NULL)\n"
			   "           AS unknown_users,\n"
			   "       NULL::text AS legacy_type, NULL::text AS event_type\n"
			   "UNION ALL\n"
			   "SELECT 'unmapped', NULL, NULL, count(*), NULL, NULL, NULL, legacy_type, event_type\n"
			   "  FROM entries WHERE unmapped GROUP BY legacy_type, event_type",
			   head);
	free(head);
	return text_buffer_take(&sql);
}

static char *build_sample_sql(const struct legacy_table *t, const struct database_facts *facts)
{
	struct text_buffer sql = {0};

	append_batch_rows(&sql, t, true);
	append_entries(&sql, facts);
	text_buffer_printf(&sql,
			   "\nSELECT jsonb_build_object('legacy_source', '%s', 'legacy_id', e.legacy_id,\n"
			   "           'user_id', e.user_id, 'mediaid_id', e.mediaid_id, 'event_type', e.event_type,\n"
			   "           'event_category', e.event_category, 'affects_systems', e.affects_systems,\n"
			   "           'timestamp', e.event_time, 'session_id', e.session_id, 'source', 'backfill',\n"
			   "           'processed', $10, 'payload', e.payload)::text\n"
			   "  FROM entries AS e ORDER BY e.legacy_id",
			   legacy_source_name(t->source));
	return text_buffer_take(&sql);
}

/* Rows left to scan from the cursor on (the window does not change how many rows are scanned). */
static char *build_total_sql(const struct legacy_table *t)
{
	struct text_buffer sql = {0};

	text_buffer_printf(&sql, "SELECT count(*) FROM %s AS legacy WHERE ($2 OR legacy.id > $1::%s)", t->relation,
			   t->id_type);
	return text_buffer_take(&sql);
}

/* [{"event_type", "category", "systems"}] for every route of appendix B, from lib/tables.c. */
static char *routes_json(void)
{
	static const unsigned systems[] = {SYSTEM_MEDIAID, SYSTEM_COLISEUM, SYSTEM_TREASURY};
	cJSON *array = cJSON_CreateArray();
	char *text = NULL;

	if (!array)
		return NULL;
	for (size_t i = 0; route_table_event_type(i) != NULL; i++) {
		const char *event_type = route_table_event_type(i);
		const struct route *route = route_for_event(event_type);
		cJSON *row = cJSON_CreateObject();
		cJSON *names = cJSON_CreateArray();

		if (!row || !names) {
			cJSON_Delete(row);
			cJSON_Delete(names);
			goto out;
		}
		cJSON_AddItemToArray(array, row);
		cJSON_AddStringToObject(row, "event_type", event_type);
		cJSON_AddStringToObject(row, "category", route->category);
		cJSON_AddItemToObject(row, "systems", names);
		for (size_t s = 0; s < sizeof systems / sizeof systems[0]; s++)
			if (route->systems & systems[s])
				cJSON_AddItemToArray(names, cJSON_CreateString(system_name(systems[s])));
	}
	text = cJSON_PrintUnformatted(array);
out:
	cJSON_Delete(array);
	return text;
}

static char *type_map_json(enum legacy_source source)
{
	const struct type_mapping *map = source == LEGACY_LISTENING_HISTORY ? listening_history_types
									    : media_engagement_log_types;
	size_t count = source == LEGACY_LISTENING_HISTORY
			       ? sizeof listening_history_types / sizeof listening_history_types[0]
			       : sizeof media_engagement_log_types / sizeof media_engagement_log_types[0];
	cJSON *array = cJSON_CreateArray();
	char *text;

	if (!array)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		cJSON *row = cJSON_CreateObject();

		if (!row) {
			cJSON_Delete(array);
			return NULL;
		}
		cJSON_AddItemToArray(array, row);
		cJSON_AddStringToObject(row, "legacy_type", map[i].legacy_type);
		cJSON_AddStringToObject(row, "event_type", map[i].event_type);
	}
	text = cJSON_PrintUnformatted(array);
	cJSON_Delete(array);
	return text;
}

/* ---- session -------------------------------------------------------------------------------- */

static bool sqlstate_is(const PGresult *result, const char *state)
{
	const char *sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
	return sqlstate && strcmp(sqlstate, state) == 0;
}

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
static bool is_transient(PGconn *conn, const PGresult *result)
{
	const char *sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);

	if (PQstatus(conn) != CONNECTION_OK)
		return true;
	if (!sqlstate)
		return false;
	return strcmp(sqlstate, "40001") == 0 || /* serialization_failure */
	       strcmp(sqlstate, "40P01") == 0 || /* deadlock_detected */
	       strcmp(sqlstate, "55P03") == 0 || /* lock_not_available (lock_timeout) */
	       strcmp(sqlstate, "57014") == 0 || /* query_canceled (statement_timeout) */
	       strncmp(sqlstate, "08", 2) == 0 || /* connection exceptions */
	       strcmp(sqlstate, "57P01") == 0 || /* admin_shutdown */
	       strcmp(sqlstate, "53300") == 0;   /* too_many_connections */
}

/* Settings of every batch connection; a dry run's session cannot write at all. */
static int session_prepare(struct backfill_session *session, char *err, size_t errlen)
{
	PGresult *result = PQexec(session->conn, SESSION_SETTINGS_SQL);
	char message[1024];

	if (PQresultStatus(result) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "preparing the session: %s",
			 migrate_result_error(result, message, sizeof message));
		PQclear(result);
		return -1;
	}
	PQclear(result);
	if (session->read_only &&
	    migrate_exec(session->conn, "SET default_transaction_read_only = on", "dry run") < 0) {
		snprintf(err, errlen, "cannot make the dry run's session read-only");
		return -1;
	}
	return 0;
}

/*
 * Take the advisory lock of source, waiting up to session->lock_wait seconds: the holder may be
 * another backfill, or the server-side backend of a killed one still finishing its last batch
 * (up to the statement timeout) before it notices its client is gone. Returns 1 when taken, 0
 * when the wait ran out (or a stop was requested), -1 on error.
 */
static int session_lock(struct backfill_session *session, int source, char *err, size_t errlen)
{
	const char *name = legacy_source_name((enum legacy_source)source);
	double deadline = monotonic_seconds() + session->lock_wait;
	char sql[128], message[1024];
	bool said = false;

	snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(" BACKFILL_LOCK_CLASS ", %d)", source + 1);
	for (;;) {
		PGresult *result = PQexec(session->conn, sql);
		bool taken;

		if (PQresultStatus(result) != PGRES_TUPLES_OK) {
			snprintf(err, errlen, "taking the backfill lock: %s",
				 migrate_result_error(result, message, sizeof message));
			PQclear(result);
			return -1;
		}
		taken = strcmp(PQgetvalue(result, 0, 0), "t") == 0;
		PQclear(result);
		if (taken) {
			session->locked_source = source;
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
		pause_seconds(0.5);
	}
	snprintf(err, errlen, "another backfill of %s is running (advisory lock held); wait for it or stop it first",
		 name);
	return 0;
}

static void session_unlock(struct backfill_session *session)
{
	char sql[128];
	PGresult *result;

	if (session->locked_source < 0)
		return;
	snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(" BACKFILL_LOCK_CLASS ", %d)",
		 session->locked_source + 1);
	result = PQexec(session->conn, sql);
	PQclear(result);
	session->locked_source = -1;
}

/*
 * After a lost connection: reconnect with the same parameters, restore the settings and the
 * advisory lock. Another run may have taken the lock meanwhile; then this one stops.
 */
static int session_reconnect(struct backfill_session *session, char *err, size_t errlen)
{
	int locked = session->locked_source;

	PQreset(session->conn);
	if (PQstatus(session->conn) != CONNECTION_OK) {
		snprintf(err, errlen, "reconnecting: %s", PQerrorMessage(session->conn));
		migrate_mask_password(session->dsn, err, errlen);
		return -1;
	}
	if (session_prepare(session, err, errlen) < 0)
		return -1;
	session->locked_source = -1;
	if (locked >= 0 && session_lock(session, locked, err, errlen) != 1)
		return -1;
	return 0;
}

/*
 * Run one batch statement with up to BACKFILL_MAX_ATTEMPTS attempts. A statement timeout halves
 * *limit (the next attempt reads fewer rows). Returns the result (the caller PQclear-s it) or NULL
 * with a message in err.
 */
static PGresult *execute_batch(struct backfill_session *session, struct source_run *run, const char *const params[],
			       char *limit_text, size_t limit_size, char *err, size_t errlen)
{
	char message[1024];

	for (int attempt = 1;; attempt++) {
		PGresult *result = PQexecParams(session->conn, run->batch_sql, PARAM_COUNT, batch_param_types,
						params, NULL, NULL, 0);
		bool transient;

		if (PQresultStatus(result) == PGRES_TUPLES_OK)
			return result;
		/* Someone else inserted one of the keys meanwhile: from now on, let the index skip them. */
		if (sqlstate_is(result, "23505") && run->conflict_sql) {
			PQclear(result);
			free(run->batch_sql);
			run->batch_sql = run->conflict_sql;
			run->conflict_sql = NULL;
			attempt--;
			continue;
		}
		migrate_result_error(result, message, sizeof message);
		fold_lines(message);
		transient = is_transient(session->conn, result);
		if (sqlstate_is(result, "57014")) {
			int limit = atoi(limit_text) / 2;
			snprintf(limit_text, limit_size, "%d", limit > 0 ? limit : 1);
		}
		PQclear(result);
		if (!transient || attempt >= BACKFILL_MAX_ATTEMPTS || stop_requested) {
			snprintf(err, errlen, "%s", message);
			return NULL;
		}
		migrate_error("backfill: %s; retrying in %d s (attempt %d of %d)", message, 1 << (attempt - 1),
			      attempt + 1, BACKFILL_MAX_ATTEMPTS);
		pause_seconds((double)(1 << (attempt - 1)));
		if (PQstatus(session->conn) != CONNECTION_OK &&
		    session_reconnect(session, message, sizeof message) < 0) {
			if (attempt + 1 >= BACKFILL_MAX_ATTEMPTS) {
				snprintf(err, errlen, "%s", message);
				return NULL;
			}
			migrate_error("backfill: %s", message);
		}
	}
}

/* ---- progress ------------------------------------------------------------------------------- */

static void format_duration(double seconds, char *buf, size_t size)
{
	long long s = (long long)(seconds + 0.5);

	if (s >= 3600)
		snprintf(buf, size, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
	else if (s >= 60)
		snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(buf, size, "%llds", s);
}

static void progress_begin(struct progress_display *progress, enum progress_mode mode, bool lines_only,
			   const char *label)
{
	memset(progress, 0, sizeof *progress);
	progress->terminal = isatty(STDERR_FILENO);
	progress->bar = !lines_only && (mode == PROGRESS_ALWAYS || (mode == PROGRESS_AUTO && progress->terminal));
	progress->log_lines = mode != PROGRESS_NEVER && !progress->bar;
	progress->label = label;
	progress->started = monotonic_seconds();
	progress->last_output = progress->started;
}

/*
 * "\r[#####.....] 45% 450,000/1,000,000 rows 52,000 rows/s ETA 10s" on a terminal, redrawn at
 * most every BACKFILL_BAR_INTERVAL; otherwise a log line every BACKFILL_LOG_INTERVAL.
 */
static void progress_update(struct progress_display *progress, const struct source_run *run, bool final)
{
	double now = monotonic_seconds();
	double elapsed = now - progress->started;
	double rate = elapsed > 0 ? (double)run->rows_scanned / elapsed : 0;
	char done[32], total[32], rate_text[32], eta[48] = "";
	long long shown_total = run->total;
	int percent = -1;

	if (!progress->bar && !progress->log_lines)
		return;
	if (!final && now - progress->last_output < (progress->bar ? BACKFILL_BAR_INTERVAL : BACKFILL_LOG_INTERVAL))
		return;
	progress->last_output = now;

	/* An estimated total may be exceeded; never show more than 100 %. */
	if (shown_total >= 0 && shown_total < run->rows_scanned)
		shown_total = run->rows_scanned;
	if (shown_total > 0)
		percent = (int)(100.0 * (double)run->rows_scanned / (double)shown_total);
	else if (shown_total == 0)
		percent = 100;
	format_count(run->rows_scanned, done, sizeof done);
	format_count(shown_total, total, sizeof total);
	format_count((long long)(rate + 0.5), rate_text, sizeof rate_text);
	if (percent >= 0 && rate > 0 && !final) {
		char left[32];
		format_duration((double)(shown_total - run->rows_scanned) / rate, left, sizeof left);
		snprintf(eta, sizeof eta, " ETA %s", left);
	}

	if (progress->bar) {
		char bar[31];
		int filled = percent >= 0 ? percent * 30 / 100 : 0;

		for (int i = 0; i < 30; i++)
			bar[i] = i < filled ? '#' : '.';
		bar[30] = '\0';
		if (percent >= 0)
			fprintf(stderr, "\r%s [%s] %3d%% %s/%s rows %s rows/s%s%s", progress->label, bar, percent,
				done, total, rate_text, eta, progress->terminal ? "\033[K" : "  ");
		else
			fprintf(stderr, "\r%s %s rows %s rows/s%s", progress->label, done, rate_text,
				progress->terminal ? "\033[K" : "  ");
		progress->drawn = true;
		if (final)
			fputc('\n', stderr);
	} else if (percent >= 0) {
		fprintf(stderr, MIGRATE_PROGRAM ": backfill: %s: %s/%s rows (%d%%), %s rows/s%s\n", progress->label,
			done, total, percent, rate_text, eta);
	} else {
		fprintf(stderr, MIGRATE_PROGRAM ": backfill: %s: %s rows, %s rows/s\n", progress->label, done,
			rate_text);
	}
	fflush(stderr);
}

/* ---- one source ----------------------------------------------------------------------------- */

static void add_unmapped(struct source_run *run, const char *legacy_type, const char *event_type, long long count)
{
	run->unmapped_total += count;
	for (size_t i = 0; i < run->unmapped_count; i++) {
		if (strcmp(run->unmapped[i].legacy_type, legacy_type) == 0) {
			run->unmapped[i].count += count;
			return;
		}
	}
	if (run->unmapped_count >= BACKFILL_MAX_UNMAPPED_TYPES) {
		run->unmapped_other += count;
		return;
	}
	{
		struct unmapped_type *grown =
			realloc(run->unmapped, (run->unmapped_count + 1) * sizeof *run->unmapped);
		char *legacy_copy = strdup(legacy_type);
		char *event_copy = strdup(event_type);

		if (!grown || !legacy_copy || !event_copy) {
			if (grown)
				run->unmapped = grown;
			free(legacy_copy);
			free(event_copy);
			run->unmapped_other += count;
			return;
		}
		run->unmapped = grown;
		run->unmapped[run->unmapped_count++] =
			(struct unmapped_type){.legacy_type = legacy_copy, .event_type = event_copy, .count = count};
	}
}

static int compare_unmapped(const void *a, const void *b)
{
	const struct unmapped_type *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->legacy_type, y->legacy_type);
}

/*
 * Where to start: after the recorded last id of an interrupted run of this source and window,
 * else from the first id. Fills cursor ("" for the start) and run->resumed_*.
 */
static int find_resume_point(PGconn *conn, struct source_run *run, const char *window_key, char *cursor,
			     size_t cursor_size, char *err, size_t errlen)
{
	const char *params[2] = {legacy_source_name(run->source), window_key};
	char message[1024];
	PGresult *result = PQexecParams(conn,
					"SELECT last_id, rows_seen FROM passport_backfill_progress"
					" WHERE legacy_source = $1 AND window_key = $2"
					"   AND completed_at IS NULL AND last_id IS NOT NULL",
					2, NULL, params, NULL, NULL, 0);

	cursor[0] = '\0';
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "reading passport_backfill_progress: %s",
			 migrate_result_error(result, message, sizeof message));
		PQclear(result);
		return -1;
	}
	if (PQntuples(result) == 1) {
		snprintf(cursor, cursor_size, "%s", PQgetvalue(result, 0, 0));
		snprintf(run->resumed_after, sizeof run->resumed_after, "%s", cursor);
		run->resumed_rows = atoll(PQgetvalue(result, 0, 1));
	}
	PQclear(result);
	return 0;
}

/*
 * The number of rows this run will read, for the progress bar: exact, unless counting takes
 * longer than 30 s, then the planner's estimate of the whole table (shown as such).
 */
static void count_rows(PGconn *conn, struct source_run *run, const char *const params[])
{
	PGresult *result;

	run->total = -1;
	if (migrate_exec(conn, "BEGIN", "count") < 0)
		return;
	if (migrate_exec(conn, "SET LOCAL statement_timeout = '30s'", "count") < 0)
		goto rollback;
	result = PQexecParams(conn, run->count_sql, PARAM_COUNT, batch_param_types, params, NULL, NULL, 0);
	if (PQresultStatus(result) == PGRES_TUPLES_OK) {
		run->total = atoll(PQgetvalue(result, 0, 0));
		PQclear(result);
		migrate_exec(conn, "COMMIT", "count");
		return;
	}
	PQclear(result);
rollback:
	PQclear(PQexec(conn, "ROLLBACK"));
	{
		const char *relation[1] = {run->table.relation};

		result = PQexecParams(conn, "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", 1,
				      NULL, relation, NULL, NULL, 0);
		if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1 &&
		    atoll(PQgetvalue(result, 0, 0)) >= 0) {
			run->total = atoll(PQgetvalue(result, 0, 0));
			run->total_estimated = true;
		}
		PQclear(result);
	}
}

static int load_sample(PGconn *conn, struct source_run *run, const char *const template_params[], char *err,
		       size_t errlen)
{
	const char *params[PARAM_COUNT];
	char limit[16], message[1024];
	PGresult *result;

	memcpy(params, template_params, sizeof params);
	snprintf(limit, sizeof limit, "%d", BACKFILL_SAMPLE_ROWS);
	params[PARAM_LIMIT] = limit;
	result = PQexecParams(conn, run->sample_sql, PARAM_COUNT, batch_param_types, params, NULL, NULL, 0);
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "reading a sample: %s", migrate_result_error(result, message, sizeof message));
		PQclear(result);
		return -1;
	}
	run->sample = cJSON_CreateArray();
	for (int row = 0; row < PQntuples(result) && run->sample; row++) {
		cJSON *item = cJSON_Parse(PQgetvalue(result, row, 0));
		if (item)
			cJSON_AddItemToArray(run->sample, item);
	}
	PQclear(result);
	return 0;
}

static int build_statements(struct source_run *run, const struct backfill_options *options,
			    const struct database_facts *facts)
{
	bool windowed = options->since || options->until;

	run->batch_sql = finish_batch_sql(options->dry_run ? build_count_sql(&run->table, facts, windowed)
							   : build_write_sql(&run->table, facts, windowed, false));
	if (!options->dry_run) {
		run->conflict_sql = finish_batch_sql(build_write_sql(&run->table, facts, windowed, true));
		if (!run->conflict_sql)
			run->batch_sql = NULL; /* reported below (and freed with the run) */
	}
	run->count_sql = build_total_sql(&run->table);
	run->type_map_json = type_map_json(run->source);
	if (options->dry_run)
		run->sample_sql = build_sample_sql(&run->table, facts);
	if (!run->batch_sql || (!options->dry_run && !run->conflict_sql) || !run->count_sql || !run->type_map_json ||
	    (options->dry_run && !run->sample_sql)) {
		snprintf(run->error, sizeof run->error, "out of memory");
		return -1;
	}
	return 0;
}

/* Copy one source, batch by batch, until its end, a failure or a stop request. */
static void backfill_source(struct backfill_session *session, struct source_run *run,
			    const struct backfill_options *options, const struct database_facts *facts,
			    const char *routes, const char *window_key, const char *since, const char *until)
{
	const char *params[PARAM_COUNT];
	char cursor[128] = "", limit[16], label[96], err[1024];
	struct progress_display progress;
	int batch_size = options->batch_size;
	double started = monotonic_seconds();

	/* One batch per second at most under a rate below the batch size: smoother than bursts. */
	if (options->max_rate > 0 && options->max_rate < batch_size)
		batch_size = options->max_rate >= 1 ? (int)options->max_rate : 1;
	snprintf(limit, sizeof limit, "%d", batch_size);

	if (build_statements(run, options, facts) < 0) {
		run->status = SOURCE_FAILED;
		return;
	}
	if (!options->dry_run) {
		int taken = session_lock(session, (int)run->source, err, sizeof err);
		if (taken != 1) {
			snprintf(run->error, sizeof run->error, "%s", err);
			run->status = SOURCE_FAILED;
			return;
		}
		if (facts->has_progress_table && !options->restart &&
		    find_resume_point(session->conn, run, window_key, cursor, sizeof cursor, err, sizeof err) < 0) {
			snprintf(run->error, sizeof run->error, "%s", err);
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
	params[PARAM_FALLBACK_PREFIX] = fallback_prefix[run->source];
	params[PARAM_MARK_PROCESSED] = options->mark_processed ? "true" : "false";
	params[PARAM_WINDOW_KEY] = window_key;

	if (options->dry_run && load_sample(session->conn, run, params, err, sizeof err) < 0) {
		snprintf(run->error, sizeof run->error, "%s", err);
		run->status = SOURCE_FAILED;
		goto out;
	}
	if (options->progress != PROGRESS_NEVER)
		count_rows(session->conn, run, params);

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
			run->table.layout, run->total_estimated ? "about " : "", run->total >= 0 ? total : "?",
			run->resumed_after[0] ? "left" : "to read", options->dry_run ? " (dry run)" : "");
	}
	progress_begin(&progress, options->progress, options->lines_only, label);
	started = monotonic_seconds();

	for (;;) {
		PGresult *result = execute_batch(session, run, params, limit, sizeof limit, err, sizeof err);
		long long scanned_now = 0;

		if (!result) {
			snprintf(run->error, sizeof run->error, "batch after id %s: %.900s",
				 params[PARAM_CURSOR] ? params[PARAM_CURSOR] : "(start)", err);
			run->status = SOURCE_FAILED;
			break;
		}
		for (int row = 0; row < PQntuples(result); row++) {
			if (strcmp(PQgetvalue(result, row, 0), "batch") == 0) {
				scanned_now = atoll(PQgetvalue(result, row, 2));
				run->rows_scanned += scanned_now;
				run->rows_read += atoll(PQgetvalue(result, row, 3));
				run->written += atoll(PQgetvalue(result, row, 4));
				run->anonymous += atoll(PQgetvalue(result, row, 5));
				run->unknown_users += atoll(PQgetvalue(result, row, 6));
				if (!PQgetisnull(result, row, 1))
					snprintf(cursor, sizeof cursor, "%s", PQgetvalue(result, row, 1));
			} else {
				add_unmapped(run, PQgetvalue(result, row, 7), PQgetvalue(result, row, 8),
					     atoll(PQgetvalue(result, row, 3)));
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
		if (stop_requested) {
			run->status = SOURCE_INTERRUPTED;
			break;
		}
		if (options->max_rate > 0)
			pause_seconds((double)run->rows_scanned / options->max_rate - (monotonic_seconds() - started));
		if (stop_requested) {
			run->status = SOURCE_INTERRUPTED;
			break;
		}
	}
	run->elapsed = monotonic_seconds() - started;
	progress_update(&progress, run, true);
out:
	if (!options->dry_run)
		session_unlock(session);
	if (run->unmapped_count > 1)
		qsort(run->unmapped, run->unmapped_count, sizeof *run->unmapped, compare_unmapped);
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

/* ---- start-up checks ------------------------------------------------------------------------ */

static int read_database_facts(PGconn *conn, struct database_facts *facts)
{
	char message[1024];
	PGresult *result = PQexec(conn,
				  "SELECT to_regclass('passport_entries') IS NOT NULL,\n"
				  "       (SELECT count(*) FROM pg_attribute\n"
				  "         WHERE attrelid = to_regclass('passport_entries') AND NOT attisdropped\n"
				  "           AND attname IN ('legacy_source', 'legacy_id')) = 2,\n"
				  "       to_regclass('passport_backfill_progress') IS NOT NULL,\n"
				  "       to_regclass('passport_backfill_progress') IS NOT NULL\n"
				  "         AND has_table_privilege('passport_backfill_progress', 'SELECT')\n"
				  "         AND has_table_privilege('passport_backfill_progress', 'INSERT')\n"
				  "         AND has_table_privilege('passport_backfill_progress', 'UPDATE'),\n"
				  "       to_regclass('media_ids') IS NOT NULL,\n"
				  "       EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('media_ids')\n"
				  "                  AND attname = 'role' AND NOT attisdropped)");

	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		migrate_error("backfill: reading the catalog: %s", migrate_result_error(result, message, sizeof message));
		PQclear(result);
		return -1;
	}
	if (strcmp(PQgetvalue(result, 0, 0), "t") != 0 || strcmp(PQgetvalue(result, 0, 1), "t") != 0) {
		migrate_error("backfill: passport_entries or its legacy_source/legacy_id columns are missing");
		fprintf(stderr, "  hint: run `" MIGRATE_PROGRAM " schema` first\n");
		PQclear(result);
		return -1;
	}
	facts->progress_table_exists = strcmp(PQgetvalue(result, 0, 2), "t") == 0;
	facts->has_progress_table = strcmp(PQgetvalue(result, 0, 3), "t") == 0;
	facts->has_media_ids = strcmp(PQgetvalue(result, 0, 4), "t") == 0;
	facts->media_ids_has_role = strcmp(PQgetvalue(result, 0, 5), "t") == 0;
	PQclear(result);

	/* A single-column foreign key on passport_entries.user_id, as production has to auth.users. */
	result = PQexec(conn,
			"SELECT format('%I.%I', n.nspname, c.relname), quote_ident(a.attname),\n"
			"       has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')\n"
			"  FROM pg_constraint k\n"
			"  JOIN pg_class c ON c.oid = k.confrelid\n"
			"  JOIN pg_namespace n ON n.oid = c.relnamespace\n"
			"  JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = k.confkey[1]\n"
			"  JOIN pg_attribute u ON u.attrelid = k.conrelid AND u.attnum = k.conkey[1]\n"
			" WHERE k.conrelid = to_regclass('passport_entries') AND k.contype = 'f'\n"
			"   AND cardinality(k.conkey) = 1 AND u.attname = 'user_id'\n"
			" LIMIT 1");
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		migrate_error("backfill: reading foreign keys: %s", migrate_result_error(result, message, sizeof message));
		PQclear(result);
		return -1;
	}
	if (PQntuples(result) == 1) {
		snprintf(facts->user_reference_relation, sizeof facts->user_reference_relation, "%s",
			 PQgetvalue(result, 0, 0));
		snprintf(facts->user_reference_column, sizeof facts->user_reference_column, "%s",
			 PQgetvalue(result, 0, 1));
		facts->user_reference_readable = strcmp(PQgetvalue(result, 0, 2), "t") == 0;
	}
	PQclear(result);
	return 0;
}

/*
 * Check --since/--until with the server's own parser (any timestamptz literal; without a zone,
 * UTC since the session runs in UTC) and build the progress window key from the normalised values.
 */
static int check_window(PGconn *conn, const struct backfill_options *options, char *since, char *until,
			size_t size, char *window_key, size_t key_size)
{
	const char *params[2] = {options->since, options->until};
	char message[1024];
	PGresult *result = PQexecParams(conn,
					"SELECT to_char($1::timestamptz, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
					"       to_char($2::timestamptz, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
					"       $1::timestamptz < $2::timestamptz",
					2, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		migrate_error("backfill: bad --since or --until: %s",
			      migrate_result_error(result, message, sizeof message));
		PQclear(result);
		return -1;
	}
	snprintf(since, size, "%s", PQgetvalue(result, 0, 0));
	snprintf(until, size, "%s", PQgetvalue(result, 0, 1));
	if (!PQgetisnull(result, 0, 2) && strcmp(PQgetvalue(result, 0, 2), "t") != 0) {
		migrate_error("backfill: --since (%s) must be before --until (%s)", since, until);
		PQclear(result);
		return -1;
	}
	PQclear(result);
	snprintf(window_key, key_size, "%s..%s", since, until);
	return 0;
}

/* Entries passportd processes while history is still arriving are applied as late entries. */
static void warn_about_running_daemons(PGconn *conn, const struct backfill_options *options)
{
	PGresult *result;
	long long daemons;

	if (options->dry_run || options->mark_processed)
		return;
	result = PQexec(conn, "SELECT count(*) FROM pg_stat_activity"
			      " WHERE datname = current_database() AND application_name LIKE 'passportd%'");
	if (PQresultStatus(result) == PGRES_TUPLES_OK && (daemons = atoll(PQgetvalue(result, 0, 0))) > 0)
		migrate_error("backfill: warning: %lld passportd connection(s) are open; entries they process "
			      "before the backfill ends are applied as late entries. Stop passportd during the "
			      "backfill for an exact event-time replay.",
			      daemons);
	PQclear(result);
}

/* ---- summary -------------------------------------------------------------------------------- */

static double rows_per_second(long long rows, double seconds)
{
	return seconds > 0 ? (double)rows / seconds : 0;
}

static void print_summary_text(const struct source_run *runs, size_t count, const struct backfill_options *options,
			       double elapsed)
{
	long long inserted = 0, present = 0, anonymous = 0, unmapped = 0, read = 0, scanned = 0;
	char a[32], b[32], c[32], d[32], e[32], f[32];

	if (options->dry_run)
		printf("backfill: dry run, nothing written\n");
	else if (options->mark_processed)
		printf("backfill: entries inserted as processed history (passportd will not apply them)\n");
	else
		printf("backfill: entries inserted unprocessed (passportd replays them in event-time order)\n");
	for (size_t i = 0; i < count; i++) {
		const struct source_run *run = &runs[i];
		const char *name = legacy_source_name(run->source);

		if (run->status == SOURCE_MISSING) {
			printf("  %s: table not found, skipped\n", name);
			continue;
		}
		if (run->status == SOURCE_FAILED && !run->table.exists) {
			printf("  %s: failed: %s\n", name, run->error);
			continue;
		}
		if (run->status == SOURCE_INTERRUPTED && !run->table.exists) {
			printf("  %s: not started (interrupted)\n", name);
			continue;
		}
		scanned += run->rows_scanned;
		read += run->rows_read;
		inserted += run->written;
		present += run->rows_read - run->written;
		anonymous += run->anonymous;
		unmapped += run->unmapped_total;
		printf("  %s (%s layout): %s\n", name, run->table.layout, status_names[run->status]);
		if (run->resumed_after[0])
			printf("    resumed after id %s (%s rows read by the interrupted run)\n", run->resumed_after,
			       format_count(run->resumed_rows, a, sizeof a));
		if (run->rows_scanned != run->rows_read)
			printf("    rows read        %s in the window (of %s scanned)\n", format_count(run->rows_read, a, sizeof a),
			       format_count(run->rows_scanned, b, sizeof b));
		else
			printf("    rows read        %s\n", format_count(run->rows_read, a, sizeof a));
		printf("    %s    %s\n", options->dry_run ? "would insert " : "inserted     ",
		       format_count(run->written, a, sizeof a));
		printf("    already present  %s\n", format_count(run->rows_read - run->written, a, sizeof a));
		printf("    anonymous        %s\n", format_count(run->anonymous, a, sizeof a));
		if (run->unknown_users)
			printf("    unknown users    %s (kept as anonymous, payload.legacy_user_id)\n",
			       format_count(run->unknown_users, a, sizeof a));
		printf("    unmapped types   %s", run->unmapped_count ? "" : "none");
		for (size_t u = 0; u < run->unmapped_count; u++)
			printf("%s%s -> %s (%s)", u ? ", " : "", run->unmapped[u].legacy_type[0] ? run->unmapped[u].legacy_type : "(null)",
			       run->unmapped[u].event_type, format_count(run->unmapped[u].count, a, sizeof a));
		if (run->unmapped_other)
			printf(", other types (%s)", format_count(run->unmapped_other, a, sizeof a));
		printf("\n    elapsed          %.1f s, %s rows/s\n", run->elapsed,
		       format_count((long long)(rows_per_second(run->rows_scanned, run->elapsed) + 0.5), a, sizeof a));
		if (run->sample && cJSON_GetArraySize(run->sample) > 0) {
			cJSON *item;

			printf("    sample (the first rows as they would be inserted):\n");
			cJSON_ArrayForEach(item, run->sample)
			{
				char *text = cJSON_PrintUnformatted(item);
				if (text)
					printf("      %s\n", text);
				free(text);
			}
		}
		if (run->error[0])
			printf("    error            %s\n", run->error);
		if (run->status == SOURCE_INTERRUPTED)
			printf("    interrupted: run the same command again to resume\n");
	}
	printf("  total: %s rows read, %s %s, %s already present, %s anonymous, %s unmapped, %.1f s, %s rows/s\n",
	       format_count(read, a, sizeof a), format_count(inserted, b, sizeof b),
	       options->dry_run ? "would be inserted" : "inserted", format_count(present, c, sizeof c),
	       format_count(anonymous, d, sizeof d), format_count(unmapped, e, sizeof e), elapsed,
	       format_count((long long)(rows_per_second(scanned, elapsed) + 0.5), f, sizeof f));
}

static void print_summary_json(const struct source_run *runs, size_t count, const struct backfill_options *options,
			       const char *since, const char *until, double elapsed, const char *status)
{
	cJSON *root = cJSON_CreateObject(), *sources;
	long long inserted = 0, present = 0, anonymous = 0, unmapped = 0, read = 0, unknown = 0, scanned = 0;
	char *text;

	if (!root) {
		migrate_error("backfill: out of memory");
		return;
	}
	cJSON_AddStringToObject(root, "command", "backfill");
	cJSON_AddStringToObject(root, "status", status);
	cJSON_AddBoolToObject(root, "dry_run", options->dry_run);
	cJSON_AddBoolToObject(root, "mark_processed", options->mark_processed);
	cJSON_AddNumberToObject(root, "batch_size", options->batch_size);
	if (since && *since)
		cJSON_AddStringToObject(root, "since", since);
	else
		cJSON_AddNullToObject(root, "since");
	if (until && *until)
		cJSON_AddStringToObject(root, "until", until);
	else
		cJSON_AddNullToObject(root, "until");
	sources = cJSON_AddArrayToObject(root, "sources");
	for (size_t i = 0; i < count; i++) {
		const struct source_run *run = &runs[i];
		cJSON *item = cJSON_CreateObject(), *types;

		if (!item)
			continue;
		cJSON_AddItemToArray(sources, item);
		cJSON_AddStringToObject(item, "source", legacy_source_name(run->source));
		cJSON_AddStringToObject(item, "status", status_names[run->status]);
		cJSON_AddStringToObject(item, "layout", run->table.layout);
		if (run->resumed_after[0])
			cJSON_AddStringToObject(item, "resumed_after", run->resumed_after);
		else
			cJSON_AddNullToObject(item, "resumed_after");
		cJSON_AddNumberToObject(item, "rows_scanned", (double)run->rows_scanned);
		cJSON_AddNumberToObject(item, "rows_read", (double)run->rows_read);
		cJSON_AddNumberToObject(item, "inserted", options->dry_run ? 0 : (double)run->written);
		if (options->dry_run)
			cJSON_AddNumberToObject(item, "would_insert", (double)run->written);
		cJSON_AddNumberToObject(item, "already_present", (double)(run->rows_read - run->written));
		cJSON_AddNumberToObject(item, "anonymous", (double)run->anonymous);
		cJSON_AddNumberToObject(item, "unknown_users", (double)run->unknown_users);
		types = cJSON_AddArrayToObject(item, "unmapped");
		for (size_t u = 0; u < run->unmapped_count; u++) {
			cJSON *type = cJSON_CreateObject();
			if (!type)
				continue;
			cJSON_AddItemToArray(types, type);
			cJSON_AddStringToObject(type, "legacy_event_type", run->unmapped[u].legacy_type);
			cJSON_AddStringToObject(type, "event_type", run->unmapped[u].event_type);
			cJSON_AddNumberToObject(type, "count", (double)run->unmapped[u].count);
		}
		cJSON_AddNumberToObject(item, "unmapped_other", (double)run->unmapped_other);
		cJSON_AddNumberToObject(item, "elapsed_seconds", run->elapsed);
		cJSON_AddNumberToObject(item, "rows_per_second", rows_per_second(run->rows_scanned, run->elapsed));
		if (run->error[0])
			cJSON_AddStringToObject(item, "error", run->error);
		else
			cJSON_AddNullToObject(item, "error");
		if (run->sample)
			cJSON_AddItemReferenceToObject(item, "sample", run->sample);
		scanned += run->rows_scanned;
		read += run->rows_read;
		inserted += run->written;
		present += run->rows_read - run->written;
		anonymous += run->anonymous;
		unknown += run->unknown_users;
		unmapped += run->unmapped_total;
	}
	cJSON_AddNumberToObject(root, "rows_scanned", (double)scanned);
	cJSON_AddNumberToObject(root, "rows_read", (double)read);
	cJSON_AddNumberToObject(root, "inserted", options->dry_run ? 0 : (double)inserted);
	if (options->dry_run)
		cJSON_AddNumberToObject(root, "would_insert", (double)inserted);
	cJSON_AddNumberToObject(root, "already_present", (double)present);
	cJSON_AddNumberToObject(root, "anonymous", (double)anonymous);
	cJSON_AddNumberToObject(root, "unknown_users", (double)unknown);
	cJSON_AddNumberToObject(root, "unmapped", (double)unmapped);
	cJSON_AddNumberToObject(root, "elapsed_seconds", elapsed);
	cJSON_AddNumberToObject(root, "rows_per_second", rows_per_second(scanned, elapsed));
	text = cJSON_PrintUnformatted(root);
	if (text)
		printf("%s\n", text);
	free(text);
	cJSON_Delete(root);
}

/* ---- entry point ---------------------------------------------------------------------------- */

static int parse_options(int argc, char **argv, struct migrate_globals *globals, struct backfill_options *options)
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
			globals->dsn = optarg;
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
	for (size_t i = 0; i < shared->run_count && !run && !stop_requested; i++) {
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
		char err[1024];

		job[i].shared = shared;
		if (i > 0) {
			job[i].session = *main_session;
			job[i].session.conn = migrate_connect(shared->globals);
			job[i].session.locked_source = -1;
			if (!job[i].session.conn)
				continue;
			if (session_prepare(&job[i].session, err, sizeof err) < 0) {
				migrate_error("backfill: %s", err);
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
	char since[64] = "", until[64] = "", window_key[160], err[1024];
	char *routes = NULL;
	double started;
	int rc, exit_code = MIGRATE_EXIT_FAILURE;
	bool all_complete = true, interrupted = false;

	memset(&facts, 0, sizeof facts);
	memset(runs, 0, sizeof runs);
	rc = parse_options(argc, argv, globals, &options);
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
	if (session_prepare(&session, err, sizeof err) < 0) {
		migrate_error("backfill: %s", err);
		goto out;
	}
	if (check_window(session.conn, &options, since, until, sizeof since, window_key, sizeof window_key) < 0) {
		exit_code = MIGRATE_EXIT_USAGE;
		goto out;
	}
	if (read_database_facts(session.conn, &facts) < 0)
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
	warn_about_running_daemons(session.conn, &options);
	routes = routes_json();
	if (!routes) {
		migrate_error("backfill: out of memory");
		goto out;
	}

	install_signal_handlers();
	started = monotonic_seconds();
	for (unsigned source = 0; source < LEGACY_SOURCE_COUNT; source++) {
		struct source_run *run;

		if (!(options.sources & (1u << source)))
			continue;
		run = &runs[run_count++];
		run->source = (enum legacy_source)source;
		if (legacy_table_inspect(session.conn, run->source, options.include_client_info, &run->table, err,
					 sizeof err) < 0) {
			snprintf(run->error, sizeof run->error, "%s", err);
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
		print_summary_json(runs, run_count, &options, since, until, monotonic_seconds() - started,
				   all_complete ? "complete" : interrupted ? "interrupted" : "failed");
	else
		print_summary_text(runs, run_count, &options, monotonic_seconds() - started);
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
