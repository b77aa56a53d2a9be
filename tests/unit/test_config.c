/*
 * test_config: the option table, its parsing, loading from file / environment / command line,
 * the SIGHUP reload, the batch settings, and that systemd/passportd.conf lists every option with
 * its default.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "payload.h"
#include "tables.h"
#include "task.h"

static void test_defaults_and_set(void)
{
	struct config c;
	char err[256];

	config_init(&c);
	ASSERT_EQ_INT(c.batch_size, 1000);
	ASSERT_EQ_DBL(c.poll_interval, 5.0, 0);
	ASSERT_TRUE(c.listen);
	ASSERT_EQ_INT(c.systems, SYSTEM_ALL);
	ASSERT_EQ_INT(c.max_attempts, 5);
	ASSERT_EQ_INT(c.log_level, LOG_LEVEL_INFO);

	ASSERT_EQ_INT(config_set(&c, "batch_size", "0", err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_set(&c, "batch_size", "12x", err, sizeof(err)), -1);
	ASSERT_EQ_INT(c.batch_size, 1000);
	ASSERT_EQ_INT(config_set(&c, "batch_size", "7", err, sizeof(err)), 0);
	ASSERT_EQ_INT(c.batch_size, 7);
	ASSERT_EQ_INT(config_set(&c, "poll_interval", "nan", err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_set(&c, "systems", "mediaid,bogus", err, sizeof(err)), -1);
	ASSERT_TRUE(strstr(err, "bogus") != NULL);
	ASSERT_EQ_INT(config_set(&c, "systems", "coliseum", err, sizeof(err)), 0);
	ASSERT_EQ_INT(c.systems, SYSTEM_COLISEUM);
	ASSERT_EQ_INT(config_set(&c, "listen", "maybe", err, sizeof(err)), -1);
	ASSERT_EQ_INT(config_set(&c, "listen", "false", err, sizeof(err)), 0);
	ASSERT_TRUE(!c.listen);
	ASSERT_EQ_INT(config_set(&c, "no_such_option", "1", err, sizeof(err)), -1);
	config_finish(&c);
}

static void test_password_never_printed(void)
{
	struct config c;
	char err[256];
	char *text;

	config_init(&c);
	ASSERT_EQ_INT(config_set(&c, "dsn", "host=db user=passportd password=s3cret dbname=app", err, sizeof(err)), 0);
	text = config_value_text(&c, config_find("dsn"));
	ASSERT_TRUE(text != NULL);
	ASSERT_TRUE(strstr(text, "s3cret") == NULL);
	ASSERT_TRUE(strstr(text, "host='db'") != NULL);
	free(text);
	ASSERT_EQ_INT(config_set(&c, "dsn", "postgresql://passportd:hunter2@db:5432/app", err, sizeof(err)), 0);
	text = config_value_text(&c, config_find("dsn"));
	ASSERT_TRUE(strstr(text, "hunter2") == NULL);
	free(text);
	config_finish(&c);
}

/* The example file must name every option, with the default value, and nothing else. */
static void test_example_file_in_step(void)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char path[1024], line[1024];
	struct config from_file, defaults;
	char err[512];
	FILE *f;
	int seen[64] = {0};

	ASSERT_TRUE(root != NULL);
	snprintf(path, sizeof(path), "%s/systemd/passportd.conf", root);
	config_init(&from_file);
	config_init(&defaults);
	/* Reading fails on any unknown option. */
	ASSERT_EQ_INT(config_read_file(&from_file, path, true, err, sizeof(err)), 0);
	f = fopen(path, "r");
	ASSERT_TRUE(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		int i = 0;
		for (const struct config_option *o = config_options; o->name; o++, i++) {
			size_t n = strlen(o->name);
			if (strncmp(line, o->name, n) == 0 && (line[n] == ' ' || line[n] == '='))
				seen[i]++;
		}
	}
	fclose(f);
	{
		int i = 0;
		for (const struct config_option *o = config_options; o->name; o++, i++) {
			char *a = config_value_text(&from_file, o), *b = config_value_text(&defaults, o);
			if (seen[i] != 1)
				fprintf(stderr, "option %s appears %d times in %s\n", o->name, seen[i], path);
			ASSERT_EQ_INT(seen[i], 1);
			ASSERT_STR_EQ(a, b);
			free(a);
			free(b);
		}
	}
	config_finish(&from_file);
	config_finish(&defaults);
}

/* The table is the one place that holds a default; the payload parser's own limit agrees with it. */
static void test_defaults_from_the_table(void)
{
	char expected[32];

	ASSERT_STR_EQ(config_default("batch_size"), "1000");
	ASSERT_STR_EQ(config_default("log_level"), "info");
	ASSERT_TRUE(config_default("no_such_option") == NULL);
	snprintf(expected, sizeof(expected), "%lu", (unsigned long)PAYLOAD_DEFAULT_MAX_BYTES);
	ASSERT_STR_EQ(config_default("max_payload_bytes"), expected);
}

/* workers = 0 derives the count from the machine: its online CPUs, at least 1, at most the cap. */
static void test_derived_workers(void)
{
	struct config c;
	char err[256];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int expected = cpus < 1 ? 1 : cpus > CONFIG_AUTO_WORKERS_MAX ? CONFIG_AUTO_WORKERS_MAX : (int)cpus;

	ASSERT_EQ_INT(config_machine_parallelism(1), 1);
	ASSERT_EQ_INT(config_machine_parallelism(0), 1);
	ASSERT_TRUE(config_machine_parallelism(64) >= 1);
	config_init(&c);
	ASSERT_EQ_INT(config_workers(&c), expected);
	ASSERT_EQ_INT(config_set(&c, "workers", "3", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_workers(&c), 3);
	ASSERT_TRUE(config_set(&c, "workers", "-1", err, sizeof(err)) < 0);
	config_finish(&c);
}

/* Every field of the batch settings comes from the config; nothing is left over from before. */
static void test_config_to_batch(void)
{
	struct config c;
	struct batch_config batch;
	char err[256];

	config_init(&c);
	memset(&batch, 0xA5, sizeof(batch));
	config_to_batch(&c, &batch);
	ASSERT_EQ_INT(batch.batch_size, 1000);
	ASSERT_EQ_INT(batch.enabled_systems, SYSTEM_ALL);
	ASSERT_EQ_INT(batch.max_payload_bytes, PAYLOAD_DEFAULT_MAX_BYTES);
	ASSERT_EQ_INT(batch.max_attempts, 5);
	ASSERT_EQ_DBL(batch.retry_base_seconds, 10.0, 0);
	ASSERT_EQ_DBL(batch.retry_cap_seconds, 3600.0, 0);
	ASSERT_TRUE(batch.shared_entities == NULL);

	ASSERT_EQ_INT(config_set(&c, "batch_size", "42", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&c, "systems", "treasury", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&c, "max_payload_bytes", "4096", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&c, "max_attempts", "3", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&c, "retry_base", "0.5", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&c, "retry_cap", "60", err, sizeof(err)), 0);
	config_to_batch(&c, &batch);
	ASSERT_EQ_INT(batch.batch_size, 42);
	ASSERT_EQ_INT(batch.enabled_systems, SYSTEM_TREASURY);
	ASSERT_EQ_INT(batch.max_payload_bytes, 4096);
	ASSERT_EQ_INT(batch.max_attempts, 3);
	ASSERT_EQ_DBL(batch.retry_base_seconds, 0.5, 0);
	ASSERT_EQ_DBL(batch.retry_cap_seconds, 60.0, 0);
	config_finish(&c);
}

/* A temporary config file holding text; its path is written to path. */
static void write_temp_file(char *path, size_t size, const char *text)
{
	int fd;
	FILE *f;

	snprintf(path, size, "/tmp/test_config_XXXXXX");
	fd = mkstemp(path);
	ASSERT_TRUE(fd >= 0);
	f = fdopen(fd, "w");
	ASSERT_TRUE(f != NULL);
	ASSERT_TRUE(fputs(text, f) >= 0);
	ASSERT_EQ_INT(fclose(f), 0);
}

/* defaults < file < PASSPORTD_<NAME> < command line; the first bad value stops the load. */
static void test_load_precedence(void)
{
	struct config c;
	struct config_sources sources = {0};
	char path[64], err[512];

	write_temp_file(path, sizeof(path), "batch_size = 10\nmax_attempts = 7\nretry_cap = 99\n");
	sources.path = path;
	sources.path_required = true;
	sources.override_names[0] = "max_attempts";
	sources.override_values[0] = "8";
	sources.n_overrides = 1;
	ASSERT_EQ_INT(setenv("PASSPORTD_BATCH_SIZE", "20", 1), 0);
	ASSERT_EQ_INT(setenv("PASSPORTD_MAX_ATTEMPTS", "30", 1), 0);

	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), 0);
	ASSERT_EQ_DBL(c.retry_cap, 99.0, 0); /* file over default */
	ASSERT_EQ_INT(c.batch_size, 20);     /* environment over file */
	ASSERT_EQ_INT(c.max_attempts, 8);    /* command line over environment */
	ASSERT_EQ_INT(c.workers, 0);         /* default: derived from the machine */
	config_finish(&c);

	sources.override_values[0] = "0";
	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), -1);
	ASSERT_TRUE(strstr(err, "max_attempts") != NULL);
	config_finish(&c);
	ASSERT_EQ_INT(unsetenv("PASSPORTD_BATCH_SIZE"), 0);
	ASSERT_EQ_INT(unsetenv("PASSPORTD_MAX_ATTEMPTS"), 0);
	ASSERT_EQ_INT(unlink(path), 0);

	/* A missing file is an error only when it was named with --config. */
	sources.n_overrides = 0;
	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), -1);
	ASSERT_TRUE(strstr(err, path) != NULL);
	sources.path_required = false;
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), 0);
	ASSERT_EQ_INT(c.batch_size, 1000);
	config_finish(&c);
}

/*
 * Edge cases that must be refused rather than read kindly: a directory given as the file (it
 * opens and reads as empty, so a later SIGHUP would reset every option), a PASSPORTD_ variable
 * that names no option (a typo), and an empty systems list (every entry marked processed with
 * nothing delivered).
 */
static void test_refused_sources(void)
{
	struct config c;
	struct config_sources sources = {0};
	char err[512];

	config_init(&c);
	sources.path = "/tmp";
	sources.path_required = false;
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), -1);
	ASSERT_STR_CONTAINS(err, "/tmp: is a directory");
	sources.path_required = true;
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), -1);
	config_finish(&c);

	sources.path = "/nonexistent/passportd.conf";
	sources.path_required = false;
	ASSERT_EQ_INT(setenv("PASSPORTD_BATCH_SIZ", "20", 1), 0);
	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), -1);
	ASSERT_STR_CONTAINS(err, "PASSPORTD_BATCH_SIZ: no such option");
	config_finish(&c);
	ASSERT_EQ_INT(unsetenv("PASSPORTD_BATCH_SIZ"), 0);
	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), 0);
	config_finish(&c);

	config_init(&c);
	for (int i = 0; i < 3; i++) {
		static const char *const empty[] = {"", " ", " , ,\t"};
		ASSERT_EQ_INT(config_set(&c, "systems", empty[i], err, sizeof(err)), -1);
		ASSERT_STR_CONTAINS(err, "systems: empty");
	}
	ASSERT_EQ_INT(c.systems, SYSTEM_ALL);
	ASSERT_EQ_INT(config_set(&c, "systems", "coliseum", err, sizeof(err)), 0);
	ASSERT_EQ_INT(c.systems, SYSTEM_COLISEUM);
	config_finish(&c);
}

/* A value of the option different from its default, as text. */
static const char *other_value(const struct config_option *o, char *buffer, size_t size)
{
	static const char *const candidates[][2] = {
		[CONFIG_BOOL] = {"false", "true"},
		[CONFIG_STRING] = {"host=elsewhere dbname=other", "host=db"},
		[CONFIG_LOG_LEVEL] = {"debug", "error"},
		[CONFIG_LOG_FORMAT] = {"json", "plain"},
		[CONFIG_SYSTEMS] = {"coliseum", "treasury"},
		[CONFIG_LISTEN_ADDRESS] = {"127.0.0.1:9189", "[::1]:9190"},
	};
	struct config defaults;
	char *default_text;

	switch (o->type) {
	case CONFIG_INT:
	case CONFIG_LONG:
		snprintf(buffer, size, "%.0f", o->max);
		break;
	case CONFIG_DOUBLE:
		snprintf(buffer, size, "%g", o->max);
		break;
	default:
		snprintf(buffer, size, "%s", candidates[o->type][0]);
		break;
	}
	config_init(&defaults);
	default_text = config_value_text(&defaults, o);
	if (strcmp(default_text, buffer) == 0) {
		if (o->type == CONFIG_INT || o->type == CONFIG_LONG)
			snprintf(buffer, size, "%.0f", o->min);
		else if (o->type == CONFIG_DOUBLE)
			snprintf(buffer, size, "%g", o->min);
		else
			snprintf(buffer, size, "%s", candidates[o->type][1]);
	}
	free(default_text);
	config_finish(&defaults);
	return buffer;
}

/*
 * For every option of the table alone: a reload takes a reloadable option's new value, and keeps
 * any other option's start-up value and counts it as an ignored change.
 */
static void test_reload_follows_the_table(void)
{
	for (const struct config_option *o = config_options; o->name; o++) {
		struct config running, fresh;
		char value[128], err[256];
		char *before, *wanted, *after;

		config_init(&running);
		config_init(&fresh);
		ASSERT_EQ_INT(config_set(&fresh, o->name, other_value(o, value, sizeof(value)), err, sizeof(err)), 0);
		before = config_value_text(&running, o);
		wanted = config_value_text(&fresh, o);
		ASSERT_TRUE(strcmp(before, wanted) != 0);

		ASSERT_EQ_INT(config_apply_reload(&running, &fresh), o->reloadable ? 0 : 1);
		config_finish(&fresh); /* the running config must not share anything with fresh */
		after = config_value_text(&running, o);
		if (o->reloadable)
			ASSERT_STR_EQ(after, wanted);
		else
			ASSERT_STR_EQ(after, before);
		free(before);
		free(wanted);
		free(after);
		config_finish(&running);
	}
}

/* A reload of everything at once: today's eight reloadable fields change, the four others do not. */
static void test_reload_everything(void)
{
	struct config running, fresh;
	char err[256];

	config_init(&running);
	config_init(&fresh);
	ASSERT_EQ_INT(config_set(&running, "dsn", "host=db dbname=app", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "dsn", "host=other dbname=app", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "batch_size", "7", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "workers", "3", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "poll_interval", "0.5", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "log_level", "debug", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "log_format", "json", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "listen", "false", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "systems", "coliseum,treasury", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "max_attempts", "9", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "retry_base", "1.5", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "retry_cap", "120", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "max_payload_bytes", "2048", err, sizeof(err)), 0);

	ASSERT_EQ_INT(config_apply_reload(&running, &fresh), 4);
	ASSERT_EQ_INT(running.batch_size, 7);
	ASSERT_EQ_DBL(running.poll_interval, 0.5, 0);
	ASSERT_EQ_INT(running.log_level, LOG_LEVEL_DEBUG);
	ASSERT_EQ_INT(running.systems, SYSTEM_COLISEUM | SYSTEM_TREASURY);
	ASSERT_EQ_INT(running.max_attempts, 9);
	ASSERT_EQ_DBL(running.retry_base, 1.5, 0);
	ASSERT_EQ_DBL(running.retry_cap, 120.0, 0);
	ASSERT_EQ_INT(running.max_payload_bytes, 2048);
	ASSERT_STR_EQ(running.dsn, "host=db dbname=app");
	ASSERT_EQ_INT(running.workers, 0);
	ASSERT_EQ_INT(running.log_format, LOG_FORMAT_AUTO);
	ASSERT_TRUE(running.listen);
	/* fresh is left as it was. */
	ASSERT_EQ_INT(fresh.batch_size, 7);
	ASSERT_STR_EQ(fresh.dsn, "host=other dbname=app");

	/* A second reload of the same values changes nothing and reports the same ignored options. */
	ASSERT_EQ_INT(config_apply_reload(&running, &fresh), 4);
	ASSERT_EQ_INT(running.batch_size, 7);
	config_finish(&running);
	config_finish(&fresh);
}

/*
 * Options are compared as printed, as today: a DSN whose password alone changed prints the same
 * and is not reported (the daemon keeps the start-up DSN either way).
 */
static void test_reload_dsn_compared_as_printed(void)
{
	struct config running, fresh;
	char err[256];

	config_init(&running);
	config_init(&fresh);
	ASSERT_EQ_INT(config_set(&running, "dsn", "host=db password=old", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_set(&fresh, "dsn", "host=db password=new", err, sizeof(err)), 0);
	ASSERT_EQ_INT(config_apply_reload(&running, &fresh), 0);
	ASSERT_STR_EQ(running.dsn, "host=db password=old");
	config_finish(&running);
	config_finish(&fresh);
}

/*
 * The connection string: --dsn > PASSPORTD_DSN > PASSPORT_DATABASE_URL > the file's dsn > libpq's
 * environment, and --print-config says which one, never the password.
 */
static void test_dsn_origin(void)
{
	struct config c;
	struct config_sources sources = {0};
	char path[64], err[512], *printed = NULL;
	size_t printed_len = 0;
	FILE *out;

	write_temp_file(path, sizeof(path), "dsn = dbname=fromfile password=file-secret\n");
	sources.path = path;
	ASSERT_EQ_INT(unsetenv("PASSPORTD_DSN"), 0);
	ASSERT_EQ_INT(unsetenv("PASSPORT_DATABASE_URL"), 0);

	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), 0);
	ASSERT_STR_EQ(c.dsn, "dbname=fromfile password=file-secret");
	ASSERT_TRUE(strstr(c.dsn_origin, path) != NULL);
	config_finish(&c);

	ASSERT_EQ_INT(setenv("PASSPORT_DATABASE_URL", "postgresql://u:url-secret@h/fromurl", 1), 0);
	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), 0);
	ASSERT_STR_EQ(c.dsn, "postgresql://u:url-secret@h/fromurl"); /* the environment beats the file */
	ASSERT_STR_EQ(c.dsn_origin, "PASSPORT_DATABASE_URL");
	out = open_memstream(&printed, &printed_len);
	ASSERT_NOT_NULL(out);
	config_print(&c, out);
	ASSERT_EQ_INT(fclose(out), 0);
	ASSERT_STR_CONTAINS(printed, "# dsn from PASSPORT_DATABASE_URL\n");
	ASSERT_STR_CONTAINS(printed, "dbname='fromurl'");
	ASSERT_STR_NOT_CONTAINS(printed, "url-secret");
	free(printed);
	config_finish(&c);

	ASSERT_EQ_INT(setenv("PASSPORTD_DSN", "dbname=fromoption", 1), 0);
	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), 0);
	ASSERT_STR_EQ(c.dsn, "dbname=fromoption");
	ASSERT_STR_EQ(c.dsn_origin, "PASSPORTD_DSN");
	config_finish(&c);

	sources.override_names[0] = "dsn";
	sources.override_values[0] = "dbname=fromcommandline";
	sources.n_overrides = 1;
	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), 0);
	ASSERT_STR_EQ(c.dsn, "dbname=fromcommandline");
	ASSERT_STR_EQ(c.dsn_origin, "--dsn");
	config_finish(&c);
	ASSERT_EQ_INT(unsetenv("PASSPORTD_DSN"), 0);
	ASSERT_EQ_INT(unsetenv("PASSPORT_DATABASE_URL"), 0);
	ASSERT_EQ_INT(unlink(path), 0);

	/* Nothing anywhere: libpq's own environment. */
	sources.path = "/nonexistent/passportd.conf";
	sources.n_overrides = 0;
	config_init(&c);
	ASSERT_EQ_INT(config_load(&c, &sources, err, sizeof(err)), 0);
	ASSERT_STR_EQ(c.dsn, "");
	ASSERT_TRUE(strstr(c.dsn_origin, "libpq") != NULL);
	config_finish(&c);
}

/* A connection's defaults are fallbacks: the connection string comes last, so its values win. */
static void test_connection_defaults_are_fallbacks(void)
{
	const char *keys[DB_CONNECTION_PARAMS_MAX], *values[DB_CONNECTION_PARAMS_MAX];
	const char *const extra_keys[] = {"keepalives_idle", NULL}, *const extra_values[] = {"30", NULL};
	int n = 0;

	ASSERT_EQ_INT(unsetenv("PGCONNECT_TIMEOUT"), 0);
	ASSERT_EQ_INT(unsetenv("PGSERVICE"), 0);
	db_connection_params("host=h application_name=mine", "passportd", extra_keys, extra_values, keys, values);
	while (keys[n])
		n++;
	ASSERT_STR_EQ(keys[0], "fallback_application_name");
	ASSERT_STR_EQ(values[0], "passportd");
	ASSERT_STR_EQ(keys[1], "connect_timeout");
	ASSERT_STR_EQ(values[1], "10");
	ASSERT_STR_EQ(keys[2], "keepalives_idle");
	ASSERT_STR_EQ(keys[n - 1], "dbname");
	ASSERT_STR_EQ(values[n - 1], "host=h application_name=mine");

	/* The user's connect_timeout (in the string, the environment or a service file) is left alone. */
	db_connection_params("host=h connect_timeout=3", "passportd", NULL, NULL, keys, values);
	ASSERT_STR_EQ(keys[1], "dbname");
	ASSERT_EQ_INT(setenv("PGCONNECT_TIMEOUT", "4", 1), 0);
	db_connection_params("host=h", "passportd", NULL, NULL, keys, values);
	ASSERT_STR_EQ(keys[1], "dbname");
	ASSERT_EQ_INT(unsetenv("PGCONNECT_TIMEOUT"), 0);
	db_connection_params("service=prod", "passportd", NULL, NULL, keys, values);
	ASSERT_STR_EQ(keys[1], "dbname");
}

/* The value libpq settles on for keyword in a passportd connection made to dsn. */
static char *conninfo_value(const char *dsn, const char *keyword)
{
	const char *keys[DB_CONNECTION_PARAMS_MAX], *values[DB_CONNECTION_PARAMS_MAX];
	PQconninfoOption *options;
	PGconn *conn;
	char *value = NULL;

	db_connection_params(dsn, "test", db_liveness_keys, db_liveness_values, keys, values);
	/* Started, never driven: libpq has parsed the options without connecting. */
	conn = PQconnectStartParams(keys, values, 1);
	ASSERT_NOT_NULL(conn);
	options = PQconninfo(conn);
	ASSERT_NOT_NULL(options);
	for (PQconninfoOption *o = options; o->keyword; o++)
		if (strcmp(o->keyword, keyword) == 0 && o->val)
			value = strdup(o->val);
	PQconninfoFree(options);
	PQfinish(conn);
	return value;
}

/* Every connection gets keepalives and tcp_user_timeout, unless the connection string says otherwise. */
static void test_connection_liveness(void)
{
	char *value;

	value = conninfo_value("host=/nonexistent dbname=x", "tcp_user_timeout");
	ASSERT_STR_EQ(value, "60000");
	free(value);
	value = conninfo_value("host=/nonexistent dbname=x", "keepalives_idle");
	ASSERT_STR_EQ(value, "30");
	free(value);
	value = conninfo_value("host=/nonexistent dbname=x keepalives_idle=7 tcp_user_timeout=5000", "keepalives_idle");
	ASSERT_STR_EQ(value, "7");
	free(value);
	value = conninfo_value("postgresql:///x?host=/nonexistent&tcp_user_timeout=5000", "tcp_user_timeout");
	ASSERT_STR_EQ(value, "5000");
	free(value);
}

int main(void)
{
	test_refused_sources();
	test_defaults_and_set();
	test_password_never_printed();
	test_example_file_in_step();
	test_defaults_from_the_table();
	test_derived_workers();
	test_config_to_batch();
	test_load_precedence();
	test_reload_follows_the_table();
	test_reload_everything();
	test_reload_dsn_compared_as_printed();
	test_dsn_origin();
	test_connection_defaults_are_fallbacks();
	test_connection_liveness();
	TEST_PASS();
}
