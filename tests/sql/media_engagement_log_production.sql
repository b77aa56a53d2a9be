-- media_engagement_log, the older production layout (SPEC 2.3): naive UTC timestamps, text
-- session ids, client info, no external_content_id and no created_at.
CREATE TABLE IF NOT EXISTS media_engagement_log (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid,
    content_id   uuid,
    event_type   text NOT NULL,
    metadata     jsonb,
    "timestamp"  timestamp without time zone DEFAULT (now() AT TIME ZONE 'utc'),
    is_anonymous boolean DEFAULT true,
    session_id   text,
    user_agent   text,
    ip_address   inet
);
