/*
 * listener: one LISTEN connection driven by a libuv loop, reporting to its owner through three
 * events (after pgqd's pgsocket.c): ready, wake and lost.
 *
 * The connection is non-blocking libpq watched by a uv_poll_t on its socket; nothing in this
 * module ever blocks the loop. The listener only reports: retrying after a loss (when, how often)
 * is the owner's decision, made by calling listener_start again.
 *
 * The same connection carries the wake-up gate of sql/030_wakeup_gate.sql: the notify trigger
 * notifies only while some daemon is armed, i.e. holds the advisory lock LOCK_CLASS_WAKE on its
 * LISTEN session. The owner arms (listener_arm) when a look for work found nothing; the listener
 * disarms by itself as soon as a notification arrives, so a busy daemon never makes the
 * application's inserts notify. Being a session lock, the armed state ends with the connection.
 */
#ifndef PASSPORTD_LISTENER_H
#define PASSPORTD_LISTENER_H

#include <stdbool.h>

#include <uv.h>

struct listener;

enum listener_event {
	/*
	 * LISTEN took effect. Notifications sent while the listener was away are lost, so the owner
	 * should look for work now to catch up.
	 */
	LISTENER_READY,
	/*
	 * One or more notifications arrived on the channel. The listener disarms (or gives up arming)
	 * by itself; the owner calls listener_arm again when it is idle again.
	 */
	LISTENER_WAKE,
	/*
	 * listener_arm took effect: from now on every insert notifies, until a notification arrives.
	 * Inserts committed before this point did not notify, so the owner must look for work once
	 * more now (their rows are all visible to a snapshot taken after this event).
	 */
	LISTENER_ARMED,
	/*
	 * listener_arm could not take the gate within the lock timeout: another daemon is armed (its
	 * notification wakes this one too) or a long transaction of a writer holds it. The listener is
	 * not armed; the owner calls listener_arm again later.
	 */
	LISTENER_ARM_BUSY,
	/*
	 * Connecting, subscribing or reading failed, or the connection was lost. The listener is
	 * closed already (as after listener_stop); listener_start opens it again.
	 */
	LISTENER_LOST,
};

/*
 * The owner's callback. For LISTENER_LOST, what names the step that failed ("connection lost",
 * "LISTEN failed", ...) and reason is libpq's message on one line, any password of the DSN masked;
 * both are NULL for the other events and valid only during the call. The callback may call
 * listener_start and listener_stop, but not listener_destroy.
 */
typedef void listener_callback(void *owner, enum listener_event event, const char *what, const char *reason);

/*
 * A closed listener on loop, for channel (copied), connecting with dsn (copied; "" or NULL: as
 * db_resolve_dsn decides) under application_name (not copied: a literal). Returns NULL when out
 * of memory. Destroy with listener_destroy.
 */
struct listener *listener_create(uv_loop_t *loop, const char *dsn, const char *application_name, const char *channel,
				 listener_callback *callback, void *owner);

/*
 * Start connecting, unless the listener is already connecting or connected. Returns at once; the
 * outcome arrives later as LISTENER_READY or LISTENER_LOST (LISTENER_LOST may also come before
 * this function returns, when the connection cannot even be started).
 */
void listener_start(struct listener *listener);

/*
 * Arm the wake-up gate: take the advisory lock LOCK_CLASS_WAKE on the listening session, so that
 * inserts notify. The outcome arrives as LISTENER_ARMED, LISTENER_ARM_BUSY, LISTENER_WAKE (a
 * notification came first: not armed) or LISTENER_LOST (which may come before this function
 * returns). Nothing happens, and no event comes, while the listener is not listening yet (its
 * LISTENER_READY follows) or when it is armed or arming already.
 */
void listener_arm(struct listener *listener);

/* Whether the gate is armed now (the lock is held and no notification has come since). */
bool listener_armed(const struct listener *listener);

/* Close the connection, if any, without an event. The listener can be started again. */
void listener_stop(struct listener *listener);

/*
 * Stop and free the listener; NULL is accepted. Its poll handle, if any, is closed now and freed
 * by its close callback on a later turn of the loop, so the loop must run (or be walked and run)
 * once more before uv_loop_close.
 */
void listener_destroy(struct listener *listener);

#endif
