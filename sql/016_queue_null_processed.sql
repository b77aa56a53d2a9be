-- The seed's processed column is nullable, and an entry whose processed is NULL has not been
-- processed: passportd treats it as due (`processed IS NOT TRUE`), and status and reprocess count
-- and select it. These indexes serve exactly that predicate and replace the two of 002, whose
-- `NOT processed` leaves such entries out (the planner cannot use them for the new predicate).
CREATE INDEX IF NOT EXISTS passport_entries_due_idx
    ON passport_entries ("timestamp", id) WHERE processed IS NOT TRUE AND dead_at IS NULL;
CREATE INDEX IF NOT EXISTS passport_entries_due_user_idx
    ON passport_entries (user_id, "timestamp", id) WHERE processed IS NOT TRUE AND dead_at IS NULL;
DROP INDEX IF EXISTS passport_entries_pending_idx;
DROP INDEX IF EXISTS passport_entries_pending_user_idx;
