/*
 * drain: `passportd drain`, process every due entry with one or more worker connections, print a
 * summary line, and exit.
 *
 * Each worker is a thread with its own connection and processor; the workers share one target
 * vector cache and take different users (the same advisory user locks that keep several daemons
 * apart). A worker stops when nothing is due, when the remaining due entries have been held by
 * other sessions for DRAIN_BUSY_LIMIT_SECONDS, on an error it cannot get past, or when a stop
 * signal was received. A lost connection is reopened a few times with growing pauses.
 *
 * Exit status: 0 when nothing due was left behind; 2 when the drain ran to its end but left due
 * entries behind (held by other sessions past the limit, or entries whose failure could not be
 * recorded), the summary saying which; 1 when it could not run or stopped on an error.
 */
#include "drain.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aside.h"
#include "batch.h"
#include "db.h"
#include "entity_cache.h"
#include "log.h"
#include "pause.h"

#define DRAIN_BUSY_LIMIT_SECONDS 10

/* Monotonic time in seconds, for the elapsed time and the busy limit. */
static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Pause this thread; a signal may end the pause early, which only shortens a wait. */
static void sleep_seconds(double seconds)
{
	struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
}

/* The longest wait for held entries before another look. */
#define DRAIN_BUSY_PAUSE_SECONDS 0.05

/* What drain's workers share. */
struct drain_shared {
	const struct config *config;
	volatile sig_atomic_t *stop_requested; /* set by the signal handler: stop between batches */
	struct entity_cache *entities; /* target vectors, one cache for all workers */
	struct aside *aside; /* entries set aside as unrecordable by any worker: left out by all, counted once */
	pthread_mutex_t mutex;
	int active; /* workers still running (under mutex) */
	/*
	 * Batches committed and workers stopped so far (under mutex), and the condition signalled at
	 * each: a worker that waits for entries held by another one looks again as soon as that one
	 * is done with them, not after a fixed pause.
	 */
	unsigned long progress;
	pthread_cond_t progressed;
};

/* One drain worker: its own connection, its own users (held with advisory locks). */
struct drain_worker {
	struct drain_shared *shared;
	pthread_t thread;
	PGconn *conn;
	struct processor *processor;
	struct batch_totals totals;
	bool failed;         /* stopped on an error it could not get past */
	bool held_elsewhere; /* stopped while other sessions held the remaining entries */
	bool counted_out;    /* left the busy wait to the others (no longer in shared->active) */
	long long left_due;  /* due entries when it stopped because of them */
};

/* Connect and inspect the schema, retrying a lost server a few times with growing pauses. */
static int drain_connect(struct drain_worker *w, int tries)
{
	const struct config *config = w->shared->config;
	struct db_error error;
	double pause = 0.5;

	for (int attempt = 1;; attempt++) {
		w->conn = db_connect(config->dsn, "passportd drain", &error);
		if (w->conn) {
			struct batch_config batch;
			config_to_batch(config, &batch);
			batch.shared_entities = w->shared->entities;
			batch.shared_aside = w->shared->aside;
			/* A paused system holds its entries back here too (postponed, not processed). */
			if (pause_read(w->conn, &batch.paused_systems, &error) < 0) {
				log_error("%s", error.message);
				PQfinish(w->conn);
				w->conn = NULL;
				return -1;
			}
			if (batch.paused_systems)
				log_notice("paused systems are held back: their entries stay unprocessed (passportd resume)");
			w->processor = processor_create(w->conn, &batch, &error);
			if (w->processor)
				return 0;
			PQfinish(w->conn);
			w->conn = NULL;
			log_error("%s", error.message);
			return -1; /* a schema problem does not go away by waiting */
		}
		if (attempt >= tries || *w->shared->stop_requested) {
			log_error("cannot connect to the database: %s", error.message);
			return -1;
		}
		log_warning("cannot connect to the database (%s); retrying in %.1f s", error.message, pause);
		sleep_seconds(pause);
		pause = pause * 2 > 8 ? 8 : pause * 2;
	}
}

static void drain_disconnect(struct drain_worker *w)
{
	processor_destroy(w->processor);
	PQfinish(w->conn);
	w->processor = NULL;
	w->conn = NULL;
}

/*
 * Stop without a word when other workers still run: they wait on, and the last one to give up
 * reports what is left. Deciding and counting out under one lock makes sure exactly one worker
 * is last, even when several give up at the same moment. Returns whether w left.
 */
static bool drain_leave_unless_last(struct drain_worker *w)
{
	bool leave;

	pthread_mutex_lock(&w->shared->mutex);
	leave = w->shared->active > 1;
	if (leave) {
		w->shared->active--;
		w->counted_out = true;
	}
	pthread_mutex_unlock(&w->shared->mutex);
	return leave;
}

/* What the workers have done so far (for drain_wait_for_progress). */
static unsigned long drain_progress(struct drain_shared *shared)
{
	unsigned long progress;

	pthread_mutex_lock(&shared->mutex);
	progress = shared->progress;
	pthread_mutex_unlock(&shared->mutex);
	return progress;
}

/* A batch committed or a worker stopped: wake the workers waiting for held entries. */
static void drain_progressed(struct drain_shared *shared)
{
	pthread_mutex_lock(&shared->mutex);
	shared->progress++;
	pthread_cond_broadcast(&shared->progressed);
	pthread_mutex_unlock(&shared->mutex);
}

/*
 * Wait until another worker has done something since `seen` (a batch committed, which may
 * release the users this one found held, or a worker stopped), for at most
 * DRAIN_BUSY_PAUSE_SECONDS: the entries may as well be held by another session, which signals
 * nothing. At the end of a drain the last users are often held by the other worker, whose
 * batch ends well before a fixed pause would.
 */
static void drain_wait_for_progress(struct drain_shared *shared, unsigned long seen)
{
	struct timespec until;
	long ns;

	clock_gettime(CLOCK_MONOTONIC, &until);
	ns = until.tv_nsec + (long)(DRAIN_BUSY_PAUSE_SECONDS * 1e9);
	until.tv_sec += ns / 1000000000L;
	until.tv_nsec = ns % 1000000000L;
	pthread_mutex_lock(&shared->mutex);
	while (shared->progress == seen) {
		if (pthread_cond_timedwait(&shared->progressed, &shared->mutex, &until) != 0)
			break; /* the pause is over */
	}
	pthread_mutex_unlock(&shared->mutex);
}

/* Batches until nothing is due (or a stop signal, or an error it cannot get past). */
static void *drain_work(void *arg)
{
	struct drain_worker *w = arg;
	struct db_error error;
	int status, reconnects = 0;
	double busy_since = 0;

	if (!w->conn && drain_connect(w, 3) < 0) {
		w->failed = true;
		goto done;
	}
	while (!*w->shared->stop_requested) {
		unsigned long seen = drain_progress(w->shared);

		status = processor_run_batch(w->processor, &w->totals, &error);
		if (status == BATCH_EMPTY) {
			/*
			 * Nothing this worker could claim. Entries may still be due whose users it set
			 * aside for a moment (their DNA row is locked by another session): wait for
			 * those like for held users, do not leave them behind silently. With no user set
			 * aside the walk saw every due entry, and there were none: no count. With some,
			 * only their entries are counted (claim_count_due).
			 */
			long long due = 0;
			if (!processor_sets_users_aside(w->processor))
				break;
			if (processor_count_due(w->processor, true, &due, &error) < 0) {
				status = BATCH_ERROR;
			} else if (due == 0) {
				break;
			} else {
				status = BATCH_BUSY;
			}
		}
		if (status == BATCH_BUSY) {
			/*
			 * Due entries are held by other sessions (other daemons, or this drain's other
			 * workers, finish them soon). Wait for them a while, but do not wait forever on a
			 * session that keeps a lock; while other workers of this drain still run, leave the
			 * rest to them.
			 */
			if (busy_since == 0)
				busy_since = now_seconds();
			if (now_seconds() - busy_since > DRAIN_BUSY_LIMIT_SECONDS) {
				if (drain_leave_unless_last(w))
					break;
				log_warning("stopping: the remaining due entries have been held by other sessions for %d s",
					    DRAIN_BUSY_LIMIT_SECONDS);
				w->held_elsewhere = true;
				if (processor_count_due(w->processor, false, &w->left_due, &error) < 0)
					w->left_due = -1;
				break;
			}
			drain_wait_for_progress(w->shared, seen);
			continue;
		}
		busy_since = 0;
		if (status == BATCH_ERROR) {
			if (!db_connection_lost(w->conn) || ++reconnects > 5) {
				log_error("batch failed: %s", error.message);
				w->failed = true;
				break;
			}
			log_warning("lost the database connection (%s); reconnecting", error.message);
			drain_disconnect(w);
			if (drain_connect(w, 10) < 0) {
				w->failed = true;
				break;
			}
			continue;
		}
		drain_progressed(w->shared);
		log_debug("batch done: %ld processed so far", w->totals.processed);
	}
done:
	drain_disconnect(w);
	pthread_mutex_lock(&w->shared->mutex);
	if (!w->counted_out)
		w->shared->active--;
	w->shared->progress++;
	pthread_cond_broadcast(&w->shared->progressed);
	pthread_mutex_unlock(&w->shared->mutex);
	return NULL;
}

int command_drain(const struct config *config, volatile sig_atomic_t *stop_requested)
{
	struct drain_shared shared = {.config = config, .stop_requested = stop_requested};
	struct drain_worker *workers;
	struct batch_totals totals = {0};
	double started = now_seconds(), elapsed;
	int n = config_workers(config), started_workers = 0;
	bool failed = false, held_elsewhere = false;
	long long left_due = 0;

	workers = calloc((size_t)n, sizeof(*workers));
	shared.entities = entity_cache_create(BATCH_ENTITY_CACHE_CAPACITY);
	shared.aside = aside_create();
	if (!workers || !shared.entities || !shared.aside) {
		log_error("out of memory");
		free(workers);
		entity_cache_destroy(shared.entities);
		aside_destroy(shared.aside);
		return 1;
	}
	pthread_mutex_init(&shared.mutex, NULL);
	{
		pthread_condattr_t attr;

		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* drain_wait_for_progress's clock */
		pthread_cond_init(&shared.progressed, &attr);
		pthread_condattr_destroy(&attr);
	}
	for (int i = 0; i < n; i++)
		workers[i].shared = &shared;
	/* The first connection in this thread: a server that cannot be reached is reported once. */
	if (drain_connect(&workers[0], 3) < 0) {
		free(workers);
		entity_cache_destroy(shared.entities);
		aside_destroy(shared.aside);
		pthread_mutex_destroy(&shared.mutex);
		pthread_cond_destroy(&shared.progressed);
		return 1;
	}
	log_info("draining with %d worker%s, batches of %d (%s columns)", n, n == 1 ? "" : "s", config->batch_size,
		 processor_vector_format(workers[0].processor) == VEC_FORMAT_PGVECTOR ? "vector" : "real[]");
	shared.active = n;
	for (int i = 0; i < n; i++) {
		int rc = pthread_create(&workers[i].thread, NULL, drain_work, &workers[i]);
		if (rc != 0) {
			log_error("cannot start drain worker %d: %s", i + 1, strerror(rc));
			pthread_mutex_lock(&shared.mutex);
			shared.active -= n - i;
			pthread_mutex_unlock(&shared.mutex);
			if (i == 0)
				drain_disconnect(&workers[0]);
			failed = true;
			break;
		}
		started_workers++;
	}
	for (int i = 0; i < started_workers; i++) {
		struct batch_totals *t = &workers[i].totals;
		pthread_join(workers[i].thread, NULL);
		failed |= workers[i].failed;
		held_elsewhere |= workers[i].held_elsewhere;
		if (workers[i].held_elsewhere && workers[i].left_due > left_due)
			left_due = workers[i].left_due;
		if (n > 1)
			log_info("drain worker %d: %ld batches, %ld entries%s", i + 1, t->batches, t->claimed,
				 workers[i].failed ? " (stopped by an error)" : "");
		batch_totals_add(&totals, t);
	}
	elapsed = now_seconds() - started;
	printf("drain: processed %ld, failed %ld (retrying %ld, dead %ld), DNA rows updated %ld, "
	       "batches %ld, postponed deliveries %ld, elapsed %.2f s, %.0f entries/s%s\n",
	       totals.processed, totals.retrying + totals.dead, totals.retrying, totals.dead, totals.dna_rows,
	       totals.batches, totals.skipped_systems, elapsed,
	       elapsed > 0 ? (double)totals.claimed / elapsed : 0.0,
	       *stop_requested ? " (stopped by signal)"
	       : failed       ? " (stopped by an error)"
	       : held_elsewhere ? " (some due entries are held by other sessions)"
			      : "");
	if (held_elsewhere && !*stop_requested)
		printf("drain: left %lld due entries behind: their users or DNA rows were held by other sessions"
		       " for more than %d s\n",
		       left_due, DRAIN_BUSY_LIMIT_SECONDS);
	if (totals.unrecordable > 0)
		printf("drain: left %ld entries behind whose failure could not be recorded (their rows refuse"
		       " every write; see the log)\n",
		       totals.unrecordable);
	fflush(stdout);
	free(workers);
	entity_cache_destroy(shared.entities);
	aside_destroy(shared.aside);
	pthread_mutex_destroy(&shared.mutex);
	pthread_cond_destroy(&shared.progressed);
	if (failed)
		return 1;
	return (held_elsewhere && !*stop_requested) || totals.unrecordable > 0 ? DRAIN_EXIT_LEFT_BEHIND : 0;
}
