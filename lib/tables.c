/* tables: the influence weights (appendix A) and default routes (appendix B) as sorted static data. */
#include "tables.h"

#include <stdlib.h>
#include <string.h>

struct influence_row {
	const char *event_type;
	struct influence influence;
};

struct route_row {
	const char *event_type;
	struct route route;
};

/*
 * Appendix A, one row per full event type. Both tables are sorted by strcmp
 * order of event_type because the lookups use bsearch; test_tables checks it,
 * so a row added out of order fails the unit tests rather than a lookup.
 */
static const struct influence_row influence_rows[] = {
	{"cals.link_opened", {{0.55, 0.5, 0.2, 0.3}, 0.4}},
	{"cals.link_shared", {{0.65, 0.85, 0.4, 0.35}, 0.75}},
	{"concierto.artist_scored", {{0.85, 0.8, 0.3, 0.7}, 0.8}},
	{"concierto.event_attended", {{0.85, 0.75, 0.6, 1.0}, 0.9}},
	{"concierto.event_created", {{0.8, 1.0, 0.7, 0.95}, 0.95}},
	{"concierto.event_rsvp", {{0.7, 0.8, 0.5, 0.9}, 0.7}},
	{"concierto.event_viewed", {{0.5, 0.6, 0.2, 0.6}, 0.3}},
	{"concierto.ticket_purchased", {{0.7, 0.6, 1.0, 0.9}, 1.0}},
	{"concierto.vote_cast", {{0.9, 0.7, 0.4, 0.8}, 0.9}},
	{"discovery.artist_discovered", {{0.8, 0.7, 0.25, 0.3}, 0.6}},
	{"discovery.filter_applied", {{0.65, 0.75, 0.15, 0.4}, 0.45}},
	{"discovery.recommendation_clicked", {{0.7, 0.6, 0.2, 0.3}, 0.5}},
	{"discovery.search_performed", {{0.6, 0.8, 0.1, 0.3}, 0.4}},
	{"locker.content_viewed", {{0.65, 0.6, 0.3, 0.15}, 0.5}},
	{"locker.item_unlocked", {{0.7, 0.75, 0.4, 0.2}, 0.7}},
	{"locker.reward_claimed", {{0.5, 0.8, 0.6, 0.1}, 0.6}},
	{"mediaid.consent_updated", {{0.0, 0.2, 0.0, 0.0}, 0.1}},
	{"mediaid.dna_evolved", {{0.0, 0.0, 0.0, 0.0}, 0.0}},
	{"mediaid.setup_completed", {{0.9, 0.5, 0.2, 0.6}, 1.0}},
	{"mediaid.simulator_used", {{0.1, 0.4, 0.05, 0.05}, 0.15}},
	{"player.playlist_created", {{0.85, 0.9, 0.3, 0.2}, 0.8}},
	{"player.queue_updated", {{0.6, 0.7, 0.2, 0.3}, 0.4}},
	{"player.track_completed", {{0.9, 0.8, 0.3, 0.3}, 0.7}},
	{"player.track_favorited", {{0.95, 0.9, 0.4, 0.3}, 0.9}},
	{"player.track_paused", {{0.3, 0.5, 0.1, 0.2}, 0.2}},
	{"player.track_played", {{0.8, 0.6, 0.2, 0.3}, 0.5}},
	{"player.track_skipped", {{0.5, 0.7, 0.1, 0.2}, 0.3}},
	{"social.content_commented", {{0.8, 0.85, 0.3, 0.3}, 0.75}},
	{"social.content_liked", {{0.75, 0.65, 0.25, 0.25}, 0.6}},
	{"social.content_shared", {{0.7, 0.9, 0.3, 0.4}, 0.8}},
	{"social.user_followed", {{0.85, 0.7, 0.3, 0.2}, 0.7}},
	{"treasury.payout_requested", {{0.1, 0.3, 0.5, 0.05}, 0.2}},
	{"treasury.subscription_started", {{0.6, 0.7, 1.0, 0.1}, 1.0}},
	{"treasury.transaction_created", {{0.5, 0.6, 1.0, 0.2}, 0.95}},
};

/* Any other type: 0.5 for all four weights and the base intensity. */
static const struct influence default_influence = {{0.5, 0.5, 0.5, 0.5}, 0.5};

#define MEDIAID_COLISEUM (SYSTEM_MEDIAID | SYSTEM_COLISEUM)
#define TREASURY_COLISEUM (SYSTEM_TREASURY | SYSTEM_COLISEUM)

/* Appendix B, each grouped line of the spec expanded to one row per event type. */
static const struct route_row route_rows[] = {
	{"access.login", {SYSTEM_COLISEUM, "access"}},
	{"access.logout", {SYSTEM_COLISEUM, "access"}},
	{"access.oauth_connected", {MEDIAID_COLISEUM, "access"}},
	{"access.permission_granted", {SYSTEM_COLISEUM, "access"}},
	{"access.permission_revoked", {SYSTEM_COLISEUM, "access"}},
	{"access.system_accessed", {SYSTEM_COLISEUM, "access"}},
	{"cals.link_opened", {SYSTEM_COLISEUM, "interaction"}},
	{"cals.link_shared", {SYSTEM_COLISEUM, "interaction"}},
	{"cals.message_sent", {SYSTEM_COLISEUM, "interaction"}},
	{"cals.thread_created", {SYSTEM_COLISEUM, "interaction"}},
	{"coliseum.leaderboard_updated", {SYSTEM_COLISEUM, "trinity"}},
	{"coliseum.metric_tracked", {SYSTEM_COLISEUM, "trinity"}},
	{"coliseum.milestone_reached", {SYSTEM_COLISEUM, "trinity"}},
	{"coliseum.report_generated", {SYSTEM_COLISEUM, "trinity"}},
	{"concierto.artist_scored", {MEDIAID_COLISEUM, "interaction"}},
	{"concierto.event_attended", {MEDIAID_COLISEUM, "interaction"}},
	{"concierto.event_created", {SYSTEM_COLISEUM, "interaction"}},
	{"concierto.event_rsvp", {MEDIAID_COLISEUM, "interaction"}},
	{"concierto.event_viewed", {SYSTEM_COLISEUM, "interaction"}},
	{"concierto.ticket_purchased", {SYSTEM_ALL, "transaction"}},
	{"concierto.vote_cast", {MEDIAID_COLISEUM, "interaction"}},
	{"discovery.artist_discovered", {MEDIAID_COLISEUM, "interaction"}},
	{"discovery.filter_applied", {SYSTEM_COLISEUM, "interaction"}},
	{"discovery.recommendation_clicked", {MEDIAID_COLISEUM, "interaction"}},
	{"discovery.search_performed", {SYSTEM_COLISEUM, "interaction"}},
	{"locker.content_viewed", {SYSTEM_COLISEUM, "interaction"}},
	{"locker.item_unlocked", {SYSTEM_COLISEUM, "interaction"}},
	{"locker.reward_claimed", {TREASURY_COLISEUM, "interaction"}},
	{"mediaid.consent_updated", {SYSTEM_MEDIAID, "trinity"}},
	{"mediaid.dna_evolved", {SYSTEM_MEDIAID, "trinity"}},
	{"mediaid.dna_generated", {SYSTEM_MEDIAID, "trinity"}},
	{"mediaid.dna_match_calculated", {MEDIAID_COLISEUM, "trinity"}},
	{"mediaid.profile_viewed", {SYSTEM_COLISEUM, "interaction"}},
	{"mediaid.setup_completed", {SYSTEM_MEDIAID, "trinity"}},
	{"mediaid.setup_started", {SYSTEM_MEDIAID, "trinity"}},
	{"mediaid.simulator_used", {MEDIAID_COLISEUM, "trinity"}},
	{"player.playlist_created", {SYSTEM_COLISEUM, "interaction"}},
	{"player.queue_updated", {SYSTEM_COLISEUM, "interaction"}},
	{"player.track_completed", {MEDIAID_COLISEUM, "interaction"}},
	{"player.track_downloaded", {SYSTEM_COLISEUM, "interaction"}},
	{"player.track_favorited", {MEDIAID_COLISEUM, "interaction"}},
	{"player.track_paused", {SYSTEM_COLISEUM, "interaction"}},
	{"player.track_played", {MEDIAID_COLISEUM, "interaction"}},
	{"player.track_resumed", {SYSTEM_COLISEUM, "interaction"}},
	{"player.track_skipped", {MEDIAID_COLISEUM, "interaction"}},
	{"social.content_commented", {SYSTEM_COLISEUM, "social"}},
	{"social.content_liked", {MEDIAID_COLISEUM, "social"}},
	{"social.content_shared", {SYSTEM_COLISEUM, "social"}},
	{"social.user_followed", {MEDIAID_COLISEUM, "social"}},
	{"social.user_unfollowed", {MEDIAID_COLISEUM, "social"}},
	{"system.email_sent", {SYSTEM_COLISEUM, "system"}},
	{"system.error_occurred", {0, "system"}},
	{"system.notification_sent", {SYSTEM_COLISEUM, "system"}},
	{"treasury.attribution_credited", {TREASURY_COLISEUM, "transaction"}},
	{"treasury.balance_updated", {SYSTEM_TREASURY, "transaction"}},
	{"treasury.payout_completed", {TREASURY_COLISEUM, "transaction"}},
	{"treasury.payout_requested", {TREASURY_COLISEUM, "transaction"}},
	{"treasury.subscription_cancelled", {TREASURY_COLISEUM, "transaction"}},
	{"treasury.subscription_renewed", {TREASURY_COLISEUM, "transaction"}},
	{"treasury.subscription_started", {SYSTEM_ALL, "transaction"}},
	{"treasury.transaction_created", {TREASURY_COLISEUM, "transaction"}},
};

/* legacy.* (backfilled types without a mapping) and any other type: no systems. */
static const struct route legacy_route = {0, "interaction"};
static const struct route default_route = {0, "interaction"};

#define LEGACY_PREFIX "legacy."
#define ARRAY_LENGTH(a) (sizeof(a) / sizeof((a)[0]))

/* bsearch comparator: key is the event type string, element a row whose first member is one. */
static int compare_event_type(const void *key, const void *element)
{
	const char *const *row_event_type = element;
	return strcmp(key, *row_event_type);
}

const struct influence *influence_for_event(const char *event_type)
{
	const struct influence_row *row;

	if (event_type == NULL)
		return &default_influence;
	row = bsearch(event_type, influence_rows, ARRAY_LENGTH(influence_rows),
		      sizeof(influence_rows[0]), compare_event_type);
	return row != NULL ? &row->influence : &default_influence;
}

const struct route *route_for_event(const char *event_type)
{
	const struct route_row *row;

	if (event_type == NULL)
		return &default_route;
	if (strncmp(event_type, LEGACY_PREFIX, strlen(LEGACY_PREFIX)) == 0)
		return &legacy_route;
	row = bsearch(event_type, route_rows, ARRAY_LENGTH(route_rows), sizeof(route_rows[0]),
		      compare_event_type);
	return row != NULL ? &row->route : &default_route;
}

unsigned system_from_name(const char *name)
{
	if (name == NULL)
		return 0;
	if (strcmp(name, "mediaid") == 0)
		return SYSTEM_MEDIAID;
	if (strcmp(name, "coliseum") == 0)
		return SYSTEM_COLISEUM;
	if (strcmp(name, "treasury") == 0)
		return SYSTEM_TREASURY;
	return 0;
}

const char *system_name(unsigned system)
{
	switch (system) {
	case SYSTEM_MEDIAID:
		return "mediaid";
	case SYSTEM_COLISEUM:
		return "coliseum";
	case SYSTEM_TREASURY:
		return "treasury";
	default:
		return "unknown";
	}
}

const char *influence_table_event_type(size_t index)
{
	return index < ARRAY_LENGTH(influence_rows) ? influence_rows[index].event_type : NULL;
}

const char *route_table_event_type(size_t index)
{
	return index < ARRAY_LENGTH(route_rows) ? route_rows[index].event_type : NULL;
}
