/*
 * test_metrics: `passportd run --metrics-listen` against the test server. The endpoint answers
 * before and while entries are processed; the counters move and end at what the database says
 * happened; the queue gauges agree with the table and are read at most once per poll interval; a
 * client that connects and sends nothing does not hold up batches; an address already in use
 * stops a second daemon at start-up with the reason; the daemon logs its --version line at start.
 */
#include "integration/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "version.h"

#define USERS 20
#define GOOD_PER_USER 30   /* 600 entries that succeed */
#define DEAD_ENTRIES 7     /* an unknown system: a permanent error */
#define RETRY_ENTRIES 5    /* a user without a media_ids row: retried later */
#define POLL_INTERVAL 1.0

static char log_path[256];
static pid_t daemon_pid;

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds)
{
	struct timespec ts = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static char *daemon_log(void)
{
	FILE *f = fopen(log_path, "r");
	char *text;
	long size;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)size + 1);
	if (text && fread(text, 1, (size_t)size, f) != (size_t)size)
		text[0] = '\0';
	fclose(f);
	return text;
}

static void print_daemon_log(void)
{
	char *text = daemon_log();

	fprintf(stderr, "---- passportd log (%s) ----\n%s---- end of log ----\n", log_path, text ? text : "");
	free(text);
}

static void on_exit_kill(void)
{
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGKILL);
		waitpid(daemon_pid, NULL, 0);
		print_daemon_log();
	}
}

static pid_t start_daemon(const char *const argv[])
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		unsetenv("NOTIFY_SOCKET");
		unsetenv("JOURNAL_STREAM");
		unsetenv("PASSPORT_DATABASE_URL");
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void wait_for_log(const char *needle, double timeout)
{
	double deadline = now_seconds() + timeout;

	for (;;) {
		char *text = daemon_log();
		bool found = text && strstr(text, needle);

		free(text);
		if (found)
			return;
		if (now_seconds() > deadline)
			FAIL("passportd did not log \"%s\" within %.0f s", needle, timeout);
		sleep_seconds(0.05);
	}
}

/* A TCP port on 127.0.0.1 that nothing listens on right now. */
static int free_port(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ_INT(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ASSERT_EQ_INT(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	close(fd);
	return ntohs(addr.sin_port);
}

static int connect_port(int port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval timeout = {5, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ASSERT_TRUE(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		FAIL("connect to 127.0.0.1:%d: %s", port, strerror(errno));
	return fd;
}

/* GET path over HTTP/1.0; returns the whole response, headers included (caller frees). */
static char *http_get(int port, const char *path)
{
	char request[256], *response = NULL;
	size_t len = 0, cap = 0;
	int fd = connect_port(port);

	snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	ASSERT_EQ_INT((int)write(fd, request, strlen(request)), (int)strlen(request));
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 65536;
			response = realloc(response, cap);
			ASSERT_NOT_NULL(response);
		}
		n = read(fd, response + len, cap - len - 1);
		if (n < 0)
			FAIL("reading %s from 127.0.0.1:%d: %s", path, port, strerror(errno));
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	response[len] = '\0';
	return response;
}

/* The value of the sample whose name (with labels, as exposed) is sample; NAN when absent. */
static double sample(const char *body, const char *name)
{
	size_t n = strlen(name);

	for (const char *line = body; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		if (strncmp(line, name, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
	return NAN;
}

static char *scrape(int port)
{
	char *response = http_get(port, "/metrics");

	if (strncmp(response, "HTTP/1.0 200", 12) != 0 && strncmp(response, "HTTP/1.1 200", 12) != 0)
		FAIL("GET /metrics did not answer 200:\n%.300s", response);
	ASSERT_STR_CONTAINS(response, "text/plain; version=0.0.4");
	return response;
}

/*
 * The entries, one statement per user (each wakes the daemon), scraping after each: returns how
 * many different values of the processed counter those scrapes saw, which must not go down.
 */
static int insert_entries_while_scraping(PGconn *conn, int port)
{
	double previous = -1;
	int distinct = 0;

	for (int u = 0; u < USERS; u++) {
		double processed;
		char *body;

		harness_execf(conn,
			      "INSERT INTO passport_entries (user_id, event_type, event_category, affects_systems, \"timestamp\")"
			      " SELECT md5('metrics-user-%d')::uuid, 'player.track_played', 'interaction', '{mediaid,coliseum}',"
			      "        now() - interval '1 hour' + i * interval '1 second'"
			      "   FROM generate_series(1, %d) i",
			      u, GOOD_PER_USER);
		/*
		 * The counter moves when the pass that took these entries ends: wait for that (a loaded
		 * machine may take a while), never for longer than a few seconds.
		 */
		for (double until = now_seconds() + 5;;) {
			sleep_seconds(0.05);
			body = scrape(port);
			processed = sample(body, "passportd_entries_processed_total");
			free(body);
			ASSERT_TRUE(processed >= previous);
			if (processed != previous || now_seconds() > until)
				break;
		}
		if (processed != previous)
			distinct++;
		previous = processed;
	}
	harness_execf(conn,
		      "INSERT INTO passport_entries (user_id, event_type, event_category, affects_systems)"
		      " SELECT md5('metrics-user-0')::uuid, 'player.track_played', 'interaction', '{billing}'"
		      "   FROM generate_series(1, %d)",
		      DEAD_ENTRIES);
	harness_execf(conn,
		      "INSERT INTO passport_entries (user_id, event_type, event_category, affects_systems)"
		      " SELECT md5('metrics-nobody-' || i)::uuid, 'player.track_played', 'interaction', '{mediaid}'"
		      "   FROM generate_series(1, %d) i",
		      RETRY_ENTRIES);
	return distinct;
}

int main(void)
{
	char dsn[1024], role_dsn[1200], address[64], port_text[16], poll_text[16], line[512];
	const int total = USERS * GOOD_PER_USER + DEAD_ENTRIES + RETRY_ENTRIES;
	double previous_processed = 0, deadline, read_times[64];
	int port, n_read_times = 0, mid_run_scrapes = 0, stalled_client, status;
	PGconn *conn;
	char *body, *output, *log;

	conn = harness_create_database("metrics", NULL, dsn, sizeof(dsn));
	harness_role_dsn(dsn, "passportd", role_dsn, sizeof(role_dsn));
	for (int u = 0; u < USERS; u++)
		harness_execf(conn,
			      "INSERT INTO media_ids (id, user_uuid, role) VALUES (md5('metrics-row-%d')::uuid,"
			      " md5('metrics-user-%d')::uuid, 'fan')",
			      u, u);
	snprintf(log_path, sizeof(log_path), "/tmp/passport-metrics-%ld.log", (long)getpid());
	unlink(log_path);
	atexit(on_exit_kill);

	port = free_port();
	snprintf(address, sizeof(address), "127.0.0.1:%d", port);
	snprintf(port_text, sizeof(port_text), "%d", port);
	snprintf(poll_text, sizeof(poll_text), "%g", POLL_INTERVAL);
	{
		const char *argv[] = {harness_passportd(), "run", "--dsn", role_dsn, "--metrics-listen", address,
				      "--poll-interval", poll_text, "--batch-size", "25", NULL};
		daemon_pid = start_daemon(argv);
	}
	wait_for_log("serving metrics at", 10);
	/* The version line is the first thing `run` logs. */
	wait_for_log(version_line("passportd", line, sizeof(line)), 10);
	wait_for_log("listener: listening for new entries", 10);

	/* Before any work: the endpoint answers, the counters are zero, the build is described. */
	body = scrape(port);
	ASSERT_EQ_DBL(sample(body, "passportd_entries_processed_total"), 0, 0);
	ASSERT_STR_CONTAINS(body, "# TYPE passportd_batch_duration_seconds histogram");
	ASSERT_STR_CONTAINS(body, "passportd_build_info{version=\"" PASSPORT_VERSION "\"");
	ASSERT_EQ_DBL(sample(body, "passportd_listener_up"), 1, 0);
	free(body);
	body = http_get(port, "/nowhere");
	ASSERT_STR_CONTAINS(body, " 404 ");
	free(body);

	/* A client that connects and never sends a request must not hold anything up. */
	stalled_client = connect_port(port);

	/* The counter moves while entries are processed: several values between the inserts. */
	mid_run_scrapes = insert_entries_while_scraping(conn, port);
	printf("distinct values of the processed counter while inserting: %d\n", mid_run_scrapes);
	ASSERT_GE_INT(mid_run_scrapes, 3);
	deadline = now_seconds() + 60;
	for (;;) {
		double processed, read_time, dead, retrying;
		long long left;

		body = scrape(port);
		processed = sample(body, "passportd_entries_processed_total");
		/*
		 * The counters move when a pass ends, after its last batch committed and one more claim
		 * found nothing: the failed entries, inserted last, may be in a later pass than the last
		 * good ones. Wait for that pass too (the exact values are checked below).
		 */
		dead = sample(body, "passportd_entries_failed_total{outcome=\"dead\"}");
		retrying = sample(body, "passportd_entries_failed_total{outcome=\"retrying\"}");
		ASSERT_TRUE(processed >= previous_processed); /* a counter never goes down */
		previous_processed = processed;
		read_time = sample(body, "passportd_queue_read_timestamp_seconds");
		if (!isnan(read_time) && (n_read_times == 0 || read_times[n_read_times - 1] != read_time) &&
		    n_read_times < 64)
			read_times[n_read_times++] = read_time;
		free(body);
		left = harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE NOT processed"
					       " AND dead_at IS NULL AND next_attempt_at IS NULL");
		if (left == 0 && processed >= USERS * GOOD_PER_USER && dead >= DEAD_ENTRIES && retrying >= RETRY_ENTRIES)
			break;
		if (now_seconds() > deadline)
			FAIL("after 60 s: %lld entries still due; by the counters %.0f processed, %.0f dead, %.0f retrying",
			     left, processed, dead, retrying);
		sleep_seconds(0.02);
	}

	/* The counters end at what the database says happened. */
	body = scrape(port);
	ASSERT_EQ_DBL(sample(body, "passportd_entries_processed_total"),
		      (double)harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed"), 0);
	ASSERT_EQ_DBL(sample(body, "passportd_entries_processed_total"), USERS * GOOD_PER_USER, 0);
	ASSERT_EQ_DBL(sample(body, "passportd_entries_failed_total{outcome=\"dead\"}"), DEAD_ENTRIES, 0);
	ASSERT_EQ_DBL(sample(body, "passportd_entries_failed_total{outcome=\"retrying\"}"), RETRY_ENTRIES, 0);
	ASSERT_EQ_DBL(sample(body, "passportd_entries_claimed_total"), total, 0);
	ASSERT_TRUE(sample(body, "passportd_batches_total") >= (double)total / 25);
	ASSERT_TRUE(sample(body, "passportd_dna_rows_written_total") >= USERS);
	ASSERT_TRUE(sample(body, "passportd_batch_duration_seconds_count") >= 1);
	ASSERT_EQ_DBL(sample(body, "passportd_batch_duration_seconds_bucket{le=\"+Inf\"}"),
		      sample(body, "passportd_batch_duration_seconds_count"), 0);
	ASSERT_TRUE(sample(body, "passportd_batch_duration_seconds_sum") > 0);
	ASSERT_TRUE(fabs(sample(body, "passportd_last_batch_timestamp_seconds") - (double)time(NULL)) < 120);
	ASSERT_EQ_DBL(sample(body, "passportd_database_up"), 1, 0);
	free(body);

	/* The queue gauges catch up within a poll interval or two and agree with the table. */
	deadline = now_seconds() + 10;
	for (;;) {
		body = scrape(port);
		if (sample(body, "passportd_queue_due") == 0 && sample(body, "passportd_queue_dead") == DEAD_ENTRIES &&
		    sample(body, "passportd_queue_retrying") == RETRY_ENTRIES)
			break;
		if (now_seconds() > deadline)
			FAIL("the queue gauges do not show 0 due, %d retrying, %d dead:\n%s", RETRY_ENTRIES, DEAD_ENTRIES,
			     body);
		free(body);
		sleep_seconds(0.1);
	}
	ASSERT_EQ_DBL(sample(body, "passportd_queue_oldest_due_age_seconds"), 0, 0);
	free(body);

	/*
	 * At most once per poll interval: successive readings (each stamped when taken) are at least
	 * a poll interval apart, although the daemon ran many passes.
	 */
	ASSERT_GE_INT(n_read_times, 1);
	for (int i = 1; i < n_read_times; i++)
		if (read_times[i] - read_times[i - 1] < POLL_INTERVAL * 0.95)
			FAIL("queue gauges read %.3f s after the previous reading (poll interval %g s)",
			     read_times[i] - read_times[i - 1], POLL_INTERVAL);

	/* The same address again: a second daemon refuses to start and says why. */
	{
		const char *argv[] = {harness_passportd(), "run", "--dsn", role_dsn, "--metrics-listen", address, NULL};
		status = harness_run(argv, NULL, &output);
		ASSERT_EQ_INT(status, 1);
		ASSERT_STR_CONTAINS(output, "metrics_listen");
		ASSERT_STR_CONTAINS(output, address);
		ASSERT_STR_CONTAINS(output, "Address already in use");
		free(output);
	}
	{
		const char *argv[] = {harness_passportd(), "run", "--dsn", role_dsn, "--metrics-listen", "localhost", NULL};
		status = harness_run(argv, NULL, &output);
		ASSERT_EQ_INT(status, 78); /* an invalid option value: EX_CONFIG (the unit does not restart) */
		ASSERT_STR_CONTAINS(output, "metrics_listen");
		free(output);
	}

	close(stalled_client);
	kill(daemon_pid, SIGTERM);
	ASSERT_EQ_INT(waitpid(daemon_pid, &status, 0), daemon_pid);
	daemon_pid = 0;
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ_INT(WEXITSTATUS(status), 0);
	log = daemon_log();
	ASSERT_STR_NOT_CONTAINS(log, "ERROR: AddressSanitizer");
	ASSERT_STR_NOT_CONTAINS(log, "runtime error:");
	free(log);
	unlink(log_path);
	PQfinish(conn);
	TEST_PASS();
}
