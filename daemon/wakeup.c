/* wakeup: the service's lingering after work and arming when idle (the rules are in wakeup.h). */
#include "wakeup.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "log.h"

/* A factor in [0.75, 1.25), so that daemons do not retry in step. */
static double jitter(void)
{
	return 0.75 + 0.5 * ((double)rand() / ((double)RAND_MAX + 1));
}

static void on_linger(uv_timer_t *timer)
{
	struct wakeup *w = timer->data;

	w->look(w->owner);
}

/* Try to arm again, unless a look is under way or due: its end decides. */
static void on_arm_retry(uv_timer_t *timer)
{
	struct wakeup *w = timer->data;

	if (w->looking || !w->idle || uv_is_active((uv_handle_t *)&w->linger_timer))
		return;
	listener_arm(w->listener);
}

void wakeup_init(struct wakeup *w, uv_loop_t *loop, struct listener *listener, wakeup_look_callback *look,
		 void *owner)
{
	w->loop = loop;
	w->listener = listener;
	w->look_started_ms = w->previous_look_started_ms = uv_now(loop);
	w->look = look;
	w->owner = owner;
	w->linger_ms = WAKEUP_LINGER_MIN_MS;
	w->woken = w->look_after_wake = w->looking = w->idle = false;
	uv_timer_init(loop, &w->linger_timer);
	uv_timer_init(loop, &w->arm_retry);
	w->linger_timer.data = w->arm_retry.data = w;
}

void wakeup_notified(struct wakeup *w)
{
	w->woken = true;
}

void wakeup_arm_refused(struct wakeup *w)
{
	log_debug("listener: the wake-up gate is taken (another daemon is armed); trying again later");
	uv_timer_start(&w->arm_retry, on_arm_retry, (uint64_t)(WAKEUP_ARM_RETRY_MS * jitter()), 0);
}

void wakeup_look_started(struct wakeup *w)
{
	uv_timer_stop(&w->linger_timer);
	uv_timer_stop(&w->arm_retry);
	w->previous_look_started_ms = w->look_started_ms;
	w->look_started_ms = uv_now(w->loop);
	w->look_after_wake = w->woken;
	w->woken = false;
	w->looking = true;
	w->idle = false;
}

void wakeup_look_idle(struct wakeup *w, long claimed)
{
	/* The entries this look found arrived since about when the previous look started. */
	uint64_t window_ms = w->look_started_ms - w->previous_look_started_ms;
	bool busy = (double)claimed * 1000.0 >= WAKEUP_BUSY_RATE * (double)(window_ms ? window_ms : 1);

	w->looking = false;
	if (busy || (claimed == 0 && w->look_after_wake)) {
		double delay = w->linger_ms;
		w->linger_ms = fmin(w->linger_ms * 2, WAKEUP_LINGER_MAX_MS);
		uv_timer_start(&w->linger_timer, on_linger, (uint64_t)delay, 0);
		return;
	}
	w->linger_ms = WAKEUP_LINGER_MIN_MS;
	w->idle = true;
	if (w->listener)
		listener_arm(w->listener);
}

void wakeup_look_failed(struct wakeup *w)
{
	w->looking = false;
}
