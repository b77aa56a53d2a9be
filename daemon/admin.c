/* admin: the operator subcommands `status` (queue health) and `reprocess` (requeue failed entries). */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "batch.h"
#include "claim.h"
#include "db.h"
#include "log.h"
#include "payload.h"

/*
 * Run one statement with text parameters and text results in a transaction of its own that
 * carries the daemon's settings (UTC, lock_timeout; DB_TRANSACTION_SETTINGS_SQL), all in one round
 * trip; nothing is set on the session. NULL with error set on failure (rolled back).
 */
static PGresult *admin_query(PGconn *conn, const char *sql, int nparams, const char *const *values,
			     struct db_error *error)
{
	struct db_statement statements[4] = {
		{.sql = "BEGIN"}, {.sql = DB_TRANSACTION_SETTINGS_SQL}, {.sql = sql, .nparams = nparams}, {.sql = "COMMIT"}};
	PGresult *res = NULL;

	if (nparams > DB_STATEMENT_MAX_PARAMS) {
		db_error_set(error, NULL, "admin_query: %d parameters, at most %d", nparams, DB_STATEMENT_MAX_PARAMS);
		return NULL;
	}
	for (int i = 0; i < nparams; i++)
		statements[2].values[i] = values[i];
	if (db_pipeline_run(conn, statements, 4, error) == 0) {
		res = statements[2].res;
		statements[2].res = NULL;
	} else {
		db_rollback(conn);
	}
	for (int i = 0; i < 4; i++)
		PQclear(statements[i].res);
	return res;
}

/* The subcommands report a database error on stderr, prefixed with the program's name. */
static void print_error(const struct db_error *error)
{
	fprintf(stderr, "passportd: %s\n", error->message);
}

/* Connect for a subcommand under application_name; on failure the reason is printed and NULL returned. */
static PGconn *admin_connect(const struct config *config, const char *application_name)
{
	struct db_error error;
	PGconn *conn = db_connect(config->dsn, application_name, &error);

	if (!conn)
		fprintf(stderr, "passportd: cannot connect to the database: %s\n", error.message);
	return conn;
}

static double number(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0.0 : strtod(PQgetvalue(res, row, col), NULL);
}

/* A UUID anywhere in a message: replaced by <id> so that one cause is one line of top errors. */
#define UUID_PATTERN "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

/* `status --check`: one line for a monitoring system, and its exit status. */
static int status_check(const struct status_options *options, const PGresult *counts)
{
	double due = number(counts, 0, 0), dead = number(counts, 0, 2), lag = number(counts, 0, 4);
	int status = STATUS_OK;
	const char *words[] = {"OK", "WARNING", "CRITICAL"};

	if (dead > (double)options->max_dead)
		status = STATUS_WARNING;
	if (lag > options->max_lag)
		status = STATUS_CRITICAL;
	printf("PASSPORT %s - due %.0f, lag %.0f s (max %g), dead %.0f (max %ld), retrying %.0f"
	       " | due=%.0f lag=%.0fs;;%g dead=%.0f;%ld retrying=%.0f\n",
	       words[status], due, lag, options->max_lag, dead, options->max_dead, number(counts, 0, 1), due, lag,
	       options->max_lag, dead, options->max_dead, number(counts, 0, 1));
	return status;
}

int admin_status(const struct config *config, const struct status_options *options)
{
	PGconn *conn;
	PGresult *counts = NULL, *recent = NULL, *errors = NULL, *backlog = NULL;
	struct db_error error;
	bool json = options->json;
	int rc = options->check ? STATUS_CRITICAL : 1;

	if (options->check) {
		conn = db_connect(config->dsn, "passportd status", &error);
		if (!conn) {
			printf("PASSPORT CRITICAL - cannot connect to the database: %s\n", error.message);
			return STATUS_CRITICAL;
		}
	} else {
		conn = admin_connect(config, "passportd status");
		if (!conn)
			return 1;
	}
	counts = admin_query(conn,
			     "SELECT count(*) FILTER (WHERE dead_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now())),"
			     " count(*) FILTER (WHERE dead_at IS NULL AND next_attempt_at > now()),"
			     " count(*) FILTER (WHERE dead_at IS NOT NULL),"
			     " extract(epoch FROM now() - min(\"timestamp\") FILTER (WHERE dead_at IS NULL"
			     "   AND (next_attempt_at IS NULL OR next_attempt_at <= now()))),"
			     /* the lag: how long the oldest due entry has waited since it was written */
			     " coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL"
			     "   AND (next_attempt_at IS NULL OR next_attempt_at <= now()))), 0)"
			     " FROM passport_entries e WHERE " NOT_PROCESSED,
			     0, NULL, &error);
	if (counts && options->check) {
		rc = status_check(options, counts);
		goto done;
	}
	if (!counts && options->check) {
		printf("PASSPORT CRITICAL - %s\n", error.message);
		goto done;
	}
	recent = counts ? admin_query(conn,
				      "SELECT count(*) FILTER (WHERE processed_at > now() - interval '1 minute'), count(*)"
				      " FROM passport_entries WHERE processed_at > now() - interval '1 hour'",
				      0, NULL, &error)
			: NULL;
	errors = recent ? admin_query(conn,
				      "SELECT left(regexp_replace(last_error, '" UUID_PATTERN "', '<id>', 'g'), 200), count(*)"
				      " FROM passport_entries e WHERE " NOT_PROCESSED " AND last_error IS NOT NULL"
				      " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10",
				      0, NULL, &error)
			: NULL;
	backlog = errors ? admin_query(conn,
				       "SELECT event_type, count(*) FROM passport_entries"
				       " e WHERE " NOT_PROCESSED " AND dead_at IS NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
				       0, NULL, &error)
			 : NULL;
	if (!backlog) {
		/* error holds the reason of whichever query failed; the ones after it did not run. */
		print_error(&error);
		goto done;
	}

	if (json) {
		cJSON *out = cJSON_CreateObject(), *list;
		char *text;

		cJSON_AddNumberToObject(out, "due", number(counts, 0, 0));
		cJSON_AddNumberToObject(out, "retrying", number(counts, 0, 1));
		cJSON_AddNumberToObject(out, "dead", number(counts, 0, 2));
		cJSON_AddNumberToObject(out, "processed_last_minute", number(recent, 0, 0));
		cJSON_AddNumberToObject(out, "processed_last_hour", number(recent, 0, 1));
		if (PQgetisnull(counts, 0, 3))
			cJSON_AddNullToObject(out, "oldest_due_age_seconds");
		else
			cJSON_AddNumberToObject(out, "oldest_due_age_seconds", number(counts, 0, 3));
		cJSON_AddNumberToObject(out, "lag_seconds", number(counts, 0, 4));
		list = cJSON_AddArrayToObject(out, "top_errors");
		for (int i = 0; i < PQntuples(errors); i++) {
			cJSON *item = cJSON_CreateObject();
			cJSON_AddStringToObject(item, "error", PQgetvalue(errors, i, 0));
			cJSON_AddNumberToObject(item, "count", number(errors, i, 1));
			cJSON_AddItemToArray(list, item);
		}
		list = cJSON_AddArrayToObject(out, "backlog");
		for (int i = 0; i < PQntuples(backlog); i++) {
			cJSON *item = cJSON_CreateObject();
			cJSON_AddStringToObject(item, "event_type", PQgetvalue(backlog, i, 0));
			cJSON_AddNumberToObject(item, "count", number(backlog, i, 1));
			cJSON_AddItemToArray(list, item);
		}
		text = cJSON_Print(out);
		if (text)
			printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(out);
	} else {
		printf("due:                    %s\n", PQgetvalue(counts, 0, 0));
		printf("retrying:               %s\n", PQgetvalue(counts, 0, 1));
		printf("dead:                   %s\n", PQgetvalue(counts, 0, 2));
		printf("processed last minute:  %s\n", PQgetvalue(recent, 0, 0));
		printf("processed last hour:    %s\n", PQgetvalue(recent, 0, 1));
		if (PQgetisnull(counts, 0, 3))
			printf("oldest due entry:       none\n");
		else
			printf("oldest due entry:       %.0f s old\n", number(counts, 0, 3));
		printf("lag:                    %.0f s (the oldest due entry's wait since created_at)\n",
		       number(counts, 0, 4));
		printf("top errors:%s\n", PQntuples(errors) ? "" : "             none");
		for (int i = 0; i < PQntuples(errors); i++)
			printf("  %8s  %s\n", PQgetvalue(errors, i, 1), PQgetvalue(errors, i, 0));
		printf("backlog by event type:%s\n", PQntuples(backlog) ? "" : "  none");
		for (int i = 0; i < PQntuples(backlog); i++)
			printf("  %8s  %s\n", PQgetvalue(backlog, i, 1), PQgetvalue(backlog, i, 0));
	}
	rc = 0;
done:
	PQclear(counts);
	PQclear(recent);
	PQclear(errors);
	PQclear(backlog);
	PQfinish(conn);
	return rc;
}

/*
 * The entries a reprocess selects: dead ones by default; with --id, any unprocessed entry of those
 * ids (processed NULL counts as unprocessed, as everywhere). Processed entries are never selected (they were applied; running them again would apply
 * them twice). All filters are parameters.
 */
#define REPROCESS_FILTER                                                                             \
	" FROM passport_entries e WHERE " NOT_PROCESSED                                                  \
	" AND (CASE WHEN $1::uuid[] IS NULL THEN e.dead_at IS NOT NULL ELSE e.id = ANY($1::uuid[]) END)" \
	" AND ($2::uuid IS NULL OR e.user_id = $2::uuid)"                                               \
	" AND ($3::text IS NULL OR e.event_type = $3::text)"                                            \
	" AND ($4::timestamptz IS NULL OR e.\"timestamp\" >= $4::timestamptz)"                          \
	" AND ($5::timestamptz IS NULL OR e.\"timestamp\" < $5::timestamptz)"                           \
	" AND ($6::text IS NULL OR e.last_error ILIKE $6::text)"

static char *id_list_literal(const struct reprocess_options *options)
{
	size_t size = 3 + (size_t)options->n_ids * (UUID_TEXT_LEN + 1);
	char *literal;

	if (options->n_ids == 0)
		return NULL;
	literal = malloc(size);
	if (!literal)
		return NULL;
	strcpy(literal, "{");
	for (int i = 0; i < options->n_ids; i++) {
		if (i)
			strcat(literal, ",");
		strcat(literal, options->ids[i]);
	}
	strcat(literal, "}");
	return literal;
}

/* reprocess --json --now: the outcome of the index-th requeued entry. */
static void reprocess_json_outcome(cJSON *out, int index, const char *outcome, const char *error)
{
	cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(out, "entries"), index);

	if (!item)
		return;
	cJSON_AddStringToObject(item, "outcome", outcome);
	if (error && *error)
		cJSON_AddStringToObject(item, "error", error);
}

int admin_reprocess(const struct config *config, const struct reprocess_options *options)
{
	PGconn *conn;
	PGresult *res;
	char *ids = NULL;
	const char *values[8];
	char limit[24];
	int rc = 1;
	struct processor *processor = NULL;
	struct db_error error;
	cJSON *out = NULL;

	for (int i = 0; i < options->n_ids; i++) {
		uuid_text canonical;
		if (uuid_canonical(options->ids[i], canonical) < 0) {
			fprintf(stderr, "passportd: --id: not a UUID: %.40s\n", options->ids[i]);
			return 1;
		}
	}
	if (options->user) {
		uuid_text canonical;
		if (uuid_canonical(options->user, canonical) < 0) {
			fprintf(stderr, "passportd: --user: not a UUID: %.40s\n", options->user);
			return 1;
		}
	}
	conn = admin_connect(config, "passportd reprocess");
	if (!conn)
		return 1;
	if (options->json) {
		/* {dry_run, refused_processed: [id], entries: [{id, event_type, ...}]} */
		out = cJSON_CreateObject();
		if (!out || !cJSON_AddBoolToObject(out, "dry_run", options->dry_run) ||
		    !cJSON_AddArrayToObject(out, "refused_processed") || !cJSON_AddArrayToObject(out, "entries")) {
			fprintf(stderr, "passportd: out of memory\n");
			cJSON_Delete(out);
			PQfinish(conn);
			return 1;
		}
	}
	ids = id_list_literal(options);
	snprintf(limit, sizeof(limit), "%ld", options->limit > 0 ? options->limit : REPROCESS_LIMIT_MAX);
	values[0] = ids;
	values[1] = options->user;
	values[2] = options->event_type;
	values[3] = options->since;
	values[4] = options->until;
	values[5] = options->error_like;
	values[6] = limit;

	if (options->n_ids > 0) {
		/* Say which of the given ids are refused because they were already processed. */
		res = admin_query(conn, "SELECT id::text FROM passport_entries WHERE id = ANY($1::uuid[]) AND processed IS TRUE ORDER BY 1",
				    1, values, &error);
		if (!res) {
			print_error(&error);
			goto done;
		}
		for (int i = 0; i < PQntuples(res); i++) {
			if (out)
				cJSON_AddItemToArray(cJSON_GetObjectItem(out, "refused_processed"),
						     cJSON_CreateString(PQgetvalue(res, i, 0)));
			else
				printf("refused %s: already processed (entries are never applied twice)\n",
				       PQgetvalue(res, i, 0));
		}
		PQclear(res);
	}

	if (options->dry_run) {
		res = admin_query(conn,
				  "SELECT e.id::text, e.event_type, coalesce(e.user_id::text, '-'), e.processing_attempts,"
				  " CASE WHEN e.dead_at IS NOT NULL THEN 'dead' WHEN e.next_attempt_at > now() THEN 'retrying'"
				  " ELSE 'due' END, coalesce(e.last_error, '')" REPROCESS_FILTER
				  " ORDER BY e.\"timestamp\", e.id LIMIT $7::bigint",
				  7, values, &error);
		if (!res) {
			print_error(&error);
			goto done;
		}
		for (int i = 0; i < PQntuples(res); i++) {
			if (out) {
				cJSON *item = cJSON_CreateObject();
				cJSON_AddStringToObject(item, "id", PQgetvalue(res, i, 0));
				cJSON_AddStringToObject(item, "event_type", PQgetvalue(res, i, 1));
				cJSON_AddStringToObject(item, "state", PQgetvalue(res, i, 4));
				cJSON_AddNumberToObject(item, "attempts", number(res, i, 3));
				cJSON_AddStringToObject(item, "error", PQgetvalue(res, i, 5));
				cJSON_AddItemToArray(cJSON_GetObjectItem(out, "entries"), item);
				continue;
			}
			printf("%s  %-32s user %s  %s after %s attempts  %s\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1),
			       PQgetvalue(res, i, 2), PQgetvalue(res, i, 4), PQgetvalue(res, i, 3), PQgetvalue(res, i, 5));
		}
		if (!out)
			printf("dry run: %d entries would be requeued\n", PQntuples(res));
		PQclear(res);
		rc = 0;
		goto done;
	}

	/* Rows another process holds (a worker mid-batch) are skipped, never waited for or touched. */
	/*
	 * The requeue wipes the error, the attempts and dead_at; passport_reprocess_history keeps
	 * them, in the same statement. $8: whether this command processes them (--now).
	 */
	values[7] = options->now ? "true" : "false";
	res = admin_query(conn,
			  "WITH picked AS (SELECT e.id, e.last_error, e.processing_attempts, e.dead_at, e.next_attempt_at"
			  REPROCESS_FILTER " ORDER BY e.\"timestamp\", e.id LIMIT $7::bigint FOR UPDATE OF e SKIP LOCKED)"
			  " , history AS (INSERT INTO passport_reprocess_history (passport_entry_id, previous_error,"
			  " previous_attempts, previous_dead_at, previous_next_attempt_at, processed_here)"
			  " SELECT id, last_error, least(processing_attempts, 2147483647)::int, dead_at, next_attempt_at,"
			  " $8::boolean FROM picked)"
			  " , requeued AS (UPDATE passport_entries p SET dead_at = NULL, next_attempt_at = NULL,"
			  " processing_attempts = 0, last_error = NULL FROM picked WHERE p.id = picked.id"
			  " RETURNING p.id, p.\"timestamp\", p.event_type, picked.last_error, picked.processing_attempts)"
			  " SELECT id::text, event_type, last_error, processing_attempts FROM requeued"
			  " ORDER BY \"timestamp\", id",
			  8, values, &error);
	if (!res) {
		print_error(&error);
		goto done;
	}
	if (out) {
		for (int i = 0; i < PQntuples(res); i++) {
			cJSON *item = cJSON_CreateObject();
			cJSON_AddStringToObject(item, "id", PQgetvalue(res, i, 0));
			cJSON_AddStringToObject(item, "event_type", PQgetvalue(res, i, 1));
			if (PQgetisnull(res, i, 2))
				cJSON_AddNullToObject(item, "previous_error");
			else
				cJSON_AddStringToObject(item, "previous_error", PQgetvalue(res, i, 2));
			cJSON_AddNumberToObject(item, "previous_attempts", number(res, i, 3));
			cJSON_AddItemToArray(cJSON_GetObjectItem(out, "entries"), item);
		}
	} else {
		printf("requeued %d entries\n", PQntuples(res));
	}
	if (PQntuples(res) > 0) {
		/* Wake the running daemons; a failure is reported, but the entries are requeued anyway. */
		PGresult *notify = admin_query(conn, "SELECT pg_notify('" PASSPORT_CHANNEL "', '')", 0, NULL, &error);
		if (!notify)
			print_error(&error);
		PQclear(notify);
	}
	if (options->now && PQntuples(res) > 0) {
		struct batch_config batch;

		config_to_batch(config, &batch);
		processor = processor_create(conn, &batch, &error);
		if (!processor) {
			print_error(&error);
			PQclear(res);
			goto done;
		}
		/*
		 * In (timestamp, id) order; each entry goes with the older due entries of its user, so
		 * a DNA row's entries apply in order even when older ones wait in the queue. The
		 * outcome is read back from the entry itself.
		 */
		for (int i = 0; i < PQntuples(res); i++) {
			struct batch_totals totals = {0};
			const char *id = PQgetvalue(res, i, 0);
			int status = processor_run_entry(processor, id, &totals, &error);
			const char *one[1] = {id};
			PGresult *state;

			if (status == BATCH_ERROR) {
				if (out)
					reprocess_json_outcome(out, i, "error", error.message);
				else
					printf("%s  error: %s\n", id, error.message);
				continue;
			}
			if (status == BATCH_EMPTY || status == BATCH_BUSY) {
				if (out)
					reprocess_json_outcome(out, i, "skipped", "held by another session");
				else
					printf("%s  skipped: it or an older due entry of its user is held by another session"
					       " (the daemon processes it in order)\n", id);
				continue;
			}
			state = admin_query(conn,
					    "SELECT CASE WHEN processed IS TRUE THEN 'processed' WHEN dead_at IS NOT NULL"
					    " THEN 'dead again' WHEN next_attempt_at > now() THEN 'failed, will retry'"
					    " ELSE 'left due' END, coalesce(last_error, '') FROM passport_entries WHERE id = $1::uuid",
					    1, one, &error);
			if (!state || PQntuples(state) != 1) {
				if (!state)
					print_error(&error);
				PQclear(state);
				continue;
			}
			if (out) {
				reprocess_json_outcome(out, i, PQgetvalue(state, 0, 0), PQgetvalue(state, 0, 1));
				PQclear(state);
				continue;
			}
			if (strcmp(PQgetvalue(state, 0, 0), "processed") == 0)
				printf("%s  processed", id);
			else
				printf("%s  %s: %s", id, PQgetvalue(state, 0, 0), PQgetvalue(state, 0, 1));
			if (totals.claimed > 1)
				printf(" (after %ld older due entries of its user)", totals.claimed - 1);
			printf("\n");
			PQclear(state);
		}
	}
	PQclear(res);
	rc = 0;
done:
	if (out && rc == 0) {
		char *text = cJSON_Print(out);
		if (text)
			printf("%s\n", text);
		cJSON_free(text);
	}
	cJSON_Delete(out);
	processor_destroy(processor);
	free(ids);
	PQfinish(conn);
	return rc;
}
