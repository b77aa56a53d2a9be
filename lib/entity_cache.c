/*
 * entity_cache: target vectors (entity_dna rows) kept between batches, keyed by entity and row
 * version (xmin), so a batch re-reads only the vectors that changed or were never seen.
 *
 * Why key on xmin: any UPDATE of an entity_dna row gives it a new xmin, so a cached vector is
 * used only while it is exactly what the table holds; the daemon's results are the same with or
 * without the cache. A chained hash table finds entries; a doubly linked list orders them by use.
 * Several processors (drain's workers) may share one cache: they hold its mutex while they look
 * up, insert, pin and unpin values (entity_cache_lock).
 *
 * Pins: a batch uses its targets' vectors where the cache holds them, without a copy, so each
 * one it uses is pinned until the batch ends. A pinned entry is out of the use list, so it is
 * never the one dropped to make room; when a newer version of its row is put meanwhile, the
 * entry leaves the table (nobody finds it any more) and its slot is freed at the last unpin.
 * When every slot is pinned, put has no room and says so; the caller keeps its own copy.
 *
 * Memory: the entries and their vectors are allocated once, as two arrays of `capacity` slots
 * (the vector array is calloc'ed, so its pages cost memory only once a slot is used). A dropped
 * entry's slot is reused; nothing is malloc'ed per vector, so a long run does not fragment the
 * heap with thousands of 6 KiB blocks between the batches' short-lived allocations.
 */
#include "entity_cache.h"
#include "strbuf.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 64
#define VERSION_MAX 24

struct cache_entry {
	char key[KEY_MAX];
	char version[VERSION_MAX];
	struct cached_vector value; /* value.x points at this slot's vector */
	struct cache_entry *next_in_bucket; /* or the next free slot */
	struct cache_entry *newer, *older;  /* the use list: unpinned entries of the table only */
	int pins;
	bool detached; /* pinned, replaced by a newer version: freed at the last unpin */
};

struct entity_cache {
	struct cache_entry **buckets;
	size_t n_buckets;
	size_t capacity;
	struct cache_entry *slots;  /* capacity entries */
	float *vectors;             /* capacity x VEC_DIM floats */
	struct cache_entry *free_slots;
	struct cache_entry *newest, *oldest;
	pthread_mutex_t mutex;
};

static uint64_t hash_key(const char *key)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 1099511628211ULL;
	return h;
}

static void make_key(char key[KEY_MAX], const char *kind, const char *id)
{
	char *end = text_copy(key, KEY_MAX, kind);

	if (end < key + KEY_MAX - 1) { /* "kind/id", cut to fit as snprintf would */
		*end++ = '/';
		text_copy(end, (size_t)(key + KEY_MAX - end), id);
	}
}

struct entity_cache *entity_cache_create(size_t capacity)
{
	struct entity_cache *cache = calloc(1, sizeof(*cache));

	if (!cache)
		return NULL;
	cache->capacity = capacity ? capacity : 1;
	cache->n_buckets = 64;
	while (cache->n_buckets < cache->capacity * 2)
		cache->n_buckets *= 2;
	cache->buckets = calloc(cache->n_buckets, sizeof(*cache->buckets));
	cache->slots = calloc(cache->capacity, sizeof(*cache->slots));
	cache->vectors = calloc(cache->capacity * VEC_DIM, sizeof(float));
	if (!cache->buckets || !cache->slots || !cache->vectors) {
		free(cache->buckets);
		free(cache->slots);
		free(cache->vectors);
		free(cache);
		return NULL;
	}
	for (size_t i = cache->capacity; i-- > 0;) {
		cache->slots[i].value.x = cache->vectors + i * VEC_DIM;
		cache->slots[i].next_in_bucket = cache->free_slots;
		cache->free_slots = &cache->slots[i];
	}
	pthread_mutex_init(&cache->mutex, NULL);
	return cache;
}

static void unlink_use(struct entity_cache *cache, struct cache_entry *e)
{
	if (e->newer)
		e->newer->older = e->older;
	else
		cache->newest = e->older;
	if (e->older)
		e->older->newer = e->newer;
	else
		cache->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void link_newest(struct entity_cache *cache, struct cache_entry *e)
{
	e->older = cache->newest;
	e->newer = NULL;
	if (cache->newest)
		cache->newest->newer = e;
	cache->newest = e;
	if (!cache->oldest)
		cache->oldest = e;
}

static struct cache_entry **find_slot(struct entity_cache *cache, const char *key)
{
	struct cache_entry **slot = &cache->buckets[hash_key(key) & (cache->n_buckets - 1)];

	while (*slot && strcmp((*slot)->key, key) != 0)
		slot = &(*slot)->next_in_bucket;
	return slot;
}

static void free_slot(struct entity_cache *cache, struct cache_entry *e)
{
	e->key[0] = '\0';
	e->detached = false;
	e->next_in_bucket = cache->free_slots;
	cache->free_slots = e;
}

/* Take an entry out of the table: its slot is free now, or at its last unpin. */
static void remove_entry(struct entity_cache *cache, struct cache_entry *e)
{
	struct cache_entry **slot = find_slot(cache, e->key);

	if (*slot == e)
		*slot = e->next_in_bucket;
	if (e->pins > 0) {
		e->detached = true;
		e->next_in_bucket = NULL;
		return;
	}
	unlink_use(cache, e);
	free_slot(cache, e);
}

static void pin(struct entity_cache *cache, struct cache_entry *e, struct entity_pin **pinned)
{
	if (!pinned)
		return;
	if (e->pins++ == 0)
		unlink_use(cache, e);
	*pinned = (struct entity_pin *)e;
}

void entity_cache_unpin(struct entity_cache *cache, struct entity_pin *pinned)
{
	struct cache_entry *e = (struct cache_entry *)pinned;

	if (!e || e->pins <= 0)
		return;
	if (--e->pins > 0)
		return;
	if (e->detached)
		free_slot(cache, e);
	else
		link_newest(cache, e);
}

void entity_cache_destroy(struct entity_cache *cache)
{
	if (!cache)
		return;
	free(cache->buckets);
	free(cache->slots);
	free(cache->vectors);
	pthread_mutex_destroy(&cache->mutex);
	free(cache);
}

void entity_cache_lock(struct entity_cache *cache)
{
	pthread_mutex_lock(&cache->mutex);
}

void entity_cache_unlock(struct entity_cache *cache)
{
	pthread_mutex_unlock(&cache->mutex);
}

const struct cached_vector *entity_cache_get_pinned(struct entity_cache *cache, const char *kind, const char *id,
						    const char *version, struct entity_pin **pinned)
{
	char key[KEY_MAX];
	struct cache_entry *e;

	make_key(key, kind, id);
	e = *find_slot(cache, key);
	if (!e || strcmp(e->version, version) != 0)
		return NULL;
	if (e->pins == 0) {
		unlink_use(cache, e);
		link_newest(cache, e);
	}
	pin(cache, e, pinned);
	return &e->value;
}

const struct cached_vector *entity_cache_get(struct entity_cache *cache, const char *kind, const char *id,
					     const char *version)
{
	return entity_cache_get_pinned(cache, kind, id, version, NULL);
}

const struct cached_vector *entity_cache_put_pinned(struct entity_cache *cache, const char *kind, const char *id,
						    const char *version, enum vec_format format,
						    const unsigned char *value, size_t len, struct entity_pin **pinned)
{
	char key[KEY_MAX];
	struct cache_entry *e;

	make_key(key, kind, id);
	e = *find_slot(cache, key);
	if (e && strcmp(e->version, version) == 0) {
		/* Another processor read the same version meanwhile: the same bytes, decoded already. */
		pin(cache, e, pinned);
		return &e->value;
	}
	if (e)
		remove_entry(cache, e);
	if (!cache->free_slots && cache->oldest)
		remove_entry(cache, cache->oldest); /* unpinned: pinned entries are not in the use list */
	e = cache->free_slots;
	if (!e)
		return NULL; /* every slot is pinned */
	cache->free_slots = e->next_in_bucket;
	snprintf(e->key, sizeof(e->key), "%s", key);
	snprintf(e->version, sizeof(e->version), "%s", version);
	e->value.valid = vec_decode(format, value, len, e->value.x, VEC_DIM, e->value.invalid_reason,
				    sizeof(e->value.invalid_reason)) == 0;
	e->next_in_bucket = NULL; /* a free slot has no pins and is not detached (free_slot) */
	*find_slot(cache, key) = e;
	link_newest(cache, e);
	pin(cache, e, pinned);
	return &e->value;
}

const struct cached_vector *entity_cache_put(struct entity_cache *cache, const char *kind, const char *id,
					     const char *version, enum vec_format format,
					     const unsigned char *value, size_t len)
{
	return entity_cache_put_pinned(cache, kind, id, version, format, value, len, NULL);
}
