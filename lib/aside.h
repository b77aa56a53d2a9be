/*
 * aside: the entries set aside as unrecordable (their failure could not be recorded: the row
 * refuses every write). Claims leave them out, so nothing spins on them, and drain reports
 * them. One set may be shared by several processors (drain's workers, run's worker and its
 * catch-up helpers), so that an entry one of them set aside is left out by all and counted once.
 * Thread-safe; bounded (ASIDE_MAX).
 */
#ifndef PASSPORT_ASIDE_H
#define PASSPORT_ASIDE_H

#include <stdbool.h>

#define ASIDE_MAX 1024

struct aside;

struct aside *aside_create(void);
void aside_destroy(struct aside *set);

enum aside_add { ASIDE_ADDED, ASIDE_PRESENT, ASIDE_FULL };

/* Add the entry id (a UUID's text). */
enum aside_add aside_add(struct aside *set, const char *entry_id);

bool aside_contains(struct aside *set, const char *entry_id);

int aside_count(struct aside *set);

/* "{id,...}", a uuid[] literal of the set (malloc'd); NULL when out of memory. */
char *aside_literal(struct aside *set);

#endif
