/*
 * mediaid: the DNA system. Reads the users' media_ids rows (locking them), picks each entry's
 * DNA row, applies the DNA rule (dna.c) to the rows' in-memory state in (timestamp, id) order,
 * and writes one dna_evolution row per applied entry and one update per changed DNA row.
 *
 * Why the in-memory state: a batch may hold several entries of one DNA row; each step starts
 * from the state the previous step left, so the rows are read once, updated in memory, and
 * written once, and the result is the same as applying the entries one by one.
 */
#include "mediaid.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "pipeline.h"
#include "strbuf.h"

int mediaid_prepare(struct processor *p)
{
	/*
	 * The embeddings of a batch travel as one binary array parameter, row i taking element i:
	 * for a vector column a vector[] (the server reads each vector with pgvector's own receive
	 * function, one call per row); for a real[] column a flat real[], row i taking the slice
	 * [(i-1)*1536+1, i*1536] (a real[][] would be read the same way, element by element).
	 */
	static const char *const head = "UPDATE media_ids m SET profile_embedding = ";
	static const char *const tail =
		", dna_clock = CASE WHEN u.clock_entry IS NULL THEN m.dna_clock"
		" ELSE (SELECT c.\"timestamp\" FROM passport_entries c WHERE c.id = u.clock_entry) END,"
		" version = m.version + 1, updated_at = now()"
		" FROM unnest($1::uuid[], $3::uuid[]) WITH ORDINALITY AS u(id, clock_entry, ord)"
		" WHERE m.id = u.id";

	if (p->format == VEC_FORMAT_PGVECTOR)
		p->update_dna_sql = sql_printf("%s($2::%s[])[u.ord]%s", head, p->vector_type.name, tail);
	else
		p->update_dna_sql =
			sql_printf("%s($2::real[])[(u.ord - 1) * %d + 1 : u.ord * %d]%s", head, VEC_DIM, VEC_DIM, tail);
	return p->update_dna_sql ? 0 : -1;
}

void mediaid_finish(struct processor *p)
{
	free(p->update_dna_sql);
	p->update_dna_sql = NULL;
}

static int compare_rows(const void *a, const void *b)
{
	const struct dna_row *x = a, *y = b;
	int c = strcmp(x->user_id, y->user_id);
	return c ? c : strcmp(x->id, y->id);
}

/*
 * One dna_preferences value, as text, when it is a JSON number (else NULL): only these five values
 * travel, so nothing else in content_flags, however large or deeply nested, is read or parsed.
 */
#define DNA_PREFERENCE_NUMBER(key)                                                                 \
	" CASE WHEN jsonb_typeof(m.content_flags -> 'dna_preferences' -> '" key "') = 'number'"         \
	" THEN (m.content_flags -> 'dna_preferences' ->> '" key "') END"

/*
 * A whole number of microseconds in text (floor(extract(epoch ...) * 1e6)). Returns 0, or -1 for
 * NULL, "Infinity" or a value out of range.
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

/* The carbon clock as the query prints it: whole microseconds, or PostgreSQL's infinities. */
static bool parse_clock(const char *text, int64_t *clock_us)
{
	if (text && strcmp(text, "Infinity") == 0) {
		*clock_us = DNA_CLOCK_INFINITY;
		return true;
	}
	if (text && strcmp(text, "-Infinity") == 0) {
		*clock_us = DNA_CLOCK_MINUS_INFINITY;
		return true;
	}
	return parse_micros(text, clock_us) == 0;
}

/*
 * The media_ids rows of every user with a mediaid entry. They are locked now, skipping rows
 * another session holds (an application update in progress): the entries of such a row are
 * deferred to a later batch rather than waiting here, or being applied out of order.
 */
int mediaid_rows_fetch(const struct batch *b, struct db_statement *f)
{
	const char **users = malloc(sizeof(*users) * (size_t)(b->n_entries + 1));
	int n_users = 0;

	if (!users)
		return -1;
	for (int i = 0; i < b->n_entries; i++) {
		const struct entry *e = &b->entries[i];
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
		 " floor(extract(epoch FROM m.dna_clock) * 1000000)::text, (m.id IN (SELECT id FROM held))::text,"
		 DNA_PREFERENCE_NUMBER("learningRate") "," DNA_PREFERENCE_NUMBER("culturalMultiplier") ","
		 DNA_PREFERENCE_NUMBER("behavioralMultiplier") "," DNA_PREFERENCE_NUMBER("economicMultiplier") ","
		 DNA_PREFERENCE_NUMBER("spatialMultiplier")
		 " FROM media_ids m WHERE m.user_uuid = ANY($1::uuid[])"
		 " ORDER BY m.user_uuid, m.id";
	f->nparams = 1;
	f->values[0] = f->owned[0];
	f->result_format = 1;
	return 0;
}

/* Decode the DNA rows (sorted by (user, id)); res may be NULL (no mediaid entry). */
int mediaid_rows_take(struct processor *p, struct batch *b, PGresult *res, struct db_error *error)
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
		row->held_elsewhere = strcmp(PQgetvalue(res, i, 5), "true") != 0;
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
			row->has_clock = parse_clock(PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4), &row->clock_us);
		}
		{
			const char *numbers[DNA_PREFERENCE_KEYS];
			for (int k = 0; k < DNA_PREFERENCE_KEYS; k++)
				numbers[k] = PQgetisnull(res, i, 6 + k) ? NULL : PQgetvalue(res, i, 6 + k);
			dna_preferences_from_numbers(numbers, &row->prefs);
		}
	}
	qsort(b->rows, (size_t)b->n_rows, sizeof(*b->rows), compare_rows);
	return 0;
oom:
	db_error_set(error, NULL, "out of memory");
	return -1;
}

enum outcome mediaid_choose_row(const struct dna_row *rows, int n_rows, const char *user_id, const char *mediaid_id,
			       int *row, char *reason, size_t reason_len)
{
	int first = -1, count = 0, fan = -1;

	*row = -1;
	if (!user_id[0]) {
		snprintf(reason, reason_len, "entry has no user_id");
		return OUTCOME_PERMANENT;
	}
	for (int i = 0; i < n_rows; i++) {
		int c = strcmp(rows[i].user_id, user_id);
		if (c > 0)
			break;
		if (c < 0)
			continue;
		if (first < 0)
			first = i;
		count++;
		if (rows[i].is_fan)
			fan = i;
		if (mediaid_id[0] && strcmp(rows[i].id, mediaid_id) == 0) {
			*row = i;
			return OUTCOME_OK;
		}
	}
	if (mediaid_id[0]) {
		snprintf(reason, reason_len, "media_ids row %s does not belong to user %s", mediaid_id, user_id);
		return OUTCOME_PERMANENT;
	}
	if (count == 0) {
		snprintf(reason, reason_len, "user %s has no media_ids row yet", user_id);
		return OUTCOME_RETRY;
	}
	if (count == 1) {
		*row = first;
		return OUTCOME_OK;
	}
	if (fan < 0) {
		snprintf(reason, reason_len, "user %s has %d media_ids rows and none with role fan; set mediaid_id",
			 user_id, count);
		return OUTCOME_PERMANENT;
	}
	*row = fan;
	return OUTCOME_OK;
}

void mediaid_pick_rows(struct batch *b)
{
	for (int i = 0; i < b->n_entries; i++) {
		struct entry *e = &b->entries[i];
		char reason[200];
		enum outcome outcome;

		if (e->outcome != OUTCOME_OK || !(e->systems & SYSTEM_MEDIAID))
			continue;
		outcome = mediaid_choose_row(b->rows, b->n_rows, e->user_id, e->mediaid_id, &e->dna_row, reason,
					     sizeof(reason));
		if (outcome != OUTCOME_OK)
			entry_fail(e, outcome, "mediaid: %s", reason);
		else if (b->rows[e->dna_row].held_elsewhere)
			e->outcome = OUTCOME_DEFERRED;
	}
}

void mediaid_apply_entry(struct processor *p, struct batch *b, int index)
{
	struct entry *e = &b->entries[index];
	struct dna_row *row;
	const float *x = NULL;

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
	/* dna_evolution keeps the change norms as real: one beyond the float range cannot be recorded. */
	for (int d = 0; d < VEC_DOMAINS; d++)
		if (!isfinite((float)e->delta_norms[d])) {
			entry_fail(e, OUTCOME_PERMANENT,
				   "mediaid: the change of media_ids %s is too large to record (a domain's change norm is"
				   " beyond the float range)", row->id);
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

/*
 * The dna_evolution rows. The nine real columns (alpha, decay and delta per domain) travel as
 * binary real[] (the project's own codec), the three id columns as binary uuid[] and the event
 * times as binary timestamptz[]: no number printing here, no parsing on the server. The columns
 * of fixed width and without NULLs are read by subscript (constant time in such an array), not
 * unnested: a many-array unnest stores every value of every array in a tuplestore first, which
 * was a third of the statement; the text columns and target_id (NULL without a target, where a
 * subscript would count the NULLs before it) are unnested.
 */
#define EVOLUTION_TEXT_COLUMNS 7
#define EVOLUTION_REAL_COLUMNS 9
int mediaid_write_evolution(struct processor *p, const struct batch *b, struct db_error *error)
{
	struct array_param text[EVOLUTION_TEXT_COLUMNS] = {0};
	float *reals = NULL;
	unsigned char *encoded[EVOLUTION_REAL_COLUMNS] = {0};
	const char *values[EVOLUTION_TEXT_COLUMNS + EVOLUTION_REAL_COLUMNS];
	int lengths[EVOLUTION_TEXT_COLUMNS + EVOLUTION_REAL_COLUMNS] = {0};
	int formats[EVOLUTION_TEXT_COLUMNS + EVOLUTION_REAL_COLUMNS] = {0};
	size_t n = 0, size;
	int rc = -1;

	array_param_binary(&text[0], ARRAY_UUID_OID);
	array_param_binary(&text[1], ARRAY_UUID_OID);
	array_param_binary(&text[3], ARRAY_UUID_OID);
	array_param_binary(&text[6], ARRAY_TIMESTAMPTZ_OID);
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
		array_add_uuid_bytes(&text[1], e->id_bytes);
		array_add(&text[2], t ? target_type_name(t->type) : NULL);
		array_add_uuid(&text[3], t ? t->id : NULL);
		array_add(&text[4], e->step.late ? "true" : "false");
		array_add_quoted(&text[5], e->event_type);
		array_add_timestamp(&text[6], e->time_us); /* exact: an entry without one never gets here */
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
	switch (array_params_finish(text, EVOLUTION_TEXT_COLUMNS, values, lengths, formats)) {
	case -2:
		/* Ids and times come from the server or were validated: this is a bug here, not bad data. */
		db_error_set(error, NULL, "mediaid: a uuid or timestamp of a dna_evolution row is malformed");
		goto done;
	case -1:
		goto oom;
	}
	rc = db_send(p->conn,
			     "INSERT INTO dna_evolution (mediaid_id, passport_entry_id, event_type, event_time, target_type,"
			     " target_id, alpha, decay_cultural, decay_behavioral, decay_economic, decay_spatial,"
			     " delta_cultural, delta_behavioral, delta_economic, delta_spatial, late)"
			     " SELECT ($1::uuid[])[r.i], ($2::uuid[])[r.i], r.event_type, ($7::timestamptz[])[r.i],"
			     " r.target_type, r.target_id, ($8::real[])[r.i], ($9::real[])[r.i], ($10::real[])[r.i],"
			     " ($11::real[])[r.i], ($12::real[])[r.i], ($13::real[])[r.i], ($14::real[])[r.i],"
			     " ($15::real[])[r.i], ($16::real[])[r.i], ($5::boolean[])[r.i]"
			     " FROM unnest($3::text[], $4::uuid[], $6::text[]) WITH ORDINALITY AS r(target_type, target_id,"
			     " event_type, i)"
			     " ORDER BY r.i",
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
 * side by side as one binary vector[] or real[] (the project's own codec, mediaid_prepare). Chunks
 * keep each message, and so libpq's send buffer, small when a batch touches hundreds of rows.
 */
#define DNA_WRITE_CHUNK 64

static size_t dna_array_size(const struct processor *p, int rows)
{
	return p->format == VEC_FORMAT_PGVECTOR ? vec_pgvector_array_size(VEC_DIM, (size_t)rows)
						: vec_real_array_size((size_t)rows * VEC_DIM);
}

static long dna_array_encode(const struct processor *p, const float *vectors, int rows, unsigned char *out,
			     size_t outlen)
{
	return p->format == VEC_FORMAT_PGVECTOR
		       ? vec_encode_pgvector_array(vectors, VEC_DIM, (size_t)rows, p->vector_type.oid, out, outlen)
		       : vec_encode_real_array(vectors, (size_t)rows * VEC_DIM, out, outlen);
}

int mediaid_write_rows(struct processor *p, const struct batch *b, long *written, struct db_error *error)
{
	float *vectors = NULL;
	unsigned char *flat = NULL;
	size_t flat_size = dna_array_size(p, DNA_WRITE_CHUNK);
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
		flat_len = dna_array_size(p, k);
		encoded = dna_array_encode(p, vectors, k, flat, flat_size);
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

