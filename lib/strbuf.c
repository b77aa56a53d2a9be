/* strbuf: a growable string, PostgreSQL array parameters (text or binary) and UTF-8-safe truncation. */
#include "strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

void strbuf_add(struct strbuf *sb, const char *text, size_t n)
{
	if (sb->failed)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap * 2 : 256;
		char *data;
		while (cap < sb->len + n + 1)
			cap *= 2;
		data = realloc(sb->data, cap);
		if (!data) {
			sb->failed = true;
			return;
		}
		sb->data = data;
		sb->cap = cap;
	}
	memcpy(sb->data + sb->len, text, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

char *text_copy(char *dst, size_t size, const char *src)
{
	size_t n;

	if (size == 0)
		return dst; /* no room even for the terminator */
	n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
	return dst + n;
}

void strbuf_add_str(struct strbuf *sb, const char *text)
{
	strbuf_add(sb, text, strlen(text));
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;
	int n;

	if (sb->failed)
		return;
	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->failed = true;
		return;
	}
	strbuf_add(sb, text, (size_t)n);
	free(text);
}

char *strbuf_take(struct strbuf *sb)
{
	char *data = sb->failed ? NULL : sb->data;

	if (sb->failed)
		free(sb->data);
	else if (!data)
		data = calloc(1, 1);
	memset(sb, 0, sizeof(*sb));
	return data;
}

void strbuf_free(struct strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}

char *sql_printf(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;

	va_start(ap, fmt);
	if (vasprintf(&out, fmt, ap) < 0)
		out = NULL;
	va_end(ap);
	return out;
}

void utf8_truncate(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	s[n] = '\0';
}

static int compare_uuid_text(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *uuid_array_literal(const char **ids, int n)
{
	struct strbuf sb = {0};
	const char **sorted = malloc(sizeof(*sorted) * (size_t)(n > 0 ? n : 1));
	const char *last = NULL;
	bool first = true;

	if (!sorted)
		return NULL;
	if (n > 0)
		memcpy(sorted, ids, sizeof(*sorted) * (size_t)n);
	qsort(sorted, (size_t)n, sizeof(*sorted), compare_uuid_text);
	strbuf_add_str(&sb, "{");
	for (int i = 0; i < n; i++) {
		if (!sorted[i][0] || (last && strcmp(last, sorted[i]) == 0))
			continue;
		if (!first)
			strbuf_add_str(&sb, ",");
		strbuf_add_str(&sb, sorted[i]);
		first = false;
		last = sorted[i];
	}
	strbuf_add_str(&sb, "}");
	free(sorted);
	if (sb.failed) {
		strbuf_free(&sb);
		return NULL;
	}
	return sb.data;
}

/*
 * The binary array format (array_recv; the header is vec.c's, shared with the vector arrays):
 * int32 dimensions (1; 0 for an empty array), int32 flags (1: has NULLs, as array_send writes it;
 * array_recv reads the NULLs off the lengths), element type OID, then per dimension int32 length
 * and int32 lower bound (1), then per value an int32 length (-1: NULL) and the value's bytes. All
 * integers big-endian.
 */
static void binary_add(struct array_param *a, const unsigned char *value, size_t length, bool null)
{
	unsigned char size[4];

	if (a->n++ == 0) {
		unsigned char header[VEC_ARRAY_HEADER_SIZE] = {0}; /* written by array_finish */
		strbuf_add(&a->text, (const char *)header, sizeof(header));
	}
	a->has_null |= null;
	vec_write_be32(size, null ? UINT32_MAX : (uint32_t)length); /* -1 for NULL */
	strbuf_add(&a->text, (const char *)size, sizeof(size));
	if (!null)
		strbuf_add(&a->text, (const char *)value, length);
}

/* Each hex digit's value plus one; 0 for any other byte (one load per character). */
static const unsigned char hex_value_plus_one[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
	['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/*
 * A uuid's canonical text (8-4-4-4-12 hex digits, either case) as its 16 bytes. Returns 0, or -1
 * for anything else. Reads in order and stops at the first byte out of place, so a short string
 * (its NUL is neither a digit nor a hyphen) is never read past.
 */
static int uuid_bytes(const char *text, unsigned char out[16])
{
	const unsigned char *c = (const unsigned char *)text;

	for (int k = 0; k < 16; k++) {
		int high, low;

		if ((k == 4 || k == 6 || k == 8 || k == 10) && *c++ != '-')
			return -1;
		high = hex_value_plus_one[*c++] - 1;
		if (high < 0)
			return -1;
		low = hex_value_plus_one[*c++] - 1;
		if (low < 0)
			return -1;
		out[k] = (unsigned char)(high << 4 | low);
	}
	return *c == '\0' ? 0 : -1;
}

/* "(block,offset)" as tid's 6 bytes (uint32 block, uint16 offset). Returns 0, or -1. */
static int tid_bytes(const char *text, unsigned char out[6])
{
	unsigned long long block = 0, offset = 0;
	const char *c = text;
	int digits = 0;

	if (*c++ != '(')
		return -1;
	for (; *c >= '0' && *c <= '9' && block <= UINT32_MAX; c++, digits++)
		block = block * 10 + (unsigned)(*c - '0');
	if (!digits || block > UINT32_MAX || *c++ != ',')
		return -1;
	for (digits = 0; *c >= '0' && *c <= '9' && offset <= UINT16_MAX; c++, digits++)
		offset = offset * 10 + (unsigned)(*c - '0');
	if (!digits || offset > UINT16_MAX || c[0] != ')' || c[1] != '\0')
		return -1;
	vec_write_be32(out, (uint32_t)block);
	out[4] = (unsigned char)(offset >> 8);
	out[5] = (unsigned char)offset;
	return 0;
}

void array_param_binary(struct array_param *a, unsigned element_oid)
{
	a->element_oid = element_oid;
}

void array_add(struct array_param *a, const char *value)
{
	strbuf_add_str(&a->text, a->n++ ? "," : "{");
	strbuf_add_str(&a->text, value ? value : "NULL");
}

void array_add_quoted(struct array_param *a, const char *value)
{
	if (!value) {
		array_add(a, NULL);
		return;
	}
	strbuf_add_str(&a->text, a->n++ ? ",\"" : "{\"");
	for (const char *c = value; *c; c++) {
		const char *run = c;
		while (*c && *c != '"' && *c != '\\')
			c++;
		strbuf_add(&a->text, run, (size_t)(c - run));
		if (!*c)
			break;
		strbuf_add(&a->text, "\\", 1);
		strbuf_add(&a->text, c, 1);
	}
	strbuf_add_str(&a->text, "\"");
}

void array_add_number(struct array_param *a, double value)
{
	char text[40];

	/*
	 * An integer of at most 2^53 in magnitude (a count, cents, the usual metric of 1) prints as
	 * its digits, the text "%.17g" gives it, without the cost of printf's floating-point path (a
	 * coliseum row has one or two numbers). -0 is left to printf ("-0").
	 */
	if (value >= -9007199254740992.0 && value <= 9007199254740992.0 && value == (double)(long long)value &&
	    !(value == 0.0 && signbit(value))) {
		long long n = (long long)value;
		unsigned long long u = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
		char *p = text + sizeof(text) - 1;

		*p = '\0';
		do {
			*--p = (char)('0' + u % 10);
			u /= 10;
		} while (u);
		if (n < 0)
			*--p = '-';
		array_add(a, p);
		return;
	}
	snprintf(text, sizeof(text), "%.17g", value);
	array_add(a, text);
}

void array_add_uuid(struct array_param *a, const char *id)
{
	unsigned char bytes[16];

	if (a->element_oid != ARRAY_UUID_OID) {
		array_add(a, id && id[0] ? id : NULL);
		return;
	}
	if (!id || !id[0]) {
		binary_add(a, NULL, 0, true);
		return;
	}
	if (uuid_bytes(id, bytes) < 0)
		a->invalid = true;
	binary_add(a, bytes, sizeof(bytes), false);
}

void array_add_uuid_bytes(struct array_param *a, const unsigned char bytes[16])
{
	if (a->element_oid != ARRAY_UUID_OID) {
		a->invalid = true; /* the text form is array_add_uuid's */
		return;
	}
	binary_add(a, bytes, 16, false);
}

void array_add_tid(struct array_param *a, const char *ctid)
{
	unsigned char bytes[6] = {0};

	if (a->element_oid != ARRAY_TID_OID) {
		array_add_quoted(a, ctid);
		return;
	}
	if (!ctid || tid_bytes(ctid, bytes) < 0)
		a->invalid = true;
	binary_add(a, bytes, sizeof(bytes), false);
}

void array_add_tid_bytes(struct array_param *a, const unsigned char bytes[6])
{
	if (a->element_oid != ARRAY_TID_OID) {
		a->invalid = true; /* the text form is array_add_tid's */
		return;
	}
	binary_add(a, bytes, 6, false);
}

void array_add_timestamp(struct array_param *a, int64_t unix_us)
{
	unsigned char bytes[8];
	uint64_t v;

	if (a->element_oid != ARRAY_TIMESTAMPTZ_OID || unix_us < INT64_MIN + POSTGRES_EPOCH_US) {
		a->invalid = true;
		return;
	}
	v = (uint64_t)(unix_us - POSTGRES_EPOCH_US);
	vec_write_be32(bytes, (uint32_t)(v >> 32));
	vec_write_be32(bytes + 4, (uint32_t)v);
	binary_add(a, bytes, sizeof(bytes), false);
}

int array_finish(struct array_param *a)
{
	if (!a->element_oid) {
		strbuf_add_str(&a->text, a->n ? "}" : "{}");
		return a->text.failed || a->invalid ? -1 : 0;
	}
	if (a->n == 0) {
		unsigned char empty[12] = {0}; /* no dimensions, no flags, the element type */
		vec_write_be32(empty + 8, a->element_oid);
		strbuf_add(&a->text, (const char *)empty, sizeof(empty));
	} else if (!a->text.failed) {
		vec_write_array_header((unsigned char *)a->text.data, a->element_oid, a->n, a->has_null);
	}
	return a->text.failed || a->invalid ? -1 : 0;
}

int array_params_finish(struct array_param *columns, int n, const char **values, int *lengths, int *formats)
{
	bool failed = false, invalid = false;

	for (int i = 0; i < n; i++) {
		failed |= array_finish(&columns[i]) < 0;
		invalid |= columns[i].invalid;
		values[i] = columns[i].text.data;
		lengths[i] = array_param_length(&columns[i]);
		formats[i] = array_param_format(&columns[i]);
	}
	return invalid ? -2 : failed ? -1 : 0;
}

int array_param_length(const struct array_param *a)
{
	return (int)a->text.len;
}

int array_param_format(const struct array_param *a)
{
	return a->element_oid ? 1 : 0;
}
