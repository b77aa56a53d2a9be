/*
 * children: the programs an integration test starts (passportd above all), each a child process
 * whose stdout and stderr go to a log file in the test's temporary directory. The logs of the
 * running case are printed when the test fails, and every child is killed when the test exits,
 * however it exits (an atexit handler, a SIGTERM handler, and PR_SET_PDEATHSIG in the child).
 */
#ifndef PASSPORT_TEST_CHILDREN_H
#define PASSPORT_TEST_CHILDREN_H

#include <stdbool.h>
#include <sys/types.h>

struct child {
	char label[64];
	char log_path[512];
	pid_t pid;
	bool reaped;
	int status; /* exit status once reaped; 128 + signal when killed */
};

/*
 * Make the temporary directory /tmp/<prefix>-XXXXXX and install the exit and signal handlers.
 * Call once, first. The directory is removed at exit after children_passed(), else kept.
 */
void children_init(const char *prefix);

/* From now on, only the children started after this call have their logs printed on failure. */
void children_case_begin(void);

/* The test passed: logs need not be printed and the temporary directory may go. */
void children_passed(void);

/* A monotonic clock in seconds, and a sleep that resumes after signals. */
double children_now(void);
void children_sleep(double seconds);

/*
 * Start argv (argv[0] is a path, NULL-terminated) with its output in <temp>/<n>-<label>.log. env
 * holds NAME=VALUE assignments (NULL-terminated, may be NULL). The systemd variables and
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

/*
 * Send sig, wait up to timeout seconds for the child to exit (failing the test if it does not),
 * fail on a sanitizer report in its log, and return its exit status.
 */
int child_stop(struct child *c, int sig, double timeout);

/* SIGTERM a passportd that must still be running, and require exit status 0 within 10 s. */
void daemon_stop_ok(struct child *c);

/* Wait until the log of c holds needle at least count times; fails the test if c exits meanwhile. */
void require_log(struct child *c, const char *needle, int count, double timeout);

#endif
