/* legacy: the two legacy logs that backfill copies and verify checks, described by their columns. */
#ifndef PASSPORT_MIGRATE_LEGACY_H
#define PASSPORT_MIGRATE_LEGACY_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * The legacy sources, in the order `--source all` handles them. The name is both the table
 * name (looked up in the search path) and the value written to passport_entries.legacy_source.
 */
enum legacy_source {
	LEGACY_LISTENING_HISTORY = 0,
	LEGACY_MEDIA_ENGAGEMENT_LOG = 1,
	LEGACY_SOURCE_COUNT
};

const char *legacy_source_name(enum legacy_source source);

/* Parse "listening_history", "media_engagement_log" or "all" into a bitmask of (1 << source); 0 if unknown. */
unsigned legacy_sources_parse(const char *text);

/*
 * What a legacy table looks like in this database. Every SQL fragment is built from a fixed set
 * of expressions chosen by which columns exist and what their types are, never from data, and
 * reads the table under the alias "legacy". The fragments are heap strings owned by the struct.
 */
struct legacy_table {
	enum legacy_source source;
	bool exists;          /* false: no such table in the search path */
	char problem[256];    /* non-empty: it exists but cannot be read (a required column is missing) */
	char layout[16];      /* "canonical" or "production" (only media_engagement_log has two) */
	char relation[300];   /* schema-qualified, quoted name, e.g. "public"."listening_history" */
	char id_type[64];     /* format_type of the id column, the keyset: always "uuid" when usable */
	bool has_client_info; /* user_agent / ip_address columns exist */

	char *user_expr;      /* uuid, NULL when the table has no user_id */
	char *time_expr;      /* timestamptz; naive timestamps read as UTC */
	char *type_expr;      /* text: the legacy event type */
	char *session_expr;   /* text, NULL when there is no session_id */
	char *payload_expr;   /* jsonb: the seed's payload keys (without legacy_event_type) */
};

/*
 * Look the table of source up and describe it into table (which the caller then releases with
 * legacy_table_finish). include_client_info adds user_agent and ip_address to the payload where
 * the columns exist. Returns 0 when the description is complete (check table->exists and
 * table->problem), or -1 with a message in err when the catalog could not be read.
 */
int legacy_table_inspect(PGconn *conn, enum legacy_source source, bool include_client_info,
			 struct legacy_table *table, char *err, size_t errlen);
void legacy_table_finish(struct legacy_table *table);

/*
 * A growable NUL-terminated string for assembling SQL. An allocation failure is remembered and
 * reported by text_buffer_take, so callers can append without checking each step.
 */
struct text_buffer {
	char *data;
	size_t length;
	size_t capacity;
	bool failed;
};

void text_buffer_append(struct text_buffer *buffer, const char *text);
void text_buffer_printf(struct text_buffer *buffer, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The assembled string (the caller frees it), or NULL after an allocation failure. Resets buffer. */
char *text_buffer_take(struct text_buffer *buffer);

/* "1,234,567": count with thousands separators, into buf (at least 32 bytes). */
const char *format_count(long long count, char *buf, size_t size);

/* Seconds on the monotonic clock. */
double monotonic_seconds(void);

#endif
