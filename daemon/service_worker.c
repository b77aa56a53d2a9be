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
	}
	if (s->pass_status == BATCH_ERROR)
		worker_disconnect(s);
idle:
	notify_set_phase(&s->notify, NOTIFY_IDLE);
}

