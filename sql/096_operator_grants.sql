-- The operator tables of 050_pause.sql and 051_reprocess_history.sql for the daemon's role, which
-- 090_roles.sql creates: passportd reads the pause state, and `passportd pause`, `resume` and
-- `reprocess` usually run as passportd. The history is append-only for it.
GRANT SELECT, INSERT, UPDATE ON passport_pause TO passportd;
GRANT SELECT, INSERT ON passport_reprocess_history TO passportd;

-- Closed to the public API like every project table (sql/010_api_roles.sql): where Supabase's
-- API roles exist, row level security with a policy for the project's roles only, and no
-- privileges for anon and authenticated (on the tables and the history's identity sequence).
DO $$
DECLARE
    api_roles text;
    name      text;
    target    regclass;
    sequence  regclass;
BEGIN
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO api_roles
      FROM pg_roles WHERE rolname IN ('anon', 'authenticated');
    IF api_roles IS NULL THEN
        RETURN;
    END IF;
    FOREACH name IN ARRAY ARRAY['passport_pause', 'passport_reprocess_history'] LOOP
        target := to_regclass(name);
        CONTINUE WHEN target IS NULL;
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
        EXECUTE format('REVOKE ALL ON TABLE %s FROM %s', target, api_roles);
        FOR sequence IN
            SELECT d.objid::regclass FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             WHERE d.refobjid = target AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LOOP
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %s', sequence, api_roles);
        END LOOP;
        IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = target AND polname = 'passport_roles') THEN
            EXECUTE format('CREATE POLICY passport_roles ON %s TO passportd, passport_migrate USING (true) WITH CHECK (true)',
                           target);
        END IF;
    END LOOP;
END
$$;
