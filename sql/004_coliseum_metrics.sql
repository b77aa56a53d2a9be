-- coliseum_metrics as upstream defines it, for databases that do not have it, plus the link to
-- the entry that produced each row (unique: an entry yields at most one metric).
DO $$
BEGIN
    IF to_regclass('coliseum_metrics') IS NULL THEN
        CREATE TABLE coliseum_metrics (
            id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id          uuid,
            artist_id        uuid,
            event_id         uuid,
            track_id         uuid,
            brand_id         uuid,
            metric_type      text NOT NULL,
            metric_value     numeric DEFAULT 1,
            metric_unit      text,
            source           text CHECK (source IN ('web', 'ios', 'android', 'api', 'system', 'admin')),
            session_id       text,
            dna_match_score  numeric CHECK (dna_match_score >= 0 AND dna_match_score <= 1),
            dna_domain       text,
            metadata         jsonb,
            "timestamp"      timestamptz NOT NULL,
            created_at       timestamptz DEFAULT now()
        );
        IF to_regclass('artist_profiles') IS NOT NULL THEN
            ALTER TABLE coliseum_metrics ADD CONSTRAINT coliseum_metrics_artist_id_fkey
                FOREIGN KEY (artist_id) REFERENCES artist_profiles (id) ON DELETE SET NULL;
        END IF;
    END IF;
END
$$;

ALTER TABLE coliseum_metrics ADD COLUMN IF NOT EXISTS passport_entry_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS coliseum_metrics_passport_entry_id_key
    ON coliseum_metrics (passport_entry_id);
