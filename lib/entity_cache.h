/*
 * entity_cache: target vectors (entity_dna rows) kept between batches, keyed by entity and row
 * version (xmin), so a batch re-reads only the vectors that changed or were never seen.
 */
#ifndef PASSPORT_ENTITY_CACHE_H
#define PASSPORT_ENTITY_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "vec.h"

struct entity_cache;
struct entity_pin; /* a pinned entry (entity_cache_get_pinned, entity_cache_put_pinned) */

/* A cached value: a decoded vector, or the reason it could not be decoded. Owned by the cache. */
struct cached_vector {
	bool valid;
	char invalid_reason[160];
	float *x; /* VEC_DIM floats when valid */
};

/* A cache of at most capacity vectors (least recently used ones are dropped). NULL on OOM. */
struct entity_cache *entity_cache_create(size_t capacity);
void entity_cache_destroy(struct entity_cache *cache);

/*
 * Hold the cache's mutex while using get and put and the values they return, when the cache is
 * shared between threads. Not recursive.
 */
void entity_cache_lock(struct entity_cache *cache);
void entity_cache_unlock(struct entity_cache *cache);

/*
 * The value cached for the row (kind, id) when its version still matches, else NULL. The result
 * stays valid until the next entity_cache_put.
 */
const struct cached_vector *entity_cache_get(struct entity_cache *cache, const char *kind, const char *id,
					     const char *version);

/*
 * Decode a binary vector value (format of the column) and cache it for (kind, id, version),
 * replacing an older version (the same version already cached is kept as it is). Returns the
 * cached value, or NULL when there is no room: every slot is pinned.
 */
const struct cached_vector *entity_cache_put(struct entity_cache *cache, const char *kind, const char *id,
					     const char *version, enum vec_format format,
					     const unsigned char *value, size_t len);

/*
 * get and put that also pin the value they return (*pinned, when they return one): it stays
 * where it is, unchanged, until entity_cache_unpin, whatever is put meanwhile. A pinned value is
 * never dropped to make room; a newer version put meanwhile is a new entry (the pinned one is no
 * longer found). Each pin needs its own unpin, under the lock like the rest.
 */
const struct cached_vector *entity_cache_get_pinned(struct entity_cache *cache, const char *kind, const char *id,
						    const char *version, struct entity_pin **pinned);
const struct cached_vector *entity_cache_put_pinned(struct entity_cache *cache, const char *kind, const char *id,
						    const char *version, enum vec_format format,
						    const unsigned char *value, size_t len, struct entity_pin **pinned);
void entity_cache_unpin(struct entity_cache *cache, struct entity_pin *pinned);

#endif
