-- sepa.batch: credit notes (avoirs) against régie invoices. A credit note against an
-- invoice whose debit is not planned yet lowers (or removes) that debit when its run is
-- planned (`pending` → `applied`); against a debit already in a pain.008 it is a refund the
-- régisseur makes (`refund`: Polyfac is told, a debit is never negative); against an
-- unknown invoice it is refused (`refused`).
CREATE TABLE sepa_credit_note (
    tenant       TEXT NOT NULL,
    note_key     TEXT NOT NULL,      -- tenant/exercice/number of the credit note
    origin_key   TEXT NOT NULL,      -- the invoice it reduces
    amount_cents INTEGER NOT NULL,   -- what it takes off, > 0
    state        TEXT NOT NULL,      -- pending, applied, refund, refused
    received_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, note_key)
) WITHOUT ROWID;
CREATE INDEX sepa_credit_note_origin ON sepa_credit_note (tenant, origin_key);
