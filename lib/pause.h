/*
 * pause: the pause state every passportd honours, kept in the database (passport_pause,
 * sql/050_pause.sql) so that one command reaches every daemon on every machine. A paused system
 * receives nothing: entries that touch it are postponed (left unprocessed, attempts untouched)
 * and processed after `passportd resume`. 'all' pauses every system: daemons then claim nothing.
 */
#ifndef PASSPORT_PAUSE_H
#define PASSPORT_PAUSE_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "db.h"

/*
 * The paused systems (bitmask of enum passport_system; SYSTEM_ALL when 'all' is paused) into
 * *paused. A database without the table (schema not yet applied) has nothing paused. Runs one
 * statement outside or inside the caller's transaction. Returns 0, or -1 with error set.
 */
int pause_read(PGconn *conn, unsigned *paused, struct db_error *error);

/*
 * Pause (paused = true) or resume the named systems ("all", "mediaid", "coliseum", "treasury").
 * With n_names 0, pause pauses "all" and resume resumes everything (every row). Resuming also makes the entries postponed by a pause or by a disabled
 * system due at once. Returns the number of entries made due (0 when pausing), or -1 with error
 * set. Unknown names are the caller's to refuse (pause_valid_name).
 */
long long pause_set(PGconn *conn, const char *const *names, int n_names, bool paused, struct db_error *error);

/* Whether name can be paused: "all" or a system name. */
bool pause_valid_name(const char *name);

#endif
