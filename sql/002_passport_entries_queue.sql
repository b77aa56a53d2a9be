-- Queue bookkeeping added by the project. Every column is nullable so existing writers keep working.
ALTER TABLE passport_entries
    ADD COLUMN IF NOT EXISTS last_error      text,
    ADD COLUMN IF NOT EXISTS next_attempt_at timestamptz,
    ADD COLUMN IF NOT EXISTS dead_at         timestamptz,
    ADD COLUMN IF NOT EXISTS legacy_source   text,
    ADD COLUMN IF NOT EXISTS legacy_id       text;

-- Backfill idempotence: one entry per legacy row.
CREATE UNIQUE INDEX IF NOT EXISTS passport_entries_legacy_key
    ON passport_entries (legacy_source, legacy_id);

-- Claiming walks only the rows that can still become due, so its cost does not grow with the
-- number of processed (or dead) rows. The first index finds the oldest due entries, the second
-- all due entries of the users being claimed.
CREATE INDEX IF NOT EXISTS passport_entries_pending_idx
    ON passport_entries ("timestamp", id) WHERE NOT processed AND dead_at IS NULL;
CREATE INDEX IF NOT EXISTS passport_entries_pending_user_idx
    ON passport_entries (user_id, "timestamp", id) WHERE NOT processed AND dead_at IS NULL;

-- One notification per INSERT statement (not per row): a 10,000-row insert wakes the daemons once.
CREATE OR REPLACE FUNCTION passport_entries_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('passport_entries', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS passport_entries_notify ON passport_entries;
CREATE TRIGGER passport_entries_notify
    AFTER INSERT ON passport_entries
    FOR EACH STATEMENT EXECUTE FUNCTION passport_entries_notify();
