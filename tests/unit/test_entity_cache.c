/* test_entity_cache: the target vector cache: versions, LRU eviction, slot reuse, pins, sharing. */
#include <pthread.h>

#include "entity_cache.h"
#include "task.h"
#include "vec.h"

/* A pgvector binary value whose floats are all `value`. */
static unsigned char *encoded(float value, size_t *len)
{
	float *v = vec_create(VEC_DIM);
	unsigned char *out;

	for (size_t i = 0; i < VEC_DIM; i++)
		v[i] = value;
	*len = vec_pgvector_size(VEC_DIM);
	out = malloc(*len);
	ASSERT_EQ_INT(vec_encode_pgvector(v, VEC_DIM, out, *len), (long)*len);
	vec_free(v);
	return out;
}

static const struct cached_vector *put(struct entity_cache *c, const char *id, const char *version, float value)
{
	size_t len;
	unsigned char *bytes = encoded(value, &len);
	const struct cached_vector *cv = entity_cache_put(c, "track", id, version, VEC_FORMAT_PGVECTOR, bytes, len);
	free(bytes);
	return cv;
}

static void test_versions(void)
{
	struct entity_cache *c = entity_cache_create(4);
	const struct cached_vector *cv;

	ASSERT_TRUE(c != NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1") == NULL);
	cv = put(c, "a", "1", 0.5f);
	ASSERT_TRUE(cv && cv->valid);
	ASSERT_EQ_DBL(cv->x[0], 0.5, 0);
	ASSERT_EQ_DBL(cv->x[VEC_DIM - 1], 0.5, 0);
	cv = entity_cache_get(c, "track", "a", "1");
	ASSERT_TRUE(cv && cv->x[7] == 0.5f);
	/* Another version of the row (it was updated): a miss, never the old vector. */
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "2") == NULL);
	/* Another kind with the same id is another entity. */
	ASSERT_TRUE(entity_cache_get(c, "artist", "a", "1") == NULL);
	/* The new version replaces the old one. */
	cv = put(c, "a", "2", 0.25f);
	ASSERT_TRUE(cv && cv->x[3] == 0.25f);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1") == NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "2")->x[0] == 0.25f);
	entity_cache_destroy(c);
}

static void test_invalid_value(void)
{
	struct entity_cache *c = entity_cache_create(2);
	unsigned char bad[8] = {0, 3, 0, 0, 0, 0, 0, 0}; /* 3 dimensions announced, 1 present */
	const struct cached_vector *cv = entity_cache_put(c, "event", "e", "9", VEC_FORMAT_PGVECTOR, bad, sizeof(bad));

	ASSERT_TRUE(cv != NULL);
	ASSERT_FALSE(cv->valid);
	ASSERT_TRUE(cv->invalid_reason[0] != '\0');
	/* The reason is cached too: the row is not re-read while its version stands. */
	ASSERT_FALSE(entity_cache_get(c, "event", "e", "9")->valid);
	entity_cache_destroy(c);
}

static void test_eviction_and_reuse(void)
{
	struct entity_cache *c = entity_cache_create(3);
	char id[16];

	put(c, "a", "1", 1.0f);
	put(c, "b", "1", 2.0f);
	put(c, "c", "1", 3.0f);
	/* Using a makes b the least recently used: the next insert drops b. */
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1") != NULL);
	put(c, "d", "1", 4.0f);
	ASSERT_TRUE(entity_cache_get(c, "track", "b", "1") == NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1")->x[0] == 1.0f);
	ASSERT_TRUE(entity_cache_get(c, "track", "c", "1")->x[0] == 3.0f);
	ASSERT_TRUE(entity_cache_get(c, "track", "d", "1")->x[0] == 4.0f);
	/* Many more inserts than slots: the slots are reused, the newest three are there, intact. */
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "n%d", i);
		ASSERT_TRUE(put(c, id, "1", (float)i) != NULL);
	}
	for (int i = 997; i < 1000; i++) {
		const struct cached_vector *cv;
		snprintf(id, sizeof(id), "n%d", i);
		cv = entity_cache_get(c, "track", id, "1");
		ASSERT_TRUE(cv != NULL);
		ASSERT_EQ_DBL(cv->x[0], i, 0);
		ASSERT_EQ_DBL(cv->x[VEC_DIM - 1], i, 0);
	}
	ASSERT_TRUE(entity_cache_get(c, "track", "n996", "1") == NULL);
	entity_cache_destroy(c);
}

static const struct cached_vector *put_pinned(struct entity_cache *c, const char *id, const char *version, float value,
					      struct entity_pin **pin)
{
	size_t len;
	unsigned char *bytes = encoded(value, &len);
	const struct cached_vector *cv =
		entity_cache_put_pinned(c, "track", id, version, VEC_FORMAT_PGVECTOR, bytes, len, pin);
	free(bytes);
	return cv;
}

/* Every float of a vector is value: nothing wrote over it. */
static void expect_all(const float *x, float value)
{
	for (size_t i = 0; i < VEC_DIM; i++)
		if (x[i] != value)
			FAIL("element %zu is %g, expected %g", i, (double)x[i], (double)value);
}

static void test_pins_are_never_dropped(void)
{
	struct entity_cache *c = entity_cache_create(2);
	struct entity_pin *pa, *pb, *pc;
	const struct cached_vector *a, *b;
	char id[16];

	a = put_pinned(c, "a", "1", 1.0f, &pa);
	b = put_pinned(c, "b", "1", 2.0f, &pb);
	ASSERT_TRUE(a && b);
	/* Both slots pinned: no room, and neither pinned value is dropped or overwritten. */
	ASSERT_TRUE(put(c, "c", "1", 3.0f) == NULL);
	ASSERT_TRUE(put_pinned(c, "c", "1", 3.0f, &pc) == NULL);
	expect_all(a->x, 1.0f);
	expect_all(b->x, 2.0f);
	/* A pinned value is still found, and a second pin of it needs its own unpin. */
	ASSERT_TRUE(entity_cache_get_pinned(c, "track", "a", "1", &pc) == a);
	entity_cache_unpin(c, pa);
	ASSERT_TRUE(put(c, "c", "1", 3.0f) == NULL); /* a is still pinned once */
	entity_cache_unpin(c, pc);
	/* a is unpinned now: the only candidate to make room, whatever was used last. */
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1") == a);
	ASSERT_TRUE(put(c, "c", "1", 3.0f) != NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1") == NULL);
	expect_all(b->x, 2.0f);
	/* Many puts meanwhile: b stays, intact; after its unpin it takes its turn like any other. */
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "n%d", i);
		ASSERT_TRUE(put(c, id, "1", (float)i) != NULL);
	}
	ASSERT_TRUE(entity_cache_get(c, "track", "b", "1") == b);
	expect_all(b->x, 2.0f);
	entity_cache_unpin(c, pb);
	ASSERT_TRUE(put(c, "x", "1", 7.0f) != NULL);
	ASSERT_TRUE(put(c, "y", "1", 8.0f) != NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "b", "1") == NULL);
	entity_cache_destroy(c);
}

static void test_replaced_while_pinned(void)
{
	struct entity_cache *c = entity_cache_create(2);
	struct entity_pin *old_pin, *x_pin;
	const struct cached_vector *old, *new;

	old = put_pinned(c, "a", "1", 1.0f, &old_pin);
	/* The row changed: the new version is a new entry; the holder of the old one keeps it. */
	new = put(c, "a", "2", 2.0f);
	ASSERT_TRUE(old && new && new != old && new->x != old->x);
	expect_all(old->x, 1.0f);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1") == NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "2") == new);
	/* The old entry holds its slot until unpinned: one slot for everything else. */
	ASSERT_TRUE(put_pinned(c, "x", "1", 3.0f, &x_pin) != NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "2") == NULL); /* dropped to make room */
	ASSERT_TRUE(put(c, "y", "1", 4.0f) == NULL);
	expect_all(old->x, 1.0f);
	/* Unpinned, the replaced entry's slot is free again (and it is never found). */
	entity_cache_unpin(c, old_pin);
	ASSERT_TRUE(put(c, "y", "1", 4.0f) != NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1") == NULL);
	ASSERT_TRUE(entity_cache_get(c, "track", "x", "1") != NULL);
	entity_cache_unpin(c, x_pin);
	entity_cache_destroy(c);
}

static void test_same_version_kept(void)
{
	struct entity_cache *c = entity_cache_create(4);
	struct entity_pin *first, *second;
	const struct cached_vector *a = put_pinned(c, "a", "1", 1.0f, &first);

	/* Two processors read the same version: the second put pins the entry already there. */
	ASSERT_TRUE(put_pinned(c, "a", "1", 1.0f, &second) == a);
	entity_cache_unpin(c, first);
	entity_cache_unpin(c, second);
	ASSERT_TRUE(entity_cache_get(c, "track", "a", "1") == a);
	expect_all(a->x, 1.0f);
	entity_cache_destroy(c);
}

struct sharer {
	struct entity_cache *cache;
	int base;
	int wrong;
};

#define SHARER_PINS 4

/*
 * Pin values as a batch does, read them outside the lock while the other threads put and evict,
 * and unpin them a few rounds later: a pinned value is always the one its key was given.
 */
static void *share(void *arg)
{
	struct sharer *s = arg;
	struct entity_pin *pins[SHARER_PINS] = {0};
	const struct cached_vector *held[SHARER_PINS] = {0};
	int keys[SHARER_PINS] = {0};
	char id[16];

	for (int round = 0; round < 2000; round++) {
		int k = s->base + round % 37, h = round % SHARER_PINS;
		const struct cached_vector *cv;
		snprintf(id, sizeof(id), "k%d", k);
		entity_cache_lock(s->cache);
		if (held[h])
			entity_cache_unpin(s->cache, pins[h]);
		cv = entity_cache_get_pinned(s->cache, "track", id, "1", &pins[h]);
		if (!cv)
			cv = put_pinned(s->cache, id, "1", (float)k, &pins[h]);
		entity_cache_unlock(s->cache);
		held[h] = cv;
		keys[h] = k;
		if (!cv)
			s->wrong++;
		for (int i = 0; i < SHARER_PINS; i++)
			if (held[i] && (held[i]->x[0] != (float)keys[i] || held[i]->x[VEC_DIM - 1] != (float)keys[i]))
				s->wrong++;
	}
	entity_cache_lock(s->cache);
	for (int i = 0; i < SHARER_PINS; i++)
		if (held[i])
			entity_cache_unpin(s->cache, pins[i]);
	entity_cache_unlock(s->cache);
	return NULL;
}

static void test_shared(void)
{
	struct entity_cache *c = entity_cache_create(16);
	struct sharer s[3];
	pthread_t t[3];

	for (int i = 0; i < 3; i++) {
		s[i] = (struct sharer){c, i * 20, 0};
		ASSERT_EQ_INT(pthread_create(&t[i], NULL, share, &s[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		ASSERT_EQ_INT(s[i].wrong, 0);
	}
	entity_cache_destroy(c);
}

int main(void)
{
	test_versions();
	test_invalid_value();
	test_eviction_and_reuse();
	test_pins_are_never_dropped();
	test_replaced_while_pinned();
	test_same_version_kept();
	test_shared();
	TEST_PASS();
}
