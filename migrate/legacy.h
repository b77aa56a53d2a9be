/*
 * legacy: the legacy logs that backfill copies and verify checks. Each layout a log has been
 * seen in is one entry of a table (legacy.c): how to recognise it, where its event time is,
 * which columns its payload keeps, how its event types map. A third layout is one more entry.
 */
#ifndef PASSPORT_MIGRATE_LEGACY_H
#define PASSPORT_MIGRATE_LEGACY_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "db.h"
#include "strbuf.h"

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

#define LEGACY_MAX_TIME_COLUMNS 3
#define LEGACY_MAX_PAYLOAD_KEYS 8

/* A legacy event type with a canonical name (SPEC §6). */
struct legacy_type_mapping {
	const char *legacy_type;
	const char *event_type;
};

/* A key of the entry's payload and the legacy column it copies. */
struct legacy_payload_key {
	const char *key;
	const char *column;
};

/*
 * One layout of one legacy log. Every field is static data; the array fields end at their first
 * NULL (or NULL-keyed) element.
 */
struct legacy_layout {
	enum legacy_source source;
	const char *name; /* printed as "(<name> layout)" and in --json's "layout" */
	/*
	 * The column whose presence identifies this layout. The entries of a source are tried in
	 * table order; the first whose detection column the table has wins, and an entry without one
	 * (NULL) takes any table of its source that no earlier entry claimed.
	 */
	const char *detection_column;
	/* The event time: the first of these columns that is not NULL, in this order. */
	const char *time_columns[LEGACY_MAX_TIME_COLUMNS];
	/* How the problem "no usable time column" names the column it needs (quoted as in SQL). */
	const char *time_column_shown;
	/*
	 * The payload keys (SPEC §6, "the seed's keys"), in this order. A key whose column is
	 * missing is kept as null, so every backfilled entry of a layout has the same keys.
	 */
	struct legacy_payload_key payload_keys[LEGACY_MAX_PAYLOAD_KEYS];
	/* Added after them with --include-client-info, and only where the column exists. */
	struct legacy_payload_key client_info_keys[LEGACY_MAX_PAYLOAD_KEYS];
	/* The event types with a canonical name, type_map_count of them. */
	const struct legacy_type_mapping *type_map;
	size_t type_map_count;
	/*
	 * Any other type keeps its name under this prefix (reported as an unmapped type); a NULL or
	 * empty legacy type becomes legacy.unknown.
	 */
	const char *fallback_prefix;
};

/*
 * What a legacy table looks like in this database. Every SQL fragment is built from a fixed set
 * of expressions chosen by which columns exist and what their types are, never from data, and
 * reads the table under the alias "legacy". The fragments are heap strings owned by the struct.
 */
struct legacy_table {
	enum legacy_source source;
	bool exists;          /* false: no such table in the search path */
	char problem[256];    /* non-empty: it exists but cannot be read (a required column is missing) */
	/*
	 * The layout it has: decided once the columns every layout needs (a uuid id, a text
	 * event_type, a usable user_id) are there; NULL before (see legacy_table_layout_name).
	 */
	const struct legacy_layout *layout;
	char relation[300];   /* schema-qualified, quoted name, e.g. "public"."listening_history" */
	char id_type[64];     /* format_type of the id column, the keyset: always "uuid" when usable */

	char *user_expr;      /* uuid, NULL when the table has no user_id */
	char *time_expr;      /* timestamptz; naive timestamps read as UTC */
	char *type_expr;      /* text: the legacy event type */
	char *session_expr;   /* text, NULL when there is no session_id */
	char *payload_expr;   /* jsonb: the layout's payload keys and legacy_event_type (type_expr) */
};

/* The name of the table's layout, or "none" when no layout was decided (missing or unreadable). */
const char *legacy_table_layout_name(const struct legacy_table *table);

/*
 * Look the table of source up and describe it into table (which the caller then releases with
 * legacy_table_finish). include_client_info adds the layout's client-info keys to the payload
 * where the columns exist. Returns 0 when the description is complete (check table->exists and
 * table->problem), or -1 with error set (its message says what was being read) when the catalog
 * could not be read.
 */
int legacy_table_inspect(PGconn *conn, enum legacy_source source, bool include_client_info,
			 struct legacy_table *table, struct db_error *error);
void legacy_table_finish(struct legacy_table *table);

/* "1,234,567": count with thousands separators, into buf (at least 32 bytes). */
const char *format_count(long long count, char *buf, size_t size);

/* Seconds on the monotonic clock. */
double monotonic_seconds(void);

#endif
