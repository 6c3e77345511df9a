-- polyfac.export: each source a tenant receives gets its REGLEMENTS lines back in its own
-- outbox and dialect (docs/adding-a-source.md, 1.9). A line and a file now belong to an
-- outbox: `source` = '' for the tenant's default source (`<tenant>/polyfac/outbox`, as
-- before: every existing row), else the name of a further source
-- (`<tenant>/sources/<name>/outbox`). File sequences count per outbox, so the unique key
-- of a file gains `source`: SQLite cannot change a table constraint in place, hence the
-- copy. Both tables are rebuilt (lines first, pointing at the new file table) so that no
-- drop ever leaves a line referencing a missing file while foreign keys are enforced.
CREATE TABLE polyfac_reglements_file_v3 (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT '',  -- '' = the tenant's default source
    day         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    lines       INTEGER NOT NULL,
    planned_at  TEXT NOT NULL,
    written_at  TEXT,                -- NULL until emitted (emit_file) and recorded
    UNIQUE (tenant, source, day, seq)
);
INSERT INTO polyfac_reglements_file_v3 (id, tenant, source, day, seq, name, lines, planned_at, written_at)
    SELECT id, tenant, '', day, seq, name, lines, planned_at, written_at FROM polyfac_reglements_file;

CREATE TABLE polyfac_reglement_line_v3 (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT '',  -- '' = the tenant's default source
    event_key   TEXT NOT NULL,
    invoice_key TEXT NOT NULL,
    statut      TEXT NOT NULL,
    day         TEXT NOT NULL,       -- the day it was recorded: the day of its file
    bytes       BLOB NOT NULL,
    recorded_at TEXT NOT NULL,
    file_id     INTEGER REFERENCES polyfac_reglements_file_v3 (id),
    UNIQUE (tenant, event_key)
);
INSERT INTO polyfac_reglement_line_v3 (id, tenant, source, event_key, invoice_key, statut, day, bytes, recorded_at, file_id)
    SELECT id, tenant, '', event_key, invoice_key, statut, day, bytes, recorded_at, file_id FROM polyfac_reglement_line;

DROP TABLE polyfac_reglement_line;
DROP TABLE polyfac_reglements_file;
-- Renaming rewrites the lines' reference to the file table's final name.
ALTER TABLE polyfac_reglements_file_v3 RENAME TO polyfac_reglements_file;
ALTER TABLE polyfac_reglement_line_v3 RENAME TO polyfac_reglement_line;

CREATE INDEX polyfac_reglements_file_unwritten ON polyfac_reglements_file (tenant, source)
    WHERE written_at IS NULL;
CREATE INDEX polyfac_reglement_line_unassigned ON polyfac_reglement_line (tenant, source, day)
    WHERE file_id IS NULL;
CREATE INDEX polyfac_reglement_line_file ON polyfac_reglement_line (file_id);
