/* test_backfill: `passport-migrate backfill` and `verify` against the real PostgreSQL 15 server. */
#include "integration/harness.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 24

/* Users and media rows of the mapping tests (fixed ids keep failures readable). */
#define USER_ONE_ROW "aaaaaaaa-0000-0000-0000-000000000001"   /* one fan row */
#define USER_FAN_ARTIST "aaaaaaaa-0000-0000-0000-000000000002" /* fan + artist rows: the fan row */
#define USER_NO_FAN "aaaaaaaa-0000-0000-0000-000000000003"     /* artist + brand rows: ambiguous */
#define USER_NO_ROW "aaaaaaaa-0000-0000-0000-000000000004"     /* no media_ids row */
#define MEDIA_ONE_ROW "bbbbbbbb-0000-0000-0000-000000000001"
#define MEDIA_FAN "bbbbbbbb-0000-0000-0000-000000000002"
#define CONTENT "cccccccc-0000-0000-0000-000000000001"
#define SESSION "dddddddd-0000-0000-0000-000000000001"

/* Run passport-migrate with the arguments (NULL-terminated); returns the exit status. */
static int migrate(char **output, ...)
{
	const char *argv[MAX_ARGS];
	int argc = 0;
	va_list args;
	const char *arg;

	argv[argc++] = harness_migrate();
	va_start(args, output);
	while ((arg = va_arg(args, const char *)) != NULL) {
		ASSERT_TRUE(argc < MAX_ARGS - 1);
		argv[argc++] = arg;
	}
	va_end(args);
	argv[argc] = NULL;
	return harness_run(argv, NULL, output);
}

/* The one-line JSON object of a --json run (the output also holds stderr's log lines). */
static cJSON *parse_json_output(const char *output, const char *command)
{
	char prefix[64];
	const char *line;
	cJSON *json;

	snprintf(prefix, sizeof prefix, "{\"command\":\"%s\"", command);
	line = strstr(output, prefix);
	if (!line)
		FAIL("no JSON summary in output:\n%s", output);
	json = cJSON_ParseWithOpts(line, NULL, 0);
	if (!json)
		FAIL("unparsable JSON summary:\n%s", line);
	return json;
}

static cJSON *source_of(cJSON *summary, const char *source)
{
	cJSON *item;

	cJSON_ArrayForEach(item, cJSON_GetObjectItem(summary, "sources"))
	{
		cJSON *name = cJSON_GetObjectItem(item, "source");
		if (cJSON_IsString(name) && strcmp(name->valuestring, source) == 0)
			return item;
	}
	FAIL("no source %s in the summary", source);
}

static long long number_of(cJSON *object, const char *key)
{
	cJSON *item = cJSON_GetObjectItem(object, key);

	if (!cJSON_IsNumber(item))
		FAIL("summary has no number \"%s\"", key);
	return (long long)item->valuedouble;
}

static const char *string_of(cJSON *object, const char *key)
{
	cJSON *item = cJSON_GetObjectItem(object, key);

	if (!cJSON_IsString(item))
		FAIL("summary has no string \"%s\"", key);
	return item->valuestring;
}

/* The count of unmapped legacy type legacy_type in a source's summary (0 when not listed). */
static long long unmapped_count(cJSON *source, const char *legacy_type, const char *event_type)
{
	cJSON *item;

	cJSON_ArrayForEach(item, cJSON_GetObjectItem(source, "unmapped"))
	{
		if (strcmp(string_of(item, "legacy_event_type"), legacy_type) == 0) {
			ASSERT_STR_EQ(string_of(item, "event_type"), event_type);
			return number_of(item, "count");
		}
	}
	return 0;
}

static long long query_int(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long query_int(PGconn *conn, const char *fmt, ...)
{
	char sql[4096];
	va_list args;

	va_start(args, fmt);
	vsnprintf(sql, sizeof sql, fmt, args);
	va_end(args);
	return harness_query_int(conn, sql);
}

static char *query_text(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *query_text(PGconn *conn, const char *fmt, ...)
{
	char sql[4096];
	va_list args;

	va_start(args, fmt);
	vsnprintf(sql, sizeof sql, fmt, args);
	va_end(args);
	return harness_query_text(conn, sql);
}

static char *read_source_file(const char *relative)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char path[4096];

	ASSERT_TRUE(root != NULL);
	snprintf(path, sizeof path, "%s/%s", root, relative);
	return harness_read_file(path);
}

/* The generator of tests/sql/legacy_sample.sql, with both legacy tables emptied of its demo rows. */
static void load_legacy_generator(PGconn *conn)
{
	char *sql = read_source_file("tests/sql/legacy_sample.sql");

	harness_exec(conn, "SET client_min_messages = warning");
	harness_exec(conn, sql);
	free(sql);
	if (harness_query_int(conn, "SELECT (to_regclass('media_engagement_log') IS NOT NULL)::int"))
		harness_exec(conn, "TRUNCATE listening_history, media_engagement_log");
	else
		harness_exec(conn, "TRUNCATE listening_history");
}

static double now_seconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
	struct timespec step = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&step, NULL);
}

/* Start passport-migrate in the background with its output in path. */
static pid_t spawn_migrate(const char *path, const char *const args[])
{
	const char *argv[MAX_ARGS];
	int argc = 0;
	pid_t pid;

	argv[argc++] = harness_migrate();
	for (size_t i = 0; args[i]; i++) {
		ASSERT_TRUE(argc < MAX_ARGS - 1);
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_TRUE(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* The users and media rows of the mapping tests. */
static void create_users(PGconn *conn)
{
	harness_exec(conn,
		     "INSERT INTO media_ids (id, user_uuid, role) VALUES"
		     " ('" MEDIA_ONE_ROW "', '" USER_ONE_ROW "', 'fan'),"
		     " ('" MEDIA_FAN "', '" USER_FAN_ARTIST "', 'fan'),"
		     " ('bbbbbbbb-0000-0000-0000-000000000003', '" USER_FAN_ARTIST "', 'artist'),"
		     " ('bbbbbbbb-0000-0000-0000-000000000004', '" USER_NO_FAN "', 'artist'),"
		     " ('bbbbbbbb-0000-0000-0000-000000000005', '" USER_NO_FAN "', 'brand')");
}

/* What one legacy row must become. */
struct expected_entry {
	const char *legacy_id;
	const char *event_type;
	const char *category;
	const char *systems; /* text form of affects_systems */
	const char *mediaid; /* NULL when it must be NULL */
	const char *user;    /* NULL for an anonymous entry */
};

static void check_entries(PGconn *conn, const char *source, const struct expected_entry *expected, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		const struct expected_entry *e = &expected[i];
		char *got = query_text(conn,
				       "SELECT event_type || '|' || event_category || '|' || affects_systems::text"
				       "       || '|' || coalesce(mediaid_id::text, '-') || '|' || coalesce(user_id::text, '-')"
				       "       || '|' || source || '|' || processed::text || '|' || (processed_at IS NULL)::text"
				       "  FROM passport_entries WHERE legacy_source = '%s' AND legacy_id = '%s'",
				       source, e->legacy_id);
		char want[512];

		snprintf(want, sizeof want, "%s|%s|%s|%s|%s|backfill|false|true", e->event_type, e->category,
			 e->systems, e->mediaid ? e->mediaid : "-", e->user ? e->user : "-");
		if (!got)
			FAIL("%s %s was not backfilled", source, e->legacy_id);
		if (strcmp(got, want) != 0)
			FAIL("%s %s: got %s, want %s", source, e->legacy_id, got, want);
		free(got);
	}
}

#define LH(n) "10000000-0000-0000-0000-0000000000" #n
#define MEL(n) "20000000-0000-0000-0000-0000000000" #n

/*
 * Every mapping rule of SPEC §6 on the canonical layout, then idempotence (a re-run inserts
 * nothing) and verify catching a deleted backfilled row.
 */
static void test_mapping_canonical(void)
{
	static const struct expected_entry history[] = {
		{LH(01), "player.track_played", "interaction", "{mediaid,coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{LH(02), "player.track_completed", "interaction", "{mediaid,coliseum}", MEDIA_FAN, USER_FAN_ARTIST},
		{LH(03), "player.track_skipped", "interaction", "{mediaid,coliseum}", NULL, USER_NO_FAN},
		{LH(04), "player.track_paused", "interaction", "{coliseum}", NULL, USER_NO_ROW},
		{LH(05), "player.track_resumed", "interaction", "{coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{LH(06), "player.queue_updated", "interaction", "{coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{LH(07), "player.queue_updated", "interaction", "{coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{LH(08), "player.track_downloaded", "interaction", "{coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{LH(09), "player.track_favorited", "interaction", "{mediaid,coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{LH(10), "player.track_rewound", "interaction", "{}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{LH(11), "legacy.unknown", "interaction", "{}", MEDIA_ONE_ROW, USER_ONE_ROW},
	};
	static const struct expected_entry engagement[] = {
		{MEL(01), "player.track_played", "interaction", "{mediaid,coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(02), "player.track_completed", "interaction", "{mediaid,coliseum}", MEDIA_FAN, USER_FAN_ARTIST},
		{MEL(03), "player.track_skipped", "interaction", "{mediaid,coliseum}", NULL, USER_NO_FAN},
		{MEL(04), "player.track_paused", "interaction", "{coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(05), "social.content_liked", "social", "{mediaid,coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(06), "social.content_shared", "social", "{coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(07), "legacy.content_add", "interaction", "{}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(08), "player.track_played", "interaction", "{coliseum}", NULL, NULL},
		{MEL(09), "social.content_liked", "social", "{coliseum}", NULL, NULL},
		{MEL(10), "legacy.download", "interaction", "{}", NULL, USER_NO_ROW},
		{MEL(11), "legacy.playlist_add", "interaction", "{}", MEDIA_ONE_ROW, USER_ONE_ROW},
	};
	char dsn[1024];
	char *out = NULL;
	PGconn *conn = harness_create_database("backfill_mapping", "canonical", dsn, sizeof dsn);
	cJSON *summary, *source;

	create_users(conn);
	harness_exec(conn,
		     "INSERT INTO listening_history (id, user_id, content_id, content_title, content_artist, event_type,"
		     "                               play_duration_seconds, progress_percentage, session_id,"
		     "                               device_type, created_at) VALUES"
		     " ('" LH(01) "', '" USER_ONE_ROW "', '" CONTENT "', 'Song', 'Band', 'played', 120, 50.5,"
		     "  '" SESSION "', 'ios', '2025-02-01 10:00:00+00'),"
		     " ('" LH(02) "', '" USER_FAN_ARTIST "', '" CONTENT "', 'Song', 'Band', 'completed', 200, 100, NULL, NULL, '2025-02-02 10:00+00'),"
		     " ('" LH(03) "', '" USER_NO_FAN "', '" CONTENT "', 'Song', 'Band', 'skipped', 3, 1, NULL, NULL, '2025-02-03 10:00+00'),"
		     " ('" LH(04) "', '" USER_NO_ROW "', '" CONTENT "', 'Song', 'Band', 'paused', 30, 15, NULL, NULL, '2025-02-04 10:00+00'),"
		     " ('" LH(05) "', '" USER_ONE_ROW "', '" CONTENT "', 'Song', 'Band', 'resumed', 31, 16, NULL, NULL, '2025-02-05 10:00+00'),"
		     " ('" LH(06) "', '" USER_ONE_ROW "', '" CONTENT "', 'Song', 'Band', 'added', NULL, NULL, NULL, NULL, '2025-02-06 10:00+00'),"
		     " ('" LH(07) "', '" USER_ONE_ROW "', '" CONTENT "', 'Song', 'Band', 'added_to_queue', NULL, NULL, NULL, NULL, '2025-02-07 10:00+00'),"
		     " ('" LH(08) "', '" USER_ONE_ROW "', '" CONTENT "', 'Song', 'Band', 'downloaded', NULL, NULL, NULL, NULL, '2025-02-08 10:00+00'),"
		     " ('" LH(09) "', '" USER_ONE_ROW "', '" CONTENT "', 'Song', 'Band', 'favorited', NULL, NULL, NULL, NULL, '2025-02-09 10:00+00'),"
		     " ('" LH(10) "', '" USER_ONE_ROW "', '" CONTENT "', 'Song', 'Band', 'rewound', NULL, NULL, NULL, NULL, '2025-02-10 10:00+00'),"
		     " ('" LH(11) "', '" USER_ONE_ROW "', '" CONTENT "', 'Song', 'Band', NULL, NULL, NULL, NULL, NULL, '2025-02-11 10:00+00')");
	harness_exec(conn,
		     "INSERT INTO media_engagement_log (id, user_id, content_id, external_content_id, event_type,"
		     "                                  metadata, \"timestamp\", is_anonymous, session_id, created_at) VALUES"
		     " ('" MEL(01) "', '" USER_ONE_ROW "', '" CONTENT "', 'ext-1', 'track_play', '{\"k\": 1}',"
		     "  '2025-03-01 12:00:00+00', false, '" SESSION "', '2025-03-05 00:00+00'),"
		     " ('" MEL(02) "', '" USER_FAN_ARTIST "', NULL, NULL, 'track_complete', NULL, '2025-03-02 12:00+00', false, NULL, now()),"
		     " ('" MEL(03) "', '" USER_NO_FAN "', NULL, NULL, 'track_skip', NULL, '2025-03-03 12:00+00', false, NULL, now()),"
		     " ('" MEL(04) "', '" USER_ONE_ROW "', NULL, NULL, 'track_pause', NULL, '2025-03-04 12:00+00', false, NULL, now()),"
		     " ('" MEL(05) "', '" USER_ONE_ROW "', NULL, NULL, 'content_like', NULL, '2025-03-05 12:00+00', false, NULL, now()),"
		     " ('" MEL(06) "', '" USER_ONE_ROW "', NULL, NULL, 'share', NULL, '2025-03-06 12:00+00', false, NULL, now()),"
		     " ('" MEL(07) "', '" USER_ONE_ROW "', NULL, NULL, 'content_add', NULL, '2025-03-07 12:00+00', false, NULL, now()),"
		     " ('" MEL(08) "', NULL, '" CONTENT "', NULL, 'track_play', NULL, '2025-03-08 12:00+00', true, NULL, now()),"
		     " ('" MEL(09) "', NULL, NULL, NULL, 'content_like', NULL, '2025-03-09 12:00+00', true, NULL, now()),"
		     " ('" MEL(10) "', '" USER_NO_ROW "', NULL, NULL, 'download', NULL, '2025-03-10 12:00+00', false, NULL, now()),"
		     " ('" MEL(11) "', '" USER_ONE_ROW "', NULL, NULL, 'playlist_add', NULL, '2025-03-11 12:00+00', false, NULL, now())");

	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--json", NULL), 0);
	summary = parse_json_output(out, "backfill");
	ASSERT_STR_EQ(string_of(summary, "status"), "complete");
	ASSERT_EQ_INT(number_of(summary, "inserted"), 22);
	ASSERT_EQ_INT(number_of(summary, "already_present"), 0);
	ASSERT_EQ_INT(number_of(summary, "anonymous"), 2);
	source = source_of(summary, "listening_history");
	ASSERT_EQ_INT(number_of(source, "inserted"), 11);
	ASSERT_EQ_INT(number_of(source, "anonymous"), 0);
	ASSERT_EQ_INT(unmapped_count(source, "favorited", "player.track_favorited"), 1);
	ASSERT_EQ_INT(unmapped_count(source, "rewound", "player.track_rewound"), 1);
	ASSERT_EQ_INT(unmapped_count(source, "", "legacy.unknown"), 1);
	ASSERT_EQ_INT(unmapped_count(source, "played", ""), 0);
	source = source_of(summary, "media_engagement_log");
	ASSERT_STR_EQ(string_of(source, "layout"), "canonical");
	ASSERT_EQ_INT(number_of(source, "inserted"), 11);
	ASSERT_EQ_INT(number_of(source, "anonymous"), 2);
	ASSERT_EQ_INT(unmapped_count(source, "content_add", "legacy.content_add"), 1);
	ASSERT_EQ_INT(unmapped_count(source, "download", "legacy.download"), 1);
	ASSERT_EQ_INT(unmapped_count(source, "playlist_add", "legacy.playlist_add"), 1);
	ASSERT_EQ_INT(number_of(summary, "unmapped"), 6);
	cJSON_Delete(summary);
	free(out);

	check_entries(conn, "listening_history", history, sizeof history / sizeof history[0]);
	check_entries(conn, "media_engagement_log", engagement, sizeof engagement / sizeof engagement[0]);

	/* Payloads: the seed's keys and legacy_event_type, nothing else; time and session columns. */
	ASSERT_EQ_INT(harness_query_int(conn,
					"SELECT (payload = jsonb_build_object('content_id', '" CONTENT "',"
					" 'content_title', 'Song', 'content_artist', 'Band', 'play_duration_seconds', 120,"
					" 'progress_percentage', 50.5, 'session_id', '" SESSION "',"
					" 'legacy_event_type', 'played'))::int"
					"  FROM passport_entries WHERE legacy_id = '" LH(01) "'"),
		      1);
	ASSERT_EQ_INT(harness_query_int(conn,
					"SELECT (\"timestamp\" = '2025-02-01 10:00:00+00' AND session_id = '" SESSION "')::int"
					"  FROM passport_entries WHERE legacy_id = '" LH(01) "'"),
		      1);
	ASSERT_EQ_INT(harness_query_int(conn,
					"SELECT (payload = jsonb_build_object('content_id', '" CONTENT "',"
					" 'external_content_id', 'ext-1', 'metadata', '{\"k\": 1}'::jsonb,"
					" 'session_id', '" SESSION "', 'legacy_event_type', 'track_play'))::int"
					"  FROM passport_entries WHERE legacy_id = '" MEL(01) "'"),
		      1);
	/* "timestamp", not created_at, is the event time of media_engagement_log. */
	ASSERT_EQ_INT(harness_query_int(conn,
					"SELECT (\"timestamp\" = '2025-03-01 12:00:00+00' AND session_id = '" SESSION "')::int"
					"  FROM passport_entries WHERE legacy_id = '" MEL(01) "'"),
		      1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE payload ? 'user_agent'"
					     " OR payload ? 'ip_address' OR NOT payload ? 'legacy_event_type'"),
		      0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE legacy_id = '" LH(11) "'"
					     " AND payload->'legacy_event_type' = 'null'::jsonb"),
		      1);

	/* A re-run inserts nothing. */
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--json", NULL), 0);
	summary = parse_json_output(out, "backfill");
	ASSERT_EQ_INT(number_of(summary, "inserted"), 0);
	ASSERT_EQ_INT(number_of(summary, "already_present"), 22);
	cJSON_Delete(summary);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 22);

	/* verify: complete, then a deleted backfilled row is caught and named. */
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(out, "complete");
	free(out);
	harness_exec(conn, "DELETE FROM passport_entries WHERE legacy_id = '" MEL(05) "'");
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 1);
	ASSERT_STR_CONTAINS(out, MEL(05));
	ASSERT_STR_CONTAINS(out, "MISMATCH");
	free(out);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, "--json", NULL), 1);
	summary = parse_json_output(out, "verify");
	source = source_of(summary, "media_engagement_log");
	ASSERT_STR_EQ(string_of(summary, "status"), "mismatch");
	ASSERT_EQ_INT(number_of(source, "legacy_rows"), 11);
	ASSERT_EQ_INT(number_of(source, "backfilled"), 10);
	ASSERT_EQ_INT(number_of(source, "missing"), 1);
	ASSERT_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(source, "missing_ids"), 0)->valuestring, MEL(05));
	ASSERT_STR_EQ(string_of(source_of(summary, "listening_history"), "status"), "complete");
	cJSON_Delete(summary);
	free(out);

	/* The next run puts exactly that row back. */
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--json", "--source", "media_engagement_log", NULL), 0);
	summary = parse_json_output(out, "backfill");
	ASSERT_EQ_INT(number_of(summary, "inserted"), 1);
	ASSERT_EQ_INT(number_of(summary, "already_present"), 10);
	cJSON_Delete(summary);
	free(out);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 0);
	free(out);
	PQfinish(conn);
}

/*
 * The older production layout: naive timestamps read as UTC (whatever the server's time zone),
 * text session ids, no external_content_id; client info only when asked for.
 */
static void test_production_layout(void)
{
	static const struct expected_entry engagement[] = {
		{MEL(01), "legacy.view", "interaction", "{}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(02), "player.track_played", "interaction", "{mediaid,coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(03), "social.content_liked", "social", "{mediaid,coliseum}", MEDIA_FAN, USER_FAN_ARTIST},
		{MEL(04), "social.content_shared", "social", "{coliseum}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(05), "legacy.download", "interaction", "{}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(06), "mediaid.setup_completed", "trinity", "{mediaid}", MEDIA_ONE_ROW, USER_ONE_ROW},
		{MEL(07), "player.track_played", "interaction", "{coliseum}", NULL, NULL},
		{MEL(08), "player.track_completed", "interaction", "{mediaid,coliseum}", NULL, USER_NO_FAN},
		{MEL(09), "mediaid.setup_completed", "trinity", "{}", NULL, NULL},
	};
	char dsn[1024];
	char *out = NULL;
	PGconn *conn = harness_create_database("backfill_production", "production", dsn, sizeof dsn);
	cJSON *summary, *source;

	harness_exec(conn, "ALTER DATABASE t_backfill_production SET timezone TO 'America/New_York'");
	create_users(conn);
	harness_exec(conn,
		     "INSERT INTO media_engagement_log (id, user_id, content_id, event_type, metadata, \"timestamp\","
		     "                                  is_anonymous, session_id, user_agent, ip_address) VALUES"
		     " ('" MEL(01) "', '" USER_ONE_ROW "', '" CONTENT "', 'view', '{\"p\": 2}', '2025-04-01 12:00:00',"
		     "  false, 'sess-abc', 'UA/1', '10.1.2.3'),"
		     " ('" MEL(02) "', '" USER_ONE_ROW "', NULL, 'play', NULL, '2025-04-02 12:00', true, NULL, NULL, NULL),"
		     " ('" MEL(03) "', '" USER_FAN_ARTIST "', NULL, 'like', NULL, '2025-04-03 12:00', true, NULL, NULL, NULL),"
		     " ('" MEL(04) "', '" USER_ONE_ROW "', NULL, 'share', NULL, '2025-04-04 12:00', true, NULL, NULL, NULL),"
		     " ('" MEL(05) "', '" USER_ONE_ROW "', NULL, 'download', NULL, '2025-04-05 12:00', true, NULL, NULL, NULL),"
		     " ('" MEL(06) "', '" USER_ONE_ROW "', NULL, 'mediaid_setup_completed', NULL, '2025-04-06 12:00', true, NULL, NULL, NULL),"
		     " ('" MEL(07) "', NULL, NULL, 'track_play', NULL, '2025-04-07 12:00', true, 'sess-anon', 'UA/2', '10.9.9.9'),"
		     " ('" MEL(08) "', '" USER_NO_FAN "', NULL, 'track_complete', NULL, '2025-04-08 12:00', true, NULL, NULL, NULL),"
		     " ('" MEL(09) "', NULL, NULL, 'mediaid_setup_completed', NULL, '2025-04-09 12:00', true, NULL, NULL, NULL)");

	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--json", NULL), 0);
	summary = parse_json_output(out, "backfill");
	source = source_of(summary, "media_engagement_log");
	ASSERT_STR_EQ(string_of(source, "layout"), "production");
	ASSERT_EQ_INT(number_of(source, "inserted"), 9);
	ASSERT_EQ_INT(number_of(source, "anonymous"), 2);
	ASSERT_EQ_INT(unmapped_count(source, "view", "legacy.view"), 1);
	ASSERT_EQ_INT(unmapped_count(source, "download", "legacy.download"), 1);
	ASSERT_EQ_INT(unmapped_count(source, "play", ""), 0);
	ASSERT_EQ_INT(number_of(source_of(summary, "listening_history"), "rows_read"), 0);
	cJSON_Delete(summary);
	free(out);

	check_entries(conn, "media_engagement_log", engagement, sizeof engagement / sizeof engagement[0]);
	ASSERT_EQ_INT(harness_query_int(conn,
					"SELECT (\"timestamp\" = '2025-04-01 12:00:00+00' AND session_id = 'sess-abc'"
					"        AND payload = '{\"content_id\": \"" CONTENT "\", \"metadata\": {\"p\": 2},"
					"                        \"session_id\": \"sess-abc\", \"legacy_event_type\": \"view\"}')::int"
					"  FROM passport_entries WHERE legacy_id = '" MEL(01) "'"),
		      1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE payload ? 'external_content_id'"
					     " OR payload ? 'user_agent' OR payload ? 'ip_address'"),
		      0);

	/* With --include-client-info (and --restart past the completed run) the payload gains both. */
	harness_exec(conn, "DELETE FROM passport_entries");
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--include-client-info", "--restart", "--progress",
			      "never", NULL),
		      0);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 9);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT (payload->>'user_agent' = 'UA/1' AND payload->>'ip_address' = '10.1.2.3')::int"
					     "  FROM passport_entries WHERE legacy_id = '" MEL(01) "'"),
		      1);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(out, "production layout");
	free(out);
	PQfinish(conn);
}

/*
 * A missing legacy table is reported and skipped; bad arguments are usage errors; a second
 * backfill of a source refuses to run; a legacy user unknown to a foreign key of
 * passport_entries.user_id is kept as anonymous instead of failing its batch.
 */
static void test_missing_table_and_safety(void)
{
	char dsn[1024];
	char *out = NULL;
	PGconn *conn = harness_create_database("backfill_missing", NULL, dsn, sizeof dsn);
	cJSON *summary, *source;

	harness_exec(conn, "INSERT INTO auth.users (id) VALUES ('" USER_ONE_ROW "')");
	harness_exec(conn, "ALTER TABLE passport_entries ADD FOREIGN KEY (user_id) REFERENCES auth.users (id)");
	create_users(conn);
	harness_exec(conn,
		     "INSERT INTO listening_history (id, user_id, content_id, event_type, created_at) VALUES"
		     " ('" LH(01) "', '" USER_ONE_ROW "', '" CONTENT "', 'played', '2025-01-01 00:00+00'),"
		     " ('" LH(02) "', '" USER_NO_ROW "', '" CONTENT "', 'completed', '2025-01-02 00:00+00')");

	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--json", NULL), 0);
	ASSERT_STR_CONTAINS(out, "media_engagement_log: table not found, skipped");
	summary = parse_json_output(out, "backfill");
	ASSERT_STR_EQ(string_of(source_of(summary, "media_engagement_log"), "status"), "missing");
	source = source_of(summary, "listening_history");
	ASSERT_STR_EQ(string_of(source, "status"), "complete");
	ASSERT_EQ_INT(number_of(source, "inserted"), 2);
	ASSERT_EQ_INT(number_of(source, "unknown_users"), 1);
	cJSON_Delete(summary);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE legacy_id = '" LH(01) "'"
					     " AND user_id = '" USER_ONE_ROW "' AND mediaid_id = '" MEDIA_ONE_ROW "'"),
		      1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE legacy_id = '" LH(02) "'"
					     " AND user_id IS NULL AND mediaid_id IS NULL AND affects_systems = '{coliseum}'"
					     " AND payload->>'legacy_user_id' = '" USER_NO_ROW "'"),
		      1);

	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(out, "media_engagement_log: table not found, skipped");
	free(out);

	/* Usage errors exit 2 and write nothing. */
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--source", "history", NULL), 2);
	free(out);
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--batch-size", "0", NULL), 2);
	free(out);
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--max-rate", "-5", NULL), 2);
	free(out);
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--since", "yesterday-ish", NULL), 2);
	free(out);
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--since", "2025-02-01", "--until", "2025-01-01", NULL), 2);
	ASSERT_STR_CONTAINS(out, "must be before");
	free(out);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, "--source", "nope", NULL), 2);
	free(out);
	ASSERT_EQ_INT(migrate(&out, "backfill", "--help", NULL), 0);
	ASSERT_STR_CONTAINS(out, "--mark-processed");
	ASSERT_STR_CONTAINS(out, "--max-rate");
	free(out);
	ASSERT_EQ_INT(migrate(&out, "verify", "--help", NULL), 0);
	free(out);

	/* Another backfill of the same source holds the lock: this one waits, then refuses. */
	harness_exec(conn, "SELECT pg_advisory_lock(1346520652, 1)");
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--source", "listening_history", "--lock-wait", "1", NULL), 1);
	ASSERT_STR_CONTAINS(out, "another backfill");
	free(out);
	/* ... and goes ahead once the lock is released within the wait. */
	{
		const char *args[] = {"backfill", "--dsn", dsn, "--source", "listening_history", "--progress", "never", NULL};
		char path[] = "/tmp/passport-backfill-XXXXXX";
		int fd = mkstemp(path), status;
		pid_t pid;

		ASSERT_TRUE(fd >= 0);
		close(fd);
		pid = spawn_migrate(path, args);
		sleep_ms(1500);
		harness_exec(conn, "SELECT pg_advisory_unlock(1346520652, 1)");
		ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
		out = harness_read_file(path);
		unlink(path);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL("backfill after the lock was released: status %d\n%s", status, out);
		ASSERT_STR_CONTAINS(out, "waiting up to 70 s");
		ASSERT_STR_CONTAINS(out, "already present  2");
		free(out);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 2);

	/*
	 * A writer outside the lock inserts one of the batch's keys after the batch found it missing
	 * (here: a trigger, in the middle of the batch's own INSERT). The plain INSERT hits the unique
	 * index; the batch is retried with ON CONFLICT DO NOTHING: no error, no duplicate.
	 */
	harness_exec(conn, "DELETE FROM passport_entries");
	harness_exec(conn, "CREATE FUNCTION backfill_race() RETURNS trigger LANGUAGE plpgsql AS $$"
			   " BEGIN"
			   "   IF pg_trigger_depth() = 1 AND NEW.legacy_id = '" LH(02) "' THEN"
			   "     INSERT INTO passport_entries (event_type, event_category, legacy_source, legacy_id)"
			   "     VALUES ('player.track_completed', 'interaction', 'listening_history', '" LH(02) "')"
			   "     ON CONFLICT DO NOTHING;"
			   "   END IF;"
			   "   RETURN NEW;"
			   " END $$");
	harness_exec(conn, "CREATE TRIGGER backfill_race BEFORE INSERT ON passport_entries"
			   " FOR EACH ROW EXECUTE FUNCTION backfill_race()");
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--source", "listening_history", "--restart", "--json",
			      "--progress", "never", NULL),
		      0);
	summary = parse_json_output(out, "backfill");
	ASSERT_STR_EQ(string_of(summary, "status"), "complete");
	ASSERT_EQ_INT(number_of(summary, "inserted"), 1);
	ASSERT_EQ_INT(number_of(summary, "already_present"), 1);
	cJSON_Delete(summary);
	free(out);
	harness_exec(conn, "DROP TRIGGER backfill_race ON passport_entries");
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(DISTINCT legacy_id) FROM passport_entries"), 2);
	PQfinish(conn);
}

/*
 * --since/--until select by event time; --dry-run counts and shows a sample but writes nothing
 * (not even progress); --mark-processed inserts history as processed; progress output.
 */
static void test_window_dry_run_mark_processed(void)
{
	char dsn[1024];
	char *out = NULL;
	PGconn *conn = harness_create_database("backfill_window", "canonical", dsn, sizeof dsn);
	cJSON *summary, *sample;
	long long in_window, total;

	load_legacy_generator(conn);
	total = harness_query_int(conn, "SELECT passport_test_legacy(50, 3000, 1000, '2026-01-01 00:00+00')");
	ASSERT_EQ_INT(total, 4000);
	in_window = harness_query_int(conn,
				      "SELECT (SELECT count(*) FROM listening_history"
				      "         WHERE created_at >= '2025-10-01' AND created_at < '2025-11-01')"
				      "     + (SELECT count(*) FROM media_engagement_log"
				      "         WHERE \"timestamp\" >= '2025-10-01' AND \"timestamp\" < '2025-11-01')");
	ASSERT_TRUE(in_window > 100 && in_window < total);

	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--dry-run", "--json", "--since", "2025-10-01",
			      "--until", "2025-11-01T00:00:00Z", NULL),
		      0);
	summary = parse_json_output(out, "backfill");
	ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(summary, "dry_run")));
	ASSERT_EQ_INT(number_of(summary, "would_insert"), in_window);
	ASSERT_EQ_INT(number_of(summary, "rows_read"), in_window);
	ASSERT_EQ_INT(number_of(summary, "rows_scanned"), total); /* the window is applied per batch */
	ASSERT_EQ_INT(number_of(summary, "inserted"), 0);
	sample = cJSON_GetObjectItem(source_of(summary, "listening_history"), "sample");
	ASSERT_TRUE(cJSON_GetArraySize(sample) == 5);
	ASSERT_STR_EQ(string_of(cJSON_GetArrayItem(sample, 0), "source"), "backfill");
	ASSERT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetArrayItem(sample, 0), "payload")));
	cJSON_Delete(summary);
	free(out);
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--dry-run", NULL), 0);
	ASSERT_STR_CONTAINS(out, "dry run, nothing written");
	ASSERT_STR_CONTAINS(out, "would insert");
	ASSERT_STR_CONTAINS(out, "sample");
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_backfill_progress"), 0);

	/*
	 * The window only, with a visible progress bar (forced: the test's stderr is a pipe). One job:
	 * sources side by side (the default on 2+ cores) report in lines, two bars cannot share one.
	 */
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--since", "2025-10-01", "--until", "2025-11-01",
			      "--batch-size", "100", "--progress", "always", "--jobs", "1", NULL),
		      0);
	ASSERT_STR_CONTAINS(out, "] 100% ");
	ASSERT_STR_CONTAINS(out, "rows/s");
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), in_window);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"
					     " WHERE \"timestamp\" < '2025-10-01' OR \"timestamp\" >= '2025-11-01'"),
		      0);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, "--since", "2025-10-01", "--until", "2025-11-01", NULL), 0);
	free(out);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 1);
	free(out);

	/* The rest as processed history; the log lines of a non-terminal run end at 100 %. */
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--mark-processed", "--progress", "auto", "--json", NULL), 0);
	ASSERT_STR_CONTAINS(out, "(100%)");
	summary = parse_json_output(out, "backfill");
	ASSERT_EQ_INT(number_of(summary, "inserted"), total - in_window);
	ASSERT_EQ_INT(number_of(summary, "already_present"), in_window);
	cJSON_Delete(summary);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed AND processed_at IS NOT NULL"),
		      total - in_window);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"
					     " AND \"timestamp\" >= '2025-10-01' AND \"timestamp\" < '2025-11-01'"),
		      in_window);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 0);
	free(out);

	/* --max-rate keeps the average under the limit: 4 batches of 250 at 1,000 rows/s take >= 0.75 s. */
	harness_exec(conn, "DELETE FROM passport_entries WHERE legacy_source = 'media_engagement_log'");
	{
		double started = now_seconds();

		ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--source", "media_engagement_log", "--max-rate",
				      "1000", "--batch-size", "250", "--progress", "never", NULL),
			      0);
		ASSERT_TRUE(now_seconds() - started >= 0.75);
		free(out);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), total);

	/* SIGTERM stops after the batch in hand, prints the summary and exits 1; a re-run resumes. */
	harness_exec(conn, "DELETE FROM passport_entries WHERE legacy_source = 'media_engagement_log'");
	{
		const char *args[] = {"backfill", "--dsn", dsn, "--source", "media_engagement_log", "--max-rate", "500",
				      "--batch-size", "50", "--progress", "never", "--json", NULL};
		char path[] = "/tmp/passport-backfill-XXXXXX";
		int fd = mkstemp(path), status;
		pid_t pid;

		ASSERT_TRUE(fd >= 0);
		close(fd);
		pid = spawn_migrate(path, args);
		while (harness_query_int(conn, "SELECT count(*) FROM passport_entries"
					       " WHERE legacy_source = 'media_engagement_log'") < 100)
			sleep_ms(10);
		ASSERT_TRUE(kill(pid, SIGTERM) == 0);
		ASSERT_TRUE(waitpid(pid, &status, 0) == pid);
		ASSERT_TRUE(WIFEXITED(status));
		ASSERT_EQ_INT(WEXITSTATUS(status), 1);
		out = harness_read_file(path);
		unlink(path);
		ASSERT_STR_CONTAINS(out, "interrupted; run the same command again to resume");
		summary = parse_json_output(out, "backfill");
		ASSERT_STR_EQ(string_of(summary, "status"), "interrupted");
		ASSERT_TRUE(number_of(summary, "inserted") < 1000);
		ASSERT_EQ_INT(number_of(summary, "inserted"),
			      harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE legacy_source = 'media_engagement_log'"));
		cJSON_Delete(summary);
		free(out);
	}
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--source", "media_engagement_log", "--progress", "never", NULL), 0);
	ASSERT_STR_CONTAINS(out, "resuming after id");
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), total);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 0);
	free(out);

	/* A terminated server backend: the run reconnects, takes its lock again and finishes. */
	harness_exec(conn, "DELETE FROM passport_entries WHERE legacy_source = 'media_engagement_log'");
	{
		const char *args[] = {"backfill", "--dsn", dsn, "--source", "media_engagement_log", "--max-rate", "1000",
				      "--batch-size", "100", "--progress", "never", NULL};
		char path[] = "/tmp/passport-backfill-XXXXXX";
		int fd = mkstemp(path), status;
		pid_t pid;

		ASSERT_TRUE(fd >= 0);
		close(fd);
		pid = spawn_migrate(path, args);
		while (harness_query_int(conn, "SELECT count(*) FROM passport_entries"
					       " WHERE legacy_source = 'media_engagement_log'") < 200)
			sleep_ms(10);
		ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid)"
						     " FROM pg_stat_activity WHERE datname = current_database()"
						     " AND application_name = 'passport-migrate') AS t"),
			      1);
		ASSERT_TRUE(waitpid(pid, &status, 0) == pid);
		out = harness_read_file(path);
		unlink(path);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL("backfill after a terminated backend: status %d\n%s", status, out);
		ASSERT_STR_CONTAINS(out, "retrying");
		free(out);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), total);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 0);
	free(out);
	PQfinish(conn);
}

/*
 * Wait (until deadline) until no backend of passport-migrate is left in this database. A backend
 * flushes its statistics on the way out, before it leaves pg_stat_activity, so its transactions
 * are counted in pg_stat_database once this returns.
 */
static void wait_for_migrate_backends(PGconn *conn, double deadline)
{
	while (harness_query_int(conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
				       " AND application_name = 'passport-migrate'") > 0) {
		ASSERT_TRUE(now_seconds() < deadline);
		sleep_ms(10);
	}
}

/* kill -9 the backfill once at least rows entries exist, then wait until its server backend is gone. */
static long long kill_when(PGconn *conn, pid_t pid, long long rows)
{
	double deadline = now_seconds() + 60;
	int status;

	for (;;) {
		if (harness_query_int(conn, "SELECT count(*) FROM passport_entries") >= rows)
			break;
		if (waitpid(pid, &status, WNOHANG) == pid)
			FAIL("the backfill ended before it could be killed (status %d)", status);
		if (now_seconds() > deadline)
			FAIL("the backfill did not reach %lld rows in 60 s", rows);
		sleep_ms(10);
	}
	ASSERT_TRUE(kill(pid, SIGKILL) == 0);
	ASSERT_TRUE(waitpid(pid, &status, 0) == pid);
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* The server may still be finishing (and committing, or rolling back) the last batch. */
	wait_for_migrate_backends(conn, deadline);
	return harness_query_int(conn, "SELECT count(*) FROM passport_entries");
}

/*
 * Each slice's progress row of a killed run claims exactly what was committed: its last_id is the
 * highest id copied inside the slice, and its rows_seen the number of entries inside it. Returns
 * how many rows say so.
 */
static const char slices_committed_sql[] =
	"SELECT count(*) FROM passport_backfill_progress AS p"
	" CROSS JOIN LATERAL (SELECT array_agg(pe.legacy_id ORDER BY pe.legacy_id::uuid DESC) AS ids"
	"                       FROM passport_entries AS pe"
	"                      WHERE (p.slice_start = '' OR pe.legacy_id::uuid > p.slice_start::uuid)"
	"                        AND (p.slice_end IS NULL OR pe.legacy_id::uuid <= p.slice_end::uuid)) AS copied"
	" WHERE p.legacy_source = 'listening_history' AND p.completed_at IS NULL"
	"   AND p.last_id = copied.ids[1] AND p.rows_seen = cardinality(copied.ids)";

/*
 * A 100,000-row listening_history, copied by two jobs in two slices: kill -9 twice mid-run,
 * resume both slices from their recorded positions, then (with the positions deleted) from the
 * start: every row exactly once. A re-run of the completed table inserts nothing.
 */
static void test_kill_and_resume_100k(void)
{
	static const char *const args_template[] = {"backfill", "--dsn", NULL, "--source", "listening_history",
						    "--batch-size", "1000", "--jobs", "2", "--progress", "never",
						    "--json", NULL};
	const char *args[sizeof args_template / sizeof args_template[0]];
	char dsn[1024], log_path[] = "/tmp/passport-backfill-XXXXXX";
	char *out = NULL;
	PGconn *conn = harness_create_database("backfill_resume", "canonical", dsn, sizeof dsn);
	cJSON *summary, *source;
	long long first, second, first_slice;
	double started;
	int fd;
	pid_t pid;

	memcpy(args, args_template, sizeof args);
	args[2] = dsn;
	fd = mkstemp(log_path);
	ASSERT_TRUE(fd >= 0);
	close(fd);
	load_legacy_generator(conn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_legacy(500, 100000, 0)"), 100000);
	harness_exec(conn, "ANALYZE listening_history");

	pid = spawn_migrate(log_path, args);
	first = kill_when(conn, pid, 15000);
	printf("killed the first run at %lld entries\n", first);
	ASSERT_TRUE(first > 0 && first < 100000);
	ASSERT_EQ_INT(first % 1000, 0); /* whole batches only */
	/*
	 * Two slices, recorded together, each copied by its own job (both hold entries), each row
	 * committed with the entries it describes.
	 */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_backfill_progress"
					      " WHERE legacy_source = 'listening_history' AND completed_at IS NULL"),
		      2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(DISTINCT started_at) FROM passport_backfill_progress"), 1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_backfill_progress"
					      " WHERE slice_start = '' AND slice_end IS NOT NULL"),
		      1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_backfill_progress AS p"
					      " WHERE slice_start <> '' AND slice_end IS NULL AND slice_start ="
					      " (SELECT q.slice_end FROM passport_backfill_progress AS q WHERE q.slice_start = '')"),
		      1);
	ASSERT_EQ_INT(harness_query_int(conn, slices_committed_sql), 2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT sum(rows_seen) FROM passport_backfill_progress"), first);
	/* The cut shares the rows evenly (by the planner's estimate): 50,000 each, give or take. */
	first_slice = harness_query_int(conn, "SELECT count(*) FROM listening_history WHERE id <="
					      " (SELECT slice_end::uuid FROM passport_backfill_progress WHERE slice_start = '')");
	printf("the first slice holds %lld of the 100,000 rows\n", first_slice);
	ASSERT_TRUE(first_slice > 45000 && first_slice < 55000);

	pid = spawn_migrate(log_path, args);
	second = kill_when(conn, pid, first + 20000);
	printf("killed the resumed run at %lld entries\n", second);
	ASSERT_TRUE(second > first && second < 100000);
	ASSERT_EQ_INT(second % 1000, 0);
	/* It resumed both slices: their rows count both runs' rows, which they would not after a restart. */
	ASSERT_EQ_INT(harness_query_int(conn, slices_committed_sql), 2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT sum(rows_seen) FROM passport_backfill_progress"), second);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_backfill_progress"), 2);
	out = harness_read_file(log_path);
	ASSERT_STR_CONTAINS(out, "resuming 2 slices, after ids");
	free(out);
	unlink(log_path);

	/* Correctness does not depend on the recorded position: without it the run starts over. */
	harness_exec(conn, "DELETE FROM passport_backfill_progress");
	started = now_seconds();
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--source", "listening_history", "--json", "--progress",
			      "never", NULL),
		      0);
	summary = parse_json_output(out, "backfill");
	source = source_of(summary, "listening_history");
	ASSERT_EQ_INT(number_of(source, "rows_read"), 100000);
	ASSERT_EQ_INT(number_of(source, "inserted"), 100000 - second);
	ASSERT_EQ_INT(number_of(source, "already_present"), second);
	cJSON_Delete(summary);
	free(out);
	printf("finished: 100,000 rows read, %lld inserted, in %.2f s\n", 100000 - second, now_seconds() - started);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 100000);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(DISTINCT legacy_id) FROM passport_entries"), 100000);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM listening_history l WHERE NOT EXISTS"
					     " (SELECT 1 FROM passport_entries pe WHERE pe.legacy_id = l.id::text)"),
		      0);
	ASSERT_EQ_INT(migrate(&out, "verify", "--dsn", dsn, NULL), 0);
	free(out);

	/* A completed run is not resumed: the re-run reads all 100,000 rows again and inserts none. */
	started = now_seconds();
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--source", "listening_history", "--json", NULL), 0);
	summary = parse_json_output(out, "backfill");
	ASSERT_EQ_INT(number_of(summary, "inserted"), 0);
	ASSERT_EQ_INT(number_of(summary, "already_present"), 100000);
	printf("idempotent re-run of 100,000 rows: %.2f s\n", now_seconds() - started);
	cJSON_Delete(summary);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 100000);
	PQfinish(conn);
}

/*
 * SPEC §6 end to end: backfilled history replays into DNA in event-time order. A user played one
 * kind of track (A) a year ago and another kind (B) last week; the rows of last week come first
 * in id order, so only an event-time replay puts them last. After `passportd drain` the DNA is
 * closer to B than to A.
 */
static void test_replay_into_dna(void)
{
	char dsn[1024];
	char *out = NULL, *cosines;
	PGconn *conn = harness_create_database("backfill_replay", "canonical", dsn, sizeof dsn);
	const char *drain[] = {harness_passportd(), "drain", "--dsn", dsn, NULL};

	harness_exec(conn, "INSERT INTO media_ids (id, user_uuid, role) VALUES ('" MEDIA_ONE_ROW "', '" USER_ONE_ROW "', 'fan')");
	/* Track A: the first half of every domain block; track B: the second half. */
	harness_exec(conn,
		     "INSERT INTO entity_dna (entity_type, entity_id, embedding)"
		     " SELECT 'track', t.id, (SELECT array_agg(CASE WHEN ((g - 1) % 384 < 192) = t.first_half"
		     "                                         THEN 1 ELSE 0 END::real ORDER BY g)"
		     "                          FROM generate_series(1, 1536) AS g)"
		     "   FROM (VALUES ('eeeeeeee-0000-0000-0000-00000000000a'::uuid, true),"
		     "                ('eeeeeeee-0000-0000-0000-00000000000b'::uuid, false)) AS t(id, first_half)");
	harness_exec(conn,
		     "INSERT INTO listening_history (id, user_id, content_id, event_type, created_at)"
		     " SELECT ('ffffffff-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, '" USER_ONE_ROW "',"
		     "        'eeeeeeee-0000-0000-0000-00000000000a', 'completed',"
		     "        now() - interval '365 days' + i * interval '1 hour'"
		     "   FROM generate_series(1, 20) AS i");
	harness_exec(conn,
		     "INSERT INTO listening_history (id, user_id, content_id, event_type, created_at)"
		     " SELECT ('00000000-0000-0000-0000-' || lpad(i::text, 12, '0'))::uuid, '" USER_ONE_ROW "',"
		     "        'eeeeeeee-0000-0000-0000-00000000000b', 'completed',"
		     "        now() - interval '7 days' + i * interval '1 hour'"
		     "   FROM generate_series(1, 5) AS i");

	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--progress", "never", NULL), 0);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"), 25);
	ASSERT_EQ_INT(harness_run(drain, NULL, &out), 0);
	free(out);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed"), 25);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution WHERE mediaid_id = '" MEDIA_ONE_ROW "'"), 25);
	/* Applied in event-time order: no entry was late, and the carbon clock is last week's. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution WHERE late"), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT (dna_clock = (SELECT max(created_at) FROM listening_history))::int"
					     "  FROM media_ids WHERE id = '" MEDIA_ONE_ROW "'"),
		      1);

	cosines = harness_query_text(conn,
				     "WITH v AS (SELECT x, i FROM media_ids, unnest(profile_embedding::real[]) WITH ORDINALITY AS u(x, i)"
				     "            WHERE id = '" MEDIA_ONE_ROW "'),"
				     " t AS (SELECT entity_id, x, i FROM entity_dna, unnest(embedding::real[]) WITH ORDINALITY AS u(x, i)),"
				     " c AS (SELECT t.entity_id, sum(v.x * t.x) / (sqrt(sum(v.x * v.x)) * sqrt(sum(t.x * t.x))) AS cosine"
				     "         FROM v JOIN t USING (i) GROUP BY t.entity_id)"
				     " SELECT round((SELECT cosine FROM c WHERE entity_id = 'eeeeeeee-0000-0000-0000-00000000000a')::numeric, 4)"
				     "        || ' ' || round((SELECT cosine FROM c WHERE entity_id = 'eeeeeeee-0000-0000-0000-00000000000b')::numeric, 4)");
	ASSERT_TRUE(cosines != NULL);
	{
		double to_a = 0, to_b = 0;

		ASSERT_TRUE(sscanf(cosines, "%lf %lf", &to_a, &to_b) == 2);
		printf("DNA cosine to last year's track %.4f, to last week's track %.4f\n", to_a, to_b);
		ASSERT_TRUE(to_b > to_a);
		ASSERT_TRUE(to_b > 0.8);
	}
	free(cosines);
	PQfinish(conn);
}

/*
 * --jobs 2 copies the two logs side by side, each on its own connection: the same entries as one
 * job, both progress rows complete; killed with -9 mid-way and run again, it resumes both and
 * still ends with exactly one entry per legacy row.
 */
static const char entries_digest_sql[] =
	"SELECT count(*) || ':' || md5(string_agg(concat_ws('|', legacy_source, legacy_id, user_id, event_type,"
	" event_category, payload::text, affects_systems::text, \"timestamp\", processed, session_id, source),"
	" ',' ORDER BY legacy_source, legacy_id)) FROM passport_entries";

static void test_jobs(void)
{
	static const char *const args_template[] = {"backfill", "--dsn", NULL, "--jobs", "2", "--batch-size", "500",
						    "--progress", "never", "--json", NULL};
	const char *args[sizeof args_template / sizeof args_template[0]];
	char dsn_one[1024], dsn_two[1024], log_path[] = "/tmp/passport-backfill-XXXXXX";
	PGconn *one = harness_create_database("backfill_jobs1", "canonical", dsn_one, sizeof dsn_one);
	PGconn *two = harness_create_database("backfill_jobs2", "canonical", dsn_two, sizeof dsn_two);
	char *out = NULL, *digest_one, *digest_two;
	cJSON *summary;
	long long killed;
	int fd;
	pid_t pid;

	load_legacy_generator(one);
	load_legacy_generator(two);
	ASSERT_EQ_INT(harness_query_int(one, "SELECT passport_test_legacy(300, 20000, 20000)"), 40000);
	ASSERT_EQ_INT(harness_query_int(two, "SELECT passport_test_legacy(300, 20000, 20000)"), 40000);

	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn_one, "--progress", "never", "--json", NULL), 0);
	free(out);

	memcpy(args, args_template, sizeof args);
	args[2] = dsn_two;
	fd = mkstemp(log_path);
	ASSERT_TRUE(fd >= 0);
	close(fd);
	pid = spawn_migrate(log_path, args);
	killed = kill_when(two, pid, 8000);
	printf("--jobs 2: killed at %lld entries\n", killed);
	ASSERT_TRUE(killed < 40000);
	/* Both sources were being copied at once when it was killed. */
	ASSERT_EQ_INT(harness_query_int(two, "SELECT count(DISTINCT legacy_source) FROM passport_entries"), 2);
	unlink(log_path);

	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn_two, "--jobs", "2", "--progress", "never", "--json", NULL),
		      0);
	summary = parse_json_output(out, "backfill");
	ASSERT_EQ_INT(number_of(summary, "inserted"), 40000 - killed);
	/* Both sources resumed where the killed run left them. */
	ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(source_of(summary, "listening_history"), "resumed_after")));
	ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(source_of(summary, "media_engagement_log"), "resumed_after")));
	ASSERT_TRUE(strcmp(string_of(source_of(summary, "listening_history"), "status"), "complete") == 0);
	ASSERT_TRUE(strcmp(string_of(source_of(summary, "media_engagement_log"), "status"), "complete") == 0);
	cJSON_Delete(summary);
	free(out);
	/* Each log was cut in two slices (20,000 rows, batches of 500), all four completed. */
	ASSERT_EQ_INT(harness_query_int(two, "SELECT count(*) FROM passport_backfill_progress WHERE completed_at IS NOT NULL"),
		      4);
	ASSERT_EQ_INT(harness_query_int(two, "SELECT count(*) FROM passport_backfill_progress"), 4);

	/*
	 * --restart sets an interrupted run aside: with a slice left open (as a killed run leaves
	 * it), the run reads every row again in one slice (one job) and closes the open row, so the
	 * next run does not resume it either.
	 */
	harness_exec(two, "UPDATE passport_backfill_progress SET completed_at = NULL"
			  " WHERE legacy_source = 'media_engagement_log' AND slice_start <> ''");
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn_two, "--restart", "--jobs", "1", "--progress", "never",
			      "--json", NULL),
		      0);
	summary = parse_json_output(out, "backfill");
	ASSERT_EQ_INT(number_of(summary, "inserted"), 0);
	ASSERT_EQ_INT(number_of(source_of(summary, "media_engagement_log"), "rows_read"), 20000);
	ASSERT_EQ_INT(number_of(source_of(summary, "media_engagement_log"), "resumed_slices"), 0);
	ASSERT_EQ_INT(number_of(source_of(summary, "media_engagement_log"), "slices"), 1);
	cJSON_Delete(summary);
	free(out);
	ASSERT_EQ_INT(harness_query_int(two, "SELECT count(*) FROM passport_backfill_progress WHERE completed_at IS NULL"),
		      0);
	/* Without --restart, an open slice is resumed: only its rows are read. */
	harness_exec(two, "UPDATE passport_backfill_progress SET completed_at = NULL, last_id = NULL, rows_seen = 0,"
			  " slice_end = (SELECT id::text FROM listening_history ORDER BY id LIMIT 1)"
			  " WHERE legacy_source = 'listening_history' AND slice_start = ''");
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn_two, "--source", "listening_history", "--progress", "never",
			      "--json", NULL),
		      0);
	summary = parse_json_output(out, "backfill");
	ASSERT_EQ_INT(number_of(summary, "inserted"), 0);
	ASSERT_EQ_INT(number_of(source_of(summary, "listening_history"), "rows_read"), 1);
	ASSERT_EQ_INT(number_of(source_of(summary, "listening_history"), "resumed_slices"), 1);
	cJSON_Delete(summary);
	free(out);

	digest_one = harness_query_text(one, entries_digest_sql);
	digest_two = harness_query_text(two, entries_digest_sql);
	if (strcmp(digest_one, digest_two) != 0)
		FAIL("--jobs 2 (killed, resumed) copied other entries than one job: %s vs %s", digest_two,
		     digest_one);
	ASSERT_TRUE(strncmp(digest_one, "40000:", 6) == 0);
	free(digest_one);
	free(digest_two);
	PQfinish(one);
	PQfinish(two);
}

/* The digest of the entries of the legacy rows (entries_digest_sql's, without other entries). */
static const char legacy_entries_digest_sql[] =
	"SELECT count(*) || ':' || md5(string_agg(concat_ws('|', legacy_source, legacy_id, user_id, event_type,"
	" event_category, payload::text, affects_systems::text, \"timestamp\", processed, session_id, source),"
	" ',' ORDER BY legacy_source, legacy_id)) FROM passport_entries"
	" WHERE legacy_id IN (SELECT id::text FROM listening_history UNION ALL SELECT id::text FROM media_engagement_log)";

static long long rollbacks(PGconn *conn)
{
	return harness_query_int(conn, "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()");
}

/*
 * One job, batches of 500: the run must insert exactly inserted rows and find present ones.
 * Returns how many of its transactions were rolled back (a batch that met the unique index).
 */
static long long backfill_expecting(PGconn *conn, const char *dsn, long long inserted, long long present)
{
	long long before = rollbacks(conn);
	char *out = NULL;
	cJSON *summary;

	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--jobs", "1", "--batch-size", "500", "--progress",
			      "never", "--json", NULL),
		      0);
	summary = parse_json_output(out, "backfill");
	ASSERT_EQ_INT(number_of(summary, "inserted"), inserted);
	ASSERT_EQ_INT(number_of(summary, "already_present"), present);
	cJSON_Delete(summary);
	free(out);
	wait_for_migrate_backends(conn, now_seconds() + 30);
	return rollbacks(conn) - before;
}

/*
 * Batches where some ids have their entry and some do not (entries deleted after a complete
 * run) copy exactly the missing ones, the same entries as before. Then a key range crowded with
 * entries whose legacy rows are gone (four for each legacy row), so that the walk for the ids
 * already copied (at most a batch of entries) stops short of some: those ids meet the unique
 * index, their batch is rolled back and run again with ON CONFLICT DO NOTHING, and still only
 * the missing ones are inserted.
 */
static void test_partial_batches(void)
{
	char dsn[1024];
	char *out = NULL, *digest, *again;
	PGconn *conn = harness_create_database("backfill_partial", "canonical", dsn, sizeof dsn);
	long long deleted, started_ms, ended_ms;

	load_legacy_generator(conn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_legacy(40, 3000, 1000)"), 4000);
	started_ms = harness_query_int(conn, "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint");
	ASSERT_EQ_INT(migrate(&out, "backfill", "--dsn", dsn, "--jobs", "1", "--batch-size", "500", "--progress",
			      "never", NULL),
		      0);
	free(out);
	ended_ms = harness_query_int(conn, "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint");
	digest = harness_query_text(conn, legacy_entries_digest_sql);
	ASSERT_TRUE(strncmp(digest, "4000:", 5) == 0);
	/*
	 * The entries' ids are time-ordered (UUIDv7: the batch's milliseconds since 1970 in the first
	 * 48 bits, version 7, RFC 4122 variant), so the primary key grows at its right edge.
	 */
	ASSERT_EQ_INT(query_int(conn,
				"SELECT count(*) FROM passport_entries"
				" WHERE substr(id::text, 15, 1) = '7' AND substr(id::text, 20, 1) IN ('8', '9', 'a', 'b')"
				"   AND ('x' || translate(substr(id::text, 1, 13), '-', ''))::bit(48)::bigint"
				"       BETWEEN %lld AND %lld",
				started_ms, ended_ms),
		      4000);

	deleted = harness_query_int(conn, "WITH d AS (DELETE FROM passport_entries WHERE abs(hashtext(legacy_id)) % 3 = 0"
					  " RETURNING 1) SELECT count(*) FROM d");
	printf("deleted %lld of 4,000 entries\n", deleted);
	ASSERT_TRUE(deleted > 1000 && deleted < 1700);
	/* The walk found every id still copied: no batch met the unique index. */
	ASSERT_EQ_INT(backfill_expecting(conn, dsn, deleted, 4000 - deleted), 0);
	again = harness_query_text(conn, legacy_entries_digest_sql);
	if (strcmp(digest, again) != 0)
		FAIL("re-copied entries differ: %s vs %s", again, digest);
	free(again);

	harness_exec(conn, "INSERT INTO passport_entries (event_type, event_category, processed, source, legacy_source, legacy_id)"
			   " SELECT 'legacy.unknown', 'system', true, 'backfill', s.source, gen_random_uuid()::text"
			   "   FROM (VALUES ('listening_history', 12000), ('media_engagement_log', 4000)) AS s(source, n),"
			   "        generate_series(1, s.n)");
	deleted = harness_query_int(conn, "WITH d AS (DELETE FROM passport_entries WHERE abs(hashtext(legacy_id)) % 3 = 1"
					  " AND legacy_id IN (SELECT id::text FROM listening_history UNION ALL"
					  "                   SELECT id::text FROM media_engagement_log)"
					  " RETURNING 1) SELECT count(*) FROM d");
	/* The walk did stop short: batches met the unique index and were retried. */
	ASSERT_TRUE(backfill_expecting(conn, dsn, deleted, 4000 - deleted) > 0);
	again = harness_query_text(conn, legacy_entries_digest_sql);
	if (strcmp(digest, again) != 0)
		FAIL("entries copied past a crowded key range differ: %s vs %s", again, digest);
	free(again);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 4000 + 16000);
	free(digest);
	PQfinish(conn);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_mapping_canonical();
	test_production_layout();
	test_missing_table_and_safety();
	test_window_dry_run_mark_processed();
	test_kill_and_resume_100k();
	test_replay_into_dna();
	test_jobs();
	test_partial_batches();
	TEST_PASS();
}
