/* tables: the influence weights (appendix A) and default routes (appendix B) as data. Pure. */
#ifndef PASSPORT_TABLES_H
#define PASSPORT_TABLES_H

#include <stddef.h>

enum passport_system {
	SYSTEM_MEDIAID = 1u << 0,
	SYSTEM_COLISEUM = 1u << 1,
	SYSTEM_TREASURY = 1u << 2,
};
#define SYSTEM_ALL (SYSTEM_MEDIAID | SYSTEM_COLISEUM | SYSTEM_TREASURY)

/* Influence of an event type on the four DNA domains (cultural, behavioral, economic, spatial). */
struct influence {
	double weight[4];
	double base; /* base intensity b */
};

struct route {
	unsigned systems;     /* bitmask of enum passport_system */
	const char *category; /* event_category */
};

/* The influence of the full event type; unknown types get 0.5 everywhere. Never NULL. */
const struct influence *influence_for_event(const char *event_type);

/* The default route of an event type (used when affects_systems is empty). Never NULL. */
const struct route *route_for_event(const char *event_type);

/* The system named name ("mediaid", "coliseum", "treasury"), or 0 for an unknown name. */
unsigned system_from_name(const char *name);
const char *system_name(unsigned system);

/*
 * The event type of row index of the influence (appendix A) or route (appendix B)
 * table, in table order, or NULL past the end. For tests that check the tables
 * are sorted, as the lookups rely on it.
 */
const char *influence_table_event_type(size_t index);
const char *route_table_event_type(size_t index);

#endif
