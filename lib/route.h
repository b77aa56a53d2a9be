/*
 * route: the second step of a batch. Everything about an entry that needs no database facts:
 * its payload (payload.c), its timestamp, and the systems it goes to (SPEC 4, appendix B).
 */
#ifndef PASSPORT_ROUTE_H
#define PASSPORT_ROUTE_H

#include <stddef.h>

struct processor;
struct entry;
struct batch_totals;

/*
 * The systems of an entry (pure): systems_json is affects_systems as a JSON array (NULL for SQL
 * NULL); a non-empty list names the systems, otherwise the event type's default route applies.
 * Systems missing from enabled are dropped and counted in *skipped. Returns 0, or -1 with a
 * reason when the list names an unknown system; *systems and *skipped then hold what was
 * routed before it.
 */
int route_systems(const char *systems_json, const char *event_type, unsigned enabled, unsigned *systems,
		  long *skipped, char *reason, size_t reason_len);

/*
 * The routed systems an entry may not go to now (pure): those not enabled in the configuration
 * and those paused. Returns them (0: none), with a reason for last_error in reason ("paused:
 * coliseum", "disabled: treasury", or both separated by "; ").
 */
unsigned route_blocked(unsigned routed, unsigned enabled, unsigned paused, char *reason, size_t reason_len);

/*
 * First pass over a claimed entry: parse the payload, check the timestamp, route it. A problem
 * is recorded on the entry (entry_fail) as a permanent failure; an entry that touches a paused
 * or disabled system is postponed (OUTCOME_POSTPONED), never processed without it, and its
 * blocked deliveries are counted in totals->skipped_systems.
 */
void route_entry(const struct processor *p, struct entry *e, struct batch_totals *totals);

#endif
