-- Closed to the public API. Supabase serves every table of `public` to its API roles `anon` (the
-- public key) and `authenticated` (any signed-in user), and its default privileges grant them all
-- rights on every new table. Where those roles exist, every table the project creates gets row
-- level security with no policy for them (no policy = no rows) and their privileges are revoked,
-- so the public key can neither read users' behaviour history nor erase it.
--
-- passport_entries and coliseum_metrics are created here only when upstream has not created them:
-- where row level security is already enabled on them, upstream's policies and grants rule and are
-- left alone; where it is not, they are closed like the project's own tables (a public table
-- without row level security is open to anyone with the public key).
--
-- The project's own roles keep working: on every table they use that has row level security
-- (ours, and upstream's where upstream enabled it) a policy lets them see the rows; their grants
-- (sql/090_roles.sql) still decide what they may do. The roles are created here when missing
-- because on a fresh database this file runs before sql/090_roles.sql.
--
-- A later migration that creates a table must close it the same way. README ("Supabase") says
-- what to grant a read-only dashboard.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'passportd') THEN
        CREATE ROLE passportd NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'passport_migrate') THEN
        CREATE ROLE passport_migrate NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

DO $$
DECLARE
    -- Tables only the project creates, and tables it creates when upstream has not.
    own_tables    text[] := ARRAY['passport_schema_migrations', 'passport_backfill_progress', 'entity_dna',
                                  'dna_evolution'];
    shared_tables text[] := ARRAY['passport_entries', 'coliseum_metrics'];
    api_roles     text;
    name          text;
    target        regclass;
    sequence      regclass;
BEGIN
    SELECT string_agg(quote_ident(rolname), ', ' ORDER BY rolname) INTO api_roles
      FROM pg_roles WHERE rolname IN ('anon', 'authenticated');
    IF api_roles IS NULL THEN
        RETURN;
    END IF;

    FOREACH name IN ARRAY own_tables || shared_tables LOOP
        target := to_regclass(name);
        CONTINUE WHEN target IS NULL;
        IF name = ANY (shared_tables) AND (SELECT relrowsecurity FROM pg_class WHERE oid = target) THEN
            CONTINUE; -- upstream's table, upstream's policies
        END IF;
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
        EXECUTE format('REVOKE ALL ON TABLE %s FROM %s', target, api_roles);
        -- Sequences the table owns (dna_evolution.id): default privileges granted them too.
        FOR sequence IN
            SELECT d.objid::regclass FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
             WHERE d.refobjid = target AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LOOP
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM %s', sequence, api_roles);
        END LOOP;
    END LOOP;
END
$$;

-- A policy for the project's roles on every table they use that has row level security.
DO $$
DECLARE
    name   text;
    target regclass;
BEGIN
    FOREACH name IN ARRAY ARRAY['passport_schema_migrations', 'passport_backfill_progress', 'entity_dna',
                                'dna_evolution', 'passport_entries', 'coliseum_metrics', 'media_ids',
                                'content_items', 'artist_profiles', 'ledger_entries', 'listening_history',
                                'media_engagement_log', 'auth.users'] LOOP
        target := to_regclass(name);
        CONTINUE WHEN target IS NULL;
        CONTINUE WHEN NOT (SELECT relrowsecurity FROM pg_class WHERE oid = target);
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = target AND polname = 'passport_roles');
        BEGIN
            EXECUTE format('CREATE POLICY passport_roles ON %s TO passportd, passport_migrate USING (true) WITH CHECK (true)',
                           target);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'row level security is enabled on %, and this role may not add a policy for passportd and passport_migrate there: %',
                target, SQLERRM;
        END;
    END LOOP;
END
$$;
