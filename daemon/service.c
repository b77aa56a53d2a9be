/*
 * service: `passportd run`, the long-running service.
 *
 * Two connections:
 *   - the listener (daemon/listener.c), driven asynchronously by the libuv loop. It LISTENs on
 *     PASSPORT_CHANNEL and reports ready, wake or lost; ready and wake ask for work. It is only a
 *     doorbell: losing it loses nothing, because the poll timer asks for work too.
 *   - the worker (daemon/service_worker.c), used by batches that run on libuv's thread pool
 *     (uv_queue_work), one batch loop at a time. A reload reaches a running pass between two
 *     batches. Batches are a fixed handful of blocking round trips each; running them off
 *     the loop keeps signals, notifications and the systemd watchdog answered while a batch runs.
 *
 * Backlogs: when a batch comes back full, the pass starts `workers - 1` catch-up helpers
 * (catch_up.c), extra connections on other users as drain's workers, until they have found
 * nothing to claim for a second; they share the worker's target cache. Passes go on ending as
 * before (so metrics and logs move), and while helpers run an empty pass is retried soon, not at
 * the next poll; a later pass (or the shutdown) joins them and counts their work. Idle, `run` keeps the two connections.
 *
 * Asking for work while a batch loop runs sets `pending`, so a notification that arrives during a
 * batch is remembered and answered by another pass as soon as the loop returns.
 *
 * Wake-ups (sql/030_wakeup_gate.sql, daemon/wakeup.h): inserts notify only while some daemon is
 * armed. Every pass tells `wakeup` how it ended; an idle pass arms the listener, a pass that found
 * work lingers and looks again shortly, and arming is followed by one more pass (LISTENER_ARMED).
 *
 * Losing the database: the worker's batch is rolled back by the server; the worker connection is
 * dropped and reopened after a capped, jittered exponential backoff. The listener reconnects on
 * its own backoff, re-LISTENs, and asks for work at once (notifications sent while it was away
 * are lost, so a claim right after reconnecting catches up).
 *
 * Metrics (metrics_listen set): the worker times each batch into a metrics_pass of its own and,
 * between batches, reads the queue gauges at most once per poll interval on its idle connection;
 * work_done adds the pass to the shared registry, which the HTTP thread (metrics_http.c) renders.
 *
 * systemd (daemon/notify.c): READY=1 as soon as the loop runs, connected or not, so that starting
 * never waits for a backlog or for the database; STATUS= is refreshed every second from what the
 * worker is doing; WATCHDOG=1 is sent only while the worker is idle or making progress. A batch
 * that goes longer than three statement timeouts without finishing stops the pings, and the
 * worker's socket is shut down so that the blocked batch fails and a new connection is opened.
 *
 * Stopping: the first SIGTERM/SIGINT lets the batch in hand finish (or, after a few seconds,
 * cancels its query so the server rolls it back), then exits 0. A second signal exits at once.
 */
#include "service.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "build_config.h"
#include "catch_up.h"
#include "claim.h"
#include "aside.h"
#include "entity_cache.h"
#include "log.h"
#include "service_internal.h"
#include "version.h"
#include "wakeup.h"

#define BACKOFF_MIN_SECONDS 0.5
#define BACKOFF_MAX_SECONDS 30.0
#define STOP_CANCEL_MS 3000 /* then cancel the batch in hand */
#define STOP_GIVE_UP_MS 1500 /* then exit even if the worker is still blocked (e.g. connecting) */
#define BUSY_RETRY_MS 100
#define BATCH_LIMIT_STATEMENTS 3 /* a batch may take this many statement timeouts before it is stuck */

static void service_request_work(struct service *s);

#define set_status(s, ...) notify_status(&(s)->notify, __VA_ARGS__)

/* The next backoff delay: doubled, capped, with +-25 % jitter so daemons do not reconnect in step. */
static double next_backoff(double *backoff)
{
	double delay = *backoff;

	*backoff = fmin(*backoff * 2, BACKOFF_MAX_SECONDS);
	return delay * (0.75 + 0.5 * ((double)rand() / RAND_MAX));
}

/* ---- listener events ------------------------------------------------------------------- */

static void on_listener_retry(uv_timer_t *timer)
{
	struct service *s = timer->data;

	if (s->stopping)
		return;
	listener_start(s->listener);
}

/*
 * The listener's news. It is only a doorbell: ready and wake ask for work; a loss is retried after
 * a backoff of its own, while the poll timer keeps asking for work in the meantime.
 */
static void on_listener_event(void *owner, enum listener_event event, const char *what, const char *reason)
{
	struct service *s = owner;
	double delay;

	switch (event) {
	case LISTENER_READY:
		s->listener_backoff = BACKOFF_MIN_SECONDS;
		metrics_set_listener_up(s->metrics, true);
		log_info("listener: listening for new entries");
		set_status(s, "connected; %ld processed, %ld retrying, %ld dead since start", s->totals.processed,
			   s->totals.retrying, s->totals.dead);
		service_request_work(s); /* catch up on anything inserted while we were away */
		return;
	case LISTENER_WAKE:
		wakeup_notified(&s->wakeup);
		service_request_work(s);
		return;
	case LISTENER_ARMED:
		log_debug("listener: armed; looking for entries committed while arming");
		service_request_work(s);
		return;
	case LISTENER_ARM_BUSY:
		wakeup_arm_refused(&s->wakeup);
		return;
	case LISTENER_LOST:
		metrics_set_listener_up(s->metrics, false);
		if (s->stopping)
			return;
		delay = next_backoff(&s->listener_backoff);
		log_warning("listener: %s: %s; reconnecting in %.1f s", what, reason, delay);
		set_status(s, "waiting for database: %s", reason);
		uv_timer_start(&s->listener_retry, on_listener_retry, (uint64_t)(delay * 1000), 0);
		return;
	}
}

/* ---- worker ------------------------------------------------------------------------------ */

static void service_shutdown(struct service *s);

static void on_worker_retry(uv_timer_t *timer)
{
	service_request_work(timer->data);
}

static void work_done(uv_work_t *work, int status)
{
	struct service *s = work->data;
	const struct batch_totals *t = &s->pass_totals;
	const char *state;

	s->work_running = false;
	batch_totals_add(&s->totals, t);
	metrics_add_pass(s->metrics, t, &s->pass_metrics);
	metrics_set_database_up(s->metrics, s->pass_status != BATCH_ERROR);
	if (t->claimed > 0)
		log_info("processed %ld entries in %ld batches (%ld retrying, %ld dead, %ld DNA rows written)",
			 t->processed, t->batches, t->retrying, t->dead, t->dna_rows);

	if (s->stopping) {
		service_shutdown(s);
		return;
	}
	if (s->pass_status == BATCH_ERROR) {
		double delay = next_backoff(&s->worker_backoff);
		s->database_up = false;
		log_warning("worker: %s; retrying in %.1f s", s->pass_error.message, delay);
		set_status(s, "waiting for database: %s", s->pass_error.message);
		wakeup_look_failed(&s->wakeup);
		uv_timer_start(&s->worker_retry, on_worker_retry, (uint64_t)(delay * 1000), 0);
		return;
	}
	s->worker_backoff = BACKOFF_MIN_SECONDS;
	if (!s->database_up) {
		s->database_up = true;
		log_info("worker: connected to the database");
	}
	/* The pass may end while catch-up helpers still work through a backlog: not idle then. */
	state = "idle";
	if (atomic_load(&s->all_paused))
		state = "paused (passportd resume)";
	else if (catch_up_running(s->catch_up))
		state = "processing due entries (catch-up helpers)";
	set_status(s, "connected; %s; %ld processed, %ld retrying, %ld dead since start", state, s->totals.processed,
		   s->totals.retrying, s->totals.dead);
	if (s->pass_status == BATCH_BUSY ||
	    (s->pass_status == BATCH_EMPTY && catch_up_running(s->catch_up))) {
		/* Due entries held by other workers, or catch-up helpers still at work: look again soon. */
		wakeup_look_failed(&s->wakeup);
		uv_timer_start(&s->worker_retry, on_worker_retry, BUSY_RETRY_MS, 0);
	} else if (s->pending) {
		service_request_work(s);
	} else {
		wakeup_look_idle(&s->wakeup, t->claimed);
	}
}

/* The worker's batch settings: the option table's, the shared target cache, the statement timeout. */
static void service_batch_config(const struct service *s, struct batch_config *batch)
{
	config_to_batch(&s->config, batch);
	batch->shared_entities = s->entities;
	batch->shared_aside = s->aside;
	batch->statement_timeout_ms = (int)(s->config.statement_timeout * 1000);
}

static void service_request_work(struct service *s)
{
	if (s->stopping)
		return;
	if (s->work_running) {
		s->pending = true;
		return;
	}
	uv_timer_stop(&s->worker_retry);
	wakeup_look_started(&s->wakeup);
	s->pending = false;
	s->work_running = true;
	service_batch_config(s, &s->batch_config);
	s->worker_generation = atomic_load(&s->reload_generation);
	s->queue_read_interval = s->config.poll_interval;
	s->work.data = s;
	if (uv_queue_work(s->loop, &s->work, service_work_pass, work_done) != 0) {
		s->work_running = false;
		wakeup_look_failed(&s->wakeup);
		log_error("cannot queue work");
	}
}

static void wakeup_look(void *owner)
{
	service_request_work(owner);
}

static void on_poll_timer(uv_timer_t *timer)
{
	struct service *s = timer->data;

	/* While the worker backs off from a lost database, polling must not cut the wait short. */
	if (uv_is_active((uv_handle_t *)&s->worker_retry))
		return;
	service_request_work(s);
}

/*
 * Every second: STATUS= says what the worker is doing while a pass runs, and that the backlog is
 * being worked through while only catch-up helpers run (between the worker's passes, when the
 * helpers hold the due users; s->catch_up is the worker thread's only while a pass runs).
 */
static void on_notify_tick(void *owner)
{
	struct service *s = owner;

	if (s->stopping)
		return;
	if (!s->work_running) {
		if (catch_up_running(s->catch_up))
			set_status(s, "connected; processing due entries (catch-up helpers); %ld processed since start",
				   atomic_load(&s->live_processed));
		return;
	}
	switch ((enum notify_phase)atomic_load(&s->notify.phase)) {
	case NOTIFY_CONNECTING:
		set_status(s, "connecting to the database");
		break;
	case NOTIFY_PROCESSING:
		set_status(s, "connected; processing due entries; %ld processed since start",
			   atomic_load(&s->live_processed));
		break;
	case NOTIFY_IDLE:
		break;
	}
}

/*
 * The worker has been in one batch (or one connection attempt) longer than it may: the server is
 * frozen or the network silently lost. The watchdog pings have stopped; shut the worker's socket
 * down so that its blocked call fails, the batch is abandoned (the server rolls it back when it
 * notices) and the worker reconnects. The descriptor stays open until the worker closes it.
 */
static void on_notify_stall(void *owner, double seconds)
{
	struct service *s = owner;

	log_error("worker: no progress for %.0f s; watchdog pings stopped; abandoning the connection", seconds);
	set_status(s, "stuck: no progress for %.0f s", seconds);
	pthread_mutex_lock(&s->cancel_lock);
	if (s->worker_socket >= 0 && s->work_running)
		(void)shutdown(s->worker_socket, SHUT_RDWR);
	pthread_mutex_unlock(&s->cancel_lock);
}

/* ---- signals and shutdown ---------------------------------------------------------------- */

static void close_handle(uv_handle_t *handle, void *arg)
{
	(void)arg;
	if (!uv_is_closing(handle))
		uv_close(handle, NULL);
}

static void service_shutdown(struct service *s)
{
	listener_destroy(s->listener);
	s->listener = NULL;
	/* stop_after_batch is set: the helpers end after the batch in hand. */
	catch_up_finish(s->catch_up, &s->totals);
	s->catch_up = NULL;
	worker_disconnect(s);
	uv_walk(s->loop, close_handle, NULL);
}

static void on_stop_timer(uv_timer_t *timer)
{
	struct service *s = timer->data;
	char err[256];

	if (s->stop_cancelled) {
		/* Still blocked (typically connecting to an unreachable server): nothing to lose. */
		log_notice("stopping: the worker does not answer; exiting");
		_exit(0);
	}
	s->stop_cancelled = true;
	pthread_mutex_lock(&s->cancel_lock);
	if (s->cancel && s->work_running) {
		log_notice("stopping: cancelling the batch in hand (the server rolls it back)");
		PQcancel(s->cancel, err, sizeof(err));
	}
	pthread_mutex_unlock(&s->cancel_lock);
}

static void on_stop_signal(uv_signal_t *handle, int signum)
{
	struct service *s = handle->data;

	if (s->stopping) {
		/*
		 * The batch in hand may already have its writes and COMMIT queued at the server (they
		 * travel as one pipeline); cancel it so that the server rolls it back rather than
		 * finishing it after we are gone.
		 */
		char err[256];
		log_notice("second signal: abandoning the batch in hand and exiting at once");
		pthread_mutex_lock(&s->cancel_lock);
		if (s->cancel && s->work_running)
			(void)PQcancel(s->cancel, err, sizeof(err));
		pthread_mutex_unlock(&s->cancel_lock);
		_exit(0);
	}
	s->stopping = 1;
	log_info("received %s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
	notify_send("STOPPING=1");
	set_status(s, "stopping");
	atomic_store(&s->stop_after_batch, true);
	if (s->work_running) {
		uv_timer_start(&s->stop_timer, on_stop_timer, STOP_CANCEL_MS, STOP_GIVE_UP_MS);
		return; /* work_done finishes the shutdown */
	}
	service_shutdown(s);
}

static void on_reload_signal(uv_signal_t *handle, int signum)
{
	struct service *s = handle->data;
	struct config fresh;
	char err[512];

	(void)signum;
	config_init(&fresh);
	if (config_load(&fresh, s->sources, err, sizeof(err)) < 0) {
		log_error("reload failed, keeping the current configuration: %s", err);
		config_finish(&fresh);
		return;
	}
	/* Only reloadable options change; the rest keep their start-up values (each change is logged). */
	(void)config_apply_reload(&s->config, &fresh);
	config_finish(&fresh);
	log_set_level((enum log_level)s->config.log_level);
	notify_set_batch_limit(&s->notify, BATCH_LIMIT_STATEMENTS * s->config.statement_timeout);
	/* A pass in progress takes them before its next batch (worker_take_reload). */
	pthread_mutex_lock(&s->reload_lock);
	service_batch_config(s, &s->reload_batch_config);
	atomic_fetch_add(&s->reload_generation, 1);
	pthread_mutex_unlock(&s->reload_lock);
	uv_timer_start(&s->poll_timer, on_poll_timer, (uint64_t)(s->config.poll_interval * 1000),
		       (uint64_t)(s->config.poll_interval * 1000));
	log_info("configuration reloaded (batch_size %d, poll_interval %g s, log_level %s)", s->config.batch_size,
		 s->config.poll_interval, log_level_name((enum log_level)s->config.log_level));
}

/*
 * The registry and its HTTP endpoint, before anything else starts: an address that cannot be
 * bound is a start-up error. Returns 0, or -1 after logging why.
 */
static int service_start_metrics(struct service *s)
{
	char libpq[32], err[512];
	int libpq_version = PQlibVersion();
	struct metrics_build build = {
		.version = PASSPORT_VERSION,
		.revision = version_revision(),
		.libpq = libpq,
		.blas = version_blas(),
		.sd_notify = HAVE_LIBSYSTEMD,
	};

	snprintf(libpq, sizeof(libpq), "%d.%d", libpq_version / 10000, libpq_version % 10000);
	s->metrics = metrics_create(&build);
	if (!s->metrics) {
		log_error("out of memory");
		return -1;
	}
	s->metrics_http = metrics_http_create(s->metrics, s->config.metrics_listen, err, sizeof(err));
	if (!s->metrics_http) {
		log_error("%s", err);
		metrics_destroy(s->metrics);
		s->metrics = NULL;
		return -1;
	}
	log_info("serving metrics at http://%s/metrics", s->config.metrics_listen);
	return 0;
}

static void service_stop_metrics(struct service *s)
{
	metrics_http_destroy(s->metrics_http);
	s->metrics_http = NULL;
	metrics_destroy(s->metrics);
	s->metrics = NULL;
}

int service_run(const struct config *config, const struct config_sources *sources)
{
	struct service s;
	uv_loop_t loop;

	memset(&s, 0, sizeof(s));
	config_copy(&s.config, config);
	s.sources = sources;
	s.listener_backoff = BACKOFF_MIN_SECONDS;
	s.worker_backoff = BACKOFF_MIN_SECONDS;
	s.worker_socket = -1;
	atomic_init(&s.live_processed, 0);
	atomic_init(&s.all_paused, false);
	pthread_mutex_init(&s.cancel_lock, NULL);
	pthread_mutex_init(&s.reload_lock, NULL);
	atomic_init(&s.reload_generation, 0);
	atomic_init(&s.stop_after_batch, false);
	srand((unsigned)time(NULL) ^ (unsigned)getpid());

	if (uv_loop_init(&loop) != 0) {
		log_error("cannot initialise the event loop");
		return 1;
	}
	s.loop = &loop;
	if (s.config.metrics_listen[0] && service_start_metrics(&s) < 0) {
		uv_loop_close(&loop);
		pthread_mutex_destroy(&s.cancel_lock);
		pthread_mutex_destroy(&s.reload_lock);
		config_finish(&s.config);
		return 1;
	}
	if (s.config.listen) {
		s.listener = listener_create(&loop, s.config.dsn, "passportd listener", PASSPORT_CHANNEL, on_listener_event, &s);
		if (!s.listener) {
			log_error("out of memory");
			service_stop_metrics(&s);
			uv_loop_close(&loop);
			pthread_mutex_destroy(&s.cancel_lock);
			pthread_mutex_destroy(&s.reload_lock);
			config_finish(&s.config);
			return 1;
		}
	}
	uv_timer_init(&loop, &s.listener_retry);
	uv_timer_init(&loop, &s.worker_retry);
	uv_timer_init(&loop, &s.poll_timer);
	uv_timer_init(&loop, &s.stop_timer);
	wakeup_init(&s.wakeup, &loop, s.listener, wakeup_look, &s);
	s.listener_retry.data = s.worker_retry.data = s.poll_timer.data = s.stop_timer.data = &s;
	uv_signal_init(&loop, &s.sigterm);
	uv_signal_init(&loop, &s.sigint);
	uv_signal_init(&loop, &s.sighup);
	s.sigterm.data = s.sigint.data = s.sighup.data = &s;
	uv_signal_start(&s.sigterm, on_stop_signal, SIGTERM);
	uv_signal_start(&s.sigint, on_stop_signal, SIGINT);
	uv_signal_start(&s.sighup, on_reload_signal, SIGHUP);

	notify_init(&s.notify, &loop, BATCH_LIMIT_STATEMENTS * s.config.statement_timeout, on_notify_tick,
		    on_notify_stall, &s);
	set_status(&s, "started; connecting to the database");
	log_info("starting (batch_size %d, poll_interval %g s, %s)", s.config.batch_size, s.config.poll_interval,
		 s.config.listen ? "listening for notifications" : "polling only");

	/*
	 * Ready as soon as the loop is set up, before the first connection attempt: a backlog or a
	 * database that is down must not keep the unit in "activating" until TimeoutStartSec kills
	 * it. STATUS= tells the rest.
	 */
	notify_send("READY=1");

	/* After the start-up failures above, which return without them. */
	s.aside = aside_create(); /* NULL: the processor keeps its own */
	s.catch_up_helpers = config_workers(&s.config) - 1;
	if (s.catch_up_helpers > 0) {
		s.entities = entity_cache_create(BATCH_ENTITY_CACHE_CAPACITY);
		if (!s.entities)
			s.catch_up_helpers = 0; /* one connection, with the processor's own cache */
	}
	if (s.listener)
		listener_start(s.listener);
	service_request_work(&s);
	uv_timer_start(&s.poll_timer, on_poll_timer, (uint64_t)(s.config.poll_interval * 1000),
		       (uint64_t)(s.config.poll_interval * 1000));
	uv_run(&loop, UV_RUN_DEFAULT);

	log_info("stopped: %ld processed, %ld retrying, %ld dead since start", s.totals.processed, s.totals.retrying,
		 s.totals.dead);
	uv_loop_close(&loop);
	service_stop_metrics(&s);
	entity_cache_destroy(s.entities); /* after service_shutdown destroyed the processor using it */
	aside_destroy(s.aside);
	pthread_mutex_destroy(&s.cancel_lock);
	pthread_mutex_destroy(&s.reload_lock);
	config_finish(&s.config);
	return 0;
}
