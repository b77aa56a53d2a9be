/* test_payload: the payload parser on every key form, precedence rule, amount case and hostile input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "task.h"

#define U1 "123e4567-e89b-12d3-a456-426614174000"
#define U2 "00000000-0000-4000-8000-0000000000aa"
#define U3 "ffffffff-ffff-ffff-ffff-ffffffffffff"
#define U1_UPPER "123E4567-E89B-12D3-A456-426614174000"
#define U_MIXED "AbCdEf01-2345-6789-aBcD-eF0123456789"
#define U_MIXED_LOWER "abcdef01-2345-6789-abcd-ef0123456789"

static char err[256];

/*
 * Parse a copy of text in a heap buffer of exactly its length, without a NUL
 * terminator, so that the sanitizers and valgrind catch any read past the end.
 */
static int parse_len(const char *text, size_t len, size_t max_bytes, struct payload_info *info)
{
	char *copy = malloc(len > 0 ? len : 1);
	int rc;

	ASSERT_TRUE(copy != NULL);
	if (len > 0)
		memcpy(copy, text, len);
	err[0] = '\0';
	rc = payload_parse(copy, len, max_bytes, info, err, sizeof(err));
	free(copy);
	return rc;
}

static int parse(const char *text, struct payload_info *info)
{
	return parse_len(text, strlen(text), PAYLOAD_DEFAULT_MAX_BYTES, info);
}

/* Parse text that must be accepted. */
static struct payload_info parse_ok(const char *text)
{
	struct payload_info info;
	int rc = parse(text, &info);

	if (rc != 0)
		fprintf(stderr, "unexpected error for %s: %s\n", text, err);
	ASSERT_EQ_INT(rc, 0);
	return info;
}

static void assert_empty(const struct payload_info *info)
{
	ASSERT_EQ_INT(info->target_type, TARGET_NONE);
	ASSERT_STR_EQ(info->target_id, "");
	ASSERT_STR_EQ(info->artist_id, "");
	ASSERT_STR_EQ(info->event_id, "");
	ASSERT_STR_EQ(info->track_id, "");
	ASSERT_STR_EQ(info->brand_id, "");
	ASSERT_EQ_INT(info->amount_state, AMOUNT_ABSENT);
	ASSERT_EQ_INT(info->amount_cents, 0);
	ASSERT_FALSE(info->has_weight);
	ASSERT_FALSE(info->has_value);
	ASSERT_FALSE(info->has_dna_match_score);
	ASSERT_STR_EQ(info->correlation_id, "");
}

static void assert_target(const char *text, enum target_type type, const char *id)
{
	struct payload_info info = parse_ok(text);

	ASSERT_EQ_INT(info.target_type, type);
	ASSERT_STR_EQ(info.target_id, id);
}

static void assert_no_target(const char *text)
{
	assert_target(text, TARGET_NONE, "");
}

static void assert_amount(const char *text, enum amount_state state, int64_t cents)
{
	struct payload_info info = parse_ok(text);

	ASSERT_EQ_INT(info.amount_state, state);
	ASSERT_EQ_INT(info.amount_cents, cents);
}

/* Parse text that must be refused with an error starting with prefix. */
static void assert_refused(const char *text, size_t len, size_t max_bytes, const char *message)
{
	struct payload_info info;

	ASSERT_EQ_INT(parse_len(text, len, max_bytes, &info), -1);
	ASSERT_STR_EQ(err, message);
	assert_empty(&info);
}

static void test_uuid_canonical(void)
{
	uuid_text out;

	ASSERT_EQ_INT(uuid_canonical(U1, out), 0);
	ASSERT_STR_EQ(out, U1);
	ASSERT_EQ_INT(uuid_canonical(U1_UPPER, out), 0);
	ASSERT_STR_EQ(out, U1);
	ASSERT_EQ_INT(uuid_canonical(U_MIXED, out), 0);
	ASSERT_STR_EQ(out, U_MIXED_LOWER);
	ASSERT_EQ_INT(uuid_canonical(U3, out), 0);
	ASSERT_STR_EQ(out, U3);
	ASSERT_EQ_INT(uuid_canonical("00000000-0000-0000-0000-000000000000", out), 0);

	/* Refused forms leave out empty. */
	memcpy(out, U1, sizeof(out));
	ASSERT_EQ_INT(uuid_canonical("{" U1 "}", out), -1);
	ASSERT_STR_EQ(out, "");
	ASSERT_EQ_INT(uuid_canonical(U1 "0", out), -1);
	ASSERT_EQ_INT(uuid_canonical(U1 " ", out), -1);
	ASSERT_EQ_INT(uuid_canonical(" " U1, out), -1);
	ASSERT_EQ_INT(uuid_canonical("123e4567-e89b-12d3-a456-42661417400", out), -1);
	ASSERT_EQ_INT(uuid_canonical("123e4567e89b12d3a456426614174000", out), -1);
	ASSERT_EQ_INT(uuid_canonical("123e4567-e89b-12d3-a456426614174000-", out), -1);
	ASSERT_EQ_INT(uuid_canonical("123e4567-e89b-12d3-a456-42661417400g", out), -1);
	ASSERT_EQ_INT(uuid_canonical("g23e4567-e89b-12d3-a456-426614174000", out), -1);
	ASSERT_EQ_INT(uuid_canonical("123e4567_e89b-12d3-a456-426614174000", out), -1);
	ASSERT_EQ_INT(uuid_canonical("urn:uuid:" U1, out), -1);
	ASSERT_EQ_INT(uuid_canonical("", out), -1);
	ASSERT_EQ_INT(uuid_canonical(NULL, out), -1);
	ASSERT_STR_EQ(out, "");
	/* A NUL inside the 36 characters ends the string early. */
	ASSERT_EQ_INT(uuid_canonical("123e4567-e89b-12d3\0a456-426614174000", out), -1);
}

static void test_target_type_name(void)
{
	ASSERT_STR_EQ(target_type_name(TARGET_TRACK), "track");
	ASSERT_STR_EQ(target_type_name(TARGET_ARTIST), "artist");
	ASSERT_STR_EQ(target_type_name(TARGET_EVENT), "event");
	ASSERT_STR_EQ(target_type_name(TARGET_NONE), NULL);
}

static void test_absent_payload(void)
{
	struct payload_info info;

	memset(&info, 0x5a, sizeof(info));
	ASSERT_EQ_INT(payload_parse(NULL, 0, PAYLOAD_DEFAULT_MAX_BYTES, &info, err, sizeof(err)), 0);
	assert_empty(&info);
	memset(&info, 0x5a, sizeof(info));
	ASSERT_EQ_INT(payload_parse("", 0, PAYLOAD_DEFAULT_MAX_BYTES, &info, err, sizeof(err)), 0);
	assert_empty(&info);
	/* An err buffer is optional. */
	ASSERT_EQ_INT(payload_parse("[]", 2, PAYLOAD_DEFAULT_MAX_BYTES, &info, NULL, 0), -1);
	ASSERT_EQ_INT(payload_parse("{}", 2, PAYLOAD_DEFAULT_MAX_BYTES, &info, NULL, 0), 0);

	info = parse_ok("{}");
	assert_empty(&info);
	info = parse_ok("  \t\r\n{ }\n ");
	assert_empty(&info);
	info = parse_ok("{\"unrelated\": [1, 2, {\"trackId\": \"" U1 "\"}]}");
	assert_empty(&info);
}

static void test_target_key_forms(void)
{
	assert_target("{\"trackId\": \"" U1 "\"}", TARGET_TRACK, U1);
	assert_target("{\"track_id\": \"" U1 "\"}", TARGET_TRACK, U1);
	assert_target("{\"content_id\": \"" U1 "\"}", TARGET_TRACK, U1);
	assert_target("{\"artistId\": \"" U1 "\"}", TARGET_ARTIST, U1);
	assert_target("{\"artist_id\": \"" U1 "\"}", TARGET_ARTIST, U1);
	assert_target("{\"eventId\": \"" U1 "\"}", TARGET_EVENT, U1);
	assert_target("{\"event_id\": \"" U1 "\"}", TARGET_EVENT, U1);
	assert_target("{\"targetId\": \"" U1 "\", \"targetType\": \"track\"}", TARGET_TRACK, U1);
	assert_target("{\"target_id\": \"" U1 "\", \"target_type\": \"artist\"}", TARGET_ARTIST, U1);
	assert_target("{\"targetId\": \"" U1 "\", \"target_type\": \"event\"}", TARGET_EVENT, U1);
	assert_target("{\"target_id\": \"" U1 "\", \"targetType\": \"event\"}", TARGET_EVENT, U1);

	/* Upper and mixed case hex is canonicalised to lower case. */
	assert_target("{\"trackId\": \"" U1_UPPER "\"}", TARGET_TRACK, U1);
	assert_target("{\"eventId\": \"" U_MIXED "\"}", TARGET_EVENT, U_MIXED_LOWER);

	/* Keys are case-sensitive. */
	assert_no_target("{\"TrackId\": \"" U1 "\"}");
	assert_no_target("{\"trackid\": \"" U1 "\"}");
	assert_no_target("{\"ARTIST_ID\": \"" U1 "\"}");
}

static void test_target_precedence(void)
{
	/* Order: trackId, track_id, content_id, artistId, artist_id, eventId, event_id, targetId. */
	assert_target("{\"artistId\": \"" U2 "\", \"trackId\": \"" U1 "\"}", TARGET_TRACK, U1);
	assert_target("{\"track_id\": \"" U2 "\", \"trackId\": \"" U1 "\"}", TARGET_TRACK, U1);
	assert_target("{\"content_id\": \"" U2 "\", \"track_id\": \"" U1 "\"}", TARGET_TRACK, U1);
	assert_target("{\"artistId\": \"" U2 "\", \"content_id\": \"" U1 "\"}", TARGET_TRACK, U1);
	assert_target("{\"eventId\": \"" U2 "\", \"artist_id\": \"" U1 "\"}", TARGET_ARTIST, U1);
	assert_target("{\"artist_id\": \"" U2 "\", \"artistId\": \"" U1 "\"}", TARGET_ARTIST, U1);
	assert_target("{\"event_id\": \"" U2 "\", \"eventId\": \"" U1 "\"}", TARGET_EVENT, U1);
	assert_target("{\"targetId\": \"" U2 "\", \"targetType\": \"artist\", \"event_id\": \"" U1
		      "\"}",
		      TARGET_EVENT, U1);
	assert_target("{\"target_id\": \"" U2 "\", \"targetId\": \"" U1
		      "\", \"targetType\": \"artist\"}",
		      TARGET_ARTIST, U1);

	/* The first key present decides: an invalid value means no target, no fall-through. */
	assert_no_target("{\"trackId\": \"not-a-uuid\", \"artistId\": \"" U1 "\"}");
	assert_no_target("{\"trackId\": 42, \"artistId\": \"" U1 "\"}");
	assert_no_target("{\"trackId\": {\"id\": \"" U1 "\"}, \"artistId\": \"" U1 "\"}");
	assert_no_target("{\"trackId\": [\"" U1 "\"], \"artistId\": \"" U1 "\"}");
	assert_no_target("{\"trackId\": true, \"artistId\": \"" U1 "\"}");
	assert_no_target("{\"trackId\": \"\", \"artistId\": \"" U1 "\"}");
	assert_no_target("{\"trackId\": \"{" U1 "}\", \"artistId\": \"" U1 "\"}");
	assert_no_target("{\"content_id\": \"spotify:track:123\", \"eventId\": \"" U1 "\"}");
	assert_no_target("{\"event_id\": \"x\", \"targetId\": \"" U1 "\", \"targetType\": \"track\"}");

	/* A null value counts as absent, so the next key is consulted. */
	assert_target("{\"trackId\": null, \"artistId\": \"" U1 "\"}", TARGET_ARTIST, U1);
	assert_target("{\"trackId\": null, \"track_id\": null, \"content_id\": null, \"artistId\": "
		      "null, \"artist_id\": null, \"eventId\": null, \"event_id\": \"" U1 "\"}",
		      TARGET_EVENT, U1);
	assert_target("{\"targetId\": null, \"target_id\": \"" U1 "\", \"targetType\": \"track\"}",
		      TARGET_TRACK, U1);
	assert_no_target("{\"trackId\": null}");

	/* Duplicate keys: cJSON returns the first. */
	assert_target("{\"trackId\": \"" U1 "\", \"trackId\": \"" U2 "\"}", TARGET_TRACK, U1);
}

static void test_target_type(void)
{
	/* Unknown, missing, wrong case, non-string target types: no target. */
	assert_no_target("{\"targetId\": \"" U1 "\"}");
	assert_no_target("{\"targetId\": \"" U1 "\", \"targetType\": \"brand\"}");
	assert_no_target("{\"targetId\": \"" U1 "\", \"targetType\": \"Track\"}");
	assert_no_target("{\"targetId\": \"" U1 "\", \"targetType\": \"TRACK\"}");
	assert_no_target("{\"targetId\": \"" U1 "\", \"targetType\": \"track \"}");
	assert_no_target("{\"targetId\": \"" U1 "\", \"targetType\": \"\"}");
	assert_no_target("{\"targetId\": \"" U1 "\", \"targetType\": 1}");
	assert_no_target("{\"targetId\": \"" U1 "\", \"targetType\": [\"track\"]}");
	assert_no_target("{\"targetType\": \"track\"}");
	/* targetType takes precedence over target_type; a null one is absent. */
	assert_no_target("{\"targetId\": \"" U1 "\", \"targetType\": \"x\", \"target_type\": \"track\"}");
	assert_target("{\"targetId\": \"" U1 "\", \"targetType\": null, \"target_type\": \"track\"}",
		      TARGET_TRACK, U1);
	/* A valid type with an invalid id. */
	assert_no_target("{\"targetId\": \"nope\", \"targetType\": \"track\"}");
	assert_no_target("{\"target_id\": 7, \"target_type\": \"event\"}");
}

static void test_coliseum_ids(void)
{
	struct payload_info info;

	info = parse_ok("{\"artistId\": \"" U1 "\", \"eventId\": \"" U2 "\", \"trackId\": \"" U3
			"\", \"brandId\": \"" U1_UPPER "\"}");
	ASSERT_STR_EQ(info.artist_id, U1);
	ASSERT_STR_EQ(info.event_id, U2);
	ASSERT_STR_EQ(info.track_id, U3);
	ASSERT_STR_EQ(info.brand_id, U1);

	info = parse_ok("{\"artist_id\": \"" U1 "\", \"event_id\": \"" U2 "\", \"track_id\": \"" U3
			"\", \"brand_id\": \"" U_MIXED "\"}");
	ASSERT_STR_EQ(info.artist_id, U1);
	ASSERT_STR_EQ(info.event_id, U2);
	ASSERT_STR_EQ(info.track_id, U3);
	ASSERT_STR_EQ(info.brand_id, U_MIXED_LOWER);

	/* camelCase wins over snake_case. */
	info = parse_ok("{\"artist_id\": \"" U2 "\", \"artistId\": \"" U1 "\", \"brand_id\": \"" U2
			"\", \"brandId\": \"" U1 "\"}");
	ASSERT_STR_EQ(info.artist_id, U1);
	ASSERT_STR_EQ(info.brand_id, U1);

	/* content_id is the track only when neither trackId nor track_id is present. */
	info = parse_ok("{\"content_id\": \"" U1 "\"}");
	ASSERT_STR_EQ(info.track_id, U1);
	info = parse_ok("{\"content_id\": \"" U1 "\", \"track_id\": \"" U2 "\"}");
	ASSERT_STR_EQ(info.track_id, U2);
	info = parse_ok("{\"content_id\": \"" U1 "\", \"track_id\": null}");
	ASSERT_STR_EQ(info.track_id, U1);

	/* Invalid values become "" (the first present spelling decides). */
	info = parse_ok("{\"artistId\": \"abc\", \"artist_id\": \"" U1 "\", \"eventId\": 5, "
			"\"trackId\": [], \"brandId\": {}, \"brand_id\": \"" U2 "\"}");
	ASSERT_STR_EQ(info.artist_id, "");
	ASSERT_STR_EQ(info.event_id, "");
	ASSERT_STR_EQ(info.track_id, "");
	ASSERT_STR_EQ(info.brand_id, "");

	/* The target and the coliseum ids are read independently. */
	info = parse_ok("{\"trackId\": \"bad\", \"artistId\": \"" U1 "\", \"brandId\": \"" U2 "\"}");
	ASSERT_EQ_INT(info.target_type, TARGET_NONE);
	ASSERT_STR_EQ(info.track_id, "");
	ASSERT_STR_EQ(info.artist_id, U1);
	ASSERT_STR_EQ(info.brand_id, U2);
}

static void test_amounts(void)
{
	assert_amount("{}", AMOUNT_ABSENT, 0);
	assert_amount("{\"amount_cents\": null}", AMOUNT_ABSENT, 0);
	assert_amount("{\"amountCents\": null, \"amount_cents\": null}", AMOUNT_ABSENT, 0);
	assert_amount("{\"amount\": 100}", AMOUNT_ABSENT, 0);
	assert_amount("{\"AMOUNT_CENTS\": 100}", AMOUNT_ABSENT, 0);

	assert_amount("{\"amount_cents\": 1999}", AMOUNT_VALID, 1999);
	assert_amount("{\"amountCents\": 1999}", AMOUNT_VALID, 1999);
	assert_amount("{\"amount_cents\": 0}", AMOUNT_VALID, 0);
	assert_amount("{\"amount_cents\": -0}", AMOUNT_VALID, 0);
	assert_amount("{\"amount_cents\": 100.0}", AMOUNT_VALID, 100);
	assert_amount("{\"amount_cents\": 1e3}", AMOUNT_VALID, 1000);
	assert_amount("{\"amount_cents\": 9007199254740991}", AMOUNT_VALID, INT64_C(9007199254740991));
	assert_amount("{\"amount_cents\": 1999, \"amountCents\": 1999}", AMOUNT_VALID, 1999);
	assert_amount("{\"amount_cents\": 1999, \"amountCents\": null}", AMOUNT_VALID, 1999);
	assert_amount("{\"amount_cents\": null, \"amountCents\": 5}", AMOUNT_VALID, 5);

	assert_amount("{\"amount_cents\": \"100\"}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": -1}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 1.5}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 0.0001}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 1e300}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 1e999}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": -1e999}", AMOUNT_INVALID, 0);
	/* Beyond 2^53 - 1 a double no longer holds every integer: refused, never rounded. */
	assert_amount("{\"amount_cents\": 9007199254740992}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 9007199254740993}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 9223372036854775807}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": true}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": false}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": {}}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": [100]}", AMOUNT_INVALID, 0);
	assert_amount("{\"amountCents\": \"1999\"}", AMOUNT_INVALID, 0);
	/* Both spellings: either invalid, or both valid and different, is invalid. */
	assert_amount("{\"amount_cents\": 100, \"amountCents\": 200}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 100, \"amountCents\": \"100\"}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": -5, \"amountCents\": 100}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": null, \"amountCents\": 1.25}", AMOUNT_INVALID, 0);

	/* Decided on the JSON text, not on the double it rounds to. */
	assert_amount("{\"amount_cents\": 100.00000000000000001}", AMOUNT_INVALID, 0);
	assert_amount("{\"amountCents\": 1e-400}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 99.999999999999999999}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 0.0000000000000000000000000000000000000000000001}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 9007199254740991.0000000000000000000000001}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 1.50e2}", AMOUNT_VALID, 150);
	assert_amount("{\"amount_cents\": 12345000e-3}", AMOUNT_VALID, 12345);
	assert_amount("{\"amount_cents\": 0.0e5}", AMOUNT_VALID, 0);
	assert_amount("{\"amount_cents\": 100.000000000000000000000000000000}", AMOUNT_VALID, 100);
	assert_amount("{\"amount_cents\": 9.007199254740991E15}", AMOUNT_VALID, INT64_C(9007199254740991));
	assert_amount("{\"amount_cents\": 9.007199254740992e15}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": 1e99999999999999999999}", AMOUNT_INVALID, 0);
	assert_amount("{\"amount_cents\": -0.5}", AMOUNT_INVALID, 0);
	/* The member is found by its name however the key is escaped, and only at the top level. */
	assert_amount("{\"\\u0061mount_cents\": 100.5}", AMOUNT_INVALID, 0);
	assert_amount("{\"\\u0061mount_cents\": 7}", AMOUNT_VALID, 7);
	assert_amount("{\"x\": {\"amount_cents\": 1.5}, \"s\": \"amount_cents\\\": 2.5\", \"amount_cents\": 5}", AMOUNT_VALID, 5);
	assert_amount("{\"x\": [{\"amountCents\": 0.5}], \"amountCents\": 6}", AMOUNT_VALID, 6);
	/* Two members of one name: the first decides, as everywhere in the parser. */
	assert_amount("{\"amount_cents\": 8, \"amount_cents\": 1.5}", AMOUNT_VALID, 8);
}

static void test_numbers(void)
{
	struct payload_info info;

	info = parse_ok("{\"weight\": 3, \"value\": -2.5, \"dna_match_score\": 0.75}");
	ASSERT_TRUE(info.has_weight);
	ASSERT_EQ_DBL(info.weight, 3.0, 0);
	ASSERT_TRUE(info.has_value);
	ASSERT_EQ_DBL(info.value, -2.5, 0);
	ASSERT_TRUE(info.has_dna_match_score);
	ASSERT_EQ_DBL(info.dna_match_score, 0.75, 0);

	info = parse_ok("{\"dnaMatchScore\": 0}");
	ASSERT_TRUE(info.has_dna_match_score);
	ASSERT_EQ_DBL(info.dna_match_score, 0.0, 0);
	info = parse_ok("{\"dnaMatchScore\": 1}");
	ASSERT_TRUE(info.has_dna_match_score);
	ASSERT_EQ_DBL(info.dna_match_score, 1.0, 0);
	info = parse_ok("{\"dna_match_score\": 0.25, \"dnaMatchScore\": 0.5}");
	ASSERT_EQ_DBL(info.dna_match_score, 0.25, 0);

	/* Out of range, wrong type, non-finite: absent. */
	info = parse_ok("{\"weight\": \"3\", \"value\": 1e999, \"dna_match_score\": 1.0001}");
	ASSERT_FALSE(info.has_weight);
	ASSERT_FALSE(info.has_value);
	ASSERT_FALSE(info.has_dna_match_score);
	info = parse_ok("{\"weight\": true, \"value\": \"12\", \"dna_match_score\": -0.1}");
	ASSERT_FALSE(info.has_weight);
	ASSERT_FALSE(info.has_value);
	ASSERT_FALSE(info.has_dna_match_score);
	info = parse_ok("{\"weight\": null, \"value\": [1], \"dnaMatchScore\": \"0.5\"}");
	ASSERT_FALSE(info.has_weight);
	ASSERT_FALSE(info.has_value);
	ASSERT_FALSE(info.has_dna_match_score);
	info = parse_ok("{\"weight\": -1e999, \"dnaMatchScore\": 1e999}");
	ASSERT_FALSE(info.has_weight);
	ASSERT_FALSE(info.has_dna_match_score);
}

static void test_correlation_id(void)
{
	char json[512];
	char long_id[PAYLOAD_CORRELATION_MAX + 2];
	struct payload_info info;

	info = parse_ok("{\"correlation_id\": \"tx-42\"}");
	ASSERT_STR_EQ(info.correlation_id, "tx-42");
	info = parse_ok("{\"correlationId\": \"tx-43\"}");
	ASSERT_STR_EQ(info.correlation_id, "tx-43");
	info = parse_ok("{\"correlation_id\": \"a\", \"correlationId\": \"b\"}");
	ASSERT_STR_EQ(info.correlation_id, "a");
	info = parse_ok("{\"correlation_id\": null, \"correlationId\": \"b\"}");
	ASSERT_STR_EQ(info.correlation_id, "b");
	info = parse_ok("{\"correlation_id\": \"\"}");
	ASSERT_STR_EQ(info.correlation_id, "");
	info = parse_ok("{\"correlation_id\": 42}");
	ASSERT_STR_EQ(info.correlation_id, "");
	/* An embedded \u0000 ends the C string. */
	info = parse_ok("{\"correlation_id\": \"ab\\u0000cd\"}");
	ASSERT_STR_EQ(info.correlation_id, "ab");
	info = parse_ok("{\"correlation_id\": \"caf\\u00e9\"}");
	ASSERT_STR_EQ(info.correlation_id, "caf\xc3\xa9");

	/* Exactly the limit is kept; one byte more is dropped. */
	memset(long_id, 'x', PAYLOAD_CORRELATION_MAX);
	long_id[PAYLOAD_CORRELATION_MAX] = '\0';
	snprintf(json, sizeof(json), "{\"correlation_id\": \"%s\"}", long_id);
	info = parse_ok(json);
	ASSERT_EQ_INT(strlen(info.correlation_id), PAYLOAD_CORRELATION_MAX);
	ASSERT_STR_EQ(info.correlation_id, long_id);
	long_id[PAYLOAD_CORRELATION_MAX] = 'x';
	long_id[PAYLOAD_CORRELATION_MAX + 1] = '\0';
	snprintf(json, sizeof(json), "{\"correlation_id\": \"%s\"}", long_id);
	info = parse_ok(json);
	ASSERT_STR_EQ(info.correlation_id, "");
}

static void test_size_limit(void)
{
	const char *text = "{\"trackId\": \"" U1 "\"}";
	size_t len = strlen(text);
	struct payload_info info;
	char expected[128];

	ASSERT_EQ_INT(PAYLOAD_DEFAULT_MAX_BYTES, 1048576);
	ASSERT_EQ_INT(parse_len(text, len, len, &info), 0);
	ASSERT_EQ_INT(info.target_type, TARGET_TRACK);
	snprintf(expected, sizeof(expected), "payload is %zu bytes, limit %zu", len, len - 1);
	assert_refused(text, len, len - 1, expected);
	assert_refused("{}", 2, 1, "payload is 2 bytes, limit 1");
	/* The size is checked before parsing: even garbage reports its size. */
	assert_refused("not json at all", 15, 10, "payload is 15 bytes, limit 10");
}

static void test_default_limit(void)
{
	/* A 1 MiB object is accepted at the default limit; one byte more is refused. */
	size_t len = PAYLOAD_DEFAULT_MAX_BYTES;
	char *big = malloc(len + 1);
	const char *head = "{\"correlation_id\": \"c1\", \"pad\": \"";
	struct payload_info info;
	char expected[128];

	ASSERT_TRUE(big != NULL);
	memset(big, 'p', len + 1);
	memcpy(big, head, strlen(head));
	memcpy(big + len - 2, "\"}", 2);
	ASSERT_EQ_INT(parse_len(big, len, PAYLOAD_DEFAULT_MAX_BYTES, &info), 0);
	ASSERT_STR_EQ(info.correlation_id, "c1");
	memcpy(big + len - 2, "p\"}", 3);
	snprintf(expected, sizeof(expected), "payload is %zu bytes, limit %u", len + 1,
		 PAYLOAD_DEFAULT_MAX_BYTES);
	assert_refused(big, len + 1, PAYLOAD_DEFAULT_MAX_BYTES, expected);
	free(big);
}

static void test_not_json(void)
{
	const char *bad[] = {
		"not json",
		"{",
		"}",
		"{\"a\": }",
		"{\"a\" 1}",
		"{'a': 1}",
		"{\"a\": 1,}",
		"{a: 1}",
		"{\"a\": tru}",
		"{\"a\": \"unterminated}",
		"   ",
		"{} x",
		"{}{}",
		"{} []",
		"{}\"",
		"[] x",
		"1 2",
		NULL,
	};
	size_t i;

	for (i = 0; bad[i] != NULL; i++)
		assert_refused(bad[i], strlen(bad[i]), PAYLOAD_DEFAULT_MAX_BYTES,
			       "payload is not valid JSON");
	/* A NUL inside the counted text is garbage too. */
	assert_refused("{}\0", 3, PAYLOAD_DEFAULT_MAX_BYTES, "payload is not valid JSON");
	/* The counted length is honoured: the text after it is not read. */
	{
		struct payload_info info;
		ASSERT_EQ_INT(parse_len("{} trailing", 2, PAYLOAD_DEFAULT_MAX_BYTES, &info), 0);
		ASSERT_EQ_INT(parse_len("{\"a\":1} x", 7, PAYLOAD_DEFAULT_MAX_BYTES, &info), 0);
		ASSERT_EQ_INT(parse_len("{\"a\":1}", 6, PAYLOAD_DEFAULT_MAX_BYTES, &info), -1);
	}
}

static void assert_refused_text(const char *text, const char *message)
{
	assert_refused(text, strlen(text), PAYLOAD_DEFAULT_MAX_BYTES, message);
}

static void test_not_object(void)
{
	assert_refused_text("[]", "payload is an array, not an object");
	assert_refused_text("[{\"trackId\": \"" U1 "\"}]", "payload is an array, not an object");
	assert_refused_text("\"{}\"", "payload is a string, not an object");
	assert_refused_text("42", "payload is a number, not an object");
	assert_refused_text("-1.5e3 ", "payload is a number, not an object");
	assert_refused_text("true", "payload is a boolean, not an object");
	assert_refused_text("false", "payload is a boolean, not an object");
	assert_refused_text("null", "payload is null, not an object");
}

static void test_hostile_input(void)
{
	size_t depth = 100000, i;
	char *deep = malloc(2 * depth + 16);
	struct payload_info info;

	/* 100000 '[': cJSON gives up at its nesting limit; no stack overflow. */
	ASSERT_TRUE(deep != NULL);
	memset(deep, '[', depth);
	assert_refused(deep, depth, PAYLOAD_DEFAULT_MAX_BYTES, "payload is not valid JSON");
	/* Balanced but deeper than the limit, inside an object. */
	memcpy(deep, "{\"a\":", 5);
	memset(deep + 5, '[', depth);
	memset(deep + 5 + depth, ']', depth);
	deep[5 + 2 * depth] = '}';
	assert_refused(deep, 5 + 2 * depth + 1, 4 * depth, "payload is not valid JSON");
	free(deep);

	/* Moderate nesting is fine. */
	{
		char nested[512];
		size_t n = 0;
		n += (size_t)snprintf(nested + n, sizeof(nested) - n, "{\"trackId\": \"" U1 "\", \"x\": ");
		for (i = 0; i < 100; i++)
			nested[n++] = '[';
		for (i = 0; i < 100; i++)
			nested[n++] = ']';
		nested[n++] = '}';
		nested[n] = '\0';
		assert_target(nested, TARGET_TRACK, U1);
	}

	/* Invalid UTF-8 and control bytes inside strings: accepted or refused, never a crash. */
	(void)parse("{\"correlation_id\": \"\xff\xfe\xc0\x80\"}", &info);
	(void)parse("{\"\xff\": \"\xed\xa0\x80\"}", &info);
	(void)parse("{\"trackId\": \"\x80" "23e4567-e89b-12d3-a456-426614174000\"}", &info);
	ASSERT_EQ_INT(info.target_type, TARGET_NONE);
	(void)parse("\xef\xbb\xbf{}", &info);
	(void)parse("{\"a\": \"\\ud800\"}", &info);
	(void)parse("{\"a\": \"\\udc00\\ud800\"}", &info);
	(void)parse("{\"a\": \"\\u12\"}", &info);
	(void)parse("\xff\xff\xff", &info);
	assert_refused("\xff\xff\xff", 3, PAYLOAD_DEFAULT_MAX_BYTES, "payload is not valid JSON");

	/* Huge numbers. */
	assert_amount("{\"amount_cents\": 123456789012345678901234567890123456789012345678901234567890}",
		      AMOUNT_INVALID, 0);
	(void)parse("{\"amount_cents\": 1234567890123456789012345678901234567890123456789012345678901234"
		    "5678901234567890}",
		    &info);
	(void)parse("{\"value\": -0000000000000000000000000000000000000000000000000000000000000000000"
		    "0000001}",
		    &info);
	info = parse_ok("{\"weight\": 1e-400, \"value\": -1e308}");
	ASSERT_TRUE(info.has_weight);
	ASSERT_TRUE(info.has_value);

	/* Many keys. */
	{
		size_t n = 20000 * 12 + 64, len = 0;
		char *many = malloc(n);
		ASSERT_TRUE(many != NULL);
		many[len++] = '{';
		for (i = 0; i < 20000; i++)
			len += (size_t)snprintf(many + len, n - len, "\"k%05zu\":%zu,", i, i % 10);
		len += (size_t)snprintf(many + len, n - len, "\"amountCents\":7}");
		ASSERT_EQ_INT(parse_len(many, len, PAYLOAD_DEFAULT_MAX_BYTES, &info), 0);
		ASSERT_EQ_INT(info.amount_state, AMOUNT_VALID);
		ASSERT_EQ_INT(info.amount_cents, 7);
		free(many);
	}
}

static void test_everything_at_once(void)
{
	struct payload_info info = parse_ok(
		"{\"trackId\": \"" U1_UPPER "\", \"artist_id\": \"" U2 "\", \"event_id\": \"" U3
		"\", \"brand_id\": \"" U1 "\", \"amountCents\": 2500, \"weight\": 2, \"value\": 9.5,"
		" \"dnaMatchScore\": 0.5, \"correlationId\": \"order-7\", \"nested\": {\"x\": [1]}}");

	ASSERT_EQ_INT(info.target_type, TARGET_TRACK);
	ASSERT_STR_EQ(info.target_id, U1);
	ASSERT_STR_EQ(info.track_id, U1);
	ASSERT_STR_EQ(info.artist_id, U2);
	ASSERT_STR_EQ(info.event_id, U3);
	ASSERT_STR_EQ(info.brand_id, U1);
	ASSERT_EQ_INT(info.amount_state, AMOUNT_VALID);
	ASSERT_EQ_INT(info.amount_cents, 2500);
	ASSERT_TRUE(info.has_weight);
	ASSERT_EQ_DBL(info.weight, 2.0, 0);
	ASSERT_TRUE(info.has_value);
	ASSERT_EQ_DBL(info.value, 9.5, 0);
	ASSERT_TRUE(info.has_dna_match_score);
	ASSERT_EQ_DBL(info.dna_match_score, 0.5, 0);
	ASSERT_STR_EQ(info.correlation_id, "order-7");
}

int main(void)
{
	test_uuid_canonical();
	test_target_type_name();
	test_absent_payload();
	test_target_key_forms();
	test_target_precedence();
	test_target_type();
	test_coliseum_ids();
	test_amounts();
	test_numbers();
	test_correlation_id();
	test_size_limit();
	test_default_limit();
	test_not_json();
	test_not_object();
	test_hostile_input();
	test_everything_at_once();
	TEST_PASS();
}
