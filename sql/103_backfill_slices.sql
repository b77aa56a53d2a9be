-- A backfill's progress in slices: `passport-migrate backfill --jobs N` cuts a large legacy log
-- into up to N ranges of ids (slices) and copies them side by side, so that every job works to
-- the end instead of one log's job finishing first and leaving the rest to a single connection.
-- Each slice has a row of its own, keyed by where it starts:
--
--   slice_start  the id the slice starts after ('' for the table's first id)
--   slice_end    the slice's last id, inclusive (NULL: to the end of the table)
--   last_id      the highest legacy id of the slice's last committed batch (NULL: none yet)
--
-- A run's slices are written together, in one transaction, before its first batch (with the
-- same started_at); each batch then updates its own slice's row in the statement that inserts
-- the batch. A run interrupted at any point (kill -9 included) is resumed slice by slice from
-- the rows not completed. A row written before this change is a run of one slice from ''.
ALTER TABLE passport_backfill_progress ADD COLUMN IF NOT EXISTS slice_start text NOT NULL DEFAULT '',
                                       ADD COLUMN IF NOT EXISTS slice_end text;

-- The key becomes (legacy_source, window_key, slice_start). The table holds a few rows per
-- source and only the backfill uses it: the swap is short.
DO $$
DECLARE
    old_key name;
BEGIN
    SELECT k.conname INTO old_key
      FROM pg_constraint AS k
     WHERE k.conrelid = 'passport_backfill_progress'::regclass AND k.contype = 'p'
       AND cardinality(k.conkey) = 2;
    IF old_key IS NOT NULL THEN
        EXECUTE format('ALTER TABLE passport_backfill_progress DROP CONSTRAINT %I', old_key);
        ALTER TABLE passport_backfill_progress ADD PRIMARY KEY (legacy_source, window_key, slice_start);
    END IF;
END
$$;
