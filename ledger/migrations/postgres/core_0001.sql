-- Core tables of the ledger, PostgreSQL (the same schema as ../core_0001.sql for SQLite).
-- Times are text in the ledger's one format (RFC 3339 UTC, microseconds, Z) and keys that
-- are ordered or compared are COLLATE "C", so both backends order by bytes.

-- Messages a stage has processed (deduplication) and the outputs it published for them.
CREATE TABLE processed_message (
    stage        text NOT NULL,
    message_id   text NOT NULL,
    message_type text,
    tenant       text,
    invoice_key  text,           -- tenant/exercice/number when the message is about an invoice
    processed_at text COLLATE "C" NOT NULL,
    outputs      bytea,          -- JSON array of the messages published, for republishing
    PRIMARY KEY (stage, message_id)
);
CREATE INDEX processed_message_invoice ON processed_message (invoice_key) WHERE invoice_key IS NOT NULL;

-- Files the daemon wrote, recorded before the message that caused them is acked.
CREATE TABLE emitted_file (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      text NOT NULL,
    kind        text NOT NULL,   -- pes_aller, pes_acquit_retour, pain008, reglements, report
    path        text NOT NULL UNIQUE,
    sha256      text NOT NULL,
    bytes       bigint NOT NULL,
    written_at  text COLLATE "C" NOT NULL,
    caused_by   text             -- stage/message id or run id
);
CREATE INDEX emitted_file_tenant_kind ON emitted_file (tenant, kind, written_at);

-- The life of each invoice, as a journal of facts in time order. `encaisse trace` reads it.
CREATE TABLE invoice_event (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_key text NOT NULL,
    tenant      text NOT NULL,
    at          text COLLATE "C" NOT NULL,
    kind        text NOT NULL,
    detail      text NOT NULL,   -- JSON
    dedupe_key  text UNIQUE      -- so that recording the same fact twice keeps one row
);
CREATE INDEX invoice_event_invoice ON invoice_event (invoice_key, at);
