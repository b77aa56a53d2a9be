/*
 * wakeup: when `passportd run` looks for work besides its poll timer, and when it arms the
 * wake-up gate of sql/030_wakeup_gate.sql so that inserts notify it.
 *
 * Inserts notify only while some daemon is armed, because a notifying commit serialises the
 * application's writers. The rules:
 *   - A look (a pass of batches) that found nothing, and did not answer a notification: the
 *     daemon is idle, so it arms (listener_arm). Once armed it looks once more, for the inserts
 *     that committed while it was arming (the owner does that on LISTENER_ARMED).
 *   - A notification disarms the listener (it does that by itself) and asks for a look.
 *   - A look that found work arriving at WAKEUP_BUSY_RATE entries/s or more (counted since the
 *     previous look started), or that answered a notification and found nothing (another daemon
 *     was quicker): more is coming, so no arming; it looks again after WAKEUP_LINGER_MIN_MS,
 *     doubling the wait up to WAKEUP_LINGER_MAX_MS while that holds. Under a steady stream of
 *     inserts the daemon keeps up by looking every WAKEUP_LINGER_MAX_MS and nobody notifies.
 *     Below that rate it arms: a few notifications a second cost the writers nothing, and
 *     lingering would make each entry wait for the next look.
 *   - Arming refused (another daemon holds the gate; its notifications wake this daemon too,
 *     since both LISTEN): try again after WAKEUP_ARM_RETRY_MS, if still idle by then.
 * Without a listener (--no-listen) only the lingering remains.
 */
#ifndef PASSPORTD_WAKEUP_H
#define PASSPORTD_WAKEUP_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "listener.h"

#define WAKEUP_LINGER_MIN_MS 2.0
#define WAKEUP_LINGER_MAX_MS 100.0
#define WAKEUP_ARM_RETRY_MS 1000.0
#define WAKEUP_BUSY_RATE 100.0

/* Asks the owner to look for work now (the owner's service_request_work). */
typedef void wakeup_look_callback(void *owner);

/* Embedded in its owner; the fields are private to wakeup.c. */
struct wakeup {
	uv_timer_t linger_timer;
	uv_timer_t arm_retry;
	uv_loop_t *loop;
	struct listener *listener; /* not owned; NULL when polling only */
	wakeup_look_callback *look;
	void *owner;
	double linger_ms;      /* the next linger */
	uint64_t look_started_ms, previous_look_started_ms; /* uv_now of the last two looks */
	bool woken;            /* a notification came since the last look started */
	bool look_after_wake;  /* the running (or last) look answered a notification */
	bool looking;          /* a look is under way */
	bool idle;             /* the last look found nothing and armed (or tried to) */
};

/*
 * Initialise w on loop for listener (NULL when polling only; not owned, must outlive w). Its two
 * timers are handles of loop, closed with the owner's other handles (e.g. a uv_walk that closes
 * every handle); there is no wakeup_finish.
 */
void wakeup_init(struct wakeup *w, uv_loop_t *loop, struct listener *listener, wakeup_look_callback *look,
		 void *owner);

/* A notification came (LISTENER_WAKE); the owner asks for a look as well. */
void wakeup_notified(struct wakeup *w);

/* Arming was refused (LISTENER_ARM_BUSY): try again later. */
void wakeup_arm_refused(struct wakeup *w);

/* A look starts: no linger or arming retry is due any more. */
void wakeup_look_started(struct wakeup *w);

/* The look ended with nothing due; it claimed this many entries: linger, or arm. */
void wakeup_look_idle(struct wakeup *w, long claimed);

/* The look ended otherwise (an error, or entries held by other daemons): the owner retries. */
void wakeup_look_failed(struct wakeup *w);

#endif
