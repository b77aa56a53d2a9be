/* test_inspect: `passportd inspect USER` against a real PostgreSQL, run as the least-privilege role. */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness.h"

/*
 * One database holds every case: users found by id and by email (auth.users and profiles), DNA
 * rows that are valid, NULL, of the wrong length, with a NaN and with a NULL element; entries in
 * every state; and dna_evolution steps inside and outside the window, late ones and one with a
 * NaN change. The expected figures are worked out here from the inserted rows.
 */

#define DSN_MAX 1024
#define ANN "11111111-1111-1111-1111-111111111111"
#define OBRIEN "22222222-2222-2222-2222-222222222222"
#define DUP_A "33333333-3333-3333-3333-333333333333"
#define DUP_B "44444444-4444-4444-4444-444444444444"
#define NAN_USER "55555555-5555-5555-5555-555555555555"
#define NULL_ELEMENT_USER "66666666-6666-6666-6666-666666666666"
#define ANN_FAN "aaaaaaaa-0000-0000-0000-000000000001"
#define ANN_ARTIST "aaaaaaaa-0000-0000-0000-000000000002"
#define BASE "'2025-01-01T00:00:00Z'::timestamptz"
#define SINCE "2024-12-12T00:00:00Z" /* BASE - 20 days */

static char dsn[DSN_MAX], role_dsn[DSN_MAX];
static char plot_dir[] = "/tmp/passport-inspect-XXXXXX";

/* The steps of ANN_FAN: days before BASE, late, and the four changes (NAN: a hostile value). */
struct step {
	int days_before;
	bool late;
	double change[4];
};
static const struct step steps[] = {
	{40, false, {1.0, 1.0, 1.0, 1.0}}, /* outside the window */
	{10, false, {0.1, 0.2, 0.3, 0.4}},
	{8, true, {0.5, 0.0, 0.0, 0.0}},
	{5, false, {0.25, 0.25, 0.25, NAN}},
	{3, true, {0.0, 0.125, 0.0, 0.5}},
	{1, false, {0.125, 0.0, 0.5, 0.25}},
};
#define N_STEPS (int)(sizeof(steps) / sizeof(steps[0]))
#define FIRST_IN_WINDOW 1

static const char *const domains[4] = {"cultural", "behavioral", "economic", "spatial"};

static void setup(PGconn *conn)
{
	harness_exec(conn,
		     "CREATE TABLE public.profiles (id uuid PRIMARY KEY, email text, full_name text);"
		     "INSERT INTO auth.users VALUES ('" ANN "', 'ann@example.com'),"
		     " ('" OBRIEN "', 'o''brien\"x@example.com'), ('" DUP_A "', 'dup@example.com'),"
		     " ('" NAN_USER "', 'nan@example.com'), ('" NULL_ELEMENT_USER "', NULL);"
		     "INSERT INTO public.profiles (id, email) VALUES ('" ANN "', 'ann@example.com'),"
		     " ('" DUP_B "', 'dup@example.com');"
		     /* ANN's fan DNA: cultural all 0.5, behavioral a 3-4-5 triangle, economic 0, spatial all 1. */
		     "INSERT INTO media_ids (id, user_uuid, role, profile_embedding) VALUES"
		     " ('" ANN_FAN "', '" ANN "', 'fan', array_fill(0.5::real, ARRAY[384])"
		     "   || ARRAY[3, 4]::real[] || array_fill(0::real, ARRAY[382 + 384]) || array_fill(1::real, ARRAY[384])),"
		     " ('" ANN_ARTIST "', '" ANN "', 'artist', NULL),"
		     " (gen_random_uuid(), '" OBRIEN "', 'fan', array_fill(0.5::real, ARRAY[1535])),"
		     " (gen_random_uuid(), '" NAN_USER "', 'fan', array_fill(0.5::real, ARRAY[1535]) || 'NaN'::real),"
		     " (gen_random_uuid(), '" NULL_ELEMENT_USER "', 'fan', array_fill(0.5::real, ARRAY[1535]) || NULL::real);"
		     /* ANN's entries, latest first: dead, retrying, due, due, processed x3. */
		     "INSERT INTO passport_entries (user_id, event_type, event_category, affects_systems, \"timestamp\","
		     " processed, processing_attempts, last_error, next_attempt_at, dead_at) VALUES"
		     " ('" ANN "', 'x.dead', 'interaction', '{bogus}', " BASE " - interval '1 hour', false, 1,"
		     "  'route: unknown system ''bogus''', NULL, now()),"
		     " ('" ANN "', 'x.retrying', 'interaction', '{treasury}', " BASE " - interval '2 hours', false, 2,"
		     "  'treasury: no ledger row yet', now() + interval '1 hour', NULL),"
		     " ('" ANN "', 'player.track_played', 'interaction', '{mediaid,coliseum}', " BASE " - interval '3 hours',"
		     "  false, 0, NULL, NULL, NULL),"
		     " ('" ANN "', 'player.track_played', 'interaction', '{}', " BASE " - interval '4 hours', false, 0,"
		     "  NULL, now() - interval '1 minute', NULL),"
		     " ('" ANN "', 'player.track_played', 'interaction', '{mediaid}', " BASE " - interval '5 hours', true, 1,"
		     "  NULL, NULL, NULL),"
		     " ('" ANN "', 'player.track_played', 'interaction', '{mediaid}', " BASE " - interval '6 hours', true, 1,"
		     "  NULL, NULL, NULL),"
		     " ('" ANN "', 'player.track_played', 'interaction', '{mediaid}', " BASE " - interval '7 hours', true, 1,"
		     "  NULL, NULL, NULL)");
	for (int i = 0; i < N_STEPS; i++) {
		char changes[4][32];

		for (int d = 0; d < 4; d++)
			snprintf(changes[d], sizeof changes[d], isnan(steps[i].change[d]) ? "'NaN'" : "%.17g",
				 steps[i].change[d]);
		harness_execf(conn,
			      "INSERT INTO dna_evolution (mediaid_id, passport_entry_id, event_type, event_time,"
			      " target_type, target_id, alpha, decay_cultural, decay_behavioral, decay_economic,"
			      " decay_spatial, delta_cultural, delta_behavioral, delta_economic, delta_spatial, late)"
			      " VALUES ('" ANN_FAN "', gen_random_uuid(), 'player.track_played', " BASE " - interval '%d days',"
			      " 'track', gen_random_uuid(), 0.05, 0.99, 0.98, 0.97, 0.96, %s, %s, %s, %s, %s)",
			      steps[i].days_before, changes[0], changes[1], changes[2], changes[3],
			      steps[i].late ? "true" : "false");
	}
}

/*
 * Run `passportd inspect` as role passportd with the given arguments (NULL-terminated); return
 * its exit status, and its output in *output (stdout after any stderr lines, as they are written).
 */
static int run_inspect(char **output, ...)
{
	const char *argv[24] = {harness_passportd(), "inspect", "--dsn", role_dsn};
	int argc = 4;
	va_list ap;

	va_start(ap, output);
	for (const char *arg; (arg = va_arg(ap, const char *)) != NULL && argc < 23;)
		argv[argc++] = arg;
	va_end(ap);
	argv[argc] = NULL;
	return harness_run(argv, NULL, output);
}

/* The JSON object in the output (stdout is flushed at exit, after any message on stderr). */
static cJSON *parse_report(const char *output)
{
	const char *start = output[0] == '{' ? output : strstr(output, "\n{");
	cJSON *report;

	if (!start)
		FAIL("no JSON object in:\n%s", output);
	report = cJSON_Parse(start);
	if (!report)
		FAIL("the JSON does not parse:\n%s", start);
	return report;
}

static const cJSON *at(const cJSON *object, const char *path)
{
	char key[64];
	const char *dot;

	while ((dot = strchr(path, '.')) != NULL) {
		snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
		object = key[0] >= '0' && key[0] <= '9' ? cJSON_GetArrayItem(object, atoi(key))
							: cJSON_GetObjectItem(object, key);
		path = dot + 1;
	}
	object = path[0] >= '0' && path[0] <= '9' ? cJSON_GetArrayItem(object, atoi(path)) : cJSON_GetObjectItem(object, path);
	if (!object)
		FAIL("the report has no %s", path);
	return object;
}

static double number_at(const cJSON *object, const char *path)
{
	const cJSON *item = at(object, path);
	if (!cJSON_IsNumber(item))
		FAIL("%s is not a number", path);
	return item->valuedouble;
}

static const char *text_at(const cJSON *object, const char *path)
{
	const char *text = cJSON_GetStringValue(at(object, path));
	if (!text)
		FAIL("%s is not a string", path);
	return text;
}

static unsigned char *read_bytes(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data = malloc(1 << 22);

	if (!f || !data)
		FAIL("cannot read %s", path);
	*size = fread(data, 1, (1 << 22) - 1, f);
	data[*size] = 0;
	fclose(f);
	return data;
}

static unsigned long big_endian_32(const unsigned char *p)
{
	return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

/* The file is a PNG of 960 x 540: its signature, then IHDR with the size. */
static void check_png(const char *path)
{
	static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	size_t size;
	unsigned char *data = read_bytes(path, &size);

	ASSERT_GT_INT(size, 100);
	ASSERT_TRUE(memcmp(data, signature, 8) == 0);
	ASSERT_TRUE(memcmp(data + 12, "IHDR", 4) == 0);
	ASSERT_EQ_INT(big_endian_32(data + 16), 960);
	ASSERT_EQ_INT(big_endian_32(data + 20), 540);
	ASSERT_TRUE(memcmp(data + size - 8, "IEND", 4) == 0);
	free(data);
}

/* The file is an SVG document of 960 x 540 px with the drawn paths. */
static void check_svg(const char *path)
{
	size_t size;
	char *data = (char *)read_bytes(path, &size);

	ASSERT_TRUE(strncmp(data, "<?xml", 5) == 0);
	ASSERT_STR_CONTAINS(data, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
	ASSERT_STR_CONTAINS(data, "width=\"960px\" height=\"540px\"");
	ASSERT_STR_CONTAINS(data, "<path");
	ASSERT_STR_CONTAINS(data, "</svg>");
	free(data);
}

/* Seconds since the epoch of BASE - days, as the server computes it. */
static double step_time(PGconn *conn, int days_before)
{
	char *text = harness_textf(conn, "SELECT extract(epoch FROM " BASE " - interval '%d days')", days_before);
	double t = strtod(text, NULL);

	free(text);
	return t;
}

static void test_report(PGconn *conn)
{
	char png[256], *output = NULL;
	cJSON *report;
	const cJSON *fan, *artist, *plot;
	double sums[4] = {0}, plotted[4] = {0}, max_step[4] = {0};
	int late = 0;

	snprintf(png, sizeof png, "%s/ann.png", plot_dir);
	ASSERT_EQ_INT(run_inspect(&output, "ann@example.com", "--json", "--limit", "3", "--since", SINCE, "--plot", png,
				  NULL), 0);
	report = parse_report(output);
	ASSERT_EQ_INT(number_at(report, "inspect_version"), 1);
	ASSERT_STR_EQ(text_at(report, "user_id"), ANN);
	ASSERT_EQ_INT(cJSON_GetArraySize(at(report, "matches")), 2); /* auth.users and profiles */
	ASSERT_STR_EQ(text_at(report, "since"), "2024-12-12T00:00:00.000000Z");
	ASSERT_STR_EQ(text_at(report, "vector_type"), "real[]");

	/* The DNA rows, fan first: norms of the valid one, NULL for the other. */
	ASSERT_EQ_INT(cJSON_GetArraySize(at(report, "media_ids")), 2);
	fan = at(report, "media_ids.0");
	artist = at(report, "media_ids.1");
	ASSERT_STR_EQ(text_at(fan, "id"), ANN_FAN);
	ASSERT_STR_EQ(text_at(fan, "role"), "fan");
	ASSERT_EQ_INT(number_at(fan, "version"), 1);
	ASSERT_STR_EQ(text_at(fan, "dna.state"), "ok");
	ASSERT_EQ_DBL(number_at(fan, "dna.norms.cultural"), 0.5 * sqrt(384.0), 1e-9);
	ASSERT_EQ_DBL(number_at(fan, "dna.norms.behavioral"), 5.0, 1e-12);
	ASSERT_EQ_DBL(number_at(fan, "dna.norms.economic"), 0.0, 0);
	ASSERT_EQ_DBL(number_at(fan, "dna.norms.spatial"), sqrt(384.0), 1e-9);
	ASSERT_STR_EQ(text_at(artist, "role"), "artist");
	ASSERT_STR_EQ(text_at(artist, "dna.state"), "null");
	ASSERT_TRUE(cJSON_IsNull(at(artist, "dna.norms")));

	/* Entries: counts by state and the latest three. */
	ASSERT_EQ_INT(number_at(report, "entries.counts.due"), 2);
	ASSERT_EQ_INT(number_at(report, "entries.counts.retrying"), 1);
	ASSERT_EQ_INT(number_at(report, "entries.counts.dead"), 1);
	ASSERT_EQ_INT(number_at(report, "entries.counts.processed"), 3);
	ASSERT_EQ_INT(number_at(report, "entries.counts.total"), 7);
	ASSERT_EQ_INT(cJSON_GetArraySize(at(report, "entries.latest")), 3);
	ASSERT_STR_EQ(text_at(report, "entries.latest.0.state"), "dead");
	ASSERT_STR_EQ(text_at(report, "entries.latest.0.event_type"), "x.dead");
	ASSERT_STR_EQ(text_at(report, "entries.latest.0.timestamp"), "2024-12-31T23:00:00.000000Z");
	ASSERT_STR_CONTAINS(text_at(report, "entries.latest.0.last_error"), "unknown system 'bogus'");
	ASSERT_STR_EQ(text_at(report, "entries.latest.0.systems.0"), "bogus");
	ASSERT_STR_EQ(text_at(report, "entries.latest.1.state"), "retrying");
	ASSERT_EQ_INT(number_at(report, "entries.latest.1.attempts"), 2);
	ASSERT_STR_EQ(text_at(report, "entries.latest.2.state"), "due");
	ASSERT_STR_EQ(text_at(report, "entries.latest.2.systems.1"), "coliseum");

	/* Evolution: the latest three steps, latest first, with their factors. */
	ASSERT_EQ_INT(cJSON_GetArraySize(at(fan, "evolution")), 3);
	ASSERT_STR_EQ(text_at(fan, "evolution.0.event_time"), "2024-12-31T00:00:00.000000Z");
	ASSERT_TRUE(cJSON_IsFalse(at(fan, "evolution.0.late")));
	ASSERT_TRUE(cJSON_IsTrue(at(fan, "evolution.1.late")));
	ASSERT_EQ_DBL(number_at(fan, "evolution.1.change.spatial"), 0.5, 0);
	ASSERT_EQ_DBL(number_at(fan, "evolution.1.decay.economic"), 0.97, 0); /* real as PostgreSQL prints it */
	ASSERT_TRUE(cJSON_IsNull(at(fan, "evolution.2.change.spatial"))); /* the NaN */
	ASSERT_STR_EQ(text_at(fan, "evolution.2.target_type"), "track");
	ASSERT_EQ_INT(cJSON_GetArraySize(at(artist, "evolution")), 0);

	/* Drift and the plot both come from the steps inside the window. */
	for (int i = FIRST_IN_WINDOW; i < N_STEPS; i++) {
		late += steps[i].late;
		for (int d = 0; d < 4; d++) {
			double change = (double)(float)steps[i].change[d];
			sums[d] += change;
			if (!isnan(change)) {
				plotted[d] += change;
				if (change > max_step[d])
					max_step[d] = change;
			}
		}
	}
	ASSERT_EQ_INT(number_at(fan, "drift.steps"), N_STEPS - FIRST_IN_WINDOW);
	ASSERT_EQ_INT(number_at(fan, "drift.late_steps"), late);
	ASSERT_TRUE(cJSON_IsTrue(at(fan, "drift.complete")));
	for (int d = 0; d < 3; d++)
		ASSERT_EQ_DBL(number_at(at(fan, "drift.change"), domains[d]), sums[d], 1e-12);
	ASSERT_TRUE(cJSON_IsNull(at(fan, "drift.change.spatial"))); /* a NaN step makes the sum unknown */
	ASSERT_EQ_INT(number_at(artist, "drift.steps"), 0);

	plot = at(report, "plot");
	ASSERT_STR_EQ(text_at(plot, "file"), png);
	ASSERT_STR_EQ(text_at(plot, "format"), "png");
	ASSERT_STR_EQ(text_at(plot, "media_id"), ANN_FAN);
	ASSERT_EQ_INT(number_at(plot, "width"), 960);
	ASSERT_EQ_INT(number_at(plot, "height"), 540);
	ASSERT_EQ_INT(number_at(plot, "points"), N_STEPS - FIRST_IN_WINDOW);
	ASSERT_EQ_INT(number_at(plot, "late_points"), late);
	ASSERT_EQ_INT(number_at(plot, "nonfinite_values"), 1);
	ASSERT_EQ_DBL(number_at(plot, "first_time"), step_time(conn, steps[FIRST_IN_WINDOW].days_before), 1e-6);
	ASSERT_EQ_DBL(number_at(plot, "last_time"), step_time(conn, steps[N_STEPS - 1].days_before), 1e-6);
	for (int d = 0; d < 4; d++) {
		const cJSON *line = at(at(plot, "series"), domains[d]);
		ASSERT_EQ_DBL(number_at(line, "total"), plotted[d], 1e-12);
		ASSERT_EQ_DBL(number_at(line, "max_step"), max_step[d], 0);
	}
	ASSERT_TRUE(number_at(plot, "y_max") >= plotted[3]);
	check_png(png);
	cJSON_Delete(report);
	free(output);
}

/* Text output and an SVG plot; --role picks the plotted row. */
static void test_text_and_svg(void)
{
	char svg[256], *output = NULL;

	snprintf(svg, sizeof svg, "%s/ann.svg", plot_dir);
	ASSERT_EQ_INT(run_inspect(&output, ANN, "--since", SINCE, "--plot", svg, NULL), 0);
	ASSERT_STR_CONTAINS(output, "user " ANN);
	ASSERT_STR_CONTAINS(output, "ann@example.com  (auth.users)");
	ASSERT_STR_CONTAINS(output, "DNA norms: cultural 9.798  behavioral 5  economic 0  spatial 19.6");
	ASSERT_STR_CONTAINS(output, "DNA: NULL");
	ASSERT_STR_CONTAINS(output, "entries: 2 due, 1 retrying, 1 dead, 3 processed, 7 in all");
	ASSERT_STR_CONTAINS(output, "last error: route: unknown system 'bogus'");
	ASSERT_STR_CONTAINS(output, "5 steps (2 late)");
	ASSERT_STR_CONTAINS(output, "LATE");
	ASSERT_STR_CONTAINS(output, "plot: ");
	check_svg(svg);
	free(output);

	/* The artist row has no steps: still a valid image, with no points. */
	ASSERT_EQ_INT(run_inspect(&output, ANN, "--json", "--role", "artist", "--plot", svg, NULL), 0);
	{
		cJSON *report = parse_report(output);
		ASSERT_STR_EQ(text_at(report, "plot.media_id"), ANN_ARTIST);
		ASSERT_EQ_INT(number_at(report, "plot.points"), 0);
		ASSERT_TRUE(cJSON_IsNull(at(report, "plot.first_time")));
		cJSON_Delete(report);
	}
	check_svg(svg);
	free(output);

	ASSERT_EQ_INT(run_inspect(&output, ANN, "--role", "brand", "--plot", svg, NULL), 1);
	ASSERT_STR_CONTAINS(output, "no DNA row with role 'brand'");
	free(output);
}

/* Hostile input and data: clear messages, parameters only, invalid vectors explained. */
static void test_hostile(PGconn *conn)
{
	char *output = NULL;
	cJSON *report;

	ASSERT_EQ_INT(run_inspect(&output, "not-a-uuid", NULL), 1);
	ASSERT_STR_CONTAINS(output, "'not-a-uuid' is neither a user id (UUID) nor an email");
	free(output);
	ASSERT_EQ_INT(run_inspect(&output, "1111111-1111-1111-1111-111111111111'; DROP TABLE media_ids; --", NULL), 1);
	ASSERT_STR_CONTAINS(output, "neither a user id");
	free(output);
	ASSERT_EQ_INT(run_inspect(&output, "x'); DROP TABLE passport_entries; --@example.com", NULL), 3);
	ASSERT_STR_CONTAINS(output, "no user has the email");
	free(output);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 7);

	/* An email with quotes finds its user; a DNA of the wrong length is invalid, with the reason. */
	ASSERT_EQ_INT(run_inspect(&output, "o'brien\"x@example.com", "--json", NULL), 0);
	report = parse_report(output);
	ASSERT_STR_EQ(text_at(report, "user_id"), OBRIEN);
	ASSERT_STR_EQ(text_at(report, "media_ids.0.dna.state"), "invalid");
	ASSERT_STR_CONTAINS(text_at(report, "media_ids.0.dna.reason"), "length 1535, expected 1536");
	ASSERT_TRUE(cJSON_IsNull(at(report, "media_ids.0.dna.norms")));
	ASSERT_EQ_INT(number_at(report, "entries.counts.total"), 0);
	cJSON_Delete(report);
	free(output);

	ASSERT_EQ_INT(run_inspect(&output, NAN_USER, "--json", NULL), 0);
	report = parse_report(output);
	ASSERT_STR_EQ(text_at(report, "media_ids.0.dna.state"), "invalid");
	ASSERT_STR_CONTAINS(text_at(report, "media_ids.0.dna.reason"), "non-finite element at index 1535");
	cJSON_Delete(report);
	free(output);

	/* An upper-case id is the same user; a NULL element is invalid, with its index. */
	ASSERT_EQ_INT(run_inspect(&output, "66666666-6666-6666-6666-666666666666", "--json", NULL), 0);
	report = parse_report(output);
	ASSERT_STR_CONTAINS(text_at(report, "media_ids.0.dna.reason"), "NULL element at index 1535");
	cJSON_Delete(report);
	free(output);

	/* Several users share an email: listed, not guessed (exit 3). */
	ASSERT_EQ_INT(run_inspect(&output, "dup@example.com", "--json", NULL), 3);
	report = parse_report(output);
	ASSERT_TRUE(cJSON_IsNull(at(report, "user_id")));
	ASSERT_EQ_INT(cJSON_GetArraySize(at(report, "matches")), 2);
	ASSERT_STR_EQ(text_at(report, "matches.0.user_id"), DUP_A);
	ASSERT_STR_EQ(text_at(report, "matches.0.source"), "auth.users");
	ASSERT_STR_EQ(text_at(report, "matches.1.user_id"), DUP_B);
	ASSERT_STR_EQ(text_at(report, "matches.1.source"), "profiles");
	ASSERT_FALSE(cJSON_HasObjectItem(report, "media_ids"));
	cJSON_Delete(report);
	free(output);
	ASSERT_EQ_INT(run_inspect(&output, "dup@example.com", NULL), 3);
	ASSERT_STR_CONTAINS(output, "several users match 'dup@example.com'");
	ASSERT_STR_CONTAINS(output, DUP_B "  dup@example.com  (profiles)");
	free(output);

	ASSERT_EQ_INT(run_inspect(&output, ANN, "--limit", "5000", NULL), 1);
	ASSERT_STR_CONTAINS(output, "--limit must be between 1 and 1000");
	free(output);
	ASSERT_EQ_INT(run_inspect(&output, ANN, "--since", "yesterday-ish", NULL), 1);
	ASSERT_STR_CONTAINS(output, "--since: ");
	free(output);
	ASSERT_EQ_INT(run_inspect(&output, ANN, "--plot", "dna.jpg", NULL), 1);
	ASSERT_STR_CONTAINS(output, "must end in .svg or .png");
	free(output);
}

/*
 * Before the email tables are granted: an id works (emails are only shown), an email says which
 * grant is missing.
 */
static void test_privileges(void)
{
	char *output = NULL;

	ASSERT_EQ_INT(run_inspect(&output, ANN, "--json", NULL), 0);
	free(output);
	ASSERT_EQ_INT(run_inspect(&output, "ann@example.com", NULL), 1);
	ASSERT_STR_CONTAINS(output, "auth.users is not readable by this role");
	ASSERT_STR_CONTAINS(output, "GRANT SELECT (id, email) ON auth.users");
	ASSERT_STR_CONTAINS(output, "give the user id instead");
	free(output);
}

/*
 * Inspect waits for nothing the daemon holds: the user's entries and DNA rows locked FOR UPDATE
 * and the user's advisory lock, as a batch holds them. It does not wait for them either (a wait
 * would end in lock_timeout and exit 1).
 */
static void test_no_waits(void)
{
	PGconn *holder = harness_connect(dsn);
	char *output = NULL;

	harness_exec(holder, "BEGIN;"
			     "SELECT 1 FROM passport_entries WHERE user_id = '" ANN "' FOR UPDATE;"
			     "SELECT 1 FROM media_ids WHERE user_uuid = '" ANN "' FOR UPDATE;"
			     "SELECT pg_advisory_xact_lock(1346458451, hashtext('" ANN "'));"
			     "LOCK TABLE dna_evolution IN SHARE ROW EXCLUSIVE MODE");
	ASSERT_EQ_INT(run_inspect(&output, ANN, "--json", "--plot", "/nonexistent-dir/dna.png", NULL), 1); /* unwritable plot */
	ASSERT_STR_CONTAINS(output, "cannot write the plot");
	ASSERT_STR_CONTAINS(output, "\"user_id\":\t\"" ANN "\"");
	free(output);
	ASSERT_EQ_INT(run_inspect(&output, ANN, NULL), 0);
	free(output);
	harness_exec(holder, "ROLLBACK");
	PQfinish(holder);
}

static void remove_plots(void)
{
	char path[256];

	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/ann.%s", plot_dir, i ? "svg" : "png");
		unlink(path);
	}
	rmdir(plot_dir);
}

int main(void)
{
	PGconn *conn = harness_create_database("inspect", NULL, dsn, sizeof dsn);

	harness_role_dsn(dsn, "passportd", role_dsn, sizeof role_dsn);
	if (!mkdtemp(plot_dir))
		FAIL("mkdtemp failed");
	atexit(remove_plots);
	setup(conn);

	test_privileges();
	/* What the README tells an administrator to grant for lookups by email. */
	harness_exec(conn, "GRANT USAGE ON SCHEMA auth TO passportd;"
			   "GRANT SELECT (id, email) ON auth.users TO passportd;"
			   "GRANT SELECT (id, email) ON public.profiles TO passportd");
	test_report(conn);
	test_text_and_svg();
	test_hostile(conn);
	test_no_waits();
	PQfinish(conn);
	TEST_PASS();
}
