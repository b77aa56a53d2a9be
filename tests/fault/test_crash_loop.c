/*
 * test_crash_loop: three `passportd run` daemons drain a workload while a driver SIGKILLs a
 * random one every 0.3 to 1.0 seconds and starts it again with another batch size. The end state
 * must equal a clean single-process drain of the same entries (SPEC 3 and 5): every entry
 * processed exactly once, one dna_evolution row per applied entry, every embedding bit for bit.
 *
 * Default: 20,000 entries (400 users x 50) and 200 money entries linking ledger rows: with small
 * batches the loop lasts several seconds, so at least 2 kills (checked) land mid-drain.
 * PASSPORT_FAULT_HEAVY=1: 50,000 entries (500 users x 100) and 1,000 money entries.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"

#define DAEMONS 3
#define STALL_SECONDS 90.0
/* Between two kills; short enough that a fast drain still sees several (kills >= 2 is checked). */
#define KILL_MIN_SECONDS 0.3
#define KILL_MAX_SECONDS 1.0

struct daemon {
	pid_t pid;
	int batch_size;
	int starts;
	char log[600];
};

/* Small batches in the default run make the drain last long enough for several kills. */
static const int default_batch_sizes[] = {1, 2, 5, 10, 20};
static const int heavy_batch_sizes[] = {5, 20, 50, 100, 500};

/* Ledger rows and the money entries that link them (the treasury system). */
static const char *const money_sql =
	"INSERT INTO ledger_entries (correlation_id, amount_cents)"
	" SELECT 'crash-correlation-' || i, 100 + i FROM generate_series(1, %d) AS i;"
	"INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, \"timestamp\")"
	" SELECT passport_test_uuid('crash-money-' || i), passport_test_uuid('user-' || (1 + i %% %d)),"
	"  'treasury.transaction_created', 'transaction',"
	"  jsonb_build_object('amount_cents', 100 + i, 'correlation_id', 'crash-correlation-' || i),"
	"  timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i * 3600.0)"
	" FROM generate_series(1, %d) AS i";

static const int *batch_sizes;
static int n_batch_sizes;

static void start_daemon(struct daemon *d, int index, const char *dsn)
{
	char size[16];

	d->batch_size = batch_sizes[fault_random_index(n_batch_sizes)];
	snprintf(size, sizeof size, "%d", d->batch_size);
	snprintf(d->log, sizeof d->log, "%s/daemon-%d.log", fault_temp_dir(), index);
	{
		const char *argv[] = {harness_passportd(), "run", "--dsn", dsn, "--batch-size", size,
				      "--log-format", "plain", NULL};
		d->pid = fault_spawn(argv, NULL, d->log);
	}
	d->starts++;
}

int main(void)
{
	bool heavy;
	int users, per_user, money;
	long long total;
	char dsn[FAULT_DSN_MAX], daemon_dsn[FAULT_DSN_MAX], ref_dsn[FAULT_DSN_MAX], ref_daemon_dsn[FAULT_DSN_MAX];
	PGconn *conn, *ref;
	struct daemon daemons[DAEMONS];
	double started, next_kill, last_progress, reference_seconds, loop_seconds;
	long long remaining, last_remaining = -1;
	int kills = 0;

	fault_begin("crash_loop");
	heavy = fault_heavy();
	fault_seed();
	users = heavy ? 500 : 400;
	per_user = heavy ? 100 : 50;
	money = heavy ? 1000 : 200;
	batch_sizes = heavy ? heavy_batch_sizes : default_batch_sizes;
	n_batch_sizes = heavy ? (int)(sizeof heavy_batch_sizes / sizeof heavy_batch_sizes[0])
			      : (int)(sizeof default_batch_sizes / sizeof default_batch_sizes[0]);
	printf("crash loop: %d users x %d entries, %d daemons, SIGKILL every 0.3-1.0 s%s\n", users, per_user, DAEMONS,
	       heavy ? " (heavy)" : "");

	conn = fault_create_database("fault_crash", dsn, daemon_dsn);
	ref = fault_create_database("fault_crash_ref", ref_dsn, ref_daemon_dsn);
	total = harness_intf(conn, "SELECT passport_test_workload(%d, %d)", users, per_user);
	ASSERT_EQ_INT(harness_intf(ref, "SELECT passport_test_workload(%d, %d)", users, per_user), total);
	ASSERT_EQ_INT(total, (long long)users * per_user);
	/* Money entries with ledger rows to link (treasury), in both databases alike. */
	harness_execf(conn, money_sql, money, users, money);
	harness_execf(ref, money_sql, money, users, money);
	total += money;

	/* The reference: one clean drain in one process, default batch size. */
	started = fault_now();
	ASSERT_EQ_INT(fault_drain(ref_daemon_dsn, NULL), total);
	reference_seconds = fault_now() - started;
	ASSERT_EQ_INT(fault_unsettled(ref), 0);
	ASSERT_EQ_INT(harness_query_int(ref, "SELECT count(*) FROM passport_entries WHERE NOT processed"), 0);

	/* The crash loop. */
	started = fault_now();
	for (int i = 0; i < DAEMONS; i++) {
		memset(&daemons[i], 0, sizeof daemons[i]);
		start_daemon(&daemons[i], i, daemon_dsn);
	}
	next_kill = started + fault_random(KILL_MIN_SECONDS, KILL_MAX_SECONDS);
	last_progress = started;
	for (;;) {
		double now;

		remaining = fault_unsettled(conn);
		now = fault_now();
		if (remaining == 0)
			break;
		if (remaining != last_remaining) {
			last_remaining = remaining;
			last_progress = now;
		} else if (now - last_progress > STALL_SECONDS) {
			FAIL("no progress for %.0f s: %lld entries still unsettled", STALL_SECONDS, remaining);
		}
		for (int i = 0; i < DAEMONS; i++) {
			int status;
			if (fault_reap(daemons[i].pid, &status))
				FAIL("daemon %d (pid %d) exited by itself with status %d", i, (int)daemons[i].pid,
				     status);
		}
		if (now >= next_kill) {
			int victim = fault_random_index(DAEMONS);
			pid_t old = daemons[victim].pid;
			int old_size = daemons[victim].batch_size;

			fault_kill_and_reap(old);
			kills++;
			start_daemon(&daemons[victim], victim, daemon_dsn);
			printf("t=%5.1f s: SIGKILL daemon %d (pid %d, batch size %d) with %lld entries unsettled;"
			       " restarted as pid %d with batch size %d\n",
			       now - started, victim, (int)old, old_size, remaining, (int)daemons[victim].pid,
			       daemons[victim].batch_size);
			next_kill = fault_now() + fault_random(KILL_MIN_SECONDS, KILL_MAX_SECONDS);
		}
		fault_sleep(0.1);
	}
	loop_seconds = fault_now() - started;
	printf("drained %lld entries in %.1f s under %d kills (a clean drain took %.1f s)\n", total, loop_seconds, kills,
	       reference_seconds);
	if (kills < 2)
		FAIL("only %d kill(s) happened before the drain ended: the case proves too little", kills);

	/* Idle daemons must not spin. */
	fault_sleep(1.0);
	{
		double before[DAEMONS], used;
		for (int i = 0; i < DAEMONS; i++)
			before[i] = fault_cpu_seconds(daemons[i].pid);
		fault_sleep(3.0);
		for (int i = 0; i < DAEMONS; i++) {
			used = fault_cpu_seconds(daemons[i].pid) - before[i];
			printf("daemon %d idle for 3 s used %.2f s of CPU\n", i, used);
			if (used > 0.3)
				FAIL("daemon %d used %.2f s of CPU in 3 idle seconds (busy loop?)", i, used);
		}
	}
	for (int i = 0; i < DAEMONS; i++) {
		int status;
		kill(daemons[i].pid, SIGTERM);
		status = fault_wait(daemons[i].pid, 15.0);
		if (status != 0)
			FAIL("daemon %d did not exit 0 within 15 s of SIGTERM (status %d)", i, status);
		fault_expect_clean_log(daemons[i].log);
	}

	/* Exactly once, bit for bit. */
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed"), total);
	fault_expect_same_state(conn, ref, "crash loop vs clean drain");
	printf("dna_evolution rows: %lld, coliseum rows: %lld, DNA rows changed: %lld\n",
	       harness_query_int(conn, "SELECT count(*) FROM dna_evolution"),
	       harness_query_int(conn, "SELECT count(*) FROM coliseum_metrics"),
	       harness_query_int(conn, "SELECT count(*) FROM media_ids WHERE version > 1"));
	ASSERT_GT_INT(harness_query_int(conn, "SELECT count(*) FROM dna_evolution"), total / 2);
	ASSERT_EQ_INT(harness_query_int(conn, "SELECT count(*) FROM ledger_entries WHERE passport_entry_id IS NOT NULL"),
		      money);

	/* A second drain finds nothing: nothing is applied twice. */
	ASSERT_EQ_INT(fault_drain(daemon_dsn, NULL), 0);
	fault_expect_same_state(conn, ref, "after a second drain");

	PQfinish(conn);
	PQfinish(ref);
	fault_passed();
	TEST_PASS();
}
