-- Least privilege: the roles the daemon and the migration tool log in as. They are created
-- without a password (NOLOGIN until an administrator sets one or maps them, e.g.
-- ALTER ROLE passportd LOGIN PASSWORD '...'); this file only grants what each needs.
--
-- passportd: reads entries and DNA facts, writes processing state, DNA, evolution, metrics and
-- ledger links. It cannot delete anything, change other columns of media_ids or ledger_entries,
-- or create objects.
-- passport_migrate: the backfill and entity-dna steps (apply the schema as the tables' owner).
--
-- On Supabase, connect passportd directly (port 5432), not through the transaction pooler:
-- LISTEN needs a session. Behind a transaction pooler, run passportd with --no-listen.
-- Roles belong to the cluster, not the database: schema runs on two databases of one cluster
-- may race to create them, so "already exists" is fine.
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

GRANT USAGE ON SCHEMA public TO passportd, passport_migrate;

GRANT SELECT, UPDATE (processed, processed_at, processing_attempts, last_error, next_attempt_at, dead_at)
    ON passport_entries TO passportd;
GRANT SELECT, UPDATE (profile_embedding, dna_clock, version, updated_at) ON media_ids TO passportd;
GRANT SELECT ON entity_dna, content_items, artist_profiles, passport_schema_migrations TO passportd;
GRANT SELECT, INSERT ON dna_evolution TO passportd;
GRANT USAGE ON SEQUENCE dna_evolution_id_seq TO passportd;
GRANT SELECT, INSERT ON coliseum_metrics TO passportd;

GRANT SELECT, INSERT ON passport_entries TO passport_migrate;
GRANT SELECT ON media_ids, artist_profiles, passport_schema_migrations TO passport_migrate;
GRANT SELECT, INSERT, UPDATE ON entity_dna TO passport_migrate;
GRANT SELECT, INSERT, UPDATE ON passport_backfill_progress TO passport_migrate;

DO $$
BEGIN
    IF to_regclass('ledger_entries') IS NOT NULL THEN
        GRANT SELECT, UPDATE (passport_entry_id) ON ledger_entries TO passportd;
    END IF;
    IF to_regclass('listening_history') IS NOT NULL THEN
        GRANT SELECT ON listening_history TO passport_migrate;
    END IF;
    IF to_regclass('media_engagement_log') IS NOT NULL THEN
        GRANT SELECT ON media_engagement_log TO passport_migrate;
    END IF;
END
$$;

-- Backfill keeps legacy rows whose user was deleted from auth.users (as anonymous entries); it
-- needs to see which users exist. Where the migrating role may not grant on auth (Supabase
-- reserves that schema), backfill warns and skips that check.
DO $$
BEGIN
    IF to_regclass('auth.users') IS NOT NULL THEN
        GRANT USAGE ON SCHEMA auth TO passport_migrate;
        GRANT SELECT (id) ON auth.users TO passport_migrate;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'could not grant passport_migrate read access to auth.users: %', SQLERRM;
END
$$;
