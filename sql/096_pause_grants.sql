-- passport_pause (050_pause.sql) for the daemon's role, which 090_roles.sql creates: passportd
-- reads the pause state, and `passportd pause` / `resume` usually run as passportd.
GRANT SELECT, INSERT, UPDATE ON passport_pause TO passportd;
