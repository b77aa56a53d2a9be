/* test_aside: the shared set of entries set aside as unrecordable: once each, bounded, its literal. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "aside.h"
#include "task.h"

static void id_text(char out[37], int n)
{
	snprintf(out, 37, "00000000-0000-4000-8000-%012d", n);
}

static void test_once_and_bounded(void)
{
	struct aside *set = aside_create();
	char id[37], *literal;

	ASSERT_TRUE(set != NULL);
	literal = aside_literal(set);
	ASSERT_STR_EQ(literal, "{}");
	free(literal);
	id_text(id, 7);
	ASSERT_EQ_INT(aside_add(set, id), ASIDE_ADDED);
	ASSERT_EQ_INT(aside_add(set, id), ASIDE_PRESENT);
	ASSERT_TRUE(aside_contains(set, id));
	id_text(id, 8);
	ASSERT_TRUE(!aside_contains(set, id));
	literal = aside_literal(set);
	ASSERT_STR_EQ(literal, "{00000000-0000-4000-8000-000000000007}");
	free(literal);
	for (int i = 1; aside_count(set) < ASIDE_MAX; i++) {
		id_text(id, 100 + i);
		ASSERT_EQ_INT(aside_add(set, id), ASIDE_ADDED);
	}
	id_text(id, 99);
	ASSERT_EQ_INT(aside_add(set, id), ASIDE_FULL);
	ASSERT_EQ_INT(aside_count(set), ASIDE_MAX);
	ASSERT_EQ_INT(aside_add(set, "not a uuid, far too long to be the text of one"), ASIDE_FULL);
	aside_destroy(set);
}

struct adder {
	struct aside *set;
	int added;
};

/* Every thread adds the same 200 ids: each id is ADDED by exactly one of them. */
static void *add_all(void *arg)
{
	struct adder *a = arg;
	char id[37];

	for (int i = 0; i < 200; i++) {
		id_text(id, i);
		if (aside_add(a->set, id) == ASIDE_ADDED)
			a->added++;
	}
	return NULL;
}

static void test_shared(void)
{
	struct aside *set = aside_create();
	struct adder a[4];
	pthread_t t[4];
	int total = 0;

	for (int i = 0; i < 4; i++) {
		a[i] = (struct adder){set, 0};
		ASSERT_EQ_INT(pthread_create(&t[i], NULL, add_all, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		total += a[i].added;
	}
	ASSERT_EQ_INT(total, 200);
	ASSERT_EQ_INT(aside_count(set), 200);
	aside_destroy(set);
}

int main(void)
{
	test_once_and_bounded();
	test_shared();
	TEST_PASS();
}
