/*
 * test_rules: the pure rules of the data path, without a database: routing (route.c), the choice
 * of an entry's DNA row (mediaid.c), the coliseum metric (coliseum.c) and the retry delay
 * (commit.c).
 */
#include <stdint.h>
#include <string.h>

#include "coliseum.h"
#include "commit.h"
#include "mediaid.h"
#include "pipeline.h"
#include "route.h"
#include "task.h"

#define USER_A "00000000-0000-0000-0000-00000000000a"
#define USER_B "00000000-0000-0000-0000-00000000000b"
#define USER_C "00000000-0000-0000-0000-00000000000c"
#define ROW_1 "10000000-0000-0000-0000-000000000001"
#define ROW_2 "10000000-0000-0000-0000-000000000002"
#define ROW_3 "10000000-0000-0000-0000-000000000003"
#define ROW_4 "10000000-0000-0000-0000-000000000004"

static void test_route(void)
{
	unsigned systems = 0;
	long skipped = 0;
	char reason[200] = "";

	/* An explicit list wins over the event type's default route. */
	ASSERT_EQ_INT(route_systems("[\"treasury\"]", "player.track_played", SYSTEM_ALL, &systems, &skipped, reason,
				    sizeof(reason)), 0);
	ASSERT_EQ_INT(systems, SYSTEM_TREASURY);
	ASSERT_EQ_INT(skipped, 0);

	/* Empty list, NULL and a non-array: the default route (appendix B). */
	ASSERT_EQ_INT(route_systems("[]", "player.track_played", SYSTEM_ALL, &systems, &skipped, reason,
				    sizeof(reason)), 0);
	ASSERT_EQ_INT(systems, SYSTEM_MEDIAID | SYSTEM_COLISEUM);
	ASSERT_EQ_INT(route_systems(NULL, "concierto.ticket_purchased", SYSTEM_ALL, &systems, &skipped, reason,
				    sizeof(reason)), 0);
	ASSERT_EQ_INT(systems, SYSTEM_ALL);
	ASSERT_EQ_INT(route_systems("{\"a\":1}", "system.error_occurred", SYSTEM_ALL, &systems, &skipped, reason,
				    sizeof(reason)), 0);
	ASSERT_EQ_INT(systems, 0);
	ASSERT_EQ_INT(route_systems("[]", "no.such_type", SYSTEM_ALL, &systems, &skipped, reason, sizeof(reason)), 0);
	ASSERT_EQ_INT(systems, 0);

	/* Disabled systems are dropped and counted. */
	skipped = 0;
	ASSERT_EQ_INT(route_systems("[\"mediaid\",\"coliseum\"]", "x", SYSTEM_COLISEUM, &systems, &skipped, reason,
				    sizeof(reason)), 0);
	ASSERT_EQ_INT(systems, SYSTEM_COLISEUM);
	ASSERT_EQ_INT(skipped, 1);

	/* An unknown name (or a non-string) is refused and named. */
	skipped = 0;
	ASSERT_EQ_INT(route_systems("[\"coliseum\",\"ledger\"]", "x", SYSTEM_ALL, &systems, &skipped, reason,
				    sizeof(reason)), -1);
	ASSERT_STR_EQ(reason, "unknown system 'ledger' in affects_systems");
	ASSERT_EQ_INT(route_systems("[1]", "x", SYSTEM_ALL, &systems, &skipped, reason, sizeof(reason)), -1);
	ASSERT_STR_EQ(reason, "unknown system 'null' in affects_systems");
}

static void make_row(struct dna_row *row, const char *user, const char *id, bool is_fan)
{
	memset(row, 0, sizeof(*row));
	strcpy(row->user_id, user);
	strcpy(row->id, id);
	row->is_fan = is_fan;
}

/* A paused or disabled system holds the entry back, with a reason naming it. */
static void test_route_blocked(void)
{
	char reason[200];

	ASSERT_EQ_INT(route_blocked(SYSTEM_MEDIAID | SYSTEM_COLISEUM, SYSTEM_ALL, 0, reason, sizeof(reason)), 0);
	ASSERT_STR_EQ(reason, "");
	ASSERT_EQ_INT(route_blocked(SYSTEM_MEDIAID | SYSTEM_COLISEUM, SYSTEM_COLISEUM, 0, reason, sizeof(reason)),
		      SYSTEM_MEDIAID);
	ASSERT_STR_EQ(reason, "disabled: mediaid");
	ASSERT_EQ_INT(route_blocked(SYSTEM_MEDIAID | SYSTEM_COLISEUM, SYSTEM_ALL, SYSTEM_COLISEUM, reason, sizeof(reason)),
		      SYSTEM_COLISEUM);
	ASSERT_STR_EQ(reason, "paused: coliseum");
	ASSERT_EQ_INT(route_blocked(SYSTEM_ALL, SYSTEM_MEDIAID | SYSTEM_COLISEUM, SYSTEM_ALL, reason, sizeof(reason)),
		      SYSTEM_ALL);
	ASSERT_STR_EQ(reason, "paused: mediaid, coliseum; disabled: treasury");
	/* A system the entry does not go to is no obstacle. */
	ASSERT_EQ_INT(route_blocked(SYSTEM_COLISEUM, SYSTEM_COLISEUM, SYSTEM_MEDIAID, reason, sizeof(reason)), 0);
	ASSERT_EQ_INT(route_blocked(0, 0, SYSTEM_ALL, reason, sizeof(reason)), 0);
}

static void test_choose_row(void)
{
	/* Sorted by (user, id): A has one row, B a fan and an artist row, C two rows and no fan. */
	struct dna_row rows[5];
	char reason[200];
	int row = 99;

	make_row(&rows[0], USER_A, ROW_1, false);
	make_row(&rows[1], USER_B, ROW_2, false);
	make_row(&rows[2], USER_B, ROW_3, true);
	make_row(&rows[3], USER_C, ROW_1, false);
	make_row(&rows[4], USER_C, ROW_4, false);

	/* The only row, whatever its role. */
	ASSERT_EQ_INT(mediaid_choose_row(rows, 5, USER_A, "", &row, reason, sizeof(reason)), OUTCOME_OK);
	ASSERT_EQ_INT(row, 0);
	/* Several rows: the fan row. */
	ASSERT_EQ_INT(mediaid_choose_row(rows, 5, USER_B, "", &row, reason, sizeof(reason)), OUTCOME_OK);
	ASSERT_EQ_INT(row, 2);
	/* mediaid_id picks the row, when it belongs to the user. */
	ASSERT_EQ_INT(mediaid_choose_row(rows, 5, USER_B, ROW_2, &row, reason, sizeof(reason)), OUTCOME_OK);
	ASSERT_EQ_INT(row, 1);
	ASSERT_EQ_INT(mediaid_choose_row(rows, 5, USER_B, ROW_1, &row, reason, sizeof(reason)), OUTCOME_PERMANENT);
	ASSERT_EQ_INT(row, -1);
	ASSERT_STR_EQ(reason, "media_ids row " ROW_1 " does not belong to user " USER_B);
	/* Several rows and no fan: permanent, the entry must name its row. */
	ASSERT_EQ_INT(mediaid_choose_row(rows, 5, USER_C, "", &row, reason, sizeof(reason)), OUTCOME_PERMANENT);
	ASSERT_STR_EQ(reason, "user " USER_C " has 2 media_ids rows and none with role fan; set mediaid_id");
	/* No row yet: retry (the sign-up trigger may not have run). */
	ASSERT_EQ_INT(mediaid_choose_row(rows, 2, USER_C, "", &row, reason, sizeof(reason)), OUTCOME_RETRY);
	ASSERT_STR_EQ(reason, "user " USER_C " has no media_ids row yet");
	ASSERT_EQ_INT(mediaid_choose_row(NULL, 0, USER_A, "", &row, reason, sizeof(reason)), OUTCOME_RETRY);
	/* No user: permanent. */
	ASSERT_EQ_INT(mediaid_choose_row(rows, 5, "", ROW_1, &row, reason, sizeof(reason)), OUTCOME_PERMANENT);
	ASSERT_STR_EQ(reason, "entry has no user_id");
}

static void test_coliseum_metric(void)
{
	struct payload_info info;
	double value = -1;
	const char *unit = "x";

	memset(&info, 0, sizeof(info));
	coliseum_metric("player.track_played", &info, &value, &unit);
	ASSERT_EQ_DBL(value, 1.0, 0);
	ASSERT_TRUE(unit == NULL);

	info.has_value = true;
	info.value = 2.5;
	coliseum_metric("player.track_played", &info, &value, &unit);
	ASSERT_EQ_DBL(value, 2.5, 0);

	/* A weight counts for votes only; a value is the fallback. */
	info.has_weight = true;
	info.weight = 7;
	coliseum_metric("concierto.vote_cast", &info, &value, &unit);
	ASSERT_EQ_DBL(value, 7.0, 0);
	coliseum_metric("social.content_liked", &info, &value, &unit);
	ASSERT_EQ_DBL(value, 2.5, 0);

	/* Money wins over everything, in cents. */
	info.amount_state = AMOUNT_VALID;
	info.amount_cents = 1999;
	coliseum_metric("concierto.vote_cast", &info, &value, &unit);
	ASSERT_EQ_DBL(value, 1999.0, 0);
	ASSERT_STR_EQ(unit, "cents");

	/* An invalid amount is not a metric. */
	info.amount_state = AMOUNT_INVALID;
	coliseum_metric("treasury.transaction_created", &info, &value, &unit);
	ASSERT_EQ_DBL(value, 2.5, 0);
	ASSERT_TRUE(unit == NULL);
}

static void test_retry_delay(void)
{
	const uint64_t low = 0, mid = UINT64_C(1) << 63, high = UINT64_MAX;

	/* base * 2^(attempts-1), jitter 0.8 at the lowest draw, 1.0 in the middle, 1.2 at the top. */
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 1, low), 8.0, 1e-9);
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 1, mid), 10.0, 1e-9);
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 2, mid), 20.0, 1e-9);
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 4, mid), 80.0, 1e-9);
	ASSERT_TRUE(commit_retry_delay(10, 3600, 1, high) <= 12.0);
	ASSERT_TRUE(commit_retry_delay(10, 3600, 1, high) > 11.99);
	/* Capped: 10 * 2^9 = 5120 > 3600; and no overflow for absurd attempt counts. */
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 10, mid), 3600.0, 1e-9);
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 2147483647, mid), 3600.0, 1e-9);
	/* A cap below the base wins too. */
	ASSERT_EQ_DBL(commit_retry_delay(10, 5, 1, mid), 5.0, 1e-9);

	/* Growth is x2 per attempt, exactly: attempts 1, 2 and 9 (10 * 2^8 = 2560, below the cap). */
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 1, mid), 10.0, 0);
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 2, mid), 20.0, 0);
	ASSERT_EQ_DBL(commit_retry_delay(10, 3600, 9, mid), 2560.0, 0);
	ASSERT_EQ_DBL(commit_retry_delay(0.5, 1e9, 9, mid), 128.0, 0);
	/* The cap holds at every attempt after it is reached, jitter included. */
	for (int attempts = 10; attempts < 100; attempts++) {
		ASSERT_EQ_DBL(commit_retry_delay(10, 3600, attempts, mid), 3600.0, 0);
		ASSERT_TRUE(commit_retry_delay(10, 3600, attempts, high) <= 3600.0 * 1.2);
		ASSERT_TRUE(commit_retry_delay(10, 3600, attempts, low) >= 3600.0 * 0.8);
	}
	/* Jitter: every draw lands in [0.8, 1.2] of the delay, and different draws differ. */
	{
		uint64_t x = UINT64_C(0x9E3779B97F4A7C15);
		double lowest = 2, highest = 0;
		for (int i = 0; i < 10000; i++) {
			double factor;
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			factor = commit_retry_delay(10, 3600, 2, x) / 20.0;
			ASSERT_TRUE(factor >= 0.8 && factor <= 1.2);
			lowest = factor < lowest ? factor : lowest;
			highest = factor > highest ? factor : highest;
		}
		ASSERT_TRUE(lowest < 0.81);
		ASSERT_TRUE(highest > 1.19);
	}
}

int main(void)
{
	test_route();
	test_route_blocked();
	test_choose_row();
	test_coliseum_metric();
	test_retry_delay();
	TEST_PASS();
}
