/* pause_command: `passportd pause [SYSTEM...]` and `passportd resume [SYSTEM...]`. */
#ifndef PASSPORTD_PAUSE_COMMAND_H
#define PASSPORTD_PAUSE_COMMAND_H

#include <stdbool.h>

#include "config.h"

#define PAUSE_NAMES_MAX 4 /* all, mediaid, coliseum, treasury */

/*
 * Pause (paused = true) or resume the named systems (n_names 0: "all") in the database, for
 * every passportd; names were checked by the command line (pause_valid_name). Prints what was
 * done. Returns the exit status: 0, or 1 when the database refused or could not be reached.
 */
int command_pause(const struct config *config, const char *const *names, int n_names, bool paused);

#endif
