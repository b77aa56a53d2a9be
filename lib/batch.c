/*
 * batch: one batch of the pipeline, start to end.
 *
 * The flow of a batch, each step a single statement whatever the batch size:
 *   1. candidates: the users of the oldest due entries;
 *   2. lock: a transaction-scoped advisory lock per user (skipping users another worker holds),
 *      taking users in order of their oldest due entry until their due entries fill the batch;
 *   3. claim: all due entries of the locked users, FOR UPDATE SKIP LOCKED, in (timestamp, id) order;
 *   4. facts: the users' media_ids rows, the target vectors, the ledger correlation ids;
 *   5. evaluate every entry in memory (pure code: payload, routing, DNA math);
 *   6. write: coliseum rows, ledger links, dna_evolution rows, one UPDATE per batch for all DNA
 *      rows, processed marks, failure records; then COMMIT.
 *
 * Why lock users and not only entries: the DNA rule is order dependent. If two workers could hold
 * entries of one user at once, the later entries could be applied before the earlier ones, and
 * the result would depend on scheduling. Holding the user for the whole transaction makes every
 * DNA row's entries apply strictly in (timestamp, id) order, whatever the batch size or the
 * number of workers.
 *
 * Bad entries: everything that can be wrong with one entry is found in step 5 and recorded for
 * that entry alone. Should a write still fail (a constraint the upstream schema adds, a lock
 * timeout), the transaction is rolled back and the batch is redone one entry per transaction, so
 * the failing entry is recorded with the database's message and the others go through.
 */
#include "batch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "claim.h"
#include "db.h"
#include "dna.h"
#include "entity_cache.h"
#include "log.h"
#include "payload.h"
#include "tables.h"

#define ERROR_TEXT_MAX 500
#define SET_ASIDE_MAX 256           /* users passed over for a while, see struct set_aside */
#define SET_ASIDE_SECONDS 1.0

/* The columns a batch reads of an entry, from passport_entries (or a CTE of it) named c. */
#define ENTRY_COLUMNS                                                                              \
	"c.id::text, c.user_id::text, c.mediaid_id::text, c.event_type, c.payload::text, "              \
	"array_to_json(c.affects_systems)::text, coalesce(c.processing_attempts, 0), "                  \
	"floor(extract(epoch FROM c.\"timestamp\") * 1000000)::text, c.correlation, c.\"timestamp\"::text, "      \
	"c.row_ctid::text"

enum outcome {
	OUTCOME_OK = 0,
	OUTCOME_RETRY,
	OUTCOME_PERMANENT,
	OUTCOME_DEFERRED, /* left due, untouched: its DNA row is locked by another session */
};

struct entry {
	const char *id;
	const char *user_id;    /* "" when NULL */
	const char *mediaid_id; /* "" when NULL */
	const char *event_type;
	const char *payload; /* NULL when SQL NULL */
	size_t payload_len;
	const char *systems_json; /* NULL when SQL NULL */
	const char *correlation_column; /* treasury_correlation_id, NULL when absent */
	const char *time_text;          /* the timestamp as the server prints it, NULL when NULL */
	const char *ctid;               /* where the row is: stable while the claim's lock is held */
	int attempts;
	bool has_time;
	int64_t time_us;

	unsigned systems;
	struct payload_info info;
	enum outcome outcome;
	char error[ERROR_TEXT_MAX + 1];

	int dna_row;      /* index into batch rows, or -1 */
	int target;       /* index into batch targets, or -1 */
	struct dna_step step;
	double delta_norms[VEC_DOMAINS];
};

struct dna_row {
	char id[UUID_TEXT_LEN + 1];
	char user_id[UUID_TEXT_LEN + 1];
	bool is_fan;
	float *v;
	bool valid;
	char invalid_reason[200];
	bool has_clock; /* false when dna_clock or the embedding is NULL */
	int64_t clock_us;
	struct dna_preferences prefs;
	int clock_entry; /* entry whose timestamp is the new clock, or -1 */
	bool dirty;
	bool held_elsewhere; /* another session holds a lock on the row */
};

struct target {
	enum target_type type;
	char id[UUID_TEXT_LEN + 1];
	float *x; /* NULL when no vector was found */
	bool valid;
	char invalid_reason[200];
};

struct batch {
	PGresult *claimed; /* owns the strings the entries point to */
	struct entry *entries;
	int n_entries;
	struct dna_row *rows;
	int n_rows;
	struct target *targets;
	int n_targets;
	float *target_vectors; /* n_targets x VEC_DIM: the targets' private copies (the processor's buffer) */
	char **correlations; /* ledger correlation ids that exist, sorted */
	int n_correlations;
};

/*
 * A user whose next due entry (or DNA row) another session holds cannot make progress; it is
 * left out of the candidates for a second, so that it does not take a place in every batch
 * (with small batches it could otherwise fill them all, and nobody else would move).
 */
struct set_aside {
	char user[UUID_TEXT_LEN + 1];
	double until; /* monotonic seconds */
};

struct processor {
	PGconn *conn;
	struct batch_config config;
	enum vec_format format;
	bool has_ledger;
	bool has_correlation_column;
	char *claim_users_sql;
	char *claim_id_sql;
	char *update_dna_sql;
	float *scratch;
	uint64_t random_state;
	/*
	 * How many candidate users to consider for the next batch: about twice the number whose due
	 * entries filled the last one. Counting the due entries of every user behind the oldest
	 * batch_size entries would cost a count per user for users the batch cannot take.
	 */
	int candidate_users;
	struct entity_cache *entities;
	bool owns_entities;
	/*
	 * The batch's private copies of its target vectors, kept between batches: a few MB that
	 * would otherwise be mapped, faulted in and unmapped again for every batch.
	 */
	float *target_buffer;
	size_t target_buffer_vectors;
	struct entry *entry_buffer; /* likewise the batch's entries */
	size_t entry_buffer_entries;
	struct set_aside set_aside[SET_ASIDE_MAX];
	int n_set_aside;
};

/* A growable string for array literals. */
struct strbuf {
	char *data;
	size_t len, cap;
	bool failed;
};

static void strbuf_add(struct strbuf *sb, const char *text, size_t n)
{
	if (sb->failed)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap * 2 : 256;
		char *data;
		while (cap < sb->len + n + 1)
			cap *= 2;
		data = realloc(sb->data, cap);
		if (!data) {
			sb->failed = true;
			return;
		}
		sb->data = data;
		sb->cap = cap;
	}
	memcpy(sb->data + sb->len, text, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

static void strbuf_add_str(struct strbuf *sb, const char *text)
{
	strbuf_add(sb, text, strlen(text));
}

static void strbuf_free(struct strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}

void batch_config_default(struct batch_config *config)
{
	config->batch_size = 500;
	config->enabled_systems = SYSTEM_ALL;
	config->max_payload_bytes = PAYLOAD_DEFAULT_MAX_BYTES;
	config->max_attempts = 5;
	config->retry_base_seconds = 10.0;
	config->retry_cap_seconds = 3600.0;
	config->shared_entities = NULL;
}

/* Cut s to at most max bytes without splitting a UTF-8 sequence. */
static void utf8_truncate(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	s[n] = '\0';
}

static void entry_fail(struct entry *entry, enum outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void entry_fail(struct entry *entry, enum outcome outcome, const char *fmt, ...)
{
	va_list ap;

	if (entry->outcome != OUTCOME_OK)
		return; /* the first failure is the one recorded */
	entry->outcome = outcome;
	va_start(ap, fmt);
	vsnprintf(entry->error, sizeof(entry->error), fmt, ap);
	va_end(ap);
	utf8_truncate(entry->error, ERROR_TEXT_MAX);
}

/*
 * Parse the text of a whole number of microseconds (from floor(extract(epoch ...) * 1e6)).
 * Returns 0, or -1 for NULL, infinity or a value out of range.
 */
static int parse_micros(const char *text, int64_t *out)
{
	char *end;
	long long value;

	if (!text || !*text)
		return -1;
	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno || *end != '\0')
		return -1;
	*out = value;
	return 0;
}

static uint64_t next_random(struct processor *p)
{
	/* xorshift64*: jitter only, not security. */
	uint64_t x = p->random_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	p->random_state = x;
	return x * 2685821657736338717ULL;
}

static double retry_delay_seconds(struct processor *p, int attempts)
{
	double delay = p->config.retry_base_seconds;
	double jitter;

	for (int i = 1; i < attempts && delay < p->config.retry_cap_seconds; i++)
		delay *= 2.0;
	if (delay > p->config.retry_cap_seconds)
		delay = p->config.retry_cap_seconds;
	/* +-20 % so that entries failing together do not come back together. */
	jitter = 0.8 + 0.4 * (double)(next_random(p) >> 11) / 9007199254740992.0;
	return delay * jitter;
}

static char *sql_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *sql_printf(const char *fmt, ...)
{
	va_list ap;
	char *out = NULL;

	va_start(ap, fmt);
	if (vasprintf(&out, fmt, ap) < 0)
		out = NULL;
	va_end(ap);
	return out;
}

struct processor *processor_create(PGconn *conn, const struct batch_config *config, struct db_error *error)
{
	struct processor *p = calloc(1, sizeof(*p));
	PGresult *res;
	const char *correlation;
	bool schema_ready;

	if (!p) {
		db_error_set(error, NULL, "out of memory");
		return NULL;
	}
	p->conn = conn;
	p->config = *config;
	p->candidate_users = 16;
	p->random_state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;

	if (db_query_bool(p->conn,
		       "SELECT to_regclass('passport_entries') IS NOT NULL AND to_regclass('dna_evolution') IS NOT NULL"
		       " AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('media_ids')"
		       " AND attname = 'dna_clock' AND NOT attisdropped)",
		       &schema_ready, error) < 0)
		goto fail;
	if (!schema_ready) {
		db_error_set(error, NULL, "the project's schema is missing: run `passport-migrate schema` first");
		goto fail;
	}

	res = db_query(p->conn,
		    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
		    " WHERE attrelid = 'media_ids'::regclass AND attname = 'profile_embedding' AND NOT attisdropped",
		    0, NULL, NULL, NULL, 0, error);
	if (!res)
		goto fail;
	if (PQntuples(res) != 1) {
		db_error_set(error, NULL, "media_ids.profile_embedding is missing");
		PQclear(res);
		goto fail;
	}
	if (strncmp(PQgetvalue(res, 0, 0), "vector", 6) == 0) {
		p->format = VEC_FORMAT_PGVECTOR;
	} else if (strcmp(PQgetvalue(res, 0, 0), "real[]") == 0) {
		p->format = VEC_FORMAT_REAL_ARRAY;
	} else {
		db_error_set(error, NULL, "media_ids.profile_embedding has type %s, expected vector(1536) or real[]",
			 PQgetvalue(res, 0, 0));
		PQclear(res);
		goto fail;
	}
	PQclear(res);

	if (db_query_bool(p->conn, "SELECT to_regclass('ledger_entries') IS NOT NULL", &p->has_ledger, error) < 0)
		goto fail;
	if (db_query_bool(p->conn,
		       "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'passport_entries'::regclass"
		       " AND attname = 'treasury_correlation_id' AND NOT attisdropped)",
		       &p->has_correlation_column, error) < 0)
		goto fail;

	correlation = p->has_correlation_column ? "e.treasury_correlation_id::text" : "NULL::text";
	/*
	 * Claim the due entries of the locked users (and of no user). SKIP LOCKED passes over an
	 * entry some other session holds; taking the user's later entries then would apply them
	 * before it. So each user's claim is cut at the first due entry not claimed ("gap"): what
	 * is claimed is always a prefix of the user's due entries in (timestamp, id) order. The cut
	 * entries stay due, untouched.
	 */
	p->claim_users_sql = sql_printf(
		"WITH claimed AS (SELECT e.*, e.ctid AS row_ctid, %s AS correlation FROM passport_entries e"
		"  WHERE (e.user_id = ANY($1::uuid[]) OR ($3::boolean AND e.user_id IS NULL)) AND " DUE_CONDITION
		"  ORDER BY e.\"timestamp\", e.id LIMIT $2 FOR UPDATE OF e SKIP LOCKED),"
		" gap AS (SELECT DISTINCT ON (e.user_id) e.user_id, coalesce(e.\"timestamp\", 'infinity') AS ts, e.id"
		"  FROM passport_entries e WHERE e.user_id = ANY($1::uuid[]) AND " DUE_CONDITION
		"  AND e.id NOT IN (SELECT id FROM claimed)"
		"  ORDER BY e.user_id, coalesce(e.\"timestamp\", 'infinity'), e.id)"
		" SELECT " ENTRY_COLUMNS " FROM claimed c LEFT JOIN gap g ON g.user_id = c.user_id"
		" WHERE g.user_id IS NULL OR (coalesce(c.\"timestamp\", 'infinity'), c.id) < (g.ts, g.id)"
		" ORDER BY c.\"timestamp\", c.id",
		correlation);
	p->claim_id_sql = sql_printf(
		"WITH claimed AS (SELECT e.*, e.ctid AS row_ctid, %s AS correlation FROM passport_entries e"
		"  WHERE e.id = $1::uuid AND " DUE_CONDITION
		"  AND (e.user_id IS NULL OR pg_try_advisory_xact_lock(" LOCK_CLASS_USER ", hashtext(e.user_id::text)))"
		"  FOR UPDATE OF e SKIP LOCKED)"
		" SELECT " ENTRY_COLUMNS " FROM claimed c",
		correlation);
	/*
	 * All embeddings of a batch travel as one flat binary real[] parameter; row i takes the slice
	 * [i*1536+1, (i+1)*1536]. real[] to vector is pgvector's own exact cast, so one statement
	 * serves both column types.
	 */
	p->update_dna_sql = sql_printf(
		"UPDATE media_ids m SET profile_embedding = ($2::real[])[(u.ord - 1) * %d + 1 : u.ord * %d]%s,"
		" dna_clock = CASE WHEN u.clock_entry IS NULL THEN m.dna_clock"
		" ELSE (SELECT c.\"timestamp\" FROM passport_entries c WHERE c.id = u.clock_entry) END,"
		" version = m.version + 1, updated_at = now()"
		" FROM unnest($1::uuid[], $3::uuid[]) WITH ORDINALITY AS u(id, clock_entry, ord)"
		" WHERE m.id = u.id",
		VEC_DIM, VEC_DIM, p->format == VEC_FORMAT_PGVECTOR ? "::vector" : "");
	p->scratch = vec_create(VEC_DIM);
	p->owns_entities = config->shared_entities == NULL;
	p->entities = p->owns_entities ? entity_cache_create(BATCH_ENTITY_CACHE_CAPACITY) : config->shared_entities;
	if (!p->entities || !p->claim_users_sql || !p->claim_id_sql || !p->update_dna_sql ||
	    !p->scratch) {
		db_error_set(error, NULL, "out of memory");
		goto fail;
	}
	dna_init_blas();
	return p;

fail:
	processor_destroy(p);
	return NULL;
}

void processor_destroy(struct processor *p)
{
	if (!p)
		return;
	free(p->claim_users_sql);
	free(p->claim_id_sql);
	free(p->update_dna_sql);
	vec_free(p->scratch);
	if (p->owns_entities)
		entity_cache_destroy(p->entities);
	free(p->target_buffer);
	free(p->entry_buffer);
	free(p);
}

void processor_set_config(struct processor *p, const struct batch_config *config)
{
	p->config = *config;
}

enum vec_format processor_vector_format(const struct processor *p)
{
	return p->format;
}

static void batch_clear(struct batch *b)
{
	PQclear(b->claimed);
	for (int i = 0; i < b->n_rows; i++)
		vec_free(b->rows[i].v);
	free(b->rows);
	free(b->targets);
	for (int i = 0; i < b->n_correlations; i++)
		free(b->correlations[i]);
	free(b->correlations);
	memset(b, 0, sizeof(*b));
}

/* Append the rows of a claim result (all with ENTRY_COLUMNS + correlation) to the batch. */
static int batch_take_claimed(struct processor *p, struct batch *b, PGresult *res)
{
	int n = PQntuples(res);
	size_t wanted = (size_t)(n > 0 ? n : 1);

	b->claimed = res;
	if (p->entry_buffer_entries < wanted) {
		struct entry *grown = malloc(sizeof(*grown) * wanted);
		if (!grown)
			return -1;
		free(p->entry_buffer);
		p->entry_buffer = grown;
		p->entry_buffer_entries = wanted;
	}
	b->entries = p->entry_buffer;
	memset(b->entries, 0, sizeof(*b->entries) * wanted);
	b->n_entries = n;
	for (int i = 0; i < n; i++) {
		struct entry *e = &b->entries[i];

		e->id = PQgetvalue(res, i, 0);
		e->user_id = PQgetvalue(res, i, 1);
		e->mediaid_id = PQgetvalue(res, i, 2);
		e->event_type = PQgetvalue(res, i, 3);
		e->payload = PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4);
		e->payload_len = e->payload ? (size_t)PQgetlength(res, i, 4) : 0;
		e->systems_json = PQgetisnull(res, i, 5) ? NULL : PQgetvalue(res, i, 5);
		e->attempts = atoi(PQgetvalue(res, i, 6));
		e->has_time = parse_micros(PQgetisnull(res, i, 7) ? NULL : PQgetvalue(res, i, 7), &e->time_us) == 0;
		e->correlation_column = PQgetisnull(res, i, 8) ? NULL : PQgetvalue(res, i, 8);
		e->time_text = PQgetisnull(res, i, 9) ? NULL : PQgetvalue(res, i, 9);
		e->ctid = PQgetvalue(res, i, 10);
		e->dna_row = -1;
		e->target = -1;
	}
	return 0;
}

/* Resolve the entry's systems: its own list, else the default route; minus disabled systems. */
static void entry_route(struct processor *p, struct entry *e, struct batch_totals *totals)
{
	unsigned systems = 0;
	cJSON *list;

	list = e->systems_json ? cJSON_Parse(e->systems_json) : NULL;
	if (cJSON_IsArray(list) && cJSON_GetArraySize(list) > 0) {
		const cJSON *item;
		cJSON_ArrayForEach(item, list) {
			unsigned system = cJSON_IsString(item) ? system_from_name(item->valuestring) : 0;
			if (!system) {
				char name[80];
				snprintf(name, sizeof(name), "%s", cJSON_IsString(item) ? item->valuestring : "null");
				utf8_truncate(name, 64);
				entry_fail(e, OUTCOME_PERMANENT, "route: unknown system '%s' in affects_systems", name);
				break;
			}
			systems |= system;
		}
	} else {
		systems = route_for_event(e->event_type)->systems;
	}
	cJSON_Delete(list);
	for (unsigned bit = 1; bit <= SYSTEM_TREASURY; bit <<= 1)
		if ((systems & bit) && !(p->config.enabled_systems & bit)) {
			systems &= ~bit;
			totals->skipped_systems++;
		}
	e->systems = systems;
}

static int compare_uuid_text(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Build "{a,b,c}" from the distinct non-empty uuid texts (already validated canonical). */
static char *uuid_array_literal(const char **ids, int n)
{
	struct strbuf sb = {0};
	const char **sorted = malloc(sizeof(*sorted) * (size_t)(n > 0 ? n : 1));
	const char *last = NULL;
	bool first = true;

	if (!sorted)
		return NULL;
	memcpy(sorted, ids, sizeof(*sorted) * (size_t)n);
	qsort(sorted, (size_t)n, sizeof(*sorted), compare_uuid_text);
	strbuf_add_str(&sb, "{");
	for (int i = 0; i < n; i++) {
		if (!sorted[i][0] || (last && strcmp(last, sorted[i]) == 0))
			continue;
		if (!first)
			strbuf_add_str(&sb, ",");
		strbuf_add_str(&sb, sorted[i]);
		first = false;
		last = sorted[i];
	}
	strbuf_add_str(&sb, "}");
	free(sorted);
	if (sb.failed) {
		strbuf_free(&sb);
		return NULL;
	}
	return sb.data;
}

static int compare_rows(const void *a, const void *b)
{
	const struct dna_row *x = a, *y = b;
	int c = strcmp(x->user_id, y->user_id);
	return c ? c : strcmp(x->id, y->id);
}

/*
 * The media_ids rows of every user with a mediaid entry. They are locked now, skipping rows
 * another session holds (an application update in progress): the entries of such a row are
 * deferred to a later batch rather than waiting here, or being applied out of order.
 */
static int dna_rows_fetch(struct batch *b, struct db_statement *f)
{
	const char **users = malloc(sizeof(*users) * (size_t)(b->n_entries + 1));
	int n_users = 0;

	if (!users)
		return -1;
	for (int i = 0; i < b->n_entries; i++) {
		struct entry *e = &b->entries[i];
		if (e->outcome == OUTCOME_OK && (e->systems & SYSTEM_MEDIAID) && e->user_id[0])
			users[n_users++] = e->user_id;
	}
	if (n_users == 0) {
		free(users);
		return 0;
	}
	f->owned[0] = uuid_array_literal(users, n_users);
	free(users);
	if (!f->owned[0])
		return -1;
	f->sql = "WITH held AS (SELECT m.id FROM media_ids m WHERE m.user_uuid = ANY($1::uuid[])"
		 "  FOR NO KEY UPDATE OF m SKIP LOCKED)"
		 " SELECT m.id::text, m.user_uuid::text, m.role::text, m.profile_embedding,"
		 " floor(extract(epoch FROM m.dna_clock) * 1000000)::text,"
		 " (m.content_flags -> 'dna_preferences')::text, (m.id IN (SELECT id FROM held))::text"
		 " FROM media_ids m WHERE m.user_uuid = ANY($1::uuid[])"
		 " ORDER BY m.user_uuid, m.id";
	f->nparams = 1;
	f->values[0] = f->owned[0];
	f->result_format = 1;
	return 0;
}

/* Decode the DNA rows (sorted by (user, id)); res may be NULL (no mediaid entry). */
static int dna_rows_take(struct processor *p, struct batch *b, PGresult *res, struct db_error *error)
{
	if (!res)
		return 0;
	b->n_rows = PQntuples(res);
	b->rows = calloc((size_t)(b->n_rows > 0 ? b->n_rows : 1), sizeof(*b->rows));
	if (!b->rows)
		goto oom;
	for (int i = 0; i < b->n_rows; i++) {
		struct dna_row *row = &b->rows[i];
		char reason[160];

		snprintf(row->id, sizeof(row->id), "%s", PQgetvalue(res, i, 0));
		snprintf(row->user_id, sizeof(row->user_id), "%s", PQgetvalue(res, i, 1));
		row->is_fan = strcmp(PQgetvalue(res, i, 2), "fan") == 0;
		row->held_elsewhere = strcmp(PQgetvalue(res, i, 6), "true") != 0;
		row->clock_entry = -1;
		row->valid = true;
		row->v = vec_create(VEC_DIM);
		if (!row->v)
			goto oom;
		if (!PQgetisnull(res, i, 3)) {
			if (vec_decode(p->format, (const unsigned char *)PQgetvalue(res, i, 3),
				       (size_t)PQgetlength(res, i, 3), row->v, VEC_DIM, reason, sizeof(reason)) < 0) {
				row->valid = false;
				snprintf(row->invalid_reason, sizeof(row->invalid_reason), "%s", reason);
			}
			row->has_clock = parse_micros(PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4),
						      &row->clock_us) == 0;
		}
		dna_preferences_default(&row->prefs);
		if (!PQgetisnull(res, i, 5)) {
			cJSON *prefs = cJSON_ParseWithLength(PQgetvalue(res, i, 5), (size_t)PQgetlength(res, i, 5));
			dna_preferences_from_json(prefs, &row->prefs);
			cJSON_Delete(prefs);
		}
	}
	qsort(b->rows, (size_t)b->n_rows, sizeof(*b->rows), compare_rows);
	return 0;
oom:
	db_error_set(error, NULL, "out of memory");
	return -1;
}

/* Which DNA row an entry applies to (SPEC 3), or a failure recorded on the entry. */
static void entry_pick_row(struct batch *b, struct entry *e);

/* Pick the entry's DNA row, deferring the entry when another session holds that row. */
static void entry_choose_row(struct batch *b, struct entry *e)
{
	entry_pick_row(b, e);
	if (e->outcome == OUTCOME_OK && e->dna_row >= 0 && b->rows[e->dna_row].held_elsewhere)
		e->outcome = OUTCOME_DEFERRED;
}

static void entry_pick_row(struct batch *b, struct entry *e)
{
	int first = -1, count = 0, fan = -1;

	if (!e->user_id[0]) {
		entry_fail(e, OUTCOME_PERMANENT, "mediaid: entry has no user_id");
		return;
	}
	for (int i = 0; i < b->n_rows; i++) {
		int c = strcmp(b->rows[i].user_id, e->user_id);
		if (c > 0)
			break;
		if (c < 0)
			continue;
		if (first < 0)
			first = i;
		count++;
		if (b->rows[i].is_fan)
			fan = i;
		if (e->mediaid_id[0] && strcmp(b->rows[i].id, e->mediaid_id) == 0) {
			e->dna_row = i;
			return;
		}
	}
	if (e->mediaid_id[0]) {
		entry_fail(e, OUTCOME_PERMANENT, "mediaid: media_ids row %s does not belong to user %s",
			   e->mediaid_id, e->user_id);
		return;
	}
	if (count == 0) {
		entry_fail(e, OUTCOME_RETRY, "mediaid: user %s has no media_ids row yet", e->user_id);
		return;
	}
	if (count == 1) {
		e->dna_row = first;
		return;
	}
	if (fan < 0) {
		entry_fail(e, OUTCOME_PERMANENT,
			   "mediaid: user %s has %d media_ids rows and none with role fan; set mediaid_id",
			   e->user_id, count);
		return;
	}
	e->dna_row = fan;
}

/* Collect the distinct targets of mediaid entries and load their vectors from entity_dna. */
struct target_source {
	char kind[8];                 /* entity_type of the entity_dna row holding the vector */
	char id[UUID_TEXT_LEN + 1];
	char version[24];             /* its xmin */
};

/* Give target i the value of a cached vector (a private copy: the cache may drop it later). */
static void target_take(struct batch *b, int i, const struct cached_vector *cv)
{
	struct target *t = &b->targets[i];

	t->valid = cv->valid;
	if (!cv->valid) {
		snprintf(t->invalid_reason, sizeof(t->invalid_reason), "%s", cv->invalid_reason);
		return;
	}
	t->x = b->target_vectors + (size_t)i * VEC_DIM;
	memcpy(t->x, cv->x, sizeof(float) * VEC_DIM);
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
static int targets_fetch(struct batch *b, struct db_statement *f)
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
	f->values[0] = f->owned[0];
	f->values[1] = f->owned[1];
	return 0;
}

/* Give the targets their vectors: from the cache, else read (and cached) now. res may be NULL. */
static int targets_take(struct processor *p, struct batch *b, PGresult *sources_res, struct db_error *error)
{
	struct strbuf kinds = {0}, ids = {0};
	struct target_source *sources = NULL;
	const char *values[2];
	PGresult *res = NULL; /* the vectors read now */
	int missing = 0;

	if (!sources_res || b->n_targets == 0)
		return 0;
	if (p->target_buffer_vectors < (size_t)b->n_targets) {
		float *grown = malloc(sizeof(float) * VEC_DIM * (size_t)b->n_targets);
		if (!grown)
			goto oom;
		free(p->target_buffer);
		p->target_buffer = grown;
		p->target_buffer_vectors = (size_t)b->n_targets;
	}
	b->target_vectors = p->target_buffer;
	sources = calloc((size_t)b->n_targets, sizeof(*sources));
	if (!sources)
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
		snprintf(src->kind, sizeof(src->kind), "%s", PQgetvalue(sources_res, r, 1));
		snprintf(src->id, sizeof(src->id), "%s", PQgetvalue(sources_res, r, 2));
		snprintf(src->version, sizeof(src->version), "%s", PQgetvalue(sources_res, r, 3));
		cv = entity_cache_get(p->entities, src->kind, src->id, src->version);
		if (cv) {
			target_take(b, (int)ord - 1, cv);
			continue;
		}
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

		values[0] = kinds.data;
		values[1] = ids.data;
		/*
		 * One row at a time (single-row mode): each vector goes straight into the cache, so a
		 * batch with hundreds of cache misses never holds all of them in one result.
		 */
		if (!PQsendQueryParams(p->conn,
				       "SELECT e.entity_type, e.entity_id::text, e.xmin::text, e.embedding"
				       " FROM entity_dna e JOIN (SELECT DISTINCT kind, id FROM unnest($1::text[], $2::uuid[])"
				       " AS s(kind, id)) s ON e.entity_type = s.kind AND e.entity_id = s.id",
				       2, NULL, values, NULL, NULL, 1) ||
		    !PQsetSingleRowMode(p->conn)) {
			db_error_from_connection(error, p->conn);
			goto fail;
		}
		while ((res = PQgetResult(p->conn)) != NULL) {
			ExecStatusType status = PQresultStatus(res);

			if (status == PGRES_SINGLE_TUPLE && !failed && !PQgetisnull(res, 0, 3)) {
				const char *kind = PQgetvalue(res, 0, 0), *id = PQgetvalue(res, 0, 1);
				const struct cached_vector *cv;

				entity_cache_lock(p->entities);
				cv = entity_cache_put(p->entities, kind, id, PQgetvalue(res, 0, 2), p->format,
						      (const unsigned char *)PQgetvalue(res, 0, 3),
						      (size_t)PQgetlength(res, 0, 3));
				for (int i = 0; cv && i < b->n_targets; i++)
					if (!b->targets[i].x && b->targets[i].valid &&
					    strcmp(sources[i].kind, kind) == 0 && strcmp(sources[i].id, id) == 0)
						target_take(b, i, cv);
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
	return 0;
oom:
	db_error_set(error, NULL, "out of memory");
fail:
	PQclear(res);
	strbuf_free(&kinds);
	strbuf_free(&ids);
	free(sources);
	return -1;
}

static const char *entry_correlation(const struct entry *e)
{
	if (e->info.correlation_id[0])
		return e->info.correlation_id;
	if (e->correlation_column && e->correlation_column[0])
		return e->correlation_column;
	return NULL;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Which correlation ids of treasury entries have ledger rows: the query. */
static int correlations_fetch(struct processor *p, struct batch *b, struct db_statement *f)
{
	cJSON *list;
	int wanted = 0;

	if (!p->has_ledger)
		return 0;
	list = cJSON_CreateArray();
	if (!list)
		return -1;
	for (int i = 0; i < b->n_entries; i++) {
		struct entry *e = &b->entries[i];
		const char *correlation = entry_correlation(e);
		if (e->outcome == OUTCOME_OK && (e->systems & SYSTEM_TREASURY) && correlation) {
			cJSON_AddItemToArray(list, cJSON_CreateString(correlation));
			wanted++;
		}
	}
	if (wanted == 0) {
		cJSON_Delete(list);
		return 0;
	}
	f->owned[0] = cJSON_PrintUnformatted(list);
	cJSON_Delete(list);
	if (!f->owned[0])
		return -1;
	f->sql = "SELECT DISTINCT l.correlation_id FROM ledger_entries l"
		 " WHERE l.correlation_id IN (SELECT jsonb_array_elements_text($1::jsonb))";
	f->nparams = 1;
	f->values[0] = f->owned[0];
	return 0;
}

/* The correlation ids found, sorted for ledger_has. res may be NULL. */
static int correlations_take(struct batch *b, PGresult *res, struct db_error *error)
{
	if (!res)
		return 0;
	b->n_correlations = PQntuples(res);
	b->correlations = calloc((size_t)(b->n_correlations + 1), sizeof(char *));
	if (!b->correlations)
		goto oom;
	for (int i = 0; i < b->n_correlations; i++)
		b->correlations[i] = strdup(PQgetvalue(res, i, 0));
	for (int i = 0; i < b->n_correlations; i++)
		if (!b->correlations[i])
			goto oom;
	qsort(b->correlations, (size_t)b->n_correlations, sizeof(char *), compare_strings);
	return 0;
oom:
	db_error_set(error, NULL, "out of memory");
	return -1;
}

static bool ledger_has(const struct batch *b, const char *correlation)
{
	return bsearch(&correlation, b->correlations, (size_t)b->n_correlations, sizeof(char *),
		       compare_strings) != NULL;
}

/* First pass: everything about an entry that needs no database facts. */
static void entry_prepare(struct processor *p, struct entry *e, struct batch_totals *totals)
{
	char reason[200];

	e->outcome = OUTCOME_OK;
	if (payload_parse(e->payload, e->payload_len, p->config.max_payload_bytes, &e->info, reason,
			  sizeof(reason)) < 0) {
		entry_fail(e, OUTCOME_PERMANENT, "payload: %s", reason);
		return;
	}
	if (!e->has_time) {
		entry_fail(e, OUTCOME_PERMANENT, "entry: timestamp is NULL or out of range");
		return;
	}
	entry_route(p, e, totals);
}

/*
 * Second pass, in (timestamp, id) order: treasury checks, then the DNA update on the row's
 * in-memory state. The DNA state only changes when the whole entry succeeds.
 */
static void entry_evaluate(struct processor *p, struct batch *b, int index)
{
	struct entry *e = &b->entries[index];
	struct dna_row *row;
	const float *x = NULL;

	if (e->outcome != OUTCOME_OK)
		return;
	if (e->systems & SYSTEM_TREASURY) {
		const char *correlation = entry_correlation(e);
		if (e->info.amount_state == AMOUNT_INVALID) {
			entry_fail(e, OUTCOME_PERMANENT, "treasury: amount_cents must be a non-negative integer");
			return;
		}
		if (p->has_ledger && correlation && !ledger_has(b, correlation)) {
			char shown[PAYLOAD_CORRELATION_MAX + 1];
			snprintf(shown, sizeof(shown), "%s", correlation);
			utf8_truncate(shown, 64);
			entry_fail(e, OUTCOME_RETRY, "treasury: no ledger entry with correlation_id '%s' yet", shown);
			return;
		}
	}
	if (!(e->systems & SYSTEM_MEDIAID))
		return;
	if (e->dna_row < 0)
		return; /* entry_pick_row recorded why */
	row = &b->rows[e->dna_row];
	if (!row->valid) {
		entry_fail(e, OUTCOME_PERMANENT, "mediaid: profile_embedding of media_ids %s is invalid: %s", row->id,
			   row->invalid_reason);
		return;
	}
	if (e->target >= 0) {
		const struct target *t = &b->targets[e->target];
		if (!t->valid) {
			entry_fail(e, OUTCOME_PERMANENT, "mediaid: entity_dna vector for %s %s is invalid: %s",
				   target_type_name(t->type), t->id, t->invalid_reason);
			return;
		}
		x = t->x; /* NULL when no vector: decay only */
	}
	dna_compute_step(row->has_clock, row->clock_us, e->time_us, influence_for_event(e->event_type), &row->prefs,
			 &e->step);
	memcpy(p->scratch, row->v, sizeof(float) * VEC_DIM);
	dna_apply_step(p->scratch, x, &e->step, e->delta_norms);
	if (!vec_all_finite(p->scratch, VEC_DIM)) {
		entry_fail(e, OUTCOME_PERMANENT, "mediaid: the update would make media_ids %s non-finite", row->id);
		return;
	}
	{
		float *previous = row->v; /* the new state is the scratch vector: swap, do not copy */
		row->v = p->scratch;
		p->scratch = previous;
	}
	if (e->step.advances_clock) {
		row->has_clock = true;
		row->clock_us = e->time_us;
		row->clock_entry = index;
	}
	row->dirty = true;
	if (!x)
		e->target = -1; /* recorded as no target */
}


static int write_json(struct processor *p, const char *sql, cJSON *rows, struct db_error *error)
{
	char *text;
	const char *values[1];
	int rc;

	if (cJSON_GetArraySize(rows) == 0) {
		cJSON_Delete(rows);
		return 0;
	}
	text = cJSON_PrintUnformatted(rows);
	cJSON_Delete(rows);
	if (!text) {
		db_error_set(error, NULL, "out of memory");
		return -1;
	}
	values[0] = text;
	rc = db_send(p->conn, sql, 1, values, NULL, NULL, error);
	cJSON_free(text);
	return rc;
}

static void coliseum_metric(const struct entry *e, double *value, const char **unit)
{
	*unit = NULL;
	if (e->info.amount_state == AMOUNT_VALID) {
		*value = (double)e->info.amount_cents;
		*unit = "cents";
	} else if (e->info.has_weight && strstr(e->event_type, "vote") != NULL) {
		*value = e->info.weight;
	} else if (e->info.has_value) {
		*value = e->info.value;
	} else {
		*value = 1.0;
	}
}

/*
 * A column of a batch write, as the text of a PostgreSQL array. array_add takes UUIDs, numbers
 * and fixed words from this file, which need no quoting; data (event types, timestamps) goes
 * through array_add_quoted.
 */
struct array_param {
	struct strbuf text;
	int n;
};

static void array_add(struct array_param *a, const char *value)
{
	strbuf_add_str(&a->text, a->n++ ? "," : "{");
	strbuf_add_str(&a->text, value ? value : "NULL");
}

/* Add a value that may hold any text (data): double-quoted, with '"' and '\\' escaped. */
static void array_add_quoted(struct array_param *a, const char *value)
{
	if (!value) {
		array_add(a, NULL);
		return;
	}
	strbuf_add_str(&a->text, a->n++ ? ",\"" : "{\"");
	for (const char *c = value; *c; c++) {
		const char *run = c;
		while (*c && *c != '"' && *c != '\\')
			c++;
		strbuf_add(&a->text, run, (size_t)(c - run));
		if (!*c)
			break;
		strbuf_add(&a->text, "\\", 1);
		strbuf_add(&a->text, c, 1);
	}
	strbuf_add_str(&a->text, "\"");
}

static void array_add_number(struct array_param *a, double value)
{
	char text[40];

	snprintf(text, sizeof(text), "%.17g", value);
	array_add(a, text);
}

static void array_add_uuid(struct array_param *a, const char *id)
{
	array_add(a, id && id[0] ? id : NULL);
}

/* Finish the columns and run the statement with them as parameters $1..$n. */
static int write_arrays(struct processor *p, const char *sql, struct array_param *columns, int n, struct db_error *error)
{
	const char *values[16];
	bool failed = false;
	int rc = 0;

	if (n > (int)(sizeof(values) / sizeof(values[0]))) {
		db_error_set(error, NULL, "write_arrays: %d columns, at most %zu", n, sizeof(values) / sizeof(values[0]));
		rc = -1;
		goto done;
	}
	if (columns[0].n == 0)
		goto done; /* nothing to write */
	for (int i = 0; i < n; i++) {
		strbuf_add_str(&columns[i].text, "}");
		failed |= columns[i].text.failed;
		values[i] = columns[i].text.data;
	}
	if (failed) {
		db_error_set(error, NULL, "out of memory");
		rc = -1;
		goto done;
	}
	rc = db_send(p->conn, sql, n, values, NULL, NULL, error);
done:
	for (int i = 0; i < n; i++)
		strbuf_free(&columns[i].text);
	return rc;
}

/*
 * The processed marks of the entries that succeeded and, in the same statement, the coliseum
 * rows of those routed there: the UPDATE's RETURNING hands the insert the entry columns it
 * copies (user, type, source, session, payload, timestamp), so no second pass over the entries.
 * Ids that reference no row become NULL rather than failing the insert. Rows are found by
 * ctid (no index descent): the claim's FOR UPDATE lock, held until COMMIT, keeps them in place.
 */
static int write_processed(struct processor *p, struct batch *b, struct db_error *error)
{
	struct array_param columns[9] = {0};
	struct array_param *done = &columns[8];

	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
		double value;
		const char *unit;

		if (e->outcome != OUTCOME_OK)
			continue;
		array_add_quoted(done, e->ctid);
		if (!(e->systems & SYSTEM_COLISEUM))
			continue;
		coliseum_metric(e, &value, &unit);
		array_add_uuid(&columns[0], e->id);
		array_add_uuid(&columns[1], e->info.artist_id);
		array_add_uuid(&columns[2], e->info.event_id);
		array_add_uuid(&columns[3], e->info.track_id);
		array_add_uuid(&columns[4], e->info.brand_id);
		array_add_number(&columns[5], value);
		array_add(&columns[6], unit);
		if (e->info.has_dna_match_score)
			array_add_number(&columns[7], e->info.dna_match_score);
		else
			array_add(&columns[7], NULL);
	}
	if (columns[0].n == 0) {
		for (int i = 0; i < 8; i++)
			strbuf_free(&columns[i].text);
		return write_arrays(p,
				    "UPDATE passport_entries SET processed = true, processed_at = now(),"
				    " last_error = NULL, next_attempt_at = NULL WHERE ctid = ANY($1::tid[])",
				    done, 1, error);
	}
	return write_arrays(p,
			    "WITH marked AS (UPDATE passport_entries SET processed = true, processed_at = now(),"
			    " last_error = NULL, next_attempt_at = NULL WHERE ctid = ANY($9::tid[])"
			    " RETURNING id, user_id, event_type, source, session_id, payload, \"timestamp\")"
			    " INSERT INTO coliseum_metrics (user_id, artist_id, event_id, track_id, brand_id, metric_type,"
			    " metric_value, metric_unit, source, session_id, dna_match_score, metadata, \"timestamp\","
			    " passport_entry_id)"
			    " SELECT e.user_id, a.id, r.event_id, c.id, r.brand_id, e.event_type, r.metric_value, r.metric_unit,"
			    " CASE WHEN e.source IN ('web', 'ios', 'android', 'api', 'system', 'admin') THEN e.source"
			    " ELSE 'system' END, e.session_id, r.dna_match_score, e.payload, e.\"timestamp\", e.id"
			    " FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::numeric[],"
			    " $7::text[], $8::numeric[]) WITH ORDINALITY AS r(entry_id, artist_id, event_id, track_id,"
			    " brand_id, metric_value, metric_unit, dna_match_score, ord)"
			    " JOIN marked e ON e.id = r.entry_id"
			    " LEFT JOIN artist_profiles a ON a.id = r.artist_id"
			    " LEFT JOIN content_items c ON c.id = r.track_id"
			    " ORDER BY r.ord",
			    columns, 9, error);
}

static int write_ledger_links(struct processor *p, struct batch *b, struct db_error *error)
{
	cJSON *rows;

	if (!p->has_ledger)
		return 0;
	rows = cJSON_CreateArray();
	if (!rows) {
		db_error_set(error, NULL, "out of memory");
		return -1;
	}
	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
		const char *correlation = entry_correlation(e);
		cJSON *row;

		if (e->outcome != OUTCOME_OK || !(e->systems & SYSTEM_TREASURY) || !correlation)
			continue;
		row = cJSON_CreateObject();
		cJSON_AddItemToArray(rows, row);
		cJSON_AddNumberToObject(row, "ord", i);
		cJSON_AddStringToObject(row, "entry_id", e->id);
		cJSON_AddStringToObject(row, "correlation_id", correlation);
	}
	return write_json(p,
			  "UPDATE ledger_entries l SET passport_entry_id = r.entry_id"
			  " FROM (SELECT DISTINCT ON (correlation_id) correlation_id, entry_id"
			  " FROM jsonb_to_recordset($1::jsonb) AS x(ord int, entry_id uuid, correlation_id text)"
			  " ORDER BY correlation_id, ord) r"
			  " WHERE l.correlation_id = r.correlation_id AND l.passport_entry_id IS NULL",
			  rows, error);
}

/*
 * The dna_evolution rows. The nine real columns (alpha, decay and delta per domain) travel as
 * binary real[] (the project's own codec): no number printing here, no parsing on the server.
 */
#define EVOLUTION_TEXT_COLUMNS 7
#define EVOLUTION_REAL_COLUMNS 9
static int write_evolution(struct processor *p, struct batch *b, struct db_error *error)
{
	struct array_param text[EVOLUTION_TEXT_COLUMNS] = {0};
	float *reals = NULL;
	unsigned char *encoded[EVOLUTION_REAL_COLUMNS] = {0};
	const char *values[EVOLUTION_TEXT_COLUMNS + EVOLUTION_REAL_COLUMNS];
	int lengths[EVOLUTION_TEXT_COLUMNS + EVOLUTION_REAL_COLUMNS] = {0};
	int formats[EVOLUTION_TEXT_COLUMNS + EVOLUTION_REAL_COLUMNS] = {0};
	size_t n = 0, size;
	bool failed = false;
	int rc = -1;

	reals = malloc(sizeof(float) * EVOLUTION_REAL_COLUMNS * (size_t)(b->n_entries + 1));
	if (!reals)
		goto oom;
	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
		const struct target *t = e->target >= 0 ? &b->targets[e->target] : NULL;
		size_t stride = (size_t)(b->n_entries + 1);

		if (e->outcome != OUTCOME_OK || !(e->systems & SYSTEM_MEDIAID) || e->dna_row < 0)
			continue;
		array_add_uuid(&text[0], b->rows[e->dna_row].id);
		array_add_uuid(&text[1], e->id);
		array_add(&text[2], t ? target_type_name(t->type) : NULL);
		array_add_uuid(&text[3], t ? t->id : NULL);
		array_add(&text[4], e->step.late ? "true" : "false");
		array_add_quoted(&text[5], e->event_type);
		array_add_quoted(&text[6], e->time_text);
		/* Column c of row n at reals[c * stride + n]: each column contiguous, ready to encode. */
		reals[n] = (float)e->step.base_alpha;
		for (int d = 0; d < VEC_DOMAINS; d++) {
			reals[(size_t)(1 + d) * stride + n] = e->step.late ? e->step.late_factor[d] : e->step.keep[d];
			reals[(size_t)(5 + d) * stride + n] = (float)e->delta_norms[d];
		}
		n++;
	}
	if (n == 0) {
		rc = 0;
		goto done;
	}
	size = vec_real_array_size(n);
	for (int c = 0; c < EVOLUTION_REAL_COLUMNS; c++) {
		encoded[c] = malloc(size);
		if (!encoded[c] ||
		    vec_encode_real_array(reals + (size_t)c * (size_t)(b->n_entries + 1), n, encoded[c], size) != (long)size)
			goto oom;
		values[EVOLUTION_TEXT_COLUMNS + c] = (const char *)encoded[c];
		lengths[EVOLUTION_TEXT_COLUMNS + c] = (int)size;
		formats[EVOLUTION_TEXT_COLUMNS + c] = 1;
	}
	for (int c = 0; c < EVOLUTION_TEXT_COLUMNS; c++) {
		strbuf_add_str(&text[c].text, "}");
		failed |= text[c].text.failed;
		values[c] = text[c].text.data;
	}
	if (failed)
		goto oom;
	rc = db_send(p->conn,
			     "INSERT INTO dna_evolution (mediaid_id, passport_entry_id, event_type, event_time, target_type,"
			     " target_id, alpha, decay_cultural, decay_behavioral, decay_economic, decay_spatial,"
			     " delta_cultural, delta_behavioral, delta_economic, delta_spatial, late)"
			     " SELECT r.mediaid_id, r.entry_id, r.event_type, r.event_time, r.target_type, r.target_id,"
			     " r.alpha, r.d1, r.d2, r.d3, r.d4, r.n1, r.n2, r.n3, r.n4, r.late"
			     " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::boolean[], $6::text[],"
			     " $7::timestamptz[], $8::real[], $9::real[], $10::real[], $11::real[], $12::real[], $13::real[],"
			     " $14::real[], $15::real[], $16::real[])"
			     " WITH ORDINALITY AS r(mediaid_id, entry_id, target_type, target_id, late, event_type, event_time,"
			     " alpha, d1, d2, d3, d4, n1, n2, n3, n4, ord)"
			     " ORDER BY r.ord",
			     EVOLUTION_TEXT_COLUMNS + EVOLUTION_REAL_COLUMNS, values, lengths, formats, error);
	goto done;
oom:
	db_error_set(error, NULL, "out of memory");
	rc = -1;
done:
	for (int c = 0; c < EVOLUTION_TEXT_COLUMNS; c++)
		strbuf_free(&text[c].text);
	for (int c = 0; c < EVOLUTION_REAL_COLUMNS; c++)
		free(encoded[c]);
	free(reals);
	return rc;
}

/*
 * The changed DNA rows, one UPDATE per DNA_WRITE_CHUNK rows (one, usually): the rows' vectors
 * side by side as one binary real[] (the project's own codec). Chunks keep each message, and so
 * libpq's send buffer, small when a batch touches hundreds of rows.
 */
#define DNA_WRITE_CHUNK 64
static int write_dna_rows(struct processor *p, struct batch *b, long *written, struct db_error *error)
{
	float *vectors = NULL;
	unsigned char *flat = NULL;
	size_t flat_size = vec_real_array_size((size_t)DNA_WRITE_CHUNK * VEC_DIM);
	int next = 0;

	for (;;) {
		struct strbuf ids = {0}, clocks = {0};
		const char *values[3];
		int lengths[3] = {0, 0, 0};
		int formats[3] = {0, 1, 0};
		size_t flat_len;
		long encoded;
		int k = 0, rc;

		for (; next < b->n_rows && k < DNA_WRITE_CHUNK; next++) {
			const struct dna_row *row = &b->rows[next];

			if (!row->dirty)
				continue;
			if (!vectors) {
				vectors = malloc(sizeof(float) * VEC_DIM * DNA_WRITE_CHUNK);
				flat = malloc(flat_size);
				if (!vectors || !flat) {
					strbuf_free(&ids);
					strbuf_free(&clocks);
					goto oom;
				}
			}
			memcpy(vectors + (size_t)k * VEC_DIM, row->v, sizeof(float) * VEC_DIM);
			strbuf_add_str(&ids, k ? "," : "{");
			strbuf_add_str(&clocks, k ? "," : "{");
			strbuf_add_str(&ids, row->id);
			strbuf_add_str(&clocks, row->clock_entry >= 0 ? b->entries[row->clock_entry].id : "NULL");
			k++;
		}
		if (k == 0)
			break;
		strbuf_add_str(&ids, "}");
		strbuf_add_str(&clocks, "}");
		flat_len = vec_real_array_size((size_t)k * VEC_DIM);
		encoded = vec_encode_real_array(vectors, (size_t)k * VEC_DIM, flat, flat_size);
		if (ids.failed || clocks.failed || encoded < 0 || (size_t)encoded != flat_len) {
			strbuf_free(&ids);
			strbuf_free(&clocks);
			goto oom;
		}
		values[0] = ids.data;
		values[1] = (const char *)flat;
		lengths[1] = (int)flat_len;
		values[2] = clocks.data;
		rc = db_send(p->conn, p->update_dna_sql, 3, values, lengths, formats, error);
		strbuf_free(&ids);
		strbuf_free(&clocks);
		if (rc < 0)
			goto fail;
		*written += k;
	}
	free(vectors);
	free(flat);
	return 0;
oom:
	db_error_set(error, NULL, "out of memory");
fail:
	free(vectors);
	free(flat);
	return -1;
}

/* The failures of a batch: attempts, last_error, and a retry time or dead_at. */
static int write_failures(struct processor *p, struct batch *b, struct db_error *error)
{
	cJSON *failures = cJSON_CreateArray();
	char *text;
	char max_attempts[16];
	const char *values[2];
	int rc;

	if (!failures)
		goto oom;
	for (int i = 0; i < b->n_entries; i++) {
		struct entry *e = &b->entries[i];
		cJSON *row;

		if (e->outcome == OUTCOME_OK || e->outcome == OUTCOME_DEFERRED)
			continue;
		row = cJSON_CreateObject();
		cJSON_AddItemToArray(failures, row);
		cJSON_AddStringToObject(row, "id", e->id);
		cJSON_AddStringToObject(row, "error", e->error);
		cJSON_AddBoolToObject(row, "permanent", e->outcome == OUTCOME_PERMANENT);
		cJSON_AddNumberToObject(row, "delay", retry_delay_seconds(p, e->attempts + 1));
	}
	if (cJSON_GetArraySize(failures) == 0) {
		cJSON_Delete(failures);
		return 0;
	}
	text = cJSON_PrintUnformatted(failures);
	cJSON_Delete(failures);
	if (!text)
		goto oom;
	snprintf(max_attempts, sizeof(max_attempts), "%d", p->config.max_attempts);
	values[0] = text;
	values[1] = max_attempts;
	rc = db_send(p->conn,
			     "UPDATE passport_entries e SET processing_attempts = coalesce(e.processing_attempts, 0) + 1,"
			     " last_error = r.error,"
			     " dead_at = CASE WHEN r.permanent OR coalesce(e.processing_attempts, 0) + 1 >= $2::int"
			     " THEN now() END,"
			     " next_attempt_at = CASE WHEN r.permanent OR coalesce(e.processing_attempts, 0) + 1 >= $2::int"
			     " THEN NULL ELSE now() + make_interval(secs => r.delay) END"
			     " FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, error text, permanent boolean, delay float8)"
			     " WHERE e.id = r.id",
			     2, values, NULL, NULL, error);
	cJSON_free(text);
	return rc;
oom:
	db_error_set(error, NULL, "out of memory");
	return -1;
}

static void count_outcomes(const struct processor *p, const struct batch *b, struct batch_totals *totals)
{
	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
		if (e->outcome == OUTCOME_DEFERRED)
			continue;
		if (e->outcome == OUTCOME_OK)
			totals->processed++;
		else if (e->outcome == OUTCOME_PERMANENT || e->attempts + 1 >= p->config.max_attempts)
			totals->dead++;
		else
			totals->retrying++;
		if (e->outcome != OUTCOME_OK)
			log_info("entry %s (%s) failed: %s", e->id, e->event_type, e->error);
	}
}

/* Evaluate and write a claimed batch inside the open transaction. */
static int process_claimed(struct processor *p, struct batch *b, struct batch_totals *totals, struct db_error *error)
{
	long dna_rows = 0;
	struct batch_totals local = {0};

	struct db_statement facts[3] = {{0}};
	int rc;

	for (int i = 0; i < b->n_entries; i++)
		entry_prepare(p, &b->entries[i], &local);
	/* The facts the entries need, asked in one round trip: DNA rows, targets, ledger rows. */
	if (dna_rows_fetch(b, &facts[0]) < 0 || targets_fetch(b, &facts[1]) < 0 ||
	    correlations_fetch(p, b, &facts[2]) < 0) {
		db_error_set(error, NULL, "out of memory");
		rc = -1;
	} else {
		rc = db_pipeline_run(p->conn, facts, 3, error);
	}
	if (rc == 0)
		rc = dna_rows_take(p, b, facts[0].res, error);
	if (rc == 0) {
		for (int i = 0; i < b->n_entries; i++) {
			struct entry *e = &b->entries[i];
			if (e->outcome == OUTCOME_OK && (e->systems & SYSTEM_MEDIAID))
				entry_choose_row(b, e);
		}
		rc = targets_take(p, b, facts[1].res, error);
	}
	if (rc == 0)
		rc = correlations_take(b, facts[2].res, error);
	for (int i = 0; i < 3; i++)
		db_statement_clear(&facts[i]);
	if (rc < 0)
		return -1;
	for (int i = 0; i < b->n_entries; i++)
		entry_evaluate(p, b, i);

	/* Every write and the COMMIT in one pipeline: one round trip for the whole write phase. */
	if (!PQenterPipelineMode(p->conn)) {
		db_error_from_connection(error, p->conn);
		return -1;
	}
	if (write_processed(p, b, error) < 0 || write_ledger_links(p, b, error) < 0 ||
	    write_evolution(p, b, error) < 0 ||
	    write_dna_rows(p, b, &dna_rows, error) < 0 ||
	    write_failures(p, b, error) < 0 ||
	    db_send(p->conn, "COMMIT", 0, NULL, NULL, NULL, error) < 0) {
		struct db_error ignored;
		(void)db_pipeline_finish(p->conn, &ignored);
		return -1;
	}
	if (db_pipeline_finish(p->conn, error) < 0)
		return -1;
	totals->batches++;
	totals->claimed += b->n_entries;
	totals->dna_rows += dna_rows;
	totals->skipped_systems += local.skipped_systems;
	count_outcomes(p, b, totals);
	return 0;
}

/* Record a failure that the database itself reported for one entry, in its own transaction. */
static int record_database_failure(struct processor *p, const char *entry_id, const char *message,
				   struct batch_totals *totals, struct db_error *error)
{
	struct batch b = {0};
	const char *values[1] = {entry_id};
	PGresult *res;
	struct entry *e;

	if (db_command(p->conn, "BEGIN", error) < 0)
		return -1;
	res = db_query(p->conn, p->claim_id_sql, 1, values, NULL, NULL, 0, error);
	if (!res)
		goto fail;
	if (batch_take_claimed(p, &b, res) < 0)
		goto fail;
	if (b.n_entries == 1) {
		e = &b.entries[0];
		e->outcome = OUTCOME_OK;
		entry_fail(e, OUTCOME_RETRY, "database: %s", message);
		if (write_failures(p, &b, error) < 0)
			goto fail;
		count_outcomes(p, &b, totals);
		totals->claimed++;
	}
	batch_clear(&b);
	return db_command(p->conn, "COMMIT", error);
fail:
	batch_clear(&b);
	db_rollback(p->conn);
	return -1;
}

/* Process one entry in its own transaction (used to isolate a batch whose writes failed). */
static int run_single(struct processor *p, const char *entry_id, struct batch_totals *totals, struct db_error *error)
{
	struct batch b = {0};
	const char *values[1] = {entry_id};
	PGresult *res;
	char message[ERROR_TEXT_MAX + 1];
	int status;

	if (db_command(p->conn, "BEGIN", error) < 0)
		return BATCH_ERROR;
	res = db_query(p->conn, p->claim_id_sql, 1, values, NULL, NULL, 0, error);
	if (!res || batch_take_claimed(p, &b, res) < 0) {
		batch_clear(&b);
		db_rollback(p->conn);
		return BATCH_ERROR;
	}
	if (b.n_entries == 0) {
		batch_clear(&b);
		db_rollback(p->conn);
		return BATCH_EMPTY;
	}
	if (process_claimed(p, &b, totals, error) == 0) {
		bool deferred = b.entries[0].outcome == OUTCOME_DEFERRED;
		batch_clear(&b);
		return deferred ? BATCH_EMPTY : BATCH_DONE;
	}
	batch_clear(&b);
	db_rollback(p->conn);
	if (db_connection_lost(p->conn))
		return BATCH_ERROR;
	if (db_error_is_transient(error))
		return BATCH_BUSY;
	snprintf(message, sizeof(message), "%.*s", ERROR_TEXT_MAX, error->message);
	utf8_truncate(message, ERROR_TEXT_MAX - 20);
	log_warning("entry %s: the database refused its effects: %s", entry_id, message);
	status = record_database_failure(p, entry_id, message, totals, error);
	return status < 0 ? BATCH_ERROR : BATCH_DONE;
}

int processor_run_entry(struct processor *p, const char *entry_id, struct batch_totals *totals, struct db_error *error)
{
	uuid_text id;

	if (uuid_canonical(entry_id, id) < 0) {
		db_error_set(error, NULL, "not a UUID: %.40s", entry_id);
		return BATCH_ERROR;
	}
	return run_single(p, id, totals, error);
}

static double monotonic_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_aside_user(struct processor *p, const char *user)
{
	double now = monotonic_seconds();
	int keep = 0;

	for (int i = 0; i < p->n_set_aside; i++) {
		if (p->set_aside[i].until <= now || strcmp(p->set_aside[i].user, user) == 0)
			continue;
		p->set_aside[keep++] = p->set_aside[i];
	}
	p->n_set_aside = keep;
	if (p->n_set_aside == SET_ASIDE_MAX)
		return; /* full: this one stays a candidate, which is only slower */
	snprintf(p->set_aside[p->n_set_aside].user, sizeof(p->set_aside[0].user), "%s", user);
	p->set_aside[p->n_set_aside].until = now + SET_ASIDE_SECONDS;
	p->n_set_aside++;
}

/* "{...}" of the users set aside now (expired ones are dropped). NULL when out of memory. */
static char *set_aside_literal(struct processor *p)
{
	double now = monotonic_seconds();
	const char *users[SET_ASIDE_MAX];
	int n = 0;

	for (int i = 0; i < p->n_set_aside; i++)
		if (p->set_aside[i].until > now)
			users[n++] = p->set_aside[i].user;
	return uuid_array_literal(users, n);
}

/*
 * BEGIN and one query in a single round trip. Returns the query's result, or NULL with the first
 * error (the caller rolls back).
 */
static PGresult *begin_and_query(struct processor *p, const char *sql, int nparams, const char *const *values,
				 struct db_error *error)
{
	struct db_statement f[2] = {{.sql = "BEGIN"}, {.sql = sql, .nparams = nparams}};
	PGresult *res;

	if (nparams > (int)(sizeof(f[1].values) / sizeof(f[1].values[0]))) {
		db_error_set(error, NULL, "begin_and_query: too many parameters");
		return NULL;
	}
	for (int i = 0; i < nparams; i++)
		f[1].values[i] = values[i];
	if (db_pipeline_run(p->conn, f, 2, error) < 0)
		return NULL;
	res = f[1].res;
	f[1].res = NULL;
	PQclear(f[0].res);
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		db_error_set(error, NULL, "the user lock query returned no rows");
		return NULL;
	}
	return res;
}

/*
 * Which users a batch takes, in one statement (sent together with BEGIN):
 *   scan: the oldest due entries (about twice as many as users are wanted, at most a batch),
 *         leaving out users set aside;
 *   candidate: their users in order of first appearance, without repeats;
 *   walk: lock candidates in that order while the due entries of the users locked so far fit in
 *         the batch (the first user always). Users held by another worker are skipped, not waited
 *         for, and do not count. It is a recursive CTE so that each user's lock is tried, and its
 *         due entries counted, only when the walk reaches it (OFFSET 0 keeps the planner from
 *         evaluating the lock more than once).
 * One row always: how many entries the scan saw and whether one had no user; then one row per
 * locked user (id, due entries), in walk order.
 */
#define LOCK_USERS_SQL                                                                             \
	"WITH RECURSIVE scan AS MATERIALIZED ("                                                     \
	"  SELECT e.user_id, row_number() OVER (ORDER BY e.\"timestamp\", e.id) AS n FROM ("       \
	"   SELECT e.user_id, e.\"timestamp\", e.id FROM passport_entries e WHERE " DUE_CONDITION   \
	"   AND (e.user_id IS NULL OR NOT e.user_id = ANY($1::uuid[]))"                              \
	"   ORDER BY e.\"timestamp\", e.id LIMIT $2::int) e),"                                       \
	" candidate AS MATERIALIZED ("                                                              \
	"  SELECT user_id AS id, row_number() OVER (ORDER BY min(n)) AS ord FROM scan"              \
	"  WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY min(n) LIMIT $3::int),"               \
	" walk(ord, id, locked, due, total) AS ("                                                   \
	"  SELECT 0::bigint, NULL::uuid, false, 0::bigint, 0::bigint"                                \
	"  UNION ALL"                                                                               \
	"  SELECT c.ord, c.id, l.locked, d.due, w.total + d.due"                                      \
	"  FROM walk w JOIN candidate c ON c.ord = w.ord + 1"                                         \
	"  CROSS JOIN LATERAL (SELECT pg_try_advisory_xact_lock(" LOCK_CLASS_USER ","              \
	"   hashtext(c.id::text)) AS locked OFFSET 0) l"                                              \
	"  CROSS JOIN LATERAL (SELECT CASE WHEN l.locked THEN (SELECT count(*) FROM passport_entries e" \
	"   WHERE e.user_id = c.id AND " DUE_CONDITION ") ELSE 0 END AS due OFFSET 0) d"                 \
	"  WHERE w.total < $4::int)"                                                                 \
	" SELECT s.scanned, s.null_user, w.id::text, w.due FROM"                                      \
	" (SELECT count(*) AS scanned, coalesce(bool_or(user_id IS NULL), false) AS null_user FROM scan) s" \
	" LEFT JOIN (SELECT ord, id, due FROM walk WHERE locked) w ON true ORDER BY w.ord"

int processor_run_batch(struct processor *p, struct batch_totals *totals, struct db_error *error)
{
	char *aside = NULL, *locked = NULL;
	bool null_user;
	char limit[16], scan[16], wanted_users[16];
	struct batch b = {0};
	PGresult *res, *lock_res = NULL;

	aside = set_aside_literal(p);
	if (!aside) {
		db_error_set(error, NULL, "out of memory");
		return BATCH_ERROR;
	}
	snprintf(limit, sizeof(limit), "%d", p->config.batch_size);
	/* Most of the oldest entries belong to different users: scan twice the users wanted. */
	snprintf(scan, sizeof(scan), "%d", (int)fmin(p->config.batch_size, fmax(64.0, 2.0 * p->candidate_users)));
	snprintf(wanted_users, sizeof(wanted_users), "%d", p->candidate_users);
	{
		const char *values[4] = {aside, scan, wanted_users, limit};
		res = begin_and_query(p, LOCK_USERS_SQL, 4, values, error);
	}
	free(aside);
	if (!res)
		goto error;
	if (PQntuples(res) < 1 || atol(PQgetvalue(res, 0, 0)) == 0) {
		PQclear(res);
		db_rollback(p->conn);
		return BATCH_EMPTY;
	}
	null_user = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	{
		int n = PQntuples(res), n_users = 0;
		const char **users = malloc(sizeof(*users) * (size_t)(n + 1));
		long due = 0;

		if (!users) {
			PQclear(res);
			db_error_set(error, NULL, "out of memory");
			goto error;
		}
		for (int i = 0; i < n; i++) {
			if (PQgetisnull(res, i, 2))
				continue; /* the one row of a walk that locked nobody */
			users[n_users++] = PQgetvalue(res, i, 2);
			due += atol(PQgetvalue(res, i, 3));
		}
		if (n_users > 0) {
			double average = (double)due / n_users;
			double wanted = average > 0 ? 4.0 * ceil((double)p->config.batch_size / average) : 16.0;
			p->candidate_users = (int)fmin(fmax(wanted, 4.0), (double)p->config.batch_size);
		}
		locked = n_users > 0 ? uuid_array_literal(users, n_users) : NULL;
		free(users);
		lock_res = res; /* kept to see which locked users got no entries */
	}

	if (!locked && !null_user) {
		PQclear(lock_res);
		db_rollback(p->conn);
		return BATCH_BUSY;
	}
	/*
	 * Entries without a user need no lock (they touch no DNA row); they join the batch whenever
	 * one of them is among the oldest due entries, so they are never starved by busy users.
	 */
	{
		const char *values[3] = {locked ? locked : "{}", limit, null_user ? "true" : "false"};
		res = db_query(p->conn, p->claim_users_sql, 3, values, NULL, NULL, 0, error);
		free(locked);
		locked = NULL;
		if (!res)
			goto error;
	}
	if (batch_take_claimed(p, &b, res) < 0) {
		db_error_set(error, NULL, "out of memory");
		goto error;
	}
	/* A locked user with nothing claimed has its next entry held by another session. */
	for (int u = 0; u < PQntuples(lock_res); u++) {
		const char *user = PQgetvalue(lock_res, u, 2);
		bool claimed = false;
		if (PQgetisnull(lock_res, u, 2))
			continue;
		for (int i = 0; i < b.n_entries && !claimed; i++)
			claimed = strcmp(b.entries[i].user_id, user) == 0;
		if (!claimed)
			set_aside_user(p, user);
	}
	PQclear(lock_res);
	lock_res = NULL;
	if (b.n_entries == 0) {
		batch_clear(&b);
		db_rollback(p->conn);
		return BATCH_BUSY;
	}
	log_debug("batch: claimed %d entries", b.n_entries);
	if (process_claimed(p, &b, totals, error) == 0) {
		bool progressed = false;
		for (int i = 0; i < b.n_entries; i++) {
			if (b.entries[i].outcome != OUTCOME_DEFERRED)
				progressed = true;
			else
				set_aside_user(p, b.entries[i].user_id);
		}
		batch_clear(&b);
		return progressed ? BATCH_DONE : BATCH_BUSY;
	}

	/* The batch failed as a whole. Roll back, then isolate the entry at fault. */
	db_rollback(p->conn);
	if (db_connection_lost(p->conn)) {
		batch_clear(&b);
		return BATCH_ERROR;
	}
	if (db_error_is_transient(error)) {
		log_info("batch of %d entries rolled back (%s: %s); it will be tried again", b.n_entries, error->sqlstate, error->message);
		batch_clear(&b);
		return BATCH_BUSY;
	}
	log_warning("batch of %d entries failed (%s: %s); retrying them one at a time", b.n_entries, error->sqlstate, error->message);
	{
		/* The ids first: each run_single reuses the processor's entry buffer. */
		int status = BATCH_DONE, n = b.n_entries;
		uuid_text *ids = malloc(sizeof(*ids) * (size_t)(n > 0 ? n : 1));

		if (!ids) {
			batch_clear(&b);
			db_error_set(error, NULL, "out of memory");
			return BATCH_ERROR;
		}
		for (int i = 0; i < n; i++)
			snprintf(ids[i], sizeof(ids[i]), "%s", b.entries[i].id);
		batch_clear(&b);
		/* Stop at a lost connection or a transient failure; an entry no longer due is skipped. */
		for (int i = 0; i < n && (status == BATCH_DONE || status == BATCH_EMPTY); i++)
			status = run_single(p, ids[i], totals, error);
		free(ids);
		return status == BATCH_EMPTY ? BATCH_DONE : status;
	}

error:
	free(locked);
	PQclear(lock_res);
	batch_clear(&b);
	db_rollback(p->conn);
	return BATCH_ERROR;
}
