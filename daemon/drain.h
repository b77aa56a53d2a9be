/* drain: `passportd drain`, process every due entry (with --workers connections), print a summary, exit. */
#ifndef PASSPORTD_DRAIN_H
#define PASSPORTD_DRAIN_H

#include <signal.h>

#include "config.h"

/*
 * Process every due entry with config->workers connections, then print one summary line on
 * stdout ("drain: processed N, failed N (...), ..."). The workers stop between batches once
 * *stop_requested is non-zero (the caller's signal handler sets it). Returns the exit status:
 * 0 when the work was done (failed entries are recorded on the entries), 1 when a worker could
 * not connect or stopped on an error, DRAIN_EXIT_LEFT_BEHIND when it ran to the end but left
 * due entries behind (held by other sessions past the wait limit, or entries whose failure could
 * not be recorded). 2 stays free for usage errors.
 */
#define DRAIN_EXIT_LEFT_BEHIND 3

int command_drain(const struct config *config, volatile sig_atomic_t *stop_requested);

#endif
