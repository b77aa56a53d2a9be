-- passport-migrate prune runs as passport_migrate: it reads and deletes old dna_evolution rows
-- (passportd itself can never delete anything).
GRANT SELECT, DELETE ON dna_evolution TO passport_migrate;
