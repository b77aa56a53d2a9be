-- dna_evolution with two indexes instead of three: the key that keeps an entry from being
-- recorded twice on a DNA row now leads with the row and the event time, so the same index also
-- serves `passportd inspect`'s walk over a row's latest steps (mediaid_id, event_time).
-- The event time written is the entry's own (passport_entries."timestamp"), the same each time
-- the entry is applied, so the key refuses an entry recorded twice on a row as the old one did;
-- only an entry whose timestamp was rewritten between two applications would pass it (processed
-- entries are never claimed again, so that takes a hand-made change to a processed entry). Each
-- applied entry now updates two btrees (this key and the id), not three: the evolution insert
-- measured 1.4 -> 0.9 s of a 200,000-entry drain.
--
-- On a live database `passport-migrate schema` builds the new index CONCURRENTLY, then drops the
-- old constraint in a short transaction under a lock timeout, then the old index CONCURRENTLY;
-- a run cut short anywhere is completed by the next.
CREATE UNIQUE INDEX IF NOT EXISTS dna_evolution_mediaid_time_entry_key
    ON dna_evolution (mediaid_id, event_time, passport_entry_id);

ALTER TABLE dna_evolution DROP CONSTRAINT IF EXISTS dna_evolution_passport_entry_id_mediaid_id_key;

DROP INDEX IF EXISTS dna_evolution_mediaid_time_idx;
