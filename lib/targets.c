/*
 * targets: the target vectors of a batch's mediaid entries (SPEC 3). One query says which
 * entity_dna row holds each target's vector (its own, or for a track without one its artist's)
 * and that row's version (xmin); only the vectors missing from the entity cache, or changed since,
 * are then read, one row at a time, straight into the cache.
 */
#include "targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "entity_cache.h"
#include "pipeline.h"
#include "strbuf.h"

/* Where a target's vector is: the entity_dna row that holds it. */
struct target_source {
	char kind[8];                 /* entity_type of the entity_dna row holding the vector */
	char id[UUID_TEXT_LEN + 1];
	char version[24];             /* its xmin */
};

/* A target whose vector is not cached: the source to read, and the target it is for. */
struct pending_target {
	const struct target_source *source;
	int target;
};

static int compare_sources(const char *kind_a, const char *id_a, const char *kind_b, const char *id_b)
{
	int c = strcmp(kind_a, kind_b);
	return c ? c : strcmp(id_a, id_b);
}

static int compare_pending(const void *a, const void *b)
{
	const struct pending_target *x = a, *y = b;
	int c = compare_sources(x->source->kind, x->source->id, y->source->kind, y->source->id);
	return c ? c : (x->target > y->target) - (x->target < y->target);
}

/* The first of the sorted pending targets whose source is (kind, id), or n if none is. */
static int pending_lower_bound(const struct pending_target *pending, int n, const char *kind, const char *id)
{
	int lo = 0, hi = n;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (compare_sources(pending[mid].source->kind, pending[mid].source->id, kind, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Give target i a cached value; its vector stays the cache's (pinned) or the batch's copy. */
static void target_take(struct batch *b, int i, const struct cached_vector *cv)
{
	struct target *t = &b->targets[i];

	t->valid = cv->valid;
	if (!cv->valid) {
		snprintf(t->invalid_reason, sizeof(t->invalid_reason), "%s", cv->invalid_reason);
		return;
	}
	t->x = cv->x;
}

/*
 * A vector the cache has no room for (every slot pinned by the batches in flight): decoded into
 * the batch's own copy, freed with the batch. Returns -1 when out of memory.
 */
static int copy_take(struct processor *p, struct batch *b, const unsigned char *value, size_t len,
		     struct cached_vector *copy)
{
	copy->x = vec_create(VEC_DIM);
	if (!copy->x)
		return -1;
	b->copies[b->n_copies++] = copy->x;
	copy->valid = vec_decode(p->format, value, len, copy->x, VEC_DIM, copy->invalid_reason,
				 sizeof(copy->invalid_reason)) == 0;
	return 0;
}

static uint64_t hash_target(enum target_type type, const char *id)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)type; /* FNV-1a */
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return h;
}

/*
 * The targets of mediaid entries, collected without repeats, and the query that says which
 * entity_dna row holds each one's vector (its own, or for a track without one its artist's;
 * SPEC 3) and that row's version. targets_take then reads only the vectors missing from the
 * entity cache, or changed since.
 */
int targets_fetch(struct batch *b, struct db_statement *f)
{
	struct strbuf kinds = {0}, ids = {0};
	size_t n_slots = 16;
	int *slots; /* open addressing: target index + 1, 0 = empty */

	while (n_slots < 2 * (size_t)b->n_entries)
		n_slots *= 2;
	b->targets = calloc((size_t)(b->n_entries > 0 ? b->n_entries : 1), sizeof(*b->targets));
	slots = calloc(n_slots, sizeof(*slots));
	if (!b->targets || !slots) {
		free(slots);
		return -1;
	}
	for (int i = 0; i < b->n_entries; i++) {
		struct entry *e = &b->entries[i];
		size_t slot;
		int t;

		if (e->outcome != OUTCOME_OK || !(e->systems & SYSTEM_MEDIAID) || !e->user_id[0] ||
		    e->info.target_type == TARGET_NONE)
			continue;
		slot = (size_t)hash_target(e->info.target_type, e->info.target_id) & (n_slots - 1);
		for (;; slot = (slot + 1) & (n_slots - 1)) {
			t = slots[slot] - 1;
			if (t < 0 || (b->targets[t].type == e->info.target_type &&
				      strcmp(b->targets[t].id, e->info.target_id) == 0))
				break;
		}
		if (t < 0) {
			t = b->n_targets++;
			slots[slot] = t + 1;
			b->targets[t].type = e->info.target_type;
			memcpy(b->targets[t].id, e->info.target_id, sizeof(b->targets[t].id));
			b->targets[t].valid = true;
		}
		e->target = t;
	}
	free(slots);
	if (b->n_targets == 0)
		return 0;
	strbuf_add_str(&kinds, "{");
	strbuf_add_str(&ids, "{");
	for (int i = 0; i < b->n_targets; i++) {
		if (i) {
			strbuf_add_str(&kinds, ",");
			strbuf_add_str(&ids, ",");
		}
		strbuf_add_str(&kinds, target_type_name(b->targets[i].type));
		strbuf_add_str(&ids, b->targets[i].id);
	}
	strbuf_add_str(&kinds, "}");
	strbuf_add_str(&ids, "}");
	if (kinds.failed || ids.failed) {
		strbuf_free(&kinds);
		strbuf_free(&ids);
		return -1;
	}
	f->owned[0] = kinds.data;
	f->owned[1] = ids.data;
	f->sql = "SELECT t.ord::text,"
		 " CASE WHEN own.embedding IS NOT NULL THEN own.entity_type ELSE artist.entity_type END,"
		 " (CASE WHEN own.embedding IS NOT NULL THEN own.entity_id ELSE artist.entity_id END)::text,"
		 " (CASE WHEN own.embedding IS NOT NULL THEN own.xmin ELSE artist.xmin END)::text"
		 " FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS t(kind, id, ord)"
		 " LEFT JOIN entity_dna own ON own.entity_type = t.kind AND own.entity_id = t.id"
		 " LEFT JOIN content_items item ON t.kind = 'track' AND own.embedding IS NULL AND item.id = t.id"
		 " LEFT JOIN entity_dna artist ON artist.entity_type = 'artist' AND artist.entity_id = item.artist_id"
		 " AND artist.embedding IS NOT NULL";
	f->nparams = 2;
	f->unnamed = true; /* a generic plan, sized for 100 targets, took 1.3x as long as one for the batch's */
	f->values[0] = f->owned[0];
	f->values[1] = f->owned[1];
	return 0;
}

/* The vectors of the (kind, id) pairs $1, $2: entity_type, entity_id, xmin, the vector (binary). */
#define READ_VECTORS_FROM                                                                          \
	" FROM entity_dna e JOIN (SELECT DISTINCT kind, id FROM unnest($1::text[], $2::uuid[])"       \
	" AS s(kind, id)) s ON e.entity_type = s.kind AND e.entity_id = s.id"
#define READ_VECTORS "SELECT e.entity_type, e.entity_id::text, e.xmin::text, e.embedding" READ_VECTORS_FROM
/*
 * real[] vectors: the bytes array_send would give, as the trigger of sql/102_entity_dna_send.sql
 * kept them, while the row is still the version it wrote (else sent now, as above). Decoded
 * alike: a bytea in binary format is its bytes.
 */
#define READ_VECTORS_SENT                                                                          \
	"SELECT e.entity_type, e.entity_id::text, e.xmin::text,"                                      \
	" CASE WHEN e.embedding_send_xid = e.xmin AND e.embedding_send IS NOT NULL THEN e.embedding_send" \
	" ELSE array_send(e.embedding) END" READ_VECTORS_FROM

/* Give the targets their vectors: from the cache, else read (and cached) now. res may be NULL. */
int targets_take(struct processor *p, struct batch *b, PGresult *sources_res, struct db_error *error)
{
	struct strbuf kinds = {0}, ids = {0};
	struct target_source *sources = NULL;
	struct pending_target *pending = NULL; /* the targets to read, sorted by source */
	const char *values[2];
	PGresult *res = NULL; /* the vectors read now */
	int missing = 0;

	if (!sources_res || b->n_targets == 0)
		return 0;
	/* A pin for each target found cached and for each vector read: at most two per target. */
	b->pinned_in = p->entities;
	b->max_pins = 2 * b->n_targets;
	b->pins = malloc(sizeof(*b->pins) * (size_t)b->max_pins);
	b->copies = malloc(sizeof(*b->copies) * (size_t)b->n_targets);
	sources = calloc((size_t)b->n_targets, sizeof(*sources));
	pending = malloc(sizeof(*pending) * (size_t)b->n_targets);
	if (!b->pins || !b->copies || !sources || !pending)
		goto oom;
	strbuf_add_str(&kinds, "{");
	strbuf_add_str(&ids, "{");
	entity_cache_lock(p->entities);
	for (int r = 0; r < PQntuples(sources_res); r++) {
		long ord = strtol(PQgetvalue(sources_res, r, 0), NULL, 10);
		struct target_source *src;
		const struct cached_vector *cv;

		if (ord < 1 || ord > b->n_targets || PQgetisnull(sources_res, r, 1) || sources[ord - 1].kind[0])
			continue; /* no vector: decay only */
		src = &sources[ord - 1];
		text_copy(src->kind, sizeof(src->kind), PQgetvalue(sources_res, r, 1));
		text_copy(src->id, sizeof(src->id), PQgetvalue(sources_res, r, 2));
		text_copy(src->version, sizeof(src->version), PQgetvalue(sources_res, r, 3));
		cv = entity_cache_get_pinned(p->entities, src->kind, src->id, src->version, &b->pins[b->n_pins]);
		if (cv) {
			b->n_pins++;
			target_take(b, (int)ord - 1, cv);
			continue;
		}
		pending[missing] = (struct pending_target){.source = src, .target = (int)ord - 1};
		if (missing++) {
			strbuf_add_str(&kinds, ",");
			strbuf_add_str(&ids, ",");
		}
		strbuf_add_str(&kinds, src->kind);
		strbuf_add_str(&ids, src->id);
	}
	entity_cache_unlock(p->entities);
	strbuf_add_str(&kinds, "}");
	strbuf_add_str(&ids, "}");
	if (kinds.failed || ids.failed)
		goto oom;
	if (missing > 0) {
		bool failed = false, out_of_memory = false;

		/* Sorted, so that each vector read finds its targets by binary search, not a scan of all. */
		qsort(pending, (size_t)missing, sizeof(*pending), compare_pending);
		values[0] = kinds.data;
		values[1] = ids.data;
		/*
		 * One row at a time (single-row mode): each vector goes straight into the cache, so a
		 * batch with hundreds of cache misses never holds all of them in one result.
		 */
		if (!PQsendQueryParams(p->conn, p->has_entity_send ? READ_VECTORS_SENT : READ_VECTORS, 2, NULL, values,
				       NULL, NULL, 1) ||
		    !PQsetSingleRowMode(p->conn)) {
			db_error_from_connection(error, p->conn);
			goto fail;
		}
		while ((res = PQgetResult(p->conn)) != NULL) {
			ExecStatusType status = PQresultStatus(res);

			if (status == PGRES_SINGLE_TUPLE && !failed && !PQgetisnull(res, 0, 3)) {
				const char *kind = PQgetvalue(res, 0, 0), *id = PQgetvalue(res, 0, 1);
				const unsigned char *value = (const unsigned char *)PQgetvalue(res, 0, 3);
				size_t len = (size_t)PQgetlength(res, 0, 3);
				const struct cached_vector *cv = NULL;
				struct cached_vector copy;

				entity_cache_lock(p->entities);
				if (b->n_pins < b->max_pins) /* always, as the server returns each source once */
					cv = entity_cache_put_pinned(p->entities, kind, id, PQgetvalue(res, 0, 2),
								     p->format, value, len, &b->pins[b->n_pins]);
				if (cv)
					b->n_pins++;
				else if (b->n_copies < b->n_targets && copy_take(p, b, value, len, &copy) == 0)
					cv = &copy;
				for (int k = cv ? pending_lower_bound(pending, missing, kind, id) : missing;
				     k < missing && compare_sources(pending[k].source->kind, pending[k].source->id, kind, id) == 0;
				     k++) {
					int i = pending[k].target;
					if (!b->targets[i].x && b->targets[i].valid)
						target_take(b, i, cv);
				}
				entity_cache_unlock(p->entities);
				if (!cv)
					failed = out_of_memory = true;
			} else if (status != PGRES_SINGLE_TUPLE && status != PGRES_TUPLES_OK && !failed) {
				db_error_from_result(error, p->conn, res);
				failed = true;
			}
			/* A NULL embedding: emptied since the first query, decay only. */
			PQclear(res);
		}
		res = NULL;
		if (out_of_memory)
			goto oom;
		if (failed || db_connection_lost(p->conn)) {
			if (!failed) {
				db_error_from_connection(error, p->conn);
			}
			goto fail;
		}
	}
	strbuf_free(&kinds);
	strbuf_free(&ids);
	free(sources);
	free(pending);
	return 0;
oom:
	db_error_set(error, NULL, "out of memory");
fail:
	PQclear(res);
	strbuf_free(&kinds);
	strbuf_free(&ids);
	free(sources);
	free(pending);
	return -1;
}

