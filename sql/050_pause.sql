-- Pause and resume (`passportd pause [SYSTEM...]`, `passportd resume [SYSTEM...]`): one row per
-- system ('all' pauses every system), read by every passportd at most once per poll interval.
-- Entries that touch a paused system stay unprocessed (postponed, their attempts untouched).
-- Rows are never deleted: resume sets paused to false, so the history of who paused what stays.
CREATE TABLE IF NOT EXISTS passport_pause (
    system text PRIMARY KEY CHECK (system IN ('all', 'mediaid', 'coliseum', 'treasury')),
    paused boolean NOT NULL DEFAULT true,
    changed_at timestamptz NOT NULL DEFAULT now(),
    changed_by text NOT NULL DEFAULT current_user,
    reason text
);

-- The grants to passportd are in 096_operator_grants.sql, after 090_roles.sql creates the role.
