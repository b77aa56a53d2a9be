/* children: the child processes of an integration test, their logs, and their end. */
#include "children.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "integration/harness.h"

#define MAX_CHILDREN 256
#define MAX_ARGS 32

static char temp_dir[256];
static bool all_passed;
static struct child children[MAX_CHILDREN];
static int n_children;
static int case_first_child;
static void (*exit_hook)(bool passed);

double children_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void children_sleep(double seconds)
{
	struct timespec ts = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

char *children_read_file(const char *path)
{
	FILE *file = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, capacity = 0, got;

	do {
		if (capacity - len < 4096) {
			capacity = capacity ? capacity * 2 : 8192;
			text = realloc(text, capacity);
			if (!text)
				FAIL("out of memory");
		}
		got = file ? fread(text + len, 1, capacity - len - 1, file) : 0;
		len += got;
	} while (got > 0);
	text[len] = '\0';
	if (file)
		fclose(file);
	return text;
}

void children_print_file(const char *title, const char *path, size_t max_bytes)
{
	char *text = children_read_file(path);
	size_t len = strlen(text);
	const char *start = len > max_bytes ? text + len - max_bytes : text;

	fprintf(stderr, "---- %s (%s)%s ----\n%s", title, path, len > max_bytes ? ", last part" : "", start);
	if (len && text[len - 1] != '\n')
		fputc('\n', stderr);
	fprintf(stderr, "---- end of %s ----\n", title);
	free(text);
}

static void cleanup(void)
{
	for (int i = 0; i < n_children; i++) {
		if (!children[i].reaped && children[i].pid > 0) {
			kill(children[i].pid, SIGKILL);
			waitpid(children[i].pid, NULL, 0);
			children[i].reaped = true;
		}
	}
	if (!all_passed)
		for (int i = case_first_child; i < n_children; i++)
			children_print_file(children[i].label, children[i].log_path, 24000);
	if (exit_hook)
		exit_hook(all_passed);
	if (all_passed && temp_dir[0] && !getenv("PASSPORT_TEST_KEEP")) {
		char command[600];
		snprintf(command, sizeof command, "rm -rf '%s'", temp_dir);
		if (system(command) != 0)
			fprintf(stderr, "cannot remove %s\n", temp_dir);
	} else if (temp_dir[0]) {
		fprintf(stderr, "test files kept in %s\n", temp_dir);
	}
}

static void on_fatal_signal(int signo)
{
	/* Killed by meson's timeout: leave no daemon behind. */
	fprintf(stderr, "test killed by signal %d\n", signo);
	exit(1);
}

void children_init(const char *prefix)
{
	struct sigaction sa;

	snprintf(temp_dir, sizeof temp_dir, "/tmp/%s-XXXXXX", prefix);
	if (!mkdtemp(temp_dir))
		FAIL("mkdtemp: %s", strerror(errno));
	ASSERT_EQ_INT(chmod(temp_dir, 0755), 0);
	atexit(cleanup);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_fatal_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

const char *children_temp_dir(void)
{
	return temp_dir;
}

void children_at_exit(void (*hook)(bool passed))
{
	exit_hook = hook;
}

bool children_case_selected(const char *variable, const char *name)
{
	const char *list = getenv(variable);
	size_t len = strlen(name);

	if (!list || !*list)
		return true;
	for (const char *p = strstr(list, name); p; p = strstr(p + 1, name))
		if ((p == list || p[-1] == ',') && (p[len] == '\0' || p[len] == ','))
			return true;
	return false;
}

void children_run_cases(const char *prefix, const char *variable, const char *what,
			const struct children_case *cases, size_t n)
{
	double started = children_now();

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!getenv("PASSPORT_TEST_PGHOST") || !*getenv("PASSPORT_TEST_PGHOST")) {
		fprintf(stderr, "SKIP: PASSPORT_TEST_PGHOST is not set (run ./scripts/test)\n");
		exit(77);
	}
	children_init(prefix);
	for (size_t i = 0; i < n; i++) {
		double case_started = children_now();

		if (!children_case_selected(variable, cases[i].name))
			continue;
		printf("== %s\n", cases[i].name);
		children_case_begin();
		cases[i].run();
		printf("== %s: ok (%.1f s)\n", cases[i].name, children_now() - case_started);
	}
	printf("all %s cases passed in %.1f s\n", what, children_now() - started);
	children_passed();
}

void children_case_begin(void)
{
	case_first_child = n_children;
}

void children_passed(void)
{
	all_passed = true;
}

struct child *child_start(const char *label, const char *const argv[], const char *const env[])
{
	struct child *c;
	pid_t parent = getpid();

	if (n_children >= MAX_CHILDREN)
		FAIL("too many children");
	c = &children[n_children++];
	memset(c, 0, sizeof(*c));
	snprintf(c->label, sizeof c->label, "%s", label);
	snprintf(c->log_path, sizeof c->log_path, "%s/%02d-%s.log", temp_dir, n_children, label);
	fflush(stdout);
	fflush(stderr);
	c->pid = fork();
	if (c->pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (c->pid == 0) {
		int fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int null = open("/dev/null", O_RDONLY);

		if (fd < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
		    dup2(fd, STDERR_FILENO) < 0)
			_exit(127);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		unsetenv("NOTIFY_SOCKET");
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		unsetenv("JOURNAL_STREAM");
		unsetenv("LISTEN_FDS");
		unsetenv("PASSPORT_DATABASE_URL");
		for (size_t i = 0; env && env[i]; i++) {
			char name[128], pid_text[32];
			const char *equals = strchr(env[i], '='), *value;

			if (!equals || (size_t)(equals - env[i]) >= sizeof name)
				_exit(127);
			memcpy(name, env[i], (size_t)(equals - env[i]));
			name[equals - env[i]] = '\0';
			value = equals + 1;
			if (strcmp(value, "@self") == 0) {
				snprintf(pid_text, sizeof pid_text, "%ld", (long)getpid());
				value = pid_text;
			}
			if (setenv(name, value, 1) != 0)
				_exit(127);
		}
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot execute %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return c;
}

struct child *daemon_start(const char *label, const char *const args[], const char *const env[])
{
	const char *argv[MAX_ARGS];
	const char *shared_host = getenv("PASSPORT_TEST_PGHOST");
	char role_dsn[2048];
	int argc = 0;

	argv[argc++] = harness_passportd();
	for (int i = 0; args[i]; i++) {
		ASSERT_LT_INT(argc, MAX_ARGS - 1);
		argv[argc++] = args[i];
		if (strcmp(args[i], "--dsn") == 0 && args[i + 1] && shared_host && *shared_host &&
		    strstr(args[i + 1], shared_host)) {
			harness_role_dsn(args[i + 1], "passportd", role_dsn, sizeof role_dsn);
			ASSERT_LT_INT(argc, MAX_ARGS - 1);
			argv[argc++] = role_dsn;
			i++;
		}
	}
	argv[argc] = NULL;
	return child_start(label, argv, env);
}

bool child_wait(struct child *c, double timeout)
{
	double deadline = children_now() + timeout;

	while (!c->reaped) {
		int wstatus;
		pid_t got = waitpid(c->pid, &wstatus, WNOHANG);

		if (got < 0 && errno != EINTR)
			FAIL("waitpid(%s): %s", c->label, strerror(errno));
		if (got == c->pid) {
			c->reaped = true;
			c->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
			break;
		}
		if (children_now() >= deadline)
			return false;
		children_sleep(0.01);
	}
	return true;
}

bool child_alive(struct child *c)
{
	return !child_wait(c, 0);
}

char *child_log(const struct child *c)
{
	return children_read_file(c->log_path);
}

void child_check_sanitizers(const struct child *c)
{
	char *log = child_log(c);

	if (strstr(log, "AddressSanitizer") || strstr(log, "LeakSanitizer") || strstr(log, "runtime error:"))
		FAIL("sanitizer report in the log of %s", c->label);
	free(log);
}

int child_stop(struct child *c, int sig, double timeout)
{
	if (!c->reaped && kill(c->pid, sig) != 0)
		FAIL("kill(%s): %s", c->label, strerror(errno));
	if (!child_wait(c, timeout))
		FAIL("%s did not exit within %.1f s of signal %d", c->label, timeout, sig);
	child_check_sanitizers(c);
	return c->status;
}

void daemon_stop_ok(struct child *c)
{
	int status;

	if (c->reaped)
		FAIL("%s exited early with status %d", c->label, c->status);
	status = child_stop(c, SIGTERM, 10);
	if (status != 0)
		FAIL("%s exited with status %d after SIGTERM, expected 0", c->label, status);
}

bool child_wait_log(struct child *c, const char *needle, int count, double timeout)
{
	double deadline = children_now() + timeout;

	for (;;) {
		char *log = child_log(c);
		int found = 0;

		for (const char *p = strstr(log, needle); p; p = strstr(p + 1, needle))
			found++;
		free(log);
		if (found >= count)
			return true;
		if (!child_alive(c))
			FAIL("%s exited (status %d) while waiting for \"%s\" in its log", c->label, c->status, needle);
		if (children_now() >= deadline)
			return false;
		children_sleep(0.02);
	}
}

void require_log(struct child *c, const char *needle, int count, double timeout)
{
	if (!child_wait_log(c, needle, count, timeout))
		FAIL("\"%s\" did not appear %d time(s) in the log of %s within %.1f s", needle, count, c->label,
		     timeout);
}
