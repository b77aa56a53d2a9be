/*
 * fault: helpers shared by the fault tests: sizes, SQL shorthands, daemons run as child
 * processes, private PostgreSQL servers the test may stop and restart, CPU use, and the
 * comparison of a database's final state with a reference drained cleanly.
 */
#ifndef PASSPORT_FAULT_H
#define PASSPORT_FAULT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "integration/harness.h"

#define FAULT_DSN_MAX 2048

/*
 * A condition on pg_stat_activity: the session (a 'passportd listener') has subscribed. Its last
 * query is then its LISTEN (sent together with its session settings), or one of the wake-up gate
 * queries (sql/030_wakeup_gate.sql, class LOCK_CLASS_WAKE of lib/claim.h), which the listener
 * sends only once its LISTEN took effect.
 */
#define FAULT_LISTENER_SUBSCRIBED                                                                   \
	"(query LIKE '%LISTEN passport_entries%' OR query LIKE '%pg_advisory_%lock(1347895627, 0)%')"

/* True when PASSPORT_FAULT_HEAVY=1 asks for the full sizes (slower). */
bool fault_heavy(void);

/*
 * Seed the random generator from PASSPORT_FAULT_SEED or the clock and print the seed, so that a
 * failing run can be repeated. Returns the seed.
 */
unsigned fault_seed(void);

/* A uniform random number in [low, high), and an integer in [0, n). */
double fault_random(double low, double high);
int fault_random_index(int n);

/* Monotonic seconds, and a sleep that resumes after signals. */
double fault_now(void);
void fault_sleep(double seconds);

/*
 * Line-buffered output and the exit hook: children killed, servers stopped, and the daemon and
 * server logs printed on failure (always with PASSPORT_FAULT_LOGS=1).
 */
void fault_begin(const char *test_name);
/* Mark the test as passed: the exit hook then prints no logs. */
void fault_passed(void);

/* A private directory for this test's logs and files, removed by the exit hook. */
const char *fault_temp_dir(void);

/* ---- SQL (formatted queries: harness_execf, harness_intf, harness_textf) ------------------ */

/* Run a query and return its result whatever the outcome (the caller checks and PQclear-s). */
PGresult *fault_try(PGconn *conn, const char *sql);

/* A file of the source tree (relative to PASSPORT_SOURCE_ROOT), malloc'd. */
char *fault_read_source(const char *relative);
/* A whole file, malloc'd, NUL-terminated (NULL when it cannot be read). */
char *fault_read_file(const char *path, size_t *length);

/* dsn with keyword='value' appended (a later keyword overrides an earlier one in libpq). */
void fault_dsn_with(char *out, size_t outlen, const char *dsn, const char *keyword, const char *value);

/* Poll a boolean query until it is true; false when timeout_seconds pass first. */
bool fault_wait_for(PGconn *conn, double timeout_seconds, const char *sql);

/* ---- child processes ------------------------------------------------------------------ */

/*
 * Start argv (argv[0] a path) with extra NAME=VALUE assignments env (may be NULL), stdout and
 * stderr appended to log_path. The child is killed by the exit hook if the test fails, and its
 * log printed.
 */
pid_t fault_spawn(const char *const argv[], const char *const env[], const char *log_path);

/*
 * Non-blocking: true when the child has exited, with its status in *status (the exit code, or
 * 128 + signal). A reaped child is forgotten by the exit hook.
 */
bool fault_reap(pid_t pid, int *status);

/* Wait up to timeout_seconds for the child; its status, or -1 on timeout (it keeps running). */
int fault_wait(pid_t pid, double timeout_seconds);

/* SIGKILL the child and reap it. */
void fault_kill_and_reap(pid_t pid);

/* User plus system CPU seconds of a running process (all its threads), from /proc/<pid>/stat. */
double fault_cpu_seconds(pid_t pid);

/* The NUL-separated /proc/<pid>/cmdline of a running process, spaces between the arguments. */
char *fault_cmdline(pid_t pid);

/* Print the last lines of a file to stderr, framed with its name. */
void fault_print_tail(const char *path, int lines);

/* Fail when a daemon log shows a sanitizer report or a crash. */
void fault_expect_clean_log(const char *path);

/* ---- private servers ------------------------------------------------------------------ */

struct fault_server {
	char dir[256];   /* the data directory is dir/data, the socket directory dir/socket */
	char host[300];  /* the socket directory */
	char port[16];
	bool running;
};

/*
 * initdb and start a private server with scripts/lib/pg.sh (as the unprivileged server user when
 * run as root). hba_first, when not NULL, is put at the top of pg_hba.conf before the start.
 * Exits 77 (skipped) when PASSPORT_TEST_PGHOST is unset, like the integration tests. server must
 * have static storage: the exit hook stops and removes the servers after main has returned.
 */
void fault_server_start(struct fault_server *server, const char *hba_first);
/* pg_ctl stop with mode "fast" or "immediate". */
void fault_server_stop(struct fault_server *server, const char *mode);
/* Start a stopped server again on the same socket and port. */
void fault_server_restart_stopped(struct fault_server *server);
/* Make harness_create_database use this server (PASSPORT_TEST_PGHOST/PORT). */
void fault_server_use(const struct fault_server *server);

/* ---- databases and comparisons -------------------------------------------------------- */

/*
 * harness_create_database plus tests/sql/workload.sql, and LOGIN for the passportd role (roles
 * are cluster-wide; the tests run the daemon as that role, never as a superuser). The daemon's
 * connection string (user passportd) goes to daemon_dsn when not NULL.
 */
PGconn *fault_create_database(const char *name, char *dsn, char *daemon_dsn);

/* Run `passportd drain --dsn dsn [extra args]`; it must exit 0. Returns the entries it processed. */
long fault_drain(const char *dsn, const char *const extra[]);

/*
 * Fail unless the two databases end in the same state: every entry's outcome (processed, dead,
 * attempts, last_error), every media_ids embedding and clock bit for bit (version aside: it
 * counts batches), every dna_evolution row (applied_at aside) and every coliseum_metrics row
 * (id and created_at aside). what names the comparison in messages.
 */
void fault_expect_same_state(PGconn *got, PGconn *reference, const char *what);

/*
 * Compare one table of two databases: sql returns (key, value) rows ordered by key. Fails with
 * the first difference and the number of differences; prints the row count when equal.
 */
void fault_compare_keyed(const char *what, const char *table, PGconn *got, PGconn *reference, const char *sql);

/* Fail unless no entry has two dna_evolution rows or two coliseum_metrics rows. */
void fault_expect_no_duplicates(PGconn *conn);

/* Entries not yet settled: neither processed nor dead. */
long long fault_unsettled(PGconn *conn);

#endif
