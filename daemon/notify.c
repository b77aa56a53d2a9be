/*
 * notify: READY=1, STATUS= and a watchdog that tells systemd the truth. WATCHDOG=1 is sent only
 * while the worker is idle or its current step (a connection attempt, a batch) is younger than
 * that step's limit: a batch stuck behind a frozen server or a silent network stops the pings,
 * and systemd restarts the service, instead of a timer saying all is well for hours.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "build_config.h"

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define TICK_MAX_MS 1000

static long long monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void notify_send(const char *message)
{
#if HAVE_LIBSYSTEMD
	sd_notify(0, message);
#else
	(void)message;
#endif
}

bool notify_worker_alive(enum notify_phase phase, double since_progress, double connect_limit, double batch_limit)
{
	switch (phase) {
	case NOTIFY_IDLE:
		return true;
	case NOTIFY_CONNECTING:
		return since_progress <= connect_limit;
	case NOTIFY_PROCESSING:
		return since_progress <= batch_limit;
	}
	return true;
}

static void on_tick(uv_timer_t *timer)
{
	struct notify *n = timer->data;
	enum notify_phase phase = (enum notify_phase)atomic_load(&n->phase);
	double since = (double)(monotonic_ms() - atomic_load(&n->progress_ms)) / 1000.0;
	bool alive = notify_worker_alive(phase, since, n->connect_limit, n->batch_limit);

	if (n->on_tick)
		n->on_tick(n->owner);
	/*
	 * Once stalled, the pings stay off until the worker starts a new step or finishes one (not
	 * merely until its stuck call returns): the owner abandons the connection, and the worker
	 * has to show it can work again.
	 */
	if (!alive && !atomic_load(&n->stalled)) {
		atomic_store(&n->stalled, true);
		if (n->on_stall)
			n->on_stall(n->owner, since);
	}
	if (alive && !atomic_load(&n->stalled) && n->watchdog_usec)
		notify_send("WATCHDOG=1");
}

void notify_init(struct notify *n, uv_loop_t *loop, double batch_limit, notify_tick_fn tick, notify_stall_fn stall,
		 void *owner)
{
	uint64_t tick_ms = TICK_MAX_MS;

	memset(&n->status, 0, sizeof(n->status));
	n->watchdog_usec = 0;
	n->connect_limit = 15; /* libpq's connect_timeout (10 s) and a margin */
	n->batch_limit = batch_limit;
	atomic_init(&n->phase, NOTIFY_IDLE);
	atomic_init(&n->progress_ms, monotonic_ms());
	atomic_init(&n->stalled, false);
	n->on_tick = tick;
	n->on_stall = stall;
	n->owner = owner;
#if HAVE_LIBSYSTEMD
	{
		uint64_t usec = 0;
		if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
			n->watchdog_usec = usec;
	}
#endif
	if (n->watchdog_usec && n->watchdog_usec / 2000 < tick_ms)
		tick_ms = n->watchdog_usec / 2000 ? n->watchdog_usec / 2000 : 1;
	uv_timer_init(loop, &n->timer);
	n->timer.data = n;
	uv_timer_start(&n->timer, on_tick, tick_ms, tick_ms);
}

void notify_set_batch_limit(struct notify *n, double batch_limit)
{
	n->batch_limit = batch_limit;
}

void notify_status(struct notify *n, const char *fmt, ...)
{
	char status[256], message[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(status, sizeof(status), fmt, ap);
	va_end(ap);
	if (strcmp(status, n->status) == 0)
		return;
	snprintf(n->status, sizeof(n->status), "%s", status);
	snprintf(message, sizeof(message), "STATUS=%s", status);
	notify_send(message);
}

void notify_set_phase(struct notify *n, enum notify_phase phase)
{
	atomic_store(&n->progress_ms, monotonic_ms());
	atomic_store(&n->phase, (int)phase);
	if (phase != NOTIFY_IDLE)
		atomic_store(&n->stalled, false);
}

void notify_progress(struct notify *n)
{
	atomic_store(&n->progress_ms, monotonic_ms());
	atomic_store(&n->stalled, false);
}
