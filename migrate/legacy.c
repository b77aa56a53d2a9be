/* legacy: the table of legacy layouts, and the SQL that reads a legacy log in whichever layout it has. */
#include "legacy.h"
#include "migrate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const source_names[LEGACY_SOURCE_COUNT] = {
	[LEGACY_LISTENING_HISTORY] = "listening_history",
	[LEGACY_MEDIA_ENGAGEMENT_LOG] = "media_engagement_log",
};

static const struct legacy_type_mapping listening_history_types[] = {
	{"played", "player.track_played"},
	{"completed", "player.track_completed"},
	{"skipped", "player.track_skipped"},
	{"paused", "player.track_paused"},
	{"resumed", "player.track_resumed"},
	{"added", "player.queue_updated"},
	{"added_to_queue", "player.queue_updated"},
	{"downloaded", "player.track_downloaded"},
};

static const struct legacy_type_mapping media_engagement_log_types[] = {
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

#define TYPE_MAP(map) .type_map = (map), .type_map_count = sizeof(map) / sizeof((map)[0])

/*
 * Every known layout (SPEC §2.3 and §6). Why the event times differ: listening_history's event
 * is its row's creation; media_engagement_log records it in "timestamp" (naive UTC in the
 * production layout, read as such by time_column), created_at being only the insertion.
 *
 * The fallback prefixes: listening_history follows the seed's rule (x -> player.track_x);
 * media_engagement_log's other types become legacy.x, which routes nowhere.
 *
 * The two media_engagement_log layouts differ in external_content_id: the production (older)
 * one has no such column, and inventing a null key would suggest it had. user_agent and
 * ip_address are copied only when asked for (--include-client-info).
 */
static const struct legacy_layout legacy_layouts[] = {
	{
		.source = LEGACY_LISTENING_HISTORY,
		.name = "canonical",
		.detection_column = NULL,
		.time_columns = {"created_at", "updated_at"},
		.time_column_shown = "created_at",
		.payload_keys = {{"content_id", "content_id"},
				 {"content_title", "content_title"},
				 {"content_artist", "content_artist"},
				 {"play_duration_seconds", "play_duration_seconds"},
				 {"progress_percentage", "progress_percentage"},
				 {"session_id", "session_id"}},
		.client_info_keys = {{NULL, NULL}},
		TYPE_MAP(listening_history_types),
		.fallback_prefix = "player.track_",
	},
	{
		.source = LEGACY_MEDIA_ENGAGEMENT_LOG,
		.name = "canonical",
		.detection_column = "external_content_id",
		.time_columns = {"timestamp", "created_at"},
		.time_column_shown = "\"timestamp\"",
		.payload_keys = {{"content_id", "content_id"},
				 {"external_content_id", "external_content_id"},
				 {"metadata", "metadata"},
				 {"session_id", "session_id"}},
		.client_info_keys = {{"user_agent", "user_agent"}, {"ip_address", "ip_address"}},
		TYPE_MAP(media_engagement_log_types),
		.fallback_prefix = "legacy.",
	},
	{
		.source = LEGACY_MEDIA_ENGAGEMENT_LOG,
		.name = "production",
		.detection_column = NULL,
		.time_columns = {"timestamp", "created_at"},
		.time_column_shown = "\"timestamp\"",
		.payload_keys = {{"content_id", "content_id"}, {"metadata", "metadata"}, {"session_id", "session_id"}},
		.client_info_keys = {{"user_agent", "user_agent"}, {"ip_address", "ip_address"}},
		TYPE_MAP(media_engagement_log_types),
		.fallback_prefix = "legacy.",
	},
};

const char *legacy_source_name(enum legacy_source source)
{
	return (unsigned)source < LEGACY_SOURCE_COUNT ? source_names[source] : "unknown";
}

unsigned legacy_sources_parse(const char *text)
{
	if (strcmp(text, "all") == 0)
		return (1u << LEGACY_SOURCE_COUNT) - 1;
	for (unsigned i = 0; i < LEGACY_SOURCE_COUNT; i++)
		if (strcmp(text, source_names[i]) == 0)
			return 1u << i;
	return 0;
}

const char *format_count(long long count, char *buf, size_t size)
{
	char digits[32];
	size_t len, out = 0;
	int negative = count < 0;
	unsigned long long magnitude = negative ? 0ull - (unsigned long long)count : (unsigned long long)count;

	snprintf(digits, sizeof digits, "%llu", magnitude);
	len = strlen(digits);
	/* 20 digits, 6 separators, a sign and the NUL fit in 28 bytes. */
	if (size < 28) {
		/* Callers pass 28 bytes or more; anything smaller gets an empty string, not a cut number. */
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	if (negative)
		buf[out++] = '-';
	for (size_t i = 0; i < len; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[out++] = ',';
		buf[out++] = digits[i];
	}
	buf[out] = '\0';
	return buf;
}

double monotonic_seconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* The columns of one table: name and format_type, from one catalog query. */
struct column_list {
	PGresult *result;
};

/* The type of column name, or NULL when the table has no such column. */
static const char *column_type(const struct column_list *columns, const char *name)
{
	for (int row = 0; row < PQntuples(columns->result); row++)
		if (strcmp(PQgetvalue(columns->result, row, 0), name) == 0)
			return PQgetvalue(columns->result, row, 1);
	return NULL;
}

static bool is_text_type(const char *type)
{
	return strcmp(type, "text") == 0 || strncmp(type, "character varying", 17) == 0 ||
	       strncmp(type, "character", 9) == 0;
}

/*
 * A column as timestamptz, or NULL when it is absent or not a time. Why "AT TIME ZONE 'UTC'":
 * the production media_engagement_log stores UTC wall-clock times in a naive timestamp column;
 * reading them in the session time zone would shift every event by the server's offset.
 */
static char *time_column(const struct column_list *columns, const char *name)
{
	const char *type = column_type(columns, name);
	struct strbuf sql = {0};

	if (!type)
		return NULL;
	if (strcmp(type, "timestamp with time zone") == 0)
		strbuf_printf(&sql, "legacy.\"%s\"", name);
	else if (strcmp(type, "timestamp without time zone") == 0)
		strbuf_printf(&sql, "(legacy.\"%s\" AT TIME ZONE 'UTC')", name);
	else if (strcmp(type, "date") == 0)
		strbuf_printf(&sql, "(legacy.\"%s\"::timestamp AT TIME ZONE 'UTC')", name);
	else
		return NULL;
	return strbuf_take(&sql);
}

/* The present time columns of names[] (up to its first NULL), coalesced in that order. */
static char *event_time_expression(const struct column_list *columns, const char *const names[LEGACY_MAX_TIME_COLUMNS])
{
	struct strbuf sql = {0};
	size_t found = 0;

	for (size_t i = 0; i < LEGACY_MAX_TIME_COLUMNS && names[i]; i++) {
		char *expr = time_column(columns, names[i]);

		if (!expr)
			continue;
		strbuf_printf(&sql, "%s%s", found ? ", " : "", expr);
		free(expr);
		found++;
	}
	if (found == 0) {
		free(strbuf_take(&sql));
		return NULL;
	}
	if (found > 1) {
		struct strbuf wrapped = {0};
		char *inner = strbuf_take(&sql);

		strbuf_printf(&wrapped, "coalesce(%s)", inner ? inner : "");
		free(inner);
		return strbuf_take(&wrapped);
	}
	return strbuf_take(&sql);
}

/* "'key', legacy.column" for a payload key, or "'key', NULL" when the column is absent. */
static void payload_key(struct strbuf *sql, const struct column_list *columns, const char *key,
			const char *column, bool first)
{
	strbuf_printf(sql, "%s'%s', %s%s", first ? "" : ", ", key,
			   column_type(columns, column) ? "legacy." : "NULL",
			   column_type(columns, column) ? column : "");
}

/* The layout of source that the table's columns identify (legacy_layouts[] order), or NULL. */
static const struct legacy_layout *detect_layout(enum legacy_source source, const struct column_list *columns)
{
	for (size_t i = 0; i < sizeof legacy_layouts / sizeof legacy_layouts[0]; i++) {
		const struct legacy_layout *layout = &legacy_layouts[i];

		if (layout->source != source)
			continue;
		if (!layout->detection_column || column_type(columns, layout->detection_column))
			return layout;
	}
	return NULL;
}

/*
 * "jsonb_build_object(...)" of the layout's payload keys (and client-info keys when asked for),
 * then legacy_event_type: the original type (type_expr). One call builds the whole payload; a
 * second object joined with || would cost a copy of every payload.
 */
static char *payload_expression(const struct legacy_layout *layout, const struct column_list *columns,
				bool include_client_info, const char *type_expr)
{
	struct strbuf payload = {0};
	bool first = true;

	strbuf_add_str(&payload, "jsonb_build_object(");
	for (size_t i = 0; i < LEGACY_MAX_PAYLOAD_KEYS && layout->payload_keys[i].key; i++) {
		const struct legacy_payload_key *k = &layout->payload_keys[i];

		payload_key(&payload, columns, k->key, k->column, first);
		first = false;
	}
	for (size_t i = 0; include_client_info && i < LEGACY_MAX_PAYLOAD_KEYS && layout->client_info_keys[i].key; i++) {
		const struct legacy_payload_key *k = &layout->client_info_keys[i];

		if (column_type(columns, k->column)) {
			payload_key(&payload, columns, k->key, k->column, first);
			first = false;
		}
	}
	strbuf_printf(&payload, "%s'legacy_event_type', %s)", first ? "" : ", ", type_expr);
	return strbuf_take(&payload);
}

/*
 * The columns every layout needs come first (a uuid id, a text event_type, a usable user_id);
 * only then is the layout decided, and its time and payload columns read.
 */
static int describe_columns(struct legacy_table *table, const struct column_list *columns,
			    bool include_client_info)
{
	const struct legacy_layout *layout;
	const char *user_type = column_type(columns, "user_id");
	const char *id_type = column_type(columns, "id");
	const char *event_type = column_type(columns, "event_type");

	/* The keyset cursor is the id: SPEC §2.3 gives both logs a uuid primary key. */
	if (!id_type || strcmp(id_type, "uuid") != 0) {
		snprintf(table->problem, sizeof table->problem, "it has no uuid id column%s%s",
			 id_type ? "; its id has type " : "", id_type ? id_type : "");
		return 0;
	}
	snprintf(table->id_type, sizeof table->id_type, "%s", id_type);
	if (!event_type || !is_text_type(event_type)) {
		snprintf(table->problem, sizeof table->problem, "it has no text event_type column");
		return 0;
	}
	table->type_expr = strdup("legacy.event_type::text");

	if (!user_type)
		table->user_expr = strdup("NULL::uuid");
	else if (strcmp(user_type, "uuid") == 0)
		table->user_expr = strdup("legacy.user_id");
	else if (is_text_type(user_type))
		/* A text user id that is not a UUID cannot name a user: the row is kept as anonymous. */
		table->user_expr = strdup("CASE WHEN legacy.user_id::text ~* "
					  "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' "
					  "THEN legacy.user_id::text::uuid END");
	else {
		snprintf(table->problem, sizeof table->problem, "its user_id column has type %s", user_type);
		return 0;
	}

	table->session_expr = strdup(column_type(columns, "session_id") ? "legacy.session_id::text" : "NULL::text");

	layout = detect_layout(table->source, columns);
	if (!layout) {
		snprintf(table->problem, sizeof table->problem, "its columns match none of the known layouts");
		return 0;
	}
	table->layout = layout;
	table->time_expr = event_time_expression(columns, layout->time_columns);
	table->payload_expr = table->type_expr ? payload_expression(layout, columns, include_client_info, table->type_expr)
					       : NULL;

	if (!table->time_expr) {
		snprintf(table->problem, sizeof table->problem, "it has no usable time column (%s)",
			 layout->time_column_shown);
		return 0;
	}
	if (!table->user_expr || !table->type_expr || !table->session_expr || !table->payload_expr)
		return -1;
	return 0;
}

const char *legacy_table_layout_name(const struct legacy_table *table)
{
	return table->layout ? table->layout->name : "none";
}

int legacy_table_inspect(PGconn *conn, enum legacy_source source, bool include_client_info,
			 struct legacy_table *table, struct db_error *error)
{
	const char *params[1] = {legacy_source_name(source)};
	struct column_list columns = {NULL};
	PGresult *result;
	int rc;

	memset(table, 0, sizeof *table);
	table->source = source;

	/* Tables, partitioned tables and views all read alike; the search path decides the schema. */
	result = db_query(conn,
			  "SELECT format('%I.%I', n.nspname, c.relname)"
			  "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
			  " WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
			  1, params, NULL, NULL, 0, error);
	if (!result) {
		db_error_prefix(error, "looking up %s", params[0]);
		return -1;
	}
	if (PQntuples(result) == 0) {
		PQclear(result);
		return 0;
	}
	table->exists = true;
	snprintf(table->relation, sizeof table->relation, "%s", PQgetvalue(result, 0, 0));
	PQclear(result);

	columns.result = db_query(conn,
				  "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)"
				  "  FROM pg_attribute a"
				  " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"
				  " ORDER BY a.attnum",
				  1, params, NULL, NULL, 0, error);
	if (!columns.result) {
		db_error_prefix(error, "reading the columns of %s", params[0]);
		return -1;
	}
	rc = describe_columns(table, &columns, include_client_info);
	PQclear(columns.result);
	if (rc < 0)
		db_error_set(error, NULL, "describing %s: out of memory", params[0]);
	return rc;
}

void legacy_table_finish(struct legacy_table *table)
{
	if (!table)
		return;
	free(table->user_expr);
	free(table->time_expr);
	free(table->type_expr);
	free(table->session_expr);
	free(table->payload_expr);
	table->user_expr = table->time_expr = table->type_expr = NULL;
	table->session_expr = table->payload_expr = NULL;
}
