/*
 * test_strbuf: the batch writes' array parameters. Text literals as PostgreSQL reads them, and
 * binary uuid[] / tid[] byte for byte as PostgreSQL's array_recv documents its format: int32
 * ndim, int32 flags, element type OID, int32 length and lower bound per dimension, then int32
 * length (-1 for NULL) and the value per element, all big-endian (uuid_recv: 16 bytes; tidrecv:
 * uint32 block, uint16 offset; timestamptz_recv: int64 microseconds since 2000-01-01 UTC). The
 * expected bytes are what the server's own array_send and timestamptz_send print.
 */
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "task.h"

static void assert_bytes(const struct array_param *a, const unsigned char *expected, size_t n)
{
	ASSERT_EQ_INT(array_param_length(a), (long long)n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)a->text.data[i] != expected[i])
			FAIL("byte %zu is 0x%02x, expected 0x%02x", i, (unsigned char)a->text.data[i], expected[i]);
}

static void test_text_literals(void)
{
	struct array_param a = {0}, q = {0}, e = {0};

	array_add_uuid(&a, "0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7f8");
	array_add_uuid(&a, NULL);
	array_add_uuid(&a, "");
	ASSERT_EQ_INT(array_finish(&a), 0);
	ASSERT_STR_EQ(a.text.data, "{0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7f8,NULL,NULL}");
	ASSERT_EQ_INT(array_param_format(&a), 0);
	array_add_quoted(&q, "a \"quoted\" \\ value");
	array_add_quoted(&q, NULL);
	ASSERT_EQ_INT(array_finish(&q), 0);
	ASSERT_STR_EQ(q.text.data, "{\"a \\\"quoted\\\" \\\\ value\",NULL}");
	ASSERT_EQ_INT(array_finish(&e), 0);
	ASSERT_STR_EQ(e.text.data, "{}");
	strbuf_free(&a.text);
	strbuf_free(&q.text);
	strbuf_free(&e.text);
}

static void test_binary_uuid(void)
{
	static const unsigned char expected[] = {
		0, 0, 0, 1,    /* one dimension */
		0, 0, 0, 1,    /* flags: has NULLs */
		0, 0, 0x0b, 0x86, /* uuid, OID 2950 */
		0, 0, 0, 3,    /* three elements */
		0, 0, 0, 1,    /* lower bound 1 */
		0, 0, 0, 16, 0x0b, 0x1e, 0x3a, 0x4c, 0x5d, 0x6e, 0x4f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8,
		0xff, 0xff, 0xff, 0xff, /* NULL */
		0, 0, 0, 16, 0xff, 0xff, 0xff, 0xff, 0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	};
	struct array_param a = {0};

	array_param_binary(&a, ARRAY_UUID_OID);
	array_add_uuid(&a, "0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7f8");
	array_add_uuid(&a, NULL);
	array_add_uuid(&a, "FFFFFFFF-ABCD-0000-0000-000000000001"); /* upper case is a uuid too */
	ASSERT_EQ_INT(array_finish(&a), 0);
	ASSERT_EQ_INT(array_param_format(&a), 1);
	assert_bytes(&a, expected, sizeof(expected));
	strbuf_free(&a.text);
}

/* Ids the daemon makes itself go in as their bytes: the same array as from their text. */
static void test_binary_uuid_bytes(void)
{
	static const unsigned char id[16] = {0x0b, 0x1e, 0x3a, 0x4c, 0x5d, 0x6e, 0x4f, 0x70,
					     0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8};
	struct array_param from_text = {0}, from_bytes = {0}, text_column = {0};

	array_param_binary(&from_text, ARRAY_UUID_OID);
	array_param_binary(&from_bytes, ARRAY_UUID_OID);
	array_add_uuid(&from_text, "0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7f8");
	array_add_uuid(&from_text, "0B1E3A4C-5D6E-4F70-8192-A3B4C5D6E7F8");
	array_add_uuid_bytes(&from_bytes, id);
	array_add_uuid_bytes(&from_bytes, id);
	ASSERT_EQ_INT(array_finish(&from_text), 0);
	ASSERT_EQ_INT(array_finish(&from_bytes), 0);
	assert_bytes(&from_bytes, (const unsigned char *)from_text.text.data, from_text.text.len);
	/* A text column has no place for bytes: the column fails rather than send something else. */
	array_add_uuid_bytes(&text_column, id);
	ASSERT_EQ_INT(array_finish(&text_column), -1);
	strbuf_free(&from_text.text);
	strbuf_free(&from_bytes.text);
	strbuf_free(&text_column.text);
}

static void test_binary_tid(void)
{
	static const unsigned char expected[] = {
		0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 27, /* tid, OID 27 */
		0, 0, 0, 2, 0, 0, 0, 1,
		0, 0, 0, 6, 0, 0, 0, 0, 0, 1,
		0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	struct array_param a = {0};

	array_param_binary(&a, ARRAY_TID_OID);
	array_add_tid(&a, "(0,1)");
	array_add_tid(&a, "(4294967295,65535)");
	ASSERT_EQ_INT(array_finish(&a), 0);
	assert_bytes(&a, expected, sizeof(expected));
	strbuf_free(&a.text);
}

/* A number's text is what "%.17g" prints for it, whether it takes the integer path or printf's. */
static void test_number_text(void)
{
	static const double values[] = {
		0.0, 1.0, -1.0, 7.0, 100.0, 1234567.0, -987654321.0, 9007199254740991.0, 9007199254740992.0,
		-9007199254740992.0, 9007199254740994.0, 1e17, 1e300, 0.5, -0.25, 0.1, 1.0 / 3.0, -0.0, 2.5e-8,
	};
	struct array_param a = {0};
	struct strbuf expected = {0};

	strbuf_add_str(&expected, "{");
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char text[40];

		array_add_number(&a, values[i]);
		snprintf(text, sizeof(text), "%.17g", values[i]);
		if (i > 0)
			strbuf_add_str(&expected, ",");
		strbuf_add_str(&expected, text);
	}
	strbuf_add_str(&expected, "}");
	ASSERT_EQ_INT(array_finish(&a), 0);
	ASSERT_STR_EQ(a.text.data, expected.data);
	strbuf_free(&a.text);
	strbuf_free(&expected);
}

/* A ctid's bytes as the claim reads them (tidsend) make the same column; a text column refuses them. */
static void test_binary_tid_bytes(void)
{
	static const unsigned char first[6] = {0, 0, 0, 0, 0, 1}, last[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const unsigned char expected[] = {
		0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 27,
		0, 0, 0, 2, 0, 0, 0, 1,
		0, 0, 0, 6, 0, 0, 0, 0, 0, 1,
		0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	struct array_param a = {0}, text = {0};

	array_param_binary(&a, ARRAY_TID_OID);
	array_add_tid_bytes(&a, first);
	array_add_tid_bytes(&a, last);
	ASSERT_EQ_INT(array_finish(&a), 0);
	assert_bytes(&a, expected, sizeof(expected));
	strbuf_free(&a.text);
	array_add_tid_bytes(&text, first);
	ASSERT_TRUE(text.invalid);
	ASSERT_EQ_INT(array_finish(&text), -1);
	strbuf_free(&text.text);
}

/* The bytes PostgreSQL's timestamptz_send gives for the same instants. */
static void test_binary_timestamptz(void)
{
	static const unsigned char expected[] = {
		0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x04, 0xa0, /* timestamptz, OID 1184 */
		0, 0, 0, 3, 0, 0, 0, 1,
		0, 0, 0, 8, 0x00, 0x02, 0xea, 0x47, 0x0a, 0xea, 0x42, 0x40, /* 2026-01-01 00:00:00.123456+00 */
		0, 0, 0, 8, 0xff, 0xfc, 0xa2, 0xfe, 0xc4, 0xc8, 0x20, 0x00, /* 1970-01-01 00:00:00+00 */
		0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0,                         /* 2000-01-01 00:00:00+00 */
	};
	struct array_param a = {0}, wrong = {0};

	array_param_binary(&a, ARRAY_TIMESTAMPTZ_OID);
	array_add_timestamp(&a, INT64_C(1767225600123456));
	array_add_timestamp(&a, 0);
	array_add_timestamp(&a, INT64_C(946684800000000));
	ASSERT_EQ_INT(array_finish(&a), 0);
	assert_bytes(&a, expected, sizeof(expected));
	strbuf_free(&a.text);
	/* Only a timestamptz column takes one: never text, never another element type. */
	array_add_timestamp(&wrong, 0);
	ASSERT_EQ_INT(array_finish(&wrong), -1);
	strbuf_free(&wrong.text);
}

static void test_binary_empty(void)
{
	static const unsigned char expected[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b, 0x86};
	struct array_param a = {0};

	array_param_binary(&a, ARRAY_UUID_OID);
	ASSERT_EQ_INT(array_finish(&a), 0);
	assert_bytes(&a, expected, sizeof(expected));
	strbuf_free(&a.text);
}

/* A value that is not a uuid / ctid fails the whole column: never a wrong value on the server. */
static void test_binary_invalid(void)
{
	static const char *const bad_uuids[] = {
		"0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7f",   /* short */
		"0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7f80", /* long */
		"0b1e3a4c5d6e-4f70-8192-a3b4c5d6e7f8-",  /* hyphens misplaced */
		"0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7g8",  /* not hex */
		"{0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7f8}",
		"0b1e3a4c",                              /* ends where a hyphen belongs */
		"0b1e3a4c-5",                            /* ends inside a byte */
		"0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7\xc3\xa9", /* a multibyte character */
		"0b1e3a4c+5d6e-4f70-8192-a3b4c5d6e7f8",  /* another separator */
	};
	static const char *const bad_tids[] = {
		"(4294967296,1)", "(1,65536)", "(1,2", "1,2)", "(,2)", "(1,)", "(1,2)x", "(-1,2)", "( 1,2)", "", NULL,
	};

	for (size_t i = 0; i < sizeof(bad_uuids) / sizeof(bad_uuids[0]); i++) {
		struct array_param a = {0};
		array_param_binary(&a, ARRAY_UUID_OID);
		array_add_uuid(&a, "0b1e3a4c-5d6e-4f70-8192-a3b4c5d6e7f8");
		array_add_uuid(&a, bad_uuids[i]);
		ASSERT_EQ_INT(array_finish(&a), -1);
		ASSERT_TRUE(a.invalid);
		strbuf_free(&a.text);
	}
	for (size_t i = 0; i < sizeof(bad_tids) / sizeof(bad_tids[0]); i++) {
		struct array_param a = {0};
		array_param_binary(&a, ARRAY_TID_OID);
		array_add_tid(&a, bad_tids[i]);
		ASSERT_EQ_INT(array_finish(&a), -1);
		strbuf_free(&a.text);
	}
}

/* text_copy: snprintf's "%s" without the format: cut to fit, always terminated. */
static void test_text_copy(void)
{
	char small[6], exact[4];
	char *end;

	end = text_copy(small, sizeof(small), "abc");
	ASSERT_STR_EQ(small, "abc");
	ASSERT_TRUE(end == small + 3);
	end = text_copy(small, sizeof(small), "abcdefgh");
	ASSERT_STR_EQ(small, "abcde");
	ASSERT_TRUE(end == small + 5);
	text_copy(exact, sizeof(exact), "xyz");
	ASSERT_STR_EQ(exact, "xyz");
	text_copy(exact, sizeof(exact), "");
	ASSERT_STR_EQ(exact, "");
	text_copy(exact, 1, "xyz");
	ASSERT_STR_EQ(exact, "");
	exact[0] = 'q';
	ASSERT_TRUE(text_copy(exact, 0, "xyz") == exact);
	ASSERT_EQ_INT(exact[0], 'q'); /* size 0: nothing written */
}

int main(void)
{
	test_text_copy();
	test_text_literals();
	test_binary_uuid();
	test_binary_uuid_bytes();
	test_binary_tid();
	test_binary_tid_bytes();
	test_number_text();
	test_binary_timestamptz();
	test_binary_empty();
	test_binary_invalid();
	TEST_PASS();
}
