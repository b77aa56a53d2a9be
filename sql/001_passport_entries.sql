-- The seed layout of passport_entries, for databases that do not have it yet.
-- Production already has this table (with a foreign key to auth.users); nothing here changes it.
CREATE TABLE IF NOT EXISTS passport_entries (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid,
    mediaid_id          uuid,
    event_type          text NOT NULL,
    event_category      text NOT NULL,
    payload             jsonb DEFAULT '{}'::jsonb,
    affects_systems     text[] DEFAULT '{}'::text[],
    processed           boolean DEFAULT false,
    processed_at        timestamptz,
    processing_attempts integer DEFAULT 0,
    source              text DEFAULT 'web',
    session_id          text,
    "timestamp"         timestamptz DEFAULT now(),
    created_at          timestamptz DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_passport_entries_user_timestamp
    ON passport_entries (user_id, "timestamp" DESC);
CREATE INDEX IF NOT EXISTS idx_passport_entries_unprocessed
    ON passport_entries (processed, "timestamp") WHERE NOT processed;
CREATE INDEX IF NOT EXISTS idx_passport_entries_payload
    ON passport_entries USING gin (payload);
