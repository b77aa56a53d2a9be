/*
 * test_server_faults: the server misbehaves under two `passportd run` daemons that are never
 * restarted (SPEC 5: reconnect with capped backoff, no busy loop, no exit). On a private server
 * of its own, in turn:
 *   A. PostgreSQL restarted with a fast shutdown mid-drain (twice);
 *   B. the same with an immediate shutdown (crash recovery; commits not yet flushed may be lost);
 *   C. every daemon connection killed with pg_terminate_backend, over and over, mid-drain;
 *   D. the server unreachable (stopped) for 10 s, 30 s with PASSPORT_FAULT_HEAVY=1: CPU use of
 *      the daemons must stay low meanwhile;
 *   E. an idle-in-transaction REPEATABLE READ session holding a snapshot older than every entry
 *      while the daemons work;
 *   F. another session holding a row lock on one user's oldest due entry for a while.
 * Each phase drains its own database and must end exactly like a reference drained cleanly;
 * then a second wave of entries must be processed at once (the poll interval is 60 s, so only a
 * re-established LISTEN can wake the daemons).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"

#define DAEMONS 2
#define SECOND_WAVE 200

static struct fault_server server;
static int users, per_user, batch_size;

struct phase {
	const char *name;
	PGconn *conn, *ref;
	char dsn[FAULT_DSN_MAX], daemon_dsn[FAULT_DSN_MAX], ref_dsn[FAULT_DSN_MAX], ref_daemon_dsn[FAULT_DSN_MAX];
	pid_t daemons[DAEMONS];
	char logs[DAEMONS][600];
	long long total;
	double started;
};

static void load_workload(PGconn *conn, long long *count)
{
	*count = harness_intf(conn, "SELECT passport_test_workload(%d, %d)", users, per_user);
	ASSERT_EQ_INT(*count, (long long)users * per_user);
}

/* Both databases; the reference gets the workload and a clean drain; the tested one too unless deferred. */
static void phase_open(struct phase *ph, const char *name, bool load_now)
{
	char db[64];
	long long ref_total;

	memset(ph, 0, sizeof(*ph));
	ph->name = name;
	printf("\n=== phase %s\n", name);
	snprintf(db, sizeof db, "fault_srv_%c", name[0]);
	ph->conn = fault_create_database(db, ph->dsn, ph->daemon_dsn);
	snprintf(db, sizeof db, "fault_srv_%c_ref", name[0]);
	ph->ref = fault_create_database(db, ph->ref_dsn, ph->ref_daemon_dsn);
	load_workload(ph->ref, &ref_total);
	ASSERT_EQ_INT(fault_drain(ph->ref_daemon_dsn, NULL), ref_total);
	if (load_now)
		load_workload(ph->conn, &ph->total);
	else
		ph->total = ref_total;
}

static void phase_start_daemons(struct phase *ph)
{
	char size[16];

	snprintf(size, sizeof size, "%d", batch_size);
	for (int i = 0; i < DAEMONS; i++) {
		const char *argv[] = {harness_passportd(), "run", "--dsn", ph->daemon_dsn, "--batch-size", size,
				      "--poll-interval", "60", "--log-format", "plain", NULL};
		snprintf(ph->logs[i], sizeof ph->logs[i], "%s/%c-daemon-%d.log", fault_temp_dir(), ph->name[0], i);
		ph->daemons[i] = fault_spawn(argv, NULL, ph->logs[i]);
	}
	ph->started = fault_now();
}

static void phase_expect_alive(const struct phase *ph)
{
	for (int i = 0; i < DAEMONS; i++) {
		int status;
		if (fault_reap(ph->daemons[i], &status))
			FAIL("phase %s: daemon %d exited by itself with status %d", ph->name, i, status);
	}
}

static long long processed(PGconn *conn)
{
	return harness_query_int(conn, "SELECT count(*) FROM passport_entries WHERE processed");
}

/* Wait until at least `fraction` of the entries are processed; fails if all already are. */
static void wait_for_progress(struct phase *ph, double fraction)
{
	double deadline = fault_now() + 120;
	long long done;

	while ((done = processed(ph->conn)) < (long long)(fraction * (double)ph->total)) {
		phase_expect_alive(ph);
		if (fault_now() > deadline)
			FAIL("phase %s: only %lld of %lld processed after 120 s", ph->name, done, ph->total);
		fault_sleep(0.02);
	}
	if (done >= ph->total)
		FAIL("phase %s: the drain finished before the fault (make the workload larger)", ph->name);
	printf("t=%5.1f s: %lld of %lld processed\n", fault_now() - ph->started, done, ph->total);
}

static void reconnect(PGconn *conn)
{
	PQreset(conn);
	if (PQstatus(conn) != CONNECTION_OK)
		FAIL("cannot reconnect: %s", PQerrorMessage(conn));
}

/* Wait until no entry is unsettled; the daemons must stay up. Returns the seconds it took. */
static double wait_settled(struct phase *ph, double timeout)
{
	double start = fault_now();

	for (;;) {
		long long left = fault_unsettled(ph->conn);
		phase_expect_alive(ph);
		if (left == 0)
			break;
		if (fault_now() - start > timeout)
			FAIL("phase %s: %lld entries unsettled after %.0f s", ph->name, left, timeout);
		fault_sleep(0.1);
	}
	return fault_now() - start;
}

static const char *const second_wave_sql =
	"INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, affects_systems, source,"
	" \"timestamp\")"
	" SELECT passport_test_uuid('second-' || i), passport_test_uuid('user-' || (1 + i %% %d)),"
	"  (ARRAY['player.track_played', 'player.track_completed', 'social.content_liked',"
	"         'concierto.event_attended'])[1 + i %% 4], 'second',"
	"  CASE i %% 4 WHEN 0 THEN jsonb_build_object('trackId', passport_test_uuid('track-' || (1 + i %% 8))::text)"
	"   WHEN 1 THEN jsonb_build_object('track_id', passport_test_uuid('track-' || (1 + i %% 7))::text)"
	"   WHEN 2 THEN jsonb_build_object('artistId', passport_test_uuid('artist-' || (1 + i %% 4))::text)"
	"   ELSE jsonb_build_object('targetId', passport_test_uuid('event-' || (1 + i %% 10))::text, 'targetType', 'event')"
	"  END, '{}', 'web',"
	"  timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => ((i * 7919) %% 100) * 86400.0 + i)"
	" FROM generate_series(1, %d) AS i";

/*
 * Once every daemon listens again, insert a second wave: with a 60 s poll interval, only the
 * notification can get it processed within 15 s. The reference drains the same wave.
 */
static void phase_second_wave(struct phase *ph)
{
	char sql[400];
	double start;

	snprintf(sql, sizeof sql,
		 "SELECT count(*) = %d FROM pg_stat_activity WHERE datname = current_database()"
		 " AND application_name = 'passportd listener' AND %s",
		 DAEMONS, FAULT_LISTENER_SUBSCRIBED);
	if (!fault_wait_for(ph->conn, 90, sql))
		FAIL("phase %s: the daemons' listeners did not come back within 90 s", ph->name);
	harness_execf(ph->ref, second_wave_sql, users, SECOND_WAVE);
	ASSERT_EQ_INT(fault_drain(ph->ref_daemon_dsn, NULL), SECOND_WAVE);
	start = fault_now();
	harness_execf(ph->conn, second_wave_sql, users, SECOND_WAVE);
	if (!fault_wait_for(ph->conn, 15, "SELECT count(*) = 0 FROM passport_entries WHERE NOT processed AND dead_at IS NULL"))
		FAIL("phase %s: the second wave was not processed within 15 s of its NOTIFY", ph->name);
	printf("second wave of %d entries processed %.2f s after its insert\n", SECOND_WAVE, fault_now() - start);
}

/* Idle CPU, SIGTERM, logs, and the comparison with the reference. */
static void phase_close(struct phase *ph)
{
	double before[DAEMONS];

	phase_expect_alive(ph);
	fault_sleep(0.5);
	for (int i = 0; i < DAEMONS; i++)
		before[i] = fault_cpu_seconds(ph->daemons[i]);
	fault_sleep(3.0);
	for (int i = 0; i < DAEMONS; i++) {
		double used = fault_cpu_seconds(ph->daemons[i]) - before[i];
		if (used > 0.3)
			FAIL("phase %s: daemon %d used %.2f s of CPU in 3 idle seconds", ph->name, i, used);
	}
	for (int i = 0; i < DAEMONS; i++) {
		int status;
		kill(ph->daemons[i], SIGTERM);
		status = fault_wait(ph->daemons[i], 15.0);
		if (status != 0)
			FAIL("phase %s: daemon %d did not exit 0 within 15 s of SIGTERM (status %d)", ph->name, i,
			     status);
		fault_expect_clean_log(ph->logs[i]);
	}
	fault_expect_same_state(ph->conn, ph->ref, ph->name);
	PQfinish(ph->conn);
	PQfinish(ph->ref);
}

/* A and B: restart the server twice mid-drain with the given shutdown mode. */
static void phase_restart(const char *name, const char *mode)
{
	struct phase ph;

	phase_open(&ph, name, true);
	phase_start_daemons(&ph);
	for (int round = 0; round < 2; round++) {
		double down, settled;
		wait_for_progress(&ph, round == 0 ? 0.1 : 0.5);
		down = fault_now();
		fault_server_stop(&server, mode);
		fault_server_restart_stopped(&server);
		reconnect(ph.conn);
		reconnect(ph.ref);
		printf("t=%5.1f s: server restarted (%s shutdown) in %.1f s; %lld of %lld processed after recovery\n",
		       fault_now() - ph.started, mode, fault_now() - down, processed(ph.conn), ph.total);
		if (round == 1) {
			settled = wait_settled(&ph, 180);
			printf("all entries settled %.1f s after the restart\n", settled);
		}
	}
	phase_second_wave(&ph);
	phase_close(&ph);
}

/* C: kill the daemons' connections one at a time, over and over, until the drain is done. */
static void phase_terminate(void)
{
	struct phase ph;
	int workers = 0, listeners = 0;

	phase_open(&ph, "C terminate backends", true);
	phase_start_daemons(&ph);
	wait_for_progress(&ph, 0.05);
	/* Alternate between the two kinds of connection; go on until the drain is done and each kind died often. */
	for (int round = 0; fault_unsettled(ph.conn) > 0 || workers < 4 || listeners < 4; round++) {
		const char *kind = round % 2 ? "passportd listener" : "passportd worker";
		char *pid;
		phase_expect_alive(&ph);
		pid = harness_textf(ph.conn, "SELECT (SELECT pid::text FROM pg_stat_activity WHERE datname = current_database()"
					   " AND application_name = '%s' ORDER BY random() LIMIT 1)", kind);
		if (pid) {
			harness_execf(ph.conn, "SELECT pg_terminate_backend(%s)", pid);
			if (round % 2)
				listeners++;
			else
				workers++;
			free(pid);
		}
		if (fault_now() - ph.started > 300)
			FAIL("phase C: still unsettled after 300 s");
		fault_sleep(0.25);
	}
	printf("drained in %.1f s while %d worker and %d listener connections were terminated\n",
	       fault_now() - ph.started, workers, listeners);
	/* Every connection once more, then the second wave. */
	fault_sleep(1.0);
	harness_exec(ph.conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
			      " AND application_name IN ('passportd worker', 'passportd listener')");
	phase_second_wave(&ph);
	phase_close(&ph);
}

/* D: the server is gone for a while; the daemons wait without spinning and come back by themselves. */
static void phase_outage(int seconds)
{
	struct phase ph;
	double cpu_before[DAEMONS], down, back, recovered;
	long long done_before;
	char name[64];

	snprintf(name, sizeof name, "D outage of %d s", seconds);
	phase_open(&ph, name, true);
	phase_start_daemons(&ph);
	wait_for_progress(&ph, 0.1);
	fault_server_stop(&server, "fast");
	down = fault_now();
	for (int i = 0; i < DAEMONS; i++)
		cpu_before[i] = fault_cpu_seconds(ph.daemons[i]);
	/* Meanwhile the operator commands fail fast and say why. */
	{
		const char *argv[] = {harness_passportd(), "status", "--dsn", ph.daemon_dsn, NULL};
		double start = fault_now();
		char *output = NULL;
		ASSERT_EQ_INT(harness_run(argv, NULL, &output), 1);
		ASSERT_STR_CONTAINS(output, "cannot connect");
		ASSERT_TRUE(fault_now() - start < 15);
		free(output);
	}
	while (fault_now() - down < seconds) {
		phase_expect_alive(&ph);
		fault_sleep(0.2);
	}
	for (int i = 0; i < DAEMONS; i++) {
		double used = fault_cpu_seconds(ph.daemons[i]) - cpu_before[i];
		double limit = 0.3 + 0.02 * seconds;
		printf("daemon %d used %.2f s of CPU during the %d s outage (limit %.2f s)\n", i, used, seconds, limit);
		if (used > limit)
			FAIL("phase D: daemon %d used %.2f s of CPU while the server was down (busy loop)", i, used);
	}
	fault_server_restart_stopped(&server);
	back = fault_now();
	reconnect(ph.conn);
	reconnect(ph.ref);
	done_before = processed(ph.conn);
	while (processed(ph.conn) == done_before && fault_unsettled(ph.conn) > 0) {
		phase_expect_alive(&ph);
		if (fault_now() - back > 60)
			FAIL("phase D: no progress within 60 s of the server's return");
		fault_sleep(0.1);
	}
	recovered = fault_now() - back;
	printf("work resumed %.1f s after the server came back (backoff is capped at 30 s)\n", recovered);
	printf("all entries settled %.1f s later\n", wait_settled(&ph, 180));
	phase_second_wave(&ph);
	phase_close(&ph);
}

/* E: a REPEATABLE READ session idles in its transaction, its snapshot older than every entry. */
static void phase_old_snapshot(void)
{
	struct phase ph;
	PGconn *holder;
	char *state;

	phase_open(&ph, "E old snapshot", false);
	holder = harness_connect(ph.dsn);
	harness_exec(holder, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	ASSERT_EQ_INT(harness_query_int(holder, "SELECT count(*) FROM passport_entries"), 0);
	ASSERT_EQ_INT(harness_query_int(holder, "SELECT count(*) FROM media_ids"), 0);
	load_workload(ph.conn, &ph.total);
	phase_start_daemons(&ph);
	printf("drained under the old snapshot in %.1f s\n", wait_settled(&ph, 300));
	phase_second_wave(&ph);
	/* The holder is still there, idle in its transaction, and still sees nothing. */
	state = harness_query_text(ph.conn, "SELECT state || ' ' || (backend_xmin IS NOT NULL) FROM pg_stat_activity"
					    " WHERE pid <> pg_backend_pid() AND datname = current_database()"
					    " AND application_name NOT LIKE 'passportd%' AND state LIKE 'idle in%'");
	if (!state || strcmp(state, "idle in transaction true") != 0)
		FAIL("phase E: the snapshot holder is not idle in transaction with a snapshot (%s)",
		     state ? state : "gone");
	free(state);
	ASSERT_EQ_INT(harness_query_int(holder, "SELECT count(*) FROM passport_entries"), 0);
	harness_exec(holder, "COMMIT");
	PQfinish(holder);
	phase_close(&ph);
}

/*
 * F: another session holds a row lock on a user's oldest due entry for a while (an upstream
 * writer, an operator's SELECT ... FOR UPDATE). The user's later entries must wait for it
 * (SPEC 5: entries of one DNA row are applied in order), the other users go on, nothing spins,
 * and once the lock is released the end state equals the clean drain.
 */
static void phase_row_lock(void)
{
	struct phase ph;
	PGconn *holder;
	double cpu_before[DAEMONS];
	long long later_applied;

	phase_open(&ph, "F row lock on an entry", true);
	holder = harness_connect(ph.dsn);
	harness_exec(holder, "BEGIN");
	harness_exec(holder, "SELECT id FROM passport_entries WHERE user_id = passport_test_uuid('user-1')"
			     " ORDER BY \"timestamp\", id LIMIT 1 FOR UPDATE");
	phase_start_daemons(&ph);
	/* Everything of the other users settles while the lock is held. */
	if (!fault_wait_for(ph.conn, 120, "SELECT count(*) = 0 FROM passport_entries WHERE NOT processed AND dead_at IS NULL"
					  " AND user_id <> passport_test_uuid('user-1')"))
		FAIL("phase F: the other users' entries did not settle while one entry was locked");
	for (int i = 0; i < DAEMONS; i++)
		cpu_before[i] = fault_cpu_seconds(ph.daemons[i]);
	fault_sleep(3.0);
	for (int i = 0; i < DAEMONS; i++) {
		double used = fault_cpu_seconds(ph.daemons[i]) - cpu_before[i];
		printf("daemon %d used %.2f s of CPU in 3 s waiting for the locked entry\n", i, used);
		if (used > 0.5)
			FAIL("phase F: daemon %d used %.2f s of CPU in 3 s while an entry was locked", i, used);
	}
	later_applied = harness_query_int(ph.conn, "SELECT count(*) FROM passport_entries WHERE processed"
						   " AND user_id = passport_test_uuid('user-1')");
	harness_exec(holder, "COMMIT");
	PQfinish(holder);
	if (later_applied > 0)
		FAIL("phase F: %lld later entries of user-1 were applied while its oldest entry was locked by"
		     " another session: they are no longer applied in (timestamp, id) order",
		     later_applied);
	printf("all entries settled %.1f s after the lock was released\n", wait_settled(&ph, 120));
	phase_second_wave(&ph);
	phase_close(&ph);
}

int main(void)
{
	bool heavy;
	int outage;

	fault_begin("server_faults");
	heavy = fault_heavy();
	fault_seed();
	users = heavy ? 200 : 60;
	per_user = heavy ? 100 : 50;
	batch_size = heavy ? 50 : 10;
	outage = heavy ? 30 : 10;
	printf("server faults: %d entries per phase (%d users x %d), batches of %d, %d daemons, outage %d s%s\n",
	       users * per_user, users, per_user, batch_size, DAEMONS, outage, heavy ? " (heavy)" : "");
	fault_server_start(&server, NULL);
	fault_server_use(&server);

	phase_restart("A fast restart", "fast");
	phase_restart("B immediate restart", "immediate");
	phase_terminate();
	phase_outage(outage);
	phase_old_snapshot();
	phase_row_lock();
	fault_passed();
	TEST_PASS();
}
