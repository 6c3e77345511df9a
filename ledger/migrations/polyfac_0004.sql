-- polyfac.ingest: every invoice rejected at validation, by file and line, so that ops find
-- those the journal cannot key — no invoice number, or no readable exercice — with
-- `encaisse trace --file NAME [--line N]` (invoices with a key are also in their journal,
-- `invoice_event`, and `encaisse trace <number>` finds them). What a report row holds, minus
-- personal data: the first broken rule, its column and message (messages never repeat bank
-- details, names or e-mail addresses).
CREATE TABLE polyfac_rejected (
    tenant       TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    file         TEXT NOT NULL,      -- the export's name in the inbox
    application  TEXT NOT NULL,      -- the source it came from
    first_line   INTEGER NOT NULL,
    last_line    INTEGER NOT NULL,
    number       TEXT NOT NULL,      -- '' when the export gives none
    exercice     INTEGER,            -- NULL when unreadable
    rule         TEXT NOT NULL,
    rules        TEXT NOT NULL,      -- every broken rule, comma-separated
    column_name  TEXT NOT NULL,
    message      TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, run_id, first_line)
) WITHOUT ROWID;
CREATE INDEX polyfac_rejected_file ON polyfac_rejected (file, first_line);
