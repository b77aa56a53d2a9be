/* coliseum: one coliseum_metrics row per entry routed there (SPEC 4), written with its mark. */
#ifndef PASSPORT_COLISEUM_H
#define PASSPORT_COLISEUM_H

#include "strbuf.h"

struct entry;
struct payload_info;

/* The columns coliseum_add_row fills: parameters $1..$8 of COLISEUM_INSERT_FROM_MARKED. */
#define COLISEUM_COLUMNS 8

/*
 * The metric of an entry (pure): the amount in cents for money events (unit "cents"), the weight
 * for votes, a numeric payload value, else 1 (unit NULL when not cents).
 */
void coliseum_metric(const char *event_type, const struct payload_info *info, double *value, const char **unit);

/* Add the entry's coliseum row to the columns: entry id, artist, event, track, brand, value, unit, score. */
void coliseum_add_row(struct array_param columns[COLISEUM_COLUMNS], const struct entry *e);

/*
 * The INSERT of the coliseum rows, reading the entry columns it copies (user, type, source,
 * session, payload, timestamp) from a CTE named marked (id, user_id, event_type, source,
 * session_id, payload, "timestamp"): the processed marks' RETURNING, so the rows need no second
 * pass over the entries. Ids that reference no row become NULL rather than failing the insert;
 * a source outside the allowed list becomes 'system'.
 */
#define COLISEUM_INSERT_FROM_MARKED                                                                \
	" INSERT INTO coliseum_metrics (user_id, artist_id, event_id, track_id, brand_id, metric_type,"  \
	" metric_value, metric_unit, source, session_id, dna_match_score, metadata, \"timestamp\","      \
	" passport_entry_id)"                                                                        \
	" SELECT e.user_id, a.id, r.event_id, c.id, r.brand_id, e.event_type, r.metric_value, r.metric_unit," \
	" CASE WHEN e.source IN ('web', 'ios', 'android', 'api', 'system', 'admin') THEN e.source"       \
	" ELSE 'system' END, e.session_id, r.dna_match_score, e.payload, e.\"timestamp\", e.id"          \
	" FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::numeric[],"        \
	" $7::text[], $8::numeric[]) WITH ORDINALITY AS r(entry_id, artist_id, event_id, track_id,"       \
	" brand_id, metric_value, metric_unit, dna_match_score, ord)"                                    \
	" JOIN marked e ON e.id = r.entry_id"                                                          \
	" LEFT JOIN artist_profiles a ON a.id = r.artist_id"                                           \
	" LEFT JOIN content_items c ON c.id = r.track_id"                                              \
	" ORDER BY r.ord"

#endif
