-- The web console (`[console]`): every action taken there, kept for audit and shown on its
-- "audit trail" page, and the indexes its pages need to stay fast on a large ledger.

CREATE TABLE console_action (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,            -- RFC 3339 UTC with microseconds
    user        TEXT NOT NULL,            -- the console user name (as configured)
    role        TEXT NOT NULL,            -- ops, finance, or '' for a failed login
    action      TEXT NOT NULL,            -- login, login_refused, logout, replay, discard, download
    target      TEXT,                     -- parked id, group, file path
    reason      TEXT,                     -- mandatory for a discard
    outcome     TEXT NOT NULL             -- what happened (done, refused, already resolved, …)
);
CREATE INDEX console_action_at ON console_action (at);

-- Invoices issued in a month (reconciliation), per tenant; covering (budget and total in the
-- index, the key through the primary key) so a month is read from the index alone.
CREATE INDEX polyfac_issued_published ON polyfac_issued (tenant, published_at, budget, total_cents);
-- Payments seen in a month (covering), what is paid on an invoice (covering), and reversals
-- made in a month (reconciliation).
CREATE INDEX polyfac_payment_seen
    ON polyfac_payment (tenant, seen_at, confirms, channel, amount_cents, invoice_key);
CREATE INDEX polyfac_payment_paid
    ON polyfac_payment (tenant, invoice_key, confirms, reversed_at, amount_cents);
CREATE INDEX polyfac_payment_reversed ON polyfac_payment (tenant, reversed_at)
    WHERE reversed_at IS NOT NULL;
-- Online payments resolved in a month, with their commission (reconciliation).
CREATE INDEX payfip_operation_resolved ON payfip_operation (tenant, resolved_at)
    WHERE resolved_at IS NOT NULL;
-- Direct debits returned by the bank in a month (reconciliation).
CREATE INDEX sepa_collection_outcome ON sepa_collection (tenant, outcome_on)
    WHERE outcome_on IS NOT NULL;
-- Invoice search by family code.
CREATE INDEX polyfac_export_invoice_family ON polyfac_export_invoice (family_code);
-- The files pages, newest first.
CREATE INDEX emitted_file_written ON emitted_file (written_at);
