/*
 * treasury: money events and ledger links (SPEC 4). Amounts must be non-negative whole cents;
 * where ledger_entries exists, an entry's correlation id must name a ledger row (else the entry
 * is retried later), and that row is linked to the entry when the batch commits.
 */
#include "treasury.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "pipeline.h"
#include "strbuf.h"

const char *treasury_correlation(const struct entry *e)
{
	if (e->info.correlation_id[0])
		return e->info.correlation_id;
	if (e->correlation_column && e->correlation_column[0])
		return e->correlation_column;
	return NULL;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Which correlation ids of treasury entries have ledger rows: the query. */
int treasury_fetch(const struct processor *p, const struct batch *b, struct db_statement *f)
{
	cJSON *list;
	int wanted = 0;

	if (!p->has_ledger)
		return 0;
	list = cJSON_CreateArray();
	if (!list)
		return -1;
	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
		const char *correlation = treasury_correlation(e);
		if (e->outcome == OUTCOME_OK && (e->systems & SYSTEM_TREASURY) && correlation) {
			cJSON_AddItemToArray(list, cJSON_CreateString(correlation));
			wanted++;
		}
	}
	if (wanted == 0) {
		cJSON_Delete(list);
		return 0;
	}
	f->owned[0] = cJSON_PrintUnformatted(list);
	cJSON_Delete(list);
	if (!f->owned[0])
		return -1;
	f->sql = "SELECT DISTINCT l.correlation_id FROM ledger_entries l"
		 " WHERE l.correlation_id IN (SELECT jsonb_array_elements_text($1::jsonb))";
	f->nparams = 1;
	f->values[0] = f->owned[0];
	return 0;
}

/* The correlation ids found, sorted for ledger_has. res may be NULL. */
int treasury_take(struct batch *b, PGresult *res, struct db_error *error)
{
	if (!res)
		return 0;
	b->n_correlations = PQntuples(res);
	b->correlations = calloc((size_t)(b->n_correlations + 1), sizeof(char *));
	if (!b->correlations)
		goto oom;
	for (int i = 0; i < b->n_correlations; i++)
		b->correlations[i] = strdup(PQgetvalue(res, i, 0));
	for (int i = 0; i < b->n_correlations; i++)
		if (!b->correlations[i])
			goto oom;
	qsort(b->correlations, (size_t)b->n_correlations, sizeof(char *), compare_strings);
	return 0;
oom:
	db_error_set(error, NULL, "out of memory");
	return -1;
}

static bool ledger_has(const struct batch *b, const char *correlation)
{
	return bsearch(&correlation, b->correlations, (size_t)b->n_correlations, sizeof(char *),
		       compare_strings) != NULL;
}

void treasury_check_entry(const struct processor *p, const struct batch *b, struct entry *e)
{
	const char *correlation = treasury_correlation(e);

	if (e->info.amount_state == AMOUNT_INVALID) {
		entry_fail(e, OUTCOME_PERMANENT, "treasury: amount_cents must be a non-negative integer");
		return;
	}
	if (p->has_ledger && correlation && !ledger_has(b, correlation)) {
		char shown[PAYLOAD_CORRELATION_MAX + 1];
		snprintf(shown, sizeof(shown), "%s", correlation);
		utf8_truncate(shown, 64);
		entry_fail(e, OUTCOME_RETRY, "treasury: no ledger entry with correlation_id '%s' yet", shown);
	}
}

static int write_json(struct processor *p, const char *sql, cJSON *rows, struct db_error *error)
{
	char *text;
	const char *values[1];
	int rc;

	if (cJSON_GetArraySize(rows) == 0) {
		cJSON_Delete(rows);
		return 0;
	}
	text = cJSON_PrintUnformatted(rows);
	cJSON_Delete(rows);
	if (!text) {
		db_error_set(error, NULL, "out of memory");
		return -1;
	}
	values[0] = text;
	rc = db_send(p->conn, sql, 1, values, NULL, NULL, error);
	cJSON_free(text);
	return rc;
}

int treasury_write_links(struct processor *p, const struct batch *b, struct db_error *error)
{
	cJSON *rows;

	if (!p->has_ledger)
		return 0;
	rows = cJSON_CreateArray();
	if (!rows) {
		db_error_set(error, NULL, "out of memory");
		return -1;
	}
	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
		const char *correlation = treasury_correlation(e);
		cJSON *row;

		if (e->outcome != OUTCOME_OK || !(e->systems & SYSTEM_TREASURY) || !correlation)
			continue;
		row = cJSON_CreateObject();
		cJSON_AddItemToArray(rows, row);
		cJSON_AddNumberToObject(row, "ord", i);
		cJSON_AddStringToObject(row, "entry_id", e->id);
		cJSON_AddStringToObject(row, "correlation_id", correlation);
	}
	return write_json(p,
			  "UPDATE ledger_entries l SET passport_entry_id = r.entry_id"
			  " FROM (SELECT DISTINCT ON (correlation_id) correlation_id, entry_id"
			  " FROM jsonb_to_recordset($1::jsonb) AS x(ord int, entry_id uuid, correlation_id text)"
			  " ORDER BY correlation_id, ord) r"
			  " WHERE l.correlation_id = r.correlation_id AND l.passport_entry_id IS NULL",
			  rows, error);
}

