/* fault: helpers shared by the fault tests (children, private servers, state comparisons). */
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 64
#define MAX_LOGS 64
#define MAX_SERVERS 4

/* What the exit hook cleans up: children still running, servers still up, logs to show. */
static struct {
	const char *test_name;
	bool passed;
	pid_t children[MAX_CHILDREN];
	char logs[MAX_LOGS][512];
	int n_logs;
	struct fault_server *servers[MAX_SERVERS];
	int n_servers;
	char temp_dir[64];
} state;

/* ---- sizes, randomness, time ----------------------------------------------------------- */

bool fault_heavy(void)
{
	const char *heavy = getenv("PASSPORT_FAULT_HEAVY");

	return heavy && strcmp(heavy, "1") == 0;
}

unsigned fault_seed(void)
{
	const char *text = getenv("PASSPORT_FAULT_SEED");
	unsigned seed;

	if (text && *text)
		seed = (unsigned)strtoul(text, NULL, 10);
	else
		seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
	srandom(seed);
	printf("random seed %u (repeat with PASSPORT_FAULT_SEED=%u)\n", seed, seed);
	return seed;
}

double fault_random(double low, double high)
{
	return low + (high - low) * ((double)random() / ((double)RAND_MAX + 1.0));
}

int fault_random_index(int n)
{
	return (int)(random() % n);
}

double fault_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void fault_sleep(double seconds)
{
	struct timespec ts;

	if (seconds <= 0)
		return;
	ts.tv_sec = (time_t)seconds;
	ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- exit hook --------------------------------------------------------------------------- */

static void register_log(const char *path)
{
	for (int i = 0; i < state.n_logs; i++)
		if (strcmp(state.logs[i], path) == 0)
			return;
	if (state.n_logs < MAX_LOGS)
		snprintf(state.logs[state.n_logs++], sizeof(state.logs[0]), "%s", path);
}

static void remove_tree(const char *dir)
{
	char command[600];

	/* The directory came from mkdtemp under /tmp: nothing else is at risk. */
	if (strncmp(dir, "/tmp/passport-fault-", 20) != 0)
		return;
	snprintf(command, sizeof command, "rm -rf '%s'", dir);
	if (system(command) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static int stop_server(struct fault_server *server, const char *mode);

static void at_exit(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (state.children[i] > 0) {
			kill(state.children[i], SIGKILL);
			waitpid(state.children[i], NULL, 0);
			state.children[i] = 0;
		}
	}
	if (!state.passed || getenv("PASSPORT_FAULT_LOGS")) {
		for (int i = 0; i < state.n_logs; i++)
			fault_print_tail(state.logs[i], getenv("PASSPORT_FAULT_LOGS") ? 400 : 80);
	}
	for (int i = 0; i < state.n_servers; i++) {
		struct fault_server *server = state.servers[i];
		/* Even when believed stopped: a signal may have come while pg_ctl was starting it. */
		(void)stop_server(server, "immediate");
		remove_tree(server->dir);
	}
	state.n_servers = 0;
	if (state.temp_dir[0])
		remove_tree(state.temp_dir);
}

/*
 * A timeout (meson sends SIGTERM) or ^C must still kill the daemons and stop the servers. exit()
 * is not async-signal-safe; for a test about to end anyway, a rare hang is the lesser evil than
 * daemons and servers left running.
 */
static void on_stop_signal(int signo)
{
	fprintf(stderr, "FAIL: stopped by signal %d\n", signo);
	exit(128 + signo);
}

void fault_begin(const char *test_name)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	state.test_name = test_name;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_stop_signal);
	signal(SIGINT, on_stop_signal);
	atexit(at_exit);
}

const char *fault_temp_dir(void)
{
	if (!state.temp_dir[0]) {
		snprintf(state.temp_dir, sizeof state.temp_dir, "/tmp/passport-fault-XXXXXX");
		if (!mkdtemp(state.temp_dir))
			FAIL("mkdtemp: %s", strerror(errno));
	}
	return state.temp_dir;
}

void fault_passed(void)
{
	state.passed = true;
	printf("\n%s: all fault cases passed\n", state.test_name ? state.test_name : "test");
}

/* ---- SQL --------------------------------------------------------------------------------- */

PGresult *fault_try(PGconn *conn, const char *sql)
{
	return PQexec(conn, sql);
}

char *fault_read_file(const char *path, size_t *length)
{
	FILE *file = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, capacity = 0;

	if (!file)
		return NULL;
	for (;;) {
		size_t got;
		if (capacity - len < 65536) {
			capacity = capacity ? capacity * 2 : 131072;
			text = realloc(text, capacity);
			if (!text)
				FAIL("out of memory");
		}
		got = fread(text + len, 1, capacity - len - 1, file);
		len += got;
		if (got == 0)
			break;
	}
	fclose(file);
	text[len] = '\0';
	if (length)
		*length = len;
	return text;
}

char *fault_read_source(const char *relative)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char path[4096];
	char *text;

	if (!root || !*root)
		FAIL("PASSPORT_SOURCE_ROOT is not set (run the tests through meson)");
	snprintf(path, sizeof path, "%s/%s", root, relative);
	text = fault_read_file(path, NULL);
	if (!text)
		FAIL("cannot read %s: %s", path, strerror(errno));
	return text;
}

void fault_dsn_with(char *out, size_t outlen, const char *dsn, const char *keyword, const char *value)
{
	size_t len;

	if (out != dsn)
		snprintf(out, outlen, "%s", dsn);
	len = strlen(out);
	len += (size_t)snprintf(out + len, len < outlen ? outlen - len : 0, " %s='", keyword);
	for (const char *p = value; *p && len + 3 < outlen; p++) {
		if (*p == '\'' || *p == '\\')
			out[len++] = '\\';
		out[len++] = *p;
	}
	if (len + 2 > outlen)
		FAIL("connection string too long");
	out[len++] = '\'';
	out[len] = '\0';
}

bool fault_wait_for(PGconn *conn, double timeout_seconds, const char *sql)
{
	double deadline = fault_now() + timeout_seconds;

	for (;;) {
		char *value = harness_query_text(conn, sql);
		bool done = value && strcmp(value, "t") == 0;

		free(value);
		if (done)
			return true;
		if (fault_now() > deadline)
			return false;
		fault_sleep(0.1);
	}
}

/* ---- child processes --------------------------------------------------------------------- */

static void track_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (state.children[i] == 0) {
			state.children[i] = pid;
			return;
		}
	}
	FAIL("too many child processes");
}

static void forget_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (state.children[i] == pid)
			state.children[i] = 0;
}

pid_t fault_spawn(const char *const argv[], const char *const env[], const char *log_path)
{
	pid_t pid;
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		FAIL("cannot open %s: %s", log_path, strerror(errno));
	register_log(log_path);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		for (size_t i = 0; env && env[i]; i++) {
			char *assignment = strdup(env[i]);
			if (!assignment || putenv(assignment) != 0)
				_exit(127);
		}
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot execute %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fd);
	track_child(pid);
	return pid;
}

static int decode_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return -1;
}

bool fault_reap(pid_t pid, int *status)
{
	int wstatus;
	pid_t got = waitpid(pid, &wstatus, WNOHANG);

	if (got == 0)
		return false;
	if (got < 0)
		FAIL("waitpid(%d): %s", (int)pid, strerror(errno));
	forget_child(pid);
	if (status)
		*status = decode_status(wstatus);
	return true;
}

int fault_wait(pid_t pid, double timeout_seconds)
{
	double deadline = fault_now() + timeout_seconds;
	int status;

	for (;;) {
		if (fault_reap(pid, &status))
			return status;
		if (fault_now() > deadline)
			return -1;
		fault_sleep(0.02);
	}
}

void fault_kill_and_reap(pid_t pid)
{
	int wstatus;

	kill(pid, SIGKILL);
	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR)
			FAIL("waitpid(%d): %s", (int)pid, strerror(errno));
	}
	forget_child(pid);
}

double fault_cpu_seconds(pid_t pid)
{
	char path[64], buffer[4096];
	unsigned long long utime, stime;
	const char *p;
	FILE *file;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	file = fopen(path, "r");
	if (!file)
		FAIL("cannot open %s: %s", path, strerror(errno));
	n = fread(buffer, 1, sizeof buffer - 1, file);
	fclose(file);
	buffer[n] = '\0';
	/* The command name may hold spaces and parentheses: fields start after the last ')'. */
	p = strrchr(buffer, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
		FAIL("cannot parse %s: %s", path, buffer);
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

char *fault_cmdline(pid_t pid)
{
	char path[64];
	size_t len;
	char *text;

	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	text = fault_read_file(path, &len);
	if (!text)
		FAIL("cannot read %s: %s", path, strerror(errno));
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\0')
			text[i] = ' ';
	return text;
}

void fault_print_tail(const char *path, int lines)
{
	size_t len;
	char *text = fault_read_file(path, &len);
	size_t start = len;
	int seen = 0;

	if (!text)
		return;
	while (start > 0 && seen <= lines) {
		start--;
		if (text[start] == '\n' && start + 1 < len)
			seen++;
	}
	if (seen > lines)
		start++;
	fprintf(stderr, "---- last lines of %s ----\n%s%s---- end of %s ----\n", path, text + start,
		len > 0 && text[len - 1] != '\n' ? "\n" : "", path);
	free(text);
}

void fault_expect_clean_log(const char *path)
{
	static const char *const signs[] = {"AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
					    "runtime error:", "Segmentation fault", "double free",
					    "Assertion", "stack smashing", NULL};
	char *text = fault_read_file(path, NULL);

	if (!text)
		FAIL("cannot read %s", path);
	for (int i = 0; signs[i]; i++)
		if (strstr(text, signs[i]))
			FAIL("%s shows '%s'", path, signs[i]);
	free(text);
}

/* ---- private servers --------------------------------------------------------------------- */

/* Run a bash script with $1 = the source root and $2 = the server directory; returns its status. */
static int run_pg_script(const struct fault_server *server, const char *script, char **output)
{
	const char *root = getenv("PASSPORT_SOURCE_ROOT");
	char full[4096];

	if (!root || !*root)
		FAIL("PASSPORT_SOURCE_ROOT is not set (run the tests through meson)");
	snprintf(full, sizeof full, "set -e; source \"$1/scripts/lib/pg.sh\"; %s", script);
	{
		const char *argv[] = {"/bin/bash", "-c", full, "pg.sh", root, server->dir, NULL};
		return harness_run(argv, NULL, output);
	}
}

void fault_server_start(struct fault_server *server, const char *hba_first)
{
	char *output = NULL, *line;
	int status;

	if (!getenv("PASSPORT_TEST_PGHOST") || !*getenv("PASSPORT_TEST_PGHOST")) {
		fprintf(stderr, "SKIP: PASSPORT_TEST_PGHOST is not set (run ./scripts/test)\n");
		exit(77);
	}
	memset(server, 0, sizeof(*server));
	snprintf(server->dir, sizeof server->dir, "/tmp/passport-fault-XXXXXX");
	if (!mkdtemp(server->dir))
		FAIL("mkdtemp: %s", strerror(errno));
	if (state.n_servers >= MAX_SERVERS)
		FAIL("too many servers");
	state.servers[state.n_servers++] = server;

	status = run_pg_script(server, "pg_private_start \"$2\" >&2; echo \"port=$PGPORT\"", &output);
	if (status != 0)
		FAIL("could not start a private PostgreSQL in %s (status %d)", server->dir, status);
	server->running = true;
	line = strstr(output, "port=");
	if (!line || sscanf(line, "port=%15[0-9]", server->port) != 1)
		FAIL("no port in the output of pg_private_start");
	free(output);
	snprintf(server->host, sizeof server->host, "%s/socket", server->dir);
	{
		char log[600];
		snprintf(log, sizeof log, "%s/server.log", server->dir);
		register_log(log);
	}

	if (hba_first) {
		char path[600];
		size_t len;
		char *old;
		FILE *file;

		snprintf(path, sizeof path, "%s/data/pg_hba.conf", server->dir);
		old = fault_read_file(path, &len);
		if (!old)
			FAIL("cannot read %s", path);
		file = fopen(path, "w"); /* rewriting in place keeps the server user's ownership */
		if (!file || fprintf(file, "%s\n%s", hba_first, old) < 0 || fclose(file) != 0)
			FAIL("cannot write %s", path);
		free(old);
		/* A restart rather than a reload: when pg_ctl returns, the new rules are in force. */
		status = run_pg_script(server,
				       "pg_private_as_owner \"$2\" \"$(pg_private_bindir)/pg_ctl\" -D \"$2/data\""
				       " -l \"$2/server.log\" -m fast -w -t 60 restart >&2",
				       NULL);
		if (status != 0)
			FAIL("could not restart the private server with the new pg_hba.conf");
	}
	printf("private PostgreSQL in %s, port %s\n", server->dir, server->port);
}

/* pg_ctl stop; returns its status (the exit hook must not fail, so this does not). */
static int stop_server(struct fault_server *server, const char *mode)
{
	char script[512];
	int status;

	snprintf(script, sizeof script,
		 "pg_private_as_owner \"$2\" \"$(pg_private_bindir)/pg_ctl\" -D \"$2/data\" -m %s -w -t 60 stop >&2",
		 mode);
	status = run_pg_script(server, script, NULL);
	if (status == 0)
		server->running = false;
	return status;
}

void fault_server_stop(struct fault_server *server, const char *mode)
{
	int status = stop_server(server, mode);

	if (status != 0)
		FAIL("pg_ctl stop -m %s failed (status %d)", mode, status);
}

void fault_server_restart_stopped(struct fault_server *server)
{
	char script[600];
	int status;

	snprintf(script, sizeof script,
		 "pg_private_as_owner \"$2\" \"$(pg_private_bindir)/pg_ctl\" -D \"$2/data\" -l \"$2/server.log\""
		 " -w -t 120 -o \"-c listen_addresses='' -c port=%s\" start >&2",
		 server->port);
	status = run_pg_script(server, script, NULL);
	if (status != 0)
		FAIL("pg_ctl start failed (status %d)", status);
	server->running = true;
}

void fault_server_use(const struct fault_server *server)
{
	setenv("PASSPORT_TEST_PGHOST", server->host, 1);
	setenv("PASSPORT_TEST_PGPORT", server->port, 1);
}

/* ---- databases and comparisons ----------------------------------------------------------- */

PGconn *fault_create_database(const char *name, char *dsn, char *daemon_dsn)
{
	PGconn *conn = harness_create_database(name, NULL, dsn, FAULT_DSN_MAX);
	char *workload = fault_read_source("tests/sql/workload.sql");

	harness_exec(conn, "SET client_min_messages = warning");
	harness_exec(conn, workload);
	free(workload);
	harness_allow_role_login(conn);
	if (daemon_dsn)
		fault_dsn_with(daemon_dsn, FAULT_DSN_MAX, dsn, "user", "passportd");
	return conn;
}

long fault_drain(const char *dsn, const char *const extra[])
{
	const char *argv[16] = {harness_passportd(), "drain", "--dsn", dsn};
	int argc = 4, status;
	char *output = NULL;
	const char *line;
	long processed = -1;

	for (int i = 0; extra && extra[i] && argc < 15; i++)
		argv[argc++] = extra[i];
	argv[argc] = NULL;
	status = harness_run(argv, NULL, &output);
	if (status != 0)
		FAIL("passportd drain exited with status %d", status);
	line = strstr(output, "drain: processed ");
	if (!line || sscanf(line, "drain: processed %ld", &processed) != 1)
		FAIL("no summary line in the output of passportd drain");
	free(output);
	return processed;
}

/* Where two texts first differ, for messages about long values such as embeddings. */
static void describe_difference(const char *a, const char *b, char *out, size_t outlen)
{
	size_t i = 0;
	int element = 0;

	while (a[i] && a[i] == b[i]) {
		element += a[i] == ',';
		i++;
	}
	snprintf(out, outlen, "first difference at character %zu (element %d): '%.60s' vs '%.60s'", i, element,
		 a + i, b + i);
}

void fault_compare_keyed(const char *what, const char *table, PGconn *got, PGconn *reference, const char *sql)
{
	PGresult *a = PQexec(got, sql), *b = PQexec(reference, sql);
	int i = 0, j = 0, differences = 0;
	char first[1200] = "";

	if (PQresultStatus(a) != PGRES_TUPLES_OK || PQresultStatus(b) != PGRES_TUPLES_OK)
		FAIL("%s: reading %s failed: %s%s", what, table, PQresultErrorMessage(a), PQresultErrorMessage(b));
	while (i < PQntuples(a) || j < PQntuples(b)) {
		int c;
		if (i >= PQntuples(a))
			c = 1;
		else if (j >= PQntuples(b))
			c = -1;
		else
			c = strcmp(PQgetvalue(a, i, 0), PQgetvalue(b, j, 0));
		if (c == 0) {
			const char *x = PQgetvalue(a, i, 1), *y = PQgetvalue(b, j, 1);
			if (strcmp(x, y) != 0) {
				if (differences++ == 0) {
					char where[300];
					describe_difference(x, y, where, sizeof where);
					snprintf(first, sizeof first, "%s %s differs: %s\n    got:       %.300s\n    reference: %.300s",
						 table, PQgetvalue(a, i, 0), where, x, y);
				}
			}
			i++;
			j++;
		} else if (c < 0) {
			if (differences++ == 0)
				snprintf(first, sizeof first, "%s %s exists only in the tested database: %.300s", table,
					 PQgetvalue(a, i, 0), PQgetvalue(a, i, 1));
			i++;
		} else {
			if (differences++ == 0)
				snprintf(first, sizeof first, "%s %s exists only in the reference: %.300s", table,
					 PQgetvalue(b, j, 0), PQgetvalue(b, j, 1));
			j++;
		}
	}
	if (differences)
		FAIL("%s: %d difference(s) in %s (%d rows vs %d in the reference); %s", what, differences, table,
		     PQntuples(a), PQntuples(b), first);
	printf("%s: %s identical (%d rows)\n", what, table, PQntuples(a));
	PQclear(a);
	PQclear(b);
}

void fault_expect_same_state(PGconn *got, PGconn *reference, const char *what)
{
	fault_compare_keyed(what, "passport_entries", got, reference,
		      "SELECT id::text, ROW(processed, dead_at IS NOT NULL, coalesce(processing_attempts, 0),"
		      " last_error)::text FROM passport_entries ORDER BY 1");
	fault_compare_keyed(what, "media_ids", got, reference,
		      "SELECT id::text, ROW(dna_clock, profile_embedding::text)::text FROM media_ids ORDER BY 1");
	fault_compare_keyed(what, "dna_evolution", got, reference,
		      "SELECT passport_entry_id::text || '/' || mediaid_id::text,"
		      " ROW(event_type, event_time, target_type, target_id, alpha, decay_cultural, decay_behavioral,"
		      " decay_economic, decay_spatial, delta_cultural, delta_behavioral, delta_economic, delta_spatial,"
		      " late)::text FROM dna_evolution ORDER BY 1");
	fault_compare_keyed(what, "coliseum_metrics", got, reference,
		      "SELECT coalesce(passport_entry_id::text, 'none:' || id::text),"
		      " ROW(user_id, artist_id, event_id, track_id, brand_id, metric_type, metric_value, metric_unit,"
		      " source, session_id, dna_match_score, dna_domain, metadata, \"timestamp\")::text"
		      " FROM coliseum_metrics ORDER BY 1");
	fault_compare_keyed(what, "ledger_entries", got, reference,
		      "SELECT correlation_id || '/' || coalesce(amount_cents::text, ''),"
		      " coalesce(passport_entry_id::text, 'unlinked') FROM ledger_entries ORDER BY 1");
	fault_expect_no_duplicates(got);
}

void fault_expect_no_duplicates(PGconn *conn)
{
	long long evolution = harness_query_int(
		conn, "SELECT count(*) FROM (SELECT passport_entry_id FROM dna_evolution GROUP BY 1 HAVING count(*) > 1) d");
	long long metrics = harness_query_int(
		conn, "SELECT count(*) FROM (SELECT passport_entry_id FROM coliseum_metrics"
		      " WHERE passport_entry_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1) d");
	long long unapplied = harness_query_int(
		conn, "SELECT count(*) FROM dna_evolution d JOIN passport_entries e ON e.id = d.passport_entry_id"
		      " WHERE e.processed IS NOT TRUE");

	if (evolution || metrics || unapplied)
		FAIL("%lld entries with several dna_evolution rows, %lld with several coliseum rows, "
		     "%lld evolution rows of unprocessed entries",
		     evolution, metrics, unapplied);
}

long long fault_unsettled(PGconn *conn)
{
	return harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed IS NOT TRUE AND dead_at IS NULL");
}
