/*
 * test_pins: a batch's target vectors stay in the shared entity cache, pinned while the batch
 * uses them (lib/entity_cache.c, lib/targets.c), and the DNA is the same, bit for bit, whatever
 * the cache holds:
 *   - a cache of two slots, far fewer than a batch's targets: most vectors are the batch's own
 *     copies (no room in the cache);
 *   - two processors in two threads sharing a small cache, each pinning what its batches use
 *     while the other puts, evicts and pins;
 *   - target vectors updated between batches: the next batch uses the new versions, while the
 *     old ones stay pinned by nobody.
 * Each is compared with the same workload processed by one processor with the default cache.
 */
#include "integration/harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "db.h"
#include "entity_cache.h"

#define DSN_MAX 1024
#define USERS 60
#define PER_USER 8
#define BATCH 100
/* The DNA of every row and the steps recorded, as one digest. */
#define DIGEST_SQL                                                                                     \
	"SELECT md5(string_agg(id::text || ':' || coalesce(profile_embedding::text, 'null') || ':'"     \
	" || coalesce(dna_clock::text, 'null'), ',' ORDER BY id))"                                      \
	" || md5(coalesce((SELECT string_agg(mediaid_id::text || passport_entry_id::text, ','"          \
	" ORDER BY mediaid_id, event_time, passport_entry_id) FROM dna_evolution), '')) FROM media_ids"
#define UNPROCESSED_SQL "SELECT count(*) FROM passport_entries WHERE NOT processed OR last_error IS NOT NULL"

static PGconn *open_workload(const char *name, char *dsn)
{
	return harness_open_workload(name, USERS, PER_USER, dsn, DSN_MAX);
}

/* A processor with the default configuration, batches of BATCH, and the given cache (NULL: its own). */
static struct processor *open_processor(const char *dsn, struct entity_cache *cache, PGconn **conn)
{
	return harness_open_processor_sharing(dsn, BATCH, cache, conn);
}

/* Batches until none is left; the number of entries processed, or -1 on a batch error. */
static long run_until_empty(struct processor *p)
{
	long processed = 0;

	for (int i = 0; i < 10000; i++) {
		struct batch_totals totals = {0};
		struct db_error error;
		int status = processor_run_batch(p, &totals, &error);

		processed += totals.processed;
		if (status == BATCH_EMPTY)
			return processed;
		if (status == BATCH_ERROR) {
			fprintf(stderr, "processor_run_batch: %s\n", error.message);
			return -1;
		}
	}
	return -1;
}

/* Process a database with one processor and the given cache (NULL: its own); its digest. */
static char *process(const char *dsn, PGconn *conn, struct entity_cache *cache)
{
	PGconn *worker;
	struct processor *p = open_processor(dsn, cache, &worker);

	ASSERT_EQ_INT(run_until_empty(p), USERS * PER_USER);
	processor_destroy(p);
	PQfinish(worker);
	ASSERT_EQ_INT(harness_query_int(conn, UNPROCESSED_SQL), 0);
	return harness_query_text(conn, DIGEST_SQL);
}

static char *reference_digest(void)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("pins_reference", dsn);
	char *digest = process(dsn, conn, NULL);

	PQfinish(conn);
	return digest;
}

static void case_no_room(const char *reference)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("pins_no_room", dsn);
	struct entity_cache *cache = entity_cache_create(2);
	const unsigned char bad[4] = {0}; /* a value that does not decode: cached as invalid */
	char *digest;

	printf("\n=== a cache of 2 slots: the batches keep their own copies\n");
	/* Far more targets with vectors than slots, so most vectors of a batch find no room. */
	ASSERT_GT_INT(harness_query_int(conn, "SELECT count(*) FROM entity_dna WHERE embedding IS NOT NULL"), 20);
	digest = process(dsn, conn, cache);
	printf("digest %s, reference %s\n", digest, reference);
	ASSERT_STR_EQ(digest, reference);
	/* Nothing stays pinned after the batches: both slots take new values. */
	ASSERT_TRUE(entity_cache_put(cache, "track", "x", "1", VEC_FORMAT_PGVECTOR, bad, sizeof(bad)) != NULL);
	ASSERT_TRUE(entity_cache_put(cache, "track", "y", "1", VEC_FORMAT_PGVECTOR, bad, sizeof(bad)) != NULL);
	entity_cache_destroy(cache);
	free(digest);
	PQfinish(conn);
}

struct sharing_worker {
	struct processor *p;
	long processed;
};

static void *sharing_worker_run(void *arg)
{
	struct sharing_worker *w = arg;

	w->processed = run_until_empty(w->p);
	return NULL;
}

static void case_shared_by_two(const char *reference)
{
	char dsn[DSN_MAX];
	PGconn *conn = open_workload("pins_shared", dsn);
	struct entity_cache *cache = entity_cache_create(24);
	struct sharing_worker w[2];
	PGconn *workers[2];
	pthread_t threads[2];
	char *digest;

	printf("\n=== two processors in two threads sharing a cache of 24 slots\n");
	for (int i = 0; i < 2; i++) {
		w[i] = (struct sharing_worker){.p = open_processor(dsn, cache, &workers[i])};
		ASSERT_EQ_INT(pthread_create(&threads[i], NULL, sharing_worker_run, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(threads[i], NULL);
		ASSERT_TRUE(w[i].processed >= 0);
		processor_destroy(w[i].p);
		PQfinish(workers[i]);
	}
	printf("processed %ld + %ld\n", w[0].processed, w[1].processed);
	ASSERT_EQ_INT(w[0].processed + w[1].processed, USERS * PER_USER);
	ASSERT_EQ_INT(harness_query_int(conn, UNPROCESSED_SQL), 0);
	digest = harness_query_text(conn, DIGEST_SQL);
	printf("digest %s, reference %s\n", digest, reference);
	ASSERT_STR_EQ(digest, reference);
	entity_cache_destroy(cache);
	free(digest);
	PQfinish(conn);
}

/*
 * Half the entries processed, every target vector changed, the rest processed: the same DNA as
 * a database that had the new vectors when its second half came, with a cache of its own.
 */
static void case_vectors_change(void)
{
	const char *update = "UPDATE entity_dna SET embedding = array(SELECT -x FROM unnest(embedding) AS x)"
			     " WHERE embedding IS NOT NULL";
	const char *hold = "UPDATE passport_entries SET next_attempt_at = now() + interval '1 hour'"
			   " WHERE \"timestamp\" >= (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY \"timestamp\")"
			   " FROM passport_entries)";
	const char *release = "UPDATE passport_entries SET next_attempt_at = NULL WHERE NOT processed";
	char dsn_a[DSN_MAX], dsn_b[DSN_MAX];
	PGconn *a = open_workload("pins_change_a", dsn_a), *b = open_workload("pins_change_b", dsn_b);
	struct entity_cache *cache = entity_cache_create(16);
	PGconn *worker_a, *worker_b;
	struct processor *pa = open_processor(dsn_a, cache, &worker_a);
	struct processor *pb;
	long first;
	char *digest_a, *digest_b;

	printf("\n=== target vectors updated between batches\n");
	harness_exec(a, hold);
	harness_exec(b, hold);
	first = run_until_empty(pa);
	ASSERT_GT_INT(first, 0);
	ASSERT_TRUE(first < USERS * PER_USER);
	harness_exec(a, update);
	harness_exec(a, release);
	ASSERT_EQ_INT(run_until_empty(pa), USERS * PER_USER - first);
	/* b: the same first half, then the second with a fresh processor and cache after the update. */
	pb = open_processor(dsn_b, NULL, &worker_b);
	ASSERT_EQ_INT(run_until_empty(pb), first);
	processor_destroy(pb);
	PQfinish(worker_b);
	harness_exec(b, update);
	harness_exec(b, release);
	pb = open_processor(dsn_b, NULL, &worker_b);
	ASSERT_EQ_INT(run_until_empty(pb), USERS * PER_USER - first);
	digest_a = harness_query_text(a, DIGEST_SQL);
	digest_b = harness_query_text(b, DIGEST_SQL);
	printf("digest %s, fresh cache %s\n", digest_a, digest_b);
	ASSERT_STR_EQ(digest_a, digest_b);
	processor_destroy(pa);
	processor_destroy(pb);
	PQfinish(worker_a);
	PQfinish(worker_b);
	entity_cache_destroy(cache);
	free(digest_a);
	free(digest_b);
	PQfinish(a);
	PQfinish(b);
}

int main(void)
{
	char *reference = reference_digest();

	case_no_room(reference);
	case_shared_by_two(reference);
	case_vectors_change();
	free(reference);
	TEST_PASS();
}
