-- DNA vectors are 1536 floats (6 KiB) that do not compress: store them out of line without
-- trying to (EXTERNAL), which saves a futile compression attempt on every DNA write.
-- Metadata only; existing values are not rewritten.
ALTER TABLE media_ids ALTER COLUMN profile_embedding SET STORAGE EXTERNAL;
ALTER TABLE entity_dna ALTER COLUMN embedding SET STORAGE EXTERNAL;
