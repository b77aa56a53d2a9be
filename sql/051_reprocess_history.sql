-- What `passportd reprocess` requeued, and what the entry looked like before: the error, the
-- attempts and when it died are wiped on the entry by a requeue, so they are kept here (one row
-- per entry per requeue, never updated).
CREATE TABLE IF NOT EXISTS passport_reprocess_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    passport_entry_id uuid NOT NULL,
    requeued_at timestamptz NOT NULL DEFAULT now(),
    requeued_by text NOT NULL DEFAULT current_user,
    previous_error text,
    previous_attempts integer,
    previous_dead_at timestamptz,
    previous_next_attempt_at timestamptz,
    processed_here boolean NOT NULL DEFAULT false -- reprocess --now: processed by the command itself
);

CREATE INDEX IF NOT EXISTS passport_reprocess_history_entry_idx
    ON passport_reprocess_history (passport_entry_id, requeued_at);
