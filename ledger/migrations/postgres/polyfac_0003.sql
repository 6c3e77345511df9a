-- One REGLEMENTS outbox per source, PostgreSQL (the same schema as ../polyfac_0003.sql for
-- SQLite, which rebuilds the tables because SQLite cannot change a constraint in place):
-- lines and files belong to an outbox (`source` = '' for the tenant's default source, so
-- every existing row), and file sequences count per outbox and day.
ALTER TABLE polyfac_reglements_file ADD COLUMN source text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE polyfac_reglements_file
    DROP CONSTRAINT polyfac_reglements_file_seq,
    ADD CONSTRAINT polyfac_reglements_file_seq UNIQUE (tenant, source, day, seq);
ALTER TABLE polyfac_reglement_line ADD COLUMN source text COLLATE "C" NOT NULL DEFAULT '';

DROP INDEX polyfac_reglements_file_unwritten;
CREATE INDEX polyfac_reglements_file_unwritten ON polyfac_reglements_file (tenant, source)
    WHERE written_at IS NULL;
DROP INDEX polyfac_reglement_line_unassigned;
CREATE INDEX polyfac_reglement_line_unassigned ON polyfac_reglement_line (tenant, source, day)
    WHERE file_id IS NULL;
