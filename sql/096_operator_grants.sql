-- The operator tables of 050_pause.sql and 051_reprocess_history.sql for the daemon's role, which
-- 090_roles.sql creates: passportd reads the pause state, and `passportd pause`, `resume` and
-- `reprocess` usually run as passportd. The history is append-only for it.
GRANT SELECT, INSERT, UPDATE ON passport_pause TO passportd;
GRANT SELECT, INSERT ON passport_reprocess_history TO passportd;
