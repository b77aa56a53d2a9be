-- media_engagement_log, canonical layout (SPEC 2.3).
CREATE TABLE IF NOT EXISTS media_engagement_log (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid,
    content_id          uuid,
    external_content_id text,
    event_type          text NOT NULL,
    metadata            jsonb,
    "timestamp"         timestamptz DEFAULT now(),
    is_anonymous        boolean DEFAULT false,
    session_id          uuid,
    created_at          timestamptz DEFAULT now()
);
