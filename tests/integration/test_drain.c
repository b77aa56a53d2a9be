/* test_drain: `passportd drain` end to end against a real PostgreSQL (SPEC sections 2 to 4). */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/*
 * Every case makes its own database, inserts what it needs, runs `passportd drain` and checks
 * the tables. Expected DNA values are worked out here from SPEC section 3 and appendix A, in
 * double precision, and compared with a tolerance that covers float32 rounding; they never come
 * from the project's own math code.
 */

#define DIM 1536
#define BLOCK 384
#define DOMAINS 4
#define DSN_MAX 1024
#define SECONDS_PER_DAY 86400.0

static const double half_life_days[DOMAINS] = {30.0, 15.0, 60.0, 90.0};
static const double no_multiplier[DOMAINS] = {1.0, 1.0, 1.0, 1.0};

/* Appendix A: domain weights (cultural, behavioral, economic, spatial) and base intensity. */
struct influence {
	double w[DOMAINS];
	double b;
};
static const struct influence track_completed = {{0.9, 0.8, 0.3, 0.3}, 0.7};
static const struct influence track_played = {{0.8, 0.6, 0.2, 0.3}, 0.5};
static const struct influence track_skipped = {{0.5, 0.7, 0.1, 0.2}, 0.3};

/* ---- ids -------------------------------------------------------------------------------- */

enum id_kind { K_USER = 1, K_ROW, K_TRACK, K_ARTIST, K_ENTRY, K_EVENT, K_BRAND };

static int current_case;

/*
 * A fixed UUID for (case, kind, n): "ccccccKK-0000-4000-8000-nnnnnnnnnnnn". The UUIDs order
 * like n within one kind, which the ordering case relies on. Returns one of 64 rotating buffers.
 */
static const char *uid(enum id_kind kind, int n)
{
	static char ring[64][37];
	static unsigned next;
	char *out = ring[next++ % 64];

	snprintf(out, 37, "%06x%02x-0000-4000-8000-%012x", (unsigned)current_case, (unsigned)kind, (unsigned)n);
	return out;
}

/* ---- SQL helpers ------------------------------------------------------------------------ */

/* The query's text must equal expected (NULL: SQL NULL). */
#define EXPECT_TEXT(conn, expected, ...) expect_text(__LINE__, conn, expected, __VA_ARGS__)
static void expect_text(int line, PGconn *conn, const char *expected, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void expect_text(int line, PGconn *conn, const char *expected, const char *fmt, ...)
{
	va_list ap;
	char *sql, *got;

	va_start(ap, fmt);
	sql = harness_vformat(fmt, ap);
	va_end(ap);
	got = harness_query_text(conn, sql);
	if ((expected == NULL) != (got == NULL) || (expected && strcmp(expected, got) != 0))
		task_fail(__FILE__, line, "expected '%s', got '%s'\n  query: %s", expected ? expected : "(NULL)",
			  got ? got : "(NULL)", sql);
	free(got);
	free(sql);
}

#define EXPECT_INT(conn, expected, ...) expect_int(__LINE__, conn, expected, __VA_ARGS__)
static void expect_int(int line, PGconn *conn, long long expected, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void expect_int(int line, PGconn *conn, long long expected, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	long long got;

	va_start(ap, fmt);
	sql = harness_vformat(fmt, ap);
	va_end(ap);
	got = harness_query_int(conn, sql);
	if (got != expected)
		task_fail(__FILE__, line, "expected %lld, got %lld\n  query: %s", expected, got, sql);
	free(sql);
}

/* The query (a boolean) must be true. */
#define EXPECT_TRUE(conn, ...) expect_true(__LINE__, conn, __VA_ARGS__)
static void expect_true(int line, PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void expect_true(int line, PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	char *sql, *got;

	va_start(ap, fmt);
	sql = harness_vformat(fmt, ap);
	va_end(ap);
	got = harness_query_text(conn, sql);
	if (!got || strcmp(got, "t") != 0)
		task_fail(__FILE__, line, "expected true, got %s\n  query: %s", got ? got : "NULL", sql);
	free(got);
	free(sql);
}

/* A SQL literal for a text (no quotes inside the texts of this file, but be safe). */
static char *literal(PGconn *conn, const char *text)
{
	char *quoted = PQescapeLiteral(conn, text, strlen(text));

	if (!quoted)
		FAIL("PQescapeLiteral: %s", PQerrorMessage(conn));
	return quoted;
}

/* ---- times, vectors --------------------------------------------------------------------- */

/* SQL for the instant `day` days after 2026-01-01 00:00 UTC (rotating buffers). */
static const char *at_day(double day)
{
	static char ring[16][128];
	static unsigned next;
	char *out = ring[next++ % 16];

	snprintf(out, 128, "(timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => %.6f))",
		 day * SECONDS_PER_DAY);
	return out;
}

/* "::vector" when the embedding columns are pgvector's, else "". */
static const char *vector_cast = "";

static void detect_vector_type(PGconn *conn)
{
	char *type = harness_query_text(conn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
					      " WHERE attrelid = 'media_ids'::regclass AND attname = 'profile_embedding'");
	vector_cast = type && strncmp(type, "vector", 6) == 0 ? "::vector" : "";
	free(type);
}

/* SQL for a 1536-vector with every element `value` (rotating buffers). */
static const char *filled(double value)
{
	static char ring[16][128];
	static unsigned next;
	char *out = ring[next++ % 16];

	snprintf(out, 128, "array_fill(%.9g::real, ARRAY[%d])%s", value, DIM, vector_cast);
	return out;
}

/* Read a 1536-vector selected (as real[] text) by the query. */
static void read_vector(PGconn *conn, float *out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void read_vector(PGconn *conn, float *out, const char *fmt, ...)
{
	va_list ap;
	char *sql, *text, *p, *end;
	int n = 0;

	va_start(ap, fmt);
	sql = harness_vformat(fmt, ap);
	va_end(ap);
	text = harness_query_text(conn, sql);
	if (!text || text[0] != '{')
		FAIL("expected a real[] text, got %s\n  query: %s", text ? text : "NULL", sql);
	p = text + 1;
	while (*p && *p != '}') {
		if (n >= DIM)
			FAIL("more than %d values\n  query: %s", DIM, sql);
		out[n++] = strtof(p, &end);
		if (end == p)
			FAIL("cannot parse the vector at '%.20s'\n  query: %s", p, sql);
		p = *end == ',' ? end + 1 : end;
	}
	if (n != DIM)
		FAIL("%d values, expected %d\n  query: %s", n, DIM, sql);
	free(text);
	free(sql);
}

static void read_embedding(PGconn *conn, int row, float *out)
{
	read_vector(conn, out, "SELECT profile_embedding::real[]::text FROM media_ids WHERE id = '%s'", uid(K_ROW, row));
}

static const char *domain_name(int i)
{
	static const char *const names[DOMAINS] = {"cultural", "behavioral", "economic", "spatial"};
	return names[i / BLOCK];
}

/* got must match want within tol * max(1, |want|), element by element. */
#define EXPECT_VECTOR(what, got, want, tol) expect_vector(__LINE__, what, got, want, tol)
static void expect_vector(int line, const char *what, const float *got, const double *want, double tol)
{
	for (int i = 0; i < DIM; i++) {
		double g = (double)got[i];
		if (!(fabs(g - want[i]) <= tol * fmax(1.0, fabs(want[i]))))
			task_fail(__FILE__, line, "%s: element %d (%s) is %.9g, expected %.9g (tolerance %g)", what, i,
				  domain_name(i), g, want[i], tol);
	}
}

/* Every element of block d must match want[d]. */
#define EXPECT_BLOCKS(conn, row, want, tol) expect_blocks(__LINE__, conn, row, want, tol)
static void expect_blocks(int line, PGconn *conn, int row, const double want[DOMAINS], double tol)
{
	float got[DIM];
	double full[DIM];
	char what[64];

	read_embedding(conn, row, got);
	for (int i = 0; i < DIM; i++)
		full[i] = want[i / BLOCK];
	snprintf(what, sizeof what, "media_ids row %d", row);
	expect_vector(line, what, got, full, tol);
}

/* ---- the DNA rule, by hand (SPEC section 3) --------------------------------------------- */

struct dna {
	double v[DIM];
	bool has_clock;
	double clock_day;
};

static void dna_from_floats(struct dna *dna, const float *v, bool has_clock, double clock_day)
{
	for (int i = 0; i < DIM; i++)
		dna->v[i] = v ? (double)v[i] : 0.0;
	dna->has_clock = v && has_clock;
	dna->clock_day = clock_day;
}

/* Apply one entry at `day` with target x (NULL: decay only), learning rate L, multipliers m. */
static void dna_apply(struct dna *dna, const float *x, const struct influence *inf, double L,
		      const double m[DOMAINS], double day)
{
	double delta = dna->has_clock ? day - dna->clock_day : 0.0;

	for (int d = 0; d < DOMAINS; d++) {
		double keep = 1.0, late = 1.0, a;

		if (delta >= 0.0)
			keep = fmax(pow(0.5, delta / half_life_days[d]), 0.1);
		else
			late = fmax(pow(0.5, -delta / half_life_days[d]), 0.1);
		a = late * L * inf->b * fmin(fmax(inf->w[d] * m[d], 0.0), 1.0);
		for (int i = d * BLOCK; i < (d + 1) * BLOCK; i++)
			dna->v[i] = x ? (1.0 - a) * keep * dna->v[i] + a * (double)x[i] : keep * dna->v[i];
	}
	if (delta >= 0.0) {
		dna->has_clock = true;
		dna->clock_day = day;
	}
}

/* ---- fixtures --------------------------------------------------------------------------- */

static char *read_source_file(const char *relative)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char path[4096];
	FILE *file;
	char *text;
	long size;

	if (!root || !*root)
		FAIL("PASSPORT_SOURCE_ROOT is not set (run the tests through meson)");
	snprintf(path, sizeof path, "%s/%s", root, relative);
	file = fopen(path, "rb");
	if (!file)
		FAIL("cannot open %s", path);
	if (fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 || fseek(file, 0, SEEK_SET) != 0)
		FAIL("cannot size %s", path);
	text = malloc((size_t)size + 1);
	if (!text || fread(text, 1, (size_t)size, file) != (size_t)size)
		FAIL("cannot read %s", path);
	text[size] = '\0';
	fclose(file);
	return text;
}

static void begin_case(int number, const char *title)
{
	current_case = number;
	printf("\n=== case %d: %s\n", number, title);
	fflush(stdout);
}

static void end_case(void)
{
	printf("=== case %d: ok\n", current_case);
	fflush(stdout);
}

/* A fresh database t_drain_<name> with the upstream tables, the schema and, if asked, workload.sql. */
static PGconn *open_case_database(const char *name, bool workload, char *dsn)
{
	char full[64];
	PGconn *conn;

	snprintf(full, sizeof full, "drain_%s", name);
	conn = harness_create_database(full, "canonical", dsn, DSN_MAX);
	harness_exec(conn, "SET client_min_messages = warning");
	if (workload) {
		char *sql = read_source_file("tests/sql/workload.sql");
		harness_exec(conn, sql);
		free(sql);
	}
	detect_vector_type(conn);
	return conn;
}

/* A media_ids row: embedding is SQL (NULL: SQL NULL), flags a JSON text (NULL: '{}'). */
static void add_row(PGconn *conn, int row, int user, const char *role, const char *embedding, const char *flags)
{
	char *flags_literal = literal(conn, flags ? flags : "{}");

	harness_execf(conn,
	      "INSERT INTO media_ids (id, user_uuid, role, profile_embedding, content_flags)"
	      " VALUES ('%s', '%s', '%s', %s, %s::jsonb)",
	      uid(K_ROW, row), uid(K_USER, user), role, embedding ? embedding : "NULL", flags_literal);
	PQfreemem(flags_literal);
}

static void add_artist(PGconn *conn, int artist, int user, const char *vector)
{
	harness_execf(conn, "INSERT INTO artist_profiles (id, user_id, artist_name) VALUES ('%s', '%s', 'Artist %d')",
	      uid(K_ARTIST, artist), uid(K_USER, user), artist);
	if (vector)
		harness_execf(conn, "INSERT INTO entity_dna (entity_type, entity_id, embedding) VALUES ('artist', '%s', %s)",
		      uid(K_ARTIST, artist), vector);
}

/* A content_items track (artist 0: none) and, when vector is not NULL, its entity_dna vector. */
static void add_track(PGconn *conn, int track, int artist, const char *vector)
{
	harness_execf(conn, "INSERT INTO content_items (id, artist_id, title) VALUES ('%s', %s%s%s, 'Track %d')",
	      uid(K_TRACK, track), artist ? "'" : "", artist ? uid(K_ARTIST, artist) : "NULL", artist ? "'" : "",
	      track);
	if (vector)
		harness_execf(conn, "INSERT INTO entity_dna (entity_type, entity_id, embedding) VALUES ('track', '%s', %s)",
		      uid(K_TRACK, track), vector);
}

/*
 * An entry: user 0 means NULL user_id, payload NULL means SQL NULL payload, day NAN means a NULL
 * timestamp. systems is an array literal such as "{mediaid}" ("{}": the default route).
 */
static void add_entry(PGconn *conn, int entry, int user, const char *event_type, const char *payload,
		      const char *systems, double day)
{
	char *payload_literal = payload ? literal(conn, payload) : NULL;
	char user_sql[48];

	if (user)
		snprintf(user_sql, sizeof user_sql, "'%s'", uid(K_USER, user));
	else
		snprintf(user_sql, sizeof user_sql, "NULL");
	harness_execf(conn,
	      "INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, affects_systems,"
	      " source, session_id, \"timestamp\")"
	      " VALUES ('%s', %s, '%s', split_part('%s', '.', 1), %s::jsonb, '%s', 'web', 'session-%d', %s)",
	      uid(K_ENTRY, entry), user_sql, event_type, event_type, payload_literal ? payload_literal : "NULL",
	      systems, entry, isnan(day) ? "NULL" : at_day(day));
	PQfreemem(payload_literal);
}

/*
 * The entry's state: processed, dead, retrying or due; error_part, when not NULL, must occur in
 * last_error (a leading '^' means "starts with").
 */
#define EXPECT_ENTRY(conn, entry, state, error_part) expect_entry(__LINE__, conn, entry, state, error_part)
static void expect_entry(int line, PGconn *conn, int entry, const char *state, const char *error_part)
{
	char *got = harness_textf(conn,
			  "SELECT CASE WHEN processed THEN 'processed'"
			  " WHEN processed_at > now() - interval '1 hour' THEN 'unprocessed with a fresh processed_at'"
			  " WHEN dead_at IS NOT NULL THEN 'dead'"
			  " WHEN next_attempt_at > now() THEN 'retrying' ELSE 'due' END || '|' || coalesce(last_error, '')"
			  " FROM passport_entries WHERE id = '%s'",
			  uid(K_ENTRY, entry));
	char *bar = strchr(got, '|');
	const char *error = bar + 1;

	*bar = '\0';
	if (strcmp(got, state) != 0)
		task_fail(__FILE__, line, "entry %d: state %s, expected %s (last_error: %s)", entry, got, state,
			  *error ? error : "none");
	if (error_part) {
		bool prefix = error_part[0] == '^';
		const char *needle = prefix ? error_part + 1 : error_part;
		const char *found = strstr(error, needle);
		if (!found || (prefix && found != error))
			task_fail(__FILE__, line, "entry %d: last_error '%s' does not %s '%s'", entry, error,
				  prefix ? "start with" : "contain", needle);
	}
	free(got);
}

/* ---- running drain ---------------------------------------------------------------------- */

struct summary {
	long processed, failed, retrying, dead, dna_rows, batches;
};

/*
 * Run `passportd drain --dsn dsn [--batch-size n] [--workers w]`, with env's NAME=value
 * assignments added to its environment (NULL: none); it must exit 0 and print its summary line.
 */
#define DRAIN(dsn, batch_size) run_drain(__LINE__, dsn, batch_size, 1, NULL)
#define DRAIN_WORKERS(dsn, batch_size, workers) run_drain(__LINE__, dsn, batch_size, workers, NULL)
#define DRAIN_ENV(dsn, batch_size, env) run_drain(__LINE__, dsn, batch_size, 1, env)
static struct summary run_drain(int line, const char *dsn, int batch_size, int workers, const char *const *env)
{
	char size_text[16], workers_text[16], daemon_dsn[DSN_MAX + 32];
	const char *argv[9] = {harness_passportd(), "drain", "--dsn", daemon_dsn, NULL, NULL, NULL, NULL, NULL};
	int argc = 4;
	char *output = NULL;
	const char *summary_line;
	struct summary s = {0};
	int status;

	/* The daemon runs as the least-privilege role, as in production. */
	harness_role_dsn(dsn, "passportd", daemon_dsn, sizeof daemon_dsn);
	if (batch_size > 0) {
		snprintf(size_text, sizeof size_text, "%d", batch_size);
		argv[argc++] = "--batch-size";
		argv[argc++] = size_text;
	}
	/* Always explicit: the default derives the workers from the machine, and batch counts differ. */
	if (workers > 0) {
		snprintf(workers_text, sizeof workers_text, "%d", workers);
		argv[argc++] = "--workers";
		argv[argc++] = workers_text;
	}
	status = harness_run(argv, env, &output);
	if (status != 0)
		task_fail(__FILE__, line, "passportd drain exited with status %d", status);
	summary_line = strstr(output, "drain: processed ");
	if (!summary_line ||
	    sscanf(summary_line, "drain: processed %ld, failed %ld (retrying %ld, dead %ld), DNA rows updated %ld, batches %ld",
		   &s.processed, &s.failed, &s.retrying, &s.dead, &s.dna_rows, &s.batches) != 6)
		task_fail(__FILE__, line, "no parsable summary line in drain's output");
	if (workers > 1) {
		/* Every worker ran (connected and reported), whatever share of the work it got. */
		char last[48];
		snprintf(last, sizeof last, "drain worker %d: ", workers);
		if (!strstr(output, "drain worker 1: ") || !strstr(output, last))
			task_fail(__FILE__, line, "drain --workers %d did not report %d workers", workers, workers);
	}
	if (s.failed != s.retrying + s.dead)
		task_fail(__FILE__, line, "summary: failed %ld is not retrying %ld + dead %ld", s.failed, s.retrying,
			  s.dead);
	free(output);
	return s;
}

#define EXPECT_SUMMARY(s, processed_, retrying_, dead_)                                              \
	do {                                                                                         \
		ASSERT_EQ_INT((s).processed, processed_);                                             \
		ASSERT_EQ_INT((s).retrying, retrying_);                                               \
		ASSERT_EQ_INT((s).dead, dead_);                                                       \
	} while (0)

/* The summary's counts must match the table (for a database drained once, from all-due). */
static void expect_summary_matches_table(int line, PGconn *conn, const struct summary *s)
{
	long long processed = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed");
	long long dead = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE dead_at IS NOT NULL");
	long long retrying = harness_query_int(conn, "SELECT count(*) FROM passport_entries"
						     " WHERE NOT processed AND dead_at IS NULL AND next_attempt_at > now()");

	if (s->processed != processed || s->dead != dead || s->retrying != retrying)
		task_fail(__FILE__, line,
			  "summary says processed %ld, retrying %ld, dead %ld; the table has %lld, %lld, %lld",
			  s->processed, s->retrying, s->dead, processed, retrying, dead);
}

/* ---- case 1 ----------------------------------------------------------------------------- */

static void case_mediaid_effect(void)
{
	char dsn[DSN_MAX];
	PGconn *conn;
	struct summary s;
	/* L = 0.1, b = 0.7, w = .9 .8 .3 .3: a = .063 .056 .021 .021; v = (1 - a) * 1 + a * 2. */
	const double once[DOMAINS] = {1.063, 1.056, 1.021, 1.021};
	/* L = 0.2, m = (1, 2, 0, 1): a = .2*.7*.9, .2*.7*min(1.6, 1), 0, .2*.7*.3 = .126 .14 0 .042. */
	const double with_prefs[DOMAINS] = {1.126, 1.14, 1.0, 1.042};
	/* 30 days with no target: k = .5^(30/30), .5^(30/15), .5^(30/60), .5^(30/90). */
	const double keep30[DOMAINS] = {0.5, 0.25, sqrt(0.5), pow(0.5, 1.0 / 3.0)};
	double decayed[DOMAINS];

	begin_case(1, "mediaid effect: mirroring, preferences, carbon decay, clock, version, dna_evolution");
	conn = open_case_database("mediaid", false, dsn);
	add_row(conn, 1, 1, "fan", filled(1), NULL);
	add_row(conn, 2, 2, "fan", filled(1),
		"{\"dna_preferences\": {\"learningRate\": 0.2, \"behavioralMultiplier\": 2, \"economicMultiplier\": 0}}");
	/* Out-of-range and wrong-typed preferences are ignored: the defaults apply. */
	add_row(conn, 3, 3, "fan", filled(1),
		"{\"dna_preferences\": {\"learningRate\": 0.9, \"culturalMultiplier\": \"2\", \"spatialMultiplier\": -1}}");
	add_track(conn, 1, 0, filled(2));
	for (int u = 1; u <= 3; u++) {
		char payload[128];
		snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 1));
		add_entry(conn, u, u, "player.track_completed", payload, "{mediaid}", 0.0);
	}

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 3, 0, 0);
	ASSERT_EQ_INT(s.dna_rows, 3);
	EXPECT_BLOCKS(conn, 1, once, 1e-6);
	EXPECT_BLOCKS(conn, 2, with_prefs, 1e-6);
	EXPECT_BLOCKS(conn, 3, once, 1e-6);
	for (int u = 1; u <= 3; u++) {
		EXPECT_INT(conn, 2, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, u));
		EXPECT_TRUE(conn, "SELECT dna_clock = %s FROM media_ids WHERE id = '%s'", at_day(0), uid(K_ROW, u));
		EXPECT_TRUE(conn,
			    "SELECT processed AND processed_at IS NOT NULL AND last_error IS NULL AND dead_at IS NULL"
			    " FROM passport_entries WHERE id = '%s'",
			    uid(K_ENTRY, u));
		EXPECT_INT(conn, 1, "SELECT count(*) FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, u));
	}
	{
		char expected[256];
		snprintf(expected, sizeof expected, "%s|track|%s|f|player.track_completed", uid(K_ROW, 1),
			 uid(K_TRACK, 1));
		EXPECT_TEXT(conn, expected,
			    "SELECT concat_ws('|', mediaid_id, target_type, target_id, late, event_type)"
			    " FROM dna_evolution WHERE passport_entry_id = '%s'",
			    uid(K_ENTRY, 1));
	}
	/* alpha = L * b; Δ = 0 so every decay factor is 1; the cultural change is .063 * sqrt(384). */
	EXPECT_TRUE(conn,
		    "SELECT abs(alpha - 0.07) < 1e-6 AND event_time = %s AND decay_cultural = 1 AND decay_behavioral = 1"
		    " AND decay_economic = 1 AND decay_spatial = 1 AND abs(delta_cultural - %.9f) < 1e-4"
		    " FROM dna_evolution WHERE passport_entry_id = '%s'",
		    at_day(0), 0.063 * sqrt(384.0), uid(K_ENTRY, 1));
	EXPECT_TRUE(conn, "SELECT abs(alpha - 0.14) < 1e-6 FROM dna_evolution WHERE passport_entry_id = '%s'",
		    uid(K_ENTRY, 2));
	EXPECT_INT(conn, 0, "SELECT count(*) FROM coliseum_metrics"); /* affects_systems {mediaid} only */

	/* Carbon decay: 30 days later, no target. */
	add_entry(conn, 11, 1, "player.track_completed", "{}", "{mediaid}", 30.0);
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 0, 0);
	for (int d = 0; d < DOMAINS; d++)
		decayed[d] = once[d] * keep30[d];
	EXPECT_BLOCKS(conn, 1, decayed, 1e-6);
	EXPECT_INT(conn, 3, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, 1));
	EXPECT_TRUE(conn, "SELECT dna_clock = %s FROM media_ids WHERE id = '%s'", at_day(30), uid(K_ROW, 1));
	EXPECT_INT(conn, 2, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, 2)); /* untouched */
	EXPECT_TRUE(conn,
		    "SELECT target_type IS NULL AND target_id IS NULL AND NOT late AND abs(decay_cultural - 0.5) < 1e-6"
		    " AND abs(decay_behavioral - 0.25) < 1e-6 AND abs(decay_economic - %.9f) < 1e-6"
		    " AND abs(decay_spatial - %.9f) < 1e-6 FROM dna_evolution WHERE passport_entry_id = '%s'",
		    keep30[2], keep30[3], uid(K_ENTRY, 11));

	/* 400 days later: every 0.5^(400/h) is below the minimum retention, so every k is 0.1. */
	add_entry(conn, 12, 1, "player.track_completed", "{}", "{mediaid}", 430.0);
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 0, 0);
	for (int d = 0; d < DOMAINS; d++)
		decayed[d] *= 0.1;
	EXPECT_BLOCKS(conn, 1, decayed, 1e-6);
	EXPECT_TRUE(conn, "SELECT dna_clock = %s AND version = 4 FROM media_ids WHERE id = '%s'", at_day(430),
		    uid(K_ROW, 1));
	EXPECT_TRUE(conn,
		    "SELECT abs(decay_cultural - 0.1) < 1e-7 AND abs(decay_spatial - 0.1) < 1e-7"
		    " FROM dna_evolution WHERE passport_entry_id = '%s'",
		    uid(K_ENTRY, 12));

	/* The evolution row carries the entry's own event type and time, whatever their text. */
	add_entry(conn, 13, 1, "custom.\"odd\" \\x,{y} NULL", "{}", "{mediaid}", 431.25);
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 0, 0);
	EXPECT_TRUE(conn,
		    "SELECT d.event_type = e.event_type AND d.event_type = 'custom.\"odd\" \\x,{y} NULL'"
		    " AND d.event_time = e.\"timestamp\" AND d.event_time = %s"
		    " FROM dna_evolution d JOIN passport_entries e ON e.id = d.passport_entry_id WHERE e.id = '%s'",
		    at_day(431.25), uid(K_ENTRY, 13));
	PQfinish(conn);
	end_case();
}

/* ---- case 2 ----------------------------------------------------------------------------- */

static void expect_coliseum(int line, PGconn *conn, int entry, const char *expected)
{
	char *got = harness_textf(conn,
			  "SELECT concat_ws('|', m.metric_type, m.metric_value::float8, coalesce(m.metric_unit, '-'),"
			  " coalesce(m.source, '-'), coalesce(m.artist_id::text, '-'), coalesce(m.track_id::text, '-'),"
			  " coalesce(m.event_id::text, '-'), coalesce(m.brand_id::text, '-'),"
			  " coalesce(m.dna_match_score::text, '-'), coalesce(m.user_id::text, '-'),"
			  " coalesce(m.session_id, '-'), m.metadata = e.payload, m.\"timestamp\" = e.\"timestamp\")"
			  " FROM coliseum_metrics m JOIN passport_entries e ON e.id = m.passport_entry_id"
			  " WHERE m.passport_entry_id = '%s'",
			  uid(K_ENTRY, entry));
	if (strcmp(got, expected) != 0)
		task_fail(__FILE__, line,
			  "coliseum row of entry %d:\n  got      %s\n  expected %s\n"
			  "  (type|value|unit|source|artist|track|event|brand|score|user|session|metadata=payload|timestamp)",
			  entry, got, expected);
	free(got);
}

static void case_coliseum_effect(void)
{
	char dsn[DSN_MAX], payload[512], expected[1024];
	PGconn *conn;
	struct summary s;

	begin_case(2, "coliseum effect: one metric row per entry, value, source, ids, score, metadata");
	conn = open_case_database("coliseum", false, dsn);
	add_artist(conn, 1, 9, NULL);
	add_track(conn, 1, 1, NULL);

	/* Money: amount in cents; existing artist and track kept; kiosk is not an allowed source. */
	snprintf(payload, sizeof payload,
		 "{\"amount_cents\": 1234, \"artistId\": \"%s\", \"trackId\": \"%s\", \"dna_match_score\": 0.75}",
		 uid(K_ARTIST, 1), uid(K_TRACK, 1));
	add_entry(conn, 1, 1, "treasury.transaction_created", payload, "{coliseum}", 1.0);
	harness_execf(conn, "UPDATE passport_entries SET source = 'kiosk' WHERE id = '%s'", uid(K_ENTRY, 1));
	/* A vote: weight; an artist id with no artist_profiles row becomes NULL; score out of range dropped. */
	snprintf(payload, sizeof payload, "{\"weight\": 3, \"eventId\": \"%s\", \"artist_id\": \"%s\", \"dna_match_score\": 1.5}",
		 uid(K_EVENT, 1), uid(K_ARTIST, 99));
	add_entry(conn, 2, 1, "concierto.vote_cast", payload, "{coliseum}", 2.0);
	harness_execf(conn, "UPDATE passport_entries SET source = 'ios' WHERE id = '%s'", uid(K_ENTRY, 2));
	/* Plain event: 1; track with no content_items row and a non-UUID artist become NULL. */
	snprintf(payload, sizeof payload, "{\"track_id\": \"%s\", \"artistId\": \"not-a-uuid\", \"dna_match_score\": -0.1}",
		 uid(K_TRACK, 99));
	add_entry(conn, 3, 2, "player.track_played", payload, "{coliseum}", 3.0);
	/* A numeric value; default route of coliseum.metric_tracked is coliseum; snake_case brand. */
	snprintf(payload, sizeof payload, "{\"value\": 42.5, \"brand_id\": \"%s\"}", uid(K_BRAND, 1));
	add_entry(conn, 4, 2, "coliseum.metric_tracked", payload, "{}", 4.0);
	harness_execf(conn, "UPDATE passport_entries SET source = 'android' WHERE id = '%s'", uid(K_ENTRY, 4));
	/* camelCase amount; a track id of an existing content_items row is kept; a score of 0 is in range. */
	snprintf(payload, sizeof payload, "{\"amountCents\": 250, \"track_id\": \"%s\", \"dna_match_score\": 0}",
		 uid(K_TRACK, 1));
	add_entry(conn, 5, 3, "social.content_liked", payload, "{coliseum}", 5.0);

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 5, 0, 0);
	EXPECT_INT(conn, 5, "SELECT count(*) FROM coliseum_metrics");
	EXPECT_INT(conn, 5, "SELECT count(DISTINCT passport_entry_id) FROM coliseum_metrics");

	snprintf(expected, sizeof expected, "treasury.transaction_created|1234|cents|system|%s|%s|-|-|0.75|%s|session-1|t|t",
		 uid(K_ARTIST, 1), uid(K_TRACK, 1), uid(K_USER, 1));
	expect_coliseum(__LINE__, conn, 1, expected);
	snprintf(expected, sizeof expected, "concierto.vote_cast|3|-|ios|-|-|%s|-|-|%s|session-2|t|t", uid(K_EVENT, 1),
		 uid(K_USER, 1));
	expect_coliseum(__LINE__, conn, 2, expected);
	snprintf(expected, sizeof expected, "player.track_played|1|-|web|-|-|-|-|-|%s|session-3|t|t", uid(K_USER, 2));
	expect_coliseum(__LINE__, conn, 3, expected);
	snprintf(expected, sizeof expected, "coliseum.metric_tracked|42.5|-|android|-|-|-|%s|-|%s|session-4|t|t",
		 uid(K_BRAND, 1), uid(K_USER, 2));
	expect_coliseum(__LINE__, conn, 4, expected);
	snprintf(expected, sizeof expected, "social.content_liked|250|cents|web|-|%s|-|-|0|%s|session-5|t|t",
		 uid(K_TRACK, 1), uid(K_USER, 3));
	expect_coliseum(__LINE__, conn, 5, expected);
	/* coliseum only: no DNA work. */
	EXPECT_INT(conn, 0, "SELECT count(*) FROM dna_evolution");
	PQfinish(conn);
	end_case();
}

/* ---- case 21 ---------------------------------------------------------------------------- */

/*
 * Upstream's references of event_id and brand_id: a foreign key (events), or only a table named
 * brands (no key, a duplicated id). An id that references no row becomes NULL instead of failing
 * the batch; one that does is kept, once.
 */
static void case_coliseum_references(void)
{
	char dsn[DSN_MAX], payload[512], expected[1024];
	PGconn *conn;
	struct summary s;

	begin_case(21, "coliseum references: event_id and brand_id that reference no row become NULL");
	conn = open_case_database("coliseum_refs", false, dsn);
	harness_execf(conn,
		      "CREATE TABLE events (id uuid PRIMARY KEY);"
		      "ALTER TABLE coliseum_metrics ADD CONSTRAINT coliseum_metrics_event_id_fkey"
		      " FOREIGN KEY (event_id) REFERENCES events (id);"
		      "CREATE TABLE brands (id uuid, name text);"
		      "INSERT INTO events VALUES ('%s');"
		      "INSERT INTO brands VALUES ('%s', 'one'), ('%s', 'one again');"
		      /* What sql/011_coliseum_references.sql grants when the tables exist before `schema`. */
		      "GRANT SELECT (id) ON events, brands TO passportd",
		      uid(K_EVENT, 1), uid(K_BRAND, 1), uid(K_BRAND, 1));
	snprintf(payload, sizeof payload, "{\"eventId\": \"%s\", \"brandId\": \"%s\"}", uid(K_EVENT, 1),
		 uid(K_BRAND, 1));
	add_entry(conn, 1, 1, "coliseum.metric_tracked", payload, "{coliseum}", 1.0);
	snprintf(payload, sizeof payload, "{\"event_id\": \"%s\", \"brand_id\": \"%s\"}", uid(K_EVENT, 2),
		 uid(K_BRAND, 2));
	add_entry(conn, 2, 1, "coliseum.metric_tracked", payload, "{coliseum}", 2.0);
	snprintf(payload, sizeof payload, "{\"eventId\": \"%s\", \"brand_id\": \"%s\"}", uid(K_EVENT, 1),
		 uid(K_BRAND, 2));
	add_entry(conn, 3, 2, "coliseum.metric_tracked", payload, "{coliseum}", 3.0);

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 3, 0, 0);
	EXPECT_INT(conn, 3, "SELECT count(*) FROM coliseum_metrics");
	snprintf(expected, sizeof expected, "coliseum.metric_tracked|1|-|web|-|-|%s|%s|-|%s|session-1|t|t",
		 uid(K_EVENT, 1), uid(K_BRAND, 1), uid(K_USER, 1));
	expect_coliseum(__LINE__, conn, 1, expected);
	snprintf(expected, sizeof expected, "coliseum.metric_tracked|1|-|web|-|-|-|-|-|%s|session-2|t|t", uid(K_USER, 1));
	expect_coliseum(__LINE__, conn, 2, expected);
	snprintf(expected, sizeof expected, "coliseum.metric_tracked|1|-|web|-|-|%s|-|-|%s|session-3|t|t",
		 uid(K_EVENT, 1), uid(K_USER, 2));
	expect_coliseum(__LINE__, conn, 3, expected);
	PQfinish(conn);
	end_case();
}

/* ---- case 3 ----------------------------------------------------------------------------- */

static void case_treasury(void)
{
	char dsn[DSN_MAX], payload[256];
	PGconn *conn;
	struct summary s;
	/* treasury.subscription_started: L*b = .1, w = .6 .7 1 .1; v = (1 - a) + 2a. */
	const double once[DOMAINS] = {1.06, 1.07, 1.1, 1.01};

	begin_case(3, "treasury: amounts, ledger links, retry while the ledger row is missing");
	conn = open_case_database("treasury", false, dsn);
	add_row(conn, 5, 5, "fan", filled(1), NULL);
	harness_execf(conn, "INSERT INTO entity_dna (entity_type, entity_id, embedding) VALUES ('event', '%s', %s)",
	      uid(K_EVENT, 1), filled(2));
	harness_execf(conn, "INSERT INTO ledger_entries (correlation_id, amount_cents) VALUES ('corr-linked', 100)");

	/* treasury.transaction_created routes to treasury and coliseum by default. */
	add_entry(conn, 1, 1, "treasury.transaction_created", "{\"amount_cents\": -5}", "{}", 1.0);
	add_entry(conn, 2, 1, "treasury.transaction_created", "{\"amount_cents\": 12.5}", "{}", 2.0);
	add_entry(conn, 3, 1, "treasury.transaction_created", "{\"amount_cents\": \"100\"}", "{}", 3.0);
	add_entry(conn, 4, 1, "treasury.transaction_created", "{\"amount_cents\": 100, \"correlation_id\": \"corr-linked\"}",
		  "{}", 4.0);
	snprintf(payload, sizeof payload, "{\"amount_cents\": 999, \"correlation_id\": \"corr-later\", \"eventId\": \"%s\"}",
		 uid(K_EVENT, 1));
	add_entry(conn, 5, 5, "treasury.subscription_started", payload, "{}", 5.0); /* treasury, mediaid, coliseum */
	add_entry(conn, 6, 1, "treasury.transaction_created", "{\"amount_cents\": 100000000000000000000}", "{}", 6.0);

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 1, 4);
	expect_summary_matches_table(__LINE__, conn, &s);
	EXPECT_ENTRY(conn, 1, "dead", "^treasury:");
	EXPECT_ENTRY(conn, 2, "dead", "^treasury:");
	EXPECT_ENTRY(conn, 3, "dead", "^treasury:");
	EXPECT_ENTRY(conn, 6, "dead", "^treasury:");
	EXPECT_INT(conn, 0, "SELECT count(*) FROM coliseum_metrics WHERE passport_entry_id IN ('%s', '%s', '%s', '%s')",
		   uid(K_ENTRY, 1), uid(K_ENTRY, 2), uid(K_ENTRY, 3), uid(K_ENTRY, 6));
	EXPECT_INT(conn, 1, "SELECT processing_attempts FROM passport_entries WHERE id = '%s'", uid(K_ENTRY, 1));

	EXPECT_ENTRY(conn, 4, "processed", NULL);
	EXPECT_TEXT(conn, uid(K_ENTRY, 4), "SELECT passport_entry_id::text FROM ledger_entries WHERE correlation_id = 'corr-linked'");
	EXPECT_TEXT(conn, "100", "SELECT metric_value::float8::text FROM coliseum_metrics WHERE passport_entry_id = '%s'",
		    uid(K_ENTRY, 4));

	EXPECT_ENTRY(conn, 5, "retrying", "^treasury:");
	EXPECT_ENTRY(conn, 5, "retrying", "ledger");
	EXPECT_TRUE(conn,
		    "SELECT NOT processed AND processing_attempts = 1 AND dead_at IS NULL AND next_attempt_at > now()"
		    " FROM passport_entries WHERE id = '%s'",
		    uid(K_ENTRY, 5));
	EXPECT_INT(conn, 0, "SELECT count(*) FROM coliseum_metrics WHERE passport_entry_id = '%s'", uid(K_ENTRY, 5));
	EXPECT_INT(conn, 0, "SELECT count(*) FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 5));
	EXPECT_INT(conn, 1, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, 5));
	EXPECT_TRUE(conn, "SELECT dna_clock IS NULL FROM media_ids WHERE id = '%s'", uid(K_ROW, 5));

	/* The ledger row arrives; once the entry is due again it goes through, all effects at once. */
	harness_execf(conn, "INSERT INTO ledger_entries (correlation_id, amount_cents) VALUES ('corr-later', 999)");
	harness_execf(conn, "UPDATE passport_entries SET next_attempt_at = now() - interval '1 second' WHERE id = '%s'",
	      uid(K_ENTRY, 5));
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 0, 0);
	EXPECT_ENTRY(conn, 5, "processed", NULL);
	EXPECT_TEXT(conn, uid(K_ENTRY, 5), "SELECT passport_entry_id::text FROM ledger_entries WHERE correlation_id = 'corr-later'");
	EXPECT_TEXT(conn, uid(K_ENTRY, 4), "SELECT passport_entry_id::text FROM ledger_entries WHERE correlation_id = 'corr-linked'");
	EXPECT_TEXT(conn, "999|cents", "SELECT metric_value::float8 || '|' || metric_unit FROM coliseum_metrics"
		    " WHERE passport_entry_id = '%s'", uid(K_ENTRY, 5));
	EXPECT_INT(conn, 1, "SELECT count(*) FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 5));
	EXPECT_INT(conn, 2, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, 5));
	EXPECT_BLOCKS(conn, 5, once, 1e-6);
	PQfinish(conn);
	end_case();
}

/* ---- case 4 ----------------------------------------------------------------------------- */

static const char *const state_digest_sql =
	"SELECT concat_ws(' ', (SELECT md5(string_agg(concat_ws(' ', id, profile_embedding::text, dna_clock, version),"
	" E'\\n' ORDER BY id)) FROM media_ids),"
	" (SELECT count(*) FROM dna_evolution), (SELECT count(*) FROM coliseum_metrics),"
	" (SELECT md5(string_agg(concat_ws(' ', id, processed, processed_at, processing_attempts, dead_at, last_error),"
	" E'\\n' ORDER BY id)) FROM passport_entries))";

static void case_exactly_once(void)
{
	char dsn[DSN_MAX];
	PGconn *conn;
	struct summary s;
	char *before, *after;

	begin_case(4, "exactly once: a second drain changes nothing");
	conn = open_case_database("once", true, dsn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(20, 20)"), 400);

	s = DRAIN(dsn, 0);
	ASSERT_EQ_INT(s.processed + s.failed, 400);
	ASSERT_EQ_INT(s.failed, 0);
	expect_summary_matches_table(__LINE__, conn, &s);
	EXPECT_INT(conn, 0, "SELECT count(*) FROM passport_entries WHERE NOT processed AND dead_at IS NULL");
	ASSERT_GT_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), 0);
	ASSERT_GT_INT(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics"), 0);
	ASSERT_GT_INT(harness_query_int(conn, "SELECT count(*) FROM media_ids WHERE version > 1"), 0);
	/* No entry was applied twice within the first drain either. */
	EXPECT_INT(conn, 0,
		   "SELECT count(*) FROM (SELECT passport_entry_id FROM dna_evolution GROUP BY 1 HAVING count(*) > 1) d");
	before = harness_query_text(conn, state_digest_sql);

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 0, 0, 0);
	ASSERT_EQ_INT(s.dna_rows, 0);
	after = harness_query_text(conn, state_digest_sql);
	if (strcmp(before, after) != 0)
		FAIL("the second drain changed the tables:\n  before %s\n  after  %s", before, after);
	free(before);
	free(after);
	PQfinish(conn);
	end_case();
}

/* ---- case 5 ----------------------------------------------------------------------------- */

static void case_ordering(void)
{
	char dsn[DSN_MAX], payload[128], expected[256];
	PGconn *conn;
	struct summary s;
	static float start[DIM], got[DIM], x[5][DIM];
	static struct dna want, swapped;
	/* Entries 1..4 in (timestamp, id) order: days 0, 5, 5, 10 (2 and 3 tie, id decides). */
	static const int track_of[5] = {0, 1, 2, 3, 4};
	static const double day_of[5] = {0, 0.0, 5.0, 5.0, 10.0};
	static const char *const type_of[5] = {NULL, "player.track_completed", "player.track_played",
					       "player.track_completed", "player.track_skipped"};
	static const struct influence *const influence_of[5] = {NULL, &track_completed, &track_played,
							       &track_completed, &track_skipped};
	static const int insert_order[4] = {4, 1, 3, 2};
	double biggest = 0.0;

	begin_case(5, "per-row ordering: (timestamp, id), whatever the insertion order");
	conn = open_case_database("order", true, dsn);
	add_row(conn, 1, 1, "fan", "passport_test_vector('c5-dna', 0.5)", NULL);
	harness_execf(conn, "UPDATE media_ids SET dna_clock = %s WHERE id = '%s'", at_day(-2), uid(K_ROW, 1));
	for (int t = 1; t <= 4; t++) {
		char vector[64];
		snprintf(vector, sizeof vector, "passport_test_vector('c5-track-%d', %d)%s", t, t, vector_cast);
		add_track(conn, t, 0, vector);
	}
	for (int i = 0; i < 4; i++) {
		int e = insert_order[i];
		snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, track_of[e]));
		add_entry(conn, e, 1, type_of[e], payload, "{mediaid}", day_of[e]);
	}
	read_embedding(conn, 1, start);
	for (int t = 1; t <= 4; t++)
		read_vector(conn, x[t], "SELECT embedding::real[]::text FROM entity_dna WHERE entity_id = '%s'", uid(K_TRACK, t));

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 4, 0, 0);

	/* By hand, in (timestamp, id) order from the clock at day -2. */
	dna_from_floats(&want, start, true, -2.0);
	for (int e = 1; e <= 4; e++)
		dna_apply(&want, x[track_of[e]], influence_of[e], 0.1, no_multiplier, day_of[e]);
	/* The tie in the other order, to show the check can tell the difference. */
	dna_from_floats(&swapped, start, true, -2.0);
	for (int k = 0; k < 4; k++) {
		int e = (int[]){1, 3, 2, 4}[k];
		dna_apply(&swapped, x[track_of[e]], influence_of[e], 0.1, no_multiplier, day_of[e]);
	}
	for (int i = 0; i < DIM; i++)
		biggest = fmax(biggest, fabs(want.v[i] - swapped.v[i]));
	if (biggest < 1e-3)
		FAIL("test design: the two tie orders differ by only %g", biggest);

	read_embedding(conn, 1, got);
	EXPECT_VECTOR("embedding after four entries", got, want.v, 1e-5);
	snprintf(expected, sizeof expected, "%s,%s,%s,%s", uid(K_ENTRY, 1), uid(K_ENTRY, 2), uid(K_ENTRY, 3),
		 uid(K_ENTRY, 4));
	/* Rows are written in the order they were applied (checked on one small batch). */
	EXPECT_TEXT(conn, expected, "SELECT string_agg(passport_entry_id::text, ',' ORDER BY id) FROM dna_evolution");
	EXPECT_TEXT(conn, expected, "SELECT string_agg(passport_entry_id::text, ',' ORDER BY event_time, id) FROM dna_evolution");
	EXPECT_INT(conn, 0, "SELECT count(*) FROM dna_evolution WHERE late");
	/* Recorded decay: Δ = 2, 5, 0, 5 days. */
	for (int e = 1; e <= 4; e++) {
		double delta = e == 1 ? 2.0 : e == 3 ? 0.0 : 5.0;
		EXPECT_TRUE(conn,
			    "SELECT abs(decay_cultural - %.9f) < 1e-6 AND abs(decay_behavioral - %.9f) < 1e-6"
			    " AND event_time = %s FROM dna_evolution WHERE passport_entry_id = '%s'",
			    pow(0.5, delta / 30.0), pow(0.5, delta / 15.0), at_day(day_of[e]), uid(K_ENTRY, e));
	}
	EXPECT_TRUE(conn, "SELECT dna_clock = %s FROM media_ids WHERE id = '%s'", at_day(10), uid(K_ROW, 1));
	EXPECT_INT(conn, 2, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, 1));
	PQfinish(conn);
	end_case();
}

/* ---- case 6 ----------------------------------------------------------------------------- */

static void case_late_entries(void)
{
	char dsn[DSN_MAX], payload[128];
	PGconn *conn;
	struct summary s;
	static float ones[DIM], twos[DIM], threes[DIM], minus[DIM], got[DIM];
	static struct dna want;
	const double late30[DOMAINS] = {0.5, 0.25, sqrt(0.5), pow(0.5, 1.0 / 3.0)};

	begin_case(6, "late entries: damped, the clock stays");
	conn = open_case_database("late", false, dsn);
	add_row(conn, 1, 1, "fan", filled(1), NULL);
	add_track(conn, 1, 0, filled(2));
	add_track(conn, 2, 0, filled(3));
	add_track(conn, 3, 0, filled(-1));
	for (int i = 0; i < DIM; i++) {
		ones[i] = 1.0f;
		twos[i] = 2.0f;
		threes[i] = 3.0f;
		minus[i] = -1.0f;
	}
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 1));
	add_entry(conn, 1, 1, "player.track_completed", payload, "{mediaid}", 30.0);
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 0, 0);
	EXPECT_TRUE(conn, "SELECT dna_clock = %s FROM media_ids WHERE id = '%s'", at_day(30), uid(K_ROW, 1));

	/* 30 days late (l = .5, .25, .707, .794) and 365 days late (every l at the floor .1). */
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 2));
	add_entry(conn, 2, 1, "player.track_completed", payload, "{mediaid}", 0.0);
	snprintf(payload, sizeof payload, "{\"track_id\": \"%s\"}", uid(K_TRACK, 3));
	add_entry(conn, 3, 1, "player.track_played", payload, "{mediaid}", -335.0);
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 2, 0, 0);

	dna_from_floats(&want, ones, false, 0.0);
	dna_apply(&want, twos, &track_completed, 0.1, no_multiplier, 30.0);
	dna_apply(&want, minus, &track_played, 0.1, no_multiplier, -335.0);
	dna_apply(&want, threes, &track_completed, 0.1, no_multiplier, 0.0);
	read_embedding(conn, 1, got);
	EXPECT_VECTOR("embedding after two late entries", got, want.v, 1e-6);
	/* By hand for the cultural block: 1.063 -> (1 - .004) 1.063 - .004 -> (1 - .0315) v + .0315 * 3. */
	{
		double v = 1.063;
		v = (1.0 - 0.1 * 0.1 * 0.5 * 0.8) * v + 0.1 * 0.1 * 0.5 * 0.8 * -1.0;
		v = (1.0 - 0.5 * 0.1 * 0.7 * 0.9) * v + 0.5 * 0.1 * 0.7 * 0.9 * 3.0;
		if (fabs((double)got[0] - v) > 1e-6)
			FAIL("cultural element 0 is %.9g, expected %.9g", (double)got[0], v);
	}
	EXPECT_TRUE(conn, "SELECT dna_clock = %s FROM media_ids WHERE id = '%s'", at_day(30), uid(K_ROW, 1));
	EXPECT_INT(conn, 3, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, 1));
	EXPECT_TRUE(conn,
		    "SELECT late AND abs(alpha - 0.07) < 1e-6 AND abs(decay_cultural - 0.5) < 1e-6"
		    " AND abs(decay_behavioral - 0.25) < 1e-6 AND abs(decay_economic - %.9f) < 1e-6"
		    " AND abs(decay_spatial - %.9f) < 1e-6 AND target_type = 'track'"
		    " FROM dna_evolution WHERE passport_entry_id = '%s'",
		    late30[2], late30[3], uid(K_ENTRY, 2));
	EXPECT_TRUE(conn,
		    "SELECT late AND abs(alpha - 0.05) < 1e-6 AND abs(decay_cultural - 0.1) < 1e-6"
		    " AND abs(decay_behavioral - 0.1) < 1e-6 AND abs(decay_economic - 0.1) < 1e-6"
		    " AND abs(decay_spatial - 0.1) < 1e-6 FROM dna_evolution WHERE passport_entry_id = '%s'",
		    uid(K_ENTRY, 3));
	EXPECT_TRUE(conn, "SELECT NOT late FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 1));
	PQfinish(conn);
	end_case();
}

/* ---- case 7 ----------------------------------------------------------------------------- */

static void case_null_embedding(void)
{
	char dsn[DSN_MAX], payload[128];
	PGconn *conn;
	struct summary s;
	/* v = 0 and Δ = 0: v = a * 2 with a = .063 .056 .021 .021. */
	const double once[DOMAINS] = {0.126, 0.112, 0.042, 0.042};

	begin_case(7, "NULL embedding: v = a * x, the clock is set");
	conn = open_case_database("nullemb", false, dsn);
	add_row(conn, 1, 1, "fan", NULL, NULL);
	/* A NULL embedding means Δ = 0 even when a clock is set (here, later than the entry). */
	add_row(conn, 2, 2, "fan", NULL, NULL);
	harness_execf(conn, "UPDATE media_ids SET dna_clock = %s WHERE id = '%s'", at_day(60), uid(K_ROW, 2));
	add_track(conn, 1, 0, filled(2));
	snprintf(payload, sizeof payload, "{\"content_id\": \"%s\"}", uid(K_TRACK, 1));
	add_entry(conn, 1, 1, "player.track_completed", payload, "{mediaid}", 0.0);
	add_entry(conn, 2, 2, "player.track_completed", payload, "{mediaid}", 0.0);

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 2, 0, 0);
	for (int r = 1; r <= 2; r++) {
		EXPECT_BLOCKS(conn, r, once, 1e-6);
		EXPECT_TRUE(conn, "SELECT dna_clock = %s AND version = 2 FROM media_ids WHERE id = '%s'", at_day(0),
			    uid(K_ROW, r));
		EXPECT_TRUE(conn,
			    "SELECT NOT late AND decay_cultural = 1 AND target_type = 'track'"
			    " FROM dna_evolution WHERE passport_entry_id = '%s'",
			    uid(K_ENTRY, r));
	}
	PQfinish(conn);
	end_case();
}

/* ---- case 8 ----------------------------------------------------------------------------- */

static void case_fan_and_artist_rows(void)
{
	char dsn[DSN_MAX], payload[128];
	PGconn *conn;
	struct summary s;
	const double ones[DOMAINS] = {1, 1, 1, 1};
	const double once[DOMAINS] = {1.063, 1.056, 1.021, 1.021};

	begin_case(8, "which DNA row: fan by default, mediaid_id when set, never another user's");
	conn = open_case_database("rows", false, dsn);
	add_row(conn, 1, 1, "fan", filled(1), NULL);
	add_row(conn, 2, 1, "artist", filled(1), NULL);
	add_row(conn, 3, 2, "fan", filled(1), NULL);
	add_track(conn, 1, 0, filled(2));
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 1));

	add_entry(conn, 1, 1, "player.track_completed", payload, "{mediaid}", 0.0);
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 0, 0);
	EXPECT_BLOCKS(conn, 1, once, 1e-6);
	EXPECT_BLOCKS(conn, 2, ones, 0.0);
	EXPECT_INT(conn, 1, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, 2));
	EXPECT_TEXT(conn, uid(K_ROW, 1), "SELECT mediaid_id::text FROM dna_evolution WHERE passport_entry_id = '%s'",
		    uid(K_ENTRY, 1));

	add_entry(conn, 2, 1, "player.track_completed", payload, "{mediaid}", 0.0);
	harness_execf(conn, "UPDATE passport_entries SET mediaid_id = '%s' WHERE id = '%s'", uid(K_ROW, 2), uid(K_ENTRY, 2));
	add_entry(conn, 3, 1, "player.track_completed", payload, "{mediaid}", 0.0);
	harness_execf(conn, "UPDATE passport_entries SET mediaid_id = '%s' WHERE id = '%s'", uid(K_ROW, 3), uid(K_ENTRY, 3));
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 0, 1);
	EXPECT_BLOCKS(conn, 2, once, 1e-6);
	EXPECT_BLOCKS(conn, 1, once, 1e-6); /* the fan row did not move again */
	EXPECT_BLOCKS(conn, 3, ones, 0.0);  /* user 2's row is not user 1's to change */
	EXPECT_TEXT(conn, "2|2|1",
		    "SELECT string_agg(version::text, '|' ORDER BY id) FROM media_ids WHERE id IN ('%s', '%s', '%s')",
		    uid(K_ROW, 1), uid(K_ROW, 2), uid(K_ROW, 3));
	EXPECT_TEXT(conn, uid(K_ROW, 2), "SELECT mediaid_id::text FROM dna_evolution WHERE passport_entry_id = '%s'",
		    uid(K_ENTRY, 2));
	EXPECT_ENTRY(conn, 3, "dead", "does not belong");
	EXPECT_INT(conn, 0, "SELECT count(*) FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 3));
	PQfinish(conn);
	end_case();
}

/* ---- case 9 ----------------------------------------------------------------------------- */

static void case_missing_rows(void)
{
	char dsn[DSN_MAX];
	PGconn *conn;
	struct summary s;

	begin_case(9, "missing media_ids row: retry; no user_id: dead; max_attempts");
	conn = open_case_database("missing", false, dsn);
	add_entry(conn, 1, 1, "player.track_played", "{}", "{mediaid}", 0.0);
	add_entry(conn, 2, 0, "player.track_played", "{}", "{mediaid}", 0.0);
	add_entry(conn, 3, 0, "player.track_played", "{}", "{}", 1.0); /* default route: mediaid, coliseum */
	add_entry(conn, 4, 2, "player.track_played", "{}", "{mediaid}", 0.0);
	harness_execf(conn, "UPDATE passport_entries SET processing_attempts = 4 WHERE id = '%s'", uid(K_ENTRY, 4));

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 0, 1, 3);
	expect_summary_matches_table(__LINE__, conn, &s);
	EXPECT_ENTRY(conn, 1, "retrying", "^mediaid:");
	/* Retry after base 10 s with +-20 % jitter. */
	EXPECT_TRUE(conn,
		    "SELECT NOT processed AND processing_attempts = 1 AND dead_at IS NULL"
		    " AND next_attempt_at > now() + interval '6 seconds' AND next_attempt_at < now() + interval '13 seconds'"
		    " FROM passport_entries WHERE id = '%s'",
		    uid(K_ENTRY, 1));
	EXPECT_ENTRY(conn, 2, "dead", "^mediaid:");
	EXPECT_ENTRY(conn, 3, "dead", "^mediaid:");
	EXPECT_INT(conn, 0, "SELECT count(*) FROM coliseum_metrics");
	EXPECT_ENTRY(conn, 4, "dead", "^mediaid:"); /* the 5th attempt */
	EXPECT_TRUE(conn, "SELECT processing_attempts = 5 AND next_attempt_at IS NULL FROM passport_entries WHERE id = '%s'",
		    uid(K_ENTRY, 4));

	/* Not due yet: nothing to do. */
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 0, 0, 0);

	/* The sign-up trigger has run meanwhile; the retry succeeds. */
	add_row(conn, 1, 1, "fan", filled(1), NULL);
	harness_execf(conn, "UPDATE passport_entries SET next_attempt_at = now() - interval '1 second' WHERE id = '%s'",
	      uid(K_ENTRY, 1));
	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 1, 0, 0);
	EXPECT_ENTRY(conn, 1, "processed", NULL);
	EXPECT_INT(conn, 1, "SELECT count(*) FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 1));
	PQfinish(conn);
	end_case();
}

/* ---- case 10 ---------------------------------------------------------------------------- */

static void case_unknown_system(void)
{
	char dsn[DSN_MAX];
	PGconn *conn;
	struct summary s;

	begin_case(10, "unknown system: dead, the rest of the batch goes through");
	conn = open_case_database("unknownsys", false, dsn);
	add_row(conn, 2, 2, "fan", filled(1), NULL);
	add_entry(conn, 1, 1, "player.track_played", "{}", "{coliseum}", 0.0);
	add_entry(conn, 2, 1, "player.track_played", "{}", "{mediaid,billing}", 1.0);
	add_entry(conn, 3, 2, "player.track_played", "{}", "{mediaid}", 2.0);
	add_entry(conn, 4, 2, "player.track_played", "{}", "{coliseum,mediaid}", 3.0);
	/* A stale processed_at on a due entry (some other writer's) survives its failure exactly. */
	harness_execf(conn, "UPDATE passport_entries SET processed_at = '2020-01-02 03:04:05.678901+00' WHERE id = '%s'",
	      uid(K_ENTRY, 2));
	/* A retried entry (old error, attempts) that now succeeds loses its old error. */
	harness_execf(conn, "UPDATE passport_entries SET last_error = 'coliseum: earlier', processing_attempts = 1 WHERE id = '%s'",
	      uid(K_ENTRY, 1));

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 3, 0, 1);
	EXPECT_TRUE(conn,
		    "SELECT processed_at = '2020-01-02 03:04:05.678901+00' AND NOT processed AND processing_attempts = 1"
		    " FROM passport_entries WHERE id = '%s'",
		    uid(K_ENTRY, 2));
	EXPECT_TRUE(conn,
		    "SELECT processed AND last_error IS NULL AND next_attempt_at IS NULL AND processing_attempts = 1"
		    " FROM passport_entries WHERE id = '%s'",
		    uid(K_ENTRY, 1));
	ASSERT_EQ_INT(s.batches, 1);
	expect_summary_matches_table(__LINE__, conn, &s);
	EXPECT_ENTRY(conn, 2, "dead", "billing");
	EXPECT_INT(conn, 0, "SELECT count(*) FROM coliseum_metrics WHERE passport_entry_id = '%s'", uid(K_ENTRY, 2));
	EXPECT_ENTRY(conn, 1, "processed", NULL);
	EXPECT_ENTRY(conn, 3, "processed", NULL);
	EXPECT_ENTRY(conn, 4, "processed", NULL);
	EXPECT_INT(conn, 2, "SELECT count(*) FROM coliseum_metrics");
	EXPECT_INT(conn, 2, "SELECT count(*) FROM dna_evolution");
	PQfinish(conn);
	end_case();
}

/* ---- case 11 ---------------------------------------------------------------------------- */

static void case_invalid_payloads(void)
{
	char dsn[DSN_MAX], payload[256], *nested;
	PGconn *conn;
	struct summary s;
	const int depth = 3000;
	char track[37];

	begin_case(11, "invalid payloads: dead or processed per the spec, good entries unharmed");
	conn = open_case_database("payloads", false, dsn);
	add_row(conn, 1, 1, "fan", filled(1), NULL);
	add_track(conn, 1, 0, filled(2));
	snprintf(track, sizeof track, "%s", uid(K_TRACK, 1));

	/* player.track_completed routes to mediaid and coliseum by default. */
	add_entry(conn, 1, 1, "player.track_completed", "[1, 2]", "{}", 1.0);
	add_entry(conn, 2, 1, "player.track_completed", "\"hello\"", "{}", 2.0);
	add_entry(conn, 3, 1, "player.track_completed", "42", "{}", 3.0);
	add_entry(conn, 4, 1, "player.track_completed", "null", "{}", 4.0);
	add_entry(conn, 5, 1, "player.track_completed", "{\"trackId\": 123}", "{}", 5.0);
	add_entry(conn, 6, 1, "player.track_completed", "{\"trackId\": \"not-a-uuid\"}", "{}", 6.0);
	snprintf(payload, sizeof payload, "{\"trackId\": null, \"track_id\": \"%s\"}", track);
	add_entry(conn, 7, 1, "player.track_completed", payload, "{}", 7.0);
	snprintf(payload, sizeof payload, "{\"trackId\": 5, \"track_id\": \"%s\"}", track);
	add_entry(conn, 8, 1, "player.track_completed", payload, "{}", 8.0);
	snprintf(payload, sizeof payload, "{\"targetId\": \"%s\", \"targetType\": \"planet\"}", track);
	add_entry(conn, 9, 1, "player.track_completed", payload, "{}", 9.0);
	add_entry(conn, 10, 1, "concierto.ticket_purchased", "{\"amount_cents\": \"12\"}", "{}", 10.0);
	add_entry(conn, 11, 1, "player.track_completed", "{}", "{}", 11.0);
	harness_execf(conn, "UPDATE passport_entries SET payload = jsonb_build_object('pad', repeat('x', 2 * 1024 * 1024))"
		    " WHERE id = '%s'", uid(K_ENTRY, 11));
	add_entry(conn, 12, 1, "player.track_completed", NULL, "{}", 12.0);
	nested = malloc((size_t)depth * 6 + 2);
	if (!nested)
		FAIL("out of memory");
	{
		char *p = nested;
		for (int i = 0; i < depth; i++, p += 5)
			memcpy(p, "{\"a\":", 5);
		*p++ = '1';
		for (int i = 0; i < depth; i++)
			*p++ = '}';
		*p = '\0';
	}
	add_entry(conn, 13, 1, "player.track_completed", nested, "{}", 13.0);
	free(nested);
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", track);
	add_entry(conn, 14, 1, "player.track_completed", payload, "{}", 14.0);

	s = DRAIN(dsn, 0);
	ASSERT_EQ_INT(s.batches, 1);
	expect_summary_matches_table(__LINE__, conn, &s);
	for (int e = 1; e <= 4; e++)
		EXPECT_ENTRY(conn, e, "dead", "^payload:");
	EXPECT_ENTRY(conn, 10, "dead", "^treasury:");
	EXPECT_ENTRY(conn, 11, "dead", "^payload:");
	/* Deep nesting: whatever the verdict, the entry is settled and drain survived. */
	EXPECT_TRUE(conn, "SELECT processed OR dead_at IS NOT NULL FROM passport_entries WHERE id = '%s'", uid(K_ENTRY, 13));
	for (int e = 5; e <= 9; e++)
		EXPECT_ENTRY(conn, e, "processed", NULL);
	EXPECT_ENTRY(conn, 12, "processed", NULL);
	EXPECT_ENTRY(conn, 14, "processed", NULL);
	/* Targets: wrong-typed or non-UUID ids mean no target; a null key falls through to the next. */
	EXPECT_TEXT(conn, "-", "SELECT coalesce(target_id::text, '-') FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 5));
	EXPECT_TEXT(conn, "-", "SELECT coalesce(target_id::text, '-') FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 6));
	EXPECT_TEXT(conn, track, "SELECT coalesce(target_id::text, '-') FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 7));
	EXPECT_TEXT(conn, "-", "SELECT coalesce(target_id::text, '-') FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 8));
	EXPECT_TEXT(conn, "-", "SELECT coalesce(target_id::text, '-') FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 9));
	EXPECT_TEXT(conn, "-", "SELECT coalesce(target_id::text, '-') FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 12));
	EXPECT_TEXT(conn, track, "SELECT coalesce(target_id::text, '-') FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 14));
	EXPECT_TEXT(conn, "-", "SELECT coalesce(track_id::text, '-') FROM coliseum_metrics WHERE passport_entry_id = '%s'", uid(K_ENTRY, 5));
	EXPECT_TEXT(conn, track, "SELECT coalesce(track_id::text, '-') FROM coliseum_metrics WHERE passport_entry_id = '%s'", uid(K_ENTRY, 14));
	/* Dead entries leave no trace in any system. */
	EXPECT_INT(conn, 0,
		   "SELECT (SELECT count(*) FROM coliseum_metrics m JOIN passport_entries e ON e.id = m.passport_entry_id"
		   " WHERE e.dead_at IS NOT NULL) + (SELECT count(*) FROM dna_evolution d JOIN passport_entries e"
		   " ON e.id = d.passport_entry_id WHERE e.dead_at IS NOT NULL)");
	PQfinish(conn);
	end_case();
}

/* ---- case 12 ---------------------------------------------------------------------------- */

static void case_bad_vectors(void)
{
	char dsn[DSN_MAX], payload[128], *before;
	PGconn *conn;
	struct summary s;
	const double once[DOMAINS] = {1.063, 1.056, 1.021, 1.021};
	/* Track 8 has no vector; its artist's (threes) is used: v = (1 - a) + 3a. */
	const double via_artist[DOMAINS] = {1.126, 1.112, 1.042, 1.042};
	/* Bad targets: NaN, 10 floats, Infinity, a NULL element, two dimensions, empty, NaN via the artist. */
	static const char *const bad_vectors[] = {
		"(SELECT array_agg(CASE WHEN g = 6 THEN 'NaN'::real ELSE 1 END ORDER BY g) FROM generate_series(1, 1536) g)",
		"array_fill(1::real, ARRAY[10])",
		"(SELECT array_agg(CASE WHEN g = 1000 THEN 'Infinity'::real ELSE 1 END ORDER BY g) FROM generate_series(1, 1536) g)",
		"(SELECT array_agg(CASE WHEN g = 7 THEN NULL ELSE 1::real END ORDER BY g) FROM generate_series(1, 1536) g)",
		"array_fill(1::real, ARRAY[2, 768])",
		"'{}'::real[]",
	};
	const int n_bad = (int)(sizeof bad_vectors / sizeof bad_vectors[0]);

	begin_case(12, "non-finite or wrong-length vectors: dead with a clear error, DNA untouched");
	conn = open_case_database("vectors", false, dsn);
	if (vector_cast[0]) {
		printf("skipped: the embedding columns are pgvector's, which refuse these values on insert\n");
		PQfinish(conn);
		return;
	}
	add_row(conn, 1, 1, "fan", filled(1), NULL);
	add_track(conn, 1, 0, filled(2));
	for (int i = 0; i < n_bad; i++)
		add_track(conn, 2 + i, 0, bad_vectors[i]);
	/* Good entry at day 1; bad ones at days 0 and 2: had one of them been applied, the clock would show it. */
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 1));
	add_entry(conn, 1, 1, "player.track_completed", payload, "{mediaid}", 1.0);
	for (int i = 0; i < n_bad; i++) {
		snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 2 + i));
		add_entry(conn, 2 + i, 1, "player.track_completed", payload, "{mediaid}", i % 2 ? 2.0 : 0.0);
	}
	/* A track without a vector falls back to its artist's: a NaN one is as bad, a good one is used. */
	add_artist(conn, 1, 50, bad_vectors[0]);
	add_artist(conn, 2, 51, filled(3));
	add_track(conn, 20, 1, NULL);
	add_track(conn, 21, 2, NULL);
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 20));
	add_entry(conn, 20, 1, "player.track_completed", payload, "{mediaid}", 0.5);
	add_row(conn, 4, 4, "fan", filled(1), NULL);
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 21));
	add_entry(conn, 21, 4, "player.track_completed", payload, "{mediaid}", 0.0);
	/* Bad embeddings of the DNA row itself. */
	add_row(conn, 2, 2, "fan", bad_vectors[0], NULL);
	add_row(conn, 3, 3, "fan", bad_vectors[1], NULL);
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 1));
	add_entry(conn, 30, 2, "player.track_completed", payload, "{mediaid}", 0.0);
	add_entry(conn, 31, 3, "player.track_completed", payload, "{mediaid}", 0.0);
	before = harness_textf(conn, "SELECT string_agg(profile_embedding::text, ';' ORDER BY id) FROM media_ids WHERE id IN ('%s', '%s')",
		       uid(K_ROW, 2), uid(K_ROW, 3));

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 2, 0, n_bad + 3);
	expect_summary_matches_table(__LINE__, conn, &s);
	EXPECT_ENTRY(conn, 1, "processed", NULL);
	for (int i = 0; i < n_bad; i++) {
		EXPECT_ENTRY(conn, 2 + i, "dead", "^mediaid:");
		EXPECT_ENTRY(conn, 2 + i, "dead", uid(K_TRACK, 2 + i));
	}
	EXPECT_ENTRY(conn, 20, "dead", "^mediaid:");
	EXPECT_ENTRY(conn, 30, "dead", "^mediaid:");
	EXPECT_ENTRY(conn, 31, "dead", "^mediaid:");
	EXPECT_BLOCKS(conn, 1, once, 1e-6);
	EXPECT_TRUE(conn, "SELECT dna_clock = %s AND version = 2 FROM media_ids WHERE id = '%s'", at_day(1), uid(K_ROW, 1));
	EXPECT_INT(conn, 1, "SELECT count(*) FROM dna_evolution WHERE mediaid_id = '%s'", uid(K_ROW, 1));
	EXPECT_ENTRY(conn, 21, "processed", NULL);
	EXPECT_BLOCKS(conn, 4, via_artist, 1e-6);
	EXPECT_TEXT(conn, "track", "SELECT target_type FROM dna_evolution WHERE passport_entry_id = '%s'", uid(K_ENTRY, 21));
	EXPECT_TEXT(conn, before, "SELECT string_agg(profile_embedding::text, ';' ORDER BY id) FROM media_ids WHERE id IN ('%s', '%s')",
		    uid(K_ROW, 2), uid(K_ROW, 3));
	EXPECT_INT(conn, 2, "SELECT count(*) FROM media_ids WHERE version = 1 AND id IN ('%s', '%s')", uid(K_ROW, 2),
		   uid(K_ROW, 3));
	free(before);
	PQfinish(conn);
	end_case();
}

/* ---- case 13 ---------------------------------------------------------------------------- */

/* Each media_ids row (embedding and clock, not version: that counts batches) must be equal in a and b. */
static void expect_same_dna(PGconn *a, PGconn *b, const char *phase)
{
	const char *sql = "SELECT id::text, coalesce(profile_embedding::real[]::text, 'NULL'), coalesce(dna_clock::text, 'NULL')"
			  " FROM media_ids ORDER BY id";
	PGresult *ra = PQexec(a, sql), *rb = PQexec(b, sql);

	if (PQresultStatus(ra) != PGRES_TUPLES_OK || PQresultStatus(rb) != PGRES_TUPLES_OK)
		FAIL("reading media_ids: %s%s", PQerrorMessage(a), PQerrorMessage(b));
	ASSERT_EQ_INT(PQntuples(ra), PQntuples(rb));
	for (int r = 0; r < PQntuples(ra); r++) {
		const char *id = PQgetvalue(ra, r, 0);
		if (strcmp(id, PQgetvalue(rb, r, 0)) != 0)
			FAIL("%s: row %d is %s in one database and %s in the other", phase, r, id, PQgetvalue(rb, r, 0));
		if (strcmp(PQgetvalue(ra, r, 2), PQgetvalue(rb, r, 2)) != 0)
			FAIL("%s: media_ids %s: dna_clock %s with --batch-size 1, %s with 500", phase, id,
			     PQgetvalue(ra, r, 2), PQgetvalue(rb, r, 2));
		if (strcmp(PQgetvalue(ra, r, 1), PQgetvalue(rb, r, 1)) != 0) {
			const char *x = PQgetvalue(ra, r, 1), *y = PQgetvalue(rb, r, 1);
			const char *x_start = x + 1, *y_start = y + 1;
			int element = 0;
			while (*x && *x == *y) {
				if (*x == ',') {
					element++;
					x_start = x + 1;
					y_start = y + 1;
				}
				x++;
				y++;
			}
			x = x_start;
			y = y_start;
			FAIL("%s: media_ids %s: embeddings differ from element %d: '%.30s' (batch 1) vs '%.30s' (batch 500)",
			     phase, id, element, x, y);
		}
	}
	PQclear(ra);
	PQclear(rb);
}

static const char *const evolution_digest_sql =
	"SELECT count(*) || ' ' || coalesce(md5(string_agg(concat_ws(' ', passport_entry_id, mediaid_id, event_type, event_time,"
	" target_type, target_id, alpha, decay_cultural, decay_behavioral, decay_economic, decay_spatial, delta_cultural,"
	" delta_behavioral, delta_economic, delta_spatial, late), E'\\n' ORDER BY passport_entry_id, mediaid_id)), '-')"
	" FROM dna_evolution";
static const char *const outcome_digest_sql =
	"SELECT md5(string_agg(concat_ws(' ', id, processed, dead_at IS NULL, processing_attempts, last_error), E'\\n'"
	" ORDER BY id)) || ' ' || (SELECT count(*) FROM coliseum_metrics) FROM passport_entries";

/* 100 entries older than most clocks, with equal timestamps in pairs (same user, same instant). */
static const char *const late_entries_sql =
	"INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, affects_systems, source, \"timestamp\")"
	" SELECT passport_test_uuid('late-' || i), passport_test_uuid('user-' || (1 + i % 50)),"
	"  (ARRAY['player.track_played', 'player.track_completed', 'social.content_liked', 'concierto.event_attended'])[1 + i % 4],"
	"  'late',"
	"  CASE i % 4 WHEN 0 THEN jsonb_build_object('trackId', passport_test_uuid('track-' || (1 + i % 40))::text)"
	"   WHEN 1 THEN jsonb_build_object('track_id', passport_test_uuid('track-' || (1 + i % 37))::text)"
	"   WHEN 2 THEN jsonb_build_object('artistId', passport_test_uuid('artist-' || (1 + i % 10))::text)"
	"   ELSE jsonb_build_object('targetId', passport_test_uuid('event-' || (1 + i % 10))::text, 'targetType', 'event') END,"
	"  '{}', 'web',"
	"  timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => ((i % 50) * 7919 % 80) * 86400.0 + (i % 50))"
	" FROM generate_series(1, 100) AS i";

static void case_batch_size_determinism(void)
{
	char dsn_a[DSN_MAX], dsn_b[DSN_MAX];
	PGconn *a, *b;
	struct summary sa, sb;
	char *ea, *eb, *oa, *ob;
	long long late;

	begin_case(13, "batch size 1 and 500 give bit-identical DNA (2,000 entries, then 100 late ones)");
	a = open_case_database("bs1", true, dsn_a);
	b = open_case_database("bs500", true, dsn_b);
	ASSERT_EQ_INT(harness_query_int(a, "SELECT passport_test_workload(50, 40)"), 2000);
	ASSERT_EQ_INT(harness_query_int(b, "SELECT passport_test_workload(50, 40)"), 2000);

	sa = DRAIN(dsn_a, 1);
	sb = DRAIN(dsn_b, 500);
	ASSERT_EQ_INT(sa.processed, sb.processed);
	ASSERT_EQ_INT(sa.failed, sb.failed);
	ASSERT_EQ_INT(sa.processed + sa.failed, 2000);
	ASSERT_GE_INT(sa.batches, 2000 - sa.failed);
	ASSERT_LT_INT(sb.batches, sa.batches);
	expect_same_dna(a, b, "first drain");
	ea = harness_query_text(a, evolution_digest_sql);
	eb = harness_query_text(b, evolution_digest_sql);
	if (strcmp(ea, eb) != 0)
		FAIL("dna_evolution differs: %s (batch 1) vs %s (batch 500)", ea, eb);
	ASSERT_GT_INT(atol(ea), 0);
	ASSERT_GT_INT(harness_query_int(a, "SELECT count(*) FROM media_ids WHERE version > 1"), 0);
	oa = harness_query_text(a, outcome_digest_sql);
	ob = harness_query_text(b, outcome_digest_sql);
	if (strcmp(oa, ob) != 0)
		FAIL("entry outcomes or coliseum rows differ: %s vs %s", oa, ob);
	free(ea);
	free(eb);
	free(oa);
	free(ob);

	/* Phase 2: late entries after the first drain. */
	harness_exec(a, late_entries_sql);
	harness_exec(b, late_entries_sql);
	sa = DRAIN(dsn_a, 1);
	sb = DRAIN(dsn_b, 500);
	ASSERT_EQ_INT(sa.processed + sa.failed, 100);
	ASSERT_EQ_INT(sa.processed, sb.processed);
	expect_same_dna(a, b, "after the late entries");
	ea = harness_query_text(a, evolution_digest_sql);
	eb = harness_query_text(b, evolution_digest_sql);
	if (strcmp(ea, eb) != 0)
		FAIL("dna_evolution differs after the late entries: %s vs %s", ea, eb);
	late = harness_query_int(a, "SELECT count(*) FROM dna_evolution d JOIN passport_entries e"
				    " ON e.id = d.passport_entry_id WHERE e.event_category = 'late' AND d.late");
	printf("late entries applied as late: %lld of 100\n", late);
	ASSERT_GE_INT(late, 50);
	free(ea);
	free(eb);
	PQfinish(a);
	PQfinish(b);
	end_case();
}

/* ---- case 15 ---------------------------------------------------------------------------- */

static void case_null_timestamp_and_user(void)
{
	char dsn[DSN_MAX];
	PGconn *conn;
	struct summary s;

	begin_case(15, "NULL timestamp: dead; NULL user with a coliseum-only event: processed");
	conn = open_case_database("nulls", false, dsn);
	add_row(conn, 1, 1, "fan", filled(1), NULL);
	add_entry(conn, 1, 1, "player.track_played", "{}", "{coliseum}", (double)NAN);
	add_entry(conn, 2, 0, "coliseum.metric_tracked", "{\"value\": 7}", "{}", 1.0);
	add_entry(conn, 3, 0, "player.track_played", "{}", "{coliseum}", 2.0);
	add_entry(conn, 4, 1, "player.track_played", "{}", "{mediaid}", 3.0);
	harness_execf(conn, "UPDATE passport_entries SET \"timestamp\" = 'infinity' WHERE id = '%s'", uid(K_ENTRY, 4));
	add_entry(conn, 5, 1, "player.track_played", "{}", "{mediaid,coliseum}", 4.0);

	s = DRAIN(dsn, 0);
	expect_summary_matches_table(__LINE__, conn, &s);
	EXPECT_ENTRY(conn, 1, "dead", NULL);
	EXPECT_ENTRY(conn, 2, "processed", NULL);
	EXPECT_ENTRY(conn, 3, "processed", NULL);
	EXPECT_ENTRY(conn, 5, "processed", NULL);
	/* An infinite timestamp is settled one way or the other, and drain survived it. */
	EXPECT_TRUE(conn, "SELECT processed OR dead_at IS NOT NULL FROM passport_entries WHERE id = '%s'", uid(K_ENTRY, 4));
	EXPECT_TRUE(conn, "SELECT dna_clock = %s FROM media_ids WHERE id = '%s'", at_day(4), uid(K_ROW, 1));
	EXPECT_TEXT(conn, "-|7", "SELECT coalesce(user_id::text, '-') || '|' || metric_value::float8 FROM coliseum_metrics"
		    " WHERE passport_entry_id = '%s'", uid(K_ENTRY, 2));
	EXPECT_TEXT(conn, "-|1", "SELECT coalesce(user_id::text, '-') || '|' || metric_value::float8 FROM coliseum_metrics"
		    " WHERE passport_entry_id = '%s'", uid(K_ENTRY, 3));
	EXPECT_INT(conn, 0, "SELECT count(*) FROM coliseum_metrics WHERE passport_entry_id = '%s'", uid(K_ENTRY, 1));
	PQfinish(conn);
	end_case();
}

/* ---- case 16 ---------------------------------------------------------------------------- */

static void case_database_refuses_one_entry(void)
{
	char dsn[DSN_MAX], payload[128];
	PGconn *conn;
	struct summary s;
	const double once[DOMAINS] = {1.063, 1.056, 1.021, 1.021};

	begin_case(16, "the database refuses one entry's effects: that entry retries, the others commit once");
	conn = open_case_database("refused", false, dsn);
	/* A constraint upstream might add; the daemon cannot know it in advance. */
	harness_exec(conn, "ALTER TABLE coliseum_metrics ADD CONSTRAINT test_metric_cap CHECK (metric_value < 1000000)");
	add_row(conn, 1, 1, "fan", filled(1), NULL);
	add_track(conn, 1, 0, filled(2));
	add_entry(conn, 1, 2, "coliseum.metric_tracked", "{}", "{}", 0.0);
	add_entry(conn, 2, 2, "treasury.transaction_created", "{\"amount_cents\": 5000000}", "{coliseum}", 1.0);
	snprintf(payload, sizeof payload, "{\"trackId\": \"%s\"}", uid(K_TRACK, 1));
	add_entry(conn, 3, 1, "player.track_completed", payload, "{}", 2.0);

	s = DRAIN(dsn, 0);
	EXPECT_SUMMARY(s, 2, 1, 0);
	expect_summary_matches_table(__LINE__, conn, &s);
	EXPECT_ENTRY(conn, 1, "processed", NULL);
	EXPECT_ENTRY(conn, 3, "processed", NULL);
	EXPECT_ENTRY(conn, 2, "retrying", "test_metric_cap");
	EXPECT_INT(conn, 0, "SELECT count(*) FROM coliseum_metrics WHERE passport_entry_id = '%s'", uid(K_ENTRY, 2));
	EXPECT_INT(conn, 2, "SELECT count(*) FROM coliseum_metrics");
	EXPECT_INT(conn, 1, "SELECT count(*) FROM dna_evolution");
	EXPECT_INT(conn, 2, "SELECT version FROM media_ids WHERE id = '%s'", uid(K_ROW, 1));
	EXPECT_BLOCKS(conn, 1, once, 1e-6);
	PQfinish(conn);
	end_case();
}

/* ---- case 17 ---------------------------------------------------------------------------- */

/*
 * Entries without a user need no user lock; they must still be taken in their turn, not only
 * when no user's entries are left.
 */
static void case_null_user_not_starved(void)
{
	char dsn[DSN_MAX];
	PGconn *conn;
	struct summary s;

	begin_case(17, "entries without a user are taken in timestamp order, not starved");
	conn = open_case_database("null_user_turn", false, dsn);
	for (int u = 1; u <= 3; u++)
		harness_execf(conn, "INSERT INTO media_ids (id, user_uuid, role) VALUES ('%s', '%s', 'fan')", uid(K_ROW, u),
		      uid(K_USER, u));
	harness_execf(conn,
	      "INSERT INTO passport_entries (id, user_id, event_type, event_category, \"timestamp\") VALUES"
	      " ('%s', NULL, 'player.track_paused', 'interaction', '2026-01-01 00:00:00+00'),"
	      " ('%s', '%s', 'player.track_played', 'interaction', '2026-01-02 00:00:00+00'),"
	      " ('%s', '%s', 'player.track_played', 'interaction', '2026-01-03 00:00:00+00'),"
	      " ('%s', '%s', 'player.track_played', 'interaction', '2026-01-04 00:00:00+00')",
	      uid(K_ENTRY, 1), uid(K_ENTRY, 2), uid(K_USER, 1), uid(K_ENTRY, 3), uid(K_USER, 2), uid(K_ENTRY, 4),
	      uid(K_USER, 3));
	s = DRAIN(dsn, 2);
	ASSERT_EQ_INT(s.processed, 4);
	/* Each batch is its own transaction, so processed_at (its now()) orders the batches. */
	EXPECT_INT(conn, 1,
		   "SELECT count(*) FROM passport_entries n WHERE n.id = '%s' AND n.processed_at <="
		   " (SELECT min(processed_at) FROM passport_entries WHERE user_id IS NOT NULL)",
		   uid(K_ENTRY, 1));
	PQfinish(conn);
	end_case();
}

/* ---- case 18 ---------------------------------------------------------------------------- */

/* dna_evolution ids follow the order entries were applied to each row, even in large batches. */
static void case_evolution_in_applied_order(void)
{
	char dsn[DSN_MAX];
	PGconn *conn;

	begin_case(18, "dna_evolution rows are inserted in the order they were applied");
	conn = open_case_database("evolution_order", true, dsn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(20, 40)"), 800);
	(void)DRAIN(dsn, 500);
	ASSERT_GT_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), 500);
	EXPECT_INT(conn, 0,
		   "SELECT count(*) FROM (SELECT event_time, passport_entry_id,"
		   " lag(event_time) OVER w AS previous_time, lag(passport_entry_id) OVER w AS previous_entry"
		   " FROM dna_evolution WINDOW w AS (PARTITION BY mediaid_id ORDER BY id)) x"
		   " WHERE (previous_time, previous_entry) > (event_time, passport_entry_id)");
	PQfinish(conn);
	end_case();
}

/* ---- case 19 ---------------------------------------------------------------------------- */

static void case_workers_determinism(void)
{
	char dsn_a[DSN_MAX], dsn_b[DSN_MAX];
	PGconn *a, *b;
	struct summary sa, sb;
	char *ea, *eb, *oa, *ob;

	begin_case(19, "drain --workers 4 (batches of 37) gives the same DNA, evolution and outcomes as one worker");
	a = open_case_database("w1", true, dsn_a);
	b = open_case_database("w4", true, dsn_b);
	ASSERT_EQ_INT(harness_query_int(a, "SELECT passport_test_workload(50, 40)"), 2000);
	ASSERT_EQ_INT(harness_query_int(b, "SELECT passport_test_workload(50, 40)"), 2000);
	for (int phase = 0; phase < 2; phase++) {
		if (phase == 1) {
			harness_exec(a, late_entries_sql);
			harness_exec(b, late_entries_sql);
		}
		sa = DRAIN(dsn_a, 500);
		sb = DRAIN_WORKERS(dsn_b, 37, 4);
		ASSERT_EQ_INT(sa.processed + sa.failed, phase == 0 ? 2000 : 100);
		ASSERT_EQ_INT(sb.processed, sa.processed);
		ASSERT_EQ_INT(sb.retrying, sa.retrying);
		ASSERT_EQ_INT(sb.dead, sa.dead);
		ASSERT_GE_INT(sb.batches, (phase == 0 ? 2000 : 100) / 37);
		expect_same_dna(a, b, phase == 0 ? "first drain" : "after the late entries");
		ea = harness_query_text(a, evolution_digest_sql);
		eb = harness_query_text(b, evolution_digest_sql);
		if (strcmp(ea, eb) != 0)
			FAIL("dna_evolution differs: %s (1 worker) vs %s (4 workers)", ea, eb);
		oa = harness_query_text(a, outcome_digest_sql);
		ob = harness_query_text(b, outcome_digest_sql);
		if (strcmp(oa, ob) != 0)
			FAIL("entry outcomes or coliseum rows differ: %s vs %s", oa, ob);
		free(ea);
		free(eb);
		free(oa);
		free(ob);
	}
	ASSERT_EQ_INT(harness_query_int(b, "SELECT count(*) FROM passport_entries WHERE NOT processed AND dead_at IS NULL"
					  " AND (next_attempt_at IS NULL OR next_attempt_at <= now())"),
		      0);
	PQfinish(a);
	PQfinish(b);
	end_case();
}

/* ---- case 20 ---------------------------------------------------------------------------- */

static void case_many_rows_in_one_batch(void)
{
	char dsn_a[DSN_MAX], dsn_b[DSN_MAX];
	PGconn *a, *b;
	struct summary sa, sb;

	begin_case(20, "one batch touching 200 DNA rows (written in chunks) gives the DNA of batches of one");
	a = open_case_database("rows1", true, dsn_a);
	b = open_case_database("rows500", true, dsn_b);
	ASSERT_EQ_INT(harness_query_int(a, "SELECT passport_test_workload(200, 2)"), 400);
	ASSERT_EQ_INT(harness_query_int(b, "SELECT passport_test_workload(200, 2)"), 400);
	sa = DRAIN(dsn_a, 1);
	sb = DRAIN(dsn_b, 500);
	ASSERT_EQ_INT(sb.processed, sa.processed);
	/* On average more than one write chunk (64 rows) per batch: some batch wrote several. */
	ASSERT_GT_INT(sb.dna_rows, 64 * sb.batches);
	expect_same_dna(a, b, "200 rows in one batch");
	PQfinish(a);
	PQfinish(b);
	end_case();
}

/* DRAIN_CASES="5 13" runs only those cases (for working on one); unset, all of them. */
static bool wanted(int number)
{
	const char *list = getenv("DRAIN_CASES");
	char *end;

	if (!list || !*list)
		return true;
	for (const char *p = list; *p; p = end) {
		long n = strtol(p, &end, 10);
		if (end == p) {
			end = (char *)p + 1;
			continue;
		}
		if (n == number)
			return true;
	}
	return false;
}

/*
 * The synchronous_commit option: false makes every batch's transaction run with
 * synchronous_commit off (SET LOCAL), true (the default) leaves the session's setting alone. The
 * database is set to on (the test server runs with off); a statement trigger on the batch's
 * writes records the setting it saw, and a later session of the database sees on again.
 */
static void case_synchronous_commit(void)
{
	static const char *const async_env[] = {"PASSPORTD_SYNCHRONOUS_COMMIT=false", NULL};
	static const char recorder_sql[] =
		"DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', current_database()); END $$;"
		"CREATE TABLE commit_settings (setting text);"
		"CREATE FUNCTION record_commit_setting() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$"
		" BEGIN INSERT INTO commit_settings VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$;"
		"CREATE TRIGGER record_commit_setting AFTER INSERT ON dna_evolution"
		" FOR EACH STATEMENT EXECUTE FUNCTION record_commit_setting();"
		"CREATE TRIGGER record_commit_setting AFTER INSERT ON coliseum_metrics"
		" FOR EACH STATEMENT EXECUTE FUNCTION record_commit_setting()";
	static const char *const names[2] = {"sync_off", "sync_default"};
	static const char *const expected[2] = {"off", "on"};

	begin_case(22, "synchronous_commit = false: the batches commit with synchronous_commit off; true: as the session");
	for (int i = 0; i < 2; i++) {
		char dsn[DSN_MAX];
		PGconn *conn = open_case_database(names[i], true, dsn);
		struct summary s;
		char *other;

		harness_exec(conn, recorder_sql);
		ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(20, 10)"), 200);
		s = i == 0 ? DRAIN_ENV(dsn, 50, async_env) : DRAIN(dsn, 50);
		ASSERT_EQ_INT(s.processed + s.failed, 200);
		ASSERT_GE_INT(s.batches, 4);
		ASSERT_GE_INT(harness_query_int(conn, "SELECT count(*) FROM commit_settings"), 4);
		other = harness_query_text(conn, "SELECT coalesce(string_agg(DISTINCT setting, ','), '') FROM commit_settings");
		ASSERT_STR_EQ(other, expected[i]);
		free(other);
		PQfinish(conn);
	}
	end_case();
}

/* ---- case 23 ---------------------------------------------------------------------------- */

/*
 * A batch takes whole users: the walk locks users until their due entries fill the batch, so here
 * (50 users of 40 entries, batches of 400) each user's DNA row is written once. Were the users'
 * due entries not counted (all taken as 0), every batch would lock every candidate and take a
 * slice of each user's history: 98 DNA writes instead of 50, measured.
 */
static void case_walk_sizes_batches_by_users(void)
{
	char dsn[DSN_MAX];
	PGconn *conn;
	struct summary s;
	long long users;

	begin_case(23, "the walk sizes a batch by its users' due entries: each DNA row written about once");
	conn = open_case_database("walk", true, dsn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(50, 40)"), 2000);
	users = harness_query_int(conn, "SELECT count(DISTINCT user_id) FROM passport_entries"
					" WHERE 'mediaid' = ANY(affects_systems) OR affects_systems = '{}'");
	s = DRAIN(dsn, 400);
	ASSERT_EQ_INT(s.processed + s.failed, 2000);
	printf("DNA rows written %ld for %lld users in %ld batches\n", s.dna_rows, users, s.batches);
	ASSERT_GT_INT(s.dna_rows, 0);
	ASSERT_LE_INT(s.dna_rows, users + users / 10);
	PQfinish(conn);
	end_case();
}

int main(void)
{
	static const struct {
		int number;
		void (*run)(void);
	} cases[] = {
		{1, case_mediaid_effect},
		{2, case_coliseum_effect},
		{3, case_treasury},
		{4, case_exactly_once},
		{5, case_ordering},
		{6, case_late_entries},
		{7, case_null_embedding},
		{8, case_fan_and_artist_rows},
		{9, case_missing_rows},
		{10, case_unknown_system},
		{11, case_invalid_payloads},
		{12, case_bad_vectors},
		{13, case_batch_size_determinism},
		/* Case 14 (the summary agrees with the table) runs inside cases 3, 4, 9, 10, 11, 12, 15, 16. */
		{15, case_null_timestamp_and_user},
		{16, case_database_refuses_one_entry},
		{17, case_null_user_not_starved},
		{18, case_evolution_in_applied_order},
		{19, case_workers_determinism},
		{20, case_many_rows_in_one_batch},
		{21, case_coliseum_references},
		{22, case_synchronous_commit},
		{23, case_walk_sizes_batches_by_users},
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (wanted(cases[i].number))
			cases[i].run();
	TEST_PASS();
}
