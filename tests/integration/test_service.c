/*
 * test_service: `passportd run` as a real child process against real PostgreSQL servers: NOTIFY
 * and polling, retries, a server restart, terminated backends, SIGTERM mid-run, SIGHUP reload,
 * sd_notify, three daemons at once; and `status`, `reprocess` and `--print-config`.
 *
 * Every program the test starts is a child whose stdout and stderr go to a log file; the logs
 * are printed when a check fails, and every child is killed at exit (and with the test itself,
 * PR_SET_PDEATHSIG). The restart case runs a second, private server of its own, because the
 * shared test server must stay up for the other tests.
 *
 * PASSPORT_SERVICE_CASES=notify,poll,... runs only the named cases (names in `cases` below);
 * PASSPORT_TEST_KEEP=1 keeps the logs of a passing run. The children and their logs are
 * integration/children.c's.
 */
#include "integration/harness.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "build_config.h"
#include "integration/children.h"

#define MAX_ARGS 32

/* Event types of tests/sql/workload.sql whose default route (SPEC appendix B) includes a system. */
#define MEDIAID_TYPES                                                                                 \
	"('player.track_played', 'player.track_completed', 'player.track_skipped',"                  \
	" 'player.track_favorited', 'social.content_liked', 'discovery.artist_discovered',"          \
	" 'concierto.event_attended', 'concierto.vote_cast', 'concierto.ticket_purchased',"          \
	" 'treasury.subscription_started', 'mediaid.setup_completed')"
#define COLISEUM_TYPES                                                                                \
	"('player.track_played', 'player.track_completed', 'player.track_skipped',"                  \
	" 'player.track_favorited', 'player.track_paused', 'social.content_liked',"                  \
	" 'discovery.artist_discovered', 'concierto.event_attended', 'concierto.vote_cast',"         \
	" 'concierto.ticket_purchased', 'treasury.subscription_started')"
#define ROUTES_TO(list, system)                                                                       \
	"((cardinality(e.affects_systems) = 0 AND e.event_type IN " list ")"                          \
	" OR '" system "' = ANY(e.affects_systems))"

/* ---- files -------------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
	FILE *file = fopen(path, "w");

	if (!file)
		FAIL("cannot create %s: %s", path, strerror(errno));
	ASSERT_GE_INT(fputs(text, file), 0);
	ASSERT_EQ_INT(fclose(file), 0);
}

static int count_occurrences(const char *text, const char *needle)
{
	int count = 0;

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		count++;
	return count;
}

/* ---- children (integration/children.c) ----------------------------------------------------- */

/* The second, private server of the restart case (empty when none is running). */
static char server2_dir[512];
static int server2_port;

static void server2_stop_quietly(const char *mode);

/* At exit: the second server's log when a case failed, and the server stopped. */
static void server2_at_exit(bool passed)
{
	if (!server2_dir[0])
		return;
	if (!passed) {
		char path[600];
		snprintf(path, sizeof path, "%s/server.log", server2_dir);
		children_print_file("second PostgreSQL server log", path, 16000);
	}
	server2_stop_quietly("immediate");
}

/* child_stop, and how long the child took to exit after the signal. */
static int child_stop_timed(struct child *c, int sig, double timeout, double *took)
{
	double started = children_now();
	int status = child_stop(c, sig, timeout);

	*took = children_now() - started;
	return status;
}

/*
 * Run passportd with the given arguments to completion (at most timeout seconds); returns the
 * exit status and the combined output in *output (malloc'd).
 */
static int run_passportd(char **output, double timeout, const char *const env[], const char *label, ...)
{
	const char *args[MAX_ARGS];
	int n = 0;
	va_list ap;
	const char *arg;
	struct child *c;

	va_start(ap, label);
	while ((arg = va_arg(ap, const char *)) != NULL) {
		ASSERT_LT_INT(n, MAX_ARGS - 1);
		args[n++] = arg;
	}
	va_end(ap);
	args[n] = NULL;
	c = daemon_start(label, args, env);
	if (!child_wait(c, timeout))
		FAIL("passportd %s did not finish within %.0f s", label, timeout);
	child_check_sanitizers(c);
	*output = child_log(c);
	return c->status;
}

/* CPU time (user + system) a process has used so far, in seconds. */
static double process_cpu_seconds(pid_t pid)
{
	char path[64], *text, *p;
	unsigned long utime = 0, stime = 0;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	text = children_read_file(path);
	p = strrchr(text, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		FAIL("cannot parse %s: %s", path, text);
	free(text);
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- databases ---------------------------------------------------------------------------- */

static void append_quoted(char *buf, size_t size, const char *keyword, const char *value)
{
	size_t len = strlen(buf);

	len += (size_t)snprintf(buf + len, size - len, "%s%s='", len ? " " : "", keyword);
	for (const char *p = value; *p && len + 3 < size; p++) {
		if (*p == '\'' || *p == '\\')
			buf[len++] = '\\';
		buf[len++] = *p;
	}
	ASSERT_LT_INT(len + 2, size);
	buf[len++] = '\'';
	buf[len] = '\0';
}

static void make_dsn(char *dsn, size_t size, const char *host, const char *port, const char *dbname)
{
	dsn[0] = '\0';
	append_quoted(dsn, size, "host", host);
	if (port && *port)
		append_quoted(dsn, size, "port", port);
	append_quoted(dsn, size, "user", "postgres");
	append_quoted(dsn, size, "dbname", dbname);
}

/* A fresh database t_<name> with the upstream tables, the schema and the workload functions. */
static PGconn *create_database(const char *name, char *dsn, size_t dsnlen)
{
	PGconn *conn = harness_create_database(name, NULL, dsn, dsnlen);

	harness_exec(conn, "SET client_min_messages = warning");
	harness_exec_source_file(conn, "tests/sql/workload.sql");
	harness_exec(conn, "RESET client_min_messages");
	return conn;
}

/* t_<target> as a copy of t_<source> (nobody may be connected to the source). */
static PGconn *clone_database(const char *source, const char *target, char *dsn, size_t dsnlen)
{
	char admin_dsn[1024], sql[512], dbname[128];
	PGconn *admin;

	make_dsn(admin_dsn, sizeof admin_dsn, getenv("PASSPORT_TEST_PGHOST"), getenv("PASSPORT_TEST_PGPORT"),
		 "postgres");
	admin = harness_connect(admin_dsn);
	harness_exec(admin, "SET client_min_messages = warning");
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS t_%s WITH (FORCE)", target);
	harness_exec(admin, sql);
	snprintf(sql, sizeof sql, "CREATE DATABASE t_%s TEMPLATE t_%s", target, source);
	harness_exec(admin, sql);
	PQfinish(admin);
	snprintf(dbname, sizeof dbname, "t_%s", target);
	make_dsn(dsn, dsnlen, getenv("PASSPORT_TEST_PGHOST"), getenv("PASSPORT_TEST_PGPORT"), dbname);
	return harness_connect(dsn);
}

static long long query_int(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static long long query_int(PGconn *conn, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	return harness_query_int(conn, sql);
}

static void exec_sql(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void exec_sql(PGconn *conn, const char *fmt, ...)
{
	char sql[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof sql, fmt, ap);
	va_end(ap);
	harness_exec(conn, sql);
}

/*
 * Wait until the integer query sql returns non-zero; returns the seconds it took, or -1 after
 * timeout. Fails at once when watch (may be NULL) exits meanwhile.
 */
static double wait_for_sql(PGconn *conn, const char *sql, double timeout, struct child *watch)
{
	double started = children_now();

	for (;;) {
		if (harness_query_int(conn, sql) != 0)
			return children_now() - started;
		if (watch && !child_alive(watch))
			FAIL("%s exited (status %d) while waiting for: %s", watch->label, watch->status, sql);
		if (children_now() - started >= timeout)
			return -1;
		children_sleep(0.01);
	}
}

static void require_sql(PGconn *conn, const char *sql, double timeout, struct child *watch)
{
	if (wait_for_sql(conn, sql, timeout, watch) < 0)
		FAIL("not true within %.1f s: %s", timeout, sql);
}

/* A fan media_ids row for the user passport_test_uuid('user-<key>') (NULL embedding). */
static void add_media_row(PGconn *conn, const char *key)
{
	exec_sql(conn,
		 "INSERT INTO media_ids (id, user_uuid, role) VALUES (passport_test_uuid('row-%s'),"
		 " passport_test_uuid('user-%s'), 'fan')",
		 key, key);
}

/* Insert one entry of user <key> routed to systems (an array literal); returns its id (free it). */
static char *insert_entry(PGconn *conn, const char *key, const char *systems)
{
	char sql[1024];

	snprintf(sql, sizeof sql,
		 "INSERT INTO passport_entries (user_id, event_type, event_category, payload, affects_systems)"
		 " VALUES (passport_test_uuid('user-%s'), 'player.track_played', 'player', '{}', '%s')"
		 " RETURNING id::text",
		 key, systems);
	return harness_query_text(conn, sql);
}

static bool entry_processed(PGconn *conn, const char *id)
{
	return query_int(conn, "SELECT processed::int FROM passport_entries WHERE id = '%s'", id) != 0;
}

/* Wait until entry id is processed; returns the seconds it took, or -1 after timeout. */
static double wait_processed(PGconn *conn, const char *id, double timeout, struct child *watch)
{
	char sql[256];

	snprintf(sql, sizeof sql, "SELECT processed::int FROM passport_entries WHERE id = '%s'", id);
	return wait_for_sql(conn, sql, timeout, watch);
}

/* Wait until nothing is due and no worker of passportd is inside a transaction. */
static void wait_drained(PGconn *conn, double timeout, struct child *watch)
{
	require_sql(conn,
		    "SELECT (NOT EXISTS (SELECT 1 FROM passport_entries WHERE NOT processed AND dead_at IS NULL"
		    "   AND (next_attempt_at IS NULL OR next_attempt_at <= now()))"
		    " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
		    "   AND application_name = 'passportd worker' AND state <> 'idle'))::int",
		    timeout, watch);
}

/*
 * The invariants of exactly-once, all-or-nothing processing: every processed entry has the
 * effects of its systems, no unprocessed entry has any, nothing is applied twice, and each DNA
 * row's clock is the latest event time among the entries applied to it (the row and its
 * evolution rows were written together). Assumes every dna_clock started NULL.
 */
static void check_consistent(PGconn *conn, const char *when)
{
	long long n;

	printf("  consistency %s: %lld processed, %lld unprocessed\n", when,
	       harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed"),
	       harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"));
	n = harness_query_int(conn, "SELECT count(*) FROM passport_entries e WHERE e.processed AND "
			      ROUTES_TO(MEDIAID_TYPES, "mediaid")
			      " AND NOT EXISTS (SELECT 1 FROM dna_evolution d WHERE d.passport_entry_id = e.id)");
	if (n != 0)
		FAIL("%s: %lld processed mediaid entries have no dna_evolution row", when, n);
	n = harness_query_int(conn, "SELECT count(*) FROM passport_entries e WHERE e.processed AND "
			      ROUTES_TO(COLISEUM_TYPES, "coliseum")
			      " AND NOT EXISTS (SELECT 1 FROM coliseum_metrics c WHERE c.passport_entry_id = e.id)");
	if (n != 0)
		FAIL("%s: %lld processed coliseum entries have no coliseum_metrics row", when, n);
	n = harness_query_int(conn, "SELECT count(*) FROM dna_evolution d JOIN passport_entries e"
			      " ON e.id = d.passport_entry_id WHERE NOT e.processed");
	if (n != 0)
		FAIL("%s: %lld dna_evolution rows belong to unprocessed entries (half-applied)", when, n);
	n = harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics c JOIN passport_entries e"
			      " ON e.id = c.passport_entry_id WHERE NOT e.processed");
	if (n != 0)
		FAIL("%s: %lld coliseum_metrics rows belong to unprocessed entries (half-applied)", when, n);
	n = harness_query_int(conn, "SELECT count(*) - count(DISTINCT passport_entry_id) FROM dna_evolution");
	if (n != 0)
		FAIL("%s: %lld entries applied to DNA more than once", when, n);
	n = harness_query_int(conn, "SELECT count(*) - count(DISTINCT passport_entry_id) FROM coliseum_metrics");
	if (n != 0)
		FAIL("%s: %lld entries counted in coliseum_metrics more than once", when, n);
	n = harness_query_int(conn, "SELECT count(*) FROM media_ids m WHERE m.dna_clock IS DISTINCT FROM"
			      " (SELECT max(d.event_time) FROM dna_evolution d WHERE d.mediaid_id = m.id)");
	if (n != 0)
		FAIL("%s: %lld DNA rows have a clock that does not match their applied entries", when, n);
}

static void check_all_processed(PGconn *conn, const char *when)
{
	long long n = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed");

	if (n != 0) {
		char *errors = harness_query_text(conn, "SELECT string_agg(DISTINCT coalesce(last_error, '(none)'), '; ')"
						  " FROM passport_entries WHERE NOT processed");
		FAIL("%s: %lld entries are not processed (errors: %s)", when, n, errors ? errors : "");
	}
}

static PGresult *query_rows(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		FAIL("query failed: %s\n%s", PQresultErrorMessage(res), sql);
	return res;
}

/*
 * The DNA of two databases must agree bit for bit: each media_ids row's embedding and clock
 * (compared as text: PostgreSQL prints float4 exactly), and the evolution rows with their factors.
 */
static void compare_dna(PGconn *a, PGconn *b, const char *what)
{
	static const char rows_sql[] =
		"SELECT id::text, coalesce(md5(profile_embedding::text), 'null'), coalesce(dna_clock::text, 'null')"
		" FROM media_ids ORDER BY id";
	static const char evolution_sql[] =
		"SELECT count(*)::text, coalesce(md5(string_agg(concat_ws(' ', passport_entry_id, mediaid_id,"
		" event_type, event_time, target_type, target_id, alpha, decay_cultural, decay_behavioral,"
		" decay_economic, decay_spatial, delta_cultural, delta_behavioral, delta_economic, delta_spatial,"
		" late), ',' ORDER BY passport_entry_id, mediaid_id)), '') FROM dna_evolution";
	PGresult *ra = query_rows(a, rows_sql), *rb = query_rows(b, rows_sql);
	int differ = 0, with_vector = 0;

	ASSERT_EQ_INT(PQntuples(ra), PQntuples(rb));
	for (int i = 0; i < PQntuples(ra); i++) {
		ASSERT_STR_EQ(PQgetvalue(ra, i, 0), PQgetvalue(rb, i, 0));
		if (strcmp(PQgetvalue(ra, i, 1), "null") != 0)
			with_vector++;
		if (strcmp(PQgetvalue(ra, i, 1), PQgetvalue(rb, i, 1)) != 0 ||
		    strcmp(PQgetvalue(ra, i, 2), PQgetvalue(rb, i, 2)) != 0) {
			if (differ < 5)
				fprintf(stderr, "  %s: media_ids %s differs: embedding %s vs %s, clock %s vs %s\n", what,
					PQgetvalue(ra, i, 0), PQgetvalue(ra, i, 1), PQgetvalue(rb, i, 1),
					PQgetvalue(ra, i, 2), PQgetvalue(rb, i, 2));
			differ++;
		}
	}
	if (differ)
		FAIL("%s: %d of %d DNA rows differ", what, differ, PQntuples(ra));
	ASSERT_GT_INT(with_vector, 0);
	printf("  %s: %d DNA rows equal bit for bit\n", what, PQntuples(ra));
	PQclear(ra);
	PQclear(rb);

	ra = query_rows(a, evolution_sql);
	rb = query_rows(b, evolution_sql);
	if (strcmp(PQgetvalue(ra, 0, 0), PQgetvalue(rb, 0, 0)) != 0)
		FAIL("%s: dna_evolution counts differ: %s vs %s", what, PQgetvalue(ra, 0, 0), PQgetvalue(rb, 0, 0));
	if (strcmp(PQgetvalue(ra, 0, 1), PQgetvalue(rb, 0, 1)) != 0)
		FAIL("%s: dna_evolution rows differ (same count %s)", what, PQgetvalue(ra, 0, 0));
	PQclear(ra);
	PQclear(rb);
}

/* ---- the second server (restart case) ------------------------------------------------------ */

/* Run a bash snippet with pg.sh sourced; $1 = source root, $2 = server directory, $3 = extra. */
static int pg_sh(const char *snippet, const char *extra, char **output)
{
	char script[2048];
	const char *argv[] = {"/bin/bash", "-c", script, "pg_sh", getenv("PASSPORT_SOURCE_ROOT"), server2_dir,
			      extra ? extra : "", NULL};

	snprintf(script, sizeof script, "set -e; source \"$1/scripts/lib/pg.sh\"; %s", snippet);
	return harness_run(argv, NULL, output);
}

static void server2_start_first(void)
{
	char *output = NULL, *port;

	snprintf(server2_dir, sizeof server2_dir, "%s/pg2", children_temp_dir());
	if (pg_sh("pg_private_start \"$2\"; echo \"PORT=$PGPORT\"", NULL, &output) != 0)
		FAIL("cannot start the second server:\n%s", output ? output : "");
	port = strstr(output, "PORT=");
	ASSERT_NOT_NULL(port);
	server2_port = atoi(port + 5);
	ASSERT_GT_INT(server2_port, 0);
	free(output);
}

static void server2_stop(const char *mode)
{
	char *output = NULL;

	if (pg_sh("pg_private_as_owner \"$2\" \"$(pg_private_bindir)/pg_ctl\" -D \"$2/data\" -m \"$3\" -w -t 60 stop",
		  mode, &output) != 0)
		FAIL("pg_ctl stop -m %s failed:\n%s", mode, output ? output : "");
	free(output);
}

static void server2_restart(void)
{
	char *output = NULL, port[16];

	snprintf(port, sizeof port, "%d", server2_port);
	if (pg_sh("pg_private_as_owner \"$2\" \"$(pg_private_bindir)/pg_ctl\" -D \"$2/data\" -l \"$2/server.log\""
		  " -w -t 60 -o \"-c listen_addresses='' -c port=$3\" start",
		  port, &output) != 0)
		FAIL("pg_ctl start failed:\n%s", output ? output : "");
	free(output);
}

static void server2_stop_quietly(const char *mode)
{
	char command[1200];

	snprintf(command, sizeof command,
		 "bash -c 'source \"$0/scripts/lib/pg.sh\"; [ -f \"$1/data/postmaster.pid\" ] &&"
		 " pg_private_as_owner \"$1\" \"$(pg_private_bindir)/pg_ctl\" -D \"$1/data\" -m %s -w stop'"
		 " '%s' '%s' >/dev/null 2>&1",
		 mode, getenv("PASSPORT_SOURCE_ROOT"), server2_dir);
	if (system(command) != 0) {
		/* Not running (already stopped): nothing to do. */
	}
}

/* ---- sd_notify ---------------------------------------------------------------------------- */

static int notify_socket_open(const char *path)
{
	struct sockaddr_un addr;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		FAIL("socket: %s", strerror(errno));
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	ASSERT_LT_INT(strlen(path), sizeof addr.sun_path);
	strcpy(addr.sun_path, path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
		FAIL("bind %s: %s", path, strerror(errno));
	return fd;
}

/* Receive one notify datagram into buf (NUL-terminated); false after timeout seconds. */
static bool notify_receive(int fd, char *buf, size_t size, double timeout)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int ready = poll(&pfd, 1, (int)(timeout * 1000));
	ssize_t got;

	if (ready <= 0)
		return false;
	got = recv(fd, buf, size - 1, 0);
	if (got < 0)
		FAIL("recv: %s", strerror(errno));
	buf[got] = '\0';
	return true;
}

/* Discard the notify messages queued so far. */
static void notify_drain(int fd)
{
	char buf[4096];

	while (notify_receive(fd, buf, sizeof buf, 0))
		;
}

/* Drain queued notify messages; true when one of them contains needle. */
static bool notify_seen(int fd, const char *needle, double timeout)
{
	double deadline = children_now() + timeout;
	char buf[4096];

	for (;;) {
		double left = deadline - children_now();
		if (!notify_receive(fd, buf, sizeof buf, left > 0 ? left : 0))
			return false;
		if (strstr(buf, needle))
			return true;
	}
}

/* ---- case 1: notifications ------------------------------------------------------------------ */

static void case_notify(void)
{
	char dsn[1024];
	PGconn *conn = create_database("service_notify", dsn, sizeof dsn);
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "30", NULL};
	struct child *d;

	add_media_row(conn, "n1");
	d = daemon_start("notify", args, NULL);
	require_log(d, "listener: listening for new entries", 1, 10);
	require_log(d, "worker: connected to the database", 1, 10);
	children_sleep(0.3); /* idle: the next poll is 30 s away */

	for (int i = 0; i < 3; i++) {
		double started = children_now(), took;
		char *id = insert_entry(conn, "n1", "{mediaid}");
		char sql[256];
		long long server_ms;

		took = wait_processed(conn, id, 2.0, d);
		if (took < 0)
			FAIL("entry %s was not processed within 2 s of its insert (poll interval 30 s)", id);
		snprintf(sql, sizeof sql,
			 "SELECT round(extract(epoch FROM processed_at - created_at) * 1000)::bigint"
			 " FROM passport_entries WHERE id = '%s'",
			 id);
		server_ms = harness_query_int(conn, sql);
		printf("  notification latency: commit -> processed_at %lld ms (seen by the test after %.0f ms)\n",
		       server_ms, (children_now() - started) * 1000);
		ASSERT_LT_INT(server_ms, 2000);
		free(id);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), 3);
	daemon_stop_ok(d);
	PQfinish(conn);
}

/* ---- case 2: polling only ------------------------------------------------------------------- */

static void case_poll(void)
{
	char dsn[1024];
	PGconn *conn = create_database("service_poll", dsn, sizeof dsn);
	const char *fast[] = {"run", "--dsn", dsn, "--no-listen", "--poll-interval", "0.5", NULL};
	const char *slow[] = {"run", "--dsn", dsn, "--no-listen", "--poll-interval", "30", NULL};
	struct child *d;
	char *id, *log;
	double took;

	add_media_row(conn, "p1");
	d = daemon_start("poll-fast", fast, NULL);
	require_log(d, "worker: connected to the database", 1, 10);
	id = insert_entry(conn, "p1", "{mediaid}");
	took = wait_processed(conn, id, 3.0, d);
	if (took < 0)
		FAIL("--no-listen --poll-interval 0.5: entry not processed within 3 s");
	printf("  polling every 0.5 s: processed after %.2f s\n", took);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name"
					     " = 'passportd listener' AND datname = current_database()"),
		      0);
	daemon_stop_ok(d);
	log = child_log(d);
	ASSERT_STR_NOT_CONTAINS(log, "listening for new entries");
	free(log);
	free(id);

	d = daemon_start("poll-slow", slow, NULL);
	require_log(d, "worker: connected to the database", 1, 10);
	children_sleep(0.2);
	id = insert_entry(conn, "p1", "{mediaid}");
	children_sleep(2.0);
	if (entry_processed(conn, id))
		FAIL("--no-listen --poll-interval 30: an entry was processed 2 s after its insert;"
		     " the daemon must not be listening");
	ASSERT_TRUE(child_alive(d));
	daemon_stop_ok(d);
	free(id);
	PQfinish(conn);
}

/* ---- case 3: a retry is picked up when it falls due ------------------------------------------ */

static void case_retry(void)
{
	char dsn[1024], sql[512];
	PGconn *conn = create_database("service_retry", dsn, sizeof dsn);
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "0.5", NULL};
	struct child *d;
	char *id, *due;
	double took;

	d = daemon_start("retry", args, NULL);
	require_log(d, "worker: connected to the database", 1, 10);
	id = insert_entry(conn, "r1", "{mediaid}"); /* user r1 has no media_ids row yet */
	snprintf(sql, sizeof sql, "SELECT (processing_attempts >= 1)::int FROM passport_entries WHERE id = '%s'", id);
	require_sql(conn, sql, 3.0, d);
	snprintf(sql, sizeof sql,
		 "SELECT (NOT processed AND dead_at IS NULL AND processing_attempts = 1"
		 " AND next_attempt_at > now() + interval '5 seconds' AND last_error LIKE 'mediaid:%%media_ids%%')::int"
		 " FROM passport_entries WHERE id = '%s'",
		 id);
	if (harness_query_int(conn, sql) != 1)
		FAIL("a missing media_ids row must be a retryable failure ~10 s out: %s",
		     harness_query_text(conn, "SELECT row_to_json(e)::text FROM passport_entries e"));

	/* The row appears; the retry is made due in 1 s. Nothing is inserted, nothing notifies. */
	add_media_row(conn, "r1");
	due = harness_query_text(conn, "SELECT (now() + interval '1 second')::text");
	snprintf(sql, sizeof sql, "UPDATE passport_entries SET next_attempt_at = '%s' WHERE id = '%s'", due, id);
	harness_exec(conn, sql);
	took = wait_processed(conn, id, 4.0, d);
	if (took < 0)
		FAIL("a retry due in 1 s was not processed within 4 s (poll interval 0.5 s)");
	snprintf(sql, sizeof sql,
		 "SELECT (processed_at >= '%s'::timestamptz AND last_error IS NULL AND next_attempt_at IS NULL)::int"
		 " FROM passport_entries WHERE id = '%s'",
		 due, id);
	ASSERT_EQ_INT(harness_query_int(conn, sql), 1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), 1);
	printf("  retry processed %.2f s after it was made due in 1 s\n", took);
	daemon_stop_ok(d);
	free(due);
	free(id);
	PQfinish(conn);
}

/* ---- case 4: the server restarts under the daemon -------------------------------------------- */

/* Entries at fixed, late timestamps for users 1..10 (after everything the workload holds). */
static void insert_late_entries(PGconn *conn, const char *phase, const char *day)
{
	exec_sql(conn,
		 "INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, source, \"timestamp\")"
		 " SELECT passport_test_uuid('%s-' || u || '-' || k), passport_test_uuid('user-' || u),"
		 " 'player.track_completed', 'player',"
		 " jsonb_build_object('trackId', passport_test_uuid('track-' || (1 + (u + k) %% 40))::text), 'web',"
		 " timestamptz '%s 00:00:00+00' + make_interval(mins => u * 10 + k)"
		 " FROM generate_series(1, 10) AS u, generate_series(1, 5) AS k",
		 phase, day);
}

/* The same SQL steps, in order, for the live database and its reference. */
static void restart_step(PGconn *conn, int step)
{
	switch (step) {
	case 0: harness_exec(conn, "SELECT passport_test_workload(100, 40)"); break; /* 4,000 entries */
	case 1: insert_late_entries(conn, "phase2", "2026-07-01"); break;
	case 2: harness_exec(conn, "SELECT passport_test_workload(150, 40)"); break; /* users 101..150 */
	case 3: insert_late_entries(conn, "phase4", "2026-08-01"); break;
	default: FAIL("no step %d", step);
	}
}

/*
 * One restart: new entries, the server stops (mode) while the daemon works on them, stays down
 * for 3 s, comes back, more entries arrive. The poll interval is 30 s, so everything after the
 * restart rests on the worker's own reconnect and the listener's re-LISTEN.
 */
static void restart_round(PGconn **conn, const char *dsn, struct child *d, int notify_fd, const char *mode,
			  int step_before, int step_after)
{
	double cpu_before, cpu_after, took;
	long long processed_before, processed_at_stop;
	PGconn *probe;
	char *log, sql[256];
	int listening;

	processed_before = harness_query_int(*conn, "SELECT count(*) FROM passport_entries WHERE processed");
	restart_step(*conn, step_before);
	snprintf(sql, sizeof sql, "SELECT (count(*) > %lld)::int FROM passport_entries WHERE processed", processed_before);
	require_sql(*conn, sql, 10, d);
	PQfinish(*conn);
	*conn = NULL;
	notify_drain(notify_fd);
	log = child_log(d);
	listening = count_occurrences(log, "listener: listening for new entries");
	free(log);

	server2_stop(mode);
	*conn = NULL;

	/* While it is down: writers fail, the daemon waits quietly and says so. */
	probe = PQconnectdb(dsn);
	ASSERT_NE_INT(PQstatus(probe), CONNECTION_OK);
	PQfinish(probe);
	cpu_before = process_cpu_seconds(d->pid);
	children_sleep(3.0);
	cpu_after = process_cpu_seconds(d->pid);
	if (!child_alive(d))
		FAIL("the daemon exited (status %d) while the server was down", d->status);
	printf("  -m %s: the daemon used %.3f s CPU in 3 s without a server\n", mode, cpu_after - cpu_before);
	if (cpu_after - cpu_before >= 0.3)
		FAIL("the daemon used %.2f s CPU in 3 s while the server was down (busy loop?)",
		     cpu_after - cpu_before);
	log = child_log(d);
	ASSERT_STR_CONTAINS(log, "reconnecting in");
	free(log);
	if (HAVE_LIBSYSTEMD && !notify_seen(notify_fd, "STATUS=waiting for database", 2.0))
		FAIL("no sd_notify STATUS= saying the daemon waits for the database");

	server2_restart();
	*conn = harness_connect(dsn);
	processed_at_stop = harness_query_int(*conn, "SELECT count(*) FROM passport_entries WHERE processed");
	printf("  -m %s: %lld entries were processed when the server stopped\n", mode, processed_at_stop);
	require_log(d, "listener: listening for new entries", listening + 1, 15);
	restart_step(*conn, step_after);
	took = wait_for_sql(*conn, "SELECT (NOT EXISTS (SELECT 1 FROM passport_entries WHERE NOT processed))::int", 15,
			    d);
	if (took < 0)
		FAIL("entries not all processed within 15 s of the listener's return (-m %s)", mode);
	printf("  -m %s: all entries processed %.2f s after the last insert\n", mode, took);
	check_consistent(*conn, mode);
}

static void case_restart(void)
{
	char dsn[1024], ref_dsn[1024], port[16], socket_dir[600];
	PGconn *conn, *ref;
	struct child *d;
	char notify_path[600], notify_env[700];
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "30", NULL};
	const char *env[] = {notify_env, NULL};
	char *output = NULL;
	int notify_fd;

	server2_start_first();
	snprintf(port, sizeof port, "%d", server2_port);
	snprintf(socket_dir, sizeof socket_dir, "%s/socket", server2_dir);
	make_dsn(dsn, sizeof dsn, socket_dir, port, "postgres");
	conn = harness_connect(dsn);
	/*
	 * pg.sh turns synchronous_commit off; an immediate stop would then lose commits already
	 * acknowledged (the test's inserts among them). Production keeps it on.
	 */
	harness_exec(conn, "ALTER SYSTEM SET synchronous_commit = on");
	harness_exec(conn, "SELECT pg_reload_conf()");
	harness_exec(conn, "SET client_min_messages = warning");
	harness_exec_source_file(conn, "tests/sql/upstream.sql");
	{
		const char *argv[] = {harness_migrate(), "schema", "--dsn", dsn, NULL};
		if (harness_run(argv, NULL, &output) != 0)
			FAIL("passport-migrate schema failed on the second server");
		free(output);
	}
	harness_exec_source_file(conn, "tests/sql/workload.sql");

	snprintf(notify_path, sizeof notify_path, "%s/restart-notify.sock", children_temp_dir());
	snprintf(notify_env, sizeof notify_env, "NOTIFY_SOCKET=%s", notify_path);
	notify_fd = notify_socket_open(notify_path);
	d = daemon_start("restart", args, env);
	require_log(d, "listener: listening for new entries", 1, 10);
	restart_round(&conn, dsn, d, notify_fd, "fast", 0, 1);
	restart_round(&conn, dsn, d, notify_fd, "immediate", 2, 3);
	daemon_stop_ok(d);
	close(notify_fd);
	check_all_processed(conn, "after the restarts");
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries"), 6100);

	/* The same entries drained once, on the test server: the DNA must be identical. */
	ref = create_database("service_restart_ref", ref_dsn, sizeof ref_dsn);
	for (int step = 0; step < 4; step++)
		restart_step(ref, step);
	ASSERT_EQ_INT(run_passportd(&output, 60, NULL, "restart-ref-drain", "drain", "--dsn", ref_dsn, NULL), 0);
	free(output);
	check_all_processed(ref, "reference");
	compare_dna(conn, ref, "restarts vs one drain");
	PQfinish(ref);
	PQfinish(conn);
	server2_stop("fast");
}

/* ---- case 5: backends terminated ------------------------------------------------------------- */

static void case_terminate(void)
{
	char dsn[1024];
	PGconn *conn = create_database("service_terminate", dsn, sizeof dsn);
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "30", NULL};
	struct child *d;
	char *id;
	double took;
	long long killed;

	add_media_row(conn, "t1");
	d = daemon_start("terminate", args, NULL);
	require_log(d, "listener: listening for new entries", 1, 10);
	id = insert_entry(conn, "t1", "{mediaid}");
	if (wait_processed(conn, id, 2.0, d) < 0)
		FAIL("first entry not processed");
	free(id);

	killed = harness_query_int(conn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
				   " WHERE application_name LIKE 'passportd%' AND datname = current_database()");
	ASSERT_EQ_INT(killed, 2); /* the listener and the worker */
	require_log(d, "listener: listening for new entries", 2, 10);
	children_sleep(0.2);

	/* The poll is 30 s away: only a working listener and a reconnected worker process these. */
	id = insert_entry(conn, "t1", "{mediaid}");
	took = wait_processed(conn, id, 5.0, d);
	if (took < 0)
		FAIL("after pg_terminate_backend, a new entry was not processed within 5 s");
	printf("  first entry after the terminations processed in %.2f s\n", took);
	free(id);
	id = insert_entry(conn, "t1", "{mediaid}");
	took = wait_processed(conn, id, 2.0, d);
	if (took < 0)
		FAIL("after recovering, a new entry was not processed within 2 s");
	free(id);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name"
					     " LIKE 'passportd%' AND datname = current_database()"),
		      2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), 3);
	daemon_stop_ok(d);
	PQfinish(conn);
}

/* ---- case 6: SIGTERM in the middle of a backlog ----------------------------------------------- */

static void case_sigterm(void)
{
	char dsn[1024], ref_dsn[1024];
	PGconn *conn = create_database("service_sigterm", dsn, sizeof dsn), *ref;
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "30", NULL};
	struct child *d;
	char *output;
	double took;
	long long total, processed;
	int status;

	total = harness_query_int(conn, "SELECT passport_test_workload(500, 40)");
	ASSERT_EQ_INT(total, 20000);
	PQfinish(conn);
	ref = clone_database("service_sigterm", "service_sigterm_ref", ref_dsn, sizeof ref_dsn);
	conn = harness_connect(dsn);

	d = daemon_start("sigterm", args, NULL);
	require_sql(conn, "SELECT (count(*) > 0)::int FROM passport_entries WHERE processed", 20, d);
	status = child_stop_timed(d, SIGTERM, 5.0, &took);
	processed = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed");
	printf("  SIGTERM: exit status %d after %.2f s, %lld of %lld entries processed\n", status, took, processed,
	       total);
	ASSERT_EQ_INT(status, 0);
	if (processed >= total)
		FAIL("the daemon finished all %lld entries before SIGTERM: the case tests nothing", total);
	check_consistent(conn, "after SIGTERM");

	d = daemon_start("sigterm-second", args, NULL);
	wait_drained(conn, 60, d);
	daemon_stop_ok(d);
	check_all_processed(conn, "after the second daemon");
	check_consistent(conn, "after the second daemon");

	ASSERT_EQ_INT(run_passportd(&output, 120, NULL, "sigterm-ref-drain", "drain", "--dsn", ref_dsn, NULL), 0);
	free(output);
	compare_dna(conn, ref, "interrupted run vs one drain");
	PQfinish(ref);
	PQfinish(conn);
}

/*
 * SIGTERM while the batch in hand is stuck (a table it writes locked by another transaction):
 * the daemon cancels it after a few seconds and exits 0, and the server rolls it back: the
 * entries are untouched, not recorded as failed. A second SIGTERM exits at once.
 */
static void start_stuck_daemon(PGconn *conn, PGconn *locker, const char *dsn, struct child **d, const char *label)
{
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "30", NULL};

	harness_exec(locker, "BEGIN");
	harness_exec(locker, "LOCK TABLE dna_evolution IN EXCLUSIVE MODE");
	*d = daemon_start(label, args, NULL);
	require_sql(conn,
		    "SELECT count(*)::int FROM pg_stat_activity WHERE application_name = 'passportd worker'"
		    " AND wait_event_type = 'Lock' AND datname = current_database()",
		    5, *d);
}

static void check_untouched(PGconn *conn, int n, const char *when)
{
	long long touched = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed"
					      " OR processing_attempts <> 0 OR last_error IS NOT NULL OR dead_at IS NOT NULL"
					      " OR next_attempt_at IS NOT NULL");

	if (touched != 0) {
		char *errors = harness_query_text(conn, "SELECT string_agg(DISTINCT coalesce(last_error, '-'), '; ')"
						  " FROM passport_entries");
		FAIL("%s: %lld of %d entries were changed by a batch that was stopped (errors: %s)", when,
		     touched, n, errors ? errors : "");
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), 0);
}

static void case_stuck_batch(void)
{
	char dsn[1024];
	PGconn *conn = create_database("service_stuck", dsn, sizeof dsn), *locker;
	struct child *d;
	double took;
	int status;
	char *log;

	add_media_row(conn, "s1");
	for (int i = 0; i < 3; i++)
		free(insert_entry(conn, "s1", "{mediaid}"));
	locker = harness_connect(dsn);

	start_stuck_daemon(conn, locker, dsn, &d, "stuck");
	status = child_stop_timed(d, SIGTERM, 8, &took);
	printf("  SIGTERM with the batch blocked on a lock: exit status %d after %.2f s\n", status, took);
	ASSERT_EQ_INT(status, 0);
	ASSERT_TRUE(took < 6);
	log = child_log(d);
	ASSERT_STR_CONTAINS(log, "cancel");
	free(log);
	harness_exec(locker, "ROLLBACK");
	check_untouched(conn, 3, "one SIGTERM");

	start_stuck_daemon(conn, locker, dsn, &d, "stuck-twice");
	ASSERT_EQ_INT(kill(d->pid, SIGTERM), 0);
	children_sleep(0.2);
	child_stop_timed(d, SIGTERM, 1, &took);
	printf("  a second SIGTERM: exit after %.2f s\n", took);
	harness_exec(locker, "ROLLBACK");
	check_untouched(conn, 3, "two SIGTERMs");

	d = daemon_start("stuck-after", (const char *const[]){"run", "--dsn", dsn, "--poll-interval", "0.2", NULL}, NULL);
	require_sql(conn, "SELECT (count(*) = 3)::int FROM passport_entries WHERE processed", 5, d);

	/*
	 * A DNA row locked by the application: its entries are deferred, not waited for and not
	 * applied out of order; the daemon keeps working and takes them once the row is free.
	 */
	harness_exec(locker, "BEGIN");
	harness_exec(locker, "SELECT 1 FROM media_ids WHERE id = passport_test_uuid('row-s1') FOR UPDATE");
	for (int i = 0; i < 2; i++)
		free(insert_entry(conn, "s1", "{mediaid}"));
	add_media_row(conn, "s2");
	free(insert_entry(conn, "s2", "{mediaid}"));
	require_sql(conn, "SELECT count(*)::int FROM passport_entries WHERE processed AND user_id = passport_test_uuid('user-s2')",
		    5, d);
	children_sleep(1.0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'passportd worker'"
					     " AND wait_event_type = 'Lock' AND datname = current_database()"), 0);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"
					     " AND processing_attempts = 0 AND last_error IS NULL AND processed_at IS NULL"), 2);
	harness_exec(locker, "COMMIT");
	require_sql(conn, "SELECT (count(*) = 6)::int FROM passport_entries WHERE processed", 5, d);
	daemon_stop_ok(d);
	PQfinish(locker);
	PQfinish(conn);
}

/*
 * Log formats: --log-format json prints one JSON object per line; under systemd (JOURNAL_STREAM
 * set) the auto format prefixes each line with its journald priority.
 */
static void case_log_format(void)
{
	const char *json_args[] = {"run", "--dsn", "host=/nonexistent port=1", "--log-format", "json", NULL};
	const char *auto_args[] = {"run", "--dsn", "host=/nonexistent port=1", NULL};
	const char *journal_env[] = {"JOURNAL_STREAM=8:12345", NULL};
	struct child *d;
	char *log, *line, *save = NULL;
	int lines = 0;

	d = daemon_start("log-json", json_args, NULL);
	require_log(d, "\"warning\"", 1, 5);
	daemon_stop_ok(d);
	log = child_log(d);
	for (line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *object = cJSON_Parse(line);
		if (!cJSON_IsObject(object))
			FAIL("--log-format json: not a JSON object: %s", line);
		ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(object, "message")));
		ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(object, "level")));
		ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(object, "time")));
		ASSERT_TRUE(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(object, "priority")));
		cJSON_Delete(object);
		lines++;
	}
	ASSERT_GE_INT(lines, 3);
	free(log);

	/* JSON under systemd: each object behind its journald priority prefix. */
	d = daemon_start("log-json-journal", json_args, journal_env);
	require_log(d, "<4>{", 1, 5);
	daemon_stop_ok(d);
	log = child_log(d);
	for (line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *object;
		if (!(line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>'))
			FAIL("a JSON log line without a journald priority under systemd: %s", line);
		object = cJSON_Parse(line + 3);
		if (!cJSON_IsObject(object))
			FAIL("--log-format json under systemd: not a JSON object after the prefix: %s", line);
		ASSERT_EQ_INT((long long)cJSON_GetObjectItemCaseSensitive(object, "priority")->valuedouble, line[1] - '0');
		cJSON_Delete(object);
	}
	free(log);

	d = daemon_start("log-journal", auto_args, journal_env);
	require_log(d, "<4>", 1, 5); /* warning: cannot connect */
	daemon_stop_ok(d);
	log = child_log(d);
	ASSERT_TRUE(strncmp(log, "<6>", 3) == 0); /* info: starting */
	for (line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (!(line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>'))
			FAIL("a log line without a journald priority under systemd: %s", line);
	free(log);
}

/* ---- case 7: SIGHUP reloads the configuration ------------------------------------------------- */

static void case_reload(void)
{
	char dsn[1024], path[600];
	PGconn *conn = create_database("service_reload", dsn, sizeof dsn);
	const char *args[] = {"run", "--config", path, "--dsn", dsn, "--poll-interval", "30", NULL};
	struct child *d;
	char *id, *log;
	int claimed;

	add_media_row(conn, "h1");
	snprintf(path, sizeof path, "%s/passportd.conf", children_temp_dir());
	write_file(path, "# test config\nbatch_size = 500\nlog_level = info\n");
	d = daemon_start("reload", args, NULL);
	require_log(d, "listener: listening for new entries", 1, 10);
	require_log(d, "batch_size 500", 1, 5);
	id = insert_entry(conn, "h1", "{mediaid}");
	if (wait_processed(conn, id, 2.0, d) < 0)
		FAIL("entry not processed before the reload");
	free(id);
	log = child_log(d);
	ASSERT_STR_NOT_CONTAINS(log, "batch: claimed"); /* a debug message */
	free(log);

	write_file(path, "batch_size = 500\nlog_level = debug\n");
	ASSERT_EQ_INT(kill(d->pid, SIGHUP), 0);
	require_log(d, "configuration reloaded", 1, 3);
	require_log(d, "log_level debug", 1, 1);
	id = insert_entry(conn, "h1", "{mediaid}");
	if (wait_processed(conn, id, 2.0, d) < 0)
		FAIL("entry not processed after the reload");
	free(id);
	require_log(d, "batch: claimed", 1, 2);
	log = child_log(d);
	claimed = count_occurrences(log, "batch: claimed");
	free(log);

	/* A bad file: the reload fails and the old values stay (log_level stays debug). */
	write_file(path, "log_level = info\nbatch_size = banana\n");
	ASSERT_EQ_INT(kill(d->pid, SIGHUP), 0);
	require_log(d, "reload failed", 1, 3);
	log = child_log(d);
	ASSERT_STR_CONTAINS(log, "banana");
	ASSERT_EQ_INT(count_occurrences(log, "configuration reloaded"), 1);
	free(log);
	id = insert_entry(conn, "h1", "{mediaid}");
	if (wait_processed(conn, id, 2.0, d) < 0)
		FAIL("entry not processed after a failed reload");
	free(id);
	require_log(d, "batch: claimed", claimed + 1, 2); /* still at debug level */
	ASSERT_TRUE(child_alive(d));
	daemon_stop_ok(d);
	PQfinish(conn);
}

/*
 * SIGHUP in the middle of a backlog: the new settings apply from the next batch, not after the
 * whole pass (which in a backlog can take minutes).
 */
static void case_reload_mid_pass(void)
{
	char dsn[1024], path[600];
	PGconn *conn = create_database("service_reload_mid", dsn, sizeof dsn);
	const char *args[] = {"run", "--config", path, "--dsn", dsn, "--poll-interval", "30", NULL};
	struct child *d;
	long long left;

	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(200, 50)"), 10000);
	snprintf(path, sizeof path, "%s/passportd-mid.conf", children_temp_dir());
	write_file(path, "batch_size = 5\n");
	d = daemon_start("reload-mid", args, NULL);
	require_sql(conn, "SELECT (count(*) >= 50)::int FROM passport_entries WHERE processed", 20, d);
	write_file(path, "batch_size = 1000\n");
	ASSERT_EQ_INT(kill(d->pid, SIGHUP), 0);
	require_log(d, "the reloaded settings apply from this batch (batch_size 1000)", 1, 5);
	left = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed");
	printf("  reload applied with %lld entries still due\n", left);
	ASSERT_TRUE(left > 0);
	wait_drained(conn, 60, d);
	check_consistent(conn, "after a reload mid-pass");
	daemon_stop_ok(d);
	PQfinish(conn);
}

/*
 * Pause and resume, stored in the database: a paused system's entries stay unprocessed (with the
 * reason, attempts untouched), the others go on; pausing everything claims nothing; resume
 * processes everything that waited, nothing lost.
 */
static void case_pause(void)
{
	char dsn[1024], sql[512];
	PGconn *conn = create_database("service_pause", dsn, sizeof dsn);
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "0.5", NULL};
	struct child *d;
	char *a, *b, *c, *e, *output;

	add_media_row(conn, "z1");
	d = daemon_start("pause", args, NULL);
	require_log(d, "worker: connected to the database", 1, 10);

	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "pause-coliseum", "pause", "coliseum", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(output, "paused: coliseum");
	free(output);
	children_sleep(0.7); /* one poll interval */
	a = insert_entry(conn, "z1", "{mediaid}");
	b = insert_entry(conn, "z1", "{coliseum}");
	c = insert_entry(conn, "z1", "{mediaid,coliseum}");
	if (wait_processed(conn, a, 5.0, d) < 0)
		FAIL("an entry of an unpaused system was not processed while coliseum was paused");
	snprintf(sql, sizeof sql,
		 "SELECT (count(*) = 2)::int FROM passport_entries WHERE id IN ('%s', '%s') AND processed IS NOT TRUE"
		 " AND dead_at IS NULL AND last_error = 'paused: coliseum' AND processing_attempts = 0",
		 b, c);
	require_sql(conn, sql, 5, d);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics"), 0);

	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "pause-all", "pause", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(output, "paused: all");
	free(output);
	require_log(d, "paused: processing nothing", 1, 3);
	e = insert_entry(conn, "z1", "{mediaid}");
	children_sleep(1.5);
	ASSERT_FALSE(entry_processed(conn, e));
	snprintf(sql, sizeof sql, "SELECT count(*) FROM passport_entries WHERE id = '%s' AND last_error IS NULL", e);
	ASSERT_EQ_INT(harness_query_int(conn, sql), 1);

	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "resume", "resume", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(output, "resumed: all; 2 postponed entries made due");
	free(output);
	wait_drained(conn, 10, d);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics"), 2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), 3);
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "pause-bad", "pause", "ledger", "--dsn", dsn, NULL), 2);
	free(output);
	daemon_stop_ok(d);
	free(a);
	free(b);
	free(c);
	free(e);
	PQfinish(conn);
}

/* A burst of failures is rate-limited in the log; the count is kept by status. */
static void case_log_burst(void)
{
	char dsn[1024];
	PGconn *conn = create_database("service_log_burst", dsn, sizeof dsn);
	char *output;
	int lines;

	harness_exec(conn, "INSERT INTO passport_entries (event_type, event_category, affects_systems)"
			   " SELECT 'player.track_played', 'player', '{bogus}' FROM generate_series(1, 60)");
	ASSERT_EQ_INT(run_passportd(&output, 60, NULL, "burst-drain", "drain", "--dsn", dsn, NULL), 0);
	lines = count_occurrences(output, "is dead:");
	printf("  60 dead entries: %d log lines\n", lines);
	ASSERT_TRUE(lines >= 1 && lines <= 20);
	ASSERT_STR_CONTAINS(output, "more failed entries of this batch not logged");
	free(output);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE dead_at IS NOT NULL"), 60);
	PQfinish(conn);
}

/* ---- case 8: sd_notify ------------------------------------------------------------------------ */

static void case_sd_notify(void)
{
	char dsn[1024], path[600], socket_env[700], buf[4096];
	const char *args[] = {"run", "--dsn", dsn, "--poll-interval", "30", NULL};
	const char *env[] = {socket_env, "WATCHDOG_USEC=400000", "WATCHDOG_PID=@self", NULL};
	PGconn *conn;
	struct child *d;
	bool ready = false, status = false;
	int watchdogs = 0, fd;
	double deadline, ready_at = 0;

	if (!HAVE_LIBSYSTEMD) {
		printf("  skipped: built without libsystemd\n");
		return;
	}
	conn = create_database("service_notify_socket", dsn, sizeof dsn);

	snprintf(path, sizeof path, "%s/notify.sock", children_temp_dir());
	snprintf(socket_env, sizeof socket_env, "NOTIFY_SOCKET=%s", path);
	fd = notify_socket_open(path);
	d = daemon_start("sd-notify", args, env);

	deadline = children_now() + 10;
	while (children_now() < deadline && !(ready && status && children_now() >= ready_at + 1.0)) {
		if (!notify_receive(fd, buf, sizeof buf, 0.1))
			continue;
		if (strstr(buf, "READY=1") && !ready) {
			ready = true;
			ready_at = children_now();
		}
		if (strstr(buf, "STATUS="))
			status = true;
		if (strstr(buf, "WATCHDOG=1") && ready && children_now() <= ready_at + 1.0)
			watchdogs++;
	}
	ASSERT_TRUE(child_alive(d));
	if (!ready)
		FAIL("no READY=1 within 10 s");
	if (!status)
		FAIL("no STATUS= message");
	printf("  %d WATCHDOG=1 messages in the second after READY=1 (WATCHDOG_USEC=400000)\n", watchdogs);
	if (watchdogs < 2)
		FAIL("expected WATCHDOG=1 at least twice within 1 s, got %d", watchdogs);

	ASSERT_EQ_INT(kill(d->pid, SIGTERM), 0);
	if (!notify_seen(fd, "STOPPING=1", 5))
		FAIL("no STOPPING=1 after SIGTERM");
	if (!child_wait(d, 5))
		FAIL("no exit within 5 s of SIGTERM");
	ASSERT_EQ_INT(d->status, 0);
	close(fd);
	PQfinish(conn);
}

/*
 * READY=1 as soon as the loop runs: neither a backlog nor a database that is down may hold it
 * back (the unit's start would time out and systemd would restart it in a loop). STATUS= says
 * what is going on.
 */
static bool notify_wait_ready(int fd, double timeout, char *status, size_t status_size, double *took)
{
	double started = children_now(), deadline = started + timeout;
	char buf[4096];

	status[0] = '\0';
	while (children_now() < deadline) {
		if (!notify_receive(fd, buf, sizeof buf, 0.1))
			continue;
		if (strstr(buf, "STATUS="))
			snprintf(status, status_size, "%s", strstr(buf, "STATUS="));
		if (strstr(buf, "READY=1")) {
			*took = children_now() - started;
			return true;
		}
	}
	return false;
}

static void case_ready(void)
{
	char dsn[1024], path[600], socket_env[700], status[512];
	const char *env[] = {socket_env, NULL};
	const char *down[] = {"run", "--dsn", "host=/nonexistent port=1 user=u", "--poll-interval", "30", NULL};
	/* One worker and batches of 10: 2,000 batches, seconds of work even on a fast machine. */
	const char *backlog[] = {"run",       "--dsn",     dsn, "--batch-size", "10", "--workers", "1",
				 "--poll-interval", "30", NULL};
	PGconn *conn;
	struct child *d;
	double took = 0;
	int fd;

	if (!HAVE_LIBSYSTEMD) {
		printf("  skipped: built without libsystemd\n");
		return;
	}
	snprintf(path, sizeof path, "%s/ready.sock", children_temp_dir());
	snprintf(socket_env, sizeof socket_env, "NOTIFY_SOCKET=%s", path);
	fd = notify_socket_open(path);

	/* The database down. */
	d = daemon_start("ready-down", down, env);
	if (!notify_wait_ready(fd, 3, status, sizeof status, &took))
		FAIL("no READY=1 within 3 s with the database down");
	printf("  database down: READY=1 after %.2f s\n", took);
	ASSERT_LT_INT((long long)(took * 1000), 2000);
	if (!strstr(status, "STATUS=waiting for database") && !notify_seen(fd, "STATUS=waiting for database", 5))
		FAIL("no STATUS= saying the daemon waits for the database");
	ASSERT_TRUE(child_alive(d));
	daemon_stop_ok(d);
	notify_drain(fd);

	/* In front of a backlog processed in small batches. */
	conn = create_database("service_ready", dsn, sizeof dsn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(200, 100)"), 20000);
	d = daemon_start("ready-backlog", backlog, env);
	if (!notify_wait_ready(fd, 3, status, sizeof status, &took))
		FAIL("no READY=1 within 3 s in front of a backlog of 20,000 entries");
	printf("  backlog of 20,000: READY=1 after %.2f s\n", took);
	ASSERT_LT_INT((long long)(took * 1000), 2000);
	if (!notify_seen(fd, "STATUS=connected; processing", 5))
		FAIL("no STATUS= saying the daemon works through the backlog");
	ASSERT_TRUE(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed") > 0);
	daemon_stop_ok(d);
	close(fd);
	PQfinish(conn);
}

/*
 * Liveness: the worker's backend frozen (SIGSTOP) in the middle of a backlog. The watchdog pings
 * stop once the batch has gone three statement timeouts without finishing, the worker abandons
 * the connection and goes on with a new one (the pings resume when it starts again), and after
 * SIGCONT everything is processed, without a restart.
 */
static void case_freeze(void)
{
	char dsn[1024], path[600], socket_env[700], buf[4096];
	const char *args[] = {"run", "--dsn", dsn, "--batch-size", "20", "--poll-interval", "0.5",
			      "--statement-timeout", "1", NULL};
	const char *env[] = {socket_env, "WATCHDOG_USEC=400000", "WATCHDOG_PID=@self", NULL};
	PGconn *conn;
	struct child *d;
	long long backend;
	double frozen_at, last_ping = 0, longest_gap = 0;
	int fd;

	if (!HAVE_LIBSYSTEMD) {
		printf("  skipped: built without libsystemd\n");
		return;
	}
	conn = create_database("service_freeze", dsn, sizeof dsn);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(200, 50)"), 10000);
	snprintf(path, sizeof path, "%s/freeze.sock", children_temp_dir());
	snprintf(socket_env, sizeof socket_env, "NOTIFY_SOCKET=%s", path);
	fd = notify_socket_open(path);
	d = daemon_start("freeze", args, env);
	require_sql(conn, "SELECT (count(*) >= 200)::int FROM passport_entries WHERE processed", 20, d);
	backend = harness_query_int(conn, "SELECT coalesce(max(pid), 0) FROM pg_stat_activity"
					  " WHERE application_name = 'passportd worker' AND datname = current_database()");
	ASSERT_TRUE(backend > 0);
	ASSERT_EQ_INT(kill((pid_t)backend, SIGSTOP), 0);
	frozen_at = children_now();
	notify_drain(fd);
	last_ping = children_now();
	while (children_now() < frozen_at + 6) {
		if (!notify_receive(fd, buf, sizeof buf, 0.1))
			continue;
		if (strstr(buf, "WATCHDOG=1")) {
			if (children_now() - last_ping > longest_gap)
				longest_gap = children_now() - last_ping;
			last_ping = children_now();
		}
	}
	if (children_now() - last_ping > longest_gap)
		longest_gap = children_now() - last_ping;
	ASSERT_EQ_INT(kill((pid_t)backend, SIGCONT), 0);
	printf("  worker's backend frozen for 6 s: longest gap between WATCHDOG=1 pings %.1f s\n", longest_gap);
	require_log(d, "no progress for", 1, 1);
	if (longest_gap < 0.3)
		FAIL("the watchdog kept pinging while the batch was stuck");
	if (!notify_seen(fd, "WATCHDOG=1", 3))
		FAIL("no WATCHDOG=1 after the server came back");
	/* Keep reading the socket: a full notify queue would block the daemon's sd_notify. */
	for (double deadline = children_now() + 60;; children_sleep(0.1)) {
		notify_drain(fd);
		if (harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed") == 0)
			break;
		if (children_now() > deadline)
			FAIL("the backlog was not processed within 60 s of SIGCONT");
	}
	ASSERT_TRUE(child_alive(d));
	check_all_processed(conn, "after a frozen backend");
	check_consistent(conn, "after a frozen backend");
	close(fd); /* from now on the daemon's notifications are refused, never queued */
	daemon_stop_ok(d);
	PQfinish(conn);
}

/* ---- case 9: three daemons drain one database -------------------------------------------------- */

static void case_three_daemons(void)
{
	char dsn_a[1024], dsn_b[1024];
	PGconn *a = create_database("service_three_a", dsn_a, sizeof dsn_a), *b;
	const char *args[] = {"run", "--dsn", dsn_b, "--batch-size", "200", "--poll-interval", "1", NULL};
	struct child *d[3];
	char *output;
	double started;

	ASSERT_EQ_INT(harness_query_int(a, "SELECT passport_test_workload(200, 100)"), 20000);
	PQfinish(a);
	b = clone_database("service_three_a", "service_three_b", dsn_b, sizeof dsn_b);

	started = children_now();
	d[0] = daemon_start("three-1", args, NULL);
	d[1] = daemon_start("three-2", args, NULL);
	d[2] = daemon_start("three-3", args, NULL);
	wait_drained(b, 120, d[0]);
	printf("  three daemons drained 20,000 entries in %.2f s\n", children_now() - started);
	for (int i = 0; i < 3; i++) {
		char *log;
		const char *stopped;
		long processed = 0;

		daemon_stop_ok(d[i]);
		log = child_log(d[i]);
		stopped = strstr(log, "stopped: ");
		ASSERT_NOT_NULL(stopped);
		processed = strtol(stopped + strlen("stopped: "), NULL, 10);
		printf("  daemon %d processed %ld entries\n", i + 1, processed);
		if (processed <= 0)
			FAIL("daemon %d processed nothing: the three did not share the work", i + 1);
		free(log);
	}

	started = children_now();
	ASSERT_EQ_INT(run_passportd(&output, 120, NULL, "three-drain-a", "drain", "--dsn", dsn_a, NULL), 0);
	ASSERT_STR_CONTAINS(output, "processed 20000");
	free(output);
	printf("  one drain took %.2f s\n", children_now() - started);

	a = harness_connect(dsn_a);
	check_all_processed(a, "drain");
	check_all_processed(b, "three daemons");
	check_consistent(b, "three daemons");
	ASSERT_EQ_INT(harness_query_int(a, "SELECT count(*) FROM coliseum_metrics"),
		      harness_query_int(b, "SELECT count(*) FROM coliseum_metrics"));
	compare_dna(a, b, "three daemons vs one drain");
	PQfinish(a);
	PQfinish(b);
}

/* ---- case 9b: run catches up on a backlog with more connections --------------------------------- */

static void case_catch_up(void)
{
	char dsn_a[1024], dsn_b[1024];
	PGconn *a = create_database("service_catch_up_a", dsn_a, sizeof dsn_a), *b;
	const char *args[] = {"run", "--dsn", dsn_b, "--workers", "3", "--batch-size", "100", "--poll-interval", "1", NULL};
	struct child *d;
	char *output;

	ASSERT_EQ_INT(harness_query_int(a, "SELECT passport_test_workload(100, 60)"), 6000);
	PQfinish(a);
	b = clone_database("service_catch_up_a", "service_catch_up_b", dsn_b, sizeof dsn_b);

	/* A backlog: full batches start the helpers (workers - 1 more connections). */
	d = daemon_start("catch-up", args, NULL);
	wait_drained(b, 120, d);
	require_log(d, "catching up on a backlog with 2 more connections", 1, 5);

	ASSERT_EQ_INT(run_passportd(&output, 120, NULL, "catch-up-drain", "drain", "--dsn", dsn_a, "--workers", "1", NULL), 0);
	ASSERT_STR_CONTAINS(output, "processed 6000");
	free(output);
	a = harness_connect(dsn_a);
	check_all_processed(b, "run with catch-up helpers");
	check_consistent(b, "run with catch-up helpers");
	ASSERT_EQ_INT(harness_query_int(a, "SELECT count(*) FROM coliseum_metrics"),
		      harness_query_int(b, "SELECT count(*) FROM coliseum_metrics"));
	compare_dna(a, b, "run with catch-up helpers vs one drain");

	/* After the backlog, a new entry still goes through (a small batch, no helpers). */
	add_media_row(b, "catch-up-late");
	{
		char *id = insert_entry(b, "catch-up-late", "{mediaid}");
		if (wait_processed(b, id, 20, d) < 0)
			FAIL("the entry inserted after the backlog was not processed within 20 s");
		free(id);
	}
	daemon_stop_ok(d);
	PQfinish(a);
	PQfinish(b);
}

/*
 * `passportd pause` in the middle of a catch-up: the helpers stop claiming within a poll interval,
 * like the worker (they used to go on with the settings they started with until the backlog was
 * gone); resume lets everything through.
 */
static void case_catch_up_pause(void)
{
	char dsn[1024];
	PGconn *conn = create_database("service_catch_up_pause", dsn, sizeof dsn);
	const char *args[] = {"run", "--dsn", dsn, "--workers", "3", "--batch-size", "10", "--poll-interval", "0.5", NULL};
	struct child *d;
	char *output;
	long long before, after;

	ASSERT_EQ_INT(harness_query_int(conn, "SELECT passport_test_workload(300, 60)"), 18000);
	d = daemon_start("catch-up-pause", args, NULL);
	require_log(d, "catching up on a backlog with 2 more connections", 1, 30);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "catch-up-pause-all", "pause", "--dsn", dsn, NULL), 0);
	free(output);
	children_sleep(1.5); /* a poll interval, and the batches in hand */
	before = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed");
	children_sleep(1.5);
	after = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed");
	printf("  paused during a catch-up: %lld processed, %lld one and a half seconds later, of 18000\n", before,
	       after);
	ASSERT_TRUE(before < 18000);
	ASSERT_EQ_INT(after, before);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "catch-up-resume", "resume", "--dsn", dsn, NULL), 0);
	free(output);
	wait_drained(conn, 120, d);
	check_all_processed(conn, "after a pause during a catch-up");
	check_consistent(conn, "after a pause during a catch-up");
	daemon_stop_ok(d);
	PQfinish(conn);
}

/* ---- case 10: status and reprocess ------------------------------------------------------------ */

/* The number after "label" at the start of a line of plain `status` output. */
static long status_line_value(const char *output, const char *label)
{
	const char *line = output;

	while (line && *line) {
		if (strncmp(line, label, strlen(label)) == 0)
			return strtol(line + strlen(label), NULL, 10);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	FAIL("no line \"%s\" in status output:\n%s", label, output);
}

static double json_number(const cJSON *object, const char *name)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);

	if (!cJSON_IsNumber(item))
		FAIL("status --json: \"%s\" is missing or not a number", name);
	return item->valuedouble;
}

static char *entry_states(PGconn *conn)
{
	return harness_query_text(conn,
				  "SELECT md5(string_agg(concat_ws('|', id, processed, processed_at, dead_at,"
				  " next_attempt_at, processing_attempts, last_error), ',' ORDER BY id)) FROM passport_entries");
}

static void case_status_reprocess(void)
{
	char dsn[1024], sql[512];
	PGconn *conn = create_database("service_admin", dsn, sizeof dsn), *locker, *listener;
	char *dead[4], *retrying[2], *processed[4], *due, *output, *before, *after;
	cJSON *json, *errors, *item;
	bool found = false;
	PGnotify *notification;

	add_media_row(conn, "a1");
	for (int i = 0; i < 3; i++)
		dead[i] = insert_entry(conn, "a1", "{coliseum,bogus}"); /* unknown system: dead at once */
	dead[3] = harness_query_text(conn, "INSERT INTO passport_entries (event_type, event_category, affects_systems)"
					   " VALUES ('player.track_played', 'player', '{mediaid}') RETURNING id::text");
	for (int i = 0; i < 2; i++)
		retrying[i] = insert_entry(conn, "a2", "{mediaid}"); /* no media_ids row: retrying */
	for (int i = 0; i < 4; i++)
		processed[i] = insert_entry(conn, "a1", "{mediaid,coliseum}");
	ASSERT_EQ_INT(run_passportd(&output, 60, NULL, "admin-drain", "drain", "--dsn", dsn, NULL), 0);
	/* A dead entry is a warning; a retry is information. */
	ASSERT_EQ_INT(count_occurrences(output, "passportd[warning]: entry "), 4);
	ASSERT_EQ_INT(count_occurrences(output, "passportd[info]: entry "), 2);
	free(output);
	due = insert_entry(conn, "a1", "{mediaid}");

	/* status --json */
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "status-json", "status", "--json", "--dsn", dsn, NULL), 0);
	json = cJSON_Parse(output);
	if (!json)
		FAIL("status --json printed no JSON:\n%s", output);
	ASSERT_EQ_INT(json_number(json, "due"), 1);
	ASSERT_EQ_INT(json_number(json, "retrying"), 2);
	ASSERT_EQ_INT(json_number(json, "dead"), 4);
	ASSERT_EQ_INT(json_number(json, "processed_last_hour"), 4);
	ASSERT_EQ_INT(json_number(json, "processed_last_minute"), 4);
	errors = cJSON_GetObjectItemCaseSensitive(json, "top_errors");
	ASSERT_TRUE(cJSON_IsArray(errors));
	cJSON_ArrayForEach(item, errors)
	{
		const cJSON *error = cJSON_GetObjectItemCaseSensitive(item, "error");
		ASSERT_TRUE(cJSON_IsString(error));
		if (strstr(error->valuestring, "unknown system")) {
			ASSERT_FALSE(found);
			found = true;
			ASSERT_EQ_INT(json_number(item, "count"), 3);
		}
	}
	if (!found)
		FAIL("status --json: no top error about the unknown system:\n%s", output);
	cJSON_Delete(json);
	free(output);

	/* plain status */
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "status", "status", "--dsn", dsn, NULL), 0);
	ASSERT_EQ_INT(status_line_value(output, "due:"), 1);
	ASSERT_EQ_INT(status_line_value(output, "retrying:"), 2);
	ASSERT_EQ_INT(status_line_value(output, "dead:"), 4);
	ASSERT_EQ_INT(status_line_value(output, "processed last hour:"), 4);
	{
		const char *line = strstr(output, "unknown system");
		const char *start = line;
		ASSERT_NOT_NULL(line);
		while (start > output && start[-1] != '\n')
			start--;
		ASSERT_EQ_INT(strtol(start, NULL, 10), 3);
	}
	ASSERT_STR_CONTAINS(output, "lag:");
	free(output);

	/* Top errors are grouped by message with the ids in it replaced: one cause, one line. */
	snprintf(sql, sizeof sql,
		 "UPDATE passport_entries SET last_error = 'mediaid: no media_ids row yet for user ' || gen_random_uuid()"
		 " WHERE id IN ('%s', '%s')",
		 retrying[0], retrying[1]);
	harness_exec(conn, sql);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "status-grouped", "status", "--dsn", dsn, NULL), 0);
	{
		const char *line = strstr(output, "no media_ids row yet for user <id>");
		const char *start = line;
		ASSERT_NOT_NULL(line);
		while (start > output && start[-1] != '\n')
			start--;
		ASSERT_EQ_INT(strtol(start, NULL, 10), 2);
	}
	free(output);

	/* status --check: Nagios-style lines and exit codes. */
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "check-ok", "status", "--check", "--max-dead", "10", "--max-lag",
				    "3600", "--dsn", dsn, NULL),
		      0);
	ASSERT_STR_CONTAINS(output, "PASSPORT OK - due 1,");
	ASSERT_STR_CONTAINS(output, "| due=1 ");
	free(output);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "check-dead", "status", "--check", "--max-dead", "3", "--max-lag",
				    "3600", "--dsn", dsn, NULL),
		      1);
	ASSERT_STR_CONTAINS(output, "PASSPORT WARNING");
	free(output);
	harness_exec(conn, "UPDATE passport_entries SET created_at = now() - interval '1 hour' WHERE processed IS NOT TRUE AND dead_at IS NULL"
			   " AND next_attempt_at IS NULL");
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "check-lag", "status", "--check", "--max-dead", "10", "--max-lag",
				    "60", "--dsn", dsn, NULL),
		      2);
	ASSERT_STR_CONTAINS(output, "PASSPORT CRITICAL");
	free(output);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "check-down", "status", "--check", "--dsn",
				    "host=/nonexistent port=1 user=u", NULL),
		      2);
	ASSERT_STR_CONTAINS(output, "PASSPORT CRITICAL - cannot connect");
	free(output);

	/* --dry-run lists the dead entries and changes nothing */
	before = entry_states(conn);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "reprocess-dry-run", "reprocess", "--dry-run", "--dsn", dsn, NULL),
		      0);
	for (int i = 0; i < 4; i++)
		ASSERT_STR_CONTAINS(output, dead[i]);
	ASSERT_STR_NOT_CONTAINS(output, retrying[0]);
	ASSERT_STR_NOT_CONTAINS(output, processed[0]);
	ASSERT_STR_CONTAINS(output, "4 entries would be requeued");
	free(output);
	after = entry_states(conn);
	ASSERT_NOT_NULL(before);
	ASSERT_STR_EQ(before, after);
	free(before);
	free(after);

	/* A dead entry held by another transaction is skipped, not waited for. */
	locker = harness_connect(dsn);
	listener = harness_connect(dsn);
	harness_exec(listener, "LISTEN passport_entries");
	harness_exec(locker, "BEGIN");
	snprintf(sql, sizeof sql, "SELECT id FROM passport_entries WHERE id = '%s' FOR UPDATE", dead[3]);
	harness_exec(locker, sql);

	/* --error-like requeues exactly the matching dead entries, and notifies */
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "reprocess-json", "reprocess", "--error-like", "%unknown system%",
				    "--dry-run", "--json", "--dsn", dsn, NULL),
		      0);
	json = cJSON_Parse(output);
	if (!json)
		FAIL("reprocess --json printed no JSON:\n%s", output);
	ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(json, "dry_run")));
	ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(json, "entries")), 3);
	item = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(json, "entries"), 0);
	ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(item, "state")->valuestring, "dead");
	ASSERT_STR_CONTAINS(cJSON_GetObjectItemCaseSensitive(item, "error")->valuestring, "unknown system");
	cJSON_Delete(json);
	free(output);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "reprocess-error-like", "reprocess", "--error-like",
				    "%unknown system%", "--dsn", dsn, NULL),
		      0);
	ASSERT_STR_CONTAINS(output, "requeued 3 entries");
	free(output);
	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof sql,
			 "SELECT (NOT processed AND dead_at IS NULL AND next_attempt_at IS NULL AND processing_attempts = 0"
			 " AND last_error IS NULL)::int FROM passport_entries WHERE id = '%s'",
			 dead[i]);
		ASSERT_EQ_INT(harness_query_int(conn, sql), 1);
	}
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE dead_at IS NOT NULL"), 1);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processing_attempts = 1"
					     " AND next_attempt_at > now() AND NOT processed"),
		      2);
	/* The history keeps what the requeue wiped on the entries. */
	for (int i = 0; i < 3; i++) {
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM passport_reprocess_history WHERE passport_entry_id = '%s'"
			 " AND previous_error LIKE 'route: unknown system%%' AND previous_attempts = 1"
			 " AND previous_dead_at IS NOT NULL AND NOT processed_here",
			 dead[i]);
		ASSERT_EQ_INT(harness_query_int(conn, sql), 1);
	}
	ASSERT_TRUE(PQconsumeInput(listener));
	notification = PQnotifies(listener);
	if (!notification) {
		children_sleep(0.2);
		ASSERT_TRUE(PQconsumeInput(listener));
		notification = PQnotifies(listener);
	}
	if (!notification)
		FAIL("reprocess requeued entries without a NOTIFY on passport_entries");
	PQfreemem(notification);

	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "reprocess-locked", "reprocess", "--all", "--dsn", dsn, NULL), 0);
	ASSERT_STR_CONTAINS(output, "requeued 0 entries");
	free(output);
	snprintf(sql, sizeof sql, "SELECT (dead_at IS NOT NULL)::int FROM passport_entries WHERE id = '%s'", dead[3]);
	ASSERT_EQ_INT(harness_query_int(conn, sql), 1);
	harness_exec(locker, "ROLLBACK");
	PQfinish(locker);
	PQfinish(listener);

	/* A processed entry is refused and stays as it was */
	before = entry_states(conn);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "reprocess-processed", "reprocess", "--id", processed[0], "--dsn",
				    dsn, NULL),
		      0);
	ASSERT_STR_CONTAINS(output, "refused");
	ASSERT_STR_CONTAINS(output, processed[0]);
	ASSERT_STR_CONTAINS(output, "requeued 0 entries");
	free(output);
	after = entry_states(conn);
	ASSERT_NOT_NULL(before);
	ASSERT_STR_EQ(before, after);
	free(before);
	free(after);

	/* --now, after fixing the cause (the entry had no user), processes it here and says so */
	snprintf(sql, sizeof sql, "UPDATE passport_entries SET user_id = passport_test_uuid('user-a1') WHERE id = '%s'",
		 dead[3]);
	harness_exec(conn, sql);
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "reprocess-now", "reprocess", "--now", "--id", dead[3], "--dsn", dsn,
				    NULL),
		      0);
	ASSERT_STR_CONTAINS(output, "requeued 1 entries");
	{
		char expected[128];
		snprintf(expected, sizeof expected, "%s  processed", dead[3]);
		ASSERT_STR_CONTAINS(output, expected);
	}
	free(output);
	ASSERT_TRUE(entry_processed(conn, dead[3]));
	snprintf(sql, sizeof sql, "SELECT count(*) FROM dna_evolution WHERE passport_entry_id = '%s'", dead[3]);
	ASSERT_EQ_INT(harness_query_int(conn, sql), 1);

	/* --now on an entry that fails again reports it */
	ASSERT_EQ_INT(run_passportd(&output, 30, NULL, "reprocess-now-again", "reprocess", "--now", "--id", dead[0],
				    "--dsn", dsn, NULL),
		      0);
	ASSERT_STR_CONTAINS(output, "dead again");
	ASSERT_STR_CONTAINS(output, "unknown system");
	free(output);

	for (int i = 0; i < 4; i++) {
		free(dead[i]);
		free(processed[i]);
	}
	free(retrying[0]);
	free(retrying[1]);
	free(due);
	PQfinish(conn);
}

/* ---- case 11: passwords stay out of output ------------------------------------------------------ */

static void case_print_config(void)
{
	char *output;
	int status;

	status = run_passportd(&output, 10, NULL, "print-config", "--print-config", "--dsn",
			       "host=/nonexistent dbname=x user=u password=secret", NULL);
	ASSERT_EQ_INT(status, 0);
	ASSERT_STR_CONTAINS(output, "dsn = ");
	ASSERT_STR_CONTAINS(output, "/nonexistent");
	ASSERT_STR_NOT_CONTAINS(output, "secret");
	free(output);

	status = run_passportd(&output, 10, NULL, "print-config-uri", "--print-config", "--dsn",
			       "postgresql://u:secret@localhost:1/x", NULL);
	ASSERT_EQ_INT(status, 0);
	ASSERT_STR_CONTAINS(output, "localhost");
	ASSERT_STR_NOT_CONTAINS(output, "secret");
	free(output);

	/* PASSPORTD_CONFIG names the file when --config does not, and it must exist. */
	{
		char path[600], env_set[700];
		const char *env[] = {env_set, NULL};

		snprintf(path, sizeof path, "%s/from-env.conf", children_temp_dir());
		write_file(path, "batch_size = 123\n");
		snprintf(env_set, sizeof env_set, "PASSPORTD_CONFIG=%s", path);
		ASSERT_EQ_INT(run_passportd(&output, 10, env, "config-env", "--print-config", NULL), 0);
		ASSERT_STR_CONTAINS(output, "batch_size = 123");
		free(output);
		ASSERT_EQ_INT(run_passportd(&output, 10, env, "config-env-cli", "--print-config", "--config", "/dev/null",
					    NULL),
			      0);
		ASSERT_STR_NOT_CONTAINS(output, "batch_size = 123");
		free(output);
		snprintf(env_set, sizeof env_set, "PASSPORTD_CONFIG=%s/missing.conf", children_temp_dir());
		ASSERT_EQ_INT(run_passportd(&output, 10, env, "config-env-missing", "--print-config", NULL), 78);
		ASSERT_STR_CONTAINS(output, "missing.conf");
		free(output);
	}

	/* The connection error of a command that cannot connect does not show it either. */
	status = run_passportd(&output, 30, NULL, "status-no-server", "status", "--dsn",
			       "host=/nonexistent port=1 user=u password=secret", NULL);
	ASSERT_NE_INT(status, 0);
	ASSERT_STR_NOT_CONTAINS(output, "secret");
	free(output);
}

/*
 * The command line: each command takes only its own options. A misuse is a usage error (exit 2)
 * before anything connects (the server named does not exist, so a connection attempt would say
 * "cannot connect"); `COMMAND --help` shows that command's options; an invalid configuration
 * exits 78 (EX_CONFIG).
 */
static void case_usage(void)
{
	static const char *const misuses[][3] = {
		{"drain", "--dry-run", NULL}, {"status", "--now", NULL},       {"drain", "--id", "x"},
		{"run", "--dry-run", NULL},   {"status", "--workers", "2"},    {"inspect", "--all", NULL},
		{"reprocess", NULL, NULL},    {"reprocess", "--limit", "5"},   {"reprocess", "--all", "--dry-run"},
		{"frobnicate", NULL, NULL},   {"drain", "--no-such-option", NULL},
	};
	const char *dsn = "host=/nonexistent port=1 user=u";
	char *output;

	for (size_t i = 0; i < sizeof misuses / sizeof misuses[0]; i++) {
		const char *a = misuses[i][0], *b = misuses[i][1], *c = misuses[i][2];
		int status;

		if (strcmp(a, "reprocess") == 0 && b && c && strcmp(c, "--dry-run") == 0)
			continue; /* --all --dry-run is fine: listed below */
		status = run_passportd(&output, 10, NULL, "usage", a, "--dsn", dsn, b, c, NULL);
		printf("  passportd %s %s %s: exit %d\n", a, b ? b : "", c ? c : "", status);
		ASSERT_EQ_INT(status, 2);
		ASSERT_STR_NOT_CONTAINS(output, "connect");
		free(output);
	}
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "usage-reprocess", "reprocess", "--dsn", dsn, NULL), 2);
	ASSERT_STR_CONTAINS(output, "--all");
	free(output);
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "usage-drain", "drain", "--dry-run", "--dsn", dsn, NULL), 2);
	ASSERT_STR_CONTAINS(output, "drain does not take --dry-run");
	free(output);

	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "help-reprocess", "reprocess", "--help", NULL), 0);
	ASSERT_STR_CONTAINS(output, "Usage: passportd reprocess");
	ASSERT_STR_CONTAINS(output, "--error-like");
	ASSERT_STR_CONTAINS(output, "--all");
	ASSERT_STR_NOT_CONTAINS(output, "--poll-interval");
	free(output);
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "help-run", "run", "--help", NULL), 0);
	ASSERT_STR_CONTAINS(output, "--statement-timeout");
	ASSERT_STR_NOT_CONTAINS(output, "--dry-run");
	free(output);

	/* An invalid configuration: EX_CONFIG, so that systemd does not restart into it. */
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "config-error", "run", "--dsn", dsn, "--batch-size", "0", NULL), 78);
	free(output);
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "config-missing", "status", "--config", "/nonexistent/passportd.conf",
				    "--dsn", dsn, NULL),
		      78);
	free(output);
	/* --check-config, which the unit's ExecReload runs before SIGHUP. */
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "check-config", "run", "--check-config", "--dsn", dsn, NULL), 0);
	free(output);
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "check-config-bad", "run", "--check-config", "--dsn", dsn,
				    "--poll-interval", "-1", NULL),
		      78);
	free(output);
	ASSERT_EQ_INT(run_passportd(&output, 10, NULL, "check-config-dsn", "run", "--check-config", "--dsn",
				    "postgresql://u:secret@[::1/x", NULL),
		      78);
	ASSERT_STR_NOT_CONTAINS(output, "secret");
	free(output);
}

/*
 * A service whose database is not there at start keeps trying, with a growing pause between
 * attempts (0.5, 1, 2 s ...) even when the poll interval is short, and stops on SIGTERM.
 */
static void case_no_server_at_start(void)
{
	const char *args[] = {"run", "--dsn", "host=/nonexistent port=1 user=u password=secret", "--poll-interval", "0.1",
			      NULL};
	struct child *d = daemon_start("no-server", args, NULL);
	char *log;
	int attempts;

	require_log(d, "worker:", 1, 5);
	children_sleep(3.0);
	ASSERT_TRUE(child_alive(d));
	daemon_stop_ok(d);
	log = child_log(d);
	ASSERT_STR_NOT_CONTAINS(log, "secret");
	attempts = count_occurrences(log, "passportd[warning]: worker:");
	free(log);
	printf("  %d worker connection attempts in ~3 s without a server (poll interval 0.1 s)\n", attempts);
	if (attempts > 6)
		FAIL("%d connection attempts in ~3 s: the reconnect backoff is not applied (the poll timer"
		     " starts a pass whenever it fires)", attempts);
}

/* ---- main ---------------------------------------------------------------------------------- */

static const struct children_case cases[] = {
	{"print-config", case_print_config},
	{"usage", case_usage},
	{"notify", case_notify},
	{"poll", case_poll},
	{"retry", case_retry},
	{"terminate", case_terminate},
	{"stuck", case_stuck_batch},
	{"reload", case_reload},
	{"reload-mid", case_reload_mid_pass},
	{"pause", case_pause},
	{"catch-up-pause", case_catch_up_pause},
	{"log-format", case_log_format},
	{"log-burst", case_log_burst},
	{"sd-notify", case_sd_notify},
	{"ready", case_ready},
	{"freeze", case_freeze},
	{"status", case_status_reprocess},
	{"sigterm", case_sigterm},
	{"three", case_three_daemons},
	{"catch-up", case_catch_up},
	{"restart", case_restart},
	{"no-server", case_no_server_at_start},
};

int main(void)
{
	/* At exit: the restart case's second server, its log when a case failed. */
	children_at_exit(server2_at_exit);
	children_run_cases("passport-service", "PASSPORT_SERVICE_CASES", "service", cases, sizeof cases / sizeof cases[0]);
	TEST_PASS();
}
