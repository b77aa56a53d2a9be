/* test_uuid_v7: time-ordered ids: layout, strict increase within and across milliseconds. */
#include <string.h>

#include "task.h"
#include "uuid_v7.h"

static const uint8_t ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t zeros[8] = {0};

/* The next id in its text form: ids compare as PostgreSQL compares uuids, i.e. as their text. */
static void next_text(struct uuid_v7 *g, uint64_t ms, const uint8_t random[8], char out[UUID_TEXT_SIZE])
{
	uint8_t bytes[UUID_BYTES];

	uuid_v7_next_bytes(g, ms, random, bytes);
	uuid_format(bytes, out);
}

static void generate_text(struct uuid_v7 *g, char out[UUID_TEXT_SIZE])
{
	uint8_t bytes[UUID_BYTES];

	uuid_v7_generate_bytes(g, bytes);
	uuid_format(bytes, out);
}

static void test_layout(void)
{
	struct uuid_v7 g = {0};
	char id[UUID_TEXT_SIZE];

	/* 2026-01-01T00:00:00Z = 1767225600000 ms = 0x019b76daa800. */
	next_text(&g, 1767225600000ull, ones, id);
	ASSERT_STR_EQ(id, "019b76da-a800-7000-bfff-ffffffffffff");
	next_text(&g, 1767225600000ull, zeros, id);
	ASSERT_STR_EQ(id, "019b76da-a800-7001-8000-000000000000");
}

/* The bytes are the text's, in order (uuid_send's layout), and carry the same counter. */
static void test_bytes(void)
{
	static const uint8_t expected[UUID_BYTES] = {0x01, 0x9b, 0x76, 0xda, 0xa8, 0x00, 0x70, 0x01,
						     0x80, 0, 0, 0, 0, 0, 0, 0};
	struct uuid_v7 g = {0};
	uint8_t bytes[UUID_BYTES];
	char id[UUID_TEXT_SIZE];

	uuid_v7_next_bytes(&g, 1767225600000ull, ones, bytes);
	uuid_format(bytes, id);
	ASSERT_STR_EQ(id, "019b76da-a800-7000-bfff-ffffffffffff");
	uuid_v7_next_bytes(&g, 1767225600000ull, zeros, bytes);
	ASSERT_TRUE(memcmp(bytes, expected, sizeof(expected)) == 0);
	uuid_v7_generate_bytes(&g, bytes);
	ASSERT_EQ_INT(bytes[6] >> 4, 7);
	ASSERT_EQ_INT(bytes[8] >> 6, 2);
	ASSERT_TRUE(memcmp(bytes, expected, sizeof(expected)) > 0);
}

/* Ids compare as PostgreSQL compares uuids: byte by byte, i.e. as their text. */
static void test_increasing(void)
{
	struct uuid_v7 g = {0};
	char previous[UUID_TEXT_SIZE] = "", id[UUID_TEXT_SIZE];
	uint64_t ms = 1767225600000ull;

	for (int i = 0; i < 10000; i++) {
		/* Random bits that go down while the clock stands still, steps back, or jumps. */
		uint8_t random[8];
		memset(random, 0xff - (i % 256), sizeof(random));
		if (i % 1000 == 999)
			ms -= 5;
		else if (i % 700 == 0)
			ms += 3;
		next_text(&g, ms, random, id);
		ASSERT_TRUE(strcmp(previous, id) < 0);
		memcpy(previous, id, sizeof(id));
	}
	/* More than 4,096 ids in one millisecond carry on into the next. */
	for (int i = 0; i < 5000; i++) {
		next_text(&g, ms, ones, id);
		ASSERT_TRUE(strcmp(previous, id) < 0);
		memcpy(previous, id, sizeof(id));
	}
}

static void test_generate(void)
{
	struct uuid_v7 g = {0};
	char a[UUID_TEXT_SIZE], b[UUID_TEXT_SIZE];

	generate_text(&g, a);
	generate_text(&g, b);
	ASSERT_EQ_INT((long)strlen(a), 36);
	ASSERT_EQ_INT(a[14], '7');
	ASSERT_TRUE(strchr("89ab", a[19]) != NULL);
	ASSERT_TRUE(strcmp(a, b) < 0);
	/* The random bits change from id to id, and two generators (seeded apart) do not share them. */
	ASSERT_TRUE(strcmp(a + 19, b + 19) != 0);
	{
		struct uuid_v7 other = {0};
		char c[UUID_TEXT_SIZE];

		generate_text(&other, c);
		ASSERT_TRUE(strcmp(a + 19, c + 19) != 0 && strcmp(b + 19, c + 19) != 0);
	}
}

int main(void)
{
	test_layout();
	test_bytes();
	test_increasing();
	test_generate();
	TEST_PASS();
}
