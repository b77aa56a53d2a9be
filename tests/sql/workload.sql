-- A deterministic workload for tests, the demo and benchmarks: the same arguments always give the
-- same ids, timestamps, payloads and vectors (no random(), no gen_random_uuid()), so two databases
-- loaded alike can be compared bit for bit. Requires tests/sql/upstream.sql and the project schema.
--
--   SELECT passport_test_workload(n_users, entries_per_user [, base_time]);
--
-- Users: every user has a fan media_ids row; every 5th user is also an artist (artist_profiles and
-- an artist-role row); every 7th fan row starts with a NULL embedding. Tracks: 4 per artist, 3 of
-- 4 with an entity_dna vector; artists have vectors of their own. Entries: a mix of appendix A
-- types over 90 days, targeting tracks, artists or events, with some money events and late ones.
CREATE OR REPLACE FUNCTION passport_test_hash(key text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT ('x' || substr(md5(key), 1, 12))::bit(48)::bigint
$$;

CREATE OR REPLACE FUNCTION passport_test_uuid(key text) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT md5(key)::uuid
$$;

CREATE OR REPLACE FUNCTION passport_test_vector(key text, scale real DEFAULT 1) RETURNS real[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_agg((scale * sin((passport_test_hash(key) % 100000) * 0.001 + g * 0.37))::real ORDER BY g)
      FROM generate_series(1, 1536) AS g
$$;

CREATE OR REPLACE FUNCTION passport_test_workload(n_users int, per_user int,
                                                  base_time timestamptz DEFAULT '2026-01-01 00:00:00+00')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n_artists int := greatest(1, n_users / 5);
    inserted bigint;
BEGIN
    INSERT INTO media_ids (id, user_uuid, role, profile_embedding, content_flags)
    SELECT passport_test_uuid('fan-row-' || u), passport_test_uuid('user-' || u), 'fan',
           CASE WHEN u % 7 = 0 THEN NULL ELSE passport_test_vector('fan-dna-' || u, 0.2) END,
           CASE WHEN u % 11 = 0 THEN '{"dna_preferences": {"learningRate": 0.3, "spatialMultiplier": 2}}'::jsonb
                ELSE '{}'::jsonb END
      FROM generate_series(1, n_users) AS u
    ON CONFLICT DO NOTHING;

    INSERT INTO artist_profiles (id, user_id, artist_name)
    SELECT passport_test_uuid('artist-' || a), passport_test_uuid('user-' || (a * 5)), 'Artist ' || a
      FROM generate_series(1, n_artists) AS a
    ON CONFLICT DO NOTHING;

    INSERT INTO media_ids (id, user_uuid, role, profile_embedding)
    SELECT passport_test_uuid('artist-row-' || a), passport_test_uuid('user-' || (a * 5)), 'artist',
           passport_test_vector('artist-dna-' || a)
      FROM generate_series(1, n_artists) AS a
    ON CONFLICT DO NOTHING;

    INSERT INTO content_items (id, artist_id, title, metadata)
    SELECT passport_test_uuid('track-' || t), passport_test_uuid('artist-' || (1 + t % n_artists)), 'Track ' || t,
           jsonb_build_object('genre', (ARRAY['pop', 'rock', 'jazz', 'techno'])[1 + t % 4])
      FROM generate_series(1, n_artists * 4) AS t
    ON CONFLICT DO NOTHING;

    INSERT INTO entity_dna (entity_type, entity_id, embedding)
    SELECT 'track', passport_test_uuid('track-' || t), passport_test_vector('track-dna-' || t)
      FROM generate_series(1, n_artists * 4) AS t WHERE t % 4 <> 0
    ON CONFLICT DO NOTHING;

    INSERT INTO entity_dna (entity_type, entity_id, embedding)
    SELECT 'artist', passport_test_uuid('artist-' || a), passport_test_vector('artist-vec-' || a)
      FROM generate_series(1, n_artists) AS a
    ON CONFLICT DO NOTHING;

    INSERT INTO entity_dna (entity_type, entity_id, embedding)
    SELECT 'event', passport_test_uuid('event-' || v), passport_test_vector('event-vec-' || v)
      FROM generate_series(1, 10) AS v
    ON CONFLICT DO NOTHING;

    WITH raw AS (
        SELECT u, k, passport_test_hash('entry-' || u || '-' || k) AS h
          FROM generate_series(1, n_users) AS u, generate_series(1, per_user) AS k
    ), typed AS (
        SELECT u, k, h,
               (ARRAY['player.track_played', 'player.track_played', 'player.track_played',
                      'player.track_completed', 'player.track_completed', 'player.track_skipped',
                      'player.track_favorited', 'social.content_liked', 'discovery.artist_discovered',
                      'concierto.event_attended', 'concierto.vote_cast', 'concierto.ticket_purchased',
                      'treasury.subscription_started', 'mediaid.setup_completed', 'custom.unknown_type',
                      'player.track_paused'])[1 + (h % 16)::int] AS event_type
          FROM raw
    )
    INSERT INTO passport_entries (id, user_id, event_type, event_category, payload, affects_systems,
                                  source, session_id, "timestamp")
    SELECT passport_test_uuid('entry-' || u || '-' || k),
           passport_test_uuid('user-' || u),
           event_type,
           split_part(event_type, '.', 1),
           CASE
               WHEN event_type LIKE 'player.%' THEN
                   jsonb_build_object('trackId', passport_test_uuid('track-' || (1 + (h / 16) % (n_artists * 4)))::text)
               WHEN event_type IN ('social.content_liked', 'discovery.artist_discovered') THEN
                   jsonb_build_object('artist_id', passport_test_uuid('artist-' || (1 + (h / 16) % n_artists))::text)
               WHEN event_type = 'concierto.vote_cast' THEN
                   jsonb_build_object('eventId', passport_test_uuid('event-' || (1 + (h / 16) % 10))::text,
                                      'weight', 1 + (h / 16) % 5)
               WHEN event_type IN ('concierto.ticket_purchased', 'treasury.subscription_started') THEN
                   jsonb_build_object('event_id', passport_test_uuid('event-' || (1 + (h / 16) % 10))::text,
                                      'amount_cents', 500 + (h / 16) % 10000)
               WHEN event_type = 'concierto.event_attended' THEN
                   jsonb_build_object('targetId', passport_test_uuid('event-' || (1 + (h / 16) % 12))::text,
                                      'targetType', 'event')
               ELSE '{}'::jsonb
           END,
           '{}'::text[],
           (ARRAY['web', 'ios', 'android', 'kiosk'])[1 + (h / 7) % 4],
           'session-' || u,
           -- Mostly in order per user, every 10th entry late by up to 20 days.
           base_time + make_interval(secs => (k * 86400.0 * 90 / greatest(per_user, 1))
                                             - CASE WHEN k % 10 = 0 THEN ((h / 3) % (20 * 86400)) ELSE 0 END
                                             + (h % 3600))
      FROM typed
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END
$$;
