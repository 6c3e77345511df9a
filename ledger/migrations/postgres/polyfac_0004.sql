-- polyfac.ingest's invoices rejected at validation, by file and line, PostgreSQL (the same
-- schema as ../polyfac_0004.sql for SQLite): what a report row holds, minus personal data.
CREATE TABLE polyfac_rejected (
    tenant       text COLLATE "C" NOT NULL,
    run_id       text COLLATE "C" NOT NULL,
    file         text COLLATE "C" NOT NULL,  -- the export's name in the inbox
    application  text NOT NULL,              -- the source it came from
    first_line   bigint NOT NULL,
    last_line    bigint NOT NULL,
    number       text NOT NULL,              -- '' when the export gives none
    exercice     bigint,                     -- NULL when unreadable
    rule         text NOT NULL,
    rules        text NOT NULL,              -- every broken rule, comma-separated
    column_name  text NOT NULL,
    message      text NOT NULL,
    recorded_at  text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, run_id, first_line)
);
CREATE INDEX polyfac_rejected_file ON polyfac_rejected (file, first_line);
