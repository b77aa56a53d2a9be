-- Where an interrupted `passport-migrate backfill` resumes: per legacy source and time window, the
-- last legacy id copied. Each batch updates its row in the statement that inserts the batch, so the
-- row never claims more than was committed. This only saves re-reading: correctness (nothing
-- duplicated, nothing skipped) comes from the unique (legacy_source, legacy_id) of passport_entries.
-- A completed run (completed_at set) is not resumed; the next run starts again from the first id.
CREATE TABLE IF NOT EXISTS passport_backfill_progress (
    legacy_source text NOT NULL,
    window_key    text NOT NULL,            -- the run's --since/--until, normalised to UTC
    last_id       text,                     -- the highest legacy id of the last committed batch
    rows_seen     bigint NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (legacy_source, window_key)
);

-- The backfill's role records its progress here. On a fresh database this file runs before
-- sql/090_roles.sql creates the role, so that file must grant the same; without the grant the
-- backfill still works (it warns, and an interrupted run then re-reads from the start).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'passport_migrate') THEN
        GRANT SELECT, INSERT, UPDATE ON passport_backfill_progress TO passport_migrate;
    END IF;
END
$$;
