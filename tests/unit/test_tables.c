/* test_tables: appendix A and B of the SPEC as data, checked row by row against the spec text. */
#include <string.h>

#include "tables.h"
#include "task.h"

#define W_TOL 0.0

static void check_influence(const char *event_type, double cultural, double behavioral,
			    double economic, double spatial, double base)
{
	const struct influence *influence = influence_for_event(event_type);

	ASSERT_TRUE(influence != NULL);
	ASSERT_EQ_DBL(influence->weight[0], cultural, W_TOL);
	ASSERT_EQ_DBL(influence->weight[1], behavioral, W_TOL);
	ASSERT_EQ_DBL(influence->weight[2], economic, W_TOL);
	ASSERT_EQ_DBL(influence->weight[3], spatial, W_TOL);
	ASSERT_EQ_DBL(influence->base, base, W_TOL);
}

static void check_route(const char *event_type, unsigned systems, const char *category)
{
	const struct route *route = route_for_event(event_type);

	ASSERT_TRUE(route != NULL);
	ASSERT_EQ_INT(route->systems, systems);
	ASSERT_STR_EQ(route->category, category);
}

static void test_tables_sorted(void)
{
	size_t i;

	ASSERT_TRUE(influence_table_event_type(0) != NULL);
	for (i = 1; influence_table_event_type(i) != NULL; i++)
		ASSERT_TRUE(strcmp(influence_table_event_type(i - 1),
				   influence_table_event_type(i)) < 0);
	ASSERT_EQ_INT(i, 34); /* appendix A has 34 named types */

	ASSERT_TRUE(route_table_event_type(0) != NULL);
	for (i = 1; route_table_event_type(i) != NULL; i++)
		ASSERT_TRUE(strcmp(route_table_event_type(i - 1), route_table_event_type(i)) < 0);
	ASSERT_EQ_INT(i, 61); /* appendix B expands to 61 named types */

	/* Every row is found by its own lookup (bsearch only works on a sorted table). */
	for (i = 0; influence_table_event_type(i) != NULL; i++)
		ASSERT_TRUE(influence_for_event(influence_table_event_type(i)) !=
			    influence_for_event("no.such_type"));
	for (i = 0; route_table_event_type(i) != NULL; i++)
		ASSERT_TRUE(route_for_event(route_table_event_type(i)) !=
			    route_for_event("no.such_type"));
}

static void test_influence_rows(void)
{
	/* Every row of appendix A, copied from the spec text. */
	check_influence("player.track_played", .8, .6, .2, .3, .5);
	check_influence("player.track_completed", .9, .8, .3, .3, .7);
	check_influence("player.track_skipped", .5, .7, .1, .2, .3);
	check_influence("player.track_favorited", .95, .9, .4, .3, .9);
	check_influence("player.track_paused", .3, .5, .1, .2, .2);
	check_influence("player.playlist_created", .85, .9, .3, .2, .8);
	check_influence("player.queue_updated", .6, .7, .2, .3, .4);
	check_influence("concierto.vote_cast", .9, .7, .4, .8, .9);
	check_influence("concierto.event_rsvp", .7, .8, .5, .9, .7);
	check_influence("concierto.event_attended", .85, .75, .6, 1.0, .9);
	check_influence("concierto.ticket_purchased", .7, .6, 1.0, .9, 1.0);
	check_influence("concierto.event_viewed", .5, .6, .2, .6, .3);
	check_influence("concierto.event_created", .8, 1.0, .7, .95, .95);
	check_influence("concierto.artist_scored", .85, .8, .3, .7, .8);
	check_influence("social.user_followed", .85, .7, .3, .2, .7);
	check_influence("social.content_shared", .7, .9, .3, .4, .8);
	check_influence("social.content_liked", .75, .65, .25, .25, .6);
	check_influence("social.content_commented", .8, .85, .3, .3, .75);
	check_influence("treasury.subscription_started", .6, .7, 1.0, .1, 1.0);
	check_influence("treasury.transaction_created", .5, .6, 1.0, .2, .95);
	check_influence("treasury.payout_requested", .1, .3, .5, .05, .2);
	check_influence("discovery.search_performed", .6, .8, .1, .3, .4);
	check_influence("discovery.recommendation_clicked", .7, .6, .2, .3, .5);
	check_influence("discovery.artist_discovered", .8, .7, .25, .3, .6);
	check_influence("discovery.filter_applied", .65, .75, .15, .4, .45);
	check_influence("locker.item_unlocked", .7, .75, .4, .2, .7);
	check_influence("locker.content_viewed", .65, .6, .3, .15, .5);
	check_influence("locker.reward_claimed", .5, .8, .6, .1, .6);
	check_influence("cals.link_shared", .65, .85, .4, .35, .75);
	check_influence("cals.link_opened", .55, .5, .2, .3, .4);
	check_influence("mediaid.setup_completed", .9, .5, .2, .6, 1.0);
	check_influence("mediaid.dna_evolved", 0, 0, 0, 0, 0);
	check_influence("mediaid.simulator_used", .1, .4, .05, .05, .15);
	check_influence("mediaid.consent_updated", 0, .2, 0, 0, .1);
}

static void test_influence_defaults(void)
{
	/* Unknown, prefix-only, suffix-only, wrong case, padded, empty and NULL: all default. */
	check_influence("no.such_type", .5, .5, .5, .5, .5);
	check_influence("track_played", .5, .5, .5, .5, .5);
	check_influence("player", .5, .5, .5, .5, .5);
	check_influence("player.", .5, .5, .5, .5, .5);
	check_influence("Player.Track_Played", .5, .5, .5, .5, .5);
	check_influence("player.track_played ", .5, .5, .5, .5, .5);
	check_influence("player.track_playedx", .5, .5, .5, .5, .5);
	check_influence("legacy.play", .5, .5, .5, .5, .5);
	check_influence("player.track_resumed", .5, .5, .5, .5, .5); /* routed, but not in A */
	check_influence("", .5, .5, .5, .5, .5);
	check_influence(NULL, .5, .5, .5, .5, .5);
	ASSERT_TRUE(influence_for_event(NULL) == influence_for_event("no.such_type"));
}

static void test_route_rows(void)
{
	const unsigned m = SYSTEM_MEDIAID, c = SYSTEM_COLISEUM, t = SYSTEM_TREASURY;

	/* Every expanded row of appendix B, copied from the spec text. */
	check_route("mediaid.setup_started", m, "trinity");
	check_route("mediaid.setup_completed", m, "trinity");
	check_route("mediaid.dna_generated", m, "trinity");
	check_route("mediaid.dna_evolved", m, "trinity");
	check_route("mediaid.consent_updated", m, "trinity");
	check_route("mediaid.dna_match_calculated", m | c, "trinity");
	check_route("mediaid.simulator_used", m | c, "trinity");
	check_route("mediaid.profile_viewed", c, "interaction");
	check_route("treasury.transaction_created", t | c, "transaction");
	check_route("treasury.payout_requested", t | c, "transaction");
	check_route("treasury.payout_completed", t | c, "transaction");
	check_route("treasury.attribution_credited", t | c, "transaction");
	check_route("treasury.subscription_renewed", t | c, "transaction");
	check_route("treasury.subscription_cancelled", t | c, "transaction");
	check_route("treasury.balance_updated", t, "transaction");
	check_route("treasury.subscription_started", t | m | c, "transaction");
	check_route("coliseum.metric_tracked", c, "trinity");
	check_route("coliseum.milestone_reached", c, "trinity");
	check_route("coliseum.leaderboard_updated", c, "trinity");
	check_route("coliseum.report_generated", c, "trinity");
	check_route("player.track_played", m | c, "interaction");
	check_route("player.track_completed", m | c, "interaction");
	check_route("player.track_skipped", m | c, "interaction");
	check_route("player.track_favorited", m | c, "interaction");
	check_route("player.playlist_created", c, "interaction");
	check_route("player.queue_updated", c, "interaction");
	check_route("concierto.event_created", c, "interaction");
	check_route("concierto.event_viewed", c, "interaction");
	check_route("concierto.event_rsvp", m | c, "interaction");
	check_route("concierto.event_attended", m | c, "interaction");
	check_route("concierto.vote_cast", m | c, "interaction");
	check_route("concierto.artist_scored", m | c, "interaction");
	check_route("concierto.ticket_purchased", t | m | c, "transaction");
	check_route("locker.item_unlocked", c, "interaction");
	check_route("locker.content_viewed", c, "interaction");
	check_route("locker.reward_claimed", t | c, "interaction");
	check_route("cals.link_shared", c, "interaction");
	check_route("cals.link_opened", c, "interaction");
	check_route("cals.thread_created", c, "interaction");
	check_route("cals.message_sent", c, "interaction");
	check_route("social.user_followed", m | c, "social");
	check_route("social.user_unfollowed", m | c, "social");
	check_route("social.content_liked", m | c, "social");
	check_route("social.content_commented", c, "social");
	check_route("social.content_shared", c, "social");
	check_route("discovery.search_performed", c, "interaction");
	check_route("discovery.filter_applied", c, "interaction");
	check_route("discovery.artist_discovered", m | c, "interaction");
	check_route("discovery.recommendation_clicked", m | c, "interaction");
	check_route("access.login", c, "access");
	check_route("access.logout", c, "access");
	check_route("access.permission_granted", c, "access");
	check_route("access.permission_revoked", c, "access");
	check_route("access.system_accessed", c, "access");
	check_route("access.oauth_connected", m | c, "access");
	check_route("system.error_occurred", 0, "system");
	check_route("system.notification_sent", c, "system");
	check_route("system.email_sent", c, "system");
	check_route("player.track_paused", c, "interaction");
	check_route("player.track_resumed", c, "interaction");
	check_route("player.track_downloaded", c, "interaction");
	ASSERT_EQ_INT(SYSTEM_ALL, t | m | c);
}

static void test_route_defaults(void)
{
	/* legacy.*: any type with that prefix, even one that names a routed type after it. */
	check_route("legacy.whatever", 0, "interaction");
	check_route("legacy.", 0, "interaction");
	check_route("legacy.player.track_played", 0, "interaction");
	check_route("legacy.content_remove", 0, "interaction");
	/* Anything else. */
	check_route("legacy", 0, "interaction");
	check_route("Legacy.play", 0, "interaction");
	check_route("no.such_type", 0, "interaction");
	check_route("player.track_played ", 0, "interaction");
	check_route("PLAYER.TRACK_PLAYED", 0, "interaction");
	check_route("mediaid", 0, "interaction");
	check_route("", 0, "interaction");
	check_route(NULL, 0, "interaction");
}

static void test_system_names(void)
{
	ASSERT_EQ_INT(system_from_name("mediaid"), SYSTEM_MEDIAID);
	ASSERT_EQ_INT(system_from_name("coliseum"), SYSTEM_COLISEUM);
	ASSERT_EQ_INT(system_from_name("treasury"), SYSTEM_TREASURY);
	ASSERT_EQ_INT(system_from_name("MediaID"), 0);
	ASSERT_EQ_INT(system_from_name("TREASURY"), 0);
	ASSERT_EQ_INT(system_from_name("mediaid "), 0);
	ASSERT_EQ_INT(system_from_name("media"), 0);
	ASSERT_EQ_INT(system_from_name("concierto"), 0);
	ASSERT_EQ_INT(system_from_name(""), 0);
	ASSERT_EQ_INT(system_from_name(NULL), 0);

	ASSERT_STR_EQ(system_name(SYSTEM_MEDIAID), "mediaid");
	ASSERT_STR_EQ(system_name(SYSTEM_COLISEUM), "coliseum");
	ASSERT_STR_EQ(system_name(SYSTEM_TREASURY), "treasury");
	ASSERT_STR_EQ(system_name(0), "unknown");
	ASSERT_STR_EQ(system_name(SYSTEM_MEDIAID | SYSTEM_COLISEUM), "unknown");
	ASSERT_STR_EQ(system_name(1u << 7), "unknown");

	/* The names round-trip. */
	ASSERT_EQ_INT(system_from_name(system_name(SYSTEM_MEDIAID)), SYSTEM_MEDIAID);
	ASSERT_EQ_INT(system_from_name(system_name(SYSTEM_COLISEUM)), SYSTEM_COLISEUM);
	ASSERT_EQ_INT(system_from_name(system_name(SYSTEM_TREASURY)), SYSTEM_TREASURY);
}

int main(void)
{
	test_tables_sorted();
	test_influence_rows();
	test_influence_defaults();
	test_route_rows();
	test_route_defaults();
	test_system_names();
	TEST_PASS();
}
