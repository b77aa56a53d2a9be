-- Deterministic legacy logs for tests, the demo and benchmarks: the same arguments always give the
-- same ids, users, types and times (md5-based, no random()). Requires tests/sql/upstream.sql and
-- a media_engagement_log of either layout (or none: then only listening_history is filled).
--
--   SELECT passport_test_legacy(n_users, history_rows, engagement_rows [, base_time]);
--
-- Users and tracks are those of tests/sql/workload.sql (md5('user-' || u), md5('track-' || t)), so
-- the two load together. listening_history: every SPEC §2.3 type plus an unmapped 'rewound', times
-- spread over the 180 days before base_time. media_engagement_log: the types of its layout (the
-- production layout's extra ones included), every 8th row anonymous, the production layout with
-- naive UTC timestamps, text session ids and client info. Loading this file also loads the demo's
-- small sample (last line); tests that need exact counts truncate the two tables first.
CREATE OR REPLACE FUNCTION passport_test_legacy(n_users int, history_rows int, engagement_rows int,
                                                base_time timestamptz DEFAULT '2026-01-01 00:00:00+00')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n_tracks int := greatest(1, n_users / 5) * 4;
    canonical boolean;
    inserted bigint;
    total bigint := 0;
BEGIN
    INSERT INTO listening_history (id, user_id, content_id, content_type, content_title, content_artist,
                                   event_type, play_duration_seconds, total_duration_seconds,
                                   progress_percentage, session_id, device_type, created_at, updated_at)
    SELECT md5('lh-' || i)::uuid,
           md5('user-' || (1 + h % n_users))::uuid,
           md5('track-' || (1 + (h / 7) % n_tracks))::uuid,
           'track',
           'Track ' || (1 + (h / 7) % n_tracks),
           'Artist ' || (1 + (h / 7) % greatest(1, n_users / 5)),
           (ARRAY['played', 'played', 'played', 'played', 'completed', 'completed', 'skipped', 'paused',
                  'resumed', 'added', 'added_to_queue', 'downloaded', 'rewound'])[1 + (h / 11) % 13],
           (h / 13) % 240,
           240,
           round(((h / 17) % 1001) / 10.0, 1),
           md5('session-' || (1 + h % n_users) || '-' || i / 20)::uuid,
           (ARRAY['ios', 'android', 'web'])[1 + (h / 19) % 3],
           base_time - make_interval(secs => (h / 23) % (180 * 86400)),
           base_time
      FROM (SELECT i, ('x' || substr(md5('lh-hash-' || i), 1, 12))::bit(48)::bigint AS h
              FROM generate_series(1, history_rows) AS i) AS g
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    total := total + inserted;

    IF to_regclass('media_engagement_log') IS NULL OR engagement_rows <= 0 THEN
        RETURN total;
    END IF;
    canonical := EXISTS (SELECT 1 FROM information_schema.columns
                          WHERE table_name = 'media_engagement_log' AND column_name = 'external_content_id'
                            AND table_schema = ANY (current_schemas(false)));
    IF canonical THEN
        INSERT INTO media_engagement_log (id, user_id, content_id, external_content_id, event_type, metadata,
                                          "timestamp", is_anonymous, session_id, created_at)
        SELECT md5('mel-' || i)::uuid,
               CASE WHEN i % 8 = 0 THEN NULL ELSE md5('user-' || (1 + h % n_users))::uuid END,
               md5('track-' || (1 + (h / 7) % n_tracks))::uuid,
               'ext-' || (h / 7) % 1000,
               (ARRAY['track_play', 'track_play', 'track_complete', 'track_pause', 'track_skip', 'content_add',
                      'content_remove', 'content_like', 'content_unlike', 'playlist_add', 'playlist_remove',
                      'download', 'share'])[1 + (h / 11) % 13],
               jsonb_build_object('position', (h / 13) % 240, 'source', 'legacy'),
               base_time - make_interval(secs => (h / 23) % (180 * 86400)),
               i % 8 = 0,
               md5('mel-session-' || i / 20)::uuid,
               base_time - make_interval(secs => (h / 23) % (180 * 86400))
          FROM (SELECT i, ('x' || substr(md5('mel-hash-' || i), 1, 12))::bit(48)::bigint AS h
                  FROM generate_series(1, engagement_rows) AS i) AS g
        ON CONFLICT DO NOTHING;
    ELSE
        -- The older production layout: columns by name through dynamic SQL, as a canonical
        -- table would not compile this statement.
        EXECUTE $sql$
        INSERT INTO media_engagement_log (id, user_id, content_id, event_type, metadata, "timestamp",
                                          is_anonymous, session_id, user_agent, ip_address)
        SELECT md5('mel-' || i)::uuid,
               CASE WHEN i % 8 = 0 THEN NULL ELSE md5('user-' || (1 + h % $1))::uuid END,
               md5('track-' || (1 + (h / 7) % $2))::uuid,
               (ARRAY['track_play', 'play', 'track_complete', 'track_pause', 'track_skip', 'view', 'like',
                      'share', 'download', 'mediaid_setup_completed', 'content_add'])[1 + (h / 11) % 11],
               jsonb_build_object('position', (h / 13) % 240, 'source', 'legacy'),
               ($3 - make_interval(secs => (h / 23) % (180 * 86400))) AT TIME ZONE 'UTC',
               i % 8 = 0,
               'sess-' || i / 20,
               'LegacyAgent/' || (h / 29) % 5,
               ('10.0.' || (h / 31) % 256 || '.' || (h / 37) % 256)::inet
          FROM (SELECT i, ('x' || substr(md5('mel-hash-' || i), 1, 12))::bit(48)::bigint AS h
                  FROM generate_series(1, $4) AS i) AS g
        ON CONFLICT DO NOTHING
        $sql$ USING n_users, n_tracks, base_time, engagement_rows;
    END IF;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN total + inserted;
END
$$;

-- The demo's sample: 30 users (those of `passport_test_workload(30, ...)`), 300 + 200 legacy rows.
DO $$ BEGIN PERFORM passport_test_legacy(30, 300, 200); END $$;
