-- The benchmark workload: deterministic (same arguments, same rows, bit for bit), built on the
-- helpers of tests/sql/workload.sql (passport_test_hash, passport_test_uuid, passport_test_vector,
-- passport_test_workload), which must be loaded first.
--
--   passport_bench_users(n_users)       users, fan and artist DNA rows, artists, tracks, entity_dna
--   passport_bench_entries(n_users, per_user [, first_k [, processed]])
--                                       per_user entries for each user, numbered from first_k,
--                                       with a production-like mix of appendix A types
--   passport_bench_late(n_users, every) make every `every`-th user's entries of the first 30 days
--                                       late: their DNA clock already stands at day 30, as if
--                                       newer entries had been processed before these arrived
--   passport_bench_legacy(n_rows, n_users)
--                                       n_rows legacy rows, half listening_history and half
--                                       media_engagement_log, for the backfill benchmark
--
-- Entry k of a user happens at base + k * 54 h (40 entries span 90 days) plus up to an hour of
-- jitter; every 10th entry is inserted up to 5 days out of order.
CREATE OR REPLACE FUNCTION passport_bench_users(n_users int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM passport_test_workload(n_users, 0);
END
$$;

-- The mix, per mille. Plays dominate, as on a music platform; money events are about 1 %.
CREATE OR REPLACE FUNCTION passport_bench_mix() RETURNS TABLE (event_type text, lo int, hi int)
LANGUAGE sql IMMUTABLE AS $$
    WITH weights (event_type, weight, ord) AS (
        VALUES ('player.track_played', 400, 1), ('player.track_completed', 180, 2),
               ('player.track_skipped', 110, 3), ('player.track_paused', 40, 4),
               ('player.track_favorited', 30, 5), ('player.queue_updated', 20, 6),
               ('player.playlist_created', 5, 7), ('social.content_liked', 45, 8),
               ('social.content_shared', 10, 9), ('social.user_followed', 10, 10),
               ('discovery.search_performed', 30, 11), ('discovery.recommendation_clicked', 20, 12),
               ('discovery.artist_discovered', 15, 13), ('concierto.event_viewed', 15, 14),
               ('concierto.event_rsvp', 5, 15), ('concierto.vote_cast', 8, 16),
               ('concierto.event_attended', 3, 17), ('concierto.ticket_purchased', 4, 18),
               ('treasury.subscription_started', 2, 19), ('treasury.transaction_created', 4, 20),
               ('locker.content_viewed', 10, 21), ('cals.link_shared', 5, 22),
               ('mediaid.simulator_used', 3, 23), ('mediaid.consent_updated', 2, 24),
               ('social.content_commented', 10, 25), ('discovery.filter_applied', 10, 26)
    ), cumulative AS (
        SELECT event_type, sum(weight) OVER (ORDER BY ord) - weight AS lo, sum(weight) OVER (ORDER BY ord) AS hi,
               sum(weight) OVER () AS total
          FROM weights
    )
    SELECT event_type, (lo * 1000 / total)::int, (hi * 1000 / total)::int FROM cumulative
$$;

-- catalogue_users: the number of users passport_bench_users made (default n_users); the entries
-- target that catalogue (catalogue_users / 5 artists, 4 tracks each), so that P5 can give P1's
-- 5,000 users a 25,000-user catalogue.
CREATE OR REPLACE FUNCTION passport_bench_entries(n_users int, per_user int, first_k int DEFAULT 1,
                                                  processed boolean DEFAULT false,
                                                  base_time timestamptz DEFAULT '2026-01-01 00:00:00+00',
                                                  catalogue_users int DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n_artists int := greatest(1, coalesce(catalogue_users, n_users) / 5);
    n_tracks int := greatest(1, coalesce(catalogue_users, n_users) / 5) * 4;
    inserted bigint;
BEGIN
    CREATE TEMP TABLE bench_new_entries ON COMMIT DROP AS
    WITH raw AS (
        SELECT u, k, passport_test_hash('bench-entry-' || u || '-' || k) AS h
          FROM generate_series(1, n_users) AS u, generate_series(first_k, first_k + per_user - 1) AS k
    )
    SELECT r.u, r.k, r.h, m.event_type,
           passport_test_uuid('track-' || (1 + (r.h / 1000) % n_tracks))::text AS track,
           passport_test_uuid('artist-' || (1 + (r.h / 1000) % n_artists))::text AS artist,
           passport_test_uuid('event-' || (1 + (r.h / 1000) % 10))::text AS event
      FROM raw r
      JOIN passport_bench_mix() m ON (r.h % 1000) >= m.lo AND (r.h % 1000) < m.hi;

    INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, affects_systems, processed,
                                  processed_at, source, session_id, "timestamp", created_at)
    SELECT passport_test_uuid('bench-entry-' || u || '-' || k),
           passport_test_uuid('user-' || u),
           event_type,
           CASE split_part(event_type, '.', 1)
               WHEN 'player' THEN 'interaction' WHEN 'social' THEN 'social'
               WHEN 'treasury' THEN 'transaction' WHEN 'mediaid' THEN 'trinity'
               ELSE 'interaction' END,
           CASE
               WHEN event_type LIKE 'player.%' THEN
                   jsonb_build_object('trackId', track, 'positionMs', (h / 7) % 240000,
                                      'context', (ARRAY['playlist', 'album', 'radio', 'search'])[1 + (h / 11) % 4])
               WHEN event_type IN ('social.content_liked', 'social.content_shared', 'social.content_commented') THEN
                   jsonb_build_object('content_id', track, 'content_type', 'track')
               WHEN event_type IN ('social.user_followed', 'discovery.artist_discovered') THEN
                   jsonb_build_object('artistId', artist)
               WHEN event_type = 'discovery.recommendation_clicked' THEN
                   jsonb_build_object('track_id', track, 'rank', 1 + (h / 13) % 20)
               WHEN event_type IN ('discovery.search_performed', 'discovery.filter_applied') THEN
                   jsonb_build_object('query', 'q' || (h / 17) % 500)
               WHEN event_type = 'concierto.vote_cast' THEN
                   jsonb_build_object('eventId', event, 'weight', 1 + (h / 16) % 5)
               WHEN event_type = 'concierto.event_attended' THEN
                   jsonb_build_object('targetId', event, 'targetType', 'event')
               WHEN event_type IN ('concierto.event_viewed', 'concierto.event_rsvp') THEN
                   jsonb_build_object('event_id', event)
               WHEN event_type IN ('concierto.ticket_purchased', 'treasury.subscription_started',
                                   'treasury.transaction_created') THEN
                   jsonb_build_object('event_id', event, 'amount_cents', 500 + (h / 16) % 10000,
                                      'correlation_id', 'bench-' || u || '-' || k)
               ELSE '{}'::jsonb
           END,
           -- Most writers leave the systems to the default route; some name them.
           CASE WHEN (h / 19) % 4 = 0 AND event_type LIKE 'player.track_%' AND event_type <> 'player.track_paused'
                THEN '{mediaid,coliseum}'::text[] ELSE '{}'::text[] END,
           processed,
           CASE WHEN processed THEN base_time + make_interval(secs => k * 194400.0 + 60) END,
           (ARRAY['web', 'ios', 'android', 'api'])[1 + (h / 7) % 4],
           'session-' || u || '-' || k / 5,
           base_time + make_interval(secs => k * 194400.0 + (h % 3600)
                                            - CASE WHEN k % 10 = 0 THEN (h / 3) % (5 * 86400) ELSE 0 END),
           base_time + make_interval(secs => k * 194400.0 + 3600)
      FROM bench_new_entries
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;

    -- Every money event has its ledger row (treasury links them).
    INSERT INTO ledger_entries (id, correlation_id, amount_cents, passport_entry_id)
    SELECT passport_test_uuid('bench-ledger-' || u || '-' || k), 'bench-' || u || '-' || k, 500 + (h / 16) % 10000,
           CASE WHEN processed THEN passport_test_uuid('bench-entry-' || u || '-' || k) END
      FROM bench_new_entries
     WHERE event_type IN ('concierto.ticket_purchased', 'treasury.subscription_started', 'treasury.transaction_created')
    ON CONFLICT DO NOTHING;
    DROP TABLE bench_new_entries;
    RETURN inserted;
END
$$;

CREATE OR REPLACE FUNCTION passport_bench_late(n_users int, every int,
                                               base_time timestamptz DEFAULT '2026-01-01 00:00:00+00')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    updated bigint;
BEGIN
    UPDATE media_ids m SET dna_clock = base_time + interval '30 days'
      FROM generate_series(1, n_users) AS u
     WHERE u % every = 0 AND m.id = passport_test_uuid('fan-row-' || u);
    GET DIAGNOSTICS updated = ROW_COUNT;
    RETURN updated;
END
$$;

CREATE OR REPLACE FUNCTION passport_bench_legacy(n_rows int, n_users int,
                                                 base_time timestamptz DEFAULT '2025-01-01 00:00:00+00')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n_tracks int := greatest(1, n_users / 5) * 4;
    half int := n_rows / 2;
BEGIN
    INSERT INTO listening_history (id, user_id, media_id_profile_id, content_id, content_type, content_title,
                                   content_artist, content_provider, event_type, event_context,
                                   play_duration_seconds, total_duration_seconds, progress_percentage, play_count,
                                   session_id, device_type, device_name, explicit_content, artwork_url, created_at,
                                   updated_at)
    SELECT passport_test_uuid('lh-' || i), passport_test_uuid('user-' || (1 + h % n_users)),
           'fan-' || (1 + h % n_users), passport_test_uuid('track-' || (1 + (h / 1000) % n_tracks)), 'track',
           'Track ' || (1 + (h / 1000) % n_tracks), 'Artist ' || (1 + (h / 1000) % n_tracks) / 4, 'buckets',
           CASE WHEN h % 100 < 50 THEN 'played' WHEN h % 100 < 75 THEN 'completed' WHEN h % 100 < 90 THEN 'skipped'
                WHEN h % 100 < 95 THEN 'paused' WHEN h % 100 < 97 THEN 'resumed' WHEN h % 100 < 98 THEN 'added'
                WHEN h % 100 < 99 THEN 'added_to_queue' ELSE 'downloaded' END,
           (ARRAY['playlist', 'album', 'radio', 'search'])[1 + (h / 11) % 4],
           (h / 7) % 240, 240, round(((h / 7) % 240) / 2.4, 2), 1 + (h / 5) % 30,
           passport_test_uuid('lh-session-' || (1 + h % n_users) || '-' || i / 20),
           (ARRAY['ios', 'android', 'web'])[1 + (h / 3) % 3], 'device ' || (h / 3) % 50, (h / 9) % 10 = 0,
           'https://cdn.example/art/' || (h / 1000) % n_tracks || '.jpg',
           base_time + make_interval(secs => i * 31.0), base_time + make_interval(secs => i * 31.0)
      FROM (SELECT i, passport_test_hash('lh-' || i) AS h FROM generate_series(1, half) AS i) AS s
    ON CONFLICT DO NOTHING;

    INSERT INTO media_engagement_log (id, user_id, content_id, external_content_id, event_type, metadata,
                                      "timestamp", is_anonymous, session_id, created_at)
    SELECT passport_test_uuid('mel-' || i),
           CASE WHEN h % 20 = 0 THEN NULL ELSE passport_test_uuid('user-' || (1 + h % n_users)) END,
           CASE WHEN h % 10 = 1 THEN NULL ELSE passport_test_uuid('track-' || (1 + (h / 1000) % n_tracks)) END,
           CASE WHEN h % 10 = 1 THEN 'spotify:track:' || (h / 1000) % 100000 END,
           CASE WHEN h % 100 < 40 THEN 'track_play' WHEN h % 100 < 60 THEN 'track_complete'
                WHEN h % 100 < 70 THEN 'track_skip' WHEN h % 100 < 75 THEN 'track_pause'
                WHEN h % 100 < 83 THEN 'content_like' WHEN h % 100 < 86 THEN 'share'
                WHEN h % 100 < 91 THEN 'playlist_add' WHEN h % 100 < 94 THEN 'content_add'
                WHEN h % 100 < 97 THEN 'download' WHEN h % 100 < 98 THEN 'content_remove'
                WHEN h % 100 < 99 THEN 'content_unlike' ELSE 'playlist_remove' END,
           jsonb_build_object('device', (ARRAY['ios', 'android', 'web'])[1 + (h / 3) % 3],
                              'position', (h / 7) % 240, 'app_version', '4.' || (h / 13) % 20),
           base_time + make_interval(secs => i * 31.0 + 7), h % 20 = 0,
           passport_test_uuid('mel-session-' || (1 + h % n_users) || '-' || i / 20),
           base_time + make_interval(secs => i * 31.0 + 8)
      FROM (SELECT i, passport_test_hash('mel-' || i) AS h FROM generate_series(1, n_rows - half) AS i) AS s
    ON CONFLICT DO NOTHING;
    RETURN n_rows;
END
$$;
