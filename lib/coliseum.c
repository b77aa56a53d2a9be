/* coliseum: the metric of an entry, its coliseum_metrics row as batch write columns, and the INSERT that writes them. */
#include "coliseum.h"

#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "pipeline.h"

void coliseum_metric(const char *event_type, const struct payload_info *info, double *value, const char **unit)
{
	*unit = NULL;
	if (info->amount_state == AMOUNT_VALID) {
		*value = (double)info->amount_cents;
		*unit = "cents";
	} else if (info->has_weight && strstr(event_type, "vote") != NULL) {
		*value = info->weight;
	} else if (info->has_value) {
		*value = info->value;
	} else {
		*value = 1.0;
	}
}

void coliseum_columns_init(struct array_param columns[COLISEUM_COLUMNS])
{
	static const int uuid_columns[] = {0, 1, 2, 3, 4, 8};

	for (size_t i = 0; i < sizeof(uuid_columns) / sizeof(uuid_columns[0]); i++)
		array_param_binary(&columns[uuid_columns[i]], ARRAY_UUID_OID);
}

void coliseum_add_row(struct array_param columns[COLISEUM_COLUMNS], const struct entry *e, struct uuid_v7 *ids)
{
	double value;
	const char *unit;
	uint8_t id[UUID_BYTES];

	coliseum_metric(e->event_type, &e->info, &value, &unit);
	array_add_uuid_bytes(&columns[0], e->id_bytes);
	array_add_uuid(&columns[1], e->info.artist_id);
	array_add_uuid(&columns[2], e->info.event_id);
	array_add_uuid(&columns[3], e->info.track_id);
	array_add_uuid(&columns[4], e->info.brand_id);
	array_add_number(&columns[5], value);
	array_add(&columns[6], unit);
	if (e->info.has_dna_match_score)
		array_add_number(&columns[7], e->info.dna_match_score);
	else
		array_add(&columns[7], NULL);
	uuid_v7_generate_bytes(ids, id);
	array_add_uuid_bytes(&columns[8], id);
}

/*
 * Where event_id and brand_id point, one row each (column, relation, referenced column, readable):
 * the single-column foreign key of coliseum_metrics on the column (upstream's), else a table
 * named events / brands with a uuid id. Identifiers come quoted by the server (regclass output,
 * quote_ident), so they can be put in the statement as they are. No row: nothing to check against.
 */
#define REFERENCES_SQL                                                                             \
	"SELECT k.col, t.relation, t.refcol, t.readable"                                             \
	" FROM unnest(ARRAY['event_id', 'brand_id'], ARRAY['events', 'brands']) AS k(col, fallback)"  \
	" JOIN LATERAL (SELECT * FROM ("                                                             \
	"   SELECT c.confrelid::regclass::text AS relation, quote_ident(ra.attname) AS refcol,"         \
	"          has_column_privilege(c.confrelid, ra.attname, 'SELECT') AS readable, 0 AS preference" \
	"     FROM pg_constraint c"                                                                  \
	"     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"                 \
	"     JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]"            \
	"    WHERE c.conrelid = to_regclass('coliseum_metrics') AND c.contype = 'f'"                    \
	"      AND cardinality(c.conkey) = 1 AND a.attname = k.col AND ra.atttypid = 'uuid'::regtype"   \
	"   UNION ALL"                                                                                 \
	"   SELECT to_regclass(k.fallback)::text, 'id', has_column_privilege(to_regclass(k.fallback), 'id', 'SELECT'), 1" \
	"    WHERE EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(k.fallback)"          \
	"                    AND attname = 'id' AND atttypid = 'uuid'::regtype AND NOT attisdropped)"   \
	"   ) candidates ORDER BY preference LIMIT 1) t ON true"

/*
 * The value written for column (event_id or brand_id, parameter r.<column>): the id itself when
 * it references a row of the table res names for it, else NULL; the id unchecked when no table
 * is known or passportd may not read it. A scalar subquery, not a join: a table found by its name
 * need not have a unique id, and one entry must never yield two rows. Caller frees.
 */
static char *checked_id(PGresult *res, const char *column)
{
	for (int i = 0; i < PQntuples(res); i++) {
		const char *relation = PQgetvalue(res, i, 1), *refcol = PQgetvalue(res, i, 2);

		if (strcmp(PQgetvalue(res, i, 0), column) != 0)
			continue;
		if (strcmp(PQgetvalue(res, i, 3), "t") != 0) {
			log_warning("coliseum_metrics.%s refers to %s.%s, which this role may not read: %s values are "
				    "written unchecked, and one that references no row fails its entry "
				    "(GRANT SELECT (%s) ON %s TO passportd)",
				    column, relation, refcol, column, refcol, relation);
			break;
		}
		return sql_printf("(SELECT ref.%s FROM %s ref WHERE ref.%s = r.%s LIMIT 1)", refcol, relation, refcol,
				  column);
	}
	return sql_printf("r.%s", column);
}

int coliseum_prepare(struct processor *p, struct db_error *error)
{
	PGresult *res = db_query(p->conn, REFERENCES_SQL, 0, NULL, NULL, NULL, 0, error);
	char *event_id, *brand_id;

	if (!res) {
		db_error_prefix(error, "finding what coliseum_metrics.event_id and brand_id reference");
		return -1;
	}
	event_id = checked_id(res, "event_id");
	brand_id = checked_id(res, "brand_id");
	PQclear(res);
	if (event_id && brand_id)
		p->coliseum_insert_sql = sql_printf(
			" INSERT INTO coliseum_metrics (id, user_id, artist_id, event_id, track_id, brand_id, metric_type,"
			" metric_value, metric_unit, source, session_id, dna_match_score, metadata, \"timestamp\","
			" passport_entry_id)"
			" SELECT r.id, e.user_id, a.id, %s, c.id, %s, e.event_type, r.metric_value, r.metric_unit,"
			" CASE WHEN e.source IN ('web', 'ios', 'android', 'api', 'system', 'admin') THEN e.source"
			" ELSE 'system' END, e.session_id, r.dna_match_score, e.payload, e.\"timestamp\", e.id"
			" FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::numeric[],"
			" $7::text[], $8::numeric[], $9::uuid[]) WITH ORDINALITY AS r(entry_id, artist_id, event_id,"
			" track_id, brand_id, metric_value, metric_unit, dna_match_score, id, ord)"
			" JOIN marked e ON e.id = r.entry_id"
			" LEFT JOIN artist_profiles a ON a.id = r.artist_id"
			" LEFT JOIN content_items c ON c.id = r.track_id"
			" ORDER BY r.ord",
			event_id, brand_id);
	free(event_id);
	free(brand_id);
	if (!p->coliseum_insert_sql) {
		db_error_set(error, NULL, "out of memory");
		return -1;
	}
	return 0;
}

void coliseum_finish(struct processor *p)
{
	free(p->coliseum_insert_sql);
	p->coliseum_insert_sql = NULL;
}
