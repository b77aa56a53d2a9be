/*
 * notify: what systemd hears from `passportd run`: READY=1, STATUS=, STOPPING=1, and a watchdog
 * that pings only while the worker is idle or making progress.
 *
 * Threads: notify_progress and notify_set_phase may be called from the worker thread; every
 * other function belongs to the loop thread. The timer is a handle of the loop: it is closed with
 * the loop's other handles (uv_walk), never freed by this module.
 */
#ifndef PASSPORT_NOTIFY_H
#define PASSPORT_NOTIFY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

/* What the worker is doing; each phase has its own bound on how long one step may take. */
enum notify_phase {
	NOTIFY_IDLE,       /* no pass running: always alive */
	NOTIFY_CONNECTING, /* opening the worker connection: bounded by connect_timeout */
	NOTIFY_PROCESSING, /* in a batch: each statement bounded by statement_timeout */
};

struct notify;

/*
 * Called on the loop thread at each tick (about once a second, or twice per watchdog period if
 * that is shorter) before the watchdog decides; refreshes STATUS= from the owner's state.
 */
typedef void (*notify_tick_fn)(void *owner);

/*
 * Called on the loop thread once when the worker has made no progress for longer than its phase
 * allows (the pings have stopped); seconds is how long it has been stuck.
 */
typedef void (*notify_stall_fn)(void *owner, double seconds);

struct notify {
	uv_timer_t timer;
	uint64_t watchdog_usec;  /* WATCHDOG_USEC, 0 when systemd asked for no watchdog */
	double connect_limit;    /* seconds a connection attempt may take */
	double batch_limit;      /* seconds a batch may go without finishing */
	atomic_int phase;        /* enum notify_phase */
	atomic_llong progress_ms; /* CLOCK_MONOTONIC milliseconds of the worker's last progress */
	atomic_bool stalled;     /* the pings have stopped until the worker starts a step again */
	notify_tick_fn on_tick;
	notify_stall_fn on_stall;
	void *owner;
	char status[256];
};

/* Send one sd_notify message (no-op without libsystemd or outside systemd). */
void notify_send(const char *message);

/*
 * Start the tick timer on loop (and the watchdog when WATCHDOG_USEC is set). batch_limit is the
 * longest a batch may go without finishing before the pings stop.
 */
void notify_init(struct notify *n, uv_loop_t *loop, double batch_limit, notify_tick_fn on_tick,
		 notify_stall_fn on_stall, void *owner);

/* Change the batch limit (after a reload). */
void notify_set_batch_limit(struct notify *n, double batch_limit);

/* STATUS=, sent only when it changed. */
void notify_status(struct notify *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Worker thread: enter a phase (counts as progress). */
void notify_set_phase(struct notify *n, enum notify_phase phase);

/* Worker thread: a step finished (a batch committed, a connection opened). */
void notify_progress(struct notify *n);

/*
 * The watchdog rule, pure: alive when idle, or when the time since the last progress is within
 * the phase's limit.
 */
bool notify_worker_alive(enum notify_phase phase, double since_progress, double connect_limit, double batch_limit);

#endif
