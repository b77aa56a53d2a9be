/* payload: reading an entry's JSON payload into the facts the handlers need (SPEC sections 3 and 4). */
#include "payload.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

/*
 * The largest accepted amount in cents: 2^53 - 1, the largest integer below
 * which every integer is exactly representable as a double (the coliseum metric
 * travels as one). Amounts are read from their JSON text (classify_amount_text),
 * so an accepted amount is always exactly the amount that was written.
 */
#define AMOUNT_MAX_CENTS 9007199254740991.0

static void set_error(char *err, size_t errlen, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t errlen, const char *format, ...)
{
	va_list args;

	if (err == NULL || errlen == 0)
		return;
	va_start(args, format);
	vsnprintf(err, errlen, format, args);
	va_end(args);
}

static int is_hex_digit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int uuid_canonical(const char *text, uuid_text out)
{
	uuid_text canonical;
	size_t i;

	if (text == NULL)
		goto refuse;
	/* The loop stops at a NUL before position 36, since NUL is neither hex nor '-'. */
	for (i = 0; i < UUID_TEXT_LEN; i++) {
		char c = text[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				goto refuse;
			canonical[i] = c;
		} else {
			if (!is_hex_digit(c))
				goto refuse;
			canonical[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
		}
	}
	if (text[UUID_TEXT_LEN] != '\0')
		goto refuse;
	canonical[UUID_TEXT_LEN] = '\0';
	if (out != NULL)
		memcpy(out, canonical, sizeof(canonical));
	return 0;

refuse:
	if (out != NULL)
		out[0] = '\0';
	return -1;
}

const char *target_type_name(enum target_type type)
{
	switch (type) {
	case TARGET_TRACK:
		return "track";
	case TARGET_ARTIST:
		return "artist";
	case TARGET_EVENT:
		return "event";
	case TARGET_NONE:
	default:
		return NULL;
	}
}

/*
 * The value of the first of the keys (a NULL-terminated list, looked up
 * case-sensitively) that is present and not JSON null, or NULL. Later keys are
 * only consulted when earlier ones are absent: a present value of the wrong
 * type decides the outcome, it does not fall through to the next spelling.
 */
static const cJSON *first_present(const cJSON *object, const char *const *keys)
{
	for (; *keys != NULL; keys++) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, *keys);
		if (item != NULL && !cJSON_IsNull(item))
			return item;
	}
	return NULL;
}

/* Canonical UUID of item into out when it is a UUID string; else out is "" and -1. */
static int read_uuid(const cJSON *item, uuid_text out)
{
	out[0] = '\0';
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return -1;
	return uuid_canonical(item->valuestring, out);
}

static void read_uuid_keys(const cJSON *object, const char *const *keys, uuid_text out)
{
	read_uuid(first_present(object, keys), out);
}

static enum target_type target_type_from_item(const cJSON *item)
{
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return TARGET_NONE;
	if (strcmp(item->valuestring, "track") == 0)
		return TARGET_TRACK;
	if (strcmp(item->valuestring, "artist") == 0)
		return TARGET_ARTIST;
	if (strcmp(item->valuestring, "event") == 0)
		return TARGET_EVENT;
	return TARGET_NONE;
}

/*
 * SPEC section 3: the first key present (non-null) in the order below names the
 * target; when its value is not a UUID string, or (for targetId) the target
 * type is missing or unknown, there is no target at all.
 */
static void resolve_target(const cJSON *object, struct payload_info *info)
{
	static const struct {
		const char *key;
		enum target_type type; /* TARGET_NONE: read targetType / target_type */
	} target_keys[] = {
		{"trackId", TARGET_TRACK},   {"track_id", TARGET_TRACK}, {"content_id", TARGET_TRACK},
		{"artistId", TARGET_ARTIST}, {"artist_id", TARGET_ARTIST}, {"eventId", TARGET_EVENT},
		{"event_id", TARGET_EVENT},  {"targetId", TARGET_NONE},  {"target_id", TARGET_NONE},
	};
	static const char *const target_type_keys[] = {"targetType", "target_type", NULL};
	size_t i;

	info->target_type = TARGET_NONE;
	info->target_id[0] = '\0';
	for (i = 0; i < sizeof(target_keys) / sizeof(target_keys[0]); i++) {
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, target_keys[i].key);
		enum target_type type = target_keys[i].type;

		if (item == NULL || cJSON_IsNull(item))
			continue;
		if (type == TARGET_NONE)
			type = target_type_from_item(first_present(object, target_type_keys));
		if (type != TARGET_NONE && read_uuid(item, info->target_id) == 0)
			info->target_type = type;
		else
			info->target_id[0] = '\0';
		return;
	}
}

static void read_coliseum_ids(const cJSON *object, struct payload_info *info)
{
	static const char *const artist_keys[] = {"artistId", "artist_id", NULL};
	static const char *const event_keys[] = {"eventId", "event_id", NULL};
	static const char *const track_keys[] = {"trackId", "track_id", "content_id", NULL};
	static const char *const brand_keys[] = {"brandId", "brand_id", NULL};

	read_uuid_keys(object, artist_keys, info->artist_id);
	read_uuid_keys(object, event_keys, info->event_id);
	read_uuid_keys(object, track_keys, info->track_id);
	read_uuid_keys(object, brand_keys, info->brand_id);
}

/* Bytes cJSON skips as whitespace (everything up to 0x20). */
static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p <= 0x20)
		p++;
	return p;
}

/* Past the string that starts at p (a '"'), or NULL when it does not end. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Past the value that starts at p: a string, an array or object (nesting counted), or a literal. */
static const char *skip_value(const char *p, const char *end)
{
	long depth = 0;

	if (p < end && *p == '"')
		return skip_string(p, end);
	while (p < end) {
		if (*p == '"') {
			p = skip_string(p, end);
			if (!p)
				return NULL;
			continue;
		}
		if (*p == '[' || *p == '{') {
			depth++;
		} else if (*p == ']' || *p == '}') {
			if (depth == 0)
				return p;
			if (--depth == 0)
				return p + 1;
		} else if (depth == 0 && (*p == ',' || (unsigned char)*p <= 0x20)) {
			return p;
		}
		p++;
	}
	return depth == 0 ? p : NULL;
}

/*
 * Whether the JSON string key [p, end) (without its quotes) spells name: escapes are decoded
 * (\uXXXX only below 0x80, which is all a name of ours uses; anything else cannot match).
 */
static bool key_equals(const char *p, const char *end, const char *name)
{
	while (p < end) {
		unsigned c = (unsigned char)*p++;

		if (c == '\\') {
			if (p >= end)
				return false;
			c = (unsigned char)*p++;
			if (c == 'u') {
				unsigned code = 0;
				for (int i = 0; i < 4; i++, p++) {
					if (p >= end || !is_hex_digit(*p))
						return false;
					code = code * 16 + (unsigned)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
				}
				if (code >= 0x80)
					return false;
				c = code;
			} else if (c != '"' && c != '\\' && c != '/') {
				return false; /* \b \f \n \r \t: no name of ours has them */
			}
		}
		if (*name == '\0' || (unsigned char)*name != c)
			return false;
		name++;
	}
	return *name == '\0';
}

/*
 * The text of the first top-level member named key of the JSON object json[0..len) (already
 * parsed by cJSON, whose first member of a name is the one it returns). Returns false when absent.
 */
static bool member_text(const char *json, size_t len, const char *key, const char **text, size_t *text_len)
{
	const char *end = json + len;
	const char *p = skip_space(json, end);

	if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p = skip_space(p + 3, end);
	if (p >= end || *p != '{')
		return false;
	p = skip_space(p + 1, end);
	while (p < end && *p == '"') {
		const char *key_start = p + 1, *key_end = skip_string(p, end), *value_end;

		if (!key_end)
			return false;
		p = skip_space(key_end, end);
		if (p >= end || *p != ':')
			return false;
		p = skip_space(p + 1, end);
		value_end = skip_value(p, end);
		if (!value_end)
			return false;
		if (key_equals(key_start, key_end - 1, key)) {
			*text = p;
			*text_len = (size_t)(value_end - p);
			return true;
		}
		p = skip_space(value_end, end);
		if (p < end && *p == ',')
			p = skip_space(p + 1, end);
	}
	return false;
}

/*
 * Decide an amount on the JSON number's text, not on a double it rounds to: a non-negative
 * integer (in any notation: 100, 100.0, 1e2) up to AMOUNT_MAX_CENTS. 100.00000000000000001 and
 * 1e-400 are fractions, however a double would round them.
 */
static enum amount_state classify_amount_text(const char *text, size_t len, int64_t *cents)
{
	const char *p = text, *end = text + len;
	char digits[24];
	int n_digits = 0;
	long long exponent = 0;
	bool negative = false, any_digit = false;

	if (p < end && *p == '-') {
		negative = true;
		p++;
	}
	/* Significant digits (leading zeros dropped), and how far the decimal point moves them. */
	for (int part = 0; part < 2; part++) {
		if (part == 1) {
			if (p >= end || *p != '.')
				break;
			p++;
			if (p >= end || *p < '0' || *p > '9')
				return AMOUNT_INVALID;
		}
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			any_digit = true;
			if (n_digits == 0 && *p == '0') {
				if (part == 1)
					exponent--;
				continue;
			}
			if (n_digits < (int)sizeof(digits) - 1)
				digits[n_digits] = *p;
			else if (*p != '0')
				return AMOUNT_INVALID; /* more significant digits than any amount has */
			n_digits++;
			if (part == 1)
				exponent--;
		}
	}
	if (!any_digit)
		return AMOUNT_INVALID;
	if (p < end && (*p == 'e' || *p == 'E')) {
		long long e = 0;
		bool e_negative = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			e_negative = *p++ == '-';
		if (p >= end || *p < '0' || *p > '9')
			return AMOUNT_INVALID;
		for (; p < end && *p >= '0' && *p <= '9'; p++)
			if (e < 1000000)
				e = e * 10 + (*p - '0');
		exponent += e_negative ? -e : e;
	}
	if (p != end)
		return AMOUNT_INVALID;
	if (n_digits == 0) {
		*cents = 0; /* zero, whatever its notation (also -0) */
		return AMOUNT_VALID;
	}
	if (n_digits > (int)sizeof(digits) - 1) {
		/* Trailing zeros beyond the buffer only scale the value up. */
		exponent += n_digits - ((int)sizeof(digits) - 1);
		n_digits = (int)sizeof(digits) - 1;
	}
	while (n_digits > 0 && digits[n_digits - 1] == '0') {
		n_digits--;
		exponent++;
	}
	if (negative || exponent < 0 || n_digits + exponent > 16)
		return AMOUNT_INVALID;
	{
		double value = 0;
		for (int i = 0; i < n_digits; i++)
			value = value * 10 + (digits[i] - '0');
		for (long long i = 0; i < exponent; i++)
			value *= 10;
		/* At most 16 digits: every step above is exact in a double below 2^53. */
		if (value > AMOUNT_MAX_CENTS)
			return AMOUNT_INVALID;
		*cents = (int64_t)value;
	}
	return AMOUNT_VALID;
}

/* One amount key: absent/null, or a non-negative integer up to AMOUNT_MAX_CENTS (on its text). */
static enum amount_state classify_amount(const cJSON *item, const char *json, size_t len, const char *key,
					 int64_t *cents)
{
	const char *text;
	size_t text_len;

	if (item == NULL || cJSON_IsNull(item))
		return AMOUNT_ABSENT;
	if (!cJSON_IsNumber(item) || !member_text(json, len, key, &text, &text_len))
		return AMOUNT_INVALID;
	return classify_amount_text(text, text_len, cents);
}

/*
 * amount_cents and amountCents are two spellings of one fact: either may be
 * given; an invalid value in either, or two valid but different values, make
 * the amount invalid (the treasury handler turns that into a permanent error).
 */
static void read_amount(const cJSON *object, const char *json, size_t len, struct payload_info *info)
{
	int64_t snake_cents = 0, camel_cents = 0;
	enum amount_state snake = classify_amount(cJSON_GetObjectItemCaseSensitive(object, "amount_cents"), json, len,
						  "amount_cents", &snake_cents);
	enum amount_state camel = classify_amount(cJSON_GetObjectItemCaseSensitive(object, "amountCents"), json, len,
						  "amountCents", &camel_cents);

	info->amount_cents = 0;
	if (snake == AMOUNT_INVALID || camel == AMOUNT_INVALID) {
		info->amount_state = AMOUNT_INVALID;
	} else if (snake == AMOUNT_VALID && camel == AMOUNT_VALID) {
		info->amount_state = snake_cents == camel_cents ? AMOUNT_VALID : AMOUNT_INVALID;
		if (info->amount_state == AMOUNT_VALID)
			info->amount_cents = snake_cents;
	} else if (snake == AMOUNT_VALID) {
		info->amount_state = AMOUNT_VALID;
		info->amount_cents = snake_cents;
	} else if (camel == AMOUNT_VALID) {
		info->amount_state = AMOUNT_VALID;
		info->amount_cents = camel_cents;
	} else {
		info->amount_state = AMOUNT_ABSENT;
	}
}

/* A finite JSON number under the first present key; false for anything else. */
static bool read_finite_number(const cJSON *object, const char *const *keys, double *out)
{
	const cJSON *item = first_present(object, keys);

	if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
		return false;
	*out = item->valuedouble;
	return true;
}

static void read_numbers(const cJSON *object, struct payload_info *info)
{
	static const char *const weight_keys[] = {"weight", NULL};
	static const char *const value_keys[] = {"value", NULL};
	static const char *const score_keys[] = {"dna_match_score", "dnaMatchScore", NULL};
	double score;

	info->has_weight = read_finite_number(object, weight_keys, &info->weight);
	info->has_value = read_finite_number(object, value_keys, &info->value);
	info->has_dna_match_score = read_finite_number(object, score_keys, &score) &&
				    score >= 0.0 && score <= 1.0;
	if (info->has_dna_match_score)
		info->dna_match_score = score;
}

static void read_correlation_id(const cJSON *object, struct payload_info *info)
{
	static const char *const keys[] = {"correlation_id", "correlationId", NULL};
	const cJSON *item = first_present(object, keys);
	size_t length;

	info->correlation_id[0] = '\0';
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return;
	length = strlen(item->valuestring);
	if (length == 0 || length > PAYLOAD_CORRELATION_MAX)
		return;
	memcpy(info->correlation_id, item->valuestring, length + 1);
}

/* The name of a JSON value's type, with its article, for the "not an object" error. */
static const char *json_type_phrase(const cJSON *item)
{
	if (cJSON_IsArray(item))
		return "an array";
	if (cJSON_IsString(item))
		return "a string";
	if (cJSON_IsNumber(item))
		return "a number";
	if (cJSON_IsBool(item))
		return "a boolean";
	if (cJSON_IsNull(item))
		return "null";
	return "an unknown JSON value";
}

static bool is_json_whitespace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int payload_parse(const char *json, size_t len, size_t max_bytes, struct payload_info *info,
		  char *err, size_t errlen)
{
	const char *parse_end = NULL;
	const char *end;
	cJSON *root;
	int rc = -1;

	memset(info, 0, sizeof(*info));
	if (json == NULL)
		len = 0;
	if (len > max_bytes) {
		set_error(err, errlen, "payload is %zu bytes, limit %zu", len, max_bytes);
		return -1;
	}
	if (len == 0)
		return 0; /* an absent payload reads as {} */

	/*
	 * The text need not be NUL-terminated (a PostgreSQL value is counted), so
	 * cJSON is told the length and not to look for a terminator; anything but
	 * JSON whitespace after the value is then refused here. (Before and inside
	 * the value cJSON itself is lenient: it skips a UTF-8 BOM and treats every
	 * byte up to 0x20 as whitespace. That accepts a little more than JSON but
	 * never misreads a value.)
	 */
	root = cJSON_ParseWithLengthOpts(json, len, &parse_end, false);
	if (root == NULL) {
		set_error(err, errlen, "payload is not valid JSON");
		return -1;
	}
	end = json + len;
	while (parse_end != NULL && parse_end >= json && parse_end < end &&
	       is_json_whitespace(*parse_end))
		parse_end++;
	if (parse_end != end) {
		set_error(err, errlen, "payload is not valid JSON");
		goto free_root;
	}
	if (!cJSON_IsObject(root)) {
		set_error(err, errlen, "payload is %s, not an object", json_type_phrase(root));
		goto free_root;
	}

	resolve_target(root, info);
	read_coliseum_ids(root, info);
	read_amount(root, json, len, info);
	read_numbers(root, info);
	read_correlation_id(root, info);
	rc = 0;

free_root:
	cJSON_Delete(root);
	return rc;
}
