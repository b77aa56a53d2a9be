-- passportd writes NULL for a coliseum_metrics event_id / brand_id that references no row (SPEC 4),
-- so that an upstream foreign key never fails a batch. To check, it reads the referenced column:
-- that of the column's foreign key, else the id of a table named events / brands. Grant it that
-- column (and, where the table has row level security, a policy to see its rows; see
-- sql/010_api_roles.sql). A foreign key added later needs the same grant; passportd warns at
-- start-up when it is missing.
DO $$
DECLARE
    ref record;
BEGIN
    FOR ref IN
        SELECT c.confrelid::regclass AS target, ra.attname AS refcol
          FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
          JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]
         WHERE c.conrelid = to_regclass('coliseum_metrics') AND c.contype = 'f'
           AND cardinality(c.conkey) = 1 AND a.attname IN ('event_id', 'brand_id')
        UNION
        SELECT to_regclass(name), 'id' FROM unnest(ARRAY['events', 'brands']) AS name
         WHERE to_regclass(name) IS NOT NULL
    LOOP
        BEGIN
            EXECUTE format('GRANT SELECT (%I) ON %s TO passportd', ref.refcol, ref.target);
            IF (SELECT relrowsecurity FROM pg_class WHERE oid = ref.target)
               AND NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = ref.target AND polname = 'passport_roles') THEN
                EXECUTE format('CREATE POLICY passport_roles ON %s TO passportd, passport_migrate USING (true) WITH CHECK (true)',
                               ref.target);
            END IF;
        EXCEPTION WHEN insufficient_privilege OR undefined_column THEN
            RAISE WARNING 'could not let passportd read %.%: %', ref.target, ref.refcol, SQLERRM;
        END;
    END LOOP;
END
$$;
