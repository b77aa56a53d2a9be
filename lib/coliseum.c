/* coliseum: the metric of an entry and its coliseum_metrics row, as batch write columns. */
#include "coliseum.h"

#include <string.h>

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

void coliseum_add_row(struct array_param columns[COLISEUM_COLUMNS], const struct entry *e)
{
	double value;
	const char *unit;

	coliseum_metric(e->event_type, &e->info, &value, &unit);
	array_add_uuid(&columns[0], e->id);
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
}
