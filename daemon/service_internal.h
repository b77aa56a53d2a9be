/*
 * service_internal: the state `passportd run` shares between the loop thread (service.c) and
 * the worker thread (service_worker.c). Each field says which thread owns it; the ones both
 * touch are atomic or under a named lock.
 */
#ifndef PASSPORTD_SERVICE_INTERNAL_H
#define PASSPORTD_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <libpq-fe.h>
#include <uv.h>

#include "batch.h"
#include "catch_up.h"
#include "config.h"
#include "db.h"
#include "listener.h"
#include "metrics.h"
#include "metrics_http.h"
#include "notify.h"
#include "wakeup.h"

struct service {
	uv_loop_t *loop;
	struct config config;
	const struct config_sources *sources;

	/* listener: NULL when polling only (listen = false) */
	struct listener *listener;
	uv_timer_t listener_retry;
	double listener_backoff;

	struct wakeup wakeup; /* lingering after work, arming when idle; loop thread */

	/* worker */
	uv_work_t work;
	bool work_running;
	bool pending;
	PGconn *worker;               /* used only inside the work callback */
	struct processor *processor;  /* idem */
	struct batch_config batch_config; /* copied into the processor at the start of each pass */
	struct entity_cache *entities; /* target vectors shared with catch-up helpers; NULL: one worker */
	struct aside *aside;           /* entries set aside as unrecordable, shared likewise */
	int catch_up_helpers;          /* extra connections while a backlog lasts (workers - 1) */
	struct catch_up *catch_up;     /* running helpers, or NULL; started and joined by the worker */
	atomic_bool stop_after_batch;
	double previous_batch_started; /* worker: when its last batch started (monotonic s; 0: none yet) */
	pthread_mutex_t cancel_lock;
	PGcancel *cancel; /* of the worker connection, under cancel_lock */
	int worker_socket; /* of the worker connection, -1 when none; under cancel_lock */
	atomic_long live_processed;       /* entries processed since start, counted by the worker */
	/*
	 * A reload hands its settings to a running pass here: the loop writes them under
	 * reload_lock and bumps reload_generation; the worker takes them between two batches.
	 */
	pthread_mutex_t reload_lock;
	atomic_uint reload_generation;
	unsigned worker_generation;        /* the generation the worker's settings come from */
	struct batch_config reload_batch_config;
	unsigned paused_systems;           /* worker: read from passport_pause, at most once per poll */
	double paused_read_at;             /* worker: CLOCK_MONOTONIC seconds of the last read */
	atomic_bool all_paused;            /* worker writes, loop reads for STATUS= */
	/* results of the last pass, read in the after-work callback */
	int pass_status;
	bool pass_connected;
	struct db_error pass_error;
	struct batch_totals pass_totals;
	struct batch_totals totals;
	struct metrics_pass pass_metrics;  /* filled by the worker during a pass */
	double queue_read_interval;        /* poll_interval, copied for the worker like batch_config */
	double worker_backoff;
	uv_timer_t worker_retry;
	bool database_up;

	struct metrics *metrics;           /* NULL when metrics_listen is empty */
	struct metrics_http *metrics_http;

	uv_timer_t poll_timer;
	uv_timer_t stop_timer;
	struct notify notify;
	uv_signal_t sigterm, sigint, sighup;
	int stopping;
	bool stop_cancelled;
};

/*
 * Worker thread (uv_queue_work's work callback): connect if needed, then batches until nothing
 * is due, a batch fails, or stop_after_batch is set; results in the pass_* fields.
 */
void service_work_pass(uv_work_t *work);

/* Drop the worker connection and its processor (worker thread, or the loop once the pass is over). */
void worker_disconnect(struct service *s);

#endif
