/*
 * catch_up: extra connections that help `passportd run` through a backlog, as drain's workers do.
 *
 * The service's own worker runs one batch after another; when a batch comes back full, more is
 * due than one connection clears quickly (after downtime, a backfill, a burst). The service then
 * starts helpers: threads with a connection and a processor each, taking other users under the
 * same advisory user locks as drain's workers (the same DNA, bit for bit). A helper stops when it
 * has found nothing to claim for CATCH_UP_IDLE_SECONDS (the backlog is gone, or the rest is held
 * elsewhere), on an error (logged; the service's own worker carries on), or when asked to stop
 * between batches. The service's passes go on meanwhile; one that starts after the helpers ended
 * joins them (catch_up_running says when).
 */
#ifndef PASSPORT_CATCH_UP_H
#define PASSPORT_CATCH_UP_H

#include <stdatomic.h>
#include <stdbool.h>

#include "batch.h"
#include "config.h"

struct catch_up;

#define CATCH_UP_IDLE_SECONDS 1.0 /* a helper with nothing to claim this long ends */
#define CATCH_UP_PAUSE_MS 50      /* between claims that found nothing */

/*
 * Start helpers threads, each connecting with config's dsn and batch settings (batch's
 * shared_entities, if set, is shared with them; it must outlive catch_up_finish). They stop
 * between batches once *stop is true. Returns NULL when none could be started (the reason is
 * logged); the caller then goes on alone.
 */
struct catch_up *catch_up_start(const struct config *config, const struct batch_config *batch, int helpers,
				atomic_bool *stop);

/* Whether any helper still runs (false for NULL). Any thread. */
bool catch_up_running(struct catch_up *catch_up);

/* Wait for the helpers to end, add their totals to totals, and free catch_up. Accepts NULL. */
void catch_up_finish(struct catch_up *catch_up, struct batch_totals *totals);

#endif
