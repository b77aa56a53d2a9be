/* inspect: `passportd inspect USER` gathers one user's report in one read-only transaction, then prints it. */
#include "inspect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "claim.h"
#include "db.h"
#include "inspect_plot.h"
#include "vec.h"

/* A timestamptz column as ISO 8601 in UTC with microseconds ("2024-05-01T12:00:00.000000Z"). */
#define ISO_UTC(column) "to_char(" column " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/*
 * The window. $1: --since (timestamptz text, or NULL for the default). Columns: the window's
 * start and the transaction's now(), both ISO_UTC.
 */
static const char sql_window[] =
	"SELECT " ISO_UTC("coalesce($1::timestamptz, now() - interval '" INSPECT_DEFAULT_SINCE "')") ", " ISO_UTC("now()");
enum { WINDOW_SINCE, WINDOW_NOW };

/* The user's DNA rows, fan first. $1: user id. Read with binary results (the embedding's codec). */
static const char sql_dna_rows[] =
	"SELECT m.id::text, m.role::text, m.version::text, m.is_active::text, " ISO_UTC("m.dna_clock") ","
	" " ISO_UTC("m.updated_at") ", m.profile_embedding"
	" FROM media_ids m WHERE m.user_uuid = $1::uuid ORDER BY m.role, m.id LIMIT $2::int";
enum { ROW_ID, ROW_ROLE, ROW_VERSION, ROW_IS_ACTIVE, ROW_DNA_CLOCK, ROW_UPDATED_AT, ROW_EMBEDDING };

/* Entries by state (SPEC 2.1). $1: user id; $2: entries counted at most. */
static const char sql_entry_counts[] =
	"SELECT count(*) FILTER (WHERE " DUE_CONDITION "),"
	" count(*) FILTER (WHERE NOT e.processed AND e.dead_at IS NULL AND e.next_attempt_at > now()),"
	" count(*) FILTER (WHERE NOT e.processed AND e.dead_at IS NOT NULL),"
	" count(*) FILTER (WHERE e.processed), count(*)"
	" FROM (SELECT e.processed, e.dead_at, e.next_attempt_at FROM passport_entries e"
	"   WHERE e.user_id = $1::uuid LIMIT $2::bigint) e";
enum { COUNT_DUE, COUNT_RETRYING, COUNT_DEAD, COUNT_PROCESSED, COUNT_TOTAL };

/* The latest entries, on the index (user_id, timestamp desc). $1: user id; $2: how many. */
static const char sql_latest_entries[] =
	"SELECT e.id::text, " ISO_UTC("e.\"timestamp\"") ", e.event_type, array_to_json(e.affects_systems)::text,"
	" CASE WHEN e.processed THEN 'processed' WHEN e.dead_at IS NOT NULL THEN 'dead'"
	"   WHEN e.next_attempt_at > now() THEN 'retrying' ELSE 'due' END,"
	" e.processing_attempts::text, left(e.last_error, 500)"
	" FROM passport_entries e WHERE e.user_id = $1::uuid ORDER BY e.\"timestamp\" DESC LIMIT $2::int";
enum { ENTRY_ID, ENTRY_TIME, ENTRY_EVENT_TYPE, ENTRY_SYSTEMS, ENTRY_STATE, ENTRY_ATTEMPTS, ENTRY_LAST_ERROR };

/* The evolution columns after the row id, the entry, the event and the target (one list for two queries). */
#define EVOLUTION_FACTORS                                                                              \
	"v.alpha::text, v.late::text, v.decay_cultural::text, v.decay_behavioral::text,"              \
	" v.decay_economic::text, v.decay_spatial::text, v.delta_cultural::text, v.delta_behavioral::text," \
	" v.delta_economic::text, v.delta_spatial::text"

/*
 * The latest steps of each DNA row, on the key (mediaid_id, event_time, passport_entry_id), latest
 * first. $1: the rows' ids (uuid[]); $2: steps per row.
 */
static const char sql_latest_steps[] =
	"SELECT v.mediaid_id::text, v.passport_entry_id::text, v.event_type, " ISO_UTC("v.event_time") ","
	" v.target_type, v.target_id::text, " EVOLUTION_FACTORS
	" FROM unnest($1::uuid[]) AS r(id) CROSS JOIN LATERAL (SELECT d.* FROM dna_evolution d"
	"   WHERE d.mediaid_id = r.id ORDER BY d.event_time DESC, d.id DESC LIMIT $2::int) v";
enum {
	STEP_ROW, STEP_ENTRY, STEP_EVENT_TYPE, STEP_TIME, STEP_TARGET_TYPE, STEP_TARGET_ID, STEP_ALPHA, STEP_LATE,
	STEP_DECAY, /* 4 columns, domain order */
	STEP_DELTA = STEP_DECAY + VEC_DOMAINS, /* 4 columns */
};

/*
 * Drift over the window: per DNA row the steps, the late steps and the sum of each domain's
 * change, over the latest steps at or after $2 (the window's start). $1: the rows' ids; $3: steps
 * summed at most per row.
 */
static const char sql_drift[] =
	"SELECT r.id::text, count(s.late), count(*) FILTER (WHERE s.late),"
	" coalesce(sum(s.delta_cultural::float8), 0), coalesce(sum(s.delta_behavioral::float8), 0),"
	" coalesce(sum(s.delta_economic::float8), 0), coalesce(sum(s.delta_spatial::float8), 0)"
	" FROM unnest($1::uuid[]) AS r(id) LEFT JOIN LATERAL (SELECT d.late, d.delta_cultural, d.delta_behavioral,"
	"   d.delta_economic, d.delta_spatial FROM dna_evolution d WHERE d.mediaid_id = r.id"
	"   AND d.event_time >= $2::timestamptz ORDER BY d.event_time DESC LIMIT $3::int) s ON true"
	" GROUP BY r.id";
enum { DRIFT_ROW, DRIFT_STEPS, DRIFT_LATE, DRIFT_SUM /* 4 columns */ };

/*
 * The plotted steps of one DNA row: the latest $3 at or after $2, oldest first. $1: the row's id.
 */
static const char sql_plot_steps[] =
	"SELECT extract(epoch FROM s.event_time)::float8::text, s.late::text, s.delta_cultural::float8::text,"
	" s.delta_behavioral::float8::text, s.delta_economic::float8::text, s.delta_spatial::float8::text"
	" FROM (SELECT d.id, d.event_time, d.late, d.delta_cultural, d.delta_behavioral, d.delta_economic,"
	"   d.delta_spatial FROM dna_evolution d WHERE d.mediaid_id = $1::uuid AND d.event_time >= $2::timestamptz"
	"   ORDER BY d.event_time DESC, d.id DESC LIMIT $3::int) s ORDER BY s.event_time, s.id";
enum { PLOT_TIME, PLOT_LATE, PLOT_DELTA /* 4 columns */ };

/* What the queries share: the connection, the user, the window, the report being built. */
struct inspection {
	PGconn *conn;
	const struct inspect_options *options;
	enum vec_format format;
	char user_id[37];
	char since[40];
	char limit[24];
	char *row_ids; /* the DNA rows' ids as a uuid[] literal */
	cJSON *report;
	cJSON *dna_rows; /* the report's "media_ids" array */
	struct db_error error;
};

static const char *value_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static void add_string_or_null(cJSON *object, const char *key, const char *text)
{
	if (text)
		cJSON_AddStringToObject(object, key, text);
	else
		cJSON_AddNullToObject(object, key);
}

/* A number from its text; null for SQL NULL, NaN or infinity (JSON has no such numbers). */
static void add_number_or_null(cJSON *object, const char *key, const char *text)
{
	double value = text ? strtod(text, NULL) : (double)NAN;

	if (isfinite(value))
		cJSON_AddNumberToObject(object, key, value);
	else
		cJSON_AddNullToObject(object, key);
}

/* {"cultural": ..., "behavioral": ..., ...} from four columns starting at first. */
static void add_domains(cJSON *object, const char *key, const PGresult *res, int row, int first)
{
	cJSON *domains = cJSON_AddObjectToObject(object, key);

	for (int d = 0; d < VEC_DOMAINS; d++)
		add_number_or_null(domains, vec_domain_names[d], value_or_null(res, row, first + d));
}

static PGresult *query(struct inspection *in, const char *what, const char *sql, int nparams,
		       const char *const *values, int result_format)
{
	PGresult *res = db_query(in->conn, sql, nparams, values, NULL, NULL, result_format, &in->error);

	if (!res)
		db_error_prefix(&in->error, "%s", what);
	return res;
}

/* The DNA state of one row: NULL, invalid (and why, from the codec) or its per-domain norms. */
static void add_dna_state(struct inspection *in, cJSON *row, const PGresult *res, int i, float *v)
{
	cJSON *dna = cJSON_AddObjectToObject(row, "dna"), *object;
	char reason[200];
	double norms[VEC_DOMAINS];

	if (PQgetisnull(res, i, ROW_EMBEDDING)) {
		cJSON_AddStringToObject(dna, "state", "null");
		cJSON_AddNullToObject(dna, "reason");
		cJSON_AddNullToObject(dna, "norms");
		return;
	}
	if (vec_decode(in->format, (const unsigned char *)PQgetvalue(res, i, ROW_EMBEDDING),
		       (size_t)PQgetlength(res, i, ROW_EMBEDDING), v, VEC_DIM, reason, sizeof(reason)) < 0) {
		cJSON_AddStringToObject(dna, "state", "invalid");
		cJSON_AddStringToObject(dna, "reason", reason);
		cJSON_AddNullToObject(dna, "norms");
		return;
	}
	cJSON_AddStringToObject(dna, "state", "ok");
	cJSON_AddNullToObject(dna, "reason");
	vec_domain_norms(v, norms);
	object = cJSON_AddObjectToObject(dna, "norms");
	for (int d = 0; d < VEC_DOMAINS; d++)
		cJSON_AddNumberToObject(object, vec_domain_names[d], norms[d]);
}

static int gather_dna_rows(struct inspection *in)
{
	char most[24];
	const char *values[2] = {in->user_id, most};
	PGresult *res;
	float *v = vec_create(VEC_DIM);
	size_t literal = 3;
	int n;

	/* One more than shown, to tell whether there were more. */
	snprintf(most, sizeof(most), "%d", INSPECT_MAX_DNA_ROWS + 1);
	res = v ? query(in, "media_ids", sql_dna_rows, 2, values, 1) : NULL;
	if (!res) {
		if (!v)
			db_error_set(&in->error, NULL, "out of memory");
		vec_free(v);
		return -1;
	}
	n = PQntuples(res) > INSPECT_MAX_DNA_ROWS ? INSPECT_MAX_DNA_ROWS : PQntuples(res);
	in->dna_rows = cJSON_AddArrayToObject(in->report, "media_ids");
	in->row_ids = malloc(literal + (size_t)n * 37);
	if (!in->row_ids) {
		db_error_set(&in->error, NULL, "out of memory");
		PQclear(res);
		vec_free(v);
		return -1;
	}
	strcpy(in->row_ids, "{");
	for (int i = 0; i < n; i++) {
		cJSON *row = cJSON_CreateObject();

		cJSON_AddItemToArray(in->dna_rows, row);
		cJSON_AddStringToObject(row, "id", PQgetvalue(res, i, ROW_ID));
		add_string_or_null(row, "role", value_or_null(res, i, ROW_ROLE));
		add_number_or_null(row, "version", value_or_null(res, i, ROW_VERSION));
		if (PQgetisnull(res, i, ROW_IS_ACTIVE))
			cJSON_AddNullToObject(row, "is_active");
		else
			cJSON_AddBoolToObject(row, "is_active", strcmp(PQgetvalue(res, i, ROW_IS_ACTIVE), "true") == 0);
		add_string_or_null(row, "dna_clock", value_or_null(res, i, ROW_DNA_CLOCK));
		add_string_or_null(row, "updated_at", value_or_null(res, i, ROW_UPDATED_AT));
		add_dna_state(in, row, res, i, v);
		cJSON_AddArrayToObject(row, "evolution");
		if (i)
			strcat(in->row_ids, ",");
		strcat(in->row_ids, PQgetvalue(res, i, ROW_ID));
	}
	strcat(in->row_ids, "}");
	cJSON_AddBoolToObject(in->report, "media_ids_complete", PQntuples(res) <= INSPECT_MAX_DNA_ROWS);
	PQclear(res);
	vec_free(v);
	return 0;
}

static int gather_entries(struct inspection *in)
{
	char most[24];
	const char *count_values[2] = {in->user_id, most};
	const char *latest_values[2] = {in->user_id, in->limit};
	cJSON *entries = cJSON_AddObjectToObject(in->report, "entries"), *counts, *latest;
	static const char *const count_names[] = {"due", "retrying", "dead", "processed", "total"};
	PGresult *res;

	snprintf(most, sizeof(most), "%d", INSPECT_MAX_COUNTED);
	res = query(in, "entry counts", sql_entry_counts, 2, count_values, 0);
	if (!res)
		return -1;
	counts = cJSON_AddObjectToObject(entries, "counts");
	for (int c = COUNT_DUE; c <= COUNT_TOTAL; c++)
		add_number_or_null(counts, count_names[c], PQgetvalue(res, 0, c));
	cJSON_AddBoolToObject(entries, "counts_complete", strtol(PQgetvalue(res, 0, COUNT_TOTAL), NULL, 10) < INSPECT_MAX_COUNTED);
	PQclear(res);

	res = query(in, "latest entries", sql_latest_entries, 2, latest_values, 0);
	if (!res)
		return -1;
	latest = cJSON_AddArrayToObject(entries, "latest");
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *entry = cJSON_CreateObject();
		const char *systems = value_or_null(res, i, ENTRY_SYSTEMS);
		cJSON *parsed = systems ? cJSON_Parse(systems) : NULL;

		cJSON_AddItemToArray(latest, entry);
		cJSON_AddStringToObject(entry, "id", PQgetvalue(res, i, ENTRY_ID));
		add_string_or_null(entry, "timestamp", value_or_null(res, i, ENTRY_TIME));
		add_string_or_null(entry, "event_type", value_or_null(res, i, ENTRY_EVENT_TYPE));
		cJSON_AddItemToObject(entry, "systems", parsed && cJSON_IsArray(parsed) ? parsed : cJSON_CreateArray());
		if (parsed && !cJSON_IsArray(parsed))
			cJSON_Delete(parsed);
		cJSON_AddStringToObject(entry, "state", PQgetvalue(res, i, ENTRY_STATE));
		add_number_or_null(entry, "attempts", value_or_null(res, i, ENTRY_ATTEMPTS));
		add_string_or_null(entry, "last_error", value_or_null(res, i, ENTRY_LAST_ERROR));
	}
	PQclear(res);
	return 0;
}

/* The report's DNA row with this id (a row of the media_ids array), or NULL. */
static cJSON *dna_row_by_id(const struct inspection *in, const char *id)
{
	cJSON *row;

	cJSON_ArrayForEach(row, in->dna_rows)
	{
		if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(row, "id")), id) == 0)
			return row;
	}
	return NULL;
}

static int gather_evolution(struct inspection *in)
{
	char most[24];
	const char *step_values[2] = {in->row_ids, in->limit};
	const char *drift_values[3] = {in->row_ids, in->since, most};
	PGresult *res;

	res = query(in, "dna_evolution", sql_latest_steps, 2, step_values, 0);
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *row = dna_row_by_id(in, PQgetvalue(res, i, STEP_ROW));
		cJSON *step;

		if (!row)
			continue;
		step = cJSON_CreateObject();
		cJSON_AddItemToArray(cJSON_GetObjectItem(row, "evolution"), step);
		cJSON_AddStringToObject(step, "entry_id", PQgetvalue(res, i, STEP_ENTRY));
		cJSON_AddStringToObject(step, "event_type", PQgetvalue(res, i, STEP_EVENT_TYPE));
		cJSON_AddStringToObject(step, "event_time", PQgetvalue(res, i, STEP_TIME));
		add_string_or_null(step, "target_type", value_or_null(res, i, STEP_TARGET_TYPE));
		add_string_or_null(step, "target_id", value_or_null(res, i, STEP_TARGET_ID));
		add_number_or_null(step, "alpha", PQgetvalue(res, i, STEP_ALPHA));
		cJSON_AddBoolToObject(step, "late", strcmp(PQgetvalue(res, i, STEP_LATE), "true") == 0);
		add_domains(step, "decay", res, i, STEP_DECAY);
		add_domains(step, "change", res, i, STEP_DELTA);
	}
	PQclear(res);

	snprintf(most, sizeof(most), "%d", INSPECT_MAX_DRIFT_STEPS);
	res = query(in, "drift", sql_drift, 3, drift_values, 0);
	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		cJSON *row = dna_row_by_id(in, PQgetvalue(res, i, DRIFT_ROW)), *drift;
		long steps = strtol(PQgetvalue(res, i, DRIFT_STEPS), NULL, 10);

		if (!row)
			continue;
		drift = cJSON_AddObjectToObject(row, "drift");

		add_number_or_null(drift, "steps", PQgetvalue(res, i, DRIFT_STEPS));
		add_number_or_null(drift, "late_steps", PQgetvalue(res, i, DRIFT_LATE));
		cJSON_AddBoolToObject(drift, "complete", steps < INSPECT_MAX_DRIFT_STEPS);
		add_domains(drift, "change", res, i, DRIFT_SUM);
	}
	PQclear(res);
	return 0;
}

/*
 * The DNA row to plot: the one with --role; without it, the user's only row or its fan row (the
 * row the daemon applies entries to, SPEC 3). NULL with a message on stderr when there is none.
 */
static const cJSON *plot_row(const struct inspection *in)
{
	const cJSON *row, *fan = NULL;
	const char *role = in->options->role;

	cJSON_ArrayForEach(row, in->dna_rows)
	{
		const char *row_role = cJSON_GetStringValue(cJSON_GetObjectItem(row, "role"));

		if (role && row_role && strcmp(row_role, role) == 0)
			return row;
		if (!role && row_role && strcmp(row_role, "fan") == 0)
			fan = row;
	}
	if (!role && cJSON_GetArraySize(in->dna_rows) == 1)
		return cJSON_GetArrayItem(in->dna_rows, 0);
	if (fan)
		return fan;
	if (role) {
		char shown[40];
		inspect_printable(role, shown, sizeof(shown));
		fprintf(stderr, "passportd: inspect: --plot: the user has no DNA row with role '%s'\n", shown);
	} else {
		fprintf(stderr, "passportd: inspect: --plot: the user has %s; choose one with --role\n",
			cJSON_GetArraySize(in->dna_rows) ? "several DNA rows and no fan row" : "no DNA row");
	}
	return NULL;
}

/* Read the row's steps in the window, draw them, and describe the plot in the report's "plot". */
static int make_plot(struct inspection *in, enum plot_format format)
{
	const cJSON *row = plot_row(in);
	char most[24], title[160], err[256];
	const char *values[3] = {NULL, in->since, most};
	struct plot_point *points;
	struct plot_drawn drawn;
	PGresult *res;
	cJSON *plot, *series;
	int n, skip;

	if (!row)
		return -1;
	values[0] = cJSON_GetStringValue(cJSON_GetObjectItem(row, "id"));
	/* One more than drawn, to tell whether the window held more (the oldest is then left out). */
	snprintf(most, sizeof(most), "%d", INSPECT_MAX_PLOT_POINTS + 1);
	res = query(in, "plot", sql_plot_steps, 3, values, 0);
	if (!res) {
		fprintf(stderr, "passportd: inspect: %s\n", in->error.message);
		return -1;
	}
	skip = PQntuples(res) > INSPECT_MAX_PLOT_POINTS ? 1 : 0;
	n = PQntuples(res) - skip;
	points = calloc((size_t)(n > 0 ? n : 1), sizeof(*points));
	if (!points) {
		fprintf(stderr, "passportd: inspect: out of memory\n");
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		int r = i + skip;

		points[i].time = strtod(PQgetvalue(res, r, PLOT_TIME), NULL);
		points[i].late = strcmp(PQgetvalue(res, r, PLOT_LATE), "true") == 0;
		for (int d = 0; d < VEC_DOMAINS; d++)
			points[i].change[d] = strtod(PQgetvalue(res, r, PLOT_DELTA + d), NULL);
	}
	PQclear(res);
	snprintf(title, sizeof(title), "DNA change of user %s (%s row) since %.10s", in->user_id,
		 cJSON_GetStringValue(cJSON_GetObjectItem(row, "role")), in->since);
	if (plot_write(in->options->plot, format, title, points, n, &drawn, err, sizeof(err)) < 0) {
		fprintf(stderr, "passportd: inspect: %s: %s\n", in->options->plot, err);
		free(points);
		return -1;
	}
	free(points);

	plot = cJSON_AddObjectToObject(in->report, "plot");
	cJSON_AddStringToObject(plot, "file", in->options->plot);
	cJSON_AddStringToObject(plot, "format", format == PLOT_FORMAT_SVG ? "svg" : "png");
	cJSON_AddNumberToObject(plot, "width", drawn.width);
	cJSON_AddNumberToObject(plot, "height", drawn.height);
	cJSON_AddStringToObject(plot, "media_id", values[0]);
	cJSON_AddNumberToObject(plot, "points", drawn.points);
	cJSON_AddNumberToObject(plot, "late_points", drawn.late_points);
	cJSON_AddNumberToObject(plot, "nonfinite_values", drawn.nonfinite_values);
	cJSON_AddBoolToObject(plot, "complete", skip == 0);
	if (n > 0) {
		cJSON_AddNumberToObject(plot, "first_time", drawn.first_time);
		cJSON_AddNumberToObject(plot, "last_time", drawn.last_time);
	} else {
		cJSON_AddNullToObject(plot, "first_time");
		cJSON_AddNullToObject(plot, "last_time");
	}
	cJSON_AddNumberToObject(plot, "y_max", drawn.y_max);
	series = cJSON_AddObjectToObject(plot, "series");
	for (int d = 0; d < VEC_DOMAINS; d++) {
		cJSON *line = cJSON_AddObjectToObject(series, vec_domain_names[d]);
		cJSON_AddNumberToObject(line, "total", drawn.total[d]);
		cJSON_AddNumberToObject(line, "max_step", drawn.max_step[d]);
	}
	return 0;
}

/* Options that can be refused before connecting. Returns 0 or -1 (message printed). */
static int check_options(const struct inspect_options *options, enum plot_format *format)
{
	if (!options->user || !options->user[0]) {
		fprintf(stderr, "passportd: inspect needs a USER: a user id or an email\n");
		return -1;
	}
	if (options->limit < 1 || options->limit > INSPECT_MAX_LIMIT) {
		fprintf(stderr, "passportd: inspect: --limit must be between 1 and %d\n", INSPECT_MAX_LIMIT);
		return -1;
	}
	if (options->plot && plot_format_from_path(options->plot, format) < 0) {
		fprintf(stderr, "passportd: inspect: --plot: the file name must end in .svg or .png\n");
		return -1;
	}
	return 0;
}

/* Open the read-only transaction and learn the schema; -1 with in->error set. */
static int begin(struct inspection *in, const struct config *config)
{
	struct batch_config batch;
	struct processor *processor;

	/*
	 * Plain SELECTs take only ACCESS SHARE locks, which the daemon's work never conflicts with;
	 * the short lock_timeout is for DDL (a migration) holding a table: give up, do not queue.
	 */
	if (db_command(in->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &in->error) < 0 ||
	    db_command(in->conn, "SET LOCAL statement_timeout = '30s'; SET LOCAL lock_timeout = '2s'", &in->error) < 0)
		return -1;
	/* The processor's start-up checks: the schema is there, and which codec the DNA column needs. */
	config_to_batch(config, &batch);
	processor = processor_create(in->conn, &batch, &in->error);
	if (!processor)
		return -1;
	in->format = processor_vector_format(processor);
	processor_destroy(processor);
	return 0;
}

static int gather(struct inspection *in)
{
	const char *since_values[1] = {in->options->since};
	PGresult *res = query(in, "--since", sql_window, 1, since_values, 0);

	if (!res)
		return -1;
	snprintf(in->since, sizeof(in->since), "%s", PQgetvalue(res, 0, WINDOW_SINCE));
	cJSON_AddStringToObject(in->report, "generated_at", PQgetvalue(res, 0, WINDOW_NOW));
	PQclear(res);
	cJSON_AddStringToObject(in->report, "since", in->since);
	cJSON_AddNumberToObject(in->report, "limit", (double)in->options->limit);
	cJSON_AddStringToObject(in->report, "vector_type", in->format == VEC_FORMAT_PGVECTOR ? "vector" : "real[]");
	if (gather_dna_rows(in) < 0 || gather_entries(in) < 0 || gather_evolution(in) < 0)
		return -1;
	return 0;
}

static void print_report(const struct inspection *in)
{
	if (in->options->json) {
		char *text = cJSON_Print(in->report);
		if (text)
			printf("%s\n", text);
		cJSON_free(text);
	} else {
		inspect_print_text(in->report, stdout);
	}
}

int command_inspect(const struct config *config, const struct inspect_options *options)
{
	struct inspection in = {.options = options};
	enum plot_format format = PLOT_FORMAT_PNG;
	int rc = 1, found;

	if (check_options(options, &format) < 0)
		return 1;
	snprintf(in.limit, sizeof(in.limit), "%ld", options->limit);
	in.conn = db_connect(config->dsn, "passportd inspect", &in.error);
	if (!in.conn) {
		fprintf(stderr, "passportd: cannot connect to the database: %s\n", in.error.message);
		return 1;
	}
	in.report = cJSON_CreateObject();
	cJSON_AddNumberToObject(in.report, "inspect_version", INSPECT_JSON_VERSION);
	cJSON_AddStringToObject(in.report, "input", options->user);
	if (begin(&in, config) < 0) {
		fprintf(stderr, "passportd: inspect: %s\n", in.error.message);
		goto done;
	}
	found = inspect_resolve_user(in.conn, options->user, in.report, in.user_id);
	if (found < 0)
		goto done;
	if (found == 0) {
		cJSON_AddNullToObject(in.report, "user_id");
		print_report(&in);
		rc = INSPECT_EXIT_NO_SINGLE_USER;
		goto done;
	}
	cJSON_AddStringToObject(in.report, "user_id", in.user_id);
	if (gather(&in) < 0) {
		fprintf(stderr, "passportd: inspect: %s\n", in.error.message);
		goto done;
	}
	rc = 0;
	if (options->plot && make_plot(&in, format) < 0)
		rc = 1;
	if (!cJSON_GetObjectItem(in.report, "plot"))
		cJSON_AddNullToObject(in.report, "plot");
	print_report(&in);
done:
	db_rollback(in.conn);
	cJSON_Delete(in.report);
	free(in.row_ids);
	PQfinish(in.conn);
	return rc;
}
