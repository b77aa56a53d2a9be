-- The carbon clock on each DNA row, and the project's DNA tables. Vectors use the same type as
-- media_ids.profile_embedding: pgvector's vector(1536) where the extension is installed, else real[].
ALTER TABLE media_ids ADD COLUMN IF NOT EXISTS dna_clock timestamptz;

DO $$
DECLARE
    embedding_type text;
BEGIN
    SELECT format_type(a.atttypid, a.atttypmod) INTO embedding_type
      FROM pg_attribute a
     WHERE a.attrelid = 'media_ids'::regclass AND a.attname = 'profile_embedding' AND NOT a.attisdropped;
    IF embedding_type IS NULL THEN
        RAISE EXCEPTION 'media_ids.profile_embedding is missing';
    END IF;
    IF embedding_type NOT LIKE 'vector%' AND embedding_type <> 'real[]' THEN
        RAISE EXCEPTION 'media_ids.profile_embedding has type %, expected vector(1536) or real[]', embedding_type;
    END IF;

    EXECUTE format($sql$
        CREATE TABLE IF NOT EXISTS entity_dna (
            entity_type text NOT NULL CHECK (entity_type IN ('track', 'artist', 'event')),
            entity_id   uuid NOT NULL,
            embedding   %s,
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (entity_type, entity_id)
        )$sql$, embedding_type);
END
$$;

-- One row per entry applied to a DNA row. decay_* hold k_d for an entry in order and the
-- late-entry damping l_d for a late one (late = true); delta_* are the L2 norms of each domain's
-- change; alpha is L * b, the entry's learning rate before domain weights.
CREATE TABLE IF NOT EXISTS dna_evolution (
    id                 bigserial PRIMARY KEY,
    mediaid_id         uuid NOT NULL,
    passport_entry_id  uuid NOT NULL,
    event_type         text NOT NULL,
    event_time         timestamptz NOT NULL,
    target_type        text,
    target_id          uuid,
    alpha              real NOT NULL,
    decay_cultural     real NOT NULL,
    decay_behavioral   real NOT NULL,
    decay_economic     real NOT NULL,
    decay_spatial      real NOT NULL,
    delta_cultural     real NOT NULL,
    delta_behavioral   real NOT NULL,
    delta_economic     real NOT NULL,
    delta_spatial      real NOT NULL,
    late               boolean NOT NULL,
    applied_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (passport_entry_id, mediaid_id)
);
CREATE INDEX IF NOT EXISTS dna_evolution_mediaid_time_idx ON dna_evolution (mediaid_id, event_time);
