/*
 * children: the programs an integration test starts (passportd above all), each a child process
 * whose stdout and stderr go to a log file in the test's temporary directory. The logs of the
 * running case are printed when the test fails, and every child is killed when the test exits,
 * however it exits (an atexit handler, a SIGTERM handler, and PR_SET_PDEATHSIG in the child).
 */
#ifndef PASSPORT_TEST_CHILDREN_H
#define PASSPORT_TEST_CHILDREN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct child {
	char label[64];
	char log_path[512];
	pid_t pid;
	bool reaped;
	int status; /* exit status once reaped; 128 + signal when killed */
};

/*
 * Make the temporary directory /tmp/<prefix>-XXXXXX (mode 0755: a server the test starts as an
 * unprivileged user may use it) and install the exit and signal handlers. Call once, first. The
 * directory is removed at exit after children_passed(), else kept (or always with
 * PASSPORT_TEST_KEEP=1).
 */
void children_init(const char *prefix);

/* The temporary directory of children_init. */
const char *children_temp_dir(void);

/*
 * Call hook at exit, after the children are killed and their logs printed, before the temporary
 * directory goes: for what the test started itself (a server of its own). passed says whether
 * children_passed() was called.
 */
void children_at_exit(void (*hook)(bool passed));

/* One case of a test program: its name (for the selection variable) and its body. */
struct children_case {
	const char *name;
	void (*run)(void);
};

/*
 * The body of a test program's main: skip (exit 77) without PASSPORT_TEST_PGHOST, children_init
 * with prefix, then each case children_case_selected by variable, in order, each timed and
 * announced, then children_passed. what names the program in its last line.
 */
void children_run_cases(const char *prefix, const char *variable, const char *what,
			const struct children_case *cases, size_t n);

/*
 * Whether the case named name is to run: the environment variable (e.g. PASSPORT_WAKEUP_CASES)
 * is unset or empty, or holds name in its comma-separated list.
 */
bool children_case_selected(const char *variable, const char *name);

/* The whole file as a string, malloc'd ("" when it cannot be read); /proc files too. */
char *children_read_file(const char *path);

/* Print the file (its last max_bytes) to stderr between two lines naming it. */
void children_print_file(const char *title, const char *path, size_t max_bytes);

/* From now on, only the children started after this call have their logs printed on failure. */
void children_case_begin(void);

/* The test passed: logs need not be printed and the temporary directory may go. */
void children_passed(void);

/* A monotonic clock in seconds, and a sleep that resumes after signals. */
double children_now(void);
void children_sleep(double seconds);

/*
 * Start argv (argv[0] is a path, NULL-terminated) with its output in <temp>/<n>-<label>.log. env
 * holds NAME=VALUE assignments (NULL-terminated, may be NULL); a value "@self" becomes the
 * child's own pid (WATCHDOG_PID=@self is what systemd would pass). The systemd variables and
 * PASSPORT_DATABASE_URL of the test's own environment are never inherited. The child is owned by
 * this module: never free it.
 */
struct child *child_start(const char *label, const char *const argv[], const char *const env[]);

/*
 * Start passportd with these arguments (NULL-terminated, after the program name). On the shared
 * test server, a --dsn argument is rewritten to log in as the least-privilege role passportd.
 */
struct child *daemon_start(const char *label, const char *const args[], const char *const env[]);

/* Whether the child has exited (reaping it); waits up to timeout seconds for that. */
bool child_wait(struct child *c, double timeout);
bool child_alive(struct child *c);

/* The child's log so far (malloc'd; "" when there is none). */
char *child_log(const struct child *c);

/* Fail on a sanitizer report in the child's log (the suite also runs under ASan and UBSan). */
void child_check_sanitizers(const struct child *c);

/*
 * Send sig, wait up to timeout seconds for the child to exit (failing the test if it does not),
 * fail on a sanitizer report in its log, and return its exit status.
 */
int child_stop(struct child *c, int sig, double timeout);

/* SIGTERM a passportd that must still be running, and require exit status 0 within 10 s. */
void daemon_stop_ok(struct child *c);

/*
 * Whether the log of c holds needle at least count times within timeout seconds; fails the test
 * if c exits meanwhile. require_log fails the test when it does not.
 */
bool child_wait_log(struct child *c, const char *needle, int count, double timeout);
void require_log(struct child *c, const char *needle, int count, double timeout);

#endif
