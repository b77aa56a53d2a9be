-- Upstream and legacy tables as production has them (SPEC 2.2 and 2.3), for tests and the demo.
-- The project's sql/ does not create these. profile_embedding is vector(1536) when pgvector is
-- installed in the database, else real[].
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.users (id uuid PRIMARY KEY, email text);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'media_role') THEN
        CREATE TYPE media_role AS ENUM ('fan', 'artist', 'brand', 'developer', 'admin');
    END IF;
END
$$;

DO $$
DECLARE
    embedding_type text := CASE WHEN EXISTS (SELECT 1 FROM pg_type WHERE typname = 'vector')
                                THEN 'vector(1536)' ELSE 'real[]' END;
BEGIN
    EXECUTE format($sql$
        CREATE TABLE IF NOT EXISTS media_ids (
            id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_uuid         uuid NOT NULL,
            interests         text[],
            genre_preferences text[],
            content_flags     jsonb,
            location_code     text,
            profile_embedding %s,
            privacy_settings  jsonb,
            version           integer NOT NULL DEFAULT 1,
            is_active         boolean DEFAULT true,
            role              media_role DEFAULT 'fan',
            created_at        timestamptz DEFAULT now(),
            updated_at        timestamptz DEFAULT now(),
            UNIQUE (user_uuid, role)
        )$sql$, embedding_type);
END
$$;

CREATE TABLE IF NOT EXISTS artist_profiles (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid UNIQUE NOT NULL,
    artist_name text NOT NULL,
    bio         text,
    created_at  timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS content_items (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    artist_id    uuid REFERENCES artist_profiles (id),
    title        text,
    content_type text DEFAULT 'track',
    metadata     jsonb,
    created_at   timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ledger_entries (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    correlation_id    text NOT NULL,
    passport_entry_id uuid,
    amount_cents      bigint,
    created_at        timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS listening_history (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid NOT NULL,
    media_id_profile_id    text,
    content_id             uuid NOT NULL,
    content_type           text,
    content_title          text,
    content_artist         text,
    content_provider       text,
    event_type             text,
    event_context          text,
    play_duration_seconds  integer,
    total_duration_seconds integer,
    progress_percentage    numeric,
    play_count             integer,
    session_id             uuid,
    device_type            text,
    device_name            text,
    explicit_content       boolean,
    artwork_url            text,
    created_at             timestamptz DEFAULT now(),
    updated_at             timestamptz DEFAULT now()
);
