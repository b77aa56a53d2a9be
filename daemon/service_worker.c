/*
 * service_worker: the worker side of `passportd run`, on libuv's thread pool: the connection,
 * the batches of one pass (each batch's transaction carries the statement timeout, set locally
 * so that it also holds behind a transaction pooler), and the reloaded settings
 * taken between two batches. Shares struct service with the loop (service_internal.h).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pause.h"
#include "service_internal.h"
#include "tables.h"

/*
 * Gathering under load. While entries arrive continuously, a pass runs batch after batch, each
 * taking what arrived during the one before: a batch every few milliseconds, and nearly every
 * entry in a batch of its own user's, so each DNA-routed entry rewrites its user's 6 KB vector
 * (about 7 KB of WAL with its TOAST chunks) and every batch pays its round trips and a commit.
 * So when a batch that was not full claimed at least GATHER_MIN_CLAIMED entries, arrived at
 * GATHER_MIN_RATE entries/s or more (counted since the previous batch started, in this pass or
 * the one before), the next batch starts no sooner than GATHER_PERIOD_MS after this one started:
 * entries of one user that arrive in that window share one DNA write (a batch writes each DNA row
 * once), and the fixed cost of a batch is shared by more entries. The DNA is the same bit for
 * bit: entries of a row are applied in (timestamp, id) order whichever batch holds them. Idle
 * (entries a few tens of milliseconds apart, P2) a batch claims one entry, or two that arrived
 * slowly, and nothing waits; a full batch (a backlog) never waits, nor does any batch while
 * catch-up helpers run. A batch that itself takes GATHER_PERIOD_MS or longer never waits either.
 */
#define GATHER_MIN_CLAIMED 2
#define GATHER_MIN_RATE 100.0 /* entries/s: the rate at which wakeup.h lingers rather than arms */
#define GATHER_PERIOD_MS 200.0
#define GATHER_SLICE_MS 10.0 /* the wait is cut short within this when the service stops */

static double clock_seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void worker_set_cancel(struct service *s, PGconn *conn)
{
	pthread_mutex_lock(&s->cancel_lock);
	PQfreeCancel(s->cancel);
	s->cancel = conn ? PQgetCancel(conn) : NULL;
	s->worker_socket = conn ? PQsocket(conn) : -1;
	pthread_mutex_unlock(&s->cancel_lock);
}

void worker_disconnect(struct service *s)
{
	worker_set_cancel(s, NULL);
	processor_destroy(s->processor);
	s->processor = NULL;
	PQfinish(s->worker);
	s->worker = NULL;
}

/*
 * Worker thread, between two batches: a reload since the last batch applies from the next one,
 * not after the whole pass (which in a backlog can be minutes).
 */
static void worker_take_reload(struct service *s)
{
	unsigned generation = atomic_load(&s->reload_generation);

	if (generation == s->worker_generation)
		return;
	pthread_mutex_lock(&s->reload_lock);
	s->batch_config = s->reload_batch_config;
	s->worker_generation = atomic_load(&s->reload_generation);
	pthread_mutex_unlock(&s->reload_lock);
	s->batch_config.paused_systems = s->paused_systems;
	processor_set_config(s->processor, &s->batch_config);
	log_info("worker: the reloaded settings apply from this batch (batch_size %d)", s->batch_config.batch_size);
}

/*
 * Worker thread: the pause state, read at the start of a pass and between batches at most once
 * per poll interval, so that `passportd pause` reaches this daemon within one poll interval.
 * Returns 0, or -1 with pass_status and pass_error set.
 */
static int worker_read_pause(struct service *s, bool force)
{
	double now = clock_seconds(CLOCK_MONOTONIC);
	unsigned paused;

	if (!force && now - s->paused_read_at < s->queue_read_interval)
		return 0;
	if (pause_read(s->worker, &paused, &s->pass_error) < 0) {
		s->pass_status = BATCH_ERROR;
		return -1;
	}
	s->paused_read_at = now;
	if (paused != s->paused_systems)
		log_notice(paused == SYSTEM_ALL ? "paused: processing nothing until 'passportd resume'"
			   : paused	       ? "paused systems: their entries are held back (postponed)"
					       : "resumed: every system");
	s->paused_systems = paused;
	atomic_store(&s->all_paused, paused == SYSTEM_ALL);
	s->batch_config.paused_systems = paused;
	processor_set_config(s->processor, &s->batch_config);
	return 0;
}

/*
 * Whether a batch that started at started (monotonic seconds) and claimed claimed entries found
 * them arriving as under load (the rule above). Remembers when it started, for the next one.
 */
static bool worker_busy(struct service *s, long claimed, double started)
{
	double window = started - s->previous_batch_started;
	bool first = s->previous_batch_started == 0;

	s->previous_batch_started = started;
	/* Helpers at work: a backlog, and the batch came back short only because they hold its users. */
	if (first || claimed < GATHER_MIN_CLAIMED || claimed >= s->batch_config.batch_size ||
	    (s->catch_up && catch_up_running(s->catch_up)))
		return false;
	return window <= 0 || (double)claimed >= GATHER_MIN_RATE * window;
}

/* Wait until GATHER_PERIOD_MS after started (monotonic seconds), unless the service stops. */
static void worker_gather(struct service *s, double started)
{
	for (;;) {
		double left_ms = GATHER_PERIOD_MS - (clock_seconds(CLOCK_MONOTONIC) - started) * 1000.0;
		double slice_ms = left_ms < GATHER_SLICE_MS ? left_ms : GATHER_SLICE_MS;
		struct timespec ts;

		if (left_ms <= 0 || atomic_load(&s->stop_after_batch))
			return;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(slice_ms * 1e6);
		nanosleep(&ts, NULL);
	}
}

/* Runs on the thread pool: connect if needed, then batches until nothing is due. */
void service_work_pass(uv_work_t *work)
{
	struct service *s = work->data;

	memset(&s->pass_totals, 0, sizeof(s->pass_totals));
	memset(&s->pass_metrics, 0, sizeof(s->pass_metrics));
	db_error_clear(&s->pass_error);
	s->pass_connected = false;
	if (!s->worker) {
		notify_set_phase(&s->notify, NOTIFY_CONNECTING);
		s->worker = db_connect(s->config.dsn, "passportd worker", &s->pass_error);
		if (!s->worker) {
			s->pass_status = BATCH_ERROR;
			goto idle;
		}
		s->processor = processor_create(s->worker, &s->batch_config, &s->pass_error);
		if (!s->processor) {
			PQfinish(s->worker);
			s->worker = NULL;
			s->pass_status = BATCH_ERROR;
			goto idle;
		}
		worker_set_cancel(s, s->worker);
	}
	notify_set_phase(&s->notify, NOTIFY_PROCESSING);
	s->pass_connected = true;
	processor_set_config(s->processor, &s->batch_config);
	if (worker_read_pause(s, true) < 0) {
		worker_disconnect(s);
		goto idle;
	}
	if (s->catch_up && !catch_up_running(s->catch_up)) {
		/* The helpers of an earlier pass have ended: count their work in this pass. */
		catch_up_finish(s->catch_up, &s->pass_totals);
		s->catch_up = NULL;
	}
	for (;;) {
		worker_take_reload(s);
		if (worker_read_pause(s, false) < 0)
			break;
		if (s->paused_systems == SYSTEM_ALL) {
			s->pass_status = BATCH_EMPTY; /* paused: claim nothing */
			break;
		}
		double started = clock_seconds(CLOCK_MONOTONIC);
		long processed_before = s->pass_totals.processed, claimed_before = s->pass_totals.claimed;

		s->pass_status = processor_run_batch(s->processor, &s->pass_totals, &s->pass_error);
		/* A full batch: a backlog. Help with it as drain would, until nothing is left to claim. */
		if (s->pass_status == BATCH_DONE && !s->catch_up && s->catch_up_helpers > 0 &&
		    s->pass_totals.claimed - claimed_before >= s->batch_config.batch_size &&
		    !atomic_load(&s->stop_after_batch))
			s->catch_up =
				catch_up_start(&s->config, &s->batch_config, s->catch_up_helpers, &s->stop_after_batch);
		notify_progress(&s->notify);
		atomic_fetch_add(&s->live_processed, s->pass_totals.processed - processed_before);
		if (s->pass_status == BATCH_DONE) {
			metrics_histogram_observe(&s->pass_metrics.batch_durations, clock_seconds(CLOCK_MONOTONIC) - started);
			s->pass_metrics.last_batch_time = clock_seconds(CLOCK_REALTIME);
		}
		if (s->pass_status == BATCH_ERROR)
			break;
		/* Between batches, outside any transaction: the queue gauges, at most once per poll interval. */
		(void)metrics_refresh_queue(s->metrics, s->worker, s->queue_read_interval);
		if (s->pass_status != BATCH_DONE || atomic_load(&s->stop_after_batch))
			break;
		if (worker_busy(s, s->pass_totals.claimed - claimed_before, started))
			worker_gather(s, started);
	}
	if (s->pass_status == BATCH_ERROR)
		worker_disconnect(s);
idle:
	notify_set_phase(&s->notify, NOTIFY_IDLE);
}

