/* claim_result: a claim's rows, in binary format, into a batch. */
#include "claim_result.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "pipeline.h"
#include "strbuf.h"
#include "uuid_v7.h"
#include "vec.h"

enum {
	COLUMN_ID,
	COLUMN_USER_ID,
	COLUMN_MEDIAID_ID,
	COLUMN_EVENT_TYPE,
	COLUMN_PAYLOAD,
	COLUMN_SYSTEMS,
	COLUMN_ATTEMPTS,
	COLUMN_TIME,
	COLUMN_CORRELATION,
	COLUMN_CTID,
	COLUMN_PAYLOAD_BYTES,
	COLUMN_COUNT
};

/*
 * The columns of claim.c's ENTRY_COLUMNS as they arrive: each one's type (a second one it may
 * also have: the time column may be timestamp or timestamptz, both microseconds from 2000-01-01),
 * its size when fixed, and whether it may be NULL (checked only where the size is fixed).
 */
static const struct {
	Oid type, also;
	int length; /* 0: any */
	bool nullable;
	const char *name;
} columns[COLUMN_COUNT] = {
	[COLUMN_ID] = {2950, 0, 16, false, "id"},
	[COLUMN_USER_ID] = {2950, 0, 16, true, "user_id"},
	[COLUMN_MEDIAID_ID] = {2950, 0, 16, true, "mediaid_id"},
	[COLUMN_EVENT_TYPE] = {25, 0, 0, true, "event_type"},
	[COLUMN_PAYLOAD] = {25, 0, 0, true, "payload"},
	[COLUMN_SYSTEMS] = {25, 0, 0, true, "affects_systems"},
	[COLUMN_ATTEMPTS] = {23, 0, 4, false, "processing_attempts"},
	[COLUMN_TIME] = {1184, 1114, 8, true, "timestamp"},
	[COLUMN_CORRELATION] = {25, 0, 0, true, "treasury_correlation_id"},
	[COLUMN_CTID] = {27, 0, 6, false, "ctid"},
	[COLUMN_PAYLOAD_BYTES] = {20, 0, 8, false, "payload size"},
};

static uint64_t read_be64(const char *value)
{
	const unsigned char *p = (const unsigned char *)value;

	return (uint64_t)vec_read_be32(p) << 32 | vec_read_be32(p + 4);
}

/* Whether res has the columns as claim_take_result reads them: binary, these types and sizes. */
static int check_result(const PGresult *res, struct db_error *error)
{
	if (PQnfields(res) != COLUMN_COUNT) {
		db_error_set(error, NULL, "the claim returned %d columns, not %d", PQnfields(res), COLUMN_COUNT);
		return -1;
	}
	for (int c = 0; c < COLUMN_COUNT; c++) {
		Oid type = PQftype(res, c);

		if (PQfformat(res, c) != 1 || (type != columns[c].type && (columns[c].also == 0 || type != columns[c].also))) {
			db_error_set(error, NULL,
				     "passport_entries.%s has type oid %u where the claim reads %u (SPEC section 2.1)",
				     columns[c].name, (unsigned)type, (unsigned)columns[c].type);
			return -1;
		}
		if (columns[c].length == 0)
			continue;
		for (int i = 0; i < PQntuples(res); i++) {
			if (PQgetisnull(res, i, c) ? !columns[c].nullable : PQgetlength(res, i, c) != columns[c].length) {
				db_error_set(error, NULL, "the claim returned a malformed %s", columns[c].name);
				return -1;
			}
		}
	}
	return 0;
}

/* The 16 bytes of a uuid column in text form, "" when NULL. */
static const char *uuid_text_of(const PGresult *res, int row, int column, char out[UUID_TEXT_SIZE])
{
	out[0] = '\0';
	if (!PQgetisnull(res, row, column))
		uuid_format((const uint8_t *)PQgetvalue(res, row, column), out);
	return out;
}

/* A column of text, NULL when SQL NULL. */
static const char *text_or_null(const PGresult *res, int row, int column)
{
	return PQgetisnull(res, row, column) ? NULL : PQgetvalue(res, row, column);
}

int claim_take_result(struct processor *p, struct batch *b, PGresult *res, struct db_error *error)
{
	int n = PQntuples(res);
	size_t wanted = (size_t)(n > 0 ? n : 1);

	if (check_result(res, error) < 0) {
		PQclear(res);
		return -1;
	}
	b->claimed = res;
	if (p->entry_buffer_entries < wanted) {
		struct entry *grown = malloc(sizeof(*grown) * wanted);
		if (!grown) {
			db_error_set(error, NULL, "out of memory");
			return -1;
		}
		free(p->entry_buffer);
		p->entry_buffer = grown;
		p->entry_buffer_entries = wanted;
	}
	b->entries = p->entry_buffer;
	memset(b->entries, 0, sizeof(*b->entries) * wanted);
	b->n_entries = n;
	for (int i = 0; i < n; i++) {
		struct entry *e = &b->entries[i];
		int64_t micros;

		memcpy(e->id_bytes, PQgetvalue(res, i, COLUMN_ID), sizeof(e->id_bytes));
		uuid_format(e->id_bytes, e->id_text);
		e->id = e->id_text;
		e->user_id = uuid_text_of(res, i, COLUMN_USER_ID, e->user_text);
		e->mediaid_id = uuid_text_of(res, i, COLUMN_MEDIAID_ID, e->mediaid_text);
		e->event_type = PQgetvalue(res, i, COLUMN_EVENT_TYPE);
		e->payload = text_or_null(res, i, COLUMN_PAYLOAD);
		e->payload_len = e->payload ? (size_t)PQgetlength(res, i, COLUMN_PAYLOAD) : 0;
		e->payload_bytes = (long long)read_be64(PQgetvalue(res, i, COLUMN_PAYLOAD_BYTES));
		e->systems_json = text_or_null(res, i, COLUMN_SYSTEMS);
		e->attempts = (int32_t)vec_read_be32((const unsigned char *)PQgetvalue(res, i, COLUMN_ATTEMPTS));
		/* NULL, -infinity and infinity (INT64_MIN, INT64_MAX), times past int64 Unix microseconds: no time. */
		if (!PQgetisnull(res, i, COLUMN_TIME)) {
			micros = (int64_t)read_be64(PQgetvalue(res, i, COLUMN_TIME));
			e->has_time = micros != INT64_MIN && micros != INT64_MAX &&
				      !__builtin_add_overflow(micros, POSTGRES_EPOCH_US, &e->time_us);
		}
		e->correlation_column = text_or_null(res, i, COLUMN_CORRELATION);
		memcpy(e->ctid, PQgetvalue(res, i, COLUMN_CTID), sizeof(e->ctid));
		e->dna_row = -1;
		e->target = -1;
	}
	return 0;
}
