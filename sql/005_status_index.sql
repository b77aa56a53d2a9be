-- `passportd status` counts entries processed in the last minute and hour; without this index
-- that would read every processed row.
CREATE INDEX IF NOT EXISTS passport_entries_processed_at_idx
    ON passport_entries (processed_at) WHERE processed_at IS NOT NULL;
