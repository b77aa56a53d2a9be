-- Target vectors ready to send, where entity_dna.embedding is real[] (pgvector's vector is sent
-- as one copy already: there the columns stay NULL and there is no trigger). Sending a real[] (array_send) costs a call
-- per element: ~56 us for 1,536 floats, on every read of a vector the daemon's cache misses,
-- which with a catalogue larger than the cache is most of them. embedding_send holds those very
-- bytes, computed once per write by a trigger, so a read is a copy (5-7x cheaper); reads of a
-- real[] DNA column are otherwise unchanged.
--
-- embedding_send_xid is the transaction that computed them. passportd uses embedding_send only
-- while that is still the row's xmin, i.e. the row has not been written since without the trigger
-- (disabled triggers, session_replication_role = replica, a restore of the data alone) and was
-- not written inside a subtransaction; otherwise it sends embedding itself, as before. So a stale
-- copy is never used. The one case the check cannot see: the same transaction writes the row
-- again after turning the trigger off.
--
-- The steps (README, "Changing the schema of a live database"): the columns, in a short ALTER
-- of their own (they exist whatever the column's type; with vector(1536) they stay NULL); the
-- trigger, for real[] only; the copy's storage (12 KiB that hardly compress and are read whole:
-- out of line, uncompressed, no statistics), which also ends the trigger's transaction; then the
-- copies of the rows written before the trigger, under row locks only: readers are not blocked,
-- the application's writers only on the rows being written.
ALTER TABLE entity_dna ADD COLUMN IF NOT EXISTS embedding_send bytea,
                       ADD COLUMN IF NOT EXISTS embedding_send_xid xid;

-- The bytes array_send gives, for a real[] embedding (NULL for anything else: the column's type
-- may change later, and a write must never fail here).
CREATE OR REPLACE FUNCTION passport_entity_dna_send() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.embedding IS NOT NULL AND pg_typeof(NEW.embedding) = 'real[]'::regtype THEN
        NEW.embedding_send := array_send(NEW.embedding);
    ELSE
        NEW.embedding_send := NULL;
    END IF;
    NEW.embedding_send_xid := pg_current_xact_id()::xid;
    RETURN NEW;
END
$$;

DO $$
BEGIN
    IF format_type((SELECT atttypid FROM pg_attribute WHERE attrelid = 'entity_dna'::regclass
                       AND attname = 'embedding' AND NOT attisdropped), NULL) = 'real[]'
       AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'entity_dna'::regclass
                          AND tgname = 'passport_entity_dna_send') THEN
        CREATE TRIGGER passport_entity_dna_send BEFORE INSERT OR UPDATE ON entity_dna
            FOR EACH ROW EXECUTE FUNCTION passport_entity_dna_send();
    END IF;
END
$$;

ALTER TABLE entity_dna ALTER COLUMN embedding_send SET STORAGE EXTERNAL,
                       ALTER COLUMN embedding_send SET STATISTICS 0;

-- The rows written before the trigger: the UPDATE fires it.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'entity_dna'::regclass
                  AND tgname = 'passport_entity_dna_send') THEN
        UPDATE entity_dna SET embedding = embedding
         WHERE embedding IS NOT NULL AND embedding_send_xid IS DISTINCT FROM xmin;
    END IF;
END
$$;
