/* test_entity_cache: the target vector cache: versions, LRU eviction, slot reuse, sharing. */
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

struct sharer {
	struct entity_cache *cache;
	int base;
	int wrong;
};

/* Insert and read back under the lock: a value read is always the one its key was given. */
static void *share(void *arg)
{
	struct sharer *s = arg;
	char id[16];

	for (int round = 0; round < 2000; round++) {
		int k = s->base + round % 37;
		const struct cached_vector *cv;
		snprintf(id, sizeof(id), "k%d", k);
		entity_cache_lock(s->cache);
		cv = entity_cache_get(s->cache, "track", id, "1");
		if (!cv)
			cv = put(s->cache, id, "1", (float)k);
		if (!cv || cv->x[0] != (float)k || cv->x[VEC_DIM - 1] != (float)k)
			s->wrong++;
		entity_cache_unlock(s->cache);
	}
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
	test_shared();
	TEST_PASS();
}
