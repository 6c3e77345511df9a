-- PayFiP area: classic-URL results (titres) carry no signature, so a "paid" result is only a
-- claim. It is kept on its attempt until the Trésorerie's PES Retour émargement confirms it
-- (or the confirmation window ends and it is reported to ops); it never makes the invoice paid.
ALTER TABLE payfip_operation ADD COLUMN claim TEXT;             -- P | V: the letter the classic result announced
ALTER TABLE payfip_operation ADD COLUMN claimed_at TEXT;        -- when it was first announced
ALTER TABLE payfip_operation ADD COLUMN claim_settled TEXT;     -- confirmed | unconfirmed; NULL while awaited
ALTER TABLE payfip_operation ADD COLUMN claim_settled_at TEXT;
CREATE INDEX payfip_operation_open_claims ON payfip_operation (claimed_at)
    WHERE claimed_at IS NOT NULL AND claim_settled IS NULL;
