-- The régie direct-debit path (issue 5 §3; docs/sepa.md): mandates and their uses, the
-- pain.008 and report files planned then written, the payment.rejected events waiting to be
-- published, and the bank file records already handled. Times are RFC 3339 UTC text, dates
-- ISO `YYYY-MM-DD`. IBANs are personal data: stored here (as the batch payloads are), never
-- logged.

-- A mandate as the ledger knows it, per tenant and RUM (RUMs compare case-insensitively:
-- `rum_key` is the upper-case form).
CREATE TABLE sepa_mandate (
    tenant      TEXT NOT NULL,
    rum_key     TEXT NOT NULL,
    rum         TEXT NOT NULL,       -- as last given by the source
    one_off     INTEGER NOT NULL,    -- 1: one-off mandate (the source said OOFF)
    signed_on   TEXT NOT NULL,
    iban        TEXT NOT NULL,       -- the debtor account last given
    bic         TEXT,
    amended_on  TEXT,                -- the last day the debtor account changed
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, rum_key)
) WITHOUT ROWID;

-- Planned or written files: pain.008 (per régie and billing run, or re-presentations of a
-- bank file) and the reports of refused invoices and unmatched bank records. The bytes are
-- stored with the plan, so a crash between planning and writing writes the same bytes.
CREATE TABLE sepa_file (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT NOT NULL,
    origin        TEXT NOT NULL,     -- the component that planned it: sepa.batch, sepa.returns
    kind          TEXT NOT NULL,     -- pain008, refused_report, unmatched_report
    path          TEXT NOT NULL UNIQUE,  -- relative to the data directory
    bytes         BLOB NOT NULL,
    cause         TEXT NOT NULL,     -- billing run id, or the bank file that caused it
    planned_at    TEXT NOT NULL,
    written_at    TEXT,              -- NULL until emitted (emit_file) and recorded
    -- pain.008 only:
    regie         TEXT,
    message_id    TEXT,              -- GrpHdr/MsgId
    created_at    TEXT,              -- GrpHdr/CreDtTm as written (local time, no offset)
    created_on    TEXT,              -- its date: the day of {seq}
    day_seq       INTEGER,           -- {seq}: the file's number that day for the tenant
    collections   INTEGER,
    amount_cents  INTEGER
);
CREATE INDEX sepa_file_unwritten ON sepa_file (tenant, origin) WHERE written_at IS NULL;
CREATE INDEX sepa_file_day ON sepa_file (tenant, created_on);
CREATE UNIQUE INDEX sepa_file_message ON sepa_file (tenant, message_id) WHERE message_id IS NOT NULL;

-- Every presentation of an invoice (attempt 1, then 2 for a re-presentation…): one use of
-- a mandate. `status`: planned (sequence decided, not written yet), presented (in a written
-- file), refused (never sent: excluded from the mandate's history), rejected (pain.002,
-- before settlement), returned (camt.054, after settlement), settled.
CREATE TABLE sepa_collection (
    tenant           TEXT NOT NULL,
    invoice_key      TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    rum_key          TEXT NOT NULL,
    end_to_end_id    TEXT,
    due_date         TEXT NOT NULL,
    sequence         TEXT NOT NULL,
    status           TEXT NOT NULL,
    planned_at       TEXT NOT NULL,
    regie            TEXT,
    amount_cents     INTEGER,
    file_id          INTEGER REFERENCES sepa_file (id),
    payment_info_id  TEXT,
    -- What was presented, for the amendment of the mandate's next collection.
    rum              TEXT,
    iban             TEXT,
    bic              TEXT,
    ics              TEXT,
    creditor_name    TEXT,
    -- The bank's verdict.
    outcome_code     TEXT,
    outcome_on       TEXT,
    PRIMARY KEY (tenant, invoice_key, attempt)
);
CREATE UNIQUE INDEX sepa_collection_e2e ON sepa_collection (tenant, end_to_end_id)
    WHERE end_to_end_id IS NOT NULL;
CREATE INDEX sepa_collection_mandate ON sepa_collection (tenant, rum_key);
CREATE INDEX sepa_collection_file ON sepa_collection (file_id);

-- The invoice.issued body of each direct-debit invoice planned, to re-present it.
CREATE TABLE sepa_invoice (
    tenant       TEXT NOT NULL,
    invoice_key  TEXT NOT NULL,
    payload      BLOB NOT NULL,
    PRIMARY KEY (tenant, invoice_key)
) WITHOUT ROWID;

-- payment.rejected events decided but not yet published (a crash between the decision and
-- the publication publishes them at the next call; their ids are deterministic).
CREATE TABLE sepa_event (
    message_id  TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    origin      TEXT NOT NULL,
    body        BLOB NOT NULL,       -- the event's JSON
    created_at  TEXT NOT NULL,
    handed_at   TEXT                 -- published, or handed to the runtime's outbox
);
CREATE INDEX sepa_event_pending ON sepa_event (tenant, origin) WHERE handed_at IS NULL;

-- Records of bank files already handled, by the readers' idempotency keys: the same file
-- read twice yields nothing new.
CREATE TABLE sepa_return_record (
    tenant           TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    file             TEXT NOT NULL,
    outcome          TEXT NOT NULL,  -- matched, duplicate, unmatched
    detail           TEXT NOT NULL,  -- JSON, no personal data
    recorded_at      TEXT NOT NULL,
    PRIMARY KEY (tenant, idempotency_key)
) WITHOUT ROWID;
