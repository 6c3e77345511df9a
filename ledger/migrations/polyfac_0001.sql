-- The Polyfac stages (docs/polyfac.md): what polyfac.ingest published, and what
-- polyfac.export told Polyfac in REGLEMENTS files. Times are RFC 3339 UTC text, days ISO
-- `YYYY-MM-DD` (Europe/Paris). Amounts in cents. No personal data beyond the family code.

-- polyfac.ingest: every invoice published (confirmed by the broker), one row per invoice.
-- An invoice number is issued once per tenant and exercice: the same content again is
-- skipped, other content under the same number is refused.
CREATE TABLE polyfac_issued (
    tenant       TEXT NOT NULL,
    invoice_key  TEXT NOT NULL,      -- tenant/exercice/number
    content_hash TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    file         TEXT NOT NULL,
    first_line   INTEGER NOT NULL,
    last_line    INTEGER NOT NULL,
    budget       TEXT NOT NULL,
    collection   TEXT NOT NULL,      -- titres | regie
    total_cents  INTEGER NOT NULL,
    message_id   TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (tenant, invoice_key)
) WITHOUT ROWID;
CREATE INDEX polyfac_issued_run ON polyfac_issued (tenant, run_id);

-- polyfac.ingest: each billing run (one export file) once its billing_run.closed was
-- confirmed by the broker.
CREATE TABLE polyfac_run (
    tenant            TEXT NOT NULL,
    run_id            TEXT NOT NULL,
    file              TEXT NOT NULL,
    file_sha256       TEXT NOT NULL,
    exercice          INTEGER NOT NULL,
    lines             INTEGER NOT NULL,
    invoices          INTEGER NOT NULL,  -- published in the run (now or before)
    refused           INTEGER NOT NULL,  -- invalid or refused invoices
    closed_message_id TEXT NOT NULL,
    closed_at         TEXT NOT NULL,
    PRIMARY KEY (tenant, run_id)
) WITHOUT ROWID;

-- polyfac.export: what the stage learnt of each invoice from invoice.issued.
CREATE TABLE polyfac_export_invoice (
    tenant       TEXT NOT NULL,
    invoice_key  TEXT NOT NULL,
    family_code  TEXT NOT NULL,
    total_cents  INTEGER NOT NULL,
    payment_mode TEXT NOT NULL,
    application  TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    seen_at      TEXT NOT NULL,
    PRIMARY KEY (tenant, invoice_key)
) WITHOUT ROWID;

-- polyfac.export: payment sightings and their reconciliation (docs/polyfac.md, "Matching
-- rule"). A primary sighting has a PAYE line; a confirming one points at its primary.
CREATE TABLE polyfac_payment (
    tenant        TEXT NOT NULL,
    payment_id    TEXT NOT NULL,     -- payfip:<idop>, helios:<…>, sepa:<e2e>
    invoice_key   TEXT NOT NULL,
    amount_cents  INTEGER NOT NULL,
    channel       TEXT NOT NULL,     -- REGLEMENTS Canal (CB, PRELEVEMENT…)
    source        TEXT NOT NULL,     -- payfip | helios | bank | regie
    reference     TEXT NOT NULL,
    seen_at       TEXT NOT NULL,
    confirms      TEXT,              -- payment_id of the primary this sighting confirms
    confirmed_by  TEXT,              -- for a primary: the sighting that confirmed it
    reversed_at   TEXT,              -- set on a primary when an ANNULE line was written
    PRIMARY KEY (tenant, payment_id)
) WITHOUT ROWID;
CREATE INDEX polyfac_payment_invoice ON polyfac_payment (tenant, invoice_key);

-- REGLEMENTS files, planned (name, day, sequence, lines assigned) then written.
CREATE TABLE polyfac_reglements_file (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    day         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    lines       INTEGER NOT NULL,
    planned_at  TEXT NOT NULL,
    written_at  TEXT,                -- NULL until emitted (emit_file) and recorded
    UNIQUE (tenant, day, seq)
);
CREATE INDEX polyfac_reglements_file_unwritten ON polyfac_reglements_file (tenant)
    WHERE written_at IS NULL;

-- REGLEMENTS lines, rendered in the tenant's dialect when the event was handled, each
-- recorded once (event_key), then assigned to exactly one file.
CREATE TABLE polyfac_reglement_line (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    event_key   TEXT NOT NULL,
    invoice_key TEXT NOT NULL,
    statut      TEXT NOT NULL,
    day         TEXT NOT NULL,       -- the day it was recorded: the day of its file
    bytes       BLOB NOT NULL,
    recorded_at TEXT NOT NULL,
    file_id     INTEGER REFERENCES polyfac_reglements_file (id),
    UNIQUE (tenant, event_key)
);
CREATE INDEX polyfac_reglement_line_unassigned ON polyfac_reglement_line (tenant, day)
    WHERE file_id IS NULL;
CREATE INDEX polyfac_reglement_line_file ON polyfac_reglement_line (file_id);
