/* payload: reading an entry's JSON payload into the facts the handlers need. Pure, hostile-input safe. */
#ifndef PASSPORT_PAYLOAD_H
#define PASSPORT_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_DEFAULT_MAX_BYTES (1024u * 1024u)
#define UUID_TEXT_LEN 36
#define PAYLOAD_CORRELATION_MAX 200

enum target_type {
	TARGET_NONE = 0,
	TARGET_TRACK,
	TARGET_ARTIST,
	TARGET_EVENT,
};

/* A canonical lower-case UUID text, or "" when absent. */
typedef char uuid_text[UUID_TEXT_LEN + 1];

enum amount_state {
	AMOUNT_ABSENT = 0, /* no amount_cents / amountCents key (or it is null) */
	AMOUNT_VALID,      /* a non-negative integer that fits in int64 */
	AMOUNT_INVALID,    /* present but not a non-negative integer */
};

struct payload_info {
	enum target_type target_type; /* DNA target, TARGET_NONE when none */
	uuid_text target_id;

	/* Coliseum ids (camelCase or snake_case); "" when absent or not a UUID. */
	uuid_text artist_id;
	uuid_text event_id;
	uuid_text track_id;
	uuid_text brand_id;

	enum amount_state amount_state;
	int64_t amount_cents;

	bool has_weight; /* numeric, finite "weight" */
	double weight;
	bool has_value; /* numeric, finite "value" */
	double value;
	bool has_dna_match_score; /* numeric in [0, 1] */
	double dna_match_score;

	/* payload.correlation_id when it is a non-empty string of at most PAYLOAD_CORRELATION_MAX bytes. */
	char correlation_id[PAYLOAD_CORRELATION_MAX + 1];
};

/*
 * Parse the payload JSON text json[0..len) and fill info. Returns 0, or -1 with
 * a reason in err when the payload is larger than max_bytes, is not valid JSON
 * (including nesting deeper than cJSON allows) or is not an object: those are
 * permanent errors of the entry. Keys of the wrong JSON type are treated as
 * absent, except amounts, whose state says what was wrong. len may be 0 with
 * json NULL for an absent payload, which reads as {}.
 */
int payload_parse(const char *json, size_t len, size_t max_bytes, struct payload_info *info,
		  char *err, size_t errlen);

/*
 * Canonicalise a UUID string (8-4-4-4-12 hex, either case) into out, lower-case.
 * Returns 0, or -1 when text is not such a UUID. Braces and other forms are refused.
 */
int uuid_canonical(const char *text, uuid_text out);

const char *target_type_name(enum target_type type);

#endif
