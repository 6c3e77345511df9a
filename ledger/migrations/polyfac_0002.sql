-- polyfac.ingest: credit notes (avoirs) are published like invoices (credit_note.issued)
-- and recorded in polyfac_issued under their own key, with the original they reduce.
-- billing_run.closed counts invoices only: the titres and régie stages wait for those.
ALTER TABLE polyfac_issued ADD COLUMN origin_key TEXT;  -- NULL for an invoice

-- polyfac.export: a credit note learnt from credit_note.issued (its total is what it takes
-- off, > 0), with the number of the invoice it reduces: its titre events become
-- TITRE_REDUIT / AVOIR_REJETE lines.
ALTER TABLE polyfac_export_invoice ADD COLUMN origin_number TEXT;  -- NULL for an invoice
