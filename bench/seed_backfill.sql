-- The seed's original migration of the legacy logs (two INSERT ... SELECT statements): the
-- baseline that `passport-migrate backfill` is measured against in P3. Copied as the seed had it.
INSERT INTO passport_entries (
  user_id, event_type, event_category, payload, timestamp
)
SELECT
  user_id,
  'player.track_' || event_type as event_type,
  'interaction' as event_category,
  jsonb_build_object(
    'content_id', content_id,
    'content_title', content_title,
    'content_artist', content_artist,
    'play_duration_seconds', play_duration_seconds,
    'progress_percentage', progress_percentage,
    'session_id', session_id
  ) as payload,
  created_at as timestamp
FROM listening_history;

INSERT INTO passport_entries (
  user_id, event_type, event_category, payload, timestamp
)
SELECT
  user_id,
  event_type as event_type,
  'interaction' as event_category,
  jsonb_build_object(
    'content_id', content_id,
    'external_content_id', external_content_id,
    'metadata', metadata,
    'session_id', session_id
  ) as payload,
  timestamp
FROM media_engagement_log;
