-- No planner statistics for the DNA vectors. ANALYZE of a real[] column gathers statistics on
-- every element (1,536 per row): autovacuum's ANALYZE of media_ids, which the DNA writes keep
-- due, took 0.9 s of CPU on 6,000 rows (10 ms without the column) and grows with the sample, up
-- to 30,000 rows. No query filters or sorts on a vector's contents (pgvector's index scans do not
-- read column statistics), so the planner loses nothing. Metadata only; nothing is rewritten.
ALTER TABLE media_ids ALTER COLUMN profile_embedding SET STATISTICS 0;
ALTER TABLE entity_dna ALTER COLUMN embedding SET STATISTICS 0;
