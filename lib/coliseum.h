/* coliseum: one coliseum_metrics row per entry routed there (SPEC 4), written with its mark. */
#ifndef PASSPORT_COLISEUM_H
#define PASSPORT_COLISEUM_H

#include "strbuf.h"
#include "uuid_v7.h"

struct db_error;
struct entry;
struct payload_info;
struct processor;

/* The columns coliseum_add_row fills: parameters $1..$9 of the processor's coliseum_insert_sql. */
#define COLISEUM_COLUMNS 9

/*
 * The metric of an entry (pure): the amount in cents for money events (unit "cents"), the weight
 * for votes, a numeric payload value, else 1 (unit NULL when not cents).
 */
void coliseum_metric(const char *event_type, const struct payload_info *info, double *value, const char **unit);

/*
 * Add the entry's coliseum row to the columns: entry id, artist, event, track, brand, value, unit,
 * score, and the row's own id, the next time-ordered id of ids (uuid_v7.h: random ids would cost
 * a full-page image of an index leaf per row after each checkpoint).
 */
void coliseum_add_row(struct array_param columns[COLISEUM_COLUMNS], const struct entry *e, struct uuid_v7 *ids);
/* Before the first coliseum_add_row: the uuid columns travel as binary uuid[]. */
void coliseum_columns_init(struct array_param columns[COLISEUM_COLUMNS]);

/*
 * Build the processor's coliseum INSERT for this database (p->coliseum_insert_sql): the rows'
 * statement reading the entry columns it copies (user, type, source, session, payload, timestamp)
 * from a CTE named marked (id, user_id, event_type, source, session_id, payload, "timestamp"):
 * the processed marks' RETURNING, so the rows need no second pass over the entries. A source
 * outside the allowed list becomes 'system'. Rows are inserted in the order of the columns, so
 * their ids increase with the order of insertion.
 *
 * Ids that reference no row become NULL rather than failing the insert (SPEC 4): artist_id is
 * checked against artist_profiles and track_id against content_items; event_id and brand_id
 * against the table and column their foreign key on coliseum_metrics references, else against a
 * table named events / brands with a uuid id, when one exists; where neither exists (or passportd
 * may not read it: a warning says which grant is missing) the id is kept as it is, which no
 * constraint can refuse. Returns 0, or -1 with error set.
 */
int coliseum_prepare(struct processor *p, struct db_error *error);
void coliseum_finish(struct processor *p);

#endif
