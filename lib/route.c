/* route: payload, timestamp and systems of a claimed entry, before any database fact is read. */
#include "route.h"

#include <stdio.h>

#include <cjson/cJSON.h>

#include "pipeline.h"
#include "strbuf.h"

int route_systems(const char *systems_json, const char *event_type, unsigned enabled, unsigned *systems,
		  long *skipped, char *reason, size_t reason_len)
{
	unsigned routed = 0;
	int rc = 0;
	cJSON *list;

	list = systems_json ? cJSON_Parse(systems_json) : NULL;
	if (cJSON_IsArray(list) && cJSON_GetArraySize(list) > 0) {
		const cJSON *item;
		cJSON_ArrayForEach(item, list) {
			unsigned system = cJSON_IsString(item) ? system_from_name(item->valuestring) : 0;
			if (!system) {
				char name[80];
				snprintf(name, sizeof(name), "%s", cJSON_IsString(item) ? item->valuestring : "null");
				utf8_truncate(name, 64);
				snprintf(reason, reason_len, "unknown system '%s' in affects_systems", name);
				rc = -1;
				break;
			}
			routed |= system;
		}
	} else {
		routed = route_for_event(event_type)->systems;
	}
	cJSON_Delete(list);
	for (unsigned bit = 1; bit <= SYSTEM_TREASURY; bit <<= 1)
		if ((routed & bit) && !(enabled & bit)) {
			routed &= ~bit;
			(*skipped)++;
		}
	*systems = routed;
	return rc;
}

/* "mediaid, coliseum" for a mask of systems. */
static void system_list(unsigned systems, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (unsigned bit = 1; bit <= SYSTEM_TREASURY && used < size; bit <<= 1)
		if (systems & bit)
			used += (size_t)snprintf(out + used, size - used, "%s%s", used ? ", " : "", system_name(bit));
}

unsigned route_blocked(unsigned routed, unsigned enabled, unsigned paused, char *reason, size_t reason_len)
{
	unsigned disabled = routed & ~enabled, held = routed & paused & enabled;
	char paused_list[64], disabled_list[64];

	system_list(held, paused_list, sizeof(paused_list));
	system_list(disabled, disabled_list, sizeof(disabled_list));
	if (held && disabled)
		snprintf(reason, reason_len, "paused: %s; disabled: %s", paused_list, disabled_list);
	else if (held)
		snprintf(reason, reason_len, "paused: %s", paused_list);
	else if (disabled)
		snprintf(reason, reason_len, "disabled: %s", disabled_list);
	else if (reason_len > 0)
		reason[0] = '\0';
	return held | disabled;
}

void route_entry(const struct processor *p, struct entry *e, struct batch_totals *totals)
{
	char reason[200];
	unsigned blocked;

	e->outcome = OUTCOME_OK;
	if (!e->payload && e->payload_bytes > 0) {
		/* Over the limit: the claim sent its size, not its text. */
		entry_fail(e, OUTCOME_PERMANENT, "payload: payload is %lld bytes, limit %zu", e->payload_bytes,
			   p->config.max_payload_bytes);
		return;
	}
	if (payload_parse(e->payload, e->payload_len, p->config.max_payload_bytes, &e->info, reason,
			  sizeof(reason)) < 0) {
		entry_fail(e, OUTCOME_PERMANENT, "payload: %s", reason);
		return;
	}
	if (!e->has_time) {
		entry_fail(e, OUTCOME_PERMANENT, "entry: timestamp is NULL or out of range");
		return;
	}
	/*
	 * Routed to every system it names; one it may not reach now holds the whole entry back
	 * (its effects commit together), postponed, never processed without it.
	 */
	if (route_systems(e->systems_json, e->event_type, SYSTEM_ALL, &e->systems, &totals->skipped_systems, reason,
			  sizeof(reason)) < 0) {
		entry_fail(e, OUTCOME_PERMANENT, "route: %s", reason);
		return;
	}
	blocked = route_blocked(e->systems, p->config.enabled_systems, p->config.paused_systems, reason, sizeof(reason));
	if (blocked) {
		for (unsigned bit = 1; bit <= SYSTEM_TREASURY; bit <<= 1)
			totals->skipped_systems += (blocked & bit) ? 1 : 0;
		entry_fail(e, OUTCOME_POSTPONED, "%s", reason);
	}
}
