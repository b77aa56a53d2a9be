/* harness: integration-test helpers: throwaway databases on the private server, SQL, child programs. */
#include "harness.h"

#include "batch.h"
#include "config.h"
#include "db.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* A connection-string value in single quotes, with ' and \ escaped (libpq keyword form). */
static void append_quoted(char *buf, size_t size, const char *keyword, const char *value)
{
	size_t len = strlen(buf);

	len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s='", len ? " " : "", keyword);
	for (const char *p = value; *p && len + 3 < size; p++) {
		if (*p == '\'' || *p == '\\')
			buf[len++] = '\\';
		buf[len++] = *p;
	}
	if (len + 2 > size)
		FAIL("connection string too long (%s)", keyword);
	buf[len++] = '\'';
	buf[len] = '\0';
}

static void server_dsn(const char *dbname, char *dsn, size_t dsnlen)
{
	const char *host = getenv("PASSPORT_TEST_PGHOST");
	const char *port = getenv("PASSPORT_TEST_PGPORT");

	dsn[0] = '\0';
	append_quoted(dsn, dsnlen, "host", host);
	if (port && *port)
		append_quoted(dsn, dsnlen, "port", port);
	append_quoted(dsn, dsnlen, "user", "postgres");
	append_quoted(dsn, dsnlen, "dbname", dbname);
}

PGconn *harness_connect(const char *dsn)
{
	PGconn *conn = PQconnectdb(dsn);

	if (!conn || PQstatus(conn) != CONNECTION_OK)
		FAIL("cannot connect to %s: %s", dsn, conn ? PQerrorMessage(conn) : "out of memory");
	return conn;
}

void harness_exec(PGconn *conn, const char *sql)
{
	PGresult *result = PQexec(conn, sql);
	ExecStatusType status = PQresultStatus(result);

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY)
		FAIL("SQL failed: %s\n--- SQL ---\n%s\n-----------", PQresultErrorMessage(result), sql);
	PQclear(result);
}

static PGresult *query_one(PGconn *conn, const char *sql)
{
	PGresult *result = PQexec(conn, sql);

	if (PQresultStatus(result) != PGRES_TUPLES_OK)
		FAIL("query failed: %s\n--- SQL ---\n%s\n-----------", PQresultErrorMessage(result), sql);
	if (PQntuples(result) < 1 || PQnfields(result) < 1)
		FAIL("query returned no rows: %s", sql);
	return result;
}

long long harness_query_int(PGconn *conn, const char *sql)
{
	PGresult *result = query_one(conn, sql);
	char *end;
	long long value;

	if (PQgetisnull(result, 0, 0))
		FAIL("query returned NULL where a number was expected: %s", sql);
	errno = 0;
	value = strtoll(PQgetvalue(result, 0, 0), &end, 10);
	if (errno != 0 || *end != '\0' || end == PQgetvalue(result, 0, 0))
		FAIL("query returned '%s', not an integer: %s", PQgetvalue(result, 0, 0), sql);
	PQclear(result);
	return value;
}

char *harness_query_text(PGconn *conn, const char *sql)
{
	PGresult *result = query_one(conn, sql);
	char *value = NULL;

	if (!PQgetisnull(result, 0, 0)) {
		value = strdup(PQgetvalue(result, 0, 0));
		if (!value)
			FAIL("out of memory");
	}
	PQclear(result);
	return value;
}

char *harness_vformat(const char *fmt, va_list ap)
{
	char *out = NULL;

	if (vasprintf(&out, fmt, ap) < 0)
		FAIL("out of memory");
	return out;
}

void harness_execf(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	char *sql;

	va_start(ap, fmt);
	sql = harness_vformat(fmt, ap);
	va_end(ap);
	harness_exec(conn, sql);
	free(sql);
}

long long harness_intf(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	long long value;

	va_start(ap, fmt);
	sql = harness_vformat(fmt, ap);
	va_end(ap);
	value = harness_query_int(conn, sql);
	free(sql);
	return value;
}

char *harness_textf(PGconn *conn, const char *fmt, ...)
{
	va_list ap;
	char *sql, *value;

	va_start(ap, fmt);
	sql = harness_vformat(fmt, ap);
	va_end(ap);
	value = harness_query_text(conn, sql);
	free(sql);
	return value;
}

char *harness_read_file(const char *path)
{
	FILE *file = fopen(path, "rb");
	char *text;
	long size;

	if (!file)
		FAIL("cannot open %s: %s", path, strerror(errno));
	if (fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 || fseek(file, 0, SEEK_SET) != 0)
		FAIL("cannot size %s: %s", path, strerror(errno));
	text = malloc((size_t)size + 1);
	if (!text)
		FAIL("out of memory");
	if (fread(text, 1, (size_t)size, file) != (size_t)size)
		FAIL("cannot read %s", path);
	text[size] = '\0';
	fclose(file);
	return text;
}

void harness_exec_source_file(PGconn *conn, const char *relative)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char path[4096];
	char *sql;

	if (!root || !*root)
		FAIL("PASSPORT_SOURCE_ROOT is not set (run the tests through meson)");
	snprintf(path, sizeof path, "%s/%s", root, relative);
	sql = harness_read_file(path);
	harness_exec(conn, sql);
	free(sql);
}

PGconn *harness_create_database(const char *name, const char *mel_layout, char *dsn, size_t dsnlen)
{
	char dbname[128], admin_dsn[1024], sql[512], path[256];
	char *quoted, *output = NULL;
	PGconn *admin, *conn;
	int status;

	if (!getenv("PASSPORT_TEST_PGHOST") || !*getenv("PASSPORT_TEST_PGHOST")) {
		fprintf(stderr, "SKIP: PASSPORT_TEST_PGHOST is not set (run ./scripts/test)\n");
		exit(77);
	}
	if (mel_layout && strcmp(mel_layout, "canonical") != 0 && strcmp(mel_layout, "production") != 0)
		FAIL("unknown media_engagement_log layout '%s'", mel_layout);
	if ((size_t)snprintf(dbname, sizeof dbname, "t_%s", name) >= sizeof dbname)
		FAIL("database name too long: t_%s", name);

	server_dsn("postgres", admin_dsn, sizeof admin_dsn);
	admin = harness_connect(admin_dsn);
	harness_exec(admin, "SET client_min_messages = warning");
	quoted = PQescapeIdentifier(admin, dbname, strlen(dbname));
	if (!quoted)
		FAIL("cannot quote %s: %s", dbname, PQerrorMessage(admin));
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", quoted);
	harness_exec(admin, sql);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", quoted);
	harness_exec(admin, sql);
	PQfreemem(quoted);
	PQfinish(admin);

	server_dsn(dbname, dsn, dsnlen);
	conn = harness_connect(dsn);
	harness_exec(conn, "SET client_min_messages = warning");
	harness_exec_source_file(conn, "tests/sql/upstream.sql");
	if (mel_layout) {
		snprintf(path, sizeof path, "tests/sql/media_engagement_log_%s.sql", mel_layout);
		harness_exec_source_file(conn, path);
	}
	harness_exec(conn, "RESET client_min_messages");

	{
		const char *argv[] = {harness_migrate(), "schema", "--dsn", dsn, NULL};
		status = harness_run(argv, NULL, &output);
	}
	if (status != 0)
		FAIL("passport-migrate schema failed with status %d on %s:\n%s", status, dbname,
		     output ? output : "");
	free(output);
	harness_allow_role_login(conn);
	return conn;
}

void harness_allow_role_login(PGconn *conn)
{
	/*
	 * Roles are shared by the whole cluster and tests run in parallel: two ALTER ROLEs of one
	 * role at once can fail with "tuple concurrently updated", after which the role can log in
	 * anyway. So alter only when needed, and take that failure as done.
	 */
	harness_exec(conn,
		     "DO $$ DECLARE r text; BEGIN"
		     " FOREACH r IN ARRAY ARRAY['passportd', 'passport_migrate'] LOOP"
		     "  IF NOT (SELECT rolcanlogin FROM pg_roles WHERE rolname = r) THEN"
		     "   BEGIN EXECUTE format('ALTER ROLE %I LOGIN', r);"
		     "   EXCEPTION WHEN internal_error THEN NULL; END;"
		     "  END IF;"
		     " END LOOP; END $$");
}

void harness_role_dsn(const char *dsn, const char *role, char *out, size_t outlen)
{
	/* In a keyword connection string the last occurrence of a keyword wins. */
	if ((size_t)snprintf(out, outlen, "%s user=%s", dsn, role) >= outlen)
		FAIL("connection string too long");
}

/* Echo captured output to stderr, each line prefixed with the program's base name. */
static void echo_output(const char *program, const char *text, size_t len)
{
	const char *base = strrchr(program, '/');
	size_t start = 0;

	base = base ? base + 1 : program;
	while (start < len) {
		const char *newline = memchr(text + start, '\n', len - start);
		size_t end = newline ? (size_t)(newline - text) : len;

		fprintf(stderr, "[%s] %.*s\n", base, (int)(end - start), text + start);
		start = end + 1;
	}
	fflush(stderr);
}

int harness_run(const char *const argv[], const char *const env[], char **output)
{
	int fds[2];
	pid_t pid;
	char *buffer = NULL;
	size_t len = 0, capacity = 0;
	int wstatus;

	if (pipe(fds) != 0)
		FAIL("pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		if (dup2(fds[1], STDOUT_FILENO) < 0 || dup2(fds[1], STDERR_FILENO) < 0)
			_exit(127);
		close(fds[1]);
		for (size_t i = 0; env && env[i]; i++) {
			char *assignment = strdup(env[i]);
			if (!assignment || putenv(assignment) != 0)
				_exit(127);
		}
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot execute %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);

	for (;;) {
		ssize_t got;

		if (capacity - len < 4096) {
			capacity = capacity ? capacity * 2 : 16384;
			buffer = realloc(buffer, capacity);
			if (!buffer)
				FAIL("out of memory");
		}
		got = read(fds[0], buffer + len, capacity - len - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			FAIL("reading from %s: %s", argv[0], strerror(errno));
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fds[0]);
	buffer[len] = '\0';

	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR)
			FAIL("waitpid: %s", strerror(errno));
	}

	echo_output(argv[0], buffer, len);
	if (output)
		*output = buffer;
	else
		free(buffer);

	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return -1;
}

static const char *program_from_env(const char *variable)
{
	const char *path = getenv(variable);

	if (!path || !*path)
		FAIL("%s is not set (run the tests through meson)", variable);
	return path;
}

const char *harness_passportd(void)
{
	return program_from_env("PASSPORTD");
}

const char *harness_migrate(void)
{
	return program_from_env("PASSPORT_MIGRATE");
}

struct processor *harness_open_processor(const char *dsn, int batch_size, PGconn **conn)
{
	return harness_open_processor_sharing(dsn, batch_size, NULL, conn);
}

struct processor *harness_open_processor_sharing(const char *dsn, int batch_size, struct entity_cache *cache,
						 PGconn **conn)
{
	struct config config;
	struct batch_config batch;
	struct db_error error;
	struct processor *p;

	config_init(&config);
	config_to_batch(&config, &batch);
	config_finish(&config);
	batch.batch_size = batch_size;
	batch.shared_entities = cache;
	*conn = harness_connect(dsn);
	p = processor_create(*conn, &batch, &error);
	if (!p) {
		fprintf(stderr, "processor_create: %s\n", error.message);
		FAIL("the processor could not be created");
	}
	return p;
}

PGconn *harness_open_workload(const char *name, int users, int per_user, char *dsn, size_t dsnlen)
{
	PGconn *conn = harness_create_database(name, NULL, dsn, dsnlen);

	harness_exec(conn, "SET client_min_messages = warning");
	harness_exec_source_file(conn, "tests/sql/workload.sql");
	ASSERT_EQ_INT(harness_intf(conn, "SELECT passport_test_workload(%d, %d)", users, per_user), users * per_user);
	return conn;
}
