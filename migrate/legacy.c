/* legacy: find the legacy logs and build the SQL that reads them, whichever layout they have. */
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

void text_buffer_append(struct text_buffer *buffer, const char *text)
{
	text_buffer_printf(buffer, "%s", text);
}

void text_buffer_printf(struct text_buffer *buffer, const char *fmt, ...)
{
	va_list args;
	int needed;

	if (buffer->failed)
		return;
	va_start(args, fmt);
	needed = vsnprintf(NULL, 0, fmt, args);
	va_end(args);
	if (needed < 0) {
		buffer->failed = true;
		return;
	}
	if (buffer->length + (size_t)needed + 1 > buffer->capacity) {
		size_t capacity = buffer->capacity ? buffer->capacity : 1024;
		char *data;

		while (buffer->length + (size_t)needed + 1 > capacity)
			capacity *= 2;
		data = realloc(buffer->data, capacity);
		if (!data) {
			buffer->failed = true;
			return;
		}
		buffer->data = data;
		buffer->capacity = capacity;
	}
	va_start(args, fmt);
	vsnprintf(buffer->data + buffer->length, buffer->capacity - buffer->length, fmt, args);
	va_end(args);
	buffer->length += (size_t)needed;
}

char *text_buffer_take(struct text_buffer *buffer)
{
	char *data = buffer->failed ? NULL : buffer->data;

	if (buffer->failed)
		free(buffer->data);
	else if (!data)
		data = calloc(1, 1);
	memset(buffer, 0, sizeof *buffer);
	return data;
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
	struct text_buffer sql = {0};

	if (!type)
		return NULL;
	if (strcmp(type, "timestamp with time zone") == 0)
		text_buffer_printf(&sql, "legacy.\"%s\"", name);
	else if (strcmp(type, "timestamp without time zone") == 0)
		text_buffer_printf(&sql, "(legacy.\"%s\" AT TIME ZONE 'UTC')", name);
	else if (strcmp(type, "date") == 0)
		text_buffer_printf(&sql, "(legacy.\"%s\"::timestamp AT TIME ZONE 'UTC')", name);
	else
		return NULL;
	return text_buffer_take(&sql);
}

/* The first present time column of names[], coalesced with the later ones. */
static char *event_time_expression(const struct column_list *columns, const char *const names[], size_t count)
{
	struct text_buffer sql = {0};
	size_t found = 0;

	for (size_t i = 0; i < count; i++) {
		char *expr = time_column(columns, names[i]);

		if (!expr)
			continue;
		text_buffer_printf(&sql, "%s%s", found ? ", " : "", expr);
		free(expr);
		found++;
	}
	if (found == 0) {
		free(text_buffer_take(&sql));
		return NULL;
	}
	if (found > 1) {
		struct text_buffer wrapped = {0};
		char *inner = text_buffer_take(&sql);

		text_buffer_printf(&wrapped, "coalesce(%s)", inner ? inner : "");
		free(inner);
		return text_buffer_take(&wrapped);
	}
	return text_buffer_take(&sql);
}

/* "'key', legacy.column" for a payload key, or "'key', NULL" when the column is absent. */
static void payload_key(struct text_buffer *sql, const struct column_list *columns, const char *key,
			const char *column, bool first)
{
	text_buffer_printf(sql, "%s'%s', %s%s", first ? "" : ", ", key,
			   column_type(columns, column) ? "legacy." : "NULL",
			   column_type(columns, column) ? column : "");
}

/*
 * Payload keys (SPEC §6, "the seed's keys"): listening_history keeps content_id, content_title,
 * content_artist, play_duration_seconds, progress_percentage and session_id; media_engagement_log
 * keeps content_id, external_content_id (the canonical layout only: the production one has no
 * such column, and inventing a null key would suggest it had), metadata and session_id, plus
 * user_agent and ip_address only when asked for. A key whose column is missing is kept as null
 * so every backfilled entry of a source has the same keys.
 */
static int describe_columns(struct legacy_table *table, const struct column_list *columns,
			    bool include_client_info)
{
	static const char *const history_times[] = {"created_at", "updated_at"};
	static const char *const engagement_times[] = {"timestamp", "created_at"};
	struct text_buffer payload = {0};
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
	table->has_client_info = column_type(columns, "user_agent") || column_type(columns, "ip_address");

	text_buffer_append(&payload, "jsonb_build_object(");
	if (table->source == LEGACY_LISTENING_HISTORY) {
		snprintf(table->layout, sizeof table->layout, "canonical");
		table->time_expr = event_time_expression(columns, history_times, 2);
		payload_key(&payload, columns, "content_id", "content_id", true);
		payload_key(&payload, columns, "content_title", "content_title", false);
		payload_key(&payload, columns, "content_artist", "content_artist", false);
		payload_key(&payload, columns, "play_duration_seconds", "play_duration_seconds", false);
		payload_key(&payload, columns, "progress_percentage", "progress_percentage", false);
		payload_key(&payload, columns, "session_id", "session_id", false);
	} else {
		bool canonical = column_type(columns, "external_content_id") != NULL;

		snprintf(table->layout, sizeof table->layout, "%s", canonical ? "canonical" : "production");
		table->time_expr = event_time_expression(columns, engagement_times, 2);
		payload_key(&payload, columns, "content_id", "content_id", true);
		if (canonical)
			payload_key(&payload, columns, "external_content_id", "external_content_id", false);
		payload_key(&payload, columns, "metadata", "metadata", false);
		payload_key(&payload, columns, "session_id", "session_id", false);
		if (include_client_info) {
			if (column_type(columns, "user_agent"))
				payload_key(&payload, columns, "user_agent", "user_agent", false);
			if (column_type(columns, "ip_address"))
				payload_key(&payload, columns, "ip_address", "ip_address", false);
		}
	}
	text_buffer_append(&payload, ")");
	table->payload_expr = text_buffer_take(&payload);

	if (!table->time_expr) {
		snprintf(table->problem, sizeof table->problem, "it has no usable time column (%s)",
			 table->source == LEGACY_LISTENING_HISTORY ? "created_at" : "\"timestamp\"");
		return 0;
	}
	if (!table->user_expr || !table->type_expr || !table->session_expr || !table->payload_expr)
		return -1;
	return 0;
}

int legacy_table_inspect(PGconn *conn, enum legacy_source source, bool include_client_info,
			 struct legacy_table *table, char *err, size_t errlen)
{
	const char *params[1] = {legacy_source_name(source)};
	struct column_list columns = {NULL};
	PGresult *result;
	char message[1024];
	int rc;

	memset(table, 0, sizeof *table);
	table->source = source;
	snprintf(table->layout, sizeof table->layout, "none");

	/* Tables, partitioned tables and views all read alike; the search path decides the schema. */
	result = PQexecParams(conn,
			      "SELECT format('%I.%I', n.nspname, c.relname)"
			      "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
			      " WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
			      1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(result) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "looking up %s: %s", params[0],
			 migrate_result_error(result, message, sizeof message));
		PQclear(result);
		return -1;
	}
	if (PQntuples(result) == 0) {
		PQclear(result);
		return 0;
	}
	table->exists = true;
	snprintf(table->relation, sizeof table->relation, "%s", PQgetvalue(result, 0, 0));
	PQclear(result);

	columns.result = PQexecParams(conn,
				      "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)"
				      "  FROM pg_attribute a"
				      " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped"
				      " ORDER BY a.attnum",
				      1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(columns.result) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "reading the columns of %s: %s", params[0],
			 migrate_result_error(columns.result, message, sizeof message));
		PQclear(columns.result);
		return -1;
	}
	rc = describe_columns(table, &columns, include_client_info);
	PQclear(columns.result);
	if (rc < 0)
		snprintf(err, errlen, "describing %s: out of memory", params[0]);
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
