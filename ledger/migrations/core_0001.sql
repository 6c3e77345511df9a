-- Core tables of the ledger. Times are RFC 3339 UTC text.

-- Messages a stage has processed (deduplication) and the outputs it published for them, so
-- a redelivered message republishes the same outputs instead of doing the work again.
CREATE TABLE processed_message (
    stage        TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    message_type TEXT,
    tenant       TEXT,
    invoice_key  TEXT,           -- tenant/exercice/number when the message is about an invoice
    processed_at TEXT NOT NULL,
    outputs      BLOB,           -- JSON array of the messages published, for republishing
    PRIMARY KEY (stage, message_id)
) WITHOUT ROWID;
CREATE INDEX processed_message_invoice ON processed_message (invoice_key) WHERE invoice_key IS NOT NULL;

-- Files the daemon wrote, recorded before the message that caused them is acked.
CREATE TABLE emitted_file (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    kind        TEXT NOT NULL,   -- pes_aller, pes_acquit_retour, pain008, reglements, report
    path        TEXT NOT NULL UNIQUE,
    sha256      TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    written_at  TEXT NOT NULL,
    caused_by   TEXT             -- stage/message id or run id
);
CREATE INDEX emitted_file_tenant_kind ON emitted_file (tenant, kind, written_at);

-- The life of each invoice, as a journal of facts in time order (issued, titre, accepted,
-- paid, rejected, ...). `encaisse trace` reads it.
CREATE TABLE invoice_event (
    id          INTEGER PRIMARY KEY,
    invoice_key TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,   -- JSON
    dedupe_key  TEXT UNIQUE      -- so that recording the same fact twice keeps one row
);
CREATE INDEX invoice_event_invoice ON invoice_event (invoice_key, at);
